//! Logging in: the password, then a second factor (or enrolling one), and
//! step-up checks later in a session.
//!
//! Every attempt is first checked against the throttle (see
//! [`crate::throttle`]); every failure counts and is answered with
//! [`Error::InvalidCredentials`](crate::Error), whatever
//! failed. An unknown or disabled account, or a service account at the
//! login form, runs the same Argon2id verification as a real one (against a
//! dummy hash when there is no account).
//!
//! TOTP codes are checked with [`rxvault_crypto::TotpSecret::verify`]
//! (±1 step, constant time) and then the matched step is recorded with a
//! compare-and-set ([`AuthStore::advance_totp_step`]): a code, or any older
//! one, is accepted at most once even by concurrent requests.
//!
//! [`AuthStore::advance_totp_step`]: rxvault_store::auth::AuthStore::advance_totp_step

use crate::passkey::{
    CreationChallengeResponse, LOGIN, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, STEP_UP,
};
use crate::principal::{Actor, HostId, Principal, SessionId, UserId};
use crate::session::{Authenticated, Core, Enrolling, Factors, Login, PendingMfa, Session};
use crate::throttle::normalize_username;
use crate::trail::{Attempt, Client, Failed, Failure, Method};
use crate::{Auth, Error, Result, policy, ts};
use base64::Engine;
use rxvault_audit::Action as AuditAction;
use rxvault_crypto::password::{self, PasswordHash};
use rxvault_crypto::{Password, Token, TokenKind, TotpSecret};
use rxvault_store::auth::{
    AccountKind, AccountUpdate, SessionStage, StoredAccount, StoredCeremony, StoredTotp,
};
use std::fmt;
use zeroize::Zeroizing;

/// How many recovery codes an account gets.
pub const RECOVERY_CODES: usize = 10;

const TOTP_ENROL: &str = "totp-enrol";
const TOTP_SEAL_DOMAIN_ENROL: &str = "auth/totp-enrolment";

/// A new TOTP authenticator to show the user once: the `otpauth://` URI,
/// its QR code, and the secret in base32 for typing in by hand.
pub struct TotpEnrolment {
    secret: TotpSecret,
    uri: Zeroizing<String>,
}

impl TotpEnrolment {
    pub(crate) fn new(secret: TotpSecret, issuer: &str, account: &str) -> Self {
        let uri = secret.otpauth_uri(issuer, account);
        TotpEnrolment { secret, uri }
    }

    /// The `otpauth://totp/...` URI (contains the secret).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The secret in base32, as authenticator apps accept it typed in.
    pub fn secret_base32(&self) -> Zeroizing<String> {
        self.secret.to_base32()
    }

    /// The URI as a QR code drawn with Unicode half blocks, light modules
    /// as foreground: it scans from a terminal with a dark background.
    pub fn qr_terminal(&self) -> Result<String> {
        use qrcode::render::unicode::Dense1x2;
        let code =
            qrcode::QrCode::with_error_correction_level(self.uri.as_bytes(), qrcode::EcLevel::M)
                .map_err(|e| Error::Invalid(format!("QR code: {e}")))?;
        Ok(code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build())
    }
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpEnrolment(<redacted>)")
    }
}

/// Fresh single-use recovery codes, to show the user once. Only their
/// hashes are stored.
pub struct RecoveryCodes(Vec<Token>);

impl RecoveryCodes {
    /// The codes (`xxxx-xxxx-xxxx-xxxx`).
    pub fn codes(&self) -> Vec<&str> {
        self.0.iter().map(Token::expose).collect()
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCodes({} codes, <redacted>)", self.0.len())
    }
}

impl Auth {
    /// Checks a password. On success the login continues with a second
    /// factor, or with enrolling one if the account has none. Unknown user,
    /// wrong password, disabled account and service account are all
    /// [`Error::InvalidCredentials`], at the same cost. Audited here (see
    /// [`crate::trail`]): the entry says which it was.
    pub fn login_password(
        &self,
        username: &str,
        password: &Password,
        client: &Client,
    ) -> Result<Login> {
        let name = normalize_username(username);
        let attempt = Attempt::login(&name, client);
        let result = self.password_step(&name, password, client);
        self.audited_step(&attempt, Method::Password, result, |login| {
            let session = match login {
                Login::SecondFactor(s) => s.core.attempt(),
                Login::Enrol(s) => s.core.attempt(),
            };
            vec![session.entry(AuditAction::AuthSuccess {
                method: Method::Password.name().into(),
            })]
        })
    }

    fn password_step(
        &self,
        name: &str,
        password: &Password,
        client: &Client,
    ) -> Result<Login, Failed> {
        let subjects = self.subjects(Some(name), client.source);
        self.check_throttle(subjects)?;
        let password = policy::normalize(password);
        let account = self.store.account_by_username(name).map_err(Error::from)?;
        let hash = account
            .as_ref()
            .and_then(|a| a.password_hash.as_deref())
            .and_then(|h| PasswordHash::parse(h).ok());
        let verified = match &hash {
            Some(h) => password::verify_password(&password, h, &self.pepper),
            None => {
                let _ = password::verify_password(&password, password::dummy_hash(), &self.pepper);
                false
            }
        };
        let account = match account {
            None => return Err(self.failed(subjects, Failure::UnknownUser)),
            Some(a) if a.kind != AccountKind::Human => {
                return Err(self.failed(subjects, Failure::ServiceAccount));
            }
            Some(a) if a.disabled => return Err(self.failed(subjects, Failure::Disabled)),
            Some(_) if !verified => return Err(self.failed(subjects, Failure::BadPassword)),
            Some(a) => a,
        };
        if let Some(h) = &hash
            && !h.is_current()
        {
            // Parameters were raised (or the pepper added) since this hash
            // was made.
            let new = password::hash_password(&password, &self.pepper).map_err(Error::from)?;
            self.store
                .update_account(
                    &account.id,
                    &AccountUpdate::PasswordHash(new.as_str().to_string()),
                    self.now_unix(),
                )
                .map_err(Error::from)?;
        }
        let login = self.begin_login(&account, client)?;
        // The password was right: its attempt is given back.
        self.pass(subjects)?;
        Ok(login)
    }

    /// A login whose first credential proved right: a pending login that
    /// continues with a second factor, or with enrolling one if the
    /// account has none.
    pub(crate) fn begin_login(&self, account: &StoredAccount, client: &Client) -> Result<Login> {
        let user = UserId(account.id.clone());
        let factors = self.factors(&user)?;
        let stage = if factors.any() {
            SessionStage::PendingSecondFactor
        } else {
            SessionStage::PendingEnrolment
        };
        let (row, core) = self.new_session(&user, &account.username, stage, client)?;
        self.store.insert_session(&row)?;
        Ok(if factors.any() {
            Login::SecondFactor(Session {
                core,
                stage: PendingMfa { factors },
            })
        } else {
            Login::Enrol(Session {
                core,
                stage: Enrolling::new(),
            })
        })
    }

    /// Picks a login up again from its pending-login token (the next HTTP
    /// request of the same login, from `client`). Anything but a live
    /// pending login from the same source is [`Error::Unauthenticated`].
    pub fn resume(&self, pending_token: &Token, client: &Client) -> Result<Login> {
        let source = client.source;
        let hash = pending_token.hash(TokenKind::PendingLogin);
        let s = match self.store.session_by_token(&hash.0)? {
            Some(s)
                if s.revoked_at.is_none()
                    && s.stage != SessionStage::Authenticated
                    && self.now_unix() < s.expires_at
                    && (!self.config.bind_source_address || s.source == source.to_string()) =>
            {
                s
            }
            _ => return Err(Error::Unauthenticated),
        };
        let account = self.human(&s.account_id)?.ok_or(Error::Unauthenticated)?;
        let user = UserId(account.id.clone());
        let core = Core {
            id: SessionId(s.id),
            user: user.clone(),
            username: account.username,
            token: pending_token.clone(),
            expires_at: ts(s.expires_at),
            source,
            host: s.host.map(HostId::from_stored),
            user_agent: client.user_agent.clone(),
        };
        let factors = self.factors(&user)?;
        Ok(match s.stage {
            SessionStage::PendingSecondFactor if factors.any() => Login::SecondFactor(Session {
                core,
                stage: PendingMfa { factors },
            }),
            SessionStage::PendingEnrolment if !factors.any() => Login::Enrol(Session {
                core,
                stage: Enrolling::new(),
            }),
            // The account's factors changed under the login: start again.
            _ => return Err(Error::Unauthenticated),
        })
    }

    /// Completes a login with a TOTP code. Audited here.
    pub fn verify_totp(
        &self,
        pending: Session<PendingMfa>,
        code: &str,
    ) -> Result<Session<Authenticated>> {
        let attempt = pending.core.attempt();
        let result = (|| {
            let subjects = self.subjects(Some(&pending.core.username), pending.core.source);
            self.check_throttle(subjects)?;
            if let Some(why) = self.check_totp(&pending.core.user, code)? {
                return Err(self.failed(subjects, why));
            }
            self.finish_login(pending.core, subjects)
        })();
        self.audited_step(&attempt, Method::Totp, result, |s| {
            vec![attempt.done_by(s.principal(), mfa_success(Method::Totp))]
        })
    }

    /// Completes a login with a recovery code (spent by this use). Audited
    /// here.
    pub fn verify_recovery_code(
        &self,
        pending: Session<PendingMfa>,
        code: &str,
    ) -> Result<Session<Authenticated>> {
        let attempt = pending.core.attempt();
        let result = (|| {
            let subjects = self.subjects(Some(&pending.core.username), pending.core.source);
            self.check_throttle(subjects)?;
            let hash = Token::from_presented(code).hash(TokenKind::RecoveryCode);
            if !self
                .store
                .consume_recovery_code(pending.core.user.as_str(), &hash.0, self.now_unix())
                .map_err(Error::from)?
            {
                return Err(self.failed(subjects, Failure::WrongRecoveryCode));
            }
            tracing::warn!(user = %pending.core.user, "recovery code used");
            self.finish_login(pending.core, subjects)
        })();
        self.audited_step(&attempt, Method::RecoveryCode, result, |s| {
            vec![attempt.done_by(s.principal(), mfa_success(Method::RecoveryCode))]
        })
    }

    /// Starts a passkey login: the challenge for the browser.
    pub fn start_passkey_login(
        &self,
        pending: &Session<PendingMfa>,
    ) -> Result<RequestChallengeResponse> {
        let expires = pending.core.expires_at.unix_timestamp();
        self.passkey_auth_start(&pending.core.user, pending.core.id.as_str(), LOGIN, expires)
    }

    /// Completes a login with the browser's passkey assertion. Audited here.
    pub fn finish_passkey_login(
        &self,
        pending: Session<PendingMfa>,
        response: &PublicKeyCredential,
    ) -> Result<Session<Authenticated>> {
        let attempt = pending.core.attempt();
        let result = (|| {
            let subjects = self.subjects(Some(&pending.core.username), pending.core.source);
            self.check_throttle(subjects)?;
            if let Some(why) = self.passkey_auth_finish(
                &pending.core.user,
                pending.core.id.as_str(),
                LOGIN,
                response,
            )? {
                return Err(self.failed(subjects, why));
            }
            self.finish_login(pending.core, subjects)
        })();
        self.audited_step(&attempt, Method::Passkey, result, |s| {
            vec![attempt.done_by(s.principal(), mfa_success(Method::Passkey))]
        })
    }

    /// Starts enrolling a TOTP authenticator (an account without a second
    /// factor). Show the result to the user, then call
    /// [`finish_totp_enrolment`](Self::finish_totp_enrolment) with a code
    /// from their app.
    pub fn start_totp_enrolment(&self, enrolling: &Session<Enrolling>) -> Result<TotpEnrolment> {
        let secret = TotpSecret::generate()?;
        let (sealed, _) = self.seal(
            TOTP_SEAL_DOMAIN_ENROL,
            enrolling.core.id.as_str().as_bytes(),
            secret.to_base32().as_bytes(),
        )?;
        self.store.put_ceremony(&StoredCeremony {
            id: enrolling.core.id.as_str().to_string(),
            account_id: enrolling.core.user.as_str().to_string(),
            purpose: TOTP_ENROL.into(),
            state: base64::engine::general_purpose::STANDARD.encode(&sealed),
            expires_at: enrolling.core.expires_at.unix_timestamp(),
        })?;
        Ok(TotpEnrolment::new(
            secret,
            &self.config.issuer,
            &enrolling.core.username,
        ))
    }

    /// Confirms TOTP enrolment with a code from the new authenticator; the
    /// login completes and the account gets its recovery codes. Audited
    /// here: the enrolment (as `rxvault user` records one) and the login.
    pub fn finish_totp_enrolment(
        &self,
        enrolling: Session<Enrolling>,
        code: &str,
    ) -> Result<(Session<Authenticated>, RecoveryCodes)> {
        let attempt = enrolling.core.attempt();
        let username = enrolling.core.username.clone();
        let result = (|| {
            let subjects = self.subjects(Some(&enrolling.core.username), enrolling.core.source);
            self.check_throttle(subjects)?;
            let id = enrolling.core.id.as_str();
            let Some(ceremony) = self
                .store
                .take_ceremony(id, TOTP_ENROL, self.now_unix())
                .map_err(Error::from)?
            else {
                return Err(self.failed(subjects, Failure::NoChallenge));
            };
            let sealed = base64::engine::general_purpose::STANDARD
                .decode(&ceremony.state)
                .map_err(|_| {
                    Error::from(rxvault_store::Error::Corrupt("TOTP enrolment state".into()))
                })?;
            let secret = self.with_keys(|k| {
                let b32 = k.open_blob(TOTP_SEAL_DOMAIN_ENROL, id.as_bytes(), &sealed)?;
                TotpSecret::from_base32(std::str::from_utf8(&b32).unwrap_or(""))
            })?;
            let Some(step) = secret.verify(code, self.now_unix(), None) else {
                // Keep the enrolment open for another try.
                self.store.put_ceremony(&ceremony).map_err(Error::from)?;
                return Err(self.failed(subjects, Failure::WrongCode));
            };
            self.store_totp(&enrolling.core.user, &secret, Some(step))?;
            let codes = self.new_recovery_codes(&enrolling.core.user)?;
            tracing::info!(user = %enrolling.core.user, "TOTP enrolled");
            Ok((self.finish_login(enrolling.core, subjects)?, codes))
        })();
        self.audited_step(&attempt, Method::TotpEnrolment, result, |(s, _)| {
            enrolled(&attempt, s, "enrol-totp", &username, Method::TotpEnrolment)
        })
    }

    /// Starts enrolling a passkey (an account without a second factor).
    pub fn start_passkey_enrolment(
        &self,
        enrolling: &Session<Enrolling>,
    ) -> Result<CreationChallengeResponse> {
        self.passkey_register_start(
            &enrolling.core.user,
            &enrolling.core.username,
            enrolling.core.id.as_str(),
            enrolling.core.expires_at.unix_timestamp(),
        )
    }

    /// Finishes enrolling a passkey; the login completes and the account
    /// gets its recovery codes. Audited here, like a TOTP enrolment.
    pub fn finish_passkey_enrolment(
        &self,
        enrolling: Session<Enrolling>,
        name: &str,
        response: &RegisterPublicKeyCredential,
    ) -> Result<(Session<Authenticated>, RecoveryCodes)> {
        let attempt = enrolling.core.attempt();
        let username = enrolling.core.username.clone();
        let result = (|| {
            let subjects = self.subjects(Some(&enrolling.core.username), enrolling.core.source);
            self.check_throttle(subjects)?;
            if let Err(e) = self.passkey_register_finish(
                &enrolling.core.user,
                enrolling.core.id.as_str(),
                name,
                response,
            ) {
                return Err(self.registration_failed(subjects, e));
            }
            let codes = self.new_recovery_codes(&enrolling.core.user)?;
            Ok((self.finish_login(enrolling.core, subjects)?, codes))
        })();
        self.audited_step(&attempt, Method::PasskeyEnrolment, result, |(s, _)| {
            enrolled(
                &attempt,
                s,
                "enrol-passkey",
                &username,
                Method::PasskeyEnrolment,
            )
        })
    }

    /// Records a fresh second-factor check in the principal's session with
    /// a TOTP code, for step-up actions. Returns the refreshed principal.
    /// Audited here.
    pub fn step_up_totp(&self, principal: &Principal, code: &str) -> Result<Principal> {
        let attempt = Attempt::in_session(principal);
        let result = (|| {
            let (session, username) = self.step_up_subject(principal)?;
            let subjects = self.subjects(Some(&username), principal.source());
            self.check_throttle(subjects)?;
            if let Some(why) = self.check_totp(principal.user_id(), code)? {
                return Err(self.failed(subjects, why));
            }
            Ok(self.record_step_up(principal, &session, subjects)?)
        })();
        self.audited_step(&attempt, Method::TotpStepUp, result, |p| {
            vec![attempt.done_by(p, mfa_success(Method::TotpStepUp))]
        })
    }

    /// Starts a passkey step-up check in the principal's session.
    pub fn start_passkey_step_up(&self, principal: &Principal) -> Result<RequestChallengeResponse> {
        let (session, _) = self.step_up_subject(principal)?;
        let end = principal
            .session_expires_at()
            .map_or(0, |t| t.unix_timestamp());
        self.passkey_auth_start(
            principal.user_id(),
            session.as_str(),
            STEP_UP,
            self.ceremony_expiry(end),
        )
    }

    /// Finishes a passkey step-up check. Returns the refreshed principal.
    /// Audited here.
    pub fn finish_passkey_step_up(
        &self,
        principal: &Principal,
        response: &PublicKeyCredential,
    ) -> Result<Principal> {
        let attempt = Attempt::in_session(principal);
        let result = (|| {
            let (session, username) = self.step_up_subject(principal)?;
            let subjects = self.subjects(Some(&username), principal.source());
            self.check_throttle(subjects)?;
            if let Some(why) =
                self.passkey_auth_finish(principal.user_id(), session.as_str(), STEP_UP, response)?
            {
                return Err(self.failed(subjects, why));
            }
            Ok(self.record_step_up(principal, &session, subjects)?)
        })();
        self.audited_step(&attempt, Method::PasskeyStepUp, result, |p| {
            vec![attempt.done_by(p, mfa_success(Method::PasskeyStepUp))]
        })
    }

    /// Fails unless the principal passed a second factor within the step-up
    /// window ([`AuthConfig::step_up_window`](crate::AuthConfig)).
    pub fn require_step_up(&self, principal: &Principal) -> Result<()> {
        let fresh = principal.mfa_at().is_some_and(|at| {
            let age = self.now() - at;
            age >= time::Duration::ZERO && age <= self.config.step_up_window
        });
        if fresh {
            Ok(())
        } else {
            Err(Error::StepUpRequired)
        }
    }

    /// Starts registering an additional passkey (needs a recent step-up).
    pub fn start_passkey_registration(
        &self,
        principal: &Principal,
    ) -> Result<CreationChallengeResponse> {
        let (session, username) = self.step_up_subject(principal)?;
        self.require_step_up(principal)?;
        let end = principal
            .session_expires_at()
            .map_or(0, |t| t.unix_timestamp());
        self.passkey_register_start(
            principal.user_id(),
            &username,
            session.as_str(),
            self.ceremony_expiry(end),
        )
    }

    /// Finishes registering an additional passkey. Audited here
    /// (`add-passkey` of the person, with its outcome).
    pub fn finish_passkey_registration(
        &self,
        principal: &Principal,
        name: &str,
        response: &RegisterPublicKeyCredential,
    ) -> Result<()> {
        let attempt = Attempt::in_session(principal);
        let target = match principal.actor() {
            Actor::User { username, .. } => username.clone(),
            Actor::Service { name, .. } => name.clone(),
        };
        let result = (|| {
            let (session, username) = self.step_up_subject(principal)?;
            let subjects = self.subjects(Some(&username), principal.source());
            self.check_throttle(subjects)?;
            match self.passkey_register_finish(
                principal.user_id(),
                session.as_str(),
                name,
                response,
            ) {
                Ok(()) => Ok(self.pass(subjects)?),
                Err(e) => Err(self.registration_failed(subjects, e)),
            }
        })();
        let locked = matches!(&result, Err(f) if f.locked);
        let done = self.audited_act(
            attempt.entry(AuditAction::UserAdmin {
                operation: "add-passkey".into(),
                target,
            }),
            result.map_err(|f| f.error),
        );
        if locked {
            self.record(
                attempt
                    .entry(AuditAction::Lockout { until_ms: None })
                    .outcome(rxvault_audit::Outcome::Denied),
            )?;
        }
        done
    }
}

/// The action of a second factor accepted.
fn mfa_success(method: Method) -> AuditAction {
    AuditAction::MfaSuccess {
        method: method.name().into(),
    }
}

/// The entries of a login completed by enrolling a second factor: the
/// enrolment (the entry `rxvault user` makes when the key holder enrols
/// one, by the person this time) and the second factor accepted.
fn enrolled(
    attempt: &Attempt,
    session: &Session<Authenticated>,
    operation: &str,
    username: &str,
    method: Method,
) -> Vec<rxvault_audit::Entry> {
    vec![
        attempt.done_by(
            session.principal(),
            AuditAction::UserAdmin {
                operation: operation.into(),
                target: username.to_string(),
            },
        ),
        attempt.done_by(session.principal(), mfa_success(method)),
    ]
}

impl Auth {
    // ---- internals ----

    /// A person's live account row.
    pub(crate) fn human(&self, id: &str) -> Result<Option<StoredAccount>> {
        Ok(self
            .store
            .account(id)?
            .filter(|a| a.kind == AccountKind::Human && !a.disabled))
    }

    pub(crate) fn factors(&self, user: &UserId) -> Result<Factors> {
        Ok(Factors {
            totp: self.store.totp(user.as_str())?.is_some(),
            passkeys: self.store.passkeys(user.as_str())?.len(),
            recovery_codes: self.store.recovery_codes_left(user.as_str())?,
        })
    }

    /// Checks that `code` is a fresh TOTP code of `user` (and if so, spends
    /// its step); otherwise says why not.
    fn check_totp(&self, user: &UserId, code: &str) -> Result<Option<Failure>> {
        let Some(stored) = self.store.totp(user.as_str())? else {
            return Ok(Some(Failure::NoAuthenticator));
        };
        let secret = self
            .with_keys(|k| TotpSecret::open(k, user.as_str().as_bytes(), &stored.sealed_secret))?;
        if let Some(step) = secret.verify(code, self.now_unix(), stored.last_step) {
            return Ok((!self.store.advance_totp_step(user.as_str(), step)?)
                .then_some(Failure::ReplayedCode));
        }
        // Not fresh: a code of a step already spent is a replay, anything
        // else is wrong.
        let replayed =
            stored.last_step.is_some() && secret.verify(code, self.now_unix(), None).is_some();
        Ok(Some(if replayed {
            Failure::ReplayedCode
        } else {
            Failure::WrongCode
        }))
    }

    /// Stores a TOTP secret for `user`, sealed, with its last used step.
    pub(crate) fn store_totp(
        &self,
        user: &UserId,
        secret: &TotpSecret,
        last_step: Option<u64>,
    ) -> Result<()> {
        self.keys.ensure_data_key()?;
        let sealed = secret.seal(self.keys.secrets(), user.as_str().as_bytes())?;
        let dek = rxvault_crypto::otp::blob_dek(&sealed).ok_or_else(|| {
            Error::Crypto(rxvault_crypto::Error::Integrity {
                what: "freshly sealed TOTP secret".into(),
            })
        })?;
        self.store.set_totp(
            user.as_str(),
            &StoredTotp {
                sealed_secret: sealed,
                dek,
                last_step,
                created_at: self.now_unix(),
            },
        )?;
        Ok(())
    }

    pub(crate) fn new_recovery_codes(&self, user: &UserId) -> Result<RecoveryCodes> {
        let codes: Vec<Token> = (0..RECOVERY_CODES)
            .map(|_| Token::generate(TokenKind::RecoveryCode))
            .collect::<rxvault_crypto::Result<_>>()?;
        let hashes: Vec<[u8; 32]> = codes
            .iter()
            .map(|c| c.hash(TokenKind::RecoveryCode).0)
            .collect();
        self.store
            .replace_recovery_codes(user.as_str(), &hashes, self.now_unix())?;
        Ok(RecoveryCodes(codes))
    }

    fn finish_login(
        &self,
        pending: Core,
        subjects: crate::throttle::Subjects,
    ) -> Result<Session<Authenticated>, Failed> {
        let account = self
            .human(pending.user.as_str())?
            .ok_or(Error::Unauthenticated)?;
        let role = crate::duties::stored_role(&account.role).ok_or(Error::Unauthenticated)?;
        let session = self.complete_login(pending, role)?;
        self.succeed(subjects)?;
        Ok(session)
    }

    /// A failed passkey registration: a refused answer counts like a wrong
    /// code; anything else (a bad name, a passkey already registered) is
    /// what it is.
    fn registration_failed(&self, subjects: crate::throttle::Subjects, e: Error) -> Failed {
        match e {
            Error::InvalidCredentials => self.failed(subjects, Failure::PasskeyRefused),
            e => Failed::from(e),
        }
    }

    /// The session and login name of a person's principal (step-up is for
    /// people in sessions only).
    fn step_up_subject(&self, principal: &Principal) -> Result<(SessionId, String)> {
        match (principal.actor(), principal.session_id()) {
            (Actor::User { username, .. }, Some(s)) => Ok((s.clone(), username.clone())),
            _ => Err(Error::Invalid(
                "second factors and step-up are for people in a session, not service keys".into(),
            )),
        }
    }

    fn record_step_up(
        &self,
        principal: &Principal,
        session: &SessionId,
        subjects: crate::throttle::Subjects,
    ) -> Result<Principal> {
        let now = self.now_unix();
        if !self.store.record_session_mfa(session.as_str(), now)? {
            return Err(Error::Unauthenticated);
        }
        self.succeed(subjects)?;
        let mut refreshed = principal.clone();
        refreshed.mfa_at = Some(ts(now));
        Ok(refreshed)
    }
}
