//! The same config gives the same bytes; the files hold exactly what
//! `patient_records` generates for each index.

mod common;

use common::{config, read_dir};
use rxvault_fhir::map;
use rxvault_synth::{FILES, patient, patient_records, write_ndjson, write_ndjson_with_threads};
use std::collections::BTreeMap;

fn file_bytes(dir: &std::path::Path) -> Vec<Vec<u8>> {
    FILES
        .iter()
        .map(|(_, name)| std::fs::read(dir.join(name)).unwrap())
        .collect()
}

#[test]
fn same_config_same_bytes_whatever_the_thread_count() {
    // 300 patients: more than two 128-patient batches, so batches really
    // are spread over several workers.
    let cfg = config(300, 11);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    let sa = write_ndjson_with_threads(&cfg, a.path(), 1, &mut |n| calls.push(n)).unwrap();
    let sb = write_ndjson_with_threads(&cfg, b.path(), 3, &mut |_| {}).unwrap();
    let sc = write_ndjson(&cfg, c.path(), &mut |_| {}).unwrap();
    let fa = file_bytes(a.path());
    assert_eq!(fa, file_bytes(b.path()));
    assert_eq!(fa, file_bytes(c.path()));
    assert_eq!(sa.fills, sb.fills);
    assert_eq!(sa.bytes(), sc.bytes());
    assert!(fa.iter().all(|f| !f.is_empty()));
    // Progress is monotonic and ends at the total.
    assert!(calls.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(calls.last(), Some(&300));
    // The summary matches the files.
    for (f, bytes) in sa.files.iter().zip(&fa) {
        assert_eq!(f.bytes, bytes.len() as u64);
        assert_eq!(
            f.resources,
            bytes.iter().filter(|&&b| b == b'\n').count() as u64
        );
    }
    assert_eq!(sa.patients, 300);
}

#[test]
fn different_seeds_differ() {
    let a = patient_records(&config(10, 1), 0);
    let b = patient_records(&config(10, 2), 0);
    assert_ne!(a.patient.id, b.patient.id);
    assert_ne!(a.patient, b.patient);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_ndjson(&config(20, 1), a.path(), &mut |_| {}).unwrap();
    write_ndjson(&config(20, 2), b.path(), &mut |_| {}).unwrap();
    assert_ne!(file_bytes(a.path())[0], file_bytes(b.path())[0]);
}

#[test]
fn records_do_not_depend_on_the_dataset_size() {
    assert_eq!(
        patient_records(&config(10, 5), 3),
        patient_records(&config(1_000_000, 5), 3)
    );
    assert_eq!(
        patient(&config(10, 5), 7),
        patient_records(&config(10, 5), 7).patient
    );
}

#[test]
fn the_files_hold_exactly_the_generated_records() {
    let cfg = config(150, 23);
    let dir = tempfile::tempdir().unwrap();
    let summary = write_ndjson(&cfg, dir.path(), &mut |_| {}).unwrap();
    let files = read_dir(dir.path());

    // Group the non-patient resources by patient, keeping file order.
    let mut by_patient: Vec<BTreeMap<String, Vec<serde_json::Value>>> = vec![BTreeMap::new(); 5];
    for (i, resources) in files.iter().enumerate().skip(1) {
        for r in resources {
            let kind = rxvault_model::RecordKind::ALL[i];
            let owner = map::patient_of(kind, r).unwrap().unwrap();
            by_patient[i]
                .entry(owner)
                .or_default()
                .push(common::json(r));
        }
    }

    let mut today = 0;
    for index in 0..cfg.patients {
        let records = patient_records(&cfg, index);
        let resources = records.resources();
        let line = &files[0][index as usize];
        assert_eq!(
            map::patient(line).unwrap(),
            records.patient,
            "patient {index}"
        );
        assert_eq!(common::json(line), common::json(&resources.patient));
        let id = &records.patient.id;
        let expect = |i: usize, rs: &[rxvault_fhir::Resource]| {
            let got = by_patient[i].get(id).cloned().unwrap_or_default();
            let want: Vec<_> = rs.iter().map(common::json).collect();
            assert_eq!(got, want, "{} of patient {index}", FILES[i].0);
        };
        expect(1, &resources.coverages);
        expect(2, &resources.prescriptions);
        expect(3, &resources.fills);
        expect(4, &resources.allergies);
        // And the typed views read back equal the generated records.
        let fills: Vec<_> = by_patient[3]
            .get(id)
            .map(|v| {
                v.iter()
                    .map(|j| map::fill(j.as_object().unwrap()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(fills, records.fills);
        let rxs: Vec<_> = by_patient[2]
            .get(id)
            .map(|v| {
                v.iter()
                    .map(|j| map::prescription(j.as_object().unwrap()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(rxs, records.prescriptions);
        let covs: Vec<_> = by_patient[1]
            .get(id)
            .map(|v| {
                v.iter()
                    .map(|j| map::coverage(j.as_object().unwrap()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(covs, records.coverages);
        let alls: Vec<_> = by_patient[4]
            .get(id)
            .map(|v| {
                v.iter()
                    .map(|j| map::allergy(j.as_object().unwrap()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(alls, records.allergies);
        today += records.fills_on(cfg.as_of).count() as u64;
    }
    assert_eq!(summary.fills_on_as_of, today);
    assert_eq!(files[0].len() as u64, cfg.patients);
}
