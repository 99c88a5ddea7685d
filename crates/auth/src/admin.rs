//! Administration: people, roles, second factors, sessions, service
//! accounts and their API keys.
//!
//! Two doors lead here:
//! - [`Auth::admin`] for a principal allowed [`Action::UserAdmin`] with a
//!   second factor in the last 5 minutes (the HTTP API). Such an
//!   administrator cannot change their own role (no self-promotion to a
//!   chart-reading role) and cannot set anyone's second factor.
//! - [`Auth::key_holder`] for whoever holds the vault's key on the vault's
//!   machine (the `rxvault user ...` commands): holding the key already
//!   means holding all the data, so nothing more is asked. Only this door
//!   can enrol a TOTP authenticator on someone's behalf
//!   ([`KeyHolder::enrol_totp`]), for handing over in person.
//!
//! Service accounts never log in interactively: they have no password and
//! authenticate only with API keys ([`Auth::authenticate_api_key`]), each
//! with its own scopes, optional expiry and optional source allow-list. A
//! key is shown once at issue; only its SHA-256 hash is stored.

use crate::cidr::{self, Cidr};
use crate::login::{RecoveryCodes, TotpEnrolment};
use crate::principal::{Actor, HostId, Principal, SessionId, UserId};
use crate::session::{RevokeTarget, SessionInfo};
use crate::throttle::normalize_username;
use crate::{Action, Auth, Error, Result, Role, Scope, policy, secs, ts};
use rxvault_audit::Action as AuditAction;
use rxvault_crypto::password::hash_password;
use rxvault_crypto::{Password, Token, TokenKind, TotpSecret};
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
    /// A person's role; `None` for service accounts.
    pub role: Option<Role>,
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
}

/// Administration on behalf of an administrator principal or the key
/// holder.
#[derive(Debug)]
pub struct Admin<'a> {
    auth: &'a Auth,
    /// `None`: the key holder.
    by: Option<Principal>,
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
        })
    }

    /// Administration by the vault's key holder (the command line on the
    /// vault's machine). Never expose this through the network API.
    pub fn key_holder(&self) -> KeyHolder<'_> {
        KeyHolder {
            admin: Admin {
                auth: self,
                by: None,
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
            role: Role::from_name(&a.role),
            username: a.username,
            disabled: a.disabled,
            totp: factors.totp,
            passkeys: factors.passkeys,
            recovery_codes: factors.recovery_codes,
            locked,
            created_at: ts(a.created_at),
        })
    }

    /// Creates a person with a role and an initial password (checked
    /// against the policy). They must enrol a second factor at first login
    /// unless the key holder enrols one now.
    pub fn create_user(&self, username: &str, role: Role, password: &Password) -> Result<UserInfo> {
        self.audited(
            AuditAction::UserAdmin {
                operation: format!("create ({role})"),
                target: username.to_string(),
            },
            || {
                let name = validate_username(username)?;
                let password = policy::check(&name, password).map_err(Error::WeakPassword)?;
                let hash = hash_password(&password, &self.auth.pepper)?;
                let now = self.now();
                let account = StoredAccount {
                    id: rxvault_crypto::random_id()?,
                    username: name.clone(),
                    kind: AccountKind::Human,
                    role: role.name().to_string(),
                    disabled: false,
                    password_hash: Some(hash.as_str().to_string()),
                    created_at: now,
                    updated_at: now,
                };
                if !self.auth.store.create_account(&account)? {
                    return Err(Error::Conflict(format!("the user name {name} is taken")));
                }
                tracing::info!(user = %account.id, role = %role, "user created");
                self.info(account)
            },
        )
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

    /// Changes a person's role (effective on their next request). An
    /// administrator may not change their own.
    pub fn set_role(&self, username: &str, role: Role) -> Result<()> {
        self.audited(
            AuditAction::RoleAdmin {
                operation: "set".into(),
                role: role.name().to_string(),
                target: Some(username.to_string()),
            },
            || {
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
                self.auth.store.update_account(
                    &a.id,
                    &AccountUpdate::Role(role.name().into()),
                    self.now(),
                )?;
                tracing::info!(user = %a.id, role = %role, "role changed");
                Ok(())
            },
        )
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

    /// Sets a person's password (checked against the policy) and revokes
    /// their sessions.
    pub fn set_password(&self, username: &str, password: &Password) -> Result<()> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "set-password".into(),
                target: username.to_string(),
            },
            || {
                let a = self.person(username)?;
                let password = policy::check(&a.username, password).map_err(Error::WeakPassword)?;
                let hash = hash_password(&password, &self.auth.pepper)?;
                self.auth.store.update_account(
                    &a.id,
                    &AccountUpdate::PasswordHash(hash.as_str().into()),
                    self.now(),
                )?;
                self.auth
                    .revoke_unchecked(&RevokeTarget::User(UserId(a.id.clone())))?;
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
                let mut names: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
                names.sort_unstable();
                names.dedup();
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
                })?;
                tracing::info!(account = %a.id, key = %id, "API key issued");
                Ok(IssuedApiKey { id, key })
            },
        )
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
        match &self.by {
            Some(p) => p.audit_entry(action),
            None => rxvault_audit::Entry::new(rxvault_audit::Actor::local_operator(), action),
        }
    }

    /// Does `act` and records it with its real outcome: a refusal (a bad
    /// name, role or password, a taken name, no such account, not allowed)
    /// as denied, a failure as an error. One entry per act, the same
    /// whether the command line or HTTPS asked.
    fn audited<T>(&self, action: AuditAction, act: impl FnOnce() -> Result<T>) -> Result<T> {
        let result = act();
        let outcome = match &result {
            Ok(_) => rxvault_audit::Outcome::Success,
            Err(e) if e.is_refusal() => rxvault_audit::Outcome::Denied,
            Err(_) => rxvault_audit::Outcome::Error,
        };
        self.auth.record(self.entry(action).outcome(outcome))?;
        result
    }

    /// [`create_user`](Self::create_user) with the role by name (as typed
    /// on the command line or sent over HTTPS): an unknown role is a
    /// refused create, audited as such.
    pub fn create_user_named(
        &self,
        username: &str,
        role: &str,
        password: &Password,
    ) -> Result<UserInfo> {
        match Role::from_name(role) {
            Some(role) => self.create_user(username, role, password),
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
    pub fn set_role_named(&self, username: &str, role: &str) -> Result<()> {
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

impl KeyHolder<'_> {
    /// Enrols a new TOTP authenticator for a person, replacing any, to hand
    /// over in person (the command line prints its QR code).
    pub fn enrol_totp(&self, username: &str) -> Result<TotpEnrolment> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "enrol-totp".into(),
                target: username.to_string(),
            },
            || {
                let a = self.person(username)?;
                let secret = TotpSecret::generate()?;
                self.auth.store_totp(&UserId(a.id.clone()), &secret, None)?;
                tracing::info!(user = %a.id, "TOTP enrolled by the key holder");
                Ok(TotpEnrolment::new(
                    secret,
                    &self.auth.config.issuer,
                    &a.username,
                ))
            },
        )
    }

    /// Replaces a person's recovery codes, to hand over in person.
    pub fn issue_recovery_codes(&self, username: &str) -> Result<RecoveryCodes> {
        self.audited(
            AuditAction::UserAdmin {
                operation: "issue-recovery-codes".into(),
                target: username.to_string(),
            },
            || {
                let a = self.person(username)?;
                self.auth.new_recovery_codes(&UserId(a.id))
            },
        )
    }
}
