#!/bin/bash
# make bench: measure ldap-health-check against its peers, side by side in one run, on a throwaway slapd.
#
#   scripts/bench.sh [BIN]        (default target/release/ldap-health-check, built if missing)
#
# Measures (hyperfine -N, /usr/bin/time -f %M, /proc/PID/status, slapd's cn=monitor, a real Postfix):
#   1. bind as the service account + one search, plain / STARTTLS / ldaps: our --once (as installed: the
#      presence check; and with `health_check_presence = no`: one base search, the peers' work) vs
#      `ldapsearch` and `check_ldap -3` (monitoring-plugins), median wall time and ratios;
#   2. peak RSS of each of those;
#   3. time to a verdict with a hung (SIGSTOPped) slapd in each transport, one deadline of DEADLINE s:
#      ours vs `check_ldap -t`, `ldapsearch` (nettimeout + LDAPTIMEOUT) and `postmap` (timeout = DEADLINE),
#      the last two bounded with timeout(1) because they may hang;
#   4. 1 vs 8 hung servers in one map;
#   5. loop-mode RSS over LOOP_CHECKS checks (--interval 1ms), plain and ldaps;
#   6. the presence check (issue 13) and a canary: --once with and without each;
#   7. a map with 2 servers (replica freshness: contextCSN read on both; their certificates with ldaps) vs 1;
#   8. LDAP operations per --once for the maps of 6 and 7, counted at slapd (cn=monitor);
#   9. with BENCH_BASELINE=BIN...: older builds against this one on the maps of 6 and 7, and in 1 (optional);
#  10. the policy service (issue 12) in a private Postfix (tests/policy/postfix-instance.sh, spawn(8)): the
#      RCPT round trip of a valid recipient without a policy, with `--policy` (no cache, the default) and with
#      `--policy-cache 1s`, directory up and down (slapd stopped: Postfix answers 451); the policy's start-up; the
#      LDAP operations per RCPT at slapd.
# Comparisons are interleaved (the machine is shared): 1 in rounds of hyperfine, 6, 7 and 9 one run of each
# command in turn (scripts/bench-interleave.py: wall and CPU time of every run), 10 in rounds of SMTP sessions;
# the report gives medians, percentiles, ratios. Writes docs/benchmarks.md (Markdown, by
# scripts/bench-report.py) and prints it. Leaves nothing running (trap).
#
# Tunables (environment): BENCH_RUNS (200: runs of each command in 1, in BENCH_ROUNDS rounds), BENCH_ROUNDS (10),
# BENCH_INTERLEAVED_RUNS (300: runs of each command in 6, 7 and 9), BENCH_HUNG_RUNS (5), BENCH_RSS_RUNS (10),
# BENCH_LOOP_CHECKS (10000), BENCH_OPS_CHECKS (20: --once runs per count in 8), BENCH_POLICY_ROUNDS (80: SMTP
# sessions of 50 RCPTs per variant, one of each in turn), BENCH_KEEP (1: keep the raw results, target/bench.*),
# BENCH_BASELINE (older builds, space-separated, each PATH or LABEL=PATH; empty: no section 9), BENCH_OUT
# (docs/benchmarks.md). The policy's Postfix instances and binary copies live in a mktemp -d under $TMPDIR
# (default /tmp): spawn(8) runs the policy as nobody, who must reach them.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
ROOT=$PWD

BIN=${1:-target/release/ldap-health-check}
RUNS=${BENCH_RUNS:-200}
ROUNDS=${BENCH_ROUNDS:-10}
INTERLEAVED_RUNS=${BENCH_INTERLEAVED_RUNS:-300}
OPS_CHECKS=${BENCH_OPS_CHECKS:-20}
POLICY_ROUNDS=${BENCH_POLICY_ROUNDS:-80}
read -r -a BASELINES <<< "${BENCH_BASELINE:-}"
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
# Both servers of the 2-server maps hold this contextCSN (equal data: what a healthy pair looks like).
CONTEXT_CSN='20261201000000.000000Z#000000#000#000000'
POLICY_USER=nobody # spawn(8) runs the policy as this user (it refuses root and postfix)

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

for tool in hyperfine /usr/bin/time ldapsearch ldapmodify "$CHECK_LDAP" /usr/sbin/postmap /usr/sbin/postfix slapd \
    python3 timeout runuser; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ] || die "$tool is missing: run 'make bench' (installs BENCH_DEPS)"
done

if [ ! -x "$BIN" ]; then
    say "building $BIN"
    cargo build --release --locked >&2
fi

mkdir -p target
WORK=$(mktemp -d "$ROOT/target/bench.XXXXXX")
# The policy runs as $POLICY_USER: its binary and the Postfix instances live where that user can reach them
# (the checkout may be under a private home).
PWORK=$(mktemp -d "${TMPDIR:-/tmp}/lhc-bench.XXXXXX")
chmod 0755 "$PWORK"
SLAPDS=()
POSTFIXES=()
LOOP_PID=
CHILD=
cleanup() {
    local rc=$? d
    trap - EXIT INT TERM
    if [ -n "$CHILD" ]; then kill "$CHILD" 2>/dev/null || :; wait "$CHILD" 2>/dev/null || :; fi
    if [ -n "$LOOP_PID" ]; then kill "$LOOP_PID" 2>/dev/null || :; wait "$LOOP_PID" 2>/dev/null || :; fi
    for d in "${POSTFIXES[@]}"; do tests/policy/postfix-instance.sh stop "$d" >/dev/null 2>&1 || :; done
    for d in "${SLAPDS[@]}"; do tests/fixtures/slapd.sh stop "$d" >/dev/null 2>&1 || :; done
    if [ "${BENCH_KEEP:-}" = 1 ]; then say "raw results kept in $WORK"; else rm -rf "$WORK"; fi
    rm -rf "$PWORK"
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
# Older builds (BENCH_BASELINE: PATH or LABEL=PATH each), copied too: "this" first, then theirs.
LABELS=(this)
BUILDS=("$OURS")
echo "this $OURS $("$OURS" --version)" > "$WORK/baselines.txt"
for b in "${BASELINES[@]}"; do
    case $b in *=*) label=${b%%=*} b=${b#*=} ;; *) label=build${#BUILDS[@]} ;; esac
    [ -x "$b" ] || die "BENCH_BASELINE: $b is not an executable"
    cp "$b" "$WORK/build${#BUILDS[@]}"
    LABELS+=("$label")
    BUILDS+=("$WORK/build${#BUILDS[@]}")
    echo "$label $b $("$b" --version)" >> "$WORK/baselines.txt"
done

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
# Our map for one transport on slapd DIR (or the slapds "DIR DIR2": one server_host entry each); prints its
# path. $4: more lines (printf %b).
our_map() {
    local dirs=$1 t=$2 name=$3 more=${4:-} ca d hosts=''
    ca=$(envof "${dirs%% *}" CA_FILE)
    for d in $dirs; do
        case $t in
            plain | starttls) hosts+=" $(envof "$d" LDAP_URL)" ;;
            ldaps) hosts+=" $(envof "$d" LDAPS_URL)" ;;
            ldapi) hosts+=" $(envof "$d" LDAPI_URL)" ;;
        esac
    done
    case $t in
        plain) write_map "$name" "${hosts# }" "$more" ;;
        starttls) write_map "$name" "${hosts# }" "start_tls = yes\ntls_ca_cert_file = $ca\ntls_require_cert = yes\n$more" ;;
        ldaps) write_map "$name" "${hosts# }" "tls_ca_cert_file = $ca\ntls_require_cert = yes\n$more" ;;
        ldapi) write_map "$name" "${hosts# }" "bind = sasl\nsasl_mechs = EXTERNAL\n$more" ;;
    esac
    echo "$WORK/$name"
}
NO_PRESENCE='health_check_presence = no\n'
CANARY='health_check_key = user0001@example.com\n'

expect_ok() { # command...: must exit 0 (the peers must really do the work)
    local out
    out=$("$@" 2>&1 >/dev/null) || die "sanity check failed: $*: $out"
}

# Interleaved rounds: `rounds NAME RUNS -n name cmd -n name cmd ...` runs hyperfine ROUNDS times, each
# command RUNS times per round (after 3 warm-ups), so that a busy spell of the shared machine hits every
# command alike; the report pools the runs of NAME.r*.json.
rounds() {
    local name=$1 runs=$2 r
    shift 2
    for ((r = 1; r <= ROUNDS; r++)); do
        run_bg hyperfine -N --warmup 3 --runs "$runs" --style none --export-json "$WORK/$name.r$r.json" "$@" >/dev/null
    done
}
# Finer: `interleave NAME -n name cmd ...`: one run of each command in turn, INTERLEAVED_RUNS times, wall and CPU
# time of every run (NAME.json).
interleave() {
    local name=$1
    shift
    run_bg scripts/bench-interleave.py "$WORK/$name.json" "$INTERLEAVED_RUNS" "$@"
}

# slapd's operation counters (cn=monitor, a static backend of Debian's slapd): the monitor database, readable
# by root over ldapi only, added to the running fixture in DIR.
enable_monitor() { # DIR
    ldapmodify -Q -Y EXTERNAL -H "$(envof "$1" LDAPI_URL)" >/dev/null <<EOF || die "cannot add cn=monitor to $1"
dn: olcDatabase=monitor,cn=config
changetype: add
objectClass: olcDatabaseConfig
olcDatabase: monitor
olcAccess: to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth read by * none
EOF
}
# The operations the slapds DIR... have completed, summed, on one line: bind=N search=N
# abandon=N unbind=N extended=N ... connections=N. (Each reading is itself 1 connection, bind, search and
# unbind: the report subtracts the "idle" count.)
op_counts() { # DIR...
    local d
    for d in "$@"; do
        ldapsearch -LLL -Q -o ldif-wrap=no -Y EXTERNAL -H "$(envof "$d" LDAPI_URL)" -b cn=Monitor \
            '(|(objectClass=monitorOperation)(cn=Total))' monitorOpCompleted monitorCounter ||
            die "cannot read cn=monitor of $d"
    done | awk '
        /^dn: / { dn = substr($0, 5); split(dn, rdn, ","); sub(/^cn=/, "", rdn[1]); next }
        /^monitorOpCompleted: / { n[tolower(rdn[1])] += $2 }
        /^monitorCounter: / && dn == "cn=Total,cn=Connections,cn=Monitor" { n["connections"] += $2 }
        END { for (k in n) printf "%s=%d ", k, n[k]; print "" }'
}
# count_ops LABEL UNITS DIR... -- COMMAND...: run COMMAND once (it makes UNITS checks or RCPTs) and record the
# operations it made at the slapds DIR... in ops.txt: "LABEL UNITS SECONDS | before | after".
count_ops() {
    local label=$1 units=$2 dirs=() before after t0 t1
    shift 2
    while [ "$1" != -- ]; do dirs+=("$1"); shift; done
    shift
    before=$(op_counts "${dirs[@]}")
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1 || die "$label: $* failed"
    t1=$EPOCHREALTIME
    after=$(op_counts "${dirs[@]}")
    echo "$label $units $(awk "BEGIN { print $t1 - $t0 }") | $before| $after" >> "$WORK/ops.txt"
}
repeat() { # N COMMAND...: run COMMAND N times; fail at the first failure
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do "$@" || return 1; done
}

# ------------------------------------------------------------------------------------------------------
say "starting the fixture slapd"
MAIN=$WORK/slapd
SLAPD_CONTEXT_CSN=$CONTEXT_CSN start_slapd "$MAIN"
SERVICE_DN=$(envof "$MAIN" SERVICE_DN)
SERVICE_PW=$(envof "$MAIN" SERVICE_PW)
export LDAPTLS_CACERT
LDAPTLS_CACERT=$(envof "$MAIN" CA_FILE)

TRANSPORTS=(plain starttls ldaps)
ARGS=()
for t in "${TRANSPORTS[@]}"; do
    ours="$OURS --once -f $(our_map "$MAIN" "$t" "$t.cf")"
    base="$OURS --once -f $(our_map "$MAIN" "$t" "$t-nopresence.cf" "$NO_PRESENCE")"
    ls=$(ldapsearch_cmd "$MAIN" "$t")
    cl=$(check_ldap_cmd "$MAIN" "$t")
    # shellcheck disable=SC2086
    { expect_ok $ours; expect_ok $base; expect_ok $ls; expect_ok $cl; }
    ARGS+=(-n "ours/$t" "$ours" -n "ours-nopresence/$t" "$base" -n "ldapsearch/$t" "$ls" -n "check_ldap/$t" "$cl")
    for ((k = 1; k < ${#BUILDS[@]}; k++)); do # the older builds on the map without the presence check
        expect_ok "${BUILDS[k]}" --once -f "$WORK/$t-nopresence.cf"
        ARGS+=(-n "${LABELS[k]}/$t" "${BUILDS[k]} --once -f $WORK/$t-nopresence.cf")
    done
done

say "1/10 bind + one search, ${RUNS} runs each in $ROUNDS rounds (hyperfine)"
rounds happy $(((RUNS + ROUNDS - 1) / ROUNDS)) "${ARGS[@]}"

say "2/10 peak RSS, ${RSS_RUNS} runs each (/usr/bin/time -f %M)"
: > "$WORK/rss.txt"
for ((i = 0; i < ${#ARGS[@]}; i += 3)); do
    name=${ARGS[i + 1]} cmd=${ARGS[i + 2]}
    for ((r = 0; r < RSS_RUNS; r++)); do
        # shellcheck disable=SC2086
        /usr/bin/time -f "$name %M" -a -o "$WORK/rss.txt" $cmd >/dev/null 2>&1 || die "$name failed"
    done
done

# ------------------------------------------------------------------------------------------------------
say "3/10 hung servers: starting $HUNG_SERVERS small slapds"
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
say "3/10 time to verdict, hung server, deadline ${DEADLINE} s (peers that hang are killed at ${BOUND} s)"
run_bg hyperfine -N -i --runs "$HUNG_RUNS" --style none --export-json "$WORK/hung.json" "${HFAST[@]}" >/dev/null 2>&1
run_bg hyperfine -N -i --runs 1 --style none --export-json "$WORK/hung-peers.json" "${HSLOW[@]}" >/dev/null 2>&1
say "4/10 1 vs $HUNG_SERVERS hung servers in one map"
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
    say "5/10 loop mode, $t, $LOOP_CHECKS checks"
    loop_rss "$t"
done

# ------------------------------------------------------------------------------------------------------
# 6. What the presence check (issue 13) and a canary add to a --once: the same map with and without each.
LDAPTLS_CACERT=$(envof "$MAIN" CA_FILE)
CANARY_MAP=$(our_map "$MAIN" plain plain-canary.cf "$CANARY")
CANARY_ONLY_MAP=$(our_map "$MAIN" plain plain-nopresence-canary.cf "$NO_PRESENCE$CANARY")
ONCE=( # name map: the --once commands of 6, 7 and 8 (and 9 with baselines)
    "plain/presence" "$WORK/plain.cf"
    "plain/no presence" "$WORK/plain-nopresence.cf"
    "plain/presence + canary" "$CANARY_MAP"
    "plain/no presence + canary" "$CANARY_ONLY_MAP"
    "ldaps/presence" "$WORK/ldaps.cf"
    "ldaps/no presence" "$WORK/ldaps-nopresence.cf"
)
P6=(-n "floor: /bin/true" /bin/true) # what starting any process costs on this machine
for ((i = 0; i < ${#ONCE[@]}; i += 2)); do
    expect_ok "$OURS" --once -f "${ONCE[i + 1]}"
    P6+=(-n "${ONCE[i]}" "$OURS --once -f ${ONCE[i + 1]}")
done
say "6/10 presence check and canary, $INTERLEAVED_RUNS runs each, interleaved"
interleave presence "${P6[@]}"

# ------------------------------------------------------------------------------------------------------
# 7. Maps with 2 servers: a second fixture slapd with the same CA and the same contextCSN (a healthy pair);
# the check reads both servers' contextCSN (and, with ldaps, both certificates) where 1 server needs neither.
say "7/10 starting a second slapd (the standby of the 2-server maps)"
REPL=$WORK/slapd2
SLAPD_CONTEXT_CSN=$CONTEXT_CSN SLAPD_CA_FROM=$MAIN start_slapd "$REPL"
ONCE+=(
    "plain/2 servers" "$(our_map "$MAIN $REPL" plain plain-2.cf)"
    "ldaps/2 servers" "$(our_map "$MAIN $REPL" ldaps ldaps-2.cf)"
    "plain/2 servers, no presence" "$(our_map "$MAIN $REPL" plain plain-2-nopresence.cf "$NO_PRESENCE")"
)
for m in "$WORK/plain-2.cf" "$WORK/ldaps-2.cf"; do
    # Both servers answered and their contextCSN were compared: what this section is meant to cost.
    out=$("$OURS" --once -v -f "$m" 2>&1) || die "$m: $out"
    [ "$(grep -c 'behind the freshest server' <<< "$out")" -eq 2 ] || die "$m: contextCSN not read on both: $out"
done
P7=()
for name in "plain/presence" "plain/2 servers" "ldaps/presence" "ldaps/2 servers"; do
    for ((i = 0; i < ${#ONCE[@]}; i += 2)); do
        [ "${ONCE[i]}" = "$name" ] && P7+=(-n "$name" "$OURS --once -f ${ONCE[i + 1]}")
    done
done
say "7/10 1 vs 2 servers, $INTERLEAVED_RUNS runs each, interleaved"
interleave servers "${P7[@]}"

# ------------------------------------------------------------------------------------------------------
# 8. LDAP operations per --once, counted at both slapds; ldapsearch (bind + base search) for reference.
say "8/10 LDAP operations per check (cn=monitor), $OPS_CHECKS checks each"
enable_monitor "$MAIN"
enable_monitor "$REPL"
: > "$WORK/ops.txt"
count_ops idle 1 "$MAIN" "$REPL" -- true
for ((i = 0; i < ${#ONCE[@]}; i += 2)); do
    count_ops "once:${ONCE[i]// /_}" "$OPS_CHECKS" "$MAIN" "$REPL" -- \
        repeat "$OPS_CHECKS" "$OURS" --once -f "${ONCE[i + 1]}"
done
# shellcheck disable=SC2046 # the command line's words
count_ops "once:ldapsearch/plain" "$OPS_CHECKS" "$MAIN" "$REPL" -- \
    repeat "$OPS_CHECKS" $(ldapsearch_cmd "$MAIN" plain)

# ------------------------------------------------------------------------------------------------------
# 9. Optional: older builds (BENCH_BASELINE) against this one, on the maps of 6 and 7, interleaved.
if [ ${#BUILDS[@]} -gt 1 ]; then
    P9=()
    for ((k = 0; k < ${#BUILDS[@]}; k++)); do
        for ((i = 0; i < ${#ONCE[@]}; i += 2)); do
            case ${ONCE[i]} in *canary*) continue ;; esac
            expect_ok "${BUILDS[k]}" --once -f "${ONCE[i + 1]}"
            P9+=(-n "${LABELS[k]} ${ONCE[i]}" "${BUILDS[k]} --once -f ${ONCE[i + 1]}")
        done
    done
    say "9/10 this build vs ${#BASELINES[@]} older one(s), $INTERLEAVED_RUNS runs each, interleaved"
    interleave baseline "${P9[@]}"
fi

# ------------------------------------------------------------------------------------------------------
# 10. The policy service in a real Postfix: three private instances on the same slapd, the same maps (four
# recipient maps, each with a canary), differing only in smtpd_recipient_restrictions: none, the policy with
# no cache (the default), the policy with --policy-cache 1s. The RCPT round trip of valid recipients, in rounds
# over the three (the order rotating), directory up, then down.
# One copy of the binary per variant, so that each variant's policy processes can be told apart (their CPU time).
POLICY_BIN=$PWORK/ldap-health-check
for b in "$POLICY_BIN" "$PWORK/policy-cache0" "$PWORK/policy-cache"; do install -m 0755 "$OURS" "$b"; done
runuser -u "$POLICY_USER" -- test -x "$POLICY_BIN" || die "$POLICY_USER cannot run $POLICY_BIN"
VARIANTS=(none cache0 cache)
declare -A POLICY_ARGS=([none]='' [cache0]='' [cache]='--policy-cache 1s')
declare -A PORT
# Postfix slows a client down after smtpd_soft_error_limit (10) errors and drops it after the hard limit (20):
# with the directory down, every RCPT is an error (451). Lifted for all three alike; and max_use (100 sessions)
# raised, so that one smtpd process (and one policy process) serves every session of the run.
PF_ERRORS=$'smtpd_soft_error_limit = 1000000\nsmtpd_hard_error_limit = 1000000\nmax_use = 100000'
start_postfix() { # VARIANT
    local v=$1 dir=$PWORK/pf-$1
    POSTFIXES+=("$dir")
    if [ "$v" = none ]; then
        PF_MAIN_EXTRA="$PF_ERRORS"$'\nsmtpd_recipient_restrictions =' \
            tests/policy/postfix-instance.sh start "$dir" "$MAIN" >/dev/null || die "cannot start Postfix ($v)"
    else
        PF_POLICY_USER=$POLICY_USER PF_POLICY_ARGV="$PWORK/policy-$v --policy ${POLICY_ARGS[$v]}" \
            PF_MAIN_EXTRA="$PF_ERRORS" \
            tests/policy/postfix-instance.sh start "$dir" "$MAIN" >/dev/null || die "cannot start Postfix ($v)"
    fi
    PORT[$v]=$(envof "$dir" SMTP_PORT)
}
RCPTS=()
for ((i = 2; i <= 51; i++)); do RCPTS+=("$(printf 'user%04d@example.com' "$i")"); done
probe() { # VARIANT SESSIONS: SESSIONS sessions of the 50 RCPTs; one line per RCPT on stdout
    tests/policy/smtp-probe.py --sessions "$2" "${PORT[$1]}" "${RCPTS[@]}"
}
# The CPU time (ms) the policy processes of VARIANT have used so far (the scheduler's sum_exec_runtime: precise,
# and blind to the time spent waiting for a CPU on the shared machine).
policy_cpu() { # VARIANT; "nan" where the kernel has no /proc/PID/sched (CONFIG_SCHED_DEBUG)
    local p total=0
    for p in $(pgrep -f "^$PWORK/policy-$1 --policy"); do
        [ -r "/proc/$p/sched" ] || { total=nan; break; }
        total=$(awk -v t="$total" '/^se.sum_exec_runtime/ { t += $3 } END { print t }' "/proc/$p/sched")
    done
    echo "$total"
}
# Rounds of PHASE (up|down): one session to each variant per round, the order rotating; raw lines in
# policy/PHASE-V-rN.tsv; the policies' CPU time over the rounds in policy/cpu.txt ("PHASE VARIANT ms").
policy_rounds() { # PHASE
    local r j v steal0 t0
    declare -A cpu0
    for v in cache0 cache; do cpu0[$v]=$(policy_cpu "$v"); done
    # Time the hypervisor gave this machine's CPUs to others (/proc/stat "steal", 1/100 s): a tail to read with it.
    steal0=$(awk '/^cpu / { print $9 }' /proc/stat) t0=$EPOCHREALTIME
    for ((r = 1; r <= POLICY_ROUNDS; r++)); do
        for ((j = 0; j < ${#VARIANTS[@]}; j++)); do
            v=${VARIANTS[(r + j) % ${#VARIANTS[@]}]}
            probe "$v" 1 > "$WORK/policy/$1-$v-r$r.tsv" || die "policy $1 $v: the SMTP probe failed"
        done
    done
    for v in cache0 cache; do
        echo "$1 $v $(awk -v a="${cpu0[$v]}" -v b="$(policy_cpu "$v")" 'BEGIN { print b - a }')" >> "$WORK/policy/cpu.txt"
    done
    echo "$1 $(($(awk '/^cpu / { print $9 }' /proc/stat) - steal0)) $(awk "BEGIN { print $EPOCHREALTIME - $t0 }")" \
        >> "$WORK/policy/steal.txt"
}
# The policy must have answered every request: smtpd logs it when it had to fall back on default_action.
policy_answered() {
    local v log
    for v in cache0 cache; do
        log=$PWORK/pf-$v/maillog
        ! grep -E 'problem talking to server|bad command startup|fatal:|panic:' "$log" >&2 ||
            die "Postfix ($v) could not use the policy (see above; $log)"
    done
}

say "10/10 policy: three Postfix instances (no policy, --policy (no cache), --policy-cache 1s)"
mkdir -p "$WORK/policy"
for v in "${VARIANTS[@]}"; do start_postfix "$v"; done
out=$(runuser -u "$POLICY_USER" -- env MAIL_CONFIG="$PWORK/pf-cache0/etc" PATH=/usr/bin:/bin \
    "$POLICY_BIN" --policy --self-test 2>&1) || die "policy --self-test (as $POLICY_USER): $out"
for v in "${VARIANTS[@]}"; do probe "$v" 1 > /dev/null || die "Postfix ($v) does not answer"; done # warm-up
say "10/10 policy, directory up: $POLICY_ROUNDS rounds of ${#RCPTS[@]} RCPTs per variant"
policy_rounds up
policy_answered

say "10/10 policy: start-up to the first answer (a new smtpd process spawns a new policy)"
python3 - "$POLICY_BIN" "$PWORK/pf-cache0/etc" 30 > "$WORK/policy/startup.txt" <<'PY'
import subprocess, sys, time
binary, etc, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
request = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.7\n"
           b"sender=sender@example.net\nrecipient=user0002@example.com\n\n")
env = {"MAIL_CONFIG": etc, "PATH": "/usr/bin:/bin", "LANG": "C"}  # what spawn(8) gives it
for _ in range(n):
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "--policy", "--policy-cache", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=env)
    p.stdin.write(request)
    p.stdin.flush()
    action, blank = p.stdout.readline(), p.stdout.readline()
    t1 = time.perf_counter()
    p.stdin.close()
    p.wait()
    assert action == b"action=DUNNO\n" and blank == b"\n", (action, blank)
    print(f"{(t1 - t0) * 1000:.3f}")
PY

say "10/10 policy: LDAP operations per RCPT (cn=monitor)"
count_ops idle-main 1 "$MAIN" -- true
for v in "${VARIANTS[@]}"; do
    count_ops "rcpt:$v" $((10 * ${#RCPTS[@]})) "$MAIN" -- probe "$v" 10
done

say "10/10 policy, directory down (slapd stopped): $POLICY_ROUNDS rounds"
tests/fixtures/slapd.sh kill "$MAIN" >/dev/null 2>&1
for v in "${VARIANTS[@]}"; do probe "$v" 1 > /dev/null || die "Postfix ($v) does not answer"; done # warm-up
policy_rounds down
policy_answered

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
    echo "rounds=$ROUNDS"
    echo "interleaved_runs=$INTERLEAVED_RUNS"
    echo "ops_checks=$OPS_CHECKS"
    echo "policy_rounds=$POLICY_ROUNDS"
    echo "policy_rcpts=${#RCPTS[@]}"
    echo "policy_user=$POLICY_USER"
    echo "context_csn=$CONTEXT_CSN"
} > "$WORK/meta.txt"

mkdir -p "$(dirname "$OUT")"
scripts/bench-report.py "$WORK" "$OUT" "$DEADLINE" "$BOUND" "$HUNG_SERVERS" "$RUNS" "$HUNG_RUNS" "$RSS_RUNS"
cat "$OUT"
