//! The privacy officer's endpoints: forensic queries over the audit log and
//! the review of break-glass grants. Reading the audit log is itself
//! audited (DICOM 110101 "Audit Log Used"), by the library that reads it
//! (`Vault::use_audit_log`, `Auth::break_glass_grants`), after the read
//! and with its outcome, so the command line's use gives the same entry.

use crate::error::ApiError;
use crate::state::{AppState, Caller, blocking};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rxvault_audit::ActionKind;
use rxvault_auth::Action;
use rxvault_model::RecordKind;
use rxvault_vault::access::AuditLogUse;
use serde::Deserialize;
use serde_json::{Value, json};

/// Audit query parameters.
#[derive(Debug, Deserialize, Default)]
pub struct AuditQuery {
    user: Option<String>,
    session: Option<String>,
    host: Option<String>,
    ip: Option<String>,
    /// A patient's FHIR id.
    patient: Option<String>,
    /// An action kind (`read`, `search`, `export`, `auth-failure`, ...).
    action: Option<String>,
    /// An export id (its started entry and its end).
    export: Option<String>,
    /// From (RFC 3339 or YYYY-MM-DD), inclusive.
    from: Option<String>,
    /// Until (RFC 3339 or YYYY-MM-DD), exclusive.
    to: Option<String>,
    /// At most this many entries (default 1000).
    limit: Option<usize>,
}

fn time_ms(s: &str) -> Result<i64, ApiError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(rxvault_audit::unix_ms(t));
    }
    let day = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| ApiError::bad_request("from/to: RFC 3339 or YYYY-MM-DD"))?;
    Ok(rxvault_audit::unix_ms(day.midnight().assume_utc()))
}

/// `GET /api/v1/audit`: entries matching a forensic query, answered from
/// the log's indexes (who saw which patients, when, from where).
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    caller.authorize(&state, Action::AuditRead).await?;
    let query = rxvault_audit::Query {
        user: q.user,
        session: q.session,
        host: q.host,
        ip: q
            .ip
            .map(|ip| ip.parse())
            .transpose()
            .map_err(|_| ApiError::bad_request("ip: not an address"))?,
        patient: q
            .patient
            .as_deref()
            .map(|id| state.vault.rid(RecordKind::Patient, id)),
        action: q
            .action
            .as_deref()
            .map(|a| {
                ActionKind::from_name(a)
                    .ok_or_else(|| ApiError::bad_request("action: unknown kind"))
            })
            .transpose()?,
        export: q.export,
        from_ms: q.from.as_deref().map(time_ms).transpose()?,
        to_ms: q.to.as_deref().map(time_ms).transpose()?,
        after: None,
        limit: q.limit.unwrap_or(1000).min(10_000),
    };
    blocking(move || {
        // Audited by the vault once the query ran, with its outcome: the
        // same entry as `rxvault audit query`.
        let entries =
            state
                .vault
                .use_audit_log(&caller.requester(), AuditLogUse::Query, |reader| {
                    reader.query(&query)
                })?;
        let list: Vec<Value> = entries
            .iter()
            .map(rxvault_audit::export::jsonl::to_json)
            .collect();
        Ok(Json(list).into_response())
    })
    .await
}

/// Which grants to list.
#[derive(Debug, Deserialize, Default)]
pub struct GrantsQuery {
    /// Only grants not yet reviewed.
    unreviewed: Option<bool>,
}

/// `GET /api/v1/break-glass`: emergency-access grants, for review. The
/// reasons may name patients; they are shown to the privacy officer only.
pub async fn grants(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<GrantsQuery>,
) -> Result<Response, ApiError> {
    caller.authorize(&state, Action::AuditRead).await?;
    blocking(move || {
        // Audited by rxvault-auth (a use of the audit trail), with its
        // outcome.
        let grants = state.auth.break_glass_grants(&caller.principal, q.unreviewed.unwrap_or(true))?;
        let list: Vec<Value> = grants
            .iter()
            .map(|g| {
                json!({
                    "id": g.id, "user": g.user.as_str(), "session": g.session.as_str(), "reason": g.reason,
                    "started_at": g.started_at.unix_timestamp(), "expires_at": g.expires_at.unix_timestamp(),
                    "ended_at": g.ended_at.map(|t| t.unix_timestamp()),
                    "reviewed_at": g.reviewed_at.map(|t| t.unix_timestamp()),
                })
            })
            .collect();
        Ok(Json(list).into_response())
    })
    .await
}

/// `POST /api/v1/break-glass/{id}/review`: mark a grant reviewed.
pub async fn review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize(&state, Action::AuditRead).await?;
    blocking(move || {
        // Audited by rxvault-auth, with its outcome.
        state.auth.review_break_glass(&caller.principal, &id)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}
