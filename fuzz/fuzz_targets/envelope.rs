//! Sealed-record decoder: any bytes, never a panic; what decodes re-encodes
//! to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_crypto::envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = envelope::decode(data) {
        assert_eq!(envelope::encode(&env), data);
    }
});
