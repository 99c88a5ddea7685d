//! FHIR R4 response shapes: `OperationOutcome` for errors, `Bundle` of type
//! `searchset` for searches, and the server's `CapabilityStatement`.

use serde_json::{Value, json};

/// The FHIR JSON media type.
pub const FHIR_JSON: &str = "application/fhir+json";

/// An `OperationOutcome` with one issue.
///
/// `severity`: fatal | error | warning | information; `code`: the
/// issue-type code (`not-found`, `security`, `invalid`, `login`,
/// `forbidden`, `throttled`, `exception`, ...).
pub fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]
    })
}

/// A `searchset` Bundle of `resources`, each with its full URL under `base`.
pub fn searchset(base: &str, self_link: &str, resources: Vec<Value>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let url = match (
                r.get("resourceType").and_then(Value::as_str),
                r.get("id").and_then(Value::as_str),
            ) {
                (Some(t), Some(id)) => format!("{base}/{t}/{id}"),
                _ => String::new(),
            };
            json!({"fullUrl": url, "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{"relation": "self", "url": self_link}],
        "entry": entries,
    })
}

/// The FHIR search parameter type of a parameter name.
fn param_type(name: &str) -> &'static str {
    match name {
        "family" | "given" => "string",
        "birthdate" => "date",
        "patient" => "reference",
        _ => "token",
    }
}

/// The `CapabilityStatement` served at `/fhir/metadata`, for resource types
/// and their search parameters (name, description) as the route table
/// declares them.
pub fn capability_statement(
    base: &str,
    software_version: &str,
    date: &str,
    types: &[(&str, Vec<(&str, &str)>)],
) -> Value {
    let resources: Vec<Value> = types
        .iter()
        .map(|(ty, params)| {
            json!({
                "type": ty,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "versioning": "no-version",
                "readHistory": false,
                "searchParam": params.iter().map(|(name, doc)| json!({"name": name, "type": param_type(name), "documentation": doc})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "rxvault",
        "kind": "instance",
        "software": {"name": "rxvault", "version": software_version},
        "implementation": {"description": "rxvault encrypted pharmacy vault", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}], "text": "Bearer session tokens from /api/v1/sessions (password + second factor) or scoped API keys"}],
                "description": "Every request needs a bearer token of a user who passed a second factor, or a service API key. Reads return only the field categories the caller's role may see."
            },
            "resource": resources,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let oo = operation_outcome("error", "not-found", "no such Patient");
        assert_eq!(oo["issue"][0]["code"], "not-found");
        let b = searchset(
            "https://h/fhir",
            "https://h/fhir/Patient?phone=x",
            vec![json!({"resourceType": "Patient", "id": "p1"})],
        );
        assert_eq!(b["total"], 1);
        assert_eq!(b["entry"][0]["fullUrl"], "https://h/fhir/Patient/p1");
        let cs = capability_statement(
            "https://h/fhir",
            "0.1.0",
            "2026-11-28",
            &[("Patient", vec![("birthdate", "Birth date")])],
        );
        assert_eq!(cs["fhirVersion"], "4.0.1");
        assert_eq!(
            cs["rest"][0]["resource"][0]["searchParam"][0]["type"],
            "date"
        );
    }
}
