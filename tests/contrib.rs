//! The fleet files in contrib/ (installed under /usr/share/ldap-health-check/), validated with the tools that
//! will read them, fed with what the check really writes:
//!
//! - the Prometheus alert rules: `promtool check rules`, then `promtool test rules` on a test file built here
//!   from textfiles that the check wrote (`--prometheus-textfile`) against a real slapd, healthy and down, and
//!   from a check that could not start (UNKNOWN, no map). Each textfile sample becomes a promtool input series
//!   with the labels a node_exporter scrape adds (instance, job); the Unix timestamps in the file are moved
//!   onto promtool's clock (which starts at 0) and advance by the timer's 30 s per step, as consecutive checks
//!   would write them. Series that the check does not write yet (certificate expiry) or that the latch units
//!   write (`ldap_health_check_postfix_stopped`, see units/) are fed by hand.
//! - the Icinga 2 CheckCommand: `icinga2 daemon -C` on a minimal configuration that includes it as shipped, with
//!   a service setting every custom variable; each argument it passes is an option of the binary (`--help`).
//! - the NRPE commands: each `command[...]` line is run as written (the binary's path and /etc/postfix moved
//!   to this build and a temporary configuration directory) against a real slapd: LDAP OK.
//!
//! Tools: promtool (Debian package prometheus; `make test-deps` extracts only promtool from it into
//! target/tools, see the Makefile) and icinga2 (package icinga2-bin). PROMTOOL= and ICINGA2= name others.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{age_file, bin, repo_root, run, run_command, Run, Slapd, TempDir};

const RULES: &str = "contrib/prometheus/ldap-health-check.rules.yml";
const ICINGA: &str = "contrib/icinga2/ldap-health-check.conf";
const NRPE: &str = "contrib/nrpe/ldap-health-check.cfg";
/// What a node_exporter scrape adds to every textfile sample.
const SCRAPE_LABELS: &str = r#"instance="mx1.example.com:9100",job="node""#;
/// The timer's interval: one check, so one new textfile, per step.
const STEP: u64 = 30;

/// A tool from $VAR, else the first of `paths` that exists; panics with how to get it.
fn tool(var: &str, paths: &[PathBuf], how: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    paths.iter().find(|p| p.exists()).cloned().unwrap_or_else(|| panic!("{how} (or set {var}=PATH)"))
}

fn promtool() -> PathBuf {
    tool(
        "PROMTOOL",
        &[repo_root().join("target/tools/promtool"), PathBuf::from("/usr/bin/promtool")],
        "promtool is missing: run `make test-deps` (it extracts promtool from Debian's prometheus package into target/tools)",
    )
}

fn icinga2() -> PathBuf {
    tool(
        "ICINGA2",
        &[PathBuf::from("/usr/sbin/icinga2")],
        "icinga2 is missing: run `make test-deps` (Debian package icinga2-bin)",
    )
}

fn tool_run(cmd: &mut Command) -> Run {
    run_command(cmd, None, Duration::from_secs(60))
}

// ------------------------------------------------------------------------------------------------ textfiles

/// One sample of a textfile: `name{labels}` as written (labels may be empty) and its value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: String,
    value: f64,
}

/// The samples of a Prometheus textfile (comments and blank lines skipped).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or_else(|| panic!("labels: {l:?}"))),
                None => (series, ""),
            };
            Sample { name: name.into(), labels: labels.into(), value: value.parse().expect("sample value") }
        })
        .collect()
}

fn is_timestamp(name: &str) -> bool {
    name.ends_with("_timestamp_seconds")
}

/// promtool's series selector: the sample's labels plus the scrape's.
fn selector(name: &str, labels: &str) -> String {
    if labels.is_empty() {
        format!("{name}{{{SCRAPE_LABELS}}}")
    } else {
        format!("{name}{{{labels},{SCRAPE_LABELS}}}")
    }
}

/// YAML single-quoted scalar.
fn yq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The input_series for `steps` + 1 scrapes of the check's textfile `text`, written by the check at `run_at`
/// (its own `ldap_health_check_last_run_timestamp_seconds`). Every timestamp sample is moved by the same
/// offset onto promtool's clock, so that the file's last run is at `start` seconds; with `running`, a new
/// check rewrites the file every [`STEP`] seconds (the run timestamps advance with it; last-success only if
/// the check succeeds), else the file stays as it is (the check stopped running).
fn input_series(text: &str, start: u64, steps: u64, running: bool) -> String {
    let s = samples(text);
    let run_at = s
        .iter()
        .find(|x| x.name == "ldap_health_check_last_run_timestamp_seconds")
        .expect("no last_run sample in the textfile")
        .value;
    let ok = s.iter().any(|x| x.name == "ldap_health_check_exit_status" && x.value <= 1.0);
    let mut out = String::new();
    for x in &s {
        let values = if is_timestamp(&x.name) {
            let v = x.value - run_at + start as f64;
            let advances = running && (x.name == "ldap_health_check_last_run_timestamp_seconds" || ok);
            if advances {
                format!("{v}+{STEP}x{steps}")
            } else {
                format!("{v}x{steps}")
            }
        } else {
            format!("{}x{steps}", x.value)
        };
        out.push_str(&format!(
            "      - series: {}\n        values: {}\n",
            yq(&selector(&x.name, &x.labels)),
            yq(&values)
        ));
    }
    out
}

/// A check with `args` writing its textfile to `path`: the textfile and the exit code.
fn check_textfile(args: &[&str], path: &Path) -> (String, i32) {
    let mut a = vec!["--once", "--prometheus-textfile", path.to_str().unwrap()];
    a.extend_from_slice(args);
    let r = run(&a, &[]);
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}\n{}{}", path.display(), r.stdout, r.stderr));
    (text, r.code)
}

// ------------------------------------------------------------------------------------------------ Prometheus

#[test]
fn prometheus_rules_pass_promtool_check() {
    let r = tool_run(Command::new(promtool()).arg("check").arg("rules").arg(repo_root().join(RULES)));
    assert!(r.success(), "promtool check rules {RULES}: code {}\n{}{}", r.code, r.stdout, r.stderr);
    assert!(r.stdout.contains("SUCCESS: 6 rules found"), "{}", r.stdout);
}

/// An alert expected by promtool: labels and annotations exactly.
fn alert(labels: &[(String, String)], summary: &str, description: &str) -> String {
    let mut s = String::from("          - exp_labels:\n");
    for (k, v) in labels {
        s.push_str(&format!("              {k}: {}\n", yq(v)));
    }
    s.push_str(&format!(
        "            exp_annotations:\n              summary: {}\n              description: {}\n",
        yq(summary),
        yq(description)
    ));
    s
}

/// One `alert_rule_test` entry.
fn expect(at: &str, name: &str, alerts: &[String]) -> String {
    let body = if alerts.is_empty() {
        "        exp_alerts: []\n".to_string()
    } else {
        format!("        exp_alerts:\n{}", alerts.concat())
    };
    format!("      - eval_time: {at}\n        alertname: {name}\n{body}")
}

#[test]
fn prometheus_rules_fire_on_real_textfiles() {
    let slapd = Slapd::start_small();
    let dir = TempDir::new();
    let map = dir.write(
        "ldap-users.cf",
        &format!(
            "server_host = {}\nsearch_base = ou=people,dc=example,dc=com\nquery_filter = (mail=%s)\n\
             result_attribute = mail\nbind = yes\nbind_dn = {}\nbind_pw = {}\ntimeout = 2\n\
             health_check_key = user0001@example.com\n",
            slapd.ldap_url(),
            slapd.get("SERVICE_DN"),
            slapd.get("SERVICE_PW")
        ),
    );
    let map_s = map.to_str().unwrap();
    let prom = dir.join("ldap-health-check.prom");

    // the textfiles, as the check writes them: healthy, then the directory down (the same file: the
    // last-success time is carried over), and a check that cannot start (no readable map)
    let (healthy, code) = check_textfile(&["-f", map_s], &prom);
    assert_eq!(code, 0, "healthy check:\n{healthy}");
    slapd.kill();
    let (down, code) = check_textfile(&["-f", map_s], &prom);
    assert_eq!(code, 2, "check with slapd down:\n{down}");
    // no main.cf: discovery cannot run, so there is no map to report
    let empty = TempDir::new();
    let (unknown, code) =
        check_textfile(&["--postfix-config", empty.path().to_str().unwrap()], &dir.join("unknown.prom"));
    assert_eq!(code, 3, "check without a Postfix configuration:\n{unknown}");
    eprintln!("--- textfile, healthy:\n{healthy}--- textfile, LDAP down:\n{down}--- textfile, UNKNOWN:\n{unknown}");
    let up = |t: &str| samples(t).into_iter().find(|s| s.name == "ldap_health_check_up").map(|s| s.value);
    assert_eq!((up(&healthy), up(&down), up(&unknown)), (Some(1.0), Some(0.0), None));
    assert!(
        samples(&down).iter().any(|s| s.name == "ldap_health_check_last_success_timestamp_seconds"),
        "the last-success time was not carried over:\n{down}"
    );

    let inst = [("instance", "mx1.example.com:9100"), ("job", "node")];
    let with = |extra: &[(&'static str, String)]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        v.extend(inst.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        v.sort();
        v
    };

    // expected alerts, with their annotations rendered (promtool compares both)
    let unusable =
        with(&[("alertname", "PostfixLdapMapUnusable".into()), ("map", map_s.into()), ("severity", "critical".into())]);
    let unusable_alert = alert(
        &unusable,
        &format!("Postfix LDAP map {map_s} unusable on mx1.example.com:9100"),
        &format!(
            "ldap-health-check finds the map {map_s} unusable (CRITICAL or UNKNOWN) on mx1.example.com:9100: \
             journalctl -u ldap-health-check.service -p warning there says why."
        ),
    );
    let failing = with(&[("alertname", "PostfixLdapCheckFailing".into()), ("severity", "critical".into())]);
    let failing_alert = alert(
        &failing,
        "ldap-health-check fails on mx1.example.com:9100 (exit status 3)",
        "The check exits 3 (2 CRITICAL, 3 UNKNOWN) on mx1.example.com:9100 without naming an unusable map: the \
         check could not run; see journalctl -u ldap-health-check.service.",
    );
    let not_running = with(&[("alertname", "PostfixLdapCheckNotRunning".into()), ("severity", "warning".into())]);
    // evaluated at 6m, the file's last run at 30s: 330 s ago
    let not_running_alert = alert(
        &not_running,
        "ldap-health-check has not run on mx1.example.com:9100 for 5m 30s",
        "The last check on mx1.example.com:9100 finished 5m 30s ago: systemctl status ldap-health-check.timer \
         ldap-health-check.service there.",
    );
    let server = "ldaps://ldap1.example.com:636";
    let cert = |sev: &str, left: &str| {
        let l = with(&[
            ("alertname", "PostfixLdapCertificateExpiring".into()),
            ("map", "/etc/postfix/ldap-users.cf".into()),
            ("server", server.into()),
            ("severity", sev.into()),
        ]);
        alert(
            &l,
            &format!("LDAP server certificate of {server} expires in {left}"),
            &format!(
                "The certificate that {server} presents for /etc/postfix/ldap-users.cf on mx1.example.com:9100 \
                 expires in {left}; with tls_require_cert = yes Postfix will then fail every lookup."
            ),
        )
    };
    let stopped = with(&[("alertname", "PostfixStoppedByLdapCheck".into()), ("severity", "critical".into())]);
    let stopped_alert = alert(
        &stopped,
        "Postfix on mx1.example.com:9100 is stopped by ldap-health-check",
        "ldap-health-check stopped Postfix on mx1.example.com:9100 because its LDAP directory is unusable; it \
         starts Postfix again after the first passing check. systemctl is-active \
         ldap-health-check-stop-postfix.service there says active meanwhile.",
    );
    let all = [
        "PostfixLdapMapUnusable",
        "PostfixLdapCheckFailing",
        "PostfixLdapCheckNotRunning",
        "PostfixLdapCertificateExpiring",
        "PostfixStoppedByLdapCheck",
    ];
    let none_but = |at: &str, firing: &[(&str, &String)]| -> String {
        all.iter()
            .map(|a| {
                let alerts: Vec<String> = firing.iter().filter(|(n, _)| n == a).map(|(_, s)| (*s).clone()).collect();
                expect(at, a, &alerts)
            })
            .collect()
    };

    let hand = |series: &str, values: &str| format!("      - series: {}\n        values: {}\n", yq(series), yq(values));
    let mut t = format!(
        "rule_files:\n  - {}\nevaluation_interval: {STEP}s\ntests:\n",
        yq(&repo_root().join(RULES).to_string_lossy())
    );
    // 1 healthy, checks every 30 s for 10 min: nothing fires
    t += &format!(
        "  - name: healthy\n    interval: {STEP}s\n    input_series:\n{}    alert_rule_test:\n{}{}",
        input_series(&healthy, 0, 20, true),
        none_but("2m", &[]),
        none_but("9m", &[])
    );
    // 2 LDAP down: the map is unusable (for: 1m), the failing-check alert defers to it
    t += &format!(
        "  - name: ldap down\n    interval: {STEP}s\n    input_series:\n{}    alert_rule_test:\n{}{}",
        input_series(&down, 0, 20, true),
        none_but("30s", &[]),
        none_but("2m", &[("PostfixLdapMapUnusable", &unusable_alert)])
    );
    // 3 a check that cannot start (no map): only the exit status tells
    t += &format!(
        "  - name: check cannot run\n    interval: {STEP}s\n    input_series:\n{}    alert_rule_test:\n{}{}",
        input_series(&unknown, 0, 20, true),
        none_but("30s", &[]),
        none_but("2m", &[("PostfixLdapCheckFailing", &failing_alert)])
    );
    // 4 the checks stop after the healthy file was written at 30s: node_exporter keeps serving it
    t += &format!(
        "  - name: check not running\n    interval: {STEP}s\n    input_series:\n{}    alert_rule_test:\n{}{}",
        input_series(&healthy, 30, 20, false),
        none_but("5m", &[]),
        none_but("6m", &[("PostfixLdapCheckNotRunning", &not_running_alert)])
    );
    // 5 by hand: a certificate 10 days from expiry (warning after 1 h), one 1 day from it (critical after 5 min,
    // and warning); the stop latch's textfile turning to 1 (the latch units write it at each transition)
    let cert_series = selector(
        "ldap_health_check_cert_expiry_timestamp_seconds",
        &format!(r#"map="/etc/postfix/ldap-users.cf",server="{server}""#),
    );
    t += &format!(
        "  - name: certificate expiring\n    interval: 1m\n    input_series:\n{}    alert_rule_test:\n{}{}",
        hand(&cert_series, &format!("{}x180", 10 * 86400)),
        expect("30m", "PostfixLdapCertificateExpiring", &[]),
        expect("2h", "PostfixLdapCertificateExpiring", &[cert("warning", "9d 22h 0m 0s")]),
    );
    t += &format!(
        "  - name: certificate expiring soon\n    interval: 1m\n    input_series:\n{}    alert_rule_test:\n{}",
        hand(&cert_series, &format!("{}x180", 86400 + 2 * 3600)),
        expect(
            "2h",
            "PostfixLdapCertificateExpiring",
            &[cert("critical", "1d 0h 0m 0s"), cert("warning", "1d 0h 0m 0s")]
        ),
    );
    t += &format!(
        "  - name: postfix stopped by the check\n    interval: {STEP}s\n    input_series:\n{}{}    alert_rule_test:\n{}{}{}",
        input_series(&down, 0, 20, true),
        hand(&selector("ldap_health_check_postfix_stopped", ""), "0 0 1x18"),
        expect("30s", "PostfixStoppedByLdapCheck", &[]),
        expect("1m", "PostfixStoppedByLdapCheck", std::slice::from_ref(&stopped_alert)),
        expect("2m", "PostfixLdapMapUnusable", std::slice::from_ref(&unusable_alert)),
    );

    let test_file = dir.join("ldap-health-check.rules.test.yml");
    fs::write(&test_file, &t).unwrap();
    let r = tool_run(Command::new(promtool()).arg("test").arg("rules").arg(&test_file));
    assert!(r.success(), "promtool test rules: code {}\n{}{}\n--- the test file:\n{t}", r.code, r.stdout, r.stderr);
    eprintln!("promtool test rules: {}", r.stdout.trim());
}

// ------------------------------------------------------------------------------------------------ Icinga 2

#[test]
fn icinga2_checkcommand_validates() {
    let conf = TempDir::new();
    // readable by the user icinga2 switches to (nagios)
    let write = |name: &str, text: &str| -> PathBuf {
        let p = conf.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        p
    };
    let main = write(
        "icinga2.conf",
        &format!(
            "// a minimal configuration around the shipped CheckCommand (tests/contrib.rs)\n\
             include \"{}\"\n\
             object CheckCommand \"dummy\" {{\n  command = [ \"/bin/true\" ]\n}}\n\
             object Host \"mx1.example.com\" {{\n  check_command = \"dummy\"\n}}\n\
             object Service \"postfix-ldap\" {{\n  host_name = \"mx1.example.com\"\n  check_command = \"postfix_ldap\"\n\
               vars.postfix_ldap_maps = [ \"/etc/postfix/ldap-users.cf\", \"/etc/postfix/ldap-aliases.cf\" ]\n\
               vars.postfix_ldap_canaries = [ \"postmaster@example.com\" ]\n\
               vars.postfix_ldap_timeout = \"5s\"\n  vars.postfix_ldap_warning = 1\n  vars.postfix_ldap_critical = 3\n\
               vars.postfix_ldap_verbose = true\n  vars.postfix_ldap_postfix_config = \"/etc/postfix\"\n}}\n\
             object Service \"postfix-ldap-defaults\" {{\n  host_name = \"mx1.example.com\"\n  check_command = \"postfix_ldap\"\n}}\n",
            repo_root().join(ICINGA).display()
        ),
    );
    let validate = |p: &Path| tool_run(Command::new(icinga2()).args(["daemon", "-C", "-c"]).arg(p));
    let r = validate(&main);
    assert!(r.success(), "icinga2 daemon -C: code {}\n{}{}", r.code, r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(
        out.contains("Instantiated 2 CheckCommands") && out.contains("Instantiated 2 Services"),
        "icinga2 daemon -C did not load the CheckCommand:\n{out}"
    );
    assert!(!out.contains("warning/"), "icinga2 daemon -C warns:\n{out}");

    // not vacuous: the same with a misspelt attribute fails
    let shipped = fs::read_to_string(repo_root().join(ICINGA)).unwrap();
    let broken = write("broken.conf", &shipped.replace("repeat_key = true", "repeat_keys = true"));
    let r = validate(&broken);
    assert!(!r.success(), "icinga2 daemon -C accepted a misspelt attribute:\n{}{}", r.stdout, r.stderr);

    // every option the CheckCommand passes is one of the binary's
    let help = run(&["--help"], &[]).stdout;
    let mut n = 0;
    for line in shipped.lines() {
        let l = line.trim();
        if let Some(opt) = l.strip_prefix('"').and_then(|r| r.split_once("\" = {")).map(|(o, _)| o) {
            n += 1;
            assert!(
                help.contains(&format!("{opt} ")) || help.contains(&format!("{opt},")),
                "{opt} is not an option:\n{help}"
            );
        }
    }
    assert_eq!(n, 7, "arguments found in {ICINGA}");
    let cmd = shipped.lines().find(|l| l.trim_start().starts_with("command = ")).unwrap();
    assert!(cmd.contains("\"/usr/sbin/ldap-health-check\", \"--once\""), "{cmd}");
}

// ------------------------------------------------------------------------------------------------ NRPE

#[test]
fn nrpe_commands_run_against_a_real_slapd() {
    let slapd = Slapd::shared();
    let conf = TempDir::new();
    let dir = conf.path().display().to_string();
    let map = |base: &str| {
        format!(
            "server_host = {}\nsearch_base = {base}\nquery_filter = (mail=%s)\nresult_attribute = mail\n\
             bind = yes\nbind_dn = {}\nbind_pw = {}\n",
            slapd.ldap_url(),
            slapd.get("SERVICE_DN"),
            slapd.get("SERVICE_PW")
        )
    };
    conf.write("ldap-users.cf", &map("ou=people,dc=example,dc=com"));
    conf.write("ldap-aliases.cf", &map("dc=example,dc=com"));
    let main_cf = conf.write(
        "main.cf",
        &format!(
            "compatibility_level = 3.6\nmeta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n\
             virtual_mailbox_domains = example.com\nvirtual_mailbox_maps = ldap:{dir}/ldap-users.cf\n\
             virtual_alias_maps = ldap:{dir}/ldap-aliases.cf\n"
        ),
    );
    age_file(&main_cf);
    let text = fs::read_to_string(repo_root().join(NRPE)).unwrap();
    let commands: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("command["))
        .map(|l| l.split_once("]=").unwrap_or_else(|| panic!("not command[NAME]=CMD: {l}")))
        .collect();
    assert_eq!(commands.len(), 2, "{NRPE}: {commands:?}");
    for (name, cmd) in commands {
        // NRPE splits on blanks and runs the program (no shell in these lines)
        let argv: Vec<String> =
            cmd.split_whitespace().map(|a| a.replace("/etc/postfix/", &format!("{dir}/"))).collect();
        assert_eq!(argv[0], "/usr/sbin/ldap-health-check", "{name}: the package's path");
        let mut c = Command::new(bin());
        c.args(&argv[1..]).env("MAIL_CONFIG", &dir);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LDAP_HEALTH_CHECK_") {
                c.env_remove(&k);
            }
        }
        let r = tool_run(&mut c);
        assert!(
            r.code == 0 && r.stdout.starts_with("LDAP OK - 2 maps"),
            "NRPE command {name} ({argv:?}): code {}\n{}{}",
            r.code,
            r.stdout,
            r.stderr
        );
        eprintln!("nrpe {name}: {}", r.stdout.lines().next().unwrap_or(""));
    }
}
