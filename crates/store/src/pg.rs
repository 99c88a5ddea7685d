//! The PostgreSQL backend, for chains that outgrow one machine.
//!
//! The vault's tables live in their own schema (search_path is set on every
//! connection), so several vaults, or a vault and its tests, can share one
//! database. Connections are pooled; each caches its prepared statements.
//! Migrations take a transaction-scoped advisory lock so two processes
//! opening the same vault never migrate it twice.

use crate::pool::{self, Pool};
use crate::schema::{self, CURRENT};
use crate::sql::{self, RawRecord, Sql, rid_from, to_record};
use crate::{
    Backend, Error, IndexHit, Op, RecordWrite, Result, Store, StoredKey, StoredRecord, WriteBatch,
};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement};
use rxvault_model::{DekId, IndexKind, IndexToken, RecordKind, Rid};
use std::collections::HashMap;

/// A vault stored in a PostgreSQL schema.
pub struct PgStore {
    connector: crate::pgconn::Connector,
    schema: String,
    pool: Pool<Conn>,
    sql: Sql,
    /// Array-based upserts per table, in `RecordKind::ALL` order.
    bulk: Vec<BulkSql>,
    bulk_tokens_delete: String,
    bulk_tokens_insert: String,
}

/// PostgreSQL-only statements that write many records in one round trip.
struct BulkSql {
    upsert: String,
}

impl BulkSql {
    fn new(kind: RecordKind) -> Self {
        let t = kind.table();
        Self {
            upsert: format!(
                "INSERT INTO {t} (rid, patient_rid, dek_id, derived, envelope, updated_at) \
                 SELECT r, p, d, x, e, $6 FROM unnest($1::bytea[], $2::bytea[], $3::int8[], $4::int8[], $5::bytea[]) \
                 AS u(r, p, d, x, e) ON CONFLICT (rid) DO UPDATE SET \
                 patient_rid = excluded.patient_rid, dek_id = excluded.dek_id, \
                 derived = excluded.derived, envelope = excluded.envelope, \
                 updated_at = excluded.updated_at"
            ),
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(map_err)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

fn map_err(e: postgres::Error) -> Error {
    if e.code() == Some(&SqlState::DISK_FULL) {
        Error::DiskFull
    } else {
        Error::Postgres(e)
    }
}

/// Quotes an identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn dialect(sql: &str) -> String {
    sql::numbered(sql)
}

fn ddl(sql: &str) -> String {
    sql.replace("BLOB", "BYTEA").replace(" WITHOUT ROWID", "")
}

impl PgStore {
    /// Creates a vault in `schema` (created if absent; it must not already
    /// hold a vault).
    pub fn create(url: &str, schema: &str) -> Result<Self> {
        let store = Self::new(url, schema)?;
        let mut conn = store.connect(true)?;
        if has_meta(&mut conn.client, schema)? {
            return Err(Error::Corrupt(format!(
                "schema {schema} already holds a vault; refusing to overwrite it"
            )));
        }
        migrate(&mut conn.client, schema, true)?;
        store.release(conn);
        Ok(store)
    }

    /// Opens the vault in `schema`, applying pending migrations.
    pub fn open(url: &str, schema: &str) -> Result<Self> {
        let store = Self::new(url, schema)?;
        let mut conn = store.connect(false)?;
        migrate(&mut conn.client, schema, false)?;
        store.release(conn);
        Ok(store)
    }

    fn new(url: &str, schema: &str) -> Result<Self> {
        if schema.is_empty() || schema.len() > 63 {
            return Err(Error::NotAVault(format!("schema name {schema:?}")));
        }
        Ok(Self {
            connector: crate::pgconn::Connector::new(url)?,
            schema: schema.to_string(),
            pool: Pool::new(pool::PG_IDLE),
            sql: Sql::new(dialect),
            bulk: RecordKind::ALL.into_iter().map(BulkSql::new).collect(),
            bulk_tokens_delete: "DELETE FROM blind_index WHERE record_kind = $1 AND rid = ANY($2::bytea[])".into(),
            bulk_tokens_insert: "INSERT INTO blind_index (index_kind, token, record_kind, rid) \
                 SELECT k, t, $3, r FROM unnest($1::int8[], $2::bytea[], $4::bytea[]) AS u(k, t, r) \
                 ON CONFLICT DO NOTHING"
                .into(),
        })
    }

    /// The schema the vault lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn connect(&self, create_schema: bool) -> Result<Conn> {
        let mut client = self.connector.connect().map_err(map_err)?;
        let schema = ident(&self.schema);
        if create_schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .map_err(map_err)?;
        }
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .map_err(map_err)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    fn take(&self) -> Result<Conn> {
        match self.pool.take() {
            Some(c) if !c.client.is_closed() => Ok(c),
            _ => self.connect(false),
        }
    }

    fn release(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        self.pool.put(conn);
    }

    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.take()?;
        let out = f(&mut conn);
        self.release(conn);
        out
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.with(|c| {
            let s = c.statement(sql)?;
            c.client.query(&s, params).map_err(map_err)
        })
    }

    fn transaction<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.with(|c| {
            let Conn { client, statements } = c;
            let tx = client.transaction().map_err(map_err)?;
            let mut tx = Tx { tx, statements };
            let out = f(&mut tx)?;
            tx.tx.commit().map_err(map_err)?;
            Ok(out)
        })
    }

    fn put(&self, tx: &mut Tx<'_>, w: &RecordWrite, at: i64) -> Result<()> {
        let r = &w.record;
        let t = self.sql.table(r.kind);
        let rid = &r.rid.0[..];
        if sql::derivable(r.kind)
            && let Some(patient) = &r.patient
        {
            let p = &patient.0[..];
            if r.derived {
                if !tx.query(&t.has_real_for_patient, &[&p])?.is_empty() {
                    return Ok(());
                }
            } else {
                for row in tx.query(&t.derived_of_patient, &[&p])? {
                    let other = rid_from(row.get(0))?;
                    if other != r.rid {
                        self.delete(tx, r.kind, &other)?;
                    }
                }
            }
        }
        let patient = r.patient.as_ref().map(|p| &p.0[..]);
        tx.execute(
            &t.upsert,
            &[
                &rid,
                &patient,
                &i64::from(r.dek.0),
                &i64::from(r.derived),
                &r.envelope,
                &at,
            ],
        )?;
        self.replace_tokens(tx, r.kind, &r.rid, &w.tokens)
    }

    /// Replaces a record's index entries.
    fn replace_tokens(
        &self,
        tx: &mut Tx<'_>,
        kind: RecordKind,
        rid: &Rid,
        tokens: &[(IndexKind, IndexToken)],
    ) -> Result<()> {
        let kind = i64::from(kind.code());
        let rid = &rid.0[..];
        tx.execute(&self.sql.tokens_delete, &[&kind, &rid])?;
        for (index, token) in tokens {
            tx.execute(
                &self.sql.token_insert,
                &[&i64::from(index.code()), &&token.0[..], &kind, &rid],
            )?;
        }
        Ok(())
    }

    /// Writes a run of puts (none of a derivable kind) with one statement per
    /// table for the records, one for removing their old index entries and
    /// one for the new ones. Within the run the last put of a record wins,
    /// as it would applied one by one.
    fn put_many(&self, tx: &mut Tx<'_>, run: &mut Vec<&RecordWrite>, at: i64) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let mut seen = std::collections::HashSet::new();
        let mut rows: Vec<&RecordWrite> = run
            .drain(..)
            .rev()
            .filter(|w| seen.insert((w.record.kind, w.record.rid)))
            .collect();
        rows.reverse();
        for (i, kind) in RecordKind::ALL.into_iter().enumerate() {
            let of: Vec<&RecordWrite> = rows
                .iter()
                .copied()
                .filter(|w| w.record.kind == kind)
                .collect();
            if of.is_empty() {
                continue;
            }
            let rids: Vec<&[u8]> = of.iter().map(|w| &w.record.rid.0[..]).collect();
            let patients: Vec<Option<&[u8]>> = of
                .iter()
                .map(|w| w.record.patient.as_ref().map(|p| &p.0[..]))
                .collect();
            let deks: Vec<i64> = of.iter().map(|w| i64::from(w.record.dek.0)).collect();
            let derived: Vec<i64> = of.iter().map(|w| i64::from(w.record.derived)).collect();
            let envelopes: Vec<&[u8]> = of.iter().map(|w| &w.record.envelope[..]).collect();
            let bulk = &self.bulk[i];
            tx.execute(
                &bulk.upsert,
                &[&rids, &patients, &deks, &derived, &envelopes, &at],
            )?;
            let code = i64::from(kind.code());
            tx.execute(&self.bulk_tokens_delete, &[&code, &rids])?;
            let mut index_kinds = Vec::new();
            let mut tokens: Vec<&[u8]> = Vec::new();
            let mut owners: Vec<&[u8]> = Vec::new();
            for w in &of {
                for (k, t) in &w.tokens {
                    index_kinds.push(i64::from(k.code()));
                    tokens.push(&t.0[..]);
                    owners.push(&w.record.rid.0[..]);
                }
            }
            if !tokens.is_empty() {
                tx.execute(
                    &self.bulk_tokens_insert,
                    &[&index_kinds, &tokens, &code, &owners],
                )?;
            }
        }
        Ok(())
    }

    fn delete(&self, tx: &mut Tx<'_>, kind: RecordKind, rid: &Rid) -> Result<()> {
        let rid = &rid.0[..];
        tx.execute(&self.sql.table(kind).delete, &[&rid])?;
        tx.execute(&self.sql.tokens_delete, &[&i64::from(kind.code()), &rid])?;
        Ok(())
    }
}

struct Tx<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

impl Tx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql).map_err(map_err)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let s = self.statement(sql)?;
        self.tx.execute(&s, params).map_err(map_err)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        self.tx.query(&s, params).map_err(map_err)
    }
}

fn has_meta(client: &mut impl GenericClient, schema: &str) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'meta'",
            &[&schema],
        )
        .map_err(map_err)?;
    Ok(row.get::<_, i64>(0) > 0)
}

fn migrate(client: &mut Client, schema: &str, creating: bool) -> Result<()> {
    let mut tx = client.transaction().map_err(map_err)?;
    // One migrator per schema at a time.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
        .map_err(map_err)?;
    let mut version = if has_meta(&mut tx, schema)? {
        let row = tx
            .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .map_err(map_err)?;
        row.and_then(|r| r.get::<_, String>(0).parse::<u32>().ok())
            .ok_or_else(|| Error::NotAVault(format!("PostgreSQL schema {schema}")))?
    } else if creating {
        0
    } else {
        return Err(Error::NotAVault(format!("PostgreSQL schema {schema}")));
    };
    if version > CURRENT {
        return Err(Error::TooNew {
            found: version,
            supported: CURRENT,
        });
    }
    while version < CURRENT {
        version += 1;
        for stmt in schema::migration(version) {
            tx.batch_execute(&ddl(&stmt)).map_err(map_err)?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&version.to_string()],
        )
        .map_err(map_err)?;
    }
    tx.commit().map_err(map_err)
}

fn row_record(kind: RecordKind, row: &Row) -> Result<StoredRecord> {
    let raw: RawRecord = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    to_record(kind, raw)
}

impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn schema_version(&self) -> Result<u32> {
        self.meta("schema_version")?
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::NotAVault(format!("PostgreSQL schema {}", self.schema)))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .query(&self.sql.meta_get, &[&key])?
            .first()
            .map(|r| r.get(0)))
    }

    fn keys(&self) -> Result<Vec<StoredKey>> {
        self.query(&self.sql.keys, &[])?
            .iter()
            .map(|r| {
                let (id, purpose, kek): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
                Ok(StoredKey {
                    id: u32::try_from(id).map_err(|_| Error::Corrupt(format!("key id {id}")))?,
                    purpose: u8::try_from(purpose)
                        .map_err(|_| Error::Corrupt(format!("key purpose {purpose}")))?,
                    kek_version: u32::try_from(kek)
                        .map_err(|_| Error::Corrupt(format!("KEK version {kek}")))?,
                    wrapped: r.get(3),
                })
            })
            .collect()
    }

    fn reserve_counters(&self, dek: DekId, n: u64) -> Result<u64> {
        let key = crate::counters_key(dek);
        self.transaction(|tx| {
            // The row is created once (a racing creator does nothing),
            // then held for the read-and-advance.
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, '0') ON CONFLICT (key) DO NOTHING",
                &[&key],
            )?;
            let rows = tx.query("SELECT value FROM meta WHERE key = $1 FOR UPDATE", &[&key])?;
            let start = crate::parse_counter(rows.first().map(|r| r.get(0)))?;
            let end = start
                .checked_add(n)
                .ok_or(Error::Corrupt("nonce counter overflow".into()))?;
            tx.execute(
                "UPDATE meta SET value = $2 WHERE key = $1",
                &[&key, &end.to_string()],
            )?;
            Ok(start)
        })
    }

    fn swap_meta(&self, key: &str, expected: Option<&str>, value: &str) -> Result<String> {
        self.transaction(|tx| {
            // Held (or, if absent, its insertion raced) for the swap.
            let rows = tx.query("SELECT value FROM meta WHERE key = $1 FOR UPDATE", &[&key])?;
            let now: Option<String> = rows.first().map(|r| r.get(0));
            if now.as_deref() != expected {
                return Ok(now.unwrap_or_default());
            }
            let written = match expected {
                None => tx.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &value],
                )?,
                Some(_) => {
                    tx.execute("UPDATE meta SET value = $2 WHERE key = $1", &[&key, &value])?
                }
            };
            if written == 1 {
                return Ok(value.to_string());
            }
            // Another writer inserted it first.
            let rows = tx.query("SELECT value FROM meta WHERE key = $1", &[&key])?;
            Ok(rows.first().map(|r| r.get(0)).unwrap_or_default())
        })
    }

    fn put_keys(&self, keys: &[StoredKey]) -> Result<()> {
        self.transaction(|tx| {
            for k in keys {
                tx.execute(
                    &self.sql.key_put,
                    &[
                        &i64::from(k.id),
                        &i64::from(k.kek_version),
                        &i64::from(k.purpose),
                        &k.wrapped,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn retain_keys_of_kek(&self, keep: u32) -> Result<u64> {
        self.transaction(|tx| {
            tx.execute(&self.sql.keys_retain, &[&i64::from(keep), &i64::from(keep)])
        })
    }

    fn delete_key(&self, id: u32) -> Result<()> {
        self.transaction(|tx| {
            tx.execute(&self.sql.key_delete, &[&i64::from(id)])
                .map(drop)
        })
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.transaction(|tx| {
            // Runs of plain puts go to the server as one statement per table
            // (arrays + unnest) instead of several round trips per record.
            let mut run: Vec<&RecordWrite> = Vec::new();
            for op in &batch.ops {
                if let Op::Put(w) = op
                    && !sql::derivable(w.record.kind)
                {
                    run.push(w);
                    continue;
                }
                self.put_many(tx, &mut run, batch.at)?;
                match op {
                    Op::Put(w) => self.put(tx, w, batch.at)?,
                    Op::Delete { kind, rid } => self.delete(tx, *kind, rid)?,
                    Op::Reseal {
                        kind,
                        rid,
                        expected,
                        envelope,
                        dek,
                        tokens,
                    } => {
                        let swapped = tx.execute(
                            &self.sql.table(*kind).reseal,
                            &[
                                envelope,
                                &i64::from(dek.0),
                                &batch.at,
                                &&rid.0[..],
                                expected,
                            ],
                        )?;
                        if let (1, Some(tokens)) = (swapped, tokens) {
                            self.replace_tokens(tx, *kind, rid, tokens)?;
                        }
                    }
                    Op::Meta {
                        key,
                        value: Some(v),
                    } => {
                        tx.execute(&self.sql.meta_put, &[key, v])?;
                    }
                    Op::Meta { key, value: None } => {
                        tx.execute(&self.sql.meta_delete, &[key])?;
                    }
                }
            }
            self.put_many(tx, &mut run, batch.at)
        })
    }

    fn get(&self, kind: RecordKind, rid: &Rid) -> Result<Option<StoredRecord>> {
        self.query(&self.sql.table(kind).get, &[&&rid.0[..]])?
            .first()
            .map(|r| row_record(kind, r))
            .transpose()
    }

    fn by_patient(&self, kind: RecordKind, patient: &Rid) -> Result<Vec<StoredRecord>> {
        self.query(&self.sql.table(kind).by_patient, &[&&patient.0[..]])?
            .iter()
            .map(|r| row_record(kind, r))
            .collect()
    }

    fn lookup(&self, index: IndexKind, token: &IndexToken) -> Result<Vec<IndexHit>> {
        self.query(&self.sql.lookup, &[&i64::from(index.code()), &&token.0[..]])?
            .iter()
            .map(|r| {
                let kind: i64 = r.get(0);
                Ok(IndexHit {
                    kind: u8::try_from(kind)
                        .ok()
                        .and_then(RecordKind::from_code)
                        .ok_or_else(|| {
                            Error::Corrupt(format!("record kind {kind} in blind index"))
                        })?,
                    rid: rid_from(r.get(1))?,
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
        let rows = match after {
            None => self.query(&t.scan_from_start, &[&limit])?,
            Some(after) => self.query(&t.scan_after, &[&&after.0[..], &limit])?,
        };
        rows.iter().map(|r| row_record(kind, r)).collect()
    }

    fn count(&self, kind: RecordKind) -> Result<u64> {
        let rows = self.query(&self.sql.table(kind).count, &[])?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) as u64)
    }

    fn dek_usage(&self) -> Result<Vec<(DekId, u64)>> {
        let mut usage = std::collections::BTreeMap::<u32, u64>::new();
        for kind in RecordKind::ALL {
            for r in self.query(&self.sql.table(kind).dek_usage, &[])? {
                let (dek, n): (i64, i64) = (r.get(0), r.get(1));
                *usage.entry(dek as u32).or_default() += n as u64;
            }
        }
        Ok(usage.into_iter().map(|(d, n)| (DekId(d), n)).collect())
    }

    fn backup_to(&self, _path: &std::path::Path) -> Result<Vec<(RecordKind, u64)>> {
        Err(Error::Invalid(
            "backups of a PostgreSQL vault are not supported yet (rxvault backs up SQLite vaults); \
             use pg_dump of the vault's schema meanwhile"
                .into(),
        ))
    }
}
