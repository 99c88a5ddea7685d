//! What every handler shares, and who is calling.
//!
//! [`Caller`] is the extractor every protected route takes: it reads the
//! bearer token (a session token, or a service account's API key), asks
//! `rxvault-auth` for the principal (on the blocking pool: store lookups),
//! and carries the request's source address. It never yields a principal
//! without a second factor: `rxvault-auth` cannot produce one.

use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use rxvault_auth::{Action, Auth, HostId, Principal};
use rxvault_crypto::Token;
use rxvault_vault::Vault;
use rxvault_vault::access::{Requester, View};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The header a client (a workstation agent) names its host with.
pub const HOST_HEADER: &str = "x-rxvault-host";

/// Shared state.
#[derive(Clone)]
pub struct AppState {
    /// The vault.
    pub vault: Arc<Vault>,
    /// Identity and access.
    pub auth: Arc<Auth>,
    /// The public base URL (`https://host:port`), for FHIR full URLs.
    pub base_url: Arc<str>,
}

/// Runs blocking work (store I/O, Argon2id, decryption, audit commits) on
/// the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(&format!("blocking task failed: {e}")))?
}

/// The request's source address.
pub fn source(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The host the client names, if it names a valid one.
pub fn host(headers: &HeaderMap) -> Result<Option<HostId>, ApiError> {
    match headers.get(HOST_HEADER).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(h)) => HostId::new(h)
            .map(Some)
            .map_err(|_| ApiError::bad_request("x-rxvault-host is not a valid host id")),
        Some(Err(_)) => Err(ApiError::bad_request(
            "x-rxvault-host is not a valid host id",
        )),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who, with what role and session.
    pub principal: Principal,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let fhir = parts.uri.path().starts_with("/fhir");
        let flavor = |e: ApiError| if fhir { e.fhir() } else { e };
        let token = bearer(&parts.headers)
            .map(Token::from_presented)
            .ok_or_else(|| flavor(ApiError::unauthenticated()))?;
        let source = source(parts);
        let host = host(&parts.headers).map_err(flavor)?;
        let auth = state.auth.clone();
        let principal = blocking(move || {
            let result = if token.expose().starts_with("rxk_") {
                auth.authenticate_api_key(&token, source)
            } else {
                auth.authenticate(&token, source, host.as_ref())
            };
            result.map_err(|e| match e {
                // A bad API key is a session problem to the client, not a
                // login failure.
                rxvault_auth::Error::InvalidCredentials => ApiError::unauthenticated(),
                e => e.into(),
            })
        })
        .await
        .map_err(flavor)?;
        Ok(Caller { principal })
    }
}

impl Caller {
    /// Checks the permission table (and step-up) for `action`; a refusal is
    /// itself audited. (The check is in memory; only a refusal goes to the
    /// audit log.)
    pub async fn authorize(
        &self,
        state: &AppState,
        action: Action,
    ) -> Result<rxvault_auth::Access, ApiError> {
        let e = match state.auth.authorize(&self.principal, action) {
            Ok(access) => return Ok(access),
            Err(e) => e,
        };
        if matches!(e, rxvault_auth::Error::Forbidden { .. }) {
            let entry = requester(&self.principal)
                .entry(rxvault_audit::Action::Other(format!("denied {action}")))
                .outcome(rxvault_audit::Outcome::Denied);
            let vault = state.vault.clone();
            let pending = blocking(move || vault.submit(entry).map_err(ApiError::from)).await?;
            pending
                .await
                .map_err(|e| ApiError::from(rxvault_vault::Error::from(e)))?;
        }
        Err(e.into())
    }

    /// The caller as the audit log records it.
    pub fn requester(&self) -> Requester {
        requester(&self.principal)
    }

    /// The field categories the caller may see, per record kind.
    pub fn view(&self) -> View {
        View::from_fn(|k| self.principal.categories(k))
    }
}

/// The audit log's view of a principal.
pub fn requester(p: &Principal) -> Requester {
    let actor = match p.actor() {
        rxvault_auth::Actor::User { username, .. } => rxvault_audit::Actor::user(username.clone()),
        rxvault_auth::Actor::Service { name, key_id, .. } => {
            rxvault_audit::Actor::service(format!("{name}/{key_id}"))
        }
    };
    Requester {
        actor,
        session: p.session_id().map(|s| s.as_str().to_string()),
        source: Some(p.source()),
        host: p.host().map(|h| h.as_str().to_string()),
    }
}
