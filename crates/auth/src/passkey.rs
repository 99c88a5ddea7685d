//! WebAuthn passkeys (webauthn-rs): registration and authentication
//! ceremonies.
//!
//! Each ceremony has two steps. The first returns the challenge to send to
//! the browser and keeps the library's state **server-side**, serialised in
//! the store under the login's or session's id with a purpose and an expiry
//! ([`rxvault_store::auth::StoredCeremony`]); the second takes that state
//! (read and deleted in one transaction, so it is usable once) and checks
//! the browser's answer against it. A state replayed, expired, or taken for
//! another purpose fails like a wrong answer.
//!
//! Passkeys require user verification (PIN or biometric on the
//! authenticator), so a passkey alone is two factors; rxvault still asks for
//! the password first. The signature counter is stored after every use and
//! a counter that goes backwards (a cloned authenticator) is refused by the
//! library.
//!
//! The ceremony types are webauthn-rs's (re-exported here), serialisable
//! as the JSON browsers exchange.

use crate::principal::UserId;
use crate::trail::Failure;
use crate::{Auth, Error, Result, WebauthnConfig, secs};
use rxvault_store::auth::{StoredCeremony, StoredPasskey};
pub use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, Url, Uuid, Webauthn, WebauthnBuilder,
};

/// Ceremony purposes, as stored.
pub(crate) const REGISTER: &str = "passkey-register";
pub(crate) const LOGIN: &str = "passkey-login";
pub(crate) const STEP_UP: &str = "passkey-step-up";

pub(crate) fn build(config: &WebauthnConfig) -> Result<Webauthn> {
    let origin = Url::parse(&config.origin)
        .map_err(|e| Error::Invalid(format!("WebAuthn origin {:?}: {e}", config.origin)))?;
    WebauthnBuilder::new(&config.rp_id, &origin)
        .and_then(|b| b.rp_name(&config.rp_name).build())
        .map_err(|e| Error::Invalid(format!("WebAuthn relying party: {e}")))
}

/// The WebAuthn user handle of an account: its 128-bit id.
fn user_handle(user: &UserId) -> Result<Uuid> {
    Uuid::try_parse(user.as_str()).map_err(|_| {
        Error::Crypto(rxvault_crypto::Error::Integrity {
            what: "account id".into(),
        })
    })
}

impl Auth {
    fn webauthn(&self) -> Result<&Webauthn> {
        self.webauthn.as_ref().ok_or(Error::PasskeysDisabled)
    }

    /// The passkeys of an account, as the library's type.
    pub(crate) fn load_passkeys(&self, user: &UserId) -> Result<Vec<(StoredPasskey, Passkey)>> {
        self.store
            .passkeys(user.as_str())?
            .into_iter()
            .map(|row| {
                let pk: Passkey = serde_json::from_str(&row.passkey).map_err(|_| {
                    rxvault_store::Error::Corrupt(format!("passkey of account {user}"))
                })?;
                Ok((row, pk))
            })
            .collect()
    }

    /// Starts registering a passkey for `user`; the state is kept under
    /// `ceremony_id` until `expires_at`.
    pub(crate) fn passkey_register_start(
        &self,
        user: &UserId,
        username: &str,
        ceremony_id: &str,
        expires_at: i64,
    ) -> Result<CreationChallengeResponse> {
        let webauthn = self.webauthn()?;
        let existing: Vec<_> = self
            .load_passkeys(user)?
            .into_iter()
            .map(|(_, pk)| pk.cred_id().clone())
            .collect();
        let (challenge, state) = webauthn
            .start_passkey_registration(user_handle(user)?, username, username, Some(existing))
            .map_err(|e| Error::Invalid(format!("WebAuthn registration: {e}")))?;
        self.put_state(ceremony_id, user, REGISTER, &state, expires_at)?;
        Ok(challenge)
    }

    /// Finishes a registration: checks the browser's answer and stores the
    /// passkey. Any failure of the answer is [`Error::InvalidCredentials`].
    pub(crate) fn passkey_register_finish(
        &self,
        user: &UserId,
        ceremony_id: &str,
        name: &str,
        response: &RegisterPublicKeyCredential,
    ) -> Result<()> {
        let webauthn = self.webauthn()?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "a passkey name is 1 to 64 printable characters".into(),
            ));
        }
        let state: PasskeyRegistration = self
            .take_state(ceremony_id, user, REGISTER)?
            .ok_or(Error::InvalidCredentials)?;
        let passkey = webauthn
            .finish_passkey_registration(response, &state)
            .map_err(|e| {
                tracing::info!(user = %user, error = %e, "passkey registration refused");
                Error::InvalidCredentials
            })?;
        let row = StoredPasskey {
            credential_id: passkey.cred_id().clone(),
            account_id: user.as_str().to_string(),
            name: name.to_string(),
            passkey: serde_json::to_string(&passkey)
                .map_err(|e| Error::Invalid(format!("passkey: {e}")))?,
            created_at: self.now_unix(),
            last_used_at: None,
        };
        if !self.store.add_passkey(&row)? {
            return Err(Error::Conflict("this passkey is already registered".into()));
        }
        tracing::info!(user = %user, "passkey registered");
        Ok(())
    }

    /// Starts a passkey assertion for `user` (login or step-up).
    pub(crate) fn passkey_auth_start(
        &self,
        user: &UserId,
        ceremony_id: &str,
        purpose: &str,
        expires_at: i64,
    ) -> Result<RequestChallengeResponse> {
        let webauthn = self.webauthn()?;
        let passkeys: Vec<Passkey> = self
            .load_passkeys(user)?
            .into_iter()
            .map(|(_, pk)| pk)
            .collect();
        if passkeys.is_empty() {
            // Only reachable after the password: saying so leaks nothing.
            return Err(Error::Invalid("this account has no passkey".into()));
        }
        let (challenge, state) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| Error::Invalid(format!("WebAuthn authentication: {e}")))?;
        self.put_state(ceremony_id, user, purpose, &state, expires_at)?;
        Ok(challenge)
    }

    /// Checks an assertion against the state kept for `ceremony_id`; on
    /// success stores the passkey's new counter and returns `None`,
    /// otherwise why it failed.
    pub(crate) fn passkey_auth_finish(
        &self,
        user: &UserId,
        ceremony_id: &str,
        purpose: &str,
        response: &PublicKeyCredential,
    ) -> Result<Option<Failure>> {
        let webauthn = self.webauthn()?;
        let Some(state): Option<PasskeyAuthentication> =
            self.take_state(ceremony_id, user, purpose)?
        else {
            return Ok(Some(Failure::NoChallenge));
        };
        let result = match webauthn.finish_passkey_authentication(response, &state) {
            Ok(r) if r.user_verified() => r,
            Ok(_) => return Ok(Some(Failure::NotUserVerified)),
            Err(e) => {
                tracing::info!(user = %user, error = %e, "passkey assertion refused");
                return Ok(Some(Failure::PasskeyRefused));
            }
        };
        for (row, mut pk) in self.load_passkeys(user)? {
            if pk.update_credential(&result).is_some() {
                let json = serde_json::to_string(&pk)
                    .map_err(|e| Error::Invalid(format!("passkey: {e}")))?;
                self.store.update_passkey(
                    user.as_str(),
                    &row.credential_id,
                    &json,
                    self.now_unix(),
                )?;
                return Ok(None);
            }
        }
        // The library accepted a credential this account does not hold:
        // refuse (cannot happen when the state lists only its passkeys).
        Ok(Some(Failure::PasskeyRefused))
    }

    fn put_state<T: serde::Serialize>(
        &self,
        id: &str,
        user: &UserId,
        purpose: &str,
        state: &T,
        expires_at: i64,
    ) -> Result<()> {
        let state =
            serde_json::to_string(state).map_err(|e| Error::Invalid(format!("ceremony: {e}")))?;
        self.store.put_ceremony(&StoredCeremony {
            id: id.to_string(),
            account_id: user.as_str().to_string(),
            purpose: purpose.to_string(),
            state,
            expires_at,
        })?;
        Ok(())
    }

    fn take_state<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        user: &UserId,
        purpose: &str,
    ) -> Result<Option<T>> {
        let Some(c) = self.store.take_ceremony(id, purpose, self.now_unix())? else {
            return Ok(None);
        };
        if c.account_id != user.as_str() {
            return Ok(None);
        }
        Ok(serde_json::from_str(&c.state).ok())
    }

    /// The expiry of a ceremony started now for a session ending at
    /// `session_end`.
    pub(crate) fn ceremony_expiry(&self, session_end: i64) -> i64 {
        session_end.min(
            self.now_unix()
                .saturating_add(secs(self.config.pending_timeout)),
        )
    }
}
