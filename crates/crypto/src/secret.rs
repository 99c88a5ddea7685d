//! Secret values: zeroized when dropped, never shown by `Debug`.

use std::fmt;
use zeroize::Zeroizing;

/// A 256-bit symmetric key.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// A key from the operating system's random number generator.
    pub fn generate() -> crate::Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key[..])
            .map_err(|_| crate::Error::Random)?;
        Ok(Self(key))
    }

    /// Wraps key bytes (the caller's copy should itself be zeroized).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes. Only this crate may see them.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A passphrase, as read from a file or a terminal.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase; a single trailing newline (as files and terminals
    /// add) is removed.
    pub fn new(mut text: String) -> Self {
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Self(Zeroizing::new(text))
    }

    /// The passphrase bytes.
    pub(crate) fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether the passphrase is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Its length in characters (for policy checks; never its content).
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let key = SecretKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        let p = Passphrase::new("correct horse\n".into());
        assert_eq!(format!("{p:?}"), "Passphrase(<redacted>)");
        assert_eq!(p.expose(), b"correct horse");
    }
}
