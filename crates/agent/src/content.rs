//! What a file's bytes look like: per-block Shannon entropy and chi-square,
//! striped (intermittent) randomness, magic numbers, and the TLSH
//! similarity digest, condensed into a small [`Fingerprint`] that is all the
//! agent keeps of a file (never its content).
//!
//! Ciphertext is statistically uniform: over a 4 KiB block its byte entropy
//! is ≈ 7.95 bits and its chi-square against the uniform distribution is
//! ≈ 255 ± 23 (255 degrees of freedom). Intermittent encryption (LockFile:
//! every other 16 bytes) leaves a block whose *stripes* alternate between
//! uniform and not, which the whole-block figures hide; [`striped`] splits a
//! block into alternating stripes of several widths and tests each half.

use crate::magic::{self, Magic};

/// The block size the samples are taken and judged in.
pub const BLOCK: usize = 4096;

/// Blocks sampled from a file: the head, then evenly spaced ones, the tail
/// last. Reading at most this many blocks bounds the cost of a close-write.
pub const SAMPLE_BLOCKS: usize = 4;

/// Chi-square below which a sample counts as uniform (255 degrees of
/// freedom: mean 255, standard deviation 22.6; this is mean + 4.2 sd).
const CHI2_UNIFORM: f64 = 350.0;

/// Shannon entropy of `bytes` in bits per byte (0 for an empty slice).
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let hist = histogram(bytes);
    let n = bytes.len() as f64;
    hist.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Pearson's chi-square of the byte histogram of `bytes` against the uniform
/// distribution over 256 values.
pub fn chi_square(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let hist = histogram(bytes);
    let expected = bytes.len() as f64 / 256.0;
    hist.iter()
        .map(|&c| {
            let d = f64::from(c) - expected;
            d * d / expected
        })
        .sum()
}

fn histogram(bytes: &[u8]) -> [u32; 256] {
    let mut hist = [0u32; 256];
    for &b in bytes {
        hist[usize::from(b)] += 1;
    }
    hist
}

/// Whether `bytes` look like uniform random bytes (ciphertext, or
/// well-compressed data): enough of them, high entropy and a chi-square in
/// the uniform range. Below 512 bytes nothing is judged uniform.
pub fn uniform(bytes: &[u8]) -> bool {
    bytes.len() >= 512 && entropy(bytes) >= 7.6 && chi_square(bytes) < CHI2_UNIFORM
}

/// Whether a block alternates between uniform and non-uniform stripes of one
/// of the widths 16…512 bytes (intermittent encryption): one half uniform,
/// the other clearly not. Returns the stripe width found.
pub fn striped(block: &[u8]) -> Option<usize> {
    if block.len() < 2048 {
        return None;
    }
    // Half uniform bytes and half anything else has at least ~5 bits of
    // entropy; a block below that, or uniform as a whole, has no uniform
    // half (and most benign writes end here, cheaply).
    let h = entropy(block);
    if h < 5.0 || uniform(block) {
        return None;
    }
    for width in [16usize, 32, 64, 128, 256, 512] {
        let mut even = Vec::with_capacity(block.len() / 2 + width);
        let mut odd = Vec::with_capacity(block.len() / 2 + width);
        for (i, chunk) in block.chunks(width).enumerate() {
            if i % 2 == 0 {
                even.extend_from_slice(chunk);
            } else {
                odd.extend_from_slice(chunk);
            }
        }
        let (e, o) = (uniform(&even), uniform(&odd));
        let clearly_not = |b: &[u8]| chi_square(b) > 4.0 * CHI2_UNIFORM || entropy(b) < 7.0;
        if (e && clearly_not(&odd)) || (o && clearly_not(&even)) {
            return Some(width);
        }
    }
    None
}

/// The offsets of the blocks sampled from a file of `len` bytes: the head,
/// evenly spaced middle blocks and the tail (no overlaps, at most
/// [`SAMPLE_BLOCKS`]).
pub fn sample_offsets(len: u64) -> Vec<u64> {
    let block = BLOCK as u64;
    let blocks = len.div_ceil(block);
    if blocks <= SAMPLE_BLOCKS as u64 {
        return (0..blocks).map(|i| i * block).collect();
    }
    let last = blocks - 1;
    let n = SAMPLE_BLOCKS as u64;
    (0..n).map(|i| (i * last / (n - 1)) * block).collect()
}

/// What the agent keeps of one version of a file: a few dozen bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    /// File length in bytes.
    pub len: u64,
    /// The known format its first bytes announce.
    pub magic: Option<Magic>,
    /// Whether the head block is uniform.
    pub head_uniform: bool,
    /// Sampled blocks judged (at least 512 bytes each).
    pub blocks: u8,
    /// Of those, how many are uniform.
    pub uniform_blocks: u8,
    /// A block with striped randomness (intermittent encryption) was seen.
    pub striped: bool,
    /// Whether the sampled bytes look like text (printable UTF-8 / ASCII).
    pub text: bool,
    /// Small-file content hash (FNV-1a of the sample), for ransom-note
    /// matching across folders.
    pub content_hash: u64,
    /// TLSH of the sampled bytes, when they have enough variety.
    pub tlsh: Option<Similarity>,
}

/// A TLSH digest (locality-sensitive: similar content, small distance).
#[derive(Clone)]
pub struct Similarity(tlsh2::TlshDefault);

impl Similarity {
    /// The digest's hex form.
    pub fn hex(&self) -> String {
        String::from_utf8_lossy(&self.0.hash()).into_owned()
    }
}

impl std::fmt::Debug for Similarity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "T{}", self.hex())
    }
}

impl PartialEq for Similarity {
    fn eq(&self, other: &Self) -> bool {
        self.0.hash() == other.0.hash()
    }
}

impl Fingerprint {
    /// Fingerprints a file from its sampled blocks (as read at
    /// [`sample_offsets`]) and its length.
    pub fn of_sample(len: u64, blocks: &[Vec<u8>]) -> Self {
        let head: &[u8] = blocks.first().map(Vec::as_slice).unwrap_or(&[]);
        let judged: Vec<&Vec<u8>> = blocks.iter().filter(|b| b.len() >= 512).collect();
        let uniform_blocks = judged.iter().filter(|b| uniform(b)).count();
        let striped_seen = blocks.iter().any(|b| striped(b).is_some());
        let mut all = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
        for b in blocks {
            all.extend_from_slice(b);
        }
        Fingerprint {
            len,
            magic: magic::sniff(head),
            head_uniform: uniform(head),
            blocks: judged.len().min(255) as u8,
            uniform_blocks: uniform_blocks.min(255) as u8,
            striped: striped_seen,
            text: looks_text(&all),
            content_hash: fnv1a(&all),
            tlsh: tlsh2::TlshDefaultBuilder::build_from(&all).map(Similarity),
        }
    }

    /// Fingerprints in-memory content (sampled the same way as a file).
    pub fn of_bytes(content: &[u8]) -> Self {
        let blocks: Vec<Vec<u8>> = sample_offsets(content.len() as u64)
            .into_iter()
            .map(|off| {
                let start = off as usize;
                content[start..(start + BLOCK).min(content.len())].to_vec()
            })
            .collect();
        Self::of_sample(content.len() as u64, &blocks)
    }

    /// Fraction of judged blocks that are uniform (0 when none was judged).
    pub fn uniform_fraction(&self) -> f64 {
        if self.blocks == 0 {
            0.0
        } else {
            f64::from(self.uniform_blocks) / f64::from(self.blocks)
        }
    }

    /// Whether the content is mostly uniform bytes (encrypted or compressed).
    pub fn mostly_uniform(&self) -> bool {
        self.blocks > 0 && self.uniform_fraction() >= 0.5
    }

    /// TLSH distance to `other` (larger is more different; ≥ 200 is
    /// unrelated content), when both have a digest.
    pub fn distance(&self, other: &Fingerprint) -> Option<i32> {
        match (&self.tlsh, &other.tlsh) {
            (Some(a), Some(b)) => Some(a.0.diff(&b.0, false)),
            _ => None,
        }
    }
}

/// Whether bytes are (almost all) printable text.
pub fn looks_text(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let printable = bytes
        .iter()
        .filter(|&&b| {
            b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
        })
        .count();
    let high = bytes.iter().filter(|&&b| b >= 0x80).count();
    printable * 100 >= bytes.len() * 97
        && high * 10 <= bytes.len()
        && std::str::from_utf8(bytes).is_ok()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    fn random(n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        rand::rng().fill_bytes(&mut v);
        v
    }

    pub(crate) fn prose(n: usize) -> Vec<u8> {
        let words = [
            "patient",
            "refill",
            "the",
            "pharmacy",
            "dose",
            "tablet",
            "of",
            "daily",
            "and",
            "insurance",
            "claim",
            "10mg",
            "shipment",
            "label",
            "\n",
        ];
        let mut out = Vec::with_capacity(n + 16);
        let mut i = 7usize;
        while out.len() < n {
            i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345) % 1_000_003;
            out.extend_from_slice(words[i % words.len()].as_bytes());
            out.push(b' ');
        }
        out.truncate(n);
        out
    }

    #[test]
    fn random_blocks_are_uniform_and_text_is_not() {
        for _ in 0..50 {
            assert!(uniform(&random(BLOCK)));
        }
        assert!(!uniform(&prose(BLOCK)));
        assert!(!uniform(&vec![0u8; BLOCK]));
        assert!(entropy(&random(BLOCK)) > 7.9);
        assert!(entropy(&prose(BLOCK)) < 5.0);
        assert_eq!(entropy(&[7u8; 100]), 0.0);
    }

    #[test]
    fn intermittent_encryption_every_other_16_bytes_is_striped() {
        let mut block = prose(BLOCK);
        let key = random(BLOCK);
        for (i, b) in block.iter_mut().enumerate() {
            if (i / 16) % 2 == 0 {
                *b ^= key[i];
            }
        }
        // The whole block hides it...
        assert!(!uniform(&block));
        // ...its stripes do not.
        assert_eq!(striped(&block), Some(16));
        assert_eq!(striped(&prose(BLOCK)), None);
        assert_eq!(striped(&random(BLOCK)), None);
    }

    #[test]
    fn header_only_encryption_shows_in_the_head_block() {
        let mut file = prose(64 * 1024);
        let key = random(BLOCK);
        for (b, k) in file.iter_mut().zip(&key) {
            *b ^= k;
        }
        let fp = Fingerprint::of_bytes(&file);
        assert!(fp.head_uniform);
        assert!(!fp.mostly_uniform());
        let before = Fingerprint::of_bytes(&prose(64 * 1024));
        assert!(!before.head_uniform);
    }

    #[test]
    fn sample_offsets_cover_head_and_tail() {
        assert!(sample_offsets(0).is_empty());
        assert_eq!(sample_offsets(100), vec![0]);
        assert_eq!(sample_offsets(4 * 4096), vec![0, 4096, 8192, 12288]);
        let offs = sample_offsets(1 << 20);
        assert_eq!(offs.len(), SAMPLE_BLOCKS);
        assert_eq!(offs[0], 0);
        assert_eq!(*offs.last().unwrap(), (1 << 20) - 4096);
    }

    #[test]
    fn tlsh_separates_edits_from_encryption() {
        let a = prose(20_000);
        let mut edited = a.clone();
        edited[5000..5010].copy_from_slice(b"0123456789");
        let fa = Fingerprint::of_bytes(&a);
        let fe = Fingerprint::of_bytes(&edited);
        let fr = Fingerprint::of_bytes(&random(20_000));
        assert!(fa.distance(&fe).unwrap() < 60, "{:?}", fa.distance(&fe));
        assert!(fa.distance(&fr).unwrap() > 150, "{:?}", fa.distance(&fr));
    }

    proptest::proptest! {
        #[test]
        fn entropy_is_bounded(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..5000)) {
            let h = entropy(&bytes);
            proptest::prop_assert!((0.0..=8.0 + 1e-9).contains(&h));
            proptest::prop_assert!(chi_square(&bytes) >= 0.0);
        }

        #[test]
        fn sample_offsets_are_in_bounds_and_sorted(len in 0u64..(1 << 40)) {
            let offs = sample_offsets(len);
            proptest::prop_assert!(offs.len() <= SAMPLE_BLOCKS);
            proptest::prop_assert!(offs.windows(2).all(|w| w[0] + BLOCK as u64 <= w[1]));
            proptest::prop_assert!(offs.iter().all(|&o| o < len.max(1)));
        }
    }
}
