//! Architecture invariants a tool can check: which crate may depend on what,
//! read from the graph Cargo resolved (`cargo metadata`: the dependencies
//! actually built for this platform, features included), not from what a
//! manifest happens to spell: a dependency renamed, reached through another
//! crate or switched on by a feature counts.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The resolved graph: package id → (name, direct dependency ids, enabled
/// features), and the workspace members.
struct Graph {
    names: BTreeMap<String, String>,
    deps: BTreeMap<String, Vec<String>>,
    features: BTreeMap<String, Vec<String>>,
    members: Vec<String>,
}

fn graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = String::from_utf8(
        std::process::Command::new("rustc")
            .args(["--print", "host-tuple"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", host.trim()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut deps = BTreeMap::new();
    let mut features = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap().to_string();
        // Normal (non-dev, non-build) edges: what the crate's code links.
        let normal: Vec<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        deps.insert(id.clone(), normal);
        features.insert(
            id,
            node["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect(),
        );
    }
    let members = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    Graph {
        names,
        deps,
        features,
        members,
    }
}

impl Graph {
    fn id(&self, name: &str) -> String {
        self.members
            .iter()
            .find(|m| self.names[*m] == name)
            .unwrap_or_else(|| panic!("no workspace crate {name}"))
            .clone()
    }

    fn direct(&self, name: &str) -> BTreeSet<String> {
        self.deps[&self.id(name)]
            .iter()
            .map(|d| self.names[d].clone())
            .collect()
    }

    /// Every crate `name` links, however indirectly.
    fn transitive(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.id(name)];
        while let Some(id) = todo.pop() {
            for d in &self.deps[&id] {
                if seen.insert(self.names[d].clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }

    fn library_crates(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| self.names[m].clone())
            .filter(|n| n.starts_with("rxvault-"))
            .collect()
    }
}

#[test]
fn only_the_crypto_crate_touches_cryptographic_primitives() {
    let g = graph();
    let primitives = [
        "ring",
        "argon2",
        "age",
        "aes-gcm",
        "hmac",
        "sha2",
        "chacha20poly1305",
        "ed25519-dalek",
        "aws-lc-rs",
    ];
    for krate in g.library_crates() {
        for dep in g.direct(&krate) {
            if primitives.contains(&dep.as_str()) {
                assert_eq!(
                    krate, "rxvault-crypto",
                    "{krate} depends on {dep}: key material and primitives belong to rxvault-crypto"
                );
            }
        }
    }
    // TLS is transport, not vault keys: rustls (with ring's provider, the
    // one provider in the build) in the crates that speak TLS.
    let tls: BTreeSet<String> = g
        .library_crates()
        .into_iter()
        .filter(|k| g.direct(k).contains("rustls"))
        .collect();
    let allowed: BTreeSet<String> = [
        "rxvault-crypto",
        "rxvault-server",
        "rxvault-audit",
        "rxvault-store",
    ]
    .map(String::from)
    .into();
    assert!(tls.is_subset(&allowed), "TLS in {tls:?}");
    let rustls = g
        .names
        .iter()
        .find(|(_, n)| *n == "rustls")
        .map(|(id, _)| id.clone())
        .unwrap();
    assert!(
        !g.features[&rustls].iter().any(|f| f == "aws_lc_rs"),
        "one crypto provider only (two make rustls panic at start-up)"
    );
}

#[test]
fn the_store_cannot_decrypt_and_the_model_is_a_leaf() {
    let g = graph();
    assert!(
        !g.transitive("rxvault-store").contains("rxvault-crypto"),
        "rxvault-store must not reach rxvault-crypto"
    );
    assert!(
        g.transitive("rxvault-model")
            .iter()
            .all(|d| !d.starts_with("rxvault-")),
        "rxvault-model depends on no other rxvault crate"
    );
    assert!(
        !g.transitive("rxvault-auth").contains("rxvault-vault"),
        "rxvault-auth takes the vault's keys and its identity store, not the vault"
    );
    let fhir = g.transitive("rxvault-fhir");
    assert!(
        !fhir.contains("rxvault-store") && !fhir.contains("rxvault-crypto"),
        "rxvault-fhir does no storage or crypto"
    );
}

#[test]
fn only_the_server_crate_knows_http() {
    let g = graph();
    for krate in g.library_crates() {
        if krate == "rxvault-server" {
            continue;
        }
        let reach = g.transitive(&krate);
        for http in ["axum", "hyper", "axum-server", "tower-http", "reqwest"] {
            assert!(
                !reach.contains(http),
                "{krate} reaches {http}: HTTP belongs to rxvault-server"
            );
        }
    }
}

/// The manifests as Cargo read them (`cargo metadata --no-deps`): each
/// workspace package's declared dependencies (kind, features) and feature
/// table. Renames do not hide a dependency: `name` is the package's.
fn manifests() -> Vec<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success());
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"].as_array().unwrap().clone()
}

#[test]
fn only_tests_and_benchmarks_switch_on_the_unaudited_paths() {
    // `rxvault-vault`'s feature `unaudited` makes its paths beneath the
    // audited entry points public (`Vault::unaudited`). A normal or build
    // dependency that enables it, directly or through a feature of its
    // own, would give that crate PHI without an audit entry.
    let mut dev_uses = 0;
    for p in manifests() {
        let name = p["name"].as_str().unwrap();
        for d in p["dependencies"].as_array().unwrap() {
            if d["name"] != "rxvault-vault" {
                continue;
            }
            let enables = d["features"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "unaudited");
            let dev = d["kind"] == "dev";
            assert!(
                !enables || dev,
                "{name} enables rxvault-vault/unaudited in a {} dependency",
                d["kind"].as_str().unwrap_or("normal")
            );
            dev_uses += usize::from(enables);
        }
        for (feature, enables) in p["features"].as_object().unwrap() {
            for e in enables.as_array().unwrap() {
                let e = e.as_str().unwrap();
                assert!(
                    !(e.contains("unaudited") && name != "rxvault-vault"),
                    "{name}'s feature {feature} enables {e}"
                );
            }
        }
    }
    // The check above ran over the real manifests (the tests that need the
    // unaudited paths do enable it, as dev-dependencies).
    assert!(dev_uses >= 2, "{dev_uses} dev-dependencies enable it");
}

#[test]
fn the_agent_is_light_and_never_reaches_the_vault() {
    // The workstation agent runs on every till and back-office PC: it
    // holds no vault keys, opens no store, and speaks no HTTP itself (the
    // HTTPS reporter is the server side's part).
    let g = graph();
    let reach = g.transitive("rxvault-agent");
    for forbidden in [
        "rxvault-vault",
        "rxvault-store",
        "rxvault-auth",
        "rxvault-audit",
        "rxvault-server",
        "rusqlite",
        "postgres",
    ] {
        assert!(
            !reach.contains(forbidden),
            "rxvault-agent reaches {forbidden}"
        );
    }
    let ours: BTreeSet<String> = g
        .direct("rxvault-agent")
        .into_iter()
        .filter(|d| d.starts_with("rxvault-"))
        .collect();
    assert_eq!(
        ours,
        ["rxvault-crypto", "rxvault-model"].map(String::from).into()
    );
}
