//! Reading the log: entries, roots and proofs from the stored tree, and
//! forensic queries answered from the indexes.
//!
//! # Queries
//! A [`Query`] names any of user, session, host, address, patient and
//! action, and a time range. The identifiers become the same keyed hashes
//! the log stored, and the store answers with **one indexed query** (an
//! intersection of `(key, time)` index ranges joined to the entries), never
//! a scan. Each hit's header is then checked against the query (the index
//! is a convenience, not a witness) and, with the keyring, its body is
//! opened and checked against the header.
//!
//! "Which patients did session S see between T1 and T2" is
//! [`AuditReader::patients_seen`] with `session` and the range set: the
//! patients come from the hits' headers, so it needs no decryption.
//!
//! "Which patients and which fields were in export X" (a file found where
//! it should not be) is [`AuditReader::export_scope`]: one lookup of the
//! export id's keyed hash, which finds the export's started entry and its
//! end, if it had one.

use crate::entry::{
    self, Action, ActionKind, ExportFormat, ExportProtection, KindCategories, LoggedEntry,
    StoredEntry,
};
use crate::merkle::{self, Hash, Subtrees};
use crate::{Error, Result};
use rxvault_crypto::Secrets;
use rxvault_model::Rid;
use rxvault_store::audit::{AuditKey, AuditLookup, AuditStore};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Complete-subtree hashes read from the store (stored nodes at levels
/// 4, 8, ...; everything below recomputed from at most 8 stored hashes or
/// 8 entries).
pub(crate) struct StoreSubtrees<'a> {
    pub store: &'a dyn AuditStore,
    pub size: u64,
}

fn missing(index: u64, what: String) -> Error {
    Error::Malformed {
        index,
        reason: format!("{what} is missing from the store"),
    }
}

impl Subtrees for StoreSubtrees<'_> {
    fn subtree(&mut self, level: u8, index: u64) -> Result<Hash> {
        let n = 1u64
            .checked_shl(u32::from(level))
            .ok_or_else(|| Error::Invalid(format!("tree level {level}")))?;
        let start = index
            .checked_mul(n)
            .filter(|s| s.checked_add(n).is_some_and(|end| end <= self.size))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no complete subtree at level {level}, index {index} in a tree of {}",
                    self.size
                ))
            })?;
        if merkle::is_stored_level(level) {
            let rows = self.store.nodes(level, index, index + 1)?;
            return match rows.first() {
                Some((i, h)) if *i == index => Ok(*h),
                _ => Err(missing(start, format!("tree node {level}/{index}"))),
            };
        }
        let base = level - level % merkle::STORED_LEVEL_STRIDE;
        let k = level - base;
        let want = 1usize << k;
        let hashes: Vec<Hash> = if base == 0 {
            let rows = self.store.entries(start, start + n)?;
            if rows.len() != want
                || rows
                    .iter()
                    .enumerate()
                    .any(|(j, (i, _))| *i != start + j as u64)
            {
                return Err(missing(start, "an entry".into()));
            }
            rows.iter().map(|(_, b)| merkle::leaf_hash(b)).collect()
        } else {
            let from = index << k;
            let rows = self.store.nodes(base, from, from + want as u64)?;
            if rows.len() != want
                || rows
                    .iter()
                    .enumerate()
                    .any(|(j, (i, _))| *i != from + j as u64)
            {
                return Err(missing(start, format!("a tree node at level {base}")));
            }
            rows.into_iter().map(|(_, h)| h).collect()
        };
        Ok(merkle::fold(hashes))
    }
}

/// A forensic query. Every field set must match; identifiers are compared
/// through their keyed hashes (exact match; hosts case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The actor id (a user, service account or local user).
    pub user: Option<String>,
    /// The session id.
    pub session: Option<String>,
    /// The host or agent id.
    pub host: Option<String>,
    /// The source address.
    pub ip: Option<IpAddr>,
    /// A patient's record key.
    pub patient: Option<Rid>,
    /// The kind of action.
    pub action: Option<ActionKind>,
    /// An export id (the entries that started, finished or failed it).
    pub export: Option<String>,
    /// From this time (Unix ms, inclusive).
    pub from_ms: Option<i64>,
    /// Until this time (Unix ms, exclusive).
    pub to_ms: Option<i64>,
    /// Only entries after this index (paging).
    pub after: Option<u64>,
    /// At most this many entries (0: all).
    pub limit: usize,
}

impl Query {
    /// Whether the query names an identifier (and so needs the keyring).
    pub fn needs_keyring(&self) -> bool {
        self.user.is_some()
            || self.session.is_some()
            || self.host.is_some()
            || self.ip.is_some()
            || self.export.is_some()
    }

    fn keys(&self, keyring: Option<&Secrets>) -> Result<Vec<AuditKey>> {
        let mut keys = Vec::new();
        if let Some(p) = self.patient {
            keys.push(AuditKey::Patient(p));
        }
        if self.needs_keyring() {
            let k = keyring.ok_or_else(|| {
                Error::Invalid(
                    "searching by user, session, host, address or export needs the vault's key"
                        .into(),
                )
            })?;
            if let Some(s) = &self.session {
                keys.push(AuditKey::Session(
                    k.keyed_hash(entry::domain::SESSION, s.as_bytes()),
                ));
            }
            if let Some(u) = &self.user {
                keys.push(AuditKey::Actor(
                    k.keyed_hash(entry::domain::USER, u.as_bytes()),
                ));
            }
            if let Some(h) = &self.host {
                keys.push(AuditKey::Host(k.keyed_hash(
                    entry::domain::HOST,
                    entry::normalize_host(h).as_bytes(),
                )));
            }
            if let Some(ip) = self.ip {
                keys.push(AuditKey::Ip(k.keyed_hash(
                    entry::domain::IP,
                    entry::normalize_ip(ip).as_bytes(),
                )));
            }
            if let Some(x) = &self.export {
                keys.push(AuditKey::Export(
                    k.keyed_hash(entry::domain::EXPORT, x.as_bytes()),
                ));
            }
        }
        if let Some(a) = self.action {
            keys.push(AuditKey::Action(a.code()));
        }
        Ok(keys)
    }
}

/// A patient in the answer to "which patients did ... see".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatientSeen {
    /// The patient's record key.
    pub patient: Rid,
    /// How many matching entries name the patient.
    pub entries: u64,
    /// The first one's time (Unix ms).
    pub first_ms: i64,
    /// The last one's time (Unix ms).
    pub last_ms: i64,
}

/// How an export ended, as far as the log knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    /// Started, and no end recorded: still running, or killed. Assume
    /// everything the started entry names was taken.
    Started,
    /// Written completely.
    Finished,
    /// Failed after it started (what it wrote was removed where possible).
    Failed,
}

impl ExportStatus {
    /// A short name (`started`, `finished`, `failed`).
    pub fn name(self) -> &'static str {
        match self {
            ExportStatus::Started => "started",
            ExportStatus::Finished => "finished",
            ExportStatus::Failed => "failed",
        }
    }
}

/// What an export held, from its audit entries
/// ([`AuditReader::export_scope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportScope {
    /// The export id.
    pub export_id: String,
    /// How it ended.
    pub status: ExportStatus,
    /// Its started entry (who, when, from where, and everything below).
    pub started: LoggedEntry,
    /// Its finished or failed entry, if any.
    pub end: Option<LoggedEntry>,
    /// What it wrote.
    pub format: ExportFormat,
    /// The file or folder it wrote.
    pub destination: String,
    /// Plaintext or encrypted, and to whom.
    pub protection: ExportProtection,
    /// The field categories of each record kind it held.
    pub categories: KindCategories,
    /// The patients it held (record keys): a superset of what a killed
    /// export left behind, equal to what a finished one holds.
    pub patients: Vec<Rid>,
    /// Records (rows) it was to hold.
    pub records: u64,
}

/// Read access to a log: entries, tree, proofs, queries.
#[derive(Debug, Clone)]
pub struct AuditReader {
    store: Arc<dyn AuditStore>,
    keyring: Option<Secrets>,
}

impl AuditReader {
    /// A reader over `store`; with a keyring it can search by identifier
    /// and open entry bodies.
    pub fn new(store: Arc<dyn AuditStore>, keyring: Option<Secrets>) -> Self {
        Self { store, keyring }
    }

    /// The store.
    pub fn store(&self) -> &dyn AuditStore {
        self.store.as_ref()
    }

    /// The keyring, if any.
    pub fn keyring(&self) -> Option<&Secrets> {
        self.keyring.as_ref()
    }

    fn need_keyring(&self) -> Result<&Secrets> {
        self.keyring
            .as_ref()
            .ok_or_else(|| Error::Invalid("opening audit entries needs the vault's key".into()))
    }

    /// How many entries the log holds.
    pub fn size(&self) -> Result<u64> {
        Ok(self.store.size()?)
    }

    /// The stored tree of the first `size` entries, as a source of
    /// complete-subtree hashes.
    pub fn subtrees(&self, size: u64) -> impl Subtrees + '_ {
        self.stored_tree(size)
    }

    pub(crate) fn stored_tree(&self, size: u64) -> StoreSubtrees<'_> {
        StoreSubtrees {
            store: self.store.as_ref(),
            size,
        }
    }

    /// The root hash of the first `size` entries (O(log n) reads).
    pub fn root(&self, size: u64) -> Result<Hash> {
        merkle::root(&mut self.subtrees(size), size)
    }

    /// The leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash> {
        merkle::range_hash(&mut self.subtrees(index + 1), index, 1)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        merkle::inclusion_proof(&mut self.subtrees(size), index, size)
    }

    /// The consistency proof from the tree of `old` entries to `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        merkle::consistency_proof(&mut self.subtrees(new), old, new)
    }

    /// Stored entries `from..to`, decoded (keyless).
    pub fn stored(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>> {
        self.store
            .entries(from, to)?
            .into_iter()
            .map(|(i, b)| decode(i, &b))
            .collect()
    }

    /// Entries `from..to`, opened.
    pub fn entries(&self, from: u64, to: u64) -> Result<Vec<LoggedEntry>> {
        let k = self.need_keyring()?;
        self.stored(from, to)?
            .iter()
            .map(|s| entry::open(k, s))
            .collect()
    }

    /// The entries matching `query`, keyless (headers and sealed bodies).
    pub fn query_stored(&self, query: &Query) -> Result<Vec<StoredEntry>> {
        let keys = query.keys(self.keyring.as_ref())?;
        let lookup = AuditLookup {
            keys: keys.clone(),
            from_ms: query.from_ms,
            to_ms: query.to_ms,
            after: query.after,
            limit: query.limit,
        };
        let mut out = Vec::new();
        let mut stray = 0u64;
        for (i, b) in self.store.lookup(&lookup)? {
            let s = decode(i, &b)?;
            let h = &s.header;
            let in_range = query.from_ms.is_none_or(|f| h.time_ms >= f)
                && query.to_ms.is_none_or(|t| h.time_ms < t);
            if in_range && keys.iter().all(|k| h.has_key(k)) {
                out.push(s);
            } else {
                stray += 1;
            }
        }
        if stray > 0 {
            // The index named entries that do not match: it was altered.
            tracing::warn!(stray, "audit index rows that do not match their entries");
        }
        Ok(out)
    }

    /// The entries matching `query`, opened.
    pub fn query(&self, query: &Query) -> Result<Vec<LoggedEntry>> {
        let k = self.need_keyring()?;
        self.query_stored(query)?
            .iter()
            .map(|s| entry::open(k, s))
            .collect()
    }

    /// Every matching entry, opened, in pages of `page` (for exports of
    /// any size in bounded memory). `f` returning an error stops the scan.
    pub fn scan(
        &self,
        query: &Query,
        page: usize,
        mut f: impl FnMut(LoggedEntry) -> Result<()>,
    ) -> Result<u64> {
        let mut q = query.clone();
        let mut remaining = if query.limit == 0 {
            u64::MAX
        } else {
            query.limit as u64
        };
        let mut n = 0;
        while remaining > 0 {
            q.limit = page
                .max(1)
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let hits = self.query(&q)?;
            let Some(last) = hits.last().map(|e| e.index) else {
                break;
            };
            let got = hits.len();
            for e in hits {
                f(e)?;
                n += 1;
            }
            remaining = remaining.saturating_sub(got as u64);
            q.after = Some(last);
            if got < q.limit {
                break;
            }
        }
        Ok(n)
    }

    /// Which patients the matching entries name, with counts and first
    /// and last times; one indexed query, no decryption.
    pub fn patients_seen(&self, query: &Query) -> Result<Vec<PatientSeen>> {
        let mut seen: BTreeMap<Rid, PatientSeen> = BTreeMap::new();
        for s in self.query_stored(query)? {
            let t = s.header.time_ms;
            for p in &s.header.patients {
                let e = seen.entry(*p).or_insert(PatientSeen {
                    patient: *p,
                    entries: 0,
                    first_ms: t,
                    last_ms: t,
                });
                e.entries += 1;
                e.first_ms = e.first_ms.min(t);
                e.last_ms = e.last_ms.max(t);
            }
        }
        let mut out: Vec<PatientSeen> = seen.into_values().collect();
        out.sort_by_key(|p| (p.first_ms, p.patient));
        Ok(out)
    }

    /// What export `export_id` held: its patients, the field categories of
    /// each record kind, its format and protection, and how it ended. One
    /// indexed lookup (the export id's keyed hash) and the opening of its
    /// two or three entries; `None` if the log has no started entry for it
    /// (exports written before started entries existed are found with
    /// `action: export` queries instead).
    pub fn export_scope(&self, export_id: &str) -> Result<Option<ExportScope>> {
        let hits = self.query(&Query {
            export: Some(export_id.to_string()),
            ..Default::default()
        })?;
        let mut started = None;
        let mut end = None;
        for e in hits {
            if e.entry.action.export_id() != Some(export_id) {
                continue; // a keyed-hash collision: not this export
            }
            match &e.entry.action {
                Action::ExportStarted { .. } if started.is_none() => started = Some(e),
                Action::ExportFinished { .. } | Action::ExportFailed { .. } if end.is_none() => {
                    end = Some(e)
                }
                _ => {}
            }
        }
        let Some(started) = started else {
            return Ok(None);
        };
        let Action::ExportStarted {
            format,
            destination,
            protection,
            categories,
            records,
            ..
        } = started.entry.action.clone()
        else {
            unreachable!("matched above");
        };
        let status = match end.as_ref().map(|e| &e.entry.action) {
            Some(Action::ExportFinished { .. }) => ExportStatus::Finished,
            Some(_) => ExportStatus::Failed,
            None => ExportStatus::Started,
        };
        Ok(Some(ExportScope {
            export_id: export_id.to_string(),
            status,
            patients: started.entry.patients.clone(),
            started,
            end,
            format,
            destination,
            protection,
            categories,
            records,
        }))
    }

    /// Every stored checkpoint, parsed (malformed ones are errors).
    pub fn checkpoints(&self) -> Result<Vec<crate::SignedCheckpoint>> {
        self.store
            .checkpoints()?
            .iter()
            .map(|c| Ok(crate::SignedCheckpoint::parse(&c.note)?))
            .collect()
    }

    /// The latest stored checkpoint, parsed.
    pub fn latest_checkpoint(&self) -> Result<Option<crate::SignedCheckpoint>> {
        self.store
            .latest_checkpoint()?
            .map(|c| Ok(crate::SignedCheckpoint::parse(&c.note)?))
            .transpose()
    }
}

fn decode(index: u64, bytes: &[u8]) -> Result<StoredEntry> {
    let s = StoredEntry::decode(bytes).map_err(|e| Error::Malformed {
        index,
        reason: e.to_string(),
    })?;
    if s.header.index != index {
        return Err(Error::Malformed {
            index,
            reason: format!("stored at {index} but says {}", s.header.index),
        });
    }
    Ok(s)
}
