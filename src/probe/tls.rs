//! TLS client settings from a map's `tls_*` parameters, with Postfix's semantics.
//!
//! Postfix's default `tls_require_cert = no` (libldap's `LDAP_OPT_X_TLS_NEVER`) accepts any server
//! certificate. We do the same, but still check the certificate against the configured CAs and record the
//! outcome, so that `-v` can say "accepted unverified" instead of hiding it. With `tls_require_cert = yes` the
//! certificate must chain to `tls_ca_cert_file`/`tls_ca_cert_dir` (or, when neither is set, the system bundle)
//! and name the server.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::certinfo::CertInfo;
use crate::map::TlsParams;

/// Debian's system CA bundle, read only when verification is required and no CA is configured.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the handshake saw of the server certificate: the verdict on it, and its validity, subject and issuer
/// (read whether or not it verifies: an expired one is reported as such).
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub note: Option<String>,
    pub cert: Option<CertInfo>,
}

/// Where [`Seen`] is written during the handshake.
pub type CertNote = Arc<Mutex<Seen>>;

/// Build the client configuration for `tls`, reading its files by `until` (see [`crate::file`]). Errors are one
/// line naming the file at fault.
pub fn client_config(tls: &TlsParams, note: CertNote, until: Instant) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = load_roots(tls, until)?;
    let webpki = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot use the CA certificates: {e}"))?,
        )
    };
    if tls.require_cert && webpki.is_none() {
        return Err("tls_require_cert = yes, but no CA certificate is available".to_string());
    }
    let verifier = Arc::new(Verifier { webpki, require: tls.require_cert, provider: provider.clone(), note });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let cert_pem = read(cert, "tls_cert", until)?;
            let chain = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cannot read tls_cert {}: {}", cert.display(), pem_reason(&e)))?;
            let key_pem = read(key, "tls_key", until)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| format!("cannot read tls_key {}: {}", key.display(), pem_reason(&e)))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("tls_cert/tls_key: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The bytes of a file a `tls_*` parameter names.
fn read(file: &Path, what: &str, until: Instant) -> Result<Vec<u8>, String> {
    crate::file::read(file, until).map_err(|e| format!("cannot read {what} {}: {e}", file.display()))
}

fn load_roots(tls: &TlsParams, until: Instant) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if let Some(file) = &tls.ca_cert_file {
        add_pem_file(&mut roots, file, "tls_ca_cert_file", until)?;
    }
    if let Some(dir) = &tls.ca_cert_dir {
        let files = crate::file::list_dir(dir, until)
            .map_err(|e| format!("cannot read tls_ca_cert_dir {}: {e}", dir.display()))?;
        for path in files {
            // A hashed OpenSSL directory also holds CRLs and other files: skip what is not a certificate.
            let _ = add_pem_file(&mut roots, &path, "tls_ca_cert_dir", until);
        }
        if roots.is_empty() {
            return Err(format!("tls_ca_cert_dir {}: no CA certificate found", dir.display()));
        }
    }
    if roots.is_empty() && tls.require_cert && Path::new(SYSTEM_CA_BUNDLE).exists() {
        add_pem_file(&mut roots, Path::new(SYSTEM_CA_BUNDLE), "the system CA bundle", until)?;
    }
    Ok(roots)
}

fn add_pem_file(roots: &mut RootCertStore, file: &Path, what: &str, until: Instant) -> Result<(), String> {
    let pem = read(file, what, until)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read {what} {}: {}", file.display(), pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(format!("{what} {}: no certificate in it", file.display()));
    }
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{what} {}: no usable CA certificate", file.display()));
    }
    Ok(())
}

fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("{other:?}"),
    }
}

fn record(note: &CertNote, text: String) {
    if let Ok(mut n) = note.lock() {
        n.note = Some(text);
    }
}

/// Checks the server certificate against the CAs and records the outcome in the note. With
/// `tls_require_cert = yes` a failure ends the handshake; with `no` (Postfix's default) any certificate is
/// accepted, as Postfix does, and the note says whether it would have passed.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    require: bool,
    provider: Arc<CryptoProvider>,
    note: CertNote,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let (Ok(info), Ok(mut n)) = (super::certinfo::parse(end_entity.as_ref()), self.note.lock()) {
            n.cert = Some(info);
        }
        let text = match &self.webpki {
            None => "certificate not verified (tls_require_cert = no and no tls_ca_cert_file)".to_string(),
            Some(v) => match v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Ok(_) => "certificate verified".to_string(),
                Err(e) if self.require => return Err(e),
                Err(e) => format!(
                    "certificate accepted unverified (tls_require_cert = no): {}",
                    crate::reason::server_text(&e.to_string())
                ),
            },
        };
        record(&self.note, text);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
