//! From maps to the distinct connections to make: each server + identity + TLS combination is contacted
//! once, however many maps use it (as Postfix shares one connection between such maps), and each map knows
//! which connections serve it, in its `server_host` order. Canary keys are prepared here (folded, checked
//! against the map's `domain`, expanded into base and filter) and attached to every connection of their map.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{BindMode, Map};
use crate::lookup::{Prepared, Spec};
use crate::probe::{Endpoint, Job, LookupJob};

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

/// What to check for one map.
#[derive(Clone, Debug)]
pub struct MapPlan {
    pub map: Map,
    /// Index into [`Plan::jobs`] for each server of the map, in `server_host` order.
    pub jobs: Vec<usize>,
    /// The base to search: `search_base`, or the static suffix of a base with `%` expansions; `None` when
    /// nothing static is left to check.
    pub base: Option<String>,
    /// Why this map cannot be checked at all (Postfix would fail on it too): the map is UNKNOWN.
    pub unsupported: Option<String>,
    /// Why this map is not checked (a setting Postfix handles but this tool does not, see [`unsupported`]): the
    /// map is WARNING, "not checked", rather than failing closed on a healthy directory.
    pub not_checked: Option<String>,
    /// The canaries of the map: its `health_check_key` values, then the `--canary` keys, each once.
    pub canaries: Vec<Canary>,
    /// Which Postfix parameters use this map (discovery), for the long output.
    pub used_by: Vec<String>,
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

    /// The plan for `maps`, each with its own `health_check_key` canaries and the `global` ones. `table` answers
    /// the `type:table` entries of `domain` lists (see [`crate::postfix::postmap_table_lookup`]).
    pub fn with_canaries(
        maps: Vec<Map>,
        global: &[String],
        table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
    ) -> Plan {
        let mut plan = Plan::default();
        for map in maps {
            let index = plan.maps.len();
            let not_checked = unsupported(&map);
            let mut unsupported = None;
            let base = static_base(&map.search_base);
            let mut canaries = Vec::new();
            let keys = map
                .health_check_keys
                .iter()
                .map(|k| (k, CanarySource::Map))
                .chain(global.iter().map(|k| (k, CanarySource::Option)));
            for (key, source) in keys {
                if !canaries.iter().any(|c: &Canary| &c.key == key) {
                    canaries.push(Canary { key: key.clone(), source, prepared: Err(String::new()) });
                }
            }
            let mut lookups = Vec::new();
            if !canaries.is_empty() && not_checked.is_none() {
                match Spec::new(&map) {
                    Err(e) => unsupported = Some(e),
                    Ok(spec) => {
                        let spec = Arc::new(spec);
                        for c in &mut canaries {
                            c.prepared = spec.prepare(c.key.as_bytes(), table).map_err(|e| e.message);
                            if let Ok(Prepared::Search(query)) = &c.prepared {
                                let (spec, query) = (spec.clone(), query.clone());
                                lookups.push(LookupJob { map: index, key: c.key.clone(), spec, query });
                            }
                        }
                    }
                }
            }
            let mut jobs = Vec::new();
            if unsupported.is_none() && not_checked.is_none() {
                for endpoint in endpoints(&map) {
                    let job = plan.job_for(endpoint, base.as_deref());
                    // A server listed twice is one connection: its canaries run once.
                    if !plan.jobs[job].lookups.iter().any(|l| l.map == index) {
                        plan.jobs[job].lookups.extend(lookups.iter().cloned());
                    }
                    jobs.push(job);
                }
            }
            plan.maps.push(MapPlan { map, jobs, base, unsupported, not_checked, canaries, used_by: Vec::new() });
        }
        plan
    }

    /// The job for `endpoint` (shared when another map already uses the same one), with `base` added.
    fn job_for(&mut self, endpoint: Endpoint, base: Option<&str>) -> usize {
        let same = |e: &Endpoint| Endpoint { connect_timeout: endpoint.connect_timeout, ..e.clone() } == endpoint;
        let index = match self.jobs.iter().position(|j| same(&j.endpoint)) {
            Some(i) => {
                let job = &mut self.jobs[i];
                job.endpoint.connect_timeout = job.endpoint.connect_timeout.max(endpoint.connect_timeout);
                i
            }
            None => {
                self.jobs.push(Job { endpoint, bases: Vec::new(), lookups: Vec::new() });
                self.jobs.len() - 1
            }
        };
        if let Some(base) = base {
            if !self.jobs[index].bases.iter().any(|b| b == base) {
                self.jobs[index].bases.push(base.to_string());
            }
        }
        index
    }
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
            connect_timeout: Duration::from_secs(u64::from(map.timeout.max(1))),
        })
        .collect()
}

/// Settings Postfix accepts that this tool cannot check the way Postfix would use them (SASL mechanisms other
/// than EXTERNAL, which works over ldapi:// or with a TLS client certificate).
pub fn unsupported(map: &Map) -> Option<String> {
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
    let last_dynamic = rdns.iter().rposition(|rdn| crate::config::template_is_dynamic(rdn) != Some(false));
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
        let map = crate::config::parse(std::path::Path::new("/m.cf"), text.as_bytes()).unwrap();
        let plan = Plan::with_canaries(
            vec![map.clone(), map],
            &["k@example.com".into(), "g@example.com".into()],
            &mut |_, _| Ok(false),
        );
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
