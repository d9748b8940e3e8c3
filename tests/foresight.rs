//! The checks that see trouble before it bites (issue 13), against real slapd servers:
//! - the presence check: an emptied directory (or entries hidden by an ACL) is CRITICAL with no canary set;
//! - certificate expiry, for every TLS server of a map, standbys included;
//! - replica freshness: two servers of one map whose contextCSN differ.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const BASE: &str = "ou=people,dc=example,dc=com";

fn map_body(server_host: &str, extra: &str) -> String {
    format!(
        "server_host = {server_host}\nsearch_base = {BASE}\nquery_filter = (mail=%s)\nresult_attribute = mail\n{extra}"
    )
}

fn service_bind(s: &Slapd) -> String {
    format!("bind_dn = {}\nbind_pw = {}\n", s.get("SERVICE_DN"), s.get("SERVICE_PW"))
}

#[track_caller]
fn once(map: &std::path::Path, args: &[&str], code: i32) -> Run {
    let mut a = vec!["--once", "-v", "-f", map.to_str().unwrap()];
    a.extend_from_slice(args);
    let r = run(&a, &[]);
    r.assert_code(code);
    r
}

fn json(map: &std::path::Path, args: &[&str]) -> Value {
    let mut a = vec!["--once", "--format", "json", "-f", map.to_str().unwrap()];
    a.extend_from_slice(args);
    let r = run(&a, &[]);
    serde_json::from_str(r.stdout.lines().next().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn an_emptied_or_hidden_directory_is_critical_without_any_canary() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let map = d.write("users.cf", &map_body(&s.ldap_url(), &service_bind(&s)));
    let off = d.write("off.cf", &map_body(&s.ldap_url(), &format!("{}health_check_presence = no\n", service_bind(&s))));
    let r = once(&map, &[], 0);
    assert!(
        r.stdout.contains("  presence: (mail=*) under ou=people,dc=example,dc=com (subtree), with mail"),
        "{}",
        r.stdout
    );
    // An ACL hides every entry below the base (the base itself stays visible): Postfix answers 550 to all.
    s.set_acls(&[
        "to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break",
        "to attrs=userPassword by self write by anonymous auth by * none",
        "to dn.children=\"ou=people,dc=example,dc=com\" by * none",
        "to * by * read",
    ]);
    let r = once(&map, &[], 2);
    assert!(
        r.stdout.contains(
            "no entry under ou=people,dc=example,dc=com (subtree) matches (mail=*) with a value of mail: Postfix \
             would answer 550 User unknown to every recipient"
        ),
        "{}",
        r.stdout
    );
    once(&off, &[], 0);
    // Entries searchable but their mail not readable: Postfix finds them and gets no value.
    s.set_acls(&[
        "to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break",
        "to attrs=userPassword by self write by anonymous auth by * none",
        "to attrs=mail by * search",
        "to * by * read",
    ]);
    let r = once(&map, &[], 2);
    assert!(r.stdout.contains("but this identity can read none of mail"), "{}", r.stdout);
    // Every user deleted (the base and the service account kept).
    s.set_acls(&[
        "to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break",
        "to attrs=userPassword by self write by anonymous auth by * none",
        "to * by * read",
    ]);
    once(&map, &[], 0);
    for i in 1..=20 {
        let dn = format!("uid=user{i:04},{BASE}");
        s.ldapdelete(&dn);
    }
    let r = once(&map, &[], 2);
    assert!(r.stdout.contains("no entry under ou=people,dc=example,dc=com"), "{}", r.stdout);
    let v = json(&map, &[]);
    assert_eq!(v["maps"][0]["presence"]["query"], "(mail=*)");
    assert_eq!(v["maps"][0]["servers"][0]["found"], "nothing");
    once(&off, &[], 0);
}

#[test]
fn a_healthy_directory_passes_the_presence_check() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let map = d.write("users.cf", &map_body(&s.ldap_url(), &service_bind(s)));
    let v = json(&map, &[]);
    assert_eq!((v["state"].as_str(), v["maps"][0]["servers"][0]["found"].as_str()), (Some("OK"), Some("entry")), "{v}");
}

/// A map whose only server's certificate expires in `validity`, verified or not.
fn cert_map(d: &TempDir, s: &Slapd, name: &str, require: bool) -> std::path::PathBuf {
    let require = if require { "yes" } else { "no" };
    let tls = format!("tls_ca_cert_file = {}\ntls_require_cert = {require}\n", s.get("CA_FILE"));
    d.write(name, &map_body(&s.ldaps_url(), &format!("{tls}{}", service_bind(s))))
}

#[test]
fn certificates_near_their_end() {
    let d = TempDir::new();
    for (validity, require, code, fragment) in [
        ("2d", true, 2, "expires in"),
        ("2d", false, 1, "(Postfix does not verify it)"),
        ("10d", true, 1, "expires in 10 days"),
        ("90d", true, 0, ""),
    ] {
        let s = Slapd::start_with(SlapdOptions {
            users: Some(5),
            cert_validity: Some(validity.into()),
            ..Default::default()
        });
        let map = cert_map(&d, &s, &format!("cert-{validity}-{require}.cf"), require);
        let r = once(&map, &[], code);
        let first = r.stdout.lines().next().unwrap_or("");
        assert!(first.contains(fragment), "{validity}, require {require}: {first}");
        if code == 2 {
            assert!(first.contains("Postfix verifies it (tls_require_cert = yes)"), "{first}");
            // The systemd unit never stops Postfix for a certificate that still works.
            once(&map, &["--cert-crit", "0"], 1);
        }
        let v = json(&map, &[]);
        let not_after = v["maps"][0]["servers"][0]["certificate"]["not_after"].as_i64().unwrap();
        assert_eq!(not_after.to_string(), s.get("SERVER_NOT_AFTER"), "{v}");
        assert!(v["maps"][0]["servers"][0]["certificate"]["subject"].as_str().unwrap().contains("CN="), "{v}");
        eprintln!("foresight: certificate valid for {validity}, tls_require_cert = {require}: exit {code}");
    }
}

#[test]
fn a_standby_s_expiring_certificate_is_reported_too() {
    let d = TempDir::new();
    let first = Slapd::start_with(SlapdOptions { users: Some(5), ..Default::default() });
    let standby = Slapd::start_with(SlapdOptions {
        users: Some(5),
        cert_validity: Some("5d".into()),
        ca_from: Some(first.dir.clone()),
        ..Default::default()
    });
    let tls = format!("tls_ca_cert_file = {}\ntls_require_cert = yes\n", first.get("CA_FILE"));
    let map = d.write(
        "standby.cf",
        &map_body(&format!("{} {}", first.ldaps_url(), standby.ldaps_url()), &format!("{tls}{}", service_bind(&first))),
    );
    let r = once(&map, &[], 1);
    let line = r.stdout.lines().next().unwrap_or("");
    assert!(line.contains(&standby.ldaps_url()) && line.contains("expires in 5 days"), "{}", r.stdout);
    let tf = d.join("metrics.prom");
    run(&["--once", "-f", map.to_str().unwrap(), "--prometheus-textfile", tf.to_str().unwrap()], &[]).assert_code(1);
    let text = std::fs::read_to_string(&tf).unwrap();
    let sample = format!(
        "ldap_health_check_cert_expiry_timestamp_seconds{{map=\"{}\",server=\"{}\"}} {}",
        map.display(),
        standby.ldaps_url(),
        standby.get("SERVER_NOT_AFTER")
    );
    assert!(text.contains(&sample), "{sample}\nnot in\n{text}");
}

#[test]
fn a_stale_replica_is_a_warning_and_an_unreadable_one_is_not_compared() {
    let d = TempDir::new();
    let provider = Slapd::start_with(SlapdOptions {
        users: Some(5),
        syncprov: true,
        csn_age: Some("1h".into()),
        ..Default::default()
    });
    let consumer = Slapd::start_consumer(&provider, SlapdOptions { users: Some(5), ..Default::default() });
    assert!(provider.wait_in_sync(&consumer, Duration::from_secs(20)), "the consumer never caught up");
    let servers = format!("{} {}", provider.ldap_url(), consumer.ldap_url());
    let map = d.write("replicas.cf", &map_body(&servers, &service_bind(&provider)));
    let v = json(&map, &[]);
    assert_eq!(v["state"], "OK", "{v}");
    assert_eq!(v["maps"][0]["servers"][1]["replica_lag_seconds"].as_f64(), Some(0.0), "{v}");
    // Replication stops; a write on the provider: the consumer is an hour behind.
    consumer.set_replication(false);
    provider.touch();
    let r = once(&map, &[], 1);
    let first = r.stdout.lines().next().unwrap_or("");
    assert!(
        first.contains(&format!("{}: its data lags the freshest server of the map by 1 h", consumer.ldap_url())),
        "{first}"
    );
    let tf = d.join("metrics.prom");
    run(&["--once", "-f", map.to_str().unwrap(), "--prometheus-textfile", tf.to_str().unwrap()], &[]).assert_code(1);
    let text = std::fs::read_to_string(&tf).unwrap();
    assert!(text.contains("ldap_health_check_replica_lag_seconds{"), "{text}");
    // A larger limit: OK.
    once(&map, &["--replica-lag", "2h"], 0);
    // contextCSN hidden by an ACL on the consumer: OK, "not compared".
    consumer.hide_context_csn(true);
    let r = once(&map, &[], 0);
    assert!(r.stdout.contains("replica not compared"), "{}", r.stdout);
}
