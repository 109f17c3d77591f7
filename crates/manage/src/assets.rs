//! The medical equipment service (设备): the asset register of each campus, an asset's
//! life from purchase through acceptance (验收), preventive maintenance and metrology
//! (计量) with their reminders, the departments' repair requests (报修) with response
//! and repair times, and scrapping (报废) approved by a manager.
//!
//! Who may do what: equipment engineers (设备科, [`Capability::KeepEquipment`]) keep
//! their campus's register, accept, maintain, calibrate, take and finish repairs and
//! ask for scrapping; managers ([`Capability::ApproveScrapping`]) approve or refuse
//! it; clinical staff ([`Capability::ReportRepairs`]) report faults of their own
//! departments' equipment. Staff of a campus read its register. Every step is audited.

use lianyi_billing::money::Fen;
use lianyi_clinical::scheduling::{Scheduling, local_date};
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::StoreError;
use lianyi_store::equipment::{Asset, Done, Event, Repair};

pub use lianyi_clinical::registry::FieldError;

use crate::equipment::{Due, State, Step, add_days, due, next};
use crate::rosters::Rosters;

/// Days ahead a maintenance or calibration is reminded.
pub const REMINDER_DAYS: i64 = 30;
/// Equipment categories.
pub const CATEGORIES: [&str; 7] = ["imaging", "ultrasound", "analyser", "monitor", "ventilator", "surgical", "other"];

#[derive(Debug, thiserror::Error)]
pub enum EquipmentError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Roster(#[from] crate::rosters::RosterError),
    #[error(transparent)]
    Schedule(#[from] lianyi_clinical::scheduling::ScheduleError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
    #[error(transparent)]
    Service(#[from] lianyi_services::ServiceError),
}

impl From<StoreError> for EquipmentError {
    /// A refused step (`field: why`) is a field error.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(msg) => {
                let (field, detail) = msg.split_once(": ").unwrap_or(("state", msg.as_str()));
                let field = ["tag", "asset", "state", "repair"].into_iter().find(|f| *f == field).unwrap_or("state");
                EquipmentError::Invalid(vec![FieldError { field, code: field, detail: detail.to_string() }])
            }
            other => EquipmentError::Store(other),
        }
    }
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> EquipmentError {
    EquipmentError::Invalid(vec![FieldError { field, code: rule, detail: detail.into() }])
}

fn sized(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.trim().chars().count() <= max
}

fn optional(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// An asset as the register form gives it.
#[derive(Clone, Debug, Default)]
pub struct AssetForm {
    pub department: String,
    pub tag: String,
    pub name_zh: String,
    pub name_en: String,
    pub category: String,
    pub model: String,
    pub maker: String,
    pub serial: String,
    /// Yuan.
    pub cost: String,
    /// `YYYY-MM-DD`.
    pub purchased_on: String,
    pub ci: String,
    pub ae_title: String,
    /// An analyser's identity in its results (HL7 OBX-18).
    pub equipment_id: String,
    /// Days between preventive maintenances (empty: none planned).
    pub pm_days: String,
    /// Days between calibrations (empty: not a measuring device).
    pub calibration_days: String,
}

/// An asset with its reminders and open repair.
#[derive(Clone, Debug)]
pub struct AssetView {
    pub asset: Asset,
    pub pm: Option<Due>,
    pub calibration: Option<Due>,
    pub open_repair: Option<Repair>,
}

/// A repair with its times in minutes.
#[derive(Clone, Debug)]
pub struct RepairView {
    pub repair: Repair,
    pub asset: Option<Asset>,
    /// From the report to an engineer taking it.
    pub response_minutes: Option<i64>,
    /// From the report to the asset back in service.
    pub repair_minutes: Option<i64>,
}

/// The equipment service.
#[derive(Clone, Debug)]
pub struct Equipment {
    fhir: FhirService,
    rosters: Rosters,
    scheduling: Scheduling,
}

impl Equipment {
    pub fn new(fhir: FhirService) -> Equipment {
        Equipment { rosters: Rosters::new(fhir.clone()), scheduling: Scheduling::new(fhir.clone()), fhir }
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), EquipmentError> {
        crate::common::audit(&self.fhir, caller, action, detail).await.map_err(EquipmentError::Audit)
    }

    fn done(&self, caller: &Caller, note: Option<String>) -> Done {
        Done { actor: caller.actor().to_string(), at: self.fhir.now_ms(), note }
    }

    /// Today in Beijing.
    pub fn today(&self) -> String {
        local_date(self.fhir.now_ms())
    }

    fn may_read(caller: &Caller, campus: &str) -> Result<(), EquipmentError> {
        if crate::common::staff_at(caller, campus) {
            Ok(())
        } else {
            Err(EquipmentError::Forbidden("a campus's equipment is read by its staff"))
        }
    }

    /// An equipment engineer of the campus.
    pub fn may_keep(caller: &Caller, campus: &str) -> Result<(), EquipmentError> {
        if crate::common::holds_at(caller, Capability::KeepEquipment, campus) {
            Ok(())
        } else {
            Err(EquipmentError::Forbidden("a campus's equipment is kept by its equipment engineers"))
        }
    }

    /// How many results each analyser (its OBX-18 identity) of `campus` made in
    /// `[from, to)` (milliseconds): its use, for the campus's equipment keepers and
    /// managers. Counted by the platform (counts only: no result is read).
    pub async fn tests_by_device(
        &self,
        caller: &Caller,
        campus: &str,
        devices: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64)>, EquipmentError> {
        let reads = caller.can(Capability::KeepEquipment) || caller.can(Capability::ViewReports);
        if !reads || !caller.access().all_campuses().contains(campus) {
            return Err(EquipmentError::Forbidden(
                "the devices' use is read by the campus's equipment keepers and managers",
            ));
        }
        let counter = Caller::task(lianyi_security::SystemTask::Dashboards);
        let rt =
            lianyi_fhir::ResourceType::parse("Observation").ok_or_else(|| EquipmentError::NotFound("type".into()))?;
        let permit = self.fhir.permit(&counter, rt).await?;
        let instant = lianyi_clinical::scheduling::local_instant;
        let mut out = Vec::new();
        for d in devices {
            let params = vec![
                ("device:identifier".to_string(), d.clone()),
                ("date".to_string(), format!("ge{}", instant(from))),
                ("date".to_string(), format!("lt{}", instant(to))),
                ("_summary".to_string(), "count".to_string()),
            ];
            let req = lianyi_fhir::search::parse_search(rt, &params).map_err(|i| {
                EquipmentError::Invalid(vec![FieldError {
                    field: "equipment_id",
                    code: "search",
                    detail: i.diagnostics,
                }])
            })?;
            let page = self.fhir.search(&permit, &req).await?;
            out.push((d.clone(), page.total.unwrap_or(0)));
        }
        Ok(out)
    }

    async fn asset_of(&self, id: i64) -> Result<Asset, EquipmentError> {
        self.fhir
            .operations()
            .equipment()
            .asset(id)
            .await?
            .ok_or_else(|| EquipmentError::NotFound(format!("asset {id}")))
    }

    /// Registers a purchased asset (not in service until accepted).
    pub async fn register(&self, caller: &Caller, form: &AssetForm) -> Result<i64, EquipmentError> {
        let department = form.department.trim();
        let campus = if department.is_empty() {
            return Err(invalid("department", "required", "the department that owns it"));
        } else {
            self.rosters.campus_of(caller, department).await?
        };
        Self::may_keep(caller, &campus)?;
        let mut errors = Vec::new();
        let mut rule = |ok: bool, field: &'static str, code: &'static str, detail: &str| {
            if !ok {
                errors.push(FieldError { field, code, detail: detail.to_string() });
            }
        };
        let tag = form.tag.trim();
        rule(
            !tag.is_empty()
                && tag.len() <= 32
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')),
            "tag",
            "code",
            "1 to 32 letters, digits, '-' or '_'",
        );
        rule(sized(&form.name_zh, 60), "name_zh", "required", "1 to 60 characters");
        rule(sized(&form.name_en, 60), "name_en", "required", "1 to 60 characters");
        rule(CATEGORIES.contains(&form.category.trim()), "category", "choice", "one of the equipment categories");
        for (value, field) in [(&form.model, "model"), (&form.maker, "maker"), (&form.serial, "serial")] {
            rule(value.trim().chars().count() <= 60, field, "length", "at most 60 characters");
        }
        let cost = Fen::parse_yuan(&form.cost).ok();
        rule(cost.is_some(), "cost", "money", "an amount in yuan, at most two decimals");
        let purchased = form.purchased_on.trim();
        rule(
            crate::equipment::days_between(purchased, &self.today()).is_some_and(|d| d >= 0),
            "purchased_on",
            "date",
            "a date, today or before",
        );
        let days = |s: &str| -> Result<Option<i64>, ()> {
            match s.trim() {
                "" => Ok(None),
                t => t.parse::<i64>().ok().filter(|d| (1..=3650).contains(d)).map(Some).ok_or(()),
            }
        };
        let pm_days = days(&form.pm_days);
        rule(pm_days.is_ok(), "pm_days", "range", "whole days, 1 to 3650, or empty");
        let calibration_days = days(&form.calibration_days);
        rule(calibration_days.is_ok(), "calibration_days", "range", "whole days, 1 to 3650, or empty");
        let ae = form.ae_title.trim();
        rule(ae.len() <= 16 && ae.bytes().all(|b| b.is_ascii_graphic()), "ae_title", "ae-title", "up to 16 characters");
        let equipment_id = form.equipment_id.trim();
        rule(
            equipment_id.chars().count() <= 64 && !equipment_id.contains(['|', '^', '~', '\\', '&']),
            "equipment_id",
            "equipment-id",
            "up to 64 characters, without HL7's separators",
        );
        if !errors.is_empty() {
            return Err(EquipmentError::Invalid(errors));
        }
        let asset = Asset {
            tag: tag.to_string(),
            campus: campus.clone(),
            department: department.to_string(),
            name_zh: form.name_zh.trim().to_string(),
            name_en: form.name_en.trim().to_string(),
            category: form.category.trim().to_string(),
            model: optional(&form.model),
            maker: optional(&form.maker),
            serial: optional(&form.serial),
            cost_fen: cost.map(|c| c.0).unwrap_or_default(),
            purchased_on: purchased.to_string(),
            state: State::Purchased.code().to_string(),
            ci: optional(&form.ci),
            ae_title: optional(ae),
            equipment_id: optional(equipment_id),
            pm_days: pm_days.ok().flatten(),
            calibration_days: calibration_days.ok().flatten(),
            ..Default::default()
        };
        let id = self.fhir.operations().equipment().add(&asset, &self.done(caller, None)).await?;
        self.audit(caller, "equipment-register", format!("{campus} {tag} asset {id}")).await?;
        Ok(id)
    }

    async fn step(&self, caller: &Caller, id: i64, step: Step, note: Option<String>) -> Result<Asset, EquipmentError> {
        let asset = self.asset_of(id).await?;
        match step {
            Step::ApproveScrap | Step::RejectScrap => {
                if !crate::common::holds_at(caller, Capability::ApproveScrapping, &asset.campus) {
                    return Err(EquipmentError::Forbidden("scrapping is approved by the campus's managers"));
                }
            }
            _ => Self::may_keep(caller, &asset.campus)?,
        }
        let from: Vec<&str> = State::ALL.into_iter().filter(|s| next(*s, step).is_some()).map(State::code).collect();
        // Each step leads to one state; from a state it does not follow, the store
        // refuses it by name (the state read here may be stale).
        let Some(to) = State::ALL.into_iter().find_map(|s| next(s, step)) else {
            return Err(invalid("state", "state", "not a step of an asset's life"));
        };
        let today = self.today();
        let dues = if step == Step::Accept {
            (asset.pm_days.and_then(|d| add_days(&today, d)), asset.calibration_days.and_then(|d| add_days(&today, d)))
        } else {
            (None, None)
        };
        self.fhir
            .operations()
            .equipment()
            .step(id, &from, to.code(), step.code(), dues, &self.done(caller, note))
            .await?;
        self.audit(caller, &format!("equipment-{}", step.code()), format!("{} {} asset {id}", asset.campus, asset.tag))
            .await?;
        self.asset_of(id).await
    }

    /// Acceptance (验收): the asset goes into service, its first maintenance and
    /// calibration due an interval from today.
    pub async fn accept(&self, caller: &Caller, id: i64, note: &str) -> Result<Asset, EquipmentError> {
        self.step(caller, id, Step::Accept, optional(note)).await
    }

    /// Asks for an asset to be scrapped (报废), with the reason.
    pub async fn request_scrap(&self, caller: &Caller, id: i64, reason: &str) -> Result<Asset, EquipmentError> {
        if !sized(reason, 200) {
            return Err(invalid("reason", "required", "why it is to be scrapped, 1 to 200 characters"));
        }
        self.step(caller, id, Step::RequestScrap, optional(reason)).await
    }

    /// Approves scrapping (the end of the asset's life) or refuses it.
    pub async fn decide_scrap(
        &self,
        caller: &Caller,
        id: i64,
        approve: bool,
        note: &str,
    ) -> Result<Asset, EquipmentError> {
        let step = if approve { Step::ApproveScrap } else { Step::RejectScrap };
        self.step(caller, id, step, optional(note)).await
    }

    /// Records a preventive maintenance (`pm`) or a calibration (`calibration`) done
    /// today; the next is due an interval from today.
    pub async fn serviced(&self, caller: &Caller, id: i64, kind: &str, note: &str) -> Result<Asset, EquipmentError> {
        let asset = self.asset_of(id).await?;
        Self::may_keep(caller, &asset.campus)?;
        let interval = match kind {
            "pm" => asset.pm_days,
            "calibration" => asset.calibration_days,
            _ => return Err(invalid("kind", "choice", "pm or calibration")),
        };
        let Some(next_due) = interval.and_then(|d| add_days(&self.today(), d)) else {
            return Err(invalid("kind", "no-interval", "the asset has no interval for it"));
        };
        self.fhir.operations().equipment().serviced(id, kind, &next_due, &self.done(caller, optional(note))).await?;
        self.audit(caller, &format!("equipment-{kind}"), format!("{} {} next {next_due}", asset.campus, asset.tag))
            .await?;
        self.asset_of(id).await
    }

    /// A campus's register with each asset's reminders and open repair.
    pub async fn register_of(&self, caller: &Caller, campus: &str) -> Result<Vec<AssetView>, EquipmentError> {
        Self::may_read(caller, campus)?;
        let ops = self.fhir.operations().equipment();
        let assets = ops.assets(Some(campus)).await?;
        let repairs = ops.repairs(campus, 500).await?;
        let today = self.today();
        let live = |a: &Asset| matches!(State::parse(&a.state), Some(State::InService | State::UnderRepair));
        Ok(assets
            .into_iter()
            .map(|a| AssetView {
                pm: a.pm_due.as_deref().filter(|_| live(&a)).and_then(|d| due(d, &today, REMINDER_DAYS)),
                calibration: a
                    .calibration_due
                    .as_deref()
                    .filter(|_| live(&a))
                    .and_then(|d| due(d, &today, REMINDER_DAYS)),
                open_repair: repairs.iter().find(|r| r.asset == a.id && r.status != "repaired").cloned(),
                asset: a,
            })
            .collect())
    }

    /// One asset with its events.
    pub async fn asset(&self, caller: &Caller, id: i64) -> Result<(Asset, Vec<Event>), EquipmentError> {
        let asset = self.asset_of(id).await?;
        Self::may_read(caller, &asset.campus)?;
        let events = self.fhir.operations().equipment().events(id).await?;
        Ok((asset, events))
    }

    /// The departments the caller reports for: its own (and, for an engineer, every
    /// department of its campuses).
    pub async fn may_report(&self, caller: &Caller, asset: &Asset) -> Result<(), EquipmentError> {
        if Self::may_keep(caller, &asset.campus).is_ok() {
            return Ok(());
        }
        if crate::common::holds_at(caller, Capability::ReportRepairs, &asset.campus)
            && self.scheduling.own_departments(caller).await?.contains(&asset.department)
        {
            return Ok(());
        }
        Err(EquipmentError::Forbidden("a department reports the faults of its own equipment"))
    }

    /// The caller's own departments.
    pub async fn own_departments(&self, caller: &Caller) -> Result<Vec<String>, EquipmentError> {
        Ok(self.scheduling.own_departments(caller).await?)
    }

    /// A department reports a fault (报修).
    pub async fn report(&self, caller: &Caller, asset: i64, fault: &str) -> Result<i64, EquipmentError> {
        let a = match self.fhir.operations().equipment().asset(asset).await? {
            Some(a) => a,
            None => return Err(invalid("asset", "unknown", "choose an asset of your department")),
        };
        self.may_report(caller, &a).await?;
        if !sized(fault, 500) {
            return Err(invalid("fault", "required", "what is wrong, 1 to 500 characters"));
        }
        let r = Repair {
            asset,
            campus: a.campus.clone(),
            department: a.department.clone(),
            fault: fault.trim().to_string(),
            reported_by: caller.actor().to_string(),
            reported_at: self.fhir.now_ms(),
            ..Default::default()
        };
        let id = self.fhir.operations().equipment().report(&r).await?;
        self.audit(caller, "equipment-repair-report", format!("{} {} repair {id}", a.campus, a.tag)).await?;
        Ok(id)
    }

    async fn repair_kept(&self, caller: &Caller, id: i64) -> Result<Repair, EquipmentError> {
        let r = self
            .fhir
            .operations()
            .equipment()
            .repair(id)
            .await?
            .ok_or_else(|| EquipmentError::NotFound(format!("repair {id}")))?;
        Self::may_keep(caller, &r.campus)?;
        Ok(r)
    }

    /// An engineer takes a repair: its response time ends; the asset is under repair.
    pub async fn take(&self, caller: &Caller, id: i64) -> Result<RepairView, EquipmentError> {
        let r = self.repair_kept(caller, id).await?;
        let taken = self.fhir.operations().equipment().take(id, &self.done(caller, None)).await?;
        self.audit(caller, "equipment-repair-take", format!("{} repair {id}", r.campus)).await?;
        Ok(view(taken, None))
    }

    /// The engineer finishes a repair: what was done and what it cost (yuan, may be
    /// empty); the asset is back in service.
    pub async fn finish(&self, caller: &Caller, id: i64, work: &str, cost: &str) -> Result<RepairView, EquipmentError> {
        let r = self.repair_kept(caller, id).await?;
        if !sized(work, 500) {
            return Err(invalid("work", "required", "what was done, 1 to 500 characters"));
        }
        let cost = match cost.trim() {
            "" => None,
            c => Some(Fen::parse_yuan(c).map_err(|_| invalid("cost", "money", "an amount in yuan"))?.0),
        };
        let done = self.fhir.operations().equipment().finish(id, work.trim(), cost, &self.done(caller, None)).await?;
        self.audit(caller, "equipment-repair-done", format!("{} repair {id}", r.campus)).await?;
        Ok(view(done, None))
    }

    /// A campus's repairs (open first) with their assets and times.
    pub async fn repairs(&self, caller: &Caller, campus: &str) -> Result<Vec<RepairView>, EquipmentError> {
        Self::may_read(caller, campus)?;
        let ops = self.fhir.operations().equipment();
        let assets = ops.assets(Some(campus)).await?;
        Ok(ops
            .repairs(campus, 200)
            .await?
            .into_iter()
            .map(|r| {
                let a = assets.iter().find(|a| a.id == r.asset).cloned();
                view(r, a)
            })
            .collect())
    }
}

fn view(repair: Repair, asset: Option<Asset>) -> RepairView {
    RepairView {
        response_minutes: crate::equipment::minutes(repair.reported_at, repair.taken_at),
        repair_minutes: crate::equipment::minutes(repair.reported_at, repair.repaired_at),
        repair,
        asset,
    }
}
