//! A real headless Chromium (Debian's chromium + chromedriver, driven through the W3C
//! WebDriver protocol) logs in with password and TOTP, sees the home page, and is
//! logged out after the idle timeout — time moved by the test's injected clock.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lianyi_security::users::NewUser;
use lianyi_security::{Caller, Clock, ManualClock, totp};
use serde_json::{Value, json};

use crate::helpers::spawn_app_clocked;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    http: reqwest::Client,
    session: String,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        assert!(
            std::path::Path::new("/usr/bin/chromedriver").exists(),
            "chromedriver is missing: scripts/test installs Debian's chromium and chromium-driver"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = crate::helpers::http().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("lianyi-chrome-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--lang=zh-CN", format!("--user-data-dir={}", profile.display())],
            "prefs": {"intl.accept_languages": "zh-CN,zh"}}}}});
        let v: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        Driver { child, http, session, base }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let v: Value = self.http.request(method, url).json(&body).send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", json!({})).await.as_str().unwrap_or_default().to_string()
    }

    async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let v = self.cmd(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css})).await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no element {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/value"), json!({"text": text})).await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{id}/text"), json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the page URL contains `fragment` (after a click started a navigation).
    async fn wait_url(&self, fragment: &str) -> String {
        let started = Instant::now();
        loop {
            let u = self.url().await;
            if u.contains(fragment) {
                return u;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "stayed at {u}, expected {fragment}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn chromium_logs_in_with_totp_and_is_logged_out_when_idle() {
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    app.users
        .add_user(
            &Caller::system("test"),
            NewUser {
                username: "dr.chrome".into(),
                display_name: "浏览器 测试医生".into(),
                password: "initial-Pass-2026".into(),
                grants: vec![("doctor".into(), "campus-east".into())],
                patient: None,
                must_change_password: true,
            },
        )
        .await
        .unwrap();
    // localhost, so Chromium keeps the Secure __Host- cookies over plain http.
    let site = app.base.replace("127.0.0.1", "localhost");
    let d = Driver::start().await;
    d.goto(&format!("{site}/")).await;
    assert!(d.wait_url("/login").await.ends_with("/login"));
    d.type_into("#username", "dr.chrome").await;
    d.type_into("#password", "initial-Pass-2026").await;
    d.click("#submit").await;
    d.wait_url("/login/password").await;
    d.type_into("#current", "initial-Pass-2026").await;
    d.type_into("#new", "chromium passphrase 1").await;
    d.type_into("#confirm", "chromium passphrase 1").await;
    d.click("#submit").await;
    d.wait_url("/login/enrol").await;
    let secret = totp::base32_decode(d.text("#totp-secret").await.trim()).unwrap();
    d.type_into("#code", &totp::code_at(&secret, clock.now_ms())).await;
    d.click("#submit").await;
    let welcome = d.text("#welcome").await;
    assert!(welcome.contains("浏览器 测试医生"), "{welcome}");

    // Sixteen minutes without a request (on the server's clock): the next page is the login.
    clock.advance(16 * 60_000);
    d.goto(&format!("{site}/")).await;
    assert!(d.wait_url("/login").await.contains("m=expired"));
    assert!(d.text("#message").await.contains("会话已超时"));
    d.cmd(reqwest::Method::DELETE, "", json!({})).await;
}
