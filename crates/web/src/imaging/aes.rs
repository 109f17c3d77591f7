//! The AE table page (`/imaging/aes`, the integration role): which application
//! entities may connect to the DICOM node, from which address, for which campus, and
//! where C-MOVE reaches them; add or change one, remove one. The rules and the audit
//! record are the imaging service's ([`lianyi_imaging::Imaging::put_ae`]); the running
//! node admits by the table at once.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_imaging::ImagingError;
use lianyi_imaging::aes::AeDraft;
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/imaging/aes", get(list).post(save)).route("/imaging/aes/{title}/remove", post(remove))
}

pub(super) fn may_manage(c: &Caller) -> bool {
    c.can(Capability::ManageIntegration)
}

/// The character sets an AE may be assumed to write (the service's list).
const CHARSETS: [&str; 5] = ["GB18030", "GBK", "ISO_IR 192", "ISO_IR 100", "ISO_IR 6"];

struct Row {
    title: String,
    campus: String,
    host: String,
    port: String,
    description: String,
    charset: String,
}

#[derive(Template)]
#[template(path = "imaging/aes.html")]
struct AesPage<'a> {
    t: Tr,
    shell: &'a Shell,
    rows: Vec<Row>,
    /// (campus id, name) to choose from.
    campuses: Vec<(String, String)>,
    charsets: [&'static str; 5],
    draft: AeDraft,
    errors: Vec<String>,
    done: Option<String>,
    /// Studies, instances, GB, studies waiting for their patient.
    totals: (i64, i64, String, i64),
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn render(state: &AppState, s: &Signed, draft: AeDraft, errors: Vec<String>, done: Option<String>) -> Response {
    let t = s.t;
    let mut campuses = Vec::new();
    for id in state.fhir.campuses().await.unwrap_or_default() {
        let name = campus_name(state, &id, t).await;
        campuses.push((id, name));
    }
    let name_of = |id: &str| campuses.iter().find(|(c, _)| c == id).map_or(id.to_string(), |(_, n)| n.clone());
    let mut rows: Vec<Row> = state
        .imaging
        .aes()
        .into_iter()
        .map(|a| Row {
            campus: name_of(&a.campus),
            title: a.ae_title,
            host: a.host.unwrap_or_default(),
            port: a.port.map(|p| p.to_string()).unwrap_or_default(),
            description: a.description,
            charset: a.charset.unwrap_or_default(),
        })
        .collect();
    rows.sort_by(|a, b| (&a.campus, &a.title).cmp(&(&b.campus, &b.title)));
    let totals = match state.imaging.totals().await {
        Ok(x) => (x.studies, x.instances, format!("{:.1}", x.bytes as f64 / 1e9), x.unmatched),
        Err(_) => (0, 0, "0".into(), 0),
    };
    let shell = shell(state, &s.info, t, &s.headers).await;
    page(AesPage { t, shell: &shell, rows, campuses, charsets: CHARSETS, draft, errors, done, totals }.render())
}

async fn list(State(state): State<AppState>, s: Signed, Query(q): Query<Done>) -> Response {
    if !may_manage(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, AeDraft::default(), Vec::new(), q.done).await
}

fn csrf_ok(s: &Signed, form: &[(String, String)]) -> bool {
    lianyi_security::secrets::constant_time_eq(&s.info.csrf, &form_value(form, "csrf"))
}

/// Adds an AE, or changes the one of that title (`csrf`, `ae_title`, `campus`, `host`,
/// `port`, `description`, `charset`).
async fn save(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_manage(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let draft = AeDraft {
        ae_title: form_value(&form, "ae_title"),
        campus: form_value(&form, "campus"),
        host: form_value(&form, "host"),
        port: form_value(&form, "port"),
        description: form_value(&form, "description"),
        charset: form_value(&form, "charset"),
    };
    match state.imaging.put_ae(&s.info.caller, &draft).await {
        Ok(ae) => see_other(&format!("/imaging/aes?done={}", urlencode(&ae.ae_title))),
        Err(ImagingError::Invalid(fields)) => {
            let errors = fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        s.t.get(&format!("ae-field-{}", f.field)),
                        s.t.get(&format!("ae-rule-{}", f.rule))
                    )
                })
                .collect();
            render(&state, &s, draft, errors, None).await
        }
        Err(ImagingError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            tracing::error!(error = %e, "saving a DICOM AE");
            render(&state, &s, draft, vec![s.t.get("ae-failed").to_string()], None).await
        }
    }
}

async fn remove(
    State(state): State<AppState>,
    s: Signed,
    Path(title): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    if !may_manage(&s.info.caller) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    match state.imaging.remove_ae(&s.info.caller, &title).await {
        Ok(_) => see_other("/imaging/aes"),
        Err(ImagingError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            tracing::error!(error = %e, "removing a DICOM AE");
            render(&state, &s, AeDraft::default(), vec![s.t.get("ae-failed").to_string()], None).await
        }
    }
}

use crate::ui::render::urlencode;
