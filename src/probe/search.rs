//! The searches a connection makes for its maps: the base search (the static base exists and this identity
//! sees it) or, in its place, the presence check (the map's query, loosened, finds an entry holding an attribute
//! Postfix asks for: see [`crate::plan::Presence`]). Both stream their answer and take no more than they need: a
//! server that streams entries without end holds nothing.

use ldap3::{Ldap, LdapError, SearchOptions};

use super::{fail, Failure, Stage};
use crate::lookup::search::Entry;
use crate::plan::{Presence, Search};
use crate::reason::{connection_lost, ldap_reason, result_reason};

/// What a search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// The base search: the base exists; `readable` when its entry came back (an ACL may give `search` on it
    /// but not `read`).
    Base { readable: bool },
    /// The presence check found an entry holding one of the attributes Postfix asks for.
    Entry,
    /// The presence check found no entry at all: Postfix answers 550 User unknown to every recipient.
    Nothing,
    /// Entries match, but this identity reads none of the attributes: Postfix gets no value (550).
    Unreadable,
    /// The server would not make the search (a limit on unindexed searches, a time limit): not checked.
    NotChecked(String),
}

/// Make `search`; the result, and whether the connection is lost (nothing more can be asked on it).
pub async fn run(ldap: &mut Ldap, search: &Search) -> (Result<Found, Failure>, bool) {
    let result = match &search.presence {
        None => base(ldap, &search.base).await,
        Some(p) => presence(ldap, &search.base, p).await,
    };
    match result {
        Ok(found) => (Ok(found), false),
        Err(Broken::Ldap(e)) => (Err(fail(Stage::Search, ldap_reason(&e))), connection_lost(&e)),
        Err(Broken::Result(32, text)) => {
            let why = format!("search base {} not found: {}", search.base, result_reason(32, &text));
            (Err(fail(Stage::Search, why)), false)
        }
        Err(Broken::Result(rc, text)) => {
            (Err(fail(Stage::Search, format!("search of {}: {}", search.base, result_reason(rc, &text)))), false)
        }
        Err(Broken::Reply(why)) => (Err(fail(Stage::Search, why)), true),
    }
}

/// Why a search gave no answer.
enum Broken {
    Ldap(LdapError),
    /// An LDAP result code other than success (and the text with it).
    Result(u32, String),
    /// A reply no working server gives: the connection cannot be trusted any more.
    Reply(&'static str),
}

impl From<LdapError> for Broken {
    fn from(e: LdapError) -> Broken {
        Broken::Ldap(e)
    }
}

/// A base-scope search of `base` asking for no attribute. A second entry is no answer a working server gives.
async fn base(ldap: &mut Ldap, base: &str) -> Result<Found, Broken> {
    let mut stream = ldap.streaming_search(base, ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"]).await?;
    let mut entries = 0;
    while let Some(item) = stream.next().await? {
        if item.is_ref() || item.is_intermediate() {
            continue;
        }
        entries += 1;
        if entries > 1 {
            return Err(Broken::Reply("the server answered a base-scope search with more than one entry"));
        }
    }
    match stream.finish().await {
        r if r.rc == 0 => Ok(Found::Base { readable: entries == 1 }),
        r => Err(Broken::Result(r.rc, r.text)),
    }
}

/// The presence check: one entry is enough (size limit 1; the search is abandoned at the first entry, so the
/// server does not go on scanning for a second one).
async fn presence(ldap: &mut Ldap, base: &str, p: &Presence) -> Result<Found, Broken> {
    let deref = crate::lookup::search::ldap_deref(p.dereference);
    let scope = crate::lookup::search::ldap_scope(p.scope);
    let attrs = if p.attrs.is_empty() { vec!["1.1".to_string()] } else { p.attrs.clone() };
    let opts = SearchOptions::new().sizelimit(1).deref(deref);
    let mut stream = ldap.with_search_options(opts).streaming_search(base, scope, &p.filter, attrs).await?;
    let mut found = None;
    while let Some(item) = stream.next().await? {
        if item.is_ref() || item.is_intermediate() {
            continue;
        }
        let entry = Entry::parse(item.0).ok_or(Broken::Reply("the server sent an entry that cannot be decoded"))?;
        let holds_value = p.attrs.is_empty() || entry.attrs.iter().any(|(_, values)| !values.is_empty());
        found = Some(if holds_value { Found::Entry } else { Found::Unreadable });
        break;
    }
    let msgid = stream.ldap_handle().last_id();
    let result = stream.finish().await;
    if let Some(found) = found {
        if result.rc == 88 {
            // Left before the end: tell the server to stop looking (no answer comes to an Abandon).
            let _ = ldap.abandon(msgid).await;
        }
        return Ok(found);
    }
    match result.rc {
        0 | 4 => Ok(Found::Nothing),
        // adminLimitExceeded (a limit on unindexed searches: slapd's size.unchecked, 389-ds's lookthrough limit),
        // timeLimitExceeded: the server would not look, which says nothing about the data.
        3 | 11 => Ok(Found::NotChecked(result_reason(result.rc, &result.text))),
        rc => Err(Broken::Result(rc, result.text)),
    }
}
