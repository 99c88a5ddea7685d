//! A consistent snapshot of a vault in a staging folder, with its
//! manifest.
//!
//! ```text
//! STAGING/
//!   vault.db              the records, as of one read transaction
//!   audit.db              the audit log, as of one read transaction after it
//!   rxvault.toml          the configuration (no secrets)
//!   tls/cert.pem          the server's certificate (its key is sealed in vault.db)
//!   rxvault-backup.json   the manifest: counts, audit size and checkpoint, hashes
//! ```
//! Only these files are copied (an allow-list): the KEK, which lives
//! outside the data directory, cannot be in a backup even if someone put
//! it in the data directory.
//!
//! **Consistency:** each database is copied with SQLite's online backup
//! API in one step (one read transaction: the copy is the database at one
//! moment while writers go on). A checkpoint is signed over the audit log
//! first; the records are copied next, the audit log last, so the audit
//! copy holds the entries of every write whose entry was durable when the
//! records were copied, and the manifest records exactly where the copied
//! log ends and which signed checkpoint it holds.

use crate::{Error, Result, io_err};
use rxvault_model::RecordKind;
use rxvault_vault::Vault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest's file name inside a snapshot.
pub const MANIFEST_FILE: &str = "rxvault-backup.json";
/// The audit database's file name.
pub const AUDIT_FILE: &str = "audit.db";
/// The manifest format this build writes.
pub const FORMAT: u32 = 1;

/// What a snapshot holds, written inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest's format.
    pub format: u32,
    /// The vault's id.
    pub vault_id: String,
    /// The store's schema version.
    pub schema_version: u32,
    /// When the snapshot was taken (Unix seconds, the vault's clock).
    pub taken: i64,
    /// Records per table in the copy.
    pub records: BTreeMap<String, u64>,
    /// The audit log's copy.
    pub audit: AuditFacts,
    /// Every file of the snapshot but the manifest, with its SHA-256.
    pub files: Vec<FileFacts>,
}

/// Where the copied audit log ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFacts {
    /// Entries in the copy.
    pub entries: u64,
    /// The latest signed checkpoint in the copy: tree size.
    pub checkpoint_size: Option<u64>,
    /// Its root hash (hex).
    pub checkpoint_root: Option<String>,
    /// When it was signed (Unix ms).
    pub checkpoint_time_ms: Option<i64>,
}

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFacts {
    /// Its path inside the snapshot (`/` separated).
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256 (hex).
    pub sha256: String,
}

impl Manifest {
    /// Reads `DIR/rxvault-backup.json`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(io_err(&path))?;
        let m: Manifest = serde_json::from_slice(&text).map_err(|e| {
            Error::Damaged(format!("{}: not a backup manifest ({e})", path.display()))
        })?;
        if m.format > FORMAT {
            return Err(Error::Invalid(format!(
                "the snapshot's manifest is format {}, this rxvault reads up to {FORMAT}: upgrade rxvault",
                m.format
            )));
        }
        Ok(m)
    }

    /// Total records.
    pub fn total_records(&self) -> u64 {
        self.records.values().sum()
    }

    /// Checks every file listed against its size and hash, and that no
    /// other file is there (a damaged or altered restore is refused).
    pub fn check_files(&self, dir: &Path) -> Result<()> {
        for f in &self.files {
            let path = dir.join(&f.path);
            let (bytes, hash) = hash_file(&path)?;
            if bytes != f.bytes || hash != f.sha256 {
                return Err(Error::Damaged(format!(
                    "{} does not match the snapshot's manifest (size or SHA-256 differ)",
                    f.path
                )));
            }
        }
        Ok(())
    }
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let data = std::fs::read(path).map_err(io_err(path))?;
    let hash = rxvault_crypto::sha256(&[&data]);
    Ok((data.len() as u64, hex(&hash)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `vault` consistently into the empty folder `staging` and writes
/// the manifest there.
pub fn stage(vault: &Vault, staging: &Path) -> Result<Manifest> {
    let config = vault.config();
    let dir = &config.dir;
    // A checkpoint signed over the log as it is now: the copy ends at or
    // after it, and the manifest names the latest one it holds.
    vault.audit()?.checkpoint()?;
    let counts = vault.backup_records_to(&staging.join(rxvault_vault::config::SQLITE_FILE))?;
    let audit = rxvault_audit::open_store(&vault.audit_location(), false)?;
    let (entries, checkpoint) = audit.backup_to(&staging.join(AUDIT_FILE))?;
    drop(audit);
    let mut files = vec![
        rxvault_vault::config::SQLITE_FILE.to_string(),
        AUDIT_FILE.to_string(),
    ];
    copy(
        &dir.join(rxvault_vault::config::CONFIG_FILE),
        &staging.join(rxvault_vault::config::CONFIG_FILE),
    )?;
    files.push(rxvault_vault::config::CONFIG_FILE.into());
    let tls = dir.join("tls");
    if tls.is_dir() {
        std::fs::create_dir(staging.join("tls")).map_err(io_err(staging.join("tls")))?;
        let mut names: Vec<_> = std::fs::read_dir(&tls)
            .map_err(io_err(&tls))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            // Certificates only: a key file never leaves.
            .filter(|n| n.ends_with(".pem") && !n.contains("key"))
            .collect();
        names.sort();
        for n in names {
            copy(&tls.join(&n), &staging.join("tls").join(&n))?;
            files.push(format!("tls/{n}"));
        }
    }
    let files = files
        .into_iter()
        .map(|path| {
            let (bytes, sha256) = hash_file(&staging.join(&path))?;
            Ok(FileFacts {
                path,
                bytes,
                sha256,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = Manifest {
        format: FORMAT,
        vault_id: config.vault_id.clone(),
        schema_version: vault.schema_version()?,
        taken: vault.clock().now().unix_timestamp(),
        records: counts
            .iter()
            .map(|(k, n)| (k.table().to_string(), *n))
            .collect(),
        audit: AuditFacts {
            entries,
            checkpoint_size: checkpoint.as_ref().map(|c| c.size),
            checkpoint_root: checkpoint.as_ref().map(|c| hex(&c.root)),
            checkpoint_time_ms: checkpoint.as_ref().map(|c| c.time_ms),
        },
        files,
    };
    let path = staging.join(MANIFEST_FILE);
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Invalid(format!("manifest: {e}")))?;
    std::fs::write(&path, text).map_err(io_err(&path))?;
    Ok(manifest)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(io_err(from))?;
    Ok(())
}

/// The record counts of an open vault, by table (what a manifest records).
pub fn counts_of(vault: &Vault) -> Result<BTreeMap<String, u64>> {
    Ok(vault
        .counts()?
        .into_iter()
        .map(|(k, n): (RecordKind, u64)| (k.table().to_string(), n))
        .collect())
}
