//! The safe-harbor check (45 CFR 164.402, HHS guidance 74 FR 19006): PHI
//! encrypted as the Security Rule describes, whose key was not breached, is
//! "secured" and needs no notification.
//!
//! What was taken is recorded as [`Taken`] items. A copy of the data
//! directory or of a backup holds only envelopes sealed with AES-256-GCM
//! under 256-bit data keys wrapped by the KEK, which rxvault keeps outside
//! the data directory; an rxvault export's protection is what its
//! `ExportStarted` entry recorded (age recipients, or plaintext). Only
//! ciphertext taken **and** keys recorded as not compromised gives "not
//! reportable", with the evidence; a plaintext item, reads through the
//! vault by a compromised account (the scope's audit selectors), a
//! compromised key, or an unknown answer about the keys means the full
//! scope.
//!
//! The four-factor risk assessment (164.402(2)) is pre-filled from what is
//! known and kept with the incident for the privacy officer to complete and
//! sign off; every edit is audited.

use crate::incident::Breach;
use crate::{Error, Result};
use rxvault_audit::entry::ExportProtection;
use rxvault_vault::access::AuditLogUse;
use serde::{Deserialize, Serialize};

/// Something taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Taken {
    /// A copy of the vault's data directory (database, audit log, config).
    DataDirectory,
    /// A backup repository of the vault.
    Backup {
        /// Where it was.
        location: String,
    },
    /// An rxvault export (identified by its export ID).
    Export {
        /// The export ID.
        export_id: String,
    },
    /// Anything in the clear (a printout, a screen, a plaintext file).
    Plaintext {
        /// What.
        what: String,
    },
}

impl Taken {
    /// Parses `data-dir`, `backup:LOCATION`, `export:ID` or
    /// `plaintext:WHAT`.
    pub fn parse(s: &str) -> Result<Self> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match (kind, rest.trim()) {
            ("data-dir", _) => Ok(Taken::DataDirectory),
            ("backup", l) if !l.is_empty() => Ok(Taken::Backup { location: l.into() }),
            ("export", x) if !x.is_empty() => Ok(Taken::Export {
                export_id: x.into(),
            }),
            ("plaintext", w) if !w.is_empty() => Ok(Taken::Plaintext { what: w.into() }),
            _ => Err(Error::Invalid(format!(
                "{s:?}: say what was taken as data-dir, backup:LOCATION, export:ID or plaintext:WHAT"
            ))),
        }
    }
}

/// One factor of the risk assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factor {
    /// The factor, as 164.402(2) states it.
    pub question: String,
    /// The answer (pre-filled, then the privacy officer's).
    pub answer: String,
    /// Whether the privacy officer has edited it.
    pub reviewed: bool,
}

/// The assessment of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// Whether notification is owed.
    pub reportable: bool,
    /// The conclusion in words.
    pub conclusion: String,
    /// What it rests on.
    pub evidence: Vec<String>,
    /// The four factors.
    pub factors: Vec<Factor>,
    /// Who signed it off, if anyone.
    pub signed_off_by: Option<String>,
    /// When (Unix ms).
    pub signed_off_ms: Option<i64>,
}

const QUESTIONS: [&str; 4] = [
    "1. The nature and extent of the PHI involved, including the types of identifiers and the likelihood of re-identification",
    "2. The unauthorized person who used the PHI or to whom the disclosure was made",
    "3. Whether the PHI was actually acquired or viewed",
    "4. The extent to which the risk to the PHI has been mitigated",
];

impl Breach<'_> {
    /// Records what was taken and whether keys were compromised, and
    /// assesses the incident (audited `assess`).
    pub fn assess(
        &self,
        id: &str,
        taken: Vec<Taken>,
        keys_compromised: bool,
    ) -> Result<crate::Incident> {
        let mut incident = self.show(id)?;
        if taken.is_empty() && incident.taken.is_empty() && incident.scope.is_none() {
            return Err(Error::Invalid(
                "say what was taken (--taken data-dir, backup:LOCATION, export:ID, plaintext:WHAT) \
                 or scope the incident first"
                    .into(),
            ));
        }
        for t in taken {
            if !incident.taken.contains(&t) {
                incident.taken.push(t);
            }
        }
        incident.keys_compromised = Some(keys_compromised);
        let assessment = self.evaluate(&incident)?;
        self.edit(id, "assess", &[], move |i| {
            i.taken = incident.taken;
            i.keys_compromised = incident.keys_compromised;
            i.assessment = Some(assessment);
            Ok(())
        })
    }

    /// Edits factor `n` (1 to 4) of the risk assessment (audited
    /// `risk-factor`).
    pub fn edit_factor(&self, id: &str, n: usize, answer: &str) -> Result<crate::Incident> {
        if !(1..=4).contains(&n) {
            return Err(Error::Invalid("the factors are numbered 1 to 4".into()));
        }
        self.edit(id, &format!("risk-factor-{n}"), &[], |i| {
            let a = i.assessment.as_mut().ok_or_else(|| {
                Error::Invalid("assess the incident first (`rxvault breach assess`)".into())
            })?;
            a.factors[n - 1].answer = answer.to_string();
            a.factors[n - 1].reviewed = true;
            a.signed_off_by = None;
            a.signed_off_ms = None;
            Ok(())
        })
    }

    /// Signs the assessment off (audited `sign-off`); every factor must
    /// have been reviewed.
    pub fn sign_off(&self, id: &str) -> Result<crate::Incident> {
        let by = self.requester().actor.id.clone();
        let at = self.now_ms();
        self.edit(id, "sign-off", &[], |i| {
            let a = i.assessment.as_mut().ok_or_else(|| {
                Error::Invalid("assess the incident first (`rxvault breach assess`)".into())
            })?;
            if let Some(f) = a.factors.iter().position(|f| !f.reviewed) {
                return Err(Error::Invalid(format!(
                    "factor {} has not been reviewed (`rxvault breach risk --factor {}`)",
                    f + 1,
                    f + 1
                )));
            }
            a.signed_off_by = Some(by);
            a.signed_off_ms = Some(at);
            Ok(())
        })
    }

    fn evaluate(&self, incident: &crate::Incident) -> Result<Assessment> {
        let vault = self.vault();
        let config = vault.config();
        let status = vault.key_status()?;
        let mut evidence = Vec::new();
        let mut plaintext = Vec::new();
        let key_place = match &config.key_file {
            Some(f) => format!("a key file at {}", f.display()),
            None => format!("KEK kind {}", status.kek_kind),
        };
        let key_inside = config
            .key_file
            .as_ref()
            .is_some_and(|f| f.starts_with(&config.dir));
        for t in &incident.taken {
            match t {
                Taken::DataDirectory | Taken::Backup { .. } => {
                    let what = match t {
                        Taken::Backup { location } => format!("the backup at {location}"),
                        _ => format!("the data directory {}", config.dir.display()),
                    };
                    evidence.push(format!(
                        "{what} holds records sealed with AES-256-GCM under 256-bit data keys, \
                         which are wrapped by the key-encryption key (version {}, {key_place}); \
                         blind indexes and record keys are HMAC-SHA256 under a 256-bit key wrapped \
                         the same way; the audit log's bodies are sealed alike",
                        status.kek_version
                    ));
                    if key_inside {
                        plaintext.push(format!(
                            "the key file is inside the data directory ({}), so it was taken with it",
                            config.dir.display()
                        ));
                    }
                }
                Taken::Export { export_id } => {
                    let scope = vault
                        .use_audit_log(self.requester(), AuditLogUse::ExportScope, |r| {
                            r.export_scope(export_id)
                        })?
                        .ok_or_else(|| {
                            Error::Invalid(format!(
                                "{export_id:?} is not the ID of an rxvault export this vault's \
                                 audit log recorded"
                            ))
                        })?;
                    match &scope.protection {
                        ExportProtection::Age { recipients } => evidence.push(format!(
                            "export {export_id} ({}, {} patients) was encrypted with age \
                             (X25519 key agreement, ChaCha20-Poly1305 payload, 256-bit file keys) \
                             to {}; its started entry is audit entry {}",
                            scope.format.name(),
                            scope.patients.len(),
                            recipients.join(", "),
                            scope.started.index
                        )),
                        ExportProtection::Plaintext => plaintext.push(format!(
                            "export {export_id} ({}, {} patients) was written in PLAINTEXT \
                             (audit entry {})",
                            scope.format.name(),
                            scope.patients.len(),
                            scope.started.index
                        )),
                    }
                }
                Taken::Plaintext { what } => plaintext.push(format!("{what} (in the clear)")),
            }
        }
        if let Some(scope) = &incident.scope {
            let s = &scope.selectors;
            if !(s.users.is_empty()
                && s.sessions.is_empty()
                && s.hosts.is_empty()
                && s.ips.is_empty())
                || s.from_ms.is_some()
                || s.to_ms.is_some()
            {
                plaintext.push(format!(
                    "{} audit entries record PHI decrypted through the vault for the selected \
                     accounts, sessions, hosts or addresses",
                    scope.entries
                ));
            }
            if scope.leaked.as_ref().is_some_and(|l| !l.matched.is_empty()) {
                plaintext.push("a leaked file holds PHI of matched patients in the clear".into());
            }
        }
        let keys = incident.keys_compromised;
        match keys {
            Some(false) => evidence.push(format!(
                "key material recorded as not compromised; key use is audited (key \
                 administration entries in the audit log); {} data keys",
                status.data_keys.len()
            )),
            Some(true) => plaintext.push("key material is recorded as compromised".into()),
            None => plaintext.push("whether key material was compromised is not recorded".into()),
        }
        let reportable = !plaintext.is_empty() || incident.taken.is_empty();
        let conclusion = if reportable {
            format!(
                "REPORTABLE: the full scope applies ({})",
                if plaintext.is_empty() {
                    "nothing recorded as taken".to_string()
                } else {
                    plaintext.join("; ")
                }
            )
        } else {
            "NOT REPORTABLE (safe harbor, 45 CFR 164.402 and 74 FR 19006): only ciphertext was \
             taken and the keys were not compromised; no notification is generated"
                .to_string()
        };
        evidence.extend(plaintext.iter().map(|p| format!("against: {p}")));
        let phi: Vec<&str> = incident
            .scope
            .as_ref()
            .map(|s| s.phi_union().into_iter().map(|p| p.name()).collect())
            .unwrap_or_default();
        let n = incident.scope.as_ref().map_or(0, |s| s.affected.len());
        let answers = [
            format!(
                "{n} individuals; PHI types exposed: {}",
                if phi.is_empty() {
                    "not scoped yet".to_string()
                } else {
                    phi.join(", ")
                }
            ),
            format!("To complete. Incident summary: {}", incident.summary),
            if reportable {
                format!(
                    "The audit log shows PHI decrypted or taken in the clear: {}",
                    plaintext.join("; ")
                )
            } else {
                "Only ciphertext was taken; the keys were not compromised".to_string()
            },
            "To complete (what was done to mitigate: sessions revoked, keys rotated, \
             recipients' assurances)"
                .to_string(),
        ];
        Ok(Assessment {
            reportable,
            conclusion,
            evidence,
            factors: QUESTIONS
                .iter()
                .zip(answers)
                .map(|(q, a)| Factor {
                    question: q.to_string(),
                    answer: a,
                    reviewed: false,
                })
                .collect(),
            signed_off_by: None,
            signed_off_ms: None,
        })
    }
}
