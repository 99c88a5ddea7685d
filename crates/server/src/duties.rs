//! Separation of duties over HTTPS: one-time enrolment codes (issued by an
//! administrator, redeemed by the person they are for, who sets their own
//! password and then enrols a second factor) and access requests (a role
//! that reads charts or approves, an API key that reads charts) that a
//! second person approves or refuses. The rules and their audit live in
//! `rxvault_auth::duties`; the command line calls the same functions.

use crate::error::ApiError;
use crate::state::{AppState, Caller, blocking};
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rxvault_auth::{AccessRequest, Action, Grant, RoleChange};
use rxvault_crypto::Password;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;

type ApiResult<T = Response> = Result<T, ApiError>;

/// An access request as approvers see it.
pub fn request_json(r: &AccessRequest) -> Value {
    let grant = match &r.grant {
        Grant::Role { role, previous } => {
            json!({"type": "role", "role": role.name(), "previous": previous.map(|p| p.name())})
        }
        Grant::ApiKey { key, scopes } => json!({
            "type": "api-key", "key": key,
            "scopes": scopes.iter().map(|s| s.name()).collect::<Vec<_>>(),
        }),
    };
    json!({
        "id": r.id,
        "target": r.target,
        "grant": grant,
        "requested_by": r.requested_by,
        "created_at": r.created_at.unix_timestamp(),
        "expires_at": r.expires_at.unix_timestamp(),
        "status": r.status.name(),
    })
}

/// A role change's answer: the pending request, or `null` (in force).
pub fn role_change_json(change: &RoleChange) -> Value {
    match change {
        RoleChange::Applied => Value::Null,
        RoleChange::Pending(r) => request_json(r),
    }
}

/// `POST /api/v1/users/{username}/enrolment-code`: re-enrols a person (a
/// forgotten password, lost second factors): their password, second
/// factors and sessions are gone at once, a role that reads charts or
/// approves waits for a second person again (`role_request`), and the new
/// code (shown once) lets them set a password.
pub async fn issue_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult {
    caller.authorize(&state, Action::UserAdmin).await?;
    blocking(move || {
        let admin = state.auth.admin(&caller.principal)?;
        // Audited by rxvault-auth with its real outcome.
        let issued = admin.issue_enrolment_code(&username)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({
                "username": username,
                "enrolment_code": issued.enrolment.code(),
                "enrolment_expires_at": issued.enrolment.expires_at().unix_timestamp(),
                "role_request": issued.request.as_ref().map_or(Value::Null, request_json),
            })),
        )
            .into_response())
    })
    .await
}

/// A redemption: the login name, the code and the person's own password.
#[derive(Debug, Deserialize)]
pub struct RedeemRequest {
    username: String,
    code: String,
    password: String,
}

/// `POST /api/v1/enrolment`: redeems an enrolment code. The person's own
/// password is set (the policy applies) and the login continues at its
/// enrolment stage: enrol TOTP or a passkey (`/api/v1/sessions/enrol/...`)
/// before anything else. A wrong code is the login form's one 401 and is
/// throttled like a wrong password.
pub async fn redeem(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<RedeemRequest>,
) -> ApiResult {
    let client = crate::api::client(addr, &headers)?;
    blocking(move || {
        // Audited by rxvault-auth (enrolment-code-redeemed) with its outcome.
        let login = state.auth.redeem_enrolment(
            &body.username,
            &body.code,
            &Password::new(body.password),
            &client,
        )?;
        Ok(Json(crate::api::login_step(&login)).into_response())
    })
    .await
}

/// `GET /api/v1/access-requests`: requests waiting for a second person
/// (administrators and the privacy officer).
pub async fn pending(State(state): State<AppState>, caller: Caller) -> ApiResult {
    caller.authorize(&state, Action::AccessApprove).await?;
    blocking(move || {
        let approver = state.auth.approver(&caller.principal)?;
        let list: Vec<Value> = approver.pending()?.iter().map(request_json).collect();
        Ok(Json(list).into_response())
    })
    .await
}

/// `POST /api/v1/access-requests/{id}/approve`: grants a request (not
/// one's own, not one for oneself).
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    decide(state, caller, id, true).await
}

/// `POST /api/v1/access-requests/{id}/refuse`: refuses a request (a
/// refused API key is revoked).
pub async fn refuse(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    decide(state, caller, id, false).await
}

async fn decide(state: AppState, caller: Caller, id: String, approve: bool) -> ApiResult {
    caller.authorize(&state, Action::AccessApprove).await?;
    blocking(move || {
        let approver = state.auth.approver(&caller.principal)?;
        // Audited by rxvault-auth with its real outcome.
        let decided = if approve {
            approver.approve(&id)?
        } else {
            approver.refuse(&id)?
        };
        Ok(Json(request_json(&decided)).into_response())
    })
    .await
}
