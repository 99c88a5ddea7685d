//! `rxvault`: the command line.
//!
//! Each subcommand is a thin layer over `rxvault-vault`: parse flags,
//! resolve the key, call the library, print. Exit codes: 0 success, 1
//! failure, 2 usage error, 3 finished but some input records were rejected.

// Output goes through `outln!`/`out!` (a closed pipe ends it quietly).
#![warn(clippy::print_stdout)]

#[macro_use]
mod ui;
mod agent_bench;
mod agent_cmd;
mod audit_cmd;
mod backup_cmd;
mod bench;
mod bench_http;
mod breach_cmd;
mod demo;
mod detect_cmd;
mod detect_sim;
mod keysource;
mod serve;
mod user_cmd;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use rxvault_model::{Clock, SystemClock};
use rxvault_vault::access::{Requester, View};
use rxvault_vault::export::Target;
use rxvault_vault::import::ImportOptions;
use rxvault_vault::keys::{InitKey, RotateOptions};
use rxvault_vault::query::Find;
use rxvault_vault::{StoreConfig, Vault};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The allocator: mimalloc. The server allocates per request (TLS records,
/// rows, JSON); with glibc's malloc an authenticated read took 10% more CPU and a
/// login (Argon2id's 19 MiB) 30% more (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// rxvault: an encrypted vault for pharmacy PHI.
#[derive(Parser, Debug)]
#[command(name = "rxvault", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "RXVAULT_LOG_FORMAT"
    )]
    log_format: ui::LogFormat,
    /// More logging (-v info, -vv debug). RXVAULT_LOG takes a full filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a vault.
    Init(InitArgs),
    /// Import FHIR R4 Bulk NDJSON files, folders or Bundle JSON.
    Import(ImportArgs),
    /// Export data (FHIR NDJSON, or the daily shipping manifest).
    #[command(subcommand)]
    Export(ExportCommand),
    /// Show or find patients.
    #[command(subcommand)]
    Patient(PatientCommand),
    /// Key status and rotation.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Counts, schema and key facts of a vault.
    Status(VaultArgs),
    /// Check every record against what the database says of it (patient
    /// link, flags, index entries), without decrypting: finds what no read
    /// shows, such as a record whose link was altered out of its chart.
    /// Exit code 1 if anything is wrong.
    Check(VaultArgs),
    /// Write deterministic synthetic patients as FHIR NDJSON.
    Synth(SynthArgs),
    /// Create (or refresh) a demo vault with synthetic patients and show what to try.
    Demo(demo::DemoArgs),
    /// Serve the HTTPS JSON API and FHIR R4 REST.
    Serve(serve::ServeArgs),
    /// Benchmarks (figures are printed, not asserted).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Accounts, roles, second factors, service accounts and API keys.
    #[command(subcommand)]
    User(user_cmd::UserCommand),
    /// List and revoke sessions.
    #[command(subcommand)]
    Session(user_cmd::SessionCommand),
    /// The tamper-evident audit log: checkpoints, verify, queries, exports.
    #[command(subcommand)]
    Audit(Box<audit_cmd::AuditCommand>),
    /// Detection: the rules, replaying an audit export, honeytoken
    /// patients, the engine's benchmark.
    #[command(subcommand)]
    Detect(detect_cmd::DetectCommand),
    /// Alerts raised by detection: list, show, acknowledge, resolve.
    #[command(subcommand)]
    Alerts(detect_cmd::AlertsCommand),
    /// Backups into restic repositories (a folder, or an append-only REST
    /// server): create, list, verify, restore.
    #[command(subcommand)]
    Backup(backup_cmd::BackupCommand),
    /// Restore the latest backup into a scratch folder with the escrow kit,
    /// prove it (every record decrypts, counts match, the audit log
    /// verifies against its backup-time checkpoint), report RTO and RPO.
    RestoreDrill(backup_cmd::DrillArgs),
    /// Breach response: incidents, exact scope from the audit log, safe harbor, notices.
    #[command(subcommand)]
    Breach(Box<breach_cmd::BreachCommand>),
    /// The workstation agent: real-time ransomware detection and response.
    #[command(subcommand)]
    Agent(agent_cmd::AgentCommand),
}

/// Where the vault is and how to open it.
#[derive(Args, Debug, Clone)]
struct VaultArgs {
    /// The vault's data directory.
    #[arg(long, env = "RXVAULT_DATA")]
    data: PathBuf,
    #[command(flatten)]
    key: keysource::KeyArgs,
}

#[derive(Args, Debug)]
struct InitArgs {
    /// The data directory to create.
    #[arg(long, env = "RXVAULT_DATA")]
    data: PathBuf,
    /// Where to write the new key file (default: ~/.config/rxvault/keys/<vault id>.key).
    /// Never inside the data directory.
    #[arg(long, env = "RXVAULT_KEY_FILE", conflicts_with = "passphrase_file")]
    key_file: Option<PathBuf>,
    /// Protect the vault with the passphrase in this file instead of a key file (Argon2id).
    #[arg(long, env = "RXVAULT_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
    /// Store records in PostgreSQL instead of the embedded SQLite.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// The PostgreSQL schema for this vault's tables.
    #[arg(long, default_value = "rxvault", requires = "postgres")]
    pg_schema: String,
}

#[derive(Args, Debug)]
struct ImportArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Files or folders (walked for .ndjson, .jsonl and .json).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Records per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Longest NDJSON line accepted, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_record_bytes: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Print the process's peak memory (RSS) with the report.
    #[arg(long)]
    stats: bool,
}

#[derive(Args, Debug)]
struct ExportTargetArgs {
    /// Write plaintext PHI (you are responsible for the files).
    #[arg(long, conflicts_with_all = ["recipient", "recipients_file"])]
    plaintext: bool,
    /// Encrypt the files to this age recipient (age1...); repeatable.
    #[arg(long)]
    recipient: Vec<String>,
    /// Encrypt to the age recipients listed in this file (one per line).
    #[arg(long)]
    recipients_file: Option<PathBuf>,
}

impl ExportTargetArgs {
    fn target(&self) -> Result<Target> {
        let mut recipients = self.recipient.clone();
        if let Some(f) = &self.recipients_file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            recipients.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
        match (self.plaintext, recipients.is_empty()) {
            (true, _) => Ok(Target::Plaintext),
            (false, false) => Ok(Target::Age(rxvault_crypto::export::Recipients::parse(
                &recipients,
            )?)),
            (false, true) => bail!(
                "an export must be encrypted or explicitly plaintext: pass --recipient age1... \
                 (or --recipients-file FILE) to encrypt it, or --plaintext to write PHI in the clear"
            ),
        }
    }
}

#[derive(Subcommand, Debug)]
enum ExportCommand {
    /// Every record as FHIR R4 NDJSON, one file per resource type, with a manifest.
    Fhir {
        #[command(flatten)]
        vault: VaultArgs,
        /// Output folder (new or empty).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        target: ExportTargetArgs,
    },
    /// The minimised shipping manifest of one day: transaction ID, package,
    /// ship-to name and address. No birth dates, phones, medications, plans or patient IDs.
    Shipping {
        #[command(flatten)]
        vault: VaultArgs,
        /// The fill date (YYYY-MM-DD).
        #[arg(long)]
        date: String,
        /// Output CSV file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        target: ExportTargetArgs,
    },
}

#[derive(Subcommand, Debug)]
enum PatientCommand {
    /// A patient's chart: demographics, contacts, plans, medication list, allergies.
    Show {
        #[command(flatten)]
        vault: VaultArgs,
        /// The patient ID (FHIR Patient id).
        id: String,
        /// Print FHIR resources as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find patients through the blind indexes.
    Find {
        #[command(flatten)]
        vault: VaultArgs,
        /// Family name (with --birth-date).
        #[arg(long, requires = "birth_date")]
        family: Option<String>,
        /// Birth date, YYYY-MM-DD or MM/DD/YYYY (with --family).
        #[arg(long, requires = "family")]
        birth_date: Option<String>,
        /// Phone number, any format.
        #[arg(long)]
        phone: Option<String>,
        /// Health plan member ID.
        #[arg(long)]
        member_id: Option<String>,
        /// Prescription Rx number.
        #[arg(long)]
        rx_number: Option<String>,
        /// Fill transaction ID.
        #[arg(long)]
        transaction_id: Option<String>,
        /// Patient identifier (medical record number and others).
        #[arg(long)]
        identifier: Option<String>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Rotate the key-encryption key (resumes an interrupted rotation).
    /// With --reencrypt, stop other writers (rxvault serve) first.
    Rotate {
        #[command(flatten)]
        vault: VaultArgs,
        /// Also reseal every record under a fresh data key.
        #[arg(long)]
        reencrypt: bool,
        /// Passphrase vaults: the new passphrase (default: keep it, new salt).
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
        /// Records per committed page when re-encrypting.
        #[arg(long, default_value_t = 500)]
        page: usize,
    },
    /// KEK version, data keys, rotation state.
    Status(VaultArgs),
    /// Write an escrow kit: the KEK sealed under a passphrase of its own,
    /// to print or keep offline. Restoring a backup needs it.
    Escrow(backup_cmd::EscrowOutArgs),
}

#[derive(Args, Debug)]
struct SynthArgs {
    /// How many patients.
    #[arg(long)]
    patients: u64,
    /// Seed: the same seed gives the same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Fills are dated in the year up to this day (default: today).
    #[arg(long)]
    as_of: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ui::init_logging(cli.log_format, cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// A usage error clap cannot see (flags that only make sense together):
/// exit code 2, as for clap's own.
#[derive(Debug)]
pub(crate) struct Usage(&'static str);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Usage {}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

pub(crate) fn open(args: &VaultArgs) -> Result<Vault> {
    let source = args.key.source()?;
    let source = match source {
        Some(s) => Some(s),
        None => keysource::prompt_if_passphrase(&args.data)?,
    };
    Ok(Vault::open(&args.data, source, clock())?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init(a) => {
            let store = match a.postgres {
                Some(url) => StoreConfig::Postgres {
                    url,
                    schema: a.pg_schema,
                },
                None => StoreConfig::Sqlite,
            };
            let key = match &a.passphrase_file {
                Some(f) => InitKey::Passphrase(keysource::read_passphrase(f)?),
                None => InitKey::File(a.key_file.clone()),
            };
            let created = Vault::init(&a.data, store, key, clock())?;
            outln!(
                "created vault {} in {}",
                created.config.vault_id,
                a.data.display()
            );
            match &created.key_file {
                Some(k) => outln!(
                    "key file: {} (mode 0600)\n  Keep a copy somewhere safe and apart from the data: without it the vault cannot be opened.",
                    k.display()
                ),
                None => outln!(
                    "key: derived from your passphrase (Argon2id); without it the vault cannot be opened."
                ),
            }
            outln!(
                "time zone: {} (what \"today\" means for the day's shipments; `time_zone` in {})",
                created.config.time_zone.as_deref().unwrap_or("UTC"),
                a.data.join(rxvault_vault::config::CONFIG_FILE).display()
            );
            let d = a.data.display();
            outln!(
                "people: `rxvault user add --data {d} NAME --role administrator` makes the first administrator at once;\n  \
                 every later role that reads charts or approves waits for a second person (`rxvault user requests`, `rxvault user approve`);\n  \
                 a one-person pharmacy approves its own: `rxvault user single-operator --data {d} on`"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(a) => {
            let vault = open(&a.vault)?;
            let options = ImportOptions {
                batch_records: a.batch.max(1),
                read: rxvault_fhir::read::Options {
                    max_record_bytes: a.max_record_bytes,
                },
            };
            let mut observer = ui::ImportProgress::new(&a.paths);
            let report =
                vault.import_for(&Requester::local(), &a.paths, &options, &mut observer)?;
            observer.finish();
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                ui::print_import(&report);
            }
            if a.stats {
                outln!("peak RSS: {} KiB", ui::peak_rss_kib().unwrap_or(0));
            }
            Ok(if report.errors > 0 {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Export(ExportCommand::Fhir { vault, out, target }) => {
            let target = target.target()?;
            let vault = open(&vault)?;
            let mut progress = ui::Bar::new();
            let report =
                vault.export_fhir_for(&Requester::local(), &out, &target, &mut progress)?;
            progress.finish();
            for f in &report.files {
                outln!("{:>9}  {}", f.count, out.join(&f.url).display());
            }
            outln!(
                "export {} ({}): {} patients",
                report.export_id,
                if report.encrypted {
                    "encrypted"
                } else {
                    "PLAINTEXT"
                },
                report.patients.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(ExportCommand::Shipping {
            vault,
            date,
            out,
            target,
        }) => {
            let target = target.target()?;
            let vault = open(&vault)?;
            let report = vault.export_shipping_for(&Requester::local(), &date, &out, &target)?;
            outln!(
                "{} packages for {date} -> {} (export {})",
                report.rows,
                report.path.display(),
                report.export_id
            );
            if report.from_patient_address > 0 {
                eprintln!(
                    "note: {} packages are addressed to the patient's own address (their fills \
                     name no destination)",
                    report.from_patient_address
                );
            }
            if report.unresolved > 0 {
                eprintln!(
                    "warning: {} fills are NOT in the manifest: their destination is a Location \
                     resource, which rxvault does not store (give the ship-to as a contained \
                     Location)",
                    report.unresolved
                );
            }
            if report.skipped > report.unresolved {
                eprintln!(
                    "warning: {} fills of that day are not in the manifest (not shipping, or no \
                     address known)",
                    report.skipped - report.unresolved
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Patient(PatientCommand::Show { vault, id, json }) => {
            let vault = open(&vault)?;
            let Some(chart) = vault.read_chart(&Requester::local(), &View::ALL, &id)? else {
                bail!("no patient with ID {id:?}");
            };
            if json {
                let all = serde_json::json!({
                    "patient": chart.patient,
                    "coverages": chart.coverages,
                    "prescriptions": chart.prescriptions,
                    "fills": chart.fills,
                    "allergies": chart.allergies,
                });
                outln!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                ui::print_chart(&chart.view()?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Patient(PatientCommand::Find {
            vault,
            family,
            birth_date,
            phone,
            member_id,
            rx_number,
            transaction_id,
            identifier,
            json,
        }) => {
            let mut queries: Vec<Find> = [
                family
                    .zip(birth_date)
                    .map(|(family, birth_date)| Find::FamilyBirthDate { family, birth_date }),
                phone.map(Find::Phone),
                member_id.map(Find::MemberId),
                rx_number.map(Find::RxNumber),
                transaction_id.map(Find::TransactionId),
                identifier.map(Find::PatientIdentifier),
            ]
            .into_iter()
            .flatten()
            .collect();
            let (Some(query), None) = (queries.pop(), queries.pop()) else {
                return Err(Usage(
                    "give exactly one search: --family with --birth-date, --phone, --member-id, \
                     --rx-number, --transaction-id or --identifier",
                )
                .into());
            };
            let vault = open(&vault)?;
            let found = vault.search_patients(&Requester::local(), &View::ALL, &query)?;
            let found: Vec<rxvault_model::Patient> = found
                .iter()
                .map(|(_, r)| rxvault_fhir::map::patient_view(r))
                .collect::<Result<_, _>>()?;
            for p in &found {
                if json {
                    outln!("{}", serde_json::to_string(p)?);
                } else {
                    outln!("{}", ui::patient_line(p));
                }
            }
            if !json {
                eprintln!("{} patient(s) found", found.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Rotate {
            vault,
            reencrypt,
            new_passphrase_file,
            page,
        }) => {
            let current = match vault.key.source()? {
                Some(s) => Some(s),
                None => keysource::prompt_if_passphrase(&vault.data)?,
            };
            let new_passphrase = new_passphrase_file
                .as_deref()
                .map(keysource::read_passphrase)
                .transpose()?;
            let options = RotateOptions {
                current,
                new_passphrase,
                reencrypt,
                page,
            };
            let mut progress = ui::Bar::new();
            let report =
                rxvault_vault::keys::rotate(&vault.data, &options, clock(), &mut progress)?;
            progress.finish();
            // Audited by rxvault-vault where it ran: started (or resumed),
            // then finished or failed.
            outln!(
                "KEK rotated from version {} to {}{}: {} keys rewrapped, {} records resealed ({} older data keys now seal no record)",
                report.from,
                report.to,
                if report.resumed { " (resumed)" } else { "" },
                report.rewrapped,
                report.resealed,
                report.unused_keys
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Status(args)) => {
            let vault = open(&args)?;
            let s = vault.key_status()?;
            outln!("KEK: version {} ({})", s.kek_version, s.kek_kind);
            for (id, n) in &s.data_keys {
                outln!("data key {id:>10}: {n} records");
            }
            if let Some(r) = &s.rotation {
                outln!("rotation in progress: {r} (run `rxvault keys rotate` to finish it)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => {
            let vault = open(&args)?;
            outln!("vault {} ({:?})", vault.config().vault_id, vault.backend());
            outln!("schema version {}", vault.schema_version()?);
            for (kind, n) in vault.counts()? {
                outln!("{:>9}  {kind}", n);
            }
            let s = vault.key_status()?;
            outln!(
                "KEK version {} ({}), {} data keys",
                s.kek_version,
                s.kek_kind,
                s.data_keys.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let vault = open(&args)?;
            let mut bar = ui::Bar::new();
            let report = vault.check_records(&mut bar)?;
            bar.finish();
            for f in &report.findings {
                outln!("{} record {}: {}", f.kind.table(), f.rid, f.problem);
            }
            outln!(
                "{} records checked, {} problems",
                report.checked,
                report.findings.len()
            );
            Ok(if report.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Synth(a) => {
            let as_of = match &a.as_of {
                Some(d) => ui::parse_date(d)?,
                None => rxvault_vault::local_today(&*clock()),
            };
            let config = rxvault_synth::Config {
                patients: a.patients,
                seed: a.seed,
                as_of,
            };
            let mut bar = ui::Bar::new();
            rxvault_vault::keys::Progress::phase(
                &mut bar,
                "synthesizing patients",
                Some(a.patients),
            );
            let mut last = 0;
            let summary = rxvault_synth::write_ndjson(&config, &a.out, &mut |n| {
                rxvault_vault::keys::Progress::advance(&mut bar, n - last);
                last = n;
            })?;
            bar.finish();
            outln!("{summary:?}");
            outln!("wrote {} patients to {}", a.patients, a.out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(a) => demo::run(a, clock()),
        Command::Bench(b) => bench::run(b),
        Command::Serve(a) => serve::run(a),
        Command::User(c) => user_cmd::run_user(c),
        Command::Session(c) => user_cmd::run_session(c),
        Command::Audit(a) => audit_cmd::run(*a),
        Command::Detect(c) => detect_cmd::run_detect(c),
        Command::Alerts(c) => detect_cmd::run_alerts(c),
        Command::Backup(c) => backup_cmd::run(c),
        Command::RestoreDrill(a) => backup_cmd::run_drill(a),
        Command::Keys(KeysCommand::Escrow(a)) => backup_cmd::run_escrow(a),
        Command::Breach(b) => breach_cmd::run(*b),
        Command::Agent(c) => agent_cmd::run(c),
    }
}
