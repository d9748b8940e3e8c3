//! The committed man page and shell completions are what examples/generate.rs makes from the current CLI
//! definition; the man page renders without warnings; `make install` puts them where man and the shells look.

mod common;

#[allow(dead_code)] // its main() is for `make man`; the tests use files()
#[path = "../examples/generate.rs"]
mod generate;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn committed_man_page_and_completions_are_current() {
    let mut stale = Vec::new();
    for (path, content) in generate::files() {
        let committed = fs::read(repo_root().join(path)).unwrap_or_default();
        if committed != content {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the CLI definition or man/sections.roff: {}\nrun `make man` and commit the result",
        stale.join(", ")
    );
}

/// `man` is optional on a build machine (Debian: package man-db): without it the rendering is not checked.
fn man_available() -> bool {
    Command::new("man").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn man_page_renders_without_warnings() {
    if !man_available() {
        eprintln!("SKIPPED: `man` is not installed (Debian package man-db)");
        return;
    }
    let d = TempDir::new();
    let page = d.join("ldap-health-check.8");
    let (_, content) = generate::files().into_iter().find(|(p, _)| p.starts_with("man/")).unwrap();
    fs::write(&page, content).unwrap();
    let mut cmd = Command::new("man");
    cmd.args(["--warnings", "-l"]).arg(&page).env("MANWIDTH", "80").env("MAN_KEEP_FORMATTING", "");
    let r = run_command(&mut cmd, None, RUN_TIMEOUT);
    r.assert_code(0);
    assert_eq!(r.stderr, "", "man --warnings complained");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "VERDICT",
        "MAP PARAMETERS",
        "OUTPUT",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "SYSTEMD UNITS",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(r.stdout.lines().any(|l| l == section), "no section {section}:\n{}", r.stdout);
    }
    for text in ["--prometheus-textfile", "--format", "LDAP_HEALTH_CHECK_CONFFILE", "ldap-health-check.timer"] {
        assert!(r.stdout.contains(text), "{text} missing:\n{}", r.stdout);
    }
}

#[test]
fn completions_know_the_options() {
    for (path, content) in generate::files().into_iter().filter(|(p, _)| p.starts_with("completions/")) {
        let text = String::from_utf8(content).unwrap();
        for option in ["conffile", "once", "format", "prometheus-textfile"] {
            assert!(text.contains(option), "{path} lacks {option}");
        }
    }
    let bash = fs::read_to_string(repo_root().join("completions/ldap-health-check.bash")).unwrap();
    assert!(bash.contains("-o default ldap-health-check"), "{bash}");
    let r = run_command(
        Command::new("bash").arg("-n").arg(repo_root().join("completions/ldap-health-check.bash")),
        None,
        RUN_TIMEOUT,
    );
    r.assert_code(0);
    let zsh = fs::read_to_string(repo_root().join("completions/_ldap-health-check")).unwrap();
    assert!(zsh.starts_with("#compdef ldap-health-check"), "{zsh}");
    let fish = fs::read_to_string(repo_root().join("completions/ldap-health-check.fish")).unwrap();
    assert!(fish.contains("complete -c ldap-health-check"), "{fish}");
}

#[test]
fn make_install_puts_man_page_and_completions_in_place() {
    let d = TempDir::new();
    let destdir = format!("DESTDIR={}", d.path().display());
    let make = |targets: &[&str]| {
        let mut cmd = Command::new("make");
        cmd.arg("-C").arg(repo_root()).arg("--no-print-directory").args(targets).args([&destdir, "PREFIX=/usr"]);
        run_command(&mut cmd, None, RUN_TIMEOUT)
    };
    make(&["install-man", "install-completions"]).assert_code(0);
    let installed = [
        ("usr/share/man/man8/ldap-health-check.8", "man/ldap-health-check.8"),
        ("usr/share/bash-completion/completions/ldap-health-check", "completions/ldap-health-check.bash"),
        ("usr/share/zsh/site-functions/_ldap-health-check", "completions/_ldap-health-check"),
        ("usr/share/fish/vendor_completions.d/ldap-health-check.fish", "completions/ldap-health-check.fish"),
    ];
    for (to, from) in installed {
        let got = fs::read(d.join(to)).unwrap_or_else(|e| panic!("{to} not installed: {e}"));
        assert_eq!(got, fs::read(repo_root().join(from)).unwrap(), "{to}");
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(d.join(to)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o644, "{to}");
    }
    make(&["uninstall-man", "uninstall-completions"]).assert_code(0);
    for (to, _) in installed {
        assert!(!d.join(to).exists(), "{to} left behind by uninstall");
    }
}
