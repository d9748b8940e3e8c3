//! Finding the LDAP maps Postfix uses, from Postfix's own configuration.
//!
//! `postconf -c DIR -x` prints every main.cf parameter (set or default) with `$name` references expanded as
//! Postfix expands them, and `postconf -c DIR -P -x` the `-o` overrides of master.cf. Every `ldap:` and
//! `proxy:ldap:` map named in any value (also inside `unionmap:{...}`/`pipemap:{...}` and restriction lists) is
//! a map to check, once, with the parameters that use it. `proxy_read_maps`/`proxy_write_maps` only list what
//! proxymap may open and do not count as uses.
//!
//! Legacy maps (`ldap:NAME`, where NAME does not start with `/` or `.`) take their settings from main.cf as
//! `NAME_server_host = ...`: those parameters (`postconf -n -x`: set explicitly, `$name` expanded as Postfix
//! does for them) become the text of a map file, parsed like any other.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};

use crate::deadline::Deadline;
use crate::map::Source;
use crate::postfix::{find_postfix_tool, run_bounded};

pub mod services;

/// Parameters that name maps without using them for lookups.
const NOT_USES: &[&str] = &["proxy_read_maps", "proxy_write_maps"];

/// Every LDAP map that the Postfix configuration in `dir` uses. An error means the configuration could not be
/// read (no postconf, a bad directory, or postconf still running at the deadline: it is killed then).
pub fn discover(dir: &Path, deadline: &Deadline) -> anyhow::Result<Vec<Source>> {
    let postconf = find_postfix_tool("postconf").ok_or_else(|| {
        anyhow!(
            "postconf is not installed: cannot read the Postfix configuration in {}; give the maps with -f",
            dir.display()
        )
    })?;
    // Four postconf runs at once: each waits about 2 s when main.cf was just written (Postfix's "hot" file rule).
    let (main, master, set, fields) = std::thread::scope(|scope| {
        let run = |args: &'static [&'static str]| scope.spawn(|| postconf_lines(&postconf, dir, args, deadline));
        let main = run(&["-x"]);
        // master.cf is optional for this purpose (postconf -P and -F fail without it).
        let has_master = dir.join("master.cf").exists();
        let master = has_master.then(|| run(&["-P", "-x"]));
        let fields = has_master.then(|| run(&["-F"]));
        let set = run(&["-n", "-x"]);
        let join = |h: std::thread::ScopedJoinHandle<'_, anyhow::Result<Vec<(String, String)>>>| {
            h.join().unwrap_or_else(|_| Err(anyhow!("postconf reader failed")))
        };
        let optional = |h: Option<std::thread::ScopedJoinHandle<'_, _>>| h.map(join).unwrap_or(Ok(Vec::new()));
        (join(main), optional(master), join(set), optional(fields))
    });
    let (main, master, set, fields) = (main?, master?, set?, fields?);
    let value = |name: &str| main.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let queue_dir = value("queue_directory").map(PathBuf::from);
    let services = services::services(&fields, &value("compatibility_level").unwrap_or_default());
    let mut maps = maps_in(main.iter().chain(&master), &set, queue_dir.as_deref(), &services);
    // postconf does not print parameters it does not know, such as NAME_health_check_key: read main.cf.
    let main_cf = crate::file::read(&dir.join("main.cf"), deadline.until()).unwrap_or_default();
    let main_cf = String::from_utf8_lossy(&main_cf);
    for m in maps.iter_mut() {
        let (Some(text), Some(name)) = (m.text.as_mut(), m.path.to_str().and_then(|p| p.strip_prefix("ldap:"))) else {
            continue;
        };
        if let Some(keys) = main_cf_value(&main_cf, &format!("{name}_health_check_key")) {
            text.extend_from_slice(format!("health_check_key = {keys}\n").as_bytes());
        }
    }
    Ok(maps)
}

/// Run `postconf -c DIR ARGS`, killed at the deadline, and split its output into (name, value).
fn postconf_lines(
    postconf: &Path,
    dir: &Path,
    args: &[&str],
    deadline: &Deadline,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut cmd = std::process::Command::new(postconf);
    cmd.arg("-c").arg(dir).args(args);
    let out = run_bounded(&mut cmd, deadline).with_context(|| {
        if deadline.passed() {
            format!("postconf -c {} did not finish within the deadline (-t, else 10s): killed", dir.display())
        } else {
            format!("postconf -c {}", dir.display())
        }
    });
    let out = match out {
        // The deadline's message says it all: do not add "postconf timed out".
        Err(e) if deadline.passed() => bail!("{e}"),
        other => other?,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed");
        bail!("postconf -c {} cannot read the configuration: {}", dir.display(), last.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
        .collect())
}

/// The LDAP maps named in `params` (name, expanded value), in order of first use, each with its users.
/// `set` holds the explicitly set main.cf parameters, for legacy maps.
pub fn maps_in<'a>(
    params: impl Iterator<Item = &'a (String, String)>,
    set: &[(String, String)],
    queue_dir: Option<&Path>,
    services: &[services::Service],
) -> Vec<Source> {
    let mut maps: Vec<Source> = Vec::new();
    let mut index: HashMap<PathBuf, usize> = HashMap::new();
    for (name, value) in params {
        if NOT_USES.contains(&name.as_str()) {
            continue;
        }
        for (map, proxy) in ldap_maps(value) {
            let source = if map.starts_with('/') {
                Source::file(PathBuf::from(map))
            } else if map.starts_with('.') {
                // Postfix daemons run in the queue directory.
                Source::file(queue_dir.unwrap_or(Path::new("/var/spool/postfix")).join(map))
            } else {
                legacy(map, set)
            };
            let i = *index.entry(source.path.clone()).or_insert_with(|| {
                maps.push(source);
                maps.len() - 1
            });
            if !maps[i].used_by.contains(name) {
                maps[i].used_by.push(name.clone());
            }
            for u in services::users(name, proxy, services) {
                if !maps[i].services.contains(&u) {
                    maps[i].services.push(u);
                }
            }
            maps[i].chroot_dir = queue_dir.map(Path::to_path_buf);
        }
    }
    maps
}

/// The names of the `ldap:` maps in one parameter value (`proxy:` stripped), each with whether it was read
/// through `proxy:`.
pub fn ldap_maps(value: &str) -> Vec<(&str, bool)> {
    value
        .split([' ', '\t', ',', '{', '}'])
        .filter_map(|token| {
            let mut t = token;
            let mut proxy = false;
            while let Some(rest) = t.strip_prefix("proxy:") {
                t = rest;
                proxy = true;
            }
            // `ldap://host` is a server URL (as in NAME_server_host), not a map.
            t.strip_prefix("ldap:").filter(|m| !m.is_empty() && !m.starts_with("//")).map(|m| (m, proxy))
        })
        .collect()
}

/// The value of `name` in main.cf text (the last definition; continuation lines joined; no `$` expansion).
pub fn main_cf_value(text: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    let mut current = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if current {
                if let Some(v) = value.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            }
            continue;
        }
        current = false;
        if let Some(rest) = line.strip_prefix(name) {
            if let Some(v) = rest.trim_start().strip_prefix('=') {
                value = Some(v.trim().to_string());
                current = true;
            }
        }
    }
    value
}

/// A legacy main.cf map: its `NAME_param` parameters as a map file.
fn legacy(name: &str, set: &[(String, String)]) -> Source {
    let prefix = format!("{name}_");
    let mut text = Vec::new();
    for (param, value) in set {
        if let Some(p) = param.strip_prefix(&prefix) {
            text.extend_from_slice(format!("{p} = {value}\n").as_bytes());
        }
    }
    Source::text(PathBuf::from(format!("ldap:{name}")), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: &str, v: &str) -> (String, String) {
        (n.to_string(), v.to_string())
    }

    #[test]
    fn finds_ldap_maps_in_values() {
        assert_eq!(ldap_maps("ldap:/etc/postfix/a.cf, hash:/etc/postfix/x"), [("/etc/postfix/a.cf", false)]);
        assert_eq!(ldap_maps("proxy:ldap:/etc/postfix/b.cf"), [("/etc/postfix/b.cf", true)]);
        assert_eq!(
            ldap_maps("unionmap:{ldap:/a.cf, proxy:ldap:/b.cf} pipemap:{ldap:/c.cf,hash:/d}"),
            [("/a.cf", false), ("/b.cf", true), ("/c.cf", false)]
        );
        assert_eq!(ldap_maps("permit_mynetworks, check_recipient_access ldap:legacy"), [("legacy", false)]);
        assert!(ldap_maps("ldap://127.0.0.1:389 ldapi://%2F ldap:").is_empty());
        assert!(ldap_maps("ldaps:/x.cf mysql:/y.cf").is_empty());
    }

    #[test]
    fn each_map_once_with_its_users() {
        let params = [
            p("proxy_read_maps", "proxy:ldap:/e/a.cf ldap:/e/z.cf"),
            p("relay_recipient_maps", "ldap:legacy"),
            p("smtpd_sender_login_maps", "unionmap:{ldap:/e/s.cf, ldap:/e/u.cf}"),
            p("virtual_alias_maps", "proxy:ldap:/e/a.cf"),
            p("virtual_mailbox_maps", "ldap:/e/u.cf, hash:/e/x"),
            p("submission/inet/smtpd_sender_login_maps", "ldap:/e/u.cf"),
            p("x_maps", "ldap:./rel.cf"),
        ];
        let set = [p("legacy_server_host", "ldap://h"), p("legacy_search_base", "dc=x"), p("other", "1")];
        let maps = maps_in(params.iter(), &set, Some(Path::new("/q")), &[]);
        let names: Vec<_> = maps.iter().map(|m| m.path.display().to_string()).collect();
        assert_eq!(names, ["ldap:legacy", "/e/s.cf", "/e/u.cf", "/e/a.cf", "/q/./rel.cf"]);
        assert_eq!(
            maps[2].used_by,
            ["smtpd_sender_login_maps", "virtual_mailbox_maps", "submission/inet/smtpd_sender_login_maps"]
        );
        assert_eq!(maps[3].used_by, ["virtual_alias_maps"]);
        assert_eq!(maps[0].text.as_deref(), Some(&b"server_host = ldap://h\nsearch_base = dc=x\n"[..]));
        let m = maps[0].load(std::time::Instant::now() + std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(m.search_base, "dc=x");
        assert_eq!(m.name(), "ldap:legacy");
    }

    #[test]
    fn main_cf_values() {
        let text = "a_key = x\n# c\na_keyx = no\na_key = y,\n  z\nb = 1\n";
        assert_eq!(main_cf_value(text, "a_key").as_deref(), Some("y, z"));
        assert_eq!(main_cf_value(text, "a_ke"), None);
        assert_eq!(main_cf_value(text, "c"), None);
    }
}
