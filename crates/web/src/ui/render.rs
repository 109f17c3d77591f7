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

/// A page with one message and a link home, for errors. Plain markup on purpose: it
/// must render when templates or the database do not.
fn message_page(lang: &str, status: StatusCode, message: &str, detail: Option<&str>, home: &str) -> Response {
    let detail = detail.map(|d| format!("<p class=\"hint\" id=\"operation\">{d}</p>")).unwrap_or_default();
    let body = format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main><section class=\"card narrow\"><p class=\"error\" id=\"message\">{message}</p>{detail}<a href=\"/\">{home}</a></section></main></body></html>"
    );
    let mut r = Html(body).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *r.status_mut() = status;
    r
}

pub(crate) fn not_found(t: Tr) -> Response {
    message_page(t.code(), StatusCode::NOT_FOUND, t.get("not-found"), None, t.get("nav-home"))
}

pub(crate) fn forbidden(t: Tr) -> Response {
    message_page(t.code(), StatusCode::FORBIDDEN, t.get("forbidden"), None, t.get("nav-home"))
}

/// A 500 page naming the operation id of this request, which its log lines carry
/// too, so the help desk finds the cause from what the user reads out. Both
/// languages, since the page's own may be what failed.
pub(crate) fn server_error(t: Option<Tr>) -> Response {
    let op = operation_id();
    let t = t.unwrap_or(Tr::new(crate::ui::i18n::Lang::ZhCn));
    let detail = t.fmt("server-error-operation", &op);
    message_page(t.code(), StatusCode::INTERNAL_SERVER_ERROR, t.get("server-error"), Some(&detail), t.get("nav-home"))
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
    shell: Option<&'a crate::ui::shell::Shell>,
    message: &'a str,
}

/// Any path no area serves: the not-found page in the browser's language, inside the
/// shell for a signed-in user (the FHIR API answers its own unknown paths with an
/// OperationOutcome).
pub(crate) async fn unknown_path(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    signed: Result<crate::ui::session::Signed, Response>,
    headers: HeaderMap,
) -> Response {
    let Ok(s) = signed else { return not_found(Tr::new(crate::ui::session::lang(&headers))) };
    let shell = crate::ui::shell::shell(&state, &s.info, s.t, &s.headers).await;
    let mut r =
        page(askama::Template::render(&MessagePage { t: s.t, shell: Some(&shell), message: s.t.get("not-found") }));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
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
