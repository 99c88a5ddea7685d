//! Session timeouts (through the manual clock), revocation, binding,
//! step-up.

use crate::common::*;
use rxvault_auth::session::RevokeTarget;
use rxvault_auth::{Action, AuthConfig, Client, Error, HostId, Login, Role};

#[test]
fn idle_timeout_is_30_minutes_of_inactivity() {
    each_backend(AuthConfig::default(), |fx| {
        let u = fx.user("pharm1", Role::Pharmacist);
        let (token, _) = fx.login(&u);
        // Used every 29 minutes, the session lives on.
        for _ in 0..5 {
            fx.advance(29 * 60);
            fx.auth
                .authenticate(&token, here(), None)
                .expect("used within the idle timeout");
        }
        // 30 minutes without use: over, for good.
        fx.advance(30 * 60);
        assert!(matches!(
            fx.auth.authenticate(&token, here(), None),
            Err(Error::Unauthenticated)
        ));
        fx.advance(1);
        assert!(fx.auth.authenticate(&token, here(), None).is_err());
    });
}

#[test]
fn absolute_timeout_is_12_hours_however_active() {
    each_backend(AuthConfig::default(), |fx| {
        let u = fx.user("pharm1", Role::Pharmacist);
        let (token, p) = fx.login(&u);
        let start = fx.now();
        assert_eq!(
            p.session_expires_at().unwrap().unix_timestamp(),
            start + 12 * 3600
        );
        while fx.now() + 20 * 60 < start + 12 * 3600 {
            fx.advance(20 * 60);
            fx.auth.authenticate(&token, here(), None).unwrap();
        }
        fx.advance((start + 12 * 3600 - fx.now() - 1) as u64);
        fx.auth.authenticate(&token, here(), None).unwrap();
        fx.advance(1);
        assert!(matches!(
            fx.auth.authenticate(&token, here(), None),
            Err(Error::Unauthenticated)
        ));
    });
}

#[test]
fn timeouts_are_configurable() {
    let config = AuthConfig {
        idle_timeout: std::time::Duration::from_secs(60 * 60),
        absolute_timeout: std::time::Duration::from_secs(2 * 3600),
        touch_interval: std::time::Duration::from_secs(10),
        ..AuthConfig::default()
    };
    let fx = Fx::sqlite(config);
    let u = fx.user("pharm1", Role::Pharmacist);
    let (token, _) = fx.login(&u);
    fx.advance(59 * 60);
    fx.auth.authenticate(&token, here(), None).unwrap();
    fx.advance(59 * 60);
    fx.auth.authenticate(&token, here(), None).unwrap();
    fx.advance(3 * 60);
    assert!(fx.auth.authenticate(&token, here(), None).is_err(), "2 h");
}

#[test]
fn revocation_per_session_user_and_host_is_immediate() {
    each_backend(AuthConfig::default(), |fx| {
        let a = fx.user("pharm1", Role::Pharmacist);
        let b = fx.user("tech1", Role::Technician);
        let admin = fx.user("admin1", Role::Administrator);
        let ws1 = HostId::new("ws-1").unwrap();
        let ws2 = HostId::new("ws-2").unwrap();
        let login_on = |u: &User, host: &HostId| {
            fx.advance(30);
            let Login::SecondFactor(p) = fx
                .auth
                .login_password(
                    &u.name,
                    &u.password,
                    &Client::at(here()).host(Some(host.clone())),
                )
                .unwrap()
            else {
                panic!()
            };
            let s = fx.auth.verify_totp(p, &fx.code(u)).unwrap();
            (s.token().clone(), s.into_principal())
        };
        let (a1, pa1) = login_on(&a, &ws1);
        let (a2, _) = login_on(&a, &ws2);
        let (b1, _) = login_on(&b, &ws1);
        let (b2, _) = login_on(&b, &ws2);
        let (adm, padm) = login_on(&admin, &ws2);
        let ok = |t, h: &HostId| fx.auth.authenticate(t, here(), Some(h)).is_ok();

        // The host binding: a token is refused from another host.
        assert!(ok(&a1, &ws1) && !ok(&a1, &ws2));
        assert!(fx.auth.authenticate(&a1, here(), None).is_err());

        // A technician may not revoke others' sessions; their own, yes.
        let pb = fx.auth.authenticate(&b2, here(), Some(&ws2)).unwrap();
        assert!(matches!(
            fx.auth.revoke(&pb, &RevokeTarget::Host(ws1.clone())),
            Err(Error::Forbidden { .. })
        ));
        // The agent cuts ws-1 off: every session there ends at once.
        assert_eq!(
            fx.auth
                .revoke(&padm, &RevokeTarget::Host(ws1.clone()))
                .unwrap(),
            2
        );
        assert!(!ok(&a1, &ws1) && !ok(&b1, &ws1));
        assert!(ok(&a2, &ws2) && ok(&b2, &ws2));
        // Per user.
        assert_eq!(
            fx.auth
                .revoke(&padm, &RevokeTarget::User(pa1.user_id().clone()))
                .unwrap(),
            1
        );
        assert!(!ok(&a2, &ws2) && ok(&b2, &ws2));
        // Per session, by the user themselves (logout elsewhere) or logout.
        let sid = pb.session_id().unwrap().clone();
        assert_eq!(fx.auth.revoke(&pb, &RevokeTarget::Session(sid)).unwrap(), 1);
        assert!(!ok(&b2, &ws2));
        assert!(ok(&adm, &ws2));
        fx.auth.logout(&padm).unwrap();
        assert!(!ok(&adm, &ws2));
    });
}

#[test]
fn sessions_are_bound_to_their_source_address() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let (token, _) = fx.login(&u);
    assert!(matches!(
        fx.auth.authenticate(&token, ip("198.51.100.77"), None),
        Err(Error::Unauthenticated)
    ));
    assert!(fx.auth.authenticate(&token, here(), None).is_ok());
    let relaxed = Fx::sqlite(AuthConfig {
        bind_source_address: false,
        ..AuthConfig::default()
    });
    let u = relaxed.user("pharm1", Role::Pharmacist);
    let (token, _) = relaxed.login(&u);
    assert!(
        relaxed
            .auth
            .authenticate(&token, ip("198.51.100.77"), None)
            .is_ok()
    );
}

#[test]
fn disabling_a_user_or_changing_a_role_takes_effect_on_the_next_request() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("bill1", Role::Billing);
    let (token, p) = fx.login(&u);
    assert!(fx.auth.authorize(&p, Action::AllergyRead).is_err());
    // A raise waits for a second person: nothing changes until approved.
    let rxvault_auth::RoleChange::Pending(request) = fx
        .auth
        .key_holder()
        .set_role("bill1", Role::Pharmacist)
        .unwrap()
    else {
        panic!("billing to pharmacist is a raise")
    };
    let p = fx.auth.authenticate(&token, here(), None).unwrap();
    assert_eq!(p.role(), Some(Role::Billing));
    approve_as_single_operator(&fx.auth, &request.id);
    let p = fx.auth.authenticate(&token, here(), None).unwrap();
    assert_eq!(p.role(), Some(Role::Pharmacist));
    assert!(fx.auth.authorize(&p, Action::AllergyRead).is_ok());
    fx.auth.key_holder().disable("bill1").unwrap();
    assert!(matches!(
        fx.auth.authenticate(&token, here(), None),
        Err(Error::Unauthenticated)
    ));
    fx.auth.key_holder().enable("bill1").unwrap();
    assert!(
        fx.auth.authenticate(&token, here(), None).is_err(),
        "disabling revoked the session for good"
    );
    assert!(fx.login(&u).1.role() == Some(Role::Pharmacist));
}

#[test]
fn step_up_actions_need_a_second_factor_in_the_last_five_minutes() {
    each_backend(AuthConfig::default(), |fx| {
        let admin = fx.user("admin1", Role::Administrator);
        let other = fx.user("tech1", Role::Technician);
        let (token, p) = fx.login(&admin);
        // Right after login the login's own second factor counts.
        assert!(fx.auth.admin(&p).is_ok());
        fx.advance(5 * 60 + 1);
        let p = fx.auth.authenticate(&token, here(), None).unwrap();
        for action in [Action::UserAdmin, Action::KeyOperations, Action::BreakGlass] {
            assert!(
                matches!(fx.auth.authorize(&p, action), Err(Error::StepUpRequired)),
                "{action}"
            );
        }
        assert!(matches!(fx.auth.admin(&p), Err(Error::StepUpRequired)));
        // Revoking sessions is protective, not step-up.
        assert!(fx.auth.authorize(&p, Action::RevokeSessions).is_ok());
        // A wrong code is a failure like any other.
        assert!(matches!(
            fx.auth.step_up_totp(&p, "000000x"),
            Err(Error::InvalidCredentials)
        ));
        let p = fx.auth.step_up_totp(&p, &fx.code(&admin)).unwrap();
        assert!(fx.auth.admin(&p).is_ok());
        // And it is recorded in the session for later requests.
        let again = fx.auth.authenticate(&token, here(), None).unwrap();
        let admin_ops = fx.auth.admin(&again).unwrap();
        assert_eq!(admin_ops.users().unwrap().len(), 2);
        // An administrator cannot promote themselves into a chart role.
        assert!(matches!(
            admin_ops.set_role("admin1", Role::Pharmacist),
            Err(Error::Forbidden { .. })
        ));
        admin_ops.set_role("tech1", Role::Billing).unwrap();
        let _ = other;
        // The same code cannot be replayed for another step-up.
        fx.advance(6 * 60);
        let p = fx.auth.authenticate(&token, here(), None).unwrap();
        let code = fx.code(&admin);
        let p = fx.auth.step_up_totp(&p, &code).unwrap();
        assert!(matches!(
            fx.auth.step_up_totp(&p, &code),
            Err(Error::InvalidCredentials)
        ));
    });
}

#[test]
fn session_listing_shows_no_secrets() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let (token, p) = fx.login(&u);
    let mine = fx.auth.own_sessions(&p).unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(&mine[0].id, p.session_id().unwrap());
    let listed = format!("{:?}", fx.auth.key_holder().sessions(None, true).unwrap());
    assert!(!listed.contains(token.expose()));
    assert!(!format!("{p:?}").contains(token.expose()));
}

#[test]
fn purging_keeps_live_sessions_and_locks() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let v = fx.user("tech1", Role::Technician);
    let (old, p) = fx.login(&u);
    fx.auth.logout(&p).unwrap();
    for _ in 0..20 {
        let _ = fx.auth.login_password(
            "tech1",
            &rxvault_crypto::Password::new("wrong wrong wrong".into()),
            &Client::at(here()),
        );
        fx.advance(15 * 60);
    }
    fx.advance(2 * 24 * 3600);
    let (live, _) = fx.login_from(&u, ip("192.0.2.99"));
    // The logged-out session, and the two logins that completed each
    // person's TOTP enrolment (logged out at once by the fixture).
    assert_eq!(
        fx.auth
            .purge(std::time::Duration::from_secs(24 * 3600))
            .unwrap(),
        1 + 2
    );
    assert!(fx.auth.authenticate(&live, ip("192.0.2.99"), None).is_ok());
    assert!(fx.auth.authenticate(&old, here(), None).is_err());
    assert!(matches!(
        fx.auth
            .login_password("tech1", &v.password, &Client::at(here())),
        Err(Error::Locked)
    ));
}
