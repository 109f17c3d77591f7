//! `/api/ops/kb`: the knowledge base as JSON for a bearer token with the `lianyi:ops`
//! scope word — search (`?q=`, every word, else any, best first; without `q` the
//! newest), one article with its versions (`?version=N` for an older text), and a
//! new article, written from scratch or in one step from a resolved incident
//! (`"source": "incident:12"`: the fields not given are taken from the ticket).
//! Errors as the rest of `/api/ops` ([`super::api`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lianyi_ops::cmdb::CmdbError;
use lianyi_ops::kb::{ArticleForm, KbError, Page, Source};
use lianyi_store::kb::{Article, Text};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{error, text, time};
use crate::AppState;
use crate::ui::auth::RemoteCaller;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/ops/kb", get(list).post(create)).route("/api/ops/kb/{id}", get(read))
}

fn kb_error(e: KbError) -> Response {
    match e {
        KbError::Forbidden(m) => error(CmdbError::Forbidden(m)),
        KbError::NotFound => error(CmdbError::NotFound),
        KbError::Changed => error(CmdbError::Changed),
        KbError::Invalid(errors) => error(CmdbError::Invalid(errors)),
        other => {
            tracing::error!(error = %other, "knowledge base API failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "internal error"}))).into_response()
        }
    }
}

fn brief(a: &Article, t: &Text) -> Value {
    json!({
        "id": a.id, "title": a.title, "ciClass": a.ci_class, "status": a.status, "source": a.source,
        "version": a.latest, "updated": time(a.updated_at), "solution": t.solution,
    })
}

fn text_json(t: &Text) -> Value {
    json!({
        "version": t.version, "title": t.title, "symptom": t.symptom, "cause": t.cause, "solution": t.solution,
        "ciClass": t.ci_class, "author": t.author, "at": time(t.at), "note": t.note, "source": t.source,
    })
}

fn page_json(p: &Page) -> Value {
    json!({
        "id": p.article.id, "status": p.article.status, "source": p.article.source, "latest": p.article.latest,
        "version": p.article.version, "created": time(p.article.created_at), "author": p.article.author,
        "updated": time(p.article.updated_at), "updatedBy": p.article.updated_by,
        "text": text_json(&p.text),
        "versions": p.versions.iter().map(|v| json!({"version": v.version, "at": time(v.at), "author": v.author, "note": v.note, "source": v.source})).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    class: Option<String>,
    /// `true`: retired articles too.
    retired: Option<bool>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<ListQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let words = q.q.unwrap_or_default();
    match state.kb.search(&caller, &words, q.class.as_deref(), q.retired.unwrap_or(false), limit).await {
        Ok(found) => Json(json!({
            "items": found.hits.iter().map(|h| brief(&h.article, &h.text)).collect::<Vec<_>>(),
            "partial": found.partial,
        }))
        .into_response(),
        Err(e) => kb_error(e),
    }
}

#[derive(Deserialize, Default)]
struct ReadQuery {
    version: Option<i64>,
}

async fn read(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<i64>,
    Query(q): Query<ReadQuery>,
) -> Response {
    match state.kb.get(&caller, id, q.version).await {
        Ok(p) => Json(page_json(&p)).into_response(),
        Err(e) => kb_error(e),
    }
}

async fn create(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Json(v): Json<Value>) -> Response {
    let form = ArticleForm {
        title: text(&v, "title"),
        symptom: text(&v, "symptom"),
        cause: text(&v, "cause"),
        solution: text(&v, "solution"),
        ci_class: text(&v, "ciClass"),
        source: text(&v, "source"),
        note: text(&v, "note"),
    };
    // An incident's article in one step: the ticket fills in what is not given.
    let done = match Source::parse(&form.source) {
        Some(source @ Source::Incident(_)) => state.kb.create_from(&caller, source, &form).await,
        _ => state.kb.create(&caller, &form).await,
    };
    match done {
        Ok(id) => match state.kb.get(&caller, id, None).await {
            Ok(p) => {
                (StatusCode::CREATED, [("location", format!("/api/ops/kb/{id}"))], Json(page_json(&p))).into_response()
            }
            Err(e) => kb_error(e),
        },
        Err(e) => kb_error(e),
    }
}
