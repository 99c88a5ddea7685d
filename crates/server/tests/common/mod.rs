//! A real server for tests: a vault on SQLite or PostgreSQL with synthetic
//! patients (and fills dated today), one user per role with TOTP, a service
//! account, the HTTPS server on an ephemeral port, and a client that trusts
//! its certificate. The vault runs on a `ManualClock` the test drives.
//!
//! The server runs on its own runtime in its own thread, as it would in its
//! own process. The PostgreSQL client blocks (and aborts the process if it
//! blocks a runtime thread), so the harness sets up on the blocking pool,
//! a test calls the vault or identity store directly only inside
//! [`Harness::blocking`], and [`Harness::finish`] drops the vault off the
//! runtime. [`both_backends!`] runs a test on each backend.

#![allow(dead_code)]

use rxvault_auth::{Auth, AuthConfig, Enrolling, Login, Role, RoleChange, Scope, Session};
use rxvault_crypto::otp::TotpSecret;
use rxvault_crypto::{Password, Token};
use rxvault_model::{Clock, ManualClock, RecordKind};
use rxvault_server::tls::TlsSource;
use rxvault_server::{ServeOptions, Server};
use rxvault_vault::import::ImportOptions;
use rxvault_vault::keys::InitKey;
use rxvault_vault::{KeySource, StoreConfig, Vault};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub const PASSWORD: &str = "correct horse battery staple";
pub const TODAY: time::Date = time::macros::date!(2026 - 11 - 28);

/// Which store a harness's vault is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `async fn $name(backend: Backend)` as one test per backend
/// (`$name::sqlite`, `$name::postgres`; the PostgreSQL one fails when the
/// server is unreachable, and skips only when PostgreSQL tests may be
/// skipped: see `rxvault_testkit::pg`).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

pub struct Harness {
    pub backend: Backend,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
    /// One more reference to the vault and identity store, leaked if the
    /// harness is dropped on the runtime without [`Harness::finish`] (a
    /// failed test unwinding): dropping the last one there would block the
    /// runtime on PostgreSQL and abort the test binary instead of reporting
    /// the failure.
    keepalive: Option<(Arc<Vault>, Arc<Auth>)>,
    pub vault: Arc<Vault>,
    pub auth: Arc<Auth>,
    pub clock: Arc<ManualClock>,
    pub base: String,
    pub client: reqwest::Client,
    pub secrets: HashMap<String, TotpSecret>,
    pub service_key: String,
    /// Ids of records to use in requests.
    pub ids: HashMap<RecordKind, String>,
    /// A fill dated today, and one that is not.
    pub fill_today: String,
    pub fill_other_day: String,
    pub input: std::path::PathBuf,
    // Last: fields drop in order, and the vault goes before its files and
    // its schema.
    pub tmp: tempfile::TempDir,
    /// The PostgreSQL schema, when on PostgreSQL (dropped with the harness).
    pub pg: Option<rxvault_testkit::pg::Schema>,
}

/// A person enrolled (password and TOTP) whose pharmacist role was never
/// approved: they have no role.
pub const UNASSIGNED: &str = "u-unassigned";

pub fn username(role: Role) -> String {
    format!("u-{}", role.name())
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Not finished (a failed test unwinding on the runtime): leave the
        // vault and the PostgreSQL schema be, rather than block the runtime
        // on PostgreSQL in a destructor (which aborts the test binary).
        if let Some(keep) = self.keepalive.take() {
            std::mem::forget(keep);
            std::mem::forget(self.pg.take());
        }
    }
}

/// What the blocking part of the set-up makes.
struct Setup {
    tmp: tempfile::TempDir,
    pg: Option<rxvault_testkit::pg::Schema>,
    vault: Arc<Vault>,
    auth: Arc<Auth>,
    clock: Arc<ManualClock>,
    secrets: HashMap<String, TotpSecret>,
    service_key: String,
    ids: HashMap<RecordKind, String>,
    fill_today: String,
    fill_other_day: String,
    input: std::path::PathBuf,
}

impl Harness {
    /// A harness on SQLite.
    pub async fn start() -> Harness {
        Self::start_with(AuthConfig::default()).await
    }

    /// A harness on SQLite with this identity configuration.
    pub async fn start_with(auth_config: AuthConfig) -> Harness {
        Self::start_on(Backend::Sqlite, auth_config)
            .await
            .expect("SQLite is always there")
    }

    /// A harness on `backend`; `None` when PostgreSQL tests are skipped.
    pub async fn start_on(backend: Backend, auth_config: AuthConfig) -> Option<Harness> {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                tokio::task::spawn_blocking(|| rxvault_testkit::pg::Schema::new("server"))
                    .await
                    .unwrap()?,
            ),
        };
        let setup = tokio::task::spawn_blocking(move || setup(pg, auth_config))
            .await
            .unwrap();
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: TlsSource::SelfSigned,
            limits: Default::default(),
            base_url: None,
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (vault, auth) = (setup.vault.clone(), setup.auth.clone());
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = Server::bind(vault, auth, &options).await.unwrap();
                let _ = ready_tx.send((server.local_addr.port(), server.cert_pem.clone()));
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let (port, cert_pem) = ready_rx.await.expect("the server started");
        let tls = rxvault_crypto::tls::client_config_trusting(&cert_pem).unwrap();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let Setup {
            tmp,
            pg,
            vault,
            auth,
            clock,
            secrets,
            service_key,
            ids,
            fill_today,
            fill_other_day,
            input,
        } = setup;
        Some(Harness {
            tmp,
            pg,
            backend,
            stop: Some(stop),
            server: Some(server),
            keepalive: Some((vault.clone(), auth.clone())),
            vault,
            auth,
            clock,
            base: format!("https://localhost:{port}"),
            client,
            secrets,
            service_key,
            ids,
            fill_today,
            fill_other_day,
            input,
        })
    }

    /// Stops the server and drops the vault off the runtime (its drop
    /// signs a checkpoint and closes PostgreSQL connections).
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take();
        let keepalive = self.keepalive.take();
        tokio::task::spawn_blocking(move || {
            if let Some(server) = server {
                server.join().expect("the server thread ended cleanly");
            }
            drop(self);
            drop(keepalive);
        })
        .await
        .unwrap();
    }

    /// Runs `f` (direct vault or identity-store calls) where blocking is
    /// allowed.
    pub fn blocking<T>(&self, f: impl FnOnce() -> T) -> T {
        tokio::task::block_in_place(f)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Password step only: the pending token.
    pub async fn password_step(&self, user: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/v1/sessions"))
            .json(&json!({"username": user, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "password step for {user}");
        r.json::<Value>().await.unwrap()["pending_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A full login (password + TOTP). Moves the clock one TOTP step first,
    /// so a code is never a replay of the previous login's.
    pub async fn login(&self, user: &str) -> String {
        self.clock.advance(Duration::from_secs(30));
        let pending = self.password_step(user).await;
        let code = self.secrets[user].code_at(self.clock.now().unix_timestamp());
        let r = self
            .client
            .post(self.url("/api/v1/sessions/totp"))
            .json(&json!({"pending_token": pending, "code": code.as_str()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "TOTP step for {user}");
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn audit_size(&self) -> u64 {
        self.blocking(|| self.vault.audit().unwrap().reader().size().unwrap())
    }

    pub fn last_entries(&self, n: u64) -> Vec<rxvault_audit::LoggedEntry> {
        self.blocking(|| {
            let reader = self.vault.audit().unwrap().reader().clone();
            let size = reader.size().unwrap();
            reader.entries(size.saturating_sub(n), size).unwrap()
        })
    }

    pub fn token_of(text: &str) -> Token {
        Token::from_presented(text)
    }
}

/// The blocking part of the set-up: the vault, its data, people and keys.
fn setup(pg: Option<rxvault_testkit::pg::Schema>, auth_config: AuthConfig) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-11-28 15:00 UTC),
    ));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let data = tmp.path().join("data");
    let key = tmp.path().join("keys/vault.key");
    let store = match &pg {
        None => StoreConfig::Sqlite,
        Some(schema) => StoreConfig::Postgres {
            url: schema.url.clone(),
            schema: schema.name.clone(),
        },
    };
    Vault::init(
        &data,
        store,
        InitKey::File(Some(key.clone())),
        dyn_clock.clone(),
    )
    .unwrap();
    // The pharmacy in Chicago, whatever zone this machine is in: at
    // 15:00 UTC it is 09:00 on TODAY there.
    let mut vault_config = rxvault_vault::config::VaultConfig::load(&data).unwrap();
    vault_config.time_zone = Some("America/Chicago".into());
    vault_config.save().unwrap();
    let vault = Arc::new(Vault::open(&data, Some(KeySource::File(key)), dyn_clock).unwrap());
    let input = tmp.path().join("synth");
    let config = rxvault_synth::Config {
        patients: 150,
        seed: 21,
        as_of: TODAY,
    };
    rxvault_synth::write_ndjson(&config, &input, &mut |_| {}).unwrap();
    vault
        .unaudited()
        .import(
            std::slice::from_ref(&input),
            &ImportOptions::default(),
            &mut (),
        )
        .unwrap();

    // One record id of each kind, from one patient with all of them.
    let mut ids = HashMap::new();
    let mut fill_today = String::new();
    let mut fill_other_day = String::new();
    for i in 0..config.patients {
        let r = rxvault_synth::patient_records(&config, i);
        if fill_today.is_empty()
            && let Some(f) = r.fills.iter().find(|f| {
                f.fill_date
                    .as_deref()
                    .is_some_and(|d| d.starts_with("2026-11-28"))
            })
        {
            fill_today = f.id.clone();
        }
        if ids.is_empty()
            && !r.coverages.is_empty()
            && !r.allergies.is_empty()
            && let Some(f) = r.fills.iter().find(|f| {
                f.fill_date
                    .as_deref()
                    .is_some_and(|d| !d.starts_with("2026-11-28"))
            })
        {
            fill_other_day = f.id.clone();
            ids.insert(RecordKind::Patient, r.patient.id.clone());
            ids.insert(RecordKind::Coverage, r.coverages[0].id.clone());
            ids.insert(RecordKind::Prescription, r.prescriptions[0].id.clone());
            ids.insert(RecordKind::Fill, f.id.clone());
            ids.insert(RecordKind::Allergy, r.allergies[0].id.clone());
        }
    }
    assert!(
        !ids.is_empty() && !fill_today.is_empty(),
        "the synthetic data has what the tests need"
    );

    let auth = Arc::new(
        Auth::new(
            vault.clone(),
            vault.auth_store().unwrap(),
            vault.clone(),
            vault.clock().clone(),
            auth_config,
        )
        .unwrap(),
    );
    let holder = auth.key_holder();
    let mut secrets = HashMap::new();
    let now = clock.now().unix_timestamp();
    for role in Role::ALL {
        let name = username(role);
        let secret = enrol(&auth, now, &name, role);
        secrets.insert(name, secret);
    }
    drop(add_and_redeem(&auth, "victim", Role::Technician));
    {
        let new = holder.add_person(UNASSIGNED, Role::Pharmacist).unwrap();
        assert!(matches!(new.role, RoleChange::Pending(_)));
        secrets.insert(
            UNASSIGNED.to_string(),
            enrol_redeemed(&auth, now, redeem(&auth, UNASSIGNED, new.enrolment.code())),
        );
    }
    holder.create_service_account("pms").unwrap();
    let issued = holder
        .issue_api_key(
            "pms",
            &[Scope::PatientsRead, Scope::PrescriptionsRead],
            &[],
            None,
        )
        .unwrap();
    // A chart-reading key works once approved.
    approve_as_single_operator(&auth, &issued.request.as_ref().unwrap().id);
    let service_key = issued.key.expose().to_string();
    drop(holder);

    Setup {
        tmp,
        pg,
        vault,
        auth,
        clock,
        secrets,
        service_key,
        ids,
        fill_today,
        fill_other_day,
        input,
    }
}

/// Approves access request `id` as the local operator in single-operator
/// mode, switched on for the moment if it was off (how the fixtures get
/// roles granted; the server then runs with the mode as it was).
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
/// [`PASSWORD`]. Returns the redeemed login, at its enrolment stage.
pub fn add_and_redeem(auth: &Auth, name: &str, role: Role) -> Session<Enrolling> {
    let new = auth.key_holder().add_person(name, role).unwrap();
    if let RoleChange::Pending(r) = &new.role {
        approve_as_single_operator(auth, &r.id);
    }
    redeem(auth, name, new.enrolment.code())
}

/// `name` redeems `code` with [`PASSWORD`]: the login, at its enrolment
/// stage.
pub fn redeem(auth: &Auth, name: &str, code: &str) -> Session<Enrolling> {
    let here = "127.0.0.1".parse().unwrap();
    match auth
        .redeem_enrolment(
            name,
            code,
            &Password::new(PASSWORD.into()),
            &rxvault_auth::Client::at(here),
        )
        .unwrap()
    {
        Login::Enrol(e) => e,
        Login::SecondFactor(_) => panic!("{name} is new: no second factor"),
    }
}

/// [`add_and_redeem`], then the person enrols TOTP, confirmed with the
/// previous time step's code (so a login in this step is no replay); the
/// login the enrolment completed is logged out. Returns the secret.
pub fn enrol(auth: &Auth, now: i64, name: &str, role: Role) -> TotpSecret {
    enrol_redeemed(auth, now, add_and_redeem(auth, name, role))
}

/// A redeemed login enrols TOTP (see [`enrol`]).
pub fn enrol_redeemed(auth: &Auth, now: i64, enrolling: Session<Enrolling>) -> TotpSecret {
    let enrolment = auth.start_totp_enrolment(&enrolling).unwrap();
    let secret = TotpSecret::from_base32(&enrolment.secret_base32()).unwrap();
    let (session, _) = auth
        .finish_totp_enrolment(enrolling, secret.code_at(now - 30).as_str())
        .unwrap();
    auth.logout(session.principal()).unwrap();
    secret
}
