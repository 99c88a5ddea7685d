//! Writing a dataset as FHIR Bulk Data NDJSON files.
//!
//! Patients are generated in fixed-size batches by worker threads and
//! written in index order by the calling thread, so memory stays bounded by
//! a few batches whatever the dataset size, and the files are byte-identical
//! whatever the number of threads: batch `b` always holds patients
//! `b * BATCH .. (b + 1) * BATCH`, and worker `w` makes batches `w`, `w + T`,
//! `w + 2T`, ... which the writer collects round-robin.

use crate::{Config, patient_records};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// The files written, in order: FHIR resource type and file name.
pub const FILES: [(&str, &str); 5] = [
    ("Patient", "Patient.ndjson"),
    ("Coverage", "Coverage.ndjson"),
    ("MedicationRequest", "MedicationRequest.ndjson"),
    ("MedicationDispense", "MedicationDispense.ndjson"),
    ("AllergyIntolerance", "AllergyIntolerance.ndjson"),
];

/// Patients per batch.
const BATCH: u64 = 128;

/// Why a dataset could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating, writing or syncing a file or the output directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The config cannot be generated (see [`Config::validate`]).
    #[error("invalid config: {0}")]
    Config(String),
}

/// One written file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// The FHIR resource type it holds.
    pub resource_type: &'static str,
    /// Its path.
    pub path: PathBuf,
    /// Resources (lines) written.
    pub resources: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `Patient` resources.
    pub patients: u64,
    /// `Coverage` resources.
    pub coverages: u64,
    /// `MedicationRequest` resources.
    pub prescriptions: u64,
    /// `MedicationDispense` resources.
    pub fills: u64,
    /// `AllergyIntolerance` resources.
    pub allergies: u64,
    /// Fills dated `as_of` (the day's shipping manifest).
    pub fills_on_as_of: u64,
    /// The files, in [`FILES`] order.
    pub files: Vec<FileSummary>,
}

impl Summary {
    /// Total bytes written.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Serialized NDJSON of a run of patients, one buffer per file.
struct Batch {
    patients: u64,
    lines: [Vec<u8>; 5],
    counts: [u64; 5],
    fills_today: u64,
}

impl Batch {
    fn new() -> Self {
        Batch {
            patients: 0,
            lines: std::array::from_fn(|i| {
                Vec::with_capacity(BATCH as usize * [1500, 1000, 3200, 12_000, 500][i])
            }),
            counts: [0; 5],
            fills_today: 0,
        }
    }
}

/// Fills `batch` (a fresh or recycled one) with patients `start..end`.
fn make_batch(config: &Config, start: u64, end: u64, mut batch: Batch) -> Batch {
    batch.patients = end - start;
    batch.counts = [0; 5];
    batch.fills_today = 0;
    for lines in &mut batch.lines {
        lines.clear();
    }
    for index in start..end {
        let records = patient_records(config, index);
        batch.fills_today += records.fills_on(config.as_of).count() as u64;
        let r = records.resources();
        let groups: [&[rxvault_fhir::Resource]; 5] = [
            std::slice::from_ref(&r.patient),
            &r.coverages,
            &r.prescriptions,
            &r.fills,
            &r.allergies,
        ];
        for (i, resources) in groups.into_iter().enumerate() {
            for resource in resources {
                crate::fhir::write_json(&mut batch.lines[i], resource);
                batch.lines[i].push(b'\n');
                batch.counts[i] += 1;
            }
        }
    }
    batch
}

/// Writes the dataset to `out_dir` (created if missing; existing files of
/// the same names are replaced), using up to as many threads as the machine
/// has cores. `progress` is called on the calling thread with the number of
/// patients written so far, after every batch and once at the end.
///
/// Files are flushed and fsynced before this returns. On error the files
/// may be partially written.
pub fn write_ndjson(
    config: &Config,
    out_dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, Error> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    write_ndjson_with_threads(config, out_dir, threads, progress)
}

/// [`write_ndjson`] with an explicit number of generating threads (at least
/// one). The output does not depend on it.
pub fn write_ndjson_with_threads(
    config: &Config,
    out_dir: &Path,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, Error> {
    config.validate()?;
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let paths: Vec<PathBuf> = FILES.iter().map(|(_, name)| out_dir.join(name)).collect();
    let mut writers = Vec::with_capacity(FILES.len());
    for path in &paths {
        let file = File::create(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        writers.push(BufWriter::with_capacity(1 << 20, file));
    }

    let batches = config.patients.div_ceil(BATCH);
    let threads = (threads.max(1) as u64).min(batches.max(1)) as usize;
    let mut counts = [0u64; 5];
    let mut bytes = [0u64; 5];
    let mut fills_today = 0u64;
    let mut written = 0u64;

    std::thread::scope(|scope| -> Result<(), Error> {
        let mut receivers = Vec::with_capacity(threads);
        let mut recyclers = Vec::with_capacity(threads);
        for worker in 0..threads {
            let (tx, rx) = mpsc::sync_channel::<Batch>(1);
            // Written batches go back to their worker, so their buffers are
            // reused instead of reallocated.
            let (back_tx, back_rx) = mpsc::channel::<Batch>();
            receivers.push(rx);
            recyclers.push(back_tx);
            scope.spawn(move || {
                let mut b = worker as u64;
                while b < batches {
                    let start = b * BATCH;
                    let end = (start + BATCH).min(config.patients);
                    let buffers = back_rx.try_recv().unwrap_or_else(|_| Batch::new());
                    if tx.send(make_batch(config, start, end, buffers)).is_err() {
                        return; // The writer stopped (I/O error).
                    }
                    b += threads as u64;
                }
            });
        }
        for b in 0..batches {
            // A closed channel means the worker panicked: stop here, and the
            // scope re-raises its panic.
            let worker = (b % threads as u64) as usize;
            let Ok(batch) = receivers[worker].recv() else {
                break;
            };
            for i in 0..FILES.len() {
                if let Err(source) = writers[i].write_all(&batch.lines[i]) {
                    drop(receivers);
                    return Err(Error::Io {
                        path: paths[i].clone(),
                        source,
                    });
                }
                counts[i] += batch.counts[i];
                bytes[i] += batch.lines[i].len() as u64;
            }
            fills_today += batch.fills_today;
            written += batch.patients;
            let _ = recyclers[worker].send(batch);
            progress(written);
        }
        Ok(())
    })?;

    for (writer, path) in writers.into_iter().zip(&paths) {
        let io_err = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
    }
    #[cfg(unix)]
    {
        // Make the new directory entries durable too.
        File::open(out_dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::Io {
                path: out_dir.to_path_buf(),
                source,
            })?;
    }
    progress(written);

    Ok(Summary {
        patients: counts[0],
        coverages: counts[1],
        prescriptions: counts[2],
        fills: counts[3],
        allergies: counts[4],
        fills_on_as_of: fills_today,
        files: FILES
            .iter()
            .zip(paths)
            .enumerate()
            .map(|(i, ((ty, _), path))| FileSummary {
                resource_type: ty,
                path,
                resources: counts[i],
                bytes: bytes[i],
            })
            .collect(),
    })
}
