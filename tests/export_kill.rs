//! Issue 8: an export is recorded before its first byte. Real `rxvault
//! export fhir` processes (plaintext and age-encrypted, alternately) are
//! SIGKILLed at random points, 50 times; then every export folder left on
//! disk must have its `export-started` entry, and `rxvault audit
//! export-scope` must name at least the patients and field categories found
//! by reading the files (decrypting the age ones, truncated or not), and
//! exactly those when the export finished.
//!
//! The random delays come from a seed printed on failure
//! (`RXVAULT_KILL_SEED` replays one).

use rxvault_model::{FieldCategory, RecordKind, SystemClock};
use rxvault_vault::{KeySource, Vault};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rxvault");

/// Patients in the vault: enough records that writing dominates an
/// export's run time, few enough that 50 runs stay quick.
const PATIENTS: u64 = 400;
const KILLS: usize = 50;

struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .args(["--data", self.path("data").to_str().unwrap()])
            .args(["--key-file", self.path("keys/vault.key").to_str().unwrap()])
            .env("RXVAULT_KEY_DIR", self.path("default-keys"))
            .env_remove("RXVAULT_DATA")
            .env_remove("RXVAULT_KEY_FILE")
            .env_remove("RXVAULT_PASSPHRASE_FILE");
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out: Output = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "rxvault {args:?} failed ({:?}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// xorshift64*: enough randomness for kill delays, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// What the files of one export folder hold: patients (record keys, hex)
/// and field categories per FHIR type.
#[derive(Debug, Default, PartialEq, Eq)]
struct Held {
    patients: BTreeSet<String>,
    categories: BTreeMap<String, BTreeSet<String>>,
    records: u64,
}

/// The plaintext bytes of an export file: as is, or decrypted with
/// `identity` as far as it decrypts (a killed export's file is truncated:
/// every chunk before the cut is authenticated and readable).
fn plaintext_of(path: &Path, identity: &age::x25519::Identity) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    if !name.contains(".age") {
        return bytes;
    }
    let Ok(decryptor) = age::Decryptor::new(&bytes[..]) else {
        return Vec::new(); // killed inside the header
    };
    let Ok(mut reader) = decryptor.decrypt(std::iter::once(identity as &dyn age::Identity)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Reads every NDJSON file in `dir` (complete lines only) and what its
/// resources hold.
fn held(dir: &Path, vault: &Vault, identity: &age::x25519::Identity) -> Held {
    let mut h = Held::default();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().contains(".ndjson") {
            continue;
        }
        let text = plaintext_of(&path, identity);
        let complete = match text.iter().rposition(|b| *b == b'\n') {
            Some(end) => &text[..=end],
            None => &[][..],
        };
        for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let resource: serde_json::Map<String, Value> = serde_json::from_slice(line)
                .unwrap_or_else(|e| {
                    panic!("{}: a complete line that is not JSON: {e}", path.display())
                });
            let ty = resource["resourceType"].as_str().unwrap().to_string();
            let kind = RecordKind::from_fhir_type(&ty).unwrap();
            let rid = vault.rid(kind, resource["id"].as_str().unwrap());
            let stored = vault.unaudited().store().get(kind, &rid).unwrap().unwrap();
            h.patients.insert(stored.patient.unwrap_or(rid).to_string());
            let cats = h.categories.entry(ty).or_default();
            for category in rxvault_fhir::split::categories(kind, &resource).iter() {
                cats.insert(category.name().to_string());
            }
            h.records += 1;
        }
    }
    h
}

/// The scope `rxvault audit export-scope` reports, in the same shape.
fn scope(s: &Scratch, export_id: &str) -> (Held, Value) {
    let out = s.ok(&["audit", "export-scope", "--export", export_id, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut h = Held {
        records: v["records"].as_u64().unwrap(),
        ..Default::default()
    };
    for p in v["patients"].as_array().unwrap() {
        h.patients.insert(p.as_str().unwrap().to_string());
    }
    for (ty, names) in v["categories"].as_object().unwrap() {
        h.categories.insert(
            ty.clone(),
            names
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect(),
        );
    }
    (h, v)
}

fn subset(a: &Held, b: &Held) -> bool {
    a.patients.is_subset(&b.patients)
        && a.categories
            .iter()
            .all(|(ty, c)| b.categories.get(ty).is_some_and(|bc| c.is_subset(bc)))
}

#[test]
fn sigkill_mid_export_every_file_left_has_its_started_entry_and_scope() {
    let started_at = Instant::now();
    let s = Scratch {
        tmp: tempfile::tempdir().unwrap(),
    };
    let mut init = Command::new(BIN);
    init.args(["init", "--data", s.path("data").to_str().unwrap()])
        .args(["--key-file", s.path("keys/vault.key").to_str().unwrap()])
        .env("RXVAULT_KEY_DIR", s.path("default-keys"));
    assert!(init.output().unwrap().status.success());
    let synth = s.path("synth");
    let out = Command::new(BIN)
        .args(["synth", "--patients", &PATIENTS.to_string(), "--seed", "8"])
        .args(["--as-of", "2026-11-28", "--out", synth.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    s.ok(&["import", synth.to_str().unwrap()]);

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let exports = s.path("exports");
    let export_args = |dir: &Path, encrypted: bool| -> Vec<String> {
        let mut a = vec!["export".into(), "fhir".into(), "--out".into()];
        a.push(dir.display().to_string());
        if encrypted {
            a.extend(["--recipient".into(), recipient.clone()]);
        } else {
            a.push("--plaintext".into());
        }
        a
    };

    // One complete export of each kind: how long a run takes.
    let mut full = [Duration::ZERO; 2];
    for (i, encrypted) in [false, true].into_iter().enumerate() {
        let t = Instant::now();
        let a = export_args(&exports.join(format!("full-{i}")), encrypted);
        s.ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
        full[i] = t.elapsed();
    }

    let seed = std::env::var("RXVAULT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0008_u64 ^ u64::from(std::process::id()));
    let mut rng = Rng(seed | 1);
    let mut ran_to_end = 0;
    for i in 0..KILLS {
        let encrypted = i % 2 == 1;
        let dir = exports.join(format!("kill-{i}"));
        let a = export_args(&dir, encrypted);
        let mut child = s
            .cmd(&a.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Anywhere from before the vault is open to just after the end.
        let span = full[usize::from(encrypted)].as_micros() as u64 * 11 / 10;
        std::thread::sleep(Duration::from_micros(rng.below(span)));
        if child.try_wait().unwrap().is_some() {
            ran_to_end += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    // The log is intact after 50 kills.
    s.ok(&["audit", "verify"]);

    // Every export-started entry, by destination.
    let listing = s.ok(&["audit", "query", "--action", "export-started", "--json"]);
    let mut started: BTreeMap<String, String> = BTreeMap::new();
    for line in listing.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let d = &e["action"]["details"];
        started.insert(
            d["destination"].as_str().unwrap().to_string(),
            d["export_id"].as_str().unwrap().to_string(),
        );
    }

    let vault = Vault::open(
        &s.path("data"),
        Some(KeySource::File(s.path("keys/vault.key"))),
        Arc::new(SystemClock),
    )
    .unwrap();
    let every_patient: BTreeSet<String> = vault
        .unaudited()
        .store()
        .scan(RecordKind::Patient, None, 100_000)
        .unwrap()
        .iter()
        .map(|r| r.rid.to_string())
        .collect();
    assert_eq!(every_patient.len() as u64, PATIENTS);
    let mut partial = [0u32; 2];
    let mut finished = [0u32; 2];
    let mut names_left = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&exports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // kill-N with N odd, and full-1, were encrypted.
        let encrypted = name.rsplit('-').next().unwrap().parse::<usize>().unwrap() % 2 == 1;
        let absolute = std::path::absolute(dir).unwrap().display().to_string();
        let export_id = started.get(&absolute).unwrap_or_else(|| {
            panic!("{name} is on disk but no export-started entry names it (seed {seed})")
        });
        let (recorded, v) = scope(&s, export_id);
        if name == "full-0" {
            // The same lookup as entries: its start and its end.
            let lines = s.ok(&["audit", "query", "--export", export_id, "--json"]);
            let kinds: Vec<String> = lines
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["action"]["type"].to_string())
                .collect();
            assert_eq!(kinds, ["\"export-started\"", "\"export-finished\""]);
        }
        let on_disk = held(dir, &vault, &identity);
        assert!(
            subset(&on_disk, &recorded),
            "{name}: the files hold more than export {export_id} recorded (seed {seed}):\n\
             on disk {on_disk:?}\nrecorded {recorded:?}"
        );
        let protection = v["protection"]["type"].as_str().unwrap();
        let k = usize::from(protection == "age");
        assert_eq!(protection == "age", encrypted, "{name}: {v}");
        if protection == "age" {
            assert_eq!(
                v["protection"]["recipients"],
                serde_json::json!([recipient])
            );
        }
        match v["status"].as_str().unwrap() {
            "finished" => {
                assert_eq!(
                    on_disk, recorded,
                    "{name}: a finished export holds exactly what was recorded (seed {seed})"
                );
                assert!(dir.join("manifest.json").exists(), "{name}");
                finished[k] += 1;
            }
            "started" => {
                // Killed before its end was recorded (possibly after the
                // manifest was written): the started entry is the answer.
                partial[k] += 1;
                names_left += std::fs::read_dir(dir).unwrap().count();
            }
            other => panic!("{name}: status {other} (seed {seed})"),
        }
        // The plan is the whole vault: every patient is in it.
        assert!(every_patient.is_subset(&recorded.patients), "{name}");
        assert!(recorded.categories["Patient"].contains(FieldCategory::Demographics.name()));
    }
    eprintln!(
        "seed {seed}: {} folders ({partial:?} killed mid-export, {finished:?} finished, \
         {ran_to_end} ran to the end before the kill, {names_left} partial files), {:?}",
        dirs.len(),
        started_at.elapsed()
    );
    // The kills must have landed mid-export often enough to mean something.
    assert!(
        partial.iter().all(|n| *n >= 5),
        "too few kills landed mid-export (plaintext, age): {partial:?} (seed {seed})"
    );
    assert!(names_left > 0, "killed exports left files to check");
}
