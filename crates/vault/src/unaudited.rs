//! The vault's unaudited paths, for tests and benchmarks only.
//!
//! Everything here reads or writes PHI **without an audit entry**: the
//! store, the keyring (which opens records), charts, searches, record
//! opening, shipments and import. The audited entry points in
//! [`access`](crate::access) are the one public door to decrypted PHI;
//! this module exists only with the cargo feature `unaudited`, which only
//! dev-dependencies enable (`tests/architecture.rs` fails the build's
//! tests if a normal dependency turns it on, and
//! `tests/one_door.rs` checks that without it none of these paths
//! compiles from another crate).

use crate::export::Shipments;
use crate::import::{ImportObserver, ImportOptions, ImportReport};
use crate::query::{Chart, Find};
use crate::records::{ResourceJson, SealError};
use crate::{Result, Vault, access::View};
use rxvault_crypto::Keyring;
use rxvault_fhir::Resource;
use rxvault_model::record::Patient;
use rxvault_model::{CategorySet, RecordKind, Rid};
use rxvault_store::{RecordWrite, Store, StoredRecord};
use std::path::PathBuf;
use std::sync::Arc;

/// The unaudited paths of one vault ([`Vault::unaudited`]).
#[derive(Debug, Clone, Copy)]
pub struct Unaudited<'a>(&'a Vault);

impl Vault {
    /// The unaudited paths (tests and benchmarks only: nothing done
    /// through them is audited).
    pub fn unaudited(&self) -> Unaudited<'_> {
        Unaudited(self)
    }
}

impl<'a> Unaudited<'a> {
    /// The store (ciphertext only).
    pub fn store(self) -> &'a dyn Store {
        self.0.store()
    }

    /// The keyring, records included.
    pub fn keyring(self) -> &'a Arc<Keyring> {
        self.0.keyring()
    }

    /// A patient's chart by FHIR id, decrypting `want`.
    pub fn chart(self, patient_id: &str, want: CategorySet) -> Result<Option<Chart>> {
        self.0.chart(patient_id, want)
    }

    /// A patient's chart by record key, as `view` shows it.
    pub fn chart_with(self, rid: &Rid, view: &View) -> Result<Option<Chart>> {
        self.0.chart_with(rid, view)
    }

    /// The record keys of the patients a query finds (nothing decrypted).
    pub fn find_rids(self, query: &Find) -> Result<Vec<Rid>> {
        self.0.find_rids(query)
    }

    /// The patients a query finds, decrypting `want`.
    pub fn find(self, query: &Find, want: CategorySet) -> Result<Vec<(Rid, Patient)>> {
        self.0.find(query, want)
    }

    /// The patients a query finds as FHIR resources, decrypting `want`.
    pub fn find_resources(self, query: &Find, want: CategorySet) -> Result<Vec<(Rid, Resource)>> {
        self.0.find_resources(query, want)
    }

    /// Seals a resource into a store record (nothing stored).
    pub fn seal(self, kind: RecordKind, resource: Resource) -> Result<RecordWrite, SealError> {
        self.0.seal(kind, resource)
    }

    /// Opens a stored record, decrypting `want`.
    pub fn open_record(self, record: &StoredRecord, want: CategorySet) -> Result<Resource> {
        self.0.open_record(record, want)
    }

    /// Opens a stored record as JSON text, decrypting `want`.
    pub fn open_record_json(
        self,
        record: &StoredRecord,
        want: CategorySet,
    ) -> Result<ResourceJson> {
        self.0.open_record_json(record, want)
    }

    /// The shipments of a day.
    pub fn shipments(self, date: &str) -> Result<Shipments> {
        self.0.shipments(date)
    }

    /// Imports FHIR files with no import entry.
    pub fn import(
        self,
        paths: &[PathBuf],
        options: &ImportOptions,
        observer: &mut dyn ImportObserver,
    ) -> Result<ImportReport> {
        self.0.import(paths, options, observer)
    }
}
