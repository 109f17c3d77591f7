//! The bed board (`/ward?ward=…`): every bed of a ward with its state and stay —
//! the patient, day of the stay, nursing level, alerts — where the ward's nurses
//! receive admitted patients onto their beds (`POST /ward/stays/{id}/receive`) and
//! keep the beds (`POST /ward/beds/{id}/{cleaned|close|reopen}`).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_inpatient::beds::{BedState, BedStep};
use lianyi_inpatient::stays::{Alert, Board, Inpatient, InpatientError, Ward};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, page, see_other, urlencode};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::worded;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ward", get(board_page))
        .route("/ward/stays/{id}/receive", post(receive))
        .route("/ward/stays/{id}/bed", post(move_bed))
        .route("/ward/beds/{id}/{step}", post(bed_step))
}

#[derive(Deserialize, Default)]
struct Shown {
    ward: Option<String>,
    done: Option<String>,
}

struct StayRow {
    id: String,
    number: String,
    name: String,
    gender: String,
    age: String,
    day: String,
    nursing: String,
    nursing_code: String,
    reason: String,
    arriving: bool,
    /// The deposit balance (yuan), when the caller reads deposits.
    deposit: Option<String>,
    /// (text, high) of each alert.
    alerts: Vec<(String, bool)>,
}

struct BedRow {
    id: String,
    name: String,
    state: String,
    state_code: &'static str,
    stay: Option<StayRow>,
    /// The bed steps a nurse may take here: (step code, words).
    steps: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "ward/board.html")]
struct BoardPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// (id, words) of each ward, campus first.
    wards: Vec<(String, String)>,
    ward: String,
    ward_name: String,
    beds: Vec<BedRow>,
    /// (state words, count) of each state.
    counts: Vec<(String, &'static str, usize)>,
    may_keep: bool,
    /// Doctors order transfers from the board.
    may_order: bool,
    /// (id, words) of the ward's free beds, for moving a patient (转床).
    free: Vec<(String, String)>,
    errors: Vec<String>,
    done: Option<String>,
}

fn ward_words(t: Tr, w: &Ward, campuses: &[(String, String)]) -> String {
    let campus = campuses.iter().find(|(id, _)| *id == w.campus).map_or(w.campus.as_str(), |(_, n)| n.as_str());
    format!("{campus} · {}", t.pick(&w.names.zh, &w.names.en))
}

/// Campus ids with their names in the page's language.
async fn campus_names(state: &AppState, t: Tr, wards: &[Ward]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for w in wards {
        if out.iter().any(|(id, _)| *id == w.campus) {
            continue;
        }
        let name = state.fhir.campus_names(&w.campus).await.map_or_else(|| w.campus.clone(), |n| t.pick(n.zh, n.en));
        out.push((w.campus.clone(), name));
    }
    out
}

fn age(birth: &str, now_ms: i64) -> String {
    let today = lianyi_clinical::scheduling::local_date(now_ms);
    lianyi_clinical::registry::age(birth, &today).map(|a| a.to_string()).unwrap_or_default()
}

fn rows(
    t: Tr,
    board: &Board,
    now_ms: i64,
    may_keep: bool,
    balances: &std::collections::HashMap<String, lianyi_billing::money::Fen>,
) -> Vec<BedRow> {
    board
        .beds
        .iter()
        .map(|b| {
            let steps: Vec<BedStep> = match b.bed.state {
                BedState::Cleaning => vec![BedStep::Cleaned],
                BedState::Free => vec![BedStep::Close],
                BedState::Closed => vec![BedStep::Reopen],
                _ => Vec::new(),
            };
            BedRow {
                id: b.bed.id.clone(),
                name: t.pick(&b.bed.names.zh, &b.bed.names.en).clone(),
                state: t.named("ward-bed", b.bed.state.code()),
                state_code: b.bed.state.code(),
                steps: if may_keep {
                    steps
                        .into_iter()
                        .map(|s| (step_code(s), t.get(&format!("ward-step-{}", step_code(s))).to_string()))
                        .collect()
                } else {
                    Vec::new()
                },
                stay: b.stay.as_ref().map(|s| StayRow {
                    id: s.id.clone(),
                    number: s.number.clone(),
                    name: t.pick(&s.patient.names.zh, &s.patient.names.en).clone(),
                    gender: t.named("gender", &s.patient.gender),
                    age: age(&s.patient.birth_date, now_ms),
                    day: t.get("ward-day").replace("{n}", &s.day.to_string()),
                    nursing: s.nursing.map(|n| t.named("ward-nursing", n.code())).unwrap_or_default(),
                    nursing_code: s.nursing.map(|n| n.code().to_string()).unwrap_or_default(),
                    reason: s.reason.clone(),
                    arriving: s.arriving,
                    deposit: balances.get(&s.id).map(ToString::to_string),
                    alerts: s
                        .alerts
                        .iter()
                        .map(|a| match a {
                            Alert::Allergy { substance, high } => {
                                (t.get("ward-alert-allergy").replace("{what}", substance), *high)
                            }
                            Alert::Flag(text) => (text.clone(), true),
                        })
                        .collect(),
                }),
            }
        })
        .collect()
}

fn step_code(s: BedStep) -> &'static str {
    match s {
        BedStep::Cleaned => "cleaned",
        BedStep::Close => "close",
        BedStep::Reopen => "reopen",
        BedStep::Reserve => "reserve",
        BedStep::Release => "release",
        BedStep::Occupy => "occupy",
        BedStep::Vacate => "vacate",
    }
}

async fn render(
    state: &AppState,
    s: &Signed,
    ward: Option<String>,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let mut errors = errors;
    let wards = match state.inpatient.wards(caller).await {
        Ok(w) => w,
        Err(e) => {
            errors.extend(worded(t, &e));
            Vec::new()
        }
    };
    let campuses = campus_names(state, t, &wards).await;
    let chosen = ward.filter(|w| wards.iter().any(|x| x.id == *w)).or_else(|| wards.first().map(|w| w.id.clone()));
    let now = state.inpatient.now_ms();
    let may_keep = Inpatient::may_keep_ward(caller);
    let (mut beds, mut counts, mut ward_name, mut free) = (Vec::new(), Vec::new(), String::new(), Vec::new());
    if let Some(id) = &chosen {
        match state.inpatient.board(caller, id).await {
            Ok(board) => {
                ward_name = ward_words(t, &board.ward, &campuses);
                counts = BedState::ALL
                    .iter()
                    .map(|st| (t.named("ward-bed", st.code()), st.code(), board.count(*st)))
                    .collect();
                let stays: Vec<&str> =
                    board.beds.iter().filter_map(|b| b.stay.as_ref()).map(|s| s.id.as_str()).collect();
                let balances = state.deposits.balances(caller, &stays).await.unwrap_or_default();
                beds = rows(t, &board, now, may_keep, &balances);
                free = board
                    .beds
                    .iter()
                    .filter(|b| b.bed.state == BedState::Free)
                    .map(|b| (b.bed.id.clone(), t.pick(&b.bed.names.zh, &b.bed.names.en).clone()))
                    .collect();
            }
            Err(InpatientError::Forbidden(_)) => return forbidden(t),
            Err(e) => errors.extend(worded(t, &e)),
        }
    }
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        BoardPage {
            t,
            shell: &shell,
            wards: wards.iter().map(|w| (w.id.clone(), ward_words(t, w, &campuses))).collect(),
            ward: chosen.unwrap_or_default(),
            ward_name,
            beds,
            counts,
            may_keep,
            may_order: Inpatient::may_order(caller),
            free,
            errors,
            done: done.and_then(|d| t.try_get(&format!("ward-done-{d}"))).map(str::to_string),
        }
        .render(),
    )
}

async fn board_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    if !Inpatient::may_see_boards(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, q.ward, Vec::new(), q.done).await
}

async fn receive(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let ward = form_value(&form, "ward");
    match state.inpatient.receive(&s.info.caller, &id).await {
        Ok(()) => see_other(&format!("/ward?ward={}&done=received", urlencode(&ward))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, Some(ward), errors, None).await
        }
    }
}

async fn bed_step(
    State(state): State<AppState>,
    s: Signed,
    Path((id, step)): Path<(String, String)>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let step = match step.as_str() {
        "cleaned" => BedStep::Cleaned,
        "close" => BedStep::Close,
        "reopen" => BedStep::Reopen,
        _ => return crate::ui::render::not_found(s.t),
    };
    let ward = form_value(&form, "ward");
    match state.inpatient.bed_step(&s.info.caller, &id, step).await {
        Ok(_) => see_other(&format!("/ward?ward={}&done={}", urlencode(&ward), step_code(step))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, Some(ward), errors, None).await
        }
    }
}

async fn move_bed(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !Inpatient::may_keep_ward(&s.info.caller) || !s.csrf_ok(&form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let ward = form_value(&form, "ward");
    match state.inpatient.move_bed(&s.info.caller, &id, &form_value(&form, "bed")).await {
        Ok(()) => see_other(&format!("/ward?ward={}&done=moved", urlencode(&ward))),
        Err(InpatientError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render(&state, &s, Some(ward), errors, None).await
        }
    }
}
