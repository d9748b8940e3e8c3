//! Rendering a report, and nothing else: [`nagios`] (the plugin line with perfdata, the long output, the old
//! daemon's `DEBUG:` lines), [`json`] (`--format json`) and [`prometheus`] (the textfile). Rendering never
//! decides a state. The writers below are the only way anything reaches stdout or stderr (besides
//! [`crate::logging`]); like every writer of the process, they pass their text through
//! [`crate::map::secret::scrub`].

pub mod json;
pub mod nagios;
pub mod prometheus;

use std::io::Write;

/// Write to stdout; a closed pipe (a monitoring agent that went away) is not an error worth a panic
/// (`println!` panics on it).
pub fn print(text: &str) {
    print_bytes(crate::map::secret::scrub(text).as_bytes());
}

/// [`print`] for bytes that need not be UTF-8 (a `--query` value is printed as the server sent it).
pub fn print_bytes(bytes: &[u8]) {
    let bytes = crate::map::secret::scrub_bytes(bytes);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&bytes).and_then(|_| out.flush());
}

/// Write to stderr, ignoring errors as [`print`] does (`eprintln!` panics on a closed stderr).
pub fn print_stderr(text: &str) {
    let text = crate::map::secret::scrub(text);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|_| err.flush());
}
