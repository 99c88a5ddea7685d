//! The shipping manifest reads the ship-to wherever R4 puts it (issue 9,
//! item 12: with the ship-to as a `MedicationDispense.destination`
//! reference, `export shipping` wrote 0 of 500 packages and exited 0).

mod common;

use rxvault_vault::Vault;
use rxvault_vault::access::Requester;
use rxvault_vault::export::Target;
use rxvault_vault::import::ImportOptions;
use serde_json::json;

fn vault(tmp: &tempfile::TempDir) -> Vault {
    common::sqlite_vault(tmp.path(), time::macros::datetime!(2026-11-28 15:00 UTC))
}

fn fill(id: &str, patient: &str, day: &str, destination: Option<serde_json::Value>) -> String {
    let mut f = json!({
        "resourceType": "MedicationDispense", "id": id, "status": "completed",
        "medicationCodeableConcept": {"text": "lisinopril 10 MG Oral Tablet"},
        "subject": {"reference": format!("Patient/{patient}")},
        "whenPrepared": day,
    });
    if let Some(d) = destination {
        f["destination"] = d;
    }
    f.to_string()
}

#[test]
fn contained_destinations_and_the_patients_address_are_shipped_to_and_location_references_are_refused_loudly()
 {
    let tmp = tempfile::tempdir().unwrap();
    let vault = vault(&tmp);
    let input = tmp.path().join("bulk");
    std::fs::create_dir(&input).unwrap();
    let patients = [
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Nguyen", "given": ["An"]}],
               "address": [{"use": "work", "line": ["1 Work St"], "city": "Chicago", "state": "IL", "postalCode": "60601"},
                           {"use": "home", "line": ["22 Home Ave"], "city": "Evanston", "state": "IL", "postalCode": "60201"}]}),
        json!({"resourceType": "Patient", "id": "p2", "name": [{"family": "Okafor", "given": ["Ada"]}],
               "address": [{"line": ["5 Elm"], "city": "Peoria", "state": "IL", "postalCode": "61602"}]}),
    ];
    std::fs::write(
        input.join("Patient.ndjson"),
        patients
            .iter()
            .map(|p| format!("{p}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let day = "2026-11-28";
    let mut contained: serde_json::Value =
        serde_json::from_str(&fill("f1", "p1", day, Some(json!({"reference": "#loc1"})))).unwrap();
    contained["contained"] = json!([{"resourceType": "Location", "id": "loc1", "name": "An Nguyen c/o Front Desk",
        "address": {"line": ["9 Clinic Rd"], "city": "Joliet", "state": "IL", "postalCode": "60431"}}]);
    let fills = [
        contained.to_string(),
        // No destination: the patient's home address.
        fill("f2", "p1", day, None),
        fill("f3", "p2", day, None),
        // A Location resource rxvault does not store: never guessed.
        fill(
            "f4",
            "p2",
            day,
            Some(json!({"reference": "Location/warehouse-7"})),
        ),
        // Another day: only a Location reference.
        fill(
            "f5",
            "p2",
            "2026-11-27",
            Some(json!({"reference": "Location/warehouse-7"})),
        ),
    ];
    std::fs::write(
        input.join("MedicationDispense.ndjson"),
        fills.iter().map(|f| format!("{f}\n")).collect::<String>(),
    )
    .unwrap();
    let report = vault
        .unaudited()
        .import(
            std::slice::from_ref(&input),
            &ImportOptions::default(),
            &mut (),
        )
        .unwrap();
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);

    let out = tmp.path().join("ship.csv");
    let before = vault.audit().unwrap().reader().size().unwrap();
    let report = vault
        .export_shipping_for(&Requester::local(), day, &out, &Target::Plaintext)
        .unwrap();
    assert_eq!(
        (report.rows, report.unresolved, report.from_patient_address),
        (3, 1, 2)
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(
        csv.contains("An Nguyen c/o Front Desk") && csv.contains("9 Clinic Rd"),
        "{csv}"
    );
    assert!(
        csv.contains("22 Home Ave") && !csv.contains("1 Work St"),
        "home address first: {csv}"
    );
    assert!(csv.contains("Ada Okafor") && csv.contains("5 Elm"), "{csv}");
    assert!(!csv.contains("warehouse"), "{csv}");
    // The started entry names the patient categories the fallback decrypted.
    let entries = vault
        .audit()
        .unwrap()
        .reader()
        .entries(before, before + 1)
        .unwrap();
    let rxvault_audit::Action::ExportStarted { categories, .. } = &entries[0].entry.action else {
        panic!("{:?}", entries[0].entry.action)
    };
    let text = format!("{categories:?}");
    assert!(text.contains("Patient"), "{text}");

    // A day whose fills all name a Location resource: no empty manifest.
    let other = tmp.path().join("other.csv");
    let err = vault
        .export_shipping_for(
            &Requester::local(),
            "2026-11-27",
            &other,
            &Target::Plaintext,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no manifest written") && err.contains("Location"),
        "{err}"
    );
    assert!(!other.exists());
}
