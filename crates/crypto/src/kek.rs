//! Key-encryption keys (KEKs): what wraps the vault's data keys.
//!
//! The [`Kek`] trait is the seam between rxvault and where the KEK lives. A
//! [`LocalKek`] holds the key in this process: read from a key file kept
//! outside the data directory, or derived from a passphrase with Argon2id
//! ([`KdfParams`]). A PKCS#11 implementation (an HSM, or softhsm2 in tests)
//! implements the same trait by asking the token to wrap and unwrap, so the
//! KEK never enters the process at all.

use crate::secret::{Passphrase, SecretKey};
use crate::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;

/// A key-encryption key of one version.
pub trait Kek: Send + Sync + fmt::Debug {
    /// The KEK version (1, 2, ... as the key is rotated).
    fn version(&self) -> u32;

    /// Encrypts `key` under this KEK, binding `aad`.
    fn wrap(&self, aad: &[u8], key: &SecretKey) -> Result<Vec<u8>>;

    /// Decrypts a wrapped key; [`Error::WrongKey`] if this KEK did not wrap
    /// it with this `aad`.
    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<SecretKey>;
}

/// A KEK held in this process's memory.
pub struct LocalKek {
    version: u32,
    // ring does not zeroize its expanded key schedule on drop; the raw key
    // bytes are zeroized (SecretKey) and never kept beyond construction.
    key: LessSafeKey,
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKek")
            .field("version", &self.version)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl LocalKek {
    /// A KEK from raw key bytes (a key file).
    pub fn new(version: u32, key: SecretKey) -> Self {
        let unbound =
            UnboundKey::new(&AES_256_GCM, key.expose()).expect("AES-256 takes a 32-byte key");
        Self {
            version,
            key: LessSafeKey::new(unbound),
        }
    }

    /// A KEK derived from a passphrase.
    pub fn from_passphrase(version: u32, passphrase: &Passphrase, kdf: &KdfParams) -> Result<Self> {
        Ok(Self::new(version, kdf.derive(passphrase)?))
    }
}

impl Kek for LocalKek {
    fn version(&self) -> u32 {
        self.version
    }

    fn wrap(&self, aad: &[u8], key: &SecretKey) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + 32 + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key.expose());
        let mut body = out.split_off(NONCE_LEN);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| Error::Random)?;
        out.extend_from_slice(&body);
        zeroize::Zeroize::zeroize(&mut body);
        Ok(out)
    }

    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<SecretKey> {
        if wrapped.len() != NONCE_LEN + 32 + 16 {
            return Err(Error::WrongKey);
        }
        let (nonce, body) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::WrongKey)?;
        let mut body = zeroize::Zeroizing::new(body.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| Error::WrongKey)?;
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(plain);
        let key = SecretKey::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        Ok(key)
    }
}

/// Argon2id parameters and salt for deriving a KEK from a passphrase. Stored
/// (they are not secret) as `argon2id$v=19$m=65536,t=3,p=1$<salt>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// Random salt.
    pub salt: [u8; 16],
}

impl KdfParams {
    /// Fresh parameters: 64 MiB, 3 passes, 1 lane (stronger than OWASP's
    /// password-storage minimum, since a vault KEK is derived once per
    /// process start), with a random salt.
    pub fn generate() -> Result<Self> {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::Random)?;
        Ok(Self {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
            salt,
        })
    }

    pub(crate) fn derive(&self, passphrase: &Passphrase) -> Result<SecretKey> {
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(32))
            .map_err(|e| Error::Kdf(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.expose(), &self.salt, &mut out[..])
            .map_err(|e| Error::Kdf(e.to_string()))?;
        Ok(SecretKey::from_bytes(*out))
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Kdf("malformed KDF parameters".into());
        let mut parts = s.split('$');
        if parts.next() != Some("argon2id") || parts.next() != Some("v=19") {
            return Err(bad());
        }
        let (mut m, mut t, mut p) = (None, None, None);
        for kv in parts.next().ok_or_else(bad)?.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let v: u32 = v.parse().map_err(|_| bad())?;
            match k {
                "m" => m = Some(v),
                "t" => t = Some(v),
                "p" => p = Some(v),
                _ => return Err(bad()),
            }
        }
        let salt = B64
            .decode(parts.next().ok_or_else(bad)?)
            .map_err(|_| bad())?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            m_kib: m.ok_or_else(bad)?,
            t: t.ok_or_else(bad)?,
            p: p.ok_or_else(bad)?,
            salt: salt.try_into().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "argon2id$v=19$m={},t={},p={}${}",
            self.m_kib,
            self.t,
            self.p,
            B64.encode(self.salt)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_wrong_key() {
        let kek = LocalKek::new(1, SecretKey::generate().unwrap());
        let other = LocalKek::new(1, SecretKey::generate().unwrap());
        let dek = SecretKey::from_bytes([7; 32]);
        let wrapped = kek.wrap(b"ctx", &dek).unwrap();
        assert_eq!(kek.unwrap(b"ctx", &wrapped).unwrap().expose(), dek.expose());
        assert!(matches!(
            kek.unwrap(b"other ctx", &wrapped),
            Err(Error::WrongKey)
        ));
        assert!(matches!(
            other.unwrap(b"ctx", &wrapped),
            Err(Error::WrongKey)
        ));
        assert!(!format!("{kek:?}").contains('7'));
    }

    #[test]
    fn passphrase_kek_is_deterministic_per_salt() {
        let kdf = KdfParams {
            m_kib: 256,
            t: 1,
            p: 1,
            salt: [1; 16],
        };
        let pass = Passphrase::new("correct horse battery staple".into());
        let a = LocalKek::from_passphrase(1, &pass, &kdf).unwrap();
        let b = LocalKek::from_passphrase(1, &pass, &kdf).unwrap();
        let wrong = LocalKek::from_passphrase(1, &Passphrase::new("wrong".into()), &kdf).unwrap();
        let key = SecretKey::from_bytes([9; 32]);
        let wrapped = a.wrap(b"x", &key).unwrap();
        assert!(b.unwrap(b"x", &wrapped).is_ok());
        assert!(matches!(wrong.unwrap(b"x", &wrapped), Err(Error::WrongKey)));
    }

    #[test]
    fn kdf_params_round_trip_and_reject_garbage() {
        let p = KdfParams::generate().unwrap();
        assert_eq!(KdfParams::parse(&p.to_string()).unwrap(), p);
        for bad in [
            "",
            "argon2i$v=19$m=1,t=1,p=1$AAAA",
            "argon2id$v=19$m=1,t=1$AAAAAAAAAAAAAAAAAAAAAA",
            "argon2id$v=19$m=x,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(KdfParams::parse(bad).is_err(), "{bad}");
        }
    }

    /// RFC 9106 §5.3 known-answer vector for Argon2id, then our derivation
    /// checked against the same implementation with the same inputs.
    #[test]
    fn argon2id_rfc9106_vector_and_our_wiring() {
        let params = argon2::ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .output_len(32)
            .data(argon2::AssociatedData::new(&[4; 12]).unwrap())
            .build()
            .unwrap();
        let argon = argon2::Argon2::new_with_secret(
            &[3; 8],
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        )
        .unwrap();
        let mut tag = [0u8; 32];
        argon
            .hash_password_into(&[1; 32], &[2; 16], &mut tag)
            .unwrap();
        assert_eq!(
            hex::encode(tag),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );

        let plain = argon2::Params::new(32, 3, 4, Some(32)).unwrap();
        let mut expected = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, plain)
            .hash_password_into(b"pass phrase", &[2; 16], &mut expected)
            .unwrap();
        let kdf = KdfParams {
            m_kib: 32,
            t: 3,
            p: 4,
            salt: [2; 16],
        };
        let derived = kdf.derive(&Passphrase::new("pass phrase".into())).unwrap();
        assert_eq!(derived.expose(), &expected);
    }
}
