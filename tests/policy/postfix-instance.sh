#!/bin/bash
# A private, throwaway Postfix instance (Debian's postfix 3.7 + postfix-ldap, run as root with `postfix -c`) whose
# smtpd validates recipients through LDAP maps on the tests/fixtures/slapd.sh directory and asks an SMTPD access
# policy service run by spawn(8) -- for tests of `ldap-health-check --policy` and the facts in
# ../../docs or notes. It listens on 127.0.0.1 only, on its own port, with its own queue, data and log files
# under DIR; it touches nothing under /etc/postfix or /var/spool/postfix.
#
#   postfix-instance.sh start  DIR SLAPD_DIR   write DIR/etc/{main,master}.cf and the maps; start; wait for 220
#   postfix-instance.sh stop   DIR             postfix stop (then KILL what is left of DIR's master); remove DIR
#   postfix-instance.sh reload DIR             postfix reload (after editing DIR/etc/*.cf)
#   postfix-instance.sh conf   DIR NAME=VALUE...   postconf -e into DIR/etc/main.cf, then reload
#   postfix-instance.sh status DIR             exit 0 when DIR's master runs
#
# SLAPD_DIR is a running fixture (tests/fixtures/slapd.sh start SLAPD_DIR): DIR/etc/*.cf point at its LDAP_URL.
# DIR must not exist or be empty; its path must be searchable by the policy user (spawn runs the policy command
# as PF_POLICY_USER, default nobody). After start, DIR/env holds KEY=value lines:
#   SMTP_PORT CONFIG_DIR QUEUE_DIR MAILLOG POLICY_NAME POLICY_SOCKET POLICY_STATE POLICY_ARGV
#   MAP_VMBOX MAP_VALIAS MAP_RELAY MAP_LOCAL
#
# Environment (all optional):
#   PF_SMTP_PORT     port for smtpd on 127.0.0.1 (default: a free one)
#   PF_POLICY_NAME   master.cf service name of the policy (default ldap-health-check)
#   PF_POLICY_ARGV   the policy command and its arguments, as spawn's argv= (no shell; words split on blanks)
#                    (default: tests/policy/stub-policy.sh DIR/policy, a scriptable stub: see its header)
#   PF_POLICY_USER   spawn's user= (default nobody; spawn refuses root and the mail_owner postfix)
#   PF_POLICY_CHECK  the restriction naming the policy (default
#                    "check_policy_service { unix:private/NAME, default_action=DUNNO }")
#   PF_RECIPIENT_RESTRICTIONS   smtpd_recipient_restrictions (default: just PF_POLICY_CHECK)
#   PF_SMTPD_CHROOT  y (Debian's default master.cf) or n (default y)
#   PF_MAIN_EXTRA    more main.cf lines, appended last (they win)
#   PF_MAP_EXTRA     more lines appended to every map file (e.g. "timeout = 2"; the last one wins)
#   PF_MAP_MODE      mode of the map files (default 0644: readable by the policy user; they hold bind_pw)
#
# Domains and maps (one LDAP map file each, all on the fixture's cn=postfix service account):
#   example.com        virtual_mailbox_domains; virtual_mailbox_maps = ldap:DIR/etc/vmbox.cf   (mail=%s)
#   alias.example.com  virtual_alias_domains;   virtual_alias_maps   = ldap:DIR/etc/valias.cf  (uid=%u -> mail)
#   relay.example.com  relay_domains;           relay_recipient_maps = ldap:DIR/etc/relay.cf   (uid=%u)
#   local.example.com  mydestination;           local_recipient_maps = ldap:DIR/etc/local.cf   (uid=%u)
# So userNNNN@<each domain> exists (NNNN <= the fixture's USERS), nobody@<each domain> is unknown (550).
# Each map has a canary for ldap-health-check: health_check_key = user0001@<its domain>.
# Delivery goes to discard(8) (virtual_transport, relay_transport, local_transport): nothing leaves the box.
# mynetworks = 127.0.0.0/8, smtpd_authorized_xclient_hosts = 127.0.0.0/8 (a probe can pose as a remote
# client with XCLIENT ADDR=...).
set -eu
export LC_ALL=C
PROG=postfix-instance.sh
HERE=$(cd "$(dirname "$0")" && pwd -P)
PATH=$PATH:/usr/sbin:/sbin
START_TIMEOUT=${PF_START_TIMEOUT:-20}

die() { echo "$PROG: $*" >&2; exit 1; }
usage() { sed -n '/^#   postfix-instance.sh /s/^#   //p' "$0" >&2; exit 2; }
abspath() { (cd "$1" && pwd -P); }

port_in_use() { [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]; }
pick_port() {
    local p i
    for (( i = 0; i < 100; i++ )); do
        p=$(( 10000 + (RANDOM * 32768 + RANDOM) % 22000 ))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "no free port found"
}

# Read KEY from an env file (KEY=value lines).
env_get() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

master_pid() {
    local f=$1/spool/pid/master.pid p
    [ -f "$f" ] || return 1
    p=$(tr -dc 0-9 < "$f")
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = master ] || return 1
    echo "$p"
}

# Wait until 127.0.0.1:PORT greets with 220.
wait_220() {
    local port=$1 deadline=$(( SECONDS + START_TIMEOUT )) greet
    while [ $SECONDS -lt $deadline ]; do
        greet=$(timeout 2 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)
print(s.recv(512).decode(errors="replace").strip()); s.sendall(b"QUIT\r\n"); s.close()' "$port" 2>/dev/null) || greet=''
        case $greet in 220*) return 0 ;; esac
        sleep 0.1
    done
    return 1
}

write_map() { # FILE QUERY_FILTER RESULT_ATTRIBUTE CANARY [DOMAIN]
    local f=$1
    {
        echo "# written by tests/policy/postfix-instance.sh"
        echo "server_host = $LDAP_URL"
        echo "search_base = $BASE_DN"
        echo "query_filter = $2"
        echo "result_attribute = $3"
        [ -z "${5:-}" ] || echo "domain = $5"
        echo "bind = yes"
        echo "bind_dn = $SERVICE_DN"
        echo "bind_pw = $SERVICE_PW"
        echo "timeout = 5"
        echo "# read by ldap-health-check only (Postfix ignores parameters it does not know)"
        echo "health_check_key = $4"
        [ -z "${PF_MAP_EXTRA:-}" ] || printf '%s\n' "$PF_MAP_EXTRA"
    } > "$f"
    chmod "${PF_MAP_MODE:-0644}" "$f"
    touch -d '-1 hour' "$f" # not "hot": Postfix pauses before reading a file modified within the last second
}

cmd_start() {
    local dir=$1 sdir=$2
    [ -f "$sdir/env" ] || die "$sdir/env: no slapd fixture there (tests/fixtures/slapd.sh start $sdir)"
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
    dir=$(abspath "$dir")
    case $dir in *[!A-Za-z0-9/._+-]*) die "$dir: only [A-Za-z0-9/._+-] please" ;; esac
    chmod 0755 "$dir"
    local senv=$sdir/env
    LDAP_URL=$(env_get "$senv" LDAP_URL) BASE_DN=$(env_get "$senv" BASE_DN)
    SERVICE_DN=$(env_get "$senv" SERVICE_DN) SERVICE_PW=$(env_get "$senv" SERVICE_PW)
    local port=${PF_SMTP_PORT:-0}
    [ "$port" != 0 ] || port=$(pick_port)
    local name=${PF_POLICY_NAME:-ldap-health-check}
    local user=${PF_POLICY_USER:-nobody}
    local state=$dir/policy
    mkdir -p "$dir/etc" "$dir/spool" "$dir/data" "$state"
    chown postfix: "$dir/data" # master.lock etc.: data_directory must belong to mail_owner
    chmod 1777 "$state" # the stub (as the policy user) writes requests.log here
    install -m 0666 /dev/null "$state/requests.log" # so that `: > requests.log` by root keeps it writable
    local argv=${PF_POLICY_ARGV:-$HERE/stub-policy.sh $state}
    local check=${PF_POLICY_CHECK:-"check_policy_service { unix:private/$name, default_action=DUNNO }"}
    local chroot=${PF_SMTPD_CHROOT:-y}
    local e=$dir/etc

    write_map "$e/vmbox.cf" '(mail=%s)' mail user0001@example.com
    write_map "$e/valias.cf" '(uid=%u)' mail user0001@alias.example.com alias.example.com
    write_map "$e/relay.cf" '(uid=%u)' uid user0001@relay.example.com
    write_map "$e/local.cf" '(uid=%u)' uid user0001@local.example.com

    cat > "$e/main.cf" <<EOF
# written by tests/policy/postfix-instance.sh: a private instance on 127.0.0.1:$port
compatibility_level = 3.6
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = policy-test.localdomain
mydomain = localdomain
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_authorized_xclient_hosts = 127.0.0.0/8
readme_directory = no
biff = no
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP policy-test
smtputf8_enable = no

# recipient validation: one domain per map class; nothing is ever delivered
mydestination = \$myhostname, localhost, local.example.com
local_recipient_maps = ldap:$e/local.cf
local_transport = discard
virtual_mailbox_domains = example.com
virtual_mailbox_maps = ldap:$e/vmbox.cf
virtual_transport = discard
virtual_alias_domains = alias.example.com
virtual_alias_maps = ldap:$e/valias.cf
relay_domains = relay.example.com
relay_recipient_maps = ldap:$e/relay.cf
relay_transport = discard
default_transport = discard

smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = ${PF_RECIPIENT_RESTRICTIONS:-$check}
# spawn kills the policy command after \$${name}_time_limit (default \$command_time_limit, 1000s): keep it
# above smtpd_policy_service_max_ttl (1000s), as SMTPD_POLICY_README says
${name}_time_limit = 3600
${PF_MAIN_EXTRA:-}
EOF

    cat > "$e/master.cf" <<EOF
# written by tests/policy/postfix-instance.sh
127.0.0.1:$port inet n -       $chroot -       -       smtpd
cleanup   unix  n       -       $chroot -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       $chroot -       -       trivial-rewrite
bounce    unix  -       -       $chroot -       0       bounce
defer     unix  -       -       $chroot -       0       bounce
trace     unix  -       -       $chroot -       0       bounce
verify    unix  -       -       $chroot -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       $chroot -       1       anvil
scache    unix  -       -       $chroot -       1       scache
error     unix  -       -       $chroot -       -       error
retry     unix  -       -       $chroot -       -       error
discard   unix  -       -       $chroot -       -       discard
postlog   unix-dgram n  -       n       -       1       postlogd
$name unix - n n - 0 spawn
  user=$user argv=$argv
EOF
    touch -d '-1 hour' "$e/main.cf" "$e/master.cf"

    {
        echo "SMTP_PORT=$port"
        echo "CONFIG_DIR=$e"
        echo "QUEUE_DIR=$dir/spool"
        echo "MAILLOG=$dir/maillog"
        echo "POLICY_NAME=$name"
        echo "POLICY_SOCKET=$dir/spool/private/$name"
        echo "POLICY_STATE=$state"
        echo "POLICY_ARGV=$argv"
        echo "MAP_VMBOX=$e/vmbox.cf"
        echo "MAP_VALIAS=$e/valias.cf"
        echo "MAP_RELAY=$e/relay.cf"
        echo "MAP_LOCAL=$e/local.cf"
    } > "$dir/env"

    local out
    out=$(postfix -c "$e" start 2>&1) || die "postfix -c $e start failed: $out"
    wait_220 "$port" || die "no 220 on 127.0.0.1:$port within ${START_TIMEOUT}s; $dir/maillog: $(tail -n 20 "$dir/maillog" 2>/dev/null)"
    echo "$PROG: postfix master $(master_pid "$dir") on 127.0.0.1:$port, config $e"
}

cmd_stop() {
    local dir=$1 p i
    [ -d "$dir" ] || return 0
    dir=$(abspath "$dir")
    if p=$(master_pid "$dir"); then
        postfix -c "$dir/etc" stop >/dev/null 2>&1 || :
        for (( i = 0; i < 100; i++ )); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -0 "$p" 2>/dev/null && { postfix -c "$dir/etc" abort >/dev/null 2>&1 || :; sleep 0.5; }
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || :
    fi
    rm -rf "$dir"
}

cmd_reload() {
    local dir
    dir=$(abspath "$1")
    local m old p i left
    m=$(master_pid "$dir") || die "$dir: master not running"
    old=$(pgrep -P "$m" -x smtpd || :)
    postfix -c "$dir/etc" reload >/dev/null 2>&1 || die "postfix reload failed"
    # reload is asynchronous: master re-reads its config on SIGHUP and tells its children to go; an idle
    # old smtpd may still accept one more connection (and then exit, closing its policy connection). Wait
    # (at most 5 s) until the smtpd processes from before the reload are gone, so probes meet the new config.
    for (( i = 0; i < 100; i++ )); do
        left=''
        for p in $old; do kill -0 "$p" 2>/dev/null && left+=" $p"; done
        [ -n "$left" ] || break
        sleep 0.05
    done
    sleep 0.2
}

cmd_conf() {
    local dir=$1; shift
    dir=$(abspath "$dir")
    postconf -c "$dir/etc" -e "$@"
    touch -d '-1 hour' "$dir/etc/main.cf"
    cmd_reload "$dir"
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2; shift 2
case $cmd in
    start) [ $# -eq 1 ] || usage; cmd_start "$dir" "$1" ;;
    stop) [ $# -eq 0 ] || usage; cmd_stop "$dir" ;;
    reload) [ $# -eq 0 ] || usage; cmd_reload "$dir" ;;
    conf) [ $# -ge 1 ] || usage; cmd_conf "$dir" "$@" ;;
    status) master_pid "$(abspath "$dir")" >/dev/null ;;
    *) usage ;;
esac
