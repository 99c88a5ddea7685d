//! Sessions: the login typestate, authentication of session tokens,
//! timeouts and revocation.
//!
//! ```text
//!   login_password ──> Login::SecondFactor(Session<PendingMfa>) ──verify_totp / passkey / recovery──┐
//!                 └──> Login::Enrol(Session<Enrolling>) ──finish_*_enrolment────────────────────────┤
//!                                                                                                    v
//!                                                                       Session<Authenticated> (token, Principal)
//! ```
//!
//! A pending login has its own short-lived token (`rxp_...`, 10 minutes by
//! default) that is good for nothing but the next step: it is hashed in a
//! different domain from session tokens, so it never authenticates a
//! request. Completing the second factor **replaces** the pending login by
//! a new session with a new token (`rxs_...`), atomically and once: a
//! pending token cannot be used twice, nor be fixated into a session.
//!
//! A session is refused once any of these holds (all time from the vault's
//! clock): revoked; older than the absolute timeout (12 h); unused for the
//! idle timeout (30 min; last use is recorded at most once per
//! `touch_interval`, which can only shorten a session); presented from
//! another source address (unless disabled in the config) or host; its
//! account disabled.

use crate::principal::{ActiveBreakGlass, Actor, HostId, Principal, SessionId, UserId};
use crate::{Auth, Error, Result, secs, ts};
use rxvault_crypto::{Token, TokenKind};
use rxvault_model::Timestamp;
use rxvault_store::auth::{AccountKind, Revocation, SessionFilter, SessionStage, StoredSession};
use std::fmt;
use std::net::IpAddr;

/// The parts every stage shares.
#[derive(Clone)]
pub(crate) struct Core {
    pub(crate) id: SessionId,
    pub(crate) user: UserId,
    pub(crate) username: String,
    pub(crate) token: Token,
    pub(crate) expires_at: Timestamp,
    pub(crate) source: IpAddr,
    pub(crate) host: Option<HostId>,
    /// The user agent of the request at hand (not stored: for the audit).
    pub(crate) user_agent: Option<String>,
}

impl Core {
    /// The client of the request at hand.
    pub(crate) fn client(&self) -> crate::Client {
        crate::Client {
            source: self.source,
            host: self.host.clone(),
            user_agent: self.user_agent.clone(),
        }
    }

    /// An attempt in this pending login, as its audit entries name it.
    pub(crate) fn attempt(&self) -> crate::trail::Attempt {
        crate::trail::Attempt::pending(&self.username, self.client(), &self.id)
    }
}

/// A login or session at stage `S`: [`PendingMfa`], [`Enrolling`] or
/// [`Authenticated`]. Only [`Auth`] creates them.
pub struct Session<S> {
    pub(crate) core: Core,
    pub(crate) stage: S,
}

/// A login whose password was right; a second factor is due.
#[derive(Debug, Clone)]
pub struct PendingMfa {
    pub(crate) factors: Factors,
}

/// A login whose password was right, for an account with no second factor:
/// it may only enrol one.
#[derive(Debug, Clone)]
pub struct Enrolling {
    _private: (),
}

impl Enrolling {
    pub(crate) fn new() -> Self {
        Enrolling { _private: () }
    }
}

/// A complete login: a session token and its principal.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub(crate) principal: Principal,
}

/// The second factors an account has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Factors {
    /// A TOTP authenticator.
    pub totp: bool,
    /// How many passkeys.
    pub passkeys: usize,
    /// How many unused recovery codes.
    pub recovery_codes: u32,
}

impl Factors {
    /// Whether there is any second factor to log in with.
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0 || self.recovery_codes > 0
    }
}

/// The outcome of a correct password.
#[derive(Debug)]
pub enum Login {
    /// Present a second factor.
    SecondFactor(Session<PendingMfa>),
    /// Enrol a second factor first (the account has none).
    Enrol(Session<Enrolling>),
}

impl<S> Session<S> {
    /// The session's (or pending login's) public id.
    pub fn id(&self) -> &SessionId {
        &self.core.id
    }

    /// The account.
    pub fn user_id(&self) -> &UserId {
        &self.core.user
    }

    /// The login name.
    pub fn username(&self) -> &str {
        &self.core.username
    }

    /// The bearer token for this stage: the pending-login token before the
    /// second factor, the session token after. Give it to the client once.
    pub fn token(&self) -> &Token {
        &self.core.token
    }

    /// When it ends at the latest.
    pub fn expires_at(&self) -> Timestamp {
        self.core.expires_at
    }
}

impl Session<PendingMfa> {
    /// The second factors the account can answer with.
    pub fn factors(&self) -> Factors {
        self.stage.factors
    }
}

impl Session<Authenticated> {
    /// Who is logged in.
    pub fn principal(&self) -> &Principal {
        &self.stage.principal
    }

    /// The principal, consuming the session handle.
    pub fn into_principal(self) -> Principal {
        self.stage.principal
    }
}

impl<S: fmt::Debug> fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.core.id)
            .field("user", &self.core.user)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// A session as administrators list it (no token, no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Public id.
    pub id: SessionId,
    /// Account.
    pub user: UserId,
    /// Logged in, or still at a pending stage.
    pub authenticated: bool,
    /// Host or agent.
    pub host: Option<String>,
    /// Source address.
    pub source: String,
    /// Opened.
    pub created_at: Timestamp,
    /// Last use (coarse).
    pub last_seen_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
    /// Last second-factor check.
    pub mfa_at: Option<Timestamp>,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
}

impl From<&StoredSession> for SessionInfo {
    fn from(s: &StoredSession) -> Self {
        SessionInfo {
            id: SessionId(s.id.clone()),
            user: UserId(s.account_id.clone()),
            authenticated: s.stage == SessionStage::Authenticated,
            host: s.host.clone(),
            source: s.source.clone(),
            created_at: ts(s.created_at),
            last_seen_at: ts(s.last_seen_at),
            expires_at: ts(s.expires_at),
            mfa_at: s.mfa_at.map(ts),
            revoked_at: s.revoked_at.map(ts),
        }
    }
}

/// Which sessions a revocation targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// One session.
    Session(SessionId),
    /// Every session of an account.
    User(UserId),
    /// Every session opened from a host (the workstation agent cutting a
    /// compromised machine off).
    Host(HostId),
}

impl Auth {
    /// The principal of a session token presented by a request from
    /// `source` (and `host`, if the client names one). Every failure is
    /// [`Error::Unauthenticated`].
    pub fn authenticate(
        &self,
        token: &Token,
        source: IpAddr,
        host: Option<&HostId>,
    ) -> Result<Principal> {
        let hash = token.hash(TokenKind::Session);
        let now = self.now_unix();
        // Session, account and break-glass grant in one query.
        let Some(context) = self.store.request_context(&hash.0, now)? else {
            return Err(Error::Unauthenticated);
        };
        let s = context.session;
        let idle = secs(self.config.idle_timeout);
        let host_ok = match (&s.host, host) {
            (Some(bound), Some(given)) => bound == given.as_str(),
            (Some(_), None) => false,
            (None, _) => true,
        };
        if s.stage != SessionStage::Authenticated
            || s.revoked_at.is_some()
            || now >= s.expires_at
            || now.saturating_sub(s.last_seen_at) >= idle
            || (self.config.bind_source_address && s.source != source.to_string())
            || !host_ok
        {
            return Err(Error::Unauthenticated);
        }
        let account = match context.account {
            Some(a) if a.kind == AccountKind::Human && !a.disabled => a,
            _ => return Err(Error::Unauthenticated),
        };
        let Some(role) = crate::duties::stored_role(&account.role) else {
            tracing::error!(user = %account.id, "account has an unknown role; refusing its session");
            return Err(Error::Unauthenticated);
        };
        let touch = secs(self.config.touch_interval);
        if now.saturating_sub(s.last_seen_at) >= touch {
            self.store.touch_session(&s.id, now, now - touch)?;
        }
        let break_glass = context.break_glass.map(|g| ActiveBreakGlass {
            id: g.id,
            expires_at: ts(g.expires_at),
        });
        Ok(Principal {
            actor: Actor::User {
                id: UserId(account.id),
                username: account.username,
                role,
            },
            scopes: Vec::new(),
            session: Some(SessionId(s.id)),
            session_expires_at: Some(ts(s.expires_at)),
            source,
            host: s.host.map(HostId::from_stored),
            mfa_at: s.mfa_at.map(ts),
            break_glass,
        })
    }

    /// Ends the principal's own session (and any break-glass grant in it).
    /// Audited here (`logout`, an error if the store failed).
    pub fn logout(&self, principal: &Principal) -> Result<()> {
        let result = (|| {
            if let Some(id) = principal.session_id() {
                let now = self.now_unix();
                self.store
                    .revoke_sessions(Revocation::Session(id.as_str()), now)?;
                self.store.end_break_glass(id.as_str(), now)?;
                tracing::info!(session = %id, "logged out");
            }
            Ok(())
        })();
        self.audited_act(principal.audit_entry(rxvault_audit::Action::Logout), result)
    }

    /// Revokes sessions at once. A person may revoke their own sessions;
    /// anything else needs [`Action::RevokeSessions`](crate::Action) (the
    /// administrator, or a service key with `sessions.revoke`, such as the
    /// workstation agent). Returns how many were revoked.
    /// Audited here, with its outcome (a refusal as denied); a person is
    /// named by their login name, as [`Admin`](crate::Admin) names them.
    pub fn revoke(&self, by: &Principal, target: &RevokeTarget) -> Result<u64> {
        let label = match target {
            RevokeTarget::User(u) => self
                .store
                .account(u.as_str())
                .ok()
                .flatten()
                .map_or_else(|| u.as_str().to_string(), |a| a.username),
            RevokeTarget::Session(id) => id.as_str().to_string(),
            RevokeTarget::Host(h) => h.as_str().to_string(),
        };
        self.revoke_as(by, Ok(target.clone()), label)
    }

    /// [`revoke`](Self::revoke) of every session of the person with login
    /// name `username` (as typed by an administrator): the same entry as
    /// `rxvault session revoke --user`, and an unknown name is a refused
    /// revocation, audited as such.
    pub fn revoke_user_named(&self, by: &Principal, username: &str) -> Result<u64> {
        let name = crate::throttle::normalize_username(username);
        let target = match self.store.account_by_username(&name) {
            Ok(Some(a)) => Ok(RevokeTarget::User(UserId(a.id))),
            Ok(None) => Err(Error::NotFound { what: "user" }),
            Err(e) => Err(e.into()),
        };
        self.revoke_as(by, target, username.to_string())
    }

    fn revoke_as(
        &self,
        by: &Principal,
        target: Result<RevokeTarget>,
        label: String,
    ) -> Result<u64> {
        let operation = match &target {
            Ok(RevokeTarget::Session(_)) => "revoke-session",
            Ok(RevokeTarget::User(_)) | Err(_) => "revoke-sessions",
            Ok(RevokeTarget::Host(_)) => "revoke-host-sessions",
        };
        let result = target.and_then(|target| {
            let own = match &target {
                RevokeTarget::User(u) => u == by.user_id(),
                RevokeTarget::Session(id) => self
                    .store
                    .session(id.as_str())?
                    .is_some_and(|s| s.account_id == by.user_id().as_str()),
                RevokeTarget::Host(_) => false,
            };
            if !own {
                self.authorize(by, crate::Action::RevokeSessions)?;
            }
            self.revoke_unchecked(&target)
        });
        let entry = by.audit_entry(rxvault_audit::Action::UserAdmin {
            operation: operation.into(),
            target: label,
        });
        self.audited_act(entry, result)
    }

    pub(crate) fn revoke_unchecked(&self, target: &RevokeTarget) -> Result<u64> {
        let now = self.now_unix();
        let n = match target {
            RevokeTarget::Session(id) => self
                .store
                .revoke_sessions(Revocation::Session(id.as_str()), now)?,
            RevokeTarget::User(u) => self
                .store
                .revoke_sessions(Revocation::Account(u.as_str()), now)?,
            RevokeTarget::Host(h) => self
                .store
                .revoke_sessions(Revocation::Host(h.as_str()), now)?,
        };
        tracing::info!(?target, revoked = n, "sessions revoked");
        Ok(n)
    }

    /// The principal's own live sessions.
    pub fn own_sessions(&self, principal: &Principal) -> Result<Vec<SessionInfo>> {
        Ok(self
            .store
            .sessions(&SessionFilter {
                account: Some(principal.user_id().as_str().to_string()),
                host: None,
                live_at: Some(self.now_unix()),
            })?
            .iter()
            .map(SessionInfo::from)
            .collect())
    }

    /// Housekeeping, to run now and then (e.g. hourly): deletes sessions
    /// and pending logins that expired or were revoked more than `keep` ago
    /// (kept that long for investigations), expired WebAuthn ceremony
    /// states, and failure counts older than a day (locked names stay
    /// locked). Returns how many sessions were deleted.
    pub fn purge(&self, keep: std::time::Duration) -> Result<u64> {
        let now = self.now_unix();
        let sessions = self.store.purge_sessions(now.saturating_sub(secs(keep)))?;
        self.store.purge_failures(
            now.saturating_sub(secs(self.config.throttle.max_delay).max(86_400)),
            self.config.throttle.account_lockout,
        )?;
        Ok(sessions)
    }

    /// Creates the row of a pending login or session.
    pub(crate) fn new_session(
        &self,
        user: &UserId,
        username: &str,
        stage: SessionStage,
        client: &crate::Client,
    ) -> Result<(StoredSession, Core)> {
        let (source, host) = (client.source, client.host.clone());
        let now = self.now_unix();
        let (kind, lifetime) = match stage {
            SessionStage::Authenticated => (TokenKind::Session, self.config.absolute_timeout),
            _ => (TokenKind::PendingLogin, self.config.pending_timeout),
        };
        let token = Token::generate(kind)?;
        let row = StoredSession {
            id: rxvault_crypto::random_id()?,
            token_hash: token.hash(kind).0,
            account_id: user.as_str().to_string(),
            stage,
            host: host.as_ref().map(|h| h.as_str().to_string()),
            source: source.to_string(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.saturating_add(secs(lifetime)),
            mfa_at: (stage == SessionStage::Authenticated).then_some(now),
            revoked_at: None,
        };
        let core = Core {
            id: SessionId(row.id.clone()),
            user: user.clone(),
            username: username.to_string(),
            token,
            expires_at: ts(row.expires_at),
            source,
            host,
            user_agent: client.user_agent.clone(),
        };
        Ok((row, core))
    }

    /// Exchanges a pending login for a session, once.
    pub(crate) fn complete_login(
        &self,
        pending: Core,
        role: Option<crate::Role>,
    ) -> Result<Session<Authenticated>> {
        let (row, core) = self.new_session(
            &pending.user,
            &pending.username,
            SessionStage::Authenticated,
            &pending.client(),
        )?;
        if !self.store.replace_session(pending.id.as_str(), &row)? {
            // Used already (a concurrent second factor) or revoked.
            return Err(Error::Unauthenticated);
        }
        tracing::info!(user = %core.user, session = %core.id, "logged in");
        let principal = Principal {
            actor: Actor::User {
                id: core.user.clone(),
                username: core.username.clone(),
                role,
            },
            scopes: Vec::new(),
            session: Some(core.id.clone()),
            session_expires_at: Some(core.expires_at),
            source: core.source,
            host: core.host.clone(),
            mfa_at: Some(ts(row.created_at)),
            break_glass: None,
        };
        Ok(Session {
            core,
            stage: Authenticated { principal },
        })
    }
}

impl HostId {
    /// A host id read back from the store (validated when it was stored).
    pub(crate) fn from_stored(id: String) -> HostId {
        HostId::new(&id).unwrap_or_else(|_| HostId::new("invalid").expect("valid"))
    }
}
