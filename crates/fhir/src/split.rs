//! Which field category each top-level element of a stored resource belongs
//! to, and the split of a resource into per-category parts.
//!
//! This table is the single source of truth for what a field category
//! contains: sealing uses it (each part is sealed on its own), and access
//! control (which roles may read which categories) is expressed over the
//! categories it defines. Choice elements (`deceased[x]`, `medication[x]`)
//! are matched by prefix. An element not listed falls into
//! [`FieldCategory::Clinical`], the category the fewest roles can read, so a
//! new or unexpected element is never exposed more widely than clinical data.

use crate::Resource;
use rxvault_model::{FieldCategory as C, RecordKind};
use serde_json::Value;

/// Elements every resource type shares.
fn common(element: &str) -> Option<C> {
    Some(match element {
        "id" | "identifier" => C::Identifiers,
        "meta" | "implicitRules" | "language" | "modifierExtension" => C::Administrative,
        "text" => C::Clinical,
        _ => return None,
    })
}

/// The category of a top-level element of a resource of `kind`.
pub fn category_of(kind: RecordKind, element: &str) -> C {
    if let Some(c) = common(element) {
        return c;
    }
    let starts = |p: &str| element.starts_with(p);
    match kind {
        RecordKind::Patient => match element {
            "name" | "gender" | "birthDate" | "maritalStatus" | "communication" | "extension"
            | "photo" => C::Demographics,
            _ if starts("deceased") || starts("multipleBirth") => C::Demographics,
            "telecom" | "address" | "contact" => C::Contact,
            "active" | "generalPractitioner" | "managingOrganization" | "link" => C::Administrative,
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
            "contained" | "destination" | "receiver" | "extension" => C::Shipping,
            "status" => C::Administrative,
            _ => C::Clinical,
        },
        RecordKind::Allergy => match element {
            "clinicalStatus" | "verificationStatus" => C::Administrative,
            _ => C::Clinical,
        },
    }
}

/// Splits a resource into its per-category parts (each a JSON object of the
/// resource's top-level elements in that category), in category order. The
/// `resourceType` element is dropped: the table says it.
pub fn split(kind: RecordKind, resource: Resource) -> Vec<(C, Resource)> {
    let mut parts: Vec<(C, Resource)> = Vec::new();
    for (element, value) in resource {
        if element == "resourceType" {
            continue;
        }
        let category = category_of(kind, &element);
        match parts.iter_mut().find(|(c, _)| *c == category) {
            Some((_, part)) => {
                part.insert(element, value);
            }
            None => {
                let mut part = Resource::new();
                part.insert(element, value);
                parts.push((category, part));
            }
        }
    }
    parts.sort_by_key(|(c, _)| *c);
    parts
}

/// Merges per-category parts back into a resource of `kind`.
pub fn merge(kind: RecordKind, parts: impl IntoIterator<Item = Resource>) -> Resource {
    let mut resource = Resource::new();
    resource.insert(
        "resourceType".into(),
        Value::String(kind.fhir_type().to_string()),
    );
    for part in parts {
        resource.extend(part);
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_then_merge_is_identity() {
        let r = json!({
            "resourceType": "Patient", "id": "p", "name": [{"family": "X"}],
            "telecom": [{"value": "1"}], "birthDate": "2000-01-01",
            "meta": {"profile": ["p"]}, "somethingNew": 1
        });
        let r = r.as_object().unwrap().clone();
        let parts = split(RecordKind::Patient, r.clone());
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
        assert_eq!(
            merge(RecordKind::Patient, parts.into_iter().map(|(_, p)| p)),
            r
        );
    }

    #[test]
    fn sensitive_elements_are_where_roles_expect_them() {
        assert_eq!(
            category_of(RecordKind::Patient, "deceasedDateTime"),
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
        assert_eq!(category_of(RecordKind::Fill, "contained"), C::Shipping);
        assert_eq!(
            category_of(RecordKind::Fill, "medicationCodeableConcept"),
            C::Clinical
        );
        assert_eq!(
            category_of(RecordKind::Allergy, "unknownElement"),
            C::Clinical
        );
    }
}
