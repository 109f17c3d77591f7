//! Property tests: encode ∘ parse is the identity on well-formed messages, values
//! written through the builder read back unchanged whatever characters they hold, and
//! MLLP frames come out the same however the stream is cut into reads.

use lianyi_hl7::mllp::{Framer, frame};
use lianyi_hl7::{Charset, Message, Separators, decode, encode_text};
use proptest::prelude::*;

/// Raw field text as senders write it: delimiters, escape sequences (valid or not),
/// Chinese text; anything but a segment terminator.
fn raw_field() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("^".to_string()),
            Just("~".to_string()),
            Just("&".to_string()),
            Just("\\".to_string()),
            Just("\\F\\".to_string()),
            Just("\\X0A\\".to_string()),
            Just("\\.br\\".to_string()),
            "[A-Za-z0-9 .:/-]{0,6}",
            "[张王李赵钾钠血压]{0,3}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn segment_id() -> impl Strategy<Value = String> {
    prop_oneof![Just("PID".to_string()), Just("OBX".to_string()), Just("NTE".to_string()), "Z[A-Z0-9]{2}"]
}

fn message_text() -> impl Strategy<Value = String> {
    let msh = proptest::collection::vec(raw_field(), 0..18);
    let segs = proptest::collection::vec((segment_id(), proptest::collection::vec(raw_field(), 0..8)), 0..6);
    (msh, segs).prop_map(|(msh, segs)| {
        let mut out = String::from("MSH|^~\\&");
        for f in msh {
            out.push('|');
            // MSH fields must not start a new segment or change the delimiters.
            out.push_str(&f);
        }
        out.push('\r');
        for (id, fields) in segs {
            out.push_str(&id);
            for f in fields {
                out.push('|');
                out.push_str(&f);
            }
            out.push('\r');
        }
        out
    })
}

/// Text a builder may hold: anything but CR (a segment terminator in any position).
fn value() -> impl Strategy<Value = String> {
    "[^\r]{0,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_of_parse_is_identity(text in message_text()) {
        let m = Message::parse(&text).unwrap();
        prop_assert_eq!(m.encode(), text);
    }

    #[test]
    fn built_values_read_back(values in proptest::collection::vec((1usize..6, 1usize..3, 1usize..4, 1usize..3, value()), 1..12)) {
        let mut m = Message::new(Separators::default());
        let mut expected = std::collections::HashMap::new();
        {
            let seg = m.push("OBX");
            for (f, r, c, s, v) in &values {
                seg.set(*f, *r, *c, *s, v);
                expected.insert((*f, *r, *c, *s), v.clone());
            }
        }
        let back = Message::parse(&m.encode()).unwrap();
        prop_assert_eq!(back.encode(), m.encode());
        let seg = back.segment("OBX").unwrap();
        for ((f, r, c, s), v) in expected {
            prop_assert_eq!(seg.value(f, r, c, s), v, "at OBX-{}({}).{}.{}", f, r, c, s);
        }
    }

    #[test]
    fn gb18030_round_trips(text in message_text()) {
        // The generated body under an MSH that declares GB18030 in MSH-18.
        let body: String = text.split_inclusive('\r').skip(1).collect();
        let full = format!("MSH|^~\\&|HIS|东院|LIANYI|GROUP|20261122||ORU^R01|1|P|2.5||||||GB18030\r{body}");
        let bytes = encode_text(&full, Charset::Gb18030);
        let (decoded, charset) = decode(&bytes).unwrap();
        prop_assert_eq!(charset, Charset::Gb18030);
        prop_assert_eq!(&decoded, &full);
        prop_assert_eq!(Message::parse(&decoded).unwrap().encode(), full);
    }

    #[test]
    fn mllp_frames_do_not_depend_on_read_boundaries(
        messages in proptest::collection::vec((message_text(), "[\r\n a-z]{0,3}"), 1..6),
        cuts in proptest::collection::vec(0usize..4096, 0..8),
    ) {
        let mut wire = Vec::new();
        for (m, noise) in &messages {
            wire.extend_from_slice(noise.as_bytes());
            wire.extend_from_slice(&frame(m.as_bytes()));
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        let mut framer = Framer::new(1 << 20);
        let (mut got, mut at) = (Vec::new(), 0);
        for cut in cuts {
            framer.push(&wire[at..cut]);
            at = cut;
            while let Some(f) = framer.next_frame() {
                got.push(String::from_utf8(f.to_vec()).unwrap());
            }
            prop_assert!(!framer.overflowed());
        }
        let sent: Vec<String> = messages.into_iter().map(|(m, _)| m).collect();
        prop_assert_eq!(got, sent);
        prop_assert_eq!(framer.buffered(), 0);
    }
}
