//! Who is calling a service, from where, and what they may touch. Every service
//! call takes one; every audit record is made from one.
//!
//! Only this crate makes a [`Caller`]: from a session ([`crate::users`]), a token
//! ([`crate::clients`]), or a named [`SystemTask`]; its fields are private, so no other
//! crate can forge or widen one. Widening lives here too, each with its rule:
//! [`Caller::group_wide`] (searching the patient index), [`Caller::open_record`] (a
//! patient's record across campuses where the patient holds an MRN at one of the
//! caller's), [`Caller::at_campus`] (writing as one campus), and break-the-glass
//! (granted and audited by the FHIR service, loaded into the session here).

use lianyi_store::audit::AuditEntry;

use crate::roles::Capability;
use crate::scope::{Perm, ScopeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    /// No credentials were presented.
    Anonymous,
    /// A person with a login.
    User,
    /// An API client (OAuth2 client credentials).
    Client,
    /// The platform itself or an operator's command-line tool.
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Anonymous => "anonymous",
            ActorKind::User => "user",
            ActorKind::Client => "client",
            ActorKind::System => "system",
        }
    }
}

/// A campus of the group by its id (`campus-east`): 1-64 ASCII letters, digits, `-`,
/// `_` or `.`. Grants, callers and the records a caller writes name campuses by it, so
/// a campus cannot be confused with another string (a role, an MRN, a name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampusId(String);

/// A campus id that breaks the rule of [`CampusId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("campus id '{0}' must be 1-64 letters, digits, '-', '_' or '.'")]
pub struct InvalidCampus(pub String);

impl CampusId {
    pub fn parse(s: &str) -> Result<CampusId, InvalidCampus> {
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok { Ok(CampusId(s.to_string())) } else { Err(InvalidCampus(s.to_string())) }
    }

    /// A campus id read back from the database, where only checked ids (a caller's,
    /// or the configured default) were written: not checked again.
    pub fn stored(s: &str) -> CampusId {
        CampusId(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CampusId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CampusId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for CampusId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CampusId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<CampusId> for String {
    fn from(c: CampusId) -> String {
        c.0
    }
}

/// The campuses a caller's grants cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Campuses {
    All,
    Only(Vec<CampusId>),
}

impl Campuses {
    /// `*` or space-separated campus ids.
    pub fn parse(s: &str) -> Result<Campuses, InvalidCampus> {
        if s.trim() == "*" {
            return Ok(Campuses::All);
        }
        Ok(Campuses::Only(s.split_whitespace().map(CampusId::parse).collect::<Result<_, _>>()?))
    }

    pub fn contains(&self, campus: &str) -> bool {
        match self {
            Campuses::All => true,
            Campuses::Only(list) => list.iter().any(|c| c == campus),
        }
    }
}

impl std::fmt::Display for Campuses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Campuses::All => f.write_str("*"),
            Campuses::Only(list) => f.write_str(&list.iter().map(CampusId::as_str).collect::<Vec<_>>().join(" ")),
        }
    }
}

/// One grant: interactions per type (scopes) at a set of campuses. A user holds one
/// per role; an API client holds exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub scopes: ScopeSet,
    pub campuses: Campuses,
}

/// What a caller may do: its grants, and whether only one patient's compartment.
/// Read-only outside this crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// `None`: unrestricted (the platform's own jobs).
    pub(crate) grants: Option<Vec<Grant>>,
    pub(crate) patient: Option<String>,
    /// Patients whose records are open regardless of campus (break-the-glass, or the
    /// record across campuses): the role's interactions still apply.
    pub(crate) open_patients: Vec<String>,
}

impl Campuses {
    fn union(items: impl Iterator<Item = Campuses>) -> Campuses {
        let mut out: Vec<CampusId> = Vec::new();
        for c in items {
            match c {
                Campuses::All => return Campuses::All,
                Campuses::Only(list) => {
                    for x in list {
                        if !out.contains(&x) {
                            out.push(x);
                        }
                    }
                }
            }
        }
        Campuses::Only(out)
    }
}

impl Access {
    pub(crate) fn unrestricted() -> Access {
        Access { grants: None, patient: None, open_patients: Vec::new() }
    }

    /// Nothing at all (anonymous callers).
    pub(crate) fn nothing() -> Access {
        Access { grants: Some(Vec::new()), patient: None, open_patients: Vec::new() }
    }

    pub(crate) fn single(scopes: ScopeSet, campuses: Campuses, patient: Option<String>) -> Access {
        Access { grants: Some(vec![Grant { scopes, campuses }]), patient, open_patients: Vec::new() }
    }

    pub(crate) fn granted(grants: Vec<Grant>, patient: Option<String>) -> Access {
        Access { grants: Some(grants), patient, open_patients: Vec::new() }
    }

    /// The grants (`None`: unrestricted, a platform task).
    pub fn grants(&self) -> Option<&[Grant]> {
        self.grants.as_deref()
    }

    /// The one patient whose compartment this caller is bound to (a patient's account,
    /// a client bound to a patient).
    pub fn patient(&self) -> Option<&str> {
        self.patient.as_deref()
    }

    /// Patients whose records are open to this caller regardless of campus.
    pub fn open_patients(&self) -> &[String] {
        &self.open_patients
    }

    /// Whether `patient`'s record is open regardless of campus.
    pub fn is_open(&self, patient: &str) -> bool {
        self.open_patients.iter().any(|p| p == patient)
    }

    pub fn allows(&self, resource_type: &str, perm: Perm) -> bool {
        self.grants.as_ref().is_none_or(|gs| gs.iter().any(|g| g.scopes.allows(resource_type, perm)))
    }

    /// Whether a grant names `resource_type` explicitly with `perm` (wildcards excluded).
    pub fn names(&self, resource_type: &str, perm: Perm) -> bool {
        self.grants.as_ref().is_none_or(|gs| gs.iter().any(|g| g.scopes.names(resource_type, perm)))
    }

    /// The campuses at which the caller may do `perm` on `resource_type`.
    pub fn campuses_for(&self, resource_type: &str, perm: Perm) -> Campuses {
        match &self.grants {
            None => Campuses::All,
            Some(gs) => {
                Campuses::union(gs.iter().filter(|g| g.scopes.allows(resource_type, perm)).map(|g| g.campuses.clone()))
            }
        }
    }

    /// Every campus any grant covers.
    pub fn all_campuses(&self) -> Campuses {
        match &self.grants {
            None => Campuses::All,
            Some(gs) => Campuses::union(gs.iter().map(|g| g.campuses.clone())),
        }
    }

    /// Whether data owned by `campus` may be touched with `perm` (unowned data: if the
    /// type is allowed at all).
    pub fn sees(&self, resource_type: &str, perm: Perm, campus: Option<&str>) -> bool {
        match campus {
            None => self.allows(resource_type, perm),
            Some(c) => self.campuses_for(resource_type, perm).contains(c),
        }
    }

    /// The campus new data of this caller belongs to: the first granted one.
    pub fn home_campus(&self) -> Option<&CampusId> {
        self.grants.as_ref()?.iter().find_map(|g| match &g.campuses {
            Campuses::Only(list) => list.first(),
            Campuses::All => None,
        })
    }
}

/// A job the platform runs itself, named for the audit log: what it reads and writes
/// of patient data is recorded under this purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemTask {
    /// `lianyi import`: loading NDJSON files.
    Import,
    /// `lianyi demo`: loading the demo hospital group.
    Demo,
    /// Rebuilding the search index after an upgrade.
    Reindex,
    /// The HL7 v2 listener applying one sender's (`MSH-3^MSH-4`) messages.
    Hl7Inbound(String),
    /// The DICOM node indexing what one application entity (its AE title) sent.
    DicomInbound(String),
    /// Outbound channels: reading the change feed and delivering it.
    OutboundDelivery,
    /// Pruning the message log past its retention.
    MessageRetention,
    /// The critical-value watcher: a result's order and open tasks, the doctor's
    /// task, escalation.
    CriticalValues,
    /// Billing: turning orders into charges and taking them back when an order is
    /// cancelled.
    Billing,
    /// A merge, unmerge or link of patient records done for a registrar: `what`, `by`
    /// whom (the registrar's actor name).
    Empi { what: String, by: String },
    /// IT operations: the server registering itself in the configuration database.
    Operations,
    /// Monitoring: recording probe results, opening and resolving the incidents its
    /// alerts raise.
    Monitoring,
    /// Rosters: the Slots of a clinic session a person (`by`, the actor name) put on
    /// or took off a department's roster.
    Roster { by: String },
    /// The dashboards: reading each changed record to keep the daily figures current.
    Dashboards,
    /// The patient portal: opening a patient's account with the code from their
    /// registration slip, and how far their queue has moved (counts only).
    Portal,
    /// An operator at the command line (`cli:<os user>`), a benchmark or a test set-up,
    /// named by who runs it.
    Operator(String),
}

impl SystemTask {
    /// The actor name in the audit log.
    pub fn actor(&self) -> String {
        match self {
            SystemTask::Import => "lianyi import".into(),
            SystemTask::Demo => "lianyi demo".into(),
            SystemTask::Reindex => "lianyi reindex".into(),
            SystemTask::Hl7Inbound(sender) => format!("hl7:{sender}"),
            SystemTask::DicomInbound(ae) => format!("dicom:{ae}"),
            SystemTask::OutboundDelivery => "lianyi outbound".into(),
            SystemTask::MessageRetention => "lianyi retention".into(),
            SystemTask::CriticalValues => "critical-values".into(),
            SystemTask::Billing => "billing".into(),
            SystemTask::Empi { what, by } => format!("empi ({what} by {by})"),
            SystemTask::Operations => "lianyi operations".into(),
            SystemTask::Monitoring => "lianyi monitoring".into(),
            SystemTask::Roster { by } => format!("roster (by {by})"),
            SystemTask::Dashboards => "lianyi dashboards".into(),
            SystemTask::Portal => "lianyi portal".into(),
            SystemTask::Operator(name) => name.clone(),
        }
    }
}

/// Who is calling. Made only by this crate; read-only elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub(crate) actor: String,
    pub(crate) kind: ActorKind,
    pub(crate) role: Option<String>,
    pub(crate) campus: Option<CampusId>,
    pub(crate) client_addr: Option<String>,
    pub(crate) access: Access,
    /// Platform capabilities beyond FHIR (from roles).
    pub(crate) capabilities: Vec<Capability>,
}

impl Caller {
    pub fn anonymous(client_addr: Option<String>) -> Self {
        Caller {
            actor: "anonymous".into(),
            kind: ActorKind::Anonymous,
            role: None,
            campus: None,
            client_addr,
            access: Access::nothing(),
            capabilities: Vec::new(),
        }
    }

    pub(crate) fn new(
        actor: String,
        kind: ActorKind,
        role: Option<String>,
        campus: Option<CampusId>,
        client_addr: Option<String>,
        access: Access,
        capabilities: Vec<Capability>,
    ) -> Caller {
        Caller { actor, kind, role, campus, client_addr, access, capabilities }
    }

    /// The platform acting for `task`: every campus, every interaction, named for the
    /// audit log.
    pub fn task(task: SystemTask) -> Self {
        Caller {
            actor: task.actor(),
            kind: ActorKind::System,
            role: None,
            campus: None,
            client_addr: None,
            access: Access::unrestricted(),
            capabilities: vec![
                Capability::AdministerUsers,
                Capability::ReviewAudit,
                Capability::ManageIntegration,
                Capability::ManagePrices,
                Capability::KeepStock,
                Capability::ViewReports,
                Capability::OperateIt,
                Capability::ManageIt,
                Capability::ManageRosters,
                Capability::KeepMaterials,
                Capability::RequestMaterials,
                Capability::KeepEquipment,
                Capability::ApproveScrapping,
                Capability::ReportRepairs,
                Capability::Publish,
                Capability::KeepStaff,
                Capability::HandleFeedback,
                Capability::AdmitPatients,
                Capability::KeepWard,
                Capability::SetWardRules,
            ],
        }
    }

    /// The platform acting for `task` at one campus only (what it writes belongs to
    /// that campus: the critical-value watcher's tasks belong to the result's).
    pub fn task_at(task: SystemTask, campus: CampusId) -> Self {
        let mut c = Caller::task(task);
        c.access =
            Access::single(ScopeSet::parse("system/*.cruds").unwrap_or_default(), Campuses::Only(vec![campus]), None);
        c
    }

    /// "user:dr.li", "client:lab-east", "hl7:LIS^EAST", "lianyi import".
    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn kind(&self) -> ActorKind {
        self.kind
    }

    /// The caller's roles, comma-separated (users only).
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// The caller's first campus (for the audit log).
    pub fn campus(&self) -> Option<&CampusId> {
        self.campus.as_ref()
    }

    pub fn client_addr(&self) -> Option<&str> {
        self.client_addr.as_deref()
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// This caller without the platform capabilities of its roles (FHIR access only).
    pub fn without_capabilities(&self) -> Caller {
        Caller { capabilities: Vec::new(), ..self.clone() }
    }

    /// The caller's roles at every campus: for searching the patient index group-wide,
    /// where every record looked at is audited as read by the caller.
    pub fn group_wide(&self) -> Caller {
        let mut wide = self.clone();
        if let Some(grants) = &self.access.grants {
            wide.access.grants =
                Some(grants.iter().map(|g| Grant { scopes: g.scopes.clone(), campuses: Campuses::All }).collect());
        }
        wide
    }

    /// The caller with `patient`'s whole record open across campuses, when the
    /// patient belongs to a campus where the caller may read patients: the record's
    /// own campus or a campus where the patient holds an MRN (`campuses`). The rule of
    /// the record across campuses; break-the-glass is the way for anyone else.
    pub fn open_record(&self, patient: &str, campuses: &[&str]) -> Option<Caller> {
        let mine = self.access.campuses_for("Patient", Perm::Read);
        if !campuses.iter().any(|c| mine.contains(c)) {
            return None;
        }
        let mut care = self.clone();
        if !care.access.is_open(patient) {
            care.access.open_patients.push(patient.to_string());
        }
        Some(care)
    }

    /// A patient-bound caller (a portal account, or a proxy acting for the patient)
    /// doing the patient's own business at `campus`: booking, cancelling and moving
    /// their appointments (Appointments in their own compartment, written as that
    /// campus's, and the Slot each takes or frees, wherever it is kept), and asking
    /// the care team (a Communication, with a photo as a DocumentReference). Given by
    /// the portal's services only, after their rules; the account's own grants (what
    /// its token reaches through the API) stay read-only.
    pub fn self_service(&self, campus: &CampusId) -> Option<Caller> {
        self.access.patient.as_ref()?;
        let mut booking = self.clone();
        let grants = booking.access.grants.get_or_insert_with(Vec::new);
        // First, so that the Appointment belongs to the doctor's campus; the Slot is
        // taken wherever it is kept.
        grants.insert(
            0,
            Grant {
                scopes: ScopeSet::parse("patient/Appointment.cru patient/Communication.c patient/DocumentReference.c")
                    .unwrap_or_default(),
                campuses: Campuses::Only(vec![campus.clone()]),
            },
        );
        grants
            .insert(1, Grant { scopes: ScopeSet::parse("user/Slot.ru").unwrap_or_default(), campuses: Campuses::All });
        Some(booking)
    }

    /// The caller keeping beds at `campus`: reading and updating the bed Locations
    /// (their state) and the admission orders (ServiceRequests) it admits. Given by
    /// the inpatient service only, after its rules (the admission office admitting a
    /// patient, a ward nurse receiving or moving one); the caller's own grants (what
    /// its token reaches through the API) stay as they are.
    pub fn keeping_beds(&self, campus: &CampusId) -> Caller {
        self.granted_at("user/Location.rus user/ServiceRequest.rus", campus)
    }

    /// The caller verifying a ward's orders at `campus` (核对): reading and updating
    /// the stays' MedicationRequests and ServiceRequests to record who verified them.
    /// Given by the inpatient service only, to ward nurses, after its rules.
    pub fn checking_orders(&self, campus: &CampusId) -> Caller {
        self.granted_at("user/MedicationRequest.rus user/ServiceRequest.rus", campus)
    }

    /// The caller sending a ward's medication round to the inpatient pharmacy at
    /// `campus` (病区摆药): writing and reading the round's MedicationDispenses in
    /// preparation. Given by the inpatient service only, to ward nurses.
    pub fn sending_rounds(&self, campus: &CampusId) -> Caller {
        self.granted_at("user/MedicationDispense.crs", campus)
    }

    /// The caller collecting a specimen for a ward's lab order at `campus` (标本采集):
    /// writing the Specimen and marking the order collected. Given by the inpatient
    /// service only, to ward nurses.
    pub fn collecting_specimens(&self, campus: &CampusId) -> Caller {
        self.granted_at("user/Specimen.crs user/ServiceRequest.rus", campus)
    }

    /// This caller with `scopes` added at `campus` (an unrestricted caller unchanged).
    fn granted_at(&self, scopes: &str, campus: &CampusId) -> Caller {
        let mut more = self.clone();
        if let Some(grants) = more.access.grants.as_mut() {
            grants.push(Grant {
                scopes: ScopeSet::parse(scopes).unwrap_or_default(),
                campuses: Campuses::Only(vec![campus.clone()]),
            });
        }
        more
    }

    /// The caller writing as `campus` only (the grants that cover it, limited to it):
    /// a record registered here belongs to this campus. `None` when no grant covers it.
    pub fn at_campus(&self, campus: &CampusId) -> Option<Caller> {
        let mut here = self.clone();
        if let Some(grants) = &self.access.grants {
            let covering: Vec<Grant> = grants
                .iter()
                .filter(|g| g.campuses.contains(campus.as_str()))
                .map(|g| Grant { scopes: g.scopes.clone(), campuses: Campuses::Only(vec![campus.clone()]) })
                .collect();
            if covering.is_empty() {
                return None;
            }
            here.access.grants = Some(covering);
        }
        Some(here)
    }

    pub fn can(&self, c: Capability) -> bool {
        self.capabilities.contains(&c)
    }

    pub fn is_authenticated(&self) -> bool {
        self.kind != ActorKind::Anonymous
    }

    /// An audit entry for this caller; the caller of this fills in the rest.
    pub fn entry(&self, now_ms: i64, action: &str, outcome: &str) -> AuditEntry {
        AuditEntry {
            recorded_at: now_ms,
            actor: self.actor.clone(),
            actor_kind: self.kind.as_str().into(),
            role: self.role.clone(),
            campus: self.campus.clone().map(String::from),
            action: action.into(),
            outcome: outcome.into(),
            client_addr: self.client_addr.clone(),
            ..Default::default()
        }
    }
}
