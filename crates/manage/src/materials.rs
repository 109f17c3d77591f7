//! Materials (物资/耗材): the group's catalogue; each campus's warehouse receiving
//! batches (with expiry for sterile goods, and each unit's unique code for high-value
//! consumables); the departments' requisitions (申领) approved and issued by the
//! materials keepers, so stock moves from the warehouse to the department; stocktakes
//! at either place; the low-stock list; and the high-value units used on a patient,
//! charged through billing at the campus's price.
//!
//! Who may do what: materials keepers ([`Capability::KeepMaterials`]) keep the
//! catalogue and their campus's warehouse and decide and issue its requisitions;
//! doctors, nurses and department heads ([`Capability::RequestMaterials`]) request
//! for, count and use the stock of their own departments (a department their
//! Practitioner holds a role in). Staff of a campus read its stock. Every change is
//! audited; stock never goes below zero (the store refuses the whole change).

use lianyi_billing::charges::Charger;
use lianyi_billing::money::Fen;
use lianyi_billing::stock::{Shelf, shelf};
use lianyi_clinical::scheduling::{Scheduling, local_date};
use lianyi_fhir::ResourceType;
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::StoreError;
use lianyi_store::materials::{Batch, Item, Line, Move, Requisition, Stamp, Unit, WAREHOUSE};

pub use lianyi_clinical::registry::FieldError;

use crate::rosters::{Department, Rosters};

/// Days before expiry from which a sterile batch is flagged.
pub const NEAR_EXPIRY_DAYS: i64 = 30;
/// Item kinds.
pub const KINDS: [&str; 3] = ["general", "sterile", "high-value"];
/// The most one requisition line or receipt may move.
const MAX_QUANTITY: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum MaterialsError {
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
    #[error(transparent)]
    Roster(#[from] crate::rosters::RosterError),
    #[error(transparent)]
    Schedule(#[from] lianyi_clinical::scheduling::ScheduleError),
    #[error(transparent)]
    Price(#[from] lianyi_billing::prices::PriceError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
}

impl From<StoreError> for MaterialsError {
    /// A refused rule of the materials tables (`field: why`) is a field error.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(msg) => {
                let (field, detail) = msg.split_once(": ").unwrap_or(("stock", msg.as_str()));
                let field = ["quantity", "lot", "units", "requisition", "batch", "counted", "udi"]
                    .into_iter()
                    .find(|f| *f == field)
                    .unwrap_or("stock");
                // A batch emptied under a change is "short"; the other refusals are
                // coded by their field.
                let code = if field == "quantity" && detail.starts_with("batch ") { "short" } else { field };
                MaterialsError::Invalid(vec![FieldError { field, code, detail: detail.to_string() }])
            }
            other => MaterialsError::Store(other),
        }
    }
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> MaterialsError {
    MaterialsError::Invalid(vec![FieldError { field, code: rule, detail: detail.into() }])
}

/// Collects broken rules by field.
#[derive(Default)]
struct Rules(Vec<FieldError>);

impl Rules {
    fn check(&mut self, ok: bool, field: &'static str, rule: &'static str, detail: impl Into<String>) {
        if !ok {
            self.0.push(FieldError { field, code: rule, detail: detail.into() });
        }
    }

    fn done(self) -> Result<(), MaterialsError> {
        if self.0.is_empty() { Ok(()) } else { Err(MaterialsError::Invalid(self.0)) }
    }
}

fn code_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn sized(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.trim().chars().count() <= max
}

/// A whole number of units, 1 to [`MAX_QUANTITY`].
fn quantity(s: &str) -> Option<i64> {
    s.trim().parse::<i64>().ok().filter(|n| (1..=MAX_QUANTITY).contains(n))
}

fn is_date(s: &str) -> bool {
    lianyi_clinical::scheduling::local_midnight(s).is_some()
}

/// A catalogue item as a form gives it.
#[derive(Clone, Debug, Default)]
pub struct ItemForm {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub unit: String,
    pub kind: String,
    /// Empty or `on` keeps it in use; `off` retires it (no new requests).
    pub active: bool,
}

impl ItemForm {
    /// The item, or every broken rule by field.
    pub fn check(&self) -> Result<Item, MaterialsError> {
        let mut r = Rules::default();
        r.check(code_ok(self.code.trim()), "code", "code", "1 to 32 letters, digits, '-', '_' or '.'");
        r.check(sized(&self.name_zh, 60), "name_zh", "required", "1 to 60 characters");
        r.check(sized(&self.name_en, 60), "name_en", "required", "1 to 60 characters");
        r.check(sized(&self.unit, 10), "unit", "required", "1 to 10 characters");
        r.check(KINDS.contains(&self.kind.trim()), "kind", "choice", "general, sterile or high-value");
        r.done()?;
        Ok(Item {
            code: self.code.trim().to_string(),
            name_zh: self.name_zh.trim().to_string(),
            name_en: self.name_en.trim().to_string(),
            unit: self.unit.trim().to_string(),
            kind: self.kind.trim().to_string(),
            active: self.active,
        })
    }
}

/// A batch received into a campus's warehouse, as a form gives it.
#[derive(Clone, Debug, Default)]
pub struct ReceiptForm {
    pub campus: String,
    pub item: String,
    pub lot: String,
    /// `YYYY-MM-DD`; required for sterile and high-value items.
    pub expiry: String,
    pub quantity: String,
    /// The unit's purchase cost in yuan.
    pub cost: String,
    pub supplier: String,
    /// A high-value item's unique codes, one per unit (lines, commas or spaces).
    pub units: String,
}

/// A department's requisition as a form gives it: `(item, quantity)` lines (empty
/// quantities are skipped).
#[derive(Clone, Debug, Default)]
pub struct RequestForm {
    pub department: String,
    pub lines: Vec<(String, String)>,
    pub note: String,
}

/// One item of a place's stock.
#[derive(Clone, Debug)]
pub struct Held {
    pub item: Item,
    pub batches: Vec<(Batch, Shelf)>,
    /// What may be issued or used: the batches not expired.
    pub usable: i64,
    /// The warehouse's reorder level (0: none).
    pub level: i64,
}

impl Held {
    /// Below its reorder level.
    pub fn low(&self) -> bool {
        self.level > 0 && self.usable < self.level
    }
}

/// One place of a campus (its warehouse, or a department) and what it holds.
#[derive(Clone, Debug)]
pub struct Place {
    /// [`WAREHOUSE`] or a department's id.
    pub location: String,
    pub held: Vec<Held>,
}

/// A campus's stock as the pages show it.
#[derive(Clone, Debug)]
pub struct Stock {
    pub campus: String,
    /// The warehouse first, then the departments holding stock.
    pub places: Vec<Place>,
    /// The warehouse's items below their reorder level (with none held too).
    pub low: Vec<Held>,
    pub moves: Vec<Move>,
    pub today: String,
}

/// A department the caller sees, and whether it is theirs (they request for it).
#[derive(Clone, Debug)]
pub struct Ward {
    pub department: Department,
    pub own: bool,
}

/// The materials service.
#[derive(Clone, Debug)]
pub struct Materials {
    fhir: FhirService,
    rosters: Rosters,
    scheduling: Scheduling,
    charger: Charger,
}

impl Materials {
    pub fn new(fhir: FhirService) -> Materials {
        Materials {
            rosters: Rosters::new(fhir.clone()),
            scheduling: Scheduling::new(fhir.clone()),
            charger: Charger::new(fhir.clone()),
            fhir,
        }
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), MaterialsError> {
        crate::common::audit(&self.fhir, caller, action, detail).await.map_err(MaterialsError::Audit)
    }

    fn stamp(&self, caller: &Caller, reference: Option<String>, reason: Option<String>) -> Stamp {
        Stamp { actor: caller.actor().to_string(), at: self.fhir.now_ms(), reference, reason }
    }

    /// Today in Beijing, `YYYY-MM-DD`.
    pub fn today(&self) -> String {
        local_date(self.fhir.now_ms())
    }

    fn may_read(caller: &Caller, campus: &str) -> Result<(), MaterialsError> {
        if crate::common::staff_at(caller, campus) {
            Ok(())
        } else {
            Err(MaterialsError::Forbidden("a campus's materials are read by its staff"))
        }
    }

    /// A materials keeper of the campus.
    pub fn may_keep(caller: &Caller, campus: &str) -> Result<(), MaterialsError> {
        if crate::common::holds_at(caller, Capability::KeepMaterials, campus) {
            Ok(())
        } else {
            Err(MaterialsError::Forbidden("a campus's warehouse is kept by its materials keepers"))
        }
    }

    /// Staff of the department (its own requester), or a keeper of its campus.
    async fn may_work_for(&self, caller: &Caller, department: &str, campus: &str) -> Result<(), MaterialsError> {
        if Self::may_keep(caller, campus).is_ok() {
            return Ok(());
        }
        if crate::common::holds_at(caller, Capability::RequestMaterials, campus)
            && self.scheduling.own_departments(caller).await?.iter().any(|d| d == department)
        {
            return Ok(());
        }
        Err(MaterialsError::Forbidden("a department's materials are requested and counted by its own staff"))
    }

    /// The catalogue (every item, retired ones too).
    pub async fn items(&self, caller: &Caller) -> Result<Vec<Item>, MaterialsError> {
        if !caller.is_authenticated() || caller.access().patient().is_some() {
            return Err(MaterialsError::Forbidden("the catalogue is read by staff"));
        }
        Ok(self.fhir.operations().materials().items().await?)
    }

    /// Adds an item to the group's catalogue or changes it (materials keepers).
    pub async fn put_item(&self, caller: &Caller, form: &ItemForm) -> Result<Item, MaterialsError> {
        if !caller.can(Capability::KeepMaterials) {
            return Err(MaterialsError::Forbidden("the catalogue is kept by the materials keepers"));
        }
        let item = form.check()?;
        self.fhir.operations().materials().put_item(&item).await?;
        self.audit(caller, "material-item", format!("{} {} {}", item.code, item.kind, item.active)).await?;
        Ok(item)
    }

    async fn item(&self, code: &str) -> Result<Option<Item>, MaterialsError> {
        Ok(self.fhir.operations().materials().items().await?.into_iter().find(|i| i.code == code.trim()))
    }

    /// Sets an item's reorder level at a campus's warehouse (0 removes it).
    pub async fn set_level(
        &self,
        caller: &Caller,
        campus: &str,
        item: &str,
        level: &str,
    ) -> Result<i64, MaterialsError> {
        Self::may_keep(caller, campus)?;
        let Some(item) = self.item(item).await? else {
            return Err(invalid("item", "unknown", "not an item of the catalogue"));
        };
        let Some(level) = level.trim().parse::<i64>().ok().filter(|n| (0..=MAX_QUANTITY).contains(n)) else {
            return Err(invalid("level", "range", format!("a whole number, 0 to {MAX_QUANTITY}")));
        };
        self.fhir.operations().materials().set_level(campus, &item.code, level).await?;
        self.audit(caller, "material-level", format!("{campus} {} {level}", item.code)).await?;
        Ok(level)
    }

    /// Receives a batch into a campus's warehouse (入库); returns the batch.
    pub async fn receive(&self, caller: &Caller, form: &ReceiptForm) -> Result<i64, MaterialsError> {
        let campus = form.campus.trim();
        Self::may_keep(caller, campus)?;
        let item = self.item(&form.item).await?;
        let mut r = Rules::default();
        r.check(item.as_ref().is_some_and(|i| i.active), "item", "unknown", "an item in use in the catalogue");
        let lot = form.lot.trim();
        r.check(code_ok(lot), "lot", "code", "1 to 32 letters, digits, '-', '_' or '.'");
        let kind = item.as_ref().map(|i| i.kind.as_str()).unwrap_or("general");
        let expiry = Some(form.expiry.trim()).filter(|e| !e.is_empty());
        match expiry {
            Some(e) => {
                r.check(is_date(e), "expiry", "date", "a date YYYY-MM-DD");
                r.check(!is_date(e) || e >= self.today().as_str(), "expiry", "expired", "the batch has expired");
            }
            None => r.check(kind == "general", "expiry", "required", "sterile and high-value goods carry an expiry"),
        }
        let n = quantity(&form.quantity);
        r.check(n.is_some(), "quantity", "range", format!("a whole number, 1 to {MAX_QUANTITY}"));
        let cost = Fen::parse_yuan(&form.cost).ok();
        r.check(cost.is_some(), "cost", "money", "an amount in yuan, at most two decimals");
        let supplier = form.supplier.trim();
        r.check(supplier.chars().count() <= 60, "supplier", "length", "at most 60 characters");
        let mut units: Vec<String> = form
            .units
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if kind == "high-value" {
            r.check(
                units.iter().all(|u| u.len() <= 64 && u.bytes().all(|b| b.is_ascii_graphic())),
                "units",
                "code",
                "unique codes of up to 64 characters",
            );
            r.check(Some(units.len() as i64) == n, "units", "count", "one unique code per unit received");
            let mut sorted = units.clone();
            sorted.sort();
            sorted.dedup();
            r.check(sorted.len() == units.len(), "units", "unique", "each unit's code once");
        } else {
            r.check(units.is_empty(), "units", "high-value-only", "only high-value items are received by unit");
            units.clear();
        }
        r.done()?;
        let (Some(item), Some(n), Some(cost)) = (item, n, cost) else {
            return Err(invalid("item", "unknown", "an item in use in the catalogue"));
        };
        let batch = Batch {
            campus: campus.to_string(),
            location: WAREHOUSE.to_string(),
            item: item.code.clone(),
            lot: lot.to_string(),
            expiry: expiry.map(str::to_string),
            quantity: n,
            cost_fen: cost.0,
            supplier: Some(supplier.to_string()).filter(|s| !s.is_empty()),
            received_at: self.fhir.now_ms(),
            ..Default::default()
        };
        let id = self.fhir.operations().materials().receive(&batch, &units, &self.stamp(caller, None, None)).await?;
        self.audit(caller, "material-receive", format!("{campus} {} lot {lot} +{n}", item.code)).await?;
        Ok(id)
    }

    /// A campus's stock: the warehouse and each department holding stock, item by
    /// item with its batches (expired and near-expiry flagged), the low-stock list,
    /// and the latest moves.
    pub async fn stock(&self, caller: &Caller, campus: &str) -> Result<Stock, MaterialsError> {
        let mut stock = self.holdings(caller, campus).await?;
        stock.moves = self.fhir.operations().materials().moves(campus, None, 30).await?;
        Ok(stock)
    }

    /// [`Materials::stock`] without the moves (what a requisition checks against).
    pub async fn holdings(&self, caller: &Caller, campus: &str) -> Result<Stock, MaterialsError> {
        Self::may_read(caller, campus)?;
        let ops = self.fhir.operations().materials();
        let items = ops.items().await?;
        let levels = ops.levels(campus).await?;
        let batches = ops.batches(campus).await?;
        let today = self.today();
        let near = local_date(self.fhir.now_ms() + NEAR_EXPIRY_DAYS * 86_400_000);
        let level_of = |code: &str| levels.iter().find(|(i, _)| i == code).map(|(_, l)| *l).unwrap_or(0);
        let mut places: Vec<Place> = vec![Place { location: WAREHOUSE.to_string(), held: Vec::new() }];
        for b in batches {
            let state = b.expiry.as_deref().map(|e| shelf(e, &today, &near)).unwrap_or(Shelf::Good);
            let at = match places.iter().position(|p| p.location == b.location) {
                Some(i) => i,
                None => {
                    places.push(Place { location: b.location.clone(), held: Vec::new() });
                    places.len() - 1
                }
            };
            let place = &mut places[at];
            let i = match place.held.iter().position(|h| h.item.code == b.item) {
                Some(i) => i,
                None => {
                    let Some(item) = items.iter().find(|i| i.code == b.item) else { continue };
                    let level = if place.location == WAREHOUSE { level_of(&item.code) } else { 0 };
                    place.held.push(Held { item: item.clone(), batches: Vec::new(), usable: 0, level });
                    place.held.len() - 1
                }
            };
            let held = &mut place.held[i];
            if state != Shelf::Expired {
                held.usable += b.quantity;
            }
            held.batches.push((b, state));
        }
        let warehouse = &places[0].held;
        let mut low: Vec<Held> = warehouse.iter().filter(|h| h.low()).cloned().collect();
        for (code, level) in &levels {
            if !warehouse.iter().any(|h| &h.item.code == code)
                && let Some(item) = items.iter().find(|i| &i.code == code && i.active)
            {
                low.push(Held { item: item.clone(), batches: Vec::new(), usable: 0, level: *level });
            }
        }
        low.sort_by(|a, b| a.item.code.cmp(&b.item.code));
        Ok(Stock { campus: campus.to_string(), places, low, moves: Vec::new(), today })
    }

    /// The departments of the campuses the caller reads, each marked when it is the
    /// caller's own (they may request for it).
    pub async fn wards(&self, caller: &Caller) -> Result<Vec<Ward>, MaterialsError> {
        let own = if caller.can(Capability::RequestMaterials) {
            self.scheduling.own_departments(caller).await?
        } else {
            Vec::new()
        };
        Ok(self
            .rosters
            .departments(caller)
            .await?
            .into_iter()
            .map(|d| Ward { own: own.contains(&d.id), department: d })
            .collect())
    }

    /// A department's requisition (申领): each line an item in use and a quantity no
    /// more than the warehouse can issue now. Returns its id.
    pub async fn request(&self, caller: &Caller, form: &RequestForm) -> Result<i64, MaterialsError> {
        let department = form.department.trim();
        let campus = self.rosters.campus_of(caller, department).await?;
        self.may_work_for(caller, department, &campus).await?;
        let stock = self.holdings(caller, &campus).await?;
        let items = self.fhir.operations().materials().items().await?;
        let mut r = Rules::default();
        let mut lines: Vec<Line> = Vec::new();
        for (code, n) in &form.lines {
            if n.trim().is_empty() && code.trim().is_empty() {
                continue;
            }
            let Some(item) = items.iter().find(|i| i.code == code.trim() && i.active) else {
                r.check(false, "item", "unknown", format!("{}: not an item in use", code.trim()));
                continue;
            };
            if n.trim().is_empty() {
                continue;
            }
            let Some(n) = quantity(n) else {
                r.check(false, "quantity", "range", format!("{}: a whole number, 1 to {MAX_QUANTITY}", item.code));
                continue;
            };
            if lines.iter().any(|l| l.item == item.code) {
                r.check(false, "item", "once", format!("{}: asked for twice", item.code));
                continue;
            }
            let usable = stock.places[0].held.iter().find(|h| h.item.code == item.code).map(|h| h.usable).unwrap_or(0);
            r.check(
                n <= usable,
                "quantity",
                "above-stock",
                format!("{}: {n} {} asked, {usable} in the warehouse", item.code, item.unit),
            );
            lines.push(Line { item: item.code.clone(), requested: n, approved: None, issued: None });
        }
        r.check(!lines.is_empty() || !r.0.is_empty(), "quantity", "required", "at least one item and quantity");
        let note = form.note.trim();
        r.check(note.chars().count() <= 200, "note", "length", "at most 200 characters");
        r.done()?;
        let req = Requisition {
            campus: campus.clone(),
            department: department.to_string(),
            status: "requested".into(),
            note: Some(note.to_string()).filter(|n| !n.is_empty()),
            requested_by: caller.actor().to_string(),
            requested_at: self.fhir.now_ms(),
            lines,
            ..Default::default()
        };
        let id = self.fhir.operations().materials().request(&req).await?;
        self.audit(caller, "material-requisition", format!("{campus} {department} requisition {id}")).await?;
        Ok(id)
    }

    /// The requisitions of a campus the caller sees (keepers every department's, the
    /// others their own departments'), newest first.
    pub async fn requisitions(&self, caller: &Caller, campus: &str) -> Result<Vec<Requisition>, MaterialsError> {
        Self::may_read(caller, campus)?;
        let ops = self.fhir.operations().materials();
        if Self::may_keep(caller, campus).is_ok() {
            return Ok(ops.requisitions(campus, None, 200).await?);
        }
        let own = self.scheduling.own_departments(caller).await?;
        let mut out = Vec::new();
        for d in own {
            out.extend(ops.requisitions(campus, Some(&d), 100).await?);
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.id));
        Ok(out)
    }

    async fn requisition_kept(&self, caller: &Caller, id: i64) -> Result<Requisition, MaterialsError> {
        let Some(req) = self.fhir.operations().materials().requisition(id).await? else {
            return Err(MaterialsError::NotFound(format!("requisition {id}")));
        };
        Self::may_keep(caller, &req.campus)?;
        Ok(req)
    }

    /// Approves a requisition, with the quantities the keeper gives per item (none:
    /// as requested; never more than requested).
    pub async fn approve(
        &self,
        caller: &Caller,
        id: i64,
        quantities: &[(String, String)],
    ) -> Result<(), MaterialsError> {
        let req = self.requisition_kept(caller, id).await?;
        let mut r = Rules::default();
        let mut approved = Vec::new();
        for (item, n) in quantities {
            let Some(line) = req.lines.iter().find(|l| &l.item == item) else { continue };
            let n = n.trim().parse::<i64>().ok().filter(|n| (0..=line.requested).contains(n));
            r.check(n.is_some(), "approved", "range", format!("{item}: 0 to the {} requested", line.requested));
            if let Some(n) = n {
                approved.push((item.clone(), n));
            }
        }
        r.done()?;
        self.fhir
            .operations()
            .materials()
            .decide(id, Some(&approved), None, caller.actor(), self.fhir.now_ms())
            .await?;
        self.audit(caller, "material-approve", format!("{} requisition {id}", req.campus)).await
    }

    /// Rejects a requisition with the reason.
    pub async fn reject(&self, caller: &Caller, id: i64, reason: &str) -> Result<(), MaterialsError> {
        let req = self.requisition_kept(caller, id).await?;
        if !sized(reason, 200) {
            return Err(invalid("reason", "required", "why it is rejected, 1 to 200 characters"));
        }
        self.fhir
            .operations()
            .materials()
            .decide(id, None, Some(reason.trim()), caller.actor(), self.fhir.now_ms())
            .await?;
        self.audit(caller, "material-reject", format!("{} requisition {id}", req.campus)).await
    }

    /// Issues an approved requisition: the stock moves from the warehouse to the
    /// department (all of it, or nothing when the warehouse holds less).
    pub async fn issue(&self, caller: &Caller, id: i64) -> Result<Requisition, MaterialsError> {
        let req = self.requisition_kept(caller, id).await?;
        let stamp = self.stamp(caller, Some(format!("requisition/{id}")), None);
        let done = self.fhir.operations().materials().issue(id, &self.today(), &stamp).await?;
        self.audit(caller, "material-issue", format!("{} {} requisition {id}", req.campus, req.department)).await?;
        Ok(done)
    }

    /// Posts a stocktake at a place of a campus (the warehouse by its keepers, a
    /// department by its staff): each counted batch `(id, count)` set to its count,
    /// the variance a move with the reason. Returns the batches that changed.
    pub async fn stocktake(
        &self,
        caller: &Caller,
        campus: &str,
        location: &str,
        counts: &[(i64, String)],
        reason: &str,
    ) -> Result<usize, MaterialsError> {
        if location == WAREHOUSE {
            Self::may_keep(caller, campus)?;
        } else {
            self.may_work_for(caller, location, campus).await?;
        }
        let mut r = Rules::default();
        let mut parsed = Vec::new();
        for (batch, n) in counts {
            if n.trim().is_empty() {
                continue;
            }
            match n.trim().parse::<i64>().ok().filter(|n| (0..=MAX_QUANTITY).contains(n)) {
                Some(n) => parsed.push((*batch, n)),
                None => r.check(false, "counted", "range", format!("batch {batch}: a whole number, 0 or more")),
            }
        }
        r.check(!parsed.is_empty() || !r.0.is_empty(), "counted", "required", "at least one batch counted");
        r.check(sized(reason, 200), "reason", "required", "what the count was, 1 to 200 characters");
        r.done()?;
        let stamp = self.stamp(caller, None, Some(reason.trim().to_string()));
        let changed = self.fhir.operations().materials().stocktake(campus, location, &parsed, &stamp).await?;
        let changed = changed.iter().filter(|(_, d)| *d != 0).count();
        self.audit(caller, "material-stocktake", format!("{campus} {location} {changed} changed")).await?;
        Ok(changed)
    }

    /// Records that high-value unit `udi` of one of the caller's departments was used
    /// on `patient` (whom the caller must be allowed to read), and charges it through
    /// billing at the campus's price. An item with no price at the campus is refused
    /// before anything is written.
    pub async fn use_unit(&self, caller: &Caller, udi: &str, patient: &str) -> Result<Unit, MaterialsError> {
        let ops = self.fhir.operations().materials();
        let udi = udi.trim();
        let Some(unit) = ops.unit(udi).await? else {
            return Err(invalid("udi", "unknown", format!("no high-value unit has the code {udi}")));
        };
        if unit.status == "used" {
            return Err(invalid("udi", "used", format!("{udi}: used already")));
        }
        if unit.location == WAREHOUSE {
            return Err(invalid("udi", "warehouse", "the unit is still in the warehouse: request it first"));
        }
        if !caller.can(Capability::RequestMaterials) {
            return Err(MaterialsError::Forbidden("high-value units are recorded by the staff who use them"));
        }
        self.may_work_for(caller, &unit.location, &unit.campus).await?;
        let patient = patient.trim().trim_start_matches("Patient/");
        let rt = ResourceType::parse("Patient").ok_or_else(|| MaterialsError::NotFound("Patient".into()))?;
        if patient.is_empty() {
            return Err(invalid("patient", "required", "the patient it was used on"));
        }
        match self.fhir.reader(caller, rt).await?.read(patient).await {
            Ok(_) => {}
            Err(
                lianyi_services::fhir::ServiceError::NotFound { .. } | lianyi_services::fhir::ServiceError::Gone { .. },
            ) => {
                return Err(invalid("patient", "unknown", "no such patient"));
            }
            Err(e) => return Err(e.into()),
        }
        let task =
            Caller::task_at(lianyi_security::SystemTask::Billing, lianyi_security::CampusId::stored(&unit.campus));
        let prices = lianyi_billing::prices::PriceBook::new(self.fhir.clone());
        if prices.price_of(&task, &unit.campus, "material", &unit.item, self.fhir.now_ms()).await?.is_none() {
            return Err(invalid(
                "udi",
                "unpriced",
                "the campus's price list has no price for this item: it cannot be charged",
            ));
        }
        let stamp = self.stamp(caller, Some(format!("Patient/{patient}")), None);
        let used = ops.use_unit(udi, &unit.location, patient, &stamp).await?;
        self.audit(caller, "material-use", format!("{} {udi} Patient/{patient}", unit.campus)).await?;
        if let Err(e) = self.charger.charge_used_units().await {
            // The billing watcher charges it on its next round.
            tracing::warn!(error = %e, "a used unit could not be charged yet");
        }
        Ok(ops.unit(udi).await?.unwrap_or(used))
    }

    /// The high-value units used at a campus, newest first.
    pub async fn used(&self, caller: &Caller, campus: &str) -> Result<Vec<Unit>, MaterialsError> {
        Self::may_read(caller, campus)?;
        Ok(self.fhir.operations().materials().used_units(campus, 100).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_forms_name_every_broken_field() {
        let form = ItemForm { code: "a b".into(), kind: "gold".into(), ..Default::default() };
        let Err(MaterialsError::Invalid(errors)) = form.check() else { panic!("accepted") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["code", "name_zh", "name_en", "unit", "kind"]);
        let ok = ItemForm {
            code: "GAUZE-10".into(),
            name_zh: "纱布".into(),
            name_en: "Gauze".into(),
            unit: "包".into(),
            kind: "sterile".into(),
            active: true,
        };
        assert_eq!(ok.check().unwrap().kind, "sterile");
    }

    #[test]
    fn a_refusal_of_the_store_names_its_field() {
        let e = MaterialsError::from(StoreError::Refused("quantity: GAUZE: 5 approved, 2 usable".into()));
        let MaterialsError::Invalid(errors) = e else { panic!("not a field error") };
        assert_eq!(errors[0].field, "quantity");
        assert_eq!(errors[0].detail, "GAUZE: 5 approved, 2 usable");
    }

    #[test]
    fn quantities_are_whole_and_bounded() {
        assert_eq!(quantity("12"), Some(12));
        for bad in ["0", "-1", "1.5", "", "100001", "x"] {
            assert_eq!(quantity(bad), None, "{bad}");
        }
    }
}
