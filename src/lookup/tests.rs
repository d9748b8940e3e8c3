use std::path::Path;

use super::search::{attrdesc_subtype, is_ldap_url, parse_ldap_url, url_attrs, Entry};
use super::*;

fn spec(extra: &str) -> Spec {
    let text = format!("search_base = ou=people,dc=example,dc=com\nquery_filter = (mail=%s)\n{extra}");
    let map = crate::map::parse(Path::new("/t.cf"), text.as_bytes()).unwrap();
    Spec::new(&map, soon()).unwrap()
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
    assert_eq!(prepare(&s, b"u@sub.example.com"), Prepared::Skipped(Skip::DomainNotListed("sub.example.com".into())));
    assert_eq!(prepare(&s, b"plain"), Prepared::Skipped(Skip::DomainNeedsAddress));
    assert_eq!(prepare(&s, b"@example.com"), Prepared::Skipped(Skip::DomainNeedsAddress));
    // Negation: the first matching pattern decides.
    let s = spec("domain = !bad.example.com, bad.example.com\n");
    assert_eq!(prepare(&s, b"u@bad.example.com"), Prepared::Skipped(Skip::DomainNotListed("bad.example.com".into())));
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
    assert!(DomainList::parse(&["/nonexistent/domains".to_string()], soon()).is_err());
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
    let u =
        parse_ldap_url("ldap:///ou=people,dc=example,dc=com?mail,cn?sub?(mailLocalAddress=%2A%40example.com)").unwrap();
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
        vec![("mail".to_string(), vec![b"m1".to_vec(), b"m2".to_vec()]), ("cn".to_string(), vec![b"\xff".to_vec()])]
    );
    assert_eq!(e.values("MAIL").map(Vec::len), Some(2));
    assert_eq!(e.values("mai"), None);
}

fn soon() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(5)
}
