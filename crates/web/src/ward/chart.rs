//! The temperature chart (体温单, `/ward/stays/{id}/chart?page=…`): a week a page from
//! the day of admission, temperature (blue crosses) and pulse (red dots) on one grid,
//! respiration written under each column, drawn as SVG on the server (printable, no
//! script); and the nurse's form of a set of readings (`POST
//! /ward/stays/{id}/vitals`).

use std::fmt::Write as _;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_inpatient::stays::{Inpatient, InpatientError};
use lianyi_inpatient::vitals::{
    COLUMNS_PER_DAY, DAYS_PER_PAGE, PULSE_RANGE, Reading, Scale, TEMP_RANGE, VitalsForm, place,
};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::worded;
use crate::ui::render::urlencode;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ward/stays/{id}/chart", get(chart_page)).route("/ward/stays/{id}/vitals", post(record))
}

const SCALE: Scale = Scale { left: 64.0, top: 44.0, column: 14.0, row: 7.0 };
const DAY_MS: i64 = 86_400_000;

/// A coordinate as the SVG writes it: to a tenth, no float noise.
fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 { format!("{}", r as i64) } else { format!("{r:.1}") }
}

/// The chart of page `page` (0 first) as SVG.
fn svg(t: Tr, admitted: i64, readings: &[Reading], page: i64) -> String {
    let s = SCALE;
    let (w, h) = (s.left + s.width() + 8.0, s.top + s.height() + 40.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart temperature-chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        t.get("ward-chart-title")
    );
    // Rows: every 0.2 °C, a darker line every degree; 37 °C in red.
    let rows = ((TEMP_RANGE.0 - TEMP_RANGE.1) * 5.0) as i64;
    for r in 0..=rows {
        let y = s.top + r as f64 * s.row;
        let class = if r % 5 == 0 { "grid major" } else { "grid" };
        let _ = write!(out, r#"<line class="{class}" x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#, s.left, s.left + s.width());
        if r % 5 == 0 {
            let c = TEMP_RANGE.0 - (r / 5) as f64;
            let p = PULSE_RANGE.0 - (r / 5) as f64 * 20.0;
            let _ = write!(out, r#"<text class="axis temp" x="{}" y="{}">{c}</text>"#, s.left - 34.0, y + 4.0);
            let _ = write!(out, r#"<text class="axis pulse" x="{}" y="{}">{p}</text>"#, s.left - 4.0, y + 4.0);
        }
    }
    let y37 = s.temperature_y(37.0);
    let _ = write!(out, r#"<line class="normal" x1="{}" y1="{y37}" x2="{}" y2="{y37}"/>"#, s.left, s.left + s.width());
    // Columns: four hours each, a darker line every day; the day's date and hours.
    let first = lianyi_inpatient::schedule::local_midnight(admitted) + page * DAYS_PER_PAGE * DAY_MS;
    for c in 0..=(DAYS_PER_PAGE * COLUMNS_PER_DAY) {
        let x = s.left + c as f64 * s.column;
        let class = if c % COLUMNS_PER_DAY == 0 { "grid major" } else { "grid" };
        let _ = write!(
            out,
            r#"<line class="{class}" x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
            s.top - 14.0,
            s.top + s.height()
        );
        if c < DAYS_PER_PAGE * COLUMNS_PER_DAY {
            let hour = 2 + (c % COLUMNS_PER_DAY) * 4;
            let _ = write!(out, r#"<text class="hour" x="{}" y="{}">{hour}</text>"#, s.column_x(c) - 4.0, s.top - 3.0);
        }
        if c % COLUMNS_PER_DAY == 0 && c < DAYS_PER_PAGE * COLUMNS_PER_DAY {
            let day = first + (c / COLUMNS_PER_DAY) * DAY_MS;
            let date = lianyi_clinical::scheduling::local_date(day);
            let _ = write!(out, r#"<text class="date" x="{}" y="{}">{}</text>"#, x + 2.0, s.top - 18.0, &date[5..]);
        }
    }
    let _ = write!(out, r#"<text class="axis-title" x="2" y="{}">°C</text>"#, s.top - 18.0);
    let _ = write!(out, r#"<text class="axis-title" x="{}" y="{}">/min</text>"#, s.left - 30.0, s.top - 18.0);
    // The readings of this page: temperature and pulse lines, respiration below.
    let mut temps = Vec::new();
    let mut pulses = Vec::new();
    let resp_y = s.top + s.height() + 16.0;
    let _ = write!(out, r#"<text class="axis-title" x="2" y="{resp_y}">{}</text>"#, t.get("ward-respiration-short"));
    for r in readings {
        let Some((p, c)) = place(admitted, r.at) else { continue };
        if p != page {
            continue;
        }
        let x = s.column_x(c);
        if let Some(v) = r.temperature {
            temps.push((x, s.temperature_y(v)));
        }
        if let Some(v) = r.pulse {
            pulses.push((x, s.pulse_y(v)));
        }
        if let Some(v) = r.respiration {
            let _ = write!(out, r#"<text class="resp" x="{}" y="{resp_y}">{v}</text>"#, x - 5.0);
        }
    }
    for (points, class) in [(&temps, "temp"), (&pulses, "pulse")] {
        if points.len() > 1 {
            let path: Vec<String> = points.iter().map(|(x, y)| format!("{},{}", n(*x), n(*y))).collect();
            let _ = write!(out, r#"<polyline class="line {class}" points="{}"/>"#, path.join(" "));
        }
    }
    for (x, y) in &temps {
        let _ = write!(
            out,
            r#"<path class="mark temp" d="M{} {} L{} {} M{} {} L{} {}"/>"#,
            n(x - 3.0),
            n(y - 3.0),
            n(x + 3.0),
            n(y + 3.0),
            n(x - 3.0),
            n(y + 3.0),
            n(x + 3.0),
            n(y - 3.0)
        );
    }
    for (x, y) in &pulses {
        let _ = write!(out, r#"<circle class="mark pulse" cx="{}" cy="{}" r="2.6"/>"#, n(*x), n(*y));
    }
    out.push_str("</svg>");
    out
}

#[derive(Deserialize, Default)]
struct Shown {
    page: Option<i64>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "ward/chart.html")]
struct ChartPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stay: String,
    name: String,
    number: String,
    chart: String,
    page: i64,
    pages: i64,
    rows: Vec<(String, String, String, String, String, String)>,
    may_record: bool,
    form: VitalsForm,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render(state: &AppState, s: &Signed, stay: &str, q: Shown, form: VitalsForm, errors: Vec<String>) -> Response {
    let (t, caller) = (s.t, &s.info.caller);
    let (card, _, _) = match state.inpatient.stay_card(caller, stay).await {
        Ok(c) => c,
        Err(InpatientError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let (admitted, readings) = match state.inpatient.vitals(caller, stay).await {
        Ok(v) => v,
        Err(InpatientError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let now = state.inpatient.now_ms();
    let last = place(admitted, now).map_or(0, |(p, _)| p);
    let page = q.page.unwrap_or(last).clamp(0, last);
    let number = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let shell = shell(state, &s.info, t, &s.headers).await;
    // `page` is the week shown here: the renderer by its path.
    crate::ui::render::page(
        ChartPage {
            t,
            shell: &shell,
            stay: stay.to_string(),
            name: t.pick(&card.patient.names.zh, &card.patient.names.en).clone(),
            number: card.number.clone(),
            chart: svg(t, admitted, &readings, page),
            page,
            pages: last + 1,
            rows: readings
                .iter()
                .rev()
                .take(20)
                .map(|r| {
                    (
                        local_time(r.at),
                        number(r.temperature),
                        number(r.pulse),
                        number(r.respiration),
                        r.pressure.map(|(a, b)| format!("{a}/{b}")).unwrap_or_default(),
                        r.by.clone(),
                    )
                })
                .collect(),
            may_record: Inpatient::may_keep_ward(caller),
            form,
            errors,
            done: q.done.and_then(|d| t.try_get(&format!("ward-done-{d}"))).map(str::to_string),
        }
        .render(),
    )
}

async fn chart_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<Shown>,
) -> Response {
    if !Inpatient::may_see_boards(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, &id, q, VitalsForm::default(), Vec::new()).await
}

async fn record(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = VitalsForm {
        temperature: v("temperature"),
        pulse: v("pulse"),
        respiration: v("respiration"),
        systolic: v("systolic"),
        diastolic: v("diastolic"),
    };
    match state.inpatient.record_vitals(&s.info.caller, &id, &f).await {
        Ok(()) => see_other(&format!("/ward/stays/{}/chart?done=vitals", urlencode(&id))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, &id, Shown::default(), f, errors).await
        }
    }
}
