//! Backoff and lockout per login name and per source address, identical for
//! names that do not exist.

use crate::common::*;
use rxvault_auth::{AuthConfig, Error, Login, Role};
use rxvault_crypto::Password;

fn wrong() -> Password {
    Password::new("definitely not it".into())
}

#[test]
fn failures_back_off_exponentially_then_lock_and_an_admin_unlocks() {
    each_backend(AuthConfig::default(), |fx| {
        let u = fx.user("pharm1", Role::Pharmacist);
        let login = |pw: &Password| fx.auth.login_password("pharm1", pw, here(), None);
        // Three free failures.
        for _ in 0..3 {
            assert!(matches!(login(&wrong()), Err(Error::InvalidCredentials)));
        }
        // The fourth failure makes the next attempt wait 1 s, then 2 s, 4 s.
        assert!(matches!(login(&wrong()), Err(Error::InvalidCredentials)));
        for expected in [1u64, 2, 4, 8] {
            match login(&u.password) {
                Err(Error::Throttled { retry_after_secs }) => {
                    assert_eq!(retry_after_secs, expected)
                }
                other => panic!("expected a delay of {expected} s, got {other:?}"),
            }
            fx.advance(expected);
            assert!(matches!(login(&wrong()), Err(Error::InvalidCredentials)));
        }
        // 8 failures so far; keep failing (waiting out each delay) to the
        // lockout at 20, well under NIST's 100.
        let mut failures = 8;
        while failures < 20 {
            fx.advance(15 * 60);
            assert!(matches!(login(&wrong()), Err(Error::InvalidCredentials)));
            failures += 1;
        }
        fx.advance(24 * 3600);
        assert!(
            matches!(login(&u.password), Err(Error::Locked)),
            "the right password does not open a locked login"
        );
        assert!(fx.auth.key_holder().user("pharm1").unwrap().locked);
        fx.auth.key_holder().unlock("pharm1").unwrap();
        let Ok(Login::SecondFactor(p)) = login(&u.password) else {
            panic!("unlocked")
        };
        // Second-factor failures count against the same name.
        assert!(fx.auth.verify_totp(p, "123").is_err());
        let Ok(Login::SecondFactor(p)) = login(&u.password) else {
            panic!()
        };
        assert!(fx.auth.verify_totp(p, &fx.code(&u)).is_ok());
        // A complete login resets the count.
        for _ in 0..3 {
            assert!(matches!(login(&wrong()), Err(Error::InvalidCredentials)));
        }
    });
}

#[test]
fn unknown_names_are_throttled_and_locked_exactly_like_real_ones() {
    let fx = Fx::sqlite(AuthConfig::default());
    fx.user("pharm1", Role::Pharmacist);
    let mut answers = Vec::new();
    for name in ["pharm1", "nobody1"] {
        let mut seen = Vec::new();
        for i in 0..22 {
            // Each attempt from its own address: only the name is counted.
            let src = ip(&format!("10.{}.0.{i}", answers.len()));
            let r = fx.auth.login_password(name, &wrong(), src, None);
            seen.push(match r {
                Err(e) => e.to_string(),
                Ok(_) => "ok".into(),
            });
            fx.advance(15 * 60);
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "same answers, same order");
    assert!(answers[0].last().unwrap().contains("locked"));
}

#[test]
fn one_source_guessing_many_names_is_slowed_down() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let attacker = ip("198.51.100.66");
    for i in 0..10 {
        assert!(matches!(
            fx.auth
                .login_password(&format!("guess{i}"), &wrong(), attacker, None),
            Err(Error::InvalidCredentials)
        ));
    }
    // The 11th failure from this address starts its backoff.
    assert!(
        fx.auth
            .login_password("guess10", &wrong(), attacker, None)
            .is_err()
    );
    assert!(matches!(
        fx.auth.login_password("guess11", &wrong(), attacker, None),
        Err(Error::Throttled { .. })
    ));
    // Others are not affected.
    assert!(
        fx.auth
            .login_password("pharm1", &u.password, here(), None)
            .is_ok()
    );
    // The address's count fades after an hour without failures.
    fx.advance(3601);
    assert!(matches!(
        fx.auth.login_password("guess12", &wrong(), attacker, None),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        fx.auth.login_password("guess13", &wrong(), attacker, None),
        Err(Error::InvalidCredentials)
    ));
    // Bad API keys count against the address too.
    for _ in 0..12 {
        let _ = fx.auth.authenticate_api_key(
            &rxvault_crypto::Token::from_presented("rxk_forged"),
            ip("198.51.100.67"),
        );
    }
    assert!(matches!(
        fx.auth.authenticate_api_key(
            &rxvault_crypto::Token::from_presented("rxk_forged"),
            ip("198.51.100.67")
        ),
        Err(Error::Throttled { .. })
    ));
}
