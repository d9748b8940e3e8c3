#!/bin/bash
# make demo: the probe against a throwaway slapd: healthy (OK), frozen (CRITICAL within the deadline),
# stopped (CRITICAL at once). Shows each command and its output; leaves nothing running.
set -eu
BIN=$(readlink -f "${1:-target/release/ldap-health-check}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/target/demo
SLAPD=$ROOT/tests/fixtures/slapd.sh

cleanup() { "$SLAPD" stop "$DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() {  # show COMMAND...: print it, run it, print its exit status and how long it took
    printf '$ %s\n' "$*"
    local t0 t1 rc=0
    t0=$(date +%s%N)
    "$@" || rc=$?
    t1=$(date +%s%N)
    printf '[exit %d after %d ms]\n' "$rc" $(( (t1 - t0) / 1000000 ))
}

step "Start a throwaway slapd on loopback (3000 users, ldap + ldaps + ldapi)"
SLAPD_USERS=${SLAPD_USERS:-3000} "$SLAPD" start "$DIR"
# shellcheck disable=SC1091
. "$DIR/env"
MAP=$DIR/ldap-users.cf
cat > "$MAP" <<MAP
# A Postfix ldap_table(5) map, as /etc/postfix/ldap-users.cf would hold it
server_host = ldap://127.0.0.1:$LDAP_PORT
search_base = ou=people,$BASE_DN
query_filter = (mail=%s)
result_attribute = mail
bind = yes
bind_dn = $SERVICE_DN
bind_pw = $SERVICE_PW
timeout = 2
MAP
chmod 600 "$MAP"
echo "map written to $MAP:"
sed 's/^bind_pw = .*/bind_pw = (secret)/' "$MAP"

step "1. Healthy directory: OK"
show "$BIN" --once -v --conffile "$MAP"

step "2. slapd frozen with SIGSTOP (accepts connections, never answers): CRITICAL within the 2 s deadline"
show kill -STOP "$SLAPD_PID"
show "$BIN" --once --conffile "$MAP"
kill -CONT "$SLAPD_PID"

step "3. slapd stopped (connection refused): CRITICAL at once"
show "$SLAPD" kill "$DIR"
show "$BIN" --once --conffile "$MAP"

step "Clean up"
cleanup
trap - EXIT
if pgrep -f "slapd.*$DIR" >/dev/null; then echo "demo: slapd still running!" >&2; exit 1; fi
echo "nothing left running; $DIR removed"
