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

/// Reads back a line [`to_json`] wrote (for replaying an export through
/// detection rules): the entry as it was logged, or what is wrong with it.
pub fn from_json(v: &Value) -> std::result::Result<LoggedEntry, String> {
    use crate::entry::{Actor, ActorKind, Entry, Outcome};
    use rxvault_model::Rid;
    let field = |name: &str| v.get(name).ok_or_else(|| format!("no {name:?}"));
    let opt_str = |name: &str| -> std::result::Result<Option<String>, String> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{name:?} is not a string")),
        }
    };
    let int = |name: &str| -> std::result::Result<i64, String> {
        field(name)?
            .as_i64()
            .ok_or_else(|| format!("{name:?} is not an integer"))
    };
    let actor = field("actor")?;
    let kind = actor
        .get("kind")
        .and_then(Value::as_str)
        .and_then(|k| ActorKind::ALL.into_iter().find(|x| x.name() == k))
        .ok_or("actor.kind is not user, service, local or system")?;
    let id = actor
        .get("id")
        .and_then(Value::as_str)
        .ok_or("actor.id is not a string")?;
    let rids = |name: &str| -> std::result::Result<Vec<Rid>, String> {
        match v.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .and_then(Rid::from_hex)
                        .ok_or_else(|| format!("{name:?} holds something not a record key"))
                })
                .collect(),
            Some(_) => Err(format!("{name:?} is not a list")),
        }
    };
    let outcome = opt_str("outcome")?.unwrap_or_else(|| "success".into());
    let outcome = [Outcome::Success, Outcome::Denied, Outcome::Error]
        .into_iter()
        .find(|o| o.name() == outcome)
        .ok_or_else(|| format!("outcome {outcome:?}"))?;
    let source = opt_str("source")?
        .map(|s| {
            s.parse()
                .map_err(|_| format!("source {s:?} is not an address"))
        })
        .transpose()?;
    let action =
        serde_json::from_value(field("action")?.clone()).map_err(|e| format!("action: {e}"))?;
    let index = u64::try_from(int("index")?).map_err(|_| "index is negative".to_string())?;
    Ok(LoggedEntry {
        index,
        time_ms: int("time_ms")?,
        entry: Entry {
            actor: Actor {
                kind,
                id: id.to_string(),
            },
            session: opt_str("session")?,
            source,
            host: opt_str("host")?,
            user_agent: opt_str("user_agent")?,
            action,
            patients: rids("patients")?,
            resources: rids("resources")?,
            outcome,
            break_glass: opt_str("break_glass")?,
        },
    })
}
