//! Running Postfix's own tools, `postconf` and `postmap`, bounded by the deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context as _};

use crate::deadline::Deadline;

/// Answer a `type:table` domain pattern the way Postfix would: `postmap [-c DIR] -q KEY TABLE`, exit 0 found,
/// exit 1 not found (or an error, told apart by postmap's `fatal:`/`warning:` lines). Killed at the deadline.
pub fn postmap_table_lookup(
    config_dir: Option<&Path>,
    table: &str,
    key: &str,
    deadline: &Deadline,
) -> Result<bool, String> {
    let postmap = find_postfix_tool("postmap").ok_or("postmap is not installed: cannot look up the domain table")?;
    let mut cmd = std::process::Command::new(postmap);
    if let Some(dir) = config_dir {
        cmd.arg("-c").arg(dir);
    }
    cmd.arg("-q").arg(key).arg(table);
    let out = run_bounded(&mut cmd, deadline).map_err(|e| format!("domain table {table}: {e:#}"))?;
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

/// Run a command, killing it at the deadline.
pub fn run_bounded(cmd: &mut std::process::Command, deadline: &Deadline) -> anyhow::Result<std::process::Output> {
    use std::io::Read;
    use std::process::Stdio;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
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
    let status = loop {
        match child.try_wait().with_context(|| format!("waiting for {program}"))? {
            Some(status) => break status,
            None if deadline.passed() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(anyhow!("{program} timed out"));
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    Ok(std::process::Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}
