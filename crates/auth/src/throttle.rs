//! Counting failed attempts and slowing guessers down.
//!
//! Every failed attempt (password, TOTP code, recovery code, passkey
//! assertion, API key) counts against two subjects: the login name as typed
//! (normalised), whether or not such an account exists, and the source
//! address. Subjects are stored as keyed hashes under the vault's index key,
//! so the table holds neither addresses nor names (nor passwords typed into
//! the name field by mistake).
//!
//! Before any work an attempt is checked: a locked name gets
//! [`Error::Locked`]; one still inside its backoff delay gets
//! [`Error::Throttled`]. Rules and defaults: [`ThrottleConfig`]. Because
//! unknown names are counted, delayed and locked exactly like real ones,
//! none of these answers tells an attacker whether a name exists.
//!
//! [`ThrottleConfig`]: crate::ThrottleConfig

use crate::{Auth, Error, Result, secs};
use rxvault_store::auth::ThrottleScope;
use std::net::IpAddr;

/// The two throttling subjects of an attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subjects {
    account: Option<[u8; 16]>,
    source: [u8; 16],
}

/// Normalises a login name as typed: trimmed, NFKC, lower case.
pub fn normalize_username(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.trim().nfkc().collect::<String>().to_lowercase()
}

impl Auth {
    /// The subjects of an attempt by login name `username` (normalised)
    /// from `source`; `None` for attempts without a name (API keys).
    pub(crate) fn subjects(&self, username: Option<&str>, source: IpAddr) -> Subjects {
        let keyring = self.vault.keyring();
        let source = match source {
            IpAddr::V4(a) => keyring.keyed_hash("auth/throttle/source", &a.octets()),
            IpAddr::V6(a) => keyring.keyed_hash("auth/throttle/source", &a.octets()),
        };
        Subjects {
            account: username.map(|u| keyring.keyed_hash("auth/throttle/account", u.as_bytes())),
            source,
        }
    }

    /// Refuses the attempt if either subject is locked or still waiting.
    pub(crate) fn check_throttle(&self, subjects: Subjects) -> Result<()> {
        let t = &self.config.throttle;
        let now = self.now_unix();
        let mut wait = 0i64;
        if let Some(account) = subjects.account
            && let Some(st) = self.store.throttle(ThrottleScope::Account, &account)?
        {
            if st.failures >= t.account_lockout {
                return Err(Error::Locked);
            }
            let delay = secs(t.delay(st.failures, t.account_free_failures));
            wait = wait.max(st.last_failure_at.saturating_add(delay) - now);
        }
        if let Some(st) = self
            .store
            .throttle(ThrottleScope::Source, &subjects.source)?
            && now - st.last_failure_at < secs(t.source_window)
        {
            let delay = secs(t.delay(st.failures, t.source_free_failures));
            wait = wait.max(st.last_failure_at.saturating_add(delay) - now);
        }
        if wait > 0 {
            return Err(Error::Throttled {
                retry_after_secs: wait as u64,
            });
        }
        Ok(())
    }

    /// Counts a failure against both subjects and returns the error to give
    /// the caller (always [`Error::InvalidCredentials`]).
    pub(crate) fn fail(&self, subjects: Subjects) -> Error {
        let now = self.now_unix();
        let t = &self.config.throttle;
        let result = (|| -> Result<()> {
            if let Some(account) = subjects.account {
                let st = self
                    .store
                    .record_failure(ThrottleScope::Account, &account, now, None)?;
                if st.failures == t.account_lockout {
                    tracing::warn!(
                        failures = st.failures,
                        "a login name was locked after consecutive failures"
                    );
                }
            }
            self.store.record_failure(
                ThrottleScope::Source,
                &subjects.source,
                now,
                Some(now - secs(t.source_window)),
            )?;
            Ok(())
        })();
        match result {
            Ok(()) => Error::InvalidCredentials,
            // A failure that could not be counted must not look like an
            // uncounted free guess: report the store error.
            Err(e) => e,
        }
    }

    /// A complete login: the login name's count starts again. (The source
    /// address's does not: one good account must not unlock guessing at
    /// others from the same place.)
    pub(crate) fn succeed(&self, subjects: Subjects) -> Result<()> {
        if let Some(account) = subjects.account {
            self.store
                .clear_failures(ThrottleScope::Account, &account)?;
        }
        Ok(())
    }

    /// Clears a login name's failures (an administrator's unlock).
    pub(crate) fn unlock_name(&self, username: &str) -> Result<()> {
        let keyring = self.vault.keyring();
        let account = keyring.keyed_hash("auth/throttle/account", username.as_bytes());
        self.store
            .clear_failures(ThrottleScope::Account, &account)?;
        Ok(())
    }
}
