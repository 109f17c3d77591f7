//! Questions to the care team (FHIR Communication). A patient asks about one of their
//! visits; the question goes to the visit's doctor (else its department) and lands in
//! the staff inbox; the doctor (or a colleague of the department) answers once. Each
//! question keeps when it was asked and answered, so the response time is known. A
//! photo may go with it (JPEG or PNG, at most [`MAX_ATTACHMENT`] bytes, its type read
//! from its bytes), kept as a DocumentReference in the patient's record.

use base64::Engine;
use lianyi_clinical::names::{Names, of_practitioner};
use lianyi_clinical::scheduling::{Scheduling, local_instant};
use lianyi_security::{Caller, CampusId, Perm};
use lianyi_services::FhirService;
use lianyi_services::fhir::organization_names;
use serde_json::{Value, json};

use crate::common::{patient_of, read, ref_id, search};
use crate::{FieldError, PortalError, invalid};

/// The longest question or answer, in characters.
pub const MAX_CHARS: usize = 1_000;
/// The largest photo, in bytes.
pub const MAX_ATTACHMENT: usize = 2 * 1024 * 1024;
/// Visits a question may be about: those of the last this many days.
pub const VISIT_DAYS: i64 = 90;
const CATEGORY: &str = "urn:lianyi:communication-category";
const QUESTION: &str = "patient-question";
const ANSWER: &str = "care-team-answer";
const DAY_MS: i64 = 86_400_000;

/// A photo as uploaded.
#[derive(Clone, Debug, Default)]
pub struct Attachment {
    /// As the browser said (checked against the bytes).
    pub content_type: String,
    pub name: String,
    pub data: Vec<u8>,
}

/// What a patient asks.
#[derive(Clone, Debug, Default)]
pub struct Question {
    /// The visit (an Encounter id).
    pub visit: String,
    pub text: String,
    pub attachment: Option<Attachment>,
}

/// A visit a question may be about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visit {
    pub id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub department: Names,
    pub doctor: Names,
}

/// A question with its answer, as the patient or the care team sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    pub id: String,
    pub patient: String,
    pub patient_name: String,
    pub visit_date: String,
    /// The doctor or department it went to.
    pub to: Names,
    pub asked_at: i64,
    pub text: String,
    /// The photo's DocumentReference id.
    pub attachment: Option<String>,
    pub answer: Option<Answer>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub at: i64,
    pub text: String,
    pub by: Names,
}

impl Thread {
    /// How long the answer took, or has been waiting until `now`.
    pub fn waited_ms(&self, now: i64) -> i64 {
        self.answer.as_ref().map_or(now, |a| a.at) - self.asked_at
    }
}

/// The type of a photo from its first bytes.
pub fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    }
}

fn instant(v: &Value) -> i64 {
    v.as_str().and_then(lianyi_fhir::datetime::parse_range).map_or(0, |r| r.low)
}

fn category(kind: &str) -> Value {
    json!([{"coding": [{"system": CATEGORY, "code": kind}]}])
}

fn text_of(c: &Value) -> String {
    c["payload"]
        .as_array()
        .and_then(|ps| ps.iter().find_map(|p| p["contentString"].as_str()))
        .unwrap_or_default()
        .to_string()
}

fn attachment_of(c: &Value) -> Option<String> {
    c["payload"]
        .as_array()?
        .iter()
        .find_map(|p| ref_id(&p["contentReference"], "DocumentReference").map(str::to_string))
}

/// Who answers patients' questions: staff who write Communications (doctors, nurses).
pub fn may_answer(caller: &Caller) -> bool {
    caller.access().patient().is_none() && caller.access().allows("Communication", Perm::Create)
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct CareMessages {
    fhir: FhirService,
    scheduling: Scheduling,
}

impl CareMessages {
    pub fn new(fhir: FhirService, scheduling: Scheduling) -> CareMessages {
        CareMessages { fhir, scheduling }
    }

    /// The patient's visits of the last [`VISIT_DAYS`] days, newest first.
    pub async fn visits(&self, caller: &Caller) -> Result<Vec<Visit>, PortalError> {
        let patient = patient_of(caller)?;
        let since = self.fhir.now_ms() - VISIT_DAYS * DAY_MS;
        let (found, included) = search(
            &self.fhir,
            caller,
            "Encounter",
            &[
                ("patient", format!("Patient/{patient}")),
                ("date", format!("ge{}", local_instant(since))),
                ("_include", "Encounter:practitioner".into()),
                ("_include", "Encounter:service-provider".into()),
                ("_sort", "-date".into()),
                ("_count", "50".into()),
            ],
        )
        .await?;
        Ok(found
            .iter()
            .map(|(r, e)| {
                let doctor = e["participant"]
                    .as_array()
                    .and_then(|ps| ps.iter().find_map(|p| ref_id(&p["individual"], "Practitioner")))
                    .and_then(|id| included.iter().find(|x| x["resourceType"] == "Practitioner" && x["id"] == id));
                let dept = ref_id(&e["serviceProvider"], "Organization")
                    .and_then(|id| included.iter().find(|x| x["resourceType"] == "Organization" && x["id"] == id));
                Visit {
                    id: r.id.clone(),
                    date: e["period"]["start"].as_str().and_then(|s| s.get(..10)).unwrap_or_default().to_string(),
                    department: dept.map(organization_names).unwrap_or_default(),
                    doctor: doctor.map(of_practitioner).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Asks the care team of one of the patient's visits; returns the question's id.
    /// Every broken rule is named; nothing is written unless all hold.
    pub async fn ask(&self, caller: &Caller, q: &Question) -> Result<String, PortalError> {
        let patient = patient_of(caller)?.to_string();
        let mut errors = Vec::new();
        let text = q.text.trim();
        if text.is_empty() {
            errors.push(FieldError { field: "text", code: "required", detail: "write the question".into() });
        } else if text.chars().count() > MAX_CHARS {
            errors.push(FieldError {
                field: "text",
                code: "too-long",
                detail: format!("at most {MAX_CHARS} characters"),
            });
        }
        let photo = match &q.attachment {
            Some(a) if a.data.len() > MAX_ATTACHMENT => {
                errors.push(FieldError {
                    field: "attachment",
                    code: "too-large",
                    detail: format!("at most {} MB", MAX_ATTACHMENT / (1024 * 1024)),
                });
                None
            }
            Some(a) => match sniff(&a.data) {
                Some(kind) => Some((kind, a)),
                None => {
                    errors.push(FieldError { field: "attachment", code: "type", detail: "a JPEG or PNG photo".into() });
                    None
                }
            },
            None => None,
        };
        let visit = match read(&self.fhir, caller, "Encounter", &q.visit).await {
            Ok(Some((r, e))) if ref_id(&e["subject"], "Patient") == Some(patient.as_str()) => Some((r, e)),
            Ok(_) | Err(_) => {
                errors.push(FieldError { field: "visit", code: "unknown", detail: "choose one of your visits".into() });
                None
            }
        };
        if !errors.is_empty() {
            return Err(PortalError::Invalid(errors));
        }
        let Some((stored, e)) = visit else { return Err(invalid("visit", "unknown", "choose one of your visits")) };
        let recipient = e["participant"]
            .as_array()
            .and_then(|ps| {
                ps.iter().find_map(|p| p["individual"]["reference"].as_str().filter(|r| r.starts_with("Practitioner/")))
            })
            .or_else(|| e["serviceProvider"]["reference"].as_str())
            .ok_or_else(|| invalid("visit", "no-care-team", "this visit names no doctor or department"))?
            .to_string();
        let campus = stored
            .campus
            .as_deref()
            .and_then(|c| CampusId::parse(c).ok())
            .ok_or_else(|| invalid("visit", "no-care-team", "this visit belongs to no campus"))?;
        let writer = caller
            .self_service(&campus)
            .ok_or_else(|| PortalError::Forbidden("a patient's own account asks".into()))?;
        let now = local_instant(self.fhir.now_ms());
        let mut payload = vec![json!({"contentString": text})];
        let mut entries = Vec::new();
        if let Some((kind, a)) = photo {
            let name: String = a.name.chars().filter(|c| !c.is_control()).take(100).collect();
            entries.push(
                json!({"fullUrl": "urn:uuid:photo", "request": {"method": "POST", "url": "DocumentReference"},
                "resource": {"resourceType": "DocumentReference", "status": "current",
                    "type": {"text": "患者咨询附图 Photo with a question"},
                    "subject": {"reference": format!("Patient/{patient}")}, "date": now,
                    "content": [{"attachment": {"contentType": kind, "title": name, "size": a.data.len(),
                        "data": base64::engine::general_purpose::STANDARD.encode(&a.data)}}]}}),
            );
            payload.push(json!({"contentReference": {"reference": "urn:uuid:photo"}}));
        }
        entries.push(json!({"request": {"method": "POST", "url": "Communication"},
            "resource": {"resourceType": "Communication", "status": "in-progress", "category": category(QUESTION),
                "subject": {"reference": format!("Patient/{patient}")},
                "encounter": {"reference": format!("Encounter/{}", stored.id)},
                "sender": {"reference": format!("Patient/{patient}")},
                "recipient": [{"reference": recipient}], "sent": now, "payload": payload}}));
        let n = entries.len();
        let response = self
            .fhir
            .process_bundle(&writer, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        response["entry"][n - 1]["response"]["location"]
            .as_str()
            .and_then(|l| l.split('/').nth(1))
            .map(str::to_string)
            .ok_or_else(|| invalid("text", "not-sent", "the question was not kept"))
    }

    /// Threads from Communications (questions and the answers to them), with the
    /// people, departments, patients and visits they name (`names`, found with them).
    fn threads_of(questions: Vec<(String, Value)>, answers: &[Value], names: &[Value]) -> Vec<Thread> {
        let name_of = |reference: &str| {
            let (t, id) = reference.split_once('/').unwrap_or_default();
            names
                .iter()
                .find(|x| x["resourceType"] == t && x["id"] == id)
                .map(|x| if t == "Practitioner" { of_practitioner(x) } else { organization_names(x) })
        };
        let mut out = Vec::new();
        for (id, q) in questions {
            let mine = format!("Communication/{id}");
            let answer = answers.iter().find(|a| {
                a["inResponseTo"].as_array().is_some_and(|r| r.iter().any(|x| x["reference"] == mine.as_str()))
            });
            let to = q["recipient"][0]["reference"].as_str().unwrap_or_default();
            let patient = ref_id(&q["subject"], "Patient").unwrap_or_default().to_string();
            let visit_date = ref_id(&q["encounter"], "Encounter")
                .and_then(|e| names.iter().find(|x| x["resourceType"] == "Encounter" && x["id"] == e))
                .and_then(|v| v["period"]["start"].as_str().and_then(|s| s.get(..10)))
                .unwrap_or_default()
                .to_string();
            out.push(Thread {
                id,
                patient_name: names
                    .iter()
                    .find(|x| x["resourceType"] == "Patient" && x["id"] == patient.as_str())
                    .map(|p| lianyi_clinical::registry::person_of(p).name)
                    .unwrap_or_default(),
                patient,
                visit_date,
                to: name_of(to).unwrap_or_default(),
                asked_at: instant(&q["sent"]),
                text: text_of(&q),
                attachment: attachment_of(&q),
                answer: answer.map(|a| Answer {
                    at: instant(&a["sent"]),
                    text: text_of(a),
                    by: a["sender"]["reference"].as_str().and_then(name_of).unwrap_or_default(),
                }),
            });
        }
        out
    }

    /// The patient's questions and their answers, newest first.
    pub async fn threads(&self, caller: &Caller) -> Result<Vec<Thread>, PortalError> {
        let patient = patient_of(caller)?;
        let (found, included) = search(
            &self.fhir,
            caller,
            "Communication",
            &[
                ("subject", format!("Patient/{patient}")),
                ("category", format!("{CATEGORY}|{QUESTION},{CATEGORY}|{ANSWER}")),
                ("_include", "Communication:recipient".into()),
                ("_include", "Communication:sender".into()),
                ("_include", "Communication:encounter".into()),
                ("_sort", "-sent".into()),
                ("_count", "200".into()),
            ],
        )
        .await?;
        let is = |c: &Value, kind: &str| c["category"][0]["coding"][0]["code"] == kind;
        let answers: Vec<Value> = found.iter().filter(|(_, c)| is(c, ANSWER)).map(|(_, c)| c.clone()).collect();
        let questions = found.into_iter().filter(|(_, c)| is(c, QUESTION)).map(|(r, c)| (r.id, c)).collect();
        Ok(Self::threads_of(questions, &answers, &included))
    }

    /// The care team's inbox: the questions to the caller (their Practitioner) or to
    /// their departments, unanswered first (longest waiting first), then answered.
    pub async fn inbox(&self, caller: &Caller) -> Result<Vec<Thread>, PortalError> {
        if !may_answer(caller) {
            return Err(PortalError::Forbidden("the care team answers patients".into()));
        }
        let mut to: Vec<String> =
            self.scheduling.own_practitioners(caller).await?.into_iter().map(|p| format!("Practitioner/{p}")).collect();
        to.extend(self.scheduling.own_departments(caller).await?.into_iter().map(|d| format!("Organization/{d}")));
        if to.is_empty() {
            return Ok(Vec::new());
        }
        let (found, included) = search(
            &self.fhir,
            caller,
            "Communication",
            &[
                ("recipient", to.join(",")),
                ("category", format!("{CATEGORY}|{QUESTION}")),
                ("_include", "Communication:recipient".into()),
                ("_include", "Communication:subject".into()),
                ("_include", "Communication:encounter".into()),
                ("_sort", "-sent".into()),
                ("_count", "200".into()),
            ],
        )
        .await?;
        let (answers, answerers) = if found.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let (a, inc) = search(
                &self.fhir,
                caller,
                "Communication",
                &[
                    ("category", format!("{CATEGORY}|{ANSWER}")),
                    (
                        "subject",
                        found
                            .iter()
                            .filter_map(|(_, c)| c["subject"]["reference"].as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    ("_include", "Communication:sender".into()),
                    ("_count", "500".into()),
                ],
            )
            .await?;
            (a.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), inc)
        };
        let mut names = included;
        names.extend(answerers);
        let questions = found.into_iter().map(|(r, c)| (r.id, c)).collect();
        let mut out = Self::threads_of(questions, &answers, &names);
        // A patient of another campus who asked is named from the patient index, as the
        // desk finds them group-wide (audited as the caller's read).
        for t in out.iter_mut().filter(|t| t.patient_name.is_empty()) {
            t.patient_name =
                lianyi_clinical::registry::name_in_index(&self.fhir, caller, &t.patient).await.unwrap_or_default();
        }
        out.sort_by_key(|t| (t.answer.is_some(), if t.answer.is_some() { -t.asked_at } else { t.asked_at }));
        Ok(out)
    }

    /// Answers a question of the caller's inbox, once.
    pub async fn answer(&self, caller: &Caller, question: &str, text: &str) -> Result<(), PortalError> {
        if !may_answer(caller) {
            return Err(PortalError::Forbidden("the care team answers patients".into()));
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("text", "required", "write the answer"));
        }
        if text.chars().count() > MAX_CHARS {
            return Err(invalid("text", "too-long", format!("at most {MAX_CHARS} characters")));
        }
        let (stored, mut q) =
            read(&self.fhir, caller, "Communication", question).await?.ok_or(PortalError::NotFound)?;
        if q["category"][0]["coding"][0]["code"] != QUESTION {
            return Err(PortalError::NotFound);
        }
        if q["status"] == "completed" {
            return Err(invalid("text", "answered", "this question has been answered"));
        }
        let me = self.scheduling.own_practitioners(caller).await?;
        let sender = me.first().map(|p| json!({"reference": format!("Practitioner/{p}")}));
        let now = local_instant(self.fhir.now_ms());
        let mut answer = json!({"resourceType": "Communication", "status": "completed", "category": category(ANSWER),
            "subject": q["subject"], "encounter": q["encounter"],
            "inResponseTo": [{"reference": format!("Communication/{question}")}],
            "recipient": [q["subject"]], "sent": now, "payload": [{"contentString": text}]});
        if let Some(s) = sender {
            answer["sender"] = s;
        }
        if let Some(o) = q.as_object_mut() {
            o.remove("meta");
        }
        q["status"] = json!("completed");
        let entries = json!([
            {"resource": q, "request": {"method": "PUT", "url": format!("Communication/{question}"), "ifMatch": format!("W/\"{}\"", stored.version)}},
            {"resource": answer, "request": {"method": "POST", "url": "Communication"}}]);
        match self
            .fhir
            .process_bundle(caller, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await
        {
            Ok(_) => Ok(()),
            Err(lianyi_services::ServiceError::Invalid(o))
                if o.issues.iter().any(|i| i.code == lianyi_fhir::IssueType::Conflict) =>
            {
                Err(invalid("text", "answered", "this question was answered meanwhile"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A question's photo (its type and bytes), as the caller may read it.
    pub async fn photo(&self, caller: &Caller, id: &str) -> Result<(String, Vec<u8>), PortalError> {
        let (_, d) = read(&self.fhir, caller, "DocumentReference", id).await?.ok_or(PortalError::NotFound)?;
        let a = &d["content"][0]["attachment"];
        let data = a["data"]
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or(PortalError::NotFound)?;
        let kind = sniff(&data).ok_or(PortalError::NotFound)?;
        Ok((kind.to_string(), data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_are_known_by_their_bytes() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b"<svg xmlns="), None, "no scripts in pictures");
        assert_eq!(sniff(b""), None);
    }
}
