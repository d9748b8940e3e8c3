//! `--policy` (issue 12): the SMTPD access policy protocol over the real binary's stdin/stdout, and the policy
//! run by a real Postfix (spawn(8), tests/policy/postfix-instance.sh) in front of a real slapd: valid recipients
//! are never refused while the directory answers wrong, unknown ones are still refused while it is healthy, and
//! Postfix's own 451 stays when it is down.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const RCPT: &str = "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.7\n\
                    sender=a@example.net\nrecipient=user0002@example.com\n\n";
const DEFER: &str = "DEFER_IF_REJECT 4.3.0 Recipient directory check failed, try again later";

fn map_body(url: &str, s: &Slapd, extra: &str) -> String {
    format!(
        "server_host = {url}\nsearch_base = ou=people,dc=example,dc=com\nquery_filter = (mail=%s)\n\
         result_attribute = mail\nbind_dn = {}\nbind_pw = {}\nhealth_check_key = user0001@example.com\n{extra}",
        s.get("SERVICE_DN"),
        s.get("SERVICE_PW")
    )
}

/// A policy process on pipes, as spawn(8) runs it (stdin/stdout; stderr kept apart here to prove it is silent).
struct Policy {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Policy {
    fn start(map: &Path, args: &[&str]) -> Policy {
        let mut child = bin_command(&[], &[])
            .args(["--policy", "-f", map.to_str().unwrap()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the policy");
        let out = BufReader::new(child.stdout.take().unwrap());
        Policy { child, out }
    }

    fn send(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The next reply's action, and how long it took to come.
    fn reply(&mut self) -> (String, Duration) {
        let t = Instant::now();
        let mut action = String::new();
        self.out.read_line(&mut action).expect("a reply line");
        let mut empty = String::new();
        self.out.read_line(&mut empty).expect("the empty line");
        assert_eq!(empty, "\n", "a reply ends with an empty line (got {action:?} then {empty:?})");
        let action = action.trim_end().strip_prefix("action=").unwrap_or_else(|| panic!("not a reply: {action:?}"));
        (action.to_string(), t.elapsed())
    }

    fn ask(&mut self, request: &str) -> (String, Duration) {
        self.send(request);
        self.reply()
    }

    /// Close stdin and wait: the exit status and what went to stderr (nothing, ever).
    fn finish(mut self) -> (i32, String) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (status.code().unwrap_or(-1), err)
    }
}

#[test]
fn the_protocol_many_requests_malformed_ones_and_eof() {
    let s = Slapd::shared();
    let d = TempDir::new();
    let map = d.write("users.cf", &map_body(&s.ldap_url(), s, ""));
    let mut p = Policy::start(&map, &["--policy-cache", "0"]);
    for _ in 0..3 {
        assert_eq!(p.ask(RCPT).0, "DUNNO", "healthy");
    }
    assert_eq!(p.ask("request=smtpd_access_policy\nprotocol_state=MAIL\n\n").0, "DUNNO", "not RCPT");
    assert_eq!(p.ask("this line has no equals sign\nrecipient=x@y\n\n").0, "DUNNO", "malformed");
    assert_eq!(p.ask("request=junk\n\n").0, "DUNNO", "not a policy request");
    assert_eq!(p.ask(&format!("x={}\n\n", "y".repeat(20_000))).0, "DUNNO", "a line too long");
    assert_eq!(p.ask(RCPT).0, "DUNNO", "still in step after the malformed ones");
    // EOF in the middle of a request: no reply, exit 0, nothing on stderr (it is smtpd's socket).
    p.send("request=smtpd_access_policy\nprotocol_state=RCPT\n");
    let (code, err) = p.finish();
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn it_defers_while_the_directory_answers_wrong_and_not_while_it_is_down() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let map = d.write("users.cf", &map_body(&s.ldap_url(), &s, "timeout = 2\n"));
    let mut p = Policy::start(&map, &["--policy-cache", "0", "-t", "1"]);
    assert_eq!(p.ask(RCPT).0, "DUNNO");
    // The canary's entry deleted, slapd up: DEFER_IF_REJECT at the next RCPT (no cache).
    s.ldapdelete("uid=user0001,ou=people,dc=example,dc=com");
    assert_eq!(p.ask(RCPT).0, DEFER);
    // Hung (SIGSTOP): the answer comes by the deadline, DUNNO (Postfix's own lookup fails: 451).
    s.sigstop();
    let (action, took) = p.ask(RCPT);
    assert_eq!(action, "DUNNO");
    assert!(took < Duration::from_secs(5), "answered after {took:?} (-t 1)");
    eprintln!("policy: hung directory, answered {action} after {took:?} (-t 1)");
    s.sigcont();
    // Down: DUNNO at once.
    s.kill();
    let (action, took) = p.ask(RCPT);
    assert_eq!(action, "DUNNO");
    eprintln!("policy: directory down, answered {action} after {took:?}");
    // Back, emptied of the canary still: the connection is made again, DEFER again.
    s.restart();
    assert_eq!(p.ask(RCPT).0, DEFER);
    let (code, err) = p.finish();
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn the_presence_check_defers_with_no_canary_and_the_self_test_says_why() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let body = map_body(&s.ldap_url(), &s, "").replace("health_check_key = user0001@example.com\n", "");
    let map = d.write("users.cf", &body);
    let self_test = |code: i32| {
        let r = run(&["--policy", "--self-test", "-f", map.to_str().unwrap()], &[]);
        r.assert_code(code);
        r.stdout
    };
    let out = self_test(0);
    assert!(out.contains("users.cf: the presence check (no canary)") && out.contains("action=DUNNO"), "{out}");
    // Every entry hidden from the service account: the presence check finds nothing.
    s.set_acls(&[
        "to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break",
        "to attrs=userPassword by self write by anonymous auth by * none",
        "to dn.children=\"ou=people,dc=example,dc=com\" by * none",
        "to * by * read",
    ]);
    let out = self_test(1);
    assert!(out.contains(&format!("action={DEFER}")) && out.contains("no readable entry under"), "{out}");
    let mut p = Policy::start(&map, &["--policy-cache", "0"]);
    assert_eq!(p.ask(RCPT).0, DEFER);
    p.finish();
}

// ---------------------------------------------------------------------------------------------
// With a real Postfix.

/// A private Postfix (tests/policy/postfix-instance.sh) whose smtpd asks our policy; stopped on Drop.
struct Postfix {
    dir: PathBuf,
    port: String,
}

impl Postfix {
    fn start(slapd: &Slapd, d: &TempDir, policy_args: &str) -> Option<Postfix> {
        let script = repo_root().join("tests/policy/postfix-instance.sh");
        let dir = d.join("pf");
        let argv = format!("{} --policy {policy_args}", bin().display());
        let r = run_command(
            Command::new("bash").arg(&script).arg("start").arg(&dir).arg(&slapd.dir).env("PF_POLICY_ARGV", &argv),
            None,
            Duration::from_secs(60),
        );
        if r.code != 0 {
            panic!("postfix-instance.sh start: {r:?}");
        }
        let env = std::fs::read_to_string(dir.join("env")).unwrap();
        let port = env.lines().find_map(|l| l.strip_prefix("SMTP_PORT=")).unwrap().to_string();
        Some(Postfix { dir, port })
    }

    /// RCPT TO each of `rcpts` in one SMTP session: the reply codes.
    fn rcpt(&self, rcpts: &[&str]) -> Vec<String> {
        let probe = repo_root().join("tests/policy/smtp-probe.py");
        let r =
            run_command(Command::new("python3").arg(&probe).arg(&self.port).args(rcpts), None, Duration::from_secs(60));
        assert_eq!(r.code, 0, "smtp-probe: {r:?}");
        // One line per RCPT: time, recipient, code, ms, reply.
        r.stdout.lines().filter_map(|l| l.split_whitespace().nth(2).map(str::to_string)).collect()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let script = repo_root().join("tests/policy/postfix-instance.sh");
        let _ = Command::new("bash").arg(script).arg("stop").arg(&self.dir).status();
    }
}

#[test]
fn postfix_never_refuses_a_valid_recipient_while_the_directory_answers_wrong() {
    let s = Slapd::start_small();
    let d = TempDir::new();
    let Some(pf) = Postfix::start(&s, &d, "--policy-cache 0") else { return };
    let valid = [
        "user0002@example.com",
        "user0003@alias.example.com",
        "user0004@relay.example.com",
        "user0005@local.example.com",
    ];
    let unknown =
        ["nobody@example.com", "nobody@alias.example.com", "nobody@relay.example.com", "nobody@local.example.com"];
    // Healthy: valid recipients accepted, unknown ones refused as before.
    let codes = pf.rcpt(&[&valid[..], &unknown[..]].concat());
    assert_eq!(codes, ["250", "250", "250", "250", "550", "550", "550", "550"], "healthy");
    // The directory answers wrong: every entry hidden from Postfix's identity, slapd up. Postfix alone would
    // answer 550 to the valid recipients; with the policy, 450.
    s.set_acls(&[
        "to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break",
        "to attrs=userPassword by self write by anonymous auth by * none",
        "to dn.children=\"ou=people,dc=example,dc=com\" by * none",
        "to * by * read",
    ]);
    let mut fives = 0;
    let mut total = 0;
    for _ in 0..5 {
        for code in pf.rcpt(&valid) {
            total += 1;
            fives += usize::from(code.starts_with('5'));
            assert_eq!(code, "450", "a valid recipient while the directory answers wrong");
        }
    }
    eprintln!("policy: directory answering wrong: {total} RCPT for valid recipients, {fives} refused with 5xx");
    // Down: Postfix's own 451, unchanged.
    s.kill();
    let codes = pf.rcpt(&valid[..1]);
    assert_eq!(codes, ["451"], "directory down");
}

/// A map given with -f that is no regular file (a FIFO nobody writes to): the self-test says none can be read
/// and exits 3 at once; the policy itself answers DUNNO (never a hang, never an exit before EOF).
#[test]
fn a_map_that_is_a_fifo_is_not_guarded() {
    let d = TempDir::new();
    let fifo = d.join("users.cf");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let r = run(&["--policy", "--self-test", "-f", fifo.to_str().unwrap()], &[]);
    r.assert_code(3);
    assert!(r.stdout.contains("none of the maps given can be read"), "{}", r.stdout);
    assert!(r.stderr.contains("a FIFO (named pipe), not a regular file"), "{}", r.stderr);
    let request = "request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=a@example.com\n\n";
    let mut c = Command::new(bin());
    c.args(["--policy", "-f", fifo.to_str().unwrap()]).env_remove("LDAP_HEALTH_CHECK_CONFFILE");
    let p = run_command(&mut c, Some(request.as_bytes()), RUN_TIMEOUT);
    assert_eq!((p.code, p.stdout.as_str()), (0, "action=DUNNO\n\n"), "{p:?}");
}
