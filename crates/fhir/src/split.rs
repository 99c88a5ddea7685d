//! Which field category each element of a stored resource belongs to, and
//! the split of a resource into per-category parts and their merge.
//!
//! This module is the single source of truth for what a field category
//! contains: sealing uses it (each part is sealed on its own, so a view
//! decrypts only the parts of its categories), and access control (which
//! roles may read which categories) is expressed over the categories it
//! defines.
//!
//! # The rules
//!
//! Categories follow the **content**, not the place in the resource. Every
//! node of the resource gets a category; a subtree whose nodes all share
//! one is kept whole. From the outside in:
//!
//! 1. **The element table** ([`category_of`]) gives each top-level element
//!    of each stored kind its category; `_x` (a primitive's id and
//!    extensions) goes with `x`; choice elements (`deceased[x]`,
//!    `medication[x]`) match by prefix. An element not listed is
//!    [`Clinical`](C::Clinical), the category the fewest roles read, so a
//!    new or unexpected element is never exposed more widely than clinical
//!    data. Nested elements take the category of the element they are in,
//!    unless a rule below says otherwise. `modifierExtension` is
//!    administrative, which every role reading a kind reads: an extension
//!    that changes what a record means must not be hidden from its readers.
//! 2. **Top-level extensions by their `url`**: on a `MedicationDispense`
//!    the carrier and tracking extensions ([`conventions`](crate::conventions))
//!    are [`Shipping`](C::Shipping); on a `Patient` the demographic ones
//!    (US Core race, ethnicity, birth sex, gender identity; mother's maiden
//!    name, birth place, nationality, citizenship, religion) are
//!    [`Demographics`](C::Demographics). Any other extension there is
//!    `Clinical`. (A `Coverage`'s extensions stay health plan data.)
//! 3. **Contained resources by their own type and elements**, each
//!    `contained[i]` on its own:
//!    - a `Patient` is the patient: its name, gender, birth date and other
//!      demographic elements (and extensions, by url as in rule 2) are
//!      `Demographics`, its `telecom`, `address` and `contact` `Contact`,
//!      its id, identifiers, `resourceType` and bookkeeping (`meta`,
//!      `active`, `link`, ...) the record's **patient link** category
//!      (below), anything else (`text`, unknown elements) `Clinical`;
//!    - a `Location`, `Organization`, `Practitioner`, `PractitionerRole` or
//!      `RelatedPerson` (who and where) takes the category of the elements
//!      that name it (`#id`) outside `contained`, when they agree: the
//!      `Location` a fill's `destination` names is its ship-to and so
//!      `Shipping` (its `address` included), a `Coverage`'s contained payor
//!      is health plan data; named by none, or by elements of different
//!      categories, it is `Clinical`;
//!    - a `Coverage` (or `Claim`, `ClaimResponse`, `ExplanationOfBenefit`)
//!      is [`HealthPlan`](C::HealthPlan);
//!    - anything else (`Medication`, `Substance`, `Condition`, ...) is
//!      `Clinical`.
//!
//!    The contained resource's own nested elements then follow rules 4
//!    and 5.
//! 4. **A reference by what it points to** (an object with a `reference`
//!    string, or with a `type` string and an `identifier` or `display`):
//!    the whole `Reference` (display text included) is
//!    - the record's **patient link** category when it points to a patient:
//!      a `Patient/…` reference (relative, absolute, versioned or
//!      conditional), a `type` of `Patient`, the record's own patient's id
//!      in any form (`urn:uuid:…`), or a contained `Patient`. The patient
//!      link is `Clinical` in prescriptions, fills and allergies (it says
//!      who takes or reacts to what: the fill's `subject` and a `receiver`
//!      naming the patient alike), [`HealthPlan`](C::HealthPlan) in a
//!      `Coverage` (whose plan it is), and
//!      [`Administrative`](C::Administrative) in a `Patient` (`link`).
//!      Never [`Identifiers`](C::Identifiers): that category is the
//!      record's *own* identifiers, which a shipping clerk reads for the
//!      transaction ID;
//!    - the contained resource's category when it points to one (`#id`);
//!    - `HealthPlan` for a `Coverage`, `Claim`, `ClaimResponse` or
//!      `ExplanationOfBenefit`;
//!    - the category of where it is for who and where (`Location`,
//!      `Organization`, `Practitioner`, `PractitionerRole`,
//!      `RelatedPerson`) and for a target whose type cannot be told
//!      (`urn:uuid:` of something else, a `display` alone);
//!    - `Clinical` for every other type (`Medication`, `Condition`,
//!      `Encounter`, `MedicationRequest`, ...).
//! 5. **`telecom` (and `valueContactPoint`) is [`Contact`](C::Contact)
//!    wherever it is**: a patient's, a ship-to's, a contained
//!    practitioner's. Addresses are where they are: the patient's `address`
//!    is `Contact` (the element table), the ship-to's is `Shipping` (rule
//!    3).
//!
//! A reference or a `telecom` fixes its whole subtree; the outermost one
//! wins. The resource's own `resourceType` is not stored (the kind says
//! it); a contained resource's goes with that resource.
//!
//! # Parts
//!
//! A [`Part`] is what one category holds: the top-level elements wholly in
//! it ([`Part::members`], a JSON object as before this split went deeper),
//! and [`Piece`]s of the elements split between categories, each a subtree
//! wholly in the part's category with its path from the resource's root
//! (keys and array indices). [`merge`] puts any subset of parts back
//! together: all of them give the resource exactly (array order included;
//! object members are ordered by `serde_json::Map`, sorted, as everywhere
//! in the workspace); a subset gives the view of those categories, arrays
//! keeping the relative order of the elements present.
//!
//! # Updates
//!
//! A writer sees and may write only some categories. [`overlay`] puts what
//! it sends in place of what it was shown and keeps the rest where it was
//! (in an array, the elements it could not see keep their places), and
//! refuses an update that would show the other categories anything
//! different from before: replacing data the writer cannot see, or moving
//! data between categories by changing what names it (pointing a fill's
//! `destination` at its contained `Medication`).

use crate::Resource;
use crate::conventions as cv;
use rxvault_model::{CategorySet, FieldCategory as C, RecordKind};
use serde::de::IgnoredAny;
use serde::ser::SerializeSeq;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

// ------------------------------------------------------- the element table --

/// Elements every resource type shares.
fn common(element: &str) -> Option<C> {
    Some(match element {
        "id" | "identifier" => C::Identifiers,
        "meta" | "implicitRules" | "language" | "modifierExtension" => C::Administrative,
        "text" => C::Clinical,
        _ => return None,
    })
}

/// The category of a top-level element of a resource of `kind`, from the
/// element table (rule 1). Content can refine it: see the module docs and
/// [`classify`].
pub fn category_of(kind: RecordKind, element: &str) -> C {
    let element = element.strip_prefix('_').unwrap_or(element);
    if let Some(c) = common(element) {
        return c;
    }
    let starts = |p: &str| element.starts_with(p);
    match kind {
        RecordKind::Patient => match element {
            "name" | "gender" | "birthDate" | "maritalStatus" | "communication" | "photo" => {
                C::Demographics
            }
            _ if starts("deceased") || starts("multipleBirth") => C::Demographics,
            "telecom" | "address" | "contact" => C::Contact,
            "active" | "generalPractitioner" | "managingOrganization" | "link" => C::Administrative,
            // "extension": by url (rule 2); "contained": by content.
            _ => C::Clinical,
        },
        RecordKind::Coverage => match element {
            "subscriberId" => C::Identifiers,
            "status" => C::Administrative,
            "type" | "policyHolder" | "subscriber" | "beneficiary" | "dependent"
            | "relationship" | "period" | "payor" | "class" | "order" | "network"
            | "costToBeneficiary" | "subrogation" | "contract" | "extension" => C::HealthPlan,
            _ => C::Clinical,
        },
        RecordKind::Prescription => match element {
            "groupIdentifier" => C::Identifiers,
            "insurance" => C::HealthPlan,
            "status" | "intent" => C::Administrative,
            _ => C::Clinical,
        },
        RecordKind::Fill => match element {
            // A destination or receiver pointing to the patient is the
            // patient link (rule 4), not shipping.
            "destination" | "receiver" => C::Shipping,
            "status" => C::Administrative,
            // "extension": by url (rule 2); "contained": by content.
            _ => C::Clinical,
        },
        RecordKind::Allergy => match element {
            "clinicalStatus" | "verificationStatus" => C::Administrative,
            _ => C::Clinical,
        },
    }
}

/// The category of a reference to the record's patient, in a record of
/// `kind` (rule 4).
pub fn patient_link(kind: RecordKind) -> C {
    match kind {
        RecordKind::Patient => C::Administrative,
        RecordKind::Coverage => C::HealthPlan,
        RecordKind::Prescription | RecordKind::Fill | RecordKind::Allergy => C::Clinical,
    }
}

/// Extensions of a `Patient` that are demographics (rule 2).
const DEMOGRAPHIC_EXTENSIONS: [&str; 13] = [
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-genderIdentity",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex",
    "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
    "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
    "http://hl7.org/fhir/StructureDefinition/patient-nationality",
    "http://hl7.org/fhir/StructureDefinition/patient-citizenship",
    "http://hl7.org/fhir/StructureDefinition/patient-religion",
    "http://hl7.org/fhir/StructureDefinition/patient-genderIdentity",
    "http://hl7.org/fhir/StructureDefinition/individual-genderIdentity",
    "http://hl7.org/fhir/StructureDefinition/individual-pronouns",
];

/// The category of a top-level extension of a resource of `kind` with this
/// `url`, for the kinds whose extensions are told apart by url (rule 2).
fn extension_category(kind: RecordKind, url: Option<&str>) -> Option<C> {
    match kind {
        RecordKind::Fill => Some(match url {
            Some(cv::CARRIER_EXTENSION | cv::TRACKING_EXTENSION) => C::Shipping,
            _ => C::Clinical,
        }),
        RecordKind::Patient => Some(match url {
            Some(u) if DEMOGRAPHIC_EXTENSIONS.contains(&u) => C::Demographics,
            _ => C::Clinical,
        }),
        _ => None,
    }
}

/// Who and where: resources that take the meaning of the element naming
/// them (rules 3 and 4).
fn is_who_or_where(resource_type: &str) -> bool {
    matches!(
        resource_type,
        "Location" | "Organization" | "Practitioner" | "PractitionerRole" | "RelatedPerson"
    )
}

/// Health plan resources (rules 3 and 4).
fn is_plan(resource_type: &str) -> bool {
    matches!(
        resource_type,
        "Coverage" | "Claim" | "ClaimResponse" | "ExplanationOfBenefit"
    )
}

// ---------------------------------------------------------- classification --

/// The categories of a subtree: one for all of it, or one per child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Every node of the subtree is in this category.
    One(C),
    /// An object whose members differ, in the object's (sorted) order.
    Object(Vec<Class>),
    /// An array whose elements differ, in order.
    Array(Vec<Class>),
}

impl Class {
    /// Joins children: one category if they all share it (`empty` for
    /// none). Allocates only for children that differ (the usual subtree
    /// is wholly in one category).
    fn of_children(children: impl Iterator<Item = Class>, empty: C, array: bool) -> Class {
        let mut first: Option<C> = None;
        let mut same = 0usize;
        let mut mixed: Option<Vec<Class>> = None;
        for child in children {
            if let Some(all) = &mut mixed {
                all.push(child);
                continue;
            }
            match (&child, first) {
                (Class::One(c), None) => {
                    first = Some(*c);
                    same = 1;
                }
                (Class::One(c), Some(f)) if *c == f => same += 1,
                _ => {
                    let mut all = Vec::with_capacity(same + 4);
                    all.extend(std::iter::repeat_n(
                        Class::One(first.unwrap_or(empty)),
                        same,
                    ));
                    all.push(child);
                    mixed = Some(all);
                }
            }
        }
        match mixed {
            None => Class::One(first.unwrap_or(empty)),
            Some(all) if array => Class::Array(all),
            Some(all) => Class::Object(all),
        }
    }

    /// Whether any node of the subtree is in `set`, and whether all are.
    fn seen_by(&self, set: CategorySet) -> (bool, bool) {
        match self {
            Class::One(c) => (set.contains(*c), set.contains(*c)),
            Class::Object(children) | Class::Array(children) => {
                children.iter().fold((false, true), |(any, all), c| {
                    let (a, b) = c.seen_by(set);
                    (any || a, all && b)
                })
            }
        }
    }

    fn categories(&self, out: &mut CategorySet) {
        match self {
            Class::One(c) => *out = out.with(*c),
            Class::Object(children) | Class::Array(children) => {
                children.iter().for_each(|c| c.categories(out))
            }
        }
    }
}

/// What a reference points to.
enum Target<'a> {
    /// `#id`: a contained resource (or, `#` alone, the resource itself).
    Local(&'a str),
    /// Another resource: its type, if it can be told, and its id.
    Other {
        types: [Option<&'a str>; 2],
        id: Option<&'a str>,
    },
}

/// The target of a `Reference` object, if `o` is one.
fn reference_target(o: &Map<String, Value>) -> Option<Target<'_>> {
    let declared = o.get("type").and_then(Value::as_str);
    let Some(reference) = o.get("reference").and_then(Value::as_str) else {
        return (declared.is_some() && (o.contains_key("identifier") || o.contains_key("display")))
            .then_some(Target::Other {
                types: [declared, None],
                id: None,
            });
    };
    if let Some(local) = reference.strip_prefix('#') {
        return Some(Target::Local(local));
    }
    for scheme in ["urn:uuid:", "urn:oid:"] {
        if let Some(id) = reference.strip_prefix(scheme) {
            return Some(Target::Other {
                types: [declared, None],
                id: Some(id),
            });
        }
    }
    // A conditional reference (`Practitioner?identifier=...`) names a type.
    if let Some((path, _query)) = reference.split_once('?') {
        let ty = path.rsplit('/').next().filter(|t| looks_like_type(t));
        return Some(Target::Other {
            types: [declared, ty],
            id: None,
        });
    }
    let path = reference.split("/_history/").next().unwrap_or(reference);
    let mut segments = path.rsplit('/');
    let id = segments.next().filter(|s| !s.is_empty());
    let ty = segments.next().filter(|t| looks_like_type(t));
    Some(Target::Other {
        types: [declared, ty],
        id,
    })
}

fn looks_like_type(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A contained resource, as references to it see it.
struct Contained<'a> {
    id: &'a str,
    resource_type: &'a str,
    /// Its category (rule 3); for a `Patient`, the patient link.
    category: C,
}

/// The patient id the reference in `element` names.
fn patient_reference(r: &Resource, element: &str) -> Option<String> {
    let reference = r.get(element)?.get("reference")?.as_str()?;
    crate::map::reference_id(reference, "Patient")
}

/// What classifying a resource needs to know of it as a whole.
struct Classifier<'a> {
    kind: RecordKind,
    /// The record's patient's id (a `Patient`'s own id).
    patient: Option<String>,
    contained: Vec<Contained<'a>>,
    /// While the contained resources' categories are worked out: the
    /// categories of the places that name each local id.
    named_from: Option<Vec<(&'a str, C)>>,
}

impl<'a> Classifier<'a> {
    fn new(kind: RecordKind, r: &'a Resource) -> Self {
        // The patient as `map::patient_of` reads it (without its errors).
        let patient = match kind {
            RecordKind::Patient => r.get("id").and_then(Value::as_str).map(str::to_string),
            RecordKind::Coverage => patient_reference(r, "beneficiary"),
            RecordKind::Prescription | RecordKind::Fill => patient_reference(r, "subject"),
            RecordKind::Allergy => patient_reference(r, "patient"),
        };
        let mut this = Classifier {
            kind,
            patient,
            contained: Vec::new(),
            named_from: None,
        };
        let Some(Value::Array(items)) = r.get("contained") else {
            return this;
        };
        let mut contained: Vec<Contained<'a>> = items
            .iter()
            .filter_map(|item| {
                Some(Contained {
                    id: item.get("id")?.as_str()?,
                    resource_type: item.get("resourceType")?.as_str()?,
                    category: C::Clinical,
                })
            })
            .collect();
        if contained.is_empty() {
            return this;
        }
        // Who and where take the category of the places naming them: walk
        // everything but `contained` once to collect those places (with
        // no contained resource known yet, a local reference is classified
        // as where it is, which is the category wanted).
        if contained.iter().any(|c| is_who_or_where(c.resource_type)) {
            this.named_from = Some(Vec::new());
            for (element, value) in r {
                if element != "contained" && element != "resourceType" {
                    this.top_level(element, value);
                }
            }
        }
        let named_from = this.named_from.take().unwrap_or_default();
        for c in &mut contained {
            c.category = match c.resource_type {
                "Patient" => patient_link(kind),
                t if is_plan(t) => C::HealthPlan,
                t if is_who_or_where(t) => {
                    let mut places = named_from
                        .iter()
                        .filter(|(id, _)| *id == c.id)
                        .map(|(_, cat)| *cat);
                    match places.next() {
                        Some(first) if places.all(|p| p == first) => first,
                        _ => C::Clinical,
                    }
                }
                _ => C::Clinical,
            };
        }
        this.contained = contained;
        this
    }

    /// A top-level element.
    fn top_level(&mut self, element: &str, value: &'a Value) -> Class {
        match (element, value) {
            ("contained", Value::Array(items)) => {
                let mut classes = Vec::with_capacity(items.len());
                for item in items {
                    classes.push(self.contained_item(item));
                }
                Class::of_children(classes.into_iter(), C::Clinical, true)
            }
            ("extension", Value::Array(items)) if extension_category(self.kind, None).is_some() => {
                Class::of_children(
                    items.iter().map(|item| {
                        let url = item.get("url").and_then(Value::as_str);
                        let c = extension_category(self.kind, url).expect("checked above");
                        self.node(item, c)
                    }),
                    C::Clinical,
                    true,
                )
            }
            ("contained", _) => self.node(value, C::Clinical),
            ("extension", _) if extension_category(self.kind, None).is_some() => {
                self.node(value, C::Clinical)
            }
            _ => self.member(element, value, category_of(self.kind, element)),
        }
    }

    /// One contained resource (rule 3).
    fn contained_item(&mut self, item: &'a Value) -> Class {
        let Value::Object(o) = item else {
            return Class::One(C::Clinical);
        };
        let resource_type = o.get("resourceType").and_then(Value::as_str);
        let id = o.get("id").and_then(Value::as_str);
        let base = match (resource_type, id) {
            (Some(t), Some(id)) => self
                .contained
                .iter()
                .find(|c| c.id == id && c.resource_type == t)
                .map_or(C::Clinical, |c| c.category),
            (Some(t), None) if is_plan(t) => C::HealthPlan,
            (Some("Patient"), None) => patient_link(self.kind),
            _ => C::Clinical,
        };
        let patient = resource_type == Some("Patient");
        Class::of_children(
            o.iter().map(|(k, v)| {
                let c = if patient && k != "resourceType" {
                    // Unknown elements stay clinical; the patient's id,
                    // identifiers and bookkeeping are the link.
                    match category_of(RecordKind::Patient, k) {
                        c @ (C::Demographics | C::Contact | C::Clinical) => c,
                        _ => base,
                    }
                } else {
                    base
                };
                if patient && k == "extension" {
                    // By url, as a patient's own (rule 2).
                    if let Value::Array(items) = v {
                        return Class::of_children(
                            items.iter().map(|e| {
                                let url = e.get("url").and_then(Value::as_str);
                                let c = extension_category(RecordKind::Patient, url)
                                    .expect("patients' extensions go by url");
                                self.node(e, c)
                            }),
                            C::Clinical,
                            true,
                        );
                    }
                }
                self.member(k, v, c)
            }),
            base,
            false,
        )
    }

    /// The member `key` of an object, whose category is `c` unless a rule
    /// fixes it.
    fn member(&mut self, key: &str, value: &'a Value, c: C) -> Class {
        if key == "telecom" || key == "valueContactPoint" {
            return Class::One(C::Contact);
        }
        self.node(value, c)
    }

    /// A node whose category is `c` unless its content says otherwise.
    fn node(&mut self, value: &'a Value, c: C) -> Class {
        match value {
            Value::Object(o) => {
                if let Some(target) = reference_target(o) {
                    return Class::One(self.reference(target, c));
                }
                Class::of_children(o.iter().map(|(k, v)| self.member(k, v, c)), c, false)
            }
            Value::Array(items) => {
                Class::of_children(items.iter().map(|v| self.node(v, c)), c, true)
            }
            _ => Class::One(c),
        }
    }

    /// The category of a reference found where the category is `here`
    /// (rule 4).
    fn reference(&mut self, target: Target<'a>, here: C) -> C {
        match target {
            Target::Local(id) => {
                if let Some(named) = &mut self.named_from {
                    named.push((id, here));
                }
                match self.contained.iter().find(|c| c.id == id) {
                    Some(c) => c.category,
                    None => here,
                }
            }
            Target::Other { types, id } => {
                let types = types.into_iter().flatten();
                let to_patient = types.clone().any(|t| t == "Patient")
                    || id.is_some_and(|id| self.patient.as_deref() == Some(id));
                if to_patient {
                    return patient_link(self.kind);
                }
                let mut types = types.peekable();
                if types.peek().is_none() {
                    return here;
                }
                if types.clone().any(is_plan) {
                    C::HealthPlan
                } else if types.all(is_who_or_where) {
                    here
                } else {
                    C::Clinical
                }
            }
        }
    }
}

/// The categories of a resource of `kind`: for each top-level element but
/// `resourceType`, in the resource's order.
pub fn classify(kind: RecordKind, r: &Resource) -> Vec<Class> {
    let mut classifier = Classifier::new(kind, r);
    r.iter()
        .filter(|(k, _)| *k != "resourceType")
        .map(|(k, v)| classifier.top_level(k, v))
        .collect()
}

/// The categories a resource of `kind` has elements in.
pub fn categories(kind: RecordKind, r: &Resource) -> CategorySet {
    let mut out = CategorySet::NONE;
    for class in classify(kind, r) {
        class.categories(&mut out);
    }
    out
}

/// Each subtree of a resource of `kind` that is wholly in one category,
/// with its path (`contained[1].telecom`): where an element is, never what
/// it holds, so it can go in an error message.
pub fn categorised(kind: RecordKind, r: &Resource) -> Vec<(String, C)> {
    fn walk(value: &Value, class: &Class, path: &mut String, out: &mut Vec<(String, C)>) {
        match (class, value) {
            (Class::One(c), _) => out.push((path.clone(), *c)),
            (Class::Object(children), Value::Object(o)) => {
                for ((k, v), class) in o.iter().zip(children) {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    walk(v, class, path, out);
                    path.truncate(len);
                }
            }
            (Class::Array(children), Value::Array(a)) => {
                for (i, (v, class)) in a.iter().zip(children).enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(v, class, path, out);
                    path.truncate(len);
                }
            }
            _ => unreachable!("a class is made from its value"),
        }
    }
    let mut out = Vec::new();
    for ((k, v), class) in r
        .iter()
        .filter(|(k, _)| *k != "resourceType")
        .zip(classify(kind, r))
    {
        let mut path = k.clone();
        walk(v, &class, &mut path, &mut out);
    }
    out
}

// ------------------------------------------------------------------ parts --

/// One step of a path into a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A subtree wholly in one category, with its path from the resource's root
/// (at least one step, the first a top-level element).
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Where it is.
    pub path: Vec<Step>,
    /// What it is.
    pub value: Value,
}

/// What one category holds of a resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    /// The top-level elements wholly in this category.
    pub members: Resource,
    /// Pieces of the elements split between categories, in document order.
    pub pieces: Vec<Piece>,
}

/// A part that is not in the part format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a record part: {0}")]
pub struct PartError(String);

/// Pieces that do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the parts do not fit together: {0}")]
pub struct MergeError(String);

impl serde::Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Step::Key(k) => s.serialize_str(k),
            Step::Index(i) => s.serialize_u64(*i as u64),
        }
    }
}

impl serde::Serialize for Piece {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&self.path)?;
        seq.serialize_element(&self.value)?;
        seq.end()
    }
}

impl Part {
    /// The part's bytes: its members as one JSON object (exactly the part
    /// format before contents were split deeper), then, if it has pieces, a
    /// newline and a JSON array of `[path, value]` pairs (a path is an
    /// array of member names and array indices).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(&self.members).expect("a JSON map serialises");
        if !self.pieces.is_empty() {
            out.push(b'\n');
            serde_json::to_writer(&mut out, &self.pieces).expect("JSON values serialise");
        }
        out
    }

    /// Reads a part written by [`to_bytes`](Self::to_bytes) (or a part of
    /// the earlier format: members only).
    pub fn from_bytes(bytes: &[u8]) -> Result<Part, PartError> {
        let (members, rest) = members_of::<Resource>(bytes)?;
        Ok(Part {
            members,
            pieces: pieces_of(rest)?,
        })
    }
}

/// The members object at the start of a part, and what follows it.
fn members_of<'de, T: serde::Deserialize<'de>>(
    bytes: &'de [u8],
) -> Result<(T, &'de [u8]), PartError> {
    let text = bytes.trim_ascii_start();
    // An object (serde would also read a struct from an array).
    if text.first() != Some(&b'{') {
        return Err(PartError("its members are not a JSON object".into()));
    }
    let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<T>();
    let members = match stream.next() {
        Some(Ok(m)) => m,
        _ => return Err(PartError("its members are not a JSON object".into())),
    };
    let end = stream.byte_offset();
    Ok((members, &text[end..]))
}

/// The pieces after a part's members (none if only whitespace follows).
fn pieces_of(rest: &[u8]) -> Result<Vec<Piece>, PartError> {
    let rest = rest.trim_ascii();
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<(Vec<Value>, Value)> = serde_json::from_slice(rest)
        .map_err(|_| PartError("its pieces are not a JSON array of [path, value]".into()))?;
    raw.into_iter()
        .map(|(path, value)| {
            let path = path
                .into_iter()
                .map(|step| match step {
                    Value::String(k) => Ok(Step::Key(k)),
                    Value::Number(n) => n
                        .as_u64()
                        .and_then(|i| usize::try_from(i).ok())
                        .map(Step::Index)
                        .ok_or_else(|| PartError("a path index is not an array index".into())),
                    _ => Err(PartError(
                        "a path step is neither a name nor an index".into(),
                    )),
                })
                .collect::<Result<Vec<Step>, PartError>>()?;
            match path.first() {
                Some(Step::Key(_)) => Ok(Piece { path, value }),
                _ => Err(PartError(
                    "a path does not start at a top-level element".into(),
                )),
            }
        })
        .collect()
}

// ------------------------------------------------------------ split, merge --

/// Splits a resource into its per-category parts, in category order. The
/// `resourceType` element is dropped: the kind says it.
pub fn split(kind: RecordKind, resource: Resource) -> Vec<(C, Part)> {
    let classes = classify(kind, &resource);
    let mut parts: BTreeMap<C, Part> = BTreeMap::new();
    let elements = resource.into_iter().filter(|(k, _)| k != "resourceType");
    for ((element, value), class) in elements.zip(classes) {
        match class {
            Class::One(c) => {
                parts.entry(c).or_default().members.insert(element, value);
            }
            class => emit(value, &class, &mut vec![Step::Key(element)], &mut parts),
        }
    }
    parts.into_iter().collect()
}

/// Files the pieces of `value` (at `path`, classified `class`) into parts.
fn emit(value: Value, class: &Class, path: &mut Vec<Step>, parts: &mut BTreeMap<C, Part>) {
    match (class, value) {
        (Class::One(c), value) => parts.entry(*c).or_default().pieces.push(Piece {
            path: path.clone(),
            value,
        }),
        (Class::Object(children), Value::Object(o)) => {
            for ((k, v), class) in o.into_iter().zip(children) {
                path.push(Step::Key(k));
                emit(v, class, path, parts);
                path.pop();
            }
        }
        (Class::Array(children), Value::Array(a)) => {
            for (i, (v, class)) in a.into_iter().zip(children).enumerate() {
                path.push(Step::Index(i));
                emit(v, class, path, parts);
                path.pop();
            }
        }
        _ => unreachable!("a class is made from its value"),
    }
}

/// A tree being rebuilt from pieces.
#[derive(Default)]
enum Node {
    #[default]
    Vacant,
    Leaf(Value),
    Object(BTreeMap<String, Node>),
    Array(BTreeMap<usize, Node>),
}

impl Node {
    fn put(&mut self, path: &[Step], value: Value) -> Result<(), MergeError> {
        let Some((step, rest)) = path.split_first() else {
            return match self {
                Node::Vacant => {
                    *self = Node::Leaf(value);
                    Ok(())
                }
                _ => Err(MergeError("two pieces at one place".into())),
            };
        };
        match step {
            Step::Key(k) => {
                if matches!(self, Node::Vacant) {
                    *self = Node::Object(BTreeMap::new());
                }
                match self {
                    Node::Object(m) => m.entry(k.clone()).or_default().put(rest, value),
                    _ => Err(MergeError("a member inside something else".into())),
                }
            }
            Step::Index(i) => {
                if matches!(self, Node::Vacant) {
                    *self = Node::Array(BTreeMap::new());
                }
                match self {
                    Node::Array(m) => m.entry(*i).or_default().put(rest, value),
                    _ => Err(MergeError("an array element inside something else".into())),
                }
            }
        }
    }

    fn into_value(self) -> Value {
        match self {
            Node::Vacant => Value::Null, // never built: every path ends in a leaf
            Node::Leaf(v) => v,
            Node::Object(m) => {
                Value::Object(m.into_iter().map(|(k, n)| (k, n.into_value())).collect())
            }
            // Indices missing from a partial view close up: the elements
            // present keep their order.
            Node::Array(m) => Value::Array(m.into_values().map(Node::into_value).collect()),
        }
    }
}

/// Merges per-category parts (any subset of one resource's) back into a
/// resource of `kind`.
pub fn merge(
    kind: RecordKind,
    parts: impl IntoIterator<Item = Part>,
) -> Result<Resource, MergeError> {
    let mut resource = Resource::new();
    let mut split: BTreeMap<String, Node> = BTreeMap::new();
    for part in parts {
        for (k, v) in part.members {
            if resource.insert(k, v).is_some() {
                return Err(MergeError("an element in two parts".into()));
            }
        }
        for piece in part.pieces {
            let Some((Step::Key(element), rest)) = piece.path.split_first() else {
                return Err(MergeError("a piece outside the resource".into()));
            };
            split
                .entry(element.clone())
                .or_default()
                .put(rest, piece.value)?;
        }
    }
    for (k, node) in split {
        if resource.insert(k, node.into_value()).is_some() {
            return Err(MergeError("an element both whole and split".into()));
        }
    }
    if resource.contains_key("resourceType") {
        return Err(MergeError("a part holds resourceType".into()));
    }
    resource.insert(
        "resourceType".into(),
        Value::String(kind.fhir_type().to_string()),
    );
    Ok(resource)
}

/// A resource merged as JSON text ([`merge_json`]).
#[derive(Debug)]
pub struct MergedJson {
    /// The resource's JSON text.
    pub text: Vec<u8>,
    /// Its `id`, if a part held it.
    pub id: Option<String>,
}

/// Why [`merge_json`] failed: the part at `index` (of its input) is not a
/// part, or the parts do not fit together (`index` none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MergeJsonError {
    /// The part at fault, if one is.
    pub index: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// [`merge`] as JSON text, from the parts' bytes: when no part holds pieces
/// (the usual case: no element is split), their members are joined as they
/// were sealed, after each part is checked to be well-formed, without
/// building a tree of values; otherwise the parts are merged as values.
/// The text parses to what [`merge`] returns.
pub fn merge_json(kind: RecordKind, parts: &[&[u8]]) -> Result<MergedJson, MergeJsonError> {
    /// A part's `id`, if it has one as a string; parsing it checks the
    /// whole object.
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow, default)]
        id: MaybeStr<'a>,
        #[serde(default, rename = "resourceType")]
        resource_type: Option<IgnoredAny>,
    }
    let at = |index: usize| {
        move |e: PartError| MergeJsonError {
            index: Some(index),
            message: e.to_string(),
        }
    };
    let mut out = Vec::with_capacity(64 + parts.iter().map(|b| b.len()).sum::<usize>());
    out.extend_from_slice(b"{\"resourceType\":");
    serde_json::to_writer(&mut out, kind.fhir_type()).expect("writing to a Vec");
    let mut id = None;
    for (index, bytes) in parts.iter().enumerate() {
        let (part, rest) = members_of::<Id<'_>>(bytes).map_err(at(index))?;
        if !rest.trim_ascii().is_empty() {
            return merge_json_slowly(kind, parts);
        }
        if part.resource_type.is_some() {
            return Err(MergeJsonError {
                index: Some(index),
                message: "a part holds resourceType".into(),
            });
        }
        if let Some(part_id) = part.id.0 {
            id = Some(part_id.into_owned());
        }
        // Between the braces of a well-formed object.
        let text = bytes.trim_ascii();
        let members = text[1..text.len() - 1].trim_ascii();
        if !members.is_empty() {
            out.push(b',');
            out.extend_from_slice(members);
        }
    }
    out.push(b'}');
    Ok(MergedJson { text: out, id })
}

/// A JSON value read as its string if it is one (borrowed when it can be),
/// and skipped otherwise.
#[derive(Default)]
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = MaybeStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

fn merge_json_slowly(kind: RecordKind, parts: &[&[u8]]) -> Result<MergedJson, MergeJsonError> {
    let parts = parts
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            Part::from_bytes(bytes).map_err(|e| MergeJsonError {
                index: Some(index),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<Part>, MergeJsonError>>()?;
    let resource = merge(kind, parts).map_err(|e| MergeJsonError {
        index: None,
        message: e.to_string(),
    })?;
    Ok(MergedJson {
        id: resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string),
        text: serde_json::to_vec(&resource).expect("a JSON map serialises"),
    })
}

/// What of a resource of `kind` the categories `set` hold (the view a
/// reader of those categories is given).
pub fn view(kind: RecordKind, resource: &Resource, set: CategorySet) -> Resource {
    let parts = split(kind, resource.clone())
        .into_iter()
        .filter(|(c, _)| set.contains(*c))
        .map(|(_, p)| p);
    merge(kind, parts).expect("the parts of one split fit together")
}

// ----------------------------------------------------------------- updates --

/// Why an update by a writer of some categories only was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    /// The update replaces, at `element`, data of `category`, which the
    /// writer may not see.
    #[error("{element} holds {category} data the writer may not see")]
    Hidden {
        /// Where (a path, never a value).
        element: String,
        /// The hidden category.
        category: C,
    },
    /// The update would change what the writer may not see (by moving data
    /// into or out of a category it may not write).
    #[error("the update changes data the writer may not see")]
    Changed,
}

/// The resource that results when a writer who may write (and see) only
/// `allowed` sends `incoming` to replace `existing` (both of `kind`): what
/// the writer saw is replaced by what it sent, and what it could not see is
/// kept where it was. Within an array, the elements the writer could not
/// see keep their places and the ones it saw are replaced in order by the
/// ones it sent (extra ones appended, missing ones removed). Refused if
/// the result would show a writer of the other categories anything but
/// what it showed before.
pub fn overlay(
    kind: RecordKind,
    existing: Resource,
    incoming: Resource,
    allowed: CategorySet,
) -> Result<Resource, OverlayError> {
    let hidden: CategorySet = C::ALL
        .into_iter()
        .filter(|c| !allowed.contains(*c))
        .collect();
    let before = view(kind, &existing, hidden);
    let classes = classify(kind, &existing);
    let mut incoming = incoming;
    incoming.remove("resourceType");
    let mut out = Resource::new();
    let elements = existing.into_iter().filter(|(k, _)| k != "resourceType");
    for ((k, v), class) in elements.zip(classes) {
        let sent = incoming.remove(&k);
        if let Some(v) = overlay_value(v, &class, sent, allowed, &k)? {
            out.insert(k, v);
        }
    }
    out.extend(incoming);
    out.insert(
        "resourceType".into(),
        Value::String(kind.fhir_type().to_string()),
    );
    if view(kind, &out, hidden) != before {
        return Err(OverlayError::Changed);
    }
    Ok(out)
}

fn hidden_category(class: &Class, allowed: CategorySet) -> C {
    match class {
        Class::One(c) => *c,
        Class::Object(children) | Class::Array(children) => children
            .iter()
            .find(|c| c.seen_by(allowed) != (true, true))
            .map_or(C::Clinical, |c| hidden_category(c, allowed)),
    }
}

fn overlay_value(
    existing: Value,
    class: &Class,
    sent: Option<Value>,
    allowed: CategorySet,
    path: &str,
) -> Result<Option<Value>, OverlayError> {
    let hidden = || OverlayError::Hidden {
        element: path.to_string(),
        category: hidden_category(class, allowed),
    };
    match class.seen_by(allowed) {
        (_, true) => Ok(sent),
        (false, _) if sent.is_some() => Err(hidden()),
        (false, _) => Ok(Some(existing)),
        (true, false) => match (class, existing) {
            (Class::Object(children), Value::Object(o)) => {
                let mut sent = match sent {
                    Some(Value::Object(m)) => m,
                    None => Map::new(),
                    Some(_) => return Err(hidden()),
                };
                let mut out = Map::new();
                for ((k, v), class) in o.into_iter().zip(children) {
                    let s = sent.remove(&k);
                    if let Some(v) = overlay_value(v, class, s, allowed, &format!("{path}.{k}"))? {
                        out.insert(k, v);
                    }
                }
                out.extend(sent);
                Ok(Some(Value::Object(out)))
            }
            (Class::Array(children), Value::Array(a)) => {
                let mut sent = match sent {
                    Some(Value::Array(a)) => a.into_iter(),
                    None => Vec::new().into_iter(),
                    Some(_) => return Err(hidden()),
                };
                let mut out = Vec::with_capacity(a.len());
                for (i, (v, class)) in a.into_iter().zip(children).enumerate() {
                    match class.seen_by(allowed) {
                        (false, _) => out.push(v),
                        (_, true) => out.extend(sent.next()),
                        (true, false) => {
                            let s = sent.next();
                            out.extend(overlay_value(
                                v,
                                class,
                                s,
                                allowed,
                                &format!("{path}[{i}]"),
                            )?);
                        }
                    }
                }
                out.extend(sent);
                Ok(Some(Value::Array(out)))
            }
            _ => unreachable!("a class is made from its value"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: Value) -> Resource {
        v.as_object().unwrap().clone()
    }

    fn round_trip(kind: RecordKind, r: &Resource) -> Vec<(C, Part)> {
        let parts = split(kind, r.clone());
        for (_, p) in &parts {
            assert_eq!(&Part::from_bytes(&p.to_bytes()).unwrap(), p);
        }
        let merged = merge(kind, parts.iter().map(|(_, p)| p.clone())).unwrap();
        assert_eq!(&merged, r);
        let bytes: Vec<Vec<u8>> = parts.iter().map(|(_, p)| p.to_bytes()).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let text = merge_json(kind, &refs).unwrap().text;
        assert_eq!(
            serde_json::from_slice::<Value>(&text).unwrap(),
            Value::Object(merged)
        );
        parts
    }

    #[test]
    fn split_then_merge_is_identity() {
        let r = res(json!({
            "resourceType": "Patient", "id": "p", "name": [{"family": "X"}],
            "telecom": [{"value": "1"}], "birthDate": "2000-01-01",
            "meta": {"profile": ["p"]}, "somethingNew": 1
        }));
        let parts = round_trip(RecordKind::Patient, &r);
        let cats: Vec<C> = parts.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            cats,
            vec![
                C::Demographics,
                C::Contact,
                C::Clinical,
                C::Identifiers,
                C::Administrative
            ]
        );
        assert!(parts.iter().all(|(_, p)| p.pieces.is_empty()));
    }

    #[test]
    fn sensitive_elements_are_where_roles_expect_them() {
        assert_eq!(
            category_of(RecordKind::Patient, "deceasedDateTime"),
            C::Demographics
        );
        assert_eq!(
            category_of(RecordKind::Patient, "_birthDate"),
            C::Demographics
        );
        assert_eq!(category_of(RecordKind::Patient, "address"), C::Contact);
        assert_eq!(
            category_of(RecordKind::Coverage, "subscriberId"),
            C::Identifiers
        );
        assert_eq!(
            category_of(RecordKind::Prescription, "medicationCodeableConcept"),
            C::Clinical
        );
        assert_eq!(category_of(RecordKind::Fill, "contained"), C::Clinical);
        assert_eq!(
            category_of(RecordKind::Fill, "medicationCodeableConcept"),
            C::Clinical
        );
        assert_eq!(
            category_of(RecordKind::Allergy, "unknownElement"),
            C::Clinical
        );
    }

    /// The masking probe's fill (issue 9, item 1).
    fn probe() -> Resource {
        res(json!({
            "resourceType": "MedicationDispense", "id": "f", "status": "completed",
            "contained": [
                {"resourceType": "Medication", "id": "med", "code": {"text": "Amlodipine"}},
                {"resourceType": "Location", "id": "dest", "name": "J",
                 "address": {"line": ["1 Main"]}, "telecom": [{"value": "555"}]}
            ],
            "extension": [
                {"url": cv::CARRIER_EXTENSION, "valueString": "UPS"},
                {"url": cv::TRACKING_EXTENSION, "valueString": "1Z"},
                {"url": "https://example.org/why", "valueString": "chemo"}
            ],
            "identifier": [{"system": cv::TRANSACTION_ID_SYSTEM, "value": "T1"}],
            "medicationReference": {"reference": "#med"},
            "subject": {"reference": "Patient/p1"},
            "receiver": [{"reference": "Patient/p1"}],
            "destination": {"reference": "#dest"}
        }))
    }

    #[test]
    fn a_fill_is_split_by_content() {
        let r = probe();
        round_trip(RecordKind::Fill, &r);
        let shipping = view(
            RecordKind::Fill,
            &r,
            CategorySet::of(&[C::Shipping, C::Identifiers, C::Administrative]),
        );
        assert_eq!(
            Value::Object(shipping),
            json!({
                "resourceType": "MedicationDispense", "id": "f", "status": "completed",
                "contained": [{"resourceType": "Location", "id": "dest", "name": "J",
                               "address": {"line": ["1 Main"]}}],
                "extension": [
                    {"url": cv::CARRIER_EXTENSION, "valueString": "UPS"},
                    {"url": cv::TRACKING_EXTENSION, "valueString": "1Z"}
                ],
                "identifier": [{"system": cv::TRANSACTION_ID_SYSTEM, "value": "T1"}],
                "destination": {"reference": "#dest"}
            })
        );
        let contact = view(RecordKind::Fill, &r, CategorySet::of(&[C::Contact]));
        assert_eq!(
            Value::Object(contact),
            json!({"resourceType": "MedicationDispense",
                   "contained": [{"telecom": [{"value": "555"}]}]})
        );
        let found: Vec<(String, C)> = categorised(RecordKind::Fill, &r);
        assert!(found.contains(&("contained[0]".into(), C::Clinical)));
        assert!(found.contains(&("contained[1].telecom".into(), C::Contact)));
        assert!(found.contains(&("receiver".into(), C::Clinical)));
        assert!(found.contains(&("extension[2]".into(), C::Clinical)));
    }

    #[test]
    fn references_go_by_their_target() {
        let r = res(json!({
            "resourceType": "MedicationDispense",
            "subject": {"reference": "urn:uuid:p1"},
            "receiver": [
                {"reference": "urn:uuid:p1"},
                {"reference": "Practitioner/d", "display": "Dr D"},
                {"type": "Patient", "display": "J"},
                {"reference": "https://h/fhir/Patient/p2/_history/3"},
                {"reference": "Patient?identifier=x|1"}
            ],
            "destination": {"reference": "Medication/m"}
        }));
        let found = categorised(RecordKind::Fill, &r);
        for (path, c) in [
            ("subject", C::Clinical),
            ("receiver[0]", C::Clinical),
            ("receiver[1]", C::Shipping),
            ("receiver[2]", C::Clinical),
            ("receiver[3]", C::Clinical),
            ("receiver[4]", C::Clinical),
            ("destination", C::Clinical),
        ] {
            assert!(found.contains(&(path.into(), c)), "{path}: {found:?}");
        }
        let coverage = res(json!({
            "resourceType": "Coverage", "beneficiary": {"reference": "Patient/p"},
            "payor": [{"reference": "#org"}],
            "contained": [{"resourceType": "Organization", "id": "org", "name": "Plan",
                           "telecom": [{"value": "1"}]}]
        }));
        assert_eq!(
            categorised(RecordKind::Coverage, &coverage),
            vec![
                ("beneficiary".into(), C::HealthPlan),
                ("contained[0].id".into(), C::HealthPlan),
                ("contained[0].name".into(), C::HealthPlan),
                ("contained[0].resourceType".into(), C::HealthPlan),
                ("contained[0].telecom".into(), C::Contact),
                ("payor".into(), C::HealthPlan),
            ]
        );
    }

    #[test]
    fn a_contained_patient_is_the_patient() {
        let r = res(json!({
            "resourceType": "MedicationDispense",
            "contained": [{"resourceType": "Patient", "id": "pt", "name": [{"family": "D"}],
                           "identifier": [{"value": "MRN1"}], "address": [{"city": "X"}]}],
            "receiver": [{"reference": "#pt"}]
        }));
        round_trip(RecordKind::Fill, &r);
        let shipping = view(
            RecordKind::Fill,
            &r,
            CategorySet::of(&[C::Shipping, C::Identifiers, C::Administrative]),
        );
        assert_eq!(
            Value::Object(shipping),
            json!({"resourceType": "MedicationDispense"})
        );
    }

    #[test]
    fn an_update_keeps_what_the_writer_cannot_see_in_its_place() {
        let r = probe();
        let clerk = CategorySet::of(&[C::Shipping, C::Identifiers, C::Administrative]);
        let mut seen = view(RecordKind::Fill, &r, clerk);
        seen["extension"][1]["valueString"] = json!("1Z-NEW");
        seen["status"] = json!("in-progress");
        let out = overlay(RecordKind::Fill, r.clone(), seen.clone(), clerk).unwrap();
        let mut want = r.clone();
        want["extension"][1]["valueString"] = json!("1Z-NEW");
        want["status"] = json!("in-progress");
        assert_eq!(out, want);
        // Sending back what was seen changes nothing.
        let same = overlay(
            RecordKind::Fill,
            r.clone(),
            view(RecordKind::Fill, &r, clerk),
            clerk,
        );
        assert_eq!(same.unwrap(), r);
        // Naming the hidden Medication as the ship-to would show it.
        let mut sneaky = view(RecordKind::Fill, &r, clerk);
        sneaky["destination"] = json!({"reference": "#med"});
        assert!(overlay(RecordKind::Fill, r.clone(), sneaky, clerk).is_err());
        // Replacing the patient link the clerk cannot see is refused.
        let mut erase = view(RecordKind::Fill, &r, clerk);
        erase.insert("receiver".into(), json!([{"display": "front desk"}]));
        assert_eq!(
            overlay(RecordKind::Fill, r, erase, clerk),
            Err(OverlayError::Hidden {
                element: "receiver".into(),
                category: C::Clinical
            })
        );
    }

    #[test]
    fn parts_reject_what_is_not_a_part() {
        for bad in [
            &b"[]"[..],
            b"{\"a\":1",
            b"{}\n{}",
            b"{}\n[[[1],2]]",
            b"{}\n[[[],2]]",
            b"{}\n[[[\"a\",-1],2]]",
        ] {
            assert!(
                Part::from_bytes(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let two = Part {
            members: res(json!({"a": 1})),
            pieces: vec![],
        };
        assert!(merge(RecordKind::Patient, [two.clone(), two]).is_err());
        let piece = |path: Vec<Step>| Part {
            members: Resource::new(),
            pieces: vec![Piece {
                path,
                value: json!(1),
            }],
        };
        let a = piece(vec![Step::Key("a".into()), Step::Index(0)]);
        let b = piece(vec![Step::Key("a".into()), Step::Key("x".into())]);
        assert!(merge(RecordKind::Patient, [a.clone(), b]).is_err());
        assert!(merge(RecordKind::Patient, [a.clone(), a]).is_err());
    }
}
