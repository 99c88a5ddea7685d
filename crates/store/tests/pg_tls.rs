//! TLS to PostgreSQL with certificate verification (issue 9, item 6: every
//! connection was `NoTls`), against a real PostgreSQL server this test
//! starts: its own cluster (`initdb`), a CA and a server certificate the
//! test makes, and a `pg_hba.conf` that accepts TLS connections only.
//!
//! Needs the PostgreSQL server binaries (Debian's `postgresql`, as on the
//! CI machines) and `runuser` (the server refuses to run as root). Under
//! CI / `RXVAULT_REQUIRE_PG` a missing server is a failure, not a skip.

use rxvault_store::{Op, PgAuditStore, PgStore, SqlAuthStore, Store, WriteBatch};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bindir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("RXVAULT_REQUIRE_PG").is_some()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL cluster of the test's own, accepting only TLS.
struct TlsServer {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    ca: PathBuf,
    other_ca: PathBuf,
}

fn write_as_postgres(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    run(Command::new("chown").arg("postgres:postgres").arg(path));
}

impl TlsServer {
    fn start() -> Option<TlsServer> {
        use std::os::unix::fs::PermissionsExt;
        let Some(bin) = bindir() else {
            assert!(!required(), "the PostgreSQL server binaries are needed");
            eprintln!("skipping: no PostgreSQL server binaries");
            return None;
        };
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = tmp.path().join("pgdata");
        std::fs::create_dir(&data).unwrap();
        run(Command::new("chown").arg("postgres:postgres").arg(&data));
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data));

        // A CA, a server certificate for "localhost" it signs, and a second
        // CA that signed nothing.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rxvault test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let mut other_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let other_cert = other_params.self_signed(&other_key).unwrap();

        write_as_postgres(&data.join("server.crt"), &server_cert.pem(), 0o644);
        write_as_postgres(&data.join("server.key"), &server_key.serialize_pem(), 0o600);
        let ca = tmp.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        let other_ca = tmp.path().join("other-ca.pem");
        std::fs::write(&other_ca, other_cert.pem()).unwrap();

        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str(&format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\n",
            data.display()
        ));
        write_as_postgres(&data.join("postgresql.conf"), &conf, 0o600);
        // TLS or nothing.
        write_as_postgres(
            &data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\n",
            0o600,
        );
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("log"))
            .args(["-w", "start"]));
        Some(TlsServer {
            _tmp: tmp,
            bin,
            data,
            port,
            ca,
            other_ca,
        })
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres{params}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn stores_connect_over_verified_tls_and_refuse_what_does_not_verify() {
    let Some(server) = TlsServer::start() else {
        return;
    };
    let ca = server.ca.display().to_string();

    // verify-full against the test's CA: every store of the vault works.
    let url = server.url(
        "localhost",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    );
    let store = PgStore::create(&url, "tls_vault").unwrap();
    store
        .write(&WriteBatch {
            ops: vec![Op::Meta {
                key: "probe".into(),
                value: Some("over TLS".into()),
            }],
            at: 0,
        })
        .unwrap();
    assert_eq!(store.meta("probe").unwrap().as_deref(), Some("over TLS"));
    drop(store);
    SqlAuthStore::open_postgres(&url, "tls_vault").unwrap();
    PgAuditStore::open(&url, "tls_vault").unwrap();

    // The server takes TLS only: the same server without TLS is refused
    // (a local host defaults to plaintext; sslmode=disable says so).
    let plain = server.url("localhost", "?sslmode=disable");
    let e = PgStore::open(&plain, "tls_vault").unwrap_err().to_string();
    assert!(e.contains("pg_hba.conf") || e.contains("SSL"), "{e}");

    // A certificate from another CA is refused, whatever the mode.
    for mode in ["verify-full", "verify-ca", "require"] {
        let other = server.url(
            "localhost",
            &format!("?sslmode={mode}&sslrootcert={}", server.other_ca.display()),
        );
        let e = PgStore::open(&other, "tls_vault").unwrap_err().to_string();
        assert!(e.to_lowercase().contains("certificate"), "{mode}: {e}");
    }

    // By address, the certificate (for "localhost") does not name the host:
    // verify-full refuses it, verify-ca checks the chain only.
    let by_ip = server.url(
        "127.0.0.1",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    );
    let e = PgStore::open(&by_ip, "tls_vault").unwrap_err().to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let chain_only = server.url("127.0.0.1", &format!("?sslmode=verify-ca&sslrootcert={ca}"));
    let store = PgStore::open(&chain_only, "tls_vault").unwrap();
    assert_eq!(store.meta("probe").unwrap().as_deref(), Some("over TLS"));
}
