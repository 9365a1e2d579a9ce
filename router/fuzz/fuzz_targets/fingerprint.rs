//! The fingerprint scanner must never panic, and must be deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert_eq!(
        pgrelay_router::fingerprint(&text),
        pgrelay_router::fingerprint(&text)
    );
});
