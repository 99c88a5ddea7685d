//! The writer: group commit with "no audit, no access".
//!
//! ```text
//! callers ──submit──> [bounded queue] ──> committer thread
//!   (time, keyed hashes,                  drain up to max_batch entries:
//!    body JSON: in parallel)                index, seal body, leaf hash,
//!   <── Pending (wait / .await) ──┐         tree nodes, maybe a checkpoint;
//!                                 └──────── ONE transaction + fsync; wake all
//! ```
//!
//! A caller's [`Pending`] resolves only after the transaction holding its
//! entry has committed (SQLite `synchronous=FULL`; PostgreSQL commit), so a
//! read whose response waits for [`AuditLog::append`] is never served
//! without its audit entry on disk. While one group is being written the
//! next one accumulates in the queue: the more concurrent callers, the
//! larger each group and the fewer fsyncs per entry.
//!
//! The committer alone assigns indexes and holds the tree's right edge
//! ([`CompactRange`]), so entries need no lock on the hot path. If another
//! process appended meanwhile (the store reports a conflict), the committer
//! reloads the tree from the store and retries, sealing again for the new
//! indexes.
//!
//! After each commit the writer publishes the log's committed end to the
//! live stream ([`crate::stream`]): an atomic and a wake-up per
//! subscription, before the callers are answered; consumers read the
//! entries from the store themselves.
//!
//! Checkpoints are signed by the committer after `checkpoint_every`
//! entries, after `checkpoint_interval` (by the log's clock) when entries
//! are pending a checkpoint, and on demand ([`AuditLog::checkpoint`]); each
//! is written in the same transaction as the entries it covers.

use crate::checkpoint::{Checkpoint, SignedCheckpoint, origin_for};
use crate::entry::{self, ActionKind, ActorKind, Entry, Header, Outcome, Tokens};
use crate::merkle::{self, CompactRange, Hash};
use crate::reader::AuditReader;
use crate::stream::Hub;
use crate::{Error, Result, unix_ms};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rxvault_crypto::Secrets;
use rxvault_model::{Clock, Rid};
use rxvault_store::audit::{
    AUDIT_DB_FILE, AuditBatch, AuditCheckpoint, AuditEntryWrite, AuditNode, AuditStore,
};
use rxvault_store::{PgAuditStore, SqliteAuditStore};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where a vault's audit log is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `dir/audit.db` (the vault's data directory), its own SQLite file.
    Sqlite {
        /// The vault's data directory.
        dir: PathBuf,
    },
    /// `audit_*` tables in the vault's PostgreSQL schema. (The vault lets
    /// `RXVAULT_PG_URL` override the configured URL; so should callers.)
    Postgres {
        /// Connection URL.
        url: String,
        /// The vault's schema.
        schema: String,
    },
}

/// Opens (with `create`, creating if missing) the audit store at `location`.
pub fn open_store(location: &StoreLocation, create: bool) -> Result<Box<dyn AuditStore>> {
    Ok(match location {
        StoreLocation::Sqlite { dir } => {
            Box::new(SqliteAuditStore::open(&dir.join(AUDIT_DB_FILE), create)?)
        }
        StoreLocation::Postgres { url, schema } => Box::new(PgAuditStore::open(url, schema)?),
    })
}

/// How the log commits and checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The checkpoints' origin line (`rxvault/audit/<vault id>`).
    pub origin: String,
    /// Sign a checkpoint once this many entries are not yet covered by one.
    pub checkpoint_every: u64,
    /// Sign a checkpoint when entries have waited this long for one.
    pub checkpoint_interval: Duration,
    /// The most entries in one transaction.
    pub max_batch: usize,
    /// How many submitted entries may wait for the committer before
    /// [`AuditLog::submit`] blocks (back-pressure).
    pub queue_capacity: usize,
}

impl AuditConfig {
    /// The defaults for a vault: a checkpoint every 10,000 entries or 60
    /// seconds, groups of up to 32,768 entries.
    pub fn for_vault(vault_id: &str) -> Self {
        Self {
            origin: origin_for(vault_id),
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(60),
            max_batch: 32_768,
            queue_capacity: 65_536,
        }
    }
}

/// Proof that an entry is durably in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash (for inclusion proofs).
    pub leaf_hash: Hash,
    /// Its time (Unix ms).
    pub time_ms: i64,
    /// The log's size once the entry's group was committed.
    pub tree_size: u64,
}

struct SlotState<T> {
    value: Option<Result<T>>,
    waker: Option<Waker>,
    /// A thread is blocked on the condvar (so delivery must wake it; most
    /// answers arrive before anyone waits, and skip the syscall).
    waiting: bool,
}

struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

/// The answer to a submitted entry (or checkpoint request), delivered once
/// the committer is done with it. Block with [`wait`](Pending::wait) or
/// `.await` it (it is a `Future`; no runtime is needed for either).
#[must_use = "an audit entry is not known to be committed until its Pending resolves"]
pub struct Pending<T = Receipt> {
    slot: Arc<Slot<T>>,
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// The committer's end of a [`Pending`]. Dropped unanswered (a committer
/// that died), it answers [`Error::Closed`], so no caller waits forever.
struct Completer<T> {
    slot: Option<Arc<Slot<T>>>,
}

fn oneshot<T>() -> (Pending<T>, Completer<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            value: None,
            waker: None,
            waiting: false,
        }),
        ready: Condvar::new(),
    });
    (
        Pending { slot: slot.clone() },
        Completer { slot: Some(slot) },
    )
}

impl<T> Completer<T> {
    fn complete(mut self, value: Result<T>) {
        if let Some(slot) = self.slot.take() {
            deliver(&slot, value);
        }
    }
}

fn deliver<T>(slot: &Slot<T>, value: Result<T>) {
    let (waker, waiting) = {
        let mut s = slot.state.lock().unwrap_or_else(|e| e.into_inner());
        s.value = Some(value);
        (s.waker.take(), s.waiting)
    };
    if waiting {
        slot.ready.notify_all();
    }
    if let Some(w) = waker {
        w.wake();
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            deliver(&slot, Err(Error::Closed));
        }
    }
}

impl<T> Pending<T> {
    /// Blocks until the answer is there.
    pub fn wait(self) -> Result<T> {
        let mut s = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = s.value.take() {
                return v;
            }
            s.waiting = true;
            s = self.slot.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks at most `timeout`; `Err(self)` if the answer is not there yet.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<T>, Self> {
        {
            let mut s = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
            s.waiting = true;
            let (mut s, _) = self
                .slot
                .ready
                .wait_timeout_while(s, timeout, |s| s.value.is_none())
                .unwrap_or_else(|e| e.into_inner());
            if let Some(v) = s.value.take() {
                return Ok(v);
            }
        }
        Err(self)
    }

    /// Whether the answer is there (waiting would not block).
    pub fn is_ready(&self) -> bool {
        self.slot
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .value
            .is_some()
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// An entry with everything that does not depend on its index computed on
/// the caller's thread (keyed hashes, body JSON, time).
struct Prepared {
    time_ms: i64,
    action: ActionKind,
    outcome: Outcome,
    actor_kind: ActorKind,
    tokens: Tokens,
    patients: Vec<Rid>,
    resources: Vec<Rid>,
    json: Vec<u8>,
}

enum Msg {
    Append(Box<Prepared>, Completer<Receipt>),
    Checkpoint(Completer<SignedCheckpoint>),
}

/// The audit log of a vault: append entries, sign checkpoints, read.
///
/// Shareable between threads (`&AuditLog` is enough to append). Dropping
/// it (or [`close`](Self::close)) commits everything already submitted,
/// then stops the committer.
pub struct AuditLog {
    keyring: Secrets,
    clock: Arc<dyn Clock>,
    sender: Option<Sender<Msg>>,
    committer: Option<JoinHandle<()>>,
    reader: AuditReader,
    /// The committed end, published by the writer after each commit, and
    /// the live stream's subscriptions it wakes ([`crate::stream`]).
    hub: Arc<Hub>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("store", &self.reader.store())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens the log of vault `vault_id` at `location` (creating its
    /// storage if missing). The keyring must have a data key
    /// (`Vault::ensure_data_key`) and the signing key
    /// (`Vault::ensure_signer`).
    pub fn open_for(
        location: &StoreLocation,
        vault_id: &str,
        keyring: Secrets,
        clock: Arc<dyn Clock>,
        config: AuditConfig,
    ) -> Result<Self> {
        let mut config = config;
        if config.origin.is_empty() {
            config.origin = origin_for(vault_id);
        }
        Self::open(open_store(location, true)?, keyring, clock, config)
    }

    /// Opens the log in `store`. Refuses ([`Error::Tampered`]) a store whose
    /// tree does not match its latest checkpoint, or whose latest checkpoint
    /// is not signed by this keyring's key.
    pub fn open(
        store: Box<dyn AuditStore>,
        keyring: Secrets,
        clock: Arc<dyn Clock>,
        config: AuditConfig,
    ) -> Result<Self> {
        Self::start(store.into(), keyring, clock, config, true)
    }

    pub(crate) fn start(
        store: Arc<dyn AuditStore>,
        keyring: Secrets,
        clock: Arc<dyn Clock>,
        config: AuditConfig,
        tree: bool,
    ) -> Result<Self> {
        let public = keyring.signing_public_key().ok_or(Error::NoSigner)?;
        let reader = AuditReader::new(store.clone(), Some(keyring.clone()));
        // The checkpoint first, then the size: another process may append
        // in between, and the size only grows.
        let latest = reader.latest_checkpoint()?;
        let size = store.size()?;
        let state = if tree {
            // Nodes past the end mean entries were removed from it: refuse,
            // rather than fail on every append.
            for level in reader.store().node_levels()? {
                let past = size >> level;
                if !reader.store().nodes(level, past, past + 1)?.is_empty() {
                    return Err(Error::Tampered(format!(
                        "tree nodes exist beyond the log's {size} entries: entries were removed from its end"
                    )));
                }
            }
            let compact = CompactRange::load(&mut reader.subtrees(size), size)?;
            if let Some(cp) = &latest {
                check_latest(&reader, cp, &public, size)?;
            }
            compact
        } else {
            CompactRange::new()
        };
        let ctx = Arc::new(Ctx {
            keyring: keyring.clone(),
            clock: clock.clone(),
            config: config.clone(),
            with_tree: tree,
            opened_ms: unix_ms(clock.now()),
        });
        let base = Base {
            tree: state,
            size,
            last_cp: latest
                .as_ref()
                .map(|c| (c.checkpoint.size, c.checkpoint.time_ms)),
        };
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            base: Mutex::new((0, base.clone())),
        });
        let hub = Arc::new(Hub::new(size));
        let writer = Writer {
            store,
            ctx: ctx.clone(),
            base: base.clone(),
            epoch: 0,
            shared: shared.clone(),
            hub: hub.clone(),
        };
        let builder = Builder {
            ctx,
            shared,
            spec: base,
            epoch: 0,
        };
        let (sender, receiver) = crossbeam_channel::bounded(config.queue_capacity.max(1));
        let handle = std::thread::Builder::new()
            .name("rxvault-audit".into())
            .spawn(move || builder.run(&receiver, writer))
            .map_err(crate::io_err("starting the audit committer thread"))?;
        Ok(Self {
            keyring,
            clock,
            sender: Some(sender),
            committer: Some(handle),
            reader,
            hub,
        })
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Read access (entries, proofs, queries).
    pub fn reader(&self) -> &AuditReader {
        &self.reader
    }

    /// Submits an entry and returns at once (unless the queue is full); the
    /// entry is committed when the [`Pending`] resolves.
    pub fn submit(&self, entry: Entry) -> Result<Pending<Receipt>> {
        let prepared = Prepared {
            time_ms: unix_ms(self.clock.now()),
            action: entry.action.kind(),
            outcome: entry.outcome,
            actor_kind: entry.actor.kind,
            tokens: Tokens::of(&self.keyring, &entry),
            json: entry::body_json(&entry)?,
            patients: entry.patients,
            resources: entry.resources,
        };
        let (pending, completer) = oneshot();
        self.send(Msg::Append(Box::new(prepared), completer))?;
        Ok(pending)
    }

    /// Appends an entry and returns once it is durably committed.
    pub fn append(&self, entry: Entry) -> Result<Receipt> {
        self.submit(entry)?.wait()
    }

    /// Signs a checkpoint over everything submitted before this call (or
    /// returns the latest one if it already covers the whole log).
    pub fn checkpoint(&self) -> Result<SignedCheckpoint> {
        let (pending, completer) = oneshot();
        self.send(Msg::Checkpoint(completer))?;
        pending.wait()
    }

    fn send(&self, msg: Msg) -> Result<()> {
        let sender = self.sender.as_ref().ok_or(Error::Closed)?;
        match sender.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(msg)) => sender.send(msg).map_err(|_| Error::Closed),
            Err(TrySendError::Disconnected(_)) => Err(Error::Closed),
        }
    }

    /// Commits what was submitted, then stops the committer.
    pub fn close(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.sender = None;
        if let Some(h) = self.committer.take() {
            h.join()
                .map_err(|_| Error::Invalid("the audit committer panicked".into()))?;
        }
        Ok(())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The startup check: the latest checkpoint is signed by this vault and
/// the stored tree reproduces its root.
fn check_latest(
    reader: &AuditReader,
    cp: &SignedCheckpoint,
    public: &[u8; 32],
    size: u64,
) -> Result<()> {
    let c = &cp.checkpoint;
    if !cp.signed_by(public) {
        return Err(Error::Tampered(format!(
            "the checkpoint at size {} is not signed by this vault's key",
            c.size
        )));
    }
    if c.size > size {
        return Err(Error::Tampered(format!(
            "the log holds {size} entries but was checkpointed at {}",
            c.size
        )));
    }
    match reader.root(c.size) {
        Ok(root) if root == c.root => Ok(()),
        Ok(_) => Err(Error::Tampered(format!(
            "the stored tree's root at size {} differs from the signed one",
            c.size
        ))),
        Err(e) => Err(Error::Tampered(format!(
            "the stored tree at size {} cannot be read back: {e}",
            c.size
        ))),
    }
}

/// What the committer knows of the log: the tree's right edge (only with
/// the tree), the size, and the latest checkpoint's size and time.
#[derive(Debug, Clone)]
struct Base {
    tree: CompactRange,
    size: u64,
    last_cp: Option<(u64, i64)>,
}

/// What the builder and the writer share, read-only.
struct Ctx {
    keyring: Secrets,
    clock: Arc<dyn Clock>,
    config: AuditConfig,
    with_tree: bool,
    /// When the log was opened (Unix ms).
    opened_ms: i64,
}

/// A batch ready to commit on top of the log of `start` entries.
struct Built {
    start: u64,
    batch: AuditBatch,
    receipts: Vec<Receipt>,
    signed: Option<SignedCheckpoint>,
    /// The log once the batch is committed.
    after: Base,
}

/// The builder's state as the writer last published it: the writer bumps
/// the epoch whenever the log did not go the way the builder assumed (a
/// failed commit, another process's entries, a batch it had to rebuild).
struct Shared {
    epoch: AtomicU64,
    base: Mutex<(u64, Base)>,
}

/// One group for the writer: the callers, and the batch the builder made
/// for them (in `epoch`).
struct Job {
    epoch: u64,
    appends: Waiters,
    requests: Vec<Completer<SignedCheckpoint>>,
    built: Result<Built>,
}

type Waiters = Vec<(Box<Prepared>, Completer<Receipt>)>;

fn sort(m: Msg, appends: &mut Waiters, requests: &mut Vec<Completer<SignedCheckpoint>>) {
    match m {
        Msg::Append(p, c) => appends.push((p, c)),
        Msg::Checkpoint(c) => requests.push(c),
    }
}

impl Ctx {
    fn checkpoint_due(
        &self,
        last_cp: Option<(u64, i64)>,
        requested: bool,
        size: u64,
        now: i64,
    ) -> bool {
        if !self.with_tree {
            return false;
        }
        let Some((cp_size, cp_time)) = last_cp else {
            // The first checkpoint: on request (even of the empty log), or
            // as if one had been signed at size 0 when the log was opened.
            return requested
                || size >= self.config.checkpoint_every
                || (size > 0 && self.interval_passed(self.opened_ms, now));
        };
        size > cp_size
            && (requested
                || size - cp_size >= self.config.checkpoint_every
                || self.interval_passed(cp_time, now))
    }

    fn interval_passed(&self, since: i64, now: i64) -> bool {
        now.saturating_sub(since)
            >= i64::try_from(self.config.checkpoint_interval.as_millis()).unwrap_or(i64::MAX)
    }

    /// Seals, hashes and places `appends` after the log `base` (and signs a
    /// checkpoint if one is due): everything but the write.
    fn build(&self, base: &Base, appends: &Waiters, requested: bool) -> Result<Built> {
        let mut after = base.clone();
        let mut batch = AuditBatch::default();
        let mut receipts = Vec::with_capacity(appends.len());
        for (p, _) in appends {
            let index = base.size + receipts.len() as u64;
            let header = Header {
                index,
                time_ms: p.time_ms,
                action: p.action,
                outcome: p.outcome,
                actor_kind: p.actor_kind,
                tokens: p.tokens,
                patients: p.patients.clone(),
                resources: p.resources.clone(),
            };
            let mut bytes = header.encode();
            let body = entry::seal_body(&self.keyring, &bytes, index, &p.json)?;
            let dek = u32::from_be_bytes(body[1..5].try_into().expect("sealed blob header"));
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&body);
            let leaf_hash = if self.with_tree {
                let leaf = merkle::leaf_hash(&bytes);
                after.tree.push(leaf, |level, index, hash| {
                    if merkle::is_stored_level(level) {
                        batch.nodes.push(AuditNode {
                            level,
                            index,
                            hash: *hash,
                        });
                    }
                });
                leaf
            } else {
                [0; 32]
            };
            batch.entries.push(AuditEntryWrite {
                index,
                time_ms: p.time_ms,
                dek,
                keys: header.keys(),
                bytes,
            });
            receipts.push(Receipt {
                index,
                leaf_hash,
                time_ms: p.time_ms,
                tree_size: 0,
            });
        }
        after.size = base.size + receipts.len() as u64;
        let now = unix_ms(self.clock.now());
        let mut signed = None;
        if self.checkpoint_due(base.last_cp, requested, after.size, now) {
            let cp = Checkpoint {
                origin: self.config.origin.clone(),
                size: after.size,
                root: after.tree.root(),
                time_ms: now,
            };
            let s = cp.sign(&self.keyring)?;
            batch.checkpoint = Some(AuditCheckpoint {
                size: after.size,
                time_ms: now,
                root: s.checkpoint.root,
                note: s.note().to_string(),
            });
            after.last_cp = Some((after.size, now));
            signed = Some(s);
        }
        Ok(Built {
            start: base.size,
            batch,
            receipts,
            signed,
            after,
        })
    }
}

/// The committer's first half (the `rxvault-audit` thread): takes groups
/// off the queue and builds their batches, assuming every batch before
/// commits, so that the next group is sealed and hashed while the writer
/// waits for the previous one's fsync.
struct Builder {
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    /// The log as it will be once every job sent so far is committed.
    spec: Base,
    epoch: u64,
}

/// Groups smaller than this are built only once the writer is free, so
/// that they grow meanwhile: building them costs less than splitting the
/// callers into more, smaller commits (each an fsync). Larger ones are
/// built while the writer writes the previous one.
const PIPELINE_MIN: usize = 256;

impl Builder {
    fn run(mut self, rx: &Receiver<Msg>, writer: Writer) {
        // A rendezvous: the builder runs at most one batch ahead of the
        // writer, and knows when the writer took it.
        let (jobs, job_rx) = crossbeam_channel::bounded::<Job>(0);
        // The writer says when it is done with a job.
        let (idle_tx, idle) = crossbeam_channel::bounded::<()>(1);
        let mut busy = false;
        let handle = std::thread::Builder::new()
            .name("rxvault-audit-write".into())
            .spawn(move || writer.run(&job_rx, &idle_tx));
        let handle = match handle {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the audit writer thread");
                return;
            }
        };
        let poll = self
            .ctx
            .config
            .checkpoint_interval
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        loop {
            let mut appends: Waiters = Vec::new();
            let mut requests = Vec::new();
            match rx.recv_timeout(poll) {
                Ok(m) => sort(m, &mut appends, &mut requests),
                // Idle: a checkpoint may be due by time alone.
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let max = self.ctx.config.max_batch;
            while appends.len() < max {
                match rx.try_recv() {
                    Ok(m) => sort(m, &mut appends, &mut requests),
                    Err(_) => break,
                }
            }
            // A small group waits for the writer, growing meanwhile.
            let mut closed = false;
            while busy && appends.len() < PIPELINE_MIN.min(max) && !closed {
                crossbeam_channel::select! {
                    recv(idle) -> _ => busy = false,
                    recv(rx) -> m => match m {
                        Ok(m) => sort(m, &mut appends, &mut requests),
                        Err(_) => closed = true,
                    },
                }
            }
            if self.shared.epoch.load(Ordering::Acquire) != self.epoch {
                let guard = self.shared.base.lock().unwrap_or_else(|e| e.into_inner());
                (self.epoch, self.spec) = guard.clone();
            }
            let built = self.ctx.build(&self.spec, &appends, !requests.is_empty());
            if let Ok(b) = &built {
                self.spec = b.after.clone();
            }
            let job = Job {
                epoch: self.epoch,
                appends,
                requests,
                built,
            };
            // Tokens left are from jobs before this one.
            while idle.try_recv().is_ok() {}
            if jobs.send(job).is_err() {
                // The writer is gone (it panicked): dropped completers
                // answer Error::Closed.
                break;
            }
            busy = true;
            if closed {
                break;
            }
        }
        drop(jobs);
        if handle.join().is_err() {
            tracing::error!("the audit writer thread panicked");
        }
    }
}

/// The committer's second half (the `rxvault-audit-write` thread): writes
/// each job's batch in one transaction, then answers its callers.
struct Writer {
    store: Arc<dyn AuditStore>,
    ctx: Arc<Ctx>,
    /// The log as committed.
    base: Base,
    epoch: u64,
    shared: Arc<Shared>,
    /// Told the committed end after every commit (the live stream).
    hub: Arc<Hub>,
}

impl Writer {
    fn run(mut self, jobs: &Receiver<Job>, idle: &crossbeam_channel::Sender<()>) {
        for job in jobs {
            self.handle(job);
            let _ = idle.try_send(());
        }
    }

    fn handle(&mut self, job: Job) {
        let Job {
            epoch,
            appends,
            requests,
            built,
        } = job;
        let built = match built {
            Ok(b) if epoch == self.epoch && b.start == self.base.size => b,
            // Built on a log that did not come to be: build again here.
            _ => {
                self.commit(appends, requests);
                self.bump();
                return;
            }
        };
        if built.batch.entries.is_empty() && built.batch.checkpoint.is_none() {
            // Nothing to write: checkpoint requests get the latest one.
            self.answer_requests(requests, None);
            return;
        }
        let Built {
            start,
            batch,
            receipts,
            signed,
            after,
        } = built;
        let mut batch = Some(batch);
        let mut moved = false;
        // The store holds every other appender off from reading the size
        // to the commit.
        let result = self.store.append_with(&mut |size| {
            if size == start {
                batch.take()
            } else {
                moved = true;
                None
            }
        });
        match result {
            Ok(true) => {
                self.base = after;
                self.deliver(appends, receipts, requests, signed);
            }
            Ok(false) if moved => {
                // Another process appended: continue from its tree.
                self.commit(appends, requests);
                self.bump();
            }
            Ok(false) => {
                self.fail(
                    appends,
                    requests,
                    Error::Invalid("the audit batch was not written".into()),
                );
                self.bump();
            }
            Err(e) => {
                self.fail(appends, requests, e.into());
                self.bump();
            }
        }
    }

    /// Publishes the committed log to the builder, whose own view is wrong.
    fn bump(&mut self) {
        self.epoch += 1;
        *self.shared.base.lock().unwrap_or_else(|e| e.into_inner()) =
            (self.epoch, self.base.clone());
        self.shared.epoch.store(self.epoch, Ordering::Release);
    }

    fn deliver(
        &self,
        appends: Waiters,
        receipts: Vec<Receipt>,
        requests: Vec<Completer<SignedCheckpoint>>,
        signed: Option<SignedCheckpoint>,
    ) {
        let size = self.base.size;
        // The stream first: consumers read the entries from the store
        // themselves, so this costs the writer an atomic and a few rings.
        self.hub.publish(size);
        for ((_, completer), mut r) in appends.into_iter().zip(receipts) {
            r.tree_size = size;
            completer.complete(Ok(r));
        }
        self.answer_requests(requests, signed);
    }

    /// Builds and commits in the store's lock (reloading the tree if
    /// another process appended).
    fn commit(&mut self, appends: Waiters, requests: Vec<Completer<SignedCheckpoint>>) {
        let store = self.store.clone();
        let mut failure: Option<Error> = None;
        let mut done: Option<Built> = None;
        let result = store.append_with(&mut |size| {
            if size != self.base.size {
                tracing::info!(size, "audit log grew elsewhere; reloading");
                if let Err(e) = self.reload(size) {
                    failure = Some(e);
                    return None;
                }
            }
            match self.ctx.build(&self.base, &appends, !requests.is_empty()) {
                Ok(mut b) => {
                    let empty = b.batch.entries.is_empty() && b.batch.checkpoint.is_none();
                    let batch = std::mem::take(&mut b.batch);
                    done = Some(b);
                    (!empty).then_some(batch)
                }
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        });
        match (result.map_err(Error::from), failure, done) {
            (Ok(true), _, Some(b)) => {
                self.base = b.after;
                self.deliver(appends, b.receipts, requests, b.signed);
            }
            (Ok(_), Some(e), _) | (Err(e), _, _) => self.fail(appends, requests, e),
            // Nothing to write: checkpoint requests get the latest one.
            (Ok(_), None, _) => self.answer_requests(requests, None),
        }
    }

    fn reload(&mut self, size: u64) -> Result<()> {
        let reader = AuditReader::new(self.store.clone(), None);
        if self.ctx.with_tree {
            self.base.tree = CompactRange::load(&mut reader.subtrees(size), size)?;
        }
        self.base.size = size;
        self.base.last_cp = reader
            .latest_checkpoint()?
            .map(|c| (c.checkpoint.size, c.checkpoint.time_ms));
        Ok(())
    }

    fn answer_requests(
        &self,
        requests: Vec<Completer<SignedCheckpoint>>,
        signed: Option<SignedCheckpoint>,
    ) {
        if requests.is_empty() {
            return;
        }
        let latest = match signed {
            Some(s) => Ok(s),
            None => AuditReader::new(self.store.clone(), None)
                .latest_checkpoint()
                .and_then(|c| c.ok_or_else(|| Error::Invalid("no checkpoint yet".into()))),
        };
        match latest {
            Ok(s) => {
                for c in requests {
                    c.complete(Ok(s.clone()));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for c in requests {
                    c.complete(Err(Error::Commit(e.clone())));
                }
            }
        }
    }

    fn fail(&mut self, appends: Waiters, requests: Vec<Completer<SignedCheckpoint>>, e: Error) {
        tracing::error!(entries = appends.len(), error = %e, "audit commit failed");
        let e = Arc::new(e);
        for (_, c) in appends {
            c.complete(Err(Error::Commit(e.clone())));
        }
        for c in requests {
            c.complete(Err(Error::Commit(e.clone())));
        }
    }
}
