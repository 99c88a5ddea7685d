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
