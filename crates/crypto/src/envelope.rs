//! The byte format of a sealed record.
//!
//! ```text
//! offset  size  field
//! 0       1     format version (1)
//! 1       4     DEK id, big-endian
//! 5       1     part count n (1..=7)
//! then n parts, categories strictly increasing:
//!         1     field category code
//!         12    nonce
//!         4     ciphertext length L (including the 16-byte tag), big-endian
//!         L     AES-256-GCM ciphertext and tag
//! ```
//! Each part's associated data binds the table, the record's [`Rid`], the
//! DEK id, the set of categories present and the part's own category (see
//! [`part_aad`]), so a ciphertext moved to another record, table or field,
//! re-labelled with another key, or an envelope with a part removed or added,
//! fails to open.

use rxvault_model::{DekId, FieldCategory, Rid};

/// The current format version.
pub const VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 6;
/// Bytes of a part's header.
pub const PART_HEADER_LEN: usize = 1 + 12 + 4;
/// Bytes of the GCM tag.
pub const TAG_LEN: usize = 16;

/// Why an envelope could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its header or a part says.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// An unknown format version.
    #[error("unknown format version {0}")]
    Version(u8),
    /// Zero parts, or more than there are categories.
    #[error("bad part count {0}")]
    PartCount(u8),
    /// An unknown category code.
    #[error("unknown field category {0}")]
    Category(u8),
    /// Categories out of order or repeated.
    #[error("field categories out of order")]
    Order,
    /// A part shorter than a tag.
    #[error("part shorter than its tag")]
    ShortPart,
    /// Bytes after the last part.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// One sealed part of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// Its field category.
    pub category: FieldCategory,
    /// Its nonce.
    pub nonce: [u8; 12],
    /// Ciphertext and tag.
    pub ciphertext: &'a [u8],
}

/// A decoded envelope (still encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The data key that sealed it.
    pub dek: DekId,
    /// Its parts, categories strictly increasing.
    pub parts: Vec<Part<'a>>,
}

impl Envelope<'_> {
    /// The set of categories present, as bound into each part's AAD.
    pub fn category_bits(&self) -> u16 {
        bits(self.parts.iter().map(|p| p.category))
    }
}

/// The category bit set of a list of categories.
pub fn bits(categories: impl Iterator<Item = FieldCategory>) -> u16 {
    categories.fold(0u16, |b, c| b | (1 << c.code()))
}

/// Decodes an envelope without decrypting it.
pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    if bytes[0] != VERSION {
        return Err(DecodeError::Version(bytes[0]));
    }
    let dek = DekId(u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes")));
    let count = bytes[5];
    if count == 0 || usize::from(count) > FieldCategory::ALL.len() {
        return Err(DecodeError::PartCount(count));
    }
    let mut parts = Vec::with_capacity(usize::from(count));
    let mut at = HEADER_LEN;
    let mut last: Option<FieldCategory> = None;
    for _ in 0..count {
        let header = bytes
            .get(at..at + PART_HEADER_LEN)
            .ok_or(DecodeError::Truncated(bytes.len()))?;
        let category =
            FieldCategory::from_code(header[0]).ok_or(DecodeError::Category(header[0]))?;
        if last.is_some_and(|l| l >= category) {
            return Err(DecodeError::Order);
        }
        last = Some(category);
        let nonce: [u8; 12] = header[1..13].try_into().expect("12 bytes");
        let len = u32::from_be_bytes(header[13..17].try_into().expect("4 bytes")) as usize;
        if len < TAG_LEN {
            return Err(DecodeError::ShortPart);
        }
        at += PART_HEADER_LEN;
        let ciphertext = at
            .checked_add(len)
            .and_then(|end| bytes.get(at..end))
            .ok_or(DecodeError::Truncated(bytes.len()))?;
        at += len;
        parts.push(Part {
            category,
            nonce,
            ciphertext,
        });
    }
    if at != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - at));
    }
    Ok(Envelope { dek, parts })
}

/// Starts encoding an envelope; see [`push_part`].
pub fn begin(dek: DekId, parts: u8, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + capacity);
    out.push(VERSION);
    out.extend_from_slice(&dek.0.to_be_bytes());
    out.push(parts);
    out
}

/// Appends a part's header; the caller appends `len` bytes of ciphertext.
pub fn push_part_header(out: &mut Vec<u8>, category: FieldCategory, nonce: &[u8; 12], len: usize) {
    out.push(category.code());
    out.extend_from_slice(nonce);
    out.extend_from_slice(
        &u32::try_from(len)
            .expect("a part under 4 GiB")
            .to_be_bytes(),
    );
}

/// The associated data of one part.
pub fn part_aad(
    table: &str,
    rid: &Rid,
    dek: DekId,
    category_bits: u16,
    category: FieldCategory,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + table.len() + 16);
    aad.extend_from_slice(b"rxvault/record/v1\0");
    aad.extend_from_slice(table.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&rid.0);
    aad.extend_from_slice(&dek.0.to_be_bytes());
    aad.extend_from_slice(&category_bits.to_be_bytes());
    aad.push(category.code());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(dek: u32, parts: &[(FieldCategory, [u8; 12], Vec<u8>)]) -> Vec<u8> {
        let mut out = begin(DekId(dek), parts.len() as u8, 0);
        for (c, n, ct) in parts {
            push_part_header(&mut out, *c, n, ct.len());
            out.extend_from_slice(ct);
        }
        out
    }

    fn arb_parts() -> impl Strategy<Value = Vec<(FieldCategory, [u8; 12], Vec<u8>)>> {
        proptest::sample::subsequence(FieldCategory::ALL.to_vec(), 1..=7).prop_flat_map(|cats| {
            let n = cats.len();
            (
                Just(cats),
                proptest::collection::vec(
                    (
                        any::<[u8; 12]>(),
                        proptest::collection::vec(any::<u8>(), 16..64),
                    ),
                    n,
                ),
            )
                .prop_map(|(cats, bodies)| {
                    cats.into_iter()
                        .zip(bodies)
                        .map(|(c, (n, b))| (c, n, b))
                        .collect()
                })
        })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(dek in any::<u32>(), parts in arb_parts()) {
            let bytes = encode(dek, &parts);
            let env = decode(&bytes).unwrap();
            prop_assert_eq!(env.dek, DekId(dek));
            prop_assert_eq!(env.parts.len(), parts.len());
            for (p, (c, n, ct)) in env.parts.iter().zip(&parts) {
                prop_assert_eq!(p.category, *c);
                prop_assert_eq!(&p.nonce, n);
                prop_assert_eq!(p.ciphertext, ct.as_slice());
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn any_truncation_or_extension_is_rejected(parts in arb_parts(), cut in any::<prop::sample::Index>(), extra in 1usize..4) {
            let bytes = encode(1, &parts);
            let n = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..n]).is_err());
            let mut longer = bytes.clone();
            longer.extend(std::iter::repeat_n(0u8, extra));
            prop_assert!(decode(&longer).is_err());
        }
    }

    #[test]
    fn structural_errors() {
        let c = FieldCategory::Contact;
        let good = encode(1, &[(c, [0; 12], vec![0; 16])]);
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(decode(&v), Err(DecodeError::Version(9)));
        let mut v = good.clone();
        v[5] = 0;
        assert_eq!(decode(&v), Err(DecodeError::PartCount(0)));
        let mut v = good.clone();
        v[6] = 99;
        assert_eq!(decode(&v), Err(DecodeError::Category(99)));
        let dup = encode(1, &[(c, [0; 12], vec![0; 16]), (c, [0; 12], vec![0; 16])]);
        assert_eq!(decode(&dup), Err(DecodeError::Order));
        let short = encode(1, &[(c, [0; 12], vec![0; 15])]);
        assert_eq!(decode(&short), Err(DecodeError::ShortPart));
    }
}
