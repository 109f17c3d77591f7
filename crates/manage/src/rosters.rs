//! The rosters service: who may keep what, the checks, the audit, and the Slots that
//! follow a doctor's clinic sessions.
//!
//! A campus's shift types and rest rule are kept by its managers; a department's
//! roster by its head (a department-head user whose Practitioner holds a role in it)
//! or a manager of its campus ([`Capability::ManageRosters`]). Staff of a campus read
//! its rosters. A shift is placed on a person's PractitionerRole in the department, so
//! the person stays the one Practitioner whichever department they work in; the
//! checks see all their shifts, at every campus.

use lianyi_clinical::scheduling::{Scheduling, local_date, local_midnight};
use lianyi_fhir::ResourceType;
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::rosters::{RosterShift, ShiftType};
use serde_json::Value;

use crate::roster::{Conflict, Placed, Rules, ShiftKind, conflicts, minutes};

const DAY_MS: i64 = 86_400_000;

/// A broken rule, naming the field (the clinical forms' kind: `code` names the rule).
pub use lianyi_clinical::registry::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The shift would break the roster's rules; nothing was saved.
    #[error("{}", .0.iter().map(describe).collect::<Vec<_>>().join("; "))]
    Conflicts(Vec<Conflict>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0} of the session's Slots are booked: move or cancel those appointments first")]
    Booked(usize),
    #[error(transparent)]
    Schedule(#[from] lianyi_clinical::scheduling::ScheduleError),
    #[error(transparent)]
    Service(#[from] lianyi_services::fhir::ServiceError),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
}

/// A conflict in one line (logs and API errors; pages word it from its parts).
pub fn describe(c: &Conflict) -> String {
    match c {
        Conflict::Overlap(o) => {
            format!("shift: already on shift {} on {} in department {} ({})", o.shift, o.date, o.department, o.campus)
        }
        Conflict::Rest { after, minutes, required } => format!(
            "shift: {}:{:02} h after the {} shift of {} ends; the campus requires {required} h of rest",
            minutes / 60,
            minutes % 60,
            after.shift,
            after.date
        ),
        Conflict::RestBefore { next, minutes, required } => format!(
            "shift: {}:{:02} h before the {} shift of {} starts; the campus requires {required} h of rest",
            minutes / 60,
            minutes % 60,
            next.shift,
            next.date
        ),
    }
}

pub(crate) fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> RosterError {
    RosterError::Invalid(vec![FieldError { field, code: rule, detail: detail.into() }])
}

/// A shift type as a form gives it.
#[derive(Clone, Debug, Default)]
pub struct ShiftTypeForm {
    pub campus: String,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub kind: String,
    /// `HH:MM`.
    pub start: String,
    pub end: String,
    /// A clinic session's Slot length in minutes (clinic shifts only).
    pub slot_minutes: String,
}

impl ShiftTypeForm {
    /// The shift type, or every broken rule by field.
    pub fn check(&self) -> Result<ShiftType, RosterError> {
        let mut errors = Vec::new();
        let mut rule = |ok: bool, field: &'static str, rule: &'static str, detail: &str| {
            if !ok {
                errors.push(FieldError { field, code: rule, detail: detail.to_string() });
            }
        };
        let code = self.code.trim();
        rule(
            !code.is_empty() && code.len() <= 16 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "code",
            "code",
            "1 to 16 letters, digits or '-'",
        );
        let sized = |s: &str| !s.trim().is_empty() && s.trim().chars().count() <= 40;
        rule(sized(&self.name_zh), "name_zh", "required", "1 to 40 characters");
        rule(sized(&self.name_en), "name_en", "required", "1 to 40 characters");
        let kind = ShiftKind::parse(self.kind.trim());
        rule(kind.is_some(), "kind", "choice", "day, night, on-call or clinic");
        let (start, end) = (minutes(&self.start), minutes(&self.end));
        rule(start.is_some(), "start", "time", "a time HH:MM");
        rule(end.is_some(), "end", "time", "a time HH:MM");
        if let (Some(s), Some(e)) = (start, end) {
            rule(s != e, "end", "time-order", "a shift has a length: its end differs from its start");
            if kind == Some(ShiftKind::Clinic) {
                rule(e > s, "end", "time-order", "a clinic session ends the day it starts");
            }
        }
        let slot = self.slot_minutes.trim();
        let slot_minutes = match kind {
            Some(ShiftKind::Clinic) => match slot.parse::<u32>() {
                Ok(n) if (5..=240).contains(&n) => Some(i64::from(n)),
                _ => {
                    rule(false, "slot_minutes", "slot-length", "5 to 240 minutes for a clinic session");
                    None
                }
            },
            _ => {
                rule(slot.is_empty(), "slot_minutes", "clinic-only", "only a clinic session has Slots");
                None
            }
        };
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        let (Some(kind), Some(start), Some(end)) = (kind, start, end) else {
            return Err(invalid("kind", "choice", "day, night, on-call or clinic"));
        };
        Ok(ShiftType {
            campus: self.campus.trim().to_string(),
            code: code.to_string(),
            name_zh: self.name_zh.trim().to_string(),
            name_en: self.name_en.trim().to_string(),
            kind: kind.code().to_string(),
            start_minute: i64::from(start),
            end_minute: i64::from(end),
            slot_minutes,
        })
    }
}

/// A person of a department, as the roster lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The PractitionerRole in the department.
    pub role: String,
    pub practitioner: String,
    pub names: lianyi_clinical::names::Names,
}

/// A department's month: its people, the campus's shift types, and the shifts.
#[derive(Clone, Debug)]
pub struct Month {
    pub department: String,
    pub campus: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Every day of the month, `YYYY-MM-DD`.
    pub days: Vec<String>,
    pub members: Vec<Member>,
    pub types: Vec<ShiftType>,
    pub shifts: Vec<RosterShift>,
}

/// A department the caller may open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Department {
    pub id: String,
    pub names: lianyi_clinical::names::Names,
    pub campus: String,
    /// Whether the caller keeps its roster.
    pub may_keep: bool,
}

/// What placing a shift did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub id: i64,
    /// Slots made for a clinic session.
    pub slots: usize,
}

/// The rosters service.
#[derive(Clone, Debug)]
pub struct Rosters {
    pub(crate) fhir: FhirService,
    pub(crate) scheduling: Scheduling,
}

fn reference_id<'a>(v: &'a Value, prefix: &str) -> Option<&'a str> {
    v["reference"].as_str()?.strip_prefix(prefix)
}

impl Rosters {
    pub fn new(fhir: FhirService) -> Rosters {
        Rosters { scheduling: Scheduling::new(fhir.clone()), fhir }
    }

    pub(crate) async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), RosterError> {
        crate::common::audit(&self.fhir, caller, action, detail).await.map_err(RosterError::Audit)
    }

    pub(crate) fn may_read(caller: &Caller, campus: &str) -> Result<(), RosterError> {
        if crate::common::staff_at(caller, campus) {
            Ok(())
        } else {
            Err(RosterError::Forbidden("a campus's rosters are read by its staff"))
        }
    }

    /// Managers (and the platform) keep a campus's shift types and rules.
    pub(crate) fn may_keep_campus(caller: &Caller, campus: &str) -> Result<(), RosterError> {
        let head = caller.role() == Some("department-head");
        if caller.can(Capability::ManageRosters) && !head && caller.access().all_campuses().contains(campus) {
            Ok(())
        } else {
            Err(RosterError::Forbidden("a campus's shift types and rules are kept by its managers"))
        }
    }

    /// A department's head, or a manager of its campus, keeps its roster.
    pub(crate) async fn may_keep_department(
        &self,
        caller: &Caller,
        department: &str,
        campus: &str,
    ) -> Result<(), RosterError> {
        if !caller.can(Capability::ManageRosters) || !caller.access().all_campuses().contains(campus) {
            return Err(RosterError::Forbidden("a department's roster is kept by its head or the campus's managers"));
        }
        if caller.role() == Some("department-head")
            && !self.scheduling.own_departments(caller).await?.iter().any(|d| d == department)
        {
            return Err(RosterError::Forbidden("a department head keeps the roster of their own department"));
        }
        Ok(())
    }

    /// The departments of the campuses whose rosters the caller reads, by campus and
    /// name, each with whether the caller keeps its roster.
    pub async fn departments(&self, caller: &Caller) -> Result<Vec<Department>, RosterError> {
        let own = if caller.role() == Some("department-head") {
            self.scheduling.own_departments(caller).await?
        } else {
            Vec::new()
        };
        let t = ResourceType::parse("Organization").ok_or_else(|| RosterError::NotFound("type".into()))?;
        let mut out = Vec::new();
        for campus in self.fhir.campuses().await? {
            if Self::may_read(caller, &campus).is_err() {
                continue;
            }
            let params = vec![
                ("partof".to_string(), format!("Organization/{campus}")),
                ("_count".to_string(), "200".to_string()),
            ];
            let req = lianyi_fhir::search::parse_search(t, &params)
                .map_err(|i| invalid("department", "search", i.diagnostics))?;
            let page = self.fhir.search(&self.fhir.permit(caller, t).await?, &req).await?;
            let keeps_campus = caller.can(Capability::ManageRosters);
            let mut here: Vec<Department> = page
                .resources
                .iter()
                .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok().map(|b| (r.id.clone(), b)))
                .filter(|(_, b)| b["active"] != false)
                .map(|(id, b)| Department {
                    may_keep: keeps_campus && (caller.role() != Some("department-head") || own.contains(&id)),
                    names: lianyi_services::fhir::organization_names(&b),
                    campus: campus.clone(),
                    id,
                })
                .collect();
            here.sort_by(|a, b| a.names.en.cmp(&b.names.en));
            out.extend(here);
        }
        Ok(out)
    }

    /// Who writes a clinic session's Slots: the platform at the department's campus,
    /// for the person who changed the roster (a department head schedules; the
    /// registrars' Slot permissions are not theirs).
    fn slot_keeper(&self, caller: &Caller, campus: &str) -> Result<Caller, RosterError> {
        let campus = lianyi_security::CampusId::parse(campus)
            .map_err(|_| invalid("department", "department", "a department of a campus"))?;
        Ok(Caller::task_at(lianyi_security::SystemTask::Roster { by: caller.actor().to_string() }, campus))
    }

    /// The campus a department (Organization) is part of.
    pub(crate) async fn campus_of(&self, caller: &Caller, department: &str) -> Result<String, RosterError> {
        let org = self.read(caller, "Organization", department).await?;
        reference_id(&org["partOf"], "Organization/")
            .map(str::to_string)
            .ok_or_else(|| invalid("department", "department", "a department of a campus"))
    }

    async fn read(&self, caller: &Caller, t: &str, id: &str) -> Result<Value, RosterError> {
        let rt = ResourceType::parse(t).ok_or_else(|| RosterError::NotFound(t.to_string()))?;
        let r = self.fhir.reader(caller, rt).await?.read(id).await?;
        serde_json::from_str(&r.body).map_err(|_| RosterError::NotFound(format!("{t}/{id}")))
    }

    /// Adds or changes a campus's shift type.
    pub async fn put_type(&self, caller: &Caller, form: &ShiftTypeForm) -> Result<ShiftType, RosterError> {
        let t = form.check()?;
        Self::may_keep_campus(caller, &t.campus)?;
        self.fhir.operations().rosters().put_type(&t).await?;
        self.audit(caller, "roster-shift-type", format!("{} {} {}", t.campus, t.code, t.kind)).await?;
        Ok(t)
    }

    /// A campus's shift types.
    pub async fn types(&self, caller: &Caller, campus: &str) -> Result<Vec<ShiftType>, RosterError> {
        Self::may_read(caller, campus)?;
        Ok(self.fhir.operations().rosters().types(campus).await?)
    }

    /// A campus's roster rules (the defaults where it set none).
    pub async fn rules(&self, campus: &str) -> Result<Rules, RosterError> {
        Ok(match self.fhir.operations().rosters().rest_hours(campus).await? {
            Some(h) => Rules { rest_after_night_hours: u32::try_from(h).unwrap_or(0) },
            None => Rules::default(),
        })
    }

    /// Sets a campus's rest after a night or on-call shift (hours, 0 to 48).
    pub async fn set_rest(&self, caller: &Caller, campus: &str, hours: &str) -> Result<Rules, RosterError> {
        Self::may_keep_campus(caller, campus)?;
        let Some(h) = hours.trim().parse::<u32>().ok().filter(|h| *h <= 48) else {
            return Err(invalid("rest_after_night_hours", "range", "whole hours, 0 to 48"));
        };
        self.fhir.operations().rosters().set_rest_hours(campus, i64::from(h)).await?;
        self.audit(caller, "roster-rules", format!("{campus} rest after night {h} h")).await?;
        Ok(Rules { rest_after_night_hours: h })
    }

    /// Puts the person of PractitionerRole `role` on shift `shift` (a code of the
    /// department's campus) on `day`, unless it breaks the roster's rules (then
    /// nothing is saved and the conflicts are named). A clinic session makes the
    /// doctor's Slots for it.
    pub async fn assign(&self, caller: &Caller, role: &str, day: &str, shift: &str) -> Result<Placement, RosterError> {
        let Some(midnight) = local_midnight(day.trim()) else {
            return Err(invalid("day", "date", "a date YYYY-MM-DD"));
        };
        let r = self.read(caller, "PractitionerRole", role).await?;
        let department = reference_id(&r["organization"], "Organization/")
            .ok_or_else(|| invalid("role", "department", "a role in a department"))?
            .to_string();
        let practitioner = reference_id(&r["practitioner"], "Practitioner/")
            .ok_or_else(|| invalid("role", "practitioner", "a role of a person"))?
            .to_string();
        if r["active"] == false {
            return Err(invalid("role", "inactive", "the role is no longer active"));
        }
        let campus = self.campus_of(caller, &department).await?;
        self.may_keep_department(caller, &department, &campus).await?;
        let rosters = self.fhir.operations().rosters();
        let Some(t) = rosters.types(&campus).await?.into_iter().find(|t| t.code == shift.trim()) else {
            return Err(invalid("shift", "unknown", "not a shift type of the department's campus"));
        };
        let kind = ShiftKind::parse(&t.kind).unwrap_or(ShiftKind::Day);
        let placed = Placed {
            date: day.trim().to_string(),
            kind,
            start: u32::try_from(t.start_minute).unwrap_or(0),
            end: u32::try_from(t.end_minute).unwrap_or(0),
            department: department.clone(),
            campus: campus.clone(),
            shift: t.code.clone(),
        };
        let Some((starts_at, ends_at)) = placed.span() else {
            return Err(invalid("day", "date", "a date YYYY-MM-DD"));
        };
        let rules = self.rules(&campus).await?;
        let row = RosterShift {
            practitioner,
            role: role.to_string(),
            department: department.clone(),
            campus: campus.clone(),
            day: placed.date.clone(),
            shift: t.code.clone(),
            kind: t.kind.clone(),
            starts_at,
            ends_at,
            created_at: self.fhir.now_ms(),
            created_by: caller.actor().to_string(),
            ..Default::default()
        };
        // Every shift that could overlap or fall within the rest rule around it.
        let reach = i64::from(rules.rest_after_night_hours) * 3_600_000 + DAY_MS;
        let (from, to) = (midnight - reach, ends_at + reach);
        let added = rosters
            .add_checked(&row, from, to, |others| {
                let others: Vec<Placed> = others.iter().map(placed_of).collect();
                let found = conflicts(&placed, &others, rules);
                if found.is_empty() { Ok(()) } else { Err(found) }
            })
            .await?;
        let id = added.map_err(RosterError::Conflicts)?;
        let slots = match (kind, t.slot_minutes) {
            (ShiftKind::Clinic, Some(n)) => {
                let made = self
                    .scheduling
                    .session_slots(
                        &self.slot_keeper(caller, &campus)?,
                        role,
                        starts_at,
                        ends_at,
                        u32::try_from(n).unwrap_or(15),
                    )
                    .await;
                match made {
                    Ok(n) => n,
                    Err(e) => {
                        // No clinic session without its Slots.
                        rosters.remove(id).await?;
                        return Err(e.into());
                    }
                }
            }
            _ => 0,
        };
        self.audit(caller, "roster-assign", format!("{department} {} {} role {role}", row.day, row.shift)).await?;
        Ok(Placement { id, slots })
    }

    /// Takes a shift off the roster; a clinic session's Slots go with it, unless some
    /// are booked (then nothing changes).
    pub async fn remove(&self, caller: &Caller, id: i64) -> Result<(), RosterError> {
        let rosters = self.fhir.operations().rosters();
        let Some(s) = rosters.shift(id).await? else { return Err(RosterError::NotFound(format!("shift {id}"))) };
        self.may_keep_department(caller, &s.department, &s.campus).await?;
        if s.kind == ShiftKind::Clinic.code() {
            self.scheduling
                .withdraw_session_slots(&self.slot_keeper(caller, &s.campus)?, &s.role, s.starts_at, s.ends_at)
                .await?
                .map_err(RosterError::Booked)?;
        }
        rosters.remove(id).await?;
        self.audit(caller, "roster-remove", format!("{} {} {} role {}", s.department, s.day, s.shift, s.role)).await?;
        Ok(())
    }

    /// A department's roster for `month` (`YYYY-MM`).
    pub async fn month(&self, caller: &Caller, department: &str, month: &str) -> Result<Month, RosterError> {
        let first = format!("{}-01", month.trim());
        let Some(start) = local_midnight(&first).filter(|_| month.trim().len() == 7) else {
            return Err(invalid("month", "month", "a month YYYY-MM"));
        };
        let campus = self.campus_of(caller, department).await?;
        Self::may_read(caller, &campus)?;
        let days: Vec<String> =
            (0..31).map(|d| local_date(start + d * DAY_MS)).take_while(|d| d.starts_with(month.trim())).collect();
        let last = days.last().cloned().unwrap_or_else(|| first.clone());
        let members = self.members(caller, department).await?;
        let rosters = self.fhir.operations().rosters();
        Ok(Month {
            department: department.to_string(),
            campus: campus.clone(),
            month: month.trim().to_string(),
            types: rosters.types(&campus).await?,
            shifts: rosters.department(department, &first, &last).await?,
            members,
            days,
        })
    }

    /// The active roles of a department with their people's names.
    async fn members(&self, caller: &Caller, department: &str) -> Result<Vec<Member>, RosterError> {
        let params = vec![
            ("organization".to_string(), format!("Organization/{department}")),
            ("_include".to_string(), "PractitionerRole:practitioner".to_string()),
            ("_count".to_string(), "200".to_string()),
        ];
        let t = ResourceType::parse("PractitionerRole").ok_or_else(|| RosterError::NotFound("type".into()))?;
        let req = lianyi_fhir::search::parse_search(t, &params)
            .map_err(|i| invalid("department", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(caller, t).await?, &req).await?;
        let people: Vec<Value> = page.included.iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
        let mut out = Vec::new();
        for r in &page.resources {
            let Ok(b) = serde_json::from_str::<Value>(&r.body) else { continue };
            if b["active"] == false {
                continue;
            }
            let practitioner = reference_id(&b["practitioner"], "Practitioner/").unwrap_or_default().to_string();
            let names = people
                .iter()
                .find(|p| p["id"].as_str() == Some(practitioner.as_str()))
                .map(lianyi_clinical::names::of_practitioner)
                .unwrap_or_default();
            out.push(Member { role: r.id.clone(), practitioner, names });
        }
        out.sort_by(|a, b| a.names.en.cmp(&b.names.en).then_with(|| a.role.cmp(&b.role)));
        Ok(out)
    }
}

pub(crate) fn placed_of(s: &RosterShift) -> Placed {
    // The stored instants are the truth (a shift type changed later keeps the shift).
    let day = local_midnight(&s.day).unwrap_or(s.starts_at);
    let start = u32::try_from((s.starts_at - day) / 60_000).unwrap_or(0);
    let end = u32::try_from(((s.ends_at - day) / 60_000) % (24 * 60)).unwrap_or(0);
    Placed {
        date: s.day.clone(),
        kind: ShiftKind::parse(&s.kind).unwrap_or(ShiftKind::Day),
        start,
        end,
        department: s.department.clone(),
        campus: s.campus.clone(),
        shift: s.shift.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str, start: &str, end: &str, slot: &str) -> ShiftTypeForm {
        ShiftTypeForm {
            campus: "campus-east".into(),
            code: "N1".into(),
            name_zh: "夜班".into(),
            name_en: "Night".into(),
            kind: kind.into(),
            start: start.into(),
            end: end.into(),
            slot_minutes: slot.into(),
        }
    }

    #[test]
    fn a_shift_type_names_each_broken_field() {
        assert!(form("night", "17:30", "08:00", "").check().is_ok());
        let fields = |f: ShiftTypeForm| match f.check() {
            Err(RosterError::Invalid(es)) => es.iter().map(|e| e.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields(form("evening", "17:30", "8:00", "")), ["kind", "end"]);
        assert_eq!(fields(form("clinic", "14:00", "08:00", "15")), ["end"]);
        assert_eq!(fields(form("clinic", "08:00", "12:00", "")), ["slot_minutes"]);
        assert_eq!(fields(form("day", "08:00", "17:30", "15")), ["slot_minutes"]);
        assert_eq!(fields(form("day", "08:00", "08:00", "")), ["end"]);
        let t = form("clinic", "08:00", "11:30", "15").check().unwrap();
        assert_eq!((t.start_minute, t.end_minute, t.slot_minutes), (480, 690, Some(15)));
    }

    #[test]
    fn a_stored_shift_reads_back_as_placed() {
        let day = local_midnight("2027-01-04").unwrap();
        let s = RosterShift {
            day: "2027-01-04".into(),
            kind: "night".into(),
            starts_at: day + 1050 * 60_000,
            ends_at: day + (24 * 60 + 480) * 60_000,
            ..Default::default()
        };
        let p = placed_of(&s);
        assert_eq!((p.start, p.end, p.kind), (1050, 480, ShiftKind::Night));
        assert_eq!(p.span(), Some((s.starts_at, s.ends_at)));
    }
}
