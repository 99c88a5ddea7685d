//! Random bearer secrets: session tokens, API keys, recovery codes,
//! enrolment codes.
//!
//! Each is generated from the operating system's generator, shown to its
//! holder once, and stored only as a [`TokenHash`]: SHA-256 over a domain
//! (the [`TokenKind`]) and the secret. A stolen database therefore holds no
//! usable token. A salted slow hash is not needed: session tokens and API
//! keys carry 256 bits and recovery codes 80 bits of entropy, far beyond
//! any offline search. [`TokenHash::matches`] compares in constant time.
//!
//! Formats (all ASCII, safe in headers and URLs):
//! - session token: `rxs_` + 43 base64url characters (256 bits);
//! - pending-login token: `rxp_` + 43 base64url characters (256 bits);
//! - API key: `rxk_` + 43 base64url characters (256 bits);
//! - recovery code: `xxxx-xxxx-xxxx-xxxx`, 16 lower-case base32
//!   characters (80 bits); typed case-insensitively, dashes and spaces
//!   ignored;
//! - enrolment code: `xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`, 24 lower-case
//!   base32 characters (120 bits), typed the same way: handed to a new
//!   person (or one re-enrolling), who sets their own password with it.

use crate::otp::base32;
use crate::{Error, Result};
use base64::Engine;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What a token is for; part of its hash, so a token of one kind never
/// matches a stored hash of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An authenticated session.
    Session,
    /// A login that passed its password and awaits a second factor (or the
    /// enrolment of one).
    PendingLogin,
    /// A service account's API key.
    ApiKey,
    /// A single-use recovery code.
    RecoveryCode,
    /// A one-time enrolment code (the holder sets their own password).
    EnrolmentCode,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "rxs_",
            TokenKind::PendingLogin => "rxp_",
            TokenKind::ApiKey => "rxk_",
            TokenKind::RecoveryCode | TokenKind::EnrolmentCode => "",
        }
    }

    fn domain(self) -> &'static [u8] {
        match self {
            TokenKind::Session => b"session",
            TokenKind::PendingLogin => b"pending-login",
            TokenKind::ApiKey => b"api-key",
            TokenKind::RecoveryCode => b"recovery-code",
            TokenKind::EnrolmentCode => b"enrolment-code",
        }
    }
}

/// A bearer secret: zeroized on drop, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// A new random token of `kind`.
    pub fn generate(kind: TokenKind) -> Result<Self> {
        let bytes = random::<32>()?;
        match kind {
            TokenKind::RecoveryCode | TokenKind::EnrolmentCode => {
                let (len, groups) = match kind {
                    TokenKind::RecoveryCode => (10, 4),
                    _ => (15, 6),
                };
                let code = Zeroizing::new(base32::encode(&bytes[..len]).to_ascii_lowercase());
                let grouped: Vec<&str> = (0..groups).map(|i| &code[i * 4..i * 4 + 4]).collect();
                Ok(Self(Zeroizing::new(grouped.join("-"))))
            }
            _ => Ok(Self(Zeroizing::new(format!(
                "{}{}",
                kind.prefix(),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..])
            )))),
        }
    }

    /// A token as presented by a client (not checked here: an unknown or
    /// malformed token simply matches no stored hash).
    pub fn from_presented(text: &str) -> Self {
        Self(Zeroizing::new(text.to_string()))
    }

    /// The token text, to hand to its holder once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash as stored. Recovery and enrolment codes are normalised
    /// first (lower case, dashes and whitespace removed), so `ABCD EFGH ...`
    /// matches.
    pub fn hash(&self, kind: TokenKind) -> TokenHash {
        let normalised: Zeroizing<String> = match kind {
            TokenKind::RecoveryCode | TokenKind::EnrolmentCode => Zeroizing::new(
                self.0
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '-')
                    .map(|c| c.to_ascii_lowercase())
                    .collect(),
            ),
            _ => self.0.clone(),
        };
        TokenHash(crate::keyring::sha256(&[
            b"rxvault/token/v1\0",
            kind.domain(),
            b"\0",
            normalised.as_bytes(),
        ]))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The stored form of a token: SHA-256 of its kind and text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Whether `token` (of `kind`) hashes to this, compared in constant time.
    pub fn matches(&self, token: &Token, kind: TokenKind) -> bool {
        bool::from(self.0.ct_eq(&token.hash(kind).0))
    }

    /// From stored bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| Error::Kdf(format!("a token hash is 32 bytes, not {}", bytes.len())))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first bytes are enough to tell hashes apart in a log and
        // reveal nothing about the token.
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut b = Zeroizing::new([0u8; N]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b[..])
        .map_err(|_| Error::Random)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_and_entropy() {
        let s = Token::generate(TokenKind::Session).unwrap();
        assert!(s.expose().starts_with("rxs_"));
        assert_eq!(s.expose().len(), 4 + 43);
        let k = Token::generate(TokenKind::ApiKey).unwrap();
        assert!(k.expose().starts_with("rxk_"));
        let p = Token::generate(TokenKind::PendingLogin).unwrap();
        assert!(p.expose().starts_with("rxp_"));
        let r = Token::generate(TokenKind::RecoveryCode).unwrap();
        assert_eq!(r.expose().len(), 19);
        assert!(
            r.expose()
                .chars()
                .all(|c| c == '-' || c.is_ascii_lowercase() || ('2'..='7').contains(&c))
        );
        let e = Token::generate(TokenKind::EnrolmentCode).unwrap();
        assert_eq!(e.expose().len(), 24 + 5);
        assert!(
            e.expose()
                .chars()
                .all(|c| c == '-' || c.is_ascii_lowercase() || ('2'..='7').contains(&c))
        );
        assert!(
            !e.hash(TokenKind::EnrolmentCode)
                .matches(&e, TokenKind::RecoveryCode),
            "domain separated from recovery codes"
        );
        assert_ne!(s, Token::generate(TokenKind::Session).unwrap());
        assert_eq!(format!("{s:?}"), "Token(<redacted>)");
        assert!(!format!("{:?}", s.hash(TokenKind::Session)).contains(&s.expose()[4..12]));
    }

    #[test]
    fn hashes_match_only_their_token_and_kind() {
        let s = Token::generate(TokenKind::Session).unwrap();
        let h = s.hash(TokenKind::Session);
        assert!(h.matches(&s, TokenKind::Session));
        assert!(!h.matches(&s, TokenKind::ApiKey), "domain separated");
        assert!(!h.matches(
            &Token::from_presented(&s.expose()[..46]),
            TokenKind::Session
        ));
        assert_eq!(TokenHash::from_slice(&h.0).unwrap(), h);
        assert!(TokenHash::from_slice(&[0; 31]).is_err());
        // Known answer: SHA-256("rxvault/token/v1\0session\0abc").
        assert_eq!(
            hex::encode(Token::from_presented("abc").hash(TokenKind::Session).0),
            hex::encode(crate::keyring::sha256(&[b"rxvault/token/v1\0session\0abc"]))
        );
    }

    #[test]
    fn recovery_codes_are_typed_loosely() {
        let r = Token::generate(TokenKind::RecoveryCode).unwrap();
        let h = r.hash(TokenKind::RecoveryCode);
        let shouted = r.expose().to_uppercase().replace('-', " ");
        assert!(h.matches(&Token::from_presented(&shouted), TokenKind::RecoveryCode));
        let squashed = r.expose().replace('-', "");
        assert!(h.matches(&Token::from_presented(&squashed), TokenKind::RecoveryCode));
        let mut other = squashed.clone().into_bytes();
        other[0] = if other[0] == b'a' { b'b' } else { b'a' };
        let other = String::from_utf8(other).unwrap();
        assert!(!h.matches(&Token::from_presented(&other), TokenKind::RecoveryCode));
    }

    proptest! {
        #[test]
        fn distinct_texts_hash_differently(a in ".{0,40}", b in ".{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(
                Token::from_presented(&a).hash(TokenKind::Session),
                Token::from_presented(&b).hash(TokenKind::Session)
            );
        }
    }
}
