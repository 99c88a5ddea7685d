//! The authorization matrix, generated from the permission table: every
//! role (and a service key per scope) × every action × every token state
//! {none, expired, revoked, pending second factor, valid}. Zero
//! unauthorized successes; field masking as the table says.

use crate::common::*;
use rxvault_auth::permissions::{self, Constraint};
use rxvault_auth::{Action, AuthConfig, Client, Error, Login, Principal, Role, Scope};
use rxvault_crypto::{Password, Token};
use rxvault_model::{CategorySet, RecordKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenState {
    None,
    Expired,
    Revoked,
    PendingSecondFactor,
    Valid,
}

const STATES: [TokenState; 5] = [
    TokenState::None,
    TokenState::Expired,
    TokenState::Revoked,
    TokenState::PendingSecondFactor,
    TokenState::Valid,
];

/// What the server does per request: authenticate the token, then
/// authorize the endpoint's action. `Ok` only if both pass.
fn request(
    fx: &Fx,
    token: Option<&Token>,
    action: Action,
) -> Result<(Principal, rxvault_auth::Access), Error> {
    let token = token.ok_or(Error::Unauthenticated)?;
    let p = fx.auth.authenticate(token, here(), None)?;
    let access = fx.auth.authorize(&p, action)?;
    Ok((p, access))
}

#[test]
fn every_role_action_and_token_state() {
    let fx = Fx::sqlite(AuthConfig::default());
    let users: Vec<(Role, User)> = Role::ALL
        .iter()
        .map(|r| (*r, fx.user(&format!("user-{}", r.name()), *r)))
        .collect();
    let mut checked = 0;
    let mut unauthorized_successes = Vec::new();
    for state in STATES {
        for (role, user) in &users {
            // Build the token of this state.
            let token: Option<Token> = match state {
                TokenState::None => None,
                TokenState::Valid => Some(fx.login(user).0),
                TokenState::Revoked => {
                    let (t, p) = fx.login(user);
                    fx.auth.logout(&p).unwrap();
                    Some(t)
                }
                TokenState::PendingSecondFactor => {
                    fx.advance(30);
                    match fx
                        .auth
                        .login_password(&user.name, &user.password, &Client::at(here()))
                        .unwrap()
                    {
                        Login::SecondFactor(p) => Some(p.token().clone()),
                        Login::Enrol(_) => panic!(),
                    }
                }
                TokenState::Expired => {
                    let (t, _) = fx.login(user);
                    fx.advance(31 * 60);
                    Some(t)
                }
            };
            for action in Action::ALL {
                checked += 1;
                let allowed = permissions::allowed(*role, action);
                let got = request(&fx, token.as_ref(), action);
                match (state, allowed, &got) {
                    (TokenState::Valid, Some(constraint), Ok((p, access))) => {
                        assert_eq!(access.constraint, constraint);
                        for kind in RecordKind::ALL {
                            assert_eq!(
                                p.categories(kind),
                                permissions::categories(*role, kind),
                                "{role} {kind}"
                            );
                        }
                    }
                    (TokenState::Valid, None, Err(Error::Forbidden { action: a })) => {
                        assert_eq!(*a, action)
                    }
                    (TokenState::Valid, _, other) => {
                        panic!("{role} {action}: {other:?} but the table says {allowed:?}")
                    }
                    (_, _, Err(Error::Unauthenticated)) => {}
                    (_, _, other) => unauthorized_successes.push(format!(
                        "{state:?} {role} {action}: {:?}",
                        other.as_ref().map(|_| "OK")
                    )),
                }
            }
        }
    }
    assert!(
        unauthorized_successes.is_empty(),
        "{unauthorized_successes:#?}"
    );
    assert_eq!(checked, 5 * Role::ALL.len() * Action::ALL.len());
}

#[test]
fn step_up_actions_are_refused_with_a_stale_second_factor_for_every_role() {
    let fx = Fx::sqlite(AuthConfig::default());
    for role in Role::ALL {
        let u = fx.user(&format!("stale-{}", role.name()), role);
        let (token, _) = fx.login(&u);
        fx.advance(6 * 60);
        let p = fx.auth.authenticate(&token, here(), None).unwrap();
        for action in Action::ALL {
            let got = fx.auth.authorize(&p, action);
            match permissions::allowed(role, action) {
                None => assert!(
                    matches!(got, Err(Error::Forbidden { .. })),
                    "{role} {action}"
                ),
                Some(_) if action.needs_step_up() => {
                    assert!(matches!(got, Err(Error::StepUpRequired)), "{role} {action}")
                }
                Some(_) => assert!(got.is_ok(), "{role} {action}"),
            }
        }
    }
}

#[test]
fn service_keys_get_exactly_their_scopes() {
    let fx = Fx::sqlite(AuthConfig::default());
    let admin = fx.auth.key_holder();
    admin.create_service_account("pms").unwrap();
    for scope in Scope::ALL {
        let key = admin.issue_api_key("pms", &[scope], &[], None).unwrap();
        // A chart-reading scope waits for a second person; others do not.
        assert_eq!(key.request.is_some(), scope.reads_charts(), "{scope}");
        if let Some(r) = &key.request {
            assert!(fx.auth.authenticate_api_key(&key.key, here()).is_err());
            approve_as_single_operator(&fx.auth, &r.id);
        }
        let p = fx.auth.authenticate_api_key(&key.key, here()).unwrap();
        assert_eq!(p.scopes(), &[scope]);
        assert_eq!(p.role(), None);
        for action in Action::ALL {
            let got = fx.auth.authorize(&p, action);
            match permissions::scopes_allow(&[scope], action) {
                Some(c) => assert_eq!(got.unwrap().constraint, c, "{scope} {action}"),
                None => assert!(
                    matches!(got, Err(Error::Forbidden { .. })),
                    "{scope} {action}"
                ),
            }
        }
        for kind in RecordKind::ALL {
            assert_eq!(
                p.categories(kind),
                permissions::scope_categories(scope, kind)
            );
        }
        // A key is not a session and cannot log in.
        assert!(fx.auth.authenticate(&key.key, here(), None).is_err());
    }
    assert!(matches!(
        fx.auth.login_password(
            "pms",
            &Password::new("violet harbor lantern 42".into()),
            &Client::at(here())
        ),
        Err(Error::InvalidCredentials)
    ));
    // The shipping scope alone: today's fills only, labels only.
    let key = admin
        .issue_api_key("pms", &[Scope::ShippingRead], &[], None)
        .unwrap();
    let p = fx.auth.authenticate_api_key(&key.key, here()).unwrap();
    let access = fx.auth.authorize(&p, Action::FillRead).unwrap();
    assert_eq!(access.constraint, Constraint::FillsDatedToday);
    assert!(p.categories(RecordKind::Patient) == CategorySet::NONE);
}
