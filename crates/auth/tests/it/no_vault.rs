//! Identity and access without a vault (issue 8, item 7): a keyring and an
//! identity store are all `Auth` needs, so a detector (or this test) can
//! sign people in and revoke their sessions with no vault open.

use rxvault_auth::{Auth, AuthConfig, Client, Error, Login, Role};
use rxvault_crypto::kek::LocalKek;
use rxvault_crypto::{LiveKeys, Password, SecretKey, Secrets, TotpSecret};
use rxvault_model::ManualClock;
use rxvault_store::{SqlAuthStore, SqliteStore};
use std::sync::Arc;

/// The entries identity and access record, kept in memory.
#[derive(Default)]
struct Log(std::sync::Mutex<Vec<rxvault_audit::Entry>>);

impl rxvault_audit::Sink for Log {
    fn record_entry(&self, entry: rxvault_audit::Entry) -> Result<(), String> {
        self.0.lock().unwrap().push(entry);
        Ok(())
    }
}

/// The keys with their data key: nothing to create or reload.
struct Keys(Secrets);

impl LiveKeys for Keys {
    fn secrets(&self) -> &Secrets {
        &self.0
    }
    fn ensure_data_key(&self) -> rxvault_crypto::Result<()> {
        Ok(())
    }
    fn reload_data_keys(&self) -> rxvault_crypto::Result<()> {
        Ok(())
    }
}

#[test]
fn auth_signs_in_and_revokes_from_a_keyring_and_a_store_alone() {
    let (ring, _) = Secrets::create(
        "no-vault",
        Box::new(LocalKek::new(1, SecretKey::generate().unwrap())),
    )
    .unwrap();
    let dek = ring.prepare_dek().unwrap();
    ring.activate(dek);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("identity.db");
    drop(SqliteStore::create(&db).unwrap());
    let store = Arc::new(SqlAuthStore::open_sqlite(&db).unwrap());
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-11-28 15:00 UTC),
    ));
    let log = Arc::new(Log::default());
    let auth = Auth::new(
        Arc::new(Keys(ring)),
        store,
        log.clone(),
        clock.clone(),
        AuthConfig::default(),
    )
    .unwrap();

    let password = Password::new("violet harbor lantern 42".into());
    let admin = auth.key_holder();
    admin
        .create_user("pat", Role::Pharmacist, &password)
        .unwrap();
    let totp = TotpSecret::from_base32(&admin.enrol_totp("pat").unwrap().secret_base32()).unwrap();
    let here = "192.0.2.7".parse().unwrap();
    // Failures are recorded by the library, with the reason the client is
    // not told.
    assert!(matches!(
        auth.login_password("mallory", &password, &Client::at(here)),
        Err(Error::InvalidCredentials)
    ));
    let Login::SecondFactor(pending) = auth
        .login_password("pat", &password, &Client::at(here))
        .unwrap()
    else {
        panic!("pat has a second factor")
    };
    assert!(matches!(
        auth.verify_totp(pending, "not a code"),
        Err(Error::InvalidCredentials)
    ));
    let Login::SecondFactor(pending) = auth
        .login_password("pat", &password, &Client::at(here))
        .unwrap()
    else {
        panic!("pat has a second factor")
    };
    clock.advance(std::time::Duration::from_secs(30));
    let now = rxvault_model::Clock::now(clock.as_ref()).unix_timestamp();
    let session = auth
        .verify_totp(pending, totp.code_at(now).as_str())
        .unwrap();
    let token = session.token().clone();
    assert!(auth.authenticate(&token, here, None).is_ok());
    // What a detector does on an alert: every session of the person ends
    // (and the pending login the wrong code left).
    assert_eq!(auth.key_holder().revoke_user_sessions("pat").unwrap(), 2);
    assert!(matches!(
        auth.authenticate(&token, here, None),
        Err(Error::Unauthenticated)
    ));

    // Every administrative act was recorded by the library, once, with its
    // real outcome: refusals as denied (issue 8, item 2).
    assert!(
        admin
            .create_user("pat", Role::Technician, &password)
            .is_err()
    );
    assert!(
        admin
            .create_user_named("eve", "superuser", &password)
            .is_err()
    );
    let entries = log.0.lock().unwrap();
    let seen: Vec<(String, rxvault_audit::Outcome)> = entries
        .iter()
        .map(|e| match &e.action {
            rxvault_audit::Action::UserAdmin { operation, target } => {
                (format!("{operation} {target}"), e.outcome)
            }
            other => (format!("{other:?}"), e.outcome),
        })
        .collect();
    use rxvault_audit::Outcome::{Denied, Success};
    assert_eq!(
        seen,
        vec![
            ("create (pharmacist) pat".to_string(), Success),
            ("enrol-totp pat".to_string(), Success),
            // Signing in is recorded by the library too.
            (
                r#"AuthFailure { method: "password", reason: "unknown-user" }"#.to_string(),
                Denied
            ),
            (r#"AuthSuccess { method: "password" }"#.to_string(), Success),
            (
                r#"MfaFailure { method: "totp", reason: Some("wrong-code") }"#.to_string(),
                Denied
            ),
            (r#"AuthSuccess { method: "password" }"#.to_string(), Success),
            (r#"MfaSuccess { method: "totp" }"#.to_string(), Success),
            ("revoke-sessions pat".to_string(), Success),
            ("create (technician) pat".to_string(), Denied),
            ("create (superuser) eve".to_string(), Denied),
        ]
    );
    // Administration by the key holder is the local operator's; signing in
    // is the person's (as typed at the login form, then the account's).
    for e in entries.iter() {
        let want = match e.action {
            rxvault_audit::Action::UserAdmin { .. } => rxvault_audit::ActorKind::Local,
            _ => rxvault_audit::ActorKind::User,
        };
        assert_eq!(e.actor.kind, want, "{e:?}");
    }
}
