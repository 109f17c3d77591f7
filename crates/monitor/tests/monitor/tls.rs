//! The TLS and HTTPS probes against a real TLS server (`openssl s_server`, Debian's
//! openssl) whose self-signed certificate ends in 10 days: the days left are read
//! although the certificate is not trusted, and the HTTPS probe that verifies
//! certificates says why it failed.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lianyi_monitor::check::Checker;
use lianyi_monitor::probe::{Kind, Spec};

struct Server {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn https_with_days(days: u32) -> (Server, u16) {
    let dir = std::env::temp_dir().join(format!("lianyi-tls-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=pacs.east.example", "-days", &days.to_string()])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(ok.success());
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string(), "-cert"])
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    (Server { child, dir }, port)
}

#[tokio::test]
async fn a_certificate_ten_days_from_expiry_is_read_though_self_signed() {
    let (_server, port) = https_with_days(10);
    let c = Checker::new().unwrap();
    let spec = Spec { kind: Kind::Tls, target: format!("127.0.0.1:{port}"), timeout_ms: 3_000, ..Spec::default() };
    let now = lianyi_now();
    let mut o = c.run(&spec, now).await;
    for _ in 0..50 {
        if o.is_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        o = c.run(&spec, now).await;
    }
    assert!(o.is_up(), "{o:?}");
    let days = o.value("tls_days_left").unwrap();
    assert!((9.9..=10.01).contains(&days), "{days}");
    assert_eq!(o.value("tls_self_signed"), Some(1.0));
    // Read 12 days later by the probe's clock: expired two days ago, still reported.
    let later = c.run(&spec, now + 12 * 86_400_000).await;
    assert!(later.value("tls_days_left").unwrap() < -1.9);
    assert!(later.note.unwrap().contains("expired"));
    // The HTTPS probe verifies certificates unless told not to.
    let https =
        Spec { kind: Kind::Http, target: format!("https://127.0.0.1:{port}/"), timeout_ms: 3_000, ..Spec::default() };
    let o = c.run(&https, now).await;
    assert!(!o.is_up());
    assert!(o.error.unwrap().to_lowercase().contains("certificate"), "the error names the certificate");
    let o = c.run(&Spec { insecure: true, ..https }, now).await;
    assert!(o.is_up(), "{o:?}");
    assert_eq!(o.value("http_status"), Some(200.0));
}

/// Now, in epoch milliseconds (the probe takes time as a parameter).
#[allow(clippy::disallowed_methods)]
fn lianyi_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
