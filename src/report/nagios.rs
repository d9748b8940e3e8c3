//! The Nagios plugin output (first line with perfdata, long output with -v) and the
//! old daemon's `DEBUG:` lines. Rendering never decides a state.

use std::fmt::Write as _;
use std::time::Duration;

use crate::probe::Stage;
use crate::verdict::{CanaryOutcome, CanaryVerdict, MapVerdict, Report, Role, ServerVerdict, State, Thresholds};

/// The longest first line written, in bytes: Nagios keeps 8 KB of plugin output, some agents 4 KB (NRPE 3's
/// default `max_output_length` is 4096), and the perfdata after the summary must survive.
pub const FIRST_LINE_MAX: usize = 4000;

/// The plugin output: `LDAP STATE - summary|perfdata`, then with `verbose >= 1` one line per map and server.
/// The first line stays under [`FIRST_LINE_MAX`] bytes: a summary too long for it is cut (`...`), never the
/// perfdata.
pub fn render(report: &Report, thresholds: &Thresholds, verbose: u8) -> String {
    let head = format!("LDAP {} - ", report.state);
    let perf = perfdata(report, thresholds);
    let room = FIRST_LINE_MAX.saturating_sub(head.len() + perf.len() + 2).max(80);
    let mut out = format!("{head}{}|{perf}\n", cut(&one_line(&report.summary()), room));
    if verbose >= 1 {
        for map in &report.maps {
            long_map(&mut out, map, verbose);
        }
    }
    out
}

/// Perfdata: `time=0.004123s;W;C;0` then each map's time (`U` when no server answered for it).
pub fn perfdata(report: &Report, thresholds: &Thresholds) -> String {
    let range = |r: &Option<crate::range::Range>| r.as_ref().map(|r| r.to_string()).unwrap_or_default();
    let mut out = format!(
        "time={:.6}s;{};{};0",
        report.elapsed.as_secs_f64(),
        range(&thresholds.warning),
        range(&thresholds.critical)
    );
    for map in &report.maps {
        let value = map.elapsed.map(|d| format!("{:.6}s", d.as_secs_f64())).unwrap_or_else(|| "U".to_string());
        let _ = write!(out, " {}={};;;0", label(&map.name), value);
    }
    out
}

/// A perfdata label: quoted when it holds anything but `[A-Za-z0-9_.-]`; `=` is replaced, `'` doubled.
fn label(name: &str) -> String {
    let clean = name.replace('=', "_");
    if clean.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        clean
    } else {
        format!("'{}'", clean.replace('\'', "''"))
    }
}

/// Nagios reads one line and treats `|` as the perfdata separator: keep both out of messages (newlines become
/// spaces, other control characters are escaped, `|` (an OR in a filter) is shown as `¦`).
fn one_line(s: &str) -> String {
    crate::reason::one_line(&s.replace(['\n', '\r'], " ").replace('|', "\u{a6}"))
}

/// `s` cut to at most `max` bytes (at a character boundary), with `...` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn long_map(out: &mut String, map: &MapVerdict, verbose: u8) {
    let _ = write!(out, "{}: {}", map.name, map.state);
    match (&map.reason, map.state) {
        (Some(r), _) => {
            let _ = write!(out, ": {}", one_line(r));
        }
        (None, State::Ok) => {
            if let (Some(d), Some(base)) = (map.elapsed, &map.base) {
                let what = if map.presence.is_ok() { "entries found under" } else { "base" };
                let found = if map.presence.is_ok() { "" } else { " found" };
                let _ = write!(out, " in {}, {what} {base}{found}", ms(d));
            }
        }
        _ => {}
    }
    out.push('\n');
    if !map.used_by.is_empty() {
        let _ = writeln!(out, "  used by: {}", map.used_by.join(", "));
    }
    if !map.services.is_empty() {
        let services: Vec<String> = map
            .services
            .iter()
            .map(|u| {
                let how = match (u.chroot, u.proxy) {
                    (_, true) => "through proxymap",
                    (true, false) => "directly, chrooted",
                    (false, false) => "directly",
                };
                format!("{} ({}, {how})", u.daemon, u.service)
            })
            .collect();
        let _ = writeln!(out, "  opened by: {}", services.join(", "));
    }
    match &map.presence {
        Ok(p) => {
            let base = map.base.as_deref().unwrap_or("");
            let with = if p.attrs.is_empty() { String::new() } else { format!(", with {}", p.attrs.join(" or ")) };
            let _ = writeln!(out, "  presence: {} under {base} ({}){with}", one_line(&p.query), scope_word(p.scope));
        }
        Err(why) if map.base.is_some() => {
            let _ = writeln!(out, "  presence: not checked: {}", one_line(why));
        }
        Err(_) => {}
    }
    for server in &map.servers {
        long_server(out, server);
    }
    for c in &map.canaries {
        long_canary(out, c);
    }
    if verbose >= 2 {
        for w in &map.warnings {
            let _ = writeln!(out, "  postfix would warn: {}", one_line(w));
        }
    }
}

/// `  canary KEY: found user@example.com (1.2 ms)`: what Postfix's lookup returns on the deciding server.
fn long_canary(out: &mut String, c: &CanaryVerdict) {
    let what = match &c.outcome {
        // A big alias or group can expand to thousands of values: keep the line readable.
        CanaryOutcome::Found(v) if v.chars().count() > 200 => {
            let head: String = v.chars().take(200).collect();
            format!("found {head}... ({} values)", v.split(',').count())
        }
        CanaryOutcome::Found(v) => format!("found {v}"),
        CanaryOutcome::NotFound => "not found (Postfix: 550 User unknown)".to_string(),
        CanaryOutcome::Failed(why) => format!("lookup error: {why} (Postfix: 451 temporary lookup failure)"),
        CanaryOutcome::Skipped(why) => format!("never looked up: {why}"),
        CanaryOutcome::NotRun => "not looked up: no usable server".to_string(),
    };
    let time = c.elapsed.map(|d| format!(" ({})", ms(d))).unwrap_or_default();
    let _ = writeln!(out, "  canary {}: {}{time}", one_line(&c.key), one_line(&what));
}

fn long_server(out: &mut String, s: &ServerVerdict) {
    let role = match s.role {
        Role::Decides => "",
        Role::FailedOver => " [unreachable]",
        Role::Standby => " [standby]",
    };
    let mut parts: Vec<String> =
        s.stages.iter().map(|st| format!("{} {}", stage_word(st.stage), ms(st.elapsed))).collect();
    if let Some(d) = s.search {
        parts.push(format!("search {}", ms(d)));
    }
    if let Some(f) = &s.failure {
        parts.push(f.message.clone());
    }
    if s.abandoned {
        parts.push("not needed: Postfix uses an earlier server".to_string());
    }
    parts.extend(s.notes.iter().cloned());
    let _ = write!(out, "  {}{}: {}", s.url, role, one_line(&parts.join(", ")));
    if let Some(addr) = &s.address {
        let _ = write!(out, " (address {addr})");
    }
    if let Some(note) = &s.tls_note {
        let _ = write!(out, "; {}", one_line(note));
    }
    match &s.replica {
        Some(Ok(lag)) => {
            let _ =
                write!(out, "; data {} behind the freshest server (contextCSN)", crate::reason::span(lag.as_secs()));
        }
        Some(Err(why)) => {
            let _ = write!(out, "; replica {}", one_line(why));
        }
        None => {}
    }
    if let Some(c) = &s.certificate {
        let (subject, issuer) = (one_line(&c.subject), one_line(&c.issuer));
        let _ =
            write!(out, "; certificate {subject} (issuer {issuer}) valid until {}", crate::reason::utc(c.not_after));
    }
    out.push('\n');
}

/// A stage as the long output names it: its key, with the protocol acronyms in capitals (`STARTTLS 0.3 ms`).
fn stage_word(stage: Stage) -> String {
    match stage {
        Stage::StartTls | Stage::Tls => stage.key().to_ascii_uppercase(),
        _ => stage.key().to_string(),
    }
}

/// A search scope as the long output names it.
pub fn scope_word(scope: crate::map::Scope) -> &'static str {
    match scope {
        crate::map::Scope::Base => "base",
        crate::map::Scope::One => "one level",
        crate::map::Scope::Sub => "subtree",
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The old daemon's line, for each map whose base search succeeded: `DEBUG: LDAP search success: dn=BASE`.
pub fn debug_lines(report: &Report) -> String {
    let mut out = String::new();
    for map in &report.maps {
        if map.state != State::Critical && map.state != State::Unknown {
            if let Some(base) = &map.base {
                let _ = writeln!(out, "DEBUG: LDAP search success: dn={base}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_quoted_only_when_needed() {
        assert_eq!(label("ldap-users.cf"), "ldap-users.cf");
        assert_eq!(label("my map.cf"), "'my map.cf'");
        assert_eq!(label("it's=x"), "'it''s_x'");
    }

    #[test]
    fn first_line_stays_one_line() {
        assert_eq!(one_line("a\nb|c"), "a b\u{a6}c");
        assert_eq!(one_line("a\x1b[2Jb\0"), "a\\u{1b}[2Jb\\u{0}");
    }

    fn map(name: &str, state: State, reason: Option<String>) -> MapVerdict {
        MapVerdict {
            name: name.into(),
            location: name.into(),
            path: format!("/etc/postfix/{name}").into(),
            state,
            reason,
            base: Some("dc=x".into()),
            presence: Err("none".into()),
            elapsed: Some(Duration::from_micros(1500)),
            servers: vec![],
            warnings: vec![],
            canaries: vec![],
            used_by: vec![],
            services: Vec::new(),
        }
    }

    #[test]
    fn a_long_summary_is_cut_and_the_perfdata_kept() {
        let reason = format!("bind failed: invalid credentials (49): {}", "x".repeat(200));
        let maps: Vec<_> = (0..100).map(|i| map(&format!("m{i}.cf"), State::Critical, Some(reason.clone()))).collect();
        let report =
            Report { state: State::Critical, maps, servers: 100, elapsed: Duration::from_millis(3), threshold: None };
        let out = render(&report, &Thresholds::default(), 0);
        let line = out.lines().next().unwrap();
        assert!(line.len() <= FIRST_LINE_MAX, "{} bytes", line.len());
        let (summary, perf) = line.split_once('|').unwrap();
        assert!(summary.starts_with("LDAP CRITICAL - m0.cf: bind failed") && summary.ends_with("..."), "{summary}");
        assert_eq!(perf, perfdata(&report, &Thresholds::default()));
        assert!(perf.ends_with(" m99.cf=0.001500s;;;0"));
    }

    #[test]
    fn perfdata_has_time_thresholds_and_maps() {
        let report = Report {
            state: State::Ok,
            maps: vec![map("users.cf", State::Ok, None)],
            servers: 1,
            elapsed: Duration::from_micros(4123),
            threshold: None,
        };
        let t = Thresholds { warning: Some("1".parse().unwrap()), critical: Some("~:2".parse().unwrap()) };
        assert_eq!(perfdata(&report, &t), "time=0.004123s;1;~:2;0 users.cf=0.001500s;;;0");
        assert_eq!(
            render(&report, &Thresholds::default(), 0),
            "LDAP OK - 1 map, 1 server in 0.004 s|time=0.004123s;;;0 users.cf=0.001500s;;;0\n"
        );
        assert_eq!(debug_lines(&report), "DEBUG: LDAP search success: dn=dc=x\n");
    }
}
