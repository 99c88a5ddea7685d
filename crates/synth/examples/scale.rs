//! Generates a dataset at scale and reports throughput and file sizes.
//!
//! `cargo run --release -p rxvault-synth --example scale [PATIENTS] [OUT_DIR] [THREADS]`
//!
//! Defaults: 137,110 patients (the size of the 2020 incident rxvault exists
//! to prevent), a temporary directory (removed afterwards), all cores.

use rxvault_synth::{Config, write_ndjson_with_threads};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let patients: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(137_110);
    let out = args.next();
    let threads: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let temp = tempfile::tempdir()?;
    let dir = out.map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
    let config = Config::new(patients, 2020, time::macros::date!(2024 - 06 - 30));

    let start = Instant::now();
    let mut last = Instant::now();
    let summary = write_ndjson_with_threads(&config, &dir, threads, &mut |done| {
        if last.elapsed().as_secs() >= 2 {
            eprintln!("  {done} / {patients} patients");
            last = Instant::now();
        }
    })?;
    let secs = start.elapsed().as_secs_f64();

    println!(
        "{patients} patients, {threads} thread(s), {secs:.2} s, {:.0} patients/s",
        patients as f64 / secs
    );
    for f in &summary.files {
        println!(
            "  {:<28} {:>10} resources {:>10.1} MiB",
            f.path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            f.resources,
            f.bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let bytes = summary.bytes();
    println!(
        "  total {:.1} MiB, {:.0} bytes/patient, {:.1} MiB/s; {} fills dated as_of",
        bytes as f64 / (1024.0 * 1024.0),
        bytes as f64 / patients.max(1) as f64,
        bytes as f64 / (1024.0 * 1024.0) / secs,
        summary.fills_on_as_of,
    );
    Ok(())
}
