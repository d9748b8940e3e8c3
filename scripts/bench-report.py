#!/usr/bin/python3
"""docs/benchmarks.md from the raw results of scripts/bench.sh (its work directory); run by bench.sh only.

  bench-report.py WORK OUT DEADLINE BOUND HUNG_SERVERS RUNS HUNG_RUNS RSS_RUNS
"""
import json, statistics, sys

work, out, deadline, bound, nhung, runs, hung_runs, rss_runs = sys.argv[1:]
deadline, bound = float(deadline), float(bound)


def results(name):
    with open(f"{work}/{name}.json") as f:
        return {r["command"]: r for r in json.load(f)["results"]}


happy = results("happy")
hung = results("hung") | results("hung-peers")
hung_n = results("hung-n")
meta = dict(line.rstrip("\n").split("=", 1) for line in open(f"{work}/meta.txt"))
rss = {}
for line in open(f"{work}/rss.txt"):
    name, kb = line.split()
    rss.setdefault(name, []).append(int(kb))
MB = 1024 / 1e6  # /usr/bin/time reports KiB; MB here = 10^6 bytes


def ms(r):
    return r["median"] * 1000


def yes(ok):
    return "**met**" if ok else "**NOT met**"


lines = []
w = lines.append
w("# Benchmarks")
w("")
w("Written by `make bench` (scripts/bench.sh); do not edit by hand. Every figure comes from the same run, side by")
w("side against a throwaway slapd on loopback (tests/fixtures/slapd.sh, 3000 users). Medians from hyperfine `-N`")
w(f"({runs} runs after 10 warm-ups for the fast cases, {hung_runs} for ours with a hung server, 1 for the peers")
w(f"that hang); peak RSS is the median of {rss_runs} runs of `/usr/bin/time -f %M` (1 MB = 10^6 bytes). The machine")
w("is shared and noisy (+-30 % between runs): compare the ratios, not the absolute times.")
w("")
w(f"- Date: {meta['date']}")
w(f"- Machine: {meta['machine']}")
w(f"- ldap-health-check: {meta['ours']}; {meta['rustc']}")
w(f"- Peers: ldapsearch {meta['ldapsearch']} (libldap {meta['libldap']}), {meta['check_ldap']}, {meta['postmap']};"
  f" slapd {meta['slapd']}; {meta['hyperfine']}")
w("")
w("## Bind as the service account + one base search")
w("")
w("Ours: `ldap-health-check --once -f MAP` (tls_require_cert = yes with the CA file for TLS). ldapsearch:")
w("`-x [-ZZ] -H URL -D DN -w PW -b BASE -s base 1.1`. check_ldap: `-3 [-T|-S] -H 127.0.0.1 -p PORT -D DN -P PW -b BASE`.")
w("")
w("| transport | ours | ldapsearch | check_ldap | ours/ldapsearch | ours/check_ldap | goal | |")
w("|---|---:|---:|---:|---:|---:|---|---|")
goals = {"plain": 0.30, "starttls": 0.8, "ldaps": 0.8}
summary = []
for t, label in [("plain", "plain"), ("starttls", "STARTTLS"), ("ldaps", "ldaps")]:
    o, l, c = happy[f"ours/{t}"], happy[f"ldapsearch/{t}"], happy[f"check_ldap/{t}"]
    ratio = ms(o) / ms(l)
    ok = ratio <= goals[t]
    summary.append((f"{label}: <= {goals[t]:.2f} x ldapsearch", f"{ratio:.2f} x", ok))
    w(f"| {label} | {ms(o):.2f} ms | {ms(l):.2f} ms | {ms(c):.2f} ms | {ratio:.2f} | {ms(o) / ms(c):.2f} |"
      f" <= {goals[t]:.2f} x ldapsearch | {yes(ok)} |")
w("")
w("## Peak RSS (same commands)")
w("")
w("| transport | ours | ldapsearch | check_ldap | ours/ldapsearch | goal | |")
w("|---|---:|---:|---:|---:|---|---|")
for t, label in [("plain", "plain"), ("starttls", "STARTTLS"), ("ldaps", "ldaps")]:
    o, l, c = (statistics.median(rss[f"{p}/{t}"]) * MB for p in ("ours", "ldapsearch", "check_ldap"))
    goal, mark = "", ""
    if t == "plain":
        ok = o <= 4.5
        goal, mark = "<= 4.5 MB", yes(ok)
        summary.append(("peak RSS on plain <= 4.5 MB", f"{o:.2f} MB", ok))
    w(f"| {label} | {o:.2f} MB | {l:.2f} MB | {c:.2f} MB | {o / l:.2f} | {goal} | {mark} |")
w("")
w(f"## Time to a verdict with a hung server (SIGSTOPped slapd), deadline {deadline:g} s")
w("")
w(f"Ours: `--once -t {deadline:g}`. check_ldap: `-t {deadline:g}`. ldapsearch: `-o nettimeout={deadline:g}` and")
w(f"`LDAPTIMEOUT={deadline:g}`. postmap: `timeout = {deadline:g}` in the map. The last two run under")
w(f"`timeout -s KILL {bound:g}`: \"hangs\" means they were killed at that bound. Goal: ours within deadline + 50 ms.")
w("")
w("| transport | ours | check_ldap | ldapsearch | postmap | goal | |")
w("|---|---:|---:|---:|---:|---|---|")


def peer(name):
    r = hung.get(name)
    if r is None:
        return "-"
    if 137 in (r.get("exit_codes") or []) or r["median"] >= bound - 0.01:
        return f"hangs (killed at {bound:g} s)"
    return f"{r['median']:.3f} s"


limit = deadline + 0.050
for t, label in [("plain", "plain"), ("starttls", "STARTTLS"), ("ldaps", "ldaps"), ("ldapi", "ldapi (EXTERNAL)")]:
    o = hung[f"ours/{t}"]
    ok = o["max"] <= limit
    summary.append((f"hung {label}: verdict <= {limit:.3f} s", f"{o['median']:.3f} s (max {o['max']:.3f} s)", ok))
    w(f"| {label} | {o['median']:.3f} s (max {o['max']:.3f}) | {peer(f'check_ldap/{t}')} | {peer(f'ldapsearch/{t}')} |"
      f" {peer(f'postmap/{t}')} | <= {limit:.3f} s | {yes(ok)} |")
w("")
w(f"## 1 vs {nhung} hung servers in one map (plain, bind stalls), deadline {deadline:g} s")
w("")
one, many = hung_n["ours/1 hung"], hung_n[f"ours/{nhung} hung"]
ratio = many["median"] / one["median"]
ok = 0.9 <= ratio <= 1.1
summary.append((f"{nhung} hung servers take as long as 1 (+-10 %)", f"{ratio:.3f} x", ok))
w(f"| 1 server | {nhung} servers | ratio | goal | |")
w("|---:|---:|---:|---|---|")
w(f"| {one['median']:.3f} s | {many['median']:.3f} s | {ratio:.3f} | 0.9-1.1 | {yes(ok)} |")
w("")
w("## Loop mode: RSS over many checks (`--interval 1ms --debug`)")
w("")
w("VmRSS from /proc/PID/status after the first check, after 1,000, half-way and at the end; VmHWM is the peak.")
w("RssAnon is the anonymous part (heap, stacks): where a leak would show. VmRSS also counts the pages of the")
w("binary and libc that the process has touched, which may grow by a page or two when a rare code path first")
w("runs. Goal: no growth of RssAnon over the second half of the checks.")
w("")
w("| transport | checks | seconds | VmRSS after check 1 | after 1,000 | half-way | end | peak |"
  " RssAnon half-way | end | growth | |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for line in open(f"{work}/loop.txt"):
    t, n1, r1, n2, r2, n3, r3, a3, n4, r4, a4, hwm, secs = line.split()
    growth = int(a4) - int(a3)
    ok = growth <= 0
    summary.append((f"loop mode {t}: no growth (RssAnon)",
                    f"{growth:+d} kB over checks {int(n3):,}-{int(n4):,} (VmRSS {int(r4) - int(r3):+d} kB)", ok))
    w(f"| {t} | {int(n4):,} | {secs} | {int(r1)} kB | {int(r2)} kB | {int(r3)} kB | {int(r4)} kB | {int(hwm)} kB |"
      f" {int(a3)} kB | {int(a4)} kB | {growth:+d} kB | {yes(ok)} |")
w("")
w("## Goals")
w("")
w("| goal | measured | |")
w("|---|---|---|")
for goal, measured, ok in summary:
    w(f"| {goal} | {measured} | {yes(ok)} |")
w("")
with open(out, "w") as f:
    f.write("\n".join(lines))
