//! How fresh a server's data is, for maps with more than one server: the `contextCSN` of the naming context
//! that holds the search base (OpenLDAP's syncprov keeps it on the suffix entry; the rootDSE's `namingContexts`
//! names the suffixes), read with the map's identity on the connection the check already makes.
//!
//! A CSN is `YYYYmmddHHMMSS.uuuuuuZ#counter#sid#mod` (OpenLDAP 2.4 to 2.6; 2.3 had no fraction and a two-digit
//! sid); contextCSN holds one value per server id. A server that does not expose it (an ACL, 389-ds, Active
//! Directory) is "not compared", never a failure.

use ldap3::{Ldap, Scope};

use crate::lookup::search::Entry;

/// The contextCSN values of each naming context the job's bases are in, or why they could not be read.
pub type ContextCsns = Vec<(String, Result<Vec<String>, String>)>;

/// Read, for each of `bases`, the contextCSN of the naming context that holds it.
pub async fn read(ldap: &mut Ldap, bases: &[&str]) -> ContextCsns {
    let contexts = match naming_contexts(ldap).await {
        Ok(c) => c,
        Err(why) => return bases.iter().map(|b| (b.to_string(), Err(why.clone()))).collect(),
    };
    let mut out: ContextCsns = Vec::new();
    for base in bases {
        let Some(nc) = holding(&contexts, base) else {
            out.push((base.to_string(), Err("no naming context of the server holds the search base".to_string())));
            continue;
        };
        if out.iter().any(|(n, _)| n == nc) {
            continue;
        }
        out.push((nc.to_string(), context_csn(ldap, nc).await));
    }
    out
}

/// The values `attr` of the one entry a base search of `dn` returns (the first entry only is read).
async fn values(ldap: &mut Ldap, dn: &str, attr: &str) -> Result<Vec<String>, String> {
    let words = |e: ldap3::LdapError| crate::reason::ldap_reason(&e);
    let mut stream = ldap.streaming_search(dn, Scope::Base, "(objectClass=*)", vec![attr]).await.map_err(words)?;
    let mut entry = None;
    while let Some(item) = stream.next().await.map_err(words)? {
        if !item.is_ref() && !item.is_intermediate() {
            entry = Some(Entry::parse(item.0).ok_or("the server sent an entry that cannot be decoded")?);
            break;
        }
    }
    let result = stream.finish().await;
    let Some(entry) = entry else {
        return Err(match result.rc {
            0 => "the entry cannot be read".to_string(),
            rc => crate::reason::result_reason(rc, &result.text),
        });
    };
    let values = entry.attrs.iter().find(|(a, _)| a.eq_ignore_ascii_case(attr)).map(|(_, v)| v.clone());
    let values: Vec<String> =
        values.unwrap_or_default().iter().map(|v| crate::reason::server_text(&String::from_utf8_lossy(v))).collect();
    if values.is_empty() {
        return Err(format!("no {attr} (not exposed to this identity?)"));
    }
    Ok(values)
}

async fn naming_contexts(ldap: &mut Ldap) -> Result<Vec<String>, String> {
    values(ldap, "", "namingContexts").await.map_err(|why| format!("rootDSE: {why}"))
}

async fn context_csn(ldap: &mut Ldap, nc: &str) -> Result<Vec<String>, String> {
    values(ldap, nc, "contextCSN").await
}

/// A DN compared as a suffix: lower case, no blanks after the commas.
fn folded(dn: &str) -> String {
    dn.split(',').map(|rdn| rdn.trim().to_ascii_lowercase()).collect::<Vec<_>>().join(",")
}

/// The longest naming context that `base` is in.
fn holding<'a>(contexts: &'a [String], base: &str) -> Option<&'a str> {
    let base = folded(base);
    contexts
        .iter()
        .filter(|nc| {
            let nc = folded(nc);
            !nc.is_empty() && (base == nc || base.ends_with(&format!(",{nc}")))
        })
        .max_by_key(|nc| nc.len())
        .map(String::as_str)
}

/// A CSN's time (Unix seconds) and server id: `20261201120000.123456Z#000000#001#000000` -> (t, "001").
pub fn parse_csn(csn: &str) -> Option<(f64, String)> {
    let (time, rest) = csn.split_once('Z')?;
    let sid = rest.split('#').nth(2)?.to_string();
    let (whole, fraction) = time.split_once('.').unwrap_or((time, "0"));
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(8..10)?, n(10..12)?, n(12..14)?);
    let days = super::certinfo::days_from_civil(y, m, d);
    let fraction: f64 = format!("0.{fraction}").parse().ok()?;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64 + fraction, sid))
}

/// How far each server's data lags, from each server's contextCSN values: per server id, the newest time any
/// server has; a server's lag is the most it is behind on any id (an id it lacks counts from its own newest
/// value). One busy id must not hide a dead one. `None` for a server whose values cannot be read.
pub fn lags(servers: &[Vec<String>]) -> Vec<Option<f64>> {
    let parsed: Vec<Vec<(f64, String)>> =
        servers.iter().map(|v| v.iter().filter_map(|c| parse_csn(c)).collect()).collect();
    let mut newest: Vec<(String, f64)> = Vec::new();
    for (t, sid) in parsed.iter().flatten() {
        match newest.iter_mut().find(|(s, _)| s == sid) {
            Some((_, n)) => *n = n.max(*t),
            None => newest.push((sid.clone(), *t)),
        }
    }
    parsed
        .iter()
        .map(|own| {
            let own_newest = own.iter().map(|(t, _)| *t).fold(f64::NEG_INFINITY, f64::max);
            if own.is_empty() {
                return None;
            }
            let lag = newest
                .iter()
                .map(|(sid, reference)| {
                    let mine = own.iter().find(|(_, s)| s == sid).map_or(own_newest, |(t, _)| *t);
                    (reference - mine).max(0.0)
                })
                .fold(0.0, f64::max);
            Some(lag)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csns_read_as_time_and_server_id() {
        let (t, sid) = parse_csn("20261201120000.500000Z#000000#001#000000").unwrap();
        assert_eq!((t, sid.as_str()), (1_796_126_400.5, "001"));
        assert_eq!(parse_csn("20261201120000Z#000001#01#000000").unwrap().1, "01", "2.3's form");
        assert_eq!(parse_csn("garbage"), None);
    }

    #[test]
    fn lag_is_per_server_id() {
        let a = vec!["20261201120000.000000Z#000000#001#000000".to_string()];
        let b = vec!["20261201110000.000000Z#000000#001#000000".to_string()];
        assert_eq!(lags(&[a.clone(), b.clone()]), vec![Some(0.0), Some(3600.0)]);
        assert_eq!(lags(&[a.clone(), a.clone()]), vec![Some(0.0), Some(0.0)]);
        // Two providers: b is current on 002 but an hour behind on 001; the busy 002 does not hide it.
        let a2 = vec![a[0].clone(), "20261201115000.000000Z#000000#002#000000".to_string()];
        let b2 = vec![b[0].clone(), "20261201115000.000000Z#000000#002#000000".to_string()];
        assert_eq!(lags(&[a2, b2]), vec![Some(0.0), Some(3600.0)]);
        assert_eq!(lags(&[a, vec![]]), vec![Some(0.0), None]);
    }

    #[test]
    fn the_naming_context_that_holds_the_base() {
        let ncs = vec!["dc=example,dc=com".to_string(), "ou=x, dc=example,dc=com".to_string()];
        assert_eq!(holding(&ncs, "ou=people,dc=example,dc=com"), Some("dc=example,dc=com"));
        assert_eq!(holding(&ncs, "uid=a,OU=X,dc=Example,dc=com"), Some("ou=x, dc=example,dc=com"));
        assert_eq!(holding(&ncs, "dc=other"), None);
    }
}
