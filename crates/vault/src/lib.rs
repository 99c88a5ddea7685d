//! The vault: everything rxvault does with PHI, over a [`Store`] that only
//! ever sees ciphertext and a [`Keyring`] that is the only holder of keys.
//!
//! # Layout
//! - [`config`]: the data directory (`rxvault.toml`, `vault.db`) and where
//!   the key lives.
//! - [`keys`]: turning a [`KeySource`] into an open keyring; creating a
//!   vault's keys; KEK rotation and re-encryption.
//! - [`records`]: sealing a FHIR resource into a store record (split by field
//!   category, blind-index tokens) and opening it again.
//! - [`import`]: the streaming import pipeline.
//! - [`export`]: FHIR and shipping exports.
//! - [`query`]: patient charts and blind-index searches.
//! - [`integrity`]: checking every record against its row without
//!   decrypting (what no single read can see: records missing from a chart
//!   or a search).
//! - [`access`]: the audited entry points (read, search, write, export on
//!   someone's behalf): no audit, no access. They are the only public way
//!   to decrypted PHI: the paths beneath them (the store, the keyring,
//!   charts, searches, record opening, shipments, import) are crate-private,
//!   reachable from tests and benchmarks only through `unaudited` (cargo
//!   feature `unaudited`, enabled by dev-dependencies only).
//!
//! **Architecture invariant:** plaintext PHI exists only in this process's
//! memory. It enters as parsed FHIR, is sealed before it is handed to the
//! store, and leaves only through an explicit export (encrypted to age
//! recipients unless the caller asks for plaintext) or a caller that prints
//! it. Logs carry counts, kinds and locations, never values.
#![deny(missing_docs)]

pub mod access;
pub mod config;
pub mod export;
pub mod import;
pub mod integrity;
pub mod keys;
pub mod query;
pub mod records;
#[cfg(feature = "unaudited")]
pub mod unaudited;

use rxvault_crypto::Keyring;
use rxvault_model::{Clock, RecordKind};
use rxvault_store::Store;
use std::path::PathBuf;
use std::sync::Arc;

pub use config::{StoreConfig, VaultConfig};
pub use keys::KeySource;

/// Errors of the vault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rxvault_store::Error),
    /// Cryptography failed (integrity, keys).
    #[error(transparent)]
    Crypto(#[from] rxvault_crypto::Error),
    /// The audit log failed: nothing was disclosed.
    #[error("audit log: {0}")]
    Audit(#[from] rxvault_audit::Error),
    /// The data directory has no vault.
    #[error(
        "{0} is not an rxvault data directory (it has no rxvault.toml); create a vault with `rxvault init --data {0}`"
    )]
    NotInitialized(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is malformed.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key is missing, wrong, or in the wrong place.
    #[error("{0}")]
    Key(String),
    /// The request cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
    /// Stored data that decrypts but is not what it claims to be.
    #[error("stored {what} is not valid: {message}")]
    Corrupt {
        /// Which record (kind and opaque key).
        what: String,
        /// What is wrong.
        message: String,
    },
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// An open vault.
pub struct Vault {
    config: VaultConfig,
    store: Arc<dyn Store>,
    keys: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    /// The pharmacy's time zone ([`Vault::today`]).
    zone: jiff::tz::TimeZone,
    /// Serialises the creation of this process's data key, so concurrent
    /// first writers create one, not several.
    dek_lock: std::sync::Mutex<()>,
    /// The audit log, opened on first use ([`Vault::audit`]).
    audit: std::sync::OnceLock<Arc<rxvault_audit::AuditLog>>,
    /// Serialises opening the audit log.
    audit_open: std::sync::Mutex<()>,
    /// The detection store, opened on first use ([`Vault::detect_store`])
    /// and dropped with the vault (off any async runtime: a PostgreSQL
    /// connection blocks when it closes).
    detect: std::sync::OnceLock<Arc<dyn rxvault_store::DetectStore>>,
}

/// The date at `at` in `zone`.
fn date_in(zone: &jiff::tz::TimeZone, at: rxvault_model::Timestamp) -> time::Date {
    let local = jiff::Timestamp::from_second(at.unix_timestamp())
        .map(|t| zone.to_datetime(t).date())
        .ok()
        .and_then(|d| {
            let month = time::Month::try_from(u8::try_from(d.month()).ok()?).ok()?;
            time::Date::from_calendar_date(i32::from(d.year()), month, u8::try_from(d.day()).ok()?)
                .ok()
        });
    // Outside either library's range (not a real clock): UTC's date.
    local.unwrap_or(at.date())
}

/// Today's date in this machine's time zone (`TZ`, else `/etc/localtime`),
/// for commands that work without a vault.
pub fn local_today(clock: &dyn Clock) -> time::Date {
    date_in(&jiff::tz::TimeZone::system(), clock.now())
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("vault_id", &self.config.vault_id)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault's configuration.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    #[cfg(feature = "unaudited")]
    /// The store (ciphertext only). Not public: the audited entry points
    /// ([`access`]) are the one door to what it holds; tests and
    /// benchmarks reach it through [`Vault::unaudited`].
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Which backend holds the vault (`sqlite`, `postgres`).
    pub fn backend(&self) -> rxvault_store::Backend {
        self.store.backend()
    }

    /// The store's schema version.
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self.store.schema_version()?)
    }

    /// The clock the vault reads time from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Today's date where the pharmacy is (its configured time zone), by
    /// the vault's clock: the day whose shipments a shipping clerk sees.
    pub fn today(&self) -> time::Date {
        date_in(&self.zone, self.clock.now())
    }

    #[cfg(feature = "unaudited")]
    /// The keyring, records included. Not public: only this crate opens
    /// records, behind its audited entry points.
    pub(crate) fn keyring(&self) -> &Arc<Keyring> {
        &self.keys
    }

    /// The vault's keys without the records ([`rxvault_crypto::Secrets`]):
    /// for the crates that seal their own data with them (the audit log,
    /// identity and access, the server's TLS key). They cannot open a
    /// record.
    pub fn secrets(&self) -> &rxvault_crypto::Secrets {
        self.keys.secrets()
    }

    /// A value of the store's metadata (settings and sealed blobs of the
    /// vault's own, never PHI).
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self.store.meta(key)?)
    }

    /// Writes values of the store's metadata, in one transaction. Only
    /// keys of the server's own settings (`tls.*`): the vault's key and
    /// format state is written by this crate alone.
    pub fn write_meta(&self, pairs: &[(&str, &str)]) -> Result<()> {
        if let Some((key, _)) = pairs.iter().find(|(k, _)| !k.starts_with("tls.")) {
            return Err(Error::Invalid(format!(
                "metadata key {key:?} is the vault's own"
            )));
        }
        self.store.write(&rxvault_store::WriteBatch {
            ops: pairs
                .iter()
                .map(|(key, value)| rxvault_store::Op::Meta {
                    key: (*key).into(),
                    value: Some((*value).into()),
                })
                .collect(),
            at: self.now_unix(),
        })?;
        Ok(())
    }

    /// Counts of records per kind.
    pub fn counts(&self) -> Result<Vec<(RecordKind, u64)>> {
        RecordKind::ALL
            .into_iter()
            .map(|k| Ok((k, self.store.count(k)?)))
            .collect()
    }

    /// Writes a consistent copy of the records database, as of one moment,
    /// to the new file `path` while the vault keeps serving, and returns
    /// the copy's record counts per kind ([`Store::backup_to`]). Ciphertext
    /// only: for backups (`rxvault-backup`), which never see a key.
    pub fn backup_records_to(&self, path: &std::path::Path) -> Result<Vec<(RecordKind, u64)>> {
        Ok(self.store.backup_to(path)?)
    }

    pub(crate) fn now_unix(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }
}
