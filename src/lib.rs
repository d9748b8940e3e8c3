//! ldap-health-check: check the LDAP directory behind Postfix's `ldap_table(5)` maps the way Postfix uses it.
//!
//! The folders are the pipeline, and data flows one way, down this list:
//! [`cli`] (options, environment defaults) -> `map` (ldap_table(5) as Postfix reads it; `discover` finds the
//! maps in main.cf and master.cf) -> `plan` (distinct connections, canaries) -> `probe` (every server at
//! once, under one `deadline`; canaries through `lookup`, Postfix's dict_ldap for one key) -> `verdict`
//! (Postfix's failover model, thresholds) -> `report` (Nagios, JSON, Prometheus) and `logging`.
//! `check` runs the pipeline once or in a loop; `query` serves `--query`. Beside them: `reason` (errors in an
//! admin's words), `postfix` (Postfix's postconf and postmap, under the deadline), `casefold`, `range`.

pub mod cli;
pub mod map;

mod casefold;
mod check;
mod deadline;
mod discover;
mod file;
mod logging;
mod lookup;
mod plan;
mod policy;
mod postfix;
mod probe;
mod query;
mod range;
mod reason;
mod report;
mod verdict;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;

/// Parse the command line and run a check or a query. Usage errors exit 3 (UNKNOWN), not clap's 2, which Nagios
/// reads as CRITICAL. A panic, whatever its cause, is one UNKNOWN line too (exit 3), never a backtrace: panics
/// are caught (the release build unwinds), those of one server's probe as that server's failure.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    std::panic::set_hook(Box::new(|_| {}));
    // One malloc arena: a check's few threads (a file read, a name lookup) would each make a new one (an mmap of
    // 128 MB reserved, page faults) for a few allocations.
    // SAFETY: mallopt only changes a malloc parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let args: Vec<OsString> = args.into_iter().collect();
    match std::panic::catch_unwind(move || run(args)) {
        Ok(code) => code,
        Err(panic) => {
            report::print(&format!("LDAP UNKNOWN - internal error: {}\n", panic_text(&*panic)));
            ExitCode::from(verdict::State::Unknown.code())
        }
    }
}

/// What a caught panic said.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    reason::server_text(&text)
}

fn run(args: Vec<OsString>) -> ExitCode {
    match cli::Cli::parse_args(args) {
        Ok(cli) if cli.policy && cli.self_test => policy::self_test(&cli),
        Ok(cli) if cli.policy => policy::run(&cli),
        Ok(cli) => match &cli.query {
            Some(key) => query_one(&cli, key),
            None => check::run(&cli),
        },
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e),
    }
}

/// `--query KEY -f MAP`: one map, looked up as `postmap -q` does.
fn query_one(cli: &cli::Cli, key: &std::ffi::OsStr) -> ExitCode {
    if cli.conffile.len() != 1 {
        report::print_stderr("ldap-health-check: --query KEY needs exactly one map: --query KEY -f FILE\n");
        return ExitCode::from(verdict::State::Unknown.code());
    }
    query::run(&cli.conffile[0], key, cli.timeout, cli.postfix_config.as_deref(), cli.verbose)
}

/// One clear line on stdout for the monitoring system, the hint on stderr for a person; exit 3.
fn usage_error(e: &clap::Error) -> ExitCode {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
    let line = format!("LDAP UNKNOWN - invalid arguments: {first}");
    report::print(&format!("{line}\n"));
    check::exit_after(verdict::State::Unknown.code(), std::time::Instant::now());
    // Under systemd stdout may go nowhere: the journal gets the reason at priority err.
    let mut log = logging::Logger::new(0, false);
    log.verdict(logging::Level::Err, &line);
    if !log.journal() {
        report::print_stderr("Usage: ldap-health-check [--once] -f MAP.cf [OPTIONS]; try 'ldap-health-check --help'\n");
    }
    ExitCode::from(verdict::State::Unknown.code())
}
