//! Laboratory and imaging results entered on a page (results also arrive by HL7 ORU),
//! their abnormal flags, and trend charts.
//!
//! A result is entered against an open request (ServiceRequest): one Observation per
//! result item of the order (`data/analytes.tsv`: LOINC code, unit, adult reference
//! intervals by sex), flagged L / H against the interval and LL / HH at the critical
//! limits (`data/critical-limits.tsv`), a DiagnosticReport gathering them, and the
//! request marked completed — one transaction, so nothing is half-written. Each
//! Observation keeps the request's placer number in `basedOn`, so a critical value
//! entered here reaches the ordering doctor exactly like one from the lab's ORU.

use std::fmt::Write as _;
use std::sync::LazyLock;

use lianyi_security::{Caller, Perm};
use lianyi_services::FhirService;
use serde_json::{Value, json};

use crate::common::{editable, invalid, minute as when, put, rtype};
use crate::orders::{PLACER_SYSTEM, USER_SYSTEM, item, order_code_of, username};
use crate::registry::{FieldError, RegistryError};

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const FINDINGS: (&str, &str) = ("59776-5", "Procedure findings Narrative");

/// A reference interval for one sex (`any`, `male` or `female`).
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub sex: &'static str,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// One result item of an order.
#[derive(Clone, Debug, PartialEq)]
pub struct Analyte {
    pub order: &'static str,
    pub loinc: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub unit: &'static str,
    pub intervals: Vec<Interval>,
}

impl Analyte {
    /// The interval for a patient of `sex` (FHIR gender): that sex's, else `any`.
    pub fn interval(&self, sex: Option<&str>) -> Option<&Interval> {
        self.intervals.iter().find(|i| Some(i.sex) == sex).or_else(|| self.intervals.iter().find(|i| i.sex == "any"))
    }

    /// The interval as text (`3.5–5.3`, `≤ 5.2`, `≥ 1.0`).
    pub fn interval_text(&self, sex: Option<&str>) -> String {
        match self.interval(sex).map(|i| (i.low, i.high)) {
            Some((Some(l), Some(h))) => format!("{l}–{h}"),
            Some((None, Some(h))) => format!("≤ {h}"),
            Some((Some(l), None)) => format!("≥ {l}"),
            _ => String::new(),
        }
    }
}

static ANALYTES: LazyLock<Vec<Analyte>> = LazyLock::new(|| {
    let mut out: Vec<Analyte> = Vec::new();
    for c in include_str!("../data/analytes.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.len() >= 6)
    {
        let interval = Interval {
            sex: c[5],
            low: c.get(6).and_then(|v| v.trim().parse().ok()),
            high: c.get(7).and_then(|v| v.trim().parse().ok()),
        };
        match out.iter_mut().find(|a| a.order == c[0] && a.loinc == c[1]) {
            Some(a) => a.intervals.push(interval),
            None => out.push(Analyte {
                order: c[0],
                loinc: c[1],
                zh: c[2],
                en: c[3],
                unit: c[4],
                intervals: vec![interval],
            }),
        }
    }
    out
});

/// The result items an order reports (empty: a narrative report, as for imaging).
pub fn analytes_of(order: &str) -> Vec<&'static Analyte> {
    ANALYTES.iter().filter(|a| a.order == order).collect()
}

/// A result item by LOINC code.
pub fn analyte(loinc: &str) -> Option<&'static Analyte> {
    ANALYTES.iter().find(|a| a.loinc == loinc)
}

/// The abnormal flag of a numeric result: `LL` / `HH` at or beyond the critical
/// limits, `L` / `H` outside the reference interval, else `N`.
pub fn flag(loinc: &str, value: f64, sex: Option<&str>) -> &'static str {
    if let Some(limit) = crate::critical::limit(loinc) {
        if limit.high.is_some_and(|h| value >= h) {
            return "HH";
        }
        if limit.low.is_some_and(|l| value <= l) {
            return "LL";
        }
    }
    match analyte(loinc).and_then(|a| a.interval(sex)) {
        Some(i) if i.high.is_some_and(|h| value > h) => "H",
        Some(i) if i.low.is_some_and(|l| value < l) => "L",
        _ => "N",
    }
}

/// An open request waiting for its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub placer: String,
    pub order: String,
    pub patient: String,
    pub priority: String,
    pub authored: String,
}

fn pending_of(id: String, s: &Value, order: String) -> Pending {
    Pending {
        id,
        placer: s["identifier"]
            .as_array()
            .and_then(|ids| ids.iter().find(|i| i["system"] == PLACER_SYSTEM))
            .and_then(|i| i["value"].as_str())
            .unwrap_or_default()
            .to_string(),
        order,
        patient: s["subject"]["reference"].as_str().unwrap_or_default().trim_start_matches("Patient/").into(),
        priority: s["priority"].as_str().unwrap_or("routine").to_string(),
        authored: when(&s["authoredOn"]),
    }
}

/// What the laboratory or radiology enters for a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResultDraft {
    /// (LOINC code, the value as typed).
    pub values: Vec<(String, String)>,
    pub findings: String,
    pub conclusion: String,
}

/// A point of a trend.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// `YYYY-MM-DD HH:MM`.
    pub when: String,
    pub value: f64,
    pub unit: String,
    pub flag: String,
}

/// A test's newest result, as the workspace lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Latest {
    pub loinc: String,
    /// The test's names; `name` is for the page to fill in its language.
    pub names: crate::names::Names,
    pub name: String,
    pub value: String,
    pub unit: String,
    pub flag: String,
    pub when: String,
    pub campus: String,
}

/// A typed result value: a non-negative number (a full-width comma taken as the point).
pub fn parse_value(text: &str) -> Option<f64> {
    let v: f64 = text.trim().replace('，', ".").parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

fn quantity(v: f64, unit: &str) -> Value {
    json!({"value": v, "unit": unit, "system": UCUM, "code": unit})
}

/// An Observation's value as text: the number, or the text result.
pub fn value_text(o: &Value) -> String {
    o["valueQuantity"]["value"]
        .as_f64()
        .map(|v| v.to_string())
        .or_else(|| o["valueString"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn flag_of(o: &Value) -> String {
    o["interpretation"][0]["coding"][0]["code"].as_str().unwrap_or_default().to_string()
}

/// A laboratory report as it prints: title, date and one line per result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportView {
    pub id: String,
    /// The Patient id.
    pub patient: String,
    pub title: String,
    /// `YYYY-MM-DD` (effective, else issued).
    pub date: String,
    pub lines: Vec<ReportLine>,
    /// The department that asked for it (the requesting visit's), when known.
    pub department: crate::names::Names,
    /// The reporter's conclusion (narrative reports), empty without one.
    pub conclusion: String,
}

/// One result of a printed report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLine {
    /// The test's name: the catalogue's Chinese and English names of a known LOINC
    /// code, else the result's own title in both.
    pub names: crate::names::Names,
    /// The LOINC code (empty when the result has none): its trend.
    pub loinc: String,
    pub value: String,
    pub unit: String,
    /// `low–high`, empty without a reference range.
    pub range: String,
    /// The interpretation code (H, L, HH, LL, A, N) or empty.
    pub flag: String,
}

fn code_title(v: &Value) -> String {
    v["code"]["coding"][0]["display"].as_str().or_else(|| v["code"]["text"].as_str()).unwrap_or_default().to_string()
}

fn report_date(r: &Value) -> String {
    r["effectiveDateTime"]
        .as_str()
        .or_else(|| r["issued"].as_str())
        .unwrap_or_default()
        .get(..10)
        .unwrap_or_default()
        .to_string()
}

/// Whether `caller` reports results (laboratory, radiology): staff who write reports
/// and complete the requests they answer.
pub fn may_report(caller: &Caller) -> bool {
    let a = caller.access();
    a.patient().is_none() && a.allows("DiagnosticReport", Perm::Create) && a.allows("ServiceRequest", Perm::Update)
}

#[derive(Clone, Debug)]
pub struct Results {
    fhir: FhirService,
}

impl Results {
    pub fn new(fhir: FhirService) -> Results {
        Results { fhir }
    }

    /// Open requests the caller may report on (laboratory, imaging or both), stat
    /// first, then oldest first.
    /// One request as the worklist shows it (whatever its status).
    pub async fn request(&self, caller: &Caller, id: &str) -> Result<Pending, RegistryError> {
        let stored = self.fhir.reader(caller, rtype("ServiceRequest")?).await?.read(id).await?;
        let s: Value = serde_json::from_str(&stored.body).map_err(|e| invalid("request", "stored", e.to_string()))?;
        let order = order_code_of(&s).unwrap_or_default();
        Ok(pending_of(id.to_string(), &s, order))
    }

    pub async fn pending(&self, caller: &Caller, category: Option<&str>) -> Result<Vec<Pending>, RegistryError> {
        let rows = crate::common::search(
            &self.fhir,
            caller,
            "ServiceRequest",
            &[("status", "active".into()), ("_count", "200".into())],
        )
        .await?;
        let mut out: Vec<Pending> = rows
            .into_iter()
            .filter_map(|(id, s)| {
                let order = order_code_of(&s)?;
                let it = item(&order)?;
                if category.is_some_and(|c| c != it.category) {
                    return None;
                }
                Some(pending_of(id, &s, order))
            })
            .collect();
        let rank = |p: &str| match p {
            "stat" => 0,
            "asap" | "urgent" => 1,
            _ => 2,
        };
        out.sort_by(|a, b| rank(&a.priority).cmp(&rank(&b.priority)).then(a.authored.cmp(&b.authored)));
        Ok(out)
    }

    /// Checks a draft against the order's result items: every value typed is a
    /// non-negative number, at least one is given (a narrative report needs its
    /// conclusion). Returns (analyte, value) pairs.
    pub fn check(order: &str, draft: &ResultDraft) -> Result<Vec<(&'static Analyte, f64)>, RegistryError> {
        let items = analytes_of(order);
        let mut values = Vec::new();
        let mut errors = Vec::new();
        for (loinc, text) in &draft.values {
            if text.trim().is_empty() {
                continue;
            }
            let Some(a) = items.iter().find(|a| a.loinc == loinc) else {
                errors.push(FieldError {
                    field: "value",
                    code: "result-item",
                    detail: format!("{loinc} is not a result item of {order}"),
                });
                continue;
            };
            match parse_value(text) {
                Some(v) => values.push((*a, v)),
                None => errors.push(FieldError {
                    field: "value",
                    code: "number",
                    detail: format!("{} ({}): '{}' is not a non-negative number", a.en, a.loinc, text.trim()),
                }),
            }
        }
        if draft.conclusion.chars().count() > 4000 || draft.findings.chars().count() > 4000 {
            errors.push(FieldError {
                field: "conclusion",
                code: "too-long",
                detail: "at most 4,000 characters".into(),
            });
        }
        if errors.is_empty() && values.is_empty() && draft.conclusion.trim().is_empty() {
            let (field, code, detail) = if items.is_empty() {
                ("conclusion", "conclusion-required", "the report's conclusion is required")
            } else {
                ("value", "result-required", "enter at least one result")
            };
            errors.push(FieldError { field, code, detail: detail.into() });
        }
        if errors.is_empty() { Ok(values) } else { Err(RegistryError::Invalid(errors)) }
    }

    /// Enters the results of request `request_id` as `caller` (performer:
    /// `performer_name`); returns the DiagnosticReport's id.
    pub async fn enter(
        &self,
        caller: &Caller,
        request_id: &str,
        draft: &ResultDraft,
        performer_name: &str,
    ) -> Result<String, RegistryError> {
        let stored = self.fhir.reader(caller, rtype("ServiceRequest")?).await?.read(request_id).await?;
        let sr: Value = serde_json::from_str(&stored.body).map_err(|e| invalid("request", "stored", e.to_string()))?;
        if sr["status"] != "active" {
            return Err(invalid(
                "request",
                "not-active",
                "the request is no longer open (already reported or cancelled)",
            ));
        }
        let order = order_code_of(&sr).ok_or_else(|| invalid("request", "order-unknown", "not a catalogue request"))?;
        let it = item(&order).ok_or_else(|| invalid("request", "order-unknown", "not a catalogue request"))?;
        let values = Self::check(&order, draft)?;
        let patient =
            sr["subject"]["reference"].as_str().unwrap_or_default().trim_start_matches("Patient/").to_string();
        // The request's patient, read under the record-across-campuses rule.
        let sex = match crate::record::Record::new(self.fhir.clone()).open(caller, &patient).await {
            Ok((_, p)) => p["gender"].as_str().map(str::to_string),
            Err(_) => None,
        };
        let now = crate::scheduling::local_instant(self.fhir.now_ms());
        let placer = sr["identifier"]
            .as_array()
            .and_then(|ids| ids.iter().find(|i| i["system"] == PLACER_SYSTEM))
            .cloned()
            .unwrap_or(Value::Null);
        let mut based_on = json!({"reference": format!("ServiceRequest/{request_id}")});
        if placer.is_object() {
            based_on["identifier"] = json!({"system": PLACER_SYSTEM, "value": placer["value"]});
        }
        let mut performer = json!({"display": performer_name});
        if let Some(user) = username(caller) {
            performer["identifier"] = json!({"system": USER_SYSTEM, "value": user});
        }
        let (category, cat_display) =
            if it.category == "imaging" { ("RAD", "Radiology") } else { ("LAB", "Laboratory") };
        let obs_category = if it.category == "imaging" { "imaging" } else { "laboratory" };
        let mut entries = Vec::new();
        let mut refs = Vec::new();
        let mut observation = |code: Value, value: (&str, Value), extra: Value| {
            let url = format!("urn:uuid:00000000-0000-4000-8000-{:012x}", entries.len() + 2);
            let mut o = json!({"resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": obs_category}]}],
                "code": code, "subject": sr["subject"], "basedOn": [based_on.clone()],
                "effectiveDateTime": now, "issued": now, "performer": [performer.clone()]});
            o[value.0] = value.1;
            if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
                o.extend(extra.clone());
            }
            if sr["encounter"].is_object() {
                o["encounter"] = sr["encounter"].clone();
            }
            refs.push(json!({"reference": url}));
            entries.push(json!({"fullUrl": url, "resource": o, "request": {"method": "POST", "url": "Observation"}}));
        };
        for (a, v) in &values {
            let f = flag(a.loinc, *v, sex.as_deref());
            let mut extra = json!({"interpretation": [{"coding": [{"system": INTERPRETATION, "code": f}]}]});
            if let Some(i) = a.interval(sex.as_deref()) {
                let mut range = json!({"text": a.interval_text(sex.as_deref())});
                if let Some(l) = i.low {
                    range["low"] = quantity(l, a.unit);
                }
                if let Some(h) = i.high {
                    range["high"] = quantity(h, a.unit);
                }
                extra["referenceRange"] = json!([range]);
            }
            observation(
                json!({"coding": [{"system": LOINC, "code": a.loinc, "display": a.en}], "text": a.zh}),
                ("valueQuantity", quantity(*v, a.unit)),
                extra,
            );
        }
        if !draft.findings.trim().is_empty() {
            observation(
                json!({"coding": [{"system": LOINC, "code": FINDINGS.0, "display": FINDINGS.1}]}),
                ("valueString", json!(draft.findings.trim())),
                json!({}),
            );
        }
        let mut report = json!({"resourceType": "DiagnosticReport", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": category, "display": cat_display}]}],
            "code": {"coding": [{"system": LOINC, "code": it.loinc, "display": it.loinc_display}], "text": it.zh},
            "subject": sr["subject"], "basedOn": [based_on.clone()],
            "effectiveDateTime": now, "issued": now, "performer": [performer.clone()], "result": refs});
        if sr["encounter"].is_object() {
            report["encounter"] = sr["encounter"].clone();
        }
        if !draft.conclusion.trim().is_empty() {
            report["conclusion"] = json!(draft.conclusion.trim());
        }
        entries.insert(
            0,
            json!({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": report,
                   "request": {"method": "POST", "url": "DiagnosticReport"}}),
        );
        let mut done = editable(&stored).map_err(|e| invalid("request", "stored", e.to_string()))?;
        done["status"] = json!("completed");
        entries.push(put(done, &stored));
        let response = self
            .fhir
            .process_bundle(caller, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        response["entry"][0]["response"]["location"]
            .as_str()
            .and_then(|l| l.split('/').nth(1))
            .map(str::to_string)
            .ok_or_else(|| invalid("request", "report", "the report was not created"))
    }

    /// The patient's numeric results of one test, oldest first (at most `limit`,
    /// the newest kept).
    pub async fn series(&self, caller: &Caller, patient: &str, loinc: &str, limit: usize) -> Vec<Point> {
        let rows = crate::common::search(
            &self.fhir,
            caller,
            "Observation",
            &[
                ("patient", format!("Patient/{patient}")),
                ("code", format!("{LOINC}|{loinc}")),
                ("_sort", "-_lastUpdated".into()),
                ("_count", limit.to_string()),
            ],
        )
        .await
        .unwrap_or_default();
        let mut points: Vec<Point> = rows
            .iter()
            .filter_map(|(_, o)| {
                let q = &o["valueQuantity"];
                Some(Point {
                    when: when(o.get("effectiveDateTime").unwrap_or(&o["issued"])),
                    value: q["value"].as_f64()?,
                    unit: q["unit"].as_str().or_else(|| q["code"].as_str()).unwrap_or_default().to_string(),
                    flag: flag_of(o),
                })
            })
            .collect();
        points.sort_by(|a, b| a.when.cmp(&b.when));
        points
    }

    /// The newest result of each test the patient has, newest first.
    /// A DiagnosticReport with its results, as far as the caller may read them.
    pub async fn report(&self, caller: &Caller, id: &str) -> Result<ReportView, RegistryError> {
        let stored = self.fhir.reader(caller, rtype("DiagnosticReport")?).await?.read(id).await?;
        let r: Value = serde_json::from_str(&stored.body).map_err(|e| invalid("report", "stored", e.to_string()))?;
        // Results the caller may not read are left out (the report itself was readable).
        let observations = self.fhir.reader(caller, rtype("Observation")?).await.ok();
        let mut lines = Vec::new();
        for reference in r["result"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(observations) = &observations else { break };
            let Some(obs) = reference["reference"].as_str().and_then(|x| x.strip_prefix("Observation/")) else {
                continue;
            };
            let Ok(stored) = observations.read(obs).await else { continue };
            let Ok(o) = serde_json::from_str::<Value>(&stored.body) else { continue };
            let range = &o["referenceRange"][0];
            let bound = |b: &Value| b["value"].as_f64().map(|v| v.to_string()).unwrap_or_default();
            let loinc = o["code"]["coding"][0]["code"].as_str().unwrap_or_default();
            let names = match analyte(loinc) {
                Some(a) => crate::names::Names { zh: a.zh.to_string(), en: a.en.to_string() },
                None => crate::names::Names { zh: code_title(&o), en: code_title(&o) },
            };
            lines.push(ReportLine {
                names,
                loinc: loinc.to_string(),
                value: value_text(&o),
                unit: o["valueQuantity"]["unit"].as_str().unwrap_or_default().to_string(),
                range: if range.is_object() {
                    format!("{}–{}", bound(&range["low"]), bound(&range["high"]))
                } else {
                    String::new()
                },
                flag: o["interpretation"][0]["coding"][0]["code"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(ReportView {
            id: id.to_string(),
            patient: r["subject"]["reference"].as_str().unwrap_or_default().trim_start_matches("Patient/").to_string(),
            title: code_title(&r),
            date: report_date(&r),
            lines,
            department: self.requesting_department(caller, &r).await.unwrap_or_default(),
            conclusion: r["conclusion"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// The report made for a request, with its results, when there is one the caller
    /// may read.
    pub async fn report_for(&self, caller: &Caller, request: &str) -> Result<Option<ReportView>, RegistryError> {
        let found = crate::common::search(
            &self.fhir,
            caller,
            "DiagnosticReport",
            &[("based-on", format!("ServiceRequest/{request}")), ("_count", "1".into())],
        )
        .await?;
        match found.into_iter().next() {
            Some((id, _)) => Ok(Some(self.report(caller, &id).await?)),
            None => Ok(None),
        }
    }

    /// The department of the visit a report was asked for in: the report's encounter,
    /// else its request's; that visit's service provider.
    async fn requesting_department(&self, caller: &Caller, r: &Value) -> Option<crate::names::Names> {
        let read = |t: &'static str, id: String| async move {
            let stored = self.fhir.reader(caller, rtype(t).ok()?).await.ok()?.read(&id).await.ok()?;
            serde_json::from_str::<Value>(&stored.body).ok()
        };
        let reference = |v: &Value, prefix: &str| v["reference"].as_str()?.strip_prefix(prefix).map(str::to_string);
        let encounter = match reference(&r["encounter"], "Encounter/") {
            Some(e) => e,
            None => {
                let request = read("ServiceRequest", reference(&r["basedOn"][0], "ServiceRequest/")?).await?;
                reference(&request["encounter"], "Encounter/")?
            }
        };
        let e = read("Encounter", encounter).await?;
        let org = read("Organization", reference(&e["serviceProvider"], "Organization/")?).await?;
        Some(crate::names::of(&org))
    }

    /// A patient's reports the caller may read, newest first (without their results).
    pub async fn reports_of(&self, caller: &Caller, patient: &str) -> Result<Vec<ReportView>, RegistryError> {
        let found = crate::common::search(
            &self.fhir,
            caller,
            "DiagnosticReport",
            &[("patient", format!("Patient/{patient}")), ("_count", "20".into())],
        )
        .await?;
        let mut out: Vec<ReportView> = found
            .into_iter()
            .map(|(id, r)| ReportView {
                id,
                patient: patient.to_string(),
                title: code_title(&r),
                date: report_date(&r),
                lines: Vec::new(),
                department: Default::default(),
                conclusion: r["conclusion"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        out.sort_by(|a, b| b.date.cmp(&a.date));
        Ok(out)
    }

    pub async fn latest(&self, caller: &Caller, patient: &str) -> Vec<Latest> {
        if !caller.access().allows("Observation", Perm::Search) {
            return Vec::new();
        }
        let params: Vec<(String, String)> = vec![
            ("patient".into(), format!("Patient/{patient}")),
            ("category".into(), "laboratory".into()),
            ("_sort".into(), "-_lastUpdated".into()),
            ("_count".into(), "100".into()),
        ];
        let Ok(t) = rtype("Observation") else { return Vec::new() };
        let Ok(req) = lianyi_fhir::search::parse_search(t, &params) else { return Vec::new() };
        let Ok(permit) = self.fhir.permit(caller, t).await else { return Vec::new() };
        let Ok(page) = self.fhir.search(&permit, &req).await else { return Vec::new() };
        let mut out: Vec<Latest> = Vec::new();
        for r in &page.resources {
            let Ok(o) = serde_json::from_str::<Value>(&r.body) else { continue };
            let Some(coding) = o["code"]["coding"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["system"] == LOINC))
                .and_then(|c| c["code"].as_str())
            else {
                continue;
            };
            let at = when(o.get("effectiveDateTime").unwrap_or(&o["issued"]));
            if let Some(seen) = out.iter_mut().find(|l| l.loinc == coding) {
                if seen.when < at {
                    seen.when.clone_from(&at);
                } else {
                    continue;
                }
            }
            let q = &o["valueQuantity"];
            let names = match analyte(coding) {
                Some(a) => crate::names::Names { zh: a.zh.to_string(), en: a.en.to_string() },
                None => {
                    let text: String = o["code"]["coding"][0]["display"]
                        .as_str()
                        .or_else(|| o["code"]["text"].as_str())
                        .unwrap_or(coding)
                        .into();
                    crate::names::Names { zh: text.clone(), en: text }
                }
            };
            let latest = Latest {
                loinc: coding.to_string(),
                name: names.zh.clone(),
                names,
                value: value_text(&o),
                unit: q["unit"].as_str().unwrap_or_default().to_string(),
                flag: flag_of(&o),
                when: at,
                campus: r.campus.clone().unwrap_or_default(),
            };
            match out.iter_mut().find(|l| l.loinc == coding) {
                Some(seen) => *seen = latest,
                None => out.push(latest),
            }
        }
        out.sort_by(|a, b| b.when.cmp(&a.when));
        out
    }
}

/// Minutes since 1970 of `YYYY-MM-DD HH:MM` (days from the civil calendar).
fn minutes(when: &str) -> Option<i64> {
    let y: i64 = when.get(..4)?.parse().ok()?;
    let m: i64 = when.get(5..7)?.parse().ok()?;
    let d: i64 = when.get(8..10)?.parse().ok()?;
    let (hh, mm): (i64, i64) = (
        when.get(11..13).and_then(|h| h.parse().ok()).unwrap_or(0),
        when.get(14..16).and_then(|x| x.parse().ok()).unwrap_or(0),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 1440 + hh * 60 + mm)
}

fn number(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A trend chart of `points` as an SVG document: values over time (time to scale),
/// the reference interval as a band, critical limits as dashed lines, each point
/// coloured by its flag and titled with its date and value.
pub fn trend_svg(title: &str, points: &[Point], interval: Option<&Interval>, loinc: &str) -> String {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 36.0;
    let critical = crate::critical::limit(loinc);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"trend\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    let xs: Vec<i64> = points.iter().filter_map(|p| minutes(&p.when)).collect();
    if points.is_empty() || xs.len() != points.len() {
        svg.push_str("</svg>");
        return svg;
    }
    let mut lo = points.iter().map(|p| p.value).fold(f64::INFINITY, f64::min);
    let mut hi = points.iter().map(|p| p.value).fold(f64::NEG_INFINITY, f64::max);
    for b in [interval.and_then(|i| i.low), interval.and_then(|i| i.high)].into_iter().flatten() {
        lo = lo.min(b);
        hi = hi.max(b);
    }
    let pad = if hi > lo { (hi - lo) * 0.1 } else { lo.abs().max(1.0) * 0.1 };
    let (lo, hi) = ((lo - pad).max(0.0), hi + pad);
    let (x0, x1) = (xs.iter().copied().min().unwrap_or(0), xs.iter().copied().max().unwrap_or(0));
    let x = |m: i64| {
        if x1 == x0 {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (m - x0) as f64 / (x1 - x0) as f64 * (W - LEFT - RIGHT)
        }
    };
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    if let Some(i) = interval {
        let (top, bottom) = (y(i.high.unwrap_or(hi)), y(i.low.unwrap_or(lo)));
        let _ = write!(
            svg,
            "<rect class=\"ref-band\" x=\"{LEFT}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#e3f2e6\"/>",
            W - LEFT - RIGHT,
            (bottom - top).max(0.0)
        );
    }
    for limit in [critical.and_then(|c| c.low), critical.and_then(|c| c.high)].into_iter().flatten() {
        if limit >= lo && limit <= hi {
            let _ = write!(
                svg,
                "<line class=\"critical-limit\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{v:.1}\" y2=\"{v:.1}\" stroke=\"#c62828\" stroke-dasharray=\"4 3\"/>",
                W - RIGHT,
                v = y(limit)
            );
        }
    }
    // Axes and four value ticks.
    let _ = write!(
        svg,
        "<g class=\"axis\" stroke=\"#888\"><line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{b}\"/><line x1=\"{LEFT}\" x2=\"{r}\" y1=\"{b}\" y2=\"{b}\"/></g>",
        b = H - BOTTOM,
        r = W - RIGHT
    );
    for k in 0..4 {
        let v = lo + (hi - lo) * f64::from(k) / 3.0;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            LEFT - 6.0,
            y(v) + 4.0,
            number(v)
        );
    }
    let mut labelled: Vec<usize> = vec![0, points.len() - 1];
    if points.len() > 2 {
        labelled.insert(1, points.len() / 2);
    }
    labelled.dedup();
    for i in labelled {
        let _ = write!(
            svg,
            "<text class=\"x-label\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            x(xs[i]).clamp(LEFT + 30.0, W - RIGHT - 30.0),
            H - BOTTOM + 16.0,
            escape(points[i].when.get(..10).unwrap_or_default())
        );
    }
    let line: Vec<String> = points.iter().zip(&xs).map(|(p, m)| format!("{:.1},{:.1}", x(*m), y(p.value))).collect();
    let _ =
        write!(svg, "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\"/>", line.join(" "));
    for (p, m) in points.iter().zip(&xs) {
        let colour = match p.flag.as_str() {
            "HH" | "LL" => "#c62828",
            "H" | "L" | "A" => "#ef6c00",
            _ => "#1f5fa8",
        };
        let _ = write!(
            svg,
            "<circle class=\"point flag-{f}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{colour}\"><title>{} {} {}{}</title></circle>",
            x(*m),
            y(p.value),
            escape(&p.when),
            number(p.value),
            escape(&p.unit),
            if p.flag.is_empty() || p.flag == "N" { String::new() } else { format!(" ({})", p.flag) },
            f = if p.flag.is_empty() { "N" } else { &p.flag }
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_items_load_with_their_intervals() {
        let bmp = analytes_of("LAB-BMP");
        assert_eq!(bmp.len(), 8);
        let cr = bmp.iter().find(|a| a.loinc == "14682-9").unwrap();
        assert_eq!(cr.interval(Some("female")).unwrap().high, Some(73.0));
        assert_eq!(cr.interval(Some("male")).unwrap().low, Some(57.0));
        assert_eq!(analyte("2823-3").unwrap().interval(None).unwrap().high, Some(5.3));
        assert_eq!(analyte("14647-2").unwrap().interval_text(None), "≤ 5.2");
        assert!(analytes_of("IMG-CXR").is_empty());
    }

    #[test]
    fn flags_follow_interval_and_critical_limits() {
        assert_eq!(flag("2823-3", 4.1, None), "N");
        assert_eq!(flag("2823-3", 5.6, None), "H");
        assert_eq!(flag("2823-3", 3.2, None), "L");
        assert_eq!(flag("2823-3", 6.0, None), "HH");
        assert_eq!(flag("2823-3", 2.5, None), "LL");
        // Sex-specific intervals: 140 g/L haemoglobin is low for no one; 120 only for men.
        assert_eq!(flag("718-7", 120.0, Some("male")), "L");
        assert_eq!(flag("718-7", 120.0, Some("female")), "N");
        assert_eq!(flag("718-7", 55.0, Some("female")), "LL");
        // An item without a table entry is not flagged.
        assert_eq!(flag("0000-0", 1.0, None), "N");
    }

    #[test]
    fn a_draft_names_the_field_and_the_rule() {
        let bad = ResultDraft { values: vec![("2823-3".into(), "6,8x".into())], ..ResultDraft::default() };
        let Err(RegistryError::Invalid(e)) = Results::check("LAB-K", &bad) else { panic!("accepted") };
        assert_eq!((e[0].field, e[0].code), ("value", "number"));
        assert!(e[0].detail.contains("Potassium"));
        let none = ResultDraft::default();
        let Err(RegistryError::Invalid(e)) = Results::check("LAB-K", &none) else { panic!("accepted") };
        assert_eq!(e[0].code, "result-required");
        let Err(RegistryError::Invalid(e)) = Results::check("IMG-CXR", &none) else { panic!("accepted") };
        assert_eq!((e[0].field, e[0].code), ("conclusion", "conclusion-required"));
        let foreign = ResultDraft { values: vec![("718-7".into(), "120".into())], ..ResultDraft::default() };
        assert!(Results::check("LAB-K", &foreign).is_err());
        let good = ResultDraft { values: vec![("2823-3".into(), " 6.8 ".into())], ..ResultDraft::default() };
        let ok = Results::check("LAB-K", &good).unwrap();
        assert_eq!((ok[0].0.loinc, ok[0].1), ("2823-3", 6.8));
    }

    #[test]
    fn the_trend_chart_scales_time_and_marks_flags() {
        let p = |when: &str, value: f64, flag: &str| Point {
            when: when.into(),
            value,
            unit: "mmol/L".into(),
            flag: flag.into(),
        };
        let points =
            [p("2026-11-01 08:00", 4.2, "N"), p("2026-11-02 08:00", 5.6, "H"), p("2026-11-11 08:00", 6.8, "HH")];
        let svg = trend_svg("血钾 Potassium", &points, analyte("2823-3").unwrap().interval(None), "2823-3");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("flag-HH") && svg.contains("flag-H\"") && svg.contains("ref-band"));
        assert!(svg.contains("critical-limit"), "6.0 mmol/L lies inside the plotted range");
        // Time to scale: the second point sits a tenth of the way along, not half.
        let cx: Vec<f64> = svg
            .split("<circle")
            .skip(1)
            .map(|c| c.split("cx=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap())
            .collect();
        assert!((cx[1] - cx[0]) * 5.0 < cx[2] - cx[1], "{cx:?}");
        assert_eq!(minutes("1970-01-02 00:01"), Some(1441));
        assert!(trend_svg("x", &[], None, "2823-3").ends_with("</svg>"));
    }
}
