//! Security applied to every service call: who is calling ([`Caller`]), and the
//! tamper-evident audit log every access and security event is written to
//! ([`AuditLog`], hash chain in [`chain`]).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod audit;
pub mod caller;
pub mod chain;

pub use audit::{AuditError, AuditLog};
pub use caller::{ActorKind, Caller};
pub use chain::ChainAlg;
