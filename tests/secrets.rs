//! The bind password never leaves the map file: every scenario of the suite (successes, each kind of failure,
//! a broken map, canaries, `--query`), at every verbosity (none, -v, -vv, --debug) and in every output format
//! (nagios, json), with `--syslog` and `--prometheus-textfile`: stdout, stderr, the syslog messages and the
//! textfile are searched for the passwords.
//!
//! Syslog: the binary runs in a private mount namespace (`unshare -m`) where /dev is a small tmpfs whose
//! `log` is a bind mount of a datagram socket this test listens on, so the messages are caught without
//! touching the machine's /dev/log. Without root (no namespace) the syslog part is skipped with a note.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A distinctive wrong password (never sent successfully).
const WRONG_PW: &str = "Wr0ng-S3cret-Pa55-q7";

/// A password on an indented `bind_pw` line (Postfix folds it into the parameter above). No dots: in a DNS
/// query it would appear as it is.
const FOLD_PW: &str = "FoldedPw4812q";

/// Maps whose `bind_pw` line is indented under each parameter that matters: the password becomes part of
/// the server list, the base, the bind DN, the filter.
fn folded_maps(s: &Slapd, d: &TempDir) -> Vec<(&'static str, PathBuf)> {
    let (url, dn) = (s.ldap_url(), s.get("SERVICE_DN"));
    let base = "ou=people,dc=example,dc=com";
    let pw = format!("  bind_pw = {FOLD_PW}\n");
    let rest = "query_filter = (mail=%s)\nresult_attribute = mail\nhealth_check_key = user0001@example.com\n";
    [
        ("server_host", format!("server_host = {url}\n{pw}search_base = {base}\nbind_dn = {dn}\n{rest}")),
        ("search_base", format!("server_host = {url}\nsearch_base = {base}\n{pw}bind_dn = {dn}\n{rest}")),
        ("bind_dn", format!("server_host = {url}\nsearch_base = {base}\nbind_dn = {dn}\n{pw}{rest}")),
        ("query_filter", format!("server_host = {url}\nsearch_base = {base}\nbind_dn = {dn}\nquery_filter = (mail=%s)\n{pw}result_attribute = mail\n")),
    ]
    .into_iter()
    .map(|(param, text)| (param, d.write(&format!("folded-{param}.cf"), &text)))
    .collect()
}

fn map_body(server_host: &str, extra: &str) -> String {
    format!(
        "server_host = {server_host}\nsearch_base = ou=people,dc=example,dc=com\n\
         query_filter = (mail=%s)\nresult_attribute = mail\n{extra}"
    )
}

fn bind_as(dn: &str, pw: &str) -> String {
    format!("bind = yes\nbind_dn = {dn}\nbind_pw = {pw}\n")
}

/// One scenario: a map (or none: its path is given as is) and extra options.
struct Scenario {
    name: &'static str,
    map: PathBuf,
    args: Vec<&'static str>,
    /// `--query KEY` instead of `--once` (query mode has no --format).
    query: Option<&'static str>,
}

fn scenario(name: &'static str, map: PathBuf, args: &[&'static str]) -> Scenario {
    Scenario { name, map, args: args.to_vec(), query: None }
}

/// Every verbosity and format, for one scenario; returns how many runs were made.
fn run_all(sc: &Scenario, syslog: Option<&FakeSyslog>, dir: &Path, secrets: &[&str]) -> usize {
    let textfile = dir.join("metrics.prom");
    let verbosities: [&[&str]; 4] = [&[], &["-v"], &["-vv"], &["--debug"]];
    let formats: &[&str] = if sc.query.is_some() { &["nagios"] } else { &["nagios", "json"] };
    let mut runs = 0;
    for verbosity in verbosities {
        for format in formats {
            let _ = fs::remove_file(&textfile);
            let mut args: Vec<String> = vec!["--syslog".into(), "-f".into(), sc.map.to_str().unwrap().into()];
            match sc.query {
                Some(key) => args.extend(["--query".into(), key.into()]),
                None => args.extend([
                    "--once".into(),
                    "--format".into(),
                    format.to_string(),
                    "--prometheus-textfile".into(),
                    textfile.to_str().unwrap().into(),
                ]),
            }
            args.extend(verbosity.iter().map(|s| s.to_string()));
            args.extend(sc.args.iter().map(|s| s.to_string()));
            let mut cmd = match syslog {
                Some(s) => s.wrap(&bin(), &args),
                None => Command::new(bin()),
            };
            if syslog.is_none() {
                cmd.args(&args);
            }
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("LDAP_HEALTH_CHECK_") {
                    cmd.env_remove(&k);
                }
            }
            let r = run_command(&mut cmd, None, RUN_TIMEOUT);
            let what = format!("{} {}", sc.name, args.join(" "));
            assert!(!r.timed_out, "{what}: still running after {RUN_TIMEOUT:?}");
            assert!(r.code <= 3 && !r.stderr.contains("panicked"), "{what}: exit {}\n{}{}", r.code, r.stdout, r.stderr);
            let logged = syslog.map(FakeSyslog::drain).unwrap_or_default();
            // --query behaves like `postmap -q`: it prints the value and logs nothing.
            if let Some(s) = syslog.filter(|_| sc.query.is_none()) {
                assert!(!logged.is_empty(), "{what}: nothing reached syslog ({}): {}", s.path.display(), r.stderr);
                assert!(!r.stderr.contains("no local syslog socket"), "{what}: {}", r.stderr);
            }
            let metrics = fs::read_to_string(&textfile).unwrap_or_default();
            for secret in secrets {
                for (place, text) in [
                    ("stdout", &r.stdout),
                    ("stderr", &r.stderr),
                    ("syslog", &logged.join("\n")),
                    ("textfile", &metrics),
                ] {
                    assert!(!text.contains(secret), "{what}: the password {secret:?} is in {place}:\n{text}");
                }
            }
            runs += 1;
        }
    }
    runs
}

#[test]
fn no_output_shows_a_bind_password() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let syslog = FakeSyslog::start(d.path());
    if syslog.is_none() {
        eprintln!("secrets: no private mount namespace (needs root and unshare): syslog not checked");
    }
    let (service_dn, service_pw) = (s.get("SERVICE_DN"), s.get("SERVICE_PW"));
    let (nobody_dn, nobody_pw) = (s.get("NOBODY_DN"), s.get("NOBODY_PW"));
    let secrets = [service_pw, WRONG_PW, nobody_pw, FOLD_PW];
    let service = bind_as(service_dn, service_pw);
    let wrong = bind_as(service_dn, WRONG_PW);
    let ca = s.get("CA_FILE");
    let refused = FakeServer::start(FakeMode::Refuse);
    let silent = FakeServer::start(FakeMode::AcceptThenSilence);
    let tls_silent = FakeServer::start(FakeMode::SilentTlsHandshake);

    let scenarios = [
        scenario("simple bind", d.write("ok.cf", &map_body(&s.ldap_url(), &service)), &[]),
        scenario("wrong password", d.write("badpw.cf", &map_body(&s.ldap_url(), &wrong)), &[]),
        scenario(
            "STARTTLS",
            d.write(
                "starttls.cf",
                &map_body(
                    &s.ldap_url(),
                    &format!("start_tls = yes\ntls_ca_cert_file = {ca}\ntls_require_cert = yes\n{service}"),
                ),
            ),
            &[],
        ),
        scenario(
            "ldaps",
            d.write("ldaps.cf", &map_body(&s.ldaps_url(), &format!("tls_ca_cert_file = {ca}\n{wrong}"))),
            &[],
        ),
        scenario(
            "unknown CA",
            d.write(
                "wrongca.cf",
                &map_body(
                    &s.ldaps_url(),
                    &format!("tls_ca_cert_file = {}\ntls_require_cert = yes\n{service}", s.get("WRONG_CA_FILE")),
                ),
            ),
            &[],
        ),
        scenario(
            "fail-over from a refused server",
            d.write("failover.cf", &map_body(&format!("{} {}", refused.ldap_url(), s.ldap_url()), &service)),
            &[],
        ),
        scenario("hung in bind", d.write("hung.cf", &map_body(&silent.ldap_url(), &wrong)), &["-t", "0.3"]),
        scenario("hung in TLS", d.write("hungtls.cf", &map_body(&tls_silent.ldaps_url(), &wrong)), &["-t", "0.3"]),
        scenario(
            "missing base",
            d.write("nobase.cf", &map_body(&s.ldap_url(), &service).replace("ou=people,", "ou=missing,")),
            &[],
        ),
        scenario(
            "identity that reads nothing",
            d.write("nobody.cf", &map_body(&s.ldap_url(), &bind_as(nobody_dn, nobody_pw))),
            &[],
        ),
        scenario(
            "canaries",
            d.write("canary.cf", &map_body(&s.ldap_url(), &service)),
            &["--canary", "user0001@example.com", "--canary", "nobody-here@example.com"],
        ),
        scenario(
            "map Postfix refuses",
            d.write("bad.cf", &format!("{}this line has no equals sign\n", map_body(&s.ldap_url(), &wrong))),
            &[],
        ),
        scenario(
            "password on a line of its own",
            d.write("stray.cf", &format!("{}{WRONG_PW}\n", map_body(&s.ldap_url(), &service))),
            &[],
        ),
        scenario(
            "password defined twice",
            d.write("twice.cf", &format!("{}bind_pw = {WRONG_PW}\n", map_body(&s.ldap_url(), &service))),
            &[],
        ),
        scenario(
            "unsupported SASL mechanism",
            d.write(
                "sasl.cf",
                &map_body(&s.ldap_url(), &format!("bind = sasl\nsasl_mechs = PLAIN\nbind_pw = {WRONG_PW}\n")),
            ),
            &[],
        ),
        Scenario { query: Some("user0001@example.com"), ..scenario("--query", d.join("ok.cf"), &[]) },
        Scenario {
            query: Some("user0001@example.com"),
            ..scenario("--query, wrong password", d.join("badpw.cf"), &[])
        },
    ];
    let folded = folded_maps(s, &d);
    let folded: Vec<Scenario> = folded.iter().map(|(_, map)| scenario("indented bind_pw", map.clone(), &[])).collect();
    let mut runs = 0;
    for sc in scenarios.iter().chain(&folded) {
        runs += run_all(sc, syslog.as_ref(), d.path(), &secrets);
    }
    // Loop mode (the old daemon's shape), ending at its first failing check.
    let looping = scenario("loop mode", d.join("badpw.cf"), &["--interval", "100ms"]);
    let mut args = vec!["--syslog", "--debug", "-vv", "-f", looping.map.to_str().unwrap()];
    args.extend(&looping.args);
    let r = run(&args, &[]);
    r.assert_code(2);
    for secret in secrets {
        assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "loop mode shows {secret:?}");
    }
    eprintln!(
        "secrets: {runs} runs of {} scenarios, syslog {}checked",
        scenarios.len() + folded.len(),
        if syslog.is_some() { "" } else { "NOT " }
    );
    assert!(runs >= 100, "{runs}");
    std::thread::sleep(Duration::from_millis(1)); // keep the FakeServers alive to here
    drop((refused, silent, tls_silent));
}

/// An indented `bind_pw` line: the check says where and what Postfix makes of it (the map is at least
/// WARNING; with the password gone, the service account's bind fails: CRITICAL), and the password reaches no
/// name lookup and no other server: strace sees every socket call with its bytes, and the only sends that
/// hold it go to the LDAP server itself (Postfix sends it there too, as part of the DN or filter it folds it
/// into).
#[test]
fn an_indented_bind_pw_is_reported_and_never_resolved() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let strace = Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success());
    for (param, map) in folded_maps(s, &d) {
        let r = run(&["--once", "-f", map.to_str().unwrap()], &[]);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(!all.contains(FOLD_PW), "{param}: the password leaked: {all}");
        assert!(
            all.contains(&format!("the bind_pw line is indented: Postfix reads it as part of {param}")),
            "{param}: {all}"
        );
        assert!(r.code == 1 || r.code == 2, "{param}: {all}");
        if !strace {
            eprintln!("secrets: strace is not installed: the name lookups were not watched");
            continue;
        }
        let log = d.join(format!("strace-{param}.txt"));
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-s", "4096", "-e", "trace=network", "-o"]).arg(&log).arg(bin());
        cmd.args(["--once", "-f", map.to_str().unwrap()]);
        let t = run_command(&mut cmd, None, RUN_TIMEOUT);
        assert!(t.code == 1 || t.code == 2, "{param} under strace: {t:?}");
        let calls = fs::read_to_string(&log).unwrap();
        let ldap_port = format!("htons({})", s.ldap_url().rsplit(':').next().unwrap());
        // (Folded into query_filter, the filter is no LDAP filter: the check knows without asking the server.)
        if param != "query_filter" {
            assert!(calls.contains(&ldap_port), "{param}: strace saw no connection to the server:\n{calls}");
        }
        // (pid, fd) -> the port it is connected to.
        let mut peers = std::collections::HashMap::new();
        for line in calls.lines() {
            let mut words = line.split_whitespace();
            let pid = words.next().unwrap_or("");
            let call = words.next().unwrap_or("");
            let fd = call.split_once('(').map(|(_, rest)| rest.split(',').next().unwrap_or("")).unwrap_or("");
            if call.starts_with("connect(") {
                let port = line.split("htons(").nth(1).and_then(|r| r.split(')').next()).unwrap_or("unix");
                assert_ne!(port, "53", "{param}: a name lookup went out:\n{calls}");
                peers.insert((pid.to_string(), fd.to_string()), port.to_string());
            }
            if line.contains(FOLD_PW) {
                assert!(!line.contains("htons(53)"), "{param}: the password went to a name server:\n{line}");
                let port = peers.get(&(pid.to_string(), fd.to_string()));
                assert_eq!(
                    port.map(|p| format!("htons({p})")),
                    Some(ldap_port.clone()),
                    "{param}: the password went out, not to the LDAP server:\n{line}"
                );
            }
        }
    }
}
