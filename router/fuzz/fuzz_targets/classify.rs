//! The classifier must never panic, and a cached verdict must equal a
//! fresh one for the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let fresh = pgrelay_router::classify(&text);
    let mut classifier = pgrelay_router::Classifier::new(4);
    let first = classifier.classify(&text);
    let second = classifier.classify(&text);
    assert_eq!(*first, fresh);
    assert_eq!(first, second);
});
