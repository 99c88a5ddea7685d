//! Record kinds and blind-index kinds.
//!
//! The numeric codes are part of the storage format (they appear in tables
//! and in the associated data of every ciphertext): never renumber them.

use std::fmt;

/// The kinds of record the vault stores, each mapped to one FHIR R4 resource
/// type and one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// FHIR `Patient`: demographics, contact details, identifiers.
    Patient,
    /// FHIR `Coverage`: the patient's health plan.
    Coverage,
    /// FHIR `MedicationRequest`: an e-prescription.
    Prescription,
    /// FHIR `MedicationDispense`: a fill and its shipment.
    Fill,
    /// FHIR `AllergyIntolerance`.
    Allergy,
}

impl RecordKind {
    /// Every kind, in the order exports and counts list them.
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Patient,
        RecordKind::Coverage,
        RecordKind::Prescription,
        RecordKind::Fill,
        RecordKind::Allergy,
    ];

    /// The stable numeric code of this kind.
    pub fn code(self) -> u8 {
        match self {
            RecordKind::Patient => 1,
            RecordKind::Coverage => 2,
            RecordKind::Prescription => 3,
            RecordKind::Fill => 4,
            RecordKind::Allergy => 5,
        }
    }

    /// The kind with this numeric code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The FHIR R4 resource type this kind is stored as.
    pub fn fhir_type(self) -> &'static str {
        match self {
            RecordKind::Patient => "Patient",
            RecordKind::Coverage => "Coverage",
            RecordKind::Prescription => "MedicationRequest",
            RecordKind::Fill => "MedicationDispense",
            RecordKind::Allergy => "AllergyIntolerance",
        }
    }

    /// The kind stored for a FHIR resource type, if the vault stores it.
    pub fn from_fhir_type(resource_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.fhir_type() == resource_type)
    }

    /// The table (SQL) this kind lives in. Also bound into each ciphertext's
    /// associated data, so a ciphertext cannot be moved between tables.
    pub fn table(self) -> &'static str {
        match self {
            RecordKind::Patient => "patients",
            RecordKind::Coverage => "coverages",
            RecordKind::Prescription => "prescriptions",
            RecordKind::Fill => "fills",
            RecordKind::Allergy => "allergies",
        }
    }

    /// Whether records of this kind belong to a patient (all but `Patient`).
    pub fn has_patient(self) -> bool {
        self != RecordKind::Patient
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fhir_type())
    }
}

/// The blind indexes: keyed hashes of normalised values that let the vault
/// find records by equality without decrypting anything.
///
/// What each one leaks (equality and frequency of the normalised value) is
/// documented in ARCHITECTURE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexKind {
    /// A patient's family name together with their birth date.
    FamilyBirthDate,
    /// A patient's phone number (digits only, without a US country code).
    Phone,
    /// A health plan member ID (on `Coverage`).
    MemberId,
    /// A prescription's Rx number (on `MedicationRequest`).
    RxNumber,
    /// A fill's transaction ID (on `MedicationDispense`).
    TransactionId,
    /// The date a fill was prepared for shipping (on `MedicationDispense`),
    /// for the daily shipping manifest.
    FillDate,
    /// A patient identifier's value (medical record number and others, on
    /// `Patient.identifier`), for FHIR `identifier` searches.
    PatientIdentifier,
}

impl IndexKind {
    /// Every index kind.
    pub const ALL: [IndexKind; 7] = [
        IndexKind::FamilyBirthDate,
        IndexKind::Phone,
        IndexKind::MemberId,
        IndexKind::RxNumber,
        IndexKind::TransactionId,
        IndexKind::FillDate,
        IndexKind::PatientIdentifier,
    ];

    /// The stable numeric code of this index.
    pub fn code(self) -> u8 {
        match self {
            IndexKind::FamilyBirthDate => 1,
            IndexKind::Phone => 2,
            IndexKind::MemberId => 3,
            IndexKind::RxNumber => 4,
            IndexKind::TransactionId => 5,
            IndexKind::FillDate => 6,
            IndexKind::PatientIdentifier => 7,
        }
    }

    /// The index with this numeric code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// A short stable name, used as domain separation in the keyed hash.
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::FamilyBirthDate => "family-birthdate",
            IndexKind::Phone => "phone",
            IndexKind::MemberId => "member-id",
            IndexKind::RxNumber => "rx-number",
            IndexKind::TransactionId => "transaction-id",
            IndexKind::FillDate => "fill-date",
            IndexKind::PatientIdentifier => "patient-identifier",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::from_code(k.code()), Some(k));
            assert_eq!(RecordKind::from_fhir_type(k.fhir_type()), Some(k));
        }
        for k in IndexKind::ALL {
            assert_eq!(IndexKind::from_code(k.code()), Some(k));
        }
        assert_eq!(RecordKind::from_code(0), None);
        assert_eq!(RecordKind::from_fhir_type("Observation"), None);
    }
}
