//! `rxvault agent bench`: the agent's figures, each against a baseline in
//! the same run. Runs the real agent process (as root) on test bed folders:
//! files damaged per strain before the stop, canary → SIGSTOP latency,
//! agent CPU and RSS idle and during a burst of file events, and the
//! slowdown of a small-write workload with the agent against without.

use anyhow::{Context, Result, bail};
use clap::Args;
use rxvault_agent::testbed::{Strain, Testbed};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `agent bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Runs per strain.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Files in each corpus.
    #[arg(long, default_value_t = 200)]
    files: usize,
    /// Canary touches timed.
    #[arg(long, default_value_t = 50)]
    touches: usize,
    /// Small files written by the write workload (and by the burst).
    #[arg(long, default_value_t = 5000)]
    writes: usize,
    /// Skip the strains (only the latency and cost figures).
    #[arg(long)]
    skip_strains: bool,
    /// Where the test beds go (under the temporary directory).
    #[arg(long, default_value = "/tmp")]
    parent: PathBuf,
}

struct AgentProc {
    child: Child,
    buffer: PathBuf,
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AgentProc {
    fn start(bed: &Testbed, extra: &str) -> Result<Self> {
        let buffer = bed.root().join("reports.jsonl");
        let config = bed.root().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "watch = [{:?}]\nbuffer = {:?}\n{extra}\n",
                bed.corpus(),
                buffer
            ),
        )?;
        // At the systemd unit's priority (`Nice=-5`).
        let mut child = Command::new("nice")
            .args(["-n", "-5"])
            .arg(std::env::current_exe()?)
            .args(["agent", "run", "--config"])
            .arg(&config)
            .env("RXVAULT_LOG", "rxvault_agent=off")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        out.read_line(&mut line)?;
        if !line.contains("watching") {
            bail!("the agent did not start: {line}");
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Ok(AgentProc { child, buffer })
    }

    fn detections(&self) -> usize {
        std::fs::read_to_string(&self.buffer)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"kind\":\"detection\""))
            .count()
    }

    fn overflows(&self) -> usize {
        std::fs::read_to_string(&self.buffer)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"kind\":\"overflow\""))
            .count()
    }

    /// (CPU seconds used so far, current RSS KiB, peak RSS KiB).
    fn usage(&self) -> (f64, u64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (ticks / 100.0, kib("VmRSS:"), kib("VmHWM:"))
    }
}

fn snapshot(bed: &Testbed) -> BTreeMap<PathBuf, Vec<u8>> {
    bed.files()
        .into_iter()
        .filter_map(|f| Some((f.clone(), std::fs::read(&f).ok()?)))
        .collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn write_small_files(dir: &Path, n: usize) -> Result<Duration> {
    std::fs::create_dir_all(dir)?;
    let body = vec![b'a'; 4096];
    let start = Instant::now();
    for i in 0..n {
        let mut f = std::fs::File::create(dir.join(format!("w{i:05}.txt")))?;
        f.write_all(&body)?;
    }
    Ok(start.elapsed())
}

/// Runs the benchmark.
pub fn run(a: BenchArgs) -> Result<()> {
    let parent = a.parent.canonicalize()?;
    outln!(
        "rxvault agent bench: {} runs per strain, {} files per corpus",
        a.runs,
        a.files
    );

    // 1. Files damaged before the stop.
    outln!("\nfiles damaged before the stop (notes: notes dropped); canaries off | on");
    let strains: &[Strain] = if a.skip_strains { &[] } else { &Strain::ALL };
    for &strain in strains {
        let mut row = Vec::new();
        for canaries in [false, true] {
            let mut counts = Vec::new();
            for run in 0..a.runs {
                let bed = Testbed::create(&parent)?;
                bed.generate(a.files, 1000 + run as u64)?;
                let before = snapshot(&bed);
                let agent = AgentProc::start(&bed, &format!("canaries = {canaries}"))?;
                let mut sim = Command::new(std::env::current_exe()?)
                    .args(["agent", "simulate", "--strain", strain.name(), "--dir"])
                    .arg(bed.root())
                    .stdout(Stdio::null())
                    .process_group(0)
                    .spawn()?;
                let status = sim.wait()?;
                std::thread::sleep(Duration::from_millis(200));
                let n = if strain == Strain::Notes {
                    bed.files()
                        .iter()
                        .filter(|f| f.ends_with("HOW_TO_RECOVER_FILES.txt"))
                        .count()
                } else {
                    before
                        .iter()
                        .filter(|(p, c)| std::fs::read(p).ok().as_ref() != Some(*c))
                        .count()
                };
                if status.signal() != Some(9) || agent.detections() == 0 {
                    outln!("  {}: run {run} NOT STOPPED ({n} damaged)", strain.name());
                }
                counts.push(n as f64);
                drop(agent);
                std::fs::remove_dir_all(bed.root())?;
            }
            counts.sort_by(f64::total_cmp);
            row.push(format!(
                "median {:>2}, p95 {:>2}, max {:>2}",
                pct(&counts, 0.5),
                pct(&counts, 0.95),
                counts[counts.len() - 1]
            ));
        }
        outln!("  {:>15}: {} | {}", strain.name(), row[0], row[1]);
    }

    // 2. Canary → SIGSTOP.
    let bed = Testbed::create(&parent)?;
    bed.generate(a.files, 7)?;
    let agent = AgentProc::start(&bed, "policy = \"stop\"")?;
    let canary = bed.corpus().join(rxvault_agent::canary::NAMES[0]);
    let mut lat = Vec::new();
    for _ in 0..a.touches {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("printf x >> \"$1\"; exec sleep 30")
            .arg("sh")
            .arg(&canary)
            .process_group(0)
            .spawn()?;
        let pid = child.id();
        let start = Instant::now();
        let stopped = loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rfind(')')
                .is_some_and(|i| stat[i + 2..].starts_with('T'))
            {
                break Some(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(5) {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let _ = child.kill();
        let _ = child.wait();
        match stopped {
            Some(d) => lat.push(d.as_secs_f64() * 1e3),
            None => outln!("  a canary touch was not stopped within 5 s"),
        }
        while std::fs::read(&canary).unwrap_or_default() != rxvault_agent::canary::content() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    lat.sort_by(f64::total_cmp);
    if !lat.is_empty() {
        outln!(
            "\ncanary → SIGSTOP (from spawning the toucher): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {}",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat[lat.len() - 1],
            lat.len()
        );
    }
    drop(agent);
    std::fs::remove_dir_all(bed.root())?;

    // 3. Cost: small writes with and without the agent (alternating
    // rounds, medians: the machine is shared), CPU and RSS.
    let bed = Testbed::create(&parent)?;
    bed.generate(a.files, 9)?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let (mut burst_cpu, mut burst_secs, mut peak, mut overflows, mut detections) =
        (0.0, 0.0, 0, 0, 0);
    let mut idle = None;
    for round in 0..5 {
        without.push(
            write_small_files(&bed.corpus().join(format!("base-{round}")), a.writes)?.as_secs_f64(),
        );
        let agent = AgentProc::start(&bed, "")?;
        if idle.is_none() {
            std::thread::sleep(Duration::from_secs(1));
            let (c0, _, _) = agent.usage();
            std::thread::sleep(Duration::from_secs(5));
            let (c1, rss, _) = agent.usage();
            idle = Some(((c1 - c0) / 5.0 * 100.0, rss));
        }
        let (c0, _, _) = agent.usage();
        let took =
            write_small_files(&bed.corpus().join(format!("with-{round}")), a.writes)?.as_secs_f64();
        with.push(took);
        // Let the agent drain its queue before reading its CPU.
        std::thread::sleep(Duration::from_secs(2));
        let (c1, _, hwm) = agent.usage();
        burst_cpu += c1 - c0;
        burst_secs += took;
        peak = peak.max(hwm);
        overflows += agent.overflows();
        detections += agent.detections();
    }
    without.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    let (b, w) = (pct(&without, 0.5), pct(&with, 0.5));
    outln!(
        "\nsmall writes ({} × 4 KiB create+write+close, median of 5 alternating rounds): without the agent {:.0} ms, with {:.0} ms ({:+.1}%)",
        a.writes,
        b * 1e3,
        w * 1e3,
        (w / b - 1.0) * 100.0
    );
    if let Some((cpu, rss)) = idle {
        outln!("agent idle: {cpu:.2}% of a core over 5 s, RSS {rss} KiB");
    }
    outln!(
        "agent during the bursts (~{:.0} file events/s: open, close-write, create): {:.2} CPU s for {:.2} s of writing ({:.0}% of a core, drain included); peak RSS {} KiB; overflows {}, detections {}",
        a.writes as f64 * 3.0 * 5.0 / burst_secs,
        burst_cpu,
        burst_secs,
        burst_cpu / burst_secs * 100.0,
        peak,
        overflows,
        detections
    );
    std::fs::remove_dir_all(bed.root())?;
    Ok(())
}
