//! The unwrapped keys a running process holds, and what it does with them.
//!
//! # Data keys and nonces
//! The 96-bit nonce is 32 zero bits followed by a 64-bit counter (NIST SP
//! 800-38D §8.2.1, the deterministic construction), so what matters is that
//! no counter is used twice under one data-encryption key (DEK). A vault
//! shares one DEK between its processes ([`Secrets::activate_shared`]): each
//! process reserves disjoint blocks of counters from the vault's store
//! ([`CounterSource`], a high-water mark advanced in one transaction; a
//! block handed out is never handed out again, used or not), so data keys
//! grow with data, not with processes. A DEK made for one process alone
//! ([`Secrets::activate`]) counts from zero. After [`SEALS_PER_DEK`]
//! counters the keyring refuses to seal with a DEK
//! ([`Error::DekExhausted`](crate::Error)) until a new one is activated,
//! keeping every key far below GCM's 2^32-invocation guidance.
//! DEKs written by other processes are loaded on demand
//! ([`Secrets::load`]).
//!
//! # Blind indexes
//! The index key is an HMAC-SHA256 key, separate from every DEK. Record keys
//! ([`Secrets::rid`]) and index tokens ([`Secrets::token`]) are its output
//! truncated to 128 bits, with domain separation between the two and between
//! index kinds.

use crate::envelope::{self, Envelope, TAG_LEN};
use crate::kek::Kek;
use crate::secret::SecretKey;
use crate::{Error, Result};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use rxvault_model::{CategorySet, DekId, FieldCategory, IndexKind, IndexToken, RecordKind, Rid};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// How many seals one DEK may make (a record seals one header and one part
/// per field category present, each counted).
pub const SEALS_PER_DEK: u64 = 1 << 31;

/// The id reserved for the index key.
pub const INDEX_KEY_ID: DekId = DekId(0);
/// The id reserved for the audit log's checkpoint signing key.
pub const SIGNING_KEY_ID: DekId = DekId(1);
/// Ids below this are reserved for keys with a fixed role.
const FIRST_DEK_ID: u32 = 16;

/// The format byte of a sealed blob ([`Secrets::seal_blob`]).
const BLOB_VERSION: u8 = 2;

/// What a wrapped key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Seals records.
    Data,
    /// Computes blind indexes.
    Index,
    /// Signs audit checkpoints (an Ed25519 seed).
    Signing,
}

impl KeyPurpose {
    /// The stable numeric code.
    pub fn code(self) -> u8 {
        match self {
            KeyPurpose::Data => 1,
            KeyPurpose::Index => 2,
            KeyPurpose::Signing => 3,
        }
    }

    /// The purpose with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(KeyPurpose::Data),
            2 => Some(KeyPurpose::Index),
            3 => Some(KeyPurpose::Signing),
            _ => None,
        }
    }
}

/// A key wrapped under a KEK, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The key's id.
    pub id: DekId,
    /// What it is for.
    pub purpose: KeyPurpose,
    /// The KEK version that wrapped it.
    pub kek_version: u32,
    /// Nonce, encrypted key and tag.
    pub wrapped: Vec<u8>,
}

/// A freshly generated DEK, to be persisted (its [`WrappedKey`]) before it is
/// activated.
pub struct NewDek {
    /// What to store.
    pub wrapped: WrappedKey,
    key: Arc<LessSafeKey>,
}

impl fmt::Debug for NewDek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDek")
            .field("id", &self.wrapped.id)
            .finish_non_exhaustive()
    }
}

struct Active {
    id: DekId,
    key: Arc<LessSafeKey>,
    counters: std::sync::Mutex<Counters>,
    /// Where more counters come from, for a data key shared between
    /// processes ([`Secrets::activate_shared`]); `None` for a key of this
    /// process alone, whose counters are all its own.
    source: Option<Arc<dyn CounterSource>>,
}

/// The nonce counters a process may use on its active data key:
/// `next..end`, then (shared keys) another block from the source.
#[derive(Debug, Clone, Copy)]
struct Counters {
    next: u64,
    end: u64,
    /// The size of the next block to reserve (doubling up to
    /// [`MAX_COUNTER_BLOCK`]: a short-lived process wastes little, an
    /// import asks rarely).
    block: u64,
    /// The key has no counters left anywhere.
    spent: bool,
}

/// The first block of counters a process reserves on a shared data key.
pub const FIRST_COUNTER_BLOCK: u64 = 1 << 12;
/// The largest block reserved at once.
pub const MAX_COUNTER_BLOCK: u64 = 1 << 20;

/// Hands out disjoint ranges of a shared data key's nonce counters to the
/// processes that seal with it (the vault keeps the high-water mark in its
/// store, advanced in one transaction). Counters handed out are never
/// handed out again, whether or not they were used, so no two seals under
/// one key ever share a nonce.
pub trait CounterSource: Send + Sync {
    /// Reserves `n` consecutive counters of data key `dek`; returns the
    /// first.
    fn reserve(&self, dek: DekId, n: u64) -> Result<u64>;
}

/// A freshly generated signing key, to be persisted (its [`WrappedKey`])
/// before it is installed.
pub struct NewSigner {
    /// What to store.
    pub wrapped: WrappedKey,
    pair: Arc<Ed25519KeyPair>,
}

impl fmt::Debug for NewSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSigner").finish_non_exhaustive()
    }
}

/// The keys of one open vault, for everything but records: the vault's
/// own secrets (sealed blobs: audit entry bodies, authenticator secrets,
/// break-glass reasons, the TLS key), its keyed hashes (record keys, blind
/// index tokens, audit hashes), the password pepper, checkpoint signing and
/// the data keys themselves (prepared, loaded and activated, never exposed).
///
/// It cannot open or seal a record: that is [`Keyring`]'s, and a
/// `Keyring` never leaves `rxvault-vault`, whose audited entry points are
/// the one way to decrypted PHI. A `Secrets` is what the vault hands to
/// identity and access, the audit log and the server (cheap to clone: the
/// keys are shared, never copied).
#[derive(Clone)]
pub struct Secrets(Arc<Inner>);

struct Inner {
    vault_id: String,
    kek: Box<dyn Kek>,
    index: hmac::Key,
    deks: RwLock<HashMap<DekId, Arc<LessSafeKey>>>,
    active: RwLock<Option<Arc<Active>>>,
    signer: RwLock<Option<Arc<Ed25519KeyPair>>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("vault_id", &self.0.vault_id)
            .field("kek", &self.0.kek)
            .field("deks", &self.0.deks.read().map(|d| d.len()).unwrap_or(0))
            .finish_non_exhaustive()
    }
}

/// The keys of one open vault, records included: what [`Secrets`] does
/// (through `Deref`), plus sealing and opening records and re-wrapping the
/// keys for a KEK rotation. Only `rxvault-vault` holds one (checked by
/// `tests/architecture.rs`): every decryption of a record goes through the
/// vault's audited entry points.
pub struct Keyring {
    secrets: Secrets,
    /// The oldest envelope format opened (older ones only while the vault
    /// migrates).
    oldest: AtomicU8,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Keyring {
    type Target = Secrets;
    fn deref(&self) -> &Secrets {
        &self.secrets
    }
}

fn wrap_aad(vault_id: &str, id: DekId, purpose: KeyPurpose, kek_version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + vault_id.len());
    aad.extend_from_slice(b"rxvault/wrap/v1\0");
    aad.extend_from_slice(vault_id.as_bytes());
    aad.push(0);
    aad.push(purpose.code());
    aad.extend_from_slice(&id.0.to_be_bytes());
    aad.extend_from_slice(&kek_version.to_be_bytes());
    aad
}

/// The error for a stored wrap the right KEK does not open.
fn corrupt_key(w: &WrappedKey) -> Error {
    let what = match w.purpose {
        KeyPurpose::Data => format!("wrapped data key {}", w.id),
        KeyPurpose::Index => "wrapped index key".to_string(),
        KeyPurpose::Signing => "wrapped signing key".to_string(),
    };
    Error::CorruptKey {
        what,
        kek_version: w.kek_version,
    }
}

fn aead_key(key: &SecretKey) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose()).expect("32-byte key"))
}

fn wrap(
    vault_id: &str,
    kek: &dyn Kek,
    id: DekId,
    purpose: KeyPurpose,
    key: &SecretKey,
) -> Result<WrappedKey> {
    Ok(WrappedKey {
        id,
        purpose,
        kek_version: kek.version(),
        wrapped: kek.wrap(&wrap_aad(vault_id, id, purpose, kek.version()), key)?,
    })
}

impl Secrets {
    /// A new vault's keys: a fresh index key, returned wrapped for storage.
    pub fn create(vault_id: &str, kek: Box<dyn Kek>) -> Result<(Self, WrappedKey)> {
        let index_key = SecretKey::generate()?;
        let wrapped = wrap(
            vault_id,
            kek.as_ref(),
            INDEX_KEY_ID,
            KeyPurpose::Index,
            &index_key,
        )?;
        let ring = Self::with_index_key(vault_id, kek, &index_key);
        Ok((ring, wrapped))
    }

    fn with_index_key(vault_id: &str, kek: Box<dyn Kek>, index_key: &SecretKey) -> Self {
        Self(Arc::new(Inner {
            vault_id: vault_id.to_string(),
            kek,
            index: hmac::Key::new(hmac::HMAC_SHA256, index_key.expose()),
            deks: RwLock::new(HashMap::new()),
            active: RwLock::new(None),
            signer: RwLock::new(None),
        }))
    }

    /// Opens a vault's keyring from its stored wrapped keys. Fails with
    /// [`Error::WrongKey`] if the KEK opens none of the vault's keys, and
    /// with [`Error::CorruptKey`] if it opens some but not all of them (the
    /// KEK is right; a stored wrap was altered).
    pub fn open(vault_id: &str, kek: Box<dyn Kek>, wrapped: &[WrappedKey]) -> Result<Self> {
        let index = wrapped
            .iter()
            .find(|w| w.purpose == KeyPurpose::Index && w.kek_version == kek.version())
            .ok_or(Error::WrongKey)?;
        let index_key = match kek.unwrap(
            &wrap_aad(vault_id, index.id, KeyPurpose::Index, index.kek_version),
            &index.wrapped,
        ) {
            Ok(k) => k,
            Err(Error::WrongKey) => {
                // A wrong KEK opens nothing; one that opens another of the
                // vault's keys is right, and the index key's wrap is what
                // was altered. (A vault with no other key cannot tell.)
                let opens_another = wrapped.iter().any(|w| {
                    w.kek_version == kek.version()
                        && w.purpose != KeyPurpose::Index
                        && kek
                            .unwrap(
                                &wrap_aad(vault_id, w.id, w.purpose, w.kek_version),
                                &w.wrapped,
                            )
                            .is_ok()
                });
                return Err(if opens_another {
                    corrupt_key(index)
                } else {
                    Error::WrongKey
                });
            }
            Err(e) => return Err(e),
        };
        let ring = Self::with_index_key(vault_id, kek, &index_key);
        for w in wrapped
            .iter()
            .filter(|w| w.kek_version == ring.0.kek.version())
        {
            match w.purpose {
                KeyPurpose::Data => ring.load(w)?,
                KeyPurpose::Signing => ring.load_signer(w)?,
                KeyPurpose::Index => {}
            }
        }
        Ok(ring)
    }

    /// Loads the signing key from its stored wrap.
    pub fn load_signer(&self, w: &WrappedKey) -> Result<()> {
        let seed = self.unwrap_stored(w)?;
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed.expose()).map_err(|_| Error::Integrity {
                what: "signing key".into(),
            })?;
        *self.0.signer.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(pair));
        Ok(())
    }

    /// Generates the vault's checkpoint signing key (Ed25519). Persist its
    /// wrapped form, then [`install_signer`](Self::install_signer) it.
    pub fn prepare_signer(&self) -> Result<NewSigner> {
        let seed = SecretKey::generate()?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose()).map_err(|_| Error::Random)?;
        let wrapped = wrap(
            &self.0.vault_id,
            self.0.kek.as_ref(),
            SIGNING_KEY_ID,
            KeyPurpose::Signing,
            &seed,
        )?;
        Ok(NewSigner {
            wrapped,
            pair: Arc::new(pair),
        })
    }

    /// Makes a prepared (and persisted) signing key the one this vault signs with.
    pub fn install_signer(&self, signer: NewSigner) {
        *self.0.signer.write().unwrap_or_else(|e| e.into_inner()) = Some(signer.pair);
    }

    /// The signing key's public half, if the vault has one.
    pub fn signing_public_key(&self) -> Option<[u8; 32]> {
        self.0
            .signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|p| {
                p.public_key()
                    .as_ref()
                    .try_into()
                    .expect("Ed25519 public keys are 32 bytes")
            })
    }

    /// Signs `message` with the vault's signing key (Ed25519).
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        let signer = self
            .0
            .signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Error::NoSigner)?;
        Ok(signer
            .sign(message)
            .as_ref()
            .try_into()
            .expect("Ed25519 signatures are 64 bytes"))
    }

    /// Seals an opaque value (an audit entry body, an authenticator secret)
    /// with the active DEK, binding `domain` and `id` as associated data.
    pub fn seal_blob(&self, domain: &str, id: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let (active, n) = self.reserve_nonces(1)?;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&n.to_be_bytes());
        let mut out = Vec::with_capacity(1 + 4 + 12 + plaintext.len() + TAG_LEN);
        out.push(BLOB_VERSION);
        out.extend_from_slice(&active.id.0.to_be_bytes());
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = active
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(blob_aad(domain, id, active.id)),
                &mut out[start..],
            )
            .map_err(|_| Error::DekExhausted)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a value sealed by [`seal_blob`](Self::seal_blob) with the same
    /// `domain` and `id`.
    pub fn open_blob(&self, domain: &str, id: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 1 + 4 + 12 + TAG_LEN || sealed[0] != BLOB_VERSION {
            return Err(Error::Envelope(envelope::DecodeError::Truncated(
                sealed.len(),
            )));
        }
        let dek = DekId(u32::from_be_bytes(
            sealed[1..5].try_into().expect("4 bytes"),
        ));
        let nonce: [u8; 12] = sealed[5..17].try_into().expect("12 bytes");
        let key = self
            .0
            .deks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&dek)
            .cloned()
            .ok_or(Error::UnknownDek(dek))?;
        let mut buf = Zeroizing::new(sealed[17..].to_vec());
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(blob_aad(domain, id, dek)),
                &mut buf,
            )
            .map_err(|_| Error::Integrity {
                what: format!("sealed {domain} value"),
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// The active DEK and the first of `n` consecutive nonce counters
    /// reserved on it (the nonces are never handed out again).
    fn reserve_nonces(&self, n: u64) -> Result<(Arc<Active>, u64)> {
        let active = self
            .0
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Error::DekExhausted)?;
        let mut c = active.counters.lock().unwrap_or_else(|e| e.into_inner());
        if c.spent {
            return Err(Error::DekExhausted);
        }
        if c.next + n > c.end {
            let Some(source) = &active.source else {
                c.spent = true;
                return Err(Error::DekExhausted);
            };
            let block = c.block.max(n);
            let start = source.reserve(active.id, block)?;
            if start + block > SEALS_PER_DEK {
                c.spent = true;
                return Err(Error::DekExhausted);
            }
            *c = Counters {
                next: start,
                end: start + block,
                block: (block * 2).min(MAX_COUNTER_BLOCK),
                spent: false,
            };
        }
        let first = c.next;
        c.next += n;
        drop(c);
        Ok((active, first))
    }

    /// Unwraps a stored key with this keyring's KEK. The KEK opened the
    /// index key, so a wrap it does not open was altered:
    /// [`Error::CorruptKey`], never [`Error::WrongKey`].
    fn unwrap_stored(&self, w: &WrappedKey) -> Result<SecretKey> {
        self.0
            .kek
            .unwrap(
                &wrap_aad(&self.0.vault_id, w.id, w.purpose, w.kek_version),
                &w.wrapped,
            )
            .map_err(|e| match e {
                Error::WrongKey => corrupt_key(w),
                e => e,
            })
    }

    /// The KEK version this keyring unwraps with.
    pub fn kek_version(&self) -> u32 {
        self.0.kek.version()
    }

    /// Loads a DEK another process stored.
    pub fn load(&self, w: &WrappedKey) -> Result<()> {
        let key = self.unwrap_stored(w)?;
        self.0
            .deks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(w.id, Arc::new(aead_key(&key)));
        Ok(())
    }

    /// Whether a DEK is loaded.
    pub fn has_dek(&self, id: DekId) -> bool {
        self.0
            .deks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    /// The DEK this process seals with, if one is active.
    pub fn active_dek(&self) -> Option<DekId> {
        self.0
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|a| !a.counters.lock().unwrap_or_else(|e| e.into_inner()).spent)
            .map(|a| a.id)
    }

    /// Generates a new DEK with an id not used by any key loaded. Persist its
    /// wrapped form, then [`activate`](Self::activate) it.
    pub fn prepare_dek(&self) -> Result<NewDek> {
        let rng = SystemRandom::new();
        let id = loop {
            let mut b = [0u8; 4];
            rng.fill(&mut b).map_err(|_| Error::Random)?;
            let id = DekId(u32::from_be_bytes(b));
            if id.0 >= FIRST_DEK_ID && !self.has_dek(id) {
                break id;
            }
        };
        let key = SecretKey::generate()?;
        let wrapped = wrap(
            &self.0.vault_id,
            self.0.kek.as_ref(),
            id,
            KeyPurpose::Data,
            &key,
        )?;
        Ok(NewDek {
            wrapped,
            key: Arc::new(aead_key(&key)),
        })
    }

    /// Makes a prepared (and persisted) DEK the one this process seals
    /// with, alone: its counters are all this process's.
    pub fn activate(&self, dek: NewDek) {
        let id = dek.wrapped.id;
        self.0
            .deks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, dek.key.clone());
        self.install(Active {
            id,
            key: dek.key,
            counters: std::sync::Mutex::new(Counters {
                next: 0,
                end: SEALS_PER_DEK,
                block: 0,
                spent: false,
            }),
            source: None,
        });
    }

    /// Makes a loaded DEK the one this process seals with, shared with
    /// other processes: nonce counters come in blocks from `source`, so
    /// processes never share one, and a vault does not gain a data key per
    /// process. Fails with [`Error::DekExhausted`] if the key has no
    /// counters left (the caller then makes a new one).
    pub fn activate_shared(&self, id: DekId, source: Arc<dyn CounterSource>) -> Result<()> {
        let key = self
            .0
            .deks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownDek(id))?;
        let start = source.reserve(id, FIRST_COUNTER_BLOCK)?;
        if start + FIRST_COUNTER_BLOCK > SEALS_PER_DEK {
            return Err(Error::DekExhausted);
        }
        self.install(Active {
            id,
            key,
            counters: std::sync::Mutex::new(Counters {
                next: start,
                end: start + FIRST_COUNTER_BLOCK,
                block: (FIRST_COUNTER_BLOCK * 2).min(MAX_COUNTER_BLOCK),
                spent: false,
            }),
            source: Some(source),
        });
        Ok(())
    }

    /// Installs a prepared (and persisted) DEK and makes it the shared one
    /// this process seals with ([`activate_shared`](Self::activate_shared)).
    pub fn activate_new_shared(&self, dek: NewDek, source: Arc<dyn CounterSource>) -> Result<()> {
        let id = dek.wrapped.id;
        self.0
            .deks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, dek.key);
        self.activate_shared(id, source)
    }

    fn install(&self, active: Active) {
        *self.0.active.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(active));
    }

    /// The storage key of the record of `kind` with FHIR id `id`.
    pub fn rid(&self, kind: RecordKind, id: &str) -> Rid {
        let mut ctx = hmac::Context::with_key(&self.0.index);
        ctx.update(b"rxvault/rid/v1\0");
        ctx.update(kind.fhir_type().as_bytes());
        ctx.update(b"\0");
        ctx.update(id.as_bytes());
        Rid(truncate(ctx.sign().as_ref()))
    }

    /// The blind-index token of an (already normalised) value.
    pub fn token(&self, kind: IndexKind, normalized: &str) -> IndexToken {
        let mut ctx = hmac::Context::with_key(&self.0.index);
        ctx.update(b"rxvault/index/v1\0");
        ctx.update(kind.name().as_bytes());
        ctx.update(b"\0");
        ctx.update(normalized.as_bytes());
        IndexToken(truncate(ctx.sign().as_ref()))
    }

    /// The secret mixed into password hashes, derived from the index key
    /// (which lives as long as the vault: rotating the KEK re-wraps it, so
    /// stored hashes stay valid).
    pub fn password_pepper(&self) -> crate::password::Pepper {
        let tag = hmac::sign(&self.0.index, b"rxvault/password-pepper/v1");
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        crate::password::Pepper::from_bytes(bytes)
    }

    /// A keyed hash (16 bytes) of `value` in `domain`, for blind indexes
    /// outside the PHI record tables (audit entries: actor, session, host,
    /// address). Domains are separate from each other and from
    /// [`token`](Self::token) and [`rid`](Self::rid).
    pub fn keyed_hash(&self, domain: &str, value: &[u8]) -> [u8; 16] {
        let mut ctx = hmac::Context::with_key(&self.0.index);
        ctx.update(b"rxvault/keyed/v1\0");
        ctx.update(domain.as_bytes());
        ctx.update(b"\0");
        ctx.update(value);
        truncate(ctx.sign().as_ref())
    }
}

impl Keyring {
    /// A new vault's keyring: a fresh index key, returned wrapped for storage.
    pub fn create(vault_id: &str, kek: Box<dyn Kek>) -> Result<(Self, WrappedKey)> {
        let (secrets, wrapped) = Secrets::create(vault_id, kek)?;
        Ok((Self::with(secrets), wrapped))
    }

    /// Opens a vault's keyring from its stored wrapped keys (see
    /// [`Secrets::open`]).
    pub fn open(vault_id: &str, kek: Box<dyn Kek>, wrapped: &[WrappedKey]) -> Result<Self> {
        Secrets::open(vault_id, kek, wrapped).map(Self::with)
    }

    fn with(secrets: Secrets) -> Self {
        Self {
            secrets,
            oldest: AtomicU8::new(envelope::VERSION),
        }
    }

    /// The keys without the records: what the vault hands to the crates
    /// beside it.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Rewraps every stored key of this keyring's KEK version (index key,
    /// DEKs, signing key) under `new_kek`, for a KEK rotation. The caller
    /// stores the result and opens a new keyring with the new KEK.
    pub fn rewrap(&self, new_kek: &dyn Kek, stored: &[WrappedKey]) -> Result<Vec<WrappedKey>> {
        stored
            .iter()
            .filter(|w| w.kek_version == self.secrets.0.kek.version())
            .map(|w| {
                let key = self.secrets.unwrap_stored(w)?;
                wrap(&self.secrets.0.vault_id, new_kek, w.id, w.purpose, &key)
            })
            .collect()
    }

    /// Seals a record's parts (categories strictly increasing) with the
    /// active DEK, returning a version 3 envelope that binds `place` and
    /// the record's blind-index entries `tokens` (see [`envelope`]).
    pub fn seal_record(
        &self,
        place: &Binding,
        tokens: &[(IndexKind, IndexToken)],
        parts: &[(FieldCategory, &[u8])],
    ) -> Result<Vec<u8>> {
        self.seal_record_as(envelope::VERSION, place, tokens, parts)
    }

    /// [`seal_record`](Self::seal_record) in format `version` (2 or 3).
    fn seal_record_as(
        &self,
        version: u8,
        place: &Binding,
        tokens: &[(IndexKind, IndexToken)],
        parts: &[(FieldCategory, &[u8])],
    ) -> Result<Vec<u8>> {
        if parts.is_empty() || parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Error::Envelope(envelope::DecodeError::Order));
        }
        let tokens = envelope::canonical_tokens(tokens);
        if tokens.len() > envelope::MAX_TOKENS {
            return Err(Error::Envelope(envelope::DecodeError::Tokens));
        }
        // One nonce for the header, then one per part.
        let (active, first) = self.reserve_nonces(parts.len() as u64 + 1)?;
        let nonce_at = |i: u64| {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(first + i).to_be_bytes());
            nonce
        };
        let bits = envelope::bits(parts.iter().map(|(c, _)| *c));
        let binding = place.aad(version, active.id, bits, &tokens);
        let header_nonce = nonce_at(0);
        let header_tag = active
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(header_nonce),
                Aad::from(envelope::header_aad(&binding)),
                &mut [],
            )
            .map_err(|_| Error::DekExhausted)?;
        let header = envelope::HeaderTag {
            nonce: header_nonce,
            tag: header_tag.as_ref().try_into().expect("16-byte tag"),
        };
        let capacity = parts
            .iter()
            .map(|(_, p)| envelope::PART_HEADER_LEN + p.len() + TAG_LEN)
            .sum();
        let mut out = envelope::begin_as(
            version,
            active.id,
            parts.len() as u8,
            &tokens,
            &header,
            capacity,
        );
        for (i, (category, plaintext)) in parts.iter().enumerate() {
            let nonce = nonce_at(1 + i as u64);
            envelope::push_part_header(&mut out, *category, &nonce, plaintext.len() + TAG_LEN);
            let start = out.len();
            out.extend_from_slice(plaintext);
            let tag = active
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(envelope::part_aad(&binding, *category)),
                    &mut out[start..],
                )
                .map_err(|_| Error::DekExhausted)?;
            out.extend_from_slice(tag.as_ref());
        }
        Ok(out)
    }

    /// Opens the parts of a record in `want` (others stay sealed: a role
    /// that may not see a category never has it decrypted). `place` is what
    /// the store says about the record; a version 2 or 3 envelope's header
    /// is checked against it first, whatever `want` is. Any part that fails
    /// authentication fails the whole call. Envelopes older than the
    /// current format are refused unless the vault is migrating
    /// ([`accept_formats_from`](Self::accept_formats_from)).
    pub fn open_record(
        &self,
        place: &Binding,
        sealed: &[u8],
        want: CategorySet,
    ) -> Result<Vec<(FieldCategory, Zeroizing<Vec<u8>>)>> {
        let env: Envelope<'_> = envelope::decode(sealed)?;
        if env.version < self.oldest.load(Ordering::Relaxed) {
            return Err(self.superseded(place, env.version));
        }
        let key = self.key_of(&env)?;
        let bits = env.category_bits();
        let integrity = |what: &dyn fmt::Display| Error::Integrity {
            what: format!("{} record {}, {what}", place.kind.table(), place.rid),
        };
        let binding = match env.header {
            Some(header) => {
                let binding = place.aad(env.version, env.dek, bits, &env.tokens);
                check_header(&key, &binding, &header).map_err(|()| integrity(&"header"))?;
                Some(binding)
            }
            None => None,
        };
        let mut out = Vec::with_capacity(env.parts.len());
        for part in env.parts.iter().filter(|p| want.contains(p.category)) {
            let aad = match &binding {
                Some(b) => envelope::part_aad(b, part.category),
                None => envelope::part_aad_v1(
                    place.kind.table(),
                    &place.rid,
                    env.dek,
                    bits,
                    part.category,
                ),
            };
            let mut buf = Zeroizing::new(part.ciphertext.to_vec());
            let len = key
                .open_in_place(
                    Nonce::assume_unique_for_key(part.nonce),
                    Aad::from(&aad),
                    &mut buf,
                )
                .map_err(|_| integrity(&part.category))?
                .len();
            buf.truncate(len);
            out.push((part.category, buf));
        }
        Ok(out)
    }

    /// Checks, without decrypting anything, that a record is what the store
    /// says (`place`): its header authenticates against the row's patient
    /// link and flag. Returns the (now authenticated) index entries it
    /// carries, or `None` for a version 1 record while migrating, which
    /// binds none of these.
    pub fn check_record(
        &self,
        place: &Binding,
        sealed: &[u8],
    ) -> Result<Option<Vec<(IndexKind, IndexToken)>>> {
        let env: Envelope<'_> = envelope::decode(sealed)?;
        if env.version < self.oldest.load(Ordering::Relaxed) {
            return Err(self.superseded(place, env.version));
        }
        let Some(header) = env.header else {
            return Ok(None);
        };
        let key = self.key_of(&env)?;
        check_header(
            &key,
            &place.aad(env.version, env.dek, env.category_bits(), &env.tokens),
            &header,
        )
        .map_err(|()| Error::Integrity {
            what: format!("{} record {}, header", place.kind.table(), place.rid),
        })?;
        Ok(Some(env.tokens))
    }

    /// Checks, without decrypting anything, that a record is what the store
    /// says (`place`, see [`check_record`](Self::check_record)) and carries
    /// the blind-index entry `(index, token)` a lookup found it by: an index
    /// row pointed at a record that was not sealed with it is an
    /// [`Error::Integrity`].
    pub fn check_index_entry(
        &self,
        place: &Binding,
        sealed: &[u8],
        index: IndexKind,
        token: &IndexToken,
    ) -> Result<()> {
        match self.check_record(place, sealed)? {
            Some(tokens) if !tokens.contains(&(index, *token)) => Err(Error::Integrity {
                what: format!(
                    "{} record {}, {} index entry (the record was not sealed with it)",
                    place.kind.table(),
                    place.rid,
                    index.name()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The blind-index entries a sealed record carries (not authenticated
    /// here: [`open_record`](Self::open_record) authenticates them).
    pub fn tokens_of(sealed: &[u8]) -> Result<Vec<(IndexKind, IndexToken)>> {
        Ok(envelope::decode(sealed)?.tokens)
    }

    /// The oldest envelope format this keyring opens: the current one
    /// ([`envelope::VERSION`]) by default; the vault lowers it only while it
    /// migrates its records (to 1 from a vault in format 1, to 2 from one
    /// in format 2), so an old-format row swapped in afterwards is refused:
    /// a version 1 record binds neither the patient link, the derived flag
    /// nor the index entries, and a version 2 record's parts were split by
    /// top-level element (a shipping part holding a contained medication).
    pub fn accept_formats_from(&self, version: u8) {
        self.oldest
            .store(version.min(envelope::VERSION), Ordering::Relaxed);
    }

    fn superseded(&self, place: &Binding, version: u8) -> Error {
        Error::Integrity {
            what: format!(
                "{} record {} (sealed in envelope format {version}, which this vault no longer accepts)",
                place.kind.table(),
                place.rid,
            ),
        }
    }

    fn key_of(&self, env: &Envelope<'_>) -> Result<Arc<LessSafeKey>> {
        self.secrets
            .0
            .deks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&env.dek)
            .cloned()
            .ok_or(Error::UnknownDek(env.dek))
    }

    /// The categories present in a sealed record, without decrypting it.
    pub fn categories(sealed: &[u8]) -> Result<CategorySet> {
        Ok(envelope::decode(sealed)?
            .parts
            .iter()
            .map(|p| p.category)
            .collect())
    }

    /// The DEK a sealed record was sealed with.
    pub fn dek_of(sealed: &[u8]) -> Result<DekId> {
        Ok(envelope::decode(sealed)?.dek)
    }
}

/// Where a record is stored and what, stored beside its envelope, decides
/// who sees it: what a version 2 or 3 envelope binds besides its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// Its kind (the table).
    pub kind: RecordKind,
    /// Its record key.
    pub rid: Rid,
    /// The patient it belongs to (none for patients): what a chart is
    /// assembled by.
    pub patient: Option<Rid>,
    /// Whether it is derived (a Coverage taken from a claim, which a real
    /// one replaces).
    pub derived: bool,
}

impl Binding {
    fn aad(
        &self,
        version: u8,
        dek: DekId,
        bits: u16,
        tokens: &[(IndexKind, IndexToken)],
    ) -> Vec<u8> {
        envelope::binding(
            version,
            self.kind.table(),
            &self.rid,
            dek,
            bits,
            self.patient.as_ref(),
            self.derived,
            tokens,
        )
    }
}

/// Authenticates a version 2 or 3 header: its tag is GCM over the empty string
/// with the header's associated data.
fn check_header(
    key: &LessSafeKey,
    binding: &[u8],
    header: &envelope::HeaderTag,
) -> std::result::Result<(), ()> {
    let mut tag = header.tag;
    key.open_in_place(
        Nonce::assume_unique_for_key(header.nonce),
        Aad::from(envelope::header_aad(binding)),
        &mut tag,
    )
    .map(|_| ())
    .map_err(|_| ())
}

fn blob_aad(domain: &str, id: &[u8], dek: DekId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(24 + domain.len() + id.len());
    aad.extend_from_slice(b"rxvault/blob/v1\0");
    aad.extend_from_slice(domain.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&(id.len() as u32).to_be_bytes());
    aad.extend_from_slice(id);
    aad.extend_from_slice(&dek.0.to_be_bytes());
    aad
}

/// Verifies an Ed25519 signature (no key material needed: anyone holding
/// the public key can check a checkpoint).
pub fn verify_signature(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// SHA-256 of a file's content, streamed (the agent's allow-list checks
/// executables by path and hash).
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes"))
}

fn truncate(mac: &[u8]) -> [u8; 16] {
    mac[..16].try_into().expect("HMAC-SHA256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kek::LocalKek;

    fn ring() -> (Keyring, Vec<WrappedKey>, SecretKey) {
        let kek_key = SecretKey::generate().unwrap();
        let (ring, index) =
            Keyring::create("v1", Box::new(LocalKek::new(1, kek_key.clone()))).unwrap();
        let dek = ring.prepare_dek().unwrap();
        let stored = vec![index, dek.wrapped.clone()];
        ring.activate(dek);
        (ring, stored, kek_key)
    }

    const C: FieldCategory = FieldCategory::Contact;
    const D: FieldCategory = FieldCategory::Demographics;

    fn at(kind: RecordKind, rid: Rid) -> Binding {
        Binding {
            kind,
            rid,
            patient: None,
            derived: false,
        }
    }

    #[test]
    fn seal_open_round_trip_and_partial_open() {
        let (ring, _, _) = ring();
        let rid = ring.rid(RecordKind::Patient, "p1");
        let sealed = ring
            .seal_record(
                &at(RecordKind::Patient, rid),
                &[],
                &[(D, b"name"), (C, b"addr")],
            )
            .unwrap();
        let all = ring
            .open_record(&at(RecordKind::Patient, rid), &sealed, CategorySet::ALL)
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(&all[0].1[..], b"name");
        assert_eq!(&all[1].1[..], b"addr");
        let only = ring
            .open_record(
                &at(RecordKind::Patient, rid),
                &sealed,
                CategorySet::of(&[C]),
            )
            .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].0, C);
        assert!(
            ring.seal_record(&at(RecordKind::Patient, rid), &[], &[(C, b"x"), (D, b"y")])
                .is_err()
        );
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let (ring, _, _) = ring();
        let rid = ring.rid(RecordKind::Fill, "f1");
        let sealed = ring
            .seal_record(&at(RecordKind::Fill, rid), &[], &[(D, b"a"), (C, b"bc")])
            .unwrap();
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut t = sealed.clone();
                t[i] ^= 1 << bit;
                let r = ring.open_record(&at(RecordKind::Fill, rid), &t, CategorySet::ALL);
                assert!(r.is_err(), "flip of byte {i} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn moved_or_cut_ciphertexts_fail() {
        let (ring, _, _) = ring();
        let a = ring.rid(RecordKind::Patient, "a");
        let b = ring.rid(RecordKind::Patient, "b");
        let sealed = ring
            .seal_record(&at(RecordKind::Patient, a), &[], &[(D, b"x"), (C, b"y")])
            .unwrap();
        assert!(matches!(
            ring.open_record(&at(RecordKind::Patient, b), &sealed, CategorySet::ALL),
            Err(Error::Integrity { .. })
        ));
        assert!(matches!(
            ring.open_record(&at(RecordKind::Fill, a), &sealed, CategorySet::ALL),
            Err(Error::Integrity { .. })
        ));
        // Drop the second part and fix the count: the category set in the AAD no longer matches.
        let mut env = envelope::decode(&sealed).unwrap();
        env.parts.truncate(1);
        let cut = envelope::encode(&env);
        assert!(matches!(
            ring.open_record(&at(RecordKind::Patient, a), &cut, CategorySet::ALL),
            Err(Error::Integrity { .. })
        ));
    }

    /// A version 1 envelope, as rxvault wrote before the patient link was
    /// bound (the parts' associated data of [`envelope::part_aad_v1`]).
    fn seal_v1(
        ring: &Keyring,
        kind: RecordKind,
        rid: &Rid,
        parts: &[(FieldCategory, &[u8])],
    ) -> Vec<u8> {
        let (active, first) = ring.reserve_nonces(parts.len() as u64).unwrap();
        let bits = envelope::bits(parts.iter().map(|(c, _)| *c));
        let mut out = vec![envelope::LEGACY_VERSION];
        out.extend_from_slice(&active.id.0.to_be_bytes());
        out.push(parts.len() as u8);
        for (i, (category, plaintext)) in parts.iter().enumerate() {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(first + i as u64).to_be_bytes());
            envelope::push_part_header(&mut out, *category, &nonce, plaintext.len() + TAG_LEN);
            let start = out.len();
            out.extend_from_slice(plaintext);
            let aad = envelope::part_aad_v1(kind.table(), rid, active.id, bits, *category);
            let tag = active
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad),
                    &mut out[start..],
                )
                .unwrap();
            out.extend_from_slice(tag.as_ref());
        }
        out
    }

    #[test]
    fn the_patient_link_derived_flag_and_index_entries_are_bound() {
        let (ring, _, _) = ring();
        let rid = ring.rid(RecordKind::Allergy, "a1");
        let (p, q) = (
            ring.rid(RecordKind::Patient, "p"),
            ring.rid(RecordKind::Patient, "q"),
        );
        let place = Binding {
            kind: RecordKind::Allergy,
            rid,
            patient: Some(p),
            derived: false,
        };
        let date = ring.token(IndexKind::FillDate, "2026-11-28");
        let other_day = ring.token(IndexKind::FillDate, "2026-11-27");
        let sealed = ring
            .seal_record(
                &place,
                &[(IndexKind::FillDate, date)],
                &[(FieldCategory::Clinical, b"{}")],
            )
            .unwrap();
        assert!(ring.open_record(&place, &sealed, CategorySet::ALL).is_ok());
        for wrong in [
            Binding {
                patient: Some(q),
                ..place
            },
            Binding {
                patient: None,
                ..place
            },
            Binding {
                derived: true,
                ..place
            },
        ] {
            // Checked whatever is asked for: also when no category is opened.
            for want in [CategorySet::ALL, CategorySet::of(&[])] {
                let err = ring.open_record(&wrong, &sealed, want).unwrap_err();
                assert!(
                    matches!(&err, Error::Integrity { what } if what.ends_with("header")),
                    "{err}"
                );
            }
            assert!(
                ring.check_index_entry(&wrong, &sealed, IndexKind::FillDate, &date)
                    .is_err()
            );
        }
        ring.check_index_entry(&place, &sealed, IndexKind::FillDate, &date)
            .unwrap();
        let err = ring
            .check_index_entry(&place, &sealed, IndexKind::FillDate, &other_day)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Integrity { what } if what.ends_with("fill-date index entry (the record was not sealed with it)")),
            "{err}"
        );
        // An entry added to the envelope's clear list fails its header.
        let mut env = envelope::decode(&sealed).unwrap();
        env.tokens = envelope::canonical_tokens(&[
            (IndexKind::FillDate, date),
            (IndexKind::FillDate, other_day),
        ]);
        let grown = envelope::encode(&env);
        assert!(
            ring.check_index_entry(&place, &grown, IndexKind::FillDate, &other_day)
                .is_err()
        );
        assert!(ring.open_record(&place, &grown, CategorySet::ALL).is_err());
    }

    #[test]
    fn version_1_records_open_only_while_migrating() {
        let (ring, _, _) = ring();
        let rid = ring.rid(RecordKind::Allergy, "a1");
        let place = Binding {
            kind: RecordKind::Allergy,
            rid,
            patient: Some(ring.rid(RecordKind::Patient, "p")),
            derived: false,
        };
        let v1 = seal_v1(
            &ring,
            RecordKind::Allergy,
            &rid,
            &[(FieldCategory::Clinical, b"{\"a\":1}")],
        );
        let err = ring.open_record(&place, &v1, CategorySet::ALL).unwrap_err();
        assert!(err.to_string().contains("no longer accepts"), "{err}");
        ring.accept_formats_from(envelope::SPLIT_BY_ELEMENT_VERSION);
        assert!(ring.open_record(&place, &v1, CategorySet::ALL).is_err());
        ring.accept_formats_from(envelope::LEGACY_VERSION);
        let parts = ring.open_record(&place, &v1, CategorySet::ALL).unwrap();
        assert_eq!(&parts[0].1[..], b"{\"a\":1}");
        // Still bound to table and record key.
        assert!(
            ring.open_record(
                &at(RecordKind::Allergy, ring.rid(RecordKind::Allergy, "a2")),
                &v1,
                CategorySet::ALL
            )
            .is_err()
        );
        ring.accept_formats_from(envelope::VERSION);
        assert!(ring.open_record(&place, &v1, CategorySet::ALL).is_err());
    }

    #[test]
    fn version_2_records_open_only_while_migrating_and_stay_bound() {
        let (ring, _, _) = ring();
        let rid = ring.rid(RecordKind::Fill, "f1");
        let place = Binding {
            kind: RecordKind::Fill,
            rid,
            patient: Some(ring.rid(RecordKind::Patient, "p")),
            derived: false,
        };
        let tokens = [(
            IndexKind::FillDate,
            ring.token(IndexKind::FillDate, "2026-11-28"),
        )];
        let parts = [(FieldCategory::Shipping, &b"{\"contained\":[]}"[..])];
        let v2 = ring
            .seal_record_as(envelope::SPLIT_BY_ELEMENT_VERSION, &place, &tokens, &parts)
            .unwrap();
        assert_eq!(envelope::version(&v2), Some(2));
        let err = ring.open_record(&place, &v2, CategorySet::ALL).unwrap_err();
        assert!(
            err.to_string()
                .contains("format 2, which this vault no longer accepts"),
            "{err}"
        );
        assert!(ring.check_record(&place, &v2).is_err());
        ring.accept_formats_from(envelope::SPLIT_BY_ELEMENT_VERSION);
        assert_eq!(
            &ring.open_record(&place, &v2, CategorySet::ALL).unwrap()[0].1[..],
            parts[0].1
        );
        assert_eq!(
            ring.check_record(&place, &v2).unwrap(),
            Some(tokens.to_vec())
        );
        // Relabelled as version 3, it does not authenticate: the format
        // version is bound.
        let mut relabelled = v2.clone();
        relabelled[0] = envelope::VERSION;
        assert!(matches!(
            ring.open_record(&place, &relabelled, CategorySet::ALL),
            Err(Error::Integrity { .. })
        ));
        let other = Binding {
            patient: Some(ring.rid(RecordKind::Patient, "q")),
            ..place
        };
        assert!(ring.open_record(&other, &v2, CategorySet::ALL).is_err());
        ring.accept_formats_from(envelope::VERSION);
        assert!(ring.open_record(&place, &v2, CategorySet::ALL).is_err());
    }

    #[test]
    fn a_corrupt_wrap_is_named_and_not_a_wrong_key() {
        let (ring, mut stored, kek_key) = ring();
        let signer = ring.prepare_signer().unwrap();
        stored.push(signer.wrapped.clone());
        let kek = || Box::new(LocalKek::new(1, kek_key.clone()));
        for (i, expected) in [
            (1, "wrapped data key"),
            (0, "wrapped index key"),
            (2, "wrapped signing key"),
        ] {
            let mut bad = stored.clone();
            let last = bad[i].wrapped.len() - 1;
            bad[i].wrapped[last] ^= 1;
            let err = Keyring::open("v1", kek(), &bad).unwrap_err();
            assert!(
                matches!(&err, Error::CorruptKey { what, kek_version: 1 } if what.starts_with(expected)),
                "{expected}: {err}"
            );
            assert!(err.to_string().contains("does not authenticate"), "{err}");
            // A wrong KEK is still a wrong KEK, whatever else is corrupt.
            let wrong = Keyring::open(
                "v1",
                Box::new(LocalKek::new(1, SecretKey::generate().unwrap())),
                &bad,
            );
            assert!(matches!(wrong, Err(Error::WrongKey)));
        }
        // Rewrapping (a KEK rotation) names the corrupt wrap too.
        let mut bad = stored.clone();
        bad[1].wrapped[0] ^= 1;
        let err = ring
            .rewrap(&LocalKek::new(2, SecretKey::generate().unwrap()), &bad)
            .unwrap_err();
        assert!(matches!(err, Error::CorruptKey { .. }), "{err}");
    }

    #[test]
    fn reopen_with_stored_keys_and_reject_wrong_kek() {
        let (ring, stored, kek_key) = ring();
        let rid = ring.rid(RecordKind::Patient, "p");
        let sealed = ring
            .seal_record(&at(RecordKind::Patient, rid), &[], &[(D, b"z")])
            .unwrap();
        let again =
            Keyring::open("v1", Box::new(LocalKek::new(1, kek_key.clone())), &stored).unwrap();
        assert_eq!(again.rid(RecordKind::Patient, "p"), rid);
        assert_eq!(
            &again
                .open_record(&at(RecordKind::Patient, rid), &sealed, CategorySet::ALL)
                .unwrap()[0]
                .1[..],
            b"z"
        );
        let wrong = Keyring::open(
            "v1",
            Box::new(LocalKek::new(1, SecretKey::generate().unwrap())),
            &stored,
        );
        assert!(matches!(wrong, Err(Error::WrongKey)));
        let other_vault = Keyring::open("v2", Box::new(LocalKek::new(1, kek_key)), &stored);
        assert!(matches!(other_vault, Err(Error::WrongKey)));
    }

    #[test]
    fn rewrap_under_new_kek() {
        let (ring, stored, _) = ring();
        let rid = ring.rid(RecordKind::Patient, "p");
        let sealed = ring
            .seal_record(&at(RecordKind::Patient, rid), &[], &[(D, b"z")])
            .unwrap();
        let new_key = SecretKey::generate().unwrap();
        let new_kek = LocalKek::new(2, new_key.clone());
        let rewrapped = ring.rewrap(&new_kek, &stored).unwrap();
        assert!(rewrapped.iter().all(|w| w.kek_version == 2));
        let reopened =
            Keyring::open("v1", Box::new(LocalKek::new(2, new_key)), &rewrapped).unwrap();
        assert!(
            reopened
                .open_record(&at(RecordKind::Patient, rid), &sealed, CategorySet::ALL)
                .is_ok()
        );
    }

    #[test]
    fn tokens_are_domain_separated() {
        let (ring, _, _) = ring();
        assert_ne!(
            ring.token(IndexKind::Phone, "1"),
            ring.token(IndexKind::MemberId, "1")
        );
        assert_eq!(
            ring.token(IndexKind::Phone, "1"),
            ring.token(IndexKind::Phone, "1")
        );
        assert_ne!(
            ring.rid(RecordKind::Patient, "1"),
            ring.rid(RecordKind::Coverage, "1")
        );
    }

    #[test]
    fn nonces_never_repeat_within_a_dek() {
        let (ring, _, _) = ring();
        let rid = ring.rid(RecordKind::Patient, "p");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let sealed = ring
                .seal_record(&at(RecordKind::Patient, rid), &[], &[(D, b"a"), (C, b"b")])
                .unwrap();
            for p in envelope::decode(&sealed).unwrap().parts {
                assert!(seen.insert(p.nonce));
            }
        }
    }

    /// AES-256-GCM known-answer test (NIST GCM spec test case 16, McGrew &
    /// Viega), through the same ring API the keyring uses.
    #[test]
    fn aes_256_gcm_known_answer() {
        let key = hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .unwrap();
        let iv = hex::decode("cafebabefacedbaddecaf888").unwrap();
        let pt = hex::decode("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39").unwrap();
        let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let expected_ct = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
        let expected_tag = "76fc6ece0f4e1768cddf8853bb2d551b";
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
        let mut buf = pt.clone();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::try_assume_unique_for_key(&iv).unwrap(),
                Aad::from(&aad),
                &mut buf,
            )
            .unwrap();
        assert_eq!(hex::encode(&buf), expected_ct);
        assert_eq!(hex::encode(tag.as_ref()), expected_tag);
        buf.extend_from_slice(tag.as_ref());
        let opened = key
            .open_in_place(
                Nonce::try_assume_unique_for_key(&iv).unwrap(),
                Aad::from(&aad),
                &mut buf,
            )
            .unwrap();
        assert_eq!(opened, pt.as_slice());
    }

    #[test]
    fn signing_key_survives_reopen_and_rewrap() {
        let (ring, mut stored, kek_key) = ring();
        let signer = ring.prepare_signer().unwrap();
        stored.push(signer.wrapped.clone());
        ring.install_signer(signer);
        let public = ring.signing_public_key().unwrap();
        let sig = ring.sign(b"checkpoint").unwrap();
        assert!(verify_signature(&public, b"checkpoint", &sig));
        assert!(!verify_signature(&public, b"checkpoinT", &sig));
        let again = Keyring::open("v1", Box::new(LocalKek::new(1, kek_key)), &stored).unwrap();
        assert_eq!(again.signing_public_key(), Some(public));
        let new_key = SecretKey::generate().unwrap();
        let rewrapped = again
            .rewrap(&LocalKek::new(2, new_key.clone()), &stored)
            .unwrap();
        let third = Keyring::open("v1", Box::new(LocalKek::new(2, new_key)), &rewrapped).unwrap();
        assert_eq!(third.signing_public_key(), Some(public));
    }

    #[test]
    fn blobs_bind_domain_and_id() {
        let (ring, _, _) = ring();
        let sealed = ring.seal_blob("audit", b"42", b"secret body").unwrap();
        assert_eq!(
            &ring.open_blob("audit", b"42", &sealed).unwrap()[..],
            b"secret body"
        );
        assert!(ring.open_blob("audit", b"43", &sealed).is_err());
        assert!(ring.open_blob("totp", b"42", &sealed).is_err());
        let mut t = sealed.clone();
        *t.last_mut().unwrap() ^= 1;
        assert!(ring.open_blob("audit", b"42", &t).is_err());
        assert!(ring.open_blob("audit", b"42", &sealed[..10]).is_err());
    }

    /// FIPS 180-2 "abc" vector for SHA-256 (the audit log's tree hash).
    #[test]
    fn sha256_file_matches_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        assert_eq!(sha256_file(&path).unwrap(), sha256(&[&data]));
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            hex::encode(sha256(&[b"a", b"bc"])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// RFC 8032 §7.1 test 1 for Ed25519 (checkpoint signatures).
    #[test]
    fn ed25519_known_answer() {
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        assert_eq!(
            hex::encode(pair.public_key().as_ref()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = pair.sign(b"");
        assert_eq!(
            hex::encode(sig.as_ref()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        assert!(verify_signature(&public, b"", sig.as_ref()));
    }

    /// RFC 4231 test case 2 for HMAC-SHA256, the blind-index primitive.
    #[test]
    fn hmac_sha256_known_answer() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
