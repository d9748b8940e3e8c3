//! ldap-health-check: check the LDAP directory behind Postfix's `ldap_table(5)` maps the way Postfix uses it.
//!
//! The pipeline, one module per stage: [`cli`] -> [`config`] (map files) -> [`plan`] (distinct connections)
//! -> [`probe`] (every server at once, one deadline; [`tls`] settings, [`starttls`] by hand) -> [`verdict`]
//! (Postfix's failover model, thresholds) -> [`output`] (Nagios text), [`json`] (`--format json`),
//! [`prometheus`] (textfile) and [`logging`] (stderr/journal, syslog). [`check`] runs the pipeline once or in a
//! loop. [`discover`] finds the maps in Postfix's main.cf/master.cf; [`lookup`] looks keys up as Postfix's
//! dict_ldap does (canaries in the probe, and [`query`] for `--query`), folding them as Postfix does
//! ([`casefold`]); [`postfix`] runs Postfix's postconf and postmap for both, within the deadline.

pub mod casefold;
pub mod certinfo;
pub mod check;
pub mod cli;
pub mod config;
pub mod discover;
pub mod json;
pub mod logging;
pub mod lookup;
pub mod output;
pub mod plan;
pub mod postfix;
pub mod probe;
pub mod prometheus;
pub mod query;
pub mod range;
pub mod starttls;
pub mod tls;
pub mod verdict;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

/// Parse the command line and run. Usage errors exit 3 (UNKNOWN), not clap's 2, which Nagios reads as CRITICAL.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    match cli::Cli::try_parse_from(args) {
        Ok(cli) => check::run(&cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One clear line on stdout for the monitoring system, the hint on stderr for a person.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            let line = format!("LDAP UNKNOWN - invalid arguments: {first}");
            check::print(&format!("{line}\n"));
            // Under systemd stdout may go nowhere: the journal gets the reason at priority err.
            let mut log = logging::Logger::new(0, false);
            log.verdict(logging::Level::Err, &line);
            if !log.journal() {
                check::print_stderr(
                    "Usage: ldap-health-check [--once] -f MAP.cf [OPTIONS]; try 'ldap-health-check --help'\n",
                );
            }
            ExitCode::from(verdict::State::Unknown.code())
        }
    }
}
