//! The database schema and its versions.
//!
//! Migrations are numbered and applied in order inside one transaction each;
//! the applied version is `meta.schema_version`. A database whose version is
//! newer than [`CURRENT`] is refused ([`Error::TooNew`](crate::Error)), never
//! written to.
//!
//! DDL is written once, in the subset SQLite and PostgreSQL share; the
//! PostgreSQL backend maps `BLOB` to `BYTEA` and drops `WITHOUT ROWID`.

use rxvault_model::RecordKind;

/// The schema version this build writes.
pub const CURRENT: u32 = 1;

/// The statements of migration `version` (1-based).
pub(crate) fn migration(version: u32) -> Vec<String> {
    match version {
        1 => {
            let mut s = vec![
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)".to_string(),
                "CREATE TABLE data_keys (id BIGINT NOT NULL, kek_version BIGINT NOT NULL, \
                 purpose BIGINT NOT NULL, wrapped BLOB NOT NULL, PRIMARY KEY (id, kek_version))"
                    .to_string(),
                "CREATE TABLE blind_index (index_kind BIGINT NOT NULL, token BLOB NOT NULL, \
                 record_kind BIGINT NOT NULL, rid BLOB NOT NULL, \
                 PRIMARY KEY (index_kind, token, record_kind, rid)) WITHOUT ROWID"
                    .to_string(),
                "CREATE INDEX blind_index_record ON blind_index (record_kind, rid)".to_string(),
            ];
            for kind in RecordKind::ALL {
                let t = kind.table();
                s.push(format!(
                    "CREATE TABLE {t} (rid BLOB PRIMARY KEY, patient_rid BLOB, \
                     dek_id BIGINT NOT NULL, derived BIGINT NOT NULL DEFAULT 0, \
                     envelope BLOB NOT NULL, updated_at BIGINT NOT NULL)"
                ));
                if kind.has_patient() {
                    s.push(format!("CREATE INDEX {t}_patient ON {t} (patient_rid)"));
                }
            }
            s
        }
        _ => Vec::new(),
    }
}
