//! The equipment pages (设备): a campus's register (`/manage/equipment`, with the
//! maintenance and calibration reminders and, for the engineers, the form of a new
//! asset), one asset (`/manage/equipment/{id}`: its life and the steps that may follow),
//! and the repairs (`/manage/repairs`: a department reports a fault, an engineer takes
//! and finishes it, response and repair times shown).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_billing::money::Fen;
use lianyi_manage::assets::{AssetForm, AssetView, CATEGORIES, Equipment, EquipmentError, FieldError};
use lianyi_manage::equipment::{Due, cost_per_use};
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_store::equipment::Asset;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::rosters::{campus_choice, csrf_ok, done_text, may_open, pick, urlencode};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/manage/equipment", get(register_page).post(register))
        .route("/manage/equipment/{id}", get(asset_page))
        .route("/manage/equipment/{id}/{step}", post(step))
        .route("/manage/repairs", get(repairs_page).post(report))
        .route("/manage/repairs/{id}/take", post(take))
        .route("/manage/repairs/{id}/finish", post(finish))
}

/// Engineers keep the register.
pub(super) fn may_keep(c: &Caller) -> bool {
    c.can(Capability::KeepEquipment)
}

/// Who reports faults or takes repairs opens the repairs.
pub(super) fn may_repairs(c: &Caller) -> bool {
    may_open(c) && (c.can(Capability::ReportRepairs) || c.can(Capability::KeepEquipment))
}

/// The register is in the navigation of those who work with it, and of the managers
/// who approve scrapping.
pub(super) fn may_see_register(c: &Caller) -> bool {
    may_repairs(c) || (may_open(c) && c.can(Capability::ApproveScrapping))
}

#[derive(Deserialize, Default)]
struct Shown {
    campus: Option<String>,
    done: Option<String>,
}

fn worded(t: Tr, e: &EquipmentError) -> Vec<String> {
    match e {
        EquipmentError::Invalid(fs) => fs.iter().map(|f| field(t, f)).collect(),
        EquipmentError::NotFound(_) => vec![t.get("eq-not-found").to_string()],
        other => {
            tracing::error!(error = %other, "equipment");
            vec![t.get("eq-failed").to_string()]
        }
    }
}

fn field(t: Tr, f: &FieldError) -> String {
    let state = f.detail.strip_prefix("the asset is ").map(|s| t.get(&format!("eq-state-{s}")).to_string());
    let rule = t.get(&format!("eq-rule-{}", f.code)).replace("{state}", state.as_deref().unwrap_or(""));
    format!("{}: {rule}", t.get(&format!("eq-field-{}", f.field)))
}

/// The campuses the caller reads (from the departments it sees) and the one chosen.
async fn campuses(
    state: &AppState,
    t: Tr,
    departments: &[lianyi_manage::rosters::Department],
    chosen: Option<String>,
) -> (Vec<(String, String)>, String) {
    let departments: Vec<&lianyi_manage::rosters::Department> = departments.iter().collect();
    campus_choice(state, t, &departments, chosen, None).await
}

fn department_name(t: Tr, departments: &[lianyi_manage::rosters::Department], id: &str) -> String {
    departments.iter().find(|d| d.id == id).map_or_else(|| id.to_string(), |d| pick(t, &d.names))
}

fn due_text(t: Tr, date: Option<&str>, d: Option<Due>) -> (String, &'static str) {
    let date = date.unwrap_or_default().to_string();
    match d {
        Some(Due::Overdue(n)) => (t.get("eq-overdue").replace("{date}", &date).replace("{n}", &n.to_string()), "bad"),
        Some(Due::Soon(n)) => (t.get("eq-due-soon").replace("{date}", &date).replace("{n}", &n.to_string()), "warn"),
        _ => (date, ""),
    }
}

fn minutes_text(t: Tr, m: Option<i64>) -> String {
    m.map(|m| t.get("eq-minutes").replace("{h}", &(m / 60).to_string()).replace("{m}", &(m % 60).to_string()))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// The register.

struct AssetRow {
    id: i64,
    tag: String,
    name: String,
    department: String,
    category: String,
    state: String,
    state_code: String,
    pm: (String, &'static str),
    calibration: (String, &'static str),
    repair_open: bool,
}

/// An imaging or networked device's use and standing.
struct UseRow {
    id: i64,
    tag: String,
    name: String,
    ae_title: String,
    month: String,
    year: String,
    cost: String,
    per_study: String,
    /// (words, state code) of its monitoring; empty when not networked.
    network: (String, String),
}

/// The use of the campus's imaging devices and analysers (studies their AE titles sent,
/// results their OBX-18 identity made, in the last 30 and 365 days; their cost per use
/// over the year) and the monitoring standing of its networked ones, when the caller
/// reads them (else nothing).
async fn uses(state: &AppState, t: Tr, caller: &Caller, campus: &str, assets: &[&Asset]) -> Vec<UseRow> {
    let assets: Vec<&&Asset> = assets
        .iter()
        .filter(|a| a.state != "scrapped" && (a.ae_title.is_some() || a.equipment_id.is_some() || a.ci.is_some()))
        .collect();
    if assets.is_empty() {
        return Vec::new();
    }
    let now = state.fhir.now_ms();
    let analysers: Vec<String> = assets.iter().filter_map(|a| a.equipment_id.clone()).collect();
    // (AE title or analyser identity) → uses since `from`.
    let counts = |from: i64| {
        let analysers = analysers.clone();
        async move {
            let mut found: std::collections::HashMap<String, i64> =
                state.imaging.studies_by_ae(caller, campus, from, now + 1).await.ok()?.into_iter().collect();
            if !analysers.is_empty() {
                let tests = state.equipment.tests_by_device(caller, campus, &analysers, from, now + 1).await.ok()?;
                found.extend(tests.into_iter().map(|(d, n)| (format!("obx:{d}"), n)));
            }
            Some(found)
        }
    };
    let (Some(month), Some(year)) = (counts(now - 30 * DAY_MS).await, counts(now - 365 * DAY_MS).await) else {
        return Vec::new();
    };
    let codes: Vec<String> = assets.iter().filter_map(|a| a.ci.clone()).collect();
    let standing = state.monitor.devices(caller, &codes).await.unwrap_or_default();
    assets
        .into_iter()
        .map(|a| {
            let (identity, key) = match (&a.ae_title, &a.equipment_id) {
                (Some(ae), _) => (ae.clone(), ae.clone()),
                (None, Some(id)) => (id.clone(), format!("obx:{id}")),
                (None, None) => (String::new(), String::new()),
            };
            let (m, y) = (month.get(&key).copied().unwrap_or(0), year.get(&key).copied().unwrap_or(0));
            let network = match (a.ci.as_ref(), a.ci.as_ref().and_then(|c| standing.get(c))) {
                (Some(_), Some(s)) => (t.get(&format!("eq-net-{}", s.as_str())).to_string(), s.as_str().to_string()),
                (Some(_), None) => (t.get("eq-net-unknown").to_string(), "unknown".to_string()),
                (None, _) => (String::new(), String::new()),
            };
            UseRow {
                id: a.id,
                tag: a.tag.clone(),
                name: t.pick(&a.name_zh, &a.name_en).clone(),
                month: if identity.is_empty() { "—".into() } else { m.to_string() },
                year: if identity.is_empty() { "—".into() } else { y.to_string() },
                cost: Fen(a.cost_fen).to_string(),
                per_study: cost_per_use(a.cost_fen, y)
                    .filter(|_| !identity.is_empty())
                    .map(|f| Fen(f).to_string())
                    .unwrap_or_else(|| "—".into()),
                ae_title: identity,
                network,
            }
        })
        .collect()
}

const DAY_MS: i64 = 86_400_000;

#[derive(Template)]
#[template(path = "manage/equipment.html")]
struct RegisterPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campuses: Vec<(String, String)>,
    campus: String,
    rows: Vec<AssetRow>,
    uses: Vec<UseRow>,
    /// Assets due or overdue for maintenance or calibration.
    reminders: usize,
    may_keep: bool,
    departments: Vec<(String, String)>,
    categories: Vec<(&'static str, String)>,
    form: AssetForm,
    errors: Vec<String>,
    done: Option<String>,
    today: String,
}

async fn render_register(
    state: &AppState,
    s: &Signed,
    campus: Option<String>,
    form: AssetForm,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let departments = state.rosters.departments(caller).await.unwrap_or_default();
    let (campus_list, campus) = campuses(state, t, &departments, campus).await;
    let mut errors = errors;
    let mut rows = Vec::new();
    let mut reminders = 0;
    let mut use_rows = Vec::new();
    match state.equipment.register_of(caller, &campus).await {
        Ok(list) => {
            let assets: Vec<&Asset> = list.iter().map(|v| &v.asset).collect();
            use_rows = uses(state, t, caller, &campus, &assets).await;
            for AssetView { asset, pm, calibration, open_repair } in list {
                if matches!(pm, Some(Due::Overdue(_) | Due::Soon(_)))
                    || matches!(calibration, Some(Due::Overdue(_) | Due::Soon(_)))
                {
                    reminders += 1;
                }
                rows.push(AssetRow {
                    id: asset.id,
                    name: t.pick(&asset.name_zh, &asset.name_en).clone(),
                    department: department_name(t, &departments, &asset.department),
                    category: t.get(&format!("eq-category-{}", asset.category)).to_string(),
                    state: t.get(&format!("eq-state-{}", asset.state)).to_string(),
                    pm: due_text(t, asset.pm_due.as_deref(), pm),
                    calibration: due_text(t, asset.calibration_due.as_deref(), calibration),
                    repair_open: open_repair.is_some(),
                    state_code: asset.state,
                    tag: asset.tag,
                });
            }
        }
        Err(EquipmentError::Forbidden(_)) if campus.is_empty() => {}
        Err(EquipmentError::Forbidden(_)) => return forbidden(t),
        Err(e) => errors.extend(worded(t, &e)),
    }
    let options =
        departments.iter().filter(|d| d.campus == campus).map(|d| (d.id.clone(), pick(t, &d.names))).collect();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        RegisterPage {
            t,
            shell: &shell,
            campuses: campus_list,
            may_keep: Equipment::may_keep(caller, &campus).is_ok(),
            campus,
            rows,
            uses: use_rows,
            reminders,
            departments: options,
            categories: CATEGORIES.iter().map(|c| (*c, t.get(&format!("eq-category-{c}")).to_string())).collect(),
            form,
            errors,
            done: done.map(|d| done_text(t, "eq-done-", &d)),
            today: state.equipment.today(),
        }
        .render(),
    )
}

async fn register_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_open(&s.info.caller) {
        return forbidden(s.t);
    }
    render_register(&state, &s, q.campus, AssetForm::default(), Vec::new(), q.done).await
}

async fn register(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_keep(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = AssetForm {
        department: v("department"),
        tag: v("tag"),
        name_zh: v("name_zh"),
        name_en: v("name_en"),
        category: v("category"),
        model: v("model"),
        maker: v("maker"),
        serial: v("serial"),
        cost: v("cost"),
        purchased_on: v("purchased_on"),
        ci: v("ci"),
        ae_title: v("ae_title"),
        equipment_id: v("equipment_id"),
        pm_days: v("pm_days"),
        calibration_days: v("calibration_days"),
    };
    let campus = v("campus");
    match state.equipment.register(&s.info.caller, &f).await {
        Ok(id) => see_other(&format!("/manage/equipment/{id}?done=registered")),
        Err(EquipmentError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_register(&state, &s, Some(campus), f, errors, None).await
        }
    }
}

// ---------------------------------------------------------------------------------
// One asset.

struct EventRow {
    when: String,
    kind: String,
    note: String,
    actor: String,
}

#[derive(Template)]
#[template(path = "manage/equipment_asset.html")]
struct AssetPage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: i64,
    tag: String,
    name: String,
    department: String,
    campus: String,
    category: String,
    state: String,
    state_code: String,
    facts: Vec<(String, String)>,
    events: Vec<EventRow>,
    may_keep: bool,
    may_approve: bool,
    may_report: bool,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render_asset(state: &AppState, s: &Signed, id: i64, errors: Vec<String>, done: Option<String>) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let (asset, events) = match state.equipment.asset(caller, id).await {
        Ok(found) => found,
        Err(EquipmentError::Forbidden(_)) => return forbidden(t),
        Err(EquipmentError::NotFound(_)) => return not_found(t),
        Err(e) => {
            tracing::error!(error = %e, "equipment asset");
            return not_found(t);
        }
    };
    let departments = state.rosters.departments(caller).await.unwrap_or_default();
    let yuan = lianyi_billing::money::Fen(asset.cost_fen).to_string();
    let mut facts = vec![
        (t.get("eq-field-model").to_string(), asset.model.clone().unwrap_or_default()),
        (t.get("eq-field-maker").to_string(), asset.maker.clone().unwrap_or_default()),
        (t.get("eq-field-serial").to_string(), asset.serial.clone().unwrap_or_default()),
        (t.get("eq-field-cost").to_string(), yuan),
        (t.get("eq-field-purchased_on").to_string(), asset.purchased_on.clone()),
        (t.get("eq-pm-due").to_string(), asset.pm_due.clone().unwrap_or_default()),
        (t.get("eq-calibration-due").to_string(), asset.calibration_due.clone().unwrap_or_default()),
    ];
    if let Some(ci) = &asset.ci {
        facts.push((t.get("eq-field-ci").to_string(), ci.clone()));
    }
    if let Some(ae) = &asset.ae_title {
        facts.push((t.get("eq-field-ae_title").to_string(), ae.clone()));
    }
    if let Some(id) = &asset.equipment_id {
        facts.push((t.get("eq-field-equipment_id").to_string(), id.clone()));
    }
    if let Some(u) = uses(state, t, caller, &asset.campus, &[&asset]).await.pop() {
        if !u.ae_title.is_empty() {
            facts.push((t.get("eq-use-month").to_string(), u.month));
            facts.push((t.get("eq-use-year").to_string(), u.year));
            facts.push((t.get("eq-use-per-study").to_string(), u.per_study));
        }
        if !u.network.0.is_empty() {
            facts.push((t.get("eq-net").to_string(), u.network.0));
        }
    }
    let events = events
        .into_iter()
        .map(|e| EventRow {
            when: local_time(e.at),
            kind: t.get(&format!("eq-event-{}", e.kind)).to_string(),
            note: e.note.unwrap_or_default(),
            actor: e.actor,
        })
        .collect();
    let may_report = state.equipment.may_report(caller, &asset).await.is_ok();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        AssetPage {
            t,
            shell: &shell,
            id,
            name: t.pick(&asset.name_zh, &asset.name_en).clone(),
            department: department_name(t, &departments, &asset.department),
            campus: crate::ui::shell::campus_name(state, &asset.campus, t).await,
            category: t.get(&format!("eq-category-{}", asset.category)).to_string(),
            state: t.get(&format!("eq-state-{}", asset.state)).to_string(),
            may_keep: Equipment::may_keep(caller, &asset.campus).is_ok(),
            may_approve: caller.can(Capability::ApproveScrapping)
                && caller.access().all_campuses().contains(&asset.campus),
            may_report,
            state_code: asset.state,
            tag: asset.tag,
            facts,
            events,
            errors,
            done: done.map(|d| done_text(t, "eq-done-", &d)),
        }
        .render(),
    )
}

async fn asset_page(State(state): State<AppState>, s: Signed, Path(id): Path<i64>, Query(q): Query<Shown>) -> Response {
    if !may_open(&s.info.caller) {
        return forbidden(s.t);
    }
    render_asset(&state, &s, id, Vec::new(), q.done).await
}

/// A step of the asset's life (`accept`, `pm`, `calibration`, `scrap-request`,
/// `scrap-approve`, `scrap-reject`), with `note`.
async fn step(
    State(state): State<AppState>,
    s: Signed,
    Path((id, step)): Path<(i64, String)>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let (caller, note) = (&s.info.caller, form_value(&form, "note"));
    let e = &state.equipment;
    let r = match step.as_str() {
        "accept" => e.accept(caller, id, &note).await,
        "pm" | "calibration" => e.serviced(caller, id, &step, &note).await,
        "scrap-request" => e.request_scrap(caller, id, &note).await,
        "scrap-approve" => e.decide_scrap(caller, id, true, &note).await,
        "scrap-reject" => e.decide_scrap(caller, id, false, &note).await,
        _ => return not_found(s.t),
    };
    match r {
        Ok(_) => see_other(&format!("/manage/equipment/{id}?done={step}")),
        Err(EquipmentError::Forbidden(_)) => forbidden(s.t),
        Err(err) => render_asset(&state, &s, id, worded(s.t, &err), None).await,
    }
}

// ---------------------------------------------------------------------------------
// Repairs.

struct RepairRow {
    id: i64,
    asset: String,
    asset_id: i64,
    department: String,
    fault: String,
    status: String,
    status_code: String,
    reported: String,
    response: String,
    repair: String,
    work: String,
}

#[derive(Template)]
#[template(path = "manage/repairs.html")]
struct RepairsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campuses: Vec<(String, String)>,
    campus: String,
    rows: Vec<RepairRow>,
    /// Assets the caller may report: (id, tag and name).
    reportable: Vec<(i64, String)>,
    may_keep: bool,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render_repairs(
    state: &AppState,
    s: &Signed,
    campus: Option<String>,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let departments = state.rosters.departments(caller).await.unwrap_or_default();
    let (campus_list, campus) = campuses(state, t, &departments, campus).await;
    let mut errors = errors;
    let may_keep_here = Equipment::may_keep(caller, &campus).is_ok();
    let own = if caller.can(Capability::ReportRepairs) {
        state.equipment.own_departments(caller).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let register = state.equipment.register_of(caller, &campus).await.unwrap_or_default();
    let reportable = register
        .iter()
        .filter(|v| matches!(v.asset.state.as_str(), "in-service" | "under-repair"))
        .filter(|v| may_keep_here || own.contains(&v.asset.department))
        .map(|v| (v.asset.id, format!("{} {}", v.asset.tag, t.pick(&v.asset.name_zh, &v.asset.name_en))))
        .collect();
    let mut rows = Vec::new();
    match state.equipment.repairs(caller, &campus).await {
        Ok(list) => {
            for v in list {
                let r = v.repair;
                rows.push(RepairRow {
                    id: r.id,
                    asset: v
                        .asset
                        .as_ref()
                        .map(|a| format!("{} {}", a.tag, t.pick(&a.name_zh, &a.name_en)))
                        .unwrap_or_default(),
                    asset_id: r.asset,
                    department: department_name(t, &departments, &r.department),
                    fault: r.fault,
                    status: t.get(&format!("eq-repair-{}", r.status)).to_string(),
                    status_code: r.status,
                    reported: format!("{} {}", local_time(r.reported_at), r.reported_by),
                    response: minutes_text(t, v.response_minutes),
                    repair: minutes_text(t, v.repair_minutes),
                    work: r.work.unwrap_or_default(),
                });
            }
        }
        Err(EquipmentError::Forbidden(_)) if campus.is_empty() => {}
        Err(EquipmentError::Forbidden(_)) => return forbidden(t),
        Err(e) => errors.extend(worded(t, &e)),
    }
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        RepairsPage {
            t,
            shell: &shell,
            campuses: campus_list,
            campus,
            rows,
            reportable,
            may_keep: may_keep_here,
            errors,
            done: done.map(|d| done_text(t, "eq-done-", &d)),
        }
        .render(),
    )
}

async fn repairs_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_repairs(&s.info.caller) {
        return forbidden(s.t);
    }
    render_repairs(&state, &s, q.campus, Vec::new(), q.done).await
}

fn back_to_repairs(campus: &str, done: &str) -> Response {
    see_other(&format!("/manage/repairs?campus={}&done={done}", urlencode(campus)))
}

async fn repair_result(state: &AppState, s: &Signed, campus: String, r: Result<String, EquipmentError>) -> Response {
    match r {
        Ok(done) => back_to_repairs(&campus, &done),
        Err(EquipmentError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_repairs(state, s, Some(campus), worded(s.t, &e), None).await,
    }
}

/// A department reports a fault (`asset`, `fault`).
async fn report(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_repairs(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let asset = form_value(&form, "asset").parse::<i64>().unwrap_or(0);
    let r = state
        .equipment
        .report(&s.info.caller, asset, &form_value(&form, "fault"))
        .await
        .map(|id| format!("reported-{id}"));
    repair_result(&state, &s, form_value(&form, "campus"), r).await
}

async fn take(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let r = state.equipment.take(&s.info.caller, id).await.map(|_| format!("taken-{id}"));
    repair_result(&state, &s, form_value(&form, "campus"), r).await
}

async fn finish(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let r = state
        .equipment
        .finish(&s.info.caller, id, &form_value(&form, "work"), &form_value(&form, "cost"))
        .await
        .map(|_| format!("repaired-{id}"));
    repair_result(&state, &s, form_value(&form, "campus"), r).await
}
