//! Architecture invariants a tool can check: which crate may depend on what.

use std::path::Path;

fn dependencies(krate: &str) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates")
        .join(krate)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once(['=', '.']) {
            deps.push(name.trim().to_string());
        }
    }
    deps
}

fn crates() -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crates"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    names.sort();
    names
}

#[test]
fn only_the_crypto_crate_touches_cryptographic_primitives() {
    for krate in crates() {
        for dep in dependencies(&krate) {
            if [
                "ring",
                "argon2",
                "age",
                "aes-gcm",
                "hmac",
                "sha2",
                "chacha20poly1305",
                "ed25519-dalek",
            ]
            .contains(&dep.as_str())
            {
                assert_eq!(
                    krate, "crypto",
                    "crates/{krate} depends on {dep}: key material and primitives belong to rxvault-crypto"
                );
            }
        }
    }
}

#[test]
fn the_store_cannot_decrypt_and_the_model_is_a_leaf() {
    let store = dependencies("store");
    assert!(
        !store.contains(&"rxvault-crypto".to_string()),
        "rxvault-store must not depend on rxvault-crypto"
    );
    assert!(
        dependencies("model")
            .iter()
            .all(|d| !d.starts_with("rxvault-")),
        "rxvault-model depends on no other rxvault crate"
    );
    assert!(
        dependencies("fhir")
            .iter()
            .all(|d| d != "rxvault-store" && d != "rxvault-crypto"),
        "rxvault-fhir does no storage or crypto"
    );
}
