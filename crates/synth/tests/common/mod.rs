//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rxvault_fhir::Resource;
use rxvault_fhir::read::{Entry, Options, read_file};
use rxvault_synth::{Config, FILES};
use std::path::Path;

/// The `as_of` the tests use.
pub const AS_OF: time::Date = time::macros::date!(2024 - 06 - 30);

/// A config of `patients` patients.
pub fn config(patients: u64, seed: u64) -> Config {
    Config::new(patients, seed, AS_OF)
}

/// Every resource of every file written to `dir`, read back with the vault's
/// own NDJSON reader (which also checks each line's resource type against
/// the file name), in `FILES` order.
pub fn read_dir(dir: &Path) -> Vec<Vec<Resource>> {
    FILES
        .iter()
        .map(|(_, name)| {
            let mut out = Vec::new();
            read_file(&dir.join(name), &Options::default(), &mut |item| {
                match item.result {
                    Ok(Entry::Resource(r)) => out.push(r),
                    other => panic!("{}: {other:?}", item.location),
                }
                Ok::<(), ()>(())
            })
            .expect("readable");
            out
        })
        .collect()
}

/// The JSON of a resource with `serde_json`'s own serializer, for
/// comparisons that must not depend on the crate's writer.
pub fn json(r: &Resource) -> serde_json::Value {
    serde_json::Value::Object(r.clone())
}
