//! The conformance suite: every backend must behave the same. Each test
//! runs against SQLite and, when `RXVAULT_TEST_PG_URL` is set, PostgreSQL.

use rxvault_model::{DekId, IndexKind, IndexToken, RecordKind, Rid};
use rxvault_store::{
    Error, IndexHit, Op, PgStore, RecordWrite, SqliteStore, Store, StoredKey, StoredRecord,
    WriteBatch,
};
use rxvault_testkit::pg::Schema;

/// Runs `test` on a fresh store of each backend; `reopen` opens the same
/// store again (for tests of what persists).
fn each_backend(test: impl Fn(&dyn Store, &dyn Fn() -> Result<Box<dyn Store>, Error>)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let store = SqliteStore::create(&path).unwrap();
    test(&store, &|| {
        SqliteStore::open(&path).map(|s| Box::new(s) as Box<dyn Store>)
    });
    drop(store);

    if let Some(schema) = Schema::new("conf") {
        let store = PgStore::create(&schema.url, &schema.name).unwrap();
        test(&store, &|| {
            PgStore::open(&schema.url, &schema.name).map(|s| Box::new(s) as Box<dyn Store>)
        });
    }
}

fn rid(n: u8) -> Rid {
    Rid([n; 16])
}

fn token(n: u8) -> IndexToken {
    IndexToken([n; 16])
}

fn record(kind: RecordKind, n: u8, patient: Option<u8>, body: &[u8]) -> StoredRecord {
    StoredRecord {
        kind,
        rid: rid(n),
        patient: patient.map(rid),
        dek: DekId(7),
        derived: false,
        envelope: body.to_vec(),
    }
}

fn put(r: StoredRecord, tokens: &[(IndexKind, u8)]) -> Op {
    Op::Put(RecordWrite {
        record: r,
        tokens: tokens.iter().map(|(k, t)| (*k, token(*t))).collect(),
    })
}

fn batch(ops: Vec<Op>) -> WriteBatch {
    WriteBatch {
        ops,
        at: 1_600_000_000,
    }
}

#[test]
fn records_round_trip_and_are_found_by_patient_and_token() {
    each_backend(|s, _| {
        s.write(&batch(vec![
            put(
                record(RecordKind::Patient, 1, None, b"p1"),
                &[(IndexKind::Phone, 10), (IndexKind::FamilyBirthDate, 11)],
            ),
            put(
                record(RecordKind::Patient, 2, None, b"p2"),
                &[(IndexKind::Phone, 10)],
            ),
            put(
                record(RecordKind::Prescription, 3, Some(1), b"rx"),
                &[(IndexKind::RxNumber, 12)],
            ),
            put(record(RecordKind::Prescription, 4, Some(1), b"rx2"), &[]),
            put(record(RecordKind::Prescription, 5, Some(2), b"rx3"), &[]),
        ]))
        .unwrap();
        assert_eq!(
            s.get(RecordKind::Patient, &rid(1))
                .unwrap()
                .unwrap()
                .envelope,
            b"p1"
        );
        assert_eq!(
            s.get(RecordKind::Patient, &rid(3)).unwrap(),
            None,
            "kinds are separate tables"
        );
        let mine: Vec<Rid> = s
            .by_patient(RecordKind::Prescription, &rid(1))
            .unwrap()
            .into_iter()
            .map(|r| r.rid)
            .collect();
        assert_eq!(mine, vec![rid(3), rid(4)]);
        let mut phone = s.lookup(IndexKind::Phone, &token(10)).unwrap();
        phone.sort_by_key(|h| h.rid);
        assert_eq!(
            phone,
            vec![
                IndexHit {
                    kind: RecordKind::Patient,
                    rid: rid(1)
                },
                IndexHit {
                    kind: RecordKind::Patient,
                    rid: rid(2)
                },
            ]
        );
        assert!(
            s.lookup(IndexKind::MemberId, &token(10))
                .unwrap()
                .is_empty(),
            "index kinds are separate"
        );
        assert_eq!(s.count(RecordKind::Prescription).unwrap(), 3);
        assert_eq!(s.dek_usage().unwrap(), vec![(DekId(7), 5)]);
    });
}

#[test]
fn put_replaces_the_record_and_its_tokens_and_delete_removes_both() {
    each_backend(|s, _| {
        s.write(&batch(vec![put(
            record(RecordKind::Patient, 1, None, b"v1"),
            &[(IndexKind::Phone, 1)],
        )]))
        .unwrap();
        s.write(&batch(vec![put(
            record(RecordKind::Patient, 1, None, b"v2"),
            &[(IndexKind::Phone, 2), (IndexKind::Phone, 2)],
        )]))
        .unwrap();
        assert_eq!(
            s.get(RecordKind::Patient, &rid(1))
                .unwrap()
                .unwrap()
                .envelope,
            b"v2"
        );
        assert!(s.lookup(IndexKind::Phone, &token(1)).unwrap().is_empty());
        assert_eq!(s.lookup(IndexKind::Phone, &token(2)).unwrap().len(), 1);
        assert_eq!(s.count(RecordKind::Patient).unwrap(), 1);
        s.write(&batch(vec![Op::Delete {
            kind: RecordKind::Patient,
            rid: rid(1),
        }]))
        .unwrap();
        assert_eq!(s.get(RecordKind::Patient, &rid(1)).unwrap(), None);
        assert!(s.lookup(IndexKind::Phone, &token(2)).unwrap().is_empty());
        s.write(&batch(vec![Op::Delete {
            kind: RecordKind::Patient,
            rid: rid(1),
        }]))
        .unwrap();
    });
}

#[test]
fn derived_coverage_yields_to_real_coverage_in_either_order() {
    each_backend(|s, _| {
        let derived = |n, p| StoredRecord {
            derived: true,
            ..record(RecordKind::Coverage, n, Some(p), b"derived")
        };
        // derived first, then real: the derived one is removed
        s.write(&batch(vec![put(
            derived(1, 9),
            &[(IndexKind::MemberId, 1)],
        )]))
        .unwrap();
        s.write(&batch(vec![put(
            record(RecordKind::Coverage, 2, Some(9), b"real"),
            &[],
        )]))
        .unwrap();
        let left: Vec<Vec<u8>> = s
            .by_patient(RecordKind::Coverage, &rid(9))
            .unwrap()
            .into_iter()
            .map(|r| r.envelope)
            .collect();
        assert_eq!(left, vec![b"real".to_vec()]);
        assert!(s.lookup(IndexKind::MemberId, &token(1)).unwrap().is_empty());
        // real exists, then derived: the derived one is skipped
        s.write(&batch(vec![put(derived(3, 9), &[])])).unwrap();
        assert_eq!(
            s.by_patient(RecordKind::Coverage, &rid(9)).unwrap().len(),
            1
        );
        // other patients are unaffected; both in one batch, derived last
        s.write(&batch(vec![
            put(record(RecordKind::Coverage, 4, Some(8), b"real"), &[]),
            put(derived(5, 8), &[]),
        ]))
        .unwrap();
        assert_eq!(
            s.by_patient(RecordKind::Coverage, &rid(8)).unwrap().len(),
            1
        );
        s.write(&batch(vec![
            put(derived(6, 7), &[]),
            put(derived(7, 7), &[]),
        ]))
        .unwrap();
        assert_eq!(
            s.by_patient(RecordKind::Coverage, &rid(7)).unwrap().len(),
            2,
            "several derived plans may coexist"
        );
    });
}

#[test]
fn reseal_is_a_compare_and_swap() {
    each_backend(|s, _| {
        s.write(&batch(vec![put(
            record(RecordKind::Fill, 1, Some(2), b"old"),
            &[(IndexKind::TransactionId, 5)],
        )]))
        .unwrap();
        let reseal = |expected: &[u8], new: &[u8]| Op::Reseal {
            kind: RecordKind::Fill,
            rid: rid(1),
            expected: expected.to_vec(),
            envelope: new.to_vec(),
            dek: DekId(8),
            tokens: None,
        };
        s.write(&batch(vec![reseal(b"stale", b"lost")])).unwrap();
        assert_eq!(
            s.get(RecordKind::Fill, &rid(1)).unwrap().unwrap().envelope,
            b"old"
        );
        s.write(&batch(vec![reseal(b"old", b"new")])).unwrap();
        let r = s.get(RecordKind::Fill, &rid(1)).unwrap().unwrap();
        assert_eq!((r.envelope.as_slice(), r.dek), (&b"new"[..], DekId(8)));
        assert_eq!(
            s.lookup(IndexKind::TransactionId, &token(5)).unwrap().len(),
            1,
            "tokens survive a reseal"
        );

        // A re-index: the entries are replaced only if the swap happens.
        let reindex = |expected: &[u8], new: &[u8], t: u8| Op::Reseal {
            kind: RecordKind::Fill,
            rid: rid(1),
            expected: expected.to_vec(),
            envelope: new.to_vec(),
            dek: DekId(9),
            tokens: Some(vec![(IndexKind::TransactionId, token(t))]),
        };
        s.write(&batch(vec![reindex(b"stale", b"lost", 6)]))
            .unwrap();
        assert!(
            s.lookup(IndexKind::TransactionId, &token(6))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.lookup(IndexKind::TransactionId, &token(5)).unwrap().len(),
            1
        );
        s.write(&batch(vec![reindex(b"new", b"newer", 6)])).unwrap();
        assert!(
            s.lookup(IndexKind::TransactionId, &token(5))
                .unwrap()
                .is_empty(),
            "the old entry is gone"
        );
        assert_eq!(
            s.lookup(IndexKind::TransactionId, &token(6)).unwrap(),
            vec![IndexHit {
                kind: RecordKind::Fill,
                rid: rid(1)
            }]
        );
        assert_eq!(
            s.get(RecordKind::Fill, &rid(1)).unwrap().unwrap().envelope,
            b"newer"
        );
    });
}

#[test]
fn scan_pages_in_key_order() {
    each_backend(|s, _| {
        let ops = (1..=25)
            .rev()
            .map(|n| put(record(RecordKind::Allergy, n, Some(100), &[n]), &[]))
            .collect();
        s.write(&batch(ops)).unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s.scan(RecordKind::Allergy, after.as_ref(), 10).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|r| r.rid);
            seen.extend(page.into_iter().map(|r| r.rid));
        }
        assert_eq!(seen, (1..=25).map(rid).collect::<Vec<_>>());
    });
}

#[test]
fn meta_and_keys_persist_and_keys_rotate() {
    each_backend(|s, reopen| {
        s.write(&batch(vec![Op::Meta {
            key: "a".into(),
            value: Some("1".into()),
        }]))
        .unwrap();
        s.write(&batch(vec![
            Op::Meta {
                key: "b".into(),
                value: Some("2".into()),
            },
            Op::Meta {
                key: "a".into(),
                value: None,
            },
        ]))
        .unwrap();
        let key = |id, kek| StoredKey {
            id,
            purpose: 1,
            kek_version: kek,
            wrapped: vec![id as u8, kek as u8],
        };
        s.put_keys(&[key(1, 1), key(2, 1), key(3, 1)]).unwrap();
        s.put_keys(&[key(1, 2), key(2, 2)]).unwrap();
        let again = reopen().unwrap();
        assert_eq!(again.meta("a").unwrap(), None);
        assert_eq!(again.meta("b").unwrap().as_deref(), Some("2"));
        assert_eq!(again.keys().unwrap().len(), 5);
        assert_eq!(
            again.retain_keys_of_kek(2).unwrap(),
            2,
            "key 3 has no version-2 wrap and keeps its only one"
        );
        again.delete_key(1).unwrap();
        assert_eq!(again.keys().unwrap(), vec![key(2, 2), key(3, 1)]);
        assert_eq!(
            again.schema_version().unwrap(),
            rxvault_store::schema::CURRENT
        );
    });
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    each_backend(|s, reopen| {
        s.write(&batch(vec![Op::Meta {
            key: "schema_version".into(),
            value: Some("999".into()),
        }]))
        .unwrap();
        let err = reopen().unwrap_err();
        assert!(matches!(err, Error::TooNew { found: 999, .. }), "{err}");
        assert!(err.to_string().contains("upgrade rxvault"), "{err}");
    });
}

#[test]
fn opening_something_that_is_not_a_vault_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = SqliteStore::open(&dir.path().join("nope.db")).unwrap_err();
    assert!(matches!(missing, Error::NotAVault(_)), "{missing}");
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        b"this is not a database, just some text that is long enough to have a header",
    )
    .unwrap();
    assert!(matches!(
        SqliteStore::open(&junk).unwrap_err(),
        Error::NotAVault(_)
    ));
    assert!(
        SqliteStore::create(&junk).is_err(),
        "create never overwrites"
    );
    if let Some(schema) = Schema::new("notvault") {
        assert!(matches!(
            PgStore::open(&schema.url, &schema.name).unwrap_err(),
            Error::NotAVault(_)
        ));
    }
}

#[test]
fn readers_run_beside_a_writer() {
    each_backend(|s, _| {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for n in 0..50u8 {
                    s.write(&batch(vec![put(
                        record(RecordKind::Patient, n, None, &[n]),
                        &[(IndexKind::Phone, n)],
                    )]))
                    .unwrap();
                }
            });
            for _ in 0..3 {
                scope.spawn(|| {
                    for n in 0..50u8 {
                        if let Some(r) = s.get(RecordKind::Patient, &rid(n)).unwrap() {
                            assert_eq!(r.envelope, vec![n]);
                        }
                    }
                });
            }
        });
        assert_eq!(s.count(RecordKind::Patient).unwrap(), 50);
    });
}

#[test]
fn a_batch_applies_in_order_and_the_last_put_of_a_record_wins() {
    each_backend(|s, _| {
        s.write(&batch(vec![
            put(
                record(RecordKind::Fill, 1, Some(9), b"v1"),
                &[(IndexKind::TransactionId, 1)],
            ),
            put(
                record(RecordKind::Fill, 2, Some(9), b"other"),
                &[(IndexKind::TransactionId, 2)],
            ),
            put(
                record(RecordKind::Fill, 1, Some(9), b"v2"),
                &[(IndexKind::TransactionId, 3)],
            ),
            put(record(RecordKind::Patient, 9, None, b"p"), &[]),
            put(
                record(RecordKind::Fill, 4, Some(9), b"gone"),
                &[(IndexKind::TransactionId, 4)],
            ),
            Op::Delete {
                kind: RecordKind::Fill,
                rid: rid(4),
            },
            Op::Delete {
                kind: RecordKind::Fill,
                rid: rid(5),
            },
            put(
                record(RecordKind::Fill, 5, Some(9), b"back"),
                &[(IndexKind::TransactionId, 5)],
            ),
        ]))
        .unwrap();
        assert_eq!(
            s.get(RecordKind::Fill, &rid(1)).unwrap().unwrap().envelope,
            b"v2"
        );
        assert!(
            s.lookup(IndexKind::TransactionId, &token(1))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.lookup(IndexKind::TransactionId, &token(3)).unwrap().len(),
            1
        );
        assert_eq!(s.get(RecordKind::Fill, &rid(4)).unwrap(), None);
        assert!(
            s.lookup(IndexKind::TransactionId, &token(4))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.get(RecordKind::Fill, &rid(5)).unwrap().unwrap().envelope,
            b"back"
        );
        assert_eq!(s.count(RecordKind::Fill).unwrap(), 3);
        let many: Vec<Op> = (10..=250u8)
            .map(|n| {
                put(
                    record(RecordKind::Prescription, n, Some(9), &[n; 40]),
                    &[(IndexKind::RxNumber, n), (IndexKind::RxNumber, n)],
                )
            })
            .collect();
        s.write(&batch(many)).unwrap();
        assert_eq!(
            s.by_patient(RecordKind::Prescription, &rid(9))
                .unwrap()
                .len(),
            241
        );
        assert_eq!(
            s.lookup(IndexKind::RxNumber, &token(200)).unwrap(),
            vec![IndexHit {
                kind: RecordKind::Prescription,
                rid: rid(200)
            }]
        );
    });
}

#[test]
fn a_backup_copy_is_the_store_at_one_moment_while_writes_go_on() {
    each_backend(|s, _| {
        s.write(&batch(
            (0..50)
                .map(|n| put(record(RecordKind::Patient, n, None, b"sealed"), &[]))
                .collect(),
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.db");
        let done = std::sync::atomic::AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            // A writer goes on meanwhile, one record per transaction.
            scope.spawn(|| {
                let mut n = 50u8;
                while !done.load(std::sync::atomic::Ordering::Relaxed) && n < 250 {
                    s.write(&batch(vec![put(
                        record(RecordKind::Patient, n, None, b"sealed"),
                        &[],
                    )]))
                    .unwrap();
                    n += 1;
                }
            });
            let r = s.backup_to(&copy);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        });
        match s.backend() {
            rxvault_store::Backend::Sqlite => {
                let counts = result.unwrap();
                let patients = counts
                    .iter()
                    .find(|(k, _)| *k == RecordKind::Patient)
                    .unwrap()
                    .1;
                assert!(patients >= 50, "{counts:?}");
                // One self-contained file.
                assert!(!dir.path().join("copy.db-wal").exists());
                // The copy is a whole store: it opens, and holds exactly
                // what the backup said, records 0..patients in order.
                let opened = SqliteStore::open(&copy).unwrap();
                assert_eq!(opened.count(RecordKind::Patient).unwrap(), patients);
                let all = opened.scan(RecordKind::Patient, None, 1000).unwrap();
                let keys: Vec<Rid> = all.iter().map(|r| r.rid).collect();
                let expected: Vec<Rid> = (0..patients as u8).map(rid).collect();
                assert_eq!(keys, expected);
                // A copy is never written over an existing file.
                drop(opened);
                assert!(matches!(s.backup_to(&copy), Err(Error::Invalid(_))));
            }
            rxvault_store::Backend::Postgres => {
                // Not done yet, and says so.
                let e = result.unwrap_err();
                assert!(e.to_string().contains("not supported yet"), "{e}");
                assert!(!copy.exists());
            }
        }
    });
}
