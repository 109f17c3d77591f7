//! Patients' feedback and complaints (患者意见与投诉). Staff at a campus record what a
//! patient said at the desk, on the phone or in a letter (the portal later), about the
//! campus or one of its departments, naming the patient when known; a complaint is due
//! an answer within [`COMPLAINT_DAYS`] days, other feedback within [`OTHER_DAYS`].
//! Managers and department heads of the campus handle it: they name the owner who
//! answers, and the owner (or they) write the answer, once. Open feedback past its day
//! is overdue. Every record, assignment and answer is audited.

use lianyi_clinical::names::Names;
use lianyi_clinical::scheduling::local_date;
use lianyi_fhir::ResourceType;
use lianyi_security::roles::Capability;
use lianyi_security::{Caller, Campuses};
use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoreError;
use lianyi_store::feedback::Feedback;

pub use lianyi_clinical::registry::FieldError;

use crate::equipment::add_days;
use crate::rosters::Rosters;

/// Kinds of feedback.
pub const KINDS: [&str; 3] = ["complaint", "suggestion", "praise"];
/// A patient's question about an access to their record, for the privacy officer.
pub const PRIVACY: &str = "privacy";
/// How it came.
pub const CHANNELS: [&str; 3] = ["desk", "phone", "letter"];
/// Days to answer a complaint.
pub const COMPLAINT_DAYS: i64 = 5;
/// Days to answer a suggestion or praise.
pub const OTHER_DAYS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
}

impl From<StoreError> for FeedbackError {
    /// A refused answer (`reply: why`) names its field.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(msg) => {
                let detail = msg.split_once(": ").map_or(msg.as_str(), |(_, d)| d).to_string();
                FeedbackError::Invalid(vec![FieldError { field: "reply", code: "answered", detail }])
            }
            other => FeedbackError::Store(other),
        }
    }
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> FeedbackError {
    FeedbackError::Invalid(vec![FieldError { field, code: rule, detail: detail.into() }])
}

/// Feedback as the desk's form gives it.
#[derive(Clone, Debug, Default)]
pub struct FeedbackForm {
    pub campus: String,
    pub department: String,
    pub kind: String,
    pub channel: String,
    /// A Patient id, or empty.
    pub patient: String,
    pub subject: String,
    pub body: String,
    /// The member of staff it is about (a Practitioner id), or empty.
    pub practitioner: String,
}

/// Feedback as the pages show it.
#[derive(Clone, Debug)]
pub struct FeedbackView {
    pub feedback: Feedback,
    /// Open past its day.
    pub overdue: bool,
    /// The caller may name its owner.
    pub may_assign: bool,
    /// The caller may answer it.
    pub may_answer: bool,
    /// The names of the member of staff it is about (read for one piece only).
    pub about: Option<Names>,
}

/// A patient's satisfaction with one of their visits, from the portal.
#[derive(Clone, Debug, Default)]
pub struct Survey {
    /// The visit's campus and department, its doctor (a Practitioner id), and the
    /// visit (an Encounter id), as the portal read them from the patient's record.
    pub campus: String,
    pub department: Option<String>,
    pub practitioner: Option<String>,
    pub encounter: String,
    /// 1 (very unhappy) to 5 (very happy).
    pub rating: u8,
    pub comment: String,
}

/// The longest comment on a survey, in characters.
pub const SURVEY_COMMENT_CHARS: usize = 1_000;

/// The feedback service.
#[derive(Clone, Debug)]
pub struct Feedbacks {
    fhir: FhirService,
    rosters: Rosters,
}

impl Feedbacks {
    pub fn new(fhir: FhirService) -> Feedbacks {
        Feedbacks { rosters: Rosters::new(fhir.clone()), fhir }
    }

    /// Staff (not patients) record feedback at their campuses.
    pub fn may_record(caller: &Caller) -> bool {
        caller.is_authenticated() && caller.access().patient().is_none()
    }

    /// Managers and department heads handle feedback; the privacy officer handles a
    /// patient's question about an access to their record.
    pub fn may_handle(caller: &Caller) -> bool {
        Self::may_record(caller) && (caller.can(Capability::HandleFeedback) || caller.can(Capability::ReviewAudit))
    }

    fn handles(caller: &Caller, f: &Feedback) -> bool {
        let role = if f.kind == PRIVACY { Capability::ReviewAudit } else { Capability::HandleFeedback };
        Self::may_record(caller) && caller.can(role) && caller.access().all_campuses().contains(&f.campus)
    }

    /// A patient's question about one access to their record (an audit record, given
    /// as the page showed it), for the privacy officer: due an answer like a
    /// complaint; audited. `campus` is the campus of the access (else the patient's).
    pub async fn privacy_question(
        &self,
        caller: &Caller,
        campus: &str,
        access: &str,
        question: &str,
    ) -> Result<i64, FeedbackError> {
        let Some(patient) = caller.access().patient().map(str::to_string) else {
            return Err(FeedbackError::Forbidden("a question about one's record is the patient's own"));
        };
        let question = question.trim();
        if question.chars().count() < 2 || question.chars().count() > SURVEY_COMMENT_CHARS {
            return Err(invalid("question", "required", format!("2 to {SURVEY_COMMENT_CHARS} characters")));
        }
        let today = local_date(self.fhir.now_ms());
        let f = Feedback {
            campus: campus.to_string(),
            kind: PRIVACY.into(),
            channel: "portal".into(),
            patient: Some(patient),
            subject: format!(
                "患者对病历访问的疑问 / a question about an access: {}",
                access.chars().take(60).collect::<String>()
            ),
            body: question.to_string(),
            received_at: self.fhir.now_ms(),
            received_by: caller.actor().to_string(),
            due_on: add_days(&today, COMPLAINT_DAYS).unwrap_or(today),
            ..Feedback::default()
        };
        let id = self.fhir.operations().feedback().record(&f).await?;
        crate::common::audit(&self.fhir, caller, "feedback-record", format!("feedback {id} (privacy) at {campus}"))
            .await
            .map_err(FeedbackError::Audit)?;
        Ok(id)
    }

    /// The caller's own questions about accesses to their record, with the answers.
    pub async fn my_privacy_questions(&self, caller: &Caller) -> Result<Vec<Feedback>, FeedbackError> {
        let Some(patient) = caller.access().patient() else {
            return Err(FeedbackError::Forbidden("a patient's own questions"));
        };
        Ok(self.fhir.operations().feedback().of_patient(patient, PRIVACY, 50).await?)
    }

    fn username(caller: &Caller) -> &str {
        caller.actor().strip_prefix("user:").unwrap_or(caller.actor())
    }

    fn view(&self, caller: &Caller, f: Feedback) -> FeedbackView {
        let today = local_date(self.fhir.now_ms());
        let handles = Self::handles(caller, &f);
        let open = f.status == "open";
        let owner = f.owner.as_deref() == Some(Self::username(caller));
        FeedbackView {
            overdue: open && f.due_on < today,
            may_assign: open && handles,
            may_answer: open && (handles || owner),
            feedback: f,
            about: None,
        }
    }

    /// A patient's survey of one of their visits (the portal checks the visit is
    /// theirs and finished): 4 or 5 stars is praise, 1 or 2 a complaint (with what
    /// went wrong, due an answer like any complaint), 3 a suggestion; about the
    /// visit's doctor, so it counts in their patient satisfaction. One per visit;
    /// audited.
    pub async fn survey(&self, caller: &Caller, s: &Survey) -> Result<i64, FeedbackError> {
        let Some(patient) = caller.access().patient().map(str::to_string) else {
            return Err(FeedbackError::Forbidden("a survey is a patient's own"));
        };
        let mut errors = Vec::new();
        if !(1..=5).contains(&s.rating) {
            errors.push(FieldError { field: "rating", code: "range", detail: "1 to 5 stars".into() });
        }
        let comment = s.comment.trim();
        if comment.chars().count() > SURVEY_COMMENT_CHARS {
            errors.push(FieldError {
                field: "comment",
                code: "too-long",
                detail: format!("at most {SURVEY_COMMENT_CHARS} characters"),
            });
        } else if (1..=2).contains(&s.rating) && comment.is_empty() {
            errors.push(FieldError { field: "comment", code: "required", detail: "say what went wrong".into() });
        }
        if !errors.is_empty() {
            return Err(FeedbackError::Invalid(errors));
        }
        let kind = match s.rating {
            4 | 5 => "praise",
            1 | 2 => "complaint",
            _ => "suggestion",
        };
        let today = local_date(self.fhir.now_ms());
        let days = if kind == "complaint" { COMPLAINT_DAYS } else { OTHER_DAYS };
        let f = Feedback {
            campus: s.campus.clone(),
            department: s.department.clone(),
            kind: kind.to_string(),
            channel: "portal".into(),
            patient: Some(patient),
            subject: format!("就诊满意度评价：{} 星（{} stars）", s.rating, s.rating),
            body: if comment.is_empty() {
                "（患者未留言 / no comment）".to_string()
            } else {
                comment.to_string()
            },
            received_at: self.fhir.now_ms(),
            received_by: caller.actor().to_string(),
            due_on: add_days(&today, days).unwrap_or(today),
            practitioner: s.practitioner.clone(),
            encounter: Some(s.encounter.clone()),
            ..Feedback::default()
        };
        let id = match self.fhir.operations().feedback().record(&f).await {
            Ok(id) => id,
            Err(StoreError::AlreadyExists { .. }) => {
                return Err(FeedbackError::Invalid(vec![FieldError {
                    field: "visit",
                    code: "surveyed",
                    detail: "this visit has been rated".into(),
                }]));
            }
            Err(e) => return Err(e.into()),
        };
        let detail = format!("feedback {id} ({kind}): survey of visit {}, {} stars", s.encounter, s.rating);
        crate::common::audit(&self.fhir, caller, "feedback-record", detail).await.map_err(FeedbackError::Audit)?;
        Ok(id)
    }

    /// Records feedback; every broken rule is named by its field, and nothing is
    /// written. Returns its id.
    pub async fn record(&self, caller: &Caller, form: &FeedbackForm) -> Result<i64, FeedbackError> {
        if !Self::may_record(caller) {
            return Err(FeedbackError::Forbidden("feedback is recorded by staff"));
        }
        let mut errors = Vec::new();
        let mut rule = |ok: bool, field: &'static str, code: &'static str, detail: &str| {
            if !ok {
                errors.push(FieldError { field, code, detail: detail.to_string() });
            }
        };
        let sized = |s: &str, max: usize| !s.trim().is_empty() && s.trim().chars().count() <= max;
        let (campus, department, patient) = (form.campus.trim(), form.department.trim(), form.patient.trim());
        let kind = form.kind.trim();
        rule(KINDS.contains(&kind), "kind", "choice", "a complaint, a suggestion or praise");
        rule(CHANNELS.contains(&form.channel.trim()), "channel", "choice", "the desk, the phone or a letter");
        rule(sized(&form.subject, 100), "subject", "required", "1 to 100 characters");
        rule(sized(&form.body, 5000), "body", "required", "1 to 5000 characters");
        rule(!campus.is_empty(), "campus", "required", "the campus it is about");
        rule(
            campus.is_empty() || caller.access().all_campuses().contains(campus),
            "campus",
            "scope",
            "a campus you work at",
        );
        if !department.is_empty() {
            let at = self.rosters.campus_of(caller, department).await.ok();
            rule(at.as_deref() == Some(campus), "department", "scope", "a department of that campus");
        }
        if !patient.is_empty() {
            rule(self.exists(caller, "Patient", patient).await?, "patient", "not-found", "a patient on record");
        }
        let practitioner = form.practitioner.trim();
        if !practitioner.is_empty() {
            let found = self.exists(caller, "Practitioner", practitioner).await?;
            rule(found, "practitioner", "unknown", "a member of staff in the directory");
        }
        if !errors.is_empty() {
            return Err(FeedbackError::Invalid(errors));
        }
        let today = local_date(self.fhir.now_ms());
        let days = if kind == "complaint" { COMPLAINT_DAYS } else { OTHER_DAYS };
        let f = Feedback {
            campus: campus.to_string(),
            department: Some(department.to_string()).filter(|d| !d.is_empty()),
            kind: kind.to_string(),
            channel: form.channel.trim().to_string(),
            patient: Some(patient.to_string()).filter(|p| !p.is_empty()),
            subject: form.subject.trim().to_string(),
            body: form.body.trim().to_string(),
            received_at: self.fhir.now_ms(),
            received_by: caller.actor().to_string(),
            due_on: add_days(&today, days).unwrap_or(today),
            practitioner: Some(practitioner.to_string()).filter(|p| !p.is_empty()),
            ..Feedback::default()
        };
        let id = self.fhir.operations().feedback().record(&f).await?;
        let detail = format!("feedback {id} ({kind}) at {campus}");
        crate::common::audit(&self.fhir, caller, "feedback-record", detail).await.map_err(FeedbackError::Audit)?;
        Ok(id)
    }

    /// Whether `caller` finds the resource (a Patient's read is audited as any other).
    async fn exists(&self, caller: &Caller, rtype: &str, id: &str) -> Result<bool, FeedbackError> {
        let Some(rt) = ResourceType::parse(rtype) else { return Ok(false) };
        let reader = match self.fhir.reader(caller, rt).await {
            Ok(r) => r,
            Err(ServiceError::Forbidden(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        match reader.read(id).await {
            Ok(_) => Ok(true),
            Err(ServiceError::NotFound { .. } | ServiceError::Gone { .. } | ServiceError::Forbidden(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// What the caller follows: a handler the feedback of their campuses; others what
    /// they recorded or own. Open first by deadline, then the answered newest first.
    pub async fn list(&self, caller: &Caller, open_only: bool) -> Result<Vec<FeedbackView>, FeedbackError> {
        if !Self::may_record(caller) {
            return Err(FeedbackError::Forbidden("feedback is for staff"));
        }
        let campuses: Option<Vec<String>> = match caller.access().all_campuses() {
            Campuses::All => None,
            Campuses::Only(list) => Some(list.iter().map(|c| c.as_str().to_string()).collect()),
        };
        let rows = self.fhir.operations().feedback().list(campuses.as_deref(), open_only, 500).await?;
        let me = Self::username(caller);
        Ok(rows
            .into_iter()
            .filter(|f| Self::handles(caller, f) || f.received_by == caller.actor() || f.owner.as_deref() == Some(me))
            .map(|f| self.view(caller, f))
            .collect())
    }

    /// One piece of feedback, to whoever follows it.
    pub async fn get(&self, caller: &Caller, id: i64) -> Result<FeedbackView, FeedbackError> {
        let f = self
            .fhir
            .operations()
            .feedback()
            .get(id)
            .await?
            .ok_or_else(|| FeedbackError::NotFound(format!("feedback {id}")))?;
        let me = Self::username(caller);
        let follows = Self::handles(caller, &f) || f.received_by == caller.actor() || f.owner.as_deref() == Some(me);
        if !Self::may_record(caller) || !follows {
            return Err(FeedbackError::Forbidden("this feedback is followed by its campus's managers"));
        }
        let about = match &f.practitioner {
            Some(p) => self.names(caller, p).await?,
            None => None,
        };
        Ok(FeedbackView { about, ..self.view(caller, f) })
    }

    /// A Practitioner's names, if `caller` reads it.
    async fn names(&self, caller: &Caller, id: &str) -> Result<Option<Names>, FeedbackError> {
        match crate::common::names_of(&self.fhir, caller, "Practitioner", id).await {
            Err(ServiceError::Forbidden(_)) => Ok(None),
            found => Ok(found?),
        }
    }

    /// Names the owner who answers (a username).
    pub async fn assign(&self, caller: &Caller, id: i64, owner: &str) -> Result<(), FeedbackError> {
        let v = self.get(caller, id).await?;
        if !Self::handles(caller, &v.feedback) {
            return Err(FeedbackError::Forbidden("the owner is named by the campus's managers"));
        }
        let owner = owner.trim();
        let valid = !owner.is_empty()
            && owner.chars().count() <= 64
            && owner.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(invalid("owner", "required", "the username of who answers"));
        }
        if !self.fhir.operations().feedback().assign(id, owner).await? {
            return Err(invalid("reply", "answered", "this feedback was answered already"));
        }
        let detail = format!("feedback {id} to {owner}");
        crate::common::audit(&self.fhir, caller, "feedback-assign", detail).await.map_err(FeedbackError::Audit)
    }

    /// Writes the answer (once).
    pub async fn answer(&self, caller: &Caller, id: i64, reply: &str) -> Result<(), FeedbackError> {
        let v = self.get(caller, id).await?;
        if v.feedback.status != "open" {
            return Err(invalid("reply", "answered", "this feedback was answered already"));
        }
        if !v.may_answer {
            return Err(FeedbackError::Forbidden("feedback is answered by its owner or the campus's managers"));
        }
        let reply = reply.trim();
        if reply.chars().count() < 2 || reply.chars().count() > 5000 {
            return Err(invalid("reply", "required", "2 to 5000 characters"));
        }
        self.fhir.operations().feedback().answer(id, reply, caller.actor(), self.fhir.now_ms()).await?;
        let detail = format!("feedback {id} answered");
        crate::common::audit(&self.fhir, caller, "feedback-answer", detail).await.map_err(FeedbackError::Audit)
    }
}
