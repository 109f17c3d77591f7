//! The patient's own record on the portal: their reports, each value with its flag
//! and reference range said in plain words, and a test's trend. Everything is read
//! as the patient (their compartment; another patient's report is not found), and
//! audited as theirs.

use lianyi_clinical::record::code_text;
use lianyi_clinical::results::{Point, ReportView, Results, analyte, trend_svg};
use lianyi_security::Caller;
use lianyi_services::FhirService;

use crate::common::{patient_of, ref_id, search};
use crate::{Names, PortalError};
use serde_json::Value;

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

/// A visit on the patient's summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisitLine {
    /// The Encounter id.
    pub id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub department: Names,
    pub doctor: Names,
    pub status: String,
    /// The diagnoses recorded for it.
    pub diagnoses: Vec<String>,
}

/// A prescription on the patient's summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrescriptionLine {
    pub date: String,
    pub drug: String,
    pub dosage: String,
    pub status: String,
    /// When it was handed over, if it was.
    pub dispensed: Option<String>,
}

/// A bill on the patient's summary: its invoice number, date, amount (fen) and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillLine {
    pub number: String,
    pub date: String,
    pub fen: i64,
    pub status: String,
}

/// The patient's record in short: visits with their diagnoses, allergies,
/// prescriptions (dispensed or not), bills.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Summary {
    pub name: String,
    pub birth_date: String,
    pub visits: Vec<VisitLine>,
    /// (substance, reaction, criticality).
    pub allergies: Vec<(String, String, String)>,
    pub prescriptions: Vec<PrescriptionLine>,
    pub bills: Vec<BillLine>,
}

fn day(v: &Value) -> String {
    v.as_str().and_then(|s| s.get(..10)).unwrap_or_default().to_string()
}

/// One access to the patient's record, as the patient sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessView {
    pub at: i64,
    /// Who (the audit's actor): only to tell readers apart, never shown.
    pub reader: String,
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
    /// The audit record's number (to ask about it; the newest of a group).
    pub seq: i64,
    /// How many accesses this line stands for: the same reader doing the same on the
    /// same day, one after another, are one line from `first_at` to `at`.
    pub count: i64,
    pub first_at: i64,
}

/// Milliseconds of Beijing's offset from UTC (China keeps one time zone, no DST).
const BEIJING_MS: i64 = 8 * 3_600_000;

/// Folds runs of the same access (same reader, kind, campus, action, type and
/// outcome, on the same Beijing day; never a break-the-glass) into one line each.
fn grouped(rows: Vec<AccessView>) -> Vec<AccessView> {
    let mut out: Vec<AccessView> = Vec::new();
    for a in rows {
        if let Some(last) = out.last_mut() {
            let same = a.action != "break-glass"
                && (&last.reader, last.own, &last.kind, &last.roles, &last.campus, &last.system)
                    == (&a.reader, a.own, &a.kind, &a.roles, &a.campus, &a.system)
                && (&last.action, &last.resource_type, &last.outcome) == (&a.action, &a.resource_type, &a.outcome)
                && (last.first_at + BEIJING_MS).div_euclid(86_400_000) == (a.at + BEIJING_MS).div_euclid(86_400_000);
            if same {
                last.count += 1;
                last.first_at = a.at;
                continue;
            }
        }
        out.push(a);
    }
    out
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct MyRecord {
    fhir: FhirService,
    results: Results,
    feedback: lianyi_manage::feedback::Feedbacks,
}

/// A patient's question about an access, with its answer when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivacyQuestion {
    pub asked_at: i64,
    pub subject: String,
    pub question: String,
    pub answer: Option<String>,
}

impl MyRecord {
    pub fn new(fhir: FhirService) -> MyRecord {
        MyRecord {
            results: Results::new(fhir.clone()),
            feedback: lianyi_manage::feedback::Feedbacks::new(fhir.clone()),
            fhir,
        }
    }

    /// Asks the privacy officer about one access to the patient's record (its audit
    /// record's number, from the patient's own log); `NotFound` for any other.
    pub async fn ask_about_access(&self, caller: &Caller, seq: i64, question: &str) -> Result<i64, PortalError> {
        use lianyi_manage::feedback::FeedbackError;
        let access = self.accesses(caller).await?.into_iter().find(|a| a.seq == seq).ok_or(PortalError::NotFound)?;
        let campus = if access.campus.is_empty() {
            let patient = patient_of(caller)?;
            let (r, _) =
                crate::common::read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
            r.campus.unwrap_or_default()
        } else {
            access.campus.clone()
        };
        let who = if access.kind == "user" { access.roles.clone() } else { access.system.clone() };
        let what = format!(
            "#{seq} {} {who}@{} {} {}",
            lianyi_fhir::datetime::format_instant(access.at),
            access.campus,
            access.action,
            access.resource_type
        );
        match self.feedback.privacy_question(caller, &campus, &what, question).await {
            Ok(id) => Ok(id),
            Err(FeedbackError::Invalid(e)) => Err(PortalError::Invalid(e)),
            Err(FeedbackError::Forbidden(why)) => Err(PortalError::Forbidden(why.into())),
            Err(FeedbackError::Service(e)) => Err(e.into()),
            Err(FeedbackError::Store(e)) => Err(e.into()),
            Err(e) => Err(PortalError::Users(e.to_string())),
        }
    }

    /// The patient's questions about accesses, newest first, with the answers.
    pub async fn privacy_questions(&self, caller: &Caller) -> Result<Vec<PrivacyQuestion>, PortalError> {
        patient_of(caller)?;
        let list = self.feedback.my_privacy_questions(caller).await.map_err(|e| PortalError::Users(e.to_string()))?;
        Ok(list
            .into_iter()
            .map(|f| PrivacyQuestion { asked_at: f.received_at, subject: f.subject, question: f.body, answer: f.reply })
            .collect())
    }

    /// The patient's name as their record holds it.
    pub async fn name(&self, caller: &Caller) -> Result<String, PortalError> {
        let patient = patient_of(caller)?;
        let (_, p) = crate::common::read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
        Ok(lianyi_clinical::registry::person_of(&p).name)
    }

    /// The patient's record in short (see [`Summary`]), as the patient reads it.
    pub async fn summary(&self, caller: &Caller) -> Result<Summary, PortalError> {
        let patient = patient_of(caller)?.to_string();
        let fhir = &self.fhir;
        let of = |t: &str| format!("Patient/{t}");
        let (_, p) = crate::common::read(fhir, caller, "Patient", &patient).await?.ok_or(PortalError::NotFound)?;
        let (visits, people) = search(
            fhir,
            caller,
            "Encounter",
            &[
                ("patient", of(&patient)),
                ("_sort", "-date".into()),
                ("_include", "Encounter:practitioner".into()),
                ("_include", "Encounter:service-provider".into()),
                ("_count", "20".into()),
            ],
        )
        .await?;
        let (conditions, _) =
            search(fhir, caller, "Condition", &[("patient", of(&patient)), ("_count", "200".into())]).await?;
        let (allergies, _) =
            search(fhir, caller, "AllergyIntolerance", &[("patient", of(&patient)), ("_count", "50".into())]).await?;
        let (requests, _) = search(
            fhir,
            caller,
            "MedicationRequest",
            &[("patient", of(&patient)), ("_sort", "-authoredon".into()), ("_count", "50".into())],
        )
        .await?;
        let (dispenses, _) =
            search(fhir, caller, "MedicationDispense", &[("patient", of(&patient)), ("_count", "200".into())]).await?;
        let (invoices, _) = search(
            fhir,
            caller,
            "Invoice",
            &[("patient", of(&patient)), ("_sort", "-date".into()), ("_count", "50".into())],
        )
        .await?;
        let person = lianyi_clinical::registry::person_of(&p);
        let find = |t: &str, id: Option<&str>| {
            id.and_then(|id| people.iter().find(|x| x["resourceType"] == t && x["id"] == id))
        };
        Ok(Summary {
            name: person.name,
            birth_date: person.birth_date.unwrap_or_default(),
            visits: visits
                .iter()
                .map(|(r, e)| {
                    let mine = format!("Encounter/{}", r.id);
                    VisitLine {
                        id: r.id.clone(),
                        date: day(&e["period"]["start"]),
                        department: find("Organization", ref_id(&e["serviceProvider"], "Organization"))
                            .map(lianyi_services::fhir::organization_names)
                            .unwrap_or_default(),
                        doctor: e["participant"]
                            .as_array()
                            .and_then(|ps| ps.iter().find_map(|p| ref_id(&p["individual"], "Practitioner")))
                            .and_then(|id| find("Practitioner", Some(id)))
                            .map(lianyi_clinical::names::of_practitioner)
                            .unwrap_or_default(),
                        status: e["status"].as_str().unwrap_or_default().to_string(),
                        diagnoses: conditions
                            .iter()
                            .filter(|(_, c)| c["encounter"]["reference"] == mine.as_str())
                            .map(|(_, c)| code_text(&c["code"]))
                            .collect(),
                    }
                })
                .collect(),
            allergies: allergies
                .iter()
                .map(|(_, a)| {
                    (
                        code_text(&a["code"]),
                        a["reaction"][0]["manifestation"]
                            .as_array()
                            .map(|m| m.iter().map(code_text).collect::<Vec<_>>().join("、"))
                            .unwrap_or_default(),
                        a["criticality"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            prescriptions: requests
                .iter()
                .map(|(r, m)| {
                    let mine = format!("MedicationRequest/{}", r.id);
                    let handed = dispenses.iter().find(|(_, d)| {
                        d["authorizingPrescription"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x["reference"] == mine.as_str()))
                    });
                    PrescriptionLine {
                        date: day(&m["authoredOn"]),
                        drug: code_text(&m["medicationCodeableConcept"]),
                        dosage: m["dosageInstruction"][0]["text"].as_str().unwrap_or_default().to_string(),
                        status: m["status"].as_str().unwrap_or_default().to_string(),
                        dispensed: handed.map(|(_, d)| day(&d["whenHandedOver"])),
                    }
                })
                .collect(),
            bills: invoices
                .iter()
                .map(|(_, i)| BillLine {
                    number: i["identifier"][0]["value"].as_str().unwrap_or_default().to_string(),
                    date: day(&i["date"]),
                    fen: lianyi_billing::charges::extension_i64(i, lianyi_billing::charges::AMOUNT_URL),
                    status: i["status"].as_str().unwrap_or_default().to_string(),
                })
                .collect(),
        })
    }

    /// The patient's whole record as a FHIR searchset Bundle (`$everything`), for
    /// download: what the patient may read, audited as theirs.
    pub async fn everything(&self, caller: &Caller) -> Result<Value, PortalError> {
        let patient = patient_of(caller)?;
        let (total, rows) = self.fhir.everything(caller, patient, None, None, 10_000, 0).await?;
        let entries: Vec<Value> = rows
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .map(|resource| serde_json::json!({"resource": resource, "search": {"mode": "match"}}))
            .collect();
        Ok(serde_json::json!({"resourceType": "Bundle", "type": "searchset", "total": total,
            "timestamp": lianyi_fhir::datetime::format_instant(self.fhir.now_ms()), "entry": entries}))
    }

    /// Every access to the patient's record, newest first: who (by role and campus,
    /// or the platform's job), when, what kind, break-the-glass with its reason; runs
    /// of the same access on one day as one line with their count.
    pub async fn accesses(&self, caller: &Caller) -> Result<Vec<AccessView>, PortalError> {
        patient_of(caller)?;
        let me = caller.actor().to_string();
        let rows = self.fhir.my_access_log(caller).await?;
        Ok(grouped(
            rows.into_iter()
                .map(|r| {
                    let e = r.entry;
                    let reason = (e.action == "break-glass")
                        .then(|| e.detail.as_deref().and_then(|d| d.strip_prefix("reason: ")))
                        .flatten()
                        .map(|d| d.rsplit_once("; until").map_or(d, |(reason, _)| reason).to_string());
                    AccessView {
                        at: e.recorded_at,
                        reader: e.actor.clone(),
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
                        count: 1,
                        first_at: e.recorded_at,
                    }
                })
                .collect(),
        ))
    }

    /// The patient's reports, newest first.
    pub async fn reports(&self, caller: &Caller) -> Result<Vec<ReportView>, PortalError> {
        let patient = patient_of(caller)?;
        Ok(self.results.reports_of(caller, patient).await?)
    }

    /// One of the patient's reports with its results; `NotFound` for anyone else's.
    pub async fn report(&self, caller: &Caller, id: &str) -> Result<ReportView, PortalError> {
        let patient = patient_of(caller)?;
        // Another patient's report is refused by the compartment check (the pages say
        // "not found" for that, as for a missing one).
        let r = self.results.report(caller, id).await?;
        if r.patient != patient {
            return Err(PortalError::NotFound);
        }
        Ok(r)
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

    fn access(at: i64, roles: &str, action: &str, reason: Option<&str>) -> AccessView {
        AccessView {
            at,
            reader: format!("{roles}.1"),
            own: false,
            kind: "user".into(),
            roles: roles.into(),
            campus: "campus-east".into(),
            system: String::new(),
            action: action.into(),
            resource_type: "Patient".into(),
            reason: reason.map(str::to_string),
            outcome: "success".into(),
            seq: at,
            count: 1,
            first_at: at,
        }
    }

    #[test]
    fn runs_of_the_same_access_on_one_beijing_day_are_one_line() {
        const H: i64 = 3_600_000;
        // 2026-11-23 00:00 in Beijing is 2026-11-22 16:00 UTC.
        let midnight = 1_795_363_200_000;
        let another_doctor =
            AccessView { reader: "doctor.2".into(), ..access(midnight + 4 * H, "doctor", "read", None) };
        let rows = vec![
            another_doctor,
            access(midnight + 3 * H, "doctor", "read", None),
            access(midnight + 2 * H, "doctor", "read", None),
            access(midnight + H, "doctor", "read", None),
            access(midnight + H / 2, "doctor", "break-glass", Some("emergency")),
            access(midnight - H, "doctor", "read", None),
            access(midnight - 2 * H, "nurse", "read", None),
        ];
        let g = grouped(rows);
        let lines: Vec<(i64, i64, i64)> = g.iter().map(|a| (a.first_at, a.at, a.count)).collect();
        assert_eq!(
            lines,
            vec![
                (midnight + 4 * H, midnight + 4 * H, 1),
                (midnight + H, midnight + 3 * H, 3),
                (midnight + H / 2, midnight + H / 2, 1),
                (midnight - H, midnight - H, 1),
                (midnight - 2 * H, midnight - 2 * H, 1),
            ],
            "another doctor, a break-the-glass, the day before and another role are lines of their own"
        );
        assert_eq!(g[1].seq, midnight + 3 * H, "asked about by the newest");
    }

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
