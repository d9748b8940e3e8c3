//! Postfix's SMTPD access policy protocol (SMTPD_POLICY_README): a request is `name=value` lines ended by an
//! empty line; the reply is `action=...` and an empty line; many requests per connection, until EOF.
//!
//! Reading is bounded (a line, a request) and never fails the process: a line that is not `name=value`, or a
//! request that is too large, is a [`Request`] marked malformed, answered `DUNNO` like any request the policy
//! cannot judge. Attribute names it does not know are kept and ignored: Postfix adds attributes over versions,
//! and SMTPD_POLICY_README asks servers to ignore those they do not know.

use std::io::{BufRead, Write};

/// The longest request line read; longer ones make the request malformed (the rest of the line is skipped).
pub const MAX_LINE: usize = 8192;
/// The most attributes in one request.
pub const MAX_ATTRIBUTES: usize = 256;

/// One policy request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub attributes: Vec<(String, String)>,
    /// Why the request cannot be read as one, if it cannot (its lines are consumed up to the empty line).
    pub malformed: Option<String>,
}

impl Request {
    /// The value of attribute `name` (the last one, if repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Read the next request; `None` at the end of the input (EOF, also in the middle of a request: smtpd went
/// away, and there is nobody to answer).
pub fn read_request(input: &mut impl BufRead) -> Option<Request> {
    let mut request = Request::default();
    let mut started = false;
    loop {
        let line = match read_line(input) {
            Line::Eof => return None,
            Line::TooLong => {
                request.malformed.get_or_insert_with(|| format!("a line longer than {MAX_LINE} bytes"));
                started = true;
                continue;
            }
            Line::Text(line) => line,
        };
        if line.is_empty() {
            if started {
                return Some(request);
            }
            // An empty line before any attribute: no request to answer.
            continue;
        }
        started = true;
        match line.split_once('=') {
            Some((name, value)) if !name.is_empty() => {
                if request.attributes.len() == MAX_ATTRIBUTES {
                    request.malformed.get_or_insert_with(|| format!("more than {MAX_ATTRIBUTES} attributes"));
                } else {
                    request.attributes.push((name.to_string(), value.to_string()));
                }
            }
            _ => {
                request.malformed.get_or_insert_with(|| "a line that is not name=value".to_string());
            }
        }
    }
}

enum Line {
    Text(String),
    TooLong,
    Eof,
}

/// One line without its `\n` (and a `\r` before it), at most [`MAX_LINE`] bytes; invalid UTF-8 is replaced.
fn read_line(input: &mut impl BufRead) -> Line {
    let mut bytes = Vec::new();
    let mut too_long = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Line::Eof,
        };
        if buf.is_empty() {
            return Line::Eof;
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if bytes.len() + chunk.len() > MAX_LINE {
                too_long = true;
                bytes.clear();
            } else {
                bytes.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        input.consume(used);
        if done.is_some() {
            break;
        }
    }
    if too_long {
        return Line::TooLong;
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    Line::Text(String::from_utf8_lossy(&bytes).into_owned())
}

/// Write one reply: `action=ACTION` and the empty line, flushed.
pub fn write_reply(output: &mut impl Write, action: &str) -> std::io::Result<()> {
    // The action is ours; a newline in it would end the reply early and desynchronize smtpd.
    let action = action.replace(['\r', '\n'], " ");
    output.write_all(format!("action={action}\n\n").as_bytes())?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn all(input: &[u8]) -> Vec<Request> {
        let mut input = Cursor::new(input.to_vec());
        std::iter::from_fn(|| read_request(&mut input)).collect()
    }

    #[test]
    fn requests_follow_one_another_and_eof_ends_them() {
        let got =
            all(b"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=a@b\n\nrequest=x\r\n\r\nsender=half");
        assert_eq!(got.len(), 2, "the request cut by EOF is not answered");
        assert_eq!(got[0].get("protocol_state"), Some("RCPT"));
        assert_eq!(got[0].get("recipient"), Some("a@b"));
        assert_eq!(got[1].get("request"), Some("x"));
        assert!(got.iter().all(|r| r.malformed.is_none()));
    }

    #[test]
    fn malformed_requests_are_marked_and_the_stream_stays_in_step() {
        let long = format!("a={}\n\nrequest=next\n\n", "x".repeat(MAX_LINE + 10));
        let got = all(long.as_bytes());
        assert_eq!(got.len(), 2);
        assert!(got[0].malformed.as_deref().unwrap().contains("longer than"));
        assert_eq!(got[1].get("request"), Some("next"));
        let got = all(b"no equals sign\n=value\nok=1\n\n");
        assert_eq!(got[0].malformed.as_deref(), Some("a line that is not name=value"));
        let many: String = (0..MAX_ATTRIBUTES + 1).map(|i| format!("a{i}=1\n")).collect::<String>() + "\n";
        assert!(all(many.as_bytes())[0].malformed.as_deref().unwrap().contains("attributes"));
        let got = all(b"\n\n\nrequest=x\nbytes=\xff\n\n");
        assert_eq!(got.len(), 1, "empty lines between requests are no request");
        assert_eq!(got[0].get("bytes"), Some("\u{fffd}"));
    }

    #[test]
    fn replies_are_one_action_and_an_empty_line() {
        let mut out = Vec::new();
        write_reply(&mut out, "DEFER_IF_REJECT 4.3.0 try\nlater").unwrap();
        assert_eq!(out, b"action=DEFER_IF_REJECT 4.3.0 try later\n\n");
    }
}
