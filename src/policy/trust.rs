//! Whether the directory can be trusted right now for the recipient maps: for each map, its checks (the
//! canaries) on the server Postfix would use, over one connection per map kept for the life of the process.
//!
//! - A canary not found, or a lookup error once connected: [`Judgement::Untrusted`]. Postfix would answer
//!   550 for valid recipients (or 451, which a deferral does not change).
//! - No server reachable, a bind refused, the deadline reached: [`Judgement::Down`]. Postfix already answers 451
//!   (its own lookups fail the same way), so the policy lets it.
//! - Otherwise (also for a map with nothing to check): [`Judgement::Trusted`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::lookup::{self, Prepared, Query, Spec};
use crate::map::Map;
use crate::plan::{self, Endpoint, Search};
use crate::probe::connect::{self, Session};
use crate::probe::Found;

/// What the policy concludes for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    Trusted,
    /// Why (one reason per failing map).
    Untrusted(Vec<String>),
    /// Why Postfix's own lookups fail too.
    Down(Vec<String>),
}

/// One recipient map and its connection.
struct Guarded {
    name: String,
    endpoints: Vec<Endpoint>,
    spec: Arc<Spec>,
    /// The canary keys Postfix would search for, prepared.
    canaries: Vec<(String, Query)>,
    /// The presence check (issue 13), when the map has one: the directory must still answer something.
    presence: Option<Search>,
    session: Option<Session>,
}

/// The recipient maps, their connections, and the last judgement (reused for `cache_for`).
pub struct Guard {
    maps: Vec<Guarded>,
    cache_for: Duration,
    cached: Option<(Instant, Judgement)>,
}

impl Guard {
    /// Guard `maps`; a canary Postfix would never look up (outside `domain`) cannot tell anything and is left
    /// out, with a note in the returned warnings.
    pub fn new(
        maps: Vec<Map>,
        cache_for: Duration,
        until: Instant,
        table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
    ) -> (Guard, Vec<String>) {
        let mut warnings = Vec::new();
        let mut guarded = Vec::new();
        for map in maps {
            let spec = match Spec::new(&map, until) {
                Ok(spec) => Arc::new(spec),
                Err(e) => {
                    warnings.push(format!("{}: {e}: not guarded", map.name()));
                    continue;
                }
            };
            let mut canaries = Vec::new();
            for key in &map.health_check_keys {
                match spec.prepare(key.as_bytes(), table) {
                    Ok(Prepared::Search(q)) => canaries.push((key.clone(), q)),
                    Ok(Prepared::Skipped(why)) => {
                        warnings.push(format!("{}: canary {key} is never looked up: {why}", map.name()))
                    }
                    Err(e) => warnings.push(format!("{}: canary {key}: {e}", map.name())),
                }
            }
            let presence = plan::search_of(&map).map(|(s, _)| s).filter(|s| s.presence.is_some());
            let endpoints = plan::endpoints(&map);
            guarded.push(Guarded { name: map.name(), endpoints, spec, canaries, presence, session: None });
        }
        (Guard { maps: guarded, cache_for, cached: None }, warnings)
    }

    /// Drop every connection and the cached judgement (after an internal error: start afresh).
    pub fn forget_connections(&mut self) {
        self.cached = None;
        for m in &mut self.maps {
            m.session = None;
        }
    }

    /// The maps guarded: how many canaries each has, and whether it has a presence check.
    pub fn describe(&self) -> Vec<(String, usize, bool)> {
        self.maps
            .iter()
            .map(|m| (m.name.clone(), m.canaries.len(), m.presence.is_some() && m.canaries.is_empty()))
            .collect()
    }

    /// The judgement now: the cached one if younger than `cache_for`, else a new one, by the deadline.
    pub async fn judge(&mut self, deadline: &Deadline) -> Judgement {
        if let Some((at, judgement)) = &self.cached {
            if at.elapsed() < self.cache_for {
                return judgement.clone();
            }
        }
        // The maps at once, each on its own connection: a request waits for the slowest map, not for their sum.
        let judged = self.maps.iter_mut().map(|map| async move {
            let state = map.judge(deadline).await;
            (map.name.as_str(), state)
        });
        let mut untrusted = Vec::new();
        let mut down = Vec::new();
        for (name, state) in futures_util::future::join_all(judged).await {
            match state {
                MapState::Trusted => {}
                MapState::Untrusted(why) => untrusted.push(format!("{name}: {why}")),
                MapState::Down(why) => down.push(format!("{name}: {why}")),
            }
        }
        let judgement = if !untrusted.is_empty() {
            Judgement::Untrusted(untrusted)
        } else if !down.is_empty() {
            Judgement::Down(down)
        } else {
            Judgement::Trusted
        };
        if !self.cache_for.is_zero() {
            self.cached = Some((Instant::now(), judgement.clone()));
        }
        judgement
    }
}

enum MapState {
    Trusted,
    Untrusted(String),
    Down(String),
}

impl Guarded {
    async fn judge(&mut self, deadline: &Deadline) -> MapState {
        if self.canaries.is_empty() && self.presence.is_none() {
            return MapState::Trusted;
        }
        // A connection that was lost (the server restarted, an idle timeout) is made again once, as Postfix does.
        for attempt in 0..2 {
            if self.session.is_none() {
                match self.connect(deadline).await {
                    Ok(session) => self.session = Some(session),
                    Err(why) => return MapState::Down(why),
                }
            }
            match self.canaries(deadline).await {
                Err(Lost(why)) => {
                    self.session = None;
                    if attempt == 1 {
                        return MapState::Down(why);
                    }
                }
                Ok(state) => return state,
            }
        }
        MapState::Down("the connection was lost twice".to_string())
    }

    /// Connect and bind to the first server that accepts a connection, as Postfix does.
    async fn connect(&self, deadline: &Deadline) -> Result<Session, String> {
        let mut unreachable = Vec::new();
        for ep in &self.endpoints {
            match connect::open_session(ep, deadline).await {
                Ok(session) => return Ok(session),
                Err(f) if f.fails_over(ep.server.scheme) && !deadline.passed() => {
                    unreachable.push(format!("{}: {f}", ep.server.url()))
                }
                Err(f) => return Err(format!("{}: {f}", ep.server.url())),
            }
        }
        Err(crate::verdict::no_server_reason(unreachable))
    }

    /// The presence check (only for a map without canaries: a canary found is an entry the presence check
    /// would find), then each canary, on the session; `Err` when the connection is lost.
    async fn canaries(&mut self, deadline: &Deadline) -> Result<MapState, Lost> {
        let Some(session) = self.session.as_mut() else { return Err(Lost("no connection".to_string())) };
        if let Some(search) = self.presence.as_ref().filter(|_| self.canaries.is_empty()) {
            let run =
                tokio::time::timeout_at(deadline.until_tokio(), crate::probe::search::run(&mut session.ldap, search));
            match run.await {
                Ok((_, true)) => return Err(Lost("the connection was lost".to_string())),
                Ok((Ok(Found::Nothing | Found::Unreadable), _)) => {
                    let p = search.presence.as_ref().map_or("", |p| p.query.as_str());
                    return Ok(MapState::Untrusted(format!(
                        "no readable entry under {} matches {p}: Postfix would answer 550 User unknown",
                        search.base
                    )));
                }
                Ok((Ok(_), _)) => {}
                Ok((Err(f), _)) => return Ok(MapState::Untrusted(format!("presence check: {f}"))),
                Err(_) => {
                    self.session = None;
                    let after = crate::reason::secs(deadline.length());
                    return Ok(MapState::Down(format!("presence check: no answer within {after}")));
                }
            }
        }
        for (key, query) in &self.canaries {
            let looked_up =
                tokio::time::timeout_at(deadline.until_tokio(), lookup::lookup(&mut session.ldap, &self.spec, query))
                    .await;
            match looked_up {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => {
                    return Ok(MapState::Untrusted(format!(
                        "canary {key} not found: Postfix would answer 550 User unknown"
                    )))
                }
                Ok(Err(e)) if e.connection_lost => return Err(Lost(e.message)),
                Ok(Err(e)) => return Ok(MapState::Untrusted(format!("canary {key} lookup failed: {e}"))),
                Err(_) => {
                    // A hung directory: Postfix's own lookup times out too (451). The connection is in an unknown
                    // state: make a new one next time.
                    self.session = None;
                    let after = crate::reason::secs(deadline.length());
                    return Ok(MapState::Down(format!("canary {key}: no answer within {after}")));
                }
            }
        }
        Ok(MapState::Trusted)
    }
}

/// The connection was lost during a lookup.
struct Lost(String);
