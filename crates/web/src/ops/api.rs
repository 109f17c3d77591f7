//! `/api/ops`: the configuration database as JSON, for a bearer token with the
//! `lianyi:ops` scope word (or an IT engineer's). Errors are `{"error": …}` with, for
//! broken rules, `"errors": [{"row", "field", "rule", "detail"}]`.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lianyi_ops::cmdb::{CiForm, CmdbError, Impact};
use lianyi_store::cmdb::{Ci, CiQuery, Relation, Walk};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::ui::auth::RemoteCaller;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ops/cis", get(list).post(create))
        .route("/api/ops/cis/import", axum::routing::post(import))
        .route("/api/ops/cis/{id}", get(read))
        .route("/api/ops/cis/{id}/impact", get(impact))
        .route("/api/ops/relations", get(relations).post(relate))
        .route("/api/ops/incidents", get(incidents).post(report))
        .route("/api/ops/incidents/{id}", get(incident))
        .route("/api/ops/problems", get(problems).post(open_problem))
        .route("/api/ops/problems/{id}", get(problem))
        .route("/api/ops/changes", get(changes).post(request_change))
        .route("/api/ops/changes/{id}", get(change))
        .route("/api/ops/stats", get(stats))
}

pub(super) fn error(e: CmdbError) -> Response {
    let status = match &e {
        CmdbError::Forbidden(_) => StatusCode::FORBIDDEN,
        CmdbError::NotFound => StatusCode::NOT_FOUND,
        CmdbError::Changed => StatusCode::CONFLICT,
        CmdbError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => {
            tracing::error!(error = %e, "ops API failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "internal error"}))).into_response();
        }
    };
    let errors = if let CmdbError::Invalid(errors) = &e { errors.as_slice() } else { &[] };
    (status, Json(refusal(e.to_string(), errors))).into_response()
}

/// The body every ops API answers a refusal with: `{"error": …}` and, for broken
/// rules, `"errors": [{"row", "field", "rule", "detail"}]`.
pub(super) fn refusal(message: String, errors: &[lianyi_ops::cmdb::FieldError]) -> Value {
    let mut body = json!({"error": message});
    if !errors.is_empty() {
        body["errors"] = json!(
            errors
                .iter()
                .map(|e| json!({"row": e.row, "field": e.field, "rule": e.rule, "detail": e.detail}))
                .collect::<Vec<_>>()
        );
    }
    body
}

fn answer<T>(r: Result<T, CmdbError>, body: impl FnOnce(T) -> Value) -> Response {
    match r {
        Ok(x) => Json(body(x)).into_response(),
        Err(e) => error(e),
    }
}

pub(super) fn time(ms: i64) -> Value {
    json!(lianyi_fhir::datetime::format_instant(ms))
}

pub(super) fn ci_json(c: &Ci) -> Value {
    json!({
        "id": c.id, "code": c.code, "name": c.name, "class": c.class, "campus": c.campus, "location": c.location,
        "status": c.status, "owner": c.owner, "supportGroup": c.support_group, "supplier": c.supplier,
        "warrantyEnd": c.warranty_end, "contractEnd": c.contract_end,
        "attributes": serde_json::from_str::<Value>(&c.attrs).unwrap_or(Value::Null),
        "managedBy": c.managed_by, "version": c.version, "updated": time(c.updated_at), "updatedBy": c.updated_by,
    })
}

fn relation_json(r: &Relation) -> Value {
    json!({"source": r.source, "kind": r.kind, "target": r.target})
}

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    class: Option<String>,
    campus: Option<String>,
    status: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    limit: Option<i64>,
    /// `true`: also count every match.
    total: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<ListQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    // `next` is `<id>:<name>` of the last row.
    let after = q
        .after
        .as_deref()
        .and_then(|a| a.split_once(':'))
        .and_then(|(id, name)| Some((name.to_string(), id.parse().ok()?)));
    let query = CiQuery { class: q.class, campus: q.campus, status: q.status, text: q.q, after, limit };
    answer(state.cmdb.list(&caller, &query, q.total.unwrap_or(false)).await, |(rows, total)| {
        let next = (rows.len() as i64 == limit).then(|| rows.last().map(|c| format!("{}:{}", c.id, c.name))).flatten();
        json!({"items": rows.iter().map(ci_json).collect::<Vec<_>>(), "next": next, "total": total})
    })
}

pub(super) fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

async fn create(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Json(v): Json<Value>) -> Response {
    let form = CiForm {
        code: text(&v, "code"),
        name: text(&v, "name"),
        class: text(&v, "class"),
        campus: text(&v, "campus"),
        location: text(&v, "location"),
        status: text(&v, "status"),
        owner: text(&v, "owner"),
        support_group: text(&v, "supportGroup"),
        supplier: text(&v, "supplier"),
        warranty_end: text(&v, "warrantyEnd"),
        contract_end: text(&v, "contractEnd"),
        attrs: v
            .get("attributes")
            .and_then(Value::as_object)
            .map(|o| o.keys().map(|k| (k.clone(), text(&v["attributes"], k))).collect())
            .unwrap_or_default(),
    };
    match state.cmdb.create(&caller, &form).await {
        Ok(id) => match state.cmdb.get(&caller, id).await {
            Ok(c) => {
                (StatusCode::CREATED, [("location", format!("/api/ops/cis/{id}"))], Json(ci_json(&c))).into_response()
            }
            Err(e) => error(e),
        },
        Err(e) => error(e),
    }
}

async fn read(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Path(id): Path<i64>) -> Response {
    let ci = match state.cmdb.get(&caller, id).await {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    answer(state.cmdb.relations(&caller, id).await, |rels| {
        let mut v = ci_json(&ci);
        v["relations"] = json!(rels.iter().map(|(r, _)| relation_json(r)).collect::<Vec<_>>());
        v
    })
}

#[derive(Deserialize, Default)]
struct ImpactQuery {
    /// `impacted` (default) or `needs`.
    way: Option<String>,
}

/// A CI in an impact answer: thousands of them for a core device, so written
/// straight from borrowed fields rather than through `Value`s.
#[derive(Serialize)]
struct Brief<'a> {
    id: i64,
    code: &'a str,
    name: &'a str,
    class: &'a str,
    campus: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<usize>,
}

impl<'a> Brief<'a> {
    fn of(c: &'a Ci, depth: Option<usize>) -> Self {
        Brief { id: c.id, code: &c.code, name: &c.name, class: &c.class, campus: c.campus.as_deref(), depth }
    }
}

#[derive(Serialize)]
struct RelationOut<'a> {
    source: i64,
    kind: &'a str,
    target: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImpactOut<'a> {
    start: Value,
    way: &'static str,
    reached: Vec<Brief<'a>>,
    relations: Vec<RelationOut<'a>>,
    business_systems: Vec<Brief<'a>>,
    clinical_services: Vec<Brief<'a>>,
    campuses: &'a BTreeSet<String>,
}

fn impact_out(i: &Impact) -> ImpactOut<'_> {
    ImpactOut {
        start: ci_json(&i.start),
        way: if i.way == Walk::Needs { "needs" } else { "impacted" },
        reached: i.reached.iter().map(|r| Brief::of(&r.ci, Some(r.depth))).collect(),
        relations: i
            .relations
            .iter()
            .map(|r| RelationOut { source: r.source, kind: &r.kind, target: r.target })
            .collect(),
        business_systems: i.of_class("business-system").map(|c| Brief::of(c, None)).collect(),
        clinical_services: i.of_class("clinical-service").map(|c| Brief::of(c, None)).collect(),
        campuses: &i.campuses,
    }
}

async fn impact(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<i64>,
    Query(q): Query<ImpactQuery>,
) -> Response {
    let way = match q.way.as_deref() {
        None | Some("impacted") => Walk::Impacted,
        Some("needs") => Walk::Needs,
        Some(_) => {
            let e = CmdbError::Invalid(vec![lianyi_ops::cmdb::FieldError {
                row: None,
                field: "way".into(),
                rule: "choice",
                detail: "impacted or needs".into(),
            }]);
            return error(e);
        }
    };
    match state.cmdb.impact(&caller, id, way, 100_000).await {
        Ok(i) => Json(impact_out(&i)).into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize, Default)]
struct RelationsQuery {
    ci: Option<i64>,
}

async fn relations(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<RelationsQuery>,
) -> Response {
    let Some(id) = q.ci else {
        let e = CmdbError::Invalid(vec![lianyi_ops::cmdb::FieldError {
            row: None,
            field: "ci".into(),
            rule: "required",
            detail: "the CI whose relations are listed (?ci=ID)".into(),
        }]);
        return error(e);
    };
    answer(
        state.cmdb.relations(&caller, id).await,
        |rels| json!({"relations": rels.iter().map(|(r, _)| relation_json(r)).collect::<Vec<_>>()}),
    )
}

async fn relate(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Json(v): Json<Value>) -> Response {
    let (source, target) = (v["source"].as_i64().unwrap_or(0), v["target"].as_i64().unwrap_or(0));
    let kind = v["kind"].as_str().unwrap_or_default();
    match state.cmdb.relate(&caller, source, kind, target).await {
        Ok(()) => {
            (StatusCode::CREATED, Json(json!({"source": source, "kind": kind, "target": target}))).into_response()
        }
        Err(e) => error(e),
    }
}

/// `POST /api/ops/cis/import` with a CSV body (the page's format): all rows or none.
async fn import(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, body: String) -> Response {
    match state.cmdb.import_csv(&caller, &body).await {
        Ok(done) => (StatusCode::CREATED, Json(json!({"cis": done.cis, "relations": done.relations}))).into_response(),
        Err(e) => error(e),
    }
}

fn desk_error(e: lianyi_ops::desk::DeskError) -> Response {
    use lianyi_ops::desk::DeskError;
    match e {
        DeskError::Forbidden(m) => error(CmdbError::Forbidden(m)),
        DeskError::NotFound => error(CmdbError::NotFound),
        DeskError::Changed => error(CmdbError::Changed),
        DeskError::Invalid(errors) => error(CmdbError::Invalid(errors)),
        other => {
            tracing::error!(error = %other, "ops API failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "internal error"}))).into_response()
        }
    }
}

fn clock_json(c: &lianyi_ops::desk::Clock) -> Value {
    json!({"state": format!("{:?}", c.state).to_lowercase(), "due": c.due.map(time), "elapsedMinutes": c.elapsed_ms / 60_000,
           "targetMinutes": c.target_ms / 60_000})
}

fn ticket_json(t: &lianyi_store::desk::Ticket) -> Value {
    json!({
        "id": t.id, "title": t.title, "description": t.description, "category": t.category, "campus": t.campus,
        "location": t.location, "ci": t.ci, "reporter": t.reporter, "reporterName": t.reporter_name,
        "channel": t.channel, "impact": t.impact, "urgency": t.urgency, "priority": t.priority,
        "calendar": t.calendar, "status": t.status, "supportGroup": t.support_group, "assignee": t.assignee,
        "opened": time(t.opened_at), "responded": t.responded_at.map(time), "resolved": t.resolved_at.map(time),
        "closed": t.closed_at.map(time), "resolution": t.resolution, "satisfaction": t.satisfaction,
        "version": t.version,
    })
}

#[derive(Deserialize, Default)]
struct IncidentsQuery {
    /// `all` (default), `groups`, `mine` or `reported`.
    view: Option<String>,
    /// Words every ticket shown has (title, details, resolution).
    q: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

async fn incidents(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<IncidentsQuery>,
) -> Response {
    use lianyi_ops::desk::View;
    let view = match q.view.as_deref() {
        None | Some("all") => View::All,
        Some("groups") => View::Groups,
        Some("mine") => View::Mine,
        Some("reported") => View::Reported,
        Some(_) => {
            return error(CmdbError::Invalid(vec![lianyi_ops::cmdb::FieldError {
                row: None,
                field: "view".into(),
                rule: "choice",
                detail: "all, groups, mine or reported".into(),
            }]));
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    match state.desk.list(&caller, view, q.q.as_deref().unwrap_or_default(), q.before, limit).await {
        Ok(rows) => {
            let next = (rows.len() as i64 == limit).then(|| rows.last().map(|(t, _)| t.id)).flatten();
            let items: Vec<Value> = rows
                .iter()
                .map(|(t, c)| {
                    let mut v = ticket_json(t);
                    v["resolutionClock"] = clock_json(c);
                    v
                })
                .collect();
            Json(json!({"items": items, "nextBefore": next})).into_response()
        }
        Err(e) => desk_error(e),
    }
}

async fn report(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Json(v): Json<Value>) -> Response {
    let r = lianyi_ops::desk::Report {
        title: text(&v, "title"),
        description: text(&v, "description"),
        category: text(&v, "category"),
        ci: text(&v, "ci"),
        campus: text(&v, "campus"),
        location: text(&v, "location"),
        impact: text(&v, "impact"),
        urgency: text(&v, "urgency"),
        caller_name: text(&v, "callerName"),
    };
    match state.desk.report(&caller, &r).await {
        Ok(id) => match state.desk.card(&caller, id).await {
            Ok(c) => {
                (StatusCode::CREATED, [("location", format!("/api/ops/incidents/{id}"))], Json(ticket_json(&c.ticket)))
                    .into_response()
            }
            Err(e) => desk_error(e),
        },
        Err(e) => desk_error(e),
    }
}

async fn incident(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Path(id): Path<i64>) -> Response {
    match state.desk.card(&caller, id).await {
        Ok(c) => {
            let mut v = ticket_json(&c.ticket);
            v["responseClock"] = clock_json(&c.response);
            v["resolutionClock"] = clock_json(&c.resolution);
            v["events"] = json!(
                c.events
                    .iter()
                    .map(|e| json!({"at": time(e.at), "actor": e.actor, "kind": e.kind, "detail": e.detail}))
                    .collect::<Vec<_>>()
            );
            Json(v).into_response()
        }
        Err(e) => desk_error(e),
    }
}

#[derive(Deserialize, Default)]
struct PageQuery {
    /// Problems: `all` for every one, else the open ones.
    view: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

fn problem_json(p: &lianyi_store::problems::Problem) -> Value {
    json!({
        "id": p.id, "title": p.title, "description": p.description, "status": p.status, "priority": p.priority,
        "ci": p.ci, "supportGroup": p.support_group, "assignee": p.assignee, "rootCause": p.root_cause,
        "workaround": p.workaround, "knownError": p.known_error, "openedBy": p.opened_by,
        "opened": time(p.opened_at), "resolved": p.resolved_at.map(time), "version": p.version,
    })
}

async fn problems(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<PageQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let open = q.view.as_deref() != Some("all");
    match state.problems.list(&caller, open, q.before, limit).await {
        Ok(rows) => {
            let next = (rows.len() as i64 == limit).then(|| rows.last().map(|p| p.id)).flatten();
            Json(json!({"items": rows.iter().map(problem_json).collect::<Vec<_>>(), "nextBefore": next}))
                .into_response()
        }
        Err(e) => desk_error(e),
    }
}

async fn problem(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Path(id): Path<i64>) -> Response {
    match state.problems.card(&caller, id).await {
        Ok(c) => {
            let mut v = problem_json(&c.problem);
            v["incidents"] = json!(c.incidents.iter().map(|t| t.id).collect::<Vec<_>>());
            Json(v).into_response()
        }
        Err(e) => desk_error(e),
    }
}

async fn open_problem(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Json(v): Json<Value>,
) -> Response {
    let f = lianyi_ops::problems::ProblemForm {
        title: text(&v, "title"),
        description: text(&v, "description"),
        ticket: text(&v, "incident"),
        priority: text(&v, "priority"),
        support_group: text(&v, "supportGroup"),
    };
    match state.problems.open(&caller, &f).await {
        Ok(id) => match state.problems.card(&caller, id).await {
            Ok(c) => {
                (StatusCode::CREATED, [("location", format!("/api/ops/problems/{id}"))], Json(problem_json(&c.problem)))
                    .into_response()
            }
            Err(e) => desk_error(e),
        },
        Err(e) => desk_error(e),
    }
}

fn change_json(c: &lianyi_store::changes::Change) -> Value {
    json!({
        "id": c.id, "title": c.title, "description": c.description, "class": c.class, "risk": c.risk,
        "backoutPlan": c.backout_plan, "status": c.status, "requester": c.requester,
        "windowStart": time(c.window_start), "windowEnd": time(c.window_end), "outcome": c.outcome,
        "review": c.review, "created": time(c.created_at), "version": c.version,
    })
}

async fn changes(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<PageQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    match state.changes.list(&caller, q.before, limit).await {
        Ok(rows) => {
            let next = (rows.len() as i64 == limit).then(|| rows.last().map(|c| c.id)).flatten();
            Json(json!({"items": rows.iter().map(change_json).collect::<Vec<_>>(), "nextBefore": next})).into_response()
        }
        Err(e) => desk_error(e),
    }
}

async fn change_card(
    state: &AppState,
    caller: &lianyi_security::Caller,
    id: i64,
) -> Result<Value, lianyi_ops::desk::DeskError> {
    let c = state.changes.card(caller, id).await?;
    let mut v = change_json(&c.change);
    v["cis"] = json!(c.cis.iter().map(|ci| json!({"id": ci.id, "code": ci.code, "name": ci.name})).collect::<Vec<_>>());
    v["affects"] = json!({
        "services": c.affected.services.iter().map(|ci| json!({"id": ci.id, "code": ci.code, "name": ci.name, "class": ci.class})).collect::<Vec<_>>(),
        "campuses": c.affected.campuses,
    });
    v["board"] = json!(c.board);
    v["waitingFor"] = json!(c.waiting);
    v["approvals"] = json!(
        c.approvals
            .iter()
            .map(|a| json!({"approver": a.approver, "decision": a.decision, "comment": a.comment, "at": time(a.at)}))
            .collect::<Vec<_>>()
    );
    v["conflicts"] =
        json!(c.conflicts.iter().map(|x| json!({"change": x.other.id, "shared": x.shared})).collect::<Vec<_>>());
    Ok(v)
}

async fn change(State(state): State<AppState>, RemoteCaller(caller): RemoteCaller, Path(id): Path<i64>) -> Response {
    match change_card(&state, &caller, id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => desk_error(e),
    }
}

/// A change request: `windowStart`/`windowEnd` in Beijing time `YYYY-MM-DDTHH:MM`,
/// `cis` the codes of the items it touches.
async fn request_change(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Json(v): Json<Value>,
) -> Response {
    let f = lianyi_ops::changes::ChangeForm {
        title: text(&v, "title"),
        description: text(&v, "description"),
        class: text(&v, "class"),
        risk: text(&v, "risk"),
        backout_plan: text(&v, "backoutPlan"),
        window_start: text(&v, "windowStart"),
        window_end: text(&v, "windowEnd"),
        cis: v["cis"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
    };
    match state.changes.request(&caller, &f).await {
        Ok(id) => match change_card(&state, &caller, id).await {
            Ok(v) => (StatusCode::CREATED, [("location", format!("/api/ops/changes/{id}"))], Json(v)).into_response(),
            Err(e) => desk_error(e),
        },
        Err(e) => desk_error(e),
    }
}

/// The statistics of a period (`from`, `to`: Beijing dates, the last 30 days by
/// default; `days`: the recurrence window).
async fn stats(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Query(q): Query<super::stats::PeriodQuery>,
) -> Response {
    let (from, to, from_text, to_text) = super::stats::period(state.fhir.now_ms(), &q);
    let r = match state.stats.report(&caller, from, to, q.days.unwrap_or(30)).await {
        Ok(r) => r,
        Err(e) => return desk_error(e),
    };
    let pairs = |v: &[(String, usize)]| v.iter().map(|(k, n)| json!({"code": k, "count": n})).collect::<Vec<_>>();
    let sla = |(met, of): (usize, usize)| json!({"met": met, "decided": of});
    Json(json!({
        "from": from_text, "to": to_text, "recurrenceDays": r.recurrence_days,
        "total": r.total, "resolved": r.resolved,
        "byCategory": pairs(&r.by_category), "byCiClass": pairs(&r.by_class), "byCampus": pairs(&r.by_campus),
        "byPriority": r.by_priority.iter().map(|(p, n)| json!({"priority": p, "count": n})).collect::<Vec<_>>(),
        "byDay": r.by_day.iter().map(|(d, n)| json!({"date": &lianyi_fhir::datetime::format_instant(d * 86_400_000)[..10], "count": n})).collect::<Vec<_>>(),
        "mttaMinutes": r.mtta_minutes, "mttrMinutes": r.mttr_minutes,
        "responseSla": sla(r.response_sla), "resolutionSla": sla(r.resolution_sla),
        "recurring": r.recurring.iter().map(|x| json!({"ci": x.ci, "code": x.code, "name": x.name, "class": x.class, "faults": x.faults, "repeats": x.repeats})).collect::<Vec<_>>(),
        "engineers": r.engineers.as_ref().map(|list| list.iter().map(|e| json!({
            "engineer": e.name, "taken": e.taken, "resolved": e.resolved, "minutesLogged": e.minutes,
            "firstTimeFixes": e.first_time_fixes, "reopened": e.reopened,
            "satisfactionTenths": e.satisfaction_tenths(), "satisfactionScores": e.satisfaction_count,
        })).collect::<Vec<_>>()),
    }))
    .into_response()
}
