//! Security applied to every service call: who is calling ([`Caller`] with its
//! [`caller::Access`]), how API clients authenticate ([`clients`]), SMART scopes
//! ([`scope`]), and the tamper-evident audit log every access and security event is
//! written to ([`AuditLog`], hash chain in [`chain`]). Time and ids come from
//! [`clock`] so tests control them.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod audit;
pub mod caller;
pub mod chain;
pub mod clients;
pub mod clock;
pub mod crypto;
pub mod password;
pub mod permit;
pub mod roles;
pub mod scope;
pub mod sealed;
pub mod secrets;
pub mod totp;
pub mod users;

pub use audit::{AuditError, AuditLog};
pub use caller::{Access, ActorKind, Caller, CampusId, Campuses, Grant, InvalidCampus, SystemTask};
pub use chain::ChainAlg;
pub use clients::ClientService;
pub use clock::{Clock, IdSource, ManualClock, SystemClock, UuidIds};
pub use permit::{Denied, Permit};
pub use scope::{Perm, ScopeSet};
