//! The patient's record across campuses, and the visit's clinical notes.
//!
//! One record per patient for the whole group: staff working at a campus where the
//! patient holds an MRN (a patient of that campus) read the patient's encounters,
//! diagnoses, results, medications and notes made at every campus, as far as their
//! role's interactions allow. Each read is still checked and audited as theirs; what
//! widens is only the campus limit, and only for that patient. A campus where the
//! patient holds no MRN sees nothing until the patient is registered there (or a
//! clinician breaks the glass, with a reason).
//!
//! Notes are Compositions of the encounter: a structured SOAP note (four sections
//! coded with LOINC) or a free-text progress note.

use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, Perm};
use lianyi_services::FhirService;
use lianyi_store::StoredResource;
use serde_json::{Value, json};

use crate::common::{invalid, minute as when, rtype};
use crate::registry::{RegistryError, mrns_of, record_open};

const LOINC: &str = "http://loinc.org";
/// The SOAP sections: (key, LOINC code, LOINC display).
pub const SOAP: [(&str, &str, &str); 4] = [
    ("subjective", "61150-9", "Subjective Narrative"),
    ("objective", "61149-1", "Objective Narrative"),
    ("assessment", "51848-0", "Evaluation note"),
    ("plan", "18776-5", "Plan of care note"),
];
const PROGRESS_NOTE: (&str, &str) = ("11506-3", "Progress note");
const MAX_SECTION: usize = 4000;

/// A note as the doctor writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoteDraft {
    pub subjective: String,
    pub objective: String,
    pub assessment: String,
    pub plan: String,
    /// A free-text note (used when the four SOAP fields are empty).
    pub text: String,
}

impl NoteDraft {
    fn sections(&self) -> Vec<(&'static str, &str)> {
        let soap = [&self.subjective, &self.objective, &self.assessment, &self.plan];
        SOAP.iter().zip(soap).map(|((k, _, _), v)| (*k, v.trim())).filter(|(_, v)| !v.is_empty()).collect()
    }

    /// The rules a note keeps: something written, no section over 4,000 characters.
    pub fn check(&self) -> Result<(), RegistryError> {
        for (field, v) in [
            ("subjective", &self.subjective),
            ("objective", &self.objective),
            ("assessment", &self.assessment),
            ("plan", &self.plan),
            ("text", &self.text),
        ] {
            if v.chars().count() > MAX_SECTION {
                return Err(invalid(field, "too-long", format!("at most {MAX_SECTION} characters")));
            }
        }
        if self.sections().is_empty() && self.text.trim().is_empty() {
            return Err(invalid("text", "note-empty", "write the SOAP sections or a free-text note"));
        }
        Ok(())
    }
}

/// A stored note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub id: String,
    /// `soap` or `free`.
    pub kind: &'static str,
    pub author: String,
    pub date: String,
    /// (section key: subjective … plan, or `text`; the text).
    pub sections: Vec<(String, String)>,
}

/// One entry of the patient's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Local date and time, `YYYY-MM-DD HH:MM` (sorts as text).
    pub when: String,
    /// `encounter`, `diagnosis`, `result`, `medication` or `note`.
    pub kind: &'static str,
    pub campus: String,
    pub text: String,
    /// The page showing it, when there is one.
    pub link: Option<String>,
    /// A result's worst abnormal flag (H, L, HH, LL, A) or empty.
    pub flag: String,
    /// A visit's class code (`AMB`, `IMP` …) and status code, for pages to name in
    /// their language; empty for other events. A visit's `text` is its type's text
    /// (empty when it has none).
    pub class: String,
    pub status: String,
}

/// XHTML narrative of plain text (escaped, line breaks kept).
pub fn narrative(text: &str) -> String {
    let escaped = text
        .trim()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace("\r\n", "\n")
        .replace('\n', "<br/>");
    format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{escaped}</div>")
}

/// The plain text of a narrative [`narrative`] wrote.
pub fn plain(div: &str) -> String {
    let inner = div.split_once('>').map_or(div, |(_, rest)| rest);
    let inner = inner.strip_suffix("</div>").unwrap_or(inner);
    inner.replace("<br/>", "\n").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// A CodeableConcept as text: its text, else its first coding's display, else code.
pub fn code_text(c: &Value) -> String {
    c["text"]
        .as_str()
        .or_else(|| c["coding"][0]["display"].as_str())
        .or_else(|| c["coding"][0]["code"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[derive(Clone, Debug)]
pub struct Record {
    fhir: FhirService,
}

impl Record {
    pub fn new(fhir: FhirService) -> Record {
        Record { fhir }
    }

    /// `caller`, able to read the whole record of `patient` across campuses when the
    /// patient holds an MRN at a campus the caller works at. Otherwise the caller as
    /// is (their own campus's part of the record, or what break-the-glass opened).
    pub async fn care_caller(&self, caller: &Caller, patient: &str) -> Result<Caller, RegistryError> {
        Ok(self.open(caller, patient).await?.0)
    }

    /// [`Record::care_caller`] and the Patient it read to decide (one read).
    pub async fn open(&self, caller: &Caller, patient: &str) -> Result<(Caller, Value), RegistryError> {
        let parse = |body: &str| serde_json::from_str(body).map_err(|e| invalid("patient", "stored", e.to_string()));
        if caller.access().patient().is_some() || caller.access().is_open(patient) {
            let stored = self.fhir.reader(caller, rtype("Patient")?).await?.read(patient).await?;
            return Ok((caller.clone(), parse(&stored.body)?));
        }
        let wide = caller.group_wide();
        let stored = self.fhir.reader(&wide, rtype("Patient")?).await?.read(patient).await?;
        let p: Value = parse(&stored.body)?;
        let care = record_open(caller, patient, stored.campus.as_deref(), &mrns_of(&p)).ok_or_else(|| {
            RegistryError::Forbidden(format!(
                "Patient/{patient} holds no MRN at your campuses: register the patient here, or break the glass"
            ))
        })?;
        Ok((care, p))
    }

    async fn rows(&self, caller: &Caller, t: &str, params: &[(&str, String)]) -> Vec<(StoredResource, Value)> {
        if !caller.access().allows(t, Perm::Search) {
            return Vec::new();
        }
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let Ok(t) = rtype(t) else { return Vec::new() };
        let Ok(req) = parse_search(t, &params) else { return Vec::new() };
        let Ok(permit) = self.fhir.permit(caller, t).await else { return Vec::new() };
        match self.fhir.search(&permit, &req).await {
            Ok(page) => page
                .resources
                .into_iter()
                .filter_map(|r| {
                    let v = serde_json::from_str(&r.body).ok()?;
                    Some((r, v))
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The patient's record, newest first: encounters, diagnoses, lab and imaging
    /// reports, prescriptions and notes, from every campus `caller` may see (call
    /// with [`Record::care_caller`]'s caller for the whole record).
    pub async fn timeline(&self, caller: &Caller, patient: &str, limit: usize) -> Vec<Event> {
        let subject = ("patient", format!("Patient/{patient}"));
        let count = ("_count", limit.to_string());
        let newest = ("_sort", "-_lastUpdated".to_string());
        let params = [subject, count, newest];
        let mut out = Vec::new();
        let campus = |r: &StoredResource| r.campus.clone().unwrap_or_default();
        for (r, e) in self.rows(caller, "Encounter", &params).await {
            let kind = e["type"][0]["text"].as_str().or_else(|| e["serviceType"]["text"].as_str()).unwrap_or_default();
            out.push(Event {
                when: when(&e["period"]["start"]),
                kind: "encounter",
                campus: campus(&r),
                text: kind.to_string(),
                link: Some(format!("/encounters/{}", r.id)),
                flag: String::new(),
                class: e["class"]["code"].as_str().unwrap_or_default().to_string(),
                status: e["status"].as_str().unwrap_or_default().to_string(),
            });
        }
        for (r, c) in self.rows(caller, "Condition", &params).await {
            let code = c["code"]["coding"][0]["code"].as_str().unwrap_or_default();
            out.push(Event {
                when: when(c.get("recordedDate").unwrap_or(&c["onsetDateTime"])),
                kind: "diagnosis",
                campus: campus(&r),
                text: format!("{code} {}", code_text(&c["code"])),
                link: c["encounter"]["reference"]
                    .as_str()
                    .map(|e| format!("/{}", e.replace("Encounter/", "encounters/"))),
                flag: String::new(),
                class: String::new(),
                status: String::new(),
            });
        }
        for (r, d) in self.rows(caller, "DiagnosticReport", &params).await {
            out.push(Event {
                when: when(d.get("effectiveDateTime").unwrap_or(&d["issued"])),
                kind: "result",
                campus: campus(&r),
                text: {
                    let conclusion = d["conclusion"].as_str().unwrap_or_default();
                    if conclusion.is_empty() {
                        code_text(&d["code"])
                    } else {
                        format!("{} — {conclusion}", code_text(&d["code"]))
                    }
                },
                link: Some(format!("/reports/lab/{}", r.id)),
                flag: String::new(),
                class: String::new(),
                status: String::new(),
            });
        }
        for (r, m) in self.rows(caller, "MedicationRequest", &params).await {
            out.push(Event {
                when: when(&m["authoredOn"]),
                kind: "medication",
                campus: campus(&r),
                text: format!(
                    "{} — {}",
                    code_text(&m["medicationCodeableConcept"]),
                    m["dosageInstruction"][0]["text"].as_str().unwrap_or_default()
                ),
                link: m["encounter"]["reference"]
                    .as_str()
                    .map(|e| format!("/{}", e.replace("Encounter/", "encounters/"))),
                flag: String::new(),
                class: String::new(),
                status: String::new(),
            });
        }
        for (r, n) in self.rows(caller, "Composition", &params).await {
            let first = n["section"][0]["text"]["div"].as_str().map(plain).unwrap_or_default();
            let first: String = first.chars().take(80).collect();
            out.push(Event {
                when: when(&n["date"]),
                kind: "note",
                campus: campus(&r),
                text: format!("{} — {first}", n["title"].as_str().unwrap_or_default()),
                link: n["encounter"]["reference"]
                    .as_str()
                    .map(|e| format!("/{}", e.replace("Encounter/", "encounters/"))),
                flag: String::new(),
                class: String::new(),
                status: String::new(),
            });
        }
        out.sort_by(|a, b| b.when.cmp(&a.when));
        out.truncate(limit);
        out
    }

    /// Writes a note on the encounter as `caller` (author: `author_name`).
    pub async fn add_note(
        &self,
        caller: &Caller,
        encounter: &str,
        draft: &NoteDraft,
        author_name: &str,
    ) -> Result<String, RegistryError> {
        draft.check()?;
        let e = self.fhir.reader(caller, rtype("Encounter")?).await?.read(encounter).await?;
        let e: Value = serde_json::from_str(&e.body).map_err(|x| invalid("encounter", "stored", x.to_string()))?;
        let soap = draft.sections();
        let (title, sections): (&str, Vec<Value>) = if soap.is_empty() {
            (
                "Progress note",
                vec![json!({"title": "Note", "text": {"status": "generated", "div": narrative(&draft.text)}})],
            )
        } else {
            (
                "SOAP note",
                soap.iter()
                    .map(|(key, text)| {
                        let (_, code, display) = SOAP.iter().find(|(k, _, _)| k == key).copied().unwrap_or(SOAP[0]);
                        json!({"title": display, "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                               "text": {"status": "generated", "div": narrative(text)}})
                    })
                    .collect(),
            )
        };
        let mut author = json!({"display": author_name});
        if let Some(user) = crate::orders::username(caller) {
            author["identifier"] = json!({"system": crate::orders::USER_SYSTEM, "value": user});
        }
        let note = json!({"resourceType": "Composition", "status": "final",
            "type": {"coding": [{"system": LOINC, "code": PROGRESS_NOTE.0, "display": PROGRESS_NOTE.1}]},
            "subject": e["subject"],
            "encounter": {"reference": format!("Encounter/{encounter}")},
            "date": crate::scheduling::local_instant(self.fhir.now_ms()),
            "author": [author],
            "title": title,
            "section": sections});
        let w = self.fhir.create(&self.fhir.permit(caller, rtype("Composition")?).await?, note).await?;
        Ok(w.id)
    }

    /// The encounter's notes, oldest first.
    pub async fn notes(&self, caller: &Caller, encounter: &str) -> Vec<Note> {
        self.rows(
            caller,
            "Composition",
            &[("encounter", format!("Encounter/{encounter}")), ("_sort", "_lastUpdated".into())],
        )
        .await
        .into_iter()
        .map(|(r, n)| Note {
            id: r.id,
            kind: if n["title"] == "SOAP note" { "soap" } else { "free" },
            author: n["author"][0]["display"].as_str().unwrap_or_default().to_string(),
            date: when(&n["date"]),
            sections: n["section"]
                .as_array()
                .map(|ss| {
                    ss.iter()
                        .map(|s| {
                            let code = s["code"]["coding"][0]["code"].as_str().unwrap_or_default();
                            let key = SOAP.iter().find(|(_, c, _)| *c == code).map_or("text", |(k, _, _)| k);
                            (key.to_string(), s["text"]["div"].as_str().map(plain).unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrative_round_trips_plain_text() {
        let text = "头痛 3 天 <2 次/日> & \"恶心\"\n无发热";
        let div = narrative(text);
        assert!(div.starts_with("<div xmlns=\"http://www.w3.org/1999/xhtml\">"));
        assert!(!div.contains("<2"));
        assert_eq!(plain(&div), text);
    }

    #[test]
    fn a_note_needs_content_and_a_size_limit() {
        let empty = NoteDraft::default();
        assert!(
            matches!(empty.check(), Err(RegistryError::Invalid(e)) if e[0].field == "text" && e[0].code == "note-empty")
        );
        let soap = NoteDraft { assessment: "高血压 2 级".into(), ..NoteDraft::default() };
        assert!(soap.check().is_ok());
        assert_eq!(soap.sections(), vec![("assessment", "高血压 2 级")]);
        let long = NoteDraft { plan: "x".repeat(4001), ..NoteDraft::default() };
        assert!(matches!(long.check(), Err(RegistryError::Invalid(e)) if e[0].field == "plan"));
    }
}
