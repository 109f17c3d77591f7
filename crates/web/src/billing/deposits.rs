//! Deposits (预交金) of a stay: its receipts and balance, the form that takes one
//! (`/billing/deposits/{stay}`, the admission office and cashiers), and a receipt to
//! print (`/billing/deposits/receipt/{campus}/{no}`).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use lianyi_billing::cashier::METHODS;
use lianyi_billing::deposits::{DepositError, DepositForm, Deposits};
use lianyi_billing::money::Fen;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, active_campus, campus_name, shell};

fn worded(t: Tr, e: &DepositError) -> Vec<String> {
    match e {
        DepositError::Invalid(fs) => fs
            .iter()
            .map(|f| {
                let rule = t
                    .try_get(&format!("dep-rule-{}-{}", f.field, f.rule))
                    .map_or_else(|| f.detail.clone(), str::to_string);
                format!("{}: {rule}", t.named("dep-field", f.field))
            })
            .collect(),
        DepositError::Forbidden(_) => vec![t.get("dep-forbidden").to_string()],
        other => {
            tracing::error!(error = %other, "deposit");
            vec![t.get("dep-failed").to_string()]
        }
    }
}

struct Row {
    receipt: String,
    campus: String,
    no: i64,
    at: String,
    kind: String,
    method: String,
    amount: String,
    cashier: String,
}

#[derive(Template)]
#[template(path = "billing/deposits.html")]
struct AccountPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stay: String,
    number: String,
    patient: String,
    patient_name: String,
    balance: String,
    rows: Vec<Row>,
    may_take: bool,
    /// A discharged stay with something to settle.
    may_settle: bool,
    done: Option<String>,
    campus: String,
    methods: Vec<(&'static str, String)>,
    form: DepositForm,
    errors: Vec<String>,
}

async fn render(
    state: &AppState,
    s: &Signed,
    stay: &str,
    form: DepositForm,
    (errors, done): (Vec<String>, Option<String>),
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let account = match state.deposits.account(caller, stay).await {
        Ok(a) => a,
        Err(DepositError::Forbidden(_)) => return forbidden(t),
        Err(DepositError::Invalid(_)) => return not_found(t),
        Err(e) => {
            tracing::error!(error = %e, "deposits");
            return crate::ui::render::server_error(Some(t));
        }
    };
    let campus = active_campus(caller, &s.headers).map(|c| c.as_str().to_string()).unwrap_or_default();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        AccountPage {
            t,
            shell: &shell,
            stay: account.stay,
            number: account.number,
            patient: account.patient,
            patient_name: account.patient_name,
            balance: account.balance.to_string(),
            rows: account
                .deposits
                .into_iter()
                .map(|d| Row {
                    receipt: format!("{:08}", d.entry.receipt_no),
                    campus: d.entry.campus,
                    no: d.entry.receipt_no,
                    at: local_time(d.entry.at),
                    kind: t.named("dep-kind", &d.entry.kind),
                    method: t.named("pay-method", &d.entry.method),
                    amount: Fen(d.entry.amount_fen).to_string(),
                    cashier: d.entry.cashier,
                })
                .collect(),
            may_take: Deposits::may_take(caller) && account.in_hospital && !campus.is_empty(),
            may_settle: Deposits::may_take(caller) && !account.in_hospital && !campus.is_empty(),
            done,
            campus,
            methods: METHODS.iter().map(|m| (*m, t.named("pay-method", m))).collect(),
            form,
            errors,
        }
        .render(),
    )
}

pub(super) async fn account_page(
    State(state): State<AppState>,
    s: Signed,
    Path(stay): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !Deposits::may_read(&s.info.caller) {
        return forbidden(s.t);
    }
    let t = s.t;
    let done = match (q.get("done").map(String::as_str), q.get("refund"), q.get("paid")) {
        (Some("settled"), Some(refund), Some(paid)) if refund.len() < 16 && paid.len() < 16 => {
            Some(t.get("dep-settled").replace("{refund}", refund).replace("{paid}", paid))
        }
        _ => None,
    };
    render(&state, &s, &stay, DepositForm { method: "cash".into(), ..DepositForm::default() }, (Vec::new(), done)).await
}

pub(super) async fn settle(
    State(state): State<AppState>,
    s: Signed,
    Path(stay): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Deposits::may_take(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = DepositForm {
        campus: v("campus"),
        stay: stay.clone(),
        amount: String::new(),
        method: v("method"),
        reference: v("reference"),
    };
    match state.deposits.settle(&s.info.caller, &state.cashier, &f).await {
        Ok(done) => {
            see_other(&format!("/billing/deposits/{stay}?done=settled&refund={}&paid={}", done.refund, done.paid))
        }
        Err(DepositError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, &stay, f, (errors, None)).await
        }
    }
}

pub(super) async fn take(
    State(state): State<AppState>,
    s: Signed,
    Path(stay): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Deposits::may_take(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = DepositForm {
        campus: v("campus"),
        stay: stay.clone(),
        amount: v("amount"),
        method: v("method"),
        reference: v("reference"),
    };
    match state.deposits.take(&s.info.caller, &f).await {
        Ok(d) => see_other(&format!("/billing/deposits/receipt/{}/{}", d.entry.campus, d.entry.receipt_no)),
        Err(DepositError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, &stay, f, (errors, None)).await
        }
    }
}

#[derive(Template)]
#[template(path = "billing/deposit_receipt.html")]
struct ReceiptPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campus_name: String,
    number: String,
    stay: String,
    stay_number: String,
    patient_name: String,
    at: String,
    method: String,
    reference: String,
    amount: String,
    balance: String,
    cashier: String,
}

pub(super) async fn receipt_page(
    State(state): State<AppState>,
    s: Signed,
    Path((campus, no)): Path<(String, i64)>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let d = match state.deposits.receipt(caller, &campus, no).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(t),
        Err(DepositError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "deposit receipt");
            return crate::ui::render::server_error(Some(t));
        }
    };
    let account = match state.deposits.account(caller, &d.entry.stay).await {
        Ok(a) => a,
        Err(DepositError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let shell = shell(&state, &s.info, t, &s.headers).await;
    page(
        ReceiptPage {
            t,
            shell: &shell,
            campus_name: campus_name(&state, &campus, t).await,
            number: format!("{:08}", d.entry.receipt_no),
            stay: d.entry.stay,
            stay_number: account.number,
            patient_name: account.patient_name,
            at: local_time(d.entry.at),
            method: t.named("pay-method", &d.entry.method),
            reference: d.entry.reference.unwrap_or_default(),
            amount: Fen(d.entry.amount_fen).to_string(),
            balance: account.balance.to_string(),
            cashier: d.entry.cashier,
        }
        .render(),
    )
}
