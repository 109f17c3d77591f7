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

pub(crate) struct Driver {
    child: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    /// Also on a failed test: the driver, then the browser it started (which would
    /// outlive a killed driver), then the browser's profile.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill").arg("-f").arg(self.profile.as_os_str()).status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Driver {
    pub(crate) async fn start() -> Driver {
        Driver::start_sized(1280, 1000).await
    }

    /// A browser whose page area is `width` × `height` CSS pixels.
    pub(crate) async fn start_sized(width: u32, height: u32) -> Driver {
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
                     "--lang=zh-CN", "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())],
            "prefs": {"intl.accept_languages": "zh-CN,zh"}}}}});
        let v: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        let d = Driver { child, http, session, base, profile };
        d.cmd(reqwest::Method::POST, "/window/rect", json!({"width": width, "height": height})).await;
        d
    }

    pub(crate) async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let v: Value = self.http.request(method, url).json(&body).send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    pub(crate) async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", json!({})).await.as_str().unwrap_or_default().to_string()
    }

    pub(crate) async fn find(&self, css: &str) -> String {
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

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// Replaces a field's value.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/clear"), json!({})).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// Clicks an element, scrolled to the middle of the window first (as a person
    /// would: not under a page's fixed header or tab bar).
    pub(crate) async fn click(&self, css: &str) {
        let id = self.find(css).await;
        let script = "arguments[0].scrollIntoView({block: 'center', inline: 'center'}); return true;";
        self.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": [{ELEMENT: id}]})).await;
        let v = self.cmd(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
        assert!(v.get("error").is_none(), "clicking {css}: {v}");
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{id}/text"), json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's scroll width and the window's inner width, in CSS pixels.
    async fn widths(&self) -> (i64, i64) {
        let script = "return [document.documentElement.scrollWidth, window.innerWidth];";
        let v = self.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": []})).await;
        (v[0].as_i64().unwrap_or(i64::MAX), v[1].as_i64().unwrap_or(0))
    }

    /// What the walk asserts on every page it visits: the shell's header (with
    /// log-out when signed in) and footer are there, nothing is wider than the
    /// window, and axe-core finds no serious or critical accessibility violation.
    pub(crate) async fn check(&self, signed_in: bool) {
        let url = self.url().await;
        self.find("header.bar").await;
        self.find("footer.foot").await;
        if signed_in {
            self.find("#logout").await;
        }
        self.fits_and_passes_axe(&url).await;
    }

    /// What the portal walk asserts on every page: the portal's own header (with its
    /// log-out and tab bar when signed in), nothing wider than the phone's window,
    /// and no serious or critical accessibility violation.
    pub(crate) async fn check_portal(&self, signed_in: bool) {
        let url = self.url().await;
        self.find("header.p-bar").await;
        if signed_in {
            self.find("#portal-logout").await;
            self.find("nav.p-tabs").await;
        }
        self.fits_and_passes_axe(&url).await;
    }

    /// Nothing on the page is wider than the window, and axe-core finds no serious or
    /// critical accessibility violation.
    async fn fits_and_passes_axe(&self, url: &str) {
        let (page, window) = self.widths().await;
        if page > window {
            let script = "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));";
            let wide = self.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": []})).await;
            panic!("{url} is {page} px wide in a {window} px window: {wide}");
        }
        let violations = self.axe().await;
        assert!(violations.is_empty(), "axe-core on {url}:\n{}", violations.join("\n"));
    }

    /// axe-core's serious and critical violations on the page, one line each.
    async fn axe(&self) -> Vec<String> {
        static AXE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vendor/axe-core/axe.min.js");
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        });
        let loaded = format!("{}\nreturn typeof axe;", *AXE);
        let v = self.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": loaded, "args": []})).await;
        assert_eq!(v, "object", "axe-core did not load: {v}");
        let run = "const done = arguments[arguments.length - 1];\
            axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
              .filter(v => v.impact === 'serious' || v.impact === 'critical')\
              .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.slice(0, 4).map(n => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\\s+/g, ' ')).join(' | '))))\
              .catch(e => done(['axe failed: ' + e]));";
        let v = self.cmd(reqwest::Method::POST, "/execute/async", json!({"script": run, "args": []})).await;
        v.as_array()
            .unwrap_or_else(|| panic!("axe-core answered {v}"))
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Opens the folded header menu (phones) when it is folded.
    pub(crate) async fn open_menu(&self) {
        let id = self.find("#site-nav").await;
        let shown = self.cmd(reqwest::Method::GET, &format!("/element/{id}/displayed"), json!({})).await;
        if shown != true {
            self.click("#menu-toggle").await;
        }
    }

    pub(crate) async fn log_out(&self) {
        self.open_menu().await;
        self.click("#logout").await;
        self.wait_url("/login").await;
    }

    /// Waits until the page URL contains `fragment` (after a click started a navigation).
    pub(crate) async fn wait_url(&self, fragment: &str) -> String {
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
            &Caller::task(lianyi_security::SystemTask::Operator("test".into())),
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

impl Driver {
    /// Saves a screenshot of the page (a test artifact) under
    /// `target/screenshots/<dir>/<name>.png`.
    pub(crate) async fn screenshot(&self, dir: &str, name: &str) {
        use base64::Engine;
        let png = self.cmd(reqwest::Method::GET, "/screenshot", json!({})).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots").join(dir);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{name}.png")), bytes).unwrap();
    }

    /// The page's visible text.
    pub(crate) async fn body(&self) -> String {
        self.text("body").await
    }

    /// Waits until the visible text contains `needle` (the page may change by itself).
    pub(crate) async fn wait_text(&self, needle: &str, secs: u64) -> String {
        let started = Instant::now();
        loop {
            let t = self.body().await;
            if t.contains(needle) {
                return t;
            }
            assert!(started.elapsed() < Duration::from_secs(secs), "'{needle}' never appeared in: {t}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Logs in with password (changing it when asked) and the authenticator code,
    /// checking each page on the way; returns the authenticator's secret (enrolled
    /// on this first login) for [`Driver::log_in_again`].
    pub(crate) async fn log_in(&self, site: &str, user: &str, password: &str, clock: &ManualClock) -> Vec<u8> {
        self.goto(&format!("{site}/login")).await;
        self.check(false).await;
        self.type_into("#username", user).await;
        self.type_into("#password", password).await;
        self.click("#submit").await;
        if self.wait_url("/login/").await.contains("/login/password") {
            self.check(false).await;
            self.type_into("#current", password).await;
            self.type_into("#new", "walk passphrase 2026").await;
            self.type_into("#confirm", "walk passphrase 2026").await;
            self.click("#submit").await;
            self.wait_url("/login/enrol").await;
        }
        self.check(false).await;
        let secret = totp::base32_decode(self.text("#totp-secret").await.trim()).unwrap();
        self.type_into("#code", &totp::code_at(&secret, clock.now_ms())).await;
        self.click("#submit").await;
        self.find("#welcome").await;
        self.check(true).await;
        secret
    }

    /// Sets a form field's value the way a picker would (date, month and select
    /// inputs read typed text in the browser's locale).
    pub(crate) async fn set_value(&self, css: &str, value: &str) {
        let script = "document.querySelector(arguments[0]).value = arguments[1]; return true;";
        self.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": [css, value]})).await;
    }

    /// Logs in `user` (made by [`crate::helpers::account`]) for a walk: enrolling its
    /// authenticator the first time (the secret kept in `secrets`), with that secret
    /// after; the clock moves on 31 s first, so a code is never used twice.
    pub(crate) async fn walk_log_in(
        &self,
        site: &str,
        user: &str,
        secrets: &mut Vec<(String, Vec<u8>)>,
        clock: &ManualClock,
    ) {
        clock.advance(31_000);
        match secrets.iter().find(|(u, _)| u == user) {
            Some((_, secret)) => self.log_in_again(site, user, "initial-Pass-2026", secret, clock).await,
            None => {
                let secret = self.log_in(site, user, "initial-Pass-2026", clock).await;
                secrets.push((user.to_string(), secret));
            }
        }
    }

    /// Switches the page to English when `lang` is `en` and it is not yet, waiting for
    /// `heading` to show.
    pub(crate) async fn in_language(&self, lang: &str, heading: &str) {
        if lang == "en" && self.text("#lang-switch").await.contains("English") {
            self.click("#lang-switch").await;
            self.wait_text(heading, 5).await;
        }
    }

    /// Logs in an account enrolled before, with the code of its authenticator's
    /// `secret` (a code is accepted once: the clock must have moved on 30 s since).
    pub(crate) async fn log_in_again(
        &self,
        site: &str,
        user: &str,
        password: &str,
        secret: &[u8],
        clock: &ManualClock,
    ) {
        self.goto(&format!("{site}/login")).await;
        self.type_into("#username", user).await;
        self.type_into("#password", password).await;
        self.click("#submit").await;
        self.wait_url("/login/mfa").await;
        self.check(false).await;
        self.type_into("#code", &totp::code_at(secret, clock.now_ms())).await;
        self.click("#submit").await;
        self.find("#welcome").await;
        self.check(true).await;
    }
}

/// What the walk expects to read, per language.
struct Expect {
    duplicate: &'static str,
    registered: &'static str,
    booked: &'static str,
    checked_in: &'static str,
    with_doctor: &'static str,
    icd_query: &'static str,
    diagnosis: &'static str,
    allergy: &'static str,
    blocked: &'static str,
    override_reason: &'static str,
    signed: &'static str,
    ordered: &'static str,
    critical: &'static str,
    flagged_result: &'static str,
    alert_text: &'static str,
    action: &'static str,
    refund_reason: &'static str,
}

const ZH: Expect = Expect {
    duplicate: "疑似重复",
    registered: "登记成功",
    booked: "预约成功",
    checked_in: "候诊序号：1",
    with_doctor: "就诊中",
    icd_query: "高血压",
    diagnosis: "原发性高血压",
    allergy: "青霉素",
    blocked: "处方被拦截",
    override_reason: "皮试阴性，既往使用无反应",
    signed: "处方已签署",
    ordered: "申请已发送",
    critical: "危急值",
    flagged_result: "血钾 6.8 mmol/L 危急高值",
    alert_text: "6.8 mmol/L (危急值",
    action: "已电话通知患者立即返院",
    refund_reason: "患者已有此药，未取药",
};

const EN: Expect = Expect {
    duplicate: "Possible duplicates",
    registered: "The patient is registered",
    booked: "The appointment is booked",
    checked_in: "Queue number: 1",
    with_doctor: "With the doctor",
    icd_query: "essential hypertension",
    diagnosis: "Essential (primary) hypertension",
    allergy: "penicillin",
    blocked: "The prescription is blocked",
    override_reason: "skin test negative, tolerated before",
    signed: "The prescription is signed",
    ordered: "The request is sent",
    critical: "Critical value",
    flagged_result: "Potassium 6.8 mmol/L critical high",
    alert_text: "6.8 mmol/L (critical",
    action: "patient called back to the emergency room",
    refund_reason: "patient has this drug at home, not collected",
};

/// The outpatient day in a real Chromium, as an administrator, a registrar and a
/// doctor, in one language and one window size: the administrator creates the
/// registrar's account (the one-time password shown once) and gives the doctor's
/// account its role; the registrar finds a patient by pinyin initials and by MRN,
/// registers a near-duplicate (the warning), books and checks in; the doctor's queue
/// opens at their own department, they call the patient, add an ICD-10 diagnosis, have
/// a prescription blocked by the allergy and override it with a reason, request a
/// potassium; the lab's ORU with a critical potassium arrives over MLLP and the alert
/// appears on the doctor's open page by itself; the doctor acknowledges it. Every page
/// on the way passes [`Driver::check`] (header, width, axe-core); a screenshot of every
/// step is saved under target/screenshots.
async fn outpatient_day(lang: &str, x: &Expect, (width, height): (u32, u32)) {
    use lianyi_clinical::scheduling::{Scheduling, Session};
    // Monday 23 November 2026, 08:30 in Beijing.
    let clock = ManualClock::new(1_795_393_800_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let tag = if lang == "en" { "en" } else { "zh" };
    for v in [
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
        json!({"resourceType": "Organization", "id": "east-im", "name": "内科", "alias": ["Internal Medicine"],
               "partOf": {"reference": "Organization/campus-east"}}),
        // The doctor's account name on their Practitioner: the queue opens at their department.
        json!({"resourceType": "Practitioner", "id": "dr-li", "name": [{"text": "李明"}],
               "identifier": [{"system": "urn:lianyi:sid:user", "value": format!("doctor.{tag}")}]}),
        json!({"resourceType": "PractitionerRole", "id": "role-li", "practitioner": {"reference": "Practitioner/dr-li"},
               "organization": {"reference": "Organization/east-im"}}),
        // Registered before, at this campus: the near-duplicate.
        json!({"resourceType": "Patient", "id": "zhang-shan-1", "gender": "female", "birthDate": "1990-01-01",
               "name": [{"text": "张珊"}], "telecom": [{"system": "phone", "value": "13800138000"}],
               "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E1000001"}]}),
    ] {
        let url = app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()));
        let r = east.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
        assert!(r.status().is_success());
    }
    let scheduling = Scheduling::new(app.fhir.clone());
    let system = Caller::task(lianyi_security::SystemTask::Operator("test setup".into()));
    let sessions = [Session { weekday: 1, start: "09:00".into(), end: "11:00".into(), slot_minutes: 30 }];
    let schedule = scheduling.set_template(&system, "role-li", &sessions).await.unwrap();
    scheduling.generate_slots(&system, &schedule, "2026-11-23", 1).await.unwrap();
    // The administrator (command line, as at installation) and the doctor's account,
    // which gets its role from the administrator in the browser.
    // And the accounts of two cashiers and a pharmacist of the East Campus.
    let east = |role: &str| vec![(role.to_string(), "campus-east".to_string())];
    for (name, grants) in [
        ("admin", vec![("administrator".to_string(), "*".to_string())]),
        ("doctor", Vec::new()),
        ("cashier", east("cashier")),
        ("cashier2", east("cashier")),
        ("pharmacist", east("pharmacist")),
    ] {
        app.users
            .add_user(
                &system,
                NewUser {
                    username: format!("{name}.{tag}"),
                    display_name: format!("{name} {lang}"),
                    password: "initial-Pass-2026".into(),
                    grants,
                    patient: None,
                    must_change_password: false,
                },
            )
            .await
            .unwrap();
    }
    // Billing and the pharmacy: the campus's prices and a batch of amoxicillin in its
    // outpatient pharmacy.
    crate::billing::price_items(
        &app,
        "2026-11-23",
        &[
            ["D-AMOX500", "western-drug", "drug", "AMOX500", "粒", "0.85", "AMOX500 中文名", "AMOX500 English"],
            ["D-PARA500", "western-drug", "drug", "PARA500", "片", "0.20", "PARA500 中文名", "PARA500 English"],
            ["O-LAB-K", "lab", "order", "LAB-K", "次", "20", "LAB-K 中文名", "LAB-K English"],
        ],
    )
    .await;
    let stock = lianyi_billing::stock::StockRoom::new(app.fhir.clone());
    let store = lianyi_store::pharmacy::StockStore {
        campus: "campus-east".into(),
        code: "op".into(),
        kind: "outpatient".into(),
        name_zh: "门诊药房".into(),
        name_en: "Outpatient pharmacy".into(),
    };
    stock.put_store(&system, &store).await.unwrap();
    let line =
        lianyi_billing::stock::OrderLineForm { drug: "AMOX500".into(), quantity: "100".into(), price: "0.30".into() };
    let po = stock.create_order(&system, "campus-east", "op", "国药控股", &[line]).await.unwrap();
    let batch = lianyi_billing::stock::ReceiveForm {
        drug: "AMOX500".into(),
        lot: "WALK01".into(),
        expiry: "2028-06-30".into(),
        quantity: "100".into(),
    };
    let batch = stock.receive(&system, "campus-east", po, &[batch]).await.unwrap()[0];
    // The lab system's MLLP connection ends at the platform's listener.
    let mllp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mllp_addr = mllp.local_addr().unwrap();
    let inbound = lianyi_interop::Inbound::new(app.fhir.clone(), "mllp:walk", "campus-east", "+08:00");
    tokio::spawn(lianyi_web::mllp::serve_mllp(mllp, inbound, Default::default(), None));

    let shots = format!("outpatient-{lang}-{width}");
    let site = app.base.replace("127.0.0.1", "localhost");
    let d = Driver::start_sized(width, height).await;
    d.goto(&format!("{site}/login")).await;
    if lang == "en" {
        d.open_menu().await;
        d.click("#lang-switch").await;
        d.wait_text("Log in", 10).await;
    }

    // The administrator creates the registrar's account and gives the doctor's its role.
    d.log_in(&site, &format!("admin.{tag}"), "initial-Pass-2026", &clock).await;
    d.goto(&format!("{site}/admin/accounts")).await;
    d.check(true).await;
    d.type_into("#new-username", &format!("registrar.{tag}")).await;
    d.type_into("#new-display-name", &format!("registrar {lang}")).await;
    d.click("#new-role option[value=registrar]").await;
    d.type_into("#new-campus", "campus-east").await;
    d.click("#create-submit").await;
    let registrar_password = d.text("#one-time-password").await.trim().to_string();
    assert!(registrar_password.len() >= 12, "{registrar_password}");
    d.check(true).await;
    d.screenshot(&shots, "00-account-created").await;
    let row = format!("tr[data-user='doctor.{tag}']");
    d.click(&format!("{row} form.add-grant option[value=doctor]")).await;
    d.type_into(&format!("{row} form.add-grant input[name=campus]"), "campus-east").await;
    d.click(&format!("{row} form.add-grant button")).await;
    d.wait_text("campus-east", 10).await;
    let roles = d.text(&row).await;
    assert!(roles.contains(if lang == "en" { "Doctor" } else { "医生" }), "{roles}");
    d.check(true).await;
    d.log_out().await;

    d.log_in(&site, &format!("registrar.{tag}"), &registrar_password, &clock).await;
    d.screenshot(&shots, "01-registrar-home").await;
    // The header's search finds the patient by pinyin initials, and by MRN.
    d.open_menu().await;
    d.type_into("#header-find", "zs\n").await;
    d.wait_url("/patients?q=zs").await;
    let page = d.wait_text("张珊", 10).await;
    assert!(page.contains("E1000001"), "{page}");
    d.check(true).await;
    d.open_menu().await;
    d.type_into("#header-find", "E1000001\n").await;
    d.wait_url("/patients?q=E1000001").await;
    d.wait_text("张珊", 10).await;
    d.check(true).await;

    // Registration: a near-duplicate of 张珊 (same sound, birth date and phone).
    d.goto(&format!("{site}/registration")).await;
    d.check(true).await;
    d.type_into("#name", "张山").await;
    d.type_into("#birth_date", "1990-01-01").await;
    d.click("#gender option[value=female]").await;
    d.type_into("#phone", "13800138000").await;
    d.click("#register").await;
    let page = d.wait_text(x.duplicate, 10).await;
    assert!(page.contains("张珊") && page.contains("E1000001"), "{page}");
    d.check(true).await;
    d.screenshot(&shots, "02-duplicate-warning").await;
    d.click("#confirm-new").await;
    let page = d.wait_text(x.registered, 10).await;
    assert!(page.contains("E2000000"), "the campus's first MRN: {page}");
    d.check(true).await;
    d.screenshot(&shots, "03-registered").await;

    // Book the first free time of internal medicine, then check in.
    d.click("#book-appointment").await;
    d.wait_url("/scheduling").await;
    d.check(true).await;
    d.click("#dept option[value=east-im]").await;
    d.click("#show-slots").await;
    d.wait_text("09:00", 10).await;
    d.check(true).await;
    // A slot asks for a confirmation naming the patient, doctor and time.
    d.click("summary.slot").await;
    let confirm = d.text("details[open] form.confirm").await;
    assert!(confirm.contains("张山") && confirm.contains("李明") && confirm.contains("09:00"), "{confirm}");
    d.check(true).await;
    d.click("details[open] button.book-confirm").await;
    d.wait_text(x.booked, 10).await;
    d.check(true).await;
    d.screenshot(&shots, "04-booked").await;
    d.click("button.check-in").await;
    d.wait_text(x.checked_in, 10).await;
    d.check(true).await;
    d.screenshot(&shots, "05-checked-in").await;
    // The registrar's home lists today's appointment as checked in.
    d.goto(&format!("{site}/")).await;
    let today = d.text("#work-today").await;
    assert!(today.contains("张山") && today.contains("09:00"), "{today}");
    d.log_out().await;

    // The doctor (their role given by the administrator) sees the queue on their home
    // page, opens their department's queue and calls the patient.
    d.log_in(&site, &format!("doctor.{tag}"), "initial-Pass-2026", &clock).await;
    let queue = d.text("#work-queue").await;
    assert!(queue.contains("张山"), "{queue}");
    d.goto(&format!("{site}/queue")).await;
    let page = d.wait_text("张山", 10).await;
    assert!(page.contains("李明"), "the doctor column: {page}");
    d.check(true).await;
    d.click("#call-next").await;
    d.wait_url("/encounters/").await;
    let page = d.wait_text(x.with_doctor, 10).await;
    assert!(page.contains("张山"), "{page}");
    d.check(true).await;
    d.screenshot(&shots, "06-encounter").await;

    // A diagnosis found by ICD-10 search.
    d.type_into("#icd", x.icd_query).await;
    d.click("#icd-go").await;
    d.click("tr[data-code=I10] button.add-diagnosis").await;
    let page = d.wait_text(x.diagnosis, 10).await;
    assert!(page.contains("I10"), "{page}");
    d.check(true).await;
    d.screenshot(&shots, "07-diagnosis").await;

    // The allergy, then a prescription it blocks; overridden with a reason.
    d.type_into("#substance", x.allergy).await;
    d.click("#criticality option[value=high]").await;
    d.click("#add-allergy").await;
    d.wait_url("done=allergy").await;
    d.check(true).await;
    d.click("#drug option[value=AMOX500]").await;
    d.type_into("#dose", "500").await;
    d.click("#frequency option[value=tid]").await;
    d.click("#rx-check").await;
    let page = d.wait_text(x.blocked, 10).await;
    assert!(page.contains(x.allergy), "{page}");
    d.check(true).await;
    d.screenshot(&shots, "08-prescription-blocked").await;
    d.type_into("#override-reason", x.override_reason).await;
    d.click("#override-sign").await;
    d.wait_text(x.signed, 10).await;
    d.check(true).await;
    d.screenshot(&shots, "09-override-signed").await;

    // A stat potassium.
    d.click("#order-item option[value=LAB-K]").await;
    d.click("#order-priority option[value=stat]").await;
    d.click("#order-submit").await;
    let page = d.wait_text(x.ordered, 10).await;
    assert!(page.contains("LY00000001"), "{page}");
    d.check(true).await;
    let encounter_url = d.url().await;

    // The lab's ORU over MLLP: potassium 6.8 mmol/L (HH) for that request.
    let oru = "MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261123093000||ORU^R01^ORU_R01|WALK1|P|2.5.1\rPID|1||E2000000^^^EAST^MR\r\
               OBR|1|LY00000001|LAB1|2823-3^Potassium^LN|||20261123091500|||||||||||||||||F\r\
               OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||6.8|mmol/L^mmol/L^UCUM|3.5-5.3|HH|||F\r";
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(mllp_addr).await.unwrap();
        let mut frame = vec![0x0b];
        frame.extend_from_slice(oru.as_bytes());
        frame.extend_from_slice(&[0x1c, 0x0d]);
        s.write_all(&frame).await.unwrap();
        let mut ack = vec![0u8; 1024];
        let n = s.read(&mut ack).await.unwrap();
        assert!(String::from_utf8_lossy(&ack[..n]).contains("MSA|AA|WALK1"));
    }
    // The doctor's open page shows it by itself (no reload).
    assert_eq!(d.url().await, encounter_url);
    let page = d.wait_text("6.8 mmol/L", 20).await;
    assert!(page.contains(x.critical), "{page}");
    d.check(true).await;
    d.screenshot(&shots, "10-critical-value").await;
    d.type_into(".cv-action", x.action).await;
    d.click(".cv-ack-button").await;
    d.wait_url("cv=acknowledged").await;
    let page = d.body().await;
    assert!(!page.contains(x.alert_text), "acknowledged: the alert is gone: {page}");
    // The result stays on the workspace, flagged.
    assert!(page.contains(x.flagged_result), "{page}");
    d.check(true).await;
    d.screenshot(&shots, "11-acknowledged").await;

    // A second prescription, paracetamol: paid with the rest, refunded undispensed.
    d.click("#drug option[value=PARA500]").await;
    d.fill("#dose", "500").await;
    d.click("#frequency option[value=tid]").await;
    d.fill("#days", "3").await;
    d.click("#rx-check").await;
    d.wait_url("done=prescribed").await;
    d.check(true).await;
    let encounter_id = encounter_url.split("/encounters/").nth(1).unwrap().split(['?', '#']).next().unwrap();
    let r = app.client.get(app.url(&format!("/fhir/Encounter/{encounter_id}"))).send().await.unwrap();
    let encounter: Value = r.json().await.unwrap();
    let patient = encounter["subject"]["reference"].as_str().unwrap().trim_start_matches("Patient/").to_string();
    let r = app
        .client
        .get(app.url(&format!("/fhir/MedicationRequest?subject=Patient/{patient}&code=urn:lianyi:drug%7CAMOX500")))
        .send()
        .await
        .unwrap();
    let found: Value = r.json().await.unwrap();
    let amox = found["entry"][0]["resource"]["id"].as_str().unwrap().to_string();
    let amox_quantity = found["entry"][0]["resource"]["dispenseRequest"]["quantity"]["value"].as_i64().unwrap();
    d.log_out().await;

    // The cashier takes the payment of the three charges and has the receipt to print.
    d.log_in(&site, &format!("cashier.{tag}"), "initial-Pass-2026", &clock).await;
    let started = Instant::now();
    loop {
        d.goto(&format!("{site}/billing/cashier?patient={patient}")).await;
        if d.cmd(reqwest::Method::POST, "/elements", json!({"using": "css selector", "value": "input[name=charge]"}))
            .await
            .as_array()
            .is_some_and(|a| a.len() == 3)
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the three charges never appeared");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    d.check(true).await;
    d.screenshot(&shots, "12-cashier").await;
    d.click("#pay-method option[value=cash]").await;
    d.type_into("#pay-tendered", "100").await;
    d.click("#pay-submit").await;
    d.wait_url("/billing/receipts/campus-east/1").await;
    d.find("#print-button").await;
    let receipt = d.text("#receipt-total").await;
    assert!(receipt.contains('.'), "{receipt}");
    d.check(true).await;
    d.screenshot(&shots, "13-receipt").await;
    d.log_out().await;

    // The pharmacist reviews the amoxicillin (the doctor's override shown) and dispenses it.
    d.log_in(&site, &format!("pharmacist.{tag}"), "initial-Pass-2026", &clock).await;
    d.goto(&format!("{site}/pharmacy")).await;
    d.check(true).await;
    d.click(&format!("tr[data-request='{amox}'] a")).await;
    let page = d.wait_text(x.override_reason, 10).await;
    assert!(page.contains("WALK01"), "the batch to take: {page}");
    d.check(true).await;
    d.screenshot(&shots, "14-review").await;
    d.click("#dispense-submit").await;
    d.wait_url("done=dispensed").await;
    d.check(true).await;
    d.goto(&format!("{site}/pharmacy/batches/{batch}")).await;
    let left = d.text("#batch-quantity").await;
    assert!(left.starts_with(&(100 - amox_quantity).to_string()), "the batch fell by {amox_quantity}: {left}");
    d.check(true).await;
    d.screenshot(&shots, "15-stock-card").await;
    d.log_out().await;

    // Another cashier refunds the paracetamol, not dispensed: a red-letter invoice.
    d.log_in(&site, &format!("cashier2.{tag}"), "initial-Pass-2026", &clock).await;
    d.goto(&format!("{site}/billing/receipts/campus-east/1")).await;
    d.click("#refund summary").await;
    let para = d
        .cmd(reqwest::Method::POST, "/execute/sync", json!({"script":
            "return [...document.querySelectorAll('.refund-charge')].find(c => c.parentElement.textContent.includes('PARA500')).value;", "args": []}))
        .await;
    d.click(&format!(".refund-charge[value='{}']", para.as_str().unwrap())).await;
    d.type_into("#refund-form input[name=reason]", x.refund_reason).await;
    d.click("#refund-form button[type=submit]").await;
    d.wait_url("/billing/receipts/campus-east/2").await;
    let red = d.text("#receipt-total").await;
    assert!(red.starts_with('-'), "a red-letter total: {red}");
    assert!(d.text("#refund-of").await.contains("00000001"));
    d.check(true).await;
    d.screenshot(&shots, "16-red-letter").await;

    // An unknown address answers in the shell.
    d.goto(&format!("{site}/no/such/page")).await;
    d.check(true).await;
    d.log_out().await;
    d.check(false).await;
    d.cmd(reqwest::Method::DELETE, "", json!({})).await;
}

const DESKTOP: (u32, u32) = (1366, 900);
const PHONE: (u32, u32) = (390, 844);

#[tokio::test]
async fn chromium_walks_the_outpatient_day_in_chinese() {
    outpatient_day("zh-CN", &ZH, DESKTOP).await;
}

#[tokio::test]
async fn chromium_walks_the_outpatient_day_in_chinese_on_a_phone() {
    outpatient_day("zh-CN", &ZH, PHONE).await;
}

#[tokio::test]
async fn chromium_walks_the_outpatient_day_in_english() {
    outpatient_day("en", &EN, DESKTOP).await;
}

#[tokio::test]
async fn chromium_walks_the_outpatient_day_in_english_on_a_phone() {
    outpatient_day("en", &EN, PHONE).await;
}
