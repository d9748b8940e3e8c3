//! The map file as Postfix reads it before `dict_ldap_open()` looks at any parameter: `readllines()` (logical
//! lines), `split_nameval()`, `dict_load_fp()` (the last duplicate wins) and the `cfg_get_*()` accessors of
//! `cfg_parser.c`, with Postfix's integer and boolean rules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ConfigError, Warning, KNOWN_NAMES};

/// The one parameter whose value must never appear in a message.
pub(super) const SECRET_NAME: &str = "bind_pw";

/// Postfix's `ISSPACE()`: C `isspace()` in the C locale. Unlike [`u8::is_ascii_whitespace`] it includes `\v`.
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `CHARS_COMMA_SP`, the separators of `server_host` and of the list parameters.
pub(super) fn is_list_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | ',')
}

/// `argv_split(value, CHARS_COMMA_SP)`: the non-empty tokens.
pub(super) fn split_list(value: &str) -> Vec<String> {
    value.split(is_list_separator).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// A value as quoted in a message: control characters escaped, at most 200 characters.
pub(super) fn shown(value: &str) -> String {
    crate::reason::quoted(value)
}

/// One logical line: a line that starts with non-whitespace plus its continuation lines.
pub(super) struct LogicalLine {
    /// The 1-based physical line where it starts.
    pub(super) line: usize,
    pub(super) text: Vec<u8>,
    /// The first continuation line that is an indented `bind_pw = ...`: its physical line and where it starts
    /// in `text`.
    pub(super) fold: Option<(usize, usize)>,
}

/// Whether a physical line is a `bind_pw = ...` assignment (whatever its indentation).
fn is_bind_pw_line(physical: &[u8]) -> bool {
    let start = physical.iter().position(|&b| !is_space(b)).unwrap_or(physical.len());
    let Some(rest) = physical[start..].strip_prefix(SECRET_NAME.as_bytes()) else { return false };
    rest.iter().find(|&&b| !is_space(b)) == Some(&b'=')
}

/// An indented `bind_pw = ...` line: Postfix folds it into the logical line above (its value then holds the
/// password). Whatever Postfix makes of it, the password is never to be shown: register it.
fn folded_bind_pw(logical: &mut LogicalLine, physical: &[u8], line: usize) {
    if logical.fold.is_none() {
        logical.fold = Some((line, logical.text.len()));
    }
    if let Ok((_, password)) = split_name_value(physical) {
        super::secret::register(&String::from_utf8_lossy(password), "<redacted>");
    }
}

/// Postfix's `readllines()`: blank and whitespace-only lines and lines whose first non-whitespace character is
/// `#` are skipped (also inside a continued value); a line that starts with whitespace continues the logical
/// line (its newline dropped, its leading whitespace kept). Text that continues nothing is dropped with a warning.
pub(super) fn logical_lines(text: &[u8], warnings: &mut Vec<Warning>) -> Vec<LogicalLine> {
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
                current = Some(LogicalLine { line: index + 1, text: physical.to_vec(), fold: None });
            }
            Some(_) => match current.as_mut() {
                Some(logical) => {
                    if is_bind_pw_line(physical) {
                        folded_bind_pw(logical, physical, index + 1);
                    }
                    logical.text.extend_from_slice(physical);
                }
                None => {
                    if is_bind_pw_line(physical) {
                        // Postfix ignores the line (see below), and bind_pw stays unset; the text is still secret.
                        if let Ok((_, password)) = split_name_value(physical) {
                            super::secret::register(&String::from_utf8_lossy(password), "<redacted>");
                        }
                    }
                    current = Some(LogicalLine { line: index + 1, text: physical.to_vec(), fold: None });
                }
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
pub(super) fn parse_c_long(s: &[u8]) -> Option<i64> {
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
    /// An indented `bind_pw` line folded into this value: its physical line, and where it starts in `value`.
    fold: Option<(usize, usize)>,
}

/// A parameter into which Postfix folds an indented `bind_pw` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded {
    /// The parameter (`search_base`), and the line where it starts.
    pub param: String,
    pub line: usize,
    /// The line of the indented `bind_pw = ...`.
    pub bind_pw_line: usize,
}

/// The loaded file (Postfix's `cfg_parser` over the dictionary built by `dict_load_fp()`), with the `cfg_get_*`
/// accessors and the warnings gathered so far.
pub(super) struct Params<'a> {
    pub(super) path: &'a Path,
    entries: HashMap<Vec<u8>, Entry>,
    pub(super) warnings: Vec<Warning>,
}

impl<'a> Params<'a> {
    /// `dict_load_fp()`: every logical line must be `name = value`; the last duplicate wins.
    pub(super) fn load(path: &'a Path, text: &[u8]) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let mut entries: HashMap<Vec<u8>, Entry> = HashMap::new();
        for logical in logical_lines(text, &mut warnings) {
            let (name, value) = split_name_value(&logical.text).map_err(|e| ConfigError {
                path: path.to_path_buf(),
                line: Some(logical.line),
                message: e.message(),
            })?;
            // Where the folded bind_pw line starts in the value (the value is a slice of the logical line).
            let value_start = value.as_ptr() as usize - logical.text.as_ptr() as usize;
            let fold = logical.fold.map(|(line, at)| (line, at.saturating_sub(value_start).min(value.len())));
            if fold.is_some() {
                let name = String::from_utf8_lossy(name);
                let placeholder = format!("<the {name} of this map, which runs into an indented bind_pw line>");
                super::secret::register(&String::from_utf8_lossy(value), &placeholder);
            }
            if let Some(old) = entries.get_mut(name) {
                if old.value != value {
                    let old_value = if name == SECRET_NAME.as_bytes() || old.fold.is_some() {
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
                old.fold = fold;
            } else {
                let entry = Entry { value: value.to_vec(), line: logical.line, warned: false, fold };
                entries.insert(name.to_vec(), entry);
            }
        }
        Ok(Params { path, entries, warnings })
    }

    /// Every parameter into which an indented `bind_pw` line is folded, in line order.
    pub(super) fn folded(&self) -> Vec<Folded> {
        let mut folded: Vec<Folded> = self
            .entries
            .iter()
            .filter_map(|(name, e)| {
                let (bind_pw_line, _) = e.fold?;
                Some(Folded { param: String::from_utf8_lossy(name).into_owned(), line: e.line, bind_pw_line })
            })
            .collect();
        folded.sort_by_key(|f| f.line);
        folded
    }

    /// The part of `name`'s value before an indented `bind_pw` line folded into it (the whole value when there
    /// is none): what the admin meant, and all that may be used where the rest would be a secret sent out.
    pub(super) fn before_fold(&mut self, name: &str, default: &str) -> String {
        let value = self.string(name, default);
        match self.entries.get(name.as_bytes()).and_then(|e| e.fold) {
            Some((_, at)) => String::from_utf8_lossy(&self.entries[name.as_bytes()].value[..at]).trim().to_string(),
            None => value,
        }
    }

    pub(super) fn line(&self, name: &str) -> Option<usize> {
        self.entries.get(name.as_bytes()).map(|e| e.line)
    }

    pub(super) fn error_at(&self, name: &str, message: String) -> ConfigError {
        ConfigError { path: self.path.to_path_buf(), line: self.line(name), message }
    }

    pub(super) fn warn_at(&mut self, name: &str, message: String) {
        let line = self.line(name);
        self.warnings.push(Warning { line, message });
    }

    /// The value as text, and the line that set it.
    pub(super) fn value(&mut self, name: &str) -> Option<(String, usize)> {
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
    pub(super) fn string(&mut self, name: &str, default: &str) -> String {
        self.value(name).map_or_else(|| default.to_string(), |(value, _)| value)
    }

    /// `cfg_get_str(name, default, 1, 0)`: an empty value is fatal.
    pub(super) fn nonempty_string(&mut self, name: &str, default: &str) -> Result<String, ConfigError> {
        let value = self.string(name, default);
        if value.is_empty() {
            return Err(self.error_at(name, format!("bad string length 0 < 1: {name} =")));
        }
        Ok(value)
    }

    /// A file name, bytes kept as they are; empty means unset.
    pub(super) fn path(&mut self, name: &str) -> Option<PathBuf> {
        let entry = self.entries.get(name.as_bytes())?;
        (!entry.value.is_empty()).then(|| path_from_bytes(&entry.value))
    }

    /// `cfg_get_int(name, default, min, max)`: a C `int` in base 10; a min or max of 0 means no limit.
    pub(super) fn int(&mut self, name: &str, default: i32, min: i32, max: i32) -> Result<i32, ConfigError> {
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
    pub(super) fn boolean(&mut self, name: &str, default: bool) -> Result<bool, ConfigError> {
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
    pub(super) fn unsigned(&mut self, name: &str, value: i32, fallback: u32, meaning: &str) -> u32 {
        u32::try_from(value).unwrap_or_else(|_| {
            self.warn_at(name, format!("{name} = {value} is negative: this check uses {fallback}{meaning}"));
            fallback
        })
    }
}

#[cfg(unix)]
pub(super) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
pub(super) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}
