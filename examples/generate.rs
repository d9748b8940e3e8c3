//! Generate the man page and the shell completions from the command line definition (`make man`).
//!
//!     cargo run --example generate [-- OUTDIR]     (default: the crate root)
//!
//! writes man/ldap-health-check.8 (clap_mangen, with the hand-written sections of man/sections.roff after
//! OPTIONS) and completions/{ldap-health-check.bash,_ldap-health-check,ldap-health-check.fish}
//! (clap_complete). The generated files are committed; tests/generated.rs fails when they are out of date.
//! An example rather than part of the binary, so that clap_mangen and clap_complete stay dev-dependencies.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use ldap_health_check::cli::Cli;

const NAME: &str = "ldap-health-check";

/// The hand-written sections: VERDICT, MAP PARAMETERS, OUTPUT, EXIT STATUS, ENVIRONMENT, FILES, SYSTEMD
/// UNITS, EXAMPLES, SEE ALSO.
const SECTIONS: &str = include_str!("../man/sections.roff");

/// Every generated file: its path relative to the crate root, and its content.
pub fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("man/ldap-health-check.8", man_page()),
        ("completions/ldap-health-check.bash", completion(Shell::Bash)),
        ("completions/_ldap-health-check", completion(Shell::Zsh)),
        ("completions/ldap-health-check.fish", completion(Shell::Fish)),
    ]
}

/// ldap-health-check(8). No date in the title line, so the page only changes when its sources do.
fn man_page() -> Vec<u8> {
    let man =
        clap_mangen::Man::new(Cli::command()).title(NAME.to_uppercase()).section("8").manual("System Manager's Manual");
    let mut out = Vec::new();
    man.render_title(&mut out).expect("render to memory");
    man.render_name_section(&mut out).expect("render to memory");
    man.render_synopsis_section(&mut out).expect("render to memory");
    man.render_description_section(&mut out).expect("render to memory");
    man.render_options_section(&mut out).expect("render to memory");
    // clap's after_help (exit status, loop mode) is covered, at more length, by the hand-written sections.
    out.extend_from_slice(SECTIONS.as_bytes());
    out
}

fn completion(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), NAME, &mut out);
    out
}

#[allow(dead_code)] // tests/generated.rs includes this file for `files()` only
fn main() {
    let root =
        std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for (path, content) in files() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        println!("wrote {}", path.display());
    }
}
