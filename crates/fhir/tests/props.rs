//! Property tests for the FHIR codecs: the readers never panic on any input,
//! and splitting a resource by field category then merging it is lossless
//! (for arbitrary JSON objects and for arbitrary valid FHIR shapes of every
//! stored kind: contained resources, references, extensions, backbone
//! elements), through the parts' bytes too; an update that sends back what
//! it was shown changes nothing.

use proptest::prelude::*;
use rxvault_fhir::read::{Options, Position, read_json, read_ndjson};
use rxvault_fhir::{Resource, map, split};
use rxvault_model::{CategorySet, FieldCategory, RecordKind};
use rxvault_testkit::shapes;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-zA-Z0-9 :/.#-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(element(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Element names rxvault reads, and others.
fn element() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "name",
            "family",
            "given",
            "telecom",
            "value",
            "system",
            "address",
            "line",
            "birthDate",
            "gender",
            "deceasedBoolean",
            "deceasedDateTime",
            "identifier",
            "type",
            "coding",
            "code",
            "subject",
            "reference",
            "patient",
            "beneficiary",
            "payor",
            "display",
            "status",
            "intent",
            "medicationCodeableConcept",
            "text",
            "dispenseRequest",
            "quantity",
            "numberOfRepeatsAllowed",
            "contained",
            "destination",
            "extension",
            "url",
            "valueString",
            "whenPrepared",
            "class",
            "communication",
            "language",
            "authoredOn",
            "meta",
        ])
        .prop_map(str::to_string),
        "[a-z]{1,8}",
    ]
}

fn resource() -> impl Strategy<Value = Resource> {
    proptest::collection::btree_map(element(), json_value(), 0..10)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn ndjson_reader_never_panics_and_locates_every_item(data in proptest::collection::vec(any::<u8>(), 0..2000), limit in 1usize..300) {
        let mut last = 0;
        read_ndjson::<()>(&data[..], Arc::from(Path::new("Patient.ndjson")), Some("Patient".into()), &Options { max_record_bytes: limit }, &mut |item| {
            match item.location.at {
                Position::Line(n) => { assert!(n > last); last = n; }
                other => panic!("unexpected position {other:?}"),
            }
            Ok(())
        }).unwrap();
    }

    #[test]
    fn json_reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        read_json::<()>(&data[..], Arc::from(Path::new("b.json")), &mut |_| Ok(())).unwrap();
    }

    #[test]
    fn json_reader_never_panics_on_json_shaped_input(v in json_value()) {
        let text = serde_json::json!({"resourceType": "Bundle", "entry": [{"resource": v.clone()}, v]}).to_string();
        read_json::<()>(text.as_bytes(), Arc::from(Path::new("b.json")), &mut |_| Ok(())).unwrap();
    }

    #[test]
    fn readers_of_resources_never_panic(r in resource()) {
        let _ = map::patient(&r);
        let _ = map::coverage(&r);
        let _ = map::prescription(&r);
        let _ = map::fill(&r);
        let _ = map::allergy(&r);
        let _ = map::patient_view(&r);
        let _ = map::coverage_view(&r);
        let _ = map::prescription_view(&r);
        let _ = map::fill_view(&r);
        let _ = map::allergy_view(&r);
    }

    #[test]
    fn split_then_merge_is_lossless(r in resource()) {
        for kind in RecordKind::ALL {
            let mut expected = r.clone();
            expected.insert("resourceType".into(), kind.fhir_type().into());
            check_split(kind, &expected)?;
        }
    }

    #[test]
    fn fhir_shapes_split_and_merge_losslessly(seed in any::<u64>(), subset in any::<u8>()) {
        for kind in RecordKind::ALL {
            let shape = shapes::generate(kind.fhir_type(), seed);
            check_split(kind, &shape.resource)?;
            // Any subset of the parts merges into the view of those
            // categories; sending that view back as an update by a writer
            // of those categories changes nothing.
            let set: CategorySet = FieldCategory::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .map(|(_, c)| c)
                .collect();
            let view = split::view(kind, &shape.resource, set);
            let back = split::overlay(kind, shape.resource.clone(), view, set);
            prop_assert_eq!(back.as_ref(), Ok(&shape.resource), "{}", Value::Object(shape.resource.clone()));
        }
    }
}

/// Split, the parts through their bytes, merge (as values and as JSON
/// text): the resource comes back exactly, one part per category.
fn check_split(kind: RecordKind, expected: &Resource) -> Result<(), TestCaseError> {
    let parts = split::split(kind, expected.clone());
    let mut cats: Vec<_> = parts.iter().map(|(c, _)| *c).collect();
    cats.dedup();
    prop_assert_eq!(cats.len(), parts.len(), "one part per category");
    let bytes: Vec<Vec<u8>> = parts.iter().map(|(_, p)| p.to_bytes()).collect();
    for ((_, p), b) in parts.iter().zip(&bytes) {
        prop_assert_eq!(&split::Part::from_bytes(b).unwrap(), p);
    }
    let merged = split::merge(kind, parts.into_iter().map(|(_, p)| p));
    prop_assert_eq!(merged.as_ref(), Ok(expected));
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let text = split::merge_json(kind, &refs).unwrap().text;
    prop_assert_eq!(
        serde_json::from_slice::<Value>(&text).unwrap(),
        Value::Object(expected.clone())
    );
    Ok(())
}

#[test]
fn every_synthea_sample_resource_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut n = 0;
    for set in ["synthea-10", "synthea-100"] {
        for ty in ["Patient", "MedicationRequest", "AllergyIntolerance"] {
            let Ok(text) = std::fs::read_to_string(root.join(set).join(format!("{ty}.ndjson")))
            else {
                continue; // synthea-100 has no MedicationRequest file
            };
            for line in text.lines() {
                let r: Resource = serde_json::from_str(line).unwrap();
                let ok = match ty {
                    "Patient" => map::patient(&r).map(drop),
                    "MedicationRequest" => map::prescription(&r).map(drop),
                    _ => map::allergy(&r).map(drop),
                };
                ok.unwrap_or_else(|e| panic!("{set}/{ty}: {e}"));
                n += 1;
            }
        }
    }
    assert_eq!(n, 13 + 1745 + 11 + 120 + 75);
}
