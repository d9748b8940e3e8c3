//! The command line: options, their environment defaults, and their validation.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::range::Range;

/// Check the LDAP directory behind Postfix's LDAP maps (ldap_table(5)) the way Postfix uses it.
///
/// Reads each map file as Postfix does, probes every server of every map concurrently under one deadline
/// (connect, STARTTLS/TLS, bind, base search), decides as Postfix would experience it (servers are tried in
/// order; Postfix fails over only when a connect fails), prints one Nagios line and exits
/// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ldap-health-check",
    version,
    after_help = "Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for usage errors; --help and --version exit 0).\n\
                  Without --once the check repeats every --interval while the directory is usable and exits 2 at the\n\
                  first failing check (the shape of the old ldap-health-check daemon)."
)]
pub struct Cli {
    /// A Postfix ldap_table(5) map file; repeat for several maps
    /// [default: the space-separated paths in $LDAP_HEALTH_CHECK_CONFFILE]
    #[arg(short = 'f', long = "conffile", value_name = "PATH", action = ArgAction::Append)]
    pub conffile: Vec<PathBuf>,

    /// Check once, print the verdict and exit with its status (the Nagios plugin and systemd mode)
    #[arg(long)]
    pub once: bool,

    /// Without --once: time between two checks while the directory is healthy (e.g. 60s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,

    /// One hard deadline for the whole check (e.g. 2s, 500ms, or bare seconds);
    /// default: the largest `timeout` among the maps (Postfix's default 10)
    #[arg(short = 't', long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Response time (seconds) that makes the check WARNING, as a Nagios range (10, 10:, ~:10, @1:2)
    #[arg(short = 'w', long, value_name = "RANGE", allow_hyphen_values = true)]
    pub warning: Option<Range>,

    /// Response time (seconds) that makes the check CRITICAL, as a Nagios range
    #[arg(short = 'c', long, value_name = "RANGE", allow_hyphen_values = true)]
    pub critical: Option<Range>,

    /// Long output: one line per map and per server with each stage's timing or error; repeat for more
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Print the old tool's `DEBUG: LDAP search success: dn=...` line for each successful check, and more detail
    #[arg(long)]
    pub debug: bool,

    /// Also log to the local syslog (facility mail); a missing syslog socket is only a warning
    #[arg(long)]
    pub syslog: bool,
}

/// A duration as humantime (`2s`, `500ms`, `1m 30s`) or bare seconds (`10`, `0.5`), like Postfix's `timeout`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("'{s}' must be a number of seconds between 0 and 86400"));
    }
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("the duration must be greater than zero".to_string()),
        Ok(d) if d > Duration::from_secs(86_400) => Err("the duration must be at most 1 day".to_string()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("'{s}' is not a duration ({e}); use e.g. 2s, 500ms or 10")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_accept_humantime_and_bare_seconds() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("2 days").is_err());
    }

    #[test]
    fn conffile_repeats() {
        let cli = Cli::try_parse_from(["x", "-f", "/a.cf", "--conffile", "/b.cf", "--once"]).unwrap();
        assert_eq!(cli.conffile, vec![PathBuf::from("/a.cf"), PathBuf::from("/b.cf")]);
        assert!(cli.once);
        assert_eq!(cli.interval, Duration::from_secs(60));
    }
}
