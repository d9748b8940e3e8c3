//! The checks that look ahead (issue 13): a certificate near its end, a replica that fell behind. Both only add
//! WARNING (or, for a certificate Postfix verifies, CRITICAL within `--cert-crit`) to what the map is; neither
//! turns a working map CRITICAL unless Postfix would fail too.

use std::time::{Duration, SystemTime};

use super::{add_reason, MapVerdict, State};
use crate::map::Map;
use crate::probe::{ConnReport, Stage};

/// The limits of the checks that look ahead: how near a certificate's expiry is a WARNING (`--cert-warn`) or,
/// when Postfix verifies it, CRITICAL (`--cert-crit`; zero: never), and the time the check runs at.
#[derive(Clone, Copy, Debug)]
pub struct Foresight {
    pub cert_warn: Duration,
    pub cert_crit: Duration,
    /// WARNING when a server's data lags the freshest server of its map by more than this (zero: never).
    pub replica_lag: Duration,
    pub now: SystemTime,
}

impl Default for Foresight {
    fn default() -> Foresight {
        Foresight {
            cert_warn: Duration::ZERO,
            cert_crit: Duration::ZERO,
            replica_lag: Duration::ZERO,
            now: SystemTime::now(),
        }
    }
}

/// The certificate of every TLS server of the map, standbys included (they are where Postfix goes when the first
/// fails): WARNING when fewer than `--cert-warn` remain (also once expired, if Postfix does not verify it);
/// CRITICAL when fewer than `--cert-crit` remain and Postfix verifies it (`tls_require_cert = yes`): it will
/// then fail every lookup. A certificate the handshake already refused is reported by the handshake.
pub(super) fn certificates(verdict: &mut MapVerdict, map: &Map, f: &Foresight) {
    let now = f.now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut problems = Vec::new();
    for s in verdict.servers.iter().filter(|s| s.failure.as_ref().is_none_or(|e| e.stage > Stage::Tls)) {
        let Some(c) = &s.certificate else { continue };
        let left = c.not_after - now;
        let within = |limit: Duration| !limit.is_zero() && left < limit.as_secs() as i64;
        let when = if left >= 0 {
            format!("expires in {} ({})", crate::reason::span(left as u64), crate::reason::utc(c.not_after))
        } else {
            format!("expired {} ago ({})", crate::reason::span((-left) as u64), crate::reason::utc(c.not_after))
        };
        let what = format!("{}: the certificate of {} {when}", s.url, c.subject);
        if map.tls.require_cert && within(f.cert_crit) {
            problems.push((State::Critical, format!("{what}: Postfix verifies it (tls_require_cert = yes)")));
        } else if within(f.cert_warn) || left < 0 {
            let verified = if map.tls.require_cert { "verifies" } else { "does not verify" };
            problems.push((State::Warning, format!("{what} (Postfix {verified} it)")));
        }
    }
    for (state, text) in problems {
        add_reason(verdict, state, &text);
    }
}

/// For a map with several servers: how far each connected server's data lags the freshest one (contextCSN of the
/// naming context holding the base, per server id). WARNING when a server lags more than `limit`: Postfix fails
/// over to it when the servers before it fail, and new users are then unknown there (550). A server that does
/// not expose contextCSN is "not compared", never a failure.
pub(super) fn replicas(verdict: &mut MapVerdict, reports: &[&ConnReport], limit: Duration) {
    if reports.len() < 2 {
        return;
    }
    let Some(base) = verdict.base.clone() else { return };
    let mut read: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, (server, report)) in verdict.servers.iter_mut().zip(reports).enumerate() {
        if server.abandoned || server.failure.as_ref().is_some_and(|f| f.stage < Stage::Search) {
            continue;
        }
        let csn = report
            .context_csn
            .iter()
            .find(|(nc, _)| {
                let (b, n) = (base.to_ascii_lowercase().replace(", ", ","), nc.to_ascii_lowercase().replace(", ", ","));
                b == n || b.ends_with(&format!(",{n}")) || nc == &base
            })
            .map(|(_, v)| v.clone());
        match csn {
            Some(Ok(values)) => read.push((i, values)),
            Some(Err(why)) => server.replica = Some(Err(format!("not compared: {why}"))),
            None => server.replica = Some(Err("not compared: contextCSN not read".to_string())),
        }
    }
    if read.len() < 2 {
        return;
    }
    let lags = crate::probe::replica::lags(&read.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
    let mut stale = Vec::new();
    for ((i, _), lag) in read.iter().zip(lags) {
        let server = &mut verdict.servers[*i];
        match lag {
            None => server.replica = Some(Err("not compared: contextCSN cannot be read as a CSN".to_string())),
            Some(lag) => {
                let lag = Duration::from_secs_f64(lag);
                server.replica = Some(Ok(lag));
                if !limit.is_zero() && lag > limit {
                    stale.push(format!(
                        "{}: its data lags the freshest server of the map by {} (contextCSN): a replica that stopped \
                         replicating? Postfix uses it when the servers before it fail",
                        server.url,
                        crate::reason::span(lag.as_secs())
                    ));
                }
            }
        }
    }
    if !stale.is_empty() {
        add_reason(verdict, State::Warning, &stale.join("; "));
    }
}
