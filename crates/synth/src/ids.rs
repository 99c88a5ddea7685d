//! Identifiers: FHIR resource ids, MRNs, Rx numbers and transaction IDs.
//!
//! All of them are unique within a dataset *by construction*, not by luck:
//! each is an injective function of `(index, kind, n)` (the patient's index,
//! the record kind and the record's position among the patient's records of
//! that kind), scrambled with a seed-dependent bijection so they look like
//! the arbitrary numbers real systems issue.

use crate::rng::{hash_words, mix64};

/// The record kinds that get a resource id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Patient`.
    Patient = 1,
    /// `Coverage`.
    Coverage = 2,
    /// `MedicationRequest`.
    Prescription = 3,
    /// `MedicationDispense`.
    Fill = 4,
    /// `AllergyIntolerance`.
    Allergy = 5,
}

/// How many prescriptions a patient may have (the Rx-number space is
/// reserved per patient).
pub(crate) const MAX_PRESCRIPTIONS: u64 = 8;
/// How many fills a prescription may have (1 + at most 11 refills).
pub(crate) const MAX_FILLS_PER_RX: u64 = 16;

const MASK61: u64 = (1 << 61) - 1;

/// A seed-keyed bijection on 122-bit values: a 6-round Feistel network on
/// two 61-bit halves (a Feistel network is a permutation whatever its round
/// function).
fn feistel122(seed: u64, x: u128) -> u128 {
    let mut l = ((x >> 61) as u64) & MASK61;
    let mut r = (x as u64) & MASK61;
    for round in 0..6u64 {
        let key = hash_words(&[seed, 0x1d5, round]);
        let f = mix64(mix64(r ^ key).wrapping_add(key.rotate_left(23))) & MASK61;
        (l, r) = (r, l ^ f);
    }
    (u128::from(l) << 61) | u128::from(r)
}

/// The FHIR id of record `n` of `kind` of patient `index`: a version-4
/// formatted UUID (`xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`).
///
/// Unique within a dataset: `(index, kind, n)` is packed injectively into
/// the UUID's 122 free bits and scrambled with a seed-keyed permutation,
/// so ids look random (no shared prefix between a patient's records) yet
/// can never collide.
pub(crate) fn resource_id(seed: u64, index: u64, kind: Kind, n: u32) -> String {
    let packed = (u128::from(index) << 58) | (u128::from(kind as u64) << 40) | u128::from(n);
    let y = feistel122(seed, packed);
    let g1 = (y >> 90) as u64 & 0xffff_ffff;
    let g2 = (y >> 74) as u64 & 0xffff;
    let g3 = 0x4000 | ((y >> 62) as u64 & 0x0fff);
    let g4 = 0x8000 | ((y >> 48) as u64 & 0x3fff);
    let g5 = y as u64 & 0xffff_ffff_ffff;
    let mut out = String::with_capacity(36);
    push_hex(&mut out, g1, 8);
    out.push('-');
    push_hex(&mut out, g2, 4);
    out.push('-');
    push_hex(&mut out, g3, 4);
    out.push('-');
    push_hex(&mut out, g4, 4);
    out.push('-');
    push_hex(&mut out, g5, 12);
    out
}

fn push_hex(out: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
    }
}

/// A seed-dependent affine permutation of `0..modulus`: `k -> (a*k + b) mod m`
/// with `a` coprime to `m` (here `m` only has prime factors 2, 3 and 5).
fn permute(seed: u64, salt: u64, k: u64, modulus: u64) -> u64 {
    let h = hash_words(&[seed, salt]);
    let mut a = (h % modulus) | 1;
    while a.is_multiple_of(3) || a.is_multiple_of(5) {
        a = (a + 2) % modulus;
    }
    let b = mix64(h) % modulus;
    ((u128::from(a) * u128::from(k) + u128::from(b)) % u128::from(modulus)) as u64
}

/// Numbers in `[base, 10*base)` (a fixed number of digits) while they last,
/// then `10*base + (k - 9*base)`: never the same string twice.
fn scrambled_number(seed: u64, salt: u64, k: u128, base: u64) -> u128 {
    let space = 9 * base;
    if k < u128::from(space) {
        u128::from(base + permute(seed, salt, k as u64, space))
    } else {
        u128::from(10 * base) + (k - u128::from(space))
    }
}

/// The pharmacy's Rx number of prescription `slot` of patient `index`:
/// 7 digits (8 or more past 1,125,000 patients).
pub(crate) fn rx_number(seed: u64, index: u64, slot: u32) -> String {
    let k = u128::from(index) * u128::from(MAX_PRESCRIPTIONS) + u128::from(slot);
    scrambled_number(seed, 0x7278, k, 1_000_000).to_string()
}

/// The medical record number of patient `index`: 8 digits (9 or more past
/// 90 million patients).
pub(crate) fn mrn(seed: u64, index: u64) -> String {
    scrambled_number(seed, 0x6d72, u128::from(index), 10_000_000).to_string()
}

/// The transaction ID of fill `fill` of prescription `slot` of patient
/// `index`: `T` and 10 digits (11 or more past 78 million patients).
pub(crate) fn transaction_id(seed: u64, index: u64, slot: u32, fill: u32) -> String {
    let k = (u128::from(index) * u128::from(MAX_PRESCRIPTIONS) + u128::from(slot))
        * u128::from(MAX_FILLS_PER_RX)
        + u128::from(fill);
    const SPACE: u64 = 10_000_000_000;
    let n = if k < u128::from(SPACE) {
        u128::from(permute(seed, 0x7478, k as u64, SPACE))
    } else {
        k
    };
    format!("T{n:010}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn uuid_shape() {
        let id = resource_id(1, 2, Kind::Fill, 3);
        assert_eq!(id.len(), 36);
        let b = id.as_bytes();
        assert_eq!(b[14], b'4');
        assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'));
        assert!(id.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn ids_are_unique() {
        let mut seen = BTreeSet::new();
        for index in 0..300 {
            for kind in [
                Kind::Patient,
                Kind::Coverage,
                Kind::Prescription,
                Kind::Fill,
                Kind::Allergy,
            ] {
                for n in 0..20 {
                    assert!(seen.insert(resource_id(9, index, kind, n)));
                }
            }
        }
    }

    #[test]
    fn feistel_is_a_bijection_on_a_sample() {
        let mut seen = BTreeSet::new();
        for x in 0..20_000u128 {
            let y = feistel122(4, x << 50 | x);
            assert!(y < 1 << 122);
            assert!(seen.insert(y));
        }
    }

    #[test]
    fn a_patients_ids_share_no_prefix() {
        let a = resource_id(1, 10, Kind::Patient, 0);
        let b = resource_id(1, 10, Kind::Fill, 0);
        assert_ne!(a[..8], b[..8]);
    }

    #[test]
    fn numbers_have_their_width_and_are_unique() {
        let mut rx = BTreeSet::new();
        let mut tx = BTreeSet::new();
        let mut mrns = BTreeSet::new();
        for index in 0..2_000 {
            assert!(mrns.insert(mrn(5, index)));
            for slot in 0..MAX_PRESCRIPTIONS as u32 {
                let r = rx_number(5, index, slot);
                assert_eq!(r.len(), 7);
                assert!(rx.insert(r));
                for fill in 0..3 {
                    let t = transaction_id(5, index, slot, fill);
                    assert_eq!(t.len(), 11);
                    assert!(tx.insert(t));
                }
            }
        }
        assert!(mrns.iter().all(|m| m.len() == 8));
        // Past the 7-digit space the numbers grow instead of repeating.
        let last7 = rx_number(5, 1_124_999, 7);
        let first8 = rx_number(5, 1_125_000, 0);
        assert_eq!(last7.len(), 7);
        assert_eq!(first8, "10000000");
        // Any index works, up to the largest.
        assert_eq!(rx_number(5, u64::MAX, 7).len(), 21);
        assert!(transaction_id(5, u64::MAX, 7, 15).starts_with('T'));
        assert_eq!(
            mrn(5, u64::MAX),
            (u128::from(u64::MAX) + 10_000_000).to_string()
        );
    }

    #[test]
    fn permutation_is_injective_on_a_sample() {
        let mut seen = BTreeSet::new();
        for k in 0..50_000 {
            assert!(seen.insert(permute(3, 1, k, 9_000_000)));
        }
    }
}
