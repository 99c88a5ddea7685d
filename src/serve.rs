//! `rxvault serve`: the HTTPS server.

use anyhow::{Context, Result};
use clap::Args;
use rxvault_auth::{Auth, AuthConfig, WebauthnConfig};
use rxvault_server::tls::TlsSource;
use rxvault_server::{ServeOptions, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Flags of `rxvault serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    vault: crate::VaultArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443", env = "RXVAULT_LISTEN")]
    listen: SocketAddr,
    /// Certificate chain (PEM). Default: the vault's self-signed certificate
    /// (DIR/tls/cert.pem), generated on first use.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The public base URL clients use (default https://<listen>).
    #[arg(long)]
    base_url: Option<String>,
    /// WebAuthn relying party id: the server's domain name (enables passkeys).
    #[arg(long, default_value = "localhost")]
    rp_id: String,
    /// WebAuthn origin (default https://<rp-id>:<port>).
    #[arg(long)]
    rp_origin: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    #[command(flatten)]
    backups: crate::backup_cmd::ScheduleArgs,
}

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let vault = Arc::new(crate::open(&a.vault)?);
    let origin = a
        .rp_origin
        .clone()
        .unwrap_or_else(|| format!("https://{}:{}", a.rp_id, a.listen.port()));
    let config = AuthConfig {
        webauthn: Some(WebauthnConfig {
            rp_id: a.rp_id.clone(),
            origin,
            rp_name: "rxvault".into(),
        }),
        ..AuthConfig::default()
    };
    let auth = Arc::new(Auth::new(
        vault.clone(),
        vault.auth_store()?,
        vault.clone(),
        vault.clock().clone(),
        config,
    )?);
    let tls = match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => TlsSource::Files { cert, key },
        _ => TlsSource::SelfSigned,
    };
    let options = ServeOptions {
        listen: a.listen,
        tls,
        limits: rxvault_server::http::Limits {
            body_bytes: a.max_body,
            ..Default::default()
        },
        base_url: a.base_url,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rxvault-http")
        .build()
        .context("starting the async runtime")?;
    // Borrowed, not moved: the last references to the vault and identity
    // are dropped after the runtime, on this thread. (Dropping the vault
    // reads its audit log to sign the closing checkpoint; on PostgreSQL that
    // blocks, which aborts the process on a runtime thread.)
    runtime.block_on(async {
        let server = Server::bind(vault.clone(), auth.clone(), &options).await?;
        outln!(
            "rxvault listening on https://{} (certificate: {})",
            server.local_addr,
            rxvault_server::tls::cert_path(&vault).display()
        );
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        // Everything long-running, wired in one place: the jobs every
        // server runs (and, as they come, detection, backups, agents).
        let rules =
            rxvault_detect::Rules::load(&crate::detect_cmd::rules_path(&vault.config().dir))?;
        let handle = tokio::runtime::Handle::current();
        let sinks = rules
            .sinks
            .webhook
            .iter()
            .map(|w| {
                Ok(Arc::new(rxvault_server::webhook::WebhookSink::new(
                    w,
                    handle.clone(),
                )?) as Arc<dyn rxvault_detect::sinks::Sink>)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut sinks = sinks;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        for s in &rules.sinks.syslog {
            sinks.push(Arc::new(rxvault_detect::sinks::SyslogSink::new(
                s,
                hostname.trim(),
            )?));
        }
        for m in &rules.sinks.smtp {
            sinks.push(Arc::new(rxvault_detect::sinks::SmtpSink::new(m)?));
        }
        let (v, au) = (vault.clone(), auth.clone());
        let mut services = tokio::task::spawn_blocking(move || {
            crate::detect_cmd::wire(
                rxvault_server::services::Services::standard(au.clone()),
                &v,
                au,
                sinks,
            )
        })
        .await
        .context("starting detection")??;
        if let Some(job) = a.backups.job(&vault)? {
            services = services.job(job);
        }
        services.run(vault.clone(), server, shutdown).await?;
        // Cover everything served with a signed checkpoint before exiting
        // (store work: on the blocking pool).
        let v = vault.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            v.audit()?.checkpoint()?;
            Ok(())
        })
        .await
        .context("signing the closing checkpoint")??;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
