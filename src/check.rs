//! One check from start to finish (read the maps, plan, probe, decide), and the two ways of running it:
//! once (the Nagios plugin and the systemd probe) or in a loop (the old daemon's shape).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Instant, SystemTime};

use crate::cli::{Cli, Format};
use crate::deadline::Deadline;
use crate::discover;
use crate::logging::{Level, Logger};
use crate::map::Source;
use crate::plan::Plan;
use crate::probe;
use crate::report::{self, json, nagios, prometheus};
use crate::verdict::{self, Foresight, Report, State, Thresholds};

/// What one check looks at: the maps, the `--canary` keys, Postfix's configuration directory (for `domain`
/// tables).
#[derive(Clone, Debug)]
pub struct Targets {
    pub maps: Vec<Source>,
    pub canaries: Vec<String>,
    pub postfix_config: PathBuf,
}

/// Run the checks `cli` asks for (once, or in a loop) and return the process exit status.
pub fn run(cli: &Cli) -> ExitCode {
    let mut log = Logger::new(cli.verbose, cli.syslog);
    // The first check's clock starts here: discovery (postconf, which can hang on a slow disk) is part of it and
    // runs under its deadline, `-t` or, as the maps' own `timeout` is not known yet, Postfix's default.
    let start = Instant::now();
    let first_deadline = Deadline::for_maps(start, cli.timeout, []);
    let targets = match targets(cli, &first_deadline) {
        Ok(targets) => targets,
        Err(e) => return unknown(cli, &mut log, &e, first_deadline.until()),
    };
    let rt = match probe::runtime() {
        Ok(rt) => rt,
        Err(e) => return unknown(cli, &mut log, &format!("{e:#}"), first_deadline.until()),
    };
    let thresholds = Thresholds { warning: cli.warning.clone(), critical: cli.critical.clone() };
    let mut first = Some(start);
    let code = loop {
        let start = first.take().unwrap_or_else(Instant::now);
        let foresight = Foresight {
            cert_warn: cli.cert_warn,
            cert_crit: cli.cert_crit,
            replica_lag: cli.replica_lag,
            now: SystemTime::now(),
        };
        let (report, deadline) = check(&rt, &targets, start, cli.timeout, &thresholds, &foresight);
        let finished = SystemTime::now();
        let last = cli.once || matches!(report.state, State::Critical | State::Unknown);
        print_report(cli, &report, &deadline, &thresholds, finished, last);
        if last {
            exit_after(report.state.code(), deadline.until());
        }
        // The verdict is on stdout before anything that can block (syslog, the journal, the textfile's disk).
        log_report(&mut log, &report);
        if let Some(path) = &cli.prometheus_textfile {
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

/// The maps to check: the files given (`-f` or the environment), else every LDAP map that Postfix's own
/// configuration uses, discovered under `deadline`.
pub(crate) fn targets(cli: &Cli, deadline: &Deadline) -> Result<Targets, String> {
    let postfix_config = cli.postfix_config.clone().unwrap_or_else(|| PathBuf::from("/etc/postfix"));
    let maps = if !cli.conffile.is_empty() {
        cli.conffile.iter().cloned().map(Source::file).collect()
    } else {
        let maps = discover::discover(&postfix_config, deadline).map_err(|e| format!("{e:#}"))?;
        if maps.is_empty() {
            return Err(format!(
                "no ldap: map in the Postfix configuration {} (main.cf, master.cf): give the maps with --conffile \
                 /etc/postfix/FILE.cf or set {}",
                postfix_config.display(),
                crate::cli::CONFFILE_ENV
            ));
        }
        maps
    };
    Ok(Targets { maps, canaries: cli.canary.clone(), postfix_config })
}

/// Print one check's outcome on stdout, in the format asked for: the verdict when it is the `last` check (or
/// with `--once`), and with `--debug` every check.
fn print_report(
    cli: &Cli,
    report: &Report,
    deadline: &Deadline,
    thresholds: &Thresholds,
    finished: SystemTime,
    last: bool,
) {
    match cli.format {
        Format::Nagios => {
            if cli.debug {
                report::print(&nagios::debug_lines(report));
                let detail = nagios::render(report, thresholds, cli.verbose.max(1));
                report::print(&detail.lines().map(|l| format!("DEBUG: {l}\n")).collect::<String>());
            }
            if last {
                report::print(&nagios::render(report, thresholds, cli.verbose));
            }
        }
        // JSON Lines: one object where the Nagios line would be printed, or at every check with --debug (instead
        // of the DEBUG: lines, which would not be JSON).
        Format::Json if last || cli.debug => {
            let cx = json::Context { deadline: deadline.length(), thresholds, finished };
            report::print(&json::render(report, &cx))
        }
        Format::Json => {}
    }
}

/// One complete check of `targets` under one deadline counted from `start` (`-t` when `timeout` is given, else
/// the maps' own); returns the report and that deadline. Nothing is logged here: the caller prints the verdict
/// first, then [`log_report`].
pub fn check(
    rt: &tokio::runtime::Runtime,
    targets: &Targets,
    start: Instant,
    timeout: Option<std::time::Duration>,
    thresholds: &Thresholds,
    foresight: &Foresight,
) -> (Report, Deadline) {
    // The maps' own `timeout`s are not known before they are read: they are read by `-t` or the default.
    let mut plan = Plan::read(&targets.maps, Deadline::for_maps(start, timeout, []).until());
    let deadline = Deadline::for_maps(start, timeout, plan.longest(targets.canaries.len()));
    // `domain = type:table` entries are asked through postmap, within the deadline.
    let config_dir = targets.postfix_config.as_path();
    let mut table = |t: &str, k: &str| crate::postfix::postmap_table_lookup(Some(config_dir), t, k, &deadline);
    plan.prepare(&targets.canaries, deadline.until(), &mut table);
    let reports = probe::run(rt, &plan.jobs, &plan.job_orders(), &deadline);
    let verdicts = verdict::decide(&plan, &reports, foresight);
    (verdict::report(verdicts, plan.jobs.len(), deadline.elapsed(), thresholds), deadline)
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
/// and return exit status 3. `until` is the deadline of the check that could not run.
pub fn unknown(cli: &Cli, log: &mut Logger, message: &str, until: Instant) -> ExitCode {
    let finished = SystemTime::now();
    // Stdout first, then what can block (syslog, the journal, the textfile's disk).
    match cli.format {
        Format::Nagios => report::print(&format!("LDAP UNKNOWN - {message}\n")),
        Format::Json => report::print(&json::render_unknown(message, finished)),
    }
    exit_after(State::Unknown.code(), until);
    log.verdict(Level::Err, &format!("LDAP UNKNOWN - {message}"));
    if let Some(path) = &cli.prometheus_textfile {
        write_textfile(log, path, prometheus::write_unknown(path, finished));
    }
    ExitCode::from(State::Unknown.code())
}

/// How long what follows the verdict (logs, the textfile) may run past the deadline.
const GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Once the verdict is on stdout, the process ends with its status by `until` + [`GRACE`] (or [`GRACE`] after
/// now, if later) whatever follows: a journal, syslog daemon or disk that stops answering may cost the log lines
/// or the textfile, never the exit the monitoring system or systemd waits for.
///
/// A timer signal, not a thread: a second thread costs every check a quarter of a millisecond (glibc leaves its
/// single-thread paths; measured by make bench). The verdict and everything before it is already written and
/// flushed; what the timer cuts short is only what follows.
pub fn exit_after(code: u8, until: Instant) {
    let left = (until.max(Instant::now()) + GRACE).saturating_duration_since(Instant::now());
    EXIT_CODE.store(i32::from(code), Ordering::Relaxed);
    let timer = libc::itimerval {
        it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
        it_value: libc::timeval {
            tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
            // at least 1 µs: a zero it_value disarms the timer
            tv_usec: libc::suseconds_t::from(left.subsec_micros().max(1)),
        },
    };
    // SAFETY: the handler only calls _exit (async-signal-safe); sigaction and setitimer get valid pointers.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = exit_now as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGALRM, &action, std::ptr::null_mut());
        libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut());
    }
}

/// The status [`exit_now`] exits with.
static EXIT_CODE: AtomicI32 = AtomicI32::new(3);

/// SIGALRM from [`exit_after`]'s timer: end the process at once with the verdict's status.
extern "C" fn exit_now(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(EXIT_CODE.load(Ordering::Relaxed)) }
}

/// A textfile that cannot be written is a warning on stderr: the verdict is about the directory, not about
/// the metrics file (Prometheus notices the stale `ldap_health_check_last_run_timestamp_seconds`).
fn write_textfile(log: &mut Logger, path: &Path, result: anyhow::Result<()>) {
    if let Err(e) = result {
        log.log(Level::Warning, &format!("--prometheus-textfile {}: {e:#}", path.display()));
    }
}
