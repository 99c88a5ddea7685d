//! Restoring a snapshot, proven before it is handed back, and the restore
//! drill.
//!
//! A restore writes into a scratch folder beside the destination, then
//! proves what it got: every file's size and SHA-256 against the manifest,
//! the vault opens with the escrowed KEK, the record counts match the
//! manifest, every record checks against its row (`rxvault check`), and
//! the audit log verifies and holds the signed checkpoint recorded at
//! backup time. Only then is the folder renamed into place; on any failure
//! it is removed and the destination is untouched.
//!
//! The drill does the same into a folder it deletes afterwards, and also
//! decrypts every record (an export through the vault's audited entry
//! point, encrypted to a recipient nobody holds the key of), timing the
//! restore (RTO) and reporting the snapshot's age (RPO).

use crate::escrow::{Kit, key_file_in_temp};
use crate::snapshot::{Manifest, hex};
use crate::{Error, Location, Repo, Result, SnapshotInfo, audit_act, io_err};
use rxvault_model::Clock;
use rxvault_vault::access::Requester;
use rxvault_vault::export::Target;
use rxvault_vault::keys::Quiet;
use rxvault_vault::{KeySource, Vault};
use std::path::Path;
use std::sync::Arc;

/// What a proven restore found.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: SnapshotInfo,
    /// Its manifest.
    pub manifest: Manifest,
    /// Records checked (`check_records`).
    pub records_checked: u64,
    /// Audit entries verified.
    pub audit_entries: u64,
    /// Milliseconds reading the snapshot back.
    pub restore_ms: u64,
    /// Milliseconds opening and proving it.
    pub prove_ms: u64,
}

/// What a drill found.
#[derive(Debug, Clone)]
pub struct DrillReport {
    /// The restore and its proof.
    pub restore: RestoreReport,
    /// Records decrypted (every one).
    pub records_decrypted: u64,
    /// Recovery time: restore, open, prove and decrypt (ms).
    pub rto_ms: u64,
    /// Recovery point: the snapshot's age when the drill ran (s).
    pub rpo_s: i64,
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// Restores snapshot `id` (or `latest`) of `location` into `to` (new, or
/// an empty folder), proven with the escrow `kit` first (see the module
/// documentation). The restore is recorded in the restored vault's audit
/// log.
pub fn restore(
    location: &Location,
    password: &str,
    id: &str,
    to: &Path,
    kit: &Kit,
    clock: Arc<dyn Clock>,
) -> Result<RestoreReport> {
    if to.exists() && !is_empty_dir(to) {
        return Err(Error::Invalid(format!(
            "{} exists and is not empty: restore into a new folder",
            to.display()
        )));
    }
    // The kit first: without it nothing is read or written.
    let key_file = kit.open()?;
    let repo = Repo::open(location, password, false)?;
    let scratch = crate::scratch_beside(to)?;
    let dir = scratch.path().join("vault");
    let (report, vault) = restore_proven(repo, id, &dir, &key_file, clock)?;
    audit_act(&vault, "restore", Some(report.snapshot.id.clone()), &Ok(()))?;
    drop(vault);
    std::fs::rename(&dir, to).map_err(io_err(to))?;
    Ok(report)
}

fn restore_proven(
    repo: Repo,
    id: &str,
    dir: &Path,
    key_file: &rxvault_crypto::keyfile::KeyFile,
    clock: Arc<dyn Clock>,
) -> Result<(RestoreReport, Vault)> {
    let started = std::time::Instant::now();
    let snapshot = repo.restore(id, dir)?;
    let restore_ms = started.elapsed().as_millis() as u64;
    let started = std::time::Instant::now();
    let manifest = Manifest::load(dir)?;
    manifest.check_files(dir)?;
    if manifest.vault_id != key_file.vault_id {
        return Err(Error::Escrow(format!(
            "the kit holds the key of vault {}, but the snapshot is of vault {}",
            key_file.vault_id, manifest.vault_id
        )));
    }
    // The manifest is not part of a vault.
    std::fs::remove_file(dir.join(crate::snapshot::MANIFEST_FILE))
        .map_err(io_err(dir.join(crate::snapshot::MANIFEST_FILE)))?;
    let (_keydir, key_path) = key_file_in_temp(key_file)?;
    let vault = Vault::open(dir, Some(KeySource::File(key_path)), clock)?;
    let counts = crate::snapshot::counts_of(&vault)?;
    if counts != manifest.records {
        return Err(Error::Damaged(format!(
            "record counts {counts:?} differ from the manifest's {:?}",
            manifest.records
        )));
    }
    let integrity = vault.check_records(&mut Quiet)?;
    if let Some(f) = integrity.findings.first() {
        return Err(Error::Damaged(format!(
            "{} records fail their checks (first: a {} record: {})",
            integrity.findings.len(),
            f.kind.table(),
            f.problem
        )));
    }
    let audit_entries = prove_audit(&vault, &manifest)?;
    let prove_ms = started.elapsed().as_millis() as u64;
    Ok((
        RestoreReport {
            snapshot,
            manifest,
            records_checked: integrity.checked,
            audit_entries,
            restore_ms,
            prove_ms,
        },
        vault,
    ))
}

/// The restored audit log verifies (every entry, node and checkpoint,
/// with the vault's key) and holds the checkpoint the manifest recorded.
fn prove_audit(vault: &Vault, manifest: &Manifest) -> Result<u64> {
    let options = rxvault_audit::VerifyOptions {
        keyring: Some(vault.secrets().clone()),
        origin: Some(rxvault_audit::checkpoint::origin_for(&manifest.vault_id)),
        ..Default::default()
    };
    let report = vault.verify_audit_log(&Requester::local(), &options)?;
    if !report.ok() {
        return Err(Error::Damaged(format!(
            "the audit log does not verify ({} problems)",
            report.problems.len()
        )));
    }
    if report.entries < manifest.audit.entries {
        return Err(Error::Damaged(format!(
            "the audit log holds {} entries, the snapshot had {}",
            report.entries, manifest.audit.entries
        )));
    }
    if let (Some(size), Some(root)) = (
        manifest.audit.checkpoint_size,
        &manifest.audit.checkpoint_root,
    ) {
        let store = rxvault_audit::open_store(&vault.audit_location(), false)?;
        let held = store
            .checkpoints()?
            .into_iter()
            .any(|c| c.size == size && &hex(&c.root) == root);
        if !held {
            return Err(Error::Damaged(format!(
                "the audit log lacks the checkpoint recorded at backup time (size {size})"
            )));
        }
    }
    Ok(report.entries)
}

/// The restore drill: restores the latest snapshot into a scratch folder,
/// proves it (see [`restore`]), decrypts every record, and reports RTO and
/// RPO; the scratch folder is removed. Recorded (`restore-drill`, with its
/// outcome) in `live`'s audit log when a live vault is given.
pub fn drill(
    live: Option<&Vault>,
    location: &Location,
    password: &str,
    kit: &Kit,
    clock: Arc<dyn Clock>,
) -> Result<DrillReport> {
    let result = drill_inner(location, password, kit, clock);
    if let Some(v) = live {
        audit_act(
            v,
            "restore-drill",
            result.as_ref().ok().map(|r| r.restore.snapshot.id.clone()),
            &result,
        )?;
    }
    result
}

fn drill_inner(
    location: &Location,
    password: &str,
    kit: &Kit,
    clock: Arc<dyn Clock>,
) -> Result<DrillReport> {
    let key_file = kit.open()?;
    let repo = Repo::open(location, password, false)?;
    let started = std::time::Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("rxvault-drill-")
        .tempdir()
        .map_err(io_err(std::env::temp_dir()))?;
    let dir = scratch.path().join("vault");
    let (restore, vault) = restore_proven(repo, "latest", &dir, &key_file, clock.clone())?;
    // Every record decrypted, through the audited export, to a recipient
    // whose key no one holds: nothing readable is written.
    let target = Target::Age(rxvault_crypto::escrow::unreadable_recipients()?);
    let export = vault.export_fhir_for(
        &Requester::local(),
        &scratch.path().join("export"),
        &target,
        &mut Quiet,
    )?;
    let records_decrypted = export.files.iter().map(|f| f.count).sum();
    let rto_ms = started.elapsed().as_millis() as u64;
    let rpo_s = clock.now().unix_timestamp() - restore.manifest.taken;
    drop(vault);
    Ok(DrillReport {
        restore,
        records_decrypted,
        rto_ms,
        rpo_s,
    })
}
