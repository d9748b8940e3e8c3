//! Postfix `ldap_table(5)` map files, read exactly as Postfix reads them.
//!
//! Parsing follows Postfix 3.7 (`dict_load_fp`, `readllines`, `split_nameval`, `cfg_parser`, `dict_ldap_open`):
//! logical lines with whitespace continuation, `#` comments only at the start of a line, no trailing comments,
//! no quoting, no `$name` expansion, case-sensitive names, unknown names ignored, the last duplicate wins,
//! `yes`/`no` booleans, strict base-10 integers with Postfix's min/max checks. What Postfix treats as fatal is a
//! [`ConfigError`] naming `FILE:LINE`; what Postfix only warns about is kept in [`Map::warnings`].
//!
//! Parsing never touches the network.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret read from a map (`bind_pw`). It never prints: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

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
            Scheme::Ldapi => format!("ldapi://{}", percent_encode_path(&self.host)),
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

/// Read and parse one map file.
pub fn load(path: &Path) -> Result<Map, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: None,
        message: read_error_message(&e),
    })?;
    parse(path, &bytes)
}

fn read_error_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "cannot open map: no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => {
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

    let server_host = p.nonempty_string("server_host", "localhost")?;
    let server_port = p.int("server_port", 389, 0, 0)?;
    // Debian patches the default to 3 (upstream: 2); the minimum is 2.
    let mut version = match p.int("version", 3, 2, 0)? {
        2 => 2,
        3 => 3,
        other => {
            p.warn_at("version", format!("Unknown version {other}, using 3"));
            3
        }
    };
    let (servers, server_problem) = p.servers(&server_host, server_port, &mut version)?;

    let scope_text = p.nonempty_string("scope", "sub")?;
    let scope = if scope_text.eq_ignore_ascii_case("one") {
        Scope::One
    } else if scope_text.eq_ignore_ascii_case("base") {
        Scope::Base
    } else if scope_text.eq_ignore_ascii_case("sub") {
        Scope::Sub
    } else {
        let message = format!("Unrecognized value {} specified for scope; using sub", shown(&scope_text));
        p.warn_at("scope", message);
        Scope::Sub
    };

    let search_base = p.string("search_base", "");
    let timeout = p.int("timeout", 10, 0, 0)?;
    let query_filter = p.string("query_filter", "(mailacceptinggeneralid=%s)");
    let mut result_format_name = "result_format";
    let mut result_format = p.string(result_format_name, "");
    if result_format.is_empty() {
        result_format_name = "result_filter";
        result_format = p.nonempty_string(result_format_name, "%s")?;
    }

    p.check_template("search_base", &search_base, TemplateKind::Query)?;
    if !p.check_template("query_filter", &query_filter, TemplateKind::Query)? {
        let message = format!("Fixed query_filter {} is probably useless", shown(&query_filter));
        p.warn_at("query_filter", message);
    }
    p.check_template(result_format_name, &result_format, TemplateKind::Result)?;
    let domain = split_list(&p.string("domain", ""));

    let terminal_result_attribute = split_list(&p.string("terminal_result_attribute", ""));
    let leaf_result_attribute = split_list(&p.string("leaf_result_attribute", ""));
    let result_attribute = split_list(&p.string("result_attribute", "maildrop"));
    let special_result_attribute = split_list(&p.string("special_result_attribute", ""));

    let bind_text = p.nonempty_string("bind", "yes")?;
    let bind = match bind_text.to_ascii_lowercase().as_str() {
        "no" | "none" => BindMode::None,
        "yes" | "simple" => BindMode::Simple,
        "sasl" => BindMode::Sasl,
        _ => {
            let message = format!("unsupported parameter value: bind = {}", shown(&bind_text));
            return Err(p.error_at("bind", message));
        }
    };
    let bind_dn = p.string("bind_dn", "");
    let bind_pw = Secret::new(p.string("bind_pw", ""));

    // LDAP message caching never worked: Postfix still parses the values, then ignores them with a warning.
    if p.boolean("cache", false)? {
        p.warn_at("cache", "ignoring cache".to_string());
    }
    for name in ["cache_expiry", "cache_size"] {
        if p.int(name, -1, 0, 0)? >= 0 {
            p.warn_at(name, format!("ignoring {name}"));
        }
    }

    let recursion_limit = p.int("recursion_limit", 1000, 1, 0)?;
    let expansion_limit = p.int("expansion_limit", 0, 0, 0)?;
    let size_limit = p.int("size_limit", expansion_limit, 0, 0)?;
    let dereference_value = p.int("dereference", 0, 0, 0)?;
    let dereference = match u8::try_from(dereference_value) {
        Ok(n) if n <= 3 => n,
        _ => {
            let message = format!("Unrecognized value {dereference_value} specified for dereference; using 0");
            p.warn_at("dereference", message);
            0
        }
    };
    let chase_referrals = p.boolean("chase_referrals", false)?;

    // Postfix reads the SASL parameters only with `bind = sasl`.
    let (sasl_mechs, sasl_realm, sasl_authz_id, sasl_minssf) = if bind == BindMode::Sasl {
        let mechs = split_list(&p.string("sasl_mechs", ""));
        let realm = p.string("sasl_realm", "");
        let authz_id = p.string("sasl_authz_id", "");
        let minssf = p.int("sasl_minssf", 0, 0, 4096)?;
        (mechs, realm, authz_id, p.unsigned("sasl_minssf", minssf, 0, ""))
    } else {
        (Vec::new(), String::new(), String::new(), 0)
    };

    let start_tls = p.boolean("start_tls", false)?;
    if start_tls && version < 3 {
        p.warn_at("start_tls", "start_tls requires protocol version 3".to_string());
        version = 3;
    }
    let require_cert = p.boolean("tls_require_cert", false)?;
    let tls = TlsParams {
        ca_cert_file: p.path("tls_ca_cert_file"),
        ca_cert_dir: p.path("tls_ca_cert_dir"),
        cert: p.path("tls_cert"),
        key: p.path("tls_key"),
        require_cert,
        cipher_suite: Some(p.string("tls_cipher_suite", "")).filter(|s| !s.is_empty()),
    };
    // `tls_random_file` is read without any check; `debuglevel` is checked, not used by this check.
    p.int("debuglevel", 0, 0, 0)?;

    // Our own parameter; Postfix ignores it.
    let health_check_keys = split_list(&p.string("health_check_key", ""));

    // Postfix only fails at the first lookup here, but then it fails every lookup: report it last, so that
    // what Postfix refuses at open time comes first.
    if let Some(message) = server_problem {
        return Err(p.error_at("server_host", message));
    }

    let timeout = p.unsigned("timeout", timeout, 10, " (the default)");
    let size_limit = p.unsigned("size_limit", size_limit, 0, " (no limit)");
    let expansion_limit = p.unsigned("expansion_limit", expansion_limit, 0, " (no limit)");
    let recursion_limit = p.unsigned("recursion_limit", recursion_limit, 1000, "");
    Ok(Map {
        path: path.to_path_buf(),
        servers,
        search_base,
        query_filter,
        result_format,
        domain,
        result_attribute,
        special_result_attribute,
        terminal_result_attribute,
        leaf_result_attribute,
        scope,
        bind,
        bind_dn,
        bind_pw,
        version,
        start_tls,
        tls,
        sasl_mechs,
        sasl_realm,
        sasl_authz_id,
        sasl_minssf,
        timeout,
        size_limit,
        expansion_limit,
        recursion_limit,
        dereference,
        chase_referrals,
        health_check_keys,
        warnings: p.warnings,
    })
}

/// Every parameter name Postfix reads from an LDAP map, plus our `health_check_key`.
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
];

/// The one parameter whose value must never appear in a message.
const SECRET_NAME: &str = "bind_pw";

/// Postfix's `ISSPACE()`: C `isspace()` in the C locale. Unlike [`u8::is_ascii_whitespace`] it includes `\v`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `CHARS_COMMA_SP`, the separators of `server_host` and of the list parameters.
fn is_list_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | ',')
}

/// `argv_split(value, CHARS_COMMA_SP)`: the non-empty tokens.
fn split_list(value: &str) -> Vec<String> {
    value.split(is_list_separator).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// A value as quoted in a message: control characters escaped, at most 200 characters.
fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == MAX_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One logical line: a line that starts with non-whitespace plus its continuation lines.
struct LogicalLine {
    /// The 1-based physical line where it starts.
    line: usize,
    text: Vec<u8>,
}

/// Postfix's `readllines()`: blank and whitespace-only lines and lines whose first non-whitespace character is
/// `#` are skipped (also inside a continued value); a line that starts with whitespace continues the logical
/// line (its newline dropped, its leading whitespace kept). Text that continues nothing is dropped with a warning.
fn logical_lines(text: &[u8], warnings: &mut Vec<Warning>) -> Vec<LogicalLine> {
    let mut lines = Vec::new();
    let mut current: Option<LogicalLine> = None;
    for (index, physical) in text.split(|&b| b == b'\n').enumerate() {
        match physical.iter().position(|&b| !is_space(b)) {
            None => {}
            Some(first) if physical[first] == b'#' => {}
            Some(0) => {
                if let Some(done) = current.take() {
                    finish_logical_line(done, &mut lines, warnings);
                }
                current = Some(LogicalLine { line: index + 1, text: physical.to_vec() });
            }
            Some(_) => match current.as_mut() {
                Some(logical) => logical.text.extend_from_slice(physical),
                None => current = Some(LogicalLine { line: index + 1, text: physical.to_vec() }),
            },
        }
    }
    if let Some(done) = current {
        finish_logical_line(done, &mut lines, warnings);
    }
    lines
}

fn finish_logical_line(mut logical: LogicalLine, lines: &mut Vec<LogicalLine>, warnings: &mut Vec<Warning>) {
    // Postfix handles the line as a C string: whatever follows a NUL byte is lost. (3.7 does so silently;
    // later versions warn.)
    if let Some(nul) = logical.text.iter().position(|&b| b == 0) {
        warnings.push(Warning { line: Some(logical.line), message: "text after null byte may be ignored".to_string() });
        logical.text.truncate(nul);
    }
    // Postfix quotes the first 30 characters; we do not, as they may hold bind_pw.
    if logical.text.first().is_some_and(|&b| is_space(b)) {
        warnings.push(Warning {
            line: Some(logical.line),
            message: "logical line must not start with whitespace: ignored".to_string(),
        });
        return;
    }
    lines.push(logical);
}

/// Why a logical line is not `name = value`.
enum SplitError<'t> {
    MissingName,
    MissingEquals(&'t [u8]),
}

impl SplitError<'_> {
    /// Postfix quotes the whole line; we quote the name only, and only a known one: an unknown "name" may be a
    /// password written on a line of its own.
    fn message(&self) -> String {
        match self {
            SplitError::MissingName => "missing attribute name".to_string(),
            SplitError::MissingEquals(name) => match std::str::from_utf8(name) {
                Ok(name) if KNOWN_NAMES.contains(&name) => {
                    format!("missing '=' after attribute name: \"{name}\"")
                }
                _ => "missing '=' after attribute name (the text is not shown: it may be a secret)".to_string(),
            },
        }
    }
}

/// Postfix's `split_nameval()`: the name runs up to whitespace or `=`, then optional whitespace, `=`, and the
/// value trimmed at both ends.
fn split_name_value(text: &[u8]) -> Result<(&[u8], &[u8]), SplitError<'_>> {
    let start = text.iter().position(|&b| !is_space(b)).unwrap_or(text.len());
    let rest = &text[start..];
    if rest.first().is_none_or(|&b| b == b'=') {
        return Err(SplitError::MissingName);
    }
    let name_len = rest.iter().position(|&b| is_space(b) || b == b'=').unwrap_or(rest.len());
    let (name, rest) = rest.split_at(name_len);
    let after_name = rest.iter().position(|&b| !is_space(b)).unwrap_or(rest.len());
    let Some(value) = rest[after_name..].strip_prefix(b"=") else {
        return Err(SplitError::MissingEquals(name));
    };
    let value_start = value.iter().position(|&b| !is_space(b)).unwrap_or(value.len());
    let value_end = value.iter().rposition(|&b| !is_space(b)).map_or(value_start, |i| i + 1);
    Ok((name, &value[value_start..value_end]))
}

/// `strtol(s, &end, 10)` that must consume the whole string: optional leading whitespace and sign, then
/// decimal digits. Overflow saturates (every caller rejects out-of-range values).
fn parse_c_long(s: &[u8]) -> Option<i64> {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let (negative, digits) = match s[start..].split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, &s[start..]),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |n, &d| n.saturating_mul(10).saturating_add(i64::from(d - b'0')));
    Some(if negative { -magnitude } else { magnitude })
}

/// One `name = value` entry of the file.
struct Entry {
    value: Vec<u8>,
    /// The line of the definition that won.
    line: usize,
    /// The "not valid UTF-8" warning was given.
    warned: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TemplateKind {
    Query,
    Result,
}

/// The loaded file (Postfix's `cfg_parser` over the dictionary built by `dict_load_fp()`), with the `cfg_get_*`
/// accessors and the warnings gathered so far.
struct Params<'a> {
    path: &'a Path,
    entries: HashMap<Vec<u8>, Entry>,
    warnings: Vec<Warning>,
}

impl<'a> Params<'a> {
    /// `dict_load_fp()`: every logical line must be `name = value`; the last duplicate wins.
    fn load(path: &'a Path, text: &[u8]) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let mut entries: HashMap<Vec<u8>, Entry> = HashMap::new();
        for logical in logical_lines(text, &mut warnings) {
            let (name, value) = split_name_value(&logical.text).map_err(|e| ConfigError {
                path: path.to_path_buf(),
                line: Some(logical.line),
                message: e.message(),
            })?;
            if let Some(old) = entries.get_mut(name) {
                if old.value != value {
                    let old_value = if name == SECRET_NAME.as_bytes() {
                        "<redacted>".to_string()
                    } else {
                        shown(&String::from_utf8_lossy(&old.value))
                    };
                    warnings.push(Warning {
                        line: Some(logical.line),
                        message: format!(
                            "overriding earlier entry: {}={old_value}",
                            shown(&String::from_utf8_lossy(name))
                        ),
                    });
                }
                old.value = value.to_vec();
                old.line = logical.line;
            } else {
                let entry = Entry { value: value.to_vec(), line: logical.line, warned: false };
                entries.insert(name.to_vec(), entry);
            }
        }
        Ok(Params { path, entries, warnings })
    }

    fn line(&self, name: &str) -> Option<usize> {
        self.entries.get(name.as_bytes()).map(|e| e.line)
    }

    fn error_at(&self, name: &str, message: String) -> ConfigError {
        ConfigError { path: self.path.to_path_buf(), line: self.line(name), message }
    }

    fn warn_at(&mut self, name: &str, message: String) {
        let line = self.line(name);
        self.warnings.push(Warning { line, message });
    }

    /// The value as text, and the line that set it.
    fn value(&mut self, name: &str) -> Option<(String, usize)> {
        let entry = self.entries.get_mut(name.as_bytes())?;
        if !entry.warned && std::str::from_utf8(&entry.value).is_err() {
            entry.warned = true;
            self.warnings.push(Warning {
                line: Some(entry.line),
                message: format!("value of {name} is not valid UTF-8: invalid bytes replaced with U+FFFD"),
            });
        }
        Some((String::from_utf8_lossy(&entry.value).into_owned(), entry.line))
    }

    /// `cfg_get_str(name, default, 0, 0)`.
    fn string(&mut self, name: &str, default: &str) -> String {
        self.value(name).map_or_else(|| default.to_string(), |(value, _)| value)
    }

    /// `cfg_get_str(name, default, 1, 0)`: an empty value is fatal.
    fn nonempty_string(&mut self, name: &str, default: &str) -> Result<String, ConfigError> {
        let value = self.string(name, default);
        if value.is_empty() {
            return Err(self.error_at(name, format!("bad string length 0 < 1: {name} =")));
        }
        Ok(value)
    }

    /// A file name, bytes kept as they are; empty means unset.
    fn path(&mut self, name: &str) -> Option<PathBuf> {
        let entry = self.entries.get(name.as_bytes())?;
        (!entry.value.is_empty()).then(|| path_from_bytes(&entry.value))
    }

    /// `cfg_get_int(name, default, min, max)`: a C `int` in base 10; a min or max of 0 means no limit.
    fn int(&mut self, name: &str, default: i32, min: i32, max: i32) -> Result<i32, ConfigError> {
        let value = match self.value(name) {
            None => default,
            Some((text, line)) => match parse_c_long(text.as_bytes()).and_then(|n| i32::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    return Err(ConfigError {
                        path: self.path.to_path_buf(),
                        line: Some(line),
                        message: format!("bad numerical configuration: {name} = {}", shown(&text)),
                    });
                }
            },
        };
        if min != 0 && value < min {
            return Err(self.error_at(name, format!("invalid {name} parameter value {value} < {min}")));
        }
        if max != 0 && value > max {
            return Err(self.error_at(name, format!("invalid {name} parameter value {value} > {max}")));
        }
        Ok(value)
    }

    /// `cfg_get_bool(name, default)`: `yes` or `no`, case-insensitive.
    fn boolean(&mut self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.value(name) {
            None => Ok(default),
            Some((text, _)) if text.eq_ignore_ascii_case("yes") => Ok(true),
            Some((text, _)) if text.eq_ignore_ascii_case("no") => Ok(false),
            Some((text, _)) => {
                Err(self.error_at(name, format!("bad boolean configuration: {name} = {}", shown(&text))))
            }
        }
    }

    /// A value Postfix accepts negative, for a field that cannot be: warn and use `fallback`.
    fn unsigned(&mut self, name: &str, value: i32, fallback: u32, meaning: &str) -> u32 {
        u32::try_from(value).unwrap_or_else(|_| {
            self.warn_at(name, format!("{name} = {value} is negative: this check uses {fallback}{meaning}"));
            fallback
        })
    }

    /// `db_common_parse()`: an unknown `%x` is fatal. Returns whether the template uses the key.
    fn check_template(&self, name: &str, template: &str, kind: TemplateKind) -> Result<bool, ConfigError> {
        template_is_dynamic(template).ok_or_else(|| {
            let kind = if kind == TemplateKind::Query { "query" } else { "result" };
            self.error_at(name, format!("Invalid {kind} template: {}", shown(template)))
        })
    }

    /// The `server_host` part of `dict_ldap_open()` and of libldap's `ldap_initialize()`.
    ///
    /// Returns the servers and, if libldap would refuse the server list (Postfix then fails every lookup), why.
    fn servers(
        &mut self,
        server_host: &str,
        server_port: i32,
        version: &mut u8,
    ) -> Result<(Vec<Server>, Option<String>), ConfigError> {
        // msg_error() makes the 13th error of a process fatal.
        const ERROR_LIMIT: usize = 13;
        let mut servers = Vec::new();
        let mut problem = None;
        let mut url_errors = 0;
        let mut tokens = 0;
        for token in server_host.split(is_list_separator).filter(|t| !t.is_empty()) {
            tokens += 1;
            if url_prefix(token).is_some() {
                match parse_ldap_url(token) {
                    Ok(url) => {
                        if url.scheme != UrlScheme::Ldap && *version != 3 {
                            let message = format!("URL scheme {} requires protocol version 3", url.scheme.name());
                            self.warn_at("server_host", message);
                            *version = 3;
                        }
                        self.add_server(&mut servers, token, url);
                    }
                    Err(reason) => {
                        self.warn_at("server_host", format!("error parsing URL {}: {reason}; skipping", shown(token)));
                        url_errors += 1;
                        if url_errors == ERROR_LIMIT {
                            let message = format!(
                                "too many errors - program terminated ({ERROR_LIMIT} URLs in server_host cannot be \
                                 parsed)"
                            );
                            return Err(self.error_at("server_host", message));
                        }
                    }
                }
            } else {
                // Postfix turns host[:port] into a URL without checking it; libldap then rejects the whole list
                // if it does not parse.
                let url = if token.contains(':') {
                    format!("ldap://{token}")
                } else {
                    format!("ldap://{token}:{server_port}")
                };
                match parse_ldap_url(&url) {
                    Ok(parsed) => self.add_server(&mut servers, token, parsed),
                    Err(reason) => {
                        if problem.is_none() {
                            problem = Some(unusable_host_message(token, &url, reason));
                        }
                    }
                }
            }
        }
        if problem.is_none() && servers.is_empty() {
            problem = Some(if tokens == 0 {
                "server_host names no server".to_string()
            } else {
                "no usable server in server_host: every entry was skipped".to_string()
            });
        }
        Ok((servers, problem))
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

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// `db_common_parse()`: `Some(true)` if the template expands (part of) the key, `Some(false)` if it is fixed,
/// `None` for an unknown `%x` or a `%` at the end. Valid: `%%`, `%s`, `%u`, `%d`, `%S`, `%U`, `%D`, `%1`-`%9`.
pub(crate) fn template_is_dynamic(template: &str) -> Option<bool> {
    let mut dynamic = false;
    let mut bytes = template.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            match bytes.next()? {
                b'%' => {}
                b's' | b'u' | b'd' | b'S' | b'U' | b'D' | b'1'..=b'9' => dynamic = true,
                _ => return None,
            }
        }
    }
    Some(dynamic)
}

/// The URL schemes of OpenLDAP 2.5's libldap (`cldap` is not built on Debian). `pldap`/`pldaps` name PROXY-protocol
/// listeners; a client connects to them like `ldap`/`ldaps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UrlScheme {
    Ldap,
    Ldaps,
    Ldapi,
    Pldap,
    Pldaps,
}

impl UrlScheme {
    fn name(self) -> &'static str {
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

/// What an LDAP URL says about the server.
#[derive(Debug, PartialEq, Eq)]
struct LdapUrl {
    scheme: UrlScheme,
    /// Decoded; empty when the URL names none.
    host: String,
    /// With the scheme's default filled in; 0 for ldapi. Not range-checked (libldap does not either).
    port: i64,
    /// The URL carries a DN (for ldapi, the usual sign of an unencoded socket path).
    has_dn: bool,
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// The rest of an LDAP URL after its prefix (see [`url_prefix`]), and whether it is enclosed in `<>`; `None` when
/// `value` is not an LDAP URL.
pub(crate) fn url_rest(value: &str) -> Option<(&str, bool)> {
    url_prefix(value).map(|(enclosed, _, rest)| (rest, enclosed))
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

/// `ldap_url_parse()` of OpenLDAP 2.5, with the default port filled in as `ldap_initialize()` does: whether the
/// URL is accepted, and which server it names.
fn parse_ldap_url(url: &str) -> Result<LdapUrl, &'static str> {
    let (enclosed, scheme, mut rest) = url_prefix(url).ok_or("bad scheme")?;
    if enclosed {
        rest = rest.strip_suffix('>').ok_or("bad enclosure")?;
    }
    let (hostport, path) = match rest.split_once('/') {
        Some((hostport, path)) => (hostport, Some(path)),
        // Without a '/', a '?' ends the host part (libldap's "Novell kludge"); the rest is not checked.
        None => (rest.split_once('?').map_or(rest, |(hostport, _)| hostport), None),
    };
    let (host, port) = if scheme == UrlScheme::Ldapi {
        (hex_unescape(hostport), 0)
    } else {
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            None => 0,
            Some(port) => {
                let port = hex_unescape(port);
                if port.is_empty() {
                    return Err("empty port");
                }
                parse_c_long(port.as_bytes()).ok_or("bad port")?
            }
        };
        (hex_unescape(host), if port == 0 { scheme.default_port() } else { port })
    };
    let mut has_dn = false;
    if let Some(path) = path {
        // dn ? attributes ? scope ? filter ? extensions
        let parts: Vec<&str> = path.split('?').collect();
        if parts.len() > 5 {
            return Err("bad URL: too many '?'");
        }
        has_dn = parts.first().is_some_and(|dn| !dn.is_empty());
        if let Some(scope) = parts.get(2).filter(|s| !s.is_empty()) {
            const SCOPES: [&str; 8] =
                ["one", "onelevel", "base", "sub", "subtree", "subord", "subordinate", "children"];
            let scope = hex_unescape(scope);
            if !SCOPES.iter().any(|s| s.eq_ignore_ascii_case(&scope)) {
                return Err("bad scope");
            }
        }
        if parts.get(3).is_some_and(|filter| !filter.is_empty() && hex_unescape(filter).is_empty()) {
            return Err("bad filter");
        }
        if parts.get(4).is_some_and(|extensions| extensions.split(',').all(str::is_empty)) {
            return Err("bad extensions");
        }
    }
    Ok(LdapUrl { scheme, host, port, has_dn })
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

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/postfix/ldap-test.cf";

    fn parse_bytes(text: &[u8]) -> Result<Map, ConfigError> {
        parse(Path::new(PATH), text)
    }

    fn map(text: &str) -> Map {
        parse_bytes(text.as_bytes()).unwrap_or_else(|e| panic!("unexpected error: {e}"))
    }

    fn err(text: &str) -> ConfigError {
        match parse_bytes(text.as_bytes()) {
            Ok(m) => panic!("expected an error, got {m:?}"),
            Err(e) => e,
        }
    }

    /// The error as `(line, message)`.
    fn fatal(text: &str) -> (Option<usize>, String) {
        let e = err(text);
        assert_eq!(e.path, Path::new(PATH));
        (e.line, e.message)
    }

    fn warnings(m: &Map) -> Vec<(Option<usize>, &str)> {
        m.warnings.iter().map(|w| (w.line, w.message.as_str())).collect()
    }

    fn ldap(host: &str, port: u16) -> Server {
        Server { scheme: Scheme::Ldap, host: host.to_string(), port }
    }

    fn ldaps(host: &str, port: u16) -> Server {
        Server { scheme: Scheme::Ldaps, host: host.to_string(), port }
    }

    fn ldapi(path: &str) -> Server {
        Server { scheme: Scheme::Ldapi, host: path.to_string(), port: 0 }
    }

    fn servers(text: &str) -> Vec<Server> {
        map(text).servers
    }

    // ----- defaults (1.1) -----

    #[test]
    fn empty_file_gives_every_default() {
        let m = map("");
        let expected = Map {
            path: PathBuf::from(PATH),
            servers: vec![ldap("localhost", 389)],
            search_base: String::new(),
            query_filter: "(mailacceptinggeneralid=%s)".to_string(),
            result_format: "%s".to_string(),
            domain: vec![],
            result_attribute: vec!["maildrop".to_string()],
            special_result_attribute: vec![],
            terminal_result_attribute: vec![],
            leaf_result_attribute: vec![],
            scope: Scope::Sub,
            bind: BindMode::Simple,
            bind_dn: String::new(),
            bind_pw: Secret::default(),
            version: 3,
            start_tls: false,
            tls: TlsParams::default(),
            sasl_mechs: vec![],
            sasl_realm: String::new(),
            sasl_authz_id: String::new(),
            sasl_minssf: 0,
            timeout: 10,
            size_limit: 0,
            expansion_limit: 0,
            recursion_limit: 1000,
            dereference: 0,
            chase_referrals: false,
            health_check_keys: vec![],
            warnings: vec![],
        };
        assert_eq!(m, expected);
        assert!(!m.tls.require_cert);
    }

    #[test]
    fn typical_map_is_read_completely() {
        let m = map("# Postfix LDAP map\n\
             server_host = ldap://ldap1.example.com ldap://ldap2.example.com:3389\n\
             search_base = ou=people,dc=example,dc=com\n\
             query_filter = (&(objectClass=inetOrgPerson)(mail=%s))\n\
             result_attribute = mail, uid\n\
             result_format = %u@example.org\n\
             scope = one\n\
             bind = yes\n\
             bind_dn = cn=postfix,dc=example,dc=com\n\
             bind_pw = s3cret\n\
             timeout = 5\n\
             start_tls = yes\n\
             tls_ca_cert_file = /etc/ssl/certs/ca.pem\n\
             tls_require_cert = yes\n\
             health_check_key = postmaster@example.com, abuse@example.com\n");
        assert_eq!(m.servers, vec![ldap("ldap1.example.com", 389), ldap("ldap2.example.com", 3389)]);
        assert_eq!(m.search_base, "ou=people,dc=example,dc=com");
        assert_eq!(m.query_filter, "(&(objectClass=inetOrgPerson)(mail=%s))");
        assert_eq!(m.result_attribute, vec!["mail", "uid"]);
        assert_eq!(m.result_format, "%u@example.org");
        assert_eq!(m.scope, Scope::One);
        assert_eq!(m.bind, BindMode::Simple);
        assert_eq!(m.bind_dn, "cn=postfix,dc=example,dc=com");
        assert_eq!(m.bind_pw.expose(), "s3cret");
        assert_eq!(m.timeout, 5);
        assert!(m.start_tls);
        assert_eq!(m.tls.ca_cert_file, Some(PathBuf::from("/etc/ssl/certs/ca.pem")));
        assert!(m.tls.require_cert);
        assert_eq!(m.health_check_keys, vec!["postmaster@example.com", "abuse@example.com"]);
        assert_eq!(m.warnings, vec![]);
        assert_eq!(m.name(), "ldap-test.cf");
    }

    // ----- file syntax (1.2) -----

    #[test]
    fn rule1_blank_and_whitespace_only_lines_are_ignored() {
        let m = map("\n   \n\t\n\r\n\x0b\x0c\ntimeout = 7\n\n  \n");
        assert_eq!(m.timeout, 7);
        assert_eq!(m.warnings, vec![]);
    }

    #[test]
    fn rule2_comment_lines_are_ignored_even_indented() {
        let m = map("# timeout = 1\n   # timeout = 2\n\t#timeout = 3\ntimeout = 4\n#timeout = 5\n");
        assert_eq!(m.timeout, 4);
        assert_eq!(m.warnings, vec![]);
    }

    #[test]
    fn rule2_there_are_no_trailing_comments() {
        // The verified Postfix result: ldap://#:389 ldap://not:389 ldap://a:389 ldap://comment:389.
        let m = map("server_host = ldap://127.0.0.1:389 # not a comment\n");
        assert_eq!(
            m.servers,
            vec![ldap("127.0.0.1", 389), ldap("#", 389), ldap("not", 389), ldap("a", 389), ldap("comment", 389)]
        );
        let m = map("search_base = dc=example,dc=com # the base\n");
        assert_eq!(m.search_base, "dc=example,dc=com # the base");
    }

    #[test]
    fn rule3_continuation_lines_join_with_their_leading_whitespace() {
        let m = map("server_host = ldap1\n  ldap2,\n\tldap3\nsearch_base = dc=example,\n dc=com\n");
        assert_eq!(m.servers, vec![ldap("ldap1", 389), ldap("ldap2", 389), ldap("ldap3", 389)]);
        assert_eq!(m.search_base, "dc=example, dc=com");
    }

    #[test]
    fn rule3_value_may_start_on_a_continuation_line() {
        let m = map("timeout =\n   3\n");
        assert_eq!(m.timeout, 3);
    }

    #[test]
    fn rule3_comments_and_blank_lines_inside_a_continued_value_do_not_end_it() {
        let m = map("server_host = a\n# a comment\n\n   \n  b\n  # indented comment\n c\ntimeout = 2\n");
        assert_eq!(m.servers, vec![ldap("a", 389), ldap("b", 389), ldap("c", 389)]);
        assert_eq!(m.timeout, 2);
        assert_eq!(m.warnings, vec![]);
    }

    #[test]
    fn rule3_first_logical_line_starting_with_whitespace_is_ignored_with_a_warning() {
        // Verified: `  server_host = ...` fell back to localhost; its continuation goes with it.
        let m = map("# comment\n\n  server_host = ldap://ldap.example.com\n   ldap://other\ntimeout = 3\n");
        assert_eq!(m.servers, vec![ldap("localhost", 389)]);
        assert_eq!(m.timeout, 3);
        assert_eq!(warnings(&m), vec![(Some(3), "logical line must not start with whitespace: ignored")]);
    }

    #[test]
    fn rule4_name_and_value_split() {
        let m = map("timeout=4\nsearch_base   =    dc=a = b  \t\nbind_dn =\nquery_filter\t=\t(uid=%u)\n");
        assert_eq!(m.timeout, 4);
        assert_eq!(m.search_base, "dc=a = b");
        assert_eq!(m.bind_dn, "");
        assert_eq!(m.query_filter, "(uid=%u)");
        assert_eq!(m.warnings, vec![]);
    }

    #[test]
    fn rule4_crlf_line_ends_are_trimmed() {
        let m = map("search_base = dc=example,dc=com\r\ntimeout = 6\r\n");
        assert_eq!(m.search_base, "dc=example,dc=com");
        assert_eq!(m.timeout, 6);
    }

    #[test]
    fn rule4_missing_equals_is_fatal_with_the_line_of_the_logical_line() {
        // Verified: `/tmp/t2.cf, line 4: missing '=' after attribute name: "bind_pw  secret"`.
        let (line, message) = fatal("server_host = h\n\n# c\nserver_port\n  389\n# x\n\nfoo=bar\n");
        assert_eq!(line, Some(4));
        assert_eq!(message, "missing '=' after attribute name: \"server_port\"");
        let e = err("timeout 5\n");
        assert_eq!(e.to_string(), format!("{PATH}:1: missing '=' after attribute name: \"timeout\""));
    }

    #[test]
    fn rule4_missing_equals_after_unknown_name_does_not_quote_it() {
        let (line, message) = fatal("timeout = 5\nhunter2\n");
        assert_eq!(line, Some(2));
        assert_eq!(message, "missing '=' after attribute name (the text is not shown: it may be a secret)");
    }

    #[test]
    fn rule4_missing_name_is_fatal() {
        assert_eq!(fatal("timeout = 5\n= value\n"), (Some(2), "missing attribute name".to_string()));
        assert_eq!(fatal("=\n"), (Some(1), "missing attribute name".to_string()));
    }

    #[test]
    fn rule5_quotes_are_literal() {
        let m = map("search_base = \"dc=example,dc=com\"\nbind_pw = 'pw'\n");
        assert_eq!(m.search_base, "\"dc=example,dc=com\"");
        assert_eq!(m.bind_pw.expose(), "'pw'");
    }

    #[test]
    fn rule6_no_macro_expansion() {
        let m = map("result_attribute = $myhostname\nsearch_base = ${base}\nbind_dn = $(dn)\n");
        assert_eq!(m.result_attribute, vec!["$myhostname"]);
        assert_eq!(m.search_base, "${base}");
        assert_eq!(m.bind_dn, "$(dn)");
    }

    #[test]
    fn rule7_names_are_case_sensitive() {
        let m = map("Server_Host = ldap://elsewhere\nSCOPE = base\nTimeout = x\n");
        assert_eq!(m.servers, vec![ldap("localhost", 389)]);
        assert_eq!(m.scope, Scope::Sub);
        assert_eq!(m.timeout, 10);
        assert_eq!(m.warnings, vec![]);
    }

    #[test]
    fn rule8_unknown_names_are_ignored_silently() {
        let m = map("bogus_key = whatever\nquery = (x=%s)\n");
        assert_eq!(m.warnings, vec![]);
        assert_eq!(m.query_filter, "(mailacceptinggeneralid=%s)");
    }

    #[test]
    fn rule9_last_duplicate_wins_with_a_warning_when_values_differ() {
        // Verified: `line 5: overriding earlier entry: timeout=2`, no warning for the same value again.
        let m = map("server_host = h\ntimeout = 2\n# c\n\ntimeout =\n  3\n#x\n\ntimeout = 3\n");
        assert_eq!(m.timeout, 3);
        assert_eq!(warnings(&m), vec![(Some(5), "overriding earlier entry: timeout=2")]);
    }

    #[test]
    fn rule9_duplicate_bind_pw_is_not_shown() {
        let m = map("bind_pw = first-secret\nbind_pw = second-secret\n");
        assert_eq!(m.bind_pw.expose(), "second-secret");
        assert_eq!(warnings(&m), vec![(Some(2), "overriding earlier entry: bind_pw=<redacted>")]);
    }

    #[test]
    fn rule10_booleans_are_yes_or_no_case_insensitive() {
        let m = map("start_tls = YES\nchase_referrals = Yes\ntls_require_cert = yes\n");
        assert!(m.start_tls && m.chase_referrals && m.tls.require_cert);
        let m = map("start_tls = No\nchase_referrals = NO\ntls_require_cert = no\n");
        assert!(!m.start_tls && !m.chase_referrals && !m.tls.require_cert);
        for bad in ["true", "1", "on", "", "yes please"] {
            let (line, message) = fatal(&format!("timeout = 1\nstart_tls = {bad}\n"));
            assert_eq!(line, Some(2));
            assert_eq!(message, format!("bad boolean configuration: start_tls = {bad}"));
        }
        assert_eq!(
            fatal("chase_referrals = On\n"),
            (Some(1), "bad boolean configuration: chase_referrals = On".to_string())
        );
        assert_eq!(
            fatal("tls_require_cert = demand\n"),
            (Some(1), "bad boolean configuration: tls_require_cert = demand".to_string())
        );
    }

    #[test]
    fn rule11_integers_follow_strtol_over_the_whole_string() {
        assert_eq!(map("timeout = +5\n").timeout, 5);
        assert_eq!(map("timeout = 010\n").timeout, 10);
        assert_eq!(map("timeout = 0\n").timeout, 0);
        assert_eq!(map("server_port = 2147483647\nserver_host = ldap://h\n").servers, vec![ldap("h", 389)]);
        for bad in ["5s", "0x10", "", "+", "-", "1.5", "2147483648", "99999999999", "5 5", "٣"] {
            let (line, message) = fatal(&format!("\ntimeout = {bad}\n"));
            assert_eq!(line, Some(2), "{bad}");
            assert_eq!(message, format!("bad numerical configuration: timeout = {bad}"));
        }
    }

    #[test]
    fn rule11_min_and_max_are_fatal() {
        assert_eq!(
            fatal("recursion_limit = 0\n"),
            (Some(1), "invalid recursion_limit parameter value 0 < 1".to_string())
        );
        assert_eq!(fatal("version = 1\n"), (Some(1), "invalid version parameter value 1 < 2".to_string()));
        assert_eq!(fatal("version = -3\n"), (Some(1), "invalid version parameter value -3 < 2".to_string()));
        assert_eq!(
            fatal("bind = sasl\nsasl_minssf = 4097\n"),
            (Some(2), "invalid sasl_minssf parameter value 4097 > 4096".to_string())
        );
        assert_eq!(map("bind = sasl\nsasl_minssf = 4096\n").sasl_minssf, 4096);
        assert_eq!(map("recursion_limit = 1\n").recursion_limit, 1);
    }

    #[test]
    fn rule12_nul_byte_ends_the_logical_line_with_a_warning() {
        // Postfix 3.7 keeps "5" silently (verified: `timeout = 5\0junk` works); later versions warn.
        let m = parse_bytes(b"timeout = 5\0junk\n  more\nsearch_base = dc=a\0zz\n").unwrap();
        assert_eq!(m.timeout, 5);
        assert_eq!(m.search_base, "dc=a");
        assert_eq!(
            warnings(&m),
            vec![(Some(1), "text after null byte may be ignored"), (Some(3), "text after null byte may be ignored")]
        );
        // Verified: `line 2: missing attribute name: ""`.
        let e = parse_bytes(b"timeout = 5\n\0bind = maybe\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (Some(2), "missing attribute name"));
        // A NUL inside the value of bind: the text after it is gone, so "maybe" is what Postfix rejects.
        let e = parse_bytes(b"bind = maybe\0junk\n").unwrap_err();
        assert_eq!(e.message, "unsupported parameter value: bind = maybe");
    }

    // ----- server_host (1.1) -----

    #[test]
    fn server_host_bare_host_gets_server_port() {
        assert_eq!(servers("server_host = ldap.example.com\n"), vec![ldap("ldap.example.com", 389)]);
        assert_eq!(
            servers("server_host = ldap.example.com other\nserver_port = 3389\n"),
            vec![ldap("ldap.example.com", 3389), ldap("other", 3389)]
        );
        // `ldap://h:0` gets the default port from libldap.
        assert_eq!(servers("server_host = h\nserver_port = 0\n"), vec![ldap("h", 389)]);
    }

    #[test]
    fn server_host_host_colon_port_ignores_server_port() {
        assert_eq!(
            servers("server_host = 127.0.0.1:3899, 127.0.0.1:3389 h\nserver_port = 1000\n"),
            vec![ldap("127.0.0.1", 3899), ldap("127.0.0.1", 3389), ldap("h", 1000)]
        );
        // Verified by strace: `127.0.0.1:0` connects to port 389.
        assert_eq!(servers("server_host = 127.0.0.1:0\n"), vec![ldap("127.0.0.1", 389)]);
    }

    #[test]
    fn server_host_urls_with_default_ports() {
        assert_eq!(
            servers("server_host = ldap://a ldaps://b ldap://c:1389 ldaps://d:1636\nserver_port = 999\n"),
            vec![ldap("a", 389), ldaps("b", 636), ldap("c", 1389), ldaps("d", 1636)]
        );
    }

    #[test]
    fn server_host_url_scheme_is_case_insensitive() {
        assert_eq!(servers("server_host = LDAP://a LdapS://b\n"), vec![ldap("a", 389), ldaps("b", 636)]);
    }

    #[test]
    fn server_host_ldapi_socket_path_is_percent_decoded() {
        let m = map("server_host = ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi ldapi://\n");
        assert_eq!(m.servers, vec![ldapi("/var/run/slapd/ldapi"), ldapi("")]);
        assert_eq!(m.servers[0].url(), "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi");
        assert_eq!(m.warnings, vec![]);
    }

    #[test]
    fn server_host_ldapi_with_unencoded_path_uses_the_default_socket_with_a_hint() {
        let m = map("server_host = ldapi:///var/run/slapd/ldapi\n");
        assert_eq!(m.servers, vec![ldapi("")]);
        assert_eq!(
            warnings(&m),
            vec![(
                Some(1),
                "ldapi:///var/run/slapd/ldapi: an ldapi socket path must be percent-encoded \
                 (ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi); libldap uses its default socket"
            )]
        );
    }

    #[test]
    fn server_host_ipv6_in_brackets() {
        let m = map("server_host = ldap://[::1]:3389 ldaps://[2001:db8::1] [::1]:1389 [fe80::2]\n");
        assert_eq!(
            m.servers,
            vec![ldap("::1", 3389), ldaps("2001:db8::1", 636), ldap("::1", 1389), ldap("fe80::2", 389)]
        );
        assert_eq!(m.servers[0].url(), "ldap://[::1]:3389");
        assert_eq!(m.warnings, vec![]);
    }

    #[test]
    fn server_host_unbracketed_ipv6_breaks_the_whole_list_as_in_postfix() {
        // Verified: `Unable to init LDAP server ldap://127.0.0.1:1 ldap://::1`, every lookup fails.
        let (line, message) = fatal("timeout = 1\nserver_host = 127.0.0.1:1 ::1\n");
        assert_eq!(line, Some(2));
        assert_eq!(
            message,
            "server_host entry \"::1\" becomes the invalid URL ldap://::1 (bad port): libldap rejects the whole \
             server list and Postfix fails every lookup; write an IPv6 address as [::1] or ldap://[::1]:389"
        );
    }

    #[test]
    fn server_host_bad_host_port_breaks_the_whole_list() {
        // Verified: `Unable to init LDAP server ldap://127.0.0.1:1 ldap://foo:bar`.
        let (line, message) = fatal("server_host = 127.0.0.1:1 foo:bar\n");
        assert_eq!(line, Some(1));
        assert_eq!(
            message,
            "server_host entry \"foo:bar\" becomes the invalid URL ldap://foo:bar (bad port): libldap rejects \
             the whole server list and Postfix fails every lookup"
        );
        assert!(fatal("server_host = host:\n").1.contains("(empty port)"));
    }

    #[test]
    fn server_host_commas_and_whitespace_mix() {
        let m = map("server_host = a,b , c\t\td,,\r e\n   f ,\n");
        let hosts: Vec<&str> = m.servers.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(hosts, vec!["a", "b", "c", "d", "e", "f"]);
    }

    #[test]
    fn server_host_bad_url_is_skipped_with_a_warning() {
        // Verified: `error parsing URL ldap://[::1: 5: Compare False; skipping`.
        let m = map("server_host = 127.0.0.1:1 ldap://[::1 <ldap://h:4 ldap://h:x ldap://h/dc=x?a?bogus\n");
        assert_eq!(m.servers, vec![ldap("127.0.0.1", 1)]);
        assert_eq!(
            warnings(&m),
            vec![
                (Some(1), "error parsing URL ldap://[::1: missing ']'; skipping"),
                (Some(1), "error parsing URL <ldap://h:4: bad enclosure; skipping"),
                (Some(1), "error parsing URL ldap://h:x: bad port; skipping"),
                (Some(1), "error parsing URL ldap://h/dc=x?a?bogus: bad scope; skipping"),
            ]
        );
    }

    #[test]
    fn server_host_every_url_skipped_is_an_error() {
        // Postfix hands an empty list to libldap, which then cannot contact any server (verified).
        let (line, message) = fatal("\nserver_host = ldap://[::1\n");
        assert_eq!(line, Some(2));
        assert_eq!(message, "no usable server in server_host: every entry was skipped");
        assert_eq!(fatal("server_host = , ,\n"), (Some(1), "server_host names no server".to_string()));
    }

    #[test]
    fn server_host_thirteen_url_errors_are_fatal() {
        // Verified: the 13th msg_error() gives `fatal: too many errors - program terminated`.
        let twelve: String = (1..=12).map(|i| format!(" ldap://[x{i}")).collect();
        let m = map(&format!("server_host = h{twelve}\n"));
        assert_eq!(m.servers, vec![ldap("h", 389)]);
        assert_eq!(m.warnings.len(), 12);
        let (line, message) = fatal(&format!("server_host = h{twelve} ldap://[x13\n"));
        assert_eq!(line, Some(1));
        assert_eq!(message, "too many errors - program terminated (13 URLs in server_host cannot be parsed)");
    }

    #[test]
    fn server_host_empty_is_fatal() {
        // Verified: `bad string length 0 < 1: server_host =`.
        assert_eq!(
            fatal("timeout = 1\nserver_host =\n"),
            (Some(2), "bad string length 0 < 1: server_host =".to_string())
        );
    }

    #[test]
    fn server_host_url_parts_after_the_host_are_ignored() {
        let m = map("server_host = ldap://h:10389/dc=example?mail?sub?(uid=*) ldap://g?x\n");
        assert_eq!(m.servers, vec![ldap("h", 10389), ldap("g", 389)]);
        // A DN with commas is split apart by Postfix: the pieces become host names.
        let m = map("server_host = ldap://h/dc=example,dc=com\n");
        assert_eq!(m.servers, vec![ldap("h", 389), ldap("dc=com", 389)]);
    }

    #[test]
    fn server_host_enclosed_and_url_prefixed_forms() {
        // Verified by strace: both connect.
        let m = map("server_host = URL:ldap://a:2 <ldap://b:3> <URL:ldaps://c>\n");
        assert_eq!(m.servers, vec![ldap("a", 2), ldap("b", 3), ldaps("c", 636)]);
    }

    #[test]
    fn server_host_url_without_host_means_localhost() {
        // Verified by strace: `ldap://:1` and `ldap://%zz:1` connect to 127.0.0.1:1.
        assert_eq!(
            servers("server_host = ldap://:1 ldap:// ldap://%zz:1 ldaps://\n"),
            vec![ldap("localhost", 1), ldap("localhost", 389), ldap("localhost", 1), ldaps("localhost", 636)]
        );
        assert_eq!(servers("server_host = ldap://local%68ost:1\n"), vec![ldap("localhost", 1)]);
    }

    #[test]
    fn server_host_port_out_of_range_is_skipped() {
        // libldap does not check the range (verified: 70000 reaches connect()); this check cannot use such a port.
        let m = map("server_host = ldap://h:70000 ldap://g:-5 k ldap://ok\nserver_port = 65536\n");
        assert_eq!(m.servers, vec![ldap("ok", 389)]);
        assert_eq!(
            warnings(&m),
            vec![
                (Some(1), "port 70000 out of range in ldap://h:70000; skipping"),
                (Some(1), "port -5 out of range in ldap://g:-5; skipping"),
                (Some(1), "port 65536 out of range in k; skipping"),
            ]
        );
        let (line, message) = fatal("server_host = ldap://h:70000\n");
        assert_eq!((line, message.as_str()), (Some(1), "no usable server in server_host: every entry was skipped"));
    }

    #[test]
    fn server_host_pldap_is_checked_as_ldap() {
        let m = map("server_host = pldap://a pldaps://b:1\n");
        assert_eq!(m.servers, vec![ldap("a", 389), ldaps("b", 1)]);
        assert_eq!(
            warnings(&m),
            vec![
                (Some(1), "URL scheme pldap is checked as ldap: pldap://a"),
                (Some(1), "URL scheme pldaps is checked as ldaps: pldaps://b:1"),
            ]
        );
    }

    #[test]
    fn server_host_duplicates_are_kept_in_order() {
        assert_eq!(servers("server_host = lb lb\n"), vec![ldap("lb", 389), ldap("lb", 389)]);
    }

    #[test]
    fn server_port_is_parsed_even_when_unused() {
        assert_eq!(
            fatal("server_host = ldap://h\nserver_port = ldap\n"),
            (Some(2), "bad numerical configuration: server_port = ldap".to_string())
        );
        // Out of range but unused: harmless, as in Postfix (verified with 70000).
        assert_eq!(servers("server_host = h:1\nserver_port = 70000\n"), vec![ldap("h", 1)]);
    }

    // ----- version -----

    #[test]
    fn version_defaults_to_3_on_debian_and_accepts_2() {
        assert_eq!(map("").version, 3);
        assert_eq!(map("version = 2\n").version, 2);
        assert_eq!(map("version = 3\n").version, 3);
    }

    #[test]
    fn version_unknown_falls_back_to_3_with_a_warning() {
        let m = map("timeout = 1\nversion = 4\n");
        assert_eq!(m.version, 3);
        assert_eq!(warnings(&m), vec![(Some(2), "Unknown version 4, using 3")]);
    }

    #[test]
    fn version_is_forced_to_3_by_ldaps_ldapi_and_start_tls() {
        let m = map("server_host = ldap://a ldaps://b ldapi://\nversion = 2\n");
        assert_eq!(m.version, 3);
        // Only the first non-ldap URL warns: the version is 3 after it.
        assert_eq!(warnings(&m), vec![(Some(1), "URL scheme ldaps requires protocol version 3")]);
        let m = map("server_host = ldapi://\nversion = 2\n");
        assert_eq!(warnings(&m), vec![(Some(1), "URL scheme ldapi requires protocol version 3")]);
        let m = map("version = 2\nstart_tls = yes\n");
        assert_eq!(m.version, 3);
        assert_eq!(warnings(&m), vec![(Some(2), "start_tls requires protocol version 3")]);
        // With the Debian default nothing needs forcing.
        assert_eq!(map("server_host = ldaps://b\nstart_tls = yes\n").warnings, vec![]);
    }

    // ----- scope, bind, SASL -----

    #[test]
    fn scope_values() {
        assert_eq!(map("scope = one\n").scope, Scope::One);
        assert_eq!(map("scope = BASE\n").scope, Scope::Base);
        assert_eq!(map("scope = Sub\n").scope, Scope::Sub);
        let m = map("scope = SubTree\n");
        assert_eq!(m.scope, Scope::Sub);
        assert_eq!(warnings(&m), vec![(Some(1), "Unrecognized value SubTree specified for scope; using sub")]);
        assert_eq!(fatal("scope =\n"), (Some(1), "bad string length 0 < 1: scope =".to_string()));
    }

    #[test]
    fn bind_values() {
        for (text, mode) in [
            ("no", BindMode::None),
            ("NONE", BindMode::None),
            ("yes", BindMode::Simple),
            ("Simple", BindMode::Simple),
            ("sasl", BindMode::Sasl),
            ("SASL", BindMode::Sasl),
        ] {
            assert_eq!(map(&format!("bind = {text}\n")).bind, mode, "{text}");
        }
        assert_eq!(fatal("bind = maybe\n"), (Some(1), "unsupported parameter value: bind = maybe".to_string()));
        assert_eq!(fatal("bind =\n"), (Some(1), "bad string length 0 < 1: bind =".to_string()));
    }

    #[test]
    fn sasl_parameters_are_read_only_with_bind_sasl() {
        let m = map("bind = sasl\nsasl_mechs = EXTERNAL, GSSAPI DIGEST-MD5\nsasl_realm = EXAMPLE\n\
                     sasl_authz_id = u:postfix\nsasl_minssf = 56\n");
        assert_eq!(m.sasl_mechs, vec!["EXTERNAL", "GSSAPI", "DIGEST-MD5"]);
        assert_eq!(m.sasl_realm, "EXAMPLE");
        assert_eq!(m.sasl_authz_id, "u:postfix");
        assert_eq!(m.sasl_minssf, 56);
        // Verified: with bind = yes, `sasl_minssf = 9999` is not even looked at.
        let m = map("sasl_mechs = EXTERNAL\nsasl_minssf = junk\nsasl_realm = R\n");
        assert_eq!((m.sasl_mechs.len(), m.sasl_realm.as_str(), m.sasl_minssf), (0, "", 0));
        assert_eq!(
            fatal("bind = sasl\nsasl_minssf = junk\n"),
            (Some(2), "bad numerical configuration: sasl_minssf = junk".to_string())
        );
        let m = map("bind = sasl\nsasl_minssf = -1\n");
        assert_eq!(m.sasl_minssf, 0);
        assert_eq!(warnings(&m), vec![(Some(2), "sasl_minssf = -1 is negative: this check uses 0")]);
    }

    // ----- numbers -----

    #[test]
    fn dereference_out_of_range_warns_and_uses_0() {
        for n in 0..=3u8 {
            assert_eq!(map(&format!("dereference = {n}\n")).dereference, n);
        }
        let m = map("dereference = 4\n");
        assert_eq!(m.dereference, 0);
        assert_eq!(warnings(&m), vec![(Some(1), "Unrecognized value 4 specified for dereference; using 0")]);
        let m = map("dereference = -1\n");
        assert_eq!(warnings(&m), vec![(Some(1), "Unrecognized value -1 specified for dereference; using 0")]);
        assert_eq!(fatal("dereference = always\n").1, "bad numerical configuration: dereference = always");
    }

    #[test]
    fn cache_parameters_are_parsed_then_ignored_with_a_warning() {
        // Verified: cache = yes and cache_expiry = 5 warn; cache_size = -3 does not.
        let m = map("cache = yes\ncache_expiry = 5\ncache_size = -3\n");
        assert_eq!(warnings(&m), vec![(Some(1), "ignoring cache"), (Some(2), "ignoring cache_expiry")]);
        assert_eq!(map("cache = no\ncache_size = -1\n").warnings, vec![]);
        assert_eq!(warnings(&map("cache_size = 0\n")), vec![(Some(1), "ignoring cache_size")]);
        assert_eq!(fatal("cache = true\n"), (Some(1), "bad boolean configuration: cache = true".to_string()));
        assert_eq!(fatal("cache_size = 1k\n").1, "bad numerical configuration: cache_size = 1k");
    }

    #[test]
    fn size_limit_defaults_to_expansion_limit() {
        let m = map("expansion_limit = 20\n");
        assert_eq!((m.expansion_limit, m.size_limit), (20, 20));
        let m = map("expansion_limit = 20\nsize_limit = 5\n");
        assert_eq!((m.expansion_limit, m.size_limit), (20, 5));
        let m = map("size_limit = 7\n");
        assert_eq!((m.expansion_limit, m.size_limit), (0, 7));
    }

    #[test]
    fn negative_numbers_postfix_accepts_are_warned_about() {
        // Verified: `timeout = -5` is accepted by Postfix (no minimum).
        let m = map("timeout = -5\nexpansion_limit = -1\n");
        assert_eq!((m.timeout, m.expansion_limit, m.size_limit), (10, 0, 0));
        assert_eq!(
            warnings(&m),
            vec![
                (Some(1), "timeout = -5 is negative: this check uses 10 (the default)"),
                (None, "size_limit = -1 is negative: this check uses 0 (no limit)"),
                (Some(2), "expansion_limit = -1 is negative: this check uses 0 (no limit)"),
            ]
        );
    }

    #[test]
    fn timeout_has_no_unit() {
        assert_eq!(fatal("timeout = 5s\n"), (Some(1), "bad numerical configuration: timeout = 5s".to_string()));
    }

    #[test]
    fn debuglevel_is_checked() {
        assert_eq!(map("debuglevel = 3\n").warnings, vec![]);
        assert_eq!(fatal("debuglevel = x\n"), (Some(1), "bad numerical configuration: debuglevel = x".to_string()));
    }

    // ----- templates -----

    #[test]
    fn result_format_falls_back_to_result_filter_then_percent_s() {
        assert_eq!(map("result_filter = %u\n").result_format, "%u");
        assert_eq!(map("result_format = %d\nresult_filter = %u\n").result_format, "%d");
        assert_eq!(map("result_format =\nresult_filter = %u\n").result_format, "%u");
        assert_eq!(map("result_format =\n").result_format, "%s");
        // Verified: `bad string length 0 < 1: result_filter =`, also with an empty result_format.
        assert_eq!(
            fatal("result_format =\nresult_filter =\n"),
            (Some(2), "bad string length 0 < 1: result_filter =".to_string())
        );
    }

    #[test]
    fn unknown_percent_expansion_is_fatal() {
        // Verified wording: `db_common_parse: FILE: Invalid query template: dc=%x`.
        assert_eq!(fatal("search_base = dc=%x\n"), (Some(1), "Invalid query template: dc=%x".to_string()));
        assert_eq!(
            fatal("timeout = 1\nquery_filter = (a=%s)%\n"),
            (Some(2), "Invalid query template: (a=%s)%".to_string())
        );
        assert_eq!(fatal("result_format = %z\n"), (Some(1), "Invalid result template: %z".to_string()));
        assert_eq!(fatal("result_filter = x%0\n"), (Some(1), "Invalid result template: x%0".to_string()));
    }

    #[test]
    fn every_valid_expansion_is_accepted() {
        let m = map("search_base = ou=%%,dc=%d,dc=%1\nquery_filter = (&(a=%s)(b=%u)(c=%S)(d=%U)(e=%D)(f=%9))\n\
                     result_format = %% %s %u %d %S %U %D %1 %2 %3 %4 %5 %6 %7 %8 %9\n");
        assert_eq!(m.warnings, vec![]);
        assert_eq!(m.search_base, "ou=%%,dc=%d,dc=%1");
    }

    #[test]
    fn fixed_query_filter_warns() {
        let m = map("query_filter = (a=b)\n");
        assert_eq!(warnings(&m), vec![(Some(1), "Fixed query_filter (a=b) is probably useless")]);
        let m = map("query_filter = (a=%%)\n");
        assert_eq!(warnings(&m), vec![(Some(1), "Fixed query_filter (a=%%) is probably useless")]);
    }

    // ----- lists and strings -----

    #[test]
    fn lists_split_on_commas_and_whitespace() {
        let m = map("domain = example.com, !foo.example.com /etc/postfix/domains hash:/etc/postfix/d\n\
                     result_attribute = mail,,maildrop\n   uid\n\
                     special_result_attribute = member\n\
                     terminal_result_attribute = a b\n\
                     leaf_result_attribute = c\tcn\n\
                     health_check_key = a@example.com,b@example.com\n");
        assert_eq!(m.domain, vec!["example.com", "!foo.example.com", "/etc/postfix/domains", "hash:/etc/postfix/d"]);
        assert_eq!(m.result_attribute, vec!["mail", "maildrop", "uid"]);
        assert_eq!(m.special_result_attribute, vec!["member"]);
        assert_eq!(m.terminal_result_attribute, vec!["a", "b"]);
        assert_eq!(m.leaf_result_attribute, vec!["c", "cn"]);
        assert_eq!(m.health_check_keys, vec!["a@example.com", "b@example.com"]);
        assert_eq!(map("result_attribute =\n").result_attribute, Vec::<String>::new());
    }

    #[test]
    fn tls_parameters_empty_means_none() {
        let m = map("tls_ca_cert_file =\ntls_ca_cert_dir = /etc/ssl/certs\ntls_cert = /c.pem\ntls_key = /k.pem\n\
                     tls_cipher_suite = HIGH\ntls_random_file = /dev/urandom\n");
        assert_eq!(
            m.tls,
            TlsParams {
                ca_cert_file: None,
                ca_cert_dir: Some(PathBuf::from("/etc/ssl/certs")),
                cert: Some(PathBuf::from("/c.pem")),
                key: Some(PathBuf::from("/k.pem")),
                require_cert: false,
                cipher_suite: Some("HIGH".to_string()),
            }
        );
        assert_eq!(map("tls_cipher_suite =\n").tls.cipher_suite, None);
    }

    #[cfg(unix)]
    #[test]
    fn tls_file_names_keep_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let m = parse_bytes(b"tls_ca_cert_file = /etc/ssl/\xff.pem\n").unwrap();
        assert_eq!(m.tls.ca_cert_file.unwrap().as_os_str().as_bytes(), b"/etc/ssl/\xff.pem");
        assert_eq!(m.warnings, vec![]);
    }

    #[test]
    fn invalid_utf8_values_are_replaced_with_a_warning() {
        let m = parse_bytes(b"search_base = dc=\xe9t\xe9\nbind_pw = p\xffw\n").unwrap();
        assert_eq!(m.search_base, "dc=\u{fffd}t\u{fffd}");
        assert_eq!(m.bind_pw.expose(), "p\u{fffd}w");
        assert_eq!(
            warnings(&m),
            vec![
                (Some(1), "value of search_base is not valid UTF-8: invalid bytes replaced with U+FFFD"),
                (Some(2), "value of bind_pw is not valid UTF-8: invalid bytes replaced with U+FFFD"),
            ]
        );
        // A name that is not UTF-8 is just an unknown name.
        let m = parse_bytes(b"time\xffout = x\n").unwrap();
        assert_eq!((m.timeout, m.warnings.len()), (10, 0));
    }

    // ----- order of fatal errors: the one Postfix reports first -----

    #[test]
    fn fatal_errors_come_in_postfix_order() {
        // File syntax before any parameter.
        assert_eq!(fatal("bind = maybe\ntimeout\n").1, "missing '=' after attribute name: \"timeout\"");
        // timeout is read before bind, bind before start_tls.
        assert_eq!(fatal("bind = maybe\ntimeout = x\n").1, "bad numerical configuration: timeout = x");
        assert_eq!(fatal("start_tls = 1\nbind = maybe\n").1, "unsupported parameter value: bind = maybe");
        // A server list libldap rejects only fails at lookup time in Postfix: open-time errors come first.
        assert_eq!(fatal("server_host = ::1\nstart_tls = 1\n").1, "bad boolean configuration: start_tls = 1");
    }

    // ----- secrets -----

    #[test]
    fn bind_pw_never_appears_in_any_message() {
        const SECRET: &str = "Zq7-s3cr3t";
        let cases = [
            format!("bind_pw {SECRET}\n"),
            format!("bind_pw\n  {SECRET}\n"),
            format!("bind_pw =\n{SECRET}\n"),
            format!("= {SECRET}\n"),
            format!("  bind_pw = {SECRET}\ntimeout = 1\n"),
            format!("bind_pw = {SECRET}\nbind_pw = other\n"),
            format!("bind_pw = {SECRET}\x00tail\n"),
            format!("bind_pw = {SECRET}\nbind = maybe\n"),
            format!("bind_pw = {SECRET}\nserver_host = ::1\n"),
        ];
        let mut cases: Vec<Vec<u8>> = cases.into_iter().map(String::into_bytes).collect();
        cases.push([b"bind_pw = ", SECRET.as_bytes(), b"\xff\n"].concat());
        for case in &cases {
            match parse_bytes(case) {
                Ok(m) => {
                    for w in &m.warnings {
                        assert!(!w.message.contains(SECRET), "warning leaks the secret: {}", w.message);
                    }
                    assert!(!format!("{m:?}").contains(SECRET), "Debug leaks the secret");
                }
                Err(e) => assert!(!e.to_string().contains(SECRET), "error leaks the secret: {e}"),
            }
        }
        // The secret itself is kept, only its display is redacted.
        let m = map(&format!("bind_pw = {SECRET}\n"));
        assert_eq!(m.bind_pw.expose(), SECRET);
        assert_eq!(format!("{} {:?}", m.bind_pw, m.bind_pw), "<redacted> <redacted>");
    }

    // ----- robustness -----

    #[test]
    fn one_megabyte_line() {
        let base = "o".repeat(1 << 20);
        let m = map(&format!("search_base = {base}\ntimeout = 2\n"));
        assert_eq!(m.search_base.len(), 1 << 20);
        assert_eq!(m.timeout, 2);
        // Messages quote at most 200 characters of a value.
        let (line, message) = fatal(&format!("timeout = {base}\n"));
        assert_eq!(line, Some(1));
        assert_eq!(message, format!("bad numerical configuration: timeout = {}...", "o".repeat(200)));
    }

    #[test]
    fn ten_thousand_lines() {
        let mut text = String::from("server_host = ldap://h\n");
        for i in 0..9_998 {
            text.push_str(&format!("unknown_{i} = {i}\n"));
        }
        text.push_str("timeout = 9\n");
        let m = map(&text);
        assert_eq!(m.timeout, 9);
        assert_eq!(m.servers, vec![ldap("h", 389)]);
        // 10,000 duplicates: the last one wins, and the error line counts all of them.
        let mut text: String = (1..=10_000).map(|i| format!("timeout = {i}\n")).collect();
        assert_eq!(map(&text).timeout, 10_000);
        text.push_str("bind = maybe\n");
        assert_eq!(err(&text).line, Some(10_001));
    }

    #[test]
    fn control_characters_in_quoted_values_are_escaped() {
        let (_, message) = fatal("bind = a\x1b[31mb\n");
        assert_eq!(message, "unsupported parameter value: bind = a\\u{1b}[31mb");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator biased towards the bytes the parser cares about.
        const ALPHABET: &[u8] = b" \t\r\n\x0b\x0c#=%:,/[]<>?0123456789abcdefldapsi\x00\xff\xc3";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let names = ["server_host = ", "timeout = ", "search_base = ", "bind = ", "scope = ", "version = "];
        for _ in 0..2_000 {
            let mut text = Vec::new();
            for _ in 0..(next() % 6) {
                text.extend_from_slice(names[(next() % names.len() as u64) as usize].as_bytes());
                for _ in 0..(next() % 40) {
                    text.push(ALPHABET[(next() % ALPHABET.len() as u64) as usize]);
                }
            }
            let _ = parse_bytes(&text);
        }
    }

    // ----- helpers -----

    #[test]
    fn logical_line_numbers_are_where_the_line_starts() {
        let mut w = Vec::new();
        let lines = logical_lines(b"# c\na = 1\n  2\n\n# x\n   3\nb = 4", &mut w);
        let got: Vec<(usize, &[u8])> = lines.iter().map(|l| (l.line, l.text.as_slice())).collect();
        assert_eq!(got, vec![(2, &b"a = 1  2   3"[..]), (7, &b"b = 4"[..])]);
        assert!(w.is_empty());
    }

    #[test]
    fn url_parser_follows_libldap() {
        let url = |s| parse_ldap_url(s);
        let ok = |scheme, host: &str, port, has_dn| Ok(LdapUrl { scheme, host: host.to_string(), port, has_dn });
        assert_eq!(url("ldap://h"), ok(UrlScheme::Ldap, "h", 389, false));
        assert_eq!(url("ldaps://h:1/dc=x"), ok(UrlScheme::Ldaps, "h", 1, true));
        assert_eq!(url("ldap://h:%33%38%39"), ok(UrlScheme::Ldap, "h", 389, false));
        assert_eq!(url("ldap://[::1]x"), ok(UrlScheme::Ldap, "::1", 389, false));
        assert_eq!(url("ldapi://%2Frun%2Fldapi:389"), ok(UrlScheme::Ldapi, "/run/ldapi:389", 0, false));
        assert_eq!(url("ldap://h/??base?(a=b)?x"), ok(UrlScheme::Ldap, "h", 389, false));
        assert_eq!(url("ldap://h?anything?goes"), ok(UrlScheme::Ldap, "h", 389, false));
        assert_eq!(url("ldap://h:+7"), ok(UrlScheme::Ldap, "h", 7, false));
        assert_eq!(url("ldap://[::1]:1:2"), Err("bad port"));
        assert_eq!(url("ldap://[::1]x:1"), Err("text between ']' and ':'"));
        assert_eq!(url("ldap://h:"), Err("empty port"));
        assert_eq!(url("ldap://h:%zz"), Err("empty port"));
        assert_eq!(url("ldap://h/?????"), Err("bad URL: too many '?'"));
        assert_eq!(url("ldap://h/???%zz"), Err("bad filter"));
        assert_eq!(url("ldap://h/????,,"), Err("bad extensions"));
        assert_eq!(url("<ldap://h"), Err("bad enclosure"));
        assert_eq!(url("http://h"), Err("bad scheme"));
    }

    #[test]
    fn hex_unescape_follows_libldap() {
        assert_eq!(hex_unescape("a%2Fb%2fc"), "a/b/c");
        assert_eq!(hex_unescape("a%2"), "");
        assert_eq!(hex_unescape("a%zzb"), "");
        assert_eq!(hex_unescape("a%00b"), "a");
        assert_eq!(hex_unescape("%C3%A9"), "é");
    }

    #[test]
    fn strtol_semantics() {
        assert_eq!(parse_c_long(b"42"), Some(42));
        assert_eq!(parse_c_long(b" -42"), Some(-42));
        assert_eq!(parse_c_long(b"+0"), Some(0));
        assert_eq!(parse_c_long(b"99999999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_c_long(b"4 2"), None);
        assert_eq!(parse_c_long(b""), None);
        assert_eq!(parse_c_long(b"-"), None);
    }
}
