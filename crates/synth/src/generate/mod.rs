//! The generators: one patient's demographics, health plans, allergies,
//! prescriptions and fills, as `rxvault-model` values plus the few extra
//! facts (race, days supply, ...) that only the FHIR output carries.
//!
//! Each part draws from its own random stream (see [`crate::rng`]), in a
//! fixed order, so a patient depends only on `(seed, index, as_of)`.

pub(crate) mod allergy;
pub(crate) mod coverage;
pub(crate) mod person;
pub(crate) mod rx;
pub(crate) mod ship;

use crate::Config;
use crate::data::drugs::Course;
use crate::data::payers::Line;
use time::Date;

/// The earliest `as_of` the generator accepts (patients are born up to 101
/// years earlier and FHIR years have four digits).
pub(crate) const MIN_AS_OF: Date = match Date::from_calendar_date(1800, time::Month::January, 1) {
    Ok(d) => d,
    Err(_) => Date::MIN,
};
/// The latest `as_of` the generator accepts.
pub(crate) const MAX_AS_OF: Date = match Date::from_calendar_date(9999, time::Month::December, 31) {
    Ok(d) => d,
    Err(_) => Date::MAX,
};

/// Days of fill history: fills are dated in the 365 days up to and
/// including `as_of`.
pub(crate) const HISTORY_DAYS: i32 = 365;

/// What every generator needs to know about the dataset and the patient.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// Dataset seed.
    pub seed: u64,
    /// Patient index.
    pub index: u64,
    /// `as_of` as a Julian day number.
    pub as_of: i32,
}

impl Ctx {
    /// The context of patient `index` (an out-of-range `as_of` is clamped;
    /// `Config::validate` reports it).
    pub(crate) fn new(config: &Config, index: u64) -> Self {
        let as_of = config.as_of.clamp(MIN_AS_OF, MAX_AS_OF);
        Ctx {
            seed: config.seed,
            index,
            as_of: as_of.to_julian_day(),
        }
    }

    /// The first day of the fill history window.
    pub(crate) fn window_start(&self) -> i32 {
        self.as_of - (HISTORY_DAYS - 1)
    }
}

/// A Julian day as a FHIR date (`YYYY-MM-DD`).
pub(crate) fn fhir_date(jd: i32) -> String {
    let date = Date::from_julian_day(jd).unwrap_or(if jd < 0 { MIN_AS_OF } else { MAX_AS_OF });
    let (y, m, d) = date.to_calendar_date();
    let mut s = String::with_capacity(10);
    push_padded(&mut s, y.max(0) as u32, 4);
    s.push('-');
    push_padded(&mut s, u8::from(m) as u32, 2);
    s.push('-');
    push_padded(&mut s, u32::from(d), 2);
    s
}

fn push_padded(s: &mut String, v: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    let mut v = v % (div * 10);
    while div > 0 {
        s.push(char::from(b'0' + (v / div) as u8));
        v %= div;
        div /= 10;
    }
}

/// The calendar year of a Julian day.
pub(crate) fn year_of(jd: i32) -> i32 {
    Date::from_julian_day(jd).map(|d| d.year()).unwrap_or(1800)
}

/// The Julian day of January 1 of `year` (clamped to the valid range).
pub(crate) fn jan_first(year: i32) -> i32 {
    Date::from_calendar_date(year.clamp(1, 9999), time::Month::January, 1)
        .map(Date::to_julian_day)
        .unwrap_or(MIN_AS_OF.to_julian_day())
}

/// Facts the FHIR output carries beyond the typed model.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Extras {
    /// Of the patient.
    pub patient: PatientExtras,
    /// One per coverage.
    pub coverages: Vec<CoverageExtras>,
    /// One per prescription.
    pub prescriptions: Vec<RxExtras>,
    /// One per fill.
    pub fills: Vec<FillExtras>,
    /// One per allergy.
    pub allergies: Vec<AllergyExtras>,
}

/// US Core race, ethnicity and birth sex; marital status.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct PatientExtras {
    /// OMB race categories (empty: not recorded).
    pub races: Vec<(&'static str, &'static str)>,
    /// Detailed race.
    pub race_detail: Option<(&'static str, &'static str)>,
    /// OMB ethnicity (`None`: not recorded).
    pub ethnicity: Option<(&'static str, &'static str)>,
    /// `F`, `M` or `UNK`.
    pub birth_sex: &'static str,
    /// v3-MaritalStatus code and display.
    pub marital: Option<(&'static str, &'static str)>,
}

/// Coverage details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CoverageExtras {
    /// Line of business.
    pub line: Line,
    /// Coverage start (Julian day).
    pub start: i32,
    /// Coverage end, for cancelled coverage (Julian day).
    pub end: Option<i32>,
    /// The subscriber's name when the patient is a dependent.
    pub subscriber: Option<String>,
}

/// Prescription details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RxExtras {
    /// Days supply of one fill.
    pub days_supply: u16,
    /// Course of therapy.
    pub course: Course,
}

/// Fill details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FillExtras {
    /// Days supply.
    pub days_supply: u16,
    /// First fill of the prescription (else a refill).
    pub first: bool,
    /// When the package was handed to the carrier (Julian day).
    pub handed_over: Option<i32>,
}

/// Allergy details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AllergyExtras {
    /// `medication`, `food`, `environment`.
    pub category: &'static str,
    /// `allergy`, `intolerance`.
    pub kind: &'static str,
    /// `confirmed`, `unconfirmed`.
    pub verification: &'static str,
    /// What happened.
    pub reaction: &'static str,
    /// `mild`, `moderate`, `severe`.
    pub severity: &'static str,
    /// When it was recorded (Julian day).
    pub recorded: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format() {
        let d = Date::from_calendar_date(2020, time::Month::September, 7).unwrap();
        assert_eq!(fhir_date(d.to_julian_day()), "2020-09-07");
        assert_eq!(fhir_date(MIN_AS_OF.to_julian_day()), "1800-01-01");
        assert_eq!(fhir_date(MAX_AS_OF.to_julian_day()), "9999-12-31");
        assert_eq!(year_of(d.to_julian_day()), 2020);
        assert_eq!(fhir_date(jan_first(2021)), "2021-01-01");
    }
}
