//! Password hashing: Argon2id, stored as PHC strings.
//!
//! A [`PasswordHash`] is the only form in which a password is kept. It is
//! `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`: Argon2id (RFC 9106) with
//! 19 MiB of memory, 2 passes, 1 lane and a 128-bit random salt, which is
//! OWASP's first recommended Argon2id setting and costs about 15 ms per
//! verification on this project's reference machine. The parameters travel
//! in the string, so raising them later keeps old hashes verifiable
//! ([`PasswordHash::is_current`] says when to rehash).
//!
//! Verification of an unknown account runs against [`dummy_hash`] so that
//! "no such user" costs the same Argon2id evaluation as "wrong password"
//! (no user enumeration by timing).

use crate::{Error, Result};
use argon2::{Algorithm, Argon2, KeyId, ParamsBuilder, PasswordHasher, PasswordVerifier, Version};
use std::fmt;
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Argon2id memory cost, KiB.
pub const M_COST_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const T_COST: u32 = 2;
/// Argon2id lanes.
pub const P_COST: u32 = 1;
/// Salt length, bytes.
const SALT_LEN: usize = 16;
/// Longest password accepted for hashing, in bytes (a bound on work per
/// request; the account policy's character limit is lower).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// A password as typed: zeroized on drop, never shown by `Debug`.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password exactly as given (no trimming: spaces are
    /// characters like any other).
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// Its length in Unicode scalar values (for policy checks).
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }

    /// The text, for policy checks (common-password list, context words).
    /// Never log or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An Argon2id password hash in PHC string format.
///
/// Not a secret in the sense of a key, but an offline-attack target: `Debug`
/// shows only the algorithm.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Parses a stored PHC string; only Argon2id version 0x13 is accepted.
    pub fn parse(phc: &str) -> Result<Self> {
        let parsed = argon2::PasswordHash::new(phc)
            .map_err(|_| Error::Kdf("malformed password hash".into()))?;
        if parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(0x13) {
            return Err(Error::Kdf(
                "password hash is not Argon2id version 19".into(),
            ));
        }
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(Error::Kdf("password hash without salt or output".into()));
        }
        Ok(Self(phc.to_string()))
    }

    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the hash uses this build's parameters and the pepper (if
    /// not, rehash the password at the next successful login).
    pub fn is_current(&self) -> bool {
        self.0.starts_with(&format!(
            "$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST},keyid={PEPPER_KEYID_B64}$"
        ))
    }

    fn peppered(&self) -> Option<bool> {
        let parsed = argon2::PasswordHash::new(&self.0).ok()?;
        match parsed.params.get_str("keyid") {
            None => Some(false),
            Some(k) if k == PEPPER_KEYID_B64 => Some(true),
            // Another pepper than this build knows: nothing verifies.
            Some(_) => None,
        }
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(argon2id, <redacted>)")
    }
}

/// A secret mixed into every password hash: Argon2's secret input, NIST SP
/// 800-63B §5.1.1.2's "secret salt known only to the verifier". It is
/// derived from the vault's keys ([`crate::Secrets::password_pepper`]), so
/// hashes copied with the database cannot even be tested against a guess
/// without the key.
pub struct Pepper(Zeroizing<[u8; 32]>);

impl Pepper {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// Names the pepper in a hash's PHC string (`keyid`): "rxv1", base64.
const PEPPER_KEYID: &[u8] = b"rxv1";
const PEPPER_KEYID_B64: &str = "cnh2MQ";

fn hasher(pepper: Option<&Pepper>) -> Argon2<'_> {
    let mut params = ParamsBuilder::new();
    params.m_cost(M_COST_KIB).t_cost(T_COST).p_cost(P_COST);
    match pepper {
        None => Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            params.build().expect("valid Argon2id parameters"),
        ),
        Some(p) => {
            params.keyid(KeyId::new(PEPPER_KEYID).expect("a short key id"));
            Argon2::new_with_secret(
                &p.0[..],
                Algorithm::Argon2id,
                Version::V0x13,
                params.build().expect("valid Argon2id parameters"),
            )
            .expect("a 32-byte secret")
        }
    }
}

/// Hashes a password with a fresh random salt and the pepper.
pub fn hash_password(password: &Password, pepper: &Pepper) -> Result<PasswordHash> {
    hash_with(password, Some(pepper))
}

fn hash_with(password: &Password, pepper: Option<&Pepper>) -> Result<PasswordHash> {
    if password.0.len() > MAX_PASSWORD_BYTES {
        return Err(Error::Kdf("password too long to hash".into()));
    }
    let mut salt = [0u8; SALT_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| Error::Random)?;
    let hash = hasher(pepper)
        .hash_password_with_salt(password.0.as_bytes(), &salt)
        .map_err(|e| Error::Kdf(format!("Argon2id: {e}")))?;
    Ok(PasswordHash(hash.to_string()))
}

/// Whether `password` matches `hash` (with the pepper if the hash names it;
/// hashes from before the pepper verify without). The comparison of the
/// Argon2id outputs is constant-time; any malformed input is a mismatch.
pub fn verify_password(password: &Password, hash: &PasswordHash, pepper: &Pepper) -> bool {
    if password.0.len() > MAX_PASSWORD_BYTES {
        // Still spend the same work, so length never shortcuts timing.
        let _ = verify_inner(b"", dummy_hash(), pepper);
        return false;
    }
    verify_inner(password.0.as_bytes(), hash, pepper)
}

fn verify_inner(password: &[u8], hash: &PasswordHash, pepper: &Pepper) -> bool {
    let Some(peppered) = hash.peppered() else {
        return false;
    };
    match argon2::PasswordHash::new(&hash.0) {
        Ok(parsed) => hasher(peppered.then_some(pepper))
            .verify_password(password, &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password nobody knows, with the current parameters:
/// verify against it when the account does not exist, so that an unknown
/// user name costs the same as a wrong password.
pub fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = Zeroizing::new([0u8; 24]);
        // If the generator fails, a fixed input still gives a valid hash of
        // the right cost; nobody can log in against the dummy either way
        // because callers never accept its result.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random[..]);
        let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
        hash_with(&Password::new(text), None).expect("hashing a short password cannot fail")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Produced by an independent implementation, Debian's `argon2` CLI
    /// (the reference C implementation):
    /// `echo -n "correct horse battery staple" | argon2 rxvaultsaltsalt1 -id -t 2 -k 19456 -p 1 -e`
    const REFERENCE: &str = "$argon2id$v=19$m=19456,t=2,p=1$cnh2YXVsdHNhbHRzYWx0MQ$ITMHIxwLRijQcncKKwxh3ezbEStaSEL1Y/r1KJrRhIk";

    fn pepper(b: u8) -> Pepper {
        Pepper::from_bytes([b; 32])
    }

    #[test]
    fn verifies_a_hash_made_by_the_reference_implementation() {
        // Without a pepper (as hashes made before it were): it verifies
        // with or without one, and is rehashed at the next login.
        let hash = PasswordHash::parse(REFERENCE).unwrap();
        assert!(!hash.is_current());
        for p in [pepper(1), pepper(2)] {
            assert!(verify_password(
                &Password::new("correct horse battery staple".into()),
                &hash,
                &p
            ));
            assert!(!verify_password(
                &Password::new("correct horse battery stapl".into()),
                &hash,
                &p
            ));
            assert!(!verify_password(
                &Password::new("correct horse battery staple ".into()),
                &hash,
                &p
            ));
        }
    }

    #[test]
    fn hashes_are_salted_peppered_argon2id_with_current_parameters() {
        let p = Password::new("über-sicher pässwort".into());
        let a = hash_password(&p, &pepper(1)).unwrap();
        let b = hash_password(&p, &pepper(1)).unwrap();
        assert_ne!(a, b, "a fresh salt per hash");
        assert!(
            a.as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1,keyid=cnh2MQ$"),
            "{}",
            a.as_str()
        );
        assert!(a.is_current());
        assert!(verify_password(&p, &a, &pepper(1)) && verify_password(&p, &b, &pepper(1)));
        assert!(!verify_password(
            &Password::new("über-sicher".into()),
            &a,
            &pepper(1)
        ));
        let reparsed = PasswordHash::parse(a.as_str()).unwrap();
        assert_eq!(reparsed, a);
        // Another vault's pepper, or none (a stolen database without the
        // key): the right password does not verify.
        assert!(!verify_password(&p, &a, &pepper(2)));
        let parsed = argon2::PasswordHash::new(a.as_str()).unwrap();
        assert!(
            hasher(None)
                .verify_password(p.expose().as_bytes(), &parsed)
                .is_err()
        );
        // A pepper this build does not know verifies nothing.
        let other = a.as_str().replace("keyid=cnh2MQ", "keyid=cnh2Mg");
        assert!(!verify_password(
            &p,
            &PasswordHash::parse(&other).unwrap(),
            &pepper(1)
        ));
    }

    #[test]
    fn rejects_other_algorithms_and_malformed_hashes() {
        for bad in [
            "",
            "argon2id",
            "$argon2i$v=19$m=19456,t=2,p=1$cnh2YXVsdHNhbHRzYWx0MQ$ITMHIxwLRijQcncKKwxh3ezbEStaSEL1Y/r1KJrRhIk",
            "$argon2id$v=16$m=19456,t=2,p=1$cnh2YXVsdHNhbHRzYWx0MQ$ITMHIxwLRijQcncKKwxh3ezbEStaSEL1Y/r1KJrRhIk",
            "$argon2id$v=19$m=19456,t=2,p=1$cnh2YXVsdHNhbHRzYWx0MQ",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
        let old = PasswordHash::parse(
            "$argon2id$v=19$m=4096,t=3,p=1,keyid=cnh2MQ$cnh2YXVsdHNhbHRzYWx0MQ$ITMHIxwLRijQcncKKwxh3ezbEStaSEL1Y/r1KJrRhIk",
        )
        .unwrap();
        assert!(!old.is_current());
    }

    #[test]
    fn the_dummy_hash_matches_nothing_and_nothing_is_shown() {
        let d = dummy_hash();
        // The cost of a real hash.
        assert!(d.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!verify_password(
            &Password::new(String::new()),
            d,
            &pepper(1)
        ));
        assert!(!verify_password(
            &Password::new("password".into()),
            d,
            &pepper(1)
        ));
        assert_eq!(
            format!("{:?}", Password::new("hunter22".into())),
            "Password(<redacted>)"
        );
        assert_eq!(format!("{:?}", pepper(1)), "Pepper(<redacted>)");
        assert!(!format!("{d:?}").contains('$'));
        let long = Password::new("x".repeat(MAX_PASSWORD_BYTES + 1));
        assert!(hash_password(&long, &pepper(1)).is_err());
        assert!(!verify_password(&long, d, &pepper(1)));
    }
}
