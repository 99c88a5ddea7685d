//! The detection store behaves the same on SQLite and PostgreSQL: the
//! state snapshot, settings, alerts and their grouping lookup, the
//! lifecycle update, and the outbox (due, retried, delivered), all
//! surviving a reopen; one commit is all or nothing.

use rxvault_store::detect::{AlertCommit, DetectStore, OutboxItem, SqlDetectStore, StoredAlert};
use rxvault_store::{PgStore, SqliteStore};
use rxvault_testkit::pg::Schema;
use std::sync::Arc;

fn each_backend(test: impl Fn(Arc<dyn DetectStore>, &dyn Fn() -> Arc<dyn DetectStore>)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    drop(SqliteStore::create(&path).unwrap());
    test(
        Arc::new(SqlDetectStore::open_sqlite(&path).unwrap()),
        &|| Arc::new(SqlDetectStore::open_sqlite(&path).unwrap()),
    );
    if let Some(schema) = Schema::new("detectconf") {
        drop(PgStore::create(&schema.url, &schema.name).unwrap());
        test(
            Arc::new(SqlDetectStore::open_postgres(&schema.url, &schema.name).unwrap()),
            &|| Arc::new(SqlDetectStore::open_postgres(&schema.url, &schema.name).unwrap()),
        );
    }
}

fn alert(id: &str, group: u8, last_ms: i64, findings: u64) -> StoredAlert {
    StoredAlert {
        id: id.into(),
        group: vec![group; 16],
        status: "open".into(),
        severity: "high".into(),
        rule: "volume_hour".into(),
        first_index: 10,
        last_index: 10 + findings,
        first_ms: 1000,
        last_ms,
        findings,
        sealed: vec![0xAB; 40],
        updated_ms: last_ms,
    }
}

fn owed(sink: &str, id: &str, version: u64) -> OutboxItem {
    OutboxItem {
        sink: sink.into(),
        alert_id: id.into(),
        version,
        attempts: 0,
        next_ms: 0,
        last_error: None,
    }
}

#[test]
fn state_settings_alerts_and_outbox_on_both_backends() {
    each_backend(|s, reopen| {
        assert_eq!(s.state().unwrap(), None);
        assert_eq!(s.alerted_through().unwrap(), 0);
        s.save_state(7, b"sealed-1", 1).unwrap();
        s.save_state(9, b"sealed-2", 2).unwrap();
        assert_eq!(s.state().unwrap(), Some((9, b"sealed-2".to_vec())));
        s.set_setting("honeytokens", b"x").unwrap();
        assert_eq!(s.setting("honeytokens").unwrap(), Some(b"x".to_vec()));
        assert_eq!(s.setting("nothing").unwrap(), None);

        s.commit(&AlertCommit {
            alerts: vec![alert("a1", 1, 5000, 1), alert("a2", 2, 6000, 1)],
            outbox: vec![
                owed("soc", "a1", 1),
                owed("soc", "a2", 1),
                owed("mail", "a1", 1),
            ],
            alerted_through: 20,
        })
        .unwrap();
        // A later version of a1: the row is updated, a new delivery owed; an
        // outbox row already owed is not doubled; the mark never goes back.
        s.commit(&AlertCommit {
            alerts: vec![alert("a1", 1, 8000, 3)],
            outbox: vec![owed("soc", "a1", 3), owed("soc", "a1", 1)],
            alerted_through: 15,
        })
        .unwrap();
        let s = reopen();
        assert_eq!(s.alerted_through().unwrap(), 20);
        assert_eq!(s.alert("a1").unwrap().unwrap().findings, 3);
        assert_eq!(
            s.open_alert(&[1; 16], 7000).unwrap().map(|a| a.id),
            Some("a1".into())
        );
        assert_eq!(
            s.open_alert(&[1; 16], 9000).unwrap(),
            None,
            "too old to group"
        );
        assert_eq!(s.open_alert(&[3; 16], 0).unwrap(), None);
        let ids: Vec<String> = s
            .alerts(None, 10)
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids.len(), 2);
        // Lifecycle: a resolved alert no longer groups new findings.
        assert!(s.update_alert("a1", "resolved", b"sealed-3", 9000).unwrap());
        assert!(!s.update_alert("nope", "resolved", b"x", 9000).unwrap());
        assert_eq!(s.open_alert(&[1; 16], 0).unwrap(), None);
        assert_eq!(s.alerts(Some("resolved"), 10).unwrap().len(), 1);
        assert_eq!(s.alert("a1").unwrap().unwrap().sealed, b"sealed-3".to_vec());

        // The outbox: three owed to soc, one to mail.
        assert_eq!(
            s.owed().unwrap(),
            vec![("mail".into(), 1), ("soc".into(), 3)]
        );
        let due = s.due("soc", 100, 10).unwrap();
        assert_eq!(due.len(), 3);
        s.retry(&due[0], 5000, "answered 500").unwrap();
        s.delivered(&due[1], 200).unwrap();
        let s = reopen();
        let due = s.due("soc", 100, 10).unwrap();
        assert_eq!(due.len(), 1, "one retried later, one delivered");
        let later = s.due("soc", 5000, 10).unwrap();
        assert_eq!(later.len(), 2);
        let retried = later.iter().find(|o| o.attempts == 1).unwrap();
        assert_eq!(retried.last_error.as_deref(), Some("answered 500"));
        for o in &later {
            s.delivered(o, 6000).unwrap();
        }
        assert_eq!(s.owed().unwrap(), vec![("mail".into(), 1)]);
        // Delivered rows stay delivered when the same delivery is owed again.
        s.commit(&AlertCommit {
            alerts: vec![],
            outbox: vec![owed("soc", "a2", 1)],
            alerted_through: 21,
        })
        .unwrap();
        assert_eq!(s.due("soc", 10_000, 10).unwrap().len(), 0);
    });
}
