//! Typed views read out of FHIR resources, and resources built from them.
//!
//! Reading checks what the vault needs of each resource (FHIR R4's required
//! elements, plus a patient link for every non-`Patient` record) and the
//! types of the elements it reads; elements it does not read are never
//! checked and never lost. A resource read from a partial decryption simply
//! yields empty fields for what was hidden: use the `*_view` functions for
//! that, which never fail on a missing element.

use crate::conventions as cv;
use crate::{FieldError, Resource};
use rxvault_model::{
    Address, Allergy, Coverage, Deceased, Fill, HumanName, Identifier, MedicationEntry, Patient,
    Prescription, RecordKind, ShipTo, Telecom,
};
use serde_json::{Map, Value, json};

type Result<T> = std::result::Result<T, FieldError>;

/// Checks a FHIR `id`: 1 to 64 characters of `A-Z a-z 0-9 - .`.
pub fn check_id(kind: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            format!("{kind}.id"),
            "not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)",
        ))
    }
}

/// The resource's `id`, checked.
pub fn resource_id<'a>(kind: &str, r: &'a Resource) -> Result<&'a str> {
    let id = req_str(r, kind, "id")?;
    check_id(kind, id)?;
    Ok(id)
}

/// The id of the resource a reference points to, if it is of type `target`:
/// `Patient/123`, `Patient/123/_history/2`, `https://host/fhir/Patient/123`,
/// or `urn:uuid:...` (Bundles: Synthea and most exporters use the resource's
/// id as the UUID).
pub fn reference_id(reference: &str, target: &str) -> Option<String> {
    if let Some(uuid) = reference.strip_prefix("urn:uuid:") {
        return Some(uuid.to_string());
    }
    let path = reference.split("/_history/").next()?;
    let mut parts = path.rsplit('/');
    let id = parts.next()?;
    let ty = parts.next()?;
    (ty == target && !id.is_empty()).then(|| id.to_string())
}

/// The patient a record of `kind` belongs to (the id), or an error naming
/// the missing or malformed reference.
pub fn patient_of(kind: RecordKind, r: &Resource) -> Result<Option<String>> {
    let element = match kind {
        RecordKind::Patient => return Ok(None),
        RecordKind::Coverage => "beneficiary",
        RecordKind::Prescription | RecordKind::Fill => "subject",
        RecordKind::Allergy => "patient",
    };
    let ty = kind.fhir_type();
    let path = format!("{ty}.{element}");
    let reference = obj(r, ty, element)?
        .ok_or_else(|| FieldError::new(&path, "required: the patient this record belongs to"))?;
    let text = str_at(reference, &path, "reference")?
        .ok_or_else(|| FieldError::new(format!("{path}.reference"), "required"))?;
    reference_id(text, "Patient")
        .map(Some)
        .ok_or_else(|| FieldError::new(format!("{path}.reference"), "not a reference to a Patient"))
}

// ---------------------------------------------------------------- reading --

/// Reads and checks a `Patient`.
pub fn patient(r: &Resource) -> Result<Patient> {
    let id = resource_id("Patient", r)?.to_string();
    let mut p = patient_view(r)?;
    if let Some(b) = &p.birth_date {
        check_date("Patient.birthDate", b)?;
    }
    if let Some(Deceased::At(at)) = &p.deceased {
        check_date("Patient.deceasedDateTime", at)?;
    }
    if let Some(g) = &p.gender
        && !matches!(g.as_str(), "male" | "female" | "other" | "unknown")
    {
        return Err(FieldError::new(
            "Patient.gender",
            "must be male, female, other or unknown",
        ));
    }
    p.id = id;
    Ok(p)
}

/// A `Patient` view without the required-field checks (for partial
/// decryptions). Wrongly typed elements are still errors.
pub fn patient_view(r: &Resource) -> Result<Patient> {
    let t = "Patient";
    let names = arr(r, t, "name")?
        .iter()
        .enumerate()
        .map(|(i, n)| human_name(n, &format!("{t}.name[{i}]")))
        .collect::<Result<_>>()?;
    let addresses = arr(r, t, "address")?
        .iter()
        .enumerate()
        .map(|(i, a)| address(a, &format!("{t}.address[{i}]")))
        .collect::<Result<_>>()?;
    let telecoms = arr(r, t, "telecom")?
        .iter()
        .enumerate()
        .filter_map(|(i, v)| telecom(v, &format!("{t}.telecom[{i}]")).transpose())
        .collect::<Result<_>>()?;
    let deceased = match (r.get("deceasedBoolean"), r.get("deceasedDateTime")) {
        (Some(Value::Bool(b)), _) => Some(Deceased::Flag(*b)),
        (_, Some(Value::String(s))) => Some(Deceased::At(s.clone())),
        (Some(_), _) => {
            return Err(FieldError::new(
                "Patient.deceasedBoolean",
                "must be a boolean",
            ));
        }
        (_, Some(_)) => {
            return Err(FieldError::new(
                "Patient.deceasedDateTime",
                "must be a string",
            ));
        }
        (None, None) => None,
    };
    let mut languages = Vec::new();
    for (i, c) in arr(r, t, "communication")?.iter().enumerate() {
        let path = format!("{t}.communication[{i}]");
        let Some(lang) = obj_at(c, &path, "language")? else {
            continue;
        };
        let code = first_code(lang, &format!("{path}.language"))?;
        let preferred = c.get("preferred").and_then(Value::as_bool).unwrap_or(false);
        if let Some(code) = code {
            if preferred {
                languages.insert(0, code);
            } else {
                languages.push(code);
            }
        }
    }
    Ok(Patient {
        id: opt_str(r, t, "id")?.unwrap_or_default().to_string(),
        names,
        addresses,
        telecoms,
        birth_date: opt_str(r, t, "birthDate")?.map(str::to_string),
        gender: opt_str(r, t, "gender")?.map(str::to_string),
        deceased,
        languages,
        identifiers: identifiers(r, t)?,
    })
}

/// Reads and checks a `Coverage`.
pub fn coverage(r: &Resource) -> Result<Coverage> {
    let t = "Coverage";
    let id = resource_id(t, r)?.to_string();
    req_str(r, t, "status")?;
    if arr(r, t, "payor")?.is_empty() {
        return Err(FieldError::new(
            "Coverage.payor",
            "required (at least one payer)",
        ));
    }
    let patient_id = patient_of(RecordKind::Coverage, r)?.unwrap_or_default();
    Ok(Coverage {
        id,
        patient_id,
        ..coverage_view(r)?
    })
}

/// A `Coverage` view without the required-field checks.
pub fn coverage_view(r: &Resource) -> Result<Coverage> {
    let t = "Coverage";
    let payer = match arr(r, t, "payor")?.first() {
        Some(p) => str_at(p, "Coverage.payor[0]", "display")?.map(str::to_string),
        None => None,
    };
    let member_id = identifiers(r, t)?
        .into_iter()
        .find(|i| i.type_code.as_deref() == Some(cv::MEMBER_ID_TYPE))
        .map(|i| i.value)
        .or(opt_str(r, t, "subscriberId")?.map(str::to_string));
    let mut plan_name = None;
    let mut group = None;
    for (i, c) in arr(r, t, "class")?.iter().enumerate() {
        let path = format!("{t}.class[{i}]");
        let ty = match obj_at(c, &path, "type")? {
            Some(ty) => first_code(ty, &format!("{path}.type"))?,
            None => None,
        };
        let value = str_at(c, &path, "name")?
            .or(str_at(c, &path, "value")?)
            .map(str::to_string);
        match ty.as_deref() {
            Some("plan") => plan_name = plan_name.or(value),
            Some("group") => group = group.or(str_at(c, &path, "value")?.map(str::to_string)),
            _ => {}
        }
    }
    let relationship = match obj(r, t, "relationship")? {
        Some(rel) => first_code(rel, "Coverage.relationship")?,
        None => None,
    };
    Ok(Coverage {
        id: opt_str(r, t, "id")?.unwrap_or_default().to_string(),
        patient_id: patient_of(RecordKind::Coverage, r)
            .ok()
            .flatten()
            .unwrap_or_default(),
        status: opt_str(r, t, "status")?.map(str::to_string),
        payer,
        plan_name,
        member_id,
        group,
        relationship,
    })
}

/// Reads and checks a `MedicationRequest`.
pub fn prescription(r: &Resource) -> Result<Prescription> {
    let t = "MedicationRequest";
    resource_id(t, r)?;
    req_str(r, t, "status")?;
    req_str(r, t, "intent")?;
    require_medication(r, t)?;
    let patient_id = patient_of(RecordKind::Prescription, r)?.unwrap_or_default();
    let mut rx = prescription_view(r)?;
    if let Some(w) = &rx.written {
        check_date("MedicationRequest.authoredOn", w)?;
    }
    rx.patient_id = patient_id;
    Ok(rx)
}

/// A `MedicationRequest` view without the required-field checks.
pub fn prescription_view(r: &Resource) -> Result<Prescription> {
    let t = "MedicationRequest";
    let id = opt_str(r, t, "id")?.unwrap_or_default().to_string();
    let sig = match arr(r, t, "dosageInstruction")?.first() {
        Some(d) => str_at(d, "MedicationRequest.dosageInstruction[0]", "text")?.map(str::to_string),
        None => None,
    };
    let (mut quantity, mut refills) = (None, None);
    if let Some(dr) = obj(r, t, "dispenseRequest")? {
        let path = "MedicationRequest.dispenseRequest";
        if let Some(q) = obj_at(dr, path, "quantity")? {
            quantity = num_at(q, &format!("{path}.quantity"), "value")?;
        }
        refills =
            match dr.get("numberOfRepeatsAllowed") {
                None => None,
                Some(v) => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                    || {
                        FieldError::new(
                            format!("{path}.numberOfRepeatsAllowed"),
                            "must be a non-negative integer",
                        )
                    },
                )?),
            };
    }
    let prescriber = match obj(r, t, "requester")? {
        Some(req) => str_at(req, "MedicationRequest.requester", "display")?.map(str::to_string),
        None => None,
    };
    Ok(Prescription {
        rx_number: business_id(r, t, cv::RX_NUMBER_SYSTEM)?.unwrap_or_else(|| id.clone()),
        id,
        patient_id: patient_of(RecordKind::Prescription, r)
            .ok()
            .flatten()
            .unwrap_or_default(),
        prescriber,
        medication: medication(r, t)?,
        sig,
        quantity,
        refills,
        written: opt_str(r, t, "authoredOn")?.map(str::to_string),
        status: opt_str(r, t, "status")?.unwrap_or_default().to_string(),
    })
}

/// Reads and checks a `MedicationDispense`.
pub fn fill(r: &Resource) -> Result<Fill> {
    let t = "MedicationDispense";
    resource_id(t, r)?;
    req_str(r, t, "status")?;
    require_medication(r, t)?;
    let patient_id = patient_of(RecordKind::Fill, r)?.unwrap_or_default();
    let f = fill_view(r)?;
    for element in ["whenPrepared", "whenHandedOver"] {
        if let Some(d) = opt_str(r, t, element)? {
            check_date(&format!("{t}.{element}"), d)?;
        }
    }
    Ok(Fill { patient_id, ..f })
}

/// A `MedicationDispense` view without the required-field checks.
pub fn fill_view(r: &Resource) -> Result<Fill> {
    let t = "MedicationDispense";
    let id = opt_str(r, t, "id")?.unwrap_or_default().to_string();
    let prescription_id = match arr(r, t, "authorizingPrescription")?.first() {
        Some(a) => str_at(
            a,
            "MedicationDispense.authorizingPrescription[0]",
            "reference",
        )?
        .and_then(|s| reference_id(s, "MedicationRequest")),
        None => None,
    };
    let quantity = match obj(r, t, "quantity")? {
        Some(q) => num_at(q, "MedicationDispense.quantity", "value")?,
        None => None,
    };
    let mut ship_to = None;
    let destination = match obj(r, t, "destination")? {
        Some(d) => str_at(d, "MedicationDispense.destination", "reference")?,
        None => None,
    };
    let external = destination
        .filter(|d| !d.starts_with('#'))
        .map(str::to_string);
    if let Some(local) = destination.and_then(|d| d.strip_prefix('#')) {
        for (i, c) in arr(r, t, "contained")?.iter().enumerate() {
            let path = format!("{t}.contained[{i}]");
            if str_at(c, &path, "id")? == Some(local) {
                ship_to = Some(ShipTo {
                    name: str_at(c, &path, "name")?.map(str::to_string),
                    address: match c.get("address") {
                        Some(a) => address(a, &format!("{path}.address"))?,
                        None => Address::default(),
                    },
                });
            }
        }
    }
    let (mut carrier, mut tracking_number) = (None, None);
    for (i, e) in arr(r, t, "extension")?.iter().enumerate() {
        let path = format!("{t}.extension[{i}]");
        match str_at(e, &path, "url")? {
            Some(cv::CARRIER_EXTENSION) => {
                carrier = str_at(e, &path, "valueString")?.map(str::to_string)
            }
            Some(cv::TRACKING_EXTENSION) => {
                tracking_number = str_at(e, &path, "valueString")?.map(str::to_string)
            }
            _ => {}
        }
    }
    Ok(Fill {
        transaction_id: business_id(r, t, cv::TRANSACTION_ID_SYSTEM)?.unwrap_or_else(|| id.clone()),
        id,
        patient_id: patient_of(RecordKind::Fill, r)
            .ok()
            .flatten()
            .unwrap_or_default(),
        prescription_id,
        medication: medication(r, t)?,
        fill_date: opt_str(r, t, "whenPrepared")?
            .or(opt_str(r, t, "whenHandedOver")?)
            .map(str::to_string),
        quantity,
        destination: if ship_to.is_some() { None } else { external },
        ship_to,
        carrier,
        tracking_number,
        status: opt_str(r, t, "status")?.unwrap_or_default().to_string(),
    })
}

/// Reads and checks an `AllergyIntolerance`.
pub fn allergy(r: &Resource) -> Result<Allergy> {
    let t = "AllergyIntolerance";
    let id = resource_id(t, r)?.to_string();
    let patient_id = patient_of(RecordKind::Allergy, r)?.unwrap_or_default();
    Ok(Allergy {
        id,
        patient_id,
        ..allergy_view(r)?
    })
}

/// An `AllergyIntolerance` view without the required-field checks.
pub fn allergy_view(r: &Resource) -> Result<Allergy> {
    let t = "AllergyIntolerance";
    let substance = match obj(r, t, "code")? {
        Some(code) => concept_text(code, "AllergyIntolerance.code")?,
        None => None,
    };
    let clinical_status = match obj(r, t, "clinicalStatus")? {
        Some(s) => first_code(s, "AllergyIntolerance.clinicalStatus")?,
        None => None,
    };
    Ok(Allergy {
        id: opt_str(r, t, "id")?.unwrap_or_default().to_string(),
        patient_id: patient_of(RecordKind::Allergy, r)
            .ok()
            .flatten()
            .unwrap_or_default(),
        substance,
        criticality: opt_str(r, t, "criticality")?.map(str::to_string),
        clinical_status,
    })
}

/// Checks a FHIR `date` or `dateTime`: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or
/// a full date followed by `Thh:mm:ss[.fraction]` and a zone (`Z` or
/// `±hh:mm`), with real months, days, hours, minutes and seconds.
pub fn check_date(path: &str, value: &str) -> Result<()> {
    if date_ok(value) {
        Ok(())
    } else {
        Err(FieldError::new(
            path,
            format!("not a FHIR date: {:?}", Redacted(value)),
        ))
    }
}

fn date_ok(value: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let in_range =
        |s: &str, lo: u32, hi: u32| s.parse::<u32>().is_ok_and(|v| (lo..=hi).contains(&v));
    let (date, time) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let date_ok = match parts.as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && digits(m, 2) && in_range(m, 1, 12),
        [y, m, d] => {
            digits(y, 4)
                && digits(m, 2)
                && digits(d, 2)
                && rxvault_model::normalize::day(date).is_some()
        }
        _ => false,
    };
    let Some(time) = time else { return date_ok };
    if !date_ok || parts.len() != 3 {
        return false;
    }
    // hh:mm:ss[.fff](Z|+hh:mm|-hh:mm)
    let (clock, zone) = match time.find(['Z', '+', '-']) {
        Some(i) => time.split_at(i),
        None => return false,
    };
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && zone.as_bytes()[3] == b':'
            && digits(&zone[1..3], 2)
            && in_range(&zone[1..3], 0, 14)
            && digits(&zone[4..6], 2)
            && in_range(&zone[4..6], 0, 59));
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (clock, None),
    };
    let hms: Vec<&str> = hms.split(':').collect();
    let clock_ok = matches!(hms.as_slice(), [h, m, s]
        if digits(h, 2) && in_range(h, 0, 23) && digits(m, 2) && in_range(m, 0, 59) && digits(s, 2) && in_range(s, 0, 60))
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    zone_ok && clock_ok
}

/// Shows only the shape of a value in error messages: errors are logged, and
/// a value may be PHI.
struct Redacted<'a>(&'a str);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape: String = self
            .0
            .chars()
            .take(40)
            .map(|c| match c {
                '0'..='9' => '9',
                c if c.is_alphabetic() => 'x',
                c => c,
            })
            .collect();
        write!(f, "{shape}")
    }
}

// --------------------------------------------------------------- building --

/// Builds a `Patient` resource from the model.
pub fn patient_to_fhir(p: &Patient) -> Resource {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Patient"));
    r.insert("id".into(), json!(p.id));
    put_array(
        &mut r,
        "identifier",
        p.identifiers.iter().map(identifier_to_fhir),
    );
    put_array(&mut r, "name", p.names.iter().map(name_to_fhir));
    put_array(&mut r, "telecom", p.telecoms.iter().map(telecom_to_fhir));
    put_opt(&mut r, "gender", p.gender.as_deref());
    put_opt(&mut r, "birthDate", p.birth_date.as_deref());
    match &p.deceased {
        Some(Deceased::Flag(b)) => {
            r.insert("deceasedBoolean".into(), json!(b));
        }
        Some(Deceased::At(at)) => {
            r.insert("deceasedDateTime".into(), json!(at));
        }
        None => {}
    }
    put_array(&mut r, "address", p.addresses.iter().map(address_to_fhir));
    put_array(
        &mut r,
        "communication",
        p.languages.iter().enumerate().map(|(i, code)| {
            let mut c =
                json!({"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": code}]}});
            if i == 0 {
                c["preferred"] = json!(true);
            }
            c
        }),
    );
    r
}

/// Builds a `Coverage` resource from the model.
pub fn coverage_to_fhir(c: &Coverage) -> Resource {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Coverage"));
    r.insert("id".into(), json!(c.id));
    if let Some(m) = &c.member_id {
        r.insert(
            "identifier".into(),
            json!([{"type": {"coding": [{"system": cv::V2_0203, "code": cv::MEMBER_ID_TYPE}]}, "value": m}]),
        );
        r.insert("subscriberId".into(), json!(m));
    }
    put_opt(&mut r, "status", c.status.as_deref());
    r.insert(
        "beneficiary".into(),
        json!({"reference": format!("Patient/{}", c.patient_id)}),
    );
    if let Some(rel) = &c.relationship {
        r.insert(
            "relationship".into(),
            json!({"coding": [{"system": cv::SUBSCRIBER_RELATIONSHIP_SYSTEM, "code": rel}]}),
        );
    }
    if let Some(p) = &c.payer {
        r.insert("payor".into(), json!([{ "display": p }]));
    }
    let mut classes = Vec::new();
    if let Some(g) = &c.group {
        classes.push(json!({"type": {"coding": [{"system": cv::COVERAGE_CLASS_SYSTEM, "code": "group"}]}, "value": g}));
    }
    if let Some(p) = &c.plan_name {
        classes.push(json!({"type": {"coding": [{"system": cv::COVERAGE_CLASS_SYSTEM, "code": "plan"}]}, "value": p, "name": p}));
    }
    put_array(&mut r, "class", classes.into_iter());
    r
}

/// Builds a `MedicationRequest` resource from the model.
pub fn prescription_to_fhir(p: &Prescription) -> Resource {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("MedicationRequest"));
    r.insert("id".into(), json!(p.id));
    r.insert(
        "identifier".into(),
        json!([{"system": cv::RX_NUMBER_SYSTEM, "value": p.rx_number}]),
    );
    r.insert("status".into(), json!(p.status));
    r.insert("intent".into(), json!("order"));
    r.insert(
        "medicationCodeableConcept".into(),
        medication_to_fhir(&p.medication),
    );
    r.insert(
        "subject".into(),
        json!({"reference": format!("Patient/{}", p.patient_id)}),
    );
    put_opt(&mut r, "authoredOn", p.written.as_deref());
    if let Some(pr) = &p.prescriber {
        r.insert("requester".into(), json!({"display": pr}));
    }
    if let Some(sig) = &p.sig {
        r.insert("dosageInstruction".into(), json!([{"text": sig}]));
    }
    let mut dr = Map::new();
    if let Some(q) = p.quantity {
        dr.insert("quantity".into(), json!({"value": q}));
    }
    if let Some(n) = p.refills {
        dr.insert("numberOfRepeatsAllowed".into(), json!(n));
    }
    if !dr.is_empty() {
        r.insert("dispenseRequest".into(), Value::Object(dr));
    }
    r
}

/// Builds a `MedicationDispense` resource from the model.
pub fn fill_to_fhir(f: &Fill) -> Resource {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("MedicationDispense"));
    r.insert("id".into(), json!(f.id));
    if let Some(ship) = &f.ship_to {
        let mut loc = Map::new();
        loc.insert("resourceType".into(), json!("Location"));
        loc.insert("id".into(), json!(cv::SHIP_TO_CONTAINED_ID));
        put_opt(&mut loc, "name", ship.name.as_deref());
        loc.insert("address".into(), address_to_fhir(&ship.address));
        r.insert("contained".into(), json!([loc]));
    }
    let mut ext = Vec::new();
    if let Some(c) = &f.carrier {
        ext.push(json!({"url": cv::CARRIER_EXTENSION, "valueString": c}));
    }
    if let Some(t) = &f.tracking_number {
        ext.push(json!({"url": cv::TRACKING_EXTENSION, "valueString": t}));
    }
    put_array(&mut r, "extension", ext.into_iter());
    r.insert(
        "identifier".into(),
        json!([{"system": cv::TRANSACTION_ID_SYSTEM, "value": f.transaction_id}]),
    );
    r.insert("status".into(), json!(f.status));
    r.insert(
        "medicationCodeableConcept".into(),
        medication_to_fhir(&f.medication),
    );
    r.insert(
        "subject".into(),
        json!({"reference": format!("Patient/{}", f.patient_id)}),
    );
    if let Some(rx) = &f.prescription_id {
        r.insert(
            "authorizingPrescription".into(),
            json!([{"reference": format!("MedicationRequest/{rx}")}]),
        );
    }
    if let Some(q) = f.quantity {
        r.insert("quantity".into(), json!({"value": q}));
    }
    put_opt(&mut r, "whenPrepared", f.fill_date.as_deref());
    if f.ship_to.is_some() {
        r.insert(
            "destination".into(),
            json!({"reference": format!("#{}", cv::SHIP_TO_CONTAINED_ID)}),
        );
    }
    r
}

/// Builds an `AllergyIntolerance` resource from the model.
pub fn allergy_to_fhir(a: &Allergy) -> Resource {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("AllergyIntolerance"));
    r.insert("id".into(), json!(a.id));
    if let Some(s) = &a.clinical_status {
        r.insert(
            "clinicalStatus".into(),
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": s}]}),
        );
    }
    put_opt(&mut r, "criticality", a.criticality.as_deref());
    if let Some(s) = &a.substance {
        r.insert("code".into(), json!({"text": s}));
    }
    r.insert(
        "patient".into(),
        json!({"reference": format!("Patient/{}", a.patient_id)}),
    );
    r
}

fn name_to_fhir(n: &HumanName) -> Value {
    let mut m = Map::new();
    put_opt(&mut m, "use", n.use_.as_deref());
    put_opt(&mut m, "family", n.family.as_deref());
    put_array(&mut m, "given", n.given.iter().map(|g| json!(g)));
    put_array(&mut m, "prefix", n.prefix.iter().map(|g| json!(g)));
    put_array(&mut m, "suffix", n.suffix.iter().map(|g| json!(g)));
    Value::Object(m)
}

fn address_to_fhir(a: &Address) -> Value {
    let mut m = Map::new();
    put_opt(&mut m, "use", a.use_.as_deref());
    put_array(&mut m, "line", a.lines.iter().map(|l| json!(l)));
    put_opt(&mut m, "city", a.city.as_deref());
    put_opt(&mut m, "state", a.state.as_deref());
    put_opt(&mut m, "postalCode", a.postal_code.as_deref());
    put_opt(&mut m, "country", a.country.as_deref());
    Value::Object(m)
}

fn telecom_to_fhir(t: &Telecom) -> Value {
    let mut m = Map::new();
    put_opt(&mut m, "system", t.system.as_deref());
    m.insert("value".into(), json!(t.value));
    put_opt(&mut m, "use", t.use_.as_deref());
    Value::Object(m)
}

fn identifier_to_fhir(i: &Identifier) -> Value {
    let mut m = Map::new();
    if let Some(code) = &i.type_code {
        m.insert(
            "type".into(),
            json!({"coding": [{"system": cv::V2_0203, "code": code}]}),
        );
    }
    put_opt(&mut m, "system", i.system.as_deref());
    m.insert("value".into(), json!(i.value));
    Value::Object(m)
}

fn medication_to_fhir(m: &MedicationEntry) -> Value {
    let mut v = Map::new();
    if let Some(code) = &m.rxnorm {
        let mut coding = json!({"system": cv::RXNORM_SYSTEM, "code": code});
        if let Some(t) = &m.text {
            coding["display"] = json!(t);
        }
        v.insert("coding".into(), json!([coding]));
    }
    put_opt(&mut v, "text", m.text.as_deref());
    Value::Object(v)
}

fn put_opt(m: &mut Resource, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        m.insert(key.into(), json!(v));
    }
}

fn put_array(m: &mut Resource, key: &str, values: impl Iterator<Item = Value>) {
    let values: Vec<Value> = values.collect();
    if !values.is_empty() {
        m.insert(key.into(), Value::Array(values));
    }
}

// ---------------------------------------------------- element access ------

fn type_error(path: String, expected: &str) -> FieldError {
    FieldError::new(path, format!("must be {expected}"))
}

fn opt_str<'a>(r: &'a Resource, ty: &str, key: &str) -> Result<Option<&'a str>> {
    match r.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_error(format!("{ty}.{key}"), "a string")),
    }
}

fn req_str<'a>(r: &'a Resource, ty: &str, key: &str) -> Result<&'a str> {
    match opt_str(r, ty, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(FieldError::new(format!("{ty}.{key}"), "required")),
    }
}

fn arr<'a>(r: &'a Resource, ty: &str, key: &str) -> Result<&'a [Value]> {
    match r.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(type_error(format!("{ty}.{key}"), "an array")),
    }
}

fn obj<'a>(r: &'a Resource, ty: &str, key: &str) -> Result<Option<&'a Value>> {
    match r.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o)),
        Some(_) => Err(type_error(format!("{ty}.{key}"), "an object")),
    }
}

fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Resource> {
    v.as_object()
        .ok_or_else(|| type_error(path.to_string(), "an object"))
}

fn str_at<'a>(v: &'a Value, path: &str, key: &str) -> Result<Option<&'a str>> {
    opt_str(as_obj(v, path)?, path, key)
}

fn obj_at<'a>(v: &'a Value, path: &str, key: &str) -> Result<Option<&'a Value>> {
    let o = as_obj(v, path)?;
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x @ Value::Object(_)) => Ok(Some(x)),
        Some(_) => Err(type_error(format!("{path}.{key}"), "an object")),
    }
}

fn num_at(v: &Value, path: &str, key: &str) -> Result<Option<f64>> {
    match as_obj(v, path)?.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(type_error(format!("{path}.{key}"), "a number")),
    }
}

fn strings_at(v: &Value, path: &str, key: &str) -> Result<Vec<String>> {
    match as_obj(v, path)?.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| type_error(format!("{path}.{key}[{i}]"), "a string"))
            })
            .collect(),
        Some(_) => Err(type_error(format!("{path}.{key}"), "an array of strings")),
    }
}

fn human_name(v: &Value, path: &str) -> Result<HumanName> {
    Ok(HumanName {
        use_: str_at(v, path, "use")?.map(str::to_string),
        family: str_at(v, path, "family")?.map(str::to_string),
        given: strings_at(v, path, "given")?,
        prefix: strings_at(v, path, "prefix")?,
        suffix: strings_at(v, path, "suffix")?,
    })
}

fn address(v: &Value, path: &str) -> Result<Address> {
    Ok(Address {
        use_: str_at(v, path, "use")?.map(str::to_string),
        lines: strings_at(v, path, "line")?,
        city: str_at(v, path, "city")?.map(str::to_string),
        state: str_at(v, path, "state")?.map(str::to_string),
        postal_code: str_at(v, path, "postalCode")?.map(str::to_string),
        country: str_at(v, path, "country")?.map(str::to_string),
    })
}

fn telecom(v: &Value, path: &str) -> Result<Option<Telecom>> {
    let Some(value) = str_at(v, path, "value")? else {
        return Ok(None);
    };
    Ok(Some(Telecom {
        system: str_at(v, path, "system")?.map(str::to_string),
        value: value.to_string(),
        use_: str_at(v, path, "use")?.map(str::to_string),
    }))
}

fn identifiers(r: &Resource, ty: &str) -> Result<Vec<Identifier>> {
    arr(r, ty, "identifier")?
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let path = format!("{ty}.identifier[{i}]");
            let value = match str_at(v, &path, "value") {
                Ok(Some(value)) => value.to_string(),
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let type_code = match obj_at(v, &path, "type") {
                Ok(Some(t)) => first_code(t, &format!("{path}.type")),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let system = str_at(v, &path, "system");
            Some(type_code.and_then(|type_code| {
                Ok(Identifier {
                    system: system?.map(str::to_string),
                    type_code,
                    value,
                })
            }))
        })
        .collect()
}

/// A business identifier: the one in `system`, else the first one.
fn business_id(r: &Resource, ty: &str, system: &str) -> Result<Option<String>> {
    let ids = identifiers(r, ty)?;
    Ok(ids
        .iter()
        .find(|i| i.system.as_deref() == Some(system))
        .or(ids.first())
        .map(|i| i.value.clone()))
}

/// The first coding's code of a CodeableConcept.
fn first_code(concept: &Value, path: &str) -> Result<Option<String>> {
    let o = as_obj(concept, path)?;
    match o.get("coding") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(c)) => match c.first() {
            Some(coding) => {
                Ok(str_at(coding, &format!("{path}.coding[0]"), "code")?.map(str::to_string))
            }
            None => Ok(None),
        },
        Some(_) => Err(type_error(format!("{path}.coding"), "an array")),
    }
}

/// A CodeableConcept's text, else its first coding's display.
fn concept_text(concept: &Value, path: &str) -> Result<Option<String>> {
    if let Some(t) = str_at(concept, path, "text")? {
        return Ok(Some(t.to_string()));
    }
    match concept.get("coding") {
        Some(Value::Array(c)) => match c.first() {
            Some(coding) => {
                Ok(str_at(coding, &format!("{path}.coding[0]"), "display")?.map(str::to_string))
            }
            None => Ok(None),
        },
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(type_error(format!("{path}.coding"), "an array")),
    }
}

fn require_medication(r: &Resource, ty: &str) -> Result<()> {
    if r.contains_key("medicationCodeableConcept") || r.contains_key("medicationReference") {
        Ok(())
    } else {
        Err(FieldError::new(format!("{ty}.medication[x]"), "required"))
    }
}

fn medication(r: &Resource, ty: &str) -> Result<MedicationEntry> {
    let path = format!("{ty}.medicationCodeableConcept");
    if let Some(cc) = obj(r, ty, "medicationCodeableConcept")? {
        let mut rxnorm = None;
        if let Some(Value::Array(codings)) = cc.get("coding") {
            for (i, c) in codings.iter().enumerate() {
                let cpath = format!("{path}.coding[{i}]");
                if str_at(c, &cpath, "system")? == Some(cv::RXNORM_SYSTEM) {
                    rxnorm = str_at(c, &cpath, "code")?.map(str::to_string);
                    break;
                }
            }
        }
        return Ok(MedicationEntry {
            rxnorm,
            text: concept_text(cc, &path)?,
        });
    }
    if let Some(mr) = obj(r, ty, "medicationReference")? {
        return Ok(MedicationEntry {
            rxnorm: None,
            text: str_at(mr, &format!("{ty}.medicationReference"), "display")?.map(str::to_string),
        });
    }
    Ok(MedicationEntry::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: Value) -> Resource {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn references() {
        assert_eq!(
            reference_id("Patient/abc", "Patient").as_deref(),
            Some("abc")
        );
        assert_eq!(
            reference_id("Patient/abc/_history/3", "Patient").as_deref(),
            Some("abc")
        );
        assert_eq!(
            reference_id("https://x.org/fhir/Patient/abc", "Patient").as_deref(),
            Some("abc")
        );
        assert_eq!(
            reference_id("urn:uuid:1234", "Patient").as_deref(),
            Some("1234")
        );
        assert_eq!(reference_id("Practitioner/abc", "Patient"), None);
        assert_eq!(reference_id("abc", "Patient"), None);
    }

    #[test]
    fn required_fields_are_named() {
        let err = prescription(&res(json!({"resourceType": "MedicationRequest", "id": "a", "status": "active", "intent": "order", "medicationCodeableConcept": {"text": "x"}}))).unwrap_err();
        assert_eq!(err.path, "MedicationRequest.subject");
        let err = prescription(&res(
            json!({"resourceType": "MedicationRequest", "id": "a", "intent": "order"}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "MedicationRequest.status");
        let err = patient(&res(
            json!({"resourceType": "Patient", "id": "a", "birthDate": "19-05-21"}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "Patient.birthDate");
        assert!(
            !err.message.contains("19-05-21"),
            "a value must not appear in an error"
        );
        let err = patient(&res(json!({"resourceType": "Patient", "id": "a b"}))).unwrap_err();
        assert_eq!(err.path, "Patient.id");
        let err = patient(&res(
            json!({"resourceType": "Patient", "id": "a", "name": {"family": "x"}}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "Patient.name");
    }

    #[test]
    fn dates() {
        for ok in [
            "1985",
            "1985-03",
            "1985-03-04",
            "1989-05-09T20:35:22-04:00",
            "2020-01-01T00:00:00Z",
            "2020-01-01T23:59:60.123+14:00",
        ] {
            assert!(check_date("d", ok).is_ok(), "{ok}");
        }
        for bad in [
            "85",
            "1985-3",
            "1985-13",
            "1985-02-30",
            "1985-03T10:00",
            "x",
            "",
            "2020-01-01Tgarbage",
            "2020-01-01T10:00Z",
            "2020-01-01T24:00:00Z",
            "2020-01-01T10:00:00",
            "2020-01-01T10:00:00+4:00",
            "2020-01-01T10:00:00.Z",
        ] {
            assert!(check_date("d", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn model_round_trips_through_fhir() {
        let p = Patient {
            id: "p1".into(),
            names: vec![HumanName {
                use_: Some("official".into()),
                family: Some("Peña".into()),
                given: vec!["Ana".into(), "María".into()],
                prefix: vec![],
                suffix: vec![],
            }],
            addresses: vec![Address {
                use_: None,
                lines: vec!["1 Main St".into()],
                city: Some("Austin".into()),
                state: Some("TX".into()),
                postal_code: Some("78701".into()),
                country: Some("US".into()),
            }],
            telecoms: vec![Telecom {
                system: Some("phone".into()),
                value: "512-555-0100".into(),
                use_: Some("home".into()),
            }],
            birth_date: Some("1970-01-02".into()),
            gender: Some("female".into()),
            deceased: Some(Deceased::Flag(false)),
            languages: vec!["es".into(), "en".into()],
            identifiers: vec![Identifier {
                system: Some("urn:mrn".into()),
                type_code: Some("MR".into()),
                value: "MRN1".into(),
            }],
        };
        assert_eq!(patient(&patient_to_fhir(&p)).unwrap(), p);

        let f = Fill {
            id: "f1".into(),
            transaction_id: "T-1".into(),
            patient_id: "p1".into(),
            prescription_id: Some("rx1".into()),
            medication: MedicationEntry {
                rxnorm: Some("314076".into()),
                text: Some("lisinopril 10 MG Oral Tablet".into()),
            },
            fill_date: Some("2020-09-27".into()),
            quantity: Some(30.0),
            ship_to: Some(ShipTo {
                name: Some("Ana Peña".into()),
                address: p.addresses[0].clone(),
            }),
            destination: None,
            carrier: Some("USPS".into()),
            tracking_number: Some("9400".into()),
            status: "completed".into(),
        };
        assert_eq!(fill(&fill_to_fhir(&f)).unwrap(), f);

        let c = Coverage {
            id: "c1".into(),
            patient_id: "p1".into(),
            status: Some("active".into()),
            payer: Some("Aetna".into()),
            plan_name: Some("Gold".into()),
            member_id: Some("M-1".into()),
            group: Some("G1".into()),
            relationship: Some("self".into()),
        };
        assert_eq!(coverage(&coverage_to_fhir(&c)).unwrap(), c);

        let rx = Prescription {
            id: "rx1".into(),
            patient_id: "p1".into(),
            rx_number: "RX1".into(),
            prescriber: Some("Dr. A".into()),
            medication: f.medication.clone(),
            sig: Some("1 tab daily".into()),
            quantity: Some(30.0),
            refills: Some(3),
            written: Some("2020-09-01".into()),
            status: "active".into(),
        };
        assert_eq!(prescription(&prescription_to_fhir(&rx)).unwrap(), rx);

        let a = Allergy {
            id: "a1".into(),
            patient_id: "p1".into(),
            substance: Some("Peanut".into()),
            criticality: Some("high".into()),
            clinical_status: Some("active".into()),
        };
        assert_eq!(allergy(&allergy_to_fhir(&a)).unwrap(), a);
    }
}
