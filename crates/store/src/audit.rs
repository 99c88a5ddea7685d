//! Storage of the tamper-evident audit log, apart from the PHI tables.
//!
//! The log is append-only: entries (opaque canonical bytes the audit crate
//! encodes and hashes), the lookup keys that index them (keyed hashes of
//! actor, session, host, address and export id; patient record keys;
//! action codes),
//! the stored Merkle tree nodes and the signed checkpoints. A batch of all
//! of these is committed in one transaction ([`AuditStore::append`]), so a
//! crash keeps either all of a group commit or none of it.
//!
//! Two backends, one behaviour (`tests/audit_conformance.rs`):
//! - [`SqliteAuditStore`]: its own database file, `DIR/audit.db`
//!   ([`AUDIT_DB_FILE`]), with its own WAL and `synchronous=FULL`, so the
//!   audit write load never takes the PHI database's write lock.
//! - [`PgAuditStore`]: tables `audit_*` in the vault's PostgreSQL schema.
//!
//! Each has its own schema version (`audit_meta.schema_version`,
//! [`AUDIT_SCHEMA_VERSION`]); a newer one is refused ([`Error::TooNew`]).
//!
//! ```text
//! audit_entries     (idx PK, time_ms, entry)          the log, in order
//! audit_postings    lookups: key → entries (layout per backend, below)
//! audit_nodes       (level, idx) PK, hash             complete-subtree hashes
//! audit_checkpoints (size PK, time_ms, root, note)    signed checkpoints
//! audit_deks        (dek PK, first_idx)               data keys entry bodies use
//! audit_consumers   (name PK, next_idx)               stream consumers' positions
//! audit_meta        (key PK, value)                   schema version
//! ```
//!
//! # Stream consumers' positions
//! `audit_consumers` (schema v3) holds, per named consumer of the live
//! audit stream (`rxvault_audit::stream`), the index of the first entry it
//! has not acknowledged. It is not evidence and not part of the log: no
//! hash covers it. Positions only move forward through
//! [`AuditStore::advance_consumer`] (an acknowledgement repeated or
//! arriving late changes nothing); [`AuditStore::set_consumer`] moves one
//! anywhere (a replay) or removes it. On SQLite a position is written on
//! its own connection with `synchronous=NORMAL`, between two of this
//! process's commits: it holds the write lock for a WAL append, never for
//! an fsync, so consumers acknowledging do not stall group commits; a
//! power loss may lose the newest positions (the entries are then
//! delivered again, never skipped), a crashed process loses nothing. On
//! PostgreSQL a position is committed with `synchronous_commit` off, for
//! the same reason and with the same consequence for a server crash.
//!
//! # The lookup index
//! PostgreSQL: `audit_postings ((key, first_idx) PK, min/max time, idxs)`,
//! one row per key per group commit.
//!
//! SQLite (schema v2) writes the index **in runs**, so that a commit only
//! ever appends to the end of its B-trees (a row per key per commit in key
//! order would dirty one random page per distinct key: a hundred pages for
//! a commit of 25 entries, most of its write volume):
//!
//! ```text
//! audit_pending  (idx PK, time_ms, keys)               keys of the newest entries, not yet in a run
//! audit_runs     (run PK, end_idx, min/max time)       runs: entries run..end_idx, all indexed
//! audit_postings ((run, key, first_idx) PK, min/max time, idxs)   a run's rows, in key order
//! ```
//!
//! A commit appends its entries' keys to `audit_pending`; once
//! [`RUN_ENTRIES`] entries wait there (or a commit is that large by
//! itself), the commit turns them into one run: the postings rows sorted by
//! key, appended after the previous run's, and empties `audit_pending`. A
//! lookup reads, in one snapshot, the key's rows in every run overlapping
//! its time range and the pending entries carrying the key. Schema v1's
//! rows (one per key per commit) became run 0 when migrated.
//!
//! **Nothing here is trusted by verification.** The store is a dumb
//! container: the audit crate recomputes every hash from `audit_entries`
//! and checks signatures against keys it gets elsewhere. This module does
//! not validate what it is given beyond keeping the log contiguous.

use crate::pool::{self, Pool};
use crate::{Backend, Error, Result};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Statement};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use rxvault_model::Rid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The audit schema version this build writes. v2: SQLite writes the
/// lookup index in runs (PostgreSQL: unchanged). v3: `audit_consumers`
/// (both backends).
pub const AUDIT_SCHEMA_VERSION: u32 = 3;

/// The longest stream consumer name.
pub const CONSUMER_NAME_MAX: usize = 64;

/// SQLite: how many entries' keys wait in `audit_pending` before they are
/// written as one run of postings.
pub const RUN_ENTRIES: u64 = 4096;

/// The audit database's file name in a vault's data directory.
pub const AUDIT_DB_FILE: &str = "audit.db";

/// A key entries are looked up by. The 16-byte values are keyed hashes
/// (computed by the audit crate with the vault's index key), never
/// identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditKey {
    /// The actor (user or service account) id's keyed hash.
    Actor([u8; 16]),
    /// The session id's keyed hash.
    Session([u8; 16]),
    /// The host or agent id's keyed hash.
    Host([u8; 16]),
    /// The source address's keyed hash.
    Ip([u8; 16]),
    /// A patient's record key.
    Patient(Rid),
    /// An action code.
    Action(u16),
    /// An export id's keyed hash (the entries that started, finished or
    /// failed that export).
    Export([u8; 16]),
}

impl AuditKey {
    /// The bytes stored in `audit_postings.key`: a kind byte, then the value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        self.write_to(&mut out);
        out
    }

    /// Appends [`to_bytes`](Self::to_bytes) to `out`.
    fn write_to(&self, out: &mut Vec<u8>) {
        push_stored_key(sort_key(self), out);
    }

    /// The key at the start of `bytes` (as [`to_bytes`](Self::to_bytes)
    /// writes it) and its length; `None` if `bytes` does not start with one.
    pub fn from_bytes(bytes: &[u8]) -> Option<(AuditKey, usize)> {
        let (&kind, rest) = bytes.split_first()?;
        if kind == 6 {
            let code = rest.get(..2)?;
            return Some((AuditKey::Action(u16::from_be_bytes([code[0], code[1]])), 3));
        }
        let v: [u8; 16] = rest.get(..16)?.try_into().ok()?;
        let key = match kind {
            1 => AuditKey::Actor(v),
            2 => AuditKey::Session(v),
            3 => AuditKey::Host(v),
            4 => AuditKey::Ip(v),
            5 => AuditKey::Patient(Rid(v)),
            7 => AuditKey::Export(v),
            _ => return None,
        };
        Some((key, 17))
    }
}

/// The keys of one entry, concatenated (`audit_pending.keys`).
fn encode_keys(keys: &[AuditKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * 17);
    for k in keys {
        k.write_to(&mut out);
    }
    out
}

/// The keys [`encode_keys`] wrote.
fn decode_keys(mut bytes: &[u8], out: &mut Vec<AuditKey>) -> Result<()> {
    while !bytes.is_empty() {
        let (key, n) = AuditKey::from_bytes(bytes)
            .ok_or_else(|| Error::Corrupt("audit pending index keys".into()))?;
        out.push(key);
        bytes = &bytes[n..];
    }
    Ok(())
}

/// One entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntryWrite {
    /// Its position in the log (0-based).
    pub index: u64,
    /// When it happened (Unix milliseconds).
    pub time_ms: i64,
    /// The data key that sealed its body (so key retirement can see it).
    pub dek: u32,
    /// The canonical encoding (what the Merkle leaf hashes).
    pub bytes: Vec<u8>,
    /// Lookup keys (duplicates are ignored).
    pub keys: Vec<AuditKey>,
}

/// A stored Merkle tree node: the hash of the complete subtree of `2^level`
/// leaves starting at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditNode {
    /// Height (0: a leaf).
    pub level: u8,
    /// Position within the level.
    pub index: u64,
    /// The subtree hash.
    pub hash: [u8; 32],
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// Tree size it commits to.
    pub size: u64,
    /// When it was signed (Unix milliseconds).
    pub time_ms: i64,
    /// The root hash it commits to.
    pub root: [u8; 32],
    /// The signed note text (what verification parses and checks).
    pub note: String,
}

/// What one group commit writes, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditBatch {
    /// Entries with consecutive indexes, the first equal to the log's size.
    pub entries: Vec<AuditEntryWrite>,
    /// Tree nodes completed by these entries.
    pub nodes: Vec<AuditNode>,
    /// A checkpoint signed over the log including these entries.
    pub checkpoint: Option<AuditCheckpoint>,
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Appended {
    /// Durably committed.
    Committed,
    /// Nothing was written: the batch did not start at the log's end
    /// (another process appended meanwhile). The log's size is `size`.
    Conflict {
        /// The log's actual size.
        size: u64,
    },
}

/// An indexed lookup: entries carrying **every** key, in a time range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditLookup {
    /// Keys an entry must all carry (none: every entry in the time range).
    pub keys: Vec<AuditKey>,
    /// From this time (Unix ms, inclusive).
    pub from_ms: Option<i64>,
    /// Until this time (Unix ms, exclusive).
    pub to_ms: Option<i64>,
    /// Only entries with an index above this (for paging).
    pub after: Option<u64>,
    /// At most this many entries (0: no limit).
    pub limit: usize,
}

/// A stored entry: its index and canonical bytes.
pub type RawEntry = (u64, Vec<u8>);

/// The audit log's storage interface. Blocking, shareable between threads.
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// The audit schema version of the database.
    fn schema_version(&self) -> Result<u32>;

    /// How many entries the log holds: the highest stored index plus one.
    fn size(&self) -> Result<u64>;

    /// Appends a batch atomically and durably, if its first entry's index is
    /// the log's size (else writes nothing and says so).
    fn append(&self, batch: &AuditBatch) -> Result<Appended>;

    /// Appends the batch `build` makes for the log's current size, with
    /// every other appender (in any process) held off from before the size
    /// is read until the commit: no conflict is possible. `build` returning
    /// `None` writes nothing. Returns whether a batch was committed. The
    /// batch's first entry must have index `size`.
    fn append_with(&self, build: &mut dyn FnMut(u64) -> Option<AuditBatch>) -> Result<bool>;

    /// The stored entries with `from <= index < to`, in index order (gaps,
    /// if rows were deleted, show as missing indexes).
    fn entries(&self, from: u64, to: u64) -> Result<Vec<RawEntry>>;

    /// The stored entries at these indexes (missing ones are left out), in
    /// index order.
    fn entries_at(&self, indexes: &[u64]) -> Result<Vec<RawEntry>>;

    /// Entries found through the index (see [`AuditLookup`]), in index
    /// order.
    fn lookup(&self, lookup: &AuditLookup) -> Result<Vec<RawEntry>>;

    /// Stored nodes of `level` with `from <= index < to`, in index order.
    fn nodes(&self, level: u8, from: u64, to: u64) -> Result<Vec<(u64, [u8; 32])>>;

    /// The levels that have stored nodes.
    fn node_levels(&self) -> Result<Vec<u8>>;

    /// Every stored checkpoint, by size.
    fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>>;

    /// The checkpoint with the largest size.
    fn latest_checkpoint(&self) -> Result<Option<AuditCheckpoint>>;

    /// The data keys that sealed entry bodies.
    fn deks(&self) -> Result<Vec<u32>>;

    /// A read-only view of the log as it is now: every read through it
    /// sees one snapshot (one read transaction), whatever is appended
    /// meanwhile. Appending through it is refused. For whole-log checks
    /// (`audit verify`) that read entries, nodes and checkpoints in many
    /// queries and must not mistake a concurrent append for tampering.
    fn snapshot(&self) -> Result<Box<dyn AuditStore>>;

    /// Writes a consistent copy of the whole log as of one moment to `path`
    /// (a new file) while appends go on, and returns the copy's size and
    /// latest checkpoint (what the copy holds). SQLite: the online backup
    /// API in one step. PostgreSQL: not supported yet ([`Error::Invalid`]).
    fn backup_to(&self, path: &Path) -> Result<(u64, Option<AuditCheckpoint>)>;
    /// The stored position of stream consumer `name` (the index of the
    /// first entry it has not acknowledged), if it has one.
    fn consumer_position(&self, name: &str) -> Result<Option<u64>>;

    /// Moves consumer `name`'s position forward to `next_index` (creating
    /// it there if it has none); a position already at or past it is kept.
    /// Returns the stored position.
    fn advance_consumer(&self, name: &str, next_index: u64) -> Result<u64>;

    /// Sets consumer `name`'s position to `next_index`, backwards too, or
    /// with `None` removes the consumer.
    fn set_consumer(&self, name: &str, next_index: Option<u64>) -> Result<()>;

    /// Every consumer and its position, by name.
    fn consumers(&self) -> Result<Vec<(String, u64)>>;
}

/// Checks a consumer name: 1 to [`CONSUMER_NAME_MAX`] characters of
/// `A-Z a-z 0-9 . _ -` (names are stored in clear: they name programs,
/// never people).
pub fn check_consumer_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= CONSUMER_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "audit stream consumer names are 1 to {CONSUMER_NAME_MAX} characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

const MIGRATION_1: &[&str] = &[
    "CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE audit_entries (idx INTEGER PRIMARY KEY, time_ms BIGINT NOT NULL, entry BLOB NOT NULL)",
    "CREATE INDEX audit_entries_time ON audit_entries (time_ms)",
    // One row per key per group commit: the entries of that commit that
    // carry the key (varint deltas). Under load a commit holds thousands of
    // entries sharing a few hundred users, sessions, hosts and addresses,
    // so this is several times fewer B-tree inserts than a row per key per
    // entry, at the same lookup cost.
    "CREATE TABLE audit_postings (key BLOB NOT NULL, first_idx BIGINT NOT NULL, \
     min_time BIGINT NOT NULL, max_time BIGINT NOT NULL, idxs BLOB NOT NULL, \
     PRIMARY KEY (key, first_idx)) WITHOUT ROWID",
    "CREATE TABLE audit_nodes (level BIGINT NOT NULL, idx BIGINT NOT NULL, hash BLOB NOT NULL, \
     PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE audit_checkpoints (size INTEGER PRIMARY KEY, time_ms BIGINT NOT NULL, \
     root BLOB NOT NULL, note TEXT NOT NULL)",
    "CREATE TABLE audit_deks (dek INTEGER PRIMARY KEY, first_idx BIGINT NOT NULL)",
];

/// SQLite v2: the lookup index in runs (see the module docs). The v1 rows
/// (one per key per commit) become run 0, covering the whole log.
const SQLITE_MIGRATION_2: &[&str] = &[
    "CREATE TABLE audit_runs (run INTEGER PRIMARY KEY, end_idx BIGINT NOT NULL, \
     min_time BIGINT NOT NULL, max_time BIGINT NOT NULL)",
    "CREATE TABLE audit_pending (idx INTEGER PRIMARY KEY, time_ms BIGINT NOT NULL, keys BLOB NOT NULL)",
    "ALTER TABLE audit_postings RENAME TO audit_postings_v1",
    "CREATE TABLE audit_postings (run BIGINT NOT NULL, key BLOB NOT NULL, first_idx BIGINT NOT NULL, \
     min_time BIGINT NOT NULL, max_time BIGINT NOT NULL, idxs BLOB NOT NULL, \
     PRIMARY KEY (run, key, first_idx)) WITHOUT ROWID",
    "INSERT INTO audit_postings (run, key, first_idx, min_time, max_time, idxs) \
     SELECT 0, key, first_idx, min_time, max_time, idxs FROM audit_postings_v1",
    "INSERT INTO audit_runs (run, end_idx, min_time, max_time) \
     SELECT 0, MAX(idx) + 1, MIN(time_ms), MAX(time_ms) FROM audit_entries HAVING COUNT(*) > 0",
    "DROP TABLE audit_postings_v1",
];

/// v3 (both backends): stream consumers' positions.
const MIGRATION_3: &[&str] =
    &["CREATE TABLE audit_consumers (name TEXT PRIMARY KEY, next_idx BIGINT NOT NULL)"];

fn migration(backend: Backend, version: u32) -> &'static [&'static str] {
    match (backend, version) {
        (_, 1) => MIGRATION_1,
        (Backend::Sqlite, 2) => SQLITE_MIGRATION_2,
        (_, 3) => MIGRATION_3,
        // PostgreSQL v2: no change (its index stays one row per key per
        // commit).
        _ => &[],
    }
}

fn pg_ddl(sql: &str) -> String {
    sql.replace("INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY")
        .replace("BLOB", "BYTEA")
        .replace(" WITHOUT ROWID", "")
}

/// The DML, written once with `?` placeholders.
struct AuditSql {
    max_idx: String,
    entry_insert: String,
    postings: String,
    entry_time_at: String,
    time_range: String,
    node_insert: String,
    checkpoint_insert: String,
    dek_insert: String,
    entries_range: String,
    entry_at: String,
    nodes_range: String,
    node_levels: String,
    checkpoints: String,
    latest_checkpoint: String,
    deks: String,
    meta_get: String,
    consumer_get: String,
    consumer_advance: String,
    consumer_set: String,
    consumer_delete: String,
    consumers: String,
}

impl AuditSql {
    fn new(dialect: fn(&str) -> String) -> Self {
        Self {
            max_idx: "SELECT MAX(idx) FROM audit_entries".into(),
            entry_insert: dialect(
                "INSERT INTO audit_entries (idx, time_ms, entry) VALUES (?, ?, ?)",
            ),
            postings: dialect(
                "SELECT first_idx, idxs FROM audit_postings \
                 WHERE key = ? AND max_time >= ? AND min_time < ? ORDER BY first_idx",
            ),
            entry_time_at: dialect("SELECT idx, time_ms, entry FROM audit_entries WHERE idx = ?"),
            time_range: dialect(
                "SELECT idx, entry FROM audit_entries WHERE idx IN \
                 (SELECT idx FROM audit_entries WHERE time_ms >= ? AND time_ms < ?) \
                 AND idx > ? ORDER BY idx LIMIT ?",
            ),
            node_insert: dialect("INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)"),
            checkpoint_insert: dialect(
                "INSERT INTO audit_checkpoints (size, time_ms, root, note) VALUES (?, ?, ?, ?)",
            ),
            dek_insert: dialect(
                "INSERT INTO audit_deks (dek, first_idx) VALUES (?, ?) ON CONFLICT DO NOTHING",
            ),
            entries_range: dialect(
                "SELECT idx, entry FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            ),
            entry_at: dialect("SELECT idx, entry FROM audit_entries WHERE idx = ?"),
            nodes_range: dialect(
                "SELECT idx, hash FROM audit_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
            ),
            node_levels: "SELECT DISTINCT level FROM audit_nodes ORDER BY level".into(),
            checkpoints: "SELECT size, time_ms, root, note FROM audit_checkpoints ORDER BY size"
                .into(),
            latest_checkpoint:
                "SELECT size, time_ms, root, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
                    .into(),
            deks: "SELECT dek FROM audit_deks ORDER BY dek".into(),
            meta_get: dialect("SELECT value FROM audit_meta WHERE key = ?"),
            consumer_get: dialect("SELECT next_idx FROM audit_consumers WHERE name = ?"),
            // Forward only, in one statement: acknowledgements from two
            // threads (or a late one) cannot move a position back.
            consumer_advance: dialect(
                "INSERT INTO audit_consumers (name, next_idx) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET next_idx = CASE \
                 WHEN excluded.next_idx > audit_consumers.next_idx THEN excluded.next_idx \
                 ELSE audit_consumers.next_idx END RETURNING next_idx",
            ),
            consumer_set: dialect(
                "INSERT INTO audit_consumers (name, next_idx) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET next_idx = excluded.next_idx",
            ),
            consumer_delete: dialect("DELETE FROM audit_consumers WHERE name = ?"),
            consumers: "SELECT name, next_idx FROM audit_consumers ORDER BY name".into(),
        }
    }
}

/// One posting row: the entries of one batch that carry `key`.
struct Posting {
    key: Vec<u8>,
    first: i64,
    min_time: i64,
    max_time: i64,
    /// The other indexes, as LEB128 deltas from the previous one.
    rest: Vec<u8>,
}

/// The posting rows of a batch, sorted by key (a key repeated within an
/// entry counts once).
fn postings(batch: &AuditBatch) -> Result<Vec<Posting>> {
    let mut all = Vec::with_capacity(batch.entries.len() * 6);
    for e in &batch.entries {
        let idx = to_i64(e.index)?;
        all.extend(e.keys.iter().map(|k| (sort_key(k), idx, e.time_ms)));
    }
    Ok(postings_of(all))
}

/// A key as integers that sort like its `audit_postings.key` bytes: the
/// kind, then the value (big-endian; action codes in the top two bytes).
type SortKey = (u8, u128);

fn sort_key(key: &AuditKey) -> SortKey {
    let (kind, value): (u8, &[u8; 16]) = match key {
        AuditKey::Actor(v) => (1, v),
        AuditKey::Session(v) => (2, v),
        AuditKey::Host(v) => (3, v),
        AuditKey::Ip(v) => (4, v),
        AuditKey::Patient(r) => (5, &r.0),
        AuditKey::Action(code) => return (6, u128::from(*code) << 112),
        AuditKey::Export(v) => (7, v),
    };
    (kind, u128::from_be_bytes(*value))
}

/// Appends the stored bytes of a [`SortKey`] to `out`.
fn push_stored_key(key: SortKey, out: &mut Vec<u8>) {
    let value = key.1.to_be_bytes();
    out.push(key.0);
    out.extend_from_slice(if key.0 == 6 { &value[..2] } else { &value });
}

/// Posting rows from (key, index, time) triples in any order, sorted by
/// key (a key repeated within an entry counts once).
fn postings_of(mut all: Vec<(SortKey, i64, i64)>) -> Vec<Posting> {
    all.sort_unstable_by_key(|&(k, i, _)| (k, i));
    let mut out: Vec<Posting> = Vec::new();
    let mut current: Option<(SortKey, i64)> = None;
    for &(key, idx, time) in &all {
        match current {
            Some((k, prev)) if k == key => {
                if idx == prev {
                    continue;
                }
                let p = out.last_mut().expect("a posting per key");
                push_varint(&mut p.rest, (idx - prev) as u64);
                p.min_time = p.min_time.min(time);
                p.max_time = p.max_time.max(time);
            }
            _ => {
                let mut stored = Vec::with_capacity(17);
                push_stored_key(key, &mut stored);
                out.push(Posting {
                    key: stored,
                    first: idx,
                    min_time: time,
                    max_time: time,
                    rest: Vec::new(),
                });
            }
        }
        current = Some((key, idx));
    }
    out
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The indexes of a posting row.
fn decode_posting(first: i64, rest: &[u8], out: &mut Vec<u64>) -> Result<()> {
    let bad = || Error::Corrupt("audit posting list".into());
    let mut idx = u64::try_from(first).map_err(|_| bad())?;
    out.push(idx);
    let (mut v, mut shift) = (0u64, 0u32);
    for b in rest {
        if shift > 63 {
            return Err(bad());
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            idx = idx.checked_add(v).ok_or_else(bad)?;
            out.push(idx);
            v = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    if shift != 0 {
        return Err(bad());
    }
    Ok(())
}

/// Reads a key's posting rows in a time range: (first index, deltas).
type PostingRows<'a> = dyn Fn(&[u8], i64, i64) -> Result<Vec<(i64, Vec<u8>)>> + 'a;
/// Fetches entries with their times.
type FetchTimed<'a> = dyn Fn(&[u64]) -> Result<Vec<(u64, i64, Vec<u8>)>> + 'a;

/// Entries carrying every key of `l`, from the posting lists: read each
/// key's rows in the time range, intersect, then fetch the entries (in
/// index order, in chunks, until `limit`) and keep those in the range.
fn lookup_postings(
    l: &AuditLookup,
    rows: &PostingRows<'_>,
    fetch: &FetchTimed<'_>,
) -> Result<Vec<RawEntry>> {
    let (from, to, after, _) = bounds(l)?;
    let mut set: Option<Vec<u64>> = None;
    for key in &l.keys {
        let mut idxs = Vec::new();
        for (first, rest) in rows(&key.to_bytes(), from, to)? {
            decode_posting(first, &rest, &mut idxs)?;
        }
        idxs.sort_unstable();
        idxs.dedup();
        set = Some(match set {
            None => idxs,
            Some(prev) => intersect(&prev, &idxs),
        });
    }
    let candidates: Vec<u64> = set
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i64::try_from(*i).is_ok_and(|i| i > after))
        .collect();
    fetch_in_range(l, &candidates, fetch)
}

/// Fetches `candidates` (in index order, in chunks, until the lookup's
/// limit) and keeps those in its time range.
fn fetch_in_range(
    l: &AuditLookup,
    candidates: &[u64],
    fetch: &FetchTimed<'_>,
) -> Result<Vec<RawEntry>> {
    let (from, to, _, limit) = bounds(l)?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for chunk in candidates.chunks(512) {
        for (i, t, e) in fetch(chunk)? {
            if t >= from && t < to {
                out.push((i, e));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("audit {what} {v}")))
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Corrupt(format!("audit index {v} out of range")))
}

fn to_hash(v: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|v: Vec<u8>| Error::Corrupt(format!("audit {what} of {} bytes", v.len())))
}

fn check_contiguous(batch: &AuditBatch) -> Result<()> {
    for w in batch.entries.windows(2) {
        if w[1].index != w[0].index + 1 {
            return Err(Error::Corrupt(format!(
                "audit batch is not contiguous: {} follows {}",
                w[1].index, w[0].index
            )));
        }
    }
    Ok(())
}

/// Time bounds and paging as bound parameters.
fn bounds(l: &AuditLookup) -> Result<(i64, i64, i64, i64)> {
    let after = match l.after {
        Some(a) => to_i64(a)?,
        None => -1,
    };
    let limit = if l.limit == 0 {
        i64::MAX
    } else {
        i64::try_from(l.limit).unwrap_or(i64::MAX)
    };
    Ok((
        l.from_ms.unwrap_or(i64::MIN),
        l.to_ms.unwrap_or(i64::MAX),
        after,
        limit,
    ))
}

// ---------------------------------------------------------------- SQLite

/// The WAL size (in frames, i.e. pages) from which a commit wakes the
/// checkpointer; it also runs every half second.
const CHECKPOINT_FRAMES: i32 = 4096;

/// The audit log in its own SQLite file (`DIR/audit.db`).
pub struct SqliteAuditStore {
    path: PathBuf,
    /// The one writer connection; group commit means one transaction at a
    /// time anyway, and queueing on this mutex beats `SQLITE_BUSY`. `None`
    /// in a snapshot.
    writer: Option<Mutex<Connection>>,
    /// Idle reader connections (WAL lets them read beside the writer).
    readers: Pool<Connection>,
    /// A snapshot's one connection, inside its read transaction: every
    /// read goes to it.
    pinned: Option<Mutex<Connection>>,
    /// Writes consumers' positions (opened on first use), with
    /// `synchronous=NORMAL`: an acknowledgement never holds the database's
    /// write lock through an fsync (see the module docs).
    positions: Mutex<Option<Connection>>,
    sql: AuditSql,
}

impl std::fmt::Debug for SqliteAuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAuditStore")
            .field("path", &self.path)
            .finish()
    }
}

fn sqlite_err(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Error::DiskFull,
        _ => Error::Sqlite(e),
    }
}

impl SqliteAuditStore {
    /// Opens the audit database at `path`, creating it (and its schema) if
    /// `create` and it does not exist.
    pub fn open(path: &Path, create: bool) -> Result<Self> {
        if !create && !path.exists() {
            return Err(Error::NotAVault(format!(
                "{} (no such audit database)",
                path.display()
            )));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Self::connect(path, flags)?;
        sqlite_migrate(&mut conn, path)?;
        // The writer never checkpoints: copying the WAL back into the
        // database would stall group commits. A thread with its own
        // connection does it beside the writer (PASSIVE: never blocks it).
        // Waking it after every commit would copy each commit's pages on
        // their own (two more fsyncs each): it is woken once the WAL holds
        // CHECKPOINT_FRAMES pages (the writer's WAL hook; the hook's sender
        // goes with the writer connection, which stops the thread).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(sqlite_err)?;
        let checkpointer = Self::start_checkpointer(path)?;
        conn.wal_hook(Some(
            move |_: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
                if frames >= CHECKPOINT_FRAMES {
                    let _ = checkpointer.send(());
                }
                Ok(())
            },
        ))
        .map_err(sqlite_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Some(Mutex::new(conn)),
            readers: Pool::new(pool::SQLITE_IDLE),
            pinned: None,
            positions: Mutex::new(None),
            sql: AuditSql::new(|s| s.to_string()),
        })
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        match &self.writer {
            Some(w) => Ok(w.lock().unwrap_or_else(|e| e.into_inner())),
            None => Err(Error::ReadOnly),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn start_checkpointer(path: &Path) -> Result<std::sync::mpsc::Sender<()>> {
        let conn = Self::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("rxvault-audit-wal".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                loop {
                    match rx.recv_timeout(std::time::Duration::from_millis(500)) {
                        Ok(()) => {
                            // Coalesce wake-ups.
                            while rx.try_recv().is_ok() {}
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
                            return;
                        }
                    }
                    // A failure (busy, disk full) is retried on the next
                    // round; the WAL only grows meanwhile.
                    let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
                }
            })
            .map_err(|e| Error::Corrupt(format!("starting the audit WAL checkpointer: {e}")))?;
        Ok(tx)
    }

    fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(sqlite_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite_err)?;
        // synchronous=FULL: a commit is on disk before `append` returns, which
        // is what "no audit, no access" rests on.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
             PRAGMA cache_size = -65536;",
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::NotAVault(path.display().to_string()),
            _ => sqlite_err(e),
        })?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn size_in(&self, tx: &rusqlite::Transaction<'_>) -> Result<u64> {
        let max: Option<i64> = tx
            .prepare_cached(&self.sql.max_idx)?
            .query_row([], |r| r.get(0))
            .map_err(sqlite_err)?;
        match max {
            Some(m) => Ok(to_u64(m, "entry index")? + 1),
            None => Ok(0),
        }
    }

    fn insert(&self, tx: &rusqlite::Transaction<'_>, batch: &AuditBatch) -> Result<()> {
        let mut entry = tx.prepare_cached(&self.sql.entry_insert)?;
        let mut dek = tx.prepare_cached(&self.sql.dek_insert)?;
        let mut last_dek = None;
        index_sqlite(tx, batch)?;
        for e in &batch.entries {
            let idx = to_i64(e.index)?;
            entry
                .execute(params![idx, e.time_ms, &e.bytes])
                .map_err(sqlite_err)?;
            if last_dek != Some(e.dek) {
                dek.execute(params![i64::from(e.dek), idx])
                    .map_err(sqlite_err)?;
                last_dek = Some(e.dek);
            }
        }
        let mut node = tx.prepare_cached(&self.sql.node_insert)?;
        for n in &batch.nodes {
            node.execute(params![i64::from(n.level), to_i64(n.index)?, &n.hash[..]])
                .map_err(sqlite_err)?;
        }
        if let Some(c) = &batch.checkpoint {
            tx.prepare_cached(&self.sql.checkpoint_insert)?
                .execute(params![to_i64(c.size)?, c.time_ms, &c.root[..], &c.note])
                .map_err(sqlite_err)?;
        }
        Ok(())
    }

    /// Runs `f` on the positions connection, between two of this
    /// process's commits (holding the writer's mutex, so that it never
    /// waits on its own writer through SQLite's sleeping busy handler,
    /// whose sleeps grow to 100 ms); other processes' commits are waited
    /// for in steps of 250 µs.
    fn write_position<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let _writer = self.writer()?;
        let mut guard = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let mut conn = Self::connect(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            conn.execute_batch("PRAGMA synchronous = NORMAL;")
                .map_err(sqlite_err)?;
            // About 10 s in all, like the other connections' timeout.
            conn.busy_handler(Some(|tries: i32| {
                std::thread::sleep(std::time::Duration::from_micros(250));
                tries < 40_000
            }))
            .map_err(sqlite_err)?;
            *guard = Some(conn);
        }
        let conn = guard.as_ref().expect("opened above");
        f(conn).map_err(sqlite_err)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.read_with(|c| f(c).map_err(sqlite_err))
    }

    fn read_with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if let Some(pinned) = &self.pinned {
            return f(&pinned.lock().unwrap_or_else(|e| e.into_inner()));
        }
        let conn = match self.readers.take() {
            Some(c) => c,
            None => Self::connect(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?,
        };
        let result = f(&conn);
        self.readers.put(conn);
        result
    }
}

const SQLITE_PENDING_FROM: &str = "SELECT MIN(idx) FROM audit_pending";
// Index rows are not evidence (lookups re-check every entry): a stale row
// left by a removed entry is replaced rather than blocking the log.
const SQLITE_PENDING_INSERT: &str = "INSERT INTO audit_pending (idx, time_ms, keys) \
     VALUES (?, ?, ?) ON CONFLICT (idx) DO UPDATE SET time_ms = excluded.time_ms, \
     keys = excluded.keys";
const SQLITE_PENDING_BEFORE: &str =
    "SELECT idx, time_ms, keys FROM audit_pending WHERE idx < ? ORDER BY idx";
const SQLITE_PENDING_CLEAR: &str = "DELETE FROM audit_pending";
const SQLITE_RUN_INSERT: &str = "INSERT INTO audit_runs (run, end_idx, min_time, max_time) \
     VALUES (?, ?, ?, ?) ON CONFLICT (run) DO UPDATE SET end_idx = excluded.end_idx, \
     min_time = excluded.min_time, max_time = excluded.max_time";
const SQLITE_POSTING_INSERT: &str = "INSERT INTO audit_postings \
     (run, key, first_idx, min_time, max_time, idxs) VALUES (?, ?, ?, ?, ?, ?) \
     ON CONFLICT (run, key, first_idx) DO UPDATE SET min_time = excluded.min_time, \
     max_time = excluded.max_time, idxs = excluded.idxs";
/// A key's rows in the runs that overlap a time range and end after an
/// index (runs are contiguous: those from the one holding `?2`).
const SQLITE_RUN_POSTINGS: &str = "SELECT p.first_idx, p.idxs FROM audit_runs AS r \
     CROSS JOIN audit_postings AS p \
     WHERE r.run >= COALESCE((SELECT MAX(run) FROM audit_runs WHERE run <= ?2), 0) \
     AND r.max_time >= ?3 AND r.min_time < ?4 \
     AND p.run = r.run AND p.key = ?1 AND p.max_time >= ?3 AND p.min_time < ?4";
const SQLITE_PENDING_RANGE: &str = "SELECT idx, keys FROM audit_pending \
     WHERE idx >= ? AND time_ms >= ? AND time_ms < ? ORDER BY idx";

/// Indexes a batch (SQLite, in the append transaction): its keys wait in
/// `audit_pending`, or, once [`RUN_ENTRIES`] entries would wait there, the
/// waiting entries and the batch become one run of postings.
fn index_sqlite(tx: &rusqlite::Transaction<'_>, batch: &AuditBatch) -> Result<()> {
    let (Some(first), Some(last)) = (batch.entries.first(), batch.entries.last()) else {
        return Ok(());
    };
    let first_idx = to_i64(first.index)?;
    let pending_from: Option<i64> = tx
        .prepare_cached(SQLITE_PENDING_FROM)?
        .query_row([], |r| r.get(0))
        .map_err(sqlite_err)?;
    let waiting = pending_from.map_or(0, |p| first_idx.saturating_sub(p).max(0)) as u64;
    if waiting + batch.entries.len() as u64 >= RUN_ENTRIES {
        let n = (waiting as usize + batch.entries.len()) * 6;
        let mut all: Vec<(SortKey, i64, i64)> = Vec::with_capacity(n);
        let mut keys = Vec::new();
        if pending_from.is_some() {
            let mut stmt = tx.prepare_cached(SQLITE_PENDING_BEFORE)?;
            let mut rows = stmt.query([first_idx]).map_err(sqlite_err)?;
            while let Some(r) = rows.next().map_err(sqlite_err)? {
                let (idx, time): (i64, i64) = (r.get(0)?, r.get(1)?);
                keys.clear();
                let blob = sqlite_blob(r, 2, "audit pending index keys")?;
                decode_keys(blob, &mut keys)?;
                all.extend(keys.iter().map(|k| (sort_key(k), idx, time)));
            }
        }
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        for e in &batch.entries {
            let idx = to_i64(e.index)?;
            all.extend(e.keys.iter().map(|k| (sort_key(k), idx, e.time_ms)));
        }
        for (_, _, t) in &all {
            min_time = min_time.min(*t);
            max_time = max_time.max(*t);
        }
        let run = pending_from.map_or(first_idx, |p| p.min(first_idx));
        let mut insert = tx.prepare_cached(SQLITE_POSTING_INSERT)?;
        for p in postings_of(all) {
            insert
                .execute(params![run, p.key, p.first, p.min_time, p.max_time, p.rest])
                .map_err(sqlite_err)?;
        }
        tx.prepare_cached(SQLITE_RUN_INSERT)?
            .execute(params![run, to_i64(last.index)? + 1, min_time, max_time])
            .map_err(sqlite_err)?;
        if pending_from.is_some() {
            tx.prepare_cached(SQLITE_PENDING_CLEAR)?
                .execute([])
                .map_err(sqlite_err)?;
        }
    } else {
        let mut insert = tx.prepare_cached(SQLITE_PENDING_INSERT)?;
        for e in &batch.entries {
            insert
                .execute(params![to_i64(e.index)?, e.time_ms, encode_keys(&e.keys)])
                .map_err(sqlite_err)?;
        }
    }
    Ok(())
}

/// Intersects two sorted, deduplicated index lists.
fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The indexes of the entries carrying every key of `l` (SQLite): from the
/// runs and the pending entries, read in one snapshot so that no entry is
/// missed while a commit moves pending entries into a run.
fn sqlite_candidates(c: &Connection, l: &AuditLookup) -> Result<Vec<u64>> {
    let (from, to, after, _) = bounds(l)?;
    let first = after.saturating_add(1);
    // A snapshot's connection is in its read transaction already.
    let tx = if c.is_autocommit() {
        Some(c.unchecked_transaction().map_err(sqlite_err)?)
    } else {
        None
    };
    let mut set: Option<Vec<u64>> = None;
    for key in &l.keys {
        let mut idxs = Vec::new();
        let mut stmt = c.prepare_cached(SQLITE_RUN_POSTINGS)?;
        let mut rows = stmt
            .query(params![key.to_bytes(), first, from, to])
            .map_err(sqlite_err)?;
        while let Some(r) = rows.next().map_err(sqlite_err)? {
            let rest = sqlite_blob(r, 1, "audit posting list")?;
            decode_posting(r.get(0)?, rest, &mut idxs)?;
        }
        idxs.sort_unstable();
        idxs.dedup();
        set = Some(match set {
            None => idxs,
            Some(prev) => intersect(&prev, &idxs),
        });
    }
    let mut out = set.unwrap_or_default();
    {
        let mut stmt = c.prepare_cached(SQLITE_PENDING_RANGE)?;
        let mut rows = stmt
            .query(params![first.max(0), from, to])
            .map_err(sqlite_err)?;
        let mut keys = Vec::new();
        while let Some(r) = rows.next().map_err(sqlite_err)? {
            keys.clear();
            let blob = sqlite_blob(r, 1, "audit pending index keys")?;
            decode_keys(blob, &mut keys)?;
            if l.keys.iter().all(|w| keys.contains(w)) {
                out.push(to_u64(r.get(0)?, "entry index")?);
            }
        }
    }
    if let Some(tx) = tx {
        tx.finish().map_err(sqlite_err)?;
    }
    out.sort_unstable();
    out.dedup();
    out.retain(|i| i64::try_from(*i).is_ok_and(|i| i > after));
    Ok(out)
}

fn sqlite_migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::NotAVault(path.display().to_string()),
            _ => sqlite_err(e),
        })?;
    let has_meta: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_meta'",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite_err)?;
    let mut version = if has_meta > 0 {
        let v: Option<String> = tx
            .query_row(
                "SELECT value FROM audit_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite_err)?;
        v.and_then(|v| v.parse::<u32>().ok()).ok_or_else(|| {
            Error::NotAVault(format!("{} (no audit schema version)", path.display()))
        })?
    } else {
        0
    };
    if version > AUDIT_SCHEMA_VERSION {
        return Err(Error::TooNew {
            found: version,
            supported: AUDIT_SCHEMA_VERSION,
        });
    }
    while version < AUDIT_SCHEMA_VERSION {
        version += 1;
        for stmt in migration(Backend::Sqlite, version) {
            tx.execute(stmt, []).map_err(sqlite_err)?;
        }
        tx.execute(
            "INSERT INTO audit_meta (key, value) VALUES ('schema_version', ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![version.to_string()],
        )
        .map_err(sqlite_err)?;
    }
    tx.commit().map_err(sqlite_err)
}

/// An entry's bytes whatever SQLite type they were stored as (a tampered
/// row may hold text or a number): verification must see and report it,
/// not fail to read it.
/// Column `i` of `row`, which must be a blob (what `what` holds).
fn sqlite_blob<'r>(row: &'r rusqlite::Row<'_>, i: usize, what: &str) -> Result<&'r [u8]> {
    match row.get_ref(i)? {
        rusqlite::types::ValueRef::Blob(b) => Ok(b),
        _ => Err(Error::Corrupt(what.into())),
    }
}

fn sqlite_bytes(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(i)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
        ValueRef::Integer(n) => n.to_be_bytes().to_vec(),
        ValueRef::Real(f) => f.to_be_bytes().to_vec(),
        ValueRef::Null => Vec::new(),
    })
}

fn sqlite_entries(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    stmt.query_map(params, |r| Ok((r.get(0)?, sqlite_bytes(r, 1)?)))?
        .collect()
}

fn raw_entries(rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<RawEntry>> {
    rows.into_iter()
        .map(|(i, e)| Ok((to_u64(i, "entry index")?, e)))
        .collect()
}

fn raw_checkpoint(size: i64, time_ms: i64, root: Vec<u8>, note: String) -> Result<AuditCheckpoint> {
    Ok(AuditCheckpoint {
        size: to_u64(size, "checkpoint size")?,
        time_ms,
        root: to_hash(root, "checkpoint root")?,
        note,
    })
}

impl AuditStore for SqliteAuditStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn schema_version(&self) -> Result<u32> {
        let v: Option<String> = self.read(|c| {
            c.prepare_cached(&self.sql.meta_get)?
                .query_row(params!["schema_version"], |r| r.get(0))
                .optional()
        })?;
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::NotAVault(self.path.display().to_string()))
    }

    fn size(&self) -> Result<u64> {
        let max: Option<i64> = self.read(|c| {
            c.prepare_cached(&self.sql.max_idx)?
                .query_row([], |r| r.get(0))
        })?;
        match max {
            Some(m) => Ok(to_u64(m, "entry index")? + 1),
            None => Ok(0),
        }
    }

    fn append(&self, batch: &AuditBatch) -> Result<Appended> {
        check_contiguous(batch)?;
        let mut conn = self.writer()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err)?;
        let size = self.size_in(&tx)?;
        if let Some(first) = batch.entries.first()
            && first.index != size
        {
            return Ok(Appended::Conflict { size });
        }
        self.insert(&tx, batch)?;
        tx.commit().map_err(sqlite_err)?;
        Ok(Appended::Committed)
    }

    fn append_with(&self, build: &mut dyn FnMut(u64) -> Option<AuditBatch>) -> Result<bool> {
        let mut conn = self.writer()?;
        // IMMEDIATE takes the database's write lock now: other processes'
        // appenders wait (busy timeout) until this commits.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err)?;
        let size = self.size_in(&tx)?;
        let Some(batch) = build(size) else {
            return Ok(false);
        };
        check_contiguous(&batch)?;
        if let Some(first) = batch.entries.first()
            && first.index != size
        {
            return Err(Error::Corrupt(format!(
                "audit batch starts at {} but the log holds {size}",
                first.index
            )));
        }
        self.insert(&tx, &batch)?;
        tx.commit().map_err(sqlite_err)?;
        Ok(true)
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<RawEntry>> {
        let (from, to) = (to_i64(from)?, to_i64(to.min(i64::MAX as u64))?);
        let rows = self.read(|c| {
            sqlite_entries(
                &mut c.prepare_cached(&self.sql.entries_range)?,
                params![from, to],
            )
        })?;
        raw_entries(rows)
    }

    fn entries_at(&self, indexes: &[u64]) -> Result<Vec<RawEntry>> {
        let mut sorted: Vec<i64> = indexes.iter().map(|&i| to_i64(i)).collect::<Result<_>>()?;
        sorted.sort_unstable();
        sorted.dedup();
        let rows = self.read(|c| {
            let mut stmt = c.prepare_cached(&self.sql.entry_at)?;
            let mut out = Vec::with_capacity(sorted.len());
            for i in &sorted {
                if let Some(row) = stmt
                    .query_row(params![i], |r| Ok((r.get(0)?, sqlite_bytes(r, 1)?)))
                    .optional()?
                {
                    out.push(row);
                }
            }
            Ok(out)
        })?;
        raw_entries(rows)
    }

    fn lookup(&self, lookup: &AuditLookup) -> Result<Vec<RawEntry>> {
        if lookup.keys.is_empty() {
            let (from, to, after, limit) = bounds(lookup)?;
            let rows = self.read(|c| {
                sqlite_entries(
                    &mut c.prepare_cached(&self.sql.time_range)?,
                    params![from, to, after, limit],
                )
            })?;
            return raw_entries(rows);
        }
        let candidates = self.read_with(|c| sqlite_candidates(c, lookup))?;
        let fetch = |idxs: &[u64]| -> Result<Vec<(u64, i64, Vec<u8>)>> {
            let rows: Vec<(i64, i64, Vec<u8>)> = self.read(|c| {
                let mut stmt = c.prepare_cached(&self.sql.entry_time_at)?;
                let mut out = Vec::with_capacity(idxs.len());
                for i in idxs {
                    let i = i64::try_from(*i).unwrap_or(i64::MAX);
                    if let Some(row) = stmt
                        .query_row(params![i], |r| {
                            Ok((r.get(0)?, r.get(1)?, sqlite_bytes(r, 2)?))
                        })
                        .optional()?
                    {
                        out.push(row);
                    }
                }
                Ok(out)
            })?;
            rows.into_iter()
                .map(|(i, t, e)| Ok((to_u64(i, "entry index")?, t, e)))
                .collect()
        };
        fetch_in_range(lookup, &candidates, &fetch)
    }

    fn nodes(&self, level: u8, from: u64, to: u64) -> Result<Vec<(u64, [u8; 32])>> {
        let (from, to) = (to_i64(from)?, to_i64(to.min(i64::MAX as u64))?);
        let rows: Vec<(i64, Vec<u8>)> = self.read(|c| {
            c.prepare_cached(&self.sql.nodes_range)?
                .query_map(params![i64::from(level), from, to], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
        })?;
        rows.into_iter()
            .map(|(i, h)| Ok((to_u64(i, "node index")?, to_hash(h, "node hash")?)))
            .collect()
    }

    fn node_levels(&self) -> Result<Vec<u8>> {
        let rows: Vec<i64> = self.read(|c| {
            c.prepare_cached(&self.sql.node_levels)?
                .query_map([], |r| r.get(0))?
                .collect()
        })?;
        rows.into_iter()
            .map(|l| u8::try_from(l).map_err(|_| Error::Corrupt(format!("audit node level {l}"))))
            .collect()
    }

    fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>> {
        let rows: Vec<(i64, i64, Vec<u8>, String)> = self.read(|c| {
            c.prepare_cached(&self.sql.checkpoints)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(s, t, r, n)| raw_checkpoint(s, t, r, n))
            .collect()
    }

    fn latest_checkpoint(&self) -> Result<Option<AuditCheckpoint>> {
        let row: Option<(i64, i64, Vec<u8>, String)> = self.read(|c| {
            c.prepare_cached(&self.sql.latest_checkpoint)?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })?;
        row.map(|(s, t, r, n)| raw_checkpoint(s, t, r, n))
            .transpose()
    }

    fn deks(&self) -> Result<Vec<u32>> {
        let rows: Vec<i64> = self.read(|c| {
            c.prepare_cached(&self.sql.deks)?
                .query_map([], |r| r.get(0))?
                .collect()
        })?;
        rows.into_iter()
            .map(|d| u32::try_from(d).map_err(|_| Error::Corrupt(format!("audit data key {d}"))))
            .collect()
    }

    fn snapshot(&self) -> Result<Box<dyn AuditStore>> {
        let conn = Self::connect(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        // A deferred transaction's snapshot begins at its first read; WAL
        // keeps it while writers go on.
        conn.execute_batch("BEGIN DEFERRED").map_err(sqlite_err)?;
        conn.query_row("SELECT COUNT(*) FROM audit_meta", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(sqlite_err)?;
        Ok(Box::new(Self {
            path: self.path.clone(),
            writer: None,
            readers: Pool::new(0),
            pinned: Some(Mutex::new(conn)),
            positions: Mutex::new(None),
            sql: AuditSql::new(|s| s.to_string()),
        }))
    }

    fn backup_to(&self, path: &Path) -> Result<(u64, Option<AuditCheckpoint>)> {
        let from = Self::connect(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        crate::sqlite_backup(&from, path)?;
        drop(from);
        // The copy, read through a read-only connection of its own (no
        // writer, no checkpointer, nothing written beside it).
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite_err)?;
        let copy = Self {
            path: path.to_path_buf(),
            writer: None,
            readers: Pool::new(0),
            pinned: Some(Mutex::new(conn)),
            positions: Mutex::new(None),
            sql: AuditSql::new(|s| s.to_string()),
        };
        Ok((copy.size()?, copy.latest_checkpoint()?))
    }

    fn consumer_position(&self, name: &str) -> Result<Option<u64>> {
        check_consumer_name(name)?;
        let v: Option<i64> = self.read(|c| {
            c.prepare_cached(&self.sql.consumer_get)?
                .query_row(params![name], |r| r.get(0))
                .optional()
        })?;
        v.map(|v| to_u64(v, "consumer position")).transpose()
    }

    fn advance_consumer(&self, name: &str, next_index: u64) -> Result<u64> {
        check_consumer_name(name)?;
        let next = to_i64(next_index)?;
        let v: i64 = self.write_position(|c| {
            c.prepare_cached(&self.sql.consumer_advance)?
                .query_row(params![name, next], |r| r.get(0))
        })?;
        to_u64(v, "consumer position")
    }

    fn set_consumer(&self, name: &str, next_index: Option<u64>) -> Result<()> {
        check_consumer_name(name)?;
        match next_index {
            Some(n) => {
                let n = to_i64(n)?;
                self.write_position(|c| {
                    c.prepare_cached(&self.sql.consumer_set)?
                        .execute(params![name, n])
                })?;
            }
            None => {
                self.write_position(|c| {
                    c.prepare_cached(&self.sql.consumer_delete)?
                        .execute(params![name])
                })?;
            }
        }
        Ok(())
    }

    fn consumers(&self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = self.read(|c| {
            c.prepare_cached(&self.sql.consumers)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(n, v)| Ok((n, to_u64(v, "consumer position")?)))
            .collect()
    }
}

// ------------------------------------------------------------ PostgreSQL

/// The audit log in tables `audit_*` of the vault's PostgreSQL schema.
pub struct PgAuditStore {
    connector: crate::pgconn::Connector,
    schema: String,
    pool: Pool<PgConn>,
    /// A snapshot's one connection, inside its read-only REPEATABLE READ
    /// transaction: every query goes to it.
    pinned: Option<Mutex<PgConn>>,
    sql: AuditSql,
}

impl std::fmt::Debug for PgAuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("PgAuditStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

fn pg_err(e: postgres::Error) -> Error {
    if e.code() == Some(&SqlState::DISK_FULL) {
        Error::DiskFull
    } else {
        Error::Postgres(e)
    }
}

fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Bulk statements (arrays + unnest): one round trip per table per batch.
const PG_BULK_ENTRIES: &str = "INSERT INTO audit_entries (idx, time_ms, entry) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::bytea[])";
// Index rows are not evidence (lookups re-check every entry): a stale row
// left by a removed entry is replaced rather than blocking the log.
const PG_BULK_KEYS: &str = "INSERT INTO audit_postings (key, first_idx, min_time, max_time, idxs) \
     SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[], $4::int8[], $5::bytea[]) \
     ON CONFLICT (key, first_idx) DO UPDATE SET min_time = excluded.min_time, \
     max_time = excluded.max_time, idxs = excluded.idxs";
const PG_ENTRIES_TIME_AT: &str =
    "SELECT idx, time_ms, entry FROM audit_entries WHERE idx = ANY($1::int8[]) ORDER BY idx";
const PG_BULK_NODES: &str = "INSERT INTO audit_nodes (level, idx, hash) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::bytea[])";
const PG_BULK_DEKS: &str = "INSERT INTO audit_deks (dek, first_idx) \
     SELECT * FROM unnest($1::int8[], $2::int8[]) ON CONFLICT DO NOTHING";
const PG_ENTRIES_AT: &str =
    "SELECT idx, entry FROM audit_entries WHERE idx = ANY($1::int8[]) ORDER BY idx";

impl PgAuditStore {
    /// Opens the audit tables in `schema` (the vault's), creating the
    /// schema and the tables if they are missing.
    pub fn open(url: &str, schema: &str) -> Result<Self> {
        if schema.is_empty() || schema.len() > 63 {
            return Err(Error::NotAVault(format!("schema name {schema:?}")));
        }
        let store = Self {
            connector: crate::pgconn::Connector::new(url)?,
            schema: schema.to_string(),
            pool: Pool::new(pool::PG_IDLE),
            pinned: None,
            sql: AuditSql::new(crate::sql::numbered),
        };
        let mut conn = store.connect(true)?;
        pg_migrate(&mut conn.client, schema)?;
        store.release(conn);
        Ok(store)
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn connect(&self, create_schema: bool) -> Result<PgConn> {
        let mut client = self.connector.connect().map_err(pg_err)?;
        let schema = pg_ident(&self.schema);
        if create_schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .map_err(pg_err)?;
        }
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .map_err(pg_err)?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
        })
    }

    fn release(&self, conn: PgConn) {
        if conn.client.is_closed() {
            return;
        }
        self.pool.put(conn);
    }

    fn with<T>(&self, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        if let Some(pinned) = &self.pinned {
            return f(&mut pinned.lock().unwrap_or_else(|e| e.into_inner()));
        }
        let mut conn = match self.pool.take() {
            Some(c) if !c.client.is_closed() => c,
            _ => self.connect(false)?,
        };
        let out = f(&mut conn);
        self.release(conn);
        out
    }

    /// One append transaction: take the appenders' lock, read the size,
    /// let `build` make the batch, write it. Returns (committed, the batch's
    /// first index, the size read).
    fn pg_append(
        &self,
        build: &mut dyn FnMut(u64) -> Option<AuditBatch>,
    ) -> Result<(bool, Option<u64>, u64)> {
        if self.pinned.is_some() {
            return Err(Error::ReadOnly);
        }
        let lock_key = format!("{}/audit-append", self.schema);
        self.with(|c| {
            let PgConn { client, statements } = c;
            let mut tx = client.transaction().map_err(pg_err)?;
            let mut stmt = |tx: &mut postgres::Transaction<'_>, sql: &str| -> Result<Statement> {
                if let Some(s) = statements.get(sql) {
                    return Ok(s.clone());
                }
                let s = tx.prepare(sql).map_err(pg_err)?;
                statements.insert(sql.to_string(), s.clone());
                Ok(s)
            };
            // Appenders in every process queue here until this commits.
            let s = stmt(&mut tx, "SELECT pg_advisory_xact_lock(hashtext($1))")?;
            tx.execute(&s, &[&lock_key]).map_err(pg_err)?;
            let s = stmt(&mut tx, &self.sql.max_idx)?;
            let max: Option<i64> = tx.query_one(&s, &[]).map_err(pg_err)?.get(0);
            let size = match max {
                Some(m) => to_u64(m, "entry index")? + 1,
                None => 0,
            };
            let Some(batch) = build(size) else {
                return Ok((false, None, size));
            };
            check_contiguous(&batch)?;
            let first = batch.entries.first().map(|e| e.index);
            if first.is_some_and(|f| f != size) {
                return Ok((false, first, size));
            }
            if !batch.entries.is_empty() {
                let n = batch.entries.len();
                let mut idx = Vec::with_capacity(n);
                let mut times = Vec::with_capacity(n);
                let mut bytes: Vec<&[u8]> = Vec::with_capacity(n);
                let mut deks: Vec<i64> = Vec::new();
                let mut dek_first: Vec<i64> = Vec::new();
                let posts = postings(&batch)?;
                let keys: Vec<&[u8]> = posts.iter().map(|p| &p.key[..]).collect();
                let firsts: Vec<i64> = posts.iter().map(|p| p.first).collect();
                let mins: Vec<i64> = posts.iter().map(|p| p.min_time).collect();
                let maxs: Vec<i64> = posts.iter().map(|p| p.max_time).collect();
                let rests: Vec<&[u8]> = posts.iter().map(|p| &p.rest[..]).collect();
                for e in &batch.entries {
                    let i = to_i64(e.index)?;
                    idx.push(i);
                    times.push(e.time_ms);
                    bytes.push(&e.bytes);
                    if !deks.contains(&i64::from(e.dek)) {
                        deks.push(i64::from(e.dek));
                        dek_first.push(i);
                    }
                }
                let s = stmt(&mut tx, PG_BULK_ENTRIES)?;
                tx.execute(&s, &[&idx, &times, &bytes]).map_err(pg_err)?;
                if !keys.is_empty() {
                    let s = stmt(&mut tx, PG_BULK_KEYS)?;
                    tx.execute(&s, &[&keys, &firsts, &mins, &maxs, &rests])
                        .map_err(pg_err)?;
                }
                let s = stmt(&mut tx, PG_BULK_DEKS)?;
                tx.execute(&s, &[&deks, &dek_first]).map_err(pg_err)?;
            }
            if !batch.nodes.is_empty() {
                let levels: Vec<i64> = batch.nodes.iter().map(|n| i64::from(n.level)).collect();
                let idx: Vec<i64> = batch
                    .nodes
                    .iter()
                    .map(|n| to_i64(n.index))
                    .collect::<Result<_>>()?;
                let hashes: Vec<&[u8]> = batch.nodes.iter().map(|n| &n.hash[..]).collect();
                let s = stmt(&mut tx, PG_BULK_NODES)?;
                tx.execute(&s, &[&levels, &idx, &hashes]).map_err(pg_err)?;
            }
            if let Some(cp) = &batch.checkpoint {
                let s = stmt(&mut tx, &self.sql.checkpoint_insert)?;
                tx.execute(
                    &s,
                    &[&to_i64(cp.size)?, &cp.time_ms, &&cp.root[..], &cp.note],
                )
                .map_err(pg_err)?;
            }
            tx.commit().map_err(pg_err)?;
            Ok((true, first, size))
        })
    }

    /// A consumer position write: its own transaction with
    /// `synchronous_commit` off (a crash of the server may lose the newest
    /// positions, so entries come again; the log's commits are unaffected).
    fn write_position(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        self.with(|c| {
            let s = c.statement(sql)?;
            let mut tx = c.client.transaction().map_err(pg_err)?;
            tx.batch_execute("SET LOCAL synchronous_commit TO OFF")
                .map_err(pg_err)?;
            let rows = tx.query(&s, params).map_err(pg_err)?;
            tx.commit().map_err(pg_err)?;
            Ok(rows)
        })
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        self.with(|c| {
            let s = c.statement(sql)?;
            c.client.query(&s, params).map_err(pg_err)
        })
    }
}

impl PgConn {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(pg_err)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

fn pg_migrate(client: &mut Client, schema: &str) -> Result<()> {
    let mut tx = client.transaction().map_err(pg_err)?;
    // One migrator per schema at a time (a key apart from the vault's own).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("{schema}/audit")],
    )
    .map_err(pg_err)?;
    let has_meta: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'audit_meta'",
            &[&schema],
        )
        .map_err(pg_err)?
        .get(0);
    let mut version = if has_meta > 0 {
        let row = tx
            .query_opt(
                "SELECT value FROM audit_meta WHERE key = 'schema_version'",
                &[],
            )
            .map_err(pg_err)?;
        row.and_then(|r| r.get::<_, String>(0).parse::<u32>().ok())
            .ok_or_else(|| Error::NotAVault(format!("PostgreSQL schema {schema} (audit)")))?
    } else {
        0
    };
    if version > AUDIT_SCHEMA_VERSION {
        return Err(Error::TooNew {
            found: version,
            supported: AUDIT_SCHEMA_VERSION,
        });
    }
    while version < AUDIT_SCHEMA_VERSION {
        version += 1;
        for stmt in migration(Backend::Postgres, version) {
            tx.batch_execute(&pg_ddl(stmt)).map_err(pg_err)?;
        }
        tx.execute(
            "INSERT INTO audit_meta (key, value) VALUES ('schema_version', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&version.to_string()],
        )
        .map_err(pg_err)?;
    }
    tx.commit().map_err(pg_err)
}

fn pg_entries(rows: Vec<postgres::Row>) -> Result<Vec<RawEntry>> {
    rows.iter()
        .map(|r| Ok((to_u64(r.get(0), "entry index")?, r.get(1))))
        .collect()
}

fn pg_checkpoint(r: &postgres::Row) -> Result<AuditCheckpoint> {
    raw_checkpoint(r.get(0), r.get(1), r.get(2), r.get(3))
}

impl AuditStore for PgAuditStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn schema_version(&self) -> Result<u32> {
        self.query(&self.sql.meta_get, &[&"schema_version"])?
            .first()
            .and_then(|r| r.get::<_, String>(0).parse().ok())
            .ok_or_else(|| Error::NotAVault(format!("PostgreSQL schema {} (audit)", self.schema)))
    }

    fn size(&self) -> Result<u64> {
        let rows = self.query(&self.sql.max_idx, &[])?;
        match rows.first().and_then(|r| r.get::<_, Option<i64>>(0)) {
            Some(m) => Ok(to_u64(m, "entry index")? + 1),
            None => Ok(0),
        }
    }

    fn append(&self, batch: &AuditBatch) -> Result<Appended> {
        check_contiguous(batch)?;
        let mut batch = Some(batch);
        let mut conflict = None;
        self.pg_append(&mut |size| {
            let b = batch.take()?;
            match b.entries.first() {
                Some(first) if first.index != size => {
                    conflict = Some(size);
                    None
                }
                _ => Some(b.clone()),
            }
        })?;
        Ok(match conflict {
            Some(size) => Appended::Conflict { size },
            None => Appended::Committed,
        })
    }

    fn append_with(&self, build: &mut dyn FnMut(u64) -> Option<AuditBatch>) -> Result<bool> {
        self.pg_append(&mut |size| {
            let b = build(size)?;
            Some(b)
        })
        .and_then(|(committed, batch_start, size)| match batch_start {
            Some(first) if first != size => Err(Error::Corrupt(format!(
                "audit batch starts at {first} but the log holds {size}"
            ))),
            _ => Ok(committed),
        })
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<RawEntry>> {
        let (from, to) = (to_i64(from)?, to_i64(to.min(i64::MAX as u64))?);
        pg_entries(self.query(&self.sql.entries_range, &[&from, &to])?)
    }

    fn entries_at(&self, indexes: &[u64]) -> Result<Vec<RawEntry>> {
        let idx: Vec<i64> = indexes.iter().map(|&i| to_i64(i)).collect::<Result<_>>()?;
        pg_entries(self.query(PG_ENTRIES_AT, &[&idx])?)
    }

    fn lookup(&self, lookup: &AuditLookup) -> Result<Vec<RawEntry>> {
        if lookup.keys.is_empty() {
            let (from, to, after, limit) = bounds(lookup)?;
            return pg_entries(self.query(&self.sql.time_range, &[&from, &to, &after, &limit])?);
        }
        let rows = |key: &[u8], from: i64, to: i64| -> Result<Vec<(i64, Vec<u8>)>> {
            Ok(self
                .query(&self.sql.postings, &[&key, &from, &to])?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        };
        let fetch = |idxs: &[u64]| -> Result<Vec<(u64, i64, Vec<u8>)>> {
            let idx: Vec<i64> = idxs.iter().map(|&i| to_i64(i)).collect::<Result<_>>()?;
            self.query(PG_ENTRIES_TIME_AT, &[&idx])?
                .iter()
                .map(|r| Ok((to_u64(r.get(0), "entry index")?, r.get(1), r.get(2))))
                .collect()
        };
        lookup_postings(lookup, &rows, &fetch)
    }

    fn nodes(&self, level: u8, from: u64, to: u64) -> Result<Vec<(u64, [u8; 32])>> {
        let (from, to) = (to_i64(from)?, to_i64(to.min(i64::MAX as u64))?);
        self.query(&self.sql.nodes_range, &[&i64::from(level), &from, &to])?
            .iter()
            .map(|r| {
                Ok((
                    to_u64(r.get(0), "node index")?,
                    to_hash(r.get(1), "node hash")?,
                ))
            })
            .collect()
    }

    fn node_levels(&self) -> Result<Vec<u8>> {
        self.query(&self.sql.node_levels, &[])?
            .iter()
            .map(|r| {
                let l: i64 = r.get(0);
                u8::try_from(l).map_err(|_| Error::Corrupt(format!("audit node level {l}")))
            })
            .collect()
    }

    fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>> {
        self.query(&self.sql.checkpoints, &[])?
            .iter()
            .map(pg_checkpoint)
            .collect()
    }

    fn latest_checkpoint(&self) -> Result<Option<AuditCheckpoint>> {
        self.query(&self.sql.latest_checkpoint, &[])?
            .first()
            .map(pg_checkpoint)
            .transpose()
    }

    fn deks(&self) -> Result<Vec<u32>> {
        self.query(&self.sql.deks, &[])?
            .iter()
            .map(|r| {
                let d: i64 = r.get(0);
                u32::try_from(d).map_err(|_| Error::Corrupt(format!("audit data key {d}")))
            })
            .collect()
    }

    fn backup_to(&self, _path: &Path) -> Result<(u64, Option<AuditCheckpoint>)> {
        Err(Error::Invalid(
            "backups of a PostgreSQL vault are not supported yet (rxvault backs up SQLite vaults)"
                .into(),
        ))
    }

    fn snapshot(&self) -> Result<Box<dyn AuditStore>> {
        let mut conn = self.connect(false)?;
        // REPEATABLE READ: every statement of the transaction sees the
        // snapshot its first query (`SELECT 1`) took.
        conn.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")
            .map_err(pg_err)?;
        Ok(Box::new(Self {
            connector: self.connector.clone(),
            schema: self.schema.clone(),
            pool: Pool::new(0),
            pinned: Some(Mutex::new(conn)),
            sql: AuditSql::new(crate::sql::numbered),
        }))
    }

    fn consumer_position(&self, name: &str) -> Result<Option<u64>> {
        check_consumer_name(name)?;
        self.query(&self.sql.consumer_get, &[&name])?
            .first()
            .map(|r| to_u64(r.get(0), "consumer position"))
            .transpose()
    }

    fn advance_consumer(&self, name: &str, next_index: u64) -> Result<u64> {
        check_consumer_name(name)?;
        let next = to_i64(next_index)?;
        let rows = self.write_position(&self.sql.consumer_advance, &[&name, &next])?;
        let row = rows
            .first()
            .ok_or_else(|| Error::Corrupt("audit consumer position not returned".into()))?;
        to_u64(row.get(0), "consumer position")
    }

    fn set_consumer(&self, name: &str, next_index: Option<u64>) -> Result<()> {
        check_consumer_name(name)?;
        match next_index {
            Some(n) => self.write_position(&self.sql.consumer_set, &[&name, &to_i64(n)?])?,
            None => self.write_position(&self.sql.consumer_delete, &[&name])?,
        };
        Ok(())
    }

    fn consumers(&self) -> Result<Vec<(String, u64)>> {
        self.query(&self.sql.consumers, &[])?
            .iter()
            .map(|r| Ok((r.get(0), to_u64(r.get(1), "consumer position")?)))
            .collect()
    }
}
