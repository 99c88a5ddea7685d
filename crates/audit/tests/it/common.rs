//! Shared fixtures: keyrings, backends (SQLite and PostgreSQL), raw access
//! to the stored rows for tampering.

use rxvault_audit::{Action, Actor, AuditConfig, AuditLog, Entry, Outcome, StoreLocation};
use rxvault_crypto::kek::LocalKek;
use rxvault_crypto::{SecretKey, Secrets};
use rxvault_model::{CategorySet, FieldCategory, ManualClock, RecordKind, Rid};
use rxvault_testkit::pg::Schema;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A keyring with a data key and a signing key, as the vault hands over.
pub fn keyring() -> Secrets {
    let (ring, _) = Secrets::create(
        "vault-1",
        Box::new(LocalKek::new(1, SecretKey::generate().unwrap())),
    )
    .unwrap();
    let dek = ring.prepare_dek().unwrap();
    ring.activate(dek);
    let s = ring.prepare_signer().unwrap();
    ring.install_signer(s);
    ring
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        time::macros::datetime!(2026-11-28 09:00 UTC),
    ))
}

pub fn patient(n: u64) -> Rid {
    let mut r = [0xa5u8; 16];
    r[8..].copy_from_slice(&n.to_be_bytes());
    Rid(r)
}

/// Entry `i` of the test logs: users u0..u4, sessions of 10, two hosts.
pub fn entry(i: u64) -> Entry {
    let action = match i % 5 {
        0 => Action::Search {
            query: "phone".into(),
            results: 2,
            kind: None,
            categories: None,
        },
        _ => Action::Read {
            kind: Some(RecordKind::Patient),
            categories: CategorySet::of(&[FieldCategory::Demographics]),
        },
    };
    let patients = if i.is_multiple_of(5) {
        vec![patient(i % 7), patient(100 + i % 3)]
    } else {
        vec![patient(i % 7)]
    };
    let e = Entry::new(Actor::user(format!("u{}", i % 5)), action);
    // Some under a break-glass grant (kept in the sealed body).
    let e = if i % 10 == 3 {
        e.break_glass(format!("bg-{}", i / 10))
    } else {
        e
    };
    e.session(format!("s{}", i / 10))
        .host(if i.is_multiple_of(2) {
            "WS-Even"
        } else {
            "ws-odd"
        })
        .source(IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 4) as u8)))
        .patients(patients)
        .outcome(if i.is_multiple_of(13) {
            Outcome::Denied
        } else {
            Outcome::Success
        })
}

/// A backend to run a test on.
pub enum Db {
    Sqlite(tempfile::TempDir),
    Pg(Schema),
}

impl Db {
    pub fn location(&self) -> StoreLocation {
        match self {
            Db::Sqlite(d) => StoreLocation::Sqlite {
                dir: d.path().to_path_buf(),
            },
            Db::Pg(s) => StoreLocation::Postgres {
                url: s.url.clone(),
                schema: s.name.clone(),
            },
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Pg(_) => "postgres",
        }
    }

    pub fn raw(&self) -> Raw {
        match self {
            Db::Sqlite(d) => {
                Raw::Sqlite(rusqlite::Connection::open(d.path().join("audit.db")).unwrap())
            }
            Db::Pg(s) => {
                let mut c = postgres::Client::connect(&s.url, postgres::NoTls).unwrap();
                c.batch_execute(&format!("SET search_path TO \"{}\"", s.name))
                    .unwrap();
                Raw::Pg(c)
            }
        }
    }
}

/// Every backend available (SQLite always; PostgreSQL when configured, and
/// required under CI / RXVAULT_REQUIRE_PG).
pub fn backends(prefix: &str) -> Vec<Db> {
    let mut v = vec![Db::Sqlite(tempfile::tempdir().unwrap())];
    if let Some(s) = Schema::new(prefix) {
        v.push(Db::Pg(s));
    }
    v
}

pub fn config(every: u64) -> AuditConfig {
    let mut c = AuditConfig::for_vault("vault-1");
    c.checkpoint_every = every;
    c
}

/// A log with `n` entries on `db`, checkpointed every `every`.
pub fn filled(db: &Db, keyring: &Secrets, n: u64, every: u64) -> AuditLog {
    let log = AuditLog::open_for(
        &db.location(),
        "vault-1",
        keyring.clone(),
        clock(),
        config(every),
    )
    .unwrap();
    let pending: Vec<_> = (0..n).map(|i| log.submit(entry(i)).unwrap()).collect();
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.wait().unwrap().index, i as u64);
    }
    log
}

/// Raw access to the stored rows, bypassing the store (the attacker's).
pub enum Raw {
    Sqlite(rusqlite::Connection),
    Pg(postgres::Client),
}

impl Raw {
    pub fn exec(&mut self, sql: &str) {
        match self {
            Raw::Sqlite(c) => c.execute_batch(sql).unwrap(),
            Raw::Pg(c) => c.batch_execute(sql).unwrap(),
        }
    }

    pub fn entry(&mut self, idx: u64) -> Vec<u8> {
        match self {
            Raw::Sqlite(c) => c
                .query_row(
                    "SELECT entry FROM audit_entries WHERE idx = ?",
                    [idx as i64],
                    |r| r.get(0),
                )
                .unwrap(),
            Raw::Pg(c) => c
                .query_one(
                    "SELECT entry FROM audit_entries WHERE idx = $1",
                    &[&(idx as i64)],
                )
                .unwrap()
                .get(0),
        }
    }

    pub fn set_entry(&mut self, idx: u64, bytes: &[u8]) {
        match self {
            Raw::Sqlite(c) => {
                c.execute(
                    "UPDATE audit_entries SET entry = ? WHERE idx = ?",
                    rusqlite::params![bytes, idx as i64],
                )
                .unwrap();
            }
            Raw::Pg(c) => {
                c.execute(
                    "UPDATE audit_entries SET entry = $1 WHERE idx = $2",
                    &[&bytes, &(idx as i64)],
                )
                .unwrap();
            }
        }
    }

    pub fn insert_entry(&mut self, idx: u64, time_ms: i64, bytes: &[u8]) {
        match self {
            Raw::Sqlite(c) => {
                c.execute(
                    "INSERT INTO audit_entries (idx, time_ms, entry) VALUES (?, ?, ?)",
                    rusqlite::params![idx as i64, time_ms, bytes],
                )
                .unwrap();
            }
            Raw::Pg(c) => {
                c.execute(
                    "INSERT INTO audit_entries (idx, time_ms, entry) VALUES ($1, $2, $3)",
                    &[&(idx as i64), &time_ms, &bytes],
                )
                .unwrap();
            }
        }
    }

    pub fn notes(&mut self) -> Vec<(u64, String)> {
        match self {
            Raw::Sqlite(c) => {
                let mut s = c
                    .prepare("SELECT size, note FROM audit_checkpoints ORDER BY size")
                    .unwrap();
                s.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            Raw::Pg(c) => c
                .query(
                    "SELECT size, note FROM audit_checkpoints ORDER BY size",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
                .collect(),
        }
    }

    pub fn set_note(&mut self, size: u64, note: &str, root: &[u8; 32]) {
        match self {
            Raw::Sqlite(c) => {
                c.execute(
                    "UPDATE audit_checkpoints SET note = ?, root = ? WHERE size = ?",
                    rusqlite::params![note, &root[..], size as i64],
                )
                .unwrap();
            }
            Raw::Pg(c) => {
                c.execute(
                    "UPDATE audit_checkpoints SET note = $1, root = $2 WHERE size = $3",
                    &[&note, &&root[..], &(size as i64)],
                )
                .unwrap();
            }
        }
    }

    pub fn set_node(&mut self, level: u8, idx: u64, hash: &[u8; 32]) {
        match self {
            Raw::Sqlite(c) => {
                c.execute(
                    "UPDATE audit_nodes SET hash = ? WHERE level = ? AND idx = ?",
                    rusqlite::params![&hash[..], i64::from(level), idx as i64],
                )
                .unwrap();
            }
            Raw::Pg(c) => {
                c.execute(
                    "UPDATE audit_nodes SET hash = $1 WHERE level = $2 AND idx = $3",
                    &[&&hash[..], &i64::from(level), &(idx as i64)],
                )
                .unwrap();
            }
        }
    }
}
