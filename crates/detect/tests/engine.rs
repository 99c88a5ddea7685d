//! The engine, rule by rule, on hand-made entries: each rule fires when it
//! should and stays quiet when it should not, once per window, and a
//! replayed entry is never processed twice.

use rxvault_audit::{
    Action, Actor, Entry, ExportFormat, ExportProtection, KindCategories, LoggedEntry, Outcome,
    WriteOp,
};
use rxvault_detect::{Engine, Finding, Rules, State};
use rxvault_model::{CategorySet, RecordKind, Rid};
use std::collections::HashSet;

const T0: i64 = 1_796_083_200_000; // 2026-12-01 (a Tuesday) 00:00 UTC
const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;

fn rid(i: u64) -> Rid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&i.to_be_bytes());
    b[8] = 0xA5;
    Rid(b)
}

struct Log {
    engine: Engine,
    next: u64,
    findings: Vec<Finding>,
}

impl Log {
    fn new(rules: Rules, honey: &[u64]) -> Log {
        let honey: HashSet<Rid> = honey.iter().map(|&i| rid(i)).collect();
        Log {
            engine: Engine::new(rules, jiff::tz::TimeZone::UTC, honey, State::default()).unwrap(),
            next: 0,
            findings: Vec::new(),
        }
    }

    fn push(&mut self, time_ms: i64, entry: Entry) -> u64 {
        let e = LoggedEntry {
            index: self.next,
            time_ms,
            entry,
        };
        self.next += 1;
        self.engine.process(&e, &mut self.findings);
        e.index
    }

    fn fired(&self, rule: &str) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.rule == rule).collect()
    }
}

fn read(user: &str, session: &str, patients: &[u64]) -> Entry {
    let mut e = Entry::new(
        Actor::user(user),
        Action::Read {
            kind: Some(RecordKind::Patient),
            categories: CategorySet::ALL,
        },
    );
    e.session = Some(session.into());
    e.host = Some("ws-1".into());
    e.source = Some("10.0.0.5".parse().unwrap());
    e.patients = patients.iter().map(|&i| rid(i)).collect();
    e
}

fn write(patients: &[u64]) -> Entry {
    let mut e = Entry::new(
        Actor::service("erx-intake"),
        Action::Write {
            kind: Some(RecordKind::Prescription),
            operation: WriteOp::Create,
            records: patients.len() as u64,
        },
    );
    e.patients = patients.iter().map(|&i| rid(i)).collect();
    e
}

/// Writes that explain every patient below `n`.
fn activity(log: &mut Log, n: u64, at: i64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        log.push(at, write(chunk));
    }
}

#[test]
fn a_honeytoken_fires_on_a_read_a_search_hit_and_an_export_and_only_then() {
    let mut log = Log::new(Rules::default(), &[777]);
    activity(&mut log, 1000, T0);
    log.push(T0 + 10 * HOUR, read("pat", "s1", &[1, 2, 3]));
    assert!(log.fired("honeytoken").is_empty());
    log.push(T0 + 10 * HOUR, read("pat", "s1", &[777]));
    let mut search = Entry::new(
        Actor::user("sam"),
        Action::Search {
            query: "family-birth-date".into(),
            results: 2,
            kind: Some(RecordKind::Patient),
            categories: Some(CategorySet::ALL),
        },
    );
    search.patients = vec![rid(5), rid(777)];
    log.push(T0 + 10 * HOUR, search);
    let mut export = Entry::new(
        Actor::local("root"),
        Action::ExportStarted {
            export_id: "x1".into(),
            format: ExportFormat::FhirNdjson,
            destination: "out".into(),
            protection: ExportProtection::Age {
                recipients: vec!["age1...".into()],
            },
            categories: KindCategories::new(),
            records: 3,
        },
    );
    export.patients = vec![rid(1), rid(777)];
    log.push(T0 + 10 * HOUR, export);
    let h = log.fired("honeytoken");
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(
        h.iter()
            .all(|f| f.severity == rxvault_detect::Severity::Critical)
    );
    assert_eq!(h[0].principal.as_ref().unwrap().id, "pat");
    assert_eq!(h[0].session.as_deref(), Some("s1"));
}

#[test]
fn bulk_reading_fires_at_the_floor_once_per_hour() {
    let mut rules = Rules::default();
    rules.volume_hour.floor = 100;
    let mut log = Log::new(rules, &[]);
    activity(&mut log, 5000, T0);
    let start = T0 + 10 * HOUR;
    for i in 0..100 {
        log.push(start + i, read("mallory", "s9", &[i as u64]));
    }
    assert!(
        log.fired("volume_hour").is_empty(),
        "100 is the floor, not above it"
    );
    // The same patients again do not count.
    log.push(start + 200, read("mallory", "s9", &[5]));
    assert!(log.fired("volume_hour").is_empty());
    log.push(start + 300, read("mallory", "s9", &[100]));
    let v = log.fired("volume_hour");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].patients, 101);
    for i in 101..400 {
        log.push(start + 400 + i, read("mallory", "s9", &[i as u64]));
    }
    assert_eq!(log.fired("volume_hour").len(), 1, "once per window");
    // The next hour is a new window.
    for i in 1000..1102 {
        log.push(start + HOUR + i, read("mallory", "s9", &[i as u64]));
    }
    assert_eq!(log.fired("volume_hour").len(), 2);
}

#[test]
fn the_baseline_catches_a_quiet_account_far_below_the_floor() {
    let mut log = Log::new(Rules::default(), &[]);
    activity(&mut log, 10_000, T0);
    // 30 working hours of 5 patients each: median 5, MAD 0 (taken as 1).
    let mut p = 0u64;
    for h in 0..30 {
        for _ in 0..5 {
            log.push(T0 + h * HOUR + 1000, read("quiet", "q", &[p]));
            p += 1;
        }
    }
    assert!(log.fired("volume_hour").is_empty());
    // Then 60 in an hour: z = (60 - 5) / 1.4826 = 37 > 8, and 60 >= 40.
    for _ in 0..60 {
        log.push(T0 + 40 * HOUR + 1000, read("quiet", "q", &[p]));
        p += 1;
    }
    let v = log.fired("volume_hour");
    assert_eq!(v.len(), 1, "{:?}", log.findings);
    assert!(v[0].detail.contains("robust z"), "{}", v[0].detail);
    // Another account of the same size with no history is under the floor.
    let mut other = Log::new(Rules::default(), &[]);
    activity(&mut other, 10_000, T0);
    for i in 0..60 {
        other.push(T0 + HOUR, read("new", "n", &[i]));
    }
    assert!(other.fired("volume_hour").is_empty());
}

#[test]
fn low_and_slow_is_caught_by_the_week_before_a_thousand() {
    let mut log = Log::new(Rules::default(), &[]);
    activity(&mut log, 100_000, T0);
    // 200 new patients a day, spread over working hours: under the hourly
    // and daily floors.
    let mut p = 0u64;
    let mut caught_at = None;
    for day in 0..30 {
        for i in 0..200 {
            let t = T0 + day * 24 * HOUR + 9 * HOUR + i * 2 * MIN;
            log.push(t, read("slow", &format!("d{day}"), &[p]));
            p += 1;
            if caught_at.is_none() && !log.fired("volume_week").is_empty() {
                caught_at = Some(p);
            }
        }
    }
    assert!(log.fired("volume_hour").is_empty());
    assert!(log.fired("volume_day").is_empty());
    let n = caught_at.expect("the seven-day window fired");
    assert!(n <= 1000, "caught after {n} patients");
}

#[test]
fn unexplained_reads_alert_and_explained_ones_do_not() {
    let mut log = Log::new(Rules::default(), &[]);
    // Patients 0..100 have prescriptions; 1000.. have nothing recent.
    activity(&mut log, 100, T0);
    let t = T0 + 9 * HOUR;
    for i in 0..50 {
        log.push(t + i as i64 * MIN, read("pat", "s", &[i]));
    }
    // A walk-in: unexplained when read, explained by the prescription
    // typed in ten minutes later.
    log.push(t + 60 * MIN, read("pat", "s", &[500]));
    log.push(t + 70 * MIN, write(&[500]));
    // Snooping: six neighbours nothing explains.
    for i in 0..5 {
        log.push(t + 80 * MIN + i, read("pat", "s", &[1000 + i as u64]));
    }
    log.push(t + 200 * MIN, read("pat", "s", &[1]));
    assert!(log.fired("unexplained").is_empty(), "five is under six");
    log.push(t + 201 * MIN, read("pat", "s", &[1005]));
    // Decided once the grace period has passed.
    log.push(t + 300 * MIN, read("pat", "s", &[2]));
    let u = log.fired("unexplained");
    assert_eq!(u.len(), 1, "{:?}", log.findings);
    assert_eq!(u[0].patients, 6);
    let s = &log.engine.state().stats;
    assert_eq!(s.accesses, 50 + 1 + 6 + 2);
    assert_eq!(
        s.explained,
        50 + 1 + 2,
        "the walk-in is explained by its write"
    );
}

#[test]
fn off_hours_alone_is_quiet_and_with_a_new_device_alerts() {
    let mut log = Log::new(Rules::default(), &[]);
    activity(&mut log, 100, T0);
    // Known device at work hours.
    log.push(T0 + 10 * HOUR, read("pat", "day1", &[1]));
    // Working late on the known device: off-hours only.
    log.push(T0 + 23 * HOUR, read("pat", "late", &[2]));
    // A new device in the day: first-seen only.
    let mut e = read("pat", "newdev", &[3]);
    e.host = Some("laptop-x".into());
    log.push(T0 + 34 * HOUR, e);
    assert!(log.findings.is_empty(), "{:?}", log.findings);
    // Stolen credentials: another new device and address, at 3 a.m.
    let mut e = read("pat", "night", &[4]);
    e.host = Some("kali".into());
    e.source = Some("203.0.113.9".parse().unwrap());
    log.push(T0 + 51 * HOUR, e);
    let c = log.fired("corroborated");
    assert_eq!(c.len(), 1, "{:?}", log.findings);
    assert_eq!(c[0].session.as_deref(), Some("night"));
}

#[test]
fn credential_bursts_and_spraying() {
    let mut log = Log::new(Rules::default(), &[]);
    let fail = |user: &str, ip: &str| {
        let mut e = Entry::new(
            Actor::user(user),
            Action::AuthFailure {
                method: "password".into(),
                reason: "bad-password".into(),
            },
        )
        .outcome(Outcome::Denied);
        e.source = Some(ip.parse().unwrap());
        e
    };
    for i in 0..7 {
        log.push(T0 + i * 1000, fail("pat", "10.0.0.9"));
    }
    assert!(log.fired("credential_burst").is_empty());
    log.push(T0 + 8000, fail("pat", "10.0.0.9"));
    assert_eq!(log.fired("credential_burst").len(), 1);
    // Spraying: one address, many names (one guess each).
    for (i, name) in ["ann", "bob", "cat", "dan"].iter().enumerate() {
        log.push(T0 + HOUR + i as i64, fail(name, "198.51.100.7"));
    }
    assert!(log.fired("password_spray").is_empty());
    log.push(T0 + HOUR + 10, fail("eve", "198.51.100.7"));
    let s = log.fired("password_spray");
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].group.contains("198.51.100.7"));
}

#[test]
fn plaintext_and_large_exports_break_glass_and_reports() {
    let mut log = Log::new(Rules::default(), &[]);
    let export = |n: u64, plaintext: bool| {
        let mut e = Entry::new(
            Actor::user("pat"),
            Action::ExportStarted {
                export_id: "e".into(),
                format: ExportFormat::ShippingCsv,
                destination: "x.csv".into(),
                protection: if plaintext {
                    ExportProtection::Plaintext
                } else {
                    ExportProtection::Age {
                        recipients: vec!["age1".into()],
                    }
                },
                categories: KindCategories::new(),
                records: n,
            },
        );
        e.patients = (0..n).map(rid).collect();
        e
    };
    log.push(T0, export(20, false));
    assert!(log.findings.is_empty());
    log.push(T0, export(20, true));
    assert_eq!(log.fired("plaintext_export").len(), 1);
    log.push(T0, export(600, false));
    assert_eq!(log.fired("large_export").len(), 1);
    log.push(
        T0,
        Entry::new(
            Actor::user("pat"),
            Action::BreakGlass {
                reason: "unconscious patient".into(),
            },
        ),
    );
    assert_eq!(log.fired("break_glass").len(), 1);
    let mut agent = Entry::new(
        Actor::service("agent-ws-7"),
        Action::Alert {
            kind: "ransomware".into(),
            detail: "process suspended".into(),
        },
    );
    agent.host = Some("ws-7".into());
    log.push(T0, agent);
    let r = log.fired("reported");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].response, rxvault_detect::Response::BlockHost);
    // The detector's own entries are not findings.
    log.push(
        T0,
        Entry::new(
            Actor {
                kind: rxvault_audit::ActorKind::System,
                id: rxvault_detect::DETECTOR_ACTOR.into(),
            },
            Action::Alert {
                kind: "x".into(),
                detail: "y".into(),
            },
        ),
    );
    assert_eq!(log.fired("reported").len(), 1);
}

#[test]
fn an_entry_delivered_again_is_not_processed_again_and_state_round_trips() {
    let mut rules = Rules::default();
    rules.volume_hour.floor = 10;
    let mut log = Log::new(rules.clone(), &[]);
    activity(&mut log, 100, T0);
    let mut entries = Vec::new();
    for i in 0..20u64 {
        entries.push(LoggedEntry {
            index: log.next + i,
            time_ms: T0 + HOUR + i as i64,
            entry: read("m", "s", &[i]),
        });
    }
    for e in &entries[..8] {
        log.engine.process(e, &mut log.findings);
    }
    // Snapshot, restore, then the whole batch again (a redelivery).
    let json = serde_json::to_vec(log.engine.state()).unwrap();
    let state: State = serde_json::from_slice(&json).unwrap();
    let mut restored = Engine::new(rules, jiff::tz::TimeZone::UTC, HashSet::new(), state).unwrap();
    let mut findings = Vec::new();
    for e in &entries {
        restored.process(e, &mut findings);
    }
    for e in &entries {
        restored.process(e, &mut findings);
    }
    let v: Vec<_> = findings
        .iter()
        .filter(|f| f.rule == "volume_hour")
        .collect();
    assert_eq!(v.len(), 1, "{findings:?}");
    assert_eq!(v[0].patients, 11);
    assert_eq!(restored.state().stats.accesses, 20);
}
