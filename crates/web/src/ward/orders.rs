//! A stay's orders (`/ward/stays/{id}`): the patient on their bed, the long-term
//! (长期) and one-time (临时) orders with who signed, verified and stopped them, the
//! doctor's form (a medication checked before it is written; a blocking finding needs
//! a reason), the nurse's verification (核对), the doctor's stop; and the order sheets
//! as hospitals print them (`/ward/stays/{id}/orders/print`).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_clinical::prescribing::{Finding, Frequency, catalogue};
use lianyi_inpatient::discharge::{DISPOSITIONS, DischargeForm};
use lianyi_inpatient::orders::{Kind, OrderForm, ROUTES, Signed, WardOrder};
use lianyi_inpatient::stays::{Inpatient, InpatientError, StayCard};

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, not_found, page, see_other};
use crate::ui::session::Signed as Session;
use crate::ui::shell::{Shell, shell};

use super::worded;
use crate::ui::render::urlencode;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ward/stays/{id}", get(stay_page).post(sign))
        .route("/ward/stays/{id}/orders/verify", post(verify))
        .route("/ward/stays/{id}/orders/stop", post(stop))
        .route("/ward/stays/{id}/orders/print", get(print_page))
        .route("/ward/stays/{id}/discharge", post(discharge))
        .route("/ward/stays/{id}/summary", get(summary_page))
}

/// The long-term or the one-time orders.
struct Section {
    /// Locale key of the title.
    title: &'static str,
    id: &'static str,
    rows: Vec<OrderRow>,
}

fn sections(t: Tr, orders: &[WardOrder], may_keep: bool, may_order: bool, sheet: bool) -> Vec<Section> {
    vec![
        Section {
            title: if sheet { "ward-sheet-long" } else { "ward-long-term" },
            id: "long-term",
            rows: order_rows(t, orders, true, may_keep, may_order),
        },
        Section {
            title: if sheet { "ward-sheet-once" } else { "ward-one-time" },
            id: "one-time",
            rows: order_rows(t, orders, false, may_keep, may_order),
        },
    ]
}

struct OrderRow {
    reference: String,
    start: String,
    what: String,
    detail: String,
    doctor: String,
    verified: String,
    stopped: String,
    may_verify: bool,
    may_stop: bool,
    status: String,
}

fn order_rows(t: Tr, orders: &[WardOrder], long_term: bool, may_keep: bool, may_order: bool) -> Vec<OrderRow> {
    orders
        .iter()
        .filter(|o| o.long_term == long_term)
        .map(|o| {
            let detail = if o.kind == Kind::Medication {
                let route =
                    ROUTES.iter().find(|r| r.0 == o.route).map_or(o.route.clone(), |r| t.pick(r.1, r.2).to_string());
                format!("{} · {} · {}", o.dose, route, t.named("ward-freq", &o.frequency))
            } else {
                format!("{} · {}", t.named("ward-kind", o.kind.code()), t.named("ward-freq", &o.frequency))
            };
            let active = o.status == "active" && o.stopped.is_none();
            OrderRow {
                reference: o.reference.clone(),
                start: local_time(o.start_ms),
                what: o.what.clone(),
                detail: if o.note.is_empty() || o.kind != Kind::Medication {
                    detail
                } else {
                    format!("{detail} · {}", o.note)
                },
                doctor: o.doctor.clone(),
                // The first nurse's check, where the campus asks for a second nurse's.
                verified: [&o.checked, &o.verified]
                    .into_iter()
                    .flatten()
                    .map(|(by, at)| format!("{by} {}", local_time(*at)))
                    .collect::<Vec<_>>()
                    .join(" / "),
                stopped: o.stopped.as_ref().map(|(by, at)| format!("{by} {}", local_time(*at))).unwrap_or_default(),
                may_verify: may_keep && active && o.verified.is_none(),
                may_stop: may_order && active && o.long_term,
                status: t.named(
                    "ward-order-status",
                    match (active, &o.verified, &o.checked) {
                        (false, _, _) => "stopped",
                        (true, Some(_), _) => "in-force",
                        (true, None, Some(_)) => "checked",
                        (true, None, None) => "unverified",
                    },
                ),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "ward/stay.html")]
struct StayPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stay: String,
    ward: String,
    card: StayCard,
    name: String,
    bed: String,
    sections: Vec<Section>,
    may_order: bool,
    kinds: Vec<(&'static str, String)>,
    drugs: Vec<(&'static str, String)>,
    routes: Vec<(&'static str, String)>,
    frequencies: Vec<(&'static str, String)>,
    form: OrderForm,
    /// Findings of a medication not yet signed (blocking ones need a reason).
    findings: Vec<(String, bool)>,
    errors: Vec<String>,
    done: Option<String>,
    discharge: DischargeForm,
    dispositions: Vec<(&'static str, String)>,
}

async fn render(
    state: &AppState,
    s: &Session,
    stay: &str,
    (form, discharge): (OrderForm, DischargeForm),
    (findings, errors, done): (Vec<Finding>, Vec<String>, Option<String>),
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let (card, ward, bed) = match state.inpatient.stay_card(caller, stay).await {
        Ok(c) => c,
        Err(InpatientError::Forbidden(_)) => return forbidden(t),
        Err(InpatientError::NotFound(_) | InpatientError::Invalid(_)) => return not_found(t),
        Err(e) => {
            tracing::error!(error = %e, "stay");
            return crate::ui::render::server_error(Some(t));
        }
    };
    let mut errors = errors;
    let orders = match state.inpatient.orders(caller, stay).await {
        Ok(o) => o,
        Err(e) => {
            errors.extend(worded(t, &e));
            Vec::new()
        }
    };
    let (may_keep, may_order) = (Inpatient::may_keep_ward(caller), Inpatient::may_order(caller));
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        StayPage {
            t,
            shell: &shell,
            stay: stay.to_string(),
            name: t.pick(&card.patient.names.zh, &card.patient.names.en).clone(),
            ward: ward.id.clone(),
            bed: format!("{} · {}", t.pick(&ward.names.zh, &ward.names.en), t.pick(&bed.zh, &bed.en)),
            card,
            sections: sections(t, &orders, may_keep, may_order, false),
            may_order,
            kinds: Kind::ALL.iter().map(|k| (k.code(), t.named("ward-kind", k.code()))).collect(),
            drugs: catalogue()
                .iter()
                .map(|d| (d.code, format!("{} {} ({})", t.pick(d.zh, d.en), d.strength, d.unit)))
                .collect(),
            routes: ROUTES.iter().map(|r| (r.0, t.pick(r.1, r.2).to_string())).collect(),
            frequencies: Frequency::EVERY.iter().map(|f| (f.code(), t.named("ward-freq", f.code()))).collect(),
            form,
            findings: findings.iter().map(|f| (t.pick(&f.zh, &f.en).clone(), f.blocking)).collect(),
            errors,
            done: done.and_then(|d| t.try_get(&format!("ward-done-{d}"))).map(str::to_string),
            discharge,
            dispositions: DISPOSITIONS.iter().map(|d| (*d, t.named("ward-disposition", d))).collect(),
        }
        .render(),
    )
}

async fn stay_page(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !Inpatient::may_see_boards(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = OrderForm {
        kind: "medication".into(),
        term: "long".into(),
        route: "po".into(),
        frequency: "qd".into(),
        ..OrderForm::default()
    };
    render(&state, &s, &id, (form, home()), (Vec::new(), Vec::new(), q.get("done").cloned())).await
}

async fn sign(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_order(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = OrderForm {
        kind: v("kind"),
        term: v("term"),
        drug: v("drug"),
        dose: v("dose"),
        route: v("route"),
        frequency: v("frequency"),
        text: v("text"),
        override_reason: v("override_reason"),
    };
    match state.inpatient.sign_order(&s.info.caller, &id, &f, &s.info.user.display_name).await {
        Ok(Signed::Done { .. }) => see_other(&format!("/ward/stays/{}?done=signed", urlencode(&id))),
        Ok(Signed::Blocked(findings)) => {
            let errors = vec![s.t.get("ward-blocked").to_string()];
            render(&state, &s, &id, (f, home()), (findings, errors, None)).await
        }
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, &id, (f, home()), (Vec::new(), errors, None)).await
        }
    }
}

async fn step(state: AppState, s: Session, id: String, form: Vec<(String, String)>, stop: bool) -> Response {
    let allowed = if stop { Inpatient::may_order(&s.info.caller) } else { Inpatient::may_keep_ward(&s.info.caller) };
    if !allowed || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let order = form_value(&form, "order");
    let done = if stop {
        state.inpatient.stop_order(&s.info.caller, &id, &order, &s.info.user.display_name).await
    } else {
        state.inpatient.verify_order(&s.info.caller, &id, &order).await
    };
    match done {
        Ok(()) => {
            see_other(&format!("/ward/stays/{}?done={}", urlencode(&id), if stop { "stopped" } else { "verified" }))
        }
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, &id, (OrderForm::default(), home()), (Vec::new(), errors, None)).await
        }
    }
}

async fn verify(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    step(state, s, id, form, false).await
}

async fn stop(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    step(state, s, id, form, true).await
}

#[derive(Template)]
#[template(path = "ward/order_sheet.html")]
struct SheetPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stay: String,
    name: String,
    number: String,
    bed: String,
    sections: Vec<Section>,
}

async fn print_page(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let (t, caller) = (s.t, &s.info.caller);
    if !Inpatient::may_see_boards(caller) {
        return forbidden(t);
    }
    let (card, ward, bed) = match state.inpatient.stay_card(caller, &id).await {
        Ok(c) => c,
        Err(InpatientError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let orders = state.inpatient.orders(caller, &id).await.unwrap_or_default();
    let shell = shell(&state, &s.info, t, &s.headers).await;
    page(
        SheetPage {
            t,
            shell: &shell,
            stay: id,
            name: t.pick(&card.patient.names.zh, &card.patient.names.en).clone(),
            number: card.number.clone(),
            bed: format!("{} · {}", t.pick(&ward.names.zh, &ward.names.en), t.pick(&bed.zh, &bed.en)),
            sections: sections(t, &orders, false, false, true),
        }
        .render(),
    )
}

fn home() -> DischargeForm {
    DischargeForm { disposition: "home".into(), ..DischargeForm::default() }
}

async fn discharge(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_order(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let f = DischargeForm {
        course: v("course"),
        diagnosis: v("diagnosis"),
        condition: v("condition"),
        advice: v("advice"),
        disposition: v("disposition"),
    };
    match state.inpatient.discharge(&s.info.caller, &id, &f, &s.info.user.display_name).await {
        Ok(_) => see_other(&format!("/ward/stays/{}/summary", urlencode(&id))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            let order = OrderForm { kind: "medication".into(), term: "long".into(), ..OrderForm::default() };
            render(&state, &s, &id, (order, f), (Vec::new(), errors, None)).await
        }
    }
}

#[derive(Template)]
#[template(path = "ward/summary.html")]
struct SummaryPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stay: String,
    date: String,
    author: String,
    sections: Vec<(String, String)>,
}

async fn summary_page(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let (t, caller) = (s.t, &s.info.caller);
    if !Inpatient::may_see_boards(caller) {
        return forbidden(t);
    }
    let found = match state.inpatient.discharge_summary(caller, &id).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(t),
        Err(InpatientError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let shell = shell(&state, &s.info, t, &s.headers).await;
    let (date, author, sections) = found;
    page(
        SummaryPage {
            t,
            shell: &shell,
            stay: id,
            date: date.get(..16).unwrap_or(&date).replace('T', " "),
            author,
            sections: sections
                .into_iter()
                .map(|(title, text)| {
                    let (zh, en) = title.split_once(" / ").unwrap_or((title.as_str(), title.as_str()));
                    (t.pick(zh, en).to_string(), text)
                })
                .collect(),
        }
        .render(),
    )
}
