//! Test support shared by rxvault's crates.
//!
//! - [`pg`]: a throwaway PostgreSQL schema per test, from
//!   `RXVAULT_TEST_PG_URL`. When the variable is unset the PostgreSQL tests
//!   skip (with a message), unless `CI` or `RXVAULT_REQUIRE_PG` is set, in
//!   which case they fail: CI must never pass by skipping the backend.
//! - [`scan`]: searching files and byte buffers for plaintext values.
//! - [`shared_data`]: the Synthea samples in `shared/data`.
//! - [`shapes`]: arbitrary valid FHIR shapes of every stored resource type,
//!   for property tests.

use std::path::PathBuf;

pub mod shapes;

/// The Synthea sample folder `name` (`synthea-10`, `synthea-100`), looked for
/// next to the repository (`../shared/data`) or at `RXVAULT_SHARED_DATA`.
pub fn shared_data(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("RXVAULT_SHARED_DATA") {
        return PathBuf::from(dir).join(name);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for candidate in [
        root.join("tests/fixtures").join(name),
        root.join("../shared/data").join(name),
    ] {
        if candidate.is_dir() {
            return candidate;
        }
    }
    panic!(
        "test data {name} not found: expected ../shared/data/{name} next to the repository \
         or RXVAULT_SHARED_DATA"
    )
}

pub mod pg {
    //! Throwaway PostgreSQL schemas.

    use std::sync::atomic::{AtomicU32, Ordering};

    /// The test database URL, or `None` (after printing why) when PostgreSQL
    /// tests should be skipped. Panics when they must not be skipped.
    pub fn url() -> Option<String> {
        match std::env::var("RXVAULT_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var_os("CI").is_some()
                || std::env::var_os("RXVAULT_REQUIRE_PG").is_some() =>
            {
                panic!(
                    "RXVAULT_TEST_PG_URL is not set, and PostgreSQL tests may not be skipped here (CI / RXVAULT_REQUIRE_PG)"
                )
            }
            _ => {
                eprintln!("skipping PostgreSQL test: RXVAULT_TEST_PG_URL is not set");
                None
            }
        }
    }

    /// A schema that is dropped (with everything in it) when this is dropped.
    #[derive(Debug)]
    pub struct Schema {
        /// The database URL.
        pub url: String,
        /// The schema name.
        pub name: String,
    }

    impl Schema {
        /// A fresh, not yet created, uniquely named schema; `None` when
        /// PostgreSQL tests are skipped. Fails (panics) if the server is
        /// unreachable: an unreachable backend is a failure, never a skip.
        pub fn new(prefix: &str) -> Option<Schema> {
            static N: AtomicU32 = AtomicU32::new(0);
            let url = url()?;
            // Random per process, so concurrent test runs never share a schema.
            let nanos = std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                0u8,
            ) as u32;
            let name = format!(
                "rxt_{prefix}_{}_{}_{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
                panic!("PostgreSQL at RXVAULT_TEST_PG_URL is unreachable: {e}")
            });
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .expect("drop stale schema");
            Some(Schema { url, name })
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            if std::env::var_os("RXVAULT_KEEP_TEST_SCHEMAS").is_some() {
                return;
            }
            if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
                let _ =
                    c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
            }
        }
    }
}

pub mod scan {
    //! Finding plaintext in bytes and files.

    use std::path::{Path, PathBuf};

    /// A plaintext value found where it must not be.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Finding {
        /// Where (file path, or a label).
        pub place: String,
        /// Byte offset.
        pub offset: usize,
        /// Which needle (its index in the list; the value itself is not
        /// repeated, so a test failure report does not spread PHI further).
        pub needle: usize,
    }

    /// A compiled set of needles, searched for all at once (Aho-Corasick):
    /// scanning is one pass over the haystack however many needles there
    /// are.
    pub struct Needles {
        automaton: aho_corasick::AhoCorasick,
    }

    impl Needles {
        /// Compiles the needles, none of which may be empty.
        pub fn new(needles: &[Vec<u8>]) -> Self {
            assert!(
                needles.iter().all(|n| !n.is_empty()),
                "an empty needle matches everywhere"
            );
            let automaton = aho_corasick::AhoCorasick::new(needles).expect("needles compile");
            Self { automaton }
        }
    }

    /// Every occurrence of any needle in `haystack` (overlapping matches
    /// included).
    pub fn bytes(place: &str, haystack: &[u8], needles: &Needles) -> Vec<Finding> {
        needles
            .automaton
            .find_overlapping_iter(haystack)
            .map(|m| Finding {
                place: place.to_string(),
                offset: m.start(),
                needle: m.pattern().as_usize(),
            })
            .collect()
    }

    /// Every file under `dir`, recursively.
    pub fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// Every occurrence of any needle in any file under `dir`.
    pub fn dir(dir: &Path, needles: &Needles) -> Vec<Finding> {
        files(dir)
            .into_iter()
            .flat_map(|f| {
                let data = std::fs::read(&f).unwrap_or_default();
                bytes(&f.display().to_string(), &data, needles)
            })
            .collect()
    }
}
