//! The audit store's conformance suite: both backends behave the same. Each
//! test runs against SQLite and, when `RXVAULT_TEST_PG_URL` is set (or must
//! be, under `CI` / `RXVAULT_REQUIRE_PG`), PostgreSQL.

use rxvault_model::Rid;
use rxvault_store::audit::{
    AUDIT_SCHEMA_VERSION, Appended, AuditBatch, AuditCheckpoint, AuditEntryWrite, AuditKey,
    AuditLookup, AuditNode, AuditStore, RUN_ENTRIES,
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

/// Entry `i` of the large log below: user i%7, session i/50, patient
/// (i*31)%1000, action 10 or 11, at time 10*i.
fn keys_of(i: u64) -> Vec<AuditKey> {
    // 16 bytes: `n` in the first two (little-endian), then `fill`.
    let id = |n: u64, fill: u8| {
        let mut b = [fill; 16];
        b[..2].copy_from_slice(&(n as u16).to_le_bytes());
        b
    };
    vec![
        user((i % 7) as u8),
        AuditKey::Session(id(i / 50, 1)),
        AuditKey::Patient(Rid(id((i * 31) % 1000, 2))),
        AuditKey::Action(if i.is_multiple_of(3) { 10 } else { 11 }),
    ]
}

#[test]
fn lookups_find_every_entry_however_it_was_batched() {
    each_backend(|s, reopen| {
        // Small commits, one larger than a run by itself, small ones again:
        // entries end up in runs of postings and waiting to form one
        // (SQLite), or one row per key per commit (PostgreSQL).
        let total = 2 * RUN_ENTRIES + RUN_ENTRIES / 2 + 37;
        let mut sizes = Vec::new();
        let mut next = 0u64;
        while next < total {
            let n = match sizes.len() {
                60 => RUN_ENTRIES + 5,
                k => 1 + (k as u64 * 37) % 97,
            }
            .min(total - next);
            sizes.push(n);
            let entries = (next..next + n)
                .map(|i| entry(i, 10 * i as i64, keys_of(i)))
                .collect();
            let r = s.append(&AuditBatch {
                entries,
                ..Default::default()
            });
            assert_eq!(r.unwrap(), Appended::Committed);
            next += n;
        }
        let s2 = reopen().unwrap();
        for store in [s, &*s2] {
            let expect = |keys: &[AuditKey], from: i64, to: i64| -> Vec<u64> {
                (0..total)
                    .filter(|&i| {
                        let t = 10 * i as i64;
                        t >= from && t < to && keys.iter().all(|k| keys_of(i).contains(k))
                    })
                    .collect()
            };
            let find = |keys: Vec<AuditKey>, from: i64, to: i64| {
                indexes(
                    &store
                        .lookup(&AuditLookup {
                            keys,
                            from_ms: Some(from),
                            to_ms: Some(to),
                            ..Default::default()
                        })
                        .unwrap(),
                )
            };
            let everything = (0, 10 * total as i64);
            for keys in [
                vec![user(3)],
                vec![keys_of(4321)[1]],
                vec![keys_of(RUN_ENTRIES)[1]],
                vec![keys_of(17)[2]],
                vec![user(2), AuditKey::Action(10)],
                vec![keys_of(total - 1)[2], user(((total - 1) % 7) as u8)],
            ] {
                for (from, to) in [
                    everything,
                    (
                        10 * (RUN_ENTRIES as i64 - 300),
                        10 * (RUN_ENTRIES as i64 + 300),
                    ),
                    (10 * (total as i64 - 500), everything.1),
                    (5, 15),
                ] {
                    assert_eq!(
                        find(keys.clone(), from, to),
                        expect(&keys, from, to),
                        "{keys:?} {from}..{to}"
                    );
                }
            }
            // Paging across runs and the entries waiting for one.
            let mut after = None;
            let mut paged = Vec::new();
            loop {
                let page = store
                    .lookup(&AuditLookup {
                        keys: vec![user(5)],
                        after,
                        limit: 700,
                        ..Default::default()
                    })
                    .unwrap();
                let Some(last) = page.last() else { break };
                after = Some(last.0);
                paged.extend(indexes(&page));
            }
            assert_eq!(paged, expect(&[user(5)], everything.0, everything.1));
        }
    });
}

#[test]
fn a_version_1_log_is_migrated_and_its_index_kept() {
    // Schema v1 as an older build wrote it: one postings row per key per
    // commit, (key, first_idx) ordered.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE audit_entries (idx INTEGER PRIMARY KEY, time_ms BIGINT NOT NULL, entry BLOB NOT NULL);
             CREATE INDEX audit_entries_time ON audit_entries (time_ms);
             CREATE TABLE audit_postings (key BLOB NOT NULL, first_idx BIGINT NOT NULL,
               min_time BIGINT NOT NULL, max_time BIGINT NOT NULL, idxs BLOB NOT NULL,
               PRIMARY KEY (key, first_idx)) WITHOUT ROWID;
             CREATE TABLE audit_nodes (level BIGINT NOT NULL, idx BIGINT NOT NULL, hash BLOB NOT NULL,
               PRIMARY KEY (level, idx)) WITHOUT ROWID;
             CREATE TABLE audit_checkpoints (size INTEGER PRIMARY KEY, time_ms BIGINT NOT NULL,
               root BLOB NOT NULL, note TEXT NOT NULL);
             CREATE TABLE audit_deks (dek INTEGER PRIMARY KEY, first_idx BIGINT NOT NULL);
             INSERT INTO audit_meta VALUES ('schema_version', '1');
             PRAGMA journal_mode = WAL;",
        )
        .unwrap();
        // Two commits: entries 0..3 (user 1; user 2 on 1 and 2), 3..5
        // (user 1).
        for i in 0..5i64 {
            c.execute(
                "INSERT INTO audit_entries VALUES (?, ?, ?)",
                rusqlite::params![i, 100 * i, format!("entry-{i}").into_bytes()],
            )
            .unwrap();
        }
        let rows: [(&AuditKey, i64, i64, i64, &[u8]); 3] = [
            (&user(1), 0, 0, 200, &[1, 1]),
            (&user(2), 1, 100, 200, &[1]),
            (&user(1), 3, 300, 400, &[1]),
        ];
        for (k, first, min, max, rest) in rows {
            c.execute(
                "INSERT INTO audit_postings VALUES (?, ?, ?, ?, ?)",
                rusqlite::params![k.to_bytes(), first, min, max, rest],
            )
            .unwrap();
        }
    }
    let s = SqliteAuditStore::open(&path, false).unwrap();
    assert_eq!(s.schema_version().unwrap(), AUDIT_SCHEMA_VERSION);
    let find = |s: &SqliteAuditStore, keys: Vec<AuditKey>, from: Option<i64>| {
        indexes(
            &s.lookup(&AuditLookup {
                keys,
                from_ms: from,
                ..Default::default()
            })
            .unwrap(),
        )
    };
    assert_eq!(find(&s, vec![user(1)], None), vec![0, 1, 2, 3, 4]);
    assert_eq!(find(&s, vec![user(2)], None), vec![1, 2]);
    assert_eq!(find(&s, vec![user(1)], Some(250)), vec![3, 4]);
    // The log carries on.
    let r = s.append(&AuditBatch {
        entries: vec![entry(5, 500, vec![user(2)])],
        ..Default::default()
    });
    assert_eq!(r.unwrap(), Appended::Committed);
    assert_eq!(find(&s, vec![user(2)], None), vec![1, 2, 5]);
    drop(s);
    let s = SqliteAuditStore::open(&path, false).unwrap();
    assert_eq!(find(&s, vec![user(2)], Some(150)), vec![2, 5]);
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

#[test]
fn export_ids_are_lookup_keys_like_the_others() {
    // Every kind of key survives its stored encoding (`audit_pending`).
    for key in [
        user(1),
        session(2),
        AuditKey::Host([3; 16]),
        AuditKey::Ip([4; 16]),
        patient(5),
        AuditKey::Action(13),
        AuditKey::Export([6; 16]),
    ] {
        let bytes = key.to_bytes();
        assert_eq!(AuditKey::from_bytes(&bytes), Some((key, bytes.len())));
    }
    each_backend(|s, _| {
        // Entries 0..10; every third belongs to export 1, entry 4 to export 2.
        let entries = (0..10u64)
            .map(|i| {
                let mut keys = vec![user(1), AuditKey::Action(15)];
                if i % 3 == 0 {
                    keys.push(AuditKey::Export([1; 16]));
                }
                if i == 4 {
                    keys.push(AuditKey::Export([2; 16]));
                }
                entry(i, 10 * i as i64, keys)
            })
            .collect();
        let r = s.append(&AuditBatch {
            entries,
            ..Default::default()
        });
        assert_eq!(r.unwrap(), Appended::Committed);
        let find = |keys: Vec<AuditKey>| {
            indexes(
                &s.lookup(&AuditLookup {
                    keys,
                    ..Default::default()
                })
                .unwrap(),
            )
        };
        assert_eq!(find(vec![AuditKey::Export([1; 16])]), vec![0, 3, 6, 9]);
        assert_eq!(find(vec![AuditKey::Export([2; 16]), user(1)]), vec![4]);
        assert!(find(vec![AuditKey::Export([3; 16])]).is_empty());
    });
}

#[test]
fn consumer_positions_move_forward_only_and_persist() {
    each_backend(|s, reopen| {
        let r = s.append(&AuditBatch {
            entries: (0..3).map(|i| entry(i, i as i64, vec![user(1)])).collect(),
            ..Default::default()
        });
        assert_eq!(r.unwrap(), Appended::Committed);
        assert_eq!(s.consumer_position("detector").unwrap(), None);
        assert!(s.consumers().unwrap().is_empty());
        assert_eq!(s.advance_consumer("detector", 5).unwrap(), 5);
        // A repeated or late acknowledgement never moves it back.
        assert_eq!(s.advance_consumer("detector", 5).unwrap(), 5);
        assert_eq!(s.advance_consumer("detector", 3).unwrap(), 5);
        assert_eq!(s.advance_consumer("detector", 9).unwrap(), 9);
        assert_eq!(s.advance_consumer("siem.export-1", 0).unwrap(), 0);
        assert_eq!(s.consumer_position("detector").unwrap(), Some(9));
        // A replay moves it anywhere.
        s.set_consumer("detector", Some(2)).unwrap();
        assert_eq!(s.consumer_position("detector").unwrap(), Some(2));
        s.set_consumer("new_one", Some(7)).unwrap();
        assert_eq!(
            s.consumers().unwrap(),
            vec![
                ("detector".to_string(), 2),
                ("new_one".to_string(), 7),
                ("siem.export-1".to_string(), 0)
            ]
        );
        s.set_consumer("new_one", None).unwrap();
        assert_eq!(s.consumer_position("new_one").unwrap(), None);
        // Positions are not the log.
        assert_eq!(s.size().unwrap(), 3);
        let again = reopen().unwrap();
        assert_eq!(again.consumer_position("detector").unwrap(), Some(2));
        assert_eq!(again.consumers().unwrap().len(), 2);
        for bad in [
            "",
            "a b",
            "dé",
            "x'; DROP TABLE audit_entries; --",
            &"n".repeat(65),
        ] {
            assert!(
                matches!(s.consumer_position(bad), Err(Error::Invalid(_))),
                "{bad:?}"
            );
            assert!(matches!(s.advance_consumer(bad, 1), Err(Error::Invalid(_))));
            assert!(matches!(
                s.set_consumer(bad, Some(1)),
                Err(Error::Invalid(_))
            ));
        }
        assert_eq!(s.advance_consumer(&"n".repeat(64), 1).unwrap(), 1);
    });
}

#[test]
fn concurrent_acknowledgements_keep_the_highest() {
    each_backend(|s, _| {
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                scope.spawn(move || {
                    for k in 0..50u64 {
                        // Interleaved: thread t acknowledges t, t+4, ...
                        let stored = s.advance_consumer("racer", k * 4 + t).unwrap();
                        assert!(stored >= k * 4 + t);
                    }
                });
            }
        });
        assert_eq!(s.consumer_position("racer").unwrap(), Some(199));
    });
}

#[test]
fn acknowledgements_beside_appends_lose_nothing() {
    each_backend(|s, _| {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..200u64 {
                    let r = s
                        .append(&AuditBatch {
                            entries: vec![entry(i, i as i64, vec![user(1)])],
                            ..Default::default()
                        })
                        .unwrap();
                    assert_eq!(r, Appended::Committed);
                }
            });
            scope.spawn(|| {
                for k in 1..=200u64 {
                    s.advance_consumer("beside", k).unwrap();
                }
            });
        });
        assert_eq!(s.size().unwrap(), 200);
        assert_eq!(s.consumer_position("beside").unwrap(), Some(200));
    });
}

#[test]
fn a_version_2_log_gains_consumer_positions() {
    // Schema v2 as the previous build wrote it: everything but
    // audit_consumers.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    {
        let s = SqliteAuditStore::open(&path, true).unwrap();
        let r = s.append(&AuditBatch {
            entries: (0..2).map(|i| entry(i, i as i64, vec![user(1)])).collect(),
            ..Default::default()
        });
        assert_eq!(r.unwrap(), Appended::Committed);
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "DROP TABLE audit_consumers;
         UPDATE audit_meta SET value = '2' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(c);
    let s = SqliteAuditStore::open(&path, false).unwrap();
    assert_eq!(s.schema_version().unwrap(), AUDIT_SCHEMA_VERSION);
    assert_eq!(s.size().unwrap(), 2);
    assert_eq!(s.advance_consumer("detector", 2).unwrap(), 2);
    drop(s);

    if let Some(schema) = Schema::new("auditv2") {
        let s = PgAuditStore::open(&schema.url, &schema.name).unwrap();
        let r = s.append(&AuditBatch {
            entries: (0..2).map(|i| entry(i, i as i64, vec![user(1)])).collect(),
            ..Default::default()
        });
        assert_eq!(r.unwrap(), Appended::Committed);
        drop(s);
        let mut c = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "DROP TABLE \"{0}\".audit_consumers;
             UPDATE \"{0}\".audit_meta SET value = '2' WHERE key = 'schema_version'",
            schema.name
        ))
        .unwrap();
        let s = PgAuditStore::open(&schema.url, &schema.name).unwrap();
        assert_eq!(s.schema_version().unwrap(), AUDIT_SCHEMA_VERSION);
        assert_eq!(s.size().unwrap(), 2);
        assert_eq!(s.advance_consumer("detector", 2).unwrap(), 2);
    }
}

#[test]
fn a_backup_copy_holds_the_log_and_its_latest_checkpoint() {
    each_backend(|s, _| {
        let batch = AuditBatch {
            entries: (0..3).map(|i| entry(i, 1000 + i as i64, vec![])).collect(),
            nodes: vec![],
            checkpoint: Some(AuditCheckpoint {
                size: 3,
                time_ms: 2000,
                root: [4; 32],
                note: "note\n".into(),
            }),
        };
        assert_eq!(s.append(&batch).unwrap(), Appended::Committed);
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("audit.db");
        match s.backend() {
            Backend::Sqlite => {
                let (size, checkpoint) = s.backup_to(&copy).unwrap();
                assert_eq!(size, 3);
                assert_eq!(checkpoint.unwrap().root, [4; 32]);
                let opened = SqliteAuditStore::open(&copy, false).unwrap();
                assert_eq!(opened.size().unwrap(), 3);
                assert_eq!(opened.entries(0, 3).unwrap()[2].1, b"entry-2");
            }
            Backend::Postgres => {
                let e = s.backup_to(&copy).unwrap_err();
                assert!(e.to_string().contains("not supported yet"), "{e}");
            }
        }
    });
}
