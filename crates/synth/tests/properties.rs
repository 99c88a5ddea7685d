//! For any seed and index, the records pass the vault's readers and their
//! resources say exactly what the records say.

use proptest::prelude::*;
use rxvault_fhir::map;
use rxvault_synth::{Config, patient_records};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_patient_passes_the_readers(seed in any::<u64>(), index in any::<u64>(), day in 0i32..150_000) {
        let as_of = time::Date::from_julian_day(2_378_497 + day).unwrap(); // 1800-01-01 + day
        let cfg = Config::new(u64::MAX, seed, as_of);
        let r = patient_records(&cfg, index);
        prop_assert_eq!(&r, &patient_records(&cfg, index));
        let res = r.resources();
        prop_assert_eq!(map::patient(&res.patient).unwrap(), r.patient.clone());
        for (c, j) in r.coverages.iter().zip(&res.coverages) {
            prop_assert_eq!(&map::coverage(j).unwrap(), c);
            prop_assert_eq!(&c.patient_id, &r.patient.id);
        }
        for (p, j) in r.prescriptions.iter().zip(&res.prescriptions) {
            prop_assert_eq!(&map::prescription(j).unwrap(), p);
            prop_assert_eq!(&p.patient_id, &r.patient.id);
        }
        for (f, j) in r.fills.iter().zip(&res.fills) {
            prop_assert_eq!(&map::fill(j).unwrap(), f);
            prop_assert!(r.prescriptions.iter().any(|p| Some(&p.id) == f.prescription_id.as_ref()));
        }
        for (a, j) in r.allergies.iter().zip(&res.allergies) {
            prop_assert_eq!(&map::allergy(j).unwrap(), a);
        }
        prop_assert_eq!(res.fills.len(), r.fills.len());
    }
}
