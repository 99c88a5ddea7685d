//! Detection's alerts over HTTPS (privacy officer and administrator:
//! `alerts.manage`): the list, one alert, and its lifecycle. Alerts hold no
//! PHI (accounts, hosts, counts, record-free details).

use crate::error::ApiError;
use crate::state::{AppState, Caller, blocking};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use rxvault_auth::Action;
use rxvault_detect::Status;
use serde::Deserialize;

/// `GET /api/v1/alerts` parameters.
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    /// Only this status.
    status: Option<String>,
    /// At most this many (default 100).
    limit: Option<u32>,
}

/// A lifecycle step.
#[derive(Debug, Deserialize)]
pub struct StatusChange {
    /// `acknowledged`, `resolved` or `false-positive`.
    status: String,
    /// What was done (required to resolve).
    #[serde(default)]
    note: String,
}

fn detect_err(e: rxvault_detect::Error) -> ApiError {
    match e {
        rxvault_detect::Error::Invalid(m) if m.starts_with("no alert") => ApiError::not_found(),
        rxvault_detect::Error::Invalid(m) => ApiError::bad_request(m),
        e => ApiError::internal(&e),
    }
}

fn status(name: &str) -> Result<Status, ApiError> {
    Status::from_name(name).ok_or_else(|| {
        ApiError::bad_request("status: open, acknowledged, resolved or false-positive")
    })
}

/// `GET /api/v1/alerts`: newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.authorize(&state, Action::AlertsManage).await?;
    let wanted = q.status.as_deref().map(status).transpose()?;
    blocking(move || {
        let list = state
            .alerts
            .list(wanted, q.limit.unwrap_or(100).min(1000))
            .map_err(detect_err)?;
        Ok(Json(list).into_response())
    })
    .await
}

/// `GET /api/v1/alerts/{id}`.
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize(&state, Action::AlertsManage).await?;
    blocking(move || Ok(Json(state.alerts.get(&id).map_err(detect_err)?).into_response())).await
}

/// `POST /api/v1/alerts/{id}/status`.
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(change): Json<StatusChange>,
) -> Result<Response, ApiError> {
    caller.authorize(&state, Action::AlertsManage).await?;
    let to = status(&change.status)?;
    blocking(move || {
        let by = caller.principal.audit_actor();
        let now = rxvault_detect::now_ms(state.vault.clock().as_ref());
        let a = state
            .alerts
            .set_status(
                &id,
                to,
                &format!("{}:{}", by.kind.name(), by.id),
                &change.note,
                now,
            )
            .map_err(detect_err)?;
        Ok(Json(a).into_response())
    })
    .await
}
