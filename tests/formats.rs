//! The machine-readable outputs against a real slapd: `--format json` validated against docs/json-schema.json,
//! and the `--prometheus-textfile` file checked line by line against the Prometheus text exposition format,
//! written atomically, its last-success time carried over, and a failed write that leaves the verdict alone.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

fn map_body(server_host: &str, extra: &str) -> String {
    format!(
        "server_host = {server_host}\nsearch_base = ou=people,dc=example,dc=com\n\
         query_filter = (mail=%s)\nresult_attribute = mail\n{extra}"
    )
}

fn service_bind(s: &Slapd, pw: &str) -> String {
    format!("bind = yes\nbind_dn = {}\nbind_pw = {pw}\n", s.get("SERVICE_DN"))
}

/// A port on 127.0.0.1 that refuses connections, kept for the whole test process.
fn refused_url() -> String {
    let refused: &'static FakeServer = Box::leak(Box::new(FakeServer::start(FakeMode::Refuse)));
    format!("ldap://{}", refused.addr)
}

/// Four maps: OK (with a canary that is found), WARNING (first server refuses, Postfix fails over), CRITICAL (wrong password), UNKNOWN
/// (no such file). Returns their paths in that order.
fn four_maps(s: &Slapd, d: &TempDir) -> Vec<String> {
    let canary = "health_check_key = user0001@example.com\n";
    let ok = d.write("ok.cf", &map_body(&s.ldap_url(), &(service_bind(s, s.get("SERVICE_PW")) + canary)));
    let failover = d.write("failover.cf", &map_body(&format!("{} {}", refused_url(), s.ldap_url()), ""));
    let badpw = d.write("badpw.cf", &map_body(&s.ldap_url(), &service_bind(s, "Wr0ng-Pa55word-xyzzy")));
    let missing = d.join("missing.cf");
    [ok, failover, badpw, missing].iter().map(|p| p.to_str().unwrap().to_string()).collect()
}

fn with_maps<'a>(args: &[&'a str], maps: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    for m in maps {
        all.extend(["-f", m.as_str()]);
    }
    all
}

// ---------------------------------------------------------------------------------------------
// A validator for the subset of JSON Schema 2020-12 that docs/json-schema.json uses. Any other keyword is an
// error, so the schema cannot come to rely on something this validator would silently ignore.

fn schema() -> Value {
    let text = fs::read_to_string(repo_root().join("docs/json-schema.json")).expect("read docs/json-schema.json");
    serde_json::from_str(&text).expect("docs/json-schema.json is JSON")
}

fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        errors.push(format!("{at}: schema is not an object"));
        return;
    };
    for (key, rule) in obj {
        match key.as_str() {
            "$schema" | "$id" | "$defs" | "title" | "description" => {}
            "$ref" => {
                let target = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/"))
                    .and_then(|p| p.split('/').try_fold(root, |node, part| node.get(part)));
                match target {
                    Some(t) => validate(root, t, v, at, errors),
                    None => errors.push(format!("{at}: unresolvable $ref {rule}")),
                }
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                let ok = types.iter().any(|t| match *t {
                    "null" => v.is_null(),
                    "boolean" => v.is_boolean(),
                    "string" => v.is_string(),
                    "number" => v.is_number(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "array" => v.is_array(),
                    "object" => v.is_object(),
                    _ => false,
                });
                if !ok {
                    errors.push(format!("{at}: {v} is not of type {rule}"));
                }
            }
            "const" if v != rule => errors.push(format!("{at}: {v} is not {rule}")),
            "const" => {}
            "enum" if !rule.as_array().is_some_and(|a| a.contains(v)) => {
                errors.push(format!("{at}: {v} is not one of {rule}"))
            }
            "enum" => {}
            "minimum" => {
                if let (Some(n), Some(min)) = (v.as_f64(), rule.as_f64()) {
                    if n < min {
                        errors.push(format!("{at}: {n} < minimum {min}"));
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for name in rule.as_array().into_iter().flatten().filter_map(Value::as_str) {
                        if !o.contains_key(name) {
                            errors.push(format!("{at}: required {name:?} is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in rule.as_object().into_iter().flatten() {
                        if let Some(value) = o.get(name) {
                            validate(root, sub, value, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                let known = obj.get("properties").and_then(Value::as_object);
                if let (Some(o), Value::Bool(false)) = (v.as_object(), rule) {
                    for name in o.keys().filter(|k| !known.is_some_and(|p| p.contains_key(*k))) {
                        errors.push(format!("{at}: {name:?} is not in the schema"));
                    }
                }
            }
            "items" => {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    validate(root, rule, item, &format!("{at}[{i}]"), errors);
                }
            }
            "oneOf" => {
                let matching = rule
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        validate(root, sub, v, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if matching != 1 {
                    errors.push(format!("{at}: {v} matches {matching} of oneOf, not exactly 1"));
                }
            }
            other => errors.push(format!("{at}: keyword {other:?} is not supported by this test's validator")),
        }
    }
}

#[track_caller]
fn assert_valid(v: &Value) {
    let schema = schema();
    let mut errors = Vec::new();
    validate(&schema, &schema, v, "$", &mut errors);
    assert!(errors.is_empty(), "not valid against docs/json-schema.json:\n{}\n{v:#}", errors.join("\n"));
}

/// stdout as JSON Lines: each line one object, valid against the schema.
#[track_caller]
fn json_lines(r: &Run) -> Vec<Value> {
    assert!(!r.stdout.is_empty() && r.stdout.ends_with('\n'), "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r.stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_valid(&v);
            v
        })
        .collect()
}

#[test]
fn the_schema_is_draft_2020_12_and_the_validator_rejects_what_it_should() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let mut good: Value = serde_json::from_str(
        r#"{"format_version":1,"tool":"ldap-health-check","tool_version":"0","timestamp":1.5,"state":"OK",
            "exit_code":0,"summary":"","elapsed_seconds":0.1,"deadline_seconds":null,
            "thresholds":{"warning":null,"critical":"2"},"threshold":null,"servers_probed":0,"maps":[]}"#,
    )
    .unwrap();
    assert_valid(&good);
    let mut errors = Vec::new();
    for (key, bad) in [("exit_code", "4"), ("state", "\"FINE\""), ("elapsed_seconds", "-1"), ("maps", "[{}]")] {
        let mut v = good.clone();
        v[key] = serde_json::from_str(bad).unwrap();
        validate(&s, &s, &v, "$", &mut errors);
        assert!(!errors.is_empty(), "{key} = {bad} passed");
        errors.clear();
    }
    good.as_object_mut().unwrap().insert("surprise".into(), Value::Null);
    validate(&s, &s, &good, "$", &mut errors);
    assert!(!errors.is_empty(), "an undocumented field passed");
}

#[test]
fn json_describes_every_map_and_server_and_matches_the_schema() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let mut maps = four_maps(s, &d);
    let tls = d.write("tls.cf", &map_body(&format!("{} {}", s.ldaps_url(), s.ldap_url()), ""));
    maps.push(tls.to_str().unwrap().to_string());
    let r = run(&with_maps(&["--once", "--format", "json", "-t", "5s", "-w", "3"], &maps), &[]);
    r.assert_code(2);
    assert!(!r.stdout.contains(s.get("SERVICE_PW")) && !r.stderr.contains(s.get("SERVICE_PW")), "secret leaked");
    let lines = json_lines(&r);
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    let v = &lines[0];
    assert_eq!(v["state"], "CRITICAL");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["deadline_seconds"].as_f64(), Some(5.0));
    assert_eq!(v["thresholds"]["warning"], "3");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - v["timestamp"].as_f64().unwrap()).abs() < 60.0, "{v}");
    let states: Vec<&str> = v["maps"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["OK", "WARNING", "CRITICAL", "UNKNOWN", "OK"], "{v:#}");
    let cert = &v["maps"][4]["servers"][0]["certificate"];
    assert_eq!(cert["not_after"].as_f64(), s.get("SERVER_NOT_AFTER").parse::<f64>().ok(), "{v:#}");
    let paths: Vec<&str> = v["maps"].as_array().unwrap().iter().map(|m| m["path"].as_str().unwrap()).collect();
    assert_eq!(paths, maps.iter().map(String::as_str).collect::<Vec<_>>());

    let ok = &v["maps"][0];
    assert_eq!(ok["base"], "ou=people,dc=example,dc=com");
    let server = &ok["servers"][0];
    assert_eq!(server["role"], "decides");
    assert_eq!(server["error"], Value::Null);
    let stages: Vec<&str> =
        server["stages"].as_array().unwrap().iter().map(|st| st["stage"].as_str().unwrap()).collect();
    assert!(stages.contains(&"connect") && stages.contains(&"bind"), "{server}");
    assert!(server["search_seconds"].as_f64().is_some(), "{server}");

    let failover = &v["maps"][1]["servers"];
    assert_eq!(failover[0]["role"], "failed_over");
    assert_eq!(failover[0]["error"]["stage"], "connect");
    assert_eq!(failover[1]["role"], "decides");

    let bad = &v["maps"][2];
    assert_eq!(bad["servers"][0]["error"]["stage"], "bind");
    assert_eq!(bad["servers"][0]["error"]["timed_out"], false);
    assert!(bad["reason"].as_str().unwrap().contains("bind"), "{bad}");

    let missing = &v["maps"][3];
    assert!(missing["reason"].as_str().unwrap().contains("no such file"), "{missing}");
    assert_eq!(missing["servers"], Value::Array(vec![]));
    let canaries = &ok["canaries"];
    assert_eq!(canaries.as_array().map(Vec::len), Some(1), "{ok}");
    assert_eq!(canaries[0]["key"], "user0001@example.com");
    assert_eq!(canaries[0]["outcome"], "found", "{ok}");
    assert_eq!(canaries[0]["value"], "user0001@example.com", "{ok}");
    assert!(canaries[0]["elapsed_seconds"].as_f64().is_some(), "{ok}");
    for m in &v["maps"].as_array().unwrap()[1..] {
        assert_eq!(m["canaries"], Value::Array(vec![]));
    }
}

#[test]
fn json_for_a_check_that_cannot_start_is_unknown() {
    // No map given and a Postfix configuration directory without main.cf: nothing to check.
    let d = TempDir::new();
    let r = run(&["--once", "--format", "json", "--postfix-config", d.path().to_str().unwrap()], &[]);
    r.assert_code(3);
    let v = &json_lines(&r)[0];
    assert_eq!(v["state"], "UNKNOWN");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["maps"], Value::Array(vec![]));
    assert_eq!(v["deadline_seconds"], Value::Null);
    assert!(v["summary"].as_str().unwrap().contains(d.path().to_str().unwrap()), "{v}");
}

#[test]
fn json_in_loop_mode_prints_the_failing_check_or_every_check_with_debug() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let bad = d.write("bad.cf", &map_body(&s.ldap_url(), &service_bind(s, "Wr0ng-Pa55word-xyzzy")));
    let r = run(&["--format", "json", "--interval", "100ms", "-f", bad.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert_eq!(json_lines(&r).len(), 1);

    // Healthy: the loop goes on; with --debug each check is one object, and no DEBUG: text among them.
    let ok = d.write("ok.cf", &map_body(&s.ldap_url(), &service_bind(s, s.get("SERVICE_PW"))));
    let args = ["--format", "json", "--debug", "--interval", "200ms", "-f", ok.to_str().unwrap()];
    let r = run_with_timeout(&args, &[], Duration::from_millis(1500));
    assert!(r.timed_out, "the loop ended: {r:?}");
    let lines = json_lines(&r);
    assert!(lines.len() >= 2, "{}", r.stdout);
    assert!(lines.iter().all(|v| v["state"] == "OK"), "{}", r.stdout);
}

#[test]
fn nagios_stays_the_default() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let ok = d.write("ok.cf", &map_body(&s.ldap_url(), ""));
    let r = run(&["--once", "-f", ok.to_str().unwrap()], &[]);
    r.assert_code(0);
    assert!(r.stdout.starts_with("LDAP OK - 1 map, 1 server in ") && r.stdout.lines().count() == 1, "{}", r.stdout);
    let r = run(&["--once", "--format", "yaml", "-f", ok.to_str().unwrap()], &[]);
    r.assert_code(3);
    assert!(r.stdout.starts_with("LDAP UNKNOWN - invalid arguments"), "{}", r.stdout);
}

/// Run the binary with stdout and stderr on a pipe whose reader has already gone (a monitoring agent that gave
/// up, `ldap-health-check ... | true`): every write fails with EPIPE. Returns the binary's exit code.
fn exit_code_into_a_closed_pipe(args: &[&str]) -> i32 {
    let d = TempDir::new();
    let code_file = d.join("code");
    // `true` has exited long before the binary starts: the pipe has no reader left.
    let script = "{ sleep 0.3; \"$0\" \"$@\" 2>&1; echo $? >\"$CODE_FILE\"; } | true";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]).arg(bin()).args(args).env("CODE_FILE", &code_file);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LDAP_HEALTH_CHECK_") {
            cmd.env_remove(&k);
        }
    }
    run_command(&mut cmd, None, RUN_TIMEOUT).assert_code(0);
    let code = fs::read_to_string(&code_file).unwrap_or_else(|e| panic!("no exit code written: {e}"));
    code.trim().parse().unwrap_or_else(|e| panic!("exit code {code:?}: {e}"))
}

#[test]
fn a_closed_stdout_or_stderr_is_no_panic() {
    // A usage error: UNKNOWN (3), not a panic (101) or an abort (134).
    assert_eq!(exit_code_into_a_closed_pipe(&["--bogus"]), 3);
    let d = TempDir::new();
    let map = d.write("down.cf", &map_body(&refused_url(), ""));
    let map = map.to_str().unwrap();
    // A check (CRITICAL: the only server refuses), in both formats, with -v for stderr lines.
    assert_eq!(exit_code_into_a_closed_pipe(&["--once", "-v", "-f", map]), 2);
    assert_eq!(exit_code_into_a_closed_pipe(&["--once", "--format", "json", "-f", map]), 2);
    // A check that cannot start, and --query with a lookup error (stderr).
    assert_eq!(exit_code_into_a_closed_pipe(&["--once", "-f", d.join("missing.cf").to_str().unwrap()]), 3);
    assert_eq!(exit_code_into_a_closed_pipe(&["--query", "k", "-f", map]), 2);
}

/// Stdout and stderr on one pipe that the binary takes for the journal (`$JOURNAL_STREAM` names it), so that
/// the verdict it logs shows up, in order, after what it printed.
fn one_stream_as_the_journal(args: &[&str]) -> Run {
    let script = "exec 2>&1; JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$0\" \"$@\"";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]).arg(bin()).args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LDAP_HEALTH_CHECK_") {
            cmd.env_remove(&k);
        }
    }
    run_command(&mut cmd, None, RUN_TIMEOUT)
}

#[test]
fn the_verdict_reaches_stdout_before_the_log_and_the_textfile() {
    let d = TempDir::new();
    let map = d.write("down.cf", &map_body(&refused_url(), ""));
    let prom = d.join("no-such-dir/ldap.prom");
    let empty = TempDir::new();
    let cases: [(&[&str], i32, &str, &str); 3] = [
        (&["--once", "-f", map.to_str().unwrap()], 2, "LDAP CRITICAL - ", "<3>LDAP CRITICAL - "),
        (&["--once", "--format", "json", "-f", map.to_str().unwrap()], 2, "{", "<3>LDAP CRITICAL - "),
        (&["--once", "--postfix-config", empty.path().to_str().unwrap()], 3, "LDAP UNKNOWN - ", "<3>LDAP UNKNOWN - "),
    ];
    for (args, code, printed, logged) in cases {
        let mut args = args.to_vec();
        args.extend(["--prometheus-textfile", prom.to_str().unwrap()]);
        let r = one_stream_as_the_journal(&args);
        r.assert_code(code);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines.first().is_some_and(|l| l.starts_with(printed)), "{args:?}:\n{}", r.stdout);
        let log = lines.iter().position(|l| l.starts_with(logged));
        let textfile = lines.iter().position(|l| l.starts_with("<4>--prometheus-textfile "));
        assert!(log.is_some() && textfile.is_some() && log < textfile, "{args:?}:\n{}", r.stdout);
    }
}

// ---------------------------------------------------------------------------------------------
// The Prometheus text exposition format (version 0.0.4), line by line.

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn metric_name(s: &str) -> Option<(&str, &str)> {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())))
        .map_or(s.len(), |(i, _)| i);
    (end > 0).then(|| s.split_at(end))
}

fn label_name(s: &str) -> Option<(&str, &str)> {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit())))
        .map_or(s.len(), |(i, _)| i);
    (end > 0).then(|| s.split_at(end))
}

/// A label value after its opening quote: the unescaped value and the rest after the closing quote.
fn label_value(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => return Err(format!("bad escape \\{other:?}")),
            },
            '\n' => return Err("raw newline in a label value".into()),
            c => out.push(c),
        }
    }
    Err("unterminated label value".into())
}

fn sample(line: &str) -> Result<Sample, String> {
    let (name, mut rest) = metric_name(line).ok_or("no metric name")?;
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        while !rest.starts_with('}') {
            let (lname, r) = label_name(rest).ok_or_else(|| format!("bad label name at {rest:?}"))?;
            let r = r.strip_prefix("=\"").ok_or_else(|| format!("no =\" after {lname}"))?;
            let (value, r) = label_value(r)?;
            labels.push((lname.to_string(), value));
            rest = r.strip_prefix(',').unwrap_or(r);
            if !rest.starts_with('}') && r.len() == rest.len() {
                return Err(format!("expected , or }} at {rest:?}"));
            }
        }
        rest = &rest[1..];
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut parts = rest.split(' ');
    let text = parts.next().unwrap_or_default();
    let value = match text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        t => t.parse::<f64>().map_err(|e| format!("bad value {t:?}: {e}"))?,
    };
    if let Some(ts) = parts.next() {
        ts.parse::<i64>().map_err(|e| format!("bad timestamp {ts:?}: {e}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// Parse a textfile, asserting the format line by line: `# HELP name text` (only `\\` and `\n` escapes),
/// `# TYPE name gauge|counter|...` before the family's samples, each family's lines together, no sample
/// twice, a final newline.
#[track_caller]
fn parse_textfile(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "no final newline:\n{text}");
    let mut samples = Vec::new();
    let mut help = HashSet::new();
    let mut types = HashMap::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |what: String| format!("line {}: {what}: {line:?}\n{text}", n + 1);
        let family = if let Some(r) = line.strip_prefix("# HELP ") {
            let (name, doc) = metric_name(r).unwrap_or_else(|| panic!("{}", at("no name".into())));
            let doc = doc.strip_prefix(' ').unwrap_or_else(|| panic!("{}", at("no help text".into())));
            let mut chars = doc.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    assert!(matches!(chars.next(), Some('\\' | 'n')), "{}", at("bad escape in HELP".into()));
                }
            }
            assert!(help.insert(name.to_string()), "{}", at("second HELP".into()));
            name.to_string()
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            let (name, kind) = metric_name(r).unwrap_or_else(|| panic!("{}", at("no name".into())));
            let kind = kind.strip_prefix(' ').unwrap_or_default();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{}",
                at(format!("bad type {kind:?}"))
            );
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "{}", at("second TYPE".into()));
            assert!(!samples.iter().any(|s: &Sample| s.name == name), "{}", at("TYPE after samples".into()));
            name.to_string()
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{}", at("unexpected line".into()));
            let s = sample(line).unwrap_or_else(|e| panic!("{}", at(e)));
            assert!(types.contains_key(&s.name), "{}", at("sample without TYPE".into()));
            assert!(series.insert(format!("{}{:?}", s.name, s.labels)), "{}", at("duplicate series".into()));
            let name = s.name.clone();
            samples.push(s);
            name
        };
        if current.as_deref() != Some(family.as_str()) {
            assert!(!done.contains(&family), "{}", at("family lines not together".into()));
            if let Some(prev) = current.replace(family.clone()) {
                done.insert(prev);
            }
        }
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
        })
        .map(|s| s.value)
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn the_textfile_follows_the_exposition_format() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let mut maps = four_maps(s, &d);
    // A path that needs every label escape: a backslash, a double quote and a newline.
    let odd = d.write("we\"ird\\name\n.cf", &map_body(&s.ldap_url(), ""));
    maps.push(odd.to_str().unwrap().to_string());
    // TLS first, a standby second: the certificate's expiry (issue 13) goes through the same line checks.
    let tls = d.write("tls.cf", &map_body(&format!("{} {}", s.ldaps_url(), s.ldap_url()), ""));
    maps.push(tls.to_str().unwrap().to_string());
    let prom_dir = TempDir::new();
    let prom = prom_dir.join("ldap.prom");
    let r = run(&with_maps(&["--once", "--prometheus-textfile", prom.to_str().unwrap()], &maps), &[]);
    r.assert_code(2);
    assert!(r.stdout.starts_with("LDAP CRITICAL - "), "{}", r.stdout);
    let text = fs::read_to_string(&prom).unwrap();
    let samples = parse_textfile(&text);

    let up = |m: &str| value(&samples, "ldap_health_check_up", &[("map", m)]);
    let status = |m: &str| value(&samples, "ldap_health_check_map_status", &[("map", m)]);
    assert_eq!([up(&maps[0]), up(&maps[1]), up(&maps[2]), up(&maps[3])], [Some(1.0), Some(1.0), Some(0.0), Some(0.0)]);
    assert_eq!(
        [status(&maps[0]), status(&maps[1]), status(&maps[2]), status(&maps[3])],
        [Some(0.0), Some(1.0), Some(2.0), Some(3.0)]
    );
    assert_eq!(up(&maps[4]), Some(1.0), "the escaped map label does not read back as its path:\n{text}");
    let not_after = s.get("SERVER_NOT_AFTER").parse::<f64>().unwrap();
    let expiry = value(
        &samples,
        "ldap_health_check_cert_expiry_timestamp_seconds",
        &[("map", &maps[5]), ("server", &s.ldaps_url())],
    );
    assert_eq!(expiry, Some(not_after), "the fixture's certificate expiry:\n{text}");

    let url = s.ldap_url();
    let server_up = |m: &str, srv: &str| value(&samples, "ldap_health_check_server_up", &[("map", m), ("server", srv)]);
    let response =
        |m: &str, srv: &str| value(&samples, "ldap_health_check_response_seconds", &[("map", m), ("server", srv)]);
    assert_eq!(server_up(&maps[0], &url), Some(1.0));
    assert!(response(&maps[0], &url).is_some_and(|t| t > 0.0 && t < 5.0), "{text}");
    let failover = &samples.iter().find(|s| s.name == "ldap_health_check_server_up" && s.labels[0].1 == maps[1]);
    assert_eq!(failover.map(|s| s.value), Some(0.0), "{text}");
    assert_eq!(server_up(&maps[1], &url), Some(1.0));
    assert_eq!(server_up(&maps[2], &url), Some(0.0));
    assert_eq!(response(&maps[2], &url), None, "a failed server has no response time:\n{text}");

    assert_eq!(value(&samples, "ldap_health_check_exit_status", &[]), Some(2.0));
    assert!(value(&samples, "ldap_health_check_duration_seconds", &[]).is_some_and(|t| t > 0.0));
    let last_run = value(&samples, "ldap_health_check_last_run_timestamp_seconds", &[]).unwrap();
    assert!((now() - last_run).abs() < 60.0, "{text}");
    assert_eq!(value(&samples, "ldap_health_check_last_success_timestamp_seconds", &[]), None, "no success yet");
    for s in &samples {
        assert!(s.name.starts_with("ldap_health_check_"), "{}", s.name);
    }
}

#[test]
fn the_textfile_is_replaced_atomically_and_carries_the_last_success_over() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let ok = d.write("ok.cf", &map_body(&s.ldap_url(), ""));
    let bad = d.write("bad.cf", &map_body(&refused_url(), ""));
    let prom_dir = TempDir::new();
    let prom = prom_dir.join("ldap-health-check.prom");
    // Under a umask that would hide the file from node_exporter, which runs as another user.
    let once = |map: &Path| {
        let script = "umask 077; exec \"$@\"";
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script, "sh"]).arg(bin()).args(["--once", "-f"]).arg(map);
        cmd.env("LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE", &prom).env_remove("LDAP_HEALTH_CHECK_CONFFILE");
        run_command(&mut cmd, None, RUN_TIMEOUT)
    };

    once(&ok).assert_code(0);
    let first = parse_textfile(&fs::read_to_string(&prom).unwrap());
    let success = value(&first, "ldap_health_check_last_success_timestamp_seconds", &[]).expect("set when OK");
    let meta = fs::metadata(&prom).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);

    std::thread::sleep(Duration::from_millis(20));
    once(&bad).assert_code(2);
    let second = parse_textfile(&fs::read_to_string(&prom).unwrap());
    assert_eq!(value(&second, "ldap_health_check_last_success_timestamp_seconds", &[]), Some(success));
    assert!(value(&second, "ldap_health_check_last_run_timestamp_seconds", &[]).unwrap() > success);
    assert_eq!(value(&second, "ldap_health_check_exit_status", &[]), Some(2.0));
    // Replaced by a rename, not rewritten in place; no temporary file left behind.
    assert_ne!(fs::metadata(&prom).unwrap().ino(), meta.ino(), "the file was rewritten in place");
    let names: Vec<String> =
        fs::read_dir(prom_dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["ldap-health-check.prom"]);
}

#[test]
fn a_textfile_that_cannot_be_written_is_a_warning_and_keeps_the_verdict() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let ok = d.write("ok.cf", &map_body(&s.ldap_url(), ""));
    let ok = ok.to_str().unwrap();
    let baseline = run(&["--once", "-f", ok], &[]);
    baseline.assert_code(0);
    let no_dir = d.join("no-such-dir/ldap.prom");
    let a_dir = d.join("a-directory");
    fs::create_dir(&a_dir).unwrap();
    for target in [&no_dir, &a_dir] {
        let r = run(&["--once", "-f", ok, "--prometheus-textfile", target.to_str().unwrap()], &[]);
        r.assert_code(0);
        assert!(r.stdout.starts_with("LDAP OK - 1 map, 1 server in "), "{}", r.stdout);
        assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
        assert!(
            r.stderr.contains(&format!("--prometheus-textfile {}: cannot write: ", target.display())),
            "{}",
            r.stderr
        );
    }
    assert!(a_dir.is_dir() && fs::read_dir(&a_dir).unwrap().next().is_none());
    let left: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "{left:?}");
}

#[test]
fn the_textfile_path_can_come_from_the_environment_and_empty_means_none() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let ok = d.write("ok.cf", &map_body(&s.ldap_url(), ""));
    let ok = ok.to_str().unwrap();
    let prom = d.join("env.prom");
    let r = run(&["--once", "-f", ok], &[("LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE", prom.to_str().unwrap())]);
    r.assert_code(0);
    let samples = parse_textfile(&fs::read_to_string(&prom).unwrap());
    assert_eq!(value(&samples, "ldap_health_check_exit_status", &[]), Some(0.0));
    // `LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE=` in /etc/default/ldap-health-check: no textfile, no usage error
    // (which would be UNKNOWN, and under systemd would stop Postfix).
    let r = run(&["--once", "-f", ok], &[("LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE", "")]);
    r.assert_code(0);
    assert_eq!(r.stderr.matches("prometheus").count(), 0, "{}", r.stderr);
}
