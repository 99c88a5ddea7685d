//! The tamper-evident audit log: who saw what, when, from where, and proof
//! that the answer was not edited afterwards.
//!
//! Every PHI read, search, write and export, every sign-in, break-glass and
//! administrative act becomes an [`Entry`]. [`AuditLog::append`] returns
//! only once the entry is durably committed (**no audit, no access**); many
//! concurrent callers share one transaction and one fsync (group commit).
//! Entries form an append-only **RFC 6962 Merkle tree**; the log signs
//! **checkpoints** (tree size, root hash, time, origin) with the vault's
//! Ed25519 key, periodically and on demand, in the C2SP signed-note format,
//! so a copy kept elsewhere can later prove what the log held.
//!
//! # Layout
//! - [`entry`]: the entry model ([`Entry`], [`Action`], [`Actor`], ...) and
//!   the stored byte format: a clear header (index, time, action, keyed
//!   hashes, record keys) and a body sealed with the vault's data key.
//! - [`merkle`]: tree hashing, proofs (inclusion, consistency) and their
//!   verification (RFC 6962 / RFC 9162).
//! - [`checkpoint`]: signed checkpoints.
//! - [`log`]: [`AuditLog`], the writer: a committer thread with a queue,
//!   [`Pending`] handles that can be blocked on or `.await`ed.
//! - [`reader`]: [`AuditReader`], proofs, entries and forensic
//!   [`Query`]s answered from indexes, and the scope of an export
//!   ([`AuditReader::export_scope`]).
//! - [`stream`]: the live stream ([`AuditLog::subscribe`] →
//!   [`Subscription`]): every committed entry, in index order, from this
//!   process's writer at once and from other processes by polling, with
//!   consumers' positions stored in the audit store.
//! - [`verify`]: recomputes everything from the raw entries and reports
//!   edits, deletions, reorderings, insertions, truncation, rollback and bad
//!   signatures with the first bad index.
//! - [`export`]: JSON lines, FHIR R4 `AuditEvent`, syslog (RFC 5424 over
//!   UDP, TCP, TLS).
//! - [`bench`]: the figures behind `rxvault audit bench`.
//!
//! Storage is `rxvault_store::audit` (an [`AuditStore`]): SQLite in its own
//! file (`DIR/audit.db`) or `audit_*` tables in the vault's PostgreSQL
//! schema. This crate does not depend on `rxvault-vault`; the vault hands
//! it a keyring, a clock and a store ([`AuditLog::open_for`]).
//!
//! **Architecture invariants.** Identifiers (actor, session, address,
//! host, free text) are stored only sealed; lookups go through keyed hashes.
//! Hashing and signing go through `rxvault-crypto` (no primitive crate
//! here). Verification trusts nothing the log says about itself: hashes are
//! recomputed from entry bytes and signatures checked against keys from
//! outside the log. Errors and logs carry indexes, counts and kinds, never
//! identifiers.
//!
//! # Example
//! ```
//! use rxvault_audit::{Action, Actor, AuditConfig, AuditLog, Entry, StoreLocation};
//! use rxvault_crypto::{Secrets, SecretKey, kek::LocalKek};
//! use rxvault_model::{CategorySet, SystemClock, Rid};
//! use std::sync::Arc;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! // What the vault does: a keyring with a data key and a signing key.
//! let (keyring, _) = Secrets::create("vault-1", Box::new(LocalKek::new(1, SecretKey::generate()?)))?;
//! let dek = keyring.prepare_dek()?;
//! keyring.activate(dek);
//! let signer = keyring.prepare_signer()?;
//! keyring.install_signer(signer);
//!
//! let location = StoreLocation::Sqlite { dir: dir.path().to_path_buf() };
//! let log = AuditLog::open_for(&location, "vault-1", keyring, Arc::new(SystemClock),
//!                              AuditConfig::for_vault("vault-1"))?;
//! let receipt = log.append(
//!     Entry::new(Actor::user("alice"), Action::Read { kind: None, categories: CategorySet::ALL })
//!         .session("s-1")
//!         .patients([Rid([7; 16])]),
//! )?;
//! let checkpoint = log.checkpoint()?;
//! let proof = log.reader().inclusion_proof(receipt.index, checkpoint.checkpoint.size)?;
//! rxvault_audit::merkle::verify_inclusion(receipt.index, checkpoint.checkpoint.size,
//!     &receipt.leaf_hash, &proof, &checkpoint.checkpoint.root)?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod entry;
pub mod export;
pub mod log;
pub mod merkle;
pub mod reader;
pub mod stream;
pub mod verify;

pub use checkpoint::{Checkpoint, SignedCheckpoint, VerifierKey};
pub use entry::{
    AccessGrant, Action, ActionKind, Actor, ActorKind, ApprovalBasis, Entry, ExportFormat,
    ExportProtection, Header, KeyRotation, KindCategories, LoggedEntry, Outcome, RotationStep,
    Sink, StoredEntry, WriteOp,
};
pub use log::{AuditConfig, AuditLog, Pending, Receipt, StoreLocation, open_store};
pub use reader::{AuditReader, ExportScope, ExportStatus, PatientSeen, Query};
pub use rxvault_store::audit::AuditStore;
pub use stream::{StopHandle, StreamOptions, Subscription};
pub use verify::{Problem, ProblemKind, Report, VerifyOptions};

use std::sync::Arc;

/// Errors of the audit log. None carries an identifier or key material:
/// entries are named by index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rxvault_store::Error),
    /// Cryptography failed (no data key to seal with, integrity).
    #[error(transparent)]
    Crypto(#[from] rxvault_crypto::Error),
    /// The keyring has no signing key (the vault must create it first:
    /// `Vault::ensure_signer`).
    #[error(
        "the vault has no audit signing key yet (the vault creates it with ensure_signer before the log is opened)"
    )]
    NoSigner,
    /// A stored entry is not what it should be.
    #[error("audit entry {index}: {reason}")]
    Malformed {
        /// The entry's index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint text is malformed.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A proof does not verify.
    #[error(transparent)]
    Proof(#[from] merkle::ProofError),
    /// The stored log does not match its latest signed checkpoint: it was
    /// altered. Appending stops until `rxvault audit verify` has been run
    /// and the cause dealt with.
    #[error(
        "the audit log does not match its latest signed checkpoint ({0}); it may have been tampered with: run `rxvault audit verify`"
    )]
    Tampered(String),
    /// The log was closed (or its committer stopped).
    #[error("the audit log is closed")]
    Closed,
    /// A group commit failed; every entry in it was refused.
    #[error("the audit commit failed: {0}")]
    Commit(#[source] Arc<Error>),
    /// A request that cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a file or socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (a path or an address, never an identifier).
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Unix milliseconds of a timestamp.
pub fn unix_ms(t: rxvault_model::Timestamp) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 text (UTC, milliseconds) of Unix milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}
