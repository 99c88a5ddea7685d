//! What identity and access record about signing in, and in which words.
//!
//! Every step of a sign-in (the password, a second factor, enrolling one,
//! a step-up check) and every lockout is recorded by the function of this
//! crate that performs it, once, after it, with what really happened, in
//! the vault's audit log (the [`rxvault_audit::Sink`] [`Auth`] was built
//! with). The server, the command line and any later caller get the same
//! entries without writing any.
//!
//! | step | success | failure |
//! |---|---|---|
//! | password ([`Auth::login_password`]) | `auth-success` (`password`) | `auth-failure` (`password`, reason) |
//! | second factor at login (TOTP, recovery code, passkey) | `mfa-success` (method), the new session | `mfa-failure` (method, reason), the pending login |
//! | enrolment at first login (TOTP, passkey) | `user-admin` (`enrol-totp` / `enrol-passkey` of the person) and `mfa-success` (`totp-enrolment` / `webauthn-enrolment`) | `mfa-failure` (method, reason) |
//! | step-up in a session (TOTP, passkey) | `mfa-success` (`totp-step-up` / `webauthn-step-up`) | `mfa-failure` (method, reason) |
//! | another passkey registered in a session | `user-admin` (`add-passkey`) | `user-admin` (`add-passkey`), denied |
//! | the failure that locks a login name | | and `lockout` (denied) |
//! | logout | `logout` | `logout`, error |
//!
//! A refusal (wrong credential, throttled, locked, a request that cannot
//! succeed) is `denied`; a failure of the machinery (the store) is `error`.
//! The actor is the login name as typed (normalised) for the password step,
//! and the account's name afterwards; the entry carries the source address,
//! host and user agent of the [`Client`] the caller passed in.
//!
//! **The audit may say what the client may not.** Every credential failure
//! answers [`Error::InvalidCredentials`](crate::Error) whatever it was, but
//! its entry gives the reason ([`Failure`]): unknown user, bad password,
//! disabled account, wrong or replayed code, ... No entry carries a
//! password, code, token or secret.

use crate::principal::{HostId, Principal, SessionId};
use crate::{Auth, Error, Result};
use rxvault_audit::{Action as AuditAction, Actor as AuditActor, Entry, Outcome};
use std::net::IpAddr;

/// What the caller knows of the client behind an attempt: where it comes
/// from and what it says it is. No HTTP here: the server fills it in from
/// the connection and the request's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The source address (sessions are bound to it).
    pub source: IpAddr,
    /// The workstation or agent the client names, if any (sessions are
    /// bound to it).
    pub host: Option<HostId>,
    /// The client software as it names itself (an HTTP `User-Agent`), for
    /// the audit only: never checked, cleaned and cut to
    /// [`USER_AGENT_MAX`] characters when recorded.
    pub user_agent: Option<String>,
}

/// The most characters of a user agent recorded.
pub const USER_AGENT_MAX: usize = 256;

impl Client {
    /// A client at `source`, naming no host and no software.
    pub fn at(source: IpAddr) -> Self {
        Client {
            source,
            host: None,
            user_agent: None,
        }
    }

    /// With the host it names.
    #[must_use]
    pub fn host(mut self, host: Option<HostId>) -> Self {
        self.host = host;
        self
    }

    /// With the software it says it is.
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }
}

impl From<IpAddr> for Client {
    fn from(source: IpAddr) -> Self {
        Client::at(source)
    }
}

/// A user agent as recorded: printable ASCII (anything else as `?`), at
/// most [`USER_AGENT_MAX`] characters.
pub(crate) fn clean_user_agent(ua: &str) -> String {
    ua.chars()
        .take(USER_AGENT_MAX)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// How a sign-in step was attempted, as audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// The password.
    Password,
    /// A TOTP code at login.
    Totp,
    /// A recovery code at login.
    RecoveryCode,
    /// A passkey assertion at login.
    Passkey,
    /// The first code of a TOTP authenticator being enrolled at login.
    TotpEnrolment,
    /// A passkey registered at login.
    PasskeyEnrolment,
    /// A TOTP code for a step-up in a session.
    TotpStepUp,
    /// A passkey assertion for a step-up in a session.
    PasskeyStepUp,
}

impl Method {
    /// The name recorded (`password`, `totp`, `recovery-code`, `webauthn`,
    /// `totp-enrolment`, `webauthn-enrolment`, `totp-step-up`,
    /// `webauthn-step-up`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Totp => "totp",
            Method::RecoveryCode => "recovery-code",
            Method::Passkey => "webauthn",
            Method::TotpEnrolment => "totp-enrolment",
            Method::PasskeyEnrolment => "webauthn-enrolment",
            Method::TotpStepUp => "totp-step-up",
            Method::PasskeyStepUp => "webauthn-step-up",
        }
    }
}

/// Why a sign-in step failed, as audited. The caller is told less (see
/// the crate documentation): these tell the privacy officer what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No account has this login name.
    UnknownUser,
    /// The password is wrong.
    BadPassword,
    /// The account is disabled.
    Disabled,
    /// The name is a service account's (API keys only).
    ServiceAccount,
    /// A TOTP code that is not the current one (±1 step).
    WrongCode,
    /// A TOTP code (or an older one) already used.
    ReplayedCode,
    /// A TOTP code for an account without an authenticator.
    NoAuthenticator,
    /// A recovery code that is not one of the account's unused ones.
    WrongRecoveryCode,
    /// A passkey answer the relying party refused (bad signature, another
    /// credential, a cloned authenticator's counter, ...).
    PasskeyRefused,
    /// A passkey answer without user verification (PIN, biometric).
    NotUserVerified,
    /// No challenge is open for this answer (none started, expired, or used).
    NoChallenge,
    /// The login or session ended under the attempt (completed by a
    /// concurrent request, revoked, the account disabled).
    Ended,
    /// Too many recent failures: refused before checking.
    Throttled,
    /// The login name is locked: refused before checking.
    Locked,
    /// A request that cannot succeed as sent.
    Invalid,
    /// The machinery failed (store, cryptography).
    Error,
}

impl Failure {
    /// The name recorded (`unknown-user`, `bad-password`, `wrong-code`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Failure::UnknownUser => "unknown-user",
            Failure::BadPassword => "bad-password",
            Failure::Disabled => "disabled",
            Failure::ServiceAccount => "service-account",
            Failure::WrongCode => "wrong-code",
            Failure::ReplayedCode => "replayed-code",
            Failure::NoAuthenticator => "no-authenticator",
            Failure::WrongRecoveryCode => "wrong-recovery-code",
            Failure::PasskeyRefused => "passkey-refused",
            Failure::NotUserVerified => "not-user-verified",
            Failure::NoChallenge => "no-challenge",
            Failure::Ended => "login-ended",
            Failure::Throttled => "throttled",
            Failure::Locked => "locked",
            Failure::Invalid => "invalid",
            Failure::Error => "error",
        }
    }

    /// The reason an error gives when nothing more precise is known.
    fn of(e: &Error) -> Failure {
        match e {
            Error::Throttled { .. } => Failure::Throttled,
            Error::Locked => Failure::Locked,
            Error::Unauthenticated => Failure::Ended,
            e if !e.is_refusal() => Failure::Error,
            _ => Failure::Invalid,
        }
    }
}

/// A failed step inside this crate: the error the caller gets, why it
/// failed, and whether this failure locked the login name.
pub(crate) struct Failed {
    pub(crate) error: Error,
    pub(crate) reason: Failure,
    pub(crate) locked: bool,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            reason: Failure::of(&error),
            error,
            locked: false,
        }
    }
}

/// Who attempts a step, as its entries name them.
pub(crate) struct Attempt {
    /// A person in a session (step-up, passkey registration): their entry.
    principal: Option<Principal>,
    /// Otherwise: the login name, the client and the pending login.
    name: String,
    client: Client,
    session: Option<SessionId>,
}

impl Attempt {
    /// An attempt at the login form by `name` (as normalised).
    pub(crate) fn login(name: &str, client: &Client) -> Self {
        Attempt {
            principal: None,
            name: name.to_string(),
            client: client.clone(),
            session: None,
        }
    }

    /// An attempt in the pending login `session`.
    pub(crate) fn pending(name: &str, client: Client, session: &SessionId) -> Self {
        Attempt {
            principal: None,
            name: name.to_string(),
            client,
            session: Some(session.clone()),
        }
    }

    /// An attempt by a principal in their session.
    pub(crate) fn in_session(principal: &Principal) -> Self {
        Attempt {
            principal: Some(principal.clone()),
            name: String::new(),
            client: Client::at(principal.source()).host(principal.host().cloned()),
            session: principal.session_id().cloned(),
        }
    }

    /// The user agent of the attempt, as recorded.
    pub(crate) fn user_agent(&self) -> Option<String> {
        self.client.user_agent.as_deref().map(clean_user_agent)
    }

    /// The entry of `action` by this attempt's actor, with its client.
    pub(crate) fn entry(&self, action: AuditAction) -> Entry {
        let mut e = match &self.principal {
            Some(p) => p.audit_entry(action),
            None => {
                let mut e = Entry::new(AuditActor::user(self.name.clone()), action)
                    .source(self.client.source);
                if let Some(h) = &self.client.host {
                    e = e.host(h.as_str().to_string());
                }
                if let Some(s) = &self.session {
                    e = e.session(s.as_str().to_string());
                }
                e
            }
        };
        if let Some(ua) = self.user_agent() {
            e = e.user_agent(ua);
        }
        e
    }

    /// The entry of a step `principal` completed (a new session, a
    /// refreshed one), with this attempt's user agent.
    pub(crate) fn done_by(&self, principal: &Principal, action: AuditAction) -> Entry {
        let e = principal.audit_entry(action);
        match self.user_agent() {
            Some(ua) => e.user_agent(ua),
            None => e,
        }
    }
}

impl Auth {
    /// Records how a sign-in step ended and hands its result on: on
    /// success the entries `success` makes of it; on failure one
    /// `auth-failure` (the password step) or `mfa-failure` with the reason,
    /// and a `lockout` if this failure locked the login name.
    pub(crate) fn audited_step<T>(
        &self,
        attempt: &Attempt,
        method: Method,
        result: std::result::Result<T, Failed>,
        success: impl FnOnce(&T) -> Vec<Entry>,
    ) -> Result<T> {
        match result {
            Ok(value) => {
                for entry in success(&value) {
                    self.record(entry)?;
                }
                Ok(value)
            }
            Err(failed) => {
                let outcome = if failed.error.is_refusal() {
                    Outcome::Denied
                } else {
                    Outcome::Error
                };
                let reason = failed.reason.name().to_string();
                let action = match method {
                    Method::Password => AuditAction::AuthFailure {
                        method: method.name().into(),
                        reason,
                    },
                    _ => AuditAction::MfaFailure {
                        method: method.name().into(),
                        reason: Some(reason),
                    },
                };
                self.record(attempt.entry(action).outcome(outcome))?;
                if failed.locked {
                    self.record(
                        attempt
                            .entry(AuditAction::Lockout { until_ms: None })
                            .outcome(Outcome::Denied),
                    )?;
                }
                Err(failed.error)
            }
        }
    }

    /// Records an act with its real outcome (success, a refusal as denied,
    /// a failure as an error) and hands its result on.
    pub(crate) fn audited_act<T>(&self, entry: Entry, result: Result<T>) -> Result<T> {
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(e) if e.is_refusal() => Outcome::Denied,
            Err(_) => Outcome::Error,
        };
        self.record(entry.outcome(outcome))?;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_cleaned_and_cut() {
        assert_eq!(clean_user_agent("curl/8.5.0"), "curl/8.5.0");
        assert_eq!(clean_user_agent("a\nb\u{1b}[31mé"), "a?b?[31m?");
        assert_eq!(clean_user_agent(&"x".repeat(1000)).len(), USER_AGENT_MAX);
    }

    #[test]
    fn names_are_distinct() {
        use std::collections::HashSet;
        let methods = [
            Method::Password,
            Method::Totp,
            Method::RecoveryCode,
            Method::Passkey,
            Method::TotpEnrolment,
            Method::PasskeyEnrolment,
            Method::TotpStepUp,
            Method::PasskeyStepUp,
        ];
        assert_eq!(
            methods
                .iter()
                .map(|m| m.name())
                .collect::<HashSet<_>>()
                .len(),
            methods.len()
        );
        let failures = [
            Failure::UnknownUser,
            Failure::BadPassword,
            Failure::Disabled,
            Failure::ServiceAccount,
            Failure::WrongCode,
            Failure::ReplayedCode,
            Failure::NoAuthenticator,
            Failure::WrongRecoveryCode,
            Failure::PasskeyRefused,
            Failure::NotUserVerified,
            Failure::NoChallenge,
            Failure::Ended,
            Failure::Throttled,
            Failure::Locked,
            Failure::Invalid,
            Failure::Error,
        ];
        assert_eq!(
            failures
                .iter()
                .map(|f| f.name())
                .collect::<HashSet<_>>()
                .len(),
            failures.len()
        );
    }
}
