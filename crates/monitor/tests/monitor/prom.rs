//! The Prometheus scraper against a real exporter: node_exporter (Debian's
//! `prometheus-node-exporter`) on a free loopback port, its node metrics read.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lianyi_monitor::check::Checker;
use lianyi_monitor::probe::{Kind, Spec};

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn node_exporter_becomes_a_source_of_the_metrics_asked_for() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _exporter = Exporter(
        Command::new("/usr/bin/prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node_exporter starts (scripts/test installs prometheus-node-exporter)"),
    );
    let c = Checker::new().unwrap();
    let spec = Spec {
        kind: Kind::Prometheus,
        target: format!("http://127.0.0.1:{port}/metrics"),
        timeout_ms: 3_000,
        metrics: vec!["node_load1".into(), "node_memory_MemAvailable_bytes".into(), "node_cpu_seconds_total".into()],
        ..Spec::default()
    };
    let mut o = c.run(&spec, 0).await;
    for _ in 0..50 {
        if o.is_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        o = c.run(&spec, 0).await;
    }
    assert!(o.is_up(), "{o:?}");
    assert!(o.value("node_load1").is_some_and(|v| v >= 0.0), "{o:?}");
    let available = o.value("node_memory_MemAvailable_bytes").unwrap();
    assert!(available > 1e6, "{available}");
    // A labelled counter: one reading per series, its labels in the key.
    let cpus: Vec<_> = o.readings.iter().filter(|r| r.metric.starts_with("node_cpu_seconds_total{")).collect();
    assert!(cpus.len() >= 2 && cpus.iter().any(|r| r.metric.contains("mode=\"idle\"")), "{cpus:?}");
    // Nothing but what was asked for (and the probe's own readings).
    assert!(o.readings.iter().all(|r| !r.metric.starts_with("go_")), "{:?}", o.readings);
}
