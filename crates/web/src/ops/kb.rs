//! The knowledge base's pages: search (ranked) or the newest articles, an article
//! with its version history (any older version readable), the form for a new
//! article — prefilled from a resolved ticket when opened from one — and for an
//! edit — prefilled with what a resolved ticket taught when opened from it
//! (`/ops/kb/{id}/edit?ticket=N`, linked from the ticket page for each suggested
//! article) — retiring and publishing again, and the suggestions fragment that the
//! fault report and the ticket page fetch (htmx) while someone types. The rules live
//! in [`lianyi_ops::kb`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_ops::cmdb::CLASSES;
use lianyi_ops::kb::{ArticleForm, Hit, Kb, KbError, Source};
use lianyi_security::Caller;
use lianyi_store::kb::{Article, Text};
use serde::Deserialize;

use super::failed;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/kb", get(list_page).post(create))
        .route("/ops/kb/new", get(new_page))
        .route("/ops/kb/suggest", get(suggest))
        .route("/ops/kb/{id}", get(article_page).post(update))
        .route("/ops/kb/{id}/edit", get(edit_page))
        .route("/ops/kb/{id}/status", post(set_status))
}

pub(super) fn may_write(c: &Caller) -> bool {
    Kb::may_write(c) && c.is_authenticated()
}

/// Articles found on a page, and suggestions.
const PAGE: i64 = 50;
const SUGGESTED: i64 = 5;

fn error_rows(t: Tr, e: &KbError) -> Vec<(String, String)> {
    match e {
        KbError::Invalid(errors) => errors
            .iter()
            .map(|e| {
                let rule = t.try_get(&format!("kb-rule-{}", e.rule)).map_or(e.detail.clone(), str::to_string);
                (e.field.clone(), rule)
            })
            .collect(),
        KbError::Changed => vec![("version".into(), t.get("kb-changed").to_string())],
        other => vec![("article".into(), other.to_string())],
    }
}

/// (code, name, chosen) of every CI class.
fn classes(t: Tr, chosen: &str) -> Vec<(String, String, bool)> {
    CLASSES.iter().map(|c| (c.code.to_string(), t.named("cmdb-class", c.code), c.code == chosen)).collect()
}

/// The first line of a text, at most `n` characters.
fn snippet(text: &str, n: usize) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let cut: String = line.chars().take(n).collect();
    if cut.chars().count() < line.chars().count() { format!("{cut}…") } else { cut }
}

fn who(actor: &str) -> String {
    actor.trim_start_matches("user:").to_string()
}

/// Where an article came from, as a link the reader may follow: (href, label key, number).
fn source_link(source: Option<&str>) -> Option<(String, &'static str, i64)> {
    match Source::parse(source?)? {
        Source::Incident(id) => Some((format!("/ops/tickets/{id}"), "kb-source-incident", id)),
        // Problem records have no page on this branch yet: the reference is shown, not linked.
        Source::Problem(id) => Some((String::new(), "kb-source-problem", id)),
    }
}

// ---- The list and search -------------------------------------------------------------

struct Row {
    id: i64,
    title: String,
    class: String,
    updated: String,
    version: i64,
    status: String,
    snippet: String,
}

fn row(t: Tr, a: Article, text: &Text) -> Row {
    Row {
        id: a.id,
        title: a.title,
        class: a.ci_class.as_deref().map(|c| t.named("cmdb-class", c)).unwrap_or_default(),
        updated: local_time(a.updated_at),
        version: a.latest,
        status: a.status,
        snippet: snippet(&text.solution, 80),
    }
}

#[derive(Template)]
#[template(path = "ops/kb_list.html")]
struct ListPage<'a> {
    t: Tr,
    shell: &'a Shell,
    q: String,
    classes: Vec<(String, String, bool)>,
    retired: bool,
    rows: Vec<Row>,
    /// No article had every word: these have some.
    partial: bool,
    searched: bool,
    may_write: bool,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    class: Option<String>,
    /// `1`: retired articles too (the IT team).
    retired: Option<String>,
}

async fn list_page(State(state): State<AppState>, s: Signed, Query(q): Query<ListQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    let text = q.q.clone().unwrap_or_default();
    let retired = q.retired.as_deref() == Some("1");
    let found = match state.kb.search(&info.caller, &text, q.class.as_deref(), retired, PAGE).await {
        Ok(f) => f,
        Err(KbError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "knowledge base", e),
    };
    let shell = shell(&state, info, t, &s.headers).await;
    page(
        ListPage {
            t,
            shell: &shell,
            searched: !text.trim().is_empty(),
            q: text,
            classes: classes(t, q.class.as_deref().unwrap_or_default()),
            retired,
            partial: found.partial,
            rows: found.hits.into_iter().map(|h| row(t, h.article, &h.text)).collect(),
            may_write: may_write(&info.caller),
        }
        .render(),
    )
}

// ---- An article ----------------------------------------------------------------------

/// One version in the history: (number, when, who, note, what it was written from).
type VersionRow = (i64, String, String, String, Option<(String, &'static str, i64)>);

#[derive(Template)]
#[template(path = "ops/kb_article.html")]
struct ArticlePage<'a> {
    t: Tr,
    shell: &'a Shell,
    a: Article,
    text: Text,
    class: String,
    /// The text shown is the current one.
    current: bool,
    versions: Vec<VersionRow>,
    source: Option<(String, &'static str, i64)>,
    may_write: bool,
    errors: Vec<(String, String)>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
struct ArticleQuery {
    v: Option<i64>,
    done: Option<String>,
}

async fn render_article(
    state: &AppState,
    s: &Signed,
    id: i64,
    version: Option<i64>,
    errors: Vec<(String, String)>,
    notice: Option<String>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let p = match state.kb.get(&info.caller, id, version).await {
        Ok(p) => p,
        Err(KbError::Forbidden(_)) => return forbidden(t),
        Err(KbError::NotFound) => return not_found(t),
        Err(e) => return failed(t, "article", e),
    };
    let shell = shell(state, info, t, &s.headers).await;
    page(
        ArticlePage {
            t,
            shell: &shell,
            class: p.text.ci_class.as_deref().map(|c| t.named("cmdb-class", c)).unwrap_or_default(),
            current: p.text.version == p.article.latest,
            versions: p
                .versions
                .iter()
                .rev()
                .map(|v| {
                    let note = v.note.clone().unwrap_or_default();
                    (v.version, local_time(v.at), who(&v.author), note, source_link(v.source.as_deref()))
                })
                .collect(),
            source: source_link(p.article.source.as_deref()),
            may_write: may_write(&info.caller),
            a: p.article,
            text: p.text,
            errors,
            notice,
        }
        .render(),
    )
}

async fn article_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<ArticleQuery>,
) -> Response {
    let notice = q.done.map(|d| format!("kb-done-{d}")).filter(|k| s.t.try_get(k).is_some());
    render_article(&state, &s, id, q.v, Vec::new(), notice).await
}

async fn set_status(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_write(&s.info.caller) {
        return forbidden(s.t);
    }
    let retired = value("retired") == "1";
    let version = value("version").parse().unwrap_or(0);
    match state.kb.set_retired(&s.info.caller, id, version, retired).await {
        Ok(()) => see_other(&format!("/ops/kb/{id}?done={}", if retired { "retired" } else { "published" })),
        Err(KbError::Forbidden(_)) => forbidden(s.t),
        Err(KbError::NotFound) => not_found(s.t),
        Err(e @ KbError::Changed) => {
            let errors = error_rows(s.t, &e);
            render_article(&state, &s, id, None, errors, None).await
        }
        Err(e) => failed(s.t, "article status", e),
    }
}

// ---- New and edit --------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ops/kb_form.html")]
struct FormPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// `None`: a new article.
    id: Option<i64>,
    version: i64,
    form: ArticleForm,
    classes: Vec<(String, String, bool)>,
    source: Option<(String, &'static str, i64)>,
    errors: Vec<(String, String)>,
}

async fn render_form(
    state: &AppState,
    s: &Signed,
    id: Option<i64>,
    version: i64,
    form: ArticleForm,
    errors: Vec<(String, String)>,
) -> Response {
    let shell = shell(state, &s.info, s.t, &s.headers).await;
    page(
        FormPage {
            t: s.t,
            shell: &shell,
            id,
            version,
            classes: classes(s.t, &form.ci_class),
            source: source_link(Some(form.source.as_str())),
            form,
            errors,
        }
        .render(),
    )
}

#[derive(Deserialize, Default)]
struct NewQuery {
    /// Write it from this resolved ticket.
    ticket: Option<i64>,
    /// Write it from this problem.
    problem: Option<i64>,
}

async fn new_page(State(state): State<AppState>, s: Signed, Query(q): Query<NewQuery>) -> Response {
    if !may_write(&s.info.caller) {
        return forbidden(s.t);
    }
    let source = q.ticket.map(Source::Incident).or(q.problem.map(Source::Problem));
    let Some(source) = source else {
        return render_form(&state, &s, None, 0, ArticleForm::default(), Vec::new()).await;
    };
    match state.kb.draft(&s.info.caller, source).await {
        Ok(form) => render_form(&state, &s, None, 0, form, Vec::new()).await,
        Err(KbError::Forbidden(_)) => forbidden(s.t),
        Err(KbError::NotFound) => not_found(s.t),
        Err(e @ KbError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            render_form(&state, &s, None, 0, ArticleForm::default(), errors).await
        }
        Err(e) => failed(s.t, "article draft", e),
    }
}

fn posted(f: &[(String, String)]) -> ArticleForm {
    let value = |k: &str| form_value(f, k);
    ArticleForm {
        title: value("title"),
        symptom: value("symptom"),
        cause: value("cause"),
        solution: value("solution"),
        ci_class: value("ci_class"),
        source: value("source"),
        note: value("note"),
    }
}

async fn create(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_write(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = posted(&f);
    match state.kb.create(&s.info.caller, &form).await {
        Ok(id) => see_other(&format!("/ops/kb/{id}?done=created")),
        Err(KbError::Forbidden(_)) => forbidden(s.t),
        Err(e @ KbError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            render_form(&state, &s, None, 0, form, errors).await
        }
        Err(e) => failed(s.t, "article create", e),
    }
}

#[derive(Deserialize, Default)]
struct EditQuery {
    /// Improve the article with what this resolved ticket taught.
    ticket: Option<i64>,
}

async fn edit_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<EditQuery>,
) -> Response {
    if !may_write(&s.info.caller) {
        return forbidden(s.t);
    }
    if let Some(ticket) = q.ticket {
        return match state.kb.improvement(&s.info.caller, id, ticket).await {
            Ok((version, mut form)) => {
                form.note = s.t.fmt("kb-note-from-incident", ticket.to_string().as_str());
                render_form(&state, &s, Some(id), version, form, Vec::new()).await
            }
            Err(KbError::Forbidden(_)) => forbidden(s.t),
            Err(KbError::NotFound) => not_found(s.t),
            Err(e @ KbError::Invalid(_)) => {
                let errors = error_rows(s.t, &e);
                match state.kb.get(&s.info.caller, id, None).await {
                    Ok(p) => render_form(&state, &s, Some(id), p.article.version, current(p), errors).await,
                    Err(e) => failed(s.t, "article", e),
                }
            }
            Err(e) => failed(s.t, "article improvement", e),
        };
    }
    let p = match state.kb.get(&s.info.caller, id, None).await {
        Ok(p) => p,
        Err(KbError::Forbidden(_)) => return forbidden(s.t),
        Err(KbError::NotFound) => return not_found(s.t),
        Err(e) => return failed(s.t, "article", e),
    };
    render_form(&state, &s, Some(id), p.article.version, current(p), Vec::new()).await
}

/// The form for the next version: the current text, from nothing (the version's own
/// source, not the article's).
fn current(p: lianyi_ops::kb::Page) -> ArticleForm {
    ArticleForm {
        title: p.text.title,
        symptom: p.text.symptom,
        cause: p.text.cause,
        solution: p.text.solution,
        ci_class: p.text.ci_class.unwrap_or_default(),
        source: String::new(),
        note: String::new(),
    }
}

async fn update(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_write(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = posted(&f);
    let version = form_value(&f, "version").parse().unwrap_or(0);
    match state.kb.edit(&s.info.caller, id, version, &form).await {
        Ok(_) => see_other(&format!("/ops/kb/{id}?done=saved")),
        Err(KbError::Forbidden(_)) => forbidden(s.t),
        Err(KbError::NotFound) => not_found(s.t),
        Err(e @ (KbError::Invalid(_) | KbError::Changed)) => {
            let errors = error_rows(s.t, &e);
            render_form(&state, &s, Some(id), version, form, errors).await
        }
        Err(e) => failed(s.t, "article edit", e),
    }
}

// ---- Suggestions while typing ------------------------------------------------------------

/// Suggested articles: (id, title, first line of the solution).
pub(super) type Suggested = Vec<(i64, String, String)>;

fn suggested(hits: Vec<Hit>) -> Suggested {
    hits.into_iter().map(|h| (h.article.id, h.article.title, snippet(&h.text.solution, 60))).collect()
}

/// The fragment alone (`ops/kb_suggest.html`, which pages include with their own
/// `suggested`).
#[derive(Template)]
#[template(path = "ops/kb_suggest.html")]
struct SuggestFragment {
    t: Tr,
    suggested: Suggested,
}

/// What is being typed: a fault's title and details, or a resolution.
#[derive(Deserialize, Default)]
struct Typed {
    q: Option<String>,
    title: Option<String>,
    description: Option<String>,
    resolution: Option<String>,
}

/// Published articles matching what is typed (a fault report's title and details,
/// a resolution being written), for htmx to swap in below the field; empty when
/// none match.
async fn suggest(State(state): State<AppState>, s: Signed, Query(q): Query<Typed>) -> Response {
    let typed: Vec<String> = [q.q, q.title, q.description, q.resolution].into_iter().flatten().collect();
    match state.kb.suggest(&s.info.caller, &typed.join(" "), SUGGESTED).await {
        Ok(hits) => page(SuggestFragment { t: s.t, suggested: suggested(hits) }.render()),
        Err(KbError::Forbidden(_)) => forbidden(s.t),
        Err(e) => failed(s.t, "suggestions", e),
    }
}

/// Suggestions for a text, for a page drawn with them (none on failure: they are a
/// help, not the page's purpose).
pub(super) async fn suggested_for(state: &AppState, caller: &Caller, typed: &str) -> Suggested {
    match state.kb.suggest(caller, typed, SUGGESTED).await {
        Ok(hits) => suggested(hits),
        Err(e) => {
            tracing::warn!(error = %e, "knowledge base suggestions");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{snippet, source_link};

    #[test]
    fn a_snippet_is_the_first_line_cut_with_an_ellipsis() {
        assert_eq!(snippet("\n  重启打印服务  \n然后清空队列", 10), "重启打印服务");
        assert_eq!(snippet("一二三四五六", 3), "一二三…");
        assert_eq!(snippet("", 3), "");
    }

    #[test]
    fn an_incident_source_links_to_its_ticket() {
        assert_eq!(source_link(Some("incident:4")), Some(("/ops/tickets/4".into(), "kb-source-incident", 4)));
        assert_eq!(source_link(Some("problem:2")).map(|s| s.2), Some(2));
        assert_eq!(source_link(Some("nonsense")), None);
        assert_eq!(source_link(None), None);
    }
}
