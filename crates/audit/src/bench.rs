//! The audit benchmarks behind `rxvault audit bench`. Figures are
//! measured and returned, never asserted.
//!
//! 1. **append**: producer threads keep a window of submitted entries in
//!    flight each (as a server's concurrent requests would), through the
//!    real pipeline: keyed hashes, sealing, durable group commit
//!    (`synchronous=FULL`), with the Merkle tree and checkpoints; and the
//!    same entries, same pipeline and durability, **without the tree** (no
//!    leaf or node hashing, no node rows, no checkpoints), in the same run:
//!    twice each, in the order with, without, without, with, each into a new
//!    database (whichever ran second was measured slower, tree or not).
//! 2. **verify**: a full [`verify`](crate::verify::verify) of the log
//!    written in 1, keyless (recompute the tree) and with the keyring
//!    (also open every body).
//! 3. **query**: a log of `query_entries` entries (written through the same
//!    pipeline), then "which patients did session S see between T1 and T2"
//!    and the same for a user and a host, each timed.
//!
//! The live stream's figures are [`stream`] (`rxvault audit bench-stream`).

pub mod stream;

use crate::entry::{Action, Actor, Entry};
use crate::log::{AuditConfig, AuditLog, Pending, Receipt};
use crate::reader::{AuditReader, Query};
use crate::verify::{VerifyOptions, verify};
use crate::{Result, io_err};
use rxvault_crypto::kek::LocalKek;
use rxvault_crypto::{SecretKey, Secrets};
use rxvault_model::{CategorySet, Clock, FieldCategory, RecordKind, Rid, Timestamp};
use rxvault_store::SqliteAuditStore;
use rxvault_store::audit::{AUDIT_DB_FILE, AuditStore};
use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A folder to work in (databases are created below it).
    pub dir: PathBuf,
    /// Entries appended (with and without the tree).
    pub entries: u64,
    /// Producer threads.
    pub producers: usize,
    /// Entries each producer keeps in flight.
    pub window: usize,
    /// Entries in the log the queries run on (0: skip).
    pub query_entries: u64,
    /// Queries timed per kind.
    pub queries: u32,
}

/// Append figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppendFigures {
    /// Entries appended.
    pub entries: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Group commits (transactions).
    pub commits: u64,
}

impl AppendFigures {
    /// Entries per second.
    pub fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }
}

/// Query figures: (what, hits, patients, time per query).
pub type QueryFigure = (String, u64, u64, Duration);

/// Everything measured.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// With the tree (both runs together).
    pub append: Option<AppendFigures>,
    /// Without the tree (both runs together).
    pub append_without_tree: Option<AppendFigures>,
    /// Keyless verification: entries and time.
    pub verify_keyless: Option<(u64, Duration)>,
    /// Verification opening every body: entries and time.
    pub verify_with_key: Option<(u64, Duration)>,
    /// Size of the query log and the time it took to write.
    pub query_log: Option<AppendFigures>,
    /// The queries.
    pub queries: Vec<QueryFigure>,
}

/// A clock that moves 10 ms per reading: a day of a busy pharmacy in a
/// few seconds, so time ranges in the queries mean something.
#[derive(Debug)]
struct TickClock {
    start: Timestamp,
    ticks: AtomicU64,
}

impl Clock for TickClock {
    fn now(&self) -> Timestamp {
        let t = self.ticks.fetch_add(1, Ordering::Relaxed);
        self.start + Duration::from_millis(10 * t)
    }
}

/// A keyring as a vault would hand it over: a data key and a signing key.
pub fn bench_keyring() -> Result<Secrets> {
    let (ring, _) = Secrets::create("bench", Box::new(LocalKek::new(1, SecretKey::generate()?)))?;
    let dek = ring.prepare_dek()?;
    ring.activate(dek);
    let signer = ring.prepare_signer()?;
    ring.install_signer(signer);
    Ok(ring)
}

/// The synthetic entry `i`: 200 users, sessions of 64 entries, 40 hosts,
/// one patient read per entry out of 100,000 (every 16th a search
/// returning 5).
pub fn synthetic_entry(i: u64) -> Entry {
    let patient = |n: u64| {
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
        r[8..].copy_from_slice(&n.to_be_bytes());
        Rid(r)
    };
    let p = (i.wrapping_mul(7919)) % 100_000;
    let action = if i.is_multiple_of(16) {
        Action::Search {
            query: "family-birth-date".into(),
            results: 5,
            kind: Some(RecordKind::Patient),
            categories: Some(CategorySet::of(&[FieldCategory::Demographics])),
        }
    } else {
        Action::Read {
            kind: Some(RecordKind::Patient),
            categories: CategorySet::of(&[FieldCategory::Demographics, FieldCategory::Contact]),
        }
    };
    let patients: Vec<Rid> = if i.is_multiple_of(16) {
        (0..5).map(|k| patient((p + k * 17) % 100_000)).collect()
    } else {
        vec![patient(p)]
    };
    Entry::new(Actor::user(format!("user{:03}", i % 200)), action)
        .session(format!("session-{:08}", i / 64))
        .host(format!("ws-{:02}", i % 40))
        .source(IpAddr::V4(Ipv4Addr::new(
            10,
            1,
            (i % 40) as u8,
            (i % 200) as u8,
        )))
        .patients(patients)
}

fn open_sqlite(dir: &Path) -> Result<Arc<dyn AuditStore>> {
    std::fs::create_dir_all(dir).map_err(io_err(dir.display().to_string()))?;
    Ok(Arc::new(SqliteAuditStore::open(
        &dir.join(AUDIT_DB_FILE),
        true,
    )?))
}

/// Appends `entries` synthetic entries through a log with (or without)
/// the tree, from `producers` threads with `window` entries in flight each.
pub fn append(
    dir: &Path,
    keyring: Secrets,
    entries: u64,
    producers: usize,
    window: usize,
    tree: bool,
) -> Result<AppendFigures> {
    let store = open_sqlite(dir)?;
    let clock = Arc::new(TickClock {
        start: time::macros::datetime!(2026-11-28 08:00 UTC),
        ticks: AtomicU64::new(0),
    });
    let mut config = AuditConfig::for_vault("bench");
    config.checkpoint_every = 100_000;
    let log = AuditLog::start(store, keyring, clock, config, tree)?;
    let producers = producers.max(1) as u64;
    let start = Instant::now();
    let sizes: Vec<HashSet<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|t| {
                let log = &log;
                s.spawn(move || -> Result<HashSet<u64>> {
                    let mut inflight: VecDeque<Pending<Receipt>> = VecDeque::new();
                    let mut sizes = HashSet::new();
                    let mut i = t;
                    while i < entries {
                        inflight.push_back(log.submit(synthetic_entry(i))?);
                        if inflight.len() >= window.max(1) {
                            let r = inflight.pop_front().expect("non-empty").wait()?;
                            sizes.insert(r.tree_size);
                        }
                        i += producers;
                    }
                    for p in inflight {
                        sizes.insert(p.wait()?.tree_size);
                    }
                    Ok(sizes)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("producer thread"))
            .collect::<Result<Vec<_>>>()
    })?;
    let elapsed = start.elapsed();
    log.close()?;
    let commits = sizes.into_iter().flatten().collect::<HashSet<_>>().len() as u64;
    Ok(AppendFigures {
        entries,
        elapsed,
        commits,
    })
}

/// Runs everything in `config`, printing progress with `say`.
pub fn run(config: &BenchConfig, say: &mut dyn FnMut(&str)) -> Result<Figures> {
    let mut figures = Figures::default();
    let keyring = bench_keyring()?;
    let with = config.dir.join("with-tree");
    if config.entries > 0 {
        say(&format!(
            "append: {} entries, {} producers x {} in flight, synchronous=FULL; \
             with and without the tree in the order with, without, without, with \
             (each into a new database), so neither gains from going first",
            config.entries, config.producers, config.window
        ));
        let mut runs = Vec::new();
        for (round, tree) in [true, false, false, true].into_iter().enumerate() {
            let dir = if round == 0 {
                with.clone()
            } else {
                config.dir.join(format!("round-{round}"))
            };
            let f = append(
                &dir,
                keyring.clone(),
                config.entries,
                config.producers,
                config.window,
                tree,
            )?;
            say(&format!(
                "  {}: {:.0} entries/s ({:.2} s, {} commits, {:.0} entries/commit)",
                if tree { "with tree   " } else { "without tree" },
                f.rate(),
                f.elapsed.as_secs_f64(),
                f.commits,
                f.entries as f64 / f.commits.max(1) as f64
            ));
            if round > 0 {
                std::fs::remove_dir_all(&dir).map_err(io_err(dir.display().to_string()))?;
            }
            runs.push((tree, f));
        }
        let total = |tree: bool| {
            let mut sum = AppendFigures {
                entries: 0,
                elapsed: Duration::ZERO,
                commits: 0,
            };
            for (_, f) in runs.iter().filter(|(t, _)| *t == tree) {
                sum.entries += f.entries;
                sum.elapsed += f.elapsed;
                sum.commits += f.commits;
            }
            sum
        };
        let (a, b) = (total(true), total(false));
        say(&format!(
            "  with tree {:.0} entries/s, without {:.0} (both runs of each); the tree costs {:.0}%",
            a.rate(),
            b.rate(),
            100.0 * (1.0 - a.rate() / b.rate())
        ));
        figures.append = Some(a);
        figures.append_without_tree = Some(b);

        let store = open_sqlite(&with)?;
        let start = Instant::now();
        let r = verify(store.as_ref(), &VerifyOptions::default())?;
        let keyless = start.elapsed();
        say(&format!(
            "verify, keyless : {} entries in {:.2} s = {:.0} entries/s ({} nodes, {} checkpoints)",
            r.entries,
            keyless.as_secs_f64(),
            r.entries as f64 / keyless.as_secs_f64(),
            r.nodes_checked,
            r.stored_checkpoints
        ));
        let start = Instant::now();
        let r = verify(
            store.as_ref(),
            &VerifyOptions {
                keyring: Some(keyring.clone()),
                ..Default::default()
            },
        )?;
        let keyed = start.elapsed();
        say(&format!(
            "verify, with key: {} entries in {:.2} s = {:.0} entries/s (every body opened); {}",
            r.entries,
            keyed.as_secs_f64(),
            r.entries as f64 / keyed.as_secs_f64(),
            if r.ok() {
                "no problems"
            } else {
                "PROBLEMS FOUND"
            }
        ));
        figures.verify_keyless = Some((r.entries, keyless));
        figures.verify_with_key = Some((r.entries, keyed));
    }
    if config.query_entries > 0 {
        let dir = config.dir.join("query");
        say(&format!(
            "query log: writing {} entries ...",
            config.query_entries
        ));
        let q = append(
            &dir,
            keyring.clone(),
            config.query_entries,
            config.producers,
            config.window,
            true,
        )?;
        say(&format!(
            "  written at {:.0} entries/s ({:.1} s)",
            q.rate(),
            q.elapsed.as_secs_f64()
        ));
        figures.query_log = Some(q);
        let reader = AuditReader::new(open_sqlite(&dir)?, Some(keyring.clone()));
        let day_start = crate::unix_ms(time::macros::datetime!(2026-11-28 08:00 UTC));
        let span_ms = (config.query_entries * 10) as i64;
        let n = u64::from(config.queries.max(1));
        let total = config.query_entries;
        type MakeQuery = Box<dyn Fn(u64) -> Query>;
        let kinds: Vec<(&str, MakeQuery)> = vec![
            (
                "session S, T1..T2",
                Box::new(move |k| Query {
                    session: Some(format!(
                        "session-{:08}",
                        (k * 7_777_777) % (total / 64).max(1)
                    )),
                    from_ms: Some(day_start),
                    to_ms: Some(day_start + span_ms),
                    ..Default::default()
                }),
            ),
            (
                "user U, a 10-minute window",
                Box::new(move |k| {
                    let from = day_start + ((k * 104_729) as i64 % span_ms.max(1));
                    Query {
                        user: Some(format!("user{:03}", k % 200)),
                        from_ms: Some(from),
                        to_ms: Some(from + 600_000),
                        ..Default::default()
                    }
                }),
            ),
            (
                "host H, a 10-minute window",
                Box::new(move |k| {
                    let from = day_start + ((k * 15_485_863) as i64 % span_ms.max(1));
                    Query {
                        host: Some(format!("ws-{:02}", k % 40)),
                        from_ms: Some(from),
                        to_ms: Some(from + 600_000),
                        ..Default::default()
                    }
                }),
            ),
        ];
        for (what, make) in kinds {
            let mut hits = 0u64;
            let mut patients = 0u64;
            let start = Instant::now();
            for k in 0..n {
                let q = make(k + 1);
                hits += reader.query_stored(&q)?.len() as u64;
                patients += reader.patients_seen(&q)?.len() as u64;
            }
            // Each iteration ran the indexed query twice (entries, then
            // patients): halve for the time of one.
            let per = start.elapsed() / (2 * n as u32);
            say(&format!(
                "query {what:<28}: {:.2} ms per query over {} entries ({:.0} entries, {:.0} patients per answer)",
                per.as_secs_f64() * 1e3,
                config.query_entries,
                hits as f64 / n as f64,
                patients as f64 / n as f64
            ));
            figures
                .queries
                .push((what.to_string(), hits / n, patients / n, per));
        }
    }
    Ok(figures)
}
