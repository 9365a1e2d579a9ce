//! Walking tagged frames and decoding the login messages the proxy reads
//! must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgrelay::wire::{fe, frame};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some(f)) = frame::split_frame(rest) {
        let _ = fe::password(f.body);
        let _ = fe::sasl_initial_response(f.body);
        rest = &rest[f.len..];
    }
});
