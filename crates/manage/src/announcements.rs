//! Announcements, news and policies (通知公告) with their audience and read receipts
//! (已读回执). Managers publish to the whole group (if they serve every campus), to a
//! campus, a department or a role; a department head to their own department. Staff
//! see what is addressed to them; opening one records that they read it (once), and
//! its publisher sees who read it and when. Every publication is audited.

use lianyi_clinical::scheduling::{Scheduling, local_date};
use lianyi_security::roles::{Capability, Role};
use lianyi_security::{Caller, Campuses};
use lianyi_services::FhirService;
use lianyi_store::announcements::Announcement;

pub use lianyi_clinical::registry::FieldError;

use crate::rosters::Rosters;

/// Kinds of publication.
pub const KINDS: [&str; 3] = ["announcement", "news", "policy"];
/// Audiences.
pub const AUDIENCES: [&str; 4] = ["group", "campus", "department", "role"];

#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
    #[error(transparent)]
    Roster(#[from] crate::rosters::RosterError),
    #[error(transparent)]
    Schedule(#[from] lianyi_clinical::scheduling::ScheduleError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
}

/// A publication as the form gives it.
#[derive(Clone, Debug, Default)]
pub struct NoticeForm {
    pub kind: String,
    pub title: String,
    pub body: String,
    /// `group`, `campus`, `department` or `role`.
    pub audience: String,
    pub campus: String,
    pub department: String,
    pub role: String,
    /// The last day it is shown, `YYYY-MM-DD` or empty.
    pub until: String,
}

/// An announcement as a reader sees it.
#[derive(Clone, Debug)]
pub struct Notice {
    pub notice: Announcement,
    /// The caller read it already.
    pub read: bool,
    /// The caller published it.
    pub own: bool,
}

/// Whether a role held at `campus` (or `*`) is in `a`'s audience (a department's
/// audience is decided by the person's roles in it, not by a grant).
pub fn grant_in_audience(a: &Announcement, role: &str, campus: &str) -> bool {
    let at = |c: &Option<String>| c.as_deref().is_none_or(|c| campus == "*" || campus == c);
    role != "patient"
        && match a.audience.as_str() {
            "group" => true,
            "campus" => at(&a.campus),
            "role" => a.role.as_deref() == Some(role) && at(&a.campus),
            _ => false,
        }
}

/// The announcements service.
#[derive(Clone, Debug)]
pub struct Notices {
    fhir: FhirService,
    rosters: Rosters,
    scheduling: Scheduling,
}

impl Notices {
    pub fn new(fhir: FhirService) -> Notices {
        Notices { rosters: Rosters::new(fhir.clone()), scheduling: Scheduling::new(fhir.clone()), fhir }
    }

    fn staff(caller: &Caller) -> bool {
        caller.is_authenticated() && caller.access().patient().is_none()
    }

    /// May publish something (to some audience).
    pub fn may_publish(caller: &Caller) -> bool {
        Self::staff(caller) && caller.can(Capability::Publish)
    }

    fn head(caller: &Caller) -> bool {
        caller.role() == Some("department-head")
    }

    /// Publishes; every broken rule is named by its field, and nothing is written.
    pub async fn publish(&self, caller: &Caller, form: &NoticeForm) -> Result<i64, NoticeError> {
        if !Self::may_publish(caller) {
            return Err(NoticeError::Forbidden("announcements are published by managers and department heads"));
        }
        let mut errors = Vec::new();
        let mut rule = |ok: bool, field: &'static str, code: &'static str, detail: &str| {
            if !ok {
                errors.push(FieldError { field, code, detail: detail.to_string() });
            }
        };
        let sized = |s: &str, max: usize| !s.trim().is_empty() && s.trim().chars().count() <= max;
        rule(KINDS.contains(&form.kind.trim()), "kind", "choice", "announcement, news or policy");
        rule(sized(&form.title, 100), "title", "required", "1 to 100 characters");
        rule(sized(&form.body, 5000), "body", "required", "1 to 5000 characters");
        let audience = form.audience.trim();
        rule(
            AUDIENCES.contains(&audience),
            "audience",
            "required",
            "who it is for: the group, a campus, a department or a role",
        );
        let (campus, department, role) = (form.campus.trim(), form.department.trim(), form.role.trim());
        let mut scope_campus: Option<String> = None;
        let mut scope_department: Option<String> = None;
        let mut scope_role: Option<String> = None;
        match audience {
            "group" => rule(
                matches!(caller.access().all_campuses(), Campuses::All) && !Self::head(caller),
                "audience",
                "group",
                "only a manager of every campus publishes to the whole group",
            ),
            "campus" => {
                rule(!campus.is_empty(), "campus", "required", "the campus it is for");
                rule(
                    campus.is_empty() || (caller.access().all_campuses().contains(campus) && !Self::head(caller)),
                    "campus",
                    "scope",
                    "a campus you manage",
                );
                scope_campus = Some(campus.to_string());
            }
            "department" => {
                if department.is_empty() {
                    rule(false, "department", "required", "the department it is for");
                } else {
                    let at = self.rosters.campus_of(caller, department).await.ok();
                    let own = !Self::head(caller)
                        || self.scheduling.own_departments(caller).await?.iter().any(|d| d == department);
                    rule(
                        at.as_deref().is_some_and(|c| caller.access().all_campuses().contains(c)) && own,
                        "department",
                        "scope",
                        "a department you manage",
                    );
                    scope_campus = at;
                    scope_department = Some(department.to_string());
                }
            }
            "role" => {
                rule(Role::parse(role).is_some_and(|r| r != Role::Patient), "role", "required", "a staff role");
                rule(!Self::head(caller), "audience", "scope", "a department head publishes to their department");
                if !campus.is_empty() {
                    rule(caller.access().all_campuses().contains(campus), "campus", "scope", "a campus you manage");
                    scope_campus = Some(campus.to_string());
                } else {
                    rule(
                        matches!(caller.access().all_campuses(), Campuses::All),
                        "campus",
                        "required",
                        "the campus, unless you manage every campus",
                    );
                }
                scope_role = Some(role.to_string());
            }
            _ => {}
        }
        if Self::head(caller) && audience != "department" && AUDIENCES.contains(&audience) {
            rule(false, "audience", "scope", "a department head publishes to their department");
        }
        let today = local_date(self.fhir.now_ms());
        let until = form.until.trim();
        rule(
            until.is_empty() || crate::equipment::days_between(&today, until).is_some_and(|d| d >= 0),
            "until",
            "date",
            "a date, today or later, or empty",
        );
        if !errors.is_empty() {
            return Err(NoticeError::Invalid(errors));
        }
        let a = Announcement {
            kind: form.kind.trim().to_string(),
            title: form.title.trim().to_string(),
            body: form.body.trim().to_string(),
            audience: audience.to_string(),
            campus: scope_campus,
            department: scope_department,
            role: scope_role,
            published_by: caller.actor().to_string(),
            published_at: self.fhir.now_ms(),
            until: Some(until.to_string()).filter(|u| !u.is_empty()),
            ..Default::default()
        };
        let id = self.fhir.operations().announcements().publish(&a).await?;
        let detail = format!("announcement {id} to {audience}");
        crate::common::audit(&self.fhir, caller, "announcement-publish", detail).await.map_err(NoticeError::Audit)?;
        Ok(id)
    }

    /// The departments the caller's Practitioner holds a role in; none for those who
    /// read no directory of people (IT staff) or have no Practitioner.
    pub async fn own_departments(&self, caller: &Caller) -> Vec<String> {
        self.scheduling.own_departments(caller).await.unwrap_or_default()
    }

    fn addressed(caller: &Caller, a: &Announcement, own_departments: &[String]) -> bool {
        if !Self::staff(caller) {
            return false;
        }
        let campuses = caller.access().all_campuses();
        let at = |c: &Option<String>| c.as_deref().is_none_or(|c| campuses.contains(c));
        match a.audience.as_str() {
            "group" => true,
            "campus" => a.campus.as_deref().is_some_and(|c| campuses.contains(c)),
            "department" => a.department.as_ref().is_some_and(|d| own_departments.contains(d)),
            "role" => a.role.as_deref() == caller.role() && at(&a.campus),
            _ => false,
        }
    }

    /// What is addressed to the caller (and what they published), still shown today,
    /// newest first, each marked read or not.
    pub async fn visible(&self, caller: &Caller) -> Result<Vec<Notice>, NoticeError> {
        if !Self::staff(caller) {
            return Err(NoticeError::Forbidden("announcements are for staff"));
        }
        let store = self.fhir.operations().announcements();
        let today = local_date(self.fhir.now_ms());
        let own = self.own_departments(caller).await;
        let list: Vec<Announcement> = store
            .current(&today, 300)
            .await?
            .into_iter()
            .filter(|a| a.published_by == caller.actor() || Self::addressed(caller, a, &own))
            .collect();
        let ids: Vec<i64> = list.iter().map(|a| a.id).collect();
        let read = store.read_by(caller.actor(), &ids).await?;
        Ok(list
            .into_iter()
            .map(|a| Notice { read: read.contains(&a.id), own: a.published_by == caller.actor(), notice: a })
            .collect())
    }

    /// Opens one: recorded as read by an addressee (once); the publisher gets the read
    /// receipts (who and when).
    pub async fn open(&self, caller: &Caller, id: i64) -> Result<(Notice, Option<Vec<(String, i64)>>), NoticeError> {
        let store = self.fhir.operations().announcements();
        let a = store.get(id).await?.ok_or_else(|| NoticeError::NotFound(format!("announcement {id}")))?;
        let own = a.published_by == caller.actor();
        let addressed = Self::addressed(caller, &a, &self.own_departments(caller).await);
        if !own && !addressed {
            return Err(NoticeError::Forbidden("this announcement is not addressed to you"));
        }
        if addressed && !own {
            store.read(id, caller.actor(), self.fhir.now_ms()).await?;
        }
        let receipts = if own { Some(store.readers(id).await?) } else { None };
        Ok((Notice { read: true, own, notice: a }, receipts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_in_an_audience() {
        let campus =
            Announcement { audience: "campus".into(), campus: Some("campus-east".into()), ..Default::default() };
        assert!(grant_in_audience(&campus, "nurse", "campus-east"));
        assert!(grant_in_audience(&campus, "manager", "*"));
        assert!(!grant_in_audience(&campus, "nurse", "campus-west"));
        assert!(!grant_in_audience(&campus, "patient", "campus-east"), "patients are not staff");
        let role = Announcement { audience: "role".into(), role: Some("nurse".into()), ..Default::default() };
        assert!(grant_in_audience(&role, "nurse", "campus-west"));
        assert!(!grant_in_audience(&role, "doctor", "campus-west"));
        let group = Announcement { audience: "group".into(), ..Default::default() };
        assert!(grant_in_audience(&group, "cashier", "campus-south"));
    }
}
