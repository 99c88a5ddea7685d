//! Blind-index normalisation: never a panic, idempotent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_model::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(k) = normalize::name_key(s) {
        assert_eq!(normalize::name_key(&k), Some(k.clone()));
    }
    if let Some(p) = normalize::phone_digits(s) {
        assert_eq!(normalize::phone_digits(&p), Some(p.clone()));
    }
    if let Some(d) = normalize::day(s) {
        assert_eq!(normalize::day(&d), Some(d.clone()));
    }
});
