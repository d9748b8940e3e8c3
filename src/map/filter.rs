//! LDAP search filters as libldap reads them (`ldap_pvt_put_filter()`), once for every use: the blanks it skips
//! ([`normalize`], applied to every filter the check sends), and the presence form of a map's `query_filter`
//! template ([`presence`]): the filter that finds an entry when the map's query would find one for *some* key.

/// One piece of a filter: `(`, an operator of `&`, `|` or `!` after it, `)`, a simple item with its
/// parentheses (`(mail=%s)`), or a bare item without them (`mail=%s`, the whole rest of the filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    Open(u8),
    Close,
    Item(&'a str),
    Bare(&'a str),
}

/// The filter's pieces, blanks between them dropped (libldap skips them after `(`, between the parts of `&`, `|`
/// and `!`, around the whole filter; blanks inside an item are part of it).
fn tokens(filter: &str) -> Vec<Token<'_>> {
    let b = filter.as_bytes();
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\n');
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if blank(b[i]) {
            i += 1;
        } else if b[i] == b')' {
            out.push(Token::Close);
            i += 1;
        } else if b[i] == b'(' {
            let mut j = i + 1;
            while j < b.len() && blank(b[j]) {
                j += 1;
            }
            if j < b.len() && matches!(b[j], b'&' | b'|' | b'!') {
                out.push(Token::Open(b[j]));
                i = j + 1;
                continue;
            }
            // A simple item: up to its closing parenthesis (libldap's find_right_paren()).
            let start = j;
            let mut depth = 0;
            while j < b.len() {
                match b[j] {
                    b'\\' if j + 1 < b.len() => j += 1,
                    b'(' => depth += 1,
                    b')' if depth == 0 => break,
                    b')' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            out.push(Token::Item(&filter[start..j]));
            if j < b.len() {
                out.push(Token::Close);
            }
            i = j + 1;
        } else {
            out.push(Token::Bare(&filter[i..]));
            break;
        }
    }
    out
}

/// The filter as libldap reads it, without the blanks it skips: a filter written over continuation lines works
/// in Postfix, and ldap3's parser rejects the blanks. Blanks inside an `attr=value` item stay: part of the value,
/// or an invalid attribute as for libldap (verified with postmap).
pub(crate) fn normalize(filter: &str) -> String {
    let mut out = String::with_capacity(filter.len());
    let mut open_item = false;
    for t in tokens(filter) {
        match t {
            Token::Open(op) => {
                out.push('(');
                out.push(char::from(op));
            }
            Token::Close if open_item => {
                out.push(')');
                open_item = false;
            }
            Token::Close => out.push(')'),
            Token::Item(item) => {
                out.push('(');
                out.push_str(item);
                open_item = true;
            }
            Token::Bare(rest) => out.push_str(rest),
        }
    }
    out
}

/// Whether `s` holds a `%` expansion of the key (`%s %u %d %S %U %D %1`..`%9`; `%%` is a literal `%`).
fn expands(s: &str) -> bool {
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' && matches!(bytes.next(), Some(b's' | b'u' | b'd' | b'S' | b'U' | b'D' | b'1'..=b'9')) {
            return true;
        }
    }
    false
}

/// The template's text with each expansion a raw `*`, `%%` a `%`, and runs of `*` made one (libldap rejects
/// `**`; an escaped `\2a` is a literal star and stays).
fn starred(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut bytes = s.bytes().peekable();
    while let Some(b) = bytes.next() {
        let c = match b {
            b'%' => match bytes.next() {
                Some(b'%') => b'%',
                Some(_) => b'*',
                None => continue,
            },
            b => b,
        };
        if !(c == b'*' && out.ends_with('*')) {
            out.push(char::from(c));
        }
    }
    out
}

/// One simple item of the template, for the presence filter: unchanged (with `%%` read as `%`) when it holds no
/// expansion; else the loosest item that still asks for the attribute.
fn presence_item(item: &str, negated: bool) -> String {
    if !expands(item) {
        return starred(item);
    }
    // Under an odd number of `!`, the item stands for the entries the map wants *not* to match: it becomes false
    // (`!(objectClass=*)`), so that the `!` above it lets any entry through.
    if negated {
        return "!(objectClass=*)".to_string();
    }
    let Some(eq) = item.find('=') else { return "objectClass=*".to_string() };
    let (attr, value) = (&item[..eq], &item[eq + 1..]);
    // `>=`, `<=`, `~=` and extensible matches (`attr:rule:=`) have no substring form: presence of the attribute.
    let plain = !attr.ends_with(['>', '<', '~']) && !attr.contains(':');
    let attr = attr.trim_end_matches(['>', '<', '~']);
    let attr = attr.split(':').next().unwrap_or("");
    if attr.is_empty() {
        return "objectClass=*".to_string();
    }
    let value = starred(value);
    // A value with a literal `=` is a DN (member, owner...): DN syntaxes have no substring rule, so a partial value
    // would match nothing (slapd: undefined); presence of the attribute instead.
    if !plain || value == "*" || unescaped(&value, b'=') {
        return format!("{attr}=*");
    }
    format!("{attr}={value}")
}

/// Whether `c` occurs in `s` not escaped by a backslash.
fn unescaped(s: &str, c: u8) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            x if x == c => return true,
            _ => i += 1,
        }
    }
    false
}

/// The presence form of a `query_filter` template: each item holding an expansion loosened (see
/// [`presence_item`]), every other item kept. An entry matches it when the map's query matches it for some key
/// (an over-approximation: the check must never say "nothing matches" where Postfix finds something).
/// `None` when the template does not depend on the key (Postfix warns "Fixed query_filter ... is probably
/// useless"; there is nothing to loosen).
pub(crate) fn presence(template: &str) -> Option<String> {
    if !expands(template) {
        return None;
    }
    let mut out = String::with_capacity(template.len());
    // The operators of the enclosing parentheses, to count the `!` an item is under.
    let mut stack: Vec<u8> = Vec::new();
    let mut open_item = false;
    for t in tokens(template) {
        let negated = stack.iter().filter(|&&op| op == b'!').count() % 2 == 1;
        match t {
            Token::Open(op) => {
                stack.push(op);
                out.push('(');
                out.push(char::from(op));
            }
            Token::Close if open_item => {
                out.push(')');
                open_item = false;
            }
            Token::Close => {
                stack.pop();
                out.push(')');
            }
            Token::Item(item) => {
                out.push('(');
                out.push_str(&presence_item(item, negated));
                open_item = true;
            }
            Token::Bare(rest) => {
                out.push('(');
                out.push_str(&presence_item(rest, negated));
                out.push(')');
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_lose_the_blanks_libldap_skips() {
        assert_eq!(normalize("(| (mail=a) \t(uid=b)\n )"), "(|(mail=a)(uid=b))");
        assert_eq!(normalize(" ( & (objectClass=*) (! (uid=x)) ) "), "(&(objectClass=*)(!(uid=x)))");
        assert_eq!(normalize("( mail=a b )"), "(mail=a b )");
        assert_eq!(normalize("(mail=\\29 x)"), "(mail=\\29 x)");
        assert_eq!(normalize("objectclass=*"), "objectclass=*");
        assert_eq!(normalize("(mail =x)"), "(mail =x)");
    }

    #[test]
    fn presence_loosens_each_expanded_item() {
        assert_eq!(presence("(mail=%s)").as_deref(), Some("(mail=*)"));
        assert_eq!(presence("(uid=%u)").as_deref(), Some("(uid=*)"));
        assert_eq!(presence("(mail=%u@%d)").as_deref(), Some("(mail=*@*)"));
        assert_eq!(presence("(mail=%u@example.com)").as_deref(), Some("(mail=*@example.com)"));
        assert_eq!(presence("(mail=*@%s)").as_deref(), Some("(mail=*@*)"), "docker-mailserver's form");
        assert_eq!(presence("(mail=%s*)").as_deref(), Some("(mail=*)"), "no ** for libldap");
        assert_eq!(presence("(mail=100%%-%u)").as_deref(), Some("(mail=100%-*)"));
        assert_eq!(
            presence("(&(objectClass=mailUser)(|(mail=%s)(mailAlias=%s)))").as_deref(),
            Some("(&(objectClass=mailUser)(|(mail=*)(mailAlias=*)))")
        );
        assert_eq!(presence("(member=uid=%u,ou=people,dc=example,dc=com)").as_deref(), Some("(member=*)"));
        assert_eq!(presence("(uidNumber>=%s)").as_deref(), Some("(uidNumber=*)"));
        assert_eq!(presence("(mail:caseExactMatch:=%s)").as_deref(), Some("(mail=*)"));
        assert_eq!(presence("(:dn:2.5.13.5:=%s)").as_deref(), Some("(objectClass=*)"));
        assert_eq!(
            presence("(&(mail=%s)(!(shadowAddress=%s)))").as_deref(),
            Some("(&(mail=*)(!(!(objectClass=*))))"),
            "under an odd number of !, the item is false and its negation lets any entry through"
        );
        assert_eq!(presence("mail=%s").as_deref(), Some("(mail=*)"));
        assert_eq!(presence(" ( &\n (mail=%s)\t(x=\\2a) ) ").as_deref(), Some("(&(mail=*)(x=\\2a))"));
        assert_eq!(presence("(|)"), None, "a fixed filter does not depend on the key");
        assert_eq!(presence("(mail=user@example.com)"), None);
    }
}
