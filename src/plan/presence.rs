//! The presence check of a map: one search that must find an entry for the map to answer anything at all.
//!
//! The map's own query with every key expansion loosened ([`crate::map::filter::presence`]: `(mail=%s)` ->
//! `(mail=*)`), from the static part of its search base, with its identity, asking for the attributes Postfix
//! asks for and requiring one of them (`(&FILTER(|(a1=*)...))`): an emptied directory, entries hidden by an ACL
//! change or a base that lost its children answer nothing, and Postfix would answer 550 User unknown to every
//! recipient. It replaces the base search of the map's base: a missing base still answers noSuchObject.

use crate::map::{filter, Map, Scope};

/// One search a connection makes for its maps: the base search (the base exists and is visible), or the
/// presence check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Search {
    pub base: String,
    /// `None`: the base search (scope base, `(objectClass=*)`, no attribute).
    pub presence: Option<Presence>,
}

/// What a presence check searches for, below `base`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Presence {
    pub scope: Scope,
    /// The map's query, loosened (`(mail=*)`).
    pub query: String,
    /// What is sent: the query and one of `attrs` present (`(&(mail=*)(|(maildrop=*)))`).
    pub filter: String,
    /// The attributes Postfix asks for (terminal, leaf, result, special): an entry must hold one of them.
    pub attrs: Vec<String>,
    /// The map's `dereference`.
    pub dereference: u8,
}

impl Search {
    /// The search of `base` alone.
    pub fn base(base: &str) -> Search {
        Search { base: base.to_string(), presence: None }
    }
}

/// The presence check of `map` from its static base `base`, or why it has none.
pub fn presence(map: &Map, base: &str) -> Result<Presence, String> {
    if !map.health_check_presence {
        return Err("health_check_presence = no".to_string());
    }
    let removed = super::split_rdns(&map.search_base).len().saturating_sub(super::split_rdns(base).len());
    let filter = match (filter::presence(&map.query_filter), removed) {
        (Some(f), _) => f,
        // A fixed filter under a dynamic base: the entries below the static part.
        (None, 1..) => filter::normalize(&map.query_filter).replace("%%", "%"),
        (None, 0) => return Err("the query does not depend on the key (a fixed query_filter and search_base)".into()),
    };
    // A dynamic base names the entry (or the subtree) by the key: one level below its static part when one RDN
    // was the key's and the map searches that entry only, else the whole subtree.
    let scope = match (removed, map.scope) {
        (0, scope) => scope,
        (1, Scope::Base) => Scope::One,
        _ => Scope::Sub,
    };
    // Only names that can stand in a filter: a server ignores a requested attribute it does not know, but a
    // filter with a malformed one is refused whole.
    let attrs: Vec<String> = map
        .terminal_result_attribute
        .iter()
        .chain(&map.leaf_result_attribute)
        .chain(&map.result_attribute)
        .chain(&map.special_result_attribute)
        .filter(|a| attribute_description(a))
        .cloned()
        .collect();
    let query = filter.clone();
    let filter = if attrs.is_empty() {
        filter
    } else {
        let any: String = attrs.iter().map(|a| format!("({a}=*)")).collect();
        format!("(&{filter}(|{any}))")
    };
    if ldap3::parse_filter(&filter).is_err() {
        // The map's own filter is judged elsewhere (a filter Postfix cannot send fails every lookup).
        return Err(format!("no presence filter can be made from query_filter {}", map.query_filter));
    }
    Ok(Presence { scope, query, filter, attrs, dereference: map.dereference })
}

/// An attribute description (RFC 4512): a name (`mail`) or an OID (`0.9.2342.19200300.100.1.3`), with options
/// (`;lang-en`).
fn attribute_description(a: &str) -> bool {
    let mut parts = a.split(';');
    let name = parts.next().unwrap_or("");
    let descr = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !name.is_empty() && name.split('.').all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    (descr || oid) && parts.all(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Map {
        crate::map::parse(std::path::Path::new("/m.cf"), text.as_bytes()).unwrap()
    }

    #[test]
    fn the_query_loosened_from_the_static_base() {
        let m = map("search_base = ou=people,dc=x\nquery_filter = (mail=%s)\nresult_attribute = mail\n");
        let p = presence(&m, "ou=people,dc=x").unwrap();
        assert_eq!(
            (p.scope, p.filter.as_str(), p.attrs.as_slice()),
            (Scope::Sub, "(&(mail=*)(|(mail=*)))", &["mail".to_string()][..])
        );
        let m = map("search_base = uid=%u,ou=people,dc=x\nscope = base\nquery_filter = (objectClass=mailUser)\nresult_attribute = maildrop\nspecial_result_attribute = member\n");
        let p = presence(&m, "ou=people,dc=x").unwrap();
        assert_eq!(p.scope, Scope::One, "one RDN was the key's");
        assert_eq!(p.filter, "(&(objectClass=mailUser)(|(maildrop=*)(member=*)))");
        let m = map("search_base = uid=%u,ou=%d,dc=x\nscope = base\nquery_filter = (mail=%s)\nresult_attribute =\n");
        let p = presence(&m, "dc=x").unwrap();
        assert_eq!((p.scope, p.filter.as_str()), (Scope::Sub, "(mail=*)"));
    }

    #[test]
    fn only_attribute_names_go_into_the_filter() {
        assert!(attribute_description("mail") && attribute_description("mail;lang-en"));
        assert!(attribute_description("0.9.2342.19200300.100.1.3"));
        assert!(!attribute_description("m\u{fffd}il") && !attribute_description("a b") && !attribute_description("1a"));
        let m = map("search_base = dc=x\nquery_filter = (mail=%s)\nresult_attribute = mail, b(ad\n");
        assert_eq!(presence(&m, "dc=x").unwrap().filter, "(&(mail=*)(|(mail=*)))");
    }

    #[test]
    fn no_presence_check_where_an_empty_answer_is_normal_or_nothing_depends_on_the_key() {
        let m = map("search_base = dc=x\nquery_filter = (mail=%s)\nhealth_check_presence = no\n");
        assert_eq!(presence(&m, "dc=x"), Err("health_check_presence = no".to_string()));
        let m = map("search_base = dc=x\nquery_filter = (|)\n");
        assert!(presence(&m, "dc=x").unwrap_err().contains("does not depend on the key"));
    }
}
