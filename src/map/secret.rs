//! Secrets read from maps, and the last line of defence that keeps them out of every output.
//!
//! `bind_pw` is read into a [`Secret`], which never prints. A `bind_pw` line indented by mistake is folded by
//! Postfix into the parameter above it (its value then holds the password, and `bind_pw` stays unset): the map
//! reader registers such values here as secret as a whole, and the password in any case. Every writer of the
//! process (stdout, stderr, the journal, syslog, the textfile) passes its text through [`scrub`], which replaces
//! each registered text with a placeholder: whatever path a secret takes into a message (a warning quoting a
//! value, a server echoing what it was sent), it does not leave the process.

use std::borrow::Cow;
use std::fmt;
use std::sync::Mutex;

/// A secret read from a map (`bind_pw`). It never prints: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        let s = s.into();
        register(&s, "<redacted>");
        Secret(s)
    }

    /// The secret itself, for the one place that sends it to the server.
    pub fn expose(&self) -> &str {
        &self.0
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

/// Texts shorter than this are not scrubbed: replacing every `a` or `dc` in the output would leave nothing to
/// read (a password that short is a finding of its own; the structural protections still apply to it).
const MIN_SCRUBBED: usize = 3;

/// The registered secrets with their placeholders, longest first.
static SECRETS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// From now on, `text` never leaves the process: [`scrub`] replaces it with `placeholder`.
pub fn register(text: &str, placeholder: &str) {
    let text = text.trim();
    if text.chars().count() < MIN_SCRUBBED {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if secrets.iter().any(|(s, _)| s == text) {
        return;
    }
    secrets.push((text.to_string(), placeholder.to_string()));
    secrets.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by its placeholder.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for (secret, placeholder) in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), placeholder));
        }
    }
    out
}

/// [`scrub`] for bytes that need not be UTF-8 (a `--query` value).
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(bytes);
    for (secret, placeholder) in secrets.iter() {
        let needle = secret.as_bytes();
        if let Some(replaced) = replace_bytes(&out, needle, placeholder.as_bytes()) {
            out = Cow::Owned(replaced);
        }
    }
    out
}

fn replace_bytes(hay: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let first = hay.windows(needle.len()).position(|w| w == needle)?;
    let mut out = hay[..first].to_vec();
    let mut rest = &hay[first..];
    while !rest.is_empty() {
        if rest.starts_with(needle) {
            out.extend_from_slice(with);
            rest = &rest[needle.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_never_leave_and_longer_ones_go_first() {
        let pw = Secret::new("Zq7-unit-test-pw");
        register("dc=x Zq7-unit-test-pw-and-more", "<the search_base>");
        assert_eq!(format!("{pw} {pw:?}"), "<redacted> <redacted>");
        assert_eq!(scrub("bind with Zq7-unit-test-pw failed"), "bind with <redacted> failed");
        assert_eq!(scrub("base dc=x Zq7-unit-test-pw-and-more!"), "base <the search_base>!");
        assert_eq!(scrub_bytes(b"\xffZq7-unit-test-pw\xff").as_ref(), b"\xff<redacted>\xff");
        assert!(matches!(scrub("nothing here"), Cow::Borrowed(_)));
        register("ab", "<x>");
        assert_eq!(scrub("ab"), "ab", "too short to scrub");
    }
}
