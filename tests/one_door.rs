//! The audited entry points are the only way from another crate to
//! decrypted PHI (issue 8, must-show 1).
//!
//! A probe crate is built the way a new capability crate (a detector, a
//! letter generator) would be: its own package, depending on the vault
//! and the crates beside it by path, default features. Every line marked
//! `// DOOR` tries one unaudited path to PHI and must fail to compile; a
//! control build, with the one key that opens them (the `unaudited`
//! feature tests and benchmarks use), must compile. A path made public
//! again, re-exported or renamed turns its line green and fails the test.

use std::path::Path;
use std::process::Command;

const PROBE: &str = r#"
use rxvault_model::{CategorySet, RecordKind};
use rxvault_vault::Vault;
use rxvault_vault::query::Find;

#[cfg(not(feature = "control"))]
pub fn attempts(vault: &Vault, record: &rxvault_store::StoredRecord, place: &rxvault_crypto::Binding) {
    let find = Find::Phone("5550100".into());
    let _ = vault.keyring(); // DOOR keyring
    let _ = vault.store(); // DOOR store
    let _ = vault.chart("p1", CategorySet::ALL); // DOOR chart
    let _ = vault.find(&find, CategorySet::ALL); // DOOR find
    let _ = vault.find_rids(&find); // DOOR find_rids
    let _ = vault.find_resources(&find, CategorySet::ALL); // DOOR find_resources
    let _ = vault.open_record(record, CategorySet::ALL); // DOOR open_record
    let _ = vault.open_record_json(record, CategorySet::ALL); // DOOR open_record_json
    let _ = vault.shipments("2026-12-02"); // DOOR shipments
    let _ = vault.import(&[], &Default::default(), &mut ()); // DOOR import
    let _ = vault.seal(RecordKind::Patient, Default::default()); // DOOR seal
    let _ = vault.unaudited(); // DOOR unaudited handle
    let _ = vault.secrets().open_record(place, &[], CategorySet::ALL); // DOOR secrets
    let _ = rxvault_crypto::LiveKeys::secrets(vault).open_record(place, &[], CategorySet::ALL); // DOOR live keys
}

#[cfg(feature = "control")]
pub fn control(vault: &Vault, record: &rxvault_store::StoredRecord) {
    let _ = vault.unaudited().chart("p1", CategorySet::ALL);
    let _ = vault.unaudited().open_record(record, CategorySet::ALL);
    let _ = vault.unaudited().keyring().open_record(
        &rxvault_crypto::Binding { kind: RecordKind::Patient, rid: record.rid, patient: None, derived: false },
        &[],
        CategorySet::ALL,
    );
}
"#;

fn write_probe(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dep = |name: &str, path: &str| {
        format!(
            "{name} = {{ path = {:?} }}\n",
            root.join("crates").join(path).display().to_string()
        )
    };
    let manifest = format!(
        "[package]\nname = \"one-door-probe\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [workspace]\n\n[lib]\npath = \"lib.rs\"\n\n\
         [features]\ncontrol = [\"rxvault-vault/unaudited\"]\n\n[dependencies]\n{}{}{}{}{}",
        dep("rxvault-vault", "vault"),
        dep("rxvault-crypto", "crypto"),
        dep("rxvault-store", "store"),
        dep("rxvault-model", "model"),
        dep("rxvault-fhir", "fhir"),
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("lib.rs"), PROBE).unwrap();
    // The workspace's versions, so the probe builds what the product does.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
}

/// Builds the probe; returns whether it compiled and the lines (1-based)
/// of `lib.rs` that have an error.
fn check(dir: &Path, features: &[&str]) -> (bool, Vec<usize>, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["check", "--offline", "--quiet", "--message-format", "json"])
        .args(features.iter().flat_map(|f| ["--features", f]))
        .current_dir(dir)
        // Its own target dir: the test run holds the workspace's.
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = Vec::new();
    let mut rendered = String::new();
    for msg in stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let m = &msg["message"];
        if msg["reason"] != "compiler-message" || m["level"] != "error" {
            continue;
        }
        rendered.push_str(m["rendered"].as_str().unwrap_or(""));
        for span in m["spans"].as_array().into_iter().flatten() {
            if span["is_primary"] == true && span["file_name"] == "lib.rs" {
                lines.push(span["line_start"].as_u64().unwrap() as usize);
            }
        }
    }
    rendered.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), lines, rendered)
}

#[test]
fn no_crate_reaches_decrypted_phi_past_the_audited_entry_points() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("one-door-probe");
    write_probe(&dir);

    // The control: with the unaudited feature the same paths compile, so
    // the probe's setup is sound and the feature is what keeps them shut.
    let (ok, _, errors) = check(&dir, &["control"]);
    assert!(ok, "the control build must compile:\n{errors}");

    let (ok, failed, errors) = check(&dir, &[]);
    assert!(!ok, "every DOOR line compiled: an unaudited path is public");
    let doors: Vec<(usize, &str)> = PROBE
        .lines()
        .enumerate()
        .filter_map(|(i, l)| l.split_once("// DOOR ").map(|(_, what)| (i + 1, what)))
        .collect();
    assert_eq!(doors.len(), 14);
    for (line, what) in &doors {
        assert!(
            failed.contains(line),
            "the unaudited path `{what}` (probe line {line}) compiles from another crate:\n{errors}"
        );
    }
    // Nothing else failed: each DOOR fails on its own merits, not because
    // the probe is broken.
    for line in &failed {
        assert!(
            doors.iter().any(|(l, _)| l == line),
            "probe line {line} failed and is not a DOOR:\n{errors}"
        );
    }
}
