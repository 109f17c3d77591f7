//! Results pages: the laboratory's and radiology's worklist of open requests, the
//! entry form (values with units and reference intervals, or a narrative report),
//! and a test's trend over time as a server-rendered SVG chart.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lianyi_security::{Caller, Perm};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell, staff_may};
use lianyi_clinical::registry::RegistryError;
use lianyi_clinical::results::{Analyte, ResultDraft, analyte, analytes_of};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/results", get(worklist))
        .route("/results/{request}", get(entry_form).post(entry_submit))
        .route("/patients/{id}/trends/{loinc}", get(trend_page))
}

/// Whether the caller reports results (laboratory, radiology).
pub(super) fn may_report(caller: &Caller) -> bool {
    lianyi_clinical::results::may_report(caller)
}

/// The patient's name and sex (FHIR gender), from one read under the record rule.
async fn patient_facts(state: &AppState, caller: &Caller, patient: &str) -> (String, Option<String>) {
    match state.record.open(caller, patient).await {
        Ok((_, p)) => {
            let person = lianyi_clinical::registry::person_of(&p);
            (person.name, person.gender)
        }
        Err(_) => (String::new(), None),
    }
}

struct WorkRow {
    id: String,
    placer: String,
    patient: String,
    item: String,
    priority: String,
    authored: String,
}

#[derive(Template)]
#[template(path = "clinic/results.html")]
struct WorklistPage<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<WorkRow>,
    done: Option<String>,
    /// The priority shown (empty: all).
    priority: String,
}

#[derive(Deserialize, Default)]
struct WorklistQuery {
    done: Option<String>,
    priority: Option<String>,
}

const PRIORITIES: [&str; 3] = ["stat", "urgent", "routine"];

async fn worklist(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Query(q): Query<WorklistQuery>,
) -> Response {
    let caller = &info.caller;
    if !may_report(caller) {
        return forbidden(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    let category = match (
        caller.access().allows("ImagingStudy", Perm::Create),
        caller.access().allows("Specimen", Perm::Create),
    ) {
        (true, false) => Some("imaging"),
        (false, true) => Some("laboratory"),
        _ => None,
    };
    let priority = q.priority.filter(|p| PRIORITIES.contains(&p.as_str())).unwrap_or_default();
    let mut rows = Vec::new();
    let pending = state.results.pending(caller, category).await.unwrap_or_default();
    for p in pending.into_iter().filter(|p| priority.is_empty() || p.priority == priority) {
        let item = lianyi_clinical::orders::item(&p.order).map_or(p.order.clone(), |i| t.pick(i.zh, i.en).to_string());
        rows.push(WorkRow {
            patient: patient_facts(&state, caller, &p.patient).await.0,
            id: p.id,
            placer: p.placer,
            item,
            priority: format!("order-priority-{}", p.priority),
            authored: p.authored,
        });
    }
    page(WorklistPage { t, shell: &shell, rows, done: q.done, priority }.render())
}

struct ItemRow {
    loinc: String,
    name: String,
    unit: String,
    interval: String,
    value: String,
}

#[derive(Template)]
#[template(path = "clinic/result_entry.html")]
struct EntryPage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: String,
    placer: String,
    patient: String,
    item: String,
    items: Vec<ItemRow>,
    findings: String,
    conclusion: String,
    errors: Vec<String>,
}

async fn render_entry(state: &AppState, s: &Signed, id: &str, form: &ResultDraft, errors: Vec<String>) -> Response {
    let (info, headers, t) = (&s.info, &s.headers, s.t);
    let caller = &info.caller;
    let Ok(request) = state.results.request(caller, id).await else { return not_found(t) };
    let order = request.order.clone();
    let shell = shell(state, info, t, headers).await;
    let (patient, sex) = patient_facts(state, caller, &request.patient).await;
    let items = analytes_of(&order)
        .into_iter()
        .map(|a: &Analyte| ItemRow {
            loinc: a.loinc.to_string(),
            name: t.pick(a.zh, a.en).to_string(),
            unit: a.unit.to_string(),
            interval: a.interval_text(sex.as_deref()),
            value: form.values.iter().find(|(l, _)| l == a.loinc).map(|(_, v)| v.clone()).unwrap_or_default(),
        })
        .collect();
    page(
        EntryPage {
            t,
            shell: &shell,
            id: id.to_string(),
            placer: request.placer,
            patient,
            item: lianyi_clinical::orders::item(&order).map_or(order.clone(), |i| t.pick(i.zh, i.en).to_string()),
            items,
            findings: form.findings.clone(),
            conclusion: form.conclusion.clone(),
            errors,
        }
        .render(),
    )
}

async fn entry_form(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> Response {
    let (info, _headers) = (&s.info, &s.headers);
    if !may_report(&info.caller) {
        return s.forbidden();
    }
    render_entry(&state, &s, &id, &ResultDraft::default(), Vec::new()).await
}

/// The form's fields: `csrf`, `findings`, `conclusion` and one `v-<LOINC>` per item.
async fn entry_submit(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let (info, t, _headers) = (&s.info, s.t, &s.headers);
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
    if !may_report(&info.caller) || !lianyi_security::secrets::constant_time_eq(&info.csrf, csrf) {
        return forbidden(t);
    }
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let draft = ResultDraft {
        values: fields
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("v-").map(|loinc| (loinc.to_string(), v.clone())))
            .collect(),
        findings: field("findings"),
        conclusion: field("conclusion"),
    };
    match state.results.enter(&info.caller, &id, &draft, &info.user.display_name).await {
        // The viewer's report form comes back to the study it was written beside.
        Ok(report) => match field("back") {
            back if back.starts_with("/imaging/studies/") && !back.contains(['\\', '?', '#']) => see_other(&back),
            _ => see_other(&format!("/results?done={report}")),
        },
        Err(RegistryError::Invalid(errors)) => {
            let mut texts = Vec::new();
            for e in &errors {
                if e.code == "number" {
                    // Each value that is not a number, named in the page's language.
                    for (loinc, typed) in &draft.values {
                        if !typed.trim().is_empty() && lianyi_clinical::results::parse_value(typed).is_none() {
                            let name = analyte(loinc).map_or(loinc.as_str(), |a| t.pick(a.zh, a.en));
                            texts.push(format!("{}: {name} — “{}”", t.get("result-error-number"), typed.trim()));
                        }
                    }
                    continue;
                }
                let key = match e.code {
                    "result-item"
                    | "result-required"
                    | "conclusion-required"
                    | "too-long"
                    | "not-active"
                    | "order-unknown" => format!("result-error-{}", e.code),
                    _ => "result-error-failed".to_string(),
                };
                texts.push(t.get(&key).to_string());
            }
            texts.dedup();
            render_entry(&state, &s, &id, &draft, texts).await
        }
        Err(RegistryError::Forbidden(_)) => forbidden(t),
        Err(e) => {
            tracing::warn!(error = %e, "entering results failed");
            let texts = vec![t.get("result-error-failed").to_string()];
            render_entry(&state, &s, &id, &draft, texts).await
        }
    }
}

#[derive(Template)]
#[template(path = "clinic/trend.html")]
struct TrendPage<'a> {
    t: Tr,
    shell: &'a Shell,
    patient_id: String,
    patient: String,
    name: String,
    unit: String,
    interval: String,
    svg: String,
    /// (when, value, flag) newest first.
    rows: Vec<(String, String, String)>,
}

/// `/patients/{id}/trends/{loinc}`: one test's results over time, across campuses.
async fn trend_page(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Path((id, loinc)): Path<(String, String)>,
) -> Response {
    let caller = &info.caller;
    if !staff_may(caller, "Observation", Perm::Search) {
        return forbidden(t);
    }
    let (care, p) = match state.record.open(caller, &id).await {
        Ok(x) => x,
        Err(RegistryError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let person = lianyi_clinical::registry::person_of(&p);
    let (patient, sex) = (person.name, person.gender);
    let shell = shell(&state, &info, t, &headers).await;
    let points = state.results.series(&care, &id, &loinc, 100).await;
    let known = analyte(&loinc);
    let name = known.map_or(loinc.clone(), |a| t.pick(a.zh, a.en).to_string());
    let unit = known.map(|a| a.unit.to_string()).or_else(|| points.first().map(|p| p.unit.clone())).unwrap_or_default();
    let interval = known.and_then(|a| a.interval(sex.as_deref()));
    let svg = lianyi_clinical::results::trend_svg(&format!("{name} ({unit})"), &points, interval, &loinc);
    let rows = points
        .iter()
        .rev()
        .map(|p| (p.when.clone(), p.value.to_string(), if p.flag == "N" { String::new() } else { p.flag.clone() }))
        .collect();
    page(
        TrendPage {
            t,
            shell: &shell,
            patient_id: id,
            patient,
            name,
            unit,
            interval: known.map(|a| a.interval_text(sex.as_deref())).unwrap_or_default(),
            svg,
            rows,
        }
        .render(),
    )
    .into_response()
}
