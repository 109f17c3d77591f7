//! The staff pages (人事): the departments of every campus as one tree with the
//! people of the chosen department (`/manage/staff`), the licence reminders for human
//! resources, and one person (`/manage/staff/{practitioner}`) with their title,
//! practising campuses and licences.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_manage::equipment::Due;
use lianyi_manage::staff::{LICENCES, LicenceForm, StaffError, StaffService, TITLES, Unit};
use lianyi_security::Caller;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, form_values, not_found, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

use super::rosters::{csrf_ok, may_open, pick, urlencode};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/manage/staff", get(tree_page))
        .route("/manage/staff/{id}", get(person_page))
        .route("/manage/staff/{id}/record", post(save_record))
        .route("/manage/staff/{id}/licences", post(add_licence))
}

/// Human resources keep the staff pages (others see their colleagues on the rosters).
pub(super) fn may_keep(c: &Caller) -> bool {
    may_open(c) && StaffService::may_keep(c)
}

#[derive(Deserialize, Default)]
struct Shown {
    department: Option<String>,
    done: Option<String>,
}

fn title_name(t: Tr, code: Option<&str>) -> String {
    code.and_then(|c| TITLES.iter().find(|x| x.0 == c)).map(|x| t.pick(x.1, x.2).to_string()).unwrap_or_default()
}

fn due_text(t: Tr, d: Option<Due>) -> (String, &'static str) {
    match d {
        Some(Due::Overdue(n)) => (t.get("staff-expired").replace("{n}", &n.to_string()), "bad"),
        Some(Due::Soon(n)) => (t.get("staff-expiring").replace("{n}", &n.to_string()), "warn"),
        Some(Due::Later) => (t.get("staff-valid").to_string(), ""),
        None => (String::new(), ""),
    }
}

fn worded(t: Tr, e: &StaffError) -> Vec<String> {
    match e {
        StaffError::Invalid(fs) => fs
            .iter()
            .map(|f| {
                format!("{}: {}", t.get(&format!("staff-field-{}", f.field)), t.get(&format!("staff-rule-{}", f.code)))
            })
            .collect(),
        StaffError::NotFound(_) => vec![t.get("staff-not-found").to_string()],
        other => {
            tracing::error!(error = %other, "staff");
            vec![t.get("staff-failed").to_string()]
        }
    }
}

/// One line of the tree.
struct TreeLine {
    depth: usize,
    id: String,
    name: String,
    people: usize,
}

fn flatten(t: Tr, units: &[Unit], depth: usize, out: &mut Vec<TreeLine>) {
    for u in units {
        out.push(TreeLine { depth, id: u.id.clone(), name: pick(t, &u.names), people: u.people });
        flatten(t, &u.children, depth + 1, out);
    }
}

struct PersonRow {
    id: String,
    name: String,
    role: String,
    title: String,
    licences: (String, &'static str),
}

struct ReminderRow {
    person: String,
    practitioner: String,
    kind: String,
    number: String,
    expires: String,
    state: (String, &'static str),
}

#[derive(Template)]
#[template(path = "manage/staff.html")]
struct TreePage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// (campus name, its departments).
    campuses: Vec<(String, Vec<TreeLine>)>,
    department: String,
    department_name: String,
    people: Vec<PersonRow>,
    reminders: Vec<ReminderRow>,
}

async fn tree_page(State(state): State<AppState>, s: Signed, Query(q): Query<Shown>) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    if !may_keep(caller) {
        return forbidden(t);
    }
    let tree = match state.staff.tree(caller).await {
        Ok(tree) => tree,
        Err(StaffError::Forbidden(_)) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "staff tree");
            Vec::new()
        }
    };
    let mut campuses = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    for c in &tree {
        let mut lines = Vec::new();
        flatten(t, &c.departments, 0, &mut lines);
        names.extend(lines.iter().map(|l| (l.id.clone(), l.name.clone())));
        campuses.push((pick(t, &c.names), lines));
    }
    let department = q.department.filter(|d| names.iter().any(|(id, _)| id == d)).unwrap_or_default();
    let department_name = names.iter().find(|(id, _)| *id == department).map(|(_, n)| n.clone()).unwrap_or_default();
    let people = if department.is_empty() {
        Vec::new()
    } else {
        state
            .staff
            .people(caller, &department)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| PersonRow {
                name: pick(t, &p.names),
                role: p.role,
                title: title_name(t, p.title.as_deref()),
                licences: due_text(t, p.licences),
                id: p.practitioner,
            })
            .collect()
    };
    let reminders = state
        .staff
        .reminders(caller)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(l, d, n)| ReminderRow {
            person: pick(t, &n),
            practitioner: l.practitioner.clone(),
            kind: LICENCES
                .iter()
                .find(|k| k.0 == l.kind)
                .map(|k| t.pick(k.1, k.2).to_string())
                .unwrap_or(l.kind.clone()),
            number: l.number.clone(),
            expires: l.expires_on.clone().unwrap_or_default(),
            state: due_text(t, Some(d)),
        })
        .collect();
    let shell = shell(&state, &s.info, t, &s.headers).await;
    page(TreePage { t, shell: &shell, campuses, department, department_name, people, reminders }.render())
}

struct LicenceRow {
    kind: String,
    number: String,
    issuer: String,
    issued: String,
    expires: String,
    state: (String, &'static str),
}

#[derive(Template)]
#[template(path = "manage/staff_person.html")]
struct PersonPage<'a> {
    t: Tr,
    shell: &'a Shell,
    id: String,
    name: String,
    roles: Vec<(String, String)>,
    position: String,
    title: String,
    title_since: String,
    campuses: Vec<(String, String, bool)>,
    licences: Vec<LicenceRow>,
    titles: Vec<(&'static str, String)>,
    kinds: Vec<(&'static str, String)>,
    form: LicenceForm,
    errors: Vec<String>,
    done: Option<String>,
}

async fn render_person(
    state: &AppState,
    s: &Signed,
    id: &str,
    form: LicenceForm,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    let p = match state.staff.person(caller, id).await {
        Ok(p) => p,
        Err(StaffError::Forbidden(_)) => return forbidden(t),
        Err(_) => return not_found(t),
    };
    let departments = state.rosters.departments(caller).await.unwrap_or_default();
    let roles = p
        .roles
        .iter()
        .map(|(d, role)| {
            (departments.iter().find(|x| x.id == *d).map_or_else(|| d.clone(), |x| pick(t, &x.names)), role.clone())
        })
        .collect();
    let mut campuses = Vec::new();
    for c in state.fhir.campuses().await.unwrap_or_default() {
        let name = crate::ui::shell::campus_name(state, &c, t).await;
        let on = p.record.campuses.contains(&c);
        campuses.push((c, name, on));
    }
    let licences = p
        .licences
        .iter()
        .map(|(l, d)| LicenceRow {
            kind: LICENCES
                .iter()
                .find(|k| k.0 == l.kind)
                .map(|k| t.pick(k.1, k.2).to_string())
                .unwrap_or(l.kind.clone()),
            number: l.number.clone(),
            issuer: l.issuer.clone().unwrap_or_default(),
            issued: l.issued_on.clone(),
            expires: l.expires_on.clone().unwrap_or_else(|| t.get("staff-no-expiry").to_string()),
            state: due_text(t, *d),
        })
        .collect();
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(
        PersonPage {
            t,
            shell: &shell,
            id: id.to_string(),
            name: pick(t, &p.names),
            roles,
            position: p.record.position.clone().unwrap_or_default(),
            title: p.record.title.clone().unwrap_or_default(),
            title_since: p.record.title_since.clone().unwrap_or_default(),
            campuses,
            licences,
            titles: TITLES.iter().map(|x| (x.0, t.pick(x.1, x.2).to_string())).collect(),
            kinds: LICENCES.iter().map(|k| (k.0, t.pick(k.1, k.2).to_string())).collect(),
            form,
            errors,
            done: done
                .map(|d| t.get(if d == "licence" { "staff-done-licence" } else { "staff-done-record" }).to_string()),
        }
        .render(),
    )
}

async fn person_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<Shown>,
) -> Response {
    if !may_keep(&s.info.caller) {
        return forbidden(s.t);
    }
    render_person(&state, &s, &id, LicenceForm::default(), Vec::new(), q.done).await
}

async fn save_record(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_keep(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let campuses = form_values(&form, "campus");
    let r = state
        .staff
        .set_record(
            &s.info.caller,
            &id,
            &form_value(&form, "position"),
            &form_value(&form, "title"),
            &form_value(&form, "title_since"),
            &campuses,
        )
        .await;
    match r {
        Ok(_) => see_other(&format!("/manage/staff/{}?done=record", urlencode(&id))),
        Err(StaffError::Forbidden(_)) => forbidden(s.t),
        Err(e) => render_person(&state, &s, &id, LicenceForm::default(), worded(s.t, &e), None).await,
    }
}

async fn add_licence(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_keep(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let f = LicenceForm {
        kind: form_value(&form, "kind"),
        number: form_value(&form, "number"),
        issuer: form_value(&form, "issuer"),
        issued_on: form_value(&form, "issued_on"),
        expires_on: form_value(&form, "expires_on"),
    };
    match state.staff.add_licence(&s.info.caller, &id, &f).await {
        Ok(_) => see_other(&format!("/manage/staff/{}?done=licence", urlencode(&id))),
        Err(StaffError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_person(&state, &s, &id, f, errors, None).await
        }
    }
}
