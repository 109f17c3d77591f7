//! Running a probe once: each adapter turns what it saw into readings (`up`,
//! `latency_ms`, `http_status`, `tls_days_left`, a Prometheus sample's key …). A
//! target that answers garbage, refuses or hangs is an outcome with an error — never
//! a panic, never a hang past the probe's timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::probe::{Kind, Spec};

/// One measured value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub metric: String,
    pub value: f64,
}

/// What one run of a probe saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The readings, `up` (1 or 0) always first.
    pub readings: Vec<Reading>,
    /// Why the target is not up (or what did not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How it was checked when not as asked (ICMP not allowed: a TCP connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Outcome {
    fn up(latency: Option<Duration>) -> Outcome {
        let mut o = Outcome { readings: vec![Reading { metric: "up".into(), value: 1.0 }], ..Outcome::default() };
        if let Some(l) = latency {
            o.push("latency_ms", l.as_secs_f64() * 1_000.0);
        }
        o
    }

    fn down(error: impl Into<String>) -> Outcome {
        Outcome {
            readings: vec![Reading { metric: "up".into(), value: 0.0 }],
            error: Some(error.into()),
            ..Outcome::default()
        }
    }

    fn push(&mut self, metric: impl Into<String>, value: f64) {
        self.readings.push(Reading { metric: metric.into(), value });
    }

    /// Whether the target answered as expected.
    pub fn is_up(&self) -> bool {
        self.value("up") == Some(1.0)
    }

    pub fn value(&self, metric: &str) -> Option<f64> {
        self.readings.iter().find(|r| r.metric == metric).map(|r| r.value)
    }
}

/// An ICMP socket, or why the system refused one.
type IcmpSocket = Result<surge_ping::Client, String>;

/// At most this many Prometheus samples are kept from one scrape.
pub const MAX_SAMPLES: usize = 500;
/// At most this much of a body is read.
const MAX_BODY: usize = 4 << 20;

/// Runs probes; holds the HTTP clients (one verifying certificates, one not) and the
/// TLS configuration, built once.
#[derive(Clone)]
pub struct Checker {
    http: reqwest::Client,
    http_insecure: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    snmp: Arc<crate::snmp::SnmpState>,
    /// ICMP sockets (v4, v6), opened at the first ping; an error where raw and
    /// datagram ICMP sockets are both refused.
    icmp: Arc<tokio::sync::OnceCell<(IcmpSocket, IcmpSocket)>>,
    sequence: Arc<std::sync::atomic::AtomicU16>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checker")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the probe runner could not start: {0}")]
pub struct StartError(String);

impl Checker {
    pub fn new() -> Result<Checker, StartError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // reqwest's rustls without a provider uses the process default: ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .danger_accept_invalid_certs(insecure)
                .redirect(reqwest::redirect::Policy::limited(5))
                .user_agent(concat!("lianyi-monitor/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| StartError(e.to_string()))
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StartError(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Checker {
            http: build(false)?,
            http_insecure: build(true)?,
            tls: Arc::new(tls),
            snmp: Arc::default(),
            icmp: Arc::default(),
            sequence: Arc::default(),
        })
    }

    /// How many times an SNMPv3 engine was rediscovered (a device rebooted).
    pub fn snmp_engine_recoveries(&self) -> u64 {
        self.snmp.engine_recoveries()
    }

    /// Runs `spec` once at `now_ms` (the instant certificate days are counted from).
    /// The database and platform probes are run by the server itself; here they are
    /// an error.
    /// Posts a JSON notification (a webhook) with extra headers, certificates
    /// verified; the HTTP status, or why nothing was answered.
    pub async fn post_json(&self, url: &str, headers: &[(&str, String)], body: String) -> Result<u16, String> {
        let mut req = self
            .http
            .post(url)
            .timeout(std::time::Duration::from_secs(10))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        match req.send().await {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) => Err(error_chain(&e)),
        }
    }

    pub async fn run(&self, spec: &Spec, now_ms: i64) -> Outcome {
        let limit = Duration::from_millis(u64::from(spec.timeout_ms.max(100)));
        let work = async {
            match spec.kind {
                Kind::Tcp => tcp(&spec.target).await,
                Kind::Http => self.http(spec).await,
                Kind::Tls => self.tls(&spec.target, now_ms).await,
                Kind::Prometheus => self.prometheus(spec).await,
                Kind::Snmp => self.snmp.run(spec, now_ms).await,
                Kind::Ping => self.ping(&spec.target, limit).await,
                Kind::Database | Kind::Platform | Kind::Backup => {
                    Outcome::down(format!("a {} probe is not run here", spec.kind.as_str()))
                }
            }
        };
        match tokio::time::timeout(limit, work).await {
            Ok(o) => o,
            Err(_) => Outcome::down(format!("no answer within {} ms", limit.as_millis())),
        }
    }

    /// ICMP echo; where the system refuses ICMP sockets, a TCP connect to the
    /// target's port (80 when none is given) — a refused connection proves the host
    /// is up as well — and the outcome says so.
    async fn ping(&self, target: &str, limit: Duration) -> Outcome {
        let (host, port) = match target.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                (h.trim_start_matches('[').trim_end_matches(']'), p.parse().unwrap_or(80))
            }
            _ => (target.trim_start_matches('[').trim_end_matches(']'), 80),
        };
        let addr = match tokio::net::lookup_host((host, port)).await.map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            Ok(None) => return Outcome::down(format!("{host} has no address")),
            Err(e) => return Outcome::down(format!("{host}: {e}")),
        };
        let (v4, v6) = self
            .icmp
            .get_or_init(|| async {
                let open = |kind| {
                    surge_ping::Client::new(&surge_ping::Config::builder().kind(kind).build())
                        .map_err(|e| e.to_string())
                };
                (open(surge_ping::ICMP::V4), open(surge_ping::ICMP::V6))
            })
            .await;
        let client = if addr.is_ipv4() { v4 } else { v6 };
        match client {
            Ok(client) => {
                let seq = self.sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut pinger = client.pinger(addr.ip(), surge_ping::PingIdentifier(seq ^ 0x4c59)).await;
                pinger.timeout(limit);
                match pinger.ping(surge_ping::PingSequence(seq), &[0; 32]).await {
                    Ok((_, rtt)) => Outcome::up(Some(rtt)),
                    Err(e) => Outcome::down(e.to_string()),
                }
            }
            Err(why) => {
                let started = Instant::now();
                let mut o = match tokio::net::TcpStream::connect(addr).await {
                    Ok(_) => Outcome::up(Some(started.elapsed())),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Outcome::up(Some(started.elapsed())),
                    Err(e) => Outcome::down(e.to_string()),
                };
                o.note = Some(format!("ICMP is not allowed here ({why}): checked by a TCP connect to port {port}"));
                o
            }
        }
    }

    async fn http(&self, spec: &Spec) -> Outcome {
        let client = if spec.insecure { &self.http_insecure } else { &self.http };
        let started = Instant::now();
        let resp = match client.get(&spec.target).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::down(error_chain(&e)),
        };
        let status = resp.status().as_u16();
        let body = if spec.expect_text.is_empty() { Ok(Vec::new()) } else { read_body(resp).await };
        let mut o = Outcome::up(Some(started.elapsed()));
        o.push("http_status", f64::from(status));
        let status_ok = match spec.expect_status {
            Some(want) => status == want,
            None => (200..400).contains(&status),
        };
        let problem = if !status_ok {
            Some(match spec.expect_status {
                Some(want) => format!("status {status}, expected {want}"),
                None => format!("status {status}, expected 2xx or 3xx"),
            })
        } else {
            match body {
                Err(e) => Some(e),
                Ok(b) if !spec.expect_text.is_empty() && !String::from_utf8_lossy(&b).contains(&spec.expect_text) => {
                    Some(format!("the page does not contain {:?}", spec.expect_text))
                }
                Ok(_) => None,
            }
        };
        if let Some(p) = problem {
            o.readings[0].value = 0.0;
            o.error = Some(p);
        }
        o
    }

    async fn prometheus(&self, spec: &Spec) -> Outcome {
        let client = if spec.insecure { &self.http_insecure } else { &self.http };
        let started = Instant::now();
        let resp = match client.get(&spec.target).header("accept", "text/plain; version=0.0.4").send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => return Outcome::down(format!("status {}", r.status().as_u16())),
            Err(e) => return Outcome::down(error_chain(&e)),
        };
        let body = match read_body(resp).await {
            Ok(b) => b,
            Err(e) => return Outcome::down(e),
        };
        let text = String::from_utf8_lossy(&body);
        match crate::prom::parse(&text, &spec.metrics) {
            Ok(samples) => {
                let mut o = Outcome::up(Some(started.elapsed()));
                let kept = samples.len().min(MAX_SAMPLES);
                for s in samples.into_iter().filter(|s| s.value.is_finite()).take(MAX_SAMPLES) {
                    o.push(s.key(), s.value);
                }
                if kept == MAX_SAMPLES {
                    o.note = Some(format!("only the first {MAX_SAMPLES} samples are kept; name the metrics to keep"));
                }
                o
            }
            Err(e) => Outcome::down(format!("not the Prometheus text format: {e}")),
        }
    }

    async fn tls(&self, target: &str, now_ms: i64) -> Outcome {
        let started = Instant::now();
        let Some((host, _)) = target.rsplit_once(':') else {
            return Outcome::down("the target is not host:port");
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = match rustls::pki_types::ServerName::try_from(host.to_string()) {
            Ok(n) => n,
            Err(_) => return Outcome::down(format!("{host} is not a host name or address")),
        };
        let tcp = match tokio::net::TcpStream::connect(target).await {
            Ok(s) => s,
            Err(e) => return Outcome::down(e.to_string()),
        };
        let stream = match tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp).await {
            Ok(s) => s,
            Err(e) => return Outcome::down(format!("TLS handshake: {e}")),
        };
        let Some(cert) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
            return Outcome::down("the server sent no certificate");
        };
        match x509_parser::parse_x509_certificate(cert.as_ref()) {
            Ok((_, x)) => {
                let not_after_ms = x.validity().not_after.timestamp().saturating_mul(1_000);
                let days = (not_after_ms - now_ms) as f64 / 86_400_000.0;
                let mut o = Outcome::up(Some(started.elapsed()));
                o.push("tls_days_left", (days * 100.0).round() / 100.0);
                o.push("tls_self_signed", if x.issuer() == x.subject() { 1.0 } else { 0.0 });
                if days < 0.0 {
                    o.note = Some(format!("the certificate expired {:.0} days ago", -days));
                }
                o
            }
            Err(e) => Outcome::down(format!("the certificate does not read: {e}")),
        }
    }
}

async fn tcp(target: &str) -> Outcome {
    let started = Instant::now();
    match tokio::net::TcpStream::connect(target).await {
        Ok(_) => Outcome::up(Some(started.elapsed())),
        Err(e) => Outcome::down(e.to_string()),
    }
}

async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                body.extend_from_slice(&c);
                if body.len() > MAX_BODY {
                    return Err(format!("the answer is larger than {} MiB", MAX_BODY >> 20));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(error_chain(&e)),
        }
    }
}

/// reqwest's error with its causes ("error sending request: … connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Accepts any certificate: the TLS probe reads the certificate's dates, it does not
/// trust the server (expired and self-signed certificates are what it must report).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_closed_port_is_down_and_an_open_one_up() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let c = Checker::new().unwrap();
        let spec = Spec { kind: Kind::Tcp, target: addr.clone(), timeout_ms: 2_000, ..Spec::default() };
        let o = c.run(&spec, 0).await;
        assert!(o.is_up(), "{o:?}");
        assert!(o.value("latency_ms").is_some());
        drop(l);
        let o = c.run(&spec, 0).await;
        assert!(!o.is_up());
        assert!(o.error.unwrap().contains("refused"));
    }

    /// A server that answers every request with `answer` as the body.
    async fn serve(answer: &'static str) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                            answer.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        format!("http://{addr}/metrics")
    }

    #[tokio::test]
    async fn an_http_page_without_its_text_and_a_garbage_exporter_are_recorded_as_failing() {
        let c = Checker::new().unwrap();
        let url = serve("<html>维护中</html>").await;
        let spec = Spec { kind: Kind::Http, target: url.clone(), expect_text: "登录".into(), ..Spec::default() };
        let o = c.run(&spec, 0).await;
        assert_eq!(o.value("http_status"), Some(200.0));
        assert!(!o.is_up());
        assert!(o.error.unwrap().contains("登录"));
        let spec = Spec { kind: Kind::Prometheus, target: url, ..Spec::default() };
        let o = c.run(&spec, 0).await;
        assert!(!o.is_up());
        assert!(o.error.unwrap().starts_with("not the Prometheus text format: line 1"));
        let url = serve("# TYPE q gauge\nlianyi_queue_depth{channel=\"lis\"} 12\n").await;
        let o = c.run(&Spec { kind: Kind::Prometheus, target: url, ..Spec::default() }, 0).await;
        assert!(o.is_up());
        assert_eq!(o.value("lianyi_queue_depth{channel=\"lis\"}"), Some(12.0));
    }

    #[tokio::test]
    async fn a_ping_of_this_machine_answers() {
        let c = Checker::new().unwrap();
        let o = c.run(&Spec { kind: Kind::Ping, target: "127.0.0.1".into(), ..Spec::default() }, 0).await;
        assert!(o.is_up(), "{o:?}");
        assert!(o.value("latency_ms").is_some());
    }

    #[tokio::test]
    async fn a_silent_target_times_out_within_the_probe_timeout() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Accepts and never answers.
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let c = Checker::new().unwrap();
        let spec = Spec { kind: Kind::Tls, target: addr.to_string(), timeout_ms: 300, ..Spec::default() };
        let started = Instant::now();
        let o = c.run(&spec, 0).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(o.error.as_deref(), Some("no answer within 300 ms"));
    }
}
