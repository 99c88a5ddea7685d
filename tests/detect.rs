//! Issue 10 end to end, through real processes: a vault with synthetic
//! patients and honeytokens, `rxvault serve` with detection wired in, a
//! webhook receiver that is down at first, and a pharmacist's stolen
//! session scraping charts over HTTPS.
//!
//! Shown: the scrape is stopped by the detector's response (the account is
//! disabled, every further request refused) before more than the floor plus
//! a few patients are read; the alert reaches the webhook, signed, once,
//! after the receiver comes back; a server restart neither loses nor
//! repeats it; `rxvault alerts` and `/api/v1/alerts` show it; the response
//! is in the audit log as the detector's act; a bad rules file stops the
//! server with the line named.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_rxvault");
const PASSWORD: &str = "violet harbor lantern 1927";
const SECRET: &str = "a webhook secret of some length";

struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
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

    fn vault_args(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--data".into(), self.path("data").display().to_string()]);
        v.extend([
            "--key-file".into(),
            self.path("vault.key").display().to_string(),
        ]);
        v
    }

    fn run(&self, args: &[&str]) -> String {
        let v = self.vault_args(args);
        let out = self
            .command(&v.iter().map(String::as_str).collect::<Vec<_>>())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rxvault {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A webhook receiver: answers 500 until `up`, then 204; records what
/// it was sent.
#[derive(Default)]
struct Receiver {
    up: bool,
    received: Vec<(String, String, Value)>,
    refused: u32,
}

fn receiver() -> (u16, Arc<Mutex<Receiver>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(Receiver::default()));
    let s = state.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                headers.push(line.trim().to_ascii_lowercase());
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find_map(|h| h.strip_prefix(&format!("{name}: ")).map(str::to_string))
                    .unwrap_or_default()
            };
            let len: usize = header("content-length").parse().unwrap_or(0);
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let mut st = s.lock().unwrap();
            let status = if st.up {
                st.received.push((
                    header("x-rxvault-signature"),
                    header("x-rxvault-delivery"),
                    serde_json::from_slice(&body).unwrap(),
                ));
                // Kept raw for the signature check.
                st.received.last_mut().unwrap().2["_raw"] =
                    String::from_utf8(body.clone()).unwrap().into();
                "204 No Content"
            } else {
                st.refused += 1;
                "500 Internal Server Error"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, state)
}

struct Server {
    child: std::process::Child,
    base: String,
    client: reqwest::Client,
}

impl Server {
    fn start(s: &Scratch) -> Server {
        let v = s.vault_args(&["serve", "--listen", "127.0.0.1:0"]);
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
        let rest = line
            .strip_prefix("rxvault listening on https://")
            .unwrap_or_else(|| {
                panic!(
                    "the server started: {line:?} {}",
                    std::fs::read_to_string(s.path("serve.log")).unwrap_or_default()
                )
            });
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
            base: format!("https://localhost:{port}"),
            client,
        }
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, s: &Scratch, name: &str) -> String {
        use rxvault_model::Clock;
        let step: Value = self
            .client
            .post(format!("{}/api/v1/sessions", self.base))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = std::fs::read_to_string(s.path(&format!("{name}.totp"))).unwrap();
        let totp = rxvault_crypto::TotpSecret::from_base32(secret.trim()).unwrap();
        let now = rxvault_model::SystemClock.now().unix_timestamp();
        let session: Value = self
            .client
            .post(format!("{}/api/v1/sessions/totp", self.base))
            .header("x-rxvault-host", "ws-3")
            .json(&json!({"pending_token": step["pending_token"], "code": totp.code_at(now).as_str()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        session["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{session}"))
            .to_string()
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

fn patient_ids(s: &Scratch) -> Vec<String> {
    std::fs::read_to_string(s.path("synth/Patient.ndjson"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_scrape_is_stopped_alerted_once_and_survives_a_restart_on_sqlite() {
    runtime().block_on(scrape(None));
}

#[test]
fn a_scrape_is_stopped_alerted_once_and_survives_a_restart_on_postgres() {
    // The schema is made and dropped off the runtime (the PostgreSQL client
    // blocks).
    let Some(schema) = rxvault_testkit::pg::Schema::new("detect") else {
        return;
    };
    runtime().block_on(scrape(Some(&schema)));
}

async fn scrape(pg: Option<&rxvault_testkit::pg::Schema>) {
    let s = Scratch {
        tmp: tempfile::tempdir().unwrap(),
    };
    let mut init = s.vault_args(&["init"]);
    if let Some(schema) = pg {
        init.extend([
            "--postgres".into(),
            schema.url.clone(),
            "--pg-schema".into(),
            schema.name.clone(),
        ]);
    }
    assert!(
        s.command(&init.iter().map(String::as_str).collect::<Vec<_>>())
            .status()
            .unwrap()
            .success()
    );
    let out = s
        .command(&[
            "synth",
            "--patients",
            "200",
            "--seed",
            "7",
            "--out",
            s.path("synth").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    s.run(&["import", s.path("synth").to_str().unwrap()]);
    s.run(&["detect", "honeytokens", "add", "--count", "3"]);
    assert_eq!(s.run(&["detect", "honeytokens", "count"]).trim(), "3");
    for (name, role) in [("pat", "pharmacist"), ("privacy", "privacy-officer")] {
        common::enrol(
            &|a| s.command(a),
            &|a| s.vault_args(a),
            s.tmp.path(),
            name,
            role,
            PASSWORD,
        );
    }
    let (port, hook) = receiver();
    std::fs::write(s.path("hook.secret"), SECRET).unwrap();
    // A bad rules file: the server refuses to start, naming the line.
    std::fs::write(s.path("data/detect.toml"), "[volume_hour]\nflor = 50\n").unwrap();
    let v = s.vault_args(&["serve", "--listen", "127.0.0.1:0"]);
    let out = s
        .command(&v.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("detect.toml") && err.contains("line 2"),
        "{err}"
    );
    // The real rules: a low hourly floor (the vault is small), a webhook.
    std::fs::write(
        s.path("data/detect.toml"),
        format!(
            "[volume_hour]\nfloor = 40\n\n[[sinks.webhook]]\nname = \"soc\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = \"{}\"\n",
            s.path("hook.secret").display()
        ),
    )
    .unwrap();
    let out = s
        .command(&[
            "detect",
            "rules",
            "--data",
            s.path("data").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let rules = String::from_utf8(out.stdout).unwrap();
    assert!(rules.contains("floor = 40"), "{rules}");

    let server = Server::start(&s);
    let token = server.login(&s, "pat").await;
    let ids = patient_ids(&s);
    let started = Instant::now();
    let mut read = 0;
    let mut refused_at = None;
    for id in &ids {
        let (status, _) = server.get(&format!("/api/v1/patients/{id}"), &token).await;
        if status == 200 {
            read += 1;
        } else {
            refused_at = Some((status, started.elapsed()));
            break;
        }
    }
    let (status, took) = refused_at.expect("the scrape was stopped");
    assert_eq!(status, 401, "the session is gone");
    assert!(
        (41..=41 + 20).contains(&read),
        "stopped after {read} patients (floor 40)"
    );
    eprintln!("scrape stopped after {read} patients, {took:?}");
    // The account is disabled: a fresh login fails too.
    let (st, _) = server.get("/api/v1/patients", &token).await;
    assert_eq!(st, 401);

    // The receiver is down: deliveries are refused and retried.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.lock().unwrap().refused == 0 {
        assert!(Instant::now() < deadline, "the webhook was never tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Restart the server while the delivery is owed.
    server.stop();
    hook.lock().unwrap().up = true;
    let server = Server::start(&s);
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.lock().unwrap().received.is_empty() {
        assert!(Instant::now() < deadline, "the alert was never delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    {
        let h = hook.lock().unwrap();
        assert_eq!(h.received.len(), 1, "delivered once: {:?}", h.received);
        let (sig, delivery, notice) = &h.received[0];
        assert_eq!(notice["rule"], "volume_hour");
        assert_eq!(notice["principal"], "user:pat");
        assert!(delivery.starts_with(notice["id"].as_str().unwrap()));
        let raw = notice["_raw"].as_str().unwrap();
        let expected = hex::encode(rxvault_crypto::hmac_sha256(
            SECRET.as_bytes(),
            raw.as_bytes(),
        ));
        assert_eq!(sig, &format!("sha256={expected}"));
        // No PHI: no patient id appears in what was sent.
        assert!(ids.iter().all(|id| !raw.contains(id.as_str())));
    }
    // The privacy officer sees it over HTTPS; the command line too.
    let officer = server.login(&s, "privacy").await;
    let (st, list) = server.get("/api/v1/alerts", &officer).await;
    assert_eq!(st, 200, "{list}");
    let alerts = list.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "one alert for the scrape: {list}");
    assert_eq!(alerts[0]["rule"], "volume_hour");
    assert!(alerts[0]["responses"][0]["ok"].as_bool().unwrap(), "{list}");
    let (st, _) = server.get("/api/v1/alerts", &token).await;
    assert_eq!(st, 401);
    // Another process writes to the same log: a plaintext export from the
    // command line holds the honeytokens, and the server's detector, which
    // follows entries of other processes too, raises it.
    let out = s.path("export");
    s.run(&[
        "export",
        "fhir",
        "--out",
        out.to_str().unwrap(),
        "--plaintext",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let rules = loop {
        let (_, list) = server.get("/api/v1/alerts", &officer).await;
        let rules: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["rule"].as_str().unwrap().to_string())
            .collect();
        if rules.len() >= 3 || Instant::now() > deadline {
            break rules;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for rule in ["honeytoken", "plaintext_export", "volume_hour"] {
        assert!(rules.iter().any(|r| r == rule), "{rule} in {rules:?}");
    }
    server.stop();
    let listed = s.run(&["alerts", "list"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let id = listed
        .lines()
        .find(|l| l.contains("volume_hour"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    s.run(&["alerts", "ack", &id, "--note", "looking"]);
    let out = s
        .command(
            &s.vault_args(&["alerts", "resolve", &id])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .output()
        .unwrap();
    assert!(!out.status.success(), "a resolution needs a note");
    s.run(&[
        "alerts",
        "resolve",
        &id,
        "--note",
        "pat's laptop was stolen; password reset",
    ]);
    let shown: Value = serde_json::from_str(&s.run(&["alerts", "show", &id])).unwrap();
    assert_eq!(shown["status"], "resolved");
    assert_eq!(shown["notes"].as_array().unwrap().len(), 2);
    // The response is in the audit log as the detector's act.
    let found = s.run(&["audit", "query", "--action", "user-admin", "--json"]);
    assert!(
        found
            .lines()
            .any(|l| l.contains("rxvault-detect") && l.contains("disable")),
        "{found}"
    );
}
