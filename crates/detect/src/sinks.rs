//! Where alerts go: each sink is owed a delivery of every alert version
//! (the outbox, in the store, so it survives restarts); [`deliver_due`]
//! sends what is due and retries failures with exponential backoff. A sink
//! that is down never blocks detection (delivery runs apart from the
//! stream) and never loses an alert (a row stays owed until delivered).
//! Delivery is at least once; every notice carries `delivery_id`
//! (`<alert>/<version>`), the same on every retry, for receivers to drop
//! duplicates by.
//!
//! No HTTP here: the webhook sink is the server's
//! (`rxvault_server::webhook`); syslog (RFC 5424) reuses the audit log's
//! exporter's transport.

use crate::alerts::Alert;
use crate::{Alerts, Result};
use rxvault_model::Clock;
use rxvault_store::DetectStore;
use std::sync::Arc;

/// A destination for alert notices.
pub trait Sink: Send + Sync {
    /// Its name (outbox rows are kept under it).
    fn name(&self) -> &str;
    /// Delivers one notice (JSON, no PHI); an error is retried later.
    fn deliver(&self, notice: &serde_json::Value) -> std::result::Result<(), String>;
}

/// Backoff after `attempts` failures: 1 s doubling, at most 10 min.
pub fn backoff_ms(attempts: u32) -> i64 {
    1000i64
        .saturating_mul(1i64 << attempts.min(10))
        .min(600_000)
}

/// What one pass delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Delivered.
    pub delivered: u64,
    /// Failed (retried later).
    pub failed: u64,
}

/// Delivers everything due to each sink (up to `limit` per sink); a sink
/// failing stops its own pass only.
pub fn deliver_due(
    store: &Arc<dyn DetectStore>,
    alerts: &Alerts,
    sinks: &[Arc<dyn Sink>],
    clock: &dyn Clock,
    limit: u32,
) -> Result<Pass> {
    let mut pass = Pass::default();
    for sink in sinks {
        let now = crate::now_ms(clock);
        for item in store.due(sink.name(), now, limit)? {
            let alert: Alert = alerts.get(&item.alert_id)?;
            let mut notice = alert.notice();
            notice["delivery_id"] = format!("{}/{}", item.alert_id, item.version).into();
            notice["version"] = item.version.into();
            match sink.deliver(&notice) {
                Ok(()) => {
                    store.delivered(&item, crate::now_ms(clock))?;
                    pass.delivered += 1;
                }
                Err(e) => {
                    let next = crate::now_ms(clock) + backoff_ms(item.attempts);
                    store.retry(&item, next, &e)?;
                    pass.failed += 1;
                    // The sink is down: the rest waits for its next pass.
                    break;
                }
            }
        }
    }
    Ok(pass)
}
