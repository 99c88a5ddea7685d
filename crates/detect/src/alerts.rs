//! Alerts: findings grouped into incidents (one scrape is one alert, not
//! ten thousand lines), with a lifecycle (open → acknowledged → resolved or
//! false positive, each step with who and a note), sealed at rest.
//!
//! In the clear: id, status, severity, rule, first and last entry and time,
//! how many findings, and a keyed hash of the group (rule and principal).
//! Sealed (`seal_blob("detect-alert", id)`): who, session, host, address,
//! the findings' details, the responses taken and the notes.

use crate::engine::{Finding, Principal};
use crate::rules::{Response, Severity};
use crate::{Error, Result};
use rxvault_crypto::Secrets;
use rxvault_store::detect::StoredAlert;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Findings with the same group this close together are one alert.
pub const GROUP_WINDOW_MS: i64 = 24 * 3_600_000;
/// Findings kept in an alert's body (the count goes on).
const FINDINGS_KEPT: usize = 50;

/// An alert's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// New.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Dealt with.
    Resolved,
    /// Not an incident.
    FalsePositive,
}

impl Status {
    /// Its name as stored.
    pub fn name(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::FalsePositive => "false-positive",
        }
    }

    /// The status named `name`.
    pub fn from_name(name: &str) -> Option<Status> {
        [
            Status::Open,
            Status::Acknowledged,
            Status::Resolved,
            Status::FalsePositive,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// One finding as an alert keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    /// The entry.
    pub index: u64,
    /// Its time (Unix ms).
    pub time_ms: i64,
    /// Patients concerned.
    pub patients: u64,
    /// What it said.
    pub detail: String,
}

/// A response taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Taken {
    /// Which.
    pub response: Response,
    /// When (Unix ms).
    pub time_ms: i64,
    /// At whom: `account|session|host`.
    #[serde(default)]
    pub target: String,
    /// What happened (`2 sessions ended`, or the error).
    pub result: String,
    /// Whether it worked.
    pub ok: bool,
}

/// A lifecycle step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// When (Unix ms).
    pub time_ms: i64,
    /// Who.
    pub by: String,
    /// The status set.
    pub status: Status,
    /// What they wrote.
    pub text: String,
}

/// An alert, opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Its id.
    pub id: String,
    /// The rule.
    pub rule: String,
    /// The highest severity of its findings.
    pub severity: Severity,
    /// Its status.
    pub status: Status,
    /// Who.
    pub principal: Option<Principal>,
    /// Their session (of the first finding).
    pub session: Option<String>,
    /// Their host.
    pub host: Option<String>,
    /// Their address.
    pub source: Option<IpAddr>,
    /// First entry.
    pub first_index: u64,
    /// Last entry.
    pub last_index: u64,
    /// First time (Unix ms).
    pub first_ms: i64,
    /// Last time (Unix ms).
    pub last_ms: i64,
    /// Findings grouped.
    pub findings: u64,
    /// The most patients any finding counted.
    pub patients: u64,
    /// The first and latest findings.
    pub occurrences: Vec<Occurrence>,
    /// Responses taken.
    pub responses: Vec<Taken>,
    /// Lifecycle notes.
    pub notes: Vec<Note>,
}

/// The sealed part of an alert.
#[derive(Serialize, Deserialize)]
struct Body {
    principal: Option<Principal>,
    session: Option<String>,
    host: Option<String>,
    source: Option<IpAddr>,
    patients: u64,
    occurrences: Vec<Occurrence>,
    responses: Vec<Taken>,
    notes: Vec<Note>,
}

impl Alert {
    /// A new alert of one finding.
    pub fn new(id: String, f: &Finding) -> Alert {
        Alert {
            id,
            rule: f.rule.clone(),
            severity: f.severity,
            status: Status::Open,
            principal: f.principal.clone(),
            session: f.session.clone(),
            host: f.host.clone(),
            source: f.source,
            first_index: f.index,
            last_index: f.index,
            first_ms: f.time_ms,
            last_ms: f.time_ms,
            findings: 1,
            patients: f.patients,
            occurrences: vec![occurrence(f)],
            responses: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a finding of the same group.
    pub fn add(&mut self, f: &Finding) {
        self.findings += 1;
        self.severity = self.severity.max(f.severity);
        self.last_index = self.last_index.max(f.index);
        self.last_ms = self.last_ms.max(f.time_ms);
        self.patients = self.patients.max(f.patients);
        if self.occurrences.len() >= FINDINGS_KEPT {
            // Keep the first; drop the oldest of the rest.
            self.occurrences.remove(1);
        }
        self.occurrences.push(occurrence(f));
    }

    /// Seals it for the store.
    pub fn seal(&self, secrets: &Secrets, group: [u8; 16], at_ms: i64) -> Result<StoredAlert> {
        let body = Body {
            principal: self.principal.clone(),
            session: self.session.clone(),
            host: self.host.clone(),
            source: self.source,
            patients: self.patients,
            occurrences: self.occurrences.clone(),
            responses: self.responses.clone(),
            notes: self.notes.clone(),
        };
        let json = serde_json::to_vec(&body).map_err(|e| Error::Corrupt(e.to_string()))?;
        Ok(StoredAlert {
            id: self.id.clone(),
            group: group.to_vec(),
            status: self.status.name().into(),
            severity: self.severity.name().into(),
            rule: self.rule.clone(),
            first_index: self.first_index,
            last_index: self.last_index,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            findings: self.findings,
            sealed: secrets.seal_blob(DOMAIN, self.id.as_bytes(), &json)?,
            updated_ms: at_ms,
        })
    }

    /// Opens a stored alert.
    pub fn open(secrets: &Secrets, s: &StoredAlert) -> Result<Alert> {
        let json = secrets.open_blob(DOMAIN, s.id.as_bytes(), &s.sealed)?;
        let body: Body = serde_json::from_slice(&json)
            .map_err(|e| Error::Corrupt(format!("alert {}: {e}", s.id)))?;
        let severity = match s.severity.as_str() {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                return Err(Error::Corrupt(format!(
                    "alert {}: severity {other:?}",
                    s.id
                )));
            }
        };
        Ok(Alert {
            id: s.id.clone(),
            rule: s.rule.clone(),
            severity,
            status: Status::from_name(&s.status)
                .ok_or_else(|| Error::Corrupt(format!("alert {}: status {:?}", s.id, s.status)))?,
            principal: body.principal,
            session: body.session,
            host: body.host,
            source: body.source,
            first_index: s.first_index,
            last_index: s.last_index,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            findings: s.findings,
            patients: body.patients,
            occurrences: body.occurrences,
            responses: body.responses,
            notes: body.notes,
        })
    }

    /// What a sink is sent: no PHI (rule, severity, counts, who by account
    /// name, times, indexes; never a patient).
    pub fn notice(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity.name(),
            "status": self.status.name(),
            "principal": self.principal.as_ref().map(|p| p.to_string()),
            "host": self.host,
            "source": self.source.map(|s| s.to_string()),
            "findings": self.findings,
            "patients": self.patients,
            "first_index": self.first_index,
            "last_index": self.last_index,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "detail": self.occurrences.last().map(|o| o.detail.clone()),
            "responses": self.responses.iter().map(|r| serde_json::json!({
                "response": r.response.name(), "ok": r.ok, "result": r.result,
            })).collect::<Vec<_>>(),
        })
    }
}

const DOMAIN: &str = "detect-alert";

fn occurrence(f: &Finding) -> Occurrence {
    Occurrence {
        index: f.index,
        time_ms: f.time_ms,
        patients: f.patients,
        detail: f.detail.clone(),
    }
}
