//! The revenue report (收入报表): what was taken, net of refunds, between two days, by
//! day (a bar chart), department, category, campus and payment method (bars beside
//! their tables), each grouping also as CSV. The figures come from
//! [`lianyi_billing::reports`].

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use lianyi_billing::money::Fen;
use lianyi_billing::reports::{Report, ReportError, Reports};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{csv, forbidden, page, server_error};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

/// The chart's drawing area (SVG user units).
const CHART_W: i64 = 720;
const CHART_H: i64 = 160;

#[derive(Deserialize, Default)]
pub(super) struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
}

/// One bar of the day chart: (x, y, width, height, label, amount).
struct DayBar {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    day: String,
    amount: String,
}

/// One row of a grouping: its name, amount, share of the largest (percent, for the
/// bar) and how many charges.
struct Row {
    key: String,
    name: String,
    amount: String,
    share: i64,
    lines: i64,
}

struct Grouping {
    id: &'static str,
    title: &'static str,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "billing/reports.html")]
struct ReportPage<'a> {
    t: Tr,
    shell: &'a Shell,
    from: String,
    to: String,
    total: String,
    bars: Vec<DayBar>,
    /// The largest day's amount, for the axis.
    peak: String,
    chart_w: i64,
    chart_h: i64,
    groupings: Vec<Grouping>,
    errors: Vec<(String, String)>,
}

/// The period asked for, or the last 30 days to today.
fn period(state: &AppState, q: &ReportQuery) -> (String, String) {
    let now = state.fhir.now_ms();
    let to = q.to.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| lianyi_clinical::scheduling::local_date(now));
    let from = q
        .from
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| lianyi_clinical::scheduling::local_date(now - 29 * 86_400_000));
    (from, to)
}

fn rows(revenue: &[lianyi_store::payments::Revenue], name: impl Fn(&str) -> String) -> Vec<Row> {
    let max = revenue.iter().map(|r| r.amount_fen).max().unwrap_or(0).max(1);
    revenue
        .iter()
        .map(|r| Row {
            key: r.key.clone(),
            name: name(&r.key),
            amount: Fen(r.amount_fen).to_string(),
            share: (r.amount_fen.max(0) * 100 / max).clamp(0, 100),
            lines: r.lines,
        })
        .collect()
}

async fn groupings(state: &AppState, t: Tr, r: &Report) -> Vec<Grouping> {
    let by_department: Vec<_> = r.by_department.iter().map(|(x, _)| x.clone()).collect();
    let departments = rows(&by_department, |k| match r.by_department.iter().find(|(x, _)| x.key == k) {
        Some((_, names)) if !k.is_empty() => t.pick(names.zh.clone(), names.en.clone()),
        _ => t.get("revenue-no-department").to_string(),
    });
    let mut campus_names = Vec::new();
    for c in &r.by_campus {
        campus_names.push((c.key.clone(), campus_name(state, &c.key, t).await));
    }
    vec![
        Grouping { id: "revenue-by-department", title: "revenue-by-department", rows: departments },
        Grouping {
            id: "revenue-by-category",
            title: "revenue-by-category",
            rows: rows(&r.by_category, |k| t.named("price-cat", k)),
        },
        Grouping {
            id: "revenue-by-campus",
            title: "revenue-by-campus",
            rows: rows(&r.by_campus, |k| {
                campus_names.iter().find(|(c, _)| c == k).map_or(k.to_string(), |(_, n)| n.clone())
            }),
        },
        Grouping {
            id: "revenue-by-method",
            title: "revenue-by-method",
            rows: rows(&r.by_method, |k| t.named("pay-method", k)),
        },
    ]
}

fn day_bars(r: &Report) -> (Vec<DayBar>, i64) {
    let peak = r.by_day.iter().map(|d| d.amount_fen).max().unwrap_or(0).max(1);
    let n = r.by_day.len().max(1) as i64;
    let w = (CHART_W / n).max(1);
    let bars = r
        .by_day
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let h = (d.amount_fen.max(0) * CHART_H / peak).max(1);
            DayBar {
                x: i as i64 * w,
                y: CHART_H - h,
                w: (w - 1).max(1),
                h,
                day: d.key.clone(),
                amount: Fen(d.amount_fen).to_string(),
            }
        })
        .collect();
    (bars, peak)
}

pub(super) async fn report_page(State(state): State<AppState>, s: Signed, Query(q): Query<ReportQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !Reports::may_view(&info.caller) {
        return forbidden(t);
    }
    let (from, to) = period(&state, &q);
    let shell = shell(&state, info, t, &s.headers).await;
    let reports = Reports::new(state.fhir.clone());
    let (report, errors) = match reports.revenue(&info.caller, &from, &to).await {
        Ok(r) => (r, Vec::new()),
        Err(ReportError::Invalid(errors)) => {
            let rows = errors
                .iter()
                .map(|e| {
                    let text = t.try_get(&format!("revenue-rule-{}", e.rule)).map_or(e.detail.clone(), str::to_string);
                    (e.field.to_string(), text)
                })
                .collect();
            (Report::default(), rows)
        }
        Err(ReportError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "revenue report");
            return server_error(Some(t));
        }
    };
    let (bars, peak) = day_bars(&report);
    let groupings = groupings(&state, t, &report).await;
    page(
        ReportPage {
            t,
            shell: &shell,
            from,
            to,
            total: report.total.to_string(),
            bars,
            peak: Fen(peak).to_string(),
            chart_w: CHART_W,
            chart_h: CHART_H,
            groupings,
            errors,
        }
        .render(),
    )
}

/// One grouping of the report as CSV (`by` = day, department, category, campus or method).
pub(super) async fn report_csv(State(state): State<AppState>, s: Signed, Query(q): Query<ReportQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !Reports::may_view(&info.caller) {
        return forbidden(t);
    }
    let (from, to) = period(&state, &q);
    let report = match Reports::new(state.fhir.clone()).revenue(&info.caller, &from, &to).await {
        Ok(r) => r,
        Err(ReportError::Forbidden(_)) => return forbidden(t),
        Err(ReportError::Invalid(_)) => return crate::ui::render::not_found(t),
        Err(e) => {
            tracing::error!(error = %e, "revenue report");
            return server_error(Some(t));
        }
    };
    let by = q.by.unwrap_or_else(|| "day".into());
    let data: Vec<Row> = if by == "day" {
        rows(&report.by_day, str::to_string)
    } else {
        let groupings = groupings(&state, t, &report).await;
        match groupings.into_iter().find(|g| g.id == format!("revenue-by-{by}")) {
            Some(g) => g.rows,
            None => return crate::ui::render::not_found(t),
        }
    };
    let name_key = format!("revenue-col-{by}");
    let header = [name_key.as_str(), "revenue-col-code", "revenue-col-amount", "revenue-col-lines"];
    let filename = format!("revenue-{by}-{from}-{to}.csv");
    csv(t, &filename, &header, data.into_iter().map(|r| vec![r.name, r.key, r.amount, r.lines.to_string()]))
}
