//! The API suite: the real server on port 0 (in-process through `App`, or the
//! `lianyi` binary itself where a process must die), driven over HTTP. One binary
//! for the crate; `scripts/test` runs it once on SQLite and once on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod authz;
mod backup;
mod billing;
mod browser;
mod bundles;
mod copy;
mod dashboards;
mod dicom;
mod disk_full;
mod encryption;
mod equipment;
mod every_page;
mod export;
mod feedback;
mod helpers;
mod hl7;
mod inpatient;
mod kb;
mod materials;
mod messages;
mod monitor;
mod notices;
mod ops;
mod ops_browser;
mod outbound;
mod outpatient;
mod pages;
mod performance;
mod pharmacy;
mod portal;
mod process;
mod registration;
mod rest;
mod results;
mod rosters;
mod search;
mod staff;
mod standby;
mod ward_walk;
