//! The `rxvault` binary end to end, as real processes: the CLI contract,
//! no plaintext at rest (SQLite files and a PostgreSQL dump), SIGKILL in the
//! middle of an import and of a key rotation.

use rxvault_testkit::{pg::Schema, scan, shared_data};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_rxvault");

/// A scratch area: the data directory and, apart from it, keys, inputs and
/// outputs. `RXVAULT_KEY_DIR` points into it so no test writes to ~/.config.
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

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("RXVAULT_KEY_DIR", self.path("default-keys"))
            .env("TMPDIR", self.path("tmp"))
            .env_remove("RXVAULT_DATA")
            .env_remove("RXVAULT_KEY_FILE")
            .env_remove("RXVAULT_PASSPHRASE_FILE");
        std::fs::create_dir_all(self.path("tmp")).unwrap();
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rxvault {args:?} failed ({:?}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn init(&self, extra: &[&str]) {
        let data = self.data();
        let key = self.key();
        let mut args = vec![
            "init",
            "--data",
            data.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// `args` with `--data DATA --key-file KEY` appended.
    fn vault(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--data".into(), self.data().display().to_string()]);
        v.extend(["--key-file".into(), self.key().display().to_string()]);
        v
    }

    fn ok_vault(&self, args: &[&str]) -> String {
        let v = self.vault(args);
        self.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A person enrolled through the command line the way people are: the
    /// local operator adds them (a one-time enrolment code to a file) and,
    /// in single-operator mode switched on for the moment, approves their
    /// role; the person redeems the code with `password` and enrols TOTP,
    /// confirming with a code typed on standard input (the previous time
    /// step's, so a login right after is no replay). Returns the file with
    /// the TOTP secret.
    fn enrol(&self, name: &str, role: &str, password: &str) -> PathBuf {
        common::enrol(
            &|args| self.cmd(args),
            &|args| self.vault(args),
            self.tmp.path(),
            name,
            role,
            password,
        )
    }

    fn synth(&self, name: &str, patients: u64, seed: u64) -> PathBuf {
        let out = self.path(name);
        self.ok(&[
            "synth",
            "--patients",
            &patients.to_string(),
            "--seed",
            &seed.to_string(),
            "--as-of",
            "2026-11-28",
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    }
}

fn read_ndjson(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const STORED: [&str; 5] = [
    "Patient",
    "Coverage",
    "MedicationRequest",
    "MedicationDispense",
    "AllergyIntolerance",
];

fn resources(dirs: &[PathBuf]) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for d in dirs {
        for ty in STORED {
            for r in read_ndjson(&d.join(format!("{ty}.ndjson"))) {
                out.insert(
                    (ty.to_string(), r["id"].as_str().unwrap().to_string()),
                    Value::Object(r),
                );
            }
        }
    }
    out
}

/// Every PHI value of the input that a scan must not find: names (and
/// their normalised upper-case form), address lines, cities, phone numbers
/// (as written and as digits), emails, identifiers (MRNs, SSNs, member IDs,
/// Rx numbers, transaction IDs, tracking numbers), birth dates in ISO and US
/// formats.
///
/// Needles shorter than 7 bytes are left out: over hundreds of megabytes of
/// ciphertext a 4- or 5-byte string turns up by chance (a 7-byte one with
/// probability ~10^-9 per megabyte). Short names are still covered, inside
/// the full-name needles ("given family").
fn phi_needles(dirs: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut set = BTreeSet::new();
    let mut add = |s: &str| {
        if s.len() >= 7 {
            set.insert(s.to_string());
        }
    };
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    for ((ty, _), r) in resources(dirs) {
        match ty.as_str() {
            "Patient" => {
                for n in r["name"].as_array().into_iter().flatten() {
                    let family = n["family"].as_str().unwrap_or_default();
                    add(family);
                    add(&family.to_uppercase());
                    for g in n["given"].as_array().into_iter().flatten() {
                        let g = g.as_str().unwrap();
                        add(g);
                        add(&format!("{g} {family}"));
                    }
                }
                for a in r["address"].as_array().into_iter().flatten() {
                    let mut lines = Vec::new();
                    strings(&a["line"], &mut lines);
                    lines.iter().for_each(|l| add(l));
                    add(a["city"].as_str().unwrap_or_default());
                }
                for t in r["telecom"].as_array().into_iter().flatten() {
                    let v = t["value"].as_str().unwrap_or_default();
                    add(v);
                    add(&v.chars().filter(char::is_ascii_digit).collect::<String>());
                }
                for i in r["identifier"].as_array().into_iter().flatten() {
                    add(i["value"].as_str().unwrap_or_default());
                }
                if let Some(b) = r["birthDate"].as_str().filter(|b| b.len() == 10) {
                    add(b);
                    add(&format!("{}/{}/{}", &b[5..7], &b[8..10], &b[..4]));
                }
            }
            "Coverage" => {
                add(r["subscriberId"].as_str().unwrap_or_default());
                for i in r["identifier"].as_array().into_iter().flatten() {
                    add(i["value"].as_str().unwrap_or_default());
                }
            }
            "MedicationRequest" | "MedicationDispense" => {
                for i in r["identifier"].as_array().into_iter().flatten() {
                    add(i["value"].as_str().unwrap_or_default());
                }
                for e in r["extension"].as_array().into_iter().flatten() {
                    add(e["valueString"].as_str().unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    set.into_iter().map(String::into_bytes).collect()
}

fn assert_no_findings(findings: &[scan::Finding], needles: &[Vec<u8>]) {
    if !findings.is_empty() {
        let places: BTreeSet<&str> = findings.iter().map(|f| f.place.as_str()).collect();
        panic!(
            "{} plaintext PHI occurrences found (first needle #{}, {} bytes) in: {places:?}",
            findings.len(),
            findings[0].needle,
            needles[findings[0].needle].len()
        );
    }
}

#[test]
fn no_plaintext_phi_at_rest_on_sqlite_or_in_logs() {
    let s = Scratch::new();
    s.init(&[]);
    let synth = s.synth("synth", 1000, 42);
    let inputs = [shared_data("synthea-100"), shared_data("synthea-10"), synth];
    let mut logs = Vec::new();
    for input in &inputs {
        let v = s.vault(&["-vv", "import"]);
        let mut args: Vec<&str> = v.iter().map(String::as_str).collect();
        args.push(input.to_str().unwrap());
        let out = s.cmd(&args).env("RXVAULT_LOG", "trace").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.extend(out.stdout);
        logs.extend(out.stderr);
    }
    // Reads, searches, status and a rotation also leave nothing behind.
    let status = s.run(
        &s.vault(&["-vv", "status"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    logs.extend(status.stderr);
    let rotate = s.run(
        &s.vault(&["-vv", "keys", "rotate", "--reencrypt"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(rotate.status.success());
    logs.extend(rotate.stdout);
    logs.extend(rotate.stderr);

    let needles = phi_needles(&inputs);
    assert!(
        needles.len() > 5000,
        "the scan must cover the data: only {} needles",
        needles.len()
    );
    let compiled = scan::Needles::new(&needles);
    // The needles are really in the input: the scan can find them.
    let input_hits = scan::dir(&inputs[0], &compiled);
    assert!(
        input_hits.len() > 1000,
        "sanity: the needles match the plaintext input"
    );

    let files = scan::files(&s.data());
    assert!(files.iter().any(|f| f.ends_with("vault.db")), "{files:?}");
    let mut findings = scan::dir(&s.data(), &compiled);
    findings.extend(scan::dir(&s.path("tmp"), &compiled));
    findings.extend(scan::bytes("logs", &logs, &compiled));
    assert_no_findings(&findings, &needles);
}

#[test]
fn no_plaintext_phi_at_rest_on_postgres() {
    let Some(schema) = Schema::new("phi") else {
        return;
    };
    let s = Scratch::new();
    let data = s.data();
    let key = s.key();
    s.ok(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--postgres",
        &schema.url,
        "--pg-schema",
        &schema.name,
    ]);
    let synth = s.synth("synth", 1000, 43);
    let inputs = [shared_data("synthea-100"), shared_data("synthea-10"), synth];
    let mut logs = Vec::new();
    for input in &inputs {
        let v = s.vault(&["import"]);
        let mut args: Vec<&str> = v.iter().map(String::as_str).collect();
        args.push(input.to_str().unwrap());
        let out = s.cmd(&args).env("RXVAULT_LOG", "trace").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.extend(out.stderr);
    }
    let dump = Command::new("pg_dump")
        .args([
            "--no-owner",
            "--schema",
            &schema.name,
            "--dbname",
            &schema.url,
        ])
        .output()
        .expect("pg_dump (postgresql-client) must be installed");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(dump.stdout.len() > 1_000_000, "the dump holds the data");
    // bytea values are hex text in a plain dump: they are scanned decoded,
    // as the bytes they are (hex text of ciphertext would match all-digit
    // needles such as phone digits by chance). All-digit needles under 10
    // digits (Rx numbers, MRNs) are left out: in a text dump they collide
    // with the integer columns (data key ids, timestamps), which are not
    // PHI; their bytes are still looked for in the SQLite test.
    let all: Vec<Vec<u8>> = phi_needles(&inputs)
        .into_iter()
        .filter(|n| n.len() >= 10 || !n.iter().all(u8::is_ascii_digit))
        .collect();
    let compiled = scan::Needles::new(&all);
    let decoded = decode_bytea(&dump.stdout);
    assert!(
        decoded.len() < dump.stdout.len() * 3 / 4,
        "the dump's data is bytea, and was decoded"
    );
    let mut findings = scan::bytes("pg_dump", &decoded, &compiled);
    findings.extend(scan::bytes("logs", &logs, &compiled));
    findings.extend(scan::dir(&s.data(), &compiled));
    assert_no_findings(&findings, &all);
}

/// A plain `pg_dump` with every bytea value (`\\x` and hex digits in COPY
/// data) replaced by the bytes it stands for.
fn decode_bytea(dump: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dump.len());
    let mut rest = dump;
    while let Some(at) = rest.windows(2).position(|w| w == b"\\x") {
        out.extend_from_slice(&rest[..at]);
        let hex = &rest[at + 2..];
        let digits = hex.iter().take_while(|b| b.is_ascii_hexdigit()).count() & !1;
        out.extend(
            hex[..digits]
                .chunks(2)
                .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()),
        );
        rest = &hex[digits..];
    }
    out.extend_from_slice(rest);
    out
}

/// Reads `child`'s stderr until a line containing `marker`, then SIGKILLs it.
fn kill_when(mut child: std::process::Child, marker: &str) -> String {
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return seen;
        }
    }
    let status = child.wait().unwrap();
    panic!("the process ended ({status:?}) before printing {marker:?}:\n{seen}");
}

#[test]
fn sigkill_mid_import_then_rerun_gives_exactly_the_source_records() {
    let s = Scratch::new();
    s.init(&[]);
    let input = s.synth("synth", 4000, 9);
    let expected = resources(std::slice::from_ref(&input));

    let v = s.vault(&["import", "--batch", "200"]);
    let mut args: Vec<&str> = v.iter().map(String::as_str).collect();
    args.push(input.to_str().unwrap());
    let child = s
        .cmd(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    kill_when(child, "committed");

    // The vault opens cleanly and holds whole batches only.
    let conn = rusqlite_check(&s.data().join("vault.db"));
    assert!(
        conn < expected.len() as u64,
        "killed mid-way: {conn} of {} records stored",
        expected.len()
    );
    assert!(conn > 0);
    s.ok_vault(&["status"]);

    // Rerun: everything, once.
    let mut args: Vec<&str> = v.iter().map(String::as_str).collect();
    args.push(input.to_str().unwrap());
    s.ok(&args);
    let out = s.path("export");
    s.ok_vault(&[
        "export",
        "fhir",
        "--out",
        out.to_str().unwrap(),
        "--plaintext",
    ]);
    let exported = resources(&[out]);
    assert_eq!(
        exported.len(),
        expected.len(),
        "no duplicates, nothing missing"
    );
    assert!(exported == expected, "exported records equal the source");
}

/// Runs SQLite's integrity check and returns the number of records stored.
fn rusqlite_check(db: &Path) -> u64 {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check; SELECT (SELECT COUNT(*) FROM patients) + (SELECT COUNT(*) FROM coverages) + (SELECT COUNT(*) FROM prescriptions) + (SELECT COUNT(*) FROM fills) + (SELECT COUNT(*) FROM allergies);")
        .output()
        .expect("sqlite3 CLI");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ok"), "integrity check: {text}");
    lines.next().unwrap().parse().unwrap()
}

#[test]
fn sigkill_mid_reencryption_then_rerun_completes_the_rotation() {
    let s = Scratch::new();
    s.init(&[]);
    let input = s.synth("synth", 1500, 4);
    let mut args = s.vault(&["import"]);
    args.push(input.display().to_string());
    s.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let before = s.path("before");
    s.ok_vault(&[
        "export",
        "fhir",
        "--out",
        before.to_str().unwrap(),
        "--plaintext",
    ]);

    let v = s.vault(&["keys", "rotate", "--reencrypt", "--page", "50"]);
    let child = s
        .cmd(&v.iter().map(String::as_str).collect::<Vec<_>>())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    kill_when(child, "re-encrypting records");
    let status = s.ok_vault(&["keys", "status"]);
    assert!(status.contains("rotation in progress"), "{status}");

    let done = s.ok_vault(&["keys", "rotate", "--reencrypt", "--page", "50"]);
    assert!(done.contains("(resumed)"), "{done}");
    let status = s.ok_vault(&["keys", "status"]);
    assert!(!status.contains("rotation in progress"), "{status}");
    let after = s.path("after");
    s.ok_vault(&[
        "export",
        "fhir",
        "--out",
        after.to_str().unwrap(),
        "--plaintext",
    ]);
    assert!(
        resources(&[before]) == resources(&[after]),
        "the data survived the interrupted rotation"
    );
    let key = std::fs::read_to_string(s.key()).unwrap();
    assert_eq!(key.lines().filter(|l| l.starts_with("kek ")).count(), 1);

    // Audited where it ran (issue 8, item 2): the killed run's start, the
    // rerun resuming from the phase the killed run committed, and its end;
    // the killed run has no end.
    let audit = s.ok_vault(&["audit", "query", "--action", "key-admin", "--json"]);
    let steps: Vec<(String, String, Option<String>)> = audit
        .lines()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            let r = &e["action"]["details"]["rotation"];
            assert_eq!(e["action"]["details"]["operation"], "rotate-kek");
            assert_eq!((r["from"].as_u64(), r["to"].as_u64()), (Some(1), Some(2)));
            assert_eq!(r["reencrypt"], true);
            assert_eq!(e["actor"]["kind"], "local");
            (
                r["step"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
                r["phase"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("started".into(), "success".into(), None),
            (
                "resumed".into(),
                "success".into(),
                Some("reencrypting".into())
            ),
            ("finished".into(), "success".into(), None),
        ]
    );
    assert!(
        s.run(
            &s.vault(&["audit", "verify"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        )
        .status
        .success(),
        "the log verifies after the KEK changed under the rotation's entries"
    );
}

#[test]
fn cli_contract_and_clear_errors() {
    let s = Scratch::new();
    let data = s.data();
    let d = data.to_str().unwrap();

    // Default key location: outside the data directory, mode 0600.
    let out = s.ok(&["init", "--data", d]);
    let key_line = out.lines().find(|l| l.starts_with("key file: ")).unwrap();
    let key_path = PathBuf::from(
        key_line
            .trim_start_matches("key file: ")
            .split(" (")
            .next()
            .unwrap(),
    );
    assert!(key_path.starts_with(s.path("default-keys")), "{key_path:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        scan::files(&data)
            .iter()
            .all(|f| !f.to_string_lossy().ends_with(".key"))
    );

    // init refuses an existing vault and a key inside the data directory.
    let again = s.run(&["init", "--data", d]);
    assert_eq!(again.status.code(), Some(1));
    let inside = s.run(&[
        "init",
        "--data",
        s.path("d2").to_str().unwrap(),
        "--key-file",
        s.path("d2/k.key").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&inside.stderr).contains("inside the data directory"));

    // import with the default key; bad records make exit code 3 but import the rest.
    let bad = s.path("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"ok-1\",\"name\":[{\"family\":\"Nguyen\"}],\"birthDate\":\"1950-03-04\",\"telecom\":[{\"system\":\"phone\",\"value\":\"555-123-4567\"}]}\n{oops\n",
    )
    .unwrap();
    let out = s.run(&["import", "--data", d, bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Patient.ndjson:2: malformed JSON"), "{err}");

    // find and show
    let found = s.ok(&[
        "patient",
        "find",
        "--data",
        d,
        "--family",
        "nguyen",
        "--birth-date",
        "03/04/1950",
    ]);
    assert!(found.starts_with("ok-1 "), "{found}");
    let found = s.ok(&[
        "patient",
        "find",
        "--data",
        d,
        "--phone",
        "(555) 123 4567",
        "--json",
    ]);
    let p: Value = serde_json::from_str(found.lines().next().unwrap()).unwrap();
    assert_eq!(p["id"], "ok-1");
    let shown = s.ok(&["patient", "show", "--data", d, "ok-1"]);
    assert!(
        shown.contains("Nguyen") && shown.contains("1950-03-04"),
        "{shown}"
    );
    let missing = s.run(&["patient", "show", "--data", d, "nobody"]);
    assert_eq!(missing.status.code(), Some(1));
    // No search given: a usage error (exit 2), not a panic or a failure.
    let none = s.run(&["patient", "find", "--data", d]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("give exactly one search"));

    // Exports must be encrypted or explicitly plaintext.
    let refused = s.run(&[
        "export",
        "fhir",
        "--data",
        d,
        "--out",
        s.path("e1").to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--plaintext"));
    assert!(!s.path("e1").exists());
    let recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    s.ok(&[
        "export",
        "fhir",
        "--data",
        d,
        "--out",
        s.path("e2").to_str().unwrap(),
        "--recipient",
        recipient,
    ]);
    assert!(s.path("e2/Patient.ndjson.age").exists() && s.path("e2/manifest.json").exists());
    s.ok(&[
        "export",
        "shipping",
        "--data",
        d,
        "--date",
        "2026-11-28",
        "--out",
        s.path("ship.csv").to_str().unwrap(),
        "--plaintext",
    ]);

    // A missing key file names the path and the flag.
    let out = s.run(&[
        "status",
        "--data",
        d,
        "--key-file",
        s.path("gone.key").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gone.key") && err.contains("not found"),
        "{err}"
    );

    // A key file other users can read is refused.
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = s.run(&["status", "--data", d]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    // Not a vault.
    let out = s.run(&["status", "--data", s.path("nowhere").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("rxvault init"));

    // Passphrase vaults: wrong passphrase is a clear error.
    let pass = s.path("pass.txt");
    std::fs::write(&pass, "a long enough passphrase here\n").unwrap();
    let pd = s.path("pd");
    s.ok(&[
        "init",
        "--data",
        pd.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    s.ok(&[
        "status",
        "--data",
        pd.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    let wrong = s.path("wrong.txt");
    std::fs::write(&wrong, "not the passphrase at all\n").unwrap();
    let out = s.run(&[
        "status",
        "--data",
        pd.to_str().unwrap(),
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
}

/// Issue 4: SIGKILL the server under a concurrent read load, restart, and
/// the audit log verifies, and every read a client received a response for
/// has its audit entry ("no audit, no access").
#[test]
fn sigkill_server_under_load_every_answered_read_is_audited() {
    sigkill_server_under_load(None);
}

/// The same on PostgreSQL: the chain deployment (issue 9, item 6: `serve`
/// aborted at startup on a PostgreSQL vault).
#[test]
fn sigkill_server_under_load_every_answered_read_is_audited_on_postgres() {
    if let Some(schema) = Schema::new("serve") {
        sigkill_server_under_load(Some(&schema));
    }
}

fn sigkill_server_under_load(pg: Option<&Schema>) {
    use rxvault_vault::{KeySource, Vault};
    let s = Scratch::new();
    match pg {
        None => s.init(&[]),
        Some(schema) => s.init(&["--postgres", &schema.url, "--pg-schema", &schema.name]),
    }
    let input = s.synth("synth", 200, 17);
    let mut args = s.vault(&["import"]);
    args.push(input.display().to_string());
    s.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let totp = s.enrol("pharm", "pharmacist", "violet harbor lantern 1927");
    // This is a durability test, not a scrape: sixteen clients reading
    // as fast as they can would be stopped by detection's volume rules
    // (tests/detect.rs shows that), so they are switched off here.
    std::fs::write(
        s.data().join("detect.toml"),
        "[volume_hour]\nenabled = false\n[volume_day]\nenabled = false\n[volume_week]\nenabled = false\n",
    )
    .unwrap();

    let port = 21000 + (std::process::id() % 20000) as u16 + u16::from(pg.is_some());
    let listen = format!("127.0.0.1:{port}");
    let serve = |s: &Scratch| {
        let v = s.vault(&["serve", "--listen", &listen]);
        s.cmd(&v.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut server = serve(&s);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let cert = s.data().join("tls/cert.pem");
    let patients: Vec<String> = read_ndjson(&input.join("Patient.ndjson"))
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let (session_id, answered) = runtime.block_on(async {
        // Wait for the server and its certificate.
        let client = loop {
            if let Ok(pem) = std::fs::read_to_string(&cert) {
                let tls = rxvault_crypto::tls::client_config_trusting(&pem).unwrap();
                let c = reqwest::Client::builder()
                    .use_preconfigured_tls((*tls).clone())
                    .build()
                    .unwrap();
                if c.get(format!("{base}/api/v1/health")).send().await.is_ok() {
                    break c;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let step: Value = client
            .post(format!("{base}/api/v1/sessions"))
            .json(
                &serde_json::json!({"username": "pharm", "password": "violet harbor lantern 1927"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = std::fs::read_to_string(&totp).unwrap();
        let code = String::from_utf8(
            Command::new("oathtool")
                .args(["--totp", "-b", secret.trim()])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let session: Value = client
            .post(format!("{base}/api/v1/sessions/totp"))
            .json(&serde_json::json!({"pending_token": step["pending_token"], "code": code.trim()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = session["token"].as_str().unwrap().to_string();
        // 16 concurrent readers until the server dies.
        let mut tasks = Vec::new();
        for c in 0..16usize {
            let (client, base, token, patients) = (
                client.clone(),
                base.clone(),
                token.clone(),
                patients.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                for n in 0.. {
                    let id = &patients[(c * 13 + n * 7) % patients.len()];
                    match client
                        .get(format!("{base}/fhir/Patient/{id}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => {
                            // Only a complete body counts as an answer.
                            if r.json::<Value>().await.is_ok() {
                                ok.push(id.clone());
                            }
                        }
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(_) => break,
                    }
                }
                ok
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        server.kill().unwrap(); // SIGKILL, mid-load
        server.wait().unwrap();
        let mut answered = Vec::new();
        for t in tasks {
            answered.extend(t.await.unwrap());
        }
        (
            session["session_id"].as_str().unwrap().to_string(),
            answered,
        )
    });
    assert!(
        answered.len() > 100,
        "the load ran: {} answered reads",
        answered.len()
    );

    // Restart: the server comes up on the same log.
    let mut again = serve(&s);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    again.kill().unwrap();
    again.wait().unwrap();

    let verify = s.run(
        &s.vault(&["audit", "verify"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        verify.status.success(),
        "audit verify after SIGKILL:\n{}\n{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let vault = Vault::open(
        &s.data(),
        Some(KeySource::File(s.key())),
        std::sync::Arc::new(rxvault_model::SystemClock),
    )
    .unwrap();
    let reads = vault
        .audit()
        .unwrap()
        .reader()
        .query(&rxvault_audit::Query {
            session: Some(session_id),
            action: Some(rxvault_audit::ActionKind::Read),
            ..Default::default()
        })
        .unwrap();
    let mut audited: BTreeMap<rxvault_model::Rid, usize> = BTreeMap::new();
    for e in &reads {
        for p in &e.entry.patients {
            *audited.entry(*p).or_default() += 1;
        }
    }
    let mut answered_per: BTreeMap<rxvault_model::Rid, usize> = BTreeMap::new();
    for id in &answered {
        *answered_per
            .entry(vault.rid(rxvault_model::RecordKind::Patient, id))
            .or_default() += 1;
    }
    for (rid, n) in &answered_per {
        assert!(
            audited.get(rid).copied().unwrap_or(0) >= *n,
            "a read answered {n} times has {:?} audit entries",
            audited.get(rid)
        );
    }
    assert!(reads.len() >= answered.len());
}

/// Issue 9, item 12: `rxvault keys status | true` panicked on the closed
/// pipe (exit 101), and logs written to a pipe carried ANSI colour codes.
#[test]
fn a_closed_stdout_ends_output_quietly_and_piped_logs_have_no_colour_codes() {
    let s = Scratch::new();
    s.init(&[]);
    for args in [&["keys", "status"][..], &["status"][..]] {
        let v = s.vault(args);
        let mut child = s
            .cmd(&v.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command prints anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let input = s.synth("synth", 5, 3);
    let mut args = s.vault(&["import"]);
    args.push(input.display().to_string());
    let out = s
        .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("RXVAULT_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG") || stderr.contains("INFO"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "colour codes in piped logs");
}

/// Runs SQL on the vault's SQLite file with the `sqlite3` shell (the
/// tamperer has the database, not the key).
fn sqlite3(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 9 through the binary: an allergy re-pointed at another patient
/// fails that patient's chart (exit 1, an integrity error) and never shows
/// in it; a link altered out of every chart is found by `rxvault check`; a
/// corrupt wrapped data key is named, and a wrong key file is still called
/// one.
#[test]
fn issue_9_tampered_links_and_keys_get_the_right_errors() {
    let s = Scratch::new();
    s.init(&[]);
    let input = s.synth("synth", 12, 3);
    let mut args = s.vault(&["import"]);
    args.push(input.display().to_string());
    s.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let db = s.data().join("vault.db");
    let patients: Vec<String> = read_ndjson(&input.join("Patient.ndjson"))
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let show_all = || -> Vec<Output> {
        patients
            .iter()
            .map(|id| {
                let v = s.vault(&["patient", "show", id]);
                s.run(&v.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect()
    };
    let check = || {
        let v = s.vault(&["check"]);
        s.run(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert!(show_all().iter().all(|o| o.status.success()));
    assert_eq!(check().status.code(), Some(0));

    // The first allergy moved to another patient.
    sqlite3(
        &db,
        "CREATE TABLE saved AS SELECT rid, patient_rid FROM allergies ORDER BY rid LIMIT 1; \
         UPDATE allergies SET patient_rid = (SELECT p.rid FROM patients p, saved s \
         WHERE p.rid <> s.patient_rid ORDER BY p.rid LIMIT 1) WHERE rid = (SELECT rid FROM saved);",
    );
    let shown = show_all();
    let failed: Vec<&Output> = shown.iter().filter(|o| !o.status.success()).collect();
    assert_eq!(failed.len(), 1, "exactly the chart it was moved to fails");
    assert_eq!(failed[0].status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed[0].stderr);
    assert!(
        err.contains("integrity check failed for allergies record"),
        "{err}"
    );
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("allergies record"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Its link changed to a key no patient has: in no chart, every chart
    // opens, and the check names it.
    sqlite3(
        &db,
        "UPDATE allergies SET patient_rid = CAST(substr((SELECT patient_rid FROM saved), 1, 15) || \
         CASE WHEN substr((SELECT patient_rid FROM saved), 16, 1) = X'00' THEN X'01' ELSE X'00' END \
         AS BLOB) WHERE rid = (SELECT rid FROM saved);",
    );
    assert!(show_all().iter().all(|o| o.status.success()));
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("links to no stored patient"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sqlite3(
        &db,
        "UPDATE allergies SET patient_rid = (SELECT patient_rid FROM saved) \
         WHERE rid = (SELECT rid FROM saved); DROP TABLE saved;",
    );
    assert_eq!(check().status.code(), Some(0));

    // A wrong key file for this vault.
    let wrong = s.path("keys/wrong.key");
    let text = std::fs::read_to_string(s.key()).unwrap();
    let other: String = text
        .lines()
        .map(|l| {
            if l.starts_with("kek 1 ") {
                format!("kek 1 {}\n", "A".repeat(43))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&wrong, other).unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let d = s.data();
    let out = s.run(&[
        "status",
        "--data",
        d.to_str().unwrap(),
        "--key-file",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the key file does not open this vault"),
        "{err}"
    );

    // A corrupt wrapped data key: named, not blamed on the key file.
    sqlite3(
        &db,
        "UPDATE data_keys SET wrapped = randomblob(length(wrapped)) \
         WHERE id = (SELECT MAX(id) FROM data_keys WHERE purpose = 1);",
    );
    let v = s.vault(&["status"]);
    let out = s.run(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wrapped data key")
            && err.contains("does not authenticate")
            && err.contains("corrupt or was tampered with")
            && !err.contains("does not open this vault"),
        "{err}"
    );
}

/// Issue 9, item 12, as separate processes: twenty `patient find`
/// commands (each seals its audit entry) leave the vault with one data key
/// (each process made its own before), and a clerk typing Gonzalez, or a
/// Mac sending "Gonza\u{301}lez", finds González.
#[test]
fn cli_processes_share_a_data_key_and_accents_fold() {
    let s = Scratch::new();
    s.init(&[]);
    let input = s.path("accents");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"gz-1\",\"name\":[{\"family\":\"González\",\"given\":[\"Lucía\"]}],\"birthDate\":\"1958-02-11\"}\n",
    )
    .unwrap();
    s.ok_vault(&["import", input.to_str().unwrap()]);
    for (i, typed) in ["Gonzalez", "GONZALEZ", "Gonza\u{301}lez", "gonzález"]
        .iter()
        .cycle()
        .take(20)
        .enumerate()
    {
        let found = s.ok_vault(&[
            "patient",
            "find",
            "--family",
            typed,
            "--birth-date",
            "1958-02-11",
        ]);
        assert!(found.starts_with("gz-1 "), "find {i} ({typed:?}): {found}");
    }
    let out = Command::new("sqlite3")
        .arg(s.data().join("vault.db"))
        .arg("SELECT COUNT(*) FROM data_keys WHERE purpose = 1;")
        .output()
        .expect("sqlite3 CLI");
    let data_keys: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(data_keys, 1, "22 processes made {data_keys} data keys");
}

/// Separation of duties from the command line (issue 9, item 2): no
/// command sets a person's password; the first administrator is given at
/// once, every other sensitive role waits for a second person, the local
/// operator cannot approve their own request unless single-operator mode
/// is on, and each step is in the audit log with its outcome.
#[test]
fn separation_of_duties_from_the_command_line() {
    let s = Scratch::new();
    s.init(&[]);
    // The old ways are gone.
    let pw = s.path("pw.txt");
    std::fs::write(&pw, "violet harbor lantern 1927\n").unwrap();
    let v = s.vault(&[
        "user",
        "add",
        "pat",
        "--role",
        "pharmacist",
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    let out = s.run(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        out.status.code(),
        Some(2),
        "no --password-file for user add"
    );
    let v = s.vault(&["user", "password", "pat"]);
    let out = s.run(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(2), "no `user password`");

    let owner = s.ok_vault(&["user", "add", "owner", "--role", "administrator"]);
    assert!(owner.contains("role: administrator"), "{owner}");
    assert!(owner.contains("enrolment code for owner"), "{owner}");
    let pat = s.ok_vault(&["user", "add", "pat", "--role", "pharmacist"]);
    assert!(pat.contains("waits for a second person"), "{pat}");
    let requests: Vec<Value> = s
        .ok_vault(&["user", "requests", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["target"], "pat");
    assert_eq!(requests[0]["requested_by"], "local");
    let id = requests[0]["id"].as_str().unwrap().to_string();
    let v = s.vault(&["user", "approve", &id]);
    let out = s.run(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        out.status.code(),
        Some(1),
        "the local operator's own request"
    );
    assert!(
        s.ok_vault(&["user", "single-operator"])
            .contains("single-operator mode is off")
    );
    s.ok_vault(&["user", "single-operator", "on"]);
    assert!(
        s.ok_vault(&["user", "approve", &id])
            .contains("approved: role pharmacist for pat")
    );
    s.ok_vault(&["user", "single-operator", "off"]);
    assert!(s.ok_vault(&["user", "requests", "--json"]).is_empty());
    let list = s.ok_vault(&["user", "list", "--json"]);
    assert!(list.contains(r#""role":"pharmacist""#), "{list}");

    let audit: Vec<Value> = s
        .ok_vault(&["audit", "query", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<(String, String)> = audit
        .iter()
        .map(|e| {
            (
                e["action"]["type"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(kind, _)| kind != "audit-log-used")
        .collect();
    let step = |k: &str, o: &str| (k.to_string(), o.to_string());
    assert_eq!(
        steps,
        vec![
            step("user-admin", "success"),
            step("access-requested", "success"),
            step("access-approved", "success"),
            step("enrolment-code-issued", "success"),
            step("user-admin", "success"),
            step("access-requested", "success"),
            step("enrolment-code-issued", "success"),
            step("access-approved", "denied"),
            step("single-operator-set", "success"),
            step("access-approved", "success"),
            step("single-operator-set", "success"),
        ]
    );
    let first = audit
        .iter()
        .find(|e| e["action"]["type"] == "access-approved")
        .unwrap();
    assert_eq!(first["action"]["details"]["basis"], "first-administrator");
    assert_eq!(first["actor"]["kind"], "local");
}
