use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lianyi_monitor::check::Checker;
use lianyi_monitor::probe::{Kind, Snmp, Spec};

/// A real snmpd on a free loopback UDP port, with its own config and persistent
/// folder (its engine boots counter lives there, so a restart is a reboot).
struct Agent {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Agent {
    fn start() -> Option<Agent> {
        if !Path::new("/usr/sbin/snmpd").exists() {
            assert!(std::env::var_os("CI").is_none(), "snmpd is missing: ./scripts/test installs it");
            eprintln!("skipped: /usr/sbin/snmpd is not installed (./scripts/test installs it)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("lianyi-snmpd-{}-{}", std::process::id(), free_udp_port()));
        std::fs::create_dir_all(dir.join("persist")).unwrap();
        std::fs::write(
            dir.join("snmpd.conf"),
            "rocommunity lianyi-ro 127.0.0.1\n\
             createUser monitor SHA \"auth-pass-123\" AES \"priv-pass-123\"\n\
             rouser monitor priv\n\
             sysLocation 东院区 machine room\n",
        )
        .unwrap();
        let mut a = Agent { dir, port: free_udp_port(), child: None };
        a.spawn();
        Some(a)
    }

    fn spawn(&mut self) {
        let child = Command::new("/usr/sbin/snmpd")
            .args(["-f", "-Lf", self.dir.join("log").to_str().unwrap(), "-C", "-c"])
            .arg(self.dir.join("snmpd.conf"))
            .arg("-p")
            .arg(self.dir.join("pid"))
            .arg(format!("udp:127.0.0.1:{}", self.port))
            .env("SNMP_PERSISTENT_DIR", self.dir.join("persist"))
            .env("MIBS", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("snmpd starts");
        self.child = Some(child);
        // Ready when it answers: net-snmp's own snmpget would need the tools package,
        // so wait until a v2c probe is up.
    }

    /// Shuts the agent down as a device does before it reboots (SIGTERM: snmpd saves
    /// its engine ID and boots counter).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn v2c(port: u16) -> Spec {
    Spec {
        kind: Kind::Snmp,
        target: format!("127.0.0.1:{port}"),
        timeout_ms: 1_500,
        snmp: Some(Snmp { version: "2c".into(), community: "lianyi-ro".into(), ..Snmp::default() }),
        ..Spec::default()
    }
}

fn v3(port: u16) -> Spec {
    Spec {
        kind: Kind::Snmp,
        target: format!("127.0.0.1:{port}"),
        timeout_ms: 1_500,
        snmp: Some(Snmp {
            version: "3".into(),
            user: "monitor".into(),
            auth: "sha1".into(),
            auth_key: "auth-pass-123".into(),
            privacy: "aes128".into(),
            privacy_key: "priv-pass-123".into(),
            oids: vec!["1.3.6.1.2.1.2.1.0".into()],
            ..Snmp::default()
        }),
        ..Spec::default()
    }
}

async fn until_up(what: &str, c: &Checker, spec: &Spec, now: i64) -> lianyi_monitor::check::Outcome {
    let mut last = None;
    for _ in 0..30 {
        let o = c.run(spec, now).await;
        if o.is_up() {
            return o;
        }
        last = Some(o);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("snmpd never answered {what}: {last:?}");
}

#[tokio::test]
async fn snmp_v2c_and_v3_walk_interfaces_compute_rates_and_survive_a_reboot() {
    let Some(mut agent) = Agent::start() else { return };
    let c = Checker::new().unwrap();
    assert!(v2c(agent.port).problems().is_empty() && v3(agent.port).problems().is_empty());
    let first = until_up("v2c", &c, &v2c(agent.port), 1_000_000).await;
    assert!(first.value("uptime_s").is_some(), "{first:?}");
    assert_eq!(first.value("if.lo.oper_up"), Some(1.0), "{first:?}");
    // No rate from one reading of a counter.
    assert_eq!(first.value("if.lo.in_bps"), None);
    // (net-snmp fills hrProcessorLoad only after its first minute of samples, so
    // `cpu_load_pct` is not asked of a fresh agent.)
    assert!(first.readings.iter().any(|r| r.metric.starts_with("storage.") && r.metric.ends_with(".used_pct")));
    // A second reading five seconds later by the probe's clock: a rate for every
    // interface from its 64-bit counters (snmpd caches its interface table for a few
    // seconds, so the value itself may be 0 here; the arithmetic is unit-tested).
    let second = c.run(&v2c(agent.port), 1_005_000).await;
    assert!(second.value("if.lo.in_bps").is_some_and(|r| r >= 0.0), "{second:?}");
    assert!(second.value("if.eth0.out_bps").is_some() || second.value("if.lo.out_bps").is_some());
    assert_eq!(second.value("if.lo.in_errors_per_s"), Some(0.0));

    // v3 authPriv (SHA, AES), with the extra OID (ifNumber).
    let o = until_up("v3", &c, &v3(agent.port), 2_000_000).await;
    assert!(o.value("uptime_s").is_some(), "{o:?}");
    assert!(o.value("oid:1.3.6.1.2.1.2.1.0").is_some(), "{o:?}");
    // A wrong v3 key: not up, and the error says why.
    let mut wrong = v3(agent.port);
    wrong.snmp.as_mut().unwrap().auth_key = "not-the-key".into();
    let o = c.run(&wrong, 2_000_000).await;
    assert!(!o.is_up() && o.error.is_some(), "{o:?}");

    // The device reboots (its engine boots counter goes up): the cached engine is
    // rediscovered and the host stays monitored.
    let recoveries = c.snmp_engine_recoveries();
    agent.stop();
    let down = c.run(&v3(agent.port), 3_000_000).await;
    assert!(!down.is_up());
    agent.spawn();
    until_up("v2c after the reboot", &c, &v2c(agent.port), 3_100_000).await;
    let back = until_up("v3 after the reboot", &c, &v3(agent.port), 3_100_000).await;
    assert!(c.snmp_engine_recoveries() > recoveries);
    assert!(back.value("uptime_s").unwrap() < first.value("uptime_s").unwrap() + 60.0);
}
