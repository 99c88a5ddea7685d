//! Resource readers and the category split: never a panic, and splitting
//! then merging gives the resource back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_fhir::{map, split};
use rxvault_model::RecordKind;

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(r)) = serde_json::from_slice(data) else { return };
    let _ = map::patient(&r);
    let _ = map::coverage(&r);
    let _ = map::prescription(&r);
    let _ = map::fill(&r);
    let _ = map::allergy(&r);
    let _ = map::patient_view(&r);
    let _ = map::fill_view(&r);
    for kind in RecordKind::ALL {
        let mut expected = r.clone();
        expected.insert("resourceType".into(), kind.fhir_type().into());
        let parts = split::split(kind, r.clone());
        let bytes: Vec<Vec<u8>> = parts.iter().map(|(_, p)| p.to_bytes()).collect();
        let merged = split::merge(kind, parts.into_iter().map(|(_, p)| p)).unwrap();
        assert_eq!(merged, expected);
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let text = split::merge_json(kind, &refs).unwrap().text;
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&text).unwrap(), serde_json::Value::Object(expected));
    }
});
