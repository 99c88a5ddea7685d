//! Health plans: zero to two `Coverage` records, by age (Medicare from 65,
//! Medicaid more often for children), with member IDs and group numbers in
//! each payer's format.

use super::person::{Person, given_name, surname};
use super::{CoverageExtras, Ctx, jan_first, year_of};
use crate::data::geo::STATES;
use crate::data::payers::{
    COMMERCIAL, Group, Line, MEDICAID_PLANS, MEDICARE, MemberId, Payer, TRICARE_PLANS,
};
use crate::data::people::ORIGINS;
use crate::ids;
use crate::rng::{Rng, Stream};
use rxvault_model::Coverage;

fn member_id(rng: &mut Rng, format: MemberId) -> String {
    let mut s = String::with_capacity(12);
    match format {
        MemberId::Digits(n) => {
            s.push(char::from(b'1' + rng.below(9) as u8));
            rng.digits(&mut s, usize::from(n) - 1);
        }
        MemberId::Letter(c, n) => {
            s.push(c);
            rng.digits(&mut s, usize::from(n));
        }
        MemberId::Cigna => {
            s.push('U');
            rng.digits(&mut s, 8);
            s.push_str(rng.pick::<&str>(&["01", "01", "01", "02", "03"]));
        }
        MemberId::Bcbs | MemberId::Letters(..) => {
            let (letters, digits) = match format {
                MemberId::Letters(l, d) => (l, d),
                _ => (3, 9),
            };
            for _ in 0..letters {
                s.push(rng.letter());
            }
            rng.digits(&mut s, usize::from(digits));
        }
    }
    s
}

fn group_number(rng: &mut Rng, group: Group, plan: &str) -> Option<String> {
    match group {
        Group::Employer => {
            let mut s = String::with_capacity(8);
            if rng.chance(3000) {
                for _ in 0..rng.range(1, 3) {
                    s.push(rng.letter());
                }
                let n = rng.range(4, 6) as usize;
                rng.digits(&mut s, n);
            } else {
                s.push(char::from(b'0' + rng.below(10) as u8));
                let n = rng.range(5, 7) as usize;
                rng.digits(&mut s, n);
            }
            Some(s)
        }
        Group::MedicareContract => {
            let prefix = if plan.contains("(PDP)") { 'S' } else { 'H' };
            Some(format!(
                "{prefix}{}-{:03}",
                rng.range(1000, 9999),
                rng.range(1, 250)
            ))
        }
    }
}

fn pick_payer<'a>(rng: &mut Rng, payers: &'a [Payer], kaiser_state: bool) -> &'a Payer {
    let i = rng.weighted_by(payers, |p| {
        if p.kaiser_only && !kaiser_state {
            0
        } else {
            p.weight
        }
    });
    &payers[i]
}

/// A plausible name for the subscriber a dependent is covered through.
fn subscriber_name(rng: &mut Rng, person: &Person, relationship: &str) -> String {
    let origin = &ORIGINS[0];
    let subscriber_female = match relationship {
        "spouse" => !person.female,
        _ => rng.chance(5000),
    };
    let birth_year = year_of(person.birth)
        - if relationship == "child" {
            rng.range_i32(22, 40)
        } else {
            0
        };
    let given = given_name(rng, origin, subscriber_female, birth_year);
    let family = if rng.chance(9000) {
        person.family.clone()
    } else {
        surname(rng, origin).to_string()
    };
    format!("{given} {family}")
}

struct Plan {
    line: Line,
    payer: String,
    plan: String,
    member_id: String,
    group: Option<String>,
}

fn plan(rng: &mut Rng, line: Line, person: &Person) -> Plan {
    let state = &STATES[person.state];
    match line {
        Line::Medicare | Line::Commercial => {
            let table = if line == Line::Medicare {
                MEDICARE
            } else {
                COMMERCIAL
            };
            let payer = pick_payer(rng, table, state.kaiser);
            let plan_name = rng.pick(payer.plans).to_string();
            Plan {
                line,
                payer: payer.name.unwrap_or(state.bcbs).to_string(),
                member_id: member_id(rng, payer.member_id),
                group: group_number(rng, payer.group, &plan_name),
                plan: plan_name,
            }
        }
        Line::Medicaid => {
            let digits = if rng.chance(5000) { 10 } else { 11 };
            Plan {
                line,
                payer: state.medicaid.to_string(),
                plan: match *rng.pick(MEDICAID_PLANS) {
                    ffs @ "Medicaid Fee-for-Service" => ffs.to_string(),
                    mco => format!("{mco} of {}", state.name),
                },
                member_id: member_id(rng, MemberId::Digits(digits)),
                group: None,
            }
        }
        Line::Tricare => Plan {
            line,
            payer: "TRICARE".to_string(),
            plan: if person.age >= 65 {
                "TRICARE For Life".to_string()
            } else {
                rng.pick(TRICARE_PLANS).to_string()
            },
            member_id: member_id(rng, MemberId::Digits(11)),
            group: None,
        },
    }
}

/// The patient's health plans.
pub(crate) fn coverages(ctx: &Ctx, person: &Person) -> (Vec<Coverage>, Vec<CoverageExtras>) {
    let mut rng = Rng::new(ctx.seed, ctx.index, Stream::Coverage);
    let age = person.age;
    let mut lines: Vec<Line> = Vec::with_capacity(2);
    if age >= 65 {
        if rng.chance(9600) {
            lines.push(Line::Medicare);
            match rng.below(10_000) {
                0..=1199 => lines.push(Line::Medicaid),
                1200..=1499 => lines.push(Line::Tricare),
                1500..=1899 => lines.push(Line::Commercial),
                _ => {}
            }
        } else if rng.chance(5000) {
            lines.push(Line::Commercial);
        }
    } else {
        let medicaid = if age < 19 { 3800 } else { 1500 };
        let r = rng.below(10_000);
        if r < 800 {
            // Uninsured (cash).
        } else if r < 800 + medicaid {
            lines.push(Line::Medicaid);
        } else if r < 1100 + medicaid {
            lines.push(Line::Tricare);
        } else {
            lines.push(Line::Commercial);
        }
        if !lines.is_empty() && rng.chance(600) {
            lines.push(if lines[0] == Line::Commercial {
                Line::Commercial
            } else {
                Line::Medicaid
            });
            if lines[0] == Line::Medicaid && lines[1] == Line::Medicaid {
                lines.pop();
            }
        }
    }

    let mut out = Vec::with_capacity(lines.len());
    let mut extras = Vec::with_capacity(lines.len());
    for (n, line) in lines.into_iter().enumerate() {
        let p = plan(&mut rng, line, person);
        let relationship = match line {
            Line::Medicare | Line::Medicaid => "self",
            Line::Commercial | Line::Tricare => match age {
                0..=18 => "child",
                19..=25 if rng.chance(5000) => "child",
                _ if person.married && rng.chance(if n == 0 { 2500 } else { 7000 }) => "spouse",
                _ => "self",
            },
        };
        let subscriber =
            (relationship != "self").then(|| subscriber_name(&mut rng, person, relationship));
        // Coverage started at the beginning of a recent plan year (Medicare
        // at 65), and continues unless the patient died.
        let start = match line {
            Line::Medicare => {
                let at_65 = person.birth + 65 * 36525 / 100;
                at_65
                    .max(ctx.as_of - rng.range_i32(30, 15 * 365))
                    .min(ctx.as_of)
            }
            _ => jan_first(year_of(ctx.as_of) - rng.range_i32(0, 6)).max(person.birth),
        };
        let end = person.death;
        out.push(Coverage {
            id: ids::resource_id(ctx.seed, ctx.index, ids::Kind::Coverage, n as u32),
            patient_id: person.patient.id.clone(),
            status: Some(if end.is_some() { "cancelled" } else { "active" }.to_string()),
            payer: Some(p.payer),
            plan_name: Some(p.plan),
            member_id: Some(p.member_id),
            group: p.group,
            relationship: Some(relationship.to_string()),
        });
        extras.push(CoverageExtras {
            line: p.line,
            start,
            end,
            subscriber,
        });
    }
    (out, extras)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_have_their_shapes() {
        let mut rng = Rng::new(1, 1, Stream::Coverage);
        assert_eq!(member_id(&mut rng, MemberId::Digits(9)).len(), 9);
        let w = member_id(&mut rng, MemberId::Letter('W', 9));
        assert!(w.starts_with('W') && w.len() == 10);
        let c = member_id(&mut rng, MemberId::Cigna);
        assert!(c.starts_with('U') && c.len() == 11);
        let b = member_id(&mut rng, MemberId::Bcbs);
        assert_eq!(b.len(), 12);
        assert!(
            b[..3].bytes().all(|x| x.is_ascii_uppercase())
                && b[3..].bytes().all(|x| x.is_ascii_digit())
        );
        let g = group_number(
            &mut rng,
            Group::MedicareContract,
            "Humana Basic Rx Plan (PDP)",
        )
        .unwrap();
        assert!(g.starts_with('S') && g.len() == 9, "{g}");
    }
}
