//! Issue 8, in process: exports are recorded before their first byte and
//! again at their end (or failure), and "what was in export X" comes back
//! from the log; searches record exactly what they returned.

mod common;

use rxvault_audit::{Action, ExportFormat, ExportProtection, ExportStatus, Outcome, Query};
use rxvault_fhir::{Resource, split};
use rxvault_model::{CategorySet, FieldCategory, RecordKind, Rid};
use rxvault_testkit::shared_data;
use rxvault_vault::Vault;
use rxvault_vault::access::{Requester, View};
use rxvault_vault::export::Target;
use rxvault_vault::import::ImportOptions;
use rxvault_vault::keys::Quiet;
use rxvault_vault::query::Find;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn vault(tmp: &Path) -> Vault {
    let vault = common::sqlite_vault(tmp, time::macros::datetime!(2026-11-28 12:00 UTC));
    vault
        .unaudited()
        .import(
            &[shared_data("synthea-10")],
            &ImportOptions::default(),
            &mut (),
        )
        .unwrap();
    vault
}

/// Patients and categories per kind of the NDJSON files in `dir`.
fn held(vault: &Vault, dir: &Path) -> (BTreeSet<Rid>, BTreeMap<RecordKind, CategorySet>) {
    let mut patients = BTreeSet::new();
    let mut categories: BTreeMap<RecordKind, CategorySet> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "ndjson") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let r: Resource = serde_json::from_str(line).unwrap();
            let kind = RecordKind::from_fhir_type(r["resourceType"].as_str().unwrap()).unwrap();
            let rid = vault.rid(kind, r["id"].as_str().unwrap());
            let stored = vault.unaudited().store().get(kind, &rid).unwrap().unwrap();
            patients.insert(stored.patient.unwrap_or(rid));
            let c = categories.entry(kind).or_default();
            *c = c.iter().chain(split::categories(kind, &r).iter()).collect();
        }
    }
    (patients, categories)
}

#[test]
fn a_fhir_export_is_recorded_before_and_after_and_its_scope_is_what_it_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = vault(tmp.path());
    let out = tmp.path().join("export");
    let report = vault
        .export_fhir_for(&Requester::local(), &out, &Target::Plaintext, &mut Quiet)
        .unwrap();
    let reader = vault.audit().unwrap().reader();
    let entries = reader
        .query(&Query {
            export: Some(report.export_id.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(entries.len(), 2, "started and finished, found by export id");
    assert!(matches!(
        entries[0].entry.action,
        Action::ExportStarted { .. }
    ));
    assert!(matches!(
        entries[1].entry.action,
        Action::ExportFinished { .. }
    ));

    let scope = reader.export_scope(&report.export_id).unwrap().unwrap();
    assert_eq!(scope.status, ExportStatus::Finished);
    assert_eq!(scope.format, ExportFormat::FhirNdjson);
    assert_eq!(scope.protection, ExportProtection::Plaintext);
    assert_eq!(
        scope.destination,
        std::path::absolute(&out).unwrap().display().to_string()
    );
    let (patients, categories) = held(&vault, &out);
    assert_eq!(
        scope.patients.iter().copied().collect::<BTreeSet<_>>(),
        patients
    );
    assert_eq!(
        scope.categories.iter().collect::<BTreeMap<_, _>>(),
        categories,
        "the categories recorded are the ones in the files"
    );
    assert_eq!(
        scope.records,
        report.files.iter().map(|f| f.count).sum::<u64>()
    );
    assert_eq!(
        report.patients.iter().copied().collect::<BTreeSet<_>>(),
        patients
    );
    assert!(reader.export_scope("no-such-export").unwrap().is_none());
}

#[test]
fn an_encrypted_export_records_its_recipients() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = vault(tmp.path());
    let recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let recipients = rxvault_crypto::export::Recipients::parse(&[recipient]).unwrap();
    let report = vault
        .export_fhir_for(
            &Requester::local(),
            &tmp.path().join("sealed"),
            &Target::Age(recipients),
            &mut Quiet,
        )
        .unwrap();
    let scope = vault
        .audit()
        .unwrap()
        .reader()
        .export_scope(&report.export_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        scope.protection,
        ExportProtection::Age {
            recipients: vec![recipient.to_string()]
        }
    );
}

#[test]
fn a_failed_export_is_recorded_as_failed_after_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = vault(tmp.path());
    // The folder cannot be created: its parent is a file.
    std::fs::write(tmp.path().join("file"), b"x").unwrap();
    let out = tmp.path().join("file/export");
    assert!(
        vault
            .export_fhir_for(&Requester::local(), &out, &Target::Plaintext, &mut Quiet)
            .is_err()
    );
    let reader = vault.audit().unwrap().reader();
    let started = reader
        .query(&Query {
            action: Some(rxvault_audit::ActionKind::ExportStarted),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(started.len(), 1);
    let Action::ExportStarted { export_id, .. } = &started[0].entry.action else {
        unreachable!()
    };
    let scope = reader.export_scope(export_id).unwrap().unwrap();
    assert_eq!(scope.status, ExportStatus::Failed);
    assert_eq!(scope.end.unwrap().entry.outcome, Outcome::Error);
    assert!(!scope.patients.is_empty(), "what it was to hold");

    // A folder that is not empty is refused before anything is recorded.
    let full = tmp.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("other"), b"x").unwrap();
    let before = reader.size().unwrap();
    assert!(
        vault
            .export_fhir_for(&Requester::local(), &full, &Target::Plaintext, &mut Quiet)
            .is_err()
    );
    assert_eq!(reader.size().unwrap(), before);
}

#[test]
fn a_shipping_export_records_the_fills_patients_and_label_categories() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = vault(tmp.path());
    let input = tmp.path().join("synth");
    let config = rxvault_synth::Config {
        patients: 100,
        seed: 5,
        as_of: time::macros::date!(2026 - 11 - 28),
    };
    rxvault_synth::write_ndjson(&config, &input, &mut |_| {}).unwrap();
    vault
        .unaudited()
        .import(
            std::slice::from_ref(&input),
            &ImportOptions::default(),
            &mut (),
        )
        .unwrap();
    let out = tmp.path().join("ship.csv");
    let report = vault
        .export_shipping_for(&Requester::local(), "2026-11-28", &out, &Target::Plaintext)
        .unwrap();
    assert!(report.rows > 0);
    let scope = vault
        .audit()
        .unwrap()
        .reader()
        .export_scope(&report.export_id)
        .unwrap()
        .unwrap();
    assert_eq!(scope.status, ExportStatus::Finished);
    assert_eq!(scope.format, ExportFormat::ShippingCsv);
    assert_eq!(scope.records, report.rows);
    assert_eq!(scope.patients, report.patients);
    assert_eq!(
        scope.categories.iter().collect::<Vec<_>>(),
        vec![(
            RecordKind::Fill,
            CategorySet::of(&[FieldCategory::Identifiers, FieldCategory::Shipping])
        )]
    );
    // Every row's transaction ID belongs to a fill the started entry names.
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(scope.started.entry.resources.len() as u64, report.rows);
    for line in csv.lines().skip(1) {
        let tx = line.split(',').next().unwrap();
        let fills = vault
            .unaudited()
            .find_rids(&Find::TransactionId(tx.into()))
            .unwrap();
        assert!(fills.iter().all(|p| scope.patients.contains(p)), "{tx}");
        assert!(line.ends_with(&report.export_id));
    }
}

#[test]
fn searches_record_what_they_returned_even_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = vault(tmp.path());
    let who = Requester::local();
    let view = View::uniform(CategorySet::of(&[FieldCategory::Demographics]));
    let last = |vault: &Vault| {
        let reader = vault.audit().unwrap().reader();
        let size = reader.size().unwrap();
        reader.entries(size - 1, size).unwrap().remove(0).entry
    };

    // A patient search narrowed to nothing names no one.
    let phone = Find::Phone("555-000-0000".into());
    assert!(
        vault
            .search_patients_where(&who, &view, &phone, |_| false)
            .unwrap()
            .is_empty()
    );
    let e = last(&vault);
    assert!(e.patients.is_empty());
    assert_eq!(
        e.action,
        Action::Search {
            query: "phone".into(),
            results: 0,
            kind: Some(RecordKind::Patient),
            categories: Some(CategorySet::of(&[FieldCategory::Demographics])),
        }
    );

    // A record search with no hit is recorded too.
    let none = vault
        .search_records(
            &who,
            &view,
            RecordKind::Coverage,
            &Find::MemberId("NO-SUCH-MEMBER".into()),
            |_| true,
        )
        .unwrap();
    assert!(none.is_empty());
    let e = last(&vault);
    assert!(e.patients.is_empty() && e.resources.is_empty());
    assert!(matches!(
        e.action,
        Action::Search {
            results: 0,
            kind: Some(RecordKind::Coverage),
            ..
        }
    ));

    // A list of records of a patient who does not exist names no one.
    assert!(
        vault
            .read_patient_records(&who, &View::ALL, RecordKind::Allergy, "no-such-patient")
            .unwrap()
            .is_empty()
    );
    assert!(last(&vault).patients.is_empty());
}
