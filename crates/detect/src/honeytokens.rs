//! Honeytoken patients: decoys only the detector knows. They are ordinary
//! records (made by the binary through the vault's audited import, with
//! prescriptions, fills and a health plan, indistinguishable from real
//! patients to any reader, API or export); what marks them is this set of
//! record keys, kept sealed in the detection settings, which no reader of
//! records can see.

use crate::{Error, Result};
use rxvault_crypto::Secrets;
use rxvault_model::Rid;
use rxvault_store::DetectStore;
use std::collections::HashSet;

const SETTING: &str = "honeytokens";
const DOMAIN: &str = "detect-honeytokens";

/// The set (empty when none were made).
pub fn load(store: &dyn DetectStore, secrets: &Secrets) -> Result<HashSet<Rid>> {
    let Some(sealed) = store.setting(SETTING)? else {
        return Ok(HashSet::new());
    };
    let json = secrets.open_blob(DOMAIN, SETTING.as_bytes(), &sealed)?;
    let hexes: Vec<String> =
        serde_json::from_slice(&json).map_err(|e| Error::Corrupt(format!("honeytokens: {e}")))?;
    hexes
        .iter()
        .map(|h| crate::engine::parse_rid(h).map_err(Error::Corrupt))
        .collect()
}

/// Adds patients to the set; returns its size.
pub fn add(store: &dyn DetectStore, secrets: &Secrets, patients: &[Rid]) -> Result<usize> {
    let mut set = load(store, secrets)?;
    set.extend(patients.iter().copied());
    let mut hexes: Vec<String> = set.iter().map(|r| hex::encode(r.0)).collect();
    hexes.sort();
    let json = serde_json::to_vec(&hexes).map_err(|e| Error::Corrupt(e.to_string()))?;
    store.set_setting(
        SETTING,
        &secrets.seal_blob(DOMAIN, SETTING.as_bytes(), &json)?,
    )?;
    Ok(set.len())
}
