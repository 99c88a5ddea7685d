//! rxvault's HTTPS server: the JSON API under `/api/v1` and FHIR R4 REST
//! under `/fhir`, over rustls only.
//!
//! # Layout
//! - [`routes`]: **the route table** (every endpoint once, with the
//!   permission-table action it needs): the router, the OpenAPI document at
//!   `/api/v1/openapi.json` and the authorization-matrix test are built
//!   from it.
//! - [`api`]: JSON handlers; [`oversight`]: the privacy officer's (audit
//!   queries, break-glass review); [`duties`]: enrolment codes and the
//!   approval of access requests (separation of duties); [`fhir`]: FHIR
//!   handlers;
//!   [`fhir_format`]: Bundles, OperationOutcomes, the CapabilityStatement.
//! - [`services`]: the composition root: the server, scheduled jobs and
//!   audit-stream consumers, started and stopped together.
//! - [`state`]: shared state, the blocking pool, the [`state::Caller`]
//!   extractor (authentication).
//! - [`error`]: how failures map to status codes (no user enumeration).
//! - [`http`]: security headers, limits, timeouts, access log without PHI,
//!   TLS serving; [`tls`]: the certificate.
//!
//! **Architecture invariants.** Plain HTTP is never served. Every handler
//! that returns PHI authorizes one action, decrypts only the caller's
//! categories, and returns only after the vault has durably audited the
//! access. Logs name route templates, never paths or query strings (they
//! carry patient IDs and search values).
#![deny(missing_docs)]

pub mod alerts;
pub mod api;
pub mod duties;
pub mod error;
pub mod fhir;
pub mod fhir_format;
pub mod http;
pub mod oversight;
pub mod routes;
pub mod services;
pub mod state;
pub mod tls;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

pub use state::AppState;

/// Errors of the server outside request handling (start-up, TLS, binding).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] rxvault_vault::Error),
    /// Identity and access failed.
    #[error(transparent)]
    Auth(#[from] rxvault_auth::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rxvault_store::Error),
    /// Cryptography failed.
    #[error(transparent)]
    Crypto(#[from] rxvault_crypto::Error),
    /// A configuration problem (files, addresses).
    #[error("{0}")]
    Config(String),
    /// I/O (binding, serving).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The certificate.
    pub tls: tls::TlsSource,
    /// Request limits.
    pub limits: http::Limits,
    /// The public base URL (default `https://<listen>`).
    pub base_url: Option<String>,
}

/// A server bound to its address, ready to run.
pub struct Server {
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
    /// The certificate clients should trust (PEM).
    pub cert_pem: String,
    /// Where it listens.
    pub local_addr: SocketAddr,
}

impl Server {
    /// Binds and prepares everything (TLS material, routes), without
    /// accepting connections yet. The store work (the certificate, opening
    /// the audit log) runs on the blocking pool: the PostgreSQL client
    /// blocks, and blocking a runtime thread aborts the process.
    pub async fn bind(
        vault: Arc<rxvault_vault::Vault>,
        auth: Arc<rxvault_auth::Auth>,
        options: &ServeOptions,
    ) -> Result<Server> {
        let source = options.tls.clone();
        let v = vault.clone();
        let ((tls, cert_pem), alerts) = tokio::task::spawn_blocking(move || {
            let loaded = tls::load(&v, &source)?;
            // Open the audit log now: a server that cannot audit must not
            // start.
            v.audit()?;
            let alerts = rxvault_detect::Alerts::new(v.detect_store()?, v.secrets().clone());
            Ok::<_, Error>((loaded, alerts))
        })
        .await
        .map_err(|e| Error::Config(format!("starting the server: {e}")))??;
        let listener = std::net::TcpListener::bind(options.listen)?;
        let local_addr = listener.local_addr()?;
        let base_url = options
            .base_url
            .clone()
            .unwrap_or_else(|| format!("https://{local_addr}"));
        let state = AppState {
            vault,
            auth,
            base_url: base_url.into(),
            alerts,
        };
        let router = http::harden(routes::router(state), options.limits);
        Ok(Server {
            listener,
            tls,
            router,
            cert_pem,
            local_addr,
        })
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        tracing::info!(addr = %self.local_addr, "serving HTTPS");
        http::serve_tls(self.router, self.listener, self.tls, shutdown).await?;
        Ok(())
    }
}
