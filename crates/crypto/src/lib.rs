//! The only crate in rxvault that ever holds key bytes.
//!
//! # Key hierarchy
//! ```text
//! KEK (key-encryption key, version n)      key file outside the data dir,
//!  │                                        or Argon2id(passphrase, salt)
//!  ├── wraps ──> DEK 1, DEK 2, ...          data-encryption keys; AES-256-GCM
//!  └── wraps ──> index key                  HMAC-SHA256 key for blind indexes
//! ```
//! Only wrapped keys are stored in the vault. A running process holds the
//! unwrapped set in two shapes: [`Secrets`] computes the keyed hashes the
//! store uses in place of identifiers ([`Secrets::rid`],
//! [`Secrets::token`]), seals the vault's own secrets ([`Secrets::seal_blob`])
//! and signs audit checkpoints; a [`Keyring`] is a `Secrets` that also seals
//! and opens records ([`Keyring::seal_record`], [`Keyring::open_record`]).
//! Only `rxvault-vault` holds a `Keyring`; the crates beside it get
//! `Secrets` (through [`LiveKeys`]), which cannot decrypt a record.
//!
//! # Modules
//! - [`secret`]: [`SecretKey`] and [`Passphrase`], zeroized on drop, redacted
//!   in `Debug`.
//! - [`kek`]: KEK sources (key files, passphrases) behind the [`Kek`] trait,
//!   the seam an HSM-backed KEK plugs into.
//! - [`keyfile`]: the key file format.
//! - [`escrow`]: the KEK escrow kit (the key file sealed under its own
//!   passphrase, for restoring backups).
//! - [`keyring`]: data keys, sealing, blind indexes.
//! - [`envelope`]: the byte format of a sealed record.
//! - [`export`]: encryption of exported files to age recipients.
//! - [`password`]: Argon2id password hashes (PHC strings).
//! - [`otp`]: HOTP/TOTP (RFC 4226/6238) with replay-safe verification;
//!   TOTP secrets sealed with the keyring.
//! - [`token`]: random session tokens, API keys and recovery codes, stored
//!   only as hashes.
//!
//! # Example
//! ```
//! use rxvault_crypto::{kek::LocalKek, Binding, Keyring, SecretKey};
//! use rxvault_model::{CategorySet, FieldCategory, IndexKind, RecordKind};
//!
//! let kek = LocalKek::new(1, SecretKey::generate()?);
//! // A new vault: the index key comes back wrapped, for the store.
//! let (keyring, _wrapped_index_key) = Keyring::create("vault-1", Box::new(kek))?;
//! // A data key for this process: store `dek.wrapped` first, then activate.
//! let dek = keyring.prepare_dek()?;
//! keyring.activate(dek);
//! let place = Binding {
//!     kind: RecordKind::Patient,
//!     rid: keyring.rid(RecordKind::Patient, "p1"),
//!     patient: None,
//!     derived: false,
//! };
//! let phone = keyring.token(IndexKind::Phone, "5558107203");
//! let sealed = keyring.seal_record(&place, &[(IndexKind::Phone, phone)], &[(FieldCategory::Demographics, b"{}")])?;
//! let parts = keyring.open_record(&place, &sealed, CategorySet::ALL)?;
//! assert_eq!(&parts[0].1[..], b"{}");
//! keyring.check_index_entry(&place, &sealed, IndexKind::Phone, &phone)?;
//! # Ok::<(), rxvault_crypto::Error>(())
//! ```
#![deny(missing_docs)]

pub mod envelope;
pub mod escrow;
pub mod export;
pub mod kek;
pub mod keyfile;
pub mod keyring;
pub mod otp;
pub mod password;
pub mod secret;
pub mod tls;
pub mod token;

pub use kek::Kek;
pub use keyring::{
    Binding, CounterSource, KeyPurpose, Keyring, NewDek, NewSigner, Secrets, WrappedKey, sha256,
    sha256_file, verify_signature,
};
pub use otp::TotpSecret;
pub use password::{Password, PasswordHash, Pepper};
pub use secret::{Passphrase, SecretKey};
pub use token::{Token, TokenHash, TokenKind};

/// Errors of this crate. None of them carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ciphertext failed authentication: it was altered, moved to another
    /// record, table or field, or belongs to another key.
    #[error("integrity check failed for {what}: the stored ciphertext was altered or moved")]
    Integrity {
        /// What failed (a table, record and field category; never plaintext).
        what: String,
    },
    /// The KEK does not open this vault's keys.
    #[error(
        "the key does not open this vault (wrong passphrase, or a key file for another vault or an old key version)"
    )]
    WrongKey,
    /// A stored wrapped key does not authenticate under a KEK that opens the
    /// vault's other keys: the key is right, the wrap was altered.
    #[error(
        "{what} does not authenticate under KEK version {kek_version}: the database is corrupt or was tampered with (the key itself opens this vault's other keys)"
    )]
    CorruptKey {
        /// Which wrap (`wrapped data key 1234`, `wrapped index key`).
        what: String,
        /// The KEK version it is wrapped under.
        kek_version: u32,
    },
    /// A record was sealed with a data key this keyring does not hold.
    #[error("data key {0} is not loaded")]
    UnknownDek(rxvault_model::DekId),
    /// No data key is active for sealing, or the active one is used up.
    #[error("no active data key to seal with (a new one must be created)")]
    DekExhausted,
    /// The vault has no signing key yet.
    #[error("the vault has no signing key")]
    NoSigner,
    /// A malformed sealed record.
    #[error("malformed sealed record: {0}")]
    Envelope(#[from] envelope::DecodeError),
    /// A malformed key file.
    #[error("{0}")]
    KeyFile(#[from] keyfile::KeyFileError),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Key derivation failed (bad parameters).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// TLS certificate or key material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// Encrypting an export failed.
    #[error("export encryption: {0}")]
    Export(String),
    /// Storing or loading wrapped keys failed (the store's message).
    #[error("key store: {0}")]
    KeyStore(String),
}

/// A live vault's keys as the crates beside the vault use them (identity
/// and access): its [`Secrets`], a data key for this process to seal with,
/// and the data keys other processes stored since. Narrower than the vault:
/// no records, no store. `rxvault-vault`'s `Vault` is one; a test can make
/// one from `Secrets` alone.
pub trait LiveKeys: Send + Sync {
    /// The keys, without the records.
    fn secrets(&self) -> &Secrets;
    /// Makes sure this process has a data key to seal with (creating and
    /// storing one on first use).
    fn ensure_data_key(&self) -> Result<()>;
    /// Loads the data keys other processes stored since the keys were
    /// opened.
    fn reload_data_keys(&self) -> Result<()>;
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`: what signs a webhook's
/// body with the secret its receiver shares.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::hmac::sign(&key, message).as_ref());
    out
}

/// A random identifier: 16 bytes from the operating system's generator, as
/// 32 hex digits (vault ids, export ids).
pub fn random_id() -> Result<String> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::Random)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    #[test]
    fn hmac_sha256_rfc4231_test_case_2() {
        assert_eq!(
            hex::encode(super::hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
