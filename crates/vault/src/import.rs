//! The streaming import: FHIR R4 Bulk NDJSON and Bundles into the vault.
//!
//! ```text
//! files ──> reader thread: parse, validate, split, seal, tokens ──(bounded channel)──>
//!           calling thread: batch ──> store.write (one transaction per batch)
//! ```
//! Memory is bounded by the channel and one batch, whatever the input size.
//! Sealing (the CPU work) and committing (the I/O) overlap on two cores.
//!
//! - **Idempotent**: records are keyed by their FHIR id (through the keyed
//!   record key), so importing the same data again updates, never duplicates.
//! - **Atomic batches**: a killed import leaves whole batches only; running
//!   it again completes it.
//! - **Bad records** are reported with file, line (or Bundle entry) and
//!   field, and skipped; the rest of the file is imported.
//! - **Unknown resource types** are counted and skipped. `Claim` and
//!   `ExplanationOfBenefit` are read for their `insurance`: a patient with no
//!   `Coverage` gets a derived one (tagged, see
//!   [`rxvault_fhir::conventions::DERIVED_TAG_CODE`]), which any real
//!   `Coverage` for that patient replaces.

use crate::access::Requester;
use crate::records::SealError;
use crate::{Error, Result, Vault};
use crossbeam_channel::{Sender, bounded};
use rxvault_fhir::Resource;
use rxvault_fhir::conventions as cv;
use rxvault_fhir::map::reference_id;
use rxvault_fhir::read::{self, Entry, FileError, Format, Item};
use rxvault_model::{RecordKind, Rid};
use rxvault_store::{Op, WriteBatch};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Import settings.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Records per transaction.
    pub batch_records: usize,
    /// Reader limits.
    pub read: read::Options,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            batch_records: 1000,
            read: read::Options::default(),
        }
    }
}

/// A record that was not imported, and why (never its content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    /// File and line, or file and Bundle entry.
    pub location: String,
    /// Field path and what is wrong with it.
    pub message: String,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// How many errors a report keeps verbatim (the rest are counted).
pub const KEPT_ERRORS: usize = 100;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Files read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records stored (created or updated), by FHIR type.
    pub stored: BTreeMap<String, u64>,
    /// Coverages derived from claims.
    pub derived_coverages: u64,
    /// Records deleted (Bundle DELETE requests).
    pub deleted: u64,
    /// Resources of types the vault does not store, by type.
    pub skipped: BTreeMap<String, u64>,
    /// Records rejected.
    pub errors: u64,
    /// The first [`KEPT_ERRORS`] rejections.
    pub first_errors: Vec<RecordError>,
    /// Transactions committed.
    pub batches: u64,
}

impl ImportReport {
    /// Records stored, all types.
    pub fn stored_total(&self) -> u64 {
        self.stored.values().sum()
    }
}

/// Receives an import's progress, on the calling thread.
pub trait ImportObserver {
    /// A file is about to be read.
    fn file(&mut self, _path: &Path, _size: u64) {}
    /// A record was rejected.
    fn error(&mut self, _error: &RecordError) {}
    /// A batch was committed (durably); `report` is the running total.
    fn committed(&mut self, _report: &ImportReport) {}
}

/// An observer that ignores everything.
impl ImportObserver for () {}

enum Msg {
    File(PathBuf, u64),
    Put(&'static str, Box<rxvault_store::RecordWrite>),
    Delete(RecordKind, rxvault_model::Rid),
    Skip(String),
    Error(RecordError),
}

struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Vault {
    #[cfg(feature = "unaudited")]
    /// Imports files and folders (walked for `.ndjson`, `.jsonl`, `.json`).
    ///
    /// Returns the report when every file was read; bad records are in the
    /// report, not an error. An `Err` means the import stopped (a file could
    /// not be read, the store failed): everything committed before stays.
    pub(crate) fn import(
        &self,
        paths: &[PathBuf],
        options: &ImportOptions,
        observer: &mut dyn ImportObserver,
    ) -> Result<ImportReport> {
        self.import_inner(paths, options, observer, None)
    }

    /// [`import`](Vault::import), audited: before each batch is committed,
    /// one `Write` entry naming every patient the batch writes (so no record
    /// is ever stored unrecorded; a batch that then fails is recorded as
    /// failed).
    pub fn import_for(
        &self,
        who: &Requester,
        paths: &[PathBuf],
        options: &ImportOptions,
        observer: &mut dyn ImportObserver,
    ) -> Result<ImportReport> {
        self.import_inner(paths, options, observer, Some(who))
    }

    fn import_inner(
        &self,
        paths: &[PathBuf],
        options: &ImportOptions,
        observer: &mut dyn ImportObserver,
        who: Option<&Requester>,
    ) -> Result<ImportReport> {
        let files = read::expand(paths).map_err(|e| Error::Invalid(e.to_string()))?;
        self.ensure_dek()?;
        let bytes = Arc::new(AtomicU64::new(0));
        let (tx, rx) = bounded::<Msg>(4 * options.batch_records.max(1));
        let mut report = ImportReport::default();
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| self.read_files(&files, options, &bytes, tx));
            let mut ops: Vec<Op> = Vec::with_capacity(options.batch_records);
            // Per record written: its type, and its key if it is a derived
            // coverage (written once per claim, so counted by key).
            let mut pending: Vec<(&'static str, Option<Rid>)> = Vec::new();
            let mut derived_written: HashSet<Rid> = HashSet::new();
            let mut deletes = 0u64;
            let mut commit = |ops: &mut Vec<Op>,
                              pending: &mut Vec<(&'static str, Option<Rid>)>,
                              deletes: &mut u64,
                              report: &mut ImportReport|
             -> Result<()> {
                if ops.is_empty() {
                    return Ok(());
                }
                let audited = match who {
                    Some(who) => Some(self.record_batch(who, ops)?),
                    None => None,
                };
                let written = self.store.write(&WriteBatch {
                    ops: std::mem::take(ops),
                    at: self.now_unix(),
                });
                if let (Err(_), Some(entry)) = (&written, audited) {
                    let _ = self.record(entry.outcome(rxvault_audit::Outcome::Error));
                }
                written?;
                for (ty, derived) in pending.drain(..) {
                    if let Some(rid) = derived {
                        if derived_written.insert(rid) {
                            report.derived_coverages += 1;
                        }
                    } else {
                        *report.stored.entry(ty.to_string()).or_default() += 1;
                    }
                }
                report.deleted += std::mem::take(deletes);
                report.batches += 1;
                report.bytes = bytes.load(Ordering::Relaxed);
                Ok(())
            };
            let mut outcome = Ok(());
            for msg in rx.iter() {
                match msg {
                    Msg::File(path, size) => {
                        report.files += 1;
                        observer.file(&path, size);
                    }
                    Msg::Put(ty, write) => {
                        let derived = write.record.derived.then_some(write.record.rid);
                        pending.push((ty, derived));
                        ops.push(Op::Put(*write));
                    }
                    Msg::Delete(kind, rid) => {
                        deletes += 1;
                        ops.push(Op::Delete { kind, rid });
                    }
                    Msg::Skip(ty) => *report.skipped.entry(ty).or_default() += 1,
                    Msg::Error(e) => {
                        report.errors += 1;
                        tracing::warn!(location = %e.location, problem = %e.message, "record rejected");
                        observer.error(&e);
                        if report.first_errors.len() < KEPT_ERRORS {
                            report.first_errors.push(e);
                        }
                    }
                }
                if ops.len() >= options.batch_records {
                    if let Err(e) = commit(&mut ops, &mut pending, &mut deletes, &mut report) {
                        outcome = Err(e);
                        break;
                    }
                    observer.committed(&report);
                }
            }
            if outcome.is_ok() {
                outcome = commit(&mut ops, &mut pending, &mut deletes, &mut report);
                if outcome.is_ok() {
                    observer.committed(&report);
                }
            }
            // Dropping the receiver (on a store failure) stops the reader.
            drop(rx);
            let read = reader.join().expect("the reader thread does not panic");
            if outcome.is_ok() {
                // What is kept: a derived coverage gives way to any real one
                // for its patient (the store's rule), so count what stayed.
                let mut kept = 0;
                for rid in &derived_written {
                    if self
                        .store
                        .get(RecordKind::Coverage, rid)?
                        .is_some_and(|r| r.derived)
                    {
                        kept += 1;
                    }
                }
                report.derived_coverages = kept;
            }
            outcome.and(read)
        })?;
        report.bytes = bytes.load(Ordering::Relaxed);
        tracing::info!(
            files = report.files,
            stored = report.stored_total(),
            errors = report.errors,
            "import finished"
        );
        Ok(report)
    }

    fn read_files(
        &self,
        files: &[PathBuf],
        options: &ImportOptions,
        bytes: &Arc<AtomicU64>,
        tx: Sender<Msg>,
    ) -> Result<()> {
        for path in files {
            let file = std::fs::File::open(path).map_err(crate::io_err(path))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if tx.send(Msg::File(path.clone(), size)).is_err() {
                return Ok(());
            }
            let reader = std::io::BufReader::with_capacity(
                256 << 10,
                Counting {
                    inner: file,
                    bytes: bytes.clone(),
                },
            );
            let shared: Arc<Path> = Arc::from(path.as_path());
            let mut sink = |item: Item| -> Result<(), ()> {
                for msg in self.process(item) {
                    tx.send(msg).map_err(|_| ())?;
                }
                Ok(())
            };
            let result = match Format::of(path) {
                Some(Format::Json) => read::read_json(reader, shared, &mut sink),
                _ => read::read_ndjson(
                    reader,
                    shared,
                    read::expected_type(path),
                    &options.read,
                    &mut sink,
                ),
            };
            match result {
                Ok(()) => {}
                Err(FileError::Stopped(())) => return Ok(()),
                Err(FileError::Io { path, source }) => return Err(Error::Io { path, source }),
            }
        }
        Ok(())
    }

    fn process(&self, item: Item) -> Vec<Msg> {
        let location = item.location;
        let error = |message: String| {
            vec![Msg::Error(RecordError {
                location: location.to_string(),
                message,
            })]
        };
        match item.result {
            Err(e) => error(e.to_string()),
            Ok(Entry::Delete { resource_type, id }) => {
                match RecordKind::from_fhir_type(&resource_type) {
                    Some(kind) => vec![Msg::Delete(kind, self.rid(kind, &id))],
                    None => vec![Msg::Skip(resource_type)],
                }
            }
            Ok(Entry::Resource(resource)) => {
                let ty = resource
                    .get("resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                match RecordKind::from_fhir_type(&ty) {
                    Some(kind) => match self.seal(kind, resource) {
                        Ok(w) => vec![Msg::Put(kind.fhir_type(), Box::new(w))],
                        Err(SealError::Invalid(e)) => error(e.to_string()),
                        Err(SealError::Failed(e)) => error(format!("could not be sealed: {e}")),
                    },
                    None if ty == "Claim" || ty == "ExplanationOfBenefit" => {
                        let mut out = vec![Msg::Skip(ty)];
                        for coverage in derive_coverages(&resource) {
                            match self.seal(RecordKind::Coverage, coverage) {
                                Ok(w) => out.push(Msg::Put("Coverage", Box::new(w))),
                                Err(e) => out.extend(error(format!("derived coverage: {e}"))),
                            }
                        }
                        out
                    }
                    None => vec![Msg::Skip(ty)],
                }
            }
        }
    }
}

impl Vault {
    /// Records (durably) that a batch is about to be written; returns the
    /// entry so a failure can be recorded against it.
    fn record_batch(&self, who: &Requester, ops: &[Op]) -> Result<rxvault_audit::Entry> {
        let mut patients = std::collections::BTreeSet::new();
        let mut records = 0u64;
        for op in ops {
            match op {
                Op::Put(w) => {
                    patients.insert(w.record.patient.unwrap_or(w.record.rid));
                    records += 1;
                }
                Op::Delete { rid, .. } => {
                    patients.insert(*rid);
                    records += 1;
                }
                _ => {}
            }
        }
        let entry = who
            .entry(rxvault_audit::Action::Write {
                kind: None,
                operation: rxvault_audit::entry::WriteOp::Create,
                records,
            })
            .patients(patients);
        self.record(entry.clone())?;
        Ok(entry)
    }
}

/// A stable, non-cryptographic hash for derived ids (FNV-1a, 64-bit): the
/// same patient and payer always give the same derived Coverage id.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Payer names that mean "no plan".
fn is_uninsured(payer: &str) -> bool {
    let p = payer.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    matches!(
        p.as_str(),
        "no insurance" | "uninsured" | "self pay" | "none"
    )
}

/// The health plans a `Claim` or `ExplanationOfBenefit` names in its
/// `insurance`, as derived `Coverage` resources for its patient.
pub fn derive_coverages(claim: &Resource) -> Vec<Resource> {
    let Some(patient) = claim
        .get("patient")
        .and_then(|p| p.get("reference"))
        .and_then(Value::as_str)
        .and_then(|r| reference_id(r, "Patient"))
    else {
        return Vec::new();
    };
    let contained = claim.get("contained").and_then(Value::as_array);
    let mut out = Vec::new();
    for insurance in claim
        .get("insurance")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(coverage) = insurance.get("coverage") else {
            continue;
        };
        let local = coverage
            .get("reference")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|id| {
                contained?.iter().find(|c| {
                    c.get("id").and_then(Value::as_str) == Some(id)
                        && c.get("resourceType").and_then(Value::as_str) == Some("Coverage")
                })
            });
        let payer = local
            .and_then(|c| c.get("payor")?.get(0)?.get("display")?.as_str())
            .or_else(|| coverage.get("display").and_then(Value::as_str))
            .or_else(|| local.and_then(|c| c.get("type")?.get("text")?.as_str()));
        let Some(payer) = payer.filter(|p| !p.trim().is_empty() && !is_uninsured(p)) else {
            continue;
        };
        let mut r = json!({
            "resourceType": "Coverage",
            "id": format!("dc-{:016x}", fnv1a(&[&patient, payer])),
            "meta": {"tag": [{"system": cv::DERIVED_TAG_SYSTEM, "code": cv::DERIVED_TAG_CODE}]},
            "status": "active",
            "beneficiary": {"reference": format!("Patient/{patient}")},
            "payor": [{"display": payer}],
        });
        if let Some(ty) = local.and_then(|c| c.get("type")) {
            r["type"] = ty.clone();
        }
        if let Value::Object(m) = r {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverages_are_derived_from_claim_insurance() {
        let claim: Resource = serde_json::from_value(json!({
            "resourceType": "ExplanationOfBenefit", "id": "e",
            "patient": {"reference": "urn:uuid:p1"},
            "contained": [{"resourceType": "Coverage", "id": "cov", "type": {"text": "Medicaid"}, "payor": [{"display": "Medicaid"}]}],
            "insurance": [{"coverage": {"reference": "#cov"}}, {"coverage": {"display": "NO_INSURANCE"}}, {"coverage": {"display": "Aetna"}}]
        }))
        .unwrap();
        let derived = derive_coverages(&claim);
        assert_eq!(derived.len(), 2);
        assert_eq!(derived[0]["payor"][0]["display"], "Medicaid");
        assert_eq!(derived[0]["type"]["text"], "Medicaid");
        assert_eq!(derived[1]["payor"][0]["display"], "Aetna");
        assert_eq!(derived[0]["beneficiary"]["reference"], "Patient/p1");
        assert!(crate::records::is_derived(&derived[0]));
        let c = rxvault_fhir::map::coverage(&derived[0]).unwrap();
        assert_eq!(c.patient_id, "p1");
        assert_eq!(
            derive_coverages(&claim)[0]["id"],
            derived[0]["id"],
            "ids are stable"
        );
    }
}
