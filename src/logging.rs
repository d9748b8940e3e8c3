//! Diagnostics and logs: stderr (with sd-daemon `<N>` priority prefixes when stderr is the journal) and,
//! with `--syslog`, the local syslog socket with facility mail.
//!
//! Logging never holds the check: the syslog socket is non-blocking, and a message the syslog daemon has no
//! room for (it stopped reading: the kernel queues a few datagrams, then would block) is dropped and counted;
//! the first drop is reported on stderr, the count when the logger ends. Each message is one line: control
//! characters are escaped.
//!
//! Stdout is not touched here: it belongs to the Nagios output.

use std::io::Write;

use syslog::{Facility, Formatter3164};

use crate::map::secret::scrub;
use crate::reason::one_line;

/// Syslog priorities used by this tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    /// Only with -vv, to any sink (recipient addresses in `--policy`).
    Debug = 7,
}

type Syslog = syslog::Logger<syslog::LoggerBackend, Formatter3164>;

pub struct Logger {
    /// Diagnostics go to stderr (not in `--policy`, where stderr is smtpd's socket).
    stderr: bool,
    journal: bool,
    verbose: u8,
    syslog: Option<Syslog>,
    /// Messages syslog had no room for.
    dropped: u64,
}

impl Logger {
    /// `verbose` decides which levels reach stderr: notice and above always, info with -v.
    pub fn new(verbose: u8, syslog: bool) -> Logger {
        let mut logger = Logger { stderr: true, journal: stderr_is_journal(), verbose, syslog: None, dropped: 0 };
        if syslog {
            logger.open_syslog();
        }
        logger
    }

    /// A logger that never writes to stderr and logs to syslog: for `--policy`, whose stdout and stderr are
    /// smtpd's socket (spawn(8)). Without a syslog socket it is silent.
    pub fn syslog_only(verbose: u8) -> Logger {
        let mut logger = Logger { stderr: false, journal: false, verbose, syslog: None, dropped: 0 };
        logger.open_syslog();
        logger
    }

    fn open_syslog(&mut self) {
        let formatter = Formatter3164 {
            facility: Facility::LOG_MAIL,
            hostname: None,
            process: "ldap-health-check".into(),
            pid: std::process::id(),
        };
        match syslog::unix(formatter).map_err(|e| e.to_string()).and_then(non_blocking) {
            Ok(s) => self.syslog = Some(s),
            Err(e) => {
                self.log(Level::Warning, &format!("--syslog: no local syslog socket ({e}); logging to stderr only"))
            }
        }
    }

    /// Whether stderr is connected to the systemd journal.
    pub fn journal(&self) -> bool {
        self.journal
    }

    /// Log a diagnostic to stderr (subject to verbosity) and to syslog.
    pub fn log(&mut self, level: Level, message: &str) {
        if level == Level::Debug && self.verbose < 2 {
            return;
        }
        let shown = match level {
            Level::Info => self.verbose >= 1,
            _ => true,
        };
        if shown {
            self.stderr(level, message);
        }
        self.send_syslog(level, message);
    }

    /// Log the outcome of a check. On a terminal the verdict is already on stdout, so it is not repeated on
    /// stderr; in the journal and in syslog it is logged at the priority of its state. A healthy (info)
    /// verdict reaches the journal only with -v: a timer-driven check must not fill it with one line per run.
    pub fn verdict(&mut self, level: Level, message: &str) {
        if self.journal && (level <= Level::Notice || self.verbose >= 1) {
            self.stderr(level, message);
        }
        self.send_syslog(level, message);
    }

    fn stderr(&self, level: Level, message: &str) {
        if !self.stderr {
            return;
        }
        let message = one_line(&scrub(message));
        let mut err = std::io::stderr().lock();
        let _ = if self.journal {
            writeln!(err, "<{}>{}", level as u8, message)
        } else {
            match level {
                Level::Err => writeln!(err, "ldap-health-check: error: {message}"),
                Level::Warning => writeln!(err, "ldap-health-check: warning: {message}"),
                _ => writeln!(err, "ldap-health-check: {message}"),
            }
        };
    }

    fn send_syslog(&mut self, level: Level, message: &str) {
        let Some(s) = self.syslog.as_mut() else { return };
        let message = one_line(&scrub(message));
        let sent = match level {
            Level::Err => s.err(&message),
            Level::Warning => s.warning(&message),
            Level::Notice => s.notice(&message),
            Level::Info => s.info(&message),
            Level::Debug => s.debug(&message),
        };
        if sent.is_err() {
            self.dropped += 1;
            // A stream socket may have taken part of the message: nothing more can go after it.
            if matches!(s.backend, syslog::LoggerBackend::UnixStream(_)) {
                self.syslog = None;
            }
            if self.dropped == 1 {
                self.stderr(Level::Warning, "--syslog: the syslog daemon is not taking messages: dropping them");
            }
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        if self.dropped > 1 {
            let text =
                format!("--syslog: {} messages were dropped (the syslog daemon was not taking them)", self.dropped);
            self.stderr(Level::Warning, &text);
        }
    }
}

/// Make the syslog socket non-blocking: a syslog daemon that stops reading must not hold the check.
fn non_blocking(s: Syslog) -> Result<Syslog, String> {
    let set = match &s.backend {
        syslog::LoggerBackend::Unix(socket) => socket.set_nonblocking(true),
        syslog::LoggerBackend::UnixStream(stream) => stream.get_ref().set_nonblocking(true),
        syslog::LoggerBackend::Udp(socket, _) => socket.set_nonblocking(true),
        syslog::LoggerBackend::Tcp(stream) => stream.get_ref().set_nonblocking(true),
    };
    set.map_err(|e| e.to_string())?;
    Ok(s)
}

/// `$JOURNAL_STREAM` is `DEV:INODE` of the journal stream systemd connected; it only counts when stderr is
/// still that stream (systemd.exec(5)): a child with redirected stderr inherits the variable.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(value) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = value.split_once(':') else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    let Ok(meta) = std::fs::File::from(fd).metadata() else { return false };
    meta.dev() == dev && meta.ino() == ino
}

#[cfg(test)]
mod tests {
    #[test]
    fn journal_stream_must_match_stderr() {
        // Whatever stderr is under the test harness, a made-up device:inode never matches it.
        std::env::set_var("JOURNAL_STREAM", "1:1");
        assert!(!super::stderr_is_journal());
        std::env::set_var("JOURNAL_STREAM", "garbage");
        assert!(!super::stderr_is_journal());
        std::env::remove_var("JOURNAL_STREAM");
        assert!(!super::stderr_is_journal());
    }
}
