//! Verification: recompute everything from the raw entries, trust nothing
//! the log says about itself.
//!
//! What is trusted, and why:
//! - **signing keys from outside the log**: the vault keyring's (its seed
//!   is wrapped under the KEK, so whoever holds only the database cannot
//!   swap it), keys the caller names, and the keys of external checkpoint
//!   files (witness copies kept elsewhere, which must be self-signed);
//! - **nothing else.** Stored nodes, stored roots, checkpoint rows, the
//!   index and the entry count are all recomputed or cross-checked.
//!
//! What is checked, in one pass over the entries in index order (a reader
//! thread fetches the next chunk while this one hashes):
//! 1. each row's position, and the index its header claims;
//! 2. with the keyring, each body opens at its position and carries its
//!    header's digest (an edited or moved entry is pinned exactly);
//! 3. every leaf hash, every completed subtree against its stored node;
//! 4. the recomputed root at every checkpoint size, stored and external,
//!    and every checkpoint's signature against the trusted keys;
//! 5. afterwards: stored nodes or checkpoints beyond the last entry
//!    (truncation), external checkpoints beyond it (rollback), and a
//!    consistency proof from each external checkpoint to the current tree,
//!    built from the stored nodes and checked against the recomputed root.
//!
//! Each problem carries the first bad index when one can be named. Without
//! the keyring, an edit is located by the stored nodes (to 16 entries) or
//! by the checkpoints around it; with it, exactly.

use crate::Result;
use crate::checkpoint::SignedCheckpoint;
use crate::entry::{self, BodyCheck, StoredEntry};
use crate::merkle::{self, CompactRange, Hash};
use crate::reader::StoreSubtrees;
use rxvault_crypto::Secrets;
use rxvault_store::audit::{AuditKey, AuditLookup, AuditStore, RawEntry};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

/// What to verify against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The vault's keyring: its signing key is trusted, and entry bodies
    /// are checked against their headers and positions.
    pub keyring: Option<Secrets>,
    /// More trusted Ed25519 public keys.
    pub trusted_keys: Vec<[u8; 32]>,
    /// Checkpoints kept outside the log (witness copies).
    pub external: Vec<SignedCheckpoint>,
    /// The origin every checkpoint must name (`rxvault/audit/<vault id>`).
    pub origin: Option<String>,
    /// Also check that every entry is found through the index under every
    /// key it carries (one point lookup per key: slow on large logs).
    pub check_index: bool,
    /// Entries read per round trip (0: 8,192).
    pub chunk: usize,
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProblemKind {
    /// An entry's content was changed in place.
    Edited,
    /// Entries were removed from the middle.
    Deleted,
    /// Entries were moved.
    Reordered,
    /// Entries were added in the middle.
    Inserted,
    /// Entries were removed from the end (the log's own checkpoints or
    /// nodes go further).
    Truncated,
    /// The log is older than (or diverges from) a checkpoint kept outside.
    RolledBack,
    /// A checkpoint's signature does not verify with any trusted key.
    BadSignature,
    /// A checkpoint is malformed, or its row disagrees with its text, or
    /// it names another origin.
    BadCheckpoint,
    /// A stored tree node is missing or wrong.
    NodeMismatch,
    /// An entry is not found through the index under a key it carries.
    IndexMismatch,
    /// An entry's bytes are not an entry.
    Malformed,
    /// No trusted key: signatures could not be checked.
    NoTrustAnchor,
}

impl ProblemKind {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::Edited => "edited",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Truncated => "truncated",
            ProblemKind::RolledBack => "rolled-back",
            ProblemKind::BadSignature => "bad-signature",
            ProblemKind::BadCheckpoint => "bad-checkpoint",
            ProblemKind::NodeMismatch => "node-mismatch",
            ProblemKind::IndexMismatch => "index-mismatch",
            ProblemKind::Malformed => "malformed",
            ProblemKind::NoTrustAnchor => "no-trust-anchor",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What.
    pub kind: ProblemKind,
    /// The first bad entry index, when one can be named.
    pub index: Option<u64>,
    /// The checkpoint concerned (its tree size), if any.
    pub checkpoint_size: Option<u64>,
    /// Details (indexes, sizes, counts; never identifiers).
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(i) = self.index {
            write!(f, " at index {i}")?;
        }
        if let Some(s) = self.checkpoint_size {
            write!(f, " (checkpoint of size {s})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries read.
    pub entries: u64,
    /// The recomputed root over them.
    pub root: Hash,
    /// Stored checkpoints checked.
    pub stored_checkpoints: usize,
    /// External checkpoints checked.
    pub external_checkpoints: usize,
    /// The largest size a trusted, matching checkpoint covers.
    pub covered: u64,
    /// Stored nodes compared.
    pub nodes_checked: u64,
    /// Bodies opened and checked against their headers.
    pub bodies_checked: u64,
    /// Bodies sealed with a data key the keyring does not hold (unchecked).
    pub bodies_unchecked: u64,
    /// Index rows checked (with `check_index`).
    pub index_rows_checked: u64,
    /// The trusted keys used.
    pub trusted_keys: Vec<[u8; 32]>,
    /// Everything wrong, most significant first.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The first entry index any problem names.
    pub fn first_bad_index(&self) -> Option<u64> {
        self.problems.iter().filter_map(|p| p.index).min()
    }

    /// Whether a problem of `kind` was found.
    pub fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }
}

#[derive(Debug, Clone)]
struct Target {
    root: Hash,
    external: bool,
    trusted: bool,
    time_ms: i64,
}

/// Stored nodes of one level, read ahead in chunks as verification
/// reaches them.
struct NodeCursor {
    level: u8,
    buf: VecDeque<(u64, Hash)>,
    next: u64,
    chunk: u64,
}

impl NodeCursor {
    fn get(&mut self, store: &dyn AuditStore, index: u64) -> Result<Option<Hash>> {
        loop {
            while let Some((i, _)) = self.buf.front() {
                if *i < index {
                    self.buf.pop_front();
                } else {
                    break;
                }
            }
            if let Some((i, h)) = self.buf.front() {
                return Ok((*i == index).then_some(*h));
            }
            if index < self.next {
                return Ok(None);
            }
            let from = index;
            self.next = from + self.chunk;
            self.buf = store.nodes(self.level, from, self.next)?.into();
            if self.buf.is_empty() {
                return Ok(None);
            }
        }
    }
}

/// How far to look for the position a moved body was sealed for.
const SEARCH_WINDOW: u64 = 64;
/// How many anomalies get that search.
const SEARCHED: usize = 1024;
/// How many anomalies are kept for classification.
const KEPT: usize = 1_000_000;

/// An entry out of place: at `pos`, claiming (by header or by the position
/// its body opens at) to belong at `claim`, if known.
#[derive(Debug, Clone, Copy)]
struct Anomaly {
    pos: u64,
    claim: Option<u64>,
}

/// Verifies the log in `store`.
pub fn verify(store: &dyn AuditStore, options: &VerifyOptions) -> Result<Report> {
    // One snapshot for every read: counted in separate ones, entries
    // appended meanwhile would show as tree nodes past the end (a false
    // truncation) or entries past the size read.
    let snapshot = store.snapshot()?;
    verify_snapshot(&*snapshot, options)
}

fn verify_snapshot(store: &dyn AuditStore, options: &VerifyOptions) -> Result<Report> {
    let keyring = options.keyring.as_ref();
    let mut problems = Vec::new();

    // 1. Trust anchors.
    let vault_key = keyring.and_then(Secrets::signing_public_key);
    let mut trusted: Vec<[u8; 32]> = options.trusted_keys.clone();
    trusted.extend(vault_key);
    let mut externals = Vec::new();
    for ext in &options.external {
        let size = Some(ext.checkpoint.size);
        if !ext.self_signed() {
            problems.push(Problem {
                kind: ProblemKind::BadSignature,
                index: None,
                checkpoint_size: size,
                detail: "an external checkpoint is not signed by the key it names".into(),
            });
            continue;
        }
        if let Some(vk) = vault_key
            && ext.key.key != vk
        {
            problems.push(Problem {
                kind: ProblemKind::BadSignature,
                index: None,
                checkpoint_size: size,
                detail: "an external checkpoint is signed by a key that is not this vault's".into(),
            });
            continue;
        }
        if let Some(origin) = &options.origin
            && &ext.checkpoint.origin != origin
        {
            problems.push(Problem {
                kind: ProblemKind::BadCheckpoint,
                index: None,
                checkpoint_size: size,
                detail: "an external checkpoint belongs to another log (origin)".into(),
            });
            continue;
        }
        if !trusted.contains(&ext.key.key) {
            trusted.push(ext.key.key);
        }
        externals.push(ext.clone());
    }

    // 2. Stored checkpoints.
    let mut targets: BTreeMap<u64, Vec<Target>> = BTreeMap::new();
    let rows = store.checkpoints()?;
    let stored_checkpoints = rows.len();
    let mut unverifiable = 0usize;
    for row in &rows {
        let size = Some(row.size);
        let parsed = match SignedCheckpoint::parse(&row.note) {
            Ok(p) => p,
            Err(e) => {
                problems.push(Problem {
                    kind: ProblemKind::BadCheckpoint,
                    index: None,
                    checkpoint_size: size,
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let c = &parsed.checkpoint;
        if c.size != row.size || c.root != row.root || c.time_ms != row.time_ms {
            problems.push(Problem {
                kind: ProblemKind::BadCheckpoint,
                index: None,
                checkpoint_size: size,
                detail: "the stored row disagrees with its signed text".into(),
            });
        }
        if let Some(origin) = &options.origin
            && &c.origin != origin
        {
            problems.push(Problem {
                kind: ProblemKind::BadCheckpoint,
                index: None,
                checkpoint_size: size,
                detail: "the checkpoint names another log (origin)".into(),
            });
        }
        let signed = trusted.iter().any(|k| parsed.signed_by(k));
        if trusted.is_empty() {
            unverifiable += 1;
        } else if !signed {
            problems.push(Problem {
                kind: ProblemKind::BadSignature,
                index: None,
                checkpoint_size: size,
                detail: if parsed.self_signed() {
                    "signed, but not by a trusted key (the signing key was replaced)".into()
                } else {
                    "the signature does not verify".into()
                },
            });
        }
        targets.entry(c.size).or_default().push(Target {
            root: c.root,
            external: false,
            trusted: signed,
            time_ms: c.time_ms,
        });
    }
    for ext in &externals {
        targets
            .entry(ext.checkpoint.size)
            .or_default()
            .push(Target {
                root: ext.checkpoint.root,
                external: true,
                trusted: true,
                time_ms: ext.checkpoint.time_ms,
            });
    }

    // 3. One pass over the entries.
    let claimed_size = store.size()?;
    let chunk = if options.chunk == 0 {
        8192
    } else {
        options.chunk
    } as u64;
    let levels: Vec<u8> = store.node_levels()?;
    let mut cursors: HashMap<u8, NodeCursor> = HashMap::new();
    let mut compact = CompactRange::new();
    let mut pos = 0u64;
    let mut anomalies: Vec<Anomaly> = Vec::new();
    let (mut ups, mut downs, mut unknown, mut anomaly_count, mut searched) =
        (0u64, 0u64, 0u64, 0u64, 0usize);
    let mut malformed: Option<(u64, u64)> = None;
    let mut node_problem: Option<(u64, u64)> = None;
    let mut index_problem: Option<(u64, u64)> = None;
    let mut root_checks: Vec<(u64, Hash)> = Vec::new();
    let (mut nodes_checked, mut bodies_checked, mut bodies_unchecked, mut index_rows) =
        (0u64, 0u64, 0u64, 0u64);
    let mut completed: Vec<(u8, u64, Hash)> = Vec::new();

    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded::<Result<Vec<RawEntry>>>(2);
        scope.spawn(move || {
            let mut from = 0u64;
            while from < claimed_size {
                let to = from.saturating_add(chunk);
                let rows = store.entries(from, to).map_err(Into::into);
                if tx.send(rows).is_err() {
                    return;
                }
                from = to;
            }
        });
        for rows in rx {
            for (row_idx, bytes) in rows? {
                let p = pos;
                let mut anomaly: Option<Anomaly> = None;
                if row_idx != p {
                    anomaly = Some(Anomaly {
                        pos: p,
                        claim: Some(row_idx),
                    });
                }
                match StoredEntry::view(&bytes) {
                    Err(_) => {
                        let m = malformed.get_or_insert((p, 0));
                        m.1 += 1;
                    }
                    Ok(v) => {
                        if v.index != p {
                            anomaly = Some(Anomaly {
                                pos: p,
                                claim: Some(v.index),
                            });
                        } else if let Some(k) = keyring {
                            match entry::check_body(k, &v, p) {
                                BodyCheck::Good => bodies_checked += 1,
                                BodyCheck::UnknownKey => bodies_unchecked += 1,
                                BodyCheck::HeaderChanged => {
                                    bodies_checked += 1;
                                    anomaly.get_or_insert(Anomaly {
                                        pos: p,
                                        claim: None,
                                    });
                                }
                                BodyCheck::Sealed => {
                                    bodies_checked += 1;
                                    let mut claim = None;
                                    if searched < SEARCHED {
                                        searched += 1;
                                        claim = (1..=SEARCH_WINDOW)
                                            .flat_map(|d| [p.checked_add(d), p.checked_sub(d)])
                                            .flatten()
                                            .find(|c| entry::sealed_for(k, &v, *c));
                                    }
                                    anomaly.get_or_insert(Anomaly { pos: p, claim });
                                }
                            }
                        }
                        if options.check_index {
                            let s = StoredEntry::decode(&bytes).expect("a valid view decodes");
                            for key in s.header.keys() {
                                index_rows += 1;
                                if !indexed(store, &key, s.header.time_ms, p)? {
                                    let m = index_problem.get_or_insert((p, 0));
                                    m.1 += 1;
                                }
                            }
                        }
                    }
                }
                if let Some(a) = anomaly {
                    anomaly_count += 1;
                    match a.claim {
                        Some(c) if c > p => ups += 1,
                        Some(c) if c < p => downs += 1,
                        _ => unknown += 1,
                    }
                    if anomalies.len() < KEPT {
                        anomalies.push(a);
                    }
                }
                compact.push(merkle::leaf_hash(&bytes), |l, i, h| {
                    if merkle::is_stored_level(l) {
                        completed.push((l, i, *h));
                    }
                });
                for (l, i, h) in completed.drain(..) {
                    let cursor = cursors.entry(l).or_insert(NodeCursor {
                        level: l,
                        buf: VecDeque::new(),
                        next: 0,
                        chunk: chunk.max(64),
                    });
                    nodes_checked += 1;
                    if cursor.get(store, i)? != Some(h) {
                        let m = node_problem.get_or_insert((i << l, 0));
                        m.1 += 1;
                    }
                }
                pos += 1;
                if targets.contains_key(&pos) {
                    root_checks.push((pos, compact.root()));
                }
            }
        }
        Ok(())
    })?;
    let n = pos;
    let root = compact.root();

    // Entries out of place: one problem, classified.
    if let Some(first) = anomalies.first() {
        let kind = classify(&anomalies, ups, downs, n);
        problems.push(Problem {
            kind,
            index: Some(first.pos),
            checkpoint_size: None,
            detail: format!(
                "{anomaly_count} entries are not what was written at their position \
                 ({ups} belong later, {downs} belong earlier, {unknown} altered)"
            ),
        });
    }
    if let Some((i, count)) = malformed {
        problems.push(Problem {
            kind: ProblemKind::Malformed,
            index: Some(i),
            checkpoint_size: None,
            detail: format!("{count} stored entries are not valid entries"),
        });
    }
    let node_hint = node_problem.map(|(i, _)| i);
    if let Some((i, count)) = node_problem {
        problems.push(Problem {
            kind: ProblemKind::NodeMismatch,
            // A node names a range, not an entry: its first entry is the
            // best index only when nothing more precise was found.
            index: anomalies.is_empty().then_some(i),
            checkpoint_size: None,
            detail: format!(
                "{count} stored tree nodes are missing or differ from the recomputed ones \
                 (the first covers entries from {i})"
            ),
        });
    }
    if let Some((i, count)) = index_problem {
        problems.push(Problem {
            kind: ProblemKind::IndexMismatch,
            index: Some(i),
            checkpoint_size: None,
            detail: format!("{count} index rows are missing"),
        });
    }

    // 4. Roots at every checkpoint size the log reaches.
    let structural = anomalies
        .first()
        .map(|a| (a.pos, classify(&anomalies, ups, downs, n)));
    // Sizes proven good: by any trusted matching checkpoint (what the log
    // itself signed), and by external ones (what a witness saw). For a
    // witness's history, a stored checkpoint counts only if it was signed
    // no later than the witness's copy: one signed afterwards may belong to
    // a history rewritten after a rollback.
    let mut good_trusted: Vec<(u64, i64)> = vec![(0, i64::MIN)];
    let mut good_external: Vec<u64> = vec![0];
    let mut covered = 0u64;
    let mut mismatches: Vec<(u64, bool, i64)> = Vec::new();
    for (size, computed) in &root_checks {
        for t in &targets[size] {
            if t.root == *computed {
                if t.trusted {
                    good_trusted.push((*size, t.time_ms));
                    covered = covered.max(*size);
                }
                if t.external {
                    good_external.push(*size);
                }
            } else {
                mismatches.push((*size, t.external, t.time_ms));
            }
        }
    }
    mismatches.sort_unstable();
    mismatches.dedup();
    let stored_all_match = !mismatches.iter().any(|(_, ext, _)| !ext);
    for (size, external, time_ms) in &mismatches {
        let below = if *external {
            good_trusted
                .iter()
                .filter(|(_, t)| t <= time_ms)
                .map(|(s, _)| *s)
                .chain(good_external.iter().copied())
                .filter(|g| g < size)
                .max()
                .unwrap_or(0)
        } else {
            good_trusted
                .iter()
                .map(|(s, _)| *s)
                .filter(|g| g < size)
                .max()
                .unwrap_or(0)
        };
        let (kind, index) = match structural {
            Some((i, k)) => (k, i),
            None if *external && stored_all_match => (ProblemKind::RolledBack, below),
            None => (
                ProblemKind::Edited,
                node_hint.filter(|h| *h >= below).unwrap_or(below),
            ),
        };
        problems.push(Problem {
            kind,
            index: Some(index),
            checkpoint_size: Some(*size),
            detail: format!(
                "the recomputed root of the first {size} entries differs from the {} checkpoint's \
                 (the first {below} entries match a trusted checkpoint)",
                if *external { "external" } else { "stored" }
            ),
        });
    }

    // 5. Past the end: truncation and rollback.
    for level in &levels {
        if !merkle::is_stored_level(*level) {
            problems.push(Problem {
                kind: ProblemKind::NodeMismatch,
                index: None,
                checkpoint_size: None,
                detail: format!("tree nodes stored at level {level}, which is never stored"),
            });
            continue;
        }
        let beyond = n >> level;
        if !store
            .nodes(*level, beyond, beyond.saturating_add(1))?
            .is_empty()
        {
            problems.push(Problem {
                kind: ProblemKind::Truncated,
                index: Some(n),
                checkpoint_size: None,
                detail: format!(
                    "tree nodes exist for entries beyond the last one ({n}): entries were removed from the end"
                ),
            });
            break;
        }
    }
    let beyond: Vec<(u64, bool, i64)> = targets
        .range(n + 1..)
        .flat_map(|(s, ts)| ts.iter().map(move |t| (*s, t.external, t.time_ms)))
        .collect();
    if let Some((size, _, _)) = beyond.iter().find(|(_, ext, _)| !ext) {
        problems.push(Problem {
            kind: ProblemKind::Truncated,
            index: Some(n),
            checkpoint_size: Some(*size),
            detail: format!(
                "the log holds {n} entries, but its own checkpoint covers {size}: entries were removed from the end"
            ),
        });
    } else if let Some((size, _, _)) = beyond.iter().find(|(_, ext, _)| *ext) {
        problems.push(Problem {
            kind: ProblemKind::RolledBack,
            index: Some(n),
            checkpoint_size: Some(*size),
            detail: format!(
                "the log holds {n} entries, but an external checkpoint proves {size} existed: \
                 the log was rolled back (or truncated with its checkpoints)"
            ),
        });
    }

    // The stored tree must also prove each external checkpoint consistent
    // with the current root.
    if node_problem.is_none() && problems.is_empty() {
        for ext in &externals {
            let c = &ext.checkpoint;
            if c.size > n {
                continue;
            }
            let mut src = StoreSubtrees { store, size: n };
            let ok = merkle::consistency_proof(&mut src, c.size, n)
                .ok()
                .is_some_and(|proof| {
                    merkle::verify_consistency(c.size, n, &c.root, &root, &proof).is_ok()
                });
            if !ok {
                problems.push(Problem {
                    kind: ProblemKind::NodeMismatch,
                    index: None,
                    checkpoint_size: Some(c.size),
                    detail: "the stored tree does not prove this external checkpoint consistent \
                             with the current root"
                        .into(),
                });
            }
        }
    }

    if trusted.is_empty() && (unverifiable > 0 || n > 0) {
        problems.push(Problem {
            kind: ProblemKind::NoTrustAnchor,
            index: None,
            checkpoint_size: None,
            detail:
                "no trusted signing key: open the vault with its key, or pass checkpoints kept \
                     elsewhere or a trusted public key"
                    .into(),
        });
    }

    problems.sort_by_key(|p| (p.index.unwrap_or(u64::MAX), p.kind));
    Ok(Report {
        entries: n,
        root,
        stored_checkpoints,
        external_checkpoints: externals.len(),
        covered,
        nodes_checked,
        bodies_checked,
        bodies_unchecked,
        index_rows_checked: index_rows,
        trusted_keys: trusted,
        problems,
    })
}

/// Names what moved entries amount to (see the module docs).
fn classify(anomalies: &[Anomaly], ups: u64, downs: u64, n: u64) -> ProblemKind {
    // An entry that appears twice (an anomaly claims a position that holds
    // a good entry, or two anomalies claim the same one): something was
    // added.
    let positions: HashSet<u64> = anomalies.iter().map(|a| a.pos).collect();
    let mut claims = HashSet::new();
    let duplicate = anomalies
        .iter()
        .filter_map(|a| a.claim)
        .any(|c| !claims.insert(c) || (c < n && !positions.contains(&c)));
    if duplicate {
        return ProblemKind::Inserted;
    }
    match (ups > 0, downs > 0) {
        (true, true) => ProblemKind::Reordered,
        (true, false) => ProblemKind::Deleted,
        (false, true) => ProblemKind::Inserted,
        (false, false) => ProblemKind::Edited,
    }
}

fn indexed(store: &dyn AuditStore, key: &AuditKey, time_ms: i64, index: u64) -> Result<bool> {
    let hits = store.lookup(&AuditLookup {
        keys: vec![*key],
        from_ms: Some(time_ms),
        to_ms: Some(time_ms.saturating_add(1)),
        after: index.checked_sub(1),
        limit: 1,
    })?;
    Ok(hits.first().is_some_and(|(i, _)| *i == index))
}
