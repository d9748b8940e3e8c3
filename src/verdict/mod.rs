//! The verdict: what Postfix would experience with each map, and the worst of them.
//!
//! Postfix hands all of a map's `server_host` entries to libldap as one URL list; libldap tries them in order
//! and moves on to the next one **only when the connection cannot be opened** (OpenLDAP
//! `ldap_new_connection()` / `ldap_int_open_connection()`; verified with Postfix 3.7: a refused first server
//! fails over silently, and so does an `ldaps://` server whose TLS handshake fails, e.g. its certificate is
//! rejected; a first server that accepts and then stalls (also in an `ldaps://` handshake), fails STARTTLS,
//! refuses the bind or lacks the search base is a lookup error, 451). So per map:
//! - the first server whose connection opens decides: if anything after that fails (STARTTLS and its TLS
//!   handshake, bind, search, a timeout), the map is CRITICAL even when a later server is fine;
//! - servers before it that could not be reached (or whose `ldaps://` handshake failed) make the map WARNING
//!   (Postfix waits for them on every new connection);
//! - no server reachable: CRITICAL.
//!
//! A map that cannot be read or that Postfix would refuse to open is UNKNOWN; a map that uses a setting this
//! tool cannot check (a SASL mechanism other than EXTERNAL) is WARNING, "not checked". The worst map wins
//! (CRITICAL > UNKNOWN > WARNING > OK); response-time thresholds apply on top.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::lookup::Prepared;
mod foresight;

pub use foresight::Foresight;
use foresight::{certificates, replicas};

use crate::map::{ConfigError, Map, Scheme};
use crate::plan::{Canary, CanarySource, MapPlan, MapProblem, Plan, Presence, Search};
use crate::probe::certinfo::CertInfo;
use crate::probe::{ConnReport, Failure, Found, Stage, StageTime};
use crate::range::Range;

/// A Nagios state, with its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl State {
    pub fn code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    fn severity(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Unknown => 2,
            State::Critical => 3,
        }
    }

    /// The worse of two states: CRITICAL > UNKNOWN > WARNING > OK.
    pub fn worst(self, other: State) -> State {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What one server did for one map.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Postfix would use this server: its outcome decides the map.
    Decides,
    /// Postfix would try it first, fail to connect, and move on.
    FailedOver,
    /// Postfix would not reach it while an earlier server accepts connections; probed for the record (or not
    /// waited for: [`ServerVerdict::abandoned`]).
    Standby,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerVerdict {
    pub url: String,
    pub role: Role,
    pub address: Option<String>,
    pub stages: Vec<StageTime>,
    /// The time of this map's search (presence check or base search), when it was made.
    pub search: Option<Duration>,
    /// What this map's search found on this server, when it was made.
    pub found: Option<Found>,
    pub failure: Option<Failure>,
    pub tls_note: Option<String>,
    /// The server certificate (TLS servers), and the seconds left until it expires when it is near (see
    /// [`Foresight`]).
    pub certificate: Option<CertInfo>,
    /// How far this server's data lags the freshest server of the map (maps with several servers), or why it was
    /// not compared.
    pub replica: Option<Result<Duration, String>>,
    /// Connect to the end of this map's search (or to the failure).
    pub elapsed: Duration,
    /// A standby server whose check was stopped unfinished once the map was decided (not needed: Postfix uses
    /// an earlier server): no failure, no search, `elapsed` is the time it ran.
    pub abandoned: bool,
    /// Remarks on this map's checks that change nothing (the base answered without its entry).
    pub notes: Vec<String>,
}

impl ServerVerdict {
    /// A standby whose check was stopped unfinished after `elapsed`.
    fn abandoned(url: String, elapsed: Duration) -> ServerVerdict {
        ServerVerdict {
            url,
            role: Role::Standby,
            address: None,
            stages: Vec::new(),
            search: None,
            found: None,
            failure: None,
            tls_note: None,
            certificate: None,
            replica: None,
            elapsed,
            abandoned: true,
            notes: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MapVerdict {
    pub name: String,
    pub path: PathBuf,
    /// How the summary line names the map: its file name, or `PATH:LINE` for a map Postfix would reject.
    pub location: String,
    pub state: State,
    /// Why the map is not OK, in one line (without the map name).
    pub reason: Option<String>,
    /// The base that was searched, if any.
    pub base: Option<String>,
    /// The map's presence check (the loosened query that must find an entry), or why it has none.
    pub presence: Result<Presence, String>,
    /// The time the deciding server took for this map.
    pub elapsed: Option<Duration>,
    pub servers: Vec<ServerVerdict>,
    /// What Postfix would warn about when opening the map (`FILE:LINE: text`).
    pub warnings: Vec<String>,
    /// The canary lookups on the deciding server, in order.
    pub canaries: Vec<CanaryVerdict>,
    /// The Postfix parameters that use this map (when the maps were discovered from main.cf).
    pub used_by: Vec<String>,
    /// The master.cf services whose daemons open the map, and how (discovery).
    pub services: Vec<crate::map::ServiceUse>,
}

/// What became of one canary key on the map's deciding server.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryVerdict {
    pub key: String,
    pub outcome: CanaryOutcome,
    /// How long the lookup took, when it ran.
    pub elapsed: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CanaryOutcome {
    /// Found: the value Postfix's lookup returns (values joined with commas).
    Found(String),
    /// Searched, nothing: Postfix would reject the address (550).
    NotFound,
    /// The lookup failed: Postfix would defer (451).
    Failed(String),
    /// Postfix never queries LDAP for this key (domain restriction, missing key parts): a configuration mistake.
    Skipped(String),
    /// Not looked up: no server of the map could be used.
    NotRun,
}

/// Response-time thresholds (-w, -c), in seconds.
#[derive(Clone, Debug, Default)]
pub struct Thresholds {
    pub warning: Option<Range>,
    pub critical: Option<Range>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub state: State,
    pub maps: Vec<MapVerdict>,
    /// Number of distinct connections probed.
    pub servers: usize,
    pub elapsed: Duration,
    /// Set when a threshold changed the state: `response time 1.204 s above the warning threshold 1`.
    pub threshold: Option<String>,
}

impl Report {
    /// The first-line text after `LDAP STATE - ` (without perfdata).
    pub fn summary(&self) -> String {
        // The maps that are not OK, worst first.
        let mut bad: Vec<&MapVerdict> = self.maps.iter().filter(|m| m.state != State::Ok).collect();
        bad.sort_by_key(|m| std::cmp::Reverse(m.state.severity()));
        let problems: Vec<String> =
            bad.iter().filter_map(|m| m.reason.as_ref().map(|r| format!("{}: {}", m.location, r))).collect();
        let counts = format!(
            "{} map{}, {} server{} in {:.3} s",
            self.maps.len(),
            if self.maps.len() == 1 { "" } else { "s" },
            self.servers,
            if self.servers == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64()
        );
        match (&self.threshold, problems.is_empty()) {
            (Some(t), true) => format!("{counts}: {t}"),
            (Some(t), false) => format!("{}; {t}", problems.join("; ")),
            (None, true) => counts,
            (None, false) => problems.join("; "),
        }
    }
}

/// A map that could not be read or parsed: UNKNOWN.
pub fn config_failure(error: &ConfigError) -> MapVerdict {
    MapVerdict {
        services: Vec::new(),
        canaries: Vec::new(),
        used_by: Vec::new(),
        name: crate::map::file_name(&error.path),
        path: error.path.clone(),
        location: match error.line {
            Some(line) => format!("{}:{line}", error.path.display()),
            None => error.path.display().to_string(),
        },
        state: State::Unknown,
        reason: Some(error.message.clone()),
        base: None,
        presence: Err("the map cannot be read".to_string()),
        elapsed: None,
        servers: Vec::new(),
        warnings: Vec::new(),
    }
}

/// Decide every map of `plan` from the connection reports (one per job, same order).
pub fn decide(plan: &Plan, reports: &[ConnReport], foresight: &Foresight) -> Vec<MapVerdict> {
    plan.maps.iter().enumerate().map(|(index, mp)| decide_one(plan, index, mp, reports, foresight)).collect()
}

fn decide_one(plan: &Plan, index: usize, mp: &MapPlan, reports: &[ConnReport], foresight: &Foresight) -> MapVerdict {
    let map = match &mp.map {
        Ok(map) => map,
        Err(e) => return MapVerdict { used_by: mp.used_by.clone(), ..config_failure(e) },
    };
    let mut verdict = new_verdict(mp, map);
    match &mp.problem {
        Some(MapProblem::Unusable(why)) => {
            verdict.state = State::Unknown;
            verdict.reason = Some(why.clone());
        }
        Some(MapProblem::Broken(why)) => {
            verdict.state = State::Critical;
            verdict.reason = Some(why.clone());
        }
        Some(MapProblem::NotChecked(why)) => {
            verdict.state = State::Warning;
            verdict.reason = Some(format!("not checked: {why}"));
        }
        None => {
            decide_map(
                &mut verdict,
                mp.search.as_ref(),
                mp.jobs.iter().map(|&j| {
                    let server = &plan.jobs[j].endpoint.server;
                    (server.url(), server.scheme, &reports[j])
                }),
            );
            let decider = verdict.servers.iter().position(|s| s.role == Role::Decides).map(|i| &reports[mp.jobs[i]]);
            decide_canaries(&mut verdict, index, &mp.canaries, decider);
        }
    }
    for why in &mp.chroot {
        add_reason(&mut verdict, State::Critical, why);
    }
    certificates(&mut verdict, map, foresight);
    let reports: Vec<&ConnReport> = mp.jobs.iter().map(|&j| &reports[j]).collect();
    replicas(&mut verdict, &reports, foresight.replica_lag);
    folded_bind_pw(&mut verdict, map);
    verdict
}

/// The verdict of a map that was read, before anything is decided: OK, with what Postfix would warn about.
fn new_verdict(mp: &MapPlan, map: &Map) -> MapVerdict {
    let warnings = map
        .warnings
        .iter()
        .map(|w| match w.line {
            Some(l) => format!("{}:{}: {}", map.path.display(), l, w.message),
            None => format!("{}: {}", map.path.display(), w.message),
        })
        .collect();
    MapVerdict {
        name: map.name(),
        location: map.name(),
        path: map.path.clone(),
        state: State::Ok,
        reason: None,
        base: mp.base.clone(),
        presence: match (&mp.search, &mp.presence_skipped) {
            (Some(Search { presence: Some(p), .. }), _) => Ok(p.clone()),
            (_, Some(why)) => Err(why.clone()),
            _ => Err("no static part of search_base to search from".to_string()),
        },
        elapsed: None,
        servers: Vec::new(),
        warnings,
        canaries: Vec::new(),
        used_by: mp.used_by.clone(),
        services: mp.services.clone(),
    }
}

/// Make the map at least `state`, with `why` after its other reasons.
fn add_reason(verdict: &mut MapVerdict, state: State, why: &str) {
    verdict.state = verdict.state.worst(state);
    verdict.reason = Some(match verdict.reason.take() {
        Some(r) => format!("{r}; {why}"),
        None => why.to_string(),
    });
}

/// An indented `bind_pw` line is a mistake even where the directory happens to let Postfix work without the
/// password: the map is at least WARNING, with the line to fix and what Postfix makes of it.
fn folded_bind_pw(verdict: &mut MapVerdict, map: &Map) {
    let mut text = Vec::new();
    for f in &map.folded {
        let effect = match f.param.as_str() {
            "server_host" => "; Postfix would take its words for server names (this check does not contact them)",
            "domain" => "; its words would be domain patterns (not used by this check)",
            _ => "",
        };
        text.push(format!(
            "{}:{}: the bind_pw line is indented: Postfix reads it as part of {} (line {}) and leaves bind_pw unset{effect}; \
             start it in the first column",
            map.path.display(),
            f.bind_pw_line,
            f.param,
            f.line
        ));
    }
    if text.is_empty() {
        return;
    }
    let text = text.join("; ");
    verdict.state = verdict.state.worst(State::Warning);
    verdict.reason = Some(match verdict.reason.take() {
        Some(r) => format!("{r}; {text}"),
        None => text,
    });
}

fn decide_map<'a>(
    verdict: &mut MapVerdict,
    search: Option<&Search>,
    servers: impl Iterator<Item = (String, Scheme, &'a ConnReport)>,
) {
    let mut decided = false;
    let mut skipped: Vec<String> = Vec::new();
    for (url, scheme, report) in servers {
        let server = server_verdict(url, scheme, report, search, decided);
        match server.role {
            Role::FailedOver => skipped.push(format!(
                "{}: {}",
                server.url,
                server.failure.as_ref().map(|f| f.to_string()).unwrap_or_default()
            )),
            Role::Decides => {
                decided = true;
                verdict.elapsed = Some(server.elapsed);
                if let Some(f) = &server.failure {
                    verdict.state = State::Critical;
                    verdict.reason = Some(format!("{}: {f}", server.url));
                } else if let Some(why) = search.zip(server.found.as_ref()).and_then(|(s, f)| empty_reason(s, f)) {
                    verdict.state = State::Critical;
                    verdict.reason = Some(format!("{}: {why}", server.url));
                } else if !skipped.is_empty() {
                    verdict.state = State::Warning;
                    verdict.reason = Some(format!("{} (Postfix fails over to {})", skipped.join("; "), server.url));
                }
            }
            Role::Standby => {}
        }
        verdict.servers.push(server);
    }
    if !decided {
        verdict.state = State::Critical;
        verdict.reason = Some(no_server_reason(skipped));
    }
}

/// Why a map has no server Postfix can use, from each server's reason (`URL: failure`), in order.
pub fn no_server_reason(mut unreachable: Vec<String>) -> String {
    match unreachable.len() {
        0 => "no server configured".to_string(),
        1 => unreachable.remove(0),
        _ => format!("no server reachable: {}", unreachable.join("; ")),
    }
}

/// Why a map whose server answered its presence check with `found` is unusable: Postfix would answer 550 User
/// unknown to every recipient.
fn empty_reason(search: &Search, found: &Found) -> Option<String> {
    let p = search.presence.as_ref()?;
    let scope = match p.scope {
        crate::map::Scope::Base => "base",
        crate::map::Scope::One => "one level",
        crate::map::Scope::Sub => "subtree",
    };
    let with = match p.attrs.len() {
        0 => String::new(),
        _ => format!(" with a value of {}", p.attrs.join(" or ")),
    };
    match found {
        Found::Nothing => Some(format!(
            "no entry under {} ({scope}) matches {}{with}: Postfix would answer 550 User unknown to every recipient",
            search.base, p.query
        )),
        Found::Unreadable => Some(format!(
            "entries under {} match {}, but this identity can read none of {}: Postfix gets no value and answers 550 \
             User unknown to every recipient",
            search.base,
            p.query,
            p.attrs.join(", ")
        )),
        _ => None,
    }
}

/// What one server did for a map whose search is `search`, and its role: once a server `decided` the map, the
/// later ones are standbys.
fn server_verdict(
    url: String,
    scheme: Scheme,
    report: &ConnReport,
    search: Option<&Search>,
    decided: bool,
) -> ServerVerdict {
    if report.abandoned {
        // Stopped unfinished because an earlier server decides every map it serves (so this map too).
        return ServerVerdict::abandoned(url, report.elapsed);
    }
    // The failure that matters for this map: the connection's, else this map's search. (A search or canary
    // lookup that failed or ran out of time is judged per search and per canary.)
    let connection = report.failure.as_ref().filter(|f| !matches!(f.stage, Stage::Search | Stage::Lookup));
    let (failure, searched, found) = match (connection, search) {
        (Some(f), _) => (Some(f.clone()), None, None),
        (None, Some(s)) => match report.search_result(s) {
            Ok((d, found)) => (None, Some(d), Some(found)),
            Err(f) => (Some(f), None, None),
        },
        (None, None) => (None, None, None),
    };
    // This map's share of the connection: its stages and its own search; a failure took the whole time.
    let elapsed = match (&failure, searched) {
        (None, Some(d)) => report.stages.iter().map(|s| s.elapsed).sum::<Duration>() + d,
        _ => report.elapsed,
    };
    let role = if decided {
        Role::Standby
    } else if failure.as_ref().is_some_and(|f| f.fails_over(scheme)) {
        Role::FailedOver
    } else {
        Role::Decides
    };
    let mut notes: Vec<String> = match search {
        Some(s) => report.notes.iter().filter(|n| n.starts_with(&format!("base {} ", s.base))).cloned().collect(),
        None => Vec::new(),
    };
    if let Some(Found::NotChecked(why)) = &found {
        notes.push(format!("presence not checked: the server would not search ({why})"));
    }
    ServerVerdict {
        url,
        role,
        address: report.address.clone(),
        stages: report.stages.clone(),
        search: searched,
        found,
        failure,
        tls_note: report.tls_note.clone(),
        certificate: report.certificate.clone(),
        replica: None,
        elapsed,
        abandoned: false,
        notes,
    }
}

/// Postfix's answer for each canary on the deciding server (`decider`, `None` when no server could be used).
/// Not found: CRITICAL (550, mail bounces); lookup error: CRITICAL (451); a key Postfix never queries LDAP for
/// (outside `domain`, no domain part for `%d`...): UNKNOWN, a mistake in the check's configuration rather than a
/// state of the directory. Found keys keep the map as it is; their value shows in the long output.
fn decide_canaries(verdict: &mut MapVerdict, map: usize, canaries: &[Canary], decider: Option<&ConnReport>) {
    let mut problems: Vec<(State, String)> = Vec::new();
    for c in canaries {
        let (outcome, elapsed) = match (&c.prepared, decider) {
            (Err(e), _) => (CanaryOutcome::Failed(e.clone()), None),
            (Ok(Prepared::Skipped(why)), _) => (CanaryOutcome::Skipped(why.to_string()), None),
            (Ok(Prepared::Search(_)), None) => (CanaryOutcome::NotRun, None),
            (Ok(Prepared::Search(_)), Some(report)) => match report.lookup_result(map, &c.key) {
                (Ok(Some(v)), d) => (CanaryOutcome::Found(String::from_utf8_lossy(&v).into_owned()), d),
                (Ok(None), d) => (CanaryOutcome::NotFound, d),
                (Err(f), d) => (CanaryOutcome::Failed(f.message), d),
            },
        };
        let key = &c.key;
        match &outcome {
            CanaryOutcome::NotFound => problems
                .push((State::Critical, format!("canary {key} not found: Postfix would answer 550 User unknown"))),
            CanaryOutcome::Failed(why) => problems.push((
                State::Critical,
                format!("canary {key} lookup failed: {why}: Postfix would answer 451 temporary lookup failure"),
            )),
            CanaryOutcome::Skipped(why) => {
                let from = match c.source {
                    CanarySource::Map => "health_check_key",
                    CanarySource::Option => "--canary",
                };
                problems.push((
                    State::Unknown,
                    format!(
                        "canary {key} is never looked up: {why} (Postfix answers 550 User unknown without asking \
                         LDAP): fix {from}"
                    ),
                ))
            }
            CanaryOutcome::Found(_) | CanaryOutcome::NotRun => {}
        }
        verdict.canaries.push(CanaryVerdict { key: key.clone(), outcome, elapsed });
    }
    // The map's time on a healthy deciding server includes its canaries (a failed one's time is the whole job's).
    if verdict.servers.iter().any(|s| s.role == Role::Decides && s.failure.is_none()) {
        if let Some(e) = verdict.elapsed.as_mut() {
            *e += verdict.canaries.iter().filter_map(|c| c.elapsed).sum::<Duration>();
        }
    }
    // A failure to connect, bind or find the base already decides the map; canaries come after it.
    if problems.is_empty() || verdict.state == State::Critical {
        return;
    }
    let worst = problems.iter().fold(State::Ok, |s, (p, _)| s.worst(*p));
    let text: Vec<String> = problems.into_iter().map(|(_, t)| t).collect();
    let mut reasons = vec![text.join("; ")];
    if let Some(r) = verdict.reason.take() {
        reasons.push(r);
    }
    verdict.state = verdict.state.worst(worst);
    verdict.reason = Some(reasons.join("; "));
}

/// The overall report: the worst map, then thresholds on the total time.
pub fn report(maps: Vec<MapVerdict>, servers: usize, elapsed: Duration, thresholds: &Thresholds) -> Report {
    let mut state = maps.iter().fold(State::Ok, |s, m| s.worst(m.state));
    let secs = elapsed.as_secs_f64();
    let mut threshold = None;
    if matches!(state, State::Ok | State::Warning) {
        if let Some(c) = thresholds.critical.as_ref().filter(|c| c.alerts(secs)) {
            state = State::Critical;
            threshold = Some(format!("response time {secs:.3} s outside the critical range {c}"));
        } else if let Some(w) = thresholds.warning.as_ref().filter(|w| w.alerts(secs)) {
            if state == State::Ok {
                threshold = Some(format!("response time {secs:.3} s outside the warning range {w}"));
            }
            state = State::Warning;
        }
    }
    Report { state, maps, servers, elapsed, threshold }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_conn() -> ConnReport {
        ConnReport {
            stages: vec![StageTime { stage: Stage::Connect, elapsed: Duration::from_millis(1) }],
            searches: vec![crate::probe::SearchReport {
                search: Search::base("dc=x"),
                result: Ok((Duration::from_millis(1), Found::Base { readable: true })),
            }],
            ..Default::default()
        }
    }

    fn failed(stage: Stage, message: &str) -> ConnReport {
        ConnReport { failure: Some(Failure { stage, timed_out: false, message: message.into() }), ..Default::default() }
    }

    fn verdict_of(servers: Vec<ConnReport>) -> MapVerdict {
        let mut v = MapVerdict {
            name: "m.cf".into(),
            location: "m.cf".into(),
            path: "m.cf".into(),
            state: State::Ok,
            reason: None,
            base: Some("dc=x".into()),
            presence: Err("not in these tests".into()),
            elapsed: None,
            servers: vec![],
            warnings: vec![],
            canaries: vec![],
            used_by: vec![],
            services: Vec::new(),
        };
        let named: Vec<(String, ConnReport)> =
            servers.into_iter().enumerate().map(|(i, r)| (format!("ldap://s{i}:389"), r)).collect();
        decide_map(&mut v, Some(&Search::base("dc=x")), named.iter().map(|(u, r)| (u.clone(), Scheme::Ldap, r)));
        v
    }

    #[test]
    fn an_empty_or_unreadable_directory_is_critical_on_the_deciding_server_only() {
        let search = Search {
            base: "ou=people,dc=x".into(),
            presence: Some(Presence {
                scope: crate::map::Scope::Sub,
                query: "(mail=*)".into(),
                filter: "(&(mail=*)(|(maildrop=*)))".into(),
                attrs: vec!["maildrop".into()],
                dereference: 0,
            }),
        };
        let conn = |found: Found| ConnReport {
            searches: vec![crate::probe::SearchReport {
                search: search.clone(),
                result: Ok((Duration::from_millis(1), found)),
            }],
            ..Default::default()
        };
        let judge = |servers: Vec<ConnReport>| {
            let mut v = MapVerdict { state: State::Ok, reason: None, ..verdict_of(vec![]) };
            let named: Vec<(String, ConnReport)> =
                servers.into_iter().enumerate().map(|(i, r)| (format!("ldap://s{i}:389"), r)).collect();
            decide_map(&mut v, Some(&search), named.iter().map(|(u, r)| (u.clone(), Scheme::Ldap, r)));
            v
        };
        let v = judge(vec![conn(Found::Nothing)]);
        assert_eq!(v.state, State::Critical);
        assert_eq!(
            v.reason.as_deref(),
            Some(
                "ldap://s0:389: no entry under ou=people,dc=x (subtree) matches (mail=*) with a value of maildrop: \
                 Postfix would answer 550 User unknown to every recipient"
            )
        );
        let v = judge(vec![conn(Found::Unreadable)]);
        assert!(v.reason.unwrap().contains("can read none of maildrop"));
        let v = judge(vec![conn(Found::Entry), conn(Found::Nothing)]);
        assert_eq!(v.state, State::Ok, "a standby's emptiness is not what Postfix sees");
        let v = judge(vec![conn(Found::NotChecked("administrative limit exceeded (11)".into()))]);
        assert_eq!(v.state, State::Ok);
        assert!(v.servers[0].notes[0].starts_with("presence not checked"), "{:?}", v.servers[0].notes);
    }

    #[test]
    fn first_reachable_server_decides() {
        let v = verdict_of(vec![ok_conn(), failed(Stage::Connect, "connection refused")]);
        assert_eq!(v.state, State::Ok);
        assert_eq!(v.servers[1].role, Role::Standby);
    }

    #[test]
    fn refused_first_server_is_degraded() {
        let v = verdict_of(vec![failed(Stage::Connect, "connection refused"), ok_conn()]);
        assert_eq!(v.state, State::Warning);
        assert!(v.reason.unwrap().contains("ldap://s0:389"));
    }

    #[test]
    fn no_failover_after_connect() {
        for stage in [Stage::StartTls, Stage::Tls, Stage::Bind] {
            let v = verdict_of(vec![failed(stage, "x"), ok_conn()]);
            assert_eq!(v.state, State::Critical, "{stage}");
            assert_eq!(v.servers[0].role, Role::Decides);
        }
    }

    #[test]
    fn failed_ldaps_handshake_fails_over_but_not_a_hung_one() {
        let named = |first: ConnReport| {
            let mut v = verdict_of(vec![]);
            let servers = [
                ("ldaps://s0:636".to_string(), Scheme::Ldaps, first),
                ("ldap://s1:389".into(), Scheme::Ldap, ok_conn()),
            ];
            decide_map(&mut v, Some(&Search::base("dc=x")), servers.iter().map(|(u, s, r)| (u.clone(), *s, r)));
            v
        };
        let v = named(failed(Stage::Tls, "TLS handshake failed: server certificate rejected"));
        assert_eq!((v.state, v.servers[0].role.clone()), (State::Warning, Role::FailedOver));
        assert!(v.reason.unwrap().ends_with("(Postfix fails over to ldap://s1:389)"));
        let mut hung = failed(Stage::Tls, "timed out");
        hung.failure.as_mut().unwrap().timed_out = true;
        let v = named(hung);
        assert_eq!((v.state, v.servers[0].role.clone()), (State::Critical, Role::Decides));
    }

    #[test]
    fn abandoned_servers_are_standby_without_failure() {
        let abandoned = ConnReport { abandoned: true, ..Default::default() };
        let v = verdict_of(vec![ok_conn(), abandoned]);
        assert_eq!(v.state, State::Ok);
        let s = &v.servers[1];
        assert_eq!((s.role.clone(), s.abandoned, s.failure.is_none(), s.search), (Role::Standby, true, true, None));
    }

    #[test]
    fn missing_base_is_critical() {
        let mut r = ok_conn();
        r.searches[0].result = Err(Failure { stage: Stage::Search, timed_out: false, message: "not found".into() });
        let v = verdict_of(vec![r, ok_conn()]);
        assert_eq!(v.state, State::Critical);
    }

    #[test]
    fn nothing_reachable_is_critical() {
        let v = verdict_of(vec![failed(Stage::Connect, "refused"), failed(Stage::Resolve, "cannot resolve")]);
        assert_eq!(v.state, State::Critical);
        assert!(v.reason.unwrap().starts_with("no server reachable"));
    }

    #[test]
    fn worst_state_order() {
        assert_eq!(State::Ok.worst(State::Warning), State::Warning);
        assert_eq!(State::Warning.worst(State::Unknown), State::Unknown);
        assert_eq!(State::Unknown.worst(State::Critical), State::Critical);
        assert_eq!(State::Critical.worst(State::Unknown), State::Critical);
    }

    fn canary(key: &str, prepared: Result<Prepared, String>) -> Canary {
        Canary { key: key.into(), source: CanarySource::Map, prepared }
    }

    fn searched(key: &str) -> Canary {
        let q = crate::lookup::Query { key: key.into(), base: "dc=x".into(), filter: "(mail=k)".into() };
        canary(key, Ok(Prepared::Search(q)))
    }

    fn looked_up(report: &mut ConnReport, key: &str, result: Result<Option<Vec<u8>>, Failure>) {
        let elapsed = Duration::from_millis(2);
        report.lookups.push(crate::probe::LookupReport { map: 0, key: key.into(), result, elapsed });
    }

    #[test]
    fn canaries_decide_on_the_deciding_server() {
        let mut conn = ok_conn();
        looked_up(&mut conn, "a@x", Ok(Some(b"v1,v2".to_vec())));
        looked_up(&mut conn, "b@x", Ok(None));
        let mut v = verdict_of(vec![conn.clone()]);
        decide_canaries(&mut v, 0, &[searched("a@x")], Some(&conn));
        assert_eq!((v.state, v.canaries[0].outcome.clone()), (State::Ok, CanaryOutcome::Found("v1,v2".into())));
        assert_eq!(v.elapsed, Some(Duration::from_millis(4)));

        let mut v = verdict_of(vec![conn.clone()]);
        decide_canaries(&mut v, 0, &[searched("a@x"), searched("b@x")], Some(&conn));
        assert_eq!(v.state, State::Critical);
        assert_eq!(v.reason.as_deref(), Some("canary b@x not found: Postfix would answer 550 User unknown"));

        // A key Postfix never looks up is UNKNOWN; an error is CRITICAL (451) and wins.
        let skipped = canary("c", Ok(Prepared::Skipped(crate::lookup::Skip::DomainNeedsAddress)));
        let mut v = verdict_of(vec![conn.clone()]);
        decide_canaries(&mut v, 0, std::slice::from_ref(&skipped), Some(&conn));
        assert_eq!(v.state, State::Unknown);
        assert!(v.reason.as_deref().unwrap().starts_with("canary c is never looked up: "));
        let timeout = Failure { stage: Stage::Lookup, timed_out: true, message: "timed out".into() };
        looked_up(&mut conn, "d@x", Err(timeout));
        let mut v = verdict_of(vec![conn.clone()]);
        decide_canaries(&mut v, 0, &[skipped, searched("d@x")], Some(&conn));
        assert_eq!(v.state, State::Critical);
        assert!(v
            .reason
            .as_deref()
            .unwrap()
            .contains("canary d@x lookup failed: timed out: Postfix would answer 451 temporary lookup failure"));

        // Not looked up at all (the deadline came first): a failure too.
        let mut v = verdict_of(vec![ok_conn()]);
        decide_canaries(&mut v, 0, &[searched("e@x")], Some(&ok_conn()));
        assert_eq!(v.state, State::Critical);
        // The map already failed on its connection: its reason stays.
        let mut v = verdict_of(vec![failed(Stage::Bind, "bind failed")]);
        decide_canaries(&mut v, 0, &[searched("a@x")], None);
        assert_eq!((v.state, v.reason.as_deref()), (State::Critical, Some("ldap://s0:389: bind failed")));
        assert_eq!(v.canaries[0].outcome, CanaryOutcome::NotRun);
    }

    #[test]
    fn thresholds_apply_on_top() {
        let t = Thresholds { warning: Some("0.5".parse().unwrap()), critical: Some("2".parse().unwrap()) };
        assert_eq!(report(vec![], 0, Duration::from_millis(100), &t).state, State::Ok);
        assert_eq!(report(vec![], 0, Duration::from_millis(600), &t).state, State::Warning);
        let r = report(vec![], 0, Duration::from_millis(2500), &t);
        assert_eq!(r.state, State::Critical);
        assert!(r.threshold.unwrap().contains("critical range 2"));
    }
}
