//! Billing pages: the campus's price list (收费项目) with each item's price today and
//! its history, and for the price office (managers) adding items and setting prices
//! from a date. The rules live in [`lianyi_billing::prices`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use lianyi_billing::cashier::{METHODS, PayError, PaymentForm};
use lianyi_billing::money::Fen;
use lianyi_billing::prices::{CATEGORIES, FieldError, ItemForm, KINDS, PriceError};
use lianyi_security::roles::Capability;
use lianyi_security::{Caller, Perm};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{csv, forbidden, form_value, form_values, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{NavLink, Place, Shell, campus_name, shell, staff_may};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/billing/prices", get(list_page).post(put_item))
        .route("/billing/prices.csv", get(list_csv))
        .route("/billing/prices/{campus}/{code}", get(item_page).post(set_price))
        .route("/billing/cashier", get(cashier_page).post(take_payment))
        .route("/billing/receipts/{campus}/{no}", get(receipt_page))
        .route("/billing/receipts/{campus}/{no}/refund", axum::routing::post(refund))
        .route("/billing/settlement", get(settlement_page).post(settle))
        .route("/billing/coverage", get(coverage::coverage_page).post(coverage::record))
        .route("/billing/reports", get(reports::report_page))
        .route("/billing/reports.csv", get(reports::report_csv))
        .route("/billing/deposits/{stay}", get(deposits::account_page).post(deposits::take))
        .route("/billing/deposits/receipt/{campus}/{no}", get(deposits::receipt_page))
        .route("/billing/deposits/{stay}/settle", axum::routing::post(deposits::settle))
}

mod coverage;
mod deposits;
mod reports;

fn may_see_reports(c: &Caller) -> bool {
    lianyi_billing::reports::Reports::may_view(c)
}

fn may_take_payments(c: &Caller) -> bool {
    staff_may(c, "Invoice", Perm::Create)
}

fn may_see(c: &Caller) -> bool {
    c.can(Capability::ManagePrices) || staff_may(c, "ChargeItem", Perm::Read)
}

pub(crate) const NAV: &[NavLink] = &[
    NavLink { href: "/billing/prices", text: "nav-prices", place: Place::Bar, shown: may_see },
    NavLink { href: "/billing/settlement", text: "nav-settlement", place: Place::Bar, shown: may_take_payments },
    NavLink { href: "/billing/reports", text: "nav-revenue", place: Place::Bar, shown: may_see_reports },
];

struct Row {
    code: String,
    national_code: String,
    category: String,
    name: String,
    unit: String,
    price: String,
    since: String,
}

#[derive(Template)]
#[template(path = "billing/prices.html")]
struct ListPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// (id, name, chosen)
    campuses: Vec<(String, String, bool)>,
    campus: String,
    q: String,
    category: String,
    categories: &'static [&'static str],
    kinds: &'static [&'static str],
    rows: Vec<Row>,
    may_manage: bool,
    form: ItemFormView,
    errors: Vec<(String, String)>,
    notice: Option<&'static str>,
}

#[derive(Default)]
struct ItemFormView {
    code: String,
    national_code: String,
    category: String,
    kind: String,
    reference: String,
    name_zh: String,
    name_en: String,
    unit: String,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    campus: Option<String>,
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
    done: Option<String>,
}

/// The campus the page shows: the one asked for if readable, else the user's active
/// campus, else the first with a list; and the campuses to choose from.
async fn chosen_campus(
    state: &AppState,
    caller: &Caller,
    shell: &Shell,
    asked: Option<String>,
) -> (String, Vec<String>) {
    let mut ids = state.prices.campuses(caller).await.unwrap_or_default();
    if let Some(c) = &shell.campus
        && !ids.iter().any(|i| i == c.as_str())
    {
        ids.insert(0, c.as_str().to_string());
    }
    let campus = asked
        .filter(|a| ids.contains(a))
        .or_else(|| shell.campus.as_ref().map(|c| c.as_str().to_string()))
        .or_else(|| ids.first().cloned())
        .unwrap_or_default();
    (campus, ids)
}

fn error_rows(t: Tr, errors: &[FieldError]) -> Vec<(String, String)> {
    errors
        .iter()
        .map(|e| {
            let text = t.try_get(&format!("price-rule-{}", e.rule)).map_or(e.detail.clone(), str::to_string);
            (e.field.to_string(), text)
        })
        .collect()
}

async fn render_list(
    state: &AppState,
    s: &Signed,
    q: ListQuery,
    form: ItemFormView,
    errors: Vec<(String, String)>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let caller = &info.caller;
    let shell = shell(state, info, t, &s.headers).await;
    let (campus, ids) = chosen_campus(state, caller, &shell, q.campus).await;
    let mut campuses = Vec::new();
    for id in ids {
        let name = campus_name(state, &id, t).await;
        campuses.push((id.clone(), name, id == campus));
    }
    let category = Some(q.category.clone()).filter(|c| CATEGORIES.contains(&c.as_str()));
    let now = state.fhir.now_ms();
    let rows = match state.prices.list(caller, &campus, &q.q, category.as_deref(), now).await {
        Ok(list) => list
            .into_iter()
            .map(|p| Row {
                price: p.amount_fen.map(|f| Fen(f).to_string()).unwrap_or_default(),
                since: p.since.map(|s| local_time(s)[..10].to_string()).unwrap_or_default(),
                name: t.pick(p.item.name_zh, p.item.name_en),
                category: p.item.category,
                national_code: p.item.national_code.unwrap_or_default(),
                unit: p.item.unit,
                code: p.item.code,
            })
            .collect(),
        Err(PriceError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "price list");
            Vec::new()
        }
    };
    let may_manage = caller.can(Capability::ManagePrices);
    let notice = (q.done.as_deref() == Some("item")).then_some("price-item-saved");
    page(
        ListPage {
            t,
            shell: &shell,
            campuses,
            campus,
            q: q.q,
            category: category.unwrap_or_default(),
            categories: &CATEGORIES,
            kinds: &KINDS,
            rows,
            may_manage,
            form,
            errors,
            notice,
        }
        .render(),
    )
}

async fn list_page(State(state): State<AppState>, s: Signed, Query(q): Query<ListQuery>) -> Response {
    if !may_see(&s.info.caller) {
        return forbidden(s.t);
    }
    render_list(&state, &s, q, ItemFormView::default(), Vec::new()).await
}

/// The list as the page shows it, as CSV for the public price notice (物价公示) and
/// spreadsheets: UTF-8 with a byte-order mark, quoted fields, in the page's language.
async fn list_csv(State(state): State<AppState>, s: Signed, Query(q): Query<ListQuery>) -> Response {
    let (caller, t) = (&s.info.caller, s.t);
    if !may_see(caller) {
        return forbidden(t);
    }
    let shell = shell(&state, &s.info, t, &s.headers).await;
    let (campus, _) = chosen_campus(&state, caller, &shell, q.campus).await;
    let category = Some(q.category).filter(|c| CATEGORIES.contains(&c.as_str()));
    let Ok(list) = state.prices.list(caller, &campus, &q.q, category.as_deref(), state.fhir.now_ms()).await else {
        return forbidden(t);
    };
    let header = [
        "price-code",
        "price-national-code",
        "price-name",
        "price-category",
        "price-unit",
        "price-amount",
        "price-since",
    ];
    let rows = list.into_iter().map(|p| {
        vec![
            p.item.code,
            p.item.national_code.unwrap_or_default(),
            t.pick(p.item.name_zh, p.item.name_en),
            t.get(&format!("price-cat-{}", p.item.category)).to_string(),
            p.item.unit,
            p.amount_fen.map(|f| Fen(f).to_string()).unwrap_or_default(),
            p.since.map(|s| local_time(s)[..10].to_string()).unwrap_or_default(),
        ]
    });
    csv(t, &format!("prices-{campus}.csv"), &header, rows)
}

#[derive(Deserialize)]
struct ItemPost {
    csrf: String,
    campus: String,
    code: String,
    #[serde(default)]
    national_code: String,
    category: String,
    kind: String,
    #[serde(default)]
    reference: String,
    name_zh: String,
    name_en: String,
    unit: String,
}

async fn put_item(State(state): State<AppState>, s: Signed, Form(f): Form<ItemPost>) -> Response {
    if !s.csrf_ok(&f.csrf) {
        return forbidden(s.t);
    }
    let form = ItemForm {
        campus: f.campus.clone(),
        code: f.code.clone(),
        national_code: f.national_code.clone(),
        category: f.category.clone(),
        kind: f.kind.clone(),
        reference: f.reference.clone(),
        name_zh: f.name_zh.clone(),
        name_en: f.name_en.clone(),
        unit: f.unit.clone(),
    };
    match state.prices.put_item(&s.info.caller, &form).await {
        Ok(item) => see_other(&format!("/billing/prices/{}/{}?done=item", item.campus, item.code)),
        Err(PriceError::Forbidden(_)) => forbidden(s.t),
        Err(PriceError::Invalid(errors)) => {
            let view = ItemFormView {
                code: f.code,
                national_code: f.national_code,
                category: f.category,
                kind: f.kind,
                reference: f.reference,
                name_zh: f.name_zh,
                name_en: f.name_en,
                unit: f.unit,
            };
            let q = ListQuery { campus: Some(f.campus), ..Default::default() };
            let rows = error_rows(s.t, &errors);
            render_list(&state, &s, q, view, rows).await
        }
        Err(e) => {
            tracing::error!(error = %e, "price item");
            crate::ui::render::server_error(Some(s.t))
        }
    }
}

#[derive(Template)]
#[template(path = "billing/price_item.html")]
struct ItemPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campus: String,
    campus_name: String,
    code: String,
    name: String,
    category: String,
    kind: String,
    national_code: String,
    unit: String,
    price: String,
    /// (from, amount, recorded at, by)
    history: Vec<(String, String, String, String)>,
    may_manage: bool,
    amount: String,
    effective: String,
    errors: Vec<(String, String)>,
    notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
struct ItemQuery {
    done: Option<String>,
}

async fn render_item(
    state: &AppState,
    s: &Signed,
    campus: String,
    code: String,
    typed: (String, String),
    errors: Vec<(String, String)>,
    notice: Option<&'static str>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let found = match state.prices.item(&info.caller, &campus, &code).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(t),
        Err(PriceError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "price item");
            return crate::ui::render::server_error(Some(t));
        }
    };
    let shell = shell(state, info, t, &s.headers).await;
    let (p, history) = found;
    let campus_name = campus_name(state, &campus, t).await;
    page(
        ItemPage {
            t,
            shell: &shell,
            campus_name,
            campus,
            price: p.amount_fen.map(|f| Fen(f).to_string()).unwrap_or_default(),
            name: t.pick(p.item.name_zh, p.item.name_en),
            category: p.item.category,
            kind: p.item.kind,
            national_code: p.item.national_code.unwrap_or_default(),
            unit: p.item.unit,
            code: p.item.code,
            history: history
                .into_iter()
                .map(|h| {
                    (
                        local_time(h.effective_from),
                        Fen(h.amount_fen).to_string(),
                        local_time(h.recorded_at),
                        h.recorded_by,
                    )
                })
                .collect(),
            may_manage: info.caller.can(Capability::ManagePrices),
            amount: typed.0,
            effective: typed.1,
            errors,
            notice,
        }
        .render(),
    )
}

async fn item_page(
    State(state): State<AppState>,
    s: Signed,
    Path((campus, code)): Path<(String, String)>,
    Query(q): Query<ItemQuery>,
) -> Response {
    let notice = match q.done.as_deref() {
        Some("item") => Some("price-item-saved"),
        Some("price") => Some("price-set"),
        _ => None,
    };
    let today = lianyi_clinical::scheduling::local_date(state.fhir.now_ms());
    render_item(&state, &s, campus, code, (String::new(), today), Vec::new(), notice).await
}

#[derive(Deserialize)]
struct PricePost {
    csrf: String,
    amount: String,
    effective: String,
}

async fn set_price(
    State(state): State<AppState>,
    s: Signed,
    Path((campus, code)): Path<(String, String)>,
    Form(f): Form<PricePost>,
) -> Response {
    if !s.csrf_ok(&f.csrf) {
        return forbidden(s.t);
    }
    match state.prices.set_price(&s.info.caller, &campus, &code, &f.amount, &f.effective).await {
        Ok(_) => see_other(&format!("/billing/prices/{campus}/{code}?done=price")),
        Err(PriceError::Forbidden(_)) => forbidden(s.t),
        Err(PriceError::Invalid(errors)) => {
            let rows = error_rows(s.t, &errors);
            render_item(&state, &s, campus, code, (f.amount, f.effective), rows, None).await
        }
        Err(e) => {
            tracing::error!(error = %e, "set price");
            crate::ui::render::server_error(Some(s.t))
        }
    }
}

/// A patient's name as `caller` reads it (an audited read); empty when they may not.
async fn patient_name(state: &AppState, caller: &Caller, patient: &str) -> String {
    let Some(rt) = lianyi_fhir::ResourceType::parse("Patient") else { return String::new() };
    let Ok(reader) = state.fhir.reader(caller, rt).await else { return String::new() };
    reader
        .read(patient)
        .await
        .ok()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p.body).ok())
        .map(|p| lianyi_clinical::registry::person_of(&p).name)
        .unwrap_or_default()
}

/// One unpaid charge on the cashier's page.
struct DueRow {
    id: String,
    when: String,
    name: String,
    /// Locale key of the category.
    category: String,
    quantity: String,
    amount: String,
}

#[derive(Template)]
#[template(path = "billing/cashier.html")]
struct CashierPage<'a> {
    t: Tr,
    shell: &'a Shell,
    patient: String,
    patient_name: String,
    rows: Vec<DueRow>,
    total: String,
    methods: &'static [&'static str],
    method: String,
    tendered: String,
    reference: String,
    errors: Vec<(String, String)>,
    changed: bool,
}

#[derive(Deserialize, Default)]
struct CashierQuery {
    #[serde(default)]
    patient: String,
}

async fn render_cashier(
    state: &AppState,
    s: &Signed,
    patient: String,
    typed: (String, String, String),
    errors: Vec<(String, String)>,
    changed: bool,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let open = state.charges.open_charges(&info.caller, &patient).await.unwrap_or_default();
    let name = patient_name(state, &info.caller, &patient).await;
    let total = Fen(open.iter().map(|c| c.amount.0).sum());
    let rows = open
        .into_iter()
        .map(|c| DueRow {
            id: c.id,
            when: c.when,
            name: t.pick(c.name_zh, c.name_en),
            category: format!("price-cat-{}", c.category),
            quantity: format!("{} {}", c.quantity, c.unit),
            amount: c.amount.to_string(),
        })
        .collect();
    page(
        CashierPage {
            t,
            shell: &shell,
            patient,
            patient_name: name,
            rows,
            total: total.to_string(),
            methods: &METHODS,
            method: typed.0,
            tendered: typed.1,
            reference: typed.2,
            errors,
            changed,
        }
        .render(),
    )
}

async fn cashier_page(State(state): State<AppState>, s: Signed, Query(q): Query<CashierQuery>) -> Response {
    if !may_take_payments(&s.info.caller) {
        return forbidden(s.t);
    }
    render_cashier(&state, &s, q.patient, ("cash".into(), String::new(), String::new()), Vec::new(), false).await
}

async fn take_payment(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_take_payments(&s.info.caller) {
        return forbidden(s.t);
    }
    // The campus the desk works at (not the whole shell: a payment redirects).
    let campus = crate::ui::shell::active_campus(&s.info.caller, &s.headers);
    let form = PaymentForm {
        campus: campus.as_ref().map(|c| c.as_str().to_string()).unwrap_or_default(),
        patient: value("patient"),
        charges: form_values(&f, "charge"),
        method: value("method"),
        tendered: value("tendered"),
        reference: value("reference"),
    };
    match state.cashier.pay(&s.info.caller, &form).await {
        Ok(paid) => {
            see_other(&format!("/billing/receipts/{}/{}?change={}", paid.campus, paid.invoice_no, paid.change.0))
        }
        Err(PayError::Forbidden(_)) => forbidden(s.t),
        Err(PayError::Invalid(errors)) => {
            let rows = error_rows(s.t, &errors);
            render_cashier(&state, &s, form.patient, (form.method, form.tendered, form.reference), rows, false).await
        }
        Err(PayError::Changed) => {
            render_cashier(&state, &s, form.patient, (form.method, form.tendered, form.reference), Vec::new(), true)
                .await
        }
        Err(e) => {
            tracing::error!(error = %e, "payment");
            crate::ui::render::server_error(Some(s.t))
        }
    }
}

#[derive(Template)]
#[template(path = "billing/receipt.html")]
struct ReceiptPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campus_name: String,
    number: String,
    patient: String,
    patient_name: String,
    paid_at: String,
    method: String,
    reference: String,
    cashier: String,
    /// (name, category key, quantity, unit price, amount)
    lines: Vec<(String, String, String, String, String)>,
    /// (category key, total)
    by_category: Vec<(String, String)>,
    total: String,
    tendered: String,
    change: String,
    /// A red-letter invoice: the number it refunds and why.
    refund_of: Option<String>,
    reason: String,
    /// Lines the cashier may still refund: (charge id, name, amount).
    refundable: Vec<(String, String, String)>,
    campus: String,
    invoice_no: i64,
    /// A refused refund's rule.
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct ReceiptQuery {
    change: Option<i64>,
    error: Option<String>,
}

async fn receipt_page(
    State(state): State<AppState>,
    s: Signed,
    Path((campus, no)): Path<(String, i64)>,
    Query(q): Query<ReceiptQuery>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let receipt = match state.cashier.receipt(&info.caller, &campus, no).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(t),
        Err(PayError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "receipt");
            return crate::ui::render::server_error(Some(t));
        }
    };
    let shell = shell(&state, info, t, &s.headers).await;
    let p = receipt.payment;
    let patient_name = patient_name(&state, &info.caller, &p.patient).await;
    let change = q.change.map(|c| Fen(c).to_string()).unwrap_or_else(|| Fen(p.tendered_fen - p.amount_fen).to_string());
    let refundable = if p.refund_of.is_none() && may_take_payments(&info.caller) {
        receipt
            .lines
            .iter()
            .filter(|l| l.status == "billed")
            .map(|l| (l.id.clone(), t.pick(l.name_zh.clone(), l.name_en.clone()), l.amount.to_string()))
            .collect()
    } else {
        Vec::new()
    };
    page(
        ReceiptPage {
            t,
            shell: &shell,
            campus_name: campus_name(&state, &campus, t).await,
            number: format!("{:08}", p.invoice_no),
            patient_name,
            patient: p.patient,
            paid_at: local_time(p.paid_at),
            method: format!("pay-method-{}", p.method),
            reference: p.reference.unwrap_or_default(),
            cashier: p.cashier,
            lines: receipt
                .lines
                .into_iter()
                .map(|l| {
                    (
                        t.pick(l.name_zh, l.name_en),
                        format!("price-cat-{}", l.category),
                        format!("{} {}", l.quantity, l.unit),
                        l.unit_price.to_string(),
                        l.amount.to_string(),
                    )
                })
                .collect(),
            by_category: receipt
                .by_category
                .into_iter()
                .map(|(c, f)| (format!("price-cat-{c}"), f.to_string()))
                .collect(),
            total: Fen(p.amount_fen).to_string(),
            tendered: Fen(p.tendered_fen).to_string(),
            change,
            refund_of: p.refund_of.map(|n| format!("{n:08}")),
            reason: p.reason.unwrap_or_default(),
            refundable,
            campus: campus.clone(),
            invoice_no: no,
            error: q.error.filter(|e| e.chars().all(|c| c.is_ascii_lowercase() || c == '-')),
        }
        .render(),
    )
}

async fn refund(
    State(state): State<AppState>,
    s: Signed,
    Path((campus, no)): Path<(String, i64)>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_take_payments(&s.info.caller) {
        return forbidden(s.t);
    }
    let charges: Vec<String> = form_values(&f, "charge");
    match state.cashier.refund(&s.info.caller, &campus, no, &charges, &value("reason")).await {
        Ok(red) => see_other(&format!("/billing/receipts/{campus}/{red}")),
        Err(PayError::Forbidden(_)) => forbidden(s.t),
        Err(PayError::Invalid(errors)) => {
            let rule = errors.first().map_or("failed", |e| e.rule);
            see_other(&format!("/billing/receipts/{campus}/{no}?error={rule}"))
        }
        Err(PayError::Changed) => see_other(&format!("/billing/receipts/{campus}/{no}?error=changed")),
        Err(e) => {
            tracing::error!(error = %e, "refund");
            crate::ui::render::server_error(Some(s.t))
        }
    }
}

#[derive(Template)]
#[template(path = "billing/settlement.html")]
struct SettlementPage<'a> {
    t: Tr,
    shell: &'a Shell,
    day: String,
    /// (method, total, payments, counted as typed)
    totals: Vec<(String, String, i64, String)>,
    grand_total: String,
    settled_at: Option<String>,
    errors: Vec<(String, String)>,
    no_campus: bool,
}

async fn render_settlement(
    state: &AppState,
    s: &Signed,
    typed: &[(String, String)],
    errors: Vec<(String, String)>,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let shell = shell(state, info, t, &s.headers).await;
    let today = lianyi_clinical::scheduling::local_date(state.fhir.now_ms());
    let Some(campus) = shell.campus.as_ref().map(|c| c.as_str().to_string()) else {
        let page_ = SettlementPage {
            t,
            shell: &shell,
            day: today,
            totals: Vec::new(),
            grand_total: String::new(),
            settled_at: None,
            errors,
            no_campus: true,
        };
        return page(page_.render());
    };
    let day = match state.cashier.day(&info.caller, &campus, &today).await {
        Ok(d) => d,
        Err(PayError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "settlement");
            return crate::ui::render::server_error(Some(t));
        }
    };
    let grand = Fen(day.totals.iter().map(|(_, f, _)| f.0).sum());
    let totals = day
        .totals
        .into_iter()
        .map(|(m, f, n)| {
            let typed = typed.iter().find(|(k, _)| *k == m).map(|(_, v)| v.clone()).unwrap_or_default();
            (m, f.to_string(), n, typed)
        })
        .collect();
    page(
        SettlementPage {
            t,
            shell: &shell,
            day: day.day,
            totals,
            grand_total: grand.to_string(),
            settled_at: day.settled_at.map(local_time),
            errors,
            no_campus: false,
        }
        .render(),
    )
}

async fn settlement_page(State(state): State<AppState>, s: Signed) -> Response {
    if !may_take_payments(&s.info.caller) {
        return forbidden(s.t);
    }
    render_settlement(&state, &s, &[], Vec::new()).await
}

async fn settle(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    let value = |k: &str| form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !may_take_payments(&s.info.caller) {
        return forbidden(s.t);
    }
    let shell = shell(&state, &s.info, s.t, &s.headers).await;
    let campus = shell.campus.as_ref().map(|c| c.as_str().to_string()).unwrap_or_default();
    let today = lianyi_clinical::scheduling::local_date(state.fhir.now_ms());
    let counted: Vec<(String, String)> =
        METHODS.iter().map(|m| (m.to_string(), value(&format!("counted-{m}")))).collect();
    match state.cashier.settle(&s.info.caller, &campus, &today, &counted).await {
        Ok(_) => see_other("/billing/settlement"),
        Err(PayError::Forbidden(_)) => forbidden(s.t),
        Err(PayError::Invalid(errors)) => {
            let rows = error_rows(s.t, &errors);
            render_settlement(&state, &s, &counted, rows).await
        }
        Err(e) => {
            tracing::error!(error = %e, "settle");
            crate::ui::render::server_error(Some(s.t))
        }
    }
}
