//! Identity and access for rxvault: who may do what, and proof of who it
//! is. No HTTP here: the server calls this crate's [`Auth`] facade and maps
//! its [`Error`]s to status codes by the rule below.
//!
//! # What it enforces
//! - **One permission table** ([`permissions`]): role → actions (with
//!   limits such as "fills dated today") and role × record kind → the
//!   [`CategorySet`](rxvault_model::CategorySet) the vault may decrypt.
//!   Masking is done by the vault not decrypting, so a category a role may
//!   not see never exists in that request's memory.
//! - **Passwords** ([`policy`]): Argon2id, 8–256 characters, a bundled
//!   breached-password blocklist, no composition rules, no rotation.
//! - **MFA for every person**: TOTP (RFC 6238, replay-proof), WebAuthn
//!   passkeys, single-use recovery codes. After the password, a login is a
//!   [`Session<PendingMfa>`] (a second factor is due) or a
//!   [`Session<Enrolling>`] (the account has none: it may only enrol one);
//!   only [`Session<Authenticated>`] carries a [`Principal`], and only a
//!   principal can be authorised. The types make "forgot to check MFA"
//!   impossible to write.
//! - **Sessions** ([`session`]): random tokens stored as hashes, idle (30
//!   min) and absolute (12 h) timeouts from the vault's
//!   `Clock`, revocation per session, user and host,
//!   each bound to its source address and host.
//! - **Throttling** ([`throttle`]): per login name and per source address,
//!   exponential backoff, lockout at 20 consecutive failures; unknown users
//!   are throttled, locked and timed exactly like real ones.
//! - **Step-up**: bulk export, key operations, user administration,
//!   approvals and break-glass need a second-factor check in the last 5
//!   minutes.
//! - **Break-glass** ([`break_glass`]): a typed reason, one hour, read-only
//!   access to whole charts, flagged for the privacy officer.
//! - **Service accounts** ([`admin`]): scoped API keys, no interactive
//!   login, optional IP allow-lists ([`cidr`]).
//! - **Its own audit trail** ([`trail`]): every sign-in step, lockout,
//!   logout, administrative act and break-glass is recorded by the function
//!   here that performs it, after it, with its real outcome and (for a
//!   failed sign-in) the reason the client is not told, through the
//!   [`rxvault_audit::Sink`] it was built with. Callers pass the request's
//!   [`Client`] and write no entries of their own.
//! - **Separation of duties** ([`duties`]): no one sets a person's
//!   password or second factor (a one-time enrolment code lets the person
//!   set their own), and a role that reads charts or approves, or an API
//!   key that reads charts, needs a second person's approval.
//!
//! # Example
//! ```no_run
//! # fn example(vault: std::sync::Arc<rxvault_vault::Vault>) -> Result<(), Box<dyn std::error::Error>> {
//! use rxvault_auth::{Action, Auth, AuthConfig, Client, Login};
//! use rxvault_crypto::Password;
//! let auth = Auth::new(
//!     vault.clone(),           // its keys
//!     vault.auth_store()?,     // its identity store
//!     vault.clone(),           // its audit log
//!     vault.clock().clone(),
//!     AuthConfig::default(),
//! )?;
//! let source = "192.0.2.10".parse()?;
//! let client = Client::at(source).user_agent("rxvault-desk/1.2");
//! let Login::SecondFactor(pending) =
//!     auth.login_password("pat", &Password::new("correct horse battery".into()), &client)?
//! else {
//!     return Ok(()); // no second factor yet: enrol one (Login::Enrol)
//! };
//! let session = auth.verify_totp(pending, "123456")?;
//! let token = session.token().clone(); // hand to the client
//! // ... on each later request:
//! let principal = auth.authenticate(&token, source, None)?;
//! let access = auth.authorize(&principal, Action::PatientRead)?;
//! let _categories = principal.categories(rxvault_model::RecordKind::Patient);
//! # let _ = access; Ok(()) }
//! ```
//!
//! # Errors and HTTP status codes
//! Every public function returns [`Error`]. The server maps them so that no
//! response tells an attacker whether a user name exists:
//!
//! | error | status | notes |
//! |---|---|---|
//! | [`Error::InvalidCredentials`] | 401 | the **one** answer for unknown user, wrong password, disabled or service account at the login form, wrong / replayed / stale TOTP code, spent or wrong recovery code, failed or tampered passkey assertion, bad API key or key used from outside its allow-list. Same body every time. |
//! | [`Error::Unauthenticated`] | 401 | no, unknown, expired (idle or absolute), revoked or wrong-stage token; token from another address or host. Same body every time; the client logs in again. |
//! | [`Error::StepUpRequired`] | 401 | with `WWW-Authenticate: Bearer error="insufficient_user_authentication"` (RFC 9470): present a second factor, then retry. |
//! | [`Error::Throttled`] | 429 | with `Retry-After`; applies to unknown names too. |
//! | [`Error::Locked`] | 423 | applies to unknown names too (they lock the same way), so it reveals nothing. |
//! | [`Error::Forbidden`] | 403 | authenticated, but the role or scopes do not allow the action (or separation of duties does not: approving one's own request, changing one's own role). |
//! | [`Error::WeakPassword`], [`Error::Invalid`] | 400 (or 422) | a request that can never succeed as sent. |
//! | [`Error::NotFound`] | 404 | administration only (a user, session, key or grant id); never from login. |
//! | [`Error::Conflict`] | 409 | user name taken, passkey already registered, access request already decided or expired. |
//! | [`Error::PasskeysDisabled`] | 404 | the server has no WebAuthn relying party configured. |
//! | [`Error::Store`], [`Error::Crypto`] | 500 (503 for a full disk) | logged server-side; the body says nothing more. |
//!
//! Timing follows the same rule: an unknown user name costs one Argon2id
//! verification (against [`rxvault_crypto::password::dummy_hash`]) like a
//! wrong password, and a throttled attempt is refused before any hashing
//! whether or not the name exists.
//!
//! # Layout
//! - [`permissions`]: roles, actions, scopes, the tables.
//! - [`policy`]: the password policy and blocklist.
//! - [`config`]: timeouts and limits.
//! - [`principal`]: who is asking, and what they may see.
//! - [`session`]: the login typestate, sessions, authentication,
//!   revocation.
//! - [`login`]: passwords, second factors, enrolment, step-up.
//! - [`passkey`]: WebAuthn ceremonies.
//! - [`throttle`]: failure counting and backoff.
//! - [`break_glass`]: emergency access.
//! - [`admin`]: user administration, service accounts and API keys.
//! - [`trail`]: what sign-ins record in the audit log (the [`Client`]
//!   a caller passes in, methods and failure reasons).
//! - [`duties`]: enrolment codes, access requests and their approval,
//!   single-operator mode.
//! - [`cidr`]: IP allow-lists.
#![deny(missing_docs)]

pub mod admin;
pub mod break_glass;
pub mod cidr;
pub mod config;
pub mod duties;
pub mod login;
pub mod passkey;
pub mod permissions;
pub mod policy;
pub mod principal;
pub mod session;
pub mod throttle;
pub mod trail;

pub use admin::{Admin, ApiKeyInfo, IssuedApiKey, KeyHolder, UserInfo};
pub use break_glass::{BreakGlassGrant, Coding};
pub use config::{AuthConfig, ThrottleConfig, WebauthnConfig};
pub use duties::{
    AccessRequest, Approver, EnrolmentCode, Grant, NewPerson, Reenrolment, RoleChange,
};
pub use login::{RecoveryCodes, TotpEnrolment};
pub use permissions::{Action, Constraint, Role, Scope};
pub use principal::{Access, Actor, HostId, Principal, SessionId, UserId};
pub use session::{
    Authenticated, Enrolling, Factors, Login, PendingMfa, RevokeTarget, Session, SessionInfo,
};
pub use trail::{Client, Failure, Method};

use rxvault_model::{Clock, Timestamp};
use rxvault_store::auth::AuthStore;
use std::sync::Arc;

/// Errors of identity and access. See the crate documentation for how each
/// maps to an HTTP status. None carries a password, code, token, secret or
/// PHI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The credentials presented are not accepted. Deliberately
    /// uninformative: unknown user, wrong password, wrong code, bad key all
    /// look the same.
    #[error("authentication failed")]
    InvalidCredentials,
    /// No valid session: missing, unknown, expired, revoked, or presented
    /// from another address or host.
    #[error("not authenticated (log in again)")]
    Unauthenticated,
    /// Too many recent failures for this login name or source address.
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    Throttled {
        /// Seconds until the next attempt is considered.
        retry_after_secs: u64,
    },
    /// Too many consecutive failures: an administrator must unlock the
    /// login name (`rxvault user unlock`).
    #[error("too many failed attempts: this login is locked; ask an administrator to unlock it")]
    Locked,
    /// The principal's role or scopes do not permit this.
    #[error("not permitted: {action}")]
    Forbidden {
        /// What was asked.
        action: Action,
    },
    /// This action needs a second-factor check within the step-up window.
    #[error("this action needs a fresh second-factor check (within the last 5 minutes)")]
    StepUpRequired,
    /// A new password breaks the policy.
    #[error("password not accepted: {0}")]
    WeakPassword(policy::Rejection),
    /// A malformed request (user name, role, scope, reason, allow-list...).
    #[error("{0}")]
    Invalid(String),
    /// An administration target does not exist.
    #[error("no such {what}")]
    NotFound {
        /// User, session, API key, grant.
        what: &'static str,
    },
    /// Already exists.
    #[error("{0}")]
    Conflict(String),
    /// Passkeys are not configured on this server.
    #[error("passkeys (WebAuthn) are not configured on this server")]
    PasskeysDisabled,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rxvault_store::Error),
    /// Cryptography failed.
    #[error(transparent)]
    Crypto(#[from] rxvault_crypto::Error),
    /// The audit log could not record an act (it happened; the caller must
    /// treat the request as failed).
    #[error("the audit log could not record this: {0}")]
    Audit(String),
}

impl Error {
    /// A refusal: the act was not allowed or not valid (audited as denied),
    /// as opposed to a failure of the machinery (audited as an error).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Error::Store(_) | Error::Crypto(_) | Error::Audit(_))
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Identity and access over one vault.
///
/// Cheap to share (`Arc<Auth>`); every method is blocking (Argon2id, store
/// I/O), so async callers use a blocking pool.
pub struct Auth {
    /// The vault's keys, and nothing else of the vault.
    keys: Arc<dyn rxvault_crypto::LiveKeys>,
    /// Where sign-ins, second factors, lockouts, administrative acts and
    /// break-glass are recorded, with their real outcomes (the vault's
    /// audit log).
    audit: Arc<dyn rxvault_audit::Sink>,
    store: Arc<dyn AuthStore>,
    clock: Arc<dyn Clock>,
    config: AuthConfig,
    webauthn: Option<webauthn_rs::Webauthn>,
    /// Mixed into every password hash (from the vault's keys).
    pepper: rxvault_crypto::Pepper,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Identity and access from the narrow pieces it needs: the vault's
    /// keys (sealing its own secrets, keyed hashes, the password pepper),
    /// its identity store (the vault's database: `Vault::auth_store`), the
    /// audit log its acts are recorded in, and a clock. No vault is needed:
    /// a detector that revokes sessions, or a test, can build one from a
    /// keyring, a store and a sink.
    pub fn new(
        keys: Arc<dyn rxvault_crypto::LiveKeys>,
        store: Arc<dyn AuthStore>,
        audit: Arc<dyn rxvault_audit::Sink>,
        clock: Arc<dyn Clock>,
        config: AuthConfig,
    ) -> Result<Auth> {
        let webauthn = config.webauthn.as_ref().map(passkey::build).transpose()?;
        // Warm the dummy hash now, so the first unknown-user login does not
        // pay for creating it (a timing difference).
        let _ = rxvault_crypto::password::dummy_hash();
        Ok(Auth {
            pepper: keys.secrets().password_pepper(),
            clock,
            keys,
            store,
            audit,
            config,
            webauthn,
        })
    }

    /// Records `entry` durably in the audit log.
    pub(crate) fn record(&self, entry: rxvault_audit::Entry) -> Result<()> {
        self.audit.record_entry(entry).map_err(Error::Audit)
    }

    /// Decides whether `principal` may do `action` now: the permission
    /// table (role or scopes, widened by an active break-glass grant for
    /// chart reads), then, for [`Action::needs_step_up`] actions, a second
    /// factor within the step-up window. The returned [`Access`] says which
    /// limit applies and whether only break-glass allowed it (audit that).
    pub fn authorize(&self, principal: &Principal, action: Action) -> Result<Access> {
        let access = principal
            .permits(action)
            .ok_or(Error::Forbidden { action })?;
        if action.needs_step_up() {
            self.require_step_up(principal)?;
        }
        Ok(access)
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The store (for the audit and tools).
    pub fn store(&self) -> &Arc<dyn AuthStore> {
        &self.store
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn now_unix(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Seals `plaintext` with the vault keyring (creating this process's
    /// data key on first use); returns the sealed bytes and the key id.
    fn seal(
        &self,
        domain: &str,
        id: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, rxvault_model::DekId)> {
        self.keys.ensure_data_key()?;
        let sealed = self.keys.secrets().seal_blob(domain, id, plaintext)?;
        let dek = rxvault_crypto::otp::blob_dek(&sealed).ok_or_else(|| {
            Error::Crypto(rxvault_crypto::Error::Integrity {
                what: format!("freshly sealed {domain} value"),
            })
        })?;
        Ok((sealed, dek))
    }

    /// Runs `open` with the keyring, loading data keys other processes
    /// stored since the vault was opened if the value needs one.
    fn with_keys<T>(
        &self,
        open: impl Fn(&rxvault_crypto::Secrets) -> rxvault_crypto::Result<T>,
    ) -> Result<T> {
        let keyring = self.keys.secrets();
        match open(keyring) {
            Err(rxvault_crypto::Error::UnknownDek(_)) => {
                self.keys.reload_data_keys()?;
                Ok(open(keyring)?)
            }
            other => Ok(other?),
        }
    }
}

/// A Unix time as a timestamp.
pub(crate) fn ts(unix: i64) -> Timestamp {
    Timestamp::from_unix_timestamp(unix).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Seconds of a duration, as stored.
pub(crate) fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
