//! RFC 6962 known answers: the Certificate Transparency reference vectors
//! (google/certificate-transparency-go `merkletree`, transparency-dev/merkle
//! `testonly` and `proof`): the 8 leaf inputs, every complete subtree hash,
//! the roots of every size, and their inclusion and consistency proofs;
//! computed in memory and read back through the SQLite store.

use rxvault_audit::merkle::{
    self, CompactRange, Hash, MemoryTree, ProofError, Subtrees, root_from_inclusion,
    verify_consistency, verify_inclusion,
};
use rxvault_store::SqliteAuditStore;
use rxvault_store::audit::{AuditBatch, AuditEntryWrite, AuditStore};

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|s| hex::decode(s).unwrap())
    .collect()
}

/// NodeHashes(): level, then index.
fn node_hashes() -> Vec<Vec<Hash>> {
    vec![
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ]
        .iter()
        .map(|s| h(s))
        .collect(),
        [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ]
        .iter()
        .map(|s| h(s))
        .collect(),
        [
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ]
        .iter()
        .map(|s| h(s))
        .collect(),
        vec![h(
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        )],
    ]
}

/// RootHashes(), by size 0..=8.
fn roots() -> Vec<Hash> {
    [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    .iter()
    .map(|s| h(s))
    .collect()
}

/// (leaf number, 1-based as in the reference; tree size; proof).
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            3,
            3,
            vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            2,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

fn memory() -> MemoryTree {
    MemoryTree {
        leaves: leaves().iter().map(|l| merkle::leaf_hash(l)).collect(),
    }
}

/// The reference leaves stored as raw entries (the store does not care
/// what the bytes are), read back through the store-backed tree.
fn stored() -> (tempfile::TempDir, SqliteAuditStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteAuditStore::open(&dir.path().join("audit.db"), true).unwrap();
    let batch = AuditBatch {
        entries: leaves()
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| AuditEntryWrite {
                index: i as u64,
                time_ms: 0,
                dek: 1,
                bytes,
                keys: vec![],
            })
            .collect(),
        ..Default::default()
    };
    assert_eq!(
        store.append(&batch).unwrap(),
        rxvault_store::audit::Appended::Committed
    );
    (dir, store)
}

#[test]
fn leaf_and_node_hashes_match_the_reference() {
    let mut tree = memory();
    for (level, hashes) in node_hashes().iter().enumerate() {
        for (i, want) in hashes.iter().enumerate() {
            assert_eq!(
                &tree.subtree(level as u8, i as u64).unwrap(),
                want,
                "node {level}/{i}"
            );
        }
    }
    assert_eq!(merkle::empty_root(), roots()[0]);
}

#[test]
fn roots_of_every_size_match_in_memory_incrementally_and_from_the_store() {
    let (_dir, store) = stored();
    let reader = rxvault_audit::AuditReader::new(std::sync::Arc::new(store), None);
    let mut tree = memory();
    let mut compact = CompactRange::new();
    assert_eq!(compact.root(), roots()[0]);
    for (size, want) in roots().iter().enumerate() {
        assert_eq!(
            &merkle::root(&mut tree, size as u64).unwrap(),
            want,
            "size {size}"
        );
        assert_eq!(
            &reader.root(size as u64).unwrap(),
            want,
            "stored, size {size}"
        );
        if size > 0 {
            compact.push(tree.leaves[size - 1], |_, _, _| {});
            assert_eq!(&compact.root(), want, "incremental, size {size}");
        }
    }
}

/// The reference's corrupted-proof probes (transparency-dev/merkle
/// `corruptInclusionProof`): every one must fail.
fn inclusion_probes_fail(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) {
    let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    let empty = roots()[0];
    let mut probes: Vec<(u64, u64, Hash, Vec<Hash>, Hash, String)> = vec![
        (
            index.wrapping_sub(1),
            size,
            *leaf,
            proof.to_vec(),
            *root,
            "index - 1".into(),
        ),
        (
            index + 1,
            size,
            *leaf,
            proof.to_vec(),
            *root,
            "index + 1".into(),
        ),
        (
            index ^ 2,
            size,
            *leaf,
            proof.to_vec(),
            *root,
            "index ^ 2".into(),
        ),
        (
            index,
            size * 2,
            *leaf,
            proof.to_vec(),
            *root,
            "size * 2".into(),
        ),
        (
            index,
            size / 2,
            *leaf,
            proof.to_vec(),
            *root,
            "size / 2".into(),
        ),
        (
            index,
            size,
            merkle::leaf_hash(b"WrongLeaf"),
            proof.to_vec(),
            *root,
            "wrong leaf".into(),
        ),
        (
            index,
            size,
            *leaf,
            proof.to_vec(),
            empty,
            "empty root".into(),
        ),
        (
            index,
            size,
            *leaf,
            proof.to_vec(),
            some,
            "random root".into(),
        ),
    ];
    let mut with = |p: Vec<Hash>, d: &str| probes.push((index, size, *leaf, p, *root, d.into()));
    with([proof, &[empty]].concat(), "trailing garbage");
    with([proof, &[*root]].concat(), "trailing root");
    with([&[empty], proof].concat(), "preceding garbage");
    with([&[*root], proof].concat(), "preceding root");
    for i in 0..proof.len() {
        let mut p = proof.to_vec();
        p[i][0] ^= 8;
        with(p, &format!("proof[{i}] bit 3"));
    }
    if !proof.is_empty() {
        with(proof[..proof.len() - 1].to_vec(), "removed component");
    }
    if proof.len() > 1 {
        with(
            [&proof[..1], &[some], &proof[1..]].concat(),
            "inserted component",
        );
    }
    for (i, s, l, p, r, d) in probes {
        assert!(
            verify_inclusion(i, s, &l, &p, &r).is_err(),
            "probe {d} verified (leaf {index}, size {size})"
        );
    }
}

#[test]
fn inclusion_proofs_match_and_verify_and_corruptions_fail() {
    let (_dir, store) = stored();
    let reader = rxvault_audit::AuditReader::new(std::sync::Arc::new(store), None);
    let mut tree = memory();
    let roots = roots();
    for (leaf_no, size, want) in inclusion_vectors() {
        let index = leaf_no - 1;
        let proof = merkle::inclusion_proof(&mut tree, index, size).unwrap();
        assert_eq!(proof, want, "leaf {index} size {size}");
        assert_eq!(reader.inclusion_proof(index, size).unwrap(), want, "stored");
        let leaf = tree.leaves[index as usize];
        let root = roots[size as usize];
        assert_eq!(
            root_from_inclusion(index, size, &leaf, &proof).unwrap(),
            root
        );
        verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
        inclusion_probes_fail(index, size, &leaf, &proof, &root);
    }
    // Invalid positions never verify (the reference's first probes).
    let some = merkle::leaf_hash(b"x");
    for (i, s) in [(0, 0), (1, 0), (2, 1)] {
        assert!(matches!(
            verify_inclusion(i, s, &some, &[], &roots[0]),
            Err(ProofError::IndexOutOfRange { .. })
        ));
    }
    assert!(verify_inclusion(0, 1, &some, &[], &roots[0]).is_err());
}

#[test]
fn consistency_proofs_match_and_verify_and_corruptions_fail() {
    let (_dir, store) = stored();
    let reader = rxvault_audit::AuditReader::new(std::sync::Arc::new(store), None);
    let mut tree = memory();
    let roots = roots();
    for (old, new, want) in consistency_vectors() {
        let proof = merkle::consistency_proof(&mut tree, old, new).unwrap();
        assert_eq!(proof, want, "{old} -> {new}");
        assert_eq!(reader.consistency_proof(old, new).unwrap(), want, "stored");
        let (r1, r2) = (roots[old as usize], roots[new as usize]);
        verify_consistency(old, new, &r1, &r2, &proof).unwrap();
        if proof.is_empty() {
            continue;
        }
        // transparency-dev/merkle corruptConsistencyProof.
        let wrong = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>, String)> = vec![
            (old - 1, new, r1, r2, proof.clone(), "old - 1".into()),
            (old + 1, new, r1, r2, proof.clone(), "old + 1".into()),
            (old ^ 2, new, r1, r2, proof.clone(), "old ^ 2".into()),
            (old, new * 2, r1, r2, proof.clone(), "new * 2".into()),
            (old, new / 2, r1, r2, proof.clone(), "new / 2".into()),
            (old, new, wrong, r2, proof.clone(), "wrong root1".into()),
            (old, new, r1, wrong, proof.clone(), "wrong root2".into()),
            (old, new, r2, r1, proof.clone(), "swapped roots".into()),
            (old, new, r1, r2, vec![], "empty proof".into()),
            (
                old,
                new,
                r1,
                r2,
                [&proof[..], &[roots[0]]].concat(),
                "trailing garbage".into(),
            ),
            (
                old,
                new,
                r1,
                r2,
                [&proof[..], &[r1]].concat(),
                "trailing root1".into(),
            ),
            (
                old,
                new,
                r1,
                r2,
                [&proof[..], &[r2]].concat(),
                "trailing root2".into(),
            ),
            (
                old,
                new,
                r1,
                r2,
                [&[roots[0]], &proof[..]].concat(),
                "preceding garbage".into(),
            ),
            (
                old,
                new,
                r1,
                r2,
                [&[r1], &proof[..]].concat(),
                "preceding root1".into(),
            ),
            (
                old,
                new,
                r1,
                r2,
                [&[r2], &proof[..]].concat(),
                "preceding root2".into(),
            ),
            (
                old,
                new,
                r1,
                r2,
                [&[proof[0]], &proof[..]].concat(),
                "preceding proof[0]".into(),
            ),
            (
                old,
                new,
                r1,
                r2,
                proof[..proof.len() - 1].to_vec(),
                "truncated".into(),
            ),
        ];
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i][0] ^= 16;
            probes.push((old, new, r1, r2, p, format!("proof[{i}] bit 4")));
        }
        for (o, n, a, b, p, d) in probes {
            assert!(
                verify_consistency(o, n, &a, &b, &p).is_err(),
                "probe {d} verified ({old} -> {new})"
            );
        }
    }
    // The reference's edge cases.
    let (a, b) = (merkle::leaf_hash(b"1"), merkle::leaf_hash(b"2"));
    let e = roots[0];
    assert!(verify_consistency(0, 0, &a, &a, &[]).is_ok());
    assert!(verify_consistency(0, 1, &a, &b, &[]).is_ok());
    assert!(verify_consistency(1, 1, &b, &b, &[]).is_ok());
    assert!(verify_consistency(0, 0, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 0, &a, &b, &[]).is_err());
    assert!(verify_consistency(2, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 2, &a, &b, &[]).is_err());
    assert!(verify_consistency(0, 0, &e, &e, &[e]).is_err());
    assert!(verify_consistency(0, 1, &e, &e, &[e]).is_err());
    assert!(verify_consistency(1, 1, &e, &e, &[e]).is_err());
}
