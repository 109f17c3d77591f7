//! The viewer (`/imaging/studies/{study}`): a study's series as thumbnails and a frame
//! viewer on the rendered images (scroll through frames, window presets, zoom), with
//! the radiologist's report beside it: the report made for the study's order, or the
//! form to write it. Opened from the patient page and the encounter. The images are
//! the DICOMweb renderer's, reached with the page's session instead of a token.

use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lianyi_security::Perm;

use super::dicomweb::{Target, rendered_for};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, not_found, page};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell, staff_may};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/imaging/studies/{study}", get(viewer))
        .route("/imaging/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered", get(rendered))
        .route("/static/viewer.js", get(viewer_js))
}

/// Window presets (centre, width) for CT, in Hounsfield units; "" is the image's own.
const PRESETS: [(&str, &str); 5] = [
    ("", "viewer-window-default"),
    ("40,400", "viewer-window-soft"),
    ("-600,1500", "viewer-window-lung"),
    ("300,1500", "viewer-window-bone"),
    ("40,80", "viewer-window-brain"),
];

struct SeriesView {
    uid: String,
    number: String,
    modality: String,
    description: String,
    /// The rendered URL of each frame of each instance, in order.
    frames: Vec<String>,
}

struct ReportPanel {
    title: String,
    date: String,
    /// (name, value) of each result (the findings of a narrative report).
    lines: Vec<(String, String)>,
    conclusion: String,
}

#[derive(Template)]
#[template(path = "imaging/viewer.html")]
struct ViewerPage<'a> {
    t: Tr,
    shell: &'a Shell,
    study_uid: String,
    title: String,
    date: String,
    accession: String,
    modalities: String,
    patient_id: String,
    patient: String,
    series: Vec<SeriesView>,
    presets: Vec<(&'static str, &'static str)>,
    /// The order the study answers, its report, and whether the caller may write it.
    request: Option<String>,
    report: Option<ReportPanel>,
    may_report: bool,
}

/// A DICOM DA (`YYYYMMDD`) as `YYYY-MM-DD`, else as it is.
pub(super) fn dicom_date(d: &str) -> String {
    lianyi_fhir::datetime::from_dtm(d, "").unwrap_or_else(|| d.to_string())
}

async fn viewer(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Path(uid): Path<String>,
) -> Response {
    let caller = &info.caller;
    if !staff_may(caller, "ImagingStudy", Perm::Search) {
        return forbidden(t);
    }
    let opened = match state.imaging.open_study(caller, &uid).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(t),
        Err(lianyi_imaging::ImagingError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "opening a study for the viewer");
            return not_found(t);
        }
    };
    let study = &opened.study;
    let patient_id = study.patient.clone().unwrap_or_default();
    let patient = match state.record.open(caller, &patient_id).await {
        Ok((_, p)) => lianyi_clinical::registry::person_of(&p).name,
        Err(_) => String::new(),
    };
    let base = &format!("/imaging/studies/{}", study.study_uid);
    let series = opened
        .series
        .iter()
        .filter(|(_, rows)| rows.iter().any(|r| r.frames > 0))
        .map(|(se, rows)| SeriesView {
            uid: se.series_uid.clone(),
            number: se.series_number.map(|n| n.to_string()).unwrap_or_default(),
            modality: se.modality.clone(),
            description: se.description.clone(),
            frames: rows
                .iter()
                .flat_map(|r| {
                    (1..=r.frames.max(0)).map(move |f| {
                        format!("{base}/series/{}/instances/{}/frames/{f}/rendered", r.series_uid, r.sop_uid)
                    })
                })
                .collect(),
        })
        .collect();
    let may_report = lianyi_clinical::results::may_report(caller);
    let report = match &opened.request {
        Some(r) => state.results.report_for(caller, r).await.ok().flatten().map(|v| ReportPanel {
            title: v.title,
            date: v.date,
            lines: v.lines.into_iter().map(|l| (t.pick(&l.names.zh, &l.names.en).clone(), l.value)).collect(),
            conclusion: v.conclusion,
        }),
        None => None,
    };
    let shell = shell(&state, &info, t, &headers).await;
    page(
        ViewerPage {
            t,
            shell: &shell,
            study_uid: study.study_uid.clone(),
            title: if study.description.is_empty() {
                study.modalities.replace('\\', "/")
            } else {
                study.description.clone()
            },
            date: dicom_date(&study.study_date),
            accession: study.accession.clone(),
            modalities: study.modalities.replace('\\', "/"),
            patient_id,
            patient,
            series,
            presets: PRESETS.to_vec(),
            request: opened.request,
            report,
            may_report,
        }
        .render(),
    )
}

/// A frame rendered for the page's session (the viewer's `<img>`s).
async fn rendered(State(state): State<AppState>, s: Signed, Path(t): Path<Target>, RawQuery(q): RawQuery) -> Response {
    if !staff_may(&s.info.caller, "ImagingStudy", Perm::Search) {
        return forbidden(s.t);
    }
    rendered_for(&state, &s.info.caller, &t, q, &s.headers).await
}

/// The viewer's script: frame scrolling (wheel, keys, slider), window presets, zoom.
async fn viewer_js() -> Response {
    let mut r = include_str!("../../static/viewer.js").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}
