//! Contact LDAP servers the way Postfix's client does, every server at once, under ONE deadline.
//!
//! For each [`Job`] (a distinct server + identity + TLS settings): resolve, TCP connect (TCP_NODELAY; per address,
//! each attempt bounded by the map's `timeout` as libldap's network timeout), STARTTLS or ldaps handshake, bind
//! (none, simple, SASL EXTERNAL), then a base-scope search of each search base asking for no attributes (`1.1`).
//! Every stage is timed; the first failure ends the job and names its stage. The whole batch runs under a
//! single deadline: whatever the servers do (blackholed connect, silence after accept, a stalled handshake or
//! bind or search, slow DNS), [`run`] returns by the deadline and reports the stage each job was stuck in.
//! It returns earlier once every map's outcome is known (the server Postfix would use has finished): servers
//! Postfix would not reach are not waited for, and their jobs are reported as [`ConnReport::abandoned`].
//!
//! Probing never parses configuration text and never decides a verdict.

use std::cell::RefCell;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, StdStream};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use crate::config::{BindMode, Scheme, Secret, Server, TlsParams};
use crate::starttls::start_tls;

/// Where OpenLDAP's client looks for the local socket when an `ldapi://` URL names none (Debian's libldap).
pub const DEFAULT_LDAPI_SOCKET: &str = "/var/run/slapd/ldapi";

/// The largest LDAP message a server may send (the vendored ldap3 refuses a larger one as soon as its length
/// field arrives, before buffering it): one entry with its values. Issue 10.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;
/// The most bytes of LDAP messages a server may send on one connection (every base search and canary lookup
/// of a check): bounds the memory a server streaming entries without end takes before the deadline. ldap3's
/// `search()` keeps every entry, about 16 bytes of memory per byte of small entries: measured peak RSS of the
/// release build under such a server, 36 MB with 2 MiB, 68 MB with 4 MiB (vendor/PATCHES.md). Issue 10.
pub const MAX_RECEIVED_LEN: u64 = 2 << 20;

/// The stages of a check, in the order they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Resolve,
    Connect,
    StartTls,
    Tls,
    Bind,
    Search,
    /// A canary lookup (the map's query for one key) on the connection.
    Lookup,
}

impl Stage {
    /// A short machine-friendly name (JSON, perfdata).
    pub fn key(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Connect => "connect",
            Stage::StartTls => "starttls",
            Stage::Tls => "tls",
            Stage::Bind => "bind",
            Stage::Search => "search",
            Stage::Lookup => "lookup",
        }
    }

    /// Whether Postfix (libldap) moves on to the next server whatever the failure in this stage: when the
    /// connection cannot be made at all. (An `ldaps://` TLS handshake that fails also fails over: see
    /// [`Failure::fails_over`].)
    pub fn fails_over(self) -> bool {
        matches!(self, Stage::Resolve | Stage::Connect)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Resolve => "name resolution",
            Stage::Connect => "connect",
            Stage::StartTls => "STARTTLS",
            Stage::Tls => "TLS handshake",
            Stage::Bind => "bind",
            Stage::Search => "search",
            Stage::Lookup => "canary lookup",
        })
    }
}

/// How to reach and authenticate to one server: what Postfix keys its connection cache on.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub server: Server,
    pub start_tls: bool,
    pub tls: TlsParams,
    pub bind: BindMode,
    pub bind_dn: String,
    pub bind_pw: Secret,
    /// libldap's network timeout: the bound on each connect attempt (the map's `timeout`).
    pub connect_timeout: Duration,
}

impl Endpoint {
    /// Whether this endpoint speaks TLS (ldaps, or STARTTLS on ldap).
    pub fn uses_tls(&self) -> bool {
        self.server.scheme == Scheme::Ldaps || (self.start_tls && self.server.scheme == Scheme::Ldap)
    }
}

/// One connection to make and what to check on it.
#[derive(Clone, Debug)]
pub struct Job {
    pub endpoint: Endpoint,
    /// Base DNs to check with a base-scope search, in order.
    pub bases: Vec<String>,
    /// Canary lookups to run after the base searches, in order.
    pub lookups: Vec<LookupJob>,
}

/// One canary key of one map, ready to be looked up on a connection of the map.
#[derive(Clone, Debug)]
pub struct LookupJob {
    /// Index of the map in the plan.
    pub map: usize,
    /// The canary key as given.
    pub key: String,
    pub spec: Arc<crate::lookup::Spec>,
    pub query: crate::lookup::Query,
}

/// What one canary lookup gave: the value Postfix would return (`None`: not found), or why it failed.
#[derive(Clone, Debug, PartialEq)]
pub struct LookupReport {
    pub map: usize,
    pub key: String,
    pub result: Result<Option<Vec<u8>>, Failure>,
    pub elapsed: Duration,
}

/// A stage that completed, with how long it took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageTime {
    pub stage: Stage,
    pub elapsed: Duration,
}

/// Why a stage failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub stage: Stage,
    /// Whether the overall deadline (or the connect timeout) ran out, rather than an error coming back.
    pub timed_out: bool,
    /// One line, never containing a secret: `connection refused`, `invalid credentials (49)`.
    pub message: String,
}

impl Failure {
    /// Whether Postfix (libldap) moves on to the next server of the list after this failure on a server of
    /// `scheme`: when the connection cannot be made (name resolution, connect), and when the TLS handshake of
    /// an `ldaps://` server fails (`ldap_int_open_connection()` returns -1: certificate rejected, handshake
    /// error). Not after STARTTLS (the connection is open by then), nor when an `ldaps://` handshake hangs
    /// (libldap blocks in it), nor after anything later.
    pub fn fails_over(&self, scheme: Scheme) -> bool {
        self.stage.fails_over() || (self.stage == Stage::Tls && scheme == Scheme::Ldaps && !self.timed_out)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The result of checking one base on a connection.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchReport {
    pub base: String,
    pub result: Result<Duration, Failure>,
}

/// What happened on one connection.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConnReport {
    /// The address that accepted the connection (`127.0.0.1:389`, or the socket path).
    pub address: Option<String>,
    /// The connection stages that completed, in order (searches are in `searches`).
    pub stages: Vec<StageTime>,
    /// The connection-level failure (resolve, connect, STARTTLS, TLS, bind), if any.
    pub failure: Option<Failure>,
    /// What became of the server certificate: verified, or accepted unverified as `tls_require_cert = no` allows.
    pub tls_note: Option<String>,
    /// One report per base of the job that was searched before the end (in job order).
    pub searches: Vec<SearchReport>,
    /// One report per canary lookup of the job that ran before the end (in job order).
    pub lookups: Vec<LookupReport>,
    /// Things worth a line in the long output that change no verdict (a base found without its entry).
    pub notes: Vec<String>,
    /// Wall time of the whole job.
    pub elapsed: Duration,
    /// The job was cut short, unfinished, because no map needed it any more: every map it serves is decided
    /// by an earlier server of its list (Postfix would not get to this one). Nothing else is reported.
    pub abandoned: bool,
}

impl ConnReport {
    /// The report for `base`: the search's own result, or the connection failure that prevented it, or a
    /// timeout if the deadline came first.
    pub fn base_result(&self, base: &str) -> Result<Duration, Failure> {
        if let Some(s) = self.searches.iter().find(|s| s.base == base) {
            return s.result.clone();
        }
        Err(self.failure.clone().unwrap_or_else(|| Failure {
            stage: Stage::Search,
            timed_out: true,
            message: "not searched before the deadline".to_string(),
        }))
    }

    /// The report of map `map`'s canary `key`: the lookup's own result, or the connection failure that
    /// prevented it, or a timeout if the deadline came first.
    pub fn lookup_result(&self, map: usize, key: &str) -> (Result<Option<Vec<u8>>, Failure>, Option<Duration>) {
        if let Some(l) = self.lookups.iter().find(|l| l.map == map && l.key == key) {
            return (l.result.clone(), Some(l.elapsed));
        }
        let failure = self.failure.clone().unwrap_or_else(|| Failure {
            stage: Stage::Lookup,
            timed_out: true,
            message: "not looked up before the deadline".to_string(),
        });
        (Err(failure), None)
    }
}

/// The single-threaded I/O runtime every check and query runs on. Drop it with `shutdown_background()`: a hung
/// name lookup may still hold a blocking thread, and the process must not wait for it.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))
}

/// Run every job concurrently; return one report per job (same order) by `deadline` after `start` (the start
/// of the check, which may be a little before this call).
///
/// `maps` lists, for each map, the indexes of its jobs in `server_host` order. The run ends as soon as every
/// map is decided (see [`map_decided`]): the jobs still running then serve no map that needs them, and are
/// stopped and reported as [`ConnReport::abandoned`]. A job not listed in any map is not waited for.
pub fn run(
    rt: &tokio::runtime::Runtime,
    jobs: &[Job],
    maps: &[Vec<usize>],
    start: std::time::Instant,
    deadline: Duration,
) -> Vec<ConnReport> {
    rt.block_on(async {
        let start = Instant::from_std(start);
        let until = start + deadline;
        let mut reports: Vec<Option<ConnReport>> = vec![None; jobs.len()];
        {
            let mut pending: FuturesUnordered<_> = jobs
                .iter()
                .enumerate()
                .map(|(i, job)| async move { (i, probe_job(job, start, until).await) })
                .collect();
            while !maps.iter().all(|m| map_decided(jobs, m, &reports)) {
                match pending.next().await {
                    Some((i, report)) => reports[i] = Some(report),
                    None => break,
                }
            }
            // Dropping the unfinished jobs closes their connections.
        }
        let elapsed = start.elapsed();
        reports
            .into_iter()
            .map(|r| r.unwrap_or_else(|| ConnReport { abandoned: true, elapsed, ..ConnReport::default() }))
            .collect()
    })
}

/// Whether the outcome of a map whose servers are the jobs `order` (indexes into `jobs`) is known from the
/// finished jobs (`reports`): walking its servers in order, a finished job whose connection failure does
/// not fail over (or that succeeded) decides it; an unfinished one leaves it open; all failed over: decided.
pub fn map_decided(jobs: &[Job], order: &[usize], reports: &[Option<ConnReport>]) -> bool {
    for &j in order {
        match &reports[j] {
            None => return false,
            Some(r) => match &r.failure {
                Some(f) if f.fails_over(jobs[j].endpoint.server.scheme) => continue,
                _ => return true,
            },
        }
    }
    true
}

/// The mutable state of one job, kept outside its future so a timeout can still read how far it got.
#[derive(Default)]
struct Progress {
    report: ConnReport,
    current: Option<Stage>,
    stage_start: Option<Instant>,
}

impl Progress {
    fn begin(&mut self, stage: Stage) {
        self.current = Some(stage);
        self.stage_start = Some(Instant::now());
    }

    fn end(&mut self) -> Duration {
        let elapsed = self.stage_start.map(|s| s.elapsed()).unwrap_or_default();
        if let Some(stage) = self.current.take() {
            if !matches!(stage, Stage::Search | Stage::Lookup) {
                self.report.stages.push(StageTime { stage, elapsed });
            }
        }
        elapsed
    }
}

/// Stops the task that drives a connection when dropped (also when the job's future is dropped unfinished).
struct DriverGuard(Option<tokio::task::JoinHandle<()>>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

async fn probe_job(job: &Job, start: Instant, until: Instant) -> ConnReport {
    let progress = RefCell::new(Progress::default());
    let mut driver = DriverGuard(None);
    let outcome = tokio::time::timeout_at(until, connect_and_check(job, &progress, until, &mut driver.0)).await;
    drop(driver);
    let mut p = progress.into_inner();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => p.report.failure = Some(failure),
        Err(_elapsed) => {
            let stage = p.current.unwrap_or(Stage::Connect);
            let after = secs(until - start);
            let failure = Failure { stage, timed_out: true, message: format!("timed out after {after} in {stage}") };
            if stage == Stage::Search {
                // The base being searched when time ran out gets the timeout; later bases were never reached.
                let base = job.bases.iter().find(|b| !p.report.searches.iter().any(|s| &s.base == *b));
                if let Some(base) = base {
                    p.report.searches.push(SearchReport { base: base.clone(), result: Err(failure.clone()) });
                }
            }
            if stage == Stage::Lookup {
                // Likewise the canary being looked up.
                let done = |l: &LookupJob| p.report.lookups.iter().any(|r| r.map == l.map && r.key == l.key);
                if let Some(l) = job.lookups.iter().find(|l| !done(l)) {
                    let elapsed = p.stage_start.map(|s| s.elapsed()).unwrap_or_default();
                    let (map, key, result) = (l.map, l.key.clone(), Err(failure.clone()));
                    p.report.lookups.push(LookupReport { map, key, result, elapsed });
                }
            }
            p.report.failure = Some(failure);
        }
    }
    p.report.elapsed = start.elapsed();
    p.report
}

/// Format a duration as a short number of seconds: `2 s`, `0.5 s`.
pub fn secs(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
}

/// A failure whose message names its stage: `connect failed: connection refused`.
fn fail(stage: Stage, reason: impl Into<String>) -> Failure {
    let reason = reason.into();
    let message = match stage {
        Stage::Connect => format!("connect failed: {reason}"),
        Stage::StartTls => format!("STARTTLS failed: {reason}"),
        Stage::Tls => format!("TLS handshake failed: {reason}"),
        Stage::Resolve | Stage::Bind | Stage::Search | Stage::Lookup => reason,
    };
    Failure { stage, timed_out: false, message }
}

/// A connected and bound session, for `--query`: the handle and the task that drives the connection (stopped
/// when the session is dropped).
pub struct Session {
    pub ldap: ldap3::Ldap,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connect, STARTTLS or TLS, and bind to `ep` as the probe does, all by `until`; the failure names the stage
/// (a timeout names the stage it interrupted).
pub async fn open_session(ep: &Endpoint, until: Instant) -> Result<Session, Failure> {
    let progress = RefCell::new(Progress::default());
    let mut driver = None;
    let start = Instant::now();
    let outcome = tokio::time::timeout_at(until, connect(ep, &progress, until, &mut driver)).await;
    match (outcome, driver) {
        (Ok(Ok(ldap)), Some(driver)) => Ok(Session { ldap, driver }),
        (outcome, driver) => {
            if let Some(d) = driver {
                d.abort();
            }
            Err(match outcome {
                Ok(Err(f)) => f,
                _ => {
                    let stage = progress.borrow().current.unwrap_or(Stage::Connect);
                    let message = format!("timed out after {} in {stage}", secs(until - start));
                    Failure { stage, timed_out: true, message }
                }
            })
        }
    }
}

async fn connect_and_check(
    job: &Job,
    progress: &RefCell<Progress>,
    until: Instant,
    driver: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), Failure> {
    let mut ldap = connect(&job.endpoint, progress, until, driver).await?;

    // Each search base must exist and be visible to this identity: a missing static base is a lookup
    // error for Postfix (451), not "not found".
    // Once the connection is lost, what was not asked yet is reported as such, not as a deadline.
    let mut lost: Option<String> = None;
    for base in &job.bases {
        if let Some(during) = &lost {
            let f = fail(Stage::Search, format!("search of {base} not made: the connection was lost during {during}"));
            progress.borrow_mut().report.searches.push(SearchReport { base: base.clone(), result: Err(f) });
            continue;
        }
        progress.borrow_mut().begin(Stage::Search);
        let result = ldap.search(base, ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"]).await;
        let elapsed = progress.borrow_mut().end();
        if matches!(&result, Err(e) if connection_lost(e)) {
            lost = Some("an earlier search".to_string());
        }
        let result = match result {
            Err(e) => Err(fail(Stage::Search, ldap_reason(&e))),
            Ok(r) if r.1.rc == 32 => {
                Err(fail(Stage::Search, format!("search base {base} not found: {}", result_reason(32, &r.1.text))))
            }
            Ok(r) if r.1.rc != 0 => {
                Err(fail(Stage::Search, format!("search of {base}: {}", result_reason(r.1.rc, &r.1.text))))
            }
            Ok(r) => {
                if r.0.is_empty() {
                    // The base exists (rc 0) but its entry is not readable by this identity (an ACL with
                    // `search` but not `read` on it): Postfix's subtree searches below it still work.
                    let note = format!("base {base} answered with no entry: readable? canaries tell");
                    progress.borrow_mut().report.notes.push(note);
                }
                Ok(elapsed)
            }
        };
        progress.borrow_mut().report.searches.push(SearchReport { base: base.clone(), result });
    }

    // The canaries, on the same connection: what Postfix would answer for each key.
    for l in &job.lookups {
        if let Some(during) = &lost {
            let f =
                fail(Stage::Lookup, format!("canary {} not looked up: the connection was lost during {during}", l.key));
            let report = LookupReport { map: l.map, key: l.key.clone(), result: Err(f), elapsed: Duration::ZERO };
            progress.borrow_mut().report.lookups.push(report);
            continue;
        }
        progress.borrow_mut().begin(Stage::Lookup);
        let result = crate::lookup::lookup(&mut ldap, &l.spec, &l.query).await;
        let elapsed = progress.borrow_mut().end();
        if matches!(&result, Err(e) if e.connection_lost) {
            lost = Some("an earlier canary lookup".to_string());
        }
        let result = result.map_err(|e| fail(Stage::Lookup, e.message));
        progress.borrow_mut().report.lookups.push(LookupReport { map: l.map, key: l.key.clone(), result, elapsed });
    }
    let _ = ldap.unbind().await;
    Ok(())
}

/// Connect, STARTTLS/TLS and bind: the part of a check that Postfix's `dict_ldap_connect()` does.
async fn connect(
    ep: &Endpoint,
    progress: &RefCell<Progress>,
    until: Instant,
    driver: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<ldap3::Ldap, Failure> {
    let server = &ep.server;

    // Connect: a Unix socket, or each resolved address in turn (as libldap does) with the network timeout.
    let std_stream = match server.scheme {
        Scheme::Ldapi => {
            let path =
                if server.host.is_empty() { PathBuf::from(DEFAULT_LDAPI_SOCKET) } else { PathBuf::from(&server.host) };
            progress.borrow_mut().begin(Stage::Connect);
            let stream = UnixStream::connect(&path).await.map_err(|e| fail(Stage::Connect, io_reason(&e)))?;
            progress.borrow_mut().end();
            progress.borrow_mut().report.address = Some(path.display().to_string());
            StdStream::Unix(stream.into_std().map_err(|e| fail(Stage::Connect, io_reason(&e)))?)
        }
        Scheme::Ldap | Scheme::Ldaps => {
            let addrs = resolve(server, progress).await?;
            progress.borrow_mut().begin(Stage::Connect);
            let mut stream = connect_any(&addrs, ep.connect_timeout, until).await?;
            progress.borrow_mut().end();
            progress.borrow_mut().report.address = stream.peer_addr().ok().map(|a| a.to_string());
            if ep.start_tls && server.scheme == Scheme::Ldap {
                progress.borrow_mut().begin(Stage::StartTls);
                start_tls(&mut stream).await.map_err(|m| fail(Stage::StartTls, m))?;
                progress.borrow_mut().end();
            }
            StdStream::Tcp(stream.into_std().map_err(|e| fail(Stage::Connect, io_reason(&e)))?)
        }
    };

    // Hand the connected stream to ldap3; with TLS this is the handshake.
    let tls = ep.uses_tls();
    let mut settings = LdapConnSettings::new()
        .set_std_stream(std_stream)
        .set_max_message_len(MAX_MESSAGE_LEN)
        .set_max_received_len(MAX_RECEIVED_LEN);
    let url = match server.scheme {
        Scheme::Ldapi => "ldapi://%2F".to_string(),
        _ if tls => format!("ldaps://{}:{}", url_host(&server.host), server.port),
        _ => format!("ldap://{}:{}", url_host(&server.host), server.port),
    };
    let note = Arc::new(Mutex::new(None));
    if tls {
        progress.borrow_mut().begin(Stage::Tls);
        let config = crate::tls::client_config(&ep.tls, note.clone()).map_err(|m| fail(Stage::Tls, m))?;
        settings = settings.set_config(config);
    }
    let connected = LdapConnAsync::with_settings(settings, &url).await;
    if tls {
        progress.borrow_mut().report.tls_note = note.lock().ok().and_then(|n| n.clone());
    }
    let (conn, mut ldap) =
        connected.map_err(|e| fail(if tls { Stage::Tls } else { Stage::Connect }, ldap_reason(&e)))?;
    if tls {
        progress.borrow_mut().end();
    }
    *driver = Some(tokio::spawn(async move {
        let _ = conn.drive().await;
    }));

    // Postfix sends StartTLS whatever the scheme: on ldaps:// (TLS is already on) slapd answers "Operations
    // error", on ldapi:// libldap fails (-11); every lookup fails.
    if ep.start_tls && server.scheme != Scheme::Ldap {
        progress.borrow_mut().begin(Stage::StartTls);
        let (scheme, error) = if server.scheme == Scheme::Ldaps {
            ("ldaps", "Operations error")
        } else {
            ("ldapi", "Connect error, -11")
        };
        return Err(Failure {
            stage: Stage::StartTls,
            timed_out: false,
            message: format!(
                "start_tls = yes on an {scheme}:// server: Postfix's STARTTLS fails there ({error}); use ldap:// \
                 with start_tls, or {scheme}:// without"
            ),
        });
    }

    // Bind as Postfix would.
    match ep.bind {
        BindMode::None => {}
        BindMode::Simple | BindMode::Sasl => {
            progress.borrow_mut().begin(Stage::Bind);
            let (who, res) = if ep.bind == BindMode::Sasl {
                ("SASL EXTERNAL bind".to_string(), ldap.sasl_external_bind().await)
            } else if ep.bind_dn.is_empty() {
                ("anonymous bind".to_string(), ldap.simple_bind("", ep.bind_pw.expose()).await)
            } else {
                let who = format!("bind as {}", shown_bind_dn(&ep.bind_dn));
                (who, ldap.simple_bind(&ep.bind_dn, ep.bind_pw.expose()).await)
            };
            match res {
                Err(e) => return Err(fail(Stage::Bind, format!("{who} failed: {}", ldap_reason(&e)))),
                Ok(r) if r.rc != 0 => {
                    return Err(fail(Stage::Bind, format!("{who} failed: {}", result_reason(r.rc, &r.text))))
                }
                Ok(_) => {}
            }
            progress.borrow_mut().end();
        }
    }
    Ok(ldap)
}

/// A `bind_dn` as it may be shown (summary line, JSON, journal). An indented `bind_pw = ...` line is, as for
/// Postfix, a continuation of the line before it: when that line is `bind_dn`, the password ends up in the
/// DN. Such a DN is never echoed.
pub fn shown_bind_dn(bind_dn: &str) -> String {
    if bind_dn.to_ascii_lowercase().contains("bind_pw") {
        "the bind_dn of this map (it runs into an indented bind_pw line)".to_string()
    } else {
        bind_dn.to_string()
    }
}

fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

async fn resolve(server: &Server, progress: &RefCell<Progress>) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(ip) = server.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, server.port)]);
    }
    progress.borrow_mut().begin(Stage::Resolve);
    let host = if server.host.is_empty() { "localhost" } else { server.host.as_str() };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, server.port))
        .await
        .map_err(|e| fail(Stage::Resolve, format!("cannot resolve {host}: {}", resolve_reason(&e))))?
        .collect();
    progress.borrow_mut().end();
    if addrs.is_empty() {
        return Err(fail(Stage::Resolve, format!("cannot resolve {host}: no address")));
    }
    Ok(addrs)
}

/// Connect to the first address that accepts, each attempt bounded by `per_attempt` (and the deadline).
async fn connect_any(addrs: &[SocketAddr], per_attempt: Duration, until: Instant) -> Result<TcpStream, Failure> {
    let mut last = None;
    for addr in addrs {
        let attempt_start = Instant::now();
        let attempt_until = (attempt_start + per_attempt).min(until);
        match tokio::time::timeout_at(attempt_until, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Small LDAP requests must not wait for delayed ACKs (Nagle): measured 40 ms per exchange.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(fail(Stage::Connect, io_reason(&e))),
            Err(_) => {
                last = Some(Failure {
                    stage: Stage::Connect,
                    timed_out: true,
                    message: format!("connect to {addr} timed out after {}", secs(attempt_until - attempt_start)),
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| fail(Stage::Connect, "no address to connect to")))
}

/// An LDAP result code as an admin reads it: `invalid credentials (49)`, plus the server's text if any.
pub fn result_reason(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "operations error",
        2 => "protocol error",
        3 => "time limit exceeded",
        4 => "size limit exceeded",
        7 => "authentication method not supported",
        8 => "stronger authentication required",
        11 => "administrative limit exceeded",
        13 => "confidentiality required",
        32 => "no such object",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "server busy",
        52 => "server unavailable",
        53 => "server unwilling to perform",
        80 => "other error",
        _ => "LDAP error",
    };
    let text = text.trim();
    if text.is_empty() {
        format!("{name} ({rc})")
    } else {
        format!("{name} ({rc}): {text}")
    }
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".to_string(),
        ConnectionReset => "connection reset by the server".to_string(),
        NotFound => "no such socket".to_string(),
        PermissionDenied => "permission denied".to_string(),
        TimedOut => "timed out".to_string(),
        UnexpectedEof => "the server closed the connection".to_string(),
        _ => {
            // Strip Rust's " (os error N)" suffix: the admin wants the words.
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

fn resolve_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.strip_prefix("failed to lookup address information: ").unwrap_or(&s).to_lowercase()
}

/// Whether an ldap3 error means the connection is unusable (as opposed to an LDAP result or a bad filter).
pub fn connection_lost(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::EndOfStream
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
    )
}
/// ldap3's errors, without its `I/O error:` wrapping.
pub(crate) fn ldap_reason(e: &LdapError) -> String {
    match e {
        LdapError::Io { source } => {
            if let Some(inner) = source.get_ref() {
                // rustls errors arrive boxed in an io::Error.
                let s = inner.to_string();
                if let Some(rest) = s.strip_prefix("invalid peer certificate: ") {
                    return format!("server certificate rejected: {}", cert_reason(rest));
                }
                return s;
            }
            io_reason(source)
        }
        LdapError::LdapResult { result } => result_reason(result.rc, &result.text),
        // The connection's driver task ended (the server closed the connection) before or while the
        // operation was sent: ldap3 says `result recv error: channel closed`, which means nothing to an admin.
        LdapError::EndOfStream | LdapError::OpSend { .. } | LdapError::ResultRecv { .. } => {
            "the server closed the connection".to_string()
        }
        other => other.to_string(),
    }
}

fn cert_reason(rustls_text: &str) -> String {
    match rustls_text {
        "UnknownIssuer" => "unknown certificate authority (check tls_ca_cert_file)".to_string(),
        "Expired" => "certificate expired".to_string(),
        "NotValidYet" => "certificate not valid yet".to_string(),
        "BadSignature" => "bad signature".to_string(),
        "Revoked" => "certificate revoked".to_string(),
        s if s.starts_with("NotValidForName") => "certificate not valid for this server name".to_string(),
        s => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_read_as_words() {
        assert_eq!(result_reason(49, ""), "invalid credentials (49)");
        assert_eq!(result_reason(32, " x "), "no such object (32): x");
        assert_eq!(result_reason(4242, ""), "LDAP error (4242)");
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(secs(Duration::from_secs(2)), "2 s");
        assert_eq!(secs(Duration::from_millis(500)), "0.5 s");
        assert_eq!(secs(Duration::from_millis(1250)), "1.25 s");
        assert_eq!(secs(Duration::from_micros(2_000_400)), "2 s");
    }

    #[test]
    fn a_failed_ldaps_handshake_fails_over_but_not_a_hung_one_nor_starttls() {
        let tls = |timed_out| Failure { stage: Stage::Tls, timed_out, message: String::new() };
        assert!(tls(false).fails_over(Scheme::Ldaps));
        assert!(!tls(true).fails_over(Scheme::Ldaps), "libldap blocks in a hung handshake");
        assert!(!tls(false).fails_over(Scheme::Ldap), "the handshake after STARTTLS");
        let starttls = Failure { stage: Stage::StartTls, timed_out: false, message: String::new() };
        assert!(!starttls.fails_over(Scheme::Ldaps) && !starttls.fails_over(Scheme::Ldap));
        let connect = Failure { stage: Stage::Connect, timed_out: true, message: String::new() };
        assert!(connect.fails_over(Scheme::Ldapi) && connect.fails_over(Scheme::Ldaps));
    }

    #[test]
    fn a_bind_dn_holding_a_password_is_not_shown() {
        assert_eq!(shown_bind_dn("cn=x,dc=y"), "cn=x,dc=y");
        assert_eq!(
            shown_bind_dn("cn=x,dc=y  bind_pw = S3cret"),
            "the bind_dn of this map (it runs into an indented bind_pw line)"
        );
    }

    #[test]
    fn only_connection_stages_fail_over() {
        assert!(Stage::Resolve.fails_over() && Stage::Connect.fails_over());
        for s in [Stage::StartTls, Stage::Tls, Stage::Bind, Stage::Search] {
            assert!(!s.fails_over(), "{s}");
        }
    }
}
