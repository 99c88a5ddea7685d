//! Backups of a vault: consistent snapshots into restic repositories,
//! verified restores, restore drills, and the KEK escrow kit they need.
//!
//! # Layout
//! - [`snapshot`]: a consistent copy of the vault in a staging folder (the
//!   records and the audit log, each as of one read transaction, the
//!   configuration, the certificate) and its [`Manifest`](snapshot::Manifest).
//! - [`repo`]: restic repositories through rustic_core (the one module that
//!   knows its API): a local folder, or a [`Transport`](repo::Transport)
//!   such as the restic REST protocol of an append-only server.
//! - [`restore`]: restoring a snapshot into a new folder, proving it
//!   (hashes, counts, record checks, the audit log against the checkpoint
//!   recorded at backup time) before handing it back; the restore drill.
//! - [`escrow`]: writing and opening the escrow kit.
//!
//! **Architecture invariants:**
//! - The KEK is never in a backup: a snapshot holds an allow-list of files
//!   of the data directory, and the key lives outside it. Restoring takes
//!   the escrow kit (and its own passphrase); the repository password is a
//!   third, separate secret.
//! - Nothing in the backup path needs delete permission on the target:
//!   backing up only adds files; verify and restore only read.
//! - Every backup, verify and restore is recorded in an audit log with its
//!   real outcome ([`Action::Backup`](rxvault_audit::Action::Backup)): a
//!   backup and a verify in the live vault's, a restore in the restored
//!   vault's, a drill in the live vault's when one is given.
//! - Nothing here decrypts a record except through the vault's audited
//!   entry points (the drill's export).
#![deny(missing_docs)]

pub mod escrow;
pub mod repo;
pub mod restore;
pub mod snapshot;

use rxvault_audit::{Action, Outcome};
use rxvault_vault::Vault;
use rxvault_vault::access::Requester;
use std::path::{Path, PathBuf};

pub use repo::{Location, Repo, SnapshotInfo, Transport};
pub use snapshot::Manifest;

/// Errors of backups.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] rxvault_vault::Error),
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(#[from] rxvault_audit::Error),
    /// Cryptography failed (the escrow kit).
    #[error(transparent)]
    Crypto(#[from] rxvault_crypto::Error),
    /// The store failed (copying a database).
    #[error(transparent)]
    Store(#[from] rxvault_store::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The repository failed.
    #[error("{what}: {message}")]
    Repository {
        /// What was being done, and where.
        what: String,
        /// The repository library's message.
        message: String,
    },
    /// The repository password is wrong.
    #[error(
        "the repository password does not open {0} (it is the repository's own password, not the vault key or the escrow passphrase)"
    )]
    WrongPassword(String),
    /// There is no repository there.
    #[error("there is no restic repository at {0} (`rxvault backup create` makes one)")]
    NoRepository(String),
    /// No such snapshot.
    #[error("{0}")]
    NoSnapshot(String),
    /// What was restored is not what was backed up.
    #[error("the restored vault is damaged: {0}; nothing was handed back")]
    Damaged(String),
    /// The escrow kit is missing, wrong or does not fit.
    #[error("escrow kit: {0}")]
    Escrow(String),
    /// The request cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Records a backup act in `vault`'s audit log with its outcome.
pub(crate) fn audit_act<T>(
    vault: &Vault,
    operation: &str,
    backup_id: Option<String>,
    result: &Result<T>,
) -> Result<()> {
    let outcome = if result.is_ok() {
        Outcome::Success
    } else {
        Outcome::Error
    };
    vault.record(
        Requester::local()
            .entry(Action::Backup {
                operation: operation.into(),
                backup_id,
            })
            .outcome(outcome),
    )?;
    Ok(())
}

/// What [`create`] made.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// What it holds.
    pub manifest: Manifest,
    /// Milliseconds copying the vault (the consistent snapshot).
    pub stage_ms: u64,
    /// Milliseconds writing it to the repository.
    pub upload_ms: u64,
}

/// Backs `vault` up into `repo` (created if new): a consistent snapshot
/// staged in a private temporary folder, then one restic snapshot of it.
/// The vault keeps serving meanwhile. Audited in the vault's log with the
/// outcome and the snapshot id.
pub fn create(vault: &Vault, location: &Location, password: &str) -> Result<BackupReport> {
    let result = create_inner(vault, location, password);
    audit_act(
        vault,
        "create",
        result.as_ref().ok().map(|r| r.snapshot.id.clone()),
        &result,
    )?;
    result
}

fn create_inner(vault: &Vault, location: &Location, password: &str) -> Result<BackupReport> {
    let repo = Repo::open(location, password, true)?;
    let staging = tempfile::Builder::new()
        .prefix("rxvault-backup-")
        .tempdir()
        .map_err(io_err(std::env::temp_dir()))?;
    let started = std::time::Instant::now();
    let manifest = snapshot::stage(vault, staging.path())?;
    let stage_ms = started.elapsed().as_millis() as u64;
    let tags = vec![
        "rxvault".to_string(),
        format!("vault-{}", manifest.vault_id),
    ];
    let started = std::time::Instant::now();
    let snapshot = repo.backup(staging.path(), manifest.taken, &tags)?;
    let upload_ms = started.elapsed().as_millis() as u64;
    Ok(BackupReport {
        snapshot,
        manifest,
        stage_ms,
        upload_ms,
    })
}

/// Lists the repository's snapshots, oldest first.
pub fn list(location: &Location, password: &str) -> Result<Vec<SnapshotInfo>> {
    Repo::open(location, password, false)?.snapshots()
}

/// Reads the whole repository back (`restic check --read-data`). Audited
/// in `vault`'s log when one is given (the host's live vault). A
/// repository with errors is an [`Error::Damaged`]-free report with
/// errors: the caller decides the exit code.
pub fn verify(
    vault: Option<&Vault>,
    location: &Location,
    password: &str,
) -> Result<repo::CheckReport> {
    let result = Repo::open(location, password, false).and_then(|r| r.check());
    let judged: Result<()> = match &result {
        Ok(r) if r.errors.is_empty() => Ok(()),
        Ok(r) => Err(Error::Repository {
            what: "verify".into(),
            message: format!("{} errors", r.errors.len()),
        }),
        Err(_) => Err(Error::Invalid(String::new())),
    };
    if let Some(v) = vault {
        audit_act(v, "verify", None, &judged)?;
    }
    result
}

/// The folder beside `to` a restore writes into before it is proven.
pub(crate) fn scratch_beside(to: &Path) -> Result<tempfile::TempDir> {
    let parent = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    tempfile::Builder::new()
        .prefix(".rxvault-restoring-")
        .tempdir_in(parent)
        .map_err(io_err(parent))
}
