//! Syslog for SIEMs: RFC 5424 messages with structured data, over UDP
//! (RFC 5426), TCP with octet counting (RFC 6587 §3.4.1) or TLS (RFC 5425,
//! the same framing inside TLS; rustls with the `ring` provider, chosen
//! explicitly so no process-wide default provider is needed).
//!
//! ```text
//! <86>1 2026-11-28T14:03:07.123Z vault-1 rxvault - read [audit@32473 index="7"
//!   actorKind="user" actor="alice" session="s-1" ip="10.0.0.7" outcome="success"
//!   categories="demographics" patients="1" patient="9f3c..."] \u{FEFF}user alice: read (success)
//! ```
//!
//! Severity follows the outcome and the action: informational for
//! successes, notice for an approved access request, warning for denials,
//! lockouts, break-glass and anything done under it (`breakGlass` names
//! the grant) and single-operator mode switched on, error for
//! failures, critical for alerts. Values are escaped per RFC 5424 §6.3.3
//! and free text is cut at 1,024 characters, so a message always fits a
//! UDP datagram when at most `max_patients` patients are listed.

use crate::entry::{Action, ExportProtection, LoggedEntry, Outcome};
use crate::{Error, Result, io_err, rfc3339_ms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;

/// How messages are formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// HOSTNAME (printable ASCII; `-` when unknown).
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// The facility (default 10, authpriv: security/authorization).
    pub facility: u8,
    /// The private enterprise number of the SD-ID (`audit@<number>`; the
    /// default 32473 is the one RFC 5612 reserves for documentation).
    pub enterprise: u32,
    /// At most this many patient record keys per message (the count is
    /// always given).
    pub max_patients: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            hostname: "-".into(),
            app_name: "rxvault".into(),
            facility: 10,
            enterprise: 32473,
            max_patients: 50,
        }
    }
}

/// The message's severity (RFC 5424 §6.2.1).
pub fn severity(e: &LoggedEntry) -> u8 {
    match (&e.entry.action, e.entry.outcome) {
        (Action::Alert { .. }, _) => 2,
        (_, Outcome::Error) => 3,
        (_, Outcome::Denied) | (Action::Lockout { .. } | Action::BreakGlass { .. }, _) => 4,
        // PHI about to leave in the clear.
        (
            Action::ExportStarted {
                protection: ExportProtection::Plaintext,
                ..
            },
            _,
        ) => 4,
        (Action::AuthFailure { .. } | Action::MfaFailure { .. }, _) => 4,
        // Two-person control switched off for the local operator.
        (Action::SingleOperatorSet { enabled: true }, _) => 4,
        _ if e.entry.break_glass.is_some() => 4,
        // Access to charts granted (after a second person's approval).
        (Action::AccessApproved { .. }, _) => 5,
        _ => 6,
    }
}

const MAX_TEXT: usize = 1024;

fn ascii_field(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars().take(MAX_TEXT) {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// The structured parameters of a KEK rotation step.
fn rotation_params(r: &crate::entry::KeyRotation) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("step", r.step.name().to_string()),
        ("fromKek", r.from.to_string()),
        ("toKek", r.to.to_string()),
        ("reencrypt", r.reencrypt.to_string()),
    ];
    if let Some(phase) = &r.phase {
        p.push(("phase", phase.clone()));
    }
    if let Some(n) = r.rewrapped {
        p.push(("rewrapped", n.to_string()));
    }
    if let Some(n) = r.resealed {
        p.push(("resealed", n.to_string()));
    }
    if let Some(reason) = &r.reason {
        p.push(("reason", reason.clone()));
    }
    p
}

/// The RFC 5424 message of an entry (without framing).
pub fn format(e: &LoggedEntry, config: &SyslogConfig) -> String {
    let x = &e.entry;
    let pri = u16::from(config.facility) * 8 + u16::from(severity(e));
    let mut params: Vec<(&str, String)> = vec![
        ("index", e.index.to_string()),
        ("actorKind", x.actor.kind.name().into()),
        ("actor", x.actor.id.clone()),
    ];
    if let Some(s) = &x.session {
        params.push(("session", s.clone()));
    }
    if let Some(ip) = x.source {
        params.push(("ip", ip.to_string()));
    }
    if let Some(h) = &x.host {
        params.push(("host", h.clone()));
    }
    if let Some(ua) = &x.user_agent {
        params.push(("userAgent", ua.clone()));
    }
    params.push(("outcome", x.outcome.name().into()));
    if let Some(grant) = &x.break_glass {
        params.push(("breakGlass", grant.clone()));
    }
    match &x.action {
        Action::Read { kind, categories } => {
            if let Some(k) = kind {
                params.push(("recordType", k.fhir_type().into()));
            }
            let names: Vec<&str> = categories.iter().map(|c| c.name()).collect();
            params.push(("categories", names.join(",")));
        }
        Action::Search {
            query,
            results,
            kind,
            categories,
        } => {
            params.push(("query", query.clone()));
            params.push(("results", results.to_string()));
            if let Some(k) = kind {
                params.push(("recordType", k.fhir_type().into()));
            }
            if let Some(c) = categories {
                let names: Vec<&str> = c.iter().map(|c| c.name()).collect();
                params.push(("categories", names.join(",")));
            }
        }
        Action::Write {
            kind,
            operation,
            records,
        } => {
            if let Some(k) = kind {
                params.push(("recordType", k.fhir_type().into()));
            }
            params.push((
                "operation",
                serde_json::to_value(operation)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ));
            params.push(("records", records.to_string()));
        }
        Action::Export {
            export_id,
            file,
            records,
            patients,
        } => {
            params.push(("exportId", export_id.clone()));
            params.push(("file", file.clone()));
            params.push(("records", records.to_string()));
            params.push(("exportPatients", patients.to_string()));
        }
        Action::ExportStarted {
            export_id,
            format,
            destination,
            protection,
            categories,
            records,
        } => {
            params.push(("exportId", export_id.clone()));
            params.push(("format", format.name().into()));
            params.push(("file", destination.clone()));
            match protection {
                ExportProtection::Plaintext => params.push(("protection", "plaintext".into())),
                ExportProtection::Age { recipients } => {
                    params.push(("protection", "age".into()));
                    params.push(("recipients", recipients.join(",")));
                }
            }
            let held: Vec<String> = categories
                .iter()
                .map(|(k, c)| {
                    let names: Vec<&str> = c.iter().map(|c| c.name()).collect();
                    format!("{}:{}", k.fhir_type(), names.join(","))
                })
                .collect();
            params.push(("categories", held.join(";")));
            params.push(("records", records.to_string()));
        }
        Action::ExportFinished {
            export_id,
            records,
            patients,
            files,
        } => {
            params.push(("exportId", export_id.clone()));
            params.push(("records", records.to_string()));
            params.push(("exportPatients", patients.to_string()));
            params.push(("files", files.join(",")));
        }
        Action::ExportFailed { export_id, reason } => {
            params.push(("exportId", export_id.clone()));
            params.push(("reason", reason.clone()));
        }
        Action::BreakGlass { reason } => params.push(("reason", reason.clone())),
        Action::AuthSuccess { method } | Action::MfaSuccess { method } => {
            params.push(("method", method.clone()));
        }
        Action::MfaFailure { method, reason } => {
            params.push(("method", method.clone()));
            if let Some(r) = reason {
                params.push(("reason", r.clone()));
            }
        }
        Action::AuthFailure { method, reason } => {
            params.push(("method", method.clone()));
            params.push(("reason", reason.clone()));
        }
        Action::Lockout { until_ms } => {
            if let Some(u) = until_ms {
                params.push(("until", rfc3339_ms(*u)));
            }
        }
        Action::UserAdmin { operation, target } => {
            params.push(("operation", operation.clone()));
            params.push(("target", target.clone()));
        }
        Action::RoleAdmin {
            operation,
            role,
            target,
        } => {
            params.push(("operation", operation.clone()));
            params.push(("role", role.clone()));
            if let Some(t) = target {
                params.push(("target", t.clone()));
            }
        }
        Action::KeyAdmin {
            operation,
            rotation,
        } => {
            params.push(("operation", operation.clone()));
            if let Some(r) = rotation {
                params.extend(rotation_params(r));
            }
        }
        Action::Backup {
            operation,
            backup_id,
        } => {
            params.push(("operation", operation.clone()));
            if let Some(b) = backup_id {
                params.push(("backupId", b.clone()));
            }
        }
        Action::Alert { kind, detail } => {
            params.push(("alert", kind.clone()));
            params.push(("detail", detail.clone()));
        }
        Action::AccessDenied { action } => params.push(("action", action.clone())),
        Action::AuditLogUsed { purpose } => params.push(("purpose", purpose.clone())),
        Action::BreakGlassReviewed { grant } => params.push(("grant", grant.clone())),
        Action::Other(text) => params.push(("detail", text.clone())),
        Action::AccessRequested {
            request,
            target,
            grant,
        } => {
            params.push(("request", request.clone()));
            params.push(("target", target.clone()));
            params.push(("grant", grant.describe()));
        }
        Action::AccessApproved {
            request,
            target,
            grant,
            requested_by,
            basis,
        } => {
            params.push(("request", request.clone()));
            params.extend(target.clone().map(|t| ("target", t)));
            params.extend(grant.as_ref().map(|g| ("grant", g.describe())));
            params.extend(requested_by.clone().map(|r| ("requestedBy", r)));
            params.extend(basis.map(|b| ("basis", b.name().to_string())));
        }
        Action::AccessRefused {
            request,
            target,
            grant,
            requested_by,
        } => {
            params.push(("request", request.clone()));
            params.extend(target.clone().map(|t| ("target", t)));
            params.extend(grant.as_ref().map(|g| ("grant", g.describe())));
            params.extend(requested_by.clone().map(|r| ("requestedBy", r)));
        }
        Action::EnrolmentCodeIssued { target, expires_ms } => {
            params.push(("target", target.clone()));
            params.push(("expires", rfc3339_ms(*expires_ms)));
        }
        Action::EnrolmentCodeRedeemed { target } => params.push(("target", target.clone())),
        Action::SingleOperatorSet { enabled } => {
            params.push(("singleOperator", enabled.to_string()));
        }
        Action::Incident {
            incident,
            operation,
        } => {
            params.push(("incident", incident.clone()));
            params.push(("operation", operation.clone()));
        }
        Action::Logout => {}
    }
    params.push(("patients", x.patients.len().to_string()));
    for p in x.patients.iter().take(config.max_patients) {
        params.push(("patient", p.to_string()));
    }
    if !x.resources.is_empty() {
        params.push(("resources", x.resources.len().to_string()));
    }

    let mut msg = format!(
        "<{pri}>1 {} {} {} - {} [audit@{}",
        rfc3339_ms(e.time_ms),
        ascii_field(&config.hostname, 255),
        ascii_field(&config.app_name, 48),
        ascii_field(x.action.kind().name(), 32),
        config.enterprise
    );
    for (name, value) in &params {
        let _ = write!(msg, " {name}=\"{}\"", escape(value));
    }
    let _ = write!(
        msg,
        "] \u{FEFF}{} {}: {} ({})",
        x.actor.kind.name(),
        escape(&x.actor.id),
        x.action.kind().name(),
        x.outcome.name()
    );
    msg
}

/// Where to send.
#[derive(Debug, Clone)]
pub enum Transport {
    /// One datagram per message (RFC 5426).
    Udp(SocketAddr),
    /// TCP, octet-counted (RFC 6587).
    Tcp(SocketAddr),
    /// TLS, octet-counted (RFC 5425).
    Tls {
        /// The collector.
        addr: SocketAddr,
        /// The name its certificate must carry.
        server_name: String,
        /// The certificate authorities trusted for it.
        roots: Vec<CertificateDer<'static>>,
    },
}

/// Reads PEM certificates (a CA bundle) from a file.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).map_err(io_err(path.display().to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

enum Conn {
    Udp(UdpSocket, SocketAddr),
    Tcp(BufWriter<TcpStream>),
    Tls(Box<BufWriter<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>>),
}

/// A connection to a syslog collector.
pub struct Sender {
    conn: Conn,
    sent: u64,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("syslog::Sender")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The TLS client configuration: the `ring` provider, named explicitly.
fn tls_config(roots: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for c in roots {
        store
            .add(c.clone())
            .map_err(|e| Error::Tls(format!("a CA certificate: {e}")))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?
    .with_root_certificates(store)
    .with_no_client_auth())
}

impl Sender {
    /// Connects (for TLS, including the handshake).
    pub fn connect(transport: &Transport) -> Result<Self> {
        let conn = match transport {
            Transport::Udp(addr) => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("address")
                } else {
                    "[::]:0".parse().expect("address")
                };
                let s = UdpSocket::bind(bind).map_err(io_err("binding a UDP socket"))?;
                Conn::Udp(s, *addr)
            }
            Transport::Tcp(addr) => Conn::Tcp(BufWriter::new(
                TcpStream::connect(addr).map_err(io_err(format!("connecting to {addr}")))?,
            )),
            Transport::Tls {
                addr,
                server_name,
                roots,
            } => {
                let name = ServerName::try_from(server_name.clone())
                    .map_err(|e| Error::Tls(format!("server name: {e}")))?;
                let conn = rustls::ClientConnection::new(Arc::new(tls_config(roots)?), name)
                    .map_err(|e| Error::Tls(e.to_string()))?;
                let sock =
                    TcpStream::connect(addr).map_err(io_err(format!("connecting to {addr}")))?;
                let mut stream = rustls::StreamOwned::new(conn, sock);
                // Handshake now, so a bad certificate fails here and not on
                // the first message.
                while stream.conn.is_handshaking() {
                    stream
                        .conn
                        .complete_io(&mut stream.sock)
                        .map_err(|e| Error::Tls(format!("handshake with {addr}: {e}")))?;
                }
                Conn::Tls(Box::new(BufWriter::new(stream)))
            }
        };
        Ok(Self { conn, sent: 0 })
    }

    /// Sends one message.
    pub fn send(&mut self, message: &str) -> Result<()> {
        match &mut self.conn {
            Conn::Udp(s, addr) => {
                s.send_to(message.as_bytes(), *addr)
                    .map_err(io_err(format!("sending to {addr}")))?;
            }
            Conn::Tcp(w) => framed(w, message).map_err(io_err("sending syslog over TCP"))?,
            Conn::Tls(w) => {
                framed(w.as_mut(), message).map_err(io_err("sending syslog over TLS"))?
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// Sends an entry.
    pub fn send_entry(&mut self, e: &LoggedEntry, config: &SyslogConfig) -> Result<()> {
        self.send(&format(e, config))
    }

    /// How many messages were sent.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Flushes and closes (TLS: with close_notify).
    pub fn finish(self) -> Result<()> {
        match self.conn {
            Conn::Udp(..) => Ok(()),
            Conn::Tcp(mut w) => w.flush().map_err(io_err("flushing syslog over TCP")),
            Conn::Tls(w) => {
                let mut stream = w
                    .into_inner()
                    .map_err(|e| Error::Tls(format!("flushing: {}", e.error())))?;
                stream.conn.send_close_notify();
                stream.flush().map_err(io_err("flushing syslog over TLS"))?;
                while stream.conn.wants_write() {
                    stream
                        .conn
                        .write_tls(&mut stream.sock)
                        .map_err(io_err("closing syslog over TLS"))?;
                }
                // Read what the collector still sends (session tickets, its
                // close_notify) before closing: closing a socket with unread
                // data resets the connection, and the collector could lose
                // the last messages.
                let _ = stream.sock.shutdown(std::net::Shutdown::Write);
                let _ = stream
                    .sock
                    .set_read_timeout(Some(std::time::Duration::from_secs(5)));
                while let Ok(n) = stream.conn.read_tls(&mut stream.sock) {
                    if n == 0 || stream.conn.process_new_packets().is_err() {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Octet-counting framing: `LEN SP MSG`.
fn framed(w: &mut dyn Write, message: &str) -> std::io::Result<()> {
    write!(w, "{} ", message.len())?;
    w.write_all(message.as_bytes())
}
