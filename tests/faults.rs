//! The fault matrix: every way a directory (or a map file) can fail that this tool must tell apart, each with
//! the state it gives (exit code), a fragment of its message and the stage it names.
//!
//! Each fault runs the real binary twice: `--once -v` (the Nagios line must start with `LDAP STATE - ` and hold
//! the fragment) and `--once --format json` (same exit code and state; the failing server's `error.stage` is
//! the stage named). Faults that slapd cannot produce on cue come from the small fake servers of
//! tests/common; a blackholed address also from a network namespace when one can be made (root, veth).
//! Time bounds are generous (deadline + 1.5 s): the measured times are in docs/benchmarks.md (`make bench`).
//! Many of these faults are also tested, from other angles, in tests/probe.rs; this is the one list of all.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ldap_health_check::map::ldap_url::percent_encode_path;
use serde_json::Value;

/// Over the deadline, for a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);
/// Postfix's default `timeout`, the deadline when no -t is given.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

const BASE: &str = "ou=people,dc=example,dc=com";

fn map_body(server_host: &str, extra: &str) -> String {
    format!(
        "server_host = {server_host}\nsearch_base = {BASE}\nquery_filter = (mail=%s)\nresult_attribute = mail\n{extra}"
    )
}

fn service_bind(s: &Slapd) -> String {
    format!("bind = yes\nbind_dn = {}\nbind_pw = {}\n", s.get("SERVICE_DN"), s.get("SERVICE_PW"))
}

/// One fault and what it must give.
struct Fault {
    name: &'static str,
    map: PathBuf,
    /// Extra options (`-t 0.5`, `--canary KEY`).
    args: Vec<String>,
    code: i32,
    /// Must appear in the first line of the Nagios output (and in the JSON `summary`).
    fragment: String,
    /// The `error.stage` of the failing server in the JSON output; `None` when no server fails (the map
    /// itself, a canary lookup, or nothing at all): the fragment then names the stage.
    stage: Option<&'static str>,
    /// Must appear somewhere in the -v output (stdout or stderr).
    detail: Option<String>,
    /// Passwords that must not appear in any output.
    secrets: Vec<String>,
}

impl Fault {
    fn new(
        name: &'static str,
        map: PathBuf,
        code: i32,
        fragment: impl Into<String>,
        stage: Option<&'static str>,
    ) -> Self {
        Fault { name, map, args: Vec::new(), code, fragment: fragment.into(), stage, detail: None, secrets: Vec::new() }
    }
    fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }
    fn detail(mut self, text: impl Into<String>) -> Self {
        self.detail = Some(text.into());
        self
    }
    fn secret(mut self, pw: &str) -> Self {
        self.secrets.push(pw.to_string());
        self
    }
    fn deadline(&self) -> Duration {
        match self.args.iter().position(|a| a == "-t") {
            Some(i) => Duration::from_secs_f64(self.args[i + 1].parse().unwrap()),
            None => DEFAULT_DEADLINE,
        }
    }
}

fn label(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "WARNING",
        2 => "CRITICAL",
        _ => "UNKNOWN",
    }
}

/// The command for one run of a fault, through `wrap` (e.g. `setpriv ...`, `ip netns exec NS`) if given.
fn command(bin: &Path, wrap: &[&str], args: &[String]) -> Command {
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LDAP_HEALTH_CHECK_") {
            cmd.env_remove(&k);
        }
    }
    cmd
}

/// At most 2,000 characters of `s`, for assertion messages (a map may hold a 1 MB line).
fn clip(s: &str) -> String {
    match s.char_indices().nth(2000) {
        Some((i, _)) => format!("{}... ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

/// Run `fault` in both output formats and check everything it must give; returns the Nagios run.
#[track_caller]
fn check(fault: &Fault) -> Run {
    check_with(fault, &bin(), &[])
}

#[track_caller]
fn check_with(fault: &Fault, bin: &Path, wrap: &[&str]) -> Run {
    let name = fault.name;
    let map = fault.map.to_str().unwrap().to_string();
    let bound = fault.deadline() + SLACK;

    let mut args: Vec<String> = vec!["--once".into(), "-v".into(), "-f".into(), map.clone()];
    args.extend(fault.args.iter().cloned());
    let r = run_command(&mut command(bin, wrap, &args), None, RUN_TIMEOUT);
    let all = format!("{}{}", r.stdout, r.stderr);
    let first = r.stdout.lines().next().unwrap_or("");
    let (all_c, first_c) = (clip(&all), clip(first));
    assert!(
        r.code == fault.code && !r.timed_out,
        "{name}: exit {} (timed out: {}), expected {}\n{all_c}",
        r.code,
        r.timed_out,
        fault.code
    );
    assert!(first.starts_with(&format!("LDAP {} - ", label(fault.code))), "{name}: {first_c}");
    assert!(first.contains(&fault.fragment), "{name}: {:?} not in the first line:\n{first_c}", fault.fragment);
    if let Some(detail) = &fault.detail {
        assert!(all.contains(detail.as_str()), "{name}: {detail:?} not in the -v output:\n{all_c}");
    }
    assert!(r.elapsed < bound, "{name}: verdict after {:?} (deadline {:?})", r.elapsed, fault.deadline());
    assert!(!all.contains("panicked") && !all.contains("RUST_BACKTRACE"), "{name}: {all_c}");
    for s in &fault.secrets {
        assert!(!all.contains(s.as_str()), "{name}: the password {s:?} leaked:\n{all_c}");
    }

    let mut args: Vec<String> = vec!["--once".into(), "--format".into(), "json".into(), "-f".into(), map];
    args.extend(fault.args.iter().cloned());
    let j = run_command(&mut command(bin, wrap, &args), None, RUN_TIMEOUT);
    assert_eq!(j.code, fault.code, "{name} (json): {}{}", clip(&j.stdout), clip(&j.stderr));
    let line = j.stdout.lines().next().unwrap_or("");
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", clip(line)));
    assert_eq!(v["state"], label(fault.code), "{name}: {}", clip(line));
    assert!(v["summary"].as_str().unwrap_or("").contains(&fault.fragment), "{name}: {}", clip(line));
    let failed: Vec<&str> = v["maps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["servers"].as_array().into_iter().flatten())
        .filter_map(|s| s["error"]["stage"].as_str())
        .collect();
    match fault.stage {
        Some(stage) => assert!(failed.contains(&stage), "{name}: no server failed in stage {stage}: {}", clip(line)),
        None => assert!(failed.is_empty(), "{name}: unexpected server errors {failed:?}: {}", clip(line)),
    }
    eprintln!(
        "fault matrix: {name:<44} {:<8} stage {:<9} {:>6.0} ms  {}",
        label(fault.code),
        fault.stage.unwrap_or("-"),
        r.elapsed.as_secs_f64() * 1000.0,
        clip(first.split('|').next().unwrap_or(""))
    );
    r
}

// ---------------------------------------------------------------------------------------------
// The network: nothing listens, nothing answers, something answers wrongly.

#[test]
fn network_faults() {
    let d = TempDir::new();
    let refused = FakeServer::start(FakeMode::Refuse);
    let backlog = FakeServer::start(FakeMode::Backlog);
    let silent = FakeServer::start(FakeMode::AcceptThenSilence);
    let starttls = FakeServer::start(FakeMode::StartTlsThenSilence);
    let tls = FakeServer::start(FakeMode::SilentTlsHandshake);
    let closing = FakeServer::start(FakeMode::CloseImmediately);
    let t = ["-t", "0.5"];
    let socket = d.join("no-such-dir/ldapi");
    let ldapi = format!("ldapi://{}", percent_encode_path(socket.to_str().unwrap()));

    let faults = [
        Fault::new(
            "connection refused",
            d.write("refused.cf", &map_body(&refused.ldap_url(), "")),
            2,
            format!("{}: connect failed: connection refused", refused.ldap_url()),
            Some("connect"),
        ),
        Fault::new(
            "blackholed address (accept queue full)",
            d.write("backlog.cf", &map_body(&backlog.ldap_url(), "")),
            2,
            "timed out",
            Some("connect"),
        )
        .args(&t),
        Fault::new(
            "accept, then silence (bind)",
            d.write("silent-bind.cf", &map_body(&silent.ldap_url(), "bind_dn = cn=x\nbind_pw = Fault-Pw-1\n")),
            2,
            "timed out after 0.5 s in bind",
            Some("bind"),
        )
        .args(&t)
        .secret("Fault-Pw-1"),
        Fault::new(
            "accept, then silence (no bind: search)",
            d.write("silent-search.cf", &map_body(&silent.ldap_url(), "bind = no\n")),
            2,
            "timed out after 0.5 s in search",
            Some("search"),
        )
        .args(&t),
        Fault::new(
            "silence after STARTTLS is accepted",
            d.write("starttls-silent.cf", &map_body(&starttls.ldap_url(), "start_tls = yes\n")),
            2,
            "timed out after 0.5 s in TLS handshake",
            Some("tls"),
        )
        .args(&t),
        Fault::new(
            "STARTTLS never answered",
            d.write("starttls-unanswered.cf", &map_body(&silent.ldap_url(), "start_tls = yes\n")),
            2,
            "timed out after 0.5 s in STARTTLS",
            Some("starttls"),
        )
        .args(&t),
        Fault::new(
            "silence mid TLS handshake (ldaps)",
            d.write("tls-silent.cf", &map_body(&tls.ldaps_url(), "")),
            2,
            "timed out after 0.5 s in TLS handshake",
            Some("tls"),
        )
        .args(&t),
        Fault::new(
            "accept, then close at once",
            d.write("closing.cf", &map_body(&closing.ldap_url(), "bind = no\n")),
            2,
            "the server closed the connection",
            Some("search"),
        ),
        Fault::new(
            "host name that does not resolve",
            d.write("unresolvable.cf", &map_body("ldap://no-such-host.invalid", "")),
            2,
            "ldap://no-such-host.invalid:389: ",
            Some("resolve"),
        )
        .args(&["-t", "3"])
        .detail("no-such-host.invalid"),
        Fault::new(
            "missing ldapi socket",
            d.write("ldapi.cf", &map_body(&ldapi, "bind = sasl\nsasl_mechs = EXTERNAL\n")),
            2,
            "connect failed: no such socket",
            Some("connect"),
        ),
    ];
    for f in &faults {
        check(f);
    }
    // The fake servers were really reached (and answered StartTLS) in the cases above.
    assert!(silent.accepted() > 0 && starttls.starttls_answered() > 0 && tls.accepted() > 0);
}

/// A blackholed address for real: in a network namespace of our own, 10.200.0.2 is reached through a veth
/// pair with a static neighbour entry and nobody owns it, so every SYN is dropped. Skipped (with a note)
/// when no namespace can be made (not root, no veth).
#[test]
fn blackholed_address_in_a_network_namespace() {
    let Some(ns) = Netns::create() else {
        eprintln!("fault matrix: network namespace unavailable (needs root, ip, veth): skipped");
        return;
    };
    let d = TempDir::new();
    let f = Fault::new(
        "blackholed address (network namespace)",
        // The map's `timeout` (libldap's network timeout, 1 s) bounds the connect, well before the deadline.
        d.write("blackhole.cf", &map_body(&format!("ldap://{}", Netns::BLACKHOLE), "timeout = 1\n")),
        2,
        format!("ldap://{}:389: connect to {}:389 timed out after 1 s", Netns::BLACKHOLE, Netns::BLACKHOLE),
        Some("connect"),
    )
    .args(&["-t", "3"]);
    check_with(&f, &bin(), &["ip", "netns", "exec", &ns.name]);
}

/// A network namespace with one blackholed address; deleted on Drop.
struct Netns {
    name: String,
}

impl Netns {
    const BLACKHOLE: &'static str = "10.200.0.2";

    fn create() -> Option<Netns> {
        let ns = Netns { name: format!("lhc-faults-{}", std::process::id()) };
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["netns", "add", &ns.name]) {
            return None;
        }
        let n = ns.name.as_str();
        let ok = ip(&["-n", n, "link", "set", "lo", "up"])
            && ip(&["-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
            && ip(&["-n", n, "addr", "add", "10.200.0.1/24", "dev", "v0"])
            && ip(&["-n", n, "link", "set", "v0", "up"])
            && ip(&["-n", n, "link", "set", "v1", "up"])
            && ip(&[
                "-n",
                n,
                "neigh",
                "add",
                Self::BLACKHOLE,
                "lladdr",
                "02:00:00:00:00:02",
                "dev",
                "v0",
                "nud",
                "permanent",
            ]);
        ok.then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}

// ---------------------------------------------------------------------------------------------
// The directory answers, but not as Postfix needs.

#[test]
fn directory_faults() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let pw = s.get("SERVICE_PW");
    let wrong_pw = "Wr0ng-Fault-Pw-77";
    let wrong_ca = format!("tls_ca_cert_file = {}\ntls_require_cert = yes\n", s.get("WRONG_CA_FILE"));
    let huge_base = format!("ou={},{BASE}", "x".repeat(1 << 20));
    let faults = [
        Fault::new(
            "invalid credentials",
            d.write(
                "badpw.cf",
                &map_body(&s.ldap_url(), &format!("bind_dn = {}\nbind_pw = {wrong_pw}\n", s.get("SERVICE_DN"))),
            ),
            2,
            format!("bind as {} failed: invalid credentials (49)", s.get("SERVICE_DN")),
            Some("bind"),
        )
        .secret(wrong_pw),
        Fault::new(
            "search base missing",
            d.write("nobase.cf", &map_body(&s.ldap_url(), &service_bind(s)).replace("ou=people,", "ou=missing,")),
            2,
            "search base ou=missing,dc=example,dc=com not found: no such object (32)",
            Some("search"),
        )
        .secret(pw),
        Fault::new(
            "search base hidden by an ACL",
            d.write("hidden.cf", &map_body(&s.ldap_url(), &service_bind(s)).replace("ou=people,", "ou=hidden,")),
            2,
            "search base ou=hidden,dc=example,dc=com not found",
            Some("search"),
        )
        .secret(pw),
        Fault::new(
            "unknown CA, tls_require_cert = yes (ldaps)",
            d.write("wrongca-ldaps.cf", &map_body(&s.ldaps_url(), &wrong_ca)),
            2,
            "TLS handshake failed: server certificate rejected: unknown certificate authority",
            Some("tls"),
        ),
        Fault::new(
            "unknown CA, tls_require_cert = yes (STARTTLS)",
            d.write("wrongca-starttls.cf", &map_body(&s.ldap_url(), &format!("start_tls = yes\n{wrong_ca}"))),
            2,
            "TLS handshake failed: server certificate rejected: unknown certificate authority",
            Some("tls"),
        ),
        Fault::new(
            "a 1 MB search base (slapd drops the request)",
            d.write(
                "hugebase.cf",
                &map_body(&s.ldap_url(), "bind = no\n").replace(&format!("= {BASE}"), &format!("= {huge_base}")),
            ),
            2,
            "the server closed the connection",
            Some("search"),
        ),
        // The canary lookup matches every user; size_limit = 1: Postfix would answer 451.
        Fault::new(
            "size limit exceeded (canary lookup)",
            d.write(
                "sizelimit.cf",
                &map_body(&s.ldap_url(), &format!("size_limit = 1\n{}", service_bind(s)))
                    .replace("(mail=%s)", "(mail=*@%d)"),
            ),
            2,
            "canary user0001@example.com lookup failed: search error: size limit exceeded (4)",
            None,
        )
        .args(&["--canary", "user0001@example.com"])
        .detail("451")
        .secret(pw),
    ];
    for f in &faults {
        check(f);
    }
}

/// Certificates that do not fit: a private slapd, since switching its certificate changes cn=config.
#[test]
fn certificate_faults() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let strict = format!("tls_ca_cert_file = {}\ntls_require_cert = yes\n", s.get("CA_FILE"));
    let lenient = format!("tls_ca_cert_file = {}\n", s.get("CA_FILE"));
    let ldaps = |name: &str, extra: &str| d.write(name, &map_body(&s.ldaps_url(), extra));
    let starttls =
        |name: &str, extra: &str| d.write(name, &map_body(&s.ldap_url(), &format!("start_tls = yes\n{extra}")));

    s.use_server_cert("other");
    for f in [
        Fault::new(
            "certificate for another name, tls_require_cert = yes",
            ldaps("other-strict.cf", &strict),
            2,
            "TLS handshake failed: server certificate rejected: certificate not valid for name \"127.0.0.1\"",
            Some("tls"),
        ),
        Fault::new(
            "certificate for another name, STARTTLS, tls_require_cert = yes",
            starttls("other-strict-starttls.cf", &strict),
            2,
            "certificate not valid for name \"127.0.0.1\"",
            Some("tls"),
        ),
        Fault::new(
            "certificate for another name, tls_require_cert = no",
            ldaps("other-lenient.cf", &lenient),
            0,
            "1 map, 1 server in",
            None,
        )
        .detail("certificate accepted unverified (tls_require_cert = no)"),
    ] {
        check(&f);
    }

    s.use_server_cert("expired");
    for f in [
        Fault::new(
            "expired certificate, tls_require_cert = yes",
            ldaps("expired-strict.cf", &strict),
            2,
            "TLS handshake failed: server certificate rejected: certificate expired",
            Some("tls"),
        ),
        // Postfix works (it does not verify), but the certificate has expired: WARNING (issue 13).
        Fault::new(
            "expired certificate, tls_require_cert = no",
            ldaps("expired-lenient.cf", &lenient),
            1,
            "(Postfix does not verify it)",
            None,
        )
        .detail("certificate accepted unverified"),
    ] {
        check(&f);
    }
}

// ---------------------------------------------------------------------------------------------
// The map file itself.

#[test]
fn map_file_faults() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        fs::write(&p, bytes).unwrap();
        p
    };
    let good = map_body(&s.ldap_url(), "bind = no\n");

    // A NUL byte ends its line, as in Postfix (C strings): the rest is ignored, with Postfix's warning.
    let nul = good.replace(&format!("search_base = {BASE}\n"), &format!("search_base = {BASE}\0, junk\n"));
    // Bytes that are not UTF-8 in a value Postfix passes on as they are.
    let mut latin1 = good.clone().into_bytes();
    latin1.extend_from_slice(b"# caf\xe9 au lait\nresult_attribute = m\xe9il\n");
    // 1 MB on one line, in a parameter Postfix does not know.
    let long_line = format!("{good}x_note = {}\n", "y".repeat(1 << 20));
    // 10,000 lines: comments, unknown parameters, and a wrong base that a later line overrides.
    let mut many = map_body(&s.ldap_url(), "bind = no\n").replace(BASE, "ou=missing,dc=example,dc=com");
    for i in 0..4999 {
        many.push_str(&format!("# line {i}\nx_param_{i} = {i}\n"));
    }
    many.push_str(&format!("search_base = {BASE}\n"));
    assert!(many.lines().count() >= 10_000);

    for f in [
        Fault::new("map with a NUL byte", write("nul.cf", nul.as_bytes()), 0, "1 map, 1 server", None)
            .detail("text after null byte may be ignored"),
        Fault::new("map with invalid UTF-8", write("latin1.cf", &latin1), 0, "1 map, 1 server", None)
            .detail("value of result_attribute is not valid UTF-8"),
        Fault::new("map with a 1 MB line", write("long.cf", long_line.as_bytes()), 0, "1 map, 1 server", None),
        Fault::new("map with 10,000 lines", write("many.cf", many.as_bytes()), 0, "1 map, 1 server", None)
            .detail("overriding earlier entry: search_base=ou=missing,dc=example,dc=com"),
        Fault::new("map that does not exist", d.join("absent.cf"), 3, "cannot open map: no such file", None),
    ] {
        check(&f);
    }
}

/// A map the user cannot read: as root, run the binary as nobody (setpriv); as anyone else, a mode 000 file.
#[test]
fn unreadable_map_file_as_a_non_root_user() {
    let d = TempDir::new();
    let s = Slapd::shared();
    let map = d.write("secret.cf", &map_body(&s.ldap_url(), &service_bind(s))); // 0600, ours
    let f = Fault::new("unreadable map file", map.clone(), 3, "cannot open map: permission denied", None)
        .secret(s.get("SERVICE_PW"));
    if !is_root() {
        fs::set_permissions(&map, fs::Permissions::from_mode(0o000)).unwrap();
        check(&f);
        return;
    }
    let wrap = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    let reachable = |p: &Path| {
        Command::new(wrap[0]).args(&wrap[1..]).arg("test").arg("-x").arg(p).status().is_ok_and(|s| s.success())
    };
    let mut program = bin();
    let mut f = f;
    // The checkout may sit where nobody cannot enter (a clone under /root): then the binary and the map go
    // to a directory of ours under the system temporary directory, open to nobody; the map (0600 root) is not.
    let open_dir = OpenDir::new();
    if !reachable(&program) {
        let target = open_dir.0.join("ldap-health-check");
        fs::copy(&program, &target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        program = target;
        assert!(reachable(&program), "nobody cannot run {} either", program.display());
        let moved = open_dir.0.join("secret.cf");
        fs::copy(&map, &moved).unwrap();
        fs::set_permissions(&moved, fs::Permissions::from_mode(0o600)).unwrap();
        f.map = moved;
    } else {
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    check_with(&f, &program, &wrap);
}

/// A directory under the system temporary directory that everyone may enter, removed on Drop.
struct OpenDir(PathBuf);

impl OpenDir {
    fn new() -> OpenDir {
        let dir = std::env::temp_dir().join(format!("lhc-faults-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        OpenDir(dir)
    }
}

impl Drop for OpenDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

// ---------------------------------------------------------------------------------------------
// Loop mode across a server restart.

/// The loop process, killed if the test fails half-way.
struct Looping(Child);

impl Drop for Looping {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn successes(out: &Path) -> usize {
    let mut text = String::new();
    let _ = fs::File::open(out).and_then(|mut f| f.read_to_string(&mut text));
    text.lines().filter(|l| l.starts_with("DEBUG: LDAP search success: ")).count()
}

#[track_caller]
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

/// slapd restarted between two checks: loop mode keeps going (each check connects afresh), and still stops
/// with CRITICAL when the server is really gone. The loop process is frozen (SIGSTOP) while slapd restarts,
/// so the restart falls between two checks whatever the machine's speed.
#[test]
fn server_restarted_between_two_checks_in_loop_mode() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let map = d.write("loop.cf", &map_body(&s.ldap_url(), &service_bind(&s)));
    let out = d.join("loop.out");
    let err = d.join("loop.err");
    let mut cmd = bin_command(&["-f", map.to_str().unwrap(), "--debug", "--interval", "500ms", "-t", "2"], &[]);
    cmd.stdin(Stdio::null()).stdout(fs::File::create(&out).unwrap()).stderr(fs::File::create(&err).unwrap());
    let mut child = Looping(cmd.spawn().expect("spawn the loop"));
    let pid = child.0.id();
    let limit = Duration::from_secs(20);

    wait_for("a first successful check", limit, || successes(&out) >= 1);
    signal(pid, "-STOP");
    let before = successes(&out);
    s.restart();
    signal(pid, "-CONT");
    wait_for("two checks after the restart", limit, || successes(&out) >= before + 2);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "loop mode stopped after the restart:\n{}",
        fs::read_to_string(&out).unwrap()
    );

    // The server gone for good: the next check fails and the loop ends with CRITICAL.
    s.kill();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < limit, "loop mode still running with slapd down");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = fs::read_to_string(&out).unwrap();
    assert_eq!(status.code(), Some(2), "{stdout}{}", fs::read_to_string(&err).unwrap());
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with(&format!("LDAP CRITICAL - loop.cf: {}: connect failed: connection refused", s.ldap_url())),
        "{last}"
    );
    assert!(!stdout.contains(s.get("SERVICE_PW")), "{stdout}");
    eprintln!(
        "fault matrix: {:<44} {:<8} stage {:<9} {} successful checks, 2 after the restart, then {last}",
        "server restarted between two checks (loop)",
        "OK",
        "-",
        successes(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// Files that are not what they claim to be, and log sinks that stop reading (issue 10): each is named in one
// line, within the deadline, and never holds the check.

/// Make a FIFO at `path` (nobody ever writes to it: a read would wait forever).
fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success(), "mkfifo {}", path.display());
}

#[test]
fn hostile_files() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let fifo_s = fifo.to_str().unwrap();
    let regular = d.write("plain.txt", "not a directory\n");
    let ca = s.get("CA_FILE").to_string();
    let ldaps = |extra: &str| map_body(&s.ldaps_url(), &format!("bind = no\n{extra}"));
    let starttls = |extra: &str| map_body(&s.ldap_url(), &format!("bind = no\nstart_tls = yes\n{extra}"));
    let cases = [
        Fault::new("map is a FIFO", fifo.clone(), 3, "a FIFO (named pipe), not a regular file", None),
        Fault::new("map is /dev/zero", "/dev/zero".into(), 3, "a character device, not a regular file", None),
        Fault::new("map is /dev/urandom", "/dev/urandom".into(), 3, "a character device, not a regular file", None),
        Fault::new("map is a directory", d.path().to_path_buf(), 3, "a directory, not a regular file", None),
        Fault::new(
            "tls_ca_cert_file is a FIFO (ldaps)",
            d.write("ca-fifo.cf", &ldaps(&format!("tls_ca_cert_file = {fifo_s}\n"))),
            2,
            "cannot read tls_ca_cert_file",
            Some("tls"),
        )
        .detail("a FIFO (named pipe), not a regular file"),
        Fault::new(
            "tls_ca_cert_file is /dev/zero (STARTTLS)",
            d.write("ca-zero.cf", &starttls("tls_ca_cert_file = /dev/zero\ntls_require_cert = yes\n")),
            2,
            "a character device, not a regular file",
            Some("tls"),
        ),
        Fault::new(
            "tls_ca_cert_dir is a regular file",
            d.write("ca-dir.cf", &ldaps(&format!("tls_ca_cert_dir = {}\n", regular.display()))),
            2,
            "a regular file, not a directory",
            Some("tls"),
        ),
        Fault::new(
            "tls_key is a FIFO",
            d.write(
                "key-fifo.cf",
                &starttls(&format!(
                    "tls_ca_cert_file = {ca}\ntls_cert = {}\ntls_key = {fifo_s}\n",
                    s.get("CLIENT_CERT")
                )),
            ),
            2,
            "cannot read tls_key",
            Some("tls"),
        ),
        Fault::new(
            "a domain file is /dev/urandom",
            d.write(
                "domain-urandom.cf",
                &map_body(&s.ldap_url(), "bind = no\ndomain = /dev/urandom\nhealth_check_key = a@example.com\n"),
            ),
            3,
            "domain: open file /dev/urandom: a character device",
            None,
        ),
    ];
    for f in &cases {
        check(f);
    }
}

/// `--prometheus-textfile` naming a device or a FIFO: a warning, and the thing is left as it is (run as root,
/// the old code turned a device into a regular file).
#[test]
fn textfile_that_is_not_a_regular_file_is_left_alone() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let map = d.write("ok.cf", &map_body(&s.ldap_url(), "bind = no\n"));
    let fifo = d.join("fifo.prom");
    mkfifo(&fifo);
    let mut targets = vec![(fifo.clone(), "a FIFO")];
    let device = d.join("null.prom");
    // A character device of our own (the same as /dev/null), where root can make one.
    if is_root() && Command::new("mknod").arg(&device).args(["c", "1", "3"]).status().is_ok_and(|st| st.success()) {
        targets.push((device, "a character device"));
    }
    for (target, what) in targets {
        let args = [
            "--once".to_string(),
            "-f".into(),
            map.to_str().unwrap().into(),
            "--prometheus-textfile".into(),
            target.to_str().unwrap().into(),
        ];
        let r = run_command(Command::new(bin()).args(&args), None, RUN_TIMEOUT);
        assert_eq!(r.code, 0, "{what}: {r:?}");
        assert!(r.stderr.contains(&format!("it is {what}: not replaced")), "{what}: {}", r.stderr);
        let kind = fs::symlink_metadata(&target).unwrap().file_type();
        use std::os::unix::fs::FileTypeExt;
        assert!(kind.is_fifo() || kind.is_char_device(), "{what} was replaced: {kind:?}");
        eprintln!(
            "fault matrix: textfile is {what:<32} OK       left as it is  {:>6.0} ms",
            r.elapsed.as_secs_f64() * 1000.0
        );
    }
}

/// A syslog daemon that stops reading (nothing drains its socket; the kernel queues a few datagrams): `--once`
/// still exits at once after its verdict, and the loop keeps checking, each time, instead of stopping after ten.
#[test]
fn syslog_that_stops_reading() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let Some(syslog) = FakeSyslog::start(d.path()) else {
        eprintln!("syslog_that_stops_reading: no private mount namespace (needs root and unshare): skipped");
        return;
    };
    let map = d.write("ok.cf", &map_body(&s.ldap_url(), "bind = no\n"));
    let map_s = map.to_str().unwrap().to_string();
    // Fill the queue: a loop that logs every check, at 5 ms intervals, for a while.
    let args: Vec<String> = ["--syslog", "-v", "--debug", "--format", "json", "--interval", "0.005", "-f", &map_s]
        .map(String::from)
        .to_vec();
    let mut child = Looping(syslog.wrap(&bin(), &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(2));
    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut out = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let checks = out.lines().filter(|l| l.starts_with('{')).count();
    assert!(checks > 50, "the loop stopped after {checks} checks (syslog blocked it?)\nstderr: {err}");
    assert_eq!(err.matches("the syslog daemon is not taking messages").count(), 1, "reported once:\n{err}");
    eprintln!("fault matrix: syslog stops reading (loop, 2 s)            {checks} checks, the drop reported once");
    // The queue is still full: a one-shot check exits after its verdict, without waiting.
    let once: Vec<String> = ["--once", "--syslog", "-v", "-f", &map_s].map(String::from).to_vec();
    let r = run_command(&mut syslog.wrap(&bin(), &once), None, RUN_TIMEOUT);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("LDAP OK - "), "{r:?}");
    assert!(r.elapsed < DEFAULT_DEADLINE, "--once waited {:?} for syslog", r.elapsed);
    eprintln!(
        "fault matrix: syslog stops reading (--once)       OK       {:>6.0} ms",
        r.elapsed.as_secs_f64() * 1000.0
    );
    drop(syslog);
}
