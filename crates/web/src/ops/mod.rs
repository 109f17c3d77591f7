//! IT operations pages: the configuration database (CMDB) — the list of configuration
//! items with filters and keyset paging, a CI's card with its relations, the impact
//! graph both ways, CSV import and export — and its JSON API ([`api`]); the service
//! desk ([`desk`]) and the knowledge base ([`kb`]). The rules live in
//! [`lianyi_ops::cmdb`], [`lianyi_ops::desk`] and [`lianyi_ops::kb`].

mod api;
mod backups;
mod changes;
mod desk;
mod kb;
mod kb_api;
pub mod monitor;
mod monitor_api;
pub(crate) mod notices;
mod probes;
mod sla;
mod stats;
mod wall;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_ops::cmdb::{CLASSES, CiForm, Cmdb, CmdbError, FieldError, GROUPS, Impact, RELATIONS, STATUSES};
use lianyi_security::Caller;
use lianyi_store::cmdb::{Ci, CiQuery, Walk};
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other, server_error};
use crate::ui::session::Signed;
use crate::ui::shell::{NavLink, Place, Shell, campus_name, shell};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/cis", get(list_page).post(create))
        .route("/ops/cis/new", get(new_page))
        .route("/ops/cis.csv", get(export))
        .route("/ops/cis/import", get(import_page).post(import))
        .route("/ops/cis/{id}", get(ci_page).post(update))
        .route("/ops/cis/{id}/relations", post(relate))
        .route("/ops/cis/{id}/relations/remove", post(unrelate))
        .route("/ops/cis/{id}/impact", get(impact_page))
        .merge(api::router())
        .merge(monitor_api::router())
        .merge(backups::router())
        .merge(wall::router())
        .merge(probes::router())
        .merge(desk::router())
        .merge(changes::router())
        .merge(stats::router())
        .merge(notices::router())
        .merge(sla::router())
        .merge(kb::router())
        .merge(kb_api::router())
}

fn may_operate(c: &Caller) -> bool {
    Cmdb::may_operate(c) && c.is_authenticated()
}

pub(crate) const NAV: &[NavLink] = &[
    NavLink { href: "/ops/report", text: "nav-report-fault", place: Place::Bar, shown: desk::may_report },
    NavLink { href: "/ops/tickets", text: "nav-tickets", place: Place::Bar, shown: desk::may_work },
    NavLink { href: "/ops/notifications", text: "nav-notifications", place: Place::Bar, shown: desk::may_report },
    NavLink { href: "/ops/changes", text: "nav-changes", place: Place::Bar, shown: desk::may_work },
    NavLink { href: "/ops/stats", text: "nav-ops-stats", place: Place::Bar, shown: desk::may_work },
    NavLink { href: "/ops/monitor", text: "nav-monitor", place: Place::Bar, shown: desk::may_work },
    NavLink { href: "/ops/cis", text: "nav-cmdb", place: Place::Bar, shown: may_operate },
    NavLink { href: "/ops/kb", text: "nav-kb", place: Place::Bar, shown: kb::may_write },
];

const PAGE: i64 = 50;

/// Field errors in the page's language: (field, text), the row first for an import.
fn error_rows(t: Tr, errors: &[FieldError]) -> Vec<(String, String)> {
    errors
        .iter()
        .map(|e| {
            let rule =
                t.try_get(&format!("cmdb-rule-{}", e.rule)).map_or(e.detail.clone(), |r| format!("{r} ({})", e.detail));
            let text = match e.row {
                Some(row) => format!("{} {row}: {rule}", t.get("cmdb-row")),
                None => rule,
            };
            (e.field.clone(), text)
        })
        .collect()
}

pub(super) fn failed(t: Tr, what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "{what}");
    server_error(Some(t))
}

/// Campus labels for choices: (id, name, selected), the group first as "".
async fn campus_choices(state: &AppState, t: Tr, chosen: &str) -> Vec<(String, String, bool)> {
    let mut out = vec![(String::new(), t.get("cmdb-group-wide").to_string(), chosen.is_empty())];
    for id in state.fhir.campuses().await.unwrap_or_default() {
        let name = campus_name(state, &id, t).await;
        let selected = id == chosen;
        out.push((id, name, selected));
    }
    out
}

fn choices(t: Tr, prefix: &str, codes: &[&str], chosen: &str) -> Vec<(String, String, bool)> {
    codes.iter().map(|c| (c.to_string(), t.named(prefix, c), *c == chosen)).collect()
}

// ---- The list ---------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    class: Option<String>,
    campus: Option<String>,
    status: Option<String>,
    /// `name` and `id` of the last row of the previous page.
    after_name: Option<String>,
    after_id: Option<i64>,
    done: Option<String>,
}

/// One row of the list.
struct Row {
    id: i64,
    code: String,
    name: String,
    class: String,
    campus: String,
    location: String,
    status: String,
    group: String,
    platform: bool,
}

#[derive(Template)]
#[template(path = "ops/cis.html")]
struct ListPage<'a> {
    t: Tr,
    shell: &'a Shell,
    q: String,
    classes: Vec<(String, String, bool)>,
    campuses: Vec<(String, String, bool)>,
    statuses: Vec<(String, String, bool)>,
    rows: Vec<Row>,
    total: i64,
    /// The query string of the next page, if there is one.
    next: Option<String>,
    notice: Option<String>,
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A row of the list; `campuses` are the names read so far on this page.
async fn row(state: &AppState, t: Tr, c: Ci, campuses: &mut std::collections::HashMap<String, String>) -> Row {
    let campus = match &c.campus {
        Some(id) => match campuses.get(id) {
            Some(name) => name.clone(),
            None => {
                let name = campus_name(state, id, t).await;
                campuses.insert(id.clone(), name.clone());
                name
            }
        },
        None => t.get("cmdb-group-wide").to_string(),
    };
    Row {
        id: c.id,
        code: c.code,
        name: c.name,
        class: t.named("cmdb-class", &c.class),
        campus,
        location: c.location.unwrap_or_default(),
        status: c.status,
        group: t.named("cmdb-group", &c.support_group),
        platform: c.managed_by.is_some(),
    }
}

async fn list_page(State(state): State<AppState>, s: Signed, Query(q): Query<ListQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_operate(&info.caller) {
        return forbidden(t);
    }
    let some = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let query = CiQuery {
        class: some(&q.class),
        campus: q.campus.clone().filter(|c| c != "*"),
        status: some(&q.status),
        text: some(&q.q),
        after: q.after_name.clone().zip(q.after_id),
        limit: PAGE,
    };
    let (cis, total) = match state.cmdb.list(&info.caller, &query, true).await {
        Ok(x) => x,
        Err(CmdbError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "CI list", e),
    };
    let shell = shell(&state, info, t, &s.headers).await;
    let next = (cis.len() as i64 == PAGE).then(|| {
        let last = &cis[cis.len() - 1];
        format!(
            "q={}&class={}&campus={}&status={}&after_name={}&after_id={}",
            enc(q.q.as_deref().unwrap_or_default()),
            enc(q.class.as_deref().unwrap_or_default()),
            enc(q.campus.as_deref().unwrap_or("*")),
            enc(q.status.as_deref().unwrap_or_default()),
            enc(&last.name),
            last.id
        )
    });
    let mut rows = Vec::with_capacity(cis.len());
    let mut names = std::collections::HashMap::new();
    for c in cis {
        rows.push(row(&state, t, c, &mut names).await);
    }
    let class_codes: Vec<&str> = CLASSES.iter().map(|c| c.code).collect();
    let mut campuses = campus_choices(&state, t, q.campus.as_deref().unwrap_or("*")).await;
    campuses.insert(0, ("*".into(), t.get("cmdb-all").to_string(), q.campus.as_deref().is_none_or(|c| c == "*")));
    page(
        ListPage {
            t,
            shell: &shell,
            q: q.q.clone().unwrap_or_default(),
            classes: choices(t, "cmdb-class", &class_codes, q.class.as_deref().unwrap_or_default()),
            campuses,
            statuses: choices(t, "cmdb-status", &STATUSES, q.status.as_deref().unwrap_or_default()),
            rows,
            total: total.unwrap_or_default(),
            next,
            notice: q.done.as_deref().map(|d| format!("cmdb-done-{d}")).filter(|k| t.try_get(k).is_some()),
        }
        .render(),
    )
}

// ---- A CI's card, new and edit ------------------------------------------------------

/// One attribute field of the form: (key, label, value, choices if a choice).
struct AttrField {
    key: String,
    label: String,
    value: String,
    choices: Vec<(String, bool)>,
}

/// One relation of the card: (kind label, other end, other's code, id, which way).
struct RelRow {
    kind: String,
    kind_code: String,
    other_id: i64,
    other: String,
    outgoing: bool,
    source: i64,
    target: i64,
}

#[derive(Template)]
#[template(path = "ops/ci.html")]
struct CiPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// `None`: a new CI.
    id: Option<i64>,
    version: i64,
    form: CiForm,
    classes: Vec<(String, String, bool)>,
    campuses: Vec<(String, String, bool)>,
    statuses: Vec<(String, String, bool)>,
    groups: Vec<(String, String, bool)>,
    attrs: Vec<AttrField>,
    relations: Vec<RelRow>,
    kinds: Vec<(String, String, bool)>,
    platform: bool,
    updated: String,
    errors: Vec<(String, String)>,
    notice: Option<String>,
    /// The CI's probes with the last day of the metric that shows its health best.
    monitoring: Vec<CiProbe>,
    /// The new-probe form for this CI.
    new_probe: String,
}

struct CiProbe {
    id: i64,
    kind: String,
    target: String,
    state: &'static str,
    last: String,
    metric: String,
    chart: String,
}

/// The CI's probes (IT staff who may see monitoring), each with a chart of its
/// latency (or, without one, whether it was up) over the last 24 hours.
async fn ci_probes(state: &AppState, caller: &Caller, ci: i64) -> Vec<CiProbe> {
    let Ok(probes) = state.monitor.probes(caller, Some(ci)).await else { return Vec::new() };
    let to = state.fhir.now_ms();
    let from = to - 86_400_000;
    let mut out = Vec::new();
    for p in probes.into_iter().take(10) {
        let metrics = state.monitor.metrics(caller, p.id).await.unwrap_or_default();
        let metric = ["latency_ms", "tls_days_left", "up"]
            .into_iter()
            .find(|m| metrics.iter().any(|x| x == m))
            .unwrap_or("up")
            .to_string();
        let chart = match probes::metric_chart(state, caller, &p, &metric, from, to).await {
            Ok((svg, _)) => svg,
            Err(_) => crate::ui::chart::line(&metric, &[], from, to, 1),
        };
        out.push(CiProbe {
            id: p.id,
            kind: p.kind.clone(),
            target: p.target.clone(),
            state: p.state(),
            last: p.last_at.map(local_time).unwrap_or_default(),
            chart,
            metric,
        });
    }
    out
}

fn form_of(c: &Ci) -> CiForm {
    let attrs: serde_json::Map<String, Value> = serde_json::from_str(&c.attrs).unwrap_or_default();
    CiForm {
        code: c.code.clone(),
        name: c.name.clone(),
        class: c.class.clone(),
        campus: c.campus.clone().unwrap_or_default(),
        location: c.location.clone().unwrap_or_default(),
        status: c.status.clone(),
        owner: c.owner.clone().unwrap_or_default(),
        support_group: c.support_group.clone(),
        supplier: c.supplier.clone().unwrap_or_default(),
        warranty_end: c.warranty_end.clone().unwrap_or_default(),
        contract_end: c.contract_end.clone().unwrap_or_default(),
        attrs: attrs.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect(),
    }
}

fn posted_form(f: &[(String, String)]) -> CiForm {
    let value = |k: &str| form_value(f, k);
    CiForm {
        code: value("code"),
        name: value("name"),
        class: value("class"),
        campus: value("campus"),
        location: value("location"),
        status: value("status"),
        owner: value("owner"),
        support_group: value("support_group"),
        supplier: value("supplier"),
        warranty_end: value("warranty_end"),
        contract_end: value("contract_end"),
        attrs: f.iter().filter_map(|(k, v)| k.strip_prefix("attr:").map(|k| (k.to_string(), v.clone()))).collect(),
    }
}

/// The card of a stored CI, with `errors` from a refused change.
fn stored_card(ci: &Ci, errors: Vec<(String, String)>, notice: Option<String>) -> Card {
    Card {
        id: Some(ci.id),
        version: ci.version,
        form: form_of(ci),
        platform: ci.managed_by.is_some(),
        updated: format!("{} · {}", local_time(ci.updated_at), ci.updated_by),
        errors,
        notice,
    }
}

struct Card {
    id: Option<i64>,
    version: i64,
    form: CiForm,
    platform: bool,
    updated: String,
    errors: Vec<(String, String)>,
    notice: Option<String>,
}

async fn render_ci(state: &AppState, s: &Signed, card: Card) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let mut relations = Vec::new();
    if let Some(id) = card.id {
        match state.cmdb.relations(&info.caller, id).await {
            Ok(list) => {
                for (r, other) in list {
                    let outgoing = r.source == id;
                    relations.push(RelRow {
                        kind: t.named(if outgoing { "cmdb-rel" } else { "cmdb-rel-in" }, &r.kind),
                        kind_code: r.kind.clone(),
                        other_id: other.id,
                        other: format!("{} · {}", other.code, other.name),
                        outgoing,
                        source: r.source,
                        target: r.target,
                    });
                }
            }
            Err(e) => return failed(t, "CI relations", e),
        }
    }
    let class = lianyi_ops::cmdb::class(&card.form.class).or(CLASSES.first());
    let attrs = class
        .map(|c| {
            c.attrs
                .iter()
                .map(|a| {
                    let value =
                        card.form.attrs.iter().find(|(k, _)| k == a.key).map(|(_, v)| v.clone()).unwrap_or_default();
                    AttrField {
                        key: a.key.to_string(),
                        label: t.named("cmdb-attr", a.key),
                        choices: match a.kind {
                            lianyi_ops::cmdb::AttrKind::Choice(codes) => {
                                codes.iter().map(|c| (c.to_string(), *c == value)).collect()
                            }
                            _ => Vec::new(),
                        },
                        value,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let class_codes: Vec<&str> = CLASSES.iter().map(|c| c.code).collect();
    let monitoring = match card.id {
        Some(id) => ci_probes(state, &info.caller, id).await,
        None => Vec::new(),
    };
    page(
        CiPage {
            monitoring,
            new_probe: format!(
                "/ops/monitor/probes/new?ci={}",
                form_urlencoded::byte_serialize(card.form.code.as_bytes()).collect::<String>()
            ),
            t,
            shell: &shell,
            id: card.id,
            version: card.version,
            classes: choices(t, "cmdb-class", &class_codes, class.map_or("", |c| c.code)),
            campuses: campus_choices(state, t, &card.form.campus).await,
            statuses: choices(
                t,
                "cmdb-status",
                &STATUSES,
                if card.form.status.is_empty() { "in-service" } else { &card.form.status },
            ),
            groups: choices(t, "cmdb-group", &GROUPS, &card.form.support_group),
            kinds: choices(t, "cmdb-rel", &RELATIONS, ""),
            attrs,
            relations,
            platform: card.platform,
            updated: card.updated,
            errors: card.errors,
            notice: card.notice,
            form: card.form,
        }
        .render(),
    )
}

#[derive(Deserialize, Default)]
struct NewQuery {
    class: Option<String>,
}

async fn new_page(State(state): State<AppState>, s: Signed, Query(q): Query<NewQuery>) -> Response {
    if !may_operate(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = CiForm { class: q.class.unwrap_or_else(|| "host".into()), ..Default::default() };
    render_ci(
        &state,
        &s,
        Card { id: None, version: 0, form, platform: false, updated: String::new(), errors: Vec::new(), notice: None },
    )
    .await
}

async fn create(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_operate(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = posted_form(&f);
    // Changing the class only redraws the form with that class's attributes.
    if form_value(&f, "redraw") == "1" {
        return render_ci(
            &state,
            &s,
            Card {
                id: None,
                version: 0,
                form,
                platform: false,
                updated: String::new(),
                errors: Vec::new(),
                notice: None,
            },
        )
        .await;
    }
    match state.cmdb.create(&s.info.caller, &form).await {
        Ok(id) => see_other(&format!("/ops/cis/{id}?done=created")),
        Err(CmdbError::Forbidden(_)) => forbidden(s.t),
        Err(CmdbError::Invalid(errors)) => {
            let errors = error_rows(s.t, &errors);
            render_ci(
                &state,
                &s,
                Card { id: None, version: 0, form, platform: false, updated: String::new(), errors, notice: None },
            )
            .await
        }
        Err(e) => failed(s.t, "CI create", e),
    }
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

async fn ci_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let t = s.t;
    let ci = match state.cmdb.get(&s.info.caller, id).await {
        Ok(c) => c,
        Err(CmdbError::Forbidden(_)) => return forbidden(t),
        Err(CmdbError::NotFound) => return not_found(t),
        Err(e) => return failed(t, "CI", e),
    };
    let notice = q.done.as_deref().map(|d| format!("cmdb-done-{d}")).filter(|k| t.try_get(k).is_some());
    render_ci(&state, &s, stored_card(&ci, Vec::new(), notice)).await
}

async fn update(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_operate(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = posted_form(&f);
    let version = form_value(&f, "version").parse().unwrap_or(0);
    let card = |errors, form| Card {
        id: Some(id),
        version,
        form,
        platform: false,
        updated: String::new(),
        errors,
        notice: None,
    };
    if form_value(&f, "redraw") == "1" {
        return render_ci(&state, &s, card(Vec::new(), form)).await;
    }
    match state.cmdb.update(&s.info.caller, id, version, &form).await {
        Ok(_) => see_other(&format!("/ops/cis/{id}?done=saved")),
        Err(CmdbError::Forbidden(_)) => forbidden(s.t),
        Err(CmdbError::NotFound) => not_found(s.t),
        Err(CmdbError::Invalid(errors)) => {
            let errors = error_rows(s.t, &errors);
            render_ci(&state, &s, card(errors, form)).await
        }
        Err(CmdbError::Changed) => {
            let errors = vec![("version".to_string(), s.t.get("cmdb-changed").to_string())];
            render_ci(&state, &s, card(errors, form)).await
        }
        Err(e) => failed(s.t, "CI update", e),
    }
}

async fn relate(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_operate(&s.info.caller) {
        return forbidden(s.t);
    }
    let caller = &s.info.caller;
    let target = match state.cmdb.by_code(caller, value("target").trim()).await {
        Ok(c) => Ok(c.id),
        Err(CmdbError::NotFound) => Err(CmdbError::Invalid(vec![FieldError {
            row: None,
            field: "target".into(),
            rule: "unknown",
            detail: format!("no configuration item {}", value("target").trim()),
        }])),
        Err(e) => Err(e),
    };
    let done = match target {
        Ok(target) if value("way") == "in" => state.cmdb.relate(caller, target, &value("kind"), id).await,
        Ok(target) => state.cmdb.relate(caller, id, &value("kind"), target).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => see_other(&format!("/ops/cis/{id}?done=related#relations")),
        Err(CmdbError::Forbidden(_)) => forbidden(s.t),
        Err(CmdbError::Invalid(errors)) => {
            let ci = match state.cmdb.get(caller, id).await {
                Ok(c) => c,
                Err(e) => return failed(s.t, "CI", e),
            };
            render_ci(&state, &s, stored_card(&ci, error_rows(s.t, &errors), None)).await
        }
        Err(CmdbError::NotFound) => not_found(s.t),
        Err(e) => failed(s.t, "CI relate", e),
    }
}

async fn unrelate(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_operate(&s.info.caller) {
        return forbidden(s.t);
    }
    let (source, target) = (value("source").parse().unwrap_or(0), value("target").parse().unwrap_or(0));
    match state.cmdb.unrelate(&s.info.caller, source, &value("kind"), target).await {
        Ok(()) => see_other(&format!("/ops/cis/{id}?done=unrelated#relations")),
        Err(CmdbError::Forbidden(_)) => forbidden(s.t),
        Err(CmdbError::NotFound) => not_found(s.t),
        Err(e) => failed(s.t, "CI unrelate", e),
    }
}

// ---- Impact --------------------------------------------------------------------------

/// A node of the drawn graph.
struct Node {
    id: i64,
    x: i64,
    y: i64,
    label: String,
    class: String,
    start: bool,
    /// How it stands in monitoring ([`lianyi_ops::monitor::Standing`]), and its name.
    standing: &'static str,
    standing_name: String,
}

/// An edge of the drawn graph: from (x1, y1) to (x2, y2).
struct Edge {
    x1: i64,
    y1: i64,
    x2: i64,
    y2: i64,
    kind: String,
}

/// At most this many CIs are drawn (the lists below the graph have them all).
const DRAWN: usize = 120;
const COL: i64 = 230;
const ROW: i64 = 46;

fn layout(impact: &Impact) -> (Vec<Node>, Vec<Edge>, i64, i64) {
    let mut per_depth: Vec<i64> = Vec::new();
    let mut at: std::collections::HashMap<i64, (i64, i64)> = std::collections::HashMap::new();
    let mut nodes = Vec::new();
    let label = |c: &Ci| {
        let name: String = c.name.chars().take(22).collect();
        if name.chars().count() < c.name.chars().count() { format!("{name}…") } else { name }
    };
    let mut place = |depth: usize, c: &Ci, start: bool, nodes: &mut Vec<Node>| {
        if per_depth.len() <= depth {
            per_depth.resize(depth + 1, 0);
        }
        let (x, y) = (depth as i64 * COL + 10, per_depth[depth] * ROW + 10);
        per_depth[depth] += 1;
        at.insert(c.id, (x, y));
        let (standing, standing_name) = ("unmonitored", String::new());
        nodes.push(Node { id: c.id, x, y, label: label(c), class: c.class.clone(), start, standing, standing_name });
    };
    place(0, &impact.start, true, &mut nodes);
    for r in impact.reached.iter().take(DRAWN) {
        place(r.depth.min(64), &r.ci, false, &mut nodes);
    }
    let edges = impact
        .relations
        .iter()
        .filter_map(|r| {
            // Drawn from the failing end to what it stops (or from the CI to what it needs).
            let (from, to) = match impact.way {
                Walk::Impacted => (r.target, r.source),
                Walk::Needs => (r.source, r.target),
            };
            let (a, b) = (at.get(&from)?, at.get(&to)?);
            Some(Edge { x1: a.0 + 190, y1: a.1 + 17, x2: b.0, y2: b.1 + 17, kind: r.kind.clone() })
        })
        .collect();
    let width = per_depth.len() as i64 * COL + 20;
    let height = per_depth.iter().copied().max().unwrap_or(1) * ROW + 20;
    (nodes, edges, width, height)
}

#[derive(Template)]
#[template(path = "ops/impact.html")]
struct ImpactPage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: i64,
    start: String,
    needs: bool,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    width: i64,
    height: i64,
    drawn_all: bool,
    /// Whether the nodes carry monitoring's colours (and the legend shows).
    coloured: bool,
    legend: Vec<(&'static str, String)>,
    systems: Vec<(i64, String)>,
    services: Vec<(i64, String)>,
    campuses: Vec<String>,
    /// (depth, id, code · name, class)
    reached: Vec<(usize, i64, String, String)>,
}

#[derive(Deserialize, Default)]
struct ImpactQuery {
    way: Option<String>,
}

async fn impact_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<ImpactQuery>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let way = if q.way.as_deref() == Some("needs") { Walk::Needs } else { Walk::Impacted };
    let impact = match state.cmdb.impact(&info.caller, id, way, 100_000).await {
        Ok(i) => i,
        Err(CmdbError::Forbidden(_)) => return forbidden(t),
        Err(CmdbError::NotFound) => return not_found(t),
        Err(e) => return failed(t, "impact", e),
    };
    let shell = shell(&state, info, t, &s.headers).await;
    let (mut nodes, edges, width, height) = layout(&impact);
    // Status colours for those who may see monitoring.
    let ids: Vec<i64> = nodes.iter().map(|n| n.id).collect();
    let coloured = match state.monitor.standing(&info.caller, &ids).await {
        Ok(standing) => {
            for n in &mut nodes {
                let s = standing.get(&n.id).copied().unwrap_or(lianyi_ops::monitor::Standing::Unmonitored);
                n.standing = s.as_str();
                n.standing_name = t.named("mon-standing", s.as_str());
            }
            true
        }
        Err(lianyi_ops::monitor::MonitorError::Forbidden(_)) => false,
        Err(e) => return failed(t, "impact standing", e),
    };
    let named = |c: &Ci| (c.id, format!("{} · {}", c.code, c.name));
    let mut campuses = Vec::new();
    for c in &impact.campuses {
        campuses.push(campus_name(&state, c, t).await);
    }
    page(
        ImpactPage {
            t,
            shell: &shell,
            id,
            start: format!("{} · {}", impact.start.code, impact.start.name),
            needs: way == Walk::Needs,
            drawn_all: impact.reached.len() <= DRAWN,
            coloured,
            legend: ["down", "warning", "maintenance", "affected", "up", "unmonitored"]
                .into_iter()
                .map(|s| (s, t.named("mon-standing", s)))
                .collect(),
            nodes,
            edges,
            width,
            height,
            systems: impact.of_class("business-system").map(named).collect(),
            services: impact.of_class("clinical-service").map(named).collect(),
            campuses,
            reached: impact
                .reached
                .iter()
                .map(|r| {
                    (r.depth, r.ci.id, format!("{} · {}", r.ci.code, r.ci.name), t.named("cmdb-class", &r.ci.class))
                })
                .collect(),
        }
        .render(),
    )
}

// ---- Import and export -----------------------------------------------------------------

#[derive(Template)]
#[template(path = "ops/import.html")]
struct ImportPage<'a> {
    t: Tr,
    shell: &'a Shell,
    csv: String,
    errors: Vec<(String, String)>,
    columns: String,
}

async fn render_import(state: &AppState, s: &Signed, csv: String, errors: Vec<(String, String)>) -> Response {
    let shell = shell(state, &s.info, s.t, &s.headers).await;
    let columns = lianyi_ops::cmdb::CSV_COLUMNS.join(",") + ",attr:…,relations";
    page(ImportPage { t: s.t, shell: &shell, csv, errors, columns }.render())
}

async fn import_page(State(state): State<AppState>, s: Signed) -> Response {
    if !may_operate(&s.info.caller) {
        return forbidden(s.t);
    }
    render_import(&state, &s, String::new(), Vec::new()).await
}

async fn import(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_operate(&s.info.caller) {
        return forbidden(s.t);
    }
    let csv = form_value(&f, "csv");
    match state.cmdb.import_csv(&s.info.caller, &csv).await {
        Ok(done) => see_other(&format!("/ops/cis?done=imported&n={}", done.cis)),
        Err(CmdbError::Forbidden(_)) => forbidden(s.t),
        Err(CmdbError::Invalid(errors)) => {
            let errors = error_rows(s.t, &errors);
            render_import(&state, &s, csv, errors).await
        }
        Err(e) => failed(s.t, "CI import", e),
    }
}

async fn export(State(state): State<AppState>, s: Signed) -> Response {
    match state.cmdb.export_csv(&s.info.caller).await {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"cmdb.csv\""),
                (header::CACHE_CONTROL, "no-store"),
            ],
            format!("\u{feff}{csv}"),
        )
            .into_response(),
        Err(CmdbError::Forbidden(_)) => forbidden(s.t),
        Err(e) => failed(s.t, "CI export", e),
    }
}
