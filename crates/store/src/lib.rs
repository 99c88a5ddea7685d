//! Storage for rxvault: one [`Store`] interface, two backends.
//!
//! - [`SqliteStore`]: the embedded default, one file in the data directory,
//!   WAL mode with `synchronous=FULL` so every acknowledged write survives a
//!   killed process and a power cut.
//! - [`PgStore`]: PostgreSQL, for chains that outgrow one machine; the
//!   vault's tables live in their own schema.
//!
//! **Architecture invariant:** the store never receives plaintext PHI or key
//! material. Records arrive sealed ([`RecordWrite::envelope`]), keyed by a
//! [`Rid`] (a keyed hash, not an identifier), indexed by [`IndexToken`]s
//! (keyed hashes of normalised values) and accompanied by wrapped keys
//! ([`StoredKey`]) only. This crate does not depend on the crypto crate and
//! could not decrypt anything if it tried.
//!
//! Both backends pass the same conformance suite (`tests/conformance.rs`).
//! Schema versions are in [`schema`]; opening a database written by a newer
//! rxvault fails with [`Error::TooNew`].
#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod detect;
mod pg;
mod pgconn;
mod pool;
pub mod schema;
mod sql;
mod sqlite;

pub use audit::{AuditStore, PgAuditStore, SqliteAuditStore};
pub use auth::{AuthStore, SqlAuthStore};
pub use detect::{DetectStore, SqlDetectStore};
pub use pg::PgStore;
pub use sqlite::SqliteStore;

use rxvault_model::{DekId, IndexKind, IndexToken, RecordKind, Rid};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An SQLite failure.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL failure.
    #[error("PostgreSQL: {}", describe_pg(.0))]
    Postgres(#[from] postgres::Error),
    /// The disk is full: nothing of the failed write was kept.
    #[error(
        "the disk is full: the last write was rolled back and nothing stored was damaged; free space and retry"
    )]
    DiskFull,
    /// The database was written by a newer rxvault.
    #[error(
        "this vault's database is schema version {found}, but this rxvault supports up to {supported}: upgrade rxvault to open it"
    )]
    TooNew {
        /// The database's version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// Not an rxvault database.
    #[error("{0} is not an rxvault database")]
    NotAVault(String),
    /// A stored value that cannot be right (corruption or tampering).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A configuration that cannot work (the PostgreSQL connection string,
    /// its TLS settings).
    #[error("{0}")]
    Config(String),
    /// A write through a read-only snapshot.
    #[error("this is a read-only snapshot of the store")]
    ReadOnly,
    /// An argument the store refuses (what is wrong with it; never the
    /// value if it could be an identifier).
    #[error("{0}")]
    Invalid(String),
}

/// A PostgreSQL error with what its `Display` leaves out: the server's
/// message ("db error" alone says nothing) or the cause (a TLS handshake's
/// certificate problem).
fn describe_pg(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A wrapped key as stored (the store cannot unwrap it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id.
    pub id: u32,
    /// Purpose code (see `rxvault_crypto::KeyPurpose`).
    pub purpose: u8,
    /// The KEK version that wrapped it.
    pub kek_version: u32,
    /// The wrapped bytes.
    pub wrapped: Vec<u8>,
}

/// A sealed record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its kind.
    pub kind: RecordKind,
    /// Its storage key.
    pub rid: Rid,
    /// The patient it belongs to (none for patients).
    pub patient: Option<Rid>,
    /// The data key that sealed it.
    pub dek: DekId,
    /// Derived from other data (a Coverage taken from a claim); replaced by
    /// any non-derived record of the same kind for the same patient.
    pub derived: bool,
    /// The sealed envelope.
    pub envelope: Vec<u8>,
}

/// A record to write, with its blind-index tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// The record.
    pub record: StoredRecord,
    /// Its index entries; they replace any the record had.
    pub tokens: Vec<(IndexKind, IndexToken)>,
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace a record and its index entries.
    ///
    /// A non-derived record deletes the derived records of its kind for the
    /// same patient; a derived record is skipped if a non-derived one exists
    /// for that patient.
    Put(RecordWrite),
    /// Delete a record and its index entries (no-op if absent).
    Delete {
        /// Kind.
        kind: RecordKind,
        /// Key.
        rid: Rid,
    },
    /// Replace a record's envelope only if it is still `expected` (a
    /// compare-and-swap, for re-encryption racing live writers).
    Reseal {
        /// Kind.
        kind: RecordKind,
        /// Key.
        rid: Rid,
        /// The envelope that was read.
        expected: Vec<u8>,
        /// The new envelope.
        envelope: Vec<u8>,
        /// Its data key.
        dek: DekId,
        /// With `Some`, the record's blind-index entries become these when
        /// the swap happens (a re-index: the new envelope binds them);
        /// with `None` they stay.
        tokens: Option<Vec<(IndexKind, IndexToken)>>,
    },
    /// Set (or with `None`, remove) a metadata entry.
    Meta {
        /// Key.
        key: String,
        /// Value.
        value: Option<String>,
    },
}

/// Operations applied atomically, in order: all or none survive a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The operations.
    pub ops: Vec<Op>,
    /// When (Unix seconds), recorded as the rows' update time.
    pub at: i64,
}

/// What a blind-index lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexHit {
    /// The record's kind.
    pub kind: RecordKind,
    /// Its key.
    pub rid: Rid,
}

/// The metadata key of a data key's nonce high-water mark.
pub(crate) fn counters_key(dek: DekId) -> String {
    format!("counters.{}", dek.0)
}

/// A stored high-water mark.
pub(crate) fn parse_counter(value: Option<String>) -> Result<u64> {
    value.map_or(Ok(0), |v| {
        v.parse()
            .map_err(|_| Error::Corrupt(format!("nonce counter {v:?}")))
    })
}

/// The storage interface both backends implement.
///
/// Every method is blocking; async callers use a blocking thread pool.
/// Implementations are safe to share between threads.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// The schema version of the database.
    fn schema_version(&self) -> Result<u32>;

    /// A metadata value.
    fn meta(&self, key: &str) -> Result<Option<String>>;

    /// Every stored wrapped key.
    fn keys(&self) -> Result<Vec<StoredKey>>;

    /// Stores wrapped keys (replacing same id and KEK version), atomically.
    fn put_keys(&self, keys: &[StoredKey]) -> Result<()>;

    /// Reserves `n` consecutive nonce counters of data key `dek` and
    /// returns the first: a high-water mark (metadata `counters.<dek>`)
    /// advanced in one transaction, so no two calls, in any process, get
    /// overlapping ranges.
    fn reserve_counters(&self, dek: DekId, n: u64) -> Result<u64>;

    /// Sets metadata `key` to `value` if it is `expected` now (`None`:
    /// absent), in one transaction; returns the value it holds afterwards
    /// (`value`, or what another writer put there first).
    fn swap_meta(&self, key: &str, expected: Option<&str>, value: &str) -> Result<String>;

    /// Deletes the wraps under KEK versions other than `keep` of every key
    /// that has a wrap under `keep` (a key wrapped only under another
    /// version is never left without a wrap), returning how many were
    /// deleted.
    fn retain_keys_of_kek(&self, keep: u32) -> Result<u64>;

    /// Deletes a data key (all its KEK versions), e.g. once no record uses it.
    fn delete_key(&self, id: u32) -> Result<()>;

    /// Applies a batch atomically and durably.
    fn write(&self, batch: &WriteBatch) -> Result<()>;

    /// One record.
    fn get(&self, kind: RecordKind, rid: &Rid) -> Result<Option<StoredRecord>>;

    /// A patient's records of one kind.
    fn by_patient(&self, kind: RecordKind, patient: &Rid) -> Result<Vec<StoredRecord>>;

    /// The records whose index entry of `index` is `token`.
    fn lookup(&self, index: IndexKind, token: &IndexToken) -> Result<Vec<IndexHit>>;

    /// Up to `limit` records of `kind` with keys after `after`, in key order.
    fn scan(
        &self,
        kind: RecordKind,
        after: Option<&Rid>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>>;

    /// How many records of `kind` there are.
    fn count(&self, kind: RecordKind) -> Result<u64>;

    /// How many records each data key has sealed (records, not parts).
    fn dek_usage(&self) -> Result<Vec<(DekId, u64)>>;

    /// Writes a consistent copy of the whole database as of one moment to
    /// `path` (a new file) while writers go on, and returns the copy's
    /// record counts per kind (what the copy holds, not the live store).
    /// Ciphertext only, like everything the store holds. SQLite: the online
    /// backup API in one step (one read transaction; WAL lets writers
    /// continue). PostgreSQL: not supported yet ([`Error::Invalid`]).
    fn backup_to(&self, path: &std::path::Path) -> Result<Vec<(RecordKind, u64)>>;
}

/// Copies SQLite database `from` to the new file `to` with the online
/// backup API in one step: the copy is the database as of one read
/// transaction, whatever commits meanwhile. The copy is left in rollback
/// journal mode (one self-contained file, no `-wal` beside it).
pub(crate) fn sqlite_backup(from: &rusqlite::Connection, to: &std::path::Path) -> Result<()> {
    if to.exists() {
        return Err(Error::Invalid(format!(
            "{} already exists; a backup copy is written to a new file",
            to.display()
        )));
    }
    let mut dst = rusqlite::Connection::open(to)?;
    {
        let backup = rusqlite::backup::Backup::new(from, &mut dst)?;
        // -1: every page in one step, so the copy is one snapshot (a step
        // per chunk would restart whenever another connection writes).
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => continue,
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }
    dst.execute_batch("PRAGMA journal_mode = DELETE;")?;
    Ok(())
}
