//! The login pages over HTTP with a manual clock: password, forced change, TOTP
//! enrolment from the page's key, the second factor with replay blocking, idle
//! timeout, logout, CSRF and the language switch.

use std::sync::Arc;

use lianyi_security::users::NewUser;
use lianyi_security::{Caller, Clock, ManualClock, totp};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};

use crate::helpers::spawn_app_clocked;

/// A browser-like client that keeps cookies by hand (the session cookie is `Secure`,
/// which reqwest's store would not send over http).
#[derive(Clone)]
pub(crate) struct Browser {
    pub(crate) http: Client,
    base: String,
    pub(crate) cookies: Vec<(String, String)>,
    pub(crate) lang: &'static str,
}

impl Browser {
    pub(crate) fn new(base: &str, lang: &'static str) -> Self {
        Browser {
            http: crate::helpers::http().redirect(Policy::none()).build().unwrap(),
            base: base.into(),
            cookies: Vec::new(),
            lang,
        }
    }

    fn keep(&mut self, r: &Response) {
        for v in r.headers().get_all("set-cookie") {
            let first = v.to_str().unwrap().split(';').next().unwrap();
            let (k, val) = first.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !val.is_empty() {
                self.cookies.push((k.into(), val.into()));
            }
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub(crate) async fn get(&mut self, path: &str) -> (StatusCode, String, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("accept-language", self.lang)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        let status = r.status();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, location, r.text().await.unwrap())
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("accept-language", self.lang)
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        let status = r.status();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, location, r.text().await.unwrap())
    }
}

pub(crate) fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html.find(start).unwrap_or_else(|| panic!("{start} not in page: {html}")) + start.len();
    let j = html[i..].find(end).unwrap() + i;
    &html[i..j]
}

pub(crate) fn csrf(html: &str) -> String {
    between(html, "name=\"csrf\" value=\"", "\"").to_string()
}

async fn user(app: &crate::helpers::TestApp, name: &str) {
    app.users
        .add_user(
            &Caller::task(lianyi_security::SystemTask::Operator("test".into())),
            NewUser {
                username: name.into(),
                display_name: "欧阳医生".into(),
                password: "initial-Pass-2026".into(),
                grants: vec![("doctor".into(), "campus-east".into()), ("manager".into(), "*".into())],
                patient: None,
                must_change_password: true,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn login_with_password_and_totp_then_idle_timeout_and_logout() {
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    user(&app, "dr.ouyang").await;
    let mut b = Browser::new(&app.base, "zh-CN");

    let r = b.http.get(app.url("/login")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    let (s, _, html) = b.get("/login").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("<html lang=\"zh-CN\">") && html.contains("登录"));
    let token = csrf(&html);
    assert!(b.cookies.iter().any(|(k, _)| k == "__Host-lianyi_csrf"));

    // A form posted without the matching CSRF token does nothing.
    let (_, loc, _) =
        b.post("/login", &[("csrf", "forged"), ("username", "dr.ouyang"), ("password", "initial-Pass-2026")]).await;
    assert!(loc.is_empty() && !b.cookies.iter().any(|(k, _)| k == "__Host-lianyi_session"));

    let (_, _, html) = b.get("/login").await;
    let (s, loc, _) =
        b.post("/login", &[("csrf", &csrf(&html)), ("username", "dr.ouyang"), ("password", "initial-Pass-2026")]).await;
    assert_eq!((s, loc.as_str()), (StatusCode::SEE_OTHER, "/login/password"));
    let _ = token;
    // Not yet logged in: the home page sends the browser back to the current step.
    assert_eq!(b.get("/").await.1, "/login/password");

    let (_, _, html) = b.get("/login/password").await;
    let t = csrf(&html);
    let (_, _, again) = b
        .post(
            "/login/password",
            &[("csrf", &t), ("current", "initial-Pass-2026"), ("new", "short"), ("confirm", "short")],
        )
        .await;
    assert!(again.contains("密码至少需要 10 个字符"), "{again}");
    let (_, loc, _) = b
        .post(
            "/login/password",
            &[
                ("csrf", &t),
                ("current", "initial-Pass-2026"),
                ("new", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(loc, "/login/enrol");

    let (_, _, html) = b.get("/login/enrol").await;
    assert!(html.contains("<svg"), "the QR code is drawn on the server");
    let secret = totp::base32_decode(between(&html, "id=\"totp-secret\">", "<")).unwrap();
    let code = totp::code_at(&secret, clock.now_ms());
    let (_, loc, _) = b.post("/login/enrol", &[("csrf", &csrf(&html)), ("code", &code)]).await;
    assert_eq!(loc, "/");
    let stored = app.store.user_by_name("dr.ouyang").await.unwrap().unwrap();
    assert!(stored.totp_secret.unwrap().starts_with("enc:"), "the authenticator secret is encrypted at rest");
    let (s, _, home) = b.get("/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(home.contains("欢迎，欧阳医生") && home.contains("医生") && home.contains("全部院区"), "{home}");

    // Idle for longer than 15 minutes: the session is refused.
    clock.advance(15 * 60_000 + 1);
    assert_eq!(b.get("/").await.1, "/login?m=expired");
    let (_, _, html) = b.get("/login?m=expired").await;
    assert!(html.contains("会话已超时"));

    // Log in again in English.
    let mut b = Browser::new(&app.base, "en-US");
    let (_, _, html) = b.get("/login").await;
    assert!(html.contains("Log in"));
    let (_, loc, _) = b
        .post("/login", &[("csrf", &csrf(&html)), ("username", "dr.ouyang"), ("password", "a brand new passphrase")])
        .await;
    assert_eq!(loc, "/login/mfa");
    let (_, _, html) = b.get("/login/mfa").await;
    let fresh = totp::code_at(&secret, clock.now_ms());
    let (_, loc, _) = b.post("/login/mfa", &[("csrf", &csrf(&html)), ("code", &fresh)]).await;
    assert_eq!(loc, "/");
    // The same code again, in another browser within the same 30 seconds: a replay.
    let mut other = Browser::new(&app.base, "en");
    let (_, _, html2) = other.get("/login").await;
    other
        .post("/login", &[("csrf", &csrf(&html2)), ("username", "dr.ouyang"), ("password", "a brand new passphrase")])
        .await;
    let (_, _, mfa2) = other.get("/login/mfa").await;
    let (_, _, page) = other.post("/login/mfa", &[("csrf", &csrf(&mfa2)), ("code", &fresh)]).await;
    assert!(page.contains("already used"), "{page}");
    assert_eq!(other.get("/").await.1, "/login/mfa");
    let (_, _, home) = b.get("/").await;
    assert!(home.contains("Welcome, 欧阳医生") && home.contains("All campuses"), "{home}");

    let (_, loc, _) = b.post("/logout", &[("csrf", &csrf(&home))]).await;
    assert_eq!(loc, "/login?m=logged-out");
    assert_eq!(b.get("/").await.1, "/login");
}

#[tokio::test]
async fn lockout_shows_on_the_login_page() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock)).await;
    user(&app, "dr.locked").await;
    let mut b = Browser::new(&app.base, "en");
    let mut last = String::new();
    for _ in 0..5 {
        let (_, _, html) = b.get("/login").await;
        last = b
            .post("/login", &[("csrf", &csrf(&html)), ("username", "dr.locked"), ("password", "wrong-wrong-wrong")])
            .await
            .2;
    }
    assert!(last.contains("locked"), "{last}");
}

#[tokio::test]
async fn an_unknown_page_is_a_not_found_page_in_the_browsers_language() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let (status, _, html) = Browser::new(&app.base, "en").get("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("id=\"message\"") && html.contains("Not found.") && html.contains("href=\"/\""), "{html}");
    assert!(html.contains("class=\"bar\"") && html.contains("class=\"foot\""), "the shell's header and footer: {html}");
    let (status, _, html) = Browser::new(&app.base, "zh-CN").get("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("未找到"), "{html}");
    // Signed in, it is a page of the shell: navigation, search, log-out, footer.
    let (mut nurse, _) = logged_in(&app, &clock, "nurse.lost", "nurse", "campus-east", None).await;
    let (status, _, html) = nurse.get("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("id=\"logout\"") && html.contains("class=\"foot\"") && html.contains("未找到"), "{html}");
    // The FHIR API keeps its own answer for unknown paths: an OperationOutcome.
    let r = crate::helpers::http().build().unwrap().get(format!("{}/fhir/Nothing/1", app.base)).send().await.unwrap();
    assert_ne!(r.headers()["content-type"], "text/html; charset=utf-8");
}

/// Creates an account with one role and logs a browser all the way in (password
/// change, authenticator enrolment).
pub(crate) async fn logged_in(
    app: &crate::helpers::TestApp,
    clock: &ManualClock,
    name: &str,
    role: &str,
    campus: &str,
    patient: Option<&str>,
) -> (Browser, String) {
    app.users
        .add_user(
            &Caller::task(lianyi_security::SystemTask::Operator("test".into())),
            NewUser {
                username: name.into(),
                display_name: format!("{name} 显示名"),
                password: "initial-Pass-2026".into(),
                grants: vec![(role.into(), campus.into())],
                patient: patient.map(str::to_string),
                must_change_password: true,
            },
        )
        .await
        .unwrap();
    let mut b = Browser::new(&app.base, "zh-CN");
    let (_, _, html) = b.get("/login").await;
    b.post("/login", &[("csrf", &csrf(&html)), ("username", name), ("password", "initial-Pass-2026")]).await;
    let (_, _, html) = b.get("/login/password").await;
    let t = csrf(&html);
    let (_, next, _) = b
        .post(
            "/login/password",
            &[
                ("csrf", &t),
                ("current", "initial-Pass-2026"),
                ("new", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    if patient.is_some() {
        // A patient's account needs no authenticator: straight to the portal.
        assert_eq!(next, "/");
        let (_, _, home) = b.get("/portal").await;
        return (b, csrf(&home));
    }
    let (_, _, html) = b.get("/login/enrol").await;
    let secret = totp::base32_decode(between(&html, "id=\"totp-secret\">", "<")).unwrap();
    let (_, loc, _) =
        b.post("/login/enrol", &[("csrf", &csrf(&html)), ("code", &totp::code_at(&secret, clock.now_ms()))]).await;
    assert_eq!(loc, "/");
    let (_, _, home) = b.get("/").await;
    (b, csrf(&home))
}

#[tokio::test]
async fn break_the_glass_grants_then_expires_and_is_reported() {
    use lianyi_fhir::ResourceType;
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    // A west-campus patient with an observation.
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    let pid = {
        let r = west
            .post(app.url("/fhir/Patient"))
            .header("content-type", "application/fhir+json")
            .body(serde_json::json!({"resourceType": "Patient", "name": [{"family": "West"}]}).to_string())
            .send()
            .await
            .unwrap();
        r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    };
    let (mut doctor, csrf_token) = logged_in(&app, &clock, "dr.east", "doctor", "campus-east", None).await;
    let session = doctor.cookies.iter().find(|(k, _)| k == "__Host-lianyi_session").unwrap().1.clone();
    let patient = ResourceType::parse("Patient").unwrap();
    let caller = || async { app.users.active_caller(&session, None).await.unwrap().caller };

    assert!(
        app.fhir.reader(&caller().await, patient).await.unwrap().read(&pid).await.is_err(),
        "outside the doctor's campus"
    );
    // No reason, no access.
    let (_, _, page) = doctor.post("/break-glass", &[("csrf", &csrf_token), ("patient", &pid), ("reason", "x")]).await;
    assert!(page.contains("请填写至少 10 个字的理由"), "{page}");
    let (_, _, page) = doctor
        .post("/break-glass", &[("csrf", &csrf_token), ("patient", &pid), ("reason", "急诊抢救，患者昏迷无法问诊")])
        .await;
    assert!(page.contains("已授权，有效期至"), "{page}");
    let r = app.fhir.reader(&caller().await, patient).await.unwrap().read(&pid).await.unwrap();
    assert_eq!(r.id, pid);
    let search = lianyi_fhir::search::parse_search(patient, &[]).unwrap();
    assert_eq!(
        app.fhir
            .search(&app.fhir.permit(&caller().await, search.resource_type).await.unwrap(), &search)
            .await
            .unwrap()
            .total,
        Some(1),
        "search includes the opened record"
    );

    // Four hours later the grant is over (the doctor stays active meanwhile).
    for _ in 0..24 {
        clock.advance(10 * 60_000);
        let _ = caller().await;
    }
    clock.advance(1);
    assert!(app.fhir.reader(&caller().await, patient).await.unwrap().read(&pid).await.is_err(), "the grant expired");

    // The privacy officer sees it on the report; the doctor may not open the report.
    assert_eq!(doctor.get("/admin/break-glass").await.0, StatusCode::FORBIDDEN);
    let (mut officer, _) = logged_in(&app, &clock, "privacy", "privacy-officer", "*", None).await;
    let (s, _, report) = officer.get("/admin/break-glass").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        report.contains("user:dr.east") && report.contains("急诊抢救，患者昏迷无法问诊") && report.contains(&pid),
        "{report}"
    );
    let (_, _, audit) = officer.get(&format!("/admin/audit?patient={pid}")).await;
    assert!(audit.contains("<td>紧急授权</td>") && audit.contains("user:dr.east"), "{audit}");
}

#[tokio::test]
async fn a_patient_sees_who_has_seen_their_record() {
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let pid = app.create(&serde_json::json!({"resourceType": "Patient", "name": [{"family": "Self"}]})).await;
    let other = app.create(&serde_json::json!({"resourceType": "Patient", "name": [{"family": "Other"}]})).await;
    assert_eq!(app.get(&format!("/fhir/Patient/{pid}")).await.status(), StatusCode::OK);
    assert_eq!(app.get(&format!("/fhir/Patient/{other}")).await.status(), StatusCode::OK);
    let (mut me, _) = logged_in(&app, &clock, "patient.self", "patient", "*", Some(&pid)).await;
    let (s, _, page) = me.get("/me/access-log").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("谁看过我的病历") && page.contains("client:test-admin") && page.contains(&format!("患者 {pid}")),
        "{page}"
    );
    assert!(!page.contains(&other), "only their own record");
    assert_eq!(me.get("/admin/audit").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn integration_page_api_and_metrics_show_channel_health_and_replay_dead_letters() {
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(lianyi_web::AppConfig::DEFAULT_MAX_BODY, Some(clock.clone())).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(std::sync::Mutex::new(400u16));
    let log = crate::outbound::http_receiver(listener, answer.clone());
    let outbound = lianyi_interop::Outbound::new(app.fhir.clone(), "campus-east");
    let spec = lianyi_interop::ChannelSpec {
        id: "registry".into(),
        name: "registry".into(),
        kind: "webhook".into(),
        endpoint: format!("http://{addr}/events"),
        criteria: "Patient".into(),
        campus: None,
        headers: None,
        max_attempts: 3,
        backoff_ms: 100,
        max_backoff_ms: 1000,
    };
    outbound.add_channel(&Caller::task(lianyi_security::SystemTask::Operator("test".into())), spec).await.unwrap();
    app.create(&serde_json::json!({"resourceType": "Patient", "name": [{"family": "Refused"}]})).await;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.fhir.operations().dead_letters("registry").await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < until, "a 400 makes a dead letter");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The status page, for the IT engineer, in Chinese.
    let (mut it, token) = logged_in(&app, &clock, "it-wang", "it-engineer", "*", None).await;
    let (_, _, home) = it.get("/").await;
    assert!(home.contains("href=\"/admin/integration\">集成平台</a>"), "{home}");
    let (status, _, html) = it.get("/admin/integration").await;
    assert_eq!(status, StatusCode::OK);
    let row = between(&html, "data-channel=\"registry\">", "</tr>");
    assert!(row.contains("<td class=\"queue\">0</td><td class=\"dead\">1</td>"), "{row}");
    assert!(row.contains("HTTP 400"), "the last error is shown: {row}");
    assert!(html.contains("<td class=\"status\">dead</td>"));
    let id = between(&html, "href=\"/admin/integration/messages/", "\"").to_string();
    let (_, _, detail) = it.get(&format!("/admin/integration/messages/{id}")).await;
    let payload = between(&detail, "<pre id=\"payload\">", "</pre>");
    assert!(payload.starts_with("POST\n") && payload.contains("Refused"), "{payload}");
    assert!(detail.contains("id=\"replay\""));

    // A replay without the form token does nothing; with it, the dead letter goes again.
    let (status, _, _) = it.post("/admin/integration/channels/registry/replay-dead", &[("csrf", "forged")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.fhir.operations().dead_letters("registry").await.unwrap().len(), 1);
    *answer.lock().unwrap() = 200;
    let (status, loc, _) = it.post("/admin/integration/channels/registry/replay-dead", &[("csrf", &token)]).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/admin/integration?queued=1"));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while log.lock().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < until, "the replayed delivery arrives");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, _, html) = it.get("/admin/integration?queued=1").await;
    assert!(html.contains("已重新排队 1 条消息"));

    // The JSON API for a client registered with the integration scope word; others get 403.
    let api = app.client_with("system/Patient.rs lianyi:integration", "*", None).await;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let channel = loop {
        let v: serde_json::Value =
            api.get(app.url("/api/integration/channels")).send().await.unwrap().json().await.unwrap();
        let c = v["channels"][0].clone();
        if c["delivered"] == 1 {
            break c;
        }
        assert!(std::time::Instant::now() < until, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (channel["id"].as_str(), channel["queueDepth"].as_i64(), channel["deadLetters"].as_i64()),
        (Some("registry"), Some(0), Some(0))
    );
    let v: serde_json::Value = api
        .get(app.url("/api/integration/messages?direction=out&status=delivered"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = &v["messages"][0];
    assert_eq!(
        (m["channel"].as_str(), m["attempts"].as_i64(), m["type"].as_str()),
        (Some("registry"), Some(1), Some("Patient.create")),
        "a replay starts a fresh attempt budget"
    );
    let one: serde_json::Value =
        api.get(app.url(&format!("/api/integration/messages/{}", m["id"]))).send().await.unwrap().json().await.unwrap();
    assert!(one["payload"].as_str().unwrap().contains("\"family\":\"Refused\""));
    assert_eq!(one["ack"], "HTTP 200 ok");
    let plain = app.client_with("system/*.cruds", "*", None).await;
    let r = plain.get(app.url("/api/integration/messages")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (doctor, _) = logged_in(&app, &clock, "dr-li", "doctor", "campus-east", None).await;
    let mut doctor = doctor;
    assert_eq!(doctor.get("/admin/integration").await.0, StatusCode::FORBIDDEN);

    // Channel health on /metrics.
    let text =
        crate::helpers::http().build().unwrap().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("lianyi_channel_queue_depth{channel=\"registry\"} 0"), "{text}");
    assert!(text.contains("lianyi_channel_dead_letters{channel=\"registry\"} 0"));
    assert!(text.contains("lianyi_channel_last_success_timestamp_seconds{channel=\"registry\"}"));
    assert!(text.contains("lianyi_channel_attempts_total{channel=\"registry\",outcome=\"dead\"} 1"));
}

#[tokio::test]
async fn the_language_choice_follows_the_user_to_the_next_login() {
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let (mut b, _) = logged_in(&app, &clock, "dr.lang", "doctor", "campus-east", None).await;
    let (_, _, home) = b.get("/").await;
    assert!(home.contains("<html lang=\"zh-CN\">"), "the browser asks for Chinese");
    b.http.get(format!("{}/lang/en", app.base)).header("cookie", b.cookie_header()).send().await.unwrap();
    let user = app.store.user_by_name("dr.lang").await.unwrap().unwrap();
    assert_eq!(user.language.as_deref(), Some("en"), "kept with the account");

    // Another device, whose browser asks for Chinese: after the password the pages are English.
    let mut other = Browser::new(&app.base, "zh-CN");
    let (_, _, html) = other.get("/login").await;
    assert!(html.contains("<html lang=\"zh-CN\">"));
    let (_, loc, _) = other
        .post("/login", &[("csrf", &csrf(&html)), ("username", "dr.lang"), ("password", "a brand new passphrase")])
        .await;
    assert_eq!(loc, "/login/mfa");
    assert!(other.cookies.iter().any(|(k, v)| k == "lianyi_lang" && v == "en"), "{:?}", other.cookies);
    let (_, _, mfa) = other.get("/login/mfa").await;
    assert!(mfa.contains("<html lang=\"en\">"), "{mfa}");
}

/// An administrator manages accounts in the browser: create with a one-time password
/// shown once, grant and remove roles per campus, reset, disable; each audited, and
/// refused to anyone else.
#[tokio::test]
async fn an_administrator_creates_an_account_and_assigns_roles_in_the_browser() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let (mut admin, _) = logged_in(&app, &clock, "it.admin", "administrator", "*", None).await;
    let (status, _, html) = admin.get("/admin/accounts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-user=\"it.admin\""), "{html}");
    let token = csrf(&html);
    let (_, _, created) = admin
        .post(
            "/admin/accounts",
            &[
                ("csrf", &token),
                ("username", "nurse.wu"),
                ("display_name", "吴护士"),
                ("role", "nurse"),
                ("campus", "campus-east"),
            ],
        )
        .await;
    let password = between(&created, "id=\"one-time-password\">", "<").to_string();
    assert_eq!(password.len(), 16, "{created}");
    assert!(created.contains("data-user=\"nurse.wu\""));
    // The last login shows (the administrator's own, a moment ago); the new account's is "never".
    let row = |who: &str| between(&created, &format!("data-user=\"{who}\""), "</tr>").to_string();
    assert!(row("it.admin").contains("最近登录 2027-01-15"), "{}", row("it.admin"));
    assert!(row("nurse.wu").contains("从未登录"), "{}", row("nurse.wu"));
    // A bad campus is named, and nothing changes.
    let (_, _, refused) = admin
        .post("/admin/accounts/nurse.wu/grant", &[("csrf", &token), ("role", "doctor"), ("campus", "east campus!")])
        .await;
    assert!(refused.contains("id=\"message\""), "{refused}");
    let (_, loc, _) = admin
        .post("/admin/accounts/nurse.wu/grant", &[("csrf", &token), ("role", "doctor"), ("campus", "campus-west")])
        .await;
    assert_eq!(loc, "/admin/accounts?done=granted");
    let user = app.users.list_users().await.unwrap().into_iter().find(|(u, _)| u.username == "nurse.wu").unwrap();
    let grants: Vec<(String, String)> = user.1.iter().map(|g| (g.role.clone(), g.campus.clone())).collect();
    assert_eq!(grants, [("doctor".to_string(), "campus-west".to_string()), ("nurse".into(), "campus-east".into())]);
    let (_, loc, _) = admin
        .post("/admin/accounts/nurse.wu/revoke", &[("csrf", &token), ("role", "doctor"), ("campus", "campus-west")])
        .await;
    assert_eq!(loc, "/admin/accounts?done=revoked");
    assert_eq!(
        app.users.list_users().await.unwrap().iter().find(|(u, _)| u.username == "nurse.wu").unwrap().1.len(),
        1
    );

    // The new user logs in with the one-time password and must replace it.
    let mut nurse = Browser::new(&app.base, "zh-CN");
    let (_, _, login) = nurse.get("/login").await;
    let (_, loc, _) =
        nurse.post("/login", &[("csrf", &csrf(&login)), ("username", "nurse.wu"), ("password", &password)]).await;
    assert_eq!(loc, "/login/password");

    // Disabling ends it; the audit trail has every step.
    let (_, loc, _) = admin.post("/admin/accounts/nurse.wu/disable", &[("csrf", &token)]).await;
    assert_eq!(loc, "/admin/accounts?done=disabled");
    let (_, _, login) = Browser::new(&app.base, "en").get("/login").await;
    let (_, _, denied) = Browser::new(&app.base, "en")
        .post("/login", &[("csrf", &csrf(&login)), ("username", "nurse.wu"), ("password", &password)])
        .await;
    assert!(!denied.contains("/login/password"));
    let audit = app
        .fhir
        .audit_review(
            &Caller::task(lianyi_security::SystemTask::Operator("test".into())),
            &lianyi_store::audit::AuditQuery { actor: Some("user:it.admin".into()), limit: 100, ..Default::default() },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.entry.action.as_str()).collect();
    for a in ["user-add", "role-grant", "role-revoke", "user-disable", "user-list"] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
    // Anyone else is refused, in the service as on the page.
    let (mut doctor, _) = logged_in(&app, &clock, "dr.curious", "doctor", "campus-east", None).await;
    assert_eq!(doctor.get("/admin/accounts").await.0, StatusCode::FORBIDDEN);
    let (_, _, any) = doctor.get("/").await;
    let (status, _, _) = doctor
        .post("/admin/accounts/nurse.wu/grant", &[("csrf", &csrf(&any)), ("role", "administrator"), ("campus", "*")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Each role lands on its worklist: what it has to do now.
#[tokio::test]
async fn home_pages_are_worklists_by_role() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    for (name, role, campus, panel, other) in [
        ("lab.home", "lab-technician", "campus-east", "work-results", "work-accounts"),
        ("dr.home", "doctor", "campus-east", "work-critical", "work-channels"),
        ("privacy.home", "privacy-officer", "*", "work-break-glass", "work-results"),
        ("it.home", "it-engineer", "*", "work-channels", "work-critical"),
        ("admin.home", "administrator", "*", "work-accounts", "work-results"),
        ("manager.home", "manager", "*", "work-quality", "work-accounts"),
        ("it2.home", "it-engineer", "*", "work-system", "work-today"),
        ("registrar.home", "registrar", "campus-east", "work-today", "work-critical"),
    ] {
        let (mut b, _) = logged_in(&app, &clock, name, role, campus, None).await;
        let (status, _, html) = b.get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&format!("id=\"{panel}\"")), "{role} sees {panel}: {html}");
        assert!(!html.contains(&format!("id=\"{other}\"")), "{role} does not see {other}");
        assert!(html.contains("id=\"logout\""), "{role}: the shell");
    }
}

/// The audit review pages through the records, shows actions in the page's language
/// and exports the filtered records as CSV.
#[tokio::test]
async fn the_audit_review_pages_translates_and_exports_csv() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let task = Caller::task(lianyi_security::SystemTask::Operator("audit, test".into()));
    let entries: Vec<_> = (0..150)
        .map(|i| {
            let mut e = task.entry(clock.now_ms(), "read", "success");
            e.resource_type = Some("Patient".into());
            e.resource_id = Some(format!("p{i}"));
            e
        })
        .collect();
    app.fhir.audit_log().record(entries).await.unwrap();
    let (mut officer, _) = logged_in(&app, &clock, "privacy.lin", "privacy-officer", "*", None).await;
    let (status, _, page) = officer.get("/admin/audit?actor=audit,%20test").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<tr><td>").count(), 100, "one page of 100");
    assert!(page.contains("<td>读取</td>") && page.contains("<td>成功</td>"), "actions in Chinese: {page}");
    assert!(page.contains("&#38;page=1\" id=\"audit-next\""), "a link to the next page: {page}");
    let (_, _, older) = officer.get("/admin/audit?actor=audit,%20test&page=1").await;
    assert_eq!(older.matches("<tr><td>").count(), 50);
    assert!(older.contains("id=\"audit-prev\"") && !older.contains("id=\"audit-next\""));
    let r = officer
        .http
        .get(format!("{}/admin/audit.csv?actor=audit,%20test", app.base))
        .header("cookie", officer.cookie_header())
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with('\u{feff}'), "a byte-order mark for spreadsheets");
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 151, "a header and every record");
    assert!(lines[1].contains(",\"audit, test\",") && lines[1].contains(",read,"), "{}", lines[1]);
    // Nobody else exports it.
    let (mut nurse, _) = logged_in(&app, &clock, "nurse.csv", "nurse", "campus-east", None).await;
    assert_eq!(nurse.get("/admin/audit.csv").await.0, StatusCode::FORBIDDEN);
}

/// A user who opened fifty different patients' records in a day is named on the
/// privacy officer's home page, with a link to their audit records.
#[tokio::test]
async fn the_privacy_officer_sees_who_opened_many_records() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let (mut doctor, _) = logged_in(&app, &clock, "dr.wide", "doctor", "campus-east", None).await;
    for i in 0..50 {
        let id = app
            .create(&serde_json::json!({"resourceType": "Patient", "name": [{"text": format!("患者{i}")}],
                "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": format!("E9{i:06}")}]}))
            .await;
        assert_eq!(doctor.get(&format!("/patients/{id}")).await.0, StatusCode::OK);
    }
    let (mut officer, _) = logged_in(&app, &clock, "privacy.wide", "privacy-officer", "*", None).await;
    let (_, _, home) = officer.get("/").await;
    let panel = between(&home, "id=\"work-unusual\"", "</section>");
    assert!(panel.contains("user:dr.wide") && panel.contains("50"), "{panel}");
    assert!(panel.contains("/admin/audit?actor=user:dr.wide"), "{panel}");
    assert!(!panel.contains("privacy.wide"), "{panel}");
}
