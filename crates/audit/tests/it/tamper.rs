//! Tampering, on SQLite and on PostgreSQL, with the attacker's raw access
//! to the rows: every edit, deletion, reordering, insertion, truncation,
//! rollback and replaced signature is reported, with the first bad index.

use crate::common::{Db, Raw, backends, clock, config, entry, keyring};
use rxvault_audit::checkpoint::{Checkpoint, SignedCheckpoint, origin_for};
use rxvault_audit::merkle::{self, CompactRange, MemoryTree};
use rxvault_audit::verify::verify;
use rxvault_audit::{AuditLog, ProblemKind, Report, StoredEntry, VerifyOptions, open_store};
use rxvault_crypto::Secrets;

const N: u64 = 100;

/// A log of 100 entries with a checkpoint at every multiple of 10;
/// returns the external (witness) copies of the checkpoints at 50 and 100.
fn logged(db: &Db, k: &Secrets) -> Vec<SignedCheckpoint> {
    let log =
        AuditLog::open_for(&db.location(), "vault-1", k.clone(), clock(), config(1000)).unwrap();
    let mut kept = Vec::new();
    for wave in 0..10 {
        let pending: Vec<_> = (wave * 10..wave * 10 + 10)
            .map(|i| log.submit(entry(i)).unwrap())
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
        let cp = log.checkpoint().unwrap();
        assert_eq!(cp.checkpoint.size, wave * 10 + 10);
        if cp.checkpoint.size.is_multiple_of(50) {
            // Through text, as a file kept elsewhere would be.
            kept.push(SignedCheckpoint::parse(cp.note()).unwrap());
        }
    }
    assert_eq!(log.reader().checkpoints().unwrap().len(), 10);
    log.close().unwrap();
    kept
}

fn check(
    db: &Db,
    k: Option<&Secrets>,
    trusted: Vec<[u8; 32]>,
    external: Vec<SignedCheckpoint>,
) -> Report {
    let store = open_store(&db.location(), false).unwrap();
    verify(
        store.as_ref(),
        &VerifyOptions {
            keyring: k.cloned(),
            trusted_keys: trusted,
            external,
            origin: Some(origin_for("vault-1")),
            check_index: true,
            chunk: 16,
        },
    )
    .unwrap()
}

fn expect(r: &Report, kind: ProblemKind, index: u64, what: &str, db: &Db) {
    assert!(!r.ok(), "{what} on {}: not detected", db.name());
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == kind && p.index == Some(index)),
        "{what} on {}: expected {kind} at {index}, got {:#?}",
        db.name(),
        r.problems
    );
    assert_eq!(
        r.first_bad_index(),
        Some(index),
        "{what} on {}: {:#?}",
        db.name(),
        r.problems
    );
}

fn decode(bytes: &[u8]) -> StoredEntry {
    StoredEntry::decode(bytes).unwrap()
}

/// Rewrites the header index of stored bytes (offset 1..9).
fn with_index(mut bytes: Vec<u8>, index: u64) -> Vec<u8> {
    bytes[1..9].copy_from_slice(&index.to_be_bytes());
    bytes
}

/// Moves rows `idx >= from` by `delta` (two steps, so the primary key
/// never collides), optionally rewriting their header indexes too.
fn shift(raw: &mut Raw, from: u64, delta: i64, headers: bool, until: u64) {
    let rows: Vec<(u64, Vec<u8>)> = (from..until).map(|i| (i, raw.entry(i))).collect();
    raw.exec(&format!("DELETE FROM audit_entries WHERE idx >= {from}"));
    for (i, bytes) in rows {
        let to = (i as i64 + delta) as u64;
        let bytes = if headers {
            with_index(bytes, to)
        } else {
            bytes
        };
        raw.insert_entry(to, 0, &bytes);
    }
}

/// The attacker recomputes every stored node from the (tampered) entries.
fn recompute_nodes(raw: &mut Raw, n: u64) -> MemoryTree {
    let mut c = CompactRange::new();
    let mut t = MemoryTree::default();
    let mut nodes = Vec::new();
    for i in 0..n {
        let leaf = merkle::leaf_hash(&raw.entry(i));
        t.leaves.push(leaf);
        c.push(leaf, |l, idx, h| {
            if merkle::is_stored_level(l) {
                nodes.push((l, idx, *h));
            }
        });
    }
    for (l, idx, h) in nodes {
        raw.set_node(l, idx, &h);
    }
    t
}

#[test]
fn an_untouched_log_verifies_with_key_keyless_and_against_witnesses() {
    for db in backends("tamper0") {
        let k = keyring();
        let kept = logged(&db, &k);
        let r = check(&db, Some(&k), vec![], kept.clone());
        assert!(r.ok(), "{}: {:#?}", db.name(), r.problems);
        assert_eq!(
            (
                r.entries,
                r.covered,
                r.stored_checkpoints,
                r.external_checkpoints
            ),
            (N, N, 10, 2)
        );
        assert_eq!(r.bodies_checked, N);
        assert!(r.index_rows_checked >= 5 * N);
        // Keyless, anchored only by the witness copies.
        let r = check(&db, None, vec![], kept);
        assert!(r.ok(), "{}: {:#?}", db.name(), r.problems);
        // No anchor at all: signatures cannot mean anything, so it fails.
        let r = check(&db, None, vec![], vec![]);
        assert!(r.has(ProblemKind::NoTrustAnchor));
    }
}

#[test]
fn edits_are_pinned_to_their_index() {
    for db in backends("tamper1") {
        let k = keyring();
        let public = k.signing_public_key().unwrap();
        let kept = logged(&db, &k);
        let mut raw = db.raw();
        let original = raw.entry(37);

        // The time in the header.
        let mut b = original.clone();
        b[12] ^= 0x40;
        raw.set_entry(37, &b);
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Edited,
            37,
            "header edit",
            &db,
        );
        // Keyless: caught by the stored node over 32..48 and the checkpoints
        // at 40..100; the first bad index is that node's first entry.
        let r = check(&db, None, vec![public], vec![]);
        assert!(r.has(ProblemKind::NodeMismatch) && r.has(ProblemKind::Edited));
        assert_eq!(r.first_bad_index(), Some(32), "{:#?}", r.problems);

        // A patient record key swapped in the header.
        let mut s = decode(&original);
        s.header.patients[0].0[0] ^= 1;
        raw.set_entry(37, &s.encode());
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Edited,
            37,
            "patient edit",
            &db,
        );

        // A byte of the sealed body.
        let mut b = original.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        raw.set_entry(37, &b);
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Edited,
            37,
            "body edit",
            &db,
        );

        // The same, with every stored node recomputed by the attacker: the
        // signed checkpoints still catch it; keyless, between 30 and 40.
        recompute_nodes(&mut raw, N);
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Edited,
            37,
            "edit + nodes",
            &db,
        );
        let r = check(&db, None, vec![], kept);
        expect(&r, ProblemKind::Edited, 30, "keyless edit + nodes", &db);
        assert!(!r.has(ProblemKind::NodeMismatch));
    }
}

#[test]
fn deletions_are_found_with_or_without_renumbering() {
    for db in backends("tamper2") {
        let k = keyring();
        logged(&db, &k);
        let mut raw = db.raw();
        let original = raw.entry(37);
        raw.exec("DELETE FROM audit_entries WHERE idx = 37");
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Deleted,
            37,
            "delete",
            &db,
        );
        // Renumber everything after it, rows and headers.
        shift(&mut raw, 38, -1, true, N);
        let r = check(&db, Some(&k), vec![], vec![]);
        expect(&r, ProblemKind::Deleted, 37, "delete + renumber", &db);
        // And keyless: the roots at 40.. fail.
        let r = check(&db, None, vec![k.signing_public_key().unwrap()], vec![]);
        assert!(
            !r.ok() && r.first_bad_index() <= Some(37),
            "{:#?}",
            r.problems
        );
        let _ = original;
    }
}

#[test]
fn reorderings_are_found_with_or_without_renumbering() {
    for db in backends("tamper3") {
        let k = keyring();
        logged(&db, &k);
        let mut raw = db.raw();
        let (a, b) = (raw.entry(37), raw.entry(52));
        raw.set_entry(37, &b);
        raw.set_entry(52, &a);
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Reordered,
            37,
            "swap",
            &db,
        );
        // Headers rewritten to their new positions: the bodies still say
        // where they were written.
        raw.set_entry(37, &with_index(b, 37));
        raw.set_entry(52, &with_index(a, 52));
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Reordered,
            37,
            "swap + renumber",
            &db,
        );
    }
}

#[test]
fn insertions_are_found() {
    for db in backends("tamper4") {
        let k = keyring();
        logged(&db, &k);
        let mut raw = db.raw();
        // Everything from 37 moves up one; a forged entry (a copy of 10,
        // claiming 37) goes in its place.
        shift(&mut raw, 37, 1, false, N);
        let forged = with_index(raw.entry(10), 37);
        raw.insert_entry(37, 0, &forged);
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Inserted,
            37,
            "insert",
            &db,
        );
        // With the later headers renumbered too.
        let rows: Vec<u64> = (38..=N).collect();
        for i in rows {
            let b = raw.entry(i);
            raw.set_entry(i, &with_index(b, i));
        }
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Inserted,
            37,
            "insert + renumber",
            &db,
        );
    }
}

#[test]
fn truncation_and_rollback_are_found() {
    for db in backends("tamper5") {
        let k = keyring();
        let kept = logged(&db, &k);
        let mut raw = db.raw();
        // The tail goes; the log's own checkpoints and nodes remember it.
        raw.exec("DELETE FROM audit_entries WHERE idx >= 80");
        expect(
            &check(&db, Some(&k), vec![], vec![]),
            ProblemKind::Truncated,
            80,
            "truncate",
            &db,
        );
        // A thorough attacker removes those too: only a witness can tell.
        raw.exec(
            "DELETE FROM audit_nodes WHERE ((idx + 1) * (CASE level WHEN 4 THEN 16 ELSE 256 END)) > 80; \
             DELETE FROM audit_checkpoints WHERE size > 80;",
        );
        let alone = check(&db, Some(&k), vec![], vec![]);
        assert!(
            alone.ok(),
            "a consistent older log is, alone, a valid log: {:#?}",
            alone.problems
        );
        let r = check(&db, Some(&k), vec![], kept.clone());
        expect(&r, ProblemKind::RolledBack, 80, "rollback", &db);
        let r = check(&db, None, vec![], kept.clone());
        expect(&r, ProblemKind::RolledBack, 80, "rollback, keyless", &db);

        // Rolled back to 60, then the vault carried on: 50 new entries and
        // newly signed checkpoints. The witness at 100 disagrees; the log's
        // own checkpoints signed before it (up to 60) still match.
        raw.exec(
            "DELETE FROM audit_entries WHERE idx >= 60; \
             DELETE FROM audit_nodes WHERE ((idx + 1) * (CASE level WHEN 4 THEN 16 ELSE 256 END)) > 60; \
             DELETE FROM audit_checkpoints WHERE size > 60;",
        );
        // (The index is left as it was: the log must still append.)
        // (An hour later: checkpoints signed after the witness's copy.)
        let later = clock();
        later.advance(std::time::Duration::from_secs(3600));
        let log =
            AuditLog::open_for(&db.location(), "vault-1", k.clone(), later, config(10)).unwrap();
        for i in 0..50 {
            log.append(entry(1000 + i)).unwrap();
        }
        log.checkpoint().unwrap();
        log.close().unwrap();
        let r = check(&db, Some(&k), vec![], kept);
        expect(&r, ProblemKind::RolledBack, 60, "rollback + fork", &db);
    }
}

#[test]
fn replaced_signatures_and_swapped_keys_are_found() {
    for db in backends("tamper6") {
        let k = keyring();
        let kept = logged(&db, &k);
        let mut raw = db.raw();
        let attacker = keyring();

        // One signature replaced (same text, same key id, wrong signature).
        let (size, note) = raw.notes().into_iter().find(|(s, _)| *s == 50).unwrap();
        let parsed = SignedCheckpoint::parse(&note).unwrap();
        let sig = attacker.sign(parsed.text().as_bytes()).unwrap();
        let mut blob = parsed.signatures[0].key_id.to_vec();
        blob.extend_from_slice(&sig);
        use base64::Engine;
        let forged = format!(
            "{}\n\u{2014} {} {}\n",
            parsed.text(),
            parsed.signatures[0].name,
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        raw.set_note(size, &forged, &parsed.checkpoint.root);
        let r = check(&db, Some(&k), vec![], vec![]);
        assert!(
            r.problems
                .iter()
                .any(|p| p.kind == ProblemKind::BadSignature && p.checkpoint_size == Some(50)),
            "{}: {:#?}",
            db.name(),
            r.problems
        );
        assert_eq!(r.first_bad_index(), None);
        raw.set_note(size, &note, &parsed.checkpoint.root);
        assert!(check(&db, Some(&k), vec![], vec![]).ok());

        // The whole log rewritten: entry 37 edited, every node recomputed,
        // every checkpoint re-signed with the attacker's own key (which the
        // notes now name).
        let mut s = decode(&raw.entry(37));
        s.header.patients[0].0[5] ^= 0xff;
        raw.set_entry(37, &s.encode());
        let mut t = recompute_nodes(&mut raw, N);
        for (size, _) in raw.notes() {
            let root = merkle::root(&mut t, size).unwrap();
            let cp = Checkpoint {
                origin: origin_for("vault-1"),
                size,
                root,
                time_ms: 1,
            }
            .sign(&attacker)
            .unwrap();
            raw.exec(&format!(
                "UPDATE audit_checkpoints SET time_ms = 1 WHERE size = {size}"
            ));
            raw.set_note(size, cp.note(), &root);
        }
        // With the vault's key: every checkpoint is untrusted, the edit is pinned.
        let r = check(&db, Some(&k), vec![], vec![]);
        assert_eq!(
            r.problems
                .iter()
                .filter(|p| p.kind == ProblemKind::BadSignature)
                .count(),
            10,
            "{:#?}",
            r.problems
        );
        expect(&r, ProblemKind::Edited, 37, "rewritten log", &db);
        // Keyless, with the witness copies: caught too.
        let r = check(&db, None, vec![], kept);
        assert!(r.has(ProblemKind::BadSignature) && !r.ok());
        assert_eq!(r.first_bad_index(), Some(0), "{:#?}", r.problems);
        // The writer refuses to continue such a log.
        assert!(
            AuditLog::open_for(&db.location(), "vault-1", k.clone(), clock(), config(10)).is_err()
        );
    }
}

#[test]
fn index_rows_removed_to_hide_an_entry_are_found() {
    for db in backends("tamper7") {
        let k = keyring();
        logged(&db, &k);
        let mut raw = db.raw();
        // Hide everything session s3 did from session queries.
        let session = k.keyed_hash("audit-session", b"s3");
        let mut key = vec![2u8];
        key.extend_from_slice(&session);
        match &mut raw {
            Raw::Sqlite(c) => {
                // The index rows of the newest entries wait in
                // audit_pending (one per entry) until they form a run.
                c.execute("DELETE FROM audit_postings WHERE key = ?", [&key])
                    .unwrap();
                c.execute("DELETE FROM audit_pending WHERE instr(keys, ?) > 0", [&key])
                    .unwrap();
            }
            Raw::Pg(c) => {
                c.execute("DELETE FROM audit_postings WHERE key = $1", &[&key])
                    .unwrap();
            }
        }
        let r = check(&db, Some(&k), vec![], vec![]);
        expect(
            &r,
            ProblemKind::IndexMismatch,
            30,
            "index rows removed",
            &db,
        );
    }
}
