//! What detection keeps (`DetectStore`), in the vault's database beside the
//! identity tables, on both backends: the engine's sealed state snapshot,
//! alerts (sealed bodies; status, severity, rule and times in the clear for
//! listing), the delivery outbox of each sink, and small settings (the
//! sealed honeytoken set, the last index alerted on).
//!
//! Exactly once: alerts, their outbox rows and `alerted_through` (the index
//! after the last entry whose findings were stored) are committed in one
//! transaction ([`DetectStore::commit`]); a detector that restarts replays
//! from its state snapshot and drops findings of entries below
//! `alerted_through`.

use crate::auth::{Conn, Db, Row, Val, all, blob, int, one, opt_text, text};
use crate::{Error, Result};
use std::path::Path;

/// An alert as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAlert {
    /// Its id.
    pub id: String,
    /// A keyed hash of what it groups by (rule and principal).
    pub group: Vec<u8>,
    /// `open`, `acknowledged`, `resolved`, `false-positive`.
    pub status: String,
    /// `low` .. `critical`.
    pub severity: String,
    /// The rule.
    pub rule: String,
    /// First and last entries that fired it.
    pub first_index: u64,
    /// Last.
    pub last_index: u64,
    /// First and last times (Unix ms).
    pub first_ms: i64,
    /// Last.
    pub last_ms: i64,
    /// Findings grouped into it.
    pub findings: u64,
    /// The sealed body (principal, details, responses, notes).
    pub sealed: Vec<u8>,
    /// Last change (Unix ms).
    pub updated_ms: i64,
}

impl std::fmt::Debug for StoredAlert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAlert")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("rule", &self.rule)
            .field("findings", &self.findings)
            .finish_non_exhaustive()
    }
}

/// One delivery owed to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// The sink's name.
    pub sink: String,
    /// The alert.
    pub alert_id: String,
    /// Which version of the alert (its findings count when enqueued).
    pub version: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before (Unix ms).
    pub next_ms: i64,
    /// The last failure, if any (no PHI).
    pub last_error: Option<String>,
}

/// What one batch of the stream produced.
#[derive(Debug, Default)]
pub struct AlertCommit {
    /// Alerts created or updated.
    pub alerts: Vec<StoredAlert>,
    /// Deliveries owed.
    pub outbox: Vec<OutboxItem>,
    /// Findings of entries below this are stored.
    pub alerted_through: u64,
}

/// Detection's storage.
pub trait DetectStore: Send + Sync + std::fmt::Debug {
    /// The state snapshot: (next index, sealed bytes).
    fn state(&self) -> Result<Option<(u64, Vec<u8>)>>;
    /// Replaces the snapshot.
    fn save_state(&self, next_index: u64, sealed: &[u8], at_ms: i64) -> Result<()>;
    /// A setting.
    fn setting(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Sets one.
    fn set_setting(&self, name: &str, value: &[u8]) -> Result<()>;
    /// The index after the last entry whose findings are stored.
    fn alerted_through(&self) -> Result<u64>;
    /// Stores a batch's alerts and deliveries and advances
    /// `alerted_through`, in one transaction.
    fn commit(&self, batch: &AlertCommit) -> Result<()>;
    /// The open (or acknowledged) alert of `group` last fired at or after
    /// `since_ms`.
    fn open_alert(&self, group: &[u8], since_ms: i64) -> Result<Option<StoredAlert>>;
    /// One alert.
    fn alert(&self, id: &str) -> Result<Option<StoredAlert>>;
    /// Alerts, newest first; only those in `status` if given.
    fn alerts(&self, status: Option<&str>, limit: u32) -> Result<Vec<StoredAlert>>;
    /// Changes an alert's status and sealed body (a lifecycle step).
    fn update_alert(&self, id: &str, status: &str, sealed: &[u8], at_ms: i64) -> Result<bool>;
    /// Deliveries due for `sink` at `now_ms`, oldest first.
    fn due(&self, sink: &str, now_ms: i64, limit: u32) -> Result<Vec<OutboxItem>>;
    /// A delivery done.
    fn delivered(&self, item: &OutboxItem, at_ms: i64) -> Result<()>;
    /// A delivery failed: try again at `next_ms`.
    fn retry(&self, item: &OutboxItem, next_ms: i64, error: &str) -> Result<()>;
    /// Deliveries still owed, per sink.
    fn owed(&self) -> Result<Vec<(String, u64)>>;
}

/// [`DetectStore`] on the vault's database.
pub struct SqlDetectStore {
    db: Db,
}

impl std::fmt::Debug for SqlDetectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlDetectStore")
            .field("db", &self.db.describe())
            .finish()
    }
}

impl SqlDetectStore {
    /// The detection tables of the SQLite vault database at `path`.
    pub fn open_sqlite(path: &Path) -> Result<Self> {
        Ok(Self {
            db: Db::open_sqlite(path)?,
        })
    }

    /// The detection tables of the vault in PostgreSQL `schema`.
    pub fn open_postgres(url: &str, schema: &str) -> Result<Self> {
        Ok(Self {
            db: Db::open_postgres(url, schema)?,
        })
    }
}

const ALERT_COLS: &str = "id, grp, status, severity, rule, first_idx, last_idx, first_ms, \
                          last_ms, findings, sealed, updated_ms";

fn alert_row(r: &[Val]) -> Result<StoredAlert> {
    Ok(StoredAlert {
        id: text(r, 0)?,
        group: blob(r, 1)?,
        status: text(r, 2)?,
        severity: text(r, 3)?,
        rule: text(r, 4)?,
        first_index: u(r, 5)?,
        last_index: u(r, 6)?,
        first_ms: int(r, 7)?,
        last_ms: int(r, 8)?,
        findings: u(r, 9)?,
        sealed: blob(r, 10)?,
        updated_ms: int(r, 11)?,
    })
}

fn outbox_row(r: &[Val]) -> Result<OutboxItem> {
    Ok(OutboxItem {
        sink: text(r, 0)?,
        alert_id: text(r, 1)?,
        version: u(r, 2)?,
        attempts: u32::try_from(int(r, 3)?).map_err(|_| Error::Corrupt("attempts".into()))?,
        next_ms: int(r, 4)?,
        last_error: opt_text(r, 5)?,
    })
}

fn u(r: &[Val], i: usize) -> Result<u64> {
    u64::try_from(int(r, i)?).map_err(|_| Error::Corrupt(format!("column {i} is negative")))
}

fn i(v: u64) -> Result<Val> {
    crate::auth::u64_val(v)
}

fn get_setting(c: &mut dyn Conn, name: &str) -> Result<Option<Vec<u8>>> {
    one(
        c.query(
            "SELECT value FROM detect_settings WHERE name = ?",
            &[name.into()],
        )?,
        |r| blob(r, 0),
    )
}

fn put_setting(c: &mut dyn Conn, name: &str, value: &[u8]) -> Result<()> {
    c.exec(
        "INSERT INTO detect_settings (name, value) VALUES (?, ?) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[name.into(), value.into()],
    )?;
    Ok(())
}

const ALERTED_THROUGH: &str = "alerted_through";

impl DetectStore for SqlDetectStore {
    fn state(&self) -> Result<Option<(u64, Vec<u8>)>> {
        self.db.read(|c| {
            one(
                c.query(
                    "SELECT next_idx, sealed FROM detect_state WHERE id = 1",
                    &[],
                )?,
                |r| Ok((u(r, 0)?, blob(r, 1)?)),
            )
        })
    }

    fn save_state(&self, next_index: u64, sealed: &[u8], at_ms: i64) -> Result<()> {
        self.db.write(|c| {
            c.exec(
                "INSERT INTO detect_state (id, next_idx, sealed, updated_ms) VALUES (1, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET next_idx = excluded.next_idx, \
                 sealed = excluded.sealed, updated_ms = excluded.updated_ms",
                &[i(next_index)?, sealed.into(), at_ms.into()],
            )?;
            Ok(())
        })
    }

    fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.db.read(|c| get_setting(c, name))
    }

    fn set_setting(&self, name: &str, value: &[u8]) -> Result<()> {
        self.db.write(|c| put_setting(c, name, value))
    }

    fn alerted_through(&self) -> Result<u64> {
        let v = self.setting(ALERTED_THROUGH)?;
        match v {
            None => Ok(0),
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Corrupt("detect_settings.alerted_through".into())),
        }
    }

    fn commit(&self, batch: &AlertCommit) -> Result<()> {
        self.db.write(|c| {
            for a in &batch.alerts {
                c.exec(
                    &format!(
                        "INSERT INTO detect_alerts ({ALERT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                         severity = excluded.severity, last_idx = excluded.last_idx, \
                         last_ms = excluded.last_ms, findings = excluded.findings, \
                         sealed = excluded.sealed, updated_ms = excluded.updated_ms"
                    ),
                    &[
                        a.id.as_str().into(),
                        a.group.as_slice().into(),
                        a.status.as_str().into(),
                        a.severity.as_str().into(),
                        a.rule.as_str().into(),
                        i(a.first_index)?,
                        i(a.last_index)?,
                        a.first_ms.into(),
                        a.last_ms.into(),
                        i(a.findings)?,
                        a.sealed.as_slice().into(),
                        a.updated_ms.into(),
                    ],
                )?;
            }
            for o in &batch.outbox {
                c.exec(
                    "INSERT INTO detect_outbox (sink, alert_id, version, attempts, next_ms, \
                     last_error, delivered_ms) VALUES (?, ?, ?, 0, ?, NULL, NULL) \
                     ON CONFLICT (sink, alert_id, version) DO NOTHING",
                    &[
                        o.sink.as_str().into(),
                        o.alert_id.as_str().into(),
                        i(o.version)?,
                        o.next_ms.into(),
                    ],
                )?;
            }
            let current = get_setting(c, ALERTED_THROUGH)?
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            if batch.alerted_through > current {
                put_setting(
                    c,
                    ALERTED_THROUGH,
                    batch.alerted_through.to_string().as_bytes(),
                )?;
            }
            Ok(())
        })
    }

    fn open_alert(&self, group: &[u8], since_ms: i64) -> Result<Option<StoredAlert>> {
        self.db.read(|c| {
            one(
                c.query(
                    &format!(
                        "SELECT {ALERT_COLS} FROM detect_alerts WHERE grp = ? AND last_ms >= ? \
                         AND status IN ('open', 'acknowledged') ORDER BY last_ms DESC LIMIT 1"
                    ),
                    &[group.into(), since_ms.into()],
                )?,
                alert_row,
            )
        })
    }

    fn alert(&self, id: &str) -> Result<Option<StoredAlert>> {
        self.db.read(|c| {
            one(
                c.query(
                    &format!("SELECT {ALERT_COLS} FROM detect_alerts WHERE id = ?"),
                    &[id.into()],
                )?,
                alert_row,
            )
        })
    }

    fn alerts(&self, status: Option<&str>, limit: u32) -> Result<Vec<StoredAlert>> {
        self.db.read(|c| {
            let rows: Vec<Row> = match status {
                Some(s) => c.query(
                    &format!(
                        "SELECT {ALERT_COLS} FROM detect_alerts WHERE status = ? \
                         ORDER BY first_ms DESC, id LIMIT ?"
                    ),
                    &[s.into(), i64::from(limit).into()],
                )?,
                None => c.query(
                    &format!(
                        "SELECT {ALERT_COLS} FROM detect_alerts ORDER BY first_ms DESC, id LIMIT ?"
                    ),
                    &[i64::from(limit).into()],
                )?,
            };
            all(rows, alert_row)
        })
    }

    fn update_alert(&self, id: &str, status: &str, sealed: &[u8], at_ms: i64) -> Result<bool> {
        self.db.write(|c| {
            Ok(c.exec(
                "UPDATE detect_alerts SET status = ?, sealed = ?, updated_ms = ? WHERE id = ?",
                &[status.into(), sealed.into(), at_ms.into(), id.into()],
            )? == 1)
        })
    }

    fn due(&self, sink: &str, now_ms: i64, limit: u32) -> Result<Vec<OutboxItem>> {
        self.db.read(|c| {
            all(
                c.query(
                    "SELECT sink, alert_id, version, attempts, next_ms, last_error FROM detect_outbox \
                     WHERE sink = ? AND delivered_ms IS NULL AND next_ms <= ? \
                     ORDER BY next_ms, alert_id, version LIMIT ?",
                    &[sink.into(), now_ms.into(), i64::from(limit).into()],
                )?,
                outbox_row,
            )
        })
    }

    fn delivered(&self, item: &OutboxItem, at_ms: i64) -> Result<()> {
        self.db.write(|c| {
            c.exec(
                "UPDATE detect_outbox SET delivered_ms = ?, attempts = attempts + 1 \
                 WHERE sink = ? AND alert_id = ? AND version = ?",
                &[
                    at_ms.into(),
                    item.sink.as_str().into(),
                    item.alert_id.as_str().into(),
                    i(item.version)?,
                ],
            )?;
            Ok(())
        })
    }

    fn retry(&self, item: &OutboxItem, next_ms: i64, error: &str) -> Result<()> {
        self.db.write(|c| {
            c.exec(
                "UPDATE detect_outbox SET attempts = attempts + 1, next_ms = ?, last_error = ? \
                 WHERE sink = ? AND alert_id = ? AND version = ? AND delivered_ms IS NULL",
                &[
                    next_ms.into(),
                    error.into(),
                    item.sink.as_str().into(),
                    item.alert_id.as_str().into(),
                    i(item.version)?,
                ],
            )?;
            Ok(())
        })
    }

    fn owed(&self) -> Result<Vec<(String, u64)>> {
        self.db.read(|c| {
            all(
                c.query(
                    "SELECT sink, COUNT(*) FROM detect_outbox WHERE delivered_ms IS NULL \
                     GROUP BY sink ORDER BY sink",
                    &[],
                )?,
                |r| Ok((text(r, 0)?, u(r, 1)?)),
            )
        })
    }
}
