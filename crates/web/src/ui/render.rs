//! Turning a page into a response: rendered HTML that is never cached, redirects,
//! and the error pages (not found, forbidden, and a server error that shows the
//! operation id its log line carries).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::ui::error::operation_id;
use crate::ui::i18n::Tr;

pub(crate) fn page(html: Result<String, askama::Error>) -> Response {
    match html {
        Ok(body) => {
            let mut resp = Html(body).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            server_error(None)
        }
    }
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The path of the page a link was followed from (this site's only), else `/`.
pub(crate) fn referer_path(headers: &HeaderMap) -> String {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or("/")
        .to_string()
}

/// What an error page says, left on its response so that [`in_shell`] draws it inside
/// the shell for a signed-in user.
#[derive(Clone)]
struct Message {
    text: &'static str,
    detail: Option<String>,
}

/// A page with one message and a link home, for errors: the shell's header and
/// footer without the user's part. Plain markup on purpose: it must render when
/// templates or the database do not.
fn message_page(t: Tr, status: StatusCode, message: &'static str, detail: Option<String>) -> Response {
    let shown = detail.as_deref().map(|d| format!("<p class=\"muted\" id=\"operation\">{d}</p>")).unwrap_or_default();
    let (lang, app, home, version) = (t.code(), t.get("app-name"), t.get("nav-home"), t.version());
    let body = format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{message} · {app}</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body>\
         <header class=\"bar\"><span class=\"brand\">{app}</span><nav id=\"site-nav\" aria-label=\"{app}\"><a href=\"/\">{home}</a></nav></header>\
         <main><section class=\"card narrow\"><p class=\"error\" id=\"message\" role=\"alert\">{message}</p>{shown}<a href=\"/\">{home}</a></section></main>\
         <footer class=\"foot\"><span>{app} {version}</span></footer></body></html>"
    );
    let mut r = Html(body).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *r.status_mut() = status;
    r.extensions_mut().insert(Message { text: message, detail });
    r
}

pub(crate) fn not_found(t: Tr) -> Response {
    message_page(t, StatusCode::NOT_FOUND, t.get("not-found"), None)
}

/// The page of a request the database failed: `key` is the message (it does not
/// answer, its disk is full).
pub(crate) fn unavailable(t: Tr, status: StatusCode, key: &'static str) -> Response {
    message_page(t, status, t.get(key), None)
}

pub(crate) fn forbidden(t: Tr) -> Response {
    message_page(t, StatusCode::FORBIDDEN, t.get("forbidden"), None)
}

/// The page of a service call that failed: "not allowed" when the service refused,
/// else the error is logged and the page is a 500 (which names the database's fault,
/// when it is one: see [`crate::ui::layers::unavailable`]). Never "not allowed" for a
/// failure that is not a refusal.
pub(crate) fn failed(t: Tr, e: &lianyi_services::ServiceError) -> Response {
    if matches!(e, lianyi_services::ServiceError::Forbidden(_)) {
        return forbidden(t);
    }
    tracing::error!(error = %e, "a page's service call failed");
    server_error(Some(t))
}

/// A 500 page naming the operation id of this request, which its log lines carry
/// too, so the help desk finds the cause from what the user reads out. Both
/// languages, since the page's own may be what failed.
pub(crate) fn server_error(t: Option<Tr>) -> Response {
    let op = operation_id();
    let t = t.unwrap_or(Tr::new(crate::ui::i18n::Lang::ZhCn));
    let detail = t.fmt("server-error-operation", &op);
    message_page(t, StatusCode::INTERNAL_SERVER_ERROR, t.get("server-error"), Some(detail))
}

/// A CSV download named `filename`: the header row (locale keys, in the page's
/// language) and the rows; UTF-8 with a byte-order mark (spreadsheet programs need it
/// for Chinese), fields quoted when they hold a comma, quote or line break, CRLF lines;
/// never cached.
pub(crate) fn csv(t: Tr, filename: &str, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Response {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
    };
    let mut body = String::from("\u{feff}");
    body.push_str(&header.iter().map(|k| field(t.get(k))).collect::<Vec<_>>().join(","));
    body.push_str("\r\n");
    for row in rows {
        body.push_str(&row.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        body.push_str("\r\n");
    }
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// `v` percent-encoded for a query string.
pub(crate) fn urlencode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The value of form field `name` ("" when absent), of a form read as pairs (fields
/// that repeat — ticked charges, order lines — are read with [`form_values`]).
pub(crate) fn form_value(form: &[(String, String)], name: &str) -> String {
    form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
}

/// Every value of a repeated form field, in order.
pub(crate) fn form_values(form: &[(String, String)], name: &str) -> Vec<String> {
    form.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
}

/// Thousandths of a percent as a percentage without trailing zeros (`99.95`, `100`).
pub(crate) fn milli_percent(milli: i64) -> String {
    let (whole, frac) = (milli / 1_000, milli % 1_000);
    if frac == 0 { whole.to_string() } else { format!("{whole}.{frac:03}").trim_end_matches('0').to_string() }
}

/// An otpauth URI as an SVG QR code (server-side, no script), for enrolling an
/// authenticator.
pub(crate) fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build(),
        Err(_) => String::new(),
    }
}

/// `YYYY-MM-DD HH:MM` in Beijing time, for tables.
pub(crate) fn local_time(ms: i64) -> String {
    let s = lianyi_fhir::datetime::format_instant(ms + 8 * 3_600_000);
    format!("{} {}", &s[..10], &s[11..16])
}

#[derive(askama::Template)]
#[template(path = "ui/message.html")]
struct MessagePage<'a> {
    t: Tr,
    shell: &'a crate::ui::shell::Shell,
    message: &'a str,
    detail: Option<&'a str>,
}

/// Any path no area serves: the not-found page in the browser's language (inside the
/// shell for a signed-in user, by [`in_shell`]; the FHIR API answers its own unknown
/// paths with an OperationOutcome).
pub(crate) async fn unknown_path(headers: HeaderMap) -> Response {
    not_found(Tr::new(crate::ui::session::lang(&headers)))
}

/// Draws the not-found, no-permission and server-error pages of a signed-in user inside
/// the shell (their navigation, patient search, campus and log-out), with the same
/// status and operation id. Without a session, or when the shell cannot be drawn (the
/// database is down), the plain page stays.
pub(crate) async fn in_shell(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let (headers, addr) = (parts.headers.clone(), crate::ui::auth::client_addr(&parts));
    let resp = next.run(axum::extract::Request::from_parts(parts, body)).await;
    let Some(m) = resp.extensions().get::<Message>().cloned() else { return resp };
    let stage = lianyi_security::users::Stage::Active;
    let Ok((_, info)) = crate::ui::session::at_stage(&state, &headers, addr, stage).await else { return resp };
    let t = Tr::new(crate::ui::session::lang(&headers));
    let shell = crate::ui::shell::shell(&state, &info, t, &headers).await;
    let page = MessagePage { t, shell: &shell, message: m.text, detail: m.detail.as_deref() };
    match askama::Template::render(&page) {
        Ok(html) => {
            let mut r = Html(html).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            *r.status_mut() = resp.status();
            r
        }
        Err(_) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::error::with_operation;
    use crate::ui::i18n::Lang;

    async fn body_of(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_server_error_page_quotes_the_operation_id_of_its_request() {
        let r = with_operation("0123456789ab".into(), async { server_error(Some(Tr::new(Lang::En))) }).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let body = body_of(r).await;
        assert!(body.contains("Operation id for the help desk: 0123456789ab"), "{body}");
        let zh = with_operation("feedbeef0000".into(), async { server_error(None) }).await;
        assert!(body_of(zh).await.contains("请向信息科服务台提供操作编号：feedbeef0000"));
    }

    #[tokio::test]
    async fn a_template_failure_is_a_server_error_page_not_an_empty_500() {
        let r = with_operation("aaaabbbbcccc".into(), async { page(Err(askama::Error::Fmt)) }).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body_of(r).await.contains("aaaabbbbcccc"));
    }
}
