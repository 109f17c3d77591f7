//! Reads the clinic's pages share, as the signed-in user (permission, campus, audit):
//! a resource by id, a search, names in the page's language, the departments of a
//! campus, and the record across campuses with campus names.

use lianyi_clinical::record::Event;
use lianyi_clinical::results::Latest;
use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::Caller;
use serde_json::Value;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::shell::{Shell, campus_name};

pub(super) async fn search(state: &AppState, caller: &Caller, t: &str, params: &[(&str, String)]) -> Vec<Value> {
    let Some(rt) = ResourceType::parse(t) else { return Vec::new() };
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let Ok(req) = parse_search(rt, &params) else { return Vec::new() };
    let searched = match state.fhir.permit(caller, rt).await {
        Ok(permit) => state.fhir.search(&permit, &req).await,
        Err(e) => Err(e),
    };
    match searched {
        Ok(page) => page
            .resources
            .iter()
            .chain(page.included.iter())
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, resource_type = t, "page search failed");
            Vec::new()
        }
    }
}

pub(super) async fn read(state: &AppState, caller: &Caller, t: &str, id: &str) -> Option<Value> {
    let rt = ResourceType::parse(t)?;
    let r = state.fhir.reader(caller, rt).await.ok()?.read(id).await.ok()?;
    serde_json::from_str(&r.body).ok()
}

/// An Organization's or Practitioner's name in the page's language.
pub(super) fn display_name(v: &Value, t: Tr) -> String {
    let names = lianyi_clinical::names::of(v);
    t.pick(names.zh, names.en)
}

/// (id, name) of the departments of a campus.
pub(super) async fn departments(state: &AppState, caller: &Caller, t: Tr, campus: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = search(
        state,
        caller,
        "Organization",
        &[("partof", format!("Organization/{campus}")), ("_count", "100".into())],
    )
    .await
    .iter()
    .filter_map(|o| Some((o["id"].as_str()?.to_string(), display_name(o, t))))
    .collect();
    out.sort();
    out
}

/// The departments of the user's campus, and `chosen` if it is one of them (else "").
pub(super) async fn department_choice(
    state: &AppState,
    caller: &Caller,
    t: Tr,
    shell: &Shell,
    chosen: Option<String>,
) -> (Vec<(String, String)>, String) {
    let departments = match &shell.campus {
        Some(c) => departments(state, caller, t, c.as_str()).await,
        None => Vec::new(),
    };
    let dept = chosen.filter(|d| departments.iter().any(|(id, _)| id == d)).unwrap_or_default();
    (departments, dept)
}

/// Campus names by id, looked up once per page.
pub(super) struct CampusNames {
    t: Tr,
    known: Vec<(String, String)>,
}

impl CampusNames {
    pub(super) fn new(t: Tr) -> CampusNames {
        CampusNames { t, known: Vec::new() }
    }

    pub(super) async fn name(&mut self, state: &AppState, id: &str) -> String {
        if let Some((_, n)) = self.known.iter().find(|(k, _)| k == id) {
            return n.clone();
        }
        let n = campus_name(state, id, self.t).await;
        self.known.push((id.to_string(), n.clone()));
        n
    }
}

/// The patient's newest results and record across campuses, as `care` reads them,
/// with campus names (and a normal result's flag left blank).
pub(super) async fn record_rows(state: &AppState, care: &Caller, patient: &str, t: Tr) -> (Vec<Latest>, Vec<Event>) {
    let mut names = CampusNames::new(t);
    let mut results = state.results.latest(care, patient).await;
    for r in &mut results {
        r.name = t.pick(&r.names.zh, &r.names.en).clone();
        r.campus = names.name(state, &r.campus).await;
        if r.flag == "N" {
            r.flag.clear();
        }
    }
    let own = care.access().all_campuses();
    let mut timeline = state.record.timeline(care, patient, 50).await;
    for e in &mut timeline {
        // Pages of another campus's visits are not the reader's to open.
        if !own.contains(&e.campus) {
            e.link = None;
        }
        e.campus = names.name(state, &e.campus).await;
        if e.kind == "encounter" {
            let kind = if e.text.is_empty() { t.named("encounter-class", &e.class) } else { e.text.clone() };
            e.text = format!("{kind} · {}", t.named("encounter-status", &e.status));
        }
    }
    (results, timeline)
}

/// The laboratory and imaging requests of a visit: (placer number, item name in the
/// page's language, priority code).
pub(super) async fn requested(
    state: &AppState,
    caller: &Caller,
    encounter: &str,
    t: Tr,
) -> Vec<(String, String, String)> {
    state
        .ordering
        .requested(caller, encounter)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let name =
                lianyi_clinical::orders::item(&r.code).map_or(r.code.clone(), |i| t.pick(i.zh, i.en).to_string());
            (r.placer, name, r.priority)
        })
        .collect()
}

/// The visit's diagnoses: (ICD-10 code, title in the page's language; English where
/// the table has no Chinese title).
pub(super) async fn diagnoses(state: &AppState, caller: &Caller, encounter: &str, t: Tr) -> Vec<(String, String)> {
    state
        .workspace
        .diagnoses(caller, encounter)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let title = t.pick(d.title_zh.as_deref().unwrap_or(&d.title_en), &d.title_en).to_string();
            (d.code, title)
        })
        .collect()
}

/// A study on the patient's and the encounter's pages.
pub(super) struct StudyRow {
    pub uid: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Modalities and description, e.g. `CT 胸部CT平扫 (2 series)`.
    pub text: String,
    pub accession: String,
}

/// The patient's imaging studies the caller may see, newest first (the record across
/// campuses; listing is audited by the imaging service). Empty for callers who do not
/// read images.
pub(super) async fn imaging_studies(state: &AppState, caller: &Caller, patient: &str, t: Tr) -> Vec<StudyRow> {
    if !crate::ui::shell::staff_may(caller, "ImagingStudy", lianyi_security::Perm::Search) {
        return Vec::new();
    }
    match state.imaging.studies_of(caller, patient).await {
        Ok(list) => list
            .into_iter()
            .map(|s| StudyRow {
                date: lianyi_fhir::datetime::from_dtm(&s.study_date, "").unwrap_or_else(|| s.study_date.clone()),
                text: format!(
                    "{} {} ({} {})",
                    s.modalities.replace('\\', "/"),
                    s.description,
                    s.series_count,
                    t.get("imaging-series-count")
                ),
                uid: s.study_uid,
                accession: s.accession,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "imaging studies of a patient");
            Vec::new()
        }
    }
}
