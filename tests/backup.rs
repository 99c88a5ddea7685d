//! Backups end to end, as real processes: the `rxvault` binary, Debian's
//! `restic` reading what it wrote, and `rclone serve restic --append-only`
//! as the append-only REST server (an independent implementation of the
//! protocol, not a mock).

use rxvault_testkit::shared_data;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rxvault");
const REPO_PASSWORD: &str = "repository password, not the vault key";
const ESCROW_PASSPHRASE: &str = "escrow passphrase kept in a safe";

/// A vault with its key apart, a repository password file and an escrow
/// passphrase file; `RXVAULT_KEY_DIR` and `TMPDIR` point inside.
struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let s = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(s.path("tmp")).unwrap();
        std::fs::write(s.path("repo.pass"), format!("{REPO_PASSWORD}\n")).unwrap();
        std::fs::write(s.path("escrow.pass"), format!("{ESCROW_PASSPHRASE}\n")).unwrap();
        s
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

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("RXVAULT_KEY_DIR", self.path("default-keys"))
            .env("TMPDIR", self.path("tmp"))
            .env("RXVAULT_BACKUP_PASSWORD_FILE", self.path("repo.pass"))
            .env("RXVAULT_ESCROW_PASSPHRASE_FILE", self.path("escrow.pass"))
            .env_remove("RXVAULT_DATA")
            .env_remove("RXVAULT_KEY_FILE")
            .env_remove("RXVAULT_PASSPHRASE_FILE")
            .env_remove("RXVAULT_BACKUP_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .unwrap()
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

    /// Fails, with this in its error output; returns stderr.
    fn fails(&self, args: &[&str], says: &str) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "rxvault {args:?} succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.contains(says), "rxvault {args:?}: {stderr}");
        stderr
    }

    fn with_vault(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--data".into(), self.data().display().to_string()]);
        v.extend(["--key-file".into(), self.key().display().to_string()]);
        v
    }

    fn ok_vault(&self, args: &[&str]) -> String {
        let v = self.with_vault(args);
        self.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A vault with the synthea-10 sample imported, and its escrow kit.
    fn vault_with_records(&self) {
        self.ok(&[
            "init",
            "--data",
            self.data().to_str().unwrap(),
            "--key-file",
            self.key().to_str().unwrap(),
        ]);
        let sample = shared_data("synthea-10");
        self.ok_vault(&["import", sample.to_str().unwrap()]);
        self.ok_vault(&[
            "keys",
            "escrow",
            "--out",
            self.path("escrow.kit").to_str().unwrap(),
        ]);
    }

    /// Every record, decrypted: a plaintext export (file name → sorted
    /// lines).
    fn export(&self, name: &str) -> BTreeMap<String, Vec<String>> {
        let out = self.path(name);
        self.ok_vault(&[
            "export",
            "fhir",
            "--plaintext",
            "--out",
            out.to_str().unwrap(),
        ]);
        let mut files = BTreeMap::new();
        for e in std::fs::read_dir(&out).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "ndjson") {
                let mut lines: Vec<String> = std::fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect();
                lines.sort();
                files.insert(p.file_name().unwrap().to_string_lossy().to_string(), lines);
            }
        }
        std::fs::remove_dir_all(&out).unwrap();
        assert!(!files.is_empty());
        files
    }

    /// The `backup` entries of the vault's audit log: (operation, outcome).
    fn backup_entries(&self, data: &Path) -> Vec<(String, String)> {
        let out = self.ok(&[
            "audit",
            "query",
            "--data",
            data.to_str().unwrap(),
            "--key-file",
            self.key().to_str().unwrap(),
            "--action",
            "backup",
            "--json",
        ]);
        out.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    find(&v, "operation").unwrap_or_default(),
                    find(&v, "outcome").unwrap_or_default(),
                )
            })
            .collect()
    }

    fn restic(&self, repo: &str, args: &[&str]) -> Output {
        Command::new("restic")
            .args(["-r", repo, "--password-file"])
            .arg(self.path("repo.pass"))
            .args(["--no-cache"])
            .args(args)
            .env("HOME", self.path("home"))
            .output()
            .expect("restic is installed (scripts/test installs it)")
    }
}

/// A string field anywhere in a JSON value.
fn find(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::Object(m) => m
            .get(key)
            .and_then(|x| x.as_str().map(str::to_string))
            .or_else(|| m.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

/// `rclone serve restic --append-only` over a folder, on a free port.
struct RestServer {
    child: Child,
    url: String,
}

impl RestServer {
    fn start(dir: &Path, append_only: bool) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new("rclone");
        cmd.args(["serve", "restic", "--addr", &addr]);
        if append_only {
            cmd.arg("--append-only");
        }
        let mut child = cmd
            .arg(dir)
            .env("RCLONE_CONFIG", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rclone is installed (scripts/test installs it)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Self {
                    child,
                    url: format!("rest:http://{addr}/"),
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("rclone serve restic did not start on {addr}");
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn overwrite_with_random_bytes(dir: &Path) -> usize {
    let mut n = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for e in walk(dir) {
        let len = std::fs::metadata(&e).unwrap().len().max(1) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(&e, bytes).unwrap();
        n += 1;
    }
    n
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn ransomware_then_restore_from_an_append_only_rest_repository() {
    let s = Scratch::new();
    s.vault_with_records();
    // The server's certificate, so the snapshot holds tls/ too.
    std::fs::create_dir_all(s.data().join("tls")).unwrap();
    std::fs::write(
        s.data().join("tls/cert.pem"),
        "-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();
    let before = s.export("before");
    let server = RestServer::start(&s.path("rest"), true);
    let out = s.ok_vault(&["backup", "create", "--repo", &server.url]);
    assert!(out.contains("snapshot "), "{out}");
    // The key is not in the repository: no file of it holds the key
    // file's base64 line.
    let key_text = std::fs::read_to_string(s.key()).unwrap();
    let kek_b64 = key_text
        .lines()
        .find(|l| l.starts_with("kek "))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    for f in walk(&s.path("rest")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(kek_b64.len())
                .any(|w| w == kek_b64.as_bytes())
        );
    }

    // Ransomware: every file of the data directory overwritten.
    assert!(overwrite_with_random_bytes(&s.data()) >= 3);
    s.fails(
        &s.with_vault(&["status"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "error",
    );
    std::fs::remove_dir_all(s.data()).unwrap();

    let out = s.ok(&[
        "backup",
        "restore",
        "--repo",
        &server.url,
        "--to",
        s.data().to_str().unwrap(),
        "--escrow",
        s.path("escrow.kit").to_str().unwrap(),
    ]);
    assert!(out.contains("restored snapshot"), "{out}");
    // The vault is back: every record decrypts to what it was, the records
    // check, the audit log verifies.
    assert_eq!(s.export("after"), before);
    s.ok_vault(&["check"]);
    s.ok_vault(&["audit", "verify"]);
    assert_eq!(
        std::fs::read_to_string(s.data().join("tls/cert.pem")).unwrap(),
        "-----BEGIN CERTIFICATE-----\n"
    );
    assert!(!s.data().join("rxvault-backup.json").exists());
    // The restore is recorded in the restored vault's log (the backup's own
    // entry came after its snapshot, in the log the ransomware destroyed).
    let entries = s.backup_entries(&s.data());
    assert!(
        entries.contains(&("restore".into(), "success".into())),
        "{entries:?}"
    );
}

#[test]
fn debian_restic_lists_checks_and_restores_what_rxvault_wrote() {
    let s = Scratch::new();
    s.vault_with_records();
    let repo = s.path("repo");
    let repo = repo.to_str().unwrap();
    s.ok_vault(&["backup", "create", "--repo", repo]);
    s.ok_vault(&["backup", "create", "--repo", repo]);
    let listed = s.ok(&["backup", "list", "--repo", repo]);
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let out = s.restic(repo, &["snapshots", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0]["paths"][0], "/rxvault");
    let out = s.restic(repo, &["check", "--read-data"]);
    assert!(
        out.status.success(),
        "restic check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let target = s.path("restic-restore");
    let out = s.restic(
        repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = target.join("rxvault");
    for f in [
        "vault.db",
        "audit.db",
        "rxvault.toml",
        "rxvault-backup.json",
    ] {
        assert!(restored.join(f).is_file(), "{f}");
    }
    // The vault restic restored opens with its key and checks.
    let status = s.ok(&[
        "status",
        "--data",
        restored.to_str().unwrap(),
        "--key-file",
        s.key().to_str().unwrap(),
    ]);
    assert!(status.contains("Patient"), "{status}");
    s.ok(&[
        "check",
        "--data",
        restored.to_str().unwrap(),
        "--key-file",
        s.key().to_str().unwrap(),
    ]);
    // Both backups are in the live vault's audit log, with their outcome.
    let entries = s.backup_entries(&s.data());
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.0 == "create" && e.1 == "success")
            .count(),
        2,
        "{entries:?}"
    );
}

#[test]
fn append_only_holds_against_the_vault_hosts_credentials() {
    let s = Scratch::new();
    s.vault_with_records();
    let server = RestServer::start(&s.path("rest"), true);
    s.ok_vault(&["backup", "create", "--repo", &server.url]);
    s.ok_vault(&["backup", "create", "--repo", &server.url]);
    let files_before = walk(&s.path("rest")).len();
    // Forgetting history and pruning, with the repository password the
    // vault host holds, through the append-only server: refused.
    let out = s.restic(&server.url, &["forget", "--keep-last", "1", "--prune"]);
    assert!(
        !out.status.success(),
        "forget --prune succeeded against an append-only server:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let listed = s.ok(&["backup", "list", "--repo", &server.url]);
    let first = listed
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = s.restic(&server.url, &["forget", &first]);
    assert!(!out.status.success(), "forget one snapshot succeeded");
    // Nothing was deleted: both snapshots are listed, the drill passes.
    assert!(walk(&s.path("rest")).len() >= files_before);
    let listed = s.ok(&["backup", "list", "--repo", &server.url]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let out = s.ok_vault(&[
        "restore-drill",
        "--repo",
        &server.url,
        "--escrow",
        s.path("escrow.kit").to_str().unwrap(),
    ]);
    assert!(out.contains("restore drill passed"), "{out}");
    assert!(out.contains("RTO") && out.contains("RPO"), "{out}");
    let entries = s.backup_entries(&s.data());
    assert!(
        entries.contains(&("restore-drill".into(), "success".into())),
        "{entries:?}"
    );
}

#[test]
fn a_corrupt_pack_fails_verify_and_restore_and_leaves_nothing() {
    let s = Scratch::new();
    s.vault_with_records();
    let repo = s.path("repo");
    let repo = repo.to_str().unwrap();
    s.ok_vault(&["backup", "create", "--repo", repo]);
    s.ok_vault(&["backup", "verify", "--repo", repo]);
    // Flip bytes in the middle of every pack file.
    let packs: Vec<PathBuf> = walk(&s.path("repo/data"));
    assert!(!packs.is_empty());
    for p in &packs {
        let mut bytes = std::fs::read(p).unwrap();
        let (mid, len) = (bytes.len() / 2, bytes.len());
        for b in &mut bytes[mid..(mid + 16).min(len)] {
            *b ^= 0x5a;
        }
        std::fs::write(p, bytes).unwrap();
    }
    let out = s.run(
        &s.with_vault(&["backup", "verify", "--repo", repo])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("damaged"));
    let entries = s.backup_entries(&s.data());
    assert!(
        entries.contains(&("verify".into(), "error".into())),
        "{entries:?}"
    );
    let to = s.path("restored");
    s.fails(
        &[
            "backup",
            "restore",
            "--repo",
            repo,
            "--to",
            to.to_str().unwrap(),
            "--escrow",
            s.path("escrow.kit").to_str().unwrap(),
        ],
        "decryption failed",
    );
    assert!(!to.exists(), "a damaged restore was handed back");
    // No half-restored scratch folder is left beside it either.
    let left: Vec<_> = std::fs::read_dir(s.tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".rxvault-restoring")
        })
        .collect();
    assert!(left.is_empty());
}

#[test]
fn restoring_without_the_escrow_kit_or_with_a_wrong_passphrase_fails_and_changes_nothing() {
    let s = Scratch::new();
    s.vault_with_records();
    let repo = s.path("repo");
    let repo = repo.to_str().unwrap();
    s.ok_vault(&["backup", "create", "--repo", repo]);
    let to = s.path("restored");
    let restore = |kit: &Path| {
        vec![
            "backup".to_string(),
            "restore".into(),
            "--repo".into(),
            repo.into(),
            "--to".into(),
            to.display().to_string(),
            "--escrow".into(),
            kit.display().to_string(),
        ]
    };
    let args = restore(&s.path("no-such.kit"));
    s.fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "escrow kit",
    );
    assert!(!to.exists());
    std::fs::write(s.path("escrow.pass"), "not the escrow passphrase at all\n").unwrap();
    let args = restore(&s.path("escrow.kit"));
    s.fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "passphrase does not open this kit",
    );
    assert!(!to.exists());
    s.fails(
        &[
            "restore-drill",
            "--repo",
            repo,
            "--escrow",
            s.path("escrow.kit").to_str().unwrap(),
        ],
        "passphrase does not open this kit",
    );
    // The kit is refused inside the data directory, and never overwritten.
    std::fs::write(s.path("escrow.pass"), format!("{ESCROW_PASSPHRASE}\n")).unwrap();
    let inside = s.data().join("escrow.kit");
    let args = s.with_vault(&["keys", "escrow", "--out", inside.to_str().unwrap()]);
    s.fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "inside the data directory",
    );
    let kit = s.path("escrow.kit");
    let args = s.with_vault(&["keys", "escrow", "--out", kit.to_str().unwrap()]);
    s.fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "already exists",
    );
    // A wrong repository password is its own clear error.
    std::fs::write(s.path("repo.pass"), "wrong\n").unwrap();
    s.fails(&["backup", "list", "--repo", repo], "repository password");
}

#[test]
fn scheduled_backups_under_a_concurrent_import_each_restore_consistent() {
    let s = Scratch::new();
    s.vault_with_records();
    let repo = s.path("repo");
    let repo = repo.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let args = s.with_vault(&[
        "serve",
        "--listen",
        &listen,
        "--backup-repo",
        repo,
        "--backup-every",
        "1",
    ]);
    let mut server = Command::new(BIN)
        .args(&args)
        .env("RXVAULT_KEY_DIR", s.path("default-keys"))
        .env("TMPDIR", s.path("tmp"))
        .env("RXVAULT_BACKUP_PASSWORD_FILE", s.path("repo.pass"))
        .env_remove("RXVAULT_BACKUP_REPO")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Writes from another process while the server backs up.
    let sample = shared_data("synthea-100");
    s.ok_vault(&["import", sample.to_str().unwrap()]);
    let mut listed = String::new();
    for _ in 0..120 {
        let out = s.run(&["backup", "list", "--repo", repo]);
        listed = String::from_utf8_lossy(&out.stdout).to_string();
        if listed.lines().count() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let _ = server.kill();
    let _ = server.wait();
    let ids: Vec<String> = listed
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 3, "{listed}");
    // Every snapshot, taken while writes went on, restores proven: counts
    // equal to its manifest, every record checks, the audit log verifies
    // and holds the checkpoint taken with it.
    for (i, id) in ids.iter().enumerate() {
        let to = s.path(&format!("restored-{i}"));
        s.ok(&[
            "backup",
            "restore",
            "--repo",
            repo,
            "--snapshot",
            id,
            "--to",
            to.to_str().unwrap(),
            "--escrow",
            s.path("escrow.kit").to_str().unwrap(),
        ]);
    }
    let entries = s.backup_entries(&s.data());
    assert!(
        entries
            .iter()
            .filter(|e| e.0 == "create" && e.1 == "success")
            .count()
            >= 3,
        "{entries:?}"
    );
}
