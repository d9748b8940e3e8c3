//! Hostile and broken LDAP servers against the real binary, through a real socket (issue 10).
//!
//! A fake server (std only, below) answers the bind, the base search and the canary lookup of
//! `ldap-health-check --once -t 1` with replies recorded from slapd 2.5, then with crafted and mutated ones:
//!
//! - `crafted_replies`: every way a server reply was found to panic, hang or balloon the probe (ldap3 0.12.1
//!   and lber 0.5.1, see vendor/PATCHES.md), each with the verdict it must give now;
//! - `fuzzed_replies`: a seeded fuzzer mutating the recorded replies (bit flips, byte replacement, truncation,
//!   length fields, insertion, deletion, garbage, wrong operations, huge length claims, deep nesting, long
//!   entry streams, controls, message ids, Notices of Disconnection), `LHC_FUZZ_CASES` cases.
//!
//! Every run must end with a verdict: exit code 0..=3, a first line starting with `LDAP `, no `panicked` nor
//! stack overflow on stderr, and an end before the deadline + a margin (the margin only detects hangs: this
//! is not a timing assertion). The peak RSS of each run (GNU time) is reported.
//!
//! Environment:
//!   LHC_FUZZ_CASES=N       fuzz cases (default 300; `make fuzz` runs 100000 against the release binary)
//!   LHC_FUZZ_SEED=S        seed (decimal or 0x hex; default fixed, printed)
//!   LHC_FUZZ_JOBS=J        binaries run at once (default 2)
//!   LHC_FUZZ_BIN=PATH      run this binary instead of cargo's (to count the failures of another build)
//!   LHC_FUZZ_KEEP_GOING=1  run every case and print a tally of the failures instead of stopping at the first
//!   LHC_FUZZ_ONLY=I        run fuzz case I only (as printed with a failure)
//!   LHC_FUZZ_MODE=one-byte only replace one random byte of the bind or search reply (default: all mutations)

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::TempDir;

/// The deadline given with -t.
const DEADLINE: &str = "1";
/// A run still going this long after its start is killed and counts as a hang (the longest deadline, 10 s,
/// + a margin).
const KILL_AFTER: Duration = Duration::from_secs(16);
const CANARY: &str = "user0002@example.com";

// ---------------------------------------------------------------------------------------------
// BER building, and the replies recorded from slapd 2.5 (tests/fixtures/slapd.sh, through a recording
// proxy): `recorded_replies_are_slapds` checks the builders against the bytes slapd sent.

/// slapd's answer to the probe's simple bind as cn=postfix (message 1): success.
const SLAPD_BIND_OK: &str = "300c02010161070a010004000400";
/// slapd's answer to the base search of dc=example,dc=com for `1.1` (message 2): the entry, then done.
const SLAPD_SEARCH_OK: &str = "301a0201026415041164633d6578616d706c652c64633d636f6d3000300c02010265070a010004000400";
/// slapd's answer to the canary lookup (mail=user0002@example.com), result_attribute mail (message 3).
const SLAPD_LOOKUP_OK: &str = "3051020103644c04287569643d75736572303030322c6f753d70656f706c652c64633d6578616d706c652c64633d636f6d3020301e04046d61696c311604147573657230303032406578616d706c652e636f6d300c02010365070a010004000400";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// BER length octets (definite form, shortest).
fn ber_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n.to_be_bytes().iter().copied().skip_while(|&b| b == 0).collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// One TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(ber_len(content.len()));
    out.extend_from_slice(content);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn repeat(unit: &[u8], n: usize) -> Vec<u8> {
    unit.repeat(n)
}

/// An LDAPMessage: messageID, protocolOp, optional controls ([0] already wrapped by the caller, or raw bytes).
fn message(id: u32, op: &[u8], controls: &[u8]) -> Vec<u8> {
    let id = if id < 0x80 { vec![id as u8] } else { id.to_be_bytes().to_vec() };
    tlv(0x30, &cat(&[&tlv(0x02, &id), op, controls]))
}

/// An LDAPResult with application tag `tag` (0x61 bind, 0x65 search done, 0x78 extended), `extra` after
/// the three mandatory components.
fn result_op(tag: u8, rc: u8, matched: &[u8], text: &[u8], extra: &[u8]) -> Vec<u8> {
    tlv(tag, &cat(&[&tlv(0x0a, &[rc]), &tlv(0x04, matched), &tlv(0x04, text), extra]))
}

/// A SearchResultEntry.
fn entry(dn: &[u8], attrs: &[(&[u8], &[&[u8]])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (name, vals) in attrs {
        let vals: Vec<u8> = vals.iter().flat_map(|v| tlv(0x04, v)).collect();
        list.extend(tlv(0x30, &cat(&[&tlv(0x04, name), &tlv(0x31, &vals)])));
    }
    tlv(0x64, &cat(&[&tlv(0x04, dn), &tlv(0x30, &list)]))
}

const BASE_DN: &[u8] = b"dc=example,dc=com";
const USER_DN: &[u8] = b"uid=user0002,ou=people,dc=example,dc=com";

fn bind_ok() -> Vec<u8> {
    message(1, &result_op(0x61, 0, b"", b"", b""), b"")
}
fn search_entry() -> Vec<u8> {
    message(2, &entry(BASE_DN, &[]), b"")
}
fn search_done(id: u32) -> Vec<u8> {
    message(id, &result_op(0x65, 0, b"", b"", b""), b"")
}
fn search_ok() -> Vec<u8> {
    cat(&[&search_entry(), &search_done(2)])
}
fn lookup_entry() -> Vec<u8> {
    message(3, &entry(USER_DN, &[(b"mail", &[b"user0002@example.com"])]), b"")
}
fn lookup_ok() -> Vec<u8> {
    cat(&[&lookup_entry(), &search_done(3)])
}
/// A Notice of Disconnection (RFC 4511 4.4.1): message 0, ExtendedResponse with the notice's OID.
fn notice(rc: u8, text: &[u8]) -> Vec<u8> {
    message(0, &result_op(0x78, rc, b"", text, &tlv(0x8a, b"1.3.6.1.4.1.1466.20036")), b"")
}
/// `depth` nested SEQUENCEs around an empty one (long-form lengths, so a deep one fits in a small message).
fn nested(depth: usize) -> Vec<u8> {
    let mut inner = vec![0x30, 0x00];
    // Built inside out with 5-byte headers (0x30 0x83 len24).
    let mut out = Vec::with_capacity(depth * 5 + 2);
    let mut sizes = Vec::with_capacity(depth);
    let mut size = inner.len();
    for _ in 0..depth {
        sizes.push(size);
        size += 5;
    }
    for s in sizes.iter().rev() {
        out.extend_from_slice(&[0x30, 0x83, (s >> 16) as u8, (s >> 8) as u8, *s as u8]);
    }
    out.append(&mut inner);
    out
}

#[test]
fn recorded_replies_are_slapds() {
    assert_eq!(hex(&bind_ok()), SLAPD_BIND_OK);
    assert_eq!(hex(&search_ok()), SLAPD_SEARCH_OK);
    assert_eq!(hex(&lookup_ok()), SLAPD_LOOKUP_OK);
    assert_eq!(unhex(SLAPD_BIND_OK), bind_ok());
    assert_eq!(nested(2), vec![0x30, 0x83, 0, 0, 7, 0x30, 0x83, 0, 0, 2, 0x30, 0]);
}

// ---------------------------------------------------------------------------------------------
// The fake server

/// What the fake server does after it sent the reply of the last planned stage.
#[derive(Clone, Debug)]
enum After {
    /// Close its side (the client sees EOF after the bytes), drain until the client closes.
    Close,
    /// Keep the connection open, reading, until the client closes it (the deadline).
    Hold,
    /// Send `unit` again and again, `max` bytes in all (usize::MAX: until the client closes), then close.
    Repeat(Vec<u8>, usize),
}

/// How the fake server answers one connection.
#[derive(Clone, Debug)]
struct Plan {
    /// The bytes sent in answer to the bind, the base search and the canary lookup (requests 1, 2, 3).
    replies: [Vec<u8>; 3],
    /// The index of the last reply sent; then `after`.
    last: usize,
    after: After,
}

impl Plan {
    fn good() -> Plan {
        Plan { replies: [bind_ok(), search_ok(), lookup_ok()], last: 2, after: After::Close }
    }
    /// The good replies but `bytes` for stage `stage` (0 bind, 1 search, 2 lookup), which is the last.
    fn at(stage: usize, bytes: Vec<u8>, after: After) -> Plan {
        let mut p = Plan::good();
        p.replies[stage] = bytes;
        p.last = stage;
        p.after = after;
        p
    }
}

struct FakeLdap {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeLdap {
    fn start(plan: Plan) -> FakeLdap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let plan = Arc::new(Mutex::new(plan));
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (p, s, a) = (plan.clone(), stop.clone(), accepted.clone());
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let plan = p.lock().unwrap().clone();
                thread::spawn(move || serve(conn, plan));
            }
        });
        FakeLdap { addr, plan, stop, accepted, thread: Some(thread) }
    }
    fn set(&self, plan: Plan) {
        *self.plan.lock().unwrap() = plan;
    }
    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.addr.port())
    }
}

impl Drop for FakeLdap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One LDAP request (the whole TLV), or None at EOF, on error, or when it is not one.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).ok()?;
    let mut msg = head.to_vec();
    let len = if head[1] & 0x80 == 0 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut b = vec![0u8; n];
        s.read_exact(&mut b).ok()?;
        msg.extend_from_slice(&b);
        b.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x))
    };
    if len > 1 << 20 {
        return None;
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    msg.extend(body);
    Some(msg)
}

/// The protocolOp tag of a request (0x60 bind, 0x63 search, 0x42 unbind...).
fn request_op(msg: &[u8]) -> Option<u8> {
    let hdr = if msg.get(1)? & 0x80 == 0 { 2 } else { 2 + usize::from(msg[1] & 0x7f) };
    let idlen = usize::from(*msg.get(hdr + 1)?);
    msg.get(hdr + 2 + idlen).copied()
}

/// Read and discard until the client closes.
fn drain(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

fn serve(mut s: TcpStream, plan: Plan) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(KILL_AFTER));
    let _ = s.set_write_timeout(Some(KILL_AFTER));
    let mut searches = 0;
    while let Some(req) = read_request(&mut s) {
        let stage = match request_op(&req) {
            Some(0x60) => 0,
            Some(0x63) => {
                searches += 1;
                searches.min(2)
            }
            _ => break, // unbind, or anything unexpected: close
        };
        if s.write_all(&plan.replies[stage]).is_err() {
            return;
        }
        if stage == plan.last {
            match &plan.after {
                After::Close => {}
                After::Hold => return drain(&mut s),
                After::Repeat(unit, max) => {
                    let mut sent = 0;
                    while sent < *max {
                        if s.write_all(unit).is_err() {
                            return;
                        }
                        sent += unit.len().max(1);
                    }
                }
            }
            break;
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    drain(&mut s);
}

// ---------------------------------------------------------------------------------------------
// Running the binary, with its peak RSS

#[derive(Debug)]
struct RunInfo {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    timed_out: bool,
    /// Peak RSS of the binary (KiB) from GNU time's %M, 0 when /usr/bin/time is missing. Not getrusage from
    /// here: a child's ru_maxrss starts at the RSS of the process that spawned it (the kernel keeps the
    /// high-water mark of the pre-exec image), which is this test process; /usr/bin/time is a small parent.
    max_rss_kib: i64,
}

mod sys {
    unsafe extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
    }
}

fn binary() -> PathBuf {
    std::env::var_os("LHC_FUZZ_BIN").map(PathBuf::from).unwrap_or_else(common::bin)
}

const TIME: &str = "/usr/bin/time";

/// Runs the binary on `map` (`--once -t DEADLINE`, and the canary), killing it (and its process group) after
/// [`KILL_AFTER`]; `rss_file` is a scratch file for /usr/bin/time's report.
fn run_bin(map: &Path, canary: bool, rss_file: &Path, deadline: &str) -> RunInfo {
    let timed = Path::new(TIME).exists();
    let mut cmd = if timed {
        let mut c = Command::new(TIME);
        c.arg("-o").arg(rss_file).args(["-f", "%M"]).arg(binary());
        c
    } else {
        Command::new(binary())
    };
    cmd.args(["--once", "-t", deadline, "-f"]).arg(map);
    if canary {
        cmd.args(["--canary", CANARY]);
    }
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LDAP_HEALTH_CHECK_") {
            cmd.env_remove(&k);
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn the binary");
    let pipe = |mut r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        rx
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > KILL_AFTER && !timed_out {
            timed_out = true;
            // SAFETY: a plain syscall; the child is not reaped yet, so its process group is still ours.
            unsafe { sys::kill(-(child.id() as i32), 9) };
        }
        thread::sleep(Duration::from_micros(300));
    };
    let elapsed = start.elapsed();
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let text = |rx: mpsc::Receiver<Vec<u8>>| {
        String::from_utf8_lossy(&rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()).into_owned()
    };
    let max_rss_kib = if timed {
        std::fs::read_to_string(rss_file)
            .ok()
            .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
            .unwrap_or(0)
    } else {
        0
    };
    RunInfo { code, stdout: text(out), stderr: text(err), elapsed, timed_out, max_rss_kib }
}

/// The invariants every run must keep; Err names the first one broken.
fn verdict_problem(r: &RunInfo) -> Option<String> {
    if r.timed_out {
        return Some(format!("hang: killed after {KILL_AFTER:?}"));
    }
    if r.stderr.contains("overflowed its stack") {
        return Some(format!("stack overflow (exit {})", r.code));
    }
    if let Some(line) = r.stderr.lines().find(|l| l.contains("panicked")) {
        // thread 'main' (PID) panicked at FILE:LINE:COL:\nMESSAGE
        let at = line.split_once("panicked at ").map_or(line, |(_, at)| at).trim_end_matches(':');
        let message = r.stderr.lines().skip_while(|l| !l.contains("panicked")).nth(1).unwrap_or("");
        let message: String = message.chars().take(80).collect();
        return Some(format!("panic at {at}: {message} (exit {})", r.code));
    }
    if !(0..=3).contains(&r.code) {
        return Some(format!("exit {}", r.code));
    }
    if !r.stdout.lines().next().unwrap_or("").starts_with("LDAP ") {
        return Some("no verdict line".to_string());
    }
    if r.max_rss_kib > RSS_BOUND_KIB {
        return Some(format!("peak RSS {} KiB, over {} KiB", r.max_rss_kib, RSS_BOUND_KIB));
    }
    None
}

/// Issue 10: the peak RSS under any hostile server stays under 64 MB (a bound on memory, not on time; the
/// units' MemoryMax=256M is far above it).
const RSS_BOUND_KIB: i64 = 64_000_000 / 1024;

/// The map every case uses. The replies are slapd's to a base search, so the presence check (a subtree search
/// asking for mail, issue 13) is off: its own replies are canary-shaped, and the canary lookups are fuzzed.
fn map_text(urls: &str) -> String {
    format!(
        "server_host = {urls}\nsearch_base = dc=example,dc=com\nquery_filter = (mail=%s)\nresult_attribute = mail\n\
         bind = yes\nbind_dn = cn=postfix,ou=services,dc=example,dc=com\nbind_pw = postfixpw\n\
         health_check_presence = no\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Crafted replies: each known trigger, with the verdict it must give

struct Crafted {
    name: &'static str,
    plan: Plan,
    /// A second server after the first in server_host (a standby Postfix never reaches while the first works).
    standby: Option<Plan>,
    canary: bool,
    /// The -t given: [`DEADLINE`], or more for a server that must be cut by the byte budget (a debug build on
    /// a loaded machine may not read 2 MiB within 1 s).
    deadline: &'static str,
    /// Exit code it must give (with the fixed ldap3), and a fragment of the first line.
    code: i32,
    fragment: &'static str,
}

fn crafted() -> Vec<Crafted> {
    let c = |name, plan, code, fragment| Crafted {
        name,
        plan,
        standby: None,
        canary: false,
        deadline: DEADLINE,
        code,
        fragment,
    };
    let bind = |bytes: Vec<u8>| Plan::at(0, bytes, After::Close);
    let search = |bytes: Vec<u8>| Plan::at(1, bytes, After::Close);
    let lookup = |bytes: Vec<u8>| Plan::at(2, bytes, After::Close);
    let bind_op = |op: &[u8]| bind(message(1, op, b""));
    // The bind reply `bytes`, then the good search.
    let bind_then_ok = |bytes: Vec<u8>| {
        let mut p = Plan::good();
        p.replies[0] = bytes;
        p.last = 1;
        p
    };
    let done_op = |op: &[u8]| search(cat(&[&search_entry(), &message(2, op, b"")]));
    let controls = |ctrls: &[u8]| bind(message(1, &result_op(0x61, 0, b"", b"", b""), &tlv(0xa0, ctrls)));
    let controls_ok = |ctrls: &[u8]| bind_then_ok(message(1, &result_op(0x61, 0, b"", b"", b""), &tlv(0xa0, ctrls)));
    let latin1 = b"Mot de passe expir\xe9";
    let mut v = vec![
        c(
            "bind refused, diagnostic message in Latin-1",
            bind_op(&result_op(0x61, 49, b"", latin1, b"")),
            2,
            "invalid credentials (49): Mot de passe expir\u{fffd}",
        ),
        c(
            "bind answered with matched DN in Latin-1",
            bind_op(&result_op(0x61, 49, latin1, b"", b"")),
            2,
            "invalid credentials (49)",
        ),
        c(
            "search answered with a BindResponse",
            search(message(2, &result_op(0x61, 0, b"", b"", b""), b"")),
            2,
            "malformed",
        ),
        c(
            "search answered with an ExtendedResponse",
            search(message(2, &result_op(0x78, 0, b"", b"", b""), b"")),
            2,
            "malformed",
        ),
        c(
            "search answered with an OCTET STRING as protocolOp",
            search(message(2, &tlv(0x04, b"x"), b"")),
            2,
            "malformed",
        ),
        c("bind answered with an empty SEQUENCE", bind(vec![0x30, 0x00]), 2, "malformed"),
        c("search answered with an empty SEQUENCE", search(vec![0x30, 0x00]), 2, "malformed"),
        c("bind answered with a message ID and no protocolOp", bind(message(1, b"", b"")), 2, "malformed"),
        c("bind answered with a non-SEQUENCE", bind(tlv(0x04, b"hello")), 2, "malformed"),
        c(
            "message ID not an INTEGER",
            bind(tlv(0x30, &cat(&[&tlv(0x04, b"1"), &result_op(0x61, 0, b"", b"", b"")]))),
            2,
            "malformed",
        ),
        c(
            "bind resultCode an INTEGER",
            bind_op(&tlv(0x61, &cat(&[&tlv(0x02, &[0]), &tlv(0x04, b""), &tlv(0x04, b"")]))),
            2,
            "malformed",
        ),
        c(
            "search resultCode an OCTET STRING",
            done_op(&tlv(0x65, &cat(&[&tlv(0x04, b"0"), &tlv(0x04, b""), &tlv(0x04, b"")]))),
            2,
            "malformed",
        ),
        c(
            "bind result without diagnosticMessage",
            bind_op(&tlv(0x61, &cat(&[&tlv(0x0a, &[0]), &tlv(0x04, b"")]))),
            2,
            "malformed",
        ),
        c("bind result primitive", bind_op(&tlv(0x41, b"")), 2, "malformed"),
        c(
            "bind matchedDN constructed",
            bind_op(&tlv(0x61, &cat(&[&tlv(0x0a, &[0]), &tlv(0x24, b""), &tlv(0x04, b"")]))),
            2,
            "malformed",
        ),
        c(
            "bind result with serverSaslCreds constructed",
            bind_op(&result_op(0x61, 0, b"", b"", &tlv(0xa7, b""))),
            2,
            "malformed",
        ),
        c(
            "bind result with a responseName not UTF-8",
            bind_then_ok(message(1, &result_op(0x61, 0, b"", b"", &tlv(0x8a, b"\xff")), b"")),
            0,
            "LDAP OK",
        ),
        c(
            "bind result with primitive referral",
            bind_op(&result_op(0x61, 10, b"", b"", &tlv(0x83, b"x"))),
            2,
            "malformed",
        ),
        c(
            "bind result with referral URI not UTF-8",
            bind_op(&result_op(0x61, 10, b"", b"", &tlv(0xa3, &tlv(0x04, b"ldap://\xff/")))),
            2,
            "LDAP error (10)",
        ),
        c(
            "search reference not UTF-8",
            search(cat(&[&message(2, &tlv(0x73, &tlv(0x04, b"ldap://h\xe9/")), b""), &search_ok()])),
            0,
            "LDAP OK",
        ),
        c(
            "search reference primitive",
            search(cat(&[&message(2, &tlv(0x53, b"x"), b""), &search_ok()])),
            2,
            "malformed",
        ),
        c("search entry primitive", search(cat(&[&message(2, &tlv(0x44, b""), b""), &search_done(2)])), 2, "malformed"),
        c("search done missing, then EOF", search(search_entry()), 2, "closed"),
        c(
            "control with an empty criticality BOOLEAN",
            controls(&tlv(0x30, &cat(&[&tlv(0x04, b"1.2.3"), &[0x01, 0x00]]))),
            2,
            "malformed",
        ),
        c(
            "control with a constructed criticality",
            controls(&tlv(0x30, &cat(&[&tlv(0x04, b"1.2.3"), &tlv(0x21, &[0x01])]))),
            2,
            "malformed",
        ),
        c(
            "control with an INTEGER after the type",
            controls(&tlv(0x30, &cat(&[&tlv(0x04, b"1.2.3"), &tlv(0x02, &[1])]))),
            2,
            "malformed",
        ),
        c("control without a type", controls(&tlv(0x30, b"")), 2, "malformed"),
        c("control type not UTF-8", controls_ok(&tlv(0x30, &tlv(0x04, b"1.\xff"))), 0, "LDAP OK"),
        c("controls primitive", bind(message(1, &result_op(0x61, 0, b"", b"", b""), &tlv(0x80, b""))), 2, "malformed"),
        c(
            "Active Directory's [10] alone after the message ID",
            bind(message(1, &tlv(0x8a, b"1.2"), b"")),
            2,
            "malformed",
        ),
        c("a SEQUENCE holding only [10]", bind(tlv(0x30, &tlv(0x8a, b"1.2"))), 2, "malformed"),
        c("inner length beyond the message (EOF after)", bind(unhex("300c02010161070a010004090400")), 2, "malformed"),
        c("indefinite length", bind(unhex("308002010161070a0100040004000000")), 2, "malformed"),
        c("length of length 9", bind(unhex("308900000000000000000c02010161070a010004000400")), 2, "malformed"),
        c("high tag number form", bind(unhex("300e0201017f8101070a010004000400")), 2, "malformed"),
        c(
            "message ID of 9 bytes",
            bind(tlv(0x30, &cat(&[&tlv(0x02, &[1, 0, 0, 0, 0, 0, 0, 0, 1]), &result_op(0x61, 0, b"", b"", b"")]))),
            2,
            "malformed",
        ),
        c(
            "message ID negative",
            bind(tlv(0x30, &cat(&[&tlv(0x02, &[0xff]), &result_op(0x61, 0, b"", b"", b"")]))),
            2,
            "malformed",
        ),
        c(
            "SEQUENCEs nested 100000 deep",
            bind(message(1, &result_op(0x61, 0, b"", b"", &nested(100_000)), b"")),
            2,
            "malformed",
        ),
        c(
            "a 2 GB length claim, then bytes without end",
            Plan::at(0, unhex("30847fffffff"), After::Repeat(vec![0; 65536], usize::MAX)),
            2,
            "too large",
        ),
        c(
            "an entry of 1 MB, 40000 values (under the 1 MiB limit)",
            search(cat(&[
                &message(2, &entry(BASE_DN, &[(b"member", &vec![&b"uid=user00000,ou=people"[..]; 40_000])]), b""),
                &search_done(2),
            ])),
            0,
            "LDAP OK",
        ),
        c(
            "a 16 MB entry",
            search(message(2, &entry(BASE_DN, &[(b"x", &[&vec![b'a'; 16 << 20]])]), b"")),
            2,
            "too large",
        ),
        // The base search streams and stops at the second entry (a base search has one); the connection's
        // budget would stop it otherwise.
        c(
            "entries without end",
            Plan::at(1, search_entry(), After::Repeat(repeat(&search_entry(), 1000), usize::MAX)),
            2,
            "more than one entry",
        ),
        c(
            "unsolicited messages without end",
            Plan::at(
                0,
                Vec::new(),
                After::Repeat(repeat(&message(99, &result_op(0x61, 0, b"", b"", b""), b""), 1000), usize::MAX),
            ),
            2,
            "too large",
        ),
        c(
            "inner length beyond the message, then silence",
            Plan::at(0, unhex("300c02010161070a010004090400"), After::Hold),
            2,
            "malformed",
        ),
        c(
            "Notice of Disconnection, connection kept open",
            Plan::at(0, notice(52, b"shutting down"), After::Hold),
            2,
            "shutting down",
        ),
        c(
            "Notice of Disconnection in place of the search result",
            Plan::at(1, notice(51, b"busy"), After::Hold),
            2,
            "busy",
        ),
    ];
    // A server sending without end must be cut by the byte budget, not by the deadline: give the budget time.
    for case in &mut v {
        if matches!(case.plan.after, After::Repeat(_, usize::MAX)) {
            case.deadline = "10";
        }
    }
    v.push(Crafted {
        name: "canary entry with attributes primitive",
        plan: lookup(cat(&[
            &message(3, &tlv(0x64, &cat(&[&tlv(0x04, USER_DN), &tlv(0x04, b"")])), b""),
            &search_done(3),
        ])),
        standby: None,
        canary: true,
        deadline: DEADLINE,
        code: 2,
        fragment: "malformed",
    });
    v.push(Crafted {
        name: "canary answered with a BindResponse",
        plan: lookup(message(3, &result_op(0x61, 0, b"", b"", b""), b"")),
        standby: None,
        canary: true,
        deadline: DEADLINE,
        code: 2,
        fragment: "malformed",
    });
    v.push(Crafted {
        name: "a standby server answers the search with a BindResponse (the first server is fine)",
        plan: Plan::good(),
        standby: Some(search(message(2, &result_op(0x61, 0, b"", b"", b""), b""))),
        canary: false,
        deadline: DEADLINE,
        code: 0,
        fragment: "LDAP OK",
    });
    v
}

#[test]
fn crafted_replies() {
    let dir = TempDir::new();
    let mut failures = Vec::new();
    for (i, case) in crafted().into_iter().enumerate() {
        let first = FakeLdap::start(case.plan.clone());
        let standby = case.standby.clone().map(FakeLdap::start);
        let urls = match &standby {
            Some(s) => format!("{} {}", first.url(), s.url()),
            None => first.url(),
        };
        let map = dir.write(&format!("crafted{i}.cf"), &map_text(&urls));
        let r = run_bin(&map, case.canary, &dir.join("rss"), case.deadline);
        let line = r.stdout.lines().next().unwrap_or("").to_string();
        eprintln!(
            "{:>2} {:<75} exit {} in {:>4} ms, peak RSS {:>7} KiB: {}",
            i,
            case.name,
            r.code,
            r.elapsed.as_millis(),
            r.max_rss_kib,
            line.chars().take(160).collect::<String>()
        );
        let mut problem = verdict_problem(&r);
        if problem.is_none() && (r.code != case.code || !line.contains(case.fragment)) {
            problem = Some(format!("expected exit {} with {:?}", case.code, case.fragment));
        }
        if let Some(p) = &problem {
            eprintln!("   ^ FAILED: {}", p.chars().take(300).collect::<String>());
        }
        if let Some(p) = problem {
            failures.push(format!(
                "{i} {}: {p}\n  stdout: {}\n  stderr: {}",
                case.name,
                r.stdout.trim(),
                r.stderr.trim()
            ));
        }
        assert!(first.accepted.load(Ordering::SeqCst) > 0, "{}: the binary never connected", case.name);
    }
    assert!(failures.is_empty(), "{} crafted case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The fuzzer

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    /// 0..max random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Bytes worth trying in place of any other: BER tags, length forms, boundaries.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x04, 0x0a, 0x30, 0x31, 0x40, 0x61, 0x64, 0x65, 0x73, 0x78, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x88,
    0x8a, 0xa0, 0xa3, 0xa7, 0xff, 0x1f, 0x3f,
];

/// Every TLV in `buf` (recursively into constructed ones that parse, 32 levels at most: the fuzzer's own
/// stack is bounded too): (start, header length, content length).
fn tlvs(buf: &[u8]) -> Vec<(usize, usize, usize)> {
    fn walk(buf: &[u8], base: usize, depth: usize, out: &mut Vec<(usize, usize, usize)>) {
        let mut i = 0;
        while i + 2 <= buf.len() {
            let tag = buf[i];
            let (hdr, len) = if buf[i + 1] & 0x80 == 0 {
                (2, usize::from(buf[i + 1]))
            } else {
                let n = usize::from(buf[i + 1] & 0x7f);
                if n == 0 || n > 4 || i + 2 + n > buf.len() {
                    return;
                }
                (2 + n, buf[i + 2..i + 2 + n].iter().fold(0usize, |a, &x| (a << 8) | usize::from(x)))
            };
            if i + hdr + len > buf.len() {
                return;
            }
            out.push((base + i, hdr, len));
            if tag & 0x20 != 0 && depth < 32 {
                walk(&buf[i + hdr..i + hdr + len], base + i + hdr, depth + 1, out);
            }
            i += hdr + len;
        }
    }
    let mut out = Vec::new();
    walk(buf, 0, 0, &mut out);
    out
}

/// The LDAPMessages of a reply: (start, end).
fn messages(buf: &[u8]) -> Vec<(usize, usize)> {
    let all = tlvs(buf);
    let mut out = Vec::new();
    let mut next = 0;
    for (start, hdr, len) in all {
        if start == next {
            out.push((start, start + hdr + len));
            next = start + hdr + len;
        }
    }
    out
}

/// One mutation of `b` (a reply to stage `stage`, message ID `id`); returns its name.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>, stage: usize, id: u32, after: &mut After) -> String {
    let pos = |rng: &mut Rng, b: &Vec<u8>| if b.is_empty() { 0 } else { rng.below(b.len()) };
    match rng.below(100) {
        0..=14 => {
            let k = 1 + rng.below(3);
            for _ in 0..k {
                if !b.is_empty() {
                    let p = pos(rng, b);
                    b[p] ^= 1 << rng.below(8);
                }
            }
            format!("flip {k} bit(s)")
        }
        15..=29 => {
            let k = 1 + rng.below(3);
            for _ in 0..k {
                if !b.is_empty() {
                    let p = pos(rng, b);
                    b[p] = if rng.chance(1, 2) { *rng.pick(INTERESTING) } else { rng.byte() };
                }
            }
            format!("set {k} byte(s)")
        }
        30..=39 => {
            let p = pos(rng, b);
            b.truncate(p);
            format!("truncate at {p}")
        }
        40..=54 => {
            let t = tlvs(b);
            if t.is_empty() {
                return "length: no TLV".to_string();
            }
            let (start, hdr, len) = *rng.pick(&t);
            let new: Vec<u8> = match rng.below(10) {
                0 => ber_len(len + 1 + rng.below(4)),
                1 => ber_len(len.saturating_sub(1 + rng.below(4))),
                2 => vec![0],
                3 => vec![0x80],
                4 => vec![0x7f],
                5 => vec![0x84, 0x7f, 0xff, 0xff, 0xff],
                6 => vec![0x84, 0xff, 0xff, 0xff, 0xff],
                7 => {
                    let n = 1 + rng.below(9);
                    let mut v = vec![0x80 | n as u8];
                    v.extend(rng.bytes(n));
                    v
                }
                8 => vec![0x81, len as u8],
                _ => vec![0xff],
            };
            b.splice(start + 1..start + hdr, new.iter().copied());
            format!("length of TLV at {start} -> {}", hex(&new))
        }
        55..=62 => {
            let p = if b.is_empty() { 0 } else { rng.below(b.len() + 1) };
            let n = 1 + rng.below(8);
            let ins: Vec<u8> =
                (0..n).map(|_| if rng.chance(1, 2) { *rng.pick(INTERESTING) } else { rng.byte() }).collect();
            b.splice(p..p, ins);
            format!("insert {n} at {p}")
        }
        63..=67 => {
            let p = pos(rng, b);
            let n = (1 + rng.below(8)).min(b.len() - p.min(b.len()));
            b.drain(p..p + n);
            format!("delete {n} at {p}")
        }
        68..=71 => {
            let n = rng.below(100);
            *b = if rng.chance(1, 2) {
                let body = rng.bytes(n);
                tlv(0x30, &body)
            } else {
                rng.bytes(n)
            };
            format!("garbage of {n}")
        }
        72..=75 => {
            // Another operation in place of the expected one (same message ID).
            let ops: [Vec<u8>; 7] = [
                result_op(0x61, rng.byte() % 100, b"", b"", b""),
                result_op(0x65, rng.byte() % 100, b"", b"", b""),
                result_op(0x78, rng.byte() % 100, b"", b"", b""),
                entry(BASE_DN, &[]),
                tlv(0x73, &tlv(0x04, b"ldap://other/")),
                tlv(0x79, b""),
                tlv(0x40 | 0x20 | rng.below(31) as u8, &rng.some_bytes(10)),
            ];
            let which = rng.below(ops.len());
            *b = message(id, &ops[which], b"");
            format!("operation #{which} instead")
        }
        76..=79 => {
            // Rewrite the protocolOp tag of one message.
            let msgs = messages(b);
            if msgs.is_empty() {
                return "op tag: no message".to_string();
            }
            let (start, _) = *rng.pick(&msgs);
            let inner = tlvs(&b[start..]);
            // inner[0] is the message, inner[1] the message ID, inner[2] the protocolOp.
            if let Some(&(s, _, _)) = inner.get(2) {
                let t = if rng.chance(1, 2) { 0x60 | rng.below(32) as u8 } else { rng.byte() };
                b[start + s] = t;
                format!("op tag -> {t:02x}")
            } else {
                "op tag: no op".to_string()
            }
        }
        80..=83 => {
            // Controls appended to a message: random control contents.
            let msgs = messages(b);
            if msgs.is_empty() {
                return "controls: no message".to_string();
            }
            let (start, end) = *rng.pick(&msgs);
            let parts = tlvs(&b[start..end]);
            let body: Vec<u8> = b[start + parts[0].1..end].to_vec();
            let ctrl = match rng.below(5) {
                0 => tlv(0x30, &cat(&[&tlv(0x04, b"1.2.840.113556.1.4.319"), &tlv(0x01, &rng.some_bytes(2))])),
                1 => tlv(0x30, &cat(&[&tlv(0x04, b"1.2.3"), &tlv(0x04, &rng.some_bytes(8))])),
                2 => tlv(0x30, &rng.some_bytes(12)),
                3 => rng.some_bytes(12),
                _ => tlv(0x30, &cat(&[&tlv(0x04, b"1.2.3"), &tlv(0x01, &[0xff]), &tlv(0x04, b"v")])),
            };
            let tag = if rng.chance(4, 5) { 0xa0 } else { *rng.pick(INTERESTING) };
            let new = tlv(0x30, &cat(&[&body, &tlv(tag, &ctrl)]));
            b.splice(start..end, new);
            "controls appended".to_string()
        }
        84..=86 => {
            // Message ID changed.
            let msgs = messages(b);
            if let Some(&(start, _)) = msgs.first() {
                let inner = tlvs(&b[start..]);
                if let Some(&(s, hdr, len)) = inner.get(1) {
                    let n = rng.below(6);
                    let new = tlv(if rng.chance(9, 10) { 0x02 } else { rng.byte() }, &rng.bytes(n));
                    b.splice(start + s..start + s + hdr + len, new);
                    return format!("message ID -> {n} random bytes");
                }
            }
            "message ID: none".to_string()
        }
        87..=88 => {
            // A Notice of Disconnection before the reply (or instead of it).
            let n = notice(rng.below(100) as u8, b"bye");
            if rng.chance(1, 2) {
                b.splice(0..0, n);
                "notice before".to_string()
            } else {
                *b = n;
                "notice instead".to_string()
            }
        }
        89..=91 => {
            // Huge length claim on the first message, then some bytes.
            let claim = match rng.below(3) {
                0 => vec![0x84, 0x7f, 0xff, 0xff, 0xff],
                1 => vec![0x83, 0x10, 0x00, 0x00],
                _ => {
                    let mut v = vec![0x84];
                    v.extend(rng.bytes(4));
                    v
                }
            };
            let mut v = vec![0x30];
            v.extend(&claim);
            v.extend(rng.some_bytes(64));
            *b = v;
            if rng.chance(1, 3) {
                *after = After::Repeat(rng.bytes(1024), 1 << (10 + rng.below(12)));
            }
            format!("huge length claim {}", hex(&claim))
        }
        92..=95 => {
            // Many entries (for a search), or many unsolicited messages.
            let n = 1 + rng.below(3000);
            let unit = if stage == 0 {
                message(0x7fff, &entry(BASE_DN, &[]), b"")
            } else {
                message(id, &entry(BASE_DN, &[]), b"")
            };
            let mut v = Vec::with_capacity(unit.len() * n);
            for _ in 0..n {
                v.extend_from_slice(&unit);
            }
            if rng.chance(1, 2) {
                v.extend(search_done(id));
            }
            b.splice(0..0, v);
            format!("{n} entries first")
        }
        _ => {
            // Deeply nested SEQUENCEs in place of a TLV's content.
            let depth = *rng.pick(&[10usize, 100, 1_000, 10_000, 50_000, 150_000]);
            let t = tlvs(b);
            if t.is_empty() {
                *b = nested(depth);
            } else {
                let (start, hdr, len) = *rng.pick(&t);
                let inner = nested(depth);
                let new = tlv(b[start] | 0x20, &inner);
                b.splice(start..start + hdr + len, new);
                // Fix nothing else: the enclosing lengths are now wrong too, which is fine.
            }
            format!("nested {depth} deep")
        }
    }
}

/// Fuzz case `i` of `seed`: the plan, whether to ask the canary, and what was done.
fn fuzz_case(seed: u64, i: u64, one_byte: bool) -> (Plan, bool, String) {
    let mut rng = Rng(seed ^ i.wrapping_mul(0xd6e8_feb8_6659_fd93));
    if one_byte {
        // One byte of slapd's bind or search reply replaced by a random value (another one), the server
        // then closing: the mutation the issue measured.
        let stage = rng.below(2);
        let mut plan = Plan::good();
        plan.last = stage;
        let bytes = &mut plan.replies[stage];
        let (p, old) = (rng.below(bytes.len()), rng.byte());
        let new = if old == bytes[p] { old ^ 0xff } else { old };
        bytes[p] = new;
        return (plan, false, format!("stage {stage}: byte {p} -> {new:02x}"));
    }
    let stage = match rng.below(100) {
        0..=34 => 0,
        35..=74 => 1,
        _ => 2,
    };
    let id = stage as u32 + 1;
    let mut plan = Plan::good();
    plan.last = stage;
    plan.after = if rng.chance(1, 100) { After::Hold } else { After::Close };
    let mut bytes = plan.replies[stage].clone();
    let n = 1 + rng.below(3);
    let mut what = Vec::new();
    for _ in 0..n {
        what.push(mutate(&mut rng, &mut bytes, stage, id, &mut plan.after));
    }
    plan.replies[stage] = bytes;
    let canary = stage == 2 || rng.chance(1, 4);
    (plan, canary, format!("stage {stage}: {}", what.join(", ")))
}

/// `s` with each number (a run of digits not inside a name like `FromUtf8Error`) replaced by `N`.
fn numbers_as_n(s: &str) -> String {
    let mut out = String::new();
    let mut in_name = false;
    let mut in_number = false;
    for c in s.chars() {
        if c.is_ascii_digit() && !in_name {
            if !in_number {
                out.push('N');
            }
            in_number = true;
            continue;
        }
        in_number = false;
        in_name = c.is_ascii_alphanumeric();
        out.push(c);
    }
    out
}

#[test]
fn numbers_as_n_keeps_names() {
    assert_eq!(numbers_as_n(": op id: 17, FromUtf8Error [1, 22]"), ": op id: N, FromUtf8Error [N, N]");
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if v.starts_with("0x") => u64::from_str_radix(&v[2..], 16).unwrap_or_else(|_| panic!("bad {name}")),
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("bad {name}: {v}")),
        Err(_) => default,
    }
}

#[test]
fn fuzzed_replies() {
    let cases = env_u64("LHC_FUZZ_CASES", 300);
    let seed = env_u64("LHC_FUZZ_SEED", 0x1d4f_2e10_0000_0010);
    let jobs = env_u64("LHC_FUZZ_JOBS", 2).max(1) as usize;
    let keep_going = std::env::var_os("LHC_FUZZ_KEEP_GOING").is_some_and(|v| v != "0");
    let only = std::env::var("LHC_FUZZ_ONLY").ok().map(|v| v.parse::<u64>().expect("LHC_FUZZ_ONLY"));
    let one_byte = match std::env::var("LHC_FUZZ_MODE").as_deref() {
        Err(_) | Ok("") | Ok("all") => false,
        Ok("one-byte") => true,
        Ok(other) => panic!("LHC_FUZZ_MODE={other}: all or one-byte"),
    };
    eprintln!(
        "fuzzed_replies: {} case(s), seed {seed:#x}, {jobs} job(s), binary {}",
        if only.is_some() { 1 } else { cases },
        binary().display()
    );
    let dir = Arc::new(TempDir::new());
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    type Failure = (u64, String, String, Vec<u8>, RunInfo);
    let failures: Arc<Mutex<Vec<Failure>>> = Arc::new(Mutex::new(Vec::new()));
    // Runs, largest peak RSS, exit codes, slowest run, runs that waited for the deadline though the server
    // closed the connection (a malformed reply not recognized as one).
    let stats = Arc::new(Mutex::new((0u64, 0i64, BTreeMap::<i32, u64>::new(), Duration::ZERO, 0u64)));
    let start = Instant::now();
    let workers: Vec<_> = (0..jobs)
        .map(|w| {
            let (dir, next, stop, failures, stats) =
                (dir.clone(), next.clone(), stop.clone(), failures.clone(), stats.clone());
            thread::spawn(move || {
                let server = FakeLdap::start(Plan::good());
                let map = dir.write(&format!("fuzz{w}.cf"), &map_text(&server.url()));
                let rss = dir.join(format!("rss{w}"));
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let k = next.fetch_add(1, Ordering::SeqCst) as u64;
                    let i = match only {
                        Some(i) if k == 0 => i,
                        Some(_) => return,
                        None if k < cases => k,
                        None => return,
                    };
                    let (plan, canary, what) = fuzz_case(seed, i, one_byte);
                    server.set(plan.clone());
                    let r = run_bin(&map, canary, &rss, DEADLINE);
                    if k > 0 && k % 10_000 == 0 {
                        eprintln!("fuzzed_replies: {k} case(s) started, {:.0} s", start.elapsed().as_secs_f64());
                    }
                    {
                        let mut s = stats.lock().unwrap();
                        s.0 += 1;
                        s.1 = s.1.max(r.max_rss_kib);
                        *s.2.entry(r.code).or_default() += 1;
                        s.3 = s.3.max(r.elapsed);
                        if !matches!(plan.after, After::Hold) && r.stdout.contains("timed out") {
                            s.4 += 1;
                        }
                    }
                    if let Some(problem) = verdict_problem(&r) {
                        let bytes = plan.replies[plan.last].clone();
                        failures.lock().unwrap().push((i, problem, what, bytes, r));
                        if !keep_going {
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (ran, rss, codes, slowest, waited) = stats.lock().unwrap().clone();
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    eprintln!(
        "fuzzed_replies: {ran} case(s) in {:.1} s, exit codes {codes:?}, slowest {} ms, largest peak RSS {rss} KiB, \
         {waited} timed out though the server had closed, {} failure(s)",
        start.elapsed().as_secs_f64(),
        slowest.as_millis(),
        failures.len()
    );
    if failures.is_empty() {
        return;
    }
    let mut tally: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (i, problem, ..) in &failures {
        // The kind: the problem without its varying details (the exit code of a panic varies with where it
        // happened: 101 or 134 in the main task, none in the connection's task in a debug build).
        let kind = problem.split(" (exit").next().unwrap_or(problem);
        // ... and numbers in a panic's message (`unrecognized op id: 7`) made N; its location kept.
        let kind: String = match kind.match_indices(": ").next() {
            Some((at, _)) => format!("{}{}", &kind[..at], numbers_as_n(&kind[at..])),
            None => kind.to_string(),
        };
        let kind: String = kind.chars().take(140).collect();
        let e = tally.entry(kind).or_insert((0, *i));
        e.0 += 1;
    }
    eprintln!("failures by kind (count, first case):");
    for (kind, (n, first)) in &tally {
        eprintln!("  {n:>6}  case {first:<8} {kind}");
    }
    let (i, problem, what, bytes, r) = &failures[0];
    let shown =
        if bytes.len() > 512 { format!("{}... ({} bytes)", hex(&bytes[..512]), bytes.len()) } else { hex(bytes) };
    panic!(
        "{} of {ran} fuzz case(s) failed (seed {seed:#x}). First: case {i} (rerun with LHC_FUZZ_SEED={seed:#x} \
         LHC_FUZZ_ONLY={i}): {problem}\n  mutation: {what}\n  reply bytes: {shown}\n  exit {} in {:?}\n  \
         stdout: {}\n  stderr: {}",
        failures.len(),
        r.code,
        r.elapsed,
        r.stdout.trim(),
        r.stderr.trim().chars().take(2000).collect::<String>()
    );
}
