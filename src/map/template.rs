//! Postfix's `%` templates (`src/global/db_common.c`), once for every use: `db_common_parse()` (which
//! expansions a template uses, and whether it is valid), `db_common_expand()` (the expansion itself) and the two
//! quoting functions of `dict_ldap.c`. The map reader checks templates with [`Usage::add`], the lookup expands
//! them, and the plan finds the static part of a search base with `is_dynamic`.

/// What the three templates of a map use of the key and of the values (`db_common_parse()` flags). Postfix
/// keeps ONE set of flags for `search_base`, `query_filter` and `result_format`: a `%D` in `result_format`
/// makes unqualified keys skip the search, as does `%d` in the filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub key_user: bool,
    pub key_domain: bool,
    pub value_user: bool,
    pub value_domain: bool,
    /// The highest `%1`..`%9` seen: keys whose domain has fewer labels are skipped.
    pub nparts: usize,
}

impl Usage {
    /// `db_common_parse()`: record what `template` uses; return whether it depends on the key or value, or
    /// `None` when Postfix rejects the template (an unknown `%x`, or a `%` at the end). Valid: `%%`, `%s`, `%u`,
    /// `%d`, `%S`, `%U`, `%D`, `%1`-`%9`. `query` is true for `search_base` and `query_filter`, false for
    /// `result_format`.
    pub fn add(&mut self, template: &str, query: bool) -> Option<bool> {
        let mut dynamic = false;
        let mut bytes = template.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                continue;
            }
            match bytes.next()? {
                b'%' => continue,
                b'u' if query => self.key_user = true,
                b'u' => self.value_user = true,
                b'd' if query => self.key_domain = true,
                b'd' => self.value_domain = true,
                b's' | b'S' => {}
                b'U' => self.key_user = true,
                c @ b'1'..=b'9' => {
                    self.nparts = self.nparts.max(usize::from(c - b'0'));
                    self.key_domain = true;
                }
                b'D' => self.key_domain = true,
                _ => return None,
            }
            dynamic = true;
        }
        Some(dynamic)
    }
}

/// Whether a query template (or a part of one, such as an RDN of `search_base`) depends on the key: `None` when
/// Postfix rejects it.
pub(crate) fn is_dynamic(template: &str) -> Option<bool> {
    Usage::default().add(template, true)
}

/// How a key part is quoted when it is put into a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// `result_format`: values go in as they are.
    None,
    /// `search_base`: Postfix's `rfc2253_quote()`.
    Rfc2253,
    /// `query_filter`: Postfix's `rfc2254_quote()` (RFC 4515).
    Rfc2254,
}

/// Postfix's `rfc2253_quote()`: space, tab, `"`, `#`, `+`, `,`, `;`, `<`, `>` and `\` become `\XX` (upper-case
/// hex) everywhere in the value, not only where RFC 4514 requires it. Other bytes (UTF-8 included) pass.
pub fn rfc2253_quote(s: &[u8], out: &mut Vec<u8>) {
    quote_bytes(s, b" \t\"#+,;<>\\", out);
}

/// Postfix's `rfc2254_quote()`: `*`, `(`, `)` and `\` become `\XX`, so a key can never change the filter.
/// (A NUL cannot occur: keys are C strings, see `lookup::Spec::prepare`.)
pub fn rfc2254_quote(s: &[u8], out: &mut Vec<u8>) {
    quote_bytes(s, b"*()\\", out);
}

fn quote_bytes(s: &[u8], special: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        if special.contains(&b) {
            out.extend_from_slice(format!("\\{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
}

fn put(quote: Quote, s: &[u8], out: &mut Vec<u8>) {
    match quote {
        Quote::None => out.extend_from_slice(s),
        Quote::Rfc2253 => rfc2253_quote(s, out),
        Quote::Rfc2254 => rfc2254_quote(s, out),
    }
}

/// Index where the domain starts (after the last `@`), if there is an `@`.
pub(crate) fn domain_start(s: &[u8]) -> Option<usize> {
    s.iter().rposition(|&b| b == b'@').map(|i| i + 1)
}

/// The non-empty labels of a domain (`argv_split(domain, ".")`: `a..b` has two labels).
fn labels(domain: &[u8]) -> Vec<&[u8]> {
    domain.split(|&b| b == b'.').filter(|l| !l.is_empty()).collect()
}

/// Postfix's `db_common_expand()`. Query mode (`key` is `None`): `value` is the lookup key. Result mode:
/// `value` is an attribute value and `key` the lookup key. Appends the expansion to `out`, preceded by a `,`
/// when `out` already holds something; returns false (appending nothing) when the value or key is skipped:
/// empty, or lacking the local part or domain (or domain labels) that the templates use.
pub fn expand(
    usage: &Usage,
    template: &str,
    value: &[u8],
    key: Option<&[u8]>,
    out: &mut Vec<u8>,
    quote: Quote,
) -> bool {
    let Some(parts) = Parts::of(usage, value, key) else { return false };
    if !out.is_empty() {
        out.push(b',');
    }
    let mut bytes = template.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            None => {}
            Some(b'%') => out.push(b'%'),
            Some(b's') => put(quote, value, out),
            Some(b'u') => put(quote, &parts.user_of_value(), out),
            Some(b'd') => put(quote, parts.domain_of_value(), out),
            Some(b'S') => put(quote, key.unwrap_or(value), out),
            Some(b'U') => put(quote, &parts.user_of_key(), out),
            Some(b'D') => put(quote, parts.domain_of_key(), out),
            Some(c @ b'1'..=b'9') => {
                let n = usize::from(c - b'0');
                if let Some(label) = parts.labels.len().checked_sub(n).and_then(|i| parts.labels.get(i)) {
                    put(quote, label, out);
                }
            }
            Some(other) => {
                out.push(b'%');
                out.push(other);
            }
        }
    }
    true
}

/// The parts of the value and the key that the templates use: where their domains start, and the key's (in
/// query mode the value's) domain labels.
struct Parts<'a> {
    value: &'a [u8],
    key: Option<&'a [u8]>,
    vdomain: Option<usize>,
    kdomain: Option<usize>,
    labels: Vec<&'a [u8]>,
}

impl<'a> Parts<'a> {
    /// `None` when Postfix skips the value or key: empty, or lacking a part the templates use.
    fn of(usage: &Usage, value: &'a [u8], key: Option<&'a [u8]>) -> Option<Parts<'a>> {
        if value.is_empty() {
            return None;
        }
        let lacks = |d: Option<usize>, s: &[u8], user: bool, domain: bool| {
            (domain && d.is_none_or(|d| d == s.len())) || (user && d == Some(1))
        };
        let (mut vdomain, mut kdomain) = (None, None);
        // The value's own parts: what `%u`/`%d` use in a result, or (query mode) every key part.
        let (value_user, value_domain) = match key {
            Some(_) => (usage.value_user, usage.value_domain),
            None => (usage.key_user, usage.key_domain),
        };
        if value_user || value_domain {
            vdomain = domain_start(value);
        }
        if lacks(vdomain, value, value_user, value_domain) {
            return None;
        }
        if let Some(key) = key {
            if usage.key_domain || usage.key_user {
                kdomain = domain_start(key);
            }
            if lacks(kdomain, key, usage.key_user, usage.key_domain) {
                return None;
            }
        }
        let mut parts = Parts { value, key, vdomain, kdomain, labels: Vec::new() };
        if usage.nparts > 0 {
            parts.labels = labels(parts.domain_of_key());
            if parts.labels.len() < usage.nparts {
                return None;
            }
        }
        Some(parts)
    }

    fn user_of(s: &[u8], d: Option<usize>) -> Vec<u8> {
        d.map_or(s, |i| &s[..i - 1]).to_vec()
    }

    fn user_of_value(&self) -> Vec<u8> {
        Self::user_of(self.value, self.vdomain)
    }

    fn domain_of_value(&self) -> &'a [u8] {
        self.vdomain.map_or(&[][..], |i| &self.value[i..])
    }

    /// `%U`: the key's local part (query mode: the value's).
    fn user_of_key(&self) -> Vec<u8> {
        match self.key {
            Some(key) => Self::user_of(key, self.kdomain),
            None => self.user_of_value(),
        }
    }

    /// `%D`: the key's domain (query mode: the value's).
    fn domain_of_key(&self) -> &'a [u8] {
        match self.key {
            Some(key) => self.kdomain.map_or(&[][..], |i| &key[i..]),
            None => self.domain_of_value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(base: &str, filter: &str, format: &str) -> Usage {
        let mut u = Usage::default();
        u.add(base, true);
        u.add(filter, true);
        u.add(format, false);
        u
    }

    fn q(u: &Usage, template: &str, key: &str, quote: Quote) -> Option<String> {
        let mut out = Vec::new();
        expand(u, template, key.as_bytes(), None, &mut out, quote).then(|| String::from_utf8(out).unwrap())
    }

    fn r(u: &Usage, template: &str, value: &str, key: &str) -> Option<String> {
        let mut out = Vec::new();
        expand(u, template, value.as_bytes(), Some(key.as_bytes()), &mut out, Quote::None)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn filter_quoting_escapes_what_rfc2254_quote_escapes() {
        let mut out = Vec::new();
        rfc2254_quote(b"a*)(uid=*", &mut out);
        assert_eq!(out, b"a\\2A\\29\\28uid=\\2A");
        out.clear();
        rfc2254_quote("\\ é,+ #".as_bytes(), &mut out);
        assert_eq!(out, "\\5C é,+ #".as_bytes());
    }

    #[test]
    fn base_quoting_escapes_what_rfc2253_quote_escapes() {
        let mut out = Vec::new();
        rfc2253_quote(b" a\t\"#+,;<>\\b=*()", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "\\20a\\09\\22\\23\\2B\\2C\\3B\\3C\\3E\\5Cb=*()");
        let mut out = Vec::new();
        rfc2253_quote("ü".as_bytes(), &mut out);
        assert_eq!(out, "ü".as_bytes());
    }

    #[test]
    fn query_expansions() {
        let u = usage("", "(&(uid=%u)(d=%d)(s=%s)(S=%S)(U=%U)(D=%D)(%1.%2.%3)(100%%))", "%s");
        assert_eq!(
            q(&u, "(&(uid=%u)(d=%d)(s=%s)(S=%S)(U=%U)(D=%D)(%1.%2.%3)(100%%))", "joe@mail.example.com", Quote::None)
                .as_deref(),
            Some("(&(uid=joe)(d=mail.example.com)(s=joe@mail.example.com)(S=joe@mail.example.com)(U=joe)(D=mail.example.com)(com.example.mail)(100%))")
        );
        // The last '@' separates the domain.
        let u = usage("", "(uid=%u)(d=%d)", "");
        assert_eq!(q(&u, "%u|%d", "a@b@c.d", Quote::None).as_deref(), Some("a@b|c.d"));
    }

    #[test]
    fn hostile_keys_stay_inside_the_filter_value() {
        let u = usage("", "(mail=%s)", "%s");
        assert_eq!(q(&u, "(mail=%s)", "a*)(uid=*", Quote::Rfc2254).as_deref(), Some("(mail=a\\2A\\29\\28uid=\\2A)"));
        assert_eq!(q(&u, "(mail=%s)", "\\", Quote::Rfc2254).as_deref(), Some("(mail=\\5C)"));
        assert_eq!(q(&u, "(mail=%s)", "jörg@例え.jp", Quote::Rfc2254).as_deref(), Some("(mail=jörg@例え.jp)"));
        let u = usage("uid=%u,ou=people", "(x=1)", "%s");
        assert_eq!(q(&u, "uid=%u,ou=people", "a,b+c@x", Quote::Rfc2253).as_deref(), Some("uid=a\\2Cb\\2Bc,ou=people"));
    }

    #[test]
    fn domain_parts_and_missing_parts_skip_the_query() {
        let u = usage("", "(mail=%d)", "%s");
        assert_eq!(q(&u, "(mail=%d)", "plain", Quote::Rfc2254), None);
        assert_eq!(q(&u, "(mail=%d)", "user@", Quote::Rfc2254), None);
        // %d alone does not require a local part.
        assert_eq!(q(&u, "(mail=%d)", "@example.com", Quote::Rfc2254).as_deref(), Some("(mail=example.com)"));
        let u = usage("", "(uid=%u)", "%s");
        assert_eq!(q(&u, "(uid=%u)", "@example.com", Quote::Rfc2254), None);
        // %u alone works on unqualified keys.
        assert_eq!(q(&u, "(uid=%u)", "plain", Quote::Rfc2254).as_deref(), Some("(uid=plain)"));
        // %s never skips; an empty key always does.
        let u = usage("", "(mail=%s)", "%s");
        assert_eq!(q(&u, "(mail=%s)", "@", Quote::Rfc2254).as_deref(), Some("(mail=@)"));
        assert_eq!(q(&u, "(mail=%s)", "", Quote::Rfc2254), None);
    }

    #[test]
    fn numbered_labels_count_from_the_right_and_ignore_empty_labels() {
        let u = usage("", "(%u@%2.%1)", "%s");
        assert_eq!(q(&u, "(%u@%2.%1)", "u@mail.example.com", Quote::None).as_deref(), Some("(u@example.com)"));
        // As Postfix's argv_split(): empty labels vanish (verified with postmap).
        assert_eq!(q(&u, "(%u@%2.%1)", "u@example..com", Quote::None).as_deref(), Some("(u@example.com)"));
        assert_eq!(q(&u, "(%u@%2.%1)", "u@.example.com.", Quote::None).as_deref(), Some("(u@example.com)"));
        assert_eq!(q(&u, "(%u@%2.%1)", "u@com", Quote::None), None);
        let u = usage("", "(dc=%9)", "%s");
        assert_eq!(q(&u, "(dc=%9)", "u@a.b.c.d.e.f.g.h.i", Quote::None).as_deref(), Some("(dc=a)"));
        assert_eq!(q(&u, "(dc=%9)", "u@b.c.d.e.f.g.h.i", Quote::None), None);
    }

    #[test]
    fn flags_are_shared_between_the_templates() {
        // A %D in result_format makes unqualified keys skip the query, %U keys without a local part
        // (verified with postmap: result_format = [%S] [%U] [%D]).
        let u = usage("ou=people", "(mail=%s)", "[%S] [%U] [%D]");
        assert!(u.key_domain && u.key_user && !u.value_domain && !u.value_user);
        assert_eq!(q(&u, "(mail=%s)", "plain", Quote::Rfc2254), None);
        assert_eq!(q(&u, "(mail=%s)", "@example.com", Quote::Rfc2254), None);
        assert_eq!(q(&u, "(mail=%s)", "a@example.com", Quote::Rfc2254).as_deref(), Some("(mail=a@example.com)"));
    }

    #[test]
    fn result_format_expands_values_and_key() {
        let u = usage("", "(mail=%s)", "%u at %d for %U@%D (%S, %s, %1) 100%%");
        assert_eq!(
            r(&u, "%u at %d for %U@%D (%S, %s, %1) 100%%", "joe@example.net", "j@k.example.org").as_deref(),
            Some("joe at example.net for j@k.example.org (j@k.example.org, joe@example.net, org) 100%")
        );
        // %d in the result format skips values without a domain; %u values without a local part.
        let u = usage("", "(mail=%s)", "%d");
        assert_eq!(r(&u, "%d", "nodomain", "k@x"), None);
        let u = usage("", "(mail=%s)", "%u");
        assert_eq!(r(&u, "%u", "@x", "k@x"), None);
        assert_eq!(r(&u, "%u", "plain", "k@x").as_deref(), Some("plain"));
        // Empty values are skipped; values go in unquoted.
        let u = usage("", "(mail=%s)", "%s");
        assert_eq!(r(&u, "%s", "", "k"), None);
        assert_eq!(r(&u, "%s", "a*(b)", "k").as_deref(), Some("a*(b)"));
    }

    #[test]
    fn results_are_joined_with_commas() {
        let u = usage("", "(mail=%s)", "<%s>");
        let mut out = Vec::new();
        for v in ["a", "", "b", "a"] {
            expand(&u, "<%s>", v.as_bytes(), Some(b"k"), &mut out, Quote::None);
        }
        assert_eq!(out, b"<a>,<b>,<a>");
    }
}
