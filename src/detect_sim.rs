//! `rxvault detect simulate`: a deterministic pharmacy on a simulated clock,
//! driving the real vault (its audited entry points, its audit log) and the
//! real identity layer (sign-in failures), then the real detector over the
//! log it produced.
//!
//! Staff with roles and shifts do what prescriptions arriving cause:
//! technicians read the chart and fill, pharmacists verify, billing checks
//! the plan, shipping clerks read the day's packages, walk-ins are searched
//! for and then prescribed. Legitimate oddities: a pharmacist working late,
//! a new workstation, a technician covering another's queue, a monthly
//! plan reconciliation by a batch account, the odd unexplained look-up.
//! Attacks on top, each by its own principal or session (the ground truth).
//!
//! Reported: per attack, whether it was detected, the entries and the
//! distinct patients exposed between its first event and the first alert;
//! for the legitimate traffic alone (the same log without the attacks'
//! entries), alerts per 100 user-days and the share of patient accesses
//! explained; the detector's throughput on the log.

use anyhow::Result;
use clap::Args;
use rxvault_audit::LoggedEntry;
use rxvault_auth::{Role, permissions};
use rxvault_detect::{Engine, Finding, Rules};
use rxvault_model::{ManualClock, RecordKind, Rid};
use rxvault_vault::Vault;
use rxvault_vault::access::{Requester, View};
use rxvault_vault::query::Find;
use std::collections::HashSet;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Flags of `rxvault detect simulate`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Simulated days.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Patients in the vault.
    #[arg(long, default_value_t = 3000)]
    patients: u64,
    /// New prescriptions a working day.
    #[arg(long, default_value_t = 100)]
    prescriptions: u32,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const STAFF: &[(&str, Role)] = &[
    ("pharm-1", Role::Pharmacist),
    ("pharm-2", Role::Pharmacist),
    ("pharm-3", Role::Pharmacist),
    ("pharm-4", Role::Pharmacist),
    ("pharm-5", Role::Pharmacist),
    ("tech-1", Role::Technician),
    ("tech-2", Role::Technician),
    ("tech-3", Role::Technician),
    ("tech-4", Role::Technician),
    ("tech-5", Role::Technician),
    ("tech-6", Role::Technician),
    ("tech-7", Role::Technician),
    ("ship-1", Role::ShippingClerk),
    ("ship-2", Role::ShippingClerk),
    ("ship-3", Role::ShippingClerk),
    ("bill-1", Role::Billing),
    ("bill-2", Role::Billing),
    ("bill-3", Role::Billing),
    ("privacy", Role::PrivacyOfficer),
    ("admin", Role::Administrator),
];

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// An age recipient (the example key of age's documentation): where the
/// bulk-exporting attacker sends the data.
const ATTACKER_RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

/// A deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One attack's ground truth: whose entries, in which index range.
struct Attack {
    name: &'static str,
    actor: String,
    session: Option<String>,
    first: u64,
    last: u64,
    /// Only its reads are the attack's (a stolen service key whose owner
    /// goes on writing).
    reads_only: bool,
}

struct Sim {
    vault: Arc<Vault>,
    /// Patients with a fill written in the simulation.
    filled: HashSet<u64>,
    /// The first entry of the low-and-slow reader.
    slow: Option<u64>,
    /// Patients with a prescription and a fill to copy (who get new ones).
    active: Vec<u64>,
    /// The honeytokens' synthetic config (the simulation knows them; a
    /// real pharmacy's are made from a seed no one keeps).
    honey: rxvault_synth::Config,
    clock: Arc<ManualClock>,
    config: rxvault_synth::Config,
    ids: Vec<String>,
    rng: Rng,
    serial: u64,
    attacks: Vec<Attack>,
}

fn ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Sim {
    fn at(&self, t: i64) {
        self.clock.set(
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1_000_000)
                .expect("a time"),
        );
    }

    fn staff(&self, name: &str, day: u32, host: Option<&str>) -> Requester {
        let n = STAFF.iter().position(|(s, _)| *s == name).unwrap_or(99) as u8;
        Requester {
            actor: rxvault_audit::Actor::user(name),
            session: Some(format!("{name}-d{day}")),
            source: Some(IpAddr::from([10, 0, 0, 10 + n])),
            host: Some(host.map_or_else(|| format!("ws-{n}"), str::to_string)),
            break_glass: None,
        }
    }

    fn view(role: Role) -> View {
        View::from_fn(|k| permissions::categories(role, k))
    }

    fn role(name: &str) -> Role {
        STAFF
            .iter()
            .find(|(s, _)| *s == name)
            .map_or(Role::Billing, |(_, r)| *r)
    }

    fn read(&self, who: &Requester, patient: u64) -> Result<()> {
        let role = Self::role(&who.actor.id);
        self.vault
            .read_chart(who, &Self::view(role), &self.ids[patient as usize])?;
        Ok(())
    }

    /// A new record of `kind` for `patient`, cloned from its synthetic ones.
    fn write(&mut self, who: &Requester, patient: u64, kind: RecordKind) -> Result<()> {
        let records = rxvault_synth::patient_records(&self.config, patient).resources();
        let source = match kind {
            RecordKind::Prescription => records.prescriptions.first(),
            _ => records.fills.first(),
        };
        let Some(mut resource) = source.cloned() else {
            return Ok(());
        };
        self.serial += 1;
        resource.insert("id".into(), format!("sim-{}", self.serial).into());
        self.vault
            .create_record(who, &View::ALL, kind, resource)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    fn mark(&self) -> u64 {
        self.vault.audit().map(|a| a.committed_end()).unwrap_or(0)
    }
}

pub fn run(a: &SimArgs) -> Result<ExitCode> {
    let tmp = tempfile::Builder::new().prefix("rxvault-sim").tempdir()?;
    let start = ms(time::macros::datetime!(2026-11-02 00:00 UTC)); // a Monday
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::from_unix_timestamp(
        start / 1000 - 60 * 86_400,
    )?));
    let dir = tmp.path().join("data");
    let key = tmp.path().join("vault.key");
    Vault::init(
        &dir,
        rxvault_vault::StoreConfig::Sqlite,
        rxvault_vault::keys::InitKey::File(Some(key.clone())),
        clock.clone(),
    )?;
    let vault = Vault::open(
        &dir,
        Some(rxvault_vault::KeySource::File(key)),
        clock.clone(),
    )?;
    let config = rxvault_synth::Config {
        patients: a.patients,
        seed: a.seed,
        as_of: time::Date::from_calendar_date(2026, time::Month::November, 1)?,
    };
    let input = tmp.path().join("synth");
    rxvault_synth::write_ndjson(&config, &input, &mut |_| {})?;
    // The vault's history starts 60 days before the simulation: nothing of
    // it explains a read now.
    vault.import_for(
        &Requester::local(),
        &[input],
        &rxvault_vault::import::ImportOptions::default(),
        &mut (),
    )?;
    let honey_config = rxvault_synth::Config {
        patients: 5,
        seed: a.seed ^ 0x5eed_d3c0,
        as_of: config.as_of,
    };
    let honey = crate::detect_cmd::add_honeytokens_from(&vault, &honey_config)?;
    let ids: Vec<String> = (0..a.patients)
        .map(|i| rxvault_synth::patient(&config, i).id)
        .collect();
    let active: Vec<u64> = (0..a.patients)
        .filter(|&i| {
            let r = rxvault_synth::patient_records(&config, i);
            !r.prescriptions.is_empty() && !r.fills.is_empty()
        })
        .collect();
    let mut sim = Sim {
        vault: Arc::new(vault),
        filled: HashSet::new(),
        slow: None,
        active,
        honey: honey_config,
        clock,
        config,
        ids,
        rng: Rng(a.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        serial: 0,
        attacks: Vec::new(),
    };
    eprintln!(
        "simulating {} days of {} staff on {} patients ({honey} honeytokens) ...",
        a.days,
        STAFF.len(),
        a.patients
    );
    let t = Instant::now();
    let first_entry = sim.mark();
    for day in 0..a.days {
        simulate_day(&mut sim, a, day, start + i64::from(day) * DAY)?;
    }
    let simulated = t.elapsed();
    let end = sim.mark();
    if let Some(first) = sim.slow {
        sim.attacks.push(Attack {
            name: "low-and-slow: 200 a day (a billing account)",
            actor: "bill-temp".into(),
            session: None,
            first,
            last: end,
            reads_only: false,
        });
    }
    let log = read_log(&sim.vault, first_entry, end)?;
    eprintln!(
        "{} audit entries in {simulated:.1?}; detecting ...",
        log.len()
    );

    // Everything, as it happened.
    let honeytokens = {
        let store = sim.vault.detect_store()?;
        rxvault_detect::honeytokens::load(store.as_ref(), sim.vault.secrets())?
    };
    let rules = sim_rules();
    let t = Instant::now();
    let (findings, _) = detect(&rules, &honeytokens, &log);
    let took = t.elapsed();
    outln!(
        "detect simulate: {} days, {} staff, {} patients, seed {}; {} audit entries",
        a.days,
        STAFF.len(),
        a.patients,
        a.seed,
        log.len()
    );
    outln!(
        "engine over the log: {:.0} entries/s ({} findings)",
        log.len() as f64 / took.as_secs_f64().max(1e-9),
        findings.len()
    );
    outln!(
        "\nattack                                    detected  entries  patients exposed before the alert  first rule"
    );
    let mut attack_entries: HashSet<u64> = HashSet::new();
    for at in &sim.attacks {
        // An attack without an actor (spraying) is every entry in its range.
        let theirs = |e: &LoggedEntry| {
            e.index >= at.first
                && e.index <= at.last
                && (at.actor.is_empty() || e.entry.actor.id == at.actor)
                && (at.session.is_none() || e.entry.session == at.session)
                && (!at.reads_only || matches!(e.entry.action, rxvault_audit::Action::Read { .. }))
        };
        for e in log.iter().filter(|e| theirs(e)) {
            attack_entries.insert(e.index);
        }
        let alert = findings.iter().find(|f| {
            f.index >= at.first
                && (if at.actor.is_empty() {
                    f.index <= at.last
                } else {
                    f.principal.as_ref().is_some_and(|p| p.id == at.actor)
                        && (at.session.is_none() || f.session.is_none() || f.session == at.session)
                })
        });
        let (entries, exposed) = match alert {
            Some(f) => exposure(&log, &theirs, f.index),
            None => exposure(&log, &theirs, at.last),
        };
        outln!(
            "{:<42} {:<9} {:>7}  {:>33}  {}",
            at.name,
            if alert.is_some() { "yes" } else { "NO" },
            entries,
            exposed,
            alert.map(|f| f.rule.as_str()).unwrap_or("-")
        );
    }
    // The legitimate traffic alone.
    let legit: Vec<LoggedEntry> = log
        .iter()
        .filter(|e| !attack_entries.contains(&e.index))
        .cloned()
        .collect();
    let (fp, legit_stats) = detect(&rules, &honeytokens, &legit);
    let user_days = STAFF.len() as f64 * f64::from(a.days);
    outln!(
        "\nlegitimate traffic: {} entries, {} alerts ({:.2} per 100 user-days); {} patient accesses, {:.1}% explained",
        legit.len(),
        fp.len(),
        100.0 * fp.len() as f64 / user_days,
        legit_stats.accesses,
        100.0 * legit_stats.explained as f64 / legit_stats.accesses.max(1) as f64
    );
    for f in &fp {
        outln!(
            "  false positive: {} {} {}",
            f.rule,
            f.principal
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            f.detail
        );
    }
    drop(tmp);
    Ok(ExitCode::SUCCESS)
}

/// The rules the simulated pharmacy runs: the defaults, and the monthly
/// reconciliation's batch account allowed its volume.
fn sim_rules() -> Rules {
    let mut r = Rules::default();
    for v in [&mut r.volume_hour, &mut r.volume_day, &mut r.volume_week] {
        v.floors.insert("service:billing-recon".into(), 10_000);
    }
    r
}

fn detect(
    rules: &Rules,
    honey: &HashSet<Rid>,
    log: &[LoggedEntry],
) -> (Vec<Finding>, rxvault_detect::engine::Stats) {
    let mut engine = Engine::new(
        rules.clone(),
        jiff::tz::TimeZone::UTC,
        honey.clone(),
        Default::default(),
    )
    .expect("the rules are valid");
    let mut out = Vec::new();
    for e in log {
        engine.process(e, &mut out);
    }
    if let Some(last) = log.last() {
        engine.tick(last.time_ms + DAY, &mut out);
    }
    // The honeytokens' own making (the import) is no finding.
    out.retain(|f| f.principal.as_ref().is_some_and(|p| p.kind != "local"));
    (out, engine.state().stats.clone())
}

/// Entries and distinct patients of an attack up to index `until`.
fn exposure(
    log: &[LoggedEntry],
    theirs: &dyn Fn(&LoggedEntry) -> bool,
    until: u64,
) -> (u64, usize) {
    let mut patients = HashSet::new();
    let mut n = 0;
    for e in log.iter().filter(|e| theirs(e) && e.index <= until) {
        n += 1;
        patients.extend(e.entry.patients.iter().copied());
    }
    (n, patients.len())
}

fn read_log(vault: &Vault, from: u64, end: u64) -> Result<Vec<LoggedEntry>> {
    let mut sub = vault
        .audit()?
        .follow(from, rxvault_audit::StreamOptions::default())?;
    let mut out = Vec::new();
    while out.len() < (end - from) as usize {
        let batch = sub.recv_batch(4096, Duration::from_secs(1))?;
        if batch.is_empty() {
            break;
        }
        out.extend(batch);
    }
    Ok(out)
}

fn simulate_day(sim: &mut Sim, a: &SimArgs, day: u32, midnight: i64) -> Result<()> {
    let weekday = day % 7; // 0: Monday
    let n = sim.ids.len() as u64;
    if weekday == 6 {
        return Ok(()); // closed on Sunday
    }
    let (open, close) = if weekday == 5 { (9, 17) } else { (8, 20) };
    let intake = Requester {
        actor: rxvault_audit::Actor::service("erx-intake"),
        session: None,
        source: Some(IpAddr::from([10, 0, 1, 2])),
        host: None,
        break_glass: None,
    };
    // Prescriptions arrive through the day; each is filled, verified and
    // billed by staff on shift.
    let techs: Vec<&str> = STAFF
        .iter()
        .filter(|(_, r)| *r == Role::Technician)
        .map(|(s, _)| *s)
        .collect();
    let pharms: Vec<&str> = STAFF
        .iter()
        .filter(|(_, r)| *r == Role::Pharmacist)
        .map(|(s, _)| *s)
        .collect();
    let bills: Vec<&str> = STAFF
        .iter()
        .filter(|(_, r)| *r == Role::Billing)
        .map(|(s, _)| *s)
        .collect();
    let mut events: Vec<(i64, u8, u64, &str)> = Vec::new();
    let span = (close - open) * HOUR - 3 * HOUR;
    let active = sim.active.len() as u64;
    for _ in 0..a.prescriptions {
        let p = sim.active[sim.rng.below(active) as usize];
        let t = midnight + open * HOUR + sim.rng.below(span as u64) as i64;
        // Day 12: tech-1 covers tech-2's queue.
        let mut tech = techs[sim.rng.below(techs.len() as u64) as usize];
        if day == 12 && tech == "tech-2" {
            tech = "tech-1";
        }
        events.push((t, 0, p, "erx-intake"));
        events.push((t + sim.rng.below(60) as i64 * MIN, 1, p, tech));
        let pharm = pharms[sim.rng.below(pharms.len() as u64) as usize];
        events.push((t + (60 + sim.rng.below(60) as i64) * MIN, 2, p, pharm));
        let bill = bills[sim.rng.below(bills.len() as u64) as usize];
        events.push((t + (90 + sim.rng.below(90) as i64) * MIN, 3, p, bill));
    }
    // Walk-ins: searched for at the counter, then prescribed.
    for _ in 0..6 {
        let p = sim.active[sim.rng.below(active) as usize];
        let t = midnight + open * HOUR + sim.rng.below(span as u64) as i64;
        let pharm = pharms[sim.rng.below(pharms.len() as u64) as usize];
        events.push((t, 4, p, pharm));
        events.push((t + 10 * MIN, 0, p, "erx-intake"));
    }
    // The odd look-up nothing explains (a question about an old refill).
    if day.is_multiple_of(3) {
        let p = sim.rng.below(n);
        let pharm = pharms[sim.rng.below(pharms.len() as u64) as usize];
        events.push((midnight + 11 * HOUR, 2, p, pharm));
    }
    // A pharmacist working late once a week (on a known workstation).
    if weekday == 2 {
        for _ in 0..5 {
            let p = sim.active[sim.rng.below(active) as usize];
            events.push((
                midnight + 20 * HOUR + sim.rng.below(60) as i64 * MIN,
                0,
                p,
                "erx-intake",
            ));
            events.push((
                midnight + 22 * HOUR + sim.rng.below(30) as i64 * MIN,
                2,
                p,
                "pharm-3",
            ));
        }
    }
    // Low-and-slow: 200 patients a day from a (temporary) billing account,
    // 09:00 to 17:00, among the day's work.
    for i in 0..200 {
        let p = sim.rng.below(n);
        events.push((midnight + 9 * HOUR + i * 144_000, 5, p, "bill-temp"));
    }
    events.sort_by_key(|e| (e.0, e.1));
    let mut filled_today = 0;
    let mut attack_at = attack_start(day).map(|h| midnight + h);
    for (t, what, p, who) in events {
        if attack_at.is_some_and(|a| t >= a) {
            attack_at = None;
            attacks(sim, day, midnight)?;
        }
        sim.at(t);
        // Day 10: tech-4 moves to a new workstation.
        let host = (who == "tech-4" && day >= 10).then_some("ws-new");
        let req = sim.staff(who, day, host);
        match what {
            0 => sim.write(&intake, p, RecordKind::Prescription)?,
            1 => {
                sim.read(&req, p)?;
                sim.write(&req, p, RecordKind::Fill)?;
                sim.filled.insert(p);
                filled_today += 1;
            }
            2 | 3 => sim.read(&req, p)?,
            5 => {
                if sim.slow.is_none() {
                    sim.slow = Some(sim.mark());
                }
                sim.read(&req, p)?;
            }
            _ => {
                let pr = rxvault_synth::patient(&sim.config, p);
                if let (Some(family), Some(birth)) = (
                    pr.primary_name().and_then(|n| n.family.clone()),
                    pr.birth_date.clone(),
                ) {
                    sim.vault.search_patients(
                        &req,
                        &Sim::view(Role::Pharmacist),
                        &Find::FamilyBirthDate {
                            family,
                            birth_date: birth,
                        },
                    )?;
                }
            }
        }
    }
    // The day's packages, read by a shipping clerk at 16:00.
    if filled_today > 0 {
        sim.at(midnight + 16 * HOUR);
        let clerk = sim.staff("ship-1", day, None);
        let date = sim.vault.today().to_string();
        sim.vault.shipments_for(&clerk, &date)?;
    }
    // The monthly plan reconciliation: a batch account reads the plans of
    // everyone with a fill this month.
    if day == 20 {
        let batch = Requester {
            actor: rxvault_audit::Actor::service("billing-recon"),
            session: None,
            source: Some(IpAddr::from([10, 0, 1, 3])),
            host: None,
            break_glass: None,
        };
        let view = Sim::view(Role::Billing);
        let mut filled: Vec<u64> = sim.filled.iter().copied().collect();
        filled.sort_unstable();
        for (k, p) in filled.into_iter().enumerate() {
            sim.at(midnight + 21 * HOUR + k as i64 * 200);
            sim.vault.read_chart(&batch, &view, &sim.ids[p as usize])?;
        }
    }
    if attack_at.is_some() {
        attacks(sim, day, midnight)?;
    }
    Ok(())
}

/// When a day's attack starts (after midnight), if it has one.
fn attack_start(day: u32) -> Option<i64> {
    Some(match day {
        4 => 2 * HOUR,
        7 => 14 * HOUR,
        10 => 10 * HOUR,
        14 => 13 * HOUR,
        17 => 15 * HOUR,
        21 => 11 * HOUR,
        24 => 3 * HOUR,
        _ => return None,
    })
}

fn attacks(sim: &mut Sim, day: u32, midnight: i64) -> Result<()> {
    let n = sim.ids.len() as u64;
    let start = sim.mark();
    let record =
        |sim: &mut Sim, name: &'static str, actor: &str, session: Option<String>, first: u64| {
            let last = sim.mark().saturating_sub(1);
            sim.attacks.push(Attack {
                name,
                actor: actor.into(),
                session,
                first,
                last,
                reads_only: actor == "erx-intake",
            });
        };
    match day {
        // Stolen credentials used from a new device at night.
        4 => {
            let mut who = sim.staff("pharm-1", 1000 + day, Some("unknown-laptop"));
            who.source = Some("203.0.113.5".parse()?);
            for i in 0..300 {
                sim.at(midnight + 2 * HOUR + i * 2000);
                let p = sim.rng.below(n);
                sim.read(&who, p)?;
            }
            record(
                sim,
                "stolen credentials, new device, at night",
                "pharm-1",
                who.session.clone(),
                start,
            );
        }
        // Bulk export through the API (a stolen technician session).
        7 => {
            let who = sim.staff("tech-2", 1000 + day, None);
            sim.at(midnight + 14 * HOUR);
            let out = tempfile::tempdir()?;
            let target =
                rxvault_vault::export::Target::Age(rxvault_crypto::export::Recipients::parse(&[
                    ATTACKER_RECIPIENT,
                ])?);
            sim.vault.export_fhir_for(
                &who,
                &out.path().join("x"),
                &target,
                &mut rxvault_vault::keys::Quiet,
            )?;
            record(
                sim,
                "bulk export (encrypted to the attacker)",
                "tech-2",
                who.session.clone(),
                start,
            );
        }
        // Scraping through searches and single reads, in working hours.
        10 => {
            let who = sim.staff("tech-3", 1000 + day, None);
            for i in 0..2000 {
                sim.at(midnight + 10 * HOUR + i * 100);
                let p = sim.rng.below(n);
                if i % 2 == 0 {
                    sim.read(&who, p)?;
                } else if let Some(phone) = rxvault_synth::patient(&sim.config, p).phones().next() {
                    sim.vault.search_patients(
                        &who,
                        &Sim::view(Role::Technician),
                        &Find::Phone(phone.to_string()),
                    )?;
                }
            }
            record(
                sim,
                "scrape: searches and single reads",
                "tech-3",
                who.session.clone(),
                start,
            );
        }
        // A service account's key used to scrape.
        14 => {
            let who = Requester {
                actor: rxvault_audit::Actor::service("erx-intake"),
                session: None,
                source: Some(IpAddr::from([10, 0, 1, 2])),
                host: None,
                break_glass: None,
            };
            for i in 0..1000 {
                sim.at(midnight + 13 * HOUR + i * 300);
                let p = sim.rng.below(n);
                sim.vault
                    .read_chart(&who, &View::ALL, &sim.ids[p as usize])?;
            }
            record(
                sim,
                "service account key used to scrape",
                "erx-intake",
                None,
                start,
            );
        }
        // Snooping on a neighbour: a few unexplained reads.
        17 => {
            // Neighbours: patients with nothing going on (not being filled).
            let who = sim.staff("pharm-4", day, None);
            let (mut done, mut read) = (0, HashSet::new());
            while done < 6 {
                let p = sim.rng.below(n);
                if sim.filled.contains(&p) || sim.active.contains(&p) || !read.insert(p) {
                    continue;
                }
                sim.at(midnight + 15 * HOUR + done * 5 * MIN);
                sim.read(&who, p)?;
                done += 1;
            }
            record(
                sim,
                "snooping: six unexplained reads",
                "pharm-4",
                who.session.clone(),
                start,
            );
        }
        // A honeytoken touched during an otherwise normal search: the
        // attacker searches by phone for patients, one a decoy.
        21 => {
            let who = sim.staff("tech-5", 1000 + day, None);
            // Three ordinary look-ups, then one that finds a decoy.
            let view = Sim::view(Role::Technician);
            let decoy = rxvault_synth::patient(&sim.honey, 2);
            let mut people: Vec<rxvault_model::Patient> = (0..3)
                .map(|_| rxvault_synth::patient(&sim.config, sim.rng.below(n)))
                .collect();
            people.push(decoy);
            for (i, pr) in people.into_iter().enumerate() {
                sim.at(midnight + 11 * HOUR + i as i64 * MIN);
                if let (Some(family), Some(birth)) = (
                    pr.primary_name().and_then(|n| n.family.clone()),
                    pr.birth_date.clone(),
                ) {
                    sim.vault.search_patients(
                        &who,
                        &view,
                        &Find::FamilyBirthDate {
                            family,
                            birth_date: birth,
                        },
                    )?;
                }
            }
            record(
                sim,
                "honeytoken touched in a search",
                "tech-5",
                who.session.clone(),
                start,
            );
        }
        // Password spraying: one guess for each staff name, one address.
        24 => {
            let auth = rxvault_auth::Auth::new(
                sim.vault.clone(),
                sim.vault.auth_store()?,
                sim.vault.clone(),
                sim.clock.clone(),
                rxvault_auth::AuthConfig::default(),
            )?;
            let client = rxvault_auth::Client {
                source: "198.51.100.9".parse()?,
                host: None,
                user_agent: Some("spray/1.0".into()),
            };
            for (i, (name, _)) in STAFF.iter().enumerate() {
                sim.at(midnight + 3 * HOUR + i as i64 * 20_000);
                let _ = auth.login_password(
                    name,
                    &rxvault_crypto::password::Password::new("Winter2026!".into()),
                    &client,
                );
            }
            record(sim, "password spraying from one address", "", None, start);
        }
        _ => {}
    }
    Ok(())
}
