//! `rxvault detect` (rules, replay, honeytokens, bench) and `rxvault
//! alerts` (list, show, ack, resolve), and the detector as the server
//! runs it: a consumer of the live audit stream plus a delivery job.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rxvault_detect::sinks::Sink;
use rxvault_detect::{Alert, Alerts, Detector, Rules, Status};
use rxvault_model::RecordKind;
use rxvault_server::services::{Consumer, Job, Services};
use rxvault_vault::Vault;
use rxvault_vault::access::Requester;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `rxvault detect ...`
#[derive(Subcommand, Debug)]
pub enum DetectCommand {
    /// Print the effective rules (DIR/detect.toml over the defaults).
    Rules {
        /// The vault's data directory (its detect.toml); without it, the
        /// defaults, or --file.
        #[arg(long, env = "RXVAULT_DATA")]
        data: Option<PathBuf>,
        /// A rules file to check and print instead.
        #[arg(long, conflicts_with = "data")]
        file: Option<PathBuf>,
    },
    /// Run an audit export (`rxvault audit export --format json`) through
    /// the rules and print what would have fired (no responses).
    Replay {
        /// The JSON-lines export.
        file: PathBuf,
        /// Rules (default: the shipped defaults).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The pharmacy's time zone for opening hours (IANA name).
        #[arg(long, default_value = "UTC")]
        time_zone: String,
    },
    /// Honeytoken patients.
    #[command(subcommand)]
    Honeytokens(HoneytokensCommand),
    /// Engine throughput on replayed entries against decoding alone.
    Bench(BenchArgs),
    /// A simulated pharmacy with attacks on the real vault, then the
    /// detector over its audit log: detection, exposure, false positives.
    Simulate(crate::detect_sim::SimArgs),
}

/// `rxvault detect honeytokens ...`
#[derive(Subcommand, Debug)]
pub enum HoneytokensCommand {
    /// Make decoy patients (with prescriptions, fills and a plan) that only
    /// the detector knows.
    Add {
        #[command(flatten)]
        vault: crate::VaultArgs,
        /// How many.
        #[arg(long, default_value_t = 5)]
        count: u64,
    },
    /// How many there are.
    Count(crate::VaultArgs),
}

/// `rxvault detect bench`
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Also measure, through a real server, from a honeytoken read to the
    /// alert at a local webhook and to the key being refused, this many
    /// times.
    #[arg(long, default_value_t = 0)]
    latency_trials: u32,
    /// Entries to replay.
    #[arg(long, default_value_t = 2_000_000)]
    entries: u64,
    /// Principals reading.
    #[arg(long, default_value_t = 200)]
    principals: u64,
    /// Patients read from.
    #[arg(long, default_value_t = 137_110)]
    patients: u64,
}

/// `rxvault alerts ...`
#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Alerts, newest first.
    List {
        #[command(flatten)]
        vault: crate::VaultArgs,
        /// Only this status (open, acknowledged, resolved, false-positive).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// As JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// One alert in full.
    Show {
        #[command(flatten)]
        vault: crate::VaultArgs,
        /// Its id.
        id: String,
    },
    /// Someone is on it.
    Ack {
        #[command(flatten)]
        vault: crate::VaultArgs,
        /// Its id.
        id: String,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Dealt with (a note is required).
    Resolve {
        #[command(flatten)]
        vault: crate::VaultArgs,
        /// Its id.
        id: String,
        /// What was done.
        #[arg(long)]
        note: String,
        /// Not an incident after all.
        #[arg(long)]
        false_positive: bool,
    },
}

/// The rules file of a vault.
pub fn rules_path(dir: &Path) -> PathBuf {
    dir.join("detect.toml")
}

/// The vault's time zone (UTC if it has none).
fn zone(vault: &Vault) -> Result<jiff::tz::TimeZone> {
    Ok(vault.config().zone()?)
}

pub fn run_detect(c: DetectCommand) -> Result<ExitCode> {
    match c {
        DetectCommand::Rules { data, file } => {
            let rules = match (data, file) {
                (_, Some(f)) => Rules::parse(
                    &std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?,
                    &f.display().to_string(),
                )?,
                (Some(d), None) => Rules::load(&rules_path(&d))?,
                (None, None) => Rules::default(),
            };
            out!("{}", rules.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        DetectCommand::Replay {
            file,
            rules,
            time_zone,
        } => replay(&file, rules.as_deref(), &time_zone),
        DetectCommand::Honeytokens(HoneytokensCommand::Add { vault, count }) => {
            let v = crate::open(&vault)?;
            let n = add_honeytokens(&v, count)?;
            outln!("{count} honeytoken patients made; the vault has {n}");
            Ok(ExitCode::SUCCESS)
        }
        DetectCommand::Honeytokens(HoneytokensCommand::Count(vault)) => {
            let v = crate::open(&vault)?;
            let store = v.detect_store()?;
            let n = rxvault_detect::honeytokens::load(store.as_ref(), v.secrets())?.len();
            outln!("{n}");
            Ok(ExitCode::SUCCESS)
        }
        DetectCommand::Bench(a) => bench(&a),
        DetectCommand::Simulate(a) => crate::detect_sim::run(&a),
    }
}

/// Makes `count` honeytoken patients through the audited import, with a
/// seed no one knows, and adds them to the detector's sealed set.
pub fn add_honeytokens(vault: &Vault, count: u64) -> Result<usize> {
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&hex::decode(&rxvault_crypto::random_id()?[..16])?);
    add_honeytokens_from(
        vault,
        &rxvault_synth::Config {
            patients: count,
            seed: u64::from_be_bytes(seed),
            as_of: vault.today(),
        },
    )
}

/// [`add_honeytokens`] from a given synthetic dataset (the simulator's,
/// whose attacks must know one).
pub fn add_honeytokens_from(vault: &Vault, config: &rxvault_synth::Config) -> Result<usize> {
    let (config, count) = (*config, config.patients);
    let input = tempfile::Builder::new()
        .prefix("rxvault-honeytokens")
        .tempdir()?;
    rxvault_synth::write_ndjson(&config, input.path(), &mut |_| {})?;
    let report = vault.import_for(
        &Requester::local(),
        &[input.path().to_path_buf()],
        &rxvault_vault::import::ImportOptions::default(),
        &mut (),
    )?;
    drop(input);
    if report.errors > 0 {
        bail!("{} honeytoken records were rejected", report.errors);
    }
    let rids: Vec<_> = (0..count)
        .map(|i| {
            let p = rxvault_synth::patient(&config, i);
            vault.secrets().rid(RecordKind::Patient, &p.id)
        })
        .collect();
    let store = vault.detect_store()?;
    Ok(rxvault_detect::honeytokens::add(
        store.as_ref(),
        vault.secrets(),
        &rids,
    )?)
}

fn replay(file: &Path, rules: Option<&Path>, time_zone: &str) -> Result<ExitCode> {
    let rules = match rules {
        Some(p) => Rules::parse(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            &p.display().to_string(),
        )?,
        None => Rules::default(),
    };
    let zone =
        jiff::tz::TimeZone::get(time_zone).with_context(|| format!("time zone {time_zone:?}"))?;
    let mut engine =
        rxvault_detect::Engine::new(rules, zone, Default::default(), Default::default())
            .map_err(anyhow::Error::msg)?;
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut findings = Vec::new();
    let mut n = 0u64;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", file.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {} is not JSON", file.display(), i + 1))?;
        let e = rxvault_audit::export::jsonl::from_json(&v)
            .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", file.display(), i + 1))?;
        engine.process(&e, &mut findings);
        n += 1;
    }
    for f in &findings {
        outln!(
            "{:>8}  {:<8}  {:<17} {:<16} {}",
            f.index,
            f.severity.name(),
            f.rule,
            f.principal
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            f.detail
        );
    }
    let s = &engine.state().stats;
    outln!(
        "{n} entries, {} findings; {} patient accesses, {:.1}% explained",
        findings.len(),
        s.accesses,
        100.0 * s.explained as f64 / s.accesses.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_alerts(c: AlertsCommand) -> Result<ExitCode> {
    let vault = match &c {
        AlertsCommand::List { vault, .. }
        | AlertsCommand::Show { vault, .. }
        | AlertsCommand::Ack { vault, .. }
        | AlertsCommand::Resolve { vault, .. } => crate::open(vault)?,
    };
    // A lifecycle step seals the alert again.
    vault.ensure_data_key()?;
    let alerts = Alerts::new(vault.detect_store()?, vault.secrets().clone());
    let by = format!("local:{}", rxvault_audit::Actor::local_operator().id);
    let now = rxvault_detect::now_ms(vault.clock().as_ref());
    match c {
        AlertsCommand::List {
            status,
            limit,
            json,
            ..
        } => {
            let status = status
                .map(|s| {
                    Status::from_name(&s).with_context(|| {
                        format!("no status {s:?} (open, acknowledged, resolved, false-positive)")
                    })
                })
                .transpose()?;
            let list = alerts.list(status, limit)?;
            for a in &list {
                if json {
                    outln!("{}", a.notice());
                } else {
                    print_line(a);
                }
            }
            if !json && list.is_empty() {
                outln!("no alerts");
            }
        }
        AlertsCommand::Show { id, .. } => {
            let a = alerts.get(&id)?;
            outln!("{}", serde_json::to_string_pretty(&a)?);
        }
        AlertsCommand::Ack { id, note, .. } => {
            let a = alerts.set_status(&id, Status::Acknowledged, &by, &note, now)?;
            print_line(&a);
        }
        AlertsCommand::Resolve {
            id,
            note,
            false_positive,
            ..
        } => {
            let status = if false_positive {
                Status::FalsePositive
            } else {
                Status::Resolved
            };
            let a = alerts.set_status(&id, status, &by, &note, now)?;
            print_line(&a);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_line(a: &Alert) {
    let when = time::OffsetDateTime::from_unix_timestamp(a.first_ms / 1000)
        .map(|t| t.to_string())
        .unwrap_or_default();
    outln!(
        "{}  {:<14} {:<8} {:<17} {:<20} findings {:>4}  patients {:>5}  {}",
        a.id,
        a.status.name(),
        a.severity.name(),
        a.rule,
        a.principal
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        a.findings,
        a.patients,
        when
    );
}

/// The detector as a consumer of the live audit stream.
struct DetectConsumer {
    detector: Detector,
}

impl Consumer for DetectConsumer {
    fn name(&self) -> &str {
        "detect"
    }

    fn resume_from(&self) -> Option<u64> {
        Some(self.detector.position())
    }

    fn handle(&mut self, entries: &[rxvault_audit::LoggedEntry]) -> Result<(), String> {
        self.detector
            .handle(entries)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn idle(&mut self) -> Result<(), String> {
        self.detector.tick().map(drop).map_err(|e| e.to_string())
    }

    fn stop(&mut self) {
        if let Err(e) = self.detector.snapshot() {
            tracing::warn!(error = %e, "saving the detector's state failed");
        }
    }
}

/// Adds detection to a server's services: the stream consumer (with
/// responses through `auth`) and the delivery of alerts to `sinks` every
/// second.
pub fn wire(
    services: Services,
    vault: &Arc<Vault>,
    auth: Arc<rxvault_auth::Auth>,
    sinks: Vec<Arc<dyn Sink>>,
) -> Result<Services> {
    let rules = Rules::load(&rules_path(&vault.config().dir))?;
    vault.ensure_data_key()?;
    let store = vault.detect_store()?;
    let detector = Detector::open(
        store.clone(),
        vault.secrets().clone(),
        vault.clock().clone(),
        rules,
        zone(vault)?,
        sinks.iter().map(|s| s.name().to_string()).collect(),
        Some(Arc::new(rxvault_detect::AuthResponder(auth))),
    )?;
    let alerts = Alerts::new(store.clone(), vault.secrets().clone());
    let clock = vault.clock().clone();
    let services = services.consumer(DetectConsumer { detector });
    if sinks.is_empty() {
        return Ok(services);
    }
    Ok(services.job(Job {
        name: "deliver-alerts",
        // An indexed look at the outbox: cheap enough to be prompt.
        every: Duration::from_millis(200),
        run: Arc::new(move || {
            rxvault_detect::sinks::deliver_due(&store, &alerts, &sinks, clock.as_ref(), 100)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
    }))
}

/// Engine throughput: synthesized read entries (principals reading random
/// patients, some writes) through the engine, against decoding them
/// alone, in the same process.
fn bench(a: &BenchArgs) -> Result<ExitCode> {
    use rxvault_audit::{Action, Actor, Entry, LoggedEntry};
    use rxvault_model::{CategorySet, Rid};
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let rid = |i: u64| {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&i.to_be_bytes());
        b[8..].copy_from_slice(&(i.wrapping_mul(0x9e37_79b9)).to_be_bytes());
        Rid(b)
    };
    let start_ms = 1_790_000_000_000i64;
    let entries: Vec<LoggedEntry> = (0..a.entries)
        .map(|i| {
            let who = next() % a.principals;
            let patient = rid(next() % a.patients);
            let action = if i % 10 == 0 {
                Action::Write {
                    kind: Some(RecordKind::Fill),
                    operation: rxvault_audit::WriteOp::Create,
                    records: 1,
                }
            } else {
                Action::Read {
                    kind: None,
                    categories: CategorySet::ALL,
                }
            };
            let mut e = Entry::new(Actor::user(format!("staff{who}")), action);
            e.session = Some(format!("s{who}"));
            e.patients = vec![patient];
            LoggedEntry {
                index: i,
                time_ms: start_ms + (i as i64) * 20,
                entry: e,
            }
        })
        .collect();
    // Baseline: what every consumer pays (touching each entry's patients).
    let t = Instant::now();
    let mut sum = 0u64;
    for e in &entries {
        sum = sum.wrapping_add(
            e.entry
                .patients
                .iter()
                .map(|p| u64::from(p.0[0]))
                .sum::<u64>(),
        );
    }
    let base = t.elapsed();
    let mut engine = rxvault_detect::Engine::new(
        Rules::default(),
        jiff::tz::TimeZone::UTC,
        Default::default(),
        Default::default(),
    )
    .map_err(anyhow::Error::msg)?;
    let mut findings = Vec::new();
    let t = Instant::now();
    for e in &entries {
        engine.process(e, &mut findings);
    }
    let took = t.elapsed();
    let snapshot = serde_json::to_vec(engine.state())?.len();
    outln!(
        "detect bench: {} entries, {} principals, {} patients (one core)",
        a.entries,
        a.principals,
        a.patients
    );
    outln!(
        "  baseline (a pass over the entries): {:>12.0} entries/s",
        a.entries as f64 / base.as_secs_f64().max(1e-9)
    );
    outln!(
        "  engine (every rule):                {:>12.0} entries/s  ({} findings)",
        a.entries as f64 / took.as_secs_f64().max(1e-9),
        findings.len()
    );
    outln!(
        "  state: {} principals, {} patients with activity, snapshot {} KiB ({:.1} KiB per principal incl. patients)",
        engine.state().principals(),
        engine.state().patients(),
        snapshot / 1024,
        snapshot as f64 / 1024.0 / engine.state().principals().max(1) as f64
    );
    std::hint::black_box(sum);
    if a.latency_trials > 0 {
        latency(a.latency_trials)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A local webhook receiver (HTTP/1.1, one request per connection): when
/// each delivery id arrived.
/// Deliveries a receiver got: (delivery id, when).
type Arrivals = Arc<std::sync::Mutex<Vec<(String, Instant)>>>;

fn receiver() -> Result<(u16, Arrivals)> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Ok(clone) = conn.try_clone() else {
                continue;
            };
            let mut reader = std::io::BufReader::new(clone);
            let (mut len, mut delivery) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let l = line.trim().to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length: ") {
                    len = v.parse().unwrap_or(0);
                }
                if let Some(v) = l.strip_prefix("x-rxvault-delivery: ") {
                    delivery = v.to_string();
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            g.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((delivery, Instant::now()));
            let _ = conn.write_all(
                b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    Ok((port, got))
}

/// From a honeytoken read (its response received: the entry is durable) to
/// the key refused and to the alert at the webhook, through a real server.
fn latency(trials: u32) -> Result<()> {
    use rxvault_auth::{Auth, AuthConfig, Scope};
    let tmp = tempfile::Builder::new()
        .prefix("rxvault-detect-latency")
        .tempdir()?;
    let clock: Arc<dyn rxvault_model::Clock> = Arc::new(rxvault_model::SystemClock);
    let data = tmp.path().join("vault");
    let key = tmp.path().join("bench.key");
    Vault::init(
        &data,
        rxvault_vault::StoreConfig::Sqlite,
        rxvault_vault::keys::InitKey::File(Some(key.clone())),
        clock.clone(),
    )?;
    let vault = Arc::new(Vault::open(
        &data,
        Some(rxvault_vault::KeySource::File(key)),
        clock,
    )?);
    let config = rxvault_synth::Config::new(100, 3, vault.today());
    let input = tmp.path().join("input");
    rxvault_synth::write_ndjson(&config, &input, &mut |_| {})?;
    vault.import_for(&Requester::local(), &[input], &Default::default(), &mut ())?;
    let decoys = rxvault_synth::Config::new(3, 0xdec0, vault.today());
    add_honeytokens_from(&vault, &decoys)?;
    let decoy = rxvault_synth::patient(&decoys, 0).id;
    let real = rxvault_synth::patient(&config, 0).id;
    // Each trial's refusal counts against this machine's address: allow
    // them all before the throttle's delays start.
    let mut config = AuthConfig::default();
    config.throttle.source_free_failures = trials + 10;
    let auth = Arc::new(Auth::new(
        vault.clone(),
        vault.auth_store()?,
        vault.clone(),
        vault.clock().clone(),
        config,
    )?);
    let holder = auth.key_holder();
    holder.set_single_operator(true)?;
    holder.create_service_account("scraper")?;
    let issued = holder.issue_api_key("scraper", &[Scope::PatientsRead], &[], None)?;
    if let Some(r) = &issued.request {
        holder.approver().approve(&r.id)?;
    }
    let api_key = issued.key.expose().to_string();
    let (port, got) = receiver()?;
    std::fs::write(
        tmp.path().join("hook.secret"),
        "a bench secret of some length",
    )?;
    std::fs::write(
        rules_path(&data),
        format!(
            "[[sinks.webhook]]\nname = \"bench\"\nurl = \"http://127.0.0.1:{port}/\"\nsecret_file = \"{}\"\n",
            tmp.path().join("hook.secret").display()
        ),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (refused, hooked) = runtime.block_on(async {
        let options = rxvault_server::ServeOptions {
            listen: "127.0.0.1:0".parse()?,
            tls: rxvault_server::tls::TlsSource::SelfSigned,
            limits: Default::default(),
            base_url: None,
        };
        let server = rxvault_server::Server::bind(vault.clone(), auth.clone(), &options).await?;
        let base = format!("https://localhost:{}", server.local_addr.port());
        let tls = rxvault_crypto::tls::client_config_trusting(&server.cert_pem)?;
        let rules = Rules::load(&rules_path(&data))?;
        let sinks = rules
            .sinks
            .webhook
            .iter()
            .map(|w| {
                Ok(Arc::new(rxvault_server::webhook::WebhookSink::new(
                    w,
                    tokio::runtime::Handle::current(),
                )?) as Arc<dyn Sink>)
            })
            .collect::<Result<Vec<_>>>()?;
        let (v, a) = (vault.clone(), auth.clone());
        let services =
            tokio::task::spawn_blocking(move || wire(Services::standard(a.clone()), &v, a, sinks))
                .await??;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(services.run(vault.clone(), server, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()?;
        let get = |id: String| {
            let c = client.clone();
            let (url, key) = (format!("{base}/api/v1/patients/{id}"), api_key.clone());
            async move {
                c.get(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        };
        let (mut refused, mut hooked) = (Vec::new(), Vec::new());
        for trial in 0..trials {
            let a = auth.clone();
            tokio::task::spawn_blocking(move || a.key_holder().enable("scraper")).await??;
            let before = got.lock().unwrap_or_else(|e| e.into_inner()).len();
            let status = get(decoy.clone()).await?;
            let t0 = Instant::now();
            anyhow::ensure!(
                status == 200,
                "trial {trial}: the decoy read answered {status}"
            );
            while get(real.clone()).await? == 200 {
                anyhow::ensure!(t0.elapsed() < Duration::from_secs(10), "never refused");
            }
            refused.push(t0.elapsed());
            loop {
                let arrived = {
                    let g = got.lock().unwrap_or_else(|e| e.into_inner());
                    g.get(before)
                        .map(|(_, at)| at.saturating_duration_since(t0))
                };
                if let Some(d) = arrived {
                    hooked.push(d);
                    break;
                }
                anyhow::ensure!(t0.elapsed() < Duration::from_secs(10), "no delivery");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let _ = stop.send(());
        served.await??;
        Ok::<_, anyhow::Error>((refused, hooked))
    })?;
    let pct = |v: &[Duration], p: f64| {
        let mut s = v.to_vec();
        s.sort();
        s.get(((s.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    outln!("honeytoken read -> response and alert, through the real server ({trials} trials):");
    for (what, v) in [
        ("key refused (disable-account)", &refused),
        ("alert at the webhook", &hooked),
    ] {
        outln!(
            "  {what:<32} p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
            pct(v, 0.5),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    drop(runtime);
    Ok(())
}
