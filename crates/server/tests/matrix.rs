//! The authorization matrix, generated from the route table and the
//! permission table: every endpoint × every role (and a service account, and
//! a person whose role awaits a second person's approval) ×
//! {no token, expired, revoked, second factor pending, valid}. It asserts
//! zero unauthorized successes, that what a role sees is exactly what its
//! categories allow, and that every PHI read leaves exactly one audit entry
//! with the right actor, patient and categories.

mod common;

use common::{Backend, Harness, username};
use reqwest::Method;
use rxvault_auth::AuthConfig;
use rxvault_auth::permissions::{self, Constraint};
use rxvault_auth::{Action, Role, Scope};
use rxvault_fhir::split;
use rxvault_model::{CategorySet, RecordKind};
use rxvault_server::routes::{ENDPOINTS, Endpoint, Guard};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Role(Role),
    Service,
    /// An enrolled person whose role awaits a second person's approval
    /// (issue 9, item 2): no permission at all.
    Unassigned,
}

impl Who {
    fn allowed(self, action: Action) -> Option<Constraint> {
        match self {
            Who::Role(r) => permissions::allowed(r, action),
            Who::Unassigned => None,
            Who::Service => {
                permissions::scopes_allow(&[Scope::PatientsRead, Scope::PrescriptionsRead], action)
            }
        }
    }

    fn categories(self, kind: RecordKind) -> CategorySet {
        match self {
            Who::Role(r) => permissions::categories(r, kind),
            Who::Unassigned => CategorySet::NONE,
            Who::Service => permissions::scopes_categories(
                &[Scope::PatientsRead, Scope::PrescriptionsRead],
                kind,
            ),
        }
    }

    fn name(self) -> String {
        match self {
            Who::Role(r) => username(r),
            Who::Unassigned => common::UNASSIGNED.into(),
            Who::Service => "pms".into(),
        }
    }
}

fn kind_of_path(path: &str) -> Option<RecordKind> {
    let seg: Vec<&str> = path.split('/').collect();
    let name = if path.starts_with("/fhir/") {
        seg.get(2)?
    } else {
        seg.get(3)?
    };
    Some(match *name {
        "patients" | "Patient" => RecordKind::Patient,
        "coverages" | "Coverage" => RecordKind::Coverage,
        "prescriptions" | "MedicationRequest" => RecordKind::Prescription,
        "fills" | "MedicationDispense" => RecordKind::Fill,
        "allergies" | "AllergyIntolerance" => RecordKind::Allergy,
        _ => return None,
    })
}

/// A request for `e` that a principal allowed to make it would succeed with.
async fn request(
    h: &Harness,
    e: &Endpoint,
    who: Who,
    n: usize,
    grant: &str,
) -> (Method, String, Option<Value>) {
    let kind = kind_of_path(e.path);
    let id = match (kind, e.path) {
        (_, p) if p.starts_with("/api/v1/users/") => "victim".to_string(),
        (_, p) if p.starts_with("/api/v1/access-requests/") => fresh_request(h),
        (_, p) if p.starts_with("/api/v1/break-glass/") => grant.to_string(),
        (_, p) if p.starts_with("/api/v1/alerts/") => fresh_alert(h),
        (Some(RecordKind::Fill), p) if !p.starts_with("/api/v1/patients") => h.fill_today.clone(),
        (Some(_), p) if p.starts_with("/api/v1/patients/") => h.ids[&RecordKind::Patient].clone(),
        (Some(k), _) => h.ids[&k].clone(),
        _ => String::new(),
    };
    let mut path = e.path.replace("{id}", &id);
    let patient = &h.ids[&RecordKind::Patient];
    match (e.method, e.path) {
        ("get", "/api/v1/patients") | ("get", "/fhir/Patient") => {
            path.push_str(&format!("?identifier={}", patient_mrn(h)));
        }
        ("get", "/fhir/MedicationDispense") => {
            path.push_str(&format!("?identifier={}", transaction_id(h)))
        }
        ("get", p) if p.starts_with("/fhir/") && p != "/fhir/metadata" && !p.ends_with("{id}") => {
            path.push_str(&format!("?patient=Patient/{patient}"))
        }
        _ => {}
    }
    let method = match e.method {
        "get" => Method::GET,
        "post" => Method::POST,
        "put" => Method::PUT,
        "patch" => Method::PATCH,
        _ => Method::DELETE,
    };
    let body = match (e.method, e.path) {
        ("post", "/api/v1/sessions/step-up") => {
            // A code for a new time step (the login used the current one).
            h.clock.advance(Duration::from_secs(30));
            let user = who.name();
            let code = h
                .secrets
                .get(&user)
                .map(|s| s.code_at(h.clock.now_unix()).to_string())
                .unwrap_or_default();
            Some(json!({"code": code}))
        }
        ("post", "/api/v1/sessions/revoke") => Some(json!({"host": "nowhere.example"})),
        ("post", "/api/v1/alerts/{id}/status") => {
            Some(json!({"status": "acknowledged", "note": "seen in the matrix"}))
        }
        ("post", "/api/v1/sessions/step-up/passkey") => Some(json!({"credential": {}})),
        ("post", "/api/v1/exports") => Some(
            json!({"recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]}),
        ),
        ("post", "/api/v1/users") => {
            Some(json!({"username": format!("new-{n}"), "role": "technician"}))
        }
        ("patch", _) => Some(json!({"disabled": false})),
        ("post", "/api/v1/break-glass") => {
            Some(json!({"reason": "patient unconscious at the counter; checking allergies"}))
        }
        ("post", p) if kind_of_path(p).is_some() => {
            Some(new_resource(kind_of_path(p).unwrap(), n, patient))
        }
        ("put", _) => {
            // The record as this principal sees it, sent back unchanged.
            let k = kind.unwrap();
            h.blocking(|| {
                let record = h
                    .vault
                    .unaudited()
                    .store()
                    .get(k, &h.vault.rid(k, &id))
                    .unwrap()
                    .unwrap();
                Some(Value::Object(
                    h.vault
                        .unaudited()
                        .open_record(&record, who.categories(k))
                        .unwrap(),
                ))
            })
        }
        _ => None,
    };
    (method, path, body)
}

/// A new pending access request, made by the local operator for a new
/// person: any administrator or privacy officer may decide it.
fn fresh_request(h: &Harness) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    h.blocking(|| {
        match h
            .auth
            .key_holder()
            .add_person(&format!("asks-{n}"), Role::Technician)
            .unwrap()
            .role
        {
            rxvault_auth::RoleChange::Pending(r) => r.id,
            rxvault_auth::RoleChange::Applied => panic!("a technician needs approval"),
        }
    })
}

/// A new alert, as a workstation agent's report raises one (the detector
/// over one audited `alert` entry).
fn fresh_alert(h: &Harness) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    h.blocking(|| {
        h.vault.ensure_data_key().unwrap();
        let mut detector = rxvault_detect::Detector::open(
            h.vault.detect_store().unwrap(),
            h.vault.secrets().clone(),
            h.clock.clone(),
            rxvault_detect::Rules::default(),
            jiff::tz::TimeZone::UTC,
            Vec::new(),
            None,
        )
        .unwrap();
        let entry = rxvault_audit::Entry::new(
            rxvault_audit::Actor::service(format!("agent-{n}")),
            rxvault_audit::Action::Alert {
                kind: "ransomware".into(),
                detail: "a process was suspended".into(),
            },
        );
        let alerts = detector
            .handle(&[rxvault_audit::LoggedEntry {
                index: detector.position() + n,
                time_ms: h.clock.now_unix() * 1000,
                entry,
            }])
            .unwrap();
        alerts[0].id.clone()
    })
}

trait NowUnix {
    fn now_unix(&self) -> i64;
}

impl NowUnix for rxvault_model::ManualClock {
    fn now_unix(&self) -> i64 {
        rxvault_model::Clock::now(self).unix_timestamp()
    }
}

fn patient_mrn(h: &Harness) -> String {
    let record = h.blocking(|| {
        h.vault
            .unaudited()
            .chart(&h.ids[&RecordKind::Patient], CategorySet::ALL)
            .unwrap()
            .unwrap()
    });
    record.patient["identifier"][0]["value"]
        .as_str()
        .unwrap()
        .to_string()
}

fn transaction_id(h: &Harness) -> String {
    h.blocking(|| {
        let record = h
            .vault
            .unaudited()
            .store()
            .get(
                RecordKind::Fill,
                &h.vault.rid(RecordKind::Fill, &h.fill_today),
            )
            .unwrap()
            .unwrap();
        h.vault
            .unaudited()
            .open_record(&record, CategorySet::ALL)
            .unwrap()["identifier"][0]["value"]
            .as_str()
            .unwrap()
            .to_string()
    })
}

fn new_resource(kind: RecordKind, n: usize, patient: &str) -> Value {
    let id = format!("new-{}-{n}", kind.table());
    let subject = json!({"reference": format!("Patient/{patient}")});
    let med = json!({"text": "lisinopril 10 MG Oral Tablet"});
    match kind {
        RecordKind::Patient => {
            json!({"resourceType": "Patient", "id": id, "name": [{"family": "Doe", "given": ["Jan"]}], "birthDate": "1960-01-01"})
        }
        RecordKind::Coverage => {
            json!({"resourceType": "Coverage", "id": id, "status": "active", "beneficiary": subject, "payor": [{"display": "Aetna"}]})
        }
        RecordKind::Prescription => {
            json!({"resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order", "medicationCodeableConcept": med, "subject": subject})
        }
        RecordKind::Fill => {
            json!({"resourceType": "MedicationDispense", "id": id, "status": "completed", "medicationCodeableConcept": med, "subject": subject})
        }
        RecordKind::Allergy => {
            json!({"resourceType": "AllergyIntolerance", "id": id, "patient": subject, "code": {"text": "Peanut"}})
        }
    }
}

async fn send(
    h: &Harness,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &Option<Value>,
) -> (u16, Value) {
    let mut r = h.client.request(method, h.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every FHIR resource in a response body.
fn resources(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) if m.contains_key("resourceType") && m["resourceType"] != "Bundle" => {
            out.push(v.clone())
        }
        Value::Object(m) => m.values().for_each(|x| resources(x, out)),
        Value::Array(a) => a.iter().for_each(|x| resources(x, out)),
        _ => {}
    }
}

async fn authorization_matrix_every_endpoint_role_and_token_state(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let mut whos: Vec<Who> = Role::ALL.into_iter().map(Who::Role).collect();
    whos.push(Who::Service);
    whos.push(Who::Unassigned);

    // Tokens that must never work: expired (idle), revoked, second factor pending.
    let mut expired = Vec::new();
    for role in Role::ALL {
        expired.push(h.login(&username(role)).await);
    }
    h.clock.advance(Duration::from_secs(31 * 60));
    let mut revoked = Vec::new();
    let mut pending = Vec::new();
    for role in Role::ALL {
        let t = h.login(&username(role)).await;
        h.blocking(|| {
            let principal = h
                .auth
                .authenticate(&Harness::token_of(&t), "127.0.0.1".parse().unwrap(), None)
                .unwrap();
            h.auth
                .key_holder()
                .revoke_session(principal.session_id().unwrap())
                .unwrap();
        });
        revoked.push(t);
        pending.push(h.password_step(&username(role)).await);
    }

    // A break-glass grant for the privacy officer to review.
    let billing = h.login(&username(Role::Billing)).await;
    let (status, grant) = send(
        &h,
        Method::POST,
        "/api/v1/break-glass",
        Some(&billing),
        &Some(json!({"reason": "walk-in patient, chart needed"})),
    )
    .await;
    assert_eq!(status, 201, "{grant}");
    let grant = grant["grant_id"].as_str().unwrap().to_string();

    let mut checked = 0;
    let mut successes = 0;
    for (n, e) in ENDPOINTS.iter().enumerate() {
        if e.guard == Guard::Public {
            continue;
        }
        for (i, who) in whos.iter().enumerate() {
            // Invalid tokens: always 401.
            let (method, path, body) = request(&h, e, *who, n * 10 + i, &grant).await;
            let mut bad: Vec<Option<String>> = vec![None];
            if let Who::Role(_) = who {
                bad.extend([
                    Some(expired[i].clone()),
                    Some(revoked[i].clone()),
                    Some(pending[i].clone()),
                ]);
            }
            for token in &bad {
                let (status, _) = send(&h, method.clone(), &path, token.as_deref(), &body).await;
                assert_eq!(
                    status,
                    401,
                    "{} {path} as {who:?} with token state {:?} must be 401",
                    e.method,
                    token.as_ref().map(|t| &t[..4])
                );
                checked += 1;
            }

            // A valid token (a fresh session for each call, so side effects
            // such as logout or break-glass never leak into the next one).
            let token = match who {
                Who::Role(r) => h.login(&username(*r)).await,
                Who::Unassigned => h.login(common::UNASSIGNED).await,
                Who::Service => h.service_key.clone(),
            };
            if *who == Who::Service && e.guard == Guard::Session {
                continue; // sessions endpoints are for people
            }
            let (method, path, body) = request(&h, e, *who, n * 10 + i, &grant).await;
            let before = h.audit_size();
            let (status, json) = send(&h, method.clone(), &path, Some(&token), &body).await;
            checked += 1;
            let permitted = match e.guard {
                Guard::Session => Some(Constraint::Unrestricted),
                Guard::Action(a) => who.allowed(a),
                Guard::Public => unreachable!(),
            };
            let constrained_out = permitted == Some(Constraint::FillsDatedToday)
                && (e.path == "/api/v1/patients/{id}/fills"
                    || e.path == "/fhir/MedicationDispense" && path.contains("patient="));
            // A passkey step-up needs passkeys: this harness configures no
            // WebAuthn relying party (404) and its people have TOTP; the
            // passkey flow is tested in auth_http.
            let needs_passkey = e.path.starts_with("/api/v1/sessions/step-up/passkey");
            match permitted {
                Some(_) if needs_passkey => {
                    assert!(
                        matches!(status, 400 | 404),
                        "{} {path} as {who:?}: {status} {json}",
                        e.method
                    );
                }
                Some(_) if !constrained_out => {
                    assert!(
                        (200..300).contains(&status),
                        "{} {path} as {who:?}: permitted, got {status}: {json}",
                        e.method
                    );
                    successes += 1;
                }
                _ => {
                    assert_eq!(
                        status, 403,
                        "{} {path} as {who:?}: not permitted, got {status}: {json}",
                        e.method
                    );
                    let after = h.audit_size();
                    assert_eq!(
                        after,
                        before + 1,
                        "{} {path} as {who:?}: a refusal is audited once",
                        e.method
                    );
                    let entry = &h.last_entries(1)[0].entry;
                    assert_eq!(entry.outcome, rxvault_audit::Outcome::Denied);
                    continue;
                }
            }

            // What came back is exactly what the role's categories hold of
            // the stored record, at every depth (split by content): nothing
            // of the categories it may not see.
            if e.method == "get" {
                let mut found = Vec::new();
                resources(&json, &mut found);
                for r in &found {
                    let kind =
                        RecordKind::from_fhir_type(r["resourceType"].as_str().unwrap()).unwrap();
                    let allowed = who.categories(kind);
                    let id = r["id"].as_str().expect("every view here holds the id");
                    let full = h.blocking(|| {
                        let stored = h
                            .vault
                            .unaudited()
                            .store()
                            .get(kind, &h.vault.rid(kind, id))
                            .unwrap()
                            .unwrap();
                        h.vault
                            .unaudited()
                            .open_record(&stored, CategorySet::ALL)
                            .unwrap()
                    });
                    assert_eq!(
                        r,
                        &Value::Object(split::view(kind, &full, allowed)),
                        "{path} as {who:?}: {kind} {id} is not its view"
                    );
                }
            }

            // A read of one record leaves exactly one audit entry naming the
            // actor, the patient and the categories decrypted.
            let single_read =
                e.method == "get" && e.path.ends_with("{id}") && kind_of_path(e.path).is_some();
            if single_read {
                let kind = kind_of_path(e.path).unwrap();
                let after = h.audit_size();
                assert_eq!(
                    after,
                    before + 1,
                    "{path} as {who:?}: exactly one audit entry"
                );
                let logged = &h.last_entries(1)[0].entry;
                let expected_actor = match who {
                    Who::Role(_) | Who::Unassigned => who.name(),
                    Who::Service => logged.actor.id.clone(),
                };
                assert_eq!(logged.actor.id, expected_actor);
                if let Who::Service = who {
                    assert!(logged.actor.id.starts_with("pms/"));
                }
                match &logged.action {
                    rxvault_audit::Action::Read {
                        kind: k,
                        categories,
                    } => {
                        assert_eq!(*k, Some(kind), "{path}");
                        assert_eq!(
                            *categories,
                            who.categories(kind),
                            "{path} as {who:?}: audited categories"
                        );
                    }
                    other => panic!("{path}: expected a read entry, got {other:?}"),
                }
                let patient = h
                    .vault
                    .rid(RecordKind::Patient, &h.ids[&RecordKind::Patient]);
                let fill_patient = h.blocking(|| {
                    h.vault
                        .unaudited()
                        .store()
                        .get(
                            RecordKind::Fill,
                            &h.vault.rid(RecordKind::Fill, &h.fill_today),
                        )
                        .unwrap()
                        .unwrap()
                        .patient
                        .unwrap()
                });
                let expected = if kind == RecordKind::Fill {
                    fill_patient
                } else {
                    patient
                };
                assert_eq!(logged.patients, vec![expected], "{path}: audited patient");
            }
        }
    }
    assert!(checked > 1000, "{checked} combinations checked");
    assert!(successes > 60, "{successes} permitted calls succeeded");
    h.finish().await;
}

async fn shipping_clerk_sees_only_todays_ship_to(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let token = h.login(&username(Role::ShippingClerk)).await;
    let (status, rows) = send(&h, Method::GET, "/api/v1/shipments", Some(&token), &None).await;
    assert_eq!(status, 200);
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "address_line1",
                "address_line2",
                "city",
                "country",
                "package_ref",
                "postal_code",
                "ship_to_name",
                "state",
                "transaction_id"
            ]
        );
    }
    let (status, _) = send(
        &h,
        Method::GET,
        "/api/v1/shipments?date=2026-11-27",
        Some(&token),
        &None,
    )
    .await;
    assert_eq!(status, 403, "another day's manifest");
    let (status, _) = send(
        &h,
        Method::GET,
        &format!("/api/v1/fills/{}", h.fill_other_day),
        Some(&token),
        &None,
    )
    .await;
    assert_eq!(status, 403, "a fill not dated today");
    let (status, fill) = send(
        &h,
        Method::GET,
        &format!("/api/v1/fills/{}", h.fill_today),
        Some(&token),
        &None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        fill.get("contained").is_some()
            && fill.get("medicationCodeableConcept").is_none()
            && fill.get("subject").is_none()
    );
    let (status, _) = send(
        &h,
        Method::GET,
        &format!("/api/v1/patients/{}", h.ids[&RecordKind::Patient]),
        Some(&token),
        &None,
    )
    .await;
    assert_eq!(status, 403);
    h.finish().await;
}

async fn writes_keep_what_the_writer_cannot_see(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let patient = &h.ids[&RecordKind::Patient];
    let token = h.login(&username(Role::Billing)).await;
    let (status, seen) = send(
        &h,
        Method::GET,
        &format!("/api/v1/patients/{patient}"),
        Some(&token),
        &None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(seen.get("name").is_some() && seen.get("text").is_none());
    let mut changed = seen.clone();
    changed["telecom"] = json!([{"system": "phone", "value": "555-010-9999"}]);
    let (status, _) = send(
        &h,
        Method::PUT,
        &format!("/api/v1/patients/{patient}"),
        Some(&token),
        &Some(changed),
    )
    .await;
    assert_eq!(status, 200);
    let full = h.blocking(|| {
        h.vault
            .unaudited()
            .chart(patient, CategorySet::ALL)
            .unwrap()
            .unwrap()
            .patient
    });
    assert_eq!(full["telecom"][0]["value"], "555-010-9999");
    assert!(
        full.get("extension").is_some(),
        "categories billing cannot see survive its update"
    );
    let mut sneaky = seen.clone();
    sneaky["text"] = json!({"status": "generated", "div": "<div>x</div>"});
    let (status, body) = send(
        &h,
        Method::PUT,
        &format!("/api/v1/patients/{patient}"),
        Some(&token),
        &Some(sneaky),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Regression (issue 9, item 4): the refused write is audited as such.
    let refused = h.last_entries(1).remove(0);
    assert_eq!(refused.entry.outcome, rxvault_audit::Outcome::Denied);
    assert!(
        matches!(
            refused.entry.action,
            rxvault_audit::Action::Write {
                kind: Some(RecordKind::Patient),
                operation: rxvault_audit::entry::WriteOp::Update,
                ..
            }
        ),
        "{:?}",
        refused.entry.action
    );
    let patient_rid = h.vault.rid(RecordKind::Patient, patient);
    assert_eq!(refused.entry.patients, vec![patient_rid]);
    h.finish().await;
}

async fn reads_under_break_glass_are_marked_in_the_audit_and_its_exports(backend: Backend) {
    use rxvault_audit::export::{fhir, jsonl, syslog};
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let token = h.login(&username(Role::Billing)).await;
    let path = format!("/fhir/AllergyIntolerance/{}", h.ids[&RecordKind::Allergy]);
    let (status, _) = send(&h, Method::GET, &path, Some(&token), &None).await;
    assert_eq!(status, 403, "billing does not read allergies");
    let denial = h.last_entries(1).remove(0);
    assert_eq!(denial.entry.outcome, rxvault_audit::Outcome::Denied);
    assert_eq!(denial.entry.break_glass, None);
    // A typed refusal naming the permission (issue 8, item 2: was free text).
    assert!(
        matches!(&denial.entry.action, rxvault_audit::Action::AccessDenied { action } if action == "allergy.read"),
        "{:?}",
        denial.entry.action
    );

    // A reason too short is refused, and audited as refused (issue 8,
    // item 2: it was recorded as a successful break-glass).
    let (status, _) = send(
        &h,
        Method::POST,
        "/api/v1/break-glass",
        Some(&token),
        &Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    let refused = h.last_entries(1).remove(0);
    assert!(matches!(
        refused.entry.action,
        rxvault_audit::Action::BreakGlass { .. }
    ));
    assert_eq!(refused.entry.outcome, rxvault_audit::Outcome::Denied);

    let (status, grant) = send(
        &h,
        Method::POST,
        "/api/v1/break-glass",
        Some(&token),
        &Some(json!({"reason": "anaphylaxis at the counter, allergy list needed"})),
    )
    .await;
    assert_eq!(status, 201, "{grant}");
    let grant = grant["grant_id"].as_str().unwrap().to_string();
    let (status, allergy) = send(&h, Method::GET, &path, Some(&token), &None).await;
    assert_eq!(status, 200, "{allergy}");

    let read = h.last_entries(1).remove(0);
    assert!(
        matches!(read.entry.action, rxvault_audit::Action::Read { .. }),
        "{read:?}"
    );
    assert_eq!(read.entry.break_glass.as_deref(), Some(grant.as_str()));
    // The mark is in the sealed body, and every export carries it.
    let event = fhir::audit_event(
        &read,
        &fhir::FhirContext {
            vault_id: "v".into(),
        },
    );
    assert_eq!(event["purposeOfEvent"][0]["coding"][0]["code"], "ETREAT");
    assert!(
        event["purposeOfEvent"][0]["text"]
            .as_str()
            .unwrap()
            .contains(&grant)
    );
    assert_eq!(jsonl::to_json(&read)["break_glass"], grant.as_str());
    assert_eq!(syslog::severity(&read), 4, "a warning for the SIEM");
    assert_eq!(jsonl::to_json(&denial)["break_glass"], Value::Null);
    assert_eq!(
        fhir::audit_event(
            &denial,
            &fhir::FhirContext {
                vault_id: "v".into()
            }
        )
        .get("purposeOfEvent"),
        None
    );
    h.finish().await;
}

both_backends!(
    authorization_matrix_every_endpoint_role_and_token_state,
    shipping_clerk_sees_only_todays_ship_to,
    writes_keep_what_the_writer_cannot_see,
    reads_under_break_glass_are_marked_in_the_audit_and_its_exports,
);
