//! Sign-in, second factors, lockouts, step-up and logout are audited by
//! this crate, where they are done, with their real outcome and reason
//! (issue 8, item 2): called directly, with no server in between, each
//! attempt leaves exactly its entries in the vault's real audit log, on
//! SQLite and on PostgreSQL.

use crate::common::*;
use rxvault_audit::{Action, ActorKind, Entry, Outcome};
use rxvault_auth::{AuthConfig, Client, Error, Login, Role, ThrottleConfig};
use rxvault_crypto::{Password, TotpSecret};

/// Lock after 3 failures, and never slow the one test address down.
fn config() -> AuthConfig {
    AuthConfig {
        throttle: ThrottleConfig {
            account_free_failures: 1,
            account_lockout: 3,
            source_free_failures: 1_000,
            ..ThrottleConfig::default()
        },
        ..AuthConfig::default()
    }
}

fn wrong() -> Password {
    Password::new("definitely not it".into())
}

/// A code of `totp` accepted at no step around `now`.
fn wrong_code(totp: &TotpSecret, now: i64) -> String {
    let near: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp.code_at(*t).to_string())
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// What an entry says, without its time and index: kind and details,
/// outcome, actor, session, source, user agent.
fn said(e: &Entry) -> (String, Outcome, String, Option<String>, Option<String>) {
    (
        serde_json::to_string(&e.action).unwrap(),
        e.outcome,
        e.actor.id.clone(),
        e.session.clone(),
        e.user_agent.clone(),
    )
}

/// The one entry `act` appended (it must append exactly one).
fn one<T>(fx: &Fx, act: impl FnOnce() -> T) -> (T, Entry) {
    let mark = fx.audit_size();
    let out = act();
    let mut new = fx.audit_since(mark);
    assert_eq!(new.len(), 1, "one entry: {new:?}");
    (out, new.remove(0))
}

fn auth_failure(reason: &str) -> String {
    serde_json::to_string(&Action::AuthFailure {
        method: "password".into(),
        reason: reason.into(),
    })
    .unwrap()
}

fn mfa_failure(method: &str, reason: &str) -> String {
    serde_json::to_string(&Action::MfaFailure {
        method: method.into(),
        reason: Some(reason.into()),
    })
    .unwrap()
}

fn mfa_success(method: &str) -> String {
    serde_json::to_string(&Action::MfaSuccess {
        method: method.into(),
    })
    .unwrap()
}

#[test]
fn every_sign_in_step_is_audited_by_the_library_with_its_real_outcome_and_reason() {
    let config = AuthConfig {
        throttle: ThrottleConfig {
            source_free_failures: 1_000,
            ..ThrottleConfig::default()
        },
        ..AuthConfig::default()
    };
    each_backend(config, |fx| {
        let u = fx.user("pharm1", Role::Pharmacist);
        let admin = fx.auth.key_holder();
        admin.create_service_account("pms").unwrap();
        drop(add_and_redeem(
            &fx.auth,
            "gone",
            Role::Technician,
            &u.password,
        ));
        admin.disable("gone").unwrap();
        // The user agent is cleaned before it is recorded (no control
        // characters reach a syslog line).
        let client = Client::at(here()).user_agent("rxvault-desk/1.2 \u{1b}[31m");
        let ua = Some("rxvault-desk/1.2 ?[31m".to_string());

        // The client hears the same for each; the audit says which it was.
        for (name, password, reason) in [
            ("nobody", &u.password, "unknown-user"),
            ("pharm1", &wrong(), "bad-password"),
            ("pms", &wrong(), "service-account"),
            ("gone", &u.password, "disabled"),
        ] {
            let (r, e) = one(fx, || fx.auth.login_password(name, password, &client));
            assert!(matches!(r, Err(Error::InvalidCredentials)), "{name}");
            assert_eq!(
                said(&e),
                (
                    auth_failure(reason),
                    Outcome::Denied,
                    name.into(),
                    None,
                    ua.clone()
                ),
                "{name}"
            );
            assert_eq!(e.actor.kind, ActorKind::User);
            assert_eq!(e.source, Some(here()));
            // No password in any entry.
            assert!(!format!("{e:?}").contains("violet harbor"), "{e:?}");
        }

        // The password step: a pending login, named in the entry.
        let login = |fx: &Fx| {
            fx.advance(30);
            let (r, e) = one(fx, || {
                fx.auth.login_password("Pharm1", &u.password, &client)
            });
            let Ok(Login::SecondFactor(p)) = r else {
                panic!("a second factor is due")
            };
            assert_eq!(
                said(&e),
                (
                    serde_json::to_string(&Action::AuthSuccess {
                        method: "password".into()
                    })
                    .unwrap(),
                    Outcome::Success,
                    "pharm1".into(),
                    Some(p.id().as_str().to_string()),
                    ua.clone()
                )
            );
            p
        };

        // A wrong TOTP code, then the right one, then the right one again.
        let p = login(fx);
        let pending = p.id().as_str().to_string();
        let (r, e) = one(fx, || {
            fx.auth
                .verify_totp(p, &wrong_code(&u.totp, fx.now()))
                .map(|_| ())
        });
        assert!(matches!(r, Err(Error::InvalidCredentials)));
        assert_eq!(
            said(&e),
            (
                mfa_failure("totp", "wrong-code"),
                Outcome::Denied,
                "pharm1".into(),
                Some(pending),
                ua.clone()
            )
        );
        let p = login(fx);
        let code = fx.code(&u);
        let (session, e) = one(fx, || fx.auth.verify_totp(p, &code).unwrap());
        assert_eq!(
            said(&e),
            (
                mfa_success("totp"),
                Outcome::Success,
                "pharm1".into(),
                Some(session.id().as_str().to_string()),
                ua.clone()
            ),
            "the new session is named"
        );
        let principal = session.into_principal();
        // (The next step: the code of the one before is still in the window,
        // and spent.)
        let p = login(fx);
        let (r, e) = one(fx, || fx.auth.verify_totp(p, &code).map(|_| ()));
        assert!(matches!(r, Err(Error::InvalidCredentials)));
        assert_eq!(said(&e).0, mfa_failure("totp", "replayed-code"));
        assert_eq!(e.outcome, Outcome::Denied);

        // A recovery code that is not one.
        let p = login(fx);
        let (r, e) = one(fx, || {
            fx.auth
                .verify_recovery_code(p, "aaaa-bbbb-cccc-dddd")
                .map(|_| ())
        });
        assert!(r.is_err());
        assert_eq!(
            said(&e).0,
            mfa_failure("recovery-code", "wrong-recovery-code")
        );

        // Step-up in the session: refused, then accepted; the session's
        // entry form (its id, address).
        fx.advance(30);
        let (r, e) = one(fx, || {
            fx.auth
                .step_up_totp(&principal, &wrong_code(&u.totp, fx.now()))
        });
        assert!(r.is_err());
        assert_eq!(said(&e).0, mfa_failure("totp-step-up", "wrong-code"));
        assert_eq!(
            e.session.as_deref(),
            principal.session_id().map(|s| s.as_str())
        );
        let (r, e) = one(fx, || fx.auth.step_up_totp(&principal, &fx.code(&u)));
        assert!(r.is_ok());
        assert_eq!(
            (said(&e).0, e.outcome),
            (mfa_success("totp-step-up"), Outcome::Success)
        );

        // Logout.
        let (r, e) = one(fx, || fx.auth.logout(&principal));
        assert!(r.is_ok());
        assert_eq!(
            (e.action.clone(), e.outcome, e.session.clone()),
            (
                Action::Logout,
                Outcome::Success,
                principal.session_id().map(|s| s.as_str().to_string())
            )
        );
    });
}

#[test]
fn the_failure_that_locks_a_name_is_audited_with_the_lockout_and_a_locked_name_as_locked() {
    each_backend(config(), |fx| {
        let u = fx.user("pharm1", Role::Pharmacist);
        let client = Client::at(here());
        let attempt = |pw: &Password| fx.auth.login_password("pharm1", pw, &client);
        for _ in 0..2 {
            fx.advance(15 * 60);
            let (r, e) = one(fx, || attempt(&wrong()));
            assert!(matches!(r, Err(Error::InvalidCredentials)));
            assert_eq!(said(&e).0, auth_failure("bad-password"));
        }
        // The third locks the name: its failure, then the lockout.
        fx.advance(15 * 60);
        let mark = fx.audit_size();
        assert!(matches!(attempt(&wrong()), Err(Error::InvalidCredentials)));
        let new = fx.audit_since(mark);
        assert_eq!(
            new.iter()
                .map(|e| (said(e).0, e.outcome, e.actor.id.clone()))
                .collect::<Vec<_>>(),
            vec![
                (
                    auth_failure("bad-password"),
                    Outcome::Denied,
                    "pharm1".into()
                ),
                (
                    serde_json::to_string(&Action::Lockout { until_ms: None }).unwrap(),
                    Outcome::Denied,
                    "pharm1".into()
                ),
            ]
        );
        // The right password no longer opens it: refused as locked, one
        // entry, no second lockout.
        fx.advance(24 * 3600);
        let (r, e) = one(fx, || attempt(&u.password));
        assert!(matches!(r, Err(Error::Locked)));
        assert_eq!(
            (said(&e).0, e.outcome),
            (auth_failure("locked"), Outcome::Denied)
        );
        // Unlocked by the key holder (audited there), it opens again.
        fx.auth.key_holder().unlock("pharm1").unwrap();
        assert!(attempt(&u.password).is_ok());

        // Second factors count against the same name and lock it too.
        let pending = || match attempt(&u.password) {
            Ok(Login::SecondFactor(p)) => p,
            other => panic!("{other:?}"),
        };
        // (A right password stamps the name's last failure time too: each
        // code waits out the backoff after its password step.)
        for _ in 0..2 {
            fx.advance(15 * 60);
            let p = pending();
            fx.advance(2);
            let code = wrong_code(&u.totp, fx.now());
            let (r, e) = one(fx, || fx.auth.verify_totp(p, &code).map(|_| ()));
            assert!(r.is_err());
            assert_eq!(said(&e).0, mfa_failure("totp", "wrong-code"));
        }
        fx.advance(15 * 60);
        let p = pending();
        fx.advance(2);
        let code = wrong_code(&u.totp, fx.now());
        let mark = fx.audit_size();
        assert!(fx.auth.verify_totp(p, &code).is_err());
        let kinds: Vec<String> = fx
            .audit_since(mark)
            .iter()
            .map(|e| e.action.kind().name().to_string())
            .collect();
        assert_eq!(kinds, ["mfa-failure", "lockout"]);
    });
}

#[test]
fn enrolling_a_second_factor_at_first_login_is_audited_as_the_key_holder_records_it() {
    each_backend(config(), |fx| {
        let password = Password::new("violet harbor lantern 42".into());
        drop(add_and_redeem(
            &fx.auth,
            "newbie",
            Role::Technician,
            &password,
        ));
        let client = Client::at(here()).user_agent("Mozilla/5.0");
        let Ok(Login::Enrol(s)) = fx.auth.login_password("newbie", &password, &client) else {
            panic!("no second factor yet")
        };
        let token = s.token().clone();
        // No enrolment started: nothing to confirm.
        let (r, e) = one(fx, || {
            fx.auth.finish_totp_enrolment(s, "123456").map(|_| ())
        });
        assert!(r.is_err());
        assert_eq!(said(&e).0, mfa_failure("totp-enrolment", "no-challenge"));
        let Ok(Login::Enrol(s)) = fx.auth.resume(&token, &client) else {
            panic!()
        };
        let enrolment = fx.auth.start_totp_enrolment(&s).unwrap();
        let totp = TotpSecret::from_base32(&enrolment.secret_base32()).unwrap();
        let (r, e) = one(fx, || {
            fx.auth
                .finish_totp_enrolment(s, &wrong_code(&totp, fx.now()))
                .map(|_| ())
        });
        assert!(r.is_err());
        assert_eq!(said(&e).0, mfa_failure("totp-enrolment", "wrong-code"));
        fx.advance(2); // the backoff after two failures
        let Ok(Login::Enrol(s)) = fx.auth.resume(&token, &client) else {
            panic!("the enrolment stays open after a wrong code")
        };
        let mark = fx.audit_size();
        let (session, _codes) = fx
            .auth
            .finish_totp_enrolment(s, &totp.code_at(fx.now()))
            .unwrap();
        let new = fx.audit_since(mark);
        let sid = Some(session.id().as_str().to_string());
        assert_eq!(
            new.iter().map(said).collect::<Vec<_>>(),
            vec![
                (
                    serde_json::to_string(&Action::UserAdmin {
                        operation: "enrol-totp".into(),
                        target: "newbie".into()
                    })
                    .unwrap(),
                    Outcome::Success,
                    "newbie".into(),
                    sid.clone(),
                    Some("Mozilla/5.0".into())
                ),
                (
                    mfa_success("totp-enrolment"),
                    Outcome::Success,
                    "newbie".into(),
                    sid,
                    Some("Mozilla/5.0".into())
                ),
            ]
        );
    });
}
