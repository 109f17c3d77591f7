//! The probes against real services started here: net-snmp's `snmpd` (v2c and v3
//! authPriv with SHA and AES, restarted to prove the engine cache survives a reboot)
//! and a local HTTPS server whose certificate ends in 10 days. One test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod snmp;
mod tls;
