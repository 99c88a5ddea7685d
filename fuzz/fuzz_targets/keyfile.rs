//! Key file and KDF parameter parsers: any text, never a panic; what parses
//! renders and parses back to the same keys.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_crypto::kek::KdfParams;
use rxvault_crypto::keyfile::KeyFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(kf) = KeyFile::parse("fuzz", text) {
        let again = KeyFile::parse("fuzz", &kf.render()).expect("rendered key files parse");
        assert_eq!(again.vault_id, kf.vault_id);
        assert_eq!(again.versions(), kf.versions());
    }
    if let Ok(p) = KdfParams::parse(text) {
        assert_eq!(KdfParams::parse(&p.to_string()).unwrap(), p);
    }
});
