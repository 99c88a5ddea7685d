//! `rxvault bench http`: authenticated patient reads over HTTPS, against a
//! baseline of unauthenticated health checks over the same connections, and
//! the login rate. Server and load client run in this one process on the
//! machine's cores (as a wrk run on the same host would).

use anyhow::{Context, Result};
use clap::Args;
use rxvault_auth::{Auth, AuthConfig, Client, Role};
use rxvault_crypto::Password;
use rxvault_crypto::otp::TotpSecret;
use rxvault_model::{Clock, SystemClock};
use rxvault_server::tls::TlsSource;
use rxvault_server::{ServeOptions, Server};
use rxvault_vault::import::ImportOptions;
use rxvault_vault::keys::InitKey;
use rxvault_vault::{KeySource, StoreConfig, Vault};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Flags of `bench http`.
#[derive(Args, Debug)]
pub struct HttpArgs {
    /// Patients in the vault.
    #[arg(long, default_value_t = 2000)]
    patients: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

const PASSWORD: &str = "violet harbor lantern 1927";

struct Figures {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// CPU time the process (server and client) used, if known.
    cpu: Option<Duration>,
}

/// CPU time this process has used (user + system), from `/proc/self/stat`
/// (Linux; `None` elsewhere). Unlike requests per second it hardly moves
/// when a shared machine is busy with something else.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, in parentheses):
    // utime and stime are the 12th and 13th, in clock ticks (USER_HZ, 100
    // on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} requests, {} errors, {:.1} s)",
            self.requests as f64 / self.elapsed.as_secs_f64(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.requests,
            self.errors,
            self.elapsed.as_secs_f64()
        )?;
        if let Some(cpu) = self.cpu {
            write!(
                f,
                "; CPU {:.0} us per request",
                cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
            )?;
        }
        Ok(())
    }
}

/// Whether a request succeeded, its whole body read (as a real client
/// would, so the connection is reused as it would be).
async fn ok(response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// Runs `connections` loops of `request` for `seconds`.
async fn load<F, Fut>(connections: usize, seconds: u64, request: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let cpu_before = process_cpu();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let request = request.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if request(c, n).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.expect("load task");
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    Figures {
        requests: all.len() as u64,
        errors,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        cpu,
    }
}

pub fn run(a: HttpArgs) -> Result<ExitCode> {
    let tmp = tempfile::Builder::new()
        .prefix("rxvault-bench-http")
        .tempdir()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let data = tmp.path().join("vault");
    let key = tmp.path().join("bench.key");
    Vault::init(
        &data,
        StoreConfig::Sqlite,
        InitKey::File(Some(key.clone())),
        clock.clone(),
    )?;
    let vault = Arc::new(Vault::open(
        &data,
        Some(KeySource::File(key)),
        clock.clone(),
    )?);
    let config = rxvault_synth::Config {
        patients: a.patients,
        seed: 5,
        as_of: vault.today(),
    };
    let input = tmp.path().join("input");
    rxvault_synth::write_ndjson(&config, &input, &mut |_| {})?;
    vault.import_for(
        &rxvault_vault::access::Requester::local(),
        std::slice::from_ref(&input),
        &ImportOptions::default(),
        &mut (),
    )?;
    let ids: Arc<Vec<String>> = Arc::new(
        (0..a.patients)
            .map(|i| rxvault_synth::patient(&config, i).id)
            .collect(),
    );

    let auth = Arc::new(Auth::new(
        vault.clone(),
        vault.auth_store()?,
        vault.clone(),
        vault.clock().clone(),
        AuthConfig::default(),
    )?);
    // People are enrolled the way people are (a code, an approval, their
    // own password); on this throwaway vault the bench is the one
    // operator.
    auth.key_holder().set_single_operator(true)?;
    let secret = enrol(&auth, "bench", Role::Pharmacist, true)?.context("TOTP enrolled")?;
    for i in 0..a.connections {
        enrol(&auth, &format!("login{i}"), Role::Technician, false)?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse()?,
            tls: TlsSource::SelfSigned,
            limits: Default::default(),
            base_url: None,
        };
        let server = Server::bind(vault.clone(), auth.clone(), &options).await?;
        let base = format!("https://localhost:{}", server.local_addr.port());
        let tls = rxvault_crypto::tls::client_config_trusting(&server.cert_pem)?;
        tokio::spawn(server.run(std::future::pending()));
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .http1_only()
            .pool_max_idle_per_host(a.connections)
            .build()?;

        let step: Value = client
            .post(format!("{base}/api/v1/sessions"))
            .json(&json!({"username": "bench", "password": PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        let code = secret.code_at(clock.now().unix_timestamp());
        let session: Value = client
            .post(format!("{base}/api/v1/sessions/totp"))
            .json(&json!({"pending_token": step["pending_token"], "code": code.as_str()}))
            .send()
            .await?
            .json()
            .await?;
        let token: Arc<str> = session["token"].as_str().context("no session token")?.into();

        outln!(
            "rxvault bench http: {} patients, {} connections, {} s per figure, {} cores, server and client in one process",
            a.patients,
            a.connections,
            a.seconds,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        // Warm up (TLS handshakes, pools, caches).
        let warm = {
            let (client, base) = (client.clone(), base.clone());
            load(a.connections, 2, move |_, _| {
                let (client, base) = (client.clone(), base.clone());
                async move { ok(client.get(format!("{base}/api/v1/health")).send().await).await }
            })
            .await
        };
        let _ = warm;
        let health = {
            let (client, base) = (client.clone(), base.clone());
            load(a.connections, a.seconds, move |_, _| {
                let (client, base) = (client.clone(), base.clone());
                async move { ok(client.get(format!("{base}/api/v1/health")).send().await).await }
            })
            .await
        };
        outln!("baseline  GET /api/v1/health (no auth, no data):     {health}");
        let audit_before = vault.audit()?.reader().size()?;
        let reads = {
            let (client, base, token, ids) = (client.clone(), base.clone(), token.clone(), ids.clone());
            load(a.connections, a.seconds, move |c, n| {
                let (client, base, token) = (client.clone(), base.clone(), token.clone());
                let id = ids[((c as u64 * 7919 + n * 31) % ids.len() as u64) as usize].clone();
                async move {
                    ok(client
                        .get(format!("{base}/fhir/Patient/{id}"))
                        .bearer_auth(&*token)
                        .send()
                        .await)
                    .await
                }
            })
            .await
        };
        let audited = vault.audit()?.reader().size()? - audit_before;
        outln!("reads     GET /fhir/Patient/{{id}} (session, decrypt, audit): {reads}");
        outln!("          {audited} audit entries committed for {} reads", reads.requests);
        let logins = {
            let (client, base) = (client.clone(), base.clone());
            load(a.connections.min(8), a.seconds, move |c, _| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    ok(client
                        .post(format!("{base}/api/v1/sessions"))
                        .json(&json!({"username": format!("login{c}"), "password": PASSWORD}))
                        .send()
                        .await)
                    .await
                }
            })
            .await
        };
        outln!("logins    POST /api/v1/sessions (Argon2id password step):   {logins}");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Creates `name` with `role` through its enrolment code (approving the
/// role as the single operator) and sets the bench password; with `totp`,
/// enrols an authenticator and returns it. The enrolment is confirmed with
/// the previous time step's code, so a login in this step is no replay.
fn enrol(auth: &Auth, name: &str, role: Role, totp: bool) -> Result<Option<TotpSecret>> {
    let holder = auth.key_holder();
    let new = holder.add_person(name, role)?;
    if let rxvault_auth::RoleChange::Pending(r) = &new.role {
        holder.approver().approve(&r.id)?;
    }
    let here = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let login = auth.redeem_enrolment(
        name,
        new.enrolment.code(),
        &Password::new(PASSWORD.into()),
        &Client::at(here),
    )?;
    let rxvault_auth::Login::Enrol(enrolling) = login else {
        anyhow::bail!("a new person has no second factor");
    };
    if !totp {
        return Ok(None);
    }
    let enrolment = auth.start_totp_enrolment(&enrolling)?;
    let secret = TotpSecret::from_base32(&enrolment.secret_base32())?;
    let previous = SystemClock.now().unix_timestamp() - 30;
    let (session, _) = auth.finish_totp_enrolment(enrolling, &secret.code_at(previous))?;
    auth.logout(session.principal())?;
    Ok(Some(secret))
}
