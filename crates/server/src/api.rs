//! The JSON API under `/api/v1`: sessions, patients and their records,
//! shipments, exports, users, break-glass, the audit log.
//!
//! Every PHI-bearing handler: authenticates ([`Caller`]), authorizes one
//! [`Action`] from the permission table, opens only the caller's
//! categories, and goes through the vault's audited entry points, so the
//! response leaves only after its audit entry is durable.
//!
//! **No handler here writes an audit entry.** Sign-in, second factors,
//! lockouts, logout, step-up, administration, break-glass and session
//! revocation are recorded by `rxvault-auth`, which does them, from the
//! request's [`Client`] (address, named host, `User-Agent`); PHI access by
//! `rxvault_vault::access`. Only refusals by the permission table (and its
//! constraints) are recorded by the server ([`Caller::authorize`]), which
//! is where they are decided.

use crate::error::ApiError;
use crate::state::{AppState, Caller, Credentials, Who, blocking, host};
use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rxvault_auth::{
    Action, Auth, Authenticated, Client, Constraint, Enrolling, Login, PendingMfa, Role, Session,
};
use rxvault_crypto::{Password, Token};
use rxvault_fhir::Resource;
use rxvault_model::{IndexKind, RecordKind, Rid};
use rxvault_vault::Vault;
use rxvault_vault::access::{Audited, Requester, View};
use rxvault_vault::query::Find;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;

type ApiResult<T = Response> = Result<T, ApiError>;

// ---------------------------------------------------------------- sessions --

/// Login, first step.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// A second factor for a pending login.
#[derive(Debug, Deserialize)]
pub struct CodeRequest {
    pending_token: String,
    code: String,
}

/// A pending login, by its token.
#[derive(Debug, Deserialize)]
pub struct PendingRequest {
    pending_token: String,
}

/// The client of a request, as identity and access records it: the
/// connection's address, the host the client names, its user agent.
pub(crate) fn client(addr: SocketAddr, headers: &HeaderMap) -> ApiResult<Client> {
    let mut client = Client::at(addr.ip()).host(host(headers)?);
    if let Some(ua) = headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    {
        client = client.user_agent(ua);
    }
    Ok(client)
}

/// What a client is told of a login that continues: its pending token and
/// the methods of the next step.
pub(crate) fn login_step(login: &Login) -> Value {
    match login {
        Login::SecondFactor(s) => {
            let f = s.factors();
            let mut methods = Vec::new();
            if f.totp {
                methods.push("totp");
            }
            if f.passkeys > 0 {
                methods.push("passkey");
            }
            if f.recovery_codes > 0 {
                methods.push("recovery-code");
            }
            json!({"stage": "second-factor", "pending_token": s.token().expose(), "methods": methods})
        }
        Login::Enrol(s) => {
            json!({"stage": "enrol", "pending_token": s.token().expose(), "methods": ["totp", "passkey"]})
        }
    }
}

/// `POST /api/v1/sessions`: password; then a second factor (or enrolment).
/// Every attempt is audited by rxvault-auth, with its outcome and reason.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> ApiResult {
    let client = client(addr, &headers)?;
    blocking(move || {
        let password = Password::new(body.password);
        let login = state
            .auth
            .login_password(&body.username, &password, &client)?;
        Ok(Json(login_step(&login)).into_response())
    })
    .await
}

fn issued(session: &Session<Authenticated>) -> Value {
    json!({
        "token": session.token().expose(),
        "session_id": session.id().as_str(),
        "expires_at": session.expires_at().unix_timestamp(),
    })
}

/// `POST /api/v1/sessions/totp`: a TOTP code for a pending login.
pub async fn login_totp(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<CodeRequest>,
) -> ApiResult {
    second_factor(state, client(addr, &headers)?, body, Auth::verify_totp).await
}

/// `POST /api/v1/sessions/recovery-code`: a recovery code for a pending login.
pub async fn login_recovery(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<CodeRequest>,
) -> ApiResult {
    second_factor(
        state,
        client(addr, &headers)?,
        body,
        Auth::verify_recovery_code,
    )
    .await
}

/// The pending login `token` names, if it is waiting for a second factor.
fn awaiting_second_factor(
    state: &AppState,
    token: &str,
    client: &Client,
) -> ApiResult<Session<PendingMfa>> {
    match state.auth.resume(&Token::from_presented(token), client)? {
        Login::SecondFactor(s) => Ok(s),
        Login::Enrol(_) => Err(ApiError::unauthenticated()),
    }
}

/// The pending login `token` names, if it must enrol a second factor.
fn awaiting_enrolment(
    state: &AppState,
    token: &str,
    client: &Client,
) -> ApiResult<Session<Enrolling>> {
    match state.auth.resume(&Token::from_presented(token), client)? {
        Login::Enrol(s) => Ok(s),
        Login::SecondFactor(_) => Err(ApiError::unauthenticated()),
    }
}

/// The answer to a completed enrolment: the session and the recovery
/// codes (shown once).
fn enrolled(session: &Session<Authenticated>, codes: &rxvault_auth::RecoveryCodes) -> Response {
    let mut out = issued(session);
    out["recovery_codes"] = json!(codes.codes());
    Json(out).into_response()
}

/// How a code completes a pending login.
type CodeStep =
    fn(&Auth, Session<PendingMfa>, &str) -> rxvault_auth::Result<Session<Authenticated>>;

/// A code for a pending login (audited by rxvault-auth, with its outcome
/// and reason): the session, or the failure.
async fn second_factor(
    state: AppState,
    client: Client,
    body: CodeRequest,
    step: CodeStep,
) -> ApiResult {
    blocking(move || {
        let s = awaiting_second_factor(&state, &body.pending_token, &client)?;
        let session = step(&state.auth, s, &body.code)?;
        Ok(Json(issued(&session)).into_response())
    })
    .await
}

/// `POST /api/v1/sessions/enrol/totp`: start TOTP enrolment for a login
/// without a second factor.
pub async fn enrol_totp_start(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<PendingRequest>,
) -> ApiResult {
    let client = client(addr, &headers)?;
    blocking(move || {
        let s = awaiting_enrolment(&state, &body.pending_token, &client)?;
        let enrolment = state.auth.start_totp_enrolment(&s)?;
        Ok(Json(
            json!({"otpauth_uri": enrolment.uri(), "secret": enrolment.secret_base32().as_str()}),
        )
        .into_response())
    })
    .await
}

/// `POST /api/v1/sessions/enrol/totp/confirm`: the first code; returns the
/// session and the recovery codes (shown once). Audited by rxvault-auth.
pub async fn enrol_totp_confirm(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<CodeRequest>,
) -> ApiResult {
    let client = client(addr, &headers)?;
    blocking(move || {
        let s = awaiting_enrolment(&state, &body.pending_token, &client)?;
        let (session, codes) = state.auth.finish_totp_enrolment(s, &body.code)?;
        Ok(enrolled(&session, &codes))
    })
    .await
}

/// A passkey assertion or registration for a pending login.
#[derive(Debug, Deserialize)]
pub struct PasskeyRequest {
    pending_token: String,
    credential: Value,
    /// A name for a new passkey (enrolment).
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/v1/sessions/passkey/challenge`: the WebAuthn request options
/// for a pending login (pass them to `navigator.credentials.get`).
pub async fn passkey_challenge(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<PendingRequest>,
) -> ApiResult {
    let client = client(addr, &headers)?;
    blocking(move || {
        let s = awaiting_second_factor(&state, &body.pending_token, &client)?;
        Ok(Json(state.auth.start_passkey_login(&s)?).into_response())
    })
    .await
}

/// `POST /api/v1/sessions/passkey`: the assertion; returns the session.
/// Audited by rxvault-auth.
pub async fn passkey_login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<PasskeyRequest>,
) -> ApiResult {
    let client = client(addr, &headers)?;
    blocking(move || {
        let s = awaiting_second_factor(&state, &body.pending_token, &client)?;
        let credential: rxvault_auth::passkey::PublicKeyCredential =
            serde_json::from_value(body.credential)
                .map_err(|_| ApiError::bad_request("credential: not a WebAuthn assertion"))?;
        let session = state.auth.finish_passkey_login(s, &credential)?;
        Ok(Json(issued(&session)).into_response())
    })
    .await
}

/// `POST /api/v1/sessions/enrol/passkey`: WebAuthn creation options for a
/// login without a second factor.
pub async fn enrol_passkey_start(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<PendingRequest>,
) -> ApiResult {
    let client = client(addr, &headers)?;
    blocking(move || {
        let s = awaiting_enrolment(&state, &body.pending_token, &client)?;
        Ok(Json(state.auth.start_passkey_enrolment(&s)?).into_response())
    })
    .await
}

/// `POST /api/v1/sessions/enrol/passkey/confirm`: the registration; returns
/// the session and the recovery codes (shown once). Audited by
/// rxvault-auth.
pub async fn enrol_passkey_confirm(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<PasskeyRequest>,
) -> ApiResult {
    let client = client(addr, &headers)?;
    blocking(move || {
        let s = awaiting_enrolment(&state, &body.pending_token, &client)?;
        let credential: rxvault_auth::passkey::RegisterPublicKeyCredential =
            serde_json::from_value(body.credential)
                .map_err(|_| ApiError::bad_request("credential: not a WebAuthn registration"))?;
        let name = body.name.unwrap_or_else(|| "passkey".into());
        let (session, codes) = state.auth.finish_passkey_enrolment(s, &name, &credential)?;
        Ok(enrolled(&session, &codes))
    })
    .await
}

/// `DELETE /api/v1/sessions/current`: log out (audited by rxvault-auth).
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult {
    blocking(move || {
        state.auth.logout(&caller.principal)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// `GET /api/v1/sessions`: the caller's own sessions.
pub async fn own_sessions(State(state): State<AppState>, caller: Caller) -> ApiResult {
    blocking(move || {
        let sessions = state.auth.own_sessions(&caller.principal)?;
        let list: Vec<Value> = sessions
            .iter()
            .map(|s| json!({"session_id": s.id.as_str(), "created_at": s.created_at.unix_timestamp(), "last_seen": s.last_seen_at.unix_timestamp(), "expires_at": s.expires_at.unix_timestamp()}))
            .collect();
        Ok(Json(list).into_response())
    })
    .await
}

/// A TOTP code, for step-up.
#[derive(Debug, Deserialize)]
pub struct StepUpRequest {
    code: String,
}

/// `POST /api/v1/sessions/step-up`: a fresh second factor for the session
/// (audited by rxvault-auth, accepted or refused).
pub async fn step_up(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<StepUpRequest>,
) -> ApiResult {
    blocking(move || {
        state.auth.step_up_totp(&caller.principal, &body.code)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// `POST /api/v1/sessions/step-up/passkey/challenge`: WebAuthn request
/// options for a step-up in the caller's session (an account whose second
/// factor is a passkey).
pub async fn step_up_passkey_challenge(State(state): State<AppState>, caller: Caller) -> ApiResult {
    blocking(move || Ok(Json(state.auth.start_passkey_step_up(&caller.principal)?).into_response()))
        .await
}

/// The assertion of a passkey step-up.
#[derive(Debug, Deserialize)]
pub struct PasskeyStepUpRequest {
    credential: Value,
}

/// `POST /api/v1/sessions/step-up/passkey`: the assertion; a fresh second
/// factor in the caller's session, audited like a TOTP step-up.
pub async fn step_up_passkey(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PasskeyStepUpRequest>,
) -> ApiResult {
    blocking(move || {
        let credential: rxvault_auth::passkey::PublicKeyCredential =
            serde_json::from_value(body.credential)
                .map_err(|_| ApiError::bad_request("credential: not a WebAuthn assertion"))?;
        state
            .auth
            .finish_passkey_step_up(&caller.principal, &credential)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// What to revoke.
#[derive(Debug, Deserialize)]
pub struct RevokeRequest {
    session: Option<String>,
    user: Option<String>,
    host: Option<String>,
}

/// `POST /api/v1/sessions/revoke`: end sessions by id, user or host.
/// Audited by rxvault-auth with its outcome: the same entry as `rxvault
/// session revoke` (an unknown user as a refused revocation).
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RevokeRequest>,
) -> ApiResult {
    caller.authorize(&state, Action::RevokeSessions).await?;
    blocking(move || {
        use rxvault_auth::session::RevokeTarget;
        let n = match (body.session, body.user, body.host) {
            (Some(s), None, None) => state.auth.revoke(
                &caller.principal,
                &RevokeTarget::Session(rxvault_auth::SessionId::new(&s)),
            )?,
            (None, Some(u), None) => state.auth.revoke_user_named(&caller.principal, &u)?,
            (None, None, Some(h)) => state.auth.revoke(
                &caller.principal,
                &RevokeTarget::Host(rxvault_auth::HostId::new(&h)?),
            )?,
            _ => {
                return Err(ApiError::bad_request(
                    "name exactly one of session, user, host",
                ));
            }
        };
        Ok(Json(json!({"revoked": n})).into_response())
    })
    .await
}

// ----------------------------------------------------------------- records --

/// The actions for reading, creating and updating each record kind.
pub fn actions(kind: RecordKind) -> (Action, Action, Action) {
    match kind {
        RecordKind::Patient => (
            Action::PatientRead,
            Action::PatientCreate,
            Action::PatientUpdate,
        ),
        RecordKind::Coverage => (
            Action::CoverageRead,
            Action::CoverageWrite,
            Action::CoverageWrite,
        ),
        RecordKind::Prescription => (
            Action::PrescriptionRead,
            Action::PrescriptionCreate,
            Action::PrescriptionUpdate,
        ),
        RecordKind::Fill => (Action::FillRead, Action::FillCreate, Action::FillUpdate),
        RecordKind::Allergy => (
            Action::AllergyRead,
            Action::AllergyWrite,
            Action::AllergyWrite,
        ),
    }
}

/// A refusal beyond the permission table (a constraint not met): audited
/// like any other denial, then 403.
fn denied(state: &AppState, caller: &Caller, action: Action) -> ApiError {
    match state.vault.record(caller.denial(action)) {
        Ok(_) => ApiError::forbidden(),
        Err(e) => e.into(),
    }
}

/// Under a "fills dated today" constraint, whether fill `id` is one.
fn fill_is_today(state: &AppState, id: &str) -> ApiResult<bool> {
    let vault = &state.vault;
    let today = vault.today().to_string();
    let Some(token) = vault.token(IndexKind::FillDate, &today) else {
        return Ok(false);
    };
    let rid = vault.rid(RecordKind::Fill, id);
    // Checked hits: an index row moved to another fill is an error, not a
    // grant.
    Ok(vault
        .lookup(IndexKind::FillDate, &token)?
        .iter()
        .any(|h| h.rid == rid))
}

/// `GET /api/v1/{kind}/{id}`.
pub async fn read_record(
    state: AppState,
    who: impl Into<Who>,
    kind: RecordKind,
    id: String,
) -> ApiResult<Option<Resource>> {
    read_record_as(state, who, kind, id, Vault::read_record_audited).await
}

/// What reads a record for [`read_record_as`]: as a resource, or as JSON
/// text to serve as is.
type ReadAs<T> = fn(
    &Vault,
    &Requester,
    &View,
    RecordKind,
    &Rid,
) -> Result<Audited<Option<T>>, rxvault_vault::Error>;

/// [`read_record`], the record read by `read`.
pub async fn read_record_as<T: Send + 'static>(
    state: AppState,
    who: impl Into<Who>,
    kind: RecordKind,
    id: String,
    read: ReadAs<T>,
) -> ApiResult<Option<T>> {
    let who = who.into();
    // Authentication, the store read and decryption in one hop to the
    // blocking pool; the audit commit is awaited here, so no thread waits
    // for the group commit's fsync.
    let audited = blocking(move || {
        let caller = who.caller(&state.auth)?;
        let access = caller.authorize_blocking(&state, actions(kind).0)?;
        if access.constraint == Constraint::FillsDatedToday && !fill_is_today(&state, &id)? {
            return Err(denied(&state, &caller, access.action));
        }
        let rid = state.vault.rid(kind, &id);
        Ok(read(
            &state.vault,
            &caller.requester(),
            &caller.view(),
            kind,
            &rid,
        )?)
    })
    .await?;
    Ok(audited.released().await?)
}

/// `POST /api/v1/{kind}`: create (201 with the id).
pub async fn create_record(
    state: AppState,
    caller: Caller,
    kind: RecordKind,
    body: Value,
) -> ApiResult<(String, Resource)> {
    caller.authorize(&state, actions(kind).1).await?;
    let Value::Object(resource) = body else {
        return Err(ApiError::bad_request(
            "the body must be a FHIR resource (a JSON object)",
        ));
    };
    blocking(move || {
        let (id, _) = state.vault.create_record(
            &caller.requester(),
            &caller.view(),
            kind,
            resource.clone(),
        )?;
        Ok((id, resource))
    })
    .await
}

/// `PUT /api/v1/{kind}/{id}`: update the categories the caller may write.
pub async fn update_record(
    state: AppState,
    caller: Caller,
    kind: RecordKind,
    id: String,
    body: Value,
) -> ApiResult<String> {
    let access = caller.authorize(&state, actions(kind).2).await?;
    let Value::Object(resource) = body else {
        return Err(ApiError::bad_request(
            "the body must be a FHIR resource (a JSON object)",
        ));
    };
    blocking(move || {
        if access.constraint == Constraint::FillsDatedToday && !fill_is_today(&state, &id)? {
            return Err(denied(&state, &caller, access.action));
        }
        state
            .vault
            .update_record(&caller.requester(), &caller.view(), kind, &id, resource)?;
        Ok(id)
    })
    .await
}

/// A patient's records of one kind.
pub async fn patient_records(
    state: AppState,
    caller: Caller,
    kind: RecordKind,
    patient: String,
) -> ApiResult<Vec<Resource>> {
    let access = caller.authorize(&state, actions(kind).0).await?;
    if access.constraint == Constraint::FillsDatedToday {
        // A clerk reaches fills through the day's manifest, not by patient.
        return blocking(move || Err(denied(&state, &caller, access.action))).await;
    }
    blocking(move || {
        Ok(state
            .vault
            .read_patient_records(&caller.requester(), &caller.view(), kind, &patient)?)
    })
    .await
}

macro_rules! kind_handlers {
    ($kind:expr, $read:ident, $create:ident, $update:ident, $of_patient:ident) => {
        /// Read one record of this kind.
        pub async fn $read(State(state): State<AppState>, credentials: Credentials, Path(id): Path<String>) -> ApiResult {
            match read_record_as(state, credentials, $kind, id, Vault::read_record_json_audited).await? {
                Some(r) => Ok(([(header::CONTENT_TYPE, "application/json")], r.into_bytes()).into_response()),
                None => Err(ApiError::not_found()),
            }
        }

        /// Create a record of this kind.
        pub async fn $create(State(state): State<AppState>, caller: Caller, Json(body): Json<Value>) -> ApiResult {
            let (id, _) = create_record(state, caller, $kind, body).await?;
            Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
        }

        /// Update a record of this kind.
        pub async fn $update(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, Json(body): Json<Value>) -> ApiResult {
            let id = update_record(state, caller, $kind, id, body).await?;
            Ok(Json(json!({"id": id})).into_response())
        }

        /// A patient's records of this kind.
        pub async fn $of_patient(State(state): State<AppState>, caller: Caller, Path(patient): Path<String>) -> ApiResult {
            Ok(Json(patient_records(state, caller, $kind, patient).await?).into_response())
        }
    };
}

kind_handlers!(
    RecordKind::Patient,
    read_patient,
    create_patient,
    update_patient,
    _patient_of_patient
);
kind_handlers!(
    RecordKind::Coverage,
    read_coverage,
    create_coverage,
    update_coverage,
    coverages_of_patient
);
kind_handlers!(
    RecordKind::Prescription,
    read_prescription,
    create_prescription,
    update_prescription,
    prescriptions_of_patient
);
kind_handlers!(
    RecordKind::Fill,
    read_fill,
    create_fill,
    update_fill,
    fills_of_patient
);
kind_handlers!(
    RecordKind::Allergy,
    read_allergy,
    create_allergy,
    update_allergy,
    allergies_of_patient
);

/// Patient search parameters (exactly one search).
#[derive(Debug, Deserialize, Default)]
pub struct PatientQuery {
    family: Option<String>,
    birth_date: Option<String>,
    phone: Option<String>,
    member_id: Option<String>,
    rx_number: Option<String>,
    transaction_id: Option<String>,
    identifier: Option<String>,
}

impl PatientQuery {
    /// The one search these parameters ask for.
    pub fn find(self) -> Result<Find, ApiError> {
        let mut found: Vec<Find> = [
            match (self.family, self.birth_date) {
                (Some(family), Some(birth_date)) => {
                    Some(Find::FamilyBirthDate { family, birth_date })
                }
                (None, None) => None,
                _ => return Err(ApiError::bad_request("family and birth_date go together")),
            },
            self.phone.map(Find::Phone),
            self.member_id.map(Find::MemberId),
            self.rx_number.map(Find::RxNumber),
            self.transaction_id.map(Find::TransactionId),
            self.identifier.map(Find::PatientIdentifier),
        ]
        .into_iter()
        .flatten()
        .collect();
        match (found.pop(), found.pop()) {
            (Some(f), None) => Ok(f),
            _ => Err(ApiError::bad_request(
                "give exactly one search: family with birth_date, phone, member_id, rx_number, transaction_id or identifier",
            )),
        }
    }
}

/// `GET /api/v1/patients?...`: search through the blind indexes.
pub async fn search_patients(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PatientQuery>,
) -> ApiResult {
    caller.authorize(&state, Action::PatientSearch).await?;
    let find = q.find()?;
    blocking(move || {
        let found = state
            .vault
            .search_patients(&caller.requester(), &caller.view(), &find)?;
        Ok(Json(found.into_iter().map(|(_, p)| p).collect::<Vec<_>>()).into_response())
    })
    .await
}

/// `GET /api/v1/patients/{id}/chart`: everything of a patient the caller
/// may see (kinds the role may not read are left out), with the derived
/// medication list.
pub async fn chart(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    caller.authorize(&state, Action::PatientRead).await?;
    let mut view = caller.view();
    for kind in [
        RecordKind::Coverage,
        RecordKind::Prescription,
        RecordKind::Fill,
        RecordKind::Allergy,
    ] {
        if caller.principal.permits(actions(kind).0).is_none() {
            view = rxvault_vault::access::View::from_fn(|k| {
                if k == kind {
                    rxvault_model::CategorySet::NONE
                } else {
                    view.of(k)
                }
            });
        }
    }
    blocking(move || {
        let Some(chart) = state.vault.read_chart(&caller.requester(), &view, &id)? else {
            return Err(ApiError::not_found());
        };
        let nonempty = |kind: RecordKind, list: Vec<Resource>| if view.of(kind).is_empty() { Value::Null } else { json!(list) };
        let medications = chart.view().map(|v| json!(v.medications)).unwrap_or(Value::Null);
        Ok(Json(json!({
            "patient": chart.patient,
            "coverages": nonempty(RecordKind::Coverage, chart.coverages),
            "prescriptions": nonempty(RecordKind::Prescription, chart.prescriptions),
            "fills": nonempty(RecordKind::Fill, chart.fills),
            "allergies": nonempty(RecordKind::Allergy, chart.allergies),
            "medications": if view.of(RecordKind::Prescription).is_empty() { Value::Null } else { medications },
        }))
        .into_response())
    })
    .await
}

/// A day.
#[derive(Debug, Deserialize)]
pub struct DateQuery {
    date: Option<String>,
}

/// `GET /api/v1/shipments?date=YYYY-MM-DD`: the day's packages (ship-to
/// only). A shipping clerk may ask for today only.
pub async fn shipments(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DateQuery>,
) -> ApiResult {
    let access = caller.authorize(&state, Action::ShippingManifest).await?;
    blocking(move || {
        let today = state.vault.today().to_string();
        let date = q.date.unwrap_or_else(|| today.clone());
        if access.constraint == Constraint::FillsDatedToday
            && rxvault_model::normalize::day(&date).as_deref() != Some(today.as_str())
        {
            return Err(denied(&state, &caller, access.action));
        }
        let rows = state.vault.shipments_for(&caller.requester(), &date)?;
        Ok(Json(rows).into_response())
    })
    .await
}

// ----------------------------------------------------------------- exports --

/// A bulk export request: always encrypted to age recipients.
#[derive(Debug, Deserialize)]
pub struct ExportRequest {
    recipients: Vec<String>,
}

/// `POST /api/v1/exports`: export everything as FHIR NDJSON encrypted to
/// the given age recipients (step-up required). The files stay on the
/// server under `DIR/exports/<export id>/`.
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ExportRequest>,
) -> ApiResult {
    caller.authorize(&state, Action::BulkExport).await?;
    let recipients = rxvault_crypto::export::Recipients::parse(&body.recipients)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    blocking(move || {
        let dir = state
            .vault
            .config()
            .dir
            .join("exports")
            .join(rxvault_crypto::random_id().map_err(|e| ApiError::internal(&e))?);
        let report = state.vault.export_fhir_for(
            &caller.requester(),
            &dir,
            &rxvault_vault::export::Target::Age(recipients),
            &mut rxvault_vault::keys::Quiet,
        )?;
        Ok((
            StatusCode::CREATED,
            Json(json!({"export_id": report.export_id, "files": report.files, "folder": dir})),
        )
            .into_response())
    })
    .await
}

// ------------------------------------------------------------------- users --

/// A new person: a name and a role. No password: the answer carries a
/// one-time enrolment code the person sets their own password with.
#[derive(Debug, Deserialize)]
pub struct NewUser {
    username: String,
    role: String,
}

/// Changes to a user.
#[derive(Debug, Deserialize)]
pub struct UserChange {
    role: Option<String>,
    disabled: Option<bool>,
}

fn user_json(u: &rxvault_auth::UserInfo) -> Value {
    json!({
        "id": u.id.as_str(), "username": u.username, "role": u.role.map(Role::name), "service": u.service, "disabled": u.disabled,
        "totp": u.totp, "passkeys": u.passkeys, "recovery_codes": u.recovery_codes, "locked": u.locked,
    })
}

/// `GET /api/v1/users`.
pub async fn users(State(state): State<AppState>, caller: Caller) -> ApiResult {
    caller.authorize(&state, Action::UserAdmin).await?;
    blocking(move || {
        let admin = state.auth.admin(&caller.principal)?;
        Ok(Json(admin.users()?.iter().map(user_json).collect::<Vec<_>>()).into_response())
    })
    .await
}

/// `POST /api/v1/users`: a new person and their one-time enrolment code
/// (shown once: hand it to them). A role that reads charts or approves is
/// a request a second person approves (`role_request`).
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewUser>,
) -> ApiResult {
    caller.authorize(&state, Action::UserAdmin).await?;
    blocking(move || {
        let admin = state.auth.admin(&caller.principal)?;
        // Audited by rxvault-auth with its real outcome (an unknown role or
        // a taken name as denied), the request and the code too.
        let new = admin.add_person_named(&body.username, &body.role)?;
        let mut out = user_json(&new.user);
        out["enrolment_code"] = json!(new.enrolment.code());
        out["enrolment_expires_at"] = json!(new.enrolment.expires_at().unix_timestamp());
        out["role_request"] = crate::duties::role_change_json(&new.role);
        Ok((StatusCode::CREATED, Json(out)).into_response())
    })
    .await
}

/// `PATCH /api/v1/users/{username}`: a role (at once if it is a lowering
/// or reads no chart, else a request a second person approves:
/// `role_request`), disabled or enabled.
pub async fn change_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Json(body): Json<UserChange>,
) -> ApiResult {
    caller.authorize(&state, Action::UserAdmin).await?;
    blocking(move || {
        let admin = state.auth.admin(&caller.principal)?;
        // Each change is audited by rxvault-auth with its real outcome.
        let request = match &body.role {
            Some(role) => crate::duties::role_change_json(&admin.set_role_named(&username, role)?),
            None => Value::Null,
        };
        match body.disabled {
            Some(true) => admin.disable(&username)?,
            Some(false) => admin.enable(&username)?,
            None => {}
        }
        let mut out = user_json(&admin.user(&username)?);
        out["role_request"] = request;
        Ok(Json(out).into_response())
    })
    .await
}

/// `DELETE /api/v1/users/{username}/mfa`: remove every second factor (the
/// user enrols again at next login).
pub async fn reset_mfa(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult {
    caller.authorize(&state, Action::UserAdmin).await?;
    blocking(move || {
        let admin = state.auth.admin(&caller.principal)?;
        admin.reset_mfa(&username)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

// ------------------------------------------------------------- break-glass --

/// Why emergency access is needed.
#[derive(Debug, Deserialize)]
pub struct BreakGlassRequest {
    reason: String,
}

/// `POST /api/v1/break-glass`: emergency read access to whole charts for an
/// hour, with a typed reason, flagged for the privacy officer's review.
pub async fn break_glass(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<BreakGlassRequest>,
) -> ApiResult {
    caller.authorize(&state, Action::BreakGlass).await?;
    blocking(move || {
        // Audited by rxvault-auth with its real outcome.
        let grant = state.auth.break_glass(&caller.principal, &body.reason)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({"grant_id": grant.id, "expires_at": grant.expires_at.unix_timestamp(), "event": {"system": rxvault_auth::BreakGlassGrant::EVENT.system, "code": rxvault_auth::BreakGlassGrant::EVENT.code}})),
        )
            .into_response())
    })
    .await
}

/// `GET /api/v1/health`: liveness (no authentication, no data).
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
