#!/bin/bash
# Run `postmap -q` (Postfix itself: the oracle) for every case of a corpus project's keys.tsv.
#
#   check-postmap.sh PROJECT_DIR MAPS_DIR STATE      compare with keys.tsv; exit 1 on any difference
#   check-postmap.sh -r PROJECT_DIR UP_DIR DOWN_DIR  print keys.tsv from what postmap does now
#
# MAPS_DIR holds the project's maps rendered (render.sh) for a directory in STATE:
#   up    the fixture slapd with the project loaded (load.sh)
#   down  a URL where nothing listens (connection refused)
#   hung  a server that accepts and never answers (Postfix gives up after the map's timeout)
# keys.tsv: tab-separated MAP KEY UP VALUE DOWN; '#' lines are comments.
#   KEY    decoded with printf %b (\xff, \t ...); an empty field is the empty key
#   UP     found (exit 0, VALUE on stdout) | notfound (exit 1, no "fatal:") | error (exit 1, "fatal:")
#   DOWN   outcome with the directory down, and also hung (same outcomes, only slower): error, or
#          notfound for keys Postfix skips before it contacts the server
# Output: one line per case, "ok" or "DIFF", then the number of differences.
set -u
export LC_ALL=C
record=0
[ "${1:-}" = -r ] && { record=1; shift; }
[ $# -eq 3 ] || { echo "usage: check-postmap.sh PROJECT_DIR MAPS_DIR STATE | -r PROJECT_DIR UP_DIR DOWN_DIR" >&2; exit 2; }
project=$1
conf=$(mktemp -d)
trap 'rm -rf "$conf"' EXIT
printf 'compatibility_level = 3.6\nmeta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n' > "$conf/main.cf"
touch -d '1 hour ago' "$conf/main.cf"

# query DIR MAP KEY: sets got, out, err
query() {
    out=$(timeout 60 /usr/sbin/postmap -c "$conf" -q "$3" "ldap:$1/$2" 2>"$conf/err"); local rc=$?
    if [ $rc -eq 0 ]; then got=found
    elif [ $rc -eq 1 ] && grep -q 'fatal:' "$conf/err"; then got=error
    elif [ $rc -eq 1 ]; then got=notfound
    else got="exit$rc"; fi
    err=$(grep -v 'overriding earlier entry' "$conf/err" | head -n 1)
}

bad=0
while IFS=$'\037' read -r map key up value down; do
    case $map in '' | '#'*) [ $record = 1 ] && printf '%s\t%s\t%s\t%s\t%s\n' "$map" "$key" "$up" "$value" "$down"; continue ;; esac
    k=$(printf '%b' "$key")
    if [ $record = 1 ]; then
        query "$(cd "$2" && pwd -P)" "$map" "$k"; u=$got; v=$out
        query "$(cd "$3" && pwd -P)" "$map" "$k"; d=$got
        printf '%s\t%s\t%s\t%s\t%s\n' "$map" "$key" "$u" "$v" "$d"
        continue
    fi
    query "$(cd "$2" && pwd -P)" "$map" "$k"
    case $3 in up) want=$up wantval=$value ;; *) want=$down wantval= ;; esac
    if [ "$got" = "$want" ] && { [ "$got" != found ] || [ "$out" = "$wantval" ]; }; then
        printf 'ok   %s %q %s %s\n' "$map" "$k" "$got" "$out"
    else
        bad=$((bad + 1))
        printf 'DIFF %s %q: want %s %s, got %s %s | %s\n' "$map" "$k" "$want" "$wantval" "$got" "$out" "$err"
    fi
done < <(tr '\t' '\037' < "$project/keys.tsv")  # \037: empty fields survive (a tab IFS would merge them)
[ $record = 1 ] && exit 0
echo "$bad difference(s)"
[ $bad -eq 0 ]
