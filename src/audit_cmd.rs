//! `rxvault audit`: checkpoints for witnesses, verification, forensic
//! queries, exports (JSON lines, FHIR AuditEvent, syslog) and the audit
//! benchmark. A thin layer over `rxvault-audit`.
//!
//! The log lives next to the vault: `DIR/audit.db` for SQLite vaults, the
//! `audit_*` tables of the vault's schema for PostgreSQL ones.

use crate::VaultArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use rxvault_audit::checkpoint::origin_for;
use rxvault_audit::export::fhir::{BundleWriter, FhirContext};
use rxvault_audit::export::syslog::{self, SyslogConfig, Transport};
use rxvault_audit::export::{fhir, jsonl};
use rxvault_audit::{
    ActionKind, AuditReader, LoggedEntry, Query, Report, SignedCheckpoint, StoreLocation,
    VerifierKey, VerifyOptions, open_store, rfc3339_ms,
};
use rxvault_model::{RecordKind, Rid};
use rxvault_vault::Vault;
use rxvault_vault::access::{AuditLogUse, Requester};
use rxvault_vault::config::{VaultConfig, write_atomic};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `rxvault audit ...`
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Sign a checkpoint of the log now and write it to a file, to keep
    /// elsewhere (a USB key, an email to the owner, a second site).
    Checkpoint {
        #[command(flatten)]
        vault: VaultArgs,
        /// The file to write (a C2SP signed note).
        #[arg(long)]
        out: PathBuf,
    },
    /// Recompute the log from its raw entries and check every checkpoint,
    /// stored and kept elsewhere. Exit code 1 when anything is wrong.
    Verify(VerifyArgs),
    /// Forensic queries, answered from the indexes.
    Query(QueryArgs),
    /// What an export held (breach response for a file found where it
    /// should not be): its patients, the field categories of each record
    /// kind, plaintext or to which age recipients, who made it and how it
    /// ended. One indexed lookup of the export ID.
    ExportScope(ExportScopeArgs),
    /// Export entries as JSON lines, FHIR AuditEvents or syslog.
    Export(ExportArgs),
    /// Size and latest checkpoint of the log.
    Status(VaultArgs),
    /// Benchmark: append with group commit (with and without the tree),
    /// verify, and queries over a large log. Figures are printed.
    Bench(BenchArgs),
    /// Benchmark of the live stream: append rate with consumers attached
    /// or not, commit-to-delivery latency in this process and from another
    /// process, on SQLite and PostgreSQL. Figures are printed.
    BenchStream(BenchStreamArgs),
    /// The stream benchmark's appending process (started by bench-stream).
    #[command(hide = true)]
    BenchStreamChild(BenchStreamChildArgs),
}

/// Flags of `audit verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// A checkpoint kept outside the log (from `audit checkpoint`); repeatable.
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// A trusted verifier key (`name+keyid+base64`, as in a checkpoint's `key` line); repeatable.
    #[arg(long = "trusted-key", value_name = "KEY")]
    trusted_keys: Vec<String>,
    /// Do not open the vault: verify with the checkpoint files and trusted
    /// keys only (entry bodies are not opened).
    #[arg(long)]
    without_key: bool,
    /// Also check that every entry is reachable through the index (slower).
    #[arg(long)]
    check_index: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Which entries.
#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// The actor (user, service account or local user) id.
    #[arg(long)]
    user: Option<String>,
    /// A patient's FHIR id.
    #[arg(long, conflicts_with = "patient_key")]
    patient: Option<String>,
    /// A patient's record key (32 hex digits, as printed by queries).
    #[arg(long)]
    patient_key: Option<String>,
    /// The session id.
    #[arg(long)]
    session: Option<String>,
    /// The host or agent id (case-insensitive).
    #[arg(long)]
    host: Option<String>,
    /// The source address.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// The action (read, search, write, export-started, export-finished,
    /// export-failed, export, break-glass, auth-success, auth-failure,
    /// mfa-success, mfa-failure, lockout, logout, user-admin, role-admin,
    /// key-admin, backup, alert, access-denied, audit-log-used,
    /// break-glass-reviewed, other).
    #[arg(long)]
    action: Option<String>,
    /// An export ID (the entries that started and ended that export).
    #[arg(long)]
    export: Option<String>,
    /// From (RFC 3339, or YYYY-MM-DD for midnight UTC), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// To (RFC 3339, or YYYY-MM-DD for midnight UTC), exclusive.
    #[arg(long)]
    to: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 0)]
    limit: usize,
}

/// Flags of `audit query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    vault: VaultArgs,
    #[command(flatten)]
    filter: Filter,
    /// List the patients the matching entries name (which patients did this
    /// session / user / host see), instead of the entries.
    #[arg(long)]
    patients: bool,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `audit export-scope`.
#[derive(Args, Debug)]
pub struct ExportScopeArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The export ID (in the export's manifest.json, or the export_id
    /// column of a shipping manifest).
    #[arg(long)]
    export: String,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Export formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// JSON lines.
    Jsonl,
    /// FHIR R4 AuditEvent NDJSON.
    Fhir,
    /// One FHIR R4 Bundle of AuditEvents.
    FhirBundle,
    /// RFC 5424 syslog: to a file, or sent with --udp / --tcp / --tls.
    Syslog,
}

/// Flags of `audit export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    vault: VaultArgs,
    #[command(flatten)]
    filter: Filter,
    /// The format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Syslog: send over UDP to HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["tcp", "tls", "out"])]
    udp: Option<String>,
    /// Syslog: send over TCP (octet counting) to HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["tls", "out"])]
    tcp: Option<String>,
    /// Syslog: send over TLS to HOST:PORT (default port 6514).
    #[arg(
        long,
        value_name = "HOST:PORT",
        conflicts_with = "out",
        requires = "ca_file"
    )]
    tls: Option<String>,
    /// Syslog over TLS: the CA certificate(s) (PEM) the collector's certificate must chain to.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Syslog over TLS: the name the collector's certificate must carry (default: the host of --tls).
    #[arg(long)]
    server_name: Option<String>,
    /// Syslog: the HOSTNAME field.
    #[arg(long, default_value = "-")]
    hostname: String,
}

/// Flags of `audit bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Entries appended (with the tree, then without).
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Producer threads.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Entries each producer keeps in flight (concurrent requests).
    #[arg(long, default_value_t = 16_384)]
    window: usize,
    /// Entries in the log the queries run on (0: skip).
    #[arg(long, default_value_t = 10_000_000)]
    query_entries: u64,
    /// Queries timed per kind.
    #[arg(long, default_value_t = 100)]
    queries: u32,
    /// Where to work (default: a temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Flags of `audit bench-stream`.
#[derive(Args, Debug)]
pub struct BenchStreamArgs {
    /// Entries per append run (four runs per backend).
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Producer threads.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Entries each producer keeps in flight.
    #[arg(long, default_value_t = 16_384)]
    window: usize,
    /// Consumers attached.
    #[arg(long, default_value_t = 3)]
    consumers: usize,
    /// The latency runs' append rate (entries/s).
    #[arg(long, default_value_t = 2_000)]
    paced_rate: u64,
    /// Entries per latency run.
    #[arg(long, default_value_t = 20_000)]
    paced_entries: u64,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
    /// Run on PostgreSQL too, at this URL (throwaway schemas, dropped).
    #[arg(long, env = "RXVAULT_BENCH_PG_URL", hide_env_values = true)]
    pg_url: Option<String>,
    /// Skip the cross-process run.
    #[arg(long)]
    no_cross_process: bool,
    /// Where to work (default: a temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Flags of the hidden `audit bench-stream-child`.
#[derive(Args, Debug)]
pub struct BenchStreamChildArgs {
    #[arg(long)]
    keys: PathBuf,
    #[arg(long)]
    entries: u64,
    #[arg(long)]
    rate: u64,
    #[arg(long)]
    producers: usize,
    /// The SQLite log's folder.
    #[arg(long)]
    sqlite: Option<PathBuf>,
    /// The PostgreSQL schema (the URL comes in RXVAULT_BENCH_PG_URL).
    #[arg(long)]
    pg_schema: Option<String>,
}

/// Runs an audit command.
pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Checkpoint { vault, out } => checkpoint(&vault, &out),
        AuditCommand::Verify(a) => verify(&a),
        AuditCommand::Query(a) => query(&a),
        AuditCommand::ExportScope(a) => export_scope(&a),
        AuditCommand::Export(a) => export(&a),
        AuditCommand::Status(a) => status(&a),
        AuditCommand::Bench(a) => bench(&a),
        AuditCommand::BenchStream(a) => bench_stream(&a),
        AuditCommand::BenchStreamChild(a) => bench_stream_child(&a),
    }
}

fn reader(vault: &Vault) -> Result<AuditReader> {
    let store = open_store(&vault.config().audit_location(), true)?;
    Ok(AuditReader::new(
        store.into(),
        Some(vault.secrets().clone()),
    ))
}

fn checkpoint(args: &VaultArgs, out: &Path) -> Result<ExitCode> {
    let vault = crate::open(args)?;
    let cp = vault.audit()?.checkpoint()?;
    write_atomic(out, cp.note().as_bytes(), 0o644)?;
    let c = &cp.checkpoint;
    outln!(
        "checkpoint of {} entries signed at {} -> {}",
        c.size,
        rfc3339_ms(c.time_ms),
        out.display()
    );
    outln!("  origin {}\n  key    {}", c.origin, cp.key);
    outln!(
        "Keep this file away from the vault: `rxvault audit verify --data {} --checkpoint {}` \
         proves the log still holds what it held now.",
        args.data.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_checkpoint(path: &Path) -> Result<SignedCheckpoint> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SignedCheckpoint::parse(&text).with_context(|| format!("{}", path.display()))
}

fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let external: Vec<SignedCheckpoint> = a
        .checkpoints
        .iter()
        .map(|p| read_checkpoint(p))
        .collect::<Result<_>>()?;
    let mut trusted = Vec::new();
    for k in &a.trusted_keys {
        trusted.push(VerifierKey::parse(k).context("--trusted-key")?.key);
    }
    let (config, vault) = if a.without_key {
        (VaultConfig::load(&a.vault.data)?, None)
    } else {
        let vault = crate::open(&a.vault)?;
        (vault.config().clone(), Some(vault))
    };
    let location = config.audit_location();
    if let StoreLocation::Sqlite { dir } = &location
        && !dir.join(rxvault_store::audit::AUDIT_DB_FILE).exists()
    {
        let witnessed = external
            .iter()
            .map(|c| c.checkpoint.size)
            .max()
            .unwrap_or(0);
        outln!("no audit log in {}", dir.display());
        if witnessed > 0 {
            outln!(
                "FAILED: an external checkpoint proves {witnessed} entries existed: the log was removed"
            );
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut options = VerifyOptions {
        keyring: None,
        trusted_keys: trusted,
        external,
        origin: Some(origin_for(&config.vault_id)),
        check_index: a.check_index,
        chunk: 0,
    };
    let report = match &vault {
        // With the key, every body is opened, and the use is audited by
        // the vault (an error when the log does not verify).
        Some(vault) => {
            options.keyring = Some(vault.secrets().clone());
            vault.verify_audit_log(&local(), &options)?
        }
        // Without it nothing can be sealed: not audited.
        None => rxvault_audit::verify::verify(open_store(&location, false)?.as_ref(), &options)?,
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        print_report(&report, a.without_key);
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "ok": r.ok(),
        "entries": r.entries,
        "root": r.root.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "covered_by_checkpoints": r.covered,
        "stored_checkpoints": r.stored_checkpoints,
        "external_checkpoints": r.external_checkpoints,
        "nodes_checked": r.nodes_checked,
        "bodies_checked": r.bodies_checked,
        "bodies_unchecked": r.bodies_unchecked,
        "index_rows_checked": r.index_rows_checked,
        "first_bad_index": r.first_bad_index(),
        "problems": r.problems.iter().map(|p| serde_json::json!({
            "kind": p.kind.name(),
            "index": p.index,
            "checkpoint_size": p.checkpoint_size,
            "detail": p.detail,
        })).collect::<Vec<_>>(),
    })
}

fn print_report(r: &Report, keyless: bool) {
    outln!(
        "{} entries; {} stored and {} external checkpoints; {} tree nodes checked; {} bodies opened{}",
        r.entries,
        r.stored_checkpoints,
        r.external_checkpoints,
        r.nodes_checked,
        r.bodies_checked,
        if keyless {
            " (without the vault key)"
        } else {
            ""
        }
    );
    if r.bodies_unchecked > 0 {
        outln!(
            "{} bodies are sealed with data keys this process does not hold (not opened)",
            r.bodies_unchecked
        );
    }
    if r.ok() {
        outln!(
            "OK: {} entries are covered by signed checkpoints{}",
            r.covered,
            if r.entries > r.covered {
                format!(
                    "; the last {} are not yet (the next checkpoint will cover them)",
                    r.entries - r.covered
                )
            } else {
                String::new()
            }
        );
        return;
    }
    outln!(
        "FAILED: {} problem(s){}",
        r.problems.len(),
        r.first_bad_index()
            .map(|i| format!(", first bad index {i}"))
            .unwrap_or_default()
    );
    for p in &r.problems {
        outln!("  {p}");
    }
}

/// Unix ms from RFC 3339 or a date.
pub(crate) fn parse_time(s: &str) -> Result<i64> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(rxvault_audit::unix_ms(t));
    }
    let date = crate::ui::parse_date(s)
        .with_context(|| format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    Ok(rxvault_audit::unix_ms(date.midnight().assume_utc()))
}

fn to_query(f: &Filter, vault: &Vault) -> Result<Query> {
    let patient = match (&f.patient, &f.patient_key) {
        (Some(id), _) => Some(vault.rid(RecordKind::Patient, id)),
        (None, Some(hex)) => {
            Some(Rid::from_hex(hex).with_context(|| format!("{hex:?} is not a record key"))?)
        }
        (None, None) => None,
    };
    let action = match &f.action {
        Some(a) => Some(ActionKind::from_name(a).with_context(|| {
            format!(
                "unknown action {a:?}; one of: {}",
                ActionKind::ALL.map(|k| k.name()).join(", ")
            )
        })?),
        None => None,
    };
    Ok(Query {
        user: f.user.clone(),
        session: f.session.clone(),
        host: f.host.clone(),
        ip: f.ip,
        patient,
        action,
        export: f.export.clone(),
        from_ms: f.from.as_deref().map(parse_time).transpose()?,
        to_ms: f.to.as_deref().map(parse_time).transpose()?,
        after: None,
        limit: f.limit,
    })
}

fn row(e: &LoggedEntry) -> String {
    let x = &e.entry;
    let patients = match x.patients.as_slice() {
        [] => "-".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} +{}", rest.len()),
    };
    format!(
        "{:>8}  {}  {:<7} {:<16} {:<14} {:<15} {:<12} {:<12} {:<8} {}{}",
        e.index,
        rfc3339_ms(e.time_ms),
        x.actor.kind.name(),
        x.actor.id,
        x.session.as_deref().unwrap_or("-"),
        x.source
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into()),
        x.host.as_deref().unwrap_or("-"),
        x.action.kind().name(),
        x.outcome.name(),
        patients,
        x.break_glass
            .as_deref()
            .map(|g| format!("  (under break-glass grant {g})"))
            .unwrap_or_default()
    )
}

/// Reading the audit log is itself audited (DICOM 110101 "Audit Log
/// Used"): by the vault, once the use ended, with its outcome
/// ([`Vault::use_audit_log`]), as over HTTPS.
fn local() -> Requester {
    Requester::local()
}

/// What a write to standard output failing means to a scan.
fn stdout_err(source: std::io::Error) -> rxvault_audit::Error {
    rxvault_audit::Error::Io {
        what: "standard output".into(),
        source,
    }
}

fn query(a: &QueryArgs) -> Result<ExitCode> {
    let vault = crate::open(&a.vault)?;
    let q = to_query(&a.filter, &vault)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if a.patients {
        let seen = vault.use_audit_log(&local(), AuditLogUse::PatientsSeen, |reader| {
            reader.patients_seen(&q)
        })?;
        for p in &seen {
            if a.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "patient": p.patient.to_string(),
                        "entries": p.entries,
                        "first": rfc3339_ms(p.first_ms),
                        "last": rfc3339_ms(p.last_ms),
                    })
                )?;
            } else {
                writeln!(
                    out,
                    "{}  {:>6} entries  {} .. {}",
                    p.patient,
                    p.entries,
                    rfc3339_ms(p.first_ms),
                    rfc3339_ms(p.last_ms)
                )?;
            }
        }
        if !a.json {
            eprintln!("{} patient(s)", seen.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let n = vault.use_audit_log(&local(), AuditLogUse::Query, |reader| {
        if !a.json {
            writeln!(
                out,
                "{:>8}  {:<24}  {:<7} {:<16} {:<14} {:<15} {:<12} {:<12} {:<8} patients",
                "index", "time", "actor", "id", "session", "address", "host", "action", "outcome"
            )
            .map_err(stdout_err)?;
        }
        reader.scan(&q, 10_000, |e| {
            if a.json {
                jsonl::write(&mut out, &e)
            } else {
                writeln!(out, "{}", row(&e)).map_err(stdout_err)
            }
        })
    })?;
    if !a.json {
        eprintln!("{n} entries");
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON of an export's scope (`audit export-scope --json`).
fn scope_json(s: &rxvault_audit::ExportScope) -> serde_json::Value {
    let who = &s.started.entry;
    serde_json::json!({
        "export_id": s.export_id,
        "status": s.status.name(),
        "format": s.format.name(),
        "destination": s.destination,
        "protection": s.protection,
        "categories": s.categories,
        "records": s.records,
        "patients": s.patients.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "started": rfc3339_ms(s.started.time_ms),
        "started_index": s.started.index,
        "ended": s.end.as_ref().map(|e| rfc3339_ms(e.time_ms)),
        "end": s.end.as_ref().map(|e| &e.entry.action),
        "actor": { "kind": who.actor.kind.name(), "id": who.actor.id },
        "session": who.session,
        "source": who.source.map(|ip| ip.to_string()),
        "host": who.host,
        "break_glass": who.break_glass,
    })
}

fn export_scope(a: &ExportScopeArgs) -> Result<ExitCode> {
    let vault = crate::open(&a.vault)?;
    let scope = vault.use_audit_log(&local(), AuditLogUse::ExportScope, |reader| {
        reader.export_scope(&a.export)
    })?;
    let Some(scope) = scope else {
        bail!(
            "the audit log has no started entry for export {:?} (exports made before \
             rxvault recorded them before writing are found with `audit query --action export`)",
            a.export
        );
    };
    if a.json {
        outln!("{}", scope_json(&scope));
        return Ok(ExitCode::SUCCESS);
    }
    let who = &scope.started.entry;
    outln!("export {} ({})", scope.export_id, scope.status.name());
    outln!("  format: {}", scope.format.name());
    outln!("  written to: {}", scope.destination);
    match &scope.protection {
        rxvault_audit::ExportProtection::Plaintext => outln!("  PLAINTEXT"),
        rxvault_audit::ExportProtection::Age { recipients } => {
            outln!("  encrypted to: {}", recipients.join(", "))
        }
    }
    outln!(
        "  by {} {} at {}{}",
        who.actor.kind.name(),
        who.actor.id,
        rfc3339_ms(scope.started.time_ms),
        who.break_glass
            .as_deref()
            .map(|g| format!(" (under break-glass grant {g})"))
            .unwrap_or_default()
    );
    if let Some(end) = &scope.end {
        outln!("  ended {}", rfc3339_ms(end.time_ms));
    } else {
        outln!("  no end recorded: assume everything below was taken");
    }
    for (kind, categories) in scope.categories.iter() {
        let names: Vec<&str> = categories.iter().map(|c| c.name()).collect();
        outln!("  {kind}: {}", names.join(", "));
    }
    outln!(
        "  {} records, {} patients:",
        scope.records,
        scope.patients.len()
    );
    for p in &scope.patients {
        outln!("    {p}");
    }
    Ok(ExitCode::SUCCESS)
}

fn resolve(addr: &str, default_port: u16) -> Result<(SocketAddr, String)> {
    let with_port = if addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        addr.to_string()
    } else {
        format!("{addr}:{default_port}")
    };
    let host = with_port
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
        .unwrap_or_default();
    let sock = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} has no address"))?;
    Ok((sock, host))
}

fn export(a: &ExportArgs) -> Result<ExitCode> {
    let vault = crate::open(&a.vault)?;
    let q = to_query(&a.filter, &vault)?;
    let sending = a.udp.is_some() || a.tcp.is_some() || a.tls.is_some();
    if sending && a.format != ExportFormat::Syslog {
        bail!("--udp, --tcp and --tls send syslog: use --format syslog");
    }
    let syslog_config = SyslogConfig {
        hostname: a.hostname.clone(),
        ..Default::default()
    };
    if sending {
        let transport = if let Some(u) = &a.udp {
            Transport::Udp(resolve(u, 514)?.0)
        } else if let Some(t) = &a.tcp {
            Transport::Tcp(resolve(t, 601)?.0)
        } else {
            let (addr, host) = resolve(a.tls.as_deref().unwrap_or_default(), 6514)?;
            let ca = a.ca_file.as_deref().context("--tls needs --ca-file")?;
            Transport::Tls {
                addr,
                server_name: a.server_name.clone().unwrap_or(host),
                roots: syslog::load_certificates(ca)?,
            }
        };
        let mut sender = syslog::Sender::connect(&transport)?;
        let n = vault.use_audit_log(&local(), AuditLogUse::Export, |reader| {
            let n = reader.scan(&q, 10_000, |e| sender.send_entry(&e, &syslog_config))?;
            sender.finish()?;
            Ok(n)
        })?;
        eprintln!("{n} entries sent");
        return Ok(ExitCode::SUCCESS);
    }
    let mut sink: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let ctx = FhirContext {
        vault_id: vault.config().vault_id.clone(),
    };
    let now = rxvault_audit::unix_ms(vault.clock().now());
    let n = vault.use_audit_log(&local(), AuditLogUse::Export, |reader| {
        let n = match a.format {
            ExportFormat::Jsonl => reader.scan(&q, 10_000, |e| jsonl::write(&mut sink, &e))?,
            ExportFormat::Fhir => {
                reader.scan(&q, 10_000, |e| fhir::write_ndjson(&mut sink, &e, &ctx))?
            }
            ExportFormat::Syslog => reader.scan(&q, 10_000, |e| {
                writeln!(sink, "{}", syslog::format(&e, &syslog_config)).map_err(|source| {
                    rxvault_audit::Error::Io {
                        what: "writing syslog lines".into(),
                        source,
                    }
                })
            })?,
            ExportFormat::FhirBundle => {
                let mut w = BundleWriter::start(&mut sink, ctx.clone(), now)?;
                let n = reader.scan(&q, 10_000, |e| w.push(&e))?;
                w.finish()?;
                n
            }
        };
        sink.flush().map_err(|source| rxvault_audit::Error::Io {
            what: "writing the export".into(),
            source,
        })?;
        Ok(n)
    })?;
    eprintln!("{n} entries exported");
    Ok(ExitCode::SUCCESS)
}

fn status(args: &VaultArgs) -> Result<ExitCode> {
    let vault = crate::open(args)?;
    let reader = reader(&vault)?;
    outln!(
        "audit log of vault {} ({:?})",
        vault.config().vault_id,
        reader.store().backend()
    );
    outln!("  entries: {}", reader.size()?);
    match reader.latest_checkpoint()? {
        Some(cp) => {
            outln!(
                "  latest checkpoint: {} entries, signed {}",
                cp.checkpoint.size,
                rfc3339_ms(cp.checkpoint.time_ms)
            );
            outln!("  key: {}", cp.key);
        }
        None => outln!("  no checkpoint yet"),
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(a: &BenchArgs) -> Result<ExitCode> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tmp = tempfile::Builder::new()
                .prefix("audit-bench")
                .tempdir_in(d)?;
            tmp.path().to_path_buf()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("rxvault-audit-bench")
                .tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    outln!(
        "rxvault audit bench: {} cores, SQLite in {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.display()
    );
    rxvault_audit::bench::run(
        &rxvault_audit::bench::BenchConfig {
            dir,
            entries: a.entries,
            producers: a.producers,
            window: a.window,
            query_entries: a.query_entries,
            queries: a.queries,
        },
        &mut |line| outln!("{line}"),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn bench_dir(dir: Option<&Path>) -> Result<tempfile::TempDir> {
    Ok(match dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::Builder::new()
                .prefix("audit-bench")
                .tempdir_in(d)?
        }
        None => tempfile::Builder::new()
            .prefix("rxvault-audit-bench")
            .tempdir()?,
    })
}

fn bench_stream(a: &BenchStreamArgs) -> Result<ExitCode> {
    let tmp = bench_dir(a.dir.as_deref())?;
    outln!(
        "rxvault audit bench-stream: {} cores, SQLite in {}{}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        tmp.path().display(),
        if a.pg_url.is_some() {
            ", and PostgreSQL"
        } else {
            ""
        }
    );
    let child_command = if a.no_cross_process {
        None
    } else {
        let exe = std::env::current_exe().context("finding this program for the child process")?;
        Some(vec![
            exe.into_os_string(),
            "audit".into(),
            "bench-stream-child".into(),
        ])
    };
    rxvault_audit::bench::stream::run(
        &rxvault_audit::bench::stream::StreamBenchConfig {
            dir: tmp.path().to_path_buf(),
            sqlite: !a.no_sqlite,
            postgres: a.pg_url.clone(),
            entries: a.entries,
            producers: a.producers,
            window: a.window,
            consumers: a.consumers,
            paced_rate: a.paced_rate,
            paced_entries: a.paced_entries,
            child_command,
        },
        &mut |line| outln!("{line}"),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn bench_stream_child(a: &BenchStreamChildArgs) -> Result<ExitCode> {
    let location = match (&a.sqlite, &a.pg_schema) {
        (Some(dir), None) => StoreLocation::Sqlite { dir: dir.clone() },
        (None, Some(schema)) => StoreLocation::Postgres {
            url: std::env::var(rxvault_audit::bench::stream::CHILD_PG_URL)
                .context("the PostgreSQL URL")?,
            schema: schema.clone(),
        },
        _ => bail!("give one of --sqlite and --pg-schema"),
    };
    rxvault_audit::bench::stream::child(
        &rxvault_audit::bench::stream::ChildArgs {
            keys: a.keys.clone(),
            location,
            entries: a.entries,
            rate: a.rate,
            producers: a.producers,
        },
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    //! The commands, run in-process on a real vault (SQLite), with their
    //! output files checked.
    use super::*;
    use clap::Parser;
    use rxvault_audit::{Action, Actor, Entry};
    use rxvault_model::{CategorySet, SystemClock};
    use rxvault_vault::keys::InitKey;
    use std::sync::Arc;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        audit: AuditCommand,
    }

    fn parse(args: &[&str]) -> AuditCommand {
        let mut v = vec!["audit"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().audit
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        data: PathBuf,
        key: PathBuf,
        root: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().to_path_buf();
            let data = root.join("data");
            let key = root.join("vault.key");
            Vault::init(
                &data,
                rxvault_vault::StoreConfig::Sqlite,
                InitKey::File(Some(key.clone())),
                Arc::new(SystemClock),
            )
            .unwrap();
            Self {
                _tmp: tmp,
                data,
                key,
                root,
            }
        }

        fn args(&self, rest: &[&str]) -> Vec<String> {
            let mut v: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            v.extend([
                "--data".into(),
                self.data.display().to_string(),
                "--key-file".into(),
                self.key.display().to_string(),
            ]);
            v
        }

        fn run(&self, rest: &[&str]) -> ExitCode {
            let args = self.args(rest);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run(parse(&refs)).unwrap()
        }

        fn vault(&self) -> Vault {
            Vault::open(
                &self.data,
                Some(rxvault_vault::KeySource::File(self.key.clone())),
                Arc::new(SystemClock),
            )
            .unwrap()
        }

        /// Entries as the server would log them.
        fn log_reads(&self, n: u64) {
            let vault = self.vault();
            let log = vault.audit().unwrap();
            for i in 0..n {
                let patient = vault.rid(RecordKind::Patient, &format!("p{}", i % 4));
                log.append(
                    Entry::new(
                        Actor::user(format!("user{}", i % 2)),
                        Action::Read {
                            kind: Some(RecordKind::Patient),
                            categories: CategorySet::ALL,
                        },
                    )
                    .session(format!("s{}", i / 5))
                    .patients([patient]),
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn checkpoint_then_verify_against_it_and_detect_an_edit() {
        let f = Fixture::new();
        f.log_reads(20);
        let cp = f.root.join("witness.cp");
        assert_eq!(
            f.run(&["checkpoint", "--out", cp.to_str().unwrap()]),
            ExitCode::SUCCESS
        );
        let note = std::fs::read_to_string(&cp).unwrap();
        let parsed = SignedCheckpoint::parse(&note).unwrap();
        assert_eq!(parsed.checkpoint.size, 20);
        assert_eq!(
            f.run(&["verify", "--checkpoint", cp.to_str().unwrap()]),
            ExitCode::SUCCESS
        );
        // Without the vault key, anchored by the witness copy only.
        let args = [
            "verify".to_string(),
            "--data".into(),
            f.data.display().to_string(),
            "--without-key".into(),
            "--checkpoint".into(),
            cp.display().to_string(),
        ];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(run(parse(&refs)).unwrap(), ExitCode::SUCCESS);
        // An edited entry fails verification.
        let db = rusqlite::Connection::open(f.data.join("audit.db")).unwrap();
        let mut bytes: Vec<u8> = db
            .query_row("SELECT entry FROM audit_entries WHERE idx = 7", [], |r| {
                r.get(0)
            })
            .unwrap();
        bytes[10] ^= 1;
        db.execute(
            "UPDATE audit_entries SET entry = ? WHERE idx = 7",
            rusqlite::params![bytes],
        )
        .unwrap();
        assert_eq!(
            f.run(&["verify", "--checkpoint", cp.to_str().unwrap()]),
            ExitCode::from(1)
        );
        // A value of another type is reported, not a crash.
        db.execute("UPDATE audit_entries SET entry = 'x' WHERE idx = 7", [])
            .unwrap();
        assert_eq!(
            f.run(&["verify", "--checkpoint", cp.to_str().unwrap()]),
            ExitCode::from(1)
        );
        // So does a log without its tail (the witness remembers it).
        db.execute("DELETE FROM audit_entries WHERE idx >= 7", [])
            .unwrap();
        assert_eq!(
            f.run(&["verify", "--checkpoint", cp.to_str().unwrap()]),
            ExitCode::from(1)
        );
    }

    #[test]
    fn queries_and_exports_write_what_was_logged() {
        let f = Fixture::new();
        f.log_reads(20);
        assert_eq!(f.run(&["status"]), ExitCode::SUCCESS);
        assert_eq!(
            f.run(&["query", "--session", "s1", "--patients", "--json"]),
            ExitCode::SUCCESS
        );
        assert_eq!(
            f.run(&[
                "query",
                "--user",
                "user1",
                "--patient",
                "p1",
                "--from",
                "2000-01-01"
            ]),
            ExitCode::SUCCESS
        );
        for (format, file) in [
            ("jsonl", "a.jsonl"),
            ("fhir", "a.ndjson"),
            ("fhir-bundle", "a.json"),
            ("syslog", "a.log"),
        ] {
            let out = f.root.join(file);
            assert_eq!(
                f.run(&[
                    "export",
                    "--format",
                    format,
                    "--user",
                    "user1",
                    "--out",
                    out.to_str().unwrap()
                ]),
                ExitCode::SUCCESS
            );
            let text = std::fs::read_to_string(&out).unwrap();
            match format {
                "fhir-bundle" => {
                    let b: serde_json::Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(b["entry"].as_array().unwrap().len(), 10);
                }
                "syslog" => assert_eq!(text.lines().filter(|l| l.starts_with('<')).count(), 10),
                _ => {
                    let lines: Vec<serde_json::Value> = text
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                    assert_eq!(lines.len(), 10);
                    if format == "fhir" {
                        assert_eq!(lines[0]["resourceType"], "AuditEvent");
                        assert_eq!(lines[0]["agent"][0]["who"]["identifier"]["value"], "user1");
                    } else {
                        assert_eq!(lines[0]["actor"]["id"], "user1");
                    }
                }
            }
        }
        // Syslog over UDP to a local listener.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let addr = sock.local_addr().unwrap().to_string();
        assert_eq!(
            f.run(&[
                "export",
                "--format",
                "syslog",
                "--session",
                "s0",
                "--udp",
                &addr
            ]),
            ExitCode::SUCCESS
        );
        let mut buf = [0u8; 4096];
        for _ in 0..5 {
            let n = sock.recv(&mut buf).unwrap();
            assert!(
                std::str::from_utf8(&buf[..n])
                    .unwrap()
                    .contains("session=\"s0\"")
            );
        }
        // Bad input is a usage error, not a panic.
        let args = f.args(&["query", "--action", "peek"]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(run(parse(&refs)).is_err());
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z").unwrap(), 1500);
    }

    #[test]
    fn the_bench_runs_small() {
        let tmp = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        let figures = rxvault_audit::bench::run(
            &rxvault_audit::bench::BenchConfig {
                dir: tmp.path().to_path_buf(),
                entries: 2000,
                producers: 2,
                window: 64,
                query_entries: 3000,
                queries: 3,
            },
            &mut |l| lines.push(l.to_string()),
        )
        .unwrap();
        // Two runs with the tree, two without.
        assert_eq!(figures.append.unwrap().entries, 2 * 2000);
        assert_eq!(figures.append_without_tree.unwrap().entries, 2 * 2000);
        assert_eq!(figures.queries.len(), 3);
        // The session query finds that session's entries (64 per session).
        assert!(
            figures.queries[0].1 > 0 && figures.queries[0].1 <= 64,
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains("no problems")), "{lines:?}");
    }
}
