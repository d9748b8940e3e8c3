//! Monitoring Plugins threshold ranges: `[@]start:end` (`10`, `10:`, `~:10`, `10:20`, `@10:20`).
//!
//! A range alerts when the value is *outside* `start..=end`, or *inside* it with a leading `@`
//! (Monitoring Plugins Development Guidelines, "Threshold and ranges").

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    start: f64,
    end: f64,
    inside: bool,
    text: String,
}

impl Range {
    /// Whether `value` raises the alert this range describes.
    pub fn alerts(&self, value: f64) -> bool {
        let within = value >= self.start && value <= self.end;
        if self.inside {
            within
        } else {
            !within
        }
    }
}

impl fmt::Display for Range {
    /// The range as the user wrote it, which is also its perfdata form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let bad =
            |why: &str| format!("'{text}' is not a Nagios range ({why}); use e.g. 10, 10:, ~:10, 10:20 or @10:20");
        let (inside, body) = match text.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if body.is_empty() {
            return Err(bad("empty"));
        }
        let number = |t: &str| -> Result<f64, String> {
            match t.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(bad(&format!("'{t}' is not a number"))),
            }
        };
        let (start, end) = match body.split_once(':') {
            None => (0.0, number(body)?),
            Some((a, b)) => {
                let start = match a {
                    "" => 0.0,
                    "~" => f64::NEG_INFINITY,
                    _ => number(a)?,
                };
                let end = if b.is_empty() { f64::INFINITY } else { number(b)? };
                (start, end)
            }
        };
        if start > end {
            return Err(bad("start is greater than end"));
        }
        Ok(Range { start, end, inside, text: text.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Range {
        s.parse().unwrap()
    }

    #[test]
    fn guideline_table() {
        // range, values that alert, values that do not
        let cases: &[(&str, &[f64], &[f64])] = &[
            ("10", &[-0.1, 10.1, 11.0], &[0.0, 5.0, 10.0]),
            ("10:", &[9.9, -1.0], &[10.0, 1e9]),
            ("~:10", &[10.1, 1e9], &[-1e9, 10.0]),
            ("10:20", &[9.9, 20.1], &[10.0, 15.0, 20.0]),
            ("@10:20", &[10.0, 15.0, 20.0], &[9.9, 20.1]),
            ("@1:2", &[1.0, 1.5, 2.0], &[0.5, 2.5]),
            ("0.5", &[0.6], &[0.5, 0.0]),
        ];
        for (range, alert, quiet) in cases {
            for v in *alert {
                assert!(r(range).alerts(*v), "{range} should alert on {v}");
            }
            for v in *quiet {
                assert!(!r(range).alerts(*v), "{range} should not alert on {v}");
            }
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "@", "abc", "20:10", "1:x", "~", "nan", "inf"] {
            assert!(s.parse::<Range>().is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(r("~:10").to_string(), "~:10");
        assert_eq!(r("@1:2").to_string(), "@1:2");
    }
}
