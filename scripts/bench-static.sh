#!/bin/bash
# make bench-static: the dynamic release build (what the package ships) against a glibc static-pie build of the
# same source, side by side in one run, on a throwaway slapd:
#   a check (--once -f MAP: connect, bind, one base search), --version, /bin/true as the floor (hyperfine -N,
#   medians), peak RSS of a check (/usr/bin/time -f %M, median of BENCH_RSS_RUNS), file sizes.
#
#   scripts/bench-static.sh DYNAMIC STATIC     (make bench-static builds both)
#
# Prints a Markdown table. Leaves nothing running (trap). BENCH_RUNS (300), BENCH_RSS_RUNS (20).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
DYN=$1
STA=$2
RUNS=${BENCH_RUNS:-300}
RSS_RUNS=${BENCH_RSS_RUNS:-20}
for t in hyperfine /usr/bin/time python3; do command -v $t >/dev/null || { echo "missing $t (make bench installs it)" >&2; exit 1; }; done
mkdir -p target
WORK=$(mktemp -d "$PWD/target/bench-static.XXXXXX")
trap 'tests/fixtures/slapd.sh stop "$WORK/slapd" >/dev/null 2>&1 || :; rm -rf "$WORK"' EXIT INT TERM
tests/fixtures/slapd.sh start "$WORK/slapd" >/dev/null 2>&1
# shellcheck disable=SC1091
. "$WORK/slapd/env"
cat > "$WORK/map.cf" <<EOF
server_host = $LDAP_URL
search_base = ou=people,dc=example,dc=com
bind = yes
bind_dn = $SERVICE_DN
bind_pw = $SERVICE_PW
EOF
chmod 600 "$WORK/map.cf"
for b in "$DYN" "$STA"; do
    "$b" --once -f "$WORK/map.cf" >/dev/null || { echo "bench-static: $b --once failed" >&2; exit 1; }
done

hyperfine -N -w 20 -r "$RUNS" --export-json "$WORK/h.json" \
    -n "check dynamic" "$DYN --once -f $WORK/map.cf" \
    -n "check static" "$STA --once -f $WORK/map.cf" \
    -n "version dynamic" "$DYN --version" \
    -n "version static" "$STA --version" \
    -n "/bin/true" "/bin/true" >&2

rss() {  # median peak RSS in kB of RSS_RUNS checks
    local i
    for i in $(seq "$RSS_RUNS"); do
        /usr/bin/time -f %M "$1" --once -f "$WORK/map.cf" 2>&1 >/dev/null | tail -n 1
    done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
rss_dyn=$(rss "$DYN")
rss_sta=$(rss "$STA")

python3 - "$WORK/h.json" "$DYN" "$STA" "$rss_dyn" "$rss_sta" "$RUNS" <<'EOF'
import json, os, statistics, sys
h, dyn, sta, rd, rs, runs = sys.argv[1:]
r = {x["command"]: x for x in json.load(open(h))["results"]}
med = lambda n: statistics.median(r[n]["times"]) * 1000
print(f"| {runs} runs each, medians | dynamic (shipped) | static-pie (not shipped) |")
print("|---|---:|---:|")
print(f"| check (--once, bind + base search) | {med('check dynamic'):.2f} ms | {med('check static'):.2f} ms |")
print(f"| --version | {med('version dynamic'):.2f} ms | {med('version static'):.2f} ms |")
print(f"| /bin/true (floor) | {med('/bin/true'):.2f} ms | |")
print(f"| peak RSS of a check | {int(rd)/1024:.2f} MB | {int(rs)/1024:.2f} MB |")
print(f"| file size | {os.path.getsize(dyn)/1e6:.2f} MB | {os.path.getsize(sta)/1e6:.2f} MB |")
EOF
