//! Connecting to PostgreSQL: in the clear to a server on this machine, over
//! TLS with certificate verification to any other.
//!
//! The connection string is PostgreSQL's (a `postgres://` URL or
//! `key=value` pairs) with libpq's TLS parameters, which rxvault reads
//! itself (the client library knows only `sslmode=disable|prefer|require`,
//! and never verifies):
//!
//! | `sslmode` | TLS | the certificate chain | the host name |
//! |---|---|---|---|
//! | `disable` | no | – | – |
//! | `require`, `verify-ca` | yes | verified | not checked |
//! | `verify-full` | yes | verified | verified |
//! | absent | only for a host that is not this machine: then `verify-full` | | |
//!
//! `prefer` and `allow` are refused: they fall back to plaintext without
//! saying so. Unlike libpq, `require` verifies the chain: a server whose
//! certificate nobody can check is not a server to send PHI envelopes and
//! password hashes to. The chain is checked against `sslrootcert` (a PEM
//! file) or, without it (or with `sslrootcert=system`), the system's trust
//! store. Client certificates (`sslcert`, `sslkey`) are not supported yet
//! and are refused rather than ignored.

use crate::{Error, Result};
use postgres::config::{Host, SslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a store connects: the parsed configuration and, for TLS, the
/// verifying connector. Parsed once per store; cheap to clone.
#[derive(Clone)]
pub(crate) struct Connector {
    config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may carry a password: never print it.
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// What the connection string asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// `sslmode`, if given.
    pub mode: Option<String>,
    /// `sslrootcert`, if given.
    pub root_cert: Option<String>,
}

impl Connector {
    /// Parses `url` (see the module docs).
    pub(crate) fn new(url: &str) -> Result<Self> {
        let (rest, params) = split_tls_params(url)?;
        let mut config: postgres::Config = rest
            .parse()
            .map_err(|e| config_error(format!("the PostgreSQL connection string: {e}")))?;
        let local = config.get_hosts().iter().all(is_local);
        let verify = match params.mode.as_deref() {
            Some("disable") => None,
            Some("require" | "verify-ca") => Some(false),
            Some("verify-full") => Some(true),
            None if local => None,
            None => Some(true),
            Some(mode @ ("prefer" | "allow")) => {
                return Err(config_error(format!(
                    "sslmode={mode} falls back to an unencrypted connection without saying so: \
                     use sslmode=verify-full (or sslmode=disable for a server on this machine)"
                )));
            }
            Some(mode) => return Err(config_error(format!("unknown sslmode {mode:?}"))),
        };
        let tls = match verify {
            None => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            Some(check_name) => {
                config.ssl_mode(SslMode::Require);
                Some(MakeRustlsConnect::new(client_config(
                    params.root_cert.as_deref(),
                    check_name,
                )?))
            }
        };
        Ok(Self { config, tls })
    }

    /// Whether connections are encrypted.
    #[cfg(test)]
    pub(crate) fn encrypted(&self) -> bool {
        self.tls.is_some()
    }

    /// A new connection.
    pub(crate) fn connect(&self) -> std::result::Result<postgres::Client, postgres::Error> {
        match &self.tls {
            None => self.config.connect(postgres::NoTls),
            Some(tls) => self.config.connect(tls.clone()),
        }
    }
}

fn config_error(message: String) -> Error {
    Error::Config(message)
}

fn is_local(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// Takes libpq's TLS parameters out of a connection string (URL query or
/// `key=value` pairs), leaving what the client library parses.
pub(crate) fn split_tls_params(url: &str) -> Result<(String, TlsParams)> {
    let mut params = TlsParams {
        mode: None,
        root_cert: None,
    };
    let mut take = |key: &str, value: String| -> Result<bool> {
        match key {
            "sslmode" => params.mode = Some(value),
            "sslrootcert" => params.root_cert = Some(value),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(config_error(format!(
                    "{key}: client certificates are not supported yet (use a password or trust \
                     authentication over verified TLS)"
                )));
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), params));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, percent_decode(value)?)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, params))
    } else {
        // key=value pairs separated by spaces; values here are plain (a
        // quoted value is kept for the client library to parse).
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            match pair.split_once('=') {
                Some((key, value)) if !value.starts_with('\'') => {
                    if !take(key, value.to_string())? {
                        kept.push(pair);
                    }
                }
                _ => kept.push(pair),
            }
        }
        Ok((kept.join(" "), params))
    }
}

fn percent_decode(s: &str) -> Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| config_error("the connection string is not UTF-8".into()))
}

/// The rustls configuration: roots from `root_cert` (a PEM file, or
/// `system`/absent for the system's store), names checked if `check_name`.
fn client_config(root_cert: Option<&str>, check_name: bool) -> Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) if path != "system" => {
            let path = PathBuf::from(path);
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .map_err(|e| config_error(format!("sslrootcert {}: {e}", path.display())))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| config_error(format!("sslrootcert {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(config_error(format!(
                    "sslrootcert {}: no certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| config_error(format!("sslrootcert {}: {e}", path.display())))?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system store may hold certificates rustls cannot use;
                // the usable ones are enough.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(config_error(
                    "no trusted certificates in the system's store: name the server's CA with \
                     sslrootcert=/path/to/ca.pem"
                        .into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("TLS: {e}")))?;
    let roots = Arc::new(roots);
    let config = if check_name {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| config_error(format!("TLS: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
            .with_no_client_auth()
    };
    Ok(config)
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the
/// certificate is not compared with the host connected to (servers reached
/// by an address their certificate does not name).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_urls_and_pairs() {
        let (rest, p) = split_tls_params(
            "postgres://u:p@db.example/rx?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db.example/rx?application_name=a");
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (rest, p) =
            split_tls_params("host=db.example user=rx sslmode=require sslrootcert=/ca.pem")
                .unwrap();
        assert_eq!(rest, "host=db.example user=rx");
        assert_eq!(p.mode.as_deref(), Some("require"));
        assert!(split_tls_params("postgres://db/rx?sslkey=/k.pem").is_err());
    }

    #[test]
    fn local_servers_default_to_plain_and_remote_ones_to_verified_tls() {
        assert!(
            !Connector::new("postgres://postgres@127.0.0.1:5432/test")
                .unwrap()
                .encrypted()
        );
        assert!(
            !Connector::new("postgres://postgres@localhost/test")
                .unwrap()
                .encrypted()
        );
        assert!(
            !Connector::new("host=/var/run/postgresql user=postgres")
                .unwrap()
                .encrypted()
        );
        // A remote host needs a trust store: the system's, if it has one.
        match Connector::new("postgres://rx@db.example.org/rx") {
            Ok(c) => assert!(c.encrypted()),
            Err(e) => assert!(e.to_string().contains("sslrootcert"), "{e}"),
        }
        assert!(
            !Connector::new("postgres://rx@db.example.org/rx?sslmode=disable")
                .unwrap()
                .encrypted()
        );
        let e = Connector::new("postgres://rx@db.example.org/rx?sslmode=prefer").unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
        let e =
            Connector::new("postgres://rx@db/rx?sslmode=verify-full&sslrootcert=/nonexistent.pem")
                .unwrap_err();
        assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
    }
}
