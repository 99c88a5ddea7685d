//! Storage for identity and access: accounts, second factors, sessions,
//! API keys, throttling state, break-glass grants, enrolment codes, access
//! requests awaiting a second person's approval, and identity settings;
//! and sealed documents of other capabilities (breach incidents).
//!
//! [`AuthStore`] is the interface; [`SqlAuthStore`] implements it on both
//! backends, in the same database as the vault's records (the SQLite
//! `vault.db`, or the vault's PostgreSQL schema), with tables created by
//! schema migrations 2 and 4 ([`crate::schema`]). Statements are written once, with
//! `?` placeholders, and run through a small adapter per backend (values are
//! integers, text, bytes or null), the way `sql.rs` serves the record
//! tables.
//!
//! **Architecture invariant:** nothing here is a usable secret. Passwords
//! arrive as Argon2id PHC strings; session tokens, API keys, recovery
//! codes and enrolment codes as SHA-256 hashes; TOTP secrets and break-glass reasons sealed by
//! the vault keyring (this crate cannot open them), each with the id of the
//! data key that sealed it so key retirement can see it is still needed
//! ([`AuthStore::sealed_dek_usage`]). Throttling subjects are keyed hashes,
//! so not even a mistyped password entered as a user name is stored.
//!
//! Operations that decide a race are single statements or transactions:
//! accepting a TOTP step ([`AuthStore::advance_totp_step`]), spending a
//! recovery code, taking a WebAuthn ceremony state, exchanging a pending
//! login for a session ([`AuthStore::replace_session`]), spending an
//! enrolment code ([`AuthStore::take_enrolment_code`]) and deciding an
//! access request ([`AuthStore::decide_access_request`]) each succeed for
//! exactly one of several concurrent callers, across processes.
//!
//! All times are Unix seconds, supplied by the caller's clock.

use crate::pool::{self, Pool};
use crate::{Error, PgStore, Result, SqliteStore};
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ErrorCode, OpenFlags, TransactionBehavior};
use rxvault_model::DekId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Whether an account is a person or a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// A person: password plus a mandatory second factor.
    Human,
    /// A service account: API keys only, no interactive login.
    Service,
}

impl AccountKind {
    fn code(self) -> i64 {
        match self {
            AccountKind::Human => 1,
            AccountKind::Service => 2,
        }
    }

    fn from_code(code: i64) -> Result<Self> {
        match code {
            1 => Ok(AccountKind::Human),
            2 => Ok(AccountKind::Service),
            _ => Err(Error::Corrupt(format!("account kind {code}"))),
        }
    }
}

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    /// Random, immutable id.
    pub id: String,
    /// Normalised login name (unique).
    pub username: String,
    /// Person or machine.
    pub kind: AccountKind,
    /// Role name (humans) or `service`.
    pub role: String,
    /// Disabled accounts cannot log in and their sessions are refused.
    pub disabled: bool,
    /// Argon2id PHC string (humans; `None` for service accounts).
    pub password_hash: Option<String>,
    /// Created.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
}

/// A change to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountUpdate {
    /// A new role.
    Role(String),
    /// Disable (`true`) or enable.
    Disabled(bool),
    /// A new password hash.
    PasswordHash(String),
}

/// An account's TOTP authenticator.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredTotp {
    /// The secret, sealed by the keyring (bound to the account id).
    pub sealed_secret: Vec<u8>,
    /// The data key that sealed it.
    pub dek: DekId,
    /// The last time step accepted (codes of this step and earlier are
    /// refused).
    pub last_step: Option<u64>,
    /// Enrolled.
    pub created_at: i64,
}

impl std::fmt::Debug for StoredTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTotp")
            .field("dek", &self.dek)
            .field("last_step", &self.last_step)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A registered WebAuthn passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// The credential id (unique across all accounts).
    pub credential_id: Vec<u8>,
    /// Its account.
    pub account_id: String,
    /// A label the user chose.
    pub name: String,
    /// The credential (public key, signature counter) as JSON; public data.
    pub passkey: String,
    /// Registered.
    pub created_at: i64,
    /// Last used to log in.
    pub last_used_at: Option<i64>,
}

/// The server-side state of a WebAuthn ceremony between its two steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCeremony {
    /// Its id (the pending login's or session's id).
    pub id: String,
    /// Whose.
    pub account_id: String,
    /// Which ceremony (registration, login, step-up).
    pub purpose: String,
    /// The library's state, serialised. Kept server-side only: a client
    /// that could replay it could replay an assertion.
    pub state: String,
    /// Refused after this.
    pub expires_at: i64,
}

/// How far a session has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStage {
    /// The password was right; a second factor is due.
    PendingSecondFactor,
    /// The password was right; the account has no second factor and may
    /// only enrol one.
    PendingEnrolment,
    /// Fully authenticated.
    Authenticated,
}

impl SessionStage {
    fn code(self) -> i64 {
        match self {
            SessionStage::PendingSecondFactor => 1,
            SessionStage::PendingEnrolment => 2,
            SessionStage::Authenticated => 3,
        }
    }

    fn from_code(code: i64) -> Result<Self> {
        match code {
            1 => Ok(SessionStage::PendingSecondFactor),
            2 => Ok(SessionStage::PendingEnrolment),
            3 => Ok(SessionStage::Authenticated),
            _ => Err(Error::Corrupt(format!("session stage {code}"))),
        }
    }
}

/// A session (or pending login) row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Public id (for listing and revoking; not a credential).
    pub id: String,
    /// SHA-256 of the bearer token.
    pub token_hash: [u8; 32],
    /// Whose.
    pub account_id: String,
    /// How far it has got.
    pub stage: SessionStage,
    /// The workstation or agent it was opened from, if known.
    pub host: Option<String>,
    /// The source address it was opened from.
    pub source: String,
    /// Opened.
    pub created_at: i64,
    /// Last used (updated coarsely, see [`AuthStore::touch_session`]).
    pub last_seen_at: i64,
    /// Absolute expiry.
    pub expires_at: i64,
    /// Last successful second-factor check.
    pub mfa_at: Option<i64>,
    /// Revoked.
    pub revoked_at: Option<i64>,
}

/// Which sessions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this account's.
    pub account: Option<String>,
    /// Only those from this host.
    pub host: Option<String>,
    /// Only those not revoked and not past their absolute expiry at this
    /// time.
    pub live_at: Option<i64>,
}

/// Which sessions to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation<'a> {
    /// One session, by id.
    Session(&'a str),
    /// Every session of an account.
    Account(&'a str),
    /// Every session opened from a host.
    Host(&'a str),
}

/// A service account's API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    /// Public id.
    pub id: String,
    /// SHA-256 of the key.
    pub key_hash: [u8; 32],
    /// The service account.
    pub account_id: String,
    /// Space-separated scope names.
    pub scopes: String,
    /// Space-separated CIDR blocks the key may be used from; empty: any.
    pub allowed_sources: String,
    /// Issued.
    pub created_at: i64,
    /// Refused after this, if set.
    pub expires_at: Option<i64>,
    /// Revoked.
    pub revoked_at: Option<i64>,
    /// Last used (updated coarsely).
    pub last_used_at: Option<i64>,
    /// Waiting for a second person's approval (a key with a chart-reading
    /// scope): refused until approved ([`AuthStore::decide_access_request`]).
    pub pending: bool,
}

/// What failed logins are counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleScope {
    /// A login name (existing or not).
    Account,
    /// A source address.
    Source,
}

impl ThrottleScope {
    fn code(self) -> i64 {
        match self {
            ThrottleScope::Account => 1,
            ThrottleScope::Source => 2,
        }
    }
}

/// One subject of an attempt, for [`AuthStore::admit_attempt`].
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSubject<'a> {
    /// What is counted.
    pub scope: ThrottleScope,
    /// Its keyed hash.
    pub subject: &'a [u8],
    /// A count whose last failure is older than this starts again.
    pub restart_before: Option<i64>,
}

/// Consecutive failures of one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures since the last success (or since the count restarted).
    pub failures: u32,
    /// When the last one happened.
    pub last_failure_at: i64,
}

/// An emergency-access grant.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredBreakGlass {
    /// Its id.
    pub id: String,
    /// Who broke the glass.
    pub account_id: String,
    /// In which session.
    pub session_id: String,
    /// The typed reason, sealed by the keyring (it may name a patient).
    pub sealed_reason: Vec<u8>,
    /// The data key that sealed it.
    pub dek: DekId,
    /// Started.
    pub started_at: i64,
    /// Ends at the latest.
    pub expires_at: i64,
    /// Ended early (logout, revocation).
    pub ended_at: Option<i64>,
    /// Reviewed by the privacy officer.
    pub reviewed_at: Option<i64>,
    /// Which privacy officer (account id).
    pub reviewed_by: Option<String>,
}

impl std::fmt::Debug for StoredBreakGlass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredBreakGlass")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("session_id", &self.session_id)
            .field("started_at", &self.started_at)
            .field("expires_at", &self.expires_at)
            .field("ended_at", &self.ended_at)
            .field("reviewed_at", &self.reviewed_at)
            .finish_non_exhaustive()
    }
}

/// What an access request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// A role for a person ([`StoredAccessRequest::role`]).
    Role,
    /// That an API key with chart-reading scopes may be used
    /// ([`StoredAccessRequest::api_key_id`]).
    ApiKey,
}

impl RequestKind {
    fn code(self) -> i64 {
        match self {
            RequestKind::Role => 1,
            RequestKind::ApiKey => 2,
        }
    }

    fn from_code(code: i64) -> Result<Self> {
        match code {
            1 => Ok(RequestKind::Role),
            2 => Ok(RequestKind::ApiKey),
            _ => Err(Error::Corrupt(format!("access request kind {code}"))),
        }
    }
}

/// Where an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    /// Waiting for an approver (until it expires).
    Pending,
    /// Approved: the role was given, or the key may be used.
    Approved,
    /// Refused by an approver (a refused key is revoked).
    Refused,
    /// Replaced by a later request or a direct role change for the same
    /// account.
    Superseded,
}

impl RequestStatus {
    fn code(self) -> i64 {
        match self {
            RequestStatus::Pending => 0,
            RequestStatus::Approved => 1,
            RequestStatus::Refused => 2,
            RequestStatus::Superseded => 3,
        }
    }

    fn from_code(code: i64) -> Result<Self> {
        match code {
            0 => Ok(RequestStatus::Pending),
            1 => Ok(RequestStatus::Approved),
            2 => Ok(RequestStatus::Refused),
            3 => Ok(RequestStatus::Superseded),
            _ => Err(Error::Corrupt(format!("access request status {code}"))),
        }
    }
}

/// A request for access that a second person must approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccessRequest {
    /// Its id.
    pub id: String,
    /// Role or API key.
    pub kind: RequestKind,
    /// The account it is for (the person, or the key's service account).
    pub account_id: String,
    /// The role asked for (role requests).
    pub role: Option<String>,
    /// The account's role when it was asked (role requests).
    pub previous_role: Option<String>,
    /// The key (API-key requests).
    pub api_key_id: Option<String>,
    /// Who asked (account id); `None`: the local operator (the key holder
    /// on the vault's machine).
    pub requested_by: Option<String>,
    /// Asked.
    pub created_at: i64,
    /// No longer approvable from this time on.
    pub expires_at: i64,
    /// Where it stands.
    pub status: RequestStatus,
    /// Who decided (account id); `None` with a decision time: the local
    /// operator.
    pub decided_by: Option<String>,
    /// When it was decided (or superseded).
    pub decided_at: Option<i64>,
}

/// A one-time enrolment code: the person it is for sets their own password
/// with it. Stored as a hash only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnrolmentCode {
    /// The account (one live code per account).
    pub account_id: String,
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// Who issued it (account id); `None`: the local operator.
    pub issued_by: Option<String>,
    /// Issued.
    pub created_at: i64,
    /// Refused from this time on.
    pub expires_at: i64,
}

/// What authenticating one request needs ([`AuthStore::request_context`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The session.
    pub session: StoredSession,
    /// Its account, unless it was deleted.
    pub account: Option<StoredAccount>,
    /// The session's break-glass grant in force, if any.
    pub break_glass: Option<StoredBreakGlass>,
}

/// A value another capability sealed with the vault's keys (a breach
/// incident): the store holds ciphertext only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// What kind of document (`breach-incident`).
    pub namespace: String,
    /// Its id within the namespace (not PHI).
    pub id: String,
    /// 1 when created, one more with each replacement.
    pub revision: u64,
    /// The data key that sealed it.
    pub dek: DekId,
    /// The sealed bytes.
    pub sealed: Vec<u8>,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When this revision was written (Unix seconds).
    pub updated_at: i64,
}

impl std::fmt::Debug for StoredDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredDocument")
            .field("namespace", &self.namespace)
            .field("id", &self.id)
            .field("revision", &self.revision)
            .field("dek", &self.dek)
            .field("sealed_len", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

/// The identity-and-access storage interface. Blocking, shareable between
/// threads; both backends pass `tests/auth_conformance.rs`.
pub trait AuthStore: Send + Sync + std::fmt::Debug {
    // ---- accounts ----

    /// Creates an account; `false` if the id or user name is taken.
    fn create_account(&self, account: &StoredAccount) -> Result<bool>;
    /// An account by id.
    fn account(&self, id: &str) -> Result<Option<StoredAccount>>;
    /// An account by (normalised) user name.
    fn account_by_username(&self, username: &str) -> Result<Option<StoredAccount>>;
    /// Every account, by user name.
    fn accounts(&self) -> Result<Vec<StoredAccount>>;
    /// Changes an account; `false` if there is no such account.
    fn update_account(&self, id: &str, update: &AccountUpdate, at: i64) -> Result<bool>;

    // ---- second factors ----

    /// Sets (replaces) an account's TOTP authenticator.
    fn set_totp(&self, account: &str, totp: &StoredTotp) -> Result<()>;
    /// An account's TOTP authenticator.
    fn totp(&self, account: &str) -> Result<Option<StoredTotp>>;
    /// Records `step` as the last accepted TOTP step if it is later than the
    /// stored one; `false` (nothing changed) otherwise. Of several
    /// concurrent callers with the same step, exactly one gets `true`.
    fn advance_totp_step(&self, account: &str, step: u64) -> Result<bool>;
    /// Registers a passkey; `false` if its credential id is registered
    /// already (to any account).
    fn add_passkey(&self, passkey: &StoredPasskey) -> Result<bool>;
    /// An account's passkeys.
    fn passkeys(&self, account: &str) -> Result<Vec<StoredPasskey>>;
    /// Stores a passkey's updated credential (signature counter) and use
    /// time; `false` if there is no such passkey for that account.
    fn update_passkey(
        &self,
        account: &str,
        credential_id: &[u8],
        passkey: &str,
        used_at: i64,
    ) -> Result<bool>;
    /// Removes a passkey; `false` if there was none.
    fn delete_passkey(&self, account: &str, credential_id: &[u8]) -> Result<bool>;
    /// Replaces an account's recovery codes (hashes) with a new set.
    fn replace_recovery_codes(&self, account: &str, hashes: &[[u8; 32]], at: i64) -> Result<()>;
    /// Spends a recovery code; `true` only the first time for an unused
    /// code of that account.
    fn consume_recovery_code(&self, account: &str, hash: &[u8; 32], at: i64) -> Result<bool>;
    /// How many unused recovery codes an account has.
    fn recovery_codes_left(&self, account: &str) -> Result<u32>;
    /// Removes every second factor of an account (TOTP, passkeys, recovery
    /// codes, pending ceremonies), atomically.
    fn clear_second_factors(&self, account: &str) -> Result<()>;

    // ---- WebAuthn ceremony state ----

    /// Stores (replaces) a ceremony's state.
    fn put_ceremony(&self, ceremony: &StoredCeremony) -> Result<()>;
    /// Takes (reads and deletes) a ceremony's state if it has `purpose` and
    /// has not expired at `now`: each state is usable once.
    fn take_ceremony(&self, id: &str, purpose: &str, now: i64) -> Result<Option<StoredCeremony>>;

    // ---- sessions ----

    /// Stores a new session.
    fn insert_session(&self, session: &StoredSession) -> Result<()>;
    /// A session by its token's hash.
    fn session_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<StoredSession>>;
    /// What authenticating a request needs, in one query: the session with
    /// this token hash, its account (if it still exists) and the session's
    /// break-glass grant in force at `now` (as [`AuthStore::active_break_glass`]).
    fn request_context(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<RequestContext>>;
    /// A session by id.
    fn session(&self, id: &str) -> Result<Option<StoredSession>>;
    /// Atomically deletes the unrevoked session `old_id` and stores `new`;
    /// `false` (and nothing stored) if `old_id` was gone or revoked. A
    /// pending login becomes a session exactly once.
    fn replace_session(&self, old_id: &str, new: &StoredSession) -> Result<bool>;
    /// Sets a session's last use to `at` if it is older than `older_than`
    /// (coarse updates keep reads from turning into writes).
    fn touch_session(&self, id: &str, at: i64, older_than: i64) -> Result<()>;
    /// Records a successful second-factor check (step-up) at `at`; `false`
    /// if the session is gone or revoked.
    fn record_session_mfa(&self, id: &str, at: i64) -> Result<bool>;
    /// Makes a session's last second factor long ago (step-up is needed
    /// again); activity times are unchanged.
    fn expire_session_mfa(&self, id: &str) -> Result<bool>;
    /// Sessions matching `filter`, newest first.
    fn sessions(&self, filter: &SessionFilter) -> Result<Vec<StoredSession>>;
    /// Revokes sessions (not already revoked) at `at`; how many.
    fn revoke_sessions(&self, which: Revocation<'_>, at: i64) -> Result<u64>;
    /// Deletes sessions that expired or were revoked before `before`, and
    /// expired ceremony states; how many sessions.
    fn purge_sessions(&self, before: i64) -> Result<u64>;

    // ---- API keys ----

    /// Stores a new API key.
    fn insert_api_key(&self, key: &StoredApiKey) -> Result<()>;
    /// An API key by its hash.
    fn api_key_by_hash(&self, key_hash: &[u8; 32]) -> Result<Option<StoredApiKey>>;
    /// API keys, of one account or all.
    fn api_keys(&self, account: Option<&str>) -> Result<Vec<StoredApiKey>>;
    /// Revokes an API key; `false` if none or already revoked.
    fn revoke_api_key(&self, id: &str, at: i64) -> Result<bool>;
    /// Sets a key's last use to `at` if older than `older_than`.
    fn touch_api_key(&self, id: &str, at: i64, older_than: i64) -> Result<()>;

    // ---- throttling ----

    /// The failure count of a subject.
    fn throttle(&self, scope: ThrottleScope, subject: &[u8]) -> Result<Option<ThrottleState>>;
    /// Checks and counts an attempt in one transaction: reads every
    /// subject's state (a count restarted by its `restart_before` reads as
    /// zero failures), holding its row until the end, and asks `admit`;
    /// if it says yes, counts the attempt as a failure at `at` for every
    /// subject (a credential that proves right is given back with
    /// [`refund_attempt`](Self::refund_attempt)). Returns what `admit` said.
    /// Concurrent attempts are checked one after another, each seeing the
    /// ones before it: a burst gets no more checks than attempts made one
    /// at a time.
    fn admit_attempt(
        &self,
        subjects: &[ThrottleSubject<'_>],
        at: i64,
        admit: &mut dyn FnMut(&[ThrottleState]) -> bool,
    ) -> Result<bool>;
    /// Takes back one counted attempt of a subject (it proved right). Its
    /// last-failure time stays that of the attempt.
    fn refund_attempt(&self, scope: ThrottleScope, subject: &[u8]) -> Result<()>;
    /// Forgets a subject's failures (after a success, or an unlock).
    fn clear_failures(&self, scope: ThrottleScope, subject: &[u8]) -> Result<()>;
    /// Forgets the failures of every subject whose last failure was before
    /// `before` and that has fewer than `keep_from` failures (locked
    /// subjects stay locked); how many.
    fn purge_failures(&self, before: i64, keep_from: u32) -> Result<u64>;

    // ---- break-glass ----

    /// Stores a new grant.
    fn insert_break_glass(&self, grant: &StoredBreakGlass) -> Result<()>;
    /// The latest grant of a session still in force at `now`.
    fn active_break_glass(&self, session_id: &str, now: i64) -> Result<Option<StoredBreakGlass>>;
    /// Grants, oldest first; only those not yet reviewed if asked.
    fn break_glass_grants(&self, unreviewed_only: bool) -> Result<Vec<StoredBreakGlass>>;
    /// Marks a grant reviewed; `false` if none or already reviewed.
    fn review_break_glass(&self, id: &str, reviewer: &str, at: i64) -> Result<bool>;
    /// Ends a session's grants still in force at `at`; how many.
    fn end_break_glass(&self, session_id: &str, at: i64) -> Result<u64>;

    // ---- enrolment and separation of duties ----

    /// Takes an account back to before its enrolment, atomically: no
    /// password, no second factor (TOTP, passkeys, recovery codes, pending
    /// ceremonies), every session revoked at `at`, and `role` as its role;
    /// `false` if there is no such account.
    fn reset_account(&self, id: &str, role: &str, at: i64) -> Result<bool>;
    /// Stores an account's enrolment code, replacing any earlier one.
    fn set_enrolment_code(&self, code: &StoredEnrolmentCode) -> Result<()>;
    /// An account's enrolment code, if one was issued and not used.
    fn enrolment_code(&self, account: &str) -> Result<Option<StoredEnrolmentCode>>;
    /// Spends an account's enrolment code: `true` only for the first caller
    /// presenting its hash before it expires at `now`.
    fn take_enrolment_code(&self, account: &str, code_hash: &[u8; 32], now: i64) -> Result<bool>;
    /// Stores a new access request; in the same transaction, a pending
    /// request of the same kind for the same account (role) or key (API
    /// key) is superseded at its creation time.
    fn insert_access_request(&self, request: &StoredAccessRequest) -> Result<()>;
    /// An access request by id.
    fn access_request(&self, id: &str) -> Result<Option<StoredAccessRequest>>;
    /// Access requests, oldest first: only those still pending and not
    /// expired at `pending_at` if given, else all.
    fn access_requests(&self, pending_at: Option<i64>) -> Result<Vec<StoredAccessRequest>>;
    /// Decides a pending request not expired at `at`, in one transaction:
    /// marks it approved or refused by `by` (`None`: the local operator)
    /// and applies it (an approved role becomes the account's role, an
    /// approved key usable; a refused key is revoked). `false` (nothing
    /// changed) if it was not pending or has expired: of concurrent
    /// deciders exactly one gets `true`.
    fn decide_access_request(
        &self,
        id: &str,
        approve: bool,
        by: Option<&str>,
        at: i64,
    ) -> Result<bool>;
    /// Supersedes an account's pending role requests at `at` (its role was
    /// changed directly); how many.
    fn supersede_role_requests(&self, account: &str, at: i64) -> Result<u64>;
    /// A vault-wide identity setting.
    fn setting(&self, name: &str) -> Result<Option<String>>;
    /// Sets a vault-wide identity setting.
    fn set_setting(&self, name: &str, value: &str) -> Result<()>;

    // ---- sealed documents ----

    /// A sealed document by namespace and id.
    fn sealed_document(&self, namespace: &str, id: &str) -> Result<Option<StoredDocument>>;
    /// Every sealed document of a namespace, by id.
    fn sealed_documents(&self, namespace: &str) -> Result<Vec<StoredDocument>>;
    /// Stores `doc`: revision 1 creates it (`false` if the id is taken);
    /// a later revision replaces revision `doc.revision - 1` (`false` if the
    /// stored one is not that revision: someone else changed it first, or
    /// there is none). One statement: exactly one of concurrent writers of
    /// the same revision wins.
    fn put_sealed_document(&self, doc: &StoredDocument) -> Result<bool>;

    // ---- keys ----

    /// How many stored sealed values (TOTP secrets, break-glass reasons,
    /// sealed documents)
    /// each data key sealed: key retirement must keep these keys.
    fn sealed_dek_usage(&self) -> Result<Vec<(DekId, u64)>>;
}

// ---------------------------------------------------------------------------
// Values and the per-backend adapters.

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Self {
        Val::Text(v.clone())
    }
}
impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Self {
        Val::Blob(v.to_vec())
    }
}
impl From<&Vec<u8>> for Val {
    fn from(v: &Vec<u8>) -> Self {
        Val::Blob(v.clone())
    }
}
impl From<&[u8; 32]> for Val {
    fn from(v: &[u8; 32]) -> Self {
        Val::Blob(v.to_vec())
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Self {
        v.map_or(Val::Null, Into::into)
    }
}

pub(crate) fn u64_val(v: u64) -> Result<Val> {
    i64::try_from(v)
        .map(Val::Int)
        .map_err(|_| Error::Corrupt(format!("value {v} out of range")))
}

pub(crate) type Row = Vec<Val>;

/// One connection (or transaction) of either backend.
pub(crate) trait Conn {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64>;
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>>;
}

struct SqliteConn<'a>(&'a rusqlite::Connection);

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Val::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Val::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Val::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn sqlite_err(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Error::DiskFull,
        _ => Error::Sqlite(e),
    }
}

impl Conn for SqliteConn<'_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        let mut stmt = self.0.prepare_cached(sql).map_err(sqlite_err)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_err)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        let mut stmt = self.0.prepare_cached(sql).map_err(sqlite_err)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(sqlite_err)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(v) => Val::Int(v),
                    ValueRef::Real(v) => {
                        return Err(Error::Corrupt(format!("unexpected real {v}")));
                    }
                    ValueRef::Text(t) => Val::Text(
                        String::from_utf8(t.to_vec())
                            .map_err(|_| Error::Corrupt("text is not UTF-8".into()))?,
                    ),
                    ValueRef::Blob(b) => Val::Blob(b.to_vec()),
                });
            }
            out.push(values);
        }
        Ok(out)
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(i) => i.to_sql(ty, out),
            Val::Text(t) => t.as_str().to_sql(ty, out),
            Val::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each variant checks its own type in `to_sql`.
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Val {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Val::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Val::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::BYTEA => Val::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Val::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Val::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::BYTEA | Type::TEXT | Type::VARCHAR
        )
    }
}

fn pg_err(e: postgres::Error) -> Error {
    if e.code() == Some(&postgres::error::SqlState::DISK_FULL) {
        Error::DiskFull
    } else {
        Error::Postgres(e)
    }
}

/// Prepared statements of one PostgreSQL connection, by the `?` form of
/// their SQL.
type Statements = HashMap<String, postgres::Statement>;

struct PgConn<'a, C: postgres::GenericClient> {
    client: &'a mut C,
    statements: &'a mut Statements,
}

impl<C: postgres::GenericClient> PgConn<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(&crate::sql::numbered(sql))
            .map_err(pg_err)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

fn pg_params(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl<C: postgres::GenericClient> Conn for PgConn<'_, C> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        let s = self.statement(sql)?;
        self.client.execute(&s, &pg_params(params)).map_err(pg_err)
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        let rows = self.client.query(&s, &pg_params(params)).map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<_, Val>(i)
                            .map_err(|e| Error::Corrupt(format!("column {i}: {e}")))
                    })
                    .collect()
            })
            .collect()
    }
}

pub(crate) struct SqliteDb {
    path: PathBuf,
    writer: Mutex<rusqlite::Connection>,
    readers: Pool<rusqlite::Connection>,
}

pub(crate) struct PgConnection {
    client: postgres::Client,
    statements: Statements,
}

pub(crate) struct PgDb {
    connector: crate::pgconn::Connector,
    schema: String,
    pool: Pool<PgConnection>,
}

pub(crate) enum Db {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

fn sqlite_connect(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite_err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;",
    )
    .map_err(sqlite_err)?;
    // Query plans fixed when a statement is prepared: without this, SQLite
    // (built with STAT4) recompiled the cached session lookups on every
    // call, whenever a bound value changed (measured: a tenth of the CPU of
    // an authenticated read).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(sqlite_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn pg_connect(connector: &crate::pgconn::Connector, schema: &str) -> Result<PgConnection> {
    let mut client = connector.connect().map_err(pg_err)?;
    client
        .batch_execute(&format!(
            "SET search_path TO \"{}\"",
            schema.replace('"', "\"\"")
        ))
        .map_err(pg_err)?;
    Ok(PgConnection {
        client,
        statements: HashMap::new(),
    })
}

impl Db {
    /// The vault's SQLite database at `path` (migrated, as
    /// [`SqliteStore::open`] does, if it is older).
    pub(crate) fn open_sqlite(path: &Path) -> Result<Self> {
        drop(SqliteStore::open(path)?);
        let writer = sqlite_connect(path)?;
        Ok(Db::Sqlite(SqliteDb {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Pool::new(pool::SQLITE_IDLE),
        }))
    }

    /// The vault's PostgreSQL `schema` (migrated, as [`PgStore::open`]
    /// does, if it is older).
    pub(crate) fn open_postgres(url: &str, schema: &str) -> Result<Self> {
        drop(PgStore::open(url, schema)?);
        let db = PgDb {
            connector: crate::pgconn::Connector::new(url)?,
            schema: schema.to_string(),
            pool: Pool::new(pool::PG_IDLE),
        };
        let first = pg_connect(&db.connector, schema)?;
        db.release(first);
        Ok(Db::Postgres(db))
    }

    /// Which backend this is.
    pub(crate) fn backend(&self) -> crate::Backend {
        match self {
            Db::Sqlite(_) => crate::Backend::Sqlite,
            Db::Postgres(_) => crate::Backend::Postgres,
        }
    }

    /// For `Debug`: the SQLite file or the PostgreSQL schema (never the
    /// URL, which may carry a password).
    pub(crate) fn describe(&self) -> String {
        match self {
            Db::Sqlite(db) => format!("sqlite {}", db.path.display()),
            Db::Postgres(db) => format!("postgres schema {}", db.schema),
        }
    }

    /// Runs `f` on a connection outside any explicit transaction (each
    /// statement is atomic on its own).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn Conn) -> Result<T>) -> Result<T> {
        match self {
            Db::Sqlite(db) => {
                let conn = match db.readers.take() {
                    Some(c) => c,
                    None => sqlite_connect(&db.path)?,
                };
                let out = f(&mut SqliteConn(&conn));
                db.readers.put(conn);
                out
            }
            Db::Postgres(db) => {
                let mut conn = db.take()?;
                let out = f(&mut PgConn {
                    client: &mut conn.client,
                    statements: &mut conn.statements,
                });
                db.release(conn);
                out
            }
        }
    }

    /// Runs `f` in one transaction, committed if `f` succeeds.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut dyn Conn) -> Result<T>) -> Result<T> {
        match self {
            Db::Sqlite(db) => {
                let mut conn = db.writer.lock().unwrap_or_else(|e| e.into_inner());
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sqlite_err)?;
                let out = f(&mut SqliteConn(&tx))?;
                tx.commit().map_err(sqlite_err)?;
                Ok(out)
            }
            Db::Postgres(db) => {
                let mut conn = db.take()?;
                let out = (|| {
                    let PgConnection { client, statements } = &mut conn;
                    let mut tx = client.transaction().map_err(pg_err)?;
                    let out = f(&mut PgConn {
                        client: &mut tx,
                        statements,
                    })?;
                    tx.commit().map_err(pg_err)?;
                    Ok(out)
                })();
                db.release(conn);
                out
            }
        }
    }
}

impl PgDb {
    fn take(&self) -> Result<PgConnection> {
        match self.pool.take() {
            Some(c) if !c.client.is_closed() => Ok(c),
            _ => pg_connect(&self.connector, &self.schema),
        }
    }

    fn release(&self, conn: PgConnection) {
        if conn.client.is_closed() {
            return;
        }
        self.pool.put(conn);
    }
}

// ---------------------------------------------------------------------------
// Reading rows.

pub(crate) fn int(row: &[Val], i: usize) -> Result<i64> {
    match row.get(i) {
        Some(Val::Int(v)) => Ok(*v),
        other => Err(Error::Corrupt(format!(
            "column {i}: expected an integer, found {other:?}"
        ))),
    }
}

pub(crate) fn opt_int(row: &[Val], i: usize) -> Result<Option<i64>> {
    match row.get(i) {
        Some(Val::Null) => Ok(None),
        _ => int(row, i).map(Some),
    }
}

pub(crate) fn text(row: &[Val], i: usize) -> Result<String> {
    match row.get(i) {
        Some(Val::Text(v)) => Ok(v.clone()),
        _ => Err(Error::Corrupt(format!("column {i}: expected text"))),
    }
}

pub(crate) fn opt_text(row: &[Val], i: usize) -> Result<Option<String>> {
    match row.get(i) {
        Some(Val::Null) => Ok(None),
        _ => text(row, i).map(Some),
    }
}

pub(crate) fn blob(row: &[Val], i: usize) -> Result<Vec<u8>> {
    match row.get(i) {
        Some(Val::Blob(v)) => Ok(v.clone()),
        _ => Err(Error::Corrupt(format!("column {i}: expected bytes"))),
    }
}

fn hash32(row: &[Val], i: usize) -> Result<[u8; 32]> {
    blob(row, i)?
        .try_into()
        .map_err(|_| Error::Corrupt(format!("column {i}: a hash is 32 bytes")))
}

fn dek(row: &[Val], i: usize) -> Result<DekId> {
    let v = int(row, i)?;
    u32::try_from(v)
        .map(DekId)
        .map_err(|_| Error::Corrupt(format!("data key id {v}")))
}

fn step(row: &[Val], i: usize) -> Result<Option<u64>> {
    opt_int(row, i)?
        .map(|v| u64::try_from(v).map_err(|_| Error::Corrupt(format!("TOTP step {v}"))))
        .transpose()
}

const ACCOUNT_COLUMNS: &str =
    "id, username, kind, role, disabled, password_hash, created_at, updated_at";

fn account_row(r: &[Val]) -> Result<StoredAccount> {
    Ok(StoredAccount {
        id: text(r, 0)?,
        username: text(r, 1)?,
        kind: AccountKind::from_code(int(r, 2)?)?,
        role: text(r, 3)?,
        disabled: int(r, 4)? != 0,
        password_hash: opt_text(r, 5)?,
        created_at: int(r, 6)?,
        updated_at: int(r, 7)?,
    })
}

const PASSKEY_COLUMNS: &str = "credential_id, account_id, name, passkey, created_at, last_used_at";

fn passkey_row(r: &[Val]) -> Result<StoredPasskey> {
    Ok(StoredPasskey {
        credential_id: blob(r, 0)?,
        account_id: text(r, 1)?,
        name: text(r, 2)?,
        passkey: text(r, 3)?,
        created_at: int(r, 4)?,
        last_used_at: opt_int(r, 5)?,
    })
}

const SESSION_COLUMNS: &str = "id, token_hash, account_id, stage, host, source, created_at, \
     last_seen_at, expires_at, mfa_at, revoked_at";

fn session_row(r: &[Val]) -> Result<StoredSession> {
    Ok(StoredSession {
        id: text(r, 0)?,
        token_hash: hash32(r, 1)?,
        account_id: text(r, 2)?,
        stage: SessionStage::from_code(int(r, 3)?)?,
        host: opt_text(r, 4)?,
        source: text(r, 5)?,
        created_at: int(r, 6)?,
        last_seen_at: int(r, 7)?,
        expires_at: int(r, 8)?,
        mfa_at: opt_int(r, 9)?,
        revoked_at: opt_int(r, 10)?,
    })
}

fn session_params(s: &StoredSession) -> Vec<Val> {
    vec![
        (&s.id).into(),
        (&s.token_hash).into(),
        (&s.account_id).into(),
        s.stage.code().into(),
        s.host.as_ref().into(),
        (&s.source).into(),
        s.created_at.into(),
        s.last_seen_at.into(),
        s.expires_at.into(),
        s.mfa_at.into(),
        s.revoked_at.into(),
    ]
}

const INSERT_SESSION: &str = "INSERT INTO auth_sessions (id, token_hash, account_id, stage, host, \
     source, created_at, last_seen_at, expires_at, mfa_at, revoked_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const API_KEY_COLUMNS: &str = "id, key_hash, account_id, scopes, allowed_sources, created_at, \
     expires_at, revoked_at, last_used_at, pending";

fn api_key_row(r: &[Val]) -> Result<StoredApiKey> {
    Ok(StoredApiKey {
        id: text(r, 0)?,
        key_hash: hash32(r, 1)?,
        account_id: text(r, 2)?,
        scopes: text(r, 3)?,
        allowed_sources: text(r, 4)?,
        created_at: int(r, 5)?,
        expires_at: opt_int(r, 6)?,
        revoked_at: opt_int(r, 7)?,
        last_used_at: opt_int(r, 8)?,
        pending: int(r, 9)? != 0,
    })
}

const REQUEST_COLUMNS: &str = "id, kind, account_id, role, previous_role, api_key_id, \
     requested_by, created_at, expires_at, status, decided_by, decided_at";

fn request_row(r: &[Val]) -> Result<StoredAccessRequest> {
    Ok(StoredAccessRequest {
        id: text(r, 0)?,
        kind: RequestKind::from_code(int(r, 1)?)?,
        account_id: text(r, 2)?,
        role: opt_text(r, 3)?,
        previous_role: opt_text(r, 4)?,
        api_key_id: opt_text(r, 5)?,
        requested_by: opt_text(r, 6)?,
        created_at: int(r, 7)?,
        expires_at: int(r, 8)?,
        status: RequestStatus::from_code(int(r, 9)?)?,
        decided_by: opt_text(r, 10)?,
        decided_at: opt_int(r, 11)?,
    })
}

const BREAK_GLASS_COLUMNS: &str = "id, account_id, session_id, sealed_reason, dek_id, started_at, \
     expires_at, ended_at, reviewed_at, reviewed_by";

fn break_glass_row(r: &[Val]) -> Result<StoredBreakGlass> {
    Ok(StoredBreakGlass {
        id: text(r, 0)?,
        account_id: text(r, 1)?,
        session_id: text(r, 2)?,
        sealed_reason: blob(r, 3)?,
        dek: dek(r, 4)?,
        started_at: int(r, 5)?,
        expires_at: int(r, 6)?,
        ended_at: opt_int(r, 7)?,
        reviewed_at: opt_int(r, 8)?,
        reviewed_by: opt_text(r, 9)?,
    })
}

const DOCUMENT_COLUMNS: &str = "namespace, id, revision, dek_id, sealed, created_at, updated_at";

fn document_row(r: &[Val]) -> Result<StoredDocument> {
    let revision = int(r, 2)?;
    Ok(StoredDocument {
        namespace: text(r, 0)?,
        id: text(r, 1)?,
        revision: u64::try_from(revision)
            .map_err(|_| Error::Corrupt(format!("document revision {revision}")))?,
        dek: dek(r, 3)?,
        sealed: blob(r, 4)?,
        created_at: int(r, 5)?,
        updated_at: int(r, 6)?,
    })
}

pub(crate) fn one<T>(rows: Vec<Row>, f: impl Fn(&[Val]) -> Result<T>) -> Result<Option<T>> {
    rows.first().map(|r| f(r)).transpose()
}

pub(crate) fn all<T>(rows: Vec<Row>, f: impl Fn(&[Val]) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(|r| f(r)).collect()
}

// ---------------------------------------------------------------------------
// The store.

/// [`AuthStore`] on SQLite or PostgreSQL, in the vault's own database.
pub struct SqlAuthStore {
    db: Db,
}

impl std::fmt::Debug for SqlAuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.db {
            Db::Sqlite(db) => f
                .debug_struct("SqlAuthStore")
                .field("sqlite", &db.path)
                .finish(),
            // The URL may carry a password: never print it.
            Db::Postgres(db) => f
                .debug_struct("SqlAuthStore")
                .field("postgres_schema", &db.schema)
                .finish_non_exhaustive(),
        }
    }
}

impl SqlAuthStore {
    /// Opens the identity tables of the SQLite vault database at `path`
    /// (migrating it, as [`SqliteStore::open`] does, if it is older).
    pub fn open_sqlite(path: &Path) -> Result<Self> {
        Ok(Self {
            db: Db::open_sqlite(path)?,
        })
    }

    /// Opens the identity tables of the vault in PostgreSQL `schema`
    /// (migrating it, as [`PgStore::open`] does, if it is older).
    pub fn open_postgres(url: &str, schema: &str) -> Result<Self> {
        Ok(Self {
            db: Db::open_postgres(url, schema)?,
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> crate::Backend {
        self.db.backend()
    }

    fn read<T>(&self, f: impl FnOnce(&mut dyn Conn) -> Result<T>) -> Result<T> {
        self.db.read(f)
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn Conn) -> Result<T>) -> Result<T> {
        self.db.write(f)
    }

    fn exec(&self, sql: &str, params: &[Val]) -> Result<u64> {
        self.read(|c| c.exec(sql, params))
    }

    fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        self.read(|c| c.query(sql, params))
    }
}

impl AuthStore for SqlAuthStore {
    fn create_account(&self, a: &StoredAccount) -> Result<bool> {
        let n = self.exec(
            "INSERT INTO auth_accounts (id, username, kind, role, disabled, password_hash, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            &[
                (&a.id).into(),
                (&a.username).into(),
                a.kind.code().into(),
                (&a.role).into(),
                i64::from(a.disabled).into(),
                a.password_hash.as_ref().into(),
                a.created_at.into(),
                a.updated_at.into(),
            ],
        )?;
        Ok(n == 1)
    }

    fn account(&self, id: &str) -> Result<Option<StoredAccount>> {
        one(
            self.query(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts WHERE id = ?"),
                &[id.into()],
            )?,
            account_row,
        )
    }

    fn account_by_username(&self, username: &str) -> Result<Option<StoredAccount>> {
        one(
            self.query(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts WHERE username = ?"),
                &[username.into()],
            )?,
            account_row,
        )
    }

    fn accounts(&self) -> Result<Vec<StoredAccount>> {
        all(
            self.query(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts ORDER BY username"),
                &[],
            )?,
            account_row,
        )
    }

    fn update_account(&self, id: &str, update: &AccountUpdate, at: i64) -> Result<bool> {
        let (sql, value): (&str, Val) = match update {
            AccountUpdate::Role(role) => (
                "UPDATE auth_accounts SET role = ?, updated_at = ? WHERE id = ?",
                role.into(),
            ),
            AccountUpdate::Disabled(d) => (
                "UPDATE auth_accounts SET disabled = ?, updated_at = ? WHERE id = ?",
                i64::from(*d).into(),
            ),
            AccountUpdate::PasswordHash(h) => (
                "UPDATE auth_accounts SET password_hash = ?, updated_at = ? WHERE id = ?",
                h.into(),
            ),
        };
        Ok(self.exec(sql, &[value, at.into(), id.into()])? == 1)
    }

    fn set_totp(&self, account: &str, t: &StoredTotp) -> Result<()> {
        let last = t.last_step.map(u64_val).transpose()?;
        self.exec(
            "INSERT INTO auth_totp (account_id, sealed_secret, dek_id, last_step, created_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET \
             sealed_secret = excluded.sealed_secret, dek_id = excluded.dek_id, \
             last_step = excluded.last_step, created_at = excluded.created_at",
            &[
                account.into(),
                (&t.sealed_secret).into(),
                i64::from(t.dek.0).into(),
                last.unwrap_or(Val::Null),
                t.created_at.into(),
            ],
        )
        .map(drop)
    }

    fn totp(&self, account: &str) -> Result<Option<StoredTotp>> {
        one(
            self.query(
                "SELECT sealed_secret, dek_id, last_step, created_at FROM auth_totp \
                 WHERE account_id = ?",
                &[account.into()],
            )?,
            |r| {
                Ok(StoredTotp {
                    sealed_secret: blob(r, 0)?,
                    dek: dek(r, 1)?,
                    last_step: step(r, 2)?,
                    created_at: int(r, 3)?,
                })
            },
        )
    }

    fn advance_totp_step(&self, account: &str, step: u64) -> Result<bool> {
        let step = u64_val(step)?;
        Ok(self.exec(
            "UPDATE auth_totp SET last_step = ? WHERE account_id = ? \
             AND (last_step IS NULL OR last_step < ?)",
            &[step.clone(), account.into(), step],
        )? == 1)
    }

    fn add_passkey(&self, p: &StoredPasskey) -> Result<bool> {
        Ok(self.exec(
            "INSERT INTO auth_passkeys (credential_id, account_id, name, passkey, created_at, \
             last_used_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            &[
                (&p.credential_id).into(),
                (&p.account_id).into(),
                (&p.name).into(),
                (&p.passkey).into(),
                p.created_at.into(),
                p.last_used_at.into(),
            ],
        )? == 1)
    }

    fn passkeys(&self, account: &str) -> Result<Vec<StoredPasskey>> {
        all(
            self.query(
                &format!(
                    "SELECT {PASSKEY_COLUMNS} FROM auth_passkeys WHERE account_id = ? \
                     ORDER BY created_at, credential_id"
                ),
                &[account.into()],
            )?,
            passkey_row,
        )
    }

    fn update_passkey(
        &self,
        account: &str,
        credential_id: &[u8],
        passkey: &str,
        used_at: i64,
    ) -> Result<bool> {
        Ok(self.exec(
            "UPDATE auth_passkeys SET passkey = ?, last_used_at = ? \
             WHERE account_id = ? AND credential_id = ?",
            &[
                passkey.into(),
                used_at.into(),
                account.into(),
                credential_id.into(),
            ],
        )? == 1)
    }

    fn delete_passkey(&self, account: &str, credential_id: &[u8]) -> Result<bool> {
        Ok(self.exec(
            "DELETE FROM auth_passkeys WHERE account_id = ? AND credential_id = ?",
            &[account.into(), credential_id.into()],
        )? == 1)
    }

    fn replace_recovery_codes(&self, account: &str, hashes: &[[u8; 32]], at: i64) -> Result<()> {
        self.write(|c| {
            c.exec(
                "DELETE FROM auth_recovery_codes WHERE account_id = ?",
                &[account.into()],
            )?;
            for h in hashes {
                c.exec(
                    "INSERT INTO auth_recovery_codes (account_id, code_hash, created_at, used_at) \
                     VALUES (?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                    &[account.into(), h.into(), at.into()],
                )?;
            }
            Ok(())
        })
    }

    fn consume_recovery_code(&self, account: &str, hash: &[u8; 32], at: i64) -> Result<bool> {
        Ok(self.exec(
            "UPDATE auth_recovery_codes SET used_at = ? \
             WHERE account_id = ? AND code_hash = ? AND used_at IS NULL",
            &[at.into(), account.into(), hash.into()],
        )? == 1)
    }

    fn recovery_codes_left(&self, account: &str) -> Result<u32> {
        let rows = self.query(
            "SELECT COUNT(*) FROM auth_recovery_codes WHERE account_id = ? AND used_at IS NULL",
            &[account.into()],
        )?;
        let n = rows.first().map(|r| int(r, 0)).transpose()?.unwrap_or(0);
        u32::try_from(n).map_err(|_| Error::Corrupt(format!("{n} recovery codes")))
    }

    fn clear_second_factors(&self, account: &str) -> Result<()> {
        self.write(|c| {
            for sql in [
                "DELETE FROM auth_totp WHERE account_id = ?",
                "DELETE FROM auth_passkeys WHERE account_id = ?",
                "DELETE FROM auth_recovery_codes WHERE account_id = ?",
                "DELETE FROM auth_ceremonies WHERE account_id = ?",
            ] {
                c.exec(sql, &[account.into()])?;
            }
            Ok(())
        })
    }

    fn put_ceremony(&self, cer: &StoredCeremony) -> Result<()> {
        self.exec(
            "INSERT INTO auth_ceremonies (id, account_id, purpose, state, expires_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             account_id = excluded.account_id, purpose = excluded.purpose, \
             state = excluded.state, expires_at = excluded.expires_at",
            &[
                (&cer.id).into(),
                (&cer.account_id).into(),
                (&cer.purpose).into(),
                (&cer.state).into(),
                cer.expires_at.into(),
            ],
        )
        .map(drop)
    }

    fn take_ceremony(&self, id: &str, purpose: &str, now: i64) -> Result<Option<StoredCeremony>> {
        self.write(|c| {
            let rows = c.query(
                "SELECT id, account_id, purpose, state, expires_at FROM auth_ceremonies \
                 WHERE id = ?",
                &[id.into()],
            )?;
            let found = one(rows, |r| {
                Ok(StoredCeremony {
                    id: text(r, 0)?,
                    account_id: text(r, 1)?,
                    purpose: text(r, 2)?,
                    state: text(r, 3)?,
                    expires_at: int(r, 4)?,
                })
            })?;
            let Some(found) = found else {
                return Ok(None);
            };
            if found.purpose != purpose {
                // Another ceremony's state: leave it alone.
                return Ok(None);
            }
            c.exec("DELETE FROM auth_ceremonies WHERE id = ?", &[id.into()])?;
            Ok((found.expires_at > now).then_some(found))
        })
    }

    fn insert_session(&self, s: &StoredSession) -> Result<()> {
        self.exec(INSERT_SESSION, &session_params(s)).map(drop)
    }

    fn session_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<StoredSession>> {
        one(
            self.query(
                &format!("SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE token_hash = ?"),
                &[token_hash.into()],
            )?,
            session_row,
        )
    }

    fn request_context(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<RequestContext>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let cols = |alias: &str, columns: &str| {
                columns
                    .split(',')
                    .map(|c| format!("{alias}.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "SELECT {}, {}, {} FROM auth_sessions s \
                 LEFT JOIN auth_accounts a ON a.id = s.account_id \
                 LEFT JOIN auth_break_glass g ON g.id = (SELECT id FROM auth_break_glass \
                   WHERE session_id = s.id AND ended_at IS NULL AND expires_at > ? \
                   ORDER BY started_at DESC, id LIMIT 1) \
                 WHERE s.token_hash = ?",
                cols("s", SESSION_COLUMNS),
                cols("a", ACCOUNT_COLUMNS),
                cols("g", BREAK_GLASS_COLUMNS)
            )
        });
        let rows = self.query(&SQL, &[now.into(), token_hash.into()])?;
        one(rows, |r| {
            let (s, rest) = r.split_at(SESSION_COLUMNS.split(',').count());
            let (a, g) = rest.split_at(ACCOUNT_COLUMNS.split(',').count());
            // A LEFT JOIN that found nothing gives NULL ids.
            let present = |part: &[Val]| !matches!(part.first(), Some(Val::Null) | None);
            Ok(RequestContext {
                session: session_row(s)?,
                account: present(a).then(|| account_row(a)).transpose()?,
                break_glass: present(g).then(|| break_glass_row(g)).transpose()?,
            })
        })
    }

    fn session(&self, id: &str) -> Result<Option<StoredSession>> {
        one(
            self.query(
                &format!("SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE id = ?"),
                &[id.into()],
            )?,
            session_row,
        )
    }

    fn replace_session(&self, old_id: &str, new: &StoredSession) -> Result<bool> {
        self.write(|c| {
            let gone = c.exec(
                "DELETE FROM auth_sessions WHERE id = ? AND revoked_at IS NULL",
                &[old_id.into()],
            )?;
            if gone != 1 {
                return Ok(false);
            }
            c.exec(INSERT_SESSION, &session_params(new))?;
            Ok(true)
        })
    }

    fn touch_session(&self, id: &str, at: i64, older_than: i64) -> Result<()> {
        self.exec(
            "UPDATE auth_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
            &[at.into(), id.into(), older_than.into()],
        )
        .map(drop)
    }

    fn record_session_mfa(&self, id: &str, at: i64) -> Result<bool> {
        Ok(self.exec(
            "UPDATE auth_sessions SET mfa_at = ?, last_seen_at = ? \
             WHERE id = ? AND revoked_at IS NULL",
            &[at.into(), at.into(), id.into()],
        )? == 1)
    }

    fn expire_session_mfa(&self, id: &str) -> Result<bool> {
        Ok(self.exec(
            "UPDATE auth_sessions SET mfa_at = 0 WHERE id = ? AND revoked_at IS NULL",
            &[id.into()],
        )? == 1)
    }

    fn sessions(&self, filter: &SessionFilter) -> Result<Vec<StoredSession>> {
        let account: Val = filter.account.as_ref().into();
        let host: Val = filter.host.as_ref().into();
        let live: Val = filter.live_at.into();
        all(
            self.query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM auth_sessions \
                     WHERE (CAST(? AS TEXT) IS NULL OR account_id = ?) \
                     AND (CAST(? AS TEXT) IS NULL OR host = ?) \
                     AND (CAST(? AS BIGINT) IS NULL OR (revoked_at IS NULL AND expires_at > ?)) \
                     ORDER BY created_at DESC, id"
                ),
                &[
                    account.clone(),
                    account,
                    host.clone(),
                    host,
                    live.clone(),
                    live,
                ],
            )?,
            session_row,
        )
    }

    fn revoke_sessions(&self, which: Revocation<'_>, at: i64) -> Result<u64> {
        let (sql, key) = match which {
            Revocation::Session(id) => (
                "UPDATE auth_sessions SET revoked_at = ? WHERE revoked_at IS NULL AND id = ?",
                id,
            ),
            Revocation::Account(a) => (
                "UPDATE auth_sessions SET revoked_at = ? WHERE revoked_at IS NULL AND account_id = ?",
                a,
            ),
            Revocation::Host(h) => (
                "UPDATE auth_sessions SET revoked_at = ? WHERE revoked_at IS NULL AND host = ?",
                h,
            ),
        };
        self.exec(sql, &[at.into(), key.into()])
    }

    fn purge_sessions(&self, before: i64) -> Result<u64> {
        self.write(|c| {
            c.exec(
                "DELETE FROM auth_ceremonies WHERE expires_at < ?",
                &[before.into()],
            )?;
            c.exec(
                "DELETE FROM auth_sessions WHERE expires_at < ? OR revoked_at < ?",
                &[before.into(), before.into()],
            )
        })
    }

    fn insert_api_key(&self, k: &StoredApiKey) -> Result<()> {
        self.exec(
            "INSERT INTO auth_api_keys (id, key_hash, account_id, scopes, allowed_sources, \
             created_at, expires_at, revoked_at, last_used_at, pending) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                (&k.id).into(),
                (&k.key_hash).into(),
                (&k.account_id).into(),
                (&k.scopes).into(),
                (&k.allowed_sources).into(),
                k.created_at.into(),
                k.expires_at.into(),
                k.revoked_at.into(),
                k.last_used_at.into(),
                i64::from(k.pending).into(),
            ],
        )
        .map(drop)
    }

    fn api_key_by_hash(&self, key_hash: &[u8; 32]) -> Result<Option<StoredApiKey>> {
        one(
            self.query(
                &format!("SELECT {API_KEY_COLUMNS} FROM auth_api_keys WHERE key_hash = ?"),
                &[key_hash.into()],
            )?,
            api_key_row,
        )
    }

    fn api_keys(&self, account: Option<&str>) -> Result<Vec<StoredApiKey>> {
        let account: Val = account.into();
        all(
            self.query(
                &format!(
                    "SELECT {API_KEY_COLUMNS} FROM auth_api_keys \
                     WHERE (CAST(? AS TEXT) IS NULL OR account_id = ?) ORDER BY created_at, id"
                ),
                &[account.clone(), account],
            )?,
            api_key_row,
        )
    }

    fn revoke_api_key(&self, id: &str, at: i64) -> Result<bool> {
        Ok(self.exec(
            "UPDATE auth_api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            &[at.into(), id.into()],
        )? == 1)
    }

    fn touch_api_key(&self, id: &str, at: i64, older_than: i64) -> Result<()> {
        self.exec(
            "UPDATE auth_api_keys SET last_used_at = ? WHERE id = ? \
             AND (last_used_at IS NULL OR last_used_at < ?)",
            &[at.into(), id.into(), older_than.into()],
        )
        .map(drop)
    }

    fn throttle(&self, scope: ThrottleScope, subject: &[u8]) -> Result<Option<ThrottleState>> {
        one(
            self.query(
                "SELECT failures, last_failure_at FROM auth_throttle \
                 WHERE scope = ? AND subject = ?",
                &[scope.code().into(), subject.into()],
            )?,
            throttle_row,
        )
    }

    fn admit_attempt(
        &self,
        subjects: &[ThrottleSubject<'_>],
        at: i64,
        admit: &mut dyn FnMut(&[ThrottleState]) -> bool,
    ) -> Result<bool> {
        self.write(|c| {
            let mut states = Vec::with_capacity(subjects.len());
            for s in subjects {
                // Make the row exist and take it: PostgreSQL holds the row
                // lock of the upsert until commit (a concurrent attempt
                // waits here, then reads what this one wrote); SQLite's
                // IMMEDIATE transaction holds the database's write lock.
                c.exec(
                    "INSERT INTO auth_throttle (scope, subject, failures, last_failure_at) \
                     VALUES (?, ?, 0, ?) ON CONFLICT (scope, subject) DO UPDATE SET \
                     failures = auth_throttle.failures",
                    &[s.scope.code().into(), s.subject.into(), at.into()],
                )?;
                let rows = c.query(
                    "SELECT failures, last_failure_at FROM auth_throttle \
                     WHERE scope = ? AND subject = ?",
                    &[s.scope.code().into(), s.subject.into()],
                )?;
                let mut st = one(rows, throttle_row)?
                    .ok_or_else(|| Error::Corrupt("throttle row vanished".into()))?;
                if s.restart_before.is_some_and(|r| st.last_failure_at < r) {
                    st.failures = 0;
                }
                states.push(st);
            }
            if !admit(&states) {
                return Ok(false);
            }
            for (s, st) in subjects.iter().zip(&states) {
                c.exec(
                    "UPDATE auth_throttle SET failures = ?, last_failure_at = ? \
                     WHERE scope = ? AND subject = ?",
                    &[
                        i64::from(st.failures.saturating_add(1)).into(),
                        at.into(),
                        s.scope.code().into(),
                        s.subject.into(),
                    ],
                )?;
            }
            Ok(true)
        })
    }

    fn refund_attempt(&self, scope: ThrottleScope, subject: &[u8]) -> Result<()> {
        self.exec(
            "UPDATE auth_throttle SET failures = failures - 1 \
             WHERE scope = ? AND subject = ? AND failures > 0",
            &[scope.code().into(), subject.into()],
        )
        .map(drop)
    }

    fn clear_failures(&self, scope: ThrottleScope, subject: &[u8]) -> Result<()> {
        self.exec(
            "DELETE FROM auth_throttle WHERE scope = ? AND subject = ?",
            &[scope.code().into(), subject.into()],
        )
        .map(drop)
    }

    fn purge_failures(&self, before: i64, keep_from: u32) -> Result<u64> {
        self.exec(
            "DELETE FROM auth_throttle WHERE last_failure_at < ? AND failures < ?",
            &[before.into(), i64::from(keep_from).into()],
        )
    }

    fn insert_break_glass(&self, g: &StoredBreakGlass) -> Result<()> {
        self.exec(
            "INSERT INTO auth_break_glass (id, account_id, session_id, sealed_reason, dek_id, \
             started_at, expires_at, ended_at, reviewed_at, reviewed_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                (&g.id).into(),
                (&g.account_id).into(),
                (&g.session_id).into(),
                (&g.sealed_reason).into(),
                i64::from(g.dek.0).into(),
                g.started_at.into(),
                g.expires_at.into(),
                g.ended_at.into(),
                g.reviewed_at.into(),
                g.reviewed_by.as_ref().into(),
            ],
        )
        .map(drop)
    }

    fn active_break_glass(&self, session_id: &str, now: i64) -> Result<Option<StoredBreakGlass>> {
        one(
            self.query(
                &format!(
                    "SELECT {BREAK_GLASS_COLUMNS} FROM auth_break_glass \
                     WHERE session_id = ? AND ended_at IS NULL AND expires_at > ? \
                     ORDER BY started_at DESC, id LIMIT 1"
                ),
                &[session_id.into(), now.into()],
            )?,
            break_glass_row,
        )
    }

    fn break_glass_grants(&self, unreviewed_only: bool) -> Result<Vec<StoredBreakGlass>> {
        all(
            self.query(
                &format!(
                    "SELECT {BREAK_GLASS_COLUMNS} FROM auth_break_glass \
                     WHERE (CAST(? AS BIGINT) = 0 OR reviewed_at IS NULL) ORDER BY started_at, id"
                ),
                &[i64::from(unreviewed_only).into()],
            )?,
            break_glass_row,
        )
    }

    fn review_break_glass(&self, id: &str, reviewer: &str, at: i64) -> Result<bool> {
        Ok(self.exec(
            "UPDATE auth_break_glass SET reviewed_at = ?, reviewed_by = ? \
             WHERE id = ? AND reviewed_at IS NULL",
            &[at.into(), reviewer.into(), id.into()],
        )? == 1)
    }

    fn end_break_glass(&self, session_id: &str, at: i64) -> Result<u64> {
        self.exec(
            "UPDATE auth_break_glass SET ended_at = ? \
             WHERE session_id = ? AND ended_at IS NULL AND expires_at > ?",
            &[at.into(), session_id.into(), at.into()],
        )
    }

    fn reset_account(&self, id: &str, role: &str, at: i64) -> Result<bool> {
        self.write(|c| {
            let n = c.exec(
                "UPDATE auth_accounts SET password_hash = NULL, role = ?, updated_at = ? \
                 WHERE id = ?",
                &[role.into(), at.into(), id.into()],
            )?;
            if n != 1 {
                return Ok(false);
            }
            for sql in [
                "DELETE FROM auth_totp WHERE account_id = ?",
                "DELETE FROM auth_passkeys WHERE account_id = ?",
                "DELETE FROM auth_recovery_codes WHERE account_id = ?",
                "DELETE FROM auth_ceremonies WHERE account_id = ?",
            ] {
                c.exec(sql, &[id.into()])?;
            }
            c.exec(
                "UPDATE auth_sessions SET revoked_at = ? WHERE revoked_at IS NULL AND account_id = ?",
                &[at.into(), id.into()],
            )?;
            Ok(true)
        })
    }

    fn set_enrolment_code(&self, code: &StoredEnrolmentCode) -> Result<()> {
        self.exec(
            "INSERT INTO auth_enrolment_codes (account_id, code_hash, issued_by, created_at, \
             expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET \
             code_hash = excluded.code_hash, issued_by = excluded.issued_by, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
            &[
                (&code.account_id).into(),
                (&code.code_hash).into(),
                code.issued_by.as_ref().into(),
                code.created_at.into(),
                code.expires_at.into(),
            ],
        )
        .map(drop)
    }

    fn enrolment_code(&self, account: &str) -> Result<Option<StoredEnrolmentCode>> {
        one(
            self.query(
                "SELECT account_id, code_hash, issued_by, created_at, expires_at \
                 FROM auth_enrolment_codes WHERE account_id = ?",
                &[account.into()],
            )?,
            |r| {
                Ok(StoredEnrolmentCode {
                    account_id: text(r, 0)?,
                    code_hash: hash32(r, 1)?,
                    issued_by: opt_text(r, 2)?,
                    created_at: int(r, 3)?,
                    expires_at: int(r, 4)?,
                })
            },
        )
    }

    fn take_enrolment_code(&self, account: &str, code_hash: &[u8; 32], now: i64) -> Result<bool> {
        Ok(self.exec(
            "DELETE FROM auth_enrolment_codes WHERE account_id = ? AND code_hash = ? \
             AND expires_at > ?",
            &[account.into(), code_hash.into(), now.into()],
        )? == 1)
    }

    fn insert_access_request(&self, r: &StoredAccessRequest) -> Result<()> {
        self.write(|c| {
            match r.kind {
                RequestKind::Role => c.exec(
                    "UPDATE auth_access_requests SET status = ?, decided_at = ? \
                     WHERE kind = ? AND account_id = ? AND status = ?",
                    &[
                        RequestStatus::Superseded.code().into(),
                        r.created_at.into(),
                        RequestKind::Role.code().into(),
                        (&r.account_id).into(),
                        RequestStatus::Pending.code().into(),
                    ],
                )?,
                RequestKind::ApiKey => c.exec(
                    "UPDATE auth_access_requests SET status = ?, decided_at = ? \
                     WHERE kind = ? AND api_key_id = ? AND status = ?",
                    &[
                        RequestStatus::Superseded.code().into(),
                        r.created_at.into(),
                        RequestKind::ApiKey.code().into(),
                        r.api_key_id.as_ref().into(),
                        RequestStatus::Pending.code().into(),
                    ],
                )?,
            };
            c.exec(
                &format!(
                    "INSERT INTO auth_access_requests ({REQUEST_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                &[
                    (&r.id).into(),
                    r.kind.code().into(),
                    (&r.account_id).into(),
                    r.role.as_ref().into(),
                    r.previous_role.as_ref().into(),
                    r.api_key_id.as_ref().into(),
                    r.requested_by.as_ref().into(),
                    r.created_at.into(),
                    r.expires_at.into(),
                    r.status.code().into(),
                    r.decided_by.as_ref().into(),
                    r.decided_at.into(),
                ],
            )
            .map(drop)
        })
    }

    fn access_request(&self, id: &str) -> Result<Option<StoredAccessRequest>> {
        one(
            self.query(
                &format!("SELECT {REQUEST_COLUMNS} FROM auth_access_requests WHERE id = ?"),
                &[id.into()],
            )?,
            request_row,
        )
    }

    fn access_requests(&self, pending_at: Option<i64>) -> Result<Vec<StoredAccessRequest>> {
        let at: Val = pending_at.into();
        all(
            self.query(
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM auth_access_requests \
                     WHERE CAST(? AS BIGINT) IS NULL OR (status = 0 AND expires_at > ?) \
                     ORDER BY created_at, id"
                ),
                &[at.clone(), at],
            )?,
            request_row,
        )
    }

    fn decide_access_request(
        &self,
        id: &str,
        approve: bool,
        by: Option<&str>,
        at: i64,
    ) -> Result<bool> {
        self.write(|c| {
            let status = if approve {
                RequestStatus::Approved
            } else {
                RequestStatus::Refused
            };
            let n = c.exec(
                "UPDATE auth_access_requests SET status = ?, decided_by = ?, decided_at = ? \
                 WHERE id = ? AND status = ? AND expires_at > ?",
                &[
                    status.code().into(),
                    by.into(),
                    at.into(),
                    id.into(),
                    RequestStatus::Pending.code().into(),
                    at.into(),
                ],
            )?;
            if n != 1 {
                return Ok(false);
            }
            let rows = c.query(
                &format!("SELECT {REQUEST_COLUMNS} FROM auth_access_requests WHERE id = ?"),
                &[id.into()],
            )?;
            let r = one(rows, request_row)?
                .ok_or_else(|| Error::Corrupt("access request vanished".into()))?;
            match (r.kind, approve) {
                (RequestKind::Role, true) => {
                    let role = r
                        .role
                        .ok_or_else(|| Error::Corrupt(format!("role request {id} has no role")))?;
                    c.exec(
                        "UPDATE auth_accounts SET role = ?, updated_at = ? WHERE id = ?",
                        &[(&role).into(), at.into(), (&r.account_id).into()],
                    )?;
                }
                (RequestKind::Role, false) => {}
                (RequestKind::ApiKey, true) => {
                    c.exec(
                        "UPDATE auth_api_keys SET pending = 0 WHERE id = ?",
                        &[r.api_key_id.as_ref().into()],
                    )?;
                }
                (RequestKind::ApiKey, false) => {
                    c.exec(
                        "UPDATE auth_api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                        &[at.into(), r.api_key_id.as_ref().into()],
                    )?;
                }
            }
            Ok(true)
        })
    }

    fn supersede_role_requests(&self, account: &str, at: i64) -> Result<u64> {
        self.exec(
            "UPDATE auth_access_requests SET status = ?, decided_at = ? \
             WHERE kind = ? AND account_id = ? AND status = ?",
            &[
                RequestStatus::Superseded.code().into(),
                at.into(),
                RequestKind::Role.code().into(),
                account.into(),
                RequestStatus::Pending.code().into(),
            ],
        )
    }

    fn setting(&self, name: &str) -> Result<Option<String>> {
        one(
            self.query(
                "SELECT value FROM auth_settings WHERE name = ?",
                &[name.into()],
            )?,
            |r| text(r, 0),
        )
    }

    fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO auth_settings (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[name.into(), value.into()],
        )
        .map(drop)
    }

    fn sealed_document(&self, namespace: &str, id: &str) -> Result<Option<StoredDocument>> {
        one(
            self.query(
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM sealed_documents WHERE namespace = ? AND id = ?"
                ),
                &[namespace.into(), id.into()],
            )?,
            document_row,
        )
    }

    fn sealed_documents(&self, namespace: &str) -> Result<Vec<StoredDocument>> {
        all(
            self.query(
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM sealed_documents WHERE namespace = ? ORDER BY id"
                ),
                &[namespace.into()],
            )?,
            document_row,
        )
    }

    fn put_sealed_document(&self, d: &StoredDocument) -> Result<bool> {
        let n = match d.revision {
            0 => return Err(Error::Invalid("a document's first revision is 1".into())),
            1 => self.exec(
                "INSERT INTO sealed_documents (namespace, id, revision, dek_id, sealed, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                &[
                    (&d.namespace).into(),
                    (&d.id).into(),
                    u64_val(d.revision)?,
                    i64::from(d.dek.0).into(),
                    (&d.sealed).into(),
                    d.created_at.into(),
                    d.updated_at.into(),
                ],
            )?,
            r => self.exec(
                "UPDATE sealed_documents SET revision = ?, dek_id = ?, sealed = ?, \
                 updated_at = ? WHERE namespace = ? AND id = ? AND revision = ?",
                &[
                    u64_val(r)?,
                    i64::from(d.dek.0).into(),
                    (&d.sealed).into(),
                    d.updated_at.into(),
                    (&d.namespace).into(),
                    (&d.id).into(),
                    u64_val(r - 1)?,
                ],
            )?,
        };
        Ok(n == 1)
    }

    fn sealed_dek_usage(&self) -> Result<Vec<(DekId, u64)>> {
        let mut usage = std::collections::BTreeMap::<u32, u64>::new();
        for sql in [
            "SELECT dek_id, COUNT(*) FROM auth_totp GROUP BY dek_id",
            "SELECT dek_id, COUNT(*) FROM auth_break_glass GROUP BY dek_id",
            "SELECT dek_id, COUNT(*) FROM sealed_documents GROUP BY dek_id",
        ] {
            for r in self.query(sql, &[])? {
                let d = dek(&r, 0)?;
                *usage.entry(d.0).or_default() += int(&r, 1)? as u64;
            }
        }
        Ok(usage.into_iter().map(|(d, n)| (DekId(d), n)).collect())
    }
}

fn throttle_row(r: &[Val]) -> Result<ThrottleState> {
    let n = int(r, 0)?;
    Ok(ThrottleState {
        failures: u32::try_from(n).unwrap_or(u32::MAX),
        last_failure_at: int(r, 1)?,
    })
}
