//! `rxvault bench`: measured figures, printed against a baseline run in the
//! same process. Nothing here asserts a speed; BENCHMARKS.md records what
//! it printed and how to reproduce it.
//!
//! `bench ingest`:
//! 1. imports N synthetic patients (all their records) into an encrypted
//!    vault on SQLite, timed;
//! 2. in the same process, inserts the same number of rows, of the same
//!    sizes, with the same number of index entries, into a plain SQLite
//!    database with the same schema, pragmas and batch size: the baseline;
//! 3. prints both rates and their ratio;
//! 4. builds a vault of `--lookup-patients` patients (Patient records only)
//!    and times blind-index lookups: key → token → index → record, and the
//!    same plus decrypting the patient;
//! 5. runs `rxvault import --stats` in child processes on two input sizes
//!    and prints each one's peak RSS.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rusqlite::params;
use rxvault_model::{CategorySet, RecordKind, SystemClock};
use rxvault_vault::import::ImportOptions;
use rxvault_vault::keys::InitKey;
use rxvault_vault::query::Find;
use rxvault_vault::{StoreConfig, Vault};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Encrypted import vs plain SQLite, blind-index lookups, import memory.
    Ingest(IngestArgs),
    /// Authenticated patient reads over HTTPS (vs health checks), login rate.
    Http(crate::bench_http::HttpArgs),
    /// Backup, 1%-change backup, proven restore and verify vs the restic CLI.
    Backup(crate::backup_cmd::BenchArgs),
}

/// Flags of `bench ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Patients imported (with all their records) for the ingest ratio.
    #[arg(long, default_value_t = 10_000)]
    patients: u64,
    /// Patients in the vault the lookups run against (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    lookup_patients: u64,
    /// Lookups timed.
    #[arg(long, default_value_t = 20_000)]
    lookups: u64,
    /// Skip the peak-RSS child runs.
    #[arg(long)]
    no_rss: bool,
    /// Where to work (default: a temporary folder).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest(a) => ingest(a),
        BenchCommand::Http(a) => crate::bench_http::run(a),
        BenchCommand::Backup(a) => crate::backup_cmd::bench(a),
    }
}

fn ingest(a: IngestArgs) -> Result<ExitCode> {
    let work = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::Builder::new().prefix("bench").tempdir_in(d)?
        }
        None => tempfile::Builder::new().prefix("rxvault-bench").tempdir()?,
    };
    let root = work.path();
    let as_of = time::macros::date!(2026 - 11 - 28);
    outln!(
        "rxvault bench ingest: {} patients, {} cores",
        a.patients,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Encrypted import.
    let input = root.join("input");
    let config = rxvault_synth::Config {
        patients: a.patients,
        seed: 7,
        as_of,
    };
    rxvault_synth::write_ndjson(&config, &input, &mut |_| {})?;
    let input_bytes: u64 = rxvault_fhir::read::expand(std::slice::from_ref(&input))?
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let vault_dir = root.join("vault");
    let clock = Arc::new(SystemClock);
    Vault::init(
        &vault_dir,
        StoreConfig::Sqlite,
        InitKey::File(Some(root.join("bench.key"))),
        clock.clone(),
    )?;
    let vault = Vault::open(
        &vault_dir,
        Some(rxvault_vault::KeySource::File(root.join("bench.key"))),
        clock.clone(),
    )?;
    let options = ImportOptions::default();
    let start = Instant::now();
    let report = vault.import_for(
        &rxvault_vault::access::Requester::local(),
        std::slice::from_ref(&input),
        &options,
        &mut (),
    )?;
    let encrypted = start.elapsed();
    let records = report.stored_total();
    outln!(
        "encrypted import : {records} records ({:.1} MB FHIR NDJSON) in {:.2} s = {:.0} records/s, {:.0} patients/s",
        input_bytes as f64 / 1e6,
        encrypted.as_secs_f64(),
        records as f64 / encrypted.as_secs_f64(),
        a.patients as f64 / encrypted.as_secs_f64()
    );

    // 2. The same rows into plain SQLite.
    let shape = Shape::of(&vault_dir.join("vault.db"))?;
    drop(vault);
    let plain = baseline(&root.join("plain.db"), &shape, options.batch_records)?;
    outln!(
        "plain SQLite     : {} rows + {} index entries (same sizes, schema, pragmas, batches) in {:.2} s = {:.0} rows/s",
        shape.rows(),
        shape.tokens(),
        plain.as_secs_f64(),
        shape.rows() as f64 / plain.as_secs_f64()
    );
    outln!(
        "ratio            : encrypted import runs at {:.2}x the speed of plain inserts (goal >= 0.8)",
        plain.as_secs_f64() / encrypted.as_secs_f64()
    );

    // 3. Lookups.
    if a.lookup_patients > 0 {
        lookups(root, a.lookup_patients, a.lookups)?;
    }

    // 4. Peak RSS of the import at two input sizes, in child processes.
    if !a.no_rss {
        for n in [a.patients / 4, a.patients] {
            let (kib, secs) = child_import_rss(root, n.max(1), as_of)?;
            outln!(
                "import peak RSS  : {n:>8} patients -> {:.1} MiB ({secs:.1} s)",
                kib as f64 / 1024.0
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Row counts and sizes of an encrypted vault's tables.
struct Shape {
    /// Per record table: the envelope size of each row.
    tables: Vec<(RecordKind, Vec<u32>)>,
    /// Index entries per record kind.
    tokens: Vec<(i64, i64, u64)>,
}

impl Shape {
    fn of(db: &Path) -> Result<Shape> {
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut tables = Vec::new();
        for kind in RecordKind::ALL {
            let mut stmt =
                conn.prepare(&format!("SELECT length(envelope) FROM {}", kind.table()))?;
            let sizes: Vec<u32> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            tables.push((kind, sizes));
        }
        let mut stmt = conn
            .prepare("SELECT index_kind, record_kind, COUNT(*) FROM blind_index GROUP BY 1, 2")?;
        let tokens = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Shape { tables, tokens })
    }

    fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, s)| s.len() as u64).sum()
    }

    fn tokens(&self) -> u64 {
        self.tokens.iter().map(|(_, _, n)| n).sum()
    }
}

/// Inserts rows of the given shape into a plain SQLite database with the
/// vault's schema, pragmas and batch size; returns the time taken.
fn baseline(db: &Path, shape: &Shape, batch: usize) -> Result<Duration> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
    )?;
    conn.execute_batch(
        "CREATE TABLE blind_index (index_kind BIGINT NOT NULL, token BLOB NOT NULL, record_kind BIGINT NOT NULL, \
         rid BLOB NOT NULL, PRIMARY KEY (index_kind, token, record_kind, rid)) WITHOUT ROWID; \
         CREATE INDEX blind_index_record ON blind_index (record_kind, rid);",
    )?;
    for kind in RecordKind::ALL {
        let t = kind.table();
        conn.execute_batch(&format!(
            "CREATE TABLE {t} (rid BLOB PRIMARY KEY, patient_rid BLOB, dek_id BIGINT NOT NULL, \
             derived BIGINT NOT NULL DEFAULT 0, envelope BLOB NOT NULL, updated_at BIGINT NOT NULL);"
        ))?;
        if kind.has_patient() {
            conn.execute_batch(&format!("CREATE INDEX {t}_patient ON {t} (patient_rid);"))?;
        }
    }
    // Pseudo-random bytes, prepared before the clock starts.
    let mut noise = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let slice = |n: usize, at: usize| -> &[u8] {
        let start = at % (noise.len() - 4096);
        &noise[start..start + n.min(4096)]
    };
    // Spread the index entries over the rows the way the vault has them.
    let mut token_plan: Vec<(RecordKind, i64, u64)> = Vec::new();
    for (index_kind, record_kind, n) in &shape.tokens {
        if let Some(k) = u8::try_from(*record_kind)
            .ok()
            .and_then(RecordKind::from_code)
        {
            token_plan.push((k, *index_kind, *n));
        }
    }
    let start = Instant::now();
    let mut n = 0usize;
    let mut tx = conn.transaction()?;
    for (kind, sizes) in &shape.tables {
        let t = kind.table();
        let rows = sizes.len() as u64;
        let per_row: Vec<(i64, u64)> = token_plan
            .iter()
            .filter(|(k, _, _)| k == kind)
            .map(|(_, ik, total)| (*ik, *total))
            .collect();
        for (i, size) in sizes.iter().enumerate() {
            let rid = key16(u64::from(kind.code()) << 40 | i as u64);
            let patient = key16(1 << 48 | (i as u64 / 8));
            let (rid, patient) = (&rid[..], &patient[..]);
            {
                let mut upsert = tx.prepare_cached(&format!(
                    "INSERT INTO {t} (rid, patient_rid, dek_id, derived, envelope, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (rid) DO UPDATE SET patient_rid = excluded.patient_rid, dek_id = excluded.dek_id, \
                     derived = excluded.derived, envelope = excluded.envelope, updated_at = excluded.updated_at"
                ))?;
                let envelope = slice(*size as usize, i * 101);
                upsert.execute(params![
                    rid,
                    patient,
                    1i64,
                    0i64,
                    envelope,
                    1_700_000_000i64
                ])?;
                tx.prepare_cached("DELETE FROM blind_index WHERE record_kind = ? AND rid = ?")?
                    .execute(params![i64::from(kind.code()), rid])?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO blind_index (index_kind, token, record_kind, rid) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )?;
                for (index_kind, total) in &per_row {
                    // The same total count per index kind, spread evenly.
                    let here = total * (i as u64 + 1) / rows - total * i as u64 / rows;
                    for j in 0..here {
                        let token = key16((*index_kind as u64) << 56 | (i as u64) << 8 | j);
                        insert.execute(params![
                            index_kind,
                            &token[..],
                            i64::from(kind.code()),
                            rid
                        ])?;
                    }
                }
            }
            n += 1;
            if n.is_multiple_of(batch) {
                tx.commit()?;
                tx = conn.transaction()?;
            }
        }
    }
    tx.commit()?;
    Ok(start.elapsed())
}

/// 16 well-mixed bytes from a counter (splitmix64), standing in for the
/// vault's keyed hashes: unique, uniformly spread, cheap.
fn key16(n: u64) -> [u8; 16] {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&mix(n).to_le_bytes());
    out[8..].copy_from_slice(&mix(n ^ 0x5555_5555_5555_5555).to_le_bytes());
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn lookups(root: &Path, patients: u64, count: u64) -> Result<()> {
    let dir = root.join("lookup");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("Patient.ndjson");
    let config = rxvault_synth::Config {
        patients,
        seed: 11,
        as_of: time::macros::date!(2026 - 11 - 28),
    };
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for i in 0..patients {
            let p = rxvault_synth::patient_records(&config, i).patient;
            serde_json::to_writer(&mut w, &rxvault_fhir::map::patient_to_fhir(&p))?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    let clock = Arc::new(SystemClock);
    let vault_dir = dir.join("vault");
    let key = dir.join("lookup.key");
    Vault::init(
        &vault_dir,
        StoreConfig::Sqlite,
        InitKey::File(Some(key.clone())),
        clock.clone(),
    )?;
    let vault = Vault::open(&vault_dir, Some(rxvault_vault::KeySource::File(key)), clock)?;
    let start = Instant::now();
    let local = rxvault_vault::access::Requester::local();
    vault.import_for(
        &local,
        std::slice::from_ref(&file),
        &ImportOptions::default(),
        &mut (),
    )?;
    outln!(
        "lookup vault     : {patients} patients imported in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    std::fs::remove_file(&file).ok();

    let step = (patients / count.max(1)).max(1);
    let queries: Vec<Find> = (0..patients)
        .step_by(step as usize)
        .take(count as usize)
        .enumerate()
        .filter_map(|(n, i)| {
            let p = rxvault_synth::patient_records(&config, i).patient;
            if n % 2 == 0 {
                Some(Find::FamilyBirthDate {
                    family: p.primary_name()?.family.clone()?,
                    birth_date: p.birth_date.clone()?,
                })
            } else {
                Some(Find::Phone(p.phones().next()?.to_string()))
            }
        })
        .collect();
    // What a lookup costs a user: the audited search (index, decrypt the
    // patients found, one audit entry naming them), the only way in.
    let everything = rxvault_vault::access::View::uniform(CategorySet::ALL);
    let mut times = Vec::with_capacity(queries.len());
    let mut found = 0usize;
    for q in &queries {
        let t = Instant::now();
        found += vault.search_patients(&local, &everything, q)?.len();
        times.push(t.elapsed());
    }
    times.sort();
    outln!(
        "lookup audited search  : {} queries over {patients} patients, p50 {:.1} us, p99 {:.1} us, max {:.1} us ({found} matches)",
        times.len(),
        percentile(&times, 0.50).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    );
    Ok(())
}

fn child_import_rss(root: &Path, patients: u64, as_of: time::Date) -> Result<(u64, f64)> {
    let dir = root.join(format!("rss-{patients}"));
    let input = dir.join("input");
    let config = rxvault_synth::Config {
        patients,
        seed: 3,
        as_of,
    };
    rxvault_synth::write_ndjson(&config, &input, &mut |_| {})?;
    let key = dir.join("rss.key");
    let vault_dir = dir.join("vault");
    Vault::init(
        &vault_dir,
        StoreConfig::Sqlite,
        InitKey::File(Some(key.clone())),
        Arc::new(SystemClock),
    )?;
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let out = std::process::Command::new(exe)
        .args(["import", "--stats", "--data"])
        .arg(&vault_dir)
        .arg("--key-file")
        .arg(&key)
        .arg(&input)
        .output()?;
    let secs = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kib = stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS: "))
        .and_then(|l| l.trim_end_matches(" KiB").parse().ok())
        .with_context(|| format!("child import printed no peak RSS: {stdout}"))?;
    std::fs::remove_dir_all(&dir).ok();
    Ok((kib, secs))
}
