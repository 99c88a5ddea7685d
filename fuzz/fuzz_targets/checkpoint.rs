//! Signed checkpoints and verifier keys (read from files kept elsewhere and
//! from the database): any text, never a panic; a parsed note parses again
//! from its own text to the same checkpoint.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_audit::{SignedCheckpoint, VerifierKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = SignedCheckpoint::parse(text) {
        let again = SignedCheckpoint::parse(parsed.note()).expect("its own text parses");
        assert_eq!(again.checkpoint, parsed.checkpoint);
    }
    let _ = VerifierKey::parse(text);
});
