//! The route table: every endpoint once, with the permission-table action
//! it needs and the handler that serves it. The router, the OpenAPI
//! document and the authorization-matrix test are all built from this one
//! table: an endpoint exists, is documented and is tested by being in it.

use crate::state::AppState;
use crate::{alerts, api, duties, fhir, oversight};
use axum::Router;
use axum::routing::MethodRouter;
use rxvault_auth::Action;
use serde_json::{Map, Value, json};

/// How an endpoint is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// No authentication (health, metadata, OpenAPI, login steps).
    Public,
    /// Any authenticated principal (own sessions, logout, step-up).
    Session,
    /// A principal the permission table allows this action.
    Action(Action),
}

/// One endpoint.
#[derive(Clone, Copy)]
pub struct Endpoint {
    /// HTTP method (lower case).
    pub method: &'static str,
    /// Path template (`{id}` parameters).
    pub path: &'static str,
    /// What it needs.
    pub guard: Guard,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Request body schema name, if any.
    pub body: Option<&'static str>,
    /// Query parameters (name, required, description).
    pub query: &'static [(&'static str, bool, &'static str)],
    /// Success status and response schema name.
    pub ok: (u16, &'static str),
    /// Whether it is FHIR (`application/fhir+json`).
    pub fhir: bool,
    /// The route it is served on: its path, or the route all FHIR types
    /// share.
    pub route: &'static str,
    /// Adds its handler, for its method, to the route's method router.
    pub handler: fn(MethodRouter<AppState>) -> MethodRouter<AppState>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

/// An entry: `ep!(method, path, guard, summary, handler)`. The method is
/// written once: it names both the entry's method and the method router
/// the handler is added under.
macro_rules! ep {
    ($method:ident, $path:literal, $guard:expr, $summary:literal, $handler:path) => {
        endpoint(
            stringify!($method),
            $path,
            $guard,
            $summary,
            |r: MethodRouter<AppState>| r.$method($handler),
        )
    };
}

const fn endpoint(
    method: &'static str,
    path: &'static str,
    guard: Guard,
    summary: &'static str,
    handler: fn(MethodRouter<AppState>) -> MethodRouter<AppState>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        guard,
        summary,
        body: None,
        query: &[],
        ok: (200, "Object"),
        fhir: false,
        route: path,
        handler,
    }
}

const fn body(mut e: Endpoint, schema: &'static str) -> Endpoint {
    e.body = Some(schema);
    e
}

const fn ok(mut e: Endpoint, status: u16, schema: &'static str) -> Endpoint {
    e.ok = (status, schema);
    e
}

const fn query(mut e: Endpoint, q: &'static [(&'static str, bool, &'static str)]) -> Endpoint {
    e.query = q;
    e
}

const fn fhir_ep(mut e: Endpoint, route: &'static str) -> Endpoint {
    e.fhir = true;
    e.ok = (200, "FhirResource");
    e.route = route;
    e
}

/// A FHIR read (`/fhir/<type>/{id}`), on the route every type shares.
const fn fhir_read(e: Endpoint) -> Endpoint {
    fhir_ep(e, "/fhir/{resource_type}/{id}")
}

/// A FHIR search (`/fhir/<type>`), on the route every type shares.
const fn fhir_search(e: Endpoint) -> Endpoint {
    fhir_ep(e, "/fhir/{resource_type}")
}

use Guard::{Public, Session};

const PATIENT_QUERY: &[(&str, bool, &str)] = &[
    ("family", false, "Family name (with birth_date)"),
    (
        "birth_date",
        false,
        "Birth date YYYY-MM-DD or MM/DD/YYYY (with family)",
    ),
    ("phone", false, "Phone number, any format"),
    ("member_id", false, "Health plan member ID"),
    ("rx_number", false, "Prescription Rx number"),
    ("transaction_id", false, "Fill transaction ID"),
    ("identifier", false, "Patient identifier (MRN and others)"),
];

const FHIR_PATIENT_QUERY: &[(&str, bool, &str)] = &[
    ("_id", false, "The patient's id"),
    ("family", false, "Family name (with birthdate)"),
    ("given", false, "Given name (narrows a family search)"),
    ("birthdate", false, "Birth date (with family)"),
    ("phone", false, "Phone number"),
    ("identifier", false, "Identifier value, or system|value"),
];

const FHIR_RECORD_QUERY: &[(&str, bool, &str)] = &[
    ("_id", false, "The record's id"),
    ("patient", false, "Patient/id or id"),
    (
        "identifier",
        false,
        "Member ID, Rx number or transaction ID",
    ),
];

/// Every endpoint.
#[rustfmt::skip]
pub static ENDPOINTS: &[Endpoint] = &[
    ep!(get, "/api/v1/health", Public, "Liveness", api::health),
    ep!(get, "/api/v1/openapi.json", Public, "This OpenAPI document", openapi_json),
    ok(body(ep!(post, "/api/v1/sessions", Public, "Log in: password, then a second factor", api::login), "LoginRequest"), 200, "LoginStep"),
    ok(body(ep!(post, "/api/v1/sessions/totp", Public, "Second factor: a TOTP code", api::login_totp), "CodeRequest"), 200, "SessionToken"),
    ok(body(ep!(post, "/api/v1/sessions/recovery-code", Public, "Second factor: a single-use recovery code", api::login_recovery), "CodeRequest"), 200, "SessionToken"),
    ok(body(ep!(post, "/api/v1/sessions/passkey/challenge", Public, "Second factor: WebAuthn request options", api::passkey_challenge), "PendingRequest"), 200, "Object"),
    ok(body(ep!(post, "/api/v1/sessions/passkey", Public, "Second factor: a WebAuthn assertion", api::passkey_login), "PasskeyRequest"), 200, "SessionToken"),
    ok(body(ep!(post, "/api/v1/sessions/enrol/passkey", Public, "Enrol a passkey: WebAuthn creation options", api::enrol_passkey_start), "PendingRequest"), 200, "Object"),
    ok(body(ep!(post, "/api/v1/sessions/enrol/passkey/confirm", Public, "Enrol a passkey: the registration", api::enrol_passkey_confirm), "PasskeyRequest"), 200, "SessionToken"),
    ok(body(ep!(post, "/api/v1/sessions/enrol/totp", Public, "Enrol TOTP (a login without a second factor)", api::enrol_totp_start), "PendingRequest"), 200, "TotpEnrolment"),
    ok(body(ep!(post, "/api/v1/sessions/enrol/totp/confirm", Public, "Confirm TOTP enrolment with a first code", api::enrol_totp_confirm), "CodeRequest"), 200, "SessionToken"),
    ok(body(ep!(post, "/api/v1/enrolment", Public, "Redeem a one-time enrolment code: set your own password, then enrol a second factor", duties::redeem), "RedeemRequest"), 200, "LoginStep"),
    ok(ep!(get, "/api/v1/sessions", Session, "The caller's sessions", api::own_sessions), 200, "Array"),
    ok(ep!(delete, "/api/v1/sessions/current", Session, "Log out", api::logout), 204, "Empty"),
    ok(body(ep!(post, "/api/v1/sessions/step-up", Session, "A fresh second factor (step-up)", api::step_up), "StepUpRequest"), 204, "Empty"),
    ok(ep!(post, "/api/v1/sessions/step-up/passkey/challenge", Session, "Step-up with a passkey: WebAuthn request options", api::step_up_passkey_challenge), 200, "Object"),
    ok(body(ep!(post, "/api/v1/sessions/step-up/passkey", Session, "Step-up with a passkey: the assertion", api::step_up_passkey), "PasskeyStepUpRequest"), 204, "Empty"),
    body(ep!(post, "/api/v1/sessions/revoke", Guard::Action(Action::RevokeSessions), "Revoke sessions by id, user or host", api::revoke), "RevokeRequest"),
    ok(query(ep!(get, "/api/v1/patients", Guard::Action(Action::PatientSearch), "Find patients (blind indexes)", api::search_patients), PATIENT_QUERY), 200, "Array"),
    ok(body(ep!(post, "/api/v1/patients", Guard::Action(Action::PatientCreate), "Create a patient (FHIR Patient)", api::create_patient), "FhirResource"), 201, "Id"),
    ok(ep!(get, "/api/v1/patients/{id}", Guard::Action(Action::PatientRead), "Read a patient (FHIR Patient, masked)", api::read_patient), 200, "FhirResource"),
    ok(body(ep!(put, "/api/v1/patients/{id}", Guard::Action(Action::PatientUpdate), "Update a patient", api::update_patient), "FhirResource"), 200, "Id"),
    ep!(get, "/api/v1/patients/{id}/chart", Guard::Action(Action::PatientRead), "A patient's chart as the caller may see it", api::chart),
    ok(ep!(get, "/api/v1/patients/{id}/coverages", Guard::Action(Action::CoverageRead), "A patient's health plans", api::coverages_of_patient), 200, "Array"),
    ok(ep!(get, "/api/v1/patients/{id}/prescriptions", Guard::Action(Action::PrescriptionRead), "A patient's prescriptions", api::prescriptions_of_patient), 200, "Array"),
    ok(ep!(get, "/api/v1/patients/{id}/fills", Guard::Action(Action::FillRead), "A patient's fills", api::fills_of_patient), 200, "Array"),
    ok(ep!(get, "/api/v1/patients/{id}/allergies", Guard::Action(Action::AllergyRead), "A patient's allergies", api::allergies_of_patient), 200, "Array"),
    ok(body(ep!(post, "/api/v1/coverages", Guard::Action(Action::CoverageWrite), "Create a health plan (FHIR Coverage)", api::create_coverage), "FhirResource"), 201, "Id"),
    ok(ep!(get, "/api/v1/coverages/{id}", Guard::Action(Action::CoverageRead), "Read a health plan", api::read_coverage), 200, "FhirResource"),
    ok(body(ep!(put, "/api/v1/coverages/{id}", Guard::Action(Action::CoverageWrite), "Update a health plan", api::update_coverage), "FhirResource"), 200, "Id"),
    ok(body(ep!(post, "/api/v1/prescriptions", Guard::Action(Action::PrescriptionCreate), "Receive an e-prescription (FHIR MedicationRequest)", api::create_prescription), "FhirResource"), 201, "Id"),
    ok(ep!(get, "/api/v1/prescriptions/{id}", Guard::Action(Action::PrescriptionRead), "Read a prescription", api::read_prescription), 200, "FhirResource"),
    ok(body(ep!(put, "/api/v1/prescriptions/{id}", Guard::Action(Action::PrescriptionUpdate), "Update a prescription", api::update_prescription), "FhirResource"), 200, "Id"),
    ok(body(ep!(post, "/api/v1/fills", Guard::Action(Action::FillCreate), "Record a fill (FHIR MedicationDispense)", api::create_fill), "FhirResource"), 201, "Id"),
    ok(ep!(get, "/api/v1/fills/{id}", Guard::Action(Action::FillRead), "Read a fill", api::read_fill), 200, "FhirResource"),
    ok(body(ep!(put, "/api/v1/fills/{id}", Guard::Action(Action::FillUpdate), "Update a fill (status, carrier, tracking)", api::update_fill), "FhirResource"), 200, "Id"),
    ok(body(ep!(post, "/api/v1/allergies", Guard::Action(Action::AllergyWrite), "Record an allergy (FHIR AllergyIntolerance)", api::create_allergy), "FhirResource"), 201, "Id"),
    ok(ep!(get, "/api/v1/allergies/{id}", Guard::Action(Action::AllergyRead), "Read an allergy", api::read_allergy), 200, "FhirResource"),
    ok(body(ep!(put, "/api/v1/allergies/{id}", Guard::Action(Action::AllergyWrite), "Update an allergy", api::update_allergy), "FhirResource"), 200, "Id"),
    ok(query(ep!(get, "/api/v1/shipments", Guard::Action(Action::ShippingManifest), "The day's packages: ship-to only", api::shipments), &[("date", false, "YYYY-MM-DD (default today)")]), 200, "Array"),
    ok(body(ep!(post, "/api/v1/exports", Guard::Action(Action::BulkExport), "Bulk FHIR export, encrypted to age recipients (step-up)", api::export), "ExportRequest"), 201, "Object"),
    ok(ep!(get, "/api/v1/users", Guard::Action(Action::UserAdmin), "List users (step-up)", api::users), 200, "Array"),
    ok(body(ep!(post, "/api/v1/users", Guard::Action(Action::UserAdmin), "Create a person: a one-time enrolment code; a role that reads charts or approves waits for a second person (step-up)", api::create_user), "NewUser"), 201, "Object"),
    body(ep!(patch, "/api/v1/users/{id}", Guard::Action(Action::UserAdmin), "Change a user's role (a raise into a sensitive role is a request) or disable them (step-up)", api::change_user), "UserChange"),
    ok(ep!(delete, "/api/v1/users/{id}/mfa", Guard::Action(Action::UserAdmin), "Reset a user's second factors (step-up)", api::reset_mfa), 204, "Empty"),
    ok(ep!(post, "/api/v1/users/{id}/enrolment-code", Guard::Action(Action::UserAdmin), "Re-enrol a user: a new one-time enrolment code; a sensitive role waits for approval again (step-up)", duties::issue_code), 201, "Object"),
    ok(ep!(get, "/api/v1/access-requests", Guard::Action(Action::AccessApprove), "Access requests waiting for a second person (step-up)", duties::pending), 200, "Array"),
    ok(ep!(post, "/api/v1/access-requests/{id}/approve", Guard::Action(Action::AccessApprove), "Approve an access request: not your own, not one for yourself (step-up)", duties::approve), 200, "Object"),
    ok(ep!(post, "/api/v1/access-requests/{id}/refuse", Guard::Action(Action::AccessApprove), "Refuse an access request (step-up)", duties::refuse), 200, "Object"),
    ok(body(ep!(post, "/api/v1/break-glass", Guard::Action(Action::BreakGlass), "Emergency access, with a reason (step-up)", api::break_glass), "BreakGlassRequest"), 201, "Object"),
    ok(query(ep!(get, "/api/v1/break-glass", Guard::Action(Action::AuditRead), "Break-glass grants to review (privacy officer)", oversight::grants), &[("unreviewed", false, "true (default) or false")]), 200, "Array"),
    ok(ep!(post, "/api/v1/break-glass/{id}/review", Guard::Action(Action::AuditRead), "Mark a break-glass grant reviewed (privacy officer)", oversight::review), 204, "Empty"),
    ok(query(ep!(get, "/api/v1/audit", Guard::Action(Action::AuditRead), "Forensic audit query (privacy officer)", oversight::audit), AUDIT_QUERY), 200, "Array"),
    ok(query(ep!(get, "/api/v1/alerts", Guard::Action(Action::AlertsManage), "Detection alerts, newest first (privacy officer, administrator)", alerts::list), &[("status", false, "open, acknowledged, resolved or false-positive"), ("limit", false, "at most this many (default 100)")]), 200, "Array"),
    ok(ep!(get, "/api/v1/alerts/{id}", Guard::Action(Action::AlertsManage), "One alert (privacy officer, administrator)", alerts::show), 200, "Object"),
    ok(body(ep!(post, "/api/v1/alerts/{id}/status", Guard::Action(Action::AlertsManage), "Acknowledge, resolve or mark an alert a false positive, with a note", alerts::set_status), "AlertStatus"), 200, "Object"),
    fhir_ep(ep!(get, "/fhir/metadata", Public, "FHIR CapabilityStatement", fhir::metadata), "/fhir/metadata"),
    fhir_read(ep!(get, "/fhir/Patient/{id}", Guard::Action(Action::PatientRead), "FHIR read Patient", fhir::read)),
    fhir_search(query(ep!(get, "/fhir/Patient", Guard::Action(Action::PatientSearch), "FHIR search Patient", fhir::search), FHIR_PATIENT_QUERY)),
    fhir_read(ep!(get, "/fhir/Coverage/{id}", Guard::Action(Action::CoverageRead), "FHIR read Coverage", fhir::read)),
    fhir_search(query(ep!(get, "/fhir/Coverage", Guard::Action(Action::CoverageRead), "FHIR search Coverage", fhir::search), FHIR_RECORD_QUERY)),
    fhir_read(ep!(get, "/fhir/MedicationRequest/{id}", Guard::Action(Action::PrescriptionRead), "FHIR read MedicationRequest", fhir::read)),
    fhir_search(query(ep!(get, "/fhir/MedicationRequest", Guard::Action(Action::PrescriptionRead), "FHIR search MedicationRequest", fhir::search), FHIR_RECORD_QUERY)),
    fhir_read(ep!(get, "/fhir/MedicationDispense/{id}", Guard::Action(Action::FillRead), "FHIR read MedicationDispense", fhir::read)),
    fhir_search(query(ep!(get, "/fhir/MedicationDispense", Guard::Action(Action::FillRead), "FHIR search MedicationDispense", fhir::search), FHIR_RECORD_QUERY)),
    fhir_read(ep!(get, "/fhir/AllergyIntolerance/{id}", Guard::Action(Action::AllergyRead), "FHIR read AllergyIntolerance", fhir::read)),
    fhir_search(query(ep!(get, "/fhir/AllergyIntolerance", Guard::Action(Action::AllergyRead), "FHIR search AllergyIntolerance", fhir::search), FHIR_RECORD_QUERY)),
];

const AUDIT_QUERY: &[(&str, bool, &str)] = &[
    ("user", false, "Actor id"),
    ("session", false, "Session id"),
    ("host", false, "Host or agent id"),
    ("ip", false, "Source address"),
    ("patient", false, "Patient id"),
    (
        "action",
        false,
        "Action kind (read, search, export, auth-failure, ...)",
    ),
    ("export", false, "Export id (its started entry and its end)"),
    ("from", false, "From (RFC 3339 or YYYY-MM-DD)"),
    ("to", false, "Until (exclusive)"),
    ("limit", false, "At most this many (default 1000)"),
];

/// The router: every endpoint of [`ENDPOINTS`], with the handler its entry
/// names. FHIR reads and searches of every type share one parameterised
/// route each (`/fhir/{resource_type}/{id}`, `/fhir/{resource_type}`).
pub fn router(state: AppState) -> Router {
    let mut routes: Vec<(&'static str, Vec<&'static str>, MethodRouter<AppState>)> = Vec::new();
    for e in ENDPOINTS {
        let at = match routes.iter().position(|(r, _, _)| *r == e.route) {
            Some(i) => i,
            None => {
                routes.push((e.route, Vec::new(), MethodRouter::new()));
                routes.len() - 1
            }
        };
        let (_, methods, method_router) = &mut routes[at];
        if methods.contains(&e.method) {
            continue; // another FHIR type on the shared route
        }
        methods.push(e.method);
        *method_router = (e.handler)(std::mem::take(method_router));
    }
    let mut router: Router<AppState> = Router::new();
    for (route, _, method_router) in routes {
        router = router.route(route, method_router);
    }
    router.with_state(state)
}

async fn openapi_json() -> axum::Json<Value> {
    axum::Json(openapi())
}

fn schema(name: &str) -> Value {
    match name {
        "Array" => json!({"type": "array", "items": {"type": "object"}}),
        "Object" => json!({"type": "object"}),
        "Empty" => json!({}),
        other => json!({"$ref": format!("#/components/schemas/{other}")}),
    }
}

fn string() -> Value {
    json!({"type": "string"})
}

fn object(required: &[&str], properties: &[(&str, Value)]) -> Value {
    let props: Map<String, Value> = properties
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut schema = json!({"type": "object", "properties": props});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// The OpenAPI 3.0 document, built from [`ENDPOINTS`].
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let mut op = Map::new();
        op.insert("summary".into(), json!(e.summary));
        op.insert(
            "operationId".into(),
            json!(format!(
                "{}{}",
                e.method,
                e.path.replace(['/', '{', '}', '.', '-'], "_")
            )),
        );
        op.insert(
            "tags".into(),
            json!([if e.fhir {
                "fhir"
            } else {
                e.path.split('/').nth(3).unwrap_or("api")
            }]),
        );
        let mut params: Vec<Value> = Vec::new();
        if e.path.contains("{id}") {
            params.push(json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"}}));
        }
        for (name, required, description) in e.query {
            params.push(json!({"name": name, "in": "query", "required": required, "description": description, "schema": string()}));
        }
        if !params.is_empty() {
            op.insert("parameters".into(), json!(params));
        }
        if let Some(b) = e.body {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema(b)}}}),
            );
        }
        let media = if e.fhir {
            "application/fhir+json"
        } else {
            "application/json"
        };
        let error = if e.fhir {
            schema("OperationOutcome")
        } else {
            schema("Error")
        };
        let mut responses = Map::new();
        let (status, body) = e.ok;
        responses.insert(
            status.to_string(),
            if body == "Empty" {
                json!({"description": "done"})
            } else {
                json!({"description": "success", "content": {media: {"schema": schema(body)}}})
            },
        );
        let mut codes = vec![400, 500];
        if e.guard != Guard::Public
            || e.path.starts_with("/api/v1/sessions")
            || e.path == "/api/v1/enrolment"
        {
            codes.extend([401, 403, 404, 409, 413, 422, 423, 429, 503]);
        }
        if e.path.contains("{id}") || e.path.starts_with("/fhir/") {
            codes.push(404);
        }
        codes.sort_unstable();
        codes.dedup();
        for c in codes {
            responses.insert(
                c.to_string(),
                json!({"description": "error", "content": {media: {"schema": error.clone()}}}),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        if e.guard != Guard::Public {
            op.insert("security".into(), json!([{"bearer": []}]));
        }
        let path = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        path[e.method] = Value::Object(op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "rxvault",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Encrypted pharmacy vault. Every request but login, health and metadata needs a bearer token: a session token (password + second factor) or a service API key. Responses contain only the field categories the caller's role may see; every PHI access is audited before the response is sent."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": object(&["error"], &[("error", object(&["code", "message"], &[("code", string()), ("message", string())]))]),
                "OperationOutcome": object(&["resourceType", "issue"], &[("resourceType", string()), ("issue", json!({"type": "array", "items": {"type": "object"}}))]),
                "FhirResource": {"type": "object", "required": ["resourceType"], "properties": {"resourceType": string(), "id": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"}}, "additionalProperties": true},
                "Id": object(&["id"], &[("id", string())]),
                "LoginRequest": object(&["username", "password"], &[("username", string()), ("password", string())]),
                "LoginStep": object(&["stage", "pending_token", "methods"], &[("stage", json!({"type": "string", "enum": ["second-factor", "enrol"]})), ("pending_token", string()), ("methods", json!({"type": "array", "items": string()}))]),
                "CodeRequest": object(&["pending_token", "code"], &[("pending_token", string()), ("code", string())]),
                "PendingRequest": object(&["pending_token"], &[("pending_token", string())]),
                "PasskeyRequest": object(&["pending_token", "credential"], &[("pending_token", string()), ("credential", json!({"type": "object"})), ("name", string())]),
                "SessionToken": object(&["token", "session_id", "expires_at"], &[("token", string()), ("session_id", string()), ("expires_at", json!({"type": "integer"})), ("recovery_codes", json!({"type": "array", "items": string()}))]),
                "TotpEnrolment": object(&["otpauth_uri", "secret"], &[("otpauth_uri", string()), ("secret", string())]),
                "StepUpRequest": object(&["code"], &[("code", string())]),
                "PasskeyStepUpRequest": object(&["credential"], &[("credential", json!({"type": "object"}))]),
                "RevokeRequest": object(&[], &[("session", string()), ("user", string()), ("host", string())]),
                "ExportRequest": object(&["recipients"], &[("recipients", json!({"type": "array", "items": string(), "minItems": 1}))]),
                "NewUser": object(&["username", "role"], &[("username", string()), ("role", json!({"type": "string", "enum": ["pharmacist", "technician", "shipping-clerk", "billing", "privacy-officer", "administrator"]}))]),
                "RedeemRequest": object(&["username", "code", "password"], &[("username", string()), ("code", string()), ("password", string())]),
                "UserChange": object(&[], &[("role", string()), ("disabled", json!({"type": "boolean"}))]),
                "BreakGlassRequest": object(&["reason"], &[("reason", string())]),
                "AlertStatus": object(&["status"], &[("status", json!({"type": "string", "enum": ["acknowledged", "resolved", "false-positive"]})), ("note", string())]),
            }
        }
    })
}
