//! From maps to the distinct connections to make: each server + identity + TLS combination is contacted
//! once, however many maps use it (as Postfix shares one connection between such maps), and each map knows
//! which connections serve it, in its `server_host` order. Canary keys are prepared here (folded, checked
//! against the map's `domain`, expanded into base and filter) and attached to every connection of their map.
//! Every map of the run stays in the plan, in order, with the parameters that use it: also those that cannot
//! be read (their verdict is UNKNOWN) and those that are not probed.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod chroot;
mod presence;

pub use presence::{Presence, Search};

use crate::lookup::{Prepared, Query, Spec};
use crate::map::{template, BindMode, ConfigError, Map, Scheme, Secret, Server, Source, TlsParams};

/// How to reach and authenticate to one server: what Postfix keys its connection cache on.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub server: Server,
    pub start_tls: bool,
    pub tls: TlsParams,
    pub bind: BindMode,
    pub bind_dn: String,
    pub bind_pw: Secret,
    /// The map's `version`: 2 makes Postfix bind as LDAPv2 (a plain `ldap://` server without StartTLS only:
    /// anything else forces 3 when the map is read).
    pub version: u8,
    /// The map's `timeout`, which Postfix applies to each operation: each connect attempt (libldap's network
    /// timeout, per address), a simple bind, each search; with StartTLS one alarm covers the connects, the
    /// StartTLS request and the handshake. (The SASL bind and an ldaps handshake have none.)
    pub timeout: Duration,
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
    /// The searches of its maps (presence checks, or base searches), each once, in order.
    pub searches: Vec<Search>,
    /// Canary lookups to run after the searches, in order.
    pub lookups: Vec<LookupJob>,
    /// A map of this connection has other servers too: read how fresh this one's data is (contextCSN).
    pub replica: bool,
}

/// One canary key of one map, ready to be looked up on a connection of the map.
#[derive(Clone, Debug)]
pub struct LookupJob {
    /// Index of the map in the plan.
    pub map: usize,
    /// The canary key as given.
    pub key: String,
    pub spec: Arc<Spec>,
    pub query: Query,
}

/// Where a canary key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanarySource {
    /// `health_check_key` in the map file.
    Map,
    /// `--canary` on the command line (every map of the run).
    Option,
}

/// One canary key of a map, prepared.
#[derive(Clone, Debug, PartialEq)]
pub struct Canary {
    pub key: String,
    pub source: CanarySource,
    /// What Postfix does before any query: search (base and filter), skip (never queried), or fail (a domain
    /// table that cannot be read).
    pub prepared: Result<Prepared, String>,
}

/// Why a map that was read is not probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapProblem {
    /// Postfix cannot use the map either (a `domain` file that cannot be read): UNKNOWN.
    Unusable(String),
    /// A setting Postfix handles but this tool cannot check the way Postfix uses it (see [`not_checkable`]):
    /// WARNING, "not checked", rather than failing closed on a healthy directory.
    NotChecked(String),
    /// Postfix fails every lookup of the map whatever the directory does (`query_filter` is not a valid LDAP
    /// filter once expanded): CRITICAL.
    Broken(String),
}

/// What to check for one map.
#[derive(Clone, Debug)]
pub struct MapPlan {
    /// The map as Postfix reads it, or why it cannot be read or Postfix would refuse it (UNKNOWN).
    pub map: Result<Map, ConfigError>,
    /// Which Postfix parameters use this map (discovery), for the long output.
    pub used_by: Vec<String>,
    /// Why the map, though read, is not probed.
    pub problem: Option<MapProblem>,
    /// Index into [`Plan::jobs`] for each server of the map, in `server_host` order.
    pub jobs: Vec<usize>,
    /// The static part of the search base: `search_base`, or its suffix after the last RDN with a `%`
    /// expansion; `None` when nothing static is left to check.
    pub base: Option<String>,
    /// What this map's connections search (from `base`): its presence check, or the base search when it has
    /// none (see `presence_skipped`).
    pub search: Option<Search>,
    /// Why the map has no presence check (`health_check_presence = no`, a query that does not depend on the key).
    pub presence_skipped: Option<String>,
    /// The canaries of the map: its `health_check_key` values, then the `--canary` keys, each once.
    pub canaries: Vec<Canary>,
    /// The Postfix services that use the map (discovery), and how.
    pub services: Vec<crate::map::ServiceUse>,
    /// What the chrooted daemons that open the map directly cannot find inside their chroot (CRITICAL).
    pub chroot: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub maps: Vec<MapPlan>,
}

impl Plan {
    /// For each map, its jobs in `server_host` order (what [`crate::probe::run`] needs to know when every
    /// map is decided).
    pub fn job_orders(&self) -> Vec<Vec<usize>> {
        self.maps.iter().map(|m| m.jobs.clone()).collect()
    }

    /// Read the maps of `sources` (by `until`), in order, each with the parameters that use it. Nothing is
    /// planned yet ([`Plan::prepare`]): the maps' `timeout`s set the deadline that preparing runs under.
    pub fn read(sources: &[Source], until: Instant) -> Plan {
        let maps = sources
            .iter()
            .map(|source| {
                let map = source.load(until);
                let chroot = map.as_ref().map(|m| chroot::findings(m, source, until)).unwrap_or_default();
                (source, map, chroot)
            })
            .map(|(source, map, chroot)| MapPlan {
                map,
                services: source.services.clone(),
                chroot,
                used_by: source.used_by.clone(),
                problem: None,
                jobs: Vec::new(),
                base: None,
                search: None,
                presence_skipped: None,
                canaries: Vec::new(),
            })
            .collect();
        Plan { jobs: Vec::new(), maps }
    }

    /// For each map that could be read, the longest its check could take as Postfix bounds it ([`longest`]).
    pub fn longest(&self, canaries: usize) -> impl Iterator<Item = Duration> + '_ {
        self.maps
            .iter()
            .filter_map(|m| m.map.as_ref().ok())
            .map(move |m| longest(m, m.health_check_keys.len() + canaries))
    }

    /// Plan the checks of every map read: its base, canaries (its own `health_check_key` values and the
    /// `global` ones) and jobs. `table` answers the `type:table` entries of `domain` lists (see
    /// [`crate::postfix::postmap_table_lookup`]).
    pub fn prepare(
        &mut self,
        global: &[String],
        until: Instant,
        table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
    ) {
        let mut maps = std::mem::take(&mut self.maps);
        for (index, mp) in maps.iter_mut().enumerate() {
            let Ok(map) = &mp.map else { continue };
            mp.problem =
                not_checkable(map).map(MapProblem::NotChecked).or_else(|| bad_filter(map).map(MapProblem::Broken));
            mp.base = static_base(&map.search_base);
            if let Some((search, skipped)) = search_of(map) {
                mp.search = Some(search);
                mp.presence_skipped = skipped;
            }
            mp.canaries = canaries(map, global);
            let lookups = if mp.problem.is_none() { prepare_canaries(mp, index, until, table) } else { Vec::new() };
            if let (None, Ok(map)) = (&mp.problem, &mp.map) {
                mp.jobs = self.add_jobs(map, mp.search.as_ref(), index, &lookups);
                let mut distinct = mp.jobs.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() > 1 {
                    for &j in &mp.jobs {
                        self.jobs[j].replica = true;
                    }
                }
            }
        }
        self.maps = maps;
    }

    /// The jobs of map `index`, in `server_host` order, each with the map's search and canary lookups.
    fn add_jobs(&mut self, map: &Map, search: Option<&Search>, index: usize, lookups: &[LookupJob]) -> Vec<usize> {
        let mut jobs = Vec::new();
        for endpoint in endpoints(map) {
            let job = self.job_for(endpoint, search);
            // A server listed twice is one connection: its canaries run once.
            if !self.jobs[job].lookups.iter().any(|l| l.map == index) {
                self.jobs[job].lookups.extend(lookups.iter().cloned());
            }
            jobs.push(job);
        }
        jobs
    }

    /// The job for `endpoint` (shared when another map already uses the same one), with `search` added.
    fn job_for(&mut self, endpoint: Endpoint, search: Option<&Search>) -> usize {
        let same = |e: &Endpoint| Endpoint { timeout: endpoint.timeout, ..e.clone() } == endpoint;
        let index = match self.jobs.iter().position(|j| same(&j.endpoint)) {
            Some(i) => {
                // Maps sharing a connection with different timeouts: the longest is used for it.
                let job = &mut self.jobs[i];
                job.endpoint.timeout = job.endpoint.timeout.max(endpoint.timeout);
                i
            }
            None => {
                self.jobs.push(Job { endpoint, searches: Vec::new(), lookups: Vec::new(), replica: false });
                self.jobs.len() - 1
            }
        };
        if let Some(search) = search {
            if !self.jobs[index].searches.contains(search) {
                self.jobs[index].searches.push(search.clone());
            }
        }
        index
    }
}

/// The canary keys of `map`: its `health_check_key` values, then the `global` ones, each once.
fn canaries(map: &Map, global: &[String]) -> Vec<Canary> {
    let keys = map
        .health_check_keys
        .iter()
        .map(|k| (k, CanarySource::Map))
        .chain(global.iter().map(|k| (k, CanarySource::Option)));
    let mut canaries: Vec<Canary> = Vec::new();
    for (key, source) in keys {
        if !canaries.iter().any(|c| &c.key == key) {
            canaries.push(Canary { key: key.clone(), source, prepared: Err(String::new()) });
        }
    }
    canaries
}

/// Prepare the canaries of map `index` as Postfix prepares a lookup (fold, `domain`, expansion); returns the
/// lookups to make. A `domain` file that cannot be read makes the map unusable.
fn prepare_canaries(
    mp: &mut MapPlan,
    index: usize,
    until: Instant,
    table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
) -> Vec<LookupJob> {
    let Ok(map) = &mp.map else { return Vec::new() };
    if mp.canaries.is_empty() {
        return Vec::new();
    }
    let spec = match Spec::new(map, until) {
        Ok(spec) => Arc::new(spec),
        Err(e) => {
            mp.problem = Some(MapProblem::Unusable(e));
            return Vec::new();
        }
    };
    let mut lookups = Vec::new();
    for c in &mut mp.canaries {
        c.prepared = spec.prepare(c.key.as_bytes(), table).map_err(|e| e.message);
        if let Ok(Prepared::Search(query)) = &c.prepared {
            let (spec, query) = (spec.clone(), query.clone());
            lookups.push(LookupJob { map: index, key: c.key.clone(), spec, query });
        }
    }
    lookups
}

/// What a connection searches for `map` before its canaries: its presence check, or the base search when it
/// has none (and why); `None` when no part of the base is static.
pub fn search_of(map: &Map) -> Option<(Search, Option<String>)> {
    let base = static_base(&map.search_base)?;
    Some(match presence::presence(map, &base) {
        Ok(p) => (Search { base, presence: Some(p) }, None),
        Err(why) => (Search::base(&base), Some(why)),
    })
}

/// The longest a lookup in `map` with `lookups` canary keys could take with every operation bounded as Postfix
/// bounds it (its `timeout` T each): a connect per server (one address each), the bind, the presence or base
/// search, each canary's search, and two more searches for the replica check of a map with several servers.
/// (The SASL bind and an ldaps handshake have no timeout in Postfix: counted as T.)
pub fn longest(map: &Map, lookups: usize) -> Duration {
    let replica = if map.servers.len() > 1 { 2 } else { 0 };
    let operations = map.servers.len() + 2 + lookups + replica;
    Duration::from_secs(u64::from(map.timeout)).saturating_mul(u32::try_from(operations).unwrap_or(u32::MAX))
}

/// The connections Postfix would try for `map`, in `server_host` order.
pub fn endpoints(map: &Map) -> Vec<Endpoint> {
    map.servers
        .iter()
        .map(|server| Endpoint {
            server: server.clone(),
            start_tls: map.start_tls,
            tls: map.tls.clone(),
            bind: map.bind,
            bind_dn: map.bind_dn.clone(),
            bind_pw: map.bind_pw.clone(),
            version: map.version,
            timeout: Duration::from_secs(u64::from(map.timeout)),
        })
        .collect()
}

/// Why `query_filter` is no LDAP filter once expanded (libldap refuses it before sending: Postfix logs "Search
/// error -7: Bad search filter" for every lookup). Expanded for a key with every part a template can use.
pub fn bad_filter(map: &Map) -> Option<String> {
    const KEY: &[u8] = b"postmaster@a.b.c.d.e.f.g.h.i";
    let mut usage = template::Usage::default();
    usage.add(&map.search_base, true);
    usage.add(&map.query_filter, true);
    usage.add(&map.result_format, false);
    let mut filter = Vec::new();
    if !template::expand(&usage, &map.query_filter, KEY, None, &mut filter, template::Quote::Rfc2254) {
        return None;
    }
    let filter = crate::map::filter::normalize(&String::from_utf8_lossy(&filter));
    ldap3::parse_filter(&filter).err().map(|_| {
        format!(
            "query_filter {} is not a valid LDAP filter once expanded: Postfix fails every lookup (Search error -7: \
             Bad search filter)",
            map.query_filter
        )
    })
}

/// Settings Postfix accepts that this tool cannot check the way Postfix would use them (SASL mechanisms other
/// than EXTERNAL, which works over ldapi:// or with a TLS client certificate).
pub fn not_checkable(map: &Map) -> Option<String> {
    if map.bind == BindMode::Sasl && !map.sasl_mechs.iter().any(|m| m.eq_ignore_ascii_case("EXTERNAL")) {
        let mechs = if map.sasl_mechs.is_empty() { "(none)".to_string() } else { map.sasl_mechs.join(" ") };
        return Some(format!("bind = sasl with sasl_mechs = {mechs}: only EXTERNAL is supported"));
    }
    None
}

/// The part of a search base that does not depend on the key: the whole base when it has no `%` expansion
/// (with `%%` read as `%`), else the RDNs after the last one holding an expansion; `None` if none are left.
pub fn static_base(base: &str) -> Option<String> {
    let rdns = split_rdns(base);
    // An RDN holding an expansion (or, defensively, a template Postfix would reject) is not static.
    let last_dynamic = rdns.iter().rposition(|rdn| template::is_dynamic(rdn) != Some(false));
    let static_part = match last_dynamic {
        None => &rdns[..],
        Some(i) => &rdns[i + 1..],
    };
    if static_part.is_empty() || base.trim().is_empty() {
        return None;
    }
    Some(static_part.iter().map(|r| r.trim().replace("%%", "%")).collect::<Vec<_>>().join(","))
}

/// Split a DN on the commas that separate RDNs (not on escaped `\,`).
fn split_rdns(dn: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&dn[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&dn[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_join_every_connection_of_their_map() {
        let text = "server_host = ldap://a ldap://b ldap://a\nsearch_base = dc=x\nquery_filter = (mail=%s)\n\
                    domain = example.com\nhealth_check_key = k@example.com, other@example.org\n";
        let source = Source::text("/m.cf".into(), text.as_bytes().to_vec());
        let soon = Instant::now() + Duration::from_secs(5);
        let mut plan = Plan::read(&[source.clone(), source], soon);
        plan.prepare(&["k@example.com".into(), "g@example.com".into()], soon, &mut |_, _| Ok(false));
        assert_eq!(plan.jobs.len(), 2, "ldap://a listed twice is one connection, shared by both maps");
        let keys: Vec<_> = plan.maps[0].canaries.iter().map(|c| (c.key.as_str(), c.source)).collect();
        assert_eq!(
            keys,
            [
                ("k@example.com", CanarySource::Map),
                ("other@example.org", CanarySource::Map),
                ("g@example.com", CanarySource::Option)
            ]
        );
        assert!(matches!(plan.maps[0].canaries[1].prepared, Ok(Prepared::Skipped(_))));
        // Each connection looks up each map's two searchable keys once.
        for job in &plan.jobs {
            let looked: Vec<_> = job.lookups.iter().map(|l| (l.map, l.key.as_str())).collect();
            assert_eq!(
                looked,
                [(0, "k@example.com"), (0, "g@example.com"), (1, "k@example.com"), (1, "g@example.com")]
            );
        }
    }

    #[test]
    fn a_query_filter_postfix_cannot_send_is_found() {
        let map = |f: &str| {
            crate::map::parse(std::path::Path::new("/m.cf"), format!("query_filter = {f}\n").as_bytes()).unwrap()
        };
        // LDAP_README's "sealed server" example as printed: two filters under one `!`.
        let readme = "(&(mailacceptinggeneralid=%s)(!(|(maildrop=\"*|*\")\n (maildrop=\"*:*\")(maildrop=\"*/*\"))(owner=cn=root, dc=your, dc=com)))";
        assert!(bad_filter(&map(readme)).unwrap().contains("Bad search filter"));
        assert!(bad_filter(&map("(mail=%s")).is_some());
        assert_eq!(bad_filter(&map("(&(mail=%s)(!(uid=%u)))")), None);
        assert_eq!(bad_filter(&map("(mail=%1.%2)")), None);
    }

    #[test]
    fn static_base_of_fixed_and_dynamic_bases() {
        assert_eq!(static_base("ou=people,dc=example,dc=com").as_deref(), Some("ou=people,dc=example,dc=com"));
        assert_eq!(static_base("ou=%d,ou=domains,dc=example,dc=com").as_deref(), Some("ou=domains,dc=example,dc=com"));
        assert_eq!(static_base("uid=%u, ou=%2, dc=example,dc=com").as_deref(), Some("dc=example,dc=com"));
        assert_eq!(static_base("ou=100%%,dc=example,dc=com").as_deref(), Some("ou=100%,dc=example,dc=com"));
        assert_eq!(static_base("ou=a\\,%s,dc=x").as_deref(), Some("dc=x"));
        assert_eq!(static_base("dc=%2,dc=%1"), None);
        assert_eq!(static_base(""), None);
    }
}
