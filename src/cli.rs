//! The command line: options, their environment defaults (resolved once, by [`Cli::parse_args`]), and their
//! validation.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::range::Range;

/// Check the LDAP directory behind Postfix's LDAP maps (ldap_table(5)) the way Postfix uses it.
///
/// Reads each map file as Postfix does (given with -f, or every ldap: and proxy:ldap: map that Postfix's own
/// configuration uses), probes every server of every map concurrently, each operation under the map's
/// `timeout` as in Postfix and all of it under one deadline (connect, STARTTLS/TLS, bind, a presence search for
/// any entry the map could answer, the canary lookups; certificates' expiry and replicas' freshness on the way),
/// decides as Postfix would experience it (servers are tried in order; Postfix fails over only when the
/// connection cannot be made, including a failed ldaps handshake; no entry, or a canary key not found, means
/// Postfix answers 550 User unknown), prints one Nagios line and exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
/// With --query KEY it looks one key up exactly as `postmap -q KEY ldap:FILE` does instead; with --policy it
/// serves Postfix's policy protocol.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ldap-health-check",
    version,
    after_help = "Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for usage errors; --help and --version exit 0).\n\
                  Without --once the check repeats every --interval while the directory is usable and exits at the\n\
                  first failing check: 2 CRITICAL, 3 UNKNOWN (the shape of the old ldap-health-check daemon).\n\
                  Canaries: keys that must resolve, from --canary (every map) and from `health_check_key = k1, k2` in a\n\
                  map file (that map only; Postfix ignores the parameter). Not found: CRITICAL (Postfix answers 550);\n\
                  lookup error: CRITICAL (451); a key Postfix never looks up (outside `domain`...): UNKNOWN.\n\
                  --query KEY -f FILE prints what `postmap -q KEY ldap:FILE` prints and exits 0 found, 1 not found,\n\
                  2 lookup error (the reason on stderr), 3 usage error.\n\
                  Without -f and $LDAP_HEALTH_CHECK_CONFFILE the maps come from `postconf -c DIR` (--postfix-config)."
)]
pub struct Cli {
    /// A Postfix ldap_table(5) map file; repeat for several maps [default: the space-separated paths in
    /// $LDAP_HEALTH_CHECK_CONFFILE, else every LDAP map of the Postfix configuration (--postfix-config)]
    #[arg(short = 'f', long = "conffile", value_name = "PATH", action = ArgAction::Append)]
    pub conffile: Vec<PathBuf>,

    /// Check once, print the verdict and exit with its status (the Nagios plugin and systemd mode)
    #[arg(long)]
    pub once: bool,

    /// Without --once: time between two checks while the directory is healthy (e.g. 60s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,

    /// One hard deadline for the whole check (e.g. 2s, 500ms, or bare seconds); default: the longest a Postfix
    /// lookup of the maps could take (`timeout` for each operation), at most 2 minutes
    #[arg(short = 't', long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Response time (seconds) that makes the check WARNING, as a Nagios range (10, 10:, ~:10, @1:2)
    #[arg(short = 'w', long, value_name = "RANGE", allow_hyphen_values = true)]
    pub warning: Option<Range>,

    /// Response time (seconds) that makes the check CRITICAL, as a Nagios range
    #[arg(short = 'c', long, value_name = "RANGE", allow_hyphen_values = true)]
    pub critical: Option<Range>,

    /// Long output: one line per map and per server with each stage's timing or error, each canary with its
    /// value, the Postfix parameters that use each discovered map; repeat for more
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Print the old tool's `DEBUG: LDAP search success: dn=...` line for each successful check, and more detail
    #[arg(long)]
    pub debug: bool,

    /// Also log to the local syslog (facility mail); a missing syslog socket is only a warning
    #[arg(long)]
    pub syslog: bool,

    /// What stdout carries for each check: the Nagios line, or one JSON object on one line. Without --once,
    /// only the failing check that ends the loop prints (every check with --debug)
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Format::Nagios)]
    pub format: Format,

    /// Also write the result of every check to PATH in the Prometheus text format, atomically, for
    /// node_exporter's textfile collector (e.g. /var/lib/prometheus/node-exporter/ldap-health-check.prom);
    /// a failed write is a warning on stderr and does not change the verdict
    /// [default: $LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE when set and not empty]
    #[arg(long, value_name = "PATH")]
    pub prometheus_textfile: Option<PathBuf>,

    /// A key that must resolve in every map of the run (repeatable), e.g. postmaster@example.com: not found
    /// is CRITICAL (Postfix would answer 550 User unknown). Per-map keys: `health_check_key = k1, k2` in the map
    #[arg(long, value_name = "KEY", action = ArgAction::Append)]
    pub canary: Vec<String>,

    /// Look KEY up in the one map given with -f, exactly as `postmap -q KEY ldap:FILE` does, print the result
    /// and exit 0 found, 1 not found, 2 lookup error (reason on stderr)
    #[arg(long, value_name = "KEY", conflicts_with_all = ["canary", "once"])]
    pub query: Option<std::ffi::OsString>,

    /// Postfix's configuration directory, read with `postconf -c DIR` to find every ldap: map when no map
    /// file is given [default: $MAIL_CONFIG, else /etc/postfix]
    #[arg(long, value_name = "DIR")]
    pub postfix_config: Option<PathBuf>,

    /// WARNING when a TLS server's certificate (any server of a map, standbys included) expires within this
    /// time, or has expired while Postfix does not verify it (0: never), e.g. 21d, 2w
    #[arg(long, value_name = "DURATION", default_value = "21d", value_parser = parse_span)]
    pub cert_warn: Duration,

    /// CRITICAL when a certificate Postfix verifies (tls_require_cert = yes) expires within this time (0: never;
    /// the systemd unit sets 0, so that a certificate that still works never stops Postfix)
    #[arg(long, value_name = "DURATION", default_value = "3d", value_parser = parse_span)]
    pub cert_crit: Duration,

    /// WARNING when a server's data lags the freshest server of its map by more than this (maps with several
    /// servers; their contextCSN values compared; 0: never), e.g. 5m, 1h
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_span)]
    pub replica_lag: Duration,

    /// Serve Postfix's SMTPD access policy protocol on stdin/stdout until EOF (run by
    /// ldap-health-check-policy.socket, or by spawn(8)): answer DEFER_IF_REJECT for a recipient while the
    /// recipient maps answer wrong (Postfix's 550 becomes 450), DUNNO otherwise; logs to syslog.
    /// The maps: -f, else those main.cf uses for recipients. -t is the deadline per request [default: 2s]
    #[arg(long, conflicts_with_all = ["once", "query", "canary", "format", "prometheus_textfile"])]
    pub policy: bool,

    /// With --policy: reuse a judgement for this long (0: judge every RCPT, no 550 window; a busy site trades
    /// a window of this length for fewer LDAP lookups), e.g. 0, 500ms, 1s
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_cache, requires = "policy")]
    pub policy_cache: Duration,

    /// With --policy: judge the directory once, print the answer an RCPT would get now and why, and exit
    /// (0 DUNNO, 1 DEFER_IF_REJECT, 3 no recipient map to guard)
    #[arg(long, requires = "policy")]
    pub self_test: bool,
}

/// The environment variable that lists the map files when no `--conffile` is given.
pub const CONFFILE_ENV: &str = "LDAP_HEALTH_CHECK_CONFFILE";

/// The environment variable for `--prometheus-textfile` (an empty value counts as unset, so that an
/// `/etc/default/ldap-health-check` line `LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE=` is no usage error).
pub const PROMETHEUS_TEXTFILE_ENV: &str = "LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE";

/// Postfix's own variable for its configuration directory.
pub const MAIL_CONFIG_ENV: &str = "MAIL_CONFIG";

impl Cli {
    /// Parse `args`, then apply the environment defaults: after this, `conffile` lists each map once (from the
    /// options, else from `$LDAP_HEALTH_CHECK_CONFFILE`), `prometheus_textfile` is the option or a non-empty
    /// `$LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE`, and `postfix_config` is always set (the option, else
    /// `$MAIL_CONFIG`, else /etc/postfix).
    pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
        let mut cli = Cli::try_parse_from(args)?;
        cli.apply_env(|name| std::env::var_os(name).filter(|v| !v.is_empty()));
        Ok(cli)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<OsString>) {
        if self.conffile.is_empty() {
            if let Some(list) = env(CONFFILE_ENV) {
                self.conffile = list.to_string_lossy().split_whitespace().map(PathBuf::from).collect();
            }
        }
        // A map copied from main.cf keeps its type: `proxy:ldap:/etc/postfix/x.cf` is the file /etc/postfix/x.cf.
        for path in &mut self.conffile {
            *path = map_file(path);
        }
        let mut seen = std::collections::HashSet::new();
        self.conffile.retain(|p| seen.insert(p.clone()));
        if self.prometheus_textfile.is_none() {
            self.prometheus_textfile = env(PROMETHEUS_TEXTFILE_ENV).map(PathBuf::from);
        }
        if self.postfix_config.is_none() {
            self.postfix_config =
                Some(env(MAIL_CONFIG_ENV).map_or_else(|| PathBuf::from("/etc/postfix"), PathBuf::from));
        }
    }
}

/// The file of a map named as in main.cf (`ldap:FILE`, `proxy:ldap:FILE`), or the path as given.
fn map_file(path: &std::path::Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut bytes = path.as_os_str().as_bytes();
    while let Some(rest) = bytes.strip_prefix(b"proxy:") {
        bytes = rest;
    }
    match bytes.strip_prefix(b"ldap:") {
        Some(rest) if !rest.is_empty() => PathBuf::from(std::ffi::OsStr::from_bytes(rest)),
        _ => path.to_path_buf(),
    }
}

/// The stdout format (`--format`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// The Nagios plugin line, with long output after it with -v
    #[default]
    Nagios,
    /// JSON Lines, described by docs/json-schema.json
    Json,
}

/// A span for a look-ahead check: humantime (`21d`, `2w`, `12h`) or bare seconds, 0 allowed, no upper cap.
pub fn parse_span(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if (0.0..1e12).contains(&secs) {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("'{s}' must be a number of seconds, 0 or more"));
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 21d, 2w or 0"))
}

/// A cache duration: as [`parse_duration`], and 0 (no cache).
pub fn parse_cache(s: &str) -> Result<Duration, String> {
    if s.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
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

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn conffile_options_win_over_the_environment() {
        let mut cli = Cli::try_parse_from(["x", "-f", "/a.cf"]).unwrap();
        cli.apply_env(env_of(&[(CONFFILE_ENV, "/b.cf")]));
        assert_eq!(cli.conffile, vec![PathBuf::from("/a.cf")]);
    }

    #[test]
    fn environment_lists_space_separated_paths_once_each() {
        let mut cli = Cli::try_parse_from(["x"]).unwrap();
        cli.apply_env(env_of(&[(CONFFILE_ENV, " /a.cf  /b.cf\t/a.cf ")]));
        assert_eq!(cli.conffile, vec![PathBuf::from("/a.cf"), PathBuf::from("/b.cf")]);
        let mut cli = Cli::try_parse_from(["x"]).unwrap();
        cli.apply_env(env_of(&[]));
        assert!(cli.conffile.is_empty());
    }

    #[test]
    fn postfix_config_and_textfile_from_the_environment() {
        let mut cli = Cli::try_parse_from(["x"]).unwrap();
        cli.apply_env(env_of(&[]));
        assert_eq!(cli.postfix_config, Some(PathBuf::from("/etc/postfix")));
        assert_eq!(cli.prometheus_textfile, None);
        let mut cli = Cli::try_parse_from(["x"]).unwrap();
        cli.apply_env(env_of(&[(MAIL_CONFIG_ENV, "/srv/pf"), (PROMETHEUS_TEXTFILE_ENV, "/t.prom")]));
        assert_eq!(cli.postfix_config, Some(PathBuf::from("/srv/pf")));
        assert_eq!(cli.prometheus_textfile, Some(PathBuf::from("/t.prom")));
        let mut cli = Cli::try_parse_from(["x", "--postfix-config", "/p", "--prometheus-textfile", "/o"]).unwrap();
        cli.apply_env(env_of(&[(MAIL_CONFIG_ENV, "/srv/pf"), (PROMETHEUS_TEXTFILE_ENV, "/t.prom")]));
        assert_eq!(cli.postfix_config, Some(PathBuf::from("/p")));
        assert_eq!(cli.prometheus_textfile, Some(PathBuf::from("/o")));
    }

    #[test]
    fn maps_named_as_in_main_cf_are_their_files() {
        let mut cli =
            Cli::try_parse_from(["x", "-f", "ldap:/a.cf", "-f", "proxy:ldap:/b.cf", "-f", "/a.cf", "-f", "ldap:"])
                .unwrap();
        cli.apply_env(env_of(&[]));
        assert_eq!(cli.conffile, vec![PathBuf::from("/a.cf"), PathBuf::from("/b.cf"), PathBuf::from("ldap:")]);
    }

    #[test]
    fn conffile_repeats() {
        let cli = Cli::try_parse_from(["x", "-f", "/a.cf", "--conffile", "/b.cf", "--once"]).unwrap();
        assert_eq!(cli.conffile, vec![PathBuf::from("/a.cf"), PathBuf::from("/b.cf")]);
        assert!(cli.once);
        assert_eq!(cli.interval, Duration::from_secs(60));
    }
}
