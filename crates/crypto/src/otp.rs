//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238).
//!
//! rxvault's TOTP is the profile every authenticator app implements:
//! HMAC-SHA1, a 30-second step from the Unix epoch, 6 digits. A code is
//! accepted for the current step and one step either side ([`WINDOW`]), and
//! [`TotpSecret::verify`] returns the step it matched so that the caller can
//! store it and refuse that step, and every earlier one, next time (RFC 6238
//! §5.2: a code is used at most once). Candidates are compared in constant
//! time (`subtle`), and every candidate of the window is computed and
//! compared whatever the input, so timing says nothing about which step, if
//! any, matched.
//!
//! Secrets are 160 bits from the operating system's generator (RFC 4226
//! §4 recommends 160), held in a [`TotpSecret`] (zeroized, redacted in
//! `Debug`), shown to the user once as base32 in an `otpauth://` URI, and
//! stored only sealed with the vault keyring ([`TotpSecret::seal`]).
//!
//! HMAC-SHA1 is what RFC 6238 authenticators compute; ring names it
//! `HMAC_SHA1_FOR_LEGACY_USE_ONLY`. HOTP relies only on HMAC's PRF
//! property, which SHA-1's collision weakness does not affect.

use crate::{Error, Result, Secrets};
use ring::hmac;
use rxvault_model::DekId;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per TOTP time step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps of clock drift accepted either side of the current step.
pub const WINDOW: u64 = 1;
/// Bytes of a generated secret (160 bits).
pub const SECRET_BYTES: usize = 20;
/// Fewest bytes a secret may have (128 bits, RFC 4226 §4 R6).
pub const MIN_SECRET_BYTES: usize = 16;

/// The sealing domain of TOTP secrets ([`Secrets::seal_blob`]).
const SEAL_DOMAIN: &str = "auth/totp-secret";

/// The HOTP value of `counter` under `key` (RFC 4226 §5.3), reduced to
/// `digits` decimal digits (1 to 9).
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    assert!((1..=9).contains(&digits), "HOTP digits must be 1 to 9");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let binary =
        u32::from_be_bytes(mac[offset..offset + 4].try_into().expect("4 bytes")) & 0x7fff_ffff;
    binary % 10u32.pow(digits)
}

/// The TOTP time step of a Unix time (seconds; times before 1970 are
/// step 0).
pub fn time_step(unix_seconds: i64) -> u64 {
    u64::try_from(unix_seconds).unwrap_or(0) / STEP_SECONDS
}

/// A TOTP shared secret.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A new 160-bit secret from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes[..])
            .map_err(|_| Error::Random)?;
        Ok(Self(bytes))
    }

    /// Wraps secret bytes (at least 128 bits, at most 512).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let bytes = Zeroizing::new(bytes);
        if !(MIN_SECRET_BYTES..=64).contains(&bytes.len()) {
            return Err(Error::Kdf(format!(
                "a TOTP secret must be 16 to 64 bytes, not {}",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }

    /// Parses the base32 form authenticator apps show (case, spaces and
    /// padding ignored).
    pub fn from_base32(text: &str) -> Result<Self> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
                .collect(),
        );
        let bytes = base32::decode(&cleaned)
            .ok_or_else(|| Error::Kdf("a TOTP secret must be base32 (A-Z, 2-7)".into()))?;
        Self::from_bytes(bytes)
    }

    /// The secret in base32 (RFC 4648, no padding), as typed into an
    /// authenticator app.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32::encode(&self.0))
    }

    /// The `otpauth://totp/...` URI authenticator apps read from a QR code
    /// (Key Uri Format: label `issuer:account`, parameters `secret`,
    /// `issuer`, `algorithm`, `digits`, `period`). It contains the secret.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let issuer_enc = percent_encode(issuer);
        Zeroizing::new(format!(
            "otpauth://totp/{issuer_enc}:{}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            percent_encode(account),
            base32::encode(&self.0),
        ))
    }

    /// The code for time step `step`, zero-padded to [`DIGITS`] digits.
    pub fn code_for_step(&self, step: u64) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{:0width$}",
            hotp(&self.0, step, DIGITS),
            width = DIGITS as usize
        ))
    }

    /// The code at a Unix time (what an authenticator app shows then).
    pub fn code_at(&self, unix_seconds: i64) -> Zeroizing<String> {
        self.code_for_step(time_step(unix_seconds))
    }

    /// Checks `code` at Unix time `now`, accepting the current step ±
    /// [`WINDOW`] but only steps after `last_step` (the last step accepted
    /// for this secret, if any). Returns the matched step, which the caller
    /// must store as the new `last_step` (atomically, so two concurrent uses
    /// of one code cannot both succeed).
    ///
    /// Spaces in `code` are ignored; anything but exactly [`DIGITS`] digits
    /// is refused. All candidate steps are computed and compared in constant
    /// time whatever the outcome.
    pub fn verify(&self, code: &str, now: i64, last_step: Option<u64>) -> Option<u64> {
        let typed: Zeroizing<Vec<u8>> =
            Zeroizing::new(code.bytes().filter(|b| *b != b' ').collect());
        let well_formed = typed.len() == DIGITS as usize && typed.iter().all(u8::is_ascii_digit);
        let current = time_step(now);
        let mut matched: Option<u64> = None;
        for step in current.saturating_sub(WINDOW)..=current + WINDOW {
            let expected = self.code_for_step(step);
            let equal = bool::from(expected.as_bytes().ct_eq(&typed[..]));
            let fresh = last_step.is_none_or(|last| step > last);
            // Later steps win, so the stored step is as late as possible.
            if equal && fresh && well_formed {
                matched = Some(step);
            }
        }
        matched
    }

    /// Seals the secret with the vault keyring's active data key, bound to
    /// `account` (the user id): a sealed secret moved to another account
    /// does not open.
    pub fn seal(&self, keyring: &Secrets, account: &[u8]) -> Result<Vec<u8>> {
        keyring.seal_blob(SEAL_DOMAIN, account, &self.0)
    }

    /// Opens a secret sealed by [`seal`](Self::seal) for `account`.
    pub fn open(keyring: &Secrets, account: &[u8], sealed: &[u8]) -> Result<Self> {
        let bytes = keyring.open_blob(SEAL_DOMAIN, account, sealed)?;
        Self::from_bytes(bytes.to_vec())
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// The data key that sealed a value produced by [`Secrets::seal_blob`] (its
/// header: a format byte, then the key id big-endian), so stores can report
/// which data keys sealed values still need. `None` if it is not a sealed
/// blob.
pub fn blob_dek(sealed: &[u8]) -> Option<DekId> {
    // Format byte 2 (`keyring::BLOB_VERSION`), 4-byte key id, 12-byte nonce,
    // ciphertext, 16-byte tag. Pinned by a test that seals with a keyring.
    if sealed.len() < 1 + 4 + 12 + 16 || sealed[0] != 2 {
        return None;
    }
    Some(DekId(u32::from_be_bytes(
        sealed[1..5].try_into().expect("4 bytes"),
    )))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Base32 (RFC 4648 §6, upper-case alphabet, no padding on output).
pub mod base32 {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    /// Encodes bytes without padding.
    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
        let mut buffer: u64 = 0;
        let mut bits = 0u32;
        for &b in data {
            buffer = (buffer << 8) | u64::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
        }
        out
    }

    /// Decodes base32, upper or lower case, with or without `=` padding.
    /// `None` for any other character, an impossible length, or non-zero
    /// trailing bits (so every byte string has exactly one encoding).
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.trim_end_matches('=');
        if matches!(text.len() % 8, 1 | 3 | 6) {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() * 5 / 8);
        let mut buffer: u64 = 0;
        let mut bits = 0u32;
        for c in text.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a',
                b'2'..=b'7' => c - b'2' + 26,
                _ => return None,
            };
            buffer = (buffer << 5) | u64::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push(((buffer >> bits) & 0xff) as u8);
            }
        }
        if buffer & ((1 << bits) - 1) != 0 {
            return None;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;
    use crate::kek::LocalKek;
    use proptest::prelude::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 4226 Appendix D: HOTP values for counters 0 to 9.
    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                *want,
                "count {counter}"
            );
        }
    }

    /// RFC 6238 Appendix B, the SHA-1 rows (8 digits).
    #[test]
    fn rfc6238_appendix_b_sha1() {
        for (time, want) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(RFC_SECRET, time_step(time), 8), want, "T = {time}");
        }
        // The same through the 6-digit API: the last six digits, zero-padded.
        let s = TotpSecret::from_bytes(RFC_SECRET.to_vec()).unwrap();
        assert_eq!(&s.code_at(59)[..], "287082");
        assert_eq!(&s.code_at(1111111109)[..], "081804");
    }

    #[test]
    fn window_replay_and_format() {
        let s = TotpSecret::from_bytes(RFC_SECRET.to_vec()).unwrap();
        let now = 1_600_000_000i64;
        let t = time_step(now);
        let code = |step: u64| s.code_for_step(step).to_string();
        assert_eq!(s.verify(&code(t), now, None), Some(t));
        assert_eq!(s.verify(&code(t - 1), now, None), Some(t - 1));
        assert_eq!(s.verify(&code(t + 1), now, None), Some(t + 1));
        assert_eq!(s.verify(&code(t - 2), now, None), None, "two steps old");
        assert_eq!(s.verify(&code(t + 2), now, None), None);
        // Replay: the step (and every earlier one) is spent.
        assert_eq!(s.verify(&code(t), now, Some(t)), None);
        assert_eq!(s.verify(&code(t - 1), now, Some(t)), None);
        assert_eq!(s.verify(&code(t + 1), now, Some(t)), Some(t + 1));
        // Formatting: spaces are fine, anything else is not.
        let c = code(t);
        assert_eq!(
            s.verify(&format!("{} {}", &c[..3], &c[3..]), now, None),
            Some(t)
        );
        assert_eq!(s.verify(&format!("{c}0"), now, None), None);
        assert_eq!(s.verify(&c[..5], now, None), None);
        assert_eq!(s.verify("", now, None), None);
        assert_eq!(s.verify("abcdef", now, None), None);
    }

    #[test]
    fn secrets_are_160_bits_base32_and_redacted() {
        let s = TotpSecret::generate().unwrap();
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        let again = TotpSecret::from_base32(&b32.to_lowercase()).unwrap();
        assert_eq!(&again.code_at(1_000)[..], &s.code_at(1_000)[..]);
        assert_eq!(format!("{s:?}"), "TotpSecret(<redacted>)");
        assert!(TotpSecret::from_bytes(vec![0; 15]).is_err());
        assert!(TotpSecret::from_base32("not base32!").is_err());
        assert_ne!(
            TotpSecret::generate().unwrap().to_base32(),
            s.to_base32(),
            "random"
        );
    }

    #[test]
    fn otpauth_uri_follows_the_key_uri_format() {
        let s = TotpSecret::from_bytes(RFC_SECRET.to_vec()).unwrap();
        assert_eq!(
            &s.otpauth_uri("rxvault Main St", "pat.smith@pharmacy")[..],
            "otpauth://totp/rxvault%20Main%20St:pat.smith%40pharmacy?\
             secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=rxvault%20Main%20St&\
             algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account() {
        let (ring, _) = crate::Keyring::create(
            "v",
            Box::new(LocalKek::new(1, SecretKey::generate().unwrap())),
        )
        .unwrap();
        let dek = ring.prepare_dek().unwrap();
        let id = dek.wrapped.id;
        ring.activate(dek);
        let s = TotpSecret::generate().unwrap();
        let sealed = s.seal(&ring, b"user-1").unwrap();
        assert_eq!(blob_dek(&sealed), Some(id));
        assert!(
            !sealed.windows(8).any(|w| s.0.windows(8).any(|x| x == w)),
            "no secret bytes in the sealed form"
        );
        let opened = TotpSecret::open(&ring, b"user-1", &sealed).unwrap();
        assert_eq!(&opened.code_at(5)[..], &s.code_at(5)[..]);
        assert!(matches!(
            TotpSecret::open(&ring, b"user-2", &sealed),
            Err(Error::Integrity { .. })
        ));
        assert_eq!(blob_dek(b"short"), None);
    }

    /// RFC 4648 §10 test vectors.
    #[test]
    fn base32_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32::encode(plain.as_bytes()), enc);
            assert_eq!(base32::decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32::decode("MZXW6YQ=").unwrap(), b"foob");
        assert_eq!(base32::decode("M"), None, "impossible length");
        assert_eq!(base32::decode("MZ"), None, "non-zero trailing bits");
        assert_eq!(base32::decode("MY1"), None);
    }

    proptest! {
        #[test]
        fn base32_round_trips(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let enc = base32::encode(&data);
            prop_assert_eq!(base32::decode(&enc), Some(data.clone()));
            prop_assert_eq!(base32::decode(&enc.to_lowercase()), Some(data));
        }

        #[test]
        fn base32_decode_never_panics_and_is_canonical(text in "[A-Za-z2-7=!]{0,40}") {
            if let Some(bytes) = base32::decode(&text) {
                let canonical = text.trim_end_matches('=').to_uppercase();
                prop_assert_eq!(base32::encode(&bytes), canonical);
            }
        }

        #[test]
        fn a_code_verifies_only_near_its_own_step(
            secret in proptest::collection::vec(any::<u8>(), 16..40),
            now in 0i64..4_000_000_000,
            offset in -3i64..=3,
        ) {
            let s = TotpSecret::from_bytes(secret).unwrap();
            let step = time_step(now) as i64 + offset;
            prop_assume!(step >= 0);
            let code = s.code_for_step(step as u64);
            let got = s.verify(&code, now, None);
            if offset.abs() <= 1 {
                // A different step in the window may collide (1 in 10^6);
                // the latest matching step is returned.
                prop_assert!(got.is_some());
                prop_assert!(got.unwrap() >= step as u64);
            } else if let Some(g) = got {
                // Only a collision with a step inside the window can match.
                prop_assert!(g.abs_diff(time_step(now)) <= WINDOW);
                prop_assert_eq!(&s.code_for_step(g)[..], &code[..]);
            }
        }
    }
}
