//! The patient's own images (`/portal/images/{study}`): each series of a study as a
//! column of rendered images sized for a phone, a long series shown as evenly spaced
//! images. The imaging service reads them as the patient (their own studies only;
//! every study opened is audited), so another patient's study is "not found".

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lianyi_dicom::pixels::Rendering;
use lianyi_store::imaging::{InstanceRow, Study};

use super::{Frame, Patient};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{not_found, page, server_error};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/images/{study}", get(study))
        .route("/portal/images/{study}/series/{series}/instances/{instance}/frames/{frame}", get(image))
}

/// Images shown per series: a long CT series is sampled evenly.
const PER_SERIES: usize = 24;
/// The largest side of an image sent to a phone.
const PHONE_PX: u32 = 1024;

/// A study as a line of the reports page.
pub(super) struct StudyLine {
    pub uid: String,
    pub date: String,
    pub title: String,
}

pub(super) fn line(s: &Study) -> StudyLine {
    StudyLine {
        uid: s.study_uid.clone(),
        date: lianyi_fhir::datetime::from_dtm(&s.study_date, "").unwrap_or_else(|| s.study_date.clone()),
        title: if s.description.is_empty() { s.modalities.replace('\\', "/") } else { s.description.clone() },
    }
}

struct SeriesView {
    title: String,
    /// (image URL, its label).
    images: Vec<(String, String)>,
    total: usize,
}

#[derive(Template)]
#[template(path = "portal/images.html")]
struct StudyPage<'a> {
    t: Tr,
    frame: &'a Frame,
    study: StudyLine,
    series: Vec<SeriesView>,
}

/// `n` of `total` positions spread evenly, first and last included.
fn sample(total: usize, n: usize) -> Vec<usize> {
    if total <= n {
        return (0..total).collect();
    }
    (0..n).map(|i| i * (total - 1) / (n - 1)).collect()
}

async fn study(State(state): State<AppState>, p: Patient, Path(uid): Path<String>) -> Response {
    let t = p.t;
    let opened = match state.imaging.open_study(p.caller(), &uid).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(t),
        Err(e) => {
            tracing::debug!(error = %e, "a patient's study was not opened");
            return not_found(t);
        }
    };
    let base = &format!("/portal/images/{}", opened.study.study_uid);
    let series = opened
        .series
        .iter()
        .filter(|(_, rows)| rows.iter().any(|r| r.frames > 0))
        .map(|(se, rows)| {
            // Every frame as (instance, frame number); only the sampled ones get a URL.
            let frames: Vec<(&InstanceRow, i64)> =
                rows.iter().flat_map(|r| (1..=r.frames.max(0)).map(move |f| (r, f))).collect();
            let total = frames.len();
            let picked = sample(total, PER_SERIES)
                .into_iter()
                .map(|i| {
                    let (r, f) = frames[i];
                    let url = format!("{base}/series/{}/instances/{}/frames/{f}", r.series_uid, r.sop_uid);
                    (url, (i + 1).to_string())
                })
                .collect();
            let number = se.series_number.map(|n| format!("{n} · ")).unwrap_or_default();
            let what = if se.description.is_empty() { se.modality.clone() } else { se.description.clone() };
            SeriesView { title: format!("{number}{what}"), images: picked, total }
        })
        .collect();
    let frame = Frame::named(&state, &p, "reports").await;
    page(StudyPage { t, frame: &frame, study: line(&opened.study), series }.render())
}

async fn image(
    State(state): State<AppState>,
    p: Patient,
    Path((study, series, instance, frame)): Path<(String, String, String, u32)>,
) -> Response {
    if frame == 0 {
        return not_found(p.t);
    }
    let how = Rendering { frame, viewport: Some((PHONE_PX, PHONE_PX)), ..Rendering::default() };
    match state.imaging.rendered(p.caller(), (&study, &series, &instance), how).await {
        Ok(Some(jpeg)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=300")],
            jpeg,
        )
            .into_response(),
        Ok(None) => not_found(p.t),
        Err(lianyi_imaging::view::PixelsRefused::Pixels(e)) => {
            tracing::debug!(error = %e, "an image the renderer does not draw");
            not_found(p.t)
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a patient's image");
            server_error(Some(p.t))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn a_long_series_is_sampled_evenly_with_its_ends() {
        assert_eq!(sample(3, 24), vec![0, 1, 2]);
        let s = sample(120, 24);
        assert_eq!((s.len(), s[0], s[23]), (24, 0, 119));
        assert!(s.windows(2).all(|w| w[1] > w[0]));
    }
}
