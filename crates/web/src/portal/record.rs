//! The patient's own record: their reports (`/portal/reports`), one report with each
//! value's flag and reference range said in plain words (`/portal/reports/{id}`),
//! and a test's trend (`/portal/trend/{loinc}`). Anyone else's report is "not found".

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_clinical::results::ReportView;
use lianyi_portal::record::{Summary, Trend, explain, range_note};

use super::{Frame, Patient, failure};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::page;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/reports", get(reports))
        .route("/portal/reports/{id}", get(report))
        .route("/portal/trend/{loinc}", get(trend))
        .route("/portal/record", get(summary))
        .route("/portal/record/print", get(printable))
        .route("/portal/record/download", get(download))
}

#[derive(Template)]
#[template(path = "portal/record.html")]
struct SummaryPage<'a> {
    t: Tr,
    frame: &'a Frame,
    s: Summary,
    printable: bool,
    printed_at: String,
}

impl SummaryPage<'_> {
    fn yuan(&self, fen: &i64) -> String {
        lianyi_billing::money::Fen(*fen).to_string()
    }
}

async fn summary_page(state: &AppState, p: &Patient, printable: bool) -> Response {
    let t = p.t;
    match state.my_record.summary(p.caller()).await {
        Ok(s) => {
            let frame = Frame::named(state, p, "reports").await;
            let printed_at = crate::ui::render::local_time(state.fhir.now_ms());
            page(SummaryPage { t, frame: &frame, s, printable, printed_at }.render())
        }
        Err(e) => failure(t, &e),
    }
}

async fn summary(State(state): State<AppState>, p: Patient) -> Response {
    summary_page(&state, &p, false).await
}

async fn printable(State(state): State<AppState>, p: Patient) -> Response {
    summary_page(&state, &p, true).await
}

/// The patient's whole record as FHIR JSON (`$everything`), as a download.
async fn download(State(state): State<AppState>, p: Patient) -> Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    match state.my_record.everything(p.caller()).await {
        Ok(bundle) => {
            let mut r = bundle.to_string().into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json; charset=utf-8"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"my-record.json\""));
            r
        }
        Err(e) => failure(p.t, &e),
    }
}

#[derive(Template)]
#[template(path = "portal/reports.html")]
struct ReportsPage<'a> {
    t: Tr,
    frame: &'a Frame,
    reports: Vec<ReportView>,
    /// The patient's imaging studies, newest first.
    studies: Vec<super::images::StudyLine>,
}

async fn reports(State(state): State<AppState>, p: Patient) -> Response {
    let t = p.t;
    let reports = match state.my_record.reports(p.caller()).await {
        Ok(reports) => reports,
        Err(e) => return failure(t, &e),
    };
    let patient = p.caller().access().patient().unwrap_or_default().to_string();
    let studies = match state.imaging.studies_of(p.caller(), &patient).await {
        Ok(list) => list.iter().map(super::images::line).collect(),
        Err(e) => {
            tracing::error!(error = %e, "listing a patient's imaging studies");
            return crate::ui::render::server_error(Some(t));
        }
    };
    page(ReportsPage { t, frame: &Frame::named(&state, &p, "reports").await, reports, studies }.render())
}

/// One line of a report as the patient reads it.
struct Line {
    name: String,
    loinc: String,
    value: String,
    unit: String,
    range: String,
    flag: String,
    /// `bad` (critical), `warn` (outside the range) or empty.
    tone: &'static str,
    meaning: String,
}

#[derive(Template)]
#[template(path = "portal/report.html")]
struct ReportPage<'a> {
    t: Tr,
    frame: &'a Frame,
    report: ReportView,
    department: String,
    lines: Vec<Line>,
    range_note: String,
}

async fn report(State(state): State<AppState>, p: Patient, Path(id): Path<String>) -> Response {
    let t = p.t;
    let report = match state.my_record.report(p.caller(), &id).await {
        Ok(r) => r,
        Err(e) => return failure(t, &e),
    };
    let lines = report
        .lines
        .iter()
        .map(|l| {
            let meaning = explain(&l.flag);
            Line {
                name: t.pick(l.names.zh.clone(), l.names.en.clone()),
                loinc: l.loinc.clone(),
                value: l.value.clone(),
                unit: l.unit.clone(),
                range: l.range.clone(),
                flag: l.flag.clone(),
                tone: match l.flag.as_str() {
                    "HH" | "LL" => "bad",
                    "H" | "L" | "A" => "warn",
                    _ => "",
                },
                meaning: t.pick(meaning.zh, meaning.en),
            }
        })
        .collect();
    let department = t.pick(report.department.zh.clone(), report.department.en.clone());
    let note = range_note();
    let frame = Frame::named(&state, &p, "reports").await;
    page(ReportPage { t, frame: &frame, report, department, lines, range_note: t.pick(note.zh, note.en) }.render())
}

#[derive(Template)]
#[template(path = "portal/trend.html")]
struct TrendPage<'a> {
    t: Tr,
    frame: &'a Frame,
    name: String,
    trend: Trend,
}

async fn trend(State(state): State<AppState>, p: Patient, Path(loinc): Path<String>) -> Response {
    let t = p.t;
    let title = t.get("portal-trend");
    match state.my_record.trend(p.caller(), &loinc, title).await {
        Ok(trend) => {
            let name = t.pick(trend.names.zh.clone(), trend.names.en.clone());
            page(TrendPage { t, frame: &Frame::named(&state, &p, "reports").await, name, trend }.render())
        }
        Err(e) => failure(t, &e),
    }
}
