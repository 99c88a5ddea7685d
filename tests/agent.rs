//! The workstation agent end to end, as root: the real `rxvault agent run`
//! process watching a test bed (fanotify + inotify), real ransomware strains
//! (the hidden `rxvault agent simulate`: AES-256-CTR from `openssl enc`) run
//! as separate process groups, and real benign tools (tar, gzip, zstd, cp,
//! rsync, git, sqlite3, age).

use rxvault_agent::testbed::{Strain, Testbed};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const RXVAULT: &str = env!("CARGO_BIN_EXE_rxvault");

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap();
    assert_eq!(
        uid, "0",
        "the agent tests run as root (fanotify needs CAP_SYS_ADMIN)"
    );
}

/// A running `rxvault agent run`, killed on drop.
struct Agent {
    child: Child,
    buffer: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(bed: &Testbed, extra: &str) -> Agent {
        let buffer = bed.root().join("reports.jsonl");
        let config = bed.root().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "watch = [{:?}]\nbuffer = {:?}\n{extra}\n",
                bed.corpus(),
                buffer
            ),
        )
        .unwrap();
        // At the systemd unit's priority (`Nice=-5`).
        let mut child = Command::new("nice")
            .args(["-n", "-5", RXVAULT, "agent", "run", "--config"])
            .arg(&config)
            .env("RXVAULT_LOG", "rxvault_agent=warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let mut r = BufReader::new(stdout);
            let _ = r.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so the agent never blocks on a full pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the agent starts");
        assert!(line.contains("watching"), "{line}");
        Agent { child, buffer }
    }

    fn reports(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.buffer)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn detections(&self) -> Vec<Value> {
        self.reports()
            .into_iter()
            .filter(|r| r["kind"] == "detection" || r["kind"] == "canary_unattributed")
            .collect()
    }
}

fn new_bed(files: usize, seed: u64) -> (tempfile::TempDir, Testbed) {
    let dir = tempfile::tempdir().unwrap();
    let bed = Testbed::create(dir.path()).unwrap();
    bed.generate(files, seed).unwrap();
    (dir, bed)
}

fn snapshot(bed: &Testbed) -> BTreeMap<PathBuf, Vec<u8>> {
    bed.files()
        .into_iter()
        .map(|f| {
            let c = std::fs::read(&f).unwrap();
            (f, c)
        })
        .collect()
}

/// Files of `before` whose content changed or that are gone.
fn damaged(before: &BTreeMap<PathBuf, Vec<u8>>) -> usize {
    before
        .iter()
        .filter(|(p, c)| std::fs::read(p).ok().as_ref() != Some(*c))
        .count()
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

struct Outcome {
    damaged: usize,
    notes: usize,
    status: Option<ExitStatus>,
    detections: Vec<Value>,
}

fn run_strain(strain: Strain, seed: u64, extra: &str) -> Outcome {
    run_strain_as(strain, seed, extra, false)
}

/// `session_leader`: the simulator runs as a session leader (as a daemon
/// would: its workers share its group and session), else as a job of its
/// own process group, as a shell starts one.
fn run_strain_as(strain: Strain, seed: u64, extra: &str, session_leader: bool) -> Outcome {
    let (_dir, bed) = new_bed(200, seed);
    let before = snapshot(&bed);
    let agent = Agent::start(&bed, extra);
    let mut cmd = if session_leader {
        let mut c = Command::new("setsid");
        c.arg(RXVAULT);
        c
    } else {
        let mut c = Command::new(RXVAULT);
        c.process_group(0);
        c
    };
    let mut sim = cmd
        .args(["agent", "simulate", "--strain", strain.name(), "--dir"])
        .arg(bed.root())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut sim, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(300));
    let notes = bed
        .files()
        .iter()
        .filter(|f| f.ends_with("HOW_TO_RECOVER_FILES.txt"))
        .count();
    Outcome {
        damaged: damaged(&before),
        notes,
        status,
        detections: agent.detections(),
    }
}

fn median(v: &mut [usize]) -> usize {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn every_strain_is_stopped_by_its_content_and_paths_alone() {
    require_root();
    // Canaries off: the content, path and rename signals must stop every
    // strain on their own (with canaries, most strains meet one first).
    let mut table = Vec::new();
    for strain in Strain::ALL {
        let mut counts = Vec::new();
        for run in 0..3 {
            let o = run_strain(strain, 100 + run, "canaries = false");
            assert_eq!(
                o.status.and_then(|s| s.signal()),
                Some(9),
                "{}: the simulator was stopped and killed ({:?})",
                strain.name(),
                o.status
            );
            let d = &o.detections;
            assert_eq!(d.len(), 1, "{}: one detection: {d:?}", strain.name());
            assert_eq!(d[0]["action"], "killed");
            // The process whose write crossed the threshold: the simulator,
            // or for mmap its python3 writer.
            let exe = d[0]["exe"].as_str().unwrap();
            assert!(
                exe.ends_with("rxvault") || (strain == Strain::Mmap && exe.contains("python")),
                "{}: {exe}",
                strain.name()
            );
            assert_eq!(d[0]["exe_sha256"].as_str().unwrap().len(), 64);
            counts.push(if strain == Strain::Notes {
                o.notes
            } else {
                o.damaged
            });
        }
        let max = *counts.iter().max().unwrap();
        let med = median(&mut counts);
        table.push(format!(
            "{:>15}: median {med}, max {max} {counts:?}",
            strain.name()
        ));
        // The goal is a median of 3 (BENCHMARKS.md has the measured
        // figures); on this shared machine a loaded moment adds a file or
        // two in flight, so the test's bound is 5, and 10 for the maximum
        // (the goal's p95).
        let bound = 5;
        assert!(
            med <= bound,
            "{}: median {med} > {bound} ({counts:?})",
            strain.name()
        );
        assert!(max <= 10, "{}: max {max} ({counts:?})", strain.name());
    }
    eprintln!(
        "files damaged (notes dropped for `notes`) before the stop:\n{}",
        table.join("\n")
    );
}

#[test]
fn with_canaries_a_strain_is_stopped_at_the_first_canary_it_meets() {
    require_root();
    let o = run_strain(Strain::InPlace, 7, "");
    assert_eq!(o.status.and_then(|s| s.signal()), Some(9));
    assert!(o.damaged <= 3, "{}", o.damaged);
    assert!(
        o.detections[0]["signals"]["canary"].as_u64().is_some(),
        "{:?}",
        o.detections
    );
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

#[test]
fn touching_a_canary_suspends_the_process_quickly() {
    require_root();
    let (_dir, bed) = new_bed(40, 3);
    let agent = Agent::start(&bed, "policy = \"stop\"");
    let canary = bed.corpus().join("!!!_Accounts_2026.docx");
    assert!(canary.exists(), "canaries are placed");
    let mut latencies = Vec::new();
    for i in 0..20 {
        // The toucher prints the time just before it writes, then waits.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("date +%s%N; printf x >> \"$1\"; exec sleep 30")
            .arg("sh")
            .arg(&canary)
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let wrote_at: u128 = line.trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stopped_at = None;
        while Instant::now() < deadline {
            if proc_state(child.id()) == Some('T') {
                stopped_at = Some(epoch_nanos());
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let stopped_at =
            stopped_at.unwrap_or_else(|| panic!("touch {i}: the process was not suspended"));
        latencies.push((stopped_at.saturating_sub(wrote_at)) as f64 / 1e6);
        let _ = child.kill();
        let _ = child.wait();
        // The agent puts the canary back.
        let t = Instant::now();
        while std::fs::read(&canary).unwrap_or_default() != rxvault_agent::canary::content() {
            assert!(t.elapsed() < Duration::from_secs(5), "canary restored");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() - 1];
    eprintln!(
        "canary → SIGSTOP: p50 {p50:.1} ms, max {p99:.1} ms over {}",
        latencies.len()
    );
    assert!(p99 < 200.0, "{latencies:?}");
    let d = agent.detections();
    assert_eq!(d.len(), 20);
    assert!(
        d.iter()
            .all(|r| r["action"] == "stopped" && r["signals"]["canary"] == 1)
    );
}

fn epoch_nanos() -> u128 {
    let out = Command::new("date").arg("+%s%N").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn sh(script: &str, cwd: &Path) {
    let status = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(cwd)
        .process_group(0)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

fn age_allow_entry() -> String {
    let age = PathBuf::from("/usr/bin/age");
    let hash = rxvault_crypto::sha256_file(&age).unwrap();
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("[[allow]]\npath = {age:?}\nsha256 = \"{hex}\"\n")
}

/// age per file, then the originals deleted: by itself, exactly what a
/// copy-then-delete strain does.
const AGE_EACH_FILE: &str = r#"
age-keygen -o ../age.key 2>/dev/null
R=$(age-keygen -y ../age.key)
for f in Scans/2025/*; do age -r "$R" -o "$f.age" "$f"; rm "$f"; done
"#;

#[test]
fn benign_workloads_raise_no_alarm() {
    require_root();
    let (_dir, bed) = new_bed(300, 11);
    let agent = Agent::start(&bed, &age_allow_entry());
    let c = bed.corpus();
    for script in [
        "tar czf backup.tar.gz Rx Claims",
        "tar cf - Scans Labels | zstd -q -o scans.tar.zst",
        "gzip -k Reports/2025/*.csv Reports/2025/*.txt 2>/dev/null || gzip -k Reports/2025/*",
        "cp -r Rx Rx-copy",
        "rsync -a Claims/ Claims-mirror/",
        "rsync -a --checksum Claims/ Claims-mirror/",
        "git init -q repo && cp -r Labels repo/ && cd repo && git add -A && git -c user.email=a@b -c user.name=t commit -qm import && git mv Labels Labels2 && git -c user.email=a@b -c user.name=t commit -qm mv",
        "for i in $(seq 1 50); do echo \"create table if not exists t(a,b); insert into t values($i, randomblob(2000));\"; done | sqlite3 pharmacy.db",
        "sqlite3 pharmacy.db 'update t set b = randomblob(3000); vacuum;'",
        AGE_EACH_FILE,
    ] {
        sh(script, &c);
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        agent.detections(),
        Vec::<Value>::new(),
        "no alarm on the benign suite"
    );
    assert!(agent.reports().iter().all(|r| r["kind"] != "overflow"));
}

#[test]
fn the_allow_list_is_what_exempts_age() {
    require_root();
    // The same age workload, age not allow-listed: stopped.
    let (_dir, bed) = new_bed(300, 11);
    let agent = Agent::start(&bed, "canaries = false");
    let status = Command::new("sh")
        .arg("-c")
        .arg(AGE_EACH_FILE)
        .current_dir(bed.corpus())
        .process_group(0)
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let d = agent.detections();
    assert_eq!(d.len(), 1, "{d:?}");
    // An allow-list entry with the right path but another hash exempts
    // nothing.
    let (_dir2, bed2) = new_bed(300, 11);
    let wrong = format!(
        "[[allow]]\npath = \"/usr/bin/age\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    );
    let agent2 = Agent::start(&bed2, &format!("canaries = false\n{wrong}"));
    let status = Command::new("sh")
        .arg("-c")
        .arg(AGE_EACH_FILE)
        .current_dir(bed2.corpus())
        .process_group(0)
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert_eq!(agent2.detections().len(), 1);
}

#[test]
fn the_simulator_refuses_folders_the_test_bed_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), b"keep").unwrap();
    for target in [dir.path(), Path::new("/"), Path::new("/home")] {
        let out = Command::new(RXVAULT)
            .args(["agent", "simulate", "--strain", "in-place", "--dir"])
            .arg(target)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a test bed folder"));
    }
    assert_eq!(
        std::fs::read(dir.path().join("precious.txt")).unwrap(),
        b"keep"
    );
}

#[test]
fn a_queue_overflow_is_reported_and_rescanned_never_silent() {
    require_root();
    let (_dir, bed) = new_bed(20, 5);
    let agent = Agent::start(&bed, "canaries = false");
    let pid = agent.child.id().to_string();
    // The agent stops reading; 20,000 new files overflow both kernel queues
    // (16,384 events each by default).
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // (Into a folder the agent already watches: a new folder is marked
    // when its creation is handled.)
    let burst = bed.corpus().join("Rx").join("2025");
    for i in 0..20_000 {
        std::fs::write(burst.join(format!("f{i:05}.txt")), b"small benign file\n").unwrap();
    }
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t = Instant::now();
    let sources = loop {
        let sources: Vec<String> = agent
            .reports()
            .iter()
            .filter(|r| r["kind"] == "overflow")
            .flat_map(|r| {
                r["signals"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        if sources.iter().any(|s| s == "overflow_fanotify")
            && sources.iter().any(|s| s == "overflow_inotify")
        {
            break sources;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "overflow reported: {sources:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("overflow reports: {sources:?}");
    assert!(agent.detections().is_empty());
}

#[test]
fn workers_of_a_session_leader_are_scored_as_one_family() {
    require_root();
    // Each worker encrypts one file and exits; none is a job of its own,
    // so only their parent (running the same executable) ties them.
    let o = run_strain_as(Strain::ManyProcesses, 21, "canaries = false", true);
    assert_eq!(o.status.and_then(|s| s.signal()), Some(9), "{:?}", o.status);
    assert!(o.damaged <= 5, "{}", o.damaged);
    assert_eq!(o.detections.len(), 1, "{:?}", o.detections);
}

#[test]
fn policy_resume_stops_reports_and_lets_the_process_go_on() {
    require_root();
    let (_dir, bed) = new_bed(20, 4);
    let agent = Agent::start(&bed, "policy = \"resume\"");
    let canary = bed.corpus().join("!!!_Accounts_2026.docx");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("printf x >> \"$1\"; sleep 2; echo done")
        .arg("sh")
        .arg(&canary)
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let out = wait_timeout(&mut child, Duration::from_secs(20)).expect("it finishes");
    assert!(out.success(), "resumed, not killed: {out:?}");
    let d = agent.detections();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["action"], "resumed");
    assert!(d[0]["processes_stopped"].as_u64().unwrap() >= 1);
}
