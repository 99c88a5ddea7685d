//! Break-glass: reason, step-up, expiry, wider read-only access, review by
//! the privacy officer, reason sealed at rest.

use crate::common::*;
use rxvault_auth::permissions::{self, Constraint};
use rxvault_auth::{Action, AuthConfig, BreakGlassGrant, Error, Role};
use rxvault_model::{CategorySet, FieldCategory, RecordKind};

const REASON: &str = "Patient Zelda Quintanilla collapsed at the counter; ER asks for allergies";

#[test]
fn break_glass_widens_reads_for_an_hour_and_is_reviewed() {
    each_backend(AuthConfig::default(), |fx| {
        let billing = fx.user("bill1", Role::Billing);
        let officer = fx.user("priv1", Role::PrivacyOfficer);
        let clerk = fx.user("ship1", Role::ShippingClerk);
        let (token, p) = fx.login(&billing);

        // Before: no allergies, no clinical data.
        assert!(matches!(
            fx.auth.authorize(&p, Action::AllergyRead),
            Err(Error::Forbidden { .. })
        ));
        assert!(
            !p.categories(RecordKind::Prescription)
                .contains(FieldCategory::Clinical)
        );

        // A reason is required; a stale second factor is not enough.
        assert!(matches!(
            fx.auth.break_glass(&p, "   short  "),
            Err(Error::Invalid(_))
        ));
        fx.advance(6 * 60);
        let p = fx.auth.authenticate(&token, here(), None).unwrap();
        assert!(matches!(
            fx.auth.break_glass(&p, REASON),
            Err(Error::StepUpRequired)
        ));
        let p = fx.auth.step_up_totp(&p, &fx.code(&billing)).unwrap();
        let grant = fx.auth.break_glass(&p, REASON).unwrap();
        assert_eq!(grant.reason, REASON);
        assert_eq!(
            (grant.expires_at - grant.started_at).whole_seconds(),
            3600,
            "one hour"
        );
        assert!(
            !format!("{grant:?}").contains("Zelda"),
            "Debug hides the reason"
        );
        assert_eq!(BreakGlassGrant::EVENT.code, "110127");
        assert_eq!(BreakGlassGrant::PURPOSE.code, "ETREAT");

        // In force from the next request: whole charts, read only, flagged.
        let p = fx.auth.authenticate(&token, here(), None).unwrap();
        assert_eq!(p.break_glass().unwrap().id, grant.id);
        for kind in RecordKind::ALL {
            assert_eq!(p.categories(kind), CategorySet::ALL, "{kind}");
        }
        let access = fx.auth.authorize(&p, Action::AllergyRead).unwrap();
        assert_eq!(access.constraint, Constraint::Unrestricted);
        assert!(
            permissions::allowed(Role::Billing, Action::AllergyRead).is_none(),
            "the grant, not the role, allows this"
        );
        for never in [
            Action::AllergyWrite,
            Action::PrescriptionUpdate,
            Action::BulkExport,
            Action::ShippingManifest,
            Action::AuditRead,
        ] {
            assert!(fx.auth.authorize(&p, never).is_err(), "{never}");
        }

        // Roles without break-glass cannot start one.
        let (_, pc) = fx.login(&clerk);
        assert!(matches!(
            fx.auth.break_glass(&pc, REASON),
            Err(Error::Forbidden { .. })
        ));

        // The privacy officer reviews; billing cannot see the list.
        assert!(fx.auth.break_glass_grants(&p, true).is_err());
        let (_, po) = fx.login(&officer);
        let pending = fx.auth.break_glass_grants(&po, true).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].reason, REASON);
        assert_eq!(pending[0].user, *p.user_id());
        fx.auth.review_break_glass(&po, &grant.id).unwrap();
        assert!(fx.auth.break_glass_grants(&po, true).unwrap().is_empty());
        assert!(matches!(
            fx.auth.review_break_glass(&po, &grant.id),
            Err(Error::NotFound { .. })
        ));
        let all = fx.auth.break_glass_grants(&po, false).unwrap();
        assert_eq!(all[0].reviewed_by.as_ref(), Some(po.user_id()));

        // An hour later it is over (the session itself lives on).
        fx.advance(25 * 60);
        assert!(
            fx.auth
                .authenticate(&token, here(), None)
                .unwrap()
                .break_glass()
                .is_some()
        );
        fx.advance(25 * 60);
        assert!(
            fx.auth
                .authenticate(&token, here(), None)
                .unwrap()
                .break_glass()
                .is_some()
        );
        fx.advance(11 * 60);
        let p = fx.auth.authenticate(&token, here(), None).unwrap();
        assert!(p.break_glass().is_none());
        assert!(fx.auth.authorize(&p, Action::AllergyRead).is_err());
        assert!(
            !p.categories(RecordKind::Allergy)
                .contains(FieldCategory::Clinical)
        );
    });
}

#[test]
fn a_grant_ends_with_its_session_and_its_reason_is_sealed_at_rest() {
    let fx = Fx::sqlite(AuthConfig::default());
    let admin = fx.user("admin1", Role::Administrator);
    let (token, p) = fx.login(&admin);
    assert!(
        p.categories(RecordKind::Patient).is_empty(),
        "admins read no charts"
    );
    fx.auth.break_glass(&p, REASON).unwrap();
    let p = fx.auth.authenticate(&token, here(), None).unwrap();
    assert_eq!(p.categories(RecordKind::Patient), CategorySet::ALL);
    fx.auth.logout(&p).unwrap();
    assert!(
        fx.auth
            .store()
            .active_break_glass(p.session_id().unwrap().as_str(), fx.now())
            .unwrap()
            .is_none()
    );
    for (file, bytes) in fx.files_bytes() {
        assert!(
            !contains(&bytes, b"Zelda"),
            "{file} holds the reason in the clear"
        );
        assert!(!contains(&bytes, b"Quintanilla"), "{file}");
    }
    // A grant never outlives its session.
    let short = Fx::sqlite(AuthConfig {
        absolute_timeout: std::time::Duration::from_secs(1800),
        ..AuthConfig::default()
    });
    let admin = short.user("admin1", Role::Administrator);
    let (_, p) = short.login(&admin);
    let g = short.auth.break_glass(&p, REASON).unwrap();
    assert_eq!(g.expires_at, p.session_expires_at().unwrap());
}
