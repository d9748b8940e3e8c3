//! One check from start to finish (read the maps, plan, probe, decide), and the two ways of running it:
//! once (the Nagios plugin and the systemd probe) or in a loop (the old daemon's shape).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::Cli;
use crate::config;
use crate::logging::{Level, Logger};
use crate::output;
use crate::plan::Plan;
use crate::probe;
use crate::verdict::{self, Report, State, Thresholds};

/// Postfix's default `timeout`, used as the deadline when no map could be read.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable that lists the map files when no `--conffile` is given.
pub const CONFFILE_ENV: &str = "LDAP_HEALTH_CHECK_CONFFILE";

/// Run the checks `cli` asks for and return the process exit status.
pub fn run(cli: &Cli) -> ExitCode {
    let mut log = Logger::new(cli.verbose, cli.syslog);
    let paths = conffiles(&cli.conffile, std::env::var_os(CONFFILE_ENV));
    if paths.is_empty() {
        let line = format!("no map file given: use --conffile /etc/postfix/FILE.cf or set {CONFFILE_ENV}");
        return unknown(&mut log, &line);
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return unknown(&mut log, &format!("cannot start the I/O runtime: {e}")),
    };
    let thresholds = Thresholds { warning: cli.warning.clone(), critical: cli.critical.clone() };
    let code = loop {
        let report = check(&rt, &paths, cli.timeout, &thresholds, &mut log);
        let failing = matches!(report.state, State::Critical | State::Unknown);
        if cli.debug {
            print(&output::debug_lines(&report));
            let detail = output::nagios(&report, &thresholds, cli.verbose.max(1));
            print(&detail.lines().map(|l| format!("DEBUG: {l}\n")).collect::<String>());
        }
        if cli.once || failing {
            print(&output::nagios(&report, &thresholds, cli.verbose));
            break report.state.code();
        }
        std::thread::sleep(cli.interval);
    };
    // A hung name lookup may still hold a blocking thread: do not wait for it.
    rt.shutdown_background();
    ExitCode::from(code)
}

/// The map files to read: `--conffile` options, else the space-separated list in the environment.
fn conffiles(given: &[PathBuf], env: Option<OsString>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = if !given.is_empty() {
        given.to_vec()
    } else {
        env.map(|v| v.to_string_lossy().split_whitespace().map(PathBuf::from).collect()).unwrap_or_default()
    };
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    paths
}

/// One complete check of `paths` under one deadline.
pub fn check(
    rt: &tokio::runtime::Runtime,
    paths: &[PathBuf],
    timeout: Option<Duration>,
    thresholds: &Thresholds,
    log: &mut Logger,
) -> Report {
    let start = Instant::now();
    let loaded: Vec<Result<config::Map, config::ConfigError>> = paths.iter().map(|p| config::load(p)).collect();
    let maps: Vec<config::Map> = loaded.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let deadline = timeout.unwrap_or_else(|| {
        maps.iter().map(|m| Duration::from_secs(u64::from(m.timeout))).max().unwrap_or(DEFAULT_TIMEOUT)
    });
    let plan = Plan::new(maps);
    let reports = probe::run(rt, &plan.jobs, start, deadline);
    let mut decided = verdict::decide(&plan, &reports).into_iter();
    let verdicts: Vec<_> = loaded
        .iter()
        .filter_map(|r| match r {
            Ok(_) => decided.next(),
            Err(e) => Some(verdict::config_failure(e)),
        })
        .collect();
    for w in verdicts.iter().flat_map(|v| &v.warnings) {
        log.log(Level::Info, &format!("postfix would warn: {w}"));
    }
    let report = verdict::report(verdicts, plan.jobs.len(), start.elapsed(), thresholds);
    let level = match report.state {
        State::Ok => Level::Info,
        State::Warning => Level::Warning,
        State::Critical | State::Unknown => Level::Err,
    };
    log.verdict(level, &format!("LDAP {} - {}", report.state, report.summary()));
    report
}

/// Print an UNKNOWN line for a problem that prevents any check, and return exit status 3.
pub fn unknown(log: &mut Logger, message: &str) -> ExitCode {
    print(&format!("LDAP UNKNOWN - {message}\n"));
    log.verdict(Level::Err, &format!("LDAP UNKNOWN - {message}"));
    ExitCode::from(State::Unknown.code())
}

/// Write to stdout; a closed pipe (a monitoring agent that went away) is not an error worth a panic.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conffile_options_win_over_the_environment() {
        let given = vec![PathBuf::from("/a.cf")];
        assert_eq!(conffiles(&given, Some("/b.cf".into())), given);
    }

    #[test]
    fn environment_lists_space_separated_paths_once_each() {
        let got = conffiles(&[], Some(" /a.cf  /b.cf\t/a.cf ".into()));
        assert_eq!(got, vec![PathBuf::from("/a.cf"), PathBuf::from("/b.cf")]);
        assert!(conffiles(&[], None).is_empty());
    }
}
