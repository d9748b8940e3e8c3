//! Lookups exactly as Postfix does them: `--query` against Postfix's own `postmap -q` (the oracle), canary
//! keys in the probe, discovery of the maps from main.cf, and the deadline during lookups and recursion.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;

/// What a lookup gives: found (postmap exit 0), not found (exit 1, no "fatal:"), error (exit 1 and
/// "fatal: table ...: query error").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Found,
    NotFound,
    Error,
}
use Outcome::*;

/// Postfix's answer for `key` in `map`: the outcome and stdout.
fn postmap(map: &Path, key: &str) -> (Outcome, String, Run) {
    let r = postmap_query_fast(map, key);
    assert!(!r.timed_out, "postmap -q {key} ldap:{} hung", map.display());
    let outcome = match r.code {
        0 => Found,
        1 if r.stderr.contains("fatal:") => Error,
        1 => NotFound,
        c => panic!("postmap exited {c}: {}", r.stderr),
    };
    (outcome, r.stdout.clone(), r)
}

/// Our answer: `--query KEY -f MAP` (0 found, 1 not found, 2 error).
fn ours(map: &Path, key: &str) -> (Outcome, String, Run) {
    let r = run(&["--query", key, "-f", map.to_str().unwrap()], &[]);
    let outcome = match r.code {
        0 => Found,
        1 => NotFound,
        2 => Error,
        c => panic!("--query exited {c}:\n{}{}", r.stdout, r.stderr),
    };
    (outcome, r.stdout.clone(), r)
}

/// Write the map files and date them an hour back: Postfix re-reads a file written within the last second
/// after a 300 ms pause ("hot" file), which would slow every postmap run down.
fn write_maps(dir: &TempDir, maps: &[(&str, String)]) -> Vec<PathBuf> {
    maps.iter()
        .map(|(name, body)| {
            let p = dir.write(name, body);
            age_file(&p);
            p
        })
        .collect()
}

/// Compare ours with postmap for every key of every map; each case must also give the outcome the corpus
/// expects, so that the corpus keeps covering found, not found and error.
/// One map of a corpus: file name, body, and the keys with the outcome each must give.
type Case<'a> = (&'a str, String, &'a [(&'a str, Outcome)]);

fn compare(maps: &[Case], secret: &str) -> usize {
    let dir = TempDir::new();
    let bodies: Vec<(&str, String)> = maps.iter().map(|(n, b, _)| (*n, b.clone())).collect();
    let paths = write_maps(&dir, &bodies);
    let mut failures = Vec::new();
    let mut cases = 0;
    for ((name, _, keys), path) in maps.iter().zip(&paths) {
        for &(key, expected) in keys.iter() {
            cases += 1;
            let (theirs, their_value, pr) = postmap(path, key);
            let (mine, my_value, r) = ours(path, key);
            assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "bind_pw leaked: {r:?}");
            if theirs != expected || mine != theirs || my_value != their_value {
                failures.push(format!(
                    "{name} {key:?}: expected {expected:?}; postmap {theirs:?} {their_value:?} ({}); ours {mine:?} \
                     {my_value:?} ({})",
                    pr.stderr.trim(),
                    r.stderr.trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} cases differ:\n{}", failures.len(), failures.join("\n"));
    cases
}

/// The map header every oracle map shares: the server and the service identity.
fn head(s: &Slapd) -> String {
    format!(
        "server_host = {}\nbind = yes\nbind_dn = {}\nbind_pw = {}\n",
        s.ldap_url(),
        s.get("SERVICE_DN"),
        s.get("SERVICE_PW")
    )
}

#[test]
fn query_matches_postmap_over_the_corpus() {
    let s = Slapd::shared();
    let h = head(s);
    let people = "search_base = ou=people,dc=example,dc=com\n";
    let all = "search_base = dc=example,dc=com\n";
    let m =
        |name: &'static str, body: &str, keys: &'static [(&'static str, Outcome)]| (name, format!("{h}{body}"), keys);
    let corpus = [
        m(
            "basic.cf",
            &format!("{people}query_filter = (mailLocalAddress=%s)\nresult_attribute = mail, mailRoutingAddress\n"),
            &[
                ("user0001@example.com", Found),
                ("USER0002@Example.COM", Found),
                ("alias-user0010@example.com", Found),
                ("user0100@example.com", Found),
                ("u1@example.org", Found),
                ("nobody@example.com", NotFound),
                ("a*)(uid=*", NotFound),
                ("*", NotFound),
                ("\\", NotFound),
                ("user0001@example.com)(mail=*", NotFound),
                ("@example.com", NotFound),
                ("STRAßE@example.com", NotFound),
            ],
        ),
        // Values come in the entry's attribute order, not in result_attribute's.
        m(
            "reversed.cf",
            &format!("{people}query_filter = (mailLocalAddress=%s)\nresult_attribute = mailRoutingAddress, mail\n"),
            &[("user0002@example.com", Found), ("user0003@example.com", Found)],
        ),
        m(
            "localpart.cf",
            &format!("{people}query_filter = (uid=%u)\nresult_attribute = mail\n"),
            &[("user0004@elsewhere.test", Found), ("user0004", Found), ("@example.com", NotFound)],
        ),
        m(
            "domainpart.cf",
            &format!("{people}query_filter = (&(mailLocalAddress=%s)(mail=*@%d))\nresult_attribute = mail\n"),
            &[("user0005@example.com", Found), ("user0005", NotFound), ("user0005@", NotFound)],
        ),
        m(
            "labels.cf",
            &format!("{people}query_filter = (mailLocalAddress=%u@%2.%1)\nresult_attribute = mail\n"),
            &[
                ("user0006@mail.example.com", Found),
                ("u1@host.example.org", Found),
                ("user0006@example..com", Found),
                ("user0006@com", NotFound),
            ],
        ),
        m(
            "format.cf",
            &format!(
                "{people}query_filter = (mailLocalAddress=%s)\nresult_attribute = mail, mailRoutingAddress\n\
                 result_format = %u at %d for [%S|%U|%D|%1] 100%%\n"
            ),
            &[("user0002@example.com", Found), ("plain", NotFound), ("@example.com", NotFound)],
        ),
        m(
            "format-domain.cf",
            &format!("{people}query_filter = (uid=%s)\nresult_attribute = cn, mail\nresult_format = smtp:[%d]\n"),
            &[("user0007", Found), ("user9999", NotFound)],
        ),
        m(
            "domain.cf",
            &format!(
                "{people}query_filter = (mailLocalAddress=%s)\nresult_attribute = mail\n\
                 domain = example.com, !example.net\n"
            ),
            &[
                ("user0001@example.com", Found),
                ("user0001@EXAMPLE.COM", Found),
                ("u1@example.org", NotFound),
                ("user0001", NotFound),
                ("user0001@sub.example.com", NotFound),
            ],
        ),
        m(
            "recursion.cf",
            &format!(
                "{all}query_filter = (mailLocalAddress=%s)\nresult_attribute = mail\nspecial_result_attribute = member\n"
            ),
            &[("staff@example.com", Found), ("all@example.com", Found), ("user0001@example.com", Found)],
        ),
        m(
            "recursion-limit.cf",
            &format!(
                "{all}query_filter = (mailLocalAddress=%s)\nresult_attribute = mail\nspecial_result_attribute = member\n\
                 recursion_limit = 2\n"
            ),
            &[("staff@example.com", Found), ("all@example.com", Error), ("user0001@example.com", Found)],
        ),
        m(
            "leaf.cf",
            &format!(
                "{all}query_filter = (mailLocalAddress=%s)\nresult_attribute = mailLocalAddress\n\
                 leaf_result_attribute = mail\nspecial_result_attribute = member\n"
            ),
            &[("all@example.com", Found), ("u3@example.org", Found)],
        ),
        // Postfix carries the terminal state to the next entry of the same result: user0150's mail is dropped.
        m(
            "terminal.cf",
            &format!(
                "{all}query_filter = (|(mailLocalAddress=%s)(uid=user0100))\nresult_attribute = mail\n\
                 terminal_result_attribute = mailRoutingAddress\n"
            ),
            &[("user0001@example.com", Found), ("user0150@example.com", Found), ("nobody@example.com", Found)],
        ),
        m(
            "scope-one.cf",
            &format!("{all}scope = one\nquery_filter = (mailLocalAddress=%s)\nresult_attribute = mail\n"),
            &[("user0001@example.com", NotFound), ("staff@example.com", NotFound)],
        ),
        m(
            "scope-base.cf",
            "search_base = uid=%u,ou=people,dc=example,dc=com\nscope = BASE\nquery_filter = (objectClass=*)\n\
             result_attribute = mail\n",
            &[("user0008@x.test", Found), ("nouser@x.test", NotFound), ("a,b+c@x.test", NotFound)],
        ),
        m(
            "dynamic-base.cf",
            "search_base = ou=%d,dc=example,dc=com\nscope = one\nquery_filter = (uid=%u)\nresult_attribute = mail\n",
            &[("user0009@people", Found), ("user0009@nope", NotFound)],
        ),
        m(
            "missing-base.cf",
            "search_base = ou=nope,dc=example,dc=com\nquery_filter = (mailLocalAddress=%s)\nresult_attribute = mail\n",
            &[("user0001@example.com", Error)],
        ),
        m(
            "size-limit.cf",
            &format!("{people}query_filter = (mail=%u*)\nresult_attribute = mail\nsize_limit = 2\n"),
            &[("user0011@x", Found), ("user001@x", Error), ("nouser@x", NotFound)],
        ),
        m(
            "expansion-limit.cf",
            &format!(
                "{all}query_filter = (mailLocalAddress=%s)\nresult_attribute = mail\nspecial_result_attribute = member\n\
                 expansion_limit = 3\n"
            ),
            &[("staff@example.com", Error), ("user0001@example.com", Found)],
        ),
        // Continuation lines, comments inside a continued value, duplicate parameters (the last one wins).
        m(
            "continued.cf",
            &format!(
                "{people}query_filter = (uid=nobody)\nresult_attribute = cn\nquery_filter = (|(mailLocalAddress=%s)\n\
                 # a comment inside the value\n   (uid=%s))\nresult_attribute = mail,\n\tmailRoutingAddress\n"
            ),
            &[("user0100@example.com", Found), ("user0012", Found), ("cn", NotFound)],
        ),
        m(
            "dereference.cf",
            &format!("{people}dereference = 3\nquery_filter = (mailLocalAddress=%s)\nresult_attribute = mail\n"),
            &[("user0013@example.com", Found)],
        ),
        // The service identity cannot see ou=hidden: not found, as for Postfix.
        m(
            "hidden.cf",
            &format!("{all}query_filter = (mail=%s)\nresult_attribute = mail\n"),
            &[("secret@example.com", NotFound), ("user0014@example.com", Found)],
        ),
        m(
            "default-attribute.cf",
            &format!("{people}query_filter = (mailLocalAddress=%s)\n"),
            &[("user0015@example.com", NotFound)],
        ),
        m(
            "bad-filter.cf",
            &format!("{people}query_filter = (mailLocalAddress=%s\nresult_attribute = mail\n"),
            &[("user0016@example.com", Error)],
        ),
    ];
    let cases = compare(&corpus, s.get("SERVICE_PW"));
    assert!(corpus.len() >= 20 && cases >= 60, "{} maps, {cases} cases", corpus.len());
}

#[test]
fn ldap_url_recursion_matches_postmap() {
    let s = Slapd::start_small();
    s.ldapadd(
        "dn: uid=dyn,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\n\
         uid: dyn\ncn: dyn\nsn: dyn\nmailLocalAddress: dyn@example.com\n\
         labeledURI: ldap:///ou=people,dc=example,dc=com?mail?sub?(uid=user000%2A)\n\
         labeledURI: ldap:///uid=user0011,ou=people,dc=example,dc=com\n\
         labeledURI: ldap:///ou=people,dc=example,dc=com?cn?one?(uid=user0012)\n\n\
         dn: uid=dynbad,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\n\
         uid: dynbad\ncn: dynbad\nsn: dynbad\nmailLocalAddress: dynbad@example.com\n\
         labeledURI: ldap:///ou=people,dc=example,dc=com??bogus\n",
    );
    let body = format!(
        "{}search_base = ou=people,dc=example,dc=com\nquery_filter = (mailLocalAddress=%s)\n\
         result_attribute = mail\nspecial_result_attribute = labeledURI\n",
        head(&s)
    );
    let corpus = [("urls.cf", body, &[("dyn@example.com", Found), ("dynbad@example.com", Error)][..])];
    compare(&corpus, s.get("SERVICE_PW"));
}

// ---------------------------------------------------------------------------------------------------------
// Canaries

fn canary_map(s: &Slapd, base: &str, extra: &str) -> String {
    format!("{}search_base = {base}\nquery_filter = (mailLocalAddress=%s)\nresult_attribute = mail\n{extra}", head(s))
}

#[track_caller]
fn check(map: &Path, args: &[&str], code: i32, secret: &str) -> Run {
    let mut a = vec!["--once", "-v", "-f", map.to_str().unwrap()];
    a.extend_from_slice(args);
    let r = run(&a, &[]);
    r.assert_code(code);
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "bind_pw leaked:\n{}{}", r.stdout, r.stderr);
    r
}

fn first_line(r: &Run) -> &str {
    r.stdout.lines().next().unwrap_or("")
}

const NOT_FOUND_550: &str = "canary user0001@example.com not found: Postfix would answer 550 User unknown";

#[test]
fn canary_catches_entries_gone_and_acls_hiding_them() {
    let s = Slapd::start_small();
    let pw = s.get("SERVICE_PW");
    let d = TempDir::new();
    let extra = "health_check_key = user0001@example.com\n";
    let map = d.write("users.cf", &canary_map(&s, "ou=people,dc=example,dc=com", extra));
    let r = check(&map, &[], 0, pw);
    assert!(r.stdout.contains("canary user0001@example.com: found user0001@example.com"), "{}", r.stdout);

    // The entry is gone; the server answers and binds fine.
    let dn = "uid=user0001,ou=people,dc=example,dc=com";
    let ldif = s.search_root(dn, "(objectClass=*)", &[]);
    s.ldapdelete(dn);
    let r = check(&map, &[], 2, pw);
    assert!(first_line(&r).starts_with("LDAP CRITICAL - users.cf: "), "{}", r.stdout);
    assert!(first_line(&r).contains(NOT_FOUND_550), "{}", r.stdout);
    s.ldapadd(&ldif);
    check(&map, &[], 0, pw);

    // An ACL hides the people from the service identity: the base (dc=example,dc=com) is still visible.
    let map = d.write("all.cf", &canary_map(&s, "dc=example,dc=com", extra));
    let root = "to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break";
    let pass = "to attrs=userPassword by self write by anonymous auth by * none";
    s.set_acls(&[
        root,
        pass,
        "to dn.subtree=\"ou=people,dc=example,dc=com\" by dn.exact=\"cn=postfix,ou=services,dc=example,dc=com\" none by * read",
        "to * by * read",
    ]);
    let r = check(&map, &[], 2, pw);
    assert!(first_line(&r).contains(NOT_FOUND_550), "{}", r.stdout);
    s.set_acls(&[
        root,
        pass,
        "to dn.subtree=\"ou=hidden,dc=example,dc=com\" by dn.exact=\"cn=admin,dc=example,dc=com\" read by * none",
        "to * by dn.exact=\"cn=nobody,ou=services,dc=example,dc=com\" none by * read",
    ]);
    check(&map, &[], 0, pw);
}

#[test]
fn canary_on_a_wrong_base_and_from_the_command_line() {
    let s = Slapd::shared();
    let pw = s.get("SERVICE_PW");
    let d = TempDir::new();
    // ou=groups exists and is readable, but no entry below it has a mail address: the presence check sees that
    // it is the wrong base, with no canary.
    let map = d.write("groups-base.cf", &canary_map(s, "ou=groups,dc=example,dc=com", ""));
    let r = check(&map, &[], 2, pw);
    assert!(first_line(&r).contains("no entry under ou=groups,dc=example,dc=com (subtree) matches"), "{}", r.stdout);
    // Without it, only a canary does.
    let map = d.write("groups-base.cf", &canary_map(s, "ou=groups,dc=example,dc=com", "health_check_presence = no\n"));
    let r = check(&map, &[], 0, pw);
    assert!(first_line(&r).starts_with("LDAP OK"), "{}", r.stdout);
    let r = check(&map, &["--canary", "user0001@example.com"], 2, pw);
    assert!(first_line(&r).contains(NOT_FOUND_550), "{}", r.stdout);

    // The map's own keys and the --canary keys both apply; the found values show with -v.
    let map = d.write(
        "people.cf",
        &canary_map(s, "ou=people,dc=example,dc=com", "health_check_key = user0002@example.com, u3@example.org\n"),
    );
    let r = check(&map, &["--canary", "user0004@example.com"], 0, pw);
    for line in [
        "canary user0002@example.com: found user0002@example.com",
        "canary u3@example.org: found user0003@example.com",
        "canary user0004@example.com: found user0004@example.com",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.stdout);
    }
    let r = check(&map, &["--canary", "nobody@example.com"], 2, pw);
    assert!(first_line(&r).contains("canary nobody@example.com not found: Postfix would answer 550"), "{}", r.stdout);
}

#[test]
fn canary_outside_the_domain_list_is_unknown_and_lookup_errors_are_451() {
    let s = Slapd::shared();
    let pw = s.get("SERVICE_PW");
    let d = TempDir::new();
    let map = d.write(
        "restricted.cf",
        &canary_map(s, "ou=people,dc=example,dc=com", "domain = example.com\nhealth_check_key = u1@example.org\n"),
    );
    let r = check(&map, &[], 3, pw);
    assert!(
        first_line(&r).starts_with("LDAP UNKNOWN - restricted.cf: canary u1@example.org is never looked up"),
        "{}",
        r.stdout
    );
    assert!(
        first_line(&r).contains("not in the map's domain list") && first_line(&r).contains("health_check_key"),
        "{}",
        r.stdout
    );

    // A lookup error is a 451 for Postfix: CRITICAL, and it wins over UNKNOWN.
    let map = d.write(
        "limited.cf",
        &format!(
            "{}search_base = ou=people,dc=example,dc=com\nquery_filter = (mail=%u*)\nresult_attribute = mail\n\
             size_limit = 1\nhealth_check_key = user00@example.com\n",
            head(s)
        ),
    );
    let r = check(&map, &["--canary", "x@example.org"], 2, pw);
    assert!(
        first_line(&r).contains("canary user00@example.com lookup failed: search error: size limit exceeded (4)")
            && first_line(&r).contains("Postfix would answer 451 temporary lookup failure"),
        "{}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------------------------------------
// Discovery

#[test]
fn maps_are_discovered_from_main_cf() {
    let s = Slapd::shared();
    let pw = s.get("SERVICE_PW");
    let conf = TempDir::new();
    let dir = conf.path().display().to_string();
    let users = canary_map(s, "ou=people,dc=example,dc=com", "health_check_key = user0001@example.com\n");
    let aliases =
        canary_map(s, "dc=example,dc=com", "special_result_attribute = member\nhealth_check_key = staff@example.com\n");
    let senders = format!(
        "{}search_base = ou=people,dc=example,dc=com\nquery_filter = (mail=%s)\nresult_attribute = uid\n",
        head(s)
    );
    write_maps(&conf, &[("users.cf", users), ("aliases.cf", aliases), ("senders.cf", senders)]);
    let main_cf = format!(
        "compatibility_level = 3.6\nmeta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n\
         virtual_mailbox_domains = example.com\n\
         virtual_mailbox_maps = ldap:$config_directory/users.cf, hash:$config_directory/unused\n\
         virtual_alias_maps = proxy:ldap:{dir}/aliases.cf\n\
         smtpd_sender_login_maps = unionmap:{{ldap:{dir}/senders.cf, ldap:{dir}/users.cf}}\n\
         relay_recipient_maps = ldap:relay\n\
         relay_server_host = {}\nrelay_search_base = ou=people,$relay_suffix\nrelay_suffix = dc=example,dc=com\n\
         relay_query_filter = (mailLocalAddress=%s)\nrelay_result_attribute = mail\n\
         relay_bind_dn = {}\nrelay_bind_pw = {pw}\nrelay_health_check_key = user0002@example.com\n",
        s.ldap_url(),
        s.get("SERVICE_DN"),
    );
    age_file(&conf.write("main.cf", &main_cf));
    let r = run(&["--once", "-v", "--postfix-config", &dir], &[]);
    r.assert_code(0);
    assert!(!r.stdout.contains(pw) && !r.stderr.contains(pw), "bind_pw leaked:\n{}{}", r.stdout, r.stderr);
    assert!(first_line(&r).starts_with("LDAP OK - 4 maps, 1 server in "), "{}", r.stdout);
    for line in [
        "users.cf: OK",
        "  used by: smtpd_sender_login_maps, virtual_mailbox_maps",
        "aliases.cf: OK",
        "  used by: virtual_alias_domains, virtual_alias_maps",
        "senders.cf: OK",
        "ldap:relay: OK",
        "  used by: relay_recipient_maps",
        "canary staff@example.com: found user0001@example.com,",
        "canary user0002@example.com: found user0002@example.com",
    ] {
        assert!(r.stdout.contains(line), "missing {line:?}:\n{}", r.stdout);
    }

    // The same configuration with a map whose entries cannot be found: CRITICAL, named.
    age_file(
        &conf.write("main.cf", &main_cf.replace("relay_health_check_key = user0002", "relay_health_check_key = gone")),
    );
    let r = run(&["--once", "--postfix-config", &dir], &[]);
    r.assert_code(2);
    assert!(first_line(&r).contains("ldap:relay: canary gone@example.com not found"), "{}", r.stdout);

    // No LDAP map at all, or no configuration: UNKNOWN.
    age_file(&conf.write("main.cf", "compatibility_level = 3.6\nvirtual_alias_maps = hash:/etc/postfix/virtual\n"));
    let r = run(&["--once", "--postfix-config", &dir], &[]);
    r.assert_code(3);
    assert!(first_line(&r).starts_with("LDAP UNKNOWN - no ldap: map in the Postfix configuration"), "{}", r.stdout);
    let r = run(&["--once", "--postfix-config", &format!("{dir}/nonexistent")], &[]);
    r.assert_code(3);
    assert!(first_line(&r).contains("cannot read the configuration"), "{}", r.stdout);
}

#[test]
fn discovery_runs_under_the_deadline() {
    // A postconf that hangs (a slow disk, a stuck NFS /etc/postfix): found first on PATH, as discovery looks for
    // it there before /usr/sbin.
    let tools = TempDir::new();
    let fake = tools.write("postconf", "#!/bin/sh\nexec sleep 30\n");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", tools.path().display(), std::env::var("PATH").unwrap_or_default());
    let conf = TempDir::new();
    let dir = conf.path().to_str().unwrap();
    let r = run(&["--once", "-t", "1", "--postfix-config", dir], &[("PATH", &path)]);
    r.assert_code(3);
    assert!(r.elapsed < Duration::from_secs(4), "discovery took {:?} with -t 1", r.elapsed);
    assert!(first_line(&r).starts_with("LDAP UNKNOWN - postconf -c "), "{}", r.stdout);
    assert!(first_line(&r).contains("did not finish within the deadline"), "{}", r.stdout);
}

// ---------------------------------------------------------------------------------------------------------
// The deadline during lookups

/// A fake LDAP server: answers binds, answers the first `searches` search requests with one entry that has a
/// `member` DN (a group to recurse into) and goes silent for any later one, like a server stopped in the
/// middle of a recursive lookup.
struct FakeLdap {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn message(id: &[u8], op: Vec<u8>) -> Vec<u8> {
    let mut body = tlv(0x02, id);
    body.extend(op);
    tlv(0x30, &body)
}

fn result_op(tag: u8) -> Vec<u8> {
    tlv(tag, &[0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00])
}

fn group_entry(id: &[u8]) -> Vec<u8> {
    let attr = |name: &str, value: &str| {
        let mut a = tlv(0x04, name.as_bytes());
        a.extend(tlv(0x31, &tlv(0x04, value.as_bytes())));
        tlv(0x30, &a)
    };
    let mut attrs = attr("mail", "group@example.com");
    attrs.extend(attr("member", "cn=next,dc=example,dc=com"));
    let mut entry = tlv(0x04, b"cn=group,dc=example,dc=com");
    entry.extend(tlv(0x30, &attrs));
    message(id, tlv(0x64, &entry))
}

/// One LDAPMessage: (message id bytes, protocol op tag).
fn read_request(s: &mut TcpStream) -> Option<(Vec<u8>, u8)> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).ok()?;
    let len = if head[1] & 0x80 == 0 {
        usize::from(head[1])
    } else {
        let mut b = vec![0u8; usize::from(head[1] & 0x7f)];
        s.read_exact(&mut b).ok()?;
        b.iter().fold(0, |a, &x| (a << 8) | usize::from(x))
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    let id_len = usize::from(*body.get(1)?);
    Some((body.get(2..2 + id_len)?.to_vec(), *body.get(2 + id_len)?))
}

impl FakeLdap {
    fn start(searches: usize) -> FakeLdap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (stop3, seen3) = (stop2.clone(), seen2.clone());
                        conns.push(thread::spawn(move || serve(s, searches, stop3, seen3)));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        FakeLdap { port, stop, seen, thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }
}

fn serve(mut s: TcpStream, searches: usize, stop: Arc<AtomicBool>, seen: Arc<AtomicUsize>) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut answered = 0;
    while !stop.load(Ordering::SeqCst) {
        let Some((id, op)) = read_request(&mut s) else {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            // A read timeout between requests: keep waiting (a partial message is not expected here).
            let mut probe = [0u8; 1];
            match s.peek(&mut probe) {
                Ok(0) => return,
                _ => continue,
            }
        };
        let reply = match op {
            0x60 => message(&id, result_op(0x61)),
            0x63 => {
                seen.fetch_add(1, Ordering::SeqCst);
                if answered == searches {
                    continue; // silence
                }
                answered += 1;
                let mut r = group_entry(&id);
                r.extend(message(&id, result_op(0x65)));
                r
            }
            0x42 => return,
            _ => continue,
        };
        if s.write_all(&reply).is_err() {
            return;
        }
    }
}

impl Drop for FakeLdap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn deadline_holds_when_the_server_stalls_mid_recursion() {
    let d = TempDir::new();
    let body = |url: &str| {
        format!(
            "server_host = {url}\nbind = no\nsearch_base = dc=example,dc=com\nquery_filter = (mailLocalAddress=%s)\n\
             result_attribute = mail\nspecial_result_attribute = member\nhealth_check_key = group@example.com\n"
        )
    };
    // The probe: the base search and the canary's search are answered, the recursion's search is not.
    let fake = FakeLdap::start(2);
    let map = d.write("stall.cf", &body(&fake.url()));
    let r = run(&["--once", "-v", "-t", "1.5", "-f", map.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert!(r.elapsed < Duration::from_millis(1500 + 2500), "took {:?}", r.elapsed);
    assert!(
        first_line(&r).contains("canary group@example.com lookup failed: timed out after 1.5 s in canary lookup")
            && first_line(&r).contains("451"),
        "{}",
        r.stdout
    );
    assert_eq!(fake.seen.load(Ordering::SeqCst), 3, "base search, canary search, recursion");

    // --query: the lookup's search is answered, the recursion's is not.
    let fake = FakeLdap::start(1);
    let map = d.write("stall-query.cf", &body(&fake.url()));
    let r = run(&["--query", "group@example.com", "-t", "1", "-f", map.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert!(r.elapsed < Duration::from_millis(1000 + 2500), "took {:?}", r.elapsed);
    assert!(r.stdout.is_empty() && r.stderr.contains("timed out"), "{r:?}");
    assert_eq!(fake.seen.load(Ordering::SeqCst), 2);
    // Without -t the map's timeout is the deadline.
    let map = d.write("stall-timeout.cf", &format!("{}timeout = 1\n", body(&fake.url())));
    let r = run(&["--query", "group@example.com", "-f", map.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert!(r.elapsed < Duration::from_millis(1000 + 2500), "took {:?}", r.elapsed);
}

#[test]
fn query_usage_and_failover() {
    let s = Slapd::shared();
    let d = TempDir::new();
    // Postfix fails over only when a connection cannot be made: a refused first server is skipped.
    let refused = FakeServer::start(FakeMode::Refuse);
    let body = format!(
        "server_host = {} {}\nsearch_base = ou=people,dc=example,dc=com\nquery_filter = (mailLocalAddress=%s)\n\
         result_attribute = mail\n",
        refused.ldap_url(),
        s.ldap_url()
    );
    let map = d.write("failover.cf", &body);
    let r = run(&["--query", "user0001@example.com", "-f", map.to_str().unwrap()], &[]);
    r.assert_code(0);
    assert_eq!(r.stdout, "user0001@example.com\n");
    // An ldaps server whose certificate is rejected is failed over too, as libldap (and so postmap) does.
    let rejected = format!(
        "server_host = {} {}\nsearch_base = ou=people,dc=example,dc=com\nquery_filter = (mailLocalAddress=%s)\n\
         result_attribute = mail\ntls_require_cert = yes\ntls_ca_cert_file = {}\n",
        s.ldaps_url(),
        s.ldap_url(),
        s.get("WRONG_CA_FILE")
    );
    let map = d.write("ldaps-rejected.cf", &rejected);
    let r = run(&["--query", "user0001@example.com", "-f", map.to_str().unwrap()], &[]);
    r.assert_code(0);
    assert_eq!(r.stdout, "user0001@example.com\n");
    let oracle = postmap_query(&map, "user0001@example.com");
    assert_eq!(oracle.stdout, r.stdout, "postmap: {}", oracle.stderr);
    // A server that accepts and then stalls is not failed over: a lookup error.
    let silent = FakeServer::start(FakeMode::AcceptThenSilence);
    let map = d.write("nofailover.cf", &body.replace(&refused.ldap_url(), &silent.ldap_url()));
    let r = run(&["--query", "user0001@example.com", "-t", "1", "-f", map.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    // Usage errors exit 3.
    let r = run(&["--query", "k"], &[]);
    r.assert_code(3);
    let m = map.to_str().unwrap();
    let r = run(&["--query", "k", "-f", m, "-f", "/etc/postfix/other.cf"], &[]);
    r.assert_code(3);
    // A map Postfix would refuse: an error, with the reason.
    let bad = d.write("bad.cf", "server_host = ldap://127.0.0.1\ntimeout = 5s\n");
    let r = run(&["--query", "k", "-f", bad.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("bad numerical configuration"), "{}", r.stderr);
}
