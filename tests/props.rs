//! Property tests (proptest): the map parser never panics and keeps its invariants on any input, and the
//! filter/DN escaping round-trips through real parsers (ldap3's filter parser, and slapd's DN and filter
//! parsers through the binary's `--query`).
//!
//! `cargo test` runs proptest's default 256 cases (PROPTEST_CASES overrides); `make fuzz` runs 100,000 in a
//! release build. The slapd round trip runs PROPTEST_CASES / 32 cases (4..=300), a few keys each.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use ldap3::asn1::{ASNTag, StructureTag, PL};
use ldap_health_check::map::template::{expand, rfc2253_quote, rfc2254_quote, Quote, Usage};
use ldap_health_check::map::{self as config, Map};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const PATH: &str = "/etc/postfix/props.cf";

/// proptest's defaults (PROPTEST_CASES and friends from the environment), without regression files in the
/// source tree: a failure prints its minimal input, which belongs in a unit test.
fn config() -> Config {
    Config { failure_persistence: None, ..Config::default() }
}

fn parse(bytes: &[u8]) -> Result<Map, config::ConfigError> {
    config::parse(Path::new(PATH), bytes)
}

/// Physical lines of a file, as an editor counts them (the last one may lack its newline).
fn line_count(bytes: &[u8]) -> usize {
    bytes.split(|&b| b == b'\n').count()
}

/// What every parse must respect, whatever the input.
fn invariants(bytes: &[u8], result: &Result<Map, config::ConfigError>) -> Result<(), TestCaseError> {
    let lines = line_count(bytes);
    match result {
        Err(e) => {
            prop_assert!(!e.message.is_empty());
            prop_assert_eq!(e.path.as_path(), Path::new(PATH));
            if let Some(l) = e.line {
                prop_assert!(l >= 1 && l <= lines, "error line {} of {}", l, lines);
            }
        }
        Ok(m) => {
            for w in &m.warnings {
                prop_assert!(!w.message.is_empty());
                if let Some(l) = w.line {
                    prop_assert!(l >= 1 && l <= lines, "warning line {} of {}", l, lines);
                }
            }
            prop_assert!(!m.servers.is_empty(), "a map always has a server (default localhost)");
            prop_assert!(m.version == 2 || m.version == 3);
        }
    }
    // Parsing is a pure function of the bytes.
    prop_assert_eq!(&parse(bytes), result);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let result = parse(&bytes);
        invariants(&bytes, &result)?;
    }

    #[test]
    fn parser_never_panics_on_near_valid_files(file in near_valid_file()) {
        let result = parse(&file);
        invariants(&file, &result)?;
    }

    /// A value written as `name = value` (with any blanks around) comes back as it was.
    #[test]
    fn values_round_trip(value in value_text(), pad in blanks(), name_idx in 0..3usize) {
        let name = ["bind_dn", "bind_pw", "search_base"][name_idx];
        let (l, r) = (&pad[..pad.len() / 2], &pad[pad.len() / 2..]);
        let file = format!("{l}{name}{r}={l}{value}{r}\n");
        let file = file.trim_start(); // a logical line must start at column 0
        let m = parse(file.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let got = match name {
            "bind_dn" => m.bind_dn.clone(),
            "bind_pw" => m.bind_pw.expose().to_string(),
            _ => m.search_base.clone(),
        };
        prop_assert_eq!(got, value);
    }

    /// The last of several definitions wins, with a warning that never shows a password.
    #[test]
    fn last_definition_wins(values in proptest::collection::vec(value_text().prop_map(|v| format!("Pw§{v}")), 2..5)) {
        let file: String = values.iter().map(|v| format!("bind_pw = {v}\nbind_dn = {v}\n")).collect();
        let m = parse(file.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let last = values.last().unwrap();
        prop_assert_eq!(m.bind_pw.expose(), last.as_str());
        prop_assert_eq!(&m.bind_dn, last);
        if values.windows(2).any(|w| w[0] != w[1]) {
            prop_assert!(m.warnings.iter().any(|w| w.message.contains("overriding")));
        }
        // bind_dn's values are shown; bind_pw's never (they are the same strings here, so look at the
        // warnings about bind_pw only).
        for w in m.warnings.iter().filter(|w| w.message.contains("bind_pw")) {
            for v in &values {
                prop_assert!(!w.message.contains(v.as_str()), "{:?} shows a password", w.message);
            }
        }
    }

    /// Comment lines, blank lines and parameters Postfix does not know change nothing.
    #[test]
    fn comments_blanks_and_unknown_names_change_nothing(
        base in simple_lines(),
        noise in proptest::collection::vec(noise_line(), 0..12),
        positions in proptest::collection::vec(any::<prop::sample::Index>(), 12),
    ) {
        let mut lines = base.clone();
        for (k, (n, at)) in noise.iter().zip(&positions).enumerate() {
            let i = at.index(lines.len() + 1);
            // Unknown names are distinct: a repeated name, known or not, gets Postfix's "overriding" warning.
            lines.insert(i, n.replacen("x_", &format!("x{k}_"), 1));
        }
        let plain = parse(base.concat().as_bytes());
        let noisy = parse(lines.concat().as_bytes());
        match (plain, noisy) {
            (Ok(mut a), Ok(mut b)) => {
                let (wa, wb) = (messages(&a), messages(&b));
                a.warnings.clear();
                b.warnings.clear();
                prop_assert_eq!(a, b);
                prop_assert_eq!(wa, wb);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.message, b.message),
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }

    /// No error or warning ever quotes the password, however broken the rest of the file.
    #[test]
    fn messages_never_show_bind_pw(file in near_valid_file(), secret_at in any::<prop::sample::Index>()) {
        const SECRET: &str = "Sec§ret-7Qz";
        let mut lines: Vec<&[u8]> = file.split(|&b| b == b'\n').collect();
        let line = format!("bind_pw = {SECRET}");
        let i = secret_at.index(lines.len() + 1);
        lines.insert(i, line.as_bytes());
        let text = lines.join(&b'\n');
        match parse(&text) {
            Err(e) => prop_assert!(!e.to_string().contains(SECRET), "{}", e),
            Ok(m) => {
                for w in &m.warnings {
                    prop_assert!(!w.message.contains(SECRET), "{}", w.message);
                }
                prop_assert!(!format!("{m:?}").contains(SECRET), "Debug shows the password");
            }
        }
    }
}

fn messages(m: &Map) -> Vec<String> {
    m.warnings.iter().map(|w| w.message.clone()).collect()
}

/// Blanks as Postfix's ISSPACE() knows them (no newline).
fn blanks() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ \t\r\x0b\x0c]{0,4}").unwrap()
}

/// A value that survives `name = value` as it is: no newline or NUL, no blank at either end, not empty, and
/// no `%` (search_base is a template).
fn value_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[^\\s\\x00%#]([^\\n\\x00%\\r]{0,30}[^\\s\\x00%])?").unwrap()
}

/// Names Postfix reads, names it does not, and near misses.
fn name() -> impl Strategy<Value = String> {
    // Every name Postfix reads, then near misses Postfix ignores (names are case-sensitive).
    const NEAR_MISSES: &[&str] = &["Server_Host", "serverhost", "x"];
    let names: Vec<&'static str> = ldap_health_check::map::KNOWN_NAMES.iter().chain(NEAR_MISSES).copied().collect();
    prop_oneof![
        8 => proptest::sample::select(names).prop_map(str::to_string),
        1 => proptest::string::string_regex("[a-z_]{1,12}").unwrap(),
    ]
}

/// Values of every kind the parameters take, valid and not.
fn value() -> impl Strategy<Value = Vec<u8>> {
    const SAMPLES: &[&str] = &[
        "ldap://127.0.0.1:389",
        "ldaps://[::1]:636",
        "ldapi://%2Frun%2Fslapd%2Fldapi",
        "ldapi://",
        "localhost:389 ldap://h2, ldaps://h3:6360",
        "host:notaport",
        "ldap://[::1",
        "ldap://h:99999",
        "ldap://h:-1",
        "-1",
        "0",
        "10",
        "+5",
        "99999999999999999999",
        "yes",
        "no",
        "true",
        "YES",
        "sasl",
        "simple",
        "none",
        "base",
        "one",
        "sub",
        "(mail=%s)",
        "(&(objectClass=*)(uid=%u))",
        "uid=%u,ou=%2,dc=%1",
        "%",
        "%%",
        "%9",
        "%x",
        "%s%S%d%D%u%U",
        "ou=100%%,dc=x",
        "mail, mailAlternateAddress  maildrop",
        "EXTERNAL PLAIN",
        "",
    ];
    prop_oneof![
        6 => proptest::sample::select(SAMPLES).prop_map(|s| s.as_bytes().to_vec()),
        2 => proptest::string::string_regex("[ -~]{0,24}").unwrap().prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

/// One physical line (with its end).
fn line() -> impl Strategy<Value = Vec<u8>> {
    let sep = proptest::sample::select(&[" = ", "=", " =", "= ", "\t=\t", " ", "=="][..]);
    let end = proptest::sample::select(&["\n", "\n", "\n", "\r\n", ""][..]);
    prop_oneof![
        8 => (name(), sep, value(), end.clone()).prop_map(|(n, s, v, e)| [n.as_bytes(), s.as_bytes(), &v, e.as_bytes()].concat()),
        1 => (value(), end.clone()).prop_map(|(v, e)| [b"# ".as_slice(), &v, e.as_bytes()].concat()),
        1 => (blanks(), value(), end.clone()).prop_map(|(b, v, e)| [b" ".as_slice(), b.as_bytes(), &v, e.as_bytes()].concat()),
        1 => (blanks(), end).prop_map(|(b, e)| [b.as_bytes(), e.as_bytes()].concat()),
    ]
}

fn near_valid_file() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(line(), 0..24).prop_map(|lines| lines.concat())
}

/// Lines of a simple map: `name = value\n`, no continuation lines (so that a comment can go anywhere).
fn simple_lines() -> impl Strategy<Value = Vec<String>> {
    let value = prop_oneof![
        proptest::sample::select(&["ldap://127.0.0.1:389", "yes", "no", "10", "(mail=%s)", "dc=x", "mail"][..])
            .prop_map(str::to_string),
        proptest::string::string_regex("[!-~]{1,16}").unwrap(),
    ];
    let name = proptest::sample::select(
        &["server_host", "search_base", "query_filter", "bind", "bind_dn", "timeout", "start_tls", "scope"][..],
    );
    proptest::collection::vec((name, value).prop_map(|(n, v)| format!("{n} = {v}\n")), 0..8)
}

/// A line that changes nothing: a comment, a blank line, a parameter Postfix does not know.
fn noise_line() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex("#[^\\n]{0,30}\n").unwrap(),
        proptest::string::string_regex("[ \t]*#[^\\n]{0,30}\n").unwrap(),
        proptest::string::string_regex("[ \t]{0,4}\n").unwrap(),
        proptest::string::string_regex("x_[a-z0-9_]{1,10} = [!-~]{0,20}\n").unwrap(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Escaping: what a key becomes in a filter must parse back to the key, whatever it holds.

/// Keys as Postfix could be asked for them (UTF-8, no NUL), hostile characters made likely.
fn key() -> impl Strategy<Value = String> {
    let hostile = proptest::sample::select(
        &[
            "*", "(", ")", "\\", "\\2a", ",", "+", "\"", "#", ";", "<", ">", "=", " ", "\t", "@", "é", "日本", "🦀",
            "a", "Z", "0",
        ][..],
    );
    prop_oneof![
        3 => proptest::collection::vec(hostile, 1..12).prop_map(|v| v.concat()),
        1 => "[^\\x00]{1,20}",
    ]
}

/// The assertion values of an equality or substring filter parsed by ldap3.
fn filter_values(filter: &[u8]) -> Result<(u64, Vec<Vec<u8>>), TestCaseError> {
    let text = String::from_utf8_lossy(filter);
    let tag = ldap3::parse_filter(filter).map_err(|_| TestCaseError::fail(format!("ldap3 rejects {text:?}")))?;
    let st: StructureTag = tag.into_structure();
    let PL::C(parts) = st.payload else { return Err(TestCaseError::fail(format!("not constructed: {text:?}"))) };
    let mut values = Vec::new();
    let mut collect = |t: &StructureTag| {
        if let PL::P(bytes) = &t.payload {
            values.push(bytes.clone());
        }
    };
    match st.id {
        3 => parts.iter().skip(1).for_each(&mut collect),
        4 => {
            if let Some(PL::C(subs)) = parts.get(1).map(|t| &t.payload) {
                subs.iter().for_each(collect);
            }
        }
        id => return Err(TestCaseError::fail(format!("filter type {id} for {text:?}"))),
    }
    Ok((st.id, values))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn filter_quoting_round_trips_through_ldap3s_filter_parser(key in key()) {
        let mut quoted = Vec::new();
        rfc2254_quote(key.as_bytes(), &mut quoted);
        let filter = [b"(mail=".as_slice(), &quoted, b")"].concat();
        let (kind, values) = filter_values(&filter)?;
        prop_assert_eq!(kind, 3, "an equality filter stays one");
        prop_assert_eq!(values, vec![key.as_bytes().to_vec()]);
    }

    /// Through Postfix's template expansion, in a substring position: a `*` in the key stays a character.
    #[test]
    fn expanded_templates_keep_the_key_as_one_value(key in key()) {
        let template = "(mail=*%s*)";
        let mut usage = Usage::default();
        usage.add(template, true);
        let mut out = Vec::new();
        prop_assert!(expand(&usage, template, key.as_bytes(), None, &mut out, Quote::Rfc2254));
        let (kind, values) = filter_values(&out)?;
        prop_assert_eq!(kind, 4, "a substring filter");
        prop_assert_eq!(values, vec![key.as_bytes().to_vec()]);
    }

    /// DN quoting never leaves a character that ends or splits an RDN, and only adds `\XX` escapes.
    #[test]
    fn dn_quoting_leaves_no_separator(key in key()) {
        let mut quoted = Vec::new();
        rfc2253_quote(key.as_bytes(), &mut quoted);
        let mut unescaped = Vec::new();
        let mut i = 0;
        while i < quoted.len() {
            let b = quoted[i];
            prop_assert!(!b",+\";<>".contains(&b), "bare {:?} in {:?}", b as char, String::from_utf8_lossy(&quoted));
            if b == b'\\' {
                let hex = std::str::from_utf8(&quoted[i + 1..i + 3]).unwrap();
                unescaped.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                unescaped.push(b);
                i += 1;
            }
        }
        prop_assert_eq!(unescaped, key.as_bytes().to_vec());
    }
}

// ---------------------------------------------------------------------------------------------
// The same through slapd: entries whose DN and cn hold hostile keys, found by `--query` with the key in the
// search base (DN quoting, parsed by slapd) and in the filter (filter quoting, parsed by ldap3 and slapd).

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Keys slapd stores as a cn: printable, not only blanks, distinct under caseIgnoreMatch.
fn slapd_keys() -> impl Strategy<Value = Vec<String>> {
    let hostile = proptest::sample::select(
        &[
            "*", "(", ")", "\\", "\\2a", ",", "+", "\"", "#", ";", "<", ">", "=", " ", "@", "é", "日本", "a", "Z", "0",
            "%",
        ][..],
    );
    proptest::collection::vec(proptest::collection::vec(hostile, 1..8).prop_map(|v| v.concat()), 1..7).prop_map(
        |keys| {
            let mut seen = HashSet::new();
            keys.into_iter()
                .filter(|k| !k.trim().is_empty())
                .filter(|k| seen.insert(k.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")))
                .collect()
        },
    )
}

#[test]
fn escaping_round_trips_through_slapd() {
    use common::*;
    let s = Slapd::start_small();
    let d = TempDir::new();
    let container = "ou=people,dc=example,dc=com";
    let cases = (Config::default().cases / 32).clamp(4, 300);
    let n = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config { cases, ..config() });
    let result = runner.run(&slapd_keys(), |keys| {
        let ou = format!("ou=p{},{container}", n.fetch_add(1, Ordering::Relaxed));
        let mut ldif = format!("dn: {ou}\nobjectClass: organizationalUnit\nou: {}\n\n", &ou[3..ou.find(',').unwrap()]);
        for k in &keys {
            let mut rdn = b"cn=".to_vec();
            rfc2253_quote(k.as_bytes(), &mut rdn);
            let dn = [rdn.as_slice(), b",", ou.as_bytes()].concat();
            ldif.push_str(&format!(
                "dn:: {}\nobjectClass: person\nsn: x\ncn:: {}\n\n",
                base64(&dn),
                base64(k.as_bytes())
            ));
        }
        // slapd parses each DN we built: if the quoting were wrong, the RDN would not be the cn value
        // (naming violation) or would not parse at all.
        let url = s.ldapi_url();
        let added = s.run_tool("ldapmodify", &["-a", "-Q", "-Y", "EXTERNAL", "-H", &url], Some(&ldif));
        prop_assert!(added.success(), "slapd rejects the quoted DNs: {}\n{}", added.stderr, ldif);
        let by_dn = d.write(
            "by-dn.cf",
            &format!(
                "server_host = {}\nbind = no\nsearch_base = cn=%s,{ou}\nscope = base\n\
                 query_filter = (objectClass=person)\nresult_attribute = cn\n",
                s.ldap_url()
            ),
        );
        let by_filter = d.write(
            "by-filter.cf",
            &format!(
                "server_host = {}\nbind = no\nsearch_base = {ou}\nscope = one\nquery_filter = (cn=%s)\n\
                 result_attribute = cn\n",
                s.ldap_url()
            ),
        );
        for k in &keys {
            for map in [&by_dn, &by_filter] {
                let r = run(&[&format!("--query={k}"), "-f", map.to_str().unwrap()], &[]);
                let found = r.stdout.strip_suffix('\n').unwrap_or(&r.stdout);
                prop_assert!(
                    r.code == 0 && found == k,
                    "key {:?} via {}: exit {}, found {:?}\n{}",
                    k,
                    map.file_name().unwrap().to_string_lossy(),
                    r.code,
                    found,
                    r.stderr
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
