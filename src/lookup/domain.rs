//! The `domain` restriction of a map (`db_common_check_domain()` over a `string_list` built with
//! `match_list_init()`): which keys Postfix looks up at all.

use std::path::Path;
use std::time::Instant;

use crate::casefold::casefold;

/// One entry of a `domain` list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// A domain, compared after case folding.
    Literal(String),
    /// A `type:table` lookup (`hash:/etc/postfix/domains`), asked through `postmap -q`.
    Table(String),
}

/// A `domain` list (`string_list_init(MATCH_FLAG_RETURN, ...)`): domains, `/file/name` (its lines, in place,
/// `#` lines skipped) and `type:table`, each optionally negated with `!`; the first pattern that matches
/// decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainList {
    patterns: Vec<(bool, Pattern)>,
}

impl DomainList {
    /// Build the list from the tokens of `domain` (already split on commas and whitespace). A file that cannot
    /// be read is an error, as it is fatal for Postfix.
    pub fn parse(tokens: &[String], until: Instant) -> Result<DomainList, String> {
        let mut list = DomainList::default();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        list.add(&tokens, 0, until)?;
        Ok(list)
    }

    fn add(&mut self, tokens: &[&str], depth: usize, until: Instant) -> Result<(), String> {
        for &token in tokens {
            let bare = token.trim_start_matches('!');
            let negate = (token.len() - bare.len()) % 2 == 1;
            if token.starts_with('/') {
                if depth > 10 {
                    return Err(format!("domain: {token}: files included too deeply"));
                }
                let text = crate::file::read(Path::new(token), until)
                    .map_err(|e| format!("domain: open file {token}: {e}"))?;
                let text = String::from_utf8_lossy(&text).into_owned();
                for line in text.lines().filter(|l| !l.starts_with('#')) {
                    let words: Vec<&str> = line.split([' ', ',', '\t', '\r', '\n']).filter(|t| !t.is_empty()).collect();
                    self.add(&words, depth + 1, until)?;
                }
            } else if bare.starts_with('/') {
                return Err(format!("domain: {token}: '!' before a /file/name is not supported by Postfix"));
            } else if !bare.starts_with('[') && bare.contains(':') {
                self.patterns.push((negate, Pattern::Table(bare.to_string())));
            } else {
                self.patterns.push((negate, Pattern::Literal(casefold(bare))));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `domain` (already folded) is on the list. `table` answers `type:table` patterns.
    pub fn matches(
        &self,
        domain: &str,
        table: &mut dyn FnMut(&str, &str) -> Result<bool, String>,
    ) -> Result<bool, String> {
        for (negate, pattern) in &self.patterns {
            let hit = match pattern {
                Pattern::Literal(l) => l == domain,
                Pattern::Table(t) => table(t, domain)?,
            };
            if hit {
                return Ok(!negate);
            }
        }
        Ok(false)
    }
}
