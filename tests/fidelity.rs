//! Where the check must agree with Postfix itself (issue 11), with `postmap -q` as the oracle: each operation
//! bounded by the map's `timeout` as Postfix bounds it (a slow directory: tests/common's SlowProxy in front of a
//! real slapd), libldap's failover past a dead address, StartTLS's one alarm, an LDAPv2 bind, `timeout = 0`.
//! For each case, `postmap -q`, `--query` and `--once` are run and compared.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const KEY: &str = "user0002@example.com";

fn map_body(server_host: &str, s: &Slapd, extra: &str) -> String {
    format!(
        "server_host = {server_host}\nsearch_base = ou=people,dc=example,dc=com\nquery_filter = (mail=%s)\n\
         result_attribute = mail\nbind_dn = {}\nbind_pw = {}\n{extra}",
        s.get("SERVICE_DN"),
        s.get("SERVICE_PW")
    )
}

/// What Postfix, `--query` and `--once` say of `map`: found (postmap 0, query 0, check OK/WARNING) or not.
struct Verdicts {
    postmap_found: bool,
    query_found: bool,
    check: Run,
}

fn verdicts(map: &Path, args: &[&str]) -> Verdicts {
    let p = postmap_query(map, KEY);
    let mut q = vec!["--query", KEY, "-f", map.to_str().unwrap()];
    q.extend_from_slice(args);
    let query = run(&q, &[]);
    let mut o = vec!["--once", "-f", map.to_str().unwrap()];
    o.extend_from_slice(args);
    let check = run(&o, &[]);
    eprintln!(
        "fidelity: {}: postmap exit {} in {:?}; --query exit {}; --once exit {}: {}",
        map.file_name().unwrap().to_string_lossy(),
        p.code,
        p.elapsed,
        query.code,
        check.code,
        check.stdout.lines().next().unwrap_or("").split('|').next().unwrap_or("")
    );
    Verdicts { postmap_found: p.code == 0, query_found: query.code == 0, check }
}

#[track_caller]
fn agree(v: &Verdicts, found: bool, check_code: i32, fragment: &str) {
    assert_eq!(v.postmap_found, found, "postmap");
    assert_eq!(v.query_found, found, "--query agrees with postmap");
    v.check.assert_code(check_code);
    assert!(v.check.stdout.contains(fragment), "{fragment:?} not in {}", v.check.stdout);
}

#[test]
fn each_operation_has_the_map_s_timeout() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let upstream: std::net::SocketAddr = s.ldap_url().trim_start_matches("ldap://").parse().unwrap();
    let ms = Duration::from_millis;
    // A 0.8 s bind and a 0.8 s search with timeout = 1: each within its timeout, 1.6 s in all. Postfix finds
    // the key; one deadline of 1 s would have said CRITICAL.
    let slow = SlowProxy::start(upstream, Delays { bind: ms(800), search: ms(800), ..Default::default() });
    let m = d.write("slow-each.cf", &map_body(&slow.ldap_url(), s, "timeout = 1\n"));
    agree(&verdicts(&m, &[]), true, 0, "LDAP OK");
    // A 1.5 s bind with timeout = 1 and a deadline of 5 s: Postfix's bind times out; the check says so.
    let slow_bind = SlowProxy::start(upstream, Delays { bind: ms(1500), ..Default::default() });
    let m = d.write("slow-bind.cf", &map_body(&slow_bind.ldap_url(), s, "timeout = 1\n"));
    agree(&verdicts(&m, &["-t", "5"]), false, 2, "timed out after 1 s in bind (the map's timeout)");
    // A 1.5 s search: the same, in the search.
    let slow_search = SlowProxy::start(upstream, Delays { search: ms(1500), ..Default::default() });
    let m = d.write("slow-search.cf", &map_body(&slow_search.ldap_url(), s, "timeout = 1\n"));
    agree(&verdicts(&m, &["-t", "5"]), false, 2, "(the map's timeout)");
}

#[test]
fn starttls_is_under_one_alarm() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let upstream: std::net::SocketAddr = s.ldap_url().trim_start_matches("ldap://").parse().unwrap();
    let tls = format!("start_tls = yes\ntls_ca_cert_file = {}\ntimeout = 1\n", s.get("CA_FILE"));
    let slow = SlowProxy::start(upstream, Delays { extended: Duration::from_millis(1500), ..Default::default() });
    let m = d.write("slow-starttls.cf", &map_body(&slow.ldap_url(), s, &tls));
    agree(&verdicts(&m, &["-t", "5"]), false, 2, "(the map's timeout)");
}

#[test]
fn a_dead_first_address_is_passed_over_but_not_under_starttls() {
    let s = Slapd::shared();
    let d = TempDir::new();
    // A full accept queue: connects to it hang, as to a blackholed address.
    let dead = FakeServer::start(FakeMode::Backlog);
    let servers = format!("{} {}", dead.ldap_url(), s.ldap_url());
    let m = d.write("dead-first.cf", &map_body(&servers, s, "timeout = 1\n"));
    agree(&verdicts(&m, &["-t", "5"]), true, 1, "(Postfix fails over to");
    // With start_tls, Postfix's alarm covers the connects: it goes off before the second server is tried.
    let tls = format!("start_tls = yes\ntls_ca_cert_file = {}\ntimeout = 1\n", s.get("CA_FILE"));
    let m = d.write("dead-first-starttls.cf", &map_body(&servers, s, &tls));
    agree(&verdicts(&m, &["-t", "5"]), false, 2, "does not move on to the next server");
}

#[test]
fn version_2_and_timeout_0_fail_as_in_postfix() {
    let s = Slapd::shared();
    let d = TempDir::new();
    // slapd 2.5 refuses an LDAPv2 bind by default: every Postfix lookup fails.
    let m = d.write("v2.cf", &map_body(&s.ldap_url(), s, "version = 2\n"));
    agree(&verdicts(&m, &[]), false, 2, "protocol error (2)");
    // Without a bind, v2 works.
    let m = d.write("v2-nobind.cf", &map_body(&s.ldap_url(), s, "version = 2\nbind = no\n"));
    agree(&verdicts(&m, &[]), true, 0, "LDAP OK");
    // timeout = 0: Postfix times out at once.
    let m = d.write("t0.cf", &map_body(&s.ldap_url(), s, "timeout = 0\n"));
    agree(&verdicts(&m, &[]), false, 2, "timed out");
}

/// Debian's master.cf runs smtpd chrooted in queue_directory: a map it opens itself reads its CA file in there.
#[test]
fn a_chrooted_smtpd_needs_the_map_s_files_in_its_chroot() {
    let s = Slapd::shared();
    let conf = TempDir::new();
    let dir = conf.path().display().to_string();
    let spool = conf.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::copy("/usr/share/postfix/master.cf.dist", conf.join("master.cf")).expect("Debian's master.cf");
    let ca = s.get("CA_FILE").to_string();
    let map = format!("tls_ca_cert_file = {ca}\ntls_require_cert = yes\n");
    conf.write("users.cf", &map_body(&s.ldaps_url(), s, &map));
    let main_cf = |maps: &str| {
        format!(
            "compatibility_level = 3.6\nmeta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n\
             queue_directory = {}\nvirtual_mailbox_domains = example.com\nvirtual_mailbox_maps = {maps}\n",
            spool.display()
        )
    };
    age_file(&conf.write("main.cf", &main_cf(&format!("ldap:{dir}/users.cf"))));
    let r = run(&["--once", "-v", "--postfix-config", &dir], &[]);
    r.assert_code(2);
    let first = r.stdout.lines().next().unwrap_or("");
    assert!(
        first.contains("smtpd (smtp/inet), chrooted in")
            && first.contains(&format!("cannot open tls_ca_cert_file {ca} there")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("opened by: smtpd (smtp/inet, directly, chrooted)"), "{}", r.stdout);
    // The CA file copied into the chroot: OK.
    let inside = spool.join(ca.trim_start_matches('/'));
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::copy(&ca, &inside).unwrap();
    run(&["--once", "--postfix-config", &dir], &[]).assert_code(0);
    std::fs::remove_file(&inside).unwrap();
    run(&["--once", "--postfix-config", &dir], &[]).assert_code(2);
    // Read through proxymap, which is not chrooted: OK.
    age_file(&conf.write("main.cf", &main_cf(&format!("proxy:ldap:{dir}/users.cf"))));
    let r = run(&["--once", "-v", "--postfix-config", &dir], &[]);
    r.assert_code(0);
    assert!(r.stdout.contains("through proxymap"), "{}", r.stdout);
}
