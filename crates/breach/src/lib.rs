//! Breach response from the audit log (issue 13): a privacy officer answers
//! "who, which data, and what do we owe them" the same day.
//!
//! - [`incident`]: incidents, sealed at rest in the vault's database
//!   (`sealed_documents`, namespace `breach-incident`), every opening, view
//!   and edit audited ([`rxvault_audit::Action::Incident`]); overlapping
//!   incidents are found and named.
//! - [`rules`]: the obligations (individuals, HHS or its annual log, media,
//!   state attorneys general, substitute notice) computed from the
//!   discovery date and the counts, by rules kept as data
//!   (`data/rules.toml`).
//! - [`scope`]: the exact set of affected patients and the PHI categories
//!   exposed to each, from the audit log alone (selectors: users,
//!   sessions, hosts, addresses, a window, an rxvault export's ID) and from
//!   a leaked file of unknown origin, matched through the blind indexes by
//!   the vault's audited searches.
//! - [`harbor`]: the safe-harbor check (only ciphertext taken and keys not
//!   compromised: not reportable, with its evidence).
//! - [`outputs`]: the mailing file, per-state counts, the media list and
//!   the HHS report, and [`letters`]: notification letters as PDF with an
//!   embedded font, English and Spanish, from editable templates.
//!
//! **Architecture invariant:** this crate never decrypts PHI itself. Names,
//! addresses and languages come through the audited entry points of
//! `rxvault_vault::access` (record reads by key, searches), and every
//! output file is an audited export (an `ExportStarted` entry before its
//! first byte, `ExportFinished` after). Incidents are sealed with the
//! vault's keys before they reach the store.
#![deny(missing_docs)]

pub mod harbor;
pub mod incident;
pub mod letters;
pub mod outputs;
pub mod rules;
pub mod scope;

pub use incident::{Breach, Incident};
pub use rules::{Counts, Obligation, Party, Rules};

/// Errors of breach response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No incident with that id.
    #[error("no incident {0:?} (see `rxvault breach list`)")]
    UnknownIncident(String),
    /// An argument or input that cannot be used (what is wrong, never PHI).
    #[error("{0}")]
    Invalid(String),
    /// A new incident overlaps existing ones.
    #[error(
        "this incident overlaps {}: add to it, or pass --allow-overlap to open a separate one",
        .0.join(", ")
    )]
    Overlap(Vec<String>),
    /// Someone else changed the incident meanwhile.
    #[error(
        "incident {0} was changed by someone else meanwhile: nothing was written; run the command again"
    )]
    Conflict(String),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] rxvault_vault::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rxvault_store::Error),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] rxvault_audit::Error),
    /// Sealing or opening failed.
    #[error(transparent)]
    Crypto(#[from] rxvault_crypto::Error),
    /// Writing an output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Results of breach response.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Calendar dates as `YYYY-MM-DD` in stored and printed forms.
pub mod dates {
    use time::Date;
    use time::macros::format_description;

    const YMD: &[time::format_description::BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]");

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> crate::Result<Date> {
        Date::parse(s.trim(), YMD)
            .map_err(|_| crate::Error::Invalid(format!("{s:?} is not a date (YYYY-MM-DD)")))
    }

    /// Formats as `YYYY-MM-DD`.
    pub fn format(d: Date) -> String {
        d.format(YMD).expect("a date formats")
    }

    /// Serde for `Date`.
    pub mod ymd {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::Date;

        /// Serialises.
        pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&super::format(*d))
        }

        /// Deserialises.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
            let s = String::deserialize(d)?;
            super::parse(&s).map_err(serde::de::Error::custom)
        }
    }

    /// Serde for `Option<Date>`.
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::Date;

        /// Serialises.
        pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&super::format(*d)),
                None => s.serialize_none(),
            }
        }

        /// Deserialises.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| super::parse(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
