//! `rxvault breach`: incidents, their scope from the audit log, the
//! safe-harbor check, and the notices (`rxvault-breach`).

use crate::VaultArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rxvault_breach::harbor::Taken;
use rxvault_breach::scope::{SESSION, Selectors};
use rxvault_breach::{Breach, Incident, dates};
use rxvault_vault::access::Requester;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum BreachCommand {
    /// Open an incident (sealed at rest, audited).
    New {
        #[command(flatten)]
        vault: VaultArgs,
        /// The day it was discovered (YYYY-MM-DD): the deadlines run from it.
        #[arg(long)]
        discovered: String,
        /// What happened (no PHI: it is printed in lists).
        #[arg(long)]
        summary: String,
        /// When the breach began, if known (YYYY-MM-DD).
        #[arg(long)]
        occurred_from: Option<String>,
        /// When it ended, if known (YYYY-MM-DD).
        #[arg(long)]
        occurred_to: Option<String>,
        /// Open it even if its window meets another open incident's.
        #[arg(long)]
        allow_overlap: bool,
    },
    /// Every incident.
    List {
        #[command(flatten)]
        vault: VaultArgs,
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// One incident in full (scope, assessment, history).
    Show(IncidentArgs),
    /// Deadlines, what is still open, overlapping incidents.
    Status(IncidentArgs),
    /// Compute the affected individuals from the audit log (and a leaked file).
    /// Each user, session, host and address selects what it did (within the
    /// window, if one is given); the scope is their union, with every export
    /// and leaked-file match added. A window alone selects everything in it.
    Scope(ScopeArgs),
    /// Record what was taken and whether keys were compromised; safe-harbor check.
    Assess {
        #[command(flatten)]
        incident: IncidentArgs,
        /// What was taken: data-dir, backup:LOCATION, export:ID, plaintext:WHAT (repeatable).
        #[arg(long)]
        taken: Vec<String>,
        /// Whether key material was compromised: yes or no.
        #[arg(long, value_parser = ["yes", "no"])]
        keys_compromised: String,
    },
    /// Complete a factor of the four-factor risk assessment.
    Risk {
        #[command(flatten)]
        incident: IncidentArgs,
        /// The factor (1 to 4).
        #[arg(long)]
        factor: usize,
        /// The privacy officer's answer.
        #[arg(long)]
        answer: String,
    },
    /// Sign the risk assessment off (every factor reviewed).
    SignOff(IncidentArgs),
    /// Write the notices: mailing file, unmailable list and substitute or
    /// alternative notice, per-state counts and press releases, HHS report,
    /// letters (PDF), scope. An audited export of plaintext PHI.
    Outputs {
        #[command(flatten)]
        incident: IncidentArgs,
        /// Output folder (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// The pharmacy's details and wording (TOML; see crates/breach/data/entity.example.toml).
        #[arg(long)]
        entity: PathBuf,
        /// A folder with your own letter-en.txt.j2 / letter-es.txt.j2 templates.
        #[arg(long)]
        templates: Option<PathBuf>,
        /// Also one PDF per letter (letters/LETTER-ID.pdf).
        #[arg(long)]
        one_per_person: bool,
        /// Required: the files hold names and addresses in the clear.
        #[arg(long, required = true)]
        plaintext: bool,
    },
    /// Benchmark: a stolen-credentials replay, then scope + outputs end to end
    /// (figures against the bare audit query in the same process).
    Bench(BenchArgs),
    /// Record a notice given (party as `breach status` names it).
    Notice {
        #[command(flatten)]
        incident: IncidentArgs,
        /// The party (`individuals`, `hhs`, `media:TX`, ...).
        #[arg(long)]
        party: String,
        /// The day it was given (YYYY-MM-DD).
        #[arg(long)]
        date: String,
    },
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Patients in the vault (Patient records only).
    #[arg(long, default_value_t = 137_110)]
    patients: u64,
    /// Of them, read by the stolen credentials (the affected).
    #[arg(long)]
    affected: Option<u64>,
    /// Where to work (default: a temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct IncidentArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The incident's ID (INC-...).
    #[arg(long)]
    incident: String,
    /// JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ScopeArgs {
    #[command(flatten)]
    incident: IncidentArgs,
    /// A compromised account (user id; repeatable).
    #[arg(long)]
    user: Vec<String>,
    /// A compromised session (repeatable).
    #[arg(long)]
    session: Vec<String>,
    /// A compromised host or agent (repeatable).
    #[arg(long)]
    host: Vec<String>,
    /// A source address (repeatable).
    #[arg(long)]
    ip: Vec<std::net::IpAddr>,
    /// From (RFC 3339 or YYYY-MM-DD, inclusive).
    #[arg(long)]
    from: Option<String>,
    /// Until (RFC 3339 or YYYY-MM-DD, exclusive).
    #[arg(long)]
    to: Option<String>,
    /// An rxvault export that was taken, by the export ID inside it (repeatable).
    #[arg(long)]
    export: Vec<String>,
    /// A leaked file of unknown origin (CSV with a header, or NDJSON).
    #[arg(long)]
    leaked_file: Option<PathBuf>,
}

/// The local operator, with the session breach response's own reads are
/// recorded under (so a later scope does not count them).
fn requester() -> Requester {
    Requester {
        session: Some(SESSION.into()),
        ..Requester::local()
    }
}

fn date(s: &str) -> Result<time::Date> {
    Ok(dates::parse(s)?)
}

pub fn run(cmd: BreachCommand) -> Result<ExitCode> {
    match cmd {
        BreachCommand::New {
            vault,
            discovered,
            summary,
            occurred_from,
            occurred_to,
            allow_overlap,
        } => {
            let discovered = date(&discovered)?;
            let occurred = (
                occurred_from.as_deref().map(date).transpose()?,
                occurred_to.as_deref().map(date).transpose()?,
            );
            let vault = crate::open(&vault)?;
            let breach = Breach::new(&vault, requester())?;
            let i = breach.open(discovered, &summary, occurred, allow_overlap)?;
            outln!("{}", i.id);
            print_status(&breach, &i)?;
        }
        BreachCommand::List { vault, json } => {
            let vault = crate::open(&vault)?;
            let breach = Breach::new(&vault, requester())?;
            for i in breach.list()? {
                if json {
                    outln!("{}", serde_json::to_string(&i)?);
                } else {
                    outln!(
                        "{}  discovered {}  {}  {}  {}",
                        i.id,
                        dates::format(i.discovered),
                        if i.closed { "closed" } else { "open" },
                        i.scope
                            .as_ref()
                            .map_or("not scoped".to_string(), |s| format!(
                                "{} affected",
                                s.affected.len()
                            )),
                        i.summary
                    );
                }
            }
        }
        BreachCommand::Show(a) => {
            let vault = crate::open(&a.vault)?;
            let breach = Breach::new(&vault, requester())?;
            let i = breach.show(&a.incident)?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                print_incident(&i);
                print_status(&breach, &i)?;
            }
        }
        BreachCommand::Status(a) => {
            let vault = crate::open(&a.vault)?;
            let breach = Breach::new(&vault, requester())?;
            let i = breach.show(&a.incident)?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&breach.status(&i)?)?);
            } else {
                print_status(&breach, &i)?;
            }
        }
        BreachCommand::Scope(a) => {
            let selectors = Selectors {
                users: a.user,
                sessions: a.session,
                hosts: a.host,
                ips: a.ip,
                from_ms: a
                    .from
                    .as_deref()
                    .map(crate::audit_cmd::parse_time)
                    .transpose()?,
                to_ms: a
                    .to
                    .as_deref()
                    .map(crate::audit_cmd::parse_time)
                    .transpose()?,
                exports: a.export,
            };
            if selectors.is_empty() && a.leaked_file.is_none() {
                return Err(crate::Usage(
                    "give at least one selector: --user, --session, --host, --ip, --export, \
                     --from/--to, or --leaked-file",
                )
                .into());
            }
            let vault = crate::open(&a.incident.vault)?;
            let breach = Breach::new(&vault, requester())?;
            let i = breach.scope(&a.incident.incident, &selectors, a.leaked_file.as_deref())?;
            let scope = i.scope.as_ref().context("the scope was stored")?;
            if a.incident.json {
                outln!("{}", serde_json::to_string_pretty(scope)?);
            } else {
                for p in &scope.affected {
                    outln!(
                        "{}  {}  ({})",
                        p.patient,
                        p.phi.iter().map(|t| t.name()).collect::<Vec<_>>().join(","),
                        p.sources.iter().cloned().collect::<Vec<_>>().join(",")
                    );
                }
                if let Some(l) = &scope.leaked {
                    outln!(
                        "leaked file: {} rows, {} matched, {} matched nobody{}",
                        l.rows,
                        l.matched.len(),
                        l.unmatched.len(),
                        if l.unmatched.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (rows {})",
                                l.unmatched
                                    .iter()
                                    .map(u64::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    );
                    for m in l.matched.iter().filter(|m| m.confidence != "exact") {
                        outln!(
                            "  row {}: {} ({} of {} keys, {} candidates)",
                            m.row,
                            m.confidence,
                            m.agreeing,
                            m.keys,
                            m.patients.len()
                        );
                    }
                }
                eprintln!(
                    "{} individuals affected ({} audit entries, log size {}): stored with {}",
                    scope.affected.len(),
                    scope.entries,
                    scope.audit_size,
                    i.id
                );
            }
        }
        BreachCommand::Assess {
            incident,
            taken,
            keys_compromised,
        } => {
            let taken = taken
                .iter()
                .map(|t| Taken::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            let vault = crate::open(&incident.vault)?;
            let breach = Breach::new(&vault, requester())?;
            let i = breach.assess(&incident.incident, taken, keys_compromised == "yes")?;
            let a = i.assessment.as_ref().context("the assessment was stored")?;
            if incident.json {
                outln!("{}", serde_json::to_string_pretty(a)?);
            } else {
                outln!("{}", a.conclusion);
                for e in &a.evidence {
                    outln!("  - {e}");
                }
            }
        }
        BreachCommand::Risk {
            incident,
            factor,
            answer,
        } => {
            let vault = crate::open(&incident.vault)?;
            let breach = Breach::new(&vault, requester())?;
            breach.edit_factor(&incident.incident, factor, &answer)?;
            outln!("factor {factor} of {} recorded", incident.incident);
        }
        BreachCommand::SignOff(a) => {
            let vault = crate::open(&a.vault)?;
            let breach = Breach::new(&vault, requester())?;
            breach.sign_off(&a.incident)?;
            outln!("risk assessment of {} signed off", a.incident);
        }
        BreachCommand::Outputs {
            incident,
            out,
            entity,
            templates,
            one_per_person,
            plaintext: _,
        } => {
            let text = std::fs::read_to_string(&entity)
                .with_context(|| format!("reading {}", entity.display()))?;
            let entity = rxvault_breach::letters::Entity::parse(&text)?;
            let templates = rxvault_breach::letters::Templates::load(templates.as_deref())?;
            let vault = crate::open(&incident.vault)?;
            let breach = Breach::new(&vault, requester())?;
            let r = breach.outputs(
                &incident.incident,
                &out,
                &entity,
                &templates,
                one_per_person,
                rxvault_breach::outputs::Plaintext,
            )?;
            if incident.json {
                outln!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for f in &r.files {
                    outln!("{}", out.join(f).display());
                }
                outln!(
                    "export {} (PLAINTEXT): {} letters to mail, {} unmailable; media: {}",
                    r.export_id,
                    r.mailable,
                    r.unmailable,
                    if r.media_states.is_empty() {
                        "none".to_string()
                    } else {
                        r.media_states.join(", ")
                    }
                );
            }
        }
        BreachCommand::Bench(a) => return bench(&a),
        BreachCommand::Notice {
            incident,
            party,
            date: day,
        } => {
            let day = date(&day)?;
            let vault = crate::open(&incident.vault)?;
            let breach = Breach::new(&vault, requester())?;
            let i = breach.show(&incident.incident)?;
            let status = breach.status(&i)?;
            if !status
                .obligations
                .iter()
                .any(|(o, _)| o.party.name() == party)
            {
                bail!(
                    "{party:?} is not one of this incident's parties ({})",
                    status
                        .obligations
                        .iter()
                        .map(|(o, _)| o.party.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            breach.record_notice(&incident.incident, &party, day)?;
            outln!("notice to {party} on {} recorded", dates::format(day));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_incident(i: &Incident) {
    outln!("incident {}: {}", i.id, i.summary);
    outln!(
        "discovered {}{}",
        dates::format(i.discovered),
        match (i.occurred_from, i.occurred_to) {
            (Some(a), Some(b)) =>
                format!(", occurred {} to {}", dates::format(a), dates::format(b)),
            (Some(a), None) => format!(", occurred from {}", dates::format(a)),
            _ => String::new(),
        }
    );
    if let Some(s) = &i.scope {
        outln!(
            "scope: {} individuals; PHI: {}",
            s.affected.len(),
            s.phi_union()
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(a) = &i.assessment {
        outln!("assessment: {}", a.conclusion);
        for f in &a.factors {
            outln!(
                "  {}\n    {}{}",
                f.question,
                f.answer,
                if f.reviewed { "" } else { " [not reviewed]" }
            );
        }
        if let Some(by) = &a.signed_off_by {
            outln!("  signed off by {by}");
        }
    }
    for c in &i.history {
        outln!("history: {} by {} at {}", c.operation, c.by, c.at_ms);
    }
}

fn print_status(breach: &Breach<'_>, i: &Incident) -> Result<()> {
    let s = breach.status(i)?;
    if s.not_reportable {
        outln!("not reportable (safe harbor): no notification owed");
    }
    for (o, done) in &s.obligations {
        outln!(
            "{:<24} due {:<10}  {}  {}",
            o.party.name(),
            o.due.map_or("-".to_string(), dates::format),
            match done {
                Some(d) => format!("done {d}"),
                None => "OPEN".into(),
            },
            o.rule
        );
    }
    for o in &s.overlaps {
        outln!(
            "overlaps {}: {}{} shared patients",
            o.incident,
            if o.window { "windows meet, " } else { "" },
            o.shared_patients
        );
    }
    Ok(())
}

/// `rxvault breach bench`: a vault of `patients` patients; ordinary use by
/// a clerk (a tenth of them read), then a stolen account reads `affected`
/// of them (every patient by default: the 137,110 of the incident this
/// answers). Timed: the bare indexed audit query of who that account saw
/// (the baseline), then `breach scope` (every entry opened, categories per
/// person, sealed and stored) and `breach outputs` (audited reads of names
/// and addresses, mailing file, reports, letters as PDF).
fn bench(a: &BenchArgs) -> Result<ExitCode> {
    use rxvault_model::{FieldCategory, RecordKind, SystemClock};
    use rxvault_vault::access::View;
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Instant;

    let tmp = tempfile::Builder::new()
        .prefix("rxvault-breach-bench")
        .tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let root = tmp.path();
    let n = a.patients.max(1);
    let affected = a.affected.unwrap_or(n).min(n);
    let config = rxvault_synth::Config {
        patients: n,
        seed: 17,
        as_of: time::macros::date!(2026 - 11 - 28),
    };
    let file = root.join("Patient.ndjson");
    let mut ids = Vec::with_capacity(n as usize);
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for i in 0..n {
            let p = rxvault_synth::patient_records(&config, i).patient;
            ids.push(p.id.clone());
            serde_json::to_writer(&mut w, &rxvault_fhir::map::patient_to_fhir(&p))?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    let clock = Arc::new(SystemClock);
    let data = root.join("vault");
    let key = root.join("bench.key");
    rxvault_vault::Vault::init(
        &data,
        rxvault_vault::StoreConfig::Sqlite,
        rxvault_vault::keys::InitKey::File(Some(key.clone())),
        clock.clone(),
    )?;
    let vault =
        rxvault_vault::Vault::open(&data, Some(rxvault_vault::KeySource::File(key)), clock)?;
    let start = Instant::now();
    vault.import_for(
        &Requester::local(),
        std::slice::from_ref(&file),
        &Default::default(),
        &mut (),
    )?;
    std::fs::remove_file(&file).ok();
    outln!(
        "vault            : {n} patients imported in {:.1} s (not timed below)",
        start.elapsed().as_secs_f64()
    );

    // Ordinary use, then the stolen session, through the audited reads.
    let read_as = |user: &str, which: &mut dyn Iterator<Item = &String>| -> Result<u64> {
        let who = Requester {
            actor: rxvault_audit::Actor::user(user),
            session: Some(format!("{user}-session")),
            ..Requester::local()
        };
        let view = View::ALL;
        let mut pending = Vec::new();
        let mut count = 0;
        for id in which {
            let rid = vault.rid(RecordKind::Patient, id);
            pending.push(vault.read_record_audited(&who, &view, RecordKind::Patient, &rid)?);
            count += 1;
            if pending.len() == 1000 {
                for p in pending.drain(..) {
                    p.wait()?;
                }
            }
        }
        for p in pending {
            p.wait()?;
        }
        Ok(count)
    };
    let start = Instant::now();
    read_as("clerk", &mut ids.iter().step_by(10))?;
    std::thread::sleep(std::time::Duration::from_millis(5));
    let from = rxvault_audit::unix_ms(vault.clock().now());
    let stolen = read_as("mallory", &mut ids.iter().take(affected as usize))?;
    std::thread::sleep(std::time::Duration::from_millis(5));
    let to = rxvault_audit::unix_ms(vault.clock().now());
    outln!(
        "replay           : {stolen} stolen reads (and {} ordinary) in {:.1} s (not timed below)",
        n.div_ceil(10),
        start.elapsed().as_secs_f64()
    );

    let who = requester();
    let query = rxvault_audit::Query {
        user: Some("mallory".into()),
        from_ms: Some(from),
        to_ms: Some(to),
        ..Default::default()
    };
    let start = Instant::now();
    let seen = vault.use_audit_log(
        &who,
        rxvault_vault::access::AuditLogUse::PatientsSeen,
        |r| r.patients_seen(&query),
    )?;
    let baseline = start.elapsed();

    let breach = Breach::new(&vault, who.clone())?;
    let incident = breach.open(
        time::macros::date!(2026 - 11 - 28),
        "bench",
        (None, None),
        true,
    )?;
    let selectors = Selectors {
        users: vec!["mallory".into()],
        from_ms: Some(from),
        to_ms: Some(to),
        ..Default::default()
    };
    let start = Instant::now();
    let scoped = breach.scope(&incident.id, &selectors, None)?;
    let scope_time = start.elapsed();
    let scope = scoped.scope.as_ref().context("stored")?;
    let truth: std::collections::BTreeSet<_> = ids
        .iter()
        .take(affected as usize)
        .map(|id| vault.rid(RecordKind::Patient, id))
        .collect();
    let got: std::collections::BTreeSet<_> = scope.affected.iter().map(|p| p.patient).collect();
    let hits = got.intersection(&truth).count() as f64;
    let exposed_all = scope.affected.iter().all(|p| {
        p.categories
            .get("Patient")
            .is_some_and(|c| c.contains(FieldCategory::Demographics.name()))
    });

    let entity = rxvault_breach::letters::Entity::parse(include_str!(
        "../crates/breach/data/entity.example.toml"
    ))?;
    let templates = rxvault_breach::letters::Templates::load(None)?;
    let out = root.join("notices");
    let start = Instant::now();
    let report = breach.outputs(
        &incident.id,
        &out,
        &entity,
        &templates,
        false,
        rxvault_breach::outputs::Plaintext,
    )?;
    let outputs_time = start.elapsed();
    let bytes: u64 = report
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(out.join(f)).ok())
        .map(|m| m.len())
        .sum();

    outln!(
        "baseline         : indexed audit query (patients seen, headers only): {} patients in {:.2} s",
        seen.len(),
        baseline.as_secs_f64()
    );
    outln!(
        "breach scope     : {} affected, {} entries opened, categories per person, sealed and stored: {:.2} s ({:.1}x the baseline)",
        scope.affected.len(),
        scope.entries,
        scope_time.as_secs_f64(),
        scope_time.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );
    outln!(
        "  precision {:.1}%, recall {:.1}% against the {} patients the account read; every one with demographics: {exposed_all}",
        100.0 * hits / (got.len().max(1) as f64),
        100.0 * hits / (truth.len().max(1) as f64),
        truth.len()
    );
    outln!(
        "breach outputs   : {} letters ({} unmailable), {} files, {:.1} MB (letters, mailing file, states, HHS report, scope): {:.2} s",
        report.counts.total,
        report.unmailable,
        report.files.len(),
        bytes as f64 / 1e6,
        outputs_time.as_secs_f64()
    );
    outln!(
        "end to end       : scope + outputs {:.2} s; peak RSS {} MiB",
        (scope_time + outputs_time).as_secs_f64(),
        crate::ui::peak_rss_kib().unwrap_or(0) / 1024
    );
    Ok(ExitCode::SUCCESS)
}
