//! What the vault's test files share.

use rxvault_model::ManualClock;
use rxvault_vault::keys::InitKey;
use rxvault_vault::{KeySource, StoreConfig, Vault};
use std::path::Path;
use std::sync::Arc;

/// A new SQLite vault under `dir` (its key file beside the data
/// directory), opened, its clock standing at `at`.
pub fn sqlite_vault(dir: &Path, at: time::OffsetDateTime) -> Vault {
    let clock = Arc::new(ManualClock::new(at));
    let data = dir.join("data");
    let key = dir.join("keys/vault.key");
    Vault::init(
        &data,
        StoreConfig::Sqlite,
        InitKey::File(Some(key.clone())),
        clock.clone(),
    )
    .unwrap();
    Vault::open(&data, Some(KeySource::File(key)), clock).unwrap()
}
