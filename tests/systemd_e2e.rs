//! The systemd integration (units/, issue 4) end to end, under a REAL systemd.
//!
//! `tests/systemd/sandbox.sh` boots the host's systemd 252 as PID 1 of private namespaces on a throw-away
//! overlay of `/`. Before the boot, the setup hook runs `make install` into that root, puts a
//! `0640 root:postfix` map (with a canary, `health_check_key = user0001@example.com`) and a loopback-only
//! main.cf that validates recipients of example.com through that map (`virtual_mailbox_maps = ldap:...`)
//! under /etc/postfix, plus a `0600 postfix:postfix` map over ldapi:// with SASL EXTERNAL (named by main.cf as
//! `sender_canonical_maps = proxy:ldap:...`, never looked up by Postfix here), shortens the timer to
//! [`INTERVAL`] with a drop-in and enables the units as the README says (`systemctl enable
//! ldap-health-check.timer`). Nothing names the maps to the units (no /etc/default/ldap-health-check at boot;
//! in (w), one with an empty `LDAP_HEALTH_CHECK_CONFFILE=`): every check of every scenario finds both maps
//! through main.cf, with `postconf` run by the check inside the hardened unit (the units' default:
//! discovery). slapd (tests/fixtures/slapd.sh) runs on the host but in the sandbox's network namespace, on
//! 127.0.0.1:389, so the test can SIGSTOP it by its pid; its directory, so its ldapi socket, is bind-mounted
//! into the sandbox at [`SLAPD_IN`];
//! Postfix is Debian's own (postfix.service, a wrapper, and postfix@-.service, the daemon), and the test
//! talks SMTP to it on 127.0.0.1:25 from a thread that joined that network namespace (setns(2)). One
//! boot, scenarios in this order:
//!
//! - (1) `systemd-analyze verify` of the installed units (no output at all) and the probe unit's
//!   `systemd-analyze security` exposure <= 1.5, offline and against the running manager; the probe unit
//!   sets no map (no `LDAP_HEALTH_CHECK_CONFFILE` in its Environment=) and runs as User=postfix,
//!   Group=postfix, PrivateUsers=yes;
//! - (f) boot with LDAP down: the failed checks name the map that main.cf uses (discovery works in the
//!   hardened unit: postconf runs and reads main.cf there); postfix@-.service never even starts and
//!   nothing listens on :25; LDAP comes back (with an ACL that shows ou=hidden over ldapi to the postfix
//!   user's peercred identity only): Postfix is started;
//! - (u) the check is the postfix user, as slapd sees it: the unit's check that started Postfix found the
//!   ldapi map's canary under ou=hidden; `ldapwhoami -Y EXTERNAL` with the unit's identity is
//!   `gidNumber=<postfix gid>+uidNumber=<postfix uid>,...` (SO_PEERCRED through PrivateUsers=yes); the old
//!   identity (DynamicUser=yes, Group=postfix) gets CRITICAL on the same map;
//! - (a) healthy for several intervals: Postfix untouched, no latch runs, no journal line (but an OK line
//!   that journald's LogLevelMax= race lets through now and then: counted, see (a)), none from postconf;
//! - (w) WARNING (via /etc/default/ldap-health-check, which the .path unit watches, with an empty
//!   `LDAP_HEALTH_CHECK_CONFFILE=`: still discovery): Postfix untouched;
//! - (e) an admin's `systemctl stop postfix` is respected for 3 intervals (and, after (d), (e') a
//!   `systemctl start postfix` while LDAP is down, until the next transition);
//! - (b) slapd SIGSTOPped: Postfix stopped within interval + deadline + 2 s;
//! - (c) slapd resumed: started within interval + 2 s;
//! - (d) slapd killed: stopped, one latch run for many failed checks; restarted: started;
//! - (g) the directory emptied while slapd stays up (an ACL hides every entry under ou=people from the
//!   service account; the base entry stays visible, so a check without a canary still says OK): the
//!   canary stops Postfix within interval + deadline + 2 s; from then on `RCPT TO:<user0001@example.com>`
//!   gets a refused connection; restored: started within interval + 2 s and 250 again. RCPT attempts run
//!   every 100 ms throughout: the 5xx that Postfix itself gives in the window before the check sees the
//!   change are counted and printed (the README's window), and a second round with `soft_bounce = yes`
//!   (its complement) shows 4xx there and never a 5xx;
//! - (p) the .path unit: with the timer stopped, a broken map (UNKNOWN; named only in main.cf) stops Postfix
//!   at once, the repaired map starts it at once, a burst of writes changes nothing;
//! - live `make uninstall` / `make install` inside the running system (daemon-reload, disable).
//!
//! Times are measured with systemd's own monotonic timestamps against the test's CLOCK_MONOTONIC and
//! printed. Bounds are the issue's, not tighter (these machines are noisy). It skips, loudly, only where
//! namespaces cannot be created. Run: `cargo test --test systemd_e2e -- --nocapture`.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::sandbox::{harness, namespaces_unavailable, shq, Sandbox};
use common::{fixture_script, repo_root, run_command, tmp_root, Run};

/// The timer interval of the test drop-in (OnUnitActiveSec=), seconds.
const INTERVAL: f64 = 2.0;
/// The map's `timeout`, which is the check's deadline, seconds.
const DEADLINE: f64 = 2.0;
/// The check's deadline without `-t` for these maps: the longest a Postfix lookup could take, the map's
/// `timeout` for each operation (1 server + bind + presence search + 1 canary; `plan::longest`). A hung
/// slapd holds the SASL EXTERNAL bind of [`PEERCRED_MAP`] that long: Postfix bounds no SASL bind at all.
const CHECK_DEADLINE: f64 = DEADLINE * 4.0;
/// The issue's allowance on top of interval (+ deadline), seconds.
const SLACK: f64 = 2.0;

const PROBE: &str = "ldap-health-check.service";
const TIMER: &str = "ldap-health-check.timer";
const PATH_UNIT: &str = "ldap-health-check.path";
const STOP_LATCH: &str = "ldap-health-check-stop-postfix.service";
const START_LATCH: &str = "ldap-health-check-start-postfix.service";
/// The unit running Postfix's master on Debian (postfix.service is a /bin/true wrapper).
const DAEMON: &str = "postfix@-.service";
const UNIT_DIR: &str = "/usr/local/lib/systemd/system";
const MAP: &str = "/etc/postfix/ldap-users.cf";
const ENV_FILE: &str = "/etc/default/ldap-health-check";
/// Where the setup hook puts a read-only view of the source tree and a copy of the test build.
const SRC_IN: &str = "/var/lib/lhc-e2e/src";
const BIN_IN: &str = "/var/lib/lhc-e2e/ldap-health-check";

// The service account of tests/fixtures/slapd.sh (documented in its header; checked after its start).
const SERVICE_DN: &str = "cn=postfix,ou=services,dc=example,dc=com";
const SERVICE_PW: &str = "postfixpw";
/// The map's canary (`health_check_key`): a user of the fixture, a valid recipient for Postfix.
const CANARY: &str = "user0001@example.com";
/// A recipient of example.com that the directory does not know.
const UNKNOWN_RCPT: &str = "no-such-user@example.com";
/// (g): the ACL that hides every entry under ou=people (not ou=people itself, nor the base) from everyone
/// but root over ldapi (the fixture's rule {0} gives root `manage` before any other rule).
const HIDE_PEOPLE_ACL: &str = r#"to dn.children="ou=people,dc=example,dc=com" by * none"#;

/// The second map, `0600 postfix:postfix`: ldapi:// with SASL EXTERNAL, so slapd names the client by its
/// socket credentials. Named in main.cf as `proxy:ldap:` (proxymap runs as postfix); Postfix never looks it up
/// in the scenarios (sender_canonical_maps: cleanup, on a message; none is sent).
const PEERCRED_MAP: &str = "/etc/postfix/ldap-peercred.cf";
/// Where the setup hook bind-mounts the fixture's directory, and so its ldapi socket, inside the sandbox
/// (whatever the host path: under /root, /tmp or anywhere, and visible to the hardened unit).
const SLAPD_IN: &str = "/var/lib/lhc-e2e/slapd";
/// The canary of [`PEERCRED_MAP`]: the entry under ou=hidden, which the fixture shows only to cn=admin and root.
const SECRET: &str = "secret@example.com";
/// The SASL EXTERNAL identity of a process of `uid`/`gid` over ldapi (slapd's peercred DN).
fn peercred_dn(uid: &str, gid: &str) -> String {
    format!("gidNumber={gid}+uidNumber={uid},cn=peercred,cn=external,cn=auth")
}
/// The ACL, added to the fixture's in (f), that lets the postfix user (and nobody else new) read ou=hidden over
/// ldapi; everyone else falls through to the fixture's rules (ou=hidden: cn=admin only).
fn peercred_acl(dn: &str) -> String {
    format!(r#"to dn.subtree="ou=hidden,dc=example,dc=com" by dn.exact="{dn}" read by * break"#)
}

fn map_text() -> String {
    format!(
        "# written by tests/systemd_e2e.rs\n\
         server_host = ldap://127.0.0.1:389/\n\
         search_base = dc=example,dc=com\n\
         query_filter = (mail=%s)\n\
         result_attribute = mail\n\
         bind = yes\n\
         bind_dn = {SERVICE_DN}\n\
         bind_pw = {SERVICE_PW}\n\
         timeout = {DEADLINE}\n\
         # read by ldap-health-check only (Postfix ignores parameters it does not know)\n\
         health_check_key = {CANARY}\n"
    )
}

fn peercred_map_text() -> String {
    format!(
        "# written by tests/systemd_e2e.rs: readable by its owner only, as some sites do\n\
         server_host = {}\n\
         search_base = ou=hidden,dc=example,dc=com\n\
         query_filter = (mail=%s)\n\
         result_attribute = mail\n\
         bind = sasl\n\
         sasl_mechs = EXTERNAL\n\
         timeout = {DEADLINE}\n\
         health_check_key = {SECRET}\n",
        ldapi_in()
    )
}

/// The fixture's ldapi socket as seen inside the sandbox, as a URL.
fn ldapi_in() -> String {
    format!("ldapi://{}", format!("{SLAPD_IN}/ldapi").replace('/', "%2F"))
}

// ------------------------------------------------------------------------------------------------ time

#[repr(C)]
struct Timespec {
    sec: std::os::raw::c_long,
    nsec: std::os::raw::c_long,
}
extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}
/// CLOCK_MONOTONIC in µs: the clock of systemd's `*TimestampMonotonic` properties (no time namespace).
fn mono_us() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC (1) always exists on Linux.
    let r = unsafe { clock_gettime(1, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.sec as u64 * 1_000_000 + ts.nsec as u64 / 1000
}
/// Seconds from `t0` (µs) to a systemd monotonic timestamp (µs); negative if before.
fn secs(t0: u64, ts: u64) -> f64 {
    (ts as f64 - t0 as f64) / 1e6
}

/// Polls `f` until it gives Some, at most `limit`.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        sleep(Duration::from_millis(50));
    }
}

fn dur(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ------------------------------------------------------------------------------------------------ the sandbox

impl Sandbox {
    /// A point in the journal: `@SECONDS.MICROS` (realtime) for `journalctl --since`. Not a cursor:
    /// journalctl 252 with a match (-u) and --after-cursor skips the first matching entry after the
    /// cursor when the cursor's own entry does not match.
    fn mark(&self) -> String {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        format!("@{}.{:06}", t.as_secs(), t.subsec_micros())
    }
    /// Journal lines (`-o cat`) since `mark` (this boot if empty) for `unit` (all if empty), with extra
    /// journalctl options.
    fn journal(&self, mark: &str, unit: &str, extra: &[&str]) -> Vec<String> {
        let since = format!("--since={mark}");
        let mut a = vec!["exec", "journalctl", "--no-pager", "-q", "-o", "cat", "-b"];
        if !mark.is_empty() {
            a.push(&since);
        }
        if !unit.is_empty() {
            a.extend(["-u", unit]);
        }
        a.extend_from_slice(extra);
        self.ok(&a).lines().map(str::to_string).collect()
    }
    /// CLOCK_MONOTONIC µs of the first "LDAP CRITICAL" line of this boot.
    fn mono_first_fail(&self) -> u64 {
        let lines = self.journal("", PROBE, &["-p", "err", "-o", "short-monotonic"]);
        let l = lines.iter().find(|l| l.contains("LDAP CRITICAL")).cloned().unwrap_or_default();
        // "[ 1195.135312] host ldap-health-check[142]: LDAP CRITICAL ..."
        let t = l.trim_start_matches('[').split(']').next().unwrap_or("").trim();
        (t.parse::<f64>().unwrap_or(0.0) * 1e6) as u64
    }
    /// How many times `unit` was started (the manager's "Starting ..." lines) since `mark`.
    fn starts(&self, cursor: &str, unit: &str) -> usize {
        self.journal(cursor, unit, &[]).iter().filter(|l| l.starts_with("Starting ")).count()
    }
    /// Everything the scenarios watch, in one round trip.
    fn snap(&self) -> Snap {
        let script = format!(
            "systemctl show -p Id -p ActiveState -p Result -p MainPID -p ExecMainStartTimestampMonotonic \
             -p ExecMainStatus -p InactiveExitTimestampMonotonic -p InactiveEnterTimestampMonotonic \
             -p ActiveEnterTimestampMonotonic {DAEMON} {PROBE} {STOP_LATCH} {START_LATCH} {PATH_UNIT} {TIMER}; \
             echo; echo Id=net; echo listen=$(ss -Hltn 'sport = :25' | wc -l)"
        );
        let out = self.sh(&script, &[]);
        let mut units: HashMap<String, HashMap<String, String>> = HashMap::new();
        for block in out.split("\n\n") {
            let kv: HashMap<String, String> =
                block.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
            if let Some(id) = kv.get("Id").cloned() {
                units.insert(id, kv);
            }
        }
        Snap { units, at: mono_us() }
    }
}

/// One `systemctl show` of the watched units plus whether anything listens on 127.0.0.1:25.
struct Snap {
    units: HashMap<String, HashMap<String, String>>,
    /// mono_us() when it was taken (after the round trip)
    at: u64,
}

impl Snap {
    fn get(&self, unit: &str, prop: &str) -> &str {
        self.units.get(unit).and_then(|u| u.get(prop)).map(String::as_str).unwrap_or("")
    }
    fn mono(&self, unit: &str, prop: &str) -> u64 {
        self.get(unit, prop).parse().unwrap_or(0)
    }
    fn active(&self, unit: &str) -> bool {
        self.get(unit, "ActiveState") == "active"
    }
    /// Down: neither active nor on its way up or down.
    fn down(&self, unit: &str) -> bool {
        matches!(self.get(unit, "ActiveState"), "inactive" | "failed")
    }
    fn listening(&self) -> bool {
        self.get("net", "listen").trim() != "0"
    }
    fn probe_started(&self) -> u64 {
        self.mono(PROBE, "ExecMainStartTimestampMonotonic")
    }
}

/// Postfix's own start or stop (configure-instance.sh, postmulti), allowed on top of the bound for the
/// decision (the latch starting): 0.1 s to stop and 0.7-1.3 s to start here, 3.2 s seen on a loaded machine.
const POSTFIX_OWN: f64 = 5.0;

/// Waits until the daemon is down after the event at `t0`; reports and checks the times: the stop latch
/// within `bound`, the daemon down within `bound` + [`POSTFIX_OWN`].
fn await_stop(sb: &Sandbox, rep: &mut Report, what: &str, t0: u64, bound: f64) -> Snap {
    let s = poll(dur(bound + POSTFIX_OWN + 10.0), || Some(sb.snap()).filter(|s| s.down(DAEMON) && !s.listening()))
        .unwrap_or_else(|| panic!("{what}: postfix not stopped"));
    let latch = secs(t0, s.mono(STOP_LATCH, "InactiveExitTimestampMonotonic"));
    let down = secs(t0, s.mono(DAEMON, "InactiveEnterTimestampMonotonic"));
    rep.add(format!("{what} -> stop latch at +{latch:.2} s, {DAEMON} stopped at +{down:.2} s (bound {bound:.0} s)"));
    assert!((0.0..=bound).contains(&latch), "{what}: stop latch at {latch:.2} s, bound {bound} s");
    assert!(down <= bound + POSTFIX_OWN, "{what}: {DAEMON} stopped after {down:.2} s");
    s
}

/// Waits until the daemon runs and listens on :25 after the event at `t0`; the start latch within
/// `bound`, the daemon active within `bound` + [`POSTFIX_OWN`].
fn await_start(sb: &Sandbox, rep: &mut Report, what: &str, t0: u64, bound: f64) -> Snap {
    // the start latch turns active once its `systemctl start` has returned, a moment after the daemon
    let s = poll(dur(bound + POSTFIX_OWN + 10.0), || {
        Some(sb.snap()).filter(|s| s.active(DAEMON) && s.listening() && s.active(START_LATCH) && s.down(STOP_LATCH))
    })
    .unwrap_or_else(|| panic!("{what}: postfix not started (or the latches not switched)"));
    let latch = secs(t0, s.mono(START_LATCH, "InactiveExitTimestampMonotonic"));
    let up = secs(t0, s.mono(DAEMON, "ActiveEnterTimestampMonotonic"));
    rep.add(format!(
        "{what} -> start latch at +{latch:.2} s, {DAEMON} active at +{up:.2} s, :25 seen listening at +{:.2} s (bound {bound:.0} s)",
        secs(t0, s.at)
    ));
    assert!((0.0..=bound).contains(&latch), "{what}: start latch at {latch:.2} s, bound {bound} s");
    assert!(up <= bound + POSTFIX_OWN, "{what}: {DAEMON} active after {up:.2} s");
    s
}

/// Measured figures, printed as they come and again at the end.
struct Report(Vec<String>);
impl Report {
    fn add(&mut self, line: String) {
        eprintln!("e2e: {line}");
        self.0.push(line);
    }
}

// ------------------------------------------------------------------------------------------------ SMTP

/// One SMTP dialogue with the sandbox's Postfix, up to `RCPT TO`.
#[derive(Clone, Debug)]
struct Rcpt {
    /// mono_us() just before the connect
    at: u64,
    /// mono_us() just before `RCPT TO` was written (`at` if it never was)
    sent: u64,
    /// mono_us() when it ended (the reply to RCPT TO, or the failure)
    end: u64,
    /// "refused" (ECONNREFUSED), "error" (anything else that went wrong: EOF, reset, timeout), or the reply
    /// code of the first reply that was not 2xx, else of RCPT TO ("250", "550", "450", "421"...)
    code: String,
    /// the last line of that reply, or the error
    text: String,
}

impl Rcpt {
    fn is_5xx(&self) -> bool {
        self.code.starts_with('5')
    }
}

/// One (possibly multi-line) SMTP reply: its code and last line.
fn smtp_reply(r: &mut impl BufRead) -> Result<(String, String), String> {
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return Err("connection closed".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        let l = line.trim_end();
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return Ok((l.get(..3).unwrap_or(l).to_string(), l.to_string()));
        }
    }
}

/// Greeting, EHLO, `MAIL FROM:<>`, `RCPT TO:<rcpt>`, QUIT with 127.0.0.1:25 of this thread's network
/// namespace. Bounded: 5 s to connect, 10 s per reply.
fn smtp_rcpt(rcpt: &str) -> Rcpt {
    let at = mono_us();
    let mut sent = at;
    let done = |code: &str, text: String, sent: u64| Rcpt { at, sent, end: mono_us(), code: code.to_string(), text };
    let s = match TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], 25)), Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return done("refused", e.to_string(), sent),
        Err(e) => return done("error", format!("connect: {e}"), sent),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(e) => return done("error", format!("dup: {e}"), sent),
    };
    let mut r = BufReader::new(s);
    let rcpt_to = format!("RCPT TO:<{rcpt}>");
    for cmd in ["", "EHLO e2e.test", "MAIL FROM:<>", &rcpt_to] {
        if !cmd.is_empty() {
            if cmd == rcpt_to {
                sent = mono_us();
            }
            if let Err(e) = w.write_all(format!("{cmd}\r\n").as_bytes()) {
                return done("error", format!("{cmd}: {e}"), sent);
            }
        }
        let stage = if cmd.is_empty() { "greeting" } else { cmd };
        match smtp_reply(&mut r) {
            Err(e) => return done("error", format!("{stage}: {e}"), sent),
            Ok((code, text)) if cmd == rcpt_to => {
                let _ = w.write_all(b"QUIT\r\n");
                return done(&code, text, sent);
            }
            Ok((code, text)) if !code.starts_with('2') => return done(&code, format!("{stage}: {text}"), sent),
            Ok(_) => {}
        }
    }
    unreachable!("the loop returns at RCPT TO")
}

extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}

/// Moves the calling thread (only it) into the network namespace of host pid `pid`.
fn enter_netns(pid: &str) {
    let f = fs::File::open(format!("/proc/{pid}/ns/net")).unwrap_or_else(|e| panic!("/proc/{pid}/ns/net: {e}"));
    const CLONE_NEWNET: i32 = 0x4000_0000;
    // SAFETY: setns(2) on a valid fd; a network namespace may be changed per thread.
    let r = unsafe { setns(f.as_raw_fd(), CLONE_NEWNET) };
    assert_eq!(r, 0, "setns(/proc/{pid}/ns/net): {}", std::io::Error::last_os_error());
}

/// SMTP dialogues for `rcpts`, one after the other, from a thread in the sandbox's network namespace.
fn smtp_in(sb: &Sandbox, rcpts: &[&str]) -> Vec<Rcpt> {
    let pid = sb.pid1();
    let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
    std::thread::spawn(move || {
        enter_netns(&pid);
        rcpts.iter().map(|r| smtp_rcpt(r)).collect()
    })
    .join()
    .expect("the SMTP thread panicked")
}

/// `RCPT TO:<rcpt>` every `gap`, from a thread in the sandbox's network namespace, until finished or
/// dropped, at most `limit`.
struct RcptPoller {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Rcpt>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RcptPoller {
    fn start(sb: &Sandbox, rcpt: &str, gap: Duration, limit: Duration) -> RcptPoller {
        let (pid, rcpt) = (sb.pid1(), rcpt.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (st, se) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            enter_netns(&pid);
            let end = Instant::now() + limit;
            while !st.load(Ordering::Relaxed) && Instant::now() < end {
                let r = smtp_rcpt(&rcpt);
                se.lock().unwrap().push(r);
                sleep(gap);
            }
        });
        RcptPoller { stop, seen, thread: Some(thread) }
    }
    fn seen(&self) -> Vec<Rcpt> {
        self.seen.lock().unwrap().clone()
    }
    /// Stops the thread; everything it saw.
    fn finish(mut self) -> Vec<Rcpt> {
        self.halt();
        self.seen()
    }
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join(); // bounded: one dialogue (<= 5 s + 4 x 10 s) and a nap
        }
    }
}

impl Drop for RcptPoller {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Counts of the reply codes, e.g. "12 x 250, 3 x 550, 20 x refused".
fn tally(rs: &[&Rcpt]) -> String {
    let mut n: Vec<(String, usize)> = Vec::new();
    for r in rs {
        match n.iter_mut().find(|(c, _)| *c == r.code) {
            Some((_, k)) => *k += 1,
            None => n.push((r.code.clone(), 1)),
        }
    }
    if n.is_empty() {
        return "none".into();
    }
    n.iter().map(|(c, k)| format!("{k} x {c}")).collect::<Vec<_>>().join(", ")
}

// ------------------------------------------------------------------------------------------------ (g)

/// Runs an OpenLDAP tool as root over the fixture's ldapi socket (a file: reachable from the host, though
/// slapd runs in the sandbox's network namespace), panicking unless it exits 0.
fn ldapi_tool(slapd_dir: &Path, prog: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let env = fs::read_to_string(slapd_dir.join("env")).expect("slapd env");
    let url = env.lines().find_map(|l| l.strip_prefix("LDAPI_URL=")).expect("LDAPI_URL in the slapd env").to_string();
    let mut c = Command::new(prog);
    c.env("LDAPCONF", "/dev/null").env("LDAPRC", "/nonexistent-ldaprc").args(["-Q", "-Y", "EXTERNAL", "-H", &url]);
    let r = run_command(c.args(args), stdin.map(str::as_bytes), Duration::from_secs(30));
    assert!(r.success(), "{prog} {args:?} over ldapi: code {}\n{}{}", r.code, r.stdout, r.stderr);
    r
}

/// The olcAccess values of the data (olcDatabase={1}mdb,cn=config).
fn data_acls(slapd_dir: &Path) -> Vec<String> {
    let args = ["-LLL", "-o", "ldif-wrap=no", "-s", "base", "-b", "olcDatabase={1}mdb,cn=config", "olcAccess"];
    let out = ldapi_tool(slapd_dir, "ldapsearch", &args, None).stdout;
    out.lines().filter(|l| l.starts_with("olcAccess:")).map(str::to_string).collect()
}

/// The dialogues of [`emptied_round`] answered between the change and the stop, and when the change was in place.
struct Window {
    rcpts: Vec<Rcpt>,
    /// mono_us() once ldapmodify had returned: an RCPT sent after it meets the emptied directory
    changed: u64,
}

/// (g), one round: with `RCPT TO:<CANARY>` every `gap` throughout, the entries under ou=people are hidden
/// from the service account (slapd stays up, the bind and the base entry still work); Postfix must be
/// stopped within interval + deadline + 2 s (+ its own stop) and refuse connections from then on;
/// `while_stopped` runs then; the entries come back: started within interval + 2 s, 250 again. Every
/// dialogue is classified by when it ran; the dialogues of the window between the change and the stop are
/// reported and returned (its 5xx are the window the README explains), any 5xx outside it fails the test.
fn emptied_round(
    sb: &Sandbox,
    rep: &mut Report,
    slapd_dir: &Path,
    what: &str,
    gap: Duration,
    while_stopped: &mut dyn FnMut(&mut Report),
) -> Window {
    let acls = data_acls(slapd_dir);
    assert!(!acls.iter().any(|a| a.contains("ou=people")), "{what}: ou=people already hidden: {acls:#?}");
    let poller = RcptPoller::start(sb, CANARY, gap, dur(120.0));
    let n250 = |p: &RcptPoller| p.seen().iter().filter(|r| r.code == "250").count();
    poll(dur(15.0), || Some(()).filter(|_| n250(&poller) >= 3))
        .unwrap_or_else(|| panic!("{what}: RCPT TO:<{CANARY}> not accepted while healthy: {:?}", poller.seen()));

    let c = sb.mark();
    let t0 = mono_us();
    let hide = format!(
        "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nadd: olcAccess\nolcAccess: {{1}}{HIDE_PEOPLE_ACL}\n-\n"
    );
    ldapi_tool(slapd_dir, "ldapmodify", &[], Some(&hide));
    let changed = mono_us();
    let s = await_stop(sb, rep, &format!("{what} ou=people emptied (ACL)"), t0, INTERVAL + DEADLINE + SLACK);
    let stopped = s.mono(DAEMON, "InactiveEnterTimestampMonotonic");
    // from then on: watch the refused connections for a while (at least 1 s and 5 dialogues)
    poll(dur(15.0), || {
        let n = poller.seen().iter().filter(|r| r.at >= stopped).count();
        Some(()).filter(|_| n >= 5 && secs(stopped, mono_us()) >= 1.0)
    })
    .unwrap_or_else(|| panic!("{what}: the SMTP poller stalled after the stop"));
    let crit = sb.journal(&c, PROBE, &["-p", "err"]);
    // The presence check sees the emptied directory before any canary (issue 13): its reason is logged.
    let line = crit.iter().find(|l| l.contains("no entry under")).cloned().unwrap_or_default();
    assert!(
        line.starts_with("LDAP CRITICAL") && line.contains("Postfix would answer 550 User unknown to every recipient"),
        "{what}: the check's journal does not say the directory answers nothing: {crit:#?}"
    );
    rep.add(format!("{what} the check in the journal: {:?}", line.split('|').next().unwrap_or("")));
    while_stopped(rep);

    let t1 = mono_us();
    let show = "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\ndelete: olcAccess\nolcAccess: {1}\n-\n";
    ldapi_tool(slapd_dir, "ldapmodify", &[], Some(show));
    assert_eq!(data_acls(slapd_dir), acls, "{what}: the ACLs are not restored");
    let s = await_start(sb, rep, &format!("{what} ou=people visible again"), t1, INTERVAL + SLACK);
    let started = s.mono(DAEMON, "ActiveEnterTimestampMonotonic");
    poll(dur(15.0), || Some(()).filter(|_| poller.seen().iter().any(|r| r.at >= started && r.code == "250")))
        .unwrap_or_else(|| panic!("{what}: RCPT TO:<{CANARY}> not accepted after the restore: {:?}", poller.seen()));
    let seen = poller.finish();

    // every dialogue by when it ran: answered before the change, in the window, after the stop, after the restore
    let before: Vec<&Rcpt> = seen.iter().filter(|r| r.end < t0).collect();
    let window: Vec<&Rcpt> = seen.iter().filter(|r| r.end >= t0 && r.at < stopped).collect();
    let down: Vec<&Rcpt> = seen.iter().filter(|r| r.at >= stopped && r.at < t1).collect();
    let after: Vec<&Rcpt> = seen.iter().filter(|r| r.at >= t1).collect();
    let w5: Vec<Rcpt> = window.iter().filter(|r| r.is_5xx()).map(|r| (*r).clone()).collect();
    let fives = match (w5.first(), w5.last()) {
        (Some(a), Some(z)) => format!(
            "; 5xx from +{:.2} s to +{:.2} s ({:.2} s before the stop), e.g. {:?}",
            secs(t0, a.at),
            secs(t0, z.at),
            secs(z.at, stopped),
            a.text
        ),
        _ => String::new(),
    };
    let first_refused = down.first().map(|r| secs(t0, r.at)).unwrap_or(f64::NAN);
    rep.add(format!(
        "{what} RCPT TO:<{CANARY}> every {} ms, {} dialogues: before the change {}; window from the change \
         (ACL in place at +{:.2} s) to the stop at +{:.2} s: {}{fives}; after the stop (first at +{first_refused:.2} s, \
         until the restore at +{:.2} s): {}; after the restore: {}",
        gap.as_millis(),
        seen.len(),
        tally(&before),
        secs(t0, changed),
        secs(t0, stopped),
        tally(&window),
        secs(t0, t1),
        tally(&down),
        tally(&after)
    ));
    assert!(before.iter().all(|r| r.code == "250"), "{what}: not 250 while healthy: {before:#?}");
    assert!(down.len() >= 5, "{what}: only {} dialogues after the stop", down.len());
    assert!(
        down.iter().all(|r| r.code == "refused"),
        "{what}: after the stop, not a refused connection: {:#?}",
        down.iter().filter(|r| r.code != "refused").collect::<Vec<_>>()
    );
    assert!(
        after.iter().all(|r| !r.is_5xx()),
        "{what}: a 5xx after the restore: {:#?}",
        after.iter().filter(|r| r.is_5xx()).collect::<Vec<_>>()
    );
    Window { rcpts: window.into_iter().cloned().collect(), changed }
}

// ------------------------------------------------------------------------------------------------ (q)

const POLICY_SOCKET: &str = "ldap-health-check-policy.socket";
const POLICY_TEMPLATE: &str = "ldap-health-check-policy@.service";
/// The instances of the policy service, one per smtpd process (a pattern for `journalctl -u`, `systemctl`).
const POLICY_INSTANCES: &str = "ldap-health-check-policy@*.service";
const POLICY_DROPIN: &str = "/etc/systemd/system/ldap-health-check-policy@.service.d/test.conf";
/// The line of main.cf the README gives.
const POLICY_RESTRICTION: &str =
    "smtpd_recipient_restrictions = check_policy_service { unix:private/ldap-health-check, default_action=DUNNO }";
/// The `--policy-cache` of (q'), seconds (the default is 0).
const POLICY_CACHE: f64 = 1.0;

/// (q): the policy service installed as the README says (the socket enabled, one line in main.cf, Postfix
/// reloaded); healthy, a valid recipient gets 250 and an unknown one still 550. Then the directory emptied
/// as in (g), RCPT TO:<CANARY> every 20 ms: with no cache (the default), no RCPT sent once the change was in place
/// gets a 5xx (the policy's 450 instead), and the deferrals are in the journal with their reason (without the
/// bind password); with `--policy-cache 1s` (a drop-in), a 5xx only within the cache's second after the
/// change. Then the line is removed and the socket disabled again.
fn policy_rounds(sb: &Sandbox, rep: &mut Report, slapd_dir: &Path, edit_main_cf: &dyn Fn(&str)) {
    sb.ctl(&["enable", "--now", POLICY_SOCKET]);
    edit_main_cf(&format!("postconf -e '{POLICY_RESTRICTION}' && postfix reload 2>/dev/null"));
    let healthy = poll(dur(15.0), || Some(smtp_in(sb, &[CANARY, UNKNOWN_RCPT])).filter(|r| r[0].code == "250"))
        .unwrap_or_else(|| panic!("(q) RCPT TO:<{CANARY}> not accepted with the policy: {:?}", smtp_in(sb, &[CANARY])));
    let instances = sb.ctl(&["list-units", "--no-legend", "--plain", POLICY_INSTANCES]);
    rep.add(format!(
        "(q) policy service on (socket enabled, `{POLICY_RESTRICTION}`, no cache: the default), healthy: RCPT TO:<{CANARY}> \
         -> {:?}; RCPT TO:<{UNKNOWN_RCPT}> -> {:?}; policy processes: {}",
        healthy[0].text,
        healthy[1].text,
        instances.lines().count()
    ));
    assert!(
        healthy[1].code == "550" && healthy[1].text.contains("User unknown"),
        "(q) an unknown recipient while healthy must still get 550: {:?}",
        healthy[1]
    );
    assert!(instances.lines().count() >= 1, "(q) smtpd did not connect to the policy socket: {instances:?}");

    let c = sb.mark();
    let w = emptied_round(sb, rep, slapd_dir, "(q)", Duration::from_millis(20), &mut |_| {});
    let after_change = |r: &&Rcpt| r.sent >= w.changed;
    let late5: Vec<&Rcpt> = w.rcpts.iter().filter(after_change).filter(|r| r.is_5xx()).collect();
    let race5: Vec<&Rcpt> = w.rcpts.iter().filter(|r| !after_change(r) && r.is_5xx()).collect();
    let deferred = w.rcpts.iter().filter(after_change).filter(|r| r.code == "450" && r.text.contains("4.3.0")).count();
    let logged = sb.journal(&c, POLICY_INSTANCES, &[]);
    let deferrals: Vec<&String> = logged.iter().filter(|l| l.contains("DEFER_IF_REJECT")).collect();
    rep.add(format!(
        "(q) no cache: of the RCPTs sent after the change was in place, {deferred} got the policy's 450 4.3.0 \
         and {} a 5xx; sent before it and answered after: {} 5xx; {} deferrals in the journal, e.g. {:?}",
        late5.len(),
        race5.len(),
        deferrals.len(),
        deferrals.first().map(|l| l.as_str()).unwrap_or("")
    ));
    assert!(late5.is_empty(), "(q) a valid recipient got a 5xx with the policy (no cache): {late5:#?}");
    // the policy asks before Postfix looks up: an RCPT in flight when the ACL changes may still meet the old
    // answer for the policy and the new one for Postfix (a race of ~1 ms, README); one at most
    assert!(race5.len() <= 1, "(q) 5xx for RCPTs in flight at the change: {race5:#?}");
    assert!(deferred >= 1, "(q) no RCPT deferred by the policy in the window: {:#?}", w.rcpts);
    assert!(!deferrals.is_empty(), "(q) no deferral in the journal: {logged:#?}");
    assert!(!logged.iter().any(|l| l.contains(SERVICE_PW)), "(q) the bind password in the journal: {logged:#?}");

    // with a cache: new smtpd processes (reload), so new policy processes with the drop-in
    let dropin_dir = Path::new(POLICY_DROPIN).parent().unwrap().to_string_lossy().into_owned();
    sb.sh(
        "mkdir -p \"$1\" && printf '[Service]\\nEnvironment=\"LDAP_HEALTH_CHECK_POLICY_OPTIONS=--policy-cache 1s\"\\n' > \"$2\"",
        &[&dropin_dir, POLICY_DROPIN],
    );
    sb.ctl(&["daemon-reload"]);
    edit_main_cf("postfix reload 2>/dev/null; touch /etc/postfix/main.cf");
    let w = emptied_round(sb, rep, slapd_dir, "(q')", Duration::from_millis(20), &mut |_| {});
    let late5: Vec<&Rcpt> = w.rcpts.iter().filter(|r| r.sent >= w.changed && r.is_5xx()).collect();
    let last = late5.iter().map(|r| secs(w.changed, r.sent)).fold(0.0, f64::max);
    rep.add(format!(
        "(q') --policy-cache {POLICY_CACHE}s: {} 5xx for RCPTs sent after the change, the last sent \
         {last:.2} s after it (the cache's window: a process trusts the directory up to {POLICY_CACHE} s after it \
         last looked)",
        late5.len()
    ));
    assert!(last <= POLICY_CACHE + 0.1, "(q') a 5xx {last:.2} s after the change: {late5:#?}");

    edit_main_cf("postconf -X smtpd_recipient_restrictions && postfix reload 2>/dev/null");
    sb.ctl(&["disable", "--now", POLICY_SOCKET]);
    sb.sh("rm -f \"$1\"", &[POLICY_DROPIN]);
    sb.ctl(&["daemon-reload"]);
    let left = sb.sh("ls /var/spool/postfix/private/ldap-health-check 2>&1 || :", &[]);
    assert!(left.contains("No such file"), "(q) the policy socket left behind: {left}");
}

// ------------------------------------------------------------------------------------------------ preconditions

/// Not a skip: everything else the test needs is installed by `make test-deps`.
fn require_tools() {
    for p in [
        "/lib/systemd/systemd",
        "/usr/sbin/postfix",
        "/usr/lib/postfix/postfix-ldap.so",
        "/usr/sbin/slapd",
        "/usr/bin/ldapmodify",
        "/usr/bin/make",
        "/usr/bin/nsenter",
        "/usr/bin/script",
    ] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: run `make test-deps` (Debian packages systemd postfix postfix-ldap slapd ldap-utils \
             make util-linux)"
        );
    }
}

fn loud(msg: &str) {
    // straight to fd 2: libtest captures eprintln! of passing tests
    let _ = writeln!(std::io::stderr(), "\n{}\n!! {msg}\n{}\n", "!".repeat(100), "!".repeat(100));
}

/// The SANDBOX_SETUP hook: install, configure, enable, all before systemd starts.
fn setup_script(bin: &Path, slapd_dir: &Path) -> String {
    let repo = repo_root();
    let (map, peercred_map) = (map_text(), peercred_map_text());
    format!(
        r#"set -eu
R=$1
# what an admin does: make install (here into the new root, with the test build), then a map readable by
# the postfix group only and one readable by the postfix user only, and `systemctl enable ldap-health-check.timer`
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C {repo} install DESTDIR="$R" NOBUILD=1 INSTALL_BIN={bin}
cat > "$R/etc/postfix/main.cf" <<'EOF'
# minimal, loopback only (tests/systemd_e2e.rs). No mynetworks on purpose: `postconf -x`, run by the check
# (discovery), then computes it from the interfaces, over netlink, inside the hardened unit
compatibility_level = 3.6
myhostname = sandbox.localdomain
mydestination = $myhostname, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
readme_directory = no
# recipients of example.com are validated through the LDAP map (an unknown one gets 550 User unknown);
# nothing is ever delivered (no DATA), and it would be discarded. The only place that names the map: the
# units find it here (discovery)
virtual_mailbox_domains = example.com
virtual_mailbox_maps = ldap:{MAP}
virtual_transport = discard
# the ldapi:// + SASL EXTERNAL map, through proxymap (user postfix); used on messages only (none is sent)
sender_canonical_maps = proxy:ldap:{PEERCRED_MAP}
EOF
umask 077
printf '%s' {map} > "$R{MAP}"
chown root:postfix "$R{MAP}"
chmod 0640 "$R{MAP}"
printf '%s' {peercred_map} > "$R{PEERCRED_MAP}"
chown postfix:postfix "$R{PEERCRED_MAP}"
chmod 0600 "$R{PEERCRED_MAP}"
umask 022
# the fixture's directory (empty now; slapd.sh starts in it later, on the host), so its ldapi socket
mkdir -p "$R{SLAPD_IN}"
mount --bind {slapd_dir} "$R{SLAPD_IN}"
mount -o remount,bind,ro "$R{SLAPD_IN}"
E=$R/etc/systemd/system
mkdir -p "$E/ldap-health-check.timer.d" "$E/postfix.service.d" "$E/postfix@.service.d" "$E/basic.target.wants"
# the test interval (the README's recipe): empty assignments first, each On*Sec= line adds a trigger
cat > "$E/ldap-health-check.timer.d/test.conf" <<'EOF'
[Timer]
OnBootSec=
OnBootSec=1s
OnUnitActiveSec=
OnUnitActiveSec={INTERVAL}s
AccuracySec=100ms
EOF
# test only: the scenarios start and stop Postfix more often than real life would
for u in postfix.service postfix@.service; do printf '[Unit]\nStartLimitIntervalSec=0\n' > "$E/$u.d/test.conf"; done
systemctl --root="$R" enable ldap-health-check.timer
# the sandbox boots basic.target: Postfix is wanted there, not by multi-user.target
ln -sf /lib/systemd/system/postfix.service "$E/basic.target.wants/postfix.service"
# for the live make uninstall / make install at the end
install -D -m 0755 {bin} "$R{BIN_IN}"
mkdir -p "$R{SRC_IN}"
mount --bind {repo} "$R{SRC_IN}"
mount -o remount,bind,ro "$R{SRC_IN}"
"#,
        repo = shq(&repo.to_string_lossy()),
        bin = shq(&bin.to_string_lossy()),
        map = shq(&map),
        peercred_map = shq(&peercred_map),
        slapd_dir = shq(&slapd_dir.to_string_lossy()),
    )
}

// ------------------------------------------------------------------------------------------------ the test

#[test]
fn units_under_a_real_systemd() {
    if let Some(why) = namespaces_unavailable() {
        loud(&format!(
            "SKIPPED systemd_e2e::units_under_a_real_systemd: cannot create namespaces here: {why}. \
             It needs root and unshare(2) (CI runs it as root)."
        ));
        return;
    }
    require_tools();
    let t_all = Instant::now();
    let mut rep = Report(Vec::new());
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ldap-health-check"));
    let name = format!("lhc-e2e-{}", std::process::id());
    let slapd_dir = tmp_root().join(format!("{name}-slapd"));
    let _ = fs::remove_dir_all(&slapd_dir);
    {
        // empty, world-traversable: bind-mounted into the sandbox at SLAPD_IN by the setup hook
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir(&slapd_dir).expect("create the slapd fixture directory");
        fs::set_permissions(&slapd_dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let slapd_sh = fixture_script();
    let on_stop =
        format!("{} stop {} >/dev/null 2>&1 || :", shq(&slapd_sh.to_string_lossy()), shq(&slapd_dir.to_string_lossy()));
    let setup_file = tmp_root().join(format!("{name}.setup.sh"));
    fs::write(&setup_file, setup_script(&bin, &slapd_dir)).unwrap();

    // ---------------------------------------------------------------- boot, with LDAP down
    let t_boot = mono_us();
    let mut sb = Sandbox::boot(&name, &format!("sh -e {} \"$1\"", shq(&setup_file.to_string_lossy())), &on_stop);
    let _ = fs::remove_file(&setup_file);
    let boot_done = mono_us();
    rep.add(format!(
        "boot: systemd {} up in {:.2} s (PID 1 = host pid {})",
        sb.ok(&["exec", "systemctl", "--version"]).split_whitespace().nth(1).unwrap_or("?"),
        secs(t_boot, boot_done),
        sb.pid1()
    ));
    let slapd = |args: &[&str]| -> Run {
        // slapd.sh in the sandbox's network namespace (host pids and files)
        let mut c = Command::new(harness());
        c.env("SANDBOX_NAME", &name).env("SANDBOX_STATE", tmp_root().join(&name)).arg("net").arg(&slapd_sh).args(args);
        let r = run_command(&mut c, None, Duration::from_secs(90));
        assert!(r.success(), "slapd.sh {args:?}: code {}\n{}{}", r.code, r.stdout, r.stderr);
        r
    };
    let slapd_pid = || -> String {
        let env = fs::read_to_string(slapd_dir.join("env")).expect("slapd env");
        env.lines().find_map(|l| l.strip_prefix("SLAPD_PID=")).expect("SLAPD_PID").to_string()
    };
    let signal = |sig: &str, pid: &str| {
        let r = run_command(Command::new("kill").args([sig, pid]), None, Duration::from_secs(10));
        assert!(r.success(), "kill {sig} {pid}: {}", r.stderr);
    };

    // ---------------------------------------------------------------- (1) verify, security
    let units: Vec<String> = [PROBE, TIMER, PATH_UNIT, STOP_LATCH, START_LATCH, POLICY_SOCKET, POLICY_TEMPLATE]
        .iter()
        .map(|u| format!("{UNIT_DIR}/{u}"))
        .collect();
    // with the man page that `make install` installs: Documentation=man:ldap-health-check(8) is checked too
    let mut args = vec!["exec", "systemd-analyze", "verify"];
    args.extend(units.iter().map(String::as_str));
    let r = sb.run(&args);
    // verify exits 0 on "Unknown key" and similar warnings: demand silence
    assert!(
        r.success() && r.stdout.trim().is_empty() && r.stderr.trim().is_empty(),
        "systemd-analyze verify: code {}\n{}{}",
        r.code,
        r.stdout,
        r.stderr
    );
    rep.add(format!(
        "(1) systemd-analyze verify (man pages included) on the {} installed units: exit 0, no output",
        units.len()
    ));
    let exposure = |out: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no exposure in {out}"));
        line.split(": ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .expect("exposure number")
    };
    let offline = exposure(&sb.ok(&["exec", "systemd-analyze", "security", "--offline=true", "--no-pager", &units[0]]));
    let live = exposure(&sb.ok(&["exec", "systemd-analyze", "security", "--no-pager", PROBE]));
    rep.add(format!(
        "(1) exposure of {PROBE}: {offline:.1} offline, {live:.1} against the running manager (must be <= 1.5)"
    ));
    assert!(offline <= 1.5 && live <= 1.5, "exposure {offline} / {live} > 1.5");
    assert_eq!(sb.prop(PROBE, "StartLimitIntervalUSec"), "0", "the shipped probe unit has no start limit");
    assert_eq!(sb.prop(PROBE, "TimeoutStartUSec"), "2min 30s");
    let perm = sb.sh(&format!("stat -c '%a %U:%G' {MAP} {PEERCRED_MAP}"), &[]);
    assert_eq!(perm.trim(), "640 root:postfix\n600 postfix:postfix");
    // Postfix's own identity, as its daemons have (the directory sees it over ldapi: proved in (f))
    let ident = sb.ctl(&["show", "-p", "User", "-p", "Group", "-p", "DynamicUser", "-p", "PrivateUsers", PROBE]);
    let ident: Vec<&str> = ident.lines().collect();
    rep.add(format!("(1) {PROBE}: {}; maps {MAP} and {PEERCRED_MAP}: {:?}", ident.join(" "), perm.trim()));
    assert_eq!(ident, ["User=postfix", "Group=postfix", "DynamicUser=no", "PrivateUsers=yes"]);
    // discovery: neither the unit nor an env file names the map; main.cf does
    let (environment, env_file) = (sb.prop(PROBE, "Environment"), sb.sh(&format!("ls {ENV_FILE} 2>&1 || :"), &[]));
    rep.add(format!(
        "(1) {PROBE}: Environment={environment:?}; {ENV_FILE}: {:?}; the map is named only by main.cf",
        env_file.trim()
    ));
    assert!(!environment.contains("LDAP_HEALTH_CHECK_CONFFILE"), "the unit names the maps: {environment}");
    assert!(env_file.contains("No such file"), "{ENV_FILE} exists at boot: {env_file}");

    // ---------------------------------------------------------------- (f) boot with LDAP down
    // Watch for 3 failed checks (and at least 3 intervals after the boot): the daemon must never have
    // left "inactive", and nothing may listen on :25.
    let mut looks = 0;
    let fails = poll(dur(3.0 * INTERVAL + DEADLINE + 3.0 * SLACK + 10.0), || {
        let s = sb.snap();
        looks += 1;
        assert!(!s.listening(), "(f) something listens on 127.0.0.1:25 while LDAP is down at boot");
        assert_eq!(
            s.mono(DAEMON, "InactiveExitTimestampMonotonic"),
            0,
            "(f) {DAEMON} started while LDAP is down at boot"
        );
        let crit = sb.journal("", PROBE, &["-p", "err"]).iter().filter(|l| l.contains("LDAP CRITICAL")).count();
        (crit >= 3 && secs(t_boot, s.at) >= 3.0 * INTERVAL).then_some(crit)
    })
    .expect("(f) fewer than 3 failed checks after the boot");
    let s = sb.snap();
    assert!(s.active(STOP_LATCH), "(f) the stop latch is not active after the boot");
    assert!(!s.active(START_LATCH));
    let crit_lines = sb.journal("", PROBE, &["-p", "err"]);
    assert!(
        crit_lines.iter().all(|l| !l.contains("cannot open") && !l.contains("ermission")),
        "(f) the hardened unit could not read the 0640 root:postfix or the 0600 postfix:postfix map: {crit_lines:?}"
    );
    // the maps came from main.cf (postconf, run by the check inside the hardened unit): every failure names
    // both, each with its server (so both were read and parsed)
    let map_name = MAP.rsplit('/').next().unwrap();
    let peercred_name = PEERCRED_MAP.rsplit('/').next().unwrap();
    let verdicts: Vec<&String> = crit_lines.iter().filter(|l| l.starts_with("LDAP ")).collect();
    assert!(
        !verdicts.is_empty()
            && verdicts.iter().all(|l| {
                l.starts_with("LDAP CRITICAL - ")
                    && l.contains(&format!("{map_name}: ldap://127.0.0.1:389: "))
                    && l.contains(&format!("{peercred_name}: ldapi://"))
            }),
        "(f) the check did not find both maps through main.cf: {crit_lines:?}"
    );
    rep.add(format!("(f) discovery in the hardened unit, journal (err): {:?}", verdicts[0]));
    let pid1_start: u64 = sb.ctl(&["show", "-P", "UserspaceTimestampMonotonic"]).trim().parse().unwrap_or(0);
    rep.add(format!(
        "(f) boot with LDAP down: first check failed at +{:.2} s after PID 1 started, stop latch ran once (at +{:.2} s, \
         {} run(s)); {fails} failed checks in {:.1} s, {looks} looks: {DAEMON} never left 'inactive', nothing on :25",
        secs(pid1_start, sb.mono_first_fail()),
        secs(pid1_start, s.mono(STOP_LATCH, "InactiveExitTimestampMonotonic")),
        sb.starts("", STOP_LATCH),
        secs(t_boot, mono_us()),
    ));
    assert_eq!(sb.starts("", STOP_LATCH), 1, "(f) the stop latch ran more than once");
    // LDAP comes back
    let r = slapd(&["start", &slapd_dir.to_string_lossy(), "389", "636"]);
    eprint!("{}", r.stderr);
    let env = fs::read_to_string(slapd_dir.join("env")).unwrap();
    assert!(
        env.contains(&format!("SERVICE_DN={SERVICE_DN}\n")) && env.contains(&format!("SERVICE_PW={SERVICE_PW}\n")),
        "fixture credentials changed: {env}"
    );
    assert!(
        env.contains(&format!("LDAPI_PATH={}/ldapi\n", slapd_dir.display())),
        "the fixture put its ldapi socket outside its directory (path too long?), out of the sandbox's sight: {env}"
    );
    // over ldapi, ou=hidden becomes readable to the postfix user's peercred identity, and to no other new one
    let ids = sb.sh("id -u postfix; id -g postfix", &[]);
    let (uid, gid) = ids.trim().split_once('\n').expect("the postfix user's uid and gid");
    let postfix_dn = peercred_dn(uid, gid);
    let acl = format!(
        "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nadd: olcAccess\nolcAccess: {{2}}{}\n-\n",
        peercred_acl(&postfix_dn)
    );
    ldapi_tool(&slapd_dir, "ldapmodify", &[], Some(&acl));
    let t0 = mono_us();
    let s = await_start(&sb, &mut rep, "(f) LDAP back", t0, INTERVAL + SLACK);

    // ---------------------------------------------------------------- (u) the check is the postfix user
    // The start latch ran: a check said OK for both maps, so it found SECRET under ou=hidden through the ldapi
    // map, which only postfix_dn may read. Then, as transient units: who slapd sees with the unit's identity
    // (User=postfix, Group=postfix, PrivateUsers=yes: SO_PEERCRED gives the ids outside the user namespace),
    // the check by hand so, and with the old identity (a dynamic user in group postfix) on a copy of the map
    // that it can read: CRITICAL, the false alarm this identity avoids.
    assert_eq!(s.get(PROBE, "ExecMainStatus"), "0", "(u) the check that started postfix was not OK");
    const ANY_MAP: &str = "/run/lhc-e2e-peercred-0644.cf";
    sb.sh("install -m 0644 \"$1\" \"$2\"", &[PEERCRED_MAP, ANY_MAP]);
    let transient = |props: &[&str], cmd: &[&str]| -> (i32, String) {
        let mut a = vec!["exec", "systemd-run", "--wait", "--pipe", "--quiet", "--collect"];
        for p in props {
            a.extend(["-p", p]);
        }
        a.extend_from_slice(cmd);
        let r = sb.run(&a);
        (r.code, r.stdout.lines().next().unwrap_or("").split('|').next().unwrap_or("").to_string())
    };
    const UNIT_ID: [&str; 3] = ["User=postfix", "Group=postfix", "PrivateUsers=yes"];
    let ldapi = ldapi_in();
    let whoami = transient(
        &[&UNIT_ID[..], &["Environment=LDAPCONF=/dev/null"]].concat(),
        &["ldapwhoami", "-Q", "-Y", "EXTERNAL", "-H", &ldapi],
    );
    let postfix = transient(&UNIT_ID, &[BIN_IN, "--once", "-f", PEERCRED_MAP]);
    let dynamic =
        transient(&["DynamicUser=yes", "Group=postfix", "PrivateUsers=yes"], &[BIN_IN, "--once", "-f", ANY_MAP]);
    rep.add(format!(
        "(u) {PEERCRED_MAP} (ldapi, SASL EXTERNAL, base ou=hidden readable by {postfix_dn} only): the unit's \
         check OK (it started postfix); with {UNIT_ID:?}: ldapwhoami {:?}, the check exit {} {:?}; as \
         DynamicUser=yes Group=postfix (the old unit): exit {} {:?}",
        whoami.1, postfix.0, postfix.1, dynamic.0, dynamic.1
    ));
    assert_eq!(whoami, (0, format!("dn:{postfix_dn}")), "(u) slapd does not see the postfix user");
    assert_eq!(postfix.0, 0, "(u) the check as the postfix user is not OK: {postfix:?}");
    assert!(
        dynamic.0 == 2 && dynamic.1.starts_with("LDAP CRITICAL"),
        "(u) the ACL does not tell uids apart: {dynamic:?}"
    );

    // ---------------------------------------------------------------- (a) healthy: nothing happens
    sleep(dur(1.0));
    let c = sb.mark();
    let s0 = sb.snap();
    let (pid, since) =
        (s0.get(DAEMON, "MainPID").to_string(), s0.get(DAEMON, "ActiveEnterTimestampMonotonic").to_string());
    let mut runs = std::collections::BTreeSet::new();
    let t0 = Instant::now();
    while t0.elapsed() < dur(4.0 * INTERVAL) {
        let s = sb.snap();
        runs.insert(s.probe_started());
        assert_eq!(s.get(DAEMON, "MainPID"), pid, "(a) postfix restarted while healthy");
        assert_eq!(s.get(DAEMON, "ActiveEnterTimestampMonotonic"), since, "(a) postfix restarted while healthy");
        assert!(s.listening());
        sleep(Duration::from_millis(100));
    }
    // The manager's lines about the units (filtered by PID 1 itself) and anything at notice or above must be
    // absent. The check's own OK line (info) is filtered by journald, which looks the unit's LogLevelMax=
    // up when it reads the line: under load it reads lines of runs that have already ended and lets them
    // through (seen ~1 in 25 runs on a loaded machine). Those are counted, and only fail the test if
    // LogLevelMax= visibly does not work at all. (Fully quiet needs the check to stay silent on OK under the
    // journal: a CLI change, see the report of issue 4.)
    let mut noise: Vec<String> = [STOP_LATCH, START_LATCH, TIMER, DAEMON, "postfix.service"]
        .iter()
        .flat_map(|u| sb.journal(&c, u, &[]).into_iter().map(move |l| format!("{u}: {l}")))
        .collect();
    let (leaked, other): (Vec<String>, Vec<String>) =
        sb.journal(&c, PROBE, &[]).into_iter().partition(|l| l.starts_with("LDAP OK - "));
    noise.extend(other.into_iter().map(|l| format!("{PROBE}: {l}")));
    let all = sb.journal(&c, "", &[]).len();
    let checks = runs.len() - 1;
    rep.add(format!(
        "(a) healthy for {:.1} s: {checks} checks ran, postfix untouched (same master pid), latch runs 0; journal lines about \
         the probe (but its OK lines), latches, timer and postfix: {}; OK lines let through by journald's \
         LogLevelMax race: {} (whole journal: {all} lines)",
        t0.elapsed().as_secs_f64(),
        noise.len(),
        leaked.len(),
    ));
    assert!(checks >= 3, "(a) only {checks} checks in {:.1} s", 4.0 * INTERVAL);
    assert!(noise.is_empty(), "(a) per-run noise in the journal at the default level: {noise:#?}");
    assert!(leaked.len() * 2 <= checks, "(a) LogLevelMax=notice does not filter the OK lines: {leaked:#?}");
    // postconf's warnings (health_check_key is an "unused parameter" to it) go to the check's pipe, not the
    // journal: nothing in this boot from postconf, at any priority
    let postconf_lines = sb.journal("", "", &["-t", "postconf"]);
    rep.add(format!("(a) journal lines from postconf (run by every check) in this boot: {}", postconf_lines.len()));
    assert!(postconf_lines.is_empty(), "(a) postconf logs to the journal: {postconf_lines:#?}");

    // ---------------------------------------------------------------- (w) WARNING never stops postfix
    let c = sb.mark();
    let t0 = mono_us();
    // an empty LDAP_HEALTH_CHECK_CONFFILE= means discovery too (not "no map")
    sb.sh(
        "printf '%s\\n' \"$1\" \"$2\" > \"$3\"",
        &["LDAP_HEALTH_CHECK_CONFFILE=", "LDAP_HEALTH_CHECK_OPTIONS=\"-w 0.000001\"", ENV_FILE],
    );
    let s = poll(dur(INTERVAL + SLACK), || {
        Some(sb.snap()).filter(|s| s.probe_started() > t0 && s.down(PROBE) && s.get(PROBE, "ExecMainStatus") == "1")
    })
    .expect("(w) no WARNING check after writing the env file");
    let first = secs(t0, s.probe_started());
    sleep(dur(2.0 * INTERVAL));
    let s2 = sb.snap();
    let warnings = sb.journal(&c, PROBE, &["-p", "warning..warning"]);
    rep.add(format!(
        "(w) {ENV_FILE} written (with an empty LDAP_HEALTH_CHECK_CONFFILE=) -> WARNING check at +{first:.2} s \
         (.path unit); {:.1} s later postfix untouched, result '{}', latch runs {}, journal: {:?}",
        secs(t0, s2.at),
        s2.get(PROBE, "Result"),
        sb.starts(&c, STOP_LATCH) + sb.starts(&c, START_LATCH),
        warnings.first().map(String::as_str).unwrap_or("")
    ));
    assert_eq!(s2.get(DAEMON, "MainPID"), pid, "(w) WARNING restarted or stopped postfix");
    assert_eq!(s2.get(PROBE, "Result"), "success");
    assert_eq!(sb.starts(&c, STOP_LATCH), 0);
    assert!(
        warnings.iter().any(|l| l.starts_with("LDAP WARNING - 2 maps, 2 servers in ")),
        "(w) no LDAP WARNING line for the two maps at priority warning: {warnings:?}"
    );
    let t0 = mono_us();
    sb.sh("rm -f \"$1\"", &[ENV_FILE]);
    poll(dur(INTERVAL + SLACK), || {
        Some(sb.snap()).filter(|s| s.probe_started() > t0 && s.down(PROBE) && s.get(PROBE, "ExecMainStatus") == "0")
    })
    .expect("(w) no OK check after removing the env file");

    // ---------------------------------------------------------------- (e) an admin's stop is respected
    let c = sb.mark();
    sb.ctl(&["stop", "postfix.service"]);
    let t0 = mono_us();
    // `systemctl stop postfix.service` returns once the wrapper is down; its PartOf= instance follows
    poll(dur(10.0), || Some(()).filter(|_| sb.snap().down(DAEMON)))
        .expect("(e) systemctl stop postfix did not stop the daemon");
    let mut runs = std::collections::BTreeSet::new();
    // at least 3 intervals and 3 healthy checks (bounded)
    while (secs(t0, mono_us()) < 3.0 * INTERVAL || runs.len() < 3) && secs(t0, mono_us()) < 3.0 * INTERVAL + 10.0 {
        let s = sb.snap();
        if s.probe_started() > t0 {
            runs.insert(s.probe_started());
        }
        assert!(
            s.down(DAEMON) && !s.listening(),
            "(e) postfix started again {:.2} s after the admin stopped it",
            secs(t0, s.at)
        );
        sleep(Duration::from_millis(100));
    }
    let latch = sb.starts(&c, START_LATCH);
    rep.add(format!(
        "(e) admin `systemctl stop postfix`: still stopped {:.1} s later, across {} healthy checks; start latch runs {latch}",
        secs(t0, mono_us()),
        runs.len()
    ));
    assert!(runs.len() >= 3, "(e) only {} checks ran", runs.len());
    assert_eq!(latch, 0);
    let t0 = mono_us();
    sb.ctl(&["start", "postfix.service"]);
    let s = poll(dur(10.0), || Some(sb.snap()).filter(|s| s.active(DAEMON) && s.listening())).expect("(e) admin start");
    rep.add(format!(
        "(e) admin `systemctl start postfix`: {DAEMON} active at +{:.2} s (one check runs first: it is wanted by postfix.service)",
        secs(t0, s.mono(DAEMON, "ActiveEnterTimestampMonotonic"))
    ));

    // ---------------------------------------------------------------- (b) slapd hangs
    sleep(dur(1.0));
    let c_b = sb.mark();
    let pid_slapd = slapd_pid();
    let t0 = mono_us();
    signal("-STOP", &pid_slapd);
    await_stop(&sb, &mut rep, "(b) slapd SIGSTOPped", t0, INTERVAL + CHECK_DEADLINE + SLACK);

    // ---------------------------------------------------------------- (c) slapd resumes
    let t0 = mono_us();
    signal("-CONT", &pid_slapd);
    await_start(&sb, &mut rep, "(c) slapd SIGCONTed", t0, INTERVAL + SLACK);
    let (stops, starts) = (sb.starts(&c_b, STOP_LATCH), sb.starts(&c_b, START_LATCH));
    assert_eq!((stops, starts), (1, 1), "(b)+(c) one latch run per transition");

    // ---------------------------------------------------------------- (d) slapd killed, restarted
    sleep(dur(1.0));
    let c_d = sb.mark();
    let t0 = mono_us();
    let r = run_command(Command::new(&slapd_sh).arg("kill").arg(&slapd_dir), None, Duration::from_secs(60));
    assert!(r.success(), "slapd.sh kill: {}{}", r.stdout, r.stderr);
    await_stop(&sb, &mut rep, "(d) slapd killed", t0, INTERVAL + DEADLINE + SLACK);
    // more failed checks while down: still one stop
    let crit = |c: &str| sb.journal(c, PROBE, &["-p", "err"]).iter().filter(|l| l.contains("LDAP CRITICAL")).count();
    let failed =
        poll(dur(3.0 * INTERVAL + 10.0), || Some(crit(&c_d)).filter(|&n| n >= 3)).expect("(d) checks stopped running");
    let stops = sb.starts(&c_d, STOP_LATCH);
    rep.add(format!("(d) while down: {failed} failed checks, stop latch runs {stops}"));
    assert_eq!(stops, 1, "(d) the stop latch ran more than once");
    slapd(&["restart", &slapd_dir.to_string_lossy()]);
    let t0 = mono_us();
    await_start(&sb, &mut rep, "(d) slapd restarted", t0, INTERVAL + SLACK);
    assert_eq!(sb.starts(&c_d, START_LATCH), 1);

    // ---------------------------------------------------------------- (e') an admin's start while down
    // is respected too, until the next transition (the stop latch is already active)
    sleep(dur(1.0));
    let t0 = mono_us();
    let r = run_command(Command::new(&slapd_sh).arg("kill").arg(&slapd_dir), None, Duration::from_secs(60));
    assert!(r.success(), "slapd.sh kill: {}{}", r.stdout, r.stderr);
    await_stop(&sb, &mut rep, "(e') slapd killed again", t0, INTERVAL + DEADLINE + SLACK);
    let c = sb.mark();
    sb.ctl(&["start", "postfix.service"]);
    let t0 = mono_us();
    let s = poll(dur(POSTFIX_OWN + 10.0), || Some(sb.snap()).filter(|s| s.active(DAEMON) && s.listening()))
        .expect("(e') admin start while LDAP is down");
    let pid = s.get(DAEMON, "MainPID").to_string();
    while secs(t0, mono_us()) < 2.0 * INTERVAL + DEADLINE {
        let s = sb.snap();
        assert!(s.active(DAEMON) && s.get(DAEMON, "MainPID") == pid, "(e') the admin's start was overridden");
        sleep(Duration::from_millis(100));
    }
    let failed = sb.journal(&c, PROBE, &["-p", "err"]).iter().filter(|l| l.contains("LDAP CRITICAL")).count();
    rep.add(format!(
        "(e') admin `systemctl start postfix` while LDAP is down: running {:.1} s later across {failed} failed checks, \
         stop latch runs {}",
        secs(t0, mono_us()),
        sb.starts(&c, STOP_LATCH)
    ));
    assert!(failed >= 2, "(e') only {failed} failed checks");
    assert_eq!(sb.starts(&c, STOP_LATCH), 0);
    slapd(&["restart", &slapd_dir.to_string_lossy()]);
    let t0 = mono_us();
    let s = poll(dur(INTERVAL + SLACK + 10.0), || Some(sb.snap()).filter(|s| s.active(START_LATCH)))
        .expect("(e') no start latch after LDAP came back");
    assert_eq!(s.get(DAEMON, "MainPID"), pid, "(e') the start latch restarted a running postfix");
    rep.add(format!(
        "(e') LDAP back -> start latch at +{:.2} s, postfix (already running) untouched",
        secs(t0, s.mono(START_LATCH, "InactiveExitTimestampMonotonic"))
    ));

    // ---------------------------------------------------------------- (g) canary: the directory emptied
    // Postfix validates recipients of example.com through the same map (virtual_mailbox_maps): show it
    // over SMTP first (the unknown recipient's 550 comes from the LDAP lookup), and that the check by hand
    // finds the canary.
    sleep(dur(1.0));
    let healthy = poll(dur(15.0), || Some(smtp_in(&sb, &[CANARY, UNKNOWN_RCPT])).filter(|r| r[0].code == "250"))
        .unwrap_or_else(|| panic!("(g) RCPT TO:<{CANARY}> not accepted while healthy: {:?}", smtp_in(&sb, &[CANARY])));
    rep.add(format!(
        "(g) healthy, SMTP to 127.0.0.1:25: RCPT TO:<{CANARY}> -> {:?}; RCPT TO:<{UNKNOWN_RCPT}> -> {:?}",
        healthy[0].text, healthy[1].text
    ));
    assert!(
        healthy[1].code == "550" && healthy[1].text.contains("User unknown in virtual mailbox table"),
        "(g) Postfix does not look recipients up in the LDAP map: {:?}",
        healthy[1]
    );
    const NOCANARY_MAP: &str = "/run/lhc-e2e-nocanary.cf";
    sb.sh("grep -v '^health_check_key' \"$1\" > \"$2\"", &[MAP, NOCANARY_MAP]);
    let by_hand = || -> [(i32, String); 2] {
        [NOCANARY_MAP, MAP].map(|m| {
            let r = sb.run(&["exec", BIN_IN, "--once", "-f", m]);
            (r.code, r.stdout.lines().next().unwrap_or("").split('|').next().unwrap_or("").to_string())
        })
    };
    let [plain, canary] = by_hand();
    rep.add(format!(
        "(g) healthy, the check by hand: without the canary exit {} {:?}, with it exit {} {:?}",
        plain.0, plain.1, canary.0, canary.1
    ));
    assert_eq!((plain.0, canary.0), (0, 0), "(g) the check by hand is not OK while healthy");

    // main.cf edited while Postfix is stopped (no reload needed): the .path unit runs a check at once (still
    // CRITICAL, a no-op for the latches); wait for it to end, so that it does not straddle the restore and
    // the restore is seen by a timer run, as in real life
    let edit_main_cf = |cmd: &str| {
        let t = mono_us();
        sb.sh(cmd, &[]);
        poll(dur(INTERVAL + DEADLINE + SLACK + 5.0), || {
            Some(()).filter(|_| {
                let s = sb.snap();
                s.probe_started() > t && s.down(PROBE)
            })
        })
        .unwrap_or_else(|| panic!("(g) no check after `{cmd}`"));
    };
    let mut round1 = |rep: &mut Report| {
        // the bind and the base entry still work; the presence check sees the emptied directory, canary or not
        // (issue 13: before it, a check without a canary said OK here)
        let [plain, canary] = by_hand();
        rep.add(format!(
            "(g) emptied, the check by hand: without the canary exit {} {:?}, with it exit {} {:?}",
            plain.0, plain.1, canary.0, canary.1
        ));
        for (what, r) in [("without the canary", &plain), ("with the canary", &canary)] {
            assert!(
                r.0 == 2 && r.1.contains("Postfix would answer 550 User unknown to every recipient"),
                "(g) {what}, the check should see the emptied directory: {r:?}"
            );
        }
        // for the second round: the README's complement, set while Postfix is stopped (no reload needed)
        edit_main_cf("postconf -e soft_bounce=yes");
    };
    let w = emptied_round(&sb, &mut rep, &slapd_dir, "(g)", Duration::from_millis(100), &mut round1);
    let w5: Vec<&Rcpt> = w.rcpts.iter().filter(|r| r.is_5xx()).collect();
    rep.add(format!(
        "(g) 5xx for the valid recipient {CANARY}: {} in the window before the check saw the change, none after \
         the stop (refused connections only)",
        w5.len()
    ));

    // the same with soft_bounce = yes: 4xx in the window, never a 5xx
    rep.add("(g') the same with `soft_bounce = yes` in main.cf (set while Postfix was stopped):".into());
    let unknown = smtp_in(&sb, &[UNKNOWN_RCPT]).remove(0);
    assert!(
        unknown.code == "450" && unknown.text.contains("User unknown"),
        "(g') soft_bounce = yes not in effect: {unknown:?}"
    );
    let mut round2 = |_: &mut Report| {
        edit_main_cf("postconf -X soft_bounce");
    };
    let w = emptied_round(&sb, &mut rep, &slapd_dir, "(g')", Duration::from_millis(100), &mut round2);
    let w5: Vec<&Rcpt> = w.rcpts.iter().filter(|r| r.is_5xx()).collect();
    let unknown2 = smtp_in(&sb, &[UNKNOWN_RCPT]).remove(0);
    rep.add(format!(
        "(g') with soft_bounce = yes: 5xx for {CANARY}: {} (an unknown recipient got {:?}; soft_bounce removed \
         again: {:?})",
        w5.len(),
        unknown.text,
        unknown2.text
    ));
    assert!(w5.is_empty(), "(g') a 5xx with soft_bounce = yes: {w5:#?}");
    assert_eq!(unknown2.code, "550", "(g') soft_bounce still in effect: {unknown2:?}");

    // ---------------------------------------------------------------- (q) the policy service
    policy_rounds(&sb, &mut rep, &slapd_dir, &edit_main_cf);

    // ---------------------------------------------------------------- (p) the .path unit
    // With the timer stopped (which stops the .path unit too: PartOf=), only the .path unit runs checks.
    sb.ctl(&["stop", TIMER]);
    assert!(sb.snap().down(PATH_UNIT), "(p) stopping the timer did not stop the .path unit (PartOf=)");
    sb.ctl(&["start", PATH_UNIT]);
    poll(dur(DEADLINE + 5.0), || Some(()).filter(|_| sb.snap().down(PROBE))).expect("(p) a check is still running");
    let c = sb.mark();
    let t0 = mono_us();
    sb.sh("printf 'this line is not name = value\\n' >> \"$1\"", &[MAP]);
    let s = poll(dur(INTERVAL + SLACK + 5.0), || Some(sb.snap()).filter(|s| s.down(DAEMON)))
        .expect("(p) a broken map (UNKNOWN) did not stop postfix");
    let (ran, stopped) = (secs(t0, s.probe_started()), secs(t0, s.mono(DAEMON, "InactiveEnterTimestampMonotonic")));
    let unknown = sb.journal(&c, PROBE, &["-p", "err"]);
    rep.add(format!(
        "(p) map broken (timer stopped) -> check ran at +{ran:.2} s, exit {}, {DAEMON} stopped at +{stopped:.2} s; journal: {:?}",
        s.get(PROBE, "ExecMainStatus"),
        unknown.iter().find(|l| l.contains("UNKNOWN")).map(String::as_str).unwrap_or("")
    ));
    assert!(ran < INTERVAL, "(p) the check ran {ran:.2} s after the change: not at once");
    assert_eq!(s.get(PROBE, "ExecMainStatus"), "3", "(p) a malformed map must be UNKNOWN");
    // discovered: postconf itself parses the map that main.cf names, and its fatal error is the reason
    assert!(
        unknown.iter().any(|l| l.starts_with("LDAP UNKNOWN") && l.contains(&format!("{MAP}, line "))),
        "(p) no LDAP UNKNOWN line naming {MAP} at priority err: {unknown:?}"
    );
    let t0 = mono_us();
    sb.sh("printf '%s' \"$1\" > \"$2\"", &[&map_text(), MAP]); // same inode: mode and owner kept
    let s = poll(dur(INTERVAL + SLACK + 5.0), || Some(sb.snap()).filter(|s| s.active(DAEMON) && s.listening()))
        .expect("(p) the repaired map did not start postfix");
    let (ran, started) = (secs(t0, s.probe_started()), secs(t0, s.mono(DAEMON, "ActiveEnterTimestampMonotonic")));
    rep.add(format!("(p) map repaired -> check ran at +{ran:.2} s, {DAEMON} active at +{started:.2} s"));
    assert!(ran < INTERVAL, "(p) the check ran {ran:.2} s after the repair: not at once");
    // a burst of changes (an editor saving repeatedly): more starts than the default start limit
    // (5 in 10 s), which would fail the unit and, through OnFailure=, stop postfix
    sleep(dur(0.5));
    let c = sb.mark();
    let pid = sb.snap().get(DAEMON, "MainPID").to_string();
    let t0 = mono_us();
    sb.sh("for i in 1 2 3 4 5 6 7 8 9 10; do touch \"$1\"; sleep 0.1; done", &[MAP]);
    sleep(dur(1.0));
    let s = sb.snap();
    let ran = secs(t0, s.probe_started());
    rep.add(format!(
        "(p) 10 changes in 1 s -> last check at +{ran:.2} s, result '{}', postfix untouched: {}, latch runs {}",
        s.get(PROBE, "Result"),
        s.get(DAEMON, "MainPID") == pid,
        sb.starts(&c, STOP_LATCH) + sb.starts(&c, START_LATCH)
    ));
    assert_eq!(s.get(PROBE, "Result"), "success", "(p) a burst of changes failed the check unit");
    assert_eq!(s.get(DAEMON, "MainPID"), pid, "(p) a burst of changes touched postfix");
    assert_eq!(sb.starts(&c, STOP_LATCH), 0);
    sb.ctl(&["start", TIMER]);

    // ---------------------------------------------------------------- live make uninstall / install
    let make = |target: &str, extra: &[&str]| {
        let mut a = vec!["exec", "make", "-s", "-C", SRC_IN, target];
        a.extend_from_slice(extra);
        sb.ok(&a)
    };
    make("uninstall", &[]);
    let s = sb.snap();
    let left = sb.sh(
        "ls /etc/systemd/system/*.wants/ 2>/dev/null | grep ldap-health-check || :; ls /usr/local/bin /usr/local/lib/systemd/system 2>/dev/null | grep ldap-health-check || :",
        &[],
    );
    rep.add(format!(
        "make uninstall (live): {PROBE} {}, timer {}, path {}, files and enable links left: {:?}; postfix still {}",
        sb.prop(PROBE, "LoadState"),
        s.get(TIMER, "ActiveState"),
        s.get(PATH_UNIT, "ActiveState"),
        left.trim(),
        s.get(DAEMON, "ActiveState")
    ));
    assert_eq!(
        sb.prop(PROBE, "LoadState"),
        "not-found",
        "make uninstall: the manager still knows the unit (no daemon-reload?)"
    );
    assert!(left.trim().is_empty(), "make uninstall left {left}");
    assert!(s.active(DAEMON), "make uninstall touched postfix");
    make("install", &["NOBUILD=1", &format!("INSTALL_BIN={BIN_IN}")]);
    let (load, reload, enabled) =
        (sb.prop(PROBE, "LoadState"), sb.prop(PROBE, "NeedDaemonReload"), sb.run(&["ctl", "is-enabled", TIMER]).stdout);
    rep.add(format!("make install (live): {PROBE} {load}, NeedDaemonReload={reload}, timer {}", enabled.trim()));
    assert_eq!((load.as_str(), reload.as_str(), enabled.trim()), ("loaded", "no", "disabled"));
    assert!(!sb.sh("ls /etc/default", &[]).contains("ldap-health-check"), "make install wrote /etc");
    // the README's one switch
    sb.ctl(&["enable", "--now", TIMER]);
    let s = sb.snap();
    let wants = sb.sh("ls /etc/systemd/system/postfix.service.wants/ /etc/systemd/system/timers.target.wants/", &[]);
    rep.add(format!(
        "`systemctl enable --now {TIMER}`: timer {}, path {} (Wants=), boot check linked into postfix.service.wants: {}",
        s.get(TIMER, "ActiveState"),
        s.get(PATH_UNIT, "ActiveState"),
        wants.contains(PROBE)
    ));
    assert!(s.active(TIMER) && s.active(PATH_UNIT) && wants.contains(PROBE), "enable --now: {wants}");

    // ---------------------------------------------------------------- teardown
    let t0 = Instant::now();
    sb.stop();
    rep.add(format!(
        "teardown: {:.2} s, no cgroup, mount or state left; whole test {:.1} s",
        t0.elapsed().as_secs_f64(),
        t_all.elapsed().as_secs_f64()
    ));
    let _ = writeln!(
        std::io::stderr(),
        "\nsystemd_e2e figures (interval {INTERVAL} s, map timeout {DEADLINE} s, check deadline {CHECK_DEADLINE} s):\n  {}\n",
        rep.0.join("\n  ")
    );
}

/// `make install` / `make uninstall` into a DESTDIR: paths substituted, nothing under /etc, modes, and
/// uninstall removes every file it installed. No namespaces needed.
#[test]
fn make_install_uninstall_destdir() {
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let dest = tmp_root().join(format!("lhc-destdir-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dest);
    let _gone = Gone(dest.clone());
    let bin = env!("CARGO_BIN_EXE_ldap-health-check");
    let make = |target: &str| {
        let r = run_command(
            Command::new("make")
                .env_remove("MAKEFLAGS")
                .env_remove("MFLAGS")
                .env_remove("MAKELEVEL")
                .arg("-s")
                .arg("-C")
                .arg(repo_root())
                .arg(target)
                .arg(format!("DESTDIR={}", dest.display()))
                .args([
                    "PREFIX=/usr",
                    "BINDIR=/usr/sbin",
                    "SYSTEMDUNITDIR=/lib/systemd/system",
                    "NOBUILD=1",
                    &format!("INSTALL_BIN={bin}"),
                ]),
            None,
            Duration::from_secs(60),
        );
        assert!(r.success(), "make {target}: code {}\n{}{}", r.code, r.stdout, r.stderr);
    };
    make("install");
    let files = list_files(&dest);
    // the units' part of `make install` (the man page and completions are someone else's part)
    for f in [
        "lib/systemd/system/ldap-health-check-start-postfix.service 644",
        "lib/systemd/system/ldap-health-check-stop-postfix.service 644",
        "lib/systemd/system/ldap-health-check.path 644",
        "lib/systemd/system/ldap-health-check.service 644",
        "lib/systemd/system/ldap-health-check.timer 644",
        "usr/sbin/ldap-health-check 755",
        "usr/share/doc/ldap-health-check/examples/ldap-health-check.default 644",
    ] {
        assert!(files.iter().any(|x| x == f), "make install did not install {f}: {files:#?}");
    }
    assert!(files.iter().all(|f| !f.starts_with("etc/")), "make install wrote under /etc: {files:#?}");
    let unit = fs::read_to_string(dest.join("lib/systemd/system/ldap-health-check.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/sbin/ldap-health-check --once --cert-crit 0 $LDAP_HEALTH_CHECK_OPTIONS\n"),
        "{unit}"
    );
    for f in &files {
        let text = fs::read(dest.join(f.rsplit_once(' ').unwrap().0)).unwrap();
        if !f.starts_with("usr/sbin/") {
            assert!(!String::from_utf8_lossy(&text).contains("@BINDIR@"), "{f}: unsubstituted @BINDIR@");
        }
    }
    make("uninstall");
    assert_eq!(list_files(&dest), Vec::<String>::new(), "files left by make uninstall");
    assert!(!dest.join("usr/share/doc/ldap-health-check").exists(), "make uninstall left the doc directory");
}

fn list_files(root: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push(format!("{rel} {:o}", m.permissions().mode() & 0o7777));
            }
        }
    }
    out.sort();
    out
}
