//! Outpatient scheduling: weekly templates per doctor (a FHIR Schedule whose actor is
//! the doctor's PractitionerRole in a department of a campus) generate Slots; a
//! registrar books a Slot for a patient (an Appointment), cancels or reschedules it,
//! and checks the patient in on the day (the Appointment arrives and an Encounter with
//! the department's next queue number is opened); the department's queue lists the
//! day's arrived patients and the doctor calls the next one.
//!
//! Times are Beijing time (UTC+8), as the hospital's clocks are. A booking takes its
//! Slot with If-Match, so of two registrars booking the same Slot one wins and the
//! other is told the Slot was just taken.

use lianyi_fhir::ResourceType;
use lianyi_fhir::datetime::{format_instant, parse_range};
use lianyi_fhir::search::parse_search;
use lianyi_security::Caller;
use lianyi_services::FhirService;
use lianyi_services::fhir::ServiceError;
use lianyi_store::StoredResource;
use serde_json::{Value, json};

use crate::common::put;
use crate::names::Names;
use crate::registry::FieldError;

/// The extension of a Schedule holding one weekly session.
pub const SESSION_URL: &str = "urn:lianyi:fhir:weekly-session";
const SLOT_SYSTEM: &str = "urn:lianyi:sid:slot";
const OFFSET_MS: i64 = 8 * 3_600_000;
const DAY_MS: i64 = 86_400_000;
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A doctor who takes appointments in a department.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doctor {
    /// The PractitionerRole id.
    pub role: String,
    pub names: Names,
    /// Ids of the role's active Schedules.
    pub schedules: Vec<String>,
}

/// An appointment as the patient page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppointmentView {
    pub id: String,
    /// `YYYY-MM-DD HH:MM` as stored (the hospital's local time).
    pub start: String,
    /// `booked` or `arrived`.
    pub status: String,
    pub doctor: Names,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The Slot was booked by someone else meanwhile.
    #[error("the slot was just taken")]
    Taken,
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
}

fn invalid(field: &'static str, code: &'static str, detail: impl Into<String>) -> ScheduleError {
    ScheduleError::Invalid(vec![FieldError { field, code, detail: detail.into() }])
}

fn rtype(name: &str) -> Result<ResourceType, ScheduleError> {
    ResourceType::parse(name).ok_or_else(|| invalid("type", "type", format!("{name} is not supported")))
}

/// One weekly session: on `weekday` (1 Monday … 7 Sunday) from `start` to `end`
/// (`HH:MM`, Beijing time), slots of `slot_minutes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub weekday: u8,
    pub start: String,
    pub end: String,
    pub slot_minutes: u32,
}

fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.get(..5)?.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Session {
    pub fn check(&self) -> Result<(), ScheduleError> {
        if !(1..=7).contains(&self.weekday) {
            return Err(invalid("weekday", "weekday", "a weekday 1 (Monday) to 7 (Sunday)"));
        }
        let (Some(s), Some(e)) = (minutes(&self.start), minutes(&self.end)) else {
            return Err(invalid("start", "time", "times are HH:MM"));
        };
        if e <= s {
            return Err(invalid("end", "time-order", "the session must end after it starts"));
        }
        if !(5..=240).contains(&self.slot_minutes) || (e - s) < self.slot_minutes {
            return Err(invalid("slot_minutes", "slot-length", "5 to 240 minutes, and no longer than the session"));
        }
        Ok(())
    }

    fn extension(&self) -> Value {
        json!({"url": SESSION_URL, "extension": [
            {"url": "day", "valueCode": WEEKDAYS[usize::from(self.weekday - 1)]},
            {"url": "start", "valueTime": format!("{}:00", &self.start[..5])},
            {"url": "end", "valueTime": format!("{}:00", &self.end[..5])},
            {"url": "slotMinutes", "valueInteger": self.slot_minutes}]})
    }

    fn from_extension(e: &Value) -> Option<Session> {
        let part = |name: &str| e["extension"].as_array()?.iter().find(|x| x["url"] == name).cloned();
        let day = part("day")?["valueCode"].as_str()?.to_string();
        Some(Session {
            weekday: u8::try_from(WEEKDAYS.iter().position(|d| *d == day)? + 1).ok()?,
            start: part("start")?["valueTime"].as_str()?.get(..5)?.to_string(),
            end: part("end")?["valueTime"].as_str()?.get(..5)?.to_string(),
            slot_minutes: u32::try_from(part("slotMinutes")?["valueInteger"].as_u64()?).ok()?,
        })
    }
}

/// The sessions of a Schedule.
pub fn sessions_of(schedule: &Value) -> Vec<Session> {
    schedule["extension"]
        .as_array()
        .map(|xs| xs.iter().filter(|x| x["url"] == SESSION_URL).filter_map(Session::from_extension).collect())
        .unwrap_or_default()
}

/// Midnight (Beijing) of a `YYYY-MM-DD` date, in epoch ms (`None`: not a real date).
pub fn local_midnight(date: &str) -> Option<i64> {
    if date.len() != 10 {
        return None;
    }
    Some(parse_range(date)?.low - OFFSET_MS)
}

/// `YYYY-MM-DDTHH:MM:SS+08:00` of an epoch-ms instant.
/// What is wrong with a period of whole days from `from` to `to` (`YYYY-MM-DD`, both
/// included, Beijing) of at most `max_days`: (field, rule, detail) each, none when it
/// is good.
pub fn period_errors(from: &str, to: &str, max_days: i64) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    let (start, end) = (local_midnight(from), local_midnight(to));
    for (field, day) in [("from", start), ("to", end)] {
        if day.is_none() {
            out.push((field, "format", "a date as YYYY-MM-DD".to_string()));
        }
    }
    if let (Some(s), Some(e)) = (start, end)
        && (e < s || (e - s) / DAY_MS >= max_days)
    {
        out.push(("to", "period", format!("on or after the first day, at most {max_days} days")));
    }
    out
}

pub fn local_instant(ms: i64) -> String {
    format!("{}+08:00", &format_instant(ms + OFFSET_MS)[..19])
}

/// The Beijing date of an instant.
pub fn local_date(ms: i64) -> String {
    format_instant(ms + OFFSET_MS)[..10].to_string()
}

/// 1 (Monday) … 7 (Sunday) of a `YYYY-MM-DD` date.
pub fn weekday(date: &str) -> Option<u8> {
    let days = parse_range(date)?.low.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday.
    u8::try_from((days + 3).rem_euclid(7) + 1).ok()
}

/// The (start, end) instants of the slots the sessions make on the `days` days from
/// `from` (`YYYY-MM-DD`).
pub fn slot_times(sessions: &[Session], from: &str, days: u32) -> Vec<(i64, i64)> {
    let Some(first) = local_midnight(from) else { return Vec::new() };
    let mut out = Vec::new();
    for d in 0..i64::from(days) {
        let midnight = first + d * DAY_MS;
        let Some(wd) = weekday(&local_date(midnight)) else { continue };
        for s in sessions.iter().filter(|s| s.weekday == wd) {
            let (Some(a), Some(b)) = (minutes(&s.start), minutes(&s.end)) else { continue };
            let mut t = a;
            while t + s.slot_minutes <= b {
                let start = midnight + i64::from(t) * 60_000;
                out.push((start, start + i64::from(s.slot_minutes) * 60_000));
                t += s.slot_minutes;
            }
        }
    }
    out
}

/// A free Slot as pages show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeSlot {
    pub id: String,
    pub schedule: String,
    pub start: String,
    pub end: String,
}

/// One patient of a department's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub encounter: String,
    pub patient: String,
    pub number: u32,
    /// `arrived` (waiting) or `in-progress` (called).
    pub status: String,
    /// The Practitioner id of the doctor the patient was booked with.
    pub doctor: Option<String>,
}

/// One of today's appointments at the caller's campuses, as the registrar's worklist
/// shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayAppointment {
    pub id: String,
    /// `HH:MM`, the hospital's local time.
    pub time: String,
    /// `booked` (not yet come) or `arrived` (checked in).
    pub status: String,
    pub patient: String,
    pub patient_name: String,
    pub doctor: Names,
}

/// The rules of booking by patients themselves (the portal, a patient-bound token):
/// how far ahead, how close to the start, and how many missed appointments close
/// online booking. The desk books within the same one-slot-one-patient rule, and
/// may make exceptions to these (a walk-in, a patient who missed appointments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookingRules {
    /// A slot may be booked up to this many days ahead (the day itself counts as 0).
    pub window_days: u32,
    /// Online booking of a slot closes this many minutes before it starts.
    pub cutoff_minutes: u32,
    /// An appointment may be cancelled or moved online until this many minutes
    /// before it starts.
    pub cancel_cutoff_minutes: u32,
    /// This many missed appointments (booked, never checked in) …
    pub no_show_limit: u32,
    /// … within this many days close online booking (the desk still books).
    pub no_show_days: u32,
}

impl Default for BookingRules {
    fn default() -> Self {
        BookingRules {
            window_days: 14,
            cutoff_minutes: 30,
            cancel_cutoff_minutes: 120,
            no_show_limit: 3,
            no_show_days: 90,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Scheduling {
    fhir: FhirService,
    rules: BookingRules,
}

fn body(r: &StoredResource) -> Result<Value, ScheduleError> {
    crate::common::editable(r).map_err(|e| invalid("resource", "stored", e.to_string()))
}

/// A transaction refused because a resource changed since it was read (If-Match).
fn is_conflict(o: &lianyi_fhir::OperationOutcome) -> bool {
    o.issues.iter().any(|i| i.code == lianyi_fhir::IssueType::Conflict)
}

fn created_id(response: &Value, entry: usize) -> Option<String> {
    response["entry"][entry]["response"]["location"].as_str().and_then(|l| l.split('/').nth(1)).map(str::to_string)
}

impl Scheduling {
    pub fn new(fhir: FhirService) -> Scheduling {
        Scheduling { fhir, rules: BookingRules::default() }
    }

    /// Patients' own bookings follow these rules.
    pub fn with_rules(mut self, rules: BookingRules) -> Scheduling {
        self.rules = rules;
        self
    }

    pub fn rules(&self) -> BookingRules {
        self.rules
    }

    /// How many appointments the patient missed (booked and never checked in, their
    /// start passed; or marked no-show) within the rules' days.
    pub async fn no_shows(&self, caller: &Caller, patient: &str) -> Result<usize, ScheduleError> {
        let now = self.fhir.now_ms();
        let since = now - i64::from(self.rules.no_show_days) * DAY_MS;
        let rows = self
            .search(
                caller,
                "Appointment",
                &[
                    ("patient", format!("Patient/{patient}")),
                    ("status", "booked,noshow".into()),
                    ("date", format!("ge{}", local_instant(since))),
                    ("date", format!("lt{}", local_instant(now))),
                    ("_count", "200".into()),
                ],
            )
            .await?;
        Ok(rows.len())
    }

    /// The self-service rules for booking a slot starting at `start` (ms): within the
    /// window, not past its cut-off, and the patient under the no-show limit.
    async fn self_service_booking(&self, caller: &Caller, patient: &str, start: i64) -> Result<(), ScheduleError> {
        let now = self.fhir.now_ms();
        let r = self.rules;
        if start <= now {
            return Err(invalid("slot", "past", "this slot has already started"));
        }
        let today = local_midnight(&local_date(now)).unwrap_or(now);
        if start >= today + (i64::from(r.window_days) + 1) * DAY_MS {
            return Err(invalid(
                "slot",
                "beyond-window",
                format!("slots can be booked at most {} days ahead", r.window_days),
            ));
        }
        if start - now <= i64::from(r.cutoff_minutes) * 60_000 {
            return Err(invalid(
                "slot",
                "cut-off",
                format!("online booking closes {} minutes before the start; please ask at the desk", r.cutoff_minutes),
            ));
        }
        let missed = self.no_shows(caller, patient).await?;
        if r.no_show_limit > 0 && missed >= r.no_show_limit as usize {
            return Err(invalid(
                "patient",
                "no-show-limit",
                format!(
                    "{missed} missed appointments in {} days: online booking is closed; please book at the desk",
                    r.no_show_days
                ),
            ));
        }
        Ok(())
    }

    /// The self-service rule for cancelling or moving an appointment starting at
    /// `start` (a patient-bound caller; the desk is not held to it).
    pub fn check_change(&self, caller: &Caller, start: &str) -> Result<(), ScheduleError> {
        if caller.access().patient().is_none() {
            return Ok(());
        }
        let Some(start) = lianyi_fhir::datetime::parse_range(start).map(|r| r.low) else { return Ok(()) };
        if start - self.fhir.now_ms() <= i64::from(self.rules.cancel_cutoff_minutes) * 60_000 {
            return Err(invalid(
                "appointment",
                "cut-off",
                format!(
                    "an appointment can be cancelled or moved online until {} minutes before it; please ask at the desk",
                    self.rules.cancel_cutoff_minutes
                ),
            ));
        }
        Ok(())
    }

    pub fn today(&self) -> String {
        local_date(self.fhir.now_ms())
    }

    async fn read(&self, caller: &Caller, t: &str, id: &str) -> Result<StoredResource, ScheduleError> {
        Ok(self.fhir.reader(caller, rtype(t)?).await?.read(id).await?)
    }

    async fn search(
        &self,
        caller: &Caller,
        t: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<StoredResource>, ScheduleError> {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let req = parse_search(rtype(t)?, &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
        Ok(self.fhir.search(&self.fhir.permit(caller, req.resource_type).await?, &req).await?.resources)
    }

    /// Sets the weekly template of a doctor's role (PractitionerRole) and returns the
    /// Schedule's id; an existing template of that role is replaced.
    pub async fn set_template(
        &self,
        caller: &Caller,
        role: &str,
        sessions: &[Session],
    ) -> Result<String, ScheduleError> {
        for s in sessions {
            s.check()?;
        }
        let r = self.read(caller, "PractitionerRole", role).await?;
        let rb = body(&r)?;
        let mut actors = vec![json!({"reference": format!("PractitionerRole/{role}")})];
        if let Some(p) = rb["practitioner"]["reference"].as_str() {
            actors.push(json!({"reference": p}));
        }
        let mut schedule = json!({"resourceType": "Schedule", "active": true,
            "identifier": [{"system": "urn:lianyi:sid:schedule", "value": role}],
            "actor": actors,
            "comment": rb["organization"]["reference"].as_str().unwrap_or_default(),
            "extension": sessions.iter().map(Session::extension).collect::<Vec<_>>()});
        if sessions.is_empty() {
            // No weekly sessions: the roster's clinic sessions make its Slots.
            schedule.as_object_mut().map(|o| o.remove("extension"));
        }
        let w = self
            .fhir
            .update_where(caller, rtype("Schedule")?, &format!("identifier=urn:lianyi:sid:schedule|{role}"), schedule)
            .await?;
        Ok(w.id)
    }

    /// Makes the Slots of a Schedule's template for `days` days from `from`; Slots that
    /// already exist are kept. Returns how many were made.
    pub async fn generate_slots(
        &self,
        caller: &Caller,
        schedule: &str,
        from: &str,
        days: u32,
    ) -> Result<usize, ScheduleError> {
        if local_midnight(from).is_none() {
            return Err(invalid("from", "date", "a date YYYY-MM-DD"));
        }
        let s = self.read(caller, "Schedule", schedule).await?;
        let sessions = sessions_of(&body(&s)?);
        let times = slot_times(&sessions, from, days.min(62));
        self.make_slots(caller, schedule, &times).await
    }

    /// Makes free Slots of `schedule` at `times` (start, end); Slots that already exist
    /// are kept. Returns how many were made.
    async fn make_slots(&self, caller: &Caller, schedule: &str, times: &[(i64, i64)]) -> Result<usize, ScheduleError> {
        let entries: Vec<Value> = times
            .iter()
            .map(|(a, b)| {
                let key = format!("{schedule}-{}", &local_instant(*a)[..16].replace(['-', ':', 'T'], ""));
                json!({"resource": {"resourceType": "Slot", "schedule": {"reference": format!("Schedule/{schedule}")},
                                    "identifier": [{"system": SLOT_SYSTEM, "value": key}],
                                    "status": "free", "start": local_instant(*a), "end": local_instant(*b)},
                       "request": {"method": "POST", "url": "Slot", "ifNoneExist": format!("identifier={SLOT_SYSTEM}|{key}")}})
            })
            .collect();
        if entries.is_empty() {
            return Ok(0);
        }
        let response = self
            .fhir
            .process_bundle(caller, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        let made = response["entry"].as_array().map_or(0, |es| {
            es.iter().filter(|e| e["response"]["status"].as_str().is_some_and(|s| s.starts_with("201"))).count()
        });
        Ok(made)
    }

    /// The Schedule of a doctor's role; one is made (active, with no weekly sessions)
    /// when the role has none, for the roster's clinic sessions to fill.
    pub async fn schedule_of_role(&self, caller: &Caller, role: &str) -> Result<String, ScheduleError> {
        let found =
            self.search(caller, "Schedule", &[("identifier", format!("urn:lianyi:sid:schedule|{role}"))]).await?;
        match found.first() {
            Some(s) => Ok(s.id.clone()),
            None => self.set_template(caller, role, &[]).await,
        }
    }

    /// Makes the Slots of one clinic session of a doctor's role (a roster's clinic
    /// shift) from `start` to `end` (instants), `slot_minutes` each; Slots that already
    /// exist are kept. Returns how many were made.
    pub async fn session_slots(
        &self,
        caller: &Caller,
        role: &str,
        start: i64,
        end: i64,
        slot_minutes: u32,
    ) -> Result<usize, ScheduleError> {
        if !(5..=240).contains(&slot_minutes) {
            return Err(invalid("slot_minutes", "slot-length", "5 to 240 minutes"));
        }
        let schedule = self.schedule_of_role(caller, role).await?;
        let step = i64::from(slot_minutes) * 60_000;
        let times: Vec<(i64, i64)> =
            (0..).map(|i| start + i * step).take_while(|t| t + step <= end).map(|t| (t, t + step)).collect();
        self.make_slots(caller, &schedule, &times).await
    }

    /// Withdraws the Slots of a doctor's role from `start` to `end` (a clinic session
    /// taken off the roster): `Ok(n)` when all were free and are gone, `Err(n)` (and
    /// nothing changed) when `n` of them are booked.
    pub async fn withdraw_session_slots(
        &self,
        caller: &Caller,
        role: &str,
        start: i64,
        end: i64,
    ) -> Result<Result<usize, usize>, ScheduleError> {
        let found =
            self.search(caller, "Schedule", &[("identifier", format!("urn:lianyi:sid:schedule|{role}"))]).await?;
        let Some(schedule) = found.first() else { return Ok(Ok(0)) };
        let slots = self
            .search(
                caller,
                "Slot",
                &[
                    ("schedule", format!("Schedule/{}", schedule.id)),
                    ("start", format!("ge{}", local_instant(start))),
                    ("start", format!("lt{}", local_instant(end))),
                    ("_count", "500".into()),
                ],
            )
            .await?;
        let booked = slots.iter().filter(|s| body(s).map(|b| b["status"] != "free").unwrap_or(true)).count();
        if booked > 0 {
            return Ok(Err(booked));
        }
        let permit = self.fhir.permit::<lianyi_security::permit::Delete>(caller, rtype("Slot")?).await?;
        for s in &slots {
            self.fhir.delete(&permit, &s.id, Some(s.version)).await?;
        }
        Ok(Ok(slots.len()))
    }

    /// A search with its `_include`d resources, parsed.
    async fn search_with_included(
        &self,
        caller: &Caller,
        t: &str,
        params: &[(&str, String)],
    ) -> Result<(Vec<Value>, Vec<Value>), ScheduleError> {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let req = parse_search(rtype(t)?, &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(caller, req.resource_type).await?, &req).await?;
        let parse = |rs: &[StoredResource]| rs.iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
        Ok((parse(&page.resources), parse(&page.included)))
    }

    /// The doctors of a department who have an active Schedule, with their names and
    /// Schedules, for booking.
    pub async fn doctors(&self, caller: &Caller, department: &str) -> Result<Vec<Doctor>, ScheduleError> {
        let (roles, practitioners) = self
            .search_with_included(
                caller,
                "PractitionerRole",
                &[
                    ("organization", format!("Organization/{department}")),
                    ("_include", "PractitionerRole:practitioner".into()),
                    ("_count", "100".into()),
                ],
            )
            .await?;
        let mut out = Vec::new();
        for role in &roles {
            let Some(role_id) = role["id"].as_str() else { continue };
            let reference = role["practitioner"]["reference"].as_str().unwrap_or_default();
            let names = practitioners
                .iter()
                .find(|p| reference.strip_prefix("Practitioner/") == p["id"].as_str())
                .map(crate::names::of_practitioner)
                .unwrap_or_default();
            let schedules: Vec<String> = self
                .search(
                    caller,
                    "Schedule",
                    &[("actor", format!("PractitionerRole/{role_id}")), ("active", "true".into())],
                )
                .await?
                .into_iter()
                .map(|s| s.id)
                .collect();
            if !schedules.is_empty() {
                out.push(Doctor { role: role_id.to_string(), names, schedules });
            }
        }
        Ok(out)
    }

    /// A patient's booked and arrived appointments with their doctors, by start.
    pub async fn appointments_of(&self, caller: &Caller, patient: &str) -> Result<Vec<AppointmentView>, ScheduleError> {
        let (appointments, practitioners) = self
            .search_with_included(
                caller,
                "Appointment",
                &[
                    ("patient", format!("Patient/{patient}")),
                    ("status", "booked,arrived".into()),
                    ("_include", "Appointment:practitioner".into()),
                    ("_count", "50".into()),
                ],
            )
            .await?;
        let mut out: Vec<AppointmentView> = appointments
            .iter()
            .map(|a| {
                let doctor = a["participant"]
                    .as_array()
                    .and_then(|ps| {
                        ps.iter().find_map(|p| p["actor"]["reference"].as_str()?.strip_prefix("Practitioner/"))
                    })
                    .and_then(|id| practitioners.iter().find(|p| p["id"] == id))
                    .map(crate::names::of_practitioner)
                    .unwrap_or_default();
                let start = a["start"].as_str().unwrap_or_default();
                AppointmentView {
                    id: a["id"].as_str().unwrap_or_default().to_string(),
                    start: format!("{} {}", start.get(..10).unwrap_or_default(), start.get(11..16).unwrap_or_default()),
                    status: a["status"].as_str().unwrap_or_default().to_string(),
                    doctor,
                }
            })
            .collect();
        out.sort_by(|a, b| a.start.cmp(&b.start));
        Ok(out)
    }

    /// The free Slots of the given Schedules on a day, by start time.
    pub async fn free_slots(
        &self,
        caller: &Caller,
        schedules: &[String],
        date: &str,
    ) -> Result<Vec<FreeSlot>, ScheduleError> {
        let Some(midnight) = local_midnight(date) else { return Err(invalid("date", "date", "a date YYYY-MM-DD")) };
        let mut out = Vec::new();
        for sched in schedules {
            let rows = self
                .search(
                    caller,
                    "Slot",
                    &[
                        ("schedule", format!("Schedule/{sched}")),
                        ("status", "free".into()),
                        ("start", format!("ge{}", local_instant(midnight))),
                        ("start", format!("lt{}", local_instant(midnight + DAY_MS))),
                        ("_count", "200".into()),
                    ],
                )
                .await?;
            for r in rows {
                let b = body(&r)?;
                out.push(FreeSlot {
                    id: r.id.clone(),
                    schedule: sched.clone(),
                    start: b["start"].as_str().unwrap_or_default().to_string(),
                    end: b["end"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Books a free Slot for a patient; returns the Appointment's id.
    pub async fn book(&self, caller: &Caller, slot: &str, patient: &str) -> Result<String, ScheduleError> {
        let s = self.read(caller, "Slot", slot).await?;
        self.read(caller, "Patient", patient).await?;
        let mut sb = body(&s)?;
        if sb["status"] != "free" {
            return Err(ScheduleError::Taken);
        }
        if caller.access().patient().is_some() {
            let start = sb["start"].as_str().and_then(lianyi_fhir::datetime::parse_range).map(|r| r.low);
            self.self_service_booking(caller, patient, start.unwrap_or_default()).await?;
        }
        let sched_ref = sb["schedule"]["reference"].as_str().unwrap_or_default().to_string();
        let sched_id = sched_ref.strip_prefix("Schedule/").unwrap_or_default();
        // A Schedule is in the patient compartment (its actor may be a patient), so a
        // patient booking for themselves does not reach a doctor's: the platform reads
        // it for them (directory data, audited as the portal's).
        let sched = if caller.access().patient().is_some() {
            body(&self.read(&Caller::task(lianyi_security::SystemTask::Portal), "Schedule", sched_id).await?)?
        } else {
            body(&self.read(caller, "Schedule", sched_id).await?)?
        };
        let mut participants =
            vec![json!({"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"})];
        for a in sched["actor"].as_array().cloned().unwrap_or_default() {
            participants.push(json!({"actor": a, "status": "accepted"}));
        }
        let appointment = json!({"resourceType": "Appointment", "status": "booked",
            "slot": [{"reference": format!("Slot/{slot}")}],
            "start": sb["start"], "end": sb["end"], "created": &local_instant(self.fhir.now_ms())[..10],
            "participant": participants});
        sb["status"] = json!("busy");
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            put(sb, &s),
            {"resource": appointment, "request": {"method": "POST", "url": "Appointment"}}]});
        let response = match self.fhir.process_bundle(caller, bundle, true).await {
            Ok(r) => r,
            Err(ServiceError::Invalid(o)) if is_conflict(&o) => {
                return Err(ScheduleError::Taken);
            }
            Err(e) => return Err(e.into()),
        };
        created_id(&response, 1).ok_or_else(|| invalid("slot", "booking", "the appointment was not created"))
    }

    /// Cancels a booked Appointment; its Slot is free again.
    pub async fn cancel(&self, caller: &Caller, appointment: &str, reason: &str) -> Result<(), ScheduleError> {
        let a = self.read(caller, "Appointment", appointment).await?;
        let mut ab = body(&a)?;
        if ab["status"] != "booked" {
            return Err(invalid("appointment", "not-booked", "only a booked appointment can be cancelled"));
        }
        self.check_change(caller, ab["start"].as_str().unwrap_or_default())?;
        ab["status"] = json!("cancelled");
        if !reason.trim().is_empty() {
            ab["cancelationReason"] = json!({"text": reason.trim()});
        }
        let mut entries = vec![put(ab.clone(), &a)];
        if let Some(slot) = ab["slot"][0]["reference"].as_str().and_then(|r| r.strip_prefix("Slot/")) {
            let s = self.read(caller, "Slot", slot).await?;
            let mut sb = body(&s)?;
            sb["status"] = json!("free");
            entries.push(put(sb, &s));
        }
        self.fhir
            .process_bundle(caller, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), true)
            .await?;
        Ok(())
    }

    /// Moves a booked Appointment to another free Slot (the old one is freed).
    pub async fn reschedule(&self, caller: &Caller, appointment: &str, slot: &str) -> Result<String, ScheduleError> {
        let a = body(&self.read(caller, "Appointment", appointment).await?)?;
        if caller.access().patient().is_some() {
            if a["status"] != "booked" {
                return Err(invalid("appointment", "not-booked", "only a booked appointment can be moved"));
            }
            self.check_change(caller, a["start"].as_str().unwrap_or_default())?;
        }
        let patient = a["participant"]
            .as_array()
            .and_then(|ps| {
                ps.iter().find_map(|p| p["actor"]["reference"].as_str()?.strip_prefix("Patient/").map(str::to_string))
            })
            .ok_or_else(|| invalid("appointment", "no-patient", "the appointment names no patient"))?;
        let new = self.book(caller, slot, &patient).await?;
        self.cancel(caller, appointment, "rescheduled").await?;
        Ok(new)
    }

    /// Checks the patient of a booked Appointment in: the Appointment arrives and an
    /// Encounter opens with the department's next queue number. Returns the Encounter.
    pub async fn check_in(&self, caller: &Caller, appointment: &str) -> Result<(String, u32), ScheduleError> {
        let a = self.read(caller, "Appointment", appointment).await?;
        let mut ab = body(&a)?;
        if ab["status"] != "booked" {
            return Err(invalid("appointment", "not-booked", "only a booked appointment can be checked in"));
        }
        let today = self.today();
        let day = ab["start"].as_str().and_then(|s| s.get(..10)).unwrap_or_default();
        if day != today {
            return Err(invalid(
                "appointment",
                "not-today",
                format!("check-in is on the day of the appointment ({day}), not {today}"),
            ));
        }
        let actor = |prefix: &str| {
            ab["participant"].as_array().and_then(|ps| {
                ps.iter().find_map(|p| {
                    p["actor"]["reference"].as_str().filter(|r| r.starts_with(prefix)).map(str::to_string)
                })
            })
        };
        let patient = actor("Patient/").ok_or_else(|| invalid("appointment", "no-patient", "no patient"))?;
        let role = actor("PractitionerRole/");
        let practitioner = actor("Practitioner/");
        let dept = match &role {
            Some(r) => {
                let rb =
                    body(&self.read(caller, "PractitionerRole", r.trim_start_matches("PractitionerRole/")).await?)?;
                rb["organization"]["reference"].as_str().map(str::to_string)
            }
            None => None,
        }
        .ok_or_else(|| invalid("appointment", "no-department", "the appointment's doctor has no department"))?;
        let number = self.fhir.operations().next_counter(&format!("queue:{dept}:{today}"), 1).await?;
        let number = u32::try_from(number).unwrap_or(u32::MAX);
        let now = local_instant(self.fhir.now_ms());
        let mut encounter = json!({"resourceType": "Encounter", "status": "arrived",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
            "identifier": [{"system": format!("urn:lianyi:sid:queue:{}:{today}", dept.trim_start_matches("Organization/")), "value": number.to_string()}],
            "subject": {"reference": patient},
            "appointment": [{"reference": format!("Appointment/{appointment}")}],
            "period": {"start": now},
            "serviceProvider": {"reference": dept}});
        if let Some(p) = practitioner {
            encounter["participant"] = json!([{"individual": {"reference": p}}]);
        }
        ab["status"] = json!("arrived");
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            put(ab, &a),
            {"resource": encounter, "request": {"method": "POST", "url": "Encounter"}}]});
        let response = self.fhir.process_bundle(caller, bundle, true).await?;
        let id = created_id(&response, 1).ok_or_else(|| invalid("appointment", "check-in", "no encounter"))?;
        Ok((id, number))
    }

    /// Today's queue of a department (an Organization id): waiting and called
    /// patients by queue number.
    pub async fn queue(&self, caller: &Caller, dept: &str) -> Result<Vec<QueueEntry>, ScheduleError> {
        let today = self.today();
        let midnight = local_midnight(&today).unwrap_or_default();
        let rows = self
            .search(
                caller,
                "Encounter",
                &[
                    ("service-provider", format!("Organization/{dept}")),
                    ("status", "arrived,in-progress".into()),
                    ("date", format!("ge{}", local_instant(midnight))),
                    ("date", format!("lt{}", local_instant(midnight + DAY_MS))),
                    ("_count", "500".into()),
                ],
            )
            .await?;
        let system = format!("urn:lianyi:sid:queue:{dept}:{today}");
        let mut out: Vec<QueueEntry> = rows
            .iter()
            .filter_map(|r| {
                let b: Value = serde_json::from_str(&r.body).ok()?;
                let number = b["identifier"]
                    .as_array()?
                    .iter()
                    .find(|i| i["system"] == system.as_str())
                    .and_then(|i| i["value"].as_str()?.parse().ok())?;
                let doctor = b["participant"].as_array().and_then(|ps| {
                    ps.iter().find_map(|p| p["individual"]["reference"].as_str()?.strip_prefix("Practitioner/"))
                });
                Some(QueueEntry {
                    encounter: r.id.clone(),
                    patient: b["subject"]["reference"].as_str()?.trim_start_matches("Patient/").to_string(),
                    number,
                    status: b["status"].as_str()?.to_string(),
                    doctor: doctor.map(str::to_string),
                })
            })
            .collect();
        out.sort_by_key(|e| e.number);
        Ok(out)
    }

    /// The departments (Organization ids) where the signed-in user works: the
    /// PractitionerRoles of the Practitioner that carries the user's name as an
    /// identifier (`urn:lianyi:sid:user|<username>`). Empty for a user without one.
    pub async fn own_departments(&self, caller: &Caller) -> Result<Vec<String>, ScheduleError> {
        let mut out = Vec::new();
        for p in self.own_practitioners(caller).await? {
            let roles =
                self.search(caller, "PractitionerRole", &[("practitioner", format!("Practitioner/{p}"))]).await?;
            for r in roles {
                let b: Value = serde_json::from_str(&r.body).unwrap_or_default();
                if b["active"] != false
                    && let Some(org) =
                        b["organization"]["reference"].as_str().and_then(|o| o.strip_prefix("Organization/"))
                    && !out.iter().any(|d| d == org)
                {
                    out.push(org.to_string());
                }
            }
        }
        Ok(out)
    }

    /// The ids of the Practitioners that carry the user's name as an identifier
    /// (`urn:lianyi:sid:user|<username>`); none for a user without one.
    pub async fn own_practitioners(&self, caller: &Caller) -> Result<Vec<String>, ScheduleError> {
        let Some(user) = crate::orders::username(caller) else { return Ok(Vec::new()) };
        let people = self
            .search(caller, "Practitioner", &[("identifier", format!("{}|{user}", crate::orders::USER_SYSTEM))])
            .await?;
        Ok(people.into_iter().map(|p| p.id).collect())
    }

    /// Today's booked and checked-in appointments the caller may see (a registrar's
    /// campus), by time, with patients' and doctors' names.
    pub async fn day_appointments(&self, caller: &Caller) -> Result<Vec<DayAppointment>, ScheduleError> {
        let today = self.today();
        let midnight = local_midnight(&today).unwrap_or_default();
        let (appointments, included) = self
            .search_with_included(
                caller,
                "Appointment",
                &[
                    ("date", format!("ge{}", local_instant(midnight))),
                    ("date", format!("lt{}", local_instant(midnight + DAY_MS))),
                    ("status", "booked,arrived".into()),
                    ("_include", "Appointment:patient".into()),
                    ("_include", "Appointment:practitioner".into()),
                    ("_count", "500".into()),
                ],
            )
            .await?;
        let find = |t: &str, reference: Option<&str>| {
            let id = reference?.strip_prefix(t)?.strip_prefix('/')?;
            included.iter().find(|r| r["resourceType"] == t && r["id"] == id)
        };
        let mut out: Vec<DayAppointment> = appointments
            .iter()
            .map(|a| {
                let actor = |prefix: &str| {
                    a["participant"].as_array().and_then(|ps| {
                        ps.iter().find_map(|p| p["actor"]["reference"].as_str().filter(|r| r.starts_with(prefix)))
                    })
                };
                let patient = actor("Patient/");
                DayAppointment {
                    id: a["id"].as_str().unwrap_or_default().to_string(),
                    time: a["start"].as_str().and_then(|s| s.get(11..16)).unwrap_or_default().to_string(),
                    status: a["status"].as_str().unwrap_or_default().to_string(),
                    patient: patient.map(|p| p.trim_start_matches("Patient/").to_string()).unwrap_or_default(),
                    patient_name: find("Patient", patient)
                        .map(|p| crate::registry::person_of(p).name)
                        .unwrap_or_default(),
                    doctor: find("Practitioner", actor("Practitioner/"))
                        .map(crate::names::of_practitioner)
                        .unwrap_or_default(),
                }
            })
            .collect();
        // A patient of another campus who booked here (on the portal) is named from
        // the patient index, as the desk finds them group-wide (audited as its read).
        for a in out.iter_mut().filter(|a| a.patient_name.is_empty() && !a.patient.is_empty()) {
            a.patient_name = crate::registry::name_in_index(&self.fhir, caller, &a.patient).await.unwrap_or_default();
        }
        out.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Calls the next waiting patient of a department: the Encounter is in progress,
    /// its wait since check-in kept in its status history.
    /// `None` when nobody is waiting.
    pub async fn call_next(&self, caller: &Caller, dept: &str) -> Result<Option<QueueEntry>, ScheduleError> {
        for mut next in self.queue(caller, dept).await?.into_iter().filter(|e| e.status == "arrived") {
            let e = self.read(caller, "Encounter", &next.encounter).await?;
            let mut eb = body(&e)?;
            eb["status"] = json!("in-progress");
            // The wait from check-in to the call, for the dashboards.
            let waited = json!({"status": "arrived", "period": {"start": eb["period"]["start"].clone(),
                "end": local_instant(self.fhir.now_ms())}});
            let mut history = eb["statusHistory"].as_array().cloned().unwrap_or_default();
            history.push(waited);
            eb["statusHistory"] = Value::Array(history);
            let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [put(eb, &e)]});
            match self.fhir.process_bundle(caller, bundle, true).await {
                Ok(_) => {
                    next.status = "in-progress".into();
                    return Ok(Some(next));
                }
                // Called by a colleague a moment ago: the next one.
                Err(ServiceError::Invalid(o)) if is_conflict(&o) => {
                    continue;
                }
                Err(other) => return Err(other.into()),
            }
        }
        Ok(None)
    }

    /// Ends a visit in progress: the Encounter is finished, with the time it ended.
    /// Returns the department, for going back to its queue.
    pub async fn finish(&self, caller: &Caller, encounter: &str) -> Result<String, ScheduleError> {
        let e = self.read(caller, "Encounter", encounter).await?;
        let mut eb = body(&e)?;
        if eb["status"] != "in-progress" {
            return Err(invalid("encounter", "not-in-progress", "only a visit in progress can be ended"));
        }
        eb["status"] = json!("finished");
        eb["period"]["end"] = json!(local_instant(self.fhir.now_ms()));
        let dept = eb["serviceProvider"]["reference"].as_str().unwrap_or_default().trim_start_matches("Organization/");
        let dept = dept.to_string();
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [put(eb, &e)]});
        self.fhir.process_bundle(caller, bundle, true).await?;
        Ok(dept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(weekday: u8, start: &str, end: &str, m: u32) -> Session {
        Session { weekday, start: start.into(), end: end.into(), slot_minutes: m }
    }

    #[test]
    fn weekdays_and_local_times() {
        assert_eq!(weekday("2026-11-23"), Some(1), "a Monday");
        assert_eq!(weekday("2026-11-22"), Some(7), "a Sunday");
        assert_eq!(weekday("2024-02-29"), Some(4));
        assert_eq!(local_instant(local_midnight("2026-11-23").unwrap() + 8 * 3_600_000), "2026-11-23T08:00:00+08:00");
        assert_eq!(local_date(local_midnight("2026-11-23").unwrap() + DAY_MS - 1), "2026-11-23");
    }

    #[test]
    fn templates_make_slots_on_their_weekdays() {
        let sessions = [session(1, "08:00", "09:00", 15), session(3, "14:00", "15:00", 30)];
        // Sunday 22nd to Saturday 28th November 2026: Monday 4 slots, Wednesday 2.
        let times = slot_times(&sessions, "2026-11-22", 7);
        let starts: Vec<String> = times.iter().map(|(a, _)| local_instant(*a)).collect();
        assert_eq!(
            starts,
            vec![
                "2026-11-23T08:00:00+08:00",
                "2026-11-23T08:15:00+08:00",
                "2026-11-23T08:30:00+08:00",
                "2026-11-23T08:45:00+08:00",
                "2026-11-25T14:00:00+08:00",
                "2026-11-25T14:30:00+08:00"
            ]
        );
        assert_eq!(local_instant(times[0].1), "2026-11-23T08:15:00+08:00");
        assert!(slot_times(&sessions, "2026-11-26", 3).is_empty(), "Thursday to Saturday: none");
    }

    #[test]
    fn sessions_round_trip_and_are_checked() {
        let s = session(5, "08:00", "11:30", 20);
        assert_eq!(Session::from_extension(&s.extension()), Some(s.clone()));
        assert_eq!(sessions_of(&json!({"extension": [s.extension()]})), vec![s]);
        assert!(session(8, "08:00", "09:00", 15).check().is_err());
        assert!(session(1, "09:00", "08:00", 15).check().is_err());
        assert!(session(1, "08:00", "08:10", 15).check().is_err());
        assert!(session(1, "8:00", "09:00", 15).check().is_err());
        assert!(session(1, "08:00", "12:00", 15).check().is_ok());
    }
}
