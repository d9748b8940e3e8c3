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
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }
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
const KNOWN_NAMES: &[&str] = &[
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
                            return Err(self.error_at(
                                "server_host",
                                format!(
                                    "too many errors - program terminated ({ERROR_LIMIT} URLs in server_host cannot be parsed)"
                                ),
                            ));
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
fn template_is_dynamic(template: &str) -> Option<bool> {
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
fn hex_unescape(s: &str) -> String {
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
