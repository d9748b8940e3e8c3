//! `--query KEY -f MAP`: one lookup, exactly as `postmap -q KEY ldap:MAP` does it, with an exit status that
//! tells what postmap cannot: 0 found (the value on stdout, as postmap prints it), 1 not found (nothing on
//! stdout), 2 lookup error (one line on stderr: postmap would say "query error" and also exit 1).
//!
//! The connection is made as the probe makes it ([`connect::open_session`]) and as Postfix does: the
//! servers in `server_host` order, the first one that accepts a connection is used, whatever happens next.
//! Everything runs under one deadline, with the same rule as a check ([`Deadline::for_maps`]).

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::lookup::{self, Skip, Spec};
use crate::map;
use crate::map::{BindMode, Scheme};
use crate::plan;
use crate::postfix;
use crate::probe::{self, connect};
use crate::reason::secs;
use crate::report::{print_bytes, print_stderr};

/// What a query gave.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Found(Vec<u8>),
    NotFound,
    /// Postfix would not query LDAP for this key (the reason); `postmap -q` prints nothing and exits 1.
    Skipped(String),
    Error(String),
}

impl Answer {
    pub fn code(&self) -> u8 {
        match self {
            Answer::Found(_) => 0,
            Answer::NotFound | Answer::Skipped(_) => 1,
            Answer::Error(_) => 2,
        }
    }
}

/// Run `--query`: `key` in the map `map_file`. `postfix_config` is passed to postmap for `domain` tables.
pub fn run(
    map_file: &Path,
    key: &OsStr,
    timeout: Option<Duration>,
    postfix_config: Option<&Path>,
    verbose: u8,
) -> ExitCode {
    let answer = query(map_file, key, timeout, postfix_config);
    match &answer {
        Answer::Found(value) => {
            let mut line = value.clone();
            line.push(b'\n');
            print_bytes(&line);
        }
        Answer::NotFound => {}
        Answer::Skipped(why) => {
            if verbose > 0 {
                print_stderr(&format!("ldap-health-check: not looked up: {why}\n"));
            }
        }
        Answer::Error(why) => print_stderr(&format!("ldap-health-check: lookup error: {why}\n")),
    }
    ExitCode::from(answer.code())
}

/// Look `key` up in `map_file`.
pub fn query(map_file: &Path, key: &OsStr, timeout: Option<Duration>, postfix_config: Option<&Path>) -> Answer {
    let start = Instant::now();
    let map = match map::load(map_file, Deadline::for_maps(start, timeout, []).until()) {
        Ok(map) => map,
        Err(e) => return Answer::Error(format!("{e} (Postfix would refuse to open the map)")),
    };
    if let Some(why) = plan::not_checkable(&map) {
        return Answer::Error(format!("{}: {why}", map_file.display()));
    }
    let deadline = Deadline::for_maps(start, timeout, [plan::longest(&map, 1)]);
    let spec = match Spec::new(&map, deadline.until()) {
        Ok(spec) => spec,
        Err(e) => return Answer::Error(format!("{}: {e}", map_file.display())),
    };
    let mut table = |t: &str, k: &str| postfix::postmap_table_lookup(postfix_config, t, k, &deadline);
    // Postfix's order: the key and the domain list, then the connection, then the expansion.
    let query = match spec.key(key.as_encoded_bytes(), &mut table) {
        Ok(Ok(key)) => spec.query(key),
        Ok(Err(why)) => return Answer::Skipped(why.to_string()),
        Err(e) => return Answer::Error(e.message),
    };
    let rt = match probe::runtime() {
        Ok(rt) => rt,
        Err(e) => return Answer::Error(format!("{e:#}")),
    };
    let answer = rt.block_on(ask(&map, &spec, query, &deadline));
    // A hung name lookup may still hold a blocking thread: do not wait for it.
    rt.shutdown_background();
    answer
}

/// The servers in `server_host` order, as Postfix tries them: the first one that connects answers. As in
/// `dict_ldap_lookup()`, the connection comes before the expansion: with the directory down, a key whose
/// expansion is empty is an error, unless Postfix's connect does no I/O (`bind = no`, no StartTLS: libldap
/// connects at the first search), when it is not found, and a filter libldap refuses fails before any connect.
async fn ask(map: &map::Map, spec: &Spec, query: Result<lookup::Query, Skip>, deadline: &Deadline) -> Answer {
    let until = deadline.until_tokio();
    if map.bind == BindMode::None && !map.start_tls {
        if map.servers.iter().any(|s| s.scheme == Scheme::Ldaps) {
            // An ldaps map's TLS context (its files) is made at the connect, before any I/O.
            let note = Default::default();
            if let Err(e) = probe::tls::client_config(&map.tls, note, deadline.until()) {
                return Answer::Error(e);
            }
        }
        match &query {
            Err(why) => return Answer::Skipped(why.to_string()),
            Ok(q) if ldap3::parse_filter(crate::map::filter::normalize(&q.filter)).is_err() => {
                return Answer::Error("search error: Bad search filter (libldap refuses it before sending)".into())
            }
            Ok(_) => {}
        }
    }
    let mut unreachable = Vec::new();
    for ep in plan::endpoints(map) {
        let url = ep.server.url();
        let mut session = match connect::open_session(&ep, deadline).await {
            Ok(s) => s,
            // The verdict's failover rule (a failure that fails over, unless the whole deadline has passed).
            Err(f) if f.fails_over(ep.server.scheme) && !(f.timed_out && deadline.passed()) => {
                unreachable.push(format!("{url}: {f}"));
                continue;
            }
            Err(f) => return Answer::Error(format!("{url}: {f}")),
        };
        let query = match &query {
            Ok(q) => q,
            Err(why) => return Answer::Skipped(why.to_string()),
        };
        let looked_up = tokio::time::timeout_at(until, lookup::lookup(&mut session.ldap, spec, query)).await;
        return match looked_up {
            Ok(Ok(Some(v))) => Answer::Found(v),
            Ok(Ok(None)) => Answer::NotFound,
            Ok(Err(e)) => Answer::Error(format!("{url}: {e}")),
            Err(_) => Answer::Error(format!("{url}: timed out after {} in the lookup", secs(deadline.length()))),
        };
    }
    Answer::Error(crate::verdict::no_server_reason(unreachable))
}
