//! The lookup engine: what Postfix's `dict_ldap` does for one key (`dict_ldap_lookup()` and
//! `dict_ldap_get_values()` in `src/global/dict_ldap.c`), with the `%` templates of [`crate::map::template`].
//!
//! A lookup has two steps:
//! 1. [`Spec::prepare`] (no network): fold the key as Postfix does ([`crate::casefold`]), apply the `domain`
//!    restriction ([`domain`]), expand `search_base` (RFC 2253 quoting) and `query_filter` (RFC 2254/4515
//!    quoting). A key Postfix would not search for at all is [`Prepared::Skipped`]: not found, without any query.
//! 2. [`lookup`] (on a connected, bound [`ldap3::Ldap`]): the search and the values in Postfix's order
//!    ([`search`]). What Postfix turns into `DICT_ERR_RETRY` (451 temporary lookup failure) is a
//!    [`LookupError`]: a missing static base, a size, expansion or recursion limit, a malformed URL, any other
//!    search error.
//!
//! No timeout in here: the caller runs [`lookup`] under its deadline.

pub(crate) mod domain;
pub(crate) mod search;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Instant;

use ldap3::Ldap;

use crate::casefold::casefold;
use crate::map::template::{domain_start, expand, Quote, Usage};
use crate::map::{Map, Scope};
use domain::DomainList;

/// Why a lookup fails: Postfix would return `DICT_ERR_RETRY`, i.e. defer or answer 451.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LookupError {
    pub(crate) message: String,
    /// The connection is gone (an I/O error, the server closed it): nothing more can be asked on it.
    pub(crate) connection_lost: bool,
}

impl LookupError {
    fn new(message: impl Into<String>) -> Self {
        LookupError { message: message.into(), connection_lost: false }
    }

    fn from_ldap(e: &ldap3::LdapError) -> Self {
        LookupError {
            message: format!("search error: {}", crate::reason::ldap_reason(e)),
            connection_lost: crate::reason::connection_lost(e),
        }
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LookupError {}

/// What one map needs for lookups, prepared once from its [`Map`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spec {
    pub(crate) search_base: String,
    pub(crate) query_filter: String,
    pub(crate) result_format: String,
    pub(crate) usage: Usage,
    /// `search_base` depends on the key: a missing base then means "not found", not an error.
    pub(crate) dynamic_base: bool,
    pub(crate) domain: DomainList,
    /// The attributes requested, in Postfix's order: terminal, leaf, regular, special.
    pub(crate) attributes: Vec<String>,
    pub(crate) num_terminal: usize,
    pub(crate) num_leaf: usize,
    /// Terminal + leaf + regular: the attributes before the special ones.
    pub(crate) num_attributes: usize,
    pub(crate) scope: Scope,
    pub(crate) size_limit: u32,
    pub(crate) expansion_limit: u32,
    pub(crate) recursion_limit: u32,
    pub(crate) dereference: u8,
    /// The map's `timeout`, sent as the server-side time limit of each search (as libldap does).
    pub(crate) time_limit: u32,
}

/// A key ready to be searched for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Query {
    /// The key as Postfix folds it.
    pub(crate) key: String,
    pub(crate) base: String,
    pub(crate) filter: String,
}

/// Why Postfix would not search at all for a key: the lookup is "not found" without any query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// Keys are C strings and SMTPUTF8 keys must be UTF-8: Postfix warns and skips.
    NotUtf8,
    EmptyKey,
    /// `domain` is set and the key is not `user@domain` with a non-empty local part.
    DomainNeedsAddress,
    /// `domain` is set and the key's domain is not on the list.
    DomainNotListed(String),
    /// A template uses the domain part (`%d`, `%D`, `%1`..`%9`) and the key has none.
    NoDomain,
    /// A template uses the local part (`%u`, `%U`) and the key's is empty.
    NoLocalPart,
    /// A template uses `%N` and the key's domain has fewer labels.
    TooFewLabels(usize),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotUtf8 => f.write_str("the key is not valid UTF-8"),
            Skip::EmptyKey => f.write_str("the key is empty"),
            Skip::DomainNeedsAddress => {
                f.write_str("the map has a domain list and the key is not user@domain with a non-empty user")
            }
            Skip::DomainNotListed(d) => write!(f, "the key's domain {d} is not in the map's domain list"),
            Skip::NoDomain => f.write_str("the templates use the key's domain (%d, %D or %1-%9) and the key has none"),
            Skip::NoLocalPart => f.write_str("the templates use the key's local part (%u or %U) and it is empty"),
            Skip::TooFewLabels(n) => write!(f, "the templates use %{n} and the key's domain has fewer labels"),
        }
    }
}

/// The first step of a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Prepared {
    Search(Query),
    Skipped(Skip),
}

impl Spec {
    /// The lookup parameters of `map`. Fails only when a `domain` file cannot be read by `until` (fatal for
    /// Postfix).
    pub(crate) fn new(map: &Map, until: Instant) -> Result<Spec, String> {
        let mut usage = Usage::default();
        // The map reader has checked the templates: a rejected one cannot occur here.
        let dynamic_base = usage.add(&map.search_base, true).unwrap_or(false);
        usage.add(&map.query_filter, true);
        usage.add(&map.result_format, false);
        let mut attributes = map.terminal_result_attribute.clone();
        attributes.extend(map.leaf_result_attribute.iter().cloned());
        attributes.extend(map.result_attribute.iter().cloned());
        let num_attributes = attributes.len();
        attributes.extend(map.special_result_attribute.iter().cloned());
        Ok(Spec {
            search_base: map.search_base.clone(),
            query_filter: map.query_filter.clone(),
            result_format: map.result_format.clone(),
            usage,
            dynamic_base,
            domain: DomainList::parse(&map.domain, until)?,
            num_terminal: map.terminal_result_attribute.len(),
            num_leaf: map.leaf_result_attribute.len(),
            num_attributes,
            attributes,
            scope: map.scope,
            size_limit: map.size_limit,
            expansion_limit: map.expansion_limit,
            recursion_limit: map.recursion_limit,
            dereference: map.dereference,
            time_limit: map.timeout,
        })
    }

    /// Step 1 of `dict_ldap_lookup()`, without the network: the key as Postfix sees it (a C string: cut at a
    /// NUL; skipped unless UTF-8; case-folded), the `domain` check, then the expanded base and filter.
    /// `table` answers `type:table` entries of the domain list (see [`crate::postfix::postmap_table_lookup`]);
    /// its failure is a lookup error, as for Postfix.
    pub(crate) fn prepare(
        &self,
        key: &[u8],
        table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
    ) -> Result<Prepared, LookupError> {
        Ok(match self.key(key, table)?.and_then(|key| self.query(key)) {
            Ok(query) => Prepared::Search(query),
            Err(skip) => Prepared::Skipped(skip),
        })
    }

    /// The steps of `dict_ldap_lookup()` before it connects: the key as Postfix sees it (a C string: cut at a
    /// NUL; skipped unless UTF-8; case-folded), then the `domain` check.
    pub(crate) fn key(
        &self,
        key: &[u8],
        table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
    ) -> Result<Result<String, Skip>, LookupError> {
        let key = key.split(|&b| b == 0).next().unwrap_or_default();
        let Ok(key) = std::str::from_utf8(key) else {
            return Ok(Err(Skip::NotUtf8));
        };
        let key = casefold(key);
        if !self.domain.is_empty() {
            match domain_start(key.as_bytes()) {
                None | Some(1) => return Ok(Err(Skip::DomainNeedsAddress)),
                Some(i) => {
                    let domain = &key[i..];
                    if !self.domain.matches(domain, table).map_err(LookupError::new)? {
                        return Ok(Err(Skip::DomainNotListed(domain.to_string())));
                    }
                }
            }
        }
        Ok(Ok(key))
    }

    /// The steps after the connection: `search_base` and `query_filter` expanded for `key`; a key whose
    /// expansion is empty is not looked up (not found).
    pub(crate) fn query(&self, key: String) -> Result<Query, Skip> {
        let bytes = key.as_bytes();
        let mut base = Vec::new();
        let mut filter = Vec::new();
        if !expand(&self.usage, &self.search_base, bytes, None, &mut base, Quote::Rfc2253)
            || !expand(&self.usage, &self.query_filter, bytes, None, &mut filter, Quote::Rfc2254)
        {
            return Err(self.why_skipped(bytes));
        }
        // Templates and key are UTF-8 and quoting adds ASCII only.
        let text =
            |v: Vec<u8>| String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(Query { key, base: text(base), filter: text(filter) })
    }

    fn why_skipped(&self, key: &[u8]) -> Skip {
        let d = domain_start(key);
        if key.is_empty() {
            Skip::EmptyKey
        } else if self.usage.key_domain && d.is_none_or(|d| d == key.len()) {
            Skip::NoDomain
        } else if self.usage.key_user && d == Some(1) {
            Skip::NoLocalPart
        } else {
            Skip::TooFewLabels(self.usage.nparts)
        }
    }
}

/// Step 2: search for a prepared key and collect the values as Postfix does. `Ok(None)` is "not found".
/// The result is the exact text Postfix's lookup returns (`postmap -q` prints it plus a newline).
pub(crate) async fn lookup(ldap: &mut Ldap, spec: &Spec, query: &Query) -> Result<Option<Vec<u8>>, LookupError> {
    search::lookup(ldap, spec, query).await
}
