//! Connect, STARTTLS/TLS and bind: the part of a check that Postfix's `dict_ldap_connect()` does, each stage
//! timed and named when it fails.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, StdStream};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::raw;
use super::{fail, Failure, Progress, Stage};
use crate::deadline::Deadline;
use crate::map::ldap_url::DEFAULT_LDAPI_SOCKET;
use crate::map::{BindMode, Scheme, Server};
use crate::plan::Endpoint;
use crate::reason::{io_reason, ldap_reason, resolve_reason, result_reason, secs};

/// The largest LDAP message a server may send (the vendored ldap3 refuses a larger one as soon as its length
/// field arrives, before buffering it): one entry with its values (a group of some 100,000 members). Issue 10.
pub const MAX_MESSAGE_LEN: usize = 4 << 20;

/// The most bytes of LDAP messages a server may send on one connection (every search and canary lookup of a
/// check, or of a `--policy` process between two reconnections): with the searches' own entry and byte caps
/// (lookup::search), it bounds the memory a server streaming without end takes before the deadline.
pub const MAX_RECEIVED_LEN: u64 = 8 << 20;

/// A connected and bound session, for `--query`: the handle and the task that drives the connection (stopped
/// when the session is dropped).
pub struct Session {
    pub ldap: Ldap,
    driver: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connect, STARTTLS or TLS, and bind to `ep` as the probe does, all by the deadline; the failure names the
/// stage (a timeout names the stage it interrupted).
pub async fn open_session(ep: &Endpoint, deadline: &Deadline) -> Result<Session, Failure> {
    let progress = RefCell::new(Progress::default());
    let mut driver = None;
    let start = Instant::now();
    let until = deadline.until_tokio();
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

/// Connect, STARTTLS/TLS and bind. `driver` receives the task that drives the connection once there is one.
pub(super) async fn connect(
    ep: &Endpoint,
    progress: &RefCell<Progress>,
    until: Instant,
    driver: &mut Option<JoinHandle<()>>,
) -> Result<Ldap, Failure> {
    // With StartTLS, Postfix's one alarm(timeout) covers the connects, the StartTLS request and the handshake.
    let starttls = ep.start_tls && ep.server.scheme == Scheme::Ldap;
    let tls_until = if starttls { op_until(ep, until) } else { until };
    let alarm = (starttls && tls_until < until).then_some(tls_until);
    let stream = match open_stream(ep, progress, until, alarm).await {
        // The alarm went off while the connects were still waiting: Postfix does not move on to the next server.
        Err(f) if alarm.is_some() && f.stage == Stage::Connect && f.timed_out => {
            let t = secs(ep.timeout);
            return Err(Failure {
                stage: Stage::StartTls,
                timed_out: true,
                message: format!(
                    "no connection within {t}: with start_tls, Postfix's one alarm (timeout = {t}) covers the \
                     connects and StartTLS, and it does not move on to the next server"
                ),
            });
        }
        other => other?,
    };
    let mut ldap = handshake(ep, stream, progress, until, alarm, driver).await?;
    // Postfix sends StartTLS whatever the scheme: on ldaps:// (TLS is already on) slapd answers "Operations
    // error", on ldapi:// libldap fails (-11); every lookup fails.
    if ep.start_tls && ep.server.scheme != Scheme::Ldap {
        progress.borrow_mut().begin(Stage::StartTls);
        let (scheme, error) = if ep.server.scheme == Scheme::Ldaps {
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
    bind(ep, &mut ldap, progress, until).await?;
    Ok(ldap)
}

/// The connected stream: a Unix socket, or each resolved address in turn (as libldap does) with the network
/// timeout, then StartTLS on `ldap://` with `start_tls = yes`.
async fn open_stream(
    ep: &Endpoint,
    progress: &RefCell<Progress>,
    until: Instant,
    alarm: Option<Instant>,
) -> Result<StdStream, Failure> {
    let server = &ep.server;
    if server.scheme == Scheme::Ldapi {
        let path =
            if server.host.is_empty() { PathBuf::from(DEFAULT_LDAPI_SOCKET) } else { PathBuf::from(&server.host) };
        progress.borrow_mut().begin(Stage::Connect);
        let stream = UnixStream::connect(&path).await.map_err(|e| fail(Stage::Connect, io_reason(&e)))?;
        progress.borrow_mut().end();
        progress.borrow_mut().report.address = Some(path.display().to_string());
        return Ok(StdStream::Unix(stream.into_std().map_err(|e| fail(Stage::Connect, io_reason(&e)))?));
    }
    let addrs = resolve(server, progress).await?;
    progress.borrow_mut().begin(Stage::Connect);
    let mut stream = connect_any(&addrs, ep.timeout, alarm.unwrap_or(until)).await?;
    progress.borrow_mut().end();
    progress.borrow_mut().report.address = stream.peer_addr().ok().map(|a| a.to_string());
    if ep.start_tls && server.scheme == Scheme::Ldap {
        progress.borrow_mut().begin(Stage::StartTls);
        let started = match alarm {
            Some(alarm) => tokio::time::timeout_at(alarm, raw::start_tls(&mut stream)).await.map_err(|_| Failure {
                stage: Stage::StartTls,
                timed_out: true,
                message: format!("timed out after {} in STARTTLS (the map's timeout)", secs(ep.timeout)),
            })?,
            None => raw::start_tls(&mut stream).await,
        };
        started.map_err(|m| fail(Stage::StartTls, m))?;
        progress.borrow_mut().end();
    } else if ep.version == 2 && ep.bind == BindMode::Simple {
        // ldap3 binds as v3 only: the v2 bind is made here, before ldap3 gets the stream.
        progress.borrow_mut().begin(Stage::Bind);
        let who = bind_who(ep);
        let bound = raw::bind_v2(&mut stream, &ep.bind_dn, ep.bind_pw.expose());
        within(ep, until, Stage::Bind, bound)
            .await?
            .map_err(|m| fail(Stage::Bind, format!("{who} (LDAPv2) failed: {m}")))?;
        progress.borrow_mut().end();
    }
    Ok(StdStream::Tcp(stream.into_std().map_err(|e| fail(Stage::Connect, io_reason(&e)))?))
}

/// Hand the connected stream to ldap3 (with TLS this is the handshake) and start the task that drives it.
async fn handshake(
    ep: &Endpoint,
    stream: StdStream,
    progress: &RefCell<Progress>,
    until: Instant,
    alarm: Option<Instant>,
    driver: &mut Option<JoinHandle<()>>,
) -> Result<Ldap, Failure> {
    let server = &ep.server;
    let tls = ep.uses_tls();
    let mut settings = LdapConnSettings::new()
        .set_std_stream(stream)
        .set_max_message_len(MAX_MESSAGE_LEN)
        .set_max_received_len(MAX_RECEIVED_LEN);
    let url = match server.scheme {
        Scheme::Ldapi => "ldapi://%2F".to_string(),
        _ if tls => format!("ldaps://{}:{}", url_host(&server.host), server.port),
        _ => format!("ldap://{}:{}", url_host(&server.host), server.port),
    };
    let note = Arc::new(Mutex::new(super::tls::Seen::default()));
    if tls {
        progress.borrow_mut().begin(Stage::Tls);
        let config =
            super::tls::client_config(&ep.tls, note.clone(), until.into_std()).map_err(|m| fail(Stage::Tls, m))?;
        settings = settings.set_config(config);
    }
    // After StartTLS the handshake is under Postfix's alarm; an ldaps handshake has no timeout in libldap 2.5
    // (only the deadline bounds it).
    let connected = match alarm.filter(|a| *a < until) {
        None => LdapConnAsync::with_settings(settings, &url).await,
        Some(alarm) => match tokio::time::timeout_at(alarm, LdapConnAsync::with_settings(settings, &url)).await {
            Ok(connected) => connected,
            Err(_) => {
                let message = format!("timed out after {} in TLS handshake (the map's timeout)", secs(ep.timeout));
                return Err(Failure { stage: Stage::Tls, timed_out: true, message });
            }
        },
    };
    if tls {
        if let Ok(seen) = note.lock() {
            let mut p = progress.borrow_mut();
            p.report.tls_note = seen.note.clone();
            p.report.certificate = seen.cert.clone();
        }
    }
    let (conn, ldap) = connected.map_err(|e| fail(if tls { Stage::Tls } else { Stage::Connect }, ldap_reason(&e)))?;
    if tls {
        progress.borrow_mut().end();
    }
    *driver = Some(tokio::spawn(async move {
        let _ = conn.drive().await;
    }));
    Ok(ldap)
}

/// Bind as Postfix would: none, simple (anonymous with an empty `bind_dn`), or SASL EXTERNAL.
async fn bind(ep: &Endpoint, ldap: &mut Ldap, progress: &RefCell<Progress>, until: Instant) -> Result<(), Failure> {
    let v2_done = ep.version == 2 && ep.server.scheme == Scheme::Ldap && !ep.start_tls;
    if ep.bind == BindMode::None || (ep.bind == BindMode::Simple && v2_done) {
        return Ok(());
    }
    progress.borrow_mut().begin(Stage::Bind);
    let who = bind_who(ep);
    let res = if ep.bind == BindMode::Sasl {
        // Postfix's SASL bind has no timeout (ldap_sasl_interactive_bind_s): only the deadline bounds it.
        ldap.sasl_external_bind().await
    } else {
        within(ep, until, Stage::Bind, ldap.simple_bind(&ep.bind_dn, ep.bind_pw.expose())).await?
    };
    match res {
        Err(e) => return Err(fail(Stage::Bind, format!("{who} failed: {}", ldap_reason(&e)))),
        Ok(r) if r.rc != 0 => return Err(fail(Stage::Bind, format!("{who} failed: {}", result_reason(r.rc, &r.text)))),
        Ok(_) => {}
    }
    progress.borrow_mut().end();
    Ok(())
}

/// How messages name the bind of `ep`: `bind as DN`, `anonymous bind`, `SASL EXTERNAL bind`.
fn bind_who(ep: &Endpoint) -> String {
    match ep.bind {
        BindMode::Sasl => "SASL EXTERNAL bind".to_string(),
        _ if ep.bind_dn.is_empty() => "anonymous bind".to_string(),
        _ => format!("bind as {}", shown_bind_dn(&ep.bind_dn)),
    }
}

/// When an operation of `ep` started now must be over: the map's `timeout` from now, within the deadline.
pub(super) fn op_until(ep: &Endpoint, until: Instant) -> Instant {
    (Instant::now() + ep.timeout).min(until)
}

/// `op` bounded as Postfix bounds it: by the map's `timeout` from now (and the deadline). Running out of the
/// map's timeout is this stage's failure; running out of the deadline is left to the caller's deadline.
pub(super) async fn within<T>(
    ep: &Endpoint,
    until: Instant,
    stage: Stage,
    op: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    let bound = op_until(ep, until);
    match tokio::time::timeout_at(bound, op).await {
        Ok(v) => Ok(v),
        Err(_) if bound < until => Err(Failure {
            stage,
            timed_out: true,
            message: format!("timed out after {} in {stage} (the map's timeout)", secs(ep.timeout)),
        }),
        // The deadline itself: wait for the caller's timeout, which names the deadline.
        Err(_) => std::future::pending().await,
    }
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
