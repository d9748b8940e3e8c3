//! The Debian package (scripts/deb.sh, `make deb`) installed into a REAL systemd, as an administrator would.
//!
//! The package is built here from this test build (`scripts/deb.sh` with the test binary: the same files and
//! maintainer scripts as `make deb`, without a release build). `tests/systemd/sandbox.sh` boots the host's
//! systemd 252 as PID 1 of private namespaces on a throw-away overlay of `/` (the host's dpkg database
//! included, so `dpkg -i` inside writes to the overlay only); the setup hook writes a loopback-only main.cf
//! whose virtual_mailbox_maps is an LDAP map (`0640 root:postfix`), links Postfix into the boot target and
//! removes the host's policy-rc.d in the overlay (a real system has none; with it, deb-systemd-invoke would
//! refuse the prerm's stop). slapd (tests/fixtures/slapd.sh) runs on the host in the sandbox's network
//! namespace on 127.0.0.1:389, so the test can kill it. Then, in order:
//!
//! 1. `dpkg -i`: exit 0; every unit loaded (postinst's daemon-reload) and none enabled, none active, no link
//!    under /etc/systemd/system; no conffile, nothing under /etc; Postfix untouched.
//! 2. The administrator's part (the README's): /etc/default/ldap-health-check with a textfile path, drop-ins
//!    (a 2 s interval, with OnBootSec= given again: an empty `OnUnitActiveSec=` empties EVERY On*Sec= list,
//!    and without OnBootSec= a timer started after the boot never fires; ReadWritePaths= for the textfile
//!    directory), `systemctl enable --now
//!    ldap-health-check.timer`: a check passes, the start latch runs, the textfiles say up and
//!    `ldap_health_check_postfix_stopped 0` (written by the latch, units/).
//! 3. slapd killed: the stop latch stops Postfix, `ldap_health_check_postfix_stopped 1`; slapd back: Postfix
//!    started, 0 again.
//! 4. `dpkg --purge`: exit 0; the timer and path unit stopped (prerm), the units unknown to the manager
//!    (postrm's daemon-reload), every file of the package gone, no dangling enablement link, Postfix still
//!    running; what the administrator wrote (env file, drop-ins, textfiles) is still there.
//!
//! Run: `cargo test --test package_e2e -- --nocapture` (root, namespaces; skips loudly without them).

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::sandbox::{namespaces_unavailable, shq, Sandbox};
use common::{fixture_script, repo_root, run_command, tmp_root};

const UNITS: [&str; 6] = [
    "ldap-health-check.service",
    "ldap-health-check.timer",
    "ldap-health-check.path",
    "ldap-health-check-stop-postfix.service",
    "ldap-health-check-start-postfix.service",
    "ldap-health-check-policy.socket",
];
const TIMER: &str = "ldap-health-check.timer";
const STOP_LATCH: &str = "ldap-health-check-stop-postfix.service";
const START_LATCH: &str = "ldap-health-check-start-postfix.service";
const DAEMON: &str = "postfix@-.service";
const MAP: &str = "/etc/postfix/ldap-users.cf";
const ENV_FILE: &str = "/etc/default/ldap-health-check";
const TEXTFILE_DIR: &str = "/var/lib/lhc-pkg-e2e/textfile";
const TIMER_DROPIN: &str = "/etc/systemd/system/ldap-health-check.timer.d/interval.conf";
const SERVICE_DROPIN: &str = "/etc/systemd/system/ldap-health-check.service.d/textfile.conf";

/// Polls `f` every 100 ms until true, at most `limit`; false if never.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        sleep(Duration::from_millis(100));
    }
}

/// The package of this test build, in `dir`.
fn build_deb(dir: &Path) -> PathBuf {
    let bin = env!("CARGO_BIN_EXE_ldap-health-check");
    let r = run_command(
        Command::new(repo_root().join("scripts/deb.sh"))
            .arg(bin)
            .arg(dir)
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL"),
        None,
        Duration::from_secs(120),
    );
    assert!(r.success(), "scripts/deb.sh: code {}\n{}{}", r.code, r.stdout, r.stderr);
    PathBuf::from(r.stdout.trim())
}

/// Where the setup hook puts the package inside the sandbox: the host path may be under /tmp, which is the
/// sandbox's own tmpfs (a CI clone under /tmp builds it there).
const DEB_IN: &str = "/var/lib/lhc-pkg-e2e/ldap-health-check.deb";

fn setup_script(deb: &Path) -> String {
    let map = "# written by tests/package_e2e.rs\n\
               server_host = ldap://127.0.0.1:389/\n\
               search_base = dc=example,dc=com\n\
               query_filter = (mail=%s)\n\
               result_attribute = mail\n\
               bind = yes\n\
               bind_dn = cn=postfix,ou=services,dc=example,dc=com\n\
               bind_pw = postfixpw\n\
               timeout = 2\n\
               health_check_key = user0001@example.com\n";
    format!(
        r#"set -eu
R=$1
cat > "$R/etc/postfix/main.cf" <<'EOF'
# minimal, loopback only (tests/package_e2e.rs)
compatibility_level = 3.6
myhostname = sandbox.localdomain
mydestination = $myhostname, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
readme_directory = no
virtual_mailbox_domains = example.com
virtual_mailbox_maps = ldap:{MAP}
virtual_transport = discard
EOF
umask 077
printf '%s' {map} > "$R{MAP}"
chown root:postfix "$R{MAP}"
chmod 0640 "$R{MAP}"
umask 022
E=$R/etc/systemd/system
mkdir -p "$E/basic.target.wants" "$E/postfix.service.d" "$E/postfix@.service.d"
ln -sf /lib/systemd/system/postfix.service "$E/basic.target.wants/postfix.service"
for u in postfix.service postfix@.service; do printf '[Unit]\nStartLimitIntervalSec=0\n' > "$E/$u.d/test.conf"; done
# a real system has no policy-rc.d (the host's keeps apt from starting daemons): removed in the overlay only
rm -f "$R/usr/sbin/policy-rc.d"
# the package must not be installed yet (a leftover of a host install would hide what dpkg -i does)
! [ -e "$R/var/lib/dpkg/info/ldap-health-check.list" ]
install -D -m 0644 {deb} "$R{DEB_IN}"
"#,
        map = shq(map),
        deb = shq(&deb.to_string_lossy()),
    )
}

#[test]
fn package_installs_into_a_real_systemd_and_purges_clean() {
    if let Some(why) = namespaces_unavailable() {
        let _ = writeln!(
            std::io::stderr(),
            "\n!! SKIPPED package_e2e: cannot create namespaces here: {why} (needs root and unshare(2))\n"
        );
        return;
    }
    for p in ["/lib/systemd/systemd", "/usr/sbin/postfix", "/usr/lib/postfix/postfix-ldap.so", "/usr/bin/dpkg-deb"] {
        assert!(Path::new(p).exists(), "{p} is missing: run `make test-deps`");
    }
    let t_all = Instant::now();
    let name = format!("lhc-pkg-{}", std::process::id());
    let work = tmp_root().join(format!("{name}-work"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    // removed however the test ends (declared before the sandbox: dropped after it)
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(work.clone());
    let t0 = Instant::now();
    // under target/tmp, not /tmp: the sandbox's /tmp is its own tmpfs, the rest of / is the host's (read-only
    // through the overlay)
    let deb = build_deb(&work.join("deb"));
    eprintln!("pkg-e2e: built {} in {:.1} s", deb.display(), t0.elapsed().as_secs_f64());
    let info = run_command(Command::new("dpkg-deb").arg("-f").arg(&deb), None, Duration::from_secs(10)).stdout;
    assert!(info.contains("\nDepends: libc6 (>= "), "{info}");
    assert!(info.contains("\nRecommends: postfix, postfix-ldap\n"), "{info}");
    let contents = run_command(Command::new("dpkg-deb").arg("-c").arg(&deb), None, Duration::from_secs(10)).stdout;
    assert!(!contents.contains(" ./etc/"), "the package ships files under /etc:\n{contents}");
    let control = run_command(Command::new("dpkg-deb").arg("-I").arg(&deb), None, Duration::from_secs(10)).stdout;
    assert!(!control.contains("conffiles"), "the package has conffiles:\n{control}");

    let slapd_dir = tmp_root().join(format!("{name}-slapd"));
    let _ = fs::remove_dir_all(&slapd_dir);
    let slapd_sh = fixture_script();
    let on_stop =
        format!("{} stop {} >/dev/null 2>&1 || :", shq(&slapd_sh.to_string_lossy()), shq(&slapd_dir.to_string_lossy()));
    let setup = work.join("setup.sh");
    fs::write(&setup, setup_script(&deb)).unwrap();
    let sb = Sandbox::boot(&name, &format!("sh -e {} \"$1\"", shq(&setup.to_string_lossy())), &on_stop);
    let slapd = |args: &[&str]| {
        let mut c = sb.command(&["net"]);
        c.arg(&slapd_sh).args(args);
        let r = run_command(&mut c, None, Duration::from_secs(90));
        assert!(r.success(), "slapd.sh {args:?}: code {}\n{}{}", r.code, r.stdout, r.stderr);
    };
    slapd(&["start", &slapd_dir.to_string_lossy(), "389", "636"]);
    assert!(wait_for(Duration::from_secs(30), || sb.active(DAEMON)), "postfix did not start at boot");
    let postfix_pid = sb.prop(DAEMON, "MainPID");

    // ---------------------------------------------------------------- 1 dpkg -i
    let t0 = Instant::now();
    let out = sb.sh(&format!("dpkg -i {DEB_IN} 2>&1"), &[]);
    eprintln!("pkg-e2e: dpkg -i in {:.2} s:\n{out}", t0.elapsed().as_secs_f64());
    for u in UNITS {
        let (load, enabled, active, reload) = (
            sb.prop(u, "LoadState"),
            sb.prop(u, "UnitFileState"),
            sb.prop(u, "ActiveState"),
            sb.prop(u, "NeedDaemonReload"),
        );
        eprintln!("pkg-e2e: after dpkg -i: {u}: {load}, {enabled}, {active}, NeedDaemonReload={reload}");
        assert_eq!(load, "loaded", "{u}");
        assert_eq!(reload, "no", "{u}: postinst did not reload systemd");
        assert!(enabled == "disabled" || enabled == "static", "{u} is {enabled} after dpkg -i");
        assert_eq!(active, "inactive", "{u} is {active} after dpkg -i");
    }
    let links = sb.sh("find /etc/systemd/system -name 'ldap-health-check*' -print", &[]);
    assert!(links.trim().is_empty(), "dpkg -i made links: {links}");
    let files: Vec<String> = sb.sh("dpkg -L ldap-health-check", &[]).lines().map(str::to_string).collect();
    assert!(files.iter().all(|f| !f.starts_with("/etc")), "{files:?}");
    assert_eq!(sb.prop(DAEMON, "MainPID"), postfix_pid, "dpkg -i touched postfix");
    let version = sb.sh("/usr/sbin/ldap-health-check --version", &[]);
    eprintln!("pkg-e2e: installed {}", version.trim());

    // ---------------------------------------------------------------- 2 the administrator enables it
    let prom = format!("{TEXTFILE_DIR}/ldap-health-check.prom");
    let prom_postfix = format!("{TEXTFILE_DIR}/ldap-health-check-postfix.prom");
    sb.sh(&format!(
        "install -d -m 2775 -g postfix {TEXTFILE_DIR} && \
         printf 'LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE={prom}\\n' > {ENV_FILE} && \
         mkdir -p $(dirname {TIMER_DROPIN}) $(dirname {SERVICE_DROPIN}) && \
         printf '[Timer]\\nOnUnitActiveSec=\\nOnBootSec=5s\\nOnUnitActiveSec=2s\\nAccuracySec=100ms\\n' > {TIMER_DROPIN} && \
         printf '[Service]\\nReadWritePaths={TEXTFILE_DIR}\\n' > {SERVICE_DROPIN} && \
         systemctl enable --now {TIMER} 2>&1"
    ), &[]);
    let t0 = Instant::now();
    assert!(
        wait_for(Duration::from_secs(20), || sb.active(START_LATCH)),
        "no passing check after enable --now: {}",
        sb.sh("systemctl status --no-pager ldap-health-check.service 2>&1; systemctl list-jobs --no-pager; systemctl list-timers --all --no-pager; ls /etc/systemd/system/network-online.target.wants /lib/systemd/system/network-online.target.wants; systemctl status --no-pager network-online.target; true", &[])
    );
    let stopped_metric = || sb.sh(&format!("cat {prom_postfix} 2>/dev/null || :"), &[]);
    assert!(wait_for(Duration::from_secs(5), || stopped_metric().contains("\nldap_health_check_postfix_stopped 0\n")));
    eprintln!(
        "pkg-e2e: enable --now -> start latch after {:.2} s; {prom_postfix}:\n{}",
        t0.elapsed().as_secs_f64(),
        stopped_metric()
    );
    let textfile = sb.sh(&format!("cat {prom}"), &[]);
    assert!(textfile.contains("ldap_health_check_up{map=\"/etc/postfix/ldap-users.cf\"} 1\n"), "{textfile}");
    assert_eq!(sb.prop(DAEMON, "MainPID"), postfix_pid, "a passing check touched postfix");

    // ---------------------------------------------------------------- 3 LDAP down -> stopped -> back -> started
    slapd(&["kill", &slapd_dir.to_string_lossy()]);
    let t0 = Instant::now();
    assert!(
        wait_for(Duration::from_secs(20), || sb.active(STOP_LATCH) && !sb.active(DAEMON)),
        "postfix not stopped with LDAP down"
    );
    let down = t0.elapsed().as_secs_f64();
    assert!(wait_for(Duration::from_secs(5), || stopped_metric().contains("\nldap_health_check_postfix_stopped 1\n")));
    let textfile = sb.sh(&format!("cat {prom}"), &[]);
    assert!(textfile.contains("ldap_health_check_up{map=\"/etc/postfix/ldap-users.cf\"} 0\n"), "{textfile}");
    slapd(&["restart", &slapd_dir.to_string_lossy()]);
    let t0 = Instant::now();
    assert!(
        wait_for(Duration::from_secs(20), || sb.active(START_LATCH) && sb.active(DAEMON)),
        "postfix not started with LDAP back"
    );
    let up = t0.elapsed().as_secs_f64();
    assert!(wait_for(Duration::from_secs(5), || stopped_metric().contains("\nldap_health_check_postfix_stopped 0\n")));
    eprintln!("pkg-e2e: LDAP killed -> postfix stopped after {down:.2} s (metric 1); LDAP back -> started after {up:.2} s (metric 0)");

    // ---------------------------------------------------------------- 4 purge
    let t0 = Instant::now();
    let out = sb.sh("dpkg --purge ldap-health-check 2>&1", &[]);
    eprintln!("pkg-e2e: dpkg --purge in {:.2} s:\n{out}", t0.elapsed().as_secs_f64());
    for u in UNITS {
        let (load, active) = (sb.prop(u, "LoadState"), sb.prop(u, "ActiveState"));
        eprintln!("pkg-e2e: after purge: {u}: {load}, {active}");
        assert_eq!(load, "not-found", "{u}: postrm did not reload systemd");
        assert_eq!(active, "inactive", "{u} still {active} after purge");
    }
    let left: Vec<&String> = files.iter().filter(|f| !f.is_empty()).collect();
    let check =
        left.iter().map(|f| format!("[ -d {0} ] || ! [ -e {0} ] || echo {0}", shq(f))).collect::<Vec<_>>().join("; ");
    let remaining = sb.sh(&check, &[]);
    assert!(remaining.trim().is_empty(), "files of the package left after purge:\n{remaining}");
    let dirs = sb.sh("ls -d /usr/share/ldap-health-check /usr/share/doc/ldap-health-check 2>/dev/null || :", &[]);
    assert!(dirs.trim().is_empty(), "directories left: {dirs}");
    let links = sb.sh("find /etc/systemd/system -type l -name 'ldap-health-check*' -print", &[]);
    assert!(links.trim().is_empty(), "enablement links left after purge: {links}");
    let dpkg = sb.sh("ls /var/lib/dpkg/info | grep '^ldap-health-check' || :", &[]);
    assert!(dpkg.trim().is_empty(), "dpkg still knows: {dpkg}");
    // the administrator's files stay
    let admin = sb.sh(&format!("ls {ENV_FILE} {TIMER_DROPIN} {SERVICE_DROPIN} {prom} {prom_postfix}"), &[]);
    assert_eq!(admin.lines().count(), 5, "the administrator's files: {admin}");
    assert!(sb.active(DAEMON), "purge stopped postfix");
    eprintln!(
        "pkg-e2e: after purge: no file, unit or link of the package; kept: {}; whole test {:.1} s",
        admin.split_whitespace().collect::<Vec<_>>().join(" "),
        t_all.elapsed().as_secs_f64()
    );
    drop(sb);
}
