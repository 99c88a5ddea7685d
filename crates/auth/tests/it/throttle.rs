//! Backoff and lockout per login name and per source address, identical for
//! names that do not exist.

use crate::common::*;
use rxvault_auth::{AuthConfig, Client, Error, Login, Role};
use rxvault_crypto::Password;

fn wrong() -> Password {
    Password::new("definitely not it".into())
}

#[test]
fn failures_back_off_exponentially_then_lock_and_an_admin_unlocks() {
    each_backend(AuthConfig::default(), |fx| {
        let u = fx.user("pharm1", Role::Pharmacist);
        let login = |pw: &Password| fx.auth.login_password("pharm1", pw, &Client::at(here()));
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
            let r = fx.auth.login_password(name, &wrong(), &Client::at(src));
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
                .login_password(&format!("guess{i}"), &wrong(), &Client::at(attacker)),
            Err(Error::InvalidCredentials)
        ));
    }
    // The 11th failure from this address starts its backoff.
    assert!(
        fx.auth
            .login_password("guess10", &wrong(), &Client::at(attacker))
            .is_err()
    );
    assert!(matches!(
        fx.auth
            .login_password("guess11", &wrong(), &Client::at(attacker)),
        Err(Error::Throttled { .. })
    ));
    // Others are not affected.
    assert!(
        fx.auth
            .login_password("pharm1", &u.password, &Client::at(here()))
            .is_ok()
    );
    // The address's count fades after an hour without failures.
    fx.advance(3601);
    assert!(matches!(
        fx.auth
            .login_password("guess12", &wrong(), &Client::at(attacker)),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        fx.auth
            .login_password("guess13", &wrong(), &Client::at(attacker)),
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

/// How many of `attempts` were checked (answered `InvalidCredentials`);
/// the rest must have been refused unchecked.
fn checked(results: Vec<Result<(), Error>>) -> usize {
    let mut n = 0;
    for r in results {
        match r {
            Err(Error::InvalidCredentials) => n += 1,
            Err(Error::Throttled { .. } | Error::Locked) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    n
}

/// Runs `attempt(i)` for i in 0..32, one after another or all at once.
fn burst(concurrent: bool, attempt: &(dyn Fn(usize) -> Result<(), Error> + Sync)) -> usize {
    if !concurrent {
        return checked((0..32).map(attempt).collect());
    }
    let barrier = std::sync::Barrier::new(32);
    checked(std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    attempt(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }))
}

/// Issue 9, item 3: 32 wrong passwords sent at once for one account were
/// all checked (4 when sent one after another); spraying 32 names at once
/// likewise; bursts of TOTP codes got 4–32 checks. A burst now gets exactly
/// the checks the same attempts get one after another.
#[test]
fn bursts_get_no_more_checks_than_attempts_one_after_another() {
    let kinds = ["one account", "32 names", "TOTP codes"];
    for kind in kinds {
        let counts = std::sync::Mutex::new(Vec::new());
        for concurrent in [false, true] {
            each_backend(AuthConfig::default(), |fx| {
                let u = fx.user("pharm1", Role::Pharmacist);
                let n = match kind {
                    "one account" => burst(concurrent, &|_| {
                        fx.auth
                            .login_password("pharm1", &wrong(), &Client::at(here()))
                            .map(drop)
                    }),
                    "32 names" => burst(concurrent, &|i| {
                        fx.auth
                            .login_password(&format!("user{i}"), &wrong(), &Client::at(here()))
                            .map(drop)
                    }),
                    _ => {
                        // 32 pending logins (right password), then 32 wrong
                        // codes for them.
                        let pending: Vec<_> = (0..32)
                            .map(|_| {
                                let Ok(Login::SecondFactor(p)) = fx.auth.login_password(
                                    "pharm1",
                                    &u.password,
                                    &Client::at(here()),
                                ) else {
                                    panic!("the right password passes")
                                };
                                std::sync::Mutex::new(Some(p))
                            })
                            .collect();
                        burst(concurrent, &|i| {
                            let p = pending[i].lock().unwrap().take().unwrap();
                            fx.auth.verify_totp(p, "000000").map(drop)
                        })
                    }
                };
                counts.lock().unwrap().push((concurrent, n));
            });
        }
        let counts = counts.into_inner().unwrap();
        let sequential: Vec<usize> = counts.iter().filter(|c| !c.0).map(|c| c.1).collect();
        let at_once: Vec<usize> = counts.iter().filter(|c| c.0).map(|c| c.1).collect();
        assert!(
            sequential.iter().all(|n| *n > 0 && *n < 32),
            "{kind}: throttled one after another: {sequential:?}"
        );
        assert_eq!(
            at_once, sequential,
            "{kind}: checks at once vs one after another"
        );
    }
}
