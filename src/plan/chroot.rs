//! A map opened directly (not through `proxy:`) by a chrooted Postfix daemon: the files its TLS context reads
//! (`tls_ca_cert_file`, `tls_ca_cert_dir`, `tls_cert`, `tls_key`, made at the first lookup, inside the jail)
//! and its ldapi sockets must exist inside `queue_directory`, or every lookup that daemon makes fails (451:
//! "Unable to allocate new TLS context", "Can't contact LDAP server") while `postmap -q` and a check run
//! outside pass.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::map::ldap_url::DEFAULT_LDAPI_SOCKET;
use crate::map::{Map, Scheme, Source};

/// What the chrooted daemons that open `map` directly cannot find in their chroot, one line each.
pub fn findings(map: &Map, source: &Source, until: Instant) -> Vec<String> {
    let Some(root) = &source.chroot_dir else { return Vec::new() };
    let chrooted: Vec<String> = source
        .services
        .iter()
        .filter(|u| u.chroot && !u.proxy)
        .map(|u| format!("{} ({})", u.daemon, u.service))
        .collect();
    if chrooted.is_empty() {
        return Vec::new();
    }
    let mut missing = Vec::new();
    let tls = map.start_tls || map.servers.iter().any(|s| s.scheme == Scheme::Ldaps);
    if tls {
        let files =
            [("tls_ca_cert_file", &map.tls.ca_cert_file), ("tls_cert", &map.tls.cert), ("tls_key", &map.tls.key)];
        for (name, path) in files {
            if let Some(path) = path {
                if let Err(why) = crate::file::read(&inside(root, path), until) {
                    missing.push((name, path.clone(), why.to_string()));
                }
            }
        }
        if let Some(dir) = &map.tls.ca_cert_dir {
            if let Err(why) = crate::file::list_dir(&inside(root, dir), until) {
                missing.push(("tls_ca_cert_dir", dir.clone(), why.to_string()));
            }
        }
    }
    for s in map.servers.iter().filter(|s| s.scheme == Scheme::Ldapi) {
        let socket = PathBuf::from(if s.host.is_empty() { DEFAULT_LDAPI_SOCKET } else { &s.host });
        use std::os::unix::fs::FileTypeExt;
        if !std::fs::metadata(inside(root, &socket)).is_ok_and(|m| m.file_type().is_socket()) {
            missing.push(("the ldapi socket", socket, "no socket there".to_string()));
        }
    }
    let who = chrooted.join(", ");
    missing
        .into_iter()
        .map(|(name, path, why)| {
            format!(
                "{who}, chrooted in {}, cannot open {name} {} there ({}: {why}): every lookup it makes fails (451); \
                 copy it into the chroot, or read the map through proxy:ldap:",
                root.display(),
                path.display(),
                inside(root, &path).display()
            )
        })
        .collect()
}

/// `path` as a daemon chrooted in `root` sees it.
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}
