//! The stored audit entry (what `audit verify` reads from a database an
//! attacker may have edited): any bytes, never a panic; what decodes is
//! canonical (re-encodes to the same bytes) and the zero-copy view agrees
//! with the full decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rxvault_audit::entry::StoredEntry;

fuzz_target!(|data: &[u8]| {
    let decoded = StoredEntry::decode(data);
    let viewed = StoredEntry::view(data);
    assert_eq!(decoded.is_ok(), viewed.is_ok(), "decode and view disagree");
    if let (Ok(e), Ok(v)) = (decoded, viewed) {
        assert_eq!(e.encode(), data, "a decoded entry is canonical");
        assert_eq!(e.header.index, v.index);
    }
});
