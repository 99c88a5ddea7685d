//! The composition root of a server process: the HTTPS server, scheduled
//! jobs and consumers of the live audit stream, started in one place and
//! stopped together.
//!
//! Later capabilities (detection, backups, agent endpoints) plug in here as
//! a [`Job`] or a [`Consumer`], without touching a handler:
//!
//! - a **job** runs every `every` on the blocking pool (store I/O is
//!   blocking); a run still going when the next is due is not doubled;
//! - a **consumer** gets every committed audit entry in index order on a
//!   thread of its own, from its durable position (a restart resumes where
//!   it acknowledged, see `rxvault_audit::stream`); a batch it handled is
//!   acknowledged, one it failed is offered again after a pause.
//!
//! [`Services::run`] serves until the shutdown future completes, then stops
//! the HTTPS server (in-flight requests finish), tells every consumer to
//! stop, waits for them and for running jobs, and returns.

use crate::Server;
use rxvault_audit::LoggedEntry;
use rxvault_vault::Vault;
use std::sync::Arc;
use std::time::Duration;

/// Scheduled work: `run` every `every`.
pub struct Job {
    /// For logs.
    pub name: &'static str,
    /// How often.
    pub every: Duration,
    /// The work (blocking; errors are logged and the job runs again next
    /// time).
    pub run: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// A consumer of the live audit stream.
pub trait Consumer: Send + 'static {
    /// Its durable name (its position is stored under it): `A-Z a-z 0-9 .
    /// _ -`.
    fn name(&self) -> &str;
    /// Handles a batch of entries, in index order. `Ok` acknowledges them;
    /// an error offers the same batch again after a pause.
    fn handle(&mut self, entries: &[LoggedEntry]) -> Result<(), String>;
    /// Where the consumer resumes when it keeps its own position with its
    /// effect (exactly once: the detector's state snapshot); `None` (the
    /// default) resumes at the position stored under [`name`](Self::name).
    fn resume_from(&self) -> Option<u64> {
        None
    }
    /// Called when no entry came for a while (at most every 200 ms): time
    /// passing can decide things too.
    fn idle(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Called once when the server stops (save what is kept in memory).
    fn stop(&mut self) {}
}

/// The long-running work of a server process.
#[derive(Default)]
pub struct Services {
    jobs: Vec<Job>,
    consumers: Vec<Box<dyn Consumer>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field(
                "jobs",
                &self.jobs.iter().map(|j| j.name).collect::<Vec<_>>(),
            )
            .field(
                "consumers",
                &self
                    .consumers
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How long a consumer waits for entries before checking for shutdown.
const POLL: Duration = Duration::from_millis(200);
/// The pause after a consumer's failure before the batch is offered again.
const RETRY: Duration = Duration::from_secs(1);
/// Entries per batch handed to a consumer.
const BATCH: usize = 1024;

impl Services {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The jobs every server runs: expired sessions and login ceremonies
    /// purged hourly (kept 7 days for the audit's sake).
    pub fn standard(auth: Arc<rxvault_auth::Auth>) -> Self {
        Self::new().job(Job {
            name: "purge-sessions",
            every: Duration::from_secs(3600),
            run: Arc::new(move || {
                auth.purge(Duration::from_secs(7 * 86400))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
        })
    }

    /// Adds a scheduled job.
    pub fn job(mut self, job: Job) -> Self {
        self.jobs.push(job);
        self
    }

    /// Adds a consumer of the live audit stream.
    pub fn consumer(mut self, consumer: impl Consumer) -> Self {
        self.consumers.push(Box::new(consumer));
        self
    }

    /// Serves `server` and runs the jobs and consumers until `shutdown`
    /// completes; then stops everything and waits for it.
    pub async fn run(
        self,
        vault: Arc<Vault>,
        server: Server,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> crate::Result<()> {
        // Consumers: a thread each, subscribed before serving starts.
        let mut threads = Vec::new();
        let mut stops = Vec::new();
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for mut consumer in self.consumers {
            let v = vault.clone();
            let name = consumer.name().to_string();
            let from = consumer.resume_from();
            let subscription = tokio::task::spawn_blocking(move || {
                let log = v.audit()?;
                match from {
                    Some(i) => log.follow(i, rxvault_audit::StreamOptions::default()),
                    None => log.subscribe(&name),
                }
                .map_err(|e| crate::Error::Config(format!("audit stream consumer {name}: {e}")))
            })
            .await
            .map_err(|e| crate::Error::Config(format!("starting a consumer: {e}")))??;
            stops.push(subscription.stop_handle());
            let (v, stopping) = (vault.clone(), stopping.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rxvault-consumer-{}", consumer.name()))
                    .spawn(move || consume(&v, subscription, consumer.as_mut(), &stopping))?,
            );
        }
        // Jobs: a task each; a run goes to the blocking pool.
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for job in self.jobs {
            let mut stopped = jobs_stopped.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(job.every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    let run = job.run.clone();
                    match tokio::task::spawn_blocking(move || run()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(job = job.name, error = %e, "job failed"),
                        Err(e) => tracing::warn!(job = job.name, error = %e, "job panicked"),
                    }
                }
            }));
        }
        let served = server.run(shutdown).await;
        // Shutdown: jobs first (a running one finishes), then consumers.
        let _ = stop_jobs.send(true);
        for task in tasks {
            let _ = task.await;
        }
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        for stop in &stops {
            stop.stop();
        }
        tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    tracing::warn!("a stream consumer panicked");
                }
            }
        })
        .await
        .map_err(|e| crate::Error::Config(format!("stopping consumers: {e}")))?;
        served
    }
}

/// A consumer's loop: batches in index order, acknowledged once handled,
/// until the subscription is stopped.
fn consume(
    vault: &Vault,
    mut subscription: rxvault_audit::Subscription,
    consumer: &mut dyn Consumer,
    stopping: &std::sync::atomic::AtomicBool,
) {
    let name = consumer.name().to_string();
    let own_position = consumer.resume_from().is_some();
    let mut pending: Vec<LoggedEntry> = Vec::new();
    while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
        if pending.is_empty() {
            match subscription.recv_batch(BATCH, POLL) {
                Ok(batch) if batch.is_empty() => {
                    if let Err(e) = consumer.idle() {
                        tracing::warn!(consumer = %name, error = %e, "consumer's idle work failed");
                    }
                    continue;
                }
                Ok(batch) => pending = batch,
                Err(rxvault_audit::Error::Closed) => break,
                Err(e) => {
                    // Most often an entry sealed by another process with a
                    // data key this one has not loaded yet.
                    tracing::warn!(consumer = %name, error = %e, "audit stream read failed; retrying");
                    let _ = vault.reload_data_keys();
                    std::thread::sleep(RETRY);
                    continue;
                }
            }
        }
        let Some(last) = pending.last().map(|e| e.index) else {
            continue;
        };
        match consumer.handle(&pending) {
            Ok(()) => {
                if !own_position && let Err(e) = subscription.ack(last) {
                    tracing::warn!(consumer = %name, error = %e, "acknowledging failed");
                }
                pending.clear();
            }
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "consumer failed; the batch comes again");
                std::thread::sleep(RETRY);
            }
        }
    }
    consumer.stop();
}
