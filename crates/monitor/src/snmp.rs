//! The SNMP adapter (v2c and v3 USM authPriv, through async-snmp): system uptime,
//! each interface's status and traffic and error rates from the IF-MIB's 64-bit
//! counters, and processor load and storage use from HOST-RESOURCES-MIB, plus any OIDs
//! the probe names.
//!
//! Why it keeps state: a rate is the difference of two counter readings over the
//! time between them, so the previous reading of each counter is kept (per target)
//! and a counter that went backwards (a reboot) gives no rate that round rather than
//! a huge one. The v3 engine cache (boots, time, engine ID) is shared by every
//! probe and kept across runs; when a device reboots its boots counter changes and the
//! library rediscovers it on the "not in time window" report, so the host is not
//! dropped (the Zabbix complaint).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_snmp::{Auth, AuthProtocol, Client, EngineCache, Oid, PrivProtocol, UsmConfig, Value};

use crate::check::{Outcome, Reading};
use crate::probe::Spec;

const SYS_UPTIME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
const IF_OPER_STATUS: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
const IF_IN_ERRORS: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 14];
const IF_OUT_ERRORS: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 20];
const IF_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];
const IF_HC_IN_OCTETS: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6];
const IF_HC_OUT_OCTETS: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10];
const HR_PROCESSOR_LOAD: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2];
const HR_STORAGE_DESCR: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1, 3];
const HR_STORAGE_SIZE: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1, 5];
const HR_STORAGE_USED: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1, 6];

/// The SNMP side of a [`crate::check::Checker`]: the shared v3 engine cache and the
/// previous counter readings.
#[derive(Debug, Default)]
pub struct SnmpState {
    engines: Arc<EngineCache>,
    /// (target, counter key) → (when, value).
    counters: Mutex<HashMap<(String, String), (i64, u64)>>,
    /// Engines forgotten and discovered again after a failed request.
    rediscovered: std::sync::atomic::AtomicU64,
}

impl SnmpState {
    /// How many times a v3 engine was rediscovered (after a reboot or a time-window
    /// report), for the platform's own health.
    pub fn engine_recoveries(&self) -> u64 {
        self.engines.recovery_count() + self.rediscovered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The rate of `key` per second since its last reading, if there was one and the
    /// counter did not go backwards.
    fn rate(&self, target: &str, key: &str, at_ms: i64, value: u64) -> Option<f64> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let before = counters.insert((target.to_string(), key.to_string()), (at_ms, value));
        let (then, old) = before?;
        let secs = (at_ms - then) as f64 / 1_000.0;
        (secs > 0.0 && value >= old).then(|| (value - old) as f64 / secs)
    }

    /// Runs an SNMP probe at `at_ms`.
    pub async fn run(&self, spec: &Spec, at_ms: i64) -> Outcome {
        let Some(s) = &spec.snmp else {
            return down("the probe has no SNMP settings");
        };
        let target = if spec.target.contains(':') { spec.target.clone() } else { format!("{}:161", spec.target) };
        let auth: Auth = match s.version.as_str() {
            "2c" => Auth::v2c(s.community.clone()),
            _ => {
                let auth = match s.auth.as_str() {
                    "sha256" => AuthProtocol::Sha256,
                    "sha384" => AuthProtocol::Sha384,
                    "sha512" => AuthProtocol::Sha512,
                    _ => AuthProtocol::Sha1,
                };
                let privacy = match s.privacy.as_str() {
                    "aes256" => PrivProtocol::Aes256Blumenthal,
                    _ => PrivProtocol::Aes128,
                };
                match UsmConfig::new(bytes_of(&s.user)).auth_priv(auth, &s.auth_key, privacy, &s.privacy_key) {
                    Ok(c) => c.into(),
                    Err(e) => return down(format!("the v3 keys: {e}")),
                }
            }
        };
        // One try per request, so a retry with a fresh engine fits the probe's time.
        let per_request = Duration::from_millis(u64::from(spec.timeout_ms / 4).max(100));
        let connect = || {
            Client::builder(target.as_str(), auth.clone())
                .engine_cache(self.engines.clone())
                .request_timeout(per_request)
                .retry(async_snmp::Retry::none())
                .connect()
        };
        let client = match connect().await {
            Ok(c) => c,
            Err(e) => return down(e.to_string()),
        };
        let uptime = Oid::from_slice(SYS_UPTIME);
        let (client, uptime) = match client.get(&uptime).await {
            Ok(r) => (client, r.varbinds.first().and_then(|v| v.value.as_u32())),
            // A v3 engine known from before may have rebooted (new boots, time, or
            // engine ID): forget it and discover it again, once.
            Err(first) if s.version == "3" && self.engines.remove(&client.peer_addr()).is_some() => {
                self.rediscovered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let client = match connect().await {
                    Ok(c) => c,
                    Err(e) => return down(e.to_string()),
                };
                match client.get(&uptime).await {
                    Ok(r) => (client, r.varbinds.first().and_then(|v| v.value.as_u32())),
                    Err(e) => return down(format!("{e} (and before rediscovering the engine: {first})")),
                }
            }
            Err(e) => return down(e.to_string()),
        };
        let mut o = Outcome { readings: vec![Reading { metric: "up".into(), value: 1.0 }], ..Outcome::default() };
        let mut push = |metric: String, value: f64| o.readings.push(Reading { metric, value });
        if let Some(ticks) = uptime {
            push("uptime_s".into(), f64::from(ticks) / 100.0);
        }
        // Interfaces: name by index, then status, counters and errors.
        let walk = |arcs: &'static [u32]| {
            let client = &client;
            async move {
                let base = Oid::from_slice(arcs);
                let rows = match client.bulk_walk_default(base.clone()) {
                    Ok(w) => w.collect().await.map_err(|e| e.to_string())?,
                    Err(e) => return Err(e.to_string()),
                };
                Ok::<_, String>(
                    rows.into_iter()
                        .filter_map(|vb| {
                            let index =
                                vb.oid.strip_prefix(&base)?.arcs().iter().map(u32::to_string).collect::<Vec<_>>();
                            Some((index.join("."), vb.value))
                        })
                        .collect::<BTreeMap<String, Value>>(),
                )
            }
        };
        let mut problems = Vec::new();
        let names = walk(IF_NAME).await.unwrap_or_else(|e| {
            problems.push(format!("ifName: {e}"));
            BTreeMap::new()
        });
        let name_of = |index: &str| {
            names.get(index).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| format!("if{index}"))
        };
        if let Ok(rows) = walk(IF_OPER_STATUS).await {
            for (index, v) in rows {
                if let Some(n) = v.as_i32() {
                    push(format!("if.{}.oper_up", name_of(&index)), if n == 1 { 1.0 } else { 0.0 });
                }
            }
        }
        for (arcs, what) in [
            (IF_HC_IN_OCTETS, "in_bps"),
            (IF_HC_OUT_OCTETS, "out_bps"),
            (IF_IN_ERRORS, "in_errors_per_s"),
            (IF_OUT_ERRORS, "out_errors_per_s"),
        ] {
            match walk(arcs).await {
                Ok(rows) => {
                    for (index, v) in rows {
                        let Some(counter) = v.as_u64() else { continue };
                        let name = name_of(&index);
                        let key = format!("if.{name}.{what}");
                        if let Some(rate) = self.rate(&target, &key, at_ms, counter) {
                            // Octets become bits per second.
                            let rate = if what.ends_with("bps") { rate * 8.0 } else { rate };
                            push(key, (rate * 100.0).round() / 100.0);
                        }
                    }
                }
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
        // HOST-RESOURCES: processor load (the mean of the processors) and storage use.
        if let Ok(loads) = walk(HR_PROCESSOR_LOAD).await {
            let values: Vec<f64> = loads.values().filter_map(|v| v.as_i32()).map(f64::from).collect();
            if !values.is_empty() {
                push("cpu_load_pct".into(), values.iter().sum::<f64>() / values.len() as f64);
            }
        }
        if let (Ok(descr), Ok(size), Ok(used)) =
            (walk(HR_STORAGE_DESCR).await, walk(HR_STORAGE_SIZE).await, walk(HR_STORAGE_USED).await)
        {
            for (index, d) in descr {
                let (Some(size), Some(used)) =
                    (size.get(&index).and_then(Value::as_i32), used.get(&index).and_then(Value::as_i32))
                else {
                    continue;
                };
                if size > 0 {
                    let name = d.as_str().unwrap_or("storage").to_string();
                    push(
                        format!("storage.{name}.used_pct"),
                        (f64::from(used) * 10_000.0 / f64::from(size)).round() / 100.0,
                    );
                }
            }
        }
        for oid in &s.oids {
            match Oid::parse(oid) {
                Ok(parsed) => match client.get(&parsed).await {
                    Ok(r) => match r.varbinds.first().map(|v| (v.value.as_f64(), &v.value)) {
                        Some((Some(v), _)) => push(format!("oid:{oid}"), v),
                        Some((None, other)) => problems.push(format!("{oid}: not a number ({other:?})")),
                        None => problems.push(format!("{oid}: no answer")),
                    },
                    Err(e) => problems.push(format!("{oid}: {e}")),
                },
                Err(e) => problems.push(format!("{oid}: {e}")),
            }
        }
        if !problems.is_empty() {
            o.note = Some(problems.join("; "));
        }
        o
    }
}

fn down(error: impl Into<String>) -> Outcome {
    Outcome {
        readings: vec![Reading { metric: "up".into(), value: 0.0 }],
        error: Some(error.into()),
        ..Outcome::default()
    }
}

/// The user name as owned bytes (the USM configuration keeps it).
fn bytes_of(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_needs_two_readings_and_a_counter_that_went_backwards_gives_none() {
        let s = SnmpState::default();
        assert_eq!(s.rate("sw", "if.ge0.in_bps", 0, 1_000), None);
        assert_eq!(s.rate("sw", "if.ge0.in_bps", 10_000, 126_000), Some(12_500.0));
        // Another target's counter of the same name is its own.
        assert_eq!(s.rate("sw2", "if.ge0.in_bps", 10_000, 5), None);
        // The device rebooted: its counter restarted from zero.
        assert_eq!(s.rate("sw", "if.ge0.in_bps", 20_000, 300), None);
        assert_eq!(s.rate("sw", "if.ge0.in_bps", 30_000, 10_300), Some(1_000.0));
        // A 64-bit counter near its top still subtracts exactly.
        assert_eq!(s.rate("sw", "big", 0, u64::MAX - 1_000), None);
        assert_eq!(s.rate("sw", "big", 1_000, u64::MAX), Some(1_000.0));
    }
}
