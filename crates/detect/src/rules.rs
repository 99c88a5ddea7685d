//! The rules, as data: a TOML file (`detect.toml` beside `rxvault.toml`)
//! over shipped defaults.
//!
//! Every rule has `enabled`, a `severity` and a `response`, plus its own
//! thresholds. A file names only what it changes; anything it does not name
//! keeps its default, and anything it names that does not exist is an
//! error naming the line (a typo must not silently disable a rule).
//! `data/rules.toml` documents every field and is the defaults exactly
//! (a test holds them equal); `rxvault detect rules` prints the effective
//! rules.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// How serious an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Someone should look today.
    Medium,
    /// Someone should look now.
    High,
    /// Data is leaving or a trap was sprung.
    Critical,
}

impl Severity {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What is done, at once, when a rule fires (each reversible by an
/// administrator, each audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    /// Nothing but the alert.
    Alert,
    /// The session that did it is ended.
    EndSession,
    /// The session must present its second factor again before it may do
    /// anything that needs step-up.
    StepUp,
    /// The account is disabled (every session ends; a service account's
    /// keys stop working).
    DisableAccount,
    /// Every session from the host is ended.
    BlockHost,
}

impl Response {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Response::Alert => "alert",
            Response::EndSession => "end-session",
            Response::StepUp => "step-up",
            Response::DisableAccount => "disable-account",
            Response::BlockHost => "block-host",
        }
    }
}

macro_rules! rule {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr),* $(,)? }
     severity = $sev:expr, response = $resp:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// Whether the rule runs.
            pub enabled: bool,
            /// The alert's severity.
            pub severity: Severity,
            /// What is done when it fires.
            pub response: Response,
            $($(#[$fdoc])* pub $field: $ty,)*
        }
        impl Default for $name {
            fn default() -> Self {
                Self { enabled: true, severity: $sev, response: $resp, $($field: $default,)* }
            }
        }
        impl RuleCommon for $name {
            fn common(&self) -> (bool, Severity, Response) { (self.enabled, self.severity, self.response) }
        }
    };
}

/// What every rule has.
pub trait RuleCommon {
    /// `(enabled, severity, response)`.
    fn common(&self) -> (bool, Severity, Response);
}

rule! {
    /// A honeytoken patient read, found by a search or put in an export.
    Honeytoken {}
    severity = Severity::Critical, response = Response::DisableAccount
}

rule! {
    /// Distinct patients per principal in a window, against the
    /// principal's own baseline (robust z-score: median and MAD of its
    /// earlier windows) and an absolute floor.
    Volume {
        /// The window, in hours (1: hourly; 24: daily; 168: seven days).
        window_hours: u32 = 1,
        /// Alert above this many distinct patients whatever the baseline
        /// (a new or quiet account is covered by it).
        floor: u32 = 150,
        /// Alert when the count's robust z-score against the principal's
        /// baseline exceeds this, and the count is at least `min_count`.
        z: f64 = 8.0,
        /// The smallest count the z-score may alert on.
        min_count: u32 = 40,
        /// How many earlier windows make a baseline (fewer: the floor only).
        min_history: u32 = 24,
        /// Floors of their own for named principals (`"service:billing-recon"
        /// = 10000`: a batch account whose job is to read many).
        floors: std::collections::BTreeMap<String, u32> = Default::default(),
    }
    severity = Severity::High, response = Response::DisableAccount
}

rule! {
    /// Patients read whom nothing explains: no prescription, fill,
    /// shipment or plan work in the look-back, no write by anyone within
    /// `grace_minutes` after the read, no write of the reader's own.
    Unexplained {
        /// Days a prescription, fill or plan change explains a read for.
        lookback_days: u32 = 30,
        /// A read explained by a write of the same patient that follows
        /// within this many minutes (a new prescription typed in at the
        /// counter).
        grace_minutes: u32 = 30,
        /// Alert when a principal has this many unexplained patients in one
        /// day.
        per_day: u32 = 6,
    }
    severity = Severity::Medium, response = Response::Alert
}

rule! {
    /// PHI used outside opening hours (corroborating: alerts only with
    /// another signal on the same session).
    OffHours {
        /// Minutes before opening and after closing that are not off-hours.
        grace_minutes: u32 = 90,
        /// Alert alone, without another signal.
        alone: bool = false,
    }
    severity = Severity::Medium, response = Response::StepUp
}

rule! {
    /// A user's first use of a device (host) or address (corroborating).
    FirstSeen {
        /// Alert alone, without another signal.
        alone: bool = false,
        /// How many devices and addresses are remembered per user.
        remember: u32 = 32,
    }
    severity = Severity::Medium, response = Response::StepUp
}

rule! {
    /// Failed passwords or second-factor codes for one account.
    CredentialBurst {
        /// Failures that alert.
        failures: u32 = 8,
        /// Within this many minutes.
        minutes: u32 = 10,
    }
    severity = Severity::High, response = Response::Alert
}

rule! {
    /// Failed sign-ins across many accounts (password spraying), per source
    /// address and overall.
    PasswordSpray {
        /// Distinct accounts failing from one address that alert.
        accounts_per_source: u32 = 5,
        /// Distinct accounts failing overall that alert.
        accounts_overall: u32 = 12,
        /// Within this many minutes.
        minutes: u32 = 30,
    }
    severity = Severity::High, response = Response::Alert
}

rule! {
    /// Any export in plaintext.
    PlaintextExport {}
    severity = Severity::High, response = Response::Alert
}

rule! {
    /// An export of many patients.
    LargeExport {
        /// Patients in one export that alert.
        patients: u32 = 500,
    }
    severity = Severity::High, response = Response::Alert
}

rule! {
    /// Emergency access used.
    BreakGlass {}
    severity = Severity::Medium, response = Response::Alert
}

rule! {
    /// The audit log failed verification.
    AuditFailure {}
    severity = Severity::Critical, response = Response::Alert
}

rule! {
    /// An alert reported by a workstation agent or the network monitor, or
    /// a backup that failed or is overdue (audited `alert` and failed
    /// `backup` entries).
    Reported {}
    severity = Severity::Critical, response = Response::BlockHost
}

/// Opening hours in the pharmacy's time zone: `"08:00-20:00"` or
/// `"closed"` per weekday.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hours {
    /// Monday.
    pub mon: String,
    /// Tuesday.
    pub tue: String,
    /// Wednesday.
    pub wed: String,
    /// Thursday.
    pub thu: String,
    /// Friday.
    pub fri: String,
    /// Saturday.
    pub sat: String,
    /// Sunday.
    pub sun: String,
}

impl Default for Hours {
    fn default() -> Self {
        let day = || "08:00-20:00".to_string();
        Self {
            mon: day(),
            tue: day(),
            wed: day(),
            thu: day(),
            fri: day(),
            sat: "09:00-17:00".into(),
            sun: "closed".into(),
        }
    }
}

impl Hours {
    /// Minutes since midnight `[open, close)` per weekday, Monday first;
    /// `None` closed.
    pub fn spans(&self) -> Result<[Option<(u32, u32)>; 7], String> {
        let days = [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ];
        let mut out = [None; 7];
        for (i, (name, text)) in days.into_iter().enumerate() {
            out[i] = parse_span(text).map_err(|e| {
                format!("hours.{name} = {text:?}: {e} (like \"08:00-20:00\" or \"closed\")")
            })?;
        }
        Ok(out)
    }
}

fn parse_span(text: &str) -> Result<Option<(u32, u32)>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("closed") {
        return Ok(None);
    }
    let (a, b) = t.split_once('-').ok_or("no '-'")?;
    let (open, close) = (parse_hm(a)?, parse_hm(b)?);
    if close <= open {
        return Err("closes before it opens".into());
    }
    Ok(Some((open, close)))
}

fn parse_hm(s: &str) -> Result<u32, String> {
    let (h, m) = s.trim().split_once(':').ok_or("a time is HH:MM")?;
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| "bad hour")?,
        m.parse().map_err(|_| "bad minute")?,
    );
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err("no such time".into());
    }
    Ok(h * 60 + m)
}

/// Every rule, with the pharmacy's hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Opening hours, in the vault's time zone (`rxvault.toml`).
    pub hours: Hours,
    /// Honeytoken patients.
    pub honeytoken: Honeytoken,
    /// Distinct patients per hour.
    pub volume_hour: Volume,
    /// Distinct patients per day.
    pub volume_day: Volume,
    /// Distinct patients over seven days (low-and-slow).
    pub volume_week: Volume,
    /// Unexplained access.
    pub unexplained: Unexplained,
    /// Off-hours use.
    pub off_hours: OffHours,
    /// First-seen device or address.
    pub first_seen: FirstSeen,
    /// Credential bursts per account.
    pub credential_burst: CredentialBurst,
    /// Password spraying.
    pub password_spray: PasswordSpray,
    /// Plaintext exports.
    pub plaintext_export: PlaintextExport,
    /// Large exports.
    pub large_export: LargeExport,
    /// Break-glass use.
    pub break_glass: BreakGlass,
    /// Audit verification failures.
    pub audit_failure: AuditFailure,
    /// Agent, network-monitor and backup reports.
    pub reported: Reported,
    /// Where alerts are sent.
    pub sinks: Sinks,
}

/// Where alerts are sent (besides `rxvault alerts` and `/api/v1/alerts`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sinks {
    /// Webhooks: JSON POSTs signed with HMAC-SHA256.
    pub webhook: Vec<Webhook>,
    /// Syslog collectors: RFC 5424 messages.
    pub syslog: Vec<Syslog>,
    /// Email, by SMTP.
    pub smtp: Vec<Smtp>,
}

/// An email sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Smtp {
    /// Its name (deliveries are owed under it).
    pub name: String,
    /// The mail server.
    pub host: String,
    /// Its port (default 587 with STARTTLS, 465 with TLS, 25 without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `starttls` (default), `tls`, or `none` (only to this machine).
    pub security: String,
    /// The sender.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The account to sign in with, if the server wants one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

/// A syslog sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Syslog {
    /// Its name (deliveries are owed under it).
    pub name: String,
    /// `udp://HOST:PORT`, `tcp://HOST:PORT` or `tls://HOST:PORT`.
    pub address: String,
    /// For TLS: the CA certificate (PEM) the collector's is checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// For TLS: the name the collector's certificate carries (default: the
    /// address's host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// A webhook sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Webhook {
    /// Its name (deliveries are owed under it: renaming starts afresh).
    pub name: String,
    /// The URL (`https://`, or `http://` to this machine).
    pub url: String,
    /// A file holding the shared secret the body is signed with
    /// (`X-Rxvault-Signature: sha256=<hex HMAC>`); required.
    pub secret_file: String,
    /// The CA certificate (PEM) to verify an `https://` receiver against
    /// (default: the system's trusted roots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            hours: Hours::default(),
            honeytoken: Honeytoken::default(),
            volume_hour: Volume::default(),
            volume_day: Volume {
                window_hours: 24,
                floor: 600,
                min_count: 150,
                min_history: 7,
                ..Volume::default()
            },
            volume_week: Volume {
                window_hours: 168,
                floor: 900,
                min_count: 300,
                min_history: 3,
                severity: Severity::High,
                ..Volume::default()
            },
            unexplained: Unexplained::default(),
            off_hours: OffHours::default(),
            first_seen: FirstSeen::default(),
            credential_burst: CredentialBurst::default(),
            password_spray: PasswordSpray::default(),
            plaintext_export: PlaintextExport::default(),
            large_export: LargeExport::default(),
            break_glass: BreakGlass::default(),
            audit_failure: AuditFailure::default(),
            reported: Reported::default(),
            sinks: Sinks::default(),
        }
    }
}

/// A rules file that does not parse or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Unreadable.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or not these rules (the message names line and column).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What and where.
        message: String,
    },
}

/// The documented defaults, as shipped.
pub const DEFAULTS_TOML: &str = include_str!("../data/rules.toml");

impl Rules {
    /// Parses a rules file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Rules, RulesError> {
        let rules: Rules = toml::from_str(text).map_err(|e| RulesError::Invalid {
            path: path.into(),
            message: describe(text, &e),
        })?;
        rules.check().map_err(|message| RulesError::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(rules)
    }

    /// The rules of `path`, or the defaults when it does not exist.
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Rules::default()),
            Err(source) => Err(RulesError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The effective rules as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the rules: {e}\n"))
    }

    /// Values that parse but make no sense.
    fn check(&self) -> Result<(), String> {
        self.hours.spans()?;
        for (name, v) in [
            ("volume_hour", &self.volume_hour),
            ("volume_day", &self.volume_day),
            ("volume_week", &self.volume_week),
        ] {
            if !(1..=24 * 28).contains(&v.window_hours) {
                return Err(format!("{name}.window_hours must be 1 to 672"));
            }
            if v.floor == 0 || v.z.is_nan() || v.z <= 0.0 {
                return Err(format!("{name}: floor and z must be positive"));
            }
        }
        for w in &self.sinks.webhook {
            if w.name.is_empty() || w.url.is_empty() || w.secret_file.is_empty() {
                return Err("every [[sinks.webhook]] needs name, url and secret_file".into());
            }
            let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| w.url.starts_with(p));
            if !w.url.starts_with("https://") && !local {
                return Err(format!(
                    "webhook {}: the URL must be https:// (http:// only to this machine)",
                    w.name
                ));
            }
        }
        for s in &self.sinks.syslog {
            if s.name.is_empty() {
                return Err("every [[sinks.syslog]] needs a name".into());
            }
            let scheme = s.address.split_once("://").map(|(a, _)| a);
            if !matches!(scheme, Some("udp" | "tcp" | "tls")) {
                return Err(format!(
                    "syslog {}: the address is udp://, tcp:// or tls://HOST:PORT",
                    s.name
                ));
            }
            if scheme == Some("tls") && s.ca_file.is_none() {
                return Err(format!("syslog {}: tls:// needs ca_file", s.name));
            }
        }
        for m in &self.sinks.smtp {
            if m.name.is_empty() || m.host.is_empty() || m.from.is_empty() || m.to.is_empty() {
                return Err("every [[sinks.smtp]] needs name, host, from and to".into());
            }
            let local = ["127.0.0.1", "localhost", "::1"].contains(&m.host.as_str());
            match m.security.as_str() {
                "" | "starttls" | "tls" => {}
                "none" if local => {}
                "none" => {
                    return Err(format!(
                        "smtp {}: security = \"none\" only to this machine",
                        m.name
                    ));
                }
                other => return Err(format!("smtp {}: security {other:?}", m.name)),
            }
        }
        if self.unexplained.per_day == 0 || self.credential_burst.failures == 0 {
            return Err("thresholds must be positive".into());
        }
        Ok(())
    }
}

/// toml's message with the line quoted, 1-based.
fn describe(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let quoted = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line} ({quoted:?}): {}", e.message())
        }
        None => e.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_is_the_defaults() {
        assert_eq!(
            Rules::parse(DEFAULTS_TOML, "rules.toml").unwrap(),
            Rules::default()
        );
    }

    #[test]
    fn the_printed_rules_read_back() {
        let printed = Rules::default().to_toml();
        assert_eq!(Rules::parse(&printed, "x").unwrap(), Rules::default());
    }

    #[test]
    fn a_file_changes_only_what_it_names() {
        let r = Rules::parse("[volume_hour]\nfloor = 90\n", "x").unwrap();
        assert_eq!(r.volume_hour.floor, 90);
        assert_eq!(r.volume_hour.z, Rules::default().volume_hour.z);
        assert_eq!(r.volume_day, Rules::default().volume_day);
    }

    #[test]
    fn a_typo_is_an_error_naming_its_line() {
        let e = Rules::parse("[volume_hour]\nfloor = 90\nflor = 3\n", "detect.toml").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("detect.toml") && m.contains("line 3"), "{m}");
        let e = Rules::parse("[honeytoken]\nresponse = \"shrug\"\n", "d").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = Rules::parse("[hours]\nmon = \"20:00-08:00\"\n", "d").unwrap_err();
        assert!(e.to_string().contains("hours.mon"), "{e}");
    }
}
