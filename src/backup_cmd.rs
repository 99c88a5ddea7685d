//! `rxvault backup ...`, `rxvault keys escrow`, `rxvault restore-drill`:
//! flags, secrets and printing over `rxvault-backup`; and the restic REST
//! protocol client (`rest:http://...` repositories), since the binary and
//! the server are what speak HTTP.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rxvault_backup::escrow::Kit;
use rxvault_backup::{Location, Transport};
use rxvault_crypto::Passphrase;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where the repository is and how to open it.
#[derive(Args, Debug, Clone)]
pub struct RepoArgs {
    /// The restic repository: a folder, or `rest:http://host:port/path/`
    /// (a REST server; run it append-only: the vault host needs no delete
    /// permission).
    #[arg(long, env = "RXVAULT_BACKUP_REPO")]
    repo: String,
    /// A file holding the repository's password (its own: not the vault
    /// key, not the escrow passphrase). Default: RXVAULT_BACKUP_PASSWORD.
    #[arg(long, env = "RXVAULT_BACKUP_PASSWORD_FILE")]
    repo_password_file: Option<PathBuf>,
}

impl RepoArgs {
    fn location(&self) -> Result<Location> {
        location(&self.repo)
    }

    fn password(&self) -> Result<Zeroizing<String>> {
        if let Some(f) = &self.repo_password_file {
            let mut text = Zeroizing::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("repository password file {}", f.display()))?,
            );
            while text.ends_with('\n') || text.ends_with('\r') {
                text.pop();
            }
            return Ok(text);
        }
        if let Ok(p) = std::env::var("RXVAULT_BACKUP_PASSWORD") {
            return Ok(Zeroizing::new(p));
        }
        if std::io::stdin().is_terminal() {
            return Ok(Zeroizing::new(
                rpassword::prompt_password("repository password: ")
                    .context("reading the repository password")?,
            ));
        }
        bail!(
            "the repository password is needed: --repo-password-file FILE or RXVAULT_BACKUP_PASSWORD"
        )
    }
}

/// The escrow kit and its passphrase.
#[derive(Args, Debug, Clone)]
pub struct EscrowArgs {
    /// The escrow kit (`rxvault keys escrow` wrote it).
    #[arg(long)]
    escrow: PathBuf,
    /// A file holding the kit's passphrase (default: asked on the terminal).
    #[arg(long, env = "RXVAULT_ESCROW_PASSPHRASE_FILE")]
    escrow_passphrase_file: Option<PathBuf>,
}

impl EscrowArgs {
    fn kit(&self) -> Result<Kit> {
        Ok(Kit {
            path: self.escrow.clone(),
            passphrase: escrow_passphrase(self.escrow_passphrase_file.as_ref(), false)?,
        })
    }
}

fn escrow_passphrase(file: Option<&PathBuf>, confirm: bool) -> Result<Passphrase> {
    if let Some(f) = file {
        return crate::keysource::read_passphrase(f);
    }
    if !std::io::stdin().is_terminal() {
        bail!("the escrow passphrase is needed: --escrow-passphrase-file FILE");
    }
    let p = rpassword::prompt_password("escrow passphrase: ").context("reading the passphrase")?;
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("again: ").context("reading the passphrase")?,
        );
        if *again != p {
            bail!("the two passphrases differ");
        }
    }
    Ok(Passphrase::new(p))
}

/// `rxvault backup ...`.
#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Take a consistent snapshot of the vault (while it serves) into a
    /// restic repository (created if new). The KEK is never in it.
    Create {
        #[command(flatten)]
        vault: crate::VaultArgs,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// List the repository's snapshots.
    List {
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Read the whole repository back and check it (like `restic check
    /// --read-data`). Exit code 1 if anything is damaged.
    Verify {
        #[command(flatten)]
        repo: RepoArgs,
        /// The live vault to record the verification in.
        #[arg(long, env = "RXVAULT_DATA")]
        data: Option<PathBuf>,
        #[command(flatten)]
        key: crate::keysource::KeyArgs,
    },
    /// Restore a snapshot into a new folder, proven (hashes, counts, record
    /// checks, the audit log against its checkpoint) before it is handed
    /// back; a damaged snapshot leaves nothing behind.
    Restore {
        #[command(flatten)]
        repo: RepoArgs,
        /// The snapshot (an id or its prefix, or `latest`).
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// The folder to restore into (new or empty).
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        escrow: EscrowArgs,
    },
}

/// `rxvault restore-drill`.
#[derive(Args, Debug)]
pub struct DrillArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    escrow: EscrowArgs,
    /// The live vault to record the drill in.
    #[arg(long, env = "RXVAULT_DATA")]
    data: Option<PathBuf>,
    #[command(flatten)]
    key: crate::keysource::KeyArgs,
}

/// `rxvault keys escrow`.
#[derive(Args, Debug)]
pub struct EscrowOutArgs {
    #[command(flatten)]
    vault: crate::VaultArgs,
    /// Where to write the kit (a new file, not in the data directory).
    #[arg(long)]
    out: PathBuf,
    /// A file holding the kit's new passphrase (default: asked twice).
    #[arg(long, env = "RXVAULT_ESCROW_PASSPHRASE_FILE")]
    escrow_passphrase_file: Option<PathBuf>,
}

fn time_text(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn open_live(
    data: &Option<PathBuf>,
    key: &crate::keysource::KeyArgs,
) -> Result<Option<rxvault_vault::Vault>> {
    match data {
        None => Ok(None),
        Some(d) => Ok(Some(crate::open(&crate::VaultArgs {
            data: d.clone(),
            key: key.clone(),
        })?)),
    }
}

pub fn run(c: BackupCommand) -> Result<ExitCode> {
    match c {
        BackupCommand::Create { vault, repo } => {
            let location = repo.location()?;
            let password = repo.password()?;
            let vault = crate::open(&vault)?;
            let r = rxvault_backup::create(&vault, &location, &password)?;
            outln!(
                "snapshot {} of vault {} in {}",
                &r.snapshot.id[..8.min(r.snapshot.id.len())],
                r.manifest.vault_id,
                location.describe()
            );
            outln!(
                "  {} records, {} audit entries (checkpoint at {}), {} bytes, {} bytes added",
                r.manifest.total_records(),
                r.manifest.audit.entries,
                r.manifest
                    .audit
                    .checkpoint_size
                    .map_or("none".into(), |s| s.to_string()),
                r.snapshot.bytes,
                r.snapshot.added.unwrap_or(0)
            );
            outln!(
                "  snapshot {} ms, upload {} ms; id {}",
                r.stage_ms,
                r.upload_ms,
                r.snapshot.id
            );
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::List { repo } => {
            let location = repo.location()?;
            let snaps = rxvault_backup::list(&location, &repo.password()?)?;
            for s in &snaps {
                outln!(
                    "{}  {}  {}  {:>12} bytes  {}",
                    &s.id[..8.min(s.id.len())],
                    time_text(s.time),
                    s.hostname,
                    s.bytes,
                    s.tags.join(",")
                );
            }
            eprintln!("{} snapshot(s)", snaps.len());
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Verify { repo, data, key } => {
            let location = repo.location()?;
            let password = repo.password()?;
            let live = open_live(&data, &key)?;
            let report = rxvault_backup::verify(live.as_ref(), &location, &password)?;
            for w in &report.warnings {
                outln!("warning: {w}");
            }
            for e in &report.errors {
                outln!("error: {e}");
            }
            if report.errors.is_empty() {
                outln!(
                    "repository {} verified: every pack read back and checked",
                    location.describe()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                outln!(
                    "repository {} is damaged: {} errors",
                    location.describe(),
                    report.errors.len()
                );
                Ok(ExitCode::from(1))
            }
        }
        BackupCommand::Restore {
            repo,
            snapshot,
            to,
            escrow,
        } => {
            let location = repo.location()?;
            let password = repo.password()?;
            let kit = escrow.kit()?;
            let r = rxvault_backup::restore::restore(
                &location,
                &password,
                &snapshot,
                &to,
                &kit,
                crate::clock(),
            )?;
            outln!(
                "restored snapshot {} (taken {}) of vault {} into {}",
                &r.snapshot.id[..8.min(r.snapshot.id.len())],
                time_text(r.manifest.taken),
                r.manifest.vault_id,
                to.display()
            );
            outln!(
                "  {} records checked, {} audit entries verified; restore {} ms, proof {} ms",
                r.records_checked,
                r.audit_entries,
                r.restore_ms,
                r.prove_ms
            );
            outln!(
                "  open it with its key file (the default place, or --key-file); the kit holds that key"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn run_drill(a: DrillArgs) -> Result<ExitCode> {
    let location = a.repo.location()?;
    let password = a.repo.password()?;
    let kit = a.escrow.kit()?;
    let live = open_live(&a.data, &a.key)?;
    let r =
        rxvault_backup::restore::drill(live.as_ref(), &location, &password, &kit, crate::clock())?;
    outln!(
        "restore drill passed: snapshot {} of vault {}",
        &r.restore.snapshot.id[..8.min(r.restore.snapshot.id.len())],
        r.restore.manifest.vault_id
    );
    outln!(
        "  {} records decrypted, {} checked, counts match the manifest, {} audit entries verified against the backup's checkpoint",
        r.records_decrypted,
        r.restore.records_checked,
        r.restore.audit_entries
    );
    outln!(
        "  RTO {:.1} s (restore {} ms), RPO {} s (snapshot taken {})",
        r.rto_ms as f64 / 1000.0,
        r.restore.restore_ms,
        r.rpo_s,
        time_text(r.restore.manifest.taken)
    );
    if live.is_none() {
        eprintln!("note: give --data to record the drill in the live vault's audit log");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_escrow(a: EscrowOutArgs) -> Result<ExitCode> {
    let vault = crate::open(&a.vault)?;
    let key_file = match &a.vault.key.key_file {
        Some(k) => k.clone(),
        None => vault.config().key_file()?,
    };
    let passphrase = escrow_passphrase(a.escrow_passphrase_file.as_ref(), true)?;
    rxvault_backup::escrow::write_kit(&vault, &key_file, &passphrase, &a.out)?;
    outln!(
        "escrow kit of vault {} written to {} (mode 0600)\n  Print it or keep it offline, apart from the data and the backups; restoring a backup needs it and its passphrase.",
        vault.config().vault_id,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `rxvault serve`'s scheduled backups.
#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// Back up to this restic repository on a schedule (a folder or
    /// `rest:URL`; the password from --backup-password-file or
    /// RXVAULT_BACKUP_PASSWORD). Each run is audited with its outcome.
    #[arg(long, env = "RXVAULT_BACKUP_REPO")]
    backup_repo: Option<String>,
    /// A file holding the repository's password.
    #[arg(long, env = "RXVAULT_BACKUP_PASSWORD_FILE", requires = "backup_repo")]
    backup_password_file: Option<PathBuf>,
    /// Seconds between scheduled backups (the first runs at start): the
    /// recovery point objective.
    #[arg(long, default_value_t = 900, requires = "backup_repo")]
    backup_every: u64,
}

impl ScheduleArgs {
    /// The scheduled backup job, if a repository is configured.
    pub fn job(
        &self,
        vault: &Arc<rxvault_vault::Vault>,
    ) -> Result<Option<rxvault_server::services::Job>> {
        let Some(repo) = &self.backup_repo else {
            return Ok(None);
        };
        let args = RepoArgs {
            repo: repo.clone(),
            repo_password_file: self.backup_password_file.clone(),
        };
        let location = args.location()?;
        let password = args.password()?;
        let vault = vault.clone();
        Ok(Some(rxvault_server::services::Job {
            name: "backup",
            every: std::time::Duration::from_secs(self.backup_every.max(1)),
            run: Arc::new(move || {
                // Audited by rxvault-backup with its outcome (a failure too).
                rxvault_backup::create(&vault, &location, &password)
                    .map(|r| {
                        tracing::info!(snapshot = %r.snapshot.id, records = r.manifest.total_records(), "scheduled backup");
                    })
                    .map_err(|e| e.to_string())
            }),
        }))
    }
}

/// `REPO`: a folder, or `rest:URL`.
fn location(repo: &str) -> Result<Location> {
    match repo.strip_prefix("rest:") {
        Some(url) => Ok(Location::Remote(Arc::new(Rest::new(url)?))),
        None => Ok(Location::Local(PathBuf::from(repo))),
    }
}

/// The restic REST protocol (v2), as rest-server and `rclone serve restic`
/// speak it.
struct Rest {
    base: String,
    client: reqwest::blocking::Client,
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Rest {
    fn new(url: &str) -> Result<Self> {
        let mut base = url.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        // The one TLS provider of the build (ring), for https:// servers.
        let _ = std::sync::Arc::unwrap_or_clone(rxvault_crypto::tls::provider()).install_default();
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .context("the HTTP client")?;
        Ok(Self { base, client })
    }

    fn check(
        &self,
        what: &str,
        path: &str,
        r: reqwest::Result<reqwest::blocking::Response>,
    ) -> std::io::Result<reqwest::blocking::Response> {
        let r = r.map_err(|e| io(format!("{what} {path}: {e}")))?;
        if r.status().is_success() {
            Ok(r)
        } else {
            let kind = if r.status() == reqwest::StatusCode::FORBIDDEN {
                std::io::ErrorKind::PermissionDenied
            } else {
                std::io::ErrorKind::Other
            };
            Err(std::io::Error::new(
                kind,
                format!("{what} {path}: the server answered {}", r.status()),
            ))
        }
    }
}

impl Transport for Rest {
    fn location(&self) -> String {
        // No credentials in messages.
        match reqwest::Url::parse(&self.base) {
            Ok(mut u) => {
                let _ = u.set_password(None);
                let _ = u.set_username("");
                format!("rest:{u}")
            }
            Err(_) => "rest:(invalid URL)".into(),
        }
    }

    fn create(&self) -> std::io::Result<()> {
        let url = format!("{}?create=true", self.base);
        self.check("creating", "/", self.client.post(url).send())?;
        Ok(())
    }

    fn exists(&self, path: &str) -> std::io::Result<bool> {
        let r = self
            .client
            .head(format!("{}{path}", self.base))
            .send()
            .map_err(|e| io(format!("checking {path}: {e}")))?;
        Ok(r.status().is_success())
    }

    fn list(&self, dir: &str) -> std::io::Result<Vec<(String, u64)>> {
        #[derive(serde::Deserialize)]
        struct Entry {
            name: String,
            size: u64,
        }
        let r = self.check(
            "listing",
            dir,
            self.client
                .get(format!("{}{dir}/", self.base))
                .header("Accept", "application/vnd.x.restic.rest.v2")
                .send(),
        )?;
        let list: Option<Vec<Entry>> = r.json().map_err(io)?;
        Ok(list
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.size))
            .collect())
    }

    fn read(&self, path: &str, range: Option<(u64, u32)>) -> std::io::Result<Vec<u8>> {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some((offset, len)) = range {
            let last = offset + u64::from(len.max(1)) - 1;
            req = req.header("Range", format!("bytes={offset}-{last}"));
        }
        let r = self.check("reading", path, req.send())?;
        Ok(r.bytes().map_err(io)?.to_vec())
    }

    fn write(&self, path: &str, data: Vec<u8>) -> std::io::Result<()> {
        self.check(
            "writing",
            path,
            self.client
                .post(format!("{}{path}", self.base))
                .body(data)
                .send(),
        )?;
        Ok(())
    }

    fn remove(&self, path: &str) -> std::io::Result<()> {
        self.check(
            "deleting",
            path,
            self.client.delete(format!("{}{path}", self.base)).send(),
        )?;
        Ok(())
    }
}

/// Flags of `rxvault bench backup`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Synthetic patients in the vault (with all their records).
    #[arg(long, default_value_t = 5_000)]
    patients: u64,
    /// Where to work (default: a temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn restic_cmd(repo: &std::path::Path, password_file: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new("restic");
    c.arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(password_file)
        .args(["--no-cache", "--quiet"]);
    c
}

fn timed_restic(mut c: std::process::Command) -> Result<f64> {
    let start = std::time::Instant::now();
    let out = c
        .output()
        .context("running restic (apt-get install restic)")?;
    if !out.status.success() {
        bail!("restic failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// `rxvault bench backup`: rxvault's backup, 1%-change backup, proven
/// restore and full verify against Debian's `restic` CLI backing up,
/// restoring and checking the same data directory, in the same run.
pub fn bench(a: BenchArgs) -> Result<ExitCode> {
    use rxvault_vault::keys::InitKey;
    use rxvault_vault::{StoreConfig, Vault};
    let work = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::Builder::new().prefix("bench").tempdir_in(d)?
        }
        None => tempfile::Builder::new().prefix("rxvault-bench").tempdir()?,
    };
    let root = work.path();
    let as_of = time::macros::date!(2026 - 11 - 28);
    let clock = crate::clock();
    outln!(
        "rxvault bench backup: {} patients, {} cores",
        a.patients,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let synth = |patients: u64, seed: u64, out: &std::path::Path| -> Result<()> {
        let config = rxvault_synth::Config {
            patients,
            seed,
            as_of,
        };
        rxvault_synth::write_ndjson(&config, out, &mut |_| {})?;
        Ok(())
    };
    synth(a.patients, 1, &root.join("input"))?;
    let key = root.join("vault.key");
    let data = root.join("vault");
    Vault::init(
        &data,
        StoreConfig::Sqlite,
        InitKey::File(Some(key.clone())),
        clock.clone(),
    )?;
    let vault = Vault::open(
        &data,
        Some(rxvault_vault::KeySource::File(key.clone())),
        clock.clone(),
    )?;
    let local = rxvault_vault::access::Requester::local();
    let import = |dir: &std::path::Path| -> Result<()> {
        vault.import_for(
            &local,
            &[dir.to_path_buf()],
            &rxvault_vault::import::ImportOptions::default(),
            &mut (),
        )?;
        Ok(())
    };
    import(&root.join("input"))?;
    std::fs::remove_dir_all(root.join("input"))?;
    let records: u64 = vault.counts()?.iter().map(|(_, n)| n).sum();
    let bytes: u64 = walk_size(&data);
    outln!(
        "vault            : {records} records, data directory {:.1} MiB",
        bytes as f64 / 1048576.0
    );

    let password = "bench repository password";
    let pw_file = root.join("repo.pass");
    std::fs::write(&pw_file, password)?;
    let passphrase = Passphrase::new("bench escrow passphrase, long enough".into());
    let kit = Kit {
        path: root.join("escrow.kit"),
        passphrase: passphrase.clone(),
    };
    rxvault_backup::escrow::write_kit(&vault, &key, &passphrase, &kit.path)?;

    let ours = Location::Local(root.join("repo-rxvault"));
    let theirs = root.join("repo-restic");
    let mut init = restic_cmd(&theirs, &pw_file);
    init.arg("init");
    timed_restic(init)?;
    let row = |what: &str, rx: f64, restic: f64| {
        outln!(
            "{what:<17}: rxvault {rx:>7.2} s   restic {restic:>7.2} s   ratio {:.2}x",
            rx / restic
        );
    };

    let start = std::time::Instant::now();
    let full = rxvault_backup::create(&vault, &ours, password)?;
    let rx_full = start.elapsed().as_secs_f64();
    let mut c = restic_cmd(&theirs, &pw_file);
    c.arg("backup").arg(&data);
    let restic_full = timed_restic(c)?;
    row("full backup", rx_full, restic_full);
    outln!(
        "                   (rxvault: consistent snapshot {} ms + upload {} ms)",
        full.stage_ms,
        full.upload_ms
    );

    // A 1% change: more patients imported.
    let more = (a.patients / 100).max(1);
    synth(more, 2, &root.join("more"))?;
    import(&root.join("more"))?;
    std::fs::remove_dir_all(root.join("more"))?;
    let start = std::time::Instant::now();
    let incr = rxvault_backup::create(&vault, &ours, password)?;
    let rx_incr = start.elapsed().as_secs_f64();
    let mut c = restic_cmd(&theirs, &pw_file);
    c.arg("backup").arg(&data);
    let restic_incr = timed_restic(c)?;
    row("1% change backup", rx_incr, restic_incr);
    outln!(
        "                   (rxvault added {:.1} MiB)",
        incr.snapshot.added.unwrap_or(0) as f64 / 1048576.0
    );

    let start = std::time::Instant::now();
    let restored = rxvault_backup::restore::restore(
        &ours,
        password,
        "latest",
        &root.join("restored-rxvault"),
        &kit,
        clock.clone(),
    )?;
    let rx_restore = start.elapsed().as_secs_f64();
    let mut c = restic_cmd(&theirs, &pw_file);
    c.args(["restore", "latest", "--target"])
        .arg(root.join("restored-restic"));
    let restic_restore = timed_restic(c)?;
    row("restore", rx_restore, restic_restore);
    outln!(
        "                   (rxvault: read back {} ms + open, check {} records, verify {} audit entries {} ms; restic only reads back)",
        restored.restore_ms,
        restored.records_checked,
        restored.audit_entries,
        restored.prove_ms
    );

    let start = std::time::Instant::now();
    let report = rxvault_backup::verify(None, &ours, password)?;
    let rx_verify = start.elapsed().as_secs_f64();
    let mut c = restic_cmd(&theirs, &pw_file);
    c.args(["check", "--read-data"]);
    let restic_verify = timed_restic(c)?;
    row("verify (read all)", rx_verify, restic_verify);
    if !report.errors.is_empty() {
        bail!(
            "the benchmark's repository does not verify: {:?}",
            report.errors
        );
    }
    let drill_start = std::time::Instant::now();
    let drill = rxvault_backup::restore::drill(None, &ours, password, &kit, clock)?;
    outln!(
        "restore drill    : {:.2} s (RTO {:.2} s: restore, open, check, verify, decrypt all {} records)",
        drill_start.elapsed().as_secs_f64(),
        drill.rto_ms as f64 / 1000.0,
        drill.records_decrypted
    );
    outln!(
        "peak RSS         : {} KiB (this process: vault, backups, restores, drill)",
        crate::ui::peak_rss_kib().unwrap_or(0)
    );
    Ok(ExitCode::SUCCESS)
}

fn walk_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_size(&p)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
