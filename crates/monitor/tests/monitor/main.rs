//! The probes against real services started here: net-snmp's `snmpd` (v2c and v3
//! authPriv with SHA and AES, restarted to prove the engine cache survives a reboot)
//! a local HTTPS server whose certificate ends in 10 days, and Prometheus's
//! `node_exporter` (Debian's `prometheus-node-exporter`) scraped. One test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod prom;
mod snmp;
mod tls;
