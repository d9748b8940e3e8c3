//! From maps to the distinct connections to make: each server + identity + TLS combination is contacted
//! once, however many maps use it (as Postfix shares one connection between such maps), and each map knows
//! which connections serve it, in its `server_host` order.

use std::time::Duration;

use crate::config::{BindMode, Map};
use crate::probe::{Endpoint, Job};

/// What to check for one map.
#[derive(Clone, Debug)]
pub struct MapPlan {
    pub map: Map,
    /// Index into [`Plan::jobs`] for each server of the map, in `server_host` order.
    pub jobs: Vec<usize>,
    /// The base to search: `search_base`, or the static suffix of a base with `%` expansions; `None` when
    /// nothing static is left to check.
    pub base: Option<String>,
    /// Why this map cannot be checked at all (a setting this tool does not support): the map is UNKNOWN.
    pub unsupported: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub maps: Vec<MapPlan>,
}

impl Plan {
    pub fn new(maps: Vec<Map>) -> Plan {
        let mut plan = Plan::default();
        for map in maps {
            let unsupported = unsupported(&map);
            let base = static_base(&map.search_base);
            let mut jobs = Vec::new();
            if unsupported.is_none() {
                for server in &map.servers {
                    let endpoint = Endpoint {
                        server: server.clone(),
                        start_tls: map.start_tls,
                        tls: map.tls.clone(),
                        bind: map.bind,
                        bind_dn: map.bind_dn.clone(),
                        bind_pw: map.bind_pw.clone(),
                        connect_timeout: Duration::from_secs(u64::from(map.timeout.max(1))),
                    };
                    jobs.push(plan.job_for(endpoint, base.as_deref()));
                }
            }
            plan.maps.push(MapPlan { map, jobs, base, unsupported });
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
                self.jobs.push(Job { endpoint, bases: Vec::new() });
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

/// Settings Postfix accepts that this tool cannot check the way Postfix would use them.
fn unsupported(map: &Map) -> Option<String> {
    if map.bind == BindMode::Sasl && !map.sasl_mechs.iter().any(|m| m.eq_ignore_ascii_case("EXTERNAL")) {
        let mechs = if map.sasl_mechs.is_empty() { "(none)".to_string() } else { map.sasl_mechs.join(" ") };
        return Some(format!(
            "bind = sasl with sasl_mechs = {mechs}: only the EXTERNAL mechanism is supported (ldapi:// or a TLS client certificate)"
        ));
    }
    None
}

/// The part of a search base that does not depend on the key: the whole base when it has no `%` expansion
/// (with `%%` read as `%`), else the RDNs after the last one holding an expansion; `None` if none are left.
pub fn static_base(base: &str) -> Option<String> {
    let rdns = split_rdns(base);
    let last_dynamic = rdns.iter().rposition(|rdn| has_expansion(rdn));
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

/// Whether `s` contains a `%` expansion other than `%%`.
fn has_expansion(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') => {}
                Some(_) => return true,
                None => return false,
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

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
