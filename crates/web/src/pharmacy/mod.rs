//! Pharmacy pages: the pharmacist's queue of paid prescriptions, review (审方) and
//! dispensing (发药) with returns (退药); the stores' stock by batch with near-expiry,
//! expired and low-stock flags; for the stock keeper (药库管理员) purchase orders and
//! receiving (入库), transfers (调拨), stocktakes (盘点) and reorder levels. The rules
//! live in [`lianyi_billing::stock`] and [`lianyi_billing::dispensing`].

mod rounds;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_billing::dispensing::{Dispensary, DispenseError};
use lianyi_billing::money::Fen;
use lianyi_billing::prices::FieldError;
use lianyi_billing::stock::{OrderLineForm, ReceiveForm, Shelf, StockError, StockRoom};
use lianyi_security::Caller;
use lianyi_store::pharmacy::StockStore;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, form_values, local_time, not_found, page, see_other, server_error};
use crate::ui::session::Signed;
use crate::ui::shell::{NavLink, Place, Shell, campus_name, shell};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/pharmacy", get(queue_page))
        .route("/pharmacy/rx/{id}", get(review_page))
        .route("/pharmacy/rx/{id}/dispense", post(dispense))
        .route("/pharmacy/rx/{id}/return", post(return_rx))
        .route("/pharmacy/stock", get(stock_page).post(set_level))
        .route("/pharmacy/batches/{id}", get(batch_page).post(ship))
        .route("/pharmacy/orders", get(orders_page).post(create_order))
        .route("/pharmacy/orders/{campus}/{no}", get(order_page).post(receive))
        .route("/pharmacy/transfers", get(transfers_page))
        .route("/pharmacy/transfers/{id}", post(receive_transfer))
        .route("/pharmacy/count", get(count_page).post(post_count))
        .merge(rounds::router())
}

fn may_dispense(c: &Caller) -> bool {
    c.access().patient().is_none() && c.access().allows("MedicationDispense", lianyi_security::Perm::Create)
}

fn may_view_stock(c: &Caller) -> bool {
    c.access().patient().is_none()
        && (may_keep(c)
            || may_dispense(c)
            || c.can(lianyi_security::roles::Capability::ViewReports) && c.access().patient().is_none())
}

fn may_keep(c: &Caller) -> bool {
    c.can(lianyi_security::roles::Capability::KeepStock) && c.is_authenticated()
}

pub(crate) const NAV: &[NavLink] = &[
    NavLink { href: "/pharmacy", text: "nav-dispensing", place: Place::Bar, shown: may_dispense },
    NavLink { href: "/pharmacy/rounds", text: "nav-rounds", place: Place::Bar, shown: may_dispense },
    NavLink { href: "/pharmacy/stock", text: "nav-stock", place: Place::Bar, shown: may_view_stock },
    NavLink { href: "/pharmacy/orders", text: "nav-purchase-orders", place: Place::Bar, shown: may_keep },
    NavLink { href: "/pharmacy/transfers", text: "nav-transfers", place: Place::Bar, shown: may_keep },
];

/// Field errors in the page's language: (field, text).
fn error_rows(t: Tr, errors: &[FieldError]) -> Vec<(String, String)> {
    errors
        .iter()
        .map(|e| {
            let text = t.try_get(&format!("stock-rule-{}", e.rule)).map_or(e.detail.clone(), str::to_string);
            (e.field.to_string(), text)
        })
        .collect()
}

fn drug_name(t: Tr, code: &str) -> String {
    lianyi_clinical::prescribing::drug(code)
        .map_or_else(|| code.to_string(), |d| format!("{} {}", t.pick(d.zh, d.en), d.strength))
}

fn unit(t: Tr, code: &str) -> String {
    let form = lianyi_clinical::prescribing::drug(code).map_or("unit", |d| d.form);
    t.named("stock-unit", form)
}

fn failed(t: Tr, what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "{what}");
    server_error(Some(t))
}

/// The store a page shows: `campus/code` as asked if the caller sees it, else the
/// first store of the active campus, else the first the caller sees.
fn chosen_store(stores: &[StockStore], asked: Option<&str>, shell: &Shell) -> Option<StockStore> {
    let key = |s: &StockStore| format!("{}/{}", s.campus, s.code);
    asked
        .and_then(|a| stores.iter().find(|s| key(s) == a))
        .or_else(|| {
            let campus = shell.campus.as_ref()?;
            stores
                .iter()
                .find(|s| s.campus == campus.as_str() && s.kind == "outpatient")
                .or_else(|| stores.iter().find(|s| s.campus == campus.as_str()))
        })
        .or_else(|| stores.first())
        .cloned()
}

/// Every store's label (`东院区 · 门诊药房`), read once per page: (campus, code, label).
struct StoreLabels(Vec<(String, String, String)>);

impl StoreLabels {
    async fn load(state: &AppState, t: Tr) -> StoreLabels {
        let stores = state.fhir.operations().pharmacy().stores().await.unwrap_or_default();
        let mut campuses: Vec<(String, String)> = Vec::new();
        let mut out = Vec::new();
        for s in stores {
            if !campuses.iter().any(|(c, _)| *c == s.campus) {
                campuses.push((s.campus.clone(), campus_name(state, &s.campus, t).await));
            }
            let campus = campuses.iter().find(|(c, _)| *c == s.campus).map_or("", |(_, n)| n.as_str());
            let label = format!("{campus} · {}", t.pick(&s.name_zh, &s.name_en));
            out.push((s.campus, s.code, label));
        }
        StoreLabels(out)
    }

    fn of(&self, campus: &str, code: &str) -> String {
        self.0.iter().find(|(c, s, _)| c == campus && s == code).map_or_else(|| code.to_string(), |x| x.2.clone())
    }

    /// The stores to choose from: (`campus/code`, label, chosen).
    fn choices(&self, stores: &[StockStore], chosen: &str) -> Vec<(String, String, bool)> {
        stores
            .iter()
            .map(|s| {
                let key = format!("{}/{}", s.campus, s.code);
                (key.clone(), self.of(&s.campus, &s.code), key == chosen)
            })
            .collect()
    }
}

// ---- The pharmacist's queue -------------------------------------------------------

struct QueueRow {
    request: String,
    patient: String,
    drug: String,
    quantity: String,
    paid_at: String,
    invoice: String,
    by: String,
}

/// The waiting prescriptions the queue page lists (the oldest payments first).
const QUEUE_SHOWN: i64 = 50;

#[derive(Template)]
#[template(path = "pharmacy/queue.html")]
struct QueuePage<'a> {
    t: Tr,
    shell: &'a Shell,
    waiting: Vec<QueueRow>,
    /// All waiting (the page shows the first [`QUEUE_SHOWN`]).
    waiting_total: i64,
    done: Vec<QueueRow>,
    no_campus: bool,
    notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
    error: Option<String>,
}

async fn queue_page(State(state): State<AppState>, s: Signed, Query(q): Query<DoneQuery>) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_dispense(&info.caller) {
        return forbidden(t);
    }
    let shell = shell(&state, info, t, &s.headers).await;
    let Some(campus) = shell.campus.as_ref().map(|c| c.as_str().to_string()) else {
        let p = QueuePage {
            t,
            shell: &shell,
            waiting: Vec::new(),
            waiting_total: 0,
            done: Vec::new(),
            no_campus: true,
            notice: None,
        };
        return page(p.render());
    };
    let rows = |lines: Vec<lianyi_billing::dispensing::QueueLine>| -> Vec<QueueRow> {
        lines
            .into_iter()
            .map(|l| QueueRow {
                drug: drug_name(t, &l.entry.drug),
                quantity: format!("{} {}", l.entry.quantity, unit(t, &l.entry.drug)),
                paid_at: local_time(l.entry.paid_at),
                invoice: format!("{:08}", l.entry.invoice_no),
                by: l.entry.changed_by.clone().unwrap_or_default(),
                patient: l.patient_name,
                request: l.entry.request,
            })
            .collect()
    };
    let (waiting, waiting_total, done) = match (
        state.dispensary.queue(&info.caller, &campus, "waiting", QUEUE_SHOWN).await,
        state.dispensary.queue(&info.caller, &campus, "dispensed", 20).await,
    ) {
        (Ok((w, n)), Ok((d, _))) => (rows(w), n, rows(d)),
        (Err(DispenseError::Forbidden(_)), _) | (_, Err(DispenseError::Forbidden(_))) => return forbidden(t),
        (Err(e), _) | (_, Err(e)) => return failed(t, "dispensing queue", e),
    };
    let notice = match q.done.as_deref() {
        Some("dispensed") => Some("disp-done-dispensed"),
        Some("returned") => Some("disp-done-returned"),
        _ => None,
    };
    page(QueuePage { t, shell: &shell, waiting, waiting_total, done, no_campus: false, notice }.render())
}

#[derive(Template)]
#[template(path = "pharmacy/review.html")]
struct ReviewPage<'a> {
    t: Tr,
    shell: &'a Shell,
    request: String,
    status: String,
    patient: String,
    patient_name: String,
    number: String,
    drug: String,
    quantity: String,
    dosage: String,
    prescriber: String,
    paid_at: String,
    invoice: String,
    /// (severity, detail, override reason)
    findings: Vec<(String, String, String)>,
    store: String,
    /// (batch id, lot, expiry, take)
    picks: Vec<(i64, String, String, i64)>,
    short: i64,
    may_dispense: bool,
    error: Option<String>,
    error_field: String,
}

async fn review_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    if !may_dispense(&info.caller) {
        return forbidden(t);
    }
    let review = match state.dispensary.review(&info.caller, &id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(t),
        Err(DispenseError::Forbidden(_)) => return forbidden(t),
        Err(DispenseError::Service(lianyi_services::ServiceError::NotFound { .. })) => return not_found(t),
        Err(e) => return failed(t, "prescription review", e),
    };
    let shell = shell(&state, info, t, &s.headers).await;
    let store_name = match &review.store {
        Some(code) => state
            .stock
            .stores(&info.caller)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|x| x.campus == review.entry.campus && &x.code == code)
            .map_or(code.clone(), |x| t.pick(x.name_zh, x.name_en)),
        None => String::new(),
    };
    let e = &review.entry;
    let (error, error_field) = match q.error.as_deref().and_then(|r| r.split_once(':')) {
        Some((field, rule)) if rule.chars().all(|c| c.is_ascii_lowercase() || c == '-') => {
            (Some(t.try_get(&format!("stock-rule-{rule}")).unwrap_or(rule).to_string()), field.to_string())
        }
        _ => (None, String::new()),
    };
    page(
        ReviewPage {
            t,
            shell: &shell,
            request: e.request.clone(),
            status: e.status.clone(),
            patient: e.patient.clone(),
            patient_name: review.patient_name.clone(),
            number: review.number.clone(),
            drug: drug_name(t, &e.drug),
            quantity: format!("{} {}", e.quantity, unit(t, &e.drug)),
            dosage: review.dosage.clone(),
            prescriber: review.prescriber.clone(),
            paid_at: local_time(e.paid_at),
            invoice: format!("{:08}", e.invoice_no),
            findings: review
                .findings
                .iter()
                .map(|f| (f.severity.clone(), f.detail.clone(), f.mitigation.clone().unwrap_or_default()))
                .collect(),
            store: store_name,
            picks: review.picks.iter().map(|(b, n)| (b.id, b.lot.clone(), b.expiry.clone(), *n)).collect(),
            short: review.short,
            may_dispense: Dispensary::may_dispense(&info.caller, &e.campus),
            error,
            error_field,
        }
        .render(),
    )
}

fn dispense_error(t: Tr, id: &str, e: DispenseError) -> Response {
    match e {
        DispenseError::Forbidden(_) => forbidden(t),
        DispenseError::Invalid(errors) => {
            let (field, rule) = errors.first().map_or(("stock", "stock"), |e| (e.field, e.rule));
            see_other(&format!("/pharmacy/rx/{id}?error={field}:{rule}"))
        }
        other => failed(t, "dispensing", other),
    }
}

async fn dispense(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_dispense(&s.info.caller) {
        return forbidden(s.t);
    }
    match state.dispensary.dispense(&s.info.caller, &id).await {
        Ok(_) => see_other("/pharmacy?done=dispensed"),
        Err(e) => dispense_error(s.t, &id, e),
    }
}

async fn return_rx(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_dispense(&s.info.caller) {
        return forbidden(s.t);
    }
    match state.dispensary.return_dispense(&s.info.caller, &id, &form_value(&f, "reason")).await {
        Ok(()) => see_other("/pharmacy?done=returned"),
        Err(e) => dispense_error(s.t, &id, e),
    }
}

// ---- Stock ------------------------------------------------------------------------

struct StockRow {
    code: String,
    drug: String,
    unit: String,
    usable: i64,
    expired: i64,
    level: String,
    low: bool,
    near: bool,
    /// (batch id, lot, expiry, quantity, retail price, shelf key)
    batches: Vec<(i64, String, String, i64, String, &'static str)>,
}

#[derive(Template)]
#[template(path = "pharmacy/stock.html")]
struct StockPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stores: Vec<(String, String, bool)>,
    store: String,
    show: String,
    rows: Vec<StockRow>,
    near_days: i64,
    may_keep: bool,
    errors: Vec<(String, String)>,
    notice: Option<&'static str>,
    counts: (usize, usize, usize),
}

#[derive(Deserialize, Default)]
struct StockQuery {
    store: Option<String>,
    #[serde(default)]
    show: String,
    done: Option<String>,
}

fn shelf_key(s: Shelf) -> &'static str {
    match s {
        Shelf::Good => "good",
        Shelf::NearExpiry => "near-expiry",
        Shelf::Expired => "expired",
    }
}

async fn render_stock(state: &AppState, s: &Signed, q: StockQuery, errors: Vec<(String, String)>) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let stores = match state.stock.stores(&info.caller).await {
        Ok(x) => x,
        Err(e) => return failed(t, "stores", e),
    };
    let chosen = chosen_store(&stores, q.store.as_deref(), &shell);
    let key = chosen.as_ref().map(|c| format!("{}/{}", c.campus, c.code)).unwrap_or_default();
    let lines = match &chosen {
        Some(c) => match state.stock.stock(&info.caller, &c.campus, &c.code, false).await {
            Ok(l) => l,
            Err(StockError::Forbidden(_)) => return forbidden(t),
            Err(e) => return failed(t, "stock", e),
        },
        None => Vec::new(),
    };
    let counts = (
        lines.len(),
        lines.iter().filter(|l| l.low()).count(),
        lines.iter().filter(|l| l.near_expiry() || l.expired > 0).count(),
    );
    let rows = lines
        .into_iter()
        .filter(|l| match q.show.as_str() {
            "low" => l.low(),
            "expiry" => l.near_expiry() || l.expired > 0,
            _ => true,
        })
        .map(|l| StockRow {
            low: l.low(),
            near: l.near_expiry(),
            code: l.drug.code.to_string(),
            drug: format!("{} {}", t.pick(l.drug.zh, l.drug.en), l.drug.strength),
            unit: t.named("stock-unit", l.drug.form),
            usable: l.usable,
            expired: l.expired,
            level: l.reorder_level.map(|x| x.to_string()).unwrap_or_default(),
            batches: l
                .batches
                .iter()
                .map(|(b, sh)| {
                    (b.id, b.lot.clone(), b.expiry.clone(), b.quantity, Fen(b.retail_fen).to_string(), shelf_key(*sh))
                })
                .collect(),
        })
        .collect();
    let may_keep = chosen.as_ref().is_some_and(|c| StockRoom::may_keep(&info.caller, &c.campus));
    let notice = match q.done.as_deref() {
        Some("level") => Some("stock-level-saved"),
        Some("count") => Some("stock-count-posted"),
        Some("shipped") => Some("stock-shipped"),
        _ => None,
    };
    page(
        StockPage {
            t,
            shell: &shell,
            stores: StoreLabels::load(state, t).await.choices(&stores, &key),
            store: key,
            show: q.show,
            rows,
            near_days: state.stock.near_expiry_days(),
            may_keep,
            errors,
            notice,
            counts,
        }
        .render(),
    )
}

async fn stock_page(State(state): State<AppState>, s: Signed, Query(q): Query<StockQuery>) -> Response {
    if !may_view_stock(&s.info.caller) {
        return forbidden(s.t);
    }
    render_stock(&state, &s, q, Vec::new()).await
}

async fn set_level(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    let store = value("store");
    let (campus, code) = store.split_once('/').unwrap_or_default();
    match state.stock.set_level(&s.info.caller, campus, code, &value("drug"), &value("level")).await {
        Ok(()) => see_other(&format!("/pharmacy/stock?store={store}&done=level")),
        Err(StockError::Forbidden(_)) => forbidden(s.t),
        Err(StockError::Invalid(errors)) => {
            let q = StockQuery { store: Some(store), ..Default::default() };
            render_stock(&state, &s, q, error_rows(s.t, &errors)).await
        }
        Err(e) => failed(s.t, "reorder level", e),
    }
}

// ---- A batch's card and shipping ----------------------------------------------------

#[derive(Template)]
#[template(path = "pharmacy/batch.html")]
struct BatchPage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: i64,
    store: String,
    store_key: String,
    drug: String,
    unit: String,
    lot: String,
    expiry: String,
    shelf: &'static str,
    quantity: i64,
    purchase: String,
    retail: String,
    supplier: String,
    /// (when, kind key, delta, balance, reference, reason, actor)
    moves: Vec<(String, String, i64, i64, String, String, String)>,
    may_keep: bool,
    /// (`campus/code`, name) destinations
    destinations: Vec<(String, String, bool)>,
    typed: (String, String, String),
    errors: Vec<(String, String)>,
}

async fn render_batch(
    state: &AppState,
    s: &Signed,
    id: i64,
    typed: (String, String, String),
    errors: Vec<(String, String)>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let (b, moves) = match state.stock.card(&info.caller, id).await {
        Ok(Some(x)) => x,
        Ok(None) => return not_found(t),
        Err(StockError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "stock card", e),
    };
    let shell = shell(state, info, t, &s.headers).await;
    let (today, near) = state.stock.today_and_near();
    let may_keep = StockRoom::may_keep(&info.caller, &b.campus);
    // Destinations: every store of the group but this one (the keeper ships to other
    // campuses' stores too).
    let all = state.fhir.operations().pharmacy().stores().await.unwrap_or_default();
    let others: Vec<StockStore> = all.into_iter().filter(|x| !(x.campus == b.campus && x.code == b.store)).collect();
    let labels = StoreLabels::load(state, t).await;
    let destinations = labels.choices(&others, &typed.1);
    let store = labels.of(&b.campus, &b.store);
    page(
        BatchPage {
            t,
            shell: &shell,
            id,
            store,
            store_key: format!("{}/{}", b.campus, b.store),
            drug: drug_name(t, &b.drug),
            unit: unit(t, &b.drug),
            shelf: shelf_key(lianyi_billing::stock::shelf(&b.expiry, &today, &near)),
            lot: b.lot,
            expiry: b.expiry,
            quantity: b.quantity,
            purchase: Fen(b.purchase_fen).to_string(),
            retail: Fen(b.retail_fen).to_string(),
            supplier: b.supplier.unwrap_or_default(),
            moves: moves
                .into_iter()
                .rev()
                .map(|m| {
                    (
                        local_time(m.at),
                        format!("stock-move-{}", m.kind),
                        m.delta,
                        m.balance,
                        m.reference.unwrap_or_default(),
                        m.reason.unwrap_or_default(),
                        m.actor,
                    )
                })
                .collect(),
            may_keep,
            destinations,
            typed,
            errors,
        }
        .render(),
    )
}

async fn batch_page(State(state): State<AppState>, s: Signed, Path(id): Path<i64>) -> Response {
    if !may_view_stock(&s.info.caller) {
        return forbidden(s.t);
    }
    render_batch(&state, &s, id, Default::default(), Vec::new()).await
}

async fn ship(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    let to = value("to_store");
    let (to_campus, to_store) = to.split_once('/').unwrap_or_default();
    match state.stock.ship(&s.info.caller, id, &value("quantity"), to_campus, to_store, &value("note")).await {
        Ok(_) => see_other("/pharmacy/transfers?done=shipped"),
        Err(StockError::Forbidden(_)) => forbidden(s.t),
        Err(StockError::Invalid(errors)) => {
            let typed = (value("quantity"), to, value("note"));
            render_batch(&state, &s, id, typed, error_rows(s.t, &errors)).await
        }
        Err(e) => failed(s.t, "transfer", e),
    }
}

// ---- Purchase orders and receiving ------------------------------------------------

#[derive(Template)]
#[template(path = "pharmacy/orders.html")]
struct OrdersPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// (campus, no, store, supplier, status, lines, created)
    orders: Vec<(String, i64, String, String, String, usize, String)>,
    stores: Vec<(String, String, bool)>,
    drugs: Vec<(&'static str, String)>,
    /// Typed lines: (drug, quantity, price)
    lines: Vec<(String, String, String)>,
    supplier: String,
    errors: Vec<(String, String)>,
    may_keep: bool,
}

const ORDER_ROWS: usize = 5;

async fn render_orders(
    state: &AppState,
    s: &Signed,
    typed: (String, String, Vec<(String, String, String)>),
    errors: Vec<(String, String)>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let labels = StoreLabels::load(state, t).await;
    let stores = match state.stock.stores(&info.caller).await {
        Ok(x) => x,
        Err(e) => return failed(t, "stores", e),
    };
    let keepable: Vec<StockStore> =
        stores.iter().filter(|x| StockRoom::may_keep(&info.caller, &x.campus)).cloned().collect();
    let mut orders = Vec::new();
    let mut campuses: Vec<&str> = stores.iter().map(|x| x.campus.as_str()).collect();
    campuses.dedup();
    for campus in campuses {
        match state.stock.orders(&info.caller, campus, true).await {
            Ok(list) => {
                for po in list {
                    let store = labels.of(&po.campus, &po.store);
                    orders.push((
                        po.campus.clone(),
                        po.po_no,
                        store,
                        po.supplier,
                        po.status,
                        po.lines.len(),
                        local_time(po.created_at),
                    ));
                }
            }
            Err(StockError::Forbidden(_)) => continue,
            Err(e) => return failed(t, "purchase orders", e),
        }
    }
    let (store, supplier, mut lines) = typed;
    lines.resize(ORDER_ROWS.max(lines.len()), Default::default());
    let drugs = lianyi_clinical::prescribing::catalogue()
        .iter()
        .map(|d| (d.code, format!("{} {}", t.pick(d.zh, d.en), d.strength)))
        .collect();
    page(
        OrdersPage {
            t,
            shell: &shell,
            orders,
            stores: labels.choices(&keepable, &store),
            drugs,
            lines,
            supplier,
            errors,
            may_keep: !keepable.is_empty(),
        }
        .render(),
    )
}

async fn orders_page(State(state): State<AppState>, s: Signed) -> Response {
    if !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    render_orders(&state, &s, Default::default(), Vec::new()).await
}

async fn create_order(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    let all = |k: &str| form_values(&f, k);
    let (drugs, quantities, prices) = (all("drug"), all("quantity"), all("price"));
    let lines: Vec<OrderLineForm> = drugs
        .iter()
        .enumerate()
        .map(|(i, d)| OrderLineForm {
            drug: d.clone(),
            quantity: quantities.get(i).cloned().unwrap_or_default(),
            price: prices.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    let store = value("store");
    let (campus, code) = store.split_once('/').unwrap_or_default();
    match state.stock.create_order(&s.info.caller, campus, code, &value("supplier"), &lines).await {
        Ok(no) => see_other(&format!("/pharmacy/orders/{campus}/{no}")),
        Err(StockError::Forbidden(_)) => forbidden(s.t),
        Err(StockError::Invalid(errors)) => {
            let typed = lines.into_iter().map(|l| (l.drug, l.quantity, l.price)).collect();
            render_orders(&state, &s, (store, value("supplier"), typed), error_rows(s.t, &errors)).await
        }
        Err(e) => failed(s.t, "purchase order", e),
    }
}

/// A line of an order, with what was typed to receive on it.
struct OrderLine {
    code: String,
    name: String,
    unit: String,
    ordered: i64,
    received: i64,
    open: i64,
    price: String,
    lot: String,
    expiry: String,
    quantity: String,
}

#[derive(Template)]
#[template(path = "pharmacy/order.html")]
struct OrderPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campus: String,
    no: i64,
    store: String,
    supplier: String,
    status: String,
    created: String,
    created_by: String,
    lines: Vec<OrderLine>,
    may_keep: bool,
    errors: Vec<(String, String)>,
    received: bool,
}

#[derive(Deserialize, Default)]
struct OrderQuery {
    done: Option<String>,
}

async fn render_order(
    state: &AppState,
    s: &Signed,
    campus: &str,
    no: i64,
    typed: &[ReceiveForm],
    errors: Vec<(String, String)>,
    received: bool,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let po = match state.stock.order(&info.caller, campus, no).await {
        Ok(Some(po)) => po,
        Ok(None) => return not_found(t),
        Err(StockError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "purchase order", e),
    };
    let shell = shell(state, info, t, &s.headers).await;
    let lines = po
        .lines
        .iter()
        .map(|l| {
            let typed = typed.iter().find(|f| f.drug == l.drug).cloned().unwrap_or_default();
            OrderLine {
                code: l.drug.clone(),
                name: drug_name(t, &l.drug),
                unit: unit(t, &l.drug),
                ordered: l.ordered,
                received: l.received,
                open: l.ordered - l.received,
                price: Fen(l.purchase_fen).to_string(),
                lot: typed.lot,
                expiry: typed.expiry,
                quantity: typed.quantity,
            }
        })
        .collect();
    page(
        OrderPage {
            t,
            shell: &shell,
            campus: po.campus.clone(),
            no,
            store: StoreLabels::load(state, t).await.of(&po.campus, &po.store),
            supplier: po.supplier,
            status: po.status.clone(),
            created: local_time(po.created_at),
            created_by: po.created_by,
            lines,
            may_keep: StockRoom::may_keep(&info.caller, &po.campus) && po.status != "received",
            errors,
            received,
        }
        .render(),
    )
}

async fn order_page(
    State(state): State<AppState>,
    s: Signed,
    Path((campus, no)): Path<(String, i64)>,
    Query(q): Query<OrderQuery>,
) -> Response {
    if !may_view_stock(&s.info.caller) {
        return forbidden(s.t);
    }
    render_order(&state, &s, &campus, no, &[], Vec::new(), q.done.as_deref() == Some("received")).await
}

async fn receive(
    State(state): State<AppState>,
    s: Signed,
    Path((campus, no)): Path<(String, i64)>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    let all = |k: &str| form_values(&f, k);
    let (drugs, lots, expiries, quantities) = (all("drug"), all("lot"), all("expiry"), all("quantity"));
    let forms: Vec<ReceiveForm> = drugs
        .iter()
        .enumerate()
        .map(|(i, d)| ReceiveForm {
            drug: d.clone(),
            lot: lots.get(i).cloned().unwrap_or_default(),
            expiry: expiries.get(i).cloned().unwrap_or_default(),
            quantity: quantities.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    match state.stock.receive(&s.info.caller, &campus, no, &forms).await {
        Ok(_) => see_other(&format!("/pharmacy/orders/{campus}/{no}?done=received")),
        Err(StockError::Forbidden(_)) => forbidden(s.t),
        Err(StockError::Invalid(errors)) => {
            render_order(&state, &s, &campus, no, &forms, error_rows(s.t, &errors), false).await
        }
        Err(e) => failed(s.t, "receiving", e),
    }
}

// ---- Transfers ----------------------------------------------------------------------

struct TransferRow {
    id: i64,
    drug: String,
    lot: String,
    expiry: String,
    from: String,
    to: String,
    shipped: i64,
    received: String,
    status: String,
    shipped_at: String,
    short: i64,
    /// The caller may count it in.
    receivable: bool,
}

#[derive(Template)]
#[template(path = "pharmacy/transfers.html")]
struct TransfersPage<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<TransferRow>,
    errors: Vec<(String, String)>,
    notice: Option<&'static str>,
}

async fn render_transfers(
    state: &AppState,
    s: &Signed,
    errors: Vec<(String, String)>,
    notice: Option<&'static str>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let labels = StoreLabels::load(state, t).await;
    let stores = match state.stock.stores(&info.caller).await {
        Ok(x) => x,
        Err(e) => return failed(t, "stores", e),
    };
    let mut campuses: Vec<String> = stores.iter().map(|x| x.campus.clone()).collect();
    campuses.dedup();
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for campus in &campuses {
        let list = match state.stock.transfers(&info.caller, campus).await {
            Ok(l) => l,
            Err(StockError::Forbidden(_)) => continue,
            Err(e) => return failed(t, "transfers", e),
        };
        for x in list {
            if !seen.insert(x.id) {
                continue;
            }
            rows.push(TransferRow {
                id: x.id,
                drug: drug_name(t, &x.drug),
                lot: x.lot.clone(),
                expiry: x.expiry.clone(),
                from: labels.of(&x.from_campus, &x.from_store),
                to: labels.of(&x.to_campus, &x.to_store),
                shipped: x.shipped,
                received: x.received.map(|r| r.to_string()).unwrap_or_default(),
                short: x.received.map_or(0, |r| x.shipped - r),
                receivable: x.status == "in-transit" && StockRoom::may_keep(&info.caller, &x.to_campus),
                status: x.status,
                shipped_at: local_time(x.shipped_at),
            });
        }
    }
    rows.sort_by_key(|r| (r.status != "in-transit", -r.id));
    page(TransfersPage { t, shell: &shell, rows, errors, notice }.render())
}

async fn transfers_page(State(state): State<AppState>, s: Signed, Query(q): Query<DoneQuery>) -> Response {
    if !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    let notice = match q.done.as_deref() {
        Some("shipped") => Some("stock-shipped"),
        Some("received") => Some("stock-transfer-received"),
        _ => None,
    };
    render_transfers(&state, &s, Vec::new(), notice).await
}

async fn receive_transfer(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) || !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    match state.stock.receive_transfer(&s.info.caller, id, &form_value(&f, "counted")).await {
        Ok(_) => see_other("/pharmacy/transfers?done=received"),
        Err(StockError::Forbidden(_)) => forbidden(s.t),
        Err(StockError::Invalid(errors)) => render_transfers(&state, &s, error_rows(s.t, &errors), None).await,
        Err(e) => failed(s.t, "receiving a transfer", e),
    }
}

// ---- Stocktake ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "pharmacy/count.html")]
struct CountPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stores: Vec<(String, String, bool)>,
    store: String,
    /// (batch id, drug, lot, expiry, book, typed count)
    rows: Vec<(i64, String, String, String, i64, String)>,
    reason: String,
    errors: Vec<(String, String)>,
}

async fn render_count(
    state: &AppState,
    s: &Signed,
    asked: Option<&str>,
    typed: &[(i64, String, String)],
    reason: String,
    errors: Vec<(String, String)>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let stores: Vec<StockStore> = match state.stock.stores(&info.caller).await {
        Ok(x) => x.into_iter().filter(|x| StockRoom::may_keep(&info.caller, &x.campus)).collect(),
        Err(e) => return failed(t, "stores", e),
    };
    let chosen = chosen_store(&stores, asked, &shell);
    let key = chosen.as_ref().map(|c| format!("{}/{}", c.campus, c.code)).unwrap_or_default();
    let batches = match &chosen {
        Some(c) => {
            state.fhir.operations().pharmacy().batches(&c.campus, &c.code, None, false).await.unwrap_or_default()
        }
        None => Vec::new(),
    };
    let rows = batches
        .into_iter()
        .map(|b| {
            let typed = typed.iter().find(|x| x.0 == b.id).map(|x| x.2.clone()).unwrap_or_default();
            (b.id, drug_name(t, &b.drug), b.lot, b.expiry, b.quantity, typed)
        })
        .collect();
    page(
        CountPage {
            t,
            shell: &shell,
            stores: StoreLabels::load(state, t).await.choices(&stores, &key),
            store: key,
            rows,
            reason,
            errors,
        }
        .render(),
    )
}

#[derive(Deserialize, Default)]
struct CountQuery {
    store: Option<String>,
}

async fn count_page(State(state): State<AppState>, s: Signed, Query(q): Query<CountQuery>) -> Response {
    if !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    render_count(&state, &s, q.store.as_deref(), &[], String::new(), Vec::new()).await
}

async fn post_count(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    let store = value("store");
    let (campus, code) = store.split_once('/').unwrap_or_default();
    // `book-<batch>` carries the quantity the count started from, `counted-<batch>` the count.
    let counts: Vec<(i64, String, String)> = f
        .iter()
        .filter_map(|(k, v)| {
            let id: i64 = k.strip_prefix("counted-")?.parse().ok()?;
            Some((id, value(&format!("book-{id}")), v.clone()))
        })
        .collect();
    match state.stock.count(&s.info.caller, campus, code, &counts, &value("reason")).await {
        Ok(_) => see_other(&format!("/pharmacy/stock?store={store}&done=count")),
        Err(StockError::Forbidden(_)) => forbidden(s.t),
        Err(StockError::Invalid(errors)) => {
            render_count(&state, &s, Some(&store), &counts, value("reason"), error_rows(s.t, &errors)).await
        }
        Err(e) => failed(s.t, "stocktake", e),
    }
}
