//! Separation of duties (issue 9, item 2): the probe's two attacks fail,
//! and what replaces them works. An administrator alone cannot get any
//! account (new or existing, their own or another's, a person's or a
//! service's key) into a state that reads a chart; with a second person it
//! works; an approver never approves their own request or one for
//! themselves; enrolment codes are single use, expire, are throttled like
//! passwords and are stored as hashes only; every step is in the audit log
//! with its real outcome.

use crate::common::*;
use rxvault_audit::{AccessGrant, Action as A, ApprovalBasis, Entry, Outcome};
use rxvault_auth::duties::Status;
use rxvault_auth::{Action, AuthConfig, Client, Error, Login, Principal, Role, RoleChange, Scope};
use rxvault_crypto::Password;

fn password() -> Password {
    Password::new("violet harbor lantern 42".into())
}

/// The pending request of a role change.
fn pending(change: &RoleChange) -> String {
    match change {
        RoleChange::Pending(r) => r.id.clone(),
        RoleChange::Applied => panic!("expected a request for a second person"),
    }
}

/// Redeems `code` for `name` as whoever holds it, enrols TOTP and logs in:
/// the session token and the principal that account gets.
fn take_over(fx: &Fx, name: &str, code: &str) -> (rxvault_crypto::Token, Principal) {
    let Login::Enrol(enrolling) = fx
        .auth
        .redeem_enrolment(name, code, &password(), &Client::at(here()))
        .unwrap()
    else {
        panic!("a redeemed account has no second factor")
    };
    let enrolment = fx.auth.start_totp_enrolment(&enrolling).unwrap();
    let secret = rxvault_crypto::TotpSecret::from_base32(&enrolment.secret_base32()).unwrap();
    let (session, _) = fx
        .auth
        .finish_totp_enrolment(enrolling, secret.code_at(fx.now()).as_str())
        .unwrap();
    (session.token().clone(), session.into_principal())
}

/// What the next request with `token` is allowed: the role as of now.
fn again(fx: &Fx, token: &rxvault_crypto::Token) -> Principal {
    fx.auth.authenticate(token, here(), None).unwrap()
}

/// Whether `p` may read a chart now (its role as of a fresh
/// authentication: what the next request would get).
fn reads_charts(fx: &Fx, p: &Principal) -> bool {
    fx.auth.authorize(p, Action::PatientRead).is_ok()
        || fx.auth.authorize(p, Action::PrescriptionRead).is_ok()
        || fx.auth.authorize(p, Action::FillRead).is_ok()
}

fn outcomes(entries: &[Entry], kind: &str) -> Vec<Outcome> {
    entries
        .iter()
        .filter(|e| e.action.kind().name() == kind)
        .map(|e| e.outcome)
        .collect()
}

#[test]
fn an_administrator_alone_gets_no_account_into_a_state_that_reads_a_chart() {
    each_backend(AuthConfig::default(), |fx| {
        let a = fx.user("admin-a", Role::Administrator);
        let b = fx.user("admin-b", Role::Administrator);
        let phil = fx.user("phil", Role::Pharmacist);
        let (_, pa) = fx.login(&a);
        let admin = fx.auth.admin(&pa).unwrap();
        let from = fx.audit_size();

        // (1) A new pharmacist: no password to choose, a code A sees, and
        // a role that waits. A redeems the code himself: the account he
        // gets reads nothing.
        let new = admin.add_person("mallory", Role::Pharmacist).unwrap();
        let request = pending(&new.role);
        assert_eq!(new.user.role, None);
        let (mallory_token, mallory) = take_over(fx, "mallory", new.enrolment.code());
        assert_eq!(mallory.role(), None);
        assert!(!reads_charts(fx, &mallory));
        for action in Action::ALL {
            assert!(fx.auth.authorize(&mallory, action).is_err(), "{action}");
        }
        // A cannot approve his own request, nor ask again and approve that.
        let approver = fx.auth.approver(&pa).unwrap();
        assert!(matches!(
            approver.approve(&request),
            Err(Error::Forbidden { .. })
        ));
        let retry = pending(&admin.set_role("mallory", Role::Pharmacist).unwrap());
        assert!(approver.approve(&retry).is_err());
        assert_eq!(
            approver.request(&request).unwrap().status,
            Status::Superseded
        );
        let mallory = again(fx, &mallory_token);
        assert!(!reads_charts(fx, &mallory));

        // An existing pharmacist: re-enrolling gives A the code, and
        // suspends the role until a second person approves it again.
        let (phil_token, _) = fx.login(&phil);
        let reenrolment = admin.issue_enrolment_code("phil").unwrap();
        let restore = reenrolment.request.as_ref().unwrap().id.clone();
        assert!(
            fx.auth.authenticate(&phil_token, here(), None).is_err(),
            "phil's sessions ended"
        );
        let (_, as_phil) = take_over(fx, "phil", reenrolment.enrolment.code());
        assert!(!reads_charts(fx, &as_phil));
        assert!(approver.approve(&restore).is_err());

        // His own account: no role change, no re-enrolment, no approval.
        assert!(matches!(
            admin.set_role("admin-a", Role::Pharmacist),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(
            admin.issue_enrolment_code("admin-a"),
            Err(Error::Forbidden { .. })
        ));
        // A sock-puppet approver: the administrator role waits too.
        let sock = admin.add_person("sock", Role::Administrator).unwrap();
        let sock_request = pending(&sock.role);
        let (_, sock) = take_over(fx, "sock", sock.enrolment.code());
        assert!(fx.auth.approver(&sock).is_err(), "no role, no approvals");
        assert!(approver.approve(&sock_request).is_err());
        // A service key that reads charts waits as well.
        admin.create_service_account("exfil").unwrap();
        let key = admin
            .issue_api_key("exfil", &[Scope::PatientsRead], &[], None)
            .unwrap();
        let key_request = key.request.as_ref().unwrap().id.clone();
        assert!(matches!(
            fx.auth.authenticate_api_key(&key.key, here()),
            Err(Error::InvalidCredentials)
        ));
        assert!(approver.approve(&key_request).is_err());
        // The local operator cannot approve A's requests for A without
        // being a second person: that is exactly what they are, so nothing
        // here asks them; single-operator mode changes nothing for A.
        fx.auth.key_holder().set_single_operator(true).unwrap();
        assert!(approver.approve(&retry).is_err());
        fx.auth.key_holder().set_single_operator(false).unwrap();
        let mallory = again(fx, &mallory_token);
        assert!(!reads_charts(fx, &mallory));

        // A + B: B approves, and the next request of mallory reads charts.
        let (_, pb) = fx.login(&b);
        let b_approves = fx.auth.approver(&pb).unwrap();
        let listed: Vec<String> = b_approves
            .pending()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        for id in [&retry, &restore, &sock_request, &key_request] {
            assert!(listed.contains(id), "{id} is pending");
        }
        let approved = b_approves.approve(&retry).unwrap();
        assert_eq!(approved.status, Status::Approved);
        assert_eq!(approved.requested_by, "admin-a");
        let mallory = again(fx, &mallory_token);
        assert_eq!(mallory.role(), Some(Role::Pharmacist));
        assert!(reads_charts(fx, &mallory));
        assert!(
            matches!(b_approves.approve(&retry), Err(Error::Conflict(_))),
            "decided once"
        );
        b_approves.approve(&key_request).unwrap();
        assert!(fx.auth.authenticate_api_key(&key.key, here()).is_ok());
        b_approves.refuse(&sock_request).unwrap();
        // B's own request: B cannot approve it either.
        let bs = pending(
            &fx.auth
                .admin(&pb)
                .unwrap()
                .set_role("phil", Role::Technician)
                .unwrap(),
        );
        assert!(matches!(
            b_approves.approve(&bs),
            Err(Error::Forbidden { .. })
        ));

        // Every step is in the audit log, by who did it, with its outcome.
        let log = fx.audit_from(from);
        let by = |who: &str, kind: &str| -> Vec<Outcome> {
            log.iter()
                .filter(|e| e.actor.id == who && e.action.kind().name() == kind)
                .map(|e| e.outcome)
                .collect()
        };
        use Outcome::{Denied, Success};
        assert_eq!(
            by("admin-a", "access-requested"),
            vec![Success; 5],
            "mallory, mallory again, phil's restore, sock, the key"
        );
        assert_eq!(by("admin-a", "access-approved"), vec![Denied; 6]);
        assert_eq!(
            by("admin-a", "enrolment-code-issued"),
            vec![Success, Success, Denied, Success],
            "mallory, phil, himself (refused), sock"
        );
        assert_eq!(
            by("admin-b", "access-approved"),
            vec![Success, Denied, Success, Denied]
        );
        assert_eq!(by("admin-b", "access-refused"), vec![Success]);
        assert_eq!(by("admin-b", "access-requested"), vec![Success]);
        assert_eq!(outcomes(&log, "enrolment-code-redeemed"), vec![Success; 3]);
        assert_eq!(outcomes(&log, "single-operator-set"), vec![Success; 2]);
        let granted = log
            .iter()
            .find(|e| {
                e.actor.id == "admin-b"
                    && e.outcome == Success
                    && matches!(&e.action, A::AccessApproved { request, .. } if *request == retry)
            })
            .unwrap();
        match &granted.action {
            A::AccessApproved {
                target,
                grant,
                requested_by,
                basis,
                ..
            } => {
                assert_eq!(target.as_deref(), Some("mallory"));
                assert_eq!(
                    grant,
                    &Some(AccessGrant::Role {
                        role: "pharmacist".into(),
                        previous: None
                    })
                );
                assert_eq!(requested_by.as_deref(), Some("admin-a"));
                assert_eq!(*basis, Some(ApprovalBasis::SecondPerson));
            }
            other => panic!("{other:?}"),
        }
        let refused_self = log
            .iter()
            .find(|e| e.actor.id == "admin-a" && e.action.kind().name() == "access-approved")
            .unwrap();
        assert!(matches!(
            &refused_self.action,
            A::AccessApproved { basis: None, requested_by: Some(r), .. } if r == "admin-a"
        ));
        assert!(
            log.iter().all(|e| !matches!(e.action, A::Other(_))),
            "typed actions only"
        );
    });
}

#[test]
fn a_second_administrator_cannot_flip_the_first_ones_role_alone() {
    each_backend(AuthConfig::default(), |fx| {
        let a = fx.user("admin-a", Role::Administrator);
        let b = fx.user("admin-b", Role::Administrator);
        let po = fx.user("officer", Role::PrivacyOfficer);
        let (a_token, pa) = fx.login(&a);
        let (_, pb) = fx.login(&b);
        let from = fx.audit_size();
        let flip = pending(
            &fx.auth
                .admin(&pb)
                .unwrap()
                .set_role("admin-a", Role::Pharmacist)
                .unwrap(),
        );
        // Nothing changed for A.
        assert_eq!(again(fx, &a_token).role(), Some(Role::Administrator));
        // Neither the requester nor the subject may approve it.
        for (who, p) in [("requester", &pb), ("subject", &pa)] {
            assert!(
                matches!(
                    fx.auth.approver(p).unwrap().approve(&flip),
                    Err(Error::Forbidden { .. })
                ),
                "{who}"
            );
        }
        assert!(!reads_charts(fx, &again(fx, &a_token)));
        // A third person (the privacy officer) can.
        let (_, ppo) = fx.login(&po);
        assert!(
            fx.auth.admin(&ppo).is_err(),
            "the officer administers no one"
        );
        let approved = fx.auth.approver(&ppo).unwrap().approve(&flip).unwrap();
        assert_eq!(approved.requested_by, "admin-b");
        let a_now = again(fx, &a_token);
        assert_eq!(a_now.role(), Some(Role::Pharmacist));
        assert!(reads_charts(fx, &a_now));
        let log = fx.audit_from(from);
        let approvals: Vec<(String, Outcome)> = log
            .iter()
            .filter(|e| e.action.kind().name() == "access-approved")
            .map(|e| (e.actor.id.clone(), e.outcome))
            .collect();
        assert_eq!(
            approvals,
            vec![
                ("admin-b".to_string(), Outcome::Denied),
                ("admin-a".to_string(), Outcome::Denied),
                ("officer".to_string(), Outcome::Success),
            ]
        );
    });
}

#[test]
fn enrolment_codes_are_single_use_expire_are_throttled_and_stored_as_hashes() {
    each_backend(AuthConfig::default(), |fx| {
        let holder = fx.auth.key_holder();
        let new = holder.add_person("sam", Role::ShippingClerk).unwrap();
        assert_eq!(new.role, RoleChange::Applied, "a clerk needs no approval");
        let code = new.enrolment.code().to_string();
        assert_eq!(code.len(), 29);
        assert!(!format!("{:?}", new.enrolment).contains(&code));
        // Stored as a hash only.
        for (file, bytes) in fx.files_bytes() {
            assert!(!contains(&bytes, code.as_bytes()), "{file}");
            assert!(
                !contains(&bytes, code.replace('-', "").as_bytes()),
                "{file}"
            );
        }
        // No password yet: the login form refuses the account.
        assert!(matches!(
            fx.auth
                .login_password("sam", &password(), &Client::at(here())),
            Err(Error::InvalidCredentials)
        ));
        // A wrong code is the one credential error, and counts.
        let wrong = {
            let mut c = code.clone().into_bytes();
            c[0] = if c[0] == b'a' { b'b' } else { b'a' };
            String::from_utf8(c).unwrap()
        };
        assert!(matches!(
            fx.auth
                .redeem_enrolment("sam", &wrong, &password(), &Client::at(here())),
            Err(Error::InvalidCredentials)
        ));
        assert!(matches!(
            fx.auth
                .redeem_enrolment("nobody", &code, &password(), &Client::at(here())),
            Err(Error::InvalidCredentials)
        ));
        // A weak password is refused and the code kept.
        assert!(matches!(
            fx.auth.redeem_enrolment(
                "sam",
                &code,
                &Password::new("password123".into()),
                &Client::at(here())
            ),
            Err(Error::WeakPassword(_))
        ));
        // Typed loosely, redeemed once: the login must enrol a factor.
        let shouted = code.to_uppercase().replace('-', " ");
        let Login::Enrol(enrolling) = fx
            .auth
            .redeem_enrolment("SAM", &shouted, &password(), &Client::at(here()))
            .unwrap()
        else {
            panic!("no second factor yet")
        };
        assert!(
            fx.auth
                .authenticate(enrolling.token(), here(), None)
                .is_err(),
            "an enrolling login is no session"
        );
        assert!(matches!(
            fx.auth
                .redeem_enrolment("sam", &code, &password(), &Client::at(here())),
            Err(Error::InvalidCredentials)
        ));
        // The password is the person's now.
        assert!(matches!(
            fx.auth
                .login_password("sam", &password(), &Client::at(here())),
            Ok(Login::Enrol(_))
        ));

        // Expiry (72 hours).
        let late = holder.add_person("late", Role::ShippingClerk).unwrap();
        fx.advance(72 * 3600);
        assert!(matches!(
            fx.auth.redeem_enrolment(
                "late",
                late.enrolment.code(),
                &password(),
                &Client::at(here())
            ),
            Err(Error::InvalidCredentials)
        ));

        // Throttled and locked like a password; the right code then fails
        // too, until an administrator unlocks the name.
        let victim = holder.add_person("target", Role::ShippingClerk).unwrap();
        let mut throttled = false;
        for _ in 0..20 {
            match fx.auth.redeem_enrolment(
                "target",
                &wrong,
                &password(),
                &Client::at(ip("198.51.100.9")),
            ) {
                Err(Error::Throttled { retry_after_secs }) => {
                    throttled = true;
                    fx.advance(retry_after_secs);
                }
                Err(Error::InvalidCredentials) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(throttled, "wrong codes back off");
        let mut locked = false;
        for _ in 0..40 {
            match fx.auth.redeem_enrolment(
                "target",
                &wrong,
                &password(),
                &Client::at(ip("198.51.100.9")),
            ) {
                Err(Error::Locked) => {
                    locked = true;
                    break;
                }
                Err(Error::Throttled { retry_after_secs }) => fx.advance(retry_after_secs),
                Err(Error::InvalidCredentials) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(locked, "wrong codes lock the name");
        assert!(matches!(
            fx.auth.redeem_enrolment(
                "target",
                victim.enrolment.code(),
                &password(),
                &Client::at(ip("203.0.113.5"))
            ),
            Err(Error::Locked)
        ));
        holder.unlock("target").unwrap();
        let fresh = holder.issue_enrolment_code("target").unwrap();
        assert!(
            fresh.request.is_none(),
            "a clerk's role is kept through re-enrolment"
        );
        assert!(
            matches!(
                fx.auth.redeem_enrolment(
                    "target",
                    victim.enrolment.code(),
                    &password(),
                    &Client::at(ip("203.0.113.5"))
                ),
                Err(Error::InvalidCredentials)
            ),
            "a new code replaces the old one"
        );
        assert!(
            fx.auth
                .redeem_enrolment(
                    "target",
                    fresh.enrolment.code(),
                    &password(),
                    &Client::at(ip("203.0.113.5"))
                )
                .is_ok()
        );
        let log = fx.audit_from(0);
        let redeemed = outcomes(&log, "enrolment-code-redeemed");
        assert_eq!(
            redeemed.iter().filter(|o| **o == Outcome::Success).count(),
            2
        );
        assert!(redeemed.iter().filter(|o| **o == Outcome::Denied).count() >= 20);
        let first = log
            .iter()
            .find(|e| e.action.kind().name() == "enrolment-code-redeemed")
            .unwrap();
        assert_eq!(first.actor.id, "sam", "by the name presented");
        assert_eq!(first.source, Some(here()));
    });
}

#[test]
fn lowerings_and_non_chart_roles_take_effect_at_once_and_supersede_requests() {
    each_backend(AuthConfig::default(), |fx| {
        let p = fx.user("pharm1", Role::Pharmacist);
        let (token, _) = fx.login(&p);
        let holder = fx.auth.key_holder();
        assert_eq!(
            holder.set_role("pharm1", Role::Technician).unwrap(),
            RoleChange::Applied
        );
        assert_eq!(again(fx, &token).role(), Some(Role::Technician));
        let raise = pending(&holder.set_role("pharm1", Role::Pharmacist).unwrap());
        assert_eq!(
            holder.set_role("pharm1", Role::ShippingClerk).unwrap(),
            RoleChange::Applied
        );
        assert_eq!(again(fx, &token).role(), Some(Role::ShippingClerk));
        let approver = holder.approver();
        assert_eq!(approver.request(&raise).unwrap().status, Status::Superseded);
        assert!(approver.pending().unwrap().is_empty());
        // A role-admin entry for what applied, a request for the raise.
        let log = fx.audit_from(0);
        assert_eq!(outcomes(&log, "role-admin"), vec![Outcome::Success; 2]);
    });
}

#[test]
fn a_pending_request_lapses() {
    each_backend(AuthConfig::default(), |fx| {
        let a = fx.user("admin-a", Role::Administrator);
        let b = fx.user("admin-b", Role::Administrator);
        let (_, pa) = fx.login(&a);
        let request = pending(
            &fx.auth
                .admin(&pa)
                .unwrap()
                .add_person("slow", Role::Billing)
                .unwrap()
                .role,
        );
        fx.advance(7 * 24 * 3600);
        let (_, pb) = fx.login(&b);
        let approver = fx.auth.approver(&pb).unwrap();
        assert!(approver.pending().unwrap().is_empty());
        assert_eq!(approver.request(&request).unwrap().status, Status::Expired);
        assert!(matches!(
            approver.approve(&request),
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            fx.auth.key_holder().user("slow").unwrap().role,
            None,
            "never granted"
        );
        let log = fx.audit_from(0);
        assert_eq!(
            log.last().map(|e| (e.action.kind().name(), e.outcome)),
            Some(("access-approved", Outcome::Denied))
        );
    });
}

#[test]
fn the_local_operator_is_one_person_with_a_first_administrator_and_single_operator_mode() {
    each_backend(AuthConfig::default(), |fx| {
        let holder = fx.auth.key_holder();
        let approver = holder.approver();
        // The first administrator: no one could approve yet.
        let first = holder.add_person("owner", Role::Administrator).unwrap();
        assert_eq!(first.role, RoleChange::Applied);
        assert_eq!(first.user.role, Some(Role::Administrator));
        // From then on the local operator's own requests need someone else.
        let second = pending(
            &holder
                .add_person("deputy", Role::Administrator)
                .unwrap()
                .role,
        );
        let pharm = pending(&holder.add_person("pat", Role::Pharmacist).unwrap().role);
        assert!(matches!(
            approver.approve(&pharm),
            Err(Error::Forbidden { .. })
        ));
        // The administrator (over HTTPS, in a session) is that someone.
        let (_, owner) = take_over(fx, "owner", first.enrolment.code());
        fx.auth.approver(&owner).unwrap().approve(&pharm).unwrap();
        // The local operator approves a request someone else made.
        let theirs = pending(
            &fx.auth
                .admin(&owner)
                .unwrap()
                .add_person("tess", Role::Technician)
                .unwrap()
                .role,
        );
        approver.approve(&theirs).unwrap();
        // Single-operator mode: the local operator approves their own.
        holder.set_single_operator(true).unwrap();
        assert!(fx.auth.single_operator().unwrap());
        approver.approve(&second).unwrap();
        holder.set_single_operator(false).unwrap();
        let basis: Vec<(String, Option<ApprovalBasis>)> = fx
            .audit_from(0)
            .iter()
            .filter(|e| e.outcome == Outcome::Success)
            .filter_map(|e| match &e.action {
                A::AccessApproved { target, basis, .. } => Some((target.clone().unwrap(), *basis)),
                _ => None,
            })
            .collect();
        assert_eq!(
            basis,
            vec![
                ("owner".to_string(), Some(ApprovalBasis::FirstAdministrator)),
                ("pat".to_string(), Some(ApprovalBasis::SecondPerson)),
                ("tess".to_string(), Some(ApprovalBasis::SecondPerson)),
                ("deputy".to_string(), Some(ApprovalBasis::SingleOperator)),
            ]
        );
        let users = holder.users().unwrap();
        let role = |n: &str| users.iter().find(|u| u.username == n).unwrap().role;
        assert_eq!(role("deputy"), Some(Role::Administrator));
        assert_eq!(role("pat"), Some(Role::Pharmacist));
        assert_eq!(role("tess"), Some(Role::Technician));
        // A sole administrator gone: disabling them makes the next one a
        // first administrator again.
        holder.disable("owner").unwrap();
        holder.disable("deputy").unwrap();
        assert_eq!(
            holder.add_person("heir", Role::Administrator).unwrap().role,
            RoleChange::Applied
        );
    });
}

#[test]
fn a_refused_key_is_revoked() {
    each_backend(AuthConfig::default(), |fx| {
        let a = fx.user("admin-a", Role::Administrator);
        let (_, pa) = fx.login(&a);
        let holder = fx.auth.key_holder();
        holder.create_service_account("pms").unwrap();
        let key = holder
            .issue_api_key("pms", &[Scope::FillsRead, Scope::ShippingRead], &[], None)
            .unwrap();
        let request = key.request.as_ref().unwrap();
        assert_eq!(
            request.grant,
            rxvault_auth::Grant::ApiKey {
                key: key.id.clone(),
                scopes: vec![Scope::FillsRead, Scope::ShippingRead]
            }
        );
        fx.auth.approver(&pa).unwrap().refuse(&request.id).unwrap();
        assert!(fx.auth.authenticate_api_key(&key.key, here()).is_err());
        let keys = holder.api_keys("pms").unwrap();
        assert!(keys[0].revoked_at.is_some());
        // Today's labels only: no approval needed.
        let labels = holder
            .issue_api_key(
                "pms",
                &[Scope::ShippingRead, Scope::SessionsRevoke],
                &[],
                None,
            )
            .unwrap();
        assert!(labels.request.is_none());
        assert!(fx.auth.authenticate_api_key(&labels.key, here()).is_ok());
    });
}
