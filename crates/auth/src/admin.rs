//! Administration: people, roles, second factors, sessions, service
//! accounts and their API keys.
//!
//! Two doors lead here, and both do the same thing through the same
//! functions (so the same act gives the same audit entry):
//! - [`Auth::admin`] for a principal allowed [`Action::UserAdmin`] with a
//!   second factor in the last 5 minutes (the HTTP API). Such an
//!   administrator cannot change their own role or re-enrol themselves.
//! - [`Auth::key_holder`] for whoever holds the vault's key on the vault's
//!   machine (the `rxvault user ...` commands, principal `local`): holding
//!   the key already means holding all the data, so nothing more is asked
//!   to administer; approvals count them as one person (see
//!   [`crate::duties`]).
//!
//! Neither door sets a person's password or second factor: a person gets
//! a one-time enrolment code ([`Admin::add_person`],
//! [`Admin::issue_enrolment_code`]) and sets their own password with it
//! ([`Auth::redeem_enrolment`]); a role that reads charts or approves, and
//! an API key that reads charts, wait for a second person's approval
//! ([`crate::duties`]).
//!
//! Service accounts never log in interactively: they have no password and
//! authenticate only with API keys ([`Auth::authenticate_api_key`]), each
//! with its own scopes, optional expiry and optional source allow-list. A
//! key is shown once at issue; only its SHA-256 hash is stored. A key with
//! a chart-reading scope ([`Scope::reads_charts`]) is refused until a
//! second person approves it.

use crate::cidr::{self, Cidr};
use crate::duties::{
    AccessRequest, EnrolmentCode, Grant, NewPerson, Reenrolment, RoleChange, UNASSIGNED, entry_by,
    outcome_of, stored_role,
};
use crate::principal::{Actor, HostId, Principal, SessionId, UserId};
use crate::session::{RevokeTarget, SessionInfo};
use crate::throttle::normalize_username;
use crate::{Action, Auth, Error, Result, Role, Scope, secs, ts};
use rxvault_audit::Action as AuditAction;
use rxvault_crypto::{Token, TokenKind};
use rxvault_model::Timestamp;
use rxvault_store::auth::{
    AccountKind, AccountUpdate, SessionFilter, StoredAccount, StoredApiKey, ThrottleScope,
};
use std::net::IpAddr;
use std::ops::Deref;
use std::time::Duration;

/// The role name stored for service accounts.
const SERVICE_ROLE: &str = "service";

/// An account as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Id.
    pub id: UserId,
    /// Login name (people) or service name.
    pub username: String,
    /// A person's role; `None` for service accounts, and for a person with
    /// none yet (awaiting approval, or re-enrolling).
    pub role: Option<Role>,
    /// A service account (API keys only).
    pub service: bool,
    /// Disabled.
    pub disabled: bool,
    /// Has a TOTP authenticator.
    pub totp: bool,
    /// Passkeys registered.
    pub passkeys: usize,
    /// Unused recovery codes.
    pub recovery_codes: u32,
    /// Locked after too many failures.
    pub locked: bool,
    /// Created.
    pub created_at: Timestamp,
}

/// A freshly issued API key: the key is shown once.
#[derive(Debug)]
pub struct IssuedApiKey {
    /// The key's public id.
    pub id: String,
    /// The key (`rxk_...`); only its hash is stored.
    pub key: Token,
    /// The approval it waits for (a chart-reading scope): refused until
    /// then.
    pub request: Option<AccessRequest>,
}

/// An API key as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// Public id.
    pub id: String,
    /// Its service account.
    pub account: UserId,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Allowed source blocks (empty: any).
    pub allowed_sources: Vec<Cidr>,
    /// Issued.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Option<Timestamp>,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
    /// Last used (coarse).
    pub last_used_at: Option<Timestamp>,
    /// Waiting for a second person's approval (refused until then).
    pub pending: bool,
}

/// Administration on behalf of an administrator principal or the key
/// holder.
#[derive(Debug)]
pub struct Admin<'a> {
    auth: &'a Auth,
    /// `None`: the key holder (or the detector, below).
    by: Option<Principal>,
    /// The actor recorded when it is not `by` nor the local operator: the
    /// detector responding to an alert.
    system: Option<rxvault_audit::Actor>,
}

/// Administration by the holder of the vault's key (the command line), with
/// the few operations only they may do.
#[derive(Debug)]
pub struct KeyHolder<'a> {
    admin: Admin<'a>,
}

impl<'a> Deref for KeyHolder<'a> {
    type Target = Admin<'a>;

    fn deref(&self) -> &Admin<'a> {
        &self.admin
    }
}

impl Auth {
    /// Administration for `principal`: needs [`Action::UserAdmin`] and a
    /// second factor within the step-up window.
    pub fn admin(&self, principal: &Principal) -> Result<Admin<'_>> {
        self.authorize(principal, Action::UserAdmin)?;
        Ok(Admin {
            auth: self,
            by: Some(principal.clone()),
            system: None,
        })
    }

    /// The responses of the detector (`rxvault_detect`), recorded as the
    /// system actor `id`: ending sessions, disabling accounts, requiring
    /// step-up. In the server process only, never through the network API.
    pub fn responder(&self, id: &str) -> Admin<'_> {
        Admin {
            auth: self,
            by: None,
            system: Some(rxvault_audit::Actor {
                kind: rxvault_audit::ActorKind::System,
                id: id.to_string(),
            }),
        }
    }

    /// Administration by the vault's key holder (the command line on the
    /// vault's machine). Never expose this through the network API.
    pub fn key_holder(&self) -> KeyHolder<'_> {
        KeyHolder {
            admin: Admin {
                auth: self,
                by: None,
                system: None,
            },
        }
    }

    /// The principal of a service account's API key presented from
    /// `source`. Unknown, revoked, expired, disabled-account and
    /// outside-the-allow-list keys are all [`Error::InvalidCredentials`]
    /// (and count against the source address).
    pub fn authenticate_api_key(&self, key: &Token, source: IpAddr) -> Result<Principal> {
        let subjects = self.subjects(None, source);
        self.peek_throttle(subjects)?;
        let now = self.now_unix();
        let hash = key.hash(TokenKind::ApiKey);
        let Some(k) = self.store.api_key_by_hash(&hash.0)? else {
            return Err(self.count_failure(subjects));
        };
        let account = self.store.account(&k.account_id)?;
        // A list that does not parse (a corrupt row) allows nothing.
        let from_allowed_source =
            cidr::parse_list(&k.allowed_sources).is_ok_and(|list| cidr::allows(&list, source));
        let valid = hash.matches(key, TokenKind::ApiKey)
            && !k.pending
            && k.revoked_at.is_none()
            && k.expires_at.is_none_or(|e| now < e)
            && from_allowed_source;
        let account = match account {
            Some(a) if valid && a.kind == AccountKind::Service && !a.disabled => a,
            _ => return Err(self.count_failure(subjects)),
        };
        let scopes = k
            .scopes
            .split_whitespace()
            .filter_map(Scope::from_name)
            .collect();
        let touch = secs(self.config.touch_interval);
        self.store.touch_api_key(&k.id, now, now - touch)?;
        Ok(Principal {
            actor: Actor::Service {
                id: UserId(account.id),
                name: account.username,
                key_id: k.id,
            },
            scopes,
            session: None,
            session_expires_at: None,
            source,
            host: None,
            mfa_at: None,
            break_glass: None,
        })
    }
}

/// Validates and normalises a login or service name: 3 to 64 characters of
/// `a-z 0-9 . _ - @`, starting with a letter or digit.
pub fn validate_username(name: &str) -> Result<String> {
    let n = normalize_username(name);
    let ok = (3..=64).contains(&n.len())
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
    if ok {
        Ok(n)
    } else {
        Err(Error::Invalid(
            "a user name is 3 to 64 characters of a-z, 0-9, '.', '_', '-' and '@', starting with a letter or digit"
                .into(),
        ))
    }
}

impl<'a> Admin<'a> {
    pub(crate) fn auth(&self) -> &'a Auth {
        self.auth
    }

    /// Who administers (`None`: the local operator).
    pub(crate) fn by(&self) -> Option<&Principal> {
        self.by.as_ref()
    }
}

impl Admin<'_> {
    fn now(&self) -> i64 {
        self.auth.now_unix()
    }

    fn account(&self, username: &str) -> Result<StoredAccount> {
        self.auth
            .store
            .account_by_username(&normalize_username(username))?
            .ok_or(Error::NotFound { what: "user" })
    }

    fn person(&self, username: &str) -> Result<StoredAccount> {
        let a = self.account(username)?;
        if a.kind != AccountKind::Human {
            return Err(Error::Invalid(format!(
                "{} is a service account",
                a.username
            )));
        }
        Ok(a)
    }

    fn service(&self, name: &str) -> Result<StoredAccount> {
        let a = self.account(name)?;
        if a.kind != AccountKind::Service {
            return Err(Error::Invalid(format!(
                "{} is not a service account",
                a.username
            )));
        }
        Ok(a)
    }

    fn info(&self, a: StoredAccount) -> Result<UserInfo> {
        let id = UserId(a.id.clone());
        let factors = self.auth.factors(&id)?;
        let throttle_subject = self
            .auth
            .keys
            .secrets()
            .keyed_hash("auth/throttle/account", a.username.as_bytes());
        let locked = self
            .auth
            .store
            .throttle(ThrottleScope::Account, &throttle_subject)?
            .is_some_and(|t| t.failures >= self.auth.config.throttle.account_lockout);
        Ok(UserInfo {
            id,
            role: match a.kind {
                AccountKind::Human => stored_role(&a.role).flatten(),
                AccountKind::Service => None,
            },
            service: a.kind == AccountKind::Service,
            username: a.username,
            disabled: a.disabled,
            totp: factors.totp,
            passkeys: factors.passkeys,
            recovery_codes: factors.recovery_codes,
            locked,
            created_at: ts(a.created_at),
        })
    }

    /// Creates a person with a role, and the one-time enrolment code they
    /// set their own password with ([`Auth::redeem_enrolment`]; hand it to
    /// them). A role that reads charts or approves is requested, not
    /// given: the account has no role until a second person approves
    /// ([`crate::duties`]). Audited: the creation, the request, the code.
    pub fn add_person(&self, username: &str, role: Role) -> Result<NewPerson> {
        let (account, pending) = self.audited(
            AuditAction::UserAdmin {
                operation: format!("create ({role})"),
                target: username.to_string(),
            },
            || {
                let name = validate_username(username)?;
                self.create_person(&name, role)
            },
        )?;
        let change = if pending {
            self.auth.request_access(
                self.by(),
                &account,
                Grant::Role {
                    role,
                    previous: None,
                },
            )?
        } else {
            RoleChange::Applied
        };
        let enrolment = self.enrolment_code(&account)?;
        let account = self.account(&account.username)?;
        Ok(NewPerson {
            user: self.info(account)?,
            enrolment,
            role: change,
        })
    }

    /// Issues an enrolment code for `account`, audited.
    fn enrolment_code(&self, account: &StoredAccount) -> Result<EnrolmentCode> {
        let result = self.auth.new_enrolment_code(self.by(), account);
        self.auth.record(
            self.entry(AuditAction::EnrolmentCodeIssued {
                target: account.username.clone(),
                expires_ms: result
                    .as_ref()
                    .map_or(0, |c| rxvault_audit::unix_ms(c.expires_at())),
            })
            .outcome(outcome_of(&result)),
        )?;
        result
    }

    /// Re-enrols a person (forgotten password, lost second factors): at
    /// once their password, second factors and sessions are gone and a
    /// role that reads charts or approves is suspended; the new enrolment
    /// code lets them set a password again, and their role comes back only
    /// when a second person approves the request returned. (An
    /// administrator who issues a code sees it; this is why the role is
    /// what needs the approval.) Not for oneself.
    pub fn issue_enrolment_code(&self, username: &str) -> Result<Reenrolment> {
        let result = (|| {
            let a = self.person(username)?;
            if self
                .by
                .as_ref()
                .is_some_and(|p| p.user_id().as_str() == a.id)
            {
                return Err(Error::Forbidden {
                    action: Action::UserAdmin,
                });
            }
            let previous = stored_role(&a.role).flatten();
            let kept = previous.filter(|r| !r.is_sensitive());
            let now = self.now();
            if !self
                .auth
                .store
                .reset_account(&a.id, kept.map_or(UNASSIGNED, Role::name), now)?
            {
                return Err(Error::NotFound { what: "user" });
            }
            self.auth.store.supersede_role_requests(&a.id, now)?;
            tracing::warn!(user = %a.id, "account reset for re-enrolment");
            let code = self.auth.new_enrolment_code(self.by(), &a)?;
            Ok((a, previous.filter(|r| r.is_sensitive()), code))
        })();
        self.auth.record(
            self.entry(AuditAction::EnrolmentCodeIssued {
                target: username.to_string(),
                expires_ms: result
                    .as_ref()
                    .map_or(0, |(_, _, c)| rxvault_audit::unix_ms(c.expires_at())),
            })
            .outcome(outcome_of(&result)),
        )?;
        let (account, suspended, enrolment) = result?;
        let request = match suspended {
            Some(role) => match self.auth.request_access(
                self.by(),
                &account,
                Grant::Role {
                    role,
                    previous: None,
                },
            )? {
                RoleChange::Pending(r) => Some(r),
                RoleChange::Applied => None,
            },
            None => None,
        };
        Ok(Reenrolment { enrolment, request })
    }

    /// Every account.
    pub fn users(&self) -> Result<Vec<UserInfo>> {
        self.auth
            .store
            .accounts()?
            .into_iter()
            .map(|a| self.info(a))
            .collect()
    }

    /// One account.
    pub fn user(&self, username: &str) -> Result<UserInfo> {
        let a = self.account(username)?;
        self.info(a)
    }

    /// Changes a person's role (effective on their next request): at once
    /// for a lowering or a role that neither reads charts nor approves;
    /// otherwise as a request a second person approves
    /// ([`RoleChange::Pending`], audited as `access-requested`; the role is
    /// unchanged until then). An administrator may not change their own.
    pub fn set_role(&self, username: &str, role: Role) -> Result<RoleChange> {
        let mut requested = false;
        let result = (|| {
            let a = self.person(username)?;
            if self
                .by
                .as_ref()
                .is_some_and(|p| p.user_id().as_str() == a.id)
            {
                return Err(Error::Forbidden {
                    action: Action::UserAdmin,
                });
            }
            requested = crate::permissions::needs_approval(stored_role(&a.role).flatten(), role);
            let change = self.change_role(&a, role)?;
            tracing::info!(user = %a.id, role = %role, pending = matches!(change, RoleChange::Pending(_)), "role change");
            Ok(change)
        })();
        // A request records itself (and its approval, for the first
        // administrator); anything else is recorded here.
        if !requested {
            self.auth.record(
                self.entry(AuditAction::RoleAdmin {
                    operation: "set".into(),
                    role: role.name().to_string(),
                    target: Some(username.to_string()),
                })
                .outcome(outcome_of(&result)),
            )?;
        }
        result
    }

    /// Disables an account and revokes its sessions at once (a service
    /// account's keys stop working too).
    pub fn disable(&self, username: &str) -> Result<()> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "disable".into(),
                target: username.to_string(),
            },
            || {
                let a = self.account(username)?;
                self.auth.store.update_account(
                    &a.id,
                    &AccountUpdate::Disabled(true),
                    self.now(),
                )?;
                self.auth
                    .revoke_unchecked(&RevokeTarget::User(UserId(a.id.clone())))?;
                tracing::info!(user = %a.id, "account disabled");
                Ok(())
            },
        )
    }

    /// Enables a disabled account.
    pub fn enable(&self, username: &str) -> Result<()> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "enable".into(),
                target: username.to_string(),
            },
            || {
                let a = self.account(username)?;
                self.auth.store.update_account(
                    &a.id,
                    &AccountUpdate::Disabled(false),
                    self.now(),
                )?;
                Ok(())
            },
        )
    }

    /// Clears a login name's failure count (after a lockout).
    pub fn unlock(&self, username: &str) -> Result<()> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "unlock".into(),
                target: username.to_string(),
            },
            || {
                let name = normalize_username(username);
                self.auth.unlock_name(&name)?;
                tracing::info!("login name unlocked");
                Ok(())
            },
        )
    }

    /// Removes every second factor of a person (lost phone and recovery
    /// codes) and revokes their sessions: at their next login they must
    /// enrol a new one.
    pub fn reset_mfa(&self, username: &str) -> Result<()> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "reset-mfa".into(),
                target: username.to_string(),
            },
            || {
                let a = self.person(username)?;
                self.auth.store.clear_second_factors(&a.id)?;
                self.auth
                    .revoke_unchecked(&RevokeTarget::User(UserId(a.id.clone())))?;
                tracing::warn!(user = %a.id, "second factors reset");
                Ok(())
            },
        )
    }

    /// Sessions, of one person or all; only live ones unless `all`.
    pub fn sessions(&self, username: Option<&str>, all: bool) -> Result<Vec<SessionInfo>> {
        let account = username.map(|u| self.account(u)).transpose()?;
        Ok(self
            .auth
            .store
            .sessions(&SessionFilter {
                account: account.map(|a| a.id),
                host: None,
                live_at: (!all).then(|| self.now()),
            })?
            .iter()
            .map(SessionInfo::from)
            .collect())
    }

    /// Revokes one session.
    pub fn revoke_session(&self, id: &SessionId) -> Result<u64> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "revoke-session".into(),
                target: id.as_str().to_string(),
            },
            || {
                self.auth
                    .revoke_unchecked(&RevokeTarget::Session(id.clone()))
            },
        )
    }

    /// Revokes every session of a person.
    pub fn revoke_user_sessions(&self, username: &str) -> Result<u64> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "revoke-sessions".into(),
                target: username.to_string(),
            },
            || {
                let a = self.account(username)?;
                self.auth
                    .revoke_unchecked(&RevokeTarget::User(UserId(a.id)))
            },
        )
    }

    /// Revokes every session opened from a host.
    pub fn revoke_host_sessions(&self, host: &HostId) -> Result<u64> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "revoke-host-sessions".into(),
                target: host.as_str().to_string(),
            },
            || {
                self.auth
                    .revoke_unchecked(&RevokeTarget::Host(host.clone()))
            },
        )
    }

    /// Creates a service account (no password, no interactive login).
    pub fn create_service_account(&self, name: &str) -> Result<UserInfo> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "create-service-account".into(),
                target: name.to_string(),
            },
            || {
                let name = validate_username(name)?;
                let now = self.now();
                let account = StoredAccount {
                    id: rxvault_crypto::random_id()?,
                    username: name.clone(),
                    kind: AccountKind::Service,
                    role: SERVICE_ROLE.into(),
                    disabled: false,
                    password_hash: None,
                    created_at: now,
                    updated_at: now,
                };
                if !self.auth.store.create_account(&account)? {
                    return Err(Error::Conflict(format!("the name {name} is taken")));
                }
                tracing::info!(account = %account.id, "service account created");
                self.info(account)
            },
        )
    }

    /// Issues an API key for a service account, with scopes, an optional
    /// source allow-list and an optional lifetime.
    pub fn issue_api_key(
        &self,
        service: &str,
        scopes: &[Scope],
        allowed_sources: &[Cidr],
        lifetime: Option<Duration>,
    ) -> Result<IssuedApiKey> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "issue-api-key".into(),
                target: service.to_string(),
            },
            || {
                let a = self.service(service)?;
                if scopes.is_empty() {
                    return Err(Error::Invalid("an API key needs at least one scope".into()));
                }
                let key = Token::generate(TokenKind::ApiKey)?;
                let now = self.now();
                let id = rxvault_crypto::random_id()?;
                let mut sorted = scopes.to_vec();
                sorted.sort_unstable_by_key(|s| s.name());
                sorted.dedup();
                let names: Vec<&str> = sorted.iter().map(|s| s.name()).collect();
                let pending = sorted.iter().any(|s| s.reads_charts());
                self.auth.store.insert_api_key(&StoredApiKey {
                    id: id.clone(),
                    key_hash: key.hash(TokenKind::ApiKey).0,
                    account_id: a.id.clone(),
                    scopes: names.join(" "),
                    allowed_sources: cidr::render_list(allowed_sources),
                    created_at: now,
                    expires_at: lifetime.map(|d| now.saturating_add(secs(d))),
                    revoked_at: None,
                    last_used_at: None,
                    pending,
                })?;
                tracing::info!(account = %a.id, key = %id, pending, "API key issued");
                Ok((
                    IssuedApiKey {
                        id,
                        key,
                        request: None,
                    },
                    a,
                    sorted,
                    pending,
                ))
            },
        )
        .and_then(|(mut issued, account, scopes, pending)| {
            if pending {
                let grant = Grant::ApiKey {
                    key: issued.id.clone(),
                    scopes,
                };
                if let RoleChange::Pending(r) =
                    self.auth.request_access(self.by(), &account, grant)?
                {
                    issued.request = Some(r);
                }
            }
            Ok(issued)
        })
    }

    /// A service account's API keys (none of them usable: ids and
    /// metadata only).
    pub fn api_keys(&self, service: &str) -> Result<Vec<ApiKeyInfo>> {
        let a = self.service(service)?;
        self.auth
            .store
            .api_keys(Some(&a.id))?
            .into_iter()
            .map(|k| {
                Ok(ApiKeyInfo {
                    account: UserId(k.account_id),
                    scopes: k
                        .scopes
                        .split_whitespace()
                        .filter_map(Scope::from_name)
                        .collect(),
                    allowed_sources: cidr::parse_list(&k.allowed_sources).map_err(|e| {
                        rxvault_store::Error::Corrupt(format!("API key {}: {e}", k.id))
                    })?,
                    created_at: ts(k.created_at),
                    expires_at: k.expires_at.map(ts),
                    revoked_at: k.revoked_at.map(ts),
                    last_used_at: k.last_used_at.map(ts),
                    pending: k.pending,
                    id: k.id,
                })
            })
            .collect()
    }

    /// Revokes an API key.
    pub fn revoke_api_key(&self, id: &str) -> Result<()> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "revoke-api-key".into(),
                target: id.to_string(),
            },
            || {
                if !self.auth.store.revoke_api_key(id, self.now())? {
                    return Err(Error::NotFound {
                        what: "active API key",
                    });
                }
                tracing::info!(key = %id, "API key revoked");
                Ok(())
            },
        )
    }
}

impl Admin<'_> {
    /// The audit entry of an act by this administrator (the key holder:
    /// the local operator).
    fn entry(&self, action: AuditAction) -> rxvault_audit::Entry {
        match &self.system {
            Some(actor) => rxvault_audit::Entry::new(actor.clone(), action),
            None => entry_by(self.by.as_ref(), action),
        }
    }

    /// Makes a session present its second factor again before anything
    /// that needs step-up (a detector's response; the session stays).
    pub fn require_step_up(&self, id: &SessionId) -> Result<bool> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "require-step-up".into(),
                target: id.as_str().to_string(),
            },
            || Ok(self.auth.store.expire_session_mfa(id.as_str())?),
        )
    }

    /// Does `act` and records it with its real outcome: a refusal (a bad
    /// name, role or password, a taken name, no such account, not allowed)
    /// as denied, a failure as an error. One entry per act, the same
    /// whether the command line or HTTPS asked.
    fn audited<T>(&self, action: AuditAction, act: impl FnOnce() -> Result<T>) -> Result<T> {
        let result = act();
        self.auth
            .record(self.entry(action).outcome(outcome_of(&result)))?;
        result
    }

    /// [`add_person`](Self::add_person) with the role by name (as typed
    /// on the command line or sent over HTTPS): an unknown role is a
    /// refused create, audited as such.
    pub fn add_person_named(&self, username: &str, role: &str) -> Result<NewPerson> {
        match Role::from_name(role) {
            Some(role) => self.add_person(username, role),
            None => self.audited(
                AuditAction::UserAdmin {
                    operation: format!("create ({role})"),
                    target: username.to_string(),
                },
                || Err(unknown_role(role)),
            ),
        }
    }

    /// [`set_role`](Self::set_role) with the role by name.
    pub fn set_role_named(&self, username: &str, role: &str) -> Result<RoleChange> {
        match Role::from_name(role) {
            Some(r) => self.set_role(username, r),
            None => self.audited(
                AuditAction::RoleAdmin {
                    operation: "set".into(),
                    role: role.to_string(),
                    target: Some(username.to_string()),
                },
                || Err(unknown_role(role)),
            ),
        }
    }
}

fn unknown_role(role: &str) -> Error {
    let known: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
    Error::Invalid(format!("no role {role:?} (roles: {})", known.join(", ")))
}
