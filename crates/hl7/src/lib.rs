//! HL7 v2 messages, versions 2.3 to 2.8, as the hospital systems on the other end of
//! an MLLP connection send them.
//!
//! Why lossless: a message is kept as its segments' raw (escaped) field text and split
//! into repetitions, components and sub-components only when read, so
//! `parse(text)?.encode() == text` for every well-formed message, Z-segments and
//! unusual escapes included. The message log stores what arrived, and an outbound feed
//! sends exactly what was built. Values are unescaped on read ([`Message::text`]) and
//! escaped on write ([`Segment::set_text`]).
//!
//! The crate does no I/O: [`mllp`] cuts frames out of bytes the listener reads, and
//! the listener owns the socket.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ack;
mod charset;
mod escape;
mod message;
pub mod mllp;

pub use ack::{AckCode, ErrorCode, Hl7Error, ack, unreadable};
pub use charset::{Charset, decode, encode_text};
pub use escape::{escape, unescape};
pub use message::{Location, Message, NULL, ParseError, Segment, Separators};
