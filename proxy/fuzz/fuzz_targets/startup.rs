//! A client's first packet: length check, then decoding, must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgrelay::wire::startup;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(len)) = startup::packet_len(data)
        && data.len() >= len
    {
        let _ = startup::parse(&data[..len]);
    }
});
