//! `server_host` as `dict_ldap_open()` and libldap's `ldap_initialize()` read it: bare hosts get `server_port`,
//! `host:port` becomes `ldap://host:port`, URLs are parsed by libldap's rules ([`super::ldap_url`]).

use super::ldap_url::{self, LdapUrl, UrlScheme};
use super::reader::{is_list_separator, shown, Params};
use super::{ConfigError, Scheme, Server};

/// What `server_host` gives: the servers in order and, if libldap would refuse the whole list (Postfix then
/// fails every lookup), why.
pub(super) struct ServerList {
    pub(super) servers: Vec<Server>,
    pub(super) problem: Option<String>,
}

/// msg_error() makes the 13th error of a process fatal.
const ERROR_LIMIT: usize = 13;

impl Params<'_> {
    /// The `server_host` part of `dict_ldap_open()` and of libldap's `ldap_initialize()`. A URL scheme other
    /// than `ldap` forces `version` to 3, as Postfix does.
    pub(super) fn servers(
        &mut self,
        server_host: &str,
        server_port: i32,
        version: &mut u8,
    ) -> Result<ServerList, ConfigError> {
        let mut list = ServerList { servers: Vec::new(), problem: None };
        let mut url_errors = 0;
        let mut tokens = 0;
        for token in server_host.split(is_list_separator).filter(|t| !t.is_empty()) {
            tokens += 1;
            if ldap_url::is_ldap_url(token) {
                if !self.url_entry(&mut list, token, version) {
                    url_errors += 1;
                    if url_errors == ERROR_LIMIT {
                        let message = format!(
                            "too many errors - program terminated ({ERROR_LIMIT} URLs in server_host cannot be parsed)"
                        );
                        return Err(self.error_at("server_host", message));
                    }
                }
            } else {
                self.host_entry(&mut list, token, server_port);
            }
        }
        if list.problem.is_none() && list.servers.is_empty() {
            list.problem = Some(if tokens == 0 {
                "server_host names no server".to_string()
            } else {
                "no usable server in server_host: every entry was skipped".to_string()
            });
        }
        Ok(list)
    }

    /// An `ldap[sip]://` entry: a URL libldap cannot parse is skipped with a warning. Returns whether it parsed.
    fn url_entry(&mut self, list: &mut ServerList, token: &str, version: &mut u8) -> bool {
        match ldap_url::parse(token) {
            Ok(url) => {
                if url.scheme != UrlScheme::Ldap && *version != 3 {
                    let message = format!("URL scheme {} requires protocol version 3", url.scheme.name());
                    self.warn_at("server_host", message);
                    *version = 3;
                }
                self.add_server(&mut list.servers, token, url);
                true
            }
            Err(reason) => {
                self.warn_at("server_host", format!("error parsing URL {}: {reason}; skipping", shown(token)));
                false
            }
        }
    }

    /// A `host[:port]` entry. Postfix turns it into a URL without checking it; libldap then rejects the whole list
    /// if it does not parse.
    fn host_entry(&mut self, list: &mut ServerList, token: &str, server_port: i32) {
        let url = if token.contains(':') { format!("ldap://{token}") } else { format!("ldap://{token}:{server_port}") };
        match ldap_url::parse(&url) {
            Ok(parsed) => self.add_server(&mut list.servers, token, parsed),
            Err(reason) => {
                if list.problem.is_none() {
                    list.problem = Some(unusable_host_message(token, &url, reason));
                }
            }
        }
    }

    fn add_server(&mut self, servers: &mut Vec<Server>, token: &str, url: LdapUrl) {
        let scheme = match url.scheme {
            UrlScheme::Ldap => Scheme::Ldap,
            UrlScheme::Ldaps => Scheme::Ldaps,
            UrlScheme::Ldapi => Scheme::Ldapi,
            UrlScheme::Pldap | UrlScheme::Pldaps => {
                let (scheme, as_name) =
                    if url.scheme == UrlScheme::Pldap { (Scheme::Ldap, "ldap") } else { (Scheme::Ldaps, "ldaps") };
                let message = format!("URL scheme {} is checked as {as_name}: {}", url.scheme.name(), shown(token));
                self.warn_at("server_host", message);
                scheme
            }
        };
        if scheme == Scheme::Ldapi {
            if url.host.is_empty() && url.has_dn {
                let message = format!(
                    "{}: an ldapi socket path must be percent-encoded (ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi); \
                     libldap uses its default socket",
                    shown(token)
                );
                self.warn_at("server_host", message);
            }
            servers.push(Server { scheme, host: url.host, port: 0 });
            return;
        }
        let port = match u16::try_from(url.port) {
            Ok(port) if port != 0 => port,
            _ => {
                let message = format!("port {} out of range in {}; skipping", url.port, shown(token));
                self.warn_at("server_host", message);
                return;
            }
        };
        // libldap connects to localhost when the URL names no host.
        let host = if url.host.is_empty() { "localhost".to_string() } else { url.host };
        servers.push(Server { scheme, host, port });
    }
}

fn unusable_host_message(token: &str, url: &str, reason: &str) -> String {
    let mut message = format!(
        "server_host entry \"{}\" becomes the invalid URL {} ({reason}): libldap rejects the whole server list \
         and Postfix fails every lookup",
        shown(token),
        shown(url)
    );
    if token.matches(':').count() > 1 && !token.contains('[') {
        message.push_str("; write an IPv6 address as [::1] or ldap://[::1]:389");
    }
    message
}
