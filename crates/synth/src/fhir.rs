//! FHIR resources from the generated records.
//!
//! Every resource is built by the `rxvault_fhir::map::*_to_fhir` builders
//! (so the vault reads back exactly what was generated); this module then
//! adds the realistic elements the model has no field for: US Core race,
//! ethnicity and birth sex and the marital status on `Patient`; the type,
//! period and subscriber of a `Coverage`; the course of therapy and
//! expected supply duration of a `MedicationRequest`; the fill type, days
//! supply and hand-over date of a `MedicationDispense`; the category, type,
//! verification status, reaction and recorded date of an
//! `AllergyIntolerance`. None of them is read by the `map` readers, all of
//! them are valid FHIR R4.

use crate::data::drugs::Course;
use crate::generate::{
    AllergyExtras, CoverageExtras, FillExtras, PatientExtras, RxExtras, fhir_date,
};
use rxvault_fhir::Resource;
use rxvault_fhir::map;
use rxvault_model::{Allergy, Coverage, Fill, Patient, Prescription};
use serde_json::{Value, json};
use std::io::Write as _;

const US_CORE: &str = "http://hl7.org/fhir/us/core/StructureDefinition";
const CDC_RACE: &str = "urn:oid:2.16.840.1.113883.6.238";
const UCUM: &str = "http://unitsofmeasure.org";

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// A `Patient`.
pub(crate) fn patient(p: &Patient, x: &PatientExtras) -> Resource {
    let mut r = map::patient_to_fhir(p);
    let mut ext = Vec::with_capacity(3);
    if !x.races.is_empty() {
        let mut parts: Vec<Value> = x
            .races
            .iter()
            .map(|(code, display)| json!({"url": "ombCategory", "valueCoding": coding(CDC_RACE, code, display)}))
            .collect();
        if let Some((code, display)) = x.race_detail {
            parts.push(json!({"url": "detailed", "valueCoding": coding(CDC_RACE, code, display)}));
        }
        let text = match (x.race_detail, x.races.as_slice()) {
            (Some((_, d)), _) => d.to_string(),
            (None, [(_, d)]) => d.to_string(),
            (None, _) => "Two or more races".to_string(),
        };
        parts.push(json!({"url": "text", "valueString": text}));
        ext.push(json!({"url": format!("{US_CORE}/us-core-race"), "extension": parts}));
    }
    if let Some((code, display)) = x.ethnicity {
        ext.push(
            json!({"url": format!("{US_CORE}/us-core-ethnicity"), "extension": [
                {"url": "ombCategory", "valueCoding": coding(CDC_RACE, code, display)},
                {"url": "text", "valueString": display},
            ]}),
        );
    }
    ext.push(json!({"url": format!("{US_CORE}/us-core-birthsex"), "valueCode": x.birth_sex}));
    r.insert("extension".into(), Value::Array(ext));
    if let Some((code, display)) = x.marital {
        r.insert(
            "maritalStatus".into(),
            json!({"coding": [coding("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", code, display)], "text": display}),
        );
    }
    r
}

/// A `Coverage`.
pub(crate) fn coverage(c: &Coverage, x: &CoverageExtras) -> Resource {
    let mut r = map::coverage_to_fhir(c);
    let (code, display) = x.line.sopt();
    r.insert(
        "type".into(),
        json!({"coding": [coding("https://nahdo.org/sopt", code, display)]}),
    );
    let mut period = json!({"start": fhir_date(x.start)});
    if let Some(end) = x.end {
        period["end"] = json!(fhir_date(end));
    }
    r.insert("period".into(), period);
    if let Some(s) = &x.subscriber {
        r.insert("subscriber".into(), json!({"display": s}));
    }
    r
}

/// A `MedicationRequest`.
pub(crate) fn prescription(p: &Prescription, x: &RxExtras) -> Resource {
    let mut r = map::prescription_to_fhir(p);
    let course = match x.course {
        Course::Chronic => ("continuous", "Continuous long term therapy"),
        Course::AsNeeded => ("continuous", "Continuous long term therapy"),
        Course::Acute => ("acute", "Short course (acute) therapy"),
    };
    r.insert(
        "courseOfTherapyType".into(),
        json!({"coding": [coding("http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", course.0, course.1)]}),
    );
    if let Some(Value::Object(dr)) = r.get_mut("dispenseRequest") {
        dr.insert(
            "expectedSupplyDuration".into(),
            json!({"value": x.days_supply, "unit": "days", "system": UCUM, "code": "d"}),
        );
    }
    r
}

/// A `MedicationDispense`.
pub(crate) fn fill(f: &Fill, x: &FillExtras) -> Resource {
    let mut r = map::fill_to_fhir(f);
    let (code, display) = if x.first {
        ("FF", "First Fill")
    } else {
        ("RF", "Refill")
    };
    r.insert("type".into(), json!({"coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", code, display)]}));
    r.insert(
        "daysSupply".into(),
        json!({"value": x.days_supply, "unit": "days", "system": UCUM, "code": "d"}),
    );
    if let Some(h) = x.handed_over {
        r.insert("whenHandedOver".into(), json!(fhir_date(h)));
    }
    r
}

/// An `AllergyIntolerance`.
pub(crate) fn allergy(a: &Allergy, x: &AllergyExtras) -> Resource {
    let mut r = map::allergy_to_fhir(a);
    r.insert(
        "verificationStatus".into(),
        json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": x.verification}]}),
    );
    r.insert("type".into(), json!(x.kind));
    r.insert("category".into(), json!([x.category]));
    r.insert("recordedDate".into(), json!(fhir_date(x.recorded)));
    r.insert(
        "reaction".into(),
        json!([{"manifestation": [{"text": x.reaction}], "severity": x.severity}]),
    );
    r
}

/// Writes a resource as one line of JSON (no trailing newline) in a fixed
/// key order: `resourceType`, `id`, then the other keys sorted, nested
/// objects sorted too. The bytes do not depend on the map's iteration order,
/// so they are the same whatever `serde_json` features the build enables.
pub(crate) fn write_json(out: &mut Vec<u8>, resource: &Resource) {
    out.push(b'{');
    let mut first = true;
    for key in ["resourceType", "id"] {
        if let Some(v) = resource.get(key) {
            write_member(out, &mut first, key, v);
        }
    }
    let rest = |(k, _): &(&String, &Value)| *k != "resourceType" && *k != "id";
    if resource.keys().is_sorted() {
        for (k, v) in resource.iter().filter(rest) {
            write_member(out, &mut first, k, v);
        }
    } else {
        let mut members: Vec<(&String, &Value)> = resource.iter().filter(rest).collect();
        members.sort_unstable_by_key(|(k, _)| *k);
        for (k, v) in members {
            write_member(out, &mut first, k, v);
        }
    }
    out.push(b'}');
}

fn write_member(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &Value) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    write_str(out, key);
    out.push(b':');
    write_value(out, value);
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // `Number`'s Display (itoa / ryu) is platform-independent.
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, x);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            let mut first = true;
            if o.keys().is_sorted() {
                for (k, v) in o {
                    write_member(out, &mut first, k, v);
                }
            } else {
                let mut members: Vec<(&String, &Value)> = o.iter().collect();
                members.sort_unstable_by_key(|(k, _)| *k);
                for (k, v) in members {
                    write_member(out, &mut first, k, v);
                }
            }
            out.push(b'}');
        }
    }
}

/// A JSON string literal: `"` and `\` escaped, control characters as
/// `\n`, `\t`, ... or `\u00XX`, everything else as UTF-8.
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_with_fixed_key_order() {
        let v = json!({
            "zeta": [1, 2.5, -3, true, null, {"b": "x", "a": "y"}],
            "id": "abc",
            "resourceType": "Patient",
            "alpha": "quote \" backslash \\ newline \n tab \t bell \u{7} é 漢",
        });
        let r = v.as_object().unwrap().clone();
        let mut out = Vec::new();
        write_json(&mut out, &r);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(r#"{"resourceType":"Patient","id":"abc","alpha":"#),
            "{text}"
        );
        assert!(text.contains(r#"{"a":"y","b":"x"}"#), "{text}");
        assert!(text.contains(r"\u0007"));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
