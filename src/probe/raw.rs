//! LDAP exchanges made by hand on the stream before ldap3 gets it: the StartTLS extended operation (so that
//! STARTTLS and the TLS handshake are separate stages; ldap3 then does the handshake), and an LDAPv2 simple bind
//! (ldap3 speaks only v3; Postfix with `version = 2` binds as v2, which slapd 2.5 refuses by default).
//!
//! A small BER codec: the requests (RFC 4511 4.14, 4.2), one LDAPMessage read from the stream and nothing more,
//! and the result code and text of the response.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::reason::{io_reason, result_reason};

/// The StartTLS extended request (RFC 4511 4.14), message ID 1: `1.3.6.1.4.1.1466.20037`.
const STARTTLS_REQUEST: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

/// Send StartTLS and read its response by hand, so that STARTTLS and the TLS handshake are timed and
/// reported as two stages (ldap3 does both in one call).
pub(crate) async fn start_tls(stream: &mut TcpStream) -> Result<(), String> {
    stream.write_all(STARTTLS_REQUEST).await.map_err(|e| io_reason(&e))?;
    let message = read_ber_message(stream).await?;
    let (rc, text) = parse_response(&message, 0x78).ok_or("the server sent a malformed response to StartTLS")?;
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("StartTLS refused: {}", result_reason(rc, &text)))
    }
}

/// An LDAPv2 simple bind as `dn` with `password` (message ID 1): `Ok` on success, else the result in words.
pub(crate) async fn bind_v2(stream: &mut TcpStream, dn: &str, password: &str) -> Result<(), String> {
    stream.write_all(&bind_v2_request(dn, password)).await.map_err(|e| io_reason(&e))?;
    let message = read_ber_message(stream).await?;
    let (rc, text) = parse_response(&message, 0x61).ok_or("the server sent a malformed response to the bind")?;
    if rc == 0 {
        Ok(())
    } else {
        Err(result_reason(rc, &text))
    }
}

/// `LDAPMessage { messageID 1, BindRequest { version 2, name, simple password } }` (RFC 1777 / 4511 4.2).
fn bind_v2_request(dn: &str, password: &str) -> Vec<u8> {
    let op = [tlv(0x02, &[2]), tlv(0x04, dn.as_bytes()), tlv(0x80, password.as_bytes())].concat();
    tlv(0x30, &[tlv(0x02, &[1]), tlv(0x60, &op)].concat())
}

/// One BER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n => {
            let bytes: Vec<u8> = (n as u32).to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    out.extend_from_slice(content);
    out
}

/// Read one BER-encoded LDAPMessage (SEQUENCE) from the stream, and nothing more.
async fn read_ber_message(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let closed = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "the server closed the connection".to_string()
        } else {
            io_reason(&e)
        }
    };
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.map_err(closed)?;
    if head[0] != 0x30 {
        return Err("the server did not answer with an LDAP message".to_string());
    }
    let len = if head[1] & 0x80 == 0 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 4 {
            return Err("the server sent an invalid LDAP message length".to_string());
        }
        let mut bytes = [0u8; 4];
        stream.read_exact(&mut bytes[4 - n..]).await.map_err(closed)?;
        u32::from_be_bytes(bytes) as usize
    };
    if len > 65_536 {
        return Err("the server sent an oversized response".to_string());
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(closed)?;
    Ok(body)
}

/// Split one BER TLV off the front of `data`: (tag, value, rest).
fn ber_tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The result code and diagnostic text of a response whose protocolOp has tag `op_tag`: 0x78 an
/// ExtendedResponse (or a Notice of Disconnection), 0x61 a BindResponse.
fn parse_response(body: &[u8], op_tag: u8) -> Option<(u32, String)> {
    let (tag, _id, rest) = ber_tlv(body)?;
    if tag != 0x02 {
        return None;
    }
    let (tag, op, _) = ber_tlv(rest)?;
    if tag != op_tag {
        return None;
    }
    let (tag, rc, rest) = ber_tlv(op)?;
    if tag != 0x0a || rc.is_empty() || rc.len() > 4 {
        return None;
    }
    let rc = rc.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    let text = ber_tlv(rest)
        .and_then(|(_, _, rest)| ber_tlv(rest))
        .map(|(_, text, _)| String::from_utf8_lossy(text).into_owned())
        .unwrap_or_default();
    Some((rc, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starttls_request_is_well_formed() {
        let (tag, body, rest) = ber_tlv(STARTTLS_REQUEST).unwrap();
        assert_eq!((tag, rest.len()), (0x30, 0));
        let (tag, id, rest) = ber_tlv(body).unwrap();
        assert_eq!((tag, id), (0x02, &[1u8][..]));
        let (tag, op, _) = ber_tlv(rest).unwrap();
        assert_eq!(tag, 0x77);
        let (tag, oid, _) = ber_tlv(op).unwrap();
        assert_eq!((tag, oid), (0x80, &b"1.3.6.1.4.1.1466.20037"[..]));
    }

    #[test]
    fn v2_bind_request_is_well_formed() {
        let request = bind_v2_request("cn=x", "pw");
        assert_eq!(request, b"\x30\x12\x02\x01\x01\x60\x0d\x02\x01\x02\x04\x04cn=x\x80\x02pw");
        let long = bind_v2_request(&"d".repeat(200), "p");
        let (tag, body, rest) = ber_tlv(&long).unwrap();
        assert_eq!((tag, body.len(), rest.len()), (0x30, 215, 0), "id 3 + op 1+2+209 (version 3, dn 1+2+200, pw 3)");
        // A refusal, as slapd 2.5 answers a v2 bind: protocolError with its text.
        let refusal = [0x02, 0x01, 0x01, 0x61, 0x08, 0x0a, 0x01, 0x02, 0x04, 0x00, 0x04, 0x01, b'v'];
        assert_eq!(parse_response(&refusal, 0x61), Some((2, "v".to_string())));
        assert_eq!(parse_response(&refusal, 0x78), None);
    }

    #[test]
    fn extended_response_result_code_and_text() {
        // success
        assert_eq!(
            parse_response(&[0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00], 0x78),
            Some((0, String::new()))
        );
        // protocolError with a text
        let body = [0x02, 0x01, 0x01, 0x78, 0x09, 0x0a, 0x01, 0x02, 0x04, 0x00, 0x04, 0x02, b'n', b'o'];
        assert_eq!(parse_response(&body, 0x78), Some((2, "no".to_string())));
        // garbage
        assert_eq!(parse_response(&[0x04, 0x00], 0x78), None);
        assert_eq!(parse_response(&[0x02, 0x05, 0x01], 0x78), None);
    }
}
