use lianyi_security::{Caller, ClientService};
use lianyi_store::testing::fresh_database;
use lianyi_web::{App, AppConfig};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    /// Sends the bearer token of an all-campus, all-types client.
    pub client: Client,
    pub clients: ClientService,
    pub users: lianyi_security::users::UserService,
    pub fhir: lianyi_services::FhirService,
    /// The raw store, for tests that look behind the service (audit rows, users).
    pub store: lianyi_store::Store,
    pub database_url: String,
    /// Holds the field-encryption key file.
    pub keys_dir: std::path::PathBuf,
    /// The imaging service (AE table, index) of the running app.
    pub imaging: lianyi_imaging::Imaging,
    _shutdown: oneshot::Sender<()>,
    _dir: lianyi_store::testing::TestDir,
    /// The key folder on PostgreSQL (on SQLite it is the database's folder).
    _keys: Option<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppConfig::DEFAULT_MAX_BODY).await
}

pub async fn spawn_app_with(max_body_bytes: usize) -> TestApp {
    spawn_app_clocked(max_body_bytes, None).await
}

/// A test app whose clock the test moves.
pub async fn spawn_app_clocked(
    max_body_bytes: usize,
    clock: Option<std::sync::Arc<lianyi_security::ManualClock>>,
) -> TestApp {
    spawn_app_mailing(max_body_bytes, clock, None).await
}

/// A test app that mails the service desk's notifications through `mail`.
pub async fn spawn_app_mailing(
    max_body_bytes: usize,
    clock: Option<std::sync::Arc<lianyi_security::ManualClock>>,
    mail: Option<lianyi_web::MailConfig>,
) -> TestApp {
    spawn_app_adjusted(max_body_bytes, clock, |c| c.mail = mail).await
}

/// A test app whose configuration `adjust` changes first.
/// The server's warnings and errors go to the test's captured output, so a failing
/// test shows why the server answered 500.
fn log_errors() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_test_writer()
            .try_init();
    });
}

pub async fn spawn_app_adjusted(
    max_body_bytes: usize,
    clock: Option<std::sync::Arc<lianyi_security::ManualClock>>,
    adjust: impl FnOnce(&mut AppConfig),
) -> TestApp {
    log_errors();
    let (url, dir) = fresh_database().await;
    let keys = if dir.is_none() { Some(tempfile::tempdir().unwrap()) } else { None };
    let keys_dir = dir.clone().unwrap_or_else(|| keys.as_ref().map(|k| k.path().to_path_buf()).unwrap_or_default());
    let store = lianyi_store::Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let raw = store.clone();
    let mut config = AppConfig {
        database_url: url.clone(),
        default_campus: Some("campus-east".into()),
        max_body_bytes,
        public_url: None,
        audit_hash: lianyi_security::ChainAlg::Sm3,
        policy: lianyi_security::users::SecurityPolicy::default(),
        keys_file: keys_dir.join("keys"),
        cipher: lianyi_security::crypto::CipherAlg::Sm4Gcm,
        tls: None,
        login_rate_per_minute: 30,
        message_retention_days: 90,
        monitor_raw_days: 7,
        language: "zh-CN".into(),
        backup_schedule: None,
        critical_escalation_minutes: 10,
        near_expiry_days: 90,
        portal_mail_from: None,
        sms_gateway: None,
        booking: Default::default(),
        mail: None,
        read_database: None,
        failover_databases: Vec::new(),
        export_dir: keys_dir.join("exports"),
        imaging_dir: keys_dir.join("imaging"),
    };
    adjust(&mut config);
    let app = match clock {
        Some(c) => App::with_clock(store, config, c),
        None => App::with_store(store, config),
    }
    .expect("build app");
    let admin = app
        .state()
        .clients
        .add(
            &Caller::task(lianyi_security::SystemTask::Operator("test setup".into())),
            "test-admin",
            "system/*.cruds",
            "*",
            None,
        )
        .await
        .expect("admin client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clients = app.state().clients.clone();
    let users = app.state().users.clone();
    let fhir = app.state().fhir.clone();
    let imaging = app.state().imaging.clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let base = format!("http://{addr}");
    let client = authorized(&base, &admin.client_id, &admin.client_secret).await;
    TestApp {
        base,
        client,
        clients,
        users,
        fhir,
        store: raw,
        database_url: url,
        keys_dir,
        imaging,
        _shutdown: tx,
        _dir: dir,
        _keys: keys,
    }
}

/// A client builder for the tests. reqwest is built with rustls but no crypto provider
/// (the server uses ring, not aws-lc), so the provider is installed first.
pub fn http() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
}

/// An HTTP client that sends a bearer token obtained with these credentials.
pub async fn authorized(base: &str, client_id: &str, secret: &str) -> Client {
    let token = token(base, client_id, secret).await;
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    http().default_headers(headers).build().unwrap()
}

/// `POST /oauth/token` with client credentials.
pub async fn token(base: &str, client_id: &str, secret: &str) -> String {
    let r = http()
        .build()
        .unwrap()
        .post(format!("{base}/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

impl TestApp {
    /// An HTTP client for a new API client with these grants.
    pub async fn client_with(&self, scopes: &str, campuses: &str, patient: Option<&str>) -> Client {
        static CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!("c{}-{}", std::process::id(), CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let c = self
            .clients
            .add(
                &Caller::task(lianyi_security::SystemTask::Operator("test setup".into())),
                &name,
                scopes,
                campuses,
                patient.map(str::to_string),
            )
            .await
            .unwrap();
        authorized(&self.base, &c.client_id, &c.client_secret).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Creates a resource and returns its server-assigned id.
    pub async fn create(&self, body: &Value) -> String {
        let t = body["resourceType"].as_str().unwrap();
        let r = self.post(&format!("/fhir/{t}"), body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    /// Ids of a search, following `next` links through every page.
    pub async fn search_ids(&self, path_and_query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut next = Some(self.url(path_and_query));
        while let Some(url) = next.take() {
            let r = self.client.get(&url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{url}");
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["type"], "searchset");
            for e in b["entry"].as_array().cloned().unwrap_or_default() {
                ids.push(e["resource"]["id"].as_str().unwrap().to_string());
            }
            next = b["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .map(|l| l["url"].as_str().unwrap().to_string());
        }
        ids
    }

    pub async fn total(&self, path_and_query: &str) -> i64 {
        let b: Value = self.get(path_and_query).await.json().await.unwrap();
        b["total"].as_i64().unwrap()
    }
}

/// The first issue of an OperationOutcome: (code, expression, diagnostics).
pub async fn outcome(r: Response) -> (String, String, String) {
    assert_eq!(r.headers()["content-type"], "application/fhir+json; charset=utf-8");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    let i = &v["issue"][0];
    (
        i["code"].as_str().unwrap_or_default().to_string(),
        i["expression"][0].as_str().unwrap_or_default().to_string(),
        i["diagnostics"].as_str().unwrap_or_default().to_string(),
    )
}

/// PUTs a resource (its type and id from the body) with `client`; the write must
/// succeed.
pub async fn put_resource(client: &Client, app: &TestApp, v: Value) {
    let url = app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()));
    let r = client.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Adds an account with one role at `campus` (or `*`) and the walks' first password,
/// which it need not change.
pub async fn account(app: &TestApp, name: &str, role: &str, campus: &str) {
    let user = lianyi_security::users::NewUser {
        username: name.into(),
        display_name: name.into(),
        password: "initial-Pass-2026".into(),
        grants: vec![(role.into(), campus.into())],
        patient: None,
        must_change_password: false,
    };
    app.users
        .add_user(&lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test".into())), user)
        .await
        .unwrap();
}

/// A form kept as owned values, as `(name, value)` pairs to post.
pub fn pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A real SMTP server (aiosmtpd from the test venv) writing what it receives into a
/// Maildir; killed on drop.
pub(crate) struct SmtpSink {
    child: std::process::Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    pub(crate) fn start() -> SmtpSink {
        let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
        assert!(python.exists(), "{} is missing: ./scripts/test creates the test venv", python.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .spawn()
            .expect("aiosmtpd");
        // Dropped (and so killed and waited for) if it never listens.
        let sink = SmtpSink { child, port, dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sink;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("aiosmtpd did not listen on {port}");
    }

    /// The messages received: (to, subject, body), decoded.
    pub(crate) fn messages(&self) -> Vec<(String, String, String)> {
        use base64::Engine;
        let b64 = |s: &str| {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s.trim()).unwrap_or_default())
                .unwrap_or_default()
        };
        let mut out = Vec::new();
        let new = self.dir.path().join("maildir/new");
        for entry in std::fs::read_dir(&new).into_iter().flatten().flatten() {
            let raw = std::fs::read_to_string(entry.path()).unwrap().replace("\r\n", "\n");
            let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
            // Unfold the headers, then decode RFC 2047 words.
            let head = head.replace("\n ", " ").replace("\n\t", " ");
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap_or_default()
                    .split(' ')
                    .map(|w| match w.strip_prefix("=?utf-8?b?").and_then(|w| w.strip_suffix("?=")) {
                        Some(encoded) => b64(encoded),
                        None => format!("{w} "),
                    })
                    .collect::<String>()
            };
            out.push((
                header("To").trim().to_string(),
                header("Subject").trim().to_string(),
                b64(&body.replace('\n', "")),
            ));
        }
        out.sort();
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local HTTP receiver standing in for the hospital's SMS gateway: keeps each
/// request (its request line, headers and body) and answers 200, or 503 while down.
pub(crate) struct SmsReceiver {
    pub(crate) port: u16,
    pub(crate) requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub(crate) down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl SmsReceiver {
    pub(crate) async fn start() -> SmsReceiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kept, is_down) = (requests.clone(), down.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head, then as much body as Content-Length says.
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&raw).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
                kept.lock().unwrap().push(String::from_utf8_lossy(&raw).to_string());
                let answer = if is_down.load(std::sync::atomic::Ordering::SeqCst) {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"code\":0}\n"
                };
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        SmsReceiver { port, requests, down, task }
    }

    /// The requests received so far.
    pub(crate) fn received(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for SmsReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
