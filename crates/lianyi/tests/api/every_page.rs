//! Every page with every demo account: the real `lianyi demo` (three campuses, 200
//! patients, schedules, results), each of its accounts signed in through the login
//! pages (password, authenticator enrolment), visits the pages every area serves and
//! every page linked from them, then the pages the other accounts found. Each page
//! answers (no server error), is drawn in the shell (header with log-out, footer),
//! offers something to do (a link, button or form besides the header's), and in
//! Chinese shows no English enumeration word.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lianyi_security::totp;
use reqwest::StatusCode;

use crate::pages::{Browser, between, csrf};

const BIN: &str = env!("CARGO_BIN_EXE_lianyi");
const PASSWORD: &str = "Lianyi-Demo-2026";

/// The demo's accounts, one per role (as `lianyi demo` prints them).
const ACCOUNTS: &[&str] = &[
    "registrar.east",
    "doctor.east",
    "doctor.west",
    "head.east",
    "nurse.east",
    "pharmacist.east",
    "labtech.east",
    "radiologist.south",
    "cashier.east",
    "stock.east",
    "stock.west",
    "manager",
    "it.engineer",
    "it.manager",
    "admin",
    "privacy.officer",
    "patient.0001",
];

/// Where every walk starts: each area's pages, with demo data in the paths.
const START: &[&str] = &[
    "/portal",
    "/portal/book",
    "/portal/visits",
    "/portal/reports",
    "/portal/me",
    "/portal/desk/pat-0001",
    "/",
    "/patients",
    "/patients?q=wang",
    "/patients?q=E1",
    "/patients/pat-0001",
    "/registration",
    "/ward",
    "/ward/admissions",
    "/ward/tasks",
    "/scheduling",
    "/scheduling?dept=campus-east-im",
    "/queue",
    "/queue?dept=campus-east-im",
    "/results",
    "/reports/critical-values",
    "/admin/audit",
    "/admin/accounts",
    "/admin/break-glass",
    "/admin/integration",
    "/me/access-log",
    "/pharmacy",
    "/pharmacy/stock",
    "/pharmacy/orders",
    "/pharmacy/transfers",
    "/pharmacy/count",
    "/billing/reports",
    "/ops/cis",
    "/ops/cis/new",
    "/ops/cis/import",
    "/ops/report",
    "/ops/tickets",
    "/ops/tickets?view=all",
    "/ops/groups",
    "/ops/monitor",
    "/ops/monitor/probes",
    "/ops/monitor/probes/new",
    "/ops/monitor/availability",
    "/ops/backups",
    "/ops/problems",
    "/ops/problems?all=1",
    "/ops/changes",
    "/ops/changes/new",
    "/ops/changes/calendar",
    "/ops/stats",
    "/ops/notifications",
    "/ops/sla",
    "/ops/kb",
    "/ops/kb/new",
    "/no/such/page",
];

/// English words of enumerations (FHIR codes and their displays) that a Chinese page
/// must show translated. Matched as whole words, case-insensitively, in the text a
/// user reads (not in markup, links or codes inside attributes).
const UNTRANSLATED: &[&str] = &[
    "ambulatory",
    "inpatient",
    "emergency",
    "in-progress",
    "arrived",
    "finished",
    "planned",
    "booked",
    "cancelled",
    "entered-in-error",
    "preliminary",
    "final",
    "amended",
    "registered",
    "active",
    "inactive",
    "resolved",
    "remission",
    "confirmed",
    "unconfirmed",
    "provisional",
    "tablet",
    "tablets",
    "capsule",
    "capsules",
    "injection",
    "oral",
    "intravenous",
    "male",
    "female",
    "routine",
    "urgent",
    "stat",
    "completed",
    "requested",
    "accepted",
    "rejected",
    "success",
    "failure",
    "read",
    "search",
    "create",
    "update",
    "delete",
    "doctor",
    "nurse",
    "registrar",
    "administrator",
    "manager",
    "pharmacist",
    "cashier",
    "patient",
    "encounter",
    "observation",
    "condition",
    "hypertension",
    "diabetes",
    "fever",
    "cough",
];

struct Demo {
    child: Child,
    base: String,
    dir: std::path::PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_demo() -> Demo {
    let dir = std::env::temp_dir().join(format!("lianyi-every-page-{}", std::process::id()));
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--mllp-listen",
            "127.0.0.1:0",
            "--dicom-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&dir)
        .env("LIANYI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lianyi demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut base = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://") && w.ends_with("/fhir")) {
                base.get_or_insert_with(|| url.trim_end_matches("/fhir").to_string());
            }
            if line.contains("patient.0001") {
                let _ = tx.send(base.take());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(300)).ok().flatten().expect("the demo printed its accounts");
    Demo { child, base, dir }
}

/// Signs a demo account in: password, then the authenticator enrolment (first login).
async fn sign_in(base: &str, user: &str) -> Browser {
    let mut b = Browser::new(base, "zh-CN");
    let (_, _, html) = b.get("/login").await;
    let (_, to, _) = b.post("/login", &[("csrf", &csrf(&html)), ("username", user), ("password", PASSWORD)]).await;
    if user.starts_with("patient.") {
        // A patient's account needs no authenticator.
        assert_eq!(to, "/", "{user}");
        return b;
    }
    assert_eq!(to, "/login/enrol", "{user}");
    let (_, _, html) = b.get("/login/enrol").await;
    let secret = totp::base32_decode(between(&html, "id=\"totp-secret\">", "<")).unwrap();
    // The demo runs on the system clock.
    let now = lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default());
    let (_, to, _) = b.post("/login/enrol", &[("csrf", &csrf(&html)), ("code", &totp::code_at(&secret, now))]).await;
    assert_eq!(to, "/", "{user}");
    b
}

/// The route a path belongs to: segments with digits are ids; query values dropped.
fn route_of(url: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path: Vec<&str> =
        path.split('/').map(|s| if s.chars().any(|c| c.is_ascii_digit()) { "{}" } else { s }).collect();
    let mut keys: Vec<&str> =
        query.split('&').filter_map(|kv| kv.split('=').next()).filter(|k| !k.is_empty()).collect();
    keys.sort_unstable();
    format!("{}?{}", path.join("/"), keys.join("&"))
}

/// Same-site page links of a page worth following (not log-out, language or campus
/// switches, downloads, the API, static files or in-page anchors).
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .filter(|h| h.starts_with('/') && !h.starts_with("//"))
        .filter(|h| {
            !["/logout", "/lang/", "/campus/", "/static/", "/fhir", "/api/", "/alerts", "/login"]
                .iter()
                .any(|p| h.starts_with(p))
                && !h.contains(".csv")
                && !h.contains('#')
        })
        .collect()
}

/// The text a user reads: no tags, scripts or styles; entities of the common kind decoded.
fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        out.push(' ');
        let tag = &rest[i..];
        let skip_to = ["<script", "<style"]
            .iter()
            .find(|t| tag.starts_with(**t))
            .and_then(|t| tag.find(&format!("</{}", &t[1..])))
            .unwrap_or(0);
        rest = match tag[skip_to..].find('>') {
            Some(j) => &tag[skip_to + j + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#x27;", "'")
}

/// English enumeration words in Chinese text (the demo's user names, which are
/// names, not words, left out).
fn untranslated(text: &str) -> Vec<&'static str> {
    let words: BTreeSet<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@')))
        .map(|w| w.trim_matches(|c: char| matches!(c, '-' | '.' | '_')).to_ascii_lowercase())
        .filter(|w| !w.is_empty() && !ACCOUNTS.contains(&w.as_str()))
        .collect();
    UNTRANSLATED.iter().copied().filter(|w| words.contains(*w)).collect()
}

/// Fetches a page, following redirects within the site; (final path, status, body).
async fn visit(b: &mut Browser, url: &str) -> (String, StatusCode, String) {
    let mut at = url.to_string();
    for _ in 0..4 {
        let (status, to, body) = b.get(&at).await;
        if status.is_redirection() {
            assert!(!to.starts_with("/login"), "{url} sent the signed-in user to {to}");
            at = to;
            continue;
        }
        return (at, status, body);
    }
    panic!("{url}: too many redirects");
}

/// What is wrong with one page, if anything.
fn problems(url: &str, status: StatusCode, html: &str) -> Vec<String> {
    let mut out = Vec::new();
    if ![StatusCode::OK, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&status) {
        out.push(format!("{url}: status {status}"));
    }
    let portal = html.contains("<body class=\"portal\">");
    if portal {
        // The patient portal's own frame: log-out in the header, the tab bar.
        if !html.contains("id=\"portal-logout\"") || !html.contains("class=\"p-tabs\"") {
            out.push(format!("{url}: not drawn in the portal's frame (header with log-out, tabs)"));
        }
    } else if !html.contains("id=\"logout\"") || !html.contains("class=\"foot\"") {
        out.push(format!("{url}: not drawn in the shell (header with log-out, footer)"));
    }
    let main = html.split_once("<main").map(|(_, m)| m.split("</main>").next().unwrap_or_default()).unwrap_or("");
    if !["<a ", "<button", "<form"].iter().any(|a| main.contains(a)) {
        out.push(format!("{url}: nothing to do on the page"));
    }
    let text = visible_text(html);
    let words = untranslated(&text);
    if let Some(first) = words.first() {
        let lower = text.to_ascii_lowercase();
        let at = lower.find(first).unwrap_or(0);
        let start = (0..=at.saturating_sub(60)).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let around: String = text[start..].chars().take(100).collect();
        out.push(format!(
            "{url}: English in the Chinese page: {words:?} (…{}…)",
            around.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    out
}

#[tokio::test]
async fn every_page_with_every_demo_account_is_in_the_shell_has_actions_and_is_chinese() {
    if std::env::var("LIANYI_TEST_PG_URL").is_ok() {
        // The demo runs on its own SQLite database; the SQLite run covers it.
        return;
    }
    let demo = start_demo();
    let mut browsers = Vec::new();
    for user in ACCOUNTS {
        browsers.push((*user, sign_in(&demo.base, user).await));
    }
    // First every account walks from the start pages, following links to pages of
    // routes it has not seen; then it visits one page of every route another found.
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    let mut seen: Vec<BTreeSet<String>> = vec![BTreeSet::new(); browsers.len()];
    let mut visited: Vec<BTreeSet<String>> = vec![BTreeSet::new(); browsers.len()];
    let mut failures = Vec::new();
    let mut pages = 0;
    for pass in 0..2 {
        let everyone: Vec<String> = found.values().cloned().collect();
        for (i, (user, b)) in browsers.iter_mut().enumerate() {
            let mut queue: VecDeque<String> = if pass == 0 {
                START.iter().map(|s| s.to_string()).collect()
            } else {
                everyone.iter().filter(|u| !seen[i].contains(&route_of(u))).cloned().collect()
            };
            while let Some(url) = queue.pop_front() {
                let route = route_of(&url);
                if !visited[i].insert(url.clone())
                    || (pass == 0 && !seen[i].insert(route.clone()) && !START.contains(&url.as_str()))
                {
                    continue;
                }
                seen[i].insert(route.clone());
                let (at, status, html) = visit(b, &url).await;
                // Machine endpoints a page links to (/healthz JSON, /metrics text) are not pages.
                if !html.trim_start().starts_with("<!DOCTYPE html") {
                    continue;
                }
                pages += 1;
                failures.extend(problems(&format!("{user} {at}"), status, &html).into_iter());
                if status == StatusCode::OK {
                    found.entry(route).or_insert(url.clone());
                    if pass == 0 {
                        queue.extend(links(&html).into_iter().filter(|l| !seen[i].contains(&route_of(l))));
                    }
                }
            }
        }
    }
    eprintln!("{pages} pages of {} routes with {} accounts", found.len(), ACCOUNTS.len());
    assert!(found.len() >= 15, "the walk found too few routes: {:?}", found.keys());
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_checks_can_fail() {
    assert_eq!(untranslated("状态：in-progress，门诊 Ambulatory"), vec!["ambulatory", "in-progress"]);
    assert!(untranslated("李明 doctor.east I10 mmol/L. Final.").contains(&"final"));
    assert!(untranslated("李明 doctor.east I10 mmol/L").is_empty(), "a user name is one word");
    assert_eq!(visible_text("<p title=\"male\">男</p><script>var male;</script>x"), " 男  x");
    assert_eq!(route_of("/patients/pat-0001?q=1&a=2"), "/patients/{}?a&q");
    assert_eq!(links("<a href=\"/logout\">x</a><a href=\"/queue?dept=a&amp;x=1\">"), vec!["/queue?dept=a&x=1"]);
}
