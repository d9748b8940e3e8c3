#!/bin/sh
# Build the Debian package from `make install DESTDIR=...` with dpkg-deb: no debhelper, no cargo-deb, only
# what dpkg-dev and make bring (see docs/packaging.md for why).
#
#   scripts/deb.sh BINARY OUTDIR      (run by `make deb`; BINARY is the release binary to ship)
#
# Writes OUTDIR/ldap-health-check_VERSION_ARCH.deb and prints its path. VERSION is packaging/debian/changelog's
# top entry, which must carry Cargo.toml's version. The package installs the units but enables and starts
# nothing; its maintainer scripts only reload systemd (and, on removal, stop what the admin started; on purge,
# remove the dangling enablement links). Reproducible: file times are clamped to the last commit's time.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
BIN=$(readlink -f "$1")
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
deb=packaging/debian

die() { echo "deb.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no binary at $BIN (make release)"
for t in dpkg-deb dpkg-shlibdeps dpkg-parsechangelog gzip; do
    command -v $t >/dev/null || die "missing $t (apt-get install dpkg-dev)"
done

crate_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
version=$(dpkg-parsechangelog -l $deb/changelog -S Version)
case $version in
    "$crate_version"-*) ;;
    *) die "packaging/debian/changelog is at $version, Cargo.toml at $crate_version: add a changelog entry" ;;
esac
maintainer=$(dpkg-parsechangelog -l $deb/changelog -S Maintainer)
arch=$(dpkg --print-architecture)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || dpkg-parsechangelog -l $deb/changelog -S Timestamp)}
export SOURCE_DATE_EPOCH

work=$OUT/ldap-health-check_${version}_$arch
root=$work/root
rm -rf "$work"
mkdir -p "$root/DEBIAN"

# The files: what `make install` installs, at Debian's paths (the units where systemd.pc says on Debian 12)
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory install DESTDIR="$root" NOBUILD=1 \
    INSTALL_BIN="$BIN" PREFIX=/usr BINDIR=/usr/sbin SYSTEMDUNITDIR=/lib/systemd/system \
    ZSHCOMPDIR=/usr/share/zsh/vendor-completions
doc=$root/usr/share/doc/ldap-health-check
install -d "$doc"
install -m644 README.md "$doc/README.md"
install -m644 $deb/changelog "$doc/changelog.Debian"
# Debian policy 12.3 and 12.1: documentation and manual pages gzip -9n (not the copyright)
gzip -9n "$doc/README.md" "$doc/changelog.Debian" "$root/usr/share/man/man8/ldap-health-check.8"
crates=$(cargo tree --locked --offline -e normal,no-proc-macro --prefix none -f '{p} ({l})' 2>/dev/null |
    sed -e 's/ (proc-macro)//' -e 's/ (\*)$//' -e '/^ldap-health-check /d' | sort -u | paste -sd, - | sed 's/,/, /g') ||
    crates=
[ -n "$crates" ] || crates="see Cargo.lock in the source"
# the list as one folded paragraph: continuation lines start with a blank
crates_folded=$(printf '%s\n' "$crates" | fold -s -w 76 | sed -e 's/ *$//' -e 's/^/ /')
awk -v c="$crates_folded" '{ gsub(/@CRATES@/, c); print }' $deb/copyright > "$doc/copyright"
chmod 644 "$doc/copyright"

install -Dm644 $deb/lintian-overrides "$root/usr/share/lintian/overrides/ldap-health-check"
# as dh_strip does: the sections that `strip` leaves (the release profile strips symbols already)
strip --remove-section=.comment --remove-section=.note "$root/usr/sbin/ldap-health-check"

# Maintainer scripts
for s in postinst prerm postrm; do install -m755 $deb/$s "$root/DEBIAN/$s"; done

# Depends: from the binary's ELF dependencies (dpkg-shlibdeps needs a debian/control to read)
tmpsrc=$work/shlibdeps
mkdir -p "$tmpsrc/debian"
printf 'Source: ldap-health-check\n\nPackage: ldap-health-check\nArchitecture: any\n' > "$tmpsrc/debian/control"
depends=$(cd "$tmpsrc" && dpkg-shlibdeps -O -e"$root/usr/sbin/ldap-health-check" 2>"$work/shlibdeps.log" |
    sed -n 's/^shlibs:Depends=//p') || { cat "$work/shlibdeps.log" >&2; die "dpkg-shlibdeps failed"; }
rm -rf "$tmpsrc"
# A static binary has no ELF dependencies, but glibc's getaddrinfo in it still dlopens the system's NSS modules
# (and with them a second libc): it crashed with `hosts: myhostname` (docs/packaging.md). Not for a package.
[ -n "$depends" ] || die "$BIN is statically linked: package the dynamic build (make deb, DEB_BIN=target/release/...)"

installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@DEPENDS@|$depends|" \
    $deb/control.in > "$root/DEBIAN/control"
sed -i '/^Homepage: @HOMEPAGE@$/d' "$root/DEBIAN/control"

(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 755 {} +
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

pkg=$OUT/ldap-health-check_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$pkg" >/dev/null
echo "$pkg"
