//! Postfix `ldap_table(5)` map files, read exactly as Postfix reads them.
//!
//! Parsing follows Postfix 3.7 (`dict_load_fp`, `readllines`, `split_nameval`, `cfg_parser`, `dict_ldap_open`):
//! logical lines with whitespace continuation, `#` comments only at the start of a line, no trailing comments,
//! no quoting, no `$name` expansion, case-sensitive names, unknown names ignored, the last duplicate wins,
//! `yes`/`no` booleans, strict base-10 integers with Postfix's min/max checks. What Postfix treats as fatal is a
//! [`ConfigError`] naming `FILE:LINE`; what Postfix only warns about is kept in [`Map::warnings`].
//!
//! The rooms: `reader` (the file's lines and `cfg_get_*`), `server_host` (the server list), [`ldap_url`]
//! (libldap's URL grammar, also for special result attributes) and [`template`] (`%` expansions and quoting,
//! also for lookups). This file holds the data model and `dict_ldap_open()`'s order of reading.
//!
//! Parsing never touches the network.

pub(crate) mod filter;
pub mod ldap_url;
pub(crate) mod reader;
pub mod secret;
mod server_host;
pub mod template;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::file::FileError;

pub use reader::Folded;
use reader::{shown, split_list, Params, SECRET_NAME};
pub use secret::Secret;

/// How a server is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Ldap,
    Ldaps,
    Ldapi,
}

/// One entry of `server_host`, normalised as Postfix does (a bare host gets `server_port`, `host:port` becomes
/// `ldap://host:port`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Server {
    pub scheme: Scheme,
    /// Host name or IP address (without brackets) for ldap/ldaps; the decoded socket path for ldapi
    /// (empty means the OpenLDAP default socket).
    pub host: String,
    /// TCP port; 0 for ldapi.
    pub port: u16,
}

impl Server {
    /// The URL as an admin would write it: `ldap://127.0.0.1:389`, `ldaps://[::1]:636`, `ldapi://%2Frun%2Fslapd%2Fldapi`.
    pub fn url(&self) -> String {
        match self.scheme {
            Scheme::Ldapi => format!("ldapi://{}", ldap_url::percent_encode_path(&self.host)),
            Scheme::Ldap | Scheme::Ldaps => {
                let scheme = if self.scheme == Scheme::Ldap { "ldap" } else { "ldaps" };
                if self.host.contains(':') {
                    format!("{scheme}://[{}]:{}", self.host, self.port)
                } else {
                    format!("{scheme}://{}:{}", self.host, self.port)
                }
            }
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    Base,
    One,
    #[default]
    Sub,
}

/// `bind`: `no`/`none`, `yes`/`simple`, `sasl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BindMode {
    None,
    #[default]
    Simple,
    Sasl,
}

/// The TLS parameters of a map (`tls_*`). Postfix applies them only with `start_tls = yes` or `ldaps://`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsParams {
    pub ca_cert_file: Option<PathBuf>,
    pub ca_cert_dir: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `tls_require_cert`: default no, as Postfix: the server certificate is not verified.
    pub require_cert: bool,
    pub cipher_suite: Option<String>,
}

/// A non-fatal message Postfix would log when opening the map (`warning: FILE, line N: ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub line: Option<usize>,
    pub message: String,
}

/// One Postfix LDAP map file, with every parameter Postfix reads, defaults applied (Debian: `version = 3`).
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    /// The path as given (`-f` or discovered).
    pub path: PathBuf,
    pub servers: Vec<Server>,
    pub search_base: String,
    pub query_filter: String,
    /// `result_format`, falling back to the obsolete `result_filter`, then `%s`.
    pub result_format: String,
    /// `domain`, split on commas and whitespace; empty means no restriction.
    pub domain: Vec<String>,
    pub result_attribute: Vec<String>,
    pub special_result_attribute: Vec<String>,
    pub terminal_result_attribute: Vec<String>,
    pub leaf_result_attribute: Vec<String>,
    pub scope: Scope,
    pub bind: BindMode,
    pub bind_dn: String,
    pub bind_pw: Secret,
    pub version: u8,
    pub start_tls: bool,
    pub tls: TlsParams,
    /// `sasl_mechs`, split on whitespace/commas; read only with `bind = sasl`.
    pub sasl_mechs: Vec<String>,
    pub sasl_realm: String,
    pub sasl_authz_id: String,
    pub sasl_minssf: u32,
    /// `timeout`, in seconds (Postfix: integer, default 10).
    pub timeout: u32,
    pub size_limit: u32,
    pub expansion_limit: u32,
    pub recursion_limit: u32,
    pub dereference: u8,
    pub chase_referrals: bool,
    /// Canary keys given in the map itself (`health_check_key = k1, k2`), a parameter Postfix ignores.
    pub health_check_keys: Vec<String>,
    /// The parameters into which Postfix folds an indented `bind_pw` line (`bind_pw` then stays unset).
    pub folded: Vec<Folded>,
    /// `health_check_presence` (ours, Postfix ignores it; default yes): check that the map's query finds some
    /// entry at all. `no` for maps where an empty answer is normal (a transport or sender-access map).
    pub health_check_presence: bool,
    /// What Postfix would warn about when opening this map.
    pub warnings: Vec<Warning>,
}

impl Map {
    /// The file name, as used in messages (`ldap-users.cf`).
    pub fn name(&self) -> String {
        file_name(&self.path)
    }
}

/// A map's file name as messages show it (`ldap-users.cf`), or the whole path when it has none.
pub fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Why a map cannot be used: what Postfix would refuse with a fatal error, or a file that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line of the offending logical line, when there is one.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "{}:{}: {}", self.path.display(), n, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One way a Postfix service uses a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUse {
    /// The master.cf service (`smtp/inet`).
    pub service: String,
    /// The daemon it runs (`smtpd`).
    pub daemon: String,
    pub chroot: bool,
    /// Through `proxy:` (opened by proxymap, outside any chroot).
    pub proxy: bool,
    /// The parameter that names the map for it.
    pub param: String,
}

/// Where a map comes from: a file, or the `NAME_*` parameters of a legacy main.cf map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The map file; for a legacy map, `ldap:NAME` (used in messages only).
    pub path: PathBuf,
    /// A legacy map's settings, as the text of a map file; `None`: read `path`.
    pub text: Option<Vec<u8>>,
    /// The Postfix parameters that use the map (`virtual_mailbox_maps`,
    /// `submission/inet/smtpd_sender_login_maps`), when it was discovered.
    pub used_by: Vec<String>,
    /// The master.cf services whose daemons open the map, when it was discovered.
    pub services: Vec<ServiceUse>,
    /// `queue_directory`: where the chrooted ones among them find the map's files.
    pub chroot_dir: Option<PathBuf>,
}

impl Source {
    /// A map file given on the command line.
    pub fn file(path: PathBuf) -> Source {
        Source { path, text: None, used_by: Vec::new(), services: Vec::new(), chroot_dir: None }
    }

    /// A map whose text is given (a legacy main.cf map): `path` names it in messages.
    pub fn text(path: PathBuf, text: Vec<u8>) -> Source {
        Source { path, text: Some(text), used_by: Vec::new(), services: Vec::new(), chroot_dir: None }
    }

    /// Read (by `until`) and parse the map.
    pub fn load(&self, until: Instant) -> Result<Map, ConfigError> {
        match &self.text {
            Some(text) => parse(&self.path, text),
            None => load(&self.path, until),
        }
    }
}

/// Read (a regular file, by `until`: see `crate::file`) and parse one map file.
pub fn load(path: &Path, until: Instant) -> Result<Map, ConfigError> {
    let bytes = crate::file::read(path, until).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: None,
        message: read_error_message(&e),
    })?;
    parse(path, &bytes)
}

fn read_error_message(e: &FileError) -> String {
    match e {
        FileError::NotFound => "cannot open map: no such file".to_string(),
        FileError::PermissionDenied => {
            "cannot open map: permission denied (maps holding bind_pw are usually 0640 root:postfix: run as root or in group postfix)"
                .to_string()
        }
        _ => format!("cannot read map: {e}"),
    }
}

/// Parse the text of a map file. `path` is used for messages only.
///
/// The parameters are read in the order of Postfix's `dict_ldap_open()`, so the first fatal error is the one
/// Postfix would report. Values that are not valid UTF-8 go through [`String::from_utf8_lossy`] (with a
/// warning); the TLS file names keep their bytes. A NUL byte ends its logical line, as in Postfix (C strings).
pub fn parse(path: &Path, text: &[u8]) -> Result<Map, ConfigError> {
    let mut p = Params::load(path, text)?;
    let mut map = Map::defaults(path);

    p.nonempty_string("server_host", "localhost")?;
    // With an indented bind_pw line folded in, Postfix would also take the password's words for server names
    // (after the real servers): they are never resolved nor contacted.
    let server_host = p.before_fold("server_host", "localhost");
    let server_port = p.int("server_port", 389, 0, 0)?;
    map.version = read_version(&mut p)?;
    let server_list = p.servers(&server_host, server_port, &mut map.version)?;
    map.servers = server_list.servers;
    map.scope = read_scope(&mut p)?;
    map.search_base = p.string("search_base", "");
    let timeout = p.int("timeout", 10, 0, 0)?;
    read_templates(&mut p, &mut map)?;
    // Only what comes before a folded bind_pw line: the password's words would be domain patterns, files or
    // tables to open.
    map.domain = split_list(&p.before_fold("domain", ""));
    map.terminal_result_attribute = split_list(&p.string("terminal_result_attribute", ""));
    map.leaf_result_attribute = split_list(&p.string("leaf_result_attribute", ""));
    map.result_attribute = split_list(&p.string("result_attribute", "maildrop"));
    map.special_result_attribute = split_list(&p.string("special_result_attribute", ""));
    read_bind(&mut p, &mut map)?;
    read_cache(&mut p)?;
    let limits = read_limits(&mut p, &mut map)?;
    read_sasl(&mut p, &mut map)?;
    read_tls(&mut p, &mut map)?;
    // `tls_random_file` is read without any check; `debuglevel` is checked, not used by this check.
    p.int("debuglevel", 0, 0, 0)?;
    // Our own parameter; Postfix ignores it.
    map.health_check_keys = split_list(&p.before_fold("health_check_key", ""));
    map.health_check_presence = p.boolean("health_check_presence", true)?;
    map.folded = p.folded();

    // Postfix only fails at the first lookup here, but then it fails every lookup: report it last, so that
    // what Postfix refuses at open time comes first.
    if let Some(message) = server_list.problem {
        return Err(p.error_at("server_host", message));
    }
    map.timeout = p.unsigned("timeout", timeout, 10, " (the default)");
    map.size_limit = p.unsigned("size_limit", limits.size, 0, " (no limit)");
    map.expansion_limit = p.unsigned("expansion_limit", limits.expansion, 0, " (no limit)");
    map.recursion_limit = p.unsigned("recursion_limit", limits.recursion, 1000, "");
    map.warnings = p.warnings;
    Ok(map)
}

impl Map {
    /// Every parameter at Postfix's default (Debian's `version = 3`), before the file is read.
    fn defaults(path: &Path) -> Map {
        Map {
            path: path.to_path_buf(),
            servers: Vec::new(),
            search_base: String::new(),
            query_filter: String::new(),
            result_format: String::new(),
            domain: Vec::new(),
            result_attribute: Vec::new(),
            special_result_attribute: Vec::new(),
            terminal_result_attribute: Vec::new(),
            leaf_result_attribute: Vec::new(),
            scope: Scope::Sub,
            bind: BindMode::Simple,
            bind_dn: String::new(),
            bind_pw: Secret::default(),
            version: 3,
            start_tls: false,
            tls: TlsParams::default(),
            sasl_mechs: Vec::new(),
            sasl_realm: String::new(),
            sasl_authz_id: String::new(),
            sasl_minssf: 0,
            timeout: 10,
            size_limit: 0,
            expansion_limit: 0,
            recursion_limit: 1000,
            dereference: 0,
            chase_referrals: false,
            health_check_keys: Vec::new(),
            folded: Vec::new(),
            health_check_presence: true,
            warnings: Vec::new(),
        }
    }
}

/// `version`: Debian patches the default to 3 (upstream: 2); the minimum is 2.
fn read_version(p: &mut Params<'_>) -> Result<u8, ConfigError> {
    Ok(match p.int("version", 3, 2, 0)? {
        2 => 2,
        3 => 3,
        other => {
            p.warn_at("version", format!("Unknown version {other}, using 3"));
            3
        }
    })
}

fn read_scope(p: &mut Params<'_>) -> Result<Scope, ConfigError> {
    let text = p.nonempty_string("scope", "sub")?;
    Ok(if text.eq_ignore_ascii_case("one") {
        Scope::One
    } else if text.eq_ignore_ascii_case("base") {
        Scope::Base
    } else if text.eq_ignore_ascii_case("sub") {
        Scope::Sub
    } else {
        p.warn_at("scope", format!("Unrecognized value {} specified for scope; using sub", shown(&text)));
        Scope::Sub
    })
}

/// `query_filter` and `result_format` (falling back to the obsolete `result_filter`, then `%s`), and the three
/// templates checked by `db_common_parse()`: an unknown `%x` is fatal.
fn read_templates(p: &mut Params<'_>, map: &mut Map) -> Result<(), ConfigError> {
    map.query_filter = p.string("query_filter", "(mailacceptinggeneralid=%s)");
    let mut result_format_name = "result_format";
    map.result_format = p.string(result_format_name, "");
    if map.result_format.is_empty() {
        result_format_name = "result_filter";
        map.result_format = p.nonempty_string(result_format_name, "%s")?;
    }
    let check = |name: &str, template: &str, query: bool| {
        template::Usage::default().add(template, query).ok_or_else(|| {
            let kind = if query { "query" } else { "result" };
            p.error_at(name, format!("Invalid {kind} template: {}", shown(template)))
        })
    };
    check("search_base", &map.search_base, true)?;
    let filter_is_dynamic = check("query_filter", &map.query_filter, true)?;
    check(result_format_name, &map.result_format, false)?;
    if !filter_is_dynamic {
        p.warn_at("query_filter", format!("Fixed query_filter {} is probably useless", shown(&map.query_filter)));
    }
    Ok(())
}

fn read_bind(p: &mut Params<'_>, map: &mut Map) -> Result<(), ConfigError> {
    let text = p.nonempty_string("bind", "yes")?;
    map.bind = match text.to_ascii_lowercase().as_str() {
        "no" | "none" => BindMode::None,
        "yes" | "simple" => BindMode::Simple,
        "sasl" => BindMode::Sasl,
        _ => return Err(p.error_at("bind", format!("unsupported parameter value: bind = {}", shown(&text)))),
    };
    map.bind_dn = p.string("bind_dn", "");
    map.bind_pw = Secret::new(p.string(SECRET_NAME, ""));
    Ok(())
}

/// LDAP message caching never worked: Postfix still parses the values, then ignores them with a warning.
fn read_cache(p: &mut Params<'_>) -> Result<(), ConfigError> {
    if p.boolean("cache", false)? {
        p.warn_at("cache", "ignoring cache".to_string());
    }
    for name in ["cache_expiry", "cache_size"] {
        if p.int(name, -1, 0, 0)? >= 0 {
            p.warn_at(name, format!("ignoring {name}"));
        }
    }
    Ok(())
}

/// The limits as Postfix reads them (C `int`s, negative values accepted); checked last, see [`parse`].
struct Limits {
    recursion: i32,
    expansion: i32,
    size: i32,
}

/// `recursion_limit`, `expansion_limit`, `size_limit` (default: `expansion_limit`), `dereference` and
/// `chase_referrals`.
fn read_limits(p: &mut Params<'_>, map: &mut Map) -> Result<Limits, ConfigError> {
    let recursion = p.int("recursion_limit", 1000, 1, 0)?;
    let expansion = p.int("expansion_limit", 0, 0, 0)?;
    let size = p.int("size_limit", expansion, 0, 0)?;
    let dereference = p.int("dereference", 0, 0, 0)?;
    map.dereference = match u8::try_from(dereference) {
        Ok(n) if n <= 3 => n,
        _ => {
            let message = format!("Unrecognized value {dereference} specified for dereference; using 0");
            p.warn_at("dereference", message);
            0
        }
    };
    map.chase_referrals = p.boolean("chase_referrals", false)?;
    Ok(Limits { recursion, expansion, size })
}

/// Postfix reads the SASL parameters only with `bind = sasl`.
fn read_sasl(p: &mut Params<'_>, map: &mut Map) -> Result<(), ConfigError> {
    if map.bind != BindMode::Sasl {
        return Ok(());
    }
    map.sasl_mechs = split_list(&p.string("sasl_mechs", ""));
    map.sasl_realm = p.string("sasl_realm", "");
    map.sasl_authz_id = p.string("sasl_authz_id", "");
    let minssf = p.int("sasl_minssf", 0, 0, 4096)?;
    map.sasl_minssf = p.unsigned("sasl_minssf", minssf, 0, "");
    Ok(())
}

fn read_tls(p: &mut Params<'_>, map: &mut Map) -> Result<(), ConfigError> {
    map.start_tls = p.boolean("start_tls", false)?;
    if map.start_tls && map.version < 3 {
        p.warn_at("start_tls", "start_tls requires protocol version 3".to_string());
        map.version = 3;
    }
    let require_cert = p.boolean("tls_require_cert", false)?;
    map.tls = TlsParams {
        ca_cert_file: p.path("tls_ca_cert_file"),
        ca_cert_dir: p.path("tls_ca_cert_dir"),
        cert: p.path("tls_cert"),
        key: p.path("tls_key"),
        require_cert,
        cipher_suite: Some(p.string("tls_cipher_suite", "")).filter(|s| !s.is_empty()),
    };
    Ok(())
}

/// Every parameter name Postfix reads from an LDAP map, plus our `health_check_key` and `health_check_presence`.
pub const KNOWN_NAMES: &[&str] = &[
    "server_host",
    "server_port",
    "timeout",
    "search_base",
    "query_filter",
    "result_format",
    "result_filter",
    "domain",
    "result_attribute",
    "special_result_attribute",
    "terminal_result_attribute",
    "leaf_result_attribute",
    "scope",
    "bind",
    "bind_dn",
    "bind_pw",
    "version",
    "start_tls",
    "tls_ca_cert_file",
    "tls_ca_cert_dir",
    "tls_cert",
    "tls_key",
    "tls_require_cert",
    "tls_random_file",
    "tls_cipher_suite",
    "sasl_mechs",
    "sasl_realm",
    "sasl_authz_id",
    "sasl_minssf",
    "dereference",
    "chase_referrals",
    "size_limit",
    "expansion_limit",
    "recursion_limit",
    "debuglevel",
    "cache",
    "cache_expiry",
    "cache_size",
    "health_check_key",
    "health_check_presence",
];
