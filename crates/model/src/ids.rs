//! Opaque identifiers the store sees in place of real ones.
//!
//! The store never holds a FHIR id, patient ID, Rx number or any other
//! identifier in the clear: records are keyed by a [`Rid`], a keyed hash of
//! the record's kind and FHIR id, and looked up through [`IndexToken`]s,
//! keyed hashes of normalised values. Both are computed by `rxvault-crypto`
//! with the vault's index key.

use std::fmt;

/// A record's storage key: a keyed hash of its kind and FHIR id (16 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rid(pub [u8; 16]);

/// A blind-index entry: a keyed hash of an index kind and a normalised value
/// (16 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexToken(pub [u8; 16]);

/// The id of a data-encryption key; part of every ciphertext's associated
/// data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DekId(pub u32);

fn hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Debug for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rid(")?;
        hex(&self.0, f)?;
        f.write_str(")")
    }
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(&self.0, f)
    }
}

impl fmt::Debug for IndexToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndexToken(")?;
        hex(&self.0, f)?;
        f.write_str(")")
    }
}

impl fmt::Display for DekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dek-{}", self.0)
    }
}

impl Rid {
    /// Parses the 32-hex-digit form [`Display`](fmt::Display) writes.
    pub fn from_hex(s: &str) -> Option<Rid> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Rid(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rid_hex_round_trips() {
        let rid = Rid([0xab; 16]);
        assert_eq!(Rid::from_hex(&rid.to_string()), Some(rid));
        assert_eq!(Rid::from_hex("zz"), None);
        assert_eq!(Rid::from_hex(&"g".repeat(32)), None);
    }
}
