//! Booking from the portal: any campus's departments and doctors (with the doctor's
//! title and specialty), their free slots within the booking window, and booking,
//! cancelling or moving an appointment under the desk's rules
//! ([`lianyi_clinical::scheduling::BookingRules`]: one slot one patient, the window,
//! the cut-offs, the no-show limit). An appointment belongs to the campus of the
//! doctor's department, so that campus's desk sees it on its day list. On the day,
//! the patient sees whether they are checked in and how many are before them.

use std::collections::HashMap;

use lianyi_clinical::names::{Names, of_practitioner};
use lianyi_clinical::scheduling::{BookingRules, Scheduling, local_date, local_instant, local_midnight};
use lianyi_security::{Caller, CampusId, SystemTask};
use lianyi_services::FhirService;
use lianyi_services::fhir::organization_names;
use serde_json::Value;

use crate::common::{count, patient_of, read, ref_id, search};
use crate::{PortalError, invalid};

const DAY_MS: i64 = 86_400_000;

/// Who reads doctors' Schedules for a patient: a Schedule is in the patient
/// compartment (its actor may be a patient), so a patient's own caller does not reach
/// a doctor's. The platform reads them (directory data; audited as the portal's).
fn directory() -> Caller {
    Caller::task(SystemTask::Portal)
}

/// A department that takes appointments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Department {
    pub id: String,
    pub names: Names,
    pub campus: String,
    pub campus_names: Names,
    /// Doctors with a schedule in it.
    pub doctors: usize,
}

/// A doctor who takes appointments, as patients choose them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doctor {
    /// The PractitionerRole id.
    pub role: String,
    pub names: Names,
    /// The professional title (职称), empty when none is recorded.
    pub title: Names,
    /// The role's specialty, empty when none is recorded.
    pub specialty: Names,
    pub department: String,
    pub department_names: Names,
    pub campus: String,
    pub campus_names: Names,
    pub schedules: Vec<String>,
}

/// A slot a patient may book now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSlot {
    pub id: String,
    /// `HH:MM`, local time.
    pub time: String,
}

/// One day's open slots of a doctor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub slots: Vec<OpenSlot>,
}

/// Where a checked-in patient stands in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStanding {
    pub number: u32,
    /// Waiting patients with a lower number.
    pub ahead: usize,
    /// The doctor has called them.
    pub called: bool,
}

/// One of the patient's appointments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MyAppointment {
    pub id: String,
    /// `YYYY-MM-DD HH:MM`, local time.
    pub start: String,
    /// `booked`, `arrived` (checked in), `fulfilled` or `cancelled`.
    pub status: String,
    pub doctor: Names,
    /// The doctor's PractitionerRole id (to move to another of their slots).
    pub role: String,
    pub department: Names,
    pub campus_names: Names,
    /// Still movable or cancellable online (booked, and before the cut-off).
    pub changeable: bool,
    pub queue: Option<QueueStanding>,
}

fn title_names(practitioner: &Value) -> Names {
    let q = practitioner["qualification"].as_array().and_then(|qs| {
        qs.iter().find(|q| {
            q["code"]["coding"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["system"] == lianyi_clinical::names::TITLE_SYSTEM))
        })
    });
    match q {
        Some(q) => {
            let zh = q["code"]["text"].as_str().unwrap_or_default().to_string();
            let en = q["code"]["coding"][0]["display"].as_str().unwrap_or_default().to_string();
            Names { zh: if zh.is_empty() { en.clone() } else { zh }, en }
        }
        None => Names::default(),
    }
}

fn specialty_names(role: &Value) -> Names {
    let s = &role["specialty"][0];
    let zh = s["text"].as_str().or_else(|| s["coding"][0]["display"].as_str()).unwrap_or_default();
    let en = s["coding"][0]["display"].as_str().unwrap_or(zh);
    Names { zh: zh.to_string(), en: en.to_string() }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Booking {
    fhir: FhirService,
    scheduling: Scheduling,
    registry: lianyi_clinical::registry::Registry,
    /// The departments that take appointments, and when they were read.
    directory: std::sync::Arc<std::sync::Mutex<Option<Kept>>>,
}

/// The directory of departments, and when it was read (ms).
type Kept = (i64, Vec<Department>);

/// How long the directory of departments is kept: it changes rarely (a new doctor's
/// schedule shows within this), and every patient's booking page starts from it.
const DIRECTORY_MS: i64 = 60_000;

impl Booking {
    pub fn new(fhir: FhirService, scheduling: Scheduling) -> Booking {
        Booking {
            registry: lianyi_clinical::registry::Registry::new(fhir.clone()),
            fhir,
            scheduling,
            directory: Default::default(),
        }
    }

    pub fn rules(&self) -> BookingRules {
        self.scheduling.rules()
    }

    pub(crate) fn fhir(&self) -> &FhirService {
        &self.fhir
    }

    async fn campus_names(&self, cache: &mut HashMap<String, Names>, campus: &str) -> Names {
        if let Some(n) = cache.get(campus) {
            return n.clone();
        }
        let n = self.fhir.campus_names(campus).await.unwrap_or_default();
        cache.insert(campus.to_string(), n.clone());
        n
    }

    /// Departments (Organizations) by id, with the campus each is part of.
    async fn organizations(&self, caller: &Caller, ids: &[String]) -> Result<Vec<Value>, PortalError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (found, _) =
            search(&self.fhir, caller, "Organization", &[("_id", ids.join(",")), ("_count", "500".into())]).await?;
        Ok(found.into_iter().map(|(_, v)| v).collect())
    }

    /// Every department of every campus where a doctor takes appointments, by campus
    /// and name.
    pub async fn departments(&self, caller: &Caller) -> Result<Vec<Department>, PortalError> {
        patient_of(caller)?;
        let now = self.fhir.now_ms();
        if let Ok(kept) = self.directory.lock()
            && let Some((at, list)) = kept.as_ref()
            && (0..DIRECTORY_MS).contains(&(now - at))
        {
            return Ok(list.clone());
        }
        let list = self.directory_now().await?;
        if let Ok(mut kept) = self.directory.lock() {
            *kept = Some((now, list.clone()));
        }
        Ok(list)
    }

    /// The departments that take appointments, read now (directory data, by the
    /// platform: the same for every patient).
    async fn directory_now(&self) -> Result<Vec<Department>, PortalError> {
        let platform = directory();
        let (schedules, _) =
            search(&self.fhir, &directory(), "Schedule", &[("active", "true".into()), ("_count", "1000".into())])
                .await?;
        let mut doctors: HashMap<String, usize> = HashMap::new();
        for (_, s) in &schedules {
            if let Some(org) = s["comment"].as_str().and_then(|c| c.strip_prefix("Organization/")) {
                *doctors.entry(org.to_string()).or_default() += 1;
            }
        }
        let ids: Vec<String> = doctors.keys().cloned().collect();
        let mut campuses = HashMap::new();
        let mut out = Vec::new();
        for org in self.organizations(&platform, &ids).await? {
            let (Some(id), Some(campus)) = (org["id"].as_str(), ref_id(&org["partOf"], "Organization")) else {
                continue;
            };
            out.push(Department {
                id: id.to_string(),
                names: organization_names(&org),
                campus: campus.to_string(),
                campus_names: self.campus_names(&mut campuses, campus).await,
                doctors: doctors.get(id).copied().unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| a.campus.cmp(&b.campus).then_with(|| a.names.zh.cmp(&b.names.zh)));
        Ok(out)
    }

    /// The doctors of the given PractitionerRoles who have an active schedule.
    async fn doctors_of_roles(
        &self,
        caller: &Caller,
        roles: Vec<Value>,
        people: &[Value],
    ) -> Result<Vec<Doctor>, PortalError> {
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<String> =
            roles.iter().filter_map(|r| r["id"].as_str()).map(|id| format!("PractitionerRole/{id}")).collect();
        let (schedules, _) = search(
            &self.fhir,
            &directory(),
            "Schedule",
            &[("actor", refs.join(",")), ("active", "true".into()), ("_count", "500".into())],
        )
        .await?;
        let orgs: Vec<String> = roles
            .iter()
            .filter_map(|r| ref_id(&r["organization"], "Organization").map(str::to_string))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let orgs = self.organizations(caller, &orgs).await?;
        let mut campuses = HashMap::new();
        let mut out = Vec::new();
        for role in &roles {
            let Some(role_id) = role["id"].as_str() else { continue };
            let mine = format!("PractitionerRole/{role_id}");
            let own: Vec<String> = schedules
                .iter()
                .filter(|(_, s)| {
                    s["actor"].as_array().is_some_and(|a| a.iter().any(|x| x["reference"] == mine.as_str()))
                })
                .map(|(r, _)| r.id.clone())
                .collect();
            if own.is_empty() {
                continue;
            }
            let person =
                ref_id(&role["practitioner"], "Practitioner").and_then(|id| people.iter().find(|p| p["id"] == id));
            let dept_id = ref_id(&role["organization"], "Organization").unwrap_or_default();
            let dept = orgs.iter().find(|o| o["id"] == dept_id);
            let campus = dept.and_then(|d| ref_id(&d["partOf"], "Organization")).unwrap_or_default().to_string();
            out.push(Doctor {
                role: role_id.to_string(),
                names: person.map(of_practitioner).unwrap_or_default(),
                title: person.map(title_names).unwrap_or_default(),
                specialty: specialty_names(role),
                department: dept_id.to_string(),
                department_names: dept.map(organization_names).unwrap_or_default(),
                campus_names: self.campus_names(&mut campuses, &campus).await,
                campus,
                schedules: own,
            });
        }
        Ok(out)
    }

    /// The doctors of a department who take appointments.
    pub async fn doctors(&self, caller: &Caller, department: &str) -> Result<Vec<Doctor>, PortalError> {
        patient_of(caller)?;
        let (roles, people) = search(
            &self.fhir,
            caller,
            "PractitionerRole",
            &[
                ("organization", format!("Organization/{department}")),
                ("active", "true".into()),
                ("_include", "PractitionerRole:practitioner".into()),
                ("_count", "200".into()),
            ],
        )
        .await?;
        let mut out = self.doctors_of_roles(caller, roles.into_iter().map(|(_, v)| v).collect(), &people).await?;
        out.sort_by(|a, b| a.names.en.cmp(&b.names.en));
        Ok(out)
    }

    /// Departments and doctors whose names hold `text` (characters or pinyin).
    pub async fn find(&self, caller: &Caller, text: &str) -> Result<(Vec<Department>, Vec<Doctor>), PortalError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let lower = text.to_lowercase();
        let departments: Vec<Department> = self
            .departments(caller)
            .await?
            .into_iter()
            .filter(|d| d.names.zh.contains(text) || d.names.en.to_lowercase().contains(&lower))
            .collect();
        let (people, _) =
            search(&self.fhir, caller, "Practitioner", &[("name", text.to_string()), ("_count", "50".into())]).await?;
        if people.is_empty() {
            return Ok((departments, Vec::new()));
        }
        let refs: Vec<String> = people.iter().map(|(r, _)| format!("Practitioner/{}", r.id)).collect();
        let (roles, _) = search(
            &self.fhir,
            caller,
            "PractitionerRole",
            &[("practitioner", refs.join(",")), ("active", "true".into()), ("_count", "200".into())],
        )
        .await?;
        let people: Vec<Value> = people.into_iter().map(|(_, v)| v).collect();
        let doctors = self.doctors_of_roles(caller, roles.into_iter().map(|(_, v)| v).collect(), &people).await?;
        Ok((departments, doctors))
    }

    /// A doctor (by PractitionerRole) and their open slots, day by day, within the
    /// booking window and before the online cut-off.
    pub async fn doctor(&self, caller: &Caller, role: &str) -> Result<(Doctor, Vec<Day>), PortalError> {
        patient_of(caller)?;
        let (roles, people) = search(
            &self.fhir,
            caller,
            "PractitionerRole",
            &[("_id", role.to_string()), ("_include", "PractitionerRole:practitioner".into())],
        )
        .await?;
        let doctor = self
            .doctors_of_roles(caller, roles.into_iter().map(|(_, v)| v).collect(), &people)
            .await?
            .into_iter()
            .next()
            .ok_or(PortalError::NotFound)?;
        let rules = self.rules();
        let now = self.fhir.now_ms();
        let first = now + i64::from(rules.cutoff_minutes) * 60_000;
        let today = local_midnight(&local_date(now)).unwrap_or(now);
        let end = today + (i64::from(rules.window_days) + 1) * DAY_MS;
        let mut slots: Vec<(String, String)> = Vec::new();
        for schedule in &doctor.schedules {
            let (found, _) = search(
                &self.fhir,
                caller,
                "Slot",
                &[
                    ("schedule", format!("Schedule/{schedule}")),
                    ("status", "free".into()),
                    ("start", format!("gt{}", local_instant(first))),
                    ("start", format!("lt{}", local_instant(end))),
                    ("_count", "1000".into()),
                ],
            )
            .await?;
            slots.extend(found.into_iter().map(|(r, v)| (v["start"].as_str().unwrap_or_default().to_string(), r.id)));
        }
        slots.sort();
        let mut days: Vec<Day> = Vec::new();
        for (start, id) in slots {
            let (Some(date), Some(time)) = (start.get(..10), start.get(11..16)) else { continue };
            match days.last_mut() {
                Some(d) if d.date == date => d.slots.push(OpenSlot { id, time: time.to_string() }),
                _ => days.push(Day { date: date.to_string(), slots: vec![OpenSlot { id, time: time.to_string() }] }),
            }
        }
        Ok((doctor, days))
    }

    /// The campus a Slot's appointment belongs to: its doctor's department's campus.
    async fn campus_of_slot(&self, caller: &Caller, slot: &str) -> Result<CampusId, PortalError> {
        let (_, s) =
            read(&self.fhir, caller, "Slot", slot).await?.ok_or_else(|| invalid("slot", "unknown", "no such slot"))?;
        let schedule = ref_id(&s["schedule"], "Schedule").unwrap_or_default().to_string();
        let (_, sched) = read(&self.fhir, &directory(), "Schedule", &schedule)
            .await?
            .ok_or_else(|| invalid("slot", "unknown", "no schedule"))?;
        let dept = sched["comment"].as_str().and_then(|c| c.strip_prefix("Organization/")).unwrap_or_default();
        let (_, org) = read(&self.fhir, caller, "Organization", dept)
            .await?
            .ok_or_else(|| invalid("slot", "unknown", "no department"))?;
        let campus = ref_id(&org["partOf"], "Organization").unwrap_or_default();
        CampusId::parse(campus).map_err(|_| invalid("slot", "unknown", "the slot's department has no campus"))
    }

    fn booking_caller(caller: &Caller, campus: &CampusId) -> Result<Caller, PortalError> {
        caller
            .self_service(campus)
            .ok_or_else(|| PortalError::Forbidden("the portal books for a patient's own account".into()))
    }

    /// Books a slot for the caller's patient; returns the Appointment id.
    pub async fn book(&self, caller: &Caller, slot: &str) -> Result<String, PortalError> {
        let patient = patient_of(caller)?.to_string();
        let campus = self.campus_of_slot(caller, slot).await?;
        let booking = Self::booking_caller(caller, &campus)?;
        let id = self.scheduling.book(&booking, slot, &patient).await?;
        self.register_at(&patient, &campus).await;
        Ok(id)
    }

    /// Registers the patient at the campus they booked (a campus MRN on their one
    /// record), as its desk would on arrival: that campus's staff then read the record
    /// they will treat. Done by the platform for the patient; a failure leaves the
    /// booking standing (the desk registers on arrival) and is logged.
    async fn register_at(&self, patient: &str, campus: &CampusId) {
        let platform = Caller::task_at(SystemTask::Portal, campus.clone());
        if let Err(e) = self.registry.register_here(&platform, patient, campus).await {
            tracing::warn!(error = %e, campus = campus.as_str(), "registering a portal booking's patient at its campus failed");
        }
    }

    /// The caller's own appointment (its campus); `NotFound` for anyone else's.
    async fn own_appointment(&self, caller: &Caller, appointment: &str) -> Result<(CampusId, Value), PortalError> {
        let (r, a) = read(&self.fhir, caller, "Appointment", appointment).await?.ok_or(PortalError::NotFound)?;
        let campus = r.campus.as_deref().unwrap_or_default();
        Ok((CampusId::parse(campus).map_err(|_| PortalError::NotFound)?, a))
    }

    /// Cancels one of the caller's appointments, before the cut-off.
    pub async fn cancel(&self, caller: &Caller, appointment: &str) -> Result<(), PortalError> {
        patient_of(caller)?;
        let (campus, _) = self.own_appointment(caller, appointment).await?;
        let booking = Self::booking_caller(caller, &campus)?;
        Ok(self.scheduling.cancel(&booking, appointment, "cancelled by the patient online").await?)
    }

    /// Moves one of the caller's appointments to another slot (of any doctor);
    /// returns the new Appointment id. The new slot is booked first: when it cannot
    /// be, the old appointment stands.
    pub async fn reschedule(&self, caller: &Caller, appointment: &str, slot: &str) -> Result<String, PortalError> {
        let patient = patient_of(caller)?.to_string();
        let (old_campus, a) = self.own_appointment(caller, appointment).await?;
        if a["status"] != "booked" {
            return Err(invalid("appointment", "not-booked", "only a booked appointment can be moved"));
        }
        let old = Self::booking_caller(caller, &old_campus)?;
        // The old appointment's cut-off first, so a refused move changes nothing.
        self.scheduling.check_change(&old, a["start"].as_str().unwrap_or_default())?;
        let campus = self.campus_of_slot(caller, slot).await?;
        let new = self.scheduling.book(&Self::booking_caller(caller, &campus)?, slot, &patient).await?;
        self.register_at(&patient, &campus).await;
        self.scheduling.cancel(&old, appointment, "rescheduled by the patient online").await?;
        Ok(new)
    }

    /// The caller's appointments from today on (and the last 30 days'), by start,
    /// with the queue on the day.
    pub async fn appointments(&self, caller: &Caller) -> Result<Vec<MyAppointment>, PortalError> {
        let patient = patient_of(caller)?.to_string();
        let now = self.fhir.now_ms();
        let today = local_date(now);
        let since = local_midnight(&today).unwrap_or(now) - 30 * DAY_MS;
        let (found, included) = search(
            &self.fhir,
            caller,
            "Appointment",
            &[
                ("patient", format!("Patient/{patient}")),
                ("date", format!("ge{}", local_instant(since))),
                ("_include", "Appointment:practitioner".into()),
                ("_sort", "date".into()),
                ("_count", "100".into()),
            ],
        )
        .await?;
        let roles: Vec<String> = found
            .iter()
            .flat_map(|(_, a)| a["participant"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| ref_id(&p["actor"], "PractitionerRole").map(str::to_string))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let (role_rows, _) = if roles.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            search(&self.fhir, caller, "PractitionerRole", &[("_id", roles.join(",")), ("_count", "200".into())])
                .await?
        };
        let orgs: Vec<String> = role_rows
            .iter()
            .filter_map(|(_, r)| ref_id(&r["organization"], "Organization").map(str::to_string))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let orgs = self.organizations(caller, &orgs).await?;
        let cutoff = now + i64::from(self.rules().cancel_cutoff_minutes) * 60_000;
        let mut campuses = HashMap::new();
        let mut out = Vec::new();
        for (r, a) in &found {
            let actor = |prefix: &str| {
                a["participant"]
                    .as_array()
                    .and_then(|ps| ps.iter().find_map(|p| ref_id(&p["actor"], prefix).map(str::to_string)))
            };
            let role_id = actor("PractitionerRole").unwrap_or_default();
            let role = role_rows.iter().find(|(r, _)| r.id == role_id).map(|(_, v)| v);
            let dept = role
                .and_then(|r| ref_id(&r["organization"], "Organization"))
                .and_then(|id| orgs.iter().find(|o| o["id"] == id));
            let campus = dept.and_then(|d| ref_id(&d["partOf"], "Organization")).unwrap_or_default().to_string();
            let start = a["start"].as_str().unwrap_or_default();
            let starts = lianyi_fhir::datetime::parse_range(start).map(|x| x.low).unwrap_or_default();
            let status = a["status"].as_str().unwrap_or_default().to_string();
            let queue = if status == "arrived" && start.get(..10) == Some(today.as_str()) {
                self.queue_standing(caller, &r.id).await?
            } else {
                None
            };
            out.push(MyAppointment {
                id: r.id.clone(),
                start: format!("{} {}", start.get(..10).unwrap_or_default(), start.get(11..16).unwrap_or_default()),
                changeable: status == "booked" && starts > cutoff,
                status,
                doctor: actor("Practitioner")
                    .and_then(|id| included.iter().find(|p| p["id"] == id.as_str()))
                    .map(of_practitioner)
                    .unwrap_or_default(),
                role: role_id,
                department: dept.map(organization_names).unwrap_or_default(),
                campus_names: self.campus_names(&mut campuses, &campus).await,
                queue,
            });
        }
        Ok(out)
    }

    /// A checked-in appointment's place in its department's queue today: its own
    /// visit (read as the patient), and how many waiting visits have a lower number
    /// (counted by the platform, no one else's record shown).
    async fn queue_standing(&self, caller: &Caller, appointment: &str) -> Result<Option<QueueStanding>, PortalError> {
        let (visits, _) = search(
            &self.fhir,
            caller,
            "Encounter",
            &[("appointment", format!("Appointment/{appointment}")), ("_count", "1".into())],
        )
        .await?;
        let Some((_, visit)) = visits.into_iter().next() else { return Ok(None) };
        let Some(dept) = ref_id(&visit["serviceProvider"], "Organization") else { return Ok(None) };
        let today = local_date(self.fhir.now_ms());
        let system = format!("urn:lianyi:sid:queue:{dept}:{today}");
        let number = visit["identifier"]
            .as_array()
            .and_then(|ids| ids.iter().find(|i| i["system"] == system.as_str()))
            .and_then(|i| i["value"].as_str())
            .and_then(|v| v.parse::<u32>().ok());
        let Some(number) = number else { return Ok(None) };
        let called = visit["status"] != "arrived";
        let checked_in = visit["period"]["start"].as_str().unwrap_or_default().to_string();
        let ahead = if called || checked_in.is_empty() {
            0
        } else {
            // Numbers follow check-in order: those waiting who checked in earlier.
            let midnight = local_midnight(&today).unwrap_or_default();
            let portal = Caller::task(SystemTask::Portal);
            count(
                &self.fhir,
                &portal,
                "Encounter",
                &[
                    ("service-provider", format!("Organization/{dept}")),
                    ("status", "arrived".into()),
                    ("date", format!("ge{}", local_instant(midnight))),
                    ("date", format!("lt{checked_in}")),
                ],
            )
            .await? as usize
        };
        Ok(Some(QueueStanding { number, ahead, called }))
    }
}
