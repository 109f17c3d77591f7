//! What a probe is: its kind, its target and the kind's own settings, checked at the
//! edge so a probe that cannot run is never stored (the form and the API name the
//! field and the rule).

use serde::{Deserialize, Serialize};

/// The collection adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// ICMP echo; a TCP connect where raw sockets are not allowed (and it says so).
    Ping,
    /// A TCP connect to `host:port`.
    Tcp,
    /// An HTTP(S) GET: status, latency, optionally a text the body must contain.
    Http,
    /// The days left on a TLS server's certificate (expired and self-signed too).
    Tls,
    /// SNMP v2c or v3 GET and WALK of the standard MIBs.
    Snmp,
    /// A Prometheus text-format endpoint (node_exporter and friends).
    Prometheus,
    /// The latency of a query on the platform's own database.
    Database,
    /// The platform's own health: memory, pools, HL7 listeners and channels.
    Platform,
    /// The platform's own backups: whether the newest good one is older than the
    /// schedule allows, its age, and whether the last run failed.
    Backup,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Ping,
        Kind::Tcp,
        Kind::Http,
        Kind::Tls,
        Kind::Snmp,
        Kind::Prometheus,
        Kind::Database,
        Kind::Platform,
        Kind::Backup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::Tcp => "tcp",
            Kind::Http => "http",
            Kind::Tls => "tls",
            Kind::Snmp => "snmp",
            Kind::Prometheus => "prometheus",
            Kind::Database => "database",
            Kind::Platform => "platform",
            Kind::Backup => "backup",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the probe runs inside the central server only (it reads the server
    /// itself), never at a campus collector.
    pub fn central_only(self) -> bool {
        matches!(self, Kind::Database | Kind::Platform | Kind::Backup)
    }

    /// Whether the kind needs a target.
    fn needs_target(self) -> bool {
        !self.central_only()
    }
}

/// The SNMP version and credentials of an SNMP probe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snmp {
    /// `2c` or `3`.
    pub version: String,
    /// v2c.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub community: String,
    /// v3 (USM, authPriv).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `sha1`, `sha256`…
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_key: String,
    /// `aes128`, `aes256`…
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub privacy: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub privacy_key: String,
    /// More OIDs to GET beside the standard ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oids: Vec<String>,
}

/// A probe's definition: what to check, how often, and the kind's own settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub kind: Kind,
    /// `host:port` (TCP, TLS, SNMP's port defaults to 161), a host (ping) or a URL
    /// (HTTP, Prometheus). Empty for the database and platform probes.
    pub target: String,
    /// Seconds between checks.
    pub interval_s: u32,
    /// Milliseconds a check may take.
    pub timeout_ms: u32,
    /// HTTP: the status expected (default: any 2xx or 3xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// HTTP: a text the body must contain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expect_text: String,
    /// HTTP: accept any certificate (an internal server with a private CA).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Prometheus: the metric names to keep (empty: every sample, up to a limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snmp: Option<Snmp>,
}

/// When a probe due at `due_at` runs next after running at `now`: an interval after
/// it was due (a scheduler's tick does not add to each interval), or an interval
/// from now when it is a whole interval behind.
pub fn next_due(due_at: i64, interval_s: impl Into<i64>, now: i64) -> i64 {
    let interval = interval_s.into().max(1) * 1_000;
    if due_at + interval > now { due_at + interval } else { now + interval }
}

/// When a probe that has just failed after being up is checked again: half an
/// interval after the failed check, so two failures in a row (what the default rule
/// waits for) take one and a half intervals at most, not two.
pub fn retry_at(interval_s: impl Into<i64>, failed_at: i64) -> i64 {
    failed_at + interval_s.into().max(1) * 500
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            kind: Kind::Tcp,
            target: String::new(),
            interval_s: 60,
            timeout_ms: 5_000,
            expect_status: None,
            expect_text: String::new(),
            insecure: false,
            metrics: Vec::new(),
            snmp: None,
        }
    }
}

/// One broken rule of a probe's definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub rule: &'static str,
    pub detail: String,
}

fn problem(field: &str, rule: &'static str, detail: impl Into<String>) -> Problem {
    Problem { field: field.into(), rule, detail: detail.into() }
}

/// Whether `s` is a numeric OID (`1.3.6.1.2.1.1.3.0`): at least two arcs, the first
/// 0–2, each a decimal number that fits 32 bits.
pub fn is_oid(s: &str) -> bool {
    let s = s.strip_prefix('.').unwrap_or(s);
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && arcs.iter().all(|a| !a.is_empty() && a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit()))
        && arcs.iter().all(|a| a.parse::<u32>().is_ok())
        && matches!(arcs[0], "0" | "1" | "2")
}

/// `host:port` with a port (1–65535); IPv6 in brackets.
fn host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, port))
}

pub const SNMP_AUTH: [&str; 4] = ["sha1", "sha256", "sha384", "sha512"];
pub const SNMP_PRIVACY: [&str; 2] = ["aes128", "aes256"];

impl Spec {
    /// Every broken rule, each naming its field; empty when the probe can run.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.interval_s == 0 || self.interval_s > 86_400 {
            out.push(problem("interval", "range", "1 to 86,400 seconds"));
        }
        if self.timeout_ms < 100 || self.timeout_ms > 60_000 {
            out.push(problem("timeout", "range", "100 to 60,000 milliseconds"));
        } else if self.interval_s > 0 && u64::from(self.timeout_ms) > u64::from(self.interval_s) * 1_000 {
            out.push(problem("timeout", "range", "no longer than the interval"));
        }
        let target = self.target.trim();
        if self.kind.needs_target() && target.is_empty() {
            out.push(problem("target", "required", format!("a {} probe checks a target", self.kind.as_str())));
            return out;
        }
        if !self.kind.needs_target() && !target.is_empty() {
            out.push(problem("target", "none", format!("a {} probe checks the platform itself", self.kind.as_str())));
        }
        match self.kind {
            Kind::Tcp | Kind::Tls if host_port(target).is_none() => {
                out.push(problem("target", "format", "host:port, e.g. 10.1.2.3:443"));
            }
            Kind::Ping | Kind::Snmp
                if target.contains(['/', ' ']) || (target.contains(':') && host_port(target).is_none()) =>
            {
                out.push(problem("target", "format", "a host name or address, optionally :port"));
            }
            Kind::Http | Kind::Prometheus => match reqwest::Url::parse(target) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => out.push(problem("target", "format", "an http:// or https:// URL")),
            },
            _ => {}
        }
        if let Some(s) = self.expect_status
            && !(100..=599).contains(&s)
        {
            out.push(problem("expect_status", "range", "an HTTP status, 100 to 599"));
        }
        if self.expect_text.chars().count() > 200 {
            out.push(problem("expect_text", "length", "at most 200 characters"));
        }
        if self.metrics.iter().any(|m| !crate::prom::is_metric_name(m)) {
            out.push(problem("metrics", "format", "Prometheus metric names ([a-zA-Z_:][a-zA-Z0-9_:]*)"));
        }
        match (&self.snmp, self.kind) {
            (None, Kind::Snmp) => out.push(problem("snmp", "required", "the SNMP version and credentials")),
            (Some(_), k) if k != Kind::Snmp => out.push(problem("snmp", "none", "SNMP settings on an SNMP probe only")),
            (Some(s), _) => s.problems(&mut out),
            _ => {}
        }
        out
    }
}

impl Snmp {
    fn problems(&self, out: &mut Vec<Problem>) {
        match self.version.as_str() {
            "2c" => {
                if self.community.is_empty() {
                    out.push(problem("snmp.community", "required", "the v2c community"));
                }
            }
            "3" => {
                if self.user.is_empty() {
                    out.push(problem("snmp.user", "required", "the v3 user name"));
                }
                if !SNMP_AUTH.contains(&self.auth.as_str()) {
                    out.push(problem("snmp.auth", "choice", SNMP_AUTH.join(", ")));
                }
                if !SNMP_PRIVACY.contains(&self.privacy.as_str()) {
                    out.push(problem("snmp.privacy", "choice", SNMP_PRIVACY.join(", ")));
                }
                for (field, key) in [("snmp.auth_key", &self.auth_key), ("snmp.privacy_key", &self.privacy_key)] {
                    if key.len() < 8 {
                        out.push(problem(field, "length", "at least 8 characters (RFC 3414)"));
                    }
                }
            }
            _ => out.push(problem("snmp.version", "choice", "2c or 3")),
        }
        for oid in &self.oids {
            if !is_oid(oid) {
                out.push(problem(
                    "snmp.oids",
                    "format",
                    format!("'{oid}' is not a numeric OID like 1.3.6.1.2.1.1.3.0"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(s: &Spec) -> Vec<(String, &'static str)> {
        s.problems().into_iter().map(|p| (p.field, p.rule)).collect()
    }

    #[test]
    fn a_probe_without_a_target_or_with_interval_zero_is_refused_by_field() {
        let s = Spec { kind: Kind::Tcp, interval_s: 0, ..Spec::default() };
        assert_eq!(fields(&s), [("interval".to_string(), "range"), ("target".to_string(), "required")]);
        let s = Spec { kind: Kind::Tcp, target: "10.0.0.1".into(), ..Spec::default() };
        assert_eq!(fields(&s), [("target".to_string(), "format")]);
        let s = Spec { kind: Kind::Http, target: "ftp://x".into(), ..Spec::default() };
        assert_eq!(fields(&s), [("target".to_string(), "format")]);
        let s = Spec { kind: Kind::Database, ..Spec::default() };
        assert!(s.problems().is_empty());
        let s = Spec { kind: Kind::Tcp, target: "[::1]:22".into(), ..Spec::default() };
        assert!(s.problems().is_empty());
    }

    #[test]
    fn snmp_oids_and_v3_credentials_are_checked() {
        assert!(is_oid("1.3.6.1.2.1.1.3.0") && is_oid(".1.3.6.1") && !is_oid("sysUpTime.0"));
        assert!(!is_oid("1") && !is_oid("3.1") && !is_oid("1..3") && !is_oid("1.3.99999999999"));
        let snmp = Snmp {
            version: "2c".into(),
            community: "public".into(),
            oids: vec!["ifInOctets".into()],
            ..Snmp::default()
        };
        let s = Spec { kind: Kind::Snmp, target: "10.0.0.1".into(), snmp: Some(snmp), ..Spec::default() };
        assert_eq!(fields(&s), [("snmp.oids".to_string(), "format")]);
        let snmp = Snmp {
            version: "3".into(),
            user: "mon".into(),
            auth: "md5".into(),
            auth_key: "short".into(),
            ..Snmp::default()
        };
        let s = Spec { kind: Kind::Snmp, target: "10.0.0.1:1161".into(), snmp: Some(snmp), ..Spec::default() };
        assert_eq!(
            fields(&s),
            [
                ("snmp.auth".to_string(), "choice"),
                ("snmp.privacy".to_string(), "choice"),
                ("snmp.auth_key".to_string(), "length"),
                ("snmp.privacy_key".to_string(), "length")
            ]
        );
    }
}
