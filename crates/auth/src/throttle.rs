//! Counting failed attempts and slowing guessers down.
//!
//! Every failed attempt (password, TOTP code, recovery code, passkey
//! assertion, API key) counts against two subjects: the login name as typed
//! (normalised), whether or not such an account exists, and the source
//! address. Subjects are stored as keyed hashes under the vault's index key,
//! so the table holds neither addresses nor names (nor passwords typed into
//! the name field by mistake).
//!
//! Before any work an attempt is checked and counted, atomically (one
//! transaction holding the subjects' rows): a locked name gets
//! [`Error::Locked`]; one still inside its backoff delay gets
//! [`Error::Throttled`]; an admitted attempt counts as a failure until its
//! credential proves right. So 32 guesses sent at once get the same number
//! of checks as 32 sent one after another. Rules and defaults: [`ThrottleConfig`]. Because
//! unknown names are counted, delayed and locked exactly like real ones,
//! none of these answers tells an attacker whether a name exists.
//!
//! [`ThrottleConfig`]: crate::ThrottleConfig

use crate::trail::{Failed, Failure};
use crate::{Auth, Error, Result, secs};
use rxvault_store::auth::{ThrottleScope, ThrottleState, ThrottleSubject};
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
        let keyring = self.keys.secrets();
        let source = match source {
            IpAddr::V4(a) => keyring.keyed_hash("auth/throttle/source", &a.octets()),
            IpAddr::V6(a) => keyring.keyed_hash("auth/throttle/source", &a.octets()),
        };
        Subjects {
            account: username.map(|u| keyring.keyed_hash("auth/throttle/account", u.as_bytes())),
            source,
        }
    }

    /// Admits an attempt or refuses it (either subject locked or still
    /// waiting out its delay). An admitted attempt is counted as a failure
    /// before any credential is checked, in the same transaction as the
    /// check: concurrent guesses cannot all pass a check that none of them
    /// has been counted against yet. A credential that proves right gives
    /// its count back ([`Auth::pass`], [`Auth::succeed`]).
    pub(crate) fn check_throttle(&self, subjects: Subjects) -> Result<()> {
        let now = self.now_unix();
        let list = self.throttle_subjects(&subjects, now);
        let mut refusal = None;
        let admitted = self.store.admit_attempt(&list, now, &mut |states| {
            refusal = self.refusal(&list, states, now);
            refusal.is_none()
        })?;
        match (admitted, refusal) {
            (true, _) => Ok(()),
            (false, Some(e)) => Err(e),
            (false, None) => Err(Error::Locked),
        }
    }

    /// The same check without counting, for API keys (presented on every
    /// request of a service, and 256-bit random: a burst cannot guess one,
    /// so a read per request is enough); a bad key is counted by
    /// [`Auth::count_failure`].
    pub(crate) fn peek_throttle(&self, subjects: Subjects) -> Result<()> {
        let now = self.now_unix();
        let list = self.throttle_subjects(&subjects, now);
        let mut states = Vec::with_capacity(list.len());
        for s in &list {
            let mut st = self
                .store
                .throttle(s.scope, s.subject)?
                .unwrap_or(ThrottleState {
                    failures: 0,
                    last_failure_at: now,
                });
            if s.restart_before.is_some_and(|r| st.last_failure_at < r) {
                st.failures = 0;
            }
            states.push(st);
        }
        match self.refusal(&list, &states, now) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Counts a failure of an attempt that was only peeked at.
    pub(crate) fn count_failure(&self, subjects: Subjects) -> Error {
        let now = self.now_unix();
        let list = self.throttle_subjects(&subjects, now);
        match self.store.admit_attempt(&list, now, &mut |_| true) {
            Ok(_) => Error::InvalidCredentials,
            // A failure that could not be counted must not look like an
            // uncounted free guess: report the store error.
            Err(e) => e.into(),
        }
    }

    fn throttle_subjects<'a>(&self, subjects: &'a Subjects, now: i64) -> Vec<ThrottleSubject<'a>> {
        let window_start = now - secs(self.config.throttle.source_window);
        let mut list = Vec::with_capacity(2);
        if let Some(account) = &subjects.account {
            list.push(ThrottleSubject {
                scope: ThrottleScope::Account,
                subject: account,
                restart_before: None,
            });
        }
        list.push(ThrottleSubject {
            scope: ThrottleScope::Source,
            subject: &subjects.source,
            restart_before: Some(window_start),
        });
        list
    }

    /// Why an attempt with these counts must wait, if it must.
    fn refusal(
        &self,
        list: &[ThrottleSubject<'_>],
        states: &[ThrottleState],
        now: i64,
    ) -> Option<Error> {
        let t = &self.config.throttle;
        let mut wait = 0i64;
        for (s, st) in list.iter().zip(states) {
            let free = match s.scope {
                ThrottleScope::Account => {
                    if st.failures >= t.account_lockout {
                        return Some(Error::Locked);
                    }
                    t.account_free_failures
                }
                ThrottleScope::Source => t.source_free_failures,
            };
            if st.failures > 0 {
                let delay = secs(t.delay(st.failures, free));
                wait = wait.max(st.last_failure_at.saturating_add(delay) - now);
            }
        }
        (wait > 0).then(|| Error::Throttled {
            retry_after_secs: wait as u64,
        })
    }

    /// The attempt failed (for `reason`): it was counted when admitted.
    /// The caller gets [`Error::InvalidCredentials`] whatever the reason;
    /// the audit gets the reason, and whether this failure is the one that
    /// locked the login name.
    pub(crate) fn failed(&self, subjects: Subjects, reason: Failure) -> Failed {
        let mut locked = false;
        if let Some(account) = subjects.account {
            match self.store.throttle(ThrottleScope::Account, &account) {
                Ok(Some(st)) if st.failures == self.config.throttle.account_lockout => {
                    tracing::warn!(
                        failures = st.failures,
                        "a login name was locked after consecutive failures"
                    );
                    locked = true;
                }
                Ok(_) => {}
                // The failure is counted (its answer stays the same); only
                // whether it locked the name is unknown.
                Err(e) => tracing::error!(error = %e, "reading a failure count"),
            }
        }
        Failed {
            error: Error::InvalidCredentials,
            reason,
            locked,
        }
    }

    /// A step proved right with more to come (a password before its second
    /// factor, a passkey registered in a session): its count is given back.
    pub(crate) fn pass(&self, subjects: Subjects) -> Result<()> {
        if let Some(account) = subjects.account {
            self.store
                .refund_attempt(ThrottleScope::Account, &account)?;
        }
        self.store
            .refund_attempt(ThrottleScope::Source, &subjects.source)?;
        Ok(())
    }

    /// A complete login (or step-up): the login name's count starts again.
    /// (The source address's does not: one good account must not unlock
    /// guessing at others from the same place; this attempt's count is
    /// given back.)
    pub(crate) fn succeed(&self, subjects: Subjects) -> Result<()> {
        if let Some(account) = subjects.account {
            self.store
                .clear_failures(ThrottleScope::Account, &account)?;
        }
        self.store
            .refund_attempt(ThrottleScope::Source, &subjects.source)?;
        Ok(())
    }

    /// Clears a login name's failures (an administrator's unlock).
    pub(crate) fn unlock_name(&self, username: &str) -> Result<()> {
        let keyring = self.keys.secrets();
        let account = keyring.keyed_hash("auth/throttle/account", username.as_bytes());
        self.store
            .clear_failures(ThrottleScope::Account, &account)?;
        Ok(())
    }
}
