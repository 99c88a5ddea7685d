//! What an audit entry says, and its stored byte format.
//!
//! # The model
//! An [`Entry`] is what a caller logs: an [`Actor`], an optional session,
//! source address and host, an [`Action`] (with its details: field
//! categories read, the kind of search, export id and file, break-glass
//! reason, ...), the patients and other records concerned (as record keys,
//! [`Rid`]s, which are already opaque keyed hashes) and an [`Outcome`]. The
//! log adds the time (from its [`Clock`](rxvault_model::Clock)) and the
//! index: a [`LoggedEntry`].
//!
//! # The stored form
//! A [`StoredEntry`] is a clear **header** and a **sealed body**:
//!
//! ```text
//! u8   format (1)            u64 index          i64 time (Unix ms)
//! u16  action code           u8 outcome         u8 actor kind
//! u8   flags: which tokens follow (1 actor, 2 session, 4 host, 8 address,
//!      16 export id)
//! 16×  tokens, in that order (keyed hashes: Secrets::keyed_hash)
//! u32  patient count, 16× each     u32 resource count, 16× each
//! u32  body length, body: Secrets::seal_blob("audit", index as u64 BE,
//!      SHA-256(header bytes) ‖ JSON{actor id, session, address, host,
//!      user agent, action details})
//! ```
//!
//! All integers are big-endian; decoding is strict (every byte accounted
//! for, flags and codes known), so one byte string has one meaning. The
//! Merkle leaf hashes these bytes, so **verifying the tree needs no key**.
//! With the key, opening a body also proves the header it was written with
//! (the digest) and the position it was written at (the index in the
//! associated data): an edited header or a moved entry is pinned to its
//! exact index.
//!
//! Identifiers (actor id, session, address, host, export id, and free text
//! such as break-glass reasons, admin targets and file names) exist only in
//! the sealed body; the header carries their keyed hashes, for lookups.
//! The export-id token (flag 16) came after the others: entries written
//! before it simply do not set the flag, and decode as they always did.
//! Likewise the user agent (body field `u`, no token: nothing looks it up)
//! and the optional details added to existing actions since
//! ([`Action::MfaFailure`]'s reason, [`Action::KeyAdmin`]'s rotation) are
//! left out when absent, so bodies written before them read unchanged.
//!
//! # Exports
//! An export is recorded before its first byte is written
//! ([`Action::ExportStarted`]: format, plaintext or the age recipients,
//! the field categories of each record kind it will hold, and, as the
//! entry's patients, every patient it will hold), then again when it ends
//! ([`Action::ExportFinished`] or [`Action::ExportFailed`]). All three carry
//! the export id, so "what was in export X" is one indexed lookup
//! ([`AuditReader::export_scope`](crate::AuditReader::export_scope)). A
//! process killed in between leaves a started entry and no end: the
//! started entry is what must be assumed taken.

use crate::{Error, Result};
use rxvault_crypto::{Secrets, sha256};
use rxvault_model::{CategorySet, FieldCategory, RecordKind, Rid};
use rxvault_store::audit::AuditKey;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// The byte format version this build writes and reads.
pub const FORMAT: u8 = 1;

/// The token flags a header may set (actor, session, host, address, export
/// id).
const TOKEN_FLAGS: u8 = 0x1f;

/// The `seal_blob` domain of entry bodies.
pub const SEAL_DOMAIN: &str = "audit";

/// Keyed-hash domains of the lookup tokens.
pub mod domain {
    /// Actor ids.
    pub const USER: &str = "audit-user";
    /// Session ids.
    pub const SESSION: &str = "audit-session";
    /// Host or agent ids.
    pub const HOST: &str = "audit-host";
    /// Source addresses.
    pub const IP: &str = "audit-ip";
    /// Export ids.
    pub const EXPORT: &str = "audit-export";
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person with an account.
    User,
    /// A service account (an integration, a scheduled job).
    Service,
    /// Someone at the machine (the command line).
    Local,
    /// rxvault itself (detection, housekeeping).
    System,
}

impl ActorKind {
    /// Every kind.
    pub const ALL: [ActorKind; 4] = [
        ActorKind::User,
        ActorKind::Service,
        ActorKind::Local,
        ActorKind::System,
    ];

    /// The stable code (part of the stored format).
    pub fn code(self) -> u8 {
        match self {
            ActorKind::User => 1,
            ActorKind::Service => 2,
            ActorKind::Local => 3,
            ActorKind::System => 4,
        }
    }

    /// The kind with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// A short name (`user`, `service`, `local`, `system`).
    pub fn name(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Service => "service",
            ActorKind::Local => "local",
            ActorKind::System => "system",
        }
    }
}

/// The actor: a kind and an id (a user name, a service account, an OS user).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// What kind of actor.
    pub kind: ActorKind,
    /// Its id (sealed at rest; looked up by keyed hash).
    pub id: String,
}

impl Actor {
    /// A user.
    pub fn user(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::User,
            id: id.into(),
        }
    }

    /// A service account.
    pub fn service(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Service,
            id: id.into(),
        }
    }

    /// A local (command-line) user.
    pub fn local(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Local,
            id: id.into(),
        }
    }

    /// rxvault itself.
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: "rxvault".into(),
        }
    }

    /// Someone at this machine's command line (holding the vault's key):
    /// the operating-system user (`USER`, `LOGNAME`, else `uid:<n>`).
    pub fn local_operator() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(uid)
            .unwrap_or_else(|| "unknown".into());
        Self::local(user)
    }
}

/// `uid:<n>` of this process (Linux), when no user name is in the
/// environment.
fn uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?;
    Some(format!("uid:{uid}"))
}

/// Where a crate beside the vault records what it does: the vault's audit
/// log (`rxvault-vault`'s `Vault` is one). `record` returns once the entry
/// is durable.
pub trait Sink: Send + Sync {
    /// Records `entry` durably, or says why it could not.
    fn record_entry(&self, entry: Entry) -> std::result::Result<(), String>;
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused (authorization, authentication, lockout).
    Denied,
    /// Failed.
    Error,
}

impl Outcome {
    /// The stable code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Denied => 1,
            Outcome::Error => 2,
        }
    }

    /// The outcome with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        [Outcome::Success, Outcome::Denied, Outcome::Error]
            .into_iter()
            .find(|o| o.code() == code)
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// A write's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOp {
    /// A new record.
    Create,
    /// A changed record.
    Update,
    /// A removed record.
    Delete,
}

/// What was done. Details live in the sealed body; only the
/// [`ActionKind`] code is in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "details", rename_all = "kebab-case")]
pub enum Action {
    /// A successful sign-in.
    AuthSuccess {
        /// How (`password`, `webauthn`, `client-certificate`, ...).
        method: String,
    },
    /// A failed sign-in.
    AuthFailure {
        /// How it was attempted.
        method: String,
        /// Why it failed (no secrets: `bad-password`, `unknown-user`, ...).
        reason: String,
    },
    /// A second factor accepted.
    MfaSuccess {
        /// Which (`totp`, `webauthn`, ...).
        method: String,
    },
    /// A second factor refused.
    MfaFailure {
        /// Which.
        method: String,
        /// Why (no secrets: `wrong-code`, `replayed-code`, `locked`, ...;
        /// `None` in entries written before second-factor failures
        /// recorded it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An account locked after failures.
    Lockout {
        /// Until when (Unix ms), if the lock expires.
        until_ms: Option<i64>,
    },
    /// A sign-out or session end.
    Logout,
    /// A read of PHI: which record kind and which field categories were
    /// decrypted (the patients are the entry's patients).
    Read {
        /// The kind of record read, if one kind.
        #[serde(with = "opt_kind")]
        kind: Option<RecordKind>,
        /// The field categories decrypted.
        #[serde(with = "categories")]
        categories: CategorySet,
    },
    /// A search: the kind of query (never its values); the patients whose
    /// records were returned are the entry's patients (none when nothing
    /// matched), the records returned its resources.
    Search {
        /// The kind of query (`family-birth-date`, `phone`, `member-id`, ...).
        query: String,
        /// How many results were returned.
        results: u64,
        /// The kind of record returned (`None` in entries written before
        /// searches recorded it: those were all patient searches).
        #[serde(default, with = "opt_kind", skip_serializing_if = "Option::is_none")]
        kind: Option<RecordKind>,
        /// The field categories decrypted of what was returned (`None` in
        /// entries written before searches recorded them).
        #[serde(
            default,
            with = "opt_categories",
            skip_serializing_if = "Option::is_none"
        )]
        categories: Option<CategorySet>,
    },
    /// A write of PHI.
    Write {
        /// The kind of record written, if one kind.
        #[serde(with = "opt_kind")]
        kind: Option<RecordKind>,
        /// Create, update or delete.
        operation: WriteOp,
        /// How many records.
        records: u64,
    },
    /// An export, recorded after it was written (entries written before
    /// [`ExportStarted`](Action::ExportStarted) existed; no longer
    /// written): the entry's patients are the patients in it.
    Export {
        /// The export id (in the export's manifest).
        export_id: String,
        /// The file or folder written.
        file: String,
        /// How many records.
        records: u64,
        /// How many patients.
        patients: u64,
    },
    /// An export about to write its first byte: the entry's patients are
    /// every patient it will hold (a superset of what a killed export left
    /// behind, equal to what a finished one holds).
    ExportStarted {
        /// The export id (in the export's manifest or rows).
        export_id: String,
        /// What is written.
        format: ExportFormat,
        /// The file or folder written.
        destination: String,
        /// Plaintext, or encrypted to which recipients.
        protection: ExportProtection,
        /// The field categories of each record kind the export will hold.
        categories: KindCategories,
        /// How many records (rows) it will hold.
        records: u64,
    },
    /// An export written completely (files synced and in place).
    ExportFinished {
        /// The export id.
        export_id: String,
        /// Records (rows) written.
        records: u64,
        /// Patients whose data was written.
        patients: u64,
        /// The files written (names relative to the destination folder, or
        /// the file).
        files: Vec<String>,
    },
    /// An export that failed after it started (outcome: error). What it
    /// wrote was removed where that was possible; its started entry says
    /// what it may have held.
    ExportFailed {
        /// The export id.
        export_id: String,
        /// Why (no PHI: an error message).
        reason: String,
    },
    /// Emergency access beyond the actor's role.
    BreakGlass {
        /// The reason given.
        reason: String,
    },
    /// A user account administered.
    UserAdmin {
        /// What (`create`, `disable`, `reset-mfa`, ...).
        operation: String,
        /// The account concerned.
        target: String,
    },
    /// A role or permission administered.
    RoleAdmin {
        /// What (`grant`, `revoke`, `define`, ...).
        operation: String,
        /// The role.
        role: String,
        /// The account concerned, if any.
        target: Option<String>,
    },
    /// Key administration (rotation, re-encryption, signing key).
    KeyAdmin {
        /// What (`rotate-kek`, ...).
        operation: String,
        /// A KEK rotation's step, versions and counts (`None` for other key
        /// administration, and in entries written before rotations were
        /// audited where they run: their operation said it in words).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rotation: Option<KeyRotation>,
    },
    /// A backup made, verified or restored.
    Backup {
        /// What (`create`, `verify`, `restore`).
        operation: String,
        /// The backup's id, if any.
        backup_id: Option<String>,
    },
    /// A security alert raised.
    Alert {
        /// The alert's kind.
        kind: String,
        /// What it says (no PHI).
        detail: String,
    },
    /// An action the permission table refused before anything was read
    /// (the attempted act by its permission name, e.g. `allergies.read`).
    AccessDenied {
        /// The permission-table action refused.
        action: String,
    },
    /// The audit log itself used (DICOM 110101 "Audit Log Used"): a query,
    /// an export of it, the break-glass review list.
    AuditLogUsed {
        /// What (`query`, `export`, `break-glass-review-list`, ...).
        purpose: String,
    },
    /// A break-glass grant marked reviewed by the privacy officer.
    BreakGlassReviewed {
        /// The grant.
        grant: String,
    },
    /// Anything else.
    Other(String),
    /// Access that needs a second person's approval was asked for (a role
    /// that reads charts or approves, an API key with a chart-reading
    /// scope): nothing is granted yet.
    AccessRequested {
        /// The request's id (what an approver approves).
        request: String,
        /// The account it is for.
        target: String,
        /// What it would grant.
        grant: AccessGrant,
    },
    /// An approval of an access request (outcome success: the access is
    /// granted; denied: the approver may not approve it, e.g. their own
    /// request or one for themselves, or it expired or was decided).
    AccessApproved {
        /// The request's id.
        request: String,
        /// The account it is for (`None`: no such request).
        target: Option<String>,
        /// What it grants.
        grant: Option<AccessGrant>,
        /// Who asked (`local` for the local operator).
        requested_by: Option<String>,
        /// On what ground it was approved (granted approvals only).
        basis: Option<ApprovalBasis>,
    },
    /// An access request refused by an approver (a refused API key is
    /// revoked); denied: the refusal was not allowed.
    AccessRefused {
        /// The request's id.
        request: String,
        /// The account it is for (`None`: no such request).
        target: Option<String>,
        /// What it would have granted.
        grant: Option<AccessGrant>,
        /// Who asked.
        requested_by: Option<String>,
    },
    /// A one-time enrolment code issued for a person (a new account, or one
    /// re-enrolling: its password, second factors and sessions are gone).
    EnrolmentCodeIssued {
        /// The account.
        target: String,
        /// When the code stops working (Unix ms).
        expires_ms: i64,
    },
    /// An enrolment code presented (success: the person set their own
    /// password; denied: a wrong, spent or expired code, a refused
    /// password, or throttled).
    EnrolmentCodeRedeemed {
        /// The account named.
        target: String,
    },
    /// Single-operator mode switched (the local operator may approve their
    /// own requests: a one-person pharmacy).
    SingleOperatorSet {
        /// On or off.
        enabled: bool,
    },
    /// A breach incident opened or changed (`rxvault breach`): what was
    /// done to it (`open`, `edit`, `scope`, `assess`, `outputs`). The
    /// patients of a scoping are the entry's patients.
    Incident {
        /// The incident's id.
        incident: String,
        /// What was done (`open`, `edit`, `scope`, `assess`, ...).
        operation: String,
    },
}

/// What an access request grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AccessGrant {
    /// A role for a person.
    Role {
        /// The role asked for.
        role: String,
        /// The role held when it was asked.
        previous: Option<String>,
    },
    /// That an API key with chart-reading scopes may be used.
    ApiKey {
        /// The key's public id.
        key: String,
        /// All its scopes.
        scopes: Vec<String>,
    },
}

impl AccessGrant {
    /// A short description (`role pharmacist`, `api-key K (patients.read)`).
    pub fn describe(&self) -> String {
        match self {
            AccessGrant::Role { role, .. } => format!("role {role}"),
            AccessGrant::ApiKey { key, scopes } => {
                format!("api-key {key} ({})", scopes.join(" "))
            }
        }
    }
}

/// On what ground an access request was approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalBasis {
    /// A second person: an administrator or the privacy officer who neither
    /// asked nor is the subject, or the local operator approving someone
    /// else's request.
    SecondPerson,
    /// The local operator approving their own request in single-operator
    /// mode.
    SingleOperator,
    /// The local operator making the vault's first administrator (no one
    /// could approve yet).
    FirstAdministrator,
}

impl ApprovalBasis {
    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            ApprovalBasis::SecondPerson => "second-person",
            ApprovalBasis::SingleOperator => "single-operator",
            ApprovalBasis::FirstAdministrator => "first-administrator",
        }
    }
}

/// The kind of an [`Action`], without details: what is in the clear and
/// indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionKind {
    /// [`Action::AuthSuccess`].
    AuthSuccess,
    /// [`Action::AuthFailure`].
    AuthFailure,
    /// [`Action::MfaSuccess`].
    MfaSuccess,
    /// [`Action::MfaFailure`].
    MfaFailure,
    /// [`Action::Lockout`].
    Lockout,
    /// [`Action::Logout`].
    Logout,
    /// [`Action::Read`].
    Read,
    /// [`Action::Search`].
    Search,
    /// [`Action::Write`].
    Write,
    /// [`Action::Export`].
    Export,
    /// [`Action::ExportStarted`].
    ExportStarted,
    /// [`Action::ExportFinished`].
    ExportFinished,
    /// [`Action::ExportFailed`].
    ExportFailed,
    /// [`Action::BreakGlass`].
    BreakGlass,
    /// [`Action::UserAdmin`].
    UserAdmin,
    /// [`Action::RoleAdmin`].
    RoleAdmin,
    /// [`Action::KeyAdmin`].
    KeyAdmin,
    /// [`Action::Backup`].
    Backup,
    /// [`Action::Alert`].
    Alert,
    /// [`Action::AccessDenied`].
    AccessDenied,
    /// [`Action::AuditLogUsed`].
    AuditLogUsed,
    /// [`Action::BreakGlassReviewed`].
    BreakGlassReviewed,
    /// [`Action::Other`].
    Other,
    /// [`Action::AccessRequested`].
    AccessRequested,
    /// [`Action::AccessApproved`].
    AccessApproved,
    /// [`Action::AccessRefused`].
    AccessRefused,
    /// [`Action::EnrolmentCodeIssued`].
    EnrolmentCodeIssued,
    /// [`Action::EnrolmentCodeRedeemed`].
    EnrolmentCodeRedeemed,
    /// [`Action::SingleOperatorSet`].
    SingleOperatorSet,
    /// [`Action::Incident`].
    Incident,
}

impl ActionKind {
    /// Every kind.
    pub const ALL: [ActionKind; 30] = [
        ActionKind::AuthSuccess,
        ActionKind::AuthFailure,
        ActionKind::MfaSuccess,
        ActionKind::MfaFailure,
        ActionKind::Lockout,
        ActionKind::Logout,
        ActionKind::Read,
        ActionKind::Search,
        ActionKind::Write,
        ActionKind::Export,
        ActionKind::ExportStarted,
        ActionKind::ExportFinished,
        ActionKind::ExportFailed,
        ActionKind::BreakGlass,
        ActionKind::UserAdmin,
        ActionKind::RoleAdmin,
        ActionKind::KeyAdmin,
        ActionKind::Backup,
        ActionKind::Alert,
        ActionKind::AccessDenied,
        ActionKind::AuditLogUsed,
        ActionKind::BreakGlassReviewed,
        ActionKind::Other,
        ActionKind::AccessRequested,
        ActionKind::AccessApproved,
        ActionKind::AccessRefused,
        ActionKind::EnrolmentCodeIssued,
        ActionKind::EnrolmentCodeRedeemed,
        ActionKind::SingleOperatorSet,
        ActionKind::Incident,
    ];

    /// The stable code (part of the stored format).
    pub fn code(self) -> u16 {
        match self {
            ActionKind::AuthSuccess => 1,
            ActionKind::AuthFailure => 2,
            ActionKind::MfaSuccess => 3,
            ActionKind::MfaFailure => 4,
            ActionKind::Lockout => 5,
            ActionKind::Logout => 6,
            ActionKind::Read => 10,
            ActionKind::Search => 11,
            ActionKind::Write => 12,
            ActionKind::Export => 13,
            ActionKind::BreakGlass => 14,
            ActionKind::ExportStarted => 15,
            ActionKind::ExportFinished => 16,
            ActionKind::ExportFailed => 17,
            ActionKind::UserAdmin => 20,
            ActionKind::RoleAdmin => 21,
            ActionKind::KeyAdmin => 22,
            ActionKind::Backup => 30,
            ActionKind::Alert => 31,
            ActionKind::AccessDenied => 18,
            ActionKind::AuditLogUsed => 40,
            ActionKind::BreakGlassReviewed => 41,
            ActionKind::Other => 99,
            ActionKind::AccessRequested => 60,
            ActionKind::AccessApproved => 61,
            ActionKind::AccessRefused => 62,
            ActionKind::EnrolmentCodeIssued => 63,
            ActionKind::EnrolmentCodeRedeemed => 64,
            ActionKind::SingleOperatorSet => 65,
            ActionKind::Incident => 70,
        }
    }

    /// The kind with this code.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// A short stable name (`read`, `auth-failure`, `break-glass`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::AuthSuccess => "auth-success",
            ActionKind::AuthFailure => "auth-failure",
            ActionKind::MfaSuccess => "mfa-success",
            ActionKind::MfaFailure => "mfa-failure",
            ActionKind::Lockout => "lockout",
            ActionKind::Logout => "logout",
            ActionKind::Read => "read",
            ActionKind::Search => "search",
            ActionKind::Write => "write",
            ActionKind::Export => "export",
            ActionKind::ExportStarted => "export-started",
            ActionKind::ExportFinished => "export-finished",
            ActionKind::ExportFailed => "export-failed",
            ActionKind::BreakGlass => "break-glass",
            ActionKind::UserAdmin => "user-admin",
            ActionKind::RoleAdmin => "role-admin",
            ActionKind::KeyAdmin => "key-admin",
            ActionKind::Backup => "backup",
            ActionKind::Alert => "alert",
            ActionKind::AccessDenied => "access-denied",
            ActionKind::AuditLogUsed => "audit-log-used",
            ActionKind::BreakGlassReviewed => "break-glass-reviewed",
            ActionKind::Other => "other",
            ActionKind::AccessRequested => "access-requested",
            ActionKind::AccessApproved => "access-approved",
            ActionKind::AccessRefused => "access-refused",
            ActionKind::EnrolmentCodeIssued => "enrolment-code-issued",
            ActionKind::EnrolmentCodeRedeemed => "enrolment-code-redeemed",
            ActionKind::SingleOperatorSet => "single-operator-set",
            ActionKind::Incident => "incident",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Action {
    /// Its kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::AuthSuccess { .. } => ActionKind::AuthSuccess,
            Action::AuthFailure { .. } => ActionKind::AuthFailure,
            Action::MfaSuccess { .. } => ActionKind::MfaSuccess,
            Action::MfaFailure { .. } => ActionKind::MfaFailure,
            Action::Lockout { .. } => ActionKind::Lockout,
            Action::Logout => ActionKind::Logout,
            Action::Read { .. } => ActionKind::Read,
            Action::Search { .. } => ActionKind::Search,
            Action::Write { .. } => ActionKind::Write,
            Action::Export { .. } => ActionKind::Export,
            Action::ExportStarted { .. } => ActionKind::ExportStarted,
            Action::ExportFinished { .. } => ActionKind::ExportFinished,
            Action::ExportFailed { .. } => ActionKind::ExportFailed,
            Action::BreakGlass { .. } => ActionKind::BreakGlass,
            Action::UserAdmin { .. } => ActionKind::UserAdmin,
            Action::RoleAdmin { .. } => ActionKind::RoleAdmin,
            Action::KeyAdmin { .. } => ActionKind::KeyAdmin,
            Action::Backup { .. } => ActionKind::Backup,
            Action::Alert { .. } => ActionKind::Alert,
            Action::AccessDenied { .. } => ActionKind::AccessDenied,
            Action::AuditLogUsed { .. } => ActionKind::AuditLogUsed,
            Action::BreakGlassReviewed { .. } => ActionKind::BreakGlassReviewed,
            Action::Other(_) => ActionKind::Other,
            Action::AccessRequested { .. } => ActionKind::AccessRequested,
            Action::AccessApproved { .. } => ActionKind::AccessApproved,
            Action::AccessRefused { .. } => ActionKind::AccessRefused,
            Action::EnrolmentCodeIssued { .. } => ActionKind::EnrolmentCodeIssued,
            Action::EnrolmentCodeRedeemed { .. } => ActionKind::EnrolmentCodeRedeemed,
            Action::SingleOperatorSet { .. } => ActionKind::SingleOperatorSet,
            Action::Incident { .. } => ActionKind::Incident,
        }
    }

    /// The export this action is part of, if any (indexed by its keyed
    /// hash).
    pub fn export_id(&self) -> Option<&str> {
        match self {
            Action::Export { export_id, .. }
            | Action::ExportStarted { export_id, .. }
            | Action::ExportFinished { export_id, .. }
            | Action::ExportFailed { export_id, .. } => Some(export_id),
            _ => None,
        }
    }
}

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// FHIR R4 NDJSON, one file per resource type, and a manifest.
    FhirNdjson,
    /// The minimised shipping manifest (CSV).
    ShippingCsv,
    /// The outputs of a breach incident (letters, mailing file, reports,
    /// the scope).
    BreachOutputs,
}

impl ExportFormat {
    /// A short stable name (`fhir-ndjson`, `shipping-csv`,
    /// `breach-outputs`).
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::FhirNdjson => "fhir-ndjson",
            ExportFormat::ShippingCsv => "shipping-csv",
            ExportFormat::BreachOutputs => "breach-outputs",
        }
    }
}

/// Whether an export's files are plaintext or encrypted, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ExportProtection {
    /// Plaintext PHI (the caller asked for it explicitly).
    Plaintext,
    /// Encrypted to these age recipients (public keys, `age1...`): anyone
    /// holding a matching identity can read the files.
    Age {
        /// The recipients' public keys.
        recipients: Vec<String>,
    },
}

/// A step of a KEK rotation (`rxvault keys rotate`), as audited by the
/// vault where the rotation runs: one entry before the first change
/// (started, or resumed with the phase an interrupted run had reached),
/// one at the end (finished, or failed with why); a rotation refused before
/// it changed anything (an unusable new passphrase) is one refused entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    /// Which step.
    pub step: RotationStep,
    /// The KEK version rotated from.
    pub from: u32,
    /// The KEK version rotated to.
    pub to: u32,
    /// Whether every record is resealed under a fresh data key.
    pub reencrypt: bool,
    /// Resumed: the phase the interrupted rotation had committed
    /// (`started`, `switched`, `reencrypting`, `done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Finished: wrapped keys rewrapped under the new KEK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrapped: Option<u64>,
    /// Finished: records resealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resealed: Option<u64>,
    /// Failed or refused: why (an error message; errors carry no PHI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The step of a [`KeyRotation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotationStep {
    /// About to make its first change (outcome success).
    Started,
    /// Picking an interrupted rotation up again (outcome success).
    Resumed,
    /// Done: the vault is on the new KEK and the old one is gone (outcome
    /// success).
    Finished,
    /// Stopped by an error after it started (outcome error, or denied when
    /// the request itself was wrong); the committed phase stays, and the
    /// next run resumes it.
    Failed,
    /// Refused before any change (outcome denied).
    Refused,
}

impl RotationStep {
    /// A short stable name (`started`, `resumed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RotationStep::Started => "started",
            RotationStep::Resumed => "resumed",
            RotationStep::Finished => "finished",
            RotationStep::Failed => "failed",
            RotationStep::Refused => "refused",
        }
    }
}

/// Field categories per record kind: what an export holds of each kind.
/// Serialized as an object from FHIR type to category names; kinds with no
/// category are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KindCategories(std::collections::BTreeMap<RecordKind, CategorySet>);

impl KindCategories {
    /// Nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `categories` to what is held of `kind`.
    pub fn add(&mut self, kind: RecordKind, categories: CategorySet) {
        if categories.is_empty() {
            return;
        }
        let held = self.0.entry(kind).or_default();
        *held = held.iter().chain(categories.iter()).collect();
    }

    /// What is held of `kind`.
    pub fn of(&self, kind: RecordKind) -> CategorySet {
        self.0.get(&kind).copied().unwrap_or_default()
    }

    /// The kinds held and their categories, in kind order.
    pub fn iter(&self) -> impl Iterator<Item = (RecordKind, CategorySet)> + '_ {
        self.0.iter().map(|(k, c)| (*k, *c))
    }

    /// Whether everything in `self` is in `other` too.
    pub fn is_subset(&self, other: &KindCategories) -> bool {
        self.iter()
            .all(|(k, c)| c.iter().all(|x| other.of(k).contains(x)))
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(RecordKind, CategorySet)> for KindCategories {
    fn from_iter<I: IntoIterator<Item = (RecordKind, CategorySet)>>(iter: I) -> Self {
        let mut out = Self::new();
        for (k, c) in iter {
            out.add(k, c);
        }
        out
    }
}

impl Serialize for KindCategories {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, c)| {
            (
                k.fhir_type(),
                c.iter().map(|x| x.name()).collect::<Vec<_>>(),
            )
        }))
    }
}

impl<'de> Deserialize<'de> for KindCategories {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::deserialize(d)?;
        let mut out = KindCategories::new();
        for (kind, names) in map {
            let kind = RecordKind::from_fhir_type(&kind)
                .ok_or_else(|| serde::de::Error::custom("unknown record kind"))?;
            let set = names
                .iter()
                .map(|n| {
                    FieldCategory::from_name(n)
                        .ok_or_else(|| serde::de::Error::custom("unknown field category"))
                })
                .collect::<Result<CategorySet, D::Error>>()?;
            out.add(kind, set);
        }
        Ok(out)
    }
}

mod categories {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(set: &CategorySet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(set.iter().map(|c| c.name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CategorySet, D::Error> {
        let names: Vec<String> = Vec::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                FieldCategory::from_name(n)
                    .ok_or_else(|| serde::de::Error::custom("unknown field category"))
            })
            .collect()
    }
}

mod opt_categories {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(set: &Option<CategorySet>, s: S) -> Result<S::Ok, S::Error> {
        match set {
            Some(set) => s.collect_seq(set.iter().map(|c| c.name())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CategorySet>, D::Error> {
        let names: Option<Vec<String>> = Option::deserialize(d)?;
        names
            .map(|names| {
                names
                    .iter()
                    .map(|n| {
                        FieldCategory::from_name(n)
                            .ok_or_else(|| serde::de::Error::custom("unknown field category"))
                    })
                    .collect()
            })
            .transpose()
    }
}

mod opt_kind {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &Option<RecordKind>, s: S) -> Result<S::Ok, S::Error> {
        match kind {
            Some(k) => s.serialize_some(k.fhir_type()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RecordKind>, D::Error> {
        let name: Option<String> = Option::deserialize(d)?;
        name.map(|n| {
            RecordKind::from_fhir_type(&n)
                .ok_or_else(|| serde::de::Error::custom("unknown record kind"))
        })
        .transpose()
    }
}

/// An audit entry, as the caller gives it (the log adds time and index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who.
    pub actor: Actor,
    /// The session, if any (an opaque id).
    pub session: Option<String>,
    /// The client's address, if known.
    pub source: Option<IpAddr>,
    /// The client's host or agent id, if known.
    pub host: Option<String>,
    /// The client software as it names itself (an HTTP `User-Agent`), if
    /// known: sign-in attempts carry it.
    pub user_agent: Option<String>,
    /// What.
    pub action: Action,
    /// The patients concerned (record keys).
    pub patients: Vec<Rid>,
    /// Other records concerned (record keys of prescriptions, fills, ...).
    pub resources: Vec<Rid>,
    /// How it ended.
    pub outcome: Outcome,
    /// The break-glass grant active for the actor's session when this was
    /// done, if any (every such entry is for the privacy officer's review;
    /// kept in the sealed body).
    pub break_glass: Option<String>,
}

impl Entry {
    /// A successful `action` by `actor`, with nothing else known yet.
    pub fn new(actor: Actor, action: Action) -> Self {
        Self {
            actor,
            session: None,
            source: None,
            host: None,
            user_agent: None,
            action,
            patients: Vec::new(),
            resources: Vec::new(),
            outcome: Outcome::Success,
            break_glass: None,
        }
    }

    /// With a session id.
    #[must_use]
    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// With a source address.
    #[must_use]
    pub fn source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// With a host or agent id.
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// With the client software's name (an HTTP `User-Agent`).
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// With the patients concerned.
    #[must_use]
    pub fn patients(mut self, patients: impl IntoIterator<Item = Rid>) -> Self {
        self.patients = patients.into_iter().collect();
        self
    }

    /// With the other records concerned.
    #[must_use]
    pub fn resources(mut self, resources: impl IntoIterator<Item = Rid>) -> Self {
        self.resources = resources.into_iter().collect();
        self
    }

    /// With an outcome.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Done while break-glass grant `grant` was active.
    #[must_use]
    pub fn break_glass(mut self, grant: impl Into<String>) -> Self {
        self.break_glass = Some(grant.into());
        self
    }
}

/// An entry as logged: its index, its time and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEntry {
    /// Its position in the log.
    pub index: u64,
    /// When (Unix ms, from the log's clock).
    pub time_ms: i64,
    /// What it says.
    pub entry: Entry,
}

/// Hosts are compared case-insensitively (DNS names are).
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim().to_ascii_lowercase()
}

/// The form of an address that is hashed: IPv4-mapped IPv6 as IPv4.
pub(crate) fn normalize_ip(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// The lookup tokens of an entry's identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tokens {
    /// The actor id's keyed hash.
    pub actor: Option<[u8; 16]>,
    /// The session's.
    pub session: Option<[u8; 16]>,
    /// The host's.
    pub host: Option<[u8; 16]>,
    /// The address's.
    pub ip: Option<[u8; 16]>,
    /// The export id's (entries of an export).
    pub export: Option<[u8; 16]>,
}

impl Tokens {
    /// The tokens of `entry` under `keyring`'s index key.
    pub fn of(keyring: &Secrets, entry: &Entry) -> Self {
        Self {
            actor: Some(keyring.keyed_hash(domain::USER, entry.actor.id.as_bytes())),
            session: entry
                .session
                .as_ref()
                .map(|s| keyring.keyed_hash(domain::SESSION, s.as_bytes())),
            host: entry
                .host
                .as_ref()
                .map(|h| keyring.keyed_hash(domain::HOST, normalize_host(h).as_bytes())),
            ip: entry
                .source
                .map(|ip| keyring.keyed_hash(domain::IP, normalize_ip(ip).as_bytes())),
            export: entry
                .action
                .export_id()
                .map(|id| keyring.keyed_hash(domain::EXPORT, id.as_bytes())),
        }
    }

    fn flags(&self) -> u8 {
        u8::from(self.actor.is_some())
            | u8::from(self.session.is_some()) << 1
            | u8::from(self.host.is_some()) << 2
            | u8::from(self.ip.is_some()) << 3
            | u8::from(self.export.is_some()) << 4
    }
}

/// The clear part of a stored entry: everything a keyless verifier or an
/// index needs, and nothing that identifies anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Position in the log.
    pub index: u64,
    /// Unix ms.
    pub time_ms: i64,
    /// The action's kind.
    pub action: ActionKind,
    /// The outcome.
    pub outcome: Outcome,
    /// The actor's kind.
    pub actor_kind: ActorKind,
    /// Keyed hashes of the identifiers.
    pub tokens: Tokens,
    /// Patients' record keys.
    pub patients: Vec<Rid>,
    /// Other records' keys.
    pub resources: Vec<Rid>,
}

impl Header {
    /// The canonical bytes of the header (the stored entry up to its body).
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(22 + 64 + 8 + 16 * (self.patients.len() + self.resources.len()) + 4);
        out.push(FORMAT);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(&self.action.code().to_be_bytes());
        out.push(self.outcome.code());
        out.push(self.actor_kind.code());
        out.push(self.tokens.flags());
        for t in [
            self.tokens.actor,
            self.tokens.session,
            self.tokens.host,
            self.tokens.ip,
            self.tokens.export,
        ]
        .into_iter()
        .flatten()
        {
            out.extend_from_slice(&t);
        }
        for list in [&self.patients, &self.resources] {
            out.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for r in list {
                out.extend_from_slice(&r.0);
            }
        }
        out
    }

    /// The lookup keys of this entry (the store's index rows).
    pub fn keys(&self) -> Vec<AuditKey> {
        let mut keys = Vec::with_capacity(5 + self.patients.len());
        if let Some(t) = self.tokens.actor {
            keys.push(AuditKey::Actor(t));
        }
        if let Some(t) = self.tokens.session {
            keys.push(AuditKey::Session(t));
        }
        if let Some(t) = self.tokens.host {
            keys.push(AuditKey::Host(t));
        }
        if let Some(t) = self.tokens.ip {
            keys.push(AuditKey::Ip(t));
        }
        if let Some(t) = self.tokens.export {
            keys.push(AuditKey::Export(t));
        }
        keys.push(AuditKey::Action(self.action.code()));
        keys.extend(self.patients.iter().map(|p| AuditKey::Patient(*p)));
        keys
    }

    /// Whether the entry carries `key`.
    pub fn has_key(&self, key: &AuditKey) -> bool {
        match key {
            AuditKey::Actor(t) => self.tokens.actor == Some(*t),
            AuditKey::Session(t) => self.tokens.session == Some(*t),
            AuditKey::Host(t) => self.tokens.host == Some(*t),
            AuditKey::Ip(t) => self.tokens.ip == Some(*t),
            AuditKey::Export(t) => self.tokens.export == Some(*t),
            AuditKey::Patient(p) => self.patients.contains(p),
            AuditKey::Action(code) => self.action.code() == *code,
        }
    }
}

/// An entry as stored: the clear header and the sealed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The header.
    pub header: Header,
    /// The sealed body (see the module docs).
    pub body: Vec<u8>,
}

/// Why stored bytes are not an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Too short for what it declares.
    #[error("truncated")]
    Truncated,
    /// Bytes after the body.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// An unknown format version.
    #[error("unknown format {0}")]
    Format(u8),
    /// An unknown code.
    #[error("unknown {what} code {code}")]
    Code {
        /// Which field.
        what: &'static str,
        /// The code found.
        code: u16,
    },
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn rids(&mut self) -> Result<Vec<Rid>, DecodeError> {
        let n = self.u32()? as usize;
        if n > (self.bytes.len() - self.at) / 16 {
            return Err(DecodeError::Truncated);
        }
        (0..n).map(|_| Ok(Rid(self.array()?))).collect()
    }
}

impl StoredEntry {
    /// The canonical bytes (what is stored and hashed).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header.encode();
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// Decodes stored bytes, strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let format = r.u8()?;
        if format != FORMAT {
            return Err(DecodeError::Format(format));
        }
        let index = u64::from_be_bytes(r.array()?);
        let time_ms = i64::from_be_bytes(r.array()?);
        let action_code = u16::from_be_bytes(r.array()?);
        let action = ActionKind::from_code(action_code).ok_or(DecodeError::Code {
            what: "action",
            code: action_code,
        })?;
        let outcome_code = r.u8()?;
        let outcome = Outcome::from_code(outcome_code).ok_or(DecodeError::Code {
            what: "outcome",
            code: outcome_code.into(),
        })?;
        let kind_code = r.u8()?;
        let actor_kind = ActorKind::from_code(kind_code).ok_or(DecodeError::Code {
            what: "actor kind",
            code: kind_code.into(),
        })?;
        let flags = r.u8()?;
        if flags & !TOKEN_FLAGS != 0 {
            return Err(DecodeError::Code {
                what: "token flags",
                code: flags.into(),
            });
        }
        let mut token = |bit: u8| -> Result<Option<[u8; 16]>, DecodeError> {
            if flags & bit != 0 {
                Ok(Some(r.array()?))
            } else {
                Ok(None)
            }
        };
        let tokens = Tokens {
            actor: token(1)?,
            session: token(2)?,
            host: token(4)?,
            ip: token(8)?,
            export: token(16)?,
        };
        let patients = r.rids()?;
        let resources = r.rids()?;
        let body_len = r.u32()? as usize;
        let body = r.take(body_len)?.to_vec();
        if r.at != bytes.len() {
            return Err(DecodeError::Trailing(bytes.len() - r.at));
        }
        Ok(Self {
            header: Header {
                index,
                time_ms,
                action,
                outcome,
                actor_kind,
                tokens,
                patients,
                resources,
            },
            body,
        })
    }

    /// Checks stored bytes as strictly as [`decode`](Self::decode) does,
    /// without copying anything: the index, the header bytes and the body.
    pub fn view(bytes: &[u8]) -> Result<View<'_>, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let format = r.u8()?;
        if format != FORMAT {
            return Err(DecodeError::Format(format));
        }
        let index = u64::from_be_bytes(r.array()?);
        r.take(8)?;
        let action_code = u16::from_be_bytes(r.array()?);
        if ActionKind::from_code(action_code).is_none() {
            return Err(DecodeError::Code {
                what: "action",
                code: action_code,
            });
        }
        let outcome_code = r.u8()?;
        if Outcome::from_code(outcome_code).is_none() {
            return Err(DecodeError::Code {
                what: "outcome",
                code: outcome_code.into(),
            });
        }
        let kind_code = r.u8()?;
        if ActorKind::from_code(kind_code).is_none() {
            return Err(DecodeError::Code {
                what: "actor kind",
                code: kind_code.into(),
            });
        }
        let flags = r.u8()?;
        if flags & !TOKEN_FLAGS != 0 {
            return Err(DecodeError::Code {
                what: "token flags",
                code: flags.into(),
            });
        }
        r.take(16 * flags.count_ones() as usize)?;
        for _ in 0..2 {
            let n = r.u32()? as usize;
            r.take(n.checked_mul(16).ok_or(DecodeError::Truncated)?)?;
        }
        let header_len = r.at;
        let body_len = r.u32()? as usize;
        let body = r.take(body_len)?;
        if r.at != bytes.len() {
            return Err(DecodeError::Trailing(bytes.len() - r.at));
        }
        Ok(View {
            index,
            header: &bytes[..header_len],
            body,
        })
    }

    /// The data key that sealed the body, if the body is well formed.
    pub fn dek(&self) -> Option<u32> {
        self.body
            .get(1..5)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
}

/// Stored bytes, checked and split, borrowed ([`StoredEntry::view`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View<'a> {
    /// The index the header claims.
    pub index: u64,
    /// The header's canonical bytes.
    pub header: &'a [u8],
    /// The sealed body.
    pub body: &'a [u8],
}

/// The body's plaintext JSON.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Body {
    #[serde(rename = "a")]
    pub actor: String,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(rename = "x")]
    pub action: Action,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
}

/// The seal id of entry `index` (the AEAD's associated data binds it).
pub(crate) fn seal_id(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The body JSON of an entry (sealed later, once its index is known).
pub(crate) fn body_json(entry: &Entry) -> Result<Vec<u8>> {
    serde_json::to_vec(&Body {
        actor: entry.actor.id.clone(),
        session: entry.session.clone(),
        source: entry.source,
        host: entry.host.clone(),
        user_agent: entry.user_agent.clone(),
        action: entry.action.clone(),
        break_glass: entry.break_glass.clone(),
    })
    .map_err(|e| Error::Invalid(format!("entry body: {e}")))
}

/// Seals `body_json` for `header`: the plaintext is the header's digest
/// followed by the JSON.
pub(crate) fn seal_body(
    keyring: &Secrets,
    header_bytes: &[u8],
    index: u64,
    json: &[u8],
) -> Result<Vec<u8>> {
    let mut plain = Vec::with_capacity(32 + json.len());
    plain.extend_from_slice(&sha256(&[header_bytes]));
    plain.extend_from_slice(json);
    Ok(keyring.seal_blob(SEAL_DOMAIN, &seal_id(index), &plain)?)
}

/// Why a body does not open for its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyCheck {
    /// Opens at this position and matches the header.
    Good,
    /// Opens at this position, but was written with another header.
    HeaderChanged,
    /// Does not open at this position (altered, or written at another).
    Sealed,
    /// Sealed with a data key this keyring does not hold: cannot tell.
    UnknownKey,
}

/// Checks the body of an entry at `position` without parsing the JSON.
pub(crate) fn check_body(keyring: &Secrets, entry: &View<'_>, position: u64) -> BodyCheck {
    match keyring.open_blob(SEAL_DOMAIN, &seal_id(position), entry.body) {
        Ok(plain) => {
            if plain.len() >= 32 && plain[..32] == sha256(&[entry.header]) {
                BodyCheck::Good
            } else {
                BodyCheck::HeaderChanged
            }
        }
        Err(rxvault_crypto::Error::UnknownDek(_)) => BodyCheck::UnknownKey,
        Err(_) => BodyCheck::Sealed,
    }
}

/// Whether the body of an entry was sealed for `index` (opens there).
pub(crate) fn sealed_for(keyring: &Secrets, entry: &View<'_>, index: u64) -> bool {
    keyring
        .open_blob(SEAL_DOMAIN, &seal_id(index), entry.body)
        .is_ok()
}

/// Opens a stored entry: checks the body against the header and returns
/// what it says.
pub fn open(keyring: &Secrets, stored: &StoredEntry) -> Result<LoggedEntry> {
    let h = &stored.header;
    let plain = keyring
        .open_blob(SEAL_DOMAIN, &seal_id(h.index), &stored.body)
        .map_err(|_| Error::Malformed {
            index: h.index,
            reason: "the sealed body does not open at this index (altered or moved)".into(),
        })?;
    if plain.len() < 32 || plain[..32] != sha256(&[&h.encode()]) {
        return Err(Error::Malformed {
            index: h.index,
            reason: "the header was changed after the entry was written".into(),
        });
    }
    let body: Body = serde_json::from_slice(&plain[32..]).map_err(|_| Error::Malformed {
        index: h.index,
        reason: "the body is not an audit body".into(),
    })?;
    if body.action.kind() != h.action {
        return Err(Error::Malformed {
            index: h.index,
            reason: "the body's action differs from the header's".into(),
        });
    }
    Ok(LoggedEntry {
        index: h.index,
        time_ms: h.time_ms,
        entry: Entry {
            actor: Actor {
                kind: h.actor_kind,
                id: body.actor,
            },
            session: body.session,
            source: body.source,
            host: body.host,
            user_agent: body.user_agent,
            action: body.action,
            patients: h.patients.clone(),
            resources: h.resources.clone(),
            outcome: h.outcome,
            break_glass: body.break_glass,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            index: 7,
            time_ms: 1_764_000_000_123,
            action: ActionKind::Read,
            outcome: Outcome::Denied,
            actor_kind: ActorKind::Service,
            tokens: Tokens {
                actor: Some([1; 16]),
                session: None,
                host: Some([3; 16]),
                ip: Some([4; 16]),
                export: None,
            },
            patients: vec![Rid([5; 16]), Rid([6; 16])],
            resources: vec![Rid([7; 16])],
        }
    }

    #[test]
    fn stored_entries_round_trip_and_decode_strictly() {
        let e = StoredEntry {
            header: header(),
            body: vec![9; 40],
        };
        let bytes = e.encode();
        assert_eq!(StoredEntry::decode(&bytes).unwrap(), e);
        for cut in 0..bytes.len() {
            assert!(StoredEntry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(StoredEntry::decode(&long), Err(DecodeError::Trailing(1)));
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert_eq!(StoredEntry::decode(&bad), Err(DecodeError::Format(2)));
        let mut flags = bytes.clone();
        flags[21] |= 0x20;
        assert!(StoredEntry::decode(&flags).is_err());
    }

    #[test]
    fn views_accept_and_refuse_exactly_what_decoding_does() {
        let e = StoredEntry {
            header: header(),
            body: vec![9; 40],
        };
        let bytes = e.encode();
        let v = StoredEntry::view(&bytes).unwrap();
        assert_eq!(v.index, 7);
        assert_eq!(v.header, &e.header.encode()[..]);
        assert_eq!(v.body, &e.body[..]);
        for cut in 0..=bytes.len() {
            for flip in [None, Some(0usize), Some(17), Some(19), Some(20), Some(21)] {
                let mut b = bytes[..cut].to_vec();
                if let Some(i) = flip
                    && i < b.len()
                {
                    b[i] ^= 0x80;
                }
                assert_eq!(
                    StoredEntry::view(&b).is_ok(),
                    StoredEntry::decode(&b).is_ok(),
                    "cut {cut} flip {flip:?}"
                );
            }
        }
    }

    #[test]
    fn bodies_from_before_break_glass_marks_still_read() {
        let old: Body = serde_json::from_slice(br#"{"a":"alice","x":{"type":"logout"}}"#).unwrap();
        assert_eq!((old.actor.as_str(), old.break_glass), ("alice", None));
        let marked = Entry::new(Actor::user("bob"), Action::Logout).break_glass("g-1");
        let json = body_json(&marked).unwrap();
        assert!(
            json.ends_with(br#","b":"g-1"}"#),
            "{}",
            String::from_utf8_lossy(&json)
        );
        assert!(
            !body_json(&Entry::new(Actor::user("bob"), Action::Logout))
                .unwrap()
                .windows(4)
                .any(|w| w == br#""b":"#)
        );
    }

    #[test]
    fn bodies_from_before_user_agents_reasons_and_rotation_steps_still_read() {
        // Written before sign-in entries carried a user agent and a second
        // factor's reason, and before rotations were typed.
        let old: Body = serde_json::from_slice(
            br#"{"a":"pat","i":"192.0.2.1","x":{"type":"mfa-failure","details":{"method":"totp"}}}"#,
        )
        .unwrap();
        assert_eq!(old.user_agent, None);
        assert_eq!(
            old.action,
            Action::MfaFailure {
                method: "totp".into(),
                reason: None
            }
        );
        let old: Action = serde_json::from_str(
            r#"{"type":"key-admin","details":{"operation":"rotate-kek v1 to v2"}}"#,
        )
        .unwrap();
        assert_eq!(
            old,
            Action::KeyAdmin {
                operation: "rotate-kek v1 to v2".into(),
                rotation: None
            }
        );
        // Absent details are left out, so such entries are written as before.
        assert_eq!(
            serde_json::to_string(&Action::MfaFailure {
                method: "totp".into(),
                reason: None
            })
            .unwrap(),
            r#"{"type":"mfa-failure","details":{"method":"totp"}}"#
        );
        let plain = body_json(&Entry::new(Actor::user("bob"), Action::Logout)).unwrap();
        assert!(!plain.windows(4).any(|w| w == br#""u":"#));
        let with_ua = Entry::new(Actor::user("bob"), Action::Logout).user_agent("curl/8.5");
        let json = body_json(&with_ua).unwrap();
        let back: Body = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.user_agent.as_deref(), Some("curl/8.5"));
    }

    #[test]
    fn bodies_from_before_searches_recorded_categories_still_read() {
        let old: Action =
            serde_json::from_str(r#"{"type":"search","details":{"query":"phone","results":2}}"#)
                .unwrap();
        assert_eq!(
            old,
            Action::Search {
                query: "phone".into(),
                results: 2,
                kind: None,
                categories: None,
            }
        );
        let json = serde_json::to_string(&Action::Search {
            query: "phone".into(),
            results: 1,
            kind: Some(RecordKind::Coverage),
            categories: Some(CategorySet::of(&[FieldCategory::HealthPlan])),
        })
        .unwrap();
        assert!(
            json.contains(r#""kind":"Coverage","categories":["health-plan"]"#),
            "{json}"
        );
    }

    #[test]
    fn export_entries_carry_an_export_token_and_index_key() {
        let mut h = header();
        h.tokens.export = Some([8; 16]);
        let e = StoredEntry {
            header: h.clone(),
            body: vec![1; 3],
        };
        let bytes = e.encode();
        assert_eq!(bytes[21], 0x1d, "flags: actor, host, address, export");
        assert_eq!(StoredEntry::decode(&bytes).unwrap(), e);
        assert!(StoredEntry::view(&bytes).is_ok());
        assert!(h.keys().contains(&AuditKey::Export([8; 16])));
        assert!(h.has_key(&AuditKey::Export([8; 16])));
        assert!(!header().has_key(&AuditKey::Export([8; 16])));
        assert_eq!(
            Action::ExportFailed {
                export_id: "x".into(),
                reason: String::new()
            }
            .export_id(),
            Some("x")
        );
        assert_eq!(Action::Logout.export_id(), None);
    }

    #[test]
    fn action_codes_and_names_round_trip() {
        for k in ActionKind::ALL {
            assert_eq!(ActionKind::from_code(k.code()), Some(k));
            assert_eq!(ActionKind::from_name(k.name()), Some(k));
        }
        let mut codes: Vec<u16> = ActionKind::ALL.iter().map(|k| k.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), ActionKind::ALL.len());
    }

    #[test]
    fn action_details_serialize_and_back() {
        let actions = [
            Action::Read {
                kind: Some(RecordKind::Patient),
                categories: CategorySet::of(&[FieldCategory::Demographics, FieldCategory::Contact]),
            },
            Action::Other("x".into()),
            Action::Logout,
            Action::Export {
                export_id: "e1".into(),
                file: "/x/y".into(),
                records: 3,
                patients: 2,
            },
            Action::Search {
                query: "phone".into(),
                results: 0,
                kind: Some(RecordKind::Patient),
                categories: Some(CategorySet::of(&[FieldCategory::Demographics])),
            },
            Action::ExportStarted {
                export_id: "e2".into(),
                format: ExportFormat::FhirNdjson,
                destination: "/x/e2".into(),
                protection: ExportProtection::Age {
                    recipients: vec!["age1xyz".into()],
                },
                categories: [
                    (RecordKind::Patient, CategorySet::ALL),
                    (
                        RecordKind::Fill,
                        CategorySet::of(&[FieldCategory::Shipping]),
                    ),
                ]
                .into_iter()
                .collect(),
                records: 9,
            },
            Action::ExportStarted {
                export_id: "e3".into(),
                format: ExportFormat::ShippingCsv,
                destination: "/x/e3.csv".into(),
                protection: ExportProtection::Plaintext,
                categories: KindCategories::new(),
                records: 0,
            },
            Action::ExportFinished {
                export_id: "e2".into(),
                records: 9,
                patients: 2,
                files: vec!["Patient.ndjson.age".into()],
            },
            Action::ExportFailed {
                export_id: "e2".into(),
                reason: "disk full".into(),
            },
            Action::MfaFailure {
                method: "totp".into(),
                reason: Some("wrong-code".into()),
            },
            Action::KeyAdmin {
                operation: "rotate-kek".into(),
                rotation: Some(KeyRotation {
                    step: RotationStep::Resumed,
                    from: 1,
                    to: 2,
                    reencrypt: true,
                    phase: Some("reencrypting".into()),
                    rewrapped: None,
                    resealed: None,
                    reason: None,
                }),
            },
        ];
        for a in actions {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a, "{json}");
        }
    }
}
