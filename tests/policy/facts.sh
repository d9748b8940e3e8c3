#!/bin/bash
# Establish, against the real Postfix installed here (Debian 12: postfix + postfix-ldap 3.7) and the slapd fixture,
# the facts the `ldap-health-check --policy` design rests on, and print an SMTP transcript of each. Every case
# states the replies it expects; the script exits 1 if any differs ("MISMATCH"), so it doubles as a test.
#
#   tests/policy/facts.sh [WORKDIR]      (default: a new directory under /tmp; removed at the end unless KEEP=1)
#
# Takes about a minute (the failure-mode cases wait out smtpd's policy timeouts on purpose). Root only.
# Uses only 127.0.0.1, free ports, and private directories: see postfix-instance.sh and ../fixtures/slapd.sh.
set -eu
export LC_ALL=C LDAPNOINIT=1
HERE=$(cd "$(dirname "$0")" && pwd -P)
PATH=$PATH:/usr/sbin:/sbin
[ "$(id -u)" = 0 ] || { echo "facts.sh: run as root (postfix -c, spawn)" >&2; exit 2; }

W=${1:-$(mktemp -d /tmp/policy-facts.XXXXXX)}
mkdir -p "$W"; chmod 0755 "$W"
SD=$W/slapd PF=$W/pf PF2=$W/pf-postfix-user
fails=0
cleanup() {
    "$HERE/postfix-instance.sh" stop "$PF" >/dev/null 2>&1 || :
    "$HERE/postfix-instance.sh" stop "$PF2" >/dev/null 2>&1 || :
    bash "$HERE/../fixtures/slapd.sh" stop "$SD" >/dev/null 2>&1 || :
    [ "${KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT

SLAPD_USERS=60 bash "$HERE/../fixtures/slapd.sh" start "$SD" >/dev/null
"$HERE/postfix-instance.sh" start "$PF" "$SD"
envv() { sed -n "s/^$2=//p" "$1/env" | tail -n 1; }
PORT=$(envv "$PF" SMTP_PORT) STATE=$(envv "$PF" POLICY_STATE) LOG=$(envv "$PF" MAILLOG)
LDAP_URL=$(envv "$SD" LDAP_URL) ADMIN_DN=$(envv "$SD" ADMIN_DN) ADMIN_PW=$(envv "$SD" ADMIN_PW)
POLICY="unix:private/$(envv "$PF" POLICY_NAME)"

ALL4="user0001@example.com nobody@example.com user0002@alias.example.com nobody@alias.example.com
      user0003@relay.example.com nobody@relay.example.com user0004@local.example.com nobody@local.example.com"

section() { printf '\n### %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
action() { printf '%s\n' "$1" > "$STATE/action"; note "policy answers: action=$1"; }
conf() { "$HERE/postfix-instance.sh" conf "$PF" "$@"; local a; for a in "$@"; do note "main.cf: $a"; done; }
log_mark() { wc -l < "$LOG"; }
# Postfix log lines since MARK, less the connect/disconnect/reject noise (the replies are shown already)
log_since() {
    tail -n +$(( $1 + 1 )) "$LOG" | grep -v -E ' (connect|disconnect) from |: client=|: reject: RCPT|NOQUEUE: reject:' |
        sed -E 's/^.* policy-test postfix\//    log: /' || :
}
# probe WANT_CODES [smtp-probe options] RCPT...: one SMTP session; print the replies; compare the codes
probe() {
    local want=$1 out got
    shift
    out=$("$HERE/smtp-probe.py" "$PORT" "$@") || { echo "    smtp-probe failed: $out"; fails=$((fails + 1)); return 0; }
    printf '%s\n' "$out" | awk -F'\t' '{ printf "    RCPT TO:<%s>  ->  %s   (%s ms)\n", $2, $5, $4 }'
    got=$(printf '%s\n' "$out" | cut -f3 | tr '\n' ' ' | sed 's/ $//')
    if [ "$got" = "$want" ]; then note "[ok] $got"; else note "[MISMATCH] got $got, want $want"; fails=$((fails + 1)); fi
    LAST=$out
}
# ms_of N: the milliseconds the Nth RCPT of the last probe took (integer)
ms_of() { printf '%s\n' "$LAST" | sed -n "${1}p" | cut -f4 | cut -d. -f1; }
between() { # LABEL VALUE MIN MAX
    if [ "$2" -ge "$3" ] && [ "$2" -le "$4" ]; then note "[ok] $1: $2 ms (expected $3..$4)"; else
        note "[MISMATCH] $1: $2 ms, expected $3..$4"; fails=$((fails + 1)); fi
}
policy_pids() { grep -o ' pid=[0-9]*' "$STATE/requests.log" | sort -u | wc -l; }
policy_log_reset() { : > "$STATE/requests.log"; }

echo "Postfix $(postconf -d -h mail_version), slapd fixture $LDAP_URL, smtpd on 127.0.0.1:$PORT; workdir $W"
note "master.cf policy service:"; grep -A1 '^ldap-health-check ' "$PF/etc/master.cf" | sed 's/^/      /'
note "main.cf: $(postconf -c "$PF/etc" -n smtpd_recipient_restrictions)"

section "A. policy DUNNO: Postfix alone (implicit reject_unlisted_recipient: 550 for unknown recipients)"
action DUNNO
probe "250 550 250 550 250 550 250 550" $ALL4

section "B. policy DEFER_IF_REJECT 4.3.0 ...: the implicit 550 becomes 450 4.3.0, valid recipients still 250"
action "DEFER_IF_REJECT 4.3.0 directory unhealthy, try again later"
probe "250 450 250 450 250 450 250 450" $ALL4
grep -q '450 4.3.0 <nobody@relay.example.com>: Recipient address rejected: directory unhealthy, try again later' <<< "$LAST" &&
    note "[ok] reply text: 450 4.3.0 <rcpt>: Recipient address rejected: <the action's text>" ||
    { note "[MISMATCH] reply text"; fails=$((fails + 1)); }

section "C. DEFER_IF_REJECT without text: Postfix's default 4.7.1 Service unavailable"
action "DEFER_IF_REJECT"
probe "250 450" user0001@example.com nobody@example.com

section "D. directory answers wrong: a valid recipient's entry deleted (slapd up), DUNNO vs DEFER_IF_REJECT"
ldapsearch -LLL -x -H "$LDAP_URL" -D "$ADMIN_DN" -w "$ADMIN_PW" -b uid=user0049,ou=people,dc=example,dc=com -s base '*' > "$W/user0049.ldif"
ldapdelete -x -H "$LDAP_URL" -D "$ADMIN_DN" -w "$ADMIN_PW" uid=user0049,ou=people,dc=example,dc=com
note "ldapdelete uid=user0049,ou=people,dc=example,dc=com"
action DUNNO
probe "250 550" user0001@example.com user0049@example.com
action "DEFER_IF_REJECT 4.3.0 directory unhealthy"
probe "250 450" user0001@example.com user0049@example.com
ldapadd -x -H "$LDAP_URL" -D "$ADMIN_DN" -w "$ADMIN_PW" -f "$W/user0049.ldif" >/dev/null
note "ldapadd: user0049 restored"

section "E. LDAP down (slapd killed): Postfix answers 451 4.3.0 Temporary lookup failure, with either policy answer"
bash "$HERE/../fixtures/slapd.sh" kill "$SD"
note "slapd killed"
for a in DUNNO "DEFER_IF_REJECT 4.3.0 directory unhealthy"; do
    action "$a"
    probe "451 451 451 451 451 451 451 451" $ALL4
done
bash "$HERE/../fixtures/slapd.sh" restart "$SD" >/dev/null
note "slapd restarted"

section "F. LDAP hung (slapd SIGSTOPped): 451 after the map's timeout (5 s here), with either policy answer"
SPID=$(envv "$SD" SLAPD_PID)
kill -STOP "$SPID"; note "kill -STOP $SPID (the fixture's slapd)"
action "DEFER_IF_REJECT 4.3.0 directory unhealthy"
probe "451" user0001@example.com
between "RCPT with the directory hung" "$(ms_of 1)" 4500 6500
kill -CONT "$SPID"; note "kill -CONT $SPID"
action DUNNO
probe "250" user0001@example.com

section "G. placement: where check_policy_service sits decides whether its DEFER_IF_REJECT is seen"
action "DEFER_IF_REJECT 4.3.0 directory unhealthy"
conf "smtpd_recipient_restrictions = permit_mynetworks, check_policy_service { $POLICY, default_action=DUNNO }"
note "client 127.0.0.1 is in mynetworks: permit_mynetworks ends the list, the policy is never asked"
probe "250 550" user0001@example.com nobody@example.com
note "client posing (XCLIENT) as 192.0.2.7, outside mynetworks: the policy is asked"
probe "250 450" --xclient 192.0.2.7 user0001@example.com nobody@example.com
conf "smtpd_recipient_restrictions = reject_unlisted_recipient, check_policy_service { $POLICY, default_action=DUNNO }"
probe "250 550" user0001@example.com nobody@example.com
conf "smtpd_recipient_restrictions = check_policy_service { $POLICY, default_action=DUNNO }, reject_unlisted_recipient"
probe "250 450" user0001@example.com nobody@example.com
conf "smtpd_recipient_restrictions = check_policy_service { $POLICY, default_action=DUNNO }"
note "relay access denied (remote client, foreign domain): smtpd_relay_restrictions run first (compatibility_level 3.6), 554 stays"
probe "250 450 554" --xclient 192.0.2.7 user0001@example.com nobody@example.com someone@elsewhere.example.org
conf "smtpd_relay_before_recipient_restrictions = no"
note "relay restrictions evaluated last: the policy's DEFER_IF_REJECT turns Relay access denied into 450 too"
probe "250 450 450" --xclient 192.0.2.7 user0001@example.com nobody@example.com someone@elsewhere.example.org
conf "smtpd_relay_before_recipient_restrictions = yes" \
    "smtpd_relay_restrictions = check_policy_service { $POLICY, default_action=DUNNO }, permit_mynetworks, reject_unauth_destination" \
    "smtpd_recipient_restrictions ="
note "the policy in smtpd_relay_restrictions: covers the implicit check as well, and relay denials too"
probe "250 450 450" --xclient 192.0.2.7 user0001@example.com nobody@example.com someone@elsewhere.example.org
conf "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
    "smtpd_recipient_restrictions = check_policy_service { $POLICY, default_action=DUNNO }"

section "G2. smtpd_reject_unlisted_sender = yes: its 550 comes from the (delayed) MAIL FROM checks, before the recipient restrictions"
conf "smtpd_reject_unlisted_sender = yes"
probe "550" --sender nobody@example.com user0001@example.com
conf "smtpd_sender_restrictions = check_policy_service { $POLICY, default_action=DUNNO, policy_context=sender }"
note "with the policy in smtpd_sender_restrictions too (asked with protocol_state=RCPT, policy_context=sender):"
probe "450" --sender nobody@example.com user0001@example.com
conf "smtpd_reject_unlisted_sender = no" "smtpd_sender_restrictions ="

section "H. a misbehaving policy, with { timeout=2s, default_action=DUNNO } (try_limit 2, retry_delay 1s: the defaults)"
conf "smtpd_recipient_restrictions = check_policy_service { $POLICY, timeout=2s, default_action=DUNNO }"
for a in @garbage @empty @close; do
    action "$a"; m=$(log_mark)
    probe "250 550" user0001@example.com nobody@example.com
    between "RCPT 1" "$(ms_of 1)" 950 1500; between "RCPT 2" "$(ms_of 2)" 950 1500
    log_since "$m"
done
action "@exit DEFER_IF_REJECT 4.3.0 x"; m=$(log_mark)
note "(the policy exits after each good reply: the next request in the session finds EOF, waits retry_delay, reconnects)"
probe "450 450 450" nobody@example.com nobody@example.com nobody@example.com
between "RCPT 1" "$(ms_of 1)" 0 500; between "RCPT 2" "$(ms_of 2)" 950 1500
log_since "$m"
action "@sleep 3 DEFER_IF_REJECT 4.3.0 x"; m=$(log_mark)
note "(the policy answers after 3 s > timeout 2s)"
probe "250 550" user0001@example.com nobody@example.com
between "RCPT 1 (timeout + retry_delay + timeout)" "$(ms_of 1)" 4800 5600
between "RCPT 2 (stream left in error: retry_delay + timeout)" "$(ms_of 2)" 2800 3600
log_since "$m"
action "@noeol DEFER_IF_REJECT 4.3.0 x"; m=$(log_mark)
note "(the reply lacks its terminating empty line)"
probe "550" nobody@example.com
log_since "$m"
action "@stderr DEFER_IF_REJECT 4.3.0 x"; m=$(log_mark)
note "(a line on stderr = the socket before the reply: read as an unknown attribute and skipped)"
probe "450 450" nobody@example.com nobody@example.com
log_since "$m"
action "BOGUS_ACTION text"; m=$(log_mark)
note "(an action smtpd does not know: taken as a restriction name)"
probe "451 451" user0001@example.com nobody@example.com
log_since "$m"
conf "smtpd_recipient_restrictions = check_policy_service $POLICY"
action "@close"; m=$(log_mark)
note "(no per-service settings: smtpd_policy_service_default_action = 451 4.3.5 Server configuration problem)"
probe "451 451" user0001@example.com nobody@example.com
log_since "$m"
conf "smtpd_recipient_restrictions = check_policy_service { $POLICY, default_action=DUNNO }"

section "I. policy process life: one per smtpd process, reused across SMTP sessions; what ends it"
action DUNNO
sleep 0.6
policy_log_reset
for i in 1 2 3; do "$HERE/smtp-probe.py" "$PORT" user0001@example.com user0002@example.com > /dev/null; done
note "3 sessions x 2 RCPTs, one after another: $(grep -c ' request' "$STATE/requests.log") requests, $(policy_pids) policy process(es)"
note "the process: $(grep -m1 ' start ' "$STATE/requests.log" | sed 's/^.* start //')"
note "request attributes (Postfix 3.7, RCPT): $(grep -m1 ' request' "$STATE/requests.log" | cut -f2- | tr '\t' ' ')"
conf "smtpd_recipient_restrictions = check_policy_service { $POLICY, default_action=DUNNO, request_limit=2 }"
policy_log_reset
"$HERE/smtp-probe.py" "$PORT" user0001@example.com user0002@example.com user0003@example.com user0004@example.com user0005@example.com > /dev/null
note "request_limit=2, 5 RCPTs in one session: $(policy_pids) policy processes (smtpd closes after every 2nd reply)"
conf "smtpd_recipient_restrictions = check_policy_service { $POLICY, default_action=DUNNO, max_idle=2s }"
policy_log_reset
"$HERE/smtp-probe.py" "$PORT" user0001@example.com > /dev/null; sleep 3
idle=$(awk '$4 == "request" { r = $1 } $4 == "eof" { e = $1 } END { printf "%d", (e - r) * 1000 }' "$STATE/requests.log")
between "max_idle=2s: smtpd closes the idle policy connection (whole-second timer: 1-2 s)" "$idle" 950 2400
conf "smtpd_recipient_restrictions = check_policy_service { $POLICY, default_action=DUNNO }"
policy_log_reset
"$HERE/smtp-probe.py" "$PORT" user0001@example.com > /dev/null
postfix -c "$PF/etc" reload 2>/dev/null; sleep 1
note "postfix reload (idle smtpd processes exit): $(grep -E ' (request|eof)' "$STATE/requests.log" | awk '{print $4}' | tr '\n' ' ')"
conf "ldap-health-check_time_limit = 1s"
policy_log_reset; m=$(log_mark)
python3 - "$PORT" <<'EOF'
import smtplib, sys, time
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1])); s.ehlo("probe"); s.mail("a@example.net")
for i in range(3):
    s.rcpt("user0001@example.com"); time.sleep(1)
s.quit()
EOF
note "ldap-health-check_time_limit=1s, RCPTs 1 s apart for 3 s: $(policy_pids) policy process(es) answered $(grep -c ' request' "$STATE/requests.log") requests"
log_since "$m"
if grep -q 'command time limit exceeded' "$LOG" && [ "$(policy_pids)" = 1 ]; then
    note "[ok] 3.7: spawn logs the time limit but cannot kill the command (SIGKILL sent as euid postfix: EPERM; fixed in 3.10)"
else note "[MISMATCH] expected the time-limit warning and one surviving process"; fails=$((fails + 1)); fi
conf "ldap-health-check_time_limit = 3600s"

section "J. the spawn service's process limit: each policy process holds a spawn process for its whole life"
sed -i 's/^ldap-health-check unix - n n - 0 spawn/ldap-health-check unix - n n - 1 spawn/' "$PF/etc/master.cf"
conf "smtpd_recipient_restrictions = check_policy_service { $POLICY, timeout=2s, default_action=DUNNO }"
note "master.cf: $(grep '^ldap-health-check ' "$PF/etc/master.cf") (maxproc 1)"; m=$(log_mark)
k=$(python3 - "$PORT" <<'EOF2'
import smtplib, sys, time
def rcpt(s):
    t = time.monotonic(); c = s.rcpt("nobody@example.com")[0]; return "%d %d" % (c, (time.monotonic() - t) * 1000)
a = smtplib.SMTP("127.0.0.1", int(sys.argv[1])); a.ehlo("a"); a.mail("a@example.net"); ra = rcpt(a)
b = smtplib.SMTP("127.0.0.1", int(sys.argv[1])); b.ehlo("b"); b.mail("b@example.net"); rb = rcpt(b)
a.quit(); b.quit()
print(ra, rb)
EOF2
)
set -- $k
note "session A: RCPT -> $1 in $2 ms; session B (second smtpd, A still open): RCPT -> $3 in $4 ms"
between "session B waits for a spawn process that never comes (timeout + retry_delay + timeout)" "$4" 4800 5600
log_since "$m"
sed -i 's/^ldap-health-check unix - n n - 1 spawn/ldap-health-check unix - n n - 0 spawn/' "$PF/etc/master.cf"
"$HERE/postfix-instance.sh" reload "$PF"

section "K. spawn user=postfix (the mail_owner) is refused"
PF_POLICY_USER=postfix "$HERE/postfix-instance.sh" start "$PF2" "$SD" > /dev/null
P2=$(envv "$PF2" SMTP_PORT)
"$HERE/postfix-instance.sh" conf "$PF2" "smtpd_recipient_restrictions = check_policy_service { $POLICY, timeout=2s, default_action=DUNNO }"
note "master.cf: $(grep -A1 '^ldap-health-check ' "$PF2/etc/master.cf" | tr -s ' \n' ' ')"
out=$("$HERE/smtp-probe.py" "$P2" nobody@example.com)
printf '%s\n' "$out" | awk -F'\t' '{ printf "    RCPT TO:<%s>  ->  %s   (%s ms)\n", $2, $5, $4 }'
grep -E 'spawn|master.*(spawn|throttl)|problem talking' "$(envv "$PF2" MAILLOG)" | sed -E 's/^.* policy-test postfix\//    log: /'
grep -q 'fatal: request to deliver as mail system owner' "$(envv "$PF2" MAILLOG)" && note "[ok] spawn: fatal: request to deliver as mail system owner" ||
    { note "[MISMATCH] no spawn fatal"; fails=$((fails + 1)); }
"$HERE/postfix-instance.sh" stop "$PF2"

echo
if [ $fails = 0 ]; then echo "facts.sh: all cases as expected"; else echo "facts.sh: $fails MISMATCH(es)"; exit 1; fi
