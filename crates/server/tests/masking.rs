//! Masking by content (issue 9, item 1): what a shipping view shows of a
//! fill stored in a standard FHIR shape, over HTTPS, for the shipping clerk
//! role and for an API key with the `shipping.read` scope.
//!
//! The probe's shape: a `MedicationDispense` with a contained `Medication`
//! (which `medicationReference` names) and a contained `Location` with an
//! address and a phone number (which `destination` names), carrier and
//! tracking extensions, and `receiver` naming the patient. A shipping view
//! must show the ship-to address and the carrier and tracking number, and
//! neither the medication, nor the patient's id, nor the phone number.

mod common;

use common::{Backend, Harness, username};
use reqwest::Method;
use rxvault_auth::{AuthConfig, Role, Scope};
use rxvault_fhir::conventions as cv;
use rxvault_model::{CategorySet, FieldCategory, RecordKind};
use rxvault_vault::access::{Requester, View};
use serde_json::{Value, json};

const FILL_ID: &str = "probe-fill-1";
const TRANSACTION_ID: &str = "T-PROBE-0001";
const MEDICATION: &str = "Amlodipine 5 MG Oral Tablet";
const RXNORM_CODE: &str = "197361";
const PHONE: &str = "555-0142-7788";
const STREET: &str = "12 Probe Street";
const TRACKING: &str = "1Z999AA10123456784";

/// The probe's fill, dated today, for `patient`.
fn probe_fill(patient: &str) -> Value {
    json!({
        "resourceType": "MedicationDispense",
        "id": FILL_ID,
        "contained": [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {
                    "coding": [{"system": cv::RXNORM_SYSTEM, "code": RXNORM_CODE, "display": MEDICATION}],
                    "text": MEDICATION
                }
            },
            {
                "resourceType": "Location",
                "id": "dest",
                "name": "Jordan Probe",
                "address": {
                    "line": [STREET],
                    "city": "Springfield",
                    "state": "IL",
                    "postalCode": "62701",
                    "country": "US"
                },
                "telecom": [{"system": "phone", "value": PHONE, "use": "home"}]
            }
        ],
        "extension": [
            {"url": cv::CARRIER_EXTENSION, "valueString": "UPS"},
            {"url": cv::TRACKING_EXTENSION, "valueString": TRACKING}
        ],
        "identifier": [{"system": cv::TRANSACTION_ID_SYSTEM, "value": TRANSACTION_ID}],
        "status": "completed",
        "medicationReference": {"reference": "#med"},
        "subject": {"reference": format!("Patient/{patient}")},
        "receiver": [{"reference": format!("Patient/{patient}")}],
        "destination": {"reference": "#dest"},
        "quantity": {"value": 30},
        "whenPrepared": "2026-11-28"
    })
}

async fn get(h: &Harness, path: &str, token: &str) -> (u16, Value) {
    let resp = h
        .client
        .request(Method::GET, h.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts that `fill` (a shipping view of the probe's fill) shows the
/// label and nothing of the medication, the patient's id or the phone.
fn assert_shipping_view(fill: &Value, patient: &str, what: &str) {
    let text = fill.to_string();
    let ship_to = fill["contained"]
        .as_array()
        .and_then(|c| c.iter().find(|r| r["resourceType"] == "Location"))
        .unwrap_or_else(|| panic!("{what}: no ship-to Location in {text}"));
    assert_eq!(ship_to["address"]["line"][0], STREET, "{what}: the address");
    assert_eq!(ship_to["name"], "Jordan Probe", "{what}: the name");
    assert_eq!(fill["destination"]["reference"], "#dest", "{what}");
    assert!(
        text.contains(TRACKING) && text.contains("UPS"),
        "{what}: {text}"
    );
    assert!(text.contains(TRANSACTION_ID), "{what}: the transaction ID");
    assert!(
        !text.contains(MEDICATION) && !text.contains(RXNORM_CODE) && !text.contains("\"#med\""),
        "{what}: the medication leaked: {text}"
    );
    assert!(
        fill["contained"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["resourceType"] != "Medication"),
        "{what}: {text}"
    );
    assert!(
        !text.contains(patient),
        "{what}: the patient's id leaked: {text}"
    );
    assert!(
        fill.get("receiver").is_none() && fill.get("subject").is_none(),
        "{what}: {text}"
    );
    assert!(!text.contains(PHONE), "{what}: the phone leaked: {text}");
    assert!(ship_to.get("telecom").is_none(), "{what}: {text}");
}

async fn issue_9_item_1_a_shipping_view_shows_the_label_only(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let patient = h.ids[&RecordKind::Patient].clone();
    let shipping_key = h.blocking(|| {
        h.vault
            .create_record(
                &Requester::local(),
                &View::ALL,
                RecordKind::Fill,
                probe_fill(&patient).as_object().unwrap().clone(),
            )
            .unwrap();
        let holder = h.auth.key_holder();
        holder.create_service_account("shipper").unwrap();
        let issued = holder
            .issue_api_key("shipper", &[Scope::ShippingRead], &[], None)
            .unwrap();
        issued.key.expose().to_string()
    });
    // A pharmacist sees it all: the probe is stored whole.
    let pharmacist = h.login(&username(Role::Pharmacist)).await;
    let (status, full) = get(
        &h,
        &format!("/fhir/MedicationDispense/{FILL_ID}"),
        &pharmacist,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(full, probe_fill(&patient), "stored and served whole");

    let clerk = h.login(&username(Role::ShippingClerk)).await;
    for (who, token) in [
        ("shipping clerk", &clerk),
        ("shipping.read key", &shipping_key),
    ] {
        for path in [
            format!("/api/v1/fills/{FILL_ID}"),
            format!("/fhir/MedicationDispense/{FILL_ID}"),
        ] {
            let before = h.audit_size();
            let (status, fill) = get(&h, &path, token).await;
            assert_eq!(status, 200, "{who} {path}: {fill}");
            assert_shipping_view(&fill, &patient, &format!("{who} {path}"));
            // The read is audited with the categories it decrypted.
            assert_eq!(h.audit_size(), before + 1);
            match &h.last_entries(1)[0].entry.action {
                rxvault_audit::Action::Read { kind, categories } => {
                    assert_eq!(*kind, Some(RecordKind::Fill));
                    assert_eq!(
                        *categories,
                        CategorySet::of(&[
                            FieldCategory::Shipping,
                            FieldCategory::Identifiers,
                            FieldCategory::Administrative
                        ])
                    );
                }
                other => panic!("{who} {path}: {other:?}"),
            }
        }
        let (status, bundle) = get(
            &h,
            &format!("/fhir/MedicationDispense?identifier={TRANSACTION_ID}"),
            token,
        )
        .await;
        assert_eq!(status, 200, "{who}: {bundle}");
        assert_eq!(
            bundle["entry"].as_array().map(Vec::len),
            Some(1),
            "{bundle}"
        );
        assert_shipping_view(
            &bundle["entry"][0]["resource"],
            &patient,
            &format!("{who} search"),
        );
    }
    // The day's manifest lists the probe's package at its ship-to.
    let (status, rows) = get(&h, "/api/v1/shipments", &clerk).await;
    assert_eq!(status, 200);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["transaction_id"] == TRANSACTION_ID)
        .unwrap_or_else(|| panic!("the probe's package: {rows}"));
    assert_eq!(row["address_line1"], STREET);
    assert_eq!(row["package_ref"], format!("UPS {TRACKING}"));
    assert!(!rows.to_string().contains(PHONE));

    // The clerk updates the tracking number on what it was shown: what it
    // could not see stays as it was, where it was.
    let (_, mut seen) = get(&h, &format!("/api/v1/fills/{FILL_ID}"), &clerk).await;
    seen["extension"][1]["valueString"] = json!("1Z999AA10123450000");
    let put = |body: Value| {
        h.client
            .put(h.url(&format!("/api/v1/fills/{FILL_ID}")))
            .bearer_auth(&clerk)
            .json(&body)
            .send()
    };
    assert_eq!(put(seen.clone()).await.unwrap().status(), 200);
    let (_, after) = get(
        &h,
        &format!("/fhir/MedicationDispense/{FILL_ID}"),
        &pharmacist,
    )
    .await;
    let mut want = probe_fill(&patient);
    want["extension"][1]["valueString"] = json!("1Z999AA10123450000");
    assert_eq!(after, want);
    // Naming the contained medication as the ship-to would show it to the
    // clerk: refused, and nothing changes.
    let mut sneaky = seen.clone();
    sneaky["destination"] = json!({"reference": "#med"});
    assert_eq!(put(sneaky).await.unwrap().status(), 403);
    let (_, unchanged) = get(
        &h,
        &format!("/fhir/MedicationDispense/{FILL_ID}"),
        &pharmacist,
    )
    .await;
    assert_eq!(unchanged, want);
    h.finish().await;
}

both_backends!(issue_9_item_1_a_shipping_view_shows_the_label_only);
