//! Proves the test fixture (tests/fixtures/slapd.sh, tests/common) against real tools, without
//! the project binary.
mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn ldap_anonymous_and_service_account() {
    let s = Slapd::shared();
    let url = s.ldap_url();
    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-b",
        "ou=people,dc=example,dc=com",
        "(uid=user0001)",
        "mail",
        "mailLocalAddress",
    ]);
    r.assert_code(0);
    assert!(r.stdout.contains("mail: user0001@example.com"), "{}", r.stdout);
    assert!(r.stdout.contains("mailLocalAddress: u1@example.org"), "{}", r.stdout);

    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        s.get("SERVICE_DN"),
        "-w",
        s.get("SERVICE_PW"),
        "-b",
        "dc=example,dc=com",
        "(mailLocalAddress=user0002@example.com)",
        "mailRoutingAddress",
    ]);
    r.assert_code(0);
    assert_eq!(count(&r.stdout, "mailRoutingAddress: "), 2, "{}", r.stdout);

    // the data set: 3000 users, aliases every 10th, forwards every 100th, groups
    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-b",
        "ou=people,dc=example,dc=com",
        "(uid=user3000)",
        "mailLocalAddress",
        "mailRoutingAddress",
    ]);
    r.assert_code(0);
    assert!(r.stdout.contains("mailLocalAddress: alias-user3000@example.com"), "{}", r.stdout);
    assert!(r.stdout.contains("mailRoutingAddress: user3000@forward.example.net"), "{}", r.stdout);
    let r = s.ldapsearch(&["-x", "-H", &url, "-b", "ou=groups,dc=example,dc=com", "(cn=all)", "member"]);
    r.assert_code(0);
    assert!(r.stdout.contains("member: cn=staff,ou=groups,dc=example,dc=com"), "{}", r.stdout);
    // passwords are not readable, not even by the service account
    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        s.get("SERVICE_DN"),
        "-w",
        s.get("SERVICE_PW"),
        "-b",
        "ou=services,dc=example,dc=com",
        "(cn=nobody)",
        "userPassword",
    ]);
    r.assert_code(0);
    assert!(r.stdout.contains("dn: cn=nobody,"), "{}", r.stdout);
    assert!(!r.stdout.contains("userPassword"), "{}", r.stdout);
    // wrong password
    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        s.get("SERVICE_DN"),
        "-w",
        "nope",
        "-b",
        "dc=example,dc=com",
        "-s",
        "base",
    ]);
    r.assert_code(49);
}

#[test]
fn ldaps_starttls_and_wrong_ca() {
    let s = Slapd::shared();
    let (ldaps, ldap) = (s.ldaps_url(), s.ldap_url());
    s.ldapsearch(&["-x", "-H", &ldaps, "-b", "dc=example,dc=com", "-s", "base", "dn"]).assert_code(0);
    s.ldapsearch(&["-x", "-ZZ", "-H", &ldap, "-b", "dc=example,dc=com", "-s", "base", "dn"]).assert_code(0);
    // [::1] is in the certificate, but slapd listens on 127.0.0.1 only
    let mut c = s.tool("ldapsearch");
    c.env("LDAPTLS_CACERT", s.get("WRONG_CA_FILE")).args([
        "-x",
        "-H",
        &ldaps,
        "-b",
        "dc=example,dc=com",
        "-s",
        "base",
        "dn",
    ]);
    let r = run_command(&mut c, None, Duration::from_secs(20));
    assert_eq!(r.code, 255, "wrong CA must fail: {r:?}");
    // a client certificate signed by the CA authenticates with SASL EXTERNAL
    let mut c = s.tool("ldapwhoami");
    c.env("LDAPTLS_CERT", s.get("CLIENT_CERT"))
        .env("LDAPTLS_KEY", s.get("CLIENT_KEY"))
        .args(["-Y", "EXTERNAL", "-H", &ldaps]);
    let r = run_command(&mut c, None, Duration::from_secs(20));
    r.assert_code(0);
    assert!(r.stdout.contains("dn:cn=client"), "{r:?}");
}

#[test]
fn ldapi_external_is_root_and_sees_everything() {
    let s = Slapd::shared();
    assert!(s.ldapi_path.exists());
    let out = s.search_root("ou=hidden,dc=example,dc=com", "(objectClass=*)", &["dn"]);
    assert!(out.contains("dn: uid=secret,ou=hidden,dc=example,dc=com"), "{out}");
    let out = s.search_root("cn=config", "(olcSuffix=*)", &["olcAccess"]);
    assert_eq!(count(&out, "olcAccess: "), 4, "{out}");
}

#[test]
fn hidden_base_is_no_such_object() {
    let s = Slapd::shared();
    let url = s.ldap_url();
    for bind in [vec![], vec!["-D", s.get("SERVICE_DN"), "-w", s.get("SERVICE_PW")]] {
        let mut a = vec!["-x", "-H", &url];
        a.extend(bind);
        a.extend(["-b", "ou=hidden,dc=example,dc=com", "(objectClass=*)"]);
        let r = s.ldapsearch(&a);
        assert_eq!(r.code, 32, "{r:?}");
        assert!(r.stderr.contains("No such object"), "{r:?}");
    }
    // and a subtree search from the suffix does not show it
    let r = s.ldapsearch(&["-x", "-H", &url, "-b", "dc=example,dc=com", "(uid=secret)"]);
    r.assert_code(0);
    assert!(r.stdout.trim().is_empty(), "{r:?}");
    // the admin sees it
    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        s.get("ADMIN_DN"),
        "-w",
        s.get("ADMIN_PW"),
        "-b",
        "ou=hidden,dc=example,dc=com",
        "(uid=secret)",
        "mail",
    ]);
    r.assert_code(0);
    assert!(r.stdout.contains("mail: secret@example.com"), "{r:?}");
}

#[test]
fn nobody_binds_but_reads_nothing() {
    let s = Slapd::shared();
    let url = s.ldap_url();
    let r = s.run_tool("ldapwhoami", &["-x", "-H", &url, "-D", s.get("NOBODY_DN"), "-w", s.get("NOBODY_PW")], None);
    r.assert_code(0);
    assert!(r.stdout.contains("cn=nobody"), "{r:?}");
    // slapd answers noSuchObject (32) for a base that the identity may not see
    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        s.get("NOBODY_DN"),
        "-w",
        s.get("NOBODY_PW"),
        "-b",
        "dc=example,dc=com",
        "(uid=user0001)",
    ]);
    assert_eq!(r.code, 32, "{r:?}");
    assert!(r.stdout.trim().is_empty(), "{r:?}");
}

fn map(dir: &Path, name: &str, s: &Slapd, lines: &str) -> std::path::PathBuf {
    write_map(
        dir,
        name,
        &format!(
            "server_host = {}\nsearch_base = dc=example,dc=com\nbind = yes\nbind_dn = {}\nbind_pw = {}\nversion = 3\n{lines}",
            s.ldap_url(),
            s.get("SERVICE_DN"),
            s.get("SERVICE_PW")
        ),
    )
}

#[test]
fn postmap_queries_the_fixture() {
    let s = Slapd::shared();
    let t = TempDir::new();
    let m = map(t.path(), "mail.cf", s, "query_filter = (mail=%s)\nresult_attribute = mail\n");
    let meta = std::fs::metadata(&m).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    let r = postmap_query(&m, "user0001@example.com");
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), "user0001@example.com");
    let r = postmap_query(&m, "nobody@example.com");
    assert_eq!(r.code, 1, "{r:?}");

    // multi-valued result
    let m = map(t.path(), "fwd.cf", s, "query_filter = (mailLocalAddress=%s)\nresult_attribute = mailRoutingAddress\n");
    let r = postmap_query(&m, "user0002@example.com");
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), "user0002@forward.example.net,user0002@other.example.net");

    // nested group expansion through member DNs
    let m = map(
        t.path(),
        "groups.cf",
        s,
        "query_filter = (mailLocalAddress=%s)\nresult_attribute = mail\nspecial_result_attribute = member\n",
    );
    let r = postmap_query(&m, "all@example.com");
    r.assert_code(0);
    let mut got: Vec<&str> = r.stdout.trim().split(',').collect();
    got.sort();
    let want: Vec<String> = (1..=6).map(|i| format!("user{i:04}@example.com")).collect();
    assert_eq!(got, want);
}

#[test]
fn sigstop_then_sigcont() {
    let s = Slapd::start_small();
    let url = s.ldap_url();
    let args = ["-LLL", "-x", "-H", &url, "-b", "dc=example,dc=com", "-s", "base", "dn"];
    s.sigstop();
    let mut c = s.tool("ldapsearch");
    c.args(args);
    let r = run_command(&mut c, None, Duration::from_secs(2));
    assert!(r.timed_out, "a stopped slapd must not answer: {r:?}");
    s.sigcont();
    let mut c = s.tool("ldapsearch");
    c.args(args);
    run_command(&mut c, None, Duration::from_secs(10)).assert_code(0);
    // and a stopped server is still stopped cleanly on Drop
    s.sigstop();
}

#[test]
fn kill_and_restart_keep_data_and_ports() {
    let s = Slapd::start_small();
    let (port, pid) = (s.ldap_port, s.pid());
    assert_eq!(s.get("USERS"), "20");
    s.ldapadd(
        "dn: uid=extra,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: extra\ncn: x\nsn: x\nmail: extra@example.com\n",
    );
    let url = s.ldap_url();
    let find = || s.ldapsearch(&["-x", "-H", &url, "-b", "dc=example,dc=com", "(uid=extra)", "mail"]);
    assert!(find().stdout.contains("extra@example.com"));

    s.kill();
    assert!(!s.running());
    let r = find();
    assert_eq!(r.code, 255, "a killed slapd refuses: {r:?}");
    assert!(s.dir.join("data").exists());

    s.restart();
    assert!(s.running());
    assert_eq!(s.ldap_port, port);
    assert_ne!(s.pid(), pid);
    assert!(find().stdout.contains("extra@example.com"));

    // restart of a running (even stopped) server
    s.sigstop();
    s.restart();
    assert!(find().stdout.contains("extra@example.com"));
    s.ldapdelete("uid=extra,ou=people,dc=example,dc=com");
    assert!(!find().stdout.contains("extra@example.com"));

    let dir = s.dir.clone();
    drop(s);
    assert!(!dir.exists());
}

#[test]
fn server_certificate_can_be_swapped() {
    let s = Slapd::start_small();
    let url = s.ldaps_url();
    let args = ["-x", "-H", url.as_str(), "-b", "dc=example,dc=com", "-s", "base", "dn"];
    s.ldapsearch(&args).assert_code(0);
    s.use_server_cert("expired");
    assert_eq!(s.ldapsearch(&args).code, 255);
    s.use_server_cert("other");
    assert_eq!(s.ldapsearch(&args).code, 255);
    s.use_server_cert("server");
    s.ldapsearch(&args).assert_code(0);
    // ACLs at run time: nobody may read anything any more, not even anonymous
    s.set_acls(&["to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * none"]);
    let ldap = s.ldap_url();
    let r = s.ldapsearch(&["-x", "-H", &ldap, "-b", "dc=example,dc=com", "(uid=user0001)"]);
    assert_eq!(r.code, 32, "{r:?}");
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// notAfter (unix seconds) of the certificate the server at 127.0.0.1:PORT presents, by
/// `openssl s_client` (ldaps, or STARTTLS when `starttls`).
fn served_not_after(port: u16, starttls: bool) -> i64 {
    let st = if starttls { "-starttls ldap" } else { "" };
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(format!(
        "openssl s_client -connect 127.0.0.1:{port} {st} </dev/null 2>/dev/null | openssl x509 -noout -enddate"
    ));
    let r = run_command(&mut c, None, Duration::from_secs(20));
    r.assert_code(0);
    let date = r.stdout.trim().strip_prefix("notAfter=").unwrap_or_else(|| panic!("{r:?}")).to_string();
    let mut c = Command::new("date");
    c.args(["-u", "-d", &date, "+%s"]);
    let r = run_command(&mut c, None, Duration::from_secs(5));
    r.assert_code(0);
    r.stdout.trim().parse().unwrap()
}

#[test]
fn certificate_validity_is_chosen() {
    const DAY: i64 = 86400;
    let s = Slapd::start_with(SlapdOptions { users: Some(5), cert_validity: Some("2d".into()), ..Default::default() });
    let na: i64 = s.get("SERVER_NOT_AFTER").parse().unwrap();
    assert!((na - (now_secs() + 2 * DAY)).abs() < 120, "notAfter {na}");
    assert_eq!(served_not_after(s.ldaps_port, false), na);
    assert_eq!(served_not_after(s.ldap_port, true), na);
    let url = s.ldaps_url();
    let args = ["-x", "-H", url.as_str(), "-b", "dc=example,dc=com", "-s", "base", "dn"];
    s.ldapsearch(&args).assert_code(0);

    // another certificate on the running server: 10 days, 36 hours, expired a day ago
    for (validity, secs) in [("10d", 10 * DAY), ("36h", 36 * 3600), ("-1d", -DAY)] {
        let na = s.serve_cert_valid_for(validity) as i64;
        assert!((na - (now_secs() + secs)).abs() < 120, "{validity}: notAfter {na}");
        assert_eq!(served_not_after(s.ldaps_port, false), na, "{validity}");
        assert_eq!(s.ldapsearch(&args).code, if secs > 0 { 0 } else { 255 }, "{validity}");
    }

    // a second server with the first one's CA: the first CA_FILE verifies it
    let t = Slapd::start_with(SlapdOptions {
        users: Some(5),
        cert_validity: Some("90d".into()),
        ca_from: Some(s.dir.clone()),
        ..Default::default()
    });
    let na: i64 = t.get("SERVER_NOT_AFTER").parse().unwrap();
    assert!((na - (now_secs() + 90 * DAY)).abs() < 120, "notAfter {na}");
    let mut c = t.tool("ldapsearch");
    c.env("LDAPTLS_CACERT", s.get("CA_FILE")).args([
        "-x",
        "-LLL",
        "-H",
        &t.ldaps_url(),
        "-b",
        "dc=example,dc=com",
        "-s",
        "base",
        "dn",
    ]);
    run_command(&mut c, None, Duration::from_secs(20)).assert_code(0);
}

/// The contextCSN of the suffix as `who` (bind DN, password) sees it over ldap://.
fn context_csn_as(s: &Slapd, who: (&str, &str)) -> Vec<String> {
    let url = s.ldap_url();
    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        who.0,
        "-w",
        who.1,
        "-b",
        "dc=example,dc=com",
        "-s",
        "base",
        "contextCSN",
    ]);
    r.assert_code(0);
    r.stdout.lines().filter_map(|l| l.strip_prefix("contextCSN: ")).map(str::to_string).collect()
}

/// Seconds since the epoch of a CSN's timestamp (YYYYmmddHHMMSS.uuuuuuZ#...), by date(1).
fn csn_secs(csn: &str) -> i64 {
    let t = &csn[..14];
    let date = format!("{}-{}-{} {}:{}:{} UTC", &t[..4], &t[4..6], &t[6..8], &t[8..10], &t[10..12], &t[12..14]);
    let mut c = Command::new("date");
    c.args(["-u", "-d", &date, "+%s"]);
    let r = run_command(&mut c, None, Duration::from_secs(5));
    r.assert_code(0);
    r.stdout.trim().parse().unwrap()
}

#[test]
fn provider_consumer_context_csn() {
    let p = Slapd::start_with(SlapdOptions {
        users: Some(20),
        syncprov: true,
        csn_age: Some("1h".into()),
        ..Default::default()
    });
    let c = Slapd::start_consumer(&p, SlapdOptions::default());
    assert_eq!(c.get("USERS"), "20");
    let svc = (p.get("SERVICE_DN"), p.get("SERVICE_PW"));
    let csn = p.context_csn();
    assert_eq!(csn.len(), 1, "{csn:?}");
    assert!(csn[0].ends_with("#000000#000#000000"), "{csn:?}");
    assert!((csn_secs(&csn[0]) - (now_secs() - 3600)).abs() < 120, "{csn:?}");
    // the service account reads it on both; the consumer starts in step
    assert_eq!(context_csn_as(&p, svc), csn);
    assert_eq!(context_csn_as(&c, svc), csn);

    // replicating: a write moves both
    p.touch();
    assert!(c.wait_in_sync(&p, Duration::from_secs(10)), "{:?} {:?}", c.context_csn(), p.context_csn());
    let moved = p.context_csn();
    assert!((csn_secs(&moved[0]) - now_secs()).abs() < 60, "{moved:?}");

    // replication stopped: the provider moves ahead, the consumer stays
    c.set_replication(false);
    p.touch();
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(p.context_csn(), moved);
    assert_eq!(c.context_csn(), moved);
    c.set_replication(true);
    assert!(c.wait_in_sync(&p, Duration::from_secs(10)), "{:?} {:?}", c.context_csn(), p.context_csn());

    // stopped again, with the data an hour old: an hour of lag after one write
    let q = Slapd::start_with(SlapdOptions {
        users: Some(20),
        syncprov: true,
        csn_age: Some("1h".into()),
        ..Default::default()
    });
    let d = Slapd::start_consumer(&q, SlapdOptions::default());
    d.set_replication(false);
    q.touch();
    let lag = csn_secs(&q.context_csn()[0]) - csn_secs(&d.context_csn()[0]);
    assert!((lag - 3600).abs() < 120, "lag {lag}");

    // hidden by ACL: the service account gets the entry without contextCSN; cn=admin still sees it
    d.hide_context_csn(true);
    assert!(context_csn_as(&d, svc).is_empty());
    assert_eq!(context_csn_as(&d, (d.get("ADMIN_DN"), d.get("ADMIN_PW"))), d.context_csn());
    d.hide_context_csn(false);
    assert_eq!(context_csn_as(&d, svc), d.context_csn());
}

#[test]
fn context_csn_options() {
    // no option: no contextCSN
    let s = Slapd::start_small();
    assert!(s.context_csn().is_empty());
    // several sids, exactly as given; hidden from the service account at start
    let given = vec![
        "20240101000000.000000Z#000000#001#000000".to_string(),
        "20240102030405.123456Z#000005#002#000000".to_string(),
    ];
    let t = Slapd::start_with(SlapdOptions {
        users: Some(5),
        syncprov: true,
        context_csn: given.clone(),
        hide_context_csn: true,
        ..Default::default()
    });
    assert_eq!(t.context_csn(), given);
    assert_eq!(t.get("CONTEXT_CSN_HIDDEN"), "1");
    assert!(context_csn_as(&t, (t.get("SERVICE_DN"), t.get("SERVICE_PW"))).is_empty());
    // a write adds this server's sid (000) with the time of the write
    t.touch();
    let now = t.context_csn();
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(now.iter().any(|c| c.contains("#000#") && (csn_secs(c) - now_secs()).abs() < 60), "{now:?}");
    // server id 5: its writes carry sid 005
    let u =
        Slapd::start_with(SlapdOptions { users: Some(5), syncprov: true, server_id: Some(5), ..Default::default() });
    u.touch();
    let csn = u.context_csn();
    assert_eq!(csn.len(), 1, "{csn:?}");
    assert!(csn[0].contains("#005#"), "{csn:?}");
    assert_eq!(u.get("SERVER_ID"), "5");
}

/// ldapsearch -z 1 as the service account: (exit code, number of entries).
fn search_z1(s: &Slapd, base: &str, filter: &str) -> (i32, usize) {
    let url = s.ldap_url();
    let r = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        s.get("SERVICE_DN"),
        "-w",
        s.get("SERVICE_PW"),
        "-z",
        "1",
        "-b",
        base,
        filter,
        "1.1",
    ]);
    (r.code, count(&r.stdout, "dn: "))
}

/// What slapd answers to the searches of a presence check (issue 13): a size limit of 1 that is hit gives
/// sizeLimitExceeded (4) WITH the entry; no match gives success (0) and no entry; so do an attribute the
/// identity may not search, hidden entries, a DN-syntax attribute in a substring filter (no substring rule:
/// "undefined") and an unknown attribute; a hidden or missing base gives noSuchObject (32), and so does a
/// subtree search from the root (""); an administrative limit on unindexed searches gives 11.
#[test]
fn presence_search_answers() {
    let s = Slapd::shared();
    let b = "dc=example,dc=com";
    assert_eq!(search_z1(s, b, "(mail=*)"), (4, 1));
    assert_eq!(search_z1(s, b, "(mail=*@*)"), (4, 1));
    assert_eq!(search_z1(s, b, "(mail=*@example.com)"), (4, 1));
    assert_eq!(search_z1(s, b, "(member=*)"), (4, 1));
    assert_eq!(search_z1(s, b, "(mailHost=*)"), (0, 0));
    assert_eq!(search_z1(s, b, "(mail=*@nowhere.example)"), (0, 0));
    assert_eq!(search_z1(s, b, "(member=uid=*,ou=people,dc=example,dc=com)"), (0, 0));
    assert_eq!(search_z1(s, b, "(mailAlias=*)"), (0, 0));
    assert_eq!(search_z1(s, "ou=hidden,dc=example,dc=com", "(mail=*)"), (32, 0));
    assert_eq!(search_z1(s, "", "(mail=*)"), (32, 0));
    // libldap refuses these filters (LDAP_FILTER_ERROR -7: exit 249); so does ldap3's parser
    assert_eq!(search_z1(s, b, "(mail=**)").0, 249);
    assert_eq!(search_z1(s, b, "(mail>=*)").0, 249);
    // the rootDSE names the suffix, for any identity
    let url = s.ldap_url();
    for who in [
        vec![],
        vec!["-D", s.get("SERVICE_DN"), "-w", s.get("SERVICE_PW")],
        vec!["-D", s.get("NOBODY_DN"), "-w", s.get("NOBODY_PW")],
    ] {
        let mut a = vec!["-x", "-H", &url];
        a.extend(who);
        a.extend(["-b", "", "-s", "base", "namingContexts"]);
        let r = s.ldapsearch(&a);
        r.assert_code(0);
        assert!(r.stdout.contains("namingContexts: dc=example,dc=com"), "{r:?}");
    }

    let p = Slapd::start_small();
    let root = "to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break";
    let svc = p.get("SERVICE_DN").to_string();
    // the users hidden from the service account (ou=people itself visible): no entry, success
    // (uid=secret,ou=hidden has a mail too: keep it hidden)
    let hidden = format!("to dn.subtree=\"ou=hidden,{b}\" by * none");
    p.set_acls(&[
        root,
        &hidden,
        &format!("to dn.children=\"ou=people,{b}\" by dn.exact=\"{svc}\" none by * read"),
        "to * by * read",
    ]);
    assert_eq!(search_z1(&p, b, "(mail=*)"), (0, 0));
    assert_eq!(search_z1(&p, &format!("ou=people,{b}"), "(mail=*)"), (0, 0));
    // mail not searchable: no match; searchable but not readable (=s): the entry comes, without mail
    p.set_acls(&[root, &format!("to attrs=mail by dn.exact=\"{svc}\" none by * read"), "to * by * read"]);
    assert_eq!(search_z1(&p, b, "(mail=*)"), (0, 0));
    p.set_acls(&[root, &format!("to attrs=mail by dn.exact=\"{svc}\" search by * read"), "to * by * read"]);
    assert_eq!(search_z1(&p, b, "(mail=*)"), (4, 1));
    let url = p.ldap_url();
    let r = p.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        &svc,
        "-w",
        p.get("SERVICE_PW"),
        "-z",
        "1",
        "-b",
        b,
        "(mail=*)",
        "mail",
    ]);
    assert_eq!((r.code, count(&r.stdout, "dn: "), count(&r.stdout, "mail: ")), (4, 1, 0), "{r:?}");
    // an administrative limit on unindexed candidates: adminLimitExceeded, while an indexed lookup works
    p.set_acls(&[root, "to * by * read"]);
    p.ldapmodify(&format!(
        "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nadd: olcLimits\nolcLimits: dn.exact=\"{svc}\" size.unchecked=5\n-\n"
    ));
    assert_eq!(search_z1(&p, b, "(mail=*)"), (11, 0));
    assert_eq!(search_z1(&p, b, "(mail=user0001@example.com)"), (0, 1));
}

/// Not a test by itself: started by `watchdog_removes_fixture_of_killed_process` in a child
/// process (env FIXTURE_SELFTEST_CHILD=1), where it starts a slapd, says where, and waits to be
/// killed.
#[test]
fn watchdog_child_helper() {
    if std::env::var_os("FIXTURE_SELFTEST_CHILD").is_none() {
        return;
    }
    let s = Slapd::start_small();
    s.sigstop(); // the watchdog must resume it to stop it
    println!("\nFIXTURE_DIR={} PID={}", s.dir.display(), s.pid());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(st) => {
            let state = st.rsplit_once(") ").map(|(_, r)| r.chars().next()).unwrap_or(None);
            !matches!(state, Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

#[test]
fn watchdog_removes_fixture_of_killed_process() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "watchdog_child_helper", "--nocapture", "--test-threads=1"])
        .env("FIXTURE_SELFTEST_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(i) = line.find("FIXTURE_DIR=") {
                let _ = tx.send(line[i..].to_string());
            }
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not start its fixture");
        }
    };
    let mut parts = line.split_whitespace();
    let dir = parts.next().unwrap().trim_start_matches("FIXTURE_DIR=").to_string();
    let pid: i32 = parts.next().unwrap().trim_start_matches("PID=").parse().unwrap();
    assert!(Path::new(&dir).exists() && alive(pid));

    child.kill().unwrap(); // SIGKILL: no Drop, no unwinding
    child.wait().unwrap();
    let t = Instant::now();
    while (Path::new(&dir).exists() || alive(pid)) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "slapd {pid} survived its test process");
    assert!(!Path::new(&dir).exists(), "{dir} survived its test process");
}

#[test]
fn fake_servers() {
    let t = Duration::from_millis(300);

    let f = FakeServer::start(FakeMode::Refuse);
    let e = TcpStream::connect_timeout(&f.addr, Duration::from_secs(2)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);

    let f = FakeServer::start(FakeMode::AcceptThenSilence);
    let mut c = TcpStream::connect_timeout(&f.addr, Duration::from_secs(2)).unwrap();
    c.set_read_timeout(Some(t)).unwrap();
    c.write_all(b"\x30\x05\x02\x01\x01\x42\x00").unwrap(); // an unbind
    assert!(c.read(&mut [0u8; 16]).is_err(), "must stay silent");
    assert_eq!(f.accepted(), 1);

    let f = FakeServer::start(FakeMode::Backlog);
    let s0 = Instant::now();
    let e = TcpStream::connect_timeout(&f.addr, Duration::from_millis(700)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(s0.elapsed() >= Duration::from_millis(650));

    let f = FakeServer::start(FakeMode::CloseImmediately);
    let mut c = TcpStream::connect_timeout(&f.addr, Duration::from_secs(2)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(c.read(&mut [0u8; 16]), Ok(0) | Err(_)));

    // StartTLS answered with exactly what slapd sends, then silence
    let f = FakeServer::start(FakeMode::StartTlsThenSilence);
    let mut c = TcpStream::connect_timeout(&f.addr, Duration::from_secs(2)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = vec![0x30, 0x1d, 0x02, 0x01, 0x07, 0x77, 0x18, 0x80, 0x16];
    req.extend_from_slice(b"1.3.6.1.4.1.1466.20037");
    c.write_all(&req).unwrap();
    let mut resp = [0u8; 14];
    c.read_exact(&mut resp).unwrap();
    assert_eq!(resp, [0x30, 0x0c, 0x02, 0x01, 0x07, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00]);
    c.write_all(b"\x16\x03\x01\x00\x05hello").unwrap();
    c.set_read_timeout(Some(t)).unwrap();
    assert!(c.read(&mut [0u8; 16]).is_err(), "must stay silent after StartTLS");
    assert_eq!(f.starttls_answered(), 1);

    // a real client: ldapsearch -ZZ gets StartTLS success, then hangs in the handshake
    let s = Slapd::shared();
    let url = f.ldap_url();
    let mut c = s.tool("ldapsearch");
    c.args(["-x", "-ZZ", "-H", &url, "-b", "dc=example,dc=com", "-s", "base"]);
    let r = run_command(&mut c, None, Duration::from_secs(2));
    assert!(r.timed_out, "{r:?}");
    assert_eq!(f.starttls_answered(), 2);
    assert!(f.received().windows(2).any(|w| w == [0x16, 0x03]), "a ClientHello must have come");

    // Drop is quick even with a connection that sent nothing
    let f = FakeServer::start(FakeMode::StartTlsThenSilence);
    let _idle = TcpStream::connect_timeout(&f.addr, Duration::from_secs(2)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let s0 = Instant::now();
    drop(f);
    assert!(s0.elapsed() < Duration::from_secs(1), "{:?}", s0.elapsed());

    let f = FakeServer::start(FakeMode::SilentTlsHandshake);
    let url = f.ldaps_url();
    let mut c = s.tool("ldapsearch");
    c.args(["-x", "-H", &url, "-b", "dc=example,dc=com", "-s", "base"]);
    let r = run_command(&mut c, None, Duration::from_secs(2));
    assert!(r.timed_out, "{r:?}");
    assert_eq!(f.accepted(), 1);
    assert_eq!(&f.received()[..2], &[0x16, 0x03], "a ClientHello must have come");
}

#[test]
fn run_command_is_bounded() {
    // a hang (with a grandchild holding the pipes) is killed at the bound, whole process group
    let mut c = Command::new("sh");
    c.args(["-c", "sleep 30 & echo started; sleep 30"]);
    let r = run_command(&mut c, None, Duration::from_millis(500));
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.code, 128 + 9);
    assert_eq!(r.stdout, "started\n");
    assert!(r.elapsed < Duration::from_secs(5), "{r:?}");

    let mut c = Command::new("sh");
    c.args(["-c", "cat; echo err >&2; exit 3"]);
    let r = run_command(&mut c, Some(b"in\n"), Duration::from_secs(10));
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str(), r.timed_out), (3, "in\n", "err\n", false));
}
