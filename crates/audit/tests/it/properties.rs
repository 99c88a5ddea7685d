//! Properties: every proof the log produces verifies; an altered proof,
//! leaf, index, size or root does not. Proofs from the store-backed tree
//! (stored nodes at levels 4, 8, ...) equal the in-memory reference.

use proptest::prelude::*;
use rxvault_audit::AuditReader;
use rxvault_audit::merkle::{
    self, CompactRange, Hash, MemoryTree, verify_consistency, verify_inclusion,
};
use rxvault_store::SqliteAuditStore;
use rxvault_store::audit::{AuditBatch, AuditEntryWrite, AuditNode, AuditStore};
use std::sync::Arc;

fn tree(n: usize, seed: u64) -> MemoryTree {
    MemoryTree {
        leaves: (0..n as u64)
            .map(|i| merkle::leaf_hash(&(i ^ seed).to_be_bytes()))
            .collect(),
    }
}

/// The proof of leaf `i` in a tree of `n` has this many hashes.
fn path_len(i: u64, n: u64) -> usize {
    merkle::inclusion_proof(&mut tree(n as usize, 0), i, n)
        .unwrap()
        .len()
}

fn consistency_len(m: u64, n: u64) -> Option<usize> {
    (m <= n).then(|| {
        merkle::consistency_proof(&mut tree(n as usize, 0), m, n)
            .unwrap()
            .len()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inclusion_proofs_verify_and_alterations_do_not(
        n in 1u64..300, i_frac in 0.0f64..1.0, seed: u64, which in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let i = ((n as f64 * i_frac) as u64).min(n - 1);
        let mut t = tree(n as usize, seed);
        let root = merkle::root(&mut t, n).unwrap();
        let leaf = t.leaves[i as usize];
        let proof = merkle::inclusion_proof(&mut t, i, n).unwrap();
        prop_assert!(verify_inclusion(i, n, &leaf, &proof, &root).is_ok());

        // Any bit of any hash of the proof.
        if !proof.is_empty() {
            let k = which.index(proof.len());
            let mut p = proof.clone();
            p[k][(bit as usize * 3) % 32] ^= 1 << bit;
            prop_assert!(verify_inclusion(i, n, &leaf, &p, &root).is_err());
            let mut short = proof.clone();
            short.remove(k);
            prop_assert!(verify_inclusion(i, n, &leaf, &short, &root).is_err());
        }
        let mut long = proof.clone();
        long.push(root);
        prop_assert!(verify_inclusion(i, n, &leaf, &long, &root).is_err());
        // The leaf, the root.
        let mut other = leaf;
        other[bit as usize] ^= 0x80;
        prop_assert!(verify_inclusion(i, n, &other, &proof, &root).is_err());
        prop_assert!(verify_inclusion(i, n, &leaf, &proof, &other).is_err());
        // Any other index.
        for j in [i.wrapping_sub(1), i + 1, i ^ 1, i ^ 2, n, (i + n / 2) % n] {
            if j != i {
                prop_assert!(verify_inclusion(j, n, &leaf, &proof, &root).is_err(), "index {j}");
            }
        }
        // Any other size whose proofs have another length (same-shaped
        // sizes are told apart by the signed checkpoint, which binds the
        // size to the root).
        for m in [n - 1, n + 1, n * 2, n / 2, 1, n + 100] {
            if m != n && (m <= i || path_len(i, m) != proof.len()) {
                prop_assert!(verify_inclusion(i, m, &leaf, &proof, &root).is_err(), "size {m}");
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_alterations_do_not(
        n in 1u64..300, m_frac in 0.0f64..1.0, seed: u64, which in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let m = ((n as f64 * m_frac) as u64).clamp(1, n);
        let mut t = tree(n as usize, seed);
        let (r1, r2) = (merkle::root(&mut t, m).unwrap(), merkle::root(&mut t, n).unwrap());
        let proof = merkle::consistency_proof(&mut t, m, n).unwrap();
        prop_assert!(verify_consistency(m, n, &r1, &r2, &proof).is_ok());
        if m == n {
            prop_assert!(proof.is_empty());
            return Ok(());
        }
        let k = which.index(proof.len());
        let mut p = proof.clone();
        p[k][(bit as usize * 5) % 32] ^= 1 << bit;
        prop_assert!(verify_consistency(m, n, &r1, &r2, &p).is_err());
        let mut short = proof.clone();
        short.remove(k);
        prop_assert!(verify_consistency(m, n, &r1, &r2, &short).is_err());
        let mut long = proof.clone();
        long.push(r1);
        prop_assert!(verify_consistency(m, n, &r1, &r2, &long).is_err());
        let mut w = r1;
        w[0] ^= 1;
        prop_assert!(verify_consistency(m, n, &w, &r2, &proof).is_err());
        prop_assert!(verify_consistency(m, n, &r1, &w, &proof).is_err());
        prop_assert!(verify_consistency(m, n, &r2, &r1, &proof).is_err());
        // A tree that differs anywhere in the first m leaves is not consistent.
        let j = which.index(m as usize);
        let mut forked = t.clone();
        forked.leaves[j][0] ^= 1;
        let fr1 = merkle::root(&mut forked, m).unwrap();
        prop_assert!(verify_consistency(m, n, &fr1, &r2, &proof).is_err());
        for (a, b) in [(m - 1, n), (m + 1, n), (m, n + 1), (m, n * 2), (m, n - 1)] {
            if (a, b) != (m, n) && a >= 1 && consistency_len(a, b) != Some(proof.len()) {
                prop_assert!(verify_consistency(a, b, &r1, &r2, &proof).is_err(), "{a} -> {b}");
            }
        }
    }

    #[test]
    fn compact_range_roots_match_the_recursive_definition(n in 0usize..600, seed: u64) {
        let mut t = tree(n, seed);
        let mut c = CompactRange::new();
        for l in &t.leaves {
            c.push(*l, |_, _, _| {});
        }
        prop_assert_eq!(c.root(), merkle::root(&mut t, n as u64).unwrap());
    }
}

/// A SQLite store holding `leaves` as raw entries and the nodes the log
/// would store, written in batches of `batch`.
fn stored(n: usize, batch: usize) -> (tempfile::TempDir, Arc<dyn AuditStore>, MemoryTree) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteAuditStore::open(&dir.path().join("audit.db"), true).unwrap();
    let bytes: Vec<Vec<u8>> = (0..n).map(|i| format!("leaf {i}").into_bytes()).collect();
    let mut c = CompactRange::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(batch.max(1)) {
        let mut b = AuditBatch::default();
        for &i in chunk {
            c.push(merkle::leaf_hash(&bytes[i]), |level, index, hash| {
                if merkle::is_stored_level(level) {
                    b.nodes.push(AuditNode {
                        level,
                        index,
                        hash: *hash,
                    });
                }
            });
            b.entries.push(AuditEntryWrite {
                index: i as u64,
                time_ms: 0,
                dek: 1,
                bytes: bytes[i].clone(),
                keys: vec![],
            });
        }
        assert_eq!(
            store.append(&b).unwrap(),
            rxvault_store::audit::Appended::Committed
        );
    }
    let t = MemoryTree {
        leaves: bytes.iter().map(|b| merkle::leaf_hash(b)).collect(),
    };
    (dir, Arc::new(store), t)
}

#[test]
fn store_backed_proofs_equal_the_reference_at_every_size() {
    let n = 600; // crosses levels 4 and 8
    let (_dir, store, mut t) = stored(n, 37);
    let reader = AuditReader::new(store.clone(), None);
    // Only levels 4 and 8 are stored.
    assert_eq!(store.node_levels().unwrap(), vec![4, 8]);
    assert_eq!(store.nodes(4, 0, u64::MAX).unwrap().len(), n / 16);
    for size in (1..=n as u64).step_by(7).chain([256, 512, 600]) {
        let root: Hash = merkle::root(&mut t, size).unwrap();
        assert_eq!(reader.root(size).unwrap(), root, "root {size}");
        for i in [0, size / 3, size / 2, size - 1] {
            let want = merkle::inclusion_proof(&mut t, i, size).unwrap();
            let got = reader.inclusion_proof(i, size).unwrap();
            assert_eq!(got, want, "inclusion {i} in {size}");
            verify_inclusion(i, size, &t.leaves[i as usize], &got, &root).unwrap();
        }
        for old in [1, size / 2, size - 1, size] {
            let old = old.max(1);
            let want = merkle::consistency_proof(&mut t, old, size).unwrap();
            assert_eq!(
                reader.consistency_proof(old, size).unwrap(),
                want,
                "{old} -> {size}"
            );
            let r1 = merkle::root(&mut t, old).unwrap();
            verify_consistency(old, size, &r1, &root, &want).unwrap();
        }
    }
    // The incremental right edge loads from the store at any size.
    for size in [0u64, 1, 15, 16, 17, 255, 256, 257, 599, 600] {
        let from_store = CompactRange::load(&mut reader.subtrees(size), size).unwrap();
        let from_memory = CompactRange::load(&mut t, size).unwrap();
        assert_eq!(from_store, from_memory, "size {size}");
    }
    // Outside the tree: an error, not a wrong answer.
    assert!(reader.inclusion_proof(600, 600).is_err());
    assert!(reader.consistency_proof(10, 601).is_err());
}
