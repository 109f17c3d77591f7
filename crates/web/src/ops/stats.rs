//! The service desk's statistics page: the faults of a period by category, CI class,
//! campus, priority and day as SVG charts, mean times to acknowledge and resolve, SLA
//! compliance, recurring items, and (for the IT manager and group leads) each
//! engineer's work; with CSV exports of the tickets and of the engineers' figures. The
//! figures are computed in [`lianyi_ops::stats`].

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lianyi_ops::changes::parse_local;
use lianyi_ops::desk::DeskError;
use lianyi_ops::stats::{Engineer, Recurring, Report, engineers_csv, tickets_csv};
use serde::Deserialize;

use super::desk::may_work;
use super::failed;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, local_time, page};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ops/stats", get(stats_page)).route("/ops/stats.csv", get(stats_csv))
}

#[derive(Deserialize, Default)]
pub(super) struct PeriodQuery {
    /// `YYYY-MM-DD`, Beijing time; the period runs to the end of `to`.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The recurrence window in days.
    pub days: Option<i64>,
    /// For the CSV: `tickets` (default) or `engineers`.
    pub what: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

/// The period asked for: (from, to, from text, to text), the last 30 days by default.
pub(super) fn period(now: i64, q: &PeriodQuery) -> (i64, i64, String, String) {
    let day = |v: &Option<String>| v.as_deref().and_then(|d| parse_local(&format!("{} 00:00", d.trim())));
    let today = parse_local(&format!("{} 00:00", &local_time(now)[..10])).unwrap_or(now);
    let to = day(&q.to).map_or(today + DAY_MS, |t| t + DAY_MS);
    let from = day(&q.from).filter(|f| *f < to).unwrap_or(to - 30 * DAY_MS);
    (from, to, local_time(from)[..10].to_string(), local_time(to - DAY_MS)[..10].to_string())
}

/// A horizontal bar chart: (label, count, bar width out of 300).
struct Chart {
    id: &'static str,
    title: String,
    bars: Vec<(String, usize, usize)>,
}

fn chart(id: &'static str, title: String, rows: Vec<(String, usize)>) -> Chart {
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    Chart { id, title, bars: rows.into_iter().map(|(l, n)| (l, n, n * 300 / max)).collect() }
}

#[derive(Template)]
#[template(path = "ops/stats.html")]
struct StatsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    from: String,
    to: String,
    r: Report,
    charts: Vec<Chart>,
    /// (x, height, date, count) of each day's column in a 600×120 chart, and its width.
    days: Vec<(usize, usize, String, usize)>,
    day_width: usize,
    /// Percent met, if any clock was decided.
    response_pct: Option<usize>,
    resolution_pct: Option<usize>,
    recurring: Vec<Recurring>,
    engineers: Option<Vec<Engineer>>,
}

async fn stats_page(State(state): State<AppState>, s: Signed, Query(q): Query<PeriodQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_work(&info.caller) {
        return forbidden(t);
    }
    let (from, to, from_text, to_text) = period(state.fhir.now_ms(), &q);
    let mut r = match state.stats.report(&info.caller, from, to, q.days.unwrap_or(30)).await {
        Ok(r) => r,
        Err(DeskError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "statistics", e),
    };
    let mut campuses = Vec::new();
    for (c, n) in &r.by_campus {
        let name = if c.is_empty() { t.get("cmdb-group-wide").to_string() } else { campus_name(&state, c, t).await };
        campuses.push((name, *n));
    }
    let named = |prefix: &str, rows: &[(String, usize)], empty: &str| {
        rows.iter()
            .map(|(k, n)| (if k.is_empty() { t.get(empty).to_string() } else { t.named(prefix, k) }, *n))
            .collect::<Vec<_>>()
    };
    let charts = vec![
        chart(
            "stats-category",
            t.get("stats-by-category").into(),
            named("desk-category", &r.by_category, "stats-none"),
        ),
        chart("stats-class", t.get("stats-by-class").into(), named("cmdb-class", &r.by_class, "stats-no-ci")),
        chart("stats-campus", t.get("stats-by-campus").into(), campuses),
        chart(
            "stats-priority",
            t.get("stats-by-priority").into(),
            r.by_priority.iter().map(|(p, n)| (format!("P{p}"), *n)).collect(),
        ),
    ];
    let max = r.by_day.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let day_width = (600 / r.by_day.len().max(1)).max(1);
    let days = r
        .by_day
        .iter()
        .enumerate()
        .map(|(i, (d, n))| {
            let date = lianyi_fhir::datetime::format_instant(d * DAY_MS)[..10].to_string();
            (i * day_width, n * 110 / max, date, *n)
        })
        .collect();
    let pct = |(met, of): (usize, usize)| (of > 0).then(|| met * 100 / of);
    let shell = shell(&state, info, t, &s.headers).await;
    page(
        StatsPage {
            t,
            shell: &shell,
            from: from_text,
            to: to_text,
            charts,
            days,
            day_width,
            response_pct: pct(r.response_sla),
            resolution_pct: pct(r.resolution_sla),
            recurring: std::mem::take(&mut r.recurring),
            engineers: r.engineers.take(),
            r,
        }
        .render(),
    )
}

async fn stats_csv(State(state): State<AppState>, s: Signed, Query(q): Query<PeriodQuery>) -> Response {
    if !may_work(&s.info.caller) {
        return forbidden(s.t);
    }
    let (from, to, from_text, to_text) = period(state.fhir.now_ms(), &q);
    let r = match state.stats.report(&s.info.caller, from, to, q.days.unwrap_or(30)).await {
        Ok(r) => r,
        Err(DeskError::Forbidden(_)) => return forbidden(s.t),
        Err(e) => return failed(s.t, "statistics CSV", e),
    };
    let (what, body) = match q.what.as_deref() {
        Some("engineers") if r.engineers.is_some() => ("engineers", engineers_csv(&r)),
        Some("engineers") => return forbidden(s.t),
        _ => ("tickets", tickets_csv(&r)),
    };
    let name = format!("attachment; filename=\"{what}-{from_text}-{to_text}.csv\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        format!("\u{feff}{body}"),
    )
        .into_response()
}
