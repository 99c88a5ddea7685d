//! The DML both backends run, written once with `?` placeholders (SQLite);
//! [`numbered`] rewrites them to `$1, $2, ...` for PostgreSQL.

use crate::{Error, Result, StoredRecord};
use rxvault_model::{DekId, RecordKind, Rid};

/// Per-table statements.
#[derive(Debug, Clone)]
pub(crate) struct TableSql {
    pub upsert: String,
    pub delete: String,
    pub reseal: String,
    pub get: String,
    pub by_patient: String,
    pub derived_of_patient: String,
    pub has_real_for_patient: String,
    pub scan_from_start: String,
    pub scan_after: String,
    pub count: String,
    pub dek_usage: String,
}

const COLUMNS: &str = "rid, patient_rid, dek_id, derived, envelope";

impl TableSql {
    pub fn new(kind: RecordKind, dialect: fn(&str) -> String) -> Self {
        let t = kind.table();
        Self {
            upsert: dialect(&format!(
                "INSERT INTO {t} (rid, patient_rid, dek_id, derived, envelope, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (rid) DO UPDATE SET \
                 patient_rid = excluded.patient_rid, dek_id = excluded.dek_id, \
                 derived = excluded.derived, envelope = excluded.envelope, \
                 updated_at = excluded.updated_at"
            )),
            delete: dialect(&format!("DELETE FROM {t} WHERE rid = ?")),
            reseal: dialect(&format!(
                "UPDATE {t} SET envelope = ?, dek_id = ?, updated_at = ? WHERE rid = ? AND envelope = ?"
            )),
            get: dialect(&format!("SELECT {COLUMNS} FROM {t} WHERE rid = ?")),
            by_patient: dialect(&format!(
                "SELECT {COLUMNS} FROM {t} WHERE patient_rid = ? ORDER BY rid"
            )),
            derived_of_patient: dialect(&format!(
                "SELECT rid FROM {t} WHERE patient_rid = ? AND derived = 1"
            )),
            has_real_for_patient: dialect(&format!(
                "SELECT 1 FROM {t} WHERE patient_rid = ? AND derived = 0 LIMIT 1"
            )),
            scan_from_start: dialect(&format!("SELECT {COLUMNS} FROM {t} ORDER BY rid LIMIT ?")),
            scan_after: dialect(&format!(
                "SELECT {COLUMNS} FROM {t} WHERE rid > ? ORDER BY rid LIMIT ?"
            )),
            count: format!("SELECT COUNT(*) FROM {t}"),
            dek_usage: format!("SELECT dek_id, COUNT(*) FROM {t} GROUP BY dek_id"),
        }
    }
}

/// Statements not tied to one record table.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub tables: Vec<TableSql>,
    pub tokens_delete: String,
    pub token_insert: String,
    pub lookup: String,
    pub meta_get: String,
    pub meta_put: String,
    pub meta_delete: String,
    pub keys: String,
    pub key_put: String,
    pub keys_retain: String,
    pub key_delete: String,
}

impl Sql {
    pub fn new(dialect: fn(&str) -> String) -> Self {
        Self {
            tables: RecordKind::ALL
                .into_iter()
                .map(|k| TableSql::new(k, dialect))
                .collect(),
            tokens_delete: dialect("DELETE FROM blind_index WHERE record_kind = ? AND rid = ?"),
            token_insert: dialect(
                "INSERT INTO blind_index (index_kind, token, record_kind, rid) VALUES (?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            ),
            lookup: dialect(
                "SELECT record_kind, rid FROM blind_index WHERE index_kind = ? AND token = ?",
            ),
            meta_get: dialect("SELECT value FROM meta WHERE key = ?"),
            meta_put: dialect(
                "INSERT INTO meta (key, value) VALUES (?, ?) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ),
            meta_delete: dialect("DELETE FROM meta WHERE key = ?"),
            keys:
                "SELECT id, purpose, kek_version, wrapped FROM data_keys ORDER BY id, kek_version"
                    .to_string(),
            key_put: dialect(
                "INSERT INTO data_keys (id, kek_version, purpose, wrapped) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (id, kek_version) DO UPDATE SET purpose = excluded.purpose, \
                 wrapped = excluded.wrapped",
            ),
            keys_retain: dialect(
                "DELETE FROM data_keys WHERE kek_version <> ? \
                 AND id IN (SELECT id FROM data_keys WHERE kek_version = ?)",
            ),
            key_delete: dialect("DELETE FROM data_keys WHERE id = ?"),
        }
    }

    pub fn table(&self, kind: RecordKind) -> &TableSql {
        &self.tables[usize::from(kind.code() - 1)]
    }
}

/// SQLite's dialect: the statements as written.
pub(crate) fn sqlite(sql: &str) -> String {
    sql.to_string()
}

/// PostgreSQL's dialect: `?` placeholders numbered.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Only coverages can be derived (from claims); the derived-record rules
/// run for them alone, keeping them off every other table's write path.
pub(crate) fn derivable(kind: RecordKind) -> bool {
    kind == RecordKind::Coverage
}

/// Decodes a stored record key.
pub(crate) fn rid_from(bytes: Vec<u8>) -> Result<Rid> {
    bytes
        .try_into()
        .map(Rid)
        .map_err(|b: Vec<u8>| Error::Corrupt(format!("record key of {} bytes", b.len())))
}

pub(crate) type RawRecord = (Vec<u8>, Option<Vec<u8>>, i64, i64, Vec<u8>);

pub(crate) fn to_record(kind: RecordKind, raw: RawRecord) -> Result<StoredRecord> {
    let (rid, patient, dek, derived, envelope) = raw;
    Ok(StoredRecord {
        kind,
        rid: rid_from(rid)?,
        patient: patient.map(rid_from).transpose()?,
        dek: DekId(u32::try_from(dek).map_err(|_| Error::Corrupt(format!("data key id {dek}")))?),
        derived: derived != 0,
        envelope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering() {
        assert_eq!(numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
        let sql = Sql::new(sqlite);
        assert!(sql.table(RecordKind::Fill).get.contains("FROM fills"));
        assert!(sql.table(RecordKind::Patient).get.contains("FROM patients"));
    }
}
