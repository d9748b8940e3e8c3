//! Errors in an admin's words: LDAP result codes, I/O errors, ldap3's and rustls's errors, durations.
//! Used by the probe and the lookup alike; it imports nothing of the crate.
//!
//! A text that comes from a server (a diagnostic message, anything ldap3 or rustls quote from a reply) is
//! never passed on as it came: [`server_text`] escapes its control characters and cuts it at
//! [`SERVER_TEXT_CHARS`] characters, so a reason stays one readable line whatever the server sent.

use std::time::Duration;

use ldap3::LdapError;

/// The most characters of a server's text that a reason quotes.
pub const SERVER_TEXT_CHARS: usize = 200;

/// A server's text as a reason quotes it: trimmed, control characters escaped (`\u{1b}`, `\n`), at most
/// [`SERVER_TEXT_CHARS`] characters (then `...`).
pub fn server_text(text: &str) -> String {
    quoted(text.trim())
}

/// `text` as a message quotes it: control characters escaped, at most [`SERVER_TEXT_CHARS`] characters (then
/// `...`). A map value quoted in a warning gets the same treatment as a server's text.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(SERVER_TEXT_CHARS + 3));
    for (i, c) in text.chars().enumerate() {
        if i == SERVER_TEXT_CHARS {
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

/// A message as one line: every control character escaped (newlines from a server's text, escape sequences).
pub fn one_line(message: &str) -> String {
    if !message.chars().any(char::is_control) {
        return message.to_string();
    }
    message.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A Unix time as a UTC date and time: `2026-12-03 14:05 UTC`.
pub fn utc(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// A span of time in words, to the unit that matters: `3 days`, `5 h`, `12 min`, `40 s`.
pub fn span(seconds: u64) -> String {
    match seconds {
        s if s >= 2 * 86_400 => format!("{} days", (s + 43_200) / 86_400),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Format a duration as a short number of seconds: `2 s`, `0.5 s`.
pub fn secs(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
}

/// An LDAP result code as an admin reads it: `invalid credentials (49)`, plus the server's text if any.
pub fn result_reason(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "operations error",
        2 => "protocol error",
        3 => "time limit exceeded",
        4 => "size limit exceeded",
        7 => "authentication method not supported",
        8 => "stronger authentication required",
        11 => "administrative limit exceeded",
        13 => "confidentiality required",
        32 => "no such object",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "server busy",
        52 => "server unavailable",
        53 => "server unwilling to perform",
        80 => "other error",
        _ => "LDAP error",
    };
    let text = server_text(text);
    if text.is_empty() {
        format!("{name} ({rc})")
    } else {
        format!("{name} ({rc}): {text}")
    }
}

pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".to_string(),
        ConnectionReset => "connection reset by the server".to_string(),
        NotFound => "no such socket".to_string(),
        PermissionDenied => "permission denied".to_string(),
        TimedOut => "timed out".to_string(),
        UnexpectedEof => "the server closed the connection".to_string(),
        _ => {
            // Strip Rust's " (os error N)" suffix: the admin wants the words.
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

pub fn resolve_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.strip_prefix("failed to lookup address information: ").unwrap_or(&s).to_lowercase()
}

/// Whether an ldap3 error means the connection is unusable (as opposed to an LDAP result or a bad filter).
pub fn connection_lost(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::EndOfStream
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
    )
}

/// ldap3's errors, without its `I/O error:` wrapping; whatever they quote of a reply is bounded.
pub fn ldap_reason(e: &LdapError) -> String {
    server_text(&ldap_words(e))
}

fn ldap_words(e: &LdapError) -> String {
    match e {
        LdapError::Io { source } => {
            if let Some(inner) = source.get_ref() {
                // rustls errors arrive boxed in an io::Error.
                let s = inner.to_string();
                if let Some(rest) = s.strip_prefix("invalid peer certificate: ") {
                    return format!("server certificate rejected: {}", cert_reason(rest));
                }
                return s;
            }
            io_reason(source)
        }
        LdapError::LdapResult { result } => result_reason(result.rc, &result.text),
        // The connection's driver task ended (the server closed the connection) before or while the
        // operation was sent: ldap3 says `result recv error: channel closed`, which means nothing to an admin.
        LdapError::EndOfStream | LdapError::OpSend { .. } | LdapError::ResultRecv { .. } => {
            "the server closed the connection".to_string()
        }
        other => other.to_string(),
    }
}

fn cert_reason(rustls_text: &str) -> String {
    match rustls_text {
        "UnknownIssuer" => "unknown certificate authority (check tls_ca_cert_file)".to_string(),
        "Expired" => "certificate expired".to_string(),
        "NotValidYet" => "certificate not valid yet".to_string(),
        "BadSignature" => "bad signature".to_string(),
        "Revoked" => "certificate revoked".to_string(),
        s if s.starts_with("NotValidForName") => "certificate not valid for this server name".to_string(),
        s => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_read_as_words() {
        assert_eq!(result_reason(49, ""), "invalid credentials (49)");
        assert_eq!(result_reason(32, " x "), "no such object (32): x");
        assert_eq!(result_reason(4242, ""), "LDAP error (4242)");
    }

    #[test]
    fn server_texts_are_one_bounded_line() {
        assert_eq!(server_text("  plain  "), "plain");
        assert_eq!(server_text("a\nb\x1b[31mc\0"), "a\\nb\\u{1b}[31mc\\u{0}");
        let long = "é".repeat(1_000_000);
        let shown = server_text(&long);
        assert_eq!(shown.chars().count(), SERVER_TEXT_CHARS + 3);
        assert!(shown.ends_with("..."));
        assert_eq!(result_reason(49, &"x".repeat(5000)).chars().count(), "invalid credentials (49): ".len() + 203);
    }

    #[test]
    fn dates_and_spans_read_as_words() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_796_126_400), "2026-12-01 12:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(span(3 * 86_400 + 5), "3 days");
        assert_eq!(span(5 * 86_400 - 30), "5 days", "to the nearest day");
        assert_eq!(span(86_400 + 3600), "25 h 0 min");
        assert_eq!(span(3660), "1 h 1 min");
        assert_eq!(span(61), "1 min");
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(secs(Duration::from_secs(2)), "2 s");
        assert_eq!(secs(Duration::from_millis(500)), "0.5 s");
        assert_eq!(secs(Duration::from_millis(1250)), "1.25 s");
        assert_eq!(secs(Duration::from_micros(2_000_400)), "2 s");
    }
}
