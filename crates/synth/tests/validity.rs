//! Every generated resource passes the vault's readers, every reference
//! resolves, every identifier is unique, and the values look like a real
//! pharmacy's.

mod common;

use common::{AS_OF, config, read_dir};
use rxvault_fhir::map;
use rxvault_model::{Deceased, RecordKind};
use rxvault_synth::{patient_records, write_ndjson};
use std::collections::BTreeSet;

fn is_date(s: &str) -> bool {
    map::check_date("d", s).is_ok() && s.len() == 10
}

#[test]
fn files_pass_the_readers_and_references_resolve() {
    let cfg = config(400, 77);
    let dir = tempfile::tempdir().unwrap();
    write_ndjson(&cfg, dir.path(), &mut |_| {}).unwrap();
    let files = read_dir(dir.path());

    let mut ids = BTreeSet::new();
    let mut patients = BTreeSet::new();
    for r in &files[0] {
        let p = map::patient(r).unwrap();
        assert!(ids.insert(p.id.clone()), "duplicate id");
        patients.insert(p.id);
    }
    let mut prescriptions = BTreeSet::new();
    for r in &files[2] {
        let rx = map::prescription(r).unwrap();
        assert!(patients.contains(&rx.patient_id), "dangling subject");
        assert!(ids.insert(rx.id.clone()), "duplicate id");
        prescriptions.insert(rx.id);
    }
    for r in &files[1] {
        let c = map::coverage(r).unwrap();
        assert!(patients.contains(&c.patient_id), "dangling beneficiary");
        assert!(ids.insert(c.id), "duplicate id");
    }
    for r in &files[3] {
        let f = map::fill(r).unwrap();
        assert!(patients.contains(&f.patient_id), "dangling subject");
        let rx = f.prescription_id.expect("authorizingPrescription");
        assert!(
            prescriptions.contains(&rx),
            "dangling authorizingPrescription"
        );
        assert!(ids.insert(f.id), "duplicate id");
    }
    for r in &files[4] {
        let a = map::allergy(r).unwrap();
        assert!(patients.contains(&a.patient_id), "dangling patient");
        assert!(ids.insert(a.id), "duplicate id");
    }
    for (i, kind) in RecordKind::ALL.into_iter().enumerate() {
        assert!(!files[i].is_empty(), "no {kind:?}");
        for r in &files[i] {
            map::check_id(kind.fhir_type(), r["id"].as_str().unwrap()).unwrap();
            assert_eq!(r["resourceType"], kind.fhir_type());
        }
    }
}

#[test]
fn identifiers_are_unique_over_5000_patients() {
    let cfg = config(5_000, 3);
    let mut ids = BTreeSet::new();
    let mut rx_numbers = BTreeSet::new();
    let mut transactions = BTreeSet::new();
    let mut mrns = BTreeSet::new();
    let mut fills = 0;
    for i in 0..cfg.patients {
        let r = patient_records(&cfg, i);
        assert!(ids.insert(r.patient.id.clone()));
        assert!(mrns.insert(r.patient.identifiers[0].value.clone()));
        for c in &r.coverages {
            assert!(ids.insert(c.id.clone()));
        }
        for rx in &r.prescriptions {
            assert!(ids.insert(rx.id.clone()));
            assert_eq!(rx.rx_number.len(), 7, "{}", rx.rx_number);
            assert!(rx.rx_number.bytes().all(|b| b.is_ascii_digit()));
            assert!(
                rx_numbers.insert(rx.rx_number.clone()),
                "duplicate Rx number"
            );
        }
        for f in &r.fills {
            assert!(ids.insert(f.id.clone()));
            assert!(f.transaction_id.starts_with('T') && f.transaction_id.len() == 11);
            assert!(
                transactions.insert(f.transaction_id.clone()),
                "duplicate transaction ID"
            );
            fills += 1;
        }
        for a in &r.allergies {
            assert!(ids.insert(a.id.clone()));
        }
    }
    assert!(fills > 20_000, "{fills}");
}

#[test]
fn values_look_real() {
    let cfg = config(1_500, 9);
    let window_start = (AS_OF - time::Duration::days(364)).to_string();
    let as_of = AS_OF.to_string();
    let mut carriers = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    let mut relationships = BTreeSet::new();
    let mut with_unit = 0;
    let mut with_maiden = 0;
    let mut with_middle = 0;
    for i in 0..cfg.patients {
        let r = patient_records(&cfg, i);
        let p = &r.patient;
        let name = p.primary_name().unwrap();
        assert_eq!(name.use_.as_deref(), Some("official"));
        assert!(!name.given.is_empty() && name.family.is_some());
        with_middle += usize::from(name.given.len() > 1);
        with_maiden += usize::from(p.names.iter().any(|n| n.use_.as_deref() == Some("maiden")));
        let birth = p.birth_date.as_deref().unwrap();
        assert!(is_date(birth) && birth <= as_of.as_str());
        assert!(matches!(
            p.gender.as_deref(),
            Some("male" | "female" | "other" | "unknown")
        ));
        let home = &p.addresses[0];
        assert_eq!(home.use_.as_deref(), Some("home"));
        assert_eq!(home.country.as_deref(), Some("US"));
        let zip = home.postal_code.as_deref().unwrap();
        assert!(zip.len() == 5 && zip.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(home.state.as_deref().unwrap().len(), 2);
        with_unit += usize::from(home.lines.len() == 2);
        for phone in p.phones() {
            let b = phone.as_bytes();
            assert_eq!(b.len(), 12, "{phone}");
            assert_eq!(&phone[3..8], "-555-", "{phone}");
            assert!(b[0] >= b'2', "{phone}");
        }
        for t in p
            .telecoms
            .iter()
            .filter(|t| t.system.as_deref() == Some("email"))
        {
            assert!(t.value.contains("@example."), "{}", t.value);
        }
        assert_eq!(p.identifiers[0].type_code.as_deref(), Some("MR"));
        assert_eq!(
            p.identifiers[0].system.as_deref(),
            Some("urn:oid:2.16.840.1.113883.19.5")
        );
        let death = match &p.deceased {
            Some(Deceased::At(d)) => {
                assert!(is_date(d) && d.as_str() <= as_of.as_str() && d.as_str() > birth);
                Some(d.clone())
            }
            Some(Deceased::Flag(_)) => panic!("deceasedBoolean"),
            None => None,
        };

        assert!(r.coverages.len() <= 2);
        for c in &r.coverages {
            let m = c.member_id.as_deref().unwrap();
            assert!(
                (9..=12).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_alphanumeric()),
                "{m}"
            );
            assert!(c.payer.is_some() && c.plan_name.is_some());
            relationships.insert(c.relationship.clone().unwrap());
            if c.relationship.as_deref() == Some("child") {
                assert!(birth > "1995", "child coverage for someone born {birth}");
            }
        }

        assert!(r.prescriptions.len() <= 8);
        for rx in &r.prescriptions {
            let written = rx.written.as_deref().unwrap();
            assert!(is_date(written) && written <= as_of.as_str() && written >= birth);
            if let Some(d) = &death {
                assert!(written < d.as_str(), "prescribed after death");
                assert_eq!(rx.status, "stopped");
            }
            assert!(rx.prescriber.as_deref().unwrap().starts_with("Dr. "));
            assert!(rx.refills.unwrap() <= 11);
            assert!(rx.quantity.unwrap() > 0.0);
            assert!(
                rx.medication
                    .rxnorm
                    .as_deref()
                    .unwrap()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            );
            assert!(rx.sig.is_some());
            statuses.insert(rx.status.clone());
            let fills = r
                .fills
                .iter()
                .filter(|f| f.prescription_id.as_deref() == Some(rx.id.as_str()))
                .count();
            assert!(
                fills as u32 <= rx.refills.unwrap() + 1,
                "more fills than refills allow"
            );
        }
        for f in &r.fills {
            let date = f.fill_date.as_deref().unwrap();
            assert!(is_date(date));
            assert!(
                date >= window_start.as_str() && date <= as_of.as_str(),
                "{date}"
            );
            if let Some(d) = &death {
                assert!(date < d.as_str(), "fill after death");
            }
            assert_eq!(
                f.status,
                if date == as_of {
                    "in-progress"
                } else {
                    "completed"
                }
            );
            let rx = r
                .prescriptions
                .iter()
                .find(|p| Some(&p.id) == f.prescription_id.as_ref())
                .unwrap();
            assert_eq!(f.medication, rx.medication);
            assert_eq!(f.quantity, rx.quantity);
            let ship = f.ship_to.as_ref().unwrap();
            assert_eq!(ship.name.as_deref(), Some(name.display().as_str()));
            assert!(
                p.addresses.contains(&ship.address),
                "ships to one of the patient's addresses"
            );
            let carrier = f.carrier.as_deref().unwrap();
            let t = f.tracking_number.as_deref().unwrap();
            match carrier {
                "USPS" => assert!(
                    t.len() == 22 && t.starts_with("94") && t.bytes().all(|b| b.is_ascii_digit()),
                    "{t}"
                ),
                "UPS" => assert!(t.len() == 18 && t.starts_with("1Z"), "{t}"),
                "FedEx" => assert!(
                    t.len() == 12 && t.bytes().all(|b| b.is_ascii_digit()),
                    "{t}"
                ),
                other => panic!("carrier {other}"),
            }
            carriers.insert(carrier.to_string());
        }
        assert!(r.allergies.len() <= 3);
        for a in &r.allergies {
            assert!(matches!(
                a.criticality.as_deref(),
                Some("low" | "high" | "unable-to-assess")
            ));
            assert!(matches!(
                a.clinical_status.as_deref(),
                Some("active" | "inactive" | "resolved")
            ));
        }
    }
    assert_eq!(carriers.len(), 3, "{carriers:?}");
    for s in ["active", "completed", "stopped"] {
        assert!(statuses.contains(s), "{statuses:?}");
    }
    for rel in ["self", "spouse", "child"] {
        assert!(relationships.contains(rel), "{relationships:?}");
    }
    let n = cfg.patients as usize;
    assert!(with_unit * 100 / n >= 5, "{with_unit}");
    assert!(with_maiden * 100 / n >= 5, "{with_maiden}");
    assert!(with_middle * 100 / n >= 20, "{with_middle}");
}
