#!/bin/sh
# Runs the unit tests of the vendored lber and ldap3 (against the vendored lber), in a copy outside this crate:
# cargo refuses `cargo test -p ldap3` here (a path dependency that is not a workspace member, with
# dev-dependencies that are not in our lock file). Needs crates.io for ldap3's dev-dependencies the first time.
#   vendor/test.sh [extra cargo test args]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${TMPDIR:-/tmp}/ldap-health-check-vendor-test
rm -rf "$work/src"
mkdir -p "$work/src"
cp -r "$here/ldap3" "$here/lber" "$work/src/"
printf '\n[patch.crates-io]\nlber = { path = "../lber" }\n' >> "$work/src/ldap3/Cargo.toml"
export CARGO_TARGET_DIR="$work/target"
cargo test --manifest-path "$work/src/lber/Cargo.toml" "$@"
cargo test --manifest-path "$work/src/ldap3/Cargo.toml" --lib --no-default-features --features sync,tls-rustls-ring "$@"
