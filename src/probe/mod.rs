//! Contact LDAP servers the way Postfix's client does, every server at once, under ONE deadline.
//!
//! For each [`Job`] (a distinct server + identity + TLS settings): resolve, TCP connect (TCP_NODELAY; per address,
//! each attempt bounded by the map's `timeout` as libldap's network timeout), STARTTLS or ldaps handshake, bind
//! (none, simple, SASL EXTERNAL) ([`connect`]), then a base-scope search of each search base asking for no
//! attributes (`1.1`), then the canary lookups. Every stage is timed; the first failure ends the job and names
//! its stage. The whole batch runs under a single deadline: whatever the servers do (blackholed connect, silence
//! after accept, a stalled handshake or bind or search, slow DNS), [`run`] returns by the deadline and reports
//! the stage each job was stuck in. It returns earlier once every map's outcome is known (the server Postfix
//! would use has finished): servers Postfix would not reach are not waited for, and their jobs are reported as
//! [`ConnReport::abandoned`].
//!
//! Probing never parses configuration text and never decides a verdict.

pub mod certinfo;
pub mod connect;
mod raw;
pub mod replica;
pub mod search;
pub mod tls;

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::time::Instant;

use crate::deadline::Deadline;
use crate::map::Scheme;
use crate::plan::{Job, LookupJob, Search};
use crate::reason::secs;
pub use search::Found;

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

/// The result of one search of a job ([`Search`]): how long it took and what it found, or why it failed.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchReport {
    pub search: Search,
    pub result: Result<(Duration, Found), Failure>,
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
    /// The server certificate's validity, subject and issuer (TLS connections; also when it did not verify).
    pub certificate: Option<certinfo::CertInfo>,
    /// For servers of maps with more than one server: the contextCSN of each naming context holding a base.
    pub context_csn: replica::ContextCsns,
    /// One report per search of the job that was made before the end (in job order).
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
    /// The report for `search`: the search's own result, or the connection failure that prevented it, or a
    /// timeout if the deadline came first.
    pub fn search_result(&self, search: &Search) -> Result<(Duration, Found), Failure> {
        if let Some(s) = self.searches.iter().find(|s| &s.search == search) {
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

/// The least time standbys are given to finish once every map is decided (see [`run`]).
const GRACE: Duration = Duration::from_millis(50);

/// The most threads resolving host names at once (the unit's `TasksMax=` counts them).
const BLOCKING_THREADS: usize = 16;

/// The single-threaded I/O runtime every check and query runs on. Drop it with `shutdown_background()`: a hung
/// name lookup may still hold a blocking thread, and the process must not wait for it.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    // Name lookups (getaddrinfo) run on blocking threads: a bounded few, queued beyond, all under the deadline.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("cannot start the I/O runtime")
}

/// Run every job concurrently; return one report per job (same order) by the deadline.
///
/// `maps` lists, for each map, the indexes of its jobs in `server_host` order. The run ends as soon as every
/// map is decided (see [`map_decided`]): the jobs still running then serve no map that needs them, and are
/// stopped and reported as [`ConnReport::abandoned`]. A job not listed in any map is not waited for.
pub fn run(rt: &tokio::runtime::Runtime, jobs: &[Job], maps: &[Vec<usize>], deadline: &Deadline) -> Vec<ConnReport> {
    rt.block_on(async {
        let start = deadline.start_tokio();
        let until = deadline.until_tokio();
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
            // Every map is decided. The servers still running (standbys) get a moment more, as long again as the
            // check has taken (at least GRACE, never past the deadline): a healthy one finishes, so its
            // certificate and replica state are seen; a hung one is not waited for.
            let grace_until = (Instant::now() + start.elapsed().max(GRACE)).min(until);
            while !pending.is_empty() {
                match tokio::time::timeout_at(grace_until, pending.next()).await {
                    Ok(Some((i, report))) => reports[i] = Some(report),
                    _ => break,
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
pub(super) struct Progress {
    pub(super) report: ConnReport,
    pub(super) current: Option<Stage>,
    stage_start: Option<Instant>,
}

impl Progress {
    pub(super) fn begin(&mut self, stage: Stage) {
        self.current = Some(stage);
        self.stage_start = Some(Instant::now());
    }

    pub(super) fn end(&mut self) -> Duration {
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
    let checked = tokio::time::timeout_at(until, connect_and_check(job, &progress, until, &mut driver.0));
    // Defence in depth: a reply the LDAP client cannot handle (a panic the vendored ldap3 still has) is this
    // server's failure, in the stage it was in, not the end of the whole check.
    let outcome = match std::panic::AssertUnwindSafe(checked).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let stage = progress.borrow().current.unwrap_or(Stage::Connect);
            let why = crate::panic_text(&*panic);
            Ok(Err(Failure {
                stage,
                timed_out: false,
                message: format!("malformed reply: the LDAP client failed ({why})"),
            }))
        }
    };
    drop(driver);
    let mut p = progress.into_inner();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => p.report.failure = Some(failure),
        Err(_elapsed) => {
            let stage = p.current.unwrap_or(Stage::Connect);
            let after = secs(until - start);
            let mut message = format!("timed out after {after} in {stage}");
            if stage == Stage::Tls && job.endpoint.server.scheme == Scheme::Ldaps {
                // libldap 2.5 polls an ldaps handshake only with LDAP_OPT_CONNECT_ASYNC, which Postfix does not
                // set: it busy-loops (fixed in OpenLDAP 2.7, ITS#8047).
                message
                    .push_str(": Postfix itself would hang here, spinning a CPU (libldap 2.5 has no timeout for it)");
            }
            let failure = Failure { stage, timed_out: true, message };
            if stage == Stage::Search {
                // The search made when time ran out gets the timeout; later ones were never reached.
                let search = job.searches.iter().find(|b| !p.report.searches.iter().any(|s| &s.search == *b));
                if let Some(search) = search {
                    p.report.searches.push(SearchReport { search: search.clone(), result: Err(failure.clone()) });
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

/// A failure whose message names its stage: `connect failed: connection refused`.
pub(super) fn fail(stage: Stage, reason: impl Into<String>) -> Failure {
    let reason = reason.into();
    let message = match stage {
        Stage::Connect => format!("connect failed: {reason}"),
        Stage::StartTls => format!("STARTTLS failed: {reason}"),
        Stage::Tls => format!("TLS handshake failed: {reason}"),
        Stage::Resolve | Stage::Bind | Stage::Search | Stage::Lookup => reason,
    };
    Failure { stage, timed_out: false, message }
}

/// Connect and bind, then search each base and look each canary up on the connection.
async fn connect_and_check(
    job: &Job,
    progress: &RefCell<Progress>,
    until: Instant,
    driver: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), Failure> {
    let mut ldap = connect::connect(&job.endpoint, progress, until, driver).await?;
    // Once the connection is lost, what was not asked yet is reported as such, not as a deadline.
    let mut lost: Option<&str> = None;
    for s in &job.searches {
        let result = match lost {
            Some(during) => Err(fail(
                Stage::Search,
                format!("search of {} not made: the connection was lost during {during}", s.base),
            )),
            None => {
                let (result, gone) = one_search(job, &mut ldap, s, progress, until).await;
                if gone {
                    lost = Some("an earlier search");
                }
                result
            }
        };
        progress.borrow_mut().report.searches.push(SearchReport { search: s.clone(), result });
    }
    if job.replica && lost.is_none() {
        let bases: Vec<&str> = job.searches.iter().map(|s| s.base.as_str()).collect();
        if let Ok(csns) = connect::within(&job.endpoint, until, Stage::Search, replica::read(&mut ldap, &bases)).await {
            progress.borrow_mut().report.context_csn = csns;
        }
    }
    for l in &job.lookups {
        let (result, elapsed) = match lost {
            Some(during) => {
                let message = format!("canary {} not looked up: the connection was lost during {during}", l.key);
                (Err(fail(Stage::Lookup, message)), Duration::ZERO)
            }
            None => {
                // The canaries, on the same connection: what Postfix would answer for each key.
                progress.borrow_mut().begin(Stage::Lookup);
                let result = crate::lookup::lookup(&mut ldap, &l.spec, &l.query).await;
                let elapsed = progress.borrow_mut().end();
                if matches!(&result, Err(e) if e.connection_lost) {
                    lost = Some("an earlier canary lookup");
                }
                (result.map_err(|e| fail(Stage::Lookup, e.message)), elapsed)
            }
        };
        progress.borrow_mut().report.lookups.push(LookupReport { map: l.map, key: l.key.clone(), result, elapsed });
    }
    let _ = ldap.unbind().await;
    Ok(())
}

/// One search of the job, under the map's timeout: its time and what it found, and whether the connection is
/// lost (Postfix abandons a search that times out and drops the connection).
async fn one_search(
    job: &Job,
    ldap: &mut ldap3::Ldap,
    s: &Search,
    progress: &RefCell<Progress>,
    until: Instant,
) -> (Result<(Duration, Found), Failure>, bool) {
    progress.borrow_mut().begin(Stage::Search);
    let (result, gone) = match connect::within(&job.endpoint, until, Stage::Search, search::run(ldap, s)).await {
        Ok(done) => done,
        Err(f) => (Err(f), true),
    };
    let elapsed = progress.borrow_mut().end();
    if let Ok(Found::Base { readable: false }) = &result {
        // The base exists (rc 0) but its entry is not readable by this identity (an ACL with `search` but not
        // `read` on it): Postfix's subtree searches below it still work.
        let note = format!("base {} answered with no entry: readable? canaries tell", s.base);
        progress.borrow_mut().report.notes.push(note);
    }
    (result.map(|found| (elapsed, found)), gone)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(connect::shown_bind_dn("cn=x,dc=y"), "cn=x,dc=y");
        assert_eq!(
            connect::shown_bind_dn("cn=x,dc=y  bind_pw = S3cret"),
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
