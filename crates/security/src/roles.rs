//! Roles and what they may do, least privilege first. Each role is a set of SMART
//! `user/` scopes over FHIR types plus platform capabilities that are not FHIR
//! (user administration, audit review). A user holds roles per campus; the
//! administrator manages accounts but reads no health data, and the privacy officer
//! reviews the audit log (separation of duties, GB/T 22239 level 3).

use crate::scope::ScopeSet;

/// Platform capabilities outside FHIR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Add, disable and reset users and API clients.
    AdministerUsers,
    /// Read the audit log and the break-the-glass report.
    ReviewAudit,
    /// Open a record outside one's campuses, with a reason (clinicians).
    BreakTheGlass,
    /// Configure outbound channels, read the integration message log, replay messages.
    ManageIntegration,
    /// Follow the hospital's quality and management figures (critical-value response
    /// times today; dashboards later).
    ViewReports,
    /// Keep the price list: add chargeable items and set their prices (物价管理).
    ManagePrices,
    /// Keep the pharmacy's stock: stores, purchase orders and receiving, transfers,
    /// stocktakes and reorder levels (药库管理).
    KeepStock,
    /// Work in IT operations: the configuration database, the service desk's queues,
    /// the knowledge base (信息科工程师).
    OperateIt,
    /// Lead IT operations: SLA targets and calendars, the priority matrix, change
    /// approval boards, the team's statistics (信息科主管).
    ManageIt,
    /// Keep rosters (排班): shift types and rules of a campus (managers), a
    /// department's monthly roster (its head, or a manager of its campus).
    ManageRosters,
    /// Keep the materials (物资管理): the catalogue, each campus warehouse's receiving,
    /// stocktakes and reorder levels, and the departments' requisitions, approved and
    /// issued.
    KeepMaterials,
    /// Request materials for one's own department, count its stock, and record the
    /// high-value consumables used on a patient (科室申领).
    RequestMaterials,
    /// Keep a campus's medical equipment (设备科): the register, acceptance,
    /// maintenance and metrology, repairs, and asking for scrapping.
    KeepEquipment,
    /// Approve or refuse the scrapping of equipment (报废审批).
    ApproveScrapping,
    /// Report a fault of one's own department's equipment (报修).
    ReportRepairs,
    /// Publish announcements, news and policies: managers to the group (when they
    /// serve every campus), a campus, a department or a role; department heads to
    /// their own department (通知公告).
    Publish,
    /// Keep staff records (人事): titles, practising campuses, licences and their
    /// expiry reminders.
    KeepStaff,
    /// Handle patients' feedback and complaints (患者意见与投诉): name the owner who
    /// answers each, answer it, follow the deadlines.
    HandleFeedback,
    /// Admit patients (住院处): register a stay from a doctor's admission order and
    /// assign its ward and bed.
    AdmitPatients,
    /// Work on a ward (病区护士): receive admitted patients onto their beds, keep the
    /// beds' state (cleaned, closed), move patients between beds.
    KeepWard,
    /// Set how a campus's wards work (病区规则): the medication round times and whether
    /// orders need a second nurse's check (managers of the campus).
    SetWardRules,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Registrar,
    Doctor,
    /// A doctor who heads a department: receives escalated critical values.
    DepartmentHead,
    Nurse,
    Pharmacist,
    /// Keeps the pharmacy's stock (药库管理员): receiving, transfers, stocktakes.
    StockKeeper,
    /// Keeps the materials warehouse (物资管理员): the catalogue, receiving, the
    /// departments' requisitions.
    MaterialsKeeper,
    /// Keeps the medical equipment (设备科工程师): the register, acceptance,
    /// maintenance, metrology and repairs.
    EquipmentEngineer,
    /// Keeps staff records (人事专员): titles, licences, practising campuses.
    HumanResources,
    LabTechnician,
    Radiologist,
    Cashier,
    Manager,
    ItEngineer,
    /// Leads the IT team (信息科主管): what an IT engineer does, and the service
    /// desk's settings and statistics.
    ItManager,
    Administrator,
    PrivacyOfficer,
    Patient,
}

const CLINICAL_READ: &str = "user/Patient.rs user/Encounter.rs user/Condition.rs user/AllergyIntolerance.rs \
     user/Observation.rs user/DiagnosticReport.rs user/ServiceRequest.rs user/Specimen.rs user/ImagingStudy.rs \
     user/MedicationRequest.rs user/MedicationDispense.rs user/MedicationAdministration.rs user/Procedure.rs \
     user/DocumentReference.rs user/Composition.rs user/CarePlan.rs user/CareTeam.rs user/Goal.rs \
     user/Immunization.rs user/Flag.rs user/Task.rs user/Communication.rs user/Appointment.rs \
     user/Coverage.rs user/Provenance.rs user/DetectedIssue.rs";
const DIRECTORY_READ: &str = "user/Organization.rs user/Location.rs user/Practitioner.rs user/PractitionerRole.rs \
     user/Medication.rs user/Schedule.rs user/Slot.rs user/Device.rs";

impl Role {
    pub const ALL: [Role; 18] = [
        Role::Registrar,
        Role::Doctor,
        Role::DepartmentHead,
        Role::Nurse,
        Role::Pharmacist,
        Role::StockKeeper,
        Role::MaterialsKeeper,
        Role::EquipmentEngineer,
        Role::HumanResources,
        Role::LabTechnician,
        Role::Radiologist,
        Role::Cashier,
        Role::Manager,
        Role::ItEngineer,
        Role::ItManager,
        Role::Administrator,
        Role::PrivacyOfficer,
        Role::Patient,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Role::Registrar => "registrar",
            Role::Doctor => "doctor",
            Role::DepartmentHead => "department-head",
            Role::Nurse => "nurse",
            Role::Pharmacist => "pharmacist",
            Role::StockKeeper => "stock-keeper",
            Role::MaterialsKeeper => "materials-keeper",
            Role::EquipmentEngineer => "equipment-engineer",
            Role::HumanResources => "human-resources",
            Role::LabTechnician => "lab-technician",
            Role::Radiologist => "radiologist",
            Role::Cashier => "cashier",
            Role::Manager => "manager",
            Role::ItEngineer => "it-engineer",
            Role::ItManager => "it-manager",
            Role::Administrator => "administrator",
            Role::PrivacyOfficer => "privacy-officer",
            Role::Patient => "patient",
        }
    }

    pub fn parse(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The FHIR interactions of the role, as SMART scopes.
    pub fn scopes(self) -> ScopeSet {
        let extra = match self {
            // ImagingStudy: the reconciliation list (studies waiting for their patient).
            Role::Registrar => {
                "user/Patient.cru user/Encounter.cru user/Appointment.cru user/Coverage.cru user/Account.cru \
                 user/Schedule.cru user/Slot.cru user/ImagingStudy.rus"
            }
            Role::Doctor | Role::DepartmentHead => {
                "user/Encounter.cru user/Condition.cru user/AllergyIntolerance.cru user/Observation.cru \
                 user/MedicationRequest.cru user/ServiceRequest.cru user/Procedure.cru user/DocumentReference.cru \
                 user/Composition.cru user/CarePlan.cru user/Flag.cru user/Task.cru user/Communication.cru \
                 user/DetectedIssue.cru"
            }
            Role::Nurse => {
                "user/Observation.cru user/MedicationAdministration.cru user/Task.cru user/Communication.cru \
                 user/Encounter.u user/Flag.cru"
            }
            Role::Pharmacist => "user/MedicationDispense.cru user/Medication.cru",
            Role::LabTechnician => {
                "user/Specimen.cru user/Observation.cru user/DiagnosticReport.cru user/Task.u user/ServiceRequest.u"
            }
            Role::Radiologist => {
                "user/ImagingStudy.cru user/DiagnosticReport.cru user/Observation.cru user/ServiceRequest.u"
            }
            Role::Cashier => "user/ChargeItem.cru user/Invoice.cru user/Account.cru",
            // A title set by HR is written to the person's Practitioner.
            Role::HumanResources => "user/Practitioner.cru user/PractitionerRole.cru",
            Role::StockKeeper
            | Role::MaterialsKeeper
            | Role::EquipmentEngineer
            | Role::Manager
            | Role::ItEngineer
            | Role::ItManager
            | Role::Administrator
            | Role::PrivacyOfficer
            | Role::Patient => "",
        };
        let base = match self {
            Role::Registrar | Role::Cashier => format!(
                "user/Patient.rs user/Encounter.rs user/Coverage.rs user/Account.rs \
                 user/ChargeItem.rs user/Invoice.rs user/Appointment.rs {DIRECTORY_READ}"
            ),
            Role::Doctor
            | Role::DepartmentHead
            | Role::Nurse
            | Role::Pharmacist
            | Role::LabTechnician
            | Role::Radiologist
            | Role::Manager => {
                format!("{CLINICAL_READ} {DIRECTORY_READ}")
            }
            // The drug catalogue and the directory; no patient's record.
            Role::StockKeeper | Role::MaterialsKeeper | Role::EquipmentEngineer | Role::HumanResources => {
                DIRECTORY_READ.to_string()
            }
            Role::ItEngineer | Role::ItManager => {
                "user/Device.rs user/Subscription.rs user/Organization.rs user/Location.rs".to_string()
            }
            Role::Administrator | Role::PrivacyOfficer => "user/Organization.rs user/Location.rs user/Practitioner.rs \
                 user/PractitionerRole.rs"
                .to_string(),
            Role::Patient => format!("patient/*.rs {DIRECTORY_READ}"),
        };
        ScopeSet::parse(&format!("{base} {extra}")).unwrap_or_default()
    }

    pub fn capabilities(self) -> &'static [Capability] {
        match self {
            Role::Doctor => &[Capability::BreakTheGlass, Capability::RequestMaterials, Capability::ReportRepairs],
            Role::Nurse => &[
                Capability::BreakTheGlass,
                Capability::RequestMaterials,
                Capability::ReportRepairs,
                Capability::KeepWard,
            ],
            Role::Registrar => &[Capability::AdmitPatients],
            Role::DepartmentHead => &[
                Capability::BreakTheGlass,
                Capability::ViewReports,
                Capability::ManageRosters,
                Capability::RequestMaterials,
                Capability::ReportRepairs,
                Capability::Publish,
                Capability::HandleFeedback,
            ],
            Role::LabTechnician | Role::Radiologist => &[Capability::ReportRepairs],
            Role::Manager => &[
                Capability::ViewReports,
                Capability::ManagePrices,
                Capability::ManageRosters,
                Capability::ApproveScrapping,
                Capability::Publish,
                Capability::HandleFeedback,
                Capability::SetWardRules,
            ],
            Role::Administrator => &[Capability::AdministerUsers, Capability::ManageIntegration],
            Role::ItEngineer => &[Capability::ManageIntegration, Capability::OperateIt],
            Role::ItManager => &[Capability::ManageIntegration, Capability::OperateIt, Capability::ManageIt],
            Role::PrivacyOfficer => &[Capability::ReviewAudit],
            Role::StockKeeper => &[Capability::KeepStock],
            Role::MaterialsKeeper => &[Capability::KeepMaterials],
            Role::EquipmentEngineer => &[Capability::KeepEquipment],
            Role::HumanResources => &[Capability::KeepStaff],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Perm;

    #[test]
    fn every_role_parses_and_least_privilege_holds() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.code()), Some(r));
            assert!(!r.scopes().is_empty(), "{r:?}");
        }
        assert!(Role::Doctor.scopes().allows("MedicationRequest", Perm::Create));
        assert!(!Role::Nurse.scopes().allows("MedicationRequest", Perm::Create));
        assert!(!Role::Administrator.scopes().allows("Patient", Perm::Read), "admins read no health data");
        assert!(!Role::ItEngineer.scopes().allows("Observation", Perm::Read));
        assert!(Role::Pharmacist.scopes().allows("MedicationDispense", Perm::Create));
        assert!(!Role::Cashier.scopes().allows("Observation", Perm::Read));
        assert!(Role::Registrar.scopes().allows("Patient", Perm::Create));
        assert!(!Role::StockKeeper.scopes().allows("Patient", Perm::Read), "stock keepers read no record");
        assert!(Role::StockKeeper.capabilities().contains(&Capability::KeepStock));
        assert!(!Role::MaterialsKeeper.scopes().allows("Patient", Perm::Read), "the warehouse reads no record");
        assert!(!Role::MaterialsKeeper.capabilities().contains(&Capability::RequestMaterials));
        assert!(!Role::EquipmentEngineer.scopes().allows("Patient", Perm::Read), "engineers read no record");
        assert!(!Role::EquipmentEngineer.capabilities().contains(&Capability::ApproveScrapping));
        assert!(!Role::HumanResources.scopes().allows("Patient", Perm::Read), "HR reads no record");
        assert!(Role::HumanResources.scopes().allows("Practitioner", Perm::Update));
        assert!(!Role::Doctor.scopes().allows("Patient", Perm::Delete), "nobody deletes patients through a role");
    }
}
