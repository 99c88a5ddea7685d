//! The domain model of rxvault: what a pharmacy stores about a patient, and the
//! vocabulary every other crate shares.
//!
//! # Layout
//! - [`kind`]: the record kinds the vault stores ([`RecordKind`]) and the blind
//!   indexes over them ([`IndexKind`]).
//! - [`category`]: the field categories ([`FieldCategory`]) that sealing and
//!   access control are organised by.
//! - [`record`]: typed views of the stored resources ([`Patient`],
//!   [`Coverage`], [`Prescription`], [`Fill`], [`Allergy`]) and the patient's
//!   derived medication list.
//! - [`normalize`]: the normalisation applied to values before they are blind
//!   indexed, so that lookups match however the value was typed.
//! - [`ids`]: the opaque keys the store sees in place of real identifiers.
//! - [`clock`]: the only place the wall clock is read ([`Clock`]).
//!
//! This crate does no I/O and holds no key material.
//!
//! # Example
//! ```
//! use rxvault_model::{normalize, FieldCategory, RecordKind};
//! assert_eq!(RecordKind::Prescription.fhir_type(), "MedicationRequest");
//! assert_eq!(normalize::phone_digits("+1 (555) 810-7203").as_deref(), Some("5558107203"));
//! assert!(FieldCategory::ALL.contains(&FieldCategory::Shipping));
//! ```
#![deny(missing_docs)]

pub mod category;
pub mod clock;
pub mod ids;
pub mod kind;
pub mod normalize;
pub mod record;

pub use category::{CategorySet, FieldCategory};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use ids::{DekId, IndexToken, Rid};
pub use kind::{IndexKind, RecordKind};
pub use record::{
    Address, Allergy, Coverage, Deceased, Fill, HumanName, Identifier, MedicationEntry, Patient,
    Prescription, ShipTo, Telecom,
};
