//! The integration hub's rules: what an HL7 v2 message means in FHIR.
//!
//! Mapping is a pure function from a parsed message to a FHIR transaction Bundle (or
//! to the ERR segments that say why it cannot be applied), so it is tested without a
//! database and the same Bundle goes through the FHIR service's validation, campus
//! rules and audit like any client's. The table of mappings is `docs/hl7-mappings.md`.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fhir_to_v2;
pub mod inbound;
pub mod outbound;
pub mod v2_to_fhir;

pub use inbound::Inbound;
pub use outbound::{ChannelSpec, Dispatcher, Outbound, OutboundError};
pub use v2_to_fhir::{Channel, MapError, Mapped, Pid3Profile, map_message};
