//! FHIR R4 model for Lianyi: which resource types the platform serves, the
//! table-driven validator and the search-parameter table, both generated from the
//! official definitions by `tools/gen_fhir_tables.py` and compiled into the binary.
//!
//! Resources stay `serde_json::Value` in the engine: validation and index extraction
//! walk the JSON directly, which keeps ingest in microseconds per resource.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod compartment;
pub mod datetime;
pub mod outcome;
pub mod phonetic;
pub mod reference;
pub mod schema;
pub mod search;
pub mod search_params;
pub mod types;

pub use outcome::{Issue, IssueSeverity, IssueType, OperationOutcome};
pub use schema::{ValidationErrors, validate_resource};
pub use search_params::{
    INDEX_VERSION, IndexRows, ParamKind, SearchParam, extract_index, search_param, search_params_for,
};
pub use types::{ResourceType, SUPPORTED_TYPES};
