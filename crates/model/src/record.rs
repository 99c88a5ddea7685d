//! Typed views of the records the vault stores.
//!
//! The vault stores each record losslessly as its FHIR R4 resource (sealed
//! per field category); these types are what the rest of the product reads
//! out of it: the blind-index values, the shipping manifest, a patient's
//! chart. The mapping to and from FHIR lives in `rxvault-fhir`. A view built
//! from a partially decrypted resource (a role that may not see every
//! category) simply has the hidden fields empty.

use serde::Serialize;

/// A person's name (FHIR `HumanName`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HumanName {
    /// `official`, `usual`, `maiden`, ...
    pub use_: Option<String>,
    /// Family name (surname).
    pub family: Option<String>,
    /// Given names, in order.
    pub given: Vec<String>,
    /// Prefixes such as `Mrs.`.
    pub prefix: Vec<String>,
    /// Suffixes such as `Jr.`.
    pub suffix: Vec<String>,
}

impl HumanName {
    /// The name as it would be written on an envelope: given names, the
    /// family name, then suffixes (`Jr.`).
    pub fn display(&self) -> String {
        let mut parts: Vec<&str> = self.given.iter().map(String::as_str).collect();
        parts.extend(self.family.as_deref());
        parts.extend(self.suffix.iter().map(String::as_str));
        parts.join(" ")
    }
}

/// A postal address (FHIR `Address`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Address {
    /// `home`, `work`, `temp`, ...
    pub use_: Option<String>,
    /// Street lines.
    pub lines: Vec<String>,
    /// City.
    pub city: Option<String>,
    /// State (two-letter code in the US).
    pub state: Option<String>,
    /// ZIP code.
    pub postal_code: Option<String>,
    /// Country.
    pub country: Option<String>,
}

/// A phone number, email or other contact point (FHIR `ContactPoint`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Telecom {
    /// `phone`, `email`, `sms`, ...
    pub system: Option<String>,
    /// The number or address.
    pub value: String,
    /// `home`, `work`, `mobile`, ...
    pub use_: Option<String>,
}

/// An identifier with the system that issued it (FHIR `Identifier`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Identifier {
    /// The namespace URI.
    pub system: Option<String>,
    /// The identifier type code (v2-0203: `MR`, `SS`, `MB`, ...).
    pub type_code: Option<String>,
    /// The value.
    pub value: String,
}

/// Whether and when a patient died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Deceased {
    /// `deceasedBoolean`.
    Flag(bool),
    /// `deceasedDateTime`.
    At(String),
}

/// A patient (FHIR `Patient`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Patient {
    /// The FHIR resource id (the pharmacy's patient ID).
    pub id: String,
    /// Every name, official first as given.
    pub names: Vec<HumanName>,
    /// Every address.
    pub addresses: Vec<Address>,
    /// Phones, emails.
    pub telecoms: Vec<Telecom>,
    /// Birth date (FHIR date: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`).
    pub birth_date: Option<String>,
    /// Administrative gender.
    pub gender: Option<String>,
    /// Deceased flag or date.
    pub deceased: Option<Deceased>,
    /// Preferred languages (BCP 47 codes), preferred first.
    pub languages: Vec<String>,
    /// Medical record numbers and other identifiers.
    pub identifiers: Vec<Identifier>,
}

impl Patient {
    /// The name to use: the `official` one, else the first.
    pub fn primary_name(&self) -> Option<&HumanName> {
        self.names
            .iter()
            .find(|n| n.use_.as_deref() == Some("official"))
            .or_else(|| self.names.first())
    }

    /// Phone numbers (telecoms with system `phone` or `sms`, or none given).
    pub fn phones(&self) -> impl Iterator<Item = &str> {
        self.telecoms
            .iter()
            .filter(|t| matches!(t.system.as_deref(), None | Some("phone") | Some("sms")))
            .map(|t| t.value.as_str())
    }
}

/// A health plan (FHIR `Coverage`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Coverage {
    /// The FHIR resource id.
    pub id: String,
    /// The patient covered (`beneficiary`).
    pub patient_id: String,
    /// `active`, `cancelled`, ...
    pub status: Option<String>,
    /// The payer (`payor[0].display`).
    pub payer: Option<String>,
    /// The plan name (`class` of type `plan`).
    pub plan_name: Option<String>,
    /// The member ID (identifier of type `MB`, else `subscriberId`).
    pub member_id: Option<String>,
    /// The group number (`class` of type `group`).
    pub group: Option<String>,
    /// Relationship of the beneficiary to the subscriber (`self`, `spouse`,
    /// `child`, ...).
    pub relationship: Option<String>,
}

/// A medication, as coded on a prescription or fill.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MedicationEntry {
    /// The RxNorm code, when coded in RxNorm.
    pub rxnorm: Option<String>,
    /// The human-readable name.
    pub text: Option<String>,
}

/// An e-prescription (FHIR `MedicationRequest`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Prescription {
    /// The FHIR resource id.
    pub id: String,
    /// The patient it is for (`subject`).
    pub patient_id: String,
    /// The pharmacy's Rx number: the identifier in the Rx-number system, else
    /// the first identifier, else the resource id.
    pub rx_number: String,
    /// The prescriber (`requester.display`).
    pub prescriber: Option<String>,
    /// The medication.
    pub medication: MedicationEntry,
    /// Directions for use (`dosageInstruction[0].text`).
    pub sig: Option<String>,
    /// Quantity to dispense (`dispenseRequest.quantity.value`).
    pub quantity: Option<f64>,
    /// Refills allowed (`dispenseRequest.numberOfRepeatsAllowed`).
    pub refills: Option<u32>,
    /// Date written (`authoredOn`).
    pub written: Option<String>,
    /// `active`, `completed`, `stopped`, ...
    pub status: String,
}

/// Where a fill is shipped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ShipTo {
    /// The name on the package.
    pub name: Option<String>,
    /// The address on the package.
    pub address: Address,
}

/// A fill and its shipment (FHIR `MedicationDispense`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fill {
    /// The FHIR resource id.
    pub id: String,
    /// The pharmacy's transaction ID: the identifier in the transaction
    /// system, else the first identifier, else the resource id.
    pub transaction_id: String,
    /// The patient it is for (`subject`).
    pub patient_id: String,
    /// The prescription it fills (`authorizingPrescription[0]`).
    pub prescription_id: Option<String>,
    /// The medication.
    pub medication: MedicationEntry,
    /// The fill date (`whenPrepared`, else `whenHandedOver`).
    pub fill_date: Option<String>,
    /// Quantity dispensed.
    pub quantity: Option<f64>,
    /// Where it ships.
    pub ship_to: Option<ShipTo>,
    /// `destination` when it names no contained `Location`: a reference to
    /// a `Location` resource (which rxvault does not store), so the ship-to
    /// is not known here.
    pub destination: Option<String>,
    /// The carrier (`USPS`, `UPS`, ...).
    pub carrier: Option<String>,
    /// The carrier's tracking number.
    pub tracking_number: Option<String>,
    /// `preparation`, `in-progress`, `completed`, ...
    pub status: String,
}

/// An allergy or intolerance (FHIR `AllergyIntolerance`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Allergy {
    /// The FHIR resource id.
    pub id: String,
    /// The patient (`patient`).
    pub patient_id: String,
    /// What the patient reacts to (`code.text` or its first coding's display).
    pub substance: Option<String>,
    /// `low`, `high`, `unable-to-assess`.
    pub criticality: Option<String>,
    /// `active`, `inactive`, `resolved`.
    pub clinical_status: Option<String>,
}

/// One line of a patient's medication list, derived from their
/// prescriptions and fills (the list is never stored on its own).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MedicationListEntry {
    /// The medication.
    pub medication: MedicationEntry,
    /// The prescription's Rx number.
    pub rx_number: String,
    /// The prescription's status.
    pub status: String,
    /// Date written.
    pub written: Option<String>,
    /// The latest fill date, if it was ever filled.
    pub last_filled: Option<String>,
    /// How many fills the vault holds for it.
    pub fills: usize,
}

/// Derives a patient's medication list from their prescriptions and fills:
/// one entry per prescription, newest written first, with its fills counted.
pub fn medication_list(prescriptions: &[Prescription], fills: &[Fill]) -> Vec<MedicationListEntry> {
    let mut list: Vec<MedicationListEntry> = prescriptions
        .iter()
        .map(|rx| {
            let own: Vec<&Fill> = fills
                .iter()
                .filter(|f| f.prescription_id.as_deref() == Some(rx.id.as_str()))
                .collect();
            MedicationListEntry {
                medication: rx.medication.clone(),
                rx_number: rx.rx_number.clone(),
                status: rx.status.clone(),
                written: rx.written.clone(),
                last_filled: own.iter().filter_map(|f| f.fill_date.clone()).max(),
                fills: own.len(),
            }
        })
        .collect();
    list.sort_by(|a, b| {
        b.written
            .cmp(&a.written)
            .then(a.rx_number.cmp(&b.rx_number))
    });
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medication_list_counts_fills_per_prescription() {
        let rx = |id: &str, written: &str| Prescription {
            id: id.into(),
            rx_number: format!("RX-{id}"),
            written: Some(written.into()),
            status: "active".into(),
            ..Prescription::default()
        };
        let fill = |rx: &str, date: &str| Fill {
            prescription_id: Some(rx.into()),
            fill_date: Some(date.into()),
            ..Fill::default()
        };
        let list = medication_list(
            &[rx("a", "2020-01-01"), rx("b", "2020-06-01")],
            &[
                fill("a", "2020-01-02"),
                fill("a", "2020-02-02"),
                fill("x", "2020-03-03"),
            ],
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].rx_number, "RX-b");
        assert_eq!(list[0].fills, 0);
        assert_eq!(list[1].fills, 2);
        assert_eq!(list[1].last_filled.as_deref(), Some("2020-02-02"));
    }
}
