#!/bin/bash
# Load one real-world corpus project (schemas + directory data) into a running fixture slapd.
#
#   load.sh FIXTURE_DIR PROJECT_DIR
#
# FIXTURE_DIR is a directory made by `tests/fixtures/slapd.sh start` (its env file is read: LDAPI_URL,
# SLAPD_DIR). PROJECT_DIR is tests/corpus/<project>; its corpus.env names the suffix and accounts.
# What it does, over ldapi as root (SASL EXTERNAL, the fixture's cn=config manager):
#   1. adds the schemas named in SYSTEM_SCHEMAS (corpus.env; from $SLAPD_SCHEMA_DIR, default
#      /etc/ldap/schema, e.g. dyngroup), then each PROJECT_DIR/schema/*.ldif (cn=NAME,cn=schema,cn=config),
#      each unless a schema of that name is already there;
#   2. adds an mdb database for SUFFIX (data in FIXTURE_DIR/corpus-NAME) with ROOTDN/ROOTPW and these
#      ACLs: root over ldapi manages; userPassword: self write, anonymous auth; everything else: read
#      for any bound identity, and for anonymous only with ANON_READ=yes in corpus.env (otherwise a
#      map with bind = no, or an anonymous bind, finds nothing);
#   3. adds PROJECT_DIR/data/*.ldif in name order (as root over ldapi, so a data file may also add
#      entries under the fixture's own dc=example,dc=com).
# Load one project per fixture: the projects' schemas clash (postfix-book and iRedMail both define
# mailQuota). Loading the same project twice into one fixture fails at step 2 ("already exists").
# Prints KEY=value lines for the test: CORPUS_SUFFIX, CORPUS_BINDDN, CORPUS_BINDPW.
set -eu
export LC_ALL=C
export LDAPNOINIT=1
PATH=$PATH:/usr/sbin:/sbin
PROG=load.sh
die() { echo "$PROG: $*" >&2; exit 1; }
[ $# -eq 2 ] || { echo "usage: $PROG FIXTURE_DIR PROJECT_DIR" >&2; exit 2; }
fixture=$(cd "$1" && pwd -P) || die "no fixture directory $1"
project=$(cd "$2" && pwd -P) || die "no project directory $2"
[ -f "$fixture/env" ] || die "$fixture/env missing: not a started fixture"
[ -f "$project/corpus.env" ] || die "$project/corpus.env missing"

envval() { sed -n "s/^$1=//p" "$2" | tail -n 1; }
LDAPI_URL=$(envval LDAPI_URL "$fixture/env")
SLAPD_DIR=$(envval SLAPD_DIR "$fixture/env")
NAME=$(envval NAME "$project/corpus.env")
SUFFIX=$(envval SUFFIX "$project/corpus.env")
ROOTDN=$(envval ROOTDN "$project/corpus.env")
ROOTPW=$(envval ROOTPW "$project/corpus.env")
BINDDN=$(envval BINDDN "$project/corpus.env")
BINDPW=$(envval BINDPW "$project/corpus.env")
ANON_READ=$(envval ANON_READ "$project/corpus.env")
SYSTEM_SCHEMAS=$(envval SYSTEM_SCHEMAS "$project/corpus.env")
[ -n "$NAME" ] && [ -n "$SUFFIX" ] && [ -n "$ROOTDN" ] && [ -n "$ROOTPW" ] || die "$project/corpus.env incomplete"
ROOT_EXTERNAL=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth

ext() { "$@" -Q -Y EXTERNAL -H "$LDAPI_URL"; }

# 1. schemas
schemas=()
for s in $SYSTEM_SCHEMAS; do schemas+=("${SLAPD_SCHEMA_DIR:-/etc/ldap/schema}/$s.ldif"); done
for f in "${schemas[@]}" "$project"/schema/*.ldif; do
    [ -e "$f" ] || continue
    cn=$(sed -n 's/^dn: cn=\([^,]*\),cn=schema,cn=config$/\1/p' "$f" | head -n 1)
    [ -n "$cn" ] || die "$f: first dn is not cn=NAME,cn=schema,cn=config"
    if ext ldapsearch -LLL -b cn=schema,cn=config -s one "(cn={*}$cn)" dn | grep -q '^dn:'; then
        echo "$PROG: schema $cn already loaded" >&2
        continue
    fi
    ext ldapadd -f "$f" >/dev/null || die "cannot add schema $f"
done

# 2. database
dbdir=$SLAPD_DIR/corpus-$NAME
mkdir -p "$dbdir"
hash=$(slappasswd -h '{SSHA}' -s "$ROOTPW")
ext ldapadd >/dev/null <<EOF || die "cannot add the database for $SUFFIX (loaded already?)"
dn: olcDatabase=mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: mdb
olcSuffix: $SUFFIX
olcDbDirectory: $dbdir
olcDbMaxSize: 104857600
olcRootDN: $ROOTDN
olcRootPW: $hash
olcAccess: {0}to * by dn.exact=$ROOT_EXTERNAL manage by * break
olcAccess: {1}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {2}to * by users read by * $( [ "$ANON_READ" = yes ] && echo read || echo none )
EOF

# 3. data
for f in "$project"/data/*.ldif; do
    [ -e "$f" ] || continue
    ext ldapadd -f "$f" >/dev/null || die "cannot add $f"
done

echo "CORPUS_SUFFIX=$SUFFIX"
echo "CORPUS_BINDDN=$BINDDN"
echo "CORPUS_BINDPW=$BINDPW"
