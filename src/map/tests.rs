use super::ldap_url::{self, hex_unescape, UrlScheme};
use super::reader::{logical_lines, parse_c_long};
use super::*;

const PATH: &str = "/etc/postfix/ldap-test.cf";

fn parse_bytes(text: &[u8]) -> Result<Map, ConfigError> {
    parse(Path::new(PATH), text)
}

fn map(text: &str) -> Map {
    parse_bytes(text.as_bytes()).unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

fn err(text: &str) -> ConfigError {
    match parse_bytes(text.as_bytes()) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e,
    }
}

/// The error as `(line, message)`.
fn fatal(text: &str) -> (Option<usize>, String) {
    let e = err(text);
    assert_eq!(e.path, Path::new(PATH));
    (e.line, e.message)
}

fn warnings(m: &Map) -> Vec<(Option<usize>, &str)> {
    m.warnings.iter().map(|w| (w.line, w.message.as_str())).collect()
}

fn ldap(host: &str, port: u16) -> Server {
    Server { scheme: Scheme::Ldap, host: host.to_string(), port }
}

fn ldaps(host: &str, port: u16) -> Server {
    Server { scheme: Scheme::Ldaps, host: host.to_string(), port }
}

fn ldapi(path: &str) -> Server {
    Server { scheme: Scheme::Ldapi, host: path.to_string(), port: 0 }
}

fn servers(text: &str) -> Vec<Server> {
    map(text).servers
}

// ----- defaults (1.1) -----

#[test]
fn empty_file_gives_every_default() {
    let m = map("");
    let expected = Map {
        path: PathBuf::from(PATH),
        servers: vec![ldap("localhost", 389)],
        search_base: String::new(),
        query_filter: "(mailacceptinggeneralid=%s)".to_string(),
        result_format: "%s".to_string(),
        domain: vec![],
        result_attribute: vec!["maildrop".to_string()],
        special_result_attribute: vec![],
        terminal_result_attribute: vec![],
        leaf_result_attribute: vec![],
        scope: Scope::Sub,
        bind: BindMode::Simple,
        bind_dn: String::new(),
        bind_pw: Secret::default(),
        version: 3,
        start_tls: false,
        tls: TlsParams::default(),
        sasl_mechs: vec![],
        sasl_realm: String::new(),
        sasl_authz_id: String::new(),
        sasl_minssf: 0,
        timeout: 10,
        size_limit: 0,
        expansion_limit: 0,
        recursion_limit: 1000,
        dereference: 0,
        chase_referrals: false,
        health_check_keys: vec![],
        folded: vec![],
        health_check_presence: true,
        warnings: vec![],
    };
    assert_eq!(m, expected);
    assert!(!m.tls.require_cert);
}

#[test]
fn typical_map_is_read_completely() {
    let m = map("# Postfix LDAP map\n\
         server_host = ldap://ldap1.example.com ldap://ldap2.example.com:3389\n\
         search_base = ou=people,dc=example,dc=com\n\
         query_filter = (&(objectClass=inetOrgPerson)(mail=%s))\n\
         result_attribute = mail, uid\n\
         result_format = %u@example.org\n\
         scope = one\n\
         bind = yes\n\
         bind_dn = cn=postfix,dc=example,dc=com\n\
         bind_pw = s3cret\n\
         timeout = 5\n\
         start_tls = yes\n\
         tls_ca_cert_file = /etc/ssl/certs/ca.pem\n\
         tls_require_cert = yes\n\
         health_check_key = postmaster@example.com, abuse@example.com\n");
    assert_eq!(m.servers, vec![ldap("ldap1.example.com", 389), ldap("ldap2.example.com", 3389)]);
    assert_eq!(m.search_base, "ou=people,dc=example,dc=com");
    assert_eq!(m.query_filter, "(&(objectClass=inetOrgPerson)(mail=%s))");
    assert_eq!(m.result_attribute, vec!["mail", "uid"]);
    assert_eq!(m.result_format, "%u@example.org");
    assert_eq!(m.scope, Scope::One);
    assert_eq!(m.bind, BindMode::Simple);
    assert_eq!(m.bind_dn, "cn=postfix,dc=example,dc=com");
    assert_eq!(m.bind_pw.expose(), "s3cret");
    assert_eq!(m.timeout, 5);
    assert!(m.start_tls);
    assert_eq!(m.tls.ca_cert_file, Some(PathBuf::from("/etc/ssl/certs/ca.pem")));
    assert!(m.tls.require_cert);
    assert_eq!(m.health_check_keys, vec!["postmaster@example.com", "abuse@example.com"]);
    assert_eq!(m.warnings, vec![]);
    assert_eq!(m.name(), "ldap-test.cf");
}

// ----- file syntax (1.2) -----

#[test]
fn rule1_blank_and_whitespace_only_lines_are_ignored() {
    let m = map("\n   \n\t\n\r\n\x0b\x0c\ntimeout = 7\n\n  \n");
    assert_eq!(m.timeout, 7);
    assert_eq!(m.warnings, vec![]);
}

#[test]
fn rule2_comment_lines_are_ignored_even_indented() {
    let m = map("# timeout = 1\n   # timeout = 2\n\t#timeout = 3\ntimeout = 4\n#timeout = 5\n");
    assert_eq!(m.timeout, 4);
    assert_eq!(m.warnings, vec![]);
}

#[test]
fn rule2_there_are_no_trailing_comments() {
    // The verified Postfix result: ldap://#:389 ldap://not:389 ldap://a:389 ldap://comment:389.
    let m = map("server_host = ldap://127.0.0.1:389 # not a comment\n");
    assert_eq!(
        m.servers,
        vec![ldap("127.0.0.1", 389), ldap("#", 389), ldap("not", 389), ldap("a", 389), ldap("comment", 389)]
    );
    let m = map("search_base = dc=example,dc=com # the base\n");
    assert_eq!(m.search_base, "dc=example,dc=com # the base");
}

#[test]
fn rule3_continuation_lines_join_with_their_leading_whitespace() {
    let m = map("server_host = ldap1\n  ldap2,\n\tldap3\nsearch_base = dc=example,\n dc=com\n");
    assert_eq!(m.servers, vec![ldap("ldap1", 389), ldap("ldap2", 389), ldap("ldap3", 389)]);
    assert_eq!(m.search_base, "dc=example, dc=com");
}

#[test]
fn rule3_value_may_start_on_a_continuation_line() {
    let m = map("timeout =\n   3\n");
    assert_eq!(m.timeout, 3);
}

#[test]
fn rule3_comments_and_blank_lines_inside_a_continued_value_do_not_end_it() {
    let m = map("server_host = a\n# a comment\n\n   \n  b\n  # indented comment\n c\ntimeout = 2\n");
    assert_eq!(m.servers, vec![ldap("a", 389), ldap("b", 389), ldap("c", 389)]);
    assert_eq!(m.timeout, 2);
    assert_eq!(m.warnings, vec![]);
}

#[test]
fn rule3_first_logical_line_starting_with_whitespace_is_ignored_with_a_warning() {
    // Verified: `  server_host = ...` fell back to localhost; its continuation goes with it.
    let m = map("# comment\n\n  server_host = ldap://ldap.example.com\n   ldap://other\ntimeout = 3\n");
    assert_eq!(m.servers, vec![ldap("localhost", 389)]);
    assert_eq!(m.timeout, 3);
    assert_eq!(warnings(&m), vec![(Some(3), "logical line must not start with whitespace: ignored")]);
}

#[test]
fn rule4_name_and_value_split() {
    let m = map("timeout=4\nsearch_base   =    dc=a = b  \t\nbind_dn =\nquery_filter\t=\t(uid=%u)\n");
    assert_eq!(m.timeout, 4);
    assert_eq!(m.search_base, "dc=a = b");
    assert_eq!(m.bind_dn, "");
    assert_eq!(m.query_filter, "(uid=%u)");
    assert_eq!(m.warnings, vec![]);
}

#[test]
fn rule4_crlf_line_ends_are_trimmed() {
    let m = map("search_base = dc=example,dc=com\r\ntimeout = 6\r\n");
    assert_eq!(m.search_base, "dc=example,dc=com");
    assert_eq!(m.timeout, 6);
}

#[test]
fn rule4_missing_equals_is_fatal_with_the_line_of_the_logical_line() {
    // Verified: `/tmp/t2.cf, line 4: missing '=' after attribute name: "bind_pw  secret"`.
    let (line, message) = fatal("server_host = h\n\n# c\nserver_port\n  389\n# x\n\nfoo=bar\n");
    assert_eq!(line, Some(4));
    assert_eq!(message, "missing '=' after attribute name: \"server_port\"");
    let e = err("timeout 5\n");
    assert_eq!(e.to_string(), format!("{PATH}:1: missing '=' after attribute name: \"timeout\""));
}

#[test]
fn rule4_missing_equals_after_unknown_name_does_not_quote_it() {
    let (line, message) = fatal("timeout = 5\nhunter2\n");
    assert_eq!(line, Some(2));
    assert_eq!(message, "missing '=' after attribute name (the text is not shown: it may be a secret)");
}

#[test]
fn rule4_missing_name_is_fatal() {
    assert_eq!(fatal("timeout = 5\n= value\n"), (Some(2), "missing attribute name".to_string()));
    assert_eq!(fatal("=\n"), (Some(1), "missing attribute name".to_string()));
}

#[test]
fn rule5_quotes_are_literal() {
    let m = map("search_base = \"dc=example,dc=com\"\nbind_pw = 'pw'\n");
    assert_eq!(m.search_base, "\"dc=example,dc=com\"");
    assert_eq!(m.bind_pw.expose(), "'pw'");
}

#[test]
fn rule6_no_macro_expansion() {
    let m = map("result_attribute = $myhostname\nsearch_base = ${base}\nbind_dn = $(dn)\n");
    assert_eq!(m.result_attribute, vec!["$myhostname"]);
    assert_eq!(m.search_base, "${base}");
    assert_eq!(m.bind_dn, "$(dn)");
}

#[test]
fn rule7_names_are_case_sensitive() {
    let m = map("Server_Host = ldap://elsewhere\nSCOPE = base\nTimeout = x\n");
    assert_eq!(m.servers, vec![ldap("localhost", 389)]);
    assert_eq!(m.scope, Scope::Sub);
    assert_eq!(m.timeout, 10);
    assert_eq!(m.warnings, vec![]);
}

#[test]
fn rule8_unknown_names_are_ignored_silently() {
    let m = map("bogus_key = whatever\nquery = (x=%s)\n");
    assert_eq!(m.warnings, vec![]);
    assert_eq!(m.query_filter, "(mailacceptinggeneralid=%s)");
}

#[test]
fn rule9_last_duplicate_wins_with_a_warning_when_values_differ() {
    // Verified: `line 5: overriding earlier entry: timeout=2`, no warning for the same value again.
    let m = map("server_host = h\ntimeout = 2\n# c\n\ntimeout =\n  3\n#x\n\ntimeout = 3\n");
    assert_eq!(m.timeout, 3);
    assert_eq!(warnings(&m), vec![(Some(5), "overriding earlier entry: timeout=2")]);
}

#[test]
fn rule9_duplicate_bind_pw_is_not_shown() {
    let m = map("bind_pw = first-secret\nbind_pw = second-secret\n");
    assert_eq!(m.bind_pw.expose(), "second-secret");
    assert_eq!(warnings(&m), vec![(Some(2), "overriding earlier entry: bind_pw=<redacted>")]);
}

#[test]
fn rule10_booleans_are_yes_or_no_case_insensitive() {
    let m = map("start_tls = YES\nchase_referrals = Yes\ntls_require_cert = yes\n");
    assert!(m.start_tls && m.chase_referrals && m.tls.require_cert);
    let m = map("start_tls = No\nchase_referrals = NO\ntls_require_cert = no\n");
    assert!(!m.start_tls && !m.chase_referrals && !m.tls.require_cert);
    for bad in ["true", "1", "on", "", "yes please"] {
        let (line, message) = fatal(&format!("timeout = 1\nstart_tls = {bad}\n"));
        assert_eq!(line, Some(2));
        assert_eq!(message, format!("bad boolean configuration: start_tls = {bad}"));
    }
    assert_eq!(
        fatal("chase_referrals = On\n"),
        (Some(1), "bad boolean configuration: chase_referrals = On".to_string())
    );
    assert_eq!(
        fatal("tls_require_cert = demand\n"),
        (Some(1), "bad boolean configuration: tls_require_cert = demand".to_string())
    );
}

#[test]
fn rule11_integers_follow_strtol_over_the_whole_string() {
    assert_eq!(map("timeout = +5\n").timeout, 5);
    assert_eq!(map("timeout = 010\n").timeout, 10);
    assert_eq!(map("timeout = 0\n").timeout, 0);
    assert_eq!(map("server_port = 2147483647\nserver_host = ldap://h\n").servers, vec![ldap("h", 389)]);
    for bad in ["5s", "0x10", "", "+", "-", "1.5", "2147483648", "99999999999", "5 5", "٣"] {
        let (line, message) = fatal(&format!("\ntimeout = {bad}\n"));
        assert_eq!(line, Some(2), "{bad}");
        assert_eq!(message, format!("bad numerical configuration: timeout = {bad}"));
    }
}

#[test]
fn rule11_min_and_max_are_fatal() {
    assert_eq!(fatal("recursion_limit = 0\n"), (Some(1), "invalid recursion_limit parameter value 0 < 1".to_string()));
    assert_eq!(fatal("version = 1\n"), (Some(1), "invalid version parameter value 1 < 2".to_string()));
    assert_eq!(fatal("version = -3\n"), (Some(1), "invalid version parameter value -3 < 2".to_string()));
    assert_eq!(
        fatal("bind = sasl\nsasl_minssf = 4097\n"),
        (Some(2), "invalid sasl_minssf parameter value 4097 > 4096".to_string())
    );
    assert_eq!(map("bind = sasl\nsasl_minssf = 4096\n").sasl_minssf, 4096);
    assert_eq!(map("recursion_limit = 1\n").recursion_limit, 1);
}

#[test]
fn rule12_nul_byte_ends_the_logical_line_with_a_warning() {
    // Postfix 3.7 keeps "5" silently (verified: `timeout = 5\0junk` works); later versions warn.
    let m = parse_bytes(b"timeout = 5\0junk\n  more\nsearch_base = dc=a\0zz\n").unwrap();
    assert_eq!(m.timeout, 5);
    assert_eq!(m.search_base, "dc=a");
    assert_eq!(
        warnings(&m),
        vec![(Some(1), "text after null byte may be ignored"), (Some(3), "text after null byte may be ignored")]
    );
    // Verified: `line 2: missing attribute name: ""`.
    let e = parse_bytes(b"timeout = 5\n\0bind = maybe\n").unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (Some(2), "missing attribute name"));
    // A NUL inside the value of bind: the text after it is gone, so "maybe" is what Postfix rejects.
    let e = parse_bytes(b"bind = maybe\0junk\n").unwrap_err();
    assert_eq!(e.message, "unsupported parameter value: bind = maybe");
}

// ----- server_host (1.1) -----

#[test]
fn server_host_bare_host_gets_server_port() {
    assert_eq!(servers("server_host = ldap.example.com\n"), vec![ldap("ldap.example.com", 389)]);
    assert_eq!(
        servers("server_host = ldap.example.com other\nserver_port = 3389\n"),
        vec![ldap("ldap.example.com", 3389), ldap("other", 3389)]
    );
    // `ldap://h:0` gets the default port from libldap.
    assert_eq!(servers("server_host = h\nserver_port = 0\n"), vec![ldap("h", 389)]);
}

#[test]
fn server_host_host_colon_port_ignores_server_port() {
    assert_eq!(
        servers("server_host = 127.0.0.1:3899, 127.0.0.1:3389 h\nserver_port = 1000\n"),
        vec![ldap("127.0.0.1", 3899), ldap("127.0.0.1", 3389), ldap("h", 1000)]
    );
    // Verified by strace: `127.0.0.1:0` connects to port 389.
    assert_eq!(servers("server_host = 127.0.0.1:0\n"), vec![ldap("127.0.0.1", 389)]);
}

#[test]
fn server_host_urls_with_default_ports() {
    assert_eq!(
        servers("server_host = ldap://a ldaps://b ldap://c:1389 ldaps://d:1636\nserver_port = 999\n"),
        vec![ldap("a", 389), ldaps("b", 636), ldap("c", 1389), ldaps("d", 1636)]
    );
}

#[test]
fn server_host_url_scheme_is_case_insensitive() {
    assert_eq!(servers("server_host = LDAP://a LdapS://b\n"), vec![ldap("a", 389), ldaps("b", 636)]);
}

#[test]
fn server_host_ldapi_socket_path_is_percent_decoded() {
    let m = map("server_host = ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi ldapi://\n");
    assert_eq!(m.servers, vec![ldapi("/var/run/slapd/ldapi"), ldapi("")]);
    assert_eq!(m.servers[0].url(), "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi");
    assert_eq!(m.warnings, vec![]);
}

#[test]
fn server_host_ldapi_with_unencoded_path_uses_the_default_socket_with_a_hint() {
    let m = map("server_host = ldapi:///var/run/slapd/ldapi\n");
    assert_eq!(m.servers, vec![ldapi("")]);
    assert_eq!(
        warnings(&m),
        vec![(
            Some(1),
            "ldapi:///var/run/slapd/ldapi: an ldapi socket path must be percent-encoded \
             (ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi); libldap uses its default socket"
        )]
    );
}

#[test]
fn server_host_ipv6_in_brackets() {
    let m = map("server_host = ldap://[::1]:3389 ldaps://[2001:db8::1] [::1]:1389 [fe80::2]\n");
    assert_eq!(m.servers, vec![ldap("::1", 3389), ldaps("2001:db8::1", 636), ldap("::1", 1389), ldap("fe80::2", 389)]);
    assert_eq!(m.servers[0].url(), "ldap://[::1]:3389");
    assert_eq!(m.warnings, vec![]);
}

#[test]
fn server_host_unbracketed_ipv6_breaks_the_whole_list_as_in_postfix() {
    // Verified: `Unable to init LDAP server ldap://127.0.0.1:1 ldap://::1`, every lookup fails.
    let (line, message) = fatal("timeout = 1\nserver_host = 127.0.0.1:1 ::1\n");
    assert_eq!(line, Some(2));
    assert_eq!(
        message,
        "server_host entry \"::1\" becomes the invalid URL ldap://::1 (bad port): libldap rejects the whole \
         server list and Postfix fails every lookup; write an IPv6 address as [::1] or ldap://[::1]:389"
    );
}

#[test]
fn server_host_bad_host_port_breaks_the_whole_list() {
    // Verified: `Unable to init LDAP server ldap://127.0.0.1:1 ldap://foo:bar`.
    let (line, message) = fatal("server_host = 127.0.0.1:1 foo:bar\n");
    assert_eq!(line, Some(1));
    assert_eq!(
        message,
        "server_host entry \"foo:bar\" becomes the invalid URL ldap://foo:bar (bad port): libldap rejects \
         the whole server list and Postfix fails every lookup"
    );
    assert!(fatal("server_host = host:\n").1.contains("(empty port)"));
}

#[test]
fn server_host_commas_and_whitespace_mix() {
    let m = map("server_host = a,b , c\t\td,,\r e\n   f ,\n");
    let hosts: Vec<&str> = m.servers.iter().map(|s| s.host.as_str()).collect();
    assert_eq!(hosts, vec!["a", "b", "c", "d", "e", "f"]);
}

#[test]
fn server_host_bad_url_is_skipped_with_a_warning() {
    // Verified: `error parsing URL ldap://[::1: 5: Compare False; skipping`.
    let m = map("server_host = 127.0.0.1:1 ldap://[::1 <ldap://h:4 ldap://h:x ldap://h/dc=x?a?bogus\n");
    assert_eq!(m.servers, vec![ldap("127.0.0.1", 1)]);
    assert_eq!(
        warnings(&m),
        vec![
            (Some(1), "error parsing URL ldap://[::1: missing ']'; skipping"),
            (Some(1), "error parsing URL <ldap://h:4: bad enclosure; skipping"),
            (Some(1), "error parsing URL ldap://h:x: bad port; skipping"),
            (Some(1), "error parsing URL ldap://h/dc=x?a?bogus: bad scope; skipping"),
        ]
    );
}

#[test]
fn server_host_every_url_skipped_is_an_error() {
    // Postfix hands an empty list to libldap, which then cannot contact any server (verified).
    let (line, message) = fatal("\nserver_host = ldap://[::1\n");
    assert_eq!(line, Some(2));
    assert_eq!(message, "no usable server in server_host: every entry was skipped");
    assert_eq!(fatal("server_host = , ,\n"), (Some(1), "server_host names no server".to_string()));
}

#[test]
fn server_host_thirteen_url_errors_are_fatal() {
    // Verified: the 13th msg_error() gives `fatal: too many errors - program terminated`.
    let twelve: String = (1..=12).map(|i| format!(" ldap://[x{i}")).collect();
    let m = map(&format!("server_host = h{twelve}\n"));
    assert_eq!(m.servers, vec![ldap("h", 389)]);
    assert_eq!(m.warnings.len(), 12);
    let (line, message) = fatal(&format!("server_host = h{twelve} ldap://[x13\n"));
    assert_eq!(line, Some(1));
    assert_eq!(message, "too many errors - program terminated (13 URLs in server_host cannot be parsed)");
}

#[test]
fn server_host_empty_is_fatal() {
    // Verified: `bad string length 0 < 1: server_host =`.
    assert_eq!(fatal("timeout = 1\nserver_host =\n"), (Some(2), "bad string length 0 < 1: server_host =".to_string()));
}

#[test]
fn server_host_url_parts_after_the_host_are_ignored() {
    let m = map("server_host = ldap://h:10389/dc=example?mail?sub?(uid=*) ldap://g?x\n");
    assert_eq!(m.servers, vec![ldap("h", 10389), ldap("g", 389)]);
    // A DN with commas is split apart by Postfix: the pieces become host names.
    let m = map("server_host = ldap://h/dc=example,dc=com\n");
    assert_eq!(m.servers, vec![ldap("h", 389), ldap("dc=com", 389)]);
}

#[test]
fn server_host_enclosed_and_url_prefixed_forms() {
    // Verified by strace: both connect.
    let m = map("server_host = URL:ldap://a:2 <ldap://b:3> <URL:ldaps://c>\n");
    assert_eq!(m.servers, vec![ldap("a", 2), ldap("b", 3), ldaps("c", 636)]);
}

#[test]
fn server_host_url_without_host_means_localhost() {
    // Verified by strace: `ldap://:1` and `ldap://%zz:1` connect to 127.0.0.1:1.
    assert_eq!(
        servers("server_host = ldap://:1 ldap:// ldap://%zz:1 ldaps://\n"),
        vec![ldap("localhost", 1), ldap("localhost", 389), ldap("localhost", 1), ldaps("localhost", 636)]
    );
    assert_eq!(servers("server_host = ldap://local%68ost:1\n"), vec![ldap("localhost", 1)]);
}

#[test]
fn server_host_port_out_of_range_is_skipped() {
    // libldap does not check the range (verified: 70000 reaches connect()); this check cannot use such a port.
    let m = map("server_host = ldap://h:70000 ldap://g:-5 k ldap://ok\nserver_port = 65536\n");
    assert_eq!(m.servers, vec![ldap("ok", 389)]);
    assert_eq!(
        warnings(&m),
        vec![
            (Some(1), "port 70000 out of range in ldap://h:70000; skipping"),
            (Some(1), "port -5 out of range in ldap://g:-5; skipping"),
            (Some(1), "port 65536 out of range in k; skipping"),
        ]
    );
    let (line, message) = fatal("server_host = ldap://h:70000\n");
    assert_eq!((line, message.as_str()), (Some(1), "no usable server in server_host: every entry was skipped"));
}

#[test]
fn server_host_pldap_is_checked_as_ldap() {
    let m = map("server_host = pldap://a pldaps://b:1\n");
    assert_eq!(m.servers, vec![ldap("a", 389), ldaps("b", 1)]);
    assert_eq!(
        warnings(&m),
        vec![
            (Some(1), "URL scheme pldap is checked as ldap: pldap://a"),
            (Some(1), "URL scheme pldaps is checked as ldaps: pldaps://b:1"),
        ]
    );
}

#[test]
fn server_host_duplicates_are_kept_in_order() {
    assert_eq!(servers("server_host = lb lb\n"), vec![ldap("lb", 389), ldap("lb", 389)]);
}

#[test]
fn server_port_is_parsed_even_when_unused() {
    assert_eq!(
        fatal("server_host = ldap://h\nserver_port = ldap\n"),
        (Some(2), "bad numerical configuration: server_port = ldap".to_string())
    );
    // Out of range but unused: harmless, as in Postfix (verified with 70000).
    assert_eq!(servers("server_host = h:1\nserver_port = 70000\n"), vec![ldap("h", 1)]);
}

// ----- version -----

#[test]
fn version_defaults_to_3_on_debian_and_accepts_2() {
    assert_eq!(map("").version, 3);
    assert_eq!(map("version = 2\n").version, 2);
    assert_eq!(map("version = 3\n").version, 3);
}

#[test]
fn version_unknown_falls_back_to_3_with_a_warning() {
    let m = map("timeout = 1\nversion = 4\n");
    assert_eq!(m.version, 3);
    assert_eq!(warnings(&m), vec![(Some(2), "Unknown version 4, using 3")]);
}

#[test]
fn version_is_forced_to_3_by_ldaps_ldapi_and_start_tls() {
    let m = map("server_host = ldap://a ldaps://b ldapi://\nversion = 2\n");
    assert_eq!(m.version, 3);
    // Only the first non-ldap URL warns: the version is 3 after it.
    assert_eq!(warnings(&m), vec![(Some(1), "URL scheme ldaps requires protocol version 3")]);
    let m = map("server_host = ldapi://\nversion = 2\n");
    assert_eq!(warnings(&m), vec![(Some(1), "URL scheme ldapi requires protocol version 3")]);
    let m = map("version = 2\nstart_tls = yes\n");
    assert_eq!(m.version, 3);
    assert_eq!(warnings(&m), vec![(Some(2), "start_tls requires protocol version 3")]);
    // With the Debian default nothing needs forcing.
    assert_eq!(map("server_host = ldaps://b\nstart_tls = yes\n").warnings, vec![]);
}

// ----- scope, bind, SASL -----

#[test]
fn scope_values() {
    assert_eq!(map("scope = one\n").scope, Scope::One);
    assert_eq!(map("scope = BASE\n").scope, Scope::Base);
    assert_eq!(map("scope = Sub\n").scope, Scope::Sub);
    let m = map("scope = SubTree\n");
    assert_eq!(m.scope, Scope::Sub);
    assert_eq!(warnings(&m), vec![(Some(1), "Unrecognized value SubTree specified for scope; using sub")]);
    assert_eq!(fatal("scope =\n"), (Some(1), "bad string length 0 < 1: scope =".to_string()));
}

#[test]
fn bind_values() {
    for (text, mode) in [
        ("no", BindMode::None),
        ("NONE", BindMode::None),
        ("yes", BindMode::Simple),
        ("Simple", BindMode::Simple),
        ("sasl", BindMode::Sasl),
        ("SASL", BindMode::Sasl),
    ] {
        assert_eq!(map(&format!("bind = {text}\n")).bind, mode, "{text}");
    }
    assert_eq!(fatal("bind = maybe\n"), (Some(1), "unsupported parameter value: bind = maybe".to_string()));
    assert_eq!(fatal("bind =\n"), (Some(1), "bad string length 0 < 1: bind =".to_string()));
}

#[test]
fn sasl_parameters_are_read_only_with_bind_sasl() {
    let m = map("bind = sasl\nsasl_mechs = EXTERNAL, GSSAPI DIGEST-MD5\nsasl_realm = EXAMPLE\n\
                 sasl_authz_id = u:postfix\nsasl_minssf = 56\n");
    assert_eq!(m.sasl_mechs, vec!["EXTERNAL", "GSSAPI", "DIGEST-MD5"]);
    assert_eq!(m.sasl_realm, "EXAMPLE");
    assert_eq!(m.sasl_authz_id, "u:postfix");
    assert_eq!(m.sasl_minssf, 56);
    // Verified: with bind = yes, `sasl_minssf = 9999` is not even looked at.
    let m = map("sasl_mechs = EXTERNAL\nsasl_minssf = junk\nsasl_realm = R\n");
    assert_eq!((m.sasl_mechs.len(), m.sasl_realm.as_str(), m.sasl_minssf), (0, "", 0));
    assert_eq!(
        fatal("bind = sasl\nsasl_minssf = junk\n"),
        (Some(2), "bad numerical configuration: sasl_minssf = junk".to_string())
    );
    let m = map("bind = sasl\nsasl_minssf = -1\n");
    assert_eq!(m.sasl_minssf, 0);
    assert_eq!(warnings(&m), vec![(Some(2), "sasl_minssf = -1 is negative: this check uses 0")]);
}

// ----- numbers -----

#[test]
fn dereference_out_of_range_warns_and_uses_0() {
    for n in 0..=3u8 {
        assert_eq!(map(&format!("dereference = {n}\n")).dereference, n);
    }
    let m = map("dereference = 4\n");
    assert_eq!(m.dereference, 0);
    assert_eq!(warnings(&m), vec![(Some(1), "Unrecognized value 4 specified for dereference; using 0")]);
    let m = map("dereference = -1\n");
    assert_eq!(warnings(&m), vec![(Some(1), "Unrecognized value -1 specified for dereference; using 0")]);
    assert_eq!(fatal("dereference = always\n").1, "bad numerical configuration: dereference = always");
}

#[test]
fn cache_parameters_are_parsed_then_ignored_with_a_warning() {
    // Verified: cache = yes and cache_expiry = 5 warn; cache_size = -3 does not.
    let m = map("cache = yes\ncache_expiry = 5\ncache_size = -3\n");
    assert_eq!(warnings(&m), vec![(Some(1), "ignoring cache"), (Some(2), "ignoring cache_expiry")]);
    assert_eq!(map("cache = no\ncache_size = -1\n").warnings, vec![]);
    assert_eq!(warnings(&map("cache_size = 0\n")), vec![(Some(1), "ignoring cache_size")]);
    assert_eq!(fatal("cache = true\n"), (Some(1), "bad boolean configuration: cache = true".to_string()));
    assert_eq!(fatal("cache_size = 1k\n").1, "bad numerical configuration: cache_size = 1k");
}

#[test]
fn size_limit_defaults_to_expansion_limit() {
    let m = map("expansion_limit = 20\n");
    assert_eq!((m.expansion_limit, m.size_limit), (20, 20));
    let m = map("expansion_limit = 20\nsize_limit = 5\n");
    assert_eq!((m.expansion_limit, m.size_limit), (20, 5));
    let m = map("size_limit = 7\n");
    assert_eq!((m.expansion_limit, m.size_limit), (0, 7));
}

#[test]
fn negative_numbers_postfix_accepts_are_warned_about() {
    // Verified: `timeout = -5` is accepted by Postfix (no minimum).
    let m = map("timeout = -5\nexpansion_limit = -1\n");
    assert_eq!((m.timeout, m.expansion_limit, m.size_limit), (10, 0, 0));
    assert_eq!(
        warnings(&m),
        vec![
            (Some(1), "timeout = -5 is negative: this check uses 10 (the default)"),
            (None, "size_limit = -1 is negative: this check uses 0 (no limit)"),
            (Some(2), "expansion_limit = -1 is negative: this check uses 0 (no limit)"),
        ]
    );
}

#[test]
fn timeout_has_no_unit() {
    assert_eq!(fatal("timeout = 5s\n"), (Some(1), "bad numerical configuration: timeout = 5s".to_string()));
}

#[test]
fn debuglevel_is_checked() {
    assert_eq!(map("debuglevel = 3\n").warnings, vec![]);
    assert_eq!(fatal("debuglevel = x\n"), (Some(1), "bad numerical configuration: debuglevel = x".to_string()));
}

// ----- templates -----

#[test]
fn result_format_falls_back_to_result_filter_then_percent_s() {
    assert_eq!(map("result_filter = %u\n").result_format, "%u");
    assert_eq!(map("result_format = %d\nresult_filter = %u\n").result_format, "%d");
    assert_eq!(map("result_format =\nresult_filter = %u\n").result_format, "%u");
    assert_eq!(map("result_format =\n").result_format, "%s");
    // Verified: `bad string length 0 < 1: result_filter =`, also with an empty result_format.
    assert_eq!(
        fatal("result_format =\nresult_filter =\n"),
        (Some(2), "bad string length 0 < 1: result_filter =".to_string())
    );
}

#[test]
fn unknown_percent_expansion_is_fatal() {
    // Verified wording: `db_common_parse: FILE: Invalid query template: dc=%x`.
    assert_eq!(fatal("search_base = dc=%x\n"), (Some(1), "Invalid query template: dc=%x".to_string()));
    assert_eq!(
        fatal("timeout = 1\nquery_filter = (a=%s)%\n"),
        (Some(2), "Invalid query template: (a=%s)%".to_string())
    );
    assert_eq!(fatal("result_format = %z\n"), (Some(1), "Invalid result template: %z".to_string()));
    assert_eq!(fatal("result_filter = x%0\n"), (Some(1), "Invalid result template: x%0".to_string()));
}

#[test]
fn every_valid_expansion_is_accepted() {
    let m = map("search_base = ou=%%,dc=%d,dc=%1\nquery_filter = (&(a=%s)(b=%u)(c=%S)(d=%U)(e=%D)(f=%9))\n\
                 result_format = %% %s %u %d %S %U %D %1 %2 %3 %4 %5 %6 %7 %8 %9\n");
    assert_eq!(m.warnings, vec![]);
    assert_eq!(m.search_base, "ou=%%,dc=%d,dc=%1");
}

#[test]
fn fixed_query_filter_warns() {
    let m = map("query_filter = (a=b)\n");
    assert_eq!(warnings(&m), vec![(Some(1), "Fixed query_filter (a=b) is probably useless")]);
    let m = map("query_filter = (a=%%)\n");
    assert_eq!(warnings(&m), vec![(Some(1), "Fixed query_filter (a=%%) is probably useless")]);
}

// ----- lists and strings -----

#[test]
fn lists_split_on_commas_and_whitespace() {
    let m = map("domain = example.com, !foo.example.com /etc/postfix/domains hash:/etc/postfix/d\n\
                 result_attribute = mail,,maildrop\n   uid\n\
                 special_result_attribute = member\n\
                 terminal_result_attribute = a b\n\
                 leaf_result_attribute = c\tcn\n\
                 health_check_key = a@example.com,b@example.com\n");
    assert_eq!(m.domain, vec!["example.com", "!foo.example.com", "/etc/postfix/domains", "hash:/etc/postfix/d"]);
    assert_eq!(m.result_attribute, vec!["mail", "maildrop", "uid"]);
    assert_eq!(m.special_result_attribute, vec!["member"]);
    assert_eq!(m.terminal_result_attribute, vec!["a", "b"]);
    assert_eq!(m.leaf_result_attribute, vec!["c", "cn"]);
    assert_eq!(m.health_check_keys, vec!["a@example.com", "b@example.com"]);
    assert_eq!(map("result_attribute =\n").result_attribute, Vec::<String>::new());
}

#[test]
fn tls_parameters_empty_means_none() {
    let m = map("tls_ca_cert_file =\ntls_ca_cert_dir = /etc/ssl/certs\ntls_cert = /c.pem\ntls_key = /k.pem\n\
                 tls_cipher_suite = HIGH\ntls_random_file = /dev/urandom\n");
    assert_eq!(
        m.tls,
        TlsParams {
            ca_cert_file: None,
            ca_cert_dir: Some(PathBuf::from("/etc/ssl/certs")),
            cert: Some(PathBuf::from("/c.pem")),
            key: Some(PathBuf::from("/k.pem")),
            require_cert: false,
            cipher_suite: Some("HIGH".to_string()),
        }
    );
    assert_eq!(map("tls_cipher_suite =\n").tls.cipher_suite, None);
}

#[cfg(unix)]
#[test]
fn tls_file_names_keep_their_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let m = parse_bytes(b"tls_ca_cert_file = /etc/ssl/\xff.pem\n").unwrap();
    assert_eq!(m.tls.ca_cert_file.unwrap().as_os_str().as_bytes(), b"/etc/ssl/\xff.pem");
    assert_eq!(m.warnings, vec![]);
}

#[test]
fn invalid_utf8_values_are_replaced_with_a_warning() {
    let m = parse_bytes(b"search_base = dc=\xe9t\xe9\nbind_pw = p\xffw\n").unwrap();
    assert_eq!(m.search_base, "dc=\u{fffd}t\u{fffd}");
    assert_eq!(m.bind_pw.expose(), "p\u{fffd}w");
    assert_eq!(
        warnings(&m),
        vec![
            (Some(1), "value of search_base is not valid UTF-8: invalid bytes replaced with U+FFFD"),
            (Some(2), "value of bind_pw is not valid UTF-8: invalid bytes replaced with U+FFFD"),
        ]
    );
    // A name that is not UTF-8 is just an unknown name.
    let m = parse_bytes(b"time\xffout = x\n").unwrap();
    assert_eq!((m.timeout, m.warnings.len()), (10, 0));
}

// ----- order of fatal errors: the one Postfix reports first -----

#[test]
fn fatal_errors_come_in_postfix_order() {
    // File syntax before any parameter.
    assert_eq!(fatal("bind = maybe\ntimeout\n").1, "missing '=' after attribute name: \"timeout\"");
    // timeout is read before bind, bind before start_tls.
    assert_eq!(fatal("bind = maybe\ntimeout = x\n").1, "bad numerical configuration: timeout = x");
    assert_eq!(fatal("start_tls = 1\nbind = maybe\n").1, "unsupported parameter value: bind = maybe");
    // A server list libldap rejects only fails at lookup time in Postfix: open-time errors come first.
    assert_eq!(fatal("server_host = ::1\nstart_tls = 1\n").1, "bad boolean configuration: start_tls = 1");
}

// ----- secrets -----

#[test]
fn bind_pw_never_appears_in_any_message() {
    const SECRET: &str = "Zq7-s3cr3t";
    let cases = [
        format!("bind_pw {SECRET}\n"),
        format!("bind_pw\n  {SECRET}\n"),
        format!("bind_pw =\n{SECRET}\n"),
        format!("= {SECRET}\n"),
        format!("  bind_pw = {SECRET}\ntimeout = 1\n"),
        format!("bind_pw = {SECRET}\nbind_pw = other\n"),
        format!("bind_pw = {SECRET}\x00tail\n"),
        format!("bind_pw = {SECRET}\nbind = maybe\n"),
        format!("bind_pw = {SECRET}\nserver_host = ::1\n"),
    ];
    let mut cases: Vec<Vec<u8>> = cases.into_iter().map(String::into_bytes).collect();
    cases.push([b"bind_pw = ", SECRET.as_bytes(), b"\xff\n"].concat());
    for case in &cases {
        match parse_bytes(case) {
            Ok(m) => {
                for w in &m.warnings {
                    assert!(!w.message.contains(SECRET), "warning leaks the secret: {}", w.message);
                }
                assert!(!format!("{m:?}").contains(SECRET), "Debug leaks the secret");
            }
            Err(e) => assert!(!e.to_string().contains(SECRET), "error leaks the secret: {e}"),
        }
    }
    // The secret itself is kept, only its display is redacted.
    let m = map(&format!("bind_pw = {SECRET}\n"));
    assert_eq!(m.bind_pw.expose(), SECRET);
    assert_eq!(format!("{} {:?}", m.bind_pw, m.bind_pw), "<redacted> <redacted>");
}

#[test]
fn an_indented_bind_pw_is_folded_as_postfix_does_and_stays_secret() {
    const PW: &str = "Fold-Pw-8731";
    // Postfix joins the indented line to the parameter above it: bind_pw stays unset.
    let m = map(&format!("server_host = ldap://127.0.0.1:389\n  bind_pw = {PW}\nsearch_base = dc=x\n"));
    assert_eq!(m.bind_pw.expose(), "");
    assert_eq!(m.servers, vec![ldap("127.0.0.1", 389)], "the password's words are never taken for servers");
    assert_eq!(m.folded, vec![Folded { param: "server_host".into(), line: 1, bind_pw_line: 2 }]);
    let m = map(&format!("search_base = dc=example,dc=com\n\tbind_pw = {PW}\nbind_dn = cn=x\n"));
    assert_eq!(m.search_base, format!("dc=example,dc=com\tbind_pw = {PW}"), "Postfix's view, for the probe");
    assert_eq!(m.folded[0].param, "search_base");
    let text = format!("search base {} not found", m.search_base);
    assert_eq!(
        secret::scrub(&text),
        "search base <the search_base of this map, which runs into an indented bind_pw line> not found"
    );
    assert_eq!(secret::scrub(&format!("x {PW} y")), "x <redacted> y");
    let m =
        map(&format!("domain = example.com\n  bind_pw = {PW}\nhealth_check_key = a@example.com\n  bind_pw = {PW}\n"));
    assert_eq!(m.domain, ["example.com"]);
    assert_eq!(m.health_check_keys, ["a@example.com"]);
    assert_eq!(m.folded.len(), 2);
    // Overriding a folded value does not quote it.
    let m = map(&format!("bind_dn = cn=a\n  bind_pw = {PW}\nbind_dn = cn=b\n"));
    assert!(m.warnings.iter().all(|w| !w.message.contains(PW) && !w.message.contains("cn=a")), "{:?}", m.warnings);
    assert!(m.folded.is_empty(), "the folded definition was overridden");
    // Not a fold: a bind_pw line at the start of a line, or `bind_pwx`.
    assert!(map(&format!("bind_dn = cn=a\nbind_pw = {PW}\n")).folded.is_empty());
    assert!(map("bind_dn = cn=a\n  bind_pwx = 1\n").folded.is_empty());
}

// ----- robustness -----

#[test]
fn one_megabyte_line() {
    let base = "o".repeat(1 << 20);
    let m = map(&format!("search_base = {base}\ntimeout = 2\n"));
    assert_eq!(m.search_base.len(), 1 << 20);
    assert_eq!(m.timeout, 2);
    // Messages quote at most 200 characters of a value.
    let (line, message) = fatal(&format!("timeout = {base}\n"));
    assert_eq!(line, Some(1));
    assert_eq!(message, format!("bad numerical configuration: timeout = {}...", "o".repeat(200)));
}

#[test]
fn ten_thousand_lines() {
    let mut text = String::from("server_host = ldap://h\n");
    for i in 0..9_998 {
        text.push_str(&format!("unknown_{i} = {i}\n"));
    }
    text.push_str("timeout = 9\n");
    let m = map(&text);
    assert_eq!(m.timeout, 9);
    assert_eq!(m.servers, vec![ldap("h", 389)]);
    // 10,000 duplicates: the last one wins, and the error line counts all of them.
    let mut text: String = (1..=10_000).map(|i| format!("timeout = {i}\n")).collect();
    assert_eq!(map(&text).timeout, 10_000);
    text.push_str("bind = maybe\n");
    assert_eq!(err(&text).line, Some(10_001));
}

#[test]
fn control_characters_in_quoted_values_are_escaped() {
    let (_, message) = fatal("bind = a\x1b[31mb\n");
    assert_eq!(message, "unsupported parameter value: bind = a\\u{1b}[31mb");
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small deterministic generator biased towards the bytes the parser cares about.
    const ALPHABET: &[u8] = b" \t\r\n\x0b\x0c#=%:,/[]<>?0123456789abcdefldapsi\x00\xff\xc3";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let names = ["server_host = ", "timeout = ", "search_base = ", "bind = ", "scope = ", "version = "];
    for _ in 0..2_000 {
        let mut text = Vec::new();
        for _ in 0..(next() % 6) {
            text.extend_from_slice(names[(next() % names.len() as u64) as usize].as_bytes());
            for _ in 0..(next() % 40) {
                text.push(ALPHABET[(next() % ALPHABET.len() as u64) as usize]);
            }
        }
        let _ = parse_bytes(&text);
    }
}

// ----- helpers -----

#[test]
fn logical_line_numbers_are_where_the_line_starts() {
    let mut w = Vec::new();
    let lines = logical_lines(b"# c\na = 1\n  2\n\n# x\n   3\nb = 4", &mut w);
    let got: Vec<(usize, &[u8])> = lines.iter().map(|l| (l.line, l.text.as_slice())).collect();
    assert_eq!(got, vec![(2, &b"a = 1  2   3"[..]), (7, &b"b = 4"[..])]);
    assert!(w.is_empty());
}

#[test]
fn url_parser_follows_libldap() {
    let url = |s| ldap_url::parse(s).map(|u| (u.scheme, u.host, u.port, u.has_dn));
    let ok = |scheme, host: &str, port, has_dn| Ok((scheme, host.to_string(), port, has_dn));
    assert_eq!(url("ldap://h"), ok(UrlScheme::Ldap, "h", 389, false));
    assert_eq!(url("ldaps://h:1/dc=x"), ok(UrlScheme::Ldaps, "h", 1, true));
    assert_eq!(url("ldap://h:%33%38%39"), ok(UrlScheme::Ldap, "h", 389, false));
    assert_eq!(url("ldap://[::1]x"), ok(UrlScheme::Ldap, "::1", 389, false));
    assert_eq!(url("ldapi://%2Frun%2Fldapi:389"), ok(UrlScheme::Ldapi, "/run/ldapi:389", 0, false));
    assert_eq!(url("ldap://h/??base?(a=b)?x"), ok(UrlScheme::Ldap, "h", 389, false));
    assert_eq!(url("ldap://h?anything?goes"), ok(UrlScheme::Ldap, "h", 389, false));
    assert_eq!(url("ldap://h:+7"), ok(UrlScheme::Ldap, "h", 7, false));
    assert_eq!(url("ldap://[::1]:1:2"), Err("bad port"));
    assert_eq!(url("ldap://[::1]x:1"), Err("text between ']' and ':'"));
    assert_eq!(url("ldap://h:"), Err("empty port"));
    assert_eq!(url("ldap://h:%zz"), Err("empty port"));
    assert_eq!(url("ldap://h/?????"), Err("bad URL: too many '?'"));
    assert_eq!(url("ldap://h/???%zz"), Err("bad filter"));
    assert_eq!(url("ldap://h/????,,"), Err("bad extensions"));
    assert_eq!(url("<ldap://h"), Err("bad enclosure"));
    assert_eq!(url("http://h"), Err("bad scheme"));
}

#[test]
fn hex_unescape_follows_libldap() {
    assert_eq!(hex_unescape("a%2Fb%2fc"), "a/b/c");
    assert_eq!(hex_unescape("a%2"), "");
    assert_eq!(hex_unescape("a%zzb"), "");
    assert_eq!(hex_unescape("a%00b"), "a");
    assert_eq!(hex_unescape("%C3%A9"), "é");
}

#[test]
fn strtol_semantics() {
    assert_eq!(parse_c_long(b"42"), Some(42));
    assert_eq!(parse_c_long(b" -42"), Some(-42));
    assert_eq!(parse_c_long(b"+0"), Some(0));
    assert_eq!(parse_c_long(b"99999999999999999999999"), Some(i64::MAX));
    assert_eq!(parse_c_long(b"4 2"), None);
    assert_eq!(parse_c_long(b""), None);
    assert_eq!(parse_c_long(b"-"), None);
}
