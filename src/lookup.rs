//! The lookup engine: what Postfix's `dict_ldap` does for one key (`dict_ldap_lookup()` and
//! `dict_ldap_get_values()` in `src/global/dict_ldap.c`, the `%` templates of `src/global/db_common.c`).
//!
//! A lookup has two steps:
//! 1. [`Spec::prepare`] (no network): fold the key as Postfix does ([`crate::casefold`]), apply the `domain`
//!    restriction, expand `search_base` (RFC 2253 quoting) and `query_filter` (RFC 2254/4515 quoting). A key
//!    Postfix would not search for at all is [`Prepared::Skipped`]: not found, without any query.
//! 2. [`lookup`] (on a connected, bound [`ldap3::Ldap`]): the search with `scope`, `size_limit`, `dereference`
//!    and the server time limit `timeout`, then the values in Postfix's order: entries as the server sends them,
//!    each entry's attributes in the order the server sends them (not the `result_attribute` order), each
//!    value through `result_format`, joined with `,`, duplicates kept; `special_result_attribute` DNs and LDAP
//!    URLs followed depth-first (`recursion_limit`), `terminal_result_attribute` and `leaf_result_attribute`
//!    as Postfix applies them (including its habit of carrying the terminal/leaf state from one entry to the
//!    next within a result). What Postfix turns into `DICT_ERR_RETRY` (451 temporary lookup failure) is a
//!    [`LookupError`]: a missing static base, a size, expansion or recursion limit, a malformed URL, any
//!    other search error.
//!
//! No timeout in here: the caller runs [`lookup`] under its one deadline (`tokio::time::timeout_at`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use ldap3::asn1::StructureTag;
use ldap3::{DerefAliases, Ldap, SearchOptions};

use crate::casefold::casefold;
use crate::config::{hex_unescape, url_rest, Map, Scope};

/// Why a lookup fails: Postfix would return `DICT_ERR_RETRY`, i.e. defer or answer 451.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupError {
    pub message: String,
    /// The connection is gone (an I/O error, the server closed it): nothing more can be asked on it.
    pub connection_lost: bool,
}

impl LookupError {
    fn new(message: impl Into<String>) -> Self {
        LookupError { message: message.into(), connection_lost: false }
    }

    fn from_ldap(e: &ldap3::LdapError) -> Self {
        LookupError {
            message: format!("search error: {}", crate::probe::ldap_reason(e)),
            connection_lost: crate::probe::connection_lost(e),
        }
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LookupError {}

// ---------------------------------------------------------------------------------------------------------
// Templates (db_common.c)

/// What the three templates of a map use of the key and of the values (`db_common_parse()` flags). Postfix
/// keeps ONE set of flags for `search_base`, `query_filter` and `result_format`: a `%D` in `result_format`
/// makes unqualified keys skip the search, as does `%d` in the filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub key_user: bool,
    pub key_domain: bool,
    pub value_user: bool,
    pub value_domain: bool,
    /// The highest `%1`..`%9` seen: keys whose domain has fewer labels are skipped.
    pub nparts: usize,
}

impl Usage {
    /// `db_common_parse()`: record what `template` uses; return whether it depends on the key or value.
    /// `query` is true for `search_base` and `query_filter`, false for `result_format`.
    pub fn add(&mut self, template: &str, query: bool) -> bool {
        let mut dynamic = false;
        let mut bytes = template.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                continue;
            }
            match bytes.next() {
                Some(b'%') | None => {}
                Some(b'u') => {
                    if query {
                        self.key_user = true;
                    } else {
                        self.value_user = true;
                    }
                    dynamic = true;
                }
                Some(b'd') => {
                    if query {
                        self.key_domain = true;
                    } else {
                        self.value_domain = true;
                    }
                    dynamic = true;
                }
                Some(b's' | b'S') => dynamic = true,
                Some(b'U') => {
                    self.key_user = true;
                    dynamic = true;
                }
                Some(c @ b'1'..=b'9') => {
                    self.nparts = self.nparts.max(usize::from(c - b'0'));
                    self.key_domain = true;
                    dynamic = true;
                }
                Some(b'D') => {
                    self.key_domain = true;
                    dynamic = true;
                }
                // Rejected when the map is read (config.rs: "Invalid query template").
                Some(_) => {}
            }
        }
        dynamic
    }
}

/// How a key part is quoted when it is put into a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// `result_format`: values go in as they are.
    None,
    /// `search_base`: Postfix's `rfc2253_quote()`.
    Rfc2253,
    /// `query_filter`: Postfix's `rfc2254_quote()` (RFC 4515).
    Rfc2254,
}

/// Postfix's `rfc2253_quote()`: space, tab, `"`, `#`, `+`, `,`, `;`, `<`, `>` and `\` become `\XX` (upper-case
/// hex) everywhere in the value, not only where RFC 4514 requires it. Other bytes (UTF-8 included) pass.
pub fn rfc2253_quote(s: &[u8], out: &mut Vec<u8>) {
    quote_bytes(s, b" \t\"#+,;<>\\", out);
}

/// Postfix's `rfc2254_quote()`: `*`, `(`, `)` and `\` become `\XX`, so a key can never change the filter.
/// (A NUL cannot occur: keys are C strings, see [`Spec::prepare`].)
pub fn rfc2254_quote(s: &[u8], out: &mut Vec<u8>) {
    quote_bytes(s, b"*()\\", out);
}

fn quote_bytes(s: &[u8], special: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        if special.contains(&b) {
            out.extend_from_slice(format!("\\{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
}

fn put(quote: Quote, s: &[u8], out: &mut Vec<u8>) {
    match quote {
        Quote::None => out.extend_from_slice(s),
        Quote::Rfc2253 => rfc2253_quote(s, out),
        Quote::Rfc2254 => rfc2254_quote(s, out),
    }
}

/// Index where the domain starts (after the last `@`), if there is an `@`.
fn domain_start(s: &[u8]) -> Option<usize> {
    s.iter().rposition(|&b| b == b'@').map(|i| i + 1)
}

/// The non-empty labels of a domain (`argv_split(domain, ".")`: `a..b` has two labels).
fn labels(domain: &[u8]) -> Vec<&[u8]> {
    domain.split(|&b| b == b'.').filter(|l| !l.is_empty()).collect()
}

/// Postfix's `db_common_expand()`. Query mode (`key` is `None`): `value` is the lookup key. Result mode:
/// `value` is an attribute value and `key` the lookup key. Appends the expansion to `out`, preceded by a `,`
/// when `out` already holds something; returns false (appending nothing) when the value or key is skipped:
/// empty, or lacking the local part or domain (or domain labels) that the templates use.
pub fn expand(
    usage: &Usage,
    template: &str,
    value: &[u8],
    key: Option<&[u8]>,
    out: &mut Vec<u8>,
    quote: Quote,
) -> bool {
    if value.is_empty() {
        return false;
    }
    let mut vdomain = None;
    let mut kdomain = None;
    let lacks = |d: Option<usize>, s: &[u8], user: bool, domain: bool| {
        (domain && d.is_none_or(|d| d == s.len())) || (user && d == Some(1))
    };
    match key {
        Some(key) => {
            if usage.value_domain || usage.value_user {
                vdomain = domain_start(value);
            }
            if lacks(vdomain, value, usage.value_user, usage.value_domain) {
                return false;
            }
            if usage.key_domain || usage.key_user {
                kdomain = domain_start(key);
            }
            if lacks(kdomain, key, usage.key_user, usage.key_domain) {
                return false;
            }
        }
        None => {
            if usage.key_domain || usage.key_user {
                vdomain = domain_start(value);
            }
            if lacks(vdomain, value, usage.key_user, usage.key_domain) {
                return false;
            }
        }
    }
    let parts = if usage.nparts > 0 {
        let d = match key {
            Some(key) => kdomain.map(|i| &key[i..]),
            None => vdomain.map(|i| &value[i..]),
        };
        let parts = labels(d.unwrap_or_default());
        if parts.len() < usage.nparts {
            return false;
        }
        parts
    } else {
        Vec::new()
    };
    if !out.is_empty() {
        out.push(b',');
    }
    let user_of = |s: &'_ [u8], d: Option<usize>| -> Vec<u8> { d.map_or(s, |i| &s[..i - 1]).to_vec() };
    let mut bytes = template.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            None => {}
            Some(b'%') => out.push(b'%'),
            Some(b's') => put(quote, value, out),
            Some(b'u') => put(quote, &user_of(value, vdomain), out),
            Some(b'd') => put(quote, vdomain.map_or(&[][..], |i| &value[i..]), out),
            Some(b'S') => put(quote, key.unwrap_or(value), out),
            Some(b'U') => match key {
                Some(key) => put(quote, &user_of(key, kdomain), out),
                None => put(quote, &user_of(value, vdomain), out),
            },
            Some(b'D') => {
                let d = match key {
                    Some(key) => kdomain.map_or(&[][..], |i| &key[i..]),
                    None => vdomain.map_or(&[][..], |i| &value[i..]),
                };
                put(quote, d, out)
            }
            Some(c @ b'1'..=b'9') => {
                let n = usize::from(c - b'0');
                if let Some(label) = parts.len().checked_sub(n).and_then(|i| parts.get(i)) {
                    put(quote, label, out);
                }
            }
            Some(other) => {
                out.push(b'%');
                out.push(other);
            }
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------------------
// The domain restriction (db_common_check_domain, match_list)

/// One entry of a `domain` list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// A domain, compared after case folding.
    Literal(String),
    /// A `type:table` lookup (`hash:/etc/postfix/domains`), asked through `postmap -q`.
    Table(String),
}

/// A `domain` list (`string_list_init(MATCH_FLAG_RETURN, ...)`): domains, `/file/name` (its lines, in place,
/// `#` lines skipped) and `type:table`, each optionally negated with `!`; the first pattern that matches
/// decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainList {
    patterns: Vec<(bool, Pattern)>,
}

impl DomainList {
    /// Build the list from the tokens of `domain` (already split on commas and whitespace). A file that cannot
    /// be read is an error, as it is fatal for Postfix.
    pub fn parse(tokens: &[String]) -> Result<DomainList, String> {
        let mut list = DomainList::default();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        list.add(&tokens, 0)?;
        Ok(list)
    }

    fn add(&mut self, tokens: &[&str], depth: usize) -> Result<(), String> {
        for &token in tokens {
            let bare = token.trim_start_matches('!');
            let negate = (token.len() - bare.len()) % 2 == 1;
            if token.starts_with('/') {
                if depth > 10 {
                    return Err(format!("domain: {token}: files included too deeply"));
                }
                let text = std::fs::read(token).map_err(|e| format!("domain: open file {token}: {e}"))?;
                let text = String::from_utf8_lossy(&text).into_owned();
                for line in text.lines().filter(|l| !l.starts_with('#')) {
                    let words: Vec<&str> = line.split([' ', ',', '\t', '\r', '\n']).filter(|t| !t.is_empty()).collect();
                    self.add(&words, depth + 1)?;
                }
            } else if bare.starts_with('/') {
                return Err(format!("domain: {token}: '!' before a /file/name is not supported by Postfix"));
            } else if !bare.starts_with('[') && bare.contains(':') {
                self.patterns.push((negate, Pattern::Table(bare.to_string())));
            } else {
                self.patterns.push((negate, Pattern::Literal(casefold(bare))));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `domain` (already folded) is on the list. `table` answers `type:table` patterns.
    pub fn matches(
        &self,
        domain: &str,
        table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
    ) -> Result<bool, String> {
        for (negate, pattern) in &self.patterns {
            let hit = match pattern {
                Pattern::Literal(l) => l == domain,
                Pattern::Table(t) => table(t, domain)?,
            };
            if hit {
                return Ok(!negate);
            }
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------------------------------------------------
// The map's lookup parameters

/// What one map needs for lookups, prepared once from its [`Map`].
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// How messages name the map (its path).
    pub name: String,
    pub search_base: String,
    pub query_filter: String,
    pub result_format: String,
    pub usage: Usage,
    /// `search_base` depends on the key: a missing base then means "not found", not an error.
    pub dynamic_base: bool,
    pub domain: DomainList,
    /// The attributes requested, in Postfix's order: terminal, leaf, regular, special.
    pub attributes: Vec<String>,
    pub num_terminal: usize,
    pub num_leaf: usize,
    /// Terminal + leaf + regular: the attributes before the special ones.
    pub num_attributes: usize,
    pub scope: Scope,
    pub size_limit: u32,
    pub expansion_limit: u32,
    pub recursion_limit: u32,
    pub dereference: u8,
    /// The map's `timeout`, sent as the server-side time limit of each search (as libldap does).
    pub time_limit: u32,
}

/// A key ready to be searched for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The key as Postfix folds it.
    pub key: String,
    pub base: String,
    pub filter: String,
}

/// Why Postfix would not search at all for a key: the lookup is "not found" without any query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
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
pub enum Prepared {
    Search(Query),
    Skipped(Skip),
}

impl Spec {
    /// The lookup parameters of `map`. Fails only when a `domain` file cannot be read (fatal for Postfix).
    pub fn new(map: &Map) -> Result<Spec, String> {
        let mut usage = Usage::default();
        let dynamic_base = usage.add(&map.search_base, true);
        usage.add(&map.query_filter, true);
        usage.add(&map.result_format, false);
        let mut attributes = map.terminal_result_attribute.clone();
        attributes.extend(map.leaf_result_attribute.iter().cloned());
        attributes.extend(map.result_attribute.iter().cloned());
        let num_attributes = attributes.len();
        attributes.extend(map.special_result_attribute.iter().cloned());
        Ok(Spec {
            name: map.path.display().to_string(),
            search_base: map.search_base.clone(),
            query_filter: map.query_filter.clone(),
            result_format: map.result_format.clone(),
            usage,
            dynamic_base,
            domain: DomainList::parse(&map.domain)?,
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
    pub fn prepare(
        &self,
        key: &[u8],
        table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
    ) -> Result<Prepared, LookupError> {
        let key = key.split(|&b| b == 0).next().unwrap_or_default();
        let Ok(key) = std::str::from_utf8(key) else {
            return Ok(Prepared::Skipped(Skip::NotUtf8));
        };
        let key = casefold(key);
        let bytes = key.as_bytes();
        if !self.domain.is_empty() {
            match domain_start(bytes) {
                None | Some(1) => return Ok(Prepared::Skipped(Skip::DomainNeedsAddress)),
                Some(i) => {
                    let domain = &key[i..];
                    if !self.domain.matches(domain, table).map_err(LookupError::new)? {
                        return Ok(Prepared::Skipped(Skip::DomainNotListed(domain.to_string())));
                    }
                }
            }
        }
        let mut base = Vec::new();
        let mut filter = Vec::new();
        if !expand(&self.usage, &self.search_base, bytes, None, &mut base, Quote::Rfc2253)
            || !expand(&self.usage, &self.query_filter, bytes, None, &mut filter, Quote::Rfc2254)
        {
            return Ok(Prepared::Skipped(self.why_skipped(bytes)));
        }
        // Templates and key are UTF-8 and quoting adds ASCII only.
        let text =
            |v: Vec<u8>| String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(Prepared::Search(Query { key: key.clone(), base: text(base), filter: text(filter) }))
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

// ---------------------------------------------------------------------------------------------------------
// The search and the values (dict_ldap_get_values)

/// One entry as the server sent it: attributes in its order, values as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// `ldap_get_values_len(entry, name)`: the values of the attribute named exactly `name` (any case).
    fn values(&self, name: &str) -> Option<&Vec<Vec<u8>>> {
        self.attrs.iter().find(|(a, _)| a.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Parse a SearchResultEntry ([APPLICATION 4] { objectName, attributes }).
    fn parse(tag: StructureTag) -> Option<Entry> {
        let mut parts = tag.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8_lossy(&parts.next()?.expect_primitive()?).into_owned();
        let mut attrs = Vec::new();
        for attr in parts.next()?.expect_constructed()? {
            let mut attr = attr.expect_constructed()?.into_iter();
            let name = String::from_utf8_lossy(&attr.next()?.expect_primitive()?).into_owned();
            let values = match attr.next() {
                Some(set) => set.expect_constructed()?.into_iter().filter_map(|v| v.expect_primitive()).collect(),
                None => Vec::new(),
            };
            attrs.push((name, values));
        }
        Some(Entry { dn, attrs })
    }
}

/// Postfix's `attrdesc_subtype(a1, a2)`: 1 when `a2` is `a1` or one of its subtypes (`mail;lang-en`), -1 when
/// `a1` is a subtype of `a2`, 0 otherwise; case-insensitive.
pub fn attrdesc_subtype(a1: &str, a2: &str) -> i32 {
    let (a1, a2) = (a1.as_bytes(), a2.as_bytes());
    let common = a1.iter().zip(a2).take_while(|(x, y)| x.eq_ignore_ascii_case(y)).count();
    let (r1, r2) = (&a1[common..], &a2[common..]);
    if r1.is_empty() && (r2.is_empty() || r2[0] == b';') {
        1
    } else if r2.is_empty() && r1.first() == Some(&b';') {
        -1
    } else {
        0
    }
}

/// The parts of an LDAP URL that a special result attribute's search uses (`ldap_url_parse()`, OpenLDAP's
/// historic defaults: scope base, no filter meaning `(objectclass=*)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdapUrl {
    pub dn: String,
    pub attrs: Vec<String>,
    pub scope: Scope,
    pub filter: Option<String>,
}

pub fn is_ldap_url(value: &str) -> bool {
    url_rest(value).is_some()
}

/// Parse an LDAP URL from a special result attribute.
pub fn parse_ldap_url(value: &str) -> Result<LdapUrl, String> {
    let (mut rest, enclosed) = url_rest(value).ok_or("not an LDAP URL")?;
    if enclosed {
        rest = rest.strip_suffix('>').ok_or("bad enclosure")?;
    }
    let Some((_hostport, path)) = rest.split_once('/') else {
        return Ok(LdapUrl { dn: String::new(), attrs: Vec::new(), scope: Scope::Base, filter: None });
    };
    let parts: Vec<&str> = path.split('?').collect();
    if parts.len() > 5 {
        return Err("too many '?' in the URL".to_string());
    }
    let dn = hex_unescape(parts[0]);
    let attrs =
        parts.get(1).map(|a| a.split(',').filter(|a| !a.is_empty()).map(hex_unescape).collect()).unwrap_or_default();
    let scope = match parts.get(2).map(|s| hex_unescape(s).to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("base") => Scope::Base,
        Some("one") | Some("onelevel") => Scope::One,
        Some("sub") | Some("subtree") => Scope::Sub,
        Some("subord") | Some("subordinate") | Some("children") => {
            return Err("scope subordinate is not supported by this check".to_string())
        }
        Some(_) => return Err("bad scope".to_string()),
    };
    let filter = parts.get(3).map(|f| hex_unescape(f)).filter(|f| !f.is_empty());
    Ok(LdapUrl { dn, attrs, scope, filter })
}

/// libldap's filter reader (`ldap_pvt_put_filter()`) skips blanks (space, tab, newline) after `(`, between the
/// parts of `&`, `|` and `!` and around the whole filter, so a filter written over continuation lines works in
/// Postfix; ldap3's parser rejects them. Drop them first. Blanks inside an `attr=value` item stay: part of the
/// value, or an invalid attribute as for libldap (verified with postmap).
pub fn normalize_filter(filter: &str) -> String {
    let b = filter.as_bytes();
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\n');
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if blank(c) {
            i += 1;
        } else if c == b')' {
            out.push(c);
            i += 1;
        } else if c == b'(' {
            out.push(c);
            i += 1;
            while i < b.len() && blank(b[i]) {
                i += 1;
            }
            if i < b.len() && matches!(b[i], b'&' | b'|' | b'!') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            // A simple item: up to its closing parenthesis (libldap's find_right_paren()).
            let mut depth = 0;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        out.extend_from_slice(&b[i..i + 2]);
                        i += 2;
                        continue;
                    }
                    b'(' => depth += 1,
                    b')' if depth == 0 => break,
                    b')' => depth -= 1,
                    _ => {}
                }
                out.push(b[i]);
                i += 1;
            }
        } else {
            // A bare `attr=value` without parentheses: the rest, as it is.
            out.extend_from_slice(&b[i..]);
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ldap_scope(scope: Scope) -> ldap3::Scope {
    match scope {
        Scope::Base => ldap3::Scope::Base,
        Scope::One => ldap3::Scope::OneLevel,
        Scope::Sub => ldap3::Scope::Subtree,
    }
}

/// The outcome of one search: result code and text, and the entries.
struct SearchOutcome {
    rc: u32,
    text: String,
    entries: Vec<Entry>,
}

async fn search(
    ldap: &mut Ldap,
    spec: &Spec,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[String],
) -> Result<SearchOutcome, LookupError> {
    let deref = match spec.dereference {
        1 => DerefAliases::Searching,
        2 => DerefAliases::Finding,
        3 => DerefAliases::Always,
        _ => DerefAliases::Never,
    };
    let opts = SearchOptions::new()
        .sizelimit(i32::try_from(spec.size_limit).unwrap_or(i32::MAX))
        .timelimit(i32::try_from(spec.time_limit).unwrap_or(i32::MAX))
        .deref(deref);
    let result = ldap
        .with_search_options(opts)
        .search(base, ldap_scope(scope), &normalize_filter(filter), attrs.to_vec())
        .await
        .map_err(|e| LookupError::from_ldap(&e))?;
    let entries =
        result.0.into_iter().filter(|e| !e.is_ref() && !e.is_intermediate()).filter_map(|e| Entry::parse(e.0));
    Ok(SearchOutcome { rc: result.1.rc, text: result.1.text.clone(), entries: entries.collect() })
}

/// Step 2: search for a prepared key and collect the values as Postfix does. `Ok(None)` is "not found".
/// The result is the exact text Postfix's lookup returns (`postmap -q` prints it plus a newline).
pub async fn lookup(ldap: &mut Ldap, spec: &Spec, query: &Query) -> Result<Option<Vec<u8>>, LookupError> {
    let outcome = search(ldap, spec, &query.base, spec.scope, &query.filter, &spec.attributes).await?;
    match outcome.rc {
        0 => {}
        32 if spec.dynamic_base => return Ok(None),
        32 => {
            return Err(LookupError::new(format!(
                "search base {} not found: {}",
                query.base,
                crate::probe::result_reason(32, &outcome.text)
            )))
        }
        rc => return Err(search_error(spec, rc, &outcome.text)),
    }
    let mut walk = Walk { spec, key: query.key.as_bytes(), result: Vec::new(), expansion: 0, error: None };
    walk.values(ldap, outcome.entries, 1).await;
    match walk.error {
        Some(e) => Err(e),
        None if walk.result.is_empty() => Ok(None),
        None => Ok(Some(walk.result)),
    }
}

fn search_error(spec: &Spec, rc: u32, text: &str) -> LookupError {
    let mut message = format!("search error: {}", crate::probe::result_reason(rc, text));
    if rc == 4 && spec.size_limit > 0 {
        message.push_str(&format!(" (size_limit = {})", spec.size_limit));
    }
    LookupError::new(message)
}

/// `dict_ldap_get_values()` state: the result so far, the expansion count, the first error.
struct Walk<'s> {
    spec: &'s Spec,
    key: &'s [u8],
    result: Vec<u8>,
    expansion: u32,
    error: Option<LookupError>,
}

impl<'s> Walk<'s> {
    fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(LookupError::new(message));
        }
    }

    /// The values of `entries` (one search's result) at recursion depth `depth` (1 for the lookup's search).
    fn values<'a>(
        &'a mut self,
        ldap: &'a mut Ldap,
        entries: Vec<Entry>,
        depth: u32,
    ) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
        Box::pin(async move {
            let spec = self.spec;
            let attrs = &spec.attributes;
            // As in Postfix, these two are set at the start of the call and only updated by entries that hold
            // the attributes in question: an entry without any inherits the previous entry's state.
            let mut is_leaf = true;
            let mut is_terminal = false;
            let mut count = 0u64;
            for entry in &entries {
                if self.error.is_none() && spec.size_limit > 0 {
                    count += 1;
                    if count > u64::from(spec.size_limit) {
                        self.fail(format!("query size limit ({}) exceeded", spec.size_limit));
                    }
                }
                for name in &attrs[..spec.num_terminal] {
                    if let Some(v) = entry.values(name) {
                        is_terminal = !v.is_empty();
                        if is_terminal {
                            break;
                        }
                    }
                }
                if !is_terminal && spec.num_leaf > 0 {
                    for name in &attrs[spec.num_attributes..] {
                        if let Some(v) = entry.values(name) {
                            is_leaf = v.is_empty();
                            if !is_leaf {
                                break;
                            }
                        }
                    }
                }
                for (attr, vals) in &entry.attrs {
                    if self.error.is_some() || vals.is_empty() {
                        continue;
                    }
                    let i = attrs.iter().position(|a| attrdesc_subtype(a, attr) > 0).unwrap_or(attrs.len());
                    let leaf_only = i >= spec.num_terminal && i < spec.num_terminal + spec.num_leaf;
                    if i < spec.num_attributes || is_terminal {
                        if (is_terminal && i >= spec.num_terminal) || (!is_leaf && leaf_only) {
                            continue;
                        }
                        for v in vals {
                            let v = v.split(|&b| b == 0).next().unwrap_or_default();
                            if expand(
                                &spec.usage,
                                &spec.result_format,
                                v,
                                Some(self.key),
                                &mut self.result,
                                Quote::None,
                            ) && spec.expansion_limit > 0
                            {
                                self.expansion += 1;
                                if self.expansion > spec.expansion_limit {
                                    let limit = spec.expansion_limit;
                                    self.fail(format!("expansion limit exceeded: more than {limit} values (expansion_limit = {limit})"));
                                    break;
                                }
                            }
                        }
                    } else if depth < spec.recursion_limit && i < attrs.len() {
                        for v in vals {
                            let v =
                                String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or_default()).into_owned();
                            let found = if is_ldap_url(&v) {
                                let url = match parse_ldap_url(&v) {
                                    Ok(url) => url,
                                    Err(e) => {
                                        self.fail(format!("malformed URL {v} in {attr}: {e}"));
                                        break;
                                    }
                                };
                                let Some(wanted) = url_attrs(attrs, &url.attrs) else { continue };
                                let filter = url.filter.as_deref().unwrap_or("(objectclass=*)");
                                search(ldap, spec, &url.dn, url.scope, filter, &wanted).await
                            } else {
                                search(ldap, spec, &v, Scope::Base, "objectclass=*", attrs).await
                            };
                            match found {
                                Err(e) => self.fail(format!("{} (following {attr}: {v})", e.message)),
                                Ok(o) if o.rc == 0 => self.values(ldap, o.entries, depth + 1).await,
                                // Postfix: "DN ... not found, skipping" (a warning only).
                                Ok(o) if o.rc == 32 => {}
                                Ok(o) => {
                                    let e = search_error(spec, o.rc, &o.text);
                                    self.fail(format!("{} (following {attr}: {v})", e.message))
                                }
                            }
                            if self.error.is_some() {
                                break;
                            }
                        }
                    } else if depth >= spec.recursion_limit && i < attrs.len() {
                        let first = String::from_utf8_lossy(&vals[0]).into_owned();
                        self.fail(format!(
                            "recursion limit exceeded for special attribute {attr}={first} (recursion_limit = {})",
                            spec.recursion_limit
                        ));
                    }
                }
            }
        })
    }
}

/// Postfix's `url_attrs()`: the attributes to ask for when following an LDAP URL: all of the map's when the URL
/// names none, else the URL's that are (sub)types of the map's; `None` when nothing is left (URL skipped).
fn url_attrs(ours: &[String], theirs: &[String]) -> Option<Vec<String>> {
    if theirs.is_empty() {
        return Some(ours.to_vec());
    }
    let mut out = Vec::new();
    for a1 in theirs {
        for a2 in ours {
            match attrdesc_subtype(a1, a2) {
                1 => out.push(a2.clone()),
                -1 => out.push(a1.clone()),
                _ => {}
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn usage(base: &str, filter: &str, format: &str) -> Usage {
        let mut u = Usage::default();
        u.add(base, true);
        u.add(filter, true);
        u.add(format, false);
        u
    }

    fn q(u: &Usage, template: &str, key: &str, quote: Quote) -> Option<String> {
        let mut out = Vec::new();
        expand(u, template, key.as_bytes(), None, &mut out, quote).then(|| String::from_utf8(out).unwrap())
    }

    fn r(u: &Usage, template: &str, value: &str, key: &str) -> Option<String> {
        let mut out = Vec::new();
        expand(u, template, value.as_bytes(), Some(key.as_bytes()), &mut out, Quote::None)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn filter_quoting_escapes_what_rfc2254_quote_escapes() {
        let mut out = Vec::new();
        rfc2254_quote(b"a*)(uid=*", &mut out);
        assert_eq!(out, b"a\\2A\\29\\28uid=\\2A");
        out.clear();
        rfc2254_quote("\\ é,+ #".as_bytes(), &mut out);
        assert_eq!(out, "\\5C é,+ #".as_bytes());
    }

    #[test]
    fn base_quoting_escapes_what_rfc2253_quote_escapes() {
        let mut out = Vec::new();
        rfc2253_quote(b" a\t\"#+,;<>\\b=*()", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "\\20a\\09\\22\\23\\2B\\2C\\3B\\3C\\3E\\5Cb=*()");
        let mut out = Vec::new();
        rfc2253_quote("ü".as_bytes(), &mut out);
        assert_eq!(out, "ü".as_bytes());
    }

    #[test]
    fn query_expansions() {
        let u = usage("", "(&(uid=%u)(d=%d)(s=%s)(S=%S)(U=%U)(D=%D)(%1.%2.%3)(100%%))", "%s");
        assert_eq!(
            q(&u, "(&(uid=%u)(d=%d)(s=%s)(S=%S)(U=%U)(D=%D)(%1.%2.%3)(100%%))", "joe@mail.example.com", Quote::None)
                .as_deref(),
            Some("(&(uid=joe)(d=mail.example.com)(s=joe@mail.example.com)(S=joe@mail.example.com)(U=joe)(D=mail.example.com)(com.example.mail)(100%))")
        );
        // The last '@' separates the domain.
        let u = usage("", "(uid=%u)(d=%d)", "");
        assert_eq!(q(&u, "%u|%d", "a@b@c.d", Quote::None).as_deref(), Some("a@b|c.d"));
    }

    #[test]
    fn hostile_keys_stay_inside_the_filter_value() {
        let u = usage("", "(mail=%s)", "%s");
        assert_eq!(q(&u, "(mail=%s)", "a*)(uid=*", Quote::Rfc2254).as_deref(), Some("(mail=a\\2A\\29\\28uid=\\2A)"));
        assert_eq!(q(&u, "(mail=%s)", "\\", Quote::Rfc2254).as_deref(), Some("(mail=\\5C)"));
        assert_eq!(q(&u, "(mail=%s)", "jörg@例え.jp", Quote::Rfc2254).as_deref(), Some("(mail=jörg@例え.jp)"));
        let u = usage("uid=%u,ou=people", "(x=1)", "%s");
        assert_eq!(q(&u, "uid=%u,ou=people", "a,b+c@x", Quote::Rfc2253).as_deref(), Some("uid=a\\2Cb\\2Bc,ou=people"));
    }

    #[test]
    fn domain_parts_and_missing_parts_skip_the_query() {
        let u = usage("", "(mail=%d)", "%s");
        assert_eq!(q(&u, "(mail=%d)", "plain", Quote::Rfc2254), None);
        assert_eq!(q(&u, "(mail=%d)", "user@", Quote::Rfc2254), None);
        // %d alone does not require a local part.
        assert_eq!(q(&u, "(mail=%d)", "@example.com", Quote::Rfc2254).as_deref(), Some("(mail=example.com)"));
        let u = usage("", "(uid=%u)", "%s");
        assert_eq!(q(&u, "(uid=%u)", "@example.com", Quote::Rfc2254), None);
        // %u alone works on unqualified keys.
        assert_eq!(q(&u, "(uid=%u)", "plain", Quote::Rfc2254).as_deref(), Some("(uid=plain)"));
        // %s never skips; an empty key always does.
        let u = usage("", "(mail=%s)", "%s");
        assert_eq!(q(&u, "(mail=%s)", "@", Quote::Rfc2254).as_deref(), Some("(mail=@)"));
        assert_eq!(q(&u, "(mail=%s)", "", Quote::Rfc2254), None);
    }

    #[test]
    fn numbered_labels_count_from_the_right_and_ignore_empty_labels() {
        let u = usage("", "(%u@%2.%1)", "%s");
        assert_eq!(q(&u, "(%u@%2.%1)", "u@mail.example.com", Quote::None).as_deref(), Some("(u@example.com)"));
        // As Postfix's argv_split(): empty labels vanish (verified with postmap).
        assert_eq!(q(&u, "(%u@%2.%1)", "u@example..com", Quote::None).as_deref(), Some("(u@example.com)"));
        assert_eq!(q(&u, "(%u@%2.%1)", "u@.example.com.", Quote::None).as_deref(), Some("(u@example.com)"));
        assert_eq!(q(&u, "(%u@%2.%1)", "u@com", Quote::None), None);
        let u = usage("", "(dc=%9)", "%s");
        assert_eq!(q(&u, "(dc=%9)", "u@a.b.c.d.e.f.g.h.i", Quote::None).as_deref(), Some("(dc=a)"));
        assert_eq!(q(&u, "(dc=%9)", "u@b.c.d.e.f.g.h.i", Quote::None), None);
    }

    #[test]
    fn flags_are_shared_between_the_templates() {
        // A %D in result_format makes unqualified keys skip the query, %U keys without a local part
        // (verified with postmap: result_format = [%S] [%U] [%D]).
        let u = usage("ou=people", "(mail=%s)", "[%S] [%U] [%D]");
        assert!(u.key_domain && u.key_user && !u.value_domain && !u.value_user);
        assert_eq!(q(&u, "(mail=%s)", "plain", Quote::Rfc2254), None);
        assert_eq!(q(&u, "(mail=%s)", "@example.com", Quote::Rfc2254), None);
        assert_eq!(q(&u, "(mail=%s)", "a@example.com", Quote::Rfc2254).as_deref(), Some("(mail=a@example.com)"));
    }

    #[test]
    fn result_format_expands_values_and_key() {
        let u = usage("", "(mail=%s)", "%u at %d for %U@%D (%S, %s, %1) 100%%");
        assert_eq!(
            r(&u, "%u at %d for %U@%D (%S, %s, %1) 100%%", "joe@example.net", "j@k.example.org").as_deref(),
            Some("joe at example.net for j@k.example.org (j@k.example.org, joe@example.net, org) 100%")
        );
        // %d in the result format skips values without a domain; %u values without a local part.
        let u = usage("", "(mail=%s)", "%d");
        assert_eq!(r(&u, "%d", "nodomain", "k@x"), None);
        let u = usage("", "(mail=%s)", "%u");
        assert_eq!(r(&u, "%u", "@x", "k@x"), None);
        assert_eq!(r(&u, "%u", "plain", "k@x").as_deref(), Some("plain"));
        // Empty values are skipped; values go in unquoted.
        let u = usage("", "(mail=%s)", "%s");
        assert_eq!(r(&u, "%s", "", "k"), None);
        assert_eq!(r(&u, "%s", "a*(b)", "k").as_deref(), Some("a*(b)"));
    }

    #[test]
    fn results_are_joined_with_commas() {
        let u = usage("", "(mail=%s)", "<%s>");
        let mut out = Vec::new();
        for v in ["a", "", "b", "a"] {
            expand(&u, "<%s>", v.as_bytes(), Some(b"k"), &mut out, Quote::None);
        }
        assert_eq!(out, b"<a>,<b>,<a>");
    }

    fn spec(extra: &str) -> Spec {
        let text = format!("search_base = ou=people,dc=example,dc=com\nquery_filter = (mail=%s)\n{extra}");
        let map = crate::config::parse(Path::new("/t.cf"), text.as_bytes()).unwrap();
        Spec::new(&map).unwrap()
    }

    fn no_tables(_: &str, _: &str) -> Result<bool, String> {
        Err("no table expected".into())
    }

    fn prepare(s: &Spec, key: &[u8]) -> Prepared {
        s.prepare(key, &mut no_tables).unwrap()
    }

    #[test]
    fn prepare_folds_and_quotes_the_key() {
        let s = spec("");
        let Prepared::Search(q) = prepare(&s, "STRAßE*@Example.COM".as_bytes()) else { panic!() };
        assert_eq!(q.key, "strasse*@example.com");
        assert_eq!(q.filter, "(mail=strasse\\2A@example.com)");
        assert_eq!(q.base, "ou=people,dc=example,dc=com");
        // A key is a C string: a NUL ends it.
        let Prepared::Search(q) = prepare(&s, b"a@b\0)(uid=*") else { panic!() };
        assert_eq!(q.filter, "(mail=a@b)");
        assert_eq!(prepare(&s, b"x\xff@example.com"), Prepared::Skipped(Skip::NotUtf8));
        assert_eq!(prepare(&s, b""), Prepared::Skipped(Skip::EmptyKey));
        assert_eq!(prepare(&s, b"\0x"), Prepared::Skipped(Skip::EmptyKey));
    }

    #[test]
    fn dynamic_search_base() {
        let s = spec("search_base = ou=%d, dc=example, dc=com\n");
        assert!(s.dynamic_base);
        let Prepared::Search(q) = prepare(&s, b"A+B@Example.Com") else { panic!() };
        assert_eq!(q.base, "ou=example.com, dc=example, dc=com");
        let s = spec("search_base = uid=%u,ou=people,dc=example,dc=com\n");
        let Prepared::Search(q) = prepare(&s, b"a b#c@x") else { panic!() };
        assert_eq!(q.base, "uid=a\\20b\\23c,ou=people,dc=example,dc=com");
        assert!(!spec("search_base = ou=100%%,dc=x\n").dynamic_base);
    }

    #[test]
    fn domain_restriction() {
        let s = spec("domain = example.com, !bad.example.com, EXAMPLE.org\n");
        assert!(matches!(prepare(&s, b"u@example.com"), Prepared::Search(_)));
        assert!(matches!(prepare(&s, b"U@Example.ORG"), Prepared::Search(_)));
        assert_eq!(prepare(&s, b"u@other.com"), Prepared::Skipped(Skip::DomainNotListed("other.com".into())));
        // Exact match only: no subdomains.
        assert_eq!(
            prepare(&s, b"u@sub.example.com"),
            Prepared::Skipped(Skip::DomainNotListed("sub.example.com".into()))
        );
        assert_eq!(prepare(&s, b"plain"), Prepared::Skipped(Skip::DomainNeedsAddress));
        assert_eq!(prepare(&s, b"@example.com"), Prepared::Skipped(Skip::DomainNeedsAddress));
        // Negation: the first matching pattern decides.
        let s = spec("domain = !bad.example.com, bad.example.com\n");
        assert_eq!(
            prepare(&s, b"u@bad.example.com"),
            Prepared::Skipped(Skip::DomainNotListed("bad.example.com".into()))
        );
    }

    #[test]
    fn domain_tables_and_files() {
        let s = spec("domain = hash:/etc/postfix/domains\n");
        let mut asked = Vec::new();
        let mut table = |t: &str, k: &str| {
            asked.push(format!("{t} {k}"));
            Ok(k == "example.com")
        };
        assert!(matches!(s.prepare(b"u@EXAMPLE.com", &mut table).unwrap(), Prepared::Search(_)));
        assert!(matches!(s.prepare(b"u@x.com", &mut table).unwrap(), Prepared::Skipped(_)));
        assert_eq!(asked, ["hash:/etc/postfix/domains example.com", "hash:/etc/postfix/domains x.com"]);
        let mut broken = |_: &str, _: &str| Err("table down".to_string());
        assert_eq!(s.prepare(b"u@x.com", &mut broken).unwrap_err().message, "table down");

        let dir = std::env::temp_dir().join(format!("lhc-domains-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("domains");
        std::fs::write(&file, "# comment\none.example, two.example\n  three.example\n").unwrap();
        let s = spec(&format!("domain = {}\n", file.display()));
        assert!(matches!(prepare(&s, b"u@three.example"), Prepared::Search(_)));
        assert!(matches!(prepare(&s, b"u@four.example"), Prepared::Skipped(_)));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(DomainList::parse(&["/nonexistent/domains".to_string()]).is_err());
    }

    #[test]
    fn skips_name_their_reason() {
        let s = spec("query_filter = (&(uid=%u)(dc=%2))\n");
        assert_eq!(prepare(&s, b"plain"), Prepared::Skipped(Skip::NoDomain));
        assert_eq!(prepare(&s, b"@a.b"), Prepared::Skipped(Skip::NoLocalPart));
        assert_eq!(prepare(&s, b"u@com"), Prepared::Skipped(Skip::TooFewLabels(2)));
        assert!(Skip::TooFewLabels(2).to_string().contains("%2"));
    }

    #[test]
    fn attribute_order_and_subtypes() {
        let s = spec(
            "terminal_result_attribute = t1\nleaf_result_attribute = l1, l2\nresult_attribute = mail\n\
             special_result_attribute = member\n",
        );
        assert_eq!(s.attributes, ["t1", "l1", "l2", "mail", "member"]);
        assert_eq!((s.num_terminal, s.num_leaf, s.num_attributes), (1, 2, 4));
        assert_eq!(attrdesc_subtype("mail", "MAIL"), 1);
        assert_eq!(attrdesc_subtype("mail", "mail;lang-en"), 1);
        assert_eq!(attrdesc_subtype("mail;lang-en", "mail"), -1);
        assert_eq!(attrdesc_subtype("mail", "mailHost"), 0);
        assert_eq!(url_attrs(&s.attributes, &[]), Some(s.attributes.clone()));
        assert_eq!(url_attrs(&s.attributes, &["MAIL".to_string(), "cn".to_string()]), Some(vec!["mail".to_string()]));
        assert_eq!(url_attrs(&s.attributes, &["cn".to_string()]), None);
    }

    #[test]
    fn ldap_urls_in_special_attributes() {
        assert!(is_ldap_url("ldap:///ou=x??sub?(a=b)"));
        assert!(is_ldap_url("<URL:LDAPS://h/ou=x>"));
        assert!(!is_ldap_url("uid=user0001,ou=people,dc=example,dc=com"));
        let u = parse_ldap_url("ldap:///ou=people,dc=example,dc=com?mail,cn?sub?(mailLocalAddress=%2A%40example.com)")
            .unwrap();
        assert_eq!(u.dn, "ou=people,dc=example,dc=com");
        assert_eq!(u.attrs, ["mail", "cn"]);
        assert_eq!(u.scope, Scope::Sub);
        assert_eq!(u.filter.as_deref(), Some("(mailLocalAddress=*@example.com)"));
        let u = parse_ldap_url("ldap://host:389/cn=x%2Cy").unwrap();
        assert_eq!((u.dn.as_str(), u.scope, u.filter), ("cn=x,y", Scope::Base, None));
        assert!(parse_ldap_url("ldap:///x??bogus").is_err());
        assert!(parse_ldap_url("ldap:///x?a?b?c?d?e").is_err());
        assert!(parse_ldap_url("<ldap:///x").is_err());
    }

    #[test]
    fn filters_lose_the_blanks_libldap_skips() {
        assert_eq!(normalize_filter("(| (mail=a) \t(uid=b)\n )"), "(|(mail=a)(uid=b))");
        assert_eq!(normalize_filter(" ( & (objectClass=*) (! (uid=x)) ) "), "(&(objectClass=*)(!(uid=x)))");
        assert_eq!(normalize_filter("( mail=a b )"), "(mail=a b )");
        assert_eq!(normalize_filter("(mail=\\29 x)"), "(mail=\\29 x)");
        assert_eq!(normalize_filter("objectclass=*"), "objectclass=*");
        assert_eq!(normalize_filter("(mail =x)"), "(mail =x)");
    }

    #[test]
    fn entries_parse_in_server_order() {
        use ldap3::asn1::{ASNTag, OctetString, Sequence, Set, Tag};
        let os = |s: &[u8]| Tag::OctetString(OctetString { inner: s.to_vec(), ..Default::default() });
        let attr = |name: &str, vals: &[&[u8]]| {
            Tag::Sequence(Sequence {
                inner: vec![
                    os(name.as_bytes()),
                    Tag::Set(Set { inner: vals.iter().map(|v| os(v)).collect(), ..Default::default() }),
                ],
                ..Default::default()
            })
        };
        let entry = Tag::Sequence(Sequence {
            id: 4,
            class: ldap3::asn1::TagClass::Application,
            inner: vec![
                os(b"uid=a,dc=x"),
                Tag::Sequence(Sequence {
                    inner: vec![attr("mail", &[b"m1", b"m2"]), attr("cn", &[b"\xff"])],
                    ..Default::default()
                }),
            ],
        });
        let e = Entry::parse(entry.into_structure()).unwrap();
        assert_eq!(e.dn, "uid=a,dc=x");
        assert_eq!(
            e.attrs,
            vec![
                ("mail".to_string(), vec![b"m1".to_vec(), b"m2".to_vec()]),
                ("cn".to_string(), vec![b"\xff".to_vec()])
            ]
        );
        assert_eq!(e.values("MAIL").map(Vec::len), Some(2));
        assert_eq!(e.values("mai"), None);
    }
}
