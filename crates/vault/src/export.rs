//! Exports: the whole vault as FHIR NDJSON, and the daily shipping manifest.
//!
//! Every export gets an export ID (in its manifest or rows) so a file found
//! where it should not be can be traced to the export that made it. The
//! audited entry points ([`Vault::export_fhir_for`],
//! [`Vault::export_shipping_for`]) first decide what the export will hold
//! (its plan: record keys, patients, categories; nothing is decrypted), then
//! record that durably, and only then write the first byte. An
//! export is plaintext only when the caller asks for it
//! ([`Target::Plaintext`]); otherwise each file is encrypted to age
//! recipients as it is written, so no plaintext touches the disk. Files are
//! written to a temporary name with mode 0600, synced, then renamed.
//!
//! The shipping manifest is minimised at the source: for each fill only the
//! `Shipping`, `Identifiers` and `Administrative` categories are decrypted,
//! so birth dates, phone numbers, medications and plans are never even in
//! memory, let alone in the file.

use crate::keys::Progress;
use crate::{Error, Result, Vault, io_err};
use rxvault_audit::KindCategories;
use rxvault_crypto::export::Recipients;
use rxvault_fhir::map;
use rxvault_model::{CategorySet, FieldCategory, IndexKind, RecordKind, Rid, ShipTo, normalize};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where an export's bytes go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Plaintext files (the user asked for it explicitly).
    Plaintext,
    /// Files encrypted to these age recipients (`.age` appended to names).
    Age(Recipients),
}

impl Target {
    /// How the audit log records it: plaintext, or the recipients' public
    /// keys.
    pub fn protection(&self) -> rxvault_audit::ExportProtection {
        match self {
            Target::Plaintext => rxvault_audit::ExportProtection::Plaintext,
            Target::Age(r) => rxvault_audit::ExportProtection::Age {
                recipients: r.public_keys(),
            },
        }
    }

    fn suffix(&self) -> &'static str {
        match self {
            Target::Plaintext => "",
            Target::Age(_) => ".age",
        }
    }
}

/// One file of an export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportFile {
    /// FHIR resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// File name (relative to the export folder).
    pub url: String,
    /// Resources in it.
    pub count: u64,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The export's ID.
    pub export_id: String,
    /// Files written.
    pub files: Vec<ExportFile>,
    /// Whether the files are encrypted.
    pub encrypted: bool,
    /// The patients whose data the export holds (storage keys).
    #[serde(skip)]
    pub patients: Vec<rxvault_model::Rid>,
}

/// A file being written: temporary name, then renamed when complete.
struct Output {
    tmp: PathBuf,
    path: PathBuf,
    writer: Box<dyn FinishWrite>,
}

trait FinishWrite: Write {
    fn finish(self: Box<Self>) -> std::io::Result<std::fs::File>;
}

impl FinishWrite for BufWriter<std::fs::File> {
    fn finish(self: Box<Self>) -> std::io::Result<std::fs::File> {
        self.into_inner().map_err(|e| e.into_error())
    }
}

impl FinishWrite for rxvault_crypto::export::EncryptedWriter<BufWriter<std::fs::File>> {
    fn finish(self: Box<Self>) -> std::io::Result<std::fs::File> {
        rxvault_crypto::export::EncryptedWriter::finish(*self)?
            .into_inner()
            .map_err(|e| e.into_error())
    }
}

impl Output {
    fn create(path: PathBuf, target: &Target) -> Result<Self> {
        let tmp = path.with_file_name(format!(
            ".{}.partial",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("export")
        ));
        let _ = std::fs::remove_file(&tmp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let buffered = BufWriter::with_capacity(256 << 10, file);
        let writer: Box<dyn FinishWrite> = match target {
            Target::Plaintext => Box::new(buffered),
            Target::Age(r) => Box::new(r.encrypt(buffered)?),
        };
        Ok(Self { tmp, path, writer })
    }

    fn finish(self) -> Result<()> {
        let file = self.writer.finish().map_err(io_err(&self.tmp))?;
        file.sync_all().map_err(io_err(&self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))?;
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

/// What a FHIR export will hold, decided before its first byte is written
/// (a pass over the stored records that decrypts nothing: record keys,
/// patients, and the categories each envelope says it holds).
#[derive(Debug, Default)]
pub(crate) struct FhirPlan {
    /// Per kind, the records to write.
    pub records: Vec<(RecordKind, HashSet<Rid>)>,
    /// The patients they belong to.
    pub patients: BTreeSet<Rid>,
    /// The categories present in them, per kind. The write opens only
    /// these, so a record changed meanwhile cannot add one.
    pub categories: KindCategories,
}

impl FhirPlan {
    /// How many records.
    pub fn len(&self) -> u64 {
        self.records.iter().map(|(_, r)| r.len() as u64).sum()
    }
}

/// What [`Vault::write_fhir`] wrote.
pub(crate) struct FhirWritten {
    pub files: Vec<ExportFile>,
    pub patients: BTreeSet<Rid>,
}

/// The field categories a sealed record holds (its envelope lists them in
/// the clear; nothing is decrypted).
fn categories_of(record: &rxvault_store::StoredRecord) -> Result<CategorySet> {
    let envelope =
        rxvault_crypto::envelope::decode(&record.envelope).map_err(|e| Error::Corrupt {
            what: format!("{} {}", record.kind, record.rid),
            message: e.to_string(),
        })?;
    Ok(envelope.parts.iter().map(|p| p.category).collect())
}

/// The shipping manifest's categories of a fill: the transaction ID
/// (identifiers) and what goes on the label (shipping).
pub(crate) const SHIPPING_CATEGORIES: [FieldCategory; 2] =
    [FieldCategory::Identifiers, FieldCategory::Shipping];

impl Vault {
    /// Every record's key, patient and categories: what a FHIR export of
    /// the whole vault will hold.
    pub(crate) fn plan_fhir(&self) -> Result<FhirPlan> {
        let mut plan = FhirPlan::default();
        for kind in RecordKind::ALL {
            let mut rids = HashSet::new();
            let mut categories = CategorySet::NONE;
            let mut after = None;
            loop {
                let page = self.store.scan(kind, after.as_ref(), 1000)?;
                let Some(last) = page.last() else { break };
                after = Some(last.rid);
                for record in &page {
                    rids.insert(record.rid);
                    plan.patients.insert(record.patient.unwrap_or(record.rid));
                    categories = categories
                        .iter()
                        .chain(categories_of(record)?.iter())
                        .collect();
                }
            }
            if !rids.is_empty() {
                plan.categories.add(kind, categories);
                plan.records.push((kind, rids));
            }
        }
        Ok(plan)
    }

    /// Writes the records of `plan` as FHIR R4 NDJSON (one file per
    /// resource type) into `out`, a folder that must not exist or be
    /// empty, with a Bulk Data style `manifest.json`. Only what `plan`
    /// names is written: records created meanwhile are left out, and of
    /// each record only the categories `plan` lists for its kind are
    /// decrypted. On failure, what was written is removed.
    pub(crate) fn write_fhir(
        &self,
        plan: &FhirPlan,
        out: &Path,
        target: &Target,
        export_id: &str,
        progress: &mut dyn Progress,
    ) -> Result<FhirWritten> {
        let created = prepare_dir(out)?;
        let result = self.write_fhir_files(plan, out, target, export_id, progress);
        if result.is_err() {
            if created {
                let _ = std::fs::remove_dir_all(out);
            } else if let Ok(entries) = std::fs::read_dir(out) {
                // The folder was empty: everything in it is this export's.
                for e in entries.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        result
    }

    fn write_fhir_files(
        &self,
        plan: &FhirPlan,
        out: &Path,
        target: &Target,
        export_id: &str,
        progress: &mut dyn Progress,
    ) -> Result<FhirWritten> {
        progress.phase("exporting", Some(plan.len()));
        let mut files = Vec::new();
        let mut patients = BTreeSet::new();
        for (kind, wanted) in &plan.records {
            let kind = *kind;
            let open = plan.categories.of(kind);
            let name = format!("{}.ndjson{}", kind.fhir_type(), target.suffix());
            let mut output = Output::create(out.join(&name), target)?;
            let mut count = 0u64;
            let mut after = None;
            loop {
                let page = self.store.scan(kind, after.as_ref(), 1000)?;
                let Some(last) = page.last() else { break };
                after = Some(last.rid);
                for record in page.iter().filter(|r| wanted.contains(&r.rid)) {
                    let resource = self.open_record(record, open)?;
                    serde_json::to_writer(&mut output.writer, &resource)
                        .map_err(|e| io_err(&output.tmp)(e.into()))?;
                    output
                        .writer
                        .write_all(b"\n")
                        .map_err(io_err(&output.tmp))?;
                    patients.insert(record.patient.unwrap_or(record.rid));
                    count += 1;
                }
                progress.advance(page.len() as u64);
            }
            output.finish()?;
            files.push(ExportFile {
                resource_type: kind.fhir_type().to_string(),
                url: name,
                count,
            });
        }
        let encrypted = matches!(target, Target::Age(_));
        let manifest = json!({
            "exportId": export_id,
            "transactionTime": self.clock.now().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "vault": self.config.vault_id,
            "encrypted": encrypted,
            "output": files,
            "error": [],
        });
        crate::config::write_atomic(
            &out.join("manifest.json"),
            serde_json::to_string_pretty(&manifest)
                .expect("JSON")
                .as_bytes(),
            0o600,
        )?;
        let records: u64 = files.iter().map(|f| f.count).sum();
        tracing::info!(export = %export_id, records, encrypted, "FHIR export written");
        Ok(FhirWritten { files, patients })
    }

    /// Writes the shipping manifest of `shipments` to `path` (which must
    /// not exist): transaction ID, package reference, ship-to name and
    /// address, and the export ID; nothing else. CSV, sorted by transaction
    /// ID. On failure, the partial file is removed.
    pub(crate) fn write_shipping(
        &self,
        shipments: &Shipments,
        path: &Path,
        target: &Target,
        export_id: &str,
    ) -> Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let mut output = Output::create(path.to_path_buf(), target)?;
        let tmp = output.tmp.clone();
        let rows = (|| {
            let mut csv = csv::Writer::from_writer(&mut output.writer);
            let header = [
                "transaction_id",
                "package_ref",
                "ship_to_name",
                "address_line1",
                "address_line2",
                "city",
                "state",
                "postal_code",
                "country",
                "export_id",
            ];
            let to_io = |e: csv::Error| io_err(path)(std::io::Error::other(e.to_string()));
            csv.write_record(header).map_err(to_io)?;
            for r in &shipments.rows {
                csv.write_record([
                    &r.transaction_id,
                    &r.package_ref,
                    &r.ship_to_name,
                    &r.address_line1,
                    &r.address_line2,
                    &r.city,
                    &r.state,
                    &r.postal_code,
                    &r.country,
                    export_id,
                ])
                .map_err(to_io)?;
            }
            csv.flush().map_err(io_err(path))?;
            Ok::<_, Error>(())
        })();
        let written = rows.and_then(|()| output.finish());
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        tracing::info!(export = %export_id, rows = shipments.rows.len(), "shipping manifest written");
        Ok(())
    }

    /// The packages of the fills prepared on `date` (sorted by transaction
    /// ID), decrypting of each fill only its `Shipping`, `Identifiers` and
    /// `Administrative` categories. Not audited: see
    /// [`Vault::shipments_for`](crate::Vault::shipments_for).
    pub(crate) fn shipments(&self, date: &str) -> Result<Shipments> {
        let day = normalize::day(date)
            .ok_or_else(|| Error::Invalid(format!("the date must be YYYY-MM-DD, not {date:?}")))?;
        let token = self.keys.token(IndexKind::FillDate, &day);
        let want = CategorySet::of(&[
            FieldCategory::Shipping,
            FieldCategory::Identifiers,
            FieldCategory::Administrative,
        ]);
        let mut out = Shipments::default();
        let mut patients = std::collections::BTreeSet::new();
        let mut own_address: std::collections::HashMap<Rid, Option<ShipTo>> =
            std::collections::HashMap::new();
        for record in self.lookup_records(IndexKind::FillDate, &token)? {
            if record.kind != RecordKind::Fill {
                continue;
            }
            let fill =
                map::fill_view(&self.open_record(&record, want)?).map_err(|e| Error::Corrupt {
                    what: format!("fill {}", record.rid),
                    message: e.to_string(),
                })?;
            let shipped = !matches!(
                fill.status.as_str(),
                "cancelled" | "declined" | "entered-in-error" | "stopped"
            );
            if !shipped {
                out.skipped += 1;
                continue;
            }
            // The ship-to: the contained Location the fill's destination
            // names; with no destination at all, the patient's address (the
            // documented fallback); a destination naming a Location
            // resource (not stored here) is never guessed at.
            let ship = match (fill.ship_to, &fill.destination) {
                (Some(ship), _) => ship,
                (None, Some(_)) => {
                    out.unresolved += 1;
                    out.skipped += 1;
                    continue;
                }
                (None, None) => match record
                    .patient
                    .map(|p| -> Result<Option<ShipTo>> {
                        // A patient's fills of the day share one decryption.
                        if let Some(known) = own_address.get(&p) {
                            return Ok(known.clone());
                        }
                        let ship = self.patient_ship_to(&p)?;
                        own_address.insert(p, ship.clone());
                        Ok(ship)
                    })
                    .transpose()?
                {
                    Some(Some(ship)) => {
                        out.from_patient.push(record.patient.expect("matched Some"));
                        out.from_patient_packages += 1;
                        ship
                    }
                    _ => {
                        out.skipped += 1;
                        continue;
                    }
                },
            };
            let package_ref = match (&fill.carrier, &fill.tracking_number) {
                (Some(c), Some(t)) => format!("{c} {t}"),
                (None, Some(t)) => t.clone(),
                _ => String::new(),
            };
            let a = ship.address;
            out.rows.push(Shipment {
                transaction_id: fill.transaction_id,
                package_ref,
                ship_to_name: ship.name.unwrap_or_default(),
                address_line1: a.lines.first().cloned().unwrap_or_default(),
                address_line2: a.lines.get(1..).map(|l| l.join(", ")).unwrap_or_default(),
                city: a.city.unwrap_or_default(),
                state: a.state.unwrap_or_default(),
                postal_code: a.postal_code.unwrap_or_default(),
                country: a.country.unwrap_or_default(),
            });
            out.fills.push(record.rid);
            if let Some(p) = record.patient {
                patients.insert(p);
            }
        }
        out.rows
            .sort_by(|a, b| a.transaction_id.cmp(&b.transaction_id));
        out.patients = patients.into_iter().collect();
        out.from_patient.sort();
        out.from_patient.dedup();
        Ok(out)
    }

    /// A patient's name and home (else first) address, for a fill that
    /// names no destination: decrypts the patient's `Demographics` and
    /// `Contact` (audited as such by the callers).
    fn patient_ship_to(&self, patient: &rxvault_model::Rid) -> Result<Option<ShipTo>> {
        let Some(record) = self.store.get(RecordKind::Patient, patient)? else {
            return Ok(None);
        };
        let resource = self.open_record(&record, CategorySet::of(&PATIENT_SHIP_TO))?;
        let p = map::patient_view(&resource).map_err(|e| Error::Corrupt {
            what: format!("patient {patient}"),
            message: e.to_string(),
        })?;
        let address = p
            .addresses
            .iter()
            .find(|a| a.use_.as_deref() == Some("home"))
            .or_else(|| p.addresses.first())
            .cloned();
        Ok(address.map(|address| ShipTo {
            name: p.primary_name().map(|n| n.display()),
            address,
        }))
    }
}

/// The patient categories a ship-to taken from the patient's own address
/// decrypts (name and address; the rest of those parts is never written).
pub(crate) const PATIENT_SHIP_TO: [FieldCategory; 2] =
    [FieldCategory::Demographics, FieldCategory::Contact];

/// One package of the shipping manifest: nothing but what goes on the label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shipment {
    /// The fill's transaction ID.
    pub transaction_id: String,
    /// Carrier and tracking number.
    pub package_ref: String,
    /// The name on the package.
    pub ship_to_name: String,
    /// Street line.
    pub address_line1: String,
    /// Further lines.
    pub address_line2: String,
    /// City.
    pub city: String,
    /// State.
    pub state: String,
    /// ZIP code.
    pub postal_code: String,
    /// Country.
    pub country: String,
}

/// A day's packages.
#[derive(Debug, Clone, Default)]
pub struct Shipments {
    /// The packages, by transaction ID.
    pub rows: Vec<Shipment>,
    /// The fills listed (record keys).
    pub fills: Vec<rxvault_model::Rid>,
    /// The patients they ship to (record keys).
    pub patients: Vec<rxvault_model::Rid>,
    /// Fills of that day not listed (no ship-to, or not shipping).
    pub skipped: u64,
    /// Of those, fills whose destination is a `Location` resource rxvault
    /// does not store (their ship-to is unknown here).
    pub unresolved: u64,
    /// Patients whose own address was used (fills naming no destination).
    pub from_patient: Vec<rxvault_model::Rid>,
    /// Packages addressed that way.
    pub from_patient_packages: u64,
}

/// What a shipping export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ShippingReport {
    /// The export's ID (also in every row).
    pub export_id: String,
    /// The file written.
    pub path: PathBuf,
    /// Packages listed.
    pub rows: u64,
    /// Fills of that day not listed (no ship-to, or not shipping).
    pub skipped: u64,
    /// Of those, fills naming a `Location` resource as their destination.
    pub unresolved: u64,
    /// Packages addressed from the patient's own address (no destination).
    pub from_patient_address: u64,
    /// The patients whose names and addresses the file holds.
    #[serde(skip)]
    pub patients: Vec<rxvault_model::Rid>,
}

/// Refuses an export folder that exists and is not empty.
pub(crate) fn check_dir(out: &Path) -> Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io_err(out))?;
        if entries.next().is_some() {
            return Err(Error::Invalid(format!(
                "{} is not empty; export into a new or empty folder",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Checks `out` and creates it (mode 0700) if needed; whether it created it.
fn prepare_dir(out: &Path) -> Result<bool> {
    check_dir(out)?;
    if out.exists() {
        return Ok(false);
    }
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(out)
        .map_err(io_err(out))?;
    Ok(true)
}

/// The file a shipping export to `out` writes (`.age` appended when
/// encrypted), refused if it exists.
pub(crate) fn shipping_path(out: &Path, target: &Target) -> Result<PathBuf> {
    let path = match target {
        Target::Plaintext => out.to_path_buf(),
        Target::Age(_) if out.extension().is_some_and(|e| e == "age") => out.to_path_buf(),
        Target::Age(_) => PathBuf::from(format!("{}.age", out.display())),
    };
    for p in [out, path.as_path()] {
        if p.exists() {
            return Err(Error::Invalid(format!(
                "{} already exists; refusing to overwrite it",
                p.display()
            )));
        }
    }
    Ok(path)
}
