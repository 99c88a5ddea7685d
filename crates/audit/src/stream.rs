//! The live audit stream: every committed entry, in index order, to
//! consumers in this process right after its commit, and the entries other
//! processes commit (the CLI, a second server on the same PostgreSQL) by
//! following the log's index.
//!
//! ```text
//! writer thread ──commit──> store          consumer (its own thread)
//!      │                      ▲              Subscription::recv()
//!      └─ Hub: "committed up  │ entries        │  1. committed end: the Hub's
//!         to N" (an atomic,   └────────────────┘     (this process) or the
//!         then a ring of each   from..N by index     store's size, polled
//!         consumer's bell)                          2. read from..N, open
//! ```
//!
//! **The committer never waits for a consumer and buffers nothing for
//! one.** After a group commits, the writer raises the log's `Hub`'s committed
//! end (an atomic) and rings each subscription's bell (a flag and a
//! condvar, no queue). Consumers read the entries themselves, from the
//! store, by index range, at their own pace; a slow consumer costs the
//! committer nothing but being ring-able. Entries committed elsewhere are
//! found by polling the store's size every
//! [`poll_interval`](StreamOptions::poll_interval) (50 ms by default).
//!
//! **Shared reads.** Subscriptions of one [`AuditLog`] read and open each
//! complete chunk of 1,024 entries once between them (the first to ask
//! reads it, the others wait for it; the last 8 chunks are kept), so three
//! consumers in step cost one store read and one decryption per entry.
//! The log's last, incomplete chunk each reads alone.
//!
//! **What the store says is the truth.** The committed end (from the Hub
//! or the store) only says how far to read; entries are read back from the
//! store, must be contiguous (a missing index is an error, never skipped)
//! and are opened with the keyring as [`AuditReader::entries`] opens them
//! (the body is checked against its header; the tree is not: that is
//! `rxvault audit verify`). Appenders are serialised by the store, so the
//! log's size never runs ahead of an uncommitted index.
//!
//! # Guarantees
//! - **In order, no gap**: a [`Subscription`] delivers indexes
//!   `n, n+1, n+2, ...` and nothing else; an entry missing from the store or
//!   failing to open is an error at its index, and that index is delivered
//!   (or fails) again on the next call.
//! - **Durable position, at least once**: a named consumer's position
//!   (`audit_consumers` in the audit store) is the first index it has not
//!   acknowledged ([`Subscription::ack`]: the entry and everything before
//!   it). A restarted consumer resumes at its position: nothing is lost;
//!   entries delivered after its last acknowledgement are delivered again.
//! - **Exactly once, with the consumer's help**: a consumer that
//!   acknowledges each entry (or batch) once its effect is durable sees
//!   each entry's effect once, except for entries whose effect was made but
//!   not yet acknowledged when it crashed. Every entry carries its index,
//!   so a consumer makes this exact by writing the index with its effect
//!   (skipping indexes it has already done), or by keeping its position in
//!   its own store, in the transaction of its effect, and subscribing with
//!   [`Subscription::open_at`] / [`AuditLog::follow`].
//! - **Acknowledging** is one small write to the audit store (SQLite:
//!   between two of this process's commits, no fsync; PostgreSQL:
//!   `synchronous_commit` off), so a power loss or a database crash may
//!   lose the newest positions: those entries come again, none is skipped.
//!   Acknowledge per batch, or every few tens of milliseconds under load,
//!   not per entry.
//! - **Latency**: in this process, a consumer waiting in `recv` wakes when
//!   the writer publishes (measured by `rxvault audit bench`, see
//!   BENCHMARKS.md); entries of other processes within one poll interval
//!   plus a read.
//!
//! The subscription is blocking (store reads are); an async program runs it
//! on a thread of its own (or `spawn_blocking`) and stops it with a
//! [`StopHandle`]. A subscription may outlive its [`AuditLog`]: it then
//! follows by polling. Entries sealed with a data key the keyring has not
//! loaded (another process created it) fail with
//! [`rxvault_crypto::Error::UnknownDek`] at their index: load the key and
//! call again.
//!
//! # Example
//! ```
//! use rxvault_audit::{Action, Actor, AuditConfig, AuditLog, Entry, StoreLocation};
//! use rxvault_crypto::{Secrets, SecretKey, kek::LocalKek};
//! use rxvault_model::{CategorySet, SystemClock};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let (keyring, _) = Secrets::create("vault-1", Box::new(LocalKek::new(1, SecretKey::generate()?)))?;
//! # let dek = keyring.prepare_dek()?;
//! # keyring.activate(dek);
//! # let signer = keyring.prepare_signer()?;
//! # keyring.install_signer(signer);
//! # let location = StoreLocation::Sqlite { dir: dir.path().to_path_buf() };
//! let log = AuditLog::open_for(&location, "vault-1", keyring, Arc::new(SystemClock),
//!                              AuditConfig::for_vault("vault-1"))?;
//! let mut detector = log.subscribe("detector")?;
//! log.append(Entry::new(Actor::user("alice"), Action::Read { kind: None, categories: CategorySet::ALL }))?;
//! for e in detector.recv_batch(100, Duration::from_secs(1))? {
//!     assert_eq!(e.entry.actor.id, "alice");
//!     // ... act on it, durably, then:
//!     detector.ack(e.index)?;
//! }
//! assert_eq!(detector.position(), 1);
//! # Ok(()) }
//! ```

use crate::entry::{self, LoggedEntry, StoredEntry};
use crate::log::AuditLog;
use crate::reader::AuditReader;
use crate::{Error, Result};
use rxvault_crypto::Secrets;
use rxvault_model::DekId;
use rxvault_store::audit::{AuditStore, check_consumer_name};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How a subscription follows the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// How often the store's size is read for entries other processes
    /// committed (this process's commits wake the consumer at once).
    pub poll_interval: Duration,
    /// The most entries read from the store at once.
    pub batch: usize,
}

impl Default for StreamOptions {
    /// 50 ms, 1,024 entries.
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(50),
            batch: 1024,
        }
    }
}

/// The committed end of the log as this process's writer knows it, and
/// the bells of the subscriptions that follow it. Owned by the
/// [`AuditLog`], shared with its writer thread.
pub(crate) struct Hub {
    /// Every entry below this index is committed.
    end: AtomicU64,
    /// The subscriptions to wake; dead ones are dropped while ringing.
    bells: Mutex<Vec<Weak<Bell>>>,
    /// Whether `commits` is kept (the benchmark's latency figures).
    record: AtomicBool,
    /// (committed end, when it was published), for the benchmark.
    commits: Mutex<Vec<(u64, Instant)>>,
    /// The last [`CACHED_CHUNKS`] chunks this process's subscriptions
    /// opened, shared (see [`Hub::chunk`]).
    chunks: Mutex<VecDeque<(u64, Arc<ChunkSlot>)>>,
}

/// Entries per shared chunk: subscriptions of one log read and open the
/// complete chunks `[k * CHUNK, (k + 1) * CHUNK)` once between them.
const CHUNK: u64 = 1024;

/// Chunks kept for subscriptions behind the first (about a megabyte of
/// opened entries each).
const CACHED_CHUNKS: usize = 8;

/// A chunk being read by one subscription, or read (`None`: it could not
/// be, each subscription reads it alone).
type ChunkSlot = std::sync::OnceLock<Option<Arc<[LoggedEntry]>>>;

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("end", &self.end.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new(end: u64) -> Self {
        Self {
            end: AtomicU64::new(end),
            bells: Mutex::new(Vec::new()),
            record: AtomicBool::new(false),
            commits: Mutex::new(Vec::new()),
            chunks: Mutex::new(VecDeque::new()),
        }
    }

    /// The opened chunk at `from` (committed, complete), read and opened by
    /// `load` in the first subscription to ask; the others asking meanwhile
    /// wait for it rather than read it again. Three consumers in step cost
    /// one read and one decryption per entry, not three. Consumers are
    /// never buffered for: a chunk is kept only while it is among the last
    /// few asked for.
    fn chunk(
        &self,
        from: u64,
        load: impl FnOnce() -> Option<Arc<[LoggedEntry]>>,
    ) -> Option<Arc<[LoggedEntry]>> {
        let slot = {
            let mut chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
            match chunks.iter().find(|(f, _)| *f == from) {
                Some((_, slot)) => slot.clone(),
                None => {
                    let slot = Arc::new(ChunkSlot::new());
                    chunks.push_back((from, slot.clone()));
                    if chunks.len() > CACHED_CHUNKS {
                        chunks.pop_front();
                    }
                    slot
                }
            }
        };
        slot.get_or_init(load).clone()
    }

    /// Called by the writer after a commit: everything below `end` is
    /// committed. Never blocks on a consumer (a bell's lock is only ever
    /// held to set or read two flags).
    pub(crate) fn publish(&self, end: u64) {
        if self.record.load(Ordering::Relaxed) {
            self.commits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((end, Instant::now()));
        }
        self.end.fetch_max(end, Ordering::Release);
        self.bells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|w| match w.upgrade() {
                Some(bell) => {
                    bell.ring();
                    true
                }
                None => false,
            });
    }

    pub(crate) fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    fn register(&self, bell: &Arc<Bell>) {
        self.bells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(bell));
    }

    /// Starts keeping (end, instant) of every publish (benchmark only).
    pub(crate) fn record_commits(&self) {
        self.record.store(true, Ordering::Relaxed);
    }

    /// The publishes recorded so far.
    pub(crate) fn take_commits(&self) -> Vec<(u64, Instant)> {
        std::mem::take(&mut *self.commits.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[derive(Default)]
struct BellState {
    rung: bool,
    stopped: bool,
}

/// What wakes one subscription: the writer's publish, or its stop handle.
#[derive(Default)]
struct Bell {
    state: Mutex<BellState>,
    cond: Condvar,
}

impl Bell {
    fn ring(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rung = true;
        self.cond.notify_one();
    }

    fn stop(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        self.cond.notify_all();
    }

    fn stopped(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stopped
    }

    /// Forgets earlier rings (before the committed end is read again).
    fn clear(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rung = false;
    }

    /// Waits at most `timeout` for a ring (or a stop) since [`clear`].
    fn wait(&self, timeout: Duration) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .cond
            .wait_timeout_while(s, timeout, |s| !s.rung && !s.stopped)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// Stops a [`Subscription`] from another thread: a consumer waiting in
/// [`recv`](Subscription::recv) (or about to) gets [`Error::Closed`].
#[derive(Clone)]
pub struct StopHandle(Arc<Bell>);

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle").finish_non_exhaustive()
    }
}

impl StopHandle {
    /// Stops the subscription.
    pub fn stop(&self) {
        self.0.stop();
    }
}

/// A consumer's view of the live audit stream: the opened entries from its
/// position on, in index order, without gaps (see the [module
/// docs](self) for the guarantees).
pub struct Subscription {
    reader: AuditReader,
    /// This process's writer, if the log is open here.
    hub: Option<Arc<Hub>>,
    bell: Arc<Bell>,
    /// The durable consumer's name (`None`: a position kept elsewhere).
    name: Option<String>,
    /// The next index to deliver.
    next: u64,
    /// The stored position (the first unacknowledged index).
    acked: u64,
    /// Every entry below this is known to be committed.
    end: u64,
    options: StreamOptions,
    last_poll: Option<Instant>,
    buffer: VecDeque<LoggedEntry>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("next", &self.next)
            .field("acked", &self.acked)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Subscribes consumer `name` (1 to 64 of `A-Z a-z 0-9 . _ -`) to the
    /// stream, from its stored position (a new consumer: from the first
    /// entry), with the default [`StreamOptions`].
    pub fn subscribe(&self, name: &str) -> Result<Subscription> {
        self.subscribe_with(name, StreamOptions::default())
    }

    /// [`subscribe`](Self::subscribe) with `options`.
    pub fn subscribe_with(&self, name: &str, options: StreamOptions) -> Result<Subscription> {
        Subscription::start(
            self.reader().clone(),
            Some(self.hub().clone()),
            Some(name),
            None,
            options,
        )
    }

    /// Follows the stream from index `from` with no stored position (the
    /// consumer keeps its own; [`Subscription::ack`] is refused).
    pub fn follow(&self, from: u64, options: StreamOptions) -> Result<Subscription> {
        Subscription::start(
            self.reader().clone(),
            Some(self.hub().clone()),
            None,
            Some(from),
            options,
        )
    }

    /// Every entry below this index is committed (as this process's writer
    /// last published; other processes may have appended since).
    pub fn committed_end(&self) -> u64 {
        self.hub().end()
    }
}

impl Subscription {
    /// Subscribes consumer `name` to the log in `store` without an
    /// [`AuditLog`] in this process (a consumer process of its own): it
    /// finds new entries by polling only.
    pub fn open(
        store: Arc<dyn AuditStore>,
        keyring: Secrets,
        name: &str,
        options: StreamOptions,
    ) -> Result<Self> {
        Self::start(
            AuditReader::new(store, Some(keyring)),
            None,
            Some(name),
            None,
            options,
        )
    }

    /// Follows the log in `store` from index `from`, with no stored
    /// position, by polling.
    pub fn open_at(
        store: Arc<dyn AuditStore>,
        keyring: Secrets,
        from: u64,
        options: StreamOptions,
    ) -> Result<Self> {
        Self::start(
            AuditReader::new(store, Some(keyring)),
            None,
            None,
            Some(from),
            options,
        )
    }

    fn start(
        reader: AuditReader,
        hub: Option<Arc<Hub>>,
        name: Option<&str>,
        from: Option<u64>,
        options: StreamOptions,
    ) -> Result<Self> {
        if reader.keyring().is_none() {
            return Err(Error::Invalid(
                "the audit stream opens entries: it needs the vault's key".into(),
            ));
        }
        let start = match (name, from) {
            (Some(n), _) => {
                check_consumer_name(n)?;
                reader.store().consumer_position(n)?.unwrap_or(0)
            }
            (None, Some(f)) => f,
            (None, None) => 0,
        };
        let size = reader.size()?;
        if start > size {
            return Err(Error::Invalid(format!(
                "the stream position {start} is past the log's end ({size} entries): \
                 the log lost entries a consumer had seen; run `rxvault audit verify`"
            )));
        }
        let bell = Arc::new(Bell::default());
        if let Some(h) = &hub {
            h.register(&bell);
        }
        Ok(Self {
            reader,
            hub,
            bell,
            name: name.map(str::to_string),
            next: start,
            acked: start,
            end: size,
            options: StreamOptions {
                batch: options.batch.max(1),
                poll_interval: options.poll_interval.max(Duration::from_millis(1)),
            },
            last_poll: Some(Instant::now()),
            buffer: VecDeque::new(),
        })
    }

    /// The consumer's name, if its position is stored.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The index the next delivered entry will have.
    pub fn next_index(&self) -> u64 {
        self.next - self.buffer.len() as u64
    }

    /// The stored position: the first index not acknowledged.
    pub fn position(&self) -> u64 {
        self.acked
    }

    /// How many committed entries (that this subscription knows of) are
    /// not delivered yet.
    pub fn lag(&self) -> u64 {
        let end = self
            .hub
            .as_ref()
            .map_or(self.end, |h| h.end().max(self.end));
        end.saturating_sub(self.next_index())
    }

    /// A handle that stops this subscription from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.bell.clone())
    }

    /// The next entry; blocks until there is one (or the subscription is
    /// stopped: [`Error::Closed`]).
    pub fn recv(&mut self) -> Result<LoggedEntry> {
        loop {
            if let Some(e) = self.recv_timeout(Duration::from_secs(3600))? {
                return Ok(e);
            }
        }
    }

    /// The next entry, waiting at most `timeout` for one.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<LoggedEntry>> {
        self.fill(Instant::now() + timeout)?;
        Ok(self.buffer.pop_front())
    }

    /// Up to `max` entries (at least one unless `timeout` passed first),
    /// in index order.
    pub fn recv_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<LoggedEntry>> {
        self.fill(Instant::now() + timeout)?;
        let n = max.max(1).min(self.buffer.len());
        Ok(self.buffer.drain(..n).collect())
    }

    /// Acknowledges `index` and every entry before it: stores the position
    /// `index + 1` (forward only: acknowledging again, or an older index,
    /// changes nothing). Only delivered entries can be acknowledged.
    pub fn ack(&mut self, index: u64) -> Result<()> {
        let Some(name) = &self.name else {
            return Err(Error::Invalid(
                "this subscription has no stored position (it was opened at an index)".into(),
            ));
        };
        if index >= self.next_index() {
            return Err(Error::Invalid(format!(
                "entry {index} was not delivered yet (next: {})",
                self.next_index()
            )));
        }
        self.acked = self.reader.store().advance_consumer(name, index + 1)?;
        Ok(())
    }

    /// Reads entries into the buffer, waiting for them until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<()> {
        loop {
            if !self.buffer.is_empty() {
                return Ok(());
            }
            if self.bell.stopped() {
                return Err(Error::Closed);
            }
            // Rings after this are not lost: the committed end is read
            // after the flag is cleared.
            self.bell.clear();
            if let Some(h) = &self.hub {
                self.end = self.end.max(h.end());
            }
            let now = Instant::now();
            let poll_due = self
                .last_poll
                .is_none_or(|t| now.duration_since(t) >= self.options.poll_interval);
            if self.end <= self.next && poll_due {
                self.end = self.end.max(self.reader.size()?);
                self.last_poll = Some(now);
            }
            if self.end > self.next {
                return self.read();
            }
            if now >= deadline {
                return Ok(());
            }
            let next_poll = self
                .last_poll
                .map_or(now, |t| t + self.options.poll_interval);
            self.bell
                .wait(next_poll.min(deadline).saturating_duration_since(now));
        }
    }

    /// Reads and opens `next..` (at most a batch, up to the known end).
    /// Delivers the entries before a missing or unopenable one; that one's
    /// error comes when it is next.
    fn read(&mut self) -> Result<()> {
        let from = self.next;
        let mut to = self.end.min(from.saturating_add(self.options.batch as u64));
        if let Some(hub) = &self.hub
            && self.options.batch as u64 >= CHUNK
        {
            if !from.is_multiple_of(CHUNK) {
                // Up to the next chunk's start, so that the reads after
                // are shared.
                to = to.min(from.next_multiple_of(CHUNK));
            } else if self.end >= from + CHUNK {
                let keyring = self.reader.keyring().expect("checked at start");
                if let Some(chunk) = hub.chunk(from, || load_chunk(&self.reader, keyring, from)) {
                    self.buffer.extend(chunk.iter().cloned());
                    self.next = from + CHUNK;
                    return Ok(());
                }
            }
            // Otherwise the log's incomplete last chunk, or a chunk that
            // did not load: read alone.
        }
        let rows = self.reader.store().entries(from, to)?;
        let keyring = self
            .reader
            .keyring()
            .ok_or_else(|| Error::Invalid("no keyring".into()))?;
        let mut failure = None;
        let mut want = from;
        for (index, bytes) in &rows {
            if *index != want {
                break;
            }
            match open_one(keyring, *index, bytes) {
                Ok(e) => self.buffer.push_back(e),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            want += 1;
        }
        self.next = want;
        match failure {
            Some(e) if want == from => Err(e),
            None if want == from => Err(missing(from)),
            _ => Ok(()),
        }
    }
}

/// Reads and opens the whole chunk at `from` (`None` if any entry of it
/// is missing or does not open: the subscription's own read reports it).
fn load_chunk(reader: &AuditReader, keyring: &Secrets, from: u64) -> Option<Arc<[LoggedEntry]>> {
    let rows = reader.store().entries(from, from + CHUNK).ok()?;
    if rows.len() as u64 != CHUNK {
        return None;
    }
    let mut out = Vec::with_capacity(rows.len());
    for (want, (index, bytes)) in (from..).zip(&rows) {
        if *index != want {
            return None;
        }
        out.push(open_one(keyring, *index, bytes).ok()?);
    }
    Some(out.into())
}

/// Decodes and opens a stored entry. A data key this keyring has not
/// loaded (another process made it) is [`rxvault_crypto::Error::UnknownDek`],
/// so the caller can load it and ask again.
fn open_one(keyring: &Secrets, index: u64, bytes: &[u8]) -> Result<LoggedEntry> {
    let stored = StoredEntry::decode(bytes).map_err(|e| Error::Malformed {
        index,
        reason: e.to_string(),
    })?;
    if stored.header.index != index {
        return Err(Error::Malformed {
            index,
            reason: format!("stored at {index} but says {}", stored.header.index),
        });
    }
    if let Some(dek) = stored.dek()
        && !keyring.has_dek(DekId(dek))
    {
        return Err(rxvault_crypto::Error::UnknownDek(DekId(dek)).into());
    }
    entry::open(keyring, &stored)
}

fn missing(index: u64) -> Error {
    Error::Malformed {
        index,
        reason: "the log is committed past this entry but it is missing from the store \
                 (run `rxvault audit verify`)"
            .into(),
    }
}
