#!/bin/sh
# Install the Debian packages that `make demo`, `make test` and `make bench` need, only when missing.
# Usage: scripts/install-deps.sh PACKAGE...   (run as root on Debian 12)
# Package maintainer scripts are kept from starting the distribution's own slapd/postfix:
# the project starts throwaway servers of its own.
set -eu
missing=
for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing; run as root or install them with apt-get" >&2
    exit 1
fi
echo "install-deps: apt-get install$missing"
policy=/usr/sbin/policy-rc.d
cleanup_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary: written by ldap-health-check install-deps.sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    cleanup_policy=1
fi
trap '[ -n "$cleanup_policy" ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
