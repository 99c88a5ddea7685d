//! Audited access: reading, searching, writing and exporting PHI on
//! someone's behalf. This is what the HTTP server and the CLI call.
//!
//! **No audit, no access.** Every function here appends an entry to the
//! vault's tamper-evident audit log and waits until it is durably committed
//! before it returns any PHI (reads, searches) or makes a write visible to
//! the caller. If the audit log cannot record, the request fails.
//!
//! Using the audit log itself (a query, an export of it, a verification)
//! goes through here as well ([`Vault::use_audit_log`],
//! [`Vault::verify_audit_log`]): recorded once the use ended, with its
//! outcome.
//!
//! What a caller may see is a [`View`]: a [`CategorySet`] per record kind.
//! The vault decrypts only those categories, and the audit entry records
//! exactly which categories were decrypted for which patients.

use crate::export::{ExportReport, Shipment, ShippingReport, Target};
use crate::keys::Progress;
use crate::query::{Chart, Find};
use crate::records::{ResourceJson, SealError};
use crate::{Result, Vault};
use rxvault_audit::entry::WriteOp;
use rxvault_audit::{
    Action, Actor, AuditConfig, AuditLog, Entry, ExportFormat, KindCategories, Outcome,
    StoreLocation,
};
use rxvault_fhir::{FieldError, Resource, split};
use rxvault_model::{CategorySet, FieldCategory, RecordKind, Rid};
use rxvault_store::{Op, WriteBatch};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Who is asking, as the audit log records it.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The user, service account or local operator.
    pub actor: Actor,
    /// Their session, if any.
    pub session: Option<String>,
    /// Where the request came from.
    pub source: Option<IpAddr>,
    /// The workstation or agent, if known.
    pub host: Option<String>,
    /// The break-glass grant active for their session, if any.
    pub break_glass: Option<String>,
}

impl Requester {
    /// Someone at this machine's command line (holding the vault's key):
    /// recorded as the local operating-system user.
    pub fn local() -> Self {
        Self {
            actor: Actor::local_operator(),
            session: None,
            source: None,
            host: None,
            break_glass: None,
        }
    }

    /// An audit entry for `action` by this requester.
    pub fn entry(&self, action: Action) -> Entry {
        let mut e = Entry::new(self.actor.clone(), action);
        if let Some(s) = &self.session {
            e = e.session(s.clone());
        }
        if let Some(ip) = self.source {
            e = e.source(ip);
        }
        if let Some(h) = &self.host {
            e = e.host(h.clone());
        }
        if let Some(g) = &self.break_glass {
            e = e.break_glass(g.clone());
        }
        e
    }
}

/// The field categories a caller may see, per record kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View([CategorySet; 5]);

impl View {
    /// Everything (the local operator; break-glass).
    pub const ALL: View = View([CategorySet::ALL; 5]);

    /// The same categories of every kind.
    pub fn uniform(categories: CategorySet) -> Self {
        View([categories; 5])
    }

    /// A view from a function of the record kind (a role's permission
    /// table).
    pub fn from_fn(f: impl Fn(RecordKind) -> CategorySet) -> Self {
        View(RecordKind::ALL.map(f))
    }

    /// What may be seen of records of `kind`.
    pub fn of(&self, kind: RecordKind) -> CategorySet {
        self.0[usize::from(kind.code() - 1)]
    }

    fn union(&self, kinds: &[RecordKind]) -> CategorySet {
        kinds.iter().flat_map(|k| self.of(*k).iter()).collect()
    }
}

/// PHI read on someone's behalf whose audit entry is submitted but not yet
/// known to be durable. The value is released only once it is
/// ([`wait`](Audited::wait) on a thread that may block,
/// [`released`](Audited::released) in async code): no audit, no access.
#[must_use = "the value is released only once its audit entry is durable"]
pub struct Audited<T> {
    value: T,
    pending: rxvault_audit::Pending<rxvault_audit::Receipt>,
}

impl<T> std::fmt::Debug for Audited<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value: it is PHI.
        f.debug_struct("Audited")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<T> Audited<T> {
    /// Blocks until the audit entry is durable, then releases the value.
    pub fn wait(self) -> Result<T> {
        self.pending.wait()?;
        Ok(self.value)
    }

    /// Waits (without blocking a thread) until the audit entry is durable,
    /// then releases the value.
    pub async fn released(self) -> Result<T> {
        self.pending.await?;
        Ok(self.value)
    }
}

impl Vault {
    /// The vault's audit log, opened on first use (creating its storage and
    /// the vault's checkpoint signing key if needed).
    pub fn audit(&self) -> Result<&Arc<AuditLog>> {
        if let Some(log) = self.audit.get() {
            return Ok(log);
        }
        let _guard = self.audit_open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = self.audit.get() {
            return Ok(log);
        }
        self.ensure_dek()?;
        self.ensure_signer()?;
        let log = AuditLog::open_for(
            &self.audit_location(),
            &self.config.vault_id,
            self.keys.secrets().clone(),
            self.clock.clone(),
            AuditConfig::for_vault(&self.config.vault_id),
        )?;
        Ok(self.audit.get_or_init(|| Arc::new(log)))
    }

    /// Where the vault's audit log is stored: `DIR/audit.db`, or the
    /// `audit_*` tables of its PostgreSQL schema.
    pub fn audit_location(&self) -> StoreLocation {
        self.config.audit_location()
    }

    /// Appends an entry and waits until it is durable.
    pub fn record(&self, entry: Entry) -> Result<rxvault_audit::Receipt> {
        Ok(self.audit()?.append(entry)?)
    }

    /// Submits an entry; it is durable once the returned
    /// [`Pending`](rxvault_audit::Pending) resolves.
    pub fn submit(&self, entry: Entry) -> Result<rxvault_audit::Pending<rxvault_audit::Receipt>> {
        Ok(self.audit()?.submit(entry)?)
    }

    /// A patient's chart as `who` may see it. Audited: one `Read` entry
    /// naming the patient and the categories decrypted (also when there is
    /// no such patient: probing is worth knowing about).
    pub fn read_chart(
        &self,
        who: &Requester,
        view: &View,
        patient_id: &str,
    ) -> Result<Option<Chart>> {
        let rid = self.rid(RecordKind::Patient, patient_id);
        let chart = self.chart_with(&rid, view)?;
        let categories = view.union(&RecordKind::ALL);
        let entry = who.entry(Action::Read {
            kind: None,
            categories,
        });
        let entry = match &chart {
            Some(_) => entry.patients([rid]),
            None => entry.outcome(Outcome::Error),
        };
        self.record(entry)?;
        Ok(chart)
    }

    /// One record by FHIR type and id, as `who` may see it. Audited.
    pub fn read_record(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        id: &str,
    ) -> Result<Option<Resource>> {
        self.read_record_by_key(who, view, kind, &self.rid(kind, id))
    }

    /// One record by its storage key (from a blind-index lookup), as `who`
    /// may see it. Audited.
    pub fn read_record_by_key(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        rid: &Rid,
    ) -> Result<Option<Resource>> {
        self.read_record_audited(who, view, kind, rid)?.wait()
    }

    /// [`read_record_by_key`](Vault::read_record_by_key) without waiting
    /// for the audit commit: the record is released by the [`Audited`]
    /// once its entry is durable (so an async caller does not hold a
    /// thread while the group commit runs).
    pub fn read_record_audited(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        rid: &Rid,
    ) -> Result<Audited<Option<Resource>>> {
        self.read_audited(who, view, kind, rid, Vault::open_record)
    }

    /// [`read_record_audited`](Vault::read_record_audited) as JSON text
    /// ([`open_record_json`](Vault::open_record_json)), for a response
    /// that serves the record as is.
    pub fn read_record_json_audited(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        rid: &Rid,
    ) -> Result<Audited<Option<ResourceJson>>> {
        self.read_audited(who, view, kind, rid, Vault::open_record_json)
    }

    fn read_audited<T>(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        rid: &Rid,
        open: fn(&Vault, &rxvault_store::StoredRecord, CategorySet) -> Result<T>,
    ) -> Result<Audited<Option<T>>> {
        let found = match self.store.get(kind, rid)? {
            Some(record) => Some((
                open(self, &record, view.of(kind))?,
                record.patient.unwrap_or(*rid),
            )),
            None => None,
        };
        let entry = who.entry(Action::Read {
            kind: Some(kind),
            categories: view.of(kind),
        });
        let entry = match &found {
            Some((_, patient)) => entry.patients([*patient]).resources([*rid]),
            None => entry.outcome(Outcome::Error),
        };
        let pending = self.submit(entry)?;
        Ok(Audited {
            value: found.map(|(r, _)| r),
            pending,
        })
    }

    /// A patient's records of one kind, as `who` may see them. Audited:
    /// the entry names the patient when there is one (an empty list is
    /// still something learnt about them: "no known allergies"), and no
    /// one when there is no such patient.
    pub fn read_patient_records(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        patient_id: &str,
    ) -> Result<Vec<Resource>> {
        let patient = self.rid(RecordKind::Patient, patient_id);
        let records = self.store.by_patient(kind, &patient)?;
        let exists =
            !records.is_empty() || self.store.get(RecordKind::Patient, &patient)?.is_some();
        let out: Vec<Resource> = records
            .iter()
            .map(|r| self.open_record(r, view.of(kind)))
            .collect::<Result<_>>()?;
        self.record(
            who.entry(Action::Read {
                kind: Some(kind),
                categories: view.of(kind),
            })
            .patients(exists.then_some(patient))
            .resources(records.iter().map(|r| r.rid)),
        )?;
        Ok(out)
    }

    /// Searches patients through the blind indexes and opens the matches
    /// with `who`'s patient view. Audited: the kind of query (never its
    /// values), the categories decrypted and every patient returned (none
    /// when nothing matched: the search is recorded all the same).
    pub fn search_patients(
        &self,
        who: &Requester,
        view: &View,
        query: &Find,
    ) -> Result<Vec<(Rid, Resource)>> {
        self.search_patients_where(who, view, query, |_| true)
    }

    /// [`search_patients`](Vault::search_patients), narrowed by `keep` (a
    /// test on the patient as `who` sees it, such as FHIR's `given`) before
    /// the entry is written: the entry names exactly the patients returned.
    pub fn search_patients_where(
        &self,
        who: &Requester,
        view: &View,
        query: &Find,
        keep: impl Fn(&Resource) -> bool,
    ) -> Result<Vec<(Rid, Resource)>> {
        let categories = view.of(RecordKind::Patient);
        let found: Vec<(Rid, Resource)> = self
            .find_resources(query, categories)?
            .into_iter()
            .filter(|(_, r)| keep(r))
            .collect();
        self.record(
            who.entry(Action::Search {
                query: query.kind_name().to_string(),
                results: found.len() as u64,
                kind: Some(RecordKind::Patient),
                categories: Some(categories),
            })
            .patients(found.iter().map(|(rid, _)| *rid)),
        )?;
        Ok(found)
    }

    /// Records of `kind` found through the blind index `query` names (a
    /// member ID for coverages, an Rx number for prescriptions, a
    /// transaction ID for fills), opened with `who`'s view of `kind`.
    /// `keep` narrows the hits by record key before anything is decrypted
    /// (a constraint such as "fills dated today"). Audited: one search
    /// entry with the kind of query, the kind and categories returned, the
    /// records returned and their patients; also when nothing matched
    /// (then it names no one).
    pub fn search_records(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        query: &Find,
        keep: impl Fn(&Rid) -> bool,
    ) -> Result<Vec<(Rid, Resource)>> {
        let (index, value) = query.index();
        // Checked hits: each record was sealed with this index entry.
        let hits = match self.token(index, &value) {
            Some(token) => self.lookup_records(index, &token)?,
            None => Vec::new(),
        };
        let categories = view.of(kind);
        let mut found: Vec<(Rid, Resource)> = Vec::new();
        let mut patients: Vec<Rid> = Vec::new();
        for record in hits.iter().filter(|r| r.kind == kind && keep(&r.rid)) {
            if found.iter().any(|(rid, _)| *rid == record.rid) {
                continue; // two identifiers of one record with the same key
            }
            let patient = record.patient.unwrap_or(record.rid);
            if !patients.contains(&patient) {
                patients.push(patient);
            }
            found.push((record.rid, self.open_record(record, categories)?));
        }
        self.record(
            who.entry(Action::Search {
                query: query.kind_name().to_string(),
                results: found.len() as u64,
                kind: Some(kind),
                categories: Some(categories),
            })
            .patients(patients)
            .resources(found.iter().map(|(rid, _)| *rid)),
        )?;
        Ok(found)
    }

    /// Creates a record. Every element must be in a category `view` allows
    /// for `kind`; a resource without an id gets a new one; an id already in
    /// use is a conflict. Audited before the write.
    pub fn create_record(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        mut resource: Resource,
    ) -> Result<(String, Rid), WriteError> {
        let id = match resource.get("id").and_then(serde_json::Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                let id = new_fhir_id()?;
                resource.insert("id".into(), id.clone().into());
                id
            }
        };
        let rid = self.rid(kind, &id);
        // A new patient record is its own patient; for other kinds the
        // patient is named inside the refused resource, which is not read.
        let patient = (kind == RecordKind::Patient).then_some(rid);
        self.check_writable_audited(who, view, kind, &resource, WriteOp::Create, rid, patient)?;
        if self.store.get(kind, &rid)?.is_some() {
            return Err(WriteError::Conflict);
        }
        let rid = self.write_record(who, kind, resource, WriteOp::Create)?;
        Ok((id, rid))
    }

    /// Updates a record. The caller replaces the categories `view` allows;
    /// the record's other categories are kept as they are, where they are
    /// (a role cannot erase what it cannot see: [`split::overlay`]), and an
    /// element in a category it may not write is refused, as is an update
    /// that would move data into or out of a category the caller may not
    /// see (naming the hidden `Medication` a fill's ship-to). Audited
    /// before the write.
    pub fn update_record(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        id: &str,
        mut resource: Resource,
    ) -> Result<Rid, WriteError> {
        match resource.get("id").and_then(serde_json::Value::as_str) {
            Some(body_id) if body_id != id => {
                return Err(WriteError::Invalid(FieldError::new(
                    format!("{kind}.id"),
                    "must match the id in the URL",
                )));
            }
            Some(_) => {}
            None => {
                resource.insert("id".into(), id.into());
            }
        }
        let rid = self.rid(kind, id);
        let Some(existing) = self.store.get(kind, &rid)? else {
            check_writable(kind, &resource, view)?;
            return Err(WriteError::NotFound);
        };
        let patient = existing
            .patient
            .or((kind == RecordKind::Patient).then_some(rid));
        self.check_writable_audited(who, view, kind, &resource, WriteOp::Update, rid, patient)?;
        let allowed = view.of(kind);
        let current = self.open_record(&existing, CategorySet::ALL)?;
        let merged = match split::overlay(kind, current, resource, allowed) {
            Ok(merged) => merged,
            Err(e) => {
                let (element, category) = match e {
                    split::OverlayError::Hidden { element, category } => {
                        (format!("{kind}.{element}"), category)
                    }
                    split::OverlayError::Changed => (
                        kind.to_string(),
                        // The first category the writer may not see.
                        FieldCategory::ALL
                            .into_iter()
                            .find(|c| !allowed.contains(*c))
                            .unwrap_or(FieldCategory::Clinical),
                    ),
                };
                self.record(denied_write(who, kind, WriteOp::Update, rid, patient))?;
                return Err(WriteError::Forbidden { element, category });
            }
        };
        self.write_record(who, kind, merged, WriteOp::Update)
    }

    /// [`check_writable`], with a refusal (an element the role may not
    /// write) audited as a denied write of that record.
    #[allow(clippy::too_many_arguments)]
    fn check_writable_audited(
        &self,
        who: &Requester,
        view: &View,
        kind: RecordKind,
        resource: &Resource,
        operation: WriteOp,
        rid: Rid,
        patient: Option<Rid>,
    ) -> Result<(), WriteError> {
        let result = check_writable(kind, resource, view);
        if matches!(result, Err(WriteError::Forbidden { .. })) {
            self.record(denied_write(who, kind, operation, rid, patient))?;
        }
        result
    }

    /// Seals and writes one record, audited before the write (so no write
    /// happens unrecorded); a failed write is recorded as such.
    fn write_record(
        &self,
        who: &Requester,
        kind: RecordKind,
        resource: Resource,
        operation: WriteOp,
    ) -> Result<Rid, WriteError> {
        let write = self.seal(kind, resource).map_err(|e| match e {
            SealError::Invalid(f) => WriteError::Invalid(f),
            SealError::Failed(e) => WriteError::Failed(e),
        })?;
        let rid = write.record.rid;
        let patient = write.record.patient.unwrap_or(rid);
        let action = Action::Write {
            kind: Some(kind),
            operation,
            records: 1,
        };
        self.record(
            who.entry(action.clone())
                .patients([patient])
                .resources([rid]),
        )?;
        let result = self.store.write(&WriteBatch {
            ops: vec![Op::Put(write)],
            at: self.now_unix(),
        });
        if let Err(e) = result {
            let _ = self.record(
                who.entry(action)
                    .patients([patient])
                    .resources([rid])
                    .outcome(Outcome::Error),
            );
            return Err(WriteError::Failed(e.into()));
        }
        Ok(rid)
    }

    /// The packages of the fills prepared on `date`, audited as a read of
    /// those fills' shipping data for those patients.
    pub fn shipments_for(&self, who: &Requester, date: &str) -> Result<Vec<Shipment>> {
        let shipments = self.shipments(date)?;
        if !shipments.from_patient.is_empty() {
            self.record(
                who.entry(Action::Read {
                    kind: Some(RecordKind::Patient),
                    categories: CategorySet::of(&crate::export::PATIENT_SHIP_TO),
                })
                .patients(shipments.from_patient.iter().copied()),
            )?;
        }
        self.record(
            who.entry(Action::Read {
                kind: Some(RecordKind::Fill),
                categories: CategorySet::of(&[
                    FieldCategory::Shipping,
                    FieldCategory::Identifiers,
                    FieldCategory::Administrative,
                ]),
            })
            .patients(shipments.patients.iter().copied())
            .resources(shipments.fills.iter().copied()),
        )?;
        Ok(shipments.rows)
    }

    /// Exports every record as FHIR R4 NDJSON (one file per resource type)
    /// into `out`, a folder that must not exist or be empty, with a Bulk
    /// Data style `manifest.json`.
    ///
    /// Audited before the first byte is written: an
    /// [`ExportStarted`](Action::ExportStarted) entry (export ID, format,
    /// folder, plaintext or the age recipients, the categories of each
    /// record kind, and every patient in it) is durable before the folder is
    /// created; an [`ExportFinished`](Action::ExportFinished) entry (counts
    /// and files) follows, or an [`ExportFailed`](Action::ExportFailed) one
    /// (outcome error) when writing fails, and then what was written is
    /// removed. If the finished entry cannot be recorded, the files are
    /// removed and the call fails. A process killed meanwhile leaves files
    /// that hold a subset of what the started entry names.
    pub fn export_fhir_for(
        &self,
        who: &Requester,
        out: &Path,
        target: &Target,
        progress: &mut dyn Progress,
    ) -> Result<ExportReport> {
        crate::export::check_dir(out)?;
        let plan = self.plan_fhir()?;
        let export_id = rxvault_crypto::random_id()?;
        self.record(
            who.entry(Action::ExportStarted {
                export_id: export_id.clone(),
                format: ExportFormat::FhirNdjson,
                destination: destination(out),
                protection: target.protection(),
                categories: plan.categories.clone(),
                records: plan.len(),
            })
            .patients(plan.patients.iter().copied()),
        )?;
        let written = match self.write_fhir(&plan, out, target, &export_id, progress) {
            Ok(w) => w,
            Err(e) => return Err(self.export_failed(who, &export_id, e)),
        };
        let records = written.files.iter().map(|f| f.count).sum();
        let finished = who.entry(Action::ExportFinished {
            export_id: export_id.clone(),
            records,
            patients: written.patients.len() as u64,
            files: written.files.iter().map(|f| f.url.clone()).collect(),
        });
        if let Err(e) = self.record(finished) {
            let _ = std::fs::remove_dir_all(out);
            return Err(e);
        }
        Ok(ExportReport {
            export_id,
            encrypted: matches!(target, Target::Age(_)),
            files: written.files,
            patients: written.patients.into_iter().collect(),
        })
    }

    /// The shipping manifest of the fills prepared on `date` (see
    /// [`Vault::shipments`]) written to `out` (`.age` appended when
    /// encrypted), audited like [`export_fhir_for`](Vault::export_fhir_for):
    /// the started entry names the fills and the patients they ship to, and
    /// the categories the file holds of them (identifiers: the transaction
    /// ID; shipping: carrier, tracking, ship-to name and address).
    pub fn export_shipping_for(
        &self,
        who: &Requester,
        date: &str,
        out: &Path,
        target: &Target,
    ) -> Result<ShippingReport> {
        let path = crate::export::shipping_path(out, target)?;
        let shipments = self.shipments(date)?;
        if shipments.rows.is_empty() && shipments.skipped > 0 {
            // A day of fills and not one label: the manifest would be
            // empty and look like a day without packages.
            return Err(crate::Error::Invalid(format!(
                "none of the {} fills of {date} has a ship-to ({} name a Location resource as their \
                 destination, which rxvault does not store; give the ship-to as a contained \
                 Location, or no destination to use the patient's address): no manifest written",
                shipments.skipped, shipments.unresolved
            )));
        }
        let export_id = rxvault_crypto::random_id()?;
        let mut categories = KindCategories::new();
        if !shipments.rows.is_empty() {
            categories.add(
                RecordKind::Fill,
                CategorySet::of(&crate::export::SHIPPING_CATEGORIES),
            );
        }
        if !shipments.from_patient.is_empty() {
            categories.add(
                RecordKind::Patient,
                CategorySet::of(&crate::export::PATIENT_SHIP_TO),
            );
        }
        self.record(
            who.entry(Action::ExportStarted {
                export_id: export_id.clone(),
                format: ExportFormat::ShippingCsv,
                destination: destination(&path),
                protection: target.protection(),
                categories,
                records: shipments.rows.len() as u64,
            })
            .patients(shipments.patients.iter().copied())
            .resources(shipments.fills.iter().copied()),
        )?;
        if let Err(e) = self.write_shipping(&shipments, &path, target, &export_id) {
            return Err(self.export_failed(who, &export_id, e));
        }
        let finished = who.entry(Action::ExportFinished {
            export_id: export_id.clone(),
            records: shipments.rows.len() as u64,
            patients: shipments.patients.len() as u64,
            files: vec![destination(&path)],
        });
        if let Err(e) = self.record(finished) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(ShippingReport {
            export_id,
            path,
            rows: shipments.rows.len() as u64,
            skipped: shipments.skipped,
            unresolved: shipments.unresolved,
            from_patient_address: shipments.from_patient_packages,
            patients: shipments.patients,
        })
    }

    /// Records that export `export_id` failed with `error` (best effort:
    /// the started entry already says what it may have held) and returns
    /// the error.
    fn export_failed(&self, who: &Requester, export_id: &str, error: crate::Error) -> crate::Error {
        let entry = who
            .entry(Action::ExportFailed {
                export_id: export_id.to_string(),
                reason: error.to_string(),
            })
            .outcome(Outcome::Error);
        if let Err(e) = self.record(entry) {
            tracing::warn!(export = %export_id, error = %e, "could not record the export's failure");
        }
        error
    }
}

/// An export's destination as recorded: absolute, so it still says where
/// the files are when read from elsewhere.
fn destination(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The resource is not valid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// An element is in a category the caller may not write.
    #[error("{element}: your role may not write {category} data")]
    Forbidden {
        /// The element.
        element: String,
        /// Its category.
        category: FieldCategory,
    },
    /// No such record (update).
    #[error("no such record")]
    NotFound,
    /// A record with that id exists (create).
    #[error("a record with that id already exists")]
    Conflict,
    /// The vault failed.
    #[error(transparent)]
    Failed(#[from] crate::Error),
}

impl From<rxvault_store::Error> for WriteError {
    fn from(e: rxvault_store::Error) -> Self {
        WriteError::Failed(e.into())
    }
}

/// The audit entry of a write refused by the categories.
fn denied_write(
    who: &Requester,
    kind: RecordKind,
    operation: WriteOp,
    rid: Rid,
    patient: Option<Rid>,
) -> Entry {
    who.entry(Action::Write {
        kind: Some(kind),
        operation,
        records: 1,
    })
    .outcome(Outcome::Denied)
    .patients(patient)
    .resources([rid])
}

/// Every element of `resource`, at any depth, must be in a category `view`
/// allows for `kind` (categorised by content: [`split::categorised`]).
fn check_writable(kind: RecordKind, resource: &Resource, view: &View) -> Result<(), WriteError> {
    let allowed = view.of(kind);
    if let Some((element, category)) = split::categorised(kind, resource)
        .into_iter()
        .find(|(_, c)| !allowed.contains(*c))
    {
        return Err(WriteError::Forbidden {
            element: format!("{kind}.{element}"),
            category,
        });
    }
    match resource
        .get("resourceType")
        .and_then(serde_json::Value::as_str)
    {
        Some(t) if t == kind.fhir_type() => Ok(()),
        _ => Err(WriteError::Invalid(FieldError::new(
            "resourceType",
            format!("must be {}", kind.fhir_type()),
        ))),
    }
}

/// A new FHIR id: a random UUID-shaped string.
fn new_fhir_id() -> Result<String> {
    let h = rxvault_crypto::random_id()?;
    Ok(format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    ))
}

impl Drop for Vault {
    /// Covers what this process appended with a signed checkpoint, so a
    /// short-lived process (a CLI command) does not leave an unsigned tail.
    fn drop(&mut self) {
        if let Some(log) = self.audit.get() {
            let reader = log.reader();
            let covered = reader
                .latest_checkpoint()
                .ok()
                .flatten()
                .map_or(0, |c| c.checkpoint.size);
            if reader.size().is_ok_and(|size| size > covered)
                && let Err(e) = log.checkpoint()
            {
                tracing::warn!(error = %e, "could not sign a final audit checkpoint");
            }
        }
    }
}

impl Find {
    /// The kind of query, as audited (never the value searched for).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Find::FamilyBirthDate { .. } => "family-birth-date",
            Find::Phone(_) => "phone",
            Find::MemberId(_) => "member-id",
            Find::RxNumber(_) => "rx-number",
            Find::TransactionId(_) => "transaction-id",
            Find::PatientIdentifier(_) => "patient-identifier",
        }
    }
}

/// A use of the audit log itself, as audited (DICOM 110101 "Audit Log
/// Used"): the entry's purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditLogUse {
    /// A forensic query of entries (`rxvault audit query`, `GET
    /// /api/v1/audit`).
    Query,
    /// Which patients matching entries name (`rxvault audit query
    /// --patients`).
    PatientsSeen,
    /// What an export held (`rxvault audit export-scope`).
    ExportScope,
    /// Entries exported (`rxvault audit export`).
    Export,
    /// The whole log verified with the vault's key (`rxvault audit
    /// verify`).
    Verify,
}

impl AuditLogUse {
    /// The purpose recorded (`query`, `patients-seen`, `export-scope`,
    /// `export`, `verify`).
    pub fn name(self) -> &'static str {
        match self {
            AuditLogUse::Query => "query",
            AuditLogUse::PatientsSeen => "patients-seen",
            AuditLogUse::ExportScope => "export-scope",
            AuditLogUse::Export => "export",
            AuditLogUse::Verify => "verify",
        }
    }
}

impl Vault {
    /// Uses the audit log on `who`'s behalf: `read` gets the log's reader,
    /// and the use is recorded (`audit-log-used` with its purpose) once it
    /// ended, with its real outcome: success, or an error if `read`
    /// failed. What `read` returns is handed back only after its entry is
    /// durable. The command line and HTTPS both come here, so the same use
    /// gives the same entry.
    ///
    /// A caller that streams what it reads (an export of the whole log)
    /// writes before the entry; a process killed meanwhile leaves none.
    /// Only the key holder streams (the command line), who can read the
    /// database anyway; HTTPS answers after the entry.
    pub fn use_audit_log<T>(
        &self,
        who: &Requester,
        purpose: AuditLogUse,
        read: impl FnOnce(&rxvault_audit::AuditReader) -> rxvault_audit::Result<T>,
    ) -> Result<T> {
        let result = read(self.audit()?.reader());
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Error
        };
        self.record(
            who.entry(Action::AuditLogUsed {
                purpose: purpose.name().into(),
            })
            .outcome(outcome),
        )?;
        Ok(result?)
    }

    /// Verifies the whole audit log with the vault's key
    /// ([`rxvault_audit::verify::verify`] on a store of its own, so a log
    /// too damaged to append to is still checked) and records the use:
    /// success when the log verifies, an error when it does not (or the
    /// check could not run). When the log is too damaged to record in, the
    /// failed report is still returned (the failure is its own evidence);
    /// a good report is only returned once its entry is durable.
    pub fn verify_audit_log(
        &self,
        who: &Requester,
        options: &rxvault_audit::VerifyOptions,
    ) -> Result<rxvault_audit::Report> {
        let result = rxvault_audit::open_store(&self.audit_location(), false)
            .and_then(|store| rxvault_audit::verify::verify(store.as_ref(), options));
        let outcome = match &result {
            Ok(report) if report.ok() => Outcome::Success,
            _ => Outcome::Error,
        };
        let recorded = self.record(
            who.entry(Action::AuditLogUsed {
                purpose: AuditLogUse::Verify.name().into(),
            })
            .outcome(outcome),
        );
        let report = result?;
        match recorded {
            Ok(_) => Ok(report),
            Err(e) if report.ok() => Err(e),
            Err(e) => {
                tracing::error!(error = %e, "the failed verification could not be recorded in the audit log");
                Ok(report)
            }
        }
    }
}

/// Identity and access record their acts here: the vault's audit log.
impl rxvault_audit::Sink for Vault {
    fn record_entry(&self, entry: Entry) -> std::result::Result<(), String> {
        self.record(entry).map(drop).map_err(|e| e.to_string())
    }
}
