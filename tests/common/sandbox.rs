//! A real systemd booted in private namespaces by tests/systemd/sandbox.sh, for the tests of the units
//! (tests/systemd_e2e.rs) and of the package (tests/package_e2e.rs).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::{repo_root, run_command, tmp_root, Run};

/// Single-quotes a string for sh.
pub fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// None if this process can create the sandbox's namespaces; else why not.
pub fn namespaces_unavailable() -> Option<String> {
    let r = run_command(
        Command::new("unshare").args(["--pid", "--fork", "--mount", "--net", "--uts", "--ipc", "--cgroup", "true"]),
        None,
        Duration::from_secs(20),
    );
    if r.success() {
        None
    } else {
        let uid = run_command(Command::new("id").arg("-u"), None, Duration::from_secs(5)).stdout;
        Some(format!(
            "`unshare --pid --mount --net --uts --ipc --cgroup` failed (uid {}): {}",
            uid.trim(),
            r.stderr.trim()
        ))
    }
}

/// A booted sandbox (tests/systemd/sandbox.sh). Dropping it powers it off and removes everything; a
/// watchdog does the same if this process dies without unwinding (Ctrl-C, SIGKILL).
pub struct Sandbox {
    pub name: String,
    pub state: PathBuf,
    watchdog: Option<(Child, ChildStdin)>,
    stopped: bool,
}

/// tests/systemd/sandbox.sh.
pub fn harness() -> PathBuf {
    repo_root().join("tests/systemd/sandbox.sh")
}

impl Sandbox {
    /// `sandbox.sh ARGS` for this sandbox, not run.
    pub fn command(&self, args: &[&str]) -> Command {
        Sandbox::command_for(&self.name, &self.state, args)
    }

    fn command_for(name: &str, state: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(harness());
        c.args(args).env("SANDBOX_NAME", name).env("SANDBOX_STATE", state).env("SANDBOX_CMD_TIMEOUT", "60");
        c
    }

    /// Boots a sandbox; `setup` and `on_stop` are the harness's SANDBOX_SETUP and SANDBOX_ON_STOP.
    pub fn boot(name: &str, setup: &str, on_stop: &str) -> Sandbox {
        let state = tmp_root().join(name);
        // The watchdog first, so that a death during the boot still cleans up: it waits for its stdin
        // (kept open here) to close, then runs `sandbox.sh stop`. Own process group: Ctrl-C on cargo
        // test kills this process, not the watchdog.
        let mut wd = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"trap '' INT HUP TERM QUIT; read _ignored; exec "$0" stop >/dev/null 2>&1"#)
            .arg(harness())
            .env("SANDBOX_NAME", name)
            .env("SANDBOX_STATE", &state)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the sandbox watchdog");
        let wd_in = wd.stdin.take().unwrap();
        let mut sb =
            Sandbox { name: name.to_string(), state: state.clone(), watchdog: Some((wd, wd_in)), stopped: false };
        let mut c = Sandbox::command_for(name, &state, &["start"]);
        c.env("SANDBOX_SETUP", setup).env("SANDBOX_ON_STOP", on_stop).env("SANDBOX_BOOT_TIMEOUT", "60");
        let r = run_command(&mut c, None, Duration::from_secs(120));
        if !r.success() {
            sb.stop();
            panic!("sandbox.sh start failed (code {}, timed out {}):\n{}{}", r.code, r.timed_out, r.stdout, r.stderr);
        }
        eprint!("{}", r.stdout);
        sb
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run_command(&mut self.command(args), None, Duration::from_secs(90))
    }
    /// `sandbox.sh ARGS`, panicking unless it exits 0; its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            r.success(),
            "sandbox.sh {args:?}: code {} (timed out {})\n{}{}",
            r.code,
            r.timed_out,
            r.stdout,
            r.stderr
        );
        r.stdout
    }
    #[track_caller]
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut a = vec!["ctl"];
        a.extend_from_slice(args);
        self.ok(&a)
    }
    /// `sh -c SCRIPT ARGS...` inside the sandbox, panicking unless it exits 0.
    #[track_caller]
    pub fn sh(&self, script: &str, args: &[&str]) -> String {
        let mut a = vec!["exec", "sh", "-c", script, "sh"];
        a.extend_from_slice(args);
        self.ok(&a)
    }
    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.ctl(&["show", "-P", prop, unit]).trim().to_string()
    }
    pub fn active(&self, unit: &str) -> bool {
        self.prop(unit, "ActiveState") == "active"
    }

    /// The host pid of the sandbox's PID 1.
    pub fn pid1(&self) -> String {
        self.ok(&["pid"]).trim().to_string()
    }

    /// Powers off and cleans up; checks that no cgroup, mount or state is left.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let cg = fs::read_to_string(self.state.join("cgroup.path")).ok();
        let r = run_command(&mut self.command(&["stop"]), None, Duration::from_secs(90));
        eprint!("{}{}", r.stdout, r.stderr);
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin); // the watchdog runs `stop` once more: a no-op now
            let end = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            assert!(r.success(), "sandbox.sh stop failed: code {}", r.code);
            assert!(!self.state.exists(), "{} left behind", self.state.display());
            if let Some(cg) = cg {
                assert!(!Path::new(cg.trim()).exists(), "cgroup {} left behind", cg.trim());
            }
            let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            assert!(!mounts.contains(&self.name), "mounts of {} left behind:\n{mounts}", self.name);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.stopped {
            // what the units did, for the failure report
            let r = self.run(&["exec", "journalctl", "--no-pager", "-o", "short-monotonic", "-n", "150"]);
            eprintln!("--- the sandbox's journal (last 150 lines):\n{}{}---", r.stdout, r.stderr);
            if std::env::var_os("LHC_E2E_KEEP").is_some() {
                if let Some((mut child, _stdin)) = self.watchdog.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                eprintln!(
                    "LHC_E2E_KEEP: sandbox kept: SANDBOX_NAME={} SANDBOX_STATE={} {} ctl|exec|stop ...",
                    self.name,
                    self.state.display(),
                    harness().display()
                );
                return;
            }
        }
        self.stop();
    }
}
