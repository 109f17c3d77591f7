//! `lianyi-bench pages`: server-side render time of the clinical pages with the demo
//! data. Starts `lianyi demo` (the real binary, next to this one), signs in as the
//! demo registrar and doctor through the login pages (password, then the
//! authenticator enrolment with a code computed from the page's key), books and
//! checks in a demo patient and calls them, then requests the registration, queue,
//! encounter and patient pages N times each, one at a time, and reports p50/p95/p99;
//! then the patient portal's pages as the demo patient, and the doctor's inbox.
//! The times are measured by the client over loopback, so they include HTTP (an
//! upper bound of the server's own time).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::percentile;

pub(crate) const DEMO_PASSWORD: &str = "Lianyi-Demo-2026";

pub(crate) struct Demo(pub(crate) Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A signed-in browser session (cookies kept by hand: the session cookie is Secure).
#[derive(Clone)]
pub(crate) struct Session {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

pub(crate) fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html.find(start).unwrap_or_else(|| panic!("{start} not in page")) + start.len();
    let j = html[i..].find(end).unwrap_or(0) + i;
    &html[i..j]
}

impl Session {
    fn new(base: &str) -> Session {
        let http = crate::reqwest_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Session { http, base: base.into(), cookies: Vec::new() }
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let first = v.to_str().unwrap_or_default().split(';').next().unwrap_or_default();
            if let Some((k, val)) = first.split_once('=') {
                self.cookies.retain(|(n, _)| n != k);
                if !val.is_empty() {
                    self.cookies.push((k.into(), val.into()));
                }
            }
        }
    }

    fn cookie(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub(crate) async fn get(&mut self, path: &str) -> (u16, String, String) {
        let r = self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie()).send().await.unwrap();
        self.keep(&r);
        let status = r.status().as_u16();
        let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        (status, loc, r.text().await.unwrap())
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        let status = r.status().as_u16();
        let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        (status, loc, r.text().await.unwrap())
    }

    /// Signs in with a password (no change asked) and enrols the authenticator.
    pub(crate) async fn log_in(base: &str, user: &str, password: &str) -> (Session, String) {
        let mut s = Session::new(base);
        let (_, _, page) = s.get("/login").await;
        let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
        let (_, loc, _) = s.post("/login", &[("csrf", &csrf), ("username", user), ("password", password)]).await;
        assert!(loc.contains("/login/enrol"), "{user}: expected the enrolment, got {loc}");
        let (_, _, page) = s.get("/login/enrol").await;
        let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
        let secret = lianyi_security::totp::base32_decode(between(&page, "id=\"totp-secret\">", "<").trim()).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let code = lianyi_security::totp::code_at(&secret, now);
        let (_, loc, _) = s.post("/login/enrol", &[("csrf", &csrf), ("code", &code)]).await;
        assert_eq!(loc, "/", "{user}: enrolment failed");
        let (_, _, home) = s.get("/").await;
        let csrf = between(&home, "name=\"csrf\" value=\"", "\"").to_string();
        (s, csrf)
    }
}

impl Session {
    /// Signs a patient in on the portal (a password; patients enrol no authenticator
    /// unless they choose to).
    pub(crate) async fn log_in_portal(base: &str, user: &str, password: &str) -> Session {
        let mut s = Session::new(base);
        let (_, _, page) = s.get("/portal/login").await;
        let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
        let (_, loc, _) = s.post("/portal/login", &[("csrf", &csrf), ("username", user), ("password", password)]).await;
        assert_eq!(loc, "/portal", "{user}: portal login failed");
        s
    }
}

pub(crate) async fn measure(s: &mut Session, path: &str, n: usize) -> (f64, f64, f64) {
    // Warm-up: templates, statement caches.
    for _ in 0..5 {
        let (status, _, _) = s.get(path).await;
        assert_eq!(status, 200, "{path}");
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, _, body) = s.get(path).await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(status == 200 && !body.is_empty(), "{path}: {status}");
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (percentile(&times, 0.5), percentile(&times, 0.95), percentile(&times, 0.99))
}

/// Starts the real `lianyi demo` (next to this binary) with `args` in a fresh folder
/// on free ports and waits until it answers; (the running demo, its base URL, its folder).
pub(crate) async fn start_demo(name: &str, args: &[&str], wait: Duration) -> (Demo, String, std::path::PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let lianyi = exe.with_file_name("lianyi");
    assert!(lianyi.exists(), "{} is missing: cargo build --release -p lianyi first", lianyi.display());
    let dir = std::env::temp_dir().join(format!("lianyi-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, mllp) = (free(), free());
    let child = Command::new(&lianyi)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--mllp-listen", &format!("127.0.0.1:{mllp}")])
        .args(if args.contains(&"--dicom-listen") { &[][..] } else { &["--dicom-listen", "127.0.0.1:0"][..] })
        .args(args)
        .arg("--data-dir")
        .arg(&dir)
        // The server's log filter for profiling (e.g. `lianyi_store=debug`), on stderr.
        .env("LIANYI_LOG", std::env::var("LIANYI_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let demo = Demo(child);
    let base = format!("http://127.0.0.1:{port}");
    let probe = crate::http_client();
    let started = Instant::now();
    while probe.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < wait, "the demo did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (demo, base, dir)
}

/// An API client `name` with `system/*.cruds` at `campus`, registered through the CLI
/// against the running demo's database in `dir` (as an operator would): its bearer token.
pub(crate) async fn client_bearer(base: &str, dir: &std::path::Path, name: &str, campus: &str) -> String {
    let lianyi = std::env::current_exe().unwrap().with_file_name("lianyi");
    let db = format!("sqlite://{}", dir.join("lianyi.db").display());
    let out = Command::new(&lianyi)
        .args(["client", "add", name, "--scope", "system/*.cruds", "--campus", campus, "--data-dir"])
        .arg(dir)
        .args(["--database", &db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let creds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::bearer(base, creds["client_id"].as_str().unwrap(), creds["client_secret"].as_str().unwrap()).await
}

pub async fn run(raw: Vec<String>) {
    let mut n = 200usize;
    let mut out = "bench-pages.json".to_string();
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        match k.as_str() {
            "--requests" => n = it.next().and_then(|v| v.parse().ok()).expect("--requests N"),
            "--out" => out = it.next().expect("--out FILE"),
            _ => {
                println!("lianyi-bench pages [--requests N] [--out FILE]");
                return;
            }
        }
    }
    let (_demo, base, dir) = start_demo("pages", &[], Duration::from_secs(120)).await;
    println!("Page render benchmark on the demo data (SQLite), {n} requests per page, one at a time");

    // The registrar books and checks in demo patient pat-0001 at internal medicine.
    let (mut registrar, csrf) = Session::log_in(&base, "registrar.east", DEMO_PASSWORD).await;
    let today = beijing_today();
    let (_, _, page) = registrar.get(&format!("/scheduling?patient=pat-0001&dept=campus-east-im&date={today}")).await;
    let slot = between(&page, "data-slot=\"", "\"").to_string();
    let back = format!("dept=campus-east-im&date={today}&patient=pat-0001");
    let (_, loc, _) = registrar
        .post("/scheduling/book", &[("csrf", &csrf), ("slot", &slot), ("patient", "pat-0001"), ("back", &back)])
        .await;
    assert!(loc.contains("done=booked"), "booking failed: {loc} (the demo schedules run Monday to Friday)");
    let (_, _, page) = registrar.get("/patients/pat-0001").await;
    // The booked appointment: the one with a check-in form (the demo's history gives
    // the patient past appointments too).
    let appointment =
        between(between(&page, "id=\"appointments\"", "</table>"), "action=\"/appointments/", "/check-in\"")
            .to_string();
    registrar.post(&format!("/appointments/{appointment}/check-in"), &[("csrf", &csrf), ("patient", "pat-0001")]).await;

    // The doctor calls the patient: the encounter page.
    let (mut doctor, dcsrf) = Session::log_in(&base, "doctor.east", DEMO_PASSWORD).await;
    let (_, encounter, _) = doctor.post("/queue/call", &[("csrf", &dcsrf), ("dept", "campus-east-im")]).await;
    assert!(encounter.starts_with("/encounters/"), "call-next failed: {encounter}");

    // The management pages (issue 20): the department head's roster of East internal
    // medicine this month (the demo rosters two months of it), and each keeper's page.
    let (mut head, _) = Session::log_in(&base, "head.east", DEMO_PASSWORD).await;
    let (mut materials, _) = Session::log_in(&base, "materials.east", DEMO_PASSWORD).await;
    let (mut engineer, _) = Session::log_in(&base, "equipment.east", DEMO_PASSWORD).await;
    let (mut hr, _) = Session::log_in(&base, "hr", DEMO_PASSWORD).await;
    let month = &today[..7];
    // The patient portal (issue 21): the demo patient on their phone's pages, and the
    // doctor's inbox of patients' questions.
    let mut patient = Session::log_in_portal(&base, "patient.0001", DEMO_PASSWORD).await;
    let (_, _, page) = patient.get("/portal/book/dept/campus-east-im").await;
    let role = between(&page, "data-role=\"", "\"").to_string();
    // The demo's head CT belongs to the first East patient, the demo patient.
    let (_, _, page) = patient.get("/portal/reports").await;
    assert!(page.contains("data-study=\""), "the demo patient has a study: {page}");
    let study = between(&page, "data-study=\"", "\"").to_string();

    let mut results = Vec::new();
    for (who, path) in [
        ("head", format!("/manage/rosters?department=campus-east-im&month={month}")),
        ("materials", "/manage/materials?campus=campus-east".to_string()),
        ("materials", "/manage/requisitions?campus=campus-east".to_string()),
        ("engineer", "/manage/equipment?campus=campus-east".to_string()),
        ("engineer", "/manage/repairs?campus=campus-east".to_string()),
        ("head", "/manage/notices".to_string()),
        ("hr", "/manage/staff?department=campus-east-im".to_string()),
        ("registrar", "/".to_string()),
        ("doctor", "/".to_string()),
        ("registrar", "/registration".to_string()),
        ("registrar", "/patients/pat-0001".to_string()),
        ("doctor", "/queue?dept=campus-east-im".to_string()),
        ("doctor", encounter.clone()),
        ("doctor", format!("{encounter}/print/summary")),
        ("patient", "/portal".to_string()),
        ("patient", "/portal/book".to_string()),
        ("patient", format!("/portal/book/doctor/{role}")),
        ("patient", "/portal/visits".to_string()),
        ("patient", "/portal/reports".to_string()),
        ("patient", format!("/portal/images/{study}")),
        ("patient", "/portal/record".to_string()),
        ("patient", "/portal/messages".to_string()),
        ("patient", "/portal/me".to_string()),
        ("patient", "/portal/triage".to_string()),
        ("doctor", "/portal/inbox".to_string()),
    ] {
        let s = match who {
            "registrar" => &mut registrar,
            "head" => &mut head,
            "materials" => &mut materials,
            "engineer" => &mut engineer,
            "hr" => &mut hr,
            "patient" => &mut patient,
            _ => &mut doctor,
        };
        let (p50, p95, p99) = measure(s, &path, n).await;
        let keep = if path.starts_with("/manage/") || path.starts_with("/portal/") { 3 } else { 2 };
        let name = path.split('?').next().unwrap_or_default().split('/').take(keep).collect::<Vec<_>>().join("/");
        let name = if name == "/" {
            format!("/ ({who})")
        } else if path.ends_with("/print/summary") {
            "/encounters/{id}/print/summary".to_string()
        } else if path.starts_with("/portal/book/doctor/") {
            "/portal/book/doctor/{role}".to_string()
        } else if path.starts_with("/portal/images/") {
            "/portal/images/{study}".to_string()
        } else {
            name
        };
        println!("  {name:<20} p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   p99 {p99:>6.2} ms");
        results.push(json!({"page": name, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }
    let report = json!({"requests_per_page": n, "pages": results});
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Today in Beijing, `YYYY-MM-DD`.
fn beijing_today() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    lianyi_fhir::datetime::format_instant(now + 8 * 3_600_000)[..10].to_string()
}
