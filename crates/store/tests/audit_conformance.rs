//! The audit store's conformance suite: both backends behave the same. Each
//! test runs against SQLite and, when `RXVAULT_TEST_PG_URL` is set (or must
//! be, under `CI` / `RXVAULT_REQUIRE_PG`), PostgreSQL.

use rxvault_model::Rid;
use rxvault_store::audit::{
    AUDIT_SCHEMA_VERSION, Appended, AuditBatch, AuditCheckpoint, AuditEntryWrite, AuditKey,
    AuditLookup, AuditNode, AuditStore,
};
use rxvault_store::{Backend, Error, PgAuditStore, SqliteAuditStore};
use rxvault_testkit::pg::Schema;

type Reopen<'a> = &'a dyn Fn() -> Result<Box<dyn AuditStore>, Error>;

/// Runs `test` on a fresh store of each backend; `reopen` opens the same
/// store again.
fn each_backend(test: impl Fn(&dyn AuditStore, Reopen<'_>)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = SqliteAuditStore::open(&path, true).unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    test(&store, &|| {
        SqliteAuditStore::open(&path, false).map(|s| Box::new(s) as Box<dyn AuditStore>)
    });
    drop(store);

    if let Some(schema) = Schema::new("auditconf") {
        let store = PgAuditStore::open(&schema.url, &schema.name).unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        test(&store, &|| {
            PgAuditStore::open(&schema.url, &schema.name)
                .map(|s| Box::new(s) as Box<dyn AuditStore>)
        });
    }
}

fn entry(index: u64, time_ms: i64, keys: Vec<AuditKey>) -> AuditEntryWrite {
    AuditEntryWrite {
        index,
        time_ms,
        dek: 20 + (index % 2) as u32,
        bytes: format!("entry-{index}").into_bytes(),
        keys,
    }
}

fn user(n: u8) -> AuditKey {
    AuditKey::Actor([n; 16])
}

fn session(n: u8) -> AuditKey {
    AuditKey::Session([n; 16])
}

fn patient(n: u8) -> AuditKey {
    AuditKey::Patient(Rid([n; 16]))
}

fn indexes(rows: &[(u64, Vec<u8>)]) -> Vec<u64> {
    rows.iter().map(|(i, _)| *i).collect()
}

#[test]
fn append_read_back_and_persist() {
    each_backend(|s, reopen| {
        assert_eq!(s.schema_version().unwrap(), AUDIT_SCHEMA_VERSION);
        assert_eq!(s.size().unwrap(), 0);
        assert!(s.latest_checkpoint().unwrap().is_none());
        let batch = AuditBatch {
            entries: (0..5)
                .map(|i| entry(i, 1000 + i as i64, vec![user(1)]))
                .collect(),
            nodes: vec![AuditNode {
                level: 1,
                index: 0,
                hash: [7; 32],
            }],
            checkpoint: Some(AuditCheckpoint {
                size: 5,
                time_ms: 2000,
                root: [9; 32],
                note: "note\n".into(),
            }),
        };
        assert_eq!(s.append(&batch).unwrap(), Appended::Committed);
        let again = reopen().unwrap();
        assert_eq!(again.size().unwrap(), 5);
        let rows = again.entries(1, 4).unwrap();
        assert_eq!(indexes(&rows), vec![1, 2, 3]);
        assert_eq!(rows[0].1, b"entry-1");
        assert_eq!(
            indexes(&again.entries_at(&[4, 0, 9, 0]).unwrap()),
            vec![0, 4]
        );
        assert_eq!(again.nodes(1, 0, 10).unwrap(), vec![(0, [7; 32])]);
        assert!(again.nodes(2, 0, 10).unwrap().is_empty());
        assert_eq!(again.node_levels().unwrap(), vec![1]);
        let cps = again.checkpoints().unwrap();
        assert_eq!(cps.len(), 1);
        assert_eq!(cps[0].root, [9; 32]);
        assert_eq!(cps[0].note, "note\n");
        assert_eq!(again.latest_checkpoint().unwrap(), Some(cps[0].clone()));
        assert_eq!(again.deks().unwrap(), vec![20, 21]);
    });
}

#[test]
fn a_batch_that_does_not_continue_the_log_writes_nothing() {
    each_backend(|s, _| {
        let first = AuditBatch {
            entries: vec![entry(0, 1, vec![]), entry(1, 2, vec![])],
            ..Default::default()
        };
        assert_eq!(s.append(&first).unwrap(), Appended::Committed);
        // Another writer's view of the log was stale: index 1 again.
        let stale = AuditBatch {
            entries: vec![entry(1, 3, vec![user(1)])],
            nodes: vec![AuditNode {
                level: 4,
                index: 0,
                hash: [1; 32],
            }],
            checkpoint: None,
        };
        assert_eq!(s.append(&stale).unwrap(), Appended::Conflict { size: 2 });
        let gap = AuditBatch {
            entries: vec![entry(5, 3, vec![])],
            ..Default::default()
        };
        assert_eq!(s.append(&gap).unwrap(), Appended::Conflict { size: 2 });
        assert_eq!(s.size().unwrap(), 2);
        assert!(s.node_levels().unwrap().is_empty());
        assert!(
            s.lookup(&AuditLookup {
                keys: vec![user(1)],
                ..Default::default()
            })
            .unwrap()
            .is_empty()
        );
        // A batch with holes is refused outright.
        let holes = AuditBatch {
            entries: vec![entry(2, 3, vec![]), entry(4, 3, vec![])],
            ..Default::default()
        };
        assert!(matches!(s.append(&holes), Err(Error::Corrupt(_))));
        assert_eq!(s.size().unwrap(), 2);
        // A checkpoint alone is fine.
        let cp = AuditBatch {
            checkpoint: Some(AuditCheckpoint {
                size: 2,
                time_ms: 5,
                root: [3; 32],
                note: "n".into(),
            }),
            ..Default::default()
        };
        assert_eq!(s.append(&cp).unwrap(), Appended::Committed);
        assert_eq!(s.latest_checkpoint().unwrap().unwrap().size, 2);
    });
}

#[test]
fn lookups_intersect_keys_within_a_time_range() {
    each_backend(|s, _| {
        // Entry i at time 100*i: user i%2, session i%3, patient i%4 (and
        // patient 9 on every fifth).
        let entries = (0..30u64)
            .map(|i| {
                let mut keys = vec![
                    user((i % 2) as u8),
                    session((i % 3) as u8),
                    patient((i % 4) as u8),
                    AuditKey::Action(if i % 2 == 0 { 10 } else { 11 }),
                ];
                if i % 5 == 0 {
                    keys.push(patient(9));
                    keys.push(patient(9)); // duplicates are ignored
                }
                entry(i, 100 * i as i64, keys)
            })
            .collect();
        let r = s.append(&AuditBatch {
            entries,
            ..Default::default()
        });
        assert_eq!(r.unwrap(), Appended::Committed);
        let find = |keys: Vec<AuditKey>, from: Option<i64>, to: Option<i64>| {
            indexes(
                &s.lookup(&AuditLookup {
                    keys,
                    from_ms: from,
                    to_ms: to,
                    ..Default::default()
                })
                .unwrap(),
            )
        };
        let expect = |f: &dyn Fn(u64) -> bool| (0..30u64).filter(|i| f(*i)).collect::<Vec<_>>();
        assert_eq!(find(vec![session(1)], None, None), expect(&|i| i % 3 == 1));
        assert_eq!(
            find(vec![session(1)], Some(500), Some(2000)),
            expect(&|i| i % 3 == 1 && (5..20).contains(&i))
        );
        assert_eq!(
            find(vec![user(0), patient(9)], None, None),
            expect(&|i| i % 2 == 0 && i % 5 == 0)
        );
        assert_eq!(
            find(
                vec![user(1), session(2), AuditKey::Action(11)],
                None,
                Some(2500)
            ),
            expect(&|i| i % 2 == 1 && i % 3 == 2 && i < 25)
        );
        assert_eq!(find(vec![], Some(1000), Some(1300)), vec![10, 11, 12]);
        assert!(find(vec![user(7)], None, None).is_empty());
        // Paging.
        let page = s
            .lookup(&AuditLookup {
                keys: vec![patient(9)],
                after: Some(5),
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(indexes(&page), vec![10, 15]);
        assert_eq!(page[0].1, b"entry-10");
    });
}

#[test]
fn many_batches_stay_contiguous_and_ordered() {
    each_backend(|s, reopen| {
        let mut next = 0u64;
        for batch in 0..20u64 {
            let n = 1 + batch % 7;
            let entries = (next..next + n)
                .map(|i| entry(i, i as i64, vec![session((i % 5) as u8)]))
                .collect();
            let nodes = (0..batch % 3)
                .map(|k| AuditNode {
                    level: 4,
                    index: batch * 3 + k,
                    hash: [batch as u8; 32],
                })
                .collect();
            let r = s.append(&AuditBatch {
                entries,
                nodes,
                checkpoint: None,
            });
            assert_eq!(r.unwrap(), Appended::Committed);
            next += n;
        }
        let s2 = reopen().unwrap();
        assert_eq!(s2.size().unwrap(), next);
        let all = s2.entries(0, u64::MAX).unwrap();
        assert_eq!(indexes(&all), (0..next).collect::<Vec<_>>());
        let nodes = s2.nodes(4, 0, u64::MAX).unwrap();
        assert!(nodes.windows(2).all(|w| w[0].0 < w[1].0));
    });
}

#[test]
fn a_newer_audit_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    drop(SqliteAuditStore::open(&path, true).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE audit_meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(matches!(
        SqliteAuditStore::open(&path, false),
        Err(Error::TooNew { found: 99, .. })
    ));
    assert!(matches!(
        SqliteAuditStore::open(&dir.path().join("missing.db"), false),
        Err(Error::NotAVault(_))
    ));

    if let Some(schema) = Schema::new("auditnewer") {
        drop(PgAuditStore::open(&schema.url, &schema.name).unwrap());
        let mut c = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "UPDATE \"{}\".audit_meta SET value = '99' WHERE key = 'schema_version'",
            schema.name
        ))
        .unwrap();
        assert!(matches!(
            PgAuditStore::open(&schema.url, &schema.name),
            Err(Error::TooNew { found: 99, .. })
        ));
    }
}

#[test]
fn concurrent_appenders_never_interleave_or_duplicate() {
    each_backend(|s, _| {
        // Four threads race to append 25 single-entry batches each; a
        // conflict is retried at the size the store reports.
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                scope.spawn(move || {
                    let mut size = 0;
                    let mut done = 0;
                    while done < 25 {
                        let b = AuditBatch {
                            entries: vec![entry(size, i64::from(t), vec![user(t)])],
                            ..Default::default()
                        };
                        match s.append(&b).unwrap() {
                            Appended::Committed => {
                                done += 1;
                                size += 1;
                            }
                            Appended::Conflict { size: now } => size = now,
                        }
                    }
                });
            }
        });
        assert_eq!(s.size().unwrap(), 100);
        assert_eq!(s.entries(0, 100).unwrap().len(), 100);
        for t in 0..4u8 {
            let mine = s
                .lookup(&AuditLookup {
                    keys: vec![user(t)],
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(mine.len(), 25);
        }
    });
}
