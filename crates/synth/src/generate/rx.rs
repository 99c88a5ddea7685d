//! Prescriptions and their fills.
//!
//! Older patients have more prescriptions (0 to 8). Each prescription is
//! written on some day before `as_of`; maintenance drugs are then refilled
//! every days-supply, a few days early or late depending on the patient's
//! adherence, until the refills run out, the prescription expires (a year
//! after it was written), is discontinued, or the patient dies. Only fills
//! in the 365 days up to `as_of` are kept. About one patient in seven is
//! lapsed (on file, but last prescribed a year or more ago). Because refill
//! cycles run through `as_of` itself, a natural share of patients (2 to 3%)
//! have a package going out on `as_of`: the day's shipping manifest.

use super::person::{Person, given_name, surname};
use super::ship::{pick_carrier, tracking_number};
use super::{Ctx, FillExtras, RxExtras, fhir_date};
use crate::data::allergens::Allergen;
use crate::data::drugs::{Course, DRUGS, Drug, SexLimit, epinephrine};
use crate::data::people::ORIGINS;
use crate::ids::{self, MAX_PRESCRIPTIONS};
use crate::rng::{Rng, Stream};
use rxvault_model::{Fill, MedicationEntry, Prescription, ShipTo};

/// Prescribers per state.
const PRESCRIBERS_PER_STATE: u32 = 400;

/// The display name of prescriber `slot` of state `state` in this dataset:
/// the same prescriber writes for many patients of the state.
pub(crate) fn prescriber(seed: u64, state: usize, slot: u32) -> String {
    let mut rng = Rng::new(
        seed,
        (state as u64) << 32 | u64::from(slot),
        Stream::Prescriber,
    );
    // Physicians are more often of Indian, East Asian or Middle Eastern
    // origin than the population at large.
    let origin_names = [
        "general",
        "african-american",
        "hispanic",
        "indian",
        "chinese",
        "korean",
        "vietnamese",
        "filipino",
        "arab",
        "slavic",
        "japanese",
    ];
    let weights = [5500, 600, 700, 1200, 600, 300, 200, 200, 300, 200, 100];
    let name = origin_names[rng.weighted_index(&weights)];
    let origin = ORIGINS
        .iter()
        .find(|o| o.name == name)
        .unwrap_or(&ORIGINS[0]);
    let female = rng.chance(4200);
    let birth_year = 1950 + rng.range_i32(0, 45);
    let given = given_name(&mut rng, origin, female, birth_year);
    let family = surname(&mut rng, origin);
    format!("Dr. {given} {family}")
}

/// How many prescriptions a patient has, by age.
fn prescription_count(rng: &mut Rng, age: u32) -> usize {
    let weights: &[u32] = match age {
        0..=17 => &[45, 30, 15, 6, 3, 1],
        18..=39 => &[25, 28, 20, 12, 7, 4, 2, 1, 1],
        40..=64 => &[12, 16, 18, 16, 13, 10, 7, 5, 3],
        _ => &[5, 8, 12, 15, 16, 15, 12, 9, 8],
    };
    rng.weighted_index(weights)
}

fn eligible(
    drug: &Drug,
    person: &Person,
    taken: &[&'static Drug],
    allergies: &[&'static Allergen],
) -> bool {
    drug.weight > 0
        && (u32::from(drug.min_age)..=u32::from(drug.max_age)).contains(&person.age)
        && match drug.sex {
            SexLimit::Any => true,
            SexLimit::Female => person.female,
            SexLimit::Male => !person.female,
        }
        && !taken.iter().any(|t| t.class == drug.class)
        && !allergies.iter().any(|a| a.excludes.contains(&drug.class))
}

/// Refills allowed.
fn refills(rng: &mut Rng, drug: &Drug, ninety_day: bool) -> u32 {
    let (values, weights): (&[u32], &[u32]) = match (drug.course, drug.schedule, ninety_day) {
        (Course::Acute, ..) | (_, 2, _) => return 0,
        (Course::AsNeeded, 4, _) => (&[0, 1, 2], &[50, 30, 20]),
        (Course::AsNeeded, ..) => (&[0, 1, 2, 3, 5], &[40, 20, 15, 10, 15]),
        (Course::Chronic, 4, _) => (&[0, 1, 2, 5], &[30, 20, 20, 30]),
        (Course::Chronic, _, true) => (&[0, 1, 2, 3], &[5, 10, 10, 75]),
        (Course::Chronic, _, false) => (&[0, 1, 2, 3, 5, 6, 11], &[7, 5, 8, 10, 17, 3, 50]),
    };
    values[rng.weighted_index(weights)]
}

/// Patient-level refill habits: how many days early (negative) or late a
/// maintenance refill goes out.
#[derive(Clone, Copy)]
enum Adherence {
    Good,
    Fair,
    Poor,
}

fn refill_delay(rng: &mut Rng, adherence: Adherence) -> i32 {
    match adherence {
        Adherence::Good => rng.range_i32(-6, 4),
        Adherence::Fair => rng.range_i32(-3, 15),
        Adherence::Poor => rng.range_i32(0, 60),
    }
}

/// Everything prescribed to and dispensed for one patient.
pub(crate) struct Dispensing {
    /// Prescriptions.
    pub prescriptions: Vec<Prescription>,
    /// Their FHIR-only facts.
    pub prescription_extras: Vec<RxExtras>,
    /// Fills, in prescription order then date order.
    pub fills: Vec<Fill>,
    /// Their FHIR-only facts.
    pub fill_extras: Vec<FillExtras>,
}

/// The patient's prescriptions and fills.
pub(crate) fn dispensing(
    ctx: &Ctx,
    person: &Person,
    allergies: &[&'static Allergen],
) -> Dispensing {
    let mut rng = Rng::new(ctx.seed, ctx.index, Stream::Prescription);
    let mut drugs: Vec<&'static Drug> = Vec::with_capacity(8);
    let count = prescription_count(&mut rng, person.age);
    for _ in 0..count {
        let i = rng.weighted_by(DRUGS, |d| {
            if eligible(d, person, &drugs, allergies) {
                d.weight
            } else {
                0
            }
        });
        let d = &DRUGS[i];
        if eligible(d, person, &drugs, allergies) {
            drugs.push(d);
        }
    }
    if drugs.len() < MAX_PRESCRIPTIONS as usize
        && person.age >= 6
        && allergies.iter().any(|a| a.epinephrine)
        && rng.chance(3000)
    {
        drugs.push(epinephrine());
    }

    let adherence =
        [Adherence::Good, Adherence::Fair, Adherence::Poor][rng.weighted_index(&[60, 30, 10])];
    // Lapsed patients: on file, but their prescriptions are from a year or
    // more ago (moved away, switched pharmacies).
    let lapsed_by = if rng.chance(1500) {
        rng.range_i32(300, 1100)
    } else {
        0
    };
    let pcp = rng.below(PRESCRIBERS_PER_STATE);
    let window_start = ctx.window_start();
    let mut out = Dispensing {
        prescriptions: Vec::with_capacity(drugs.len()),
        prescription_extras: Vec::with_capacity(drugs.len()),
        fills: Vec::new(),
        fill_extras: Vec::new(),
    };

    for (slot, drug) in drugs.iter().enumerate() {
        let slot = slot as u32;
        let ninety = drug.course == Course::Chronic
            && drug.schedule == 0
            && !drug.cold_chain
            && rng.chance(5500);
        let multiplier = if ninety { 3 } else { 1 };
        let days = drug.days * multiplier;
        let quantity = f64::from(drug.quantity * multiplier);
        let refills = refills(&mut rng, drug, ninety);
        let written = match (drug.course, drug.schedule) {
            (Course::Chronic, 2) => ctx.as_of - rng.range_i32(0, 45),
            (Course::Chronic, _) => ctx.as_of - rng.range_i32(0, 380),
            _ => ctx.as_of - rng.range_i32(0, 365),
        }
        .saturating_sub(lapsed_by)
        .min(person.death.map_or(i32::MAX, |d| d - 1))
        .max(person.birth);
        let prescriber_slot = if drug.course == Course::Chronic && rng.chance(7500) {
            pcp
        } else {
            rng.below(PRESCRIBERS_PER_STATE)
        };
        let discontinued = rng.chance(700).then(|| written + rng.range_i32(20, 300));

        // Fill schedule.
        let mut date = written
            + if rng.chance(6000) {
                0
            } else {
                rng.range_i32(1, 3)
            };
        let abandoned = rng.chance(300);
        let mut k = 0u32;
        let mut last_fill = None;
        while !abandoned && k <= refills {
            let expired = date > written + 365;
            let stopped =
                discontinued.is_some_and(|s| date > s) || person.death.is_some_and(|d| date >= d);
            if date > ctx.as_of || expired || stopped {
                break;
            }
            if date >= window_start {
                let today = date == ctx.as_of;
                let carrier = pick_carrier(&mut rng, drug.cold_chain, drug.schedule);
                let to_alternate = person.alternate.is_some() && rng.chance(6000);
                let address = if to_alternate {
                    person.alternate.clone().unwrap_or_default()
                } else {
                    person.home.clone()
                };
                let handed_over = (!today).then(|| {
                    if rng.chance(3000) {
                        (date + 1).min(ctx.as_of)
                    } else {
                        date
                    }
                });
                out.fills.push(Fill {
                    id: ids::resource_id(
                        ctx.seed,
                        ctx.index,
                        ids::Kind::Fill,
                        slot * ids::MAX_FILLS_PER_RX as u32 + k,
                    ),
                    transaction_id: ids::transaction_id(ctx.seed, ctx.index, slot, k),
                    patient_id: person.patient.id.clone(),
                    prescription_id: Some(ids::resource_id(
                        ctx.seed,
                        ctx.index,
                        ids::Kind::Prescription,
                        slot,
                    )),
                    medication: MedicationEntry {
                        rxnorm: Some(drug.rxnorm.to_string()),
                        text: Some(drug.name.to_string()),
                    },
                    fill_date: Some(fhir_date(date)),
                    quantity: Some(quantity),
                    ship_to: Some(ShipTo {
                        name: Some(person.display_name.clone()),
                        address,
                    }),
                    destination: None,
                    carrier: Some(carrier.name().to_string()),
                    tracking_number: Some(tracking_number(&mut rng, ctx.seed, carrier)),
                    status: if today { "in-progress" } else { "completed" }.to_string(),
                });
                out.fill_extras.push(FillExtras {
                    days_supply: days,
                    first: k == 0,
                    handed_over,
                });
            }
            last_fill = Some(date);
            k += 1;
            date += i32::from(days)
                + match drug.course {
                    Course::Chronic => refill_delay(&mut rng, adherence),
                    _ => rng.range_i32(0, 90),
                };
        }

        let supply_left = last_fill.is_some_and(|d| d + i32::from(days) > ctx.as_of);
        let status = if person.death.is_some() || discontinued.is_some_and(|s| s <= ctx.as_of) {
            "stopped"
        } else if written + 365 < ctx.as_of || (k > refills && !supply_left) {
            // Expired, or every fill used and the last supply run out.
            "completed"
        } else if rng.chance(100) {
            "on-hold"
        } else {
            "active"
        };
        out.prescriptions.push(Prescription {
            id: ids::resource_id(ctx.seed, ctx.index, ids::Kind::Prescription, slot),
            patient_id: person.patient.id.clone(),
            rx_number: ids::rx_number(ctx.seed, ctx.index, slot),
            prescriber: Some(prescriber(ctx.seed, person.state, prescriber_slot)),
            medication: MedicationEntry {
                rxnorm: Some(drug.rxnorm.to_string()),
                text: Some(drug.name.to_string()),
            },
            sig: Some(drug.sig.to_string()),
            quantity: Some(quantity),
            refills: Some(refills),
            written: Some(fhir_date(written)),
            status: status.to_string(),
        });
        out.prescription_extras.push(RxExtras {
            days_supply: days,
            course: drug.course,
        });
    }
    out
}
