//! `--policy`: a Postfix SMTPD access policy server that closes the 550 window. Run by spawn(8), one process per
//! smtpd process, on stdin/stdout, until EOF. For each RCPT request it asks whether the directory can be trusted
//! right now for the recipient maps ([`trust`]): when it cannot (a canary not found, a lookup error), it answers
//! `DEFER_IF_REJECT 4.3.0 ...`, which Postfix applies only to a reject that would follow (smtpd_check.c:
//! `smtpd_check_reject()` turns the implicit `550 5.1.1 User unknown` of `smtpd_reject_unlisted_recipient` into
//! 450; a 451 stays 451, a valid recipient still gets 250). Otherwise, and for anything it cannot judge, `DUNNO`.
//! It never rejects and never accepts anything itself, and never exits before EOF (smtpd would answer every
//! recipient `451 4.3.5` until it reconnects).
//!
//! stdout and stderr are smtpd's socket: nothing but replies is written there; diagnostics go to syslog.

pub mod protocol;
pub mod trust;

use std::io::{BufReader, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::Cli;
use crate::deadline::Deadline;
use crate::logging::{Level, Logger};
use crate::map::Source;
use protocol::{read_request, write_reply, Request};
use trust::{Guard, Judgement};

/// The Postfix parameters whose maps decide whether a recipient is known (`smtpd_reject_unlisted_recipient`).
pub const RECIPIENT_MAPS: &[&str] =
    &["virtual_mailbox_maps", "virtual_alias_maps", "relay_recipient_maps", "local_recipient_maps"];

/// The policy's deadline per request when `-t` is not given: far under smtpd's policy timeout (100 s by default,
/// 10 s in the line the README gives), and over any healthy directory's answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The reply that defers a recipient Postfix would reject (the text reaches the SMTP client: nothing internal).
pub const DEFER: &str = "DEFER_IF_REJECT 4.3.0 Recipient directory check failed, try again later";

/// Whether a map found by discovery validates recipients (`virtual_mailbox_maps`, or a master.cf override of
/// one, `smtp/inet/virtual_mailbox_maps`).
fn validates_recipients(source: &Source) -> bool {
    source.used_by.iter().any(|u| RECIPIENT_MAPS.contains(&u.rsplit('/').next().unwrap_or(u)))
}

/// Serve policy requests on stdin/stdout until EOF; exit 0.
pub fn run(cli: &Cli) -> ExitCode {
    let mut log = Logger::syslog_only(cli.verbose);
    let rt = match crate::probe::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            log.log(Level::Err, &format!("--policy: {e:#}: answering DUNNO to every request"));
            serve(&mut log, |_, _| "DUNNO".to_string());
            return ExitCode::SUCCESS;
        }
    };
    let mut guard = match guard(cli, &mut log) {
        Ok(guard) => guard,
        Err(e) => {
            log.log(Level::Err, &format!("--policy: {e}: answering DUNNO to every request"));
            serve(&mut log, |_, _| "DUNNO".to_string());
            return ExitCode::SUCCESS;
        }
    };
    let timeout = cli.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut down_logged = None;
    serve(&mut log, |log, request| {
        if !wants_judgement(log, request) {
            return "DUNNO".to_string();
        }
        let deadline = Deadline::for_maps(Instant::now(), Some(timeout), []);
        let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(guard.judge(&deadline))));
        match judged {
            Ok(judgement) => reply(log, request, &judgement, &mut down_logged),
            Err(panic) => {
                // Never an exit before EOF: smtpd would answer 451 until it reconnects.
                guard.forget_connections();
                log.log(Level::Err, &format!("--policy: internal error ({}): DUNNO", crate::panic_text(&*panic)));
                "DUNNO".to_string()
            }
        }
    });
    // A hung name lookup may still hold a blocking thread: do not wait for it.
    rt.shutdown_background();
    ExitCode::SUCCESS
}

/// The recipient maps to guard: `-f` maps, or those discovered maps that validate recipients.
fn guard(cli: &Cli, log: &mut Logger) -> Result<Guard, String> {
    let start = Instant::now();
    let deadline = Deadline::for_maps(start, cli.timeout, []);
    let targets = crate::check::targets(cli, &deadline)?;
    let discovered = cli.conffile.is_empty();
    let mut maps = Vec::new();
    for source in targets.maps.iter().filter(|s| !discovered || validates_recipients(s)) {
        match source.load(deadline.until()) {
            Ok(map) => maps.push(map),
            Err(e) => log.log(Level::Warning, &format!("--policy: {e}: not guarded")),
        }
    }
    if maps.is_empty() && !discovered {
        return Err("none of the maps given can be read".to_string());
    }
    if maps.is_empty() {
        return Err("no map validates recipients (virtual_mailbox_maps, virtual_alias_maps, relay_recipient_maps, \
                    local_recipient_maps)"
            .to_string());
    }
    let config_dir = targets.postfix_config.clone();
    let mut table = |t: &str, k: &str| crate::postfix::postmap_table_lookup(Some(&config_dir), t, k, &deadline);
    let (guard, warnings) = Guard::new(maps, cli.policy_cache, deadline.until(), &mut table);
    for w in warnings {
        log.log(Level::Warning, &format!("--policy: {w}"));
    }
    Ok(guard)
}

/// Whether `request` is one to judge: a well-formed policy request at the RCPT stage. Anything else is answered
/// DUNNO (with a warning when it is not a policy request at all).
fn wants_judgement(log: &mut Logger, request: &Request) -> bool {
    if let Some(why) = &request.malformed {
        log.log(Level::Warning, &format!("--policy: a request that cannot be read ({why}): DUNNO"));
        return false;
    }
    if request.get("request") != Some("smtpd_access_policy") {
        let what = request.get("request").unwrap_or("(none)");
        log.log(Level::Warning, &format!("--policy: not an access policy request (request={what}): DUNNO"));
        return false;
    }
    request.get("protocol_state") == Some("RCPT")
}

/// The reply for a judged request; a deferral is logged with its reasons (the recipient only with -vv), a
/// directory that is down once until it is up again or fails for another reason (`down_logged`: what was said).
fn reply(log: &mut Logger, request: &Request, judgement: &Judgement, down_logged: &mut Option<Vec<String>>) -> String {
    if !matches!(judgement, Judgement::Down(_)) {
        *down_logged = None;
    }
    match judgement {
        Judgement::Trusted => "DUNNO".to_string(),
        Judgement::Down(why) => {
            if down_logged.as_ref() != Some(why) {
                log.log(Level::Info, &format!("--policy: DUNNO, Postfix's own lookups fail (451): {}", why.join("; ")));
                *down_logged = Some(why.clone());
            }
            "DUNNO".to_string()
        }
        Judgement::Untrusted(why) => {
            let recipient = request.get("recipient").unwrap_or("");
            log.log(Level::Debug, &format!("--policy: deferring RCPT {recipient}"));
            log.log(Level::Warning, &format!("--policy: DEFER_IF_REJECT: {}", why.join("; ")));
            DEFER.to_string()
        }
    }
}

/// Read requests and write one reply each until EOF (or until smtpd cannot be written to).
fn serve(log: &mut Logger, mut reply: impl FnMut(&mut Logger, &Request) -> String) {
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = std::io::stdout().lock();
    while let Some(request) = read_request(&mut input) {
        let action = reply(log, &request);
        if write_reply(&mut output, &action).is_err() {
            log.log(Level::Info, "--policy: smtpd closed the connection");
            return;
        }
    }
    let _ = output.flush();
}

/// `--policy --self-test`: judge once, as for an RCPT now, and say what the answer would be and why (stdout, for
/// a person); exit 0 for DUNNO, 1 for DEFER_IF_REJECT, 3 when the maps cannot be guarded.
pub fn self_test(cli: &Cli) -> ExitCode {
    let mut log = Logger::new(cli.verbose, false);
    let outcome = crate::probe::runtime().map_err(|e| format!("{e:#}")).and_then(|rt| {
        let mut guard = guard(cli, &mut log)?;
        let deadline = Deadline::for_maps(Instant::now(), Some(cli.timeout.unwrap_or(DEFAULT_TIMEOUT)), []);
        let judgement = rt.block_on(guard.judge(&deadline));
        rt.shutdown_background();
        Ok((guard.describe(), judgement))
    });
    let (maps, judgement) = match outcome {
        Ok(done) => done,
        Err(e) => {
            crate::report::print(&format!("ldap-health-check --policy: cannot guard the recipient maps: {e}\n"));
            return ExitCode::from(3);
        }
    };
    let mut out = String::from("recipient maps guarded:\n");
    for (name, canaries, presence) in maps {
        // With canaries, the presence check is not made: a canary found is an entry it would find.
        let what = match (canaries, presence) {
            (0, true) => "the presence check (no canary)".to_string(),
            (0, false) => "the bind only (no canary, health_check_presence = no)".to_string(),
            (n, _) => format!("{n} canar{}", if n == 1 { "y" } else { "ies" }),
        };
        out.push_str(&format!("  {name}: {what}\n"));
    }
    let (action, why, code) = match &judgement {
        Judgement::Trusted => ("DUNNO", "the directory answers as it should".to_string(), 0),
        Judgement::Down(why) => {
            ("DUNNO", format!("Postfix's own lookups fail (it answers 451): {}", why.join("; ")), 0)
        }
        Judgement::Untrusted(why) => (DEFER, why.join("; "), 1),
    };
    out.push_str(&format!("an RCPT now gets: action={action}\n  because: {why}\n"));
    crate::report::print(&out);
    ExitCode::from(code)
}
