//! DICOMweb at `/dicomweb` (PS3.18): QIDO-RS (studies, series, instances), WADO-RS
//! (a study, series or instance as `multipart/related; type="application/dicom"`; the
//! metadata kept at ingest, so no file is opened for it; an instance's frames as native
//! samples and rendered as JPEG or PNG in the window asked) and STOW-RS. Bearer tokens
//! as for FHIR; the imaging service applies the caller's campuses and the record across
//! campuses, and audits every study touched.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lianyi_dicom::pixels::{Format, PixelError, Rendering};
use lianyi_dicom::query::{Level, qido};
use lianyi_imaging::ImagingError;
use lianyi_imaging::ingest::Stowed;
use lianyi_imaging::view::PixelsRefused;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::ui::auth::RemoteCaller;

const DICOM_JSON: &str = "application/dicom+json";
/// The AE title QIDO answers name as where to retrieve from.
const NODE_AE: &str = "LIANYI";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dicomweb/studies", get(search_studies).post(store))
        .route("/dicomweb/series", get(search_all_series))
        .route("/dicomweb/instances", get(search_all_instances))
        .route("/dicomweb/studies/{study}", get(files))
        .route("/dicomweb/studies/{study}/metadata", get(metadata))
        .route("/dicomweb/studies/{study}/series", get(search_series))
        .route("/dicomweb/studies/{study}/instances", get(search_instances))
        .route("/dicomweb/studies/{study}/series/{series}", get(files))
        .route("/dicomweb/studies/{study}/series/{series}/metadata", get(metadata))
        .route("/dicomweb/studies/{study}/series/{series}/instances", get(search_instances))
        .route("/dicomweb/studies/{study}/series/{series}/instances/{instance}", get(files))
        .route("/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata", get(metadata))
        .route("/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered", get(rendered))
        .route("/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", get(frames))
        .route("/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered", get(rendered))
}

/// What a WADO-RS path names: a study, a series of it, one instance, or frames of it.
#[derive(serde::Deserialize)]
pub(super) struct Target {
    pub study: String,
    pub series: Option<String>,
    pub instance: Option<String>,
    pub frames: Option<String>,
}

impl Target {
    fn instance(&self) -> (&str, &str, &str) {
        (&self.study, self.series.as_deref().unwrap_or_default(), self.instance.as_deref().unwrap_or_default())
    }
}

fn pixels_failed(e: PixelsRefused) -> Response {
    match e {
        PixelsRefused::Imaging(e) => failed(e),
        PixelsRefused::Pixels(e @ PixelError::NoSuchFrame { .. }) => plain(StatusCode::NOT_FOUND, e.to_string()),
        PixelsRefused::Pixels(e @ PixelError::NoPixels) => plain(StatusCode::BAD_REQUEST, e.to_string()),
        PixelsRefused::Pixels(e @ PixelError::Undecodable(_)) => plain(StatusCode::NOT_ACCEPTABLE, e.to_string()),
        PixelsRefused::Pixels(e @ PixelError::Unreadable(_)) => {
            tracing::error!(error = %e, "a stored instance cannot be read");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "the stored instance cannot be read")
        }
    }
}

/// How to render, from PS3.18 §8.3.5's query parameters (`window=center,width`,
/// `viewport=width,height`, `quality`), the Accept header (JPEG unless only PNG is
/// accepted) and the frame (from 1); or why the request is malformed.
pub(super) fn rendering(p: &[(String, String)], accept: &str, frame: u32) -> Result<Rendering, String> {
    let pair = |name: &str| -> Result<Option<(f64, f64)>, String> {
        let Some((_, v)) = p.iter().find(|(k, _)| k == name) else { return Ok(None) };
        let mut it = v.split(',').map(|x| x.trim().parse::<f64>());
        match (it.next(), it.next()) {
            (Some(Ok(a)), Some(Ok(b))) if a.is_finite() && b.is_finite() => Ok(Some((a, b))),
            _ => Err(format!("{name} must be two numbers separated by a comma, not '{v}'")),
        }
    };
    let window = pair("window")?;
    if window.is_some_and(|(_, w)| w < 1.0) {
        return Err("window: the width must be at least 1".into());
    }
    let viewport = match pair("viewport")? {
        Some((w, h)) if w >= 1.0 && h >= 1.0 && w <= 8192.0 && h <= 8192.0 => Some((w as u32, h as u32)),
        Some(_) => return Err("viewport: width and height must be between 1 and 8192".into()),
        None => None,
    };
    let quality = match p.iter().find(|(k, _)| k == "quality") {
        Some((_, q)) => match q.parse::<u8>() {
            Ok(q) if (1..=100).contains(&q) => q,
            _ => return Err(format!("quality must be a whole number from 1 to 100, not '{q}'")),
        },
        None => 90,
    };
    let accept = accept.to_ascii_lowercase();
    let format =
        if accept.is_empty() || accept.contains("image/jpeg") || accept.contains("*/*") || accept.contains("image/*") {
            Format::Jpeg
        } else if accept.contains("image/png") {
            Format::Png
        } else {
            return Err(format!("rendered images are image/jpeg or image/png, not {accept}"));
        };
    Ok(Rendering { frame, window, viewport, format, quality })
}

/// A frame rendered for `caller` (DICOMweb and the viewer share it).
pub(super) async fn rendered_for(
    state: &AppState,
    caller: &lianyi_security::Caller,
    t: &Target,
    query: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let frame = match t.frames.as_deref().map(frame_numbers) {
        None => 1,
        Some(Ok(list)) if list.len() == 1 => list[0],
        Some(Ok(_)) => return plain(StatusCode::BAD_REQUEST, "a rendered frame names one frame"),
        Some(Err(why)) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let how = match rendering(&params(query), accept, frame) {
        Ok(r) => r,
        Err(why) if why.starts_with("rendered images") => return plain(StatusCode::NOT_ACCEPTABLE, why),
        Err(why) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let media = how.format.media_type();
    match state.imaging.rendered(caller, t.instance(), how).await {
        Ok(Some(image)) => {
            ([(header::CONTENT_TYPE, media), (header::CACHE_CONTROL, "private, max-age=300")], image).into_response()
        }
        Ok(None) => plain(StatusCode::NOT_FOUND, "no such instance that your grants reach"),
        Err(e) => pixels_failed(e),
    }
}

/// `1,3,5` → the frame numbers, each from 1.
fn frame_numbers(list: &str) -> Result<Vec<u32>, String> {
    let numbers: Result<Vec<u32>, _> = list.split(',').map(|n| n.trim().parse::<u32>()).collect();
    match numbers {
        Ok(n) if !n.is_empty() && n.len() <= 1000 && n.iter().all(|&f| f >= 1) => Ok(n),
        _ => Err(format!("frames must be a comma-separated list of frame numbers from 1, not '{list}'")),
    }
}

async fn rendered(
    State(s): State<AppState>,
    RemoteCaller(c): RemoteCaller,
    Path(t): Path<Target>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    rendered_for(&s, &c, &t, q, &headers).await
}

/// Frames as native samples, one `application/octet-stream` part each (PS3.18 §8.7.4).
async fn frames(
    State(s): State<AppState>,
    RemoteCaller(c): RemoteCaller,
    Path(t): Path<Target>,
    headers: HeaderMap,
) -> Response {
    let numbers = match frame_numbers(t.frames.as_deref().unwrap_or_default()) {
        Ok(n) => n,
        Err(why) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if !(accept.is_empty() || accept.contains("application/octet-stream") || accept.contains("*/*")) {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            format!("frames are given as multipart/related; type=\"application/octet-stream\", not {accept}"),
        );
    }
    match s.imaging.frames(&c, t.instance(), numbers).await {
        Ok(Some(frames)) => multipart("application/octet-stream", &frames),
        Ok(None) => plain(StatusCode::NOT_FOUND, "no such instance that your grants reach"),
        Err(e) => pixels_failed(e),
    }
}

fn plain(status: StatusCode, why: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], why.into()).into_response()
}

fn failed(e: ImagingError) -> Response {
    match e {
        ImagingError::Invalid(_) => plain(StatusCode::BAD_REQUEST, e.to_string()),
        ImagingError::Forbidden(why) => plain(StatusCode::FORBIDDEN, why),
        ImagingError::NotFound(why) => plain(StatusCode::NOT_FOUND, why),
        ImagingError::Service(lianyi_services::ServiceError::Forbidden(why)) => plain(StatusCode::FORBIDDEN, why),
        other => {
            tracing::error!(error = %other, "DICOMweb request failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "the request could not be answered")
        }
    }
}

pub(super) fn params(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn number(p: &[(String, String)], name: &str) -> Option<usize> {
    p.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok())
}

async fn qido_at(
    state: &AppState,
    caller: &lianyi_security::Caller,
    level: Level,
    raw: Option<String>,
    fixed: &[(&str, &str)],
) -> Response {
    let p = params(raw);
    let mut q = match qido(level, &p) {
        Ok(x) => x,
        Err(why) => return plain(StatusCode::BAD_REQUEST, why),
    };
    for (tag, uid) in fixed {
        q.keys.insert((*tag).to_string(), json!({"vr": "UI", "Value": [uid]}));
    }
    match state.imaging.search(caller, NODE_AE, &q).await {
        Ok(found) => {
            let offset = number(&p, "offset").unwrap_or(0);
            let limit = number(&p, "limit").unwrap_or(1000).min(10_000);
            let page: Vec<Value> = found.into_iter().skip(offset).take(limit).map(Value::Object).collect();
            ([(header::CONTENT_TYPE, DICOM_JSON)], Value::Array(page).to_string()).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn search_studies(State(s): State<AppState>, RemoteCaller(c): RemoteCaller, RawQuery(q): RawQuery) -> Response {
    qido_at(&s, &c, Level::Study, q, &[]).await
}

async fn search_all_series(
    State(s): State<AppState>,
    RemoteCaller(c): RemoteCaller,
    RawQuery(q): RawQuery,
) -> Response {
    qido_at(&s, &c, Level::Series, q, &[]).await
}

async fn search_all_instances(
    State(s): State<AppState>,
    RemoteCaller(c): RemoteCaller,
    RawQuery(q): RawQuery,
) -> Response {
    qido_at(&s, &c, Level::Image, q, &[]).await
}

async fn search_series(
    State(s): State<AppState>,
    RemoteCaller(c): RemoteCaller,
    Path(t): Path<Target>,
    RawQuery(q): RawQuery,
) -> Response {
    qido_at(&s, &c, Level::Series, q, &[("0020000D", &t.study)]).await
}

async fn search_instances(
    State(s): State<AppState>,
    RemoteCaller(c): RemoteCaller,
    Path(t): Path<Target>,
    RawQuery(q): RawQuery,
) -> Response {
    let mut fixed = vec![("0020000D", t.study.as_str())];
    fixed.extend(t.series.as_deref().map(|series| ("0020000E", series)));
    qido_at(&s, &c, Level::Image, q, &fixed).await
}

/// The instances asked for, or the response that says why not.
async fn rows(
    state: &AppState,
    caller: &lianyi_security::Caller,
    t: &Target,
) -> Result<Vec<lianyi_store::imaging::InstanceRow>, Response> {
    match state.imaging.instances_for(caller, &t.study, t.series.as_deref(), t.instance.as_deref()).await {
        Ok(Some(rows)) if !rows.is_empty() => Ok(rows),
        Ok(_) => Err(plain(StatusCode::NOT_FOUND, "no such study, series or instance that your grants reach")),
        Err(e) => Err(failed(e)),
    }
}

async fn metadata(State(s): State<AppState>, RemoteCaller(c): RemoteCaller, Path(t): Path<Target>) -> Response {
    match rows(&s, &c, &t).await {
        Ok(rows) => {
            let mut body = String::with_capacity(rows.iter().map(|r| r.json.len() + 1).sum::<usize>() + 2);
            body.push('[');
            for (n, r) in rows.iter().enumerate() {
                if n > 0 {
                    body.push(',');
                }
                body.push_str(&r.json);
            }
            body.push(']');
            ([(header::CONTENT_TYPE, DICOM_JSON)], body).into_response()
        }
        Err(r) => r,
    }
}

/// The instances as Part 10 files in one `multipart/related` body.
async fn files(State(state): State<AppState>, RemoteCaller(c): RemoteCaller, Path(t): Path<Target>) -> Response {
    let rows = match rows(&state, &c, &t).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut files = Vec::with_capacity(rows.len());
    for r in &rows {
        match tokio::fs::read(state.imaging.folder().join(&r.file)).await {
            Ok(f) => files.push(f),
            Err(e) => {
                tracing::error!(error = %e.kind(), "an indexed instance's file is missing");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "an instance's file could not be read");
            }
        }
    }
    multipart("application/dicom", &files)
}

/// Parts of one media type in a `multipart/related` response.
fn multipart(media: &str, parts: &[Vec<u8>]) -> Response {
    let boundary = format!("lianyi-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 100).sum());
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: {media}\r\n\r\n").as_bytes());
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let ctype = format!("multipart/related; type=\"{media}\"; boundary={boundary}");
    ([(header::CONTENT_TYPE, ctype)], Body::from(body)).into_response()
}

/// The parts of a `multipart/related` body, or why it is not one.
pub fn parts(content_type: &str, body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.starts_with("multipart/related") {
        return Err(format!("Content-Type must be multipart/related; type=\"application/dicom\", not {content_type}"));
    }
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty())
        .ok_or("the multipart/related Content-Type names no boundary")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], from: usize, needle: &[u8]| -> Option<usize> {
        hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
    };
    let mut at = find(body, 0, &delimiter).ok_or("the body holds no part (its boundary never appears)")?;
    let mut out = Vec::new();
    loop {
        let after = at + delimiter.len();
        if body.get(after..after + 2) == Some(b"--") {
            break;
        }
        let headers_end = find(body, after, b"\r\n\r\n").ok_or("a part has no blank line after its headers")?;
        let headers = String::from_utf8_lossy(&body[after..headers_end]).to_ascii_lowercase();
        let content_start = headers_end + 4;
        let mut next_delimiter = b"\r\n".to_vec();
        next_delimiter.extend_from_slice(&delimiter);
        let end =
            find(body, content_start, &next_delimiter).ok_or("the body ends inside a part (no closing boundary)")?;
        if let Some(ct) = headers.lines().find_map(|l| l.strip_prefix("content-type:")) {
            let ct = ct.trim();
            if !ct.starts_with("application/dicom") || ct.starts_with("application/dicom+") {
                return Err(format!("a part is {ct}; only application/dicom parts are stored"));
            }
        }
        out.push(body[content_start..end].to_vec());
        at = end + 2;
    }
    if out.is_empty() {
        return Err("the body holds no part".into());
    }
    Ok(out)
}

async fn store(State(s): State<AppState>, RemoteCaller(c): RemoteCaller, headers: HeaderMap, body: Bytes) -> Response {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let parts = match parts(ctype, &body) {
        Ok(p) => p,
        Err(why) => {
            let status = if ctype.to_ascii_lowercase().starts_with("multipart/related") {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            };
            return plain(status, why);
        }
    };
    let outcome = match s.imaging.stow(&c, parts).await {
        Ok(o) => o,
        Err(e) => return failed(e),
    };
    stow_response(&outcome)
}

fn stow_response(outcome: &[Stowed]) -> Response {
    let item = |o: &Stowed| {
        let mut m = Map::new();
        if !o.sop_class.is_empty() {
            m.insert("00081150".into(), json!({"vr": "UI", "Value": [o.sop_class]}));
        }
        if !o.sop_instance.is_empty() {
            m.insert("00081155".into(), json!({"vr": "UI", "Value": [o.sop_instance]}));
        }
        if let Some((status, _)) = &o.refused {
            m.insert("00081197".into(), json!({"vr": "US", "Value": [status]}));
        }
        Value::Object(m)
    };
    let stored: Vec<Value> = outcome.iter().filter(|o| o.refused.is_none()).map(item).collect();
    let refused: Vec<&Stowed> = outcome.iter().filter(|o| o.refused.is_some()).collect();
    let mut body = Map::new();
    if !stored.is_empty() {
        body.insert("00081199".into(), json!({"vr": "SQ", "Value": stored}));
    }
    if !refused.is_empty() {
        body.insert(
            "00081198".into(),
            json!({"vr": "SQ", "Value": refused.iter().map(|o| item(o)).collect::<Vec<_>>()}),
        );
    }
    let status = match (stored.is_empty(), refused.is_empty()) {
        (_, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, false) => StatusCode::CONFLICT,
    };
    let mut resp = (status, [(header::CONTENT_TYPE, DICOM_JSON)], Value::Object(body).to_string()).into_response();
    // Why each part was refused, in words (PS3.18 §8.6.3.1: Warning headers).
    for o in refused {
        if let Some((code, why)) = &o.refused {
            let text: String = format!("299 lianyi \"{:#06x} {}: {}\"", code, o.sop_instance, why)
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control())
                .collect();
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_related_splits_and_bad_bodies_say_why() {
        let ct = "multipart/related; type=\"application/dicom\"; boundary=XyZ";
        let body = b"preamble\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nAB\r\nC\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nDEF\r\n--XyZ--\r\n";
        assert_eq!(parts(ct, body).unwrap(), vec![b"AB\r\nC".to_vec(), b"DEF".to_vec()]);
        assert!(parts("application/json", body).unwrap_err().contains("multipart/related"));
        assert!(parts("multipart/related", body).unwrap_err().contains("boundary"));
        assert!(parts(ct, b"--XyZ\r\nContent-Type: application/dicom\r\n\r\nAB").unwrap_err().contains("ends inside"));
        assert!(parts(ct, b"nothing").unwrap_err().contains("no part"));
        let json = b"--XyZ\r\nContent-Type: application/dicom+json\r\n\r\n[]\r\n--XyZ--";
        assert!(parts(ct, json).unwrap_err().contains("only application/dicom"));
    }
}
