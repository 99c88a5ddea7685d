//! Break-glass: emergency access beyond one's role (HIPAA 164.312(a)(2)(ii),
//! "emergency access procedure").
//!
//! A person whose role allows it ([`Action::BreakGlass`]: billing and
//! administrators; pharmacists and technicians already see whole charts)
//! and who passed a second factor in the last 5 minutes types a reason
//! (10 to 1,000 characters). They then get, for one hour by default and
//! never beyond their session, **read** access to whole charts
//! ([`Action::break_glass_read`](crate::Action::break_glass_read), every
//! category of every kind); never writes, exports or administration.
//!
//! Every grant is stored for the privacy officer's review
//! ([`Auth::break_glass_grants`], [`Auth::review_break_glass`]), and every
//! audit entry made while a session holds a grant carries the grant's id
//! ([`Principal::break_glass`](crate::Principal::break_glass)), so the
//! audit can flag it. The reason may name a patient, so it is stored sealed by the
//! vault keyring and never logged. The audit event carries the codes in
//! [`BreakGlassGrant::EVENT`] (DICOM 110127 "Emergency Override Started")
//! and [`BreakGlassGrant::PURPOSE`] (v3-ActReason ETREAT).

use crate::principal::{SessionId, UserId};
use crate::{Action, Auth, Error, Principal, Result, secs, ts};
use rxvault_model::Timestamp;
use rxvault_store::auth::StoredBreakGlass;
use std::fmt;

/// Fewest characters of a reason.
pub const MIN_REASON_CHARS: usize = 10;
/// Most characters of a reason.
pub const MAX_REASON_CHARS: usize = 1000;

const SEAL_DOMAIN: &str = "auth/break-glass-reason";

/// The audit-log use of listing grants for review.
pub const REVIEW_LIST: &str = "break-glass-review-list";

/// A coded concept (FHIR `Coding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coding {
    /// Code system URI.
    pub system: &'static str,
    /// Code.
    pub code: &'static str,
    /// Display text.
    pub display: &'static str,
}

/// An emergency-access grant.
#[derive(Clone, PartialEq, Eq)]
pub struct BreakGlassGrant {
    /// Its id.
    pub id: String,
    /// Who broke the glass.
    pub user: UserId,
    /// In which session.
    pub session: SessionId,
    /// The typed reason (may contain PHI: never log it; `Debug` hides it).
    pub reason: String,
    /// Started.
    pub started_at: Timestamp,
    /// Ends.
    pub expires_at: Timestamp,
    /// Ended early (logout, revocation).
    pub ended_at: Option<Timestamp>,
    /// When a privacy officer reviewed it.
    pub reviewed_at: Option<Timestamp>,
    /// Which privacy officer.
    pub reviewed_by: Option<UserId>,
}

impl BreakGlassGrant {
    /// AuditEvent subtype: DICOM 110127 "Emergency Override Started".
    pub const EVENT: Coding = Coding {
        system: "http://dicom.nema.org/resources/ontology/DCM",
        code: "110127",
        display: "Emergency Override Started",
    };
    /// Authorization reason (purpose of use): v3-ActReason ETREAT.
    pub const PURPOSE: Coding = Coding {
        system: "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        code: "ETREAT",
        display: "Emergency Treatment",
    };
}

impl fmt::Debug for BreakGlassGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakGlassGrant")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("session", &self.session)
            .field(
                "reason",
                &format_args!("<redacted, {} chars>", self.reason.chars().count()),
            )
            .field("started_at", &self.started_at)
            .field("expires_at", &self.expires_at)
            .field("reviewed_at", &self.reviewed_at)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Breaks the glass: checks the principal may (role and a recent
    /// second factor), records the sealed reason and returns the grant for
    /// the audit. The grant applies from the principal's next
    /// authentication on (the next request).
    pub fn break_glass(&self, principal: &Principal, reason: &str) -> Result<BreakGlassGrant> {
        // Audited with its real outcome (a refusal, such as a reason too
        // short, as denied), the grant id in the entry when granted.
        let result = (|| {
            self.authorize(principal, Action::BreakGlass)?;
            let session = principal.session_id().cloned().ok_or(Error::Forbidden {
                action: Action::BreakGlass,
            })?;
            let reason = reason.trim();
            let n = reason.chars().count();
            if !(MIN_REASON_CHARS..=MAX_REASON_CHARS).contains(&n)
                || reason.chars().any(|c| c.is_control() && c != '\n')
            {
                return Err(Error::Invalid(format!(
                    "break-glass needs a reason of {MIN_REASON_CHARS} to {MAX_REASON_CHARS} characters"
                )));
            }
            let now = self.now_unix();
            let session_end = principal
                .session_expires_at()
                .map_or(now, |t| t.unix_timestamp());
            let expires = now
                .saturating_add(secs(self.config.break_glass_duration))
                .min(session_end);
            let id = rxvault_crypto::random_id()?;
            let (sealed, dek) = self.seal(SEAL_DOMAIN, id.as_bytes(), reason.as_bytes())?;
            self.store.insert_break_glass(&StoredBreakGlass {
                id: id.clone(),
                account_id: principal.user_id().as_str().to_string(),
                session_id: session.as_str().to_string(),
                sealed_reason: sealed,
                dek,
                started_at: now,
                expires_at: expires,
                ended_at: None,
                reviewed_at: None,
                reviewed_by: None,
            })?;
            tracing::warn!(grant = %id, user = %principal.user_id(), "break-glass started");
            Ok(BreakGlassGrant {
                id,
                user: principal.user_id().clone(),
                session,
                reason: reason.to_string(),
                started_at: ts(now),
                expires_at: ts(expires),
                ended_at: None,
                reviewed_at: None,
                reviewed_by: None,
            })
        })();
        let mut entry = principal.audit_entry(rxvault_audit::Action::BreakGlass {
            reason: reason.trim().to_string(),
        });
        entry = match &result {
            Ok(grant) => entry.break_glass(grant.id.clone()),
            Err(e) if e.is_refusal() => entry.outcome(rxvault_audit::Outcome::Denied),
            Err(_) => entry.outcome(rxvault_audit::Outcome::Error),
        };
        self.record(entry)?;
        result
    }

    /// Break-glass grants for the privacy officer ([`Action::AuditRead`]),
    /// oldest first, with their reasons. Audited here: a use of the audit
    /// trail (DICOM 110101, `break-glass-review-list`), with its outcome.
    pub fn break_glass_grants(
        &self,
        principal: &Principal,
        unreviewed_only: bool,
    ) -> Result<Vec<BreakGlassGrant>> {
        let result = (|| {
            self.authorize(principal, Action::AuditRead)?;
            self.store
                .break_glass_grants(unreviewed_only)?
                .into_iter()
                .map(|g| {
                    let reason = self.with_keys(|k| {
                        k.open_blob(SEAL_DOMAIN, g.id.as_bytes(), &g.sealed_reason)
                    })?;
                    Ok(BreakGlassGrant {
                        reason: String::from_utf8_lossy(&reason).into_owned(),
                        user: UserId(g.account_id),
                        session: SessionId(g.session_id),
                        started_at: ts(g.started_at),
                        expires_at: ts(g.expires_at),
                        ended_at: g.ended_at.map(ts),
                        reviewed_at: g.reviewed_at.map(ts),
                        reviewed_by: g.reviewed_by.map(UserId),
                        id: g.id,
                    })
                })
                .collect()
        })();
        self.audited_act(
            principal.audit_entry(rxvault_audit::Action::AuditLogUsed {
                purpose: REVIEW_LIST.into(),
            }),
            result,
        )
    }

    /// Marks a grant reviewed by the privacy officer ([`Action::AuditRead`]).
    /// Audited here (`break-glass-reviewed`; a grant that does not exist or
    /// was reviewed already as denied).
    pub fn review_break_glass(&self, principal: &Principal, grant_id: &str) -> Result<()> {
        let result = (|| {
            self.authorize(principal, Action::AuditRead)?;
            if !self.store.review_break_glass(
                grant_id,
                principal.user_id().as_str(),
                self.now_unix(),
            )? {
                return Err(Error::NotFound {
                    what: "unreviewed break-glass grant",
                });
            }
            Ok(())
        })();
        self.audited_act(
            principal.audit_entry(rxvault_audit::Action::BreakGlassReviewed {
                grant: grant_id.to_string(),
            }),
            result,
        )
    }
}
