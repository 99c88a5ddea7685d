//! FHIR R4 `AuditEvent`s.
//!
//! | action | `type` (DICOM) | `subtype` | `action` |
//! |---|---|---|---|
//! | read | 110110 Patient Record | restful-interaction `read` | R |
//! | search | 110110 Patient Record | restful-interaction `search-type` | E |
//! | write | 110110 Patient Record | restful-interaction `create` / `update` / `delete` | C / U / D |
//! | export | 110106 Export | (none) | R |
//! | sign-in, MFA, lockout | 110114 User Authentication | DICOM 110122 Login | E |
//! | sign-out | 110114 User Authentication | DICOM 110123 Logout | E |
//! | break-glass | 110113 Security Alert | DICOM 110127 Emergency Override Started; `purposeOfEvent` v3-ActReason `ETREAT` | E |
//! | anything done under a break-glass grant | as its action | as its action; `purposeOfEvent` `ETREAT`, the text naming the grant | as its action |
//! | user / role / key administration | 110113 Security Alert | DICOM 110137 / 110136 / 110129 | E |
//! | alert | 110113 Security Alert | (rxvault code) | E |
//! | access denied, break-glass reviewed | 110113 Security Alert | (rxvault code) | E |
//! | audit log used | 110101 Audit Log Used | | E |
//! | backup, other | 110100 Application Activity | (rxvault code) | E |
//!
//! `outcome` is `0` (success), `4` (denied: minor failure) or `8` (error:
//! serious failure). The actor is the requesting `agent` (with the source
//! address as `network`; the session and the client's user agent as
//! extensions), the host a second agent, the vault the `source`.
//! Patients are `entity` entries with role 1 (Patient), identified only by
//! their record key (`urn:rxvault:record-key`).

use crate::entry::{Action, ActorKind, ExportProtection, LoggedEntry, Outcome, WriteOp};
use crate::{Result, io_err, rfc3339_ms};
use serde_json::{Value, json};
use std::io::Write;

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const REST: &str = "http://hl7.org/fhir/restful-interaction";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// The identifier system of record keys.
pub const RECORD_KEY_SYSTEM: &str = "urn:rxvault:record-key";
/// rxvault's own subtype codes (where DICOM has none).
pub const RXVAULT_SYSTEM: &str = "urn:rxvault:audit-action";

/// What every event says about where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirContext {
    /// The vault's id (in the events' ids and `source.observer`).
    pub vault_id: String,
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// The `AuditEvent` of an entry.
pub fn audit_event(e: &LoggedEntry, ctx: &FhirContext) -> Value {
    let x = &e.entry;
    let rx = |code: &str| coding(RXVAULT_SYSTEM, code, code);
    let (type_, subtype, action): (Value, Option<Value>, &str) = match &x.action {
        Action::Read { .. } => (
            coding(DCM, "110110", "Patient Record"),
            Some(coding(REST, "read", "read")),
            "R",
        ),
        Action::Search { .. } => (
            coding(DCM, "110110", "Patient Record"),
            Some(coding(REST, "search-type", "search type")),
            "E",
        ),
        Action::Write { operation, .. } => {
            let (code, action) = match operation {
                WriteOp::Create => ("create", "C"),
                WriteOp::Update => ("update", "U"),
                WriteOp::Delete => ("delete", "D"),
            };
            (
                coding(DCM, "110110", "Patient Record"),
                Some(coding(REST, code, code)),
                action,
            )
        }
        Action::Export { .. } | Action::ExportStarted { .. } => {
            (coding(DCM, "110106", "Export"), None, "R")
        }
        Action::ExportFinished { .. } | Action::ExportFailed { .. } => (
            coding(DCM, "110106", "Export"),
            Some(rx(x.action.kind().name())),
            "R",
        ),
        Action::AuthSuccess { .. }
        | Action::AuthFailure { .. }
        | Action::MfaSuccess { .. }
        | Action::MfaFailure { .. }
        | Action::Lockout { .. } => (
            coding(DCM, "110114", "User Authentication"),
            Some(coding(DCM, "110122", "Login")),
            "E",
        ),
        Action::Logout => (
            coding(DCM, "110114", "User Authentication"),
            Some(coding(DCM, "110123", "Logout")),
            "E",
        ),
        Action::BreakGlass { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(coding(DCM, "110127", "Emergency Override Started")),
            "E",
        ),
        Action::UserAdmin { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(coding(DCM, "110137", "User Security Attributes Changed")),
            "E",
        ),
        Action::RoleAdmin { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(coding(DCM, "110136", "Security Roles Changed")),
            "E",
        ),
        Action::KeyAdmin { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(coding(DCM, "110129", "Security Configuration")),
            "E",
        ),
        Action::Alert { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(rx("alert")),
            "E",
        ),
        Action::Backup { .. } => (
            coding(DCM, "110100", "Application Activity"),
            Some(rx("backup")),
            "E",
        ),
        Action::AccessDenied { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(rx("access-denied")),
            "E",
        ),
        Action::AuditLogUsed { .. } => (coding(DCM, "110101", "Audit Log Used"), None, "E"),
        Action::BreakGlassReviewed { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(rx("break-glass-reviewed")),
            "E",
        ),
        Action::Other(_) => (
            coding(DCM, "110100", "Application Activity"),
            Some(rx("other")),
            "E",
        ),
        Action::AccessRequested { .. }
        | Action::AccessApproved { .. }
        | Action::AccessRefused { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(coding(DCM, "110136", "Security Roles Changed")),
            "E",
        ),
        Action::EnrolmentCodeIssued { .. } | Action::EnrolmentCodeRedeemed { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(coding(DCM, "110137", "User Security Attributes Changed")),
            "E",
        ),
        Action::SingleOperatorSet { .. } => (
            coding(DCM, "110113", "Security Alert"),
            Some(coding(DCM, "110129", "Security Configuration")),
            "E",
        ),
        Action::Incident { .. } => (coding(DCM, "110113", "Security Alert"), None, "E"),
    };
    let outcome = match x.outcome {
        Outcome::Success => "0",
        Outcome::Denied => "4",
        Outcome::Error => "8",
    };

    let mut agent = json!({
        "type": { "coding": [ match x.actor.kind {
            ActorKind::User | ActorKind::Local => coding(PARTICIPATION, "IRCP", "information recipient"),
            ActorKind::Service | ActorKind::System => coding(DCM, "110150", "Application"),
        } ] },
        "who": { "identifier": { "value": x.actor.id }, "display": format!("{} {}", x.actor.kind.name(), x.actor.id) },
        "requestor": true,
    });
    if let Some(ip) = x.source {
        agent["network"] = json!({ "address": ip.to_string(), "type": "2" });
    }
    let mut extensions = Vec::new();
    if let Some(s) = &x.session {
        extensions.push(json!({ "url": "urn:rxvault:audit:session", "valueString": s }));
    }
    if let Some(ua) = &x.user_agent {
        extensions.push(json!({ "url": "urn:rxvault:audit:user-agent", "valueString": ua }));
    }
    if !extensions.is_empty() {
        agent["extension"] = Value::Array(extensions);
    }
    let mut agents = vec![agent];
    if let Some(h) = &x.host {
        agents.push(json!({
            "type": { "coding": [ coding(DCM, "110153", "Source Role ID") ] },
            "who": { "identifier": { "value": h } },
            "requestor": false,
            "network": { "address": h, "type": "1" },
        }));
    }

    let mut entities: Vec<Value> = x
        .patients
        .iter()
        .map(|p| {
            json!({
                "what": { "identifier": { "system": RECORD_KEY_SYSTEM, "value": p.to_string() } },
                "type": coding(ENTITY_TYPE, "1", "Person"),
                "role": coding(OBJECT_ROLE, "1", "Patient"),
            })
        })
        .collect();
    entities.extend(x.resources.iter().map(|r| {
        json!({
            "what": { "identifier": { "system": RECORD_KEY_SYSTEM, "value": r.to_string() } },
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
        })
    }));
    let detail = |pairs: &[(&str, String)]| -> Value {
        Value::Array(
            pairs
                .iter()
                .map(|(t, v)| json!({ "type": t, "valueString": v }))
                .collect(),
        )
    };
    let mut event_detail = None;
    let mut purpose = None;
    match &x.action {
        Action::Read { kind, categories } => {
            let mut d = vec![(
                "field-categories",
                categories.iter().map(|c| c.name()).collect::<Vec<_>>().join(","),
            )];
            if let Some(k) = kind {
                d.push(("record-type", k.fhir_type().to_string()));
            }
            event_detail = Some(d);
        }
        Action::Search { query, results, kind, categories } => {
            let mut d = vec![("query-kind", query.clone()), ("results", results.to_string())];
            if let Some(k) = kind {
                d.push(("record-type", k.fhir_type().to_string()));
            }
            if let Some(c) = categories {
                d.push(("field-categories", c.iter().map(|c| c.name()).collect::<Vec<_>>().join(",")));
            }
            entities.push(json!({
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "24", "Query"),
                "detail": detail(&d),
            }))
        }
        Action::Write { kind, records, .. } => {
            let mut d = vec![("records", records.to_string())];
            if let Some(k) = kind {
                d.push(("record-type", k.fhir_type().to_string()));
            }
            event_detail = Some(d);
        }
        Action::Export {
            export_id,
            file,
            records,
            patients,
        } => entities.push(json!({
            "what": { "identifier": { "system": "urn:rxvault:export-id", "value": export_id } },
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "3", "Report"),
            "name": file,
            "detail": detail(&[("records", records.to_string()), ("patients", patients.to_string())]),
        })),
        Action::ExportStarted { export_id, format, destination, protection, categories, records } => {
            let mut d = vec![
                ("format", format.name().to_string()),
                ("records", records.to_string()),
                ("patients", x.patients.len().to_string()),
            ];
            match protection {
                ExportProtection::Plaintext => d.push(("protection", "plaintext".into())),
                ExportProtection::Age { recipients } => {
                    d.push(("protection", "age".into()));
                    d.extend(recipients.iter().map(|r| ("age-recipient", r.clone())));
                }
            }
            d.extend(categories.iter().map(|(k, c)| {
                ("field-categories", format!("{}:{}", k.fhir_type(), c.iter().map(|c| c.name()).collect::<Vec<_>>().join(",")))
            }));
            entities.push(json!({
                "what": { "identifier": { "system": "urn:rxvault:export-id", "value": export_id } },
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "3", "Report"),
                "name": destination,
                "detail": detail(&d),
            }))
        }
        Action::ExportFinished { export_id, records, patients, files } => {
            let mut d = vec![("records", records.to_string()), ("patients", patients.to_string())];
            d.extend(files.iter().map(|f| ("file", f.clone())));
            entities.push(json!({
                "what": { "identifier": { "system": "urn:rxvault:export-id", "value": export_id } },
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "3", "Report"),
                "detail": detail(&d),
            }))
        }
        Action::ExportFailed { export_id, reason } => entities.push(json!({
            "what": { "identifier": { "system": "urn:rxvault:export-id", "value": export_id } },
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "3", "Report"),
            "detail": detail(&[("reason", reason.clone())]),
        })),
        Action::BreakGlass { reason } => {
            purpose = Some(json!([{ "coding": [ coding(ACT_REASON, "ETREAT", "Emergency Treatment") ], "text": reason }]));
        }
        Action::AuthSuccess { method } | Action::MfaSuccess { method } => {
            event_detail = Some(vec![("method", method.clone()), ("step", x.action.kind().name().to_string())]);
        }
        Action::MfaFailure { method, reason } => {
            let mut d = vec![("method", method.clone()), ("step", x.action.kind().name().to_string())];
            if let Some(r) = reason {
                d.push(("reason", r.clone()));
            }
            event_detail = Some(d);
        }
        Action::AuthFailure { method, reason } => {
            event_detail = Some(vec![("method", method.clone()), ("reason", reason.clone())]);
        }
        Action::Lockout { until_ms } => {
            event_detail = Some(vec![(
                "locked-until",
                until_ms.map(rfc3339_ms).unwrap_or_else(|| "indefinitely".into()),
            )]);
        }
        Action::UserAdmin { operation, target } => entities.push(json!({
            "what": { "identifier": { "value": target } },
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "6", "User"),
            "detail": detail(&[("operation", operation.clone())]),
        })),
        Action::RoleAdmin { operation, role, target } => {
            let mut d = vec![("operation", operation.clone()), ("role", role.clone())];
            if let Some(t) = target {
                d.push(("target", t.clone()));
            }
            event_detail = Some(d);
        }
        Action::KeyAdmin { operation, rotation } => {
            let mut d = vec![("operation", operation.clone())];
            if let Some(r) = rotation {
                d.push(("step", r.step.name().to_string()));
                d.push(("from-kek", r.from.to_string()));
                d.push(("to-kek", r.to.to_string()));
                d.push(("reencrypt", r.reencrypt.to_string()));
                if let Some(phase) = &r.phase {
                    d.push(("phase", phase.clone()));
                }
                if let Some(n) = r.rewrapped {
                    d.push(("rewrapped", n.to_string()));
                }
                if let Some(n) = r.resealed {
                    d.push(("resealed", n.to_string()));
                }
                if let Some(reason) = &r.reason {
                    d.push(("reason", reason.clone()));
                }
            }
            event_detail = Some(d);
        }
        Action::Backup { operation, backup_id } => {
            let mut d = vec![("operation", operation.clone())];
            if let Some(b) = backup_id {
                d.push(("backup-id", b.clone()));
            }
            event_detail = Some(d);
        }
        Action::Alert { kind, detail: text } => {
            event_detail = Some(vec![("alert", kind.clone()), ("detail", text.clone())]);
        }
        Action::AccessDenied { action } => event_detail = Some(vec![("action", action.clone())]),
        Action::AuditLogUsed { purpose } => event_detail = Some(vec![("purpose", purpose.clone())]),
        Action::BreakGlassReviewed { grant } => event_detail = Some(vec![("grant", grant.clone())]),
        Action::Other(text) => event_detail = Some(vec![("description", text.clone())]),
        Action::AccessRequested { request, target, grant } => {
            event_detail = Some(vec![
                ("request", request.clone()),
                ("target", target.clone()),
                ("grant", grant.describe()),
            ]);
        }
        Action::AccessApproved { request, target, grant, requested_by, basis } => {
            let mut d = vec![("request", request.clone())];
            d.extend(target.clone().map(|t| ("target", t)));
            d.extend(grant.as_ref().map(|g| ("grant", g.describe())));
            d.extend(requested_by.clone().map(|r| ("requested-by", r)));
            d.extend(basis.map(|b| ("basis", b.name().to_string())));
            event_detail = Some(d);
        }
        Action::AccessRefused { request, target, grant, requested_by } => {
            let mut d = vec![("request", request.clone())];
            d.extend(target.clone().map(|t| ("target", t)));
            d.extend(grant.as_ref().map(|g| ("grant", g.describe())));
            d.extend(requested_by.clone().map(|r| ("requested-by", r)));
            event_detail = Some(d);
        }
        Action::EnrolmentCodeIssued { target, expires_ms } => entities.push(json!({
            "what": { "identifier": { "value": target } },
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "6", "User"),
            "detail": detail(&[("operation", "enrolment-code-issued".to_string()), ("expires", rfc3339_ms(*expires_ms))]),
        })),
        Action::EnrolmentCodeRedeemed { target } => entities.push(json!({
            "what": { "identifier": { "value": target } },
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "6", "User"),
            "detail": detail(&[("operation", "enrolment-code-redeemed".to_string())]),
        })),
        Action::SingleOperatorSet { enabled } => {
            event_detail = Some(vec![("single-operator", enabled.to_string())]);
        }
        Action::Incident {
            incident,
            operation,
        } => {
            event_detail = Some(vec![
                ("incident", incident.clone()),
                ("operation", operation.clone()),
            ]);
        }
        Action::Logout => {}
    }
    if let Some(d) = event_detail {
        // Action details that are not about one entity go on an entity for
        // the action itself.
        entities.push(json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
            "description": x.action.kind().name(),
            "detail": detail(&d),
        }));
    }

    let mut ev = json!({
        "resourceType": "AuditEvent",
        "id": format!("{}-{}", ctx.vault_id, e.index),
        "type": type_,
        "action": action,
        "recorded": rfc3339_ms(e.time_ms),
        "outcome": outcome,
        "agent": agents,
        "source": {
            "site": "rxvault",
            "observer": { "display": format!("rxvault vault {}", ctx.vault_id) },
            "type": [ coding(SOURCE_TYPE, "4", "Application Server") ],
        },
    });
    if let Some(s) = subtype {
        ev["subtype"] = json!([s]);
    }
    // Anything done while a break-glass grant was active: emergency
    // treatment, naming the grant.
    if let (None, Some(grant)) = (&purpose, &x.break_glass) {
        purpose = Some(json!([{
            "coding": [ coding(ACT_REASON, "ETREAT", "Emergency Treatment") ],
            "text": format!("break-glass grant {grant}"),
        }]));
    }
    if let Some(p) = purpose {
        ev["purposeOfEvent"] = p;
    }
    if x.outcome != Outcome::Success {
        ev["outcomeDesc"] = json!(x.outcome.name());
    }
    if !entities.is_empty() {
        ev["entity"] = Value::Array(entities);
    }
    ev
}

/// Writes one NDJSON line.
pub fn write_ndjson(out: &mut dyn Write, e: &LoggedEntry, ctx: &FhirContext) -> Result<()> {
    let mut line = serde_json::to_vec(&audit_event(e, ctx)).expect("JSON values serialize");
    line.push(b'\n');
    out.write_all(&line).map_err(io_err("writing FHIR NDJSON"))
}

/// Writes a FHIR Bundle (type `collection`) incrementally: entries are
/// streamed, so a Bundle of any size takes bounded memory.
pub struct BundleWriter<'a> {
    out: &'a mut dyn Write,
    ctx: FhirContext,
    first: bool,
}

impl<'a> BundleWriter<'a> {
    /// Starts the Bundle.
    pub fn start(out: &'a mut dyn Write, ctx: FhirContext, timestamp_ms: i64) -> Result<Self> {
        let head = format!(
            "{{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"timestamp\":\"{}\",\"entry\":[",
            rfc3339_ms(timestamp_ms)
        );
        out.write_all(head.as_bytes())
            .map_err(io_err("writing a FHIR Bundle"))?;
        Ok(Self {
            out,
            ctx,
            first: true,
        })
    }

    /// Adds an entry's AuditEvent.
    pub fn push(&mut self, e: &LoggedEntry) -> Result<()> {
        let ev = audit_event(e, &self.ctx);
        let item = json!({
            "fullUrl": format!("urn:rxvault:audit:{}:{}", self.ctx.vault_id, e.index),
            "resource": ev,
        });
        if !self.first {
            self.out
                .write_all(b",")
                .map_err(io_err("writing a FHIR Bundle"))?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, &item)
            .map_err(|e| crate::Error::Invalid(format!("writing a FHIR Bundle: {e}")))
    }

    /// Closes the Bundle.
    pub fn finish(self) -> Result<()> {
        self.out
            .write_all(b"]}\n")
            .map_err(io_err("writing a FHIR Bundle"))
    }
}
