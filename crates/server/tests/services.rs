//! The composition root (issue 8, item 6): a consumer of the live audit
//! stream and a scheduled job plugged into a running server without
//! touching a handler; clean shutdown; a restarted consumer resumes where
//! it acknowledged, with no gap and no duplicate.

use rxvault_audit::{Action, Actor, Entry, LoggedEntry};
use rxvault_auth::{Auth, AuthConfig};
use rxvault_model::{Clock, SystemClock};
use rxvault_server::services::{Consumer, Job, Services};
use rxvault_server::tls::TlsSource;
use rxvault_server::{ServeOptions, Server};
use rxvault_vault::keys::InitKey;
use rxvault_vault::{KeySource, StoreConfig, Vault};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Collector(Arc<Mutex<Vec<u64>>>);

impl Consumer for Collector {
    fn name(&self) -> &str {
        "collector"
    }
    fn handle(&mut self, entries: &[LoggedEntry]) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .extend(entries.iter().map(|e| e.index));
        Ok(())
    }
}

fn marker(i: u64) -> Entry {
    Entry::new(
        Actor::system(),
        Action::Alert {
            kind: "test".into(),
            detail: format!("marker {i}"),
        },
    )
}

async fn until(what: &str, ok: impl Fn() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// One run of the services: `n` entries recorded while they run; returns
/// the indexes the consumer saw and how often the job ran.
async fn run_once(vault: &Arc<Vault>, auth: &Arc<Auth>, first: u64, n: u64) -> (Vec<u64>, u64) {
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: TlsSource::SelfSigned,
        limits: Default::default(),
        base_url: None,
    };
    let server = Server::bind(vault.clone(), auth.clone(), &options)
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runs = Arc::new(AtomicU64::new(0));
    let r = runs.clone();
    let services = Services::new()
        .job(Job {
            name: "count",
            every: Duration::from_millis(50),
            run: Arc::new(move || {
                r.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }),
        })
        .consumer(Collector(seen.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(services.run(vault.clone(), server, async {
        let _ = stopped.await;
    }));
    let v = vault.clone();
    let last = tokio::task::spawn_blocking(move || {
        (first..first + n)
            .map(|i| v.record(marker(i)).unwrap().index)
            .max()
            .unwrap()
    })
    .await
    .unwrap();
    until("the consumer to catch up", || {
        seen.lock().unwrap().last() == Some(&last)
    })
    .await;
    until("the job to run", || runs.load(Ordering::Relaxed) >= 2).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the services stop")
        .unwrap()
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    (seen, runs.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_and_jobs_run_beside_the_server_and_stop_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (vault, auth) = {
        let tmp = tmp.path().to_path_buf();
        let clock = clock.clone();
        tokio::task::spawn_blocking(move || {
            let data = tmp.join("data");
            let key = tmp.join("vault.key");
            Vault::init(
                &data,
                StoreConfig::Sqlite,
                InitKey::File(Some(key.clone())),
                clock.clone(),
            )
            .unwrap();
            let vault = Arc::new(Vault::open(&data, Some(KeySource::File(key)), clock).unwrap());
            let auth = Arc::new(
                Auth::new(
                    vault.clone(),
                    vault.auth_store().unwrap(),
                    vault.clone(),
                    vault.clock().clone(),
                    AuthConfig::default(),
                )
                .unwrap(),
            );
            (vault, auth)
        })
        .await
        .unwrap()
    };
    let (first, runs) = run_once(&vault, &auth, 0, 50).await;
    assert!(runs >= 2);
    // Everything from the start of the log, once, in order.
    let end = *first.last().unwrap();
    assert_eq!(first, (first[0]..=end).collect::<Vec<_>>());
    // Entries recorded while no server runs are not lost.
    let v = vault.clone();
    tokio::task::spawn_blocking(move || {
        for i in 100..110 {
            v.record(marker(i)).unwrap();
        }
    })
    .await
    .unwrap();
    let (second, _) = run_once(&vault, &auth, 200, 20).await;
    assert_eq!(
        second.first(),
        Some(&(end + 1)),
        "resumed after the acknowledged end"
    );
    let end2 = *second.last().unwrap();
    assert_eq!(
        second,
        (end + 1..=end2).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let stored = {
        let v = vault.clone();
        tokio::task::spawn_blocking(move || {
            v.audit()
                .unwrap()
                .reader()
                .store()
                .consumer_position("collector")
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert_eq!(stored, Some(end2 + 1));
    tokio::task::spawn_blocking(move || drop((vault, auth)))
        .await
        .unwrap();
}
