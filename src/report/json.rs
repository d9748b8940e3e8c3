//! `--format json`: one JSON object per check, on one line (JSON Lines), described by `docs/json-schema.json`.
//!
//! Hand-written on purpose: the output is a fixed, small tree of strings, numbers, booleans and nulls, so a
//! ~150-line writer with correct string escaping costs nothing, where serde + serde_json would add compile
//! time and binary size to a tool that only ever writes JSON. Rendering never decides a state: everything
//! comes from the [`Report`].
//!
//! Bump [`FORMAT_VERSION`] on any incompatible change (a field removed, renamed or retyped); adding a field is
//! compatible.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::plan::Presence;
use crate::probe::certinfo::CertInfo;
use crate::probe::{Failure, Found};
use crate::verdict::{CanaryOutcome, CanaryVerdict, MapVerdict, Report, Role, ServerVerdict, State, Thresholds};

/// The version of the JSON document's shape (`format_version`).
pub const FORMAT_VERSION: u32 = 1;

/// What a check ran with, beside its report.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The one deadline the whole check ran under.
    pub deadline: Duration,
    pub thresholds: &'a Thresholds,
    /// When the check finished (wall clock).
    pub finished: SystemTime,
}

/// The JSON object for one check, as one line ending in `\n`.
pub fn render(report: &Report, cx: &Context<'_>) -> String {
    let mut o = Object::new();
    header(&mut o, report.state, cx.finished);
    o.string("summary", &report.summary());
    o.number("elapsed_seconds", report.elapsed);
    o.number("deadline_seconds", cx.deadline);
    o.raw("thresholds", &thresholds(cx.thresholds));
    o.opt_string("threshold", report.threshold.as_deref());
    o.uint("servers_probed", report.servers as u64);
    o.raw("maps", &array(report.maps.iter().map(map)));
    o.finish_line()
}

/// The JSON object for a check that could not start (no map given, no runtime): state UNKNOWN, no maps.
pub fn render_unknown(message: &str, finished: SystemTime) -> String {
    let mut o = Object::new();
    header(&mut o, State::Unknown, finished);
    o.string("summary", message);
    o.raw("elapsed_seconds", "0");
    o.raw("deadline_seconds", "null");
    o.raw("thresholds", &thresholds(&Thresholds::default()));
    o.raw("threshold", "null");
    o.uint("servers_probed", 0);
    o.raw("maps", "[]");
    o.finish_line()
}

fn header(o: &mut Object, state: State, finished: SystemTime) {
    o.uint("format_version", u64::from(FORMAT_VERSION));
    o.string("tool", env!("CARGO_PKG_NAME"));
    o.string("tool_version", env!("CARGO_PKG_VERSION"));
    o.number("timestamp", finished.duration_since(UNIX_EPOCH).unwrap_or_default());
    o.string("state", state.label());
    o.uint("exit_code", u64::from(state.code()));
}

fn thresholds(t: &Thresholds) -> String {
    let mut o = Object::new();
    o.opt_string("warning", t.warning.as_ref().map(|r| r.to_string()).as_deref());
    o.opt_string("critical", t.critical.as_ref().map(|r| r.to_string()).as_deref());
    o.finish()
}

fn map(m: &MapVerdict) -> String {
    let mut o = Object::new();
    o.string("name", &m.name);
    o.string("path", &m.path.to_string_lossy());
    o.string("location", &m.location);
    o.string("state", m.state.label());
    o.opt_string("reason", m.reason.as_deref());
    o.opt_string("base", m.base.as_deref());
    o.raw("presence", &m.presence.as_ref().map(presence).unwrap_or_else(|_| "null".to_string()));
    o.opt_string("presence_skipped", m.presence.as_ref().err().map(String::as_str));
    o.opt_number("elapsed_seconds", m.elapsed);
    o.raw("servers", &array(m.servers.iter().map(server)));
    o.raw("warnings", &array(m.warnings.iter().map(|w| string(w))));
    o.raw("canaries", &array(m.canaries.iter().map(canary)));
    o.raw("used_by", &array(m.used_by.iter().map(|u| string(u))));
    o.raw("services", &array(m.services.iter().map(service_use)));
    o.finish()
}

/// A master.cf service that opens the map: directly (in its chroot, if chrooted) or through proxymap.
fn service_use(u: &crate::map::ServiceUse) -> String {
    let mut o = Object::new();
    o.string("service", &u.service);
    o.string("daemon", &u.daemon);
    o.string("param", &u.param);
    o.boolean("chroot", u.chroot);
    o.boolean("proxy", u.proxy);
    o.finish()
}

/// A server certificate: its subject and issuer (RFC 4514), and its validity in Unix time.
fn certificate(c: &CertInfo) -> String {
    let mut o = Object::new();
    o.string("subject", &c.subject);
    o.string("issuer", &c.issuer);
    o.raw("not_before", &c.not_before.to_string());
    o.raw("not_after", &c.not_after.to_string());
    o.finish()
}

/// The presence check: the loosened query searched below `base`.
fn presence(p: &Presence) -> String {
    let mut o = Object::new();
    o.string("query", &p.query);
    o.string("filter", &p.filter);
    o.string(
        "scope",
        match p.scope {
            crate::map::Scope::Base => "base",
            crate::map::Scope::One => "one",
            crate::map::Scope::Sub => "sub",
        },
    );
    o.raw("attributes", &array(p.attrs.iter().map(|a| string(a))));
    o.finish()
}

/// What a server's search for the map found: `base` / `base_unreadable` (the base search), `entry`, `nothing`,
/// `unreadable`, `not_checked` (the presence check).
fn found(f: &Found) -> &'static str {
    match f {
        Found::Base { readable: true } => "base",
        Found::Base { readable: false } => "base_unreadable",
        Found::Entry => "entry",
        Found::Nothing => "nothing",
        Found::Unreadable => "unreadable",
        Found::NotChecked(_) => "not_checked",
    }
}

/// A canary: `outcome` is `found` (with `value`, what Postfix's lookup returns), `not_found` (550),
/// `failed` (451, with `reason`), `skipped` (Postfix never queries LDAP for this key, with `reason`) or
/// `not_run` (no usable server).
/// The most characters of a canary's value in the JSON document (a big alias or group expands to thousands of
/// values); a longer value ends in `...`.
const VALUE_CHARS: usize = 4096;

fn canary(c: &CanaryVerdict) -> String {
    let shown;
    let (outcome, value, reason) = match &c.outcome {
        CanaryOutcome::Found(v) => {
            shown = match v.char_indices().nth(VALUE_CHARS) {
                Some((end, _)) => format!("{}...", &v[..end]),
                None => v.clone(),
            };
            ("found", Some(shown.as_str()), None)
        }
        CanaryOutcome::NotFound => ("not_found", None, None),
        CanaryOutcome::Failed(why) => ("failed", None, Some(why.as_str())),
        CanaryOutcome::Skipped(why) => ("skipped", None, Some(why.as_str())),
        CanaryOutcome::NotRun => ("not_run", None, None),
    };
    let mut o = Object::new();
    o.string("key", &c.key);
    o.string("outcome", outcome);
    o.opt_string("value", value);
    o.opt_string("reason", reason);
    o.opt_number("elapsed_seconds", c.elapsed);
    o.finish()
}

fn server(s: &ServerVerdict) -> String {
    let mut o = Object::new();
    o.string("url", &s.url);
    o.string("role", role(&s.role));
    o.opt_string("address", s.address.as_deref());
    let stages = s.stages.iter().map(|st| {
        let mut so = Object::new();
        so.string("stage", st.stage.key());
        so.number("seconds", st.elapsed);
        so.finish()
    });
    o.raw("stages", &array(stages));
    o.opt_number("search_seconds", s.search);
    o.opt_string("found", s.found.as_ref().map(found));
    o.number("elapsed_seconds", s.elapsed);
    o.raw("error", &s.failure.as_ref().map(error).unwrap_or_else(|| "null".to_string()));
    o.opt_string("tls_note", s.tls_note.as_deref());
    o.raw("certificate", &s.certificate.as_ref().map(certificate).unwrap_or_else(|| "null".to_string()));
    o.opt_number("replica_lag_seconds", s.replica.as_ref().and_then(|r| r.as_ref().ok()).copied());
    o.opt_string("replica_not_compared", s.replica.as_ref().and_then(|r| r.as_ref().err()).map(String::as_str));
    o.boolean("abandoned", s.abandoned);
    o.finish()
}

/// The role's key: `decides`, `failed_over`, `standby`.
pub fn role(r: &Role) -> &'static str {
    match r {
        Role::Decides => "decides",
        Role::FailedOver => "failed_over",
        Role::Standby => "standby",
    }
}

fn error(f: &Failure) -> String {
    let mut o = Object::new();
    o.string("stage", f.stage.key());
    o.boolean("timed_out", f.timed_out);
    o.string("message", &f.message);
    o.finish()
}

/// A JSON array of already-rendered values.
fn array(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    format!("[{}]", items.join(","))
}

/// Seconds with microsecond precision (`0.004123`), the same precision as the perfdata.
fn seconds(d: Duration) -> String {
    format!("{:.6}", d.as_secs_f64())
}

/// A JSON string literal: `"`, `\` and every control character escaped (RFC 8259 section 7).
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object built member by member, in insertion order.
struct Object(String);

impl Object {
    fn new() -> Object {
        Object(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&string(key));
        self.0.push(':');
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.0.push_str(value);
    }

    fn string(&mut self, key: &str, value: &str) {
        self.raw(key, &string(value));
    }

    fn opt_string(&mut self, key: &str, value: Option<&str>) {
        self.raw(key, &value.map(string).unwrap_or_else(|| "null".to_string()));
    }

    fn number(&mut self, key: &str, value: Duration) {
        self.raw(key, &seconds(value));
    }

    fn opt_number(&mut self, key: &str, value: Option<Duration>) {
        self.raw(key, &value.map(seconds).unwrap_or_else(|| "null".to_string()));
    }

    fn uint(&mut self, key: &str, value: u64) {
        self.raw(key, &value.to_string());
    }

    fn boolean(&mut self, key: &str, value: bool) {
        self.raw(key, if value { "true" } else { "false" });
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }

    fn finish_line(self) -> String {
        let mut s = self.finish();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Stage, StageTime};

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("plain"), "\"plain\"");
        assert_eq!(string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(string("l1\nl2\r\t"), "\"l1\\nl2\\r\\t\"");
        assert_eq!(string("\u{1}\u{1f}\u{7f}"), "\"\\u0001\\u001f\\u007f\"");
        assert_eq!(string("é ✓"), "\"é ✓\"");
    }

    #[test]
    fn a_report_renders_as_one_line() {
        let report = Report {
            state: State::Critical,
            maps: vec![MapVerdict {
                name: "m.cf".into(),
                path: "/etc/postfix/m.cf".into(),
                location: "m.cf".into(),
                state: State::Critical,
                reason: Some("ldap://h:389: bind as \"x\" failed".into()),
                base: Some("dc=x".into()),
                presence: Err("none".into()),
                elapsed: Some(Duration::from_micros(2500)),
                servers: vec![ServerVerdict {
                    url: "ldap://h:389".into(),
                    role: Role::Decides,
                    address: Some("127.0.0.1:389".into()),
                    stages: vec![StageTime { stage: Stage::Connect, elapsed: Duration::from_micros(300) }],
                    search: None,
                    found: None,
                    failure: Some(Failure { stage: Stage::Bind, timed_out: false, message: "no\nway".into() }),
                    tls_note: None,
                    certificate: None,
                    replica: None,
                    elapsed: Duration::from_micros(2500),
                    abandoned: false,
                    notes: vec![],
                }],
                warnings: vec![],
                canaries: vec![CanaryVerdict {
                    key: "user@example.com".into(),
                    outcome: CanaryOutcome::Found("a,b".into()),
                    elapsed: Some(Duration::from_micros(1000)),
                }],
                used_by: vec!["virtual_alias_maps".into()],
                services: Vec::new(),
            }],
            servers: 1,
            elapsed: Duration::from_micros(4000),
            threshold: None,
        };
        let t = Thresholds { warning: Some("1".parse().unwrap()), critical: None };
        let cx = Context { deadline: Duration::from_secs(10), thresholds: &t, finished: UNIX_EPOCH };
        let out = render(&report, &cx);
        assert!(out.ends_with("}\n") && out.matches('\n').count() == 1, "{out}");
        assert!(out.starts_with("{\"format_version\":1,\"tool\":\"ldap-health-check\","), "{out}");
        assert!(out.contains("\"state\":\"CRITICAL\",\"exit_code\":2"), "{out}");
        assert!(out.contains("\"thresholds\":{\"warning\":\"1\",\"critical\":null}"), "{out}");
        assert!(out.contains("\"stages\":[{\"stage\":\"connect\",\"seconds\":0.000300}]"), "{out}");
        assert!(out.contains("\"error\":{\"stage\":\"bind\",\"timed_out\":false,\"message\":\"no\\nway\"}"), "{out}");
        assert!(out.contains("\"deadline_seconds\":10.000000"), "{out}");
        let canary = r#""canaries":[{"key":"user@example.com","outcome":"found","value":"a,b","reason":null,"elapsed_seconds":0.001000}],"used_by":["virtual_alias_maps"]"#;
        assert!(out.contains(canary), "{out}");
        let unknown = render_unknown("no map given", UNIX_EPOCH);
        assert!(unknown.contains("\"state\":\"UNKNOWN\",\"exit_code\":3,\"summary\":\"no map given\""), "{unknown}");
    }
}
