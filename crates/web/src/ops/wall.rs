//! The monitoring status wall (`/ops/monitor`): every business system and clinical
//! service of the group or one campus, green, amber or red from the open alerts on
//! what it needs, with the cause and since when; and the alerts open now — root
//! causes with their incidents, suppressed ones naming their root, held ones naming
//! the change. Computed in [`lianyi_ops::monitor::Monitor::wall`]. And each
//! system's availability in a month against its target
//! (`/ops/monitor/availability`, [`lianyi_ops::monitor::Monitor::availability`]).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_ops::monitor::MonitorError;
use serde::Deserialize;

use super::desk::may_work;
use super::{campus_choices, failed};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, local_time, milli_percent, page};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ops/monitor", get(wall_page)).route("/ops/monitor/availability", get(availability_page))
}

#[derive(Deserialize, Default)]
struct WallQuery {
    campus: Option<String>,
}

struct TileView {
    code: String,
    name: String,
    href: String,
    topology: String,
    health: &'static str,
    state: String,
    since: Option<String>,
    causes: String,
}

struct AlertView {
    ci_href: String,
    ci: String,
    metric: String,
    severity: String,
    value: String,
    since: String,
    /// `root`, `suppressed` or `maintenance`, and its text.
    kind: &'static str,
    state: String,
    incident: Option<i64>,
}

#[derive(Template)]
#[template(path = "ops/wall.html")]
struct WallPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// (id, name, selected); the group first as "".
    campuses: Vec<(String, String, bool)>,
    tiles: Vec<TileView>,
    red: usize,
    amber: usize,
    green: usize,
    alerts: Vec<AlertView>,
}

async fn wall_page(State(state): State<AppState>, s: Signed, Query(q): Query<WallQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_work(&info.caller) {
        return forbidden(t);
    }
    let campus = q.campus.unwrap_or_default();
    let wall = match state.monitor.wall(&info.caller, Some(campus.as_str()).filter(|c| !c.is_empty())).await {
        Ok(w) => w,
        Err(MonitorError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "status wall", e),
    };
    let mut campuses = campus_choices(&state, t, &campus).await;
    if let Some(group) = campuses.first_mut() {
        group.1 = t.get("mon-group").to_string();
    }
    let count = |h: &str| wall.tiles.iter().filter(|w| w.health.as_str() == h).count();
    let (red, amber) = (count("red"), count("amber"));
    let green = wall.tiles.len() - red - amber;
    let codes: std::collections::HashMap<i64, String> =
        wall.alerts.iter().map(|(a, c)| (a.ci, c.code.clone())).collect();
    let tiles = wall
        .tiles
        .iter()
        .map(|w| TileView {
            code: w.ci.code.clone(),
            name: w.ci.name.clone(),
            href: format!("/ops/cis/{}", w.ci.id),
            topology: format!("/ops/cis/{}/impact?way=needs", w.ci.id),
            health: w.health.as_str(),
            state: t.named("mon-health", w.health.as_str()),
            since: w.since.map(local_time),
            causes: w.causes.join(", "),
        })
        .collect();
    let alerts = wall
        .alerts
        .iter()
        .map(|(a, c)| {
            let (kind, state) = match (a.maintenance, a.suppressed_by) {
                (Some(change), _) => ("maintenance", t.fmt("mon-held-by", &format!("#{change}"))),
                (None, Some(root)) => {
                    ("suppressed", t.fmt("mon-suppressed-by", codes.get(&root).map_or("?", String::as_str)))
                }
                (None, None) => ("root", t.get("mon-root-cause").to_string()),
            };
            AlertView {
                ci_href: format!("/ops/cis/{}", c.id),
                ci: format!("{} ({})", c.name, c.code),
                metric: a.metric.clone(),
                severity: t.named("mon-severity", &a.severity),
                value: format!("{}", a.value),
                since: local_time(a.opened_at),
                kind,
                state: if a.flapping { format!("{state} · {}", t.get("mon-flapping")) } else { state },
                incident: a.ticket,
            }
        })
        .collect();
    let shell = shell(&state, info, t, &s.headers).await;
    page(WallPage { t, shell: &shell, campuses, tiles, red, amber, green, alerts }.render())
}

// ---- Availability ------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct AvailabilityQuery {
    campus: Option<String>,
    month: Option<String>,
}

struct AvailabilityRow {
    href: String,
    name: String,
    code: String,
    target: String,
    percent: String,
    down: String,
    outages: usize,
    /// `met`, `missed` or `none` (no target), and its text.
    verdict: &'static str,
    verdict_name: String,
}

#[derive(Template)]
#[template(path = "ops/availability.html")]
struct AvailabilityPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campus: String,
    campuses: Vec<(String, String, bool)>,
    month: String,
    previous: String,
    next: Option<String>,
    rows: Vec<AvailabilityRow>,
    /// How many have a target, and how many of those missed it.
    targets: usize,
    missed: usize,
    errors: Vec<(String, String)>,
}

fn month_after(month: &str, step: i64) -> Option<String> {
    let (from, to) = lianyi_ops::monitor::month_span(month)?;
    Some(lianyi_ops::monitor::month_of(if step < 0 { from - 1 } else { to }))
}

async fn availability_page(State(state): State<AppState>, s: Signed, Query(q): Query<AvailabilityQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_work(&info.caller) {
        return forbidden(t);
    }
    let now = state.fhir.now_ms();
    let this_month = lianyi_ops::monitor::month_of(now);
    let mut month = q.month.unwrap_or_else(|| this_month.clone());
    let campus = q.campus.unwrap_or_default();
    let mut errors = Vec::new();
    let found = match state
        .monitor
        .availability(&info.caller, Some(campus.as_str()).filter(|c| !c.is_empty()), &month, now)
        .await
    {
        Ok(a) => a,
        Err(MonitorError::Forbidden(_)) => return forbidden(t),
        Err(MonitorError::Invalid(e)) => {
            errors = e.iter().map(|e| (e.field.clone(), t.get("mon-av-month-rule").to_string())).collect();
            month = this_month.clone();
            Vec::new()
        }
        Err(e) => return failed(t, "availability", e),
    };
    let mut campuses = campus_choices(&state, t, &campus).await;
    if let Some(group) = campuses.first_mut() {
        group.1 = t.get("mon-group").to_string();
    }
    let rows: Vec<AvailabilityRow> = found
        .iter()
        .map(|a| {
            let verdict = match a.target_milli() {
                None => "none",
                Some(_) if a.missed() => "missed",
                Some(_) => "met",
            };
            let minutes = a.down_ms / 60_000;
            AvailabilityRow {
                href: format!("/ops/cis/{}", a.ci.id),
                name: a.ci.name.clone(),
                code: a.ci.code.clone(),
                target: a.target.as_deref().map(|p| format!("{p} %")).unwrap_or_default(),
                percent: format!("{} %", milli_percent(a.milli_percent())),
                down: t
                    .get("mon-av-duration")
                    .replace("{h}", &(minutes / 60).to_string())
                    .replace("{m}", &(minutes % 60).to_string()),
                outages: a.outages,
                verdict,
                verdict_name: t.named("mon-av", verdict),
            }
        })
        .collect();
    let missed = rows.iter().filter(|r| r.verdict == "missed").count();
    let targets = rows.iter().filter(|r| r.verdict != "none").count();
    let previous = month_after(&month, -1).unwrap_or_default();
    let next = month_after(&month, 1).filter(|n| *n <= this_month);
    let shell = shell(&state, info, t, &s.headers).await;
    page(
        AvailabilityPage { t, shell: &shell, campus, campuses, month, previous, next, rows, targets, missed, errors }
            .render(),
    )
}
