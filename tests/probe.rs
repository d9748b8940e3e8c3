//! The one-shot probe against a real slapd: what each map and each failure gives, as Postfix would
//! experience it, and the deadline that holds whatever the server does.

mod common;

use std::time::Duration;

use common::*;

/// A map body for `server_host` with the usual query settings and `extra` lines appended.
fn map_body(server_host: &str, extra: &str) -> String {
    format!(
        "server_host = {server_host}\nsearch_base = ou=people,dc=example,dc=com\n\
         query_filter = (mail=%s)\nresult_attribute = mail\n{extra}"
    )
}

fn service_bind(s: &Slapd) -> String {
    format!("bind = yes\nbind_dn = {}\nbind_pw = {}\n", s.get("SERVICE_DN"), s.get("SERVICE_PW"))
}

/// Every output of the run, checked for the passwords that the test maps hold.
#[track_caller]
fn assert_no_secret(r: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(!r.stdout.contains(s) && !r.stderr.contains(s), "secret {s:?} leaked:\n{}{}", r.stdout, r.stderr);
    }
}

/// Run `--once` on one map; check the exit code, the absence of secrets, and one first line.
#[track_caller]
fn once(map: &std::path::Path, extra_args: &[&str], code: i32, secrets: &[&str]) -> Run {
    let p = map.to_str().unwrap();
    let mut args = vec!["--once", "-v", "-f", p];
    args.extend_from_slice(extra_args);
    let r = run(&args, &[]);
    r.assert_code(code);
    assert_no_secret(&r, secrets);
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("RUST_BACKTRACE"), "{}", r.stderr);
    r
}

fn first_line(r: &Run) -> &str {
    r.stdout.lines().next().unwrap_or("")
}

const WRONG_PW: &str = "Wr0ng-Pa55word-xyzzy";

#[test]
fn simple_bind_is_ok() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let m = d.write("ldap-users.cf", &map_body(&s.ldap_url(), &service_bind(s)));
    let r = once(&m, &[], 0, &[s.get("SERVICE_PW")]);
    assert!(first_line(&r).starts_with("LDAP OK - 1 map, 1 server in "), "{}", r.stdout);
    assert!(first_line(&r).contains("|time="), "{}", r.stdout);
    assert!(first_line(&r).contains(" ldap-users.cf="), "{}", r.stdout);
    // -v: one line per map and per server with each stage's timing
    assert!(r.stdout.contains("ldap-users.cf: OK"), "{}", r.stdout);
    assert!(
        r.stdout.contains("connect ") && r.stdout.contains("bind ") && r.stdout.contains("search "),
        "{}",
        r.stdout
    );
}

#[test]
fn anonymous_bind_is_ok() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let m = d.write("anon.cf", &map_body(&s.ldap_url(), ""));
    let r = once(&m, &[], 0, &[]);
    assert!(first_line(&r).starts_with("LDAP OK"), "{}", r.stdout);
    let m = d.write("nobind.cf", &map_body(&s.ldap_url(), "bind = no\n"));
    let r = once(&m, &[], 0, &[]);
    assert!(!r.stdout.contains("bind "), "bind = no must not bind:\n{}", r.stdout);
}

#[test]
fn starttls_with_ca_is_ok() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let extra = format!(
        "start_tls = yes\ntls_ca_cert_file = {}\ntls_require_cert = yes\n{}",
        s.get("CA_FILE"),
        service_bind(s)
    );
    let m = d.write("starttls.cf", &map_body(&s.ldap_url(), &extra));
    let r = once(&m, &[], 0, &[s.get("SERVICE_PW")]);
    assert!(r.stdout.contains("STARTTLS ") && r.stdout.contains("TLS "), "{}", r.stdout);
    assert!(r.stdout.contains("certificate verified"), "{}", r.stdout);
}

#[test]
fn ldaps_with_ca_is_ok() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let extra = format!("tls_ca_cert_file = {}\ntls_require_cert = yes\n{}", s.get("CA_FILE"), service_bind(s));
    let m = d.write("ldaps.cf", &map_body(&s.ldaps_url(), &extra));
    let r = once(&m, &[], 0, &[s.get("SERVICE_PW")]);
    assert!(r.stdout.contains("certificate verified"), "{}", r.stdout);
}

#[test]
fn unverified_certificate_passes_by_default_and_says_so() {
    // Postfix's default tls_require_cert = no: a certificate from an unknown CA is accepted.
    let s = Slapd::shared();
    let d = TempDir::new();
    let extra = format!("tls_ca_cert_file = {}\n", s.get("WRONG_CA_FILE"));
    let m = d.write("ldaps-lenient.cf", &map_body(&s.ldaps_url(), &extra));
    let r = once(&m, &[], 0, &[]);
    assert!(r.stdout.contains("accepted unverified"), "{}", r.stdout);
    let m = d.write("ldaps-noca.cf", &map_body(&s.ldaps_url(), ""));
    let r = once(&m, &[], 0, &[]);
    assert!(r.stdout.contains("not verified"), "{}", r.stdout);
}

#[test]
fn ldapi_with_sasl_external_is_ok() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let m = d.write("ldapi.cf", &map_body(&s.ldapi_url(), "bind = sasl\nsasl_mechs = EXTERNAL\n"));
    let r = once(&m, &[], 0, &[]);
    assert!(first_line(&r).starts_with("LDAP OK"), "{}", r.stdout);
}

#[test]
fn other_sasl_mechanisms_are_a_warning_not_checked() {
    // Not UNKNOWN: that would stop Postfix (fail closed) with a healthy directory, for a limit of this tool.
    let s = Slapd::shared();
    let d = TempDir::new();
    let m = d.write("plain.cf", &map_body(&s.ldap_url(), "bind = sasl\nsasl_mechs = PLAIN\nbind_pw = sasl-secret-1\n"));
    let r = once(&m, &[], 1, &["sasl-secret-1"]);
    let expected =
        "LDAP WARNING - plain.cf: not checked: bind = sasl with sasl_mechs = PLAIN: only EXTERNAL is supported|";
    assert!(first_line(&r).starts_with(expected), "{}", r.stdout);
}

#[test]
fn refused_first_server_is_warning() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let dead = FakeServer::start(FakeMode::Refuse);
    let hosts = format!("ldap://{}, {}", dead.addr, s.ldap_url());
    let m = d.write("failover.cf", &map_body(&hosts, &service_bind(s)));
    let r = once(&m, &[], 1, &[s.get("SERVICE_PW")]);
    let line = first_line(&r);
    assert!(line.starts_with("LDAP WARNING - failover.cf: "), "{line}");
    assert!(line.contains(&format!("ldap://{}", dead.addr)) && line.contains("connection refused"), "{line}");
}

#[test]
fn wrong_password_is_critical_naming_map_server_and_stage() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let extra = format!("bind_dn = {}\nbind_pw = {WRONG_PW}\n", s.get("SERVICE_DN"));
    let m = d.write("badpw.cf", &map_body(&s.ldap_url(), &extra));
    let r = once(&m, &[], 2, &[WRONG_PW]);
    let line = first_line(&r);
    assert!(
        line.starts_with(&format!("LDAP CRITICAL - badpw.cf: {}: bind as {}", s.ldap_url(), s.get("SERVICE_DN"))),
        "{line}"
    );
    assert!(line.contains("invalid credentials (49)"), "{line}");
}

#[test]
fn no_failover_when_the_first_server_rejects_the_bind() {
    // Postfix does not move on after a bind error: the good second server does not help.
    let s = Slapd::shared();
    let d = TempDir::new();
    let extra = format!("bind_dn = {}\nbind_pw = {WRONG_PW}\n", s.get("SERVICE_DN"));
    let m = d.write("badpw2.cf", &map_body(&format!("{} {}", s.ldap_url(), s.ldaps_url()), &extra));
    once(&m, &[], 2, &[WRONG_PW]);
}

#[test]
fn base_hidden_by_acl_is_critical() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let body = map_body(&s.ldap_url(), &service_bind(s)).replace("ou=people,", "ou=hidden,");
    let m = d.write("hidden.cf", &body);
    let r = once(&m, &[], 2, &[s.get("SERVICE_PW")]);
    let line = first_line(&r);
    assert!(line.contains("hidden.cf: ") && line.contains("search base ou=hidden,dc=example,dc=com"), "{line}");
}

#[test]
fn identity_that_reads_nothing_is_critical() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let extra = format!("bind_dn = {}\nbind_pw = {}\n", s.get("NOBODY_DN"), s.get("NOBODY_PW"));
    let m = d.write("nobody.cf", &map_body(&s.ldap_url(), &extra));
    let r = once(&m, &[], 2, &[s.get("NOBODY_PW")]);
    assert!(first_line(&r).contains("search base ou=people,dc=example,dc=com"), "{}", r.stdout);
}

#[test]
fn wrong_ca_with_require_cert_is_critical_in_tls() {
    let s = Slapd::shared();
    let d = TempDir::new();
    for (name, host, starttls) in
        [("wrongca-ldaps.cf", s.ldaps_url(), ""), ("wrongca-starttls.cf", s.ldap_url(), "start_tls = yes\n")]
    {
        let extra = format!(
            "{starttls}tls_ca_cert_file = {}\ntls_require_cert = yes\n{}",
            s.get("WRONG_CA_FILE"),
            service_bind(s)
        );
        let m = d.write(name, &map_body(&host, &extra));
        let r = once(&m, &[], 2, &[s.get("SERVICE_PW")]);
        let line = first_line(&r);
        assert!(line.contains(&format!("{name}: {host}: TLS handshake failed")), "{line}");
        assert!(line.contains("unknown certificate authority"), "{line}");
    }
}

#[test]
fn ldaps_certificate_rejected_fails_over_to_the_next_server() {
    // libldap gives up an ldaps:// URL whose TLS handshake fails and tries the next one (as for a refused
    // connect): WARNING, not CRITICAL.
    let s = Slapd::shared();
    let d = TempDir::new();
    let extra = format!("tls_ca_cert_file = {}\ntls_require_cert = yes\n{}", s.get("WRONG_CA_FILE"), service_bind(s));
    let hosts = format!("{} {}", s.ldaps_url(), s.ldap_url());
    let m =
        d.write("ldaps-failover.cf", &map_body(&hosts, &format!("{extra}health_check_key = user0001@example.com\n")));
    let r = once(&m, &[], 1, &[s.get("SERVICE_PW")]);
    let line = first_line(&r);
    assert!(
        line.starts_with(&format!("LDAP WARNING - ldaps-failover.cf: {}: TLS handshake failed", s.ldaps_url())),
        "{line}"
    );
    assert!(line.contains(&format!("(Postfix fails over to {})", s.ldap_url())), "{line}");
    assert!(r.stdout.contains("[unreachable]") && r.stdout.contains("canary user0001@example.com: found"));
    // Postfix agrees: the key is found through the second server.
    let p = postmap_query(&m, "user0001@example.com");
    assert_eq!((p.code, p.stdout.trim()), (0, "user0001@example.com"), "{}", p.stderr);

    // With nothing to fail over to: CRITICAL.
    let m = d.write("ldaps-alone.cf", &map_body(&s.ldaps_url(), &extra));
    let r = once(&m, &[], 2, &[s.get("SERVICE_PW")]);
    assert!(first_line(&r).contains("ldaps-alone.cf: ") && first_line(&r).contains("TLS handshake failed"));

    // A handshake that hangs is no failover (libldap blocks in it): CRITICAL at the deadline.
    let hung = FakeServer::start(FakeMode::SilentTlsHandshake);
    let m = d.write("ldaps-hung.cf", &map_body(&format!("ldaps://{} {}", hung.addr, s.ldap_url()), ""));
    let r = once(&m, &["-t", "0.5"], 2, &[]);
    assert!(first_line(&r).contains("timed out after 0.5 s in TLS handshake"), "{}", r.stdout);
}

#[test]
fn start_tls_on_ldaps_or_ldapi_is_critical_in_starttls() {
    // Postfix sends StartTLS whatever the scheme, and every lookup fails there.
    let s = Slapd::shared();
    let d = TempDir::new();
    let ca = s.get("CA_FILE");
    let ldaps = map_body(
        &format!("{} {}", s.ldaps_url(), s.ldap_url()),
        &format!("start_tls = yes\ntls_ca_cert_file = {ca}\n{}", service_bind(s)),
    );
    let m = d.write("starttls-ldaps.cf", &ldaps);
    let r = once(&m, &["--format", "json"], 2, &[s.get("SERVICE_PW")]);
    assert!(r.stdout.contains("\"stage\":\"starttls\""), "{}", r.stdout);
    let r = once(&m, &[], 2, &[s.get("SERVICE_PW")]);
    assert!(
        first_line(&r).contains(&format!(
            "starttls-ldaps.cf: {}: start_tls = yes on an ldaps:// server: Postfix's STARTTLS fails there \
             (Operations error); use ldap:// with start_tls, or ldaps:// without",
            s.ldaps_url()
        )),
        "{}",
        r.stdout
    );
    // Postfix agrees: a lookup error, although the key exists (and the second server would work).
    let p = postmap_query(&m, "user0001@example.com");
    assert_ne!(p.code, 0, "{}{}", p.stdout, p.stderr);

    let m = d
        .write("starttls-ldapi.cf", &map_body(&s.ldapi_url(), "start_tls = yes\nbind = sasl\nsasl_mechs = EXTERNAL\n"));
    let r = once(&m, &[], 2, &[]);
    assert!(first_line(&r).contains("start_tls = yes on an ldapi:// server"), "{}", r.stdout);
}

#[test]
fn hung_standby_server_is_not_waited_for() {
    // Postfix never gets to the second server while the first works: the check does not wait for it, so
    // neither the verdict nor a -c threshold depends on it.
    let s = Slapd::shared();
    let d = TempDir::new();
    let hung = FakeServer::start(FakeMode::AcceptThenSilence);
    let extra = format!("{}health_check_key = user0001@example.com\n", service_bind(s));
    let m = d.write("standby.cf", &map_body(&format!("{} ldap://{}", s.ldap_url(), hung.addr), &extra));
    let r = once(&m, &["-t", "3"], 0, &[s.get("SERVICE_PW")]);
    assert!(r.elapsed < Duration::from_secs(2), "verdict after {:?}:\n{}", r.elapsed, r.stdout);
    assert!(first_line(&r).starts_with("LDAP OK - 1 map, 2 servers in "), "{}", r.stdout);
    assert!(r.stdout.contains("canary user0001@example.com: found"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("ldap://{} [standby]: not needed: Postfix uses an earlier server", hung.addr)),
        "{}",
        r.stdout
    );
    let r = once(&m, &["-t", "3", "-c", "1"], 0, &[s.get("SERVICE_PW")]);
    assert!(r.elapsed < Duration::from_secs(2), "verdict after {:?}", r.elapsed);
    let r = once(&m, &["-t", "3", "--format", "json"], 0, &[s.get("SERVICE_PW")]);
    assert!(r.stdout.contains("\"abandoned\":true"), "{}", r.stdout);
    // The hung server first still decides, at the deadline.
    let m = d.write("hung-first.cf", &map_body(&format!("ldap://{} {}", hung.addr, s.ldap_url()), &extra));
    let r = once(&m, &["-t", "1"], 2, &[s.get("SERVICE_PW")]);
    assert!(first_line(&r).contains("timed out after 1 s"), "{}", r.stdout);
}

#[test]
fn bind_dn_running_into_an_indented_bind_pw_line_is_not_echoed() {
    // As for Postfix, an indented line continues the one before: bind_dn swallows the password.
    let s = Slapd::shared();
    let d = TempDir::new();
    let body = map_body(&s.ldap_url(), &format!("bind_dn = {}\n  bind_pw = {WRONG_PW}\n", s.get("SERVICE_DN")));
    let body = format!("{body}bind_pw = other-Wr0ng-pw\n");
    let m = d.write("cont.cf", &body);
    let r = once(&m, &[], 2, &[WRONG_PW]);
    assert!(
        first_line(&r).starts_with(&format!(
            "LDAP CRITICAL - cont.cf: {}: bind as the bind_dn of this map (it runs into an indented bind_pw line) \
             failed: ",
            s.ldap_url()
        )),
        "{}",
        r.stdout
    );
    let r = once(&m, &["--format", "json"], 2, &[WRONG_PW]);
    assert!(r.stdout.contains("runs into an indented bind_pw line"), "{}", r.stdout);
}

#[test]
fn base_searchable_but_not_readable_is_ok() {
    // An ACL grants search but not read on the base entry: its base search answers rc 0 without the entry,
    // yet Postfix's subtree lookups below it work.
    let s = Slapd::start_small();
    let d = TempDir::new();
    s.set_acls(&[
        "to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break",
        "to attrs=userPassword by self write by anonymous auth by * none",
        "to dn.base=\"ou=people,dc=example,dc=com\" by * search",
        "to * by * read",
    ]);
    let extra = format!("{}health_check_key = user0001@example.com\n", service_bind(&s));
    let m = d.write("searchonly.cf", &map_body(&s.ldap_url(), &extra));
    let p = postmap_query(&m, "user0001@example.com");
    assert_eq!((p.code, p.stdout.trim()), (0, "user0001@example.com"), "{}", p.stderr);
    // The presence check searches below the base: it finds the entries as Postfix does.
    let r = once(&m, &[], 0, &[s.get("SERVICE_PW")]);
    assert!(r.stdout.contains("OK in") && r.stdout.contains("entries found under ou=people"), "{}", r.stdout);
    // Without it, the base search says what it sees.
    let m =
        d.write("searchonly-nopresence.cf", &map_body(&s.ldap_url(), &format!("{extra}health_check_presence = no\n")));
    let r = once(&m, &[], 0, &[s.get("SERVICE_PW")]);
    assert!(
        r.stdout.contains("base ou=people,dc=example,dc=com answered with no entry: readable? canaries tell"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("canary user0001@example.com: found"), "{}", r.stdout);
}

#[test]
fn only_dead_hosts_is_critical() {
    let d = TempDir::new();
    let a = FakeServer::start(FakeMode::Refuse);
    let b = FakeServer::start(FakeMode::Refuse);
    let m = d.write("dead.cf", &map_body(&format!("ldap://{} ldap://{}", a.addr, b.addr), ""));
    let r = once(&m, &[], 2, &[]);
    let line = first_line(&r);
    assert!(line.starts_with("LDAP CRITICAL - dead.cf: no server reachable: "), "{line}");
}

#[test]
fn two_maps_on_one_server_share_the_connection() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let a = d.write("a.cf", &map_body(&s.ldap_url(), &service_bind(s)));
    // (ou=groups holds no mail entry: its presence check is turned off, this test is about the connection.)
    let b = d.write(
        "b.cf",
        &map_body(&s.ldap_url(), &format!("{}health_check_presence = no\n", service_bind(s)))
            .replace("ou=people,", "ou=groups,"),
    );
    let r = run(&["--once", "-f", a.to_str().unwrap(), "-f", b.to_str().unwrap()], &[]);
    r.assert_code(0);
    assert!(first_line(&r).starts_with("LDAP OK - 2 maps, 1 server in"), "{}", r.stdout);
}

#[test]
fn conffile_from_the_environment() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let a = d.write("a.cf", &map_body(&s.ldap_url(), ""));
    let b = d.write("b.cf", &map_body(&s.ldaps_url(), ""));
    let list = format!("{} {}", a.display(), b.display());
    let r = run(&["--once"], &[("LDAP_HEALTH_CHECK_CONFFILE", &list)]);
    r.assert_code(0);
    assert!(first_line(&r).starts_with("LDAP OK - 2 maps, 2 servers"), "{}", r.stdout);
}

#[test]
fn thresholds_apply_on_top() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let m = d.write("t.cf", &map_body(&s.ldap_url(), ""));
    // Any response time is outside @0:1000 -> inside, i.e. alerts; ~:1000 never alerts.
    let r = once(&m, &["-w", "@0:1000", "-c", "~:1000"], 1, &[]);
    assert!(first_line(&r).contains("warning range @0:1000"), "{}", r.stdout);
    assert!(first_line(&r).contains("time=") && first_line(&r).contains(";@0:1000;~:1000;0"), "{}", r.stdout);
    once(&m, &["-c", "@0:1000"], 2, &[]);
}

#[test]
fn missing_unreadable_and_malformed_maps_are_unknown() {
    let d = TempDir::new();
    let missing = d.join("nope.cf");
    let r = run(&["--once", "-f", missing.to_str().unwrap()], &[]);
    r.assert_code(3);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(first_line(&r).starts_with(&format!("LDAP UNKNOWN - {}: ", missing.display())), "{}", r.stdout);
    assert!(first_line(&r).contains("no such file"), "{}", r.stdout);

    let bad = d
        .write("bad.cf", "server_host = ldap://127.0.0.1\nbind_pw = s3cret-in-bad-map\nthis line has no equals sign\n");
    let r = once(&bad, &[], 3, &["s3cret-in-bad-map"]);
    assert!(first_line(&r).starts_with(&format!("LDAP UNKNOWN - {}:3: ", bad.display())), "{}", r.stdout);

    let badbool = d.write("badbool.cf", "start_tls = true\n");
    let r = once(&badbool, &[], 3, &[]);
    assert!(first_line(&r).contains("badbool.cf:1: "), "{}", r.stdout);

    // A good map next to a bad one is still checked; the bad one makes the run UNKNOWN.
    let s = Slapd::shared();
    let good = d.write("good.cf", &map_body(&s.ldap_url(), ""));
    let r = run(&["--once", "-f", good.to_str().unwrap(), "-f", bad.to_str().unwrap()], &[]);
    r.assert_code(3);
    assert!(first_line(&r).contains("2 maps") || first_line(&r).contains("bad.cf:3"), "{}", r.stdout);
}

#[test]
fn bad_options_are_unknown_with_one_line() {
    for args in [
        &["--once", "--bogus"][..],
        &["--once", "-f", "/x.cf", "-t", "soon"][..],
        &["--once", "-f", "/x.cf", "-w", "abc"][..],
        &["--once"][..],
    ] {
        let r = run(args, &[]);
        r.assert_code(3);
        assert_eq!(r.stdout.lines().count(), 1, "{args:?}: {}", r.stdout);
        assert!(r.stdout.starts_with("LDAP UNKNOWN - "), "{args:?}: {}", r.stdout);
    }
    let r = run(&["--help"], &[]);
    assert!(r.stdout.contains("--conffile") && r.stdout.contains("--once"), "{}", r.stdout);
    let r = run(&["--version"], &[]);
    assert!(r.stdout.starts_with("ldap-health-check "), "{}", r.stdout);
}

// ---------------------------------------------------------------------------------------------
// A server that hangs: the verdict comes within the deadline whatever the transport.

/// Generous bound over the deadline for a loaded CI machine; the measured figures are in the
/// benchmarks, not here.
const SLACK: Duration = Duration::from_millis(1500);

#[test]
fn hung_server_is_critical_within_the_deadline_in_every_transport() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let ca = s.get("CA_FILE").to_string();
    let cases = [
        ("plain.cf", map_body(&s.ldap_url(), &service_bind(&s)), "in bind"),
        ("plain-nobind.cf", map_body(&s.ldap_url(), "bind = no\n"), "in search"),
        ("starttls.cf", map_body(&s.ldap_url(), &format!("start_tls = yes\ntls_ca_cert_file = {ca}\n")), "in STARTTLS"),
        ("ldaps.cf", map_body(&s.ldaps_url(), &format!("tls_ca_cert_file = {ca}\n")), "in TLS handshake"),
        ("ldapi.cf", map_body(&s.ldapi_url(), "bind = sasl\nsasl_mechs = EXTERNAL\n"), "in bind"),
    ];
    let maps: Vec<_> = cases.iter().map(|(n, b, _)| d.write(n, b)).collect();
    // Healthy first, so the stall is the only difference.
    for m in &maps {
        once(m, &[], 0, &[s.get("SERVICE_PW")]);
    }
    s.sigstop();
    for (m, (name, _, stage)) in maps.iter().zip(&cases) {
        let r = once(m, &["-t", "1"], 2, &[s.get("SERVICE_PW")]);
        let line = first_line(&r);
        assert!(
            line.contains(&format!("{name}: ")) && line.contains(&format!("timed out after 1 s {stage}")),
            "{line}"
        );
        assert!(r.elapsed < Duration::from_secs(1) + SLACK, "{name}: verdict after {:?}", r.elapsed);
        eprintln!("measured: {name} hung -> verdict after {:?}", r.elapsed);
    }
    // The deadline is one for the whole check, however many hung servers.
    let all: Vec<&str> = maps.iter().map(|m| m.to_str().unwrap()).collect();
    let mut args = vec!["--once", "-t", "1"];
    for m in &all {
        args.extend(["-f", m]);
    }
    let r = run(&args, &[]);
    r.assert_code(2);
    assert!(r.elapsed < Duration::from_secs(1) + SLACK, "all maps: verdict after {:?}", r.elapsed);
    eprintln!("measured: 5 hung maps at once -> verdict after {:?}", r.elapsed);
    s.sigcont();
    // The default deadline is the largest map timeout.
    let m = d.write("t2.cf", &(map_body(&s.ldap_url(), "timeout = 1\n")));
    s.sigstop();
    let r = once(&m, &[], 2, &[]);
    assert!(first_line(&r).contains("timed out after 1 s"), "{}", r.stdout);
    s.sigcont();
}

#[test]
fn fake_servers_that_stall_each_stage() {
    let d = TempDir::new();
    for (mode, extra, stage) in [
        (FakeMode::AcceptThenSilence, "", "in bind"),
        (FakeMode::StartTlsThenSilence, "start_tls = yes\n", "in TLS handshake"),
        (FakeMode::SilentTlsHandshake, "", "in TLS handshake"),
    ] {
        let f = FakeServer::start(mode);
        let scheme = if mode == FakeMode::SilentTlsHandshake { "ldaps" } else { "ldap" };
        let m = d.write("fake.cf", &map_body(&format!("{scheme}://{}", f.addr), extra));
        let r = once(&m, &["-t", "0.5"], 2, &[]);
        assert!(first_line(&r).contains(&format!("timed out after 0.5 s {stage}")), "{mode:?}: {}", r.stdout);
        assert!(r.elapsed < Duration::from_millis(500) + SLACK, "{mode:?}: {:?}", r.elapsed);
    }
    // A blackholed first server (accept queue full): Postfix waits for the connect timeout, then
    // moves on; we report the degradation within the deadline.
    let s = Slapd::shared();
    let hole = FakeServer::start(FakeMode::Backlog);
    let m = d.write("hole.cf", &map_body(&format!("ldap://{} {}", hole.addr, s.ldap_url()), ""));
    let r = once(&m, &["-t", "1"], 1, &[]);
    assert!(first_line(&r).contains("timed out"), "{}", r.stdout);
    assert!(r.elapsed < Duration::from_secs(1) + SLACK, "{:?}", r.elapsed);
}

#[test]
fn stopped_server_is_critical_at_once() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let m = d.write("down.cf", &map_body(&s.ldap_url(), ""));
    once(&m, &[], 0, &[]);
    s.kill();
    let r = once(&m, &[], 2, &[]);
    let line = first_line(&r);
    assert!(line.contains(&format!("down.cf: {}: connect failed: connection refused", s.ldap_url())), "{line}");
    assert!(r.elapsed < SLACK, "{:?}", r.elapsed);
}

#[test]
fn loop_mode_prints_the_old_debug_line_and_exits_2_on_failure() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let m = d.write("loop.cf", &map_body(&s.ldap_url(), &service_bind(&s)));
    let mut cmd = bin_command(&["--conffile", m.to_str().unwrap(), "--debug", "--interval", "200ms", "-t", "1"], &[]);
    let killer = {
        let dir = s.dir.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            let _ = std::process::Command::new(fixture_script()).arg("kill").arg(dir).status();
        })
    };
    let r = run_command(&mut cmd, None, Duration::from_secs(20));
    killer.join().unwrap();
    r.assert_code(2);
    assert_no_secret(&r, &[s.get("SERVICE_PW")]);
    let successes =
        r.stdout.lines().filter(|l| *l == "DEBUG: LDAP search success: dn=ou=people,dc=example,dc=com").count();
    assert!(successes >= 2, "expected several successful checks before the failure:\n{}", r.stdout);
    assert!(r.stdout.lines().any(|l| l.starts_with("LDAP CRITICAL - loop.cf: ")), "{}", r.stdout);
}

#[test]
fn a_connection_lost_in_one_maps_search_is_named_for_the_next_map() {
    // Two maps on one server share one connection; slapd drops it on a 1 MB search base (the first map's),
    // so the second map's base is never searched: its reason says so, not "deadline".
    let s = Slapd::shared();
    let d = TempDir::new();
    let huge = format!("ou={},dc=example,dc=com", "x".repeat(1 << 20));
    let a = d.write("a-huge.cf", &map_body(&s.ldap_url(), "").replace("ou=people,dc=example,dc=com", &huge));
    let b = d.write("b.cf", &map_body(&s.ldap_url(), ""));
    let r = run(&["--once", "-f", a.to_str().unwrap(), "-f", b.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert!(
        first_line(&r).contains("b.cf: ")
            && first_line(&r).contains("not made: the connection was lost during an earlier search"),
        "{}",
        first_line(&r).chars().take(400).collect::<String>()
    );
}
