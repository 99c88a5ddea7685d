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
    /// Detection's alerts.
    pub alerts: rxvault_detect::Alerts,
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

/// A request's credentials, not checked yet: the bearer token (a session
/// token or an API key), the source address and the host the client names.
/// A missing token is refused here; everything else is checked by
/// [`Credentials::authenticate`], which needs the store. [`Caller`] runs it
/// on the blocking pool; a handler whose work goes to the blocking pool
/// anyway takes these and authenticates in the same hop ([`Who`]).
pub struct Credentials {
    token: Token,
    source: IpAddr,
    host: Option<HostId>,
    fhir: bool,
}

impl FromRequestParts<AppState> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let fhir = parts.uri.path().starts_with("/fhir");
        let flavor = |e: ApiError| if fhir { e.fhir() } else { e };
        let token = bearer(&parts.headers)
            .map(Token::from_presented)
            .ok_or_else(|| flavor(ApiError::unauthenticated()))?;
        Ok(Credentials {
            token,
            source: source(parts),
            host: host(&parts.headers).map_err(flavor)?,
            fhir,
        })
    }
}

impl Credentials {
    /// The principal these credentials stand for (store lookups: call it on
    /// a blocking thread).
    pub fn authenticate(&self, auth: &Auth) -> Result<Caller, ApiError> {
        let result = if self.token.expose().starts_with("rxk_") {
            auth.authenticate_api_key(&self.token, self.source)
        } else {
            auth.authenticate(&self.token, self.source, self.host.as_ref())
        };
        let error = match result {
            Ok(principal) => return Ok(Caller { principal }),
            // A bad API key is a session problem to the client, not a login
            // failure.
            Err(rxvault_auth::Error::InvalidCredentials) => ApiError::unauthenticated(),
            Err(e) => e.into(),
        };
        Err(if self.fhir { error.fhir() } else { error })
    }
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
        let credentials = Credentials::from_request_parts(parts, state).await?;
        let auth = state.auth.clone();
        blocking(move || credentials.authenticate(&auth)).await
    }
}

/// Who asks: a caller already authenticated, or credentials to authenticate
/// on the blocking thread that does the work.
pub enum Who {
    /// Authenticated.
    Caller(Caller),
    /// Not yet.
    Credentials(Credentials),
}

impl Who {
    /// The authenticated caller (on a blocking thread).
    pub fn caller(self, auth: &Auth) -> Result<Caller, ApiError> {
        match self {
            Who::Caller(c) => Ok(c),
            Who::Credentials(c) => c.authenticate(auth),
        }
    }
}

impl From<Caller> for Who {
    fn from(c: Caller) -> Self {
        Who::Caller(c)
    }
}

impl From<Credentials> for Who {
    fn from(c: Credentials) -> Self {
        Who::Credentials(c)
    }
}

impl Caller {
    /// Checks the permission table (and step-up) for `action`; a refusal is
    /// itself audited. (The check is in memory; only a refusal goes to the
    /// audit log, from the blocking pool.)
    pub async fn authorize(
        &self,
        state: &AppState,
        action: Action,
    ) -> Result<rxvault_auth::Access, ApiError> {
        match state.auth.authorize(&self.principal, action) {
            Ok(access) => Ok(access),
            Err(_) => {
                let (caller, state) = (self.clone(), state.clone());
                blocking(move || caller.authorize_blocking(&state, action)).await
            }
        }
    }

    /// [`Caller::authorize`] on a blocking thread.
    pub fn authorize_blocking(
        &self,
        state: &AppState,
        action: Action,
    ) -> Result<rxvault_auth::Access, ApiError> {
        let e = match state.auth.authorize(&self.principal, action) {
            Ok(access) => return Ok(access),
            Err(e) => e,
        };
        if matches!(e, rxvault_auth::Error::Forbidden { .. }) {
            state.vault.record(self.denial(action))?;
        }
        Err(e.into())
    }

    /// The audit entry of a refused `action`.
    pub fn denial(&self, action: Action) -> rxvault_audit::Entry {
        self.requester()
            .entry(rxvault_audit::Action::AccessDenied {
                action: action.to_string(),
            })
            .outcome(rxvault_audit::Outcome::Denied)
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
    Requester {
        actor: p.audit_actor(),
        session: p.session_id().map(|s| s.as_str().to_string()),
        source: Some(p.source()),
        host: p.host().map(|h| h.as_str().to_string()),
        break_glass: p.break_glass().map(|g| g.id.clone()),
    }
}
