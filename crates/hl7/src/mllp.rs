//! MLLP framing: HL7 v2 messages sent as `<VT> message <FS><CR>`, many per connection.
//!
//! Why here and not in the listener: every decision the MLLP connection makes on the
//! bytes alone (where a frame starts and ends, which bytes are noise between frames,
//! when an unfinished frame has grown too large) is a pure function of what arrived.
//! Kept apart from tokio, it can be unit-tested and fuzzed byte by byte, and the
//! listener only moves bytes between the socket and a [`Framer`].

/// Start of block: the byte before a message.
pub const VT: u8 = 0x0b;
/// End of block: the first of the two bytes after a message.
pub const FS: u8 = 0x1c;
/// The carriage return that follows `FS` to end a frame.
pub const CR: u8 = 0x0d;

/// `message` framed for the wire: `<VT> message <FS><CR>`.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(message.len() + 3);
    framed.push(VT);
    framed.extend_from_slice(message);
    framed.extend_from_slice(&[FS, CR]);
    framed
}

/// The bytes read from one connection, cut into frames as they complete.
///
/// Bytes before a `VT` are noise and dropped; a frame's content runs from the byte
/// after the first `VT` to the first `FS CR` after it (a stray `VT` inside is content).
/// Taken frames are dropped lazily, at the next [`push`](Framer::push) or
/// [`overflowed`](Framer::overflowed), so a read holding many small messages costs one
/// move of the buffer rather than one per message.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes before this index belong to frames already returned.
    taken: usize,
    /// No `FS CR` starts between the pending frame's content start and this index, so
    /// a large frame arriving over many reads is not searched again from its start.
    searched: usize,
    max_frame: usize,
}

impl Framer {
    /// A framer whose unfinished frame (its `VT` included) may hold at most
    /// `max_frame` bytes between reads; see [`overflowed`](Framer::overflowed).
    pub fn new(max_frame: usize) -> Framer {
        Framer { buf: Vec::with_capacity(16 << 10), taken: 0, searched: 0, max_frame }
    }

    /// Appends bytes as read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The content of the next complete frame, without its `VT` and `FS CR`, or `None`
    /// until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        let start = self.taken + self.buf.get(self.taken..)?.iter().position(|b| *b == VT)? + 1;
        let from = self.searched.max(start);
        let rest = self.buf.get(from..)?;
        match rest.windows(2).position(|w| w == [FS, CR]) {
            Some(i) => {
                let end = from + i;
                self.taken = end + 2;
                self.searched = self.taken;
                self.buf.get(start..end)
            }
            None => {
                // The last byte may be an FS whose CR has not arrived yet.
                self.searched = from.max(self.buf.len().saturating_sub(1));
                None
            }
        }
    }

    /// Called once the complete frames are taken: drops the noise before the
    /// unfinished frame and says whether that frame has outgrown the limit, in which
    /// case the connection is to be closed rather than read further.
    ///
    /// The check runs between reads, so a frame that completes within the read that
    /// crosses the limit is still returned: the limit bounds memory, not messages.
    pub fn overflowed(&mut self) -> bool {
        self.compact();
        self.buf.len() > self.max_frame
    }

    /// Bytes held: the unfinished frame, plus any frames and noise not yet dropped.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.taken
    }

    /// Drops taken frames and the noise after them, keeping the buffer starting at
    /// the next `VT` (or empty).
    fn compact(&mut self) {
        let rest = self.buf.get(self.taken..).unwrap_or_default();
        match rest.iter().position(|b| *b == VT) {
            Some(i) => {
                let cut = self.taken + i;
                self.buf.drain(..cut);
                self.searched = self.searched.saturating_sub(cut);
            }
            None => {
                self.buf.clear();
                self.searched = 0;
            }
        }
        self.taken = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut Framer) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| framer.next_frame().map(<[u8]>::to_vec)).collect()
    }

    #[test]
    fn frames_are_found_after_noise_and_only_when_complete() {
        let mut f = Framer::new(1 << 20);
        f.push(b"\x0bMSH|x\x1c\x0d");
        assert_eq!(frames(&mut f), vec![b"MSH|x".to_vec()]);

        let mut f = Framer::new(1 << 20);
        f.push(b"junk\x0bA\x1c\x0d\x0bB\x1c\x0d");
        assert_eq!(frames(&mut f), vec![b"A".to_vec(), b"B".to_vec()]);

        let mut f = Framer::new(1 << 20);
        f.push(b"\x0bMSH|x\x1c");
        assert_eq!(frames(&mut f), Vec::<Vec<u8>>::new());
        f.push(b"\x0d");
        assert_eq!(frames(&mut f), vec![b"MSH|x".to_vec()]);

        let mut f = Framer::new(1 << 20);
        f.push(b"MSH|x\x1c\x0d");
        assert_eq!(frames(&mut f), Vec::<Vec<u8>>::new());
        assert!(!f.overflowed());
        assert_eq!(f.buffered(), 0, "bytes with no VT are noise");
    }

    #[test]
    fn a_frame_split_across_reads_at_every_byte_is_found_once() {
        let wire = [b"noise".as_slice(), &frame(b"MSH|^~\\&|A"), b"\x0d\x0a", &frame(b"MSH|^~\\&|B\x1cX")].concat();
        for cut in 0..=wire.len() {
            let mut f = Framer::new(1 << 20);
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                f.push(part);
                got.extend(frames(&mut f));
                assert!(!f.overflowed());
            }
            assert_eq!(got, vec![b"MSH|^~\\&|A".to_vec(), b"MSH|^~\\&|B\x1cX".to_vec()], "cut at {cut}");
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn an_unfinished_frame_over_the_limit_overflows_but_a_finished_one_is_returned() {
        let mut f = Framer::new(8);
        f.push(b"\x0b1234567");
        assert_eq!(frames(&mut f), Vec::<Vec<u8>>::new());
        assert!(!f.overflowed(), "eight bytes with the VT is at the limit");
        f.push(b"8");
        assert!(frames(&mut f).is_empty());
        assert!(f.overflowed());

        let mut f = Framer::new(8);
        f.push(b"\x0b0123456789\x1c\x0d");
        assert_eq!(frames(&mut f), vec![b"0123456789".to_vec()]);
        assert!(!f.overflowed());
    }

    #[test]
    fn noise_before_a_partial_frame_does_not_count_against_the_limit() {
        let mut f = Framer::new(4);
        f.push(b"lots of noise before\x0bAB");
        assert!(frames(&mut f).is_empty());
        assert!(!f.overflowed());
        assert_eq!(f.buffered(), 3);
    }
}
