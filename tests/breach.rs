//! `rxvault breach` end to end, as real processes (issue 13): incidents,
//! the scope of a compromised account in a window against the ground truth
//! of what it read, an exported shipping manifest, a leaked file, the
//! safe-harbor check, bad input that changes nothing, and the outputs
//! (letters checked with `pdftotext` and `pdffonts`).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rxvault");

struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn data(&self) -> PathBuf {
        self.path("data")
    }

    fn key(&self) -> PathBuf {
        self.path("keys/vault.key")
    }

    /// `rxvault ARGS --data DATA --key-file KEY` as the local user `user`.
    fn run_as(&self, user: &str, args: &[&str]) -> Output {
        std::fs::create_dir_all(self.path("tmp")).unwrap();
        let mut c = Command::new(BIN);
        c.args(args);
        if args.first() != Some(&"synth") {
            c.arg("--data").arg(self.data());
            c.arg("--key-file").arg(self.key());
        }
        c.env("RXVAULT_KEY_DIR", self.path("default-keys"))
            .env("TMPDIR", self.path("tmp"))
            .env("USER", user)
            .env_remove("RXVAULT_DATA")
            .env_remove("RXVAULT_KEY_FILE")
            .env_remove("RXVAULT_PASSPHRASE_FILE");
        c.output().unwrap()
    }

    fn ok_as(&self, user: &str, args: &[&str]) -> String {
        let out = self.run_as(user, args);
        assert!(
            out.status.success(),
            "rxvault {args:?} failed ({:?}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_as("privacy", args)
    }

    /// A failing command's standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run_as("privacy", args);
        assert!(
            !out.status.success(),
            "rxvault {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// A vault with `n` synthetic patients; their resources by type.
    fn vault(&self, n: u64) -> Vec<Value> {
        self.vault_with(n, &[])
    }

    /// [`vault`](Self::vault) with `init` flags (`--postgres URL`).
    fn vault_with(&self, n: u64, init_flags: &[&str]) -> Vec<Value> {
        let out = self.path("synth");
        let o = Command::new(BIN)
            .args(["synth", "--patients", &n.to_string(), "--seed", "13"])
            .args(["--as-of", "2026-11-28", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut init = Command::new(BIN);
        init.args(["init", "--data"])
            .arg(self.data())
            .arg("--key-file")
            .arg(self.key())
            .args(init_flags)
            .env("RXVAULT_KEY_DIR", self.path("default-keys"));
        let o = init.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        self.ok(&["import", out.to_str().unwrap()]);
        ndjson(&out.join("Patient.ndjson"))
    }

    fn incident(&self, discovered: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "breach",
            "new",
            "--discovered",
            discovered,
            "--summary",
            "stolen credentials",
        ];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        out.lines().next().unwrap().trim().to_string()
    }

    fn show(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["breach", "show", "--incident", id, "--json"])).unwrap()
    }

    /// The record key of patient `id`, as the vault computes it (the
    /// vault opened in the test with its key, as a recipient would).
    fn rid(&self, id: &str) -> String {
        let vault = rxvault_vault::Vault::open(
            &self.data(),
            Some(rxvault_vault::keys::KeySource::File(self.key())),
            std::sync::Arc::new(rxvault_model::SystemClock),
        )
        .unwrap();
        vault
            .rid(rxvault_model::RecordKind::Patient, id)
            .to_string()
    }
}

fn ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn id(p: &Value) -> &str {
    p["id"].as_str().unwrap()
}

/// The current time as RFC 3339 with milliseconds (after a pause, so
/// entries before and after fall on either side).
fn mark() -> String {
    std::thread::sleep(std::time::Duration::from_millis(30));
    #[allow(clippy::disallowed_methods)] // the test's own wall clock
    let now = time::OffsetDateTime::now_utc();
    let t = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    t
}

fn affected(scope: &Value) -> BTreeSet<String> {
    scope["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["patient"].as_str().unwrap().to_string())
        .collect()
}

fn phi_of<'a>(scope: &'a Value, rid: &str) -> BTreeSet<&'a str> {
    scope["affected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["patient"] == rid)
        .unwrap_or_else(|| panic!("{rid} not in the scope"))["phi"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn a_compromised_account_in_a_window_is_scoped_exactly_as_it_read() {
    let s = Scratch::new();
    let patients = s.vault(30);
    // Ordinary use by a clerk, before and during the attack.
    for p in &patients[0..8] {
        s.ok_as("clerk", &["patient", "show", id(p)]);
    }
    // Mallory's account reads an ordinary patient before the window...
    s.ok_as("mallory", &["patient", "show", id(&patients[29])]);
    let from = mark();
    // ... then the stolen-credentials session: a known subset, some of
    // which the clerk also read, one searched for rather than opened.
    let stolen: Vec<&Value> = patients[5..14].iter().collect();
    for p in &stolen {
        s.ok_as("mallory", &["patient", "show", id(p)]);
    }
    for p in &patients[0..3] {
        s.ok_as("clerk", &["patient", "show", id(p)]);
    }
    let to = mark();
    // After the window (the account was locked and is used again).
    s.ok_as("mallory", &["patient", "show", id(&patients[20])]);

    let inc = s.incident("2026-11-28", &[]);
    let out = s.ok(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--user",
        "mallory",
        "--from",
        &from,
        "--to",
        &to,
        "--json",
    ]);
    let scope: Value = serde_json::from_str(&out).unwrap();
    let want: BTreeSet<String> = stolen.iter().map(|p| s.rid(id(p))).collect();
    // Precision and recall 100%.
    assert_eq!(affected(&scope), want);
    let phi = phi_of(&scope, &s.rid(id(stolen[0])));
    for t in ["name", "address", "birth-date", "medications", "member-id"] {
        assert!(phi.contains(t), "a chart read exposes {t}: {phi:?}");
    }
    // Stored with the incident (sealed) and reproducible.
    assert_eq!(affected(&s.show(&inc)["scope"]), want);
    let again: Value = serde_json::from_str(&s.ok(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--user",
        "mallory",
        "--from",
        &from,
        "--to",
        &to,
        "--json",
    ]))
    .unwrap();
    assert_eq!(again["affected"], scope["affected"]);
    // Without the window, the account's every read.
    let all: Value = serde_json::from_str(&s.ok(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--user",
        "mallory",
        "--json",
    ]))
    .unwrap();
    assert_eq!(affected(&all).len(), want.len() + 2);
    // Breach response's own acts are not exposure: the operator who ran it
    // read nothing.
    let own: Value = serde_json::from_str(&s.ok(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--user",
        "privacy",
        "--json",
    ]))
    .unwrap();
    assert!(affected(&own).is_empty(), "{own}");

    let status = s.ok(&["breach", "status", "--incident", &inc]);
    assert!(
        status.contains("individuals") && status.contains("2027-01-27"),
        "{status}"
    );
    assert!(status.contains("hhs-annual-log"), "{status}");
    assert!(
        status.contains("2027-03-01"),
        "fewer than 500: the annual log\n{status}"
    );
}

#[test]
fn an_exported_shipping_manifest_exposes_names_and_addresses_only() {
    let s = Scratch::new();
    let patients = s.vault(40);
    // The busiest fill day in the synthetic data.
    let fills = ndjson(&s.path("synth/MedicationDispense.ndjson"));
    let mut days = std::collections::BTreeMap::<String, usize>::new();
    for f in &fills {
        if let Some(d) = f["whenPrepared"].as_str() {
            *days.entry(d[..10].to_string()).or_default() += 1;
        }
    }
    let day = days.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
    let manifest = s.path("manifest.csv");
    let out = s.ok(&[
        "export",
        "shipping",
        "--date",
        &day,
        "--out",
        manifest.to_str().unwrap(),
        "--plaintext",
    ]);
    let export_id = out
        .trim()
        .rsplit("export ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    let inc = s.incident("2026-11-28", &[]);
    let scope: Value = serde_json::from_str(&s.ok(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--export",
        &export_id,
        "--json",
    ]))
    .unwrap();
    let got = affected(&scope);
    assert!(!got.is_empty());
    // Exactly the patients whose fills are in the manifest (by their
    // transaction IDs, the manifest's first column).
    let text = std::fs::read_to_string(&manifest).unwrap();
    let txns: BTreeSet<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut want = BTreeSet::new();
    for f in &fills {
        let json = f.to_string();
        if txns.iter().any(|t| json.contains(&format!("\"{t}\""))) {
            let patient = f["subject"]["reference"].as_str().unwrap();
            want.insert(s.rid(patient.trim_start_matches("Patient/")));
        }
    }
    assert_eq!(got, want);
    assert!(patients.len() > want.len());
    for rid in &got {
        let phi = phi_of(&scope, rid);
        assert!(phi.contains("name") && phi.contains("address"), "{phi:?}");
        for t in [
            "birth-date",
            "medications",
            "phone",
            "member-id",
            "health-plan",
        ] {
            assert!(
                !phi.contains(t),
                "a shipping manifest holds no {t}: {phi:?}"
            );
        }
    }
    // Not an rxvault export: a clear error, nothing changed.
    let before = s.show(&inc);
    let err = s.fails(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--export",
        "0123456789abcdef",
    ]);
    assert!(err.contains("not the ID of an rxvault export"), "{err}");
    assert_eq!(s.show(&inc)["scope"], before["scope"]);

    // Safe harbor: the export was plaintext, so it is reportable.
    let a = s.ok(&[
        "breach",
        "assess",
        "--incident",
        &inc,
        "--taken",
        &format!("export:{export_id}"),
        "--keys-compromised",
        "no",
    ]);
    assert!(a.starts_with("REPORTABLE"), "{a}");
    assert!(a.contains("PLAINTEXT"), "{a}");
}

#[test]
fn a_leaked_file_is_matched_through_the_blind_indexes() {
    let s = Scratch::new();
    let patients = s.vault(30);
    let leaked = s.path("leak.csv");
    let mut csv = String::from("Last Name,First Name,DOB,Phone,Medication\n");
    let chosen = &patients[3..8];
    for p in chosen {
        let n = &p["name"][0];
        csv.push_str(&format!(
            "{},{},{},,lisinopril\n",
            n["family"].as_str().unwrap(),
            n["given"][0].as_str().unwrap(),
            p["birthDate"].as_str().unwrap()
        ));
    }
    csv.push_str("Nobody,Nemo,1901-01-01,555-000-0000,aspirin\n");
    std::fs::write(&leaked, csv).unwrap();
    let inc = s.incident("2026-11-28", &[]);
    let scope: Value = serde_json::from_str(&s.ok(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--leaked-file",
        leaked.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    let want: BTreeSet<String> = chosen.iter().map(|p| s.rid(id(p))).collect();
    assert!(affected(&scope).is_superset(&want));
    let leaked = &scope["leaked"];
    assert_eq!(leaked["rows"], 6);
    assert_eq!(leaked["unmatched"], serde_json::json!([6]));
    assert_eq!(leaked["matched"].as_array().unwrap().len(), 5);
    let phi = phi_of(&scope, want.iter().next().unwrap());
    assert_eq!(
        phi,
        ["name", "phone", "birth-date", "medications"]
            .into_iter()
            .collect(),
        "the file's columns"
    );

    // The same people as NDJSON objects (as attackers post them): matched
    // by phone alone, probable (a phone can be a household's).
    let ndjson_file = s.path("leak.ndjson");
    let mut lines = String::new();
    for p in chosen {
        let phone = p["telecom"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["system"] == "phone")
            .unwrap()["value"]
            .clone();
        lines.push_str(&serde_json::json!({"telephone": phone, "drug": "x"}).to_string());
        lines.push('\n');
    }
    std::fs::write(&ndjson_file, lines).unwrap();
    let other = s.incident("2026-11-28", &[]);
    let by_phone: Value = serde_json::from_str(&s.ok(&[
        "breach",
        "scope",
        "--incident",
        &other,
        "--leaked-file",
        ndjson_file.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert!(affected(&by_phone).is_superset(&want));
    assert_eq!(by_phone["leaked"]["unmatched"], serde_json::json!([]));
    for m in by_phone["leaked"]["matched"].as_array().unwrap() {
        assert_ne!(m["confidence"], "exact", "{m}");
    }

    // A malformed CSV: a clear error, nothing changed.
    let bad = s.path("bad.csv");
    std::fs::write(&bad, "family,dob\nSmith,1970-01-01,extra\n").unwrap();
    let before = s.show(&inc);
    let err = s.fails(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--leaked-file",
        bad.to_str().unwrap(),
    ]);
    assert!(
        err.contains("malformed CSV") && err.contains("row 1"),
        "{err}"
    );
    assert_eq!(s.show(&inc)["scope"], before["scope"]);
}

#[test]
fn safe_harbor_bad_input_and_overlaps() {
    let s = Scratch::new();
    s.vault(5);
    let inc = s.incident(
        "2026-11-20",
        &[
            "--occurred-from",
            "2026-11-01",
            "--occurred-to",
            "2026-11-10",
        ],
    );
    // A stolen data directory, keys not compromised: not reportable.
    let a = s.ok(&[
        "breach",
        "assess",
        "--incident",
        &inc,
        "--taken",
        "data-dir",
        "--keys-compromised",
        "no",
    ]);
    assert!(a.starts_with("NOT REPORTABLE"), "{a}");
    assert!(
        a.contains("AES-256-GCM") && a.contains("key file at"),
        "{a}"
    );
    let status = s.ok(&["breach", "status", "--incident", &inc]);
    assert!(status.contains("not reportable"), "{status}");
    assert!(!status.contains("OPEN"), "{status}");
    // The same with a compromised key: the full scope.
    let a = s.ok(&[
        "breach",
        "assess",
        "--incident",
        &inc,
        "--taken",
        "data-dir",
        "--keys-compromised",
        "yes",
    ]);
    assert!(a.starts_with("REPORTABLE"), "{a}");
    assert!(
        s.ok(&["breach", "status", "--incident", &inc])
            .contains("OPEN")
    );

    // Risk assessment: edits audited, sign-off only once all reviewed.
    let err = s.fails(&["breach", "sign-off", "--incident", &inc]);
    assert!(err.contains("factor 1 has not been reviewed"), "{err}");
    for n in ["1", "2", "3", "4"] {
        s.ok(&[
            "breach",
            "risk",
            "--incident",
            &inc,
            "--factor",
            n,
            "--answer",
            "reviewed",
        ]);
    }
    s.ok(&["breach", "sign-off", "--incident", &inc]);
    assert_eq!(s.show(&inc)["assessment"]["signed_off_by"], "privacy");

    // Overlapping incidents are refused, naming the other one.
    let err = s.fails(&[
        "breach",
        "new",
        "--discovered",
        "2026-11-21",
        "--summary",
        "x",
        "--occurred-from",
        "2026-11-05",
    ]);
    assert!(err.contains(&inc) && err.contains("overlaps"), "{err}");
    let other = s.incident(
        "2026-11-21",
        &["--occurred-from", "2026-11-05", "--allow-overlap"],
    );
    let status = s.ok(&["breach", "status", "--incident", &other]);
    assert!(status.contains(&format!("overlaps {inc}")), "{status}");

    // Bad input changes nothing.
    let list = s.ok(&["breach", "list"]);
    let err = s.fails(&["breach", "show", "--incident", "INC-NOPE"]);
    assert!(err.contains("no incident \"INC-NOPE\""), "{err}");
    let err = s.fails(&[
        "breach",
        "scope",
        "--incident",
        "INC-NOPE",
        "--user",
        "mallory",
    ]);
    assert!(err.contains("no incident"), "{err}");
    let err = s.fails(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-02",
    ]);
    assert!(err.contains("window is empty"), "{err}");
    let err = s.fails(&[
        "breach",
        "new",
        "--discovered",
        "2026-13-01",
        "--summary",
        "x",
    ]);
    assert!(err.contains("not a date"), "{err}");
    let err = s.fails(&[
        "breach",
        "new",
        "--discovered",
        "2099-01-01",
        "--summary",
        "x",
    ]);
    assert!(err.contains("after today"), "{err}");
    assert_eq!(s.ok(&["breach", "list"]), list);
    assert!(s.show(&inc)["scope"].is_null());

    // Every act on an incident is in the audit log.
    let log = s.ok(&["audit", "query", "--action", "incident", "--json"]);
    for op in [
        "open",
        "assess",
        "risk-factor-1",
        "sign-off",
        "show",
        "list",
    ] {
        assert!(
            log.contains(&format!("\"operation\":\"{op}\"")),
            "{op}: {log}"
        );
    }
    // Sealed at rest: the summary is not in the database file.
    for f in ["vault.db", "vault.db-wal", "audit.db", "audit.db-wal"] {
        let bytes = std::fs::read(s.data().join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(18).any(|w| w == b"stolen credentials"),
            "{f} holds the summary in the clear"
        );
    }
}

#[test]
fn incidents_and_scopes_on_postgresql() {
    let Some(schema) = rxvault_testkit::pg::Schema::new("breach") else {
        return;
    };
    let s = Scratch::new();
    let patients = s.vault_with(
        12,
        &["--postgres", &schema.url, "--pg-schema", &schema.name],
    );
    let from = mark();
    for p in &patients[2..6] {
        s.ok_as("mallory", &["patient", "show", id(p)]);
    }
    let to = mark();
    let inc = s.incident("2026-11-28", &[]);
    let scope: Value = serde_json::from_str(&s.ok(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--user",
        "mallory",
        "--from",
        &from,
        "--to",
        &to,
        "--json",
    ]))
    .unwrap();
    let want: BTreeSet<String> = patients[2..6].iter().map(|p| s.rid(id(p))).collect();
    assert_eq!(affected(&scope), want);
    assert_eq!(affected(&s.show(&inc)["scope"]), want);
    let a = s.ok(&[
        "breach",
        "assess",
        "--incident",
        &inc,
        "--taken",
        "data-dir",
        "--keys-compromised",
        "no",
    ]);
    assert!(
        a.starts_with("REPORTABLE"),
        "the account read in the clear: {a}"
    );
    assert!(s.ok(&["breach", "list"]).contains(&inc));
}

fn run_tool(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} is installed (scripts/test installs poppler-utils): {e}")
    });
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn outputs_are_an_audited_export_with_letters_mailing_file_and_reports() {
    let s = Scratch::new();
    let patients = s.vault(40);
    let from = mark();
    for p in &patients {
        s.ok_as("mallory", &["patient", "show", id(p)]);
    }
    let to = mark();
    let inc = s.incident("2026-11-20", &["--occurred-from", "2026-11-18"]);
    s.ok(&[
        "breach",
        "scope",
        "--incident",
        &inc,
        "--user",
        "mallory",
        "--from",
        &from,
        "--to",
        &to,
    ]);
    let entity =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/breach/data/entity.example.toml");
    let out = s.path("notices");
    // Plaintext must be said.
    let o = s.run_as(
        "privacy",
        &[
            "breach",
            "outputs",
            "--incident",
            &inc,
            "--out",
            out.to_str().unwrap(),
            "--entity",
            entity.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
    let report: Value = serde_json::from_str(&s.ok(&[
        "breach",
        "outputs",
        "--incident",
        &inc,
        "--out",
        out.to_str().unwrap(),
        "--entity",
        entity.to_str().unwrap(),
        "--plaintext",
        "--json",
    ]))
    .unwrap();
    let export_id = report["export_id"].as_str().unwrap();
    // The outputs are an export the audit log knows, naming everyone.
    let scope = s.ok(&["audit", "export-scope", "--export", export_id]);
    assert!(
        scope.contains("breach-outputs") && scope.contains("40"),
        "{scope}"
    );

    // Mailing file: one row per mailable person, normalised.
    let mailing = std::fs::read_to_string(out.join("mailing.csv")).unwrap();
    let rows = mailing.lines().count() - 1;
    assert_eq!(rows as u64, report["mailable"].as_u64().unwrap());
    assert_eq!(rows as u64 + report["unmailable"].as_u64().unwrap(), 40);
    assert!(
        mailing.starts_with("letter_id,name,address_line_1,address_line_2,city,state,zip,language")
    );
    // Per-state counts add up; HHS report for fewer than 500: annual log.
    let states = std::fs::read_to_string(out.join("state-counts.csv")).unwrap();
    let total: u64 = states
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 40);
    let hhs: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("hhs-report.json")).unwrap())
            .unwrap();
    assert_eq!(hhs["approximate_number_of_individuals_affected"], 40);
    assert_eq!(hhs["discovery_start_date"], "2026-11-20");
    assert_eq!(hhs["breach_start_date"], "2026-11-18");
    assert!(
        hhs["submission"]
            .as_str()
            .unwrap()
            .contains("annual log: submit by 2027-03-01")
    );
    let readable = run_tool(
        "pdftotext",
        &[out.join("hhs-report.pdf").to_str().unwrap(), "-"],
    );
    assert!(
        readable.contains("approximate number of individuals affected: 40"),
        "{readable}"
    );
    for field in [
        "type_of_breach",
        "location_of_breached_information",
        "type_of_protected_health_information",
        "safeguards_in_place_prior_to_breach",
        "actions_taken_in_response",
        "individual_notice",
        "attestation",
    ] {
        assert!(!hhs[field].is_null(), "{field}");
    }

    // Letters: every 164.404(c) element, each person's name, embedded fonts.
    let en = out.join("letters-en-0001.pdf");
    // Words as pdftotext reads them (lines wrap anywhere).
    let words = |t: String| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = words(run_tool("pdftotext", &[en.to_str().unwrap(), "-"]));
    for needle in [
        "What happened",
        "2026-11-18",
        "2026-11-20",
        "What information was involved",
        "medications and prescription details",
        "What you can do",
        "What we are doing",
        "For more information",
        "1-800-555-0199",
    ] {
        assert!(text.contains(needle), "{needle} not in the English letters");
    }
    let mut spanish = 0;
    for p in &patients {
        let n = &p["name"][0];
        let name = format!(
            "{} {}",
            n["given"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" "),
            n["family"].as_str().unwrap()
        );
        let es = p["communication"][0]["language"]["coding"][0]["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("es"));
        if es {
            spanish += 1;
            let t = words(run_tool(
                "pdftotext",
                &[out.join("letters-es-0001.pdf").to_str().unwrap(), "-"],
            ));
            assert!(
                t.contains("Qué sucedió") && t.contains(&name),
                "{name} in Spanish"
            );
        } else {
            assert!(text.contains(&name), "{name} has a letter");
        }
    }
    assert_eq!(out.join("letters-es-0001.pdf").exists(), spanish > 0);
    let fonts = run_tool("pdffonts", &[en.to_str().unwrap()]);
    let line = fonts
        .lines()
        .find(|l| l.contains("DejaVuSans"))
        .expect(&fonts);
    assert!(
        line.contains("CID TrueType") && line.contains(" yes "),
        "{fonts}"
    );

    // Not into a folder that is not empty; status knows the counts now.
    let err = s.fails(&[
        "breach",
        "outputs",
        "--incident",
        &inc,
        "--out",
        out.to_str().unwrap(),
        "--entity",
        entity.to_str().unwrap(),
        "--plaintext",
    ]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(s.show(&inc)["counts"]["total"], 40);
}
