//! The SQLite backend: the embedded default.
//!
//! One writer connection (SQLite allows one writer at a time anyway; holding
//! it behind a mutex turns lock contention into queueing instead of
//! `SQLITE_BUSY`) and a small pool of reader connections, which WAL mode lets
//! run beside the writer. `synchronous=FULL` makes a commit durable before it
//! returns; temporary tables and indices stay in memory.

use crate::pool::{self, Pool};
use crate::schema::{self, CURRENT};
use crate::sql::{self, RawRecord, Sql, rid_from, to_record};
use crate::{
    Backend, Error, IndexHit, Op, RecordWrite, Result, Store, StoredKey, StoredRecord, WriteBatch,
};
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior, params,
};
use rxvault_model::{DekId, IndexKind, IndexToken, RecordKind, Rid};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A vault stored in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Pool<Connection>,
    sql: Sql,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn map_err(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Error::DiskFull,
        _ => Error::Sqlite(e),
    }
}

impl SqliteStore {
    /// Creates a new, empty vault database at `path` (which must not exist).
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Err(Error::Corrupt(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            )));
        }
        let conn = Self::connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        Self::finish_open(path, conn, true)
    }

    /// Opens an existing vault database, applying pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::NotAVault(format!(
                "{} (no such file)",
                path.display()
            )));
        }
        let conn = Self::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        Self::finish_open(path, conn, false)
    }

    fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(map_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(map_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
             PRAGMA foreign_keys = OFF; PRAGMA cache_size = -32768;",
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::NotAVault(path.display().to_string()),
            _ => map_err(e),
        })?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn finish_open(path: &Path, mut conn: Connection, creating: bool) -> Result<Self> {
        migrate(&mut conn, path, creating)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Pool::new(pool::SQLITE_IDLE),
            sql: Sql::new(sql::sqlite),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = match self.readers.take() {
            Some(c) => c,
            None => {
                let c = Self::connect(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
                // Readers keep a smaller page cache than the writer (up to
                // `pool::SQLITE_IDLE` of them stay open; the OS caches the file).
                c.pragma_update(None, "cache_size", -8192)
                    .map_err(map_err)?;
                c
            }
        };
        let result = f(&conn).map_err(map_err);
        self.readers.put(conn);
        result
    }

    fn write_with<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(map_err)?;
        Ok(out)
    }

    fn put(&self, tx: &rusqlite::Transaction<'_>, w: &RecordWrite, at: i64) -> Result<()> {
        let r = &w.record;
        let t = self.sql.table(r.kind);
        if sql::derivable(r.kind)
            && let Some(patient) = &r.patient
        {
            if r.derived {
                let real: Option<i64> = tx
                    .prepare_cached(&t.has_real_for_patient)?
                    .query_row(params![&patient.0[..]], |row| row.get(0))
                    .optional()?;
                if real.is_some() {
                    return Ok(());
                }
            } else {
                let derived: Vec<Vec<u8>> = tx
                    .prepare_cached(&t.derived_of_patient)?
                    .query_map(params![&patient.0[..]], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for rid in derived {
                    let rid = rid_from(rid)?;
                    if rid != r.rid {
                        self.delete(tx, r.kind, &rid)?;
                    }
                }
            }
        }
        tx.prepare_cached(&t.upsert)?.execute(params![
            &r.rid.0[..],
            r.patient.as_ref().map(|p| &p.0[..]),
            i64::from(r.dek.0),
            i64::from(r.derived),
            &r.envelope,
            at
        ])?;
        self.replace_tokens(tx, r.kind, &r.rid, &w.tokens)
    }

    /// Replaces a record's index entries.
    fn replace_tokens(
        &self,
        tx: &rusqlite::Transaction<'_>,
        kind: RecordKind,
        rid: &Rid,
        tokens: &[(IndexKind, IndexToken)],
    ) -> Result<()> {
        let kind = i64::from(kind.code());
        tx.prepare_cached(&self.sql.tokens_delete)?
            .execute(params![kind, &rid.0[..]])?;
        let mut insert = tx.prepare_cached(&self.sql.token_insert)?;
        for (index, token) in tokens {
            insert.execute(params![
                i64::from(index.code()),
                &token.0[..],
                kind,
                &rid.0[..]
            ])?;
        }
        Ok(())
    }

    fn delete(&self, tx: &rusqlite::Transaction<'_>, kind: RecordKind, rid: &Rid) -> Result<()> {
        tx.prepare_cached(&self.sql.table(kind).delete)?
            .execute(params![&rid.0[..]])?;
        tx.prepare_cached(&self.sql.tokens_delete)?
            .execute(params![i64::from(kind.code()), &rid.0[..]])?;
        Ok(())
    }
}

fn migrate(conn: &mut Connection, path: &Path, creating: bool) -> Result<()> {
    let has_meta: bool =
        conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::NotAVault(path.display().to_string()),
            _ => map_err(e),
        })? > 0;
    let mut version = if has_meta {
        let v: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_err)?;
        v.and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| Error::NotAVault(path.display().to_string()))?
    } else if creating {
        0
    } else {
        return Err(Error::NotAVault(path.display().to_string()));
    };
    if version > CURRENT {
        return Err(Error::TooNew {
            found: version,
            supported: CURRENT,
        });
    }
    while version < CURRENT {
        version += 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(map_err)?;
        for stmt in schema::migration(version) {
            tx.execute(&stmt, []).map_err(map_err)?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![version.to_string()],
        )
        .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
    }
    Ok(())
}

fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn schema_version(&self) -> Result<u32> {
        self.meta("schema_version")?
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::NotAVault(self.path.display().to_string()))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.read(|c| {
            c.prepare_cached(&self.sql.meta_get)?
                .query_row(params![key], |r| r.get(0))
                .optional()
        })
    }

    fn keys(&self) -> Result<Vec<StoredKey>> {
        let rows: Vec<(i64, i64, i64, Vec<u8>)> = self.read(|c| {
            c.prepare_cached(&self.sql.keys)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(id, purpose, kek, wrapped)| {
                Ok(StoredKey {
                    id: u32::try_from(id).map_err(|_| Error::Corrupt(format!("key id {id}")))?,
                    purpose: u8::try_from(purpose)
                        .map_err(|_| Error::Corrupt(format!("key purpose {purpose}")))?,
                    kek_version: u32::try_from(kek)
                        .map_err(|_| Error::Corrupt(format!("KEK version {kek}")))?,
                    wrapped,
                })
            })
            .collect()
    }

    fn reserve_counters(&self, dek: DekId, n: u64) -> Result<u64> {
        let key = crate::counters_key(dek);
        // An immediate transaction: SQLite's write lock orders the
        // read-and-advance between processes.
        self.write_with(|tx| {
            let start = crate::parse_counter(
                tx.prepare_cached(&self.sql.meta_get)?
                    .query_row(params![key], |r| r.get(0))
                    .optional()?,
            )?;
            let end = start
                .checked_add(n)
                .ok_or(Error::Corrupt("nonce counter overflow".into()))?;
            tx.prepare_cached(&self.sql.meta_put)?
                .execute(params![key, end.to_string()])?;
            Ok(start)
        })
    }

    fn swap_meta(&self, key: &str, expected: Option<&str>, value: &str) -> Result<String> {
        self.write_with(|tx| {
            let now: Option<String> = tx
                .prepare_cached(&self.sql.meta_get)?
                .query_row(params![key], |r| r.get(0))
                .optional()?;
            if now.as_deref() != expected {
                return Ok(now.unwrap_or_default());
            }
            tx.prepare_cached(&self.sql.meta_put)?
                .execute(params![key, value])?;
            Ok(value.to_string())
        })
    }

    fn put_keys(&self, keys: &[StoredKey]) -> Result<()> {
        self.write_with(|tx| {
            let mut stmt = tx.prepare_cached(&self.sql.key_put)?;
            for k in keys {
                stmt.execute(params![
                    i64::from(k.id),
                    i64::from(k.kek_version),
                    i64::from(k.purpose),
                    &k.wrapped
                ])
                .map_err(map_err)?;
            }
            Ok(())
        })
    }

    fn retain_keys_of_kek(&self, keep: u32) -> Result<u64> {
        self.write_with(|tx| {
            Ok(tx
                .prepare_cached(&self.sql.keys_retain)?
                .execute(params![i64::from(keep), i64::from(keep)])
                .map_err(map_err)? as u64)
        })
    }

    fn delete_key(&self, id: u32) -> Result<()> {
        self.write_with(|tx| {
            tx.prepare_cached(&self.sql.key_delete)?
                .execute(params![i64::from(id)])
                .map_err(map_err)?;
            Ok(())
        })
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.write_with(|tx| {
            for op in &batch.ops {
                match op {
                    Op::Put(w) => self.put(tx, w, batch.at),
                    Op::Delete { kind, rid } => self.delete(tx, *kind, rid),
                    Op::Reseal {
                        kind,
                        rid,
                        expected,
                        envelope,
                        dek,
                        tokens,
                    } => {
                        let swapped = tx
                            .prepare_cached(&self.sql.table(*kind).reseal)?
                            .execute(params![
                                envelope,
                                i64::from(dek.0),
                                batch.at,
                                &rid.0[..],
                                expected
                            ])
                            .map_err(map_err)?;
                        match tokens {
                            Some(tokens) if swapped == 1 => {
                                self.replace_tokens(tx, *kind, rid, tokens)
                            }
                            _ => Ok(()),
                        }
                    }
                    Op::Meta {
                        key,
                        value: Some(v),
                    } => tx
                        .prepare_cached(&self.sql.meta_put)?
                        .execute(params![key, v])
                        .map(drop)
                        .map_err(map_err),
                    Op::Meta { key, value: None } => tx
                        .prepare_cached(&self.sql.meta_delete)?
                        .execute(params![key])
                        .map(drop)
                        .map_err(map_err),
                }
                .map_err(|e| match e {
                    Error::Sqlite(e) => map_err(e),
                    e => e,
                })?;
            }
            Ok(())
        })
    }

    fn get(&self, kind: RecordKind, rid: &Rid) -> Result<Option<StoredRecord>> {
        let raw = self.read(|c| {
            c.prepare_cached(&self.sql.table(kind).get)?
                .query_row(params![&rid.0[..]], raw_record)
                .optional()
        })?;
        raw.map(|r| to_record(kind, r)).transpose()
    }

    fn by_patient(&self, kind: RecordKind, patient: &Rid) -> Result<Vec<StoredRecord>> {
        let raws: Vec<RawRecord> = self.read(|c| {
            c.prepare_cached(&self.sql.table(kind).by_patient)?
                .query_map(params![&patient.0[..]], raw_record)?
                .collect()
        })?;
        raws.into_iter().map(|r| to_record(kind, r)).collect()
    }

    fn lookup(&self, index: IndexKind, token: &IndexToken) -> Result<Vec<IndexHit>> {
        let rows: Vec<(i64, Vec<u8>)> = self.read(|c| {
            c.prepare_cached(&self.sql.lookup)?
                .query_map(params![i64::from(index.code()), &token.0[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
        })?;
        rows.into_iter()
            .map(|(kind, rid)| {
                Ok(IndexHit {
                    kind: u8::try_from(kind)
                        .ok()
                        .and_then(RecordKind::from_code)
                        .ok_or_else(|| {
                            Error::Corrupt(format!("record kind {kind} in blind index"))
                        })?,
                    rid: rid_from(rid)?,
                })
            })
            .collect()
    }

    fn scan(
        &self,
        kind: RecordKind,
        after: Option<&Rid>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        let t = self.sql.table(kind);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let raws: Vec<RawRecord> = self.read(|c| match after {
            None => c
                .prepare_cached(&t.scan_from_start)?
                .query_map(params![limit], raw_record)?
                .collect(),
            Some(after) => c
                .prepare_cached(&t.scan_after)?
                .query_map(params![&after.0[..], limit], raw_record)?
                .collect(),
        })?;
        raws.into_iter().map(|r| to_record(kind, r)).collect()
    }

    fn count(&self, kind: RecordKind) -> Result<u64> {
        let n: i64 = self.read(|c| {
            c.prepare_cached(&self.sql.table(kind).count)?
                .query_row([], |r| r.get(0))
        })?;
        Ok(n as u64)
    }

    fn dek_usage(&self) -> Result<Vec<(DekId, u64)>> {
        let mut usage = std::collections::BTreeMap::<u32, u64>::new();
        for kind in RecordKind::ALL {
            let rows: Vec<(i64, i64)> = self.read(|c| {
                c.prepare_cached(&self.sql.table(kind).dek_usage)?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })?;
            for (dek, n) in rows {
                *usage.entry(dek as u32).or_default() += n as u64;
            }
        }
        Ok(usage.into_iter().map(|(d, n)| (DekId(d), n)).collect())
    }

    fn backup_to(&self, path: &Path) -> Result<Vec<(RecordKind, u64)>> {
        let from = Self::connect(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        crate::sqlite_backup(&from, path)?;
        drop(from);
        let copy =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(map_err)?;
        RecordKind::ALL
            .into_iter()
            .map(|kind| {
                let n: i64 = copy
                    .query_row(&self.sql.table(kind).count, [], |r| r.get(0))
                    .map_err(map_err)?;
                Ok((kind, n as u64))
            })
            .collect()
    }
}
