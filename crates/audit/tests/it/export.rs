//! Exports: JSON lines, FHIR R4 AuditEvent (codes per action), syslog RFC
//! 5424 over real UDP, TCP and TLS listeners on the loopback.

use crate::common::patient;
use rxvault_audit::export::fhir::{BundleWriter, FhirContext, audit_event};
use rxvault_audit::export::jsonl;
use rxvault_audit::export::syslog::{self, Sender, SyslogConfig, Transport};
use rxvault_audit::{Action, Actor, Entry, LoggedEntry, Outcome, WriteOp};
use rxvault_model::{CategorySet, FieldCategory, RecordKind};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

fn logged(index: u64, entry: Entry) -> LoggedEntry {
    LoggedEntry {
        index,
        time_ms: 1_795_874_587_123,
        entry,
    }
}

fn read_entry() -> LoggedEntry {
    logged(
        7,
        Entry::new(
            Actor::user("alice"),
            Action::Read {
                kind: Some(RecordKind::Patient),
                categories: CategorySet::of(&[FieldCategory::Demographics, FieldCategory::Contact]),
            },
        )
        .session("s-1")
        .source(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)))
        .host("ws-12")
        .patients([patient(1)]),
    )
}

fn all_actions() -> Vec<LoggedEntry> {
    let mk = |i, a: Action| logged(i, Entry::new(Actor::user("bob"), a).patients([patient(i)]));
    vec![
        read_entry(),
        mk(
            1,
            Action::Search {
                query: "phone".into(),
                results: 2,
                kind: Some(RecordKind::Patient),
                categories: Some(CategorySet::of(&[FieldCategory::Demographics])),
            },
        ),
        mk(
            2,
            Action::Write {
                kind: Some(RecordKind::Fill),
                operation: WriteOp::Create,
                records: 1,
            },
        ),
        mk(
            3,
            Action::Write {
                kind: None,
                operation: WriteOp::Update,
                records: 3,
            },
        ),
        mk(
            4,
            Action::Export {
                export_id: "e-1".into(),
                file: "out/".into(),
                records: 9,
                patients: 1,
            },
        ),
        mk(
            5,
            Action::BreakGlass {
                reason: "ER admission".into(),
            },
        ),
        mk(
            6,
            Action::AuthSuccess {
                method: "password".into(),
            },
        ),
        mk(
            8,
            Action::AuthFailure {
                method: "password".into(),
                reason: "bad-password".into(),
            },
        )
        .with_outcome(Outcome::Denied),
        mk(
            9,
            Action::MfaFailure {
                method: "totp".into(),
                reason: Some("wrong-code".into()),
            },
        )
        .with_outcome(Outcome::Denied),
        mk(
            10,
            Action::Lockout {
                until_ms: Some(1_795_874_600_000),
            },
        )
        .with_outcome(Outcome::Denied),
        mk(11, Action::Logout),
        mk(
            12,
            Action::UserAdmin {
                operation: "disable".into(),
                target: "carol".into(),
            },
        ),
        mk(
            13,
            Action::RoleAdmin {
                operation: "grant".into(),
                role: "pharmacist".into(),
                target: Some("dan".into()),
            },
        ),
        mk(
            14,
            Action::KeyAdmin {
                operation: "rotate-kek".into(),
                rotation: Some(rxvault_audit::KeyRotation {
                    step: rxvault_audit::RotationStep::Finished,
                    from: 1,
                    to: 2,
                    reencrypt: true,
                    phase: None,
                    rewrapped: Some(3),
                    resealed: Some(40),
                    reason: None,
                }),
            },
        ),
        mk(
            15,
            Action::Backup {
                operation: "create".into(),
                backup_id: Some("b1".into()),
            },
        ),
        mk(
            16,
            Action::Alert {
                kind: "mass-read".into(),
                detail: "400 charts in 5 min".into(),
            },
        ),
        mk(17, Action::Other("x \"quoted\" ]".into())).with_outcome(Outcome::Error),
        mk(
            18,
            Action::MfaSuccess {
                method: "webauthn".into(),
            },
        ),
    ]
}

trait WithOutcome {
    fn with_outcome(self, o: Outcome) -> Self;
}

impl WithOutcome for LoggedEntry {
    fn with_outcome(mut self, o: Outcome) -> Self {
        self.entry.outcome = o;
        self
    }
}

fn ctx() -> FhirContext {
    FhirContext {
        vault_id: "0123abcd".into(),
    }
}

fn code(v: &Value) -> (String, String) {
    (
        v["system"].as_str().unwrap().to_string(),
        v["code"].as_str().unwrap().to_string(),
    )
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const REST: &str = "http://hl7.org/fhir/restful-interaction";

#[test]
fn fhir_audit_events_carry_the_usual_codes() {
    type Want<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a str);
    let want: Vec<Want<'_>> = vec![
        ("110110", Some((REST, "read")), "R"),
        ("110110", Some((REST, "search-type")), "E"),
        ("110110", Some((REST, "create")), "C"),
        ("110110", Some((REST, "update")), "U"),
        ("110106", None, "R"),
        ("110113", Some((DCM, "110127")), "E"),
        ("110114", Some((DCM, "110122")), "E"),
        ("110114", Some((DCM, "110122")), "E"),
        ("110114", Some((DCM, "110122")), "E"),
        ("110114", Some((DCM, "110122")), "E"),
        ("110114", Some((DCM, "110123")), "E"),
        ("110113", Some((DCM, "110137")), "E"),
        ("110113", Some((DCM, "110136")), "E"),
        ("110113", Some((DCM, "110129")), "E"),
        ("110100", Some(("urn:rxvault:audit-action", "backup")), "E"),
        ("110113", Some(("urn:rxvault:audit-action", "alert")), "E"),
        ("110100", Some(("urn:rxvault:audit-action", "other")), "E"),
        ("110114", Some((DCM, "110122")), "E"),
    ];
    for (e, (ty, sub, action)) in all_actions().iter().zip(want) {
        let ev = audit_event(e, &ctx());
        let what = e.entry.action.kind();
        assert_eq!(ev["resourceType"], "AuditEvent");
        assert_eq!(
            code(&ev["type"]),
            (DCM.to_string(), ty.to_string()),
            "{what}"
        );
        match sub {
            Some((s, c)) => assert_eq!(
                code(&ev["subtype"][0]),
                (s.to_string(), c.to_string()),
                "{what}"
            ),
            None => assert!(ev.get("subtype").is_none()),
        }
        assert_eq!(ev["action"], action, "{what}");
        assert_eq!(ev["recorded"], "2026-11-28T14:03:07.123Z");
        let outcome = match e.entry.outcome {
            Outcome::Success => "0",
            Outcome::Denied => "4",
            Outcome::Error => "8",
        };
        assert_eq!(ev["outcome"], outcome);
        assert_eq!(ev["agent"][0]["requestor"], true);
        assert_eq!(
            ev["agent"][0]["who"]["identifier"]["value"],
            "bob"
                .to_string()
                .as_str()
                .to_owned()
                .replace("bob", e.entry.actor.id.as_str())
        );
        assert_eq!(ev["id"], format!("0123abcd-{}", e.index));
        // Patients by record key only, with the Patient role.
        let patients: Vec<&Value> = ev["entity"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["role"]["code"] == "1")
            .collect();
        assert_eq!(patients.len(), 1);
        assert_eq!(
            patients[0]["what"]["identifier"]["system"],
            "urn:rxvault:record-key"
        );
        assert_eq!(
            patients[0]["what"]["identifier"]["value"],
            e.entry.patients[0].to_string()
        );
    }
    // Break-glass: the purpose of use.
    let bg = audit_event(&all_actions()[5], &ctx());
    assert_eq!(
        code(&bg["purposeOfEvent"][0]["coding"][0]),
        (
            "http://terminology.hl7.org/CodeSystem/v3-ActReason".into(),
            "ETREAT".into()
        )
    );
    // The read: agent network address, host agent, session, categories.
    let r = audit_event(&read_entry(), &ctx());
    assert_eq!(r["agent"][0]["network"]["address"], "10.0.0.7");
    assert_eq!(r["agent"][0]["network"]["type"], "2");
    assert_eq!(r["agent"][1]["who"]["identifier"]["value"], "ws-12");
    assert_eq!(r["agent"][0]["extension"][0]["valueString"], "s-1");
    let details = r["entity"].to_string();
    assert!(details.contains("demographics,contact"), "{details}");
}

#[test]
fn bundles_and_json_lines_parse_back() {
    let entries = all_actions();
    let mut out = Vec::new();
    let mut w = BundleWriter::start(&mut out, ctx(), 0).unwrap();
    for e in &entries {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
    let bundle: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert_eq!(bundle["entry"].as_array().unwrap().len(), entries.len());
    assert_eq!(bundle["entry"][3]["resource"]["resourceType"], "AuditEvent");
    let mut empty = Vec::new();
    BundleWriter::start(&mut empty, ctx(), 0)
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&empty).unwrap()["entry"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let mut lines = Vec::new();
    for e in &entries {
        jsonl::write(&mut lines, e).unwrap();
    }
    let parsed: Vec<Value> = lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), entries.len());
    assert_eq!(parsed[0]["actor"]["id"], "alice");
    assert_eq!(parsed[0]["action"]["type"], "read");
    assert_eq!(parsed[0]["action"]["details"]["categories"][1], "contact");
    assert_eq!(parsed[5]["action"]["details"]["reason"], "ER admission");
}

/// Parses an RFC 5424 message: (pri, header fields, SD params, msg).
fn parse5424(m: &str) -> (u16, Vec<String>, Vec<(String, String)>, String) {
    let rest = m.strip_prefix('<').unwrap();
    let (pri, rest) = rest.split_once(">1 ").unwrap();
    let mut header = Vec::new();
    let mut rest = rest;
    for _ in 0..5 {
        let (f, r) = rest.split_once(' ').unwrap();
        header.push(f.to_string());
        rest = r;
    }
    let sd = rest.strip_prefix("[audit@32473").unwrap();
    let mut params = Vec::new();
    let mut chars = sd.char_indices().peekable();
    let mut end = 0;
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' => {
                let name_end = sd[i + 1..].find('=').unwrap() + i + 1;
                let name = sd[i + 1..name_end].to_string();
                let mut value = String::new();
                let mut it = sd[name_end + 2..].chars();
                let mut consumed = name_end + 2;
                loop {
                    let c = it.next().unwrap();
                    consumed += c.len_utf8();
                    match c {
                        '\\' => {
                            let n = it.next().unwrap();
                            consumed += n.len_utf8();
                            value.push(n);
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
                params.push((name, value));
                while chars.peek().is_some_and(|(j, _)| *j < consumed) {
                    chars.next();
                }
            }
            ']' => {
                end = i;
                break;
            }
            _ => panic!("unexpected {c:?} in SD at {i}"),
        }
    }
    let msg = sd[end + 1..].strip_prefix(' ').unwrap().to_string();
    (pri.parse().unwrap(), header, params, msg)
}

#[test]
fn syslog_messages_are_rfc5424_with_escaped_structured_data() {
    let cfg = SyslogConfig {
        hostname: "vault-host".into(),
        ..Default::default()
    };
    let (pri, header, params, msg) = parse5424(&syslog::format(&read_entry(), &cfg));
    assert_eq!(pri, 10 * 8 + 6);
    assert_eq!(
        header,
        [
            "2026-11-28T14:03:07.123Z",
            "vault-host",
            "rxvault",
            "-",
            "read"
        ]
    );
    let get = |k: &str| {
        params
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("actor"), ["alice"]);
    assert_eq!(get("session"), ["s-1"]);
    assert_eq!(get("ip"), ["10.0.0.7"]);
    assert_eq!(get("categories"), ["demographics,contact"]);
    assert_eq!(get("patient"), [patient(1).to_string()]);
    assert!(msg.starts_with('\u{FEFF}'));
    // Quotes, backslashes and brackets survive; severities follow outcomes.
    for e in all_actions() {
        let (pri, _, params, _) = parse5424(&syslog::format(&e, &cfg));
        assert_eq!(pri % 8, u16::from(syslog::severity(&e)));
        if let Action::Other(text) = &e.entry.action {
            assert!(params.contains(&("detail".into(), text.clone())));
            assert_eq!(pri % 8, 3);
        }
        if matches!(e.entry.action, Action::BreakGlass { .. }) {
            assert_eq!(pri % 8, 4);
        }
    }
    // Many patients: capped, counted.
    let mut big = read_entry();
    big.entry.patients = (0..500).map(patient).collect();
    let (_, _, params, _) = parse5424(&syslog::format(&big, &cfg));
    assert_eq!(params.iter().filter(|(n, _)| n == "patient").count(), 50);
    assert!(params.contains(&("patients".into(), "500".into())));
}

/// What sign-in and key-rotation entries carry (issue 8, item 2): the
/// client's user agent, a second factor's failure reason and a rotation's
/// step reach every export.
#[test]
fn user_agents_failure_reasons_and_rotation_steps_reach_every_export() {
    let sign_in = logged(
        30,
        Entry::new(
            Actor::user("carol"),
            Action::MfaFailure {
                method: "totp".into(),
                reason: Some("replayed-code".into()),
            },
        )
        .source(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)))
        .user_agent("Mozilla/5.0 (X11)")
        .outcome(Outcome::Denied),
    );
    let json = jsonl::to_json(&sign_in);
    assert_eq!(json["user_agent"], "Mozilla/5.0 (X11)");
    assert_eq!(json["action"]["details"]["reason"], "replayed-code");
    // Entries without one have no user_agent member (older lines unchanged).
    assert!(jsonl::to_json(&read_entry()).get("user_agent").is_none());
    let ev = audit_event(&sign_in, &ctx());
    let ext = ev["agent"][0]["extension"].as_array().unwrap();
    assert!(
        ext.iter()
            .any(|x| x["url"] == "urn:rxvault:audit:user-agent"
                && x["valueString"] == "Mozilla/5.0 (X11)")
    );
    assert!(ev.to_string().contains("replayed-code"));
    let cfg = SyslogConfig::default();
    let (_, _, params, _) = parse5424(&syslog::format(&sign_in, &cfg));
    assert!(params.contains(&("userAgent".into(), "Mozilla/5.0 (X11)".into())));
    assert!(params.contains(&("reason".into(), "replayed-code".into())));

    let rotation = logged(
        31,
        Entry::new(
            Actor::local("root"),
            Action::KeyAdmin {
                operation: "rotate-kek".into(),
                rotation: Some(rxvault_audit::KeyRotation {
                    step: rxvault_audit::RotationStep::Failed,
                    from: 2,
                    to: 3,
                    reencrypt: true,
                    phase: None,
                    rewrapped: None,
                    resealed: None,
                    reason: Some("disk full".into()),
                }),
            },
        )
        .outcome(Outcome::Error),
    );
    let (pri, _, params, _) = parse5424(&syslog::format(&rotation, &cfg));
    assert_eq!(pri % 8, 3, "a failed rotation is an error");
    for (k, v) in [
        ("step", "failed"),
        ("fromKek", "2"),
        ("toKek", "3"),
        ("reencrypt", "true"),
        ("reason", "disk full"),
    ] {
        assert!(params.contains(&(k.into(), v.into())), "{k}: {params:?}");
    }
    let ev = audit_event(&rotation, &ctx());
    let text = ev.to_string();
    assert!(
        text.contains("\"from-kek\"") && text.contains("disk full"),
        "{text}"
    );
    assert_eq!(
        jsonl::to_json(&rotation)["action"]["details"]["rotation"]["step"],
        "failed"
    );
}

#[test]
fn syslog_over_udp_reaches_a_listener() {
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut s = Sender::connect(&Transport::Udp(listener.local_addr().unwrap())).unwrap();
    let entries = all_actions();
    for e in &entries {
        s.send_entry(e, &SyslogConfig::default()).unwrap();
    }
    assert_eq!(s.sent(), entries.len() as u64);
    s.finish().unwrap();
    let mut buf = vec![0u8; 65536];
    for e in &entries {
        let n = listener.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(text, syslog::format(e, &SyslogConfig::default()));
    }
}

/// Reads octet-counted frames until EOF.
fn frames(mut r: impl BufRead) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let mut len = Vec::new();
        if r.read_until(b' ', &mut len).unwrap() == 0 {
            return out;
        }
        let n: usize = std::str::from_utf8(&len[..len.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        let mut msg = vec![0u8; n];
        r.read_exact(&mut msg).unwrap();
        out.push(String::from_utf8(msg).unwrap());
    }
}

#[test]
fn syslog_over_tcp_is_octet_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        frames(BufReader::new(sock))
    });
    let entries = all_actions();
    let mut s = Sender::connect(&Transport::Tcp(addr)).unwrap();
    for e in &entries {
        s.send_entry(e, &SyslogConfig::default()).unwrap();
    }
    s.finish().unwrap();
    let got = server.join().unwrap();
    let want: Vec<String> = entries
        .iter()
        .map(|e| syslog::format(e, &SyslogConfig::default()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn syslog_over_tls_verifies_the_collector_and_delivers() {
    // A self-signed collector for "localhost".
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = server_config.clone();
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(cfg).unwrap();
        let stream = rustls::StreamOwned::new(conn, sock);
        frames(BufReader::new(stream))
    });
    // The CA file a SIEM operator would pass.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    let roots = syslog::load_certificates(&pem).unwrap();
    let entries = all_actions();
    let mut s = Sender::connect(&Transport::Tls {
        addr,
        server_name: "localhost".into(),
        roots: roots.clone(),
    })
    .unwrap();
    for e in &entries {
        s.send_entry(e, &SyslogConfig::default()).unwrap();
    }
    s.finish().unwrap();
    let got = server.join().unwrap();
    assert_eq!(got.len(), entries.len());
    assert_eq!(
        got[0],
        syslog::format(&entries[0], &SyslogConfig::default())
    );

    // The wrong name, or an untrusted certificate: refused at the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = server_config.clone();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (sock, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut stream = rustls::StreamOwned::new(conn, sock);
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
    });
    let wrong_name = Sender::connect(&Transport::Tls {
        addr,
        server_name: "siem.example".into(),
        roots,
    });
    assert!(matches!(wrong_name, Err(rxvault_audit::Error::Tls(_))));
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let untrusted = Sender::connect(&Transport::Tls {
        addr,
        server_name: "localhost".into(),
        roots: vec![other.cert.der().clone()],
    });
    assert!(matches!(untrusted, Err(rxvault_audit::Error::Tls(_))));
    server.join().unwrap();
    assert!(syslog::load_certificates(&dir.path().join("missing.pem")).is_err());
}
