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
//! (`rxvault_server::webhook`); [`SyslogSink`] (RFC 5424) reuses the audit
//! log's exporter's transports (UDP, TCP, TLS).

use crate::alerts::Alert;
use crate::{Alerts, Error, Result};
use rxvault_audit::export::syslog::{Sender, Transport};
use rxvault_model::Clock;
use rxvault_store::DetectStore;
use std::sync::Arc;
use std::sync::Mutex;

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

/// A syslog collector (RFC 5424 over UDP, TCP or TLS). The connection is
/// kept and made again after a failure.
pub struct SyslogSink {
    name: String,
    transport: Transport,
    hostname: String,
    sender: Mutex<Option<Sender>>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SyslogSink {
    /// The sink `config` names; `hostname` is the message's HOSTNAME.
    pub fn new(config: &crate::rules::Syslog, hostname: &str) -> Result<Self> {
        let bad = |m: String| Error::Invalid(format!("syslog {}: {m}", config.name));
        let (scheme, rest) = config
            .address
            .split_once("://")
            .ok_or_else(|| bad("no scheme".into()))?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(rest)
            .map_err(|e| bad(format!("{rest}: {e}")))?
            .next()
            .ok_or_else(|| bad(format!("{rest}: no address")))?;
        let transport = match scheme {
            "udp" => Transport::Udp(addr),
            "tcp" => Transport::Tcp(addr),
            "tls" => {
                let ca = config
                    .ca_file
                    .as_deref()
                    .ok_or_else(|| bad("tls:// needs ca_file".into()))?;
                let roots =
                    rxvault_audit::export::syslog::load_certificates(std::path::Path::new(ca))
                        .map_err(|e| bad(e.to_string()))?;
                let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
                Transport::Tls {
                    addr,
                    server_name: config
                        .server_name
                        .clone()
                        .unwrap_or_else(|| host.to_string()),
                    roots,
                }
            }
            other => return Err(bad(format!("scheme {other:?}"))),
        };
        Ok(Self {
            name: config.name.clone(),
            transport,
            hostname: printable(hostname, 255),
            sender: Mutex::new(None),
        })
    }
}

/// RFC 5424 PARAM-VALUE escaping (§6.3.3).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars().take(1024) {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Printable ASCII only (HOSTNAME and the like), `-` when empty.
fn printable(v: &str, max: usize) -> String {
    let s: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// The RFC 5424 message of a notice.
pub fn syslog_message(notice: &serde_json::Value, hostname: &str) -> String {
    let text = |k: &str| match &notice[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        v => v.to_string(),
    };
    // authpriv (10); crit, err, warning, notice.
    let severity = match notice["severity"].as_str() {
        Some("critical") => 2,
        Some("high") => 3,
        Some("medium") => 4,
        _ => 5,
    };
    let time = notice["last_ms"]
        .as_i64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| "-".to_string(), |t| format!("{t:.3}"));
    let mut sd = String::from("[alert@32473");
    for k in [
        "id",
        "rule",
        "severity",
        "status",
        "principal",
        "host",
        "source",
        "findings",
        "patients",
        "first_index",
        "last_index",
        "delivery_id",
    ] {
        let v = text(k);
        if !v.is_empty() {
            sd.push_str(&format!(" {}=\"{}\"", k.replace('_', ""), escape(&v)));
        }
    }
    sd.push(']');
    format!(
        "<{}>1 {time} {hostname} rxvault - alert {sd} \u{FEFF}{} alert {}: {}",
        10 * 8 + severity,
        text("severity"),
        text("rule"),
        text("detail")
    )
}

impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&self, notice: &serde_json::Value) -> std::result::Result<(), String> {
        let message = syslog_message(notice, &self.hostname);
        let mut guard = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(
                Sender::connect(&self.transport)
                    .map_err(|e| format!("syslog {}: {e}", self.name))?,
            );
        }
        let sent = guard.as_mut().map(|s| s.send(&message));
        match sent {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                *guard = None;
                Err(format!("syslog {}: {e}", self.name))
            }
            None => Err("no connection".into()),
        }
    }
}

/// An email sink (SMTP; STARTTLS or TLS with the system's web roots, or
/// plain to this machine).
pub struct SmtpSink {
    name: String,
    from: lettre::message::Mailbox,
    to: Vec<lettre::message::Mailbox>,
    transport: lettre::SmtpTransport,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// The sink `config` names.
    pub fn new(config: &crate::rules::Smtp) -> Result<Self> {
        use lettre::transport::smtp::authentication::Credentials;
        let bad = |m: String| Error::Invalid(format!("smtp {}: {m}", config.name));
        let parse = |a: &str| {
            a.parse::<lettre::message::Mailbox>()
                .map_err(|e| bad(format!("{a:?}: {e}")))
        };
        let builder = match config.security.as_str() {
            "tls" => lettre::SmtpTransport::relay(&config.host).map_err(|e| bad(e.to_string()))?,
            "none" => lettre::SmtpTransport::builder_dangerous(&config.host).port(25),
            _ => lettre::SmtpTransport::starttls_relay(&config.host)
                .map_err(|e| bad(e.to_string()))?,
        };
        let mut builder = builder.timeout(Some(std::time::Duration::from_secs(10)));
        if let Some(port) = config.port {
            builder = builder.port(port);
        }
        if let (Some(user), Some(file)) = (&config.username, &config.password_file) {
            let pw = std::fs::read_to_string(file).map_err(|e| bad(format!("{file}: {e}")))?;
            builder =
                builder.credentials(Credentials::new(user.clone(), pw.trim_end().to_string()));
        }
        Ok(Self {
            name: config.name.clone(),
            from: parse(&config.from)?,
            to: config.to.iter().map(|t| parse(t)).collect::<Result<_>>()?,
            transport: builder.build(),
        })
    }
}

/// The subject and body of an alert's email (no PHI: what a notice holds).
pub fn email(notice: &serde_json::Value) -> (String, String) {
    let text = |k: &str| match &notice[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        v => v.to_string(),
    };
    let subject = format!(
        "[rxvault] {} alert: {} ({})",
        text("severity"),
        text("rule"),
        text("id")
    );
    let mut body = format!("{}\n\n", text("detail"));
    for k in [
        "id",
        "rule",
        "severity",
        "status",
        "principal",
        "host",
        "source",
        "findings",
        "patients",
        "first_index",
        "last_index",
        "delivery_id",
    ] {
        body.push_str(&format!("{k:<12} {}\n", text(k)));
    }
    body.push_str("\nrxvault alerts show ID  (or GET /api/v1/alerts/ID) has the rest.\n");
    (subject, body)
}

impl Sink for SmtpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&self, notice: &serde_json::Value) -> std::result::Result<(), String> {
        use lettre::Transport as _;
        let (subject, body) = email(notice);
        let mut m = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject);
        for to in &self.to {
            m = m.to(to.clone());
        }
        let message = m
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("smtp {}: {e}", self.name))?;
        self.transport
            .send(&message)
            .map(drop)
            .map_err(|e| format!("smtp {}: {e}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_reaches_a_udp_collector_as_rfc_5424() {
        let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        collector
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let sink = SyslogSink::new(
            &crate::rules::Syslog {
                name: "siem".into(),
                address: format!("udp://{}", collector.local_addr().unwrap()),
                ..Default::default()
            },
            "vault-1",
        )
        .unwrap();
        let notice = serde_json::json!({
            "id": "al-1", "rule": "honeytoken", "severity": "critical", "status": "open",
            "principal": "user:pat", "findings": 1, "patients": 1, "last_ms": 1796083200000i64,
            "detail": "a honeytoken patient in a read entry", "delivery_id": "al-1/1",
        });
        sink.deliver(&notice).unwrap();
        let mut buf = [0u8; 2048];
        let n = collector.recv(&mut buf).unwrap();
        let m = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(m.starts_with("<82>1 2026-12-01T00:00:00.000Z vault-1 rxvault - alert [alert@32473 id=\"al-1\" rule=\"honeytoken\""), "{m}");
        assert!(
            m.contains("principal=\"user:pat\"") && m.contains("deliveryid=\"al-1/1\""),
            "{m}"
        );
        assert!(
            m.ends_with("\u{FEFF}critical alert honeytoken: a honeytoken patient in a read entry"),
            "{m}"
        );
        assert_eq!(escape("a\"b]c\\"), "a\\\"b\\]c\\\\");
    }

    /// A real SMTP server process (Python's aiosmtpd, printing what it
    /// gets); skipped only outside CI when it is not installed.
    #[test]
    fn an_alert_reaches_a_real_smtp_server_and_waits_while_it_is_down() {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sink = SmtpSink::new(&crate::rules::Smtp {
            name: "it".into(),
            host: "127.0.0.1".into(),
            port: Some(port),
            security: "none".into(),
            from: "rxvault@pharmacy.example".into(),
            to: vec!["it@pharmacy.example".into()],
            ..Default::default()
        })
        .unwrap();
        let notice = serde_json::json!({
            "id": "al-7", "rule": "volume_hour", "severity": "high", "principal": "user:pat",
            "patients": 151, "detail": "151 distinct patients in one hour (floor 150)",
            "delivery_id": "al-7/1",
        });
        // Down: an error (the outbox retries), nothing else.
        assert!(sink.deliver(&notice).is_err());
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-c",
                "aiosmtpd.handlers.Debugging",
                "-l",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: no python3 ({e})");
                return;
            }
            Err(e) => panic!("python3: {e}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while sink.deliver(&notice).is_err() {
            if child.try_wait().unwrap().is_some() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "aiosmtpd did not start (pip install aiosmtpd)"
                );
                eprintln!("skipped: aiosmtpd is not installed");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the SMTP server never took it"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        for line in out.lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("END MESSAGE") {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            seen.contains("Subject: [rxvault] high alert: volume_hour (al-7)"),
            "{seen}"
        );
        assert!(seen.contains("151 distinct patients in one hour"), "{seen}");
        assert!(seen.contains("it@pharmacy.example"), "{seen}");
    }
}
