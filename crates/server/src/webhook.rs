//! The webhook sink of detection (`rxvault_detect::sinks::Sink`): each
//! alert notice POSTed as JSON, signed with HMAC-SHA256 under a secret the
//! receiver shares (`X-Rxvault-Signature: sha256=<hex>`), with
//! `X-Rxvault-Delivery: <alert>/<version>` (the same on every retry, to
//! drop duplicates by). A 2xx answer is a delivery; anything else, or no
//! answer in 10 s, is retried by the outbox with backoff.

use rxvault_detect::rules::Webhook;
use rxvault_detect::sinks::Sink;
use std::time::Duration;
use zeroize::Zeroizing;

/// A webhook.
pub struct WebhookSink {
    name: String,
    url: String,
    secret: Zeroizing<Vec<u8>>,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl WebhookSink {
    /// The sink `config` names, sending on `runtime` (the server's). Its
    /// secret is read from `secret_file` (trailing newline dropped);
    /// `https://` URLs are verified against the system's roots, or against
    /// `ca_file` alone when given.
    pub fn new(config: &Webhook, runtime: tokio::runtime::Handle) -> crate::Result<Self> {
        let bad = |m: String| crate::Error::Config(format!("webhook {}: {m}", config.name));
        let mut secret = Zeroizing::new(
            std::fs::read(&config.secret_file)
                .map_err(|e| bad(format!("reading {}: {e}", config.secret_file)))?,
        );
        while secret.last().is_some_and(|b| b.is_ascii_whitespace()) {
            secret.pop();
        }
        if secret.len() < 16 {
            return Err(bad("the secret must be at least 16 bytes".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        match &config.ca_file {
            Some(ca) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                for cert in
                    CertificateDer::pem_file_iter(ca).map_err(|e| bad(format!("{ca}: {e}")))?
                {
                    roots
                        .add(cert.map_err(|e| bad(format!("{ca}: {e}")))?)
                        .map_err(|e| bad(format!("{ca}: {e}")))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            name: config.name.clone(),
            url: config.url.clone(),
            secret,
            client,
            runtime,
        })
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&self, notice: &serde_json::Value) -> Result<(), String> {
        let body = serde_json::to_vec(notice).map_err(|e| e.to_string())?;
        let signature = hex::encode(rxvault_crypto::hmac_sha256(&self.secret, &body));
        let delivery = notice["delivery_id"].as_str().unwrap_or("").to_string();
        let request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-rxvault-signature", format!("sha256={signature}"))
            .header("x-rxvault-delivery", delivery)
            .body(body);
        // The delivery job runs on the blocking pool: wait for the answer.
        let status = self
            .runtime
            .block_on(async move { request.send().await.map(|r| r.status()) })
            .map_err(|e| format!("webhook {}: {e}", self.name))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("webhook {}: answered {status}", self.name))
        }
    }
}
