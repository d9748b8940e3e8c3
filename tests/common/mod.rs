//! Shared helpers for the integration tests: a real slapd fixture (tests/fixtures/slapd.sh),
//! running the project binary with a hard time bound, map files, temporary directories, postmap,
//! and tiny fake servers for fault tests. Std only.
//!
//! Use from a test crate with `mod common;` (then `use common::*;`).
#![allow(dead_code)]

pub mod sandbox;

use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Default bound for one run of the project binary.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for one run of a fixture script or an LDAP command line tool.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Paths

/// The crate root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// tests/fixtures/slapd.sh
pub fn fixture_script() -> PathBuf {
    repo_root().join("tests/fixtures/slapd.sh")
}

/// Root of every fixture and temporary directory: cargo's target/tmp (not under /tmp, so that
/// systemd units with PrivateTmp can see it). Created when missing.
pub fn tmp_root() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&p).expect("create CARGO_TARGET_TMPDIR");
    p
}

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// A short name unique in this machine for the life of this process: PREFIX-PID-N.
fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}-{}", std::process::id(), UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// The project binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ldap-health-check"))
}

// ---------------------------------------------------------------------------------------------
// Running commands with a bound

/// What a bounded command run gave.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code; 128+N when killed by signal N (as a shell reports it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Wall time from spawn to exit (measured by polling every 1–5 ms).
    pub elapsed: Duration,
    /// The command was still running at the bound and was killed (with its process group).
    pub timed_out: bool,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == 0 && !self.timed_out
    }
    /// Panics (showing stdout and stderr) unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert!(
            self.code == code && !self.timed_out,
            "expected exit code {code}, got {} (timed out: {}, {:?})\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.timed_out,
            self.elapsed,
            self.stdout,
            self.stderr
        );
        self
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` in a process group of its own, feeding it `stdin` (or /dev/null), and kills the
/// whole group at `timeout`. Never panics on the command's failure: look at the `Run`.
pub fn run_command(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let mut timed_out = false;
    let mut nap = Duration::from_millis(1);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            kill_group(&child);
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    // A grandchild may still hold the pipes: don't wait for EOF forever.
    let text = |rx: mpsc::Receiver<Vec<u8>>| {
        String::from_utf8_lossy(&rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()).into_owned()
    };
    Run { code: exit_code(status), stdout: text(out), stderr: text(err), elapsed, timed_out }
}

fn kill_group(child: &Child) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).stderr(Stdio::null()).status();
}

/// Runs the project binary with `args` and extra environment `envs`, bounded by [`RUN_TIMEOUT`];
/// a run still going then is killed and the test fails. Every `LDAP_HEALTH_CHECK_*` variable
/// (e.g. LDAP_HEALTH_CHECK_CONFFILE) is removed from the environment unless given in `envs`.
#[track_caller]
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let r = run_with_timeout(args, envs, RUN_TIMEOUT);
    assert!(
        !r.timed_out,
        "{} {args:?} still running after {RUN_TIMEOUT:?}: killed\n--- stdout\n{}--- stderr\n{}",
        bin().display(),
        r.stdout,
        r.stderr
    );
    r
}

/// Like [`run`] with another bound, and no panic when it is reached (see `Run::timed_out`).
pub fn run_with_timeout(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Run {
    let mut cmd = bin_command(args, envs);
    run_command(&mut cmd, None, timeout)
}

/// The `Command` that [`run`] uses, for callers that need more (stdin, cwd...): pass it to
/// [`run_command`].
pub fn bin_command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LDAP_HEALTH_CHECK_") {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

// ---------------------------------------------------------------------------------------------
// Files

/// Writes DIR/NAME with mode 0600 (replacing it) and returns its path.
pub fn write_map(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    f.write_all(body.as_bytes()).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A directory under [`tmp_root`] removed (recursively) on Drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = tmp_root().join(unique_name("d"));
        let _ = fs::remove_dir_all(&path); // left by a dead process with the same pid
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        self.path.join(p)
    }
    /// [`write_map`] in this directory.
    pub fn write(&self, name: &str, body: &str) -> PathBuf {
        write_map(&self.path, name, body)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Postfix

/// `postmap -q KEY ldap:MAP` with a throwaway config directory (main.cf with
/// compatibility_level = 3.6). Exit 0 and the value on stdout when found, 1 when not found.
pub fn postmap_query(map: &Path, key: &str) -> Run {
    let conf = TempDir::new();
    fs::write(
        conf.join("main.cf"),
        "compatibility_level = 3.6\nmeta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n",
    )
    .unwrap();
    let mut cmd = Command::new("/usr/sbin/postmap");
    cmd.arg("-c").arg(conf.path()).arg("-q").arg(key).arg(format!("ldap:{}", map.display()));
    run_command(&mut cmd, None, TOOL_TIMEOUT)
}

// ---------------------------------------------------------------------------------------------
// slapd fixture

/// A running slapd made by tests/fixtures/slapd.sh under [`tmp_root`].
///
/// Data, accounts and ACLs: see the header of tests/fixtures/slapd.sh. `env` holds DIR/env as
/// written at start (LDAP_URL, SERVICE_DN, SERVICE_PW, CA_FILE, ...); after `restart` only
/// SLAPD_PID changes: use [`Slapd::pid`].
pub struct Slapd {
    pub dir: PathBuf,
    pub ldap_port: u16,
    pub ldaps_port: u16,
    pub ldapi_path: PathBuf,
    pub env: HashMap<String, String>,
    pid: AtomicI32,
    /// Runs `slapd.sh stop DIR` when its stdin (kept here) closes, i.e. at Drop or when this
    /// process dies however it dies.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

static SHARED: OnceLock<Slapd> = OnceLock::new();

fn script(args: &[&str], dir: &Path, extra_env: &[(&str, String)]) -> Run {
    let mut cmd = Command::new(fixture_script());
    cmd.arg(args[0]).arg(dir).args(&args[1..]);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    run_command(&mut cmd, None, TOOL_TIMEOUT)
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.to_string())).collect()
}

/// Options for [`Slapd::start_with`].
#[derive(Debug, Clone, Default)]
pub struct SlapdOptions {
    /// Number of uid=userNNNN entries (default 3000).
    pub users: Option<u32>,
    /// Fixed ports (both or none); default: free ones are picked.
    pub ports: Option<(u16, u16)>,
    /// server.pem's notAfter is now + this (`2d`, `10d`, `90d`, `36h`, `-1d` = expired a day
    /// ago; `[-]N[smhd]`) instead of 10 years (SLAPD_CERT_VALIDITY). See [`Slapd::serve_cert_valid_for`].
    pub cert_validity: Option<String>,
    /// Use the CA of this fixture (its `dir`), so that one CA_FILE verifies both servers of a
    /// failover map (SLAPD_CA_FROM).
    pub ca_from: Option<PathBuf>,
    /// The syncprov overlay on the suffix: contextCSN maintained, each write advances it
    /// (SLAPD_SYNCPROV).
    pub syncprov: bool,
    /// olcServerID (1..4095): the sid in this server's CSNs (SLAPD_SERVER_ID; default sid 000).
    pub server_id: Option<u16>,
    /// The loaded data's entryCSN and the suffix's contextCSN are now - this (`2h`, `10m`)
    /// (SLAPD_CSN_AGE).
    pub csn_age: Option<String>,
    /// The suffix's contextCSN values, exactly (full CSNs, e.g. one per sid) (SLAPD_CONTEXT_CSN).
    pub context_csn: Vec<String>,
    /// Make this a syncrepl consumer (refreshAndPersist) of the fixture in this dir, which must
    /// have `syncprov`; the data is the provider's (SLAPD_PROVIDER). See [`Slapd::start_consumer`].
    pub provider: Option<PathBuf>,
    /// An ACL ({3}, before the catch-all) lets only cn=admin read the suffix's contextCSN
    /// (SLAPD_HIDE_CONTEXTCSN). See [`Slapd::hide_context_csn`] to do it on a running server.
    pub hide_context_csn: bool,
}

impl Slapd {
    /// A private instance (for tests that SIGSTOP, kill or reconfigure it); stopped and its
    /// directory removed on Drop, or by its watchdog if this process dies first.
    pub fn start() -> Slapd {
        Slapd::start_with(SlapdOptions::default())
    }

    /// A private instance with a few users only: starts faster.
    pub fn start_small() -> Slapd {
        Slapd::start_with(SlapdOptions { users: Some(20), ..Default::default() })
    }

    /// A syncrepl consumer of `provider` (started with `syncprov: true`): same data, entryUUIDs
    /// and CSNs (seeded from the provider's database), replicating in refreshAndPersist mode,
    /// sharing the provider's CA. Use [`Slapd::set_replication`] to stop and resume it.
    pub fn start_consumer(provider: &Slapd, mut opts: SlapdOptions) -> Slapd {
        opts.provider = Some(provider.dir.clone());
        if opts.ca_from.is_none() {
            opts.ca_from = Some(provider.dir.clone());
        }
        Slapd::start_with(opts)
    }

    pub fn start_with(opts: SlapdOptions) -> Slapd {
        let dir = tmp_root().join(unique_name("s"));
        if dir.exists() {
            // left by a dead process that had our pid
            script(&["stop"], &dir, &[]);
        }
        // The watchdog first, so that a death during start still cleans up. It ignores the
        // terminal's signals and lives in its own process group: Ctrl-C on `cargo test` kills
        // the test process, the pipe closes, the watchdog cleans up.
        let mut wd = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"trap '' INT HUP TERM QUIT; read _ignored; exec "$0" stop "$1" >/dev/null 2>&1"#)
            .arg(fixture_script())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the slapd watchdog");
        let wd_stdin = wd.stdin.take().unwrap();

        let mut args = vec!["start".to_string()];
        if let Some((l, s)) = opts.ports {
            args.push(l.to_string());
            args.push(s.to_string());
        }
        let mut env = Vec::new();
        if let Some(n) = opts.users {
            env.push(("SLAPD_USERS", n.to_string()));
        }
        if let Some(v) = &opts.cert_validity {
            env.push(("SLAPD_CERT_VALIDITY", v.clone()));
        }
        if let Some(d) = &opts.ca_from {
            env.push(("SLAPD_CA_FROM", d.display().to_string()));
        }
        if opts.syncprov {
            env.push(("SLAPD_SYNCPROV", "1".to_string()));
        }
        if let Some(n) = opts.server_id {
            env.push(("SLAPD_SERVER_ID", n.to_string()));
        }
        if let Some(v) = &opts.csn_age {
            env.push(("SLAPD_CSN_AGE", v.clone()));
        }
        if !opts.context_csn.is_empty() {
            env.push(("SLAPD_CONTEXT_CSN", opts.context_csn.join(" ")));
        }
        if let Some(d) = &opts.provider {
            env.push(("SLAPD_PROVIDER", d.display().to_string()));
        }
        if opts.hide_context_csn {
            env.push(("SLAPD_HIDE_CONTEXTCSN", "1".to_string()));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = script(&argv, &dir, &env);
        if !r.success() {
            let log = fs::read_to_string(dir.join("slapd.log")).unwrap_or_default();
            drop(wd_stdin); // the watchdog removes DIR
            let _ = wd.wait();
            panic!(
                "slapd.sh start {} failed (code {}, timed out {}):\n{}{}\nslapd.log:\n{log}",
                dir.display(),
                r.code,
                r.timed_out,
                r.stdout,
                r.stderr
            );
        }
        eprint!("{}", r.stderr);
        let text = fs::read_to_string(dir.join("env")).expect("read DIR/env");
        let env = parse_env(&text);
        let num =
            |k: &str| -> u16 { env.get(k).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("bad {k} in env")) };
        Slapd {
            ldap_port: num("LDAP_PORT"),
            ldaps_port: num("LDAPS_PORT"),
            ldapi_path: PathBuf::from(&env["LDAPI_PATH"]),
            pid: AtomicI32::new(env["SLAPD_PID"].parse().expect("SLAPD_PID")),
            dir,
            env,
            watchdog: Mutex::new(Some((wd, wd_stdin))),
        }
    }

    /// One instance per test binary, for read-only tests: never stopped by the tests (its
    /// watchdog removes it when the test process exits). Don't SIGSTOP, kill or reconfigure it.
    pub fn shared() -> &'static Slapd {
        SHARED.get_or_init(Slapd::start)
    }

    /// ldap://127.0.0.1:PORT
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }
    /// ldaps://127.0.0.1:PORT (certificate for 127.0.0.1, ::1 and localhost, signed by CA_FILE)
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }
    /// ldapi://%2F...%2Fldapi
    pub fn ldapi_url(&self) -> String {
        self.get("LDAPI_URL").to_string()
    }
    /// A value from DIR/env; panics when missing.
    #[track_caller]
    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).map(String::as_str).unwrap_or_else(|| panic!("no {key} in slapd env"))
    }
    /// DIR/NAME
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// The current slapd pid (changes on restart).
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }
    pub fn base_dn(&self) -> &str {
        self.get("BASE_DN")
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill").args([sig, &self.pid().to_string()]).status().expect("run kill");
        assert!(st.success(), "kill {sig} {} failed", self.pid());
    }
    /// Freeze slapd: connections are accepted by the kernel but never answered.
    pub fn sigstop(&self) {
        self.signal("-STOP");
    }
    pub fn sigcont(&self) {
        self.signal("-CONT");
    }
    /// Stop slapd, keeping its data: its ports refuse connections until `restart`.
    pub fn kill(&self) {
        let r = script(&["kill"], &self.dir, &[]);
        assert!(r.success(), "slapd.sh kill failed: {}{}", r.stdout, r.stderr);
    }
    /// Stop (if running) and start again on the same ports and data.
    pub fn restart(&self) {
        let r = script(&["restart"], &self.dir, &[]);
        assert!(r.success(), "slapd.sh restart failed: {}{}", r.stdout, r.stderr);
        let env = parse_env(&fs::read_to_string(self.dir.join("env")).unwrap());
        self.pid.store(env["SLAPD_PID"].parse().unwrap(), Ordering::SeqCst);
    }
    /// Is the fixture's slapd process running (even if SIGSTOPped)?
    pub fn running(&self) -> bool {
        script(&["status"], &self.dir, &[]).code == 0
    }

    /// A `Command` for an OpenLDAP client tool (ldapsearch...) that ignores /etc/ldap/ldap.conf
    /// and trusts the fixture's CA (LDAPTLS_CACERT). Note: LDAPNOINIT would make libldap ignore
    /// the LDAPTLS_* variables too, so it is removed.
    pub fn tool(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("LDAPCONF", "/dev/null")
            .env("LDAPRC", "/nonexistent-ldaprc")
            .env_remove("LDAPNOINIT")
            .env("LDAPTLS_CACERT", self.get("CA_FILE"));
        c
    }
    /// Runs an OpenLDAP tool with `args`, bounded; see [`Slapd::tool`].
    pub fn run_tool(&self, prog: &str, args: &[&str], stdin: Option<&str>) -> Run {
        let mut c = self.tool(prog);
        c.args(args);
        run_command(&mut c, stdin.map(str::as_bytes), TOOL_TIMEOUT)
    }
    /// ldapsearch -LLL with `args` (give -H, -x/-Y, -b ... yourself).
    pub fn ldapsearch(&self, args: &[&str]) -> Run {
        let mut a = vec!["-LLL", "-o", "ldif-wrap=no"];
        a.extend_from_slice(args);
        self.run_tool("ldapsearch", &a, None)
    }
    /// ldapsearch as root over ldapi (-Y EXTERNAL: sees everything, cn=config too). Returns the
    /// LDIF; panics on error (noSuchObject included).
    #[track_caller]
    pub fn search_root(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let url = self.ldapi_url();
        let mut a = vec!["-Q", "-Y", "EXTERNAL", "-H", &url, "-b", base, filter];
        a.extend_from_slice(attrs);
        let r = self.ldapsearch(&a);
        assert!(r.success(), "ldapsearch -b {base} {filter} failed ({}): {}", r.code, r.stderr);
        r.stdout
    }
    /// ldapmodify as root over ldapi (-Y EXTERNAL); returns stdout, or Err(stderr).
    pub fn try_ldapmodify(&self, ldif: &str) -> Result<String, String> {
        let url = self.ldapi_url();
        let r = self.run_tool("ldapmodify", &["-Q", "-Y", "EXTERNAL", "-H", &url], Some(ldif));
        if !r.success() {
            return Err(format!("exit {}: {}", r.code, r.stderr));
        }
        Ok(r.stdout)
    }
    /// ldapmodify as root over ldapi; panics with stderr on failure. Works on cn=config
    /// (e.g. to change olcAccess of olcDatabase={1}mdb,cn=config) and on the data.
    #[track_caller]
    pub fn ldapmodify(&self, ldif: &str) {
        if let Err(e) = self.try_ldapmodify(ldif) {
            panic!("ldapmodify failed: {e}\n--- ldif\n{ldif}");
        }
    }
    /// ldapadd (ldapmodify -a) as root over ldapi; panics on failure.
    #[track_caller]
    pub fn ldapadd(&self, ldif: &str) {
        let url = self.ldapi_url();
        let r = self.run_tool("ldapmodify", &["-a", "-Q", "-Y", "EXTERNAL", "-H", &url], Some(ldif));
        assert!(r.success(), "ldapadd failed ({}): {}\n--- ldif\n{ldif}", r.code, r.stderr);
    }
    /// ldapdelete of `dn` as root over ldapi; panics on failure.
    #[track_caller]
    pub fn ldapdelete(&self, dn: &str) {
        let url = self.ldapi_url();
        let r = self.run_tool("ldapdelete", &["-Q", "-Y", "EXTERNAL", "-H", &url, dn], None);
        assert!(r.success(), "ldapdelete {dn} failed ({}): {}", r.code, r.stderr);
    }
    /// Makes slapd serve another certificate from DIR (`"server"`, `"other"` for a
    /// DNS:other.example-only name, `"expired"`): takes effect for new TLS connections at once.
    pub fn use_server_cert(&self, name: &str) {
        let dir = self.dir.display();
        self.ldapmodify(&format!(
            "dn: cn=config\nchangetype: modify\nreplace: olcTLSCertificateFile\n\
             olcTLSCertificateFile: {dir}/{name}.pem\n-\nreplace: olcTLSCertificateKeyFile\n\
             olcTLSCertificateKeyFile: {dir}/{name}.key\n-\n"
        ));
    }
    /// Makes DIR/NAME.pem and DIR/NAME.key: a server certificate like server.pem (SANs
    /// IP:127.0.0.1, IP:::1, DNS:localhost; signed by CA_FILE) whose notAfter is now + `validity`
    /// (`[-]N[smhd]`: `2d`, `36h`, `-1d`...). Returns its notAfter in unix seconds. Serve it with
    /// [`Slapd::use_server_cert`].
    #[track_caller]
    pub fn make_cert(&self, name: &str, validity: &str) -> u64 {
        let r = script(&["cert", name, validity], &self.dir, &[]);
        assert!(r.success(), "slapd.sh cert {name} {validity} failed: {}{}", r.stdout, r.stderr);
        r.stdout.trim().parse().unwrap_or_else(|_| panic!("slapd.sh cert printed {:?}", r.stdout))
    }
    /// Serves, from now on (new TLS connections, ldaps and STARTTLS; no restart), a new server
    /// certificate whose notAfter is now + `validity`; returns that notAfter (unix seconds).
    pub fn serve_cert_valid_for(&self, validity: &str) -> u64 {
        let not_after = self.make_cert("rotated", validity);
        self.use_server_cert("rotated");
        not_after
    }
    /// The contextCSN values of the suffix, read as root over ldapi (ACLs do not apply); empty
    /// when there is none (no syncprov and no CSN option).
    pub fn context_csn(&self) -> Vec<String> {
        let r = script(&["csn"], &self.dir, &[]);
        assert!(r.success(), "slapd.sh csn failed: {}{}", r.stdout, r.stderr);
        r.stdout.lines().map(str::to_string).collect()
    }
    /// A write to the data as root over ldapi (replaces `description` of uid=user0001): with
    /// syncprov, advances the contextCSN to now. Not on a consumer (its database is a shadow).
    pub fn touch(&self) {
        let base = self.base_dn().to_string();
        let stamp = format!("{:?}", std::time::SystemTime::now());
        self.ldapmodify(&format!(
            "dn: uid=user0001,ou=people,{base}\nchangetype: modify\nreplace: description\ndescription: touched {stamp}\n-\n"
        ));
    }
    /// Consumer only: stop (`false`) or resume (`true`) replication from the provider
    /// (removes / restores olcSyncrepl). Resuming catches up asynchronously: see [`Slapd::wait_in_sync`].
    pub fn set_replication(&self, on: bool) {
        let r = script(&["syncrepl", if on { "on" } else { "off" }], &self.dir, &[]);
        assert!(r.success(), "slapd.sh syncrepl failed: {}{}", r.stdout, r.stderr);
    }
    /// Waits (up to `timeout`) until this server's contextCSN equals `other`'s; false on timeout.
    pub fn wait_in_sync(&self, other: &Slapd, timeout: Duration) -> bool {
        let t = Instant::now();
        loop {
            let mine = self.context_csn();
            if !mine.is_empty() && mine == other.context_csn() {
                return true;
            }
            if t.elapsed() >= timeout {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    /// Hides (`true`) or shows again (`false`) the suffix's contextCSN from everyone but cn=admin
    /// (and root over ldapi), on the running server: inserts / removes the ACL {3}
    /// `to dn.base="dc=example,dc=com" attrs=contextCSN by dn.exact="cn=admin,..." read by * none`.
    pub fn hide_context_csn(&self, hide: bool) {
        let acl = self.search_root("olcDatabase={1}mdb,cn=config", "(objectClass=*)", &["olcAccess"]);
        let hidden = acl.lines().any(|l| l.starts_with("olcAccess: {3}") && l.contains("attrs=contextCSN"));
        let dn = "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\n";
        if hide && !hidden {
            let (base, admin) = (self.base_dn(), self.get("ADMIN_DN"));
            self.ldapmodify(&format!(
                "{dn}add: olcAccess\nolcAccess: {{3}}to dn.base=\"{base}\" attrs=contextCSN by dn.exact=\"{admin}\" read by * none\n-\n"
            ));
        } else if !hide && hidden {
            self.ldapmodify(&format!("{dn}delete: olcAccess\nolcAccess: {{3}}\n-\n"));
        }
    }
    /// Replaces the ACLs of the data (olcDatabase={1}mdb,cn=config) with `rules` (each an
    /// olcAccess value without the {N} prefix). Keep a rule for root over ldapi if the test still
    /// needs `ldapmodify`/`search_root` on the data (cn=config is not affected).
    pub fn set_acls(&self, rules: &[&str]) {
        let mut ldif = String::from("dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcAccess\n");
        for (i, r) in rules.iter().enumerate() {
            ldif.push_str(&format!("olcAccess: {{{i}}}{r}\n"));
        }
        ldif.push_str("-\n");
        self.ldapmodify(&ldif);
    }

    /// Stops slapd and removes DIR (what Drop does). Idempotent.
    pub fn stop(&self) {
        let r = script(&["stop"], &self.dir, &[]);
        if !r.success() {
            eprintln!("slapd.sh stop {} failed: {}{}", self.dir.display(), r.stdout, r.stderr);
        }
        if let Some((mut child, stdin)) = self.watchdog.lock().unwrap().take() {
            drop(stdin); // the watchdog runs stop again (a no-op) and exits
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Fake servers

/// How a [`FakeServer`] misbehaves. All listen on 127.0.0.1 on a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeMode {
    /// Accepts connections and never reads nor answers.
    AcceptThenSilence,
    /// Nothing listens on the port (bound, then closed): connections are refused at once.
    Refuse,
    /// Listens with a full accept queue (backlog set to 0 with listen(2) and filled): a further
    /// connect gets no SYN-ACK and hangs until the client's connect timeout, like a blackholed
    /// address.
    Backlog,
    /// Answers one LDAP StartTLS extended request with success (the bytes slapd sends), then
    /// reads and discards everything (the ClientHello) without answering.
    StartTlsThenSilence,
    /// Accepts, reads and discards what comes (the TLS ClientHello), never answers.
    SilentTlsHandshake,
    /// Accepts and closes at once (the client sees EOF / reset).
    CloseImmediately,
}

/// A misbehaving server on 127.0.0.1; stops (closing every connection) on Drop.
pub struct FakeServer {
    pub mode: FakeMode,
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    starttls_answered: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
    held: Vec<TcpStream>,
    listener: Option<TcpListener>,
    /// Refuse: the port, bound and not listening, so that nothing else can take it while the server lives.
    reserved: Option<std::os::fd::OwnedFd>,
}

mod sys {
    unsafe extern "C" {
        /// listen(2) from the C library std already links: calling it again on a listening
        /// socket changes its backlog.
        pub fn listen(fd: i32, backlog: i32) -> i32;
    }
}

/// StartTLS OID as it appears in the request.
const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// Total length of the BER TLV (an LDAPMessage) at the start of `buf`: None while more bytes are
/// needed, Some(Err(())) when it is not one (or is larger than 1 MiB).
fn ber_len(buf: &[u8]) -> Option<Result<usize, ()>> {
    if buf.len() < 2 {
        return None;
    }
    if buf[0] != 0x30 {
        return Some(Err(()));
    }
    let (hdr, len) = if buf[1] & 0x80 == 0 {
        (2, buf[1] as usize)
    } else {
        let n = (buf[1] & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Some(Err(()));
        }
        let b = buf.get(2..2 + n)?;
        (2 + n, b.iter().fold(0usize, |a, &x| (a << 8) | x as usize))
    };
    if len > 1 << 20 {
        return Some(Err(()));
    }
    Some(Ok(hdr + len))
}

/// The ExtendedResponse (success, no responseName) to the LDAPMessage `req` when it is a
/// StartTLS request: 30 0c 02 01 <id> 78 07 0a 01 00 04 00 04 00 for a one-byte message id.
pub fn starttls_response(req: &[u8]) -> Option<Vec<u8>> {
    if req.first() != Some(&0x30) {
        return None;
    }
    let hdr = if req[1] & 0x80 == 0 { 2 } else { 2 + (req[1] & 0x7f) as usize };
    let body = req.get(hdr..)?;
    // messageID INTEGER (short form)
    if body.first() != Some(&0x02) {
        return None;
    }
    let idlen = *body.get(1)? as usize;
    let id = body.get(2..2 + idlen)?;
    let op = body.get(2 + idlen..)?;
    // ExtendedRequest [APPLICATION 23] = 0x77, requestName [0] = 0x80
    if op.first() != Some(&0x77) || !op.windows(STARTTLS_OID.len()).any(|w| w == STARTTLS_OID) {
        return None;
    }
    let ext = [0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
    let mut out = vec![0x30, (2 + idlen + ext.len()) as u8, 0x02, idlen as u8];
    out.extend_from_slice(id);
    out.extend_from_slice(&ext);
    Some(out)
}

impl FakeServer {
    pub fn start(mode: FakeMode) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let mut fs = FakeServer {
            mode,
            addr,
            stop: Arc::new(AtomicBool::new(false)),
            accepted: Arc::new(AtomicUsize::new(0)),
            starttls_answered: Arc::new(AtomicUsize::new(0)),
            received: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
            held: Vec::new(),
            listener: None,
            reserved: None,
        };
        match mode {
            FakeMode::Refuse => {
                // A port merely bound and closed again can be taken by anything else before it is connected to
                // (seen in CI: the "refused" connect was accepted); a socket bound but not listening answers
                // every connect with a reset and keeps the port.
                drop(listener);
                let (fd, port) = bound_not_listening();
                fs.addr = SocketAddr::from(([127, 0, 0, 1], port));
                fs.reserved = Some(fd);
            }
            FakeMode::Backlog => {
                use std::os::fd::AsRawFd;
                // SAFETY: a plain syscall on a socket we own.
                let rc = unsafe { sys::listen(listener.as_raw_fd(), 0) };
                assert_eq!(rc, 0, "listen(fd, 0) failed");
                // Fill the accept queue until a connect no longer completes.
                for _ in 0..64 {
                    match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                        Ok(s) => fs.held.push(s),
                        Err(_) => break,
                    }
                }
                fs.listener = Some(listener);
            }
            _ => {
                listener.set_nonblocking(true).unwrap();
                let stop = fs.stop.clone();
                let accepted = fs.accepted.clone();
                let answered = fs.starttls_answered.clone();
                let received = fs.received.clone();
                fs.threads.push(thread::spawn(move || accept_loop(listener, mode, stop, accepted, answered, received)));
            }
        }
        fs
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// ldap://127.0.0.1:PORT
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port())
    }
    /// ldaps://127.0.0.1:PORT
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.port())
    }
    /// Connections accepted so far (0 for Refuse and Backlog).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    /// StartTLS requests answered so far (StartTlsThenSilence).
    pub fn starttls_answered(&self) -> usize {
        self.starttls_answered.load(Ordering::SeqCst)
    }
    /// Bytes read so far from all connections (StartTlsThenSilence: after the StartTLS
    /// request; SilentTlsHandshake: everything). A TLS ClientHello starts with 0x16 0x03.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

fn accept_loop(
    listener: TcpListener,
    mode: FakeMode,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
) {
    let mut held = Vec::new();
    let mut workers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                accepted.fetch_add(1, Ordering::SeqCst);
                let _ = s.set_nonblocking(false);
                match mode {
                    FakeMode::CloseImmediately => {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                    FakeMode::AcceptThenSilence => held.push(s),
                    _ => {
                        let (stop, answered, received) = (stop.clone(), answered.clone(), received.clone());
                        workers.push(thread::spawn(move || serve_conn(s, mode, stop, answered, received)));
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    drop(held);
    for w in workers {
        let _ = w.join();
    }
}

fn serve_conn(
    mut s: TcpStream,
    mode: FakeMode,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
) {
    // Short read timeouts so that Drop never waits long for this thread.
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut want_starttls = mode == FakeMode::StartTlsThenSilence;
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let n = match s.read(&mut buf) {
            Ok(0) => return, // peer closed
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        if !want_starttls {
            received.lock().unwrap().extend_from_slice(&buf[..n]);
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        let rest = match ber_len(&pending) {
            None => continue,
            Some(Ok(len)) if pending.len() < len => continue,
            Some(Ok(len)) => {
                // answer a StartTLS request; anything else: silence all the same
                if let Some(resp) = starttls_response(&pending[..len]) {
                    if s.write_all(&resp).is_err() {
                        return;
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                pending.split_off(len)
            }
            Some(Err(())) => std::mem::take(&mut pending),
        };
        want_starttls = false;
        received.lock().unwrap().extend_from_slice(&rest);
    }
}

/// A TCP socket bound to 127.0.0.1 on a free port, not listening: connects to it are refused (RST).
fn bound_not_listening() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a socket we create and own; the address structures are fully initialized.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let rc = libc::bind(raw, std::ptr::addr_of!(sa).cast(), len);
        assert_eq!(rc, 0, "bind 127.0.0.1:0: {}", std::io::Error::last_os_error());
        let mut len = len;
        let rc = libc::getsockname(raw, std::ptr::addr_of_mut!(sa).cast(), &mut len);
        assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
        (fd, u16::from_be(sa.sin_port))
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.held.clear();
        self.listener = None;
        self.reserved = None;
    }
}

// ---------------------------------------------------------------------------------------------
// postmap, many times

/// `postmap -q KEY ldap:MAP` like [`postmap_query`], with one configuration directory for the whole test
/// process whose main.cf is dated an hour back: Postfix pauses about 2 s before reading a main.cf (or map
/// file) modified within the last second ("hot" file), which [`postmap_query`]'s fresh main.cf always is.
/// Date the map files back too (see [`age_file`]).
pub fn postmap_query_fast(map: &Path, key: &str) -> Run {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let dir = tmp_root().join(unique_name("postmap-conf"));
        fs::create_dir_all(&dir).unwrap();
        let main_cf = dir.join("main.cf");
        fs::write(
            &main_cf,
            "compatibility_level = 3.6\nmeta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n",
        )
        .unwrap();
        age_file(&main_cf);
        dir
    });
    let mut cmd = Command::new("/usr/sbin/postmap");
    cmd.arg("-c").arg(conf).arg("-q").arg(key).arg(format!("ldap:{}", map.display()));
    run_command(&mut cmd, None, TOOL_TIMEOUT)
}

/// Set a file's modification time an hour back, so that Postfix does not treat it as "hot".
pub fn age_file(path: &Path) {
    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options().write(true).open(path).unwrap().set_modified(past).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Syslog

/// A syslog daemon of our own: a datagram socket that the binary finds at /dev/log when run through
/// [`FakeSyslog::wrap`] (a private mount namespace where /dev is a small tmpfs), so tests never touch the
/// machine's /dev/log. Nothing reads it until [`FakeSyslog::drain`]: the kernel queues a few datagrams, then a
/// blocking sender would wait (what a syslog daemon that stopped reading does).
pub struct FakeSyslog {
    /// The path of the socket, bound over /dev/log in the runs' mount namespace.
    pub path: PathBuf,
    socket: UnixDatagram,
}

impl FakeSyslog {
    /// A listening socket in `dir`, if a private mount namespace can be made here (root, util-linux).
    pub fn start(dir: &Path) -> Option<FakeSyslog> {
        let ok = Command::new("unshare").args(["-m", "true"]).status().is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let path = dir.join("log.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the syslog socket");
        socket.set_nonblocking(true).unwrap();
        Some(FakeSyslog { socket, path })
    }

    /// The command line that runs `bin args...` with /dev/log being our socket.
    pub fn wrap(&self, bin: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "sh", "-c", "mount -t tmpfs -o size=16k,mode=755 lhc-dev /dev && touch /dev/log && mount --bind \"$0\" /dev/log && exec \"$@\""])
            .arg(&self.path)
            .arg(bin)
            .args(args);
        cmd
    }

    /// The messages received since the last call (each run's are queued by the time it exits).
    pub fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.socket.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// A slow directory: a proxy in front of a real slapd that holds chosen responses

/// How long [`SlowProxy`] holds the first response to each kind of request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delays {
    /// The BindResponse.
    pub bind: Duration,
    /// The first response of each search (an entry or the done).
    pub search: Duration,
    /// The ExtendedResponse (StartTLS: after it the stream is TLS and passes through untouched).
    pub extended: Duration,
}

/// A TCP proxy to a real slapd that delays the server's responses as [`Delays`] says: a directory slow in one
/// operation, for comparing what Postfix and the check make of each operation's timeout.
pub struct SlowProxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    pub fn start(upstream: SocketAddr, delays: Delays) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(upstream) {
                            relay(client, server, delays);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        SlowProxy { addr, stop }
    }

    pub fn ldap_url(&self) -> String {
        format!("ldap://{}", self.addr)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Client to server as it comes; server to client one LDAPMessage at a time, the first of each message ID held
/// as `delays` says, until a StartTLS response (then everything as it comes).
fn relay(client: TcpStream, server: TcpStream, delays: Delays) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    thread::spawn(move || {
        let mut seen_ids: Vec<Vec<u8>> = Vec::new();
        while let Some(message) = read_ldap_message(&mut s_read) {
            // SEQUENCE { messageID INTEGER, protocolOp ... }: skip the outer header to the ID, then the op's tag.
            let body_start = if message[1] & 0x80 == 0 { 2 } else { 2 + usize::from(message[1] & 0x7f) };
            let id_len = usize::from(message[body_start + 1]);
            let id = message[body_start + 2..body_start + 2 + id_len].to_vec();
            let op = message[body_start + 2 + id_len];
            if !seen_ids.contains(&id) {
                seen_ids.push(id);
                let hold = match op {
                    0x61 => delays.bind,
                    0x64 | 0x65 | 0x73 => delays.search,
                    0x78 => delays.extended,
                    _ => Duration::ZERO,
                };
                thread::sleep(hold);
            }
            if c_write.write_all(&message).is_err() {
                break;
            }
            if op == 0x78 {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                break;
            }
        }
        let _ = c_write.shutdown(Shutdown::Write);
    });
}

/// One BER LDAPMessage (tag and definite length), whole.
fn read_ldap_message(r: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).ok()?;
    let mut message = head.to_vec();
    let len = if head[1] & 0x80 == 0 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        let mut bytes = vec![0u8; n];
        r.read_exact(&mut bytes).ok()?;
        message.extend_from_slice(&bytes);
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    message.extend(body);
    Some(message)
}
