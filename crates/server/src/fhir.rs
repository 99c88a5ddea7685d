//! FHIR R4 REST under `/fhir`: `metadata`, and read and search for
//! `Patient`, `Coverage`, `MedicationRequest`, `MedicationDispense` and
//! `AllergyIntolerance`. Responses are `application/fhir+json`; errors are
//! `OperationOutcome`s. Reads and searches go through the same permission
//! table, masking and audit as the JSON API: every search form (`_id`
//! is a read) appends one entry naming exactly the patients whose records
//! it returns, also when it returns none.

use crate::api::actions;
use crate::error::ApiError;
use crate::fhir_format::{FHIR_JSON, capability_statement, searchset};
use crate::state::{AppState, Caller, Credentials, blocking};
use axum::Json;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rxvault_auth::{Action, Constraint};
use rxvault_fhir::Resource;
use rxvault_fhir::map::reference_id;
use rxvault_model::{IndexKind, RecordKind, Rid, normalize};
use rxvault_vault::Vault;
use rxvault_vault::query::Find;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

fn fhir_json(value: Value) -> Response {
    let mut r = Json(value).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

fn kind_of(resource_type: &str) -> Result<RecordKind, ApiError> {
    RecordKind::from_fhir_type(resource_type).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not-supported",
            format!("{resource_type} is not served here"),
        )
        .fhir()
    })
}

/// `GET /fhir/metadata`: the CapabilityStatement (no authentication).
pub async fn metadata(State(state): State<AppState>) -> Response {
    let date = state.vault.today().to_string();
    // Resource types and search parameters as the route table has them.
    let types: Vec<(&str, Vec<(&str, &str)>)> = crate::routes::ENDPOINTS
        .iter()
        .filter(|e| e.fhir && e.path != "/fhir/metadata" && !e.path.ends_with("{id}"))
        .map(|e| {
            let ty = e.path.trim_start_matches("/fhir/");
            (
                ty,
                e.query.iter().map(|(name, _, doc)| (*name, *doc)).collect(),
            )
        })
        .collect();
    fhir_json(capability_statement(
        &format!("{}/fhir", state.base_url),
        env!("CARGO_PKG_VERSION"),
        &date,
        &types,
    ))
}

/// `GET /fhir/{type}/{id}`.
pub async fn read(
    State(state): State<AppState>,
    credentials: Credentials,
    Path((resource_type, id)): Path<(String, String)>,
) -> Response {
    let result = async {
        let kind = match kind_of(&resource_type) {
            Ok(kind) => kind,
            // Authenticated first, as every other refusal.
            Err(e) => {
                let auth = state.auth.clone();
                blocking(move || credentials.authenticate(&auth)).await?;
                return Err(e);
            }
        };
        crate::api::read_record_as(
            state,
            credentials,
            kind,
            id,
            Vault::read_record_json_audited,
        )
        .await?
        .ok_or_else(ApiError::not_found)
    };
    match result.await {
        Ok(r) => ([(header::CONTENT_TYPE, FHIR_JSON)], r.into_bytes()).into_response(),
        Err(e) => e.fhir().into_response(),
    }
}

/// `GET /fhir/{type}?...`: search.
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Path(resource_type): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let base = format!("{}/fhir", state.base_url);
    let self_link = format!("{base}/{resource_type}?{}", raw.unwrap_or_default());
    match search_inner(state, caller, &resource_type, params).await {
        Ok(found) => fhir_json(searchset(
            &base,
            &self_link,
            found.into_iter().map(Value::Object).collect(),
        )),
        Err(e) => e.fhir().into_response(),
    }
}

fn only(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match params
        .keys()
        .find(|k| !allowed.contains(&k.as_str()) && !k.starts_with('_') || k.as_str() == "_has")
    {
        Some(k) => Err(ApiError::bad_request(format!(
            "unsupported search parameter {k:?}"
        ))),
        None => Ok(()),
    }
}

/// A token search value (`system|value` or `value`): the value.
fn token_value(v: &str) -> &str {
    v.rsplit_once('|').map_or(v, |(_, value)| value)
}

async fn search_inner(
    state: AppState,
    caller: Caller,
    resource_type: &str,
    params: HashMap<String, String>,
) -> Result<Vec<Resource>, ApiError> {
    let kind = kind_of(resource_type)?;
    match kind {
        RecordKind::Patient => {
            only(
                &params,
                &["_id", "family", "given", "birthdate", "phone", "identifier"],
            )?;
            if let Some(id) = params.get("_id") {
                return Ok(crate::api::read_record(state, caller, kind, id.clone())
                    .await?
                    .into_iter()
                    .collect());
            }
            caller.authorize(&state, Action::PatientSearch).await?;
            let find = match (
                params.get("family"),
                params.get("birthdate"),
                params.get("phone"),
                params.get("identifier"),
            ) {
                (Some(f), Some(b), None, None) => Find::FamilyBirthDate {
                    family: f.clone(),
                    birth_date: b.trim_start_matches("eq").to_string(),
                },
                (None, None, Some(p), None) => Find::Phone(token_value(p).to_string()),
                (None, None, None, Some(i)) => Find::PatientIdentifier(token_value(i).to_string()),
                _ => {
                    return Err(ApiError::bad_request(
                        "search Patient by family + birthdate (optionally given), phone, identifier or _id",
                    ));
                }
            };
            let given = params.get("given").and_then(|g| normalize::name_key(g));
            blocking(move || {
                // `given` narrows the matches before the search is audited,
                // so the entry names exactly the patients returned.
                let found = state.vault.search_patients_where(
                    &caller.requester(),
                    &caller.view(),
                    &find,
                    |p| given.as_deref().is_none_or(|g| has_given(p, g)),
                )?;
                Ok(found.into_iter().map(|(_, p)| p).collect())
            })
            .await
        }
        _ => {
            only(&params, &["patient", "identifier", "_id"])?;
            if let Some(id) = params.get("_id") {
                return Ok(crate::api::read_record(state, caller, kind, id.clone())
                    .await?
                    .into_iter()
                    .collect());
            }
            if let Some(p) = params.get("patient") {
                let patient = reference_id(p, "Patient").unwrap_or_else(|| p.clone());
                return crate::api::patient_records(state, caller, kind, patient).await;
            }
            let by_identifier: fn(String) -> Find = match kind {
                RecordKind::Coverage => Find::MemberId,
                RecordKind::Prescription => Find::RxNumber,
                RecordKind::Fill => Find::TransactionId,
                _ => return Err(ApiError::bad_request("search by patient")),
            };
            let Some(value) = params.get("identifier") else {
                return Err(ApiError::bad_request("search by patient or identifier"));
            };
            let find = by_identifier(token_value(value).to_string());
            let search_action = match kind {
                RecordKind::Prescription => Action::PrescriptionSearch,
                RecordKind::Fill => Action::FillSearch,
                _ => actions(kind).0,
            };
            let access = caller.authorize(&state, search_action).await?;
            blocking(move || {
                let vault = &state.vault;
                // Under "fills dated today", hits of other days are left out
                // by record key, before anything is decrypted or audited.
                let today: Option<HashSet<Rid>> =
                    if access.constraint == Constraint::FillsDatedToday {
                        let day = vault.today().to_string();
                        let t = vault
                            .token(IndexKind::FillDate, &day)
                            .expect("a date normalises");
                        Some(
                            vault
                                .lookup(IndexKind::FillDate, &t)?
                                .into_iter()
                                .map(|h| h.rid)
                                .collect(),
                        )
                    } else {
                        None
                    };
                let found = vault.search_records(
                    &caller.requester(),
                    &caller.view(),
                    kind,
                    &find,
                    |rid| today.as_ref().is_none_or(|t| t.contains(rid)),
                )?;
                Ok(found.into_iter().map(|(_, r)| r).collect())
            })
            .await
        }
    }
}

/// Whether the patient (as the caller sees it) has a given name whose
/// normalised form is `given`.
fn has_given(patient: &Resource, given: &str) -> bool {
    rxvault_fhir::map::patient_view(patient).is_ok_and(|v| {
        v.names.iter().any(|n| {
            n.given
                .iter()
                .any(|x| normalize::name_key(x).as_deref() == Some(given))
        })
    })
}
