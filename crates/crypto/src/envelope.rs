//! The byte format of a sealed record.
//!
//! # Version 3 (what this build writes)
//! ```text
//! offset  size  field
//! 0       1     format version (3)
//! 1       4     DEK id, big-endian
//! 5       1     part count n (1..=7)
//! 6       1     index entry count t
//! 7       17·t  the record's blind-index entries, strictly increasing:
//!               1 index kind code, 16 token
//! then    12    header nonce
//!         16    header tag (AES-256-GCM of the empty string: a GMAC of
//!               the header's associated data)
//! then n parts, categories strictly increasing:
//!         1     field category code
//!         12    nonce
//!         4     ciphertext length L (including the 16-byte tag), big-endian
//!         L     AES-256-GCM ciphertext and tag
//! ```
//! Every associated data of a version 3 record ([`binding`]) binds the
//! format version, the table, the record's [`Rid`], the DEK id, the set of
//! categories present, the **patient** the record belongs to, its
//! **derived** flag and its **blind-index entries**: everything stored
//! beside the envelope that decides what is shown to whom. The header tag
//! authenticates that binding without decrypting any part, so it is checked
//! on every open, also when the caller may see none of the record's
//! categories; each part's associated data adds the part's own category. A
//! ciphertext moved to another record, table, field or patient, re-labelled
//! with another key, flag or format version, an index entry pointed at a
//! record that does not carry it, or an envelope with a part removed or
//! added, fails to open.
//!
//! What a part's plaintext holds is the vault's business (this module never
//! sees plaintext); the version says which rules split the record into
//! parts: version 3 parts were split by content (`rxvault_fhir::split`:
//! contained resources, references, extensions and `telecom` at any depth
//! each in their own category).
//!
//! # Version 2 (read only, for the migration)
//! The same layout and binding (its associated data starts
//! `rxvault/record/v2`), with parts split by top-level element only: all of
//! a fill's `contained` and `receiver` were shipping data, so a shipping
//! view could show a contained medication, the patient's id and a phone
//! number. A keyring opens it only while the vault migrates
//! ([`Keyring::accept_formats_from`](crate::Keyring::accept_formats_from)).
//!
//! # Version 1 (read only, for the migration)
//! Header `version (1) ‖ DEK id ‖ part count`, then the parts; each part's
//! associated data ([`part_aad_v1`]) binds table, record key, DEK id,
//! category set and category, but not the patient, the derived flag or the
//! index entries. Split as version 2.

use rxvault_model::{DekId, FieldCategory, IndexKind, IndexToken, Rid};

/// The format version this build writes.
pub const VERSION: u8 = 3;
/// The format version before records were split by content (read only).
pub const SPLIT_BY_ELEMENT_VERSION: u8 = 2;
/// The format version before the patient link and index entries were bound.
pub const LEGACY_VERSION: u8 = 1;
/// Bytes of a version 1 header.
pub const HEADER_LEN: usize = 6;
/// Bytes of a version 2 or 3 header before its index entries.
const V2_FIXED_LEN: usize = 7;
/// Bytes of one index entry.
const TOKEN_LEN: usize = 1 + 16;
/// Bytes of a part's header.
pub const PART_HEADER_LEN: usize = 1 + 12 + 4;
/// Bytes of the GCM tag.
pub const TAG_LEN: usize = 16;
/// The most index entries one record can carry.
pub const MAX_TOKENS: usize = u8::MAX as usize;

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
    /// An unknown index kind code.
    #[error("unknown index kind {0}")]
    IndexKind(u8),
    /// Index entries out of order or repeated, or more than [`MAX_TOKENS`].
    #[error("index entries out of order or too many")]
    Tokens,
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

/// The authenticator of a version 2 or 3 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderTag {
    /// Its nonce.
    pub nonce: [u8; 12],
    /// The GCM tag over the header's associated data.
    pub tag: [u8; TAG_LEN],
}

/// A decoded envelope (still encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Its format version ([`VERSION`], [`SPLIT_BY_ELEMENT_VERSION`] or
    /// [`LEGACY_VERSION`]).
    pub version: u8,
    /// The data key that sealed it.
    pub dek: DekId,
    /// The record's blind-index entries, strictly increasing (none in
    /// version 1).
    pub tokens: Vec<(IndexKind, IndexToken)>,
    /// The header's authenticator (not in version 1).
    pub header: Option<HeaderTag>,
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

/// The format version of a sealed record, without decoding the rest.
pub fn version(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

/// Index entries in the order an envelope holds them: sorted by index kind
/// code then token, duplicates removed.
pub fn canonical_tokens(tokens: &[(IndexKind, IndexToken)]) -> Vec<(IndexKind, IndexToken)> {
    let mut out = tokens.to_vec();
    out.sort_by_key(|(k, t)| (k.code(), t.0));
    out.dedup();
    out
}

/// Decodes an envelope without decrypting it.
pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    let version = bytes[0];
    if !matches!(version, VERSION | SPLIT_BY_ELEMENT_VERSION | LEGACY_VERSION) {
        return Err(DecodeError::Version(version));
    }
    let dek = DekId(u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes")));
    let count = bytes[5];
    if count == 0 || usize::from(count) > FieldCategory::ALL.len() {
        return Err(DecodeError::PartCount(count));
    }
    let mut at = HEADER_LEN;
    let mut tokens = Vec::new();
    let mut header = None;
    if version != LEGACY_VERSION {
        let n = usize::from(
            *bytes
                .get(HEADER_LEN)
                .ok_or(DecodeError::Truncated(bytes.len()))?,
        );
        at = V2_FIXED_LEN;
        let list = bytes
            .get(at..at + n * TOKEN_LEN)
            .ok_or(DecodeError::Truncated(bytes.len()))?;
        tokens.reserve(n);
        for entry in list.chunks_exact(TOKEN_LEN) {
            let kind = IndexKind::from_code(entry[0]).ok_or(DecodeError::IndexKind(entry[0]))?;
            let token = IndexToken(entry[1..].try_into().expect("16 bytes"));
            if tokens
                .last()
                .is_some_and(|(k, t): &(IndexKind, IndexToken)| {
                    (k.code(), t.0) >= (kind.code(), token.0)
                })
            {
                return Err(DecodeError::Tokens);
            }
            tokens.push((kind, token));
        }
        at += n * TOKEN_LEN;
        let h = bytes
            .get(at..at + 12 + TAG_LEN)
            .ok_or(DecodeError::Truncated(bytes.len()))?;
        header = Some(HeaderTag {
            nonce: h[..12].try_into().expect("12 bytes"),
            tag: h[12..].try_into().expect("16 bytes"),
        });
        at += 12 + TAG_LEN;
    }
    let mut parts = Vec::with_capacity(usize::from(count));
    let mut last: Option<FieldCategory> = None;
    for _ in 0..count {
        let part_header = bytes
            .get(at..at + PART_HEADER_LEN)
            .ok_or(DecodeError::Truncated(bytes.len()))?;
        let category = FieldCategory::from_code(part_header[0])
            .ok_or(DecodeError::Category(part_header[0]))?;
        if last.is_some_and(|l| l >= category) {
            return Err(DecodeError::Order);
        }
        last = Some(category);
        let nonce: [u8; 12] = part_header[1..13].try_into().expect("12 bytes");
        let len = u32::from_be_bytes(part_header[13..17].try_into().expect("4 bytes")) as usize;
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
    Ok(Envelope {
        version,
        dek,
        tokens,
        header,
        parts,
    })
}

/// Starts encoding a version 3 envelope (`tokens` canonical, see
/// [`canonical_tokens`]); see [`push_part_header`].
pub fn begin(
    dek: DekId,
    parts: u8,
    tokens: &[(IndexKind, IndexToken)],
    header: &HeaderTag,
    capacity: usize,
) -> Vec<u8> {
    begin_as(VERSION, dek, parts, tokens, header, capacity)
}

/// [`begin`] in format `version` (2 or 3: the layout is the same).
pub fn begin_as(
    version: u8,
    dek: DekId,
    parts: u8,
    tokens: &[(IndexKind, IndexToken)],
    header: &HeaderTag,
    capacity: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_FIXED_LEN + tokens.len() * TOKEN_LEN + 28 + capacity);
    out.push(version);
    out.extend_from_slice(&dek.0.to_be_bytes());
    out.push(parts);
    out.push(u8::try_from(tokens.len()).expect("at most MAX_TOKENS index entries"));
    for (kind, token) in tokens {
        out.push(kind.code());
        out.extend_from_slice(&token.0);
    }
    out.extend_from_slice(&header.nonce);
    out.extend_from_slice(&header.tag);
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

/// Encodes a decoded envelope again, byte for byte (either version).
pub fn encode(env: &Envelope<'_>) -> Vec<u8> {
    let parts = u8::try_from(env.parts.len()).expect("at most 7 parts");
    let mut out = match &env.header {
        Some(h) => begin_as(env.version, env.dek, parts, &env.tokens, h, 0),
        None => {
            let mut v = vec![env.version];
            v.extend_from_slice(&env.dek.0.to_be_bytes());
            v.push(parts);
            v
        }
    };
    for p in &env.parts {
        push_part_header(&mut out, p.category, &p.nonce, p.ciphertext.len());
        out.extend_from_slice(p.ciphertext);
    }
    out
}

/// What every associated data of a version 2 or 3 record starts with:
/// format version, table, record key, DEK id, category set, patient (or
/// none), derived flag and index entries (canonical). Fields are
/// fixed-length or length-prefixed, the table name NUL-terminated, so no two
/// bindings share an encoding.
#[allow(clippy::too_many_arguments)]
pub fn binding(
    version: u8,
    table: &str,
    rid: &Rid,
    dek: DekId,
    category_bits: u16,
    patient: Option<&Rid>,
    derived: bool,
    tokens: &[(IndexKind, IndexToken)],
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + table.len() + tokens.len() * TOKEN_LEN);
    aad.extend_from_slice(b"rxvault/record/v");
    aad.push(b'0' + version);
    aad.push(0);
    aad.extend_from_slice(table.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&rid.0);
    aad.extend_from_slice(&dek.0.to_be_bytes());
    aad.extend_from_slice(&category_bits.to_be_bytes());
    match patient {
        Some(p) => {
            aad.push(1);
            aad.extend_from_slice(&p.0);
        }
        None => aad.push(0),
    }
    aad.push(u8::from(derived));
    aad.push(u8::try_from(tokens.len()).expect("at most MAX_TOKENS index entries"));
    for (kind, token) in tokens {
        aad.push(kind.code());
        aad.extend_from_slice(&token.0);
    }
    aad
}

/// The marker that ends a header's associated data (no category has it).
pub const HEADER_MARK: u8 = 0xff;

/// The associated data of a version 2 or 3 header: the binding and
/// [`HEADER_MARK`].
pub fn header_aad(binding: &[u8]) -> Vec<u8> {
    let mut aad = binding.to_vec();
    aad.push(HEADER_MARK);
    aad
}

/// The associated data of one version 2 or 3 part: the binding and the part's
/// category.
pub fn part_aad(binding: &[u8], category: FieldCategory) -> Vec<u8> {
    let mut aad = binding.to_vec();
    aad.push(category.code());
    aad
}

/// The associated data of one version 1 part (read only).
pub fn part_aad_v1(
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

    type Parts = Vec<(FieldCategory, [u8; 12], Vec<u8>)>;

    fn encode_parts(dek: u32, tokens: &[(IndexKind, IndexToken)], parts: &Parts) -> Vec<u8> {
        let header = HeaderTag {
            nonce: [3; 12],
            tag: [4; 16],
        };
        let mut out = begin(DekId(dek), parts.len() as u8, tokens, &header, 0);
        for (c, n, ct) in parts {
            push_part_header(&mut out, *c, n, ct.len());
            out.extend_from_slice(ct);
        }
        out
    }

    fn arb_parts() -> impl Strategy<Value = Parts> {
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

    fn arb_tokens() -> impl Strategy<Value = Vec<(IndexKind, IndexToken)>> {
        proptest::collection::vec(
            (
                proptest::sample::select(IndexKind::ALL.to_vec()),
                any::<[u8; 16]>(),
            ),
            0..6,
        )
        .prop_map(|v| {
            canonical_tokens(
                &v.into_iter()
                    .map(|(k, t)| (k, IndexToken(t)))
                    .collect::<Vec<_>>(),
            )
        })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(dek in any::<u32>(), tokens in arb_tokens(), parts in arb_parts()) {
            let bytes = encode_parts(dek, &tokens, &parts);
            let env = decode(&bytes).unwrap();
            prop_assert_eq!(env.version, VERSION);
            prop_assert_eq!(env.dek, DekId(dek));
            prop_assert_eq!(&env.tokens, &tokens);
            prop_assert_eq!(env.parts.len(), parts.len());
            for (p, (c, n, ct)) in env.parts.iter().zip(&parts) {
                prop_assert_eq!(p.category, *c);
                prop_assert_eq!(&p.nonce, n);
                prop_assert_eq!(p.ciphertext, ct.as_slice());
            }
            prop_assert_eq!(encode(&env), bytes);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn any_truncation_or_extension_is_rejected(tokens in arb_tokens(), parts in arb_parts(), cut in any::<prop::sample::Index>(), extra in 1usize..4) {
            let bytes = encode_parts(1, &tokens, &parts);
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
        let good = encode_parts(1, &[], &vec![(c, [0; 12], vec![0; 16])]);
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(decode(&v), Err(DecodeError::Version(9)));
        let mut v = good.clone();
        v[5] = 0;
        assert_eq!(decode(&v), Err(DecodeError::PartCount(0)));
        let mut v = good.clone();
        v[7 + 28] = 99;
        assert_eq!(decode(&v), Err(DecodeError::Category(99)));
        let dup = encode_parts(
            1,
            &[],
            &vec![(c, [0; 12], vec![0; 16]), (c, [0; 12], vec![0; 16])],
        );
        assert_eq!(decode(&dup), Err(DecodeError::Order));
        let short = encode_parts(1, &[], &vec![(c, [0; 12], vec![0; 15])]);
        assert_eq!(decode(&short), Err(DecodeError::ShortPart));
        let t = (IndexKind::Phone, IndexToken([1; 16]));
        let twice = encode_parts(1, &[t, t], &vec![(c, [0; 12], vec![0; 16])]);
        assert_eq!(decode(&twice), Err(DecodeError::Tokens));
        let mut v = encode_parts(1, &[t], &vec![(c, [0; 12], vec![0; 16])]);
        v[7] = 200;
        assert_eq!(decode(&v), Err(DecodeError::IndexKind(200)));
    }

    #[test]
    fn version_2_still_decodes_and_re_encodes() {
        let header = HeaderTag {
            nonce: [3; 12],
            tag: [4; 16],
        };
        let mut v2 = begin_as(SPLIT_BY_ELEMENT_VERSION, DekId(7), 1, &[], &header, 0);
        push_part_header(&mut v2, FieldCategory::Shipping, &[5; 12], 16);
        v2.extend_from_slice(&[9; 16]);
        let env = decode(&v2).unwrap();
        assert_eq!(env.version, SPLIT_BY_ELEMENT_VERSION);
        assert_eq!(env.header, Some(header));
        assert_eq!(encode(&env), v2);
    }

    #[test]
    fn version_1_still_decodes_and_re_encodes() {
        let mut v1 = vec![LEGACY_VERSION, 0, 0, 0, 7, 1];
        push_part_header(&mut v1, FieldCategory::Clinical, &[5; 12], 16);
        v1.extend_from_slice(&[9; 16]);
        let env = decode(&v1).unwrap();
        assert_eq!(env.version, LEGACY_VERSION);
        assert_eq!(env.dek, DekId(7));
        assert!(env.header.is_none() && env.tokens.is_empty());
        assert_eq!(encode(&env), v1);
    }

    #[test]
    fn bindings_differ_in_every_field() {
        let r = Rid([1; 16]);
        let p = Rid([2; 16]);
        let t = [(IndexKind::FillDate, IndexToken([3; 16]))];
        let base = binding(3, "fills", &r, DekId(5), 6, Some(&p), false, &t);
        for other in [
            binding(2, "fills", &r, DekId(5), 6, Some(&p), false, &t),
            binding(3, "allergies", &r, DekId(5), 6, Some(&p), false, &t),
            binding(3, "fills", &p, DekId(5), 6, Some(&p), false, &t),
            binding(3, "fills", &r, DekId(6), 6, Some(&p), false, &t),
            binding(3, "fills", &r, DekId(5), 7, Some(&p), false, &t),
            binding(3, "fills", &r, DekId(5), 6, Some(&r), false, &t),
            binding(3, "fills", &r, DekId(5), 6, None, false, &t),
            binding(3, "fills", &r, DekId(5), 6, Some(&p), true, &t),
            binding(3, "fills", &r, DekId(5), 6, Some(&p), false, &[]),
        ] {
            assert_ne!(other, base);
        }
        assert_ne!(header_aad(&base), part_aad(&base, FieldCategory::Clinical));
    }
}
