//! Real-time detection on the vault's audit log, and automatic response.
//!
//! The audit log is the event stream: every read, search, write, export
//! and sign-in is an entry, delivered live (`rxvault_audit::stream`) in
//! index order. The [`engine`] turns entries into findings by the
//! [`rules`] (data: a TOML file over shipped defaults); the [`Detector`]
//! groups findings into [`alerts`], takes each rule's response at once
//! through a [`Responder`] (ending a session, requiring step-up, disabling
//! an account, cutting a host off: `rxvault_auth`, audited), stores the
//! alerts sealed and owes each [`sinks`] sink a delivery.
//!
//! - **Nothing missed, nothing twice.** The engine's state is snapshotted
//!   (sealed) with the index it has processed up to; a restarted detector
//!   replays the stream from there, so its baselines and windows are what
//!   they would have been. Alerts, their deliveries and `alerted_through`
//!   commit in one transaction; findings of entries below
//!   `alerted_through` are dropped on replay.
//! - **No HTTP here**: the webhook sink lives in the server crate; this
//!   crate defines [`sinks::Sink`].
//! - **No PHI leaves**: alerts name accounts, hosts and counts, never a
//!   patient; sinks get [`alerts::Alert::notice`].
//!
//! [`honeytokens`] are decoy patients only the detector knows.

pub mod alerts;
pub mod engine;
pub mod honeytokens;
pub mod respond;
pub mod rules;
pub mod sinks;

pub use alerts::{Alert, Status};
pub use engine::{DETECTOR_ACTOR, Engine, Finding, Principal, State};
pub use respond::{AuthResponder, Responder, Target};
pub use rules::{Response, Rules, Severity};

use rxvault_audit::LoggedEntry;
use rxvault_crypto::Secrets;
use rxvault_model::Clock;
use rxvault_store::DetectStore;
use rxvault_store::detect::{AlertCommit, OutboxItem};
use std::collections::HashMap;
use std::sync::Arc;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store.
    #[error(transparent)]
    Store(#[from] rxvault_store::Error),
    /// Sealing or opening.
    #[error(transparent)]
    Crypto(#[from] rxvault_crypto::Error),
    /// A stored value that does not decode.
    #[error("detection data is corrupt: {0}")]
    Corrupt(String),
    /// The rules.
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    /// A bad request (an unknown alert, a bad status change).
    #[error("{0}")]
    Invalid(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How often the engine's state is snapshotted (entries).
const SNAPSHOT_ENTRIES: u64 = 200_000;
/// ... or time (ms), whichever first, when anything changed.
const SNAPSHOT_MS: i64 = 30_000;

/// The detector: engine, store, responder, sinks' names.
pub struct Detector {
    engine: Engine,
    store: Arc<dyn DetectStore>,
    secrets: Secrets,
    clock: Arc<dyn Clock>,
    responder: Option<Arc<dyn Responder>>,
    sinks: Vec<String>,
    alerted_through: u64,
    since_snapshot: u64,
    snapshot_ms: i64,
    /// Findings not yet stored (their commit failed): the engine has moved
    /// past their entries, so they are kept to be stored with the next
    /// batch rather than lost.
    unrecorded: Vec<Finding>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("position", &self.position())
            .field("alerted_through", &self.alerted_through)
            .field("sinks", &self.sinks)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Opens the detector: its state snapshot (or a fresh state), the
    /// honeytokens, the rules; `sinks` are the names deliveries are owed
    /// to; `responder` takes responses (`None`: alerts only, as a replay).
    pub fn open(
        store: Arc<dyn DetectStore>,
        secrets: Secrets,
        clock: Arc<dyn Clock>,
        rules: Rules,
        zone: jiff::tz::TimeZone,
        sinks: Vec<String>,
        responder: Option<Arc<dyn Responder>>,
    ) -> Result<Detector> {
        let state = match store.state()? {
            Some((next, sealed)) => {
                let json = secrets.open_blob(STATE_DOMAIN, &next.to_be_bytes(), &sealed)?;
                serde_json::from_slice::<State>(&json)
                    .map_err(|e| Error::Corrupt(format!("detector state: {e}")))?
            }
            None => State::default(),
        };
        let honey = honeytokens::load(store.as_ref(), &secrets)?;
        let engine = Engine::new(rules, zone, honey, state).map_err(Error::Invalid)?;
        let alerted_through = store.alerted_through()?;
        let now = now_ms(clock.as_ref());
        Ok(Detector {
            engine,
            store,
            secrets,
            clock,
            responder,
            sinks,
            alerted_through,
            since_snapshot: 0,
            snapshot_ms: now,
            unrecorded: Vec::new(),
        })
    }

    /// The first index not yet processed: the stream resumes here.
    pub fn position(&self) -> u64 {
        self.engine.state().next_index
    }

    /// The engine (rules, statistics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Processes a batch of entries in index order: findings become alerts
    /// (grouped), responses are taken, everything is committed; returns
    /// the alerts created or changed.
    pub fn handle(&mut self, entries: &[LoggedEntry]) -> Result<Vec<Alert>> {
        let mut findings = std::mem::take(&mut self.unrecorded);
        for e in entries {
            self.engine.process(e, &mut findings);
        }
        self.since_snapshot += entries.len() as u64;
        let changed = self.record_or_keep(findings)?;
        self.maybe_snapshot()?;
        Ok(changed)
    }

    /// Stores findings; on failure keeps them for the next call (and says
    /// so), since their entries will not be processed again.
    fn record_or_keep(&mut self, findings: Vec<Finding>) -> Result<Vec<Alert>> {
        match self.record(findings.clone()) {
            Ok(changed) => Ok(changed),
            Err(e) => {
                self.unrecorded = findings;
                Err(e)
            }
        }
    }

    /// Decides reads waiting for an explanation by the clock (the stream
    /// may be idle), and snapshots when due.
    pub fn tick(&mut self) -> Result<Vec<Alert>> {
        let mut findings = std::mem::take(&mut self.unrecorded);
        self.engine.tick(now_ms(self.clock.as_ref()), &mut findings);
        let changed = self.record_or_keep(findings)?;
        self.maybe_snapshot()?;
        Ok(changed)
    }

    fn maybe_snapshot(&mut self) -> Result<()> {
        let now = now_ms(self.clock.as_ref());
        if self.since_snapshot >= SNAPSHOT_ENTRIES
            || (self.since_snapshot > 0 && now - self.snapshot_ms >= SNAPSHOT_MS)
        {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Writes the state snapshot now (also on shutdown). Not while
    /// findings wait to be stored: the snapshot would move past their
    /// entries, and a restart would not find them again.
    pub fn snapshot(&mut self) -> Result<()> {
        if !self.unrecorded.is_empty() {
            return Ok(());
        }
        let next = self.position();
        let json = serde_json::to_vec(self.engine.state())
            .map_err(|e| Error::Corrupt(format!("detector state: {e}")))?;
        let sealed = self
            .secrets
            .seal_blob(STATE_DOMAIN, &next.to_be_bytes(), &json)?;
        let now = now_ms(self.clock.as_ref());
        self.store.save_state(next, &sealed, now)?;
        self.since_snapshot = 0;
        self.snapshot_ms = now;
        Ok(())
    }

    fn record(&mut self, findings: Vec<Finding>) -> Result<Vec<Alert>> {
        let through = self.position();
        let fresh: Vec<Finding> = findings
            .into_iter()
            .filter(|f| f.index >= self.alerted_through)
            .collect();
        if fresh.is_empty() {
            if through > self.alerted_through {
                // Nothing fired: only the mark moves (cheaply, not every
                // batch: a replay re-derives findings below it anyway).
                self.alerted_through = through;
            }
            return Ok(Vec::new());
        }
        let now = now_ms(self.clock.as_ref());
        let mut batch: HashMap<[u8; 16], Alert> = HashMap::new();
        let mut order = Vec::new();
        for f in &fresh {
            let group = self.secrets.keyed_hash("detect-group", f.group.as_bytes());
            let alert = match batch.get_mut(&group) {
                Some(a) => {
                    a.add(f);
                    a
                }
                None => {
                    let a = match self
                        .store
                        .open_alert(&group, f.time_ms - alerts::GROUP_WINDOW_MS)?
                    {
                        Some(stored) => {
                            let mut a = Alert::open(&self.secrets, &stored)?;
                            a.add(f);
                            a
                        }
                        None => Alert::new(new_alert_id()?, f),
                    };
                    order.push(group);
                    batch.entry(group).or_insert(a)
                }
            };
            if let Some(responder) = &self.responder {
                respond::take(responder.as_ref(), alert, f, now);
            }
        }
        let mut commit = AlertCommit {
            alerted_through: through,
            ..AlertCommit::default()
        };
        let mut changed = Vec::new();
        for group in order {
            let a = batch.remove(&group).expect("grouped");
            commit.alerts.push(a.seal(&self.secrets, group, now)?);
            for sink in &self.sinks {
                commit.outbox.push(OutboxItem {
                    sink: sink.clone(),
                    alert_id: a.id.clone(),
                    version: a.findings,
                    attempts: 0,
                    next_ms: now,
                    last_error: None,
                });
            }
            tracing::warn!(alert = %a.id, rule = %a.rule, severity = a.severity.name(), findings = a.findings, "detection alert");
            changed.push(a);
        }
        self.store.commit(&commit)?;
        self.alerted_through = through;
        Ok(changed)
    }
}

const STATE_DOMAIN: &str = "detect-state";

/// The clock's time in Unix ms.
pub fn now_ms(clock: &dyn Clock) -> i64 {
    (clock.now().unix_timestamp_nanos() / 1_000_000) as i64
}

fn new_alert_id() -> Result<String> {
    Ok(format!("al-{}", &rxvault_crypto::random_id()?[..16]))
}

/// Alerts as administrators see them: list, show, and the lifecycle.
#[derive(Clone)]
pub struct Alerts {
    store: Arc<dyn DetectStore>,
    secrets: Secrets,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

impl Alerts {
    /// Over `store`.
    pub fn new(store: Arc<dyn DetectStore>, secrets: Secrets) -> Self {
        Self { store, secrets }
    }

    /// Newest first; only `status` if given.
    pub fn list(&self, status: Option<Status>, limit: u32) -> Result<Vec<Alert>> {
        self.store
            .alerts(status.map(Status::name), limit)?
            .iter()
            .map(|s| Alert::open(&self.secrets, s))
            .collect()
    }

    /// One alert.
    pub fn get(&self, id: &str) -> Result<Alert> {
        let s = self
            .store
            .alert(id)?
            .ok_or_else(|| Error::Invalid(format!("no alert {id:?}")))?;
        Alert::open(&self.secrets, &s)
    }

    /// A lifecycle step by `by` with a note: acknowledged, resolved or
    /// false positive (a resolution needs a note; a closed alert does not
    /// reopen, a new finding opens a new one).
    pub fn set_status(
        &self,
        id: &str,
        status: Status,
        by: &str,
        note: &str,
        at_ms: i64,
    ) -> Result<Alert> {
        let s = self
            .store
            .alert(id)?
            .ok_or_else(|| Error::Invalid(format!("no alert {id:?}")))?;
        let mut a = Alert::open(&self.secrets, &s)?;
        let closed = matches!(a.status, Status::Resolved | Status::FalsePositive);
        if closed || status == Status::Open {
            return Err(Error::Invalid(format!(
                "alert {id} is {}: it can be {}",
                a.status.name(),
                if closed {
                    "left as it is"
                } else {
                    "acknowledged, resolved or marked a false positive"
                }
            )));
        }
        if matches!(status, Status::Resolved | Status::FalsePositive) && note.trim().is_empty() {
            return Err(Error::Invalid(
                "a resolution needs a note saying what was done".into(),
            ));
        }
        a.status = status;
        a.notes.push(alerts::Note {
            time_ms: at_ms,
            by: by.into(),
            status,
            text: note.trim().into(),
        });
        let group: [u8; 16] = s
            .group
            .as_slice()
            .try_into()
            .map_err(|_| Error::Corrupt(format!("alert {id}: group")))?;
        let sealed = a.seal(&self.secrets, group, at_ms)?;
        self.store
            .update_alert(id, status.name(), &sealed.sealed, at_ms)?;
        Ok(a)
    }

    /// Deliveries owed per sink.
    pub fn owed(&self) -> Result<Vec<(String, u64)>> {
        Ok(self.store.owed()?)
    }
}
