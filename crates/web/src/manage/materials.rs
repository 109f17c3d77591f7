//! The materials pages (物资): a campus's stock (`/manage/materials`: the low-stock
//! list, the warehouse and each department's batches with expiry flags, stocktakes,
//! receiving and reorder levels for the keepers, the high-value units used on
//! patients), the requisitions (`/manage/requisitions`: a department asks, the
//! keepers approve or reject and issue), and the catalogue (`/manage/materials/items`).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_manage::materials::{FieldError, ItemForm, MaterialsError, ReceiptForm, RequestForm, Ward};
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_store::materials::{Item, WAREHOUSE};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::rosters::{campus_choice, csrf_ok, done_text, may_open, pick, urlencode};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/manage/materials", get(stock_page))
        .route("/manage/materials/receive", post(receive))
        .route("/manage/materials/level", post(level))
        .route("/manage/materials/stocktake", post(stocktake))
        .route("/manage/materials/use", post(use_unit))
        .route("/manage/materials/items", get(items_page).post(save_item))
        .route("/manage/requisitions", get(requisitions_page).post(request))
        .route("/manage/requisitions/{id}/approve", post(approve))
        .route("/manage/requisitions/{id}/reject", post(reject))
        .route("/manage/requisitions/{id}/issue", post(issue))
}

/// Materials keepers keep the warehouse and the catalogue.
pub(super) fn may_keep(c: &Caller) -> bool {
    c.can(Capability::KeepMaterials)
}

/// Those who request for a department, and the keepers, open the requisitions.
pub(super) fn may_requisition(c: &Caller) -> bool {
    may_open(c) && (c.can(Capability::RequestMaterials) || c.can(Capability::KeepMaterials))
}

#[derive(Deserialize, Default)]
struct Shown {
    campus: Option<String>,
    done: Option<String>,
}

/// Broken rules in the page's words: the field, the rule, and the item and numbers
/// the detail names (`GAUZE: 50 asked, 20 in the warehouse`).
fn worded(t: Tr, e: &MaterialsError) -> Vec<String> {
    match e {
        MaterialsError::Invalid(fs) => fs.iter().map(|f| field(t, f)).collect(),
        MaterialsError::NotFound(_) => vec![t.get("mat-not-found").to_string()],
        other => {
            tracing::error!(error = %other, "materials");
            vec![t.get("mat-failed").to_string()]
        }
    }
}

fn field(t: Tr, f: &FieldError) -> String {
    let (item, rest) = match f.detail.split_once(": ") {
        Some((i, rest)) if !i.contains(' ') => (i, rest),
        _ => ("", f.detail.as_str()),
    };
    let numbers: Vec<&str> = rest.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).collect();
    let rule = t
        .get(&format!("mat-rule-{}", f.code))
        .replace("{item}", item)
        .replace("{a}", numbers.first().copied().unwrap_or(""))
        .replace("{b}", numbers.get(1).copied().unwrap_or(""));
    format!("{}: {rule}", t.get(&format!("mat-field-{}", f.field)))
}

/// The campuses whose materials the caller reads (from the departments it sees),
/// its own department's first.
async fn campuses(state: &AppState, t: Tr, wards: &[Ward], chosen: Option<String>) -> (Vec<(String, String)>, String) {
    let departments: Vec<&lianyi_manage::rosters::Department> = wards.iter().map(|w| &w.department).collect();
    let own = wards.iter().find(|w| w.own).map(|w| w.department.campus.clone());
    campus_choice(state, t, &departments, chosen, own).await
}

fn item_name(t: Tr, items: &[Item], code: &str) -> String {
    items.iter().find(|i| i.code == code).map_or_else(|| code.to_string(), |i| t.pick(&i.name_zh, &i.name_en).clone())
}

fn place_name(t: Tr, wards: &[Ward], location: &str) -> String {
    if location == WAREHOUSE {
        return t.get("mat-warehouse").to_string();
    }
    wards
        .iter()
        .find(|w| w.department.id == location)
        .map_or_else(|| location.to_string(), |w| pick(t, &w.department.names))
}

/// A move's reference in the page's words: the requisition or the patient it was for,
/// else the stocktake's reason.
fn reference_text(t: Tr, reference: Option<&str>, reason: Option<&str>) -> String {
    match reference.and_then(|r| r.split_once('/')) {
        Some(("requisition", id)) => t.get("req-number").replace("{id}", id),
        Some(("Patient", id)) => t.get("mat-for-patient").replace("{id}", id),
        _ => reason.or(reference).unwrap_or_default().to_string(),
    }
}

fn yuan(fen: i64) -> String {
    lianyi_billing::money::Fen(fen).to_string()
}

// ---------------------------------------------------------------------------------
// The stock page.

struct BatchRow {
    id: i64,
    item: String,
    code: String,
    unit: String,
    lot: String,
    expiry: String,
    /// `good`, `near` or `expired`.
    shelf: &'static str,
    quantity: i64,
    cost: String,
}

struct PlaceView {
    location: String,
    name: String,
    may_count: bool,
    rows: Vec<BatchRow>,
}

struct LowRow {
    code: String,
    item: String,
    usable: i64,
    level: i64,
    unit: String,
}

struct MoveRow {
    when: String,
    place: String,
    item: String,
    delta: String,
    balance: i64,
    kind: String,
    reference: String,
    actor: String,
}

struct UsedRow {
    udi: String,
    item: String,
    patient: String,
    when: String,
    place: String,
    charged: bool,
}

#[derive(Template)]
#[template(path = "manage/materials.html")]
struct StockPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campuses: Vec<(String, String)>,
    campus: String,
    places: Vec<PlaceView>,
    low: Vec<LowRow>,
    moves: Vec<MoveRow>,
    used: Vec<UsedRow>,
    may_keep: bool,
    may_use: bool,
    /// (code, name, kind) of the items in use, for the forms.
    items: Vec<(String, String, String)>,
    errors: Vec<String>,
    done: Option<String>,
    today: String,
}

async fn render_stock(
    state: &AppState,
    s: &Signed,
    campus: Option<String>,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let mut errors = errors;
    let wards = state.materials.wards(caller).await.unwrap_or_default();
    let (campus_list, campus) = campuses(state, t, &wards, campus).await;
    let items = state.materials.items(caller).await.unwrap_or_default();
    let may_keep_here = lianyi_manage::materials::Materials::may_keep(caller, &campus).is_ok();
    let mut places = Vec::new();
    let mut low = Vec::new();
    let mut moves = Vec::new();
    let mut today = String::new();
    if !campus.is_empty() {
        match state.materials.stock(caller, &campus).await {
            Ok(stock) => {
                today = stock.today.clone();
                for p in &stock.places {
                    let own = wards.iter().any(|w| w.own && w.department.id == p.location);
                    let may_count = if p.location == WAREHOUSE { may_keep_here } else { may_keep_here || own };
                    let rows = p
                        .held
                        .iter()
                        .flat_map(|h| h.batches.iter().map(move |(b, st)| (h, b, st)))
                        .map(|(h, b, st)| BatchRow {
                            id: b.id,
                            item: t.pick(&h.item.name_zh, &h.item.name_en).clone(),
                            code: h.item.code.clone(),
                            unit: h.item.unit.clone(),
                            lot: b.lot.clone(),
                            expiry: b.expiry.clone().unwrap_or_default(),
                            shelf: match st {
                                lianyi_billing::stock::Shelf::Good => "good",
                                lianyi_billing::stock::Shelf::NearExpiry => "near",
                                lianyi_billing::stock::Shelf::Expired => "expired",
                            },
                            quantity: b.quantity,
                            cost: yuan(b.cost_fen),
                        })
                        .collect();
                    places.push(PlaceView {
                        name: place_name(t, &wards, &p.location),
                        location: p.location.clone(),
                        may_count,
                        rows,
                    });
                }
                low = stock
                    .low
                    .iter()
                    .map(|h| LowRow {
                        code: h.item.code.clone(),
                        item: t.pick(&h.item.name_zh, &h.item.name_en).clone(),
                        usable: h.usable,
                        level: h.level,
                        unit: h.item.unit.clone(),
                    })
                    .collect();
                moves = stock
                    .moves
                    .iter()
                    .map(|m| MoveRow {
                        when: local_time(m.at),
                        place: place_name(t, &wards, &m.location),
                        item: item_name(t, &items, &m.item),
                        delta: if m.delta > 0 { format!("+{}", m.delta) } else { m.delta.to_string() },
                        balance: m.balance,
                        kind: t.get(&format!("mat-move-{}", m.kind)).to_string(),
                        reference: reference_text(t, m.reference.as_deref(), m.reason.as_deref()),
                        actor: m.actor.clone(),
                    })
                    .collect();
            }
            Err(MaterialsError::Forbidden(_)) => return forbidden(t),
            Err(e) => errors.extend(worded(t, &e)),
        }
    }
    let used = state
        .materials
        .used(caller, &campus)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|u| UsedRow {
            item: item_name(t, &items, &u.item),
            patient: u.patient.unwrap_or_default(),
            when: u.used_at.map(local_time).unwrap_or_default(),
            place: place_name(t, &wards, &u.location),
            charged: u.charge.is_some(),
            udi: u.udi,
        })
        .collect();
    let may_use =
        caller.can(Capability::RequestMaterials) && wards.iter().any(|w| w.own && w.department.campus == campus);
    let options = items
        .iter()
        .filter(|i| i.active)
        .map(|i| (i.code.clone(), t.pick(&i.name_zh, &i.name_en).clone(), i.kind.clone()))
        .collect();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        StockPage {
            t,
            shell: &shell,
            campuses: campus_list,
            campus,
            places,
            low,
            moves,
            used,
            may_keep: may_keep_here,
            may_use,
            items: options,
            errors,
            done: done.map(|d| done_text(t, "mat-done-", &d)),
            today,
        }
        .render(),
    )
}

async fn stock_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_open(&s.info.caller) {
        return forbidden(s.t);
    }
    render_stock(&state, &s, q.campus, Vec::new(), q.done).await
}

fn back_to_stock(campus: &str, done: &str) -> Response {
    see_other(&format!("/manage/materials?campus={}&done={done}", urlencode(campus)))
}

async fn stock_result(
    state: &AppState,
    s: &Signed,
    campus: String,
    r: Result<(), MaterialsError>,
    done: &str,
) -> Response {
    match r {
        Ok(()) => back_to_stock(&campus, done),
        Err(MaterialsError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_stock(state, s, Some(campus), worded(s.t, &e), None).await,
    }
}

/// Receives a batch into the warehouse.
async fn receive(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let f = ReceiptForm {
        campus: form_value(&form, "campus"),
        item: form_value(&form, "item"),
        lot: form_value(&form, "lot"),
        expiry: form_value(&form, "expiry"),
        quantity: form_value(&form, "quantity"),
        cost: form_value(&form, "cost"),
        supplier: form_value(&form, "supplier"),
        units: form_value(&form, "units"),
    };
    let r = state.materials.receive(&s.info.caller, &f).await.map(|_| ());
    stock_result(&state, &s, f.campus, r, "received").await
}

/// Sets a reorder level.
async fn level(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let campus = form_value(&form, "campus");
    let r = state
        .materials
        .set_level(&s.info.caller, &campus, &form_value(&form, "item"), &form_value(&form, "level"))
        .await
        .map(|_| ());
    stock_result(&state, &s, campus, r, "level").await
}

/// Posts a stocktake of one place (`count-<batch>` fields).
async fn stocktake(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let campus = form_value(&form, "campus");
    let counts: Vec<(i64, String)> =
        form.iter().filter_map(|(k, v)| Some((k.strip_prefix("count-")?.parse().ok()?, v.clone()))).collect();
    let r = state
        .materials
        .stocktake(&s.info.caller, &campus, &form_value(&form, "location"), &counts, &form_value(&form, "reason"))
        .await
        .map(|_| ());
    stock_result(&state, &s, campus, r, "counted").await
}

/// Records a high-value unit used on a patient.
async fn use_unit(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let campus = form_value(&form, "campus");
    let r = state
        .materials
        .use_unit(&s.info.caller, &form_value(&form, "udi"), &form_value(&form, "patient"))
        .await
        .map(|_| ());
    stock_result(&state, &s, campus, r, "used").await
}

// ---------------------------------------------------------------------------------
// The catalogue.

#[derive(Template)]
#[template(path = "manage/material_items.html")]
struct ItemsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    items: Vec<Item>,
    may_keep: bool,
    form: ItemForm,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render_items(
    state: &AppState,
    s: &Signed,
    form: ItemForm,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let items = match state.materials.items(&s.info.caller).await {
        Ok(items) => items,
        Err(MaterialsError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "materials catalogue");
            Vec::new()
        }
    };
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(ItemsPage { t, shell: &shell, items, may_keep: may_keep(&s.info.caller), form, errors, done }.render())
}

async fn items_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_open(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = ItemForm { kind: "general".into(), active: true, ..Default::default() };
    render_items(&state, &s, form, Vec::new(), q.done).await
}

async fn save_item(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_keep(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let f = ItemForm {
        code: form_value(&form, "code"),
        name_zh: form_value(&form, "name_zh"),
        name_en: form_value(&form, "name_en"),
        unit: form_value(&form, "unit"),
        kind: form_value(&form, "kind"),
        active: form_value(&form, "retired").is_empty(),
    };
    match state.materials.put_item(&s.info.caller, &f).await {
        Ok(i) => see_other(&format!("/manage/materials/items?done={}", urlencode(&i.code))),
        Err(MaterialsError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_items(&state, &s, f, errors, None).await
        }
    }
}

// ---------------------------------------------------------------------------------
// Requisitions.

struct LineRow {
    code: String,
    item: String,
    unit: String,
    requested: i64,
    approved: String,
    issued: String,
}

struct RequisitionRow {
    id: i64,
    department: String,
    status: String,
    status_code: String,
    requested: String,
    decided: String,
    reason: String,
    lines: Vec<LineRow>,
}

#[derive(Template)]
#[template(path = "manage/requisitions.html")]
struct RequisitionsPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campuses: Vec<(String, String)>,
    campus: String,
    /// The caller's own departments at the campus: (id, name).
    own: Vec<(String, String)>,
    /// (code, name and unit, usable in the warehouse).
    items: Vec<(String, String, i64)>,
    rows: Vec<RequisitionRow>,
    may_keep: bool,
    /// The request form as sent (department, lines, note) after a refusal.
    department: String,
    lines: Vec<(String, String)>,
    note: String,
    errors: Vec<String>,
    done: Option<String>,
}

/// Rows of the request form.
const FORM_LINES: usize = 4;

async fn render_requisitions(
    state: &AppState,
    s: &Signed,
    campus: Option<String>,
    sent: Option<RequestForm>,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let mut errors = errors;
    let wards = state.materials.wards(caller).await.unwrap_or_default();
    let (campus_list, campus) = campuses(state, t, &wards, campus).await;
    let catalogue = state.materials.items(caller).await.unwrap_or_default();
    let stock = state.materials.holdings(caller, &campus).await.ok();
    let usable = |code: &str| {
        stock
            .as_ref()
            .and_then(|s| s.places.first())
            .and_then(|p| p.held.iter().find(|h| h.item.code == code))
            .map(|h| h.usable)
            .unwrap_or(0)
    };
    let items = catalogue
        .iter()
        .filter(|i| i.active)
        .map(|i| (i.code.clone(), format!("{} ({})", t.pick(&i.name_zh, &i.name_en), i.unit), usable(&i.code)))
        .collect();
    let mut rows = Vec::new();
    match state.materials.requisitions(caller, &campus).await {
        Ok(list) => {
            for r in list {
                let lines = r
                    .lines
                    .iter()
                    .map(|l| LineRow {
                        code: l.item.clone(),
                        item: item_name(t, &catalogue, &l.item),
                        unit: catalogue.iter().find(|i| i.code == l.item).map(|i| i.unit.clone()).unwrap_or_default(),
                        requested: l.requested,
                        approved: l.approved.map(|n| n.to_string()).unwrap_or_default(),
                        issued: l.issued.map(|n| n.to_string()).unwrap_or_default(),
                    })
                    .collect();
                rows.push(RequisitionRow {
                    id: r.id,
                    department: place_name(t, &wards, &r.department),
                    status: t.get(&format!("mat-status-{}", r.status)).to_string(),
                    status_code: r.status.clone(),
                    requested: format!("{} {}", local_time(r.requested_at), r.requested_by),
                    decided: match (&r.issued_by, r.issued_at, &r.decided_by, r.decided_at) {
                        (Some(by), Some(at), _, _) | (None, _, Some(by), Some(at)) => {
                            format!("{} {by}", local_time(at))
                        }
                        _ => String::new(),
                    },
                    reason: r.reason.clone().or(r.note.clone()).unwrap_or_default(),
                    lines,
                });
            }
        }
        Err(MaterialsError::Forbidden(_)) => return forbidden(t),
        Err(e) => errors.extend(worded(t, &e)),
    }
    let own = wards
        .iter()
        .filter(|w| w.own && w.department.campus == campus)
        .map(|w| (w.department.id.clone(), pick(t, &w.department.names)))
        .collect();
    let sent = sent.unwrap_or_default();
    let mut lines = sent.lines;
    lines.resize(FORM_LINES.max(lines.len()), (String::new(), String::new()));
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        RequisitionsPage {
            t,
            shell: &shell,
            campuses: campus_list,
            may_keep: lianyi_manage::materials::Materials::may_keep(caller, &campus).is_ok(),
            campus,
            own,
            items,
            rows,
            department: sent.department,
            lines,
            note: sent.note,
            errors,
            done: done.map(|d| done_text(t, "mat-done-", &d)),
        }
        .render(),
    )
}

async fn requisitions_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !may_requisition(&s.info.caller) {
        return forbidden(s.t);
    }
    render_requisitions(&state, &s, q.campus, None, Vec::new(), q.done).await
}

fn back_to_requisitions(campus: &str, done: &str) -> Response {
    see_other(&format!("/manage/requisitions?campus={}&done={done}", urlencode(campus)))
}

/// A department's requisition (`department`, `item-N`/`quantity-N` lines, `note`).
async fn request(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_requisition(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let lines = (0..FORM_LINES * 4)
        .map(|n| (form_value(&form, &format!("item-{n}")), form_value(&form, &format!("quantity-{n}"))))
        .filter(|(i, q)| !i.is_empty() || !q.is_empty())
        .collect();
    let f = RequestForm { department: form_value(&form, "department"), lines, note: form_value(&form, "note") };
    let campus = form_value(&form, "campus");
    match state.materials.request(&s.info.caller, &f).await {
        Ok(id) => back_to_requisitions(&campus, &format!("requested-{id}")),
        Err(MaterialsError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_requisitions(&state, &s, Some(campus), Some(f), errors, None).await
        }
    }
}

async fn decided(
    state: &AppState,
    s: &Signed,
    campus: String,
    r: Result<(), MaterialsError>,
    done: String,
) -> Response {
    match r {
        Ok(()) => back_to_requisitions(&campus, &done),
        Err(MaterialsError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_requisitions(state, s, Some(campus), None, worded(s.t, &e), None).await,
    }
}

/// Approves a requisition (`approved-<item>` quantities).
async fn approve(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let quantities: Vec<(String, String)> =
        form.iter().filter_map(|(k, v)| Some((k.strip_prefix("approved-")?.to_string(), v.clone()))).collect();
    let r = state.materials.approve(&s.info.caller, id, &quantities).await;
    decided(&state, &s, form_value(&form, "campus"), r, format!("approved-{id}")).await
}

async fn reject(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let r = state.materials.reject(&s.info.caller, id, &form_value(&form, "reason")).await;
    decided(&state, &s, form_value(&form, "campus"), r, format!("rejected-{id}")).await
}

async fn issue(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let r = state.materials.issue(&s.info.caller, id).await.map(|_| ());
    decided(&state, &s, form_value(&form, "campus"), r, format!("issued-{id}")).await
}
