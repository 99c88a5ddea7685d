//! Bundle / JSON document reader: any bytes, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_fhir::read::read_json;
use std::path::Path;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let _ = read_json::<()>(data, Arc::from(Path::new("b.json")), &mut |_| Ok(()));
});
