//! The scoring engine: per-process evidence over a sliding window, from file
//! events alone. Pure: no I/O, no clock (times are milliseconds on a
//! monotonic scale the caller supplies), so every decision is reproducible
//! in a unit test.
//!
//! Evidence is kept **per file** (what happened to this path: its content
//! turned uniform, its magic number vanished, it was renamed to a new
//! suffix...) and summed over the files an actor touched within the
//! window. Signals are *strong* (each is specific to encryption or ransom
//! behaviour) or *weak* (common in benign work: a new high-entropy file, a
//! dissimilar rewrite, a delete, a fast traversal). Weak signals together
//! contribute at most a third of the threshold, and one file's evidence is
//! capped below it, so neither a single weak signal nor a single file ever
//! fires — except a canary, which is decisive.

use crate::content::Fingerprint;
use crate::magic::{self, Magic};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Milliseconds on the caller's monotonic scale.
pub type Millis = u64;

/// Who the engine scores: a process, or a process group (a job: a shell
/// pipeline, or a program and the workers it forks), so that work spread
/// over many short-lived processes adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "id")]
pub enum ActorKey {
    /// One process (by pid).
    Process(i32),
    /// A process group (by pgid).
    Group(i32),
    /// A process and the children running its own executable (workers it
    /// forks), by the parent's pid.
    Family(i32),
}

/// What a signal says, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A canary file was written, renamed or deleted (decisive).
    Canary,
    /// A file's content went from mostly non-uniform to mostly uniform.
    EntropyRise,
    /// The head block turned uniform (header-only encryption).
    HeadEncrypted,
    /// Stripes of uniform bytes alternate with the old content
    /// (intermittent encryption).
    Intermittent,
    /// The file had a known format and its magic number is gone.
    MagicLost,
    /// The extension promises a format the content does not start with.
    MagicMismatch,
    /// Read A, wrote a uniform file beside it, deleted A.
    ReadWriteDelete,
    /// Several files renamed to the same new suffix.
    RenameSuffix,
    /// The same small text file dropped in several folders.
    RansomNote,
    /// (weak) A new file of uniform bytes with no known container format.
    HighEntropyWrite,
    /// (weak) Before and after are unrelated (TLSH distance).
    Dissimilar,
    /// (weak) A file it had read was deleted.
    DeleteAfterRead,
    /// (weak) Many folders listed within the window.
    Traversal,
}

impl Signal {
    /// The signal's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Canary => "canary",
            Signal::EntropyRise => "entropy_rise",
            Signal::HeadEncrypted => "head_encrypted",
            Signal::Intermittent => "intermittent",
            Signal::MagicLost => "magic_lost",
            Signal::MagicMismatch => "magic_mismatch",
            Signal::ReadWriteDelete => "read_write_delete",
            Signal::RenameSuffix => "rename_suffix",
            Signal::RansomNote => "ransom_note",
            Signal::HighEntropyWrite => "high_entropy_write",
            Signal::Dissimilar => "dissimilar",
            Signal::DeleteAfterRead => "delete_after_read",
            Signal::Traversal => "traversal",
        }
    }

    /// Points per file.
    pub fn weight(self) -> u32 {
        match self {
            Signal::Canary => 1000,
            Signal::Intermittent | Signal::RenameSuffix | Signal::RansomNote => 4,
            Signal::EntropyRise
            | Signal::HeadEncrypted
            | Signal::MagicLost
            | Signal::ReadWriteDelete => 3,
            Signal::MagicMismatch | Signal::Traversal => 2,
            Signal::HighEntropyWrite | Signal::Dissimilar | Signal::DeleteAfterRead => 1,
        }
    }

    /// Whether the signal is weak (common in benign work).
    pub fn is_weak(self) -> bool {
        matches!(
            self,
            Signal::HighEntropyWrite
                | Signal::Dissimilar
                | Signal::DeleteAfterRead
                | Signal::Traversal
        )
    }
}

/// A file event, as the platform layer saw it.
#[derive(Debug, Clone)]
pub enum FileEvent {
    /// A file was closed after reading; its fingerprint when it could be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Its content's fingerprint.
        fingerprint: Option<Fingerprint>,
    },
    /// A folder was opened (listed).
    Listed {
        /// The folder.
        dir: PathBuf,
    },
    /// A file was modified (not yet closed): only canaries are judged on it.
    Modified {
        /// The file.
        path: PathBuf,
    },
    /// A file was closed after writing, with the fingerprint of what it now
    /// holds (the engine keeps the previous one).
    Written {
        /// The file.
        path: PathBuf,
        /// Its new content's fingerprint.
        after: Fingerprint,
    },
    /// A file or folder was created.
    Created {
        /// The new path.
        path: PathBuf,
    },
    /// A file or folder was renamed.
    Renamed {
        /// The old path.
        from: PathBuf,
        /// The new path.
        to: PathBuf,
    },
    /// A file or folder was deleted.
    Deleted {
        /// The path.
        path: PathBuf,
    },
}

/// The engine's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Points at which an actor is stopped.
    pub threshold: u32,
    /// The sliding window, in seconds.
    pub window_secs: u64,
    /// Renames to one new suffix before they count.
    pub rename_min: usize,
    /// Folders the same note must appear in before it counts.
    pub note_dirs: usize,
    /// Folders listed within the window that count as a traversal.
    pub traversal_dirs: usize,
    /// File fingerprints kept for before/after comparison.
    pub fingerprint_cache: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            threshold: 12,
            window_secs: 300,
            rename_min: 3,
            note_dirs: 3,
            traversal_dirs: 50,
            fingerprint_cache: 100_000,
        }
    }
}

/// The engine's verdict on an actor that crossed the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Who (None: an event on a canary no process could be tied to).
    pub actor: Option<ActorKey>,
    /// The process whose event crossed the threshold.
    pub pid: Option<i32>,
    /// Points at the time.
    pub score: u32,
    /// Signals seen, with the number of files each was seen on.
    pub signals: BTreeMap<Signal, u32>,
    /// Files the actor touched within the window.
    pub files_touched: u64,
}

#[derive(Debug, Default)]
struct ActorState {
    /// Per file: when last evidenced, and which signals.
    files: HashMap<PathBuf, (Millis, BTreeSet<Signal>)>,
    /// Files read (for the copy-then-delete pattern).
    reads: HashMap<PathBuf, Millis>,
    /// Uniform files written, by folder (for read → write → delete).
    uniform_writes: HashMap<PathBuf, Millis>,
    /// Renames by the new suffix.
    renames: HashMap<String, Vec<(Millis, PathBuf)>>,
    /// Small text files by (name, content hash) → folders.
    notes: HashMap<(OsString, u64), BTreeMap<PathBuf, (Millis, PathBuf)>>,
    /// Folders listed.
    listed: HashMap<PathBuf, Millis>,
    /// Files touched (any event).
    touched: HashMap<PathBuf, Millis>,
    last: Millis,
    pruned_at: Millis,
}

/// Per-process sliding-window scoring (see the module docs).
#[derive(Debug)]
pub struct Engine {
    cfg: Thresholds,
    canaries: BTreeSet<PathBuf>,
    prints: HashMap<PathBuf, Fingerprint>,
    /// The last actor to touch a path (file or folder), for attributing
    /// events that come without a process (inotify's create, rename, delete).
    touched_by: HashMap<PathBuf, (ActorKey, i32, Millis)>,
    actors: HashMap<ActorKey, ActorState>,
}

/// Extensions a benign tool commonly appends (backups, rotation, partial
/// downloads): an appended one of these is not a rename pattern.
const BENIGN_SUFFIXES: &[&str] = &[
    "bak",
    "old",
    "orig",
    "tmp",
    "temp",
    "swp",
    "part",
    "crdownload",
    "1",
    "2",
    "3",
    "backup",
];

impl Engine {
    /// An engine with these settings and no canaries.
    pub fn new(cfg: Thresholds) -> Self {
        Engine {
            cfg,
            canaries: BTreeSet::new(),
            prints: HashMap::new(),
            touched_by: HashMap::new(),
            actors: HashMap::new(),
        }
    }

    /// The settings.
    pub fn thresholds(&self) -> &Thresholds {
        &self.cfg
    }

    /// Paths whose any write, rename or delete is decisive.
    pub fn set_canaries(&mut self, canaries: impl IntoIterator<Item = PathBuf>) {
        self.canaries = canaries.into_iter().collect();
    }

    /// Whether `path` is a canary.
    pub fn is_canary(&self, path: &Path) -> bool {
        self.canaries.contains(path)
    }

    /// Records what a file holds now (initial scan, rescan), without any
    /// actor.
    pub fn remember(&mut self, path: PathBuf, fp: Fingerprint) {
        if self.prints.len() >= self.cfg.fingerprint_cache && !self.prints.contains_key(&path) {
            // Bounded: drop an arbitrary entry (the map's first). A file
            // without a fingerprint is judged on its new content alone.
            if let Some(k) = self.prints.keys().next().cloned() {
                self.prints.remove(&k);
            }
        }
        self.prints.insert(path, fp);
    }

    /// Records a fingerprint only when the path has none.
    pub fn remember_if_absent(&mut self, path: PathBuf, fp: Fingerprint) {
        if !self.prints.contains_key(&path) {
            self.remember(path, fp);
        }
    }

    /// Fingerprints held.
    pub fn fingerprints(&self) -> usize {
        self.prints.len()
    }

    /// Forgets an actor (after it was stopped and dealt with).
    pub fn forget(&mut self, actor: ActorKey) {
        self.actors.remove(&actor);
    }

    /// Resolves the actor of an event that came without one: whoever last
    /// touched the path, else whoever last listed its folder, within the
    /// window.
    pub fn attribute(&self, at: Millis, path: &Path) -> Option<(ActorKey, i32)> {
        let window = self.cfg.window_secs * 1000;
        let fresh = |p: &Path| {
            self.touched_by
                .get(p)
                .filter(|(_, _, t)| at.saturating_sub(*t) <= window)
                .map(|&(a, pid, _)| (a, pid))
        };
        fresh(path).or_else(|| path.parent().and_then(fresh))
    }

    /// Feeds one event; `actor` is None for events that come without a
    /// process (they are attributed with [`Engine::attribute`]). Returns a
    /// detection when the actor crosses the threshold (its evidence is then
    /// cleared: it fires once per episode).
    pub fn observe(
        &mut self,
        at: Millis,
        actor: Option<(ActorKey, i32)>,
        event: FileEvent,
    ) -> Option<Detection> {
        let subject = match &event {
            FileEvent::Renamed { from, .. } => from.clone(),
            FileEvent::Read { path, .. }
            | FileEvent::Modified { path }
            | FileEvent::Written { path, .. }
            | FileEvent::Created { path }
            | FileEvent::Deleted { path } => path.clone(),
            FileEvent::Listed { dir } => dir.clone(),
        };
        let actor = actor.or_else(|| self.attribute(at, &subject));
        let canary_hit = match &event {
            FileEvent::Read { .. } | FileEvent::Listed { .. } | FileEvent::Created { .. } => false,
            FileEvent::Renamed { from, to } => self.is_canary(from) || self.is_canary(to),
            FileEvent::Modified { path }
            | FileEvent::Written { path, .. }
            | FileEvent::Deleted { path } => self.is_canary(path),
        };
        let Some((key, pid)) = actor else {
            // Nobody to score; keep the file's fingerprint current.
            self.track_unattributed(&event);
            return canary_hit.then(|| Detection {
                actor: None,
                pid: None,
                score: Signal::Canary.weight(),
                signals: BTreeMap::from([(Signal::Canary, 1)]),
                files_touched: 0,
            });
        };
        self.touched_by.insert(subject.clone(), (key, pid, at));
        if self.touched_by.len() > self.cfg.fingerprint_cache {
            let window = self.cfg.window_secs * 1000;
            self.touched_by
                .retain(|_, (_, _, t)| at.saturating_sub(*t) <= window);
        }
        let window = self.cfg.window_secs * 1000;
        let cfg = self.cfg;
        let mut state = self.actors.remove(&key).unwrap_or_default();
        state.prune(at, window);
        state.last = at;
        state.touched.insert(subject.clone(), at);
        if canary_hit {
            state.evidence(at, &subject, Signal::Canary);
        }
        match event {
            FileEvent::Read { path, fingerprint } => {
                state.reads.insert(path.clone(), at);
                // A read's fingerprint is taken when the event is handled,
                // which may be after the reader already overwrote the file:
                // it only fills a gap, never replaces what a write or the
                // scan recorded.
                if let Some(fp) = fingerprint
                    && !self.prints.contains_key(&path)
                {
                    self.remember(path, fp);
                }
            }
            FileEvent::Listed { dir } => {
                state.listed.insert(dir.clone(), at);
                if state.listed.len() >= cfg.traversal_dirs {
                    state.evidence(at, &dir, Signal::Traversal);
                }
            }
            FileEvent::Modified { .. } | FileEvent::Created { .. } => {}
            FileEvent::Written { path, after } => {
                let before = self.prints.get(&path).cloned().or_else(|| {
                    state
                        .copied_from(&path)
                        .and_then(|src| self.prints.get(&src).cloned())
                });
                let signals = judge_write(&path, before.as_ref(), &after);
                tracing::debug!(
                    before = before.is_some(),
                    before_magic = ?before.as_ref().and_then(|b| b.magic),
                    after_magic = ?after.magic,
                    after_uniform = after.uniform_blocks,
                    after_blocks = after.blocks,
                    head_uniform = after.head_uniform,
                    ?signals,
                    "write judged"
                );
                for s in signals {
                    state.evidence(at, &path, s);
                }
                let disc = after.magic.is_some_and(Magic::is_compressed_container);
                if after.mostly_uniform()
                    && !disc
                    && let Some(dir) = path.parent()
                {
                    state.uniform_writes.insert(dir.to_path_buf(), at);
                }
                if before.is_none()
                    && after.text
                    && (64..=64 * 1024).contains(&after.len)
                    && let (Some(name), Some(dir)) = (path.file_name(), path.parent())
                {
                    let dirs = state
                        .notes
                        .entry((name.to_os_string(), after.content_hash))
                        .or_default();
                    dirs.insert(dir.to_path_buf(), (at, path.clone()));
                    if dirs.len() >= cfg.note_dirs {
                        let notes: Vec<PathBuf> = dirs.values().map(|(_, p)| p.clone()).collect();
                        for n in notes {
                            state.evidence(at, &n, Signal::RansomNote);
                        }
                    }
                }
                self.remember(path, after);
            }
            FileEvent::Renamed { from, to } => {
                if let Some(fp) = self.prints.remove(&from) {
                    self.remember(to.clone(), fp);
                }
                if let Some(t) = state.reads.remove(&from) {
                    state.reads.insert(to.clone(), t);
                }
                if let Some(suffix) = new_suffix(&from, &to) {
                    let list = state.renames.entry(suffix).or_default();
                    list.push((at, to.clone()));
                    if list.len() >= cfg.rename_min {
                        let renamed: Vec<PathBuf> = list.iter().map(|(_, p)| p.clone()).collect();
                        for p in renamed {
                            state.evidence(at, &p, Signal::RenameSuffix);
                        }
                    }
                }
            }
            FileEvent::Deleted { path } => {
                if state.reads.remove(&path).is_some() {
                    state.evidence(at, &path, Signal::DeleteAfterRead);
                    let wrote_beside = path
                        .parent()
                        .and_then(|d| state.uniform_writes.get(d))
                        .is_some();
                    // The deleted file was a document (a format, or
                    // non-uniform content), not itself uniform bytes (a
                    // cache entry or loose object being repacked).
                    let was_document = self
                        .prints
                        .get(&path)
                        .is_some_and(|fp| fp.magic.is_some() || !fp.mostly_uniform());
                    if wrote_beside && was_document {
                        state.evidence(at, &path, Signal::ReadWriteDelete);
                    }
                }
                self.prints.remove(&path);
            }
        }
        let (score, signals) = state.score(&cfg);
        if score >= cfg.threshold {
            let files_touched = state.touched.len() as u64;
            // Fired: the episode's evidence is spent.
            return Some(Detection {
                actor: Some(key),
                pid: Some(pid),
                score,
                signals,
                files_touched,
            });
        }
        self.actors.insert(key, state);
        None
    }

    /// The current score of an actor (0 when unknown).
    pub fn score_of(&self, actor: ActorKey) -> u32 {
        self.actors.get(&actor).map_or(0, |s| s.score(&self.cfg).0)
    }

    fn track_unattributed(&mut self, event: &FileEvent) {
        match event {
            FileEvent::Written { path, after } => self.remember(path.clone(), after.clone()),
            FileEvent::Read {
                path,
                fingerprint: Some(fp),
            } if !self.prints.contains_key(path) => self.remember(path.clone(), fp.clone()),
            FileEvent::Renamed { from, to } => {
                if let Some(fp) = self.prints.remove(from) {
                    self.remember(to.clone(), fp);
                }
            }
            FileEvent::Deleted { path } => {
                self.prints.remove(path);
            }
            _ => {}
        }
    }
}

/// The signals one close-after-write gives, against the previous version.
pub fn judge_write(path: &Path, before: Option<&Fingerprint>, after: &Fingerprint) -> Vec<Signal> {
    let mut out = Vec::new();
    if after.len == 0 {
        return out;
    }
    // An empty (or too short to judge) previous version is a new file's:
    // created, then written (a temporary file, a fresh object).
    let before = before.filter(|b| b.blocks > 0);
    let promised = magic::extension(path).and_then(|e| magic::expected(&e));
    // A compressed container whose format the extension agrees with (or
    // does not contradict): high entropy is its normal state.
    let container = after
        .magic
        .is_some_and(|m| m.is_compressed_container() && promised.is_none_or(|p| p == m));
    if !container {
        if after.striped && !before.is_some_and(|b| b.striped) {
            out.push(Signal::Intermittent);
        }
        match before {
            Some(b) => {
                if after.mostly_uniform() && !b.mostly_uniform() {
                    out.push(Signal::EntropyRise);
                } else if after.head_uniform && !b.head_uniform {
                    out.push(Signal::HeadEncrypted);
                }
                if after.distance(b).is_some_and(|d| d > 200) {
                    out.push(Signal::Dissimilar);
                }
            }
            None => {
                if after.mostly_uniform() {
                    out.push(Signal::HighEntropyWrite);
                }
            }
        }
    }
    let lost = before.is_some_and(|b| b.magic.is_some()) && after.magic.is_none();
    if lost {
        out.push(Signal::MagicLost);
    } else if let Some(p) = promised
        && after.magic != Some(p)
    {
        out.push(Signal::MagicMismatch);
    }
    out
}

/// The suffix a rename adds: `a.pdf` → `a.pdf.locked` gives `locked`, and
/// `a.pdf` → `a.locked` (same stem, an extension no format has) too; a
/// benign suffix (`.bak`, `.tmp`…) or an ordinary rename gives None.
pub fn new_suffix(from: &Path, to: &Path) -> Option<String> {
    let (f, t) = (from.file_name()?.to_str()?, to.file_name()?.to_str()?);
    let suffix = if let Some(rest) = t.strip_prefix(f) {
        rest.trim_start_matches(['.', '_', '-', '~', '['])
    } else {
        let (fs, ts) = (from.file_stem()?, to.file_stem()?);
        if fs != ts {
            return None;
        }
        let ext = magic::extension(to)?;
        if magic::expected(&ext).is_some() || known_plain_ext(&ext) {
            return None;
        }
        return Some(ext);
    };
    let suffix = suffix.to_ascii_lowercase();
    if suffix.is_empty() || BENIGN_SUFFIXES.contains(&suffix.as_str()) {
        return None;
    }
    Some(suffix)
}

fn known_plain_ext(ext: &str) -> bool {
    matches!(
        ext,
        "txt"
            | "csv"
            | "md"
            | "json"
            | "xml"
            | "html"
            | "htm"
            | "log"
            | "rtf"
            | "svg"
            | "tsv"
            | "ini"
            | "yaml"
            | "yml"
    )
}

impl ActorState {
    fn evidence(&mut self, at: Millis, path: &Path, signal: Signal) {
        let e = self
            .files
            .entry(path.to_path_buf())
            .or_insert_with(|| (at, BTreeSet::new()));
        e.0 = at;
        e.1.insert(signal);
    }

    /// The file this new file was most likely copied from: a file the actor
    /// read in the same folder whose name the new one starts with (or shares
    /// the stem of).
    fn copied_from(&self, new: &Path) -> Option<PathBuf> {
        let name = new.file_name()?.to_str()?;
        self.reads
            .iter()
            .filter(|(p, _)| p.parent() == new.parent() && p.as_path() != new)
            .filter(|(p, _)| {
                let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("\0");
                let full = p.file_name().and_then(|s| s.to_str()).unwrap_or("\0");
                name.starts_with(full) || name.starts_with(&format!("{stem}."))
            })
            .max_by_key(|(_, t)| **t)
            .map(|(p, _)| p.clone())
    }

    /// Drops evidence older than the window; at most once per 1/64 of the
    /// window (each pass walks the actor's maps: per event it would make a
    /// burst of N files cost N²).
    fn prune(&mut self, at: Millis, window: Millis) {
        if at < self.pruned_at.saturating_add(window / 64) && self.pruned_at != 0 {
            return;
        }
        self.pruned_at = at.max(1);
        let old = |t: Millis| at.saturating_sub(t) > window;
        self.files.retain(|_, (t, _)| !old(*t));
        self.reads.retain(|_, t| !old(*t));
        self.uniform_writes.retain(|_, t| !old(*t));
        self.touched.retain(|_, t| !old(*t));
        for list in self.renames.values_mut() {
            list.retain(|(t, _)| !old(*t));
        }
        self.renames.retain(|_, l| !l.is_empty());
        for dirs in self.notes.values_mut() {
            dirs.retain(|_, (t, _)| !old(*t));
        }
        self.notes.retain(|_, d| !d.is_empty());
        self.listed.retain(|_, t| !old(*t));
    }

    /// Points and signal counts: strong evidence per file capped below the
    /// threshold, weak evidence together capped at a third of it.
    fn score(&self, cfg: &Thresholds) -> (u32, BTreeMap<Signal, u32>) {
        let mut strong = 0u32;
        let mut weak = 0u32;
        let mut counts = BTreeMap::new();
        // Half the threshold per file: one file, weak signals included,
        // never fires on its own.
        let file_cap = cfg.threshold / 2;
        for (_, signals) in self.files.values() {
            let mut file_strong = 0u32;
            for &s in signals {
                *counts.entry(s).or_insert(0) += 1;
                if s == Signal::Canary {
                    strong = strong.saturating_add(s.weight());
                } else if s.is_weak() {
                    weak += s.weight();
                } else {
                    file_strong += s.weight();
                }
            }
            strong = strong.saturating_add(file_strong.min(file_cap));
        }
        (strong.saturating_add(weak.min(cfg.threshold / 3)), counts)
    }
}

#[cfg(test)]
#[path = "score_tests.rs"]
mod tests;
