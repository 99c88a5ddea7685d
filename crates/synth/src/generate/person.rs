//! Demographics: where the patient lives, who they are, how to reach them.

use super::{Ctx, PatientExtras, fhir_date, year_of};
use crate::data::geo::{City, STATES, STREET_NAMES, STREET_SUFFIXES, State};
use crate::data::names::*;
use crate::data::people::{self, ORIGINS, Origin};
use crate::ids;
use crate::rng::{LazyWeighted, Rng, Stream, Weighted};
use rxvault_model::{Address, Deceased, HumanName, Identifier, Patient, Telecom};
use std::sync::LazyLock;

/// The MRN identifier system (HL7's example OID for a hospital's MRNs).
pub(crate) const MRN_SYSTEM: &str = "urn:oid:2.16.840.1.113883.19.5";

/// A generated person: the `Patient` plus the facts the other generators
/// need.
pub(crate) struct Person {
    /// The model patient.
    pub patient: Patient,
    /// FHIR-only facts.
    pub extras: PatientExtras,
    /// Biological sex used for prescribing (female).
    pub female: bool,
    /// Age in whole years on `as_of`.
    pub age: u32,
    /// Birth date (Julian day).
    pub birth: i32,
    /// Death date (Julian day).
    pub death: Option<i32>,
    /// The state (index into `STATES`).
    pub state: usize,
    /// Official name as on an envelope (`HumanName::display`).
    pub display_name: String,
    /// The family name (for dependents' subscribers).
    pub family: String,
    /// Married (decides spouse coverage).
    pub married: bool,
    /// Home address (the first address).
    pub home: Address,
    /// An alternate shipping address, if any.
    pub alternate: Option<Address>,
}

/// States weighted by 2020 population.
static STATE_TABLE: LazyLock<Vec<u32>> =
    LazyLock::new(|| STATES.iter().map(|s| s.population).collect());

/// Race/ethnicity mix by state (per mille): Hispanic, Black, Asian,
/// American Indian and Alaska Native, Native Hawaiian and Pacific Islander
/// (2020 Census, in `STATES` order). The rest are non-Hispanic White or
/// other.
static STATE_MIX: [[u16; 5]; 51] = [
    [53, 258, 15, 7, 1],
    [73, 30, 65, 148, 17],
    [307, 45, 37, 37, 3],
    [85, 151, 17, 9, 5],
    [394, 54, 151, 5, 4],
    [219, 38, 35, 9, 2],
    [173, 105, 47, 3, 0],
    [105, 217, 42, 4, 0],
    [113, 414, 45, 3, 1],
    [265, 151, 30, 3, 1],
    [105, 310, 45, 3, 1],
    [107, 16, 360, 3, 108],
    [130, 6, 14, 13, 2],
    [182, 138, 59, 3, 0],
    [82, 93, 26, 3, 0],
    [68, 38, 25, 4, 2],
    [130, 56, 30, 9, 1],
    [46, 79, 17, 2, 1],
    [69, 314, 19, 6, 0],
    [20, 14, 12, 6, 0],
    [118, 295, 67, 3, 0],
    [126, 65, 72, 2, 0],
    [56, 132, 34, 5, 0],
    [61, 66, 52, 10, 0],
    [36, 366, 10, 5, 0],
    [47, 113, 22, 4, 2],
    [41, 4, 8, 62, 1],
    [119, 47, 27, 9, 1],
    [287, 93, 87, 9, 8],
    [43, 14, 29, 2, 0],
    [216, 124, 100, 2, 0],
    [477, 18, 17, 89, 1],
    [195, 148, 86, 5, 0],
    [107, 205, 33, 11, 1],
    [43, 31, 15, 48, 1],
    [44, 123, 25, 2, 0],
    [112, 70, 23, 78, 2],
    [139, 18, 47, 11, 5],
    [86, 105, 39, 1, 0],
    [166, 53, 36, 4, 0],
    [69, 251, 18, 4, 1],
    [45, 19, 15, 84, 0],
    [69, 158, 20, 3, 1],
    [393, 118, 54, 3, 1],
    [151, 11, 25, 10, 11],
    [24, 12, 19, 3, 0],
    [105, 186, 71, 3, 1],
    [137, 39, 94, 12, 8],
    [18, 34, 8, 2, 0],
    [76, 62, 30, 8, 0],
    [102, 8, 9, 22, 1],
];

/// Origin groups by bucket (Hispanic, Black, Asian, Native, Pacific, other).
fn origins_in(bucket: usize) -> &'static [&'static str] {
    match bucket {
        0 => &["hispanic"],
        1 => &["african-american", "haitian"],
        2 => &[
            "chinese",
            "indian",
            "filipino",
            "vietnamese",
            "korean",
            "japanese",
        ],
        3 => &["native-american"],
        4 => &["pacific-islander"],
        _ => &["general", "arab", "slavic"],
    }
}

fn origin_named(name: &str) -> &'static Origin {
    ORIGINS
        .iter()
        .find(|o| o.name == name)
        .unwrap_or(&ORIGINS[0])
}

/// Pharmacy-population age bands (lower, upper, weight per mille): skewed
/// toward older adults, who fill most prescriptions.
const AGE_BANDS: [(u32, u32, u32); 12] = [
    (0, 4, 30),
    (5, 11, 40),
    (12, 17, 40),
    (18, 24, 50),
    (25, 34, 80),
    (35, 44, 90),
    (45, 54, 120),
    (55, 64, 170),
    (65, 74, 190),
    (75, 84, 130),
    (85, 94, 50),
    (95, 100, 10),
];

/// Picks the state of patient `rng`'s stream.
fn pick_state(rng: &mut Rng) -> usize {
    rng.weighted_index(&STATE_TABLE)
}

fn pick_city(rng: &mut Rng, state: &'static State) -> &'static City {
    &state.cities[rng.weighted_by(state.cities, |c| c.weight)]
}

/// A name from a popularity-ordered list, skewed toward its head.
pub(crate) fn skewed<'a>(rng: &mut Rng, list: &'a [&'a str]) -> &'a str {
    let n = list.len() as u32;
    let i = rng.below(n).min(rng.below(n));
    list[i as usize]
}

static SURNAME_TABLES: LazyLock<Vec<(usize, Weighted<&'static str>)>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for (i, o) in ORIGINS.iter().enumerate() {
        for (table, _) in o.surnames {
            out.push((i, Weighted::new(table)));
        }
    }
    out
});

/// A surname typical of `origin`.
pub(crate) fn surname(rng: &mut Rng, origin: &'static Origin) -> &'static str {
    let oi = ORIGINS
        .iter()
        .position(|o| std::ptr::eq(o, origin))
        .unwrap_or(0);
    let which = rng.weighted_by(origin.surnames, |(_, w)| *w);
    let table = SURNAME_TABLES
        .iter()
        .filter(|(i, _)| *i == oi)
        .nth(which)
        .map(|(_, t)| t);
    match table {
        Some(t) => t.pick(rng),
        None => "Smith",
    }
}

/// A given name for someone of `origin` and sex born in `birth_year`.
pub(crate) fn given_name(
    rng: &mut Rng,
    origin: &'static Origin,
    female: bool,
    birth_year: i32,
) -> &'static str {
    if let Some((male, fem)) = origin.given {
        let recent_enough = origin.name != "african-american" || birth_year >= 1960;
        if recent_enough && rng.chance(origin.given_share) {
            return skewed(rng, if female { fem } else { male });
        }
    }
    let list = match (female, birth_year) {
        (false, ..=1955) => MALE_OLD,
        (false, 1956..=1989) => MALE_MID,
        (false, _) => MALE_YOUNG,
        (true, ..=1955) => FEMALE_OLD,
        (true, 1956..=1989) => FEMALE_MID,
        (true, _) => FEMALE_YOUNG,
    };
    skewed(rng, list)
}

/// The feminine form of a Slavic surname (`Ivanov` -> `Ivanova`).
fn feminine(surname: &str) -> String {
    if surname.ends_with("ov") || surname.ends_with("ev") || surname.ends_with("in") {
        format!("{surname}a")
    } else {
        surname.to_string()
    }
}

fn family_name(rng: &mut Rng, origin: &'static Origin, female: bool) -> String {
    let s = surname(rng, origin);
    let mut family = if origin.gendered_surnames && female {
        feminine(s)
    } else {
        s.to_string()
    };
    if origin.hispanic && rng.chance(1200) {
        // Paternal and maternal surnames, as many Hispanic patients register.
        let second = surname(rng, origin);
        if second != s {
            family.push(' ');
            family.push_str(second);
        }
    }
    family
}

/// Common nicknames people give as the name they go by.
const NICKNAMES: [(&str, &str); 30] = [
    ("William", "Bill"),
    ("Robert", "Bob"),
    ("James", "Jim"),
    ("Michael", "Mike"),
    ("Thomas", "Tom"),
    ("Joseph", "Joe"),
    ("Richard", "Rick"),
    ("Christopher", "Chris"),
    ("Anthony", "Tony"),
    ("Daniel", "Dan"),
    ("David", "Dave"),
    ("Charles", "Chuck"),
    ("Edward", "Ed"),
    ("Matthew", "Matt"),
    ("Nicholas", "Nick"),
    ("Benjamin", "Ben"),
    ("Alexander", "Alex"),
    ("Jonathan", "Jon"),
    ("Elizabeth", "Liz"),
    ("Margaret", "Peggy"),
    ("Patricia", "Pat"),
    ("Jennifer", "Jen"),
    ("Rebecca", "Becky"),
    ("Deborah", "Debbie"),
    ("Susan", "Sue"),
    ("Kimberly", "Kim"),
    ("Samantha", "Sam"),
    ("Victoria", "Vicky"),
    ("Katherine", "Kathy"),
    ("Stephanie", "Steph"),
];

fn marital_status(rng: &mut Rng, age: u32) -> Option<(&'static str, &'static str)> {
    const S: (&str, &str) = ("S", "Never Married");
    const M: (&str, &str) = ("M", "Married");
    const D: (&str, &str) = ("D", "Divorced");
    const W: (&str, &str) = ("W", "Widowed");
    if rng.chance(500) {
        return None;
    }
    let (choices, weights): (&[(&str, &str)], &[u32]) = match age {
        0..=17 => return Some(S),
        18..=29 => (&[S, M, D], &[70, 28, 2]),
        30..=49 => (&[S, M, D, W], &[30, 55, 13, 2]),
        50..=64 => (&[S, M, D, W], &[14, 60, 18, 8]),
        _ => (&[S, M, D, W], &[7, 52, 13, 28]),
    };
    Some(choices[rng.weighted_index(weights)])
}

fn house_number(rng: &mut Rng) -> u32 {
    match rng.weighted_index(&[5, 35, 50, 10]) {
        0 => rng.range(1, 99),
        1 => rng.range(100, 999),
        2 => rng.range(1000, 9999),
        _ => rng.range(10000, 29999),
    }
}

static SUFFIXES: LazyWeighted<&'static str> = LazyLock::new(|| Weighted::new(&STREET_SUFFIXES));

/// A street address line and maybe a unit line, in `city` of `state`.
pub(crate) fn address(
    rng: &mut Rng,
    state: &'static State,
    city: &'static City,
    use_: &str,
    unit_per_10k: u32,
) -> Address {
    let mut line = house_number(rng).to_string();
    line.push(' ');
    if rng.chance(1200) {
        line.push_str(rng.pick::<&str>(&["N", "S", "E", "W", "NE", "NW", "SE", "SW"]));
        line.push(' ');
    }
    line.push_str(rng.pick::<&str>(&STREET_NAMES));
    line.push(' ');
    line.push_str(SUFFIXES.pick(rng));
    let mut lines = vec![line];
    if rng.chance(unit_per_10k) {
        let unit = match rng.weighted_index(&[50, 25, 15, 10]) {
            0 => format!("Apt {}", rng.range(1, 40) * 100 + rng.range(1, 24)),
            1 => format!("Apt {}{}", rng.range(1, 12), rng.letter()),
            2 => format!("Unit {}", rng.range(1, 350)),
            _ => format!("# {}", rng.range(1, 60)),
        };
        lines.push(unit);
    }
    let zip = city.zip + rng.below(city.zips);
    Address {
        use_: Some(use_.to_string()),
        lines,
        city: Some(city.name.to_string()),
        state: Some(state.code.to_string()),
        postal_code: Some(format!("{zip:05}")),
        country: Some("US".to_string()),
    }
}

/// A phone number in one of `city`'s area codes: `512-555-0143` (the 555
/// exchange, never a real subscriber's number).
pub(crate) fn phone(rng: &mut Rng, city: &'static City) -> String {
    let area = rng.pick(city.area_codes);
    format!("{area}-555-{:04}", rng.below(10_000))
}

/// Lower-case ASCII letters and digits of a name (accents folded).
fn email_part(name: &str) -> String {
    name.chars()
        .filter_map(|c| {
            let c = match c {
                'á' | 'Á' | 'à' | 'â' | 'ä' => 'a',
                'é' | 'É' | 'è' | 'ê' | 'ë' => 'e',
                'í' | 'Í' | 'ì' | 'î' | 'ï' => 'i',
                'ó' | 'Ó' | 'ò' | 'ô' | 'ö' => 'o',
                'ú' | 'Ú' | 'ù' | 'û' | 'ü' => 'u',
                'ñ' | 'Ñ' => 'n',
                c => c,
            };
            c.is_ascii_alphanumeric().then(|| c.to_ascii_lowercase())
        })
        .collect()
}

/// An email address at one of the domains reserved for examples (RFC 2606),
/// so a generated dataset can never mail a real person.
fn email(rng: &mut Rng, given: &str, family: &str, birth_year: i32) -> String {
    let g = email_part(given);
    let f = email_part(family);
    let domain = rng.pick(&["example.com", "example.net", "example.org"]);
    match rng.below(5) {
        0 => format!("{g}.{f}@{domain}"),
        1 => format!("{g}.{f}{}@{domain}", rng.range(1, 99)),
        2 => format!("{}{f}{}@{domain}", &g[..g.len().min(1)], rng.range(10, 999)),
        3 => format!("{g}{f}{}@{domain}", birth_year.rem_euclid(100)),
        _ => format!("{f}.{g}@{domain}"),
    }
}

/// Generates the person of `ctx`.
pub(crate) fn person(ctx: &Ctx) -> Person {
    let mut rng = Rng::new(ctx.seed, ctx.index, Stream::Demographics);

    // Where.
    let state_index = pick_state(&mut rng);
    let state = &STATES[state_index];
    let city = pick_city(&mut rng, state);

    // Origin, from the state's race and ethnicity mix.
    let mix = STATE_MIX[state_index];
    let rest = 1000u32.saturating_sub(mix.iter().map(|&m| u32::from(m)).sum());
    let bucket = rng.weighted_index(&[
        u32::from(mix[0]),
        u32::from(mix[1]),
        u32::from(mix[2]),
        u32::from(mix[3]),
        u32::from(mix[4]),
        rest,
    ]);
    let names = origins_in(bucket);
    let origin = origin_named(names[rng.weighted_by(names, |n| origin_named(n).weight)]);

    // Sex, gender, age.
    let female = rng.chance(5500);
    let gender = match rng.below(1000) {
        0..=2 => "other",
        3..=4 => "unknown",
        _ if female => "female",
        _ => "male",
    };
    let birth_sex = match gender {
        "unknown" => "UNK",
        _ if female => "F",
        _ => "M",
    };
    let band = AGE_BANDS[rng.weighted_index(&AGE_BANDS.map(|b| b.2))];
    let age = rng.range(band.0, band.1);
    // Born between `age + 1` years and `age` years before as_of.
    let birth = (ctx.as_of - (age as i32 * 36525) / 100 - rng.range_i32(0, 364)).min(ctx.as_of);
    let birth_year = year_of(birth);

    // Names.
    let given = given_name(&mut rng, origin, female, birth_year).to_string();
    let mut givens = vec![given.clone()];
    let middle_chance = if origin.hispanic { 4500 } else { 3500 };
    if rng.chance(middle_chance) {
        let middle = if rng.chance(6000) {
            skewed(&mut rng, if female { MIDDLE_FEMALE } else { MIDDLE_MALE }).to_string()
        } else {
            given_name(&mut rng, origin, female, birth_year).to_string()
        };
        if middle != given {
            if rng.chance(800) {
                let initial: String = middle.chars().take(1).collect();
                givens.push(format!("{initial}."));
            } else {
                givens.push(middle);
            }
        }
    }
    let marital = marital_status(&mut rng, age);
    let married_ever = matches!(marital, Some(("M" | "W" | "D", _)));
    let mut family = family_name(&mut rng, origin, female);
    let mut names_out = Vec::with_capacity(2);
    let mut suffix = Vec::new();
    if !female && age >= 18 && rng.chance(400) {
        suffix.push(
            rng.pick(&["Jr.", "Jr.", "Jr.", "Sr.", "II", "III"])
                .to_string(),
        );
    }
    let mut maiden = None;
    let keeps_name = if origin.hispanic { 7000 } else { 3000 };
    if female && age >= 22 && married_ever && !rng.chance(keeps_name) {
        let m = family_name(&mut rng, origin, true);
        if m != family {
            if rng.chance(500) {
                family = format!("{m}-{family}");
            }
            maiden = Some(m);
        }
    }
    names_out.push(HumanName {
        use_: Some("official".to_string()),
        family: Some(family.clone()),
        given: givens.clone(),
        prefix: Vec::new(),
        suffix,
    });
    if let Some(m) = maiden {
        names_out.push(HumanName {
            use_: Some("maiden".to_string()),
            family: Some(m),
            given: givens.clone(),
            prefix: Vec::new(),
            suffix: Vec::new(),
        });
    }
    if rng.chance(1500)
        && let Some((_, nick)) = NICKNAMES.iter().find(|(full, _)| *full == given)
    {
        names_out.push(HumanName {
            use_: Some("usual".to_string()),
            family: Some(family.clone()),
            given: vec![nick.to_string()],
            prefix: Vec::new(),
            suffix: Vec::new(),
        });
    }
    // As written on an envelope (the model's own rule).
    let display_name = names_out[0].display();

    // Addresses.
    let unit_chance = match city.weight {
        1000.. => 4000,
        300..=999 => 2500,
        _ => 1200,
    };
    let home = address(&mut rng, state, city, "home", unit_chance);
    let mut addresses = vec![home.clone()];
    let mut alternate = None;
    if age >= 18 && rng.chance(800) {
        let alt = if age >= 60 && rng.chance(5000) {
            // A winter home in Florida or Arizona.
            let s = STATES
                .iter()
                .position(|s| s.code == if rng.chance(6500) { "FL" } else { "AZ" })
                .unwrap_or(0);
            let c = pick_city(&mut rng, &STATES[s]);
            address(&mut rng, &STATES[s], c, "temp", 3000)
        } else {
            let c = pick_city(&mut rng, state);
            address(
                &mut rng,
                state,
                c,
                if age < 65 { "work" } else { "temp" },
                2000,
            )
        };
        addresses.push(alt.clone());
        alternate = Some(alt);
    }

    // Contact.
    let mut telecoms = Vec::with_capacity(3);
    let landline = match age {
        65.. => 6000,
        40..=64 => 3000,
        _ => 1000,
    };
    if rng.chance(landline) {
        telecoms.push(Telecom {
            system: Some("phone".into()),
            value: phone(&mut rng, city),
            use_: Some("home".into()),
        });
    }
    if rng.chance(if age >= 80 { 6000 } else { 9000 }) {
        // One in eight mobile numbers kept an area code from somewhere else.
        let c = if rng.chance(1200) {
            let s = &STATES[pick_state(&mut rng)];
            pick_city(&mut rng, s)
        } else {
            city
        };
        telecoms.push(Telecom {
            system: Some("phone".into()),
            value: phone(&mut rng, c),
            use_: Some("mobile".into()),
        });
    }
    if (25..65).contains(&age) && rng.chance(300) {
        telecoms.push(Telecom {
            system: Some("phone".into()),
            value: phone(&mut rng, city),
            use_: Some("work".into()),
        });
    }
    if telecoms.is_empty() && rng.chance(9500) {
        telecoms.push(Telecom {
            system: Some("phone".into()),
            value: phone(&mut rng, city),
            use_: Some("home".into()),
        });
    }
    let email_chance = match age {
        0..=17 => 0,
        18..=64 => 7000,
        65..=79 => 4500,
        _ => 1500,
    };
    if rng.chance(email_chance) {
        telecoms.push(Telecom {
            system: Some("email".into()),
            value: email(&mut rng, &given, &family, birth_year),
            use_: Some("home".into()),
        });
    }

    // Language.
    let mut languages = Vec::with_capacity(2);
    if !rng.chance(300) {
        let preferred = origin
            .languages
            .iter()
            .find(|(_, p)| rng.chance(*p))
            .map(|(l, _)| *l);
        match preferred {
            Some(lang) => {
                languages.push(lang.to_string());
                if rng.chance(5500) {
                    languages.push("en".to_string());
                }
            }
            None => {
                languages.push("en".to_string());
                if let Some((lang, _)) = origin.languages.first()
                    && origin.name != "general"
                    && rng.chance(3000)
                {
                    languages.push(lang.to_string());
                }
            }
        }
    }

    // Race and ethnicity (US Core).
    let mut extras = PatientExtras {
        birth_sex,
        marital,
        ..PatientExtras::default()
    };
    if !rng.chance(600) {
        if origin.hispanic {
            match rng.weighted_index(&[60, 25, 10, 5]) {
                0 => extras.races.push(people::WHITE),
                1 => {}
                2 => extras.races.extend([people::WHITE, people::NATIVE]),
                _ => extras.races.push(people::BLACK),
            }
        } else if origin.name == "general" && rng.chance(400) {
            extras.races.extend([
                people::WHITE,
                *rng.pick(&[people::BLACK, people::ASIAN, people::NATIVE]),
            ]);
        } else {
            extras.races.push(origin.race);
            extras.race_detail = origin.race_detail;
        }
        extras.ethnicity = Some(if origin.hispanic {
            people::HISPANIC
        } else {
            people::NOT_HISPANIC
        });
    }

    // Death.
    let death_chance = match age {
        0..=49 => 20,
        50..=69 => 100,
        70..=84 => 400,
        _ => 1000,
    };
    let death = (rng.chance(death_chance) && ctx.as_of - birth >= 2)
        .then(|| (ctx.as_of - rng.range_i32(1, 3 * 365)).max(birth + 1));

    let patient = Patient {
        id: ids::resource_id(ctx.seed, ctx.index, ids::Kind::Patient, 0),
        names: names_out,
        addresses,
        telecoms,
        birth_date: Some(fhir_date(birth)),
        gender: Some(gender.to_string()),
        deceased: death.map(|d| Deceased::At(fhir_date(d))),
        languages,
        identifiers: vec![Identifier {
            system: Some(MRN_SYSTEM.to_string()),
            type_code: Some("MR".to_string()),
            value: ids::mrn(ctx.seed, ctx.index),
        }],
    };
    Person {
        patient,
        extras,
        female,
        age,
        birth,
        death,
        state: state_index,
        display_name,
        family,
        married: matches!(marital, Some(("M", _))),
        home,
        alternate,
    }
}
