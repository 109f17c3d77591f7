//! The static files every page loads: the style sheet, the shell's script (the
//! header's menu on phones) and htmx.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/static/app.css", get(css))
        .route("/static/shell.js", get(shell_js))
        .route("/static/htmx.min.js", get(htmx))
}

async fn css() -> Response {
    let mut r = include_str!("../../static/app.css").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

/// Folds the header into a menu on phones (`html.js`, `#menu-toggle`, `#site-nav`).
async fn shell_js() -> Response {
    let mut r = include_str!("../../static/shell.js").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

/// htmx 2.0.11, vendored unchanged (see `static/vendor/README.md`); pages load it
/// with this SHA-256 as their `integrity`, so a browser runs no other file.
async fn htmx() -> Response {
    let mut r = include_str!("../../static/vendor/htmx-2.0.11.min.js").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    r
}
