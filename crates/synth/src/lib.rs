//! Deterministic generator of realistic synthetic pharmacy patients, as FHIR
//! R4 Bulk Data NDJSON.
//!
//! rxvault is tested and benchmarked on data shaped like a real mail-order
//! pharmacy's: patients spread over every state by census population, with
//! real cities, ZIP prefixes and area codes; names in the proportions of the
//! US population; Medicare, Medicaid and commercial health plans; commonly
//! dispensed drugs with real RxNorm codes; a year of refills shipped by
//! USPS, UPS and FedEx with valid tracking numbers; allergies. None of it is
//! about a real person: phone numbers use the 555 exchange, emails the
//! reserved `example.*` domains.
//!
//! # Determinism
//! A dataset is a function of its [`Config`] only. Patient `i` depends on
//! nothing but `(seed, i, as_of)`, so any slice can be generated on its own
//! ([`patient_records`]), in parallel, without generating the patients
//! before it; [`write_ndjson`] produces the same bytes on every run, thread
//! count and platform.
//!
//! # Output
//! [`write_ndjson`] writes one file per resource type (see [`FILES`]),
//! streaming: it never holds more than a bounded batch of patients,
//! whatever the dataset size. Resources are built with
//! [`rxvault_fhir::map`]'s builders, so they pass its readers, and every
//! reference (`subject`, `beneficiary`, `patient`,
//! `authorizingPrescription`) points to a generated resource.
//!
//! # Example
//! ```
//! use rxvault_synth::{Config, patient_records};
//! let config = Config::new(1_000, 42, time::macros::date!(2024 - 06 - 30));
//! let records = patient_records(&config, 7);
//! assert_eq!(records, patient_records(&config, 7));
//! assert!(records.fills.iter().all(|f| f.patient_id == records.patient.id));
//! ```
#![deny(missing_docs)]

mod data;
mod fhir;
mod generate;
mod ids;
mod rng;
pub mod write;

pub use write::{Error, FILES, FileSummary, Summary, write_ndjson, write_ndjson_with_threads};

use generate::{Ctx, Extras};
use rxvault_fhir::Resource;
use rxvault_model::{Allergy, Coverage, Fill, Patient, Prescription};
use time::Date;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Number of patients.
    pub patients: u64,
    /// Dataset seed: the same seed gives the same dataset.
    pub seed: u64,
    /// "Today": fills are dated in the 365 days up to and including it
    /// (some on it, in progress), ages and coverage are as of it. Must be in
    /// years 1800 to 9999 (see [`Config::validate`]).
    pub as_of: Date,
}

impl Config {
    /// A config.
    pub fn new(patients: u64, seed: u64, as_of: Date) -> Self {
        Config {
            patients,
            seed,
            as_of,
        }
    }

    /// Checks the config: `as_of` must be in years 1800 to 9999, so that
    /// every generated date is a valid four-digit FHIR date.
    pub fn validate(&self) -> Result<(), Error> {
        if self.as_of < generate::MIN_AS_OF || self.as_of > generate::MAX_AS_OF {
            return Err(Error::Config(format!(
                "as_of {} is outside the supported years 1800 to 9999",
                self.as_of
            )));
        }
        Ok(())
    }
}

/// One patient's records, as the vault's typed model.
///
/// Every record's `patient_id` is the patient's id, every fill's
/// `prescription_id` one of the prescriptions' ids.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientRecords {
    /// The patient.
    pub patient: Patient,
    /// Health plans (0 to 2).
    pub coverages: Vec<Coverage>,
    /// Prescriptions (0 to 8).
    pub prescriptions: Vec<Prescription>,
    /// Fills of those prescriptions in the 365 days up to `as_of`.
    pub fills: Vec<Fill>,
    /// Allergies (0 to 3).
    pub allergies: Vec<Allergy>,
    /// FHIR-only details (race, days supply, ...), used by
    /// [`PatientRecords::resources`].
    extras: Extras,
}

/// One patient's FHIR resources, exactly as [`write_ndjson`] writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientResources {
    /// `Patient`.
    pub patient: Resource,
    /// `Coverage`s.
    pub coverages: Vec<Resource>,
    /// `MedicationRequest`s.
    pub prescriptions: Vec<Resource>,
    /// `MedicationDispense`s.
    pub fills: Vec<Resource>,
    /// `AllergyIntolerance`s.
    pub allergies: Vec<Resource>,
}

impl PatientRecords {
    /// The FHIR resources: built by `rxvault_fhir::map`'s builders, plus
    /// realistic elements the model does not carry (US Core race and
    /// ethnicity, marital status, coverage type and period, days supply,
    /// fill type, allergy reactions ...).
    pub fn resources(&self) -> PatientResources {
        let x = &self.extras;
        PatientResources {
            patient: fhir::patient(&self.patient, &x.patient),
            coverages: self
                .coverages
                .iter()
                .zip(&x.coverages)
                .map(|(c, e)| fhir::coverage(c, e))
                .collect(),
            prescriptions: self
                .prescriptions
                .iter()
                .zip(&x.prescriptions)
                .map(|(p, e)| fhir::prescription(p, e))
                .collect(),
            fills: self
                .fills
                .iter()
                .zip(&x.fills)
                .map(|(f, e)| fhir::fill(f, e))
                .collect(),
            allergies: self
                .allergies
                .iter()
                .zip(&x.allergies)
                .map(|(a, e)| fhir::allergy(a, e))
                .collect(),
        }
    }

    /// The fills dated `as_of` (today's shipping manifest for this patient).
    pub fn fills_on(&self, day: Date) -> impl Iterator<Item = &Fill> {
        let day = generate::fhir_date(day.to_julian_day());
        self.fills
            .iter()
            .filter(move |f| f.fill_date.as_deref() == Some(day.as_str()))
    }
}

/// The records of patient `index` (0-based) of the dataset `config`.
///
/// Deterministic in `(config.seed, index, config.as_of)` only: it does not
/// depend on `config.patients` nor on any other patient, so callers can
/// generate any slice, in any order, in parallel. An `as_of` outside the
/// years [`Config::validate`] accepts is clamped into them.
pub fn patient_records(config: &Config, index: u64) -> PatientRecords {
    let ctx = Ctx::new(config, index);
    let person = generate::person::person(&ctx);
    let (coverages, coverage_extras) = generate::coverage::coverages(&ctx, &person);
    let (allergies, allergy_extras, allergens) = generate::allergy::allergies(&ctx, &person);
    let d = generate::rx::dispensing(&ctx, &person, &allergens);
    PatientRecords {
        extras: Extras {
            patient: person.extras,
            coverages: coverage_extras,
            prescriptions: d.prescription_extras,
            fills: d.fill_extras,
            allergies: allergy_extras,
        },
        patient: person.patient,
        coverages,
        prescriptions: d.prescriptions,
        fills: d.fills,
        allergies,
    }
}

/// Only the `Patient` of patient `index`: the same value as
/// `patient_records(config, index).patient`, several times cheaper (no
/// plans, prescriptions or fills are generated).
pub fn patient(config: &Config, index: u64) -> Patient {
    generate::person::person(&Ctx::new(config, index)).patient
}
