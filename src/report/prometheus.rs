//! `--prometheus-textfile PATH`: the check's result in the Prometheus text exposition format, for
//! node_exporter's textfile collector (`--collector.textfile.directory`), written atomically after every check.
//!
//! Metrics (label `map` is the map path as given, which is unique; `server` is the server URL):
//! - `ldap_health_check_up{map}`: 1 when Postfix can use the map (state OK or WARNING), 0 when it cannot
//!   (CRITICAL or UNKNOWN);
//! - `ldap_health_check_map_status{map}`: the map's state as a Nagios code (0 OK .. 3 UNKNOWN);
//! - `ldap_health_check_server_up{map,server}`: 1 when the server completed every stage for the map (connect,
//!   STARTTLS/TLS, bind, the search of the map's base), whatever its role, else 0;
//! - `ldap_health_check_response_seconds{map,server}`: that server's time for the map (connect to the end of the
//!   map's search), only for servers that completed;
//! - `ldap_health_check_cert_expiry_timestamp_seconds{map,server}`: the notAfter of each TLS server's certificate;
//! - `ldap_health_check_replica_lag_seconds{map,server}`: maps with several servers, how far each one's data
//!   lags the freshest (contextCSN);
//! - `ldap_health_check_build_info{version}` (always 1);
//! - `ldap_health_check_duration_seconds`, `ldap_health_check_exit_status` (0..3), and
//!   `ldap_health_check_last_run_timestamp_seconds` for the whole check;
//! - `ldap_health_check_last_success_timestamp_seconds`: when a check last found the directory usable
//!   (exit status 0 or 1). A one-shot probe keeps no state, so a failing check carries the value over from the
//!   file it replaces; the sample is absent until a first check succeeds.
//!
//! A server listed twice in one map (a load balancer, as Postfix 3.12's manual suggests) is reported once, by
//! its first position: two samples with the same labels would make node_exporter reject the whole file.
//! Rendering never decides a state: everything comes from the [`Report`].

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::verdict::{MapVerdict, Report, State};

const LAST_SUCCESS: &str = "ldap_health_check_last_success_timestamp_seconds";

/// The textfile for one check. `previous_success` is the last-success time read from the file it replaces.
pub fn render(report: &Report, finished: SystemTime, previous_success: Option<f64>) -> String {
    render_parts(report.state, report.elapsed, &report.maps, finished, previous_success)
}

/// The textfile for a check of `maps` that ended in `state` after `elapsed` (no maps: a check that could not start).
pub fn render_parts(
    state: State,
    elapsed: Duration,
    maps: &[MapVerdict],
    finished: SystemTime,
    previous_success: Option<f64>,
) -> String {
    let now = finished.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let mut out = String::new();
    map_families(&mut out, maps);
    family(&mut out, "ldap_health_check_duration_seconds", "Wall time of the whole check.");
    let _ = writeln!(out, "ldap_health_check_duration_seconds {:.6}", elapsed.as_secs_f64());
    family(
        &mut out,
        "ldap_health_check_build_info",
        "The version of ldap-health-check that wrote this file (always 1).",
    );
    let _ = writeln!(out, "ldap_health_check_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    family(
        &mut out,
        "ldap_health_check_exit_status",
        "The check's exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    );
    let _ = writeln!(out, "ldap_health_check_exit_status {}", state.code());
    family(&mut out, "ldap_health_check_last_run_timestamp_seconds", "When the last check finished, in Unix time.");
    let _ = writeln!(out, "ldap_health_check_last_run_timestamp_seconds {now:.3}");
    let last_success = if matches!(state, State::Ok | State::Warning) { Some(now) } else { previous_success };
    if let Some(t) = last_success {
        family(
            &mut out,
            LAST_SUCCESS,
            "When a check last found the directory usable (exit status 0 or 1), in Unix time.",
        );
        let _ = writeln!(out, "{LAST_SUCCESS} {t:.3}");
    }
    out
}

fn map_label(m: &MapVerdict) -> String {
    format!("map=\"{}\"", label_value(&m.path.to_string_lossy()))
}

/// The families with a sample per map, and per map and server.
fn map_families(out: &mut String, maps: &[MapVerdict]) {
    family(
        out,
        "ldap_health_check_up",
        "Whether Postfix can use the map: 1 when OK or WARNING, 0 when CRITICAL or UNKNOWN.",
    );
    for m in maps {
        let up = u8::from(matches!(m.state, State::Ok | State::Warning));
        let _ = writeln!(out, "ldap_health_check_up{{{}}} {up}", map_label(m));
    }
    family(out, "ldap_health_check_map_status", "The map's state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
    for m in maps {
        let _ = writeln!(out, "ldap_health_check_map_status{{{}}} {}", map_label(m), m.state.code());
    }
    family(
        out,
        "ldap_health_check_server_up",
        "Whether the server completed every stage for the map (connect, STARTTLS/TLS, bind, search): 1 or 0.",
    );
    let mut response = String::new();
    for m in maps {
        let mut seen = HashSet::new();
        // A server not waited for (Postfix uses an earlier one) was not measured: no sample.
        for s in m.servers.iter().filter(|s| !s.abandoned && seen.insert(s.url.as_str())) {
            let labels = format!("{},server=\"{}\"", map_label(m), label_value(&s.url));
            let _ = writeln!(out, "ldap_health_check_server_up{{{labels}}} {}", u8::from(s.failure.is_none()));
            if s.failure.is_none() {
                let _ =
                    writeln!(response, "ldap_health_check_response_seconds{{{labels}}} {:.6}", s.elapsed.as_secs_f64());
            }
        }
    }
    family(
        out,
        "ldap_health_check_response_seconds",
        "Time the server took for the map, from connect to the end of the map's search (servers that completed).",
    );
    out.push_str(&response);
    per_server(
        out,
        maps,
        "ldap_health_check_replica_lag_seconds",
        "How far the server's data lags the freshest server of the map, by contextCSN (maps with several servers).",
        |s| s.replica.as_ref().and_then(|r| r.as_ref().ok()).map(|lag| format!("{:.3}", lag.as_secs_f64())),
    );
    per_server(
        out,
        maps,
        "ldap_health_check_cert_expiry_timestamp_seconds",
        "When the server's certificate expires (notAfter), in Unix time (TLS servers, standbys included).",
        |s| s.certificate.as_ref().map(|c| c.not_after.to_string()),
    );
}

/// A family with one sample per map and server (each server once per map, by its first position), for the
/// servers `value` gives a value for.
fn per_server(
    out: &mut String,
    maps: &[MapVerdict],
    name: &str,
    help: &str,
    value: impl Fn(&crate::verdict::ServerVerdict) -> Option<String>,
) {
    family(out, name, help);
    for m in maps {
        let mut seen = HashSet::new();
        for s in m.servers.iter().filter(|s| seen.insert(s.url.as_str())) {
            if let Some(v) = value(s) {
                let labels = format!("{},server=\"{}\"", map_label(m), label_value(&s.url));
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    }
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A label value as the exposition format wants it: `\` as `\\`, `"` as `\"`, a newline as `\n`.
pub fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The last-success time in a textfile this tool wrote before, if any.
pub fn previous_success(text: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(LAST_SUCCESS)?.strip_prefix(' ')?;
        value.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0)
    })
}

/// Write the textfile for `report` to `path`, carrying the last-success time over from the file it replaces.
pub fn write(path: &Path, report: &Report, finished: SystemTime) -> anyhow::Result<()> {
    let text = render(report, finished, previous_file_success(path));
    write_atomically(path, &crate::map::secret::scrub(&text)).context("cannot write")
}

/// Write the textfile for a check that could not start (exit status 3, no maps): `ldap_health_check_up` has
/// no map to describe, so `ldap_health_check_exit_status 3` is what an alert sees (alert on `>= 2`).
pub fn write_unknown(path: &Path, finished: SystemTime) -> anyhow::Result<()> {
    let text = render_parts(State::Unknown, Duration::ZERO, &[], finished, previous_file_success(path));
    write_atomically(path, &text).context("cannot write")
}

/// The last-success time in the file at `path`, read as every file is ([`crate::file`]: only a regular file, in
/// a bounded time).
fn previous_file_success(path: &Path) -> Option<f64> {
    let text = crate::file::read(path, Instant::now() + READ_LIMIT).ok()?;
    previous_success(&String::from_utf8_lossy(&text))
}

/// How long reading the file being replaced may take: it comes after the verdict.
const READ_LIMIT: Duration = Duration::from_millis(50);

/// Replace `path` with `text` atomically: write a temporary file in the same directory (`.NAME.PID.NANOS.tmp`,
/// which the textfile collector ignores: it reads only `*.prom`), sync it, give it mode 0644 whatever the umask
/// (the collector runs as another user; the file holds no secret), and rename it over `path`. On failure the
/// temporary file is removed and `path` is left as it was. Only a regular file is replaced: anything else at
/// `path` (a device, a FIFO, a directory, a symbolic link) is an error and is left as it is.
///
/// The directory may be writable by others (a group shared with node_exporter): the temporary file is created
/// with `O_CREAT|O_EXCL`, which fails on any existing file or symlink instead of following it, under a name
/// that is not known in advance.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    if let Some(what) = not_replaceable(path) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: not replaced")));
    }
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?
        .to_string_lossy();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let tmp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let result = (|| {
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What `path` is, when it exists and is not a regular file (`/dev/null` as a textfile must stay a device).
fn not_replaceable(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let t = fs::symlink_metadata(path).ok()?.file_type();
    let what = if t.is_file() {
        return None;
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else {
        "not a regular file"
    };
    Some(format!("it is {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Role, ServerVerdict};

    fn server(url: &str, ok: bool) -> ServerVerdict {
        ServerVerdict {
            url: url.into(),
            role: Role::Decides,
            address: None,
            stages: vec![],
            search: None,
            found: None,
            failure: (!ok).then(|| crate::probe::Failure {
                stage: crate::probe::Stage::Connect,
                timed_out: false,
                message: "refused".into(),
            }),
            tls_note: None,
            certificate: None,
            replica: None,
            elapsed: Duration::from_millis(2),
            abandoned: false,
            notes: vec![],
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(label_value("l1\nl2"), "l1\\nl2");
    }

    #[test]
    fn last_success_is_set_when_usable_and_carried_over_otherwise() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ok = render_parts(State::Warning, Duration::ZERO, &[], at, Some(5.0));
        assert!(ok.contains("\nldap_health_check_last_success_timestamp_seconds 1700000000.000\n"), "{ok}");
        assert_eq!(previous_success(&ok), Some(1_700_000_000.0));
        let bad = render_parts(State::Critical, Duration::ZERO, &[], at, Some(5.0));
        assert!(bad.contains("\nldap_health_check_last_success_timestamp_seconds 5.000\n"), "{bad}");
        let never = render_parts(State::Unknown, Duration::ZERO, &[], at, None);
        assert!(!never.contains(LAST_SUCCESS), "{never}");
        assert!(never.contains("\nldap_health_check_exit_status 3\n"), "{never}");
    }

    /// A fresh directory under the system's temporary directory (removed by the caller).
    fn scratch_dir(tag: &str) -> PathBuf {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("lhc-prometheus-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn a_symlink_at_the_old_temporary_name_is_not_followed() {
        let dir = scratch_dir("symlink");
        let victim = dir.join("victim");
        fs::write(&victim, "precious\n").unwrap();
        let path = dir.join("ldap.prom");
        // The name the temporary file used to have, planted in advance by another user of the directory.
        let planted = dir.join(format!(".ldap.prom.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomically(&path, "ldap_health_check_exit_status 0\n").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "ldap_health_check_exit_status 0\n");
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
        assert!(fs::symlink_metadata(&planted).unwrap().file_type().is_symlink(), "left as it was");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_check_that_cannot_start_still_reports_its_exit_status() {
        let dir = scratch_dir("unknown");
        let path = dir.join("ldap.prom");
        fs::write(&path, format!("{LAST_SUCCESS} 5.000\n")).unwrap();
        write_unknown(&path, UNIX_EPOCH + Duration::from_secs(10)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\nldap_health_check_exit_status 3\n"), "{text}");
        assert!(text.contains("\nldap_health_check_last_run_timestamp_seconds 10.000\n"), "{text}");
        assert!(text.contains(&format!("\n{LAST_SUCCESS} 5.000\n")), "carried over: {text}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_at_the_textfile_path_is_neither_read_nor_replaced() {
        let dir = scratch_dir("fifo");
        let path = dir.join("ldap.prom");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if !made.is_ok_and(|s| s.success()) {
            fs::remove_dir_all(&dir).unwrap();
            return; // no mkfifo: nothing to test
        }
        // Reading it would block forever (no writer); replacing it would destroy what someone put there.
        assert_eq!(previous_file_success(&path), None);
        let e = write_unknown(&path, UNIX_EPOCH).unwrap_err();
        assert_eq!(format!("{e:#}"), "cannot write: it is a FIFO: not replaced");
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_fifo());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_server_listed_twice_is_reported_once() {
        let map = MapVerdict {
            name: "m.cf".into(),
            path: "/etc/postfix/m\"1.cf".into(),
            location: "m.cf".into(),
            state: State::Warning,
            reason: None,
            base: None,
            presence: Err("none".into()),
            elapsed: None,
            servers: vec![server("ldap://a:389", false), server("ldap://b:389", true), server("ldap://a:389", true)],
            warnings: vec![],
            canaries: vec![],
            used_by: vec![],
            services: Vec::new(),
        };
        let text = render_parts(State::Warning, Duration::ZERO, &[map], UNIX_EPOCH, None);
        let labels = r#"map="/etc/postfix/m\"1.cf",server="ldap://a:389""#;
        assert_eq!(text.matches(labels).count(), 1, "{text}");
        assert!(text.contains(&format!("ldap_health_check_server_up{{{labels}}} 0\n")), "{text}");
        assert!(text.contains("ldap_health_check_up{map=\"/etc/postfix/m\\\"1.cf\"} 1\n"), "{text}");
    }
}
