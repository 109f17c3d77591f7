//! Admission: a doctor's admission order from a visit (`/ward/order?encounter=…`: the
//! ward of the visit's campus, the nursing level, the admitting diagnosis), and the
//! admission office's list of waiting orders (`/ward/admissions`), each admitted onto
//! a free bed of the campus (`POST /ward/admissions/{order}`).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_inpatient::beds::{BedState, NursingLevel};
use lianyi_inpatient::stays::{Inpatient, InpatientError, OrderForm};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::worded;
use crate::ui::render::urlencode;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ward/order", get(order_page).post(order))
        .route("/ward/transfer", get(transfer_page).post(transfer))
        .route("/ward/admissions", get(admissions_page))
        .route("/ward/admissions/{order}", post(admit))
}

fn nursing_levels(t: Tr) -> Vec<(&'static str, String)> {
    NursingLevel::ALL.iter().map(|n| (n.code(), t.named("ward-nursing", n.code()))).collect()
}

// ---------------------------------------------------------------------------------
// The doctor's admission order.

#[derive(Deserialize, Default)]
struct OrderQuery {
    encounter: Option<String>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "ward/order.html")]
struct OrderPage<'a> {
    t: Tr,
    shell: &'a Shell,
    encounter: String,
    wards: Vec<(String, String)>,
    levels: Vec<(&'static str, String)>,
    form: OrderForm,
    errors: Vec<String>,
    done: bool,
}

async fn render_order(
    state: &AppState,
    s: &Signed,
    encounter: String,
    form: OrderForm,
    errors: Vec<String>,
    done: bool,
) -> Response {
    let t = s.t;
    let mut errors = errors;
    let wards = match state.inpatient.wards_for(&s.info.caller, &encounter).await {
        Ok(w) => w.iter().map(|w| (w.id.clone(), t.pick(&w.names.zh, &w.names.en).clone())).collect(),
        Err(InpatientError::Forbidden(_)) => return forbidden(t),
        Err(InpatientError::NotFound(_)) => return crate::ui::render::not_found(t),
        Err(e) => {
            errors.extend(worded(t, &e));
            Vec::new()
        }
    };
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(OrderPage { t, shell: &shell, encounter, wards, levels: nursing_levels(t), form, errors, done }.render())
}

async fn order_page(State(state): State<AppState>, s: Signed, Query(q): Query<OrderQuery>) -> Response {
    if !Inpatient::may_order(&s.info.caller) {
        return forbidden(s.t);
    }
    let Some(encounter) = q.encounter.filter(|e| !e.is_empty()) else {
        return crate::ui::render::not_found(s.t);
    };
    let form = OrderForm { nursing: "2".into(), ..OrderForm::default() };
    render_order(&state, &s, encounter, form, Vec::new(), q.done.as_deref() == Some("ordered")).await
}

async fn order(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_order(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let encounter = v("encounter");
    let f = OrderForm { ward: v("ward"), nursing: v("nursing"), reason: v("reason"), note: v("note") };
    match state.inpatient.order_admission(&s.info.caller, &encounter, &f, &s.info.user.display_name).await {
        Ok(_) => see_other(&format!("/ward/order?encounter={}&done=ordered", urlencode(&encounter))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_order(&state, &s, encounter, f, errors, false).await
        }
    }
}

// ---------------------------------------------------------------------------------
// The doctor's transfer order.

#[derive(Deserialize, Default)]
struct TransferQuery {
    stay: Option<String>,
    /// The ward the patient is on (where the page returns).
    from: Option<String>,
}

#[derive(Template)]
#[template(path = "ward/transfer.html")]
struct TransferPage<'a> {
    t: Tr,
    shell: &'a Shell,
    stay: String,
    from: String,
    /// (campus words, [(ward id, ward words)]).
    wards: Vec<(String, Vec<(String, String)>)>,
    form: OrderForm,
    errors: Vec<String>,
}

async fn render_transfer(
    state: &AppState,
    s: &Signed,
    (stay, from): (String, String),
    form: OrderForm,
    errors: Vec<String>,
) -> Response {
    let t = s.t;
    let mut errors = errors;
    let mut wards: Vec<(String, Vec<(String, String)>)> = Vec::new();
    match state.inpatient.all_wards(&s.info.caller).await {
        Ok(list) => {
            for w in list {
                let campus =
                    state.fhir.campus_names(&w.campus).await.map_or_else(|| w.campus.clone(), |n| t.pick(n.zh, n.en));
                let entry = (w.id.clone(), t.pick(&w.names.zh, &w.names.en).clone());
                match wards.iter_mut().find(|(c, _)| *c == campus) {
                    Some((_, ws)) => ws.push(entry),
                    None => wards.push((campus, vec![entry])),
                }
            }
        }
        Err(e) => errors.extend(worded(t, &e)),
    }
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(TransferPage { t, shell: &shell, stay, from, wards, form, errors }.render())
}

async fn transfer_page(State(state): State<AppState>, s: Signed, Query(q): Query<TransferQuery>) -> Response {
    if !Inpatient::may_order(&s.info.caller) {
        return forbidden(s.t);
    }
    let Some(stay) = q.stay.filter(|e| !e.is_empty()) else {
        return crate::ui::render::not_found(s.t);
    };
    render_transfer(&state, &s, (stay, q.from.unwrap_or_default()), OrderForm::default(), Vec::new()).await
}

async fn transfer(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_order(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let v = |k: &str| form_value(&form, k);
    let stay = v("stay");
    let f = OrderForm { ward: v("ward"), nursing: String::new(), reason: v("reason"), note: v("note") };
    match state.inpatient.order_transfer(&s.info.caller, &stay, &f, &s.info.user.display_name).await {
        Ok(_) => see_other(&format!("/ward?ward={}&done=transfer-ordered", urlencode(&v("from")))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_transfer(&state, &s, (stay, v("from")), f, errors).await
        }
    }
}

// ---------------------------------------------------------------------------------
// The admission office.

#[derive(Deserialize, Default)]
struct DeskQuery {
    campus: Option<String>,
    done: Option<String>,
    number: Option<String>,
    /// The stay just admitted (its deposits are taken next).
    stay: Option<String>,
}

/// A bed offered: (id, words, preselected).
type BedChoice = (String, String, bool);

/// A ward's free beds: (ward id, ward words, [(bed id, bed words)]).
struct FreeBeds {
    ward: String,
    name: String,
    beds: Vec<(String, String)>,
}

/// The campus's free beds, ward by ward, the ordered ward first with its first free
/// bed chosen.
fn bed_choices(free: &[FreeBeds], ordered: &str) -> Vec<(String, Vec<BedChoice>)> {
    let mut first = true;
    let mut groups: Vec<&FreeBeds> = free.iter().collect();
    groups.sort_by_key(|f| f.ward != ordered);
    groups
        .into_iter()
        .map(|f| {
            let list =
                f.beds.iter().map(|(id, words)| (id.clone(), words.clone(), std::mem::take(&mut first))).collect();
            (f.name.clone(), list)
        })
        .collect()
}

struct OrderRow {
    id: String,
    patient: String,
    gender: String,
    ward: String,
    nursing: String,
    reason: String,
    note: String,
    requester: String,
    ordered_at: String,
    /// (ward words, [(bed id, bed words, preselected)]) of the campus's free beds.
    beds: Vec<(String, Vec<BedChoice>)>,
}

#[derive(Template)]
#[template(path = "ward/admissions.html")]
struct DeskPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campuses: Vec<(String, String)>,
    campus: String,
    rows: Vec<OrderRow>,
    transfers: Vec<OrderRow>,
    errors: Vec<String>,
    done: Option<String>,
    /// The stay just admitted, when the caller takes its deposit.
    deposit_for: Option<String>,
}

async fn render_desk(
    state: &AppState,
    s: &Signed,
    campus: Option<String>,
    errors: Vec<String>,
    (done, deposit_for): (Option<String>, Option<String>),
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let mut errors = errors;
    let wards = state.inpatient.wards(caller).await.unwrap_or_default();
    let mut campuses: Vec<(String, String)> = Vec::new();
    for w in &wards {
        if !campuses.iter().any(|(c, _)| *c == w.campus) {
            let name =
                state.fhir.campus_names(&w.campus).await.map_or_else(|| w.campus.clone(), |n| t.pick(n.zh, n.en));
            campuses.push((w.campus.clone(), name));
        }
    }
    let campus = campus
        .filter(|c| campuses.iter().any(|(id, _)| id == c))
        .or_else(|| campuses.first().map(|(id, _)| id.clone()))
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut transfers = Vec::new();
    if !campus.is_empty() {
        // The campus's free beds, ward by ward.
        let mut free: Vec<FreeBeds> = Vec::new();
        for w in wards.iter().filter(|w| w.campus == campus) {
            let beds = state.inpatient.beds(caller, &w.id).await.unwrap_or_default();
            let beds: Vec<(String, String)> = beds
                .into_iter()
                .filter(|b| b.state == BedState::Free)
                .map(|b| (b.id, t.pick(b.names.zh, b.names.en)))
                .collect();
            free.push(FreeBeds { ward: w.id.clone(), name: t.pick(&w.names.zh, &w.names.en).clone(), beds });
        }
        match state.inpatient.admission_orders(caller, &campus).await {
            Ok(orders) => {
                for o in orders {
                    let ward = free.iter().find(|f| f.ward == o.ward).map_or(o.ward.clone(), |f| f.name.clone());
                    let beds = bed_choices(&free, &o.ward);
                    rows.push(OrderRow {
                        id: o.id,
                        patient: t.pick(o.patient.names.zh, o.patient.names.en),
                        gender: t.named("gender", &o.patient.gender),
                        ward,
                        nursing: o.nursing.map(|n| t.named("ward-nursing", n.code())).unwrap_or_default(),
                        reason: o.reason,
                        note: o.note,
                        requester: o.requester,
                        ordered_at: o.ordered_at,
                        beds,
                    });
                }
            }
            Err(InpatientError::Forbidden(_)) => return forbidden(t),
            Err(e) => errors.extend(worded(t, &e)),
        }
        let ward_words = |id: &str| -> String {
            free.iter().find(|f| f.ward == id).map_or_else(|| id.to_string(), |f| f.name.clone())
        };
        match state.inpatient.transfer_orders(caller, &campus).await {
            Ok(orders) => {
                let all = if orders.is_empty() {
                    Vec::new()
                } else {
                    state.inpatient.all_wards(caller).await.unwrap_or_default()
                };
                for o in orders {
                    let from = all
                        .iter()
                        .find(|w| w.id == o.from_ward)
                        .map_or_else(|| o.from_ward.clone(), |w| t.pick(&w.names.zh, &w.names.en).clone());
                    transfers.push(OrderRow {
                        id: o.id,
                        patient: t.pick(o.patient.names.zh, o.patient.names.en),
                        gender: t.named("gender", &o.patient.gender),
                        ward: format!("{from} → {}", ward_words(&o.ward)),
                        nursing: o.number,
                        reason: o.reason,
                        note: String::new(),
                        requester: o.requester,
                        ordered_at: o.ordered_at,
                        beds: bed_choices(&free, &o.ward),
                    });
                }
            }
            Err(e) => errors.extend(worded(t, &e)),
        }
    }
    let shell = shell(state, &s.info, t, &s.headers).await;
    let deposit_for = deposit_for.filter(|_| lianyi_billing::deposits::Deposits::may_take(caller));
    page(DeskPage { t, shell: &shell, campuses, campus, rows, transfers, errors, done, deposit_for }.render())
}

async fn admissions_page(State(state): State<AppState>, s: Signed, Query(q): Query<DeskQuery>) -> Response {
    if !Inpatient::may_admit(&s.info.caller) {
        return forbidden(s.t);
    }
    let done = match (q.done.as_deref(), q.number) {
        (Some("admitted"), Some(n)) if n.len() <= 20 && n.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Some(s.t.get("ward-done-admitted").replace("{number}", &n))
        }
        _ => None,
    };
    let stay = q.stay.filter(|st| st.len() <= 64 && st.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    render_desk(&state, &s, q.campus, Vec::new(), (done, stay)).await
}

async fn admit(
    State(state): State<AppState>,
    s: Signed,
    Path(order): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_admit(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let campus = form_value(&form, "campus");
    match state.inpatient.admit(&s.info.caller, &order, &form_value(&form, "bed")).await {
        Ok(a) => see_other(&format!(
            "/ward/admissions?campus={}&done=admitted&number={}&stay={}",
            urlencode(&campus),
            urlencode(&a.number),
            urlencode(&a.stay)
        )),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_desk(&state, &s, Some(campus), errors, (None, None)).await
        }
    }
}
