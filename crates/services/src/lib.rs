//! Business rules of Lianyi. Services take typed input, enforce the rules, and call
//! the store; they know nothing of HTTP, HTML or MLLP.
//!
//! - [`fhir`]: the FHIR resource service (validate, index, version, read, search).
//! - [`import`]: bulk loading of FHIR NDJSON.
//! - [`demo`]: the deterministic demo hospital group.
//! - [`identifiers`]: resident ID numbers and medical record numbers.
//! - [`protect`]: which fields are encrypted at rest and how search still finds them.
//! - [`rules`]: content rules that hold on every door (resident ID numbers, birth dates).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod audit_event;
pub mod csv;
pub mod demo;
pub mod fhir;
pub mod follow;
pub mod identifiers;
pub mod import;
pub mod protect;
pub mod rules;

pub use fhir::export;
pub use fhir::{FhirService, LoadReport, Names, Seen, ServiceError};
pub use lianyi_security::clock::{Clock, IdSource, ManualClock, SystemClock, UuidIds};
