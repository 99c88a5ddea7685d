//! Allergies: about 30% of patients have one to three.

use super::person::Person;
use super::{AllergyExtras, Ctx};
use crate::data::allergens::{ALLERGENS, Allergen};
use crate::ids;
use crate::rng::{Rng, Stream};
use rxvault_model::Allergy;

/// The patient's allergies, and the allergens behind them (which constrain
/// prescribing).
pub(crate) fn allergies(
    ctx: &Ctx,
    person: &Person,
) -> (Vec<Allergy>, Vec<AllergyExtras>, Vec<&'static Allergen>) {
    let mut rng = Rng::new(ctx.seed, ctx.index, Stream::Allergy);
    let chance = match person.age {
        0..=17 => 1800,
        18..=64 => 3000,
        _ => 3800,
    };
    if !rng.chance(chance) {
        return (Vec::new(), Vec::new(), Vec::new());
    }
    let count = 1 + rng.weighted_index(&[65, 25, 10]);
    let mut chosen: Vec<&'static Allergen> = Vec::with_capacity(count);
    while chosen.len() < count {
        let a = &ALLERGENS[rng.weighted_by(ALLERGENS, |a| {
            if chosen.iter().any(|c| std::ptr::eq(*c, a)) {
                0
            } else {
                a.weight
            }
        })];
        chosen.push(a);
    }
    let mut out = Vec::with_capacity(count);
    let mut extras = Vec::with_capacity(count);
    for (n, a) in chosen.iter().enumerate() {
        let criticality = if rng.chance(a.high_per_10k) {
            "high"
        } else if rng.chance(700) {
            "unable-to-assess"
        } else {
            "low"
        };
        let clinical = match rng.below(10_000) {
            0..=299 => "inactive",
            300..=799 => "resolved",
            _ => "active",
        };
        let mut reaction = *rng.pick(a.reactions);
        if criticality != "high" && reaction == "Anaphylaxis" {
            reaction = a.reactions[0];
        }
        let severity = match (criticality, reaction) {
            (_, "Anaphylaxis") => "severe",
            ("high", _) => {
                if rng.chance(5000) {
                    "severe"
                } else {
                    "moderate"
                }
            }
            _ => {
                if rng.chance(6000) {
                    "mild"
                } else {
                    "moderate"
                }
            }
        };
        let max_back = (ctx.as_of - person.birth).clamp(0, 15 * 365);
        out.push(Allergy {
            id: ids::resource_id(ctx.seed, ctx.index, ids::Kind::Allergy, n as u32),
            patient_id: person.patient.id.clone(),
            substance: Some(a.substance.to_string()),
            criticality: Some(criticality.to_string()),
            clinical_status: Some(clinical.to_string()),
        });
        extras.push(AllergyExtras {
            category: a.category,
            kind: a.kind,
            verification: if rng.chance(7000) {
                "confirmed"
            } else {
                "unconfirmed"
            },
            reaction,
            severity,
            recorded: (ctx.as_of - rng.range_i32(0, max_back))
                .min(person.death.unwrap_or(i32::MAX)),
        });
    }
    (out, extras, chosen)
}
