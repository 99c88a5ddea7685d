//! Passwords, TOTP (RFC 6238, against oathtool), recovery codes, enrolment.

use crate::common::*;
use rxvault_auth::{AuthConfig, Client, Error, Login, Role};
use rxvault_crypto::otp::time_step;
use rxvault_crypto::{Password, Token, TotpSecret};
use std::time::Instant;

#[test]
fn password_then_totp_gives_a_session_on_both_backends() {
    each_backend(AuthConfig::default(), |fx| {
        let u = fx.user("pharm1", Role::Pharmacist);
        let (token, principal) = fx.login(&u);
        assert!(token.expose().starts_with("rxs_"));
        assert_eq!(principal.role(), Some(Role::Pharmacist));
        let again = fx.auth.authenticate(&token, here(), None).unwrap();
        assert_eq!(again.user_id(), principal.user_id());
        assert_eq!(again.session_id(), principal.session_id());
        assert_eq!(
            again.mfa_at().unwrap().unix_timestamp(),
            fx.now(),
            "the login's second factor counts as the first MFA check"
        );
    });
}

#[test]
fn totp_codes_from_oathtool_are_accepted_once_and_old_ones_never() {
    if !tool("oathtool", "oathtool") {
        return;
    }
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let b32 = u.totp.to_base32();
    // oathtool is an independent RFC 6238 implementation; --now pins it
    // to the manual clock.
    let oathtool = |at: i64, offset: i64| -> String {
        let when = time::OffsetDateTime::from_unix_timestamp(at + offset * 30).unwrap();
        let out = std::process::Command::new("oathtool")
            .args(["--totp", "--base32", "--digits=6"])
            .arg(format!(
                "--now={}",
                when.format(&time::format_description::well_known::Rfc3339)
                    .unwrap()
                    .replace('T', " ")
                    .replace('Z', " UTC")
            ))
            .arg(b32.as_str())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let pending = |fx: &Fx| match fx
        .auth
        .login_password("pharm1", &u.password, &Client::at(here()))
        .unwrap()
    {
        Login::SecondFactor(p) => p,
        Login::Enrol(_) => panic!("enrolled"),
    };

    fx.advance(90);
    let code = oathtool(fx.now(), 0);
    assert_eq!(code, fx.code(&u), "oathtool and rxvault agree");
    let session = fx.auth.verify_totp(pending(&fx), &code).unwrap();
    assert!(fx.auth.authenticate(session.token(), here(), None).is_ok());

    // The same code again, within its 30 seconds: a replay.
    assert!(matches!(
        fx.auth.verify_totp(pending(&fx), &code),
        Err(Error::InvalidCredentials)
    ));
    // The previous step's code (still inside the ±1 window) is older than
    // the accepted one: refused too.
    assert!(matches!(
        fx.auth.verify_totp(pending(&fx), &oathtool(fx.now(), -1)),
        Err(Error::InvalidCredentials)
    ));

    // Next step: a code from one step ago (clock drift) is fine...
    fx.advance(60);
    let drifted = oathtool(fx.now(), -1);
    assert!(fx.auth.verify_totp(pending(&fx), &drifted).is_ok());
    // ...two steps old never is, even unused.
    fx.advance(120);
    let stale = oathtool(fx.now(), -2);
    assert!(matches!(
        fx.auth.verify_totp(pending(&fx), &stale),
        Err(Error::InvalidCredentials)
    ));
    // And one step ahead is accepted (a fast phone).
    let ahead = oathtool(fx.now(), 1);
    assert!(fx.auth.verify_totp(pending(&fx), &ahead).is_ok());
    let stored = fx
        .auth
        .store()
        .totp(u_id(&fx, "pharm1").as_str())
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_step, Some(time_step(fx.now()) + 1));
}

fn u_id(fx: &Fx, name: &str) -> rxvault_auth::UserId {
    fx.auth.key_holder().user(name).unwrap().id
}

#[test]
fn a_pending_login_becomes_a_session_once_even_when_raced() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    fx.advance(30);
    let Login::SecondFactor(first) = fx
        .auth
        .login_password("pharm1", &u.password, &Client::at(here()))
        .unwrap()
    else {
        panic!()
    };
    let pending_token = first.token().clone();
    assert!(pending_token.expose().starts_with("rxp_"));
    // A pending token is not a session token.
    assert!(matches!(
        fx.auth.authenticate(&pending_token, here(), None),
        Err(Error::Unauthenticated)
    ));
    // Two requests carrying the same pending token and valid codes of two
    // steps: exactly one becomes a session.
    let Login::SecondFactor(second) = fx.auth.resume(&pending_token, &Client::at(here())).unwrap()
    else {
        panic!()
    };
    let now = fx.now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| fx.auth.verify_totp(first, &u.totp.code_at(now - 30)));
        let b = s.spawn(|| fx.auth.verify_totp(second, &u.totp.code_at(now)));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "one session from one password"
    );
    assert!(matches!(
        fx.auth.resume(&pending_token, &Client::at(here())),
        Err(Error::Unauthenticated)
    ));
    // A session token is not a pending token either.
    let session = a.or(b).unwrap();
    assert!(matches!(
        fx.auth.resume(session.token(), &Client::at(here())),
        Err(Error::Unauthenticated)
    ));
}

#[test]
fn pending_logins_expire_and_stay_with_their_source() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let Login::SecondFactor(p) = fx
        .auth
        .login_password("pharm1", &u.password, &Client::at(here()))
        .unwrap()
    else {
        panic!()
    };
    let token = p.token().clone();
    assert!(matches!(
        fx.auth.resume(&token, &Client::at(ip("198.51.100.1"))),
        Err(Error::Unauthenticated)
    ));
    fx.advance(9 * 60);
    assert!(fx.auth.resume(&token, &Client::at(here())).is_ok());
    fx.advance(61);
    assert!(matches!(
        fx.auth.resume(&token, &Client::at(here())),
        Err(Error::Unauthenticated)
    ));
}

#[test]
fn unknown_user_wrong_password_disabled_and_service_accounts_look_the_same() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let off = fx.user("tech1", Role::Technician);
    fx.auth.key_holder().disable("tech1").unwrap();
    fx.auth
        .key_holder()
        .create_service_account("pms-bridge")
        .unwrap();
    let wrong = Password::new("not the password at all".into());
    let attempts: Vec<(&str, &Password)> = vec![
        ("nobody-here", &wrong),
        ("pharm1", &wrong),
        ("tech1", &off.password),
        ("pms-bridge", &wrong),
    ];
    let mut timings = Vec::new();
    for (name, pw) in &attempts {
        let mut best = std::time::Duration::MAX;
        for i in 0..3 {
            // Different sources, so the throttle never interferes.
            let src = ip(&format!("203.0.113.{}", timings.len() * 3 + i + 1));
            let t = Instant::now();
            let err = fx
                .auth
                .login_password(name, pw, &Client::at(src))
                .unwrap_err();
            best = best.min(t.elapsed());
            assert!(matches!(err, Error::InvalidCredentials), "{name}: {err:?}");
            assert_eq!(err.to_string(), "authentication failed");
        }
        timings.push(best);
    }
    // Every path runs one Argon2id verification: an unknown name is never
    // much cheaper than a known one (without the dummy hash it would be
    // over 100 times cheaper).
    let known = timings[1];
    for (t, (name, _)) in timings.iter().zip(&attempts) {
        assert!(
            t.as_secs_f64() > known.as_secs_f64() * 0.4,
            "{name}: {t:?} vs wrong password {known:?}"
        );
    }
    assert!(
        fx.auth
            .login_password("pharm1", &u.password, &Client::at(here()))
            .is_ok()
    );
}

#[test]
fn recovery_codes_work_once_each() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let codes = u.recovery_codes.clone();
    assert_eq!(codes.len(), 10);
    let pending = || match fx
        .auth
        .login_password("pharm1", &u.password, &Client::at(here()))
        .unwrap()
    {
        Login::SecondFactor(p) => {
            assert_eq!(p.factors().recovery_codes as usize, codes.len() - used(&fx));
            p
        }
        Login::Enrol(_) => panic!(),
    };
    fn used(fx: &Fx) -> usize {
        10 - fx.auth.key_holder().user("pharm1").unwrap().recovery_codes as usize
    }
    let typed = codes[3].to_uppercase().replace('-', " ");
    assert!(fx.auth.verify_recovery_code(pending(), &typed).is_ok());
    assert!(matches!(
        fx.auth.verify_recovery_code(pending(), &codes[3]),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        fx.auth
            .verify_recovery_code(pending(), "aaaa-bbbb-cccc-dddd"),
        Err(Error::InvalidCredentials)
    ));
    assert!(fx.auth.verify_recovery_code(pending(), &codes[4]).is_ok());
    // Stored only as hashes.
    for (file, bytes) in fx.files_bytes() {
        for c in &codes {
            assert!(!contains(&bytes, c.as_bytes()), "{file}");
            assert!(!contains(&bytes, c.replace('-', "").as_bytes()), "{file}");
        }
    }
}

#[test]
fn an_account_without_a_second_factor_can_only_enrol_one() {
    let fx = Fx::sqlite(AuthConfig::default());
    let pw = Password::new("violet harbor lantern 42".into());
    // Redeemed, then left without a second factor.
    drop(add_and_redeem(&fx.auth, "newbie", Role::Technician, &pw));
    let Login::Enrol(enrolling) = fx
        .auth
        .login_password("newbie", &pw, &Client::at(here()))
        .unwrap()
    else {
        panic!("no second factor yet: enrolment")
    };
    // The enrolment token authenticates nothing.
    assert!(matches!(
        fx.auth.authenticate(enrolling.token(), here(), None),
        Err(Error::Unauthenticated)
    ));
    let token = enrolling.token().clone();
    let enrolment = fx.auth.start_totp_enrolment(&enrolling).unwrap();
    assert!(
        enrolment
            .uri()
            .starts_with("otpauth://totp/rxvault:newbie?secret=")
    );
    assert!(!format!("{enrolment:?}").contains(enrolment.secret_base32().as_str()));
    let secret = TotpSecret::from_base32(&enrolment.secret_base32()).unwrap();
    // A wrong code keeps the enrolment open.
    let wrong = if secret.code_at(fx.now()).as_str() == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert!(matches!(
        fx.auth.finish_totp_enrolment(enrolling, wrong),
        Err(Error::InvalidCredentials)
    ));
    let Login::Enrol(enrolling) = fx.auth.resume(&token, &Client::at(here())).unwrap() else {
        panic!()
    };
    let (session, codes) = fx
        .auth
        .finish_totp_enrolment(enrolling, &secret.code_at(fx.now()))
        .unwrap();
    assert_eq!(codes.codes().len(), 10);
    assert!(!format!("{codes:?}").contains(codes.codes()[0]));
    assert!(fx.auth.authenticate(session.token(), here(), None).is_ok());
    // From now on the password leads to a second factor.
    fx.advance(30);
    let Login::SecondFactor(p) = fx
        .auth
        .login_password("newbie", &pw, &Client::at(here()))
        .unwrap()
    else {
        panic!()
    };
    assert!(p.factors().totp && p.factors().recovery_codes == 10);
    assert!(fx.auth.verify_totp(p, &secret.code_at(fx.now())).is_ok());
}

#[test]
fn reset_mfa_sends_the_user_back_to_enrolment_and_ends_sessions() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let (token, _) = fx.login(&u);
    fx.auth.key_holder().reset_mfa("pharm1").unwrap();
    assert!(matches!(
        fx.auth.authenticate(&token, here(), None),
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        fx.auth
            .login_password("pharm1", &u.password, &Client::at(here())),
        Ok(Login::Enrol(_))
    ));
}

#[test]
fn secrets_never_reach_the_disk_in_the_clear() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("pharm1", Role::Pharmacist);
    let (token, _) = fx.login(&u);
    let b32 = u.totp.to_base32();
    let raw = rxvault_crypto::otp::base32::decode(&b32).unwrap();
    let files = fx.files_bytes();
    assert!(files.iter().any(|(f, _)| f.ends_with("vault.db")));
    for (file, bytes) in files {
        for needle in [
            token.expose().as_bytes(),
            b32.as_bytes(),
            &raw[..],
            u.password.expose().as_bytes(),
        ] {
            assert!(!contains(&bytes, needle), "{file}");
        }
    }
}

#[test]
fn new_passwords_follow_the_policy() {
    let fx = Fx::sqlite(AuthConfig::default());
    let admin = fx.auth.key_holder();
    // The person chooses the password, when redeeming their code: a weak
    // one is refused and the code kept for a better one.
    let new = admin.add_person("newbie", Role::ShippingClerk).unwrap();
    for bad in ["short1", "password123", "baseball1", "Newbie-2026!x"] {
        let err = fx
            .auth
            .redeem_enrolment(
                "newbie",
                new.enrolment.code(),
                &Password::new(bad.into()),
                &Client::at(here()),
            )
            .unwrap_err();
        assert!(matches!(err, Error::WeakPassword(_)), "{bad}: {err}");
        assert!(!err.to_string().contains(bad));
    }
    for bad_name in ["ab", "-lead", "has space", "Ünïcode"] {
        assert!(matches!(
            admin.add_person(bad_name, Role::Billing),
            Err(Error::Invalid(_))
        ));
    }
    assert!(matches!(
        admin.add_person("NEWBIE", Role::Billing),
        Err(Error::Conflict(_))
    ));
    // The login name is case-insensitive; the password is compared after
    // NFKC normalisation.
    let accent = Password::new("cafe\u{301} au lait lantern".into());
    assert!(matches!(
        fx.auth
            .redeem_enrolment("NewBie", new.enrolment.code(), &accent, &Client::at(here()))
            .unwrap(),
        Login::Enrol(_)
    ));
    let composed = Password::new("caf\u{e9} au lait lantern".into());
    assert!(
        fx.auth
            .login_password("NewBie", &composed, &Client::at(here()))
            .is_ok()
    );
    let _ = Token::from_presented("unused");
}

#[test]
fn one_totp_code_raced_by_two_logins_opens_one_session() {
    each_backend(AuthConfig::default(), |fx| {
        let u = fx.user("pharm1", Role::Pharmacist);
        fx.advance(30);
        let pending = || match fx
            .auth
            .login_password("pharm1", &u.password, &Client::at(here()))
            .unwrap()
        {
            Login::SecondFactor(p) => p,
            Login::Enrol(_) => panic!(),
        };
        let (a, b) = (pending(), pending());
        let code = fx.code(&u);
        let (ra, rb) = std::thread::scope(|s| {
            let ra = s.spawn(|| fx.auth.verify_totp(a, &code).is_ok());
            let rb = s.spawn(|| fx.auth.verify_totp(b, &code).is_ok());
            (ra.join().unwrap(), rb.join().unwrap())
        });
        assert_eq!(
            usize::from(ra) + usize::from(rb),
            1,
            "a code opens one session"
        );
    });
}

#[test]
fn a_server_running_before_the_cli_enrolled_a_user_still_opens_their_secret() {
    // The server (fx.auth) opened the vault first; the command line (a
    // second process) then creates a user and seals their TOTP secret with
    // a data key of its own, which the server's keyring has never seen.
    each_backend(AuthConfig::default(), |fx| {
        let cli = fx.second_process();
        let password = Password::new("violet harbor lantern 42".into());
        let (secret, _) = enrol(&cli, fx.now(), "late1", Role::Technician, &password);
        let Login::SecondFactor(p) = fx
            .auth
            .login_password("late1", &password, &Client::at(here()))
            .unwrap()
        else {
            panic!()
        };
        assert!(fx.auth.verify_totp(p, &secret.code_at(fx.now())).is_ok());
        let usage = fx.auth.store().sealed_dek_usage().unwrap();
        assert_eq!(usage.iter().map(|(_, n)| n).sum::<u64>(), 1);
    });
}

#[test]
fn password_hashes_from_before_the_pepper_still_log_in_and_are_upgraded() {
    use rxvault_crypto::PasswordHash;
    use rxvault_store::auth::{AccountUpdate, AuthStore};
    let fx = Fx::sqlite(AuthConfig::default());
    let mut u = fx.user("pharm1", Role::Pharmacist);
    let store = rxvault_store::SqlAuthStore::open_sqlite(&fx.data.join("vault.db")).unwrap();
    let stored = |store: &rxvault_store::SqlAuthStore| {
        store
            .account_by_username("pharm1")
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap()
    };
    // New hashes carry the pepper (derived from the vault's keys).
    let made = stored(&store);
    assert!(PasswordHash::parse(&made).unwrap().is_current(), "{made}");
    assert!(made.contains(",keyid="), "{made}");
    // A vault from before the pepper: an Argon2id hash without it (made by
    // the reference implementation, see rxvault-crypto's password tests).
    let id = store.account_by_username("pharm1").unwrap().unwrap().id;
    store
        .update_account(
            &id,
            &AccountUpdate::PasswordHash(
                "$argon2id$v=19$m=19456,t=2,p=1$cnh2YXVsdHNhbHRzYWx0MQ$ITMHIxwLRijQcncKKwxh3ezbEStaSEL1Y/r1KJrRhIk"
                    .into(),
            ),
            fx.now(),
        )
        .unwrap();
    u.password = Password::new("correct horse battery staple".into());
    let (token, _) = fx.login(&u);
    assert!(fx.auth.authenticate(&token, here(), None).is_ok());
    let upgraded = stored(&store);
    assert!(
        upgraded.contains(",keyid=") && PasswordHash::parse(&upgraded).unwrap().is_current(),
        "rehashed with the pepper at login: {upgraded}"
    );
    // And the upgraded hash works for the next login.
    fx.login(&u);
}
