#!/bin/bash
# Write a corpus project's maps with their placeholders filled in.
#
#   render.sh PROJECT_DIR OUT_DIR URL [EXTRA_LINE...]
#
# Placeholders in PROJECT_DIR/maps/*.cf:
#   @URL@       URL, e.g. ldap://127.0.0.1:389 (a fixture's LDAP_URL; or a dead/hung server's URL)
#   @HOSTPORT@  URL without its scheme and trailing slash (127.0.0.1:389), for maps that use the
#               non-URL host:port form of server_host (Postfix turns it into ldap://host:port)
#   @BINDDN@    BINDDN from PROJECT_DIR/corpus.env
#   @BINDPW@    BINDPW from PROJECT_DIR/corpus.env
#   @MAPDIR@    OUT_DIR (absolute), for maps that name other maps (e.g. domain = ldap:@MAPDIR@/x.cf)
# Each EXTRA_LINE is appended to every map (e.g. "timeout = 1" for a hung server: a later line wins;
# Postfix warns "overriding earlier entry" if the map had that parameter already).
# The files are dated an hour back so that Postfix does not pause to re-read a "hot" file.
set -eu
[ $# -ge 3 ] || { echo "usage: render.sh PROJECT_DIR OUT_DIR URL [EXTRA_LINE...]" >&2; exit 2; }
project=$1 out=$2 url=$3
shift 3
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
envval() { sed -n "s/^$1=//p" "$project/corpus.env" | tail -n 1; }
hostport=${url#*://}
hostport=${hostport%/}
# escape for the replacement side of sed s|||
q() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }
for f in "$project"/maps/*.cf; do
    sed -e "s|@URL@|$(q "$url")|g" -e "s|@HOSTPORT@|$(q "$hostport")|g" \
        -e "s|@BINDDN@|$(q "$(envval BINDDN)")|g" -e "s|@BINDPW@|$(q "$(envval BINDPW)")|g" \
        -e "s|@MAPDIR@|$(q "$out")|g" "$f" > "$out/$(basename "$f")"
    for line in "$@"; do printf '%s\n' "$line" >> "$out/$(basename "$f")"; done
    touch -d '1 hour ago' "$out/$(basename "$f")"
done
