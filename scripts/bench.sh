#!/bin/bash
# make bench: measure ldap-health-check against its peers, side by side in one run, on a throwaway slapd.
#
#   scripts/bench.sh [BIN]        (default target/release/ldap-health-check, built if missing)
#
# Measures (hyperfine -N, /usr/bin/time -f %M, /proc/PID/status):
#   1. bind as the service account + one base search, plain / STARTTLS / ldaps: our --once vs `ldapsearch`
#      and `check_ldap -3` (monitoring-plugins), median wall time and ratios;
#   2. peak RSS of each of those;
#   3. time to a verdict with a hung (SIGSTOPped) slapd in each transport, one deadline of DEADLINE s:
#      ours vs `check_ldap -t`, `ldapsearch` (nettimeout + LDAPTIMEOUT) and `postmap` (timeout = DEADLINE),
#      the last two bounded with timeout(1) because they may hang;
#   4. 1 vs 8 hung servers in one map;
#   5. loop-mode RSS over LOOP_CHECKS checks (--interval 1ms), plain and ldaps.
# Writes docs/benchmarks.md (Markdown) and prints it. Leaves nothing running (trap).
#
# Tunables (environment): BENCH_RUNS (200), BENCH_HUNG_RUNS (5), BENCH_RSS_RUNS (10),
# BENCH_LOOP_CHECKS (10000), BENCH_OUT (docs/benchmarks.md).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
ROOT=$PWD

BIN=${1:-target/release/ldap-health-check}
RUNS=${BENCH_RUNS:-200}
HUNG_RUNS=${BENCH_HUNG_RUNS:-5}
RSS_RUNS=${BENCH_RSS_RUNS:-10}
LOOP_CHECKS=${BENCH_LOOP_CHECKS:-10000}
OUT=${BENCH_OUT:-docs/benchmarks.md}
DEADLINE=1 # seconds: our -t, check_ldap -t, ldapsearch nettimeout/LDAPTIMEOUT, postmap `timeout`
BOUND=3    # seconds: timeout(1) bound for the peers that may hang
LOOP_BOUND=120
CHECK_LDAP=/usr/lib/nagios/plugins/check_ldap
BASE=ou=people,dc=example,dc=com
HUNG_SERVERS=8

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

for tool in hyperfine /usr/bin/time ldapsearch "$CHECK_LDAP" /usr/sbin/postmap slapd python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ] || die "$tool is missing: run 'make bench' (installs BENCH_DEPS)"
done

if [ ! -x "$BIN" ]; then
    say "building $BIN"
    cargo build --release --locked >&2
fi

mkdir -p target
WORK=$(mktemp -d "$ROOT/target/bench.XXXXXX")
SLAPDS=()
LOOP_PID=
CHILD=
cleanup() {
    local rc=$? d
    trap - EXIT INT TERM
    if [ -n "$CHILD" ]; then kill "$CHILD" 2>/dev/null || :; wait "$CHILD" 2>/dev/null || :; fi
    if [ -n "$LOOP_PID" ]; then kill "$LOOP_PID" 2>/dev/null || :; wait "$LOOP_PID" 2>/dev/null || :; fi
    for d in "${SLAPDS[@]}"; do tests/fixtures/slapd.sh stop "$d" >/dev/null 2>&1 || :; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Long runs go in the background and are waited for: `wait` returns at once when a signal comes (a foreground
# child would delay the trap until it ends, and hyperfine outlives a Ctrl-C).
run_bg() {
    "$@" &
    CHILD=$!
    wait "$CHILD"
    CHILD=
}

# A private copy: other builds may replace target/release while we measure.
OURS=$WORK/ldap-health-check
cp "$BIN" "$OURS"

# libldap: ignore /etc/ldap/ldap.conf and ~/.ldaprc, trust the fixture's CA (set below).
export LDAPCONF=/dev/null LDAPRC=/nonexistent-ldaprc
unset LDAPNOINIT LDAPTIMEOUT LDAPNETWORK_TIMEOUT || :

start_slapd() { # DIR [USERS]
    SLAPDS+=("$1")
    SLAPD_USERS=${2:-3000} tests/fixtures/slapd.sh start "$1" || die "cannot start slapd in $1"
}
envof() { sed -n "s/^$2=//p" "$1/env"; }

# Map files: bind as the service account, search base ou=people. $1 name, $2 server_host, $3 extra lines.
write_map() {
    {
        printf 'server_host = %s\nsearch_base = %s\nquery_filter = (mail=%%s)\nresult_attribute = mail\n' "$2" "$BASE"
        printf 'bind = yes\nbind_dn = %s\nbind_pw = %s\ntimeout = %s\n' "$SERVICE_DN" "$SERVICE_PW" "$DEADLINE"
        printf '%b' "${3:-}"
    } > "$WORK/$1"
    chmod 600 "$WORK/$1"
}

# Peers' command lines for one transport on slapd DIR: plain | starttls | ldaps.
ldapsearch_cmd() {
    local d=$1 t=$2 url flags=
    case $t in
        plain) url=$(envof "$d" LDAP_URL) ;;
        starttls) url=$(envof "$d" LDAP_URL); flags="-ZZ " ;;
        ldaps) url=$(envof "$d" LDAPS_URL) ;;
    esac
    echo "ldapsearch -x ${flags}-H $url -D $SERVICE_DN -w $SERVICE_PW -b $BASE -s base 1.1"
}
check_ldap_cmd() {
    local d=$1 t=$2 port flags=
    case $t in
        plain) port=$(envof "$d" LDAP_PORT) ;;
        starttls) port=$(envof "$d" LDAP_PORT); flags="-T " ;;
        ldaps) port=$(envof "$d" LDAPS_PORT); flags="-S " ;;
    esac
    echo "$CHECK_LDAP -3 ${flags}-H 127.0.0.1 -p $port -D $SERVICE_DN -P $SERVICE_PW -b $BASE"
}
# Our map for one transport on slapd DIR; prints its path.
our_map() {
    local d=$1 t=$2 name=$3 ca
    ca=$(envof "$d" CA_FILE)
    case $t in
        plain) write_map "$name" "$(envof "$d" LDAP_URL)" ;;
        starttls) write_map "$name" "$(envof "$d" LDAP_URL)" "start_tls = yes\ntls_ca_cert_file = $ca\ntls_require_cert = yes\n" ;;
        ldaps) write_map "$name" "$(envof "$d" LDAPS_URL)" "tls_ca_cert_file = $ca\ntls_require_cert = yes\n" ;;
        ldapi) write_map "$name" "$(envof "$d" LDAPI_URL)" "bind = sasl\nsasl_mechs = EXTERNAL\n" ;;
    esac
    echo "$WORK/$name"
}

expect_ok() { # command...: must exit 0 (the peers must really do the work)
    local out
    out=$("$@" 2>&1 >/dev/null) || die "sanity check failed: $*: $out"
}

# ------------------------------------------------------------------------------------------------------
say "starting the fixture slapd"
MAIN=$WORK/slapd
start_slapd "$MAIN"
SERVICE_DN=$(envof "$MAIN" SERVICE_DN)
SERVICE_PW=$(envof "$MAIN" SERVICE_PW)
export LDAPTLS_CACERT
LDAPTLS_CACERT=$(envof "$MAIN" CA_FILE)

TRANSPORTS=(plain starttls ldaps)
ARGS=()
for t in "${TRANSPORTS[@]}"; do
    m=$(our_map "$MAIN" "$t" "$t.cf")
    ours="$OURS --once -f $m"
    ls=$(ldapsearch_cmd "$MAIN" "$t")
    cl=$(check_ldap_cmd "$MAIN" "$t")
    # shellcheck disable=SC2086
    { expect_ok $ours; expect_ok $ls; expect_ok $cl; }
    ARGS+=(-n "ours/$t" "$ours" -n "ldapsearch/$t" "$ls" -n "check_ldap/$t" "$cl")
done

say "1/5 bind + base search, ${RUNS} runs each (hyperfine)"
run_bg hyperfine -N --warmup 10 --runs "$RUNS" --style none --export-json "$WORK/happy.json" "${ARGS[@]}" >/dev/null

say "2/5 peak RSS, ${RSS_RUNS} runs each (/usr/bin/time -f %M)"
: > "$WORK/rss.txt"
for ((i = 0; i < ${#ARGS[@]}; i += 3)); do
    name=${ARGS[i + 1]} cmd=${ARGS[i + 2]}
    for ((r = 0; r < RSS_RUNS; r++)); do
        # shellcheck disable=SC2086
        /usr/bin/time -f "$name %M" -a -o "$WORK/rss.txt" $cmd >/dev/null 2>&1 || die "$name failed"
    done
done

# ------------------------------------------------------------------------------------------------------
say "3/5 hung servers: starting $HUNG_SERVERS small slapds"
HUNG=()
for ((i = 1; i <= HUNG_SERVERS; i++)); do HUNG+=("$WORK/hung$i"); done
SLAPDS+=("${HUNG[@]}")
pids=()
for d in "${HUNG[@]}"; do
    SLAPD_USERS=20 tests/fixtures/slapd.sh start "$d" 2>/dev/null & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "cannot start the hung slapds"; done
H1=${HUNG[0]}

mkdir -p "$WORK/postfix"
printf 'compatibility_level = 3.6\nmeta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n' \
    > "$WORK/postfix/main.cf"
LDAPTLS_CACERT=$(envof "$H1" CA_FILE) # every fixture has its own CA

HFAST=() # ours and check_ldap: they end by the deadline, measured HUNG_RUNS times
HSLOW=() # ldapsearch and postmap: they may hang until the bound, measured once
for t in "${TRANSPORTS[@]}" ldapi; do
    m=$(our_map "$H1" "$t" "hung-$t.cf")
    expect_ok "$OURS" --once -f "$m"
    HFAST+=(-n "ours/$t" "$OURS --once -t $DEADLINE -f $m")
    [ "$t" = ldapi ] && continue
    HFAST+=(-n "check_ldap/$t" "$(check_ldap_cmd "$H1" "$t") -t $DEADLINE")
    ls=$(ldapsearch_cmd "$H1" "$t")
    HSLOW+=(-n "ldapsearch/$t" "env LDAPTIMEOUT=$DEADLINE timeout -s KILL $BOUND ${ls/ldapsearch /ldapsearch -o nettimeout=$DEADLINE }")
    expect_ok /usr/sbin/postmap -c "$WORK/postfix" -q user0001@example.com "ldap:$m"
    HSLOW+=(-n "postmap/$t" "timeout -s KILL $BOUND /usr/sbin/postmap -c $WORK/postfix -q user0001@example.com ldap:$m")
done
hosts=
for d in "${HUNG[@]}"; do hosts+="$(envof "$d" LDAP_URL) "; done
write_map hung-1.cf "$(envof "$H1" LDAP_URL)"
write_map "hung-$HUNG_SERVERS.cf" "$hosts"
expect_ok "$OURS" --once -f "$WORK/hung-$HUNG_SERVERS.cf"
HMANY=(-n "ours/1 hung" "$OURS --once -t $DEADLINE -f $WORK/hung-1.cf"
    -n "ours/$HUNG_SERVERS hung" "$OURS --once -t $DEADLINE -f $WORK/hung-$HUNG_SERVERS.cf")

for d in "${HUNG[@]}"; do kill -STOP "$(envof "$d" SLAPD_PID)"; done
say "3/5 time to verdict, hung server, deadline ${DEADLINE} s (peers that hang are killed at ${BOUND} s)"
run_bg hyperfine -N -i --runs "$HUNG_RUNS" --style none --export-json "$WORK/hung.json" "${HFAST[@]}" >/dev/null 2>&1
run_bg hyperfine -N -i --runs 1 --style none --export-json "$WORK/hung-peers.json" "${HSLOW[@]}" >/dev/null 2>&1
say "4/5 1 vs $HUNG_SERVERS hung servers in one map"
run_bg hyperfine -N -i --runs "$HUNG_RUNS" --style none --export-json "$WORK/hung-n.json" "${HMANY[@]}" >/dev/null 2>&1
for d in "${HUNG[@]}"; do tests/fixtures/slapd.sh stop "$d" >/dev/null 2>&1 || :; done

# ------------------------------------------------------------------------------------------------------
# Loop mode: --debug prints one `DEBUG: LDAP search success` line per successful check.
LDAPTLS_CACERT=$(envof "$MAIN" CA_FILE)
vm() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
loop_rss() { # transport
    local t=$1 log=$WORK/loop-$1.out n=0 t0=$SECONDS first='' warm='' half='' end='' hwm=''
    "$OURS" --debug --interval 1ms -t 5 -f "$WORK/$t.cf" > "$log" 2>&1 &
    LOOP_PID=$!
    while :; do
        kill -0 "$LOOP_PID" 2>/dev/null || die "loop mode ($t) stopped after $n checks: $(tail -n 3 "$log")"
        n=$(grep -c '^DEBUG: LDAP search success' "$log" || :)
        if [ -z "$first" ] && [ "$n" -ge 1 ]; then first="$n $(vm "$LOOP_PID" VmRSS)"; fi
        if [ -z "$warm" ] && [ "$n" -ge 1000 ]; then warm="$n $(vm "$LOOP_PID" VmRSS)"; fi
        if [ -z "$half" ] && [ "$n" -ge $((LOOP_CHECKS / 2)) ]; then
            half="$n $(vm "$LOOP_PID" VmRSS) $(vm "$LOOP_PID" RssAnon)"
        fi
        if [ "$n" -ge "$LOOP_CHECKS" ]; then
            end="$n $(vm "$LOOP_PID" VmRSS) $(vm "$LOOP_PID" RssAnon)" hwm=$(vm "$LOOP_PID" VmHWM)
            break
        fi
        [ $((SECONDS - t0)) -lt $LOOP_BOUND ] || die "loop mode ($t): only $n checks in ${LOOP_BOUND} s"
        sleep 0.05
    done
    kill "$LOOP_PID"
    wait "$LOOP_PID" 2>/dev/null || :
    LOOP_PID=
    echo "$t $first $warm $half $end $hwm $((SECONDS - t0))" >> "$WORK/loop.txt"
}
: > "$WORK/loop.txt"
for t in plain ldaps; do
    say "5/5 loop mode, $t, $LOOP_CHECKS checks"
    loop_rss "$t"
done

# ------------------------------------------------------------------------------------------------------
# Versions and machine.
first_line() { "$@" 2>&1 | sed -n '1p'; }
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine=$(uname -srm), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)"
    echo "ours=$("$OURS" --version) (release profile; $(stat -c %s "$OURS") bytes)"
    echo "rustc=$(first_line rustc --version)"
    echo "slapd=$(slapd -VV 2>&1 | sed -n 's/.*slapd \([0-9.]*\).*/\1/p' | sed -n 1p)"
    echo "ldapsearch=$(ldapsearch -VV 2>&1 | sed -n 's/.*ldapsearch \([0-9.]*\).*/\1/p' | sed -n 1p)"
    echo "libldap=$(dpkg-query -W -f '${Version}' libldap-2.5-0 2>/dev/null || echo '?')"
    echo "check_ldap=$(first_line "$CHECK_LDAP" -V)"
    echo "postmap=Postfix $(/usr/sbin/postconf -c "$WORK/postfix" -h mail_version 2>/dev/null || echo '?')"
    echo "hyperfine=$(hyperfine --version)"
} > "$WORK/meta.txt"

mkdir -p "$(dirname "$OUT")"
scripts/bench-report.py "$WORK" "$OUT" "$DEADLINE" "$BOUND" "$HUNG_SERVERS" "$RUNS" "$HUNG_RUNS" "$RSS_RUNS"
cat "$OUT"
