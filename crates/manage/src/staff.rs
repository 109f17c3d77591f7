//! Staff (人事): the departments of every campus as one tree, each person of a
//! department with their position and professional title (职称), the campuses they
//! are registered to practise at, and their licences and practising certificates with
//! expiry reminders. A person is their FHIR Practitioner (one person, one record): the
//! staff record hangs off it, and a title set here is written to the Practitioner's
//! qualification too, so the expert clinics and charges that read it follow.
//!
//! Human-resources staff ([`Capability::KeepStaff`]) keep it; staff of a campus read
//! its tree and people. Every change is audited.

use lianyi_clinical::names::{Names, TITLE_SYSTEM};
use lianyi_clinical::scheduling::local_date;
use lianyi_fhir::ResourceType;
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::StoreError;
use lianyi_store::staff::{Licence, StaffRecord};
use serde_json::{Value, json};

pub use lianyi_clinical::registry::FieldError;

use crate::equipment::{Due, days_between, due};

/// Days ahead a licence's expiry is reminded.
pub const LICENCE_REMINDER_DAYS: i64 = 60;

/// Professional titles (职称): code, Chinese, English, series.
pub const TITLES: [(&str, &str, &str, &str); 14] = [
    ("resident", "医师", "Physician", "medical"),
    ("attending", "主治医师", "Attending physician", "medical"),
    ("associate-chief", "副主任医师", "Associate chief physician", "medical"),
    ("chief", "主任医师", "Chief physician", "medical"),
    ("nurse", "护士", "Nurse", "nursing"),
    ("senior-nurse", "护师", "Senior nurse", "nursing"),
    ("supervisor-nurse", "主管护师", "Supervisor nurse", "nursing"),
    ("associate-chief-nurse", "副主任护师", "Associate chief nurse", "nursing"),
    ("chief-nurse", "主任护师", "Chief nurse", "nursing"),
    ("technician", "技士", "Technician", "technical"),
    ("senior-technician", "技师", "Senior technician", "technical"),
    ("supervisor-technician", "主管技师", "Supervisor technician", "technical"),
    ("associate-chief-technician", "副主任技师", "Associate chief technician", "technical"),
    ("chief-technician", "主任技师", "Chief technician", "technical"),
];

/// Licence kinds: code, Chinese, English, whether it expires.
pub const LICENCES: [(&str, &str, &str, bool); 6] = [
    ("physician-qualification", "医师资格证书", "Physician qualification", false),
    ("physician-practising", "医师执业证书", "Physician practising certificate", true),
    ("nurse-practising", "护士执业证书", "Nurse practising certificate", true),
    ("pharmacist-registration", "执业药师注册证", "Licensed pharmacist registration", true),
    ("radiation-work", "放射工作人员证", "Radiation worker certificate", true),
    ("equipment-operator", "大型医用设备上岗证", "Large medical equipment operator certificate", true),
];

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Service(#[from] lianyi_services::fhir::ServiceError),
    #[error(transparent)]
    Store(StoreError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
}

impl From<StoreError> for StaffError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(msg) => {
                let detail = msg.split_once(": ").map_or(msg.as_str(), |(_, d)| d).to_string();
                StaffError::Invalid(vec![FieldError { field: "number", code: "taken", detail }])
            }
            other => StaffError::Store(other),
        }
    }
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> StaffError {
    StaffError::Invalid(vec![FieldError { field, code: rule, detail: detail.into() }])
}

/// A licence's state on `today`: expired, expiring within the reminder window, or
/// good (`None` for one that does not expire).
pub fn licence_due(l: &Licence, today: &str) -> Option<Due> {
    due(l.expires_on.as_deref()?, today, LICENCE_REMINDER_DAYS)
}

/// A licence as the form gives it.
#[derive(Clone, Debug, Default)]
pub struct LicenceForm {
    pub kind: String,
    pub number: String,
    pub issuer: String,
    pub issued_on: String,
    pub expires_on: String,
}

impl LicenceForm {
    /// The licence of `practitioner`, or every broken rule by field (`today` bounds
    /// the issue date).
    pub fn check(&self, practitioner: &str, today: &str) -> Result<Licence, StaffError> {
        let mut errors = Vec::new();
        let mut rule = |ok: bool, field: &'static str, code: &'static str, detail: &str| {
            if !ok {
                errors.push(FieldError { field, code, detail: detail.to_string() });
            }
        };
        let kind = LICENCES.iter().find(|k| k.0 == self.kind.trim());
        rule(kind.is_some(), "kind", "choice", "one of the licence kinds");
        let number = self.number.trim();
        rule(
            !number.is_empty() && number.chars().count() <= 40 && !number.chars().any(char::is_whitespace),
            "number",
            "required",
            "1 to 40 characters, no spaces",
        );
        rule(self.issuer.trim().chars().count() <= 60, "issuer", "length", "at most 60 characters");
        let issued = self.issued_on.trim();
        rule(days_between(issued, today).is_some_and(|d| d >= 0), "issued_on", "date", "a date, today or before");
        let expires = self.expires_on.trim();
        if expires.is_empty() {
            rule(kind.is_none_or(|k| !k.3), "expires_on", "required", "this certificate expires: its expiry date");
        } else {
            rule(
                days_between(issued, expires).is_some_and(|d| d > 0) || days_between(issued, today).is_none(),
                "expires_on",
                "after-issue",
                "a date after the issue date",
            );
        }
        if !errors.is_empty() {
            return Err(StaffError::Invalid(errors));
        }
        Ok(Licence {
            practitioner: practitioner.to_string(),
            kind: self.kind.trim().to_string(),
            number: number.to_string(),
            issuer: Some(self.issuer.trim().to_string()).filter(|s| !s.is_empty()),
            issued_on: issued.to_string(),
            expires_on: Some(expires.to_string()).filter(|s| !s.is_empty()),
            ..Default::default()
        })
    }
}

/// A department of the tree.
#[derive(Clone, Debug)]
pub struct Unit {
    pub id: String,
    pub names: Names,
    /// People with an active role in it.
    pub people: usize,
    pub children: Vec<Unit>,
}

/// A campus and its departments.
#[derive(Clone, Debug)]
pub struct CampusTree {
    pub id: String,
    pub names: Names,
    pub departments: Vec<Unit>,
}

/// A person of a department.
#[derive(Clone, Debug)]
pub struct Person {
    pub practitioner: String,
    pub names: Names,
    /// The role's text (医生, 护士 …).
    pub role: String,
    pub title: Option<String>,
    /// The worst state of their licences.
    pub licences: Option<Due>,
    /// How records name them: `Practitioner/…`, this role's `PractitionerRole/…`, and
    /// `user:…` for each account their Practitioner carries.
    pub keys: Vec<String>,
}

/// One person with everything HR keeps.
#[derive(Clone, Debug)]
pub struct PersonView {
    pub practitioner: String,
    pub names: Names,
    /// The departments they hold a role in: (department id, role text).
    pub roles: Vec<(String, String)>,
    pub record: StaffRecord,
    pub licences: Vec<(Licence, Option<Due>)>,
}

/// The ways records name a person (see [`Person::keys`]).
fn person_keys(practitioner: &str, role: &str, person: &Value) -> Vec<String> {
    let mut keys = vec![format!("Practitioner/{practitioner}"), format!("PractitionerRole/{role}")];
    for i in person["identifier"].as_array().into_iter().flatten() {
        if let (true, Some(v)) = (i["system"] == lianyi_clinical::orders::USER_SYSTEM, i["value"].as_str()) {
            keys.push(format!("user:{v}"));
        }
    }
    keys
}

/// The staff service.
#[derive(Clone, Debug)]
pub struct StaffService {
    fhir: FhirService,
}

impl StaffService {
    pub fn new(fhir: FhirService) -> StaffService {
        StaffService { fhir }
    }

    fn today(&self) -> String {
        local_date(self.fhir.now_ms())
    }

    pub fn may_keep(caller: &Caller) -> bool {
        caller.can(Capability::KeepStaff)
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), StaffError> {
        crate::common::audit(&self.fhir, caller, action, detail).await.map_err(StaffError::Audit)
    }

    async fn search(
        &self,
        caller: &Caller,
        t: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<(String, Value)>, StaffError> {
        let rt = ResourceType::parse(t).ok_or_else(|| StaffError::NotFound(t.to_string()))?;
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let req =
            lianyi_fhir::search::parse_search(rt, &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(caller, rt).await?, &req).await?;
        // Matches and included resources alike (each knows its type).
        Ok(page
            .resources
            .iter()
            .chain(page.included.iter())
            .filter_map(|r| Some((r.id.clone(), serde_json::from_str(&r.body).ok()?)))
            .collect())
    }

    /// The group's directory for choosing someone: every department (id, names,
    /// campus) and every person (Practitioner id, names) the caller reads, at most 500
    /// of each, by campus and name.
    #[allow(clippy::type_complexity)]
    pub async fn directory(
        &self,
        caller: &Caller,
    ) -> Result<(Vec<(String, Names, String)>, Vec<(String, Names)>), StaffError> {
        let mut departments = Vec::new();
        for (id, v) in self.search(caller, "Organization", &[("type", "dept".into()), ("_count", "500".into())]).await?
        {
            let campus = v["partOf"]["reference"].as_str().and_then(|r| r.strip_prefix("Organization/"));
            departments.push((
                id,
                lianyi_services::fhir::organization_names(&v),
                campus.unwrap_or_default().to_string(),
            ));
        }
        departments.sort_by(|a, b| a.2.cmp(&b.2).then(a.1.zh.cmp(&b.1.zh)));
        let mut people: Vec<(String, Names)> = self
            .search(caller, "Practitioner", &[("_count", "500".into())])
            .await?
            .into_iter()
            .map(|(id, v)| (id, lianyi_clinical::names::of(&v)))
            .collect();
        people.sort_by(|a, b| a.1.zh.cmp(&b.1.zh));
        Ok((departments, people))
    }

    /// How many resources match (`_summary=count`).
    async fn count(&self, caller: &Caller, t: &str, params: &[(&str, String)]) -> Result<usize, StaffError> {
        let rt = ResourceType::parse(t).ok_or_else(|| StaffError::NotFound(t.to_string()))?;
        let mut params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        params.push(("_summary".into(), "count".into()));
        let req =
            lianyi_fhir::search::parse_search(rt, &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(caller, rt).await?, &req).await?;
        Ok(usize::try_from(page.total.unwrap_or(0)).unwrap_or(0))
    }

    /// The campuses the caller reads, each with its departments (and theirs) and how
    /// many people hold an active role in each.
    pub async fn tree(&self, caller: &Caller) -> Result<Vec<CampusTree>, StaffError> {
        if !caller.is_authenticated() || caller.access().patient().is_some() {
            return Err(StaffError::Forbidden("the staff tree is read by staff"));
        }
        let orgs = self.search(caller, "Organization", &[("_count", "1000".into())]).await?;
        let mut counts = std::collections::HashMap::new();
        for (id, _) in &orgs {
            let n = self
                .count(
                    caller,
                    "PractitionerRole",
                    &[("organization", format!("Organization/{id}")), ("active", "true".into())],
                )
                .await?;
            counts.insert(id.clone(), n);
        }
        let count = |id: &str| counts.get(id).copied().unwrap_or(0);
        let parent = |o: &Value| {
            o["partOf"]["reference"].as_str().and_then(|r| r.strip_prefix("Organization/")).map(str::to_string)
        };
        fn units(of: &str, orgs: &[(String, Value)], count: &dyn Fn(&str) -> usize, depth: usize) -> Vec<Unit> {
            let mut out: Vec<Unit> = orgs
                .iter()
                .filter(|(_, o)| {
                    o["partOf"]["reference"].as_str() == Some(&format!("Organization/{of}")) && o["active"] != false
                })
                .map(|(id, o)| Unit {
                    id: id.clone(),
                    names: lianyi_services::fhir::organization_names(o),
                    people: count(id),
                    children: if depth < 4 { units(id, orgs, count, depth + 1) } else { Vec::new() },
                })
                .collect();
            out.sort_by(|a, b| a.names.en.cmp(&b.names.en));
            out
        }
        let campuses = self.fhir.campuses().await?;
        Ok(orgs
            .iter()
            .filter(|(id, o)| {
                parent(o).is_none() && campuses.contains(id) && caller.access().all_campuses().contains(id)
            })
            .map(|(id, o)| CampusTree {
                id: id.clone(),
                names: lianyi_services::fhir::organization_names(o),
                departments: units(id, &orgs, &count, 0),
            })
            .collect())
    }

    /// The people of a department, by name, with their titles and licence state.
    pub async fn people(&self, caller: &Caller, department: &str) -> Result<Vec<Person>, StaffError> {
        let found = self
            .search(
                caller,
                "PractitionerRole",
                &[
                    ("organization", format!("Organization/{department}")),
                    ("active", "true".into()),
                    ("_include", "PractitionerRole:practitioner".into()),
                    ("_count", "500".into()),
                ],
            )
            .await?;
        let today = self.today();
        let store = self.fhir.operations().staff();
        let mut out = Vec::new();
        for (role_id, r) in found.iter().filter(|(_, r)| r["resourceType"] == "PractitionerRole") {
            let Some(p) = r["practitioner"]["reference"].as_str().and_then(|p| p.strip_prefix("Practitioner/")) else {
                continue;
            };
            let Some((_, person)) = found.iter().find(|(id, v)| id == p && v["resourceType"] == "Practitioner") else {
                continue;
            };
            let licences = store.licences(p).await?;
            let worst = licences.iter().filter_map(|l| licence_due(l, &today)).min_by_key(|d| match d {
                Due::Overdue(n) => -1_000_000 - n,
                Due::Soon(n) => *n,
                Due::Later => 1_000_000,
            });
            out.push(Person {
                practitioner: p.to_string(),
                names: lianyi_clinical::names::of(person),
                role: r["code"][0]["text"].as_str().unwrap_or_default().to_string(),
                title: lianyi_clinical::names::title_of(person).map(str::to_string),
                licences: worst,
                keys: person_keys(p, role_id, person),
            });
        }
        out.sort_by(|a, b| a.names.en.cmp(&b.names.en));
        Ok(out)
    }

    async fn practitioner(&self, caller: &Caller, id: &str) -> Result<(Value, i64), StaffError> {
        let rt = ResourceType::parse("Practitioner").ok_or_else(|| StaffError::NotFound("Practitioner".into()))?;
        let r = self.fhir.reader(caller, rt).await?.read(id).await?;
        let v = serde_json::from_str(&r.body).map_err(|_| StaffError::NotFound(format!("Practitioner/{id}")))?;
        Ok((v, r.version))
    }

    /// One person: names, departments, staff record and licences.
    pub async fn person(&self, caller: &Caller, id: &str) -> Result<PersonView, StaffError> {
        let (p, _) = self.practitioner(caller, id).await?;
        let roles = self
            .search(
                caller,
                "PractitionerRole",
                &[("practitioner", format!("Practitioner/{id}")), ("active", "true".into())],
            )
            .await?
            .into_iter()
            .filter_map(|(_, r)| {
                let org = r["organization"]["reference"].as_str()?.strip_prefix("Organization/")?.to_string();
                Some((org, r["code"][0]["text"].as_str().unwrap_or_default().to_string()))
            })
            .collect();
        let store = self.fhir.operations().staff();
        let record = store.record(id).await?.unwrap_or_else(|| StaffRecord {
            practitioner: id.to_string(),
            title: lianyi_clinical::names::title_of(&p).map(str::to_string),
            ..Default::default()
        });
        let today = self.today();
        let licences = store
            .licences(id)
            .await?
            .into_iter()
            .map(|l| {
                let d = licence_due(&l, &today);
                (l, d)
            })
            .collect();
        Ok(PersonView { practitioner: id.to_string(), names: lianyi_clinical::names::of(&p), roles, record, licences })
    }

    /// Sets a person's position, title (with the day conferred) and practising
    /// campuses; the title is written to their Practitioner's qualification as well.
    pub async fn set_record(
        &self,
        caller: &Caller,
        id: &str,
        position: &str,
        title: &str,
        since: &str,
        campuses: &[String],
    ) -> Result<StaffRecord, StaffError> {
        if !Self::may_keep(caller) {
            return Err(StaffError::Forbidden("staff records are kept by human resources"));
        }
        let mut errors = Vec::new();
        let title_row = TITLES.iter().find(|t| t.0 == title.trim());
        if !title.trim().is_empty() && title_row.is_none() {
            errors.push(FieldError { field: "title", code: "choice", detail: "one of the professional titles".into() });
        }
        let today = self.today();
        if !since.trim().is_empty() && days_between(since.trim(), &today).is_none_or(|d| d < 0) {
            errors.push(FieldError { field: "title_since", code: "date", detail: "a date, today or before".into() });
        }
        if position.trim().chars().count() > 40 {
            errors.push(FieldError { field: "position", code: "length", detail: "at most 40 characters".into() });
        }
        let known = self.fhir.campuses().await?;
        if campuses.iter().any(|c| !known.contains(c)) {
            errors.push(FieldError { field: "campuses", code: "choice", detail: "campuses of the group".into() });
        }
        if !errors.is_empty() {
            return Err(StaffError::Invalid(errors));
        }
        let (mut p, version) = self.practitioner(caller, id).await?;
        let record = StaffRecord {
            practitioner: id.to_string(),
            position: Some(position.trim().to_string()).filter(|s| !s.is_empty()),
            title: title_row.map(|t| t.0.to_string()),
            title_since: Some(since.trim().to_string()).filter(|s| !s.is_empty()),
            campuses: campuses.to_vec(),
            changed_at: self.fhir.now_ms(),
            changed_by: caller.actor().to_string(),
        };
        // The title on the Practitioner: replace the title qualification (others stay).
        let mut qualifications: Vec<Value> = p["qualification"]
            .as_array()
            .map(|qs| {
                qs.iter()
                    .filter(|q| {
                        !q["code"]["coding"].as_array().is_some_and(|cs| cs.iter().any(|c| c["system"] == TITLE_SYSTEM))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some((code, zh, en, _)) = title_row {
            let mut q =
                json!({"code": {"coding": [{"system": TITLE_SYSTEM, "code": code, "display": en}], "text": zh}});
            if let Some(s) = &record.title_since {
                q["period"] = json!({"start": s});
            }
            qualifications.push(q);
        }
        if let Some(o) = p.as_object_mut() {
            o.remove("meta");
            if qualifications.is_empty() {
                o.remove("qualification");
            } else {
                o.insert("qualification".into(), Value::Array(qualifications));
            }
        }
        let entry = json!({"resource": p, "request": {"method": "PUT", "url": format!("Practitioner/{id}"),
                                                     "ifMatch": format!("W/\"{version}\"")}});
        self.fhir
            .process_bundle(caller, json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry]}), true)
            .await?;
        self.fhir.operations().staff().put(&record).await?;
        self.audit(
            caller,
            "staff-record",
            format!("Practitioner/{id} title {}", record.title.as_deref().unwrap_or("-")),
        )
        .await?;
        Ok(record)
    }

    /// Adds a licence to a person.
    pub async fn add_licence(&self, caller: &Caller, id: &str, form: &LicenceForm) -> Result<i64, StaffError> {
        if !Self::may_keep(caller) {
            return Err(StaffError::Forbidden("licences are kept by human resources"));
        }
        self.practitioner(caller, id).await?;
        let mut licence = form.check(id, &self.today())?;
        licence.added_at = self.fhir.now_ms();
        licence.added_by = caller.actor().to_string();
        let n = self.fhir.operations().staff().add_licence(&licence).await?;
        self.audit(caller, "staff-licence", format!("Practitioner/{id} {} licence {n}", licence.kind)).await?;
        Ok(n)
    }

    /// The licences expired or expiring within the reminder window, soonest first,
    /// with their holders' names (as the caller may read them).
    pub async fn reminders(&self, caller: &Caller) -> Result<Vec<(Licence, Due, Names)>, StaffError> {
        if !Self::may_keep(caller) {
            return Err(StaffError::Forbidden("licence reminders are for human resources"));
        }
        let today = self.today();
        let until = crate::equipment::add_days(&today, LICENCE_REMINDER_DAYS).unwrap_or(today.clone());
        let mut out = Vec::new();
        for l in self.fhir.operations().staff().expiring(&until).await? {
            let Some(d) = licence_due(&l, &today) else { continue };
            let names = match self.practitioner(caller, &l.practitioner).await {
                Ok((p, _)) => lianyi_clinical::names::of(&p),
                Err(_) => Names { zh: l.practitioner.clone(), en: l.practitioner.clone() },
            };
            out.push((l, d, names));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str, issued: &str, expires: &str) -> LicenceForm {
        LicenceForm {
            kind: kind.into(),
            number: "110101199001010011".into(),
            issuer: "北京市卫生健康委员会".into(),
            issued_on: issued.into(),
            expires_on: expires.into(),
        }
    }

    #[test]
    fn licence_reminders_follow_the_injected_day() {
        let l = form("nurse-practising", "2021-12-20", "2026-12-20").check("p1", "2026-12-07").unwrap();
        assert_eq!(licence_due(&l, "2026-10-01"), Some(Due::Later));
        assert_eq!(licence_due(&l, "2026-10-21"), Some(Due::Soon(60)));
        assert_eq!(licence_due(&l, "2026-12-20"), Some(Due::Soon(0)));
        assert_eq!(licence_due(&l, "2026-12-27"), Some(Due::Overdue(7)));
        let lifelong = form("physician-qualification", "2015-07-01", "").check("p1", "2026-12-07").unwrap();
        assert_eq!(licence_due(&lifelong, "2099-01-01"), None, "a qualification does not expire");
    }

    #[test]
    fn bad_licences_name_their_fields() {
        let Err(StaffError::Invalid(e)) = form("nurse-practising", "2027-01-01", "").check("p1", "2026-12-07") else {
            panic!("accepted")
        };
        let fields: Vec<&str> = e.iter().map(|f| f.field).collect();
        assert_eq!(fields, ["issued_on", "expires_on"], "issued in the future; a practising certificate expires");
        let Err(StaffError::Invalid(e)) = form("passport", "2020-01-01", "2019-01-01").check("p1", "2026-12-07") else {
            panic!("accepted")
        };
        let fields: Vec<&str> = e.iter().map(|f| f.field).collect();
        assert_eq!(fields, ["kind", "expires_on"]);
    }
}
