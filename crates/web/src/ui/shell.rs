//! What every signed-in page shows around its content: the navigation of the
//! user's roles (each area lists its pages, [`NavLink`]), the campus switcher, and
//! the bar of open critical values, which every page polls.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use lianyi_security::{Caller, CampusId, Campuses, Perm};

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, page, referer_path, see_other};
use crate::ui::session::{Signed, cookie};

const CAMPUS_COOKIE: &str = "lianyi_campus";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/campus/{id}", get(switch_campus))
        .route("/alerts", get(alerts_fragment))
        .route("/static/alerts.js", get(alerts_js))
}

/// What every signed-in page shows around its content: the pages of the user's
/// roles and the campus they work at.
pub(crate) struct Shell {
    pub display_name: String,
    pub csrf: String,
    /// (href, text key)
    pub links: Vec<(&'static str, &'static str)>,
    /// The campus new records belong to (`None` for group-wide users).
    pub campus: Option<CampusId>,
    /// (campus id, name, is the active one) the user may switch between; empty when
    /// there is only one.
    pub campuses: Vec<(String, String, bool)>,
    pub campus_name: String,
    /// Open critical values for this user (theirs, or escalated to them).
    pub alerts: Vec<lianyi_clinical::critical::Alert>,
    /// The header's patient search (staff who may search patients).
    pub find_patients: bool,
}

/// The campuses of the caller's grants, in grant order (`None`: every campus).
fn granted_campuses(caller: &Caller) -> Option<Vec<CampusId>> {
    match caller.access().all_campuses() {
        Campuses::All => None,
        Campuses::Only(list) => Some(list),
    }
}

/// The campus the user works at: the switcher's choice if granted, else the first.
pub(crate) fn active_campus(caller: &Caller, headers: &HeaderMap) -> Option<CampusId> {
    let granted = granted_campuses(caller)?;
    let chosen = cookie(headers, CAMPUS_COOKIE).and_then(|c| granted.iter().find(|g| *g == c));
    chosen.or_else(|| granted.first()).cloned()
}

/// Whether a staff member (not a patient account) may do `perm` on `rtype`.
pub(crate) fn staff_may(caller: &Caller, rtype: &str, perm: Perm) -> bool {
    caller.access().allows(rtype, perm) && caller.access().patient().is_none()
}

/// Where a navigation link shows: in the top bar of every page, or only among the
/// home page's links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Bar,
    Home,
}

/// A page of an area in the navigation: shown to callers `shown` says may use it.
/// Each area lists its own ([`crate::routes::NAV`] puts them in order), so the shell
/// knows no area.
pub struct NavLink {
    pub href: &'static str,
    /// Locale key of the link text.
    pub text: &'static str,
    pub place: Place,
    pub shown: fn(&Caller) -> bool,
}

/// The pages a caller may open at `place` (the home link first in the bar).
pub(crate) fn nav_links(state: &AppState, caller: &Caller, place: Place) -> Vec<(&'static str, &'static str)> {
    let mut links = if place == Place::Bar { vec![("/", "nav-home")] } else { Vec::new() };
    let areas = state.nav.iter().flat_map(|area| area.iter());
    links.extend(areas.filter(|l| l.place == place && (l.shown)(caller)).map(|l| (l.href, l.text)));
    links
}

pub(crate) async fn shell(
    state: &AppState,
    info: &lianyi_security::users::SessionInfo,
    t: Tr,
    headers: &HeaderMap,
) -> Shell {
    let campus = active_campus(&info.caller, headers);
    let mut campuses = Vec::new();
    for c in granted_campuses(&info.caller).unwrap_or_default() {
        let name = campus_name(state, c.as_str(), t).await;
        campuses.push((c.to_string(), name));
    }
    let campus_name = match &campus {
        Some(c) => {
            campuses.iter().find(|(id, _)| c == id.as_str()).map(|(_, n)| n.clone()).unwrap_or_else(|| c.to_string())
        }
        None => t.get("home-all-campuses").to_string(),
    };
    let campuses = if campuses.len() < 2 {
        Vec::new()
    } else {
        campuses
            .into_iter()
            .map(|(id, name)| {
                let current = campus.as_ref().is_some_and(|c| c == id.as_str());
                (id, name, current)
            })
            .collect()
    };
    let alerts = critical_alerts(state, info, t).await;
    Shell {
        alerts,
        display_name: info.user.display_name.clone(),
        csrf: info.csrf.clone(),
        links: nav_links(state, &info.caller, Place::Bar),
        find_patients: staff_may(&info.caller, "Patient", Perm::Search),
        campus,
        campuses,
        campus_name,
    }
}

/// A campus's name in the page's language (its id if it has no Organization).
pub(crate) async fn campus_name(state: &AppState, campus: &str, t: Tr) -> String {
    match state.fhir.campus_names(campus).await {
        Some(n) => t.pick(n.zh, n.en),
        None => campus.to_string(),
    }
}

/// The campuses where the user is a department head (`*`: every campus).
pub(crate) async fn heads_at(state: &AppState, info: &lianyi_security::users::SessionInfo) -> Vec<String> {
    match state.users.grants(&info.user.id).await {
        Ok(list) => list.into_iter().filter(|g| g.role == "department-head").map(|g| g.campus).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "grants lookup failed");
            Vec::new()
        }
    }
}

/// The open critical values the user must see.
pub(crate) async fn critical_alerts(
    state: &AppState,
    info: &lianyi_security::users::SessionInfo,
    t: Tr,
) -> Vec<lianyi_clinical::critical::Alert> {
    if !staff_may(&info.caller, "Task", Perm::Read) {
        return Vec::new();
    }
    let heads = heads_at(state, info).await;
    match state.critical.alerts_for(&info.caller, &heads).await {
        // The description holds both languages ("中文 / English"): the page's one.
        Ok(a) => a
            .into_iter()
            .map(|mut x| {
                if let Some((zh, en)) = x.text.split_once(" / ") {
                    x.text = t.pick(zh, en).to_string();
                }
                x
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "critical-value lookup failed");
            Vec::new()
        }
    }
}

/// Chooses the campus the user works at (one of their grants) and returns to the page.
async fn switch_campus(Signed { info, t, headers }: Signed, Path(id): Path<String>) -> Response {
    if !granted_campuses(&info.caller).is_some_and(|g| g.iter().any(|c| *c == id.as_str())) {
        return forbidden(t);
    }
    let mut r = see_other(&referer_path(&headers));
    if let Ok(v) = HeaderValue::from_str(&format!("{CAMPUS_COOKIE}={id}; Path=/; SameSite=Lax; Max-Age=31536000")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Template)]
#[template(path = "ui/alerts.html")]
struct AlertsFragment<'a> {
    t: Tr,
    shell: &'a Shell,
}

/// The critical-value bar alone, polled by every open page: only the alerts are
/// looked up (not the campus names and links of the whole top bar).
async fn alerts_fragment(State(state): State<AppState>, Signed { info, t, .. }: Signed) -> Response {
    let shell = Shell {
        alerts: critical_alerts(&state, &info, t).await,
        display_name: String::new(),
        csrf: info.csrf.clone(),
        links: Vec::new(),
        campus: None,
        campuses: Vec::new(),
        campus_name: String::new(),
        find_patients: false,
    };
    page(AlertsFragment { t, shell: &shell }.render())
}

async fn alerts_js() -> Response {
    let mut r = axum::response::IntoResponse::into_response(include_str!("../../static/alerts.js"));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}
