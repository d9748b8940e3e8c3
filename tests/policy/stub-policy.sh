#!/bin/bash
# A scriptable SMTPD access policy server (SMTPD_POLICY_README) for tests/policy/: run by Postfix's spawn(8)
# with stdin, stdout *and stderr* on the smtpd connection, so nothing but replies may go to stdout/stderr.
#
#   stub-policy.sh STATE_DIR
#
# For every request (name=value lines up to an empty line) it appends one line to STATE_DIR/requests.log:
#   <epoch.usec> pid=<pid> n=<request number in this process> <the request's attributes, tab-separated>
# then answers what STATE_DIR/action says (read anew for every request; STATE_DIR/action@RECIPIENT, if it
# exists, wins for that recipient). The first line of the file is used:
#   TEXT            action=TEXT and an empty line (DUNNO, DEFER_IF_REJECT 4.3.0 ..., 450 4.7.1 ...)
#   @sleep N TEXT   sleep N seconds (fractions allowed), then as TEXT
#   @close          no reply; exit (the connection closes)
#   @exit TEXT      reply TEXT, then exit (server-side close after a good reply)
#   @garbage        reply "no attribute here" and an empty line (no action= attribute)
#   @empty          reply only the empty line
#   @noeol TEXT     reply "action=TEXT" without the terminating empty line (smtpd waits for it)
#   @extra TEXT     reply TEXT and one more empty line at once (smtpd reads it with the reply)
#   @late TEXT      reply TEXT; 0.2 s later write "stub-policy: late diagnostic" (as a log line to stderr would)
#   @stderr TEXT    write "stub-policy: a diagnostic" to stderr, then reply TEXT
# A missing action file means DUNNO. At EOF (smtpd closed the connection) it logs "eof" and exits 0.
set -u
dir=${1:?usage: stub-policy.sh STATE_DIR}
n=0
log() { printf '%s pid=%s n=%s %s\n' "$EPOCHREALTIME" "$$" "$n" "$*" >> "$dir/requests.log"; }
reply() { printf 'action=%s\n\n' "$1"; }
log "start uid=$(id -u) gid=$(id -g) groups=$(id -G | tr " " ,) cwd=$PWD env=$(env | sort | tr "\n" " ")"
while :; do
    attrs='' recipient='' line='' eof=''
    while :; do
        IFS= read -r line || { eof=1; break; }
        [ -n "$line" ] || break
        attrs+=$'\t'$line
        case $line in recipient=*) recipient=${line#recipient=} ;; esac
    done
    if [ -n "$eof" ]; then
        log "eof${attrs:+ mid-request$attrs}${line:+ partial=$line}"
        exit 0
    fi
    [ -n "$attrs" ] || { log "stray empty line"; continue; }
    n=$((n + 1))
    log "request$attrs"
    f=$dir/action
    [ -n "$recipient" ] && [ -f "$dir/action@$recipient" ] && f=$dir/action@$recipient
    a=DUNNO
    [ -f "$f" ] && IFS= read -r a < "$f"
    case $a in
        '@sleep '*) set -- ${a#@sleep }; s=$1; shift; sleep "$s"; reply "$*" ;;
        @close) log "close without reply"; exit 0 ;;
        '@exit '*) reply "${a#@exit }"; log "exit after reply"; exit 0 ;;
        @garbage) printf 'no attribute here\n\n' ;;
        @empty) printf '\n' ;;
        '@noeol '*) printf 'action=%s\n' "${a#@noeol }" ;;
        '@extra '*) printf 'action=%s\n\n\n' "${a#@extra }" ;;
        '@late '*) reply "${a#@late }"; sleep 0.2; echo "stub-policy: late diagnostic" >&2 ;;
        '@stderr '*) echo "stub-policy: a diagnostic" >&2; reply "${a#@stderr }" ;;
        *) reply "$a" ;;
    esac
    log "replied $a"
done
