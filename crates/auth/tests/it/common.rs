//! Fixtures: a real vault (SQLite, or PostgreSQL with
//! `RXVAULT_TEST_PG_URL`) on a manual clock, with users in every role.

use rxvault_auth::{Auth, AuthConfig, Client, Login, Principal, Role, RoleChange, Session};
use rxvault_crypto::{Password, Token, TotpSecret};
use rxvault_model::{Clock, ManualClock};
use rxvault_testkit::pg::Schema;
use rxvault_vault::keys::{InitKey, KeySource};
use rxvault_vault::{StoreConfig, Vault};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const START: time::OffsetDateTime = time::macros::datetime!(2026-11-28 09:00 UTC);

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The workstation address most tests log in from.
pub fn here() -> IpAddr {
    ip("192.0.2.10")
}

pub struct Fx {
    pub clock: Arc<ManualClock>,
    pub auth: Auth,
    /// The vault `auth` records in (its audit log).
    pub vault: Arc<Vault>,
    pub data: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
    _schema: Option<Schema>,
}

/// A user created by [`Fx::user`].
pub struct User {
    pub name: String,
    pub password: Password,
    pub totp: TotpSecret,
    /// The recovery codes their enrolment gave them.
    pub recovery_codes: Vec<String>,
}

/// Approves access request `id` as the local operator in single-operator
/// mode, switched on for the moment if it was off (the fixtures' way of
/// having roles granted; tests of separation of duties approve otherwise).
pub fn approve_as_single_operator(auth: &Auth, id: &str) {
    let was_on = auth.single_operator().unwrap();
    let holder = auth.key_holder();
    if !was_on {
        holder.set_single_operator(true).unwrap();
    }
    holder.approver().approve(id).unwrap();
    if !was_on {
        holder.set_single_operator(false).unwrap();
    }
}

/// A person as people are enrolled: the local operator adds them (a
/// one-time enrolment code; a sensitive role as a request, approved by
/// [`approve_as_single_operator`]) and the person redeems the code with
/// their own `password`. Returns the redeemed login (at its enrolment
/// stage).
pub fn add_and_redeem(
    auth: &Auth,
    name: &str,
    role: Role,
    password: &Password,
) -> rxvault_auth::Session<rxvault_auth::Enrolling> {
    let new = auth.key_holder().add_person(name, role).unwrap();
    if let RoleChange::Pending(r) = &new.role {
        approve_as_single_operator(auth, &r.id);
    }
    match auth
        .redeem_enrolment(name, new.enrolment.code(), password, &Client::at(here()))
        .unwrap()
    {
        Login::Enrol(e) => e,
        Login::SecondFactor(_) => panic!("{name} is new: no second factor"),
    }
}

/// [`add_and_redeem`], then the person enrols TOTP (confirmed with the
/// previous time step's code, so a login right after is no replay); the
/// login the enrolment completed is logged out. Returns the secret and the
/// recovery codes.
pub fn enrol(
    auth: &Auth,
    now: i64,
    name: &str,
    role: Role,
    password: &Password,
) -> (TotpSecret, Vec<String>) {
    let enrolling = add_and_redeem(auth, name, role, password);
    let enrolment = auth.start_totp_enrolment(&enrolling).unwrap();
    let totp = TotpSecret::from_base32(&enrolment.secret_base32()).unwrap();
    let (session, codes) = auth
        .finish_totp_enrolment(enrolling, totp.code_at(now - 30).as_str())
        .unwrap();
    auth.logout(session.principal()).unwrap();
    let codes = codes.codes().iter().map(|c| c.to_string()).collect();
    (totp, codes)
}

impl Fx {
    pub fn sqlite(config: AuthConfig) -> Fx {
        Self::new(config, None)
    }

    fn new(config: AuthConfig, schema: Option<Schema>) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let key = dir.path().join("keys").join("vault.key");
        std::fs::create_dir_all(key.parent().unwrap()).unwrap();
        let clock = Arc::new(ManualClock::new(START));
        let store = match &schema {
            None => StoreConfig::Sqlite,
            Some(s) => StoreConfig::Postgres {
                url: s.url.clone(),
                schema: s.name.clone(),
            },
        };
        Vault::init(
            &data,
            store,
            InitKey::File(Some(key.clone())),
            clock.clone(),
        )
        .unwrap();
        let vault = Arc::new(
            Vault::open(&data, Some(KeySource::File(key.clone())), clock.clone()).unwrap(),
        );
        let auth = Auth::new(
            vault.clone(),
            vault.auth_store().unwrap(),
            vault.clone(),
            vault.clock().clone(),
            config,
        )
        .unwrap();
        Fx {
            clock,
            auth,
            vault,
            data,
            key,
            _dir: dir,
            _schema: schema,
        }
    }

    /// Another process's view of the same vault: its own keyring (and data
    /// key) and its own connections.
    pub fn second_process(&self) -> Auth {
        let vault = Vault::open(
            &self.data,
            Some(KeySource::File(self.key.clone())),
            self.clock.clone(),
        )
        .unwrap();
        let vault = Arc::new(vault);
        Auth::new(
            vault.clone(),
            vault.auth_store().unwrap(),
            vault.clone(),
            vault.clock().clone(),
            self.auth.config().clone(),
        )
        .unwrap()
    }

    /// The audit entries from index `from` on.
    pub fn audit_from(&self, from: u64) -> Vec<rxvault_audit::Entry> {
        let reader = self.vault.audit().unwrap().reader().clone();
        let size = reader.size().unwrap();
        reader
            .entries(from, size)
            .unwrap()
            .into_iter()
            .map(|e| e.entry)
            .collect()
    }

    /// The audit log's size.
    pub fn audit_size(&self) -> u64 {
        self.vault.audit().unwrap().reader().size().unwrap()
    }

    pub fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// A person with `role`, a policy-compliant password of their own and
    /// a TOTP authenticator they enrolled ([`enrol`]).
    pub fn user(&self, name: &str, role: Role) -> User {
        let password = Password::new("violet harbor lantern 42".into());
        let (totp, recovery_codes) = enrol(&self.auth, self.now(), name, role, &password);
        User {
            name: name.to_string(),
            password,
            totp,
            recovery_codes,
        }
    }

    /// The code `user`'s app shows now.
    pub fn code(&self, user: &User) -> String {
        user.totp.code_at(self.now()).to_string()
    }

    /// Password then TOTP, from `source`. Moves the clock one TOTP step
    /// first, so that consecutive logins never reuse a code.
    pub fn login_from(&self, user: &User, source: IpAddr) -> (Token, Principal) {
        self.advance(30);
        let Login::SecondFactor(pending) = self
            .auth
            .login_password(&user.name, &user.password, &Client::at(source))
            .unwrap()
        else {
            panic!("{} has a second factor", user.name)
        };
        let session: Session<_> = self.auth.verify_totp(pending, &self.code(user)).unwrap();
        (session.token().clone(), session.into_principal())
    }

    pub fn login(&self, user: &User) -> (Token, Principal) {
        self.login_from(user, here())
    }

    /// How many entries the vault's audit log holds.
    /// The entries appended since the log held `since`.
    pub fn audit_since(&self, since: u64) -> Vec<rxvault_audit::Entry> {
        let reader = self.vault.audit().unwrap().reader();
        reader
            .entries(since, reader.size().unwrap())
            .unwrap()
            .into_iter()
            .map(|e| e.entry)
            .collect()
    }

    /// Every byte of the vault's files (for plaintext scans).
    pub fn files_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.data).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
        out
    }
}

/// Runs `test` on a SQLite vault and, with `RXVAULT_TEST_PG_URL`, a
/// PostgreSQL one.
pub fn each_backend(config: AuthConfig, test: impl Fn(&Fx)) {
    test(&Fx::sqlite(config.clone()));
    if let Some(schema) = Schema::new("auth") {
        test(&Fx::new(config, Some(schema)));
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An external tool a test needs: present, or (outside CI) skip with a
/// message. Under `CI` a missing tool fails the test: CI never passes by
/// skipping.
pub fn tool(name: &str, package: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed and CI may not skip this test (apt-get install {package})"
        );
        eprintln!("skipping: {name} is not installed");
    }
    found
}
