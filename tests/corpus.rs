//! Real-world maps (tests/corpus: docker-mailserver, iRedMail, Kolab, Postfix's LDAP_README) against
//! Postfix's own `postmap -q`, with the directory up, down and hung.
//!
//! `postmap_and_query_agree_with_the_corpus` runs postmap once per case: it checks the corpus itself (every
//! case of each project's keys.tsv gives the recorded outcome and value with real Postfix) and compares
//! `--query` with `postmap -q` (including the lookup order: with the directory down, a key whose expansion is
//! empty is an error for Postfix when it binds first, not found when it does not).

mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use common::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Found,
    NotFound,
    Error,
}
use Outcome::*;

impl Outcome {
    fn parse(s: &str) -> Outcome {
        match s {
            "found" => Found,
            "notfound" => NotFound,
            "error" => Error,
            _ => panic!("bad outcome {s:?} in keys.tsv"),
        }
    }
}

/// One line of a project's keys.tsv.
#[derive(Clone, Debug)]
struct Case {
    map: String,
    key: OsString,
    up: Outcome,
    value: String,
    down: Outcome,
}

/// printf %b, as check-postmap.sh decodes keys: \xHH, \\, \t, \n.
fn decode_key(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' if i + 4 <= b.len() => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).expect("\\xHH in keys.tsv"));
                    i += 4;
                    continue;
                }
                b'\\' => out.push(b'\\'),
                b't' => out.push(b'\t'),
                b'n' => out.push(b'\n'),
                c => panic!("unsupported escape \\{} in keys.tsv", c as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/corpus")
}

fn cases(project: &str) -> Vec<Case> {
    let text = fs::read_to_string(corpus_dir().join(project).join("keys.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "keys.tsv line {l:?}: want MAP KEY UP VALUE DOWN");
            Case {
                map: f[0].to_string(),
                key: decode_key(f[1]),
                up: Outcome::parse(f[2]),
                value: f[3].to_string(),
                down: Outcome::parse(f[4]),
            }
        })
        .collect()
}

/// A fixture slapd with one corpus project loaded (tests/corpus/load.sh).
fn loaded(project: &str) -> Slapd {
    let s = Slapd::start_small();
    let mut cmd = Command::new(corpus_dir().join("load.sh"));
    cmd.arg(&s.dir).arg(corpus_dir().join(project));
    let r = run_command(&mut cmd, None, Duration::from_secs(60));
    assert!(r.success(), "load.sh {project}: {}{}", r.stdout, r.stderr);
    s
}

/// The project's maps rendered for `url` (tests/corpus/render.sh) into a new directory.
fn render(project: &str, url: &str, extra: &[&str]) -> TempDir {
    let dir = TempDir::new();
    let mut cmd = Command::new(corpus_dir().join("render.sh"));
    cmd.arg(corpus_dir().join(project)).arg(dir.path()).arg(url).args(extra);
    let r = run_command(&mut cmd, None, Duration::from_secs(30));
    assert!(r.success(), "render.sh {project}: {}{}", r.stdout, r.stderr);
    dir
}

/// A Postfix configuration directory for this process: main.cf (dated an hour back, so that Postfix
/// does not pause over a "hot" file) and nothing else.
fn postfix_conf() -> &'static Path {
    static CONF: OnceLock<TempDir> = OnceLock::new();
    CONF.get_or_init(|| {
        let d = TempDir::new();
        let main_cf = d.write(
            "main.cf",
            "compatibility_level = 3.6\nmeta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n",
        );
        age_file(&main_cf);
        d
    })
    .path()
}

/// `postmap -q KEY ldap:MAP` with [`postfix_conf`].
fn postmap(map: &Path, key: &OsStr) -> (Outcome, String, Run) {
    let conf = postfix_conf();
    let mut cmd = Command::new("/usr/sbin/postmap");
    let mut target = OsString::from("ldap:");
    target.push(map.as_os_str());
    cmd.arg("-c").arg(conf).arg("-q").arg(key).arg(target);
    let r = run_command(&mut cmd, None, Duration::from_secs(60));
    assert!(!r.timed_out, "postmap -q {key:?} ldap:{} hung", map.display());
    let o = match r.code {
        0 => Found,
        1 if r.stderr.contains("fatal:") => Error,
        1 => NotFound,
        c => panic!("postmap exited {c}: {}", r.stderr),
    };
    (o, r.stdout.trim_end_matches('\n').to_string(), r)
}

/// `--query KEY -f MAP`: 0 found, 1 not found, 2 error. MAIL_CONFIG points at [`postfix_conf`]: the
/// check runs postmap for a "domain = ldap:..." list (Kolab's maps), and this machine has no
/// /etc/postfix/main.cf.
fn ours(map: &Path, key: &OsStr) -> (Outcome, String, Run) {
    let mut cmd = bin_command(&[], &[]);
    cmd.env("MAIL_CONFIG", postfix_conf());
    cmd.arg("--query").arg(key).arg("-f").arg(map);
    let r = run_command(&mut cmd, None, RUN_TIMEOUT);
    assert!(!r.timed_out, "--query {key:?} -f {} still running after {RUN_TIMEOUT:?}", map.display());
    let o = match r.code {
        0 => Found,
        1 => NotFound,
        2 => Error,
        c => panic!("--query exited {c}:\n{}{}", r.stdout, r.stderr),
    };
    (o, r.stdout.trim_end_matches('\n').to_string(), r)
}

/// Runs `f` over `cases` on 16 threads (postmap sleeps 1 s after an error, and hung cases wait), keeping the order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let n = 16.min(items.len().max(1));
    let chunk = items.len().div_ceil(n).max(1);
    thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

const PROJECTS: &[&str] = &["dms", "iredmail", "kolab", "postfix-readme"];

/// The directory states: (name, maps). Down: connections refused. Hung: accepts and never answers
/// (the maps get "timeout = 1" so that each lookup gives up after a second).
struct States {
    up: TempDir,
    down: TempDir,
    hung: TempDir,
    _refuse: FakeServer,
    _silent: FakeServer,
}

fn states(project: &str, s: &Slapd) -> States {
    let refuse = FakeServer::start(FakeMode::Refuse);
    let silent = FakeServer::start(FakeMode::AcceptThenSilence);
    States {
        up: render(project, &s.ldap_url(), &[]),
        down: render(project, &refuse.ldap_url(), &[]),
        hung: render(project, &silent.ldap_url(), &["timeout = 1"]),
        _refuse: refuse,
        _silent: silent,
    }
}

/// The cases tried against the hung server (each that needs the server takes the map's timeout):
/// every case Postfix answers without the server, the keys that are empty or have no domain (whose
/// expansion may be empty, the lookup-order cases), and the first case of each map.
fn hung_subset(cases: &[Case]) -> Vec<Case> {
    let mut seen = std::collections::HashSet::new();
    cases
        .iter()
        .filter(|c| {
            let first = seen.insert(c.map.clone());
            c.down == NotFound || !c.key.as_bytes().contains(&b'@') || first
        })
        .cloned()
        .collect()
}

/// One run of postmap per case: it must give what the corpus recorded (the corpus is right), and `--query`
/// must give what postmap gives (found / not found / error, and the value).
#[test]
fn postmap_and_query_agree_with_the_corpus() {
    let mut failures = Vec::new();
    let mut total = 0;
    for project in PROJECTS {
        let s = loaded(project);
        let st = states(project, &s);
        let all = cases(project);
        let hung = hung_subset(&all);
        for (state, dir, list) in [("up", &st.up, &all), ("down", &st.down, &all), ("hung", &st.hung, &hung)] {
            let results = par_map(list, |c| {
                let map = dir.join(&c.map);
                (postmap(&map, &c.key), ours(&map, &c.key))
            });
            for (c, ((theirs, their_value, pr), (mine, my_value, r))) in list.iter().zip(results) {
                total += 1;
                let (want, want_value) = if state == "up" { (c.up, c.value.as_str()) } else { (c.down, "") };
                if theirs != want || (theirs == Found && their_value != want_value) {
                    failures.push(format!(
                        "{project} {state} {} {:?}: the corpus says {want:?} {want_value:?}, postmap {theirs:?} \
                         {their_value:?} ({})",
                        c.map,
                        c.key,
                        pr.stderr.trim()
                    ));
                }
                if theirs != mine || their_value != my_value {
                    failures.push(format!(
                        "{project} {state} {} {:?}: postmap {theirs:?} {their_value:?} ({}); ours {mine:?} {my_value:?} ({})",
                        c.map,
                        c.key,
                        pr.stderr.trim(),
                        r.stderr.trim()
                    ));
                }
            }
        }
    }
    eprintln!("corpus: {total} cases (up, down, hung), postmap and --query agree on all");
    assert!(failures.is_empty(), "{} of {total} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn keys_decode_like_printf_b() {
    assert_eq!(decode_key(r"\xc3\xbc@x"), OsString::from("ü@x"));
    assert_eq!(decode_key(r"\xff").as_bytes(), &[0xff]);
    assert_eq!(decode_key(""), OsString::new());
}
