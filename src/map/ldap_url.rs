//! LDAP URLs as OpenLDAP 2.5's libldap reads them (`ldap_url_parse()` in `libraries/libldap/url.c`), once for
//! every use: the entries of `server_host`, and the LDAP URLs a `special_result_attribute` returns.

use super::Scope;

/// Where OpenLDAP's client looks for the local socket when an `ldapi://` URL names none (Debian's libldap).
pub const DEFAULT_LDAPI_SOCKET: &str = "/var/run/slapd/ldapi";

/// The URL schemes of OpenLDAP 2.5's libldap (`cldap` is not built on Debian). `pldap`/`pldaps` name
/// PROXY-protocol listeners; a client connects to them like `ldap`/`ldaps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UrlScheme {
    Ldap,
    Ldaps,
    Ldapi,
    Pldap,
    Pldaps,
}

impl UrlScheme {
    pub(crate) fn name(self) -> &'static str {
        match self {
            UrlScheme::Ldap => "ldap",
            UrlScheme::Ldaps => "ldaps",
            UrlScheme::Ldapi => "ldapi",
            UrlScheme::Pldap => "pldap",
            UrlScheme::Pldaps => "pldaps",
        }
    }

    fn default_port(self) -> i64 {
        match self {
            UrlScheme::Ldaps | UrlScheme::Pldaps => 636,
            UrlScheme::Ldapi => 0,
            UrlScheme::Ldap | UrlScheme::Pldap => 389,
        }
    }
}

/// The scope of an LDAP URL (`?one`, `?base`, `?sub`, `?subordinate`; base when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UrlScope {
    Map(Scope),
    /// `subord`, `subordinate`, `children`: valid for libldap, not a scope an LDAP map has.
    Subordinate,
}

/// Everything an LDAP URL says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LdapUrl {
    pub(crate) scheme: UrlScheme,
    /// Decoded; empty when the URL names none. For ldapi, the socket path.
    pub(crate) host: String,
    /// With the scheme's default filled in, as `ldap_initialize()` does; 0 for ldapi. Not range-checked
    /// (libldap does not either).
    pub(crate) port: i64,
    /// The decoded DN; empty when the URL has none.
    pub(crate) dn: String,
    /// The URL carries a non-empty DN part (for ldapi, the usual sign of an unencoded socket path).
    pub(crate) has_dn: bool,
    /// The decoded attribute names, in order.
    pub(crate) attrs: Vec<String>,
    pub(crate) scope: UrlScope,
    /// The decoded filter, when the URL has a non-empty one.
    pub(crate) filter: Option<String>,
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// libldap's `ldap_is_ldap_url()`: whether `value` starts like an LDAP URL.
pub(crate) fn is_ldap_url(value: &str) -> bool {
    url_prefix(value).is_some()
}

/// libldap's `skip_url_prefix()`, behind `ldap_is_ldap_url()`: an optional `<` and `URL:`, then a scheme, all
/// case-insensitive. Returns whether the URL is enclosed in `<>`, the scheme and the rest.
fn url_prefix(token: &str) -> Option<(bool, UrlScheme, &str)> {
    const PREFIXES: [(&str, UrlScheme); 5] = [
        ("ldap://", UrlScheme::Ldap),
        ("pldap://", UrlScheme::Pldap),
        ("ldaps://", UrlScheme::Ldaps),
        ("pldaps://", UrlScheme::Pldaps),
        ("ldapi://", UrlScheme::Ldapi),
    ];
    let (enclosed, rest) = match token.strip_prefix('<') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let rest = strip_prefix_ignore_case(rest, "URL:").unwrap_or(rest);
    PREFIXES
        .iter()
        .find_map(|&(prefix, scheme)| strip_prefix_ignore_case(rest, prefix).map(|rest| (enclosed, scheme, rest)))
}

/// `ldap_url_parse()` of OpenLDAP 2.5: whether the URL is accepted, and what it says.
pub(crate) fn parse(url: &str) -> Result<LdapUrl, &'static str> {
    let (enclosed, scheme, mut rest) = url_prefix(url).ok_or("bad scheme")?;
    if enclosed {
        rest = rest.strip_suffix('>').ok_or("bad enclosure")?;
    }
    let (hostport, path) = match rest.split_once('/') {
        Some((hostport, path)) => (hostport, Some(path)),
        // Without a '/', a '?' ends the host part (libldap's "Novell kludge"); the rest is not checked.
        None => (rest.split_once('?').map_or(rest, |(hostport, _)| hostport), None),
    };
    let (host, port) = host_and_port(scheme, hostport)?;
    let mut parsed = LdapUrl {
        scheme,
        host,
        port,
        dn: String::new(),
        has_dn: false,
        attrs: Vec::new(),
        scope: UrlScope::Map(Scope::Base),
        filter: None,
    };
    if let Some(path) = path {
        parse_path(path, &mut parsed)?;
    }
    Ok(parsed)
}

/// The host (decoded) and the port (the scheme's default when absent or 0) of `host[:port]`.
fn host_and_port(scheme: UrlScheme, hostport: &str) -> Result<(String, i64), &'static str> {
    if scheme == UrlScheme::Ldapi {
        return Ok((hex_unescape(hostport), 0));
    }
    let (host, port) = split_host_port(hostport)?;
    let port = match port {
        None => 0,
        Some(port) => {
            let port = hex_unescape(port);
            if port.is_empty() {
                return Err("empty port");
            }
            super::reader::parse_c_long(port.as_bytes()).ok_or("bad port")?
        }
    };
    Ok((hex_unescape(host), if port == 0 { scheme.default_port() } else { port }))
}

/// `dn ? attributes ? scope ? filter ? extensions`, each part optional.
fn parse_path(path: &str, url: &mut LdapUrl) -> Result<(), &'static str> {
    let parts: Vec<&str> = path.split('?').collect();
    if parts.len() > 5 {
        return Err("bad URL: too many '?'");
    }
    url.has_dn = !parts[0].is_empty();
    url.dn = hex_unescape(parts[0]);
    if let Some(attrs) = parts.get(1) {
        url.attrs = attrs.split(',').filter(|a| !a.is_empty()).map(hex_unescape).collect();
    }
    if let Some(scope) = parts.get(2).filter(|s| !s.is_empty()) {
        url.scope = match hex_unescape(scope).to_ascii_lowercase().as_str() {
            "base" => UrlScope::Map(Scope::Base),
            "one" | "onelevel" => UrlScope::Map(Scope::One),
            "sub" | "subtree" => UrlScope::Map(Scope::Sub),
            "subord" | "subordinate" | "children" => UrlScope::Subordinate,
            _ => return Err("bad scope"),
        };
    }
    if let Some(filter) = parts.get(3).filter(|f| !f.is_empty()) {
        let filter = hex_unescape(filter);
        if filter.is_empty() {
            return Err("bad filter");
        }
        url.filter = Some(filter);
    }
    if parts.get(4).is_some_and(|extensions| extensions.split(',').all(str::is_empty)) {
        return Err("bad extensions");
    }
    Ok(())
}

/// Split `host[:port]` or `[v6address][:port]`.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("missing ']'")?;
        match after.find(':') {
            None => Ok((host, None)),
            Some(0) => Ok((host, Some(&after[1..]))),
            Some(_) => Err("text between ']' and ':'"),
        }
    } else {
        Ok(match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        })
    }
}

/// libldap's `ldap_pvt_hex_unescape()`: decode `%XX`. A `%` without two hex digits empties the whole string, and
/// a decoded NUL ends it (C strings).
pub(crate) fn hex_unescape(s: &str) -> String {
    fn hex(b: Option<&u8>) -> Option<u8> {
        b.and_then(|&b| char::from(b).to_digit(16)).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(high), Some(low)) => out.push(high << 4 | low),
                _ => return String::new(),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if let Some(nul) = out.iter().position(|&b| b == 0) {
        out.truncate(nul);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode an ldapi socket path the way OpenLDAP writes it (`/` as `%2F`).
pub fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() * 3);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
