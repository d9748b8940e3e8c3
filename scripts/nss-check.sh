#!/bin/sh
# nss-check.sh BIN...: does each binary resolve server names as the system does (glibc NSS)? For the choice of
# the package's build (docs/packaging.md): the dynamic build does; a glibc static-pie build dlopens the NSS
# modules named in nsswitch.conf together with a second libc, and crashed with `hosts: myhostname`.
#
# Runs, as root, in a private mount namespace (the host's files are not touched): a throwaway slapd
# (tests/fixtures/slapd.sh), an /etc/hosts with one more name, and for each nsswitch `hosts:` line below a map
# whose server_host is a name that line must resolve; then `BIN --once -f MAP` for each BIN, and getent as the
# reference. NSS modules that Debian 12 does not install by default (libnss-myhostname, libnss-mdns) are taken
# out of their packages (apt-get download) into target/tools/nss and overlaid on the library directory.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 BIN..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "nss-check: needs root (unshare -m)" >&2; exit 1; }
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ -z "${NSS_CHECK_INNER:-}" ]; then
    mods=target/tools/nss
    if [ ! -e $mods/libnss_myhostname.so.2 ]; then
        mkdir -p $mods/dl && (cd $mods/dl && apt-get download -q libnss-myhostname libnss-mdns >/dev/null)
        for d in $mods/dl/*.deb; do dpkg-deb -x "$d" $mods/dl/x; done
        find $mods/dl/x -name 'libnss_*.so.2' -exec cp {} $mods/ \;
        rm -rf $mods/dl
    fi
    work=$(mktemp -d "$ROOT/target/nss-check.XXXXXX")
    trap 'tests/fixtures/slapd.sh stop "$work/slapd" >/dev/null 2>&1 || :; rm -rf "$work"' EXIT INT TERM
    tests/fixtures/slapd.sh start "$work/slapd" >/dev/null 2>&1
    bins=
    for b in "$@"; do bins="$bins $(readlink -f "$b")"; done
    # shellcheck disable=SC2086
    NSS_CHECK_INNER=1 NSS_WORK=$work NSS_MODS=$ROOT/$mods unshare -m --propagation private "$0" $bins
    exit
fi

W=$NSS_WORK
. "$W/slapd/env"
libdir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
mount -t overlay lhc-nss-check -o "lowerdir=$NSS_MODS:$libdir" "$libdir"
cp /etc/hosts "$W/hosts"
echo "127.0.0.1 lhc-nss-check.example" >> "$W/hosts"
mount --bind "$W/hosts" /etc/hosts
printf 'hosts: files\n' > "$W/nsswitch.conf"
mount --bind "$W/nsswitch.conf" /etc/nsswitch.conf

variant() {  # variant 'hosts: line' NAME BIN...
    line=$1 name=$2
    shift 2
    printf 'passwd: files\ngroup: files\nhosts: %s\n' "$line" > "$W/nsswitch.conf"
    printf 'server_host = ldap://%s:%s\nsearch_base = %s\nbind = yes\nbind_dn = %s\nbind_pw = %s\ntimeout = 3\n' \
        "$name" "$LDAP_PORT" "$BASE_DN" "$SERVICE_DN" "$SERVICE_PW" > "$W/map.cf"
    chmod 600 "$W/map.cf"
    echo "hosts: $line -- $name (getent: $(getent hosts "$name" | head -n 1 | awk '{ print $1 }' || :))"
    for b in "$@"; do
        set +e
        out=$("$b" --once -f "$W/map.cf" 2>/dev/null | head -n 1 | cut -d'|' -f1)
        rc=$("$b" --once -f "$W/map.cf" >/dev/null 2>&1; echo $?)
        set -e
        [ "$rc" -ge 128 ] && out="killed by signal $((rc - 128))"
        echo "  exit $rc  $(file -b "$b" | grep -o 'static-pie linked\|dynamically linked')  $out"
    done
}
for spec in "files dns|lhc-nss-check.example" "files myhostname|vm-nss.localhost" \
    "files mdns4_minimal [NOTFOUND=return] dns|lhc-nss-check.example" \
    "files mdns4_minimal [NOTFOUND=return] dns|lhc-nss-check.local" \
    "files resolve [!UNAVAIL=return] dns|lhc-nss-check.example" "files dns|no-such-host.invalid"; do
    variant "${spec%%|*}" "${spec#*|}" "$@"
done
