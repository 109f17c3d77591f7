//! Bytes off an MLLP connection, arriving in reads of any size: the framer must never
//! panic, must return exactly the frames of the stream and close for size exactly
//! where the listener's rule says (see `reference`), every frame must be a
//! `VT … FS CR` span of the input with no `FS CR` inside, and the bytes it holds
//! between reads must stay within the size limit.
//!
//! Input layout: two bytes of limit (big-endian), one byte that seeds the read sizes
//! (0: one byte per read), then the stream itself, so a seed is a framed message
//! behind three header bytes.
#![no_main]

use lianyi_hl7::mllp::{CR, FS, Framer, VT};
use libfuzzer_sys::fuzz_target;

/// What the framer must do, worked out on the whole stream at once rather than read by
/// read (so it stays linear; the listener's old loop rescanned its buffer on every
/// read): the frames are the `VT … FS CR` spans in order, and the connection closes at
/// the first read boundary where the unfinished frame, from its `VT` to the boundary,
/// is longer than the limit. Returns the frames' content spans and whether it closed.
fn reference(stream: &[u8], reads: &[(usize, usize)], max_frame: usize) -> (Vec<(usize, usize)>, bool) {
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some(vt) = stream[at..].iter().position(|b| *b == VT).map(|i| at + i) {
        let Some(end) = stream[vt + 1..].windows(2).position(|w| w == [FS, CR]).map(|i| vt + 1 + i) else { break };
        frames.push((vt + 1, end));
        at = end + 2;
    }
    // next_vt[i]: the first VT at or after i (stream.len() if none).
    let mut next_vt = vec![stream.len(); stream.len() + 1];
    for i in (0..stream.len()).rev() {
        next_vt[i] = if stream[i] == VT { i } else { next_vt[i + 1] };
    }
    let mut done = 0;
    for boundary in std::iter::once(0).chain(reads.iter().map(|r| r.1)) {
        while frames.get(done).is_some_and(|f| f.1 + 2 <= boundary) {
            done += 1;
        }
        let taken = if done == 0 { 0 } else { frames[done - 1].1 + 2 };
        let vt = next_vt[taken];
        if vt < boundary && boundary - vt > max_frame {
            frames.truncate(done);
            return (frames, true);
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let [hi, lo, seed, stream @ ..] = data else { return };
    let max_frame = usize::from(u16::from_be_bytes([*hi, *lo]));
    let mut reads = Vec::new();
    let (mut at, mut x) = (0usize, u32::from(*seed) | 0x9e37_0000);
    while at < stream.len() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = 1 + (x as usize) % (1 + usize::from(*seed) * 8);
        let to = (at + len).min(stream.len());
        reads.push((at, to));
        at = to;
    }

    let (expected, expected_closed) = reference(stream, &reads, max_frame);
    let mut framer = Framer::new(max_frame);
    let mut got = Vec::new();
    let mut closed = false;
    let mut reads_iter = reads.iter();
    let mut last_read = 0;
    loop {
        while let Some(frame) = framer.next_frame() {
            assert!(!frame.windows(2).any(|w| w == [FS, CR]), "a frame holds FS CR");
            assert!(frame.len() + 3 <= max_frame + last_read, "a frame of {} bytes past the limit", frame.len());
            got.push(frame.to_vec());
        }
        if framer.overflowed() {
            closed = true;
            break;
        }
        assert!(framer.buffered() <= max_frame, "the framer holds more than the limit between reads");
        let Some(&(from, to)) = reads_iter.next() else { break };
        framer.push(&stream[from..to]);
        last_read = to - from;
        assert!(framer.buffered() <= max_frame + last_read);
    }

    assert_eq!(closed, expected_closed, "closed for size at a different point");
    assert_eq!(got.len(), expected.len(), "a different number of frames");
    for (frame, &(start, end)) in got.iter().zip(&expected) {
        assert_eq!(stream[start - 1], VT);
        assert_eq!(&stream[end..end + 2], &[FS, CR]);
        assert_eq!(frame.as_slice(), &stream[start..end], "a frame differs from the stream's");
    }
});
