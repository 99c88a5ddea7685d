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
    // A one-person pharmacy: the local operator approves their own request.
    admin.set_single_operator(true).unwrap();
    let new = admin.add_person("pat", Role::Pharmacist).unwrap();
    let rxvault_auth::RoleChange::Pending(request) = &new.role else {
        panic!("a pharmacist needs approval")
    };
    admin.approver().approve(&request.id).unwrap();
    let here = "192.0.2.7".parse().unwrap();
    let Login::Enrol(enrolling) = auth
        .redeem_enrolment("pat", new.enrolment.code(), &password, &Client::at(here))
        .unwrap()
    else {
        panic!("pat has no second factor yet")
    };
    let enrolment = auth.start_totp_enrolment(&enrolling).unwrap();
    let totp = TotpSecret::from_base32(&enrolment.secret_base32()).unwrap();
    let now = rxvault_model::Clock::now(clock.as_ref()).unix_timestamp();
    let (first, _) = auth
        .finish_totp_enrolment(enrolling, totp.code_at(now).as_str())
        .unwrap();
    auth.logout(first.principal()).unwrap();
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
    assert!(admin.add_person("pat", Role::Technician).is_err());
    assert!(admin.add_person_named("eve", "superuser").is_err());
    let entries = log.0.lock().unwrap();
    let seen: Vec<(String, rxvault_audit::Outcome, rxvault_audit::ActorKind)> = entries
        .iter()
        .map(|e| {
            let what = match &e.action {
                rxvault_audit::Action::UserAdmin { operation, target } => {
                    format!("{operation} {target}")
                }
                other @ (rxvault_audit::Action::AuthFailure { .. }
                | rxvault_audit::Action::MfaFailure { .. }) => format!("{other:?}"),
                other => other.kind().name().to_string(),
            };
            (what, e.outcome, e.actor.kind)
        })
        .collect();
    use rxvault_audit::ActorKind::{Local, User};
    use rxvault_audit::Outcome::{Denied, Success};
    let s = |what: &str, o, k| (what.to_string(), o, k);
    assert_eq!(
        seen,
        vec![
            s("single-operator-set", Success, Local),
            s("create (pharmacist) pat", Success, Local),
            s("access-requested", Success, Local),
            s("enrolment-code-issued", Success, Local),
            s("access-approved", Success, Local),
            s("enrolment-code-redeemed", Success, User),
            s("enrol-totp pat", Success, User),
            s("mfa-success", Success, User),
            s("logout", Success, User),
            // Signing in is recorded by the library too, failures with the
            // reason the client is not told.
            s(
                r#"AuthFailure { method: "password", reason: "unknown-user" }"#,
                Denied,
                User,
            ),
            s("auth-success", Success, User),
            s(
                r#"MfaFailure { method: "totp", reason: Some("wrong-code") }"#,
                Denied,
                User,
            ),
            s("auth-success", Success, User),
            s("mfa-success", Success, User),
            s("revoke-sessions pat", Success, Local),
            s("create (technician) pat", Denied, Local),
            s("create (superuser) eve", Denied, Local),
        ]
    );
    assert!(matches!(
        &entries[4].action,
        rxvault_audit::Action::AccessApproved {
            basis: Some(rxvault_audit::ApprovalBasis::SingleOperator),
            ..
        }
    ));
}
