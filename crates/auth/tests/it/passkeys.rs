//! WebAuthn passkeys end to end with webauthn-authenticator-rs's software
//! passkey: enrolment, login, step-up, tampered and replayed assertions.

use crate::common::*;
use rxvault_auth::passkey::PublicKeyCredential;
use rxvault_auth::{AuthConfig, Client, Error, Login, Role, WebauthnConfig};
use rxvault_crypto::Password;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const ORIGIN: &str = "https://rx.pharmacy.test";

fn config() -> AuthConfig {
    AuthConfig {
        webauthn: Some(WebauthnConfig {
            rp_id: "rx.pharmacy.test".into(),
            origin: ORIGIN.into(),
            rp_name: "rxvault test pharmacy".into(),
        }),
        ..AuthConfig::default()
    }
}

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

/// Flips one byte of the assertion's signature (through its JSON form, as
/// a browser would send it).
fn tamper_signature(cred: &PublicKeyCredential) -> PublicKeyCredential {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut json = serde_json::to_value(cred).unwrap();
    let sig = json["response"]["signature"].as_str().unwrap().to_string();
    let mut bytes = engine.decode(sig.trim_end_matches('=')).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    json["response"]["signature"] = serde_json::Value::String(engine.encode(&bytes));
    serde_json::from_value(json).unwrap()
}

#[test]
fn passkey_enrolment_login_and_tampered_or_replayed_assertions() {
    each_backend(config(), |fx| {
        let pw = Password::new("violet harbor lantern 42".into());
        drop(add_and_redeem(&fx.auth, "pharm1", Role::Pharmacist, &pw));
        let mut authenticator = SoftPasskey::new(true);

        // Enrolment: the account has no second factor yet.
        let Login::Enrol(enrolling) = fx
            .auth
            .login_password("pharm1", &pw, &Client::at(here()))
            .unwrap()
        else {
            panic!()
        };
        let challenge = fx.auth.start_passkey_enrolment(&enrolling).unwrap();
        let registration = authenticator.do_registration(origin(), challenge).unwrap();
        let (session, codes) = fx
            .auth
            .finish_passkey_enrolment(enrolling, "work laptop", &registration)
            .unwrap();
        assert_eq!(codes.codes().len(), 10);
        assert!(fx.auth.authenticate(session.token(), here(), None).is_ok());
        let user = session.user_id().clone();
        let stored = fx.auth.store().passkeys(user.as_str()).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].name, "work laptop");

        // Login with the passkey.
        let pending = || match fx
            .auth
            .login_password("pharm1", &pw, &Client::at(here()))
            .unwrap()
        {
            Login::SecondFactor(p) => {
                assert_eq!(p.factors().passkeys, 1);
                assert!(!p.factors().totp);
                p
            }
            Login::Enrol(_) => panic!(),
        };
        let p = pending();
        let challenge = fx.auth.start_passkey_login(&p).unwrap();
        let assertion = authenticator
            .do_authentication(origin(), challenge)
            .unwrap();
        let pending_token = p.token().clone();
        let session = fx.auth.finish_passkey_login(p, &assertion).unwrap();
        assert!(fx.auth.authenticate(session.token(), here(), None).is_ok());
        let counter_after_first = fx.auth.store().passkeys(user.as_str()).unwrap()[0]
            .last_used_at
            .is_some();
        assert!(counter_after_first);

        // Replaying that assertion: the ceremony state is gone (and the
        // pending login with it).
        assert!(fx.auth.resume(&pending_token, &Client::at(here())).is_err());
        let p = pending();
        let _fresh_challenge = fx.auth.start_passkey_login(&p).unwrap();
        assert!(matches!(
            fx.auth.finish_passkey_login(p, &assertion),
            Err(Error::InvalidCredentials)
        ));

        // A tampered assertion for a fresh challenge fails.
        let p = pending();
        let challenge = fx.auth.start_passkey_login(&p).unwrap();
        let good = authenticator
            .do_authentication(origin(), challenge)
            .unwrap();
        let token = p.token().clone();
        assert!(matches!(
            fx.auth.finish_passkey_login(p, &tamper_signature(&good)),
            Err(Error::InvalidCredentials)
        ));
        // ...and the untampered one cannot be used after: each challenge
        // is answered once.
        let Login::SecondFactor(p) = fx.auth.resume(&token, &Client::at(here())).unwrap() else {
            panic!()
        };
        assert!(fx.auth.finish_passkey_login(p, &good).is_err());

        // An assertion from another origin (phishing site) fails.
        let p = pending();
        let challenge = fx.auth.start_passkey_login(&p).unwrap();
        let phished = authenticator.do_authentication(
            Url::parse("https://rx-pharmacy.example").unwrap(),
            challenge,
        );
        if let Ok(phished) = phished {
            assert!(matches!(
                fx.auth.finish_passkey_login(p, &phished),
                Err(Error::InvalidCredentials)
            ));
        }

        // Step-up with the passkey, then register a second one.
        fx.advance(10 * 60);
        let principal = fx.auth.authenticate(session.token(), here(), None).unwrap();
        assert!(fx.auth.require_step_up(&principal).is_err());
        let challenge = fx.auth.start_passkey_step_up(&principal).unwrap();
        let assertion = authenticator
            .do_authentication(origin(), challenge)
            .unwrap();
        let principal = fx
            .auth
            .finish_passkey_step_up(&principal, &assertion)
            .unwrap();
        assert!(fx.auth.require_step_up(&principal).is_ok());
        let mut second = SoftPasskey::new(true);
        let challenge = fx.auth.start_passkey_registration(&principal).unwrap();
        let reg = second.do_registration(origin(), challenge).unwrap();
        fx.auth
            .finish_passkey_registration(&principal, "backup key", &reg)
            .unwrap();
        assert_eq!(fx.auth.store().passkeys(user.as_str()).unwrap().len(), 2);
        // Registering the same authenticator response again is refused.
        let challenge = fx.auth.start_passkey_registration(&principal).unwrap();
        let _ = challenge;
        assert!(
            fx.auth
                .finish_passkey_registration(&principal, "again", &reg)
                .is_err()
        );
    });
}

#[test]
fn passkeys_need_configuration() {
    let fx = Fx::sqlite(AuthConfig::default());
    let pw = Password::new("violet harbor lantern 42".into());
    drop(add_and_redeem(&fx.auth, "pharm1", Role::Pharmacist, &pw));
    let Login::Enrol(e) = fx
        .auth
        .login_password("pharm1", &pw, &Client::at(here()))
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        fx.auth.start_passkey_enrolment(&e),
        Err(Error::PasskeysDisabled)
    ));
}
