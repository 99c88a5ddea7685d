//! What a breach obliges, as data: the federal rules (45 CFR 164.404-408)
//! and a table of state rules, both read from `data/rules.toml` (thresholds
//! and deadlines are numbers in the table, never in code), and the
//! obligations they give for an incident: who must be told, by when.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Date, Duration, Month};

/// The bundled rules table.
pub const BUNDLED: &str = include_str!("../data/rules.toml");

/// The federal numbers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Federal {
    /// Days after discovery to notify individuals (164.404(b)).
    pub individual_days: i64,
    /// From this many individuals, HHS is notified contemporaneously
    /// (164.408(b)); below, in the annual log.
    pub hhs_min_individuals: u64,
    /// Days after the end of the calendar year of discovery for the annual
    /// log (164.408(c)).
    pub hhs_log_days_after_year: i64,
    /// From this many residents of a state, media notice (164.406).
    pub media_min_residents: u64,
    /// Days after discovery for media notice.
    pub media_days: i64,
    /// From this many unmailable individuals, substitute notice
    /// (164.404(d)(2)(ii)).
    pub substitute_min_unmailable: u64,
    /// How long a substitute notice is posted, and its toll-free number
    /// kept (days).
    pub substitute_days: i64,
}

/// One state's rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StateRule {
    /// Two-letter code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// A deadline for individuals shorter than the federal one, if any.
    pub individual_days: Option<i64>,
    /// From this many residents affected, the attorney general is notified.
    pub ag_min_residents: Option<u64>,
    /// The attorney general's deadline (days after discovery), if fixed.
    pub ag_days: Option<i64>,
}

/// The rules table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Rules {
    /// Federal numbers.
    pub federal: Federal,
    /// State rules.
    #[serde(default, rename = "state")]
    pub states: Vec<StateRule>,
}

impl Rules {
    /// The bundled table.
    pub fn bundled() -> Self {
        Self::parse(BUNDLED).expect("the bundled rules table parses (tested)")
    }

    /// A table from TOML text.
    pub fn parse(text: &str) -> Result<Self> {
        let rules: Rules =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("rules table: {e}")))?;
        for s in &rules.states {
            if s.code.len() != 2 || !s.code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Error::Invalid(format!(
                    "rules table: state code {:?} is not two capital letters",
                    s.code
                )));
            }
        }
        Ok(rules)
    }

    /// A state's rule, by code.
    pub fn state(&self, code: &str) -> Option<&StateRule> {
        self.states
            .iter()
            .find(|s| s.code.eq_ignore_ascii_case(code))
    }

    /// The obligations of a breach discovered on `discovered` with `counts`
    /// (`None` before the scope is known: then only what holds whatever the
    /// count).
    pub fn obligations(&self, discovered: Date, counts: Option<&Counts>) -> Vec<Obligation> {
        let f = &self.federal;
        let mut out = vec![Obligation {
            party: Party::Individuals,
            due: Some(discovered + Duration::days(f.individual_days)),
            rule: "45 CFR 164.404(b): without unreasonable delay, at most 60 days".into(),
        }];
        let Some(c) = counts else {
            out.push(Obligation {
                party: Party::Hhs,
                due: None,
                rule: "45 CFR 164.408: depends on the count (run `rxvault breach scope`)".into(),
            });
            return out;
        };
        if c.total >= f.hhs_min_individuals {
            out.push(Obligation {
                party: Party::Hhs,
                due: Some(discovered + Duration::days(f.individual_days)),
                rule: format!(
                    "45 CFR 164.408(b): {} or more individuals, contemporaneously with individual notice",
                    f.hhs_min_individuals
                ),
            });
        } else {
            out.push(Obligation {
                party: Party::HhsAnnualLog,
                due: Some(year_end(discovered.year()) + Duration::days(f.hhs_log_days_after_year)),
                rule: format!(
                    "45 CFR 164.408(c): fewer than {}, in the log submitted within {} days after the end of {}",
                    f.hhs_min_individuals,
                    f.hhs_log_days_after_year,
                    discovered.year()
                ),
            });
        }
        for (state, n) in &c.by_state {
            if *n >= f.media_min_residents {
                out.push(Obligation {
                    party: Party::Media(state.clone()),
                    due: Some(discovered + Duration::days(f.media_days)),
                    rule: format!(
                        "45 CFR 164.406: more than {} residents of {state} ({n})",
                        f.media_min_residents - 1
                    ),
                });
            }
            if let Some(rule) = self.state(state) {
                if let Some(days) = rule.individual_days.filter(|d| *d < f.individual_days) {
                    out.push(Obligation {
                        party: Party::StateIndividuals(state.clone()),
                        due: Some(discovered + Duration::days(days)),
                        rule: format!("{} law: residents within {days} days", rule.name),
                    });
                }
                if let Some(min) = rule.ag_min_residents.filter(|m| n >= m) {
                    out.push(Obligation {
                        party: Party::AttorneyGeneral(state.clone()),
                        due: rule.ag_days.map(|d| discovered + Duration::days(d)),
                        rule: format!(
                            "{} law: attorney general from {min} residents ({n}){}",
                            rule.name,
                            if rule.ag_days.is_none() {
                                ", most expedient time"
                            } else {
                                ""
                            }
                        ),
                    });
                }
            }
        }
        if c.unmailable >= f.substitute_min_unmailable {
            out.push(Obligation {
                party: Party::SubstituteNotice,
                due: Some(discovered + Duration::days(f.individual_days)),
                rule: format!(
                    "45 CFR 164.404(d)(2)(ii): {} individuals cannot be mailed ({} or more): web \
                     posting or major media for {} days and a toll-free number",
                    c.unmailable, f.substitute_min_unmailable, f.substitute_days
                ),
            });
        } else if c.unmailable > 0 {
            out.push(Obligation {
                party: Party::AlternativeNotice,
                due: Some(discovered + Duration::days(f.individual_days)),
                rule: format!(
                    "45 CFR 164.404(d)(2)(i): {} individuals cannot be mailed (fewer than {}): \
                     alternative written notice, telephone or other means",
                    c.unmailable, f.substitute_min_unmailable
                ),
            });
        }
        out
    }
}

fn year_end(year: i32) -> Date {
    Date::from_calendar_date(year, Month::December, 31).expect("December 31 exists")
}

/// What the obligations depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Individuals affected.
    pub total: u64,
    /// Residents affected per state (two-letter code; `??` unknown).
    pub by_state: BTreeMap<String, u64>,
    /// Individuals without a mailable address.
    pub unmailable: u64,
}

/// Who must be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Party {
    /// The individuals (first-class mail).
    Individuals,
    /// Residents of a state with a shorter deadline.
    StateIndividuals(String),
    /// HHS, contemporaneously (500 or more).
    Hhs,
    /// HHS, in the annual log (fewer than 500).
    HhsAnnualLog,
    /// Prominent media of a state.
    Media(String),
    /// A state's attorney general.
    AttorneyGeneral(String),
    /// Substitute notice (10 or more unmailable).
    SubstituteNotice,
    /// Alternative notice (fewer than 10 unmailable).
    AlternativeNotice,
}

impl Party {
    /// A short name (`individuals`, `hhs`, `hhs-annual-log`, `media:TX`, ...).
    pub fn name(&self) -> String {
        match self {
            Party::Individuals => "individuals".into(),
            Party::StateIndividuals(s) => format!("individuals:{s}"),
            Party::Hhs => "hhs".into(),
            Party::HhsAnnualLog => "hhs-annual-log".into(),
            Party::Media(s) => format!("media:{s}"),
            Party::AttorneyGeneral(s) => format!("attorney-general:{s}"),
            Party::SubstituteNotice => "substitute-notice".into(),
            Party::AlternativeNotice => "alternative-notice".into(),
        }
    }
}

/// Someone to tell, by when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Obligation {
    /// Who.
    pub party: Party,
    /// By when (`None`: no fixed day, or not known yet).
    #[serde(with = "crate::dates::opt")]
    pub due: Option<Date>,
    /// The rule, in words.
    pub rule: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn counts(total: u64, states: &[(&str, u64)], unmailable: u64) -> Counts {
        Counts {
            total,
            by_state: states.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            unmailable,
        }
    }

    fn parties(o: &[Obligation]) -> Vec<String> {
        o.iter().map(|o| o.party.name()).collect()
    }

    fn due(o: &[Obligation], party: &str) -> Option<Date> {
        o.iter()
            .find(|o| o.party.name() == party)
            .and_then(|o| o.due)
    }

    #[test]
    fn the_bundled_table_parses_and_has_several_states() {
        let r = Rules::bundled();
        assert_eq!(r.federal.individual_days, 60);
        assert!(r.states.len() >= 5);
        assert_eq!(r.state("tx").unwrap().ag_min_residents, Some(250));
        assert!(Rules::parse("[federal]\nindividual_days = 1").is_err());
    }

    #[test]
    fn individuals_are_due_60_days_after_discovery() {
        let o = Rules::bundled().obligations(date!(2020 - 09 - 28), None);
        assert_eq!(due(&o, "individuals"), Some(date!(2020 - 11 - 27)));
        assert_eq!(parties(&o), ["individuals", "hhs"]);
        assert_eq!(due(&o, "hhs"), None, "unknown until scoped");
    }

    #[test]
    fn media_from_501_residents_of_a_state_not_500() {
        let r = Rules::bundled();
        let d = date!(2020 - 09 - 28);
        let o = r.obligations(d, Some(&counts(1000, &[("OH", 500), ("PA", 500)], 0)));
        assert!(!parties(&o).iter().any(|p| p.starts_with("media")));
        let o = r.obligations(d, Some(&counts(1001, &[("OH", 501), ("PA", 500)], 0)));
        assert_eq!(due(&o, "media:OH"), Some(date!(2020 - 11 - 27)));
        assert!(!parties(&o).contains(&"media:PA".to_string()));
    }

    #[test]
    fn hhs_contemporaneous_from_500_annual_log_below() {
        let r = Rules::bundled();
        let d = date!(2020 - 09 - 28);
        let o = r.obligations(d, Some(&counts(500, &[("OH", 500)], 0)));
        assert_eq!(due(&o, "hhs"), Some(date!(2020 - 11 - 27)));
        assert!(!parties(&o).contains(&"hhs-annual-log".to_string()));
        let o = r.obligations(d, Some(&counts(499, &[("OH", 499)], 0)));
        assert!(!parties(&o).contains(&"hhs".to_string()));
        // 60 days after December 31, 2020 (a leap year does not matter:
        // January and February 2021).
        assert_eq!(due(&o, "hhs-annual-log"), Some(date!(2021 - 03 - 01)));
        let o = r.obligations(date!(2023 - 01 - 02), Some(&counts(3, &[], 0)));
        assert_eq!(due(&o, "hhs-annual-log"), Some(date!(2024 - 02 - 29)));
    }

    #[test]
    fn substitute_notice_from_10_unmailable_alternative_below() {
        let r = Rules::bundled();
        let d = date!(2020 - 09 - 28);
        let o = r.obligations(d, Some(&counts(100, &[], 9)));
        assert!(parties(&o).contains(&"alternative-notice".to_string()));
        assert!(!parties(&o).contains(&"substitute-notice".to_string()));
        let o = r.obligations(d, Some(&counts(100, &[], 10)));
        assert!(parties(&o).contains(&"substitute-notice".to_string()));
        assert!(!parties(&o).contains(&"alternative-notice".to_string()));
        let o = r.obligations(d, Some(&counts(100, &[], 0)));
        assert!(!parties(&o).iter().any(|p| p.ends_with("-notice")));
    }

    #[test]
    fn state_rules_come_from_the_table() {
        let r = Rules::bundled();
        let d = date!(2020 - 09 - 28);
        let o = r.obligations(
            d,
            Some(&counts(800, &[("TX", 250), ("FL", 10), ("CA", 500)], 0)),
        );
        assert_eq!(due(&o, "attorney-general:TX"), Some(date!(2020 - 10 - 28)));
        assert!(!parties(&o).contains(&"attorney-general:FL".to_string()));
        assert_eq!(due(&o, "individuals:FL"), Some(date!(2020 - 10 - 28)));
        assert!(!parties(&o).contains(&"attorney-general:CA".to_string()));
        let o = r.obligations(d, Some(&counts(249, &[("TX", 249)], 0)));
        assert!(!parties(&o).contains(&"attorney-general:TX".to_string()));
        // A new state is a table row.
        let mut text = BUNDLED.to_string();
        text.push_str(
            "\n[[state]]\ncode = \"OH\"\nname = \"Ohio\"\nag_min_residents = 1\nag_days = 45\n",
        );
        let o = Rules::parse(&text)
            .unwrap()
            .obligations(d, Some(&counts(3, &[("OH", 3)], 0)));
        assert_eq!(due(&o, "attorney-general:OH"), Some(date!(2020 - 11 - 12)));
    }
}
