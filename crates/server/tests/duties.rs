//! Separation of duties over real HTTPS (issue 9, item 2), on SQLite and
//! PostgreSQL: the probe's two attacks fail (an administrator alone gets no
//! account into a state that reads a chart; a second administrator cannot
//! flip the first one's role alone), the approved way works, a person
//! redeems their own enrolment code and must enrol a second factor first,
//! and every step is in the audit log with its real outcome.

mod common;

use common::{Backend, Harness, PASSWORD, username};
use reqwest::Method;
use rxvault_audit::{Action as A, ApprovalBasis, LoggedEntry, Outcome};
use rxvault_auth::{AuthConfig, Role};
use rxvault_crypto::otp::TotpSecret;
use rxvault_model::{Clock, RecordKind};
use serde_json::{Value, json};
use std::time::Duration;

async fn call(
    h: &Harness,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = h.client.request(method, h.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(h: &Harness, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    call(h, Method::POST, path, token, Some(body)).await
}

/// Redeems `code` for `name` over HTTPS (whoever holds it), enrols TOTP
/// and returns the session token.
async fn redeem_and_enrol(h: &Harness, name: &str, code: &str) -> String {
    let (status, step) = post(
        h,
        "/api/v1/enrolment",
        None,
        json!({"username": name, "code": code, "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, step["stage"].as_str()),
        (200, Some("enrol")),
        "{step}"
    );
    let pending = step["pending_token"].as_str().unwrap().to_string();
    let (status, enrolment) = post(
        h,
        "/api/v1/sessions/enrol/totp",
        None,
        json!({"pending_token": pending}),
    )
    .await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = TotpSecret::from_base32(enrolment["secret"].as_str().unwrap()).unwrap();
    let code = secret.code_at(h.clock.now().unix_timestamp());
    let (status, session) = post(
        h,
        "/api/v1/sessions/enrol/totp/confirm",
        None,
        json!({"pending_token": pending, "code": code.as_str()}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    session["token"].as_str().unwrap().to_string()
}

/// The status of reading the harness's patient with `token`.
async fn read_chart(h: &Harness, token: &str) -> u16 {
    let path = format!("/api/v1/patients/{}", h.ids[&RecordKind::Patient]);
    call(h, Method::GET, &path, Some(token), None).await.0
}

fn request_id(v: &Value) -> String {
    assert_eq!(v["role_request"]["status"], "pending", "{v}");
    v["role_request"]["id"].as_str().unwrap().to_string()
}

fn entries_since(h: &Harness, from: u64) -> Vec<LoggedEntry> {
    h.blocking(|| {
        let reader = h.vault.audit().unwrap().reader().clone();
        let size = reader.size().unwrap();
        reader.entries(from, size).unwrap()
    })
}

async fn an_administrator_alone_cannot_get_a_chart_reading_account_over_https(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let admin_a = h.login(&username(Role::Administrator)).await;
    let officer = h.login(&username(Role::PrivacyOfficer)).await;
    let from = h.audit_size();

    // No password to choose: one sent along is not the account's.
    let (status, created) = post(
        &h,
        "/api/v1/users",
        Some(&admin_a),
        json!({"username": "mallory", "role": "pharmacist", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["role"], Value::Null, "no role until approved");
    let request = request_id(&created);
    let (status, _) = post(
        &h,
        "/api/v1/sessions",
        None,
        json!({"username": "mallory", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        status, 401,
        "an administrator-chosen password does not exist"
    );

    // A holds the code and redeems it: the session reads nothing.
    let code = created["enrolment_code"].as_str().unwrap().to_string();
    let mallory = redeem_and_enrol(&h, "mallory", &code).await;
    assert_eq!(read_chart(&h, &mallory).await, 403);
    // A cannot approve it, nor change his own role, nor list his way out.
    let approve = format!("/api/v1/access-requests/{request}/approve");
    assert_eq!(post(&h, &approve, Some(&admin_a), json!({})).await.0, 403);
    let (status, _) = call(
        &h,
        Method::PATCH,
        &format!("/api/v1/users/{}", username(Role::Administrator)),
        Some(&admin_a),
        Some(json!({"role": "pharmacist"})),
    )
    .await;
    assert_eq!(status, 403);
    // An existing pharmacist re-enrolled: A gets the code, not the role.
    let (status, reenrolled) = post(
        &h,
        &format!(
            "/api/v1/users/{}/enrolment-code",
            username(Role::Pharmacist)
        ),
        Some(&admin_a),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{reenrolled}");
    let restore = request_id(&reenrolled);
    let as_pharmacist = redeem_and_enrol(
        &h,
        &username(Role::Pharmacist),
        reenrolled["enrolment_code"].as_str().unwrap(),
    )
    .await;
    assert_eq!(read_chart(&h, &as_pharmacist).await, 403);
    let (status, listed) = call(
        &h,
        Method::GET,
        "/api/v1/access-requests",
        Some(&admin_a),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&request.as_str()) && ids.contains(&restore.as_str()));
    assert_eq!(
        post(
            &h,
            &format!("/api/v1/access-requests/{restore}/approve"),
            Some(&admin_a),
            json!({})
        )
        .await
        .0,
        403
    );
    assert_eq!(read_chart(&h, &mallory).await, 403);

    // A + the privacy officer: approved, mallory's next request reads.
    let (status, approved) = post(&h, &approve, Some(&officer), json!({})).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["requested_by"], username(Role::Administrator));
    assert_eq!(read_chart(&h, &mallory).await, 200);
    assert_eq!(
        post(&h, &approve, Some(&officer), json!({})).await.0,
        409,
        "decided once"
    );
    // The officer refuses the restore: that account stays without a role.
    let (status, _) = post(
        &h,
        &format!("/api/v1/access-requests/{restore}/refuse"),
        Some(&officer),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read_chart(&h, &as_pharmacist).await, 403);

    // The audit log, step by step.
    let log = entries_since(&h, from);
    let steps: Vec<(String, &str, Outcome)> = log
        .iter()
        .filter(|e| {
            matches!(
                e.entry.action,
                A::AccessRequested { .. }
                    | A::AccessApproved { .. }
                    | A::AccessRefused { .. }
                    | A::EnrolmentCodeIssued { .. }
                    | A::EnrolmentCodeRedeemed { .. }
            )
        })
        .map(|e| {
            (
                e.entry.actor.id.clone(),
                e.entry.action.kind().name(),
                e.entry.outcome,
            )
        })
        .collect();
    let a = username(Role::Administrator);
    let o = username(Role::PrivacyOfficer);
    let p = username(Role::Pharmacist);
    use Outcome::{Denied, Success};
    assert_eq!(
        steps,
        vec![
            (a.clone(), "access-requested", Success),
            (a.clone(), "enrolment-code-issued", Success),
            ("mallory".to_string(), "enrolment-code-redeemed", Success),
            (a.clone(), "access-approved", Denied),
            (a.clone(), "enrolment-code-issued", Success),
            (a.clone(), "access-requested", Success),
            (p.clone(), "enrolment-code-redeemed", Success),
            (a.clone(), "access-approved", Denied),
            (o.clone(), "access-approved", Success),
            (o.clone(), "access-approved", Denied),
            (o.clone(), "access-refused", Success),
        ]
    );
    let granted = log
        .iter()
        .find(|e| e.entry.outcome == Success && e.entry.action.kind().name() == "access-approved")
        .unwrap();
    assert!(matches!(
        &granted.entry.action,
        A::AccessApproved { basis: Some(ApprovalBasis::SecondPerson), requested_by: Some(r), .. } if *r == a
    ));
    assert!(
        granted.entry.session.is_some(),
        "with the approver's session"
    );
    h.finish().await;
}

async fn a_second_administrator_cannot_flip_the_first_ones_role_over_https(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let now = h.clock.now().unix_timestamp();
    let b_secret = h.blocking(|| common::enrol(&h.auth, now, "admin-b", Role::Administrator));
    let admin_a = h.login(&username(Role::Administrator)).await;
    h.clock.advance(Duration::from_secs(30));
    let (_, step) = post(
        &h,
        "/api/v1/sessions",
        None,
        json!({"username": "admin-b", "password": PASSWORD}),
    )
    .await;
    let code = b_secret.code_at(h.clock.now().unix_timestamp());
    let (_, session) = post(
        &h,
        "/api/v1/sessions/totp",
        None,
        json!({"pending_token": step["pending_token"], "code": code.as_str()}),
    )
    .await;
    let admin_b = session["token"].as_str().unwrap().to_string();
    let from = h.audit_size();

    let (status, flipped) = call(
        &h,
        Method::PATCH,
        &format!("/api/v1/users/{}", username(Role::Administrator)),
        Some(&admin_b),
        Some(json!({"role": "pharmacist"})),
    )
    .await;
    assert_eq!(status, 200, "{flipped}");
    assert_eq!(flipped["role"], "administrator", "unchanged until approved");
    let request = request_id(&flipped);
    let approve = format!("/api/v1/access-requests/{request}/approve");
    assert_eq!(
        post(&h, &approve, Some(&admin_a), json!({})).await.0,
        403,
        "the subject"
    );
    assert_eq!(
        post(&h, &approve, Some(&admin_b), json!({})).await.0,
        403,
        "the requester"
    );
    assert_eq!(read_chart(&h, &admin_a).await, 403);
    assert_eq!(
        call(&h, Method::GET, "/api/v1/users", Some(&admin_a), None)
            .await
            .0,
        200,
        "still an administrator"
    );
    // A third person approves.
    let officer = h.login(&username(Role::PrivacyOfficer)).await;
    assert_eq!(post(&h, &approve, Some(&officer), json!({})).await.0, 200);
    assert_eq!(read_chart(&h, &admin_a).await, 200);
    assert_eq!(
        call(&h, Method::GET, "/api/v1/users", Some(&admin_a), None)
            .await
            .0,
        403,
        "a pharmacist now"
    );
    let decisions: Vec<(String, Outcome)> = entries_since(&h, from)
        .iter()
        .filter(|e| e.entry.action.kind().name() == "access-approved")
        .map(|e| (e.entry.actor.id.clone(), e.entry.outcome))
        .collect();
    assert_eq!(
        decisions,
        vec![
            (username(Role::Administrator), Outcome::Denied),
            ("admin-b".to_string(), Outcome::Denied),
            (username(Role::PrivacyOfficer), Outcome::Success),
        ]
    );
    h.finish().await;
}

async fn a_wrong_enrolment_code_is_the_one_401_and_is_throttled(backend: Backend) {
    let Some(h) = Harness::start_on(backend, AuthConfig::default()).await else {
        return;
    };
    let admin = h.login(&username(Role::Administrator)).await;
    let (status, created) = post(
        &h,
        "/api/v1/users",
        Some(&admin),
        json!({"username": "sam", "role": "shipping-clerk"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["role"], "shipping-clerk", "no approval for labels");
    assert_eq!(created["role_request"], Value::Null);
    let code = created["enrolment_code"].as_str().unwrap().to_string();
    let redeem = |code: String, password: &'static str| {
        let h = &h;
        async move {
            post(
                h,
                "/api/v1/enrolment",
                None,
                json!({"username": "sam", "code": code, "password": password}),
            )
            .await
        }
    };
    let (status, weak) = redeem(code.clone(), "password123").await;
    assert_eq!(status, 422, "{weak}");
    let (s1, b1) = redeem("aaaa-bbbb-cccc-dddd-eeee-ffff".into(), PASSWORD).await;
    let (s2, b2) = post(
        &h,
        "/api/v1/enrolment",
        None,
        json!({"username": "nobody", "code": code, "password": PASSWORD}),
    )
    .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2, "unknown name and wrong code look the same");
    let mut throttled = false;
    for _ in 0..6 {
        let (status, _) = redeem("aaaa-bbbb-cccc-dddd-eeee-ffff".into(), PASSWORD).await;
        throttled |= status == 429;
    }
    assert!(throttled, "wrong codes back off like wrong passwords");
    h.clock.advance(Duration::from_secs(3600));
    let (status, step) = redeem(code.clone(), PASSWORD).await;
    assert_eq!(
        (status, step["stage"].as_str()),
        (200, Some("enrol")),
        "{step}"
    );
    // The enrolling login is no session.
    let pending = step["pending_token"].as_str().unwrap();
    assert_eq!(
        call(&h, Method::GET, "/api/v1/sessions", Some(pending), None)
            .await
            .0,
        401
    );
    // (Redeeming gives its attempt back but does not clear the earlier
    // failures: the name is still backing off for a while.)
    h.clock.advance(Duration::from_secs(3600));
    assert_eq!(redeem(code, PASSWORD).await.0, 401, "spent");
    h.finish().await;
}

both_backends!(
    an_administrator_alone_cannot_get_a_chart_reading_account_over_https,
    a_second_administrator_cannot_flip_the_first_ones_role_over_https,
    a_wrong_enrolment_code_is_the_one_401_and_is_throttled,
);
