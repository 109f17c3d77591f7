//! The inpatient service: a doctor's admission order (住院证) from an outpatient or
//! emergency visit, the admission office (住院处) registering the stay on a free bed
//! of one of the campus's wards, the ward's nurse receiving the patient (入科), the
//! bed board, and the beds' own steps (cleaned, closed, reopened).
//!
//! Who may do what: doctors order admissions (they write ServiceRequests); the
//! admission office ([`Capability::AdmitPatients`]) admits; ward nurses
//! ([`Capability::KeepWard`]) receive patients and keep the beds; the campus's staff
//! who read its records open its bed board. An admission order names a ward of the
//! visit's own campus: moving to another campus is a transfer of the stay.
//!
//! Every step is one FHIR transaction (audited by the FHIR layer), written on the
//! versions read: a bed taken, or an order admitted, meanwhile refuses the step and
//! nothing is written.

use std::collections::HashMap;

use lianyi_clinical::names::Names;
use lianyi_clinical::record::Record;
use lianyi_clinical::registry::{FieldError, Registry, RegistryError, mrns_of, person_of, pinyin_of, record_open};
use lianyi_clinical::scheduling::local_instant;
use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::roles::Capability;
use lianyi_security::scope::Perm;
use lianyi_security::{Caller, CampusId};
use lianyi_services::identifiers::USER_SYSTEM;
use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoredResource;
use serde_json::{Value, json};

use crate::beds::{
    ADMISSION_CODE, BedState, BedStep, NursingLevel, SNOMED, TRANSFER_CODE, arriving, current, current_locations,
    day_of_stay, location_entry, next, stay_system,
};

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";
const ORG_TYPE: &str = "http://terminology.hl7.org/CodeSystem/organization-type";
const ADMIT_SOURCE: &str = "http://terminology.hl7.org/CodeSystem/admit-source";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

#[derive(Debug, thiserror::Error)]
pub enum InpatientError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Service(ServiceError),
    #[error(transparent)]
    Registry(RegistryError),
    #[error(transparent)]
    Price(#[from] lianyi_billing::prices::PriceError),
}

impl From<ServiceError> for InpatientError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound { resource_type, id } | ServiceError::Gone { resource_type, id, .. } => {
                InpatientError::NotFound(format!("{resource_type}/{id}"))
            }
            ServiceError::Forbidden(why) => InpatientError::Forbidden(why),
            other => InpatientError::Service(other),
        }
    }
}

impl From<RegistryError> for InpatientError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(f) => InpatientError::Invalid(f),
            RegistryError::Forbidden(why) => InpatientError::Forbidden(why),
            RegistryError::Service(s) => s.into(),
            other => InpatientError::Registry(other),
        }
    }
}

impl From<lianyi_store::StoreError> for InpatientError {
    fn from(e: lianyi_store::StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

pub(crate) fn invalid(field: &'static str, code: &'static str, detail: impl Into<String>) -> InpatientError {
    InpatientError::Invalid(vec![FieldError { field, code, detail: detail.into() }])
}

pub(crate) fn rtype(name: &str) -> ResourceType {
    ResourceType::parse(name).unwrap_or_else(|| unreachable!("{name} is a supported type"))
}

pub(crate) fn reference_id<'a>(v: &'a Value, prefix: &str) -> Option<&'a str> {
    v["reference"].as_str()?.strip_prefix(prefix)?.strip_prefix('/')
}

pub(crate) fn editable(r: &StoredResource) -> Result<Value, InpatientError> {
    let mut v: Value = serde_json::from_str(&r.body).map_err(|e| invalid("stored", "stored", e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    Ok(v)
}

/// A transaction entry writing `v` over `r`, only if `r` is still the current version.
pub(crate) fn put(v: Value, r: &StoredResource) -> Value {
    json!({"resource": v, "request": {"method": "PUT", "url": format!("{}/{}", r.resource_type, r.id),
                                      "ifMatch": format!("W/\"{}\"", r.version)}})
}

/// Milliseconds of a FHIR dateTime (its earliest instant).
fn instant_ms(v: &Value) -> Option<i64> {
    Some(lianyi_fhir::datetime::parse_range(v.as_str()?)?.low)
}

/// A ward of a campus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ward {
    pub id: String,
    pub names: Names,
    pub campus: String,
    /// The department (Organization) that runs it.
    pub department: String,
}

/// A bed of a ward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bed {
    pub id: String,
    pub names: Names,
    pub state: BedState,
}

/// A patient as the ward's pages name them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientLine {
    pub id: String,
    pub names: Names,
    pub gender: String,
    pub birth_date: String,
}

/// What the board warns of on a bed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alert {
    /// An active allergy: the substance, and whether it is high criticality.
    Allergy { substance: String, high: bool },
    /// An active Flag (a fall risk, an isolation …): its text.
    Flag(String),
}

/// A stay as the bed board shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StayCard {
    pub id: String,
    /// The stay number (住院号).
    pub number: String,
    pub patient: PatientLine,
    /// Day of the stay (the day of admission is day 1).
    pub day: i64,
    pub nursing: Option<NursingLevel>,
    /// Admitted, on the way to the ward: not received yet.
    pub arriving: bool,
    pub reason: String,
    pub alerts: Vec<Alert>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardBed {
    pub bed: Bed,
    pub stay: Option<StayCard>,
}

/// A ward's bed board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    pub ward: Ward,
    pub beds: Vec<BoardBed>,
}

impl Board {
    /// Beds in `state`.
    pub fn count(&self, state: BedState) -> usize {
        self.beds.iter().filter(|b| b.bed.state == state).count()
    }
}

/// An admission order waiting for the admission office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionOrder {
    pub id: String,
    pub patient: PatientLine,
    pub ward: String,
    pub nursing: Option<NursingLevel>,
    pub reason: String,
    pub note: String,
    /// Who ordered it (a display name).
    pub requester: String,
    pub ordered_at: String,
    /// The visit it was ordered at.
    pub encounter: String,
}

/// What a doctor orders.
#[derive(Clone, Debug, Default)]
pub struct OrderForm {
    pub ward: String,
    pub nursing: String,
    /// The admitting diagnosis or reason (入院诊断).
    pub reason: String,
    pub note: String,
}

/// A stay registered by the admission office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub stay: String,
    pub number: String,
    pub ward: String,
    pub bed: String,
}

#[derive(Clone, Debug)]
pub struct Inpatient {
    pub(crate) fhir: FhirService,
    pub(crate) registry: Registry,
    pub(crate) record: Record,
    pub(crate) posting: crate::charging::Turn,
}

impl Inpatient {
    pub fn new(fhir: FhirService) -> Inpatient {
        Inpatient {
            registry: Registry::new(fhir.clone()),
            record: Record::new(fhir.clone()),
            posting: Default::default(),
            fhir,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.fhir.now_ms()
    }

    /// The FHIR service it works through.
    pub fn fhir(&self) -> lianyi_services::FhirService {
        self.fhir.clone()
    }

    /// Who may order admissions: callers who write ServiceRequests at a campus.
    pub fn may_order(caller: &Caller) -> bool {
        caller.access().patient().is_none() && caller.access().allows("ServiceRequest", Perm::Create)
    }

    pub fn may_admit(caller: &Caller) -> bool {
        caller.can(Capability::AdmitPatients)
    }

    pub fn may_keep_ward(caller: &Caller) -> bool {
        caller.can(Capability::KeepWard)
    }

    /// Who opens bed boards: the ward's nurses, the admission office, and clinical
    /// staff who read records (doctors, department heads); not the cashiers.
    pub fn may_see_boards(caller: &Caller) -> bool {
        let clinical =
            caller.access().allows("Encounter", Perm::Search) && caller.access().allows("Condition", Perm::Search);
        caller.is_authenticated()
            && caller.access().patient().is_none()
            && (clinical || Self::may_keep_ward(caller) || Self::may_admit(caller))
    }

    pub(crate) async fn search(
        &self,
        caller: &Caller,
        t: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, InpatientError> {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let req = parse_search(rtype(t), &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(caller, req.resource_type).await?, &req).await?;
        Ok(page.resources.iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect())
    }

    pub(crate) async fn read(&self, caller: &Caller, t: &str, id: &str) -> Result<StoredResource, InpatientError> {
        Ok(self.fhir.reader(caller, rtype(t)).await?.read(id).await?)
    }

    /// Every ward of the campuses `caller` works at, by campus and name.
    pub async fn wards(&self, caller: &Caller) -> Result<Vec<Ward>, InpatientError> {
        let campuses = caller.access().all_campuses();
        let departments = self
            .search(caller, "Organization", &[("type", format!("{ORG_TYPE}|dept")), ("_count", "1000".into())])
            .await?;
        let campus_of: HashMap<String, String> = departments
            .iter()
            .filter_map(|d| {
                let campus = reference_id(&d["partOf"], "Organization")?;
                Some((d["id"].as_str()?.to_string(), campus.to_string()))
            })
            .filter(|(_, c)| campuses.contains(c))
            .collect();
        if campus_of.is_empty() {
            return Ok(Vec::new());
        }
        let mut orgs: Vec<String> = campus_of.keys().map(|d| format!("Organization/{d}")).collect();
        orgs.sort();
        let locations =
            self.search(caller, "Location", &[("organization", orgs.join(",")), ("_count", "1000".into())]).await?;
        let mut wards: Vec<Ward> = locations.iter().filter_map(|l| ward_of(l, &campus_of)).collect();
        wards.sort_by(|a, b| (&a.campus, &a.names.zh, &a.id).cmp(&(&b.campus, &b.names.zh, &b.id)));
        Ok(wards)
    }

    /// One ward, if `caller` works at its campus.
    pub async fn ward(&self, caller: &Caller, id: &str) -> Result<Ward, InpatientError> {
        let stored = self.read(caller, "Location", id).await?;
        let v: Value = serde_json::from_str(&stored.body).map_err(|e| invalid("ward", "stored", e.to_string()))?;
        let department = reference_id(&v["managingOrganization"], "Organization")
            .ok_or_else(|| invalid("ward", "ward", "not a ward (no department runs it)"))?;
        let org = self.read(caller, "Organization", department).await?;
        let org: Value = serde_json::from_str(&org.body).map_err(|e| invalid("ward", "stored", e.to_string()))?;
        let campus = reference_id(&org["partOf"], "Organization").unwrap_or_default().to_string();
        let campus_of = HashMap::from([(department.to_string(), campus.clone())]);
        let ward = ward_of(&v, &campus_of).ok_or_else(|| invalid("ward", "ward", "not a ward"))?;
        if !caller.access().all_campuses().contains(&campus) {
            return Err(InpatientError::Forbidden(format!("the wards of {campus} are not among your campuses")));
        }
        Ok(ward)
    }

    /// The beds of `ward`, in their numbers' order.
    pub async fn beds(&self, caller: &Caller, ward: &str) -> Result<Vec<Bed>, InpatientError> {
        let rows = self
            .search(caller, "Location", &[("partof", format!("Location/{ward}")), ("_count", "1000".into())])
            .await?;
        let mut beds: Vec<Bed> = rows
            .iter()
            .filter(|l| l["physicalType"]["coding"][0]["code"] == "bd")
            .map(|l| Bed {
                id: l["id"].as_str().unwrap_or_default().to_string(),
                names: lianyi_services::fhir::organization_names(l),
                state: BedState::of(l),
            })
            .collect();
        beds.sort_by(|a, b| natural(&a.names.zh).cmp(&natural(&b.names.zh)).then_with(|| a.id.cmp(&b.id)));
        Ok(beds)
    }

    /// Patients by id, read from the group's index as `caller` (audited as their
    /// reads), kept only where the record is open to them: it belongs to, or holds an
    /// MRN at, one of their campuses (every admitted patient holds one at the ward's).
    pub(crate) async fn patients(
        &self,
        caller: &Caller,
        ids: &[&str],
    ) -> Result<HashMap<String, (PatientLine, Value)>, InpatientError> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut ids: Vec<&str> = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let params: Vec<(String, String)> =
            vec![("_id".into(), ids.join(",")), ("_count".into(), ids.len().to_string())];
        let req = parse_search(rtype("Patient"), &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
        let wide = caller.group_wide();
        let page = self.fhir.search(&self.fhir.permit(&wide, req.resource_type).await?, &req).await?;
        for r in page.resources {
            let Ok(p) = serde_json::from_str::<Value>(&r.body) else { continue };
            if record_open(caller, &r.id, r.campus.as_deref(), &mrns_of(&p)).is_none() {
                continue;
            }
            out.insert(r.id.clone(), (patient_line(&r.id, &p), p));
        }
        Ok(out)
    }

    /// `caller` with every one of `patients`' records open (their allergies and flags
    /// from every campus).
    fn caring(caller: &Caller, patients: &HashMap<String, (PatientLine, Value)>) -> Caller {
        let mut care = caller.clone();
        for (id, (_, p)) in patients {
            let campuses: Vec<lianyi_services::identifiers::Mrn> = mrns_of(p);
            let list: Vec<&str> = campuses.iter().map(|m| m.campus.as_str()).collect();
            if let Some(open) = care.open_record(id, &list) {
                care = open;
            }
        }
        care
    }

    // -----------------------------------------------------------------------------
    // The admission order.

    /// The wards an admission from `encounter` may go to: its campus's.
    pub async fn wards_for(&self, caller: &Caller, encounter: &str) -> Result<Vec<Ward>, InpatientError> {
        let stored = self.read(caller, "Encounter", encounter).await?;
        let campus = stored.campus.clone().unwrap_or_default();
        Ok(self.wards(caller).await?.into_iter().filter(|w| w.campus == campus).collect())
    }

    /// A doctor's admission order for the patient of an outpatient or emergency
    /// visit; returns the ServiceRequest's id.
    pub async fn order_admission(
        &self,
        caller: &Caller,
        encounter: &str,
        form: &OrderForm,
        requester_name: &str,
    ) -> Result<String, InpatientError> {
        if !Self::may_order(caller) {
            return Err(InpatientError::Forbidden("ordering admissions is not among your roles".into()));
        }
        let stored = self.read(caller, "Encounter", encounter).await?;
        let e: Value = serde_json::from_str(&stored.body).map_err(|x| invalid("encounter", "stored", x.to_string()))?;
        let class = e["class"]["code"].as_str().unwrap_or_default();
        if !matches!(class, "AMB" | "EMER") {
            return Err(invalid(
                "encounter",
                "outpatient",
                "an admission is ordered from an outpatient or emergency visit",
            ));
        }
        let patient = reference_id(&e["subject"], "Patient")
            .ok_or_else(|| invalid("encounter", "stored", "the visit names no patient"))?
            .to_string();
        let mut errors = Vec::new();
        let nursing = NursingLevel::parse(form.nursing.trim());
        if nursing.is_none() {
            errors.push(FieldError { field: "nursing", code: "nursing", detail: "one of special, 1, 2, 3".into() });
        }
        let reason = form.reason.trim();
        if reason.chars().count() < 2 || reason.chars().count() > 200 {
            errors.push(FieldError {
                field: "reason",
                code: "reason",
                detail: "the admitting diagnosis or reason (2 to 200 characters)".into(),
            });
        }
        if form.note.trim().chars().count() > 500 {
            errors.push(FieldError { field: "note", code: "note", detail: "at most 500 characters".into() });
        }
        let campus = stored.campus.clone().unwrap_or_default();
        let ward = self.wards(caller).await?.into_iter().find(|w| w.id == form.ward.trim());
        match &ward {
            Some(w) if w.campus == campus => {}
            Some(_) => errors.push(FieldError {
                field: "ward",
                code: "ward-campus",
                detail: "a ward of the visit's campus (another campus's ward is reached by a transfer)".into(),
            }),
            None => errors.push(FieldError { field: "ward", code: "ward", detail: "one of the campus's wards".into() }),
        }
        let (Some(ward), Some(nursing), true) = (ward, nursing, errors.is_empty()) else {
            return Err(InpatientError::Invalid(errors));
        };
        // The whole record where it is open to the doctor (else their campus's part).
        let care = self.record.care_caller(caller, &patient).await.unwrap_or_else(|_| caller.clone());
        if let Some(open) = self.open_stay(&care, &patient).await? {
            return Err(invalid(
                "patient",
                "in-hospital",
                format!("the patient is in hospital already (stay {})", stay_number(&open)),
            ));
        }
        let waiting = self
            .search(
                &care,
                "ServiceRequest",
                &[
                    ("patient", format!("Patient/{patient}")),
                    ("code", format!("{SNOMED}|{ADMISSION_CODE}")),
                    ("status", "active".into()),
                ],
            )
            .await?;
        if !waiting.is_empty() {
            return Err(invalid("patient", "ordered", "an admission order for the patient is waiting already"));
        }
        let mut request = office_order(
            (ADMISSION_CODE, "Hospital admission", "住院"),
            (&patient, encounter),
            &ward,
            (reason, form.note.trim()),
            (self.fhir.now_ms(), lianyi_clinical::orders::username(caller).map(|_| requester(caller, requester_name))),
        );
        request["extension"] = json!([nursing.extension()]);
        // The order belongs to the visit's campus (a doctor may work at several).
        let here = CampusId::parse(&campus)
            .ok()
            .and_then(|c| caller.at_campus(&c))
            .ok_or_else(|| InpatientError::Forbidden(format!("ordering at {campus} is not among your roles")))?;
        let w = self.fhir.create(&self.fhir.permit(&here, rtype("ServiceRequest")).await?, request).await?;
        Ok(w.id)
    }

    /// The patient's stay in hospital now (admitted or on a ward), if any.
    pub(crate) async fn open_stay(&self, care: &Caller, patient: &str) -> Result<Option<Value>, InpatientError> {
        let stays = self
            .search(
                care,
                "Encounter",
                &[
                    ("patient", format!("Patient/{patient}")),
                    ("class", format!("{ACT_CODE}|IMP")),
                    ("status", "arrived,in-progress".into()),
                ],
            )
            .await?;
        Ok(stays.into_iter().next())
    }

    /// The admission orders waiting at `campus`, oldest first.
    pub async fn admission_orders(&self, caller: &Caller, campus: &str) -> Result<Vec<AdmissionOrder>, InpatientError> {
        let desk = self.desk(caller, campus)?;
        let rows = self
            .search(
                &desk,
                "ServiceRequest",
                &[
                    ("code", format!("{SNOMED}|{ADMISSION_CODE}")),
                    ("status", "active".into()),
                    ("_sort", "authored".into()),
                    ("_count", "200".into()),
                ],
            )
            .await?;
        let ids: Vec<&str> = rows.iter().filter_map(|r| reference_id(&r["subject"], "Patient")).collect();
        let patients = self.patients(caller, &ids).await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let (line, _) = patients.get(reference_id(&r["subject"], "Patient")?)?;
                Some(AdmissionOrder {
                    id: r["id"].as_str()?.to_string(),
                    patient: line.clone(),
                    ward: r["locationReference"][0]["reference"].as_str()?.strip_prefix("Location/")?.to_string(),
                    nursing: NursingLevel::of(r),
                    reason: r["reasonCode"][0]["text"].as_str().unwrap_or_default().to_string(),
                    note: r["note"][0]["text"].as_str().unwrap_or_default().to_string(),
                    requester: r["requester"]["display"].as_str().unwrap_or_default().to_string(),
                    ordered_at: r["authoredOn"].as_str().map(minute).unwrap_or_default(),
                    encounter: reference_id(&r["encounter"], "Encounter").unwrap_or_default().to_string(),
                })
            })
            .collect())
    }

    /// The admission office of `campus`: `caller` at that campus, keeping its beds.
    pub(crate) fn desk(&self, caller: &Caller, campus: &str) -> Result<Caller, InpatientError> {
        if !Self::may_admit(caller) {
            return Err(InpatientError::Forbidden("admitting patients is not among your roles".into()));
        }
        let id = CampusId::parse(campus).map_err(|_| invalid("campus", "campus", "a campus"))?;
        // The admitting role itself must cover the campus (registering stays there),
        // not any other role the user holds there.
        if !caller.access().campuses_for("Encounter", Perm::Create).contains(campus) {
            return Err(InpatientError::Forbidden(format!("admitting at {campus} is not among your roles")));
        }
        let here = caller
            .at_campus(&id)
            .ok_or_else(|| InpatientError::Forbidden(format!("admitting at {campus} is not among your roles")))?;
        Ok(here.keeping_beds(&id))
    }

    /// The ward of `campus` keeping its beds: `caller` (a ward nurse) there.
    pub(crate) fn ward_caller(&self, caller: &Caller, campus: &str) -> Result<Caller, InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("working on a ward is not among your roles".into()));
        }
        let id = CampusId::parse(campus).map_err(|_| invalid("campus", "campus", "a campus"))?;
        if !Self::nurse_at(caller, campus) {
            return Err(InpatientError::Forbidden(format!("the wards of {campus} are not among your campuses")));
        }
        let here = caller
            .at_campus(&id)
            .ok_or_else(|| InpatientError::Forbidden(format!("the wards of {campus} are not among your campuses")))?;
        Ok(here.keeping_beds(&id))
    }

    /// Whether `caller`'s nursing role covers `campus` (giving medications there), not
    /// only some other role they hold there.
    pub(crate) fn nurse_at(caller: &Caller, campus: &str) -> bool {
        Self::may_keep_ward(caller)
            && caller.access().campuses_for("MedicationAdministration", Perm::Create).contains(campus)
    }

    // -----------------------------------------------------------------------------
    // Admission.

    /// Registers the stay of a waiting admission order on a free `bed` of the
    /// ordered ward (or another ward of the campus): an inpatient Encounter with the
    /// campus's next stay number, the bed held for the patient, the order completed,
    /// in one transaction. The patient gets an MRN at the campus if they hold none.
    pub async fn admit(&self, caller: &Caller, order: &str, bed: &str) -> Result<Admitted, InpatientError> {
        if !Self::may_admit(caller) {
            return Err(InpatientError::Forbidden("admitting patients is not among your roles".into()));
        }
        let bed_stored = match self.read(caller, "Location", bed.trim()).await {
            Ok(b) => b,
            Err(InpatientError::NotFound(_)) => return Err(invalid("bed", "bed", "a bed of the ward")),
            Err(e) => return Err(e),
        };
        let bed_v = editable(&bed_stored)?;
        let ward_id = reference_id(&bed_v["partOf"], "Location")
            .filter(|_| bed_v["physicalType"]["coding"][0]["code"] == "bd")
            .ok_or_else(|| invalid("bed", "bed", "a bed of the ward"))?
            .to_string();
        let ward = self.ward(caller, &ward_id).await?;
        let desk = self.desk(caller, &ward.campus)?;
        // A transfer order (转科、转院区) to this campus may come from another campus:
        // read group-wide, it is this campus's business only when it is a transfer here.
        let order_stored = match self.read(&desk.group_wide(), "ServiceRequest", order).await {
            Ok(o) => o,
            Err(InpatientError::NotFound(_) | InpatientError::Forbidden(_)) => {
                return Err(invalid("order", "order", "an admission order waiting at this campus"));
            }
            Err(e) => return Err(e),
        };
        let mut order_v = editable(&order_stored)?;
        if order_v["code"]["coding"][0]["code"] == TRANSFER_CODE {
            return self.transfer_in(caller, &desk, (order_stored, order_v), (bed_stored, bed_v), &ward).await;
        }
        if order_v["code"]["coding"][0]["code"] != ADMISSION_CODE
            || order_stored.campus.as_deref() != Some(&ward.campus)
        {
            return Err(invalid("order", "order", "an admission order waiting at this campus"));
        }
        if order_v["status"] != "active" {
            return Err(invalid("order", "admitted", "this order was admitted or cancelled already"));
        }
        let state = BedState::of(&bed_v);
        let Some(held) = next(state, BedStep::Reserve) else {
            return Err(bed_taken(state));
        };
        let patient = reference_id(&order_v["subject"], "Patient")
            .ok_or_else(|| invalid("order", "stored", "the order names no patient"))?
            .to_string();
        let campus_id = CampusId::parse(&ward.campus).map_err(|_| invalid("ward", "ward", "a ward of a campus"))?;
        // In hospital anywhere in the group already? Checked before anything is written.
        if let Some(open) = self.open_stay(&caller.group_wide(), &patient).await? {
            return Err(invalid(
                "patient",
                "in-hospital",
                format!("the patient is in hospital already (stay {})", stay_number(&open)),
            ));
        }
        self.registry.register_here(caller, &patient, &campus_id).await?;
        let care = self.record.care_caller(caller, &patient).await.unwrap_or_else(|_| caller.clone());
        // Where the patient came from: the visit's class.
        let source =
            match self.read(&care, "Encounter", reference_id(&order_v["encounter"], "Encounter").unwrap_or("")).await {
                Ok(e) => serde_json::from_str::<Value>(&e.body)
                    .ok()
                    .and_then(|e| e["class"]["code"].as_str().map(str::to_string)),
                Err(_) => None,
            };
        let now = self.fhir.now_ms();
        let n = self.fhir.operations().next_counter(&format!("inpatient:{}", ward.campus), 1).await?;
        let number = format!("ZY{n:07}");
        let mut stay = json!({"resourceType": "Encounter", "status": "arrived",
            "identifier": [{"use": "official", "system": stay_system(&ward.campus), "value": number,
                            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}], "text": "住院号"}}],
            "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
            "type": [{"text": "住院"}],
            "subject": order_v["subject"].clone(),
            "basedOn": [{"reference": format!("ServiceRequest/{order}")}],
            "period": {"start": local_instant(now)},
            "reasonCode": order_v["reasonCode"].clone(),
            "hospitalization": {"admitSource": {"coding": [{"system": ADMIT_SOURCE,
                "code": if source.as_deref() == Some("EMER") { "emd" } else { "outp" }}]}},
            "serviceProvider": {"reference": format!("Organization/{}", ward.department)},
            "location": [location_entry(&ward.id, &ward.names.zh, "wa", "planned"),
                         location_entry(&bed_stored.id, bed_v["name"].as_str().unwrap_or_default(), "bd", "reserved")]});
        if let Some(level) = NursingLevel::of(&order_v) {
            stay["extension"] = json!([level.extension()]);
        }
        if order_v["requester"].is_object() {
            stay["participant"] = json!([{"type": [{"coding": [{"system": PARTICIPATION, "code": "ADM"}]}],
                                           "individual": order_v["requester"].clone()}]);
        }
        let mut new_bed = bed_v.clone();
        new_bed["operationalStatus"] = held.coding();
        order_v["status"] = json!("completed");
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:8f2c3a1e-0d7b-4c55-9a41-5b7e2f0c9d10", "resource": stay,
             "request": {"method": "POST", "url": "Encounter"}},
            put(new_bed, &bed_stored),
            put(order_v, &order_stored)]});
        match self.fhir.process_bundle(&desk, bundle, true).await {
            Ok(done) => {
                let stay = done["entry"][0]["response"]["location"]
                    .as_str()
                    .and_then(|l| l.strip_prefix("Encounter/"))
                    .and_then(|l| l.split('/').next())
                    .unwrap_or_default()
                    .to_string();
                Ok(Admitted { stay, number, ward: ward.id, bed: bed_stored.id })
            }
            Err(e) if e.is_conflict() => Err(self.conflict(caller, &bed_stored.id).await),
            Err(e) => Err(e.into()),
        }
    }

    /// What changed meanwhile when a step's transaction met newer versions: the bed
    /// (taken by someone else), or else the order or stay.
    pub(crate) async fn conflict(&self, caller: &Caller, bed: &str) -> InpatientError {
        match self.read(caller, "Location", bed).await.ok().and_then(|b| serde_json::from_str::<Value>(&b.body).ok()) {
            Some(b) if BedState::of(&b) != BedState::Free => bed_taken(BedState::of(&b)),
            _ => invalid(
                "order",
                "changed",
                "the order or the stay was changed meanwhile: nothing was written; look again",
            ),
        }
    }

    /// A stay as `caller` may work on it: the Encounter (read from the group's records
    /// as the caller, audited), and the caller with the patient's record open — the
    /// patient holds an MRN at one of their campuses, as every patient on a ward does at
    /// the ward's (a stay keeps the campus that admitted it when it moves to another).
    pub(crate) async fn stay_for(
        &self,
        caller: &Caller,
        stay: &str,
    ) -> Result<(StoredResource, Value, Caller), InpatientError> {
        let stored = match self.read(&caller.group_wide(), "Encounter", stay).await {
            Ok(s) => s,
            Err(InpatientError::NotFound(_)) => return Err(invalid("stay", "stay", "an inpatient stay")),
            Err(e) => return Err(e),
        };
        let v = editable(&stored)?;
        let patient = reference_id(&v["subject"], "Patient").filter(|_| v["class"]["code"] == "IMP");
        let Some(patient) = patient else { return Err(invalid("stay", "stay", "an inpatient stay")) };
        let care = self.record.care_caller(caller, patient).await?;
        Ok((stored, v, care))
    }

    /// The ward receives a patient onto the bed held for them (入科): admitted, or
    /// transferred from another ward; the stay is in progress there, the bed occupied.
    pub async fn receive(&self, caller: &Caller, stay: &str) -> Result<(), InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("working on a ward is not among your roles".into()));
        }
        let (stored, mut v, care) = self.stay_for(caller, stay).await?;
        let Some((bed_id, "reserved")) = current(&v, "bd").as_ref().map(|(b, s)| (b.clone(), s.as_str())) else {
            return Err(invalid("stay", "received", "the patient was received on the ward already, or has left"));
        };
        if !matches!(v["status"].as_str(), Some("arrived" | "in-progress")) {
            return Err(invalid("stay", "received", "the patient was received on the ward already, or has left"));
        }
        let bed_stored = self.read(caller, "Location", &bed_id).await?;
        let mut bed_v = editable(&bed_stored)?;
        let ward = reference_id(&bed_v["partOf"], "Location").unwrap_or_default().to_string();
        let ward = self.ward(caller, &ward).await?;
        let ward_caller = self.ward_caller(&care, &ward.campus)?;
        let state = BedState::of(&bed_v);
        let Some(occupied) = next(state, BedStep::Occupy) else {
            return Err(bed_taken(state));
        };
        let now = local_instant(self.fhir.now_ms());
        v["status"] = json!("in-progress");
        if let Some(ls) = v["location"].as_array_mut() {
            for l in ls.iter_mut().filter(|l| matches!(l["status"].as_str(), Some("planned" | "reserved"))) {
                l["status"] = json!("active");
                l["period"] = json!({"start": now});
            }
        }
        bed_v["operationalStatus"] = occupied.coding();
        let bundle = json!({"resourceType": "Bundle", "type": "transaction",
                            "entry": [put(v, &stored), put(bed_v, &bed_stored)]});
        match self.fhir.process_bundle(&ward_caller, bundle, true).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Err(invalid(
                "stay",
                "changed",
                "the stay or its bed was changed meanwhile: nothing was written; look again",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// A bed's own step on the ward: cleaned (free again), closed, reopened.
    pub async fn bed_step(&self, caller: &Caller, bed: &str, step: BedStep) -> Result<BedState, InpatientError> {
        if !matches!(step, BedStep::Cleaned | BedStep::Close | BedStep::Reopen) {
            return Err(invalid("step", "step", "cleaned, close or reopen"));
        }
        let stored = self.read(caller, "Location", bed).await?;
        let mut v = editable(&stored)?;
        let ward = reference_id(&v["partOf"], "Location")
            .filter(|_| v["physicalType"]["coding"][0]["code"] == "bd")
            .ok_or_else(|| invalid("bed", "bed", "a bed of a ward"))?
            .to_string();
        let ward = self.ward(caller, &ward).await?;
        let ward_caller = self.ward_caller(caller, &ward.campus)?;
        let state = BedState::of(&v);
        let to = next(state, step).ok_or_else(|| bed_taken(state))?;
        v["operationalStatus"] = to.coding();
        if matches!(step, BedStep::Reopen) {
            v["status"] = json!("active");
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [put(v, &stored)]});
        match self.fhir.process_bundle(&ward_caller, bundle, true).await {
            Ok(_) => Ok(to),
            Err(e) if e.is_conflict() => {
                Err(invalid("bed", "changed", "the bed was changed meanwhile: nothing was written; look again"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One stay as its ward's board shows it: the card, the ward, the bed's names.
    pub async fn stay_card(&self, caller: &Caller, stay: &str) -> Result<(StayCard, Ward, Names), InpatientError> {
        let (_, v, _) = self.stay_for(caller, stay).await?;
        let (Some((ward, _)), Some((bed, _))) = (current(&v, "wa"), current(&v, "bd")) else {
            return Err(invalid("stay", "not-on-ward", "the stay is on no ward"));
        };
        let (ward, reader) = self.board_reader(caller, &ward).await?;
        let bed_v: Value = serde_json::from_str(&self.read(&reader, "Location", &bed).await?.body)
            .map_err(|e| invalid("bed", "stored", e.to_string()))?;
        let mut cards = self.cards(&reader, &ward.id, std::slice::from_ref(&v)).await?;
        let card = cards.remove(&bed).ok_or_else(|| invalid("stay", "not-on-ward", "the stay is on no ward"))?;
        Ok((card, ward, lianyi_services::fhir::organization_names(&bed_v)))
    }

    // -----------------------------------------------------------------------------
    // The bed board.

    /// A ward and who reads its board: staff of its campus who open bed boards.
    pub(crate) async fn board_reader(&self, caller: &Caller, ward: &str) -> Result<(Ward, Caller), InpatientError> {
        if !Self::may_see_boards(caller) {
            return Err(InpatientError::Forbidden("bed boards are not among your roles".into()));
        }
        let ward = self.ward(caller, ward).await?;
        // The admission office reads the stays (Encounters) of its campus's wards.
        if !caller.access().sees("Encounter", Perm::Search, Some(&ward.campus)) {
            return Err(InpatientError::Forbidden(format!("the stays at {} are not among your campuses", ward.campus)));
        }
        Ok((ward, caller.clone()))
    }

    /// A ward's bed board: every bed with its stay (the patient, day of the stay,
    /// nursing level, alerts).
    pub async fn board(&self, caller: &Caller, ward: &str) -> Result<Board, InpatientError> {
        let (ward, reader) = self.board_reader(caller, ward).await?;
        let stays = self.ward_stays(&reader, &ward.id).await?;
        self.board_of(&reader, ward, &stays).await
    }

    /// The stays on `ward` or on their way to it. Whoever is on a ward is the ward's
    /// business, whichever campus admitted them (a stay keeps its campus when moved):
    /// the search is limited to the ward.
    pub(crate) async fn ward_stays(&self, reader: &Caller, ward: &str) -> Result<Vec<Value>, InpatientError> {
        self.search(
            &reader.group_wide(),
            "Encounter",
            &[
                ("location", format!("Location/{ward}")),
                ("class", format!("{ACT_CODE}|IMP")),
                ("status", "arrived,in-progress".into()),
                ("_count", "1000".into()),
            ],
        )
        .await
    }

    /// The board of `ward` with its `stays`: the beds and the cards read at once (each
    /// read waits for its audit record; together they share the writes).
    pub(crate) async fn board_of(&self, reader: &Caller, ward: Ward, stays: &[Value]) -> Result<Board, InpatientError> {
        let (beds, on_bed) = tokio::join!(self.beds(reader, &ward.id), self.cards(reader, &ward.id, stays));
        let (beds, mut on_bed) = (beds?, on_bed?);
        let beds = beds.into_iter().map(|b| BoardBed { stay: on_bed.remove(&b.id), bed: b }).collect();
        Ok(Board { ward, beds })
    }

    /// The cards of `stays` on `ward`, by the bed each is on or held for: their
    /// patients (open to `reader`) and alerts read once for all.
    async fn cards(
        &self,
        reader: &Caller,
        ward: &str,
        stays: &[Value],
    ) -> Result<HashMap<String, StayCard>, InpatientError> {
        let ids: Vec<&str> = stays.iter().filter_map(|s| reference_id(&s["subject"], "Patient")).collect();
        let patients = self.patients(reader, &ids).await?;
        let mut alerts: HashMap<String, Vec<Alert>> = HashMap::new();
        if !patients.is_empty() {
            let care = Self::caring(reader, &patients);
            let mut list: Vec<String> = patients.keys().map(|p| format!("Patient/{p}")).collect();
            list.sort();
            let list = list.join(",");
            let allergies = async {
                if care.access().allows("AllergyIntolerance", Perm::Search) {
                    let params =
                        [("patient", list.clone()), ("clinical-status", "active".into()), ("_count", "1000".into())];
                    self.search(&care, "AllergyIntolerance", &params).await
                } else {
                    Ok(Vec::new())
                }
            };
            let flags = async {
                if care.access().allows("Flag", Perm::Search) {
                    self.search(&care, "Flag", &[("patient", list.clone()), ("_count", "1000".into())]).await
                } else {
                    Ok(Vec::new())
                }
            };
            let (allergies, flags) = tokio::join!(allergies, flags);
            {
                for a in allergies? {
                    let Some(p) = reference_id(&a["patient"], "Patient") else { continue };
                    let substance = a["code"]["text"].as_str().or_else(|| a["code"]["coding"][0]["display"].as_str());
                    alerts.entry(p.to_string()).or_default().push(Alert::Allergy {
                        substance: substance.unwrap_or_default().to_string(),
                        high: a["criticality"] == "high",
                    });
                }
            }
            {
                for f in flags?.into_iter().filter(|f| f["status"] == "active") {
                    let Some(p) = reference_id(&f["subject"], "Patient") else { continue };
                    let text = f["code"]["text"].as_str().or_else(|| f["code"]["coding"][0]["display"].as_str());
                    alerts.entry(p.to_string()).or_default().push(Alert::Flag(text.unwrap_or_default().to_string()));
                }
            }
        }
        let now = self.fhir.now_ms();
        let mut on_bed: HashMap<String, StayCard> = HashMap::new();
        for s in stays {
            let Some(patient) = reference_id(&s["subject"], "Patient") else { continue };
            let Some((line, _)) = patients.get(patient) else { continue };
            let current = current_locations(s);
            if !current.contains(&ward) {
                continue;
            }
            let card = StayCard {
                id: s["id"].as_str().unwrap_or_default().to_string(),
                number: stay_number(s),
                patient: line.clone(),
                day: instant_ms(&s["period"]["start"]).map_or(1, |start| day_of_stay(start, now)),
                nursing: NursingLevel::of(s),
                arriving: arriving(s),
                reason: s["reasonCode"][0]["text"].as_str().unwrap_or_default().to_string(),
                alerts: alerts.get(patient).cloned().unwrap_or_default(),
            };
            for bed in current.iter().filter(|l| **l != ward) {
                on_bed.insert((*bed).to_string(), card.clone());
            }
        }
        Ok(on_bed)
    }
}

pub(crate) fn bed_taken(state: BedState) -> InpatientError {
    let (code, detail) = match state {
        BedState::Occupied => ("bed-occupied", "the bed is occupied (rule: a free bed)"),
        BedState::Reserved => ("bed-reserved", "the bed is held for another patient (rule: a free bed)"),
        BedState::Cleaning => ("bed-cleaning", "the bed is being cleaned (rule: a free bed)"),
        BedState::Closed => ("bed-closed", "the bed is closed (rule: a free bed)"),
        BedState::Free => ("bed-free", "the bed is free: this step does not apply"),
    };
    invalid("bed", code, detail)
}

fn ward_of(l: &Value, campus_of: &HashMap<String, String>) -> Option<Ward> {
    if l["physicalType"]["coding"].as_array()?.iter().all(|c| c["system"] != PHYSICAL_TYPE || c["code"] != "wa") {
        return None;
    }
    let department = reference_id(&l["managingOrganization"], "Organization")?;
    Some(Ward {
        id: l["id"].as_str()?.to_string(),
        names: lianyi_services::fhir::organization_names(l),
        campus: campus_of.get(department)?.clone(),
        department: department.to_string(),
    })
}

pub(crate) fn patient_line(id: &str, p: &Value) -> PatientLine {
    let person = person_of(p);
    let pinyin = pinyin_of(p);
    PatientLine {
        id: id.to_string(),
        names: Names { en: if pinyin.is_empty() { person.name.clone() } else { pinyin }, zh: person.name },
        gender: person.gender.unwrap_or_default(),
        birth_date: person.birth_date.unwrap_or_default(),
    }
}

impl Inpatient {
    /// Whether `scanned` is the wristband of `stay`'s patient: the stay number, or one
    /// of the patient's MRNs (the error names the field and the rule).
    pub(crate) async fn check_wristband(
        &self,
        care: &Caller,
        stay: &Value,
        scanned: &str,
    ) -> Result<Option<FieldError>, InpatientError> {
        let patient = reference_id(&stay["subject"], "Patient").unwrap_or_default();
        let p = self.read(care, "Patient", patient).await?;
        let p: Value = serde_json::from_str(&p.body).map_err(|e| invalid("patient", "stored", e.to_string()))?;
        let scanned = scanned.trim();
        let ok =
            !scanned.is_empty() && (scanned == stay_number(stay) || mrns_of(&p).iter().any(|m| m.number == scanned));
        Ok((!ok).then(|| FieldError {
            field: "patient_code",
            code: "wrong-patient",
            detail: "not this patient's wristband (the stay number or an MRN of the patient)".into(),
        }))
    }
}

/// Who signed an order: the user (by their username) with their display name.
pub(crate) fn requester(caller: &Caller, name: &str) -> Value {
    match lianyi_clinical::orders::username(caller) {
        Some(user) => json!({"identifier": {"system": USER_SYSTEM, "value": user}, "display": name}),
        None => json!({"display": caller.actor()}),
    }
}

/// An order for the admission office — an admission (住院证) or a transfer (转科) —
/// asking for `ward`: its ServiceRequest.
pub(crate) fn office_order(
    (code, display, text): (&str, &str, &str),
    (patient, encounter): (&str, &str),
    ward: &Ward,
    (reason, note): (&str, &str),
    (at, requester): (i64, Option<Value>),
) -> Value {
    let mut request = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "category": [{"coding": [{"system": SNOMED, "code": "305056002", "display": "Admission procedure"}]}],
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": text},
        "subject": {"reference": format!("Patient/{patient}")},
        "encounter": {"reference": format!("Encounter/{encounter}")},
        "authoredOn": local_instant(at),
        "locationReference": [{"reference": format!("Location/{}", ward.id), "display": ward.names.zh}],
        "reasonCode": [{"text": reason}]});
    if let Some(r) = requester {
        request["requester"] = r;
    }
    if !note.is_empty() {
        request["note"] = json!([{"text": note}]);
    }
    request
}

/// A stay's number (住院号).
pub fn stay_number(stay: &Value) -> String {
    stay["identifier"]
        .as_array()
        .and_then(|ids| {
            ids.iter().find(|i| i["system"].as_str().is_some_and(|s| s.starts_with("urn:lianyi:sid:inpatient:")))
        })
        .and_then(|i| i["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// `YYYY-MM-DD HH:MM` of a FHIR dateTime.
pub(crate) fn minute(s: &str) -> String {
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t}"),
        _ => s.to_string(),
    }
}

/// A sort key putting "2床" before "10床": the number in a name, then the name.
fn natural(name: &str) -> (u64, String) {
    let digits: String = name.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    (digits.parse().unwrap_or(u64::MAX), name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beds_sort_by_their_numbers() {
        let mut names = vec!["10床", "2床", "加1床", "1床"];
        names.sort_by_key(|n| natural(n));
        assert_eq!(names, vec!["1床", "加1床", "2床", "10床"]);
    }

    #[test]
    fn a_ward_is_a_ward_location_of_a_known_department() {
        let campus_of = HashMap::from([("campus-east-im".to_string(), "campus-east".to_string())]);
        let ward = json!({"resourceType": "Location", "id": "ward-campus-east-im", "name": "内科病区", "alias": ["IM Ward"],
            "physicalType": {"coding": [{"system": PHYSICAL_TYPE, "code": "wa"}]},
            "managingOrganization": {"reference": "Organization/campus-east-im"}});
        let w = ward_of(&ward, &campus_of).expect("a ward");
        assert_eq!((w.campus.as_str(), w.names.en.as_str()), ("campus-east", "IM Ward"));
        let mut bed = ward.clone();
        bed["physicalType"]["coding"][0]["code"] = json!("bd");
        assert_eq!(ward_of(&bed, &campus_of), None);
        let mut elsewhere = ward;
        elsewhere["managingOrganization"]["reference"] = json!("Organization/campus-west-im");
        assert_eq!(ward_of(&elsewhere, &campus_of), None, "a department of a campus not given");
    }
}
