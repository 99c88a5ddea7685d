//! Incidents: opened, viewed and edited on someone's behalf, sealed at
//! rest, every act audited.
//!
//! An incident is one JSON document sealed with the vault's keys
//! (`seal_blob("breach-incident", id)`, so a document moved under another
//! id does not open) and stored in `sealed_documents` with a revision:
//! an edit replaces the revision it read, so two concurrent edits cannot
//! silently lose one ([`Error::Conflict`]). Each act is recorded in the
//! audit log ([`Action::Incident`]) before it is written; a write that
//! then fails is recorded again as an error.

use crate::harbor::{Assessment, Taken};
use crate::rules::{Counts, Obligation, Rules};
use crate::scope::Scope;
use crate::{Error, Result, dates};
use rxvault_audit::{Action, Outcome};
use rxvault_store::auth::{AuthStore, StoredDocument};
use rxvault_vault::Vault;
use rxvault_vault::access::Requester;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::Date;

/// The namespace of incidents in `sealed_documents`.
pub const NAMESPACE: &str = "breach-incident";
/// The sealing domain of incidents.
const DOMAIN: &str = "breach-incident";

/// A breach incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Its id (`INC-...`).
    pub id: String,
    /// What happened, in the privacy officer's words.
    pub summary: String,
    /// The day it was discovered (164.404(a)(2)).
    #[serde(with = "dates::ymd")]
    pub discovered: Date,
    /// When the breach began, if known.
    #[serde(with = "dates::opt")]
    pub occurred_from: Option<Date>,
    /// When it ended, if known.
    #[serde(with = "dates::opt")]
    pub occurred_to: Option<Date>,
    /// When it was opened (Unix ms).
    pub opened_ms: i64,
    /// Whether it is closed.
    #[serde(default)]
    pub closed: bool,
    /// What was taken, as far as known (for the safe-harbor check).
    #[serde(default)]
    pub taken: Vec<Taken>,
    /// Whether key material is known to be compromised (`None`: not
    /// recorded yet).
    #[serde(default)]
    pub keys_compromised: Option<bool>,
    /// The affected individuals, once scoped.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// The counts of the last outputs (states and unmailable addresses
    /// known from the letters' reads).
    #[serde(default)]
    pub counts: Option<Counts>,
    /// The safe-harbor assessment, once made.
    #[serde(default)]
    pub assessment: Option<Assessment>,
    /// Notices given: party name → date.
    #[serde(default)]
    pub notices: std::collections::BTreeMap<String, String>,
    /// Every change: who, when, what.
    #[serde(default)]
    pub history: Vec<Change>,
    /// The stored revision (not part of the document).
    #[serde(skip)]
    pub revision: u64,
}

/// One change of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Who (the actor's id).
    pub by: String,
    /// What (`open`, `scope`, `assess`, `taken`, `notice`, ...).
    pub operation: String,
}

impl Incident {
    /// Its counts, once scoped.
    pub fn counts(&self) -> Option<Counts> {
        self.counts
            .clone()
            .or_else(|| self.scope.as_ref().map(Scope::counts))
    }

    /// Whether its occurrence window meets `other`'s (both must be known;
    /// an open end is the discovery day).
    pub fn window_overlaps(&self, other: &Incident) -> bool {
        let (Some(a0), Some(b0)) = (self.occurred_from, other.occurred_from) else {
            return false;
        };
        let a1 = self.occurred_to.unwrap_or(self.discovered);
        let b1 = other.occurred_to.unwrap_or(other.discovered);
        a0 <= b1 && b0 <= a1
    }

    /// How many affected patients it shares with `other` (both scoped).
    pub fn shared_patients(&self, other: &Incident) -> usize {
        match (&self.scope, &other.scope) {
            (Some(a), Some(b)) => {
                let theirs: std::collections::BTreeSet<_> =
                    b.affected.iter().map(|p| p.patient).collect();
                a.affected
                    .iter()
                    .filter(|p| theirs.contains(&p.patient))
                    .count()
            }
            _ => 0,
        }
    }
}

/// An overlap with another incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overlap {
    /// The other incident.
    pub incident: String,
    /// Their occurrence windows meet.
    pub window: bool,
    /// Patients both scopes name.
    pub shared_patients: usize,
}

/// Where an incident stands.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The obligations, with what was done.
    pub obligations: Vec<(Obligation, Option<String>)>,
    /// What is still open (no notice recorded), by party name.
    pub open: Vec<String>,
    /// Other incidents it overlaps.
    pub overlaps: Vec<Overlap>,
    /// The counts, once scoped.
    pub counts: Option<Counts>,
    /// Not reportable (safe harbor), if assessed so.
    pub not_reportable: bool,
}

/// Breach response on someone's behalf in one vault.
pub struct Breach<'v> {
    vault: &'v Vault,
    who: Requester,
    store: Arc<dyn AuthStore>,
    rules: Rules,
}

impl std::fmt::Debug for Breach<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breach").finish_non_exhaustive()
    }
}

impl<'v> Breach<'v> {
    /// Breach response in `vault` on `who`'s behalf, with the bundled
    /// rules.
    pub fn new(vault: &'v Vault, who: Requester) -> Result<Self> {
        // The audit log opens the vault's shared data key too (sealing
        // needs it).
        vault.audit()?;
        Ok(Self {
            store: vault.auth_store()?,
            vault,
            who,
            rules: Rules::bundled(),
        })
    }

    /// Uses another rules table.
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// The vault.
    pub fn vault(&self) -> &'v Vault {
        self.vault
    }

    /// On whose behalf.
    pub fn requester(&self) -> &Requester {
        &self.who
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub(crate) fn now_ms(&self) -> i64 {
        let now = self.vault.clock().now();
        now.unix_timestamp() * 1000 + i64::from(now.millisecond())
    }

    /// Records an act on `incident` (before it happens).
    pub(crate) fn audit(
        &self,
        incident: &str,
        operation: &str,
        outcome: Outcome,
        patients: impl IntoIterator<Item = rxvault_model::Rid>,
    ) -> Result<()> {
        self.vault.record(
            self.who
                .entry(Action::Incident {
                    incident: incident.to_string(),
                    operation: operation.to_string(),
                })
                .outcome(outcome)
                .patients(patients),
        )?;
        Ok(())
    }

    /// Opens an incident discovered on `discovered`. Refused when its
    /// occurrence window meets an open incident's, unless `allow_overlap`
    /// (the error names them). Audited (`open`) before it is stored.
    pub fn open(
        &self,
        discovered: Date,
        summary: &str,
        occurred: (Option<Date>, Option<Date>),
        allow_overlap: bool,
    ) -> Result<Incident> {
        if summary.trim().is_empty() {
            return Err(Error::Invalid("an incident needs a summary".into()));
        }
        let today = self.vault.today();
        if discovered > today {
            return Err(Error::Invalid(format!(
                "the discovery date {} is after today ({})",
                dates::format(discovered),
                dates::format(today)
            )));
        }
        if let (Some(a), Some(b)) = occurred
            && a > b
        {
            return Err(Error::Invalid(
                "the breach cannot end before it began".into(),
            ));
        }
        if let Some(a) = occurred.0
            && a > discovered
        {
            return Err(Error::Invalid(
                "the breach cannot begin after it was discovered".into(),
            ));
        }
        let id = format!("INC-{}", &rxvault_crypto::random_id()?[..10].to_uppercase());
        let now = self.now_ms();
        let mut incident = Incident {
            id: id.clone(),
            summary: summary.trim().to_string(),
            discovered,
            occurred_from: occurred.0,
            occurred_to: occurred.1,
            opened_ms: now,
            closed: false,
            taken: Vec::new(),
            keys_compromised: None,
            scope: None,
            counts: None,
            assessment: None,
            notices: Default::default(),
            history: vec![Change {
                at_ms: now,
                by: self.who.actor.id.clone(),
                operation: "open".into(),
            }],
            revision: 0,
        };
        let overlaps: Vec<String> = self
            .load_all()?
            .into_iter()
            .filter(|o| !o.closed && incident.window_overlaps(o))
            .map(|o| o.id)
            .collect();
        if !overlaps.is_empty() && !allow_overlap {
            return Err(Error::Overlap(overlaps));
        }
        self.audit(&id, "open", Outcome::Success, [])?;
        if let Err(e) = self.put(&mut incident) {
            let _ = self.audit(&id, "open", Outcome::Error, []);
            return Err(e);
        }
        Ok(incident)
    }

    /// Every incident, oldest first. Audited (`list`).
    pub fn list(&self) -> Result<Vec<Incident>> {
        let mut all = self.load_all()?;
        all.sort_by_key(|i| (i.opened_ms, i.id.clone()));
        self.audit("*", "list", Outcome::Success, [])?;
        Ok(all)
    }

    /// One incident. Audited (`show`; an unknown id as an error).
    pub fn show(&self, id: &str) -> Result<Incident> {
        match self.load(id) {
            Ok(i) => {
                self.audit(id, "show", Outcome::Success, [])?;
                Ok(i)
            }
            Err(e) => {
                self.audit(id, "show", Outcome::Error, [])?;
                Err(e)
            }
        }
    }

    /// Where an incident stands: its obligations by the rules, what is
    /// still open, and the incidents it overlaps.
    pub fn status(&self, incident: &Incident) -> Result<Status> {
        let counts = incident.counts();
        let not_reportable = incident.assessment.as_ref().is_some_and(|a| !a.reportable);
        let obligations: Vec<(Obligation, Option<String>)> = if not_reportable {
            Vec::new()
        } else {
            self.rules
                .obligations(incident.discovered, counts.as_ref())
                .into_iter()
                .map(|o| {
                    let done = incident.notices.get(&o.party.name()).cloned();
                    (o, done)
                })
                .collect()
        };
        let open = obligations
            .iter()
            .filter(|(_, done)| done.is_none())
            .map(|(o, _)| o.party.name())
            .collect();
        let overlaps = self
            .load_all()?
            .into_iter()
            .filter(|o| o.id != incident.id)
            .filter_map(|o| {
                let window = incident.window_overlaps(&o);
                let shared_patients = incident.shared_patients(&o);
                (window || shared_patients > 0).then_some(Overlap {
                    incident: o.id,
                    window,
                    shared_patients,
                })
            })
            .collect();
        Ok(Status {
            obligations,
            open,
            overlaps,
            counts,
            not_reportable,
        })
    }

    /// Changes an incident: `change` edits the current revision, which is
    /// then stored in place of it. Audited (`operation`, naming `patients`)
    /// before the write; a stale revision (someone else's edit) is a
    /// [`Error::Conflict`] and nothing is written.
    pub fn edit(
        &self,
        id: &str,
        operation: &str,
        patients: &[rxvault_model::Rid],
        change: impl FnOnce(&mut Incident) -> Result<()>,
    ) -> Result<Incident> {
        let mut incident = match self.load(id) {
            Ok(i) => i,
            Err(e) => {
                self.audit(id, operation, Outcome::Error, [])?;
                return Err(e);
            }
        };
        change(&mut incident)?;
        incident.history.push(Change {
            at_ms: self.now_ms(),
            by: self.who.actor.id.clone(),
            operation: operation.to_string(),
        });
        self.audit(id, operation, Outcome::Success, patients.iter().copied())?;
        if let Err(e) = self.put(&mut incident) {
            let _ = self.audit(id, operation, Outcome::Error, []);
            return Err(e);
        }
        Ok(incident)
    }

    /// Records a notice given to `party` on `date`.
    pub fn record_notice(&self, id: &str, party: &str, date: Date) -> Result<Incident> {
        self.edit(id, "notice", &[], |i| {
            i.notices.insert(party.to_string(), dates::format(date));
            Ok(())
        })
    }

    fn load(&self, id: &str) -> Result<Incident> {
        let doc = self
            .store
            .sealed_document(NAMESPACE, id)?
            .ok_or_else(|| Error::UnknownIncident(id.to_string()))?;
        self.open_doc(&doc)
    }

    fn load_all(&self) -> Result<Vec<Incident>> {
        self.store
            .sealed_documents(NAMESPACE)?
            .iter()
            .map(|d| self.open_doc(d))
            .collect()
    }

    fn open_doc(&self, doc: &StoredDocument) -> Result<Incident> {
        let plain = self
            .vault
            .secrets()
            .open_blob(DOMAIN, doc.id.as_bytes(), &doc.sealed)?;
        let mut incident: Incident = serde_json::from_slice(&plain)
            .map_err(|e| Error::Invalid(format!("incident {} does not decode: {e}", doc.id)))?;
        if incident.id != doc.id {
            return Err(Error::Invalid(format!(
                "incident stored as {} names itself {}",
                doc.id, incident.id
            )));
        }
        incident.revision = doc.revision;
        Ok(incident)
    }

    fn put(&self, incident: &mut Incident) -> Result<()> {
        let plain = zeroizing_json(incident)?;
        let sealed = self
            .vault
            .secrets()
            .seal_blob(DOMAIN, incident.id.as_bytes(), &plain)?;
        let dek = rxvault_crypto::otp::blob_dek(&sealed)
            .ok_or_else(|| Error::Invalid("a sealed value names no data key".into()))?;
        let now = self.vault.clock().now().unix_timestamp();
        let doc = StoredDocument {
            namespace: NAMESPACE.into(),
            id: incident.id.clone(),
            revision: incident.revision + 1,
            dek,
            sealed,
            created_at: incident.opened_ms / 1000,
            updated_at: now,
        };
        if !self.store.put_sealed_document(&doc)? {
            return Err(Error::Conflict(incident.id.clone()));
        }
        incident.revision = doc.revision;
        Ok(())
    }
}

fn zeroizing_json(incident: &Incident) -> Result<Vec<u8>> {
    serde_json::to_vec(incident)
        .map_err(|e| Error::Invalid(format!("incident {} does not encode: {e}", incident.id)))
}
