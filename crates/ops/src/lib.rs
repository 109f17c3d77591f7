//! IT operations (运维): the configuration database (CMDB) with impact analysis over
//! its relation graph, the service desk's SLA clocks, and the knowledge base with
//! full-text search in Chinese and English. Not health data: relational
//! tables of their own ([`lianyi_store::ops`]), reached through the same typed door —
//! every call checks the caller's capability here and is audited.
#![forbid(unsafe_code)]

pub mod changes;
pub mod cmdb;
pub mod cron;
pub use lianyi_services::csv;
pub mod desk;
pub mod hooks;
pub mod kb;
pub mod monitor;
pub mod platform;
pub mod problems;
pub mod settings;
pub mod sla;
pub mod stats;
pub mod words;
