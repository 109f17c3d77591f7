//! The patient's own account page (`/portal/me`): who read their record (from the
//! audit trail), who may act for them (their consent, given or withdrawn here), and
//! whom they act for; and switching between themselves and the patients they act for
//! (`/portal/for/{patient}`: a cookie the server checks against a live proxy at every
//! request, so a revoked proxy ends at once).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_portal::PortalError;
use lianyi_portal::accounts::{ProxyView, RELATIONS};
use lianyi_portal::record::AccessView;
use serde::Deserialize;

use super::{FOR_COOKIE, Frame, Patient, Problem, failure, form_page, problems};
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{form_value, local_time, page, see_other};
use crate::ui::session::set_cookie;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/for/{patient}", get(switch))
        .route("/portal/me", get(me))
        .route("/portal/me/proxies", post(grant))
        .route("/portal/me/proxies/{id}/revoke", post(revoke))
        .route("/portal/me/access/{seq}/ask", post(ask_about))
        .route("/portal/me/mfa", get(mfa_form).post(mfa_submit))
}

/// One of the people an account may act for: (patient id, name, relation key,
/// being acted for now).
pub(super) struct Member {
    pub id: String,
    pub name: String,
    pub relation: String,
    pub current: bool,
}

/// The account's own patient and those it acts for.
pub(super) async fn family(state: &AppState, p: &Patient) -> Vec<Member> {
    let own = p.info.caller.access().patient().unwrap_or_default().to_string();
    let own_name = state.my_record.name(&p.info.caller).await.unwrap_or_default();
    let mut out =
        vec![Member { id: own.clone(), name: own_name, relation: String::new(), current: p.acting.is_none() }];
    let proxies = state.portal_accounts.acting_for_whom(&p.info.user.id).await.unwrap_or_default();
    for x in proxies {
        let name = match state.users.acting_for(&p.info, &x.patient).await {
            Ok(c) => state.my_record.name(&c).await.unwrap_or_default(),
            Err(_) => continue,
        };
        let current = p.acting.as_deref() == Some(x.patient.as_str());
        out.push(Member { id: x.patient, name, relation: x.relation, current });
    }
    out
}

#[derive(Deserialize, Default)]
struct Ended {
    ended: Option<String>,
}

/// Acts for `patient` (a live proxy's), or `me` for the account's own.
async fn switch(
    State(state): State<AppState>,
    p: Patient,
    Path(patient): Path<String>,
    Query(q): Query<Ended>,
) -> Response {
    let own = p.info.caller.access().patient().unwrap_or_default().to_string();
    if patient == "me" || patient == own {
        let mut r = see_other(if q.ended.is_some() { "/portal?m=proxy-ended" } else { "/portal" });
        set_cookie(&mut r, format!("{FOR_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"));
        return r;
    }
    match state.users.acting_for(&p.info, &patient).await {
        Ok(_) => {
            let mut r = see_other("/portal");
            set_cookie(&mut r, format!("{FOR_COOKIE}={patient}; Path=/; HttpOnly; Secure; SameSite=Strict"));
            r
        }
        Err(_) => crate::ui::render::not_found(p.t),
    }
}

/// One access as the page lists it.
struct AccessRow {
    seq: i64,
    own: bool,
    when: String,
    who: String,
    what: String,
    reason: Option<String>,
    refused: bool,
}

fn access_row(t: Tr, a: &AccessView, campuses: &std::collections::HashMap<String, String>) -> AccessRow {
    let who = if a.own {
        t.get("portal-access-you").to_string()
    } else if a.kind == "user" {
        let roles: Vec<String> = a.roles.split(',').filter(|r| !r.is_empty()).map(|r| t.named("role", r)).collect();
        let campus = match campuses.get(&a.campus) {
            Some(name) => format!(" · {name}"),
            None => String::new(),
        };
        format!("{}{campus}", roles.join("、"))
    } else if a.kind == "client" {
        t.fmt("portal-access-client", a.system.trim_start_matches("client:"))
    } else if a.kind == "anonymous" {
        t.get("portal-access-anonymous").to_string()
    } else {
        t.fmt("portal-access-system", &a.system)
    };
    let kind = t.named("audit-act", &a.action);
    let what =
        if a.resource_type.is_empty() { kind } else { format!("{kind} · {}", t.named("rtype", &a.resource_type)) };
    AccessRow {
        seq: a.seq,
        own: a.own,
        when: if a.count > 1 {
            let (first, last) = (local_time(a.first_at), local_time(a.at));
            // The same day: the second time without its date.
            let last = last.rsplit_once(' ').map_or(last.clone(), |(_, time)| time.to_string());
            format!("{first}–{last} · {}", t.fmt("portal-access-times", &a.count.to_string()))
        } else {
            local_time(a.at)
        },
        who,
        what,
        reason: a.reason.clone(),
        refused: a.outcome != "success",
    }
}

#[derive(Template)]
#[template(path = "portal/me.html")]
struct MePage<'a> {
    t: Tr,
    frame: &'a Frame,
    family: Vec<Member>,
    accesses: Vec<AccessRow>,
    /// The patient's own proxies (empty while acting for someone else).
    proxies: Vec<ProxyView>,
    acting: bool,
    /// The account has a second factor.
    second_factor: bool,
    relations: &'static [&'static str],
    problems: Vec<Problem>,
    done: Option<&'static str>,
    /// (asked at, question, answer).
    questions: Vec<(String, String, Option<String>)>,
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn me_page(state: &AppState, p: &Patient, problems: Vec<Problem>, done: Option<&'static str>) -> Response {
    let t = p.t;
    let list = match state.my_record.accesses(p.caller()).await {
        Ok(list) => list,
        Err(e) => return failure(t, &e),
    };
    let mut campuses = std::collections::HashMap::new();
    for a in &list {
        if !a.campus.is_empty() && !campuses.contains_key(&a.campus) {
            let name = crate::ui::shell::campus_name(state, &a.campus, t).await;
            campuses.insert(a.campus.clone(), name);
        }
    }
    let accesses = list.iter().map(|a| access_row(t, a, &campuses)).collect();
    let proxies = if p.acting.is_none() {
        match state.portal_accounts.proxies_of_mine(p.caller()).await {
            Ok(list) => list,
            Err(e) => return failure(t, &e),
        }
    } else {
        Vec::new()
    };
    let questions = match state.my_record.privacy_questions(p.caller()).await {
        Ok(list) => list.into_iter().map(|q| (local_time(q.asked_at), q.question, q.answer)).collect(),
        Err(e) => return failure(t, &e),
    };
    let frame = Frame::named(state, p, "me").await;
    let family = family(state, p).await;
    let bad = !problems.is_empty();
    form_page(
        MePage {
            t,
            frame: &frame,
            family,
            accesses,
            proxies,
            acting: p.acting.is_some(),
            second_factor: lianyi_security::users::UserService::has_second_factor(&p.info),
            relations: &RELATIONS,
            problems,
            done,
            questions,
        }
        .render(),
        bad,
    )
}

async fn me(State(state): State<AppState>, p: Patient, Query(d): Query<Done>) -> Response {
    let done = match d.done.as_deref() {
        Some("granted") => Some("portal-proxy-granted"),
        Some("revoked") => Some("portal-proxy-revoked"),
        Some("asked") => Some("portal-access-asked"),
        Some("mfa") => Some("portal-mfa-on"),
        _ => None,
    };
    me_page(&state, &p, Vec::new(), done).await
}

async fn grant(State(state): State<AppState>, p: Patient, Form(form): Form<Vec<(String, String)>>) -> Response {
    let t = p.t;
    if !p.csrf_ok(&form_value(&form, "csrf")) {
        return crate::ui::render::forbidden(t);
    }
    let outcome = state
        .portal_accounts
        .grant_proxy(p.caller(), &form_value(&form, "username"), &form_value(&form, "relation"))
        .await;
    match outcome {
        Ok(_) => see_other("/portal/me?done=granted"),
        Err(PortalError::Invalid(errors)) => me_page(&state, &p, problems(t, &errors), None).await,
        Err(e) => failure(t, &e),
    }
}

async fn revoke(
    State(state): State<AppState>,
    p: Patient,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let t = p.t;
    if !p.csrf_ok(&form_value(&form, "csrf")) {
        return crate::ui::render::forbidden(t);
    }
    match state.portal_accounts.revoke_proxy(p.caller(), &p.info.user.id, &id).await {
        Ok(()) => see_other("/portal/me?done=revoked"),
        Err(PortalError::Invalid(errors)) => me_page(&state, &p, problems(t, &errors), None).await,
        Err(e) => failure(t, &e),
    }
}

/// A question to the privacy officer about one access to the record.
async fn ask_about(
    State(state): State<AppState>,
    p: Patient,
    Path(seq): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let t = p.t;
    if !p.csrf_ok(&form_value(&form, "csrf")) {
        return crate::ui::render::forbidden(t);
    }
    match state.my_record.ask_about_access(p.caller(), seq, &form_value(&form, "question")).await {
        Ok(_) => see_other("/portal/me?done=asked"),
        Err(PortalError::Invalid(errors)) => me_page(&state, &p, problems(t, &errors), None).await,
        Err(e) => failure(t, &e),
    }
}

#[derive(Template)]
#[template(path = "portal/mfa_enrol.html")]
struct MfaEnrolPage<'a> {
    t: Tr,
    frame: &'a Frame,
    qr_svg: String,
    secret: String,
    message: Option<&'static str>,
}

async fn mfa_page(
    state: &AppState,
    p: &Patient,
    headers: &axum::http::HeaderMap,
    message: Option<&'static str>,
) -> Response {
    let t = p.t;
    if p.acting.is_some() || lianyi_security::users::UserService::has_second_factor(&p.info) {
        return see_other("/portal/me");
    }
    let Some(token) = crate::ui::session::cookie(headers, crate::ui::session::SESSION_COOKIE) else {
        return see_other("/portal/login");
    };
    match state.users.begin_enrolment(token, p.caller().client_addr().map(str::to_string)).await {
        Ok((uri, secret)) => {
            let frame = Frame::named(state, p, "me").await;
            let qr_svg = crate::ui::render::qr_svg(&uri);
            page(MfaEnrolPage { t, frame: &frame, qr_svg, secret, message }.render())
        }
        Err(e) => {
            tracing::error!(error = %e, "optional enrolment failed");
            crate::ui::render::server_error(Some(t))
        }
    }
}

async fn mfa_form(State(state): State<AppState>, p: Patient, headers: axum::http::HeaderMap) -> Response {
    mfa_page(&state, &p, &headers, None).await
}

async fn mfa_submit(
    State(state): State<AppState>,
    p: Patient,
    headers: axum::http::HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let t = p.t;
    if !p.csrf_ok(&form_value(&form, "csrf")) {
        return crate::ui::render::forbidden(t);
    }
    let Some(token) = crate::ui::session::cookie(&headers, crate::ui::session::SESSION_COOKIE) else {
        return see_other("/portal/login");
    };
    let addr = p.caller().client_addr().map(str::to_string);
    match state.users.confirm_enrolment(token, &form_value(&form, "code"), addr).await {
        Ok(_) => see_other("/portal/me?done=mfa"),
        Err(lianyi_security::users::UserError::Locked { .. }) => see_other("/portal/login"),
        Err(_) => mfa_page(&state, &p, &headers, Some("mfa-failed")).await,
    }
}
