//! Creating a vault's keys, opening them, and rotating the KEK.
//!
//! # Where the KEK comes from
//! A [`KeySource`]: a key file (default location outside the data
//! directory, see [`crate::config::default_key_file`]) or a passphrase
//! stretched with Argon2id (parameters and salt stored in the vault, per KEK
//! version). The vault's metadata records which kind it uses and the current
//! KEK version; a key that does not unwrap the vault's index key is refused
//! with a message that says which of key file or passphrase was wrong.
//!
//! # Rotation
//! `rxvault keys rotate` moves the vault to KEK version n+1 in steps that
//! are each atomic and recorded in `meta.rotation`, so a crash at any point
//! is resumed by running the command again:
//!
//! 1. **started**: the new KEK exists (appended to the key file, or its KDF
//!    salt stored for a passphrase);
//! 2. **switched**: every wrapped key is rewrapped under n+1 and the
//!    vault's current version is n+1 (one transaction);
//! 3. **re-encrypting** (optional): every record is resealed under a fresh
//!    DEK, page by page, the cursor committed with each page; records
//!    written concurrently are never overwritten (compare-and-swap);
//! 4. **done**: wraps under n are deleted, but only for keys that have an
//!    n+1 wrap (a key some other process created under n meanwhile is
//!    rewrapped first, never lost), and n is removed from the key file.
//!
//! A rotation audits itself in the vault's log ([`rotate`]): a `key-admin`
//! entry ([`rxvault_audit::KeyRotation`]) durable before the first change
//! (started, or resumed with the phase found), and one at the end (finished
//! with its counts, or failed with why). Its entries are sealed under the
//! vault's shared data key (made under KEK n before the rewrap if the vault
//! had none, or, on a resumed run, rewrapped as a straggler), so they open
//! under n+1.
//!
//! # Envelope format migration
//! [`Vault::open`] reseals every record of a vault written before envelope
//! format 3 with the same page-by-page compare-and-swap pass as
//! re-encryption, its cursor in `meta.record_migration`: format 1 did not
//! bind the patient link, the derived flag and the index entries, format 2
//! split records by top-level element only (a fill's contained medication
//! and the patient's id in its shipping part); see
//! `rxvault_crypto::envelope`. Then `meta.record_format` is `3` and older
//! envelopes are refused.

use crate::config::{KeyKind, StoreConfig, VaultConfig, default_key_file, is_inside};
use crate::{Error, Result, Vault, io_err};
use rxvault_audit::{Action as AuditAction, KeyRotation, Outcome, RotationStep};
use rxvault_crypto::kek::{KdfParams, LocalKek};
use rxvault_crypto::keyfile::{KeyFile, KeyFileError};
use rxvault_crypto::{Kek, KeyPurpose, Keyring, Passphrase, SecretKey, WrappedKey};
use rxvault_model::{Clock, DekId, RecordKind, Rid};
use rxvault_store::{Op, PgStore, SqliteStore, Store, StoredKey, StoredRecord, WriteBatch};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Metadata keys.
pub(crate) mod meta {
    pub const VAULT_ID: &str = "vault_id";
    pub const KEK_VERSION: &str = "kek_version";
    pub const KEK_KIND: &str = "kek_kind";
    pub const CREATED_AT: &str = "created_at";
    pub const ROTATION: &str = "rotation";
    /// The envelope format every record is in (absent: 1); older
    /// envelopes are refused once it is [`RECORD_FORMAT_CURRENT`].
    pub const RECORD_FORMAT: &str = "record_format";
    pub const RECORD_FORMAT_CURRENT: &str = "3";
    /// The record format migration's cursor, while it runs.
    pub const RECORD_MIGRATION: &str = "record_migration";
    /// The data key the vault's processes share (its nonce counters are
    /// reserved in blocks: `Store::reserve_counters`).
    pub const SHARED_DEK: &str = "shared_dek";
    /// How patient names are normalised in the name index; patients are
    /// re-indexed on open until it is [`NAME_INDEX_CURRENT`].
    pub const NAME_INDEX: &str = "name_index";
    /// Accents folded (`rxvault_model::normalize::name_key`).
    pub const NAME_INDEX_CURRENT: &str = "folded-1";
    pub fn kdf(version: u32) -> String {
        format!("kdf.v{version}")
    }
}

/// The minimum passphrase length, in characters. The passphrase is the only
/// factor protecting the data at rest, so NIST SP 800-63B rev4's
/// single-factor minimum (15) applies.
pub const MIN_PASSPHRASE_CHARS: usize = 15;

/// Where the KEK comes from when opening a vault.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A key file.
    File(PathBuf),
    /// A passphrase.
    Passphrase(Passphrase),
}

/// How a new vault's KEK is made.
#[derive(Debug, Clone)]
pub enum InitKey {
    /// A new random key written to a key file (`None`: the default
    /// location).
    File(Option<PathBuf>),
    /// A passphrase.
    Passphrase(Passphrase),
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct Created {
    /// The vault's configuration.
    pub config: VaultConfig,
    /// The key file written, if any.
    pub key_file: Option<PathBuf>,
}

pub(crate) fn to_stored(w: &WrappedKey) -> StoredKey {
    StoredKey {
        id: w.id.0,
        purpose: w.purpose.code(),
        kek_version: w.kek_version,
        wrapped: w.wrapped.clone(),
    }
}

fn from_stored(k: &StoredKey) -> Result<WrappedKey> {
    Ok(WrappedKey {
        id: DekId(k.id),
        purpose: KeyPurpose::from_code(k.purpose).ok_or_else(|| Error::Corrupt {
            what: format!("data key {}", k.id),
            message: format!("unknown purpose {}", k.purpose),
        })?,
        kek_version: k.kek_version,
        wrapped: k.wrapped.clone(),
    })
}

pub(crate) fn stored_keys(store: &dyn Store) -> Result<Vec<WrappedKey>> {
    store.keys()?.iter().map(from_stored).collect()
}

fn open_store(config: &VaultConfig, create: bool) -> Result<Box<dyn Store>> {
    Ok(match &config.store {
        StoreConfig::Sqlite => {
            let path = config.sqlite_path();
            if create {
                Box::new(SqliteStore::create(&path)?)
            } else {
                Box::new(SqliteStore::open(&path)?)
            }
        }
        StoreConfig::Postgres { url, schema } => {
            let url = crate::config::pg_url(url);
            if create {
                Box::new(PgStore::create(&url, schema)?)
            } else {
                Box::new(PgStore::open(&url, schema)?)
            }
        }
    })
}

fn load_key_file(path: &Path) -> Result<KeyFile> {
    KeyFile::load(path).map_err(|e| match e {
        KeyFileError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Error::Key(format!(
            "key file {} not found: pass --key-file PATH (the key is kept outside the data directory; \
             without it the vault cannot be opened)",
            path.display()
        )),
        e => Error::Crypto(e.into()),
    })
}

impl Vault {
    /// Creates a vault in `dir` (created, mode 0700, if missing).
    pub fn init(
        dir: &Path,
        store: StoreConfig,
        key: InitKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Created> {
        if dir.join(crate::config::CONFIG_FILE).exists() {
            return Err(Error::Invalid(format!(
                "{} already holds a vault",
                dir.display()
            )));
        }
        if store == StoreConfig::Sqlite && dir.join(crate::config::SQLITE_FILE).exists() {
            return Err(Error::Invalid(format!(
                "{} exists but {} has no rxvault.toml: an earlier init was interrupted; remove the file and retry",
                dir.join(crate::config::SQLITE_FILE).display(),
                dir.display()
            )));
        }
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let vault_id = rxvault_crypto::random_id()?;
        let mut config = VaultConfig {
            vault_id: vault_id.clone(),
            store,
            key: KeyKind::File,
            key_file: None,
            time_zone: Some(
                jiff::tz::TimeZone::system()
                    .iana_name()
                    .unwrap_or("UTC")
                    .to_string(),
            ),
            dir: dir.to_path_buf(),
        };
        let mut meta_ops = vec![
            (meta::VAULT_ID.to_string(), vault_id.clone()),
            (meta::KEK_VERSION.to_string(), "1".to_string()),
            (
                meta::RECORD_FORMAT.to_string(),
                meta::RECORD_FORMAT_CURRENT.to_string(),
            ),
            (
                meta::NAME_INDEX.to_string(),
                meta::NAME_INDEX_CURRENT.to_string(),
            ),
            (
                meta::CREATED_AT.to_string(),
                clock.now().unix_timestamp().to_string(),
            ),
        ];
        let mut key_file = None;
        let kek: Box<dyn Kek> = match key {
            InitKey::File(path) => {
                let explicit = path.is_some();
                let path = match path {
                    Some(p) => p,
                    None => default_key_file(&vault_id)?,
                };
                if is_inside(&path, dir) {
                    return Err(Error::Key(format!(
                        "refusing to put the key file {} inside the data directory {}: a copy of the data \
                         would carry its key. Choose a path elsewhere (e.g. removable media or the default \
                         under your config directory)",
                        path.display(),
                        dir.display()
                    )));
                }
                if path.exists() {
                    return Err(Error::Key(format!(
                        "key file {} already exists; refusing to overwrite a key",
                        path.display()
                    )));
                }
                let secret = SecretKey::generate()?;
                KeyFile::new(&vault_id, 1, secret.clone())
                    .save(&path)
                    .map_err(rxvault_crypto::Error::from)?;
                if explicit {
                    config.key_file = Some(std::path::absolute(&path).map_err(io_err(&path))?);
                }
                key_file = Some(path);
                meta_ops.push((meta::KEK_KIND.to_string(), "file".to_string()));
                Box::new(LocalKek::new(1, secret))
            }
            InitKey::Passphrase(p) => {
                check_passphrase(&p)?;
                let kdf = KdfParams::generate()?;
                meta_ops.push((meta::KEK_KIND.to_string(), "passphrase".to_string()));
                meta_ops.push((meta::kdf(1), kdf.to_string()));
                config.key = KeyKind::Passphrase;
                Box::new(LocalKek::from_passphrase(1, &p, &kdf)?)
            }
        };
        let store = open_store(&config, true)?;
        let (_keyring, index_key) = Keyring::create(&vault_id, kek)?;
        store.put_keys(&[to_stored(&index_key)])?;
        store.write(&WriteBatch {
            ops: meta_ops
                .into_iter()
                .map(|(key, value)| Op::Meta {
                    key,
                    value: Some(value),
                })
                .collect(),
            at: clock.now().unix_timestamp(),
        })?;
        config.save()?;
        tracing::info!(vault = %vault_id, "vault created");
        Ok(Created { config, key_file })
    }

    /// Opens the vault in `dir`. With no `source`, the key file recorded in
    /// the configuration (or the default location) is used.
    pub fn open(dir: &Path, source: Option<KeySource>, clock: Arc<dyn Clock>) -> Result<Vault> {
        let config = VaultConfig::load(dir)?;
        let zone = config.zone()?;
        let store = open_store(&config, false)?;
        let stored_id = store.meta(meta::VAULT_ID)?.unwrap_or_default();
        if stored_id != config.vault_id {
            return Err(Error::Invalid(format!(
                "{} says vault {} but its database holds vault {stored_id}: the configuration does not belong to this database",
                dir.join(crate::config::CONFIG_FILE).display(),
                config.vault_id
            )));
        }
        let version = kek_version(store.as_ref())?;
        let kek = build_kek(&config, store.as_ref(), source.as_ref(), version)?;
        let passphrase = matches!(source, Some(KeySource::Passphrase(_)));
        let keys = Keyring::open(&config.vault_id, kek, &stored_keys(store.as_ref())?).map_err(|e| match e {
            rxvault_crypto::Error::WrongKey if passphrase => Error::Key("wrong passphrase for this vault".into()),
            rxvault_crypto::Error::WrongKey => Error::Key(
                "the key file does not open this vault (it is for another vault, or an older key version)".into(),
            ),
            e => e.into(),
        })?;
        let vault = Vault {
            config,
            store: Arc::from(store),
            keys: Arc::new(keys),
            clock,
            zone,
            dek_lock: std::sync::Mutex::new(()),
            audit: std::sync::OnceLock::new(),
            detect: std::sync::OnceLock::new(),
            audit_open: std::sync::Mutex::new(()),
        };
        vault.migrate_records()?;
        vault.refold_names()?;
        Ok(vault)
    }

    /// A vault over `config`'s store with `keys` as they are (no migration,
    /// no key checks beyond the keyring's own), for recording in its audit
    /// log while something else (a rotation) holds the store.
    pub(crate) fn for_audit(
        config: &VaultConfig,
        keys: Arc<Keyring>,
        clock: Arc<dyn Clock>,
    ) -> Result<Vault> {
        Ok(Vault {
            zone: config.zone()?,
            store: Arc::from(open_store(config, false)?),
            config: config.clone(),
            keys,
            clock,
            dek_lock: std::sync::Mutex::new(()),
            audit: std::sync::OnceLock::new(),
            detect: std::sync::OnceLock::new(),
            audit_open: std::sync::Mutex::new(()),
        })
    }

    /// Makes sure this process has a data key to seal with: creates one,
    /// stores it wrapped, and activates it.
    pub(crate) fn ensure_dek(&self) -> Result<()> {
        let _guard = self.dek_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.keys.active_dek().is_some() {
            return Ok(());
        }
        let source: Arc<dyn rxvault_crypto::CounterSource> =
            Arc::new(StoreCounters(self.store.clone()));
        // The vault's shared data key, unless it is used up: data keys grow
        // with data, not with processes.
        let shared = self
            .store
            .meta(meta::SHARED_DEK)?
            .and_then(|v| v.parse().ok())
            .map(DekId);
        if let Some(id) = shared {
            if !self.keys.has_dek(id) {
                self.reload_keys()?;
            }
            match self.keys.activate_shared(id, source.clone()) {
                Ok(()) => return Ok(()),
                Err(rxvault_crypto::Error::DekExhausted | rxvault_crypto::Error::UnknownDek(_)) => {
                }
                Err(e) => return Err(e.into()),
            }
        }
        let dek = self.keys.prepare_dek()?;
        let id = dek.wrapped.id;
        self.store.put_keys(&[to_stored(&dek.wrapped)])?;
        let expected = shared.map(|d| d.0.to_string());
        let now = self
            .store
            .swap_meta(meta::SHARED_DEK, expected.as_deref(), &id.0.to_string())?;
        if now != id.0.to_string() {
            // Another process made the new shared key first: use it, and
            // drop ours (it sealed nothing).
            self.store.delete_key(id.0)?;
            self.reload_keys()?;
            let theirs = now.parse().map(DekId).map_err(|_| Error::Corrupt {
                what: "shared data key".into(),
                message: format!("{now:?} is not a key id"),
            })?;
            self.keys.activate_shared(theirs, source)?;
            return Ok(());
        }
        self.keys.activate_new_shared(dek, source)?;
        Ok(())
    }

    /// Makes sure the vault has a checkpoint signing key (created, stored
    /// wrapped, and installed on first use), and returns its public key.
    pub fn ensure_signer(&self) -> Result<[u8; 32]> {
        let _guard = self.dek_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(public) = self.keys.signing_public_key() {
            return Ok(public);
        }
        let stored_signer = |store: &dyn Store, version: u32| -> Result<Option<WrappedKey>> {
            Ok(stored_keys(store)?
                .into_iter()
                .find(|w| w.purpose == KeyPurpose::Signing && w.kek_version == version))
        };
        // Another process may have created it; if two race, both end up
        // loading the one the store kept.
        if stored_signer(self.store.as_ref(), self.keys.kek_version())?.is_none() {
            let signer = self.keys.prepare_signer()?;
            self.store.put_keys(&[to_stored(&signer.wrapped)])?;
        }
        let w = stored_signer(self.store.as_ref(), self.keys.kek_version())?.ok_or_else(|| {
            Error::Corrupt {
                what: "signing key".into(),
                message: "not stored after creation".into(),
            }
        })?;
        self.keys.load_signer(&w)?;
        Ok(self.keys.signing_public_key().expect("just loaded"))
    }

    /// Makes sure this process has a data key to seal with (for crates that
    /// seal their own values with the vault's keyring).
    pub fn ensure_data_key(&self) -> Result<()> {
        self.ensure_dek()
    }

    /// Loads data keys other processes created since this vault was opened
    /// (for crates opening values sealed by another process).
    pub fn reload_data_keys(&self) -> Result<()> {
        self.reload_keys()
    }

    /// The identity store of this vault (its own database: the SQLite
    /// `vault.db` or its PostgreSQL schema), for `rxvault_auth::Auth::new`.
    pub fn auth_store(&self) -> Result<Arc<dyn rxvault_store::auth::AuthStore>> {
        Ok(match &self.config().store {
            crate::StoreConfig::Sqlite => Arc::new(rxvault_store::SqlAuthStore::open_sqlite(
                &self.config().sqlite_path(),
            )?),
            crate::StoreConfig::Postgres { url, schema } => Arc::new(
                rxvault_store::SqlAuthStore::open_postgres(&crate::config::pg_url(url), schema)?,
            ),
        })
    }

    /// The detection store of this vault (the same database), for
    /// `rxvault_detect`: opened once, kept by the vault.
    pub fn detect_store(&self) -> Result<Arc<dyn rxvault_store::DetectStore>> {
        if let Some(s) = self.detect.get() {
            return Ok(s.clone());
        }
        let store: Arc<dyn rxvault_store::DetectStore> = match &self.config().store {
            crate::StoreConfig::Sqlite => Arc::new(rxvault_store::SqlDetectStore::open_sqlite(
                &self.config().sqlite_path(),
            )?),
            crate::StoreConfig::Postgres { url, schema } => Arc::new(
                rxvault_store::SqlDetectStore::open_postgres(&crate::config::pg_url(url), schema)?,
            ),
        };
        Ok(self.detect.get_or_init(|| store).clone())
    }

    /// Loads data keys other processes created since this vault was opened.
    pub(crate) fn reload_keys(&self) -> Result<()> {
        for w in stored_keys(self.store.as_ref())? {
            if w.purpose == KeyPurpose::Data
                && w.kek_version == self.keys.kek_version()
                && !self.keys.has_dek(w.id)
            {
                self.keys.load(&w)?;
            }
        }
        Ok(())
    }

    /// The current KEK version and key kind, the data keys and how many
    /// records each seals, and any rotation in progress.
    pub fn key_status(&self) -> Result<KeyStatus> {
        let usage = self.store.dek_usage()?;
        let keys = stored_keys(self.store.as_ref())?;
        let mut data_keys: Vec<(u32, u64)> = keys
            .iter()
            .filter(|k| k.purpose == KeyPurpose::Data && k.kek_version == self.keys.kek_version())
            .map(|k| {
                (
                    k.id.0,
                    usage
                        .iter()
                        .find(|(d, _)| *d == k.id)
                        .map_or(0, |(_, n)| *n),
                )
            })
            .collect();
        data_keys.sort();
        Ok(KeyStatus {
            kek_version: self.keys.kek_version(),
            kek_kind: self.store.meta(meta::KEK_KIND)?.unwrap_or_default(),
            data_keys,
            rotation: self.store.meta(meta::ROTATION)?,
        })
    }
}

/// Key facts for `rxvault keys status`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// The current KEK version.
    pub kek_version: u32,
    /// `file` or `passphrase`.
    pub kek_kind: String,
    /// Data keys (ids) and the records each seals.
    pub data_keys: Vec<(u32, u64)>,
    /// A rotation in progress (its recorded state), if any.
    pub rotation: Option<String>,
}

fn check_passphrase(p: &Passphrase) -> Result<()> {
    if p.char_count() < MIN_PASSPHRASE_CHARS {
        return Err(Error::Key(format!(
            "the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters (it alone protects the data)"
        )));
    }
    Ok(())
}

fn kek_version(store: &dyn Store) -> Result<u32> {
    store
        .meta(meta::KEK_VERSION)?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Corrupt {
            what: "vault metadata".into(),
            message: "no KEK version".into(),
        })
}

fn build_kek(
    config: &VaultConfig,
    store: &dyn Store,
    source: Option<&KeySource>,
    version: u32,
) -> Result<Box<dyn Kek>> {
    let kind = store.meta(meta::KEK_KIND)?.unwrap_or_default();
    match (kind.as_str(), source) {
        ("passphrase", Some(KeySource::Passphrase(p))) => Ok(Box::new(passphrase_kek(store, p, version)?)),
        ("passphrase", _) => Err(Error::Key(
            "this vault is protected by a passphrase: pass --passphrase-file FILE (or RXVAULT_PASSPHRASE_FILE)".into(),
        )),
        ("file", Some(KeySource::Passphrase(_))) => Err(Error::Key(
            "this vault is protected by a key file, not a passphrase: pass --key-file PATH".into(),
        )),
        ("file", source) => {
            let path = match source {
                Some(KeySource::File(p)) => p.clone(),
                _ => config.key_file()?,
            };
            let file = load_key_file(&path)?;
            if file.vault_id != config.vault_id {
                return Err(Error::Key(format!(
                    "key file {} belongs to vault {}, not to this vault ({})",
                    path.display(),
                    file.vault_id,
                    config.vault_id
                )));
            }
            let key = file.get(version).ok_or_else(|| {
                Error::Key(format!(
                    "key file {} has no KEK version {version} (it holds {:?}): it is a copy from before a key rotation",
                    path.display(),
                    file.versions()
                ))
            })?;
            Ok(Box::new(LocalKek::new(version, key.clone())))
        }
        (other, _) => Err(Error::Corrupt {
            what: "vault metadata".into(),
            message: format!("unknown key kind {other:?}"),
        }),
    }
}

fn passphrase_kek(store: &dyn Store, p: &Passphrase, version: u32) -> Result<LocalKek> {
    let kdf = store
        .meta(&meta::kdf(version))?
        .ok_or_else(|| Error::Corrupt {
            what: "vault metadata".into(),
            message: format!("no KDF parameters for KEK version {version}"),
        })?;
    Ok(LocalKek::from_passphrase(
        version,
        p,
        &KdfParams::parse(&kdf)?,
    )?)
}

// ---------------------------------------------------------------- rotation --

/// What a rotation was asked to do.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// The key that opens the vault now.
    pub current: Option<KeySource>,
    /// For passphrase vaults: the new passphrase (`None`: keep the
    /// passphrase, new salt).
    pub new_passphrase: Option<Passphrase>,
    /// Also reseal every record under a fresh data key.
    pub reencrypt: bool,
    /// Records per committed page when re-encrypting.
    pub page: usize,
}

/// Progress reports of a long operation.
pub trait Progress {
    /// A phase starts, with a known total of units if there is one.
    fn phase(&mut self, name: &str, total: Option<u64>);
    /// Units done in the current phase.
    fn advance(&mut self, n: u64);
}

/// A progress sink that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&mut self, _: &str, _: Option<u64>) {}
    fn advance(&mut self, _: u64) {}
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Started,
    Switched,
    Reencrypting,
    Done,
}

impl Phase {
    /// As stored and audited.
    fn name(&self) -> &'static str {
        match self {
            Phase::Started => "started",
            Phase::Switched => "switched",
            Phase::Reencrypting => "reencrypting",
            Phase::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Rotation {
    from: u32,
    to: u32,
    phase: Phase,
    reencrypt: bool,
    /// Re-encryption cursor: kind code and last resealed key (hex).
    #[serde(default)]
    cursor: Option<(u8, String)>,
}

/// What a rotation did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RotateReport {
    /// The KEK version before.
    pub from: u32,
    /// The KEK version after.
    pub to: u32,
    /// Keys rewrapped.
    pub rewrapped: usize,
    /// Records resealed.
    pub resealed: u64,
    /// Data keys that no longer seal any record. They are kept: other
    /// sealed values (audit entry bodies, which are immutable; TOTP secrets;
    /// the TLS key) may still need them, and they are rewrapped under the
    /// new KEK like every key.
    pub unused_keys: usize,
    /// Whether this run resumed an interrupted rotation.
    pub resumed: bool,
}

/// Rotates the KEK of the vault in `dir` (and resumes an interrupted
/// rotation). See the module documentation for the steps.
///
/// Audited here, in the vault's audit log, by the local operator: a
/// `key-admin` entry (`rotate-kek`, [`rxvault_audit::KeyRotation`]) that
/// is durable before the first change (started, or resumed with the phase
/// an interrupted run had committed), and one when it ends (finished with
/// its counts, or failed with why; the committed phase stays and the next
/// run resumes it). A request that cannot succeed (an unusable new
/// passphrase) is one refused entry. Only a key that does not open the
/// vault leaves no entry: there is nothing to seal one with.
pub fn rotate(
    dir: &Path,
    options: &RotateOptions,
    clock: Arc<dyn Clock>,
    progress: &mut dyn Progress,
) -> Result<RotateReport> {
    let config = VaultConfig::load(dir)?;
    let store = open_store(&config, false)?;
    let kind = store.meta(meta::KEK_KIND)?.unwrap_or_default();
    let current = kek_version(store.as_ref())?;
    let state: Option<Rotation> = match store.meta(meta::ROTATION)? {
        Some(s) => Some(serde_json::from_str(&s).map_err(|e| Error::Corrupt {
            what: "rotation state".into(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let (from, to) = match &state {
        Some(s) => (s.from, s.to),
        None => (current, current + 1),
    };
    let keys = RotationKeys::of(&config, &kind, options)?;
    // The old KEK is not needed once the old wraps are gone (a rotation
    // interrupted after its last step). Opening the old keyring checks the
    // current key before anything changes.
    let need_old = state.as_ref().is_none_or(|s| s.phase != Phase::Done);
    let old_ring = if need_old {
        let kek = keys.old_kek(&config, store.as_ref(), from)?;
        Some(Arc::new(
            Keyring::open(&config.vault_id, kek, &stored_keys(store.as_ref())?).map_err(
                |e| match e {
                    rxvault_crypto::Error::WrongKey => {
                        Error::Key("the current key does not open this vault".into())
                    }
                    e => e.into(),
                },
            )?,
        ))
    } else {
        None
    };
    // The rotation's entries are sealed with the keys in force now (the
    // vault's shared data key, which the rotation rewraps with every other
    // key).
    let audit_ring = match &old_ring {
        Some(ring) => ring.clone(),
        None => Arc::new(Keyring::open(
            &config.vault_id,
            keys.new_kek(&config, store.as_ref(), to, &*clock)?,
            &stored_keys(store.as_ref())?,
        )?),
    };
    let trail = RotationTrail {
        vault: Vault::for_audit(&config, audit_ring.clone(), clock.clone())?,
        who: crate::access::Requester::local(),
        from,
        to,
        reencrypt: state.as_ref().map_or(options.reencrypt, |s| s.reencrypt),
    };
    if let Err(e) = keys.check() {
        trail.record(
            RotationStep::Refused,
            |r| r.reason = Some(e.to_string()),
            &Err(&e),
        )?;
        return Err(e);
    }
    match &state {
        Some(s) => trail.record(
            RotationStep::Resumed,
            |r| r.phase = Some(s.phase.name().into()),
            &Ok(()),
        )?,
        None => trail.record(RotationStep::Started, |_| {}, &Ok(()))?,
    }
    // The data key the rotation's audit entries are sealed with (the
    // vault's shared one) is in use still: it is not one of the "older data
    // keys" the report counts as unused.
    trail.vault.ensure_dek()?;
    let own_dek = audit_ring.active_dek();
    let result = run_rotation(
        &config,
        store.as_ref(),
        &keys,
        (from, to),
        state,
        old_ring.as_deref(),
        options,
        own_dek,
        &*clock,
        progress,
    );
    match &result {
        Ok(report) => trail.record(
            RotationStep::Finished,
            |r| {
                r.rewrapped = Some(report.rewrapped as u64);
                r.resealed = Some(report.resealed);
            },
            &Ok(()),
        )?,
        Err(e) => trail.record(
            RotationStep::Failed,
            |r| r.reason = Some(e.to_string()),
            &Err(e),
        )?,
    }
    result
}

/// Where a rotation records its steps: the vault's audit log, opened with
/// the rotation's keyring on a store of its own.
struct RotationTrail {
    vault: Vault,
    who: crate::access::Requester,
    from: u32,
    to: u32,
    reencrypt: bool,
}

impl RotationTrail {
    /// Records `step` (with the details `fill` adds), durably; an error
    /// `outcome` is denied for a request that cannot succeed, else error.
    fn record(
        &self,
        step: RotationStep,
        fill: impl FnOnce(&mut KeyRotation),
        outcome: &std::result::Result<(), &Error>,
    ) -> Result<()> {
        let mut rotation = KeyRotation {
            step,
            from: self.from,
            to: self.to,
            reencrypt: self.reencrypt,
            phase: None,
            rewrapped: None,
            resealed: None,
            reason: None,
        };
        fill(&mut rotation);
        let outcome = match outcome {
            Ok(()) => Outcome::Success,
            Err(Error::Key(_) | Error::Invalid(_)) => Outcome::Denied,
            Err(_) => Outcome::Error,
        };
        self.vault.record(
            self.who
                .entry(AuditAction::KeyAdmin {
                    operation: "rotate-kek".into(),
                    rotation: Some(rotation),
                })
                .outcome(outcome),
        )?;
        Ok(())
    }
}

/// The KEKs of a rotation: where they come from (nothing is read or
/// written until asked).
enum RotationKeys {
    /// The key file (versions `from` and `to` side by side while it runs).
    File(PathBuf),
    /// The current passphrase and the new one (the same: a new salt).
    Passphrase {
        current: Passphrase,
        new: Passphrase,
    },
}

impl RotationKeys {
    fn of(config: &VaultConfig, kind: &str, options: &RotateOptions) -> Result<Self> {
        match kind {
            "file" => Ok(RotationKeys::File(match &options.current {
                Some(KeySource::File(p)) => p.clone(),
                _ => config.key_file()?,
            })),
            "passphrase" => {
                let Some(KeySource::Passphrase(p)) = &options.current else {
                    return Err(Error::Key(
                        "this vault is protected by a passphrase: pass --passphrase-file FILE"
                            .into(),
                    ));
                };
                Ok(RotationKeys::Passphrase {
                    current: p.clone(),
                    new: options.new_passphrase.clone().unwrap_or_else(|| p.clone()),
                })
            }
            other => Err(Error::Corrupt {
                what: "vault metadata".into(),
                message: format!("unknown key kind {other:?}"),
            }),
        }
    }

    /// The key file, if the vault has one.
    fn key_path(&self) -> Option<&Path> {
        match self {
            RotationKeys::File(p) => Some(p),
            RotationKeys::Passphrase { .. } => None,
        }
    }

    fn key_file(config: &VaultConfig, path: &Path) -> Result<KeyFile> {
        let file = load_key_file(path)?;
        if file.vault_id != config.vault_id {
            return Err(Error::Key(format!(
                "key file {} belongs to another vault",
                path.display()
            )));
        }
        Ok(file)
    }

    /// Whether the rotation can succeed as asked (checked before any
    /// change).
    fn check(&self) -> Result<()> {
        match self {
            RotationKeys::File(_) => Ok(()),
            RotationKeys::Passphrase { new, .. } => check_passphrase(new),
        }
    }

    /// KEK version `from` (reads only).
    fn old_kek(&self, config: &VaultConfig, store: &dyn Store, from: u32) -> Result<Box<dyn Kek>> {
        match self {
            RotationKeys::File(path) => {
                let file = Self::key_file(config, path)?;
                let Some(k) = file.get(from) else {
                    return Err(Error::Key(format!(
                        "key file {} has no KEK version {from}",
                        path.display()
                    )));
                };
                Ok(Box::new(LocalKek::new(from, k.clone())))
            }
            RotationKeys::Passphrase { current, .. } => {
                Ok(Box::new(passphrase_kek(store, current, from)?))
            }
        }
    }

    /// KEK version `to`, created on first use (appended to the key file,
    /// or its KDF salt stored).
    fn new_kek(
        &self,
        config: &VaultConfig,
        store: &dyn Store,
        to: u32,
        clock: &dyn Clock,
    ) -> Result<Box<dyn Kek>> {
        match self {
            RotationKeys::File(path) => {
                let mut file = Self::key_file(config, path)?;
                let key = match file.get(to) {
                    Some(k) => k.clone(),
                    None => {
                        let k = SecretKey::generate()?;
                        file.insert(to, k.clone());
                        file.save(path).map_err(rxvault_crypto::Error::from)?;
                        k
                    }
                };
                Ok(Box::new(LocalKek::new(to, key)))
            }
            RotationKeys::Passphrase { new, .. } => {
                let kdf = match store.meta(&meta::kdf(to))? {
                    Some(k) => KdfParams::parse(&k)?,
                    None => {
                        let k = KdfParams::generate()?;
                        store.write(&WriteBatch {
                            ops: vec![Op::Meta {
                                key: meta::kdf(to),
                                value: Some(k.to_string()),
                            }],
                            at: clock.now().unix_timestamp(),
                        })?;
                        k
                    }
                };
                Ok(Box::new(LocalKek::from_passphrase(to, new, &kdf)?))
            }
        }
    }
}

/// The steps of a rotation from where `state` left it (see the module
/// documentation).
#[allow(clippy::too_many_arguments)]
fn run_rotation(
    config: &VaultConfig,
    store: &dyn Store,
    keys: &RotationKeys,
    (from, to): (u32, u32),
    mut state: Option<Rotation>,
    old_ring: Option<&Keyring>,
    options: &RotateOptions,
    own_dek: Option<DekId>,
    clock: &dyn Clock,
    progress: &mut dyn Progress,
) -> Result<RotateReport> {
    let resumed = state.is_some();
    let at = || clock.now().unix_timestamp();
    let set_state = |s: &Rotation| -> Result<Op> {
        Ok(Op::Meta {
            key: meta::ROTATION.into(),
            value: Some(serde_json::to_string(s).map_err(|e| Error::Invalid(e.to_string()))?),
        })
    };
    // The new KEK (created now on a fresh rotation), unless only the last
    // clean-up is left.
    let mut new_kek = match &state {
        Some(s) if s.phase == Phase::Done => None,
        _ => Some(keys.new_kek(config, store, to, clock)?),
    };
    const NEW_KEK: &str = "the new key is loaded for every phase before the last";

    let mut st = match state.take() {
        Some(s) => s,
        None => {
            let s = Rotation {
                from,
                to,
                phase: Phase::Started,
                reencrypt: options.reencrypt,
                cursor: None,
            };
            store.write(&WriteBatch {
                ops: vec![set_state(&s)?],
                at: at(),
            })?;
            s
        }
    };
    let mut report = RotateReport {
        from,
        to,
        resumed,
        ..RotateReport::default()
    };

    if st.phase == Phase::Started {
        progress.phase("rewrapping keys", None);
        let ring = old_ring.expect("the old key is loaded before the switch");
        let rewrapped = ring.rewrap(new_kek.as_deref().expect(NEW_KEK), &stored_keys(store)?)?;
        report.rewrapped = rewrapped.len();
        store.put_keys(&rewrapped.iter().map(to_stored).collect::<Vec<_>>())?;
        st.phase = if st.reencrypt {
            Phase::Reencrypting
        } else {
            Phase::Switched
        };
        store.write(&WriteBatch {
            ops: vec![
                Op::Meta {
                    key: meta::KEK_VERSION.into(),
                    value: Some(to.to_string()),
                },
                set_state(&st)?,
            ],
            at: at(),
        })?;
        progress.advance(rewrapped.len() as u64);
    }

    if st.phase == Phase::Switched || st.phase == Phase::Reencrypting {
        // Keys another process created under the old KEK after the switch are
        // rewrapped before anything else, so no key is ever left without a
        // wrap under the current KEK.
        let stored = stored_keys(store)?;
        let stragglers: Vec<WrappedKey> = stored
            .iter()
            .filter(|w| {
                w.kek_version == from && !stored.iter().any(|n| n.id == w.id && n.kek_version == to)
            })
            .cloned()
            .collect();
        if !stragglers.is_empty() {
            let ring = old_ring.expect("the old key is loaded before cleanup");
            let rewrapped = ring.rewrap(new_kek.as_deref().expect(NEW_KEK), &stragglers)?;
            report.rewrapped += rewrapped.len();
            store.put_keys(&rewrapped.iter().map(to_stored).collect::<Vec<_>>())?;
        }
    }

    if st.phase == Phase::Reencrypting {
        let kek = new_kek.take().expect(NEW_KEK);
        let new_ring = Keyring::open(&config.vault_id, kek, &stored_keys(store)?)?;
        // A vault not yet migrated to the current envelope format (opening
        // it migrates) is re-encrypted into it just the same.
        new_ring.accept_formats_from(record_format(store)?);
        let (resealed, unused) = reencrypt(
            store,
            &new_ring,
            &mut st,
            options.page.max(1),
            own_dek,
            &at,
            progress,
        )?;
        report.resealed = resealed;
        report.unused_keys = unused;
        st.phase = Phase::Switched;
        // Re-encryption moves every record off the old data keys: the next
        // process makes a new shared key rather than seal with an old one.
        store.write(&WriteBatch {
            ops: vec![
                set_state(&st)?,
                Op::Meta {
                    key: meta::SHARED_DEK.into(),
                    value: None,
                },
            ],
            at: at(),
        })?;
    }

    if st.phase == Phase::Switched {
        // Deletes only wraps whose key also has a wrap under `to`.
        store.retain_keys_of_kek(to)?;
        st.phase = Phase::Done;
        store.write(&WriteBatch {
            ops: vec![set_state(&st)?],
            at: at(),
        })?;
    }

    if let Some(path) = keys.key_path() {
        let mut file = load_key_file(path)?;
        if file.versions() != vec![to] {
            file.retain_only(to);
            file.save(path).map_err(rxvault_crypto::Error::from)?;
        }
    }
    store.write(&WriteBatch {
        ops: vec![
            Op::Meta {
                key: meta::ROTATION.into(),
                value: None,
            },
            Op::Meta {
                key: meta::kdf(from),
                value: None,
            },
        ],
        at: at(),
    })?;
    tracing::info!(
        from,
        to,
        resealed = report.resealed,
        "key rotation complete"
    );
    Ok(report)
}

/// Reseals every record not under the target data key; returns how many
/// were resealed and how many data keys no record uses any more.
fn reencrypt(
    store: &dyn Store,
    ring: &Keyring,
    st: &mut Rotation,
    page: usize,
    own_dek: Option<DekId>,
    at: &dyn Fn() -> i64,
    progress: &mut dyn Progress,
) -> Result<(u64, usize)> {
    // A fresh data key of this process's own, also when resuming: a data
    // key seals in one process lifetime only (its nonces are a counter), so
    // an interrupted run's key is never sealed with again; the records that
    // run resealed (before the cursor) keep it.
    let dek = ring.prepare_dek()?;
    store.put_keys(&[to_stored(&dek.wrapped)])?;
    let target = dek.wrapped.id;
    ring.activate(dek);
    let total: u64 = RecordKind::ALL
        .iter()
        .map(|k| store.count(*k).unwrap_or(0))
        .sum();
    progress.phase("re-encrypting records", Some(total));
    let state = st.clone();
    let save = |cursor: Option<&Cursor>| -> Result<Op> {
        let mut s = state.clone();
        s.cursor = cursor.cloned();
        Ok(Op::Meta {
            key: meta::ROTATION.into(),
            value: Some(serde_json::to_string(&s).map_err(|e| Error::Invalid(e.to_string()))?),
        })
    };
    let resealed = ResealPass {
        store,
        ring,
        page,
        skip: &|r: &StoredRecord| r.dek == target,
        save: &save,
        at,
    }
    .run(&mut st.cursor, progress)?;
    // Data keys no record uses any more are counted, not deleted: the audit
    // log's sealed bodies are immutable and other sealed values (TOTP
    // secrets, the TLS key) may still be under them.
    let usage = store.dek_usage()?;
    let unused = stored_keys(store)?
        .iter()
        .filter(|k| k.purpose == KeyPurpose::Data && k.id != target && Some(k.id) != own_dek)
        .filter(|k| !usage.iter().any(|(d, n)| *d == k.id && *n > 0))
        .count();
    Ok((resealed.resealed, unused))
}

/// A pass over every record that reseals it ([`crate::records::reseal`])
/// under the keyring's active data key, page by page, each page's
/// compare-and-swap writes committed with the cursor, so a killed pass
/// resumes where it stopped and a record written meanwhile is never
/// overwritten. Shared by re-encryption and the envelope migration.
pub(crate) struct ResealPass<'a> {
    pub store: &'a dyn Store,
    pub ring: &'a Keyring,
    /// Records per committed page.
    pub page: usize,
    /// Records left as they are.
    pub skip: &'a dyn Fn(&StoredRecord) -> bool,
    /// The metadata write that records the cursor, committed with each page.
    pub save: &'a dyn Fn(Option<&Cursor>) -> Result<Op>,
    pub at: &'a dyn Fn() -> i64,
}

/// Where a pass over the records is: a kind code and the last key done
/// (hex).
pub(crate) type Cursor = (u8, String);

/// What a [`ResealPass`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Resealed {
    /// Records resealed.
    pub resealed: u64,
    /// Version 1 records whose stored patient link or flag disagreed with
    /// their content (sealed to their content's).
    pub mismatched: u64,
}

impl ResealPass<'_> {
    pub(crate) fn run(
        &self,
        cursor: &mut Option<Cursor>,
        progress: &mut dyn Progress,
    ) -> Result<Resealed> {
        let mut done = Resealed::default();
        let start_kind = cursor.as_ref().map_or(1, |(k, _)| *k);
        for kind in RecordKind::ALL
            .into_iter()
            .filter(|k| k.code() >= start_kind)
        {
            let mut after: Option<Rid> = match &*cursor {
                Some((k, rid)) if *k == kind.code() => Rid::from_hex(rid),
                _ => None,
            };
            loop {
                let records = self.store.scan(kind, after.as_ref(), self.page)?;
                let Some(last) = records.last().map(|r| r.rid) else {
                    break;
                };
                let mut ops = Vec::with_capacity(records.len() + 1);
                for r in records.iter().filter(|r| !(self.skip)(r)) {
                    let (envelope, mismatched) = crate::records::reseal(self.ring, r)?;
                    if mismatched {
                        done.mismatched += 1;
                        tracing::warn!(
                            table = kind.table(),
                            record = %r.rid,
                            "stored patient link or flag disagrees with the record's content; sealed to its content"
                        );
                    }
                    ops.push(Op::Reseal {
                        kind,
                        rid: r.rid,
                        expected: r.envelope.clone(),
                        dek: Keyring::dek_of(&envelope)?,
                        envelope,
                        tokens: None,
                    });
                }
                done.resealed += ops.len() as u64;
                *cursor = Some((kind.code(), last.to_string()));
                ops.push((self.save)(cursor.as_ref())?);
                self.store.write(&WriteBatch {
                    ops,
                    at: (self.at)(),
                })?;
                progress.advance(records.len() as u64);
                after = Some(last);
            }
            *cursor = None;
        }
        Ok(done)
    }
}

// --------------------------------------------------------------- migration --

/// The record format migration's state (`meta.record_migration`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Migration {
    /// The cursor (kind code, last resealed key in hex).
    #[serde(default)]
    cursor: Option<(u8, String)>,
}

/// The envelope format a vault's records are in (`meta.record_format`;
/// absent before format 2).
fn record_format(store: &dyn Store) -> Result<u8> {
    match store.meta(meta::RECORD_FORMAT)? {
        None => Ok(rxvault_crypto::envelope::LEGACY_VERSION),
        Some(v) => v.parse().map_err(|_| Error::Corrupt {
            what: "record format".into(),
            message: format!("{v:?} is not a format version"),
        }),
    }
}

impl Vault {
    /// Brings every record to the current envelope format (version 3:
    /// split by content, binding the patient link, the derived flag and
    /// the index entries), on open. Done once per vault per format:
    /// `meta.record_format` then says `3` and older envelopes are refused
    /// from then on, so an old-format row swapped in later cannot bring
    /// back an unbound link or a part split the old way. Resumable: the
    /// cursor is committed with each page (`meta.record_migration`), and
    /// records already in version 3 are skipped anyway.
    pub(crate) fn migrate_records(&self) -> Result<()> {
        let format = record_format(self.store.as_ref())?;
        if format >= rxvault_crypto::envelope::VERSION {
            return Ok(());
        }
        // Formats older than the vault's are refused even now: a format 1
        // row in a format 2 vault was swapped in.
        self.keys.accept_formats_from(format);
        let result = self.reseal_legacy_records();
        self.keys
            .accept_formats_from(rxvault_crypto::envelope::VERSION);
        result
    }

    fn reseal_legacy_records(&self) -> Result<()> {
        let mut state: Migration = match self.store.meta(meta::RECORD_MIGRATION)? {
            Some(s) => serde_json::from_str(&s).map_err(|e| Error::Corrupt {
                what: "record migration state".into(),
                message: e.to_string(),
            })?,
            None => Migration::default(),
        };
        self.ensure_dek()?;
        self.reload_keys()?;
        let at = || self.now_unix();
        let save = |cursor: Option<&Cursor>| -> Result<Op> {
            let s = Migration {
                cursor: cursor.cloned(),
            };
            Ok(Op::Meta {
                key: meta::RECORD_MIGRATION.into(),
                value: Some(serde_json::to_string(&s).map_err(|e| Error::Invalid(e.to_string()))?),
            })
        };
        let pass = ResealPass {
            store: self.store.as_ref(),
            ring: &self.keys,
            page: 500,
            skip: &|r: &StoredRecord| {
                rxvault_crypto::envelope::version(&r.envelope)
                    == Some(rxvault_crypto::envelope::VERSION)
            },
            save: &save,
            at: &at,
        };
        let resumed = state.cursor.is_some();
        let mut done = pass.run(&mut state.cursor, &mut Quiet)?;
        if resumed {
            // The format is declared only after a pass that saw every
            // record: the cursor is trusted for speed, never for the result.
            let again = pass.run(&mut None, &mut Quiet)?;
            done.resealed += again.resealed;
            done.mismatched += again.mismatched;
        }
        self.store.write(&WriteBatch {
            ops: vec![
                Op::Meta {
                    key: meta::RECORD_FORMAT.into(),
                    value: Some(meta::RECORD_FORMAT_CURRENT.into()),
                },
                Op::Meta {
                    key: meta::RECORD_MIGRATION.into(),
                    value: None,
                },
            ],
            at: at(),
        })?;
        tracing::info!(
            resealed = done.resealed,
            mismatched = done.mismatched,
            "records migrated to envelope format 3"
        );
        Ok(())
    }
}

impl Vault {
    /// Re-indexes patient names under the current normalisation (accents
    /// folded), on open, once per vault: each patient whose name-index
    /// entries differ from what the current `name_key` gives is resealed
    /// with the new entries and its index rows replaced, as one
    /// compare-and-swap (a writer that changed the patient meanwhile wrote
    /// the new entries itself). Idempotent, so an interrupted pass simply
    /// runs again; `meta.name_index` is set only after a whole pass.
    pub(crate) fn refold_names(&self) -> Result<()> {
        if self.store.meta(meta::NAME_INDEX)?.as_deref() == Some(meta::NAME_INDEX_CURRENT) {
            return Ok(());
        }
        self.ensure_dek()?;
        self.reload_keys()?;
        let mut after: Option<Rid> = None;
        let mut changed = 0usize;
        loop {
            let records = self.store.scan(RecordKind::Patient, after.as_ref(), 500)?;
            let Some(last) = records.last().map(|r| r.rid) else {
                break;
            };
            let mut ops = Vec::new();
            for r in &records {
                if let Some((envelope, tokens)) = crate::records::reindex(&self.keys, r)? {
                    ops.push(Op::Reseal {
                        kind: RecordKind::Patient,
                        rid: r.rid,
                        expected: r.envelope.clone(),
                        dek: Keyring::dek_of(&envelope)?,
                        envelope,
                        tokens: Some(tokens),
                    });
                }
            }
            changed += ops.len();
            if !ops.is_empty() {
                self.store.write(&WriteBatch {
                    ops,
                    at: self.now_unix(),
                })?;
            }
            after = Some(last);
        }
        self.store.write(&WriteBatch {
            ops: vec![Op::Meta {
                key: meta::NAME_INDEX.into(),
                value: Some(meta::NAME_INDEX_CURRENT.into()),
            }],
            at: self.now_unix(),
        })?;
        tracing::info!(changed, "patient names re-indexed with accents folded");
        Ok(())
    }
}

/// Nonce counters of a shared data key, from the vault's store.
struct StoreCounters(Arc<dyn Store>);

impl rxvault_crypto::CounterSource for StoreCounters {
    fn reserve(&self, dek: DekId, n: u64) -> rxvault_crypto::Result<u64> {
        self.0
            .reserve_counters(dek, n)
            .map_err(|e| rxvault_crypto::Error::KeyStore(e.to_string()))
    }
}

/// The vault's keys for identity and access (`rxvault_auth::Auth::new`):
/// its secrets and data keys, nothing of the records or the store.
impl rxvault_crypto::LiveKeys for Vault {
    fn secrets(&self) -> &rxvault_crypto::Secrets {
        Vault::secrets(self)
    }

    fn ensure_data_key(&self) -> rxvault_crypto::Result<()> {
        self.ensure_dek().map_err(key_store_error)
    }

    fn reload_data_keys(&self) -> rxvault_crypto::Result<()> {
        self.reload_keys().map_err(key_store_error)
    }
}

/// A vault error as the keys' caller sees it (a crypto error stays one).
fn key_store_error(e: Error) -> rxvault_crypto::Error {
    match e {
        Error::Crypto(c) => c,
        other => rxvault_crypto::Error::KeyStore(other.to_string()),
    }
}
