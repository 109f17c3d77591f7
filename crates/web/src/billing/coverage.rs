//! A patient's insurance (医保): the list and, for registrars, the form recording one.
//! The rules live in [`lianyi_billing::coverage`].

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::Response;
use lianyi_billing::coverage::{CoverageError, CoverageForm, Coverages, KINDS};
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, page, see_other, server_error};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};

#[derive(Deserialize, Default)]
pub(super) struct CoverageQuery {
    #[serde(default)]
    patient: String,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "billing/coverage.html")]
struct CoveragePage<'a> {
    t: Tr,
    shell: &'a Shell,
    patient: String,
    patient_name: String,
    /// (kind key, insurer, member, start, end)
    list: Vec<(String, String, String, String, String)>,
    kinds: Vec<(&'static str, String)>,
    form: CoverageForm,
    errors: Vec<(String, String)>,
    done: bool,
}

async fn render(
    state: &AppState,
    s: &Signed,
    patient: &str,
    form: CoverageForm,
    errors: Vec<(String, String)>,
    done: bool,
) -> Response {
    let (info, t) = (&s.info, s.t);
    let coverages = Coverages::new(state.fhir.clone());
    let list = match coverages.list(&info.caller, patient).await {
        Ok(l) => l,
        Err(CoverageError::Service(lianyi_services::ServiceError::Forbidden(_))) => return forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "coverage list");
            return server_error(Some(t));
        }
    };
    let shell = shell(state, info, t, &s.headers).await;
    page(
        CoveragePage {
            t,
            shell: &shell,
            patient: patient.to_string(),
            patient_name: super::patient_name(state, &info.caller, patient).await,
            list: list
                .into_iter()
                .map(|c| (format!("coverage-kind-{}", c.kind), c.payor, c.member, c.start, c.end))
                .collect(),
            kinds: KINDS.iter().map(|(code, zh, en)| (*code, t.pick(*zh, *en).to_string())).collect(),
            form,
            errors,
            done,
        }
        .render(),
    )
}

pub(super) async fn coverage_page(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<CoverageQuery>,
) -> Response {
    if !Coverages::may_record(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, &q.patient, CoverageForm::default(), Vec::new(), q.done.is_some()).await
}

pub(super) async fn record(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<CoverageQuery>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| crate::ui::render::form_value(&f, k);
    if !s.csrf_ok(&value("csrf")) || !Coverages::may_record(&s.info.caller) {
        return forbidden(s.t);
    }
    let form = CoverageForm {
        kind: value("kind"),
        payor: value("payor"),
        member: value("member"),
        start: value("start"),
        end: value("end"),
    };
    match Coverages::new(state.fhir.clone()).record(&s.info.caller, &q.patient, &form).await {
        Ok(_) => see_other(&format!("/billing/coverage?patient={}&done=1", q.patient)),
        Err(CoverageError::Invalid(errors)) => {
            let t = s.t;
            let rows = errors
                .iter()
                .map(|e| {
                    let text = t.try_get(&format!("coverage-rule-{}", e.rule)).map_or(e.detail.clone(), str::to_string);
                    (e.field.to_string(), text)
                })
                .collect();
            render(&state, &s, &q.patient, form, rows, false).await
        }
        Err(CoverageError::Service(lianyi_services::ServiceError::Forbidden(_))) => forbidden(s.t),
        Err(e) => {
            tracing::error!(error = %e, "coverage");
            server_error(Some(s.t))
        }
    }
}
