//! The identity-and-access conformance suite: [`AuthStore`] behaves the same
//! on SQLite and PostgreSQL. Each test runs on a fresh SQLite vault database
//! and, with `RXVAULT_TEST_PG_URL`, a fresh PostgreSQL schema.

use rxvault_model::DekId;
use rxvault_store::auth::{
    AccountKind, AccountUpdate, AuthStore, RequestContext, RequestKind, RequestStatus, Revocation,
    SessionFilter, SessionStage, SqlAuthStore, StoredAccessRequest, StoredAccount, StoredApiKey,
    StoredBreakGlass, StoredCeremony, StoredDocument, StoredEnrolmentCode, StoredPasskey,
    StoredSession, StoredTotp, ThrottleScope, ThrottleSubject,
};
use rxvault_store::{Backend, PgStore, SqliteStore, Store};
use rxvault_testkit::pg::Schema;
use std::sync::Arc;

/// Runs `test` on each backend; `reopen` opens the same database again.
fn each_backend(test: impl Fn(Arc<dyn AuthStore>, &dyn Fn() -> Arc<dyn AuthStore>)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    drop(SqliteStore::create(&path).unwrap());
    let store = SqlAuthStore::open_sqlite(&path).unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    test(Arc::new(store), &|| {
        Arc::new(SqlAuthStore::open_sqlite(&path).unwrap())
    });

    if let Some(schema) = Schema::new("authconf") {
        drop(PgStore::create(&schema.url, &schema.name).unwrap());
        let store = SqlAuthStore::open_postgres(&schema.url, &schema.name).unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        test(Arc::new(store), &|| {
            Arc::new(SqlAuthStore::open_postgres(&schema.url, &schema.name).unwrap())
        });
    }
}

fn account(id: &str, username: &str) -> StoredAccount {
    StoredAccount {
        id: id.into(),
        username: username.into(),
        kind: AccountKind::Human,
        role: "pharmacist".into(),
        disabled: false,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        created_at: 100,
        updated_at: 100,
    }
}

fn session(id: &str, account: &str, n: u8, host: Option<&str>) -> StoredSession {
    StoredSession {
        id: id.into(),
        token_hash: [n; 32],
        account_id: account.into(),
        stage: SessionStage::Authenticated,
        host: host.map(str::to_string),
        source: "192.0.2.7".into(),
        created_at: 1000 + i64::from(n),
        last_seen_at: 1000,
        expires_at: 5000,
        mfa_at: Some(1000),
        revoked_at: None,
    }
}

#[test]
fn migration_2_is_applied_to_a_version_1_database_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    drop(SqliteStore::create(&path).unwrap());
    // Roll the database back to version 1, as an older rxvault left it.
    downgrade_to_v1(&path);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        rxvault_store::schema::CURRENT
    );
    let auth = SqlAuthStore::open_sqlite(&path).unwrap();
    assert!(auth.create_account(&account("a1", "ann")).unwrap());
}

/// Drops the identity tables and sets the version back to 1, through the
/// `sqlite3` shell (this crate's tests do not depend on rusqlite directly).
fn downgrade_to_v1(path: &std::path::Path) {
    let script = "DROP TABLE auth_accounts; DROP TABLE auth_totp; DROP TABLE auth_passkeys; \
         DROP TABLE auth_recovery_codes; DROP TABLE auth_ceremonies; DROP TABLE auth_sessions; \
         DROP TABLE auth_api_keys; DROP TABLE auth_throttle; DROP TABLE auth_break_glass; \
         DROP TABLE auth_enrolment_codes; DROP TABLE auth_access_requests; \
         DROP TABLE auth_settings; DROP TABLE sealed_documents; DROP TABLE detect_state; DROP TABLE detect_settings; DROP TABLE detect_alerts; DROP TABLE detect_outbox; \
         UPDATE meta SET value = '1' WHERE key = 'schema_version';";
    let out = std::process::Command::new("sqlite3")
        .arg(path)
        .arg(script)
        .output()
        .expect("sqlite3 is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn accounts_are_unique_by_id_and_name_and_updatable() {
    each_backend(|s, reopen| {
        assert!(s.create_account(&account("a1", "ann")).unwrap());
        assert!(
            !s.create_account(&account("a2", "ann")).unwrap(),
            "user name taken"
        );
        assert!(
            !s.create_account(&account("a1", "bob")).unwrap(),
            "id taken"
        );
        let mut svc = account("s1", "pms");
        svc.kind = AccountKind::Service;
        svc.role = "service".into();
        svc.password_hash = None;
        assert!(s.create_account(&svc).unwrap());

        let s = reopen();
        assert_eq!(s.account("a1").unwrap().unwrap(), account("a1", "ann"));
        assert_eq!(s.account_by_username("pms").unwrap().unwrap(), svc);
        assert_eq!(s.account_by_username("nobody").unwrap(), None);
        assert_eq!(
            s.accounts()
                .unwrap()
                .iter()
                .map(|a| a.username.as_str())
                .collect::<Vec<_>>(),
            vec!["ann", "pms"]
        );
        assert!(
            s.update_account("a1", &AccountUpdate::Role("billing".into()), 200)
                .unwrap()
        );
        assert!(
            s.update_account("a1", &AccountUpdate::Disabled(true), 201)
                .unwrap()
        );
        assert!(
            s.update_account("a1", &AccountUpdate::PasswordHash("$new".into()), 202)
                .unwrap()
        );
        assert!(
            !s.update_account("zz", &AccountUpdate::Disabled(true), 203)
                .unwrap()
        );
        let a = s.account("a1").unwrap().unwrap();
        assert_eq!(
            (
                a.role.as_str(),
                a.disabled,
                a.password_hash.as_deref(),
                a.updated_at
            ),
            ("billing", true, Some("$new"), 202)
        );
    });
}

#[test]
fn totp_steps_only_move_forward_and_one_concurrent_use_wins() {
    each_backend(|s, _| {
        assert_eq!(s.totp("a1").unwrap(), None);
        assert!(!s.advance_totp_step("a1", 5).unwrap(), "no authenticator");
        let t = StoredTotp {
            sealed_secret: vec![2, 0, 0, 0, 16, 9, 9],
            dek: DekId(16),
            last_step: None,
            created_at: 10,
        };
        s.set_totp("a1", &t).unwrap();
        assert_eq!(s.totp("a1").unwrap().unwrap(), t);
        assert!(s.advance_totp_step("a1", 100).unwrap());
        assert!(!s.advance_totp_step("a1", 100).unwrap(), "replay");
        assert!(!s.advance_totp_step("a1", 99).unwrap(), "older step");
        assert!(s.advance_totp_step("a1", 101).unwrap());
        assert_eq!(s.totp("a1").unwrap().unwrap().last_step, Some(101));

        // Eight threads race to use step 200: exactly one wins.
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let s = s.clone();
                    scope.spawn(move || usize::from(s.advance_totp_step("a1", 200).unwrap()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);

        // Re-enrolment replaces the secret and forgets the step.
        s.set_totp(
            "a1",
            &StoredTotp {
                last_step: None,
                dek: DekId(17),
                ..t.clone()
            },
        )
        .unwrap();
        assert_eq!(s.totp("a1").unwrap().unwrap().last_step, None);
        assert_eq!(s.sealed_dek_usage().unwrap(), vec![(DekId(17), 1)]);
    });
}

#[test]
fn passkeys_recovery_codes_and_clearing_factors() {
    each_backend(|s, _| {
        let pk = StoredPasskey {
            credential_id: vec![1, 2, 3],
            account_id: "a1".into(),
            name: "laptop".into(),
            passkey: "{\"cred\":1}".into(),
            created_at: 10,
            last_used_at: None,
        };
        assert!(s.add_passkey(&pk).unwrap());
        assert!(
            !s.add_passkey(&StoredPasskey {
                account_id: "a2".into(),
                ..pk.clone()
            })
            .unwrap(),
            "a credential id belongs to one account"
        );
        assert!(
            s.update_passkey("a1", &[1, 2, 3], "{\"cred\":2}", 20)
                .unwrap()
        );
        assert!(!s.update_passkey("a2", &[1, 2, 3], "{}", 20).unwrap());
        let got = s.passkeys("a1").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].passkey.as_str(), got[0].last_used_at),
            ("{\"cred\":2}", Some(20))
        );
        assert!(s.passkeys("a2").unwrap().is_empty());

        s.replace_recovery_codes("a1", &[[1; 32], [2; 32], [3; 32]], 10)
            .unwrap();
        assert_eq!(s.recovery_codes_left("a1").unwrap(), 3);
        assert!(s.consume_recovery_code("a1", &[2; 32], 11).unwrap());
        assert!(
            !s.consume_recovery_code("a1", &[2; 32], 12).unwrap(),
            "single use"
        );
        assert!(
            !s.consume_recovery_code("a2", &[1; 32], 12).unwrap(),
            "another account's"
        );
        assert_eq!(s.recovery_codes_left("a1").unwrap(), 2);
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let s = s.clone();
                    scope.spawn(move || {
                        usize::from(s.consume_recovery_code("a1", &[3; 32], 13).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
        s.replace_recovery_codes("a1", &[[4; 32]], 14).unwrap();
        assert_eq!(s.recovery_codes_left("a1").unwrap(), 1);
        assert!(
            !s.consume_recovery_code("a1", &[1; 32], 15).unwrap(),
            "old set gone"
        );

        s.set_totp(
            "a1",
            &StoredTotp {
                sealed_secret: vec![1],
                dek: DekId(16),
                last_step: Some(3),
                created_at: 1,
            },
        )
        .unwrap();
        s.put_ceremony(&StoredCeremony {
            id: "c1".into(),
            account_id: "a1".into(),
            purpose: "register".into(),
            state: "{}".into(),
            expires_at: 100,
        })
        .unwrap();
        s.clear_second_factors("a1").unwrap();
        assert_eq!(s.totp("a1").unwrap(), None);
        assert!(s.passkeys("a1").unwrap().is_empty());
        assert_eq!(s.recovery_codes_left("a1").unwrap(), 0);
        assert_eq!(s.take_ceremony("c1", "register", 0).unwrap(), None);
        assert!(s.delete_passkey("a1", &[1, 2, 3]).is_ok_and(|gone| !gone));
    });
}

#[test]
fn ceremony_state_is_taken_once_and_expires() {
    each_backend(|s, _| {
        let c = StoredCeremony {
            id: "p1".into(),
            account_id: "a1".into(),
            purpose: "login".into(),
            state: "{\"challenge\":\"x\"}".into(),
            expires_at: 100,
        };
        s.put_ceremony(&c).unwrap();
        assert_eq!(
            s.take_ceremony("p1", "register", 50).unwrap(),
            None,
            "wrong purpose"
        );
        assert_eq!(s.take_ceremony("p1", "login", 50).unwrap(), Some(c.clone()));
        assert_eq!(s.take_ceremony("p1", "login", 50).unwrap(), None, "used up");
        s.put_ceremony(&c).unwrap();
        assert_eq!(
            s.take_ceremony("p1", "login", 100).unwrap(),
            None,
            "expired"
        );
        assert_eq!(
            s.take_ceremony("p1", "login", 0).unwrap(),
            None,
            "and deleted"
        );
    });
}

#[test]
fn sessions_are_found_by_token_replaced_once_touched_and_revoked() {
    each_backend(|s, reopen| {
        let mut pending = session("p1", "a1", 1, Some("ws-1"));
        pending.stage = SessionStage::PendingSecondFactor;
        pending.mfa_at = None;
        s.insert_session(&pending).unwrap();
        assert_eq!(s.session_by_token(&[1; 32]).unwrap().unwrap(), pending);
        assert_eq!(s.session_by_token(&[9; 32]).unwrap(), None);

        // The pending login becomes a session once, even when raced.
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u8)
                .map(|i| {
                    let s = s.clone();
                    scope.spawn(move || {
                        let new = session(&format!("s{i}"), "a1", 10 + i, Some("ws-1"));
                        usize::from(s.replace_session("p1", &new).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
        assert_eq!(s.session("p1").unwrap(), None);
        let s = reopen();
        let live = s
            .sessions(&SessionFilter {
                account: Some("a1".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(live.len(), 1);
        let winner = live[0].id.clone();

        s.insert_session(&session("s8", "a1", 20, Some("ws-2")))
            .unwrap();
        s.insert_session(&session("s9", "b2", 21, Some("ws-1")))
            .unwrap();
        s.insert_session(&session("s7", "b2", 22, None)).unwrap();

        // Coarse touches: only when the stored time is older than the bound.
        s.touch_session("s8", 1010, 1000).unwrap();
        assert_eq!(s.session("s8").unwrap().unwrap().last_seen_at, 1000);
        s.touch_session("s8", 1040, 1010).unwrap();
        assert_eq!(s.session("s8").unwrap().unwrap().last_seen_at, 1040);
        assert!(s.record_session_mfa("s8", 1050).unwrap());
        let s8 = s.session("s8").unwrap().unwrap();
        assert_eq!((s8.mfa_at, s8.last_seen_at), (Some(1050), 1050));

        let host = |h: &str| SessionFilter {
            host: Some(h.into()),
            live_at: Some(2000),
            ..Default::default()
        };
        let ids = |f: &SessionFilter| {
            let mut v: Vec<String> = s.sessions(f).unwrap().into_iter().map(|x| x.id).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&host("ws-1")), vec![winner.clone(), "s9".to_string()]);
        assert_eq!(
            s.revoke_sessions(Revocation::Host("ws-1"), 2000).unwrap(),
            2
        );
        assert!(ids(&host("ws-1")).is_empty());
        assert_eq!(
            s.revoke_sessions(Revocation::Host("ws-1"), 2001).unwrap(),
            0
        );
        assert_eq!(
            s.revoke_sessions(Revocation::Account("b2"), 2002).unwrap(),
            1
        );
        assert_eq!(
            s.revoke_sessions(Revocation::Session("s8"), 2003).unwrap(),
            1
        );
        assert!(!s.record_session_mfa("s8", 2004).unwrap(), "revoked");
        assert_eq!(s.session("s8").unwrap().unwrap().revoked_at, Some(2003));
        assert!(
            !s.replace_session("s8", &session("s6", "a1", 30, None))
                .unwrap(),
            "a revoked session is not exchanged"
        );
        let all_live = SessionFilter {
            live_at: Some(2005),
            ..Default::default()
        };
        assert!(ids(&all_live).is_empty());
        assert_eq!(ids(&SessionFilter::default()).len(), 4);
        // Not live once past the absolute expiry either.
        s.insert_session(&session("s5", "a1", 40, None)).unwrap();
        assert_eq!(ids(&all_live), vec!["s5".to_string()]);
        assert!(
            ids(&SessionFilter {
                live_at: Some(5000),
                ..Default::default()
            })
            .is_empty()
        );
        assert_eq!(s.purge_sessions(2003).unwrap(), 3, "revoked before 2003");
        assert_eq!(s.purge_sessions(6000).unwrap(), 2);
        assert!(ids(&SessionFilter::default()).is_empty());
    });
}

#[test]
fn api_keys_by_hash_revoked_and_touched() {
    each_backend(|s, _| {
        let k = StoredApiKey {
            id: "k1".into(),
            key_hash: [5; 32],
            account_id: "s1".into(),
            scopes: "patients.read fills.read".into(),
            allowed_sources: "10.0.0.0/8 2001:db8::/32".into(),
            created_at: 10,
            expires_at: Some(1000),
            revoked_at: None,
            last_used_at: None,
            pending: false,
        };
        s.insert_api_key(&k).unwrap();
        let k2 = StoredApiKey {
            id: "k2".into(),
            key_hash: [6; 32],
            allowed_sources: String::new(),
            expires_at: None,
            created_at: 11,
            ..k.clone()
        };
        s.insert_api_key(&k2).unwrap();
        assert!(
            s.insert_api_key(&StoredApiKey {
                id: "k3".into(),
                ..k.clone()
            })
            .is_err(),
            "key hashes are unique"
        );
        assert_eq!(s.api_key_by_hash(&[5; 32]).unwrap().unwrap(), k);
        assert_eq!(s.api_key_by_hash(&[7; 32]).unwrap(), None);
        assert_eq!(s.api_keys(Some("s1")).unwrap(), vec![k.clone(), k2.clone()]);
        assert_eq!(s.api_keys(None).unwrap().len(), 2);
        assert!(s.api_keys(Some("s2")).unwrap().is_empty());
        s.touch_api_key("k1", 50, 20).unwrap();
        s.touch_api_key("k1", 60, 40).unwrap();
        assert_eq!(
            s.api_key_by_hash(&[5; 32]).unwrap().unwrap().last_used_at,
            Some(50)
        );
        assert!(s.revoke_api_key("k1", 70).unwrap());
        assert!(!s.revoke_api_key("k1", 71).unwrap());
        assert_eq!(
            s.api_key_by_hash(&[5; 32]).unwrap().unwrap().revoked_at,
            Some(70)
        );
    });
}

/// Counts one admitted attempt (a failure until refunded).
fn count(
    s: &Arc<dyn AuthStore>,
    scope: ThrottleScope,
    subject: &[u8],
    at: i64,
    restart: Option<i64>,
) {
    let list = [ThrottleSubject {
        scope,
        subject,
        restart_before: restart,
    }];
    assert!(s.admit_attempt(&list, at, &mut |_| true).unwrap());
}

fn failures(s: &Arc<dyn AuthStore>, scope: ThrottleScope, subject: &[u8]) -> Option<u32> {
    s.throttle(scope, subject).unwrap().map(|st| st.failures)
}

#[test]
fn throttling_counts_atomically_restarts_and_clears() {
    each_backend(|s, _| {
        let subject = [0xab; 16];
        assert_eq!(s.throttle(ThrottleScope::Account, &subject).unwrap(), None);
        for i in 1..=3 {
            count(&s, ThrottleScope::Account, &subject, 100 + i, None);
            let st = s
                .throttle(ThrottleScope::Account, &subject)
                .unwrap()
                .unwrap();
            assert_eq!((st.failures, st.last_failure_at), (i as u32, 100 + i));
        }
        assert_eq!(
            s.throttle(ThrottleScope::Source, &subject).unwrap(),
            None,
            "scopes are separate"
        );
        // Concurrent attempts are all counted.
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let s = s.clone();
                scope.spawn(move || count(&s, ThrottleScope::Account, &subject, 200, None));
            }
        });
        assert_eq!(failures(&s, ThrottleScope::Account, &subject), Some(11));
        // A refund gives one back.
        s.refund_attempt(ThrottleScope::Account, &subject).unwrap();
        assert_eq!(failures(&s, ThrottleScope::Account, &subject), Some(10));
        // A window restarts the count when the last failure is old.
        count(&s, ThrottleScope::Account, &subject, 300, Some(250));
        assert_eq!(failures(&s, ThrottleScope::Account, &subject), Some(1));
        count(&s, ThrottleScope::Account, &subject, 301, Some(250));
        assert_eq!(failures(&s, ThrottleScope::Account, &subject), Some(2));
        s.clear_failures(ThrottleScope::Account, &subject).unwrap();
        assert_eq!(s.throttle(ThrottleScope::Account, &subject).unwrap(), None);
        // Purging old counts keeps locked subjects.
        let locked = [0xcd; 16];
        for at in 0..5 {
            count(&s, ThrottleScope::Account, &locked, at, None);
        }
        count(&s, ThrottleScope::Source, &subject, 10, None);
        count(&s, ThrottleScope::Source, &[1; 16], 500, None);
        assert_eq!(s.purge_failures(100, 5).unwrap(), 1);
        assert!(
            s.throttle(ThrottleScope::Account, &locked)
                .unwrap()
                .is_some()
        );
        assert!(
            s.throttle(ThrottleScope::Source, &subject)
                .unwrap()
                .is_none()
        );
        assert!(
            s.throttle(ThrottleScope::Source, &[1; 16])
                .unwrap()
                .is_some()
        );
    });
}

/// Issue 9, item 3: the check and the count are one step. 32 attempts at
/// once, each admitted only while fewer than 4 were counted: exactly 4 get
/// in, as 4 would one after another; refused attempts count nothing.
#[test]
fn concurrent_attempts_are_checked_one_after_another() {
    each_backend(|s, _| {
        let account = [0x5a; 16];
        let source = [0x5b; 16];
        let admitted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..32 {
                let (s, admitted) = (s.clone(), &admitted);
                scope.spawn(move || {
                    let list = [
                        ThrottleSubject {
                            scope: ThrottleScope::Account,
                            subject: &account,
                            restart_before: None,
                        },
                        ThrottleSubject {
                            scope: ThrottleScope::Source,
                            subject: &source,
                            restart_before: None,
                        },
                    ];
                    if s.admit_attempt(&list, 1000, &mut |st| st.iter().all(|x| x.failures < 4))
                        .unwrap()
                    {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 4);
        assert_eq!(failures(&s, ThrottleScope::Account, &account), Some(4));
        assert_eq!(failures(&s, ThrottleScope::Source, &source), Some(4));
    });
}

#[test]
fn break_glass_grants_are_active_until_expiry_or_end_and_reviewed_once() {
    each_backend(|s, _| {
        let g = StoredBreakGlass {
            id: "g1".into(),
            account_id: "a1".into(),
            session_id: "s1".into(),
            sealed_reason: vec![2, 0, 0, 0, 20, 1, 2, 3],
            dek: DekId(20),
            started_at: 100,
            expires_at: 3700,
            ended_at: None,
            reviewed_at: None,
            reviewed_by: None,
        };
        s.insert_break_glass(&g).unwrap();
        assert_eq!(s.active_break_glass("s1", 200).unwrap(), Some(g.clone()));
        assert_eq!(s.active_break_glass("s1", 3700).unwrap(), None, "expired");
        assert_eq!(s.active_break_glass("s2", 200).unwrap(), None);
        let g2 = StoredBreakGlass {
            id: "g2".into(),
            session_id: "s2".into(),
            started_at: 150,
            ..g.clone()
        };
        s.insert_break_glass(&g2).unwrap();
        assert_eq!(s.end_break_glass("s2", 300).unwrap(), 1);
        assert_eq!(s.active_break_glass("s2", 301).unwrap(), None, "ended");
        assert_eq!(s.break_glass_grants(true).unwrap().len(), 2);
        assert!(s.review_break_glass("g1", "po1", 400).unwrap());
        assert!(!s.review_break_glass("g1", "po2", 401).unwrap(), "once");
        let unreviewed = s.break_glass_grants(true).unwrap();
        assert_eq!(unreviewed.len(), 1);
        assert_eq!(unreviewed[0].id, "g2");
        let every = s.break_glass_grants(false).unwrap();
        assert_eq!(every.len(), 2);
        assert_eq!(
            (every[0].reviewed_at, every[0].reviewed_by.as_deref()),
            (Some(400), Some("po1"))
        );
        assert_eq!(s.sealed_dek_usage().unwrap(), vec![(DekId(20), 2)]);
        // Debug never shows the sealed reason's bytes.
        assert!(!format!("{g:?}").contains("sealed_reason"));
    });
}

#[test]
fn a_request_context_is_the_session_its_account_and_its_grant_in_force() {
    each_backend(|s, _| {
        let alice = account("a1", "alice");
        s.create_account(&alice).unwrap();
        let s1 = session("s1", "a1", 1, Some("ws-1"));
        let orphan = session("s2", "gone", 2, None);
        s.insert_session(&s1).unwrap();
        s.insert_session(&orphan).unwrap();
        let grant = |id: &str, started_at: i64, expires_at: i64| StoredBreakGlass {
            id: id.into(),
            account_id: "a1".into(),
            session_id: "s1".into(),
            sealed_reason: vec![1, 2, 3],
            dek: DekId(1),
            started_at,
            expires_at,
            ended_at: None,
            reviewed_at: None,
            reviewed_by: None,
        };
        let context = |token: u8, now: i64| s.request_context(&[token; 32], now).unwrap();
        assert_eq!(context(9, 1000), None, "unknown token");
        assert_eq!(
            context(1, 1000),
            Some(RequestContext {
                session: s1.clone(),
                account: Some(alice.clone()),
                break_glass: None,
            })
        );
        assert_eq!(
            context(2, 1000),
            Some(RequestContext {
                session: orphan.clone(),
                account: None,
                break_glass: None,
            }),
            "a session whose account is gone"
        );
        let (early, late) = (grant("g1", 100, 4000), grant("g2", 200, 3000));
        s.insert_break_glass(&early).unwrap();
        s.insert_break_glass(&late).unwrap();
        // The same grant as the lookup of its own, at every time.
        for now in [150, 250, 2999, 3000, 3999, 4000] {
            let got = context(1, now).unwrap();
            assert_eq!(got.session, s1);
            assert_eq!(got.account.as_ref(), Some(&alice));
            assert_eq!(
                got.break_glass,
                s.active_break_glass("s1", now).unwrap(),
                "at {now}"
            );
        }
        assert_eq!(context(1, 250).unwrap().break_glass, Some(late.clone()));
        assert_eq!(context(1, 3500).unwrap().break_glass, Some(early.clone()));
        assert_eq!(context(1, 4000).unwrap().break_glass, None, "expired");
        assert_eq!(
            context(2, 250).unwrap().break_glass,
            None,
            "another session's"
        );
        s.end_break_glass("s1", 300).unwrap();
        assert_eq!(context(1, 350).unwrap().break_glass, None, "ended");
    });
}

#[test]
fn enrolment_codes_are_replaced_spent_once_and_expire() {
    each_backend(|s, reopen| {
        s.create_account(&account("a1", "ann")).unwrap();
        let code = |hash: u8, expires_at: i64| StoredEnrolmentCode {
            account_id: "a1".into(),
            code_hash: [hash; 32],
            issued_by: Some("admin".into()),
            created_at: 100,
            expires_at,
        };
        assert_eq!(s.enrolment_code("a1").unwrap(), None);
        s.set_enrolment_code(&code(1, 1000)).unwrap();
        s.set_enrolment_code(&code(2, 1000)).unwrap();
        let s = reopen();
        assert_eq!(s.enrolment_code("a1").unwrap(), Some(code(2, 1000)));
        assert!(
            !s.take_enrolment_code("a1", &[1; 32], 500).unwrap(),
            "replaced"
        );
        assert!(
            !s.take_enrolment_code("a2", &[2; 32], 500).unwrap(),
            "another account's"
        );
        assert!(
            !s.take_enrolment_code("a1", &[2; 32], 1000).unwrap(),
            "expired"
        );
        // Spent by exactly one of several concurrent redemptions.
        let wins: usize = std::thread::scope(|t| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    t.spawn(|| usize::from(s.take_enrolment_code("a1", &[2; 32], 999).unwrap()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
        assert_eq!(s.enrolment_code("a1").unwrap(), None);
    });
}

#[test]
fn resetting_an_account_removes_its_password_factors_and_sessions_at_once() {
    each_backend(|s, _| {
        s.create_account(&account("a1", "ann")).unwrap();
        s.create_account(&account("a2", "bob")).unwrap();
        for a in ["a1", "a2"] {
            s.set_totp(
                a,
                &StoredTotp {
                    sealed_secret: vec![1],
                    dek: DekId(1),
                    last_step: None,
                    created_at: 1,
                },
            )
            .unwrap();
            s.replace_recovery_codes(a, &[[3; 32]], 1).unwrap();
        }
        s.insert_session(&session("s1", "a1", 1, None)).unwrap();
        s.insert_session(&session("s2", "a2", 2, None)).unwrap();
        assert!(s.reset_account("a1", "unassigned", 200).unwrap());
        assert!(!s.reset_account("nobody", "unassigned", 200).unwrap());
        let a = s.account("a1").unwrap().unwrap();
        assert_eq!(
            (a.password_hash, a.role.as_str(), a.updated_at),
            (None, "unassigned", 200)
        );
        assert!(s.totp("a1").unwrap().is_none());
        assert_eq!(s.recovery_codes_left("a1").unwrap(), 0);
        assert_eq!(s.session("s1").unwrap().unwrap().revoked_at, Some(200));
        // Nobody else's.
        assert!(s.totp("a2").unwrap().is_some());
        assert_eq!(s.session("s2").unwrap().unwrap().revoked_at, None);
        assert!(s.account("a2").unwrap().unwrap().password_hash.is_some());
    });
}

fn request(id: &str, kind: RequestKind, account: &str, created_at: i64) -> StoredAccessRequest {
    StoredAccessRequest {
        id: id.into(),
        kind,
        account_id: account.into(),
        role: (kind == RequestKind::Role).then(|| "pharmacist".to_string()),
        previous_role: (kind == RequestKind::Role).then(|| "unassigned".to_string()),
        api_key_id: (kind == RequestKind::ApiKey).then(|| "k1".to_string()),
        requested_by: Some("admin1".into()),
        created_at,
        expires_at: created_at + 1000,
        status: RequestStatus::Pending,
        decided_by: None,
        decided_at: None,
    }
}

#[test]
fn access_requests_supersede_expire_and_are_decided_once_with_their_effect() {
    each_backend(|s, reopen| {
        let mut ann = account("a1", "ann");
        ann.role = "unassigned".into();
        s.create_account(&ann).unwrap();
        s.create_account(&account("a2", "bob")).unwrap();
        s.insert_access_request(&request("r1", RequestKind::Role, "a1", 100))
            .unwrap();
        s.insert_access_request(&request("r2", RequestKind::Role, "a2", 110))
            .unwrap();
        // A later request for the same person supersedes the earlier one.
        s.insert_access_request(&request("r3", RequestKind::Role, "a1", 120))
            .unwrap();
        let s = reopen();
        let r1 = s.access_request("r1").unwrap().unwrap();
        assert_eq!(
            (r1.status, r1.decided_at),
            (RequestStatus::Superseded, Some(120))
        );
        let pending: Vec<String> = s
            .access_requests(Some(200))
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(pending, vec!["r2", "r3"], "oldest first, pending only");
        assert_eq!(s.access_requests(None).unwrap().len(), 3);
        assert!(
            s.access_requests(Some(1110))
                .unwrap()
                .iter()
                .all(|r| r.id != "r2"),
            "expired at 1110"
        );
        assert!(
            !s.decide_access_request("r1", true, None, 200).unwrap(),
            "superseded"
        );
        assert!(
            !s.decide_access_request("r2", true, None, 1110).unwrap(),
            "expired"
        );
        assert_eq!(s.account("a1").unwrap().unwrap().role, "unassigned");
        // Approved by exactly one of concurrent approvers; the role given.
        let wins: usize = std::thread::scope(|t| {
            let handles: Vec<_> = ["b1", "b2", "b3"]
                .into_iter()
                .map(|by| {
                    let s = &s;
                    t.spawn(move || {
                        usize::from(s.decide_access_request("r3", true, Some(by), 300).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
        let r3 = s.access_request("r3").unwrap().unwrap();
        assert_eq!(r3.status, RequestStatus::Approved);
        assert!(r3.decided_by.is_some() && r3.decided_at == Some(300));
        let a1 = s.account("a1").unwrap().unwrap();
        assert_eq!((a1.role.as_str(), a1.updated_at), ("pharmacist", 300));
        assert!(
            !s.decide_access_request("r3", false, None, 301).unwrap(),
            "decided once"
        );
        // A refusal changes nothing but the request; by the local operator
        // (no id).
        assert!(s.decide_access_request("r2", false, None, 400).unwrap());
        let r2 = s.access_request("r2").unwrap().unwrap();
        assert_eq!(
            (r2.status, r2.decided_by, r2.decided_at),
            (RequestStatus::Refused, None, Some(400))
        );
        assert_eq!(s.account("a2").unwrap().unwrap().role, "pharmacist");
        // A direct role change supersedes what is pending.
        s.insert_access_request(&request("r4", RequestKind::Role, "a2", 500))
            .unwrap();
        assert_eq!(s.supersede_role_requests("a2", 510).unwrap(), 1);
        assert_eq!(
            s.access_request("r4").unwrap().unwrap().status,
            RequestStatus::Superseded
        );
    });
}

#[test]
fn a_pending_api_key_is_usable_once_approved_and_revoked_if_refused() {
    each_backend(|s, _| {
        let key = |id: &str, n: u8| StoredApiKey {
            id: id.into(),
            key_hash: [n; 32],
            account_id: "svc".into(),
            scopes: "patients.read".into(),
            allowed_sources: String::new(),
            created_at: 10,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            pending: true,
        };
        s.insert_api_key(&key("k1", 1)).unwrap();
        s.insert_api_key(&key("k2", 2)).unwrap();
        assert!(s.api_key_by_hash(&[1; 32]).unwrap().unwrap().pending);
        let mut r1 = request("q1", RequestKind::ApiKey, "svc", 100);
        r1.api_key_id = Some("k1".into());
        let mut r2 = request("q2", RequestKind::ApiKey, "svc", 100);
        r2.api_key_id = Some("k2".into());
        s.insert_access_request(&r1).unwrap();
        s.insert_access_request(&r2).unwrap();
        assert_eq!(
            s.access_request("q1").unwrap().unwrap().status,
            RequestStatus::Pending,
            "requests for different keys do not supersede each other"
        );
        assert!(
            s.decide_access_request("q1", true, Some("po"), 200)
                .unwrap()
        );
        assert!(
            s.decide_access_request("q2", false, Some("po"), 200)
                .unwrap()
        );
        let k1 = s.api_key_by_hash(&[1; 32]).unwrap().unwrap();
        assert!(!k1.pending && k1.revoked_at.is_none());
        let k2 = s.api_key_by_hash(&[2; 32]).unwrap().unwrap();
        assert!(k2.pending && k2.revoked_at == Some(200));
    });
}

#[test]
fn identity_settings_are_kept_and_replaced() {
    each_backend(|s, reopen| {
        assert_eq!(s.setting("single-operator").unwrap(), None);
        s.set_setting("single-operator", "on").unwrap();
        s.set_setting("single-operator", "off").unwrap();
        assert_eq!(
            reopen().setting("single-operator").unwrap().as_deref(),
            Some("off")
        );
    });
}

#[test]
fn migration_4_keeps_the_api_keys_of_a_version_3_database_usable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    drop(SqliteStore::create(&path).unwrap());
    // Roll the database back to version 3 with a key issued then, as an
    // older rxvault left it.
    let script = "DROP TABLE auth_enrolment_codes; DROP TABLE auth_access_requests; \
         DROP TABLE auth_settings; DROP TABLE sealed_documents; DROP TABLE detect_state; DROP TABLE detect_settings; DROP TABLE detect_alerts; DROP TABLE detect_outbox; ALTER TABLE auth_api_keys DROP COLUMN pending; \
         INSERT INTO auth_api_keys (id, key_hash, account_id, scopes, allowed_sources, \
         created_at) VALUES ('old', zeroblob(32), 'svc', 'patients.read', '', 1); \
         UPDATE meta SET value = '3' WHERE key = 'schema_version';";
    let out = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg(script)
        .output()
        .expect("sqlite3 is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auth = SqlAuthStore::open_sqlite(&path).unwrap();
    let old = auth.api_keys(None).unwrap();
    assert_eq!(old.len(), 1);
    assert!(!old[0].pending, "keys from before approvals stay usable");
    assert_eq!(
        SqliteStore::open(&path).unwrap().schema_version().unwrap(),
        rxvault_store::schema::CURRENT
    );
    assert_eq!(auth.access_requests(None).unwrap(), vec![]);
}

fn document(id: &str, revision: u64, dek: u32, sealed: &[u8]) -> StoredDocument {
    StoredDocument {
        namespace: "breach-incident".into(),
        id: id.into(),
        revision,
        dek: DekId(dek),
        sealed: sealed.to_vec(),
        created_at: 100,
        updated_at: 100 + revision as i64,
    }
}

#[test]
fn sealed_documents_are_created_once_replaced_by_revision_and_count_their_keys() {
    each_backend(|s, reopen| {
        assert_eq!(s.sealed_document("breach-incident", "i1").unwrap(), None);
        assert!(
            s.put_sealed_document(&document("i1", 1, 30, b"one"))
                .unwrap()
        );
        assert!(
            !s.put_sealed_document(&document("i1", 1, 30, b"again"))
                .unwrap(),
            "an id is created once"
        );
        assert!(
            s.put_sealed_document(&document("i2", 1, 31, b"two"))
                .unwrap()
        );
        // A replacement names the revision it follows: a stale writer loses.
        assert!(
            s.put_sealed_document(&document("i1", 2, 31, b"one-b"))
                .unwrap()
        );
        assert!(
            !s.put_sealed_document(&document("i1", 2, 31, b"stale"))
                .unwrap()
        );
        assert!(
            !s.put_sealed_document(&document("i9", 2, 31, b"none"))
                .unwrap(),
            "no document to replace"
        );
        assert!(s.put_sealed_document(&document("i1", 0, 31, b"x")).is_err());
        let s = reopen();
        assert_eq!(
            s.sealed_document("breach-incident", "i1").unwrap(),
            Some(document("i1", 2, 31, b"one-b"))
        );
        assert_eq!(s.sealed_document("other", "i1").unwrap(), None);
        assert_eq!(
            s.sealed_documents("breach-incident").unwrap(),
            vec![
                document("i1", 2, 31, b"one-b"),
                document("i2", 1, 31, b"two")
            ]
        );
        assert_eq!(s.sealed_dek_usage().unwrap(), vec![(DekId(31), 2)]);
    });
}
