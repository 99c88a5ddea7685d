//! The population looks like the US: every state, shares by census
//! population, languages, ages; and a non-empty shipping manifest on
//! `as_of`.

mod common;

use common::config;
use rxvault_synth::{patient, patient_records};
use std::collections::BTreeMap;

#[test]
fn states_follow_the_census() {
    let cfg = config(20_000, 2020);
    let mut states: BTreeMap<String, u32> = BTreeMap::new();
    let mut languages: BTreeMap<String, u32> = BTreeMap::new();
    let mut female = 0;
    let mut seniors = 0;
    let mut surnames: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..cfg.patients {
        let p = patient(&cfg, i);
        *states
            .entry(p.addresses[0].state.clone().unwrap())
            .or_default() += 1;
        if let Some(l) = p.languages.first() {
            *languages.entry(l.clone()).or_default() += 1;
        }
        female += u32::from(p.gender.as_deref() == Some("female"));
        let year: i32 = p.birth_date.as_deref().unwrap()[..4].parse().unwrap();
        seniors += u32::from(year <= 1959);
        *surnames
            .entry(p.names[0].family.clone().unwrap())
            .or_default() += 1;
    }
    assert_eq!(states.len(), 51, "every state and DC: {states:?}");
    let share = |code: &str| f64::from(states[code]) / cfg.patients as f64;
    // 2020 Census shares: CA 11.93%, TX 8.79%, FL 6.50%, WY 0.17%.
    assert!((share("CA") - 0.1193).abs() < 0.012, "CA {}", share("CA"));
    assert!((share("TX") - 0.0879).abs() < 0.010, "TX {}", share("TX"));
    assert!((share("FL") - 0.0650).abs() < 0.008, "FL {}", share("FL"));
    assert!(share("WY") < 0.005);

    let lang =
        |code: &str| f64::from(languages.get(code).copied().unwrap_or(0)) / cfg.patients as f64;
    assert!(lang("en") > 0.85, "en {}", lang("en"));
    assert!((0.04..0.12).contains(&lang("es")), "es {}", lang("es"));
    for code in ["zh", "vi", "ko", "tl", "ru", "ar"] {
        assert!(lang(code) > 0.0, "{code}");
    }
    let female = f64::from(female) / cfg.patients as f64;
    assert!((0.5..0.6).contains(&female), "female {female}");
    // Skewed toward older adults: a third or more are 65 and over.
    assert!(f64::from(seniors) / cfg.patients as f64 > 0.3);
    // Smith leads, Garcia and Nguyen are there in plausible numbers.
    let count = |s: &str| surnames.get(s).copied().unwrap_or(0);
    assert!(count("Smith") > count("Nguyen") && count("Garcia") > count("Nguyen"));
    assert!(count("Nguyen") > 0 && count("Patel") > 0 && count("Kim") > 0);
}

#[test]
fn todays_manifest_is_not_empty() {
    for (seed, as_of) in [
        (1, common::AS_OF),
        (2, time::macros::date!(2021 - 02 - 28)),
        (3, time::macros::date!(2030 - 12 - 31)),
    ] {
        let cfg = rxvault_synth::Config::new(2_000, seed, as_of);
        let mut patients_today = 0;
        let mut fills = 0;
        for i in 0..cfg.patients {
            let r = patient_records(&cfg, i);
            let today = r.fills_on(as_of).count();
            patients_today += usize::from(today > 0);
            fills += r.fills.len();
            assert!(r.fills_on(as_of).all(|f| f.status == "in-progress"));
        }
        let share = patients_today as f64 / cfg.patients as f64;
        assert!((0.005..0.05).contains(&share), "{as_of}: {share}");
        assert!(fills > 10_000);
    }
}
