//! The server's certificate: the operator's own, or a self-signed one
//! generated once per vault.
//!
//! A generated certificate's private key is sealed with the vault's keyring
//! and kept in the vault's metadata (never a key file in the data
//! directory); the certificate itself is public and written to
//! `DIR/tls/cert.pem` for clients to trust.

use crate::{Error, Result};
use rxvault_crypto::tls::{self, TlsKey};
use rxvault_vault::Vault;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const META_KEY: &str = "tls.sealed_key";
const META_CERT: &str = "tls.cert";

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// The vault's own self-signed certificate (generated on first use).
    SelfSigned,
    /// Operator-provided PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
}

/// The path of a vault's self-signed certificate.
pub fn cert_path(vault: &Vault) -> PathBuf {
    vault.config().dir.join("tls").join("cert.pem")
}

/// The rustls configuration for `source`, and the certificate PEM.
pub fn load(vault: &Vault, source: &TlsSource) -> Result<(Arc<rustls::ServerConfig>, String)> {
    let (cert, key) = match source {
        TlsSource::Files { cert, key } => (read(cert)?, TlsKey::from_pem(read(key)?)),
        TlsSource::SelfSigned => self_signed(vault)?,
    };
    Ok((tls::server_config(&cert, &key)?, cert))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// The vault's self-signed certificate and key, generated (and stored
/// sealed) on first use.
pub fn self_signed(vault: &Vault) -> Result<(String, TlsKey)> {
    let id = vault.config().vault_id.as_bytes();
    if let (Some(cert), Some(sealed)) = (vault.meta(META_CERT)?, vault.meta(META_KEY)?) {
        let sealed =
            hex_decode(&sealed).ok_or_else(|| Error::Config("stored TLS key is corrupt".into()))?;
        let open = || vault.secrets().open_blob("tls-key", id, &sealed);
        let pem = match open() {
            Err(rxvault_crypto::Error::UnknownDek(_)) => {
                vault.reload_data_keys()?;
                open()?
            }
            other => other?,
        };
        let pem = String::from_utf8(pem.to_vec())
            .map_err(|_| Error::Config("stored TLS key is not PEM".into()))?;
        write_cert(vault, &cert)?;
        return Ok((cert, TlsKey::from_pem(pem)));
    }
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let (cert, key) = tls::self_signed(&names)?;
    vault.ensure_data_key()?;
    let sealed = vault.secrets().seal_blob("tls-key", id, key.pem_bytes())?;
    vault.write_meta(&[(META_KEY, &hex_encode(&sealed)), (META_CERT, &cert)])?;
    write_cert(vault, &cert)?;
    tracing::info!("generated a self-signed TLS certificate");
    Ok((cert, key))
}

fn write_cert(vault: &Vault, cert: &str) -> Result<()> {
    let path = cert_path(vault);
    if std::fs::read_to_string(&path).is_ok_and(|c| c == cert) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    }
    rxvault_vault::config::write_atomic(&path, cert.as_bytes(), 0o644)?;
    Ok(())
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
