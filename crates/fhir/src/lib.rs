//! FHIR R4 for rxvault.
//!
//! The vault stores FHIR resources losslessly: every element of the input is
//! kept, so an export equals the import. This crate is everything that knows
//! FHIR's shape:
//!
//! - [`read`]: streaming readers for Bulk Data NDJSON files and Bundle JSON
//!   (transaction, batch, collection, searchset) in constant memory, with
//!   errors that name the file, line and field.
//! - [`map`]: typed views ([`rxvault_model`]) read out of resources, with the
//!   required-field checks; and the reverse, resources built from the model
//!   (used by the synthetic data generator).
//! - [`split`]: which [`FieldCategory`](rxvault_model::FieldCategory) each
//!   element of a resource is in, by content (an element table per kind,
//!   refined by what contained resources, references, extensions and
//!   `telecom` hold, at any depth), the split of a resource into
//!   per-category parts (sealed separately) and their merge.
//! - [`conventions`]: where rxvault finds data FHIR R4 has no dedicated
//!   element for (Rx numbers, transaction IDs, carriers, tracking numbers).
//!
//! This crate does no storage and no cryptography.
#![deny(missing_docs)]

pub mod conventions;
pub mod map;
pub mod read;
pub mod split;

/// A FHIR resource as parsed JSON: every element kept, including ones rxvault
/// does not model.
pub type Resource = serde_json::Map<String, serde_json::Value>;

/// What is wrong with one resource: the element path and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// The element path, e.g. `MedicationRequest.subject`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}
