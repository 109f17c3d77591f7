//! Finding a patient: by name in characters or pinyin, MRN, phone or resident ID,
//! across the group's index, from the header of every page and as a page. Only
//! records the user may open are listed (the record-across-campuses rule); a
//! clinician who may break the glass also sees the others, marked, and starts
//! break-the-glass from there. The rules and the audit live in
//! [`lianyi_clinical::registry::Registry::find`].

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_clinical::registry::{Found, Query as Find};
use lianyi_security::Perm;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::page;
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell, staff_may};
use lianyi_clinical::registry::age;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/patients", get(search_page))
}

/// Whether a staff member may search the patient index.
pub(super) fn may_find(caller: &lianyi_security::Caller) -> bool {
    staff_may(caller, "Patient", Perm::Search)
}

struct FoundRow {
    id: String,
    name: String,
    pinyin: String,
    gender_key: String,
    age: String,
    mrns: String,
    campus: String,
    openable: bool,
}

#[derive(Template)]
#[template(path = "clinic/patient_search.html")]
struct SearchPage<'a> {
    t: Tr,
    shell: &'a Shell,
    q: String,
    rows: Vec<FoundRow>,
    /// A search ran (a query was given and understood).
    searched: bool,
    failed: bool,
    may_break_glass: bool,
}

#[derive(Deserialize, Default)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search_page(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Query(sq): Query<SearchQuery>,
) -> Response {
    if !may_find(&info.caller) {
        return crate::ui::render::forbidden(t);
    }
    let shell = shell(&state, &info, t, &headers).await;
    let q = sq.q.trim().to_string();
    let (mut rows, mut searched, mut failed) = (Vec::new(), false, false);
    if let Some(query) = Find::parse(&q) {
        searched = true;
        match state.registry.find(&info.caller, &query).await {
            Ok(found) => {
                let today = state.scheduling.today();
                // Each campus's name is looked up once per page.
                let mut campuses = super::reads::CampusNames::new(t);
                for f in found {
                    rows.push(row(&state, &mut campuses, &today, f).await);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "patient search failed");
                failed = true;
            }
        }
    }
    let may_break_glass = info.caller.can(lianyi_security::roles::Capability::BreakTheGlass);
    page(SearchPage { t, shell: &shell, q, rows, searched, failed, may_break_glass }.render())
}

async fn row(state: &AppState, campuses: &mut super::reads::CampusNames, today: &str, f: Found) -> FoundRow {
    let c = f.candidate;
    let campus = match &f.campus {
        Some(id) => campuses.name(state, id).await,
        None => String::new(),
    };
    FoundRow {
        age: c.birth_date.as_deref().and_then(|b| age(b, today)).map(|a| a.to_string()).unwrap_or_default(),
        gender_key: format!("gender-{}", c.gender.as_deref().unwrap_or("unknown")),
        mrns: c.mrns.iter().map(|m| m.number.as_str()).collect::<Vec<_>>().join(", "),
        id: c.id,
        name: c.name,
        pinyin: c.pinyin,
        campus,
        openable: f.openable,
    }
}
