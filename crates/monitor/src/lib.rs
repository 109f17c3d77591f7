//! Monitoring's first layers, apart from the database and the web: what a probe is
//! ([`probe`]), running one against a device or service ([`check`]), reading the
//! Prometheus text format ([`prom`]), and the processing that decides when readings
//! become an alert and which alert is the root cause ([`rules`]). The central server
//! and each campus's collector (`lianyi collector`) run the same probes.
#![forbid(unsafe_code)]

pub mod check;
pub mod probe;
pub mod prom;
pub mod rules;
pub mod snmp;
