//! Bytes off an MLLP connection: decoding by MSH-18, parsing, reading every value
//! and answering must never panic, and whatever parses must encode back unchanged.
#![no_main]

use lianyi_hl7::{AckCode, Message, ack, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((text, _)) = decode(data) else { return };
    let Ok(m) = Message::parse(&text) else { return };
    for s in &m.segments {
        for f in 1..=s.field_count() {
            for r in 1..=s.repetitions(f).len().max(1) {
                let _ = s.value(f, r, 2, 2);
            }
        }
    }
    let again = Message::parse(&m.encode()).expect("an encoded message parses");
    assert_eq!(again.encode(), m.encode());
    let _ = ack(&m, AckCode::Error, "1", "20260101", &[]).encode();
});
