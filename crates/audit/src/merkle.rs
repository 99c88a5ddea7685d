//! The RFC 6962 Merkle tree over the log: hashing, proofs, verification.
//!
//! - leaf hash `SHA-256(0x00 ‖ entry bytes)`, node hash
//!   `SHA-256(0x01 ‖ left ‖ right)`, the empty tree's root `SHA-256("")`
//!   (RFC 6962 §2.1);
//! - proofs are generated with the RFC 6962 `PATH` and `SUBPROOF`
//!   recursions over any [`Subtrees`] source of complete-subtree hashes, and
//!   verified with the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms, which
//!   need nothing but the proof, the sizes and the hashes;
//! - [`CompactRange`] is the right edge of the tree (one hash per set bit of
//!   the size): appending a leaf updates it in O(1) amortised and names the
//!   complete subtrees the leaf finished, which is how the log knows which
//!   nodes to store.
//!
//! # Which nodes are stored
//! Complete subtrees at levels 4, 8, 12, ... ([`is_stored_level`]): one row
//! per 16 entries, 1/15 of the leaf count in all. Any other complete
//! subtree is at most 2^3 = 8 stored hashes (or entries) below a stored one,
//! so a root, inclusion proof or consistency proof at any size costs
//! O(log n) reads.

use crate::{Error, Result};
use rxvault_crypto::sha256;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Levels stored are the multiples of this (level 0, the leaves, is
/// recomputed from the entries).
pub const STORED_LEVEL_STRIDE: u8 = 4;

/// Whether complete subtrees of `level` are stored.
pub fn is_stored_level(level: u8) -> bool {
    level > 0 && level.is_multiple_of(STORED_LEVEL_STRIDE)
}

/// The hash of a leaf (an entry's canonical bytes).
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0u8], data])
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1u8], left, right])
}

/// The root of the empty tree.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// A source of complete-subtree hashes: the subtree of `2^level` leaves
/// starting at leaf `index << level`.
pub trait Subtrees {
    /// That subtree's hash.
    fn subtree(&mut self, level: u8, index: u64) -> Result<Hash>;
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start : start + n])`, `n >= 1`, for the ranges the RFC 6962
/// recursions produce (`start` is a multiple of the largest power of two
/// not above `n`).
pub fn range_hash(src: &mut dyn Subtrees, start: u64, n: u64) -> Result<Hash> {
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros() as u8;
        return src.subtree(level, start >> level);
    }
    let k = split(n);
    let left = range_hash(src, start, k)?;
    let right = range_hash(src, start + k, n - k)?;
    Ok(node_hash(&left, &right))
}

/// The root hash of the tree of the first `size` leaves.
pub fn root(src: &mut dyn Subtrees, size: u64) -> Result<Hash> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `size`
/// leaves (RFC 6962 §2.1.1), leaf-side first.
pub fn inclusion_proof(src: &mut dyn Subtrees, index: u64, size: u64) -> Result<Vec<Hash>> {
    if index >= size {
        return Err(Error::Invalid(format!(
            "no leaf {index} in a tree of {size} entries"
        )));
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path(src: &mut dyn Subtrees, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) -> Result<()> {
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, start, k, out)?;
        out.push(range_hash(src, start + k, n - k)?);
    } else {
        path(src, m - k, start + k, n - k, out)?;
        out.push(range_hash(src, start, k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `old` and `new` leaves
/// (RFC 6962 §2.1.2). Empty when `old` is 0 or equals `new`.
pub fn consistency_proof(src: &mut dyn Subtrees, old: u64, new: u64) -> Result<Vec<Hash>> {
    if old > new {
        return Err(Error::Invalid(format!(
            "no consistency proof from {old} entries to fewer ({new})"
        )));
    }
    let mut out = Vec::new();
    if old > 0 && old < new {
        subproof(src, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

fn subproof(
    src: &mut dyn Subtrees,
    m: u64,
    start: u64,
    n: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<()> {
    if m == n {
        if !complete {
            out.push(range_hash(src, start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, k, complete, out)?;
        out.push(range_hash(src, start + k, n - k)?);
    } else {
        subproof(src, m - k, start + k, n - k, false, out)?;
        out.push(range_hash(src, start, k)?);
    }
    Ok(())
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The index is not in the tree.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The sizes are not in order.
    #[error("the first tree ({old}) is larger than the second ({new})")]
    SizesOutOfOrder {
        /// The first size.
        old: u64,
        /// The second size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has the wrong length for these tree sizes")]
    WrongLength,
    /// The hashes do not lead to the expected root(s).
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Verifies that `leaf` is at `index` in the tree of `size` with `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion(index, size, leaf, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies that the tree of `old` leaves with `old_root` is a prefix of
/// the tree of `new` leaves with `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizesOutOfOrder { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof.iter());
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*path[0], *path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The right edge of a tree: the hashes of the complete subtrees the first
/// `size` leaves decompose into, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compact range of the first `size` leaves, from a subtree source.
    pub fn load(src: &mut dyn Subtrees, size: u64) -> Result<Self> {
        let mut hashes = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                hashes.push(src.subtree(level, start >> level)?);
                start += 1 << level;
            }
        }
        Ok(Self { size, hashes })
    }

    /// How many leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash. `completed(level, index, hash)` is called for
    /// every complete subtree the leaf finishes, from the leaf itself
    /// (level 0) upwards.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(u8, u64, &Hash)) {
        let index = self.size;
        completed(0, index, &leaf);
        let mut h = leaf;
        let mut level = 0u8;
        while index & (1 << level) != 0 {
            let left = self.hashes.pop().expect("a left sibling per set bit");
            h = node_hash(&left, &h);
            level += 1;
            completed(level, index >> level, &h);
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The root hash.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, h| node_hash(h, &acc))
    }
}

/// Complete subtrees of an in-memory list of leaf hashes (tests, and the
/// reference the stored tree is compared with).
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// The leaf hashes.
    pub leaves: Vec<Hash>,
}

impl Subtrees for MemoryTree {
    fn subtree(&mut self, level: u8, index: u64) -> Result<Hash> {
        let start = usize::try_from(index << level).map_err(|_| Error::Invalid("index".into()))?;
        let n = 1usize << level;
        if start + n > self.leaves.len() {
            return Err(Error::Invalid(format!(
                "no complete subtree at level {level} index {index}"
            )));
        }
        let mut layer: Vec<Hash> = self.leaves[start..start + n].to_vec();
        while layer.len() > 1 {
            layer = layer.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
        }
        Ok(layer[0])
    }
}

/// Folds `2^k` consecutive hashes of one level into their subtree hash.
pub(crate) fn fold(mut layer: Vec<Hash>) -> Hash {
    debug_assert!(layer.len().is_power_of_two());
    while layer.len() > 1 {
        layer = layer.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    layer[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(8), 4);
        assert_eq!(split(9), 8);
    }

    #[test]
    fn compact_range_root_matches_the_recursive_root() {
        let mut tree = MemoryTree::default();
        let mut compact = CompactRange::new();
        for i in 0..70u32 {
            let leaf = leaf_hash(&i.to_be_bytes());
            let mut finished = Vec::new();
            compact.push(leaf, |l, idx, _| finished.push((l, idx)));
            tree.leaves.push(leaf);
            // Leaf i finishes one subtree per trailing one bit of i.
            assert_eq!(finished.len(), 1 + i.trailing_ones() as usize);
            assert_eq!(compact.root(), root(&mut tree, u64::from(i) + 1).unwrap());
            let loaded = CompactRange::load(&mut tree, u64::from(i) + 1).unwrap();
            assert_eq!(loaded, compact);
        }
    }
}
