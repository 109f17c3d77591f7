//! The dashboards (决策支持): the group's campuses, one campus's departments, one
//! department's days — each level a row of indicators, a bar chart of the chosen
//! indicator that drills down, its line over the days, a table of every indicator per
//! line and per day (a day drills into that day), and the same as CSV. The figures
//! come from [`lianyi_manage::dashboards`].

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_billing::money::Fen;
use lianyi_clinical::scheduling::{local_date, local_midnight};
use lianyi_manage::dashboards::{DashQuery, Dashboard, DashboardError, Dashboards, Kpis, Line};
use lianyi_security::Caller;
use serde::Deserialize;

use crate::AppState;
use crate::ui::chart::{Bar, Point, bars, line};
use crate::ui::i18n::Tr;
use crate::ui::render::{csv, forbidden, milli_percent, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

use super::rosters::{pick, urlencode};

const DAY_MS: i64 = 86_400_000;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/manage/dashboard", get(dashboard_page)).route("/manage/dashboard.csv", get(dashboard_csv))
}

/// Managers and department heads.
pub(super) fn may_view(c: &Caller) -> bool {
    Dashboards::may_view(c)
}

/// The indicators, in the tables' order: (code, locale key).
const INDICATORS: [(&str, &str); 10] = [
    ("visits", "dash-visits"),
    ("booked", "dash-booked"),
    ("noshow", "dash-noshow"),
    ("wait", "dash-wait"),
    ("revenue", "dash-revenue"),
    ("drugshare", "dash-drugshare"),
    ("critical", "dash-critical"),
    ("studies", "dash-studies"),
    ("tests", "dash-tests"),
    ("prescriptions", "dash-prescriptions"),
];

/// An indicator's value to draw (`None`: nothing to show) and as written.
fn value(k: &Kpis, code: &str) -> (Option<f64>, String) {
    let count = |n: i64| (Some(n as f64), n.to_string());
    let permille = |p: Option<i64>| match p {
        Some(p) => (Some(p as f64 / 10.0), format!("{}.{}%", p / 10, p % 10)),
        None => (None, "—".to_string()),
    };
    let minutes = |m: Option<i64>| match m {
        Some(m) => (Some(m as f64), m.to_string()),
        None => (None, "—".to_string()),
    };
    match code {
        "visits" => count(k.visits),
        "booked" => count(k.booked),
        "noshow" => permille(k.no_show_permille()),
        "wait" => minutes(k.wait_average()),
        "revenue" => (Some(k.revenue_fen as f64 / 100.0), Fen(k.revenue_fen).to_string()),
        "drugshare" => permille(k.drug_share_permille()),
        "critical" => minutes(k.critical_average()),
        "studies" => count(k.studies),
        "tests" => count(k.tests),
        _ => count(k.prescriptions),
    }
}

#[derive(Deserialize, Default, Clone)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    campus: Option<String>,
    department: Option<String>,
    measure: Option<String>,
}

impl Params {
    /// The query, the period defaulting to the 30 days up to today.
    fn query(&self, now_ms: i64) -> DashQuery {
        let some = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let to = some(&self.to).unwrap_or_else(|| local_date(now_ms));
        let from = some(&self.from)
            .unwrap_or_else(|| local_midnight(&to).map(|m| local_date(m - 29 * DAY_MS)).unwrap_or_else(|| to.clone()));
        DashQuery { from, to, campus: some(&self.campus), department: some(&self.department) }
    }

    fn measure(&self) -> &'static str {
        let wanted = self.measure.as_deref().unwrap_or_default();
        INDICATORS.iter().map(|i| i.0).find(|c| *c == wanted).unwrap_or("visits")
    }
}

/// The link to a dashboard of `q` showing `measure` (`csv`: its download).
fn href(q: &DashQuery, measure: &str, csv: bool) -> String {
    let mut s = format!(
        "/manage/dashboard{}?from={}&to={}&measure={measure}",
        if csv { ".csv" } else { "" },
        urlencode(&q.from),
        urlencode(&q.to)
    );
    if let Some(c) = &q.campus {
        s.push_str(&format!("&campus={}", urlencode(c)));
    }
    if let Some(d) = &q.department {
        s.push_str(&format!("&department={}", urlencode(d)));
    }
    s
}

/// What one line is called on the page, and the dashboard it drills into.
async fn labelled(state: &AppState, t: Tr, d: &Dashboard, l: &Line) -> (String, Option<DashQuery>) {
    let q = &d.query;
    match (&q.campus, &q.department) {
        (None, _) => {
            let drill = DashQuery { campus: Some(l.key.clone()), ..q.clone() };
            (campus_name(state, &l.key, t).await, Some(drill))
        }
        (Some(_), None) => {
            let name = if l.key.is_empty() {
                t.get("dash-no-department").to_string()
            } else if l.names.zh.is_empty() && l.names.en.is_empty() {
                l.key.clone()
            } else {
                pick(t, &l.names)
            };
            let drill = (!l.key.is_empty()).then(|| DashQuery { department: Some(l.key.clone()), ..q.clone() });
            (name, drill)
        }
        (Some(_), Some(_)) => (l.key.clone(), Some(day_query(q, &l.key))),
    }
}

/// A day of the dashboard `q`: its campus's departments (or the group's campuses)
/// on that day.
fn day_query(q: &DashQuery, day: &str) -> DashQuery {
    DashQuery { from: day.to_string(), to: day.to_string(), campus: q.campus.clone(), department: None }
}

struct Row {
    label: String,
    href: Option<String>,
    cells: Vec<String>,
}

/// One line of the IT availability: a campus (its least available system) or a
/// system, its availability this month, its target and its outages.
struct ItRow {
    label: String,
    system: String,
    percent: String,
    target: String,
    outages: usize,
    missed: bool,
}

/// The IT availability of the dashboard's campuses (the group: each campus's least
/// available business system or clinical service; a campus: each of its systems) in
/// the month of the period's end, from monitoring; nothing for a department or when
/// the caller may not read it.
async fn it_rows(state: &AppState, t: Tr, caller: &Caller, d: &Dashboard) -> (String, Vec<ItRow>) {
    let q = &d.query;
    let month = q.to.get(..7).unwrap_or_default().to_string();
    if q.department.is_some() || month.len() != 7 {
        return (month, Vec::new());
    }
    let now = state.fhir.now_ms();
    let row = |label: String, a: &lianyi_ops::monitor::Availability| ItRow {
        label,
        system: a.ci.name.clone(),
        percent: format!("{}%", milli_percent(a.milli_percent())),
        target: a.target.clone().map(|x| format!("{x}%")).unwrap_or_default(),
        outages: a.outages,
        missed: a.missed(),
    };
    let mut out = Vec::new();
    match &q.campus {
        Some(c) => {
            for a in state.monitor.availability(caller, Some(c), &month, now).await.unwrap_or_default() {
                out.push(row(a.ci.name.clone(), &a));
            }
        }
        None => {
            for l in &d.lines {
                let list = state.monitor.availability(caller, Some(&l.key), &month, now).await.unwrap_or_default();
                if let Some(worst) = list.iter().min_by_key(|a| a.milli_percent()) {
                    out.push(row(campus_name(state, &l.key, t).await, worst));
                }
            }
        }
    }
    (month, out)
}

#[derive(Template)]
#[template(path = "manage/dashboard.html")]
struct DashboardPage<'a> {
    t: Tr,
    shell: &'a Shell,
    from: String,
    to: String,
    campus: String,
    department: String,
    measure: &'static str,
    /// (code, label, link to the same dashboard showing it).
    measures: Vec<(&'static str, String, String)>,
    /// (label, link): group → campus → department.
    crumbs: Vec<(String, String)>,
    level: String,
    tiles: Vec<(String, String)>,
    bars_svg: String,
    line_svg: String,
    headers: Vec<String>,
    rows: Vec<Row>,
    days: Vec<Row>,
    csv_href: String,
    /// A department's performance sheet for the month of the period's end (each
    /// person's workload), when the caller reads it.
    sheet_href: Option<String>,
    /// The IT availability's month and lines.
    it_month: String,
    it: Vec<ItRow>,
    /// Presets: (label, link).
    periods: Vec<(String, String)>,
    errors: Vec<String>,
}

fn worded(t: Tr, e: &DashboardError) -> Vec<String> {
    match e {
        DashboardError::Invalid(fs) => fs
            .iter()
            .map(|f| {
                format!("{}: {}", t.get(&format!("dash-field-{}", f.field)), t.get(&format!("dash-rule-{}", f.code)))
            })
            .collect(),
        other => {
            tracing::error!(error = %other, "dashboard");
            vec![t.get("dash-failed").to_string()]
        }
    }
}

async fn dashboard_page(State(state): State<AppState>, s: Signed, Query(p): Query<Params>) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    if !may_view(caller) {
        return forbidden(t);
    }
    let q = p.query(state.fhir.now_ms());
    let measure = p.measure();
    let shell = shell(&state, &s.info, t, &s.headers).await;
    let mut errors = Vec::new();
    let d = match state.dashboards.view(caller, &q).await {
        Ok(d) => d,
        Err(DashboardError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            errors = worded(t, &e);
            Dashboard { query: q.clone(), ..Dashboard::default() }
        }
    };
    let mut crumbs = vec![(
        t.get("dash-group").to_string(),
        href(&DashQuery { campus: None, department: None, ..q.clone() }, measure, false),
    )];
    let mut level = t.get("dash-group").to_string();
    if let Some(c) = &q.campus {
        level = campus_name(&state, c, t).await;
        crumbs.push((level.clone(), href(&DashQuery { department: None, ..q.clone() }, measure, false)));
    }
    if let Some(dept) = &q.department {
        level = match state.dashboards.department(caller, dept).await {
            Some(names) => pick(t, &names),
            None => dept.clone(),
        };
        crumbs.push((level.clone(), href(&q, measure, false)));
    }
    let measure_label = INDICATORS.iter().find(|i| i.0 == measure).map(|i| t.get(i.1)).unwrap_or_default();
    let mut rows = Vec::new();
    let mut chart = Vec::new();
    for l in &d.lines {
        let (label, drill) = labelled(&state, t, &d, l).await;
        let link = drill.map(|dq| href(&dq, measure, false));
        let (v, shown) = value(&l.kpis, measure);
        chart.push(Bar { label: label.clone(), value: v.unwrap_or(0.0), shown, href: link.clone() });
        rows.push(Row { label, href: link, cells: INDICATORS.iter().map(|i| value(&l.kpis, i.0).1).collect() });
    }
    let days: Vec<Row> = d
        .days
        .iter()
        .rev()
        .map(|l| Row {
            label: l.key.clone(),
            href: Some(href(&day_query(&q, &l.key), measure, false)),
            cells: INDICATORS.iter().map(|i| value(&l.kpis, i.0).1).collect(),
        })
        .collect();
    let points: Vec<Point> = d
        .days
        .iter()
        .filter_map(|l| {
            let at = local_midnight(&l.key)?;
            let v = value(&l.kpis, measure).0?;
            Some(Point { at, avg: v, lo: v, hi: v })
        })
        .collect();
    let (start, end) = (local_midnight(&q.from).unwrap_or_default(), local_midnight(&q.to).unwrap_or_default());
    let line_svg = if points.len() > 1 {
        line(measure_label, &points, start, end.max(start + DAY_MS), DAY_MS)
    } else {
        String::new()
    };
    let bars_svg = if chart.is_empty() { String::new() } else { bars(measure_label, &chart) };
    let tiles = INDICATORS.iter().map(|i| (t.get(i.1).to_string(), value(&d.total, i.0).1)).collect();
    let measures = INDICATORS.iter().map(|i| (i.0, t.get(i.1).to_string(), href(&q, i.0, false))).collect();
    let today = local_date(state.fhir.now_ms());
    let period = |days: i64, key: &str| {
        let from = local_midnight(&today).map(|m| local_date(m - (days - 1) * DAY_MS)).unwrap_or_default();
        (t.get(key).to_string(), href(&DashQuery { from, to: today.clone(), ..q.clone() }, measure, false))
    };
    let periods =
        vec![period(1, "dash-today"), period(7, "dash-7-days"), period(30, "dash-30-days"), period(365, "dash-year")];
    let (it_month, it) = it_rows(&state, t, caller, &d).await;
    let sheet_href = match (&q.campus, &q.department) {
        (Some(c), Some(dept)) if lianyi_manage::sheets::Sheets::may_read(caller) => Some(format!(
            "/manage/performance?campus={}&department={}&month={}",
            urlencode(c),
            urlencode(dept),
            urlencode(q.to.get(..7).unwrap_or_default())
        )),
        _ => None,
    };
    page(
        DashboardPage {
            t,
            shell: &shell,
            from: q.from.clone(),
            to: q.to.clone(),
            campus: q.campus.clone().unwrap_or_default(),
            department: q.department.clone().unwrap_or_default(),
            measure,
            measures,
            crumbs,
            level,
            tiles,
            bars_svg,
            line_svg,
            headers: INDICATORS.iter().map(|i| t.get(i.1).to_string()).collect(),
            rows,
            days,
            csv_href: href(&q, measure, true),
            sheet_href,
            it_month,
            it,
            periods,
            errors,
        }
        .render(),
    )
}

/// The dashboard's lines and days as CSV.
async fn dashboard_csv(State(state): State<AppState>, s: Signed, Query(p): Query<Params>) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    if !may_view(caller) {
        return forbidden(t);
    }
    let q = p.query(state.fhir.now_ms());
    let d = match state.dashboards.view(caller, &q).await {
        Ok(d) => d,
        Err(DashboardError::Forbidden(_)) => return forbidden(t),
        // The page says what is wrong with the period.
        Err(_) => return see_other(&href(&q, p.measure(), false)),
    };
    let mut out = Vec::new();
    for l in &d.lines {
        let (label, _) = labelled(&state, t, &d, l).await;
        let mut row = vec![l.key.clone(), label];
        row.extend(INDICATORS.iter().map(|i| value(&l.kpis, i.0).1));
        out.push(row);
    }
    if q.department.is_none() {
        for l in &d.days {
            let mut row = vec![l.key.clone(), t.get("dash-day").to_string()];
            row.extend(INDICATORS.iter().map(|i| value(&l.kpis, i.0).1));
            out.push(row);
        }
    }
    let mut header = vec!["dash-key", "dash-name"];
    header.extend(INDICATORS.iter().map(|i| i.1));
    let name = format!("dashboard-{}-{}.csv", q.from, q.to);
    csv(t, &name, &header, out)
}
