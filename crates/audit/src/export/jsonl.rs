//! JSON lines: one object per entry, stable field names.
//!
//! ```json
//! {"index":7,"time":"2026-11-28T14:03:07.123Z","time_ms":1795874587123,
//!  "actor":{"kind":"user","id":"alice"},"session":"s-1","source":"10.0.0.7",
//!  "host":"ws-12","action":{"type":"read","details":{"kind":"Patient",
//!  "categories":["demographics"]}},"patients":["9f3c..."],"resources":[],
//!  "outcome":"success","break_glass":null}
//! ```
//!
//! An entry that names the client software (sign-in attempts) also has
//! `"user_agent"`.

use crate::entry::LoggedEntry;
use crate::{Result, io_err, rfc3339_ms};
use serde_json::{Value, json};
use std::io::Write;

/// The JSON object of an entry.
pub fn to_json(e: &LoggedEntry) -> Value {
    let x = &e.entry;
    let mut v = json!({
        "index": e.index,
        "time": rfc3339_ms(e.time_ms),
        "time_ms": e.time_ms,
        "actor": { "kind": x.actor.kind.name(), "id": x.actor.id },
        "session": x.session,
        "source": x.source.map(|ip| ip.to_string()),
        "host": x.host,
        "action": x.action,
        "patients": x.patients.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "resources": x.resources.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "outcome": x.outcome.name(),
        "break_glass": x.break_glass,
    });
    if let Some(ua) = &x.user_agent {
        v["user_agent"] = json!(ua);
    }
    v
}

/// Writes one line for `e`.
pub fn write(out: &mut dyn Write, e: &LoggedEntry) -> Result<()> {
    let mut line = serde_json::to_vec(&to_json(e)).expect("JSON values serialize");
    line.push(b'\n');
    out.write_all(&line).map_err(io_err("writing JSON lines"))
}
