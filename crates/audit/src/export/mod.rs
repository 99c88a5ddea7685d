//! Getting entries out of the vault for people and SIEMs.
//!
//! - [`jsonl`]: one JSON object per entry.
//! - [`fhir`]: FHIR R4 `AuditEvent` resources (NDJSON or a Bundle), with
//!   the DICOM and HL7 codes SIEMs and EHR audit repositories expect.
//! - [`syslog`]: RFC 5424 messages with structured data, sent over UDP
//!   (RFC 5426), TCP with octet counting (RFC 6587) or TLS (RFC 5425).
//!
//! Patients always appear by record key (the opaque [`Rid`](rxvault_model::Rid)),
//! never by anything that identifies them. Actor ids, sessions, addresses
//! and hosts do appear: they are what a SIEM correlates on, and an export
//! is a deliberate act (itself worth auditing). Free text (a break-glass
//! reason, a file name) appears as entered.

pub mod fhir;
pub mod jsonl;
pub mod syslog;

/// The export formats, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON lines.
    Jsonl,
    /// FHIR R4 AuditEvent NDJSON.
    FhirNdjson,
    /// One FHIR R4 Bundle (type `collection`) of AuditEvents.
    FhirBundle,
    /// RFC 5424 syslog lines (for a file; sending uses [`syslog::Sender`]).
    Syslog,
}
