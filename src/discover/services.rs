//! Which Postfix daemons open a map themselves, and whether they run chrooted (`queue_directory`): a chrooted
//! daemon reads a map's TLS files and connects to its ldapi socket inside the chroot, at its first lookup
//! (dict_ldap.c: the TLS context is made then), so files that exist only outside make every lookup of that
//! daemon fail (451) while `postmap -q` works. A map read through `proxy:` is opened by proxymap, which is not
//! chrooted.
//!
//! From `postconf -F` (each master.cf service's `chroot` and `command`) and Postfix's sources (which daemon
//! opens which parameter's maps: smtpd.c, smtpd_check.c, cleanup_init.c, trivial-rewrite.c, smtp.c, local.c,
//! virtual.c, postscreen.c, tlsproxy.c).

use crate::map::ServiceUse;

/// A master.cf service: `smtp/inet`, the daemon it runs (`smtpd`), chrooted or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub daemon: String,
    pub chroot: bool,
}

/// The services of `postconf -F` lines (`smtp/inet/chroot = y`, `smtp/inet/command = smtpd -o ...`). A `-` in
/// the chroot column means y below compatibility level 1, n from it on (master_ent.c).
pub fn services(fields: &[(String, String)], compatibility_level: &str) -> Vec<Service> {
    let level: f64 = compatibility_level.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0.0);
    let mut out: Vec<Service> = Vec::new();
    for (name, value) in fields {
        let Some((service, field)) = name.rsplit_once('/') else { continue };
        let entry = match out.iter().position(|s| s.name == service) {
            Some(i) => &mut out[i],
            None => {
                out.push(Service { name: service.to_string(), daemon: String::new(), chroot: false });
                out.last_mut().expect("just pushed")
            }
        };
        match field {
            "chroot" => entry.chroot = value == "y" || (value == "-" && level < 1.0),
            "command" => entry.daemon = value.split_whitespace().next().unwrap_or("").to_string(),
            _ => {}
        }
    }
    out
}

/// The daemons that open the maps of main.cf parameter `param` themselves.
pub fn daemons(param: &str) -> &'static [&'static str] {
    const SMTPD_CLEANUP: &[&str] = &["smtpd", "cleanup"];
    const SMTPD_REWRITE: &[&str] = &["smtpd", "trivial-rewrite"];
    const SMTPD_CLEANUP_REWRITE: &[&str] = &["smtpd", "cleanup", "trivial-rewrite"];
    match param {
        "virtual_alias_maps" => SMTPD_CLEANUP,
        "canonical_maps" | "sender_canonical_maps" | "recipient_canonical_maps" => SMTPD_CLEANUP,
        "virtual_mailbox_maps" => &["smtpd", "virtual"],
        "local_recipient_maps" | "relay_recipient_maps" | "smtpd_sender_login_maps" | "rbl_reply_maps" => &["smtpd"],
        "smtpd_milter_maps" | "smtpd_discard_ehlo_keyword_address_maps" | "smtpd_reject_footer_maps" => &["smtpd"],
        "smtpd_command_filter" | "tls_server_sni_maps" | "mynetworks" => &["smtpd"],
        "virtual_alias_domains" | "virtual_mailbox_domains" | "relay_domains" | "mydestination" => {
            SMTPD_CLEANUP_REWRITE
        }
        "header_checks"
        | "mime_header_checks"
        | "nested_header_checks"
        | "body_checks"
        | "sender_bcc_maps"
        | "recipient_bcc_maps" => &["cleanup"],
        "transport_maps"
        | "relocated_maps"
        | "sender_dependent_relayhost_maps"
        | "sender_dependent_default_transport_maps" => &["trivial-rewrite"],
        "alias_maps" | "mailbox_transport_maps" | "mailbox_command_maps" | "fallback_transport_maps" => &["local"],
        "virtual_uid_maps" | "virtual_gid_maps" => &["virtual"],
        "tlsproxy_client_policy_maps" => &["tlsproxy"],
        p if p.starts_with("smtpd_") && p.ends_with("_restrictions") => &["smtpd"],
        p if p.starts_with("postscreen_") => &["postscreen"],
        p if p.starts_with("smtp_") => &["smtp"],
        p if p.starts_with("lmtp_") => &["lmtp"],
        p if p.starts_with("address_verify_") => SMTPD_REWRITE,
        _ => &[],
    }
}

/// The services that use a map named by `param` (`virtual_alias_maps`, or a master.cf override
/// `submission/inet/virtual_alias_maps`, which only that service sees).
pub fn users(param: &str, proxy: bool, services: &[Service]) -> Vec<ServiceUse> {
    let (only, base) = match param.rsplit_once('/') {
        Some((service, base)) => (Some(service), base),
        None => (None, param),
    };
    let daemons = daemons(base);
    services
        .iter()
        .filter(|s| only.is_none_or(|o| o == s.name))
        // The smtp client runs as `smtp` and as `lmtp` (the same program).
        .filter(|s| daemons.contains(&s.daemon.as_str()) || (s.daemon == "smtp" && daemons.contains(&"lmtp")))
        .map(|s| ServiceUse {
            service: s.name.clone(),
            daemon: s.daemon.clone(),
            chroot: s.chroot,
            proxy,
            param: param.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(lines: &[(&str, &str)]) -> Vec<(String, String)> {
        lines.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn services_from_postconf_f() {
        let f = fields(&[
            ("smtp/inet/chroot", "y"),
            ("smtp/inet/command", "smtpd"),
            ("submission/inet/chroot", "-"),
            ("submission/inet/command", "smtpd -o smtpd_tls_security_level=encrypt"),
            ("virtual/unix/chroot", "n"),
            ("virtual/unix/command", "virtual"),
        ]);
        let s = services(&f, "3.6");
        assert_eq!(s[0], Service { name: "smtp/inet".into(), daemon: "smtpd".into(), chroot: true });
        assert_eq!((s[1].daemon.as_str(), s[1].chroot), ("smtpd", false), "- means n from level 1");
        assert!(services(&f, "0")[1].chroot, "- means y below level 1");
        let vmbox = users("virtual_mailbox_maps", false, &s);
        let names: Vec<(&str, bool)> = vmbox.iter().map(|u| (u.service.as_str(), u.chroot)).collect();
        assert_eq!(names, [("smtp/inet", true), ("submission/inet", false), ("virtual/unix", false)]);
        let only = users("submission/inet/virtual_alias_maps", true, &s);
        assert_eq!(only.len(), 1);
        assert_eq!((only[0].service.as_str(), only[0].proxy), ("submission/inet", true));
    }
}
