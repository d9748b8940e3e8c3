//! Running Postfix's own tools, `postconf` and `postmap`, bounded by the deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Answer a `type:table` domain pattern the way Postfix would: `postmap [-c DIR] -q KEY TABLE`, exit 0 found,
/// exit 1 not found (or an error, told apart by postmap's `fatal:`/`warning:` lines). Bounded by `limit`.
pub fn postmap_table_lookup(
    config_dir: Option<&Path>,
    table: &str,
    key: &str,
    limit: Duration,
) -> Result<bool, String> {
    let postmap = find_postfix_tool("postmap").ok_or("postmap is not installed: cannot look up the domain table")?;
    let mut cmd = std::process::Command::new(postmap);
    if let Some(dir) = config_dir {
        cmd.arg("-c").arg(dir);
    }
    cmd.arg("-q").arg(key).arg(table);
    let out = run_bounded(&mut cmd, limit).map_err(|e| format!("domain table {table}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) if !stderr.contains("fatal:") => Ok(false),
        _ => Err(format!(
            "domain table {table}: {}",
            stderr.lines().last().unwrap_or("postmap failed").trim_start_matches("postmap: ")
        )),
    }
}

/// A Postfix command (postmap, postconf): on PATH, else in /usr/sbin.
pub fn find_postfix_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Run a command, killing it at `limit`.
pub fn run_bounded(cmd: &mut std::process::Command, limit: Duration) -> Result<std::process::Output, String> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cmd.get_program().to_string_lossy()))?;
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = read(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} timed out", cmd.get_program().to_string_lossy()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e.to_string()),
        }
    };
    Ok(std::process::Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}
