//! The notices of a scoped incident, written as one audited export: the
//! mailing file for a print-and-mail vendor (and the unmailable addresses
//! apart, with the substitute or alternative notice they call for),
//! per-state counts with the media list and draft press releases, the HHS
//! OCR report, the letters (PDF), and the scope itself.
//!
//! Names, addresses, deceased flags and preferred languages come through
//! the vault's audited record reads (`read_record_audited`, the patient's
//! demographics and contact only, under breach response's session). The
//! export is recorded (`ExportStarted`, format `breach-outputs`, every
//! patient named) before the folder is created, and finished or failed
//! after; a failure removes what was written. The files hold PHI in the
//! clear: the caller must say so ([`Plaintext`]).

use crate::incident::Breach;
use crate::letters::{Entity, Language, LetterDates, LetterFacts, Templates};
use crate::rules::Counts;
use crate::scope::PhiType;
use crate::{Error, Result, dates, io_err};
use rxvault_audit::{Action, ExportFormat, ExportProtection, KindCategories, Outcome};
use rxvault_model::{CategorySet, FieldCategory, RecordKind, Rid};
use rxvault_vault::access::View;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Letters per batch PDF.
pub const LETTERS_PER_FILE: usize = 5000;

/// The caller's acknowledgement that the outputs hold PHI in the clear.
#[derive(Debug, Clone, Copy)]
pub struct Plaintext;

/// What [`Breach::outputs`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct OutputReport {
    /// The export ID (in `manifest.json`).
    pub export_id: String,
    /// Letters (people) in the mailing file.
    pub mailable: u64,
    /// People without a mailable address.
    pub unmailable: u64,
    /// The counts the rules used.
    pub counts: Counts,
    /// States whose media must be notified.
    pub media_states: Vec<String>,
    /// Files written (relative to the folder).
    pub files: Vec<String>,
}

/// A normalised US mailing address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailing {
    /// Street lines (one or two).
    pub lines: Vec<String>,
    /// City.
    pub city: String,
    /// Two-letter state.
    pub state: String,
    /// ZIP or ZIP+4 (`12345-6789`).
    pub zip: String,
}

const STATES: [&str; 56] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
];

const ABBREVIATIONS: [(&str, &str); 20] = [
    ("STREET", "ST"),
    ("AVENUE", "AVE"),
    ("ROAD", "RD"),
    ("DRIVE", "DR"),
    ("LANE", "LN"),
    ("BOULEVARD", "BLVD"),
    ("COURT", "CT"),
    ("PLACE", "PL"),
    ("CIRCLE", "CIR"),
    ("PARKWAY", "PKWY"),
    ("HIGHWAY", "HWY"),
    ("TERRACE", "TER"),
    ("APARTMENT", "APT"),
    ("SUITE", "STE"),
    ("NORTH", "N"),
    ("SOUTH", "S"),
    ("EAST", "E"),
    ("WEST", "W"),
    ("BUILDING", "BLDG"),
    ("FLOOR", "FL"),
];

fn normalize_line(line: &str) -> String {
    let cleaned: String = line
        .to_uppercase()
        .chars()
        .map(|c| if c == '.' || c == ',' { ' ' } else { c })
        .collect();
    cleaned
        .split_whitespace()
        .map(|w| {
            ABBREVIATIONS
                .iter()
                .find(|(long, _)| *long == w)
                .map_or(w.to_string(), |(_, short)| short.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A patient's address as a vendor mails it, or why it cannot be mailed.
pub fn normalize_address(addresses: &[rxvault_model::Address]) -> Result<Mailing, String> {
    let Some(a) = addresses.iter().find(|a| a.use_.as_deref() != Some("old")) else {
        return Err(if addresses.is_empty() {
            "no address".into()
        } else {
            "only old addresses".into()
        });
    };
    if let Some(c) = a
        .country
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let c = c.to_ascii_uppercase();
        if !["US", "USA", "UNITED STATES", "UNITED STATES OF AMERICA"].contains(&c.as_str()) {
            return Err("outside the United States".into());
        }
    }
    let lines: Vec<String> = a
        .lines
        .iter()
        .map(|l| normalize_line(l))
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err("no street line".into());
    }
    if lines.len() > 2 {
        return Err("more than two street lines".into());
    }
    let city = a
        .city
        .as_deref()
        .map(normalize_line)
        .filter(|c| !c.is_empty())
        .ok_or("no city")?;
    let state = a
        .state
        .as_deref()
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| STATES.contains(&s.as_str()))
        .ok_or("no US state")?;
    let digits: String = a
        .postal_code
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let zip = match digits.len() {
        5 => digits,
        9 => format!("{}-{}", &digits[..5], &digits[5..]),
        _ => return Err("no valid ZIP code".into()),
    };
    Ok(Mailing {
        lines,
        city,
        state,
        zip,
    })
}

struct Person {
    letter_id: String,
    rid: Rid,
    name: String,
    deceased: bool,
    language: Language,
    state: String,
    mailing: Result<Mailing, String>,
    phi: Vec<PhiType>,
}

impl Breach<'_> {
    /// Writes the notices of incident `id` into `out` (a folder that must
    /// not exist or be empty). Refused for an incident assessed not
    /// reportable, or not scoped. `one_per_person` adds a PDF per letter
    /// (`letters/LETTER-ID.pdf`) to the batch files.
    pub fn outputs(
        &self,
        id: &str,
        out: &Path,
        entity: &Entity,
        templates: &Templates,
        one_per_person: bool,
        _plaintext: Plaintext,
    ) -> Result<OutputReport> {
        let incident = self.show(id)?;
        if incident.assessment.as_ref().is_some_and(|a| !a.reportable) {
            return Err(Error::Invalid(format!(
                "{id} is assessed not reportable (safe harbor): no notification is generated"
            )));
        }
        let scope = incident.scope.clone().ok_or_else(|| {
            Error::Invalid(format!("{id} is not scoped yet (`rxvault breach scope`)"))
        })?;
        if scope.affected.is_empty() {
            return Err(Error::Invalid(format!(
                "{id}'s scope names no one: no notices"
            )));
        }
        check_dir(out)?;
        let people = self.people(&incident.id, &scope)?;

        let rules = self.rules();
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for p in &people {
            *by_state.entry(p.state.clone()).or_default() += 1;
        }
        let unmailable = people.iter().filter(|p| p.mailing.is_err()).count() as u64;
        let counts = Counts {
            total: people.len() as u64,
            by_state,
            unmailable,
        };
        let obligations = rules.obligations(incident.discovered, Some(&counts));
        let media_states: Vec<String> = counts
            .by_state
            .iter()
            .filter(|(s, n)| **n >= rules.federal.media_min_residents && s.as_str() != "??")
            .map(|(s, _)| s.clone())
            .collect();

        // Recorded before the first byte.
        let export_id = rxvault_crypto::random_id()?;
        let mut categories = KindCategories::new();
        categories.add(
            RecordKind::Patient,
            CategorySet::of(&[FieldCategory::Demographics, FieldCategory::Contact]),
        );
        self.vault().record(
            self.requester()
                .entry(Action::ExportStarted {
                    export_id: export_id.clone(),
                    format: ExportFormat::BreachOutputs,
                    destination: std::path::absolute(out)
                        .unwrap_or_else(|_| out.to_path_buf())
                        .display()
                        .to_string(),
                    protection: ExportProtection::Plaintext,
                    categories,
                    records: people.len() as u64,
                })
                .patients(people.iter().map(|p| p.rid)),
        )?;
        let written = (|| -> Result<Vec<String>> {
            let mut files = Vec::new();
            std::fs::create_dir_all(out).map_err(io_err(out))?;
            let dates = LetterDates {
                today: dates::format(self.vault().today()),
                breach: match (incident.occurred_from, incident.occurred_to) {
                    (Some(a), Some(b)) if a != b => {
                        Some(format!("{} – {}", dates::format(a), dates::format(b)))
                    }
                    (Some(a), _) => Some(dates::format(a)),
                    _ => None,
                },
                discovered: dates::format(incident.discovered),
            };
            write_mailing(out, &people, &mut files)?;
            write_unmailable(out, &people, entity, rules, &mut files)?;
            write_states(
                out,
                &counts,
                &media_states,
                &obligations,
                entity,
                &incident,
                &mut files,
            )?;
            write_hhs(
                out,
                &incident,
                &counts,
                &media_states,
                &scope,
                entity,
                rules,
                &mut files,
            )?;
            write_scope(out, &scope, &mut files)?;
            // Letters go into batch files of LETTERS_PER_FILE per language
            // (`letters-en-0001.pdf`, ...), so memory stays bounded.
            let mut batches: BTreeMap<Language, (usize, Vec<String>)> = BTreeMap::new();
            if one_per_person {
                std::fs::create_dir_all(out.join("letters")).map_err(io_err(out))?;
            }
            for p in &people {
                let facts = LetterFacts {
                    letter_id: p.letter_id.clone(),
                    name: p.name.clone(),
                    deceased: p.deceased,
                    address: match &p.mailing {
                        Ok(m) => {
                            let mut v = vec![mailing_name(p)];
                            v.extend(m.lines.iter().cloned());
                            v.push(format!("{} {} {}", m.city, m.state, m.zip));
                            v
                        }
                        Err(_) => Vec::new(),
                    },
                    phi: p.phi.clone(),
                    language: p.language,
                };
                let text = templates.render(&facts, entity, &dates)?;
                if one_per_person {
                    let name = format!("letters/{}.pdf", p.letter_id);
                    write_file(
                        out,
                        &name,
                        &crate::letters::pdf(std::slice::from_ref(&text))?,
                        &mut files,
                    )?;
                }
                let (n, texts) = batches.entry(p.language).or_default();
                texts.push(text);
                if texts.len() == LETTERS_PER_FILE {
                    *n += 1;
                    let name = format!("letters-{}-{n:04}.pdf", p.language.code());
                    write_file(out, &name, &crate::letters::pdf(texts)?, &mut files)?;
                    texts.clear();
                }
            }
            for (lang, (n, texts)) in &mut batches {
                if !texts.is_empty() {
                    *n += 1;
                    let name = format!("letters-{}-{n:04}.pdf", lang.code());
                    write_file(out, &name, &crate::letters::pdf(texts)?, &mut files)?;
                }
            }
            let manifest = serde_json::json!({
                "export_id": export_id,
                "incident": incident.id,
                "format": "breach-outputs",
                "files": files,
                "individuals": counts.total,
            });
            write_file(
                out,
                "manifest.json",
                serde_json::to_string_pretty(&manifest)
                    .expect("JSON")
                    .as_bytes(),
                &mut files,
            )?;
            Ok(files)
        })();
        let files = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(out);
                let _ = self.vault().record(
                    self.requester()
                        .entry(Action::ExportFailed {
                            export_id: export_id.clone(),
                            reason: e.to_string(),
                        })
                        .outcome(Outcome::Error),
                );
                return Err(e);
            }
        };
        if let Err(e) = self
            .vault()
            .record(self.requester().entry(Action::ExportFinished {
                export_id: export_id.clone(),
                records: people.len() as u64,
                patients: people.len() as u64,
                files: files.clone(),
            }))
        {
            let _ = std::fs::remove_dir_all(out);
            return Err(e.into());
        }
        let stored = counts.clone();
        self.edit(id, "outputs", &[], move |i| {
            i.counts = Some(stored);
            Ok(())
        })?;
        Ok(OutputReport {
            export_id,
            mailable: counts.total - unmailable,
            unmailable,
            counts,
            media_states,
            files,
        })
    }

    /// Each affected person's name, address, deceased flag and language,
    /// through the vault's audited reads (submitted in groups, so the
    /// audit log commits them together).
    fn people(&self, incident: &str, scope: &crate::scope::Scope) -> Result<Vec<Person>> {
        let view = View::uniform(CategorySet::of(&[
            FieldCategory::Demographics,
            FieldCategory::Contact,
        ]));
        let short = incident.trim_start_matches("INC-");
        let mut out = Vec::with_capacity(scope.affected.len());
        for (chunk_no, chunk) in scope.affected.chunks(512).enumerate() {
            let pending = chunk
                .iter()
                .map(|a| {
                    self.vault().read_record_audited(
                        self.requester(),
                        &view,
                        RecordKind::Patient,
                        &a.patient,
                    )
                })
                .collect::<rxvault_vault::Result<Vec<_>>>()?;
            for (i, (a, p)) in chunk.iter().zip(pending).enumerate() {
                let n = chunk_no * 512 + i + 1;
                let letter_id = format!("{short}-{n:06}");
                let phi: Vec<PhiType> = PhiType::ALL
                    .into_iter()
                    .filter(|t| a.phi.contains(t))
                    .collect();
                let Some(resource) = p.wait()? else {
                    out.push(Person {
                        letter_id,
                        rid: a.patient,
                        name: String::new(),
                        deceased: false,
                        language: Language::En,
                        state: "??".into(),
                        mailing: Err("no patient record (deleted?)".into()),
                        phi,
                    });
                    continue;
                };
                let patient = rxvault_fhir::map::patient_view(&resource)
                    .map_err(|e| Error::Invalid(format!("patient record {}: {e}", a.patient)))?;
                let name = patient
                    .primary_name()
                    .map(|n| n.display())
                    .unwrap_or_default();
                let deceased = match &patient.deceased {
                    Some(rxvault_model::record::Deceased::Flag(b)) => *b,
                    Some(rxvault_model::record::Deceased::At(_)) => true,
                    None => false,
                };
                let mailing = if name.trim().is_empty() {
                    Err("no name".to_string())
                } else {
                    normalize_address(&patient.addresses)
                };
                let state = match &mailing {
                    Ok(m) => m.state.clone(),
                    Err(_) => patient
                        .addresses
                        .iter()
                        .find_map(|a| a.state.as_deref().map(|s| s.trim().to_ascii_uppercase()))
                        .filter(|s| STATES.contains(&s.as_str()))
                        .unwrap_or_else(|| "??".into()),
                };
                out.push(Person {
                    letter_id,
                    rid: a.patient,
                    name,
                    deceased,
                    language: Language::for_preferences(&patient.languages),
                    state,
                    mailing,
                    phi,
                });
            }
        }
        Ok(out)
    }
}

fn check_dir(out: &Path) -> Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut d) => {
            if d.next().is_some() {
                return Err(Error::Invalid(format!(
                    "{} is not empty: give a new or empty folder",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(out)(e)),
    }
}

fn write_file(out: &Path, name: &str, bytes: &[u8], files: &mut Vec<String>) -> Result<()> {
    use std::io::Write;
    let path = out.join(name);
    let mut f = std::fs::File::create(&path).map_err(io_err(&path))?;
    f.write_all(bytes).map_err(io_err(&path))?;
    f.sync_all().map_err(io_err(&path))?;
    files.push(name.to_string());
    Ok(())
}

fn csv_bytes(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Invalid(format!("CSV: {e}"));
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.write_record(&r).map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| Error::Invalid(format!("CSV: {e}")))
}

fn mailing_name(p: &Person) -> String {
    if p.deceased {
        format!("Family or personal representative of {}", p.name)
    } else {
        p.name.clone()
    }
}

fn write_mailing(out: &Path, people: &[Person], files: &mut Vec<String>) -> Result<()> {
    let rows = people.iter().filter_map(|p| {
        let m = p.mailing.as_ref().ok()?;
        Some(vec![
            p.letter_id.clone(),
            mailing_name(p),
            m.lines[0].clone(),
            m.lines.get(1).cloned().unwrap_or_default(),
            m.city.clone(),
            m.state.clone(),
            m.zip.clone(),
            p.language.code().to_string(),
        ])
    });
    let bytes = csv_bytes(
        &[
            "letter_id",
            "name",
            "address_line_1",
            "address_line_2",
            "city",
            "state",
            "zip",
            "language",
        ],
        rows,
    )?;
    write_file(out, "mailing.csv", &bytes, files)
}

fn write_unmailable(
    out: &Path,
    people: &[Person],
    entity: &Entity,
    rules: &crate::Rules,
    files: &mut Vec<String>,
) -> Result<()> {
    let bad: Vec<&Person> = people.iter().filter(|p| p.mailing.is_err()).collect();
    let rows = bad.iter().map(|p| {
        vec![
            p.letter_id.clone(),
            mailing_name(p),
            p.mailing.as_ref().err().cloned().unwrap_or_default(),
        ]
    });
    write_file(
        out,
        "unmailable.csv",
        &csv_bytes(&["letter_id", "name", "reason"], rows)?,
        files,
    )?;
    let f = &rules.federal;
    if bad.len() as u64 >= f.substitute_min_unmailable {
        let text = format!(
            "SUBSTITUTE NOTICE (45 CFR 164.404(d)(2)(ii))\n\n\
             {} people affected by this incident could not be reached by mail ({} or more): post \
             this notice conspicuously on the home page of {} for {} days, or in major print or \
             broadcast media where they likely live, and keep the toll-free number {} active for \
             at least {} days.\n\n\
             Notice of a data breach\n\n{}\n\nWhat we are doing: {}\n\nWhat you can do: {}\n\n\
             To learn whether your information was involved, call toll-free {} or email {}.\n",
            bad.len(),
            f.substitute_min_unmailable,
            entity.website,
            f.substitute_days,
            entity.toll_free,
            f.substitute_days,
            entity.what_happened,
            entity.what_we_are_doing,
            entity.what_you_can_do,
            entity.toll_free,
            entity.email,
        );
        write_file(out, "substitute-notice.txt", text.as_bytes(), files)?;
    } else if !bad.is_empty() {
        let rows = bad.iter().map(|p| {
            vec![
                p.letter_id.clone(),
                mailing_name(p),
                p.mailing.as_ref().err().cloned().unwrap_or_default(),
                "alternative written notice, telephone or other means (164.404(d)(2)(i))".into(),
            ]
        });
        write_file(
            out,
            "alternative-notice.csv",
            &csv_bytes(&["letter_id", "name", "reason", "method"], rows)?,
            files,
        )?;
    }
    Ok(())
}

fn write_states(
    out: &Path,
    counts: &Counts,
    media: &[String],
    obligations: &[crate::Obligation],
    entity: &Entity,
    incident: &crate::Incident,
    files: &mut Vec<String>,
) -> Result<()> {
    let ag = |s: &str| {
        obligations
            .iter()
            .find(|o| o.party == crate::Party::AttorneyGeneral(s.to_string()))
            .map(|o| o.due.map_or("yes".to_string(), dates::format))
            .unwrap_or_default()
    };
    let rows = counts.by_state.iter().map(|(s, n)| {
        vec![
            s.clone(),
            n.to_string(),
            if media.contains(s) { "yes" } else { "no" }.to_string(),
            ag(s),
        ]
    });
    write_file(
        out,
        "state-counts.csv",
        &csv_bytes(
            &["state", "residents", "media_notice", "attorney_general_due"],
            rows,
        )?,
        files,
    )?;
    for s in media {
        let text = format!(
            "DRAFT PRESS RELEASE (45 CFR 164.406) — for prominent media outlets serving {s}\n\n\
             {} notifies {} residents of {s} of a data breach\n\n\
             {} The breach was discovered on {}. {}\n\n\
             Individuals whose information was involved are being notified by first-class mail. \
             {}\n\nFor more information, call toll-free {}, email {} or visit {}.\n",
            entity.name,
            counts.by_state[s],
            entity.what_happened,
            dates::format(incident.discovered),
            entity.what_we_are_doing,
            entity.what_you_can_do,
            entity.toll_free,
            entity.email,
            entity.website,
        );
        write_file(
            out,
            &format!("press-release-{s}.txt"),
            text.as_bytes(),
            files,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_hhs(
    out: &Path,
    incident: &crate::Incident,
    counts: &Counts,
    media: &[String],
    scope: &crate::scope::Scope,
    entity: &Entity,
    rules: &crate::Rules,
    files: &mut Vec<String>,
) -> Result<()> {
    let phi = scope.phi_union();
    let hhs_types: BTreeSet<&str> = phi.iter().map(|p| p.hhs()).collect();
    let f = &rules.federal;
    let contemporaneous = counts.total >= f.hhs_min_individuals;
    let individual_due =
        dates::format(incident.discovered + time::Duration::days(f.individual_days));
    let report = serde_json::json!({
        "covered_entity": {
            "name": entity.name,
            "address": entity.postal_address,
            "contact": { "toll_free": entity.toll_free, "email": entity.email },
            "type": "Health Care Provider",
        },
        "business_associate": entity.business_associate,
        "breach_start_date": incident.occurred_from.map(dates::format),
        "breach_end_date": incident.occurred_to.map(dates::format),
        "discovery_start_date": dates::format(incident.discovered),
        "discovery_end_date": dates::format(incident.discovered),
        "approximate_number_of_individuals_affected": counts.total,
        "type_of_breach": [entity.breach_type],
        "location_of_breached_information": [entity.location],
        "type_of_protected_health_information": hhs_types,
        "protected_health_information_details": phi.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "brief_description": incident.summary,
        "safeguards_in_place_prior_to_breach": entity.safeguards,
        "individual_notice": { "method": "First-class mail", "deadline": individual_due },
        "substitute_notice_required": counts.unmailable >= f.substitute_min_unmailable,
        "media_notice_required": !media.is_empty(),
        "media_notice_states": media,
        "actions_taken_in_response": entity.actions,
        "submission": if contemporaneous {
            "contemporaneous with individual notice (500 or more individuals)".to_string()
        } else {
            format!(
                "annual log: submit by {} (fewer than {})",
                dates::format(
                    time::Date::from_calendar_date(incident.discovered.year(), time::Month::December, 31)
                        .expect("December 31")
                        + time::Duration::days(f.hhs_log_days_after_year)
                ),
                f.hhs_min_individuals
            )
        },
        "attestation": "To be completed by the person submitting: the information is accurate to the best of my knowledge.",
        "incident": incident.id,
    });
    write_file(
        out,
        "hhs-report.json",
        serde_json::to_string_pretty(&report)
            .expect("JSON")
            .as_bytes(),
        files,
    )?;
    // The same, readable: one field a paragraph.
    let mut text = String::from("# HHS OCR breach report (45 CFR 164.408)\n\n");
    for (field, value) in report.as_object().expect("an object") {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            v => v.to_string(),
        };
        text.push_str(&format!("{}: {value}\n\n", field.replace('_', " ")));
    }
    write_file(out, "hhs-report.pdf", &crate::letters::pdf(&[text])?, files)
}

fn write_scope(out: &Path, scope: &crate::scope::Scope, files: &mut Vec<String>) -> Result<()> {
    let rows = scope.affected.iter().map(|a| {
        vec![
            a.patient.to_string(),
            a.phi.iter().map(|p| p.name()).collect::<Vec<_>>().join(" "),
            a.sources.iter().cloned().collect::<Vec<_>>().join(" "),
        ]
    });
    write_file(
        out,
        "scope.csv",
        &csv_bytes(&["patient_key", "phi_types", "sources"], rows)?,
        files,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rxvault_model::Address;

    fn addr(lines: &[&str], city: &str, state: &str, zip: &str) -> Address {
        Address {
            use_: Some("home".into()),
            lines: lines.iter().map(|s| s.to_string()).collect(),
            city: Some(city.into()),
            state: Some(state.into()),
            postal_code: Some(zip.into()),
            country: Some("US".into()),
        }
    }

    fn person(n: usize, mailable: bool) -> Person {
        Person {
            letter_id: format!("X-{n:06}"),
            rid: Rid([n as u8; 16]),
            name: format!("Person {n}"),
            deceased: n == 0,
            language: Language::En,
            state: "TX".into(),
            mailing: if mailable {
                normalize_address(&[addr(&["1 Main Street"], "Austin", "TX", "78701")])
            } else {
                Err("no address".into())
            },
            phi: vec![PhiType::Name],
        }
    }

    fn unmailable_files(bad: usize) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut people: Vec<Person> = (0..bad).map(|n| person(n, false)).collect();
        people.push(person(99, true));
        let entity = Entity::parse(include_str!("../data/entity.example.toml")).unwrap();
        let mut files = Vec::new();
        write_unmailable(
            dir.path(),
            &people,
            &entity,
            &crate::Rules::bundled(),
            &mut files,
        )
        .unwrap();
        write_mailing(dir.path(), &people, &mut files).unwrap();
        (dir, files)
    }

    #[test]
    fn ten_unmailable_need_substitute_notice_nine_an_alternative_list() {
        let (dir, files) = unmailable_files(9);
        assert_eq!(
            files,
            ["unmailable.csv", "alternative-notice.csv", "mailing.csv"]
        );
        let alt = std::fs::read_to_string(dir.path().join("alternative-notice.csv")).unwrap();
        assert_eq!(alt.lines().count(), 10, "a header and nine people");
        assert!(
            alt.contains("Family or personal representative of Person 0"),
            "deceased"
        );
        let (dir, files) = unmailable_files(10);
        assert_eq!(
            files,
            ["unmailable.csv", "substitute-notice.txt", "mailing.csv"]
        );
        let text = std::fs::read_to_string(dir.path().join("substitute-notice.txt")).unwrap();
        assert!(
            text.contains("for 90 days") && text.contains("1-800-555-0199"),
            "{text}"
        );
        let mailing = std::fs::read_to_string(dir.path().join("mailing.csv")).unwrap();
        assert_eq!(
            mailing.lines().nth(1).unwrap(),
            "X-000099,Person 99,1 MAIN ST,,AUSTIN,TX,78701,en"
        );
        let (_, files) = unmailable_files(0);
        assert_eq!(files, ["unmailable.csv", "mailing.csv"]);
    }

    #[test]
    fn addresses_are_normalised_or_said_unmailable() {
        let m = normalize_address(&[addr(
            &["12 North Main Street.", "Apartment 4"],
            "Austin",
            "tx",
            "787011234",
        )])
        .unwrap();
        assert_eq!(m.lines, ["12 N MAIN ST", "APT 4"]);
        assert_eq!(
            (m.city.as_str(), m.state.as_str(), m.zip.as_str()),
            ("AUSTIN", "TX", "78701-1234")
        );
        assert_eq!(normalize_address(&[]).unwrap_err(), "no address");
        assert_eq!(
            normalize_address(&[addr(&["1 A St"], "X", "ZZ", "12345")]).unwrap_err(),
            "no US state"
        );
        assert_eq!(
            normalize_address(&[addr(&["1 A St"], "X", "TX", "1234")]).unwrap_err(),
            "no valid ZIP code"
        );
        let mut old = addr(&["1 A St"], "X", "TX", "12345");
        old.use_ = Some("old".into());
        assert_eq!(normalize_address(&[old]).unwrap_err(), "only old addresses");
    }
}
