//! Settings: timeouts, enrolment-code and access-request lifetimes,
//! throttling, WebAuthn relying party.
//!
//! The defaults are NIST SP 800-63B AAL2 (rev. 3 §4.2.3): reauthenticate
//! after 30 minutes of inactivity and at least every 12 hours. Rev. 4 allows
//! up to 1 hour idle and 24 hours overall; rxvault keeps the stricter
//! numbers by default.

use std::time::Duration;

/// Authentication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The issuer shown by authenticator apps (`otpauth` URI, QR code).
    pub issuer: String,
    /// A session unused for this long is over (default 30 minutes).
    pub idle_timeout: Duration,
    /// A session is over this long after login, however active (default
    /// 12 hours).
    pub absolute_timeout: Duration,
    /// How long a login that passed its password may take to present its
    /// second factor or finish enrolling one (default 10 minutes).
    pub pending_timeout: Duration,
    /// How recent a second-factor check must be for step-up actions
    /// (default 5 minutes).
    pub step_up_window: Duration,
    /// How long a break-glass grant lasts (default 1 hour; never beyond the
    /// session).
    pub break_glass_duration: Duration,
    /// Last-use times are written at most this often per session or key, so
    /// authenticated reads do not each become a write. The idle timeout is
    /// measured from the recorded time, so a session may end up to this
    /// much early, never late (default 60 seconds).
    pub touch_interval: Duration,
    /// Refuse a session token presented from another source address than
    /// the one that logged in (default on).
    pub bind_source_address: bool,
    /// How long a one-time enrolment code may be redeemed (default 72
    /// hours).
    pub enrolment_code_lifetime: Duration,
    /// How long an access request waits for its second person before it
    /// lapses (default 7 days).
    pub access_request_lifetime: Duration,
    /// Failed-attempt limits.
    pub throttle: ThrottleConfig,
    /// Passkeys (WebAuthn); `None` disables them.
    pub webauthn: Option<WebauthnConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "rxvault".into(),
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            pending_timeout: Duration::from_secs(10 * 60),
            step_up_window: Duration::from_secs(5 * 60),
            break_glass_duration: Duration::from_secs(3600),
            touch_interval: Duration::from_secs(60),
            bind_source_address: true,
            enrolment_code_lifetime: Duration::from_secs(72 * 3600),
            access_request_lifetime: Duration::from_secs(7 * 24 * 3600),
            throttle: ThrottleConfig::default(),
            webauthn: None,
        }
    }
}

/// Failed-attempt limits (NIST SP 800-63B §5.2.2: at most 100 consecutive
/// failures per account).
///
/// Each failed password, code, recovery code or passkey assertion counts
/// against both the login name (whether or not it exists) and the source
/// address. After `free_failures` failures, the next attempt must wait
/// `base_delay · 2^(n − free_failures − 1)`, capped at `max_delay`. At
/// `account_lockout` consecutive failures the login name is locked until an
/// administrator unlocks it (`rxvault user unlock`); a success resets the
/// account's count. Source addresses are never locked, only slowed, and
/// their count restarts after `source_window` without failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures per login name before delays start (default 3).
    pub account_free_failures: u32,
    /// Consecutive failures that lock a login name (default 20).
    pub account_lockout: u32,
    /// Failures per source address before delays start (default 10).
    pub source_free_failures: u32,
    /// A source address's count restarts after this long without failures
    /// (default 1 hour).
    pub source_window: Duration,
    /// The first delay (default 1 second).
    pub base_delay: Duration,
    /// The longest delay (default 15 minutes).
    pub max_delay: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            account_free_failures: 3,
            account_lockout: 20,
            source_free_failures: 10,
            source_window: Duration::from_secs(3600),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

impl ThrottleConfig {
    /// How long to wait after the `failures`-th failure when the first
    /// `free` are free.
    pub fn delay(&self, failures: u32, free: u32) -> Duration {
        if failures <= free {
            return Duration::ZERO;
        }
        let doublings = (failures - free - 1).min(30);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

/// The WebAuthn relying party: the HTTPS origin browsers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnConfig {
    /// The relying party id: the server's domain name (`rx.example.com`).
    pub rp_id: String,
    /// The origin (`https://rx.example.com:8443`).
    pub origin: String,
    /// A human-readable name shown by authenticators.
    pub rp_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_failures_and_is_capped() {
        let t = ThrottleConfig::default();
        let secs = |n| t.delay(n, 3).as_secs();
        assert_eq!(
            (secs(0), secs(3), secs(4), secs(5), secs(6)),
            (0, 0, 1, 2, 4)
        );
        assert_eq!(secs(13), 512);
        assert_eq!(secs(14), 900, "capped at 15 minutes");
        assert_eq!(secs(u32::MAX), 900);
        assert!(t.account_lockout < 100, "NIST SP 800-63B §5.2.2");
    }
}
