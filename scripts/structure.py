#!/usr/bin/env python3
"""Check the shape of src/ (run by `make lint`): the rules of docs/... README "Development".

- no import cycle between the top-level modules of the crate (nor between the files of one folder);
- no source file over MAX_FILE lines of non-test code, no function over MAX_FN lines;
- each rule that must have one home is written once (ONE_HOME).

Test code (`#[cfg(test)] mod tests { ... }` and `tests.rs` files) is left out of every rule.
Exit status 1 with one line per finding.
"""
import os
import re
import sys

MAX_FILE = 700
MAX_FN = 60
# (what, regular expression that must match exactly once in the non-test source)
ONE_HOME = [
    ("the 10 s default timeout", r"Duration::from_secs\(10\)"),
    ("the deadline rule", r"fn for_maps\("),
    ("the LDAP URL parser", r"fn url_prefix\("),
    ("the `%` template scanner", r"fn add\(&mut self, template"),
    ("the `%` template expander", r"pub fn expand\("),
    ("the failover rule", r"fn fails_over\(&self"),
]

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def rust_files():
    for dirpath, _, names in os.walk(ROOT):
        for name in sorted(names):
            if name.endswith(".rs") and name != "tests.rs":
                yield os.path.join(dirpath, name)


def strip_tests(text):
    """The file without its `#[cfg(test)]` items (a module or a `mod tests;` line)."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(test)]":
            i += 1
            if i < len(lines) and lines[i].rstrip().endswith(";"):
                i += 1
                continue
            depth = 0
            while i < len(lines):
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
                if depth <= 0 and "}" in lines[i - 1]:
                    break
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def code_only(text):
    """Drop comments and string contents, so braces and names in them do not count."""
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    return "\n".join(re.sub(r"//.*", "", line) for line in text.split("\n"))


def module_of(path):
    rel = os.path.relpath(path, ROOT)
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def crate_refs(code):
    """The top-level modules a file refers to with `crate::NAME`."""
    refs = set(re.findall(r"\bcrate::([a-z_]+)", code))
    for group in re.findall(r"\buse crate::\{([^}]*)\}", code):
        refs.update(re.findall(r"(?:^|,)\s*([a-z_]+)", group))
    return refs


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def long_functions(path, code):
    lines = code.split("\n")
    fn_re = re.compile(r"^(\s*)(pub(\([^)]*\))? )?(async )?(unsafe )?fn ([a-z_0-9]+)")
    for i, line in enumerate(lines):
        m = fn_re.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            depth += lines[j].count("{") - lines[j].count("}")
            started = started or "{" in lines[j]
            if started and depth <= 0:
                length = j - i + 1
                if length > MAX_FN:
                    yield f"{os.path.relpath(path, ROOT)}:{i + 1}: fn {m.group(6)} is {length} lines (max {MAX_FN})"
                break


def main():
    findings = []
    top, siblings = {}, {}
    everything = ""
    for path in rust_files():
        text = strip_tests(open(path, encoding="utf-8").read())
        code = code_only(text)
        everything += text + "\n"
        n = len([l for l in text.split("\n")])
        if n > MAX_FILE:
            findings.append(f"{os.path.relpath(path, ROOT)}: {n} lines of non-test code (max {MAX_FILE})")
        findings.extend(long_functions(path, code))
        mod = module_of(path)
        if not mod:
            continue
        top.setdefault(mod[0], set()).update(r for r in crate_refs(code) if r != mod[0])
        if len(mod) == 2:
            uses = set(re.findall(r"\bsuper::([a-z_]+)", code)) - {mod[1]}
            siblings.setdefault(mod[0], {})[mod[1]] = uses
    cycle = find_cycle(top)
    if cycle:
        findings.append("import cycle between modules: " + " -> ".join(cycle))
    for folder, graph in siblings.items():
        graph = {k: {u for u in v if u in graph} for k, v in graph.items()}
        cycle = find_cycle(graph)
        if cycle:
            findings.append(f"import cycle in src/{folder}/: " + " -> ".join(cycle))
    for what, pattern in ONE_HOME:
        n = len(re.findall(pattern, everything))
        if n != 1:
            findings.append(f"{what} ({pattern}) is written {n} times: it must have exactly one home")
    for f in findings:
        print(f"structure: {f}")
    if not findings:
        print(f"structure: ok ({len(top)} modules, no cycle; files <= {MAX_FILE} lines, functions <= {MAX_FN})")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
