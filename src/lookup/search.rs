//! The search and the values: `dict_ldap_get_values()`. Entries as the server sends them, each entry's
//! attributes in the order the server sends them (not the `result_attribute` order), each value through
//! `result_format`, joined with `,`, duplicates kept; `special_result_attribute` DNs and LDAP URLs followed
//! depth-first (`recursion_limit`), `terminal_result_attribute` and `leaf_result_attribute` as Postfix applies
//! them (including its habit of carrying the terminal/leaf state from one entry to the next within a result).

use std::future::Future;
use std::pin::Pin;

use ldap3::asn1::StructureTag;
use ldap3::{DerefAliases, Ldap, SearchOptions};

use super::{LookupError, Query, Spec};
use crate::map::ldap_url::{self, UrlScope};
use crate::map::template::{expand, Quote};
use crate::map::Scope;
use crate::reason::{result_reason, server_text};

/// One entry as the server sent it: attributes in its order, values as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) dn: String,
    pub(crate) attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// `ldap_get_values_len(entry, name)`: the values of the attribute named exactly `name` (any case).
    pub(super) fn values(&self, name: &str) -> Option<&Vec<Vec<u8>>> {
        self.attrs.iter().find(|(a, _)| a.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The bytes the entry holds (its DN, attribute names and values).
    fn size(&self) -> usize {
        self.dn.len() + self.attrs.iter().map(|(a, v)| a.len() + v.iter().map(Vec::len).sum::<usize>()).sum::<usize>()
    }

    /// Parse a SearchResultEntry ([APPLICATION 4] { objectName, attributes }).
    pub(crate) fn parse(tag: StructureTag) -> Option<Entry> {
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
pub(crate) fn attrdesc_subtype(a1: &str, a2: &str) -> i32 {
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

/// The parts of an LDAP URL that a special result attribute's search uses (OpenLDAP's historic defaults:
/// scope base, no filter meaning `(objectclass=*)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LdapUrl {
    pub(crate) dn: String,
    pub(crate) attrs: Vec<String>,
    pub(crate) scope: Scope,
    pub(crate) filter: Option<String>,
}

pub(crate) fn is_ldap_url(value: &str) -> bool {
    ldap_url::is_ldap_url(value)
}

/// An LDAP URL from a special result attribute, parsed by libldap's rules ([`ldap_url::parse`]).
pub(crate) fn parse_ldap_url(value: &str) -> Result<LdapUrl, String> {
    let url = ldap_url::parse(value).map_err(str::to_string)?;
    let scope = match url.scope {
        UrlScope::Map(scope) => scope,
        UrlScope::Subordinate => return Err("scope subordinate is not supported by this check".to_string()),
    };
    Ok(LdapUrl { dn: url.dn, attrs: url.attrs, scope, filter: url.filter })
}

/// A map's `scope` as ldap3 names it.
pub(crate) fn ldap_scope(scope: Scope) -> ldap3::Scope {
    match scope {
        Scope::Base => ldap3::Scope::Base,
        Scope::One => ldap3::Scope::OneLevel,
        Scope::Sub => ldap3::Scope::Subtree,
    }
}

/// A map's `dereference` (0-3, as libldap's LDAP_DEREF_*) as ldap3 names it.
pub(crate) fn ldap_deref(dereference: u8) -> DerefAliases {
    match dereference {
        1 => DerefAliases::Searching,
        2 => DerefAliases::Finding,
        3 => DerefAliases::Always,
        _ => DerefAliases::Never,
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
    let deref = ldap_deref(spec.dereference);
    let opts = SearchOptions::new()
        .sizelimit(i32::try_from(spec.size_limit).unwrap_or(i32::MAX))
        .timelimit(i32::try_from(spec.time_limit).unwrap_or(i32::MAX))
        .deref(deref);
    // Postfix bounds each search by the map's timeout (ldap_result); then it abandons it and drops the connection.
    let limit = std::time::Duration::from_secs(u64::from(spec.time_limit));
    match tokio::time::timeout(limit, collect(ldap, spec, base, scope, filter, attrs, opts)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(lost(&format!("timed out after {} (the map's timeout)", crate::reason::secs(limit)))),
    }
}

/// The search, streamed and bounded (see [`ENTRY_CEILING`], [`BYTE_BUDGET`]).
async fn collect(
    ldap: &mut Ldap,
    spec: &Spec,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[String],
    opts: SearchOptions,
) -> Result<SearchOutcome, LookupError> {
    let mut stream = ldap
        .with_search_options(opts)
        .streaming_search(base, ldap_scope(scope), &crate::map::filter::normalize(filter), attrs.to_vec())
        .await
        .map_err(|e| LookupError::from_ldap(&e))?;
    // Postfix takes every entry up to `size_limit`; one more tells it the limit was exceeded.
    let max_entries = match spec.size_limit {
        0 => ENTRY_CEILING,
        n => usize::try_from(n).unwrap_or(usize::MAX).saturating_add(1).min(ENTRY_CEILING),
    };
    let mut entries = Vec::new();
    let mut bytes = 0;
    while let Some(item) = stream.next().await.map_err(|e| LookupError::from_ldap(&e))? {
        if item.is_ref() || item.is_intermediate() {
            continue;
        }
        let entry = Entry::parse(item.0).ok_or_else(|| lost("the server sent an entry that cannot be decoded"))?;
        bytes += entry.size();
        entries.push(entry);
        if entries.len() == max_entries && spec.size_limit > 0 {
            // Enough to know: the walk reports the size limit as Postfix does.
            return Ok(SearchOutcome { rc: 0, text: String::new(), entries });
        }
        if entries.len() >= ENTRY_CEILING || bytes > BYTE_BUDGET {
            return Err(lost(&format!(
                "the server sent more than {} entries or {} MiB for one search: not read further",
                ENTRY_CEILING,
                BYTE_BUDGET >> 20
            )));
        }
    }
    let result = stream.finish().await;
    Ok(SearchOutcome { rc: result.rc, text: result.text, entries })
}

/// The most entries one search of the check takes (with `size_limit` set, one more than it): a server
/// streaming entries without end must not grow the check without bound.
pub(crate) const ENTRY_CEILING: usize = 10_000;

/// The most bytes of entries (values and names) one search of the check takes.
pub(crate) const BYTE_BUDGET: usize = 4 << 20;

/// An error after which the connection is in an unknown state: nothing more is asked on it.
fn lost(message: &str) -> LookupError {
    LookupError { message: format!("search error: {message}"), connection_lost: true }
}

/// Step 2: search for a prepared key and collect the values as Postfix does. `Ok(None)` is "not found".
/// The result is the exact text Postfix's lookup returns (`postmap -q` prints it plus a newline).
pub(crate) async fn lookup(ldap: &mut Ldap, spec: &Spec, query: &Query) -> Result<Option<Vec<u8>>, LookupError> {
    let outcome = search(ldap, spec, &query.base, spec.scope, &query.filter, &spec.attributes).await?;
    match outcome.rc {
        0 => {}
        32 if spec.dynamic_base => return Ok(None),
        32 => {
            return Err(LookupError::new(format!(
                "search base {} not found: {}",
                query.base,
                result_reason(32, &outcome.text)
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
    let mut message = format!("search error: {}", result_reason(rc, text));
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

/// What an entry is, as Postfix decides it from the terminal and leaf attributes. As in Postfix, the state is set
/// at the start of a result and only updated by entries that hold the attributes in question: an entry without
/// any inherits the previous entry's state.
struct EntryState {
    terminal: bool,
    leaf: bool,
}

impl EntryState {
    fn update(&mut self, spec: &Spec, entry: &Entry) {
        let attrs = &spec.attributes;
        for name in &attrs[..spec.num_terminal] {
            if let Some(v) = entry.values(name) {
                self.terminal = !v.is_empty();
                if self.terminal {
                    break;
                }
            }
        }
        if !self.terminal && spec.num_leaf > 0 {
            for name in &attrs[spec.num_attributes..] {
                if let Some(v) = entry.values(name) {
                    self.leaf = v.is_empty();
                    if !self.leaf {
                        break;
                    }
                }
            }
        }
    }
}

/// A value as Postfix sees it: a C string, cut at the first NUL.
fn c_string(v: &[u8]) -> &[u8] {
    v.split(|&b| b == 0).next().unwrap_or_default()
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
            let mut state = EntryState { terminal: false, leaf: true };
            for (count, entry) in entries.iter().enumerate() {
                let limit = self.spec.size_limit;
                if self.error.is_none() && limit > 0 && count as u64 >= u64::from(limit) {
                    self.fail(format!("query size limit ({limit}) exceeded"));
                }
                state.update(self.spec, entry);
                for (attr, vals) in &entry.attrs {
                    if self.error.is_none() && !vals.is_empty() {
                        self.attribute(ldap, &state, attr, vals, depth).await;
                    }
                }
            }
        })
    }

    /// One attribute of an entry: its values go into the result (regular, terminal and leaf attributes), or are
    /// followed (special attributes), or are ignored (attributes not asked for, or not wanted in this state).
    async fn attribute(&mut self, ldap: &mut Ldap, state: &EntryState, attr: &str, vals: &[Vec<u8>], depth: u32) {
        let spec = self.spec;
        let attrs = &spec.attributes;
        let i = attrs.iter().position(|a| attrdesc_subtype(a, attr) > 0).unwrap_or(attrs.len());
        let leaf_only = i >= spec.num_terminal && i < spec.num_terminal + spec.num_leaf;
        if i < spec.num_attributes || state.terminal {
            if !((state.terminal && i >= spec.num_terminal) || (!state.leaf && leaf_only)) {
                self.add_values(vals);
            }
        } else if i < attrs.len() {
            if depth < spec.recursion_limit {
                self.follow(ldap, attr, vals, depth).await;
            } else {
                let (attr, first) = (server_text(attr), server_text(&String::from_utf8_lossy(&vals[0])));
                let limit = spec.recursion_limit;
                self.fail(format!(
                    "recursion limit exceeded for special attribute {attr}={first} (recursion_limit = {limit})"
                ));
            }
        }
    }

    /// Each value through `result_format`, counted against `expansion_limit`.
    fn add_values(&mut self, vals: &[Vec<u8>]) {
        let spec = self.spec;
        for v in vals {
            let added =
                expand(&spec.usage, &spec.result_format, c_string(v), Some(self.key), &mut self.result, Quote::None);
            if added && spec.expansion_limit > 0 {
                self.expansion += 1;
                if self.expansion > spec.expansion_limit {
                    let limit = spec.expansion_limit;
                    self.fail(format!(
                        "expansion limit exceeded: more than {limit} values (expansion_limit = {limit})"
                    ));
                    break;
                }
            }
        }
    }

    /// The values of a special result attribute: DNs (base-scope searches) and LDAP URLs, followed depth-first.
    async fn follow(&mut self, ldap: &mut Ldap, attr: &str, vals: &[Vec<u8>], depth: u32) {
        let spec = self.spec;
        for v in vals {
            let v = String::from_utf8_lossy(c_string(v)).into_owned();
            // How messages quote the value and the attribute: as the server sent them, bounded.
            let (shown_v, shown_attr) = (server_text(&v), server_text(attr));
            let found = if is_ldap_url(&v) {
                let url = match parse_ldap_url(&v) {
                    Ok(url) => url,
                    Err(e) => {
                        self.fail(format!("malformed URL {shown_v} in {shown_attr}: {e}"));
                        break;
                    }
                };
                let Some(wanted) = url_attrs(&spec.attributes, &url.attrs) else { continue };
                let filter = url.filter.as_deref().unwrap_or("(objectclass=*)");
                search(ldap, spec, &url.dn, url.scope, filter, &wanted).await
            } else {
                search(ldap, spec, &v, Scope::Base, "objectclass=*", &spec.attributes).await
            };
            match found {
                Err(e) => self.fail(format!("{} (following {shown_attr}: {shown_v})", e.message)),
                Ok(o) if o.rc == 0 => self.values(ldap, o.entries, depth + 1).await,
                // Postfix: "DN ... not found, skipping" (a warning only).
                Ok(o) if o.rc == 32 => {}
                Ok(o) => {
                    let e = search_error(spec, o.rc, &o.text);
                    self.fail(format!("{} (following {shown_attr}: {shown_v})", e.message))
                }
            }
            if self.error.is_some() {
                break;
            }
        }
    }
}

/// Postfix's `url_attrs()`: the attributes to ask for when following an LDAP URL: all of the map's when the URL
/// names none, else the URL's that are (sub)types of the map's; `None` when nothing is left (URL skipped).
pub(super) fn url_attrs(ours: &[String], theirs: &[String]) -> Option<Vec<String>> {
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
