//! Issue 8: every search names exactly the patients it returned. Each FHIR
//! and JSON search form (hits and no hits, `given` narrowing a family
//! search, identifier searches of every kind, patient-scoped lists, the
//! day's shipments) is run over HTTPS by several roles; the patients of the
//! records returned are compared with the patients of the one audit entry
//! the request appended, read back through the audit reader, and the
//! entry's kind and categories with the role's view.

mod common;

use common::{Backend, Harness, username};
use rxvault_audit::{Action, LoggedEntry, Outcome};
use rxvault_auth::permissions;
use rxvault_auth::{AuthConfig, Role};
use rxvault_fhir::map;
use rxvault_model::{CategorySet, RecordKind, Rid};
use rxvault_vault::access::{Requester, View};
use rxvault_vault::query::Find;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// One search form.
struct Form {
    path: String,
    query: Vec<(&'static str, String)>,
    /// The kind of record it returns (`None`: a chart, several kinds).
    kind: Option<RecordKind>,
    /// For patient-scoped lists: the patient, named by the entry when it
    /// exists even if the list is empty ("no known allergies" is about them).
    scope: Option<String>,
    /// Whether a pharmacist gets something back (so that no-hit and hit
    /// forms are both really exercised).
    hits: bool,
}

fn form(path: &str, query: &[(&'static str, &str)], kind: RecordKind, hits: bool) -> Form {
    Form {
        path: path.to_string(),
        query: query.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        kind: Some(kind),
        scope: None,
        hits,
    }
}

fn scoped(mut f: Form, patient: &str) -> Form {
    f.scope = Some(patient.to_string());
    f
}

/// Every FHIR resource in a response (Bundle entries, arrays, a chart).
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

/// The patient (record key) a returned resource belongs to.
fn patient_of(h: &Harness, r: &Value) -> Rid {
    let kind = RecordKind::from_fhir_type(r["resourceType"].as_str().unwrap()).unwrap();
    let rid = h.vault.rid(kind, r["id"].as_str().unwrap());
    let stored = h.blocking(|| {
        h.vault
            .unaudited()
            .store()
            .get(kind, &rid)
            .unwrap()
            .unwrap()
    });
    stored.patient.unwrap_or(rid)
}

/// `url?k=v&...`, the values percent-encoded.
fn with_query(url: &str, query: &[(&str, String)]) -> String {
    let encode = |v: &str| -> String {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if pairs.is_empty() {
        url.to_string()
    } else {
        format!("{url}?{}", pairs.join("&"))
    }
}

fn entry_patients(e: &LoggedEntry) -> BTreeSet<Rid> {
    e.entry.patients.iter().copied().collect()
}

async fn every_search_form_audits_exactly_the_patients_it_returned(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let all = CategorySet::ALL;
    let pid = h.ids[&RecordKind::Patient].clone();
    let patient = map::patient_view(
        &h.blocking(|| h.vault.unaudited().chart(&pid, all))
            .unwrap()
            .unwrap()
            .patient,
    )
    .unwrap();
    let name = &patient.names[0];
    let family = name.family.clone().unwrap();
    let given = name.given[0].clone();
    let birth = patient.birth_date.clone().unwrap();
    let phone = patient.phones().next().unwrap().to_string();
    let mrn = patient.identifiers[0].clone();
    let open = |kind: RecordKind, id: &str| {
        h.blocking(|| {
            let r = h
                .vault
                .unaudited()
                .store()
                .get(kind, &h.vault.rid(kind, id))
                .unwrap()
                .unwrap();
            h.vault.unaudited().open_record(&r, all).unwrap()
        })
    };
    let member = map::coverage_view(&open(RecordKind::Coverage, &h.ids[&RecordKind::Coverage]))
        .unwrap()
        .member_id
        .unwrap();
    let rx = map::prescription_view(&open(
        RecordKind::Prescription,
        &h.ids[&RecordKind::Prescription],
    ))
    .unwrap()
    .rx_number;
    let tx_today = map::fill_view(&open(RecordKind::Fill, &h.fill_today))
        .unwrap()
        .transaction_id;
    let tx_other = map::fill_view(&open(RecordKind::Fill, &h.fill_other_day))
        .unwrap()
        .transaction_id;

    // A twin: same family name and birth date, another given name, no
    // allergies. A family search finds both; `given` narrows it to one.
    let twin_given = "Zebulon";
    let twin = json!({"resourceType": "Patient", "id": "twin-1",
                      "name": [{"family": family, "given": [twin_given]}], "birthDate": birth});
    h.blocking(|| {
        h.vault.create_record(
            &Requester::local(),
            &View::ALL,
            RecordKind::Patient,
            twin.as_object().unwrap().clone(),
        )
    })
    .unwrap();

    use RecordKind::{Allergy, Coverage, Fill, Patient, Prescription};
    let fam = family.as_str();
    let mrn_system = format!("{}|{}", mrn.system.clone().unwrap_or_default(), mrn.value);
    let forms = vec![
        // FHIR Patient.
        form(
            "/fhir/Patient",
            &[("family", fam), ("birthdate", &birth)],
            Patient,
            true,
        ),
        form(
            "/fhir/Patient",
            &[("family", fam), ("birthdate", &birth), ("given", &given)],
            Patient,
            true,
        ),
        form(
            "/fhir/Patient",
            &[
                ("family", fam),
                ("birthdate", &birth),
                ("given", twin_given),
            ],
            Patient,
            true,
        ),
        form(
            "/fhir/Patient",
            &[
                ("family", fam),
                ("birthdate", &birth),
                ("given", "Nobodyelse"),
            ],
            Patient,
            false,
        ),
        form(
            "/fhir/Patient",
            &[("family", "Nonesuch"), ("birthdate", "1901-02-03")],
            Patient,
            false,
        ),
        form("/fhir/Patient", &[("phone", &phone)], Patient, true),
        form(
            "/fhir/Patient",
            &[("phone", "1-000-000-0001")],
            Patient,
            false,
        ),
        form(
            "/fhir/Patient",
            &[("identifier", &mrn.value)],
            Patient,
            true,
        ),
        form(
            "/fhir/Patient",
            &[("identifier", &mrn_system)],
            Patient,
            true,
        ),
        form(
            "/fhir/Patient",
            &[("identifier", "NO-SUCH-MRN-0")],
            Patient,
            false,
        ),
        form("/fhir/Patient", &[("_id", &pid)], Patient, true),
        form(
            "/fhir/Patient",
            &[("_id", "no-such-patient")],
            Patient,
            false,
        ),
        // FHIR records by identifier, by patient, by id.
        form("/fhir/Coverage", &[("identifier", &member)], Coverage, true),
        form(
            "/fhir/Coverage",
            &[("identifier", "NO-SUCH-MEMBER")],
            Coverage,
            false,
        ),
        scoped(
            form(
                "/fhir/Coverage",
                &[("patient", &format!("Patient/{pid}"))],
                Coverage,
                true,
            ),
            &pid,
        ),
        scoped(
            form(
                "/fhir/Coverage",
                &[("patient", "no-such-patient")],
                Coverage,
                false,
            ),
            "no-such-patient",
        ),
        form(
            "/fhir/Coverage",
            &[("_id", &h.ids[&Coverage])],
            Coverage,
            true,
        ),
        form(
            "/fhir/MedicationRequest",
            &[("identifier", &rx)],
            Prescription,
            true,
        ),
        form(
            "/fhir/MedicationRequest",
            &[("identifier", "NO-SUCH-RX")],
            Prescription,
            false,
        ),
        scoped(
            form(
                "/fhir/MedicationRequest",
                &[("patient", &pid)],
                Prescription,
                true,
            ),
            &pid,
        ),
        form(
            "/fhir/MedicationRequest",
            &[("_id", &h.ids[&Prescription])],
            Prescription,
            true,
        ),
        form(
            "/fhir/MedicationDispense",
            &[("identifier", &tx_today)],
            Fill,
            true,
        ),
        form(
            "/fhir/MedicationDispense",
            &[("identifier", &tx_other)],
            Fill,
            true,
        ),
        form(
            "/fhir/MedicationDispense",
            &[("identifier", "NO-SUCH-TX")],
            Fill,
            false,
        ),
        scoped(
            form("/fhir/MedicationDispense", &[("patient", &pid)], Fill, true),
            &pid,
        ),
        form(
            "/fhir/MedicationDispense",
            &[("_id", &h.fill_other_day)],
            Fill,
            true,
        ),
        scoped(
            form(
                "/fhir/AllergyIntolerance",
                &[("patient", &pid)],
                Allergy,
                true,
            ),
            &pid,
        ),
        scoped(
            form(
                "/fhir/AllergyIntolerance",
                &[("patient", "twin-1")],
                Allergy,
                false,
            ),
            "twin-1",
        ),
        form(
            "/fhir/AllergyIntolerance",
            &[("_id", &h.ids[&Allergy])],
            Allergy,
            true,
        ),
        form(
            "/fhir/AllergyIntolerance",
            &[("_id", "no-such-allergy")],
            Allergy,
            false,
        ),
        // The JSON API.
        form(
            "/api/v1/patients",
            &[("family", fam), ("birth_date", &birth)],
            Patient,
            true,
        ),
        form(
            "/api/v1/patients",
            &[("family", "Nonesuch"), ("birth_date", "1901-02-03")],
            Patient,
            false,
        ),
        form("/api/v1/patients", &[("phone", &phone)], Patient, true),
        form(
            "/api/v1/patients",
            &[("phone", "1-000-000-0001")],
            Patient,
            false,
        ),
        form("/api/v1/patients", &[("member_id", &member)], Patient, true),
        form(
            "/api/v1/patients",
            &[("member_id", "NO-SUCH-MEMBER")],
            Patient,
            false,
        ),
        form("/api/v1/patients", &[("rx_number", &rx)], Patient, true),
        form(
            "/api/v1/patients",
            &[("rx_number", "NO-SUCH-RX")],
            Patient,
            false,
        ),
        form(
            "/api/v1/patients",
            &[("transaction_id", &tx_other)],
            Patient,
            true,
        ),
        form(
            "/api/v1/patients",
            &[("transaction_id", "NO-SUCH-TX")],
            Patient,
            false,
        ),
        form(
            "/api/v1/patients",
            &[("identifier", &mrn.value)],
            Patient,
            true,
        ),
        form(
            "/api/v1/patients",
            &[("identifier", "NO-SUCH-MRN-0")],
            Patient,
            false,
        ),
        scoped(
            form(
                &format!("/api/v1/patients/{pid}/coverages"),
                &[],
                Coverage,
                true,
            ),
            &pid,
        ),
        scoped(
            form(
                &format!("/api/v1/patients/{pid}/prescriptions"),
                &[],
                Prescription,
                true,
            ),
            &pid,
        ),
        scoped(
            form(&format!("/api/v1/patients/{pid}/fills"), &[], Fill, true),
            &pid,
        ),
        scoped(
            form(
                &format!("/api/v1/patients/{pid}/allergies"),
                &[],
                Allergy,
                true,
            ),
            &pid,
        ),
        scoped(
            form("/api/v1/patients/twin-1/allergies", &[], Allergy, false),
            "twin-1",
        ),
        scoped(
            form(
                "/api/v1/patients/no-such-patient/allergies",
                &[],
                Allergy,
                false,
            ),
            "no-such-patient",
        ),
        Form {
            kind: None,
            ..scoped(
                form(&format!("/api/v1/patients/{pid}/chart"), &[], Patient, true),
                &pid,
            )
        },
    ];

    let roles = [
        Role::Pharmacist,
        Role::Technician,
        Role::Billing,
        Role::ShippingClerk,
    ];
    let mut checked = 0;
    let mut empty = 0;
    for role in roles {
        let token = h.login(&username(role)).await;
        for f in &forms {
            let before = h.audit_size();
            let r = h
                .client
                .get(with_query(&h.url(&f.path), &f.query))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let what = format!("{} {:?} as {role:?}", f.path, f.query);
            if status == 403 || status == 404 && f.path.ends_with("/chart") {
                continue; // refusals and absences are the matrix's business
            }
            assert_eq!(status, 200, "{what}: {body}");
            let mut found = Vec::new();
            resources(&body, &mut found);
            let returned: BTreeSet<Rid> = found.iter().map(|r| patient_of(&h, r)).collect();
            if role == Role::Pharmacist {
                assert_eq!(!found.is_empty(), f.hits, "{what}: {body}");
            }
            empty += usize::from(found.is_empty());

            let appended = h.audit_size() - before;
            assert_eq!(appended, 1, "{what}: one audit entry");
            let e = h.last_entries(1).remove(0);
            let mut expected = returned.clone();
            if let Some(p) = &f.scope {
                let rid = h.vault.rid(RecordKind::Patient, p);
                if h.blocking(|| h.vault.unaudited().store().get(RecordKind::Patient, &rid))
                    .unwrap()
                    .is_some()
                {
                    expected.insert(rid);
                }
            }
            assert_eq!(entry_patients(&e), expected, "{what}: audited patients");
            assert_eq!(e.entry.actor.id, username(role), "{what}");

            let view = |kind| permissions::categories(role, kind);
            match (&e.entry.action, f.kind) {
                (
                    Action::Search {
                        kind,
                        categories,
                        results,
                        ..
                    },
                    Some(k),
                ) => {
                    // A patient search by a record identifier returns patients.
                    let k = if f.path == "/api/v1/patients" {
                        Patient
                    } else {
                        k
                    };
                    assert_eq!(*kind, Some(k), "{what}");
                    assert_eq!(*categories, Some(view(k)), "{what}: audited categories");
                    assert_eq!(*results as usize, found.len(), "{what}");
                    if k != Patient {
                        let rids: BTreeSet<Rid> = found
                            .iter()
                            .map(|r| h.vault.rid(k, r["id"].as_str().unwrap()))
                            .collect();
                        let audited: BTreeSet<Rid> = e.entry.resources.iter().copied().collect();
                        assert_eq!(audited, rids, "{what}: audited records");
                    }
                    assert_eq!(e.entry.outcome, Outcome::Success, "{what}");
                }
                (Action::Read { kind, categories }, Some(k)) => {
                    assert!(
                        f.query.iter().any(|(p, _)| *p == "_id") || f.scope.is_some(),
                        "{what}: a read entry for a search form"
                    );
                    assert_eq!(*kind, Some(k), "{what}");
                    assert_eq!(*categories, view(k), "{what}: audited categories");
                }
                (
                    Action::Read {
                        kind: None,
                        categories,
                    },
                    None,
                ) => {
                    assert!(!categories.is_empty(), "{what}");
                }
                (other, _) => panic!("{what}: unexpected entry {other:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} searches checked");
    assert!(empty > 20, "{empty} searches returned nothing");

    // The day's shipments: the patients shipped to, from the rows'
    // transaction IDs.
    for (role, dates) in [
        (Role::ShippingClerk, vec![common::TODAY.to_string()]),
        (
            Role::Pharmacist,
            vec![common::TODAY.to_string(), "2001-01-01".to_string()],
        ),
    ] {
        let token = h.login(&username(role)).await;
        for date in dates {
            let before = h.audit_size();
            let r = h
                .client
                .get(with_query(
                    &h.url("/api/v1/shipments"),
                    &[("date", date.clone())],
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{role:?} {date}");
            let rows: Vec<Value> = r.json().await.unwrap();
            let mut returned = BTreeSet::new();
            for row in &rows {
                let tx = row["transaction_id"].as_str().unwrap().to_string();
                returned.extend(
                    h.blocking(|| h.vault.unaudited().find_rids(&Find::TransactionId(tx)))
                        .unwrap(),
                );
            }
            assert_eq!(rows.is_empty(), date != common::TODAY.to_string());
            assert_eq!(h.audit_size(), before + 1);
            let e = h.last_entries(1).remove(0);
            assert_eq!(
                entry_patients(&e),
                returned,
                "{role:?} {date}: audited patients"
            );
            assert!(matches!(
                e.entry.action,
                Action::Read {
                    kind: Some(Fill),
                    ..
                }
            ));
        }
    }
    h.finish().await;
}

both_backends!(every_search_form_audits_exactly_the_patients_it_returned);
