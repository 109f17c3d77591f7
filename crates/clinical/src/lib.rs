//! Clinical workflows over the FHIR store: the patient index (registration with
//! duplicate detection, campus MRNs, `$match`, link, merge and unmerge). Services here hold the rules; they
//! write through [`lianyi_services::FhirService`], so every change is permission-
//! checked, campus-scoped and audited there.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
pub mod critical;
pub mod encounter;
pub mod icd10;
pub mod matching;
pub mod merge;
pub mod names;
pub mod orders;
pub mod prescribing;
pub mod record;
pub mod registry;
pub mod results;
pub mod rules;
pub mod scheduling;

pub use matching::{Person, Reason, Score};
