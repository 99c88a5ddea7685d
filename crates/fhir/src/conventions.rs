//! Where rxvault puts pharmacy data that FHIR R4 has no dedicated element
//! for. Readers also accept the common alternatives noted on each constant.

/// `Identifier.system` of a prescription's Rx number on `MedicationRequest`.
/// Without one, the first identifier, else the resource id, is the Rx number.
pub const RX_NUMBER_SYSTEM: &str = "https://rxvault.dev/fhir/sid/rx-number";

/// `Identifier.system` of a fill's transaction ID on `MedicationDispense`.
/// Without one, the first identifier, else the resource id, is used.
pub const TRANSACTION_ID_SYSTEM: &str = "https://rxvault.dev/fhir/sid/transaction-id";

/// The v2-0203 identifier type code of a health plan member number on
/// `Coverage.identifier`. Without one, `Coverage.subscriberId` is used.
pub const MEMBER_ID_TYPE: &str = "MB";

/// The v2-0203 code system.
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

/// RxNorm's code system URI.
pub const RXNORM_SYSTEM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

/// Extension on `MedicationDispense` carrying the carrier (`valueString`).
pub const CARRIER_EXTENSION: &str = "https://rxvault.dev/fhir/StructureDefinition/shipment-carrier";

/// Extension on `MedicationDispense` carrying the tracking number
/// (`valueString`).
pub const TRACKING_EXTENSION: &str =
    "https://rxvault.dev/fhir/StructureDefinition/shipment-tracking-number";

/// The id of the contained `Location` that is a fill's ship-to (its `name`
/// is the name on the package, its `address` the address);
/// `MedicationDispense.destination` references it as `#ship-to`.
pub const SHIP_TO_CONTAINED_ID: &str = "ship-to";

/// `Coverage.class.type` code system.
pub const COVERAGE_CLASS_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/coverage-class";

/// `Coverage.relationship` code system.
pub const SUBSCRIBER_RELATIONSHIP_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/subscriber-relationship";

/// `meta.tag` system marking a `Coverage` rxvault derived from a `Claim` or
/// `ExplanationOfBenefit` because the input had no `Coverage` for the patient.
pub const DERIVED_TAG_SYSTEM: &str = "https://rxvault.dev/fhir/CodeSystem/provenance";

/// `meta.tag` code for a derived `Coverage`.
pub const DERIVED_TAG_CODE: &str = "derived-from-claim";
