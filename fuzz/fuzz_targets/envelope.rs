//! Sealed-record decoder: any bytes, never a panic; what decodes re-encodes
//! to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_crypto::envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = envelope::decode(data) {
        let mut out = envelope::begin(env.dek, env.parts.len() as u8, 0);
        for p in &env.parts {
            envelope::push_part_header(&mut out, p.category, &p.nonce, p.ciphertext.len());
            out.extend_from_slice(p.ciphertext);
        }
        assert_eq!(out, data);
    }
});
