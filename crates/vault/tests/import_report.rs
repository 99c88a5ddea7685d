//! The import report says what was stored (issue 9, item 12: it counted 42
//! "derived coverages" for 4 stored: one per claim, not per coverage kept).

mod common;

use rxvault_model::RecordKind;
use rxvault_vault::import::ImportOptions;

#[test]
fn derived_coverages_are_counted_as_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = common::sqlite_vault(tmp.path(), time::macros::datetime!(2026-11-28 15:00 UTC));
    // Synthea's shape: many claims per patient naming the same payer, and
    // one patient with a Coverage of its own (which the derived one gives
    // way to).
    let input = tmp.path().join("bulk");
    std::fs::create_dir(&input).unwrap();
    let mut patients = String::new();
    let mut claims = String::new();
    for p in 0..4 {
        patients.push_str(&format!(
            "{{\"resourceType\":\"Patient\",\"id\":\"p{p}\",\"name\":[{{\"family\":\"Doe\"}}],\"birthDate\":\"1950-01-0{}\"}}\n",
            p + 1
        ));
        for c in 0..10 {
            claims.push_str(&format!(
                "{{\"resourceType\":\"Claim\",\"id\":\"c{p}-{c}\",\"patient\":{{\"reference\":\"Patient/p{p}\"}},\"insurance\":[{{\"coverage\":{{\"display\":\"Aetna\"}}}}]}}\n"
            ));
        }
    }
    std::fs::write(input.join("Patient.ndjson"), patients).unwrap();
    std::fs::write(input.join("Claim.ndjson"), claims).unwrap();
    std::fs::write(
        input.join("Coverage.ndjson"),
        "{\"resourceType\":\"Coverage\",\"id\":\"own\",\"status\":\"active\",\"beneficiary\":{\"reference\":\"Patient/p3\"},\"payor\":[{\"display\":\"Medicare\"}]}\n",
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
    let store = vault.unaudited().store();
    let mut stored_derived = 0u64;
    let mut after = None;
    loop {
        let page = store
            .scan(RecordKind::Coverage, after.as_ref(), 500)
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.rid);
        stored_derived += page.iter().filter(|r| r.derived).count() as u64;
    }
    assert_eq!(
        stored_derived, 3,
        "one per patient without a Coverage of its own"
    );
    assert_eq!(report.derived_coverages, stored_derived);
    // Importing again changes nothing and says so.
    let again = vault
        .unaudited()
        .import(
            std::slice::from_ref(&input),
            &ImportOptions::default(),
            &mut (),
        )
        .unwrap();
    assert_eq!(again.derived_coverages, stored_derived);
}
