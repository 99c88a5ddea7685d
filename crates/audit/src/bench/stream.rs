//! The live stream's figures, behind `rxvault audit bench-stream`.
//! Measured and returned, never asserted.
//!
//! Per backend (SQLite, and PostgreSQL when given a URL):
//! 1. **append rate, consumers attached or not**: the append benchmark's
//!    pipeline (producer threads with a window in flight each, durable
//!    group commit, the tree) into a new log, with no consumer, then with
//!    `consumers` subscribed (each reading and opening every entry as it is
//!    committed, and storing its position every 50 ms), in the order none, attached, attached,
//!    none, so neither gains from going first. The rate counts the
//!    producers' time only.
//! 2. **commit-to-delivery latency in this process**: from the writer
//!    publishing a commit (just after the store's commit returned) to a
//!    consumer's `recv_batch` returning the entry, for every entry and
//!    every consumer. Under the full load of 1 (the attached runs), and at
//!    a paced rate (`paced_rate` entries/s from the producers).
//! 3. **commit-to-delivery latency across processes**: a child process
//!    (`child_command`, running [`child`]) appends at the paced rate
//!    through its own log; consumers here find its entries by polling
//!    (the default 50 ms). Its commit times and the deliveries here are
//!    both read from the system clock ([`rxvault_model::SystemClock`],
//!    nanoseconds), each as an anchor plus a monotonic offset.

use super::{AppendFigures, TickClock, open_sqlite, synthetic_entry};
use crate::log::{AuditConfig, AuditLog, Pending, Receipt, StoreLocation};
use crate::stream::{StreamOptions, Subscription};
use crate::{Error, Result, io_err};
use rxvault_crypto::kek::LocalKek;
use rxvault_crypto::keyring::{KeyPurpose, WrappedKey};
use rxvault_crypto::{SecretKey, Secrets};
use rxvault_model::{Clock, DekId, SystemClock};
use rxvault_store::PgAuditStore;
use rxvault_store::audit::AuditStore;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct StreamBenchConfig {
    /// A folder to work in (SQLite databases and key files below it).
    pub dir: PathBuf,
    /// Run on SQLite.
    pub sqlite: bool,
    /// Run on PostgreSQL too, at this URL (throwaway schemas, dropped).
    pub postgres: Option<String>,
    /// Entries per append run.
    pub entries: u64,
    /// Producer threads.
    pub producers: usize,
    /// Entries each producer keeps in flight.
    pub window: usize,
    /// Consumers attached.
    pub consumers: usize,
    /// The paced runs' rate (entries/s, all producers together).
    pub paced_rate: u64,
    /// Entries per paced run.
    pub paced_entries: u64,
    /// The command line that runs [`child`] (e.g. `rxvault audit
    /// bench-stream-child`); `None` skips the cross-process run.
    pub child_command: Option<Vec<OsString>>,
}

/// A latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Deliveries measured (entries times consumers).
    pub samples: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

impl Latency {
    fn of(mut nanos: Vec<u64>) -> Option<Self> {
        if nanos.is_empty() {
            return None;
        }
        nanos.sort_unstable();
        let at = |q: usize| Duration::from_nanos(nanos[(nanos.len() - 1) * q / 100]);
        Some(Self {
            samples: nanos.len() as u64,
            p50: at(50),
            p99: at(99),
            max: at(100),
        })
    }

    fn text(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} deliveries)",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.samples
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One backend's figures.
#[derive(Debug, Clone)]
pub struct BackendFigures {
    /// `SQLite` or `PostgreSQL`.
    pub backend: &'static str,
    /// No consumer (both runs together).
    pub alone: AppendFigures,
    /// Consumers attached (both runs together).
    pub attached: AppendFigures,
    /// In-process latency under the full load of the attached runs.
    pub loaded: Option<Latency>,
    /// In-process latency at the paced rate.
    pub paced: Option<Latency>,
    /// Cross-process latency at the paced rate.
    pub cross_process: Option<Latency>,
}

/// A batch delivered: indexes `from..to` at one instant.
type Delivered = (u64, u64, Instant);

/// A fresh store per run, and how another process finds it.
enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

struct Fresh {
    store: Arc<dyn AuditStore>,
    location: StoreLocation,
    /// The PostgreSQL schema to drop afterwards.
    drop: Option<(String, String)>,
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    fn fresh(&self, run: &str) -> Result<Fresh> {
        match self {
            Backend::Sqlite(dir) => {
                let dir = dir.join(run);
                Ok(Fresh {
                    store: open_sqlite(&dir)?,
                    location: StoreLocation::Sqlite { dir },
                    drop: None,
                })
            }
            Backend::Postgres(url) => {
                let schema = format!("rxvault_bench_stream_{}_{run}", std::process::id());
                drop_schema(url, &schema)?;
                Ok(Fresh {
                    store: Arc::new(PgAuditStore::open(url, &schema)?),
                    location: StoreLocation::Postgres {
                        url: url.clone(),
                        schema: schema.clone(),
                    },
                    drop: Some((url.clone(), schema)),
                })
            }
        }
    }
}

impl Fresh {
    fn remove(self) -> Result<()> {
        let Fresh {
            store,
            location,
            drop: pg,
        } = self;
        drop(store);
        match (location, pg) {
            (_, Some((url, schema))) => drop_schema(&url, &schema),
            (StoreLocation::Sqlite { dir }, None) => {
                std::fs::remove_dir_all(&dir).map_err(io_err(dir.display().to_string()))
            }
            _ => Ok(()),
        }
    }
}

fn drop_schema(url: &str, schema: &str) -> Result<()> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| Error::Store(rxvault_store::Error::Postgres(e)))?;
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
        schema.replace('"', "\"\"")
    ))
    .map_err(|e| Error::Store(rxvault_store::Error::Postgres(e)))
}

fn config() -> AuditConfig {
    let mut c = AuditConfig::for_vault("bench");
    c.checkpoint_every = 100_000;
    c
}

fn tick_clock() -> Arc<TickClock> {
    Arc::new(TickClock {
        start: time::macros::datetime!(2026-11-28 08:00 UTC),
        ticks: AtomicU64::new(0),
    })
}

/// Sleeps until `at`.
fn until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

/// The producers of a run: `entries` synthetic entries from `producers`
/// threads with `window` in flight each, at `rate` entries/s if paced.
/// Returns the time they took.
fn produce(
    log: &AuditLog,
    entries: u64,
    producers: usize,
    window: usize,
    rate: Option<u64>,
) -> Result<Duration> {
    let producers = producers.max(1) as u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    let mut inflight: VecDeque<Pending<Receipt>> = VecDeque::new();
                    let mut i = t;
                    while i < entries {
                        if let Some(r) = rate {
                            until(start + Duration::from_nanos(i * 1_000_000_000 / r.max(1)));
                        }
                        inflight.push_back(log.submit(synthetic_entry(i))?);
                        if inflight.len() >= window.max(1) {
                            inflight.pop_front().expect("non-empty").wait()?;
                        }
                        i += producers;
                    }
                    for p in inflight {
                        p.wait()?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("producer thread"))
    })?;
    Ok(start.elapsed())
}

/// How often the benchmark's consumers store their position (a consumer
/// checkpointing its progress; each acknowledgement is a write to the
/// audit store).
const ACK_EVERY: Duration = Duration::from_millis(50);

/// A consumer that reads, opens and acknowledges `entries` entries,
/// noting when each batch came.
fn consume(mut sub: Subscription, entries: u64) -> Result<Vec<Delivered>> {
    let mut out = Vec::new();
    let mut acked = Instant::now();
    while sub.next_index() < entries {
        let batch = sub.recv_batch(usize::MAX, Duration::from_millis(200))?;
        let at = Instant::now();
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            out.push((first.index, last.index + 1, at));
            if at.duration_since(acked) >= ACK_EVERY || last.index + 1 >= entries {
                sub.ack(last.index)?;
                acked = at;
            }
        }
    }
    Ok(out)
}

/// Latencies (ns) of `delivered` against the commits (end, when) they
/// belong to (the first commit whose end is past the index).
fn latencies<T: Copy>(
    commits: &[(u64, T)],
    delivered: &[(u64, u64, T)],
    between: impl Fn(T, T) -> u64,
) -> Vec<u64> {
    let mut out = Vec::new();
    for &(from, to, at) in delivered {
        for index in from..to {
            let k = commits.partition_point(|(end, _)| *end <= index);
            if let Some(&(_, committed)) = commits.get(k) {
                out.push(between(committed, at));
            }
        }
    }
    out
}

/// One run in this process: append with `consumers` attached (paced or
/// not); the producers' figures and, with consumers, the latencies.
fn run_once(
    fresh: &Fresh,
    keyring: &Secrets,
    cfg: &StreamBenchConfig,
    entries: u64,
    consumers: usize,
    rate: Option<u64>,
) -> Result<(AppendFigures, Option<Latency>)> {
    let log = AuditLog::start(
        fresh.store.clone(),
        keyring.clone(),
        tick_clock(),
        config(),
        true,
    )?;
    log.hub().record_commits();
    let subs = (0..consumers)
        .map(|k| log.subscribe(&format!("bench-{k}")))
        .collect::<Result<Vec<_>>>()?;
    let (elapsed, delivered) = std::thread::scope(|s| -> Result<_> {
        let handles: Vec<_> = subs
            .into_iter()
            .map(|sub| s.spawn(move || consume(sub, entries)))
            .collect();
        let elapsed = produce(&log, entries, cfg.producers, cfg.window, rate);
        let delivered: Vec<Result<Vec<Delivered>>> = handles
            .into_iter()
            .map(|h| h.join().expect("consumer thread"))
            .collect();
        Ok((elapsed?, delivered))
    })?;
    let commits = log.hub().take_commits();
    log.close()?;
    let mut nanos = Vec::new();
    for d in delivered {
        nanos.extend(latencies(&commits, &d?, |c: Instant, a: Instant| {
            a.saturating_duration_since(c).as_nanos() as u64
        }));
    }
    let commit_count = commits.len() as u64;
    Ok((
        AppendFigures {
            entries,
            elapsed,
            commits: commit_count,
        },
        Latency::of(nanos),
    ))
}

fn add(sum: &mut AppendFigures, f: &AppendFigures) {
    sum.entries += f.entries;
    sum.elapsed += f.elapsed;
    sum.commits += f.commits;
}

/// Runs everything in `cfg`, printing progress with `say`.
pub fn run(cfg: &StreamBenchConfig, say: &mut dyn FnMut(&str)) -> Result<Vec<BackendFigures>> {
    let mut backends = Vec::new();
    if cfg.sqlite {
        backends.push(Backend::Sqlite(cfg.dir.join("sqlite")));
    }
    if let Some(url) = &cfg.postgres {
        backends.push(Backend::Postgres(url.clone()));
    }
    let mut out = Vec::new();
    for backend in backends {
        let keys = cfg.dir.join(format!("keys-{}", backend.name()));
        let keyring = shared_keyring(&keys)?;
        say(&format!(
            "{}: append {} entries, {} producers x {} in flight, with no consumer and with {} \
             (each reading and opening every entry, storing its position every 50 ms), \
             in the order none, \
             attached, attached, none, each into a new log",
            backend.name(),
            cfg.entries,
            cfg.producers,
            cfg.window,
            cfg.consumers
        ));
        let zero = AppendFigures {
            entries: 0,
            elapsed: Duration::ZERO,
            commits: 0,
        };
        let (mut alone, mut attached) = (zero, zero);
        let mut loaded = Vec::new();
        for (round, consumers) in [0, cfg.consumers, cfg.consumers, 0].into_iter().enumerate() {
            let fresh = backend.fresh(&format!("r{round}"))?;
            let (f, lat) = run_once(&fresh, &keyring, cfg, cfg.entries, consumers, None)?;
            fresh.remove()?;
            say(&format!(
                "  {} consumers: {:.0} entries/s ({:.2} s, {} commits){}",
                consumers,
                f.rate(),
                f.elapsed.as_secs_f64(),
                f.commits,
                lat.map(|l| format!("; latency under this load {}", l.text()))
                    .unwrap_or_default()
            ));
            add(
                if consumers == 0 {
                    &mut alone
                } else {
                    &mut attached
                },
                &f,
            );
            loaded.extend(lat);
        }
        say(&format!(
            "  attached {:.0} entries/s, none {:.0} (both runs of each): {:.1}% of the rate alone",
            attached.rate(),
            alone.rate(),
            100.0 * attached.rate() / alone.rate()
        ));
        // The loaded latency: the worse of the two attached runs.
        let loaded = loaded.into_iter().max_by_key(|l| l.p99);

        let fresh = backend.fresh("paced")?;
        let (_, paced) = run_once(
            &fresh,
            &keyring,
            cfg,
            cfg.paced_entries,
            cfg.consumers,
            Some(cfg.paced_rate),
        )?;
        fresh.remove()?;
        say(&format!(
            "  in-process latency at {} entries/s, {} consumers: {}",
            cfg.paced_rate,
            cfg.consumers,
            paced.map(|l| l.text()).unwrap_or_default()
        ));

        let cross_process = match &cfg.child_command {
            Some(cmd) => {
                let fresh = backend.fresh("xproc")?;
                let lat = cross_process(&fresh, &keyring, &keys, cmd, cfg);
                fresh.remove()?;
                let lat = lat?;
                say(&format!(
                    "  cross-process latency at {} entries/s (a second process appends; \
                     {} consumers here poll every {} ms): {}",
                    cfg.paced_rate,
                    cfg.consumers,
                    StreamOptions::default().poll_interval.as_millis(),
                    lat.map(|l| l.text()).unwrap_or_default()
                ));
                lat
            }
            None => None,
        };
        out.push(BackendFigures {
            backend: backend.name(),
            alone,
            attached,
            loaded,
            paced,
            cross_process,
        });
    }
    Ok(out)
}

// ------------------------------------------------------- cross-process

/// Unix nanoseconds now, from the system clock through [`Clock`], and the
/// instant it was read at: later instants convert with [`wall`].
fn anchor() -> (i128, Instant) {
    let at = Instant::now();
    (SystemClock.now().unix_timestamp_nanos(), at)
}

fn wall(anchor: (i128, Instant), at: Instant) -> i128 {
    anchor.0 + at.saturating_duration_since(anchor.1).as_nanos() as i128
}

fn cross_process(
    fresh: &Fresh,
    keyring: &Secrets,
    keys: &Path,
    cmd: &[OsString],
    cfg: &StreamBenchConfig,
) -> Result<Option<Latency>> {
    let entries = cfg.paced_entries;
    let subs = (0..cfg.consumers)
        .map(|k| {
            Subscription::open(
                fresh.store.clone(),
                keyring.clone(),
                &format!("bench-x{k}"),
                StreamOptions::default(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| Error::Invalid("an empty child command".into()))?;
    let mut c = Command::new(program);
    c.args(args)
        .arg("--keys")
        .arg(keys)
        .args(["--entries", &entries.to_string()])
        .args(["--rate", &cfg.paced_rate.to_string()])
        .args(["--producers", &cfg.producers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match &fresh.location {
        StoreLocation::Sqlite { dir } => {
            c.arg("--sqlite").arg(dir);
        }
        StoreLocation::Postgres { url, schema } => {
            // The URL may carry a password: not on the command line.
            c.args(["--pg-schema", schema]).env(CHILD_PG_URL, url);
        }
    }
    let mut child = c
        .spawn()
        .map_err(io_err("starting the appending process"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut next_line = || -> Result<String> {
        lines
            .next()
            .ok_or_else(|| Error::Invalid("the appending process ended early".into()))?
            .map_err(io_err("reading the appending process"))
    };
    while next_line()? != "ready" {}
    // Its data key, stored before it said ready.
    for w in read_keys(keys)? {
        if w.purpose == KeyPurpose::Data && !keyring.has_dek(w.id) {
            keyring.load(&w)?;
        }
    }
    let here = anchor();
    let (delivered, commits) = std::thread::scope(|s| -> Result<_> {
        let handles: Vec<_> = subs
            .into_iter()
            .map(|sub| s.spawn(move || consume(sub, entries)))
            .collect();
        writeln!(child.stdin.take().expect("piped"), "go")
            .map_err(io_err("starting the appending process"))?;
        let mut commits: Vec<(u64, i128)> = Vec::new();
        loop {
            let line = next_line()?;
            if line == "done" {
                break;
            }
            let mut w = line.split(' ');
            if w.next() == Some("commit")
                && let (Some(Ok(end)), Some(Ok(ns))) =
                    (w.next().map(str::parse), w.next().map(str::parse))
            {
                commits.push((end, ns));
            }
        }
        let delivered: Vec<Result<Vec<Delivered>>> = handles
            .into_iter()
            .map(|h| h.join().expect("consumer thread"))
            .collect();
        Ok((delivered, commits))
    })?;
    let status = child.wait().map_err(io_err("the appending process"))?;
    if !status.success() {
        return Err(Error::Invalid(format!(
            "the appending process failed ({status})"
        )));
    }
    let mut nanos = Vec::new();
    for d in delivered {
        let d: Vec<(u64, u64, i128)> = d?
            .into_iter()
            .map(|(f, t, at)| (f, t, wall(here, at)))
            .collect();
        nanos.extend(latencies(&commits, &d, |c: i128, a: i128| {
            u64::try_from(a - c).unwrap_or(0)
        }));
    }
    Ok(Latency::of(nanos))
}

/// The environment variable that hands the child the PostgreSQL URL.
pub const CHILD_PG_URL: &str = "RXVAULT_BENCH_PG_URL";

/// What the appending child process does.
#[derive(Debug, Clone)]
pub struct ChildArgs {
    /// The key files the benchmark wrote.
    pub keys: PathBuf,
    /// The log.
    pub location: StoreLocation,
    /// Entries to append.
    pub entries: u64,
    /// At this rate (entries/s).
    pub rate: u64,
    /// From this many threads.
    pub producers: usize,
}

/// The cross-process run's other process: opens the log at
/// `args.location` with the benchmark's keys (and a data key of its own,
/// stored for the benchmark), says `ready`, waits for a line on `input`,
/// appends at the paced rate, then writes `commit <end> <unix ns>` for
/// each of its commits and `done`.
pub fn child(args: &ChildArgs, input: &mut dyn BufRead, output: &mut dyn Write) -> Result<()> {
    let keyring = Secrets::open(
        "bench",
        Box::new(LocalKek::new(
            1,
            SecretKey::from_bytes(read_kek(&args.keys)?),
        )),
        &read_keys(&args.keys)?,
    )?;
    let dek = keyring.prepare_dek()?;
    write_key(&args.keys, "dek-child", &dek.wrapped)?;
    keyring.activate(dek);
    let store: Arc<dyn AuditStore> = crate::log::open_store(&args.location, false)?.into();
    let log = AuditLog::start(store, keyring, tick_clock(), config(), true)?;
    log.hub().record_commits();
    let out = |o: &mut dyn Write, text: &str| -> Result<()> {
        writeln!(o, "{text}")
            .and_then(|()| o.flush())
            .map_err(io_err("writing to the benchmark"))
    };
    out(output, "ready")?;
    let mut go = String::new();
    input
        .read_line(&mut go)
        .map_err(io_err("reading from the benchmark"))?;
    let here = anchor();
    produce(&log, args.entries, args.producers, 64, Some(args.rate))?;
    let commits = log.hub().take_commits();
    log.close()?;
    let mut text = String::new();
    for (end, at) in commits {
        text.push_str(&format!("commit {end} {}\n", wall(here, at)));
    }
    text.push_str("done");
    out(output, &text)
}

// -------------------------------------------------------------- keys

/// A keyring whose KEK and wrapped keys are written to `dir`, so that the
/// child process opens the same vault's keys (synthetic data only).
fn shared_keyring(dir: &Path) -> Result<Secrets> {
    std::fs::create_dir_all(dir).map_err(io_err(dir.display().to_string()))?;
    let mut kek = [0u8; 32];
    for chunk in kek.chunks_mut(8) {
        let r =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        chunk.copy_from_slice(&r.to_be_bytes());
    }
    let path = dir.join("kek");
    std::fs::write(&path, hex::encode(kek)).map_err(io_err(path.display().to_string()))?;
    let (ring, index) = Secrets::create(
        "bench",
        Box::new(LocalKek::new(1, SecretKey::from_bytes(kek))),
    )?;
    write_key(dir, "index", &index)?;
    let dek = ring.prepare_dek()?;
    write_key(dir, "dek-bench", &dek.wrapped)?;
    ring.activate(dek);
    let signer = ring.prepare_signer()?;
    write_key(dir, "signer", &signer.wrapped)?;
    ring.install_signer(signer);
    Ok(ring)
}

fn read_kek(dir: &Path) -> Result<[u8; 32]> {
    let path = dir.join("kek");
    let text = std::fs::read_to_string(&path).map_err(io_err(path.display().to_string()))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Invalid("the benchmark's KEK file is malformed".into()))
}

fn write_key(dir: &Path, name: &str, w: &WrappedKey) -> Result<()> {
    let text = format!(
        "{} {} {} {}",
        w.id.0,
        w.purpose.code(),
        w.kek_version,
        hex::encode(&w.wrapped)
    );
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&tmp, text).map_err(io_err(tmp.display().to_string()))?;
    std::fs::rename(&tmp, &path).map_err(io_err(path.display().to_string()))
}

fn read_keys(dir: &Path) -> Result<Vec<WrappedKey>> {
    let bad = || Error::Invalid("a benchmark key file is malformed".into());
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir).map_err(io_err(dir.display().to_string()))? {
        let p = f.map_err(io_err(dir.display().to_string()))?.path();
        if p.extension().is_none_or(|e| e != "key") {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(io_err(p.display().to_string()))?;
        let v: Vec<&str> = text.split(' ').collect();
        let [id, purpose, version, wrapped] = v[..] else {
            return Err(bad());
        };
        out.push(WrappedKey {
            id: DekId(id.parse().map_err(|_| bad())?),
            purpose: purpose
                .parse()
                .ok()
                .and_then(KeyPurpose::from_code)
                .ok_or_else(bad)?,
            kek_version: version.parse().map_err(|_| bad())?,
            wrapped: hex::decode(wrapped).map_err(|_| bad())?,
        });
    }
    Ok(out)
}
