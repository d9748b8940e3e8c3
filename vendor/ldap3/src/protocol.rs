use std::io;
#[cfg(feature = "gssapi")]
use std::sync::RwLock;
#[cfg(feature = "gssapi")]
use std::sync::{Arc, Mutex};

use crate::RequestId;
use crate::controls::{Control, RawControl};
use crate::controls_impl::{build_tag, parse_controls};
use crate::search::SearchItem;

use lber::common::TagClass;
use lber::parse::parse_uint;
use lber::structure::{PL, StructureTag};
use lber::structures::{ASNTag, Integer, Sequence, Tag};
use lber::universal::Types;
use lber::write;

use bytes::{Buf, BytesMut};
#[cfg(feature = "gssapi")]
use cross_krb5::{ClientCtx, K5Ctx};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Decoder, Encoder};

pub(crate) struct LdapCodec {
    #[cfg(feature = "gssapi")]
    pub(crate) has_decoded_data: bool,
    #[cfg(feature = "gssapi")]
    pub(crate) sasl_param: Arc<RwLock<(bool, u32)>>, // sasl_wrap, sasl_max_send
    #[cfg(feature = "gssapi")]
    pub(crate) client_ctx: Arc<Mutex<Option<ClientCtx>>>,
    pub(crate) limits: FrameLimits,
}

/// The bounds on what a server may send on one connection (see `LdapConnSettings`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameLimits {
    /// The largest LDAPMessage accepted, in bytes, header included.
    pub(crate) max_message_len: usize,
    /// The most bytes of LDAPMessages accepted over the life of the connection.
    pub(crate) max_received_len: u64,
    /// The bytes of LDAPMessages received so far.
    pub(crate) received: u64,
}

/// The error for a reply that is not a valid LDAPMessage, or not the one expected.
pub(crate) fn malformed(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed LDAP reply: {what}"),
    )
}

/// The total length (header included) of the LDAPMessage at the start of `buf`, as soon as its header is
/// in: None while more bytes are needed. An LDAPMessage is a SEQUENCE with a definite length (RFC 4511
/// 5.1), so anything else is rejected at once, before waiting for or buffering the rest.
fn message_len(buf: &[u8]) -> Result<Option<u64>, io::Error> {
    match buf.first() {
        None => return Ok(None),
        Some(0x30) => {}
        Some(t) => {
            return Err(malformed(format_args!(
                "an element with tag {t:#04x} instead of an LDAPMessage"
            )));
        }
    }
    let first = match buf.get(1) {
        None => return Ok(None),
        Some(&b) => b,
    };
    if first < 0x80 {
        return Ok(Some(2 + u64::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 8 {
        return Err(malformed("unsupported length encoding"));
    }
    match buf.get(2..2 + n) {
        None => Ok(None),
        Some(octets) => {
            let len = octets
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            Ok(Some(len.saturating_add(2 + n as u64)))
        }
    }
}

pub(crate) type MaybeControls = Option<Vec<RawControl>>;
/// Shared by a connection and its `Ldap` handles: why the connection's driver stopped, if on an error.
pub(crate) type ConnError = std::sync::Arc<std::sync::Mutex<Option<(io::ErrorKind, String)>>>;
pub(crate) type ItemSender = mpsc::UnboundedSender<(SearchItem, Vec<Control>)>;
pub(crate) type ResultSender = oneshot::Sender<(Tag, Vec<Control>)>;

#[derive(Debug)]
pub enum MiscSender {
    #[cfg(any(feature = "tls-native", feature = "tls-rustls"))]
    Cert(oneshot::Sender<Option<Vec<u8>>>),
}

#[derive(Debug)]
pub enum LdapOp {
    Single,
    Search(ItemSender),
    Abandon(RequestId),
    Unbind,
}

#[allow(clippy::type_complexity)]
fn decode_inner(
    buf: &mut BytesMut,
    limits: &mut FrameLimits,
) -> Result<Option<(RequestId, (Tag, Vec<Control>))>, io::Error> {
    // Bound the message before buffering it: a length field claiming gigabytes is rejected as soon as the
    // header is in, not after the server has filled our memory.
    let len = match message_len(buf)? {
        None => return Ok(None),
        Some(len) => len,
    };
    let too_large = |what| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("LDAP reply too large: {what}"),
        )
    };
    if len > limits.max_message_len as u64 {
        let max = limits.max_message_len;
        return Err(too_large(format!(
            "a message of {len} bytes, over the limit of {max}"
        )));
    }
    if limits.received.saturating_add(len) > limits.max_received_len {
        let max = limits.max_received_len;
        return Err(too_large(format!(
            "more than {max} bytes on this connection"
        )));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    // The message is complete: any error from here on is a malformed message, never "incomplete".
    let mut parser = lber::Parser::new();
    let tag = match parser.parse(&buf[..len]) {
        Ok(([], tag)) => tag,
        _ => return Err(malformed("undecodable BER")),
    };
    buf.advance(len);
    limits.received += len as u64;
    let mut tags = match tag
        .match_id(Types::Sequence as u64)
        .and_then(|t| t.expect_constructed())
    {
        Some(tags) => tags,
        None => return Err(malformed("not a SEQUENCE")),
    };
    let no_op = || malformed("no protocolOp");
    let mut maybe_controls = tags.pop().ok_or_else(no_op)?;
    let has_controls = match maybe_controls {
        StructureTag {
            id,
            class,
            ref payload,
        } if class == TagClass::Context && id == 0 => match *payload {
            PL::C(_) => true,
            PL::P(_) => return Err(malformed("controls not a SEQUENCE")),
        },
        StructureTag { id, class, .. } if class == TagClass::Context && id == 10 => {
            // Active Directory bug workaround
            //
            // AD incorrectly encodes Notice of Disconnection messages. The OID of the
            // Unsolicited Notification should be part of the ExtendedResponse sequence
            // but AD puts it outside, where the optional controls belong. This confuses
            // our parser, which doesn't expect the extra sequence element at the end
            // and crashes. This match arm thus ignores the element.
            maybe_controls = tags.pop().ok_or_else(no_op)?;
            false
        }
        _ => false,
    };
    let (protoop, controls) = if has_controls {
        (tags.pop().ok_or_else(no_op)?, Some(maybe_controls))
    } else {
        (maybe_controls, None)
    };
    let controls = match controls {
        Some(controls) => parse_controls(controls).map_err(malformed)?,
        None => vec![],
    };
    // MessageID ::= INTEGER (0 .. maxInt), maxInt 2147483647.
    let msgid = match tags
        .pop()
        .and_then(|t| t.match_class(TagClass::Universal))
        .and_then(|t| t.match_id(Types::Integer as u64))
        .and_then(|t| t.expect_primitive())
    {
        Some(id) if !id.is_empty() && id.len() <= 8 && id[0] & 0x80 == 0 => match parse_uint(&id) {
            Ok((_, id)) if id <= i32::MAX as u64 => id as i32,
            _ => return Err(malformed("messageID out of range")),
        },
        Some(_) => return Err(malformed("messageID out of range")),
        None => return Err(malformed("no messageID")),
    };
    Ok(Some((msgid, (Tag::StructureTag(protoop), controls))))
}

impl Decoder for LdapCodec {
    type Item = (RequestId, (Tag, Vec<Control>));
    type Error = io::Error;

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        match self.decode(buf)? {
            None if !buf.is_empty() => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection in the middle of a message",
            )),
            item => Ok(item),
        }
    }

    #[cfg(not(feature = "gssapi"))]
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        decode_inner(buf, &mut self.limits)
    }

    #[cfg(feature = "gssapi")]
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        const U32_SIZE: usize = std::mem::size_of::<u32>();

        let sasl_wrap = { self.sasl_param.read().expect("sasl param").0 };
        if !sasl_wrap || buf.is_empty() {
            return decode_inner(buf, &mut self.limits);
        }
        if self.has_decoded_data {
            let res = decode_inner(buf, &mut self.limits);
            if res.is_ok() && buf.is_empty() {
                self.has_decoded_data = false;
            }
            return res;
        }
        if buf.len() < U32_SIZE {
            return Err(io::Error::new(io::ErrorKind::Other, "invalid SASL buffer"));
        }
        let sasl_len = u32::from_be_bytes(buf[0..U32_SIZE].try_into().unwrap());
        // A wrapped buffer holds a message plus the mechanism's overhead: bound it like a message.
        if u64::from(sasl_len) > self.limits.max_message_len as u64 + 4096 {
            return Err(malformed(format_args!("a SASL buffer of {sasl_len} bytes")));
        }
        if buf.len() - U32_SIZE < sasl_len as usize {
            return Ok(None);
        }
        buf.advance(U32_SIZE);
        let client_opt = &mut *self.client_ctx.lock().expect("client ctx lock");
        let client_ctx = client_opt.as_mut().expect("client Option mut ref");
        let mut decoded = client_ctx.unwrap_iov(sasl_len as usize, buf).map_err(|e| {
            io::Error::new(io::ErrorKind::Other, format!("gss_unwrap error: {:#}", e))
        })?;
        let res = decode_inner(&mut decoded, &mut self.limits);
        if res.is_ok() && !decoded.is_empty() && buf.is_empty() {
            buf.extend(decoded);
            self.has_decoded_data = true;
        }
        res
    }
}

#[cfg(not(feature = "gssapi"))]
#[inline]
fn maybe_wrap(
    _codec: &mut LdapCodec,
    outstruct: StructureTag,
    into: &mut BytesMut,
) -> io::Result<()> {
    write::encode_into(into, outstruct)?;
    Ok(())
}

#[cfg(feature = "gssapi")]
fn maybe_wrap(
    codec: &mut LdapCodec,
    outstruct: StructureTag,
    into: &mut BytesMut,
) -> io::Result<()> {
    let mut out_buf = BytesMut::new();
    write::encode_into(&mut out_buf, outstruct)?;
    let (sasl_wrap, sasl_send_max) = {
        let sasl_param = codec.sasl_param.read().expect("sasl param");
        (sasl_param.0, sasl_param.1)
    };
    if sasl_wrap {
        let client_opt = &mut *codec.client_ctx.lock().expect("client_ctx lock");
        let client_ctx = client_opt.as_mut().expect("client Option mut ref");
        if sasl_send_max > 0 && out_buf.len() > sasl_send_max as usize {
            return Err(io::Error::new(
                io::ErrorKind::Other,
                format!(
                    "buffer too large for GSSAPI: {} > {}",
                    out_buf.len(),
                    sasl_send_max
                ),
            ));
        }
        let sasl_buf = client_ctx.wrap(true, &out_buf).map_err(|e| {
            io::Error::new(io::ErrorKind::Other, format!("gss_wrap error: {:#}", e))
        })?;
        let sasl_len = (sasl_buf.len() as u32).to_be_bytes();
        into.extend(&sasl_len);
        into.extend(&*sasl_buf);
    } else {
        into.extend(&out_buf);
    }
    Ok(())
}

impl Encoder<(RequestId, Tag, MaybeControls)> for LdapCodec {
    type Error = io::Error;

    fn encode(
        &mut self,
        msg: (RequestId, Tag, MaybeControls),
        into: &mut BytesMut,
    ) -> io::Result<()> {
        let (id, tag, controls) = msg;
        let outstruct = {
            let mut msg = vec![
                Tag::Integer(Integer {
                    inner: id as i64,
                    ..Default::default()
                }),
                tag,
            ];
            if let Some(controls) = controls {
                msg.push(Tag::StructureTag(StructureTag {
                    id: 0,
                    class: TagClass::Context,
                    payload: PL::C(controls.into_iter().map(build_tag).collect()),
                }));
            }
            Tag::Sequence(Sequence {
                inner: msg,
                ..Default::default()
            })
            .into_structure()
        };
        maybe_wrap(self, outstruct, into)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_message_len: usize, max_received_len: u64) -> FrameLimits {
        FrameLimits {
            max_message_len,
            max_received_len,
            received: 0,
        }
    }

    fn decode(bytes: &[u8]) -> Result<Option<(RequestId, (Tag, Vec<Control>))>, io::Error> {
        decode_inner(&mut BytesMut::from(bytes), &mut limits(1 << 20, u64::MAX))
    }

    fn malformed_text(bytes: &[u8]) -> String {
        match decode(bytes) {
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                e.to_string()
            }
            Ok(r) => panic!("{:02x?} decoded: {r:?}", &bytes[..bytes.len().min(32)]),
        }
    }

    const BIND_OK: &[u8] = b"\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x00\x04\x00";

    #[test]
    fn a_message_is_decoded_only_when_complete() {
        let mut buf = BytesMut::from(&BIND_OK[..5]);
        let mut l = limits(1 << 20, u64::MAX);
        assert!(decode_inner(&mut buf, &mut l).unwrap().is_none());
        assert_eq!(buf.len(), 5);
        buf.extend_from_slice(&BIND_OK[5..]);
        buf.extend_from_slice(BIND_OK);
        for _ in 0..2 {
            let (id, (tag, ctrls)) = decode_inner(&mut buf, &mut l).unwrap().unwrap();
            assert_eq!(id, 1);
            assert!(ctrls.is_empty());
            assert!(matches!(tag, Tag::StructureTag(StructureTag { id: 1, .. })));
        }
        assert!(buf.is_empty());
        assert_eq!(l.received, 2 * BIND_OK.len() as u64);
    }

    #[test]
    fn a_huge_length_claim_is_refused_from_its_header() {
        let mut buf = BytesMut::from(&b"\x30\x84\x7f\xff\xff\xff"[..]);
        let e = decode_inner(&mut buf, &mut limits(1 << 20, u64::MAX)).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
        // Exactly at the limit is fine.
        let mut buf = BytesMut::from(BIND_OK);
        assert!(
            decode_inner(&mut buf, &mut limits(BIND_OK.len(), u64::MAX))
                .unwrap()
                .is_some()
        );
        let mut buf = BytesMut::from(BIND_OK);
        assert!(decode_inner(&mut buf, &mut limits(BIND_OK.len() - 1, u64::MAX)).is_err());
    }

    #[test]
    fn the_connection_budget_counts_every_message() {
        let mut buf = BytesMut::from(&[BIND_OK, BIND_OK][..].concat()[..]);
        let mut l = limits(1 << 20, 20);
        assert!(decode_inner(&mut buf, &mut l).unwrap().is_some());
        let e = decode_inner(&mut buf, &mut l).unwrap_err();
        assert!(e.to_string().contains("more than 20 bytes"), "{e}");
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bytes in [
            &b"\x04\x01\x00"[..],                        // not a SEQUENCE
            b"\x30\x00",                                 // empty
            b"\x30\x03\x02\x01\x01",                     // no protocolOp
            b"\x30\x04\x8a\x02\x31\x32",                 // only AD's [10]
            b"\x30\x07\x02\x01\x01\x8a\x02\x31\x32",     // messageID and AD's [10]
            b"\x30\x05\x04\x01\x31\x42\x00",             // messageID not an INTEGER
            b"\x30\x05\x02\x01\xff\x42\x00",             // messageID negative
            b"\x30\x08\x02\x04\x80\x00\x00\x00\x42\x00", // messageID over maxInt
            b"\x30\x07\x02\x01\x01\x42\x00\x80\x00",     // controls primitive
            b"\x30\x0e\x02\x01\x01\x42\x00\xa0\x07\x30\x05\x04\x01\x31\x01\x00", // empty BOOLEAN
            b"\x30\x0b\x02\x01\x01\x42\x00\xa0\x04\x30\x02\x30\x00", // control type a SEQUENCE
            b"\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x09\x04\x00", // element past the end
            b"\x30\x80\x02\x01\x01\x42\x00\x00\x00",     // indefinite length
            b"\x30\x89\x00\x00\x00\x00\x00\x00\x00\x00\x05\x02\x01\x01\x42\x00", // 9 length octets
        ] {
            assert!(
                malformed_text(bytes).starts_with("malformed LDAP reply: "),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 100_000;
        let mut v = Vec::with_capacity(depth * 5 + 16);
        let body = 3 + depth * 5 + 2;
        v.extend_from_slice(&[
            0x30,
            0x83,
            (body >> 16) as u8,
            (body >> 8) as u8,
            body as u8,
        ]);
        v.extend_from_slice(&[0x02, 0x01, 0x01]);
        for level in 0..depth {
            let len = (depth - level) * 5 - 3;
            v.extend_from_slice(&[0x30, 0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        }
        v.extend_from_slice(&[0x30, 0x00]);
        malformed_text(&v);
    }

    #[test]
    fn eof_in_the_middle_of_a_message_says_so() {
        let mut codec = LdapCodec {
            #[cfg(feature = "gssapi")]
            has_decoded_data: false,
            #[cfg(feature = "gssapi")]
            sasl_param: Arc::new(RwLock::new((false, 0))),
            #[cfg(feature = "gssapi")]
            client_ctx: Arc::new(Mutex::new(None)),
            limits: limits(1 << 20, u64::MAX),
        };
        let mut buf = BytesMut::from(&BIND_OK[..7]);
        let e = codec.decode_eof(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
    }
}
