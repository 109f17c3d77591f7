//! The reconciliation list (`/imaging/reconcile`): studies whose PatientID was no MRN
//! of the sending campus wait here instead of joining a wrong record. The registrar
//! finds the patient with the registry's search (name, pinyin, MRN, phone, resident
//! ID), compares what the modality sent with the record, and files the study under
//! them; its ImagingStudy follows. Listing and filing are audited by the imaging
//! service.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use lianyi_clinical::registry::Query as Find;
use lianyi_security::{Caller, Perm};
use serde::Deserialize;
use serde_json::Value;

use super::viewer::dicom_date;
use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell, staff_may};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/imaging/reconcile", get(list)).route("/imaging/reconcile/{study}", post(file))
}

/// Who reconciles: staff who update imaging studies and search patients.
pub(super) fn may_reconcile(c: &Caller) -> bool {
    staff_may(c, "ImagingStudy", Perm::Update) && staff_may(c, "Patient", Perm::Search)
}

/// A waiting study as the modality described its patient.
struct Waiting {
    uid: String,
    received: String,
    source_ae: String,
    patient_id: String,
    name: String,
    birth_date: String,
    sex: String,
    study_date: String,
    what: String,
    instances: i64,
    /// This page, the study chosen and its patient's name searched.
    find: String,
}

/// A record the search found, to file the chosen study under.
struct Match {
    id: String,
    name: String,
    birth_date: String,
    gender: String,
    mrns: String,
}

#[derive(Template)]
#[template(path = "imaging/reconcile.html")]
struct ReconcilePage<'a> {
    t: Tr,
    shell: &'a Shell,
    waiting: Vec<Waiting>,
    /// The study being matched, the search typed and what it found.
    chosen: String,
    q: String,
    searched: bool,
    matches: Vec<Match>,
    done: bool,
    error: Option<&'static str>,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    study: Option<String>,
    q: Option<String>,
    done: Option<String>,
}

fn first(json: &Value, tag: &str) -> Value {
    json[tag]["Value"][0].clone()
}

fn waiting_of(s: lianyi_store::imaging::Study) -> Waiting {
    let json: Value = serde_json::from_str(&s.json).unwrap_or_default();
    let name = first(&json, "00100010");
    let name = [name["Ideographic"].as_str(), name["Alphabetic"].as_str()]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .map(|n| n.replace('^', " ").trim().to_string())
        .collect::<Vec<_>>()
        .join(" / ");
    let find = form_urlencoded::Serializer::new(String::from("/imaging/reconcile?"))
        .append_pair("study", &s.study_uid)
        .append_pair("q", name.split(" / ").next().unwrap_or_default())
        .finish();
    Waiting {
        find,
        received: lianyi_clinical::scheduling::local_instant(s.received_at)
            .get(..16)
            .unwrap_or_default()
            .replace('T', " "),
        source_ae: s.source_ae,
        patient_id: s.patient_key,
        name,
        birth_date: dicom_date(first(&json, "00100030").as_str().unwrap_or_default()),
        sex: first(&json, "00100040").as_str().unwrap_or_default().to_string(),
        study_date: dicom_date(&s.study_date),
        what: format!("{} {}", s.modalities.replace('\\', "/"), s.description),
        instances: s.instance_count,
        uid: s.study_uid,
    }
}

async fn render(state: &AppState, s: &Signed, q: ListQuery, error: Option<&'static str>) -> Response {
    let (info, t) = (&s.info, s.t);
    let caller = &info.caller;
    let waiting: Vec<Waiting> = match state.imaging.unmatched(caller).await {
        Ok(list) => list.into_iter().map(waiting_of).collect(),
        Err(e) => {
            tracing::error!(error = %e, "the reconciliation list");
            Vec::new()
        }
    };
    let chosen = q.study.filter(|u| waiting.iter().any(|w| &w.uid == u)).unwrap_or_default();
    let typed = q.q.unwrap_or_default();
    let mut matches = Vec::new();
    let searched = !chosen.is_empty() && !typed.trim().is_empty();
    if searched && let Some(find) = Find::parse(&typed) {
        for f in state.registry.find(caller, &find).await.unwrap_or_default().into_iter().filter(|f| f.openable) {
            let c = f.candidate;
            matches.push(Match {
                id: c.id,
                name: c.name,
                birth_date: c.birth_date.unwrap_or_default(),
                gender: c.gender.map(|g| t.get(&format!("gender-{g}")).to_string()).unwrap_or_default(),
                mrns: c.mrns.iter().map(|m| m.number.clone()).collect::<Vec<_>>().join(", "),
            });
        }
    }
    let shell = shell(state, info, t, &s.headers).await;
    page(
        ReconcilePage { t, shell: &shell, waiting, chosen, q: typed, searched, matches, done: q.done.is_some(), error }
            .render(),
    )
}

async fn list(State(state): State<AppState>, s: Signed, Query(q): Query<ListQuery>) -> Response {
    if !may_reconcile(&s.info.caller) {
        return forbidden(s.t);
    }
    render(&state, &s, q, None).await
}

/// Files the study under the patient chosen (`csrf`, `patient`).
async fn file(
    State(state): State<AppState>,
    s: Signed,
    Path(study): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    let caller = &s.info.caller;
    if !may_reconcile(caller) || !lianyi_security::secrets::constant_time_eq(&s.info.csrf, &form_value(&form, "csrf")) {
        return forbidden(s.t);
    }
    let patient = form_value(&form, "patient");
    match state.imaging.reconcile(caller, &study, &patient).await {
        Ok(()) => see_other("/imaging/reconcile?done=1"),
        Err(e) => {
            tracing::warn!(error = %e, "filing a study under a patient");
            let q = ListQuery { study: Some(study), q: Some(form_value(&form, "q")), done: None };
            render(&state, &s, q, Some("reconcile-failed")).await
        }
    }
}
