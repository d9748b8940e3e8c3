#!/usr/bin/env bash
# sandbox.sh: boot a REAL systemd (the host's /lib/systemd/systemd, 252 on Debian 12) as PID 1 of private
# pid, mount, cgroup, uts, ipc and network namespaces, on a throw-away overlay of the host's root file
# system, for the end-to-end tests of units/ (tests/systemd_e2e.rs). It needs root and Debian packages
# only (util-linux, systemd): no docker, no nspawn, no debootstrap, no network.
#
#   sandbox.sh start          build the root, run $SANDBOX_SETUP in it, boot, wait until the manager is up
#   sandbox.sh ctl ARGS...    systemctl ARGS... inside
#   sandbox.sh exec CMD...    any command inside (all its namespaces and its root): journalctl, ss, sh ...
#   sandbox.sh net CMD...     CMD in the sandbox's network namespace only (host pids and files): this is
#                             how a test runs slapd so that the units inside reach it on 127.0.0.1, while
#                             the test can still SIGSTOP it by its host pid
#   sandbox.sh root           the host path of its root file system (/proc/PID/root)
#   sandbox.sh pid            the host pid of its PID 1
#   sandbox.sh status         running or not, and the manager's state
#   sandbox.sh stop           run $SANDBOX_ON_STOP, power it off, remove its cgroups and state dir
#
# Environment (all optional):
#   SANDBOX_NAME=lhc-sandbox           names the cgroup and the default state dir
#   SANDBOX_STATE=/tmp/$SANDBOX_NAME   pid files, console.log, mount points (the host side)
#   SANDBOX_TARGET=basic.target        the unit to boot into (the host's multi-user.target.wants would
#                                      start whatever the host has enabled: link what you need into
#                                      basic.target.wants from SANDBOX_SETUP instead)
#   SANDBOX_SETUP='shell command'      run by `sh -c` before systemd starts, with the new root's path as
#                                      $1 and $SANDBOX_ROOT: install units, write /etc files, enable units
#                                      (systemctl --root="$1" enable ...). Its output goes to console.log;
#                                      a non-zero exit fails the boot.
#   SANDBOX_ON_STOP='shell command'    run by `sh -c` on the host at stop, before the poweroff (e.g. stop a
#                                      slapd started with `net`, which keeps the network namespace alive)
#   SANDBOX_MASK="unit ..."            units masked inside (default: the host's periodic jobs, rpcbind)
#   SANDBOX_BOOT_TIMEOUT=60 SANDBOX_STOP_TIMEOUT=20 SANDBOX_CMD_TIMEOUT=120  seconds; the last bounds ctl,
#                                      exec and net (0: unbounded)
#
# What it leaves behind: nothing. Every mount lives in the sandbox's mount namespace (gone with its last
# process); the cgroup directories are removed depth-first at stop; pids are recorded with their start
# times, so a recycled pid is never signalled. It isolates for tidiness: it is NOT a security boundary.
set -euo pipefail

NAME=${SANDBOX_NAME:-lhc-sandbox}
STATE=${SANDBOX_STATE:-/tmp/$NAME}
TARGET=${SANDBOX_TARGET:-basic.target}
BOOT_TIMEOUT=${SANDBOX_BOOT_TIMEOUT:-60}
STOP_TIMEOUT=${SANDBOX_STOP_TIMEOUT:-20}
CMD_TIMEOUT=${SANDBOX_CMD_TIMEOUT:-120}
MASK=${SANDBOX_MASK-apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer man-db.timer logrotate.timer systemd-tmpfiles-clean.timer rpcbind.socket rpcbind.service}
SYSTEMD_BIN=${SANDBOX_SYSTEMD:-/lib/systemd/systemd}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
INPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export SANDBOX_NAME=$NAME SANDBOX_STATE=$STATE SANDBOX_TARGET=$TARGET SANDBOX_MASK=$MASK
export PATH=$PATH:/usr/sbin:/sbin

die() { echo "sandbox: $*" >&2; exit 1; }
log() { echo "sandbox: $*" >&2; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }

# ------------------------------------------------------------------ the host's cgroup2 hierarchy
cg2_root() {
  if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then echo /sys/fs/cgroup
  elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then echo /sys/fs/cgroup/unified
  else  # none mounted on the host: a private one under the state dir, unmounted at stop
    mkdir -p "$STATE/cgroup2"
    if [ "$(stat -fc %T "$STATE/cgroup2")" != cgroup2fs ]; then
      mount -t cgroup2 -o nosuid,nodev,noexec lhc-sandbox-cg2 "$STATE/cgroup2"; touch "$STATE/cgroup2.mounted"
    fi
    echo "$STATE/cgroup2"
  fi
}

# ------------------------------------------------------------------ pids, recorded with their start times
starttime() {  # start time (clock ticks since boot) of a live, non-zombie pid
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  [ "$1" != Z ] && [ "$1" != X ] || return 1
  echo "${20}"
}
save_pid() { echo "$2 $(starttime "$2")" > "$STATE/$1.pid"; }
alive() {  # alive NAME: print the pid and succeed if the recorded process is still the one we started
  local f="$STATE/$1.pid" pid st
  [ -r "$f" ] || return 1
  read -r pid st < "$f" || return 1
  [ -n "$pid" ] && [ "$(starttime "$pid" 2>/dev/null)" = "$st" ] || return 1
  echo "$pid"
}
sd_pid() { alive systemd || die "not running (no live systemd recorded in $STATE)"; }

bounded() { if [ "$CMD_TIMEOUT" = 0 ]; then "$@"; else timeout -k 5 "$CMD_TIMEOUT" "$@"; fi; }
nsrun() {  # a command inside: all namespaces and the root, a clean environment
  local p; p=$(sd_pid)
  bounded nsenter -t "$p" -m -u -i -n -p -C -r -w -- \
    env -i PATH=$INPATH LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
netrun() {  # a host command in the sandbox's network namespace only
  local p; p=$(sd_pid)
  bounded nsenter -t "$p" -n -- "$@"
}

# ------------------------------------------------------------------ boot, stage 1 (under script(1): a pty for /dev/console)
outer() {
  # PID 1 of the new pid namespace is unshare's child; --kill-child: if unshare dies, it gets SIGKILL,
  # and with it everything in the namespace
  exec unshare --pid --fork --mount --propagation private --uts --ipc --net --kill-child -- "$SELF" __init
}

# ------------------------------------------------------------------ stage 2: PID 1 of the pid namespace, host /proc still mounted
init1() {
  local s me parent cg
  s=$(< /proc/self/stat); me=${s%% *}
  # shellcheck disable=SC2086
  set -- ${s##*) }; parent=$2
  save_pid systemd "$me"; save_pid unshare "$parent"
  cg=$(cat "$STATE/cgroup.path")
  echo 0 > "$cg/cgroup.procs"                # only ourselves: unshare stays outside the sandbox cgroup
  exec unshare --cgroup -- "$SELF" __init2    # a cgroup namespace rooted at $cg
}

# ------------------------------------------------------------------ stage 3: build the root, run the setup hook, exec systemd
init2() {
  local R=$STATE/root O=$STATE/ovl d u
  mount -t tmpfs -o mode=755 lhc-sandbox-ovl "$O"
  mkdir "$O/upper" "$O/work"
  mount -t overlay lhc-sandbox-root -o "lowerdir=/,upperdir=$O/upper,workdir=$O/work" "$R"
  mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
  for d in sys sysrq-trigger; do
    [ -e "$R/proc/$d" ] || continue
    mount --bind "$R/proc/$d" "$R/proc/$d"; mount -o remount,bind,ro "$R/proc/$d"
  done
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
  mount -t tmpfs -o mode=755,nosuid lhc-sandbox-dev "$R/dev"
  for d in null zero full random urandom tty; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
  mkdir -m 755 "$R/dev/pts"; mkdir -m 1777 "$R/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec devpts "$R/dev/pts"
  ln -s pts/ptmx "$R/dev/ptmx"; ln -s /proc/self/fd "$R/dev/fd"
  ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
  touch "$R/dev/console"
  if [ -t 0 ]; then mount --bind "$(readlink -f /proc/self/fd/0)" "$R/dev/console"; else mount --bind /dev/null "$R/dev/console"; fi
  mount -t tmpfs -o mode=755,nosuid,nodev lhc-sandbox-run "$R/run"
  mount -t tmpfs -o mode=1777,nosuid,nodev lhc-sandbox-tmp "$R/tmp"
  # sandbox-only configuration, in the tmpfs upper layer
  u=$R/etc/systemd
  mkdir -p "$u/system" "$u/journald.conf.d"
  printf '[Journal]\nStorage=volatile\n' > "$u/journald.conf.d/lhc-sandbox.conf"
  for d in $MASK; do ln -sf /dev/null "$u/system/$d"; done
  if [ -n "${SANDBOX_SETUP:-}" ]; then
    echo "sandbox: running SANDBOX_SETUP"
    SANDBOX_ROOT=$R sh -c "$SANDBOX_SETUP" sandbox-setup "$R" || { echo "sandbox: SANDBOX_SETUP failed"; exit 1; }
  fi
  mkdir -p "$R/.oldroot"; cd "$R"
  pivot_root . .oldroot
  umount -l /.oldroot; rmdir /.oldroot; cd /
  exec setpriv --bounding-set -sys_module,-sys_rawio,-sys_time,-sys_pacct,-syslog,-wake_alarm,-block_suspend,-mac_admin,-mac_override -- \
    env -i container=lhc-sandbox TERM=dumb PATH=$INPATH \
    "$SYSTEMD_BIN" --unit="$TARGET" --log-target=journal --show-status=yes
}

# ------------------------------------------------------------------ start
start() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  local c; for c in unshare nsenter setpriv script mount timeout; do command -v $c >/dev/null || die "missing $c"; done
  [ -x "$SYSTEMD_BIN" ] || die "missing $SYSTEMD_BIN"
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || die "no overlayfs"
  if alive systemd >/dev/null; then die "already running (stop it first)"; fi
  [ -e "$STATE" ] && { cleanup_leftovers || die "cannot clean up the leftovers in $STATE"; }
  mkdir -p "$STATE/root" "$STATE/ovl"
  printf '%s' "${SANDBOX_ON_STOP:-}" > "$STATE/on_stop"
  local cgr cg; cgr=$(cg2_root); cg=$cgr/$NAME
  [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null   # an empty leftover
  mkdir "$cg" || die "cannot create the cgroup $cg (still in use?)"
  echo "$cg" > "$STATE/cgroup.path"
  local t0; t0=$(now_ms)
  SHELL=/bin/bash setsid script -qfec "$SELF __outer" "$STATE/console.log" </dev/null >/dev/null 2>&1 &
  save_pid script $!
  local deadline=$(( SECONDS + BOOT_TIMEOUT )) st='' p
  # PID 1 is recorded before the setup hook runs; its comm turns to "systemd" at the exec, after pivot_root
  # (before that, nsenter -r would see the host's root, and maybe a host systemd's socket)
  until p=$(alive systemd) && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; do
    if [ $SECONDS -ge $deadline ] || ! alive script >/dev/null; then boot_failed "PID 1 never became systemd"; fi
    sleep 0.05
  done
  until nsrun test -S /run/systemd/private 2>/dev/null; do
    if [ $SECONDS -ge $deadline ] || ! alive systemd >/dev/null; then boot_failed "no /run/systemd/private"; fi
    sleep 0.05
  done
  st=$(CMD_TIMEOUT=$(( deadline - SECONDS + 1 )) nsrun systemctl is-system-running --wait 2>/dev/null) || true
  case "$st" in
    running|degraded) ;;
    *) boot_failed "state '${st:-none}' (boot timeout ${BOOT_TIMEOUT}s)";;
  esac
  local t1; t1=$(now_ms)
  echo "$(( t1 - t0 ))" > "$STATE/boot_ms"
  echo "sandbox: up ($st) in $(( t1 - t0 )) ms; PID 1 is host pid $(sd_pid); console: $STATE/console.log"
}
boot_failed() {
  log "boot failed: $1"; log "console.log (tail):"; tail -n 40 "$STATE/console.log" >&2 2>/dev/null || true
  stop >&2 || true; exit 1
}

# ------------------------------------------------------------------ stop
wait_gone() {  # wait_gone NAME SECONDS
  local end=$(( SECONDS + $2 ))
  while alive "$1" >/dev/null; do [ $SECONDS -ge $end ] && return 1; sleep 0.05; done
}
stop() {
  [ -d "$STATE" ] || { echo "sandbox: not running"; return 0; }
  local p t0 hook; t0=$(now_ms)
  hook=$(cat "$STATE/on_stop" 2>/dev/null || true)
  if [ -n "$hook" ]; then sh -c "$hook" sandbox-on-stop || log "SANDBOX_ON_STOP failed (continuing)"; fi
  if p=$(alive systemd); then
    kill -s RTMIN+4 "$p" 2>/dev/null || true     # SIGRTMIN+4 = poweroff
    if ! wait_gone systemd "$STOP_TIMEOUT"; then
      log "no poweroff within ${STOP_TIMEOUT}s: SIGKILL to its PID 1 (ends the whole pid namespace)"
      kill -KILL "$p" 2>/dev/null || true; wait_gone systemd 10 || log "WARNING: pid $p is still alive"
    fi
  fi
  cleanup_leftovers
  echo "sandbox: stopped in $(( $(now_ms) - t0 )) ms"
}
cleanup_leftovers() {
  local n p cg left
  for n in unshare script; do   # they exit by themselves once PID 1 is gone
    if ! wait_gone $n 5 && p=$(alive $n); then
      kill -TERM "$p" 2>/dev/null || true; wait_gone $n 3 || kill -KILL "$p" 2>/dev/null || true
    fi
  done
  if alive systemd >/dev/null; then log "its systemd is still alive: not removing $STATE"; return 1; fi
  cg=$(cat "$STATE/cgroup.path" 2>/dev/null || true)
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    for _ in $(seq 50); do
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$cg" ] || break; sleep 0.1
    done
    [ -d "$cg" ] && log "WARNING: could not remove the cgroup $cg"
  fi
  if [ -e "$STATE/cgroup2.mounted" ]; then umount "$STATE/cgroup2" || true; fi
  # the sandbox's mounts lived in its own mount namespace: make sure none leaked to this one
  left=$(awk -v s="$STATE" '$5 == s || index($5, s "/") == 1 {print $5}' /proc/self/mountinfo)
  if [ -n "$left" ]; then log "WARNING: mounts under $STATE remain: $left"; return 1; fi
  rm -rf "$STATE"
}

status() {
  local p
  if p=$(alive systemd); then echo "running: host pid $p, $(nsrun systemctl is-system-running 2>/dev/null || true)"
  else echo "not running"; return 3; fi
}

cmd=${1:-}; shift || true
case "$cmd" in
  start) start;;
  stop) stop;;
  ctl) nsrun systemctl "$@";;
  exec) nsrun "$@";;
  net) netrun "$@";;
  root) echo "/proc/$(sd_pid)/root";;
  pid) sd_pid;;
  status) status;;
  __outer) outer;;
  __init) init1;;
  __init2) init2;;
  *) sed -n '2,40p' "$SELF"; exit 2;;
esac
