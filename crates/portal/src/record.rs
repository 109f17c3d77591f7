//! The patient's own record on the portal: their reports, each value with its flag
//! and reference range said in plain words, and a test's trend. Everything is read
//! as the patient (their compartment; another patient's report is not found), and
//! audited as theirs.

use lianyi_clinical::results::{Point, ReportView, Results, analyte, trend_svg};
use lianyi_security::Caller;
use lianyi_services::FhirService;

use crate::common::patient_of;
use crate::{Names, PortalError};

/// What a flag means, for a patient.
pub fn explain(flag: &str) -> Names {
    let (zh, en) = match flag {
        "H" => ("偏高：高于参考范围", "High: above the reference range"),
        "L" => ("偏低：低于参考范围", "Low: below the reference range"),
        "HH" => {
            ("明显偏高（危急值）：已立即通知您的医生", "Far too high (a critical value): your doctor was told at once")
        }
        "LL" => {
            ("明显偏低（危急值）：已立即通知您的医生", "Far too low (a critical value): your doctor was told at once")
        }
        "A" => ("异常：请向医生咨询", "Abnormal: ask your doctor"),
        "N" | "" => ("正常：在参考范围内", "Normal: within the reference range"),
        _ => ("请向医生咨询", "Ask your doctor"),
    };
    Names { zh: zh.into(), en: en.into() }
}

/// What a reference range is, for a patient.
pub fn range_note() -> Names {
    Names {
        zh: "参考范围：大多数健康人（约 95%）的结果落在这个范围内。稍有超出不一定是疾病，请结合医生的意见。".into(),
        en: "Reference range: the results of most healthy people (about 95 %) fall within it. A value just outside \
             is not necessarily illness; ask your doctor what it means for you."
            .into(),
    }
}

/// A test's trend for the patient: the points and the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Trend {
    pub names: Names,
    pub points: Vec<Point>,
    /// An SVG document (empty without points).
    pub svg: String,
}

/// One access to the patient's record, as the patient sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessView {
    pub at: i64,
    /// The account's own doing (the patient, or their proxy).
    pub own: bool,
    /// `user`, `client`, `system`.
    pub kind: String,
    /// Role codes (comma-separated), for people.
    pub roles: String,
    pub campus: String,
    /// The platform job or system's name, for platform accesses (`hl7:LIS^EAST`).
    pub system: String,
    /// `read`, `search`, `create`, `update`, `break-glass` …
    pub action: String,
    pub resource_type: String,
    /// The reason given, for break-the-glass.
    pub reason: Option<String>,
    pub outcome: String,
    /// The audit record's number (to ask about it).
    pub seq: i64,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct MyRecord {
    fhir: FhirService,
    results: Results,
}

impl MyRecord {
    pub fn new(fhir: FhirService) -> MyRecord {
        MyRecord { results: Results::new(fhir.clone()), fhir }
    }

    /// The patient's name as their record holds it.
    pub async fn name(&self, caller: &Caller) -> Result<String, PortalError> {
        let patient = patient_of(caller)?;
        let (_, p) = crate::common::read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
        Ok(lianyi_clinical::registry::person_of(&p).name)
    }

    /// Every access to the patient's record, newest first: who (by role and campus,
    /// or the platform's job), when, what kind, break-the-glass with its reason.
    pub async fn accesses(&self, caller: &Caller) -> Result<Vec<AccessView>, PortalError> {
        patient_of(caller)?;
        let me = caller.actor().to_string();
        let rows = self.fhir.my_access_log(caller).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let e = r.entry;
                let reason = (e.action == "break-glass")
                    .then(|| e.detail.as_deref().and_then(|d| d.strip_prefix("reason: ")))
                    .flatten()
                    .map(|d| d.rsplit_once("; until").map_or(d, |(reason, _)| reason).to_string());
                AccessView {
                    at: e.recorded_at,
                    own: e.actor == me,
                    system: if e.actor_kind == "user" { String::new() } else { e.actor.clone() },
                    kind: e.actor_kind,
                    roles: e.role.unwrap_or_default(),
                    campus: e.campus.unwrap_or_default(),
                    action: e.action,
                    resource_type: e.resource_type.unwrap_or_default(),
                    reason,
                    outcome: e.outcome,
                    seq: r.seq,
                }
            })
            .collect())
    }

    /// The patient's reports, newest first.
    pub async fn reports(&self, caller: &Caller) -> Result<Vec<ReportView>, PortalError> {
        let patient = patient_of(caller)?;
        Ok(self.results.reports_of(caller, patient).await?)
    }

    /// One of the patient's reports with its results; `NotFound` for anyone else's.
    pub async fn report(&self, caller: &Caller, id: &str) -> Result<ReportView, PortalError> {
        let patient = patient_of(caller)?;
        match self.results.report(caller, id).await {
            Ok(r) if r.patient == patient => Ok(r),
            Ok(_) => Err(PortalError::NotFound),
            Err(e) => match PortalError::from(e) {
                PortalError::Service(
                    lianyi_services::ServiceError::NotFound { .. }
                    | lianyi_services::ServiceError::Gone { .. }
                    | lianyi_services::ServiceError::Forbidden(_),
                ) => Err(PortalError::NotFound),
                other => Err(other),
            },
        }
    }

    /// The patient's results of one test (LOINC), oldest first, with the chart.
    pub async fn trend(&self, caller: &Caller, loinc: &str, title: &str) -> Result<Trend, PortalError> {
        let patient = patient_of(caller)?;
        let a = analyte(loinc).ok_or(PortalError::NotFound)?;
        let points = self.results.series(caller, patient, loinc, 50).await;
        let svg = if points.is_empty() { String::new() } else { trend_svg(title, &points, a.interval(None), loinc) };
        Ok(Trend { names: Names { zh: a.zh.into(), en: a.en.into() }, points, svg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_is_said_in_both_languages() {
        for f in ["H", "L", "HH", "LL", "A", "N", ""] {
            let n = explain(f);
            assert!(!n.zh.is_empty() && !n.en.is_empty(), "{f}");
        }
        assert!(explain("HH").zh.contains("危急值"));
        assert_ne!(explain("H"), explain("L"));
    }
}
