//! The backups page (`/ops/backups`): the schedule and its next run, the newest good
//! backup and its age, and every run — scheduled, by hand or a drill's — with its
//! file, size, off-site copy or the reason it failed. Backups are made by the server
//! on its schedule and by `lianyi backup`; this page only shows them.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use lianyi_ops::monitor::MonitorError;

use super::desk::may_work;
use super::failed;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, local_time, page};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ops/backups", get(backups_page))
}

struct RunView {
    id: i64,
    started: String,
    kind: String,
    actor: String,
    status: String,
    status_name: String,
    took: String,
    size: String,
    contents: String,
    file: String,
    offsite: String,
    error: String,
}

#[derive(Template)]
#[template(path = "ops/backups.html")]
struct BackupsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    schedule: Option<String>,
    next: Option<String>,
    newest: Option<String>,
    runs: Vec<RunView>,
}

/// A file's name without its folder.
fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

async fn backups_page(State(state): State<AppState>, s: Signed) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_work(&info.caller) {
        return forbidden(t);
    }
    let runs = match state.monitor.backup_runs(&info.caller, 100).await {
        Ok(r) => r,
        Err(MonitorError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "backup runs", e),
    };
    let now = state.fhir.now_ms();
    let schedule = state.config.backup_schedule.clone();
    let next = schedule
        .as_deref()
        .and_then(|s| lianyi_ops::cron::Cron::parse(s).ok())
        .and_then(|c| c.next_after(now))
        .map(local_time);
    let newest = runs.iter().find(|r| r.status == "ok").map(|r| local_time(r.finished_at.unwrap_or(r.started_at)));
    let runs = runs
        .into_iter()
        .map(|r| RunView {
            id: r.id,
            started: local_time(r.started_at),
            kind: t.named("bk-kind", &r.kind),
            actor: r.actor,
            status_name: t.named("bk-status", &r.status),
            status: r.status,
            took: r
                .finished_at
                .map(|f| format!("{:.0} s", (f - r.started_at).max(0) as f64 / 1000.0))
                .unwrap_or_default(),
            size: r.bytes.map(|b| format!("{:.1} MB", b as f64 / 1e6)).unwrap_or_default(),
            contents: match (r.tables, r.row_count) {
                (Some(tables), Some(rows)) => {
                    let mut c =
                        t.get("bk-contents").replace("{t}", &tables.to_string()).replace("{r}", &rows.to_string());
                    if let (Some(files), Some(bytes)) = (r.image_files, r.image_bytes) {
                        c.push_str(
                            &t.get("bk-images")
                                .replace("{n}", &files.to_string())
                                .replace("{mb}", &format!("{:.1}", bytes as f64 / 1e6)),
                        );
                    }
                    c
                }
                _ => String::new(),
            },
            file: r.file.as_deref().map(file_name).unwrap_or_default(),
            offsite: r.offsite.unwrap_or_default(),
            error: r.error.unwrap_or_default(),
        })
        .collect();
    let shell = shell(&state, info, t, &s.headers).await;
    page(BackupsPage { t, shell: &shell, schedule, next, newest, runs }.render())
}
