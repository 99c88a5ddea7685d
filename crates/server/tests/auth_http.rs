//! Authentication over real HTTPS: passkeys (WebAuthn, with a software
//! authenticator) and TOTP codes from `oathtool`, replay, lockout and
//! backoff without user enumeration, idle and absolute session timeouts on
//! an injected clock.

mod common;

use common::{Backend, Harness, PASSWORD, username};
use rxvault_auth::{AuthConfig, Role, WebauthnConfig};
use rxvault_model::Clock;
use serde_json::{Value, json};
use std::time::Duration;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const ORIGIN: &str = "https://localhost:8443";

async fn post(h: &Harness, path: &str, body: Value) -> (u16, Value) {
    let r = h.client.post(h.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(h: &Harness, path: &str, token: &str) -> u16 {
    h.client
        .get(h.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn passkey_enrolment_and_login_over_https_and_a_tampered_assertion_is_rejected(
    backend: Backend,
) {
    let config = AuthConfig {
        webauthn: Some(WebauthnConfig {
            rp_id: "localhost".into(),
            origin: ORIGIN.into(),
            rp_name: "rxvault".into(),
        }),
        ..AuthConfig::default()
    };
    let Some(h) = Harness::start_on(backend, config).await else {
        return;
    };
    // Redeemed with PASSWORD, no second factor yet.
    h.blocking(|| drop(common::add_and_redeem(&h.auth, "pat", Role::Pharmacist)));
    let origin = Url::parse(ORIGIN).unwrap();
    let mut authenticator = SoftPasskey::new(true);

    // No second factor yet: the login can only enrol one.
    let (status, step) = post(
        &h,
        "/api/v1/sessions",
        json!({"username": "pat", "password": PASSWORD}),
    )
    .await;
    assert_eq!((status, step["stage"].as_str()), (200, Some("enrol")));
    let pending = step["pending_token"].as_str().unwrap().to_string();
    assert_eq!(
        get(&h, "/api/v1/sessions", &pending).await,
        401,
        "a pending login is not a session"
    );
    let (status, options) = post(
        &h,
        "/api/v1/sessions/enrol/passkey",
        json!({"pending_token": pending}),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let options = serde_json::from_value(options).unwrap();
    let registration = authenticator
        .do_registration(origin.clone(), options)
        .unwrap();
    let (status, issued) = post(
        &h,
        "/api/v1/sessions/enrol/passkey/confirm",
        json!({"pending_token": pending, "name": "soft", "credential": registration}),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        get(&h, "/api/v1/sessions", issued["token"].as_str().unwrap()).await,
        200
    );

    // Log in with the passkey.
    let pending = passkey_pending(&h).await;
    let (status, challenge) = post(
        &h,
        "/api/v1/sessions/passkey/challenge",
        json!({"pending_token": pending}),
    )
    .await;
    assert_eq!(status, 200);
    let assertion = authenticator
        .do_authentication(origin.clone(), serde_json::from_value(challenge).unwrap())
        .unwrap();
    let (status, issued) = post(
        &h,
        "/api/v1/sessions/passkey",
        json!({"pending_token": pending, "credential": assertion}),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().unwrap().to_string();
    assert_eq!(get(&h, "/api/v1/sessions", &token).await, 200);

    // Step-up with the passkey (issue 8, item 8: a passkey-only person
    // could not step up over HTTPS): a bulk export needs a second factor
    // in the last 5 minutes.
    let authed = |path: &str, body: Value| {
        h.client
            .post(h.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let export =
        json!({"recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]});
    h.clock.advance(Duration::from_secs(6 * 60));
    let r = authed("/api/v1/exports", export.clone()).await.unwrap();
    assert_eq!(r.status(), 401, "the login's second factor is too old");
    let r = authed("/api/v1/sessions/step-up/passkey/challenge", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let challenge: Value = r.json().await.unwrap();
    let assertion = authenticator
        .do_authentication(origin.clone(), serde_json::from_value(challenge).unwrap())
        .unwrap();
    let r = authed(
        "/api/v1/sessions/step-up/passkey",
        json!({"credential": assertion}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let stepped = h.last_entries(1).remove(0);
    assert!(
        matches!(&stepped.entry.action, rxvault_audit::Action::MfaSuccess { method } if method == "webauthn-step-up"),
        "{:?}",
        stepped.entry.action
    );
    let r = authed("/api/v1/exports", export).await.unwrap();
    assert_eq!(r.status(), 201, "stepped up: {}", r.text().await.unwrap());

    // A tampered assertion (one bit of the signature) is refused.
    let pending = passkey_pending(&h).await;
    let (_, challenge) = post(
        &h,
        "/api/v1/sessions/passkey/challenge",
        json!({"pending_token": pending}),
    )
    .await;
    let assertion = authenticator
        .do_authentication(origin.clone(), serde_json::from_value(challenge).unwrap())
        .unwrap();
    let mut tampered = serde_json::to_value(&assertion).unwrap();
    let sig = tampered["response"]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    // Change the first base64url character (A and B differ in one bit).
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    tampered["response"]["signature"] = json!(flipped);
    let (status, body) = post(
        &h,
        "/api/v1/sessions/passkey",
        json!({"pending_token": pending, "credential": tampered}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid-credentials");
    h.finish().await;
}

async fn passkey_pending(h: &Harness) -> String {
    let (status, step) = post(
        h,
        "/api/v1/sessions",
        json!({"username": "pat", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, step["stage"].as_str()),
        (200, Some("second-factor"))
    );
    assert!(
        step["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("passkey"))
    );
    step["pending_token"].as_str().unwrap().to_string()
}

async fn totp_codes_from_oathtool_are_accepted_once(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let user = username(Role::Technician);
    let secret = h.secrets[&user].to_base32();
    h.clock.advance(Duration::from_secs(45));
    let when = h
        .clock
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", "--now", &when, secret.as_str()])
        .output()
        .expect("oathtool (Debian package oathtool) is needed for this test");
    assert!(out.status.success());
    let code = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let pending = h.password_step(&user).await;
    let (status, issued) = post(
        &h,
        "/api/v1/sessions/totp",
        json!({"pending_token": pending, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    // The same code again, in a new login within the same 30 s: a replay.
    let pending = h.password_step(&user).await;
    let (status, body) = post(
        &h,
        "/api/v1/sessions/totp",
        json!({"pending_token": pending, "code": code}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    h.finish().await;
}

async fn failures_back_off_then_lock_and_never_reveal_whether_a_user_exists(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let user = username(Role::Pharmacist);
    let (s1, b1) = post(
        &h,
        "/api/v1/sessions",
        json!({"username": "no-such-user", "password": "wrong password here"}),
    )
    .await;
    let (s2, b2) = post(
        &h,
        "/api/v1/sessions",
        json!({"username": user, "password": "wrong password here"}),
    )
    .await;
    assert_eq!(
        (s1, &b1),
        (s2, &b2),
        "unknown user and wrong password look the same"
    );
    assert_eq!(s1, 401);

    // Keep failing (waiting out each backoff on the clock) until locked.
    let mut attempts = 1;
    let mut saw_backoff = false;
    let locked = loop {
        let r = h
            .client
            .post(h.url("/api/v1/sessions"))
            .json(&json!({"username": user, "password": "wrong password here"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        match status {
            401 => attempts += 1,
            429 => {
                saw_backoff = true;
                let wait: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                h.clock.advance(Duration::from_secs(wait));
            }
            423 => break attempts,
            other => panic!("unexpected {other}"),
        }
        assert!(attempts < 100, "locked well under 100 failures");
    };
    assert!(saw_backoff, "exponential backoff before the lock");
    assert!(locked < 100);
    // The right password does not get in while locked, and says only "locked".
    let (status, _) = post(
        &h,
        "/api/v1/sessions",
        json!({"username": user, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 423);
    // An unknown name locks the same way.
    let mut unknown = 0;
    loop {
        let r = h
            .client
            .post(h.url("/api/v1/sessions"))
            .json(&json!({"username": "ghost", "password": "wrong password here"}))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            401 => unknown += 1,
            429 => h.clock.advance(Duration::from_secs(
                r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
            )),
            423 => break,
            other => panic!("unexpected {other}"),
        }
        assert!(unknown < 100);
    }
    assert_eq!(
        unknown, locked,
        "unknown names lock after the same number of failures"
    );
    h.finish().await;
}

async fn sessions_end_after_30_idle_minutes_and_after_12_hours_in_any_case(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let user = username(Role::Pharmacist);
    let token = h.login(&user).await;
    h.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(
        get(&h, "/api/v1/sessions", &token).await,
        200,
        "29 idle minutes"
    );
    h.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(
        get(&h, "/api/v1/sessions", &token).await,
        401,
        "31 idle minutes"
    );

    let token = h.login(&user).await;
    for _ in 0..(12 * 60 / 20 - 1) {
        h.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(
            get(&h, "/api/v1/sessions", &token).await,
            200,
            "active, under 12 h"
        );
    }
    h.clock.advance(Duration::from_secs(21 * 60));
    assert_eq!(
        get(&h, "/api/v1/sessions", &token).await,
        401,
        "past the 12-hour absolute lifetime"
    );
    h.finish().await;
}

/// What the HTTPS handlers leave in the audit log for sign-in attempts:
/// exactly the entries rxvault-auth writes (issue 8, item 2: they were
/// written by the handlers), with the reason the client is not told, the
/// connection's address and the client's user agent.
async fn sign_in_over_https_is_audited_once_by_rxvault_auth_with_its_reason(backend: Backend) {
    let config = AuthConfig {
        throttle: rxvault_auth::ThrottleConfig {
            account_lockout: 3,
            account_free_failures: 1,
            source_free_failures: 1_000,
            ..Default::default()
        },
        ..AuthConfig::default()
    };
    let Some(h) = Harness::start_on(backend, config).await else {
        return;
    };
    const UA: &str = "rxvault-desk/1.2 (workstation 7)";
    let send = |path: &str, body: Value, token: Option<&str>| {
        let mut r = h
            .client
            .post(h.url(path))
            .header("user-agent", UA)
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // Sends, then returns the status and the entries the request appended.
    macro_rules! attempt {
        ($path:expr, $body:expr, $token:expr) => {{
            let mark = h.audit_size();
            let r = send($path, $body, $token).await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let size = h.audit_size();
            (status, body, h.last_entries(size - mark))
        }};
    }
    let said = |e: &rxvault_audit::LoggedEntry| {
        (
            serde_json::to_value(&e.entry.action).unwrap(),
            e.entry.outcome.name(),
            e.entry.actor.id.clone(),
        )
    };
    let user = username(Role::Pharmacist);
    let here: std::net::IpAddr = "127.0.0.1".parse().unwrap();

    for (name, password, reason) in [
        ("no-such-user", "wrong password here", "unknown-user"),
        (user.as_str(), "wrong password here", "bad-password"),
    ] {
        let (status, _, entries) = attempt!(
            "/api/v1/sessions",
            json!({"username": name, "password": password}),
            None
        );
        assert_eq!(status, 401);
        assert_eq!(entries.len(), 1, "one entry, written once: {entries:?}");
        let e = &entries[0];
        assert_eq!(
            said(e),
            (
                json!({"type": "auth-failure", "details": {"method": "password", "reason": reason}}),
                "denied",
                name.to_string()
            )
        );
        assert_eq!(e.entry.source, Some(here));
        assert_eq!(e.entry.user_agent.as_deref(), Some(UA));
    }

    // Password, a wrong code, the right one.
    h.clock.advance(Duration::from_secs(30));
    let (status, step, entries) = attempt!(
        "/api/v1/sessions",
        json!({"username": user, "password": PASSWORD}),
        None
    );
    assert_eq!(status, 200);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        said(&entries[0]),
        (
            json!({"type": "auth-success", "details": {"method": "password"}}),
            "success",
            user.clone()
        )
    );
    let pending = step["pending_token"].as_str().unwrap().to_string();
    let now = h.clock.now().unix_timestamp();
    let secret = &h.secrets[&user];
    let near: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| secret.code_at(*t).to_string())
        .collect();
    let wrong = (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap();
    h.clock.advance(Duration::from_secs(2));
    let (status, _, entries) = attempt!(
        "/api/v1/sessions/totp",
        json!({"pending_token": pending, "code": wrong}),
        None
    );
    assert_eq!(status, 401);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        said(&entries[0]),
        (
            json!({"type": "mfa-failure", "details": {"method": "totp", "reason": "wrong-code"}}),
            "denied",
            user.clone()
        )
    );
    h.clock.advance(Duration::from_secs(2));
    let code = secret.code_at(h.clock.now().unix_timestamp()).to_string();
    let (status, session, entries) = attempt!(
        "/api/v1/sessions/totp",
        json!({"pending_token": pending, "code": code}),
        None
    );
    assert_eq!(status, 200, "{session}");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        said(&entries[0]),
        (
            json!({"type": "mfa-success", "details": {"method": "totp"}}),
            "success",
            user.clone()
        )
    );
    assert_eq!(
        entries[0].entry.session.as_deref(),
        session["session_id"].as_str(),
        "the new session is named"
    );
    assert_eq!(entries[0].entry.user_agent.as_deref(), Some(UA));
    let token = session["token"].as_str().unwrap().to_string();

    // A step-up refused: one entry, in the session.
    let (status, _, entries) = attempt!(
        "/api/v1/sessions/step-up",
        json!({"code": wrong}),
        Some(&token)
    );
    assert_eq!(status, 401);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        said(&entries[0]).0,
        json!({"type": "mfa-failure", "details": {"method": "totp-step-up", "reason": "wrong-code"}})
    );
    assert_eq!(
        entries[0].entry.session.as_deref(),
        session["session_id"].as_str()
    );

    // Logout: one entry.
    let mark = h.audit_size();
    let r = h
        .client
        .delete(h.url("/api/v1/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let entries = h.last_entries(h.audit_size() - mark);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entry.action, rxvault_audit::Action::Logout);

    // Three failures lock the name: the third's failure and the lockout;
    // then the right password is refused as locked.
    let victim = username(Role::Technician);
    let mut last = Vec::new();
    for _ in 0..3 {
        h.clock.advance(Duration::from_secs(15 * 60));
        let (status, _, entries) = attempt!(
            "/api/v1/sessions",
            json!({"username": victim, "password": "wrong password here"}),
            None
        );
        assert_eq!(status, 401);
        last = entries;
    }
    assert_eq!(
        last.iter().map(&said).collect::<Vec<_>>(),
        vec![
            (
                json!({"type": "auth-failure", "details": {"method": "password", "reason": "bad-password"}}),
                "denied",
                victim.clone()
            ),
            (
                json!({"type": "lockout", "details": {"until_ms": null}}),
                "denied",
                victim.clone()
            ),
        ]
    );
    let (status, _, entries) = attempt!(
        "/api/v1/sessions",
        json!({"username": victim, "password": PASSWORD}),
        None
    );
    assert_eq!(status, 423);
    assert_eq!(
        entries.iter().map(&said).collect::<Vec<_>>(),
        vec![(
            json!({"type": "auth-failure", "details": {"method": "password", "reason": "locked"}}),
            "denied",
            victim.clone()
        )]
    );
    h.finish().await;
}

both_backends!(
    sign_in_over_https_is_audited_once_by_rxvault_auth_with_its_reason,
    passkey_enrolment_and_login_over_https_and_a_tampered_assertion_is_rejected,
    totp_codes_from_oathtool_are_accepted_once,
    failures_back_off_then_lock_and_never_reveal_whether_a_user_exists,
    sessions_end_after_30_idle_minutes_and_after_12_hours_in_any_case,
);
