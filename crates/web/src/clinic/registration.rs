//! Registration with the duplicate check, the patient page, and the patient index's
//! actions (link, unlink, merge). Handlers parse forms and render; the rules live in
//! [`lianyi_clinical::registry`] and [`lianyi_clinical::matching`].

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_security::{Caller, Perm};
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, active_campus, shell, staff_may};
use lianyi_clinical::registry::{Candidate, Draft, FieldError, Registration, RegistryError};
use lianyi_clinical::{Reason, matching};

use super::reads::*;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/registration", get(registration_form).post(registration_submit))
        .route("/patients/{id}", get(patient_page))
        .route("/patients/{id}/{action}", post(index_action))
}

#[derive(Deserialize, Default)]
struct RegistrationForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    resident_id: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    gender: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    address: String,
    /// Set by "register as a new patient" after the duplicate check.
    #[serde(default)]
    confirmed: String,
}

impl RegistrationForm {
    fn draft(&self) -> Draft {
        Draft {
            name: self.name.clone(),
            resident_id: self.resident_id.clone(),
            birth_date: self.birth_date.clone(),
            gender: self.gender.clone(),
            phone: self.phone.clone(),
            address: self.address.clone(),
        }
    }
}

/// A candidate as the page shows it.
struct CandidateRow {
    id: String,
    name: String,
    pinyin: String,
    birth_date: String,
    gender_key: String,
    phone_tail: String,
    mrns: String,
    score: u8,
    likely: bool,
    /// The reasons, joined as the language writes lists.
    reasons: String,
}

fn reason_text(t: Tr, r: Reason) -> String {
    match r {
        Reason::SimilarName(p) => t.fmt("reason-similar-name", &p.to_string()),
        other => t.get(&format!("reason-{}", other.code())).to_string(),
    }
}

fn candidate_row(t: Tr, c: &Candidate) -> CandidateRow {
    CandidateRow {
        id: c.id.clone(),
        name: c.name.clone(),
        pinyin: c.pinyin.clone(),
        birth_date: c.birth_date.clone().unwrap_or_default(),
        gender_key: format!("gender-{}", c.gender.as_deref().unwrap_or("unknown")),
        phone_tail: c.phone_tail.clone().unwrap_or_default(),
        mrns: c.mrns.iter().map(|m| m.number.as_str()).collect::<Vec<_>>().join(", "),
        score: c.score.score,
        likely: c.score.score >= matching::PROBABLE,
        reasons: c.score.reasons.iter().map(|r| reason_text(t, *r)).collect::<Vec<_>>().join(t.pick("，", ", ")),
    }
}

#[derive(Template)]
#[template(path = "clinic/registration.html")]
struct RegistrationPage<'a> {
    t: Tr,
    shell: &'a Shell,
    form: &'a RegistrationForm,
    /// (field, translated message)
    errors: Vec<(&'static str, String)>,
    duplicates: Vec<CandidateRow>,
    same_id: Option<CandidateRow>,
    message: Option<String>,
}

impl<'a> RegistrationPage<'a> {
    /// The empty form (or the typed one), nothing found yet.
    fn new(t: Tr, shell: &'a Shell, form: &'a RegistrationForm) -> Self {
        RegistrationPage { t, shell, form, errors: Vec::new(), duplicates: Vec::new(), same_id: None, message: None }
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

fn error_text(t: Tr, e: &FieldError) -> String {
    let key = format!("reg-error-{}", e.code);
    let text = t.get(&key);
    if text == key { e.detail.clone() } else { text.to_string() }
}

fn may_register(caller: &Caller) -> bool {
    staff_may(caller, "Patient", Perm::Create)
}

async fn registration_form(State(state): State<AppState>, Signed { info, t, headers }: Signed) -> Response {
    if !may_register(&info.caller) {
        return forbidden(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    let form = RegistrationForm::default();
    page(RegistrationPage::new(t, &shell, &form).render())
}

async fn registration_submit(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Form(form): Form<RegistrationForm>,
) -> Response {
    if !may_register(&info.caller) || !lianyi_security::secrets::constant_time_eq(&info.csrf, &form.csrf) {
        return forbidden(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    let mut view = RegistrationPage::new(t, &shell, &form);
    let Some(campus) = shell.campus.clone() else {
        view.message = Some(t.get("reg-no-campus").to_string());
        return page(view.render());
    };
    let outcome = state.registry.register(&info.caller, &campus, &form.draft(), form.confirmed == "1").await;
    match outcome {
        Ok(Registration::Created { id, .. }) => return see_other(&format!("/patients/{id}?registered=1")),
        Ok(Registration::PossibleDuplicates(list)) => {
            view.duplicates = list.iter().map(|c| candidate_row(t, c)).collect();
        }
        Ok(Registration::SameResidentId(c)) => view.same_id = Some(candidate_row(t, &c)),
        Err(RegistryError::Invalid(errors)) => {
            view.errors = errors.iter().map(|e| (e.field, error_text(t, e))).collect();
        }
        Err(RegistryError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "registration failed");
            view.message = Some(t.get("reg-failed").to_string());
        }
    }
    page(view.render())
}

/// The patient as the banner shows it.
struct Banner {
    id: String,
    name: String,
    pinyin: String,
    gender_key: String,
    birth_date: String,
    age: String,
    mrns: Vec<(String, String)>,
    resident_id: String,
    phone: String,
    address: String,
    active: bool,
}

fn masked_id(id: &str) -> String {
    if id.len() == 18 { format!("{}********{}", &id[..6], &id[14..]) } else { "****".into() }
}

use lianyi_clinical::registry::age;

fn banner(p: &Value, id: &str, today: &str) -> Banner {
    let person = lianyi_clinical::registry::person_of(p);
    let (pinyin, mrns) = (lianyi_clinical::registry::pinyin_of(p), lianyi_clinical::registry::mrns_of(p));
    let birth = person.birth_date.clone().unwrap_or_default();
    Banner {
        id: id.to_string(),
        name: person.name,
        pinyin,
        gender_key: format!("gender-{}", person.gender.as_deref().unwrap_or("unknown")),
        age: age(&birth, today).map(|a| a.to_string()).unwrap_or_default(),
        birth_date: birth,
        mrns: mrns.into_iter().map(|m| (m.campus.to_string(), m.number)).collect(),
        resident_id: person.resident_id.as_deref().map(masked_id).unwrap_or_default(),
        phone: person.phone.unwrap_or_default(),
        address: lianyi_clinical::registry::address_of(p),
        active: lianyi_clinical::merge::is_active(p),
    }
}

/// An unpaid charge as the patient page lists it.
struct ChargeRow {
    when: String,
    name: String,
    /// Locale key of the category.
    category: String,
    quantity: String,
    unit_price: String,
    amount: String,
}

#[derive(Template)]
#[template(path = "clinic/patient.html")]
struct PatientPage<'a> {
    t: Tr,
    shell: &'a Shell,
    b: Banner,
    registered: bool,
    /// What an index action did (`merged`, `linked`, `unmerged`) or why it failed.
    done: Option<String>,
    /// The queue number a check-in gave.
    queue: Option<u32>,
    error: Option<String>,
    index: IndexView,
    may_book: bool,
    appointments: Vec<super::scheduling::AppointmentRow>,
    /// (DiagnosticReport id, title, date) of the patient's lab reports.
    reports: Vec<(String, String, String)>,
    /// The patient's imaging studies, each opening the viewer.
    studies: Vec<super::reads::StudyRow>,
    /// A patient of another campus only, shown to a registrar who may register them here.
    elsewhere: bool,
    /// The viewer reads clinical data: newest results and the record across campuses.
    clinician: bool,
    patient_id: String,
    results: Vec<lianyi_clinical::results::Latest>,
    timeline: Vec<lianyi_clinical::record::Event>,
    /// Charges not yet paid, for staff who read charges (cashiers, registrars).
    charges: Option<Vec<ChargeRow>>,
    charges_total: String,
    /// The viewer takes payments (a cashier).
    may_pay: bool,
    /// The patient's insurance (kind key, insurer, member number, period), for staff
    /// who read it; and whether the viewer records it (registrars).
    coverages: Option<Vec<(String, String, String, String)>>,
    may_record_coverage: bool,
}

#[derive(Deserialize)]
struct PatientQuery {
    registered: Option<String>,
    done: Option<String>,
    queue: Option<u32>,
    error: Option<String>,
    /// Search the group's index for duplicates of this record (on request: each
    /// record looked at is an audited read).
    duplicates: Option<String>,
}

async fn patient_page(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<PatientQuery>,
) -> Response {
    let gone = |e: &lianyi_services::ServiceError| {
        matches!(e, lianyi_services::ServiceError::NotFound { .. } | lianyi_services::ServiceError::Gone { .. })
    };
    // A patient of this campus (an MRN here) is read whole, from every campus.
    let (care, body, elsewhere) = match state.record.open(&info.caller, &id).await {
        Ok((c, p)) => (c, p, false),
        // A registrar who found the patient in the group-wide index may register
        // them here; the page then shows who it is and that one action.
        Err(RegistryError::Forbidden(_)) if may_register(&info.caller) => {
            let wide = info.caller.group_wide();
            match read(&state, &wide, "Patient", &id).await {
                Some(p) => (wide, p, true),
                None => return forbidden(t),
            }
        }
        Err(RegistryError::Service(e)) if gone(&e) => return not_found(t),
        Err(RegistryError::Service(e)) => return crate::ui::render::failed(t, &e),
        Err(RegistryError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "opening a patient's record");
            return crate::ui::render::server_error(Some(t));
        }
    };
    let stored_id = id;
    let today = state.scheduling.today();
    let shell = shell(&state, &info, t, &headers).await;
    let index = if elsewhere {
        IndexView { merged_into: None, links: Vec::new(), duplicates: Vec::new(), may_manage: false, searched: false }
    } else {
        index_view(&state, &info.caller, t, &stored_id, &body, q.duplicates.is_some()).await
    };
    let may_book = !elsewhere && staff_may(&info.caller, "Appointment", Perm::Create);
    let appointments =
        if may_book { super::scheduling::appointments(&state, &care, t, &stored_id).await } else { Vec::new() };
    let reports = if elsewhere { Vec::new() } else { super::printing::lab_reports(&state, &care, &stored_id).await };
    let studies =
        if elsewhere { Vec::new() } else { super::reads::imaging_studies(&state, &info.caller, &stored_id, t).await };
    let clinician = !elsewhere && staff_may(&info.caller, "Observation", Perm::Search);
    let (results, timeline) =
        if clinician { record_rows(&state, &care, &stored_id, t).await } else { (Vec::new(), Vec::new()) };
    let (charges, charges_total) = if !elsewhere && staff_may(&info.caller, "ChargeItem", Perm::Search) {
        let open = state.charges.open_charges(&info.caller, &stored_id).await.unwrap_or_default();
        let total = lianyi_billing::money::Fen(open.iter().map(|c| c.amount.0).sum());
        let rows = open
            .into_iter()
            .map(|c| ChargeRow {
                when: c.when,
                name: t.pick(c.name_zh, c.name_en),
                category: format!("price-cat-{}", c.category),
                quantity: format!("{} {}", c.quantity, c.unit),
                unit_price: c.unit_price.to_string(),
                amount: c.amount.to_string(),
            })
            .collect();
        (Some(rows), total.to_string())
    } else {
        (None, String::new())
    };
    let coverages = if !elsewhere && staff_may(&info.caller, "Coverage", Perm::Search) {
        let list = lianyi_billing::coverage::Coverages::new(state.fhir.clone())
            .list(&info.caller, &stored_id)
            .await
            .unwrap_or_default();
        Some(
            list.into_iter()
                .map(|c| (format!("coverage-kind-{}", c.kind), c.payor, c.member, format!("{} – {}", c.start, c.end)))
                .collect(),
        )
    } else {
        None
    };
    let known = |v: Option<String>, keys: &[&str]| v.filter(|x| keys.contains(&x.as_str()));
    page(
        PatientPage {
            t,
            shell: &shell,
            b: banner(&body, &stored_id, &today),
            registered: q.registered.is_some(),
            done: known(
                q.done,
                &[
                    "merged",
                    "linked",
                    "unmerged",
                    "booked",
                    "rescheduled",
                    "checked-in",
                    "cancelled",
                    "registered-here",
                ],
            ),
            queue: q.queue,
            error: known(
                q.error,
                &[
                    "same-record",
                    "already-merged",
                    "not-merged",
                    "no-provenance",
                    "not-today",
                    "not-booked",
                    "inactive",
                    "failed",
                ],
            ),
            index,
            may_book,
            appointments,
            reports,
            studies,
            elsewhere,
            clinician,
            patient_id: stored_id.clone(),
            results,
            timeline,
            charges,
            charges_total,
            may_pay: staff_may(&info.caller, "Invoice", Perm::Create),
            coverages,
            may_record_coverage: !elsewhere && lianyi_billing::coverage::Coverages::may_record(&info.caller),
        }
        .render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_whole_years() {
        assert_eq!(age("1990-11-23", "2026-11-22"), Some(35));
        assert_eq!(age("1990-11-22", "2026-11-22"), Some(36));
        assert_eq!(age("2026-01-01", "2026-11-22"), Some(0));
        assert_eq!(masked_id("11010519491231002X"), "110105********002X");
    }
}

/// The patient index's part of the patient page: a merged record names its
/// survivor (with unmerge); otherwise possible duplicates with merge and link.
struct IndexView {
    merged_into: Option<String>,
    /// (patient id, kind) of the record's links.
    links: Vec<(String, String)>,
    duplicates: Vec<CandidateRow>,
    may_manage: bool,
    /// Whether the index was searched for duplicates (on request).
    searched: bool,
}

async fn index_view(state: &AppState, caller: &Caller, t: Tr, id: &str, body: &Value, search: bool) -> IndexView {
    let may_manage = may_register(caller) && caller.access().allows("Patient", Perm::Update);
    use lianyi_clinical::merge::{is_active, link_of, links_of};
    let merged_into = link_of(body, "replaced-by").filter(|_| !is_active(body));
    let linked = links_of(body);
    let links = linked.iter().map(|(other, kind)| (other.clone(), format!("link-{kind}"))).collect();
    let mut duplicates = Vec::new();
    let searched = search && may_manage && merged_into.is_none();
    if searched {
        let person = lianyi_clinical::registry::person_of(body);
        match state.registry.candidates(&caller.group_wide(), &person).await {
            Ok(list) => {
                duplicates = list
                    .iter()
                    .filter(|c| c.id != id && c.active && c.score.score >= matching::POSSIBLE)
                    .filter(|c| !linked.iter().any(|(other, _)| *other == c.id))
                    .map(|c| candidate_row(t, c))
                    .collect();
            }
            Err(e) => tracing::warn!(error = %e, "duplicate check on the patient page failed"),
        }
    }
    IndexView { merged_into, links, duplicates, may_manage, searched }
}

#[derive(Deserialize)]
struct IndexForm {
    csrf: String,
    #[serde(default)]
    other: String,
}

/// `POST /patients/{id}/merge` (the other record merges into this one), `/link`, `/unmerge`.
async fn index_action(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<IndexForm>,
) -> Response {
    if !may_register(&info.caller) || !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return forbidden(t);
    }
    let done = match action.as_str() {
        "merge" => state.registry.merge(&info.caller, &id, f.other.trim()).await.map(|_| "merged"),
        "link" => state.registry.link(&info.caller, &id, f.other.trim()).await.map(|()| "linked"),
        "unmerge" => state.registry.unmerge(&info.caller, &id).await.map(|_| "unmerged"),
        "register-here" => match active_campus(&info.caller, &headers) {
            Some(campus) => state.registry.register_here(&info.caller, &id, &campus).await.map(|_| "registered-here"),
            None => return forbidden(t),
        },
        _ => return not_found(t),
    };
    match done {
        Ok(what) => see_other(&format!("/patients/{id}?done={what}")),
        Err(RegistryError::Forbidden(_)) => forbidden(t),
        Err(RegistryError::Invalid(errors)) => {
            let code = errors.first().map_or("failed", |e| e.code);
            see_other(&format!("/patients/{id}?error={code}"))
        }
        Err(e) => {
            tracing::error!(error = %e, "patient index action failed");
            see_other(&format!("/patients/{id}?error=failed"))
        }
    }
}
