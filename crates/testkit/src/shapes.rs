//! Arbitrary valid FHIR R4 shapes of every resource type rxvault stores
//! (`Patient`, `Coverage`, `MedicationRequest`, `MedicationDispense`,
//! `AllergyIntolerance`), for property tests of the category split and of
//! masking.
//!
//! [`generate`] builds one resource from a seed (a property test draws the
//! seed): the elements the vault requires and reads, well typed, and at
//! random the rest of what FHIR allows and rxvault must keep losslessly:
//! contained resources (`Medication`, `Location`, `Patient`,
//! `Organization`, `Practitioner`, `PractitionerRole`, `RelatedPerson`,
//! `Coverage`, `Substance`) named or not by the resource's references;
//! references of every form (`Patient/…`, absolute and versioned,
//! `urn:uuid:`, conditional, logical with `type` and `identifier`, `#id`,
//! display only) to the patient, another patient, locations,
//! organizations, practitioners, medications, conditions, encounters,
//! plans; extensions (rxvault's carrier and tracking, US Core demographics,
//! unknown ones with strings, references, addresses and contact points,
//! nested); primitive extensions (`_birthDate`); nested backbone elements;
//! `telecom` and `address` in many places, including unknown elements;
//! decimals written with trailing zeros. Nothing here knows the field
//! categories: the tests that use it bring their own oracle.

use serde_json::{Map, Value, json};

/// The resource types generated, as FHIR names them.
pub const TYPES: [&str; 5] = [
    "Patient",
    "Coverage",
    "MedicationRequest",
    "MedicationDispense",
    "AllergyIntolerance",
];

/// A generated resource.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The resource (with `resourceType`).
    pub resource: Map<String, Value>,
    /// The id of the patient it belongs to (a `Patient`'s own id).
    pub patient: String,
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn word(&mut self) -> String {
        const SYLLABLES: [&str; 12] = [
            "ka", "lo", "mi", "ne", "ra", "to", "su", "vi", "an", "el", "or", "ju",
        ];
        let n = 2 + self.below(3);
        let mut w: String = (0..n).map(|_| *self.pick(&SYLLABLES)).collect();
        if let Some(first) = w.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        w
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn date(&mut self) -> String {
        format!(
            "{}-{:02}-{:02}",
            1940 + self.below(86),
            1 + self.below(12),
            1 + self.below(28)
        )
    }
}

/// A decimal written as text (`12.50`): kept as written by the vault.
fn decimal(text: &str) -> Value {
    serde_json::from_str(text).expect("a JSON number")
}

struct Gen {
    rng: Rng,
    resource_type: &'static str,
    patient: String,
    /// Contained resources: local id and type.
    contained: Vec<(String, &'static str)>,
}

/// Generates a resource of `resource_type` (one of [`TYPES`]) from `seed`.
pub fn generate(resource_type: &str, seed: u64) -> Shape {
    let (n, resource_type) = TYPES
        .iter()
        .enumerate()
        .find(|(_, t)| **t == resource_type)
        .expect("a stored resource type");
    // Each type draws its own sequence from the same seed.
    let mut rng = Rng(seed ^ (n as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f));
    let patient = format!("pt-{}", rng.digits(6));
    let mut g = Gen {
        rng,
        resource_type,
        patient,
        contained: Vec::new(),
    };
    let resource = g.resource();
    Shape {
        resource,
        patient: g.patient,
    }
}

impl Gen {
    fn resource(&mut self) -> Map<String, Value> {
        // Decide the contained resources first, so references can name them.
        let contained_types: &[&'static str] = &[
            "Medication",
            "Location",
            "Patient",
            "Organization",
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson",
            "Coverage",
            "Substance",
        ];
        if self.rng.chance(65) {
            for i in 0..1 + self.rng.below(4) {
                let t = *self.rng.pick(contained_types);
                let id = format!("{}{i}", t.to_ascii_lowercase().get(..3).unwrap_or("c"));
                self.contained.push((id, t));
            }
        }
        let mut r = Map::new();
        r.insert("resourceType".into(), json!(self.resource_type));
        let id = match self.resource_type {
            "Patient" => self.patient.clone(),
            _ => format!(
                "{}-{}",
                self.resource_type.to_ascii_lowercase(),
                self.rng.digits(8)
            ),
        };
        r.insert("id".into(), json!(id));
        match self.resource_type {
            "Patient" => self.patient_elements(&mut r),
            "Coverage" => self.coverage_elements(&mut r),
            "MedicationRequest" => self.prescription_elements(&mut r),
            "MedicationDispense" => self.fill_elements(&mut r),
            _ => self.allergy_elements(&mut r),
        }
        // Shared optional elements.
        if self.rng.chance(50) {
            let system = match self.resource_type {
                "MedicationDispense" => "https://rxvault.dev/fhir/sid/transaction-id".to_string(),
                "MedicationRequest" => "https://rxvault.dev/fhir/sid/rx-number".to_string(),
                _ => format!("https://example.org/sid/{}", self.rng.word().to_lowercase()),
            };
            let mut ids = vec![self.identifier(&system)];
            if self.rng.chance(30) {
                ids.push(self.identifier("http://hospital.example.org/mrn"));
            }
            r.insert("identifier".into(), Value::Array(ids));
        }
        if self.rng.chance(40) {
            r.insert(
                "meta".into(),
                json!({"profile": [format!("http://example.org/StructureDefinition/{}", self.rng.word())],
                       "lastUpdated": format!("{}T10:00:00Z", self.rng.date())}),
            );
        }
        if self.rng.chance(25) {
            r.insert(
                "text".into(),
                json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{} {}</div>", self.rng.word(), self.rng.word())}),
            );
        }
        if self.rng.chance(60) {
            let n = 1 + self.rng.below(4);
            let ext = (0..n).map(|_| self.extension(0)).collect();
            r.insert("extension".into(), Value::Array(ext));
        }
        if self.rng.chance(10) {
            r.insert(
                "modifierExtension".into(),
                json!([{"url": "https://example.org/fhir/StructureDefinition/x-modifier", "valueBoolean": true}]),
            );
        }
        if self.rng.chance(35) {
            let name = format!("zz{}", self.rng.word());
            let value = self.unknown_value(0);
            r.insert(name, value);
        }
        if !self.contained.is_empty() {
            let items = self
                .contained
                .clone()
                .into_iter()
                .map(|(id, t)| self.contained_resource(&id, t))
                .collect();
            r.insert("contained".into(), Value::Array(items));
        }
        r
    }

    // ------------------------------------------------------ per kind --

    fn patient_elements(&mut self, r: &mut Map<String, Value>) {
        if self.rng.chance(85) {
            let n = 1 + self.rng.below(2);
            let names = (0..n).map(|_| self.human_name()).collect();
            r.insert("name".into(), Value::Array(names));
        }
        if self.rng.chance(70) {
            r.insert("telecom".into(), self.telecoms());
        }
        if self.rng.chance(80) {
            r.insert(
                "gender".into(),
                json!(self.rng.pick(&["male", "female", "other", "unknown"])),
            );
        }
        if self.rng.chance(80) {
            r.insert("birthDate".into(), json!(self.rng.date()));
            if self.rng.chance(20) {
                r.insert(
                    "_birthDate".into(),
                    json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1980-02-03T04:05:00Z"}]}),
                );
            }
        }
        match self.rng.below(6) {
            0 => {
                r.insert("deceasedBoolean".into(), json!(self.rng.chance(50)));
            }
            1 => {
                r.insert("deceasedDateTime".into(), json!(self.rng.date()));
            }
            _ => {}
        }
        if self.rng.chance(70) {
            let n = 1 + self.rng.below(2);
            let a = (0..n).map(|_| self.address()).collect();
            r.insert("address".into(), Value::Array(a));
        }
        if self.rng.chance(30) {
            r.insert(
                "maritalStatus".into(),
                self.concept("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"),
            );
        }
        if self.rng.chance(15) {
            r.insert("multipleBirthInteger".into(), json!(1 + self.rng.below(3)));
        }
        if self.rng.chance(40) {
            let mut contact = Map::new();
            contact.insert(
                "relationship".into(),
                json!([self.concept("http://terminology.hl7.org/CodeSystem/v2-0131")]),
            );
            contact.insert("name".into(), self.human_name());
            if self.rng.chance(70) {
                contact.insert("telecom".into(), self.telecoms());
            }
            if self.rng.chance(50) {
                contact.insert("address".into(), self.address());
            }
            if self.rng.chance(30) {
                contact.insert("organization".into(), self.reference());
            }
            r.insert("contact".into(), json!([contact]));
        }
        if self.rng.chance(40) {
            r.insert(
                "communication".into(),
                json!([{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": self.rng.pick(&["en", "es", "vi"])}]}, "preferred": self.rng.chance(50)}]),
            );
        }
        if self.rng.chance(40) {
            let refs = (0..1 + self.rng.below(2))
                .map(|_| self.reference())
                .collect();
            r.insert("generalPractitioner".into(), Value::Array(refs));
        }
        if self.rng.chance(30) {
            r.insert("managingOrganization".into(), self.reference());
        }
        if self.rng.chance(20) {
            r.insert(
                "link".into(),
                json!([{"other": self.reference(), "type": self.rng.pick(&["seealso", "replaces"])}]),
            );
        }
        if self.rng.chance(40) {
            r.insert("active".into(), json!(true));
        }
    }

    fn coverage_elements(&mut self, r: &mut Map<String, Value>) {
        r.insert(
            "status".into(),
            json!(self.rng.pick(&["active", "cancelled"])),
        );
        r.insert("beneficiary".into(), self.patient_link());
        let n = 1 + self.rng.below(2);
        let payors = (0..n)
            .map(|_| {
                let mut p = self.reference_object();
                p.entry("display")
                    .or_insert_with(|| json!("Acme Health Plan"));
                Value::Object(p)
            })
            .collect();
        r.insert("payor".into(), Value::Array(payors));
        if self.rng.chance(60) {
            r.insert(
                "subscriberId".into(),
                json!(format!("MB{}", self.rng.digits(9))),
            );
        }
        if self.rng.chance(50) {
            r.insert("subscriber".into(), self.reference());
        }
        if self.rng.chance(40) {
            r.insert("policyHolder".into(), self.reference());
        }
        if self.rng.chance(60) {
            r.insert(
                "type".into(),
                self.concept("http://terminology.hl7.org/CodeSystem/v3-ActCode"),
            );
        }
        if self.rng.chance(50) {
            r.insert(
                "relationship".into(),
                json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": self.rng.pick(&["self", "spouse", "child"])}]}),
            );
        }
        if self.rng.chance(50) {
            r.insert("period".into(), json!({"start": self.rng.date()}));
        }
        if self.rng.chance(60) {
            r.insert(
                "class".into(),
                json!([
                    {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": self.rng.digits(5), "name": self.rng.word()},
                    {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}]}, "value": self.rng.digits(6)}
                ]),
            );
        }
        if self.rng.chance(40) {
            r.insert(
                "costToBeneficiary".into(),
                json!([{"type": self.concept("http://terminology.hl7.org/CodeSystem/coverage-copay-type"), "valueMoney": {"value": decimal("12.50"), "currency": "USD"}}]),
            );
        }
    }

    fn prescription_elements(&mut self, r: &mut Map<String, Value>) {
        r.insert(
            "status".into(),
            json!(self.rng.pick(&["active", "completed", "stopped"])),
        );
        r.insert("intent".into(), json!(self.rng.pick(&["order", "plan"])));
        self.medication(r);
        r.insert("subject".into(), self.patient_link());
        if self.rng.chance(60) {
            r.insert("authoredOn".into(), json!(self.rng.date()));
        }
        for element in ["encounter", "requester", "recorder", "performer"] {
            if self.rng.chance(35) {
                r.insert(element.into(), self.reference());
            }
        }
        if self.rng.chance(35) {
            r.insert("reasonReference".into(), json!([self.reference()]));
        }
        if self.rng.chance(35) {
            r.insert("insurance".into(), json!([self.reference()]));
        }
        if self.rng.chance(60) {
            r.insert("dosageInstruction".into(), self.dosage());
        }
        if self.rng.chance(60) {
            let mut dr = Map::new();
            dr.insert(
                "quantity".into(),
                json!({"value": decimal("30.0"), "unit": "tablet"}),
            );
            dr.insert("numberOfRepeatsAllowed".into(), json!(self.rng.below(6)));
            if self.rng.chance(40) {
                dr.insert("performer".into(), self.reference());
            }
            if self.rng.chance(40) {
                dr.insert("validityPeriod".into(), json!({"start": self.rng.date()}));
            }
            r.insert("dispenseRequest".into(), Value::Object(dr));
        }
        if self.rng.chance(30) {
            r.insert(
                "substitution".into(),
                json!({"allowedBoolean": self.rng.chance(50), "reason": self.concept("http://terminology.hl7.org/CodeSystem/v3-ActReason")}),
            );
        }
        if self.rng.chance(30) {
            r.insert(
                "groupIdentifier".into(),
                self.identifier("https://example.org/group"),
            );
        }
        if self.rng.chance(25) {
            r.insert(
                "note".into(),
                json!([{"text": format!("{} {}", self.rng.word(), self.rng.word())}]),
            );
        }
    }

    fn fill_elements(&mut self, r: &mut Map<String, Value>) {
        r.insert(
            "status".into(),
            json!(self.rng.pick(&["completed", "in-progress", "preparation"])),
        );
        self.medication(r);
        r.insert("subject".into(), self.patient_link());
        if self.rng.chance(80) {
            r.insert("whenPrepared".into(), json!(self.rng.date()));
        }
        if self.rng.chance(40) {
            r.insert("whenHandedOver".into(), json!(self.rng.date()));
        }
        if self.rng.chance(70) {
            // A contained destination is a Location (the ship-to, which
            // the vault reads); an external one may be anything.
            let destination = match self.local_of(&["Location"]) {
                Some(id) if self.rng.chance(80) => json!({"reference": format!("#{id}")}),
                _ => {
                    let r = self.reference();
                    if r["reference"].as_str().is_some_and(|r| r.starts_with('#')) {
                        json!({"reference": format!("Location/loc-{}", self.rng.digits(4))})
                    } else {
                        r
                    }
                }
            };
            r.insert("destination".into(), destination);
        }
        if self.rng.chance(50) {
            let n = 1 + self.rng.below(2);
            let refs = (0..n).map(|_| self.reference()).collect();
            r.insert("receiver".into(), Value::Array(refs));
        }
        if self.rng.chance(40) {
            r.insert(
                "performer".into(),
                json!([{"actor": self.reference(), "function": self.concept("http://terminology.hl7.org/CodeSystem/medicationdispense-performer-function")}]),
            );
        }
        if self.rng.chance(30) {
            r.insert("location".into(), self.reference());
        }
        if self.rng.chance(60) {
            r.insert(
                "authorizingPrescription".into(),
                json!([{"reference": format!("MedicationRequest/rx-{}", self.rng.digits(6))}]),
            );
        }
        if self.rng.chance(70) {
            r.insert("quantity".into(), json!({"value": decimal("14.0")}));
        }
        if self.rng.chance(40) {
            r.insert(
                "daysSupply".into(),
                json!({"value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}),
            );
        }
        if self.rng.chance(40) {
            r.insert("dosageInstruction".into(), self.dosage());
        }
        if self.rng.chance(25) {
            r.insert(
                "substitution".into(),
                json!({"wasSubstituted": false, "responsibleParty": [self.reference()]}),
            );
        }
        if self.rng.chance(40) {
            r.insert(
                "type".into(),
                self.concept("http://terminology.hl7.org/CodeSystem/v3-ActCode"),
            );
        }
        if self.rng.chance(20) {
            r.insert("_status".into(), json!({"id": "st1"}));
        }
    }

    fn allergy_elements(&mut self, r: &mut Map<String, Value>) {
        r.insert("patient".into(), self.patient_link());
        if self.rng.chance(70) {
            r.insert(
                "clinicalStatus".into(),
                json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]}),
            );
        }
        if self.rng.chance(60) {
            r.insert(
                "verificationStatus".into(),
                json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}]}),
            );
        }
        if self.rng.chance(70) {
            r.insert("code".into(), self.concept("http://snomed.info/sct"));
        }
        if self.rng.chance(50) {
            r.insert("criticality".into(), json!(self.rng.pick(&["low", "high"])));
        }
        if self.rng.chance(40) {
            r.insert(
                "category".into(),
                json!([self.rng.pick(&["food", "medication"])]),
            );
        }
        if self.rng.chance(40) {
            r.insert("onsetDateTime".into(), json!(self.rng.date()));
        }
        for element in ["encounter", "recorder", "asserter"] {
            if self.rng.chance(30) {
                r.insert(element.into(), self.reference());
            }
        }
        if self.rng.chance(40) {
            r.insert(
                "reaction".into(),
                json!([{"substance": self.concept("http://www.nlm.nih.gov/research/umls/rxnorm"),
                        "manifestation": [self.concept("http://snomed.info/sct")],
                        "severity": "moderate",
                        "note": [{"text": self.rng.word()}]}]),
            );
        }
    }

    // ------------------------------------------------------- pieces --

    fn medication(&mut self, r: &mut Map<String, Value>) {
        match self.local_of(&["Medication"]) {
            Some(id) if self.rng.chance(70) => {
                r.insert(
                    "medicationReference".into(),
                    json!({"reference": format!("#{id}")}),
                );
            }
            _ if self.rng.chance(25) => {
                r.insert(
                    "medicationReference".into(),
                    json!({"reference": format!("Medication/m{}", self.rng.digits(4)), "display": "Amoxicillin 250 MG"}),
                );
            }
            _ => {
                r.insert(
                    "medicationCodeableConcept".into(),
                    self.concept("http://www.nlm.nih.gov/research/umls/rxnorm"),
                );
            }
        }
    }

    /// The record's own patient, in one of the forms a patient link takes.
    fn patient_link(&mut self) -> Value {
        let reference = match self.rng.below(4) {
            0 => format!("urn:uuid:{}", self.patient),
            1 => format!("https://fhir.example.org/r4/Patient/{}", self.patient),
            _ => format!("Patient/{}", self.patient),
        };
        let mut link = Map::new();
        link.insert("reference".into(), json!(reference));
        if self.rng.chance(25) {
            link.insert("display".into(), json!(self.rng.word()));
        }
        Value::Object(link)
    }

    /// A local id of a contained resource of one of `types`, if any.
    fn local_of(&mut self, types: &[&str]) -> Option<String> {
        let matching: Vec<String> = self
            .contained
            .iter()
            .filter(|(_, t)| types.contains(t))
            .map(|(id, _)| id.clone())
            .collect();
        (!matching.is_empty()).then(|| self.rng.pick(&matching).clone())
    }

    fn reference(&mut self) -> Value {
        Value::Object(self.reference_object())
    }

    /// A reference to anything, in any form.
    fn reference_object(&mut self) -> Map<String, Value> {
        let mut m = Map::new();
        let n = self.rng.digits(5);
        let choice = self.rng.below(20);
        let reference = match choice {
            0 => Some(format!("Patient/{}", self.patient)),
            1 => Some(format!("Patient/other-{n}")),
            2 => Some(format!("urn:uuid:{}", self.patient)),
            3 => Some(format!(
                "https://fhir.example.org/r4/Patient/{}/_history/2",
                self.patient
            )),
            4 => Some("Patient?identifier=http://hospital.example.org/mrn|12345".to_string()),
            5 => {
                m.insert("type".into(), json!("Patient"));
                m.insert(
                    "identifier".into(),
                    json!({"system": "http://hospital.example.org/mrn", "value": n}),
                );
                None
            }
            6 => Some(format!("Practitioner/dr-{n}")),
            7 => Some(
                "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999974592".to_string(),
            ),
            8 => Some(format!("Organization/org-{n}")),
            9 => Some(format!("Location/loc-{n}")),
            10 => Some(format!("Medication/med-{n}")),
            11 => Some(format!("Condition/cond-{n}")),
            12 => Some(format!("Encounter/enc-{n}")),
            13 => Some(format!("Coverage/cov-{n}")),
            14 => Some(format!("urn:uuid:{n}-other")),
            15 => {
                m.insert(
                    "display".into(),
                    json!(format!("{} {}", self.rng.word(), self.rng.word())),
                );
                None
            }
            16 => {
                m.insert("type".into(), json!("Practitioner"));
                m.insert("display".into(), json!(self.rng.word()));
                None
            }
            17 => Some("#".to_string()),
            _ => match self.local_of(&[
                "Medication",
                "Location",
                "Patient",
                "Organization",
                "Practitioner",
                "PractitionerRole",
                "RelatedPerson",
                "Coverage",
                "Substance",
            ]) {
                Some(id) => Some(format!("#{id}")),
                None => Some(format!("RelatedPerson/rp-{n}")),
            },
        };
        if let Some(reference) = reference {
            m.insert("reference".into(), json!(reference));
            if self.rng.chance(30) {
                m.insert("display".into(), json!(self.rng.word()));
            }
        }
        m
    }

    fn identifier(&mut self, system: &str) -> Value {
        let mut i = Map::new();
        i.insert("system".into(), json!(system));
        i.insert(
            "value".into(),
            json!(format!("{}{}", self.rng.word(), self.rng.digits(6))),
        );
        if self.rng.chance(25) {
            i.insert(
                "type".into(),
                json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": self.rng.pick(&["MR", "MB", "SS"])}]}),
            );
        }
        if self.rng.chance(15) {
            i.insert("assigner".into(), self.reference());
        }
        Value::Object(i)
    }

    fn human_name(&mut self) -> Value {
        let mut n = Map::new();
        n.insert("family".into(), json!(self.rng.word()));
        n.insert("given".into(), json!([self.rng.word()]));
        if self.rng.chance(30) {
            n.insert("use".into(), json!("official"));
        }
        if self.rng.chance(10) {
            n.insert("prefix".into(), json!(["Ms."]));
        }
        Value::Object(n)
    }

    fn telecoms(&mut self) -> Value {
        let n = 1 + self.rng.below(2);
        Value::Array((0..n).map(|_| self.contact_point()).collect())
    }

    fn contact_point(&mut self) -> Value {
        if self.rng.chance(70) {
            json!({"system": "phone", "value": format!("555-{}-{}", self.rng.digits(3), self.rng.digits(4)), "use": self.rng.pick(&["home", "mobile", "work"])})
        } else {
            json!({"system": "email", "value": format!("{}@example.org", self.rng.word().to_lowercase())})
        }
    }

    fn address(&mut self) -> Value {
        let mut a = Map::new();
        a.insert(
            "line".into(),
            json!([format!("{} {} St", self.rng.digits(3), self.rng.word())]),
        );
        a.insert("city".into(), json!(self.rng.word()));
        a.insert(
            "state".into(),
            json!(self.rng.pick(&["IL", "CA", "NY", "TX"])),
        );
        a.insert("postalCode".into(), json!(self.rng.digits(5)));
        if self.rng.chance(50) {
            a.insert("country".into(), json!("US"));
        }
        if self.rng.chance(30) {
            a.insert("use".into(), json!(self.rng.pick(&["home", "work"])));
        }
        if self.rng.chance(20) {
            a.insert(
                "extension".into(),
                json!([{"url": "http://hl7.org/fhir/StructureDefinition/geolocation", "extension": [
                    {"url": "latitude", "valueDecimal": decimal("41.8781")},
                    {"url": "longitude", "valueDecimal": decimal("-87.6300")}
                ]}]),
            );
        }
        Value::Object(a)
    }

    fn concept(&mut self, system: &str) -> Value {
        let word = self.rng.word();
        json!({"coding": [{"system": system, "code": self.rng.digits(6), "display": word}], "text": word})
    }

    fn dosage(&mut self) -> Value {
        json!([{
            "text": format!("Take {} tablet daily", 1 + self.rng.below(2)),
            "timing": {"repeat": {"frequency": 1, "period": decimal("1.0"), "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": decimal("0.50"), "unit": "mg"}}]
        }])
    }

    fn extension(&mut self, depth: usize) -> Value {
        const CARRIER: &str = "https://rxvault.dev/fhir/StructureDefinition/shipment-carrier";
        const TRACKING: &str =
            "https://rxvault.dev/fhir/StructureDefinition/shipment-tracking-number";
        let unknown = || "https://example.org/fhir/StructureDefinition/x-note";
        match self.rng.below(if depth > 0 { 4 } else { 11 }) {
            0 => json!({"url": unknown(), "valueString": self.rng.word()}),
            1 => {
                json!({"url": "https://example.org/fhir/StructureDefinition/x-who", "valueReference": self.reference()})
            }
            2 => {
                json!({"url": "https://example.org/fhir/StructureDefinition/x-call", "valueContactPoint": self.contact_point()})
            }
            3 => {
                json!({"url": "https://example.org/fhir/StructureDefinition/x-where", "valueAddress": self.address()})
            }
            4 => json!({"url": CARRIER, "valueString": self.rng.pick(&["UPS", "USPS", "FedEx"])}),
            5 => json!({"url": TRACKING, "valueString": format!("1Z{}", self.rng.digits(12))}),
            6 => {
                json!({"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", "extension": [
                    {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}},
                    {"url": "text", "valueString": "White"}
                ]})
            }
            7 => {
                json!({"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": self.rng.pick(&["F", "M"])})
            }
            8 => {
                json!({"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": self.address()})
            }
            9 => {
                json!({"url": "http://synthetichealth.github.io/synthea/quality-adjusted-life-years", "valueDecimal": decimal("35.10")})
            }
            _ => {
                let inner: Vec<Value> = (0..1 + self.rng.below(2))
                    .map(|_| self.extension(depth + 1))
                    .collect();
                json!({"url": "https://example.org/fhir/StructureDefinition/x-nested", "extension": inner})
            }
        }
    }

    /// A value for an element rxvault does not know: nested objects and
    /// arrays, with telecoms, addresses and references among them.
    fn unknown_value(&mut self, depth: usize) -> Value {
        match self.rng.below(if depth >= 2 { 4 } else { 8 }) {
            0 => json!(self.rng.word()),
            1 => decimal("2.50"),
            2 => json!(self.rng.chance(50)),
            3 => json!([]),
            4 => {
                let mut m = Map::new();
                m.insert("telecom".into(), self.telecoms());
                m.insert("address".into(), self.address());
                if self.rng.chance(50) {
                    m.insert("party".into(), self.reference());
                }
                Value::Object(m)
            }
            5 => Value::Array(
                (0..1 + self.rng.below(3))
                    .map(|_| self.unknown_value(depth + 1))
                    .collect(),
            ),
            6 => self.reference(),
            _ => {
                let mut m = Map::new();
                for _ in 0..1 + self.rng.below(3) {
                    let k = self.rng.word().to_lowercase();
                    let v = self.unknown_value(depth + 1);
                    m.insert(k, v);
                }
                Value::Object(m)
            }
        }
    }

    fn contained_resource(&mut self, id: &str, resource_type: &str) -> Value {
        let mut c = Map::new();
        c.insert("resourceType".into(), json!(resource_type));
        c.insert("id".into(), json!(id));
        match resource_type {
            "Medication" => {
                c.insert(
                    "code".into(),
                    self.concept("http://www.nlm.nih.gov/research/umls/rxnorm"),
                );
                if self.rng.chance(40) {
                    c.insert(
                        "ingredient".into(),
                        json!([{"itemCodeableConcept": self.concept("http://www.nlm.nih.gov/research/umls/rxnorm"), "strength": {"numerator": {"value": decimal("5.0"), "unit": "mg"}}}]),
                    );
                }
            }
            "Substance" => {
                c.insert("code".into(), self.concept("http://snomed.info/sct"));
            }
            "Location" => {
                c.insert(
                    "name".into(),
                    json!(format!("{} {}", self.rng.word(), self.rng.word())),
                );
                c.insert("address".into(), self.address());
                if self.rng.chance(60) {
                    c.insert("telecom".into(), self.telecoms());
                }
                if self.rng.chance(30) {
                    c.insert("managingOrganization".into(), self.reference());
                }
                if self.rng.chance(20) {
                    c.insert("description".into(), json!("leave at the side door"));
                }
            }
            "Patient" => {
                c.insert("name".into(), json!([self.human_name()]));
                if self.rng.chance(60) {
                    c.insert("telecom".into(), self.telecoms());
                }
                if self.rng.chance(60) {
                    c.insert("address".into(), json!([self.address()]));
                }
                if self.rng.chance(60) {
                    c.insert(
                        "identifier".into(),
                        json!([self.identifier("http://hospital.example.org/mrn")]),
                    );
                }
                if self.rng.chance(50) {
                    c.insert("birthDate".into(), json!(self.rng.date()));
                }
                if self.rng.chance(30) {
                    c.insert("extension".into(), json!([self.extension(0)]));
                }
                if self.rng.chance(20) {
                    c.insert("managingOrganization".into(), self.reference());
                }
            }
            "Organization" => {
                c.insert("name".into(), json!(format!("{} Health", self.rng.word())));
                if self.rng.chance(60) {
                    c.insert("telecom".into(), self.telecoms());
                }
                if self.rng.chance(50) {
                    c.insert("address".into(), json!([self.address()]));
                }
                if self.rng.chance(30) {
                    c.insert(
                        "identifier".into(),
                        json!([self.identifier("http://hl7.org/fhir/sid/us-npi")]),
                    );
                }
            }
            "Practitioner" => {
                c.insert("name".into(), json!([self.human_name()]));
                if self.rng.chance(60) {
                    c.insert("telecom".into(), self.telecoms());
                }
                if self.rng.chance(40) {
                    c.insert("qualification".into(), json!([{"code": self.concept("http://terminology.hl7.org/CodeSystem/v2-0360")}]));
                }
            }
            "PractitionerRole" => {
                c.insert("practitioner".into(), self.reference());
                c.insert(
                    "specialty".into(),
                    json!([self.concept("http://nucc.org/provider-taxonomy")]),
                );
                if self.rng.chance(50) {
                    c.insert("telecom".into(), self.telecoms());
                }
            }
            "RelatedPerson" => {
                c.insert("patient".into(), self.patient_link());
                c.insert("name".into(), json!([self.human_name()]));
                if self.rng.chance(60) {
                    c.insert("telecom".into(), self.telecoms());
                }
                if self.rng.chance(40) {
                    c.insert("address".into(), json!([self.address()]));
                }
            }
            _ => {
                // Coverage
                c.insert("status".into(), json!("active"));
                c.insert("beneficiary".into(), self.patient_link());
                c.insert("payor".into(), json!([self.reference()]));
                if self.rng.chance(50) {
                    c.insert(
                        "subscriberId".into(),
                        json!(format!("MB{}", self.rng.digits(9))),
                    );
                }
            }
        }
        Value::Object(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_resource_and_ids_are_unique() {
        for t in TYPES {
            for seed in 0..200 {
                let a = generate(t, seed);
                assert_eq!(a.resource, generate(t, seed).resource);
                assert_eq!(a.resource["resourceType"], t);
                if let Some(Value::Array(items)) = a.resource.get("contained") {
                    let mut ids: Vec<&str> =
                        items.iter().map(|c| c["id"].as_str().unwrap()).collect();
                    ids.sort();
                    ids.dedup();
                    assert_eq!(ids.len(), items.len());
                }
            }
        }
    }
}
