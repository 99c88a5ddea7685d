//! Responses: what a rule does at once, through the identity layer
//! (`rxvault_auth`), recorded in the audit log as the detector's acts
//! (system actor [`DETECTOR_ACTOR`](crate::DETECTOR_ACTOR)) and in the
//! alert. Each is reversible by an administrator (`rxvault user enable`,
//! a new sign-in, a second factor presented again).

use crate::alerts::{Alert, Taken};
use crate::engine::{DETECTOR_ACTOR, Finding, Principal};
use crate::rules::Response;
use rxvault_auth::{Auth, HostId, SessionId};
use std::sync::Arc;

/// Whom a response is aimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The account.
    pub principal: Option<Principal>,
    /// The session.
    pub session: Option<String>,
    /// The host.
    pub host: Option<String>,
}

/// Takes responses.
pub trait Responder: Send + Sync {
    /// Does `response` to `target`: what was done, or why it could not be.
    fn respond(&self, response: Response, target: &Target) -> Result<String, String>;
}

/// Takes a finding's response for its alert, unless the same response on
/// the same target was taken for it in this batch already (a scrape's many
/// findings at once; a later finding responds again: an administrator may
/// have re-enabled the account meanwhile).
pub(crate) fn take(responder: &dyn Responder, alert: &mut Alert, f: &Finding, now_ms: i64) {
    if f.response == Response::Alert {
        return;
    }
    let target = Target {
        principal: f.principal.clone(),
        session: f.session.clone(),
        host: f.host.clone(),
    };
    let key = format!(
        "{}|{}|{}",
        target
            .principal
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        target.session.as_deref().unwrap_or(""),
        target.host.as_deref().unwrap_or("")
    );
    let done = alert
        .responses
        .iter()
        .any(|t| t.ok && t.time_ms == now_ms && t.response == f.response && t.target == key);
    if done {
        return;
    }
    let (ok, result) = match responder.respond(f.response, &target) {
        Ok(r) => (true, r),
        Err(e) => (false, e),
    };
    if !ok {
        tracing::warn!(response = f.response.name(), error = %result, "detection response failed");
    }
    alert.responses.push(Taken {
        response: f.response,
        time_ms: now_ms,
        target: key,
        result,
        ok,
    });
}

/// Responses through `rxvault_auth` (the server process's `Auth`).
#[derive(Debug, Clone)]
pub struct AuthResponder(pub Arc<Auth>);

impl Responder for AuthResponder {
    fn respond(&self, response: Response, target: &Target) -> Result<String, String> {
        let admin = self.0.responder(DETECTOR_ACTOR);
        let Some(p) = &target.principal else {
            return Err("no account to respond against".into());
        };
        let kind = p.kind.as_str();
        if kind == "local" || kind == "system" {
            return Err(format!(
                "{p} is at the vault's command line (holds the key): nothing to end or disable"
            ));
        }
        let e = |e: rxvault_auth::Error| e.to_string();
        // A service's actor is `account/key id`.
        let account = p.id.split_once('/').map_or(p.id.as_str(), |(a, _)| a);
        match (response, kind, &target.session) {
            (Response::Alert, _, _) => Ok("alert only".into()),
            (Response::EndSession, "user", Some(s)) => admin
                .revoke_session(&SessionId::new(s))
                .map(|n| format!("{n} session ended"))
                .map_err(e),
            (Response::EndSession, "user", None) => admin
                .revoke_user_sessions(&p.id)
                .map(|n| format!("{n} sessions of {} ended", p.id))
                .map_err(e),
            (Response::StepUp, "user", Some(s)) => admin
                .require_step_up(&SessionId::new(s))
                .map(|live| {
                    if live {
                        "step-up required".into()
                    } else {
                        "the session had ended".into()
                    }
                })
                .map_err(e),
            // A service account has no session and no second factor: its
            // key stops working only with the account.
            (Response::EndSession | Response::StepUp | Response::DisableAccount, "service", _)
            | (Response::DisableAccount, "user", _) => admin
                .disable(account)
                .map(|()| format!("account {account} disabled"))
                .map_err(e),
            (Response::StepUp, _, None) => Err("no session to step up".into()),
            (Response::BlockHost, _, _) => match &target.host {
                Some(h) => {
                    let host = HostId::new(h).map_err(e)?;
                    admin
                        .revoke_host_sessions(&host)
                        .map(|n| format!("{n} sessions from host {h} ended"))
                        .map_err(e)
                }
                None => match &target.session {
                    Some(s) => admin
                        .revoke_session(&SessionId::new(s))
                        .map(|n| format!("no host known; {n} session ended"))
                        .map_err(e),
                    None => Err("no host or session to cut off".into()),
                },
            },
            (r, k, _) => Err(format!("{} does not apply to a {k} account", r.name())),
        }
    }
}
