//! Sealing a FHIR resource into a store record, and opening it again.
//!
//! Sealing validates the resource (its typed view must read: required
//! elements present, types right), splits it into per-category parts by
//! content ([`rxvault_fhir::split`]: a fill's contained medication, its
//! ship-to and a phone number inside it land in three different parts),
//! seals each part, and computes the record key and blind-index tokens from
//! normalised values. Nothing that leaves this module for the store is
//! plaintext. Opening decrypts only the parts of the categories asked for
//! and merges them: a view is what its parts hold, never a filter applied
//! to more.
//!
//! What the store keeps beside an envelope and the query layer trusts (the
//! patient link, the derived flag, the blind-index entries, the data key
//! column) is bound into the envelope or checked against it on every open
//! ([`binding`], [`Vault::lookup`]): a row re-pointed at another patient, a
//! flipped flag or an index entry moved to another record is an
//! `Integrity` error, never another patient's data.

use crate::{Error, Result, Vault};
use rxvault_crypto::{Binding, Keyring, envelope};
use rxvault_fhir::{FieldError, Resource, conventions as cv, map, split};
use rxvault_model::{
    CategorySet, FieldCategory, IndexKind, IndexToken, RecordKind, Rid, normalize,
};
use rxvault_store::{IndexHit, RecordWrite, StoredRecord};
use serde_json::Value;
use zeroize::Zeroizing;

/// Why a resource could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The resource is not valid; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The vault failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// What sealing needs to know of a resource besides its content.
struct Facts {
    id: String,
    patient: Option<String>,
    derived: bool,
    index: Vec<(IndexKind, String)>,
}

fn facts(kind: RecordKind, r: &Resource) -> Result<Facts, FieldError> {
    let mut index = Vec::new();
    let mut add = |kind: IndexKind, value: Option<String>| {
        if let Some(v) = value {
            index.push((kind, v));
        }
    };
    let (id, patient) = match kind {
        RecordKind::Patient => {
            let p = map::patient(r)?;
            if let Some(day) = p.birth_date.as_deref().and_then(normalize::day) {
                for name in &p.names {
                    if let Some(family) = name.family.as_deref().and_then(normalize::name_key) {
                        add(
                            IndexKind::FamilyBirthDate,
                            Some(family_birth_date(&family, &day)),
                        );
                    }
                }
            }
            for phone in p.phones() {
                add(IndexKind::Phone, normalize::phone_digits(phone));
            }
            for identifier in &p.identifiers {
                add(
                    IndexKind::PatientIdentifier,
                    normalize::identifier_key(&identifier.value),
                );
            }
            (p.id, None)
        }
        RecordKind::Coverage => {
            let c = map::coverage(r)?;
            add(
                IndexKind::MemberId,
                c.member_id.as_deref().and_then(normalize::identifier_key),
            );
            (c.id, Some(c.patient_id))
        }
        RecordKind::Prescription => {
            let rx = map::prescription(r)?;
            add(
                IndexKind::RxNumber,
                normalize::identifier_key(&rx.rx_number),
            );
            (rx.id, Some(rx.patient_id))
        }
        RecordKind::Fill => {
            let f = map::fill(r)?;
            add(
                IndexKind::TransactionId,
                normalize::identifier_key(&f.transaction_id),
            );
            add(
                IndexKind::FillDate,
                f.fill_date.as_deref().and_then(normalize::day),
            );
            (f.id, Some(f.patient_id))
        }
        RecordKind::Allergy => {
            let a = map::allergy(r)?;
            (a.id, Some(a.patient_id))
        }
    };
    Ok(Facts {
        id,
        patient,
        derived: is_derived(r),
        index,
    })
}

/// The value indexed for a family name (normalised) and a birth day.
pub(crate) fn family_birth_date(family_key: &str, day: &str) -> String {
    format!("{family_key}|{day}")
}

/// Whether rxvault derived this resource (a Coverage taken from a claim).
pub fn is_derived(r: &Resource) -> bool {
    r.get("meta")
        .and_then(|m| m.get("tag"))
        .and_then(Value::as_array)
        .is_some_and(|tags| {
            tags.iter().any(|t| {
                t.get("system").and_then(Value::as_str) == Some(cv::DERIVED_TAG_SYSTEM)
                    && t.get("code").and_then(Value::as_str) == Some(cv::DERIVED_TAG_CODE)
            })
        })
}

impl Vault {
    /// The storage key of a record.
    pub fn rid(&self, kind: RecordKind, id: &str) -> Rid {
        self.keys.rid(kind, id)
    }

    /// The blind-index token of a raw value (normalised here as the index
    /// kind requires); `None` if nothing indexable is left.
    pub fn token(&self, kind: IndexKind, value: &str) -> Option<IndexToken> {
        let normalized = match kind {
            IndexKind::Phone => normalize::phone_digits(value),
            IndexKind::FillDate => normalize::day(value),
            IndexKind::FamilyBirthDate => {
                let (family, day) = value.split_once('|')?;
                Some(family_birth_date(
                    &normalize::name_key(family)?,
                    &normalize::day(day)?,
                ))
            }
            IndexKind::MemberId
            | IndexKind::RxNumber
            | IndexKind::TransactionId
            | IndexKind::PatientIdentifier => normalize::identifier_key(value),
        }?;
        Some(self.keys.token(kind, &normalized))
    }

    /// Validates and seals a resource of `kind` into a write for the store.
    pub(crate) fn seal(
        &self,
        kind: RecordKind,
        resource: Resource,
    ) -> Result<RecordWrite, SealError> {
        let facts = facts(kind, &resource)?;
        let place = place_of(&self.keys, kind, &facts);
        let tokens = tokens_of(&self.keys, &facts);
        let parts: Vec<(FieldCategory, Zeroizing<Vec<u8>>)> = split::split(kind, resource)
            .into_iter()
            .map(|(c, part)| (c, Zeroizing::new(part.to_bytes())))
            .collect();
        let refs: Vec<(FieldCategory, &[u8])> =
            parts.iter().map(|(c, b)| (*c, b.as_slice())).collect();
        let envelope = match self.keys.seal_record(&place, &tokens, &refs) {
            Err(rxvault_crypto::Error::DekExhausted) => {
                self.ensure_dek().map_err(SealError::Failed)?;
                self.keys
                    .seal_record(&place, &tokens, &refs)
                    .map_err(Error::from)?
            }
            other => other.map_err(Error::from)?,
        };
        let dek = Keyring::dek_of(&envelope).map_err(Error::from)?;
        Ok(RecordWrite {
            record: StoredRecord {
                kind,
                rid: place.rid,
                patient: place.patient,
                dek,
                derived: place.derived,
                envelope,
            },
            tokens,
        })
    }

    /// Opens the categories `want` of a stored record and merges them into
    /// a (possibly partial) FHIR resource.
    pub(crate) fn open_record(&self, record: &StoredRecord, want: CategorySet) -> Result<Resource> {
        let parts = self.open_parts(record, want)?;
        let resource = merge_parts(record, &parts)?;
        self.check_id(record, want, resource.get("id").and_then(Value::as_str))?;
        Ok(resource)
    }

    /// [`open_record`](Self::open_record) as JSON text: when no element is
    /// split between the categories opened (the usual case), the parts'
    /// members are joined as they were sealed, after each part is checked
    /// to be one well-formed JSON object, without building a tree of values
    /// ([`split::merge_json`]). What a read serves as is.
    pub(crate) fn open_record_json(
        &self,
        record: &StoredRecord,
        want: CategorySet,
    ) -> Result<ResourceJson> {
        let parts = self.open_parts(record, want)?;
        let bytes: Vec<&[u8]> = parts.iter().map(|(_, b)| b.as_slice()).collect();
        let merged = split::merge_json(record.kind, &bytes).map_err(|e| Error::Corrupt {
            what: what(record),
            message: match e.index {
                Some(i) => format!("{} part: {}", parts[i].0, e.message),
                None => e.message,
            },
        })?;
        self.check_id(record, want, merged.id.as_deref())?;
        Ok(ResourceJson(merged.text))
    }

    /// The categories `want` of a record, decrypted (reloading the keys once
    /// if another process added a data key since they were loaded), after
    /// its envelope is checked against what the store says of it.
    fn open_parts(
        &self,
        record: &StoredRecord,
        want: CategorySet,
    ) -> Result<Vec<(FieldCategory, Zeroizing<Vec<u8>>)>> {
        check_dek_column(record)?;
        self.with_keys(|keys| keys.open_record(&binding(record), &record.envelope, want))
    }

    /// `f` with the keyring, again after reloading the data keys if it
    /// needed one another process created.
    pub(crate) fn with_keys<T>(
        &self,
        f: impl Fn(&Keyring) -> rxvault_crypto::Result<T>,
    ) -> Result<T> {
        Ok(match f(&self.keys) {
            Err(rxvault_crypto::Error::UnknownDek(_)) => {
                self.reload_keys()?;
                f(&self.keys)?
            }
            other => other?,
        })
    }

    /// The records a blind-index lookup finds, each checked to have been
    /// sealed with that entry and with the patient link and flag the store
    /// gives it (no part is decrypted). An index row pointed at a record
    /// that does not carry it is an `Integrity` error, never a hit.
    pub(crate) fn lookup_records(
        &self,
        index: IndexKind,
        token: &IndexToken,
    ) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::new();
        for hit in self.store.lookup(index, token)? {
            // The store deletes a record's index rows with it; a row whose
            // record is gone finds nothing.
            let Some(record) = self.store.get(hit.kind, &hit.rid)? else {
                continue;
            };
            check_dek_column(&record)?;
            self.with_keys(|keys| {
                keys.check_index_entry(&binding(&record), &record.envelope, index, token)
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// The records whose blind-index entry of `index` is `token`, checked as
    /// [`lookup_records`](Self::lookup_records) does: what the server's
    /// searches and "today's fills" constraint use instead of the store's
    /// unchecked lookup.
    pub fn lookup(&self, index: IndexKind, token: &IndexToken) -> Result<Vec<IndexHit>> {
        Ok(self
            .lookup_records(index, token)?
            .into_iter()
            .map(|r| IndexHit {
                kind: r.kind,
                rid: r.rid,
            })
            .collect())
    }

    /// A record read with its identifiers must carry the id its storage key
    /// was made from.
    fn check_id(&self, record: &StoredRecord, want: CategorySet, id: Option<&str>) -> Result<()> {
        if want.contains(FieldCategory::Identifiers)
            && self.keys.rid(record.kind, id.unwrap_or_default()) != record.rid
        {
            return Err(Error::Corrupt {
                what: what(record),
                message: "its id does not match its storage key".into(),
            });
        }
        Ok(())
    }
}

/// What a stored record's envelope must be bound to: the row's own columns.
pub(crate) fn binding(record: &StoredRecord) -> Binding {
    Binding {
        kind: record.kind,
        rid: record.rid,
        patient: record.patient,
        derived: record.derived,
    }
}

/// The data key column is a copy of the envelope's (bound) DEK id, used for
/// key usage and re-encryption; a row where they differ was altered.
pub(crate) fn check_dek_column(record: &StoredRecord) -> Result<()> {
    if Keyring::dek_of(&record.envelope)? != record.dek {
        return Err(rxvault_crypto::Error::Integrity {
            what: format!("{}, data key column", what(record)),
        }
        .into());
    }
    Ok(())
}

/// Where a resource with these facts is stored, as its envelope binds it.
fn place_of(keys: &Keyring, kind: RecordKind, facts: &Facts) -> Binding {
    Binding {
        kind,
        rid: keys.rid(kind, &facts.id),
        patient: facts
            .patient
            .as_deref()
            .map(|p| keys.rid(RecordKind::Patient, p)),
        derived: facts.derived,
    }
}

fn tokens_of(keys: &Keyring, facts: &Facts) -> Vec<(IndexKind, IndexToken)> {
    facts
        .index
        .iter()
        .map(|(k, v)| (*k, keys.token(*k, v)))
        .collect()
}

/// Reseals a stored record under the keyring's active data key in the
/// current envelope format (re-encryption and the format migration).
///
/// A record in the current format keeps its parts as they are. An older
/// one is merged and split again by content ([`split::split`]): its parts
/// were split by top-level element only (format 2 and 1), so a shipping
/// part may hold a contained medication. A version 2 record keeps its
/// binding (the row's columns and the index entries it carries, all
/// authenticated by opening it). A version 1 record bound none of them, so
/// they are taken from its content, which version 1 did authenticate: the
/// patient its resource names, its derived tag, the index values it holds.
/// Returns the envelope and whether the row's columns disagreed with the
/// content (a link altered before the migration: the record is sealed to
/// its true patient, so the altered row fails every open from then on
/// instead of showing in another chart).
pub(crate) fn reseal(keys: &Keyring, record: &StoredRecord) -> Result<(Vec<u8>, bool)> {
    check_dek_column(record)?;
    let stored = binding(record);
    let parts = keys.open_record(&stored, &record.envelope, CategorySet::ALL)?;
    let version = envelope::version(&record.envelope);
    if version == Some(envelope::VERSION) {
        let refs: Vec<(FieldCategory, &[u8])> = parts.iter().map(|(c, p)| (*c, &p[..])).collect();
        let tokens = Keyring::tokens_of(&record.envelope)?;
        return Ok((keys.seal_record(&stored, &tokens, &refs)?, false));
    }
    let resource = merge_parts(record, &parts)?;
    let resplit: Vec<(FieldCategory, Zeroizing<Vec<u8>>)> =
        split::split(record.kind, resource.clone())
            .into_iter()
            .map(|(c, part)| (c, Zeroizing::new(part.to_bytes())))
            .collect();
    let refs: Vec<(FieldCategory, &[u8])> = resplit.iter().map(|(c, p)| (*c, &p[..])).collect();
    if version == Some(envelope::SPLIT_BY_ELEMENT_VERSION) {
        let tokens = Keyring::tokens_of(&record.envelope)?;
        return Ok((keys.seal_record(&stored, &tokens, &refs)?, false));
    }
    let facts = facts_of(record, &resource)?;
    let place = place_of(keys, record.kind, &facts);
    if place.rid != record.rid {
        return Err(Error::Corrupt {
            what: what(record),
            message: "its id does not match its storage key".into(),
        });
    }
    let envelope = keys.seal_record(&place, &tokens_of(keys, &facts), &refs)?;
    Ok((envelope, place != stored))
}

/// A resealed envelope and the index entries it binds.
pub(crate) type Reindexed = (Vec<u8>, Vec<(IndexKind, IndexToken)>);

/// A stored record resealed with the blind-index entries its content gives
/// under today's normalisation, and those entries; `None` when they are
/// the ones it carries (a re-index after `normalize` changed: accents).
pub(crate) fn reindex(keys: &Keyring, record: &StoredRecord) -> Result<Option<Reindexed>> {
    check_dek_column(record)?;
    let stored = binding(record);
    let parts = keys.open_record(&stored, &record.envelope, CategorySet::ALL)?;
    let facts = facts_of(record, &merge_parts(record, &parts)?)?;
    let tokens = envelope::canonical_tokens(&tokens_of(keys, &facts));
    if tokens == envelope::canonical_tokens(&Keyring::tokens_of(&record.envelope)?) {
        return Ok(None);
    }
    let refs: Vec<(FieldCategory, &[u8])> = parts.iter().map(|(c, p)| (*c, &p[..])).collect();
    Ok(Some((keys.seal_record(&stored, &tokens, &refs)?, tokens)))
}

/// What sealing needs to know of a stored record's content.
fn facts_of(record: &StoredRecord, resource: &Resource) -> Result<Facts> {
    facts(record.kind, resource).map_err(|e| Error::Corrupt {
        what: what(record),
        message: e.to_string(),
    })
}

/// A record's opened parts merged into a resource.
fn merge_parts(
    record: &StoredRecord,
    parts: &[(FieldCategory, Zeroizing<Vec<u8>>)],
) -> Result<Resource> {
    let mut decoded = Vec::with_capacity(parts.len());
    for (category, bytes) in parts {
        decoded.push(split::Part::from_bytes(bytes).map_err(|e| Error::Corrupt {
            what: what(record),
            message: format!("{category} part: {e}"),
        })?);
    }
    split::merge(record.kind, decoded).map_err(|e| Error::Corrupt {
        what: what(record),
        message: e.to_string(),
    })
}

fn what(record: &StoredRecord) -> String {
    format!("{} record {}", record.kind.table(), record.rid)
}

/// A resource as JSON text ([`Vault::open_record_json`]). PHI: never
/// logged (`Debug` shows only the length).
pub struct ResourceJson(Vec<u8>);

impl ResourceJson {
    /// The text's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The text's bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ResourceJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResourceJson({} bytes)", self.0.len())
    }
}
