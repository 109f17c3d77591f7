//! The critical-value loop's pages: acknowledging an alert from the shell's bar, and
//! the report of how fast critical values were handled. The rules live in
//! [`lianyi_clinical::critical`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_security::Perm;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, page, referer_path, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, heads_at, shell, staff_may};
use lianyi_clinical::registry::RegistryError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/alerts/{task}/ack", post(acknowledge)).route("/reports/critical-values", get(critical_report))
}

#[derive(Deserialize)]
struct AckForm {
    csrf: String,
    action: String,
}

async fn acknowledge(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Path(task): Path<String>,
    Form(f): Form<AckForm>,
) -> Response {
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    let heads = heads_at(&state, &info).await;
    match state.critical.acknowledge(&info.caller, &heads, &task, &f.action, &info.user.display_name).await {
        Ok(()) => {
            let back = referer_path(&headers);
            let sep = if back.contains('?') { '&' } else { '?' };
            see_other(&format!("{back}{sep}cv=acknowledged"))
        }
        Err(RegistryError::Forbidden(_)) => forbidden(t),
        Err(e) => {
            tracing::warn!(error = %e, "critical-value acknowledgement failed");
            see_other(&referer_path(&headers))
        }
    }
}

struct ReportRow {
    text: String,
    owner: String,
    reported: String,
    by: String,
    action: String,
    minutes: Option<i64>,
    escalated: bool,
}

#[derive(Template)]
#[template(path = "clinic/critical_report.html")]
struct CriticalReport<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<ReportRow>,
    median: String,
    within: String,
    limit_minutes: i64,
    days: i64,
}

#[derive(Deserialize, Default)]
struct ReportQuery {
    days: Option<i64>,
}

/// The periods the report offers, in days.
const PERIODS: [i64; 4] = [7, 30, 90, 365];

async fn critical_report(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Query(q): Query<ReportQuery>,
) -> Response {
    if !staff_may(&info.caller, "Task", Perm::Search) {
        return forbidden(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    let days = q.days.filter(|d| PERIODS.contains(d)).unwrap_or(30);
    let handled = state.critical.report(&info.caller, days).await.unwrap_or_default();
    let limit_minutes = state.critical.escalate_after_ms / 60_000;
    let mut minutes: Vec<i64> = handled.iter().filter_map(|h| h.minutes).collect();
    minutes.sort_unstable();
    let median = minutes.get(minutes.len() / 2).map(|m| m.to_string()).unwrap_or_else(|| "-".into());
    let within = if handled.is_empty() {
        "-".to_string()
    } else {
        let n = handled.iter().filter(|h| h.minutes.is_some_and(|m| m <= limit_minutes)).count();
        format!("{n} / {}", handled.len())
    };
    let rows = handled
        .into_iter()
        .map(|h| ReportRow {
            reported: format!(
                "{} {}",
                h.authored.get(..10).unwrap_or_default(),
                h.authored.get(11..16).unwrap_or_default()
            ),
            text: h.text,
            owner: h.owner,
            by: h.acknowledged_by,
            action: h.action,
            minutes: h.minutes,
            escalated: h.escalated,
        })
        .collect();
    page(CriticalReport { t, shell: &shell, rows, median, within, limit_minutes, days }.render())
}
