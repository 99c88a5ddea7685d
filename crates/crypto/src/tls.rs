//! TLS for the HTTPS server: a self-signed certificate generated at first
//! start (unless the operator provides one), and the rustls configuration
//! built here, so the server never handles private key bytes itself.
//!
//! The private key is returned only as a [`TlsKey`] (zeroized, redacted);
//! the vault stores it sealed under its own keys, never as a file in the
//! data directory.

use crate::{Error, Result};
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A TLS private key (PKCS#8 PEM).
#[derive(Clone)]
pub struct TlsKey(Zeroizing<String>);

impl fmt::Debug for TlsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsKey(<redacted>)")
    }
}

impl TlsKey {
    /// Wraps PEM text (from an operator-provided key file, or unsealed).
    pub fn from_pem(pem: String) -> Self {
        Self(Zeroizing::new(pem))
    }

    /// The PEM bytes, for sealing them in the vault.
    pub fn pem_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A self-signed certificate (PEM) and its key, valid for `names` (DNS
/// names or IP addresses), ECDSA P-256.
pub fn self_signed(names: &[String]) -> Result<(String, TlsKey)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| Error::Tls(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rxvault (self-signed)");
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok((cert.pem(), TlsKey(Zeroizing::new(key.serialize_pem()))))
}

/// The crypto provider every rustls user in rxvault shares (ring, as
/// deps.md requires: two providers compiled in make rustls panic).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration (TLS 1.2 and 1.3, ALPN h2 and http/1.1)
/// for a certificate chain and key in PEM.
pub fn server_config(cert_chain_pem: &str, key: &TlsKey) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key.0.as_bytes())
        .map_err(|e| Error::Tls(format!("private key: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A rustls client configuration that trusts exactly the given certificates
/// (PEM): for tests, load clients and tools talking to a self-signed server.
pub fn client_config_trusting(cert_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| Error::Tls(e.to_string()))?)
            .map_err(|e| Error::Tls(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_build_server_and_client_configs() {
        let (cert, key) = self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(format!("{key:?}"), "TlsKey(<redacted>)");
        let server = server_config(&cert, &key).unwrap();
        assert_eq!(server.alpn_protocols.len(), 2);
        client_config_trusting(&cert).unwrap();
        assert!(server_config("not pem", &key).is_err());
        assert!(server_config(&cert, &TlsKey::from_pem("junk".into())).is_err());
    }
}
