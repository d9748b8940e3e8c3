//! One check from start to finish (read the maps, plan, probe, decide), and the two ways of running it:
//! once (the Nagios plugin and the systemd probe) or in a loop (the old daemon's shape).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use crate::cli::{Cli, Format};
use crate::config;
use crate::discover::{self, MapSource};
use crate::json;
use crate::logging::{Level, Logger};
use crate::output;
use crate::plan::Plan;
use crate::probe;
use crate::prometheus;
use crate::verdict::{self, Report, State, Thresholds};

/// Postfix's default `timeout`, used as the deadline when no map could be read, and for discovery (the maps'
/// own `timeout` is not known before it) when `-t` is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable that lists the map files when no `--conffile` is given.
pub const CONFFILE_ENV: &str = "LDAP_HEALTH_CHECK_CONFFILE";

/// The environment variable for `--prometheus-textfile` (an empty value counts as unset, so that an
/// `/etc/default/ldap-health-check` line `LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE=` is no usage error).
pub const PROMETHEUS_TEXTFILE_ENV: &str = "LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE";

/// What one check looks at: the maps, the `--canary` keys, Postfix's configuration directory (for `domain`
/// tables).
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub maps: Vec<MapSource>,
    pub canaries: Vec<String>,
    pub postfix_config: Option<PathBuf>,
}

/// Run the checks `cli` asks for and return the process exit status.
pub fn run(cli: &Cli) -> ExitCode {
    let mut log = Logger::new(cli.verbose, cli.syslog);
    let paths = conffiles(&cli.conffile, std::env::var_os(CONFFILE_ENV));
    if let Some(key) = &cli.query {
        if paths.len() != 1 {
            print_stderr("ldap-health-check: --query KEY needs exactly one map: --query KEY -f FILE\n");
            return ExitCode::from(State::Unknown.code());
        }
        return crate::query::run(&paths[0], key, cli.timeout, cli.postfix_config.as_deref(), cli.verbose);
    }
    // The first check's clock starts here: discovery (postconf, which can hang on a slow disk) is part of it and
    // runs under its deadline, `-t` or, as the maps' own `timeout` is not known yet, Postfix's default.
    let start = Instant::now();
    let mut targets = Targets { canaries: cli.canary.clone(), ..Targets::default() };
    if paths.is_empty() {
        // No map given: every LDAP map that Postfix's own configuration uses.
        let dir = discover::config_dir(cli.postfix_config.as_deref());
        match discover::discover(&dir, start + cli.timeout.unwrap_or(DEFAULT_TIMEOUT)) {
            Ok(maps) if maps.is_empty() => {
                let line = format!(
                    "no ldap: map in the Postfix configuration {} (main.cf, master.cf): give the maps with \
                     --conffile /etc/postfix/FILE.cf or set {CONFFILE_ENV}",
                    dir.display()
                );
                return unknown(cli, &mut log, &line);
            }
            Ok(maps) => targets.maps = maps,
            Err(e) => return unknown(cli, &mut log, &e),
        }
        targets.postfix_config = Some(dir);
    } else {
        targets.maps = paths.into_iter().map(MapSource::file).collect();
        targets.postfix_config = cli.postfix_config.clone();
    }
    let rt = match probe::runtime() {
        Ok(rt) => rt,
        Err(e) => return unknown(cli, &mut log, &e),
    };
    let thresholds = Thresholds { warning: cli.warning.clone(), critical: cli.critical.clone() };
    let textfile = textfile_path(cli);
    let mut first = Some(start);
    let code = loop {
        let start = first.take().unwrap_or_else(Instant::now);
        let (report, deadline) = check(&rt, &targets, start, cli.timeout, &thresholds);
        let finished = SystemTime::now();
        let failing = matches!(report.state, State::Critical | State::Unknown);
        let last = cli.once || failing;
        match cli.format {
            Format::Nagios => {
                if cli.debug {
                    print(&output::debug_lines(&report));
                    let detail = output::nagios(&report, &thresholds, cli.verbose.max(1));
                    print(&detail.lines().map(|l| format!("DEBUG: {l}\n")).collect::<String>());
                }
                if last {
                    print(&output::nagios(&report, &thresholds, cli.verbose));
                }
            }
            // JSON Lines: one object where the Nagios line would be printed, or at every check with --debug
            // (instead of the DEBUG: lines, which would not be JSON).
            Format::Json if last || cli.debug => {
                print(&json::render(&report, &json::Context { deadline, thresholds: &thresholds, finished }))
            }
            Format::Json => {}
        }
        // The verdict is on stdout before anything that can block (syslog, the journal, the textfile's disk).
        log_report(&mut log, &report);
        if let Some(path) = &textfile {
            write_textfile(&mut log, path, prometheus::write(path, &report, finished));
        }
        if last {
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

/// One complete check of `targets` under one deadline counted from `start`; returns the report and that
/// deadline. Nothing is logged here: the caller prints the verdict first, then [`log_report`].
pub fn check(
    rt: &tokio::runtime::Runtime,
    targets: &Targets,
    start: Instant,
    timeout: Option<Duration>,
    thresholds: &Thresholds,
) -> (Report, Duration) {
    let loaded: Vec<Result<config::Map, config::ConfigError>> = targets.maps.iter().map(MapSource::load).collect();
    // The maps that could be read, each with the Postfix parameters that use it.
    let (maps, used_by): (Vec<config::Map>, Vec<Vec<String>>) = targets
        .maps
        .iter()
        .zip(&loaded)
        .filter_map(|(source, r)| r.as_ref().ok().map(|m| (m.clone(), source.used_by.clone())))
        .unzip();
    let deadline = timeout.unwrap_or_else(|| {
        maps.iter().map(|m| Duration::from_secs(u64::from(m.timeout))).max().unwrap_or(DEFAULT_TIMEOUT)
    });
    // `domain = type:table` entries are asked through postmap, within the deadline.
    let config_dir = targets.postfix_config.as_deref();
    let mut table = |t: &str, k: &str| {
        crate::postfix::postmap_table_lookup(config_dir, t, k, deadline.saturating_sub(start.elapsed()))
    };
    let mut plan = Plan::with_canaries(maps, &targets.canaries, &mut table);
    for (mp, users) in plan.maps.iter_mut().zip(used_by) {
        mp.used_by = users;
    }
    let reports = probe::run(rt, &plan.jobs, &plan.job_orders(), start, deadline);
    let mut decided = verdict::decide(&plan, &reports).into_iter();
    let verdicts: Vec<_> = loaded
        .iter()
        .zip(&targets.maps)
        .filter_map(|(r, source)| match r {
            Ok(_) => decided.next(),
            Err(e) => Some(verdict::MapVerdict { used_by: source.used_by.clone(), ..verdict::config_failure(e) }),
        })
        .collect();
    (verdict::report(verdicts, plan.jobs.len(), start.elapsed(), thresholds), deadline)
}

/// Log a check's outcome: what Postfix would warn about, and the verdict at the priority of its state.
pub fn log_report(log: &mut Logger, report: &Report) {
    for w in report.maps.iter().flat_map(|v| &v.warnings) {
        log.log(Level::Info, &format!("postfix would warn: {w}"));
    }
    let level = match report.state {
        State::Ok => Level::Info,
        State::Warning => Level::Warning,
        State::Critical | State::Unknown => Level::Err,
    };
    log.verdict(level, &format!("LDAP {} - {}", report.state, report.summary()));
}

/// Report UNKNOWN for a problem that prevents any check (in the `--format` asked for, and in the textfile),
/// and return exit status 3.
pub fn unknown(cli: &Cli, log: &mut Logger, message: &str) -> ExitCode {
    let finished = SystemTime::now();
    // Stdout first, then what can block (syslog, the journal, the textfile's disk).
    match cli.format {
        Format::Nagios => print(&format!("LDAP UNKNOWN - {message}\n")),
        Format::Json => print(&json::render_unknown(message, finished)),
    }
    log.verdict(Level::Err, &format!("LDAP UNKNOWN - {message}"));
    if let Some(path) = textfile_path(cli) {
        write_textfile(log, &path, prometheus::write_unknown(&path, finished));
    }
    ExitCode::from(State::Unknown.code())
}

/// `--prometheus-textfile`, else a non-empty `$LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE`.
fn textfile_path(cli: &Cli) -> Option<PathBuf> {
    cli.prometheus_textfile
        .clone()
        .or_else(|| std::env::var_os(PROMETHEUS_TEXTFILE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// A textfile that cannot be written is a warning on stderr: the verdict is about the directory, not about
/// the metrics file (Prometheus notices the stale `ldap_health_check_last_run_timestamp_seconds`).
fn write_textfile(log: &mut Logger, path: &std::path::Path, result: std::io::Result<()>) {
    if let Err(e) = result {
        log.log(Level::Warning, &format!("--prometheus-textfile {}: cannot write: {e}", path.display()));
    }
}

/// Write to stdout; a closed pipe (a monitoring agent that went away) is not an error worth a panic
/// (`println!` panics on it).
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// Write to stderr, ignoring errors as [`print`] does (`eprintln!` panics on a closed stderr).
pub fn print_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|_| err.flush());
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
