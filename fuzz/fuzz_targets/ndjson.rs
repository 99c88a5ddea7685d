//! NDJSON reader: any bytes, never a panic; every item located.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_fhir::read::{Options, Position, read_ndjson};
use std::path::Path;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let mut last = 0;
    let _ = read_ndjson::<()>(
        data,
        Arc::from(Path::new("Patient.ndjson")),
        Some("Patient".into()),
        &Options { max_record_bytes: 256 },
        &mut |item| {
            let Position::Line(n) = item.location.at else { panic!("NDJSON items have lines") };
            assert!(n > last, "lines increase");
            last = n;
            Ok(())
        },
    );
});
