//! The validity, subject and issuer of an X.509 certificate, read from its DER by a minimal walk (issue 13:
//! certificate expiry). rustls hands the verifier the leaf certificate as DER (`CertificateDer`), and
//! rustls-webpki keeps the validity private (`Cert::validity` is `pub(crate)`), so the few fields needed are
//! read here instead of linking a general X.509 parser (see /work/notes/trouble.md for the size comparison
//! with x509-parser).
//!
//! Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }          (RFC 5280 4.1)
//! TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity, subject, ...}
//! Validity ::= SEQUENCE { notBefore Time, notAfter Time }; Time ::= UTCTime | GeneralizedTime

/// What the check reports about a server certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// notBefore, seconds since the Unix epoch (UTC).
    pub not_before: i64,
    /// notAfter, seconds since the Unix epoch (UTC).
    pub not_after: i64,
    /// RFC 4514 string (`CN=ldap.example.com,O=Example`): the last RDN of the DER first.
    pub subject: String,
    pub issuer: String,
}

/// Reads `der` (one certificate). Errors name the part that is not as RFC 5280 says.
pub fn parse(der: &[u8]) -> Result<CertInfo, &'static str> {
    let (cert, _) = tlv(der, 0x30).map_err(|_| "not a certificate")?;
    let (tbs, _) = tlv(cert, 0x30).map_err(|_| "no tbsCertificate")?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0)?.1; // version
    }
    rest = tlv(rest, 0x02)?.1; // serialNumber
    rest = tlv(rest, 0x30)?.1; // signature AlgorithmIdentifier
    let (issuer, rest) = tlv(rest, 0x30).map_err(|_| "bad issuer")?;
    let (validity, rest) = tlv(rest, 0x30).map_err(|_| "bad validity")?;
    let (subject, _) = tlv(rest, 0x30).map_err(|_| "bad subject")?;
    let (not_before, v) = time(validity)?;
    let (not_after, _) = time(v)?;
    Ok(CertInfo { not_before, not_after, subject: name(subject)?, issuer: name(issuer)? })
}

/// The content of the DER TLV with tag `tag` at the start of `b`, and what follows it.
fn tlv(b: &[u8], tag: u8) -> Result<(&[u8], &[u8]), &'static str> {
    let (t, content, rest) = any_tlv(b)?;
    if t != tag {
        return Err("unexpected DER tag");
    }
    Ok((content, rest))
}

/// (tag, content, rest) of the DER TLV at the start of `b` (one-byte tags; definite lengths up to 4 bytes).
fn any_tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    const SHORT: &str = "truncated DER";
    let (&tag, b) = b.split_first().ok_or(SHORT)?;
    let (&l0, mut b) = b.split_first().ok_or(SHORT)?;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return Err("bad DER length");
        }
        let len = b[..n].iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
        b = &b[n..];
        len
    };
    if b.len() < len {
        return Err(SHORT);
    }
    Ok((tag, &b[..len], &b[len..]))
}

/// A UTCTime (YYMMDDHHMMSSZ; YY < 50 is 20YY, RFC 5280 4.1.2.5.1) or GeneralizedTime (YYYYMMDDHHMMSSZ) as
/// seconds since the epoch, and what follows it.
fn time(b: &[u8]) -> Result<(i64, &[u8]), &'static str> {
    const BAD: &str = "bad certificate time";
    let (tag, s, rest) = any_tlv(b)?;
    let (year, s) = match (tag, s.len()) {
        (0x17, 13) => {
            let yy = digits(&s[..2]).ok_or(BAD)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        (0x18, 15) => (digits(&s[..4]).ok_or(BAD)?, &s[4..]),
        _ => return Err(BAD),
    };
    if s[10] != b'Z' {
        return Err(BAD);
    }
    let f = |i: usize| digits(&s[i..i + 2]).ok_or(BAD);
    let (month, day, h, m, sec) = (f(0)?, f(2)?, f(4)?, f(6)?, f(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return Err(BAD);
    }
    Ok((days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec, rest))
}

fn digits(s: &[u8]) -> Option<i64> {
    s.iter().try_fold(0i64, |a, &c| c.is_ascii_digit().then(|| a * 10 + i64::from(c - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// A Name (the content of its SEQUENCE) as an RFC 4514 string: RDNs last to first, `+` within an RDN.
fn name(mut b: &[u8]) -> Result<String, &'static str> {
    let mut rdns = Vec::new();
    while !b.is_empty() {
        let (mut set, rest) = tlv(b, 0x31)?;
        b = rest;
        let mut parts = Vec::new();
        while !set.is_empty() {
            let (atv, rest) = tlv(set, 0x30)?;
            set = rest;
            let (oid, value) = tlv(atv, 0x06)?;
            let (tag, content, _) = any_tlv(value)?;
            parts.push(format!("{}={}", attr_name(oid), attr_value(tag, content, value)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn attr_name(oid: &[u8]) -> String {
    let short = match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => "",
    };
    if !short.is_empty() {
        return short.to_string();
    }
    // dotted decimal: the first byte holds the first two arcs (X.690 8.19)
    let mut arcs: Vec<u64> = Vec::new();
    let mut v = 0u64;
    for &c in oid {
        v = (v << 7) | u64::from(c & 0x7f);
        if c & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// A string value, RFC 4514-escaped; another type as `#` and the hex of its whole DER (RFC 4514 2.4).
fn attr_value(tag: u8, content: &[u8], whole: &[u8]) -> String {
    let text: Option<String> = match tag {
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8(content.to_vec()).ok(), // UTF8, Printable, IA5, Visible
        0x14 => Some(content.iter().map(|&c| char::from(c)).collect()),        // Teletex, read as Latin-1
        0x1e if content.len() % 2 == 0 => {
            char::decode_utf16(content.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])))
                .collect::<Result<_, _>>()
                .ok()
        }
        0x1c if content.len() % 4 == 0 => content
            .chunks(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect::<Option<String>>(),
        _ => None,
    };
    let Some(text) = text else {
        let len = whole.len() - any_tlv(whole).map_or(0, |(_, _, rest)| rest.len());
        return format!("#{}", whole[..len].iter().map(|b| format!("{b:02x}")).collect::<String>());
    };
    let mut out = String::with_capacity(text.len());
    let n = text.chars().count();
    for (i, c) in text.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    // Made with openssl 3.0 `openssl ca -startdate/-enddate -preserveDN` (see /work/notes/trouble.md): the
    // leaf of a P-256 CA "C=DE, O=Test CA, Inc., CN=Test Root".
    // A: notBefore 240101000000Z, notAfter 240301123456Z (both UTCTime); subject DC=com,DC=example,OU=mail,CN=...
    const A: &str = "-----BEGIN CERTIFICATE-----
MIIB7TCCAZOgAwIBAgIBATAKBggqhkjOPQQDAjA5MQswCQYDVQQGEwJERTEWMBQG
A1UECgwNVGVzdCBDQSwgSW5jLjESMBAGA1UEAwwJVGVzdCBSb290MB4XDTI0MDEw
MTAwMDAwMFoXDTI0MDMwMTEyMzQ1NlowWDETMBEGCgmSJomT8ixkARkWA2NvbTEX
MBUGCgmSJomT8ixkARkWB2V4YW1wbGUxDTALBgNVBAsMBG1haWwxGTAXBgNVBAMM
EGxkYXAuZXhhbXBsZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQsvP7l
cpm2zBUqijlEBm1sAtRz8es7Qo4/YsG1Xp9RFvBSsCzXovSrJtgn8l9eiSD6i6hl
CDxC2hk4W72/ZW85o20wazAMBgNVHRMBAf8EAjAAMBsGA1UdEQQUMBKCEGxkYXAu
ZXhhbXBsZS5jb20wHQYDVR0OBBYEFP4VzhZfcwt+nKqWEKI4DV8HWZlLMB8GA1Ud
IwQYMBaAFMaYmOHMBNN/n6JAGzCGnuVLi5fHMAoGCCqGSM49BAMCA0gAMEUCIQCo
/MVmi7IhNsUaSB6StS8oLZAd4/JASKe+jnPMa+pW8gIgJT7QBjPRYMo2buGGC9Do
4/Qu2gII81zsp5ULkvxpnS8=
-----END CERTIFICATE-----";
    // B: notBefore 491231235959Z (UTCTime), notAfter 20510101000000Z (GeneralizedTime); UTF-8, a two-value RDN
    const B: &str = "-----BEGIN CERTIFICATE-----
MIIB8DCCAZagAwIBAgIBAjAKBggqhkjOPQQDAjA5MQswCQYDVQQGEwJERTEWMBQG
A1UECgwNVGVzdCBDQSwgSW5jLjESMBAGA1UEAwwJVGVzdCBSb290MCAXDTQ5MTIz
MTIzNTk1OVoYDzIwNTEwMTAxMDAwMDAwWjBZMRswGQYDVQQKDBLDnG7Dr2PDuGTD
qSAicSIsIHgxHDAIBgNVBAMMAWIwEAYKCZImiZPyLGQBAQwCNDIxHDAaBgkqhkiG
9w0BCQEWDWJAZXhhbXBsZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQX
MoKkG48ZYki/AZDRbwJzyXT7CZC5Fo/yT8azHrhiRVag8gc9ZrA0ipyoU6Tun5rk
4rdHZgwqt6kFcdoPudImo20wazAMBgNVHRMBAf8EAjAAMBsGA1UdEQQUMBKCEGxk
YXAuZXhhbXBsZS5jb20wHQYDVR0OBBYEFBImjFPOXdOoDBWmBlreHPx4+OU0MB8G
A1UdIwQYMBaAFMaYmOHMBNN/n6JAGzCGnuVLi5fHMAoGCCqGSM49BAMCA0gAMEUC
IEkOw4RYaMb4HVPHmqs8XKpJW8MxryuSTbOLRuDG4pImAiEA2LdC0tRekYnpjtHJ
a2RH/ArEWR00ZQ/Ra/zDkSyo0HA=
-----END CERTIFICATE-----";

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM").as_ref().to_vec()
    }

    #[test]
    fn utc_time_and_names() {
        let c = parse(&der(A)).unwrap();
        assert_eq!(c.not_before, 1704067200); // 2024-01-01 00:00:00 UTC
        assert_eq!(c.not_after, 1709296496); // 2024-03-01 12:34:56 UTC
        assert_eq!(c.subject, "CN=ldap.example.com,OU=mail,DC=example,DC=com");
        assert_eq!(c.issuer, "CN=Test Root,O=Test CA\\, Inc.,C=DE");
    }

    #[test]
    fn generalized_time_utf8_multivalued_rdn() {
        let c = parse(&der(B)).unwrap();
        // UTCTime 491231235959Z is 2049-12-31 23:59:59; GeneralizedTime 20510101000000Z
        assert_eq!((c.not_before, c.not_after), (2524607999, 2556144000));
        // within an RDN, the values in DER (SET OF) order; openssl -nameopt RFC2253 shows UID=42+CN=b
        assert_eq!(c.subject, "emailAddress=b@example.com,CN=b+UID=42,O=Ünïcødé \\\"q\\\"\\, x");
        assert_eq!(c.issuer, "CN=Test Root,O=Test CA\\, Inc.,C=DE");
    }

    #[test]
    fn dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(time(b"\x17\x0d500101000000Z").unwrap().0, -631152000); // 1950
        assert!(time(b"\x17\x0d500101000000+").is_err());
        assert!(time(b"\x18\x0d500101000000Z").is_err());
    }

    #[test]
    fn oids_and_garbage() {
        assert_eq!(attr_name(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x02]), "1.2.840.113549.1.9.2");
        assert_eq!(attr_name(&[0x55, 0x04, 0x2a]), "2.5.4.42");
        assert!(parse(b"").is_err());
        assert!(parse(b"\x30\x03\x30\x01").is_err());
        assert!(parse(b"\x30\x84\xff\xff\xff\xff").is_err());
        let d = der(A);
        for n in 0..d.len() {
            let _ = parse(&d[..n]); // no panic on any truncation
        }
    }
}
