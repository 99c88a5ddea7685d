//! Separation of duties: no one alone can give anyone, themselves
//! included, access to charts.
//!
//! The probe that asked for this: an administrator created a pharmacist
//! with a password of their choosing, enrolled its TOTP, and read charts;
//! or a second administrator flipped the first one's role. Two rules close
//! both paths:
//!
//! - **An administrator never learns a person's password or second
//!   factor.** A person gets a one-time **enrolment code**
//!   ([`Admin::add_person`](crate::Admin::add_person),
//!   [`Admin::issue_enrolment_code`](crate::Admin::issue_enrolment_code)):
//!   120 random bits, stored only as a SHA-256 hash, valid for
//!   [`AuthConfig::enrolment_code_lifetime`](crate::AuthConfig) (72 hours),
//!   spent by its first use. The person redeems it
//!   ([`Auth::redeem_enrolment`]) with their login name and a password of
//!   their own (the policy applies); the login then continues as one with
//!   no second factor: they must enrol TOTP or a passkey before anything
//!   else. Wrong codes count against the login name and the source address
//!   exactly like wrong passwords (throttled, then locked). Issuing a code
//!   for an existing person re-enrols them: password, second factors and
//!   sessions are gone at once, and a sensitive role is suspended until a
//!   second person approves it again. No path sets a person's password or
//!   second factor for them.
//! - **A role that reads charts or approves, and an API key that reads
//!   charts, need a second person.** Giving a role that is sensitive
//!   ([`Role::is_sensitive`]: it reads charts, may break the glass, or
//!   approves) and is not a lowering
//!   ([`permissions::needs_approval`](crate::permissions::needs_approval)),
//!   or issuing a key with a chart-reading scope
//!   ([`Scope::reads_charts`]), creates an [`AccessRequest`]; nothing is
//!   granted until an [`Approver`] approves it: an administrator or the
//!   privacy officer ([`Action::AccessApprove`](crate::Action), with
//!   step-up) who neither asked nor is the person it is for, or the local
//!   operator. A request lapses after
//!   [`AuthConfig::access_request_lifetime`](crate::AuthConfig) (7 days);
//!   a later request or a direct role change for the same person
//!   supersedes it. A shipping-clerk role and lowerings take effect at
//!   once. Approvers' roles are sensitive too: otherwise an administrator
//!   could make a second administrator and approve through them.
//!
//! **The local operator** (whoever runs `rxvault user ...` on the vault's
//! machine with its key: principal `local`) already holds every record, so
//! they are one person in this count: they may approve requests that
//! others made over HTTPS, and their own requests need someone else (an
//! administrator or the privacy officer over HTTPS), with two exceptions,
//! each audited as the ground of the approval ([`ApprovalBasis`]):
//! - **the first administrator**: while no enabled person other than the
//!   one concerned holds a role that approves, the local operator's grant
//!   of the administrator role takes effect at once (an installation must
//!   start somewhere; it is also how a pharmacy whose only administrator is
//!   gone recovers, after disabling them);
//! - **single-operator mode** ([`KeyHolder::set_single_operator`], audited,
//!   off by default): a one-person pharmacy, where the local operator may
//!   approve their own requests (still two steps, each recorded).
//!
//! Every step is in the audit log, by who did it, with its real outcome:
//! `access-requested`, `access-approved` (denied when the approver may not,
//! with the basis when granted), `access-refused`, `enrolment-code-issued`,
//! `enrolment-code-redeemed` (denied for a wrong, spent or expired code or
//! a refused password), `single-operator-set`.

use crate::admin::{Admin, KeyHolder, UserInfo};
use crate::principal::{Principal, SessionId, UserId};
use crate::session::Login;
use crate::throttle::normalize_username;
use crate::trail::{Client, Failure};
use crate::{Action, Auth, Error, Result, Role, Scope, policy, secs, ts};
use rxvault_audit::{AccessGrant, Action as AuditAction, ApprovalBasis};
use rxvault_crypto::password::hash_password;
use rxvault_crypto::{Password, Token, TokenHash, TokenKind};
use rxvault_model::Timestamp;
use rxvault_store::auth::{
    AccountKind, AccountUpdate, RequestKind, RequestStatus, StoredAccessRequest, StoredAccount,
    StoredEnrolmentCode,
};
use std::fmt;

/// The role stored for a person who has none yet (a new person whose role
/// awaits approval, or one re-enrolling).
pub(crate) const UNASSIGNED: &str = "unassigned";

/// The identity setting of single-operator mode.
const SINGLE_OPERATOR: &str = "single-operator";

/// A stored role: `Some(None)` for none yet, `None` for a name no role has
/// (a corrupt row).
pub(crate) fn stored_role(name: &str) -> Option<Option<Role>> {
    if name == UNASSIGNED {
        Some(None)
    } else {
        Role::from_name(name).map(Some)
    }
}

/// A one-time enrolment code, to hand to the person it is for (shown once;
/// only its hash is stored).
pub struct EnrolmentCode {
    code: Token,
    expires_at: Timestamp,
}

impl EnrolmentCode {
    /// The code (`xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`).
    pub fn code(&self) -> &str {
        self.code.expose()
    }

    /// When it stops working.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

impl fmt::Debug for EnrolmentCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrolmentCode")
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What an access request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A role for a person.
    Role {
        /// The role asked for.
        role: Role,
        /// The role they held when it was asked (`None`: none).
        previous: Option<Role>,
    },
    /// That an API key with chart-reading scopes may be used.
    ApiKey {
        /// The key's public id.
        key: String,
        /// Its scopes.
        scopes: Vec<Scope>,
    },
}

impl Grant {
    fn audit(&self) -> AccessGrant {
        match self {
            Grant::Role { role, previous } => AccessGrant::Role {
                role: role.name().to_string(),
                previous: previous.map(|r| r.name().to_string()),
            },
            Grant::ApiKey { key, scopes } => AccessGrant::ApiKey {
                key: key.clone(),
                scopes: scopes.iter().map(|s| s.name().to_string()).collect(),
            },
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.audit().describe())
    }
}

/// Where an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for a second person.
    Pending,
    /// Granted.
    Approved,
    /// Refused (a refused key is revoked).
    Refused,
    /// Replaced by a later request or a direct role change.
    Superseded,
    /// Lapsed without a decision.
    Expired,
}

impl Status {
    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Refused => "refused",
            Status::Superseded => "superseded",
            Status::Expired => "expired",
        }
    }
}

/// A request for access that a second person must approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// Its id (what an approver names).
    pub id: String,
    /// The account it is for.
    pub account: UserId,
    /// That account's name.
    pub target: String,
    /// What it grants.
    pub grant: Grant,
    /// Who asked: a login name, or `local` (the local operator).
    pub requested_by: String,
    /// Asked.
    pub created_at: Timestamp,
    /// Lapses.
    pub expires_at: Timestamp,
    /// Where it stands.
    pub status: Status,
}

/// The outcome of a role change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// In force from the person's next request.
    Applied,
    /// Waiting for a second person (the role is unchanged until then).
    Pending(AccessRequest),
}

/// A person just created: their enrolment code, and their role (given, or
/// waiting for approval).
#[derive(Debug)]
pub struct NewPerson {
    /// The account (its role is `None` until a pending role is approved).
    pub user: UserInfo,
    /// The code to hand to them.
    pub enrolment: EnrolmentCode,
    /// Whether the role was given or awaits approval.
    pub role: RoleChange,
}

/// A re-enrolment: the code, and the request that restores a sensitive
/// role, if the person had one.
#[derive(Debug)]
pub struct Reenrolment {
    /// The code to hand to them.
    pub enrolment: EnrolmentCode,
    /// The request restoring their role, if it needs approval.
    pub request: Option<AccessRequest>,
}

/// Approving and refusing access requests: an administrator or the privacy
/// officer ([`Auth::approver`]), or the local operator
/// ([`KeyHolder::approver`]).
#[derive(Debug)]
pub struct Approver<'a> {
    auth: &'a Auth,
    /// `None`: the local operator.
    by: Option<Principal>,
}

/// The audit entry of an act by `by` (`None`: the local operator).
pub(crate) fn entry_by(by: Option<&Principal>, action: AuditAction) -> rxvault_audit::Entry {
    match by {
        Some(p) => p.audit_entry(action),
        None => rxvault_audit::Entry::new(rxvault_audit::Actor::local_operator(), action),
    }
}

/// The outcome an audit entry records for `result`.
pub(crate) fn outcome_of<T>(result: &Result<T>) -> rxvault_audit::Outcome {
    match result {
        Ok(_) => rxvault_audit::Outcome::Success,
        Err(e) if e.is_refusal() => rxvault_audit::Outcome::Denied,
        Err(_) => rxvault_audit::Outcome::Error,
    }
}

impl Auth {
    /// Approvals for `principal`: needs [`Action::AccessApprove`] (an
    /// administrator or the privacy officer) and a second factor within the
    /// step-up window.
    pub fn approver(&self, principal: &Principal) -> Result<Approver<'_>> {
        self.authorize(principal, Action::AccessApprove)?;
        Ok(Approver {
            auth: self,
            by: Some(principal.clone()),
        })
    }

    /// Whether single-operator mode is on (see the module documentation).
    pub fn single_operator(&self) -> Result<bool> {
        Ok(self.store.setting(SINGLE_OPERATOR)?.as_deref() == Some("on"))
    }

    /// Redeems an enrolment code: the person named sets their own password
    /// (checked against the policy), the code is spent, and the login
    /// continues as one without a second factor ([`Login::Enrol`]: enrol
    /// TOTP or a passkey, nothing else). A wrong, spent or expired code, an
    /// unknown or disabled account all are [`Error::InvalidCredentials`]
    /// and count against the name and the source like a wrong password; a
    /// refused password keeps the code for another try. Audited here
    /// (`enrolment-code-redeemed`, by the name presented, with its
    /// outcome).
    pub fn redeem_enrolment(
        &self,
        username: &str,
        code: &str,
        password: &Password,
        client: &Client,
    ) -> Result<Login> {
        let name = normalize_username(username);
        let result = self.redeem(&name, code, password, client);
        let mut entry = crate::trail::Attempt::login(&name, client)
            .entry(AuditAction::EnrolmentCodeRedeemed {
                target: name.clone(),
            })
            .outcome(outcome_of(&result));
        if let Ok(login) = &result {
            entry = entry.session(login_id(login).as_str().to_string());
        }
        self.record(entry)?;
        result
    }

    fn redeem(
        &self,
        name: &str,
        code: &str,
        password: &Password,
        client: &Client,
    ) -> Result<Login> {
        let subjects = self.subjects(Some(name), client.source);
        self.check_throttle(subjects)?;
        let now = self.now_unix();
        let presented = Token::from_presented(code);
        let account = self.store.account_by_username(name)?;
        let stored = match &account {
            Some(a) => self.store.enrolment_code(&a.id)?,
            None => None,
        };
        let account = match (account, stored) {
            (Some(a), Some(c))
                if TokenHash(c.code_hash).matches(&presented, TokenKind::EnrolmentCode)
                    && now < c.expires_at
                    && a.kind == AccountKind::Human
                    && !a.disabled =>
            {
                a
            }
            _ => return Err(self.failed(subjects, Failure::WrongCode).error),
        };
        let password = match policy::check(&account.username, password) {
            Ok(p) => p,
            Err(rejection) => {
                // The code was right: this attempt is given back, and the
                // code kept for a better password.
                self.pass(subjects)?;
                return Err(Error::WeakPassword(rejection));
            }
        };
        let hash = hash_password(&password, &self.pepper)?;
        if !self.store.take_enrolment_code(
            &account.id,
            &presented.hash(TokenKind::EnrolmentCode).0,
            now,
        )? {
            // Spent by a concurrent redemption.
            return Err(self.failed(subjects, Failure::WrongCode).error);
        }
        self.store.update_account(
            &account.id,
            &AccountUpdate::PasswordHash(hash.as_str().to_string()),
            now,
        )?;
        tracing::info!(user = %account.id, "enrolment code redeemed");
        let login = self.begin_login(&account, client)?;
        self.pass(subjects)?;
        Ok(login)
    }

    /// Issues (replacing any earlier) an enrolment code for `account`.
    pub(crate) fn new_enrolment_code(
        &self,
        by: Option<&Principal>,
        account: &StoredAccount,
    ) -> Result<EnrolmentCode> {
        let code = Token::generate(TokenKind::EnrolmentCode)?;
        let now = self.now_unix();
        let expires = now.saturating_add(secs(self.config.enrolment_code_lifetime));
        self.store.set_enrolment_code(&StoredEnrolmentCode {
            account_id: account.id.clone(),
            code_hash: code.hash(TokenKind::EnrolmentCode).0,
            issued_by: by.map(|p| p.user_id().as_str().to_string()),
            created_at: now,
            expires_at: expires,
        })?;
        tracing::info!(user = %account.id, "enrolment code issued");
        Ok(EnrolmentCode {
            code,
            expires_at: ts(expires),
        })
    }

    /// Stores a request for `grant` on `account` by `by` and records it;
    /// if the local operator asked for the vault's first administrator,
    /// approves it at once (recorded as such).
    pub(crate) fn request_access(
        &self,
        by: Option<&Principal>,
        account: &StoredAccount,
        grant: Grant,
    ) -> Result<RoleChange> {
        let now = self.now_unix();
        let (kind, role, previous, key) = match &grant {
            Grant::Role { role, previous } => (
                RequestKind::Role,
                Some(role.name().to_string()),
                Some(previous.map_or(UNASSIGNED, Role::name).to_string()),
                None,
            ),
            Grant::ApiKey { key, .. } => (RequestKind::ApiKey, None, None, Some(key.clone())),
        };
        let stored = StoredAccessRequest {
            id: rxvault_crypto::random_id()?,
            kind,
            account_id: account.id.clone(),
            role,
            previous_role: previous,
            api_key_id: key,
            requested_by: by.map(|p| p.user_id().as_str().to_string()),
            created_at: now,
            expires_at: now.saturating_add(secs(self.config.access_request_lifetime)),
            status: RequestStatus::Pending,
            decided_by: None,
            decided_at: None,
        };
        let result = self.store.insert_access_request(&stored);
        let request = self.request_of(&stored)?;
        self.record(
            entry_by(
                by,
                AuditAction::AccessRequested {
                    request: request.id.clone(),
                    target: request.target.clone(),
                    grant: request.grant.audit(),
                },
            )
            .outcome(if result.is_ok() {
                rxvault_audit::Outcome::Success
            } else {
                rxvault_audit::Outcome::Error
            }),
        )?;
        result?;
        tracing::info!(request = %request.id, user = %account.id, "access requested");
        let first_admin = by.is_none()
            && matches!(
                request.grant,
                Grant::Role {
                    role: Role::Administrator,
                    ..
                }
            )
            && !self.someone_else_approves(&account.id)?;
        if first_admin {
            let approver = Approver {
                auth: self,
                by: None,
            };
            approver.decide(&request.id, true, Some(ApprovalBasis::FirstAdministrator))?;
            return Ok(RoleChange::Applied);
        }
        Ok(RoleChange::Pending(request))
    }

    /// Whether an enabled person other than `subject` holds a role that
    /// approves.
    fn someone_else_approves(&self, subject: &str) -> Result<bool> {
        Ok(self.store.accounts()?.iter().any(|a| {
            a.kind == AccountKind::Human
                && !a.disabled
                && a.id != subject
                && stored_role(&a.role).flatten().is_some_and(|r| {
                    crate::permissions::allowed(r, Action::AccessApprove).is_some()
                })
        }))
    }

    /// A stored request as approvers see it.
    fn request_of(&self, r: &StoredAccessRequest) -> Result<AccessRequest> {
        let corrupt = |what: &str| {
            Error::Store(rxvault_store::Error::Corrupt(format!(
                "access request {}: {what}",
                r.id
            )))
        };
        let target = self
            .store
            .account(&r.account_id)?
            .map_or_else(|| r.account_id.clone(), |a| a.username);
        let grant = match r.kind {
            RequestKind::Role => Grant::Role {
                role: r
                    .role
                    .as_deref()
                    .and_then(Role::from_name)
                    .ok_or_else(|| corrupt("role"))?,
                previous: r.previous_role.as_deref().and_then(stored_role).flatten(),
            },
            RequestKind::ApiKey => {
                let key = r.api_key_id.clone().ok_or_else(|| corrupt("key"))?;
                let scopes = self
                    .store
                    .api_keys(Some(&r.account_id))?
                    .into_iter()
                    .find(|k| k.id == key)
                    .map(|k| {
                        k.scopes
                            .split_whitespace()
                            .filter_map(Scope::from_name)
                            .collect()
                    })
                    .unwrap_or_default();
                Grant::ApiKey { key, scopes }
            }
        };
        let requested_by = match &r.requested_by {
            None => "local".to_string(),
            Some(id) => self
                .store
                .account(id)?
                .map_or_else(|| id.clone(), |a| a.username),
        };
        let status = match r.status {
            RequestStatus::Pending if self.now_unix() >= r.expires_at => Status::Expired,
            RequestStatus::Pending => Status::Pending,
            RequestStatus::Approved => Status::Approved,
            RequestStatus::Refused => Status::Refused,
            RequestStatus::Superseded => Status::Superseded,
        };
        Ok(AccessRequest {
            id: r.id.clone(),
            account: UserId(r.account_id.clone()),
            target,
            grant,
            requested_by,
            created_at: ts(r.created_at),
            expires_at: ts(r.expires_at),
            status,
        })
    }
}

/// The id of a login's pending session.
fn login_id(login: &Login) -> &SessionId {
    match login {
        Login::SecondFactor(s) => s.id(),
        Login::Enrol(s) => s.id(),
    }
}

impl Approver<'_> {
    /// Requests still waiting for a second person, oldest first.
    pub fn pending(&self) -> Result<Vec<AccessRequest>> {
        self.auth
            .store
            .access_requests(Some(self.auth.now_unix()))?
            .iter()
            .map(|r| self.auth.request_of(r))
            .collect()
    }

    /// One request, whatever its status.
    pub fn request(&self, id: &str) -> Result<AccessRequest> {
        let r = self.auth.store.access_request(id)?.ok_or(Error::NotFound {
            what: "access request",
        })?;
        self.auth.request_of(&r)
    }

    /// Approves a pending request: the role is given, or the key may be
    /// used. Refused ([`Error::Forbidden`]) for the approver's own request
    /// (unless they are the local operator in single-operator mode) or one
    /// for themselves; [`Error::Conflict`] if it was decided, superseded or
    /// has expired. Audited with its outcome and, when granted, its basis.
    pub fn approve(&self, id: &str) -> Result<AccessRequest> {
        self.decide(id, true, None)
    }

    /// Refuses a pending request (a refused key is revoked). The same
    /// people may refuse as may approve.
    pub fn refuse(&self, id: &str) -> Result<AccessRequest> {
        self.decide(id, false, None)
    }

    /// Decides `id`; `basis` set: the decision's ground is already known
    /// (the first administrator).
    pub(crate) fn decide(
        &self,
        id: &str,
        approve: bool,
        basis: Option<ApprovalBasis>,
    ) -> Result<AccessRequest> {
        let found = self.auth.store.access_request(id);
        let stored = match found {
            Ok(Some(r)) => r,
            Ok(None) => {
                let result: Result<AccessRequest> = Err(Error::NotFound {
                    what: "access request",
                });
                self.record(id, None, approve, None, &result)?;
                return result;
            }
            Err(e) => return Err(e.into()),
        };
        let request = self.auth.request_of(&stored)?;
        let mut granted_basis = None;
        let result = (|| {
            let basis = match basis {
                Some(b) => b,
                None => self.basis(&stored)?,
            };
            match request.status {
                Status::Pending => {}
                other => {
                    return Err(Error::Conflict(format!(
                        "access request {id} is {}",
                        other.name()
                    )));
                }
            }
            let by = self.by.as_ref().map(|p| p.user_id().as_str());
            if !self
                .auth
                .store
                .decide_access_request(id, approve, by, self.auth.now_unix())?
            {
                return Err(Error::Conflict(format!(
                    "access request {id} was decided or expired meanwhile"
                )));
            }
            granted_basis = Some(basis);
            let mut decided = request.clone();
            decided.status = if approve {
                Status::Approved
            } else {
                Status::Refused
            };
            tracing::info!(request = %id, approve, "access request decided");
            Ok(decided)
        })();
        self.record(id, Some(&request), approve, granted_basis, &result)?;
        result
    }

    /// On what ground this approver may decide `r`, or why not.
    fn basis(&self, r: &StoredAccessRequest) -> Result<ApprovalBasis> {
        let refused = Error::Forbidden {
            action: Action::AccessApprove,
        };
        match &self.by {
            Some(p) => {
                let me = p.user_id().as_str();
                if r.requested_by.as_deref() == Some(me) || r.account_id == me {
                    return Err(refused);
                }
                Ok(ApprovalBasis::SecondPerson)
            }
            None if r.requested_by.is_some() => Ok(ApprovalBasis::SecondPerson),
            None if self.auth.single_operator()? => Ok(ApprovalBasis::SingleOperator),
            None => Err(refused),
        }
    }

    fn record(
        &self,
        id: &str,
        request: Option<&AccessRequest>,
        approve: bool,
        basis: Option<ApprovalBasis>,
        result: &Result<AccessRequest>,
    ) -> Result<()> {
        let target = request.map(|r| r.target.clone());
        let grant = request.map(|r| r.grant.audit());
        let requested_by = request.map(|r| r.requested_by.clone());
        let action = if approve {
            AuditAction::AccessApproved {
                request: id.to_string(),
                target,
                grant,
                requested_by,
                basis,
            }
        } else {
            AuditAction::AccessRefused {
                request: id.to_string(),
                target,
                grant,
                requested_by,
            }
        };
        self.auth
            .record(entry_by(self.by.as_ref(), action).outcome(outcome_of(result)))
    }
}

impl<'a> KeyHolder<'a> {
    /// Approvals by the local operator.
    pub fn approver(&self) -> Approver<'a> {
        Approver {
            auth: self.auth(),
            by: None,
        }
    }

    /// Switches single-operator mode (the local operator may approve their
    /// own requests: a one-person pharmacy). Audited.
    pub fn set_single_operator(&self, enabled: bool) -> Result<()> {
        let result = self
            .auth()
            .store
            .set_setting(SINGLE_OPERATOR, if enabled { "on" } else { "off" })
            .map_err(Error::from);
        self.auth().record(
            entry_by(None, AuditAction::SingleOperatorSet { enabled }).outcome(outcome_of(&result)),
        )?;
        if result.is_ok() {
            tracing::warn!(enabled, "single-operator mode set");
        }
        result
    }
}

impl Admin<'_> {
    /// Gives `account` (a person) `role`: at once if it needs no second
    /// person, else as a request (superseding earlier ones either way).
    pub(crate) fn change_role(&self, account: &StoredAccount, role: Role) -> Result<RoleChange> {
        let current = stored_role(&account.role).flatten();
        if crate::permissions::needs_approval(current, role) {
            return self.auth().request_access(
                self.by(),
                account,
                Grant::Role {
                    role,
                    previous: current,
                },
            );
        }
        let now = self.auth().now_unix();
        self.auth().store.update_account(
            &account.id,
            &AccountUpdate::Role(role.name().into()),
            now,
        )?;
        self.auth()
            .store
            .supersede_role_requests(&account.id, now)?;
        Ok(RoleChange::Applied)
    }

    /// A new person's account and its enrolment code (no password until
    /// they redeem it); a sensitive role is requested, not given.
    pub(crate) fn create_person(&self, name: &str, role: Role) -> Result<(StoredAccount, bool)> {
        let now = self.auth().now_unix();
        let pending = crate::permissions::needs_approval(None, role);
        let account = StoredAccount {
            id: rxvault_crypto::random_id()?,
            username: name.to_string(),
            kind: AccountKind::Human,
            role: if pending { UNASSIGNED } else { role.name() }.to_string(),
            disabled: false,
            password_hash: None,
            created_at: now,
            updated_at: now,
        };
        if !self.auth().store.create_account(&account)? {
            return Err(Error::Conflict(format!("the user name {name} is taken")));
        }
        tracing::info!(user = %account.id, role = %role, pending, "person created");
        Ok((account, pending))
    }
}
