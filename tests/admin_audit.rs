//! Issue 8, item 2: every administrative act is audited by the library that
//! does it, so the same act gives the same typed entry whether the command
//! line or HTTPS did it, and a refused act is recorded as refused.
//!
//! Two identical vaults (SQLite, then PostgreSQL); the same acts, in the
//! same order, on one through the real `rxvault` binary (a process per
//! command, as the key holder) and on the other through a real `rxvault
//! serve` process over HTTPS (as an administrator and a privacy officer
//! signed in with password and TOTP). Then the entries the acts appended
//! are compared on what the act was: the action with every detail (its
//! kind, operation, role, target, purpose), the outcome, and the patients
//! and records named. Not compared, because they legitimately differ: the
//! actor (the local operating-system user, or the signed-in person), the
//! session, source address and host (the command line has none), the
//! index and time, an access request's (random) id and an enrolment code's
//! expiry. Acts only one side has (break-glass and its review over
//! HTTPS, `audit verify` on the command line) are checked for their typed
//! entries on that side.

use rxvault_audit::{Action, Outcome};
use rxvault_model::Clock;
use rxvault_testkit::pg::Schema;
use rxvault_vault::{KeySource, Vault};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_rxvault");
const PASSWORD: &str = "violet harbor lantern 1927";

/// A vault of its own (data directory and key file in a temporary folder).
struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new(pg: Option<&Schema>) -> Self {
        let s = Scratch {
            tmp: tempfile::tempdir().unwrap(),
        };
        let mut args = vec![
            "init".to_string(),
            "--data".into(),
            s.data().display().to_string(),
            "--key-file".into(),
            s.key().display().to_string(),
        ];
        if let Some(schema) = pg {
            args.extend([
                "--postgres".into(),
                schema.url.clone(),
                "--pg-schema".into(),
                schema.name.clone(),
            ]);
        }
        let out = s.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn data(&self) -> PathBuf {
        self.path("data")
    }

    fn key(&self) -> PathBuf {
        self.path("keys/vault.key")
    }

    fn command(&self, args: &[&str]) -> Command {
        std::fs::create_dir_all(self.path("tmp")).unwrap();
        let mut c = Command::new(BIN);
        c.args(args)
            .env("RXVAULT_KEY_DIR", self.path("default-keys"))
            .env("TMPDIR", self.path("tmp"))
            .env_remove("RXVAULT_DATA")
            .env_remove("RXVAULT_KEY_FILE")
            .env_remove("RXVAULT_PASSPHRASE_FILE");
        c
    }

    fn cmd(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `ARGS --data DATA --key-file KEY`.
    fn vault_args(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--data".into(), self.data().display().to_string()]);
        v.extend(["--key-file".into(), self.key().display().to_string()]);
        v
    }

    /// `rxvault ARGS --data DATA --key-file KEY`; whether it succeeded.
    fn vault(&self, args: &[&str]) -> bool {
        let v = self.vault_args(args);
        let out = self.cmd(&v.iter().map(String::as_str).collect::<Vec<_>>());
        if !out.status.success() {
            eprintln!("rxvault {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        out.status.success()
    }

    /// The same people in every vault, enrolled as people are (a code,
    /// an approval, their own password and TOTP): an administrator and a
    /// privacy officer; a technician added but not yet enrolled.
    fn people(&self) {
        for (name, role) in [("boss", "administrator"), ("privacy", "privacy-officer")] {
            common::enrol(
                &|args| self.command(args),
                &|args| self.vault_args(args),
                self.tmp.path(),
                name,
                role,
                PASSWORD,
            );
        }
        assert!(self.vault(&["user", "add", "tess", "--role", "technician"]));
    }

    fn open(&self) -> Vault {
        Vault::open(
            &self.data(),
            Some(KeySource::File(self.key())),
            Arc::new(rxvault_model::SystemClock),
        )
        .unwrap()
    }

    fn audit_size(&self) -> u64 {
        self.open().audit().unwrap().reader().size().unwrap()
    }

    fn entries_since(&self, mark: u64) -> Vec<rxvault_audit::Entry> {
        let vault = self.open();
        let reader = vault.audit().unwrap().reader();
        reader
            .entries(mark, reader.size().unwrap())
            .unwrap()
            .into_iter()
            .map(|e| e.entry)
            .collect()
    }
}

/// One act that both doors offer.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// A person: name, role (their enrolment code is the act's answer).
    AddUser(&'static str, &'static str),
    Role(&'static str, &'static str),
    Disable(&'static str),
    Enable(&'static str),
    ResetMfa(&'static str),
    RevokeUser(&'static str),
    RevokeHost(&'static str),
    RevokeSession(&'static str),
    /// An audit query by action kind.
    Query(&'static str),
}

use Act::*;

/// Every act, refusals included; what each should end as.
const ACTS: &[(Act, Outcome)] = &[
    (AddUser("pat", "pharmacist"), Outcome::Success),
    (AddUser("pat", "pharmacist"), Outcome::Denied), // taken
    (AddUser("eve", "superuser"), Outcome::Denied),  // no such role
    (Role("pat", "billing"), Outcome::Success),
    (Role("pat", "superuser"), Outcome::Denied),
    (Role("ghost", "billing"), Outcome::Denied),
    (Disable("pat"), Outcome::Success),
    (Disable("ghost"), Outcome::Denied),
    (Enable("pat"), Outcome::Success),
    (ResetMfa("tess"), Outcome::Success),
    (ResetMfa("ghost"), Outcome::Denied),
    (RevokeUser("tess"), Outcome::Success),
    (RevokeUser("ghost"), Outcome::Denied),
    (RevokeHost("ws-9"), Outcome::Success),
    (
        RevokeSession("0123456789abcdef0123456789abcdef"),
        Outcome::Success,
    ),
    (Query("user-admin"), Outcome::Success),
];

/// Does `act` with the command line; whether it succeeded.
fn by_cli(s: &Scratch, act: Act) -> bool {
    match act {
        AddUser(name, role) => s.vault(&["user", "add", name, "--role", role]),
        Role(name, role) => s.vault(&["user", "role", name, role]),
        Disable(name) => s.vault(&["user", "disable", name]),
        Enable(name) => s.vault(&["user", "enable", name]),
        ResetMfa(name) => s.vault(&["user", "reset-mfa", name]),
        RevokeUser(name) => s.vault(&["session", "revoke", "--user", name]),
        RevokeHost(host) => s.vault(&["session", "revoke", "--host", host]),
        RevokeSession(id) => s.vault(&["session", "revoke", "--id", id]),
        Query(action) => s.vault(&["audit", "query", "--action", action, "--json"]),
    }
}

/// A running `rxvault serve` and a client that trusts its certificate.
struct Server {
    child: std::process::Child,
    log: PathBuf,
    base: String,
    client: reqwest::Client,
}

impl Server {
    fn start(s: &Scratch) -> Server {
        let mut v = vec!["serve".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        v.extend(["--data".into(), s.data().display().to_string()]);
        v.extend(["--key-file".into(), s.key().display().to_string()]);
        let mut child = s
            .command(&v.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(s.path("serve.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "rxvault listening on https://127.0.0.1:PORT (certificate: PATH)"
        let rest = line
            .strip_prefix("rxvault listening on https://")
            .unwrap_or_else(|| panic!("the server started: {line:?}"));
        let (addr, cert) = rest.split_once(" (certificate: ").unwrap();
        let port = addr.rsplit_once(':').unwrap().1;
        let pem = std::fs::read_to_string(cert.trim().trim_end_matches(')')).unwrap();
        let tls = rxvault_crypto::tls::client_config_trusting(&pem).unwrap();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()
            .unwrap();
        Server {
            child,
            log: s.path("serve.log"),
            base: format!("https://localhost:{port}"),
            client,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Password and TOTP: the session token.
    async fn login(&self, s: &Scratch, name: &str) -> String {
        let (status, step) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/sessions",
                None,
                Some(json!({"username": name, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 200, "{step}");
        let secret = std::fs::read_to_string(s.path(&format!("{name}.totp"))).unwrap();
        let totp = rxvault_crypto::TotpSecret::from_base32(secret.trim()).unwrap();
        let now = rxvault_model::SystemClock.now().unix_timestamp();
        let (status, session) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/sessions/totp",
                None,
                Some(json!({"pending_token": step["pending_token"], "code": totp.code_at(now).as_str()})),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        session["token"].as_str().unwrap().to_string()
    }

    /// Stops the server (SIGTERM: it signs a closing checkpoint).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{status}: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

/// Does `act` over HTTPS (as the administrator; an audit query as the
/// privacy officer); whether it succeeded.
async fn by_https(server: &Server, admin: &str, officer: &str, act: Act) -> bool {
    use reqwest::Method;
    let (status, _) = match act {
        AddUser(name, role) => {
            server
                .send(
                    Method::POST,
                    "/api/v1/users",
                    Some(admin),
                    Some(json!({"username": name, "role": role})),
                )
                .await
        }
        Role(name, role) => {
            server
                .send(
                    Method::PATCH,
                    &format!("/api/v1/users/{name}"),
                    Some(admin),
                    Some(json!({"role": role})),
                )
                .await
        }
        Disable(name) | Enable(name) => {
            server
                .send(
                    Method::PATCH,
                    &format!("/api/v1/users/{name}"),
                    Some(admin),
                    Some(json!({"disabled": matches!(act, Disable(_))})),
                )
                .await
        }
        ResetMfa(name) => {
            server
                .send(
                    Method::DELETE,
                    &format!("/api/v1/users/{name}/mfa"),
                    Some(admin),
                    None,
                )
                .await
        }
        RevokeUser(name) => {
            server
                .send(
                    Method::POST,
                    "/api/v1/sessions/revoke",
                    Some(admin),
                    Some(json!({"user": name})),
                )
                .await
        }
        RevokeHost(host) => {
            server
                .send(
                    Method::POST,
                    "/api/v1/sessions/revoke",
                    Some(admin),
                    Some(json!({"host": host})),
                )
                .await
        }
        RevokeSession(id) => {
            server
                .send(
                    Method::POST,
                    "/api/v1/sessions/revoke",
                    Some(admin),
                    Some(json!({"session": id})),
                )
                .await
        }
        Query(action) => {
            server
                .send(
                    Method::GET,
                    &format!("/api/v1/audit?action={action}"),
                    Some(officer),
                    None,
                )
                .await
        }
    };
    (200..300).contains(&status)
}

/// What an entry says about the act: every detail of the action, the
/// outcome, the patients and records named.
/// An access request's id (random) and an enrolment code's expiry (from
/// the time of the act) legitimately differ between the two vaults and are
/// left out.
fn act_of(e: &rxvault_audit::Entry) -> (Value, Outcome, Vec<String>, Vec<String>) {
    let mut action = serde_json::to_value(&e.action).unwrap();
    if let Some(details) = action["details"].as_object_mut() {
        details.remove("request");
        details.remove("expires_ms");
    }
    (
        action,
        e.outcome,
        e.patients.iter().map(ToString::to_string).collect(),
        e.resources.iter().map(ToString::to_string).collect(),
    )
}

/// The administrative and audit-use entries (signing in to HTTPS adds
/// sign-in entries the command line has no use for).
fn administrative(entries: &[rxvault_audit::Entry]) -> Vec<&rxvault_audit::Entry> {
    entries
        .iter()
        .filter(|e| {
            matches!(
                e.action,
                Action::UserAdmin { .. }
                    | Action::RoleAdmin { .. }
                    | Action::AccessRequested { .. }
                    | Action::AccessApproved { .. }
                    | Action::AccessRefused { .. }
                    | Action::EnrolmentCodeIssued { .. }
                    | Action::AuditLogUsed { .. }
            )
        })
        .collect()
}

fn same_act_same_entry(cli_pg: Option<&Schema>, https_pg: Option<&Schema>) {
    let cli = Scratch::new(cli_pg);
    let web = Scratch::new(https_pg);
    cli.people();
    web.people();

    // The command line, as the key holder.
    let mark = cli.audit_size();
    for (act, outcome) in ACTS {
        assert_eq!(
            by_cli(&cli, *act),
            *outcome == Outcome::Success,
            "rxvault {act:?}"
        );
    }
    // A malformed request reads nothing and is refused before any use: no
    // entry (as over HTTPS).
    assert!(!cli.vault(&["audit", "query", "--action", "no-such-kind"]));
    // Verifying the log is a use of it too (command line only).
    assert!(cli.vault(&["audit", "verify"]));
    let cli_entries = cli.entries_since(mark);

    // HTTPS, as the signed-in administrator and privacy officer.
    let mark = web.audit_size();
    let server = Server::start(&web);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let grant = runtime.block_on(async {
        let admin = server.login(&web, "boss").await;
        let officer = server.login(&web, "privacy").await;
        for (act, outcome) in ACTS {
            assert_eq!(
                by_https(&server, &admin, &officer, *act).await,
                *outcome == Outcome::Success,
                "HTTPS {act:?}"
            );
        }
        let (status, _) = server
            .send(
                reqwest::Method::GET,
                "/api/v1/audit?action=no-such-kind",
                Some(&officer),
                None,
            )
            .await;
        assert_eq!(status, 400);
        // Break-glass (HTTPS only): a reason too short is refused, a good
        // one granted; the privacy officer lists and reviews the grant
        // (twice: the second is refused, it was reviewed already).
        use reqwest::Method;
        let (status, _) = server
            .send(
                Method::POST,
                "/api/v1/break-glass",
                Some(&admin),
                Some(json!({"reason": "x"})),
            )
            .await;
        assert_eq!(status, 400);
        let (status, grant) = server
            .send(
                Method::POST,
                "/api/v1/break-glass",
                Some(&admin),
                Some(json!({"reason": "ER admission, patient unconscious"})),
            )
            .await;
        assert_eq!(status, 201, "{grant}");
        let grant = grant["grant_id"].as_str().unwrap().to_string();
        let (status, list) = server
            .send(Method::GET, "/api/v1/break-glass", Some(&officer), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(list.as_array().unwrap().len(), 1);
        for want in [204, 404] {
            let (status, _) = server
                .send(
                    Method::POST,
                    &format!("/api/v1/break-glass/{grant}/review"),
                    Some(&officer),
                    None,
                )
                .await;
            assert_eq!(status, want);
        }
        grant
    });
    server.stop();
    let web_entries = web.entries_since(mark);

    // The same acts, the same entries.
    let cli_acts: Vec<_> = administrative(&cli_entries)
        .into_iter()
        .map(act_of)
        .collect();
    let web_admin = administrative(&web_entries);
    let web_acts: Vec<_> = web_admin.iter().map(|e| act_of(e)).collect();
    let (cli_verify, cli_acts) = cli_acts.split_last().unwrap();
    let (web_acts, web_review) = web_acts.split_at(cli_acts.len().min(web_acts.len()));
    assert_eq!(
        cli_acts, web_acts,
        "the command line and HTTPS record the same"
    );
    // And they are the entries the acts should give: typed, with their real
    // outcome (the refusals as denied).
    let want: Vec<(Value, Outcome)> = vec![
        (
            json!({"type": "user-admin", "details": {"operation": "create (pharmacist)", "target": "pat"}}),
            Outcome::Success,
        ),
        // A chart-reading role waits for a second person; the person gets
        // an enrolment code, never a password chosen for them.
        (
            json!({"type": "access-requested", "details": {"grant": {"type": "role", "role": "pharmacist", "previous": null}, "target": "pat"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "enrolment-code-issued", "details": {"target": "pat"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "create (pharmacist)", "target": "pat"}}),
            Outcome::Denied,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "create (superuser)", "target": "eve"}}),
            Outcome::Denied,
        ),
        // Raising pat (no role yet) to billing: a request too.
        (
            json!({"type": "access-requested", "details": {"grant": {"type": "role", "role": "billing", "previous": null}, "target": "pat"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "role-admin", "details": {"operation": "set", "role": "superuser", "target": "pat"}}),
            Outcome::Denied,
        ),
        (
            json!({"type": "role-admin", "details": {"operation": "set", "role": "billing", "target": "ghost"}}),
            Outcome::Denied,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "disable", "target": "pat"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "disable", "target": "ghost"}}),
            Outcome::Denied,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "enable", "target": "pat"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "reset-mfa", "target": "tess"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "reset-mfa", "target": "ghost"}}),
            Outcome::Denied,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "revoke-sessions", "target": "tess"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "revoke-sessions", "target": "ghost"}}),
            Outcome::Denied,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "revoke-host-sessions", "target": "ws-9"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "user-admin", "details": {"operation": "revoke-session", "target": "0123456789abcdef0123456789abcdef"}}),
            Outcome::Success,
        ),
        (
            json!({"type": "audit-log-used", "details": {"purpose": "query"}}),
            Outcome::Success,
        ),
    ];
    assert_eq!(
        cli_acts
            .iter()
            .map(|(a, o, _, _)| (a.clone(), *o))
            .collect::<Vec<_>>(),
        want
    );
    // Who did it is who did it: the local operator, or the person.
    assert!(
        administrative(&cli_entries)
            .iter()
            .all(|e| e.actor.kind == rxvault_audit::ActorKind::Local)
    );
    assert!(web_admin[..ACTS.len()].iter().all(|e| e.actor.id
        == if matches!(e.action, Action::AuditLogUsed { .. }) {
            "privacy"
        } else {
            "boss"
        }));

    // Command line only: the verification, recorded after it ran, as a
    // success (the log verified).
    assert_eq!(
        (cli_verify.0.clone(), cli_verify.1),
        (
            json!({"type": "audit-log-used", "details": {"purpose": "verify"}}),
            Outcome::Success
        )
    );
    // HTTPS only: the review list and the reviews.
    assert_eq!(
        web_review
            .iter()
            .map(|(a, o, _, _)| (a.clone(), *o))
            .collect::<Vec<_>>(),
        vec![(
            json!({"type": "audit-log-used", "details": {"purpose": "break-glass-review-list"}}),
            Outcome::Success
        )]
    );
    let glass: Vec<(Value, Outcome)> = web_entries
        .iter()
        .filter(|e| {
            matches!(
                e.action,
                Action::BreakGlass { .. } | Action::BreakGlassReviewed { .. }
            )
        })
        .map(|e| (serde_json::to_value(&e.action).unwrap(), e.outcome))
        .collect();
    assert_eq!(
        glass,
        vec![
            (
                json!({"type": "break-glass", "details": {"reason": "x"}}),
                Outcome::Denied
            ),
            (
                json!({"type": "break-glass", "details": {"reason": "ER admission, patient unconscious"}}),
                Outcome::Success
            ),
            (
                json!({"type": "break-glass-reviewed", "details": {"grant": grant}}),
                Outcome::Success
            ),
            (
                json!({"type": "break-glass-reviewed", "details": {"grant": grant}}),
                Outcome::Denied
            ),
        ]
    );
}

#[test]
fn the_same_act_gives_the_same_entry_from_the_command_line_and_https_on_sqlite() {
    same_act_same_entry(None, None);
}

#[test]
fn the_same_act_gives_the_same_entry_from_the_command_line_and_https_on_postgres() {
    let (Some(a), Some(b)) = (Schema::new("parity"), Schema::new("parity")) else {
        return;
    };
    same_act_same_entry(Some(&a), Some(&b));
}
