//! Who is asking: a [`Principal`], and what it may see and do.
//!
//! A principal exists only as the result of authentication
//! ([`Auth::authenticate`](crate::Auth::authenticate) for a session token,
//! [`Auth::authenticate_api_key`](crate::Auth::authenticate_api_key) for a
//! service's key); its fields are private and it has no public
//! constructor, so holding one is proof that authentication happened.
//! Roles are read from the account on every authentication, so a role
//! change or a disabled account takes effect on the next request.

use crate::permissions::{self, Action, Constraint, Role, Scope};
use rxvault_model::{CategorySet, RecordKind, Timestamp};
use std::fmt;
use std::net::IpAddr;

/// An account's id: 128 random bits as 32 hex digits. Stable for life;
/// user names may be reused after a rename, ids never.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub(crate) String);

impl UserId {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session's public id (for listing and revoking; not a credential).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) String);

impl SessionId {
    /// Wraps an id (as given on a command line or in an admin request).
    pub fn new(id: &str) -> Self {
        Self(id.to_string())
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The workstation or agent a session is bound to: 1 to 128 characters of
/// `A-Z a-z 0-9 . _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(String);

impl HostId {
    /// Validates a host id.
    pub fn new(id: &str) -> crate::Result<HostId> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
        {
            return Err(crate::Error::Invalid(
                "a host id is 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'".into(),
            ));
        }
        Ok(HostId(id.to_string()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a principal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person, in a session.
    User {
        /// Account id.
        id: UserId,
        /// Login name.
        username: String,
        /// Role (as of this request); `None`: none yet (a new person whose
        /// role awaits a second person's approval, or one re-enrolling),
        /// who may do nothing but manage their own session.
        role: Option<Role>,
    },
    /// A service account, by API key.
    Service {
        /// Account id.
        id: UserId,
        /// Service account name.
        name: String,
        /// The API key's public id.
        key_id: String,
    },
}

/// The state of a break-glass grant a principal holds (the reason is not
/// carried per request; see [`crate::BreakGlassGrant`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveBreakGlass {
    /// The grant's id (for the audit of every access it allows).
    pub id: String,
    /// When it ends.
    pub expires_at: Timestamp,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub(crate) actor: Actor,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) session: Option<SessionId>,
    pub(crate) session_expires_at: Option<Timestamp>,
    pub(crate) source: IpAddr,
    pub(crate) host: Option<HostId>,
    pub(crate) mfa_at: Option<Timestamp>,
    pub(crate) break_glass: Option<ActiveBreakGlass>,
}

/// What [`Auth::authorize`](crate::Auth::authorize) granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The action.
    pub action: Action,
    /// Its limit (e.g. only fills dated today: the server checks a fill
    /// against the vault's fill-date index for `Vault::today`).
    pub constraint: Constraint,
}

impl Principal {
    /// Who this is.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The account id.
    pub fn user_id(&self) -> &UserId {
        match &self.actor {
            Actor::User { id, .. } | Actor::Service { id, .. } => id,
        }
    }

    /// The role (people only).
    pub fn role(&self) -> Option<Role> {
        match &self.actor {
            Actor::User { role, .. } => *role,
            Actor::Service { .. } => None,
        }
    }

    /// The API key's scopes (service accounts only).
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// The session (people only).
    pub fn session_id(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// When the session ends at the latest.
    pub fn session_expires_at(&self) -> Option<Timestamp> {
        self.session_expires_at
    }

    /// The address the request came from.
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// The host or agent, if known.
    pub fn host(&self) -> Option<&HostId> {
        self.host.as_ref()
    }

    /// The last successful second-factor check of this session.
    pub fn mfa_at(&self) -> Option<Timestamp> {
        self.mfa_at
    }

    /// The break-glass grant in force, if any.
    pub fn break_glass(&self) -> Option<&ActiveBreakGlass> {
        self.break_glass.as_ref()
    }

    /// This principal as the audit log names it: the person, or the
    /// service account and its key (`name/key-id`).
    pub fn audit_actor(&self) -> rxvault_audit::Actor {
        match &self.actor {
            Actor::User { username, .. } => rxvault_audit::Actor::user(username.clone()),
            Actor::Service { name, key_id, .. } => {
                rxvault_audit::Actor::service(format!("{name}/{key_id}"))
            }
        }
    }

    /// An audit entry for `action` by this principal: the person or the
    /// service account and key, their session, source address, host, and
    /// the break-glass grant in force, if any.
    pub fn audit_entry(&self, action: rxvault_audit::Action) -> rxvault_audit::Entry {
        let mut e = rxvault_audit::Entry::new(self.audit_actor(), action).source(self.source);
        if let Some(s) = &self.session {
            e = e.session(s.as_str().to_string());
        }
        if let Some(h) = &self.host {
            e = e.host(h.as_str().to_string());
        }
        if let Some(g) = &self.break_glass {
            e = e.break_glass(g.id.clone());
        }
        e
    }

    /// Whether the permission table (and an active break-glass grant) lets
    /// this principal do `action`, and with which limit. Step-up is checked
    /// by [`Auth::authorize`](crate::Auth::authorize), which needs the clock.
    pub fn permits(&self, action: Action) -> Option<Access> {
        let own = match &self.actor {
            Actor::User { role, .. } => role.and_then(|r| permissions::allowed(r, action)),
            Actor::Service { .. } => permissions::scopes_allow(&self.scopes, action),
        };
        match own {
            Some(constraint) => Some(Access { action, constraint }),
            None if self.break_glass.is_some() && action.break_glass_read() => Some(Access {
                action,
                constraint: Constraint::Unrestricted,
            }),
            None => None,
        }
    }

    /// The field categories of `kind` this principal may see: its role's or
    /// scopes', widened by an active break-glass grant.
    pub fn categories(&self, kind: RecordKind) -> CategorySet {
        let own = match &self.actor {
            Actor::User { role, .. } => {
                role.map_or(CategorySet::NONE, |r| permissions::categories(r, kind))
            }
            Actor::Service { .. } => permissions::scopes_categories(&self.scopes, kind),
        };
        if self.break_glass.is_some() {
            own.iter()
                .chain(permissions::break_glass_categories(kind).iter())
                .collect()
        } else {
            own
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_validated() {
        assert!(HostId::new("ws-12.pharmacy:7").is_ok());
        for bad in ["", "a b", "ws/1", &"x".repeat(129), "é"] {
            assert!(HostId::new(bad).is_err(), "{bad}");
        }
    }
}
