//! The configuration database (CMDB): configuration items of typed classes with
//! attributes of their own, the relations between them, impact analysis over that
//! graph ("if this switch fails, which business systems, clinical services and
//! campuses stop?" and the reverse, "what does HIS need?"), CSV import (all rows or
//! none, each bad row named) and export, and the server registering itself.
//!
//! IT engineers and managers read and change it ([`Capability::OperateIt`]); every
//! change is audited. Anyone signed in may pick a CI when reporting a fault
//! ([`Cmdb::pick`]): names, classes and campuses only.

use std::collections::{BTreeSet, HashMap, VecDeque};

use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::StoreError;
use lianyi_store::cmdb::{Ci, CiQuery, Graph, Relation, Target, Walk};
use serde_json::{Map, Value};

/// How a class's attribute is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    Text,
    /// A whole number, zero or more.
    Number,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A percentage above 0 and at most 100, with at most three decimals (`99.9`),
    /// kept as written.
    Percent,
    /// One of the codes given.
    Choice(&'static [&'static str]),
}

/// One attribute of a class.
#[derive(Clone, Copy, Debug)]
pub struct AttrDef {
    pub key: &'static str,
    pub kind: AttrKind,
}

/// A class of configuration items; pages word its code and its attributes' keys.
#[derive(Clone, Copy, Debug)]
pub struct ClassDef {
    pub code: &'static str,
    pub attrs: &'static [AttrDef],
    /// The support group its faults go to unless the CI names another.
    pub group: &'static str,
}

const fn text(key: &'static str) -> AttrDef {
    AttrDef { key, kind: AttrKind::Text }
}

const fn number(key: &'static str) -> AttrDef {
    AttrDef { key, kind: AttrKind::Number }
}

const fn percent(key: &'static str) -> AttrDef {
    AttrDef { key, kind: AttrKind::Percent }
}

/// Whether `v` is a percentage above 0 and at most 100 with at most three decimals.
pub fn is_percent(v: &str) -> bool {
    percent_milli(v).is_some()
}

/// A percentage above 0 and at most 100 with at most three decimals (`99.95`), in
/// thousandths of a percent (99,950), exact; `None` for anything else.
pub fn percent_milli(v: &str) -> Option<i64> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || whole.len() > 3 || !digits(whole) || frac.len() > 3 || !digits(frac) {
        return None;
    }
    if v.contains('.') && frac.is_empty() {
        return None;
    }
    let milli = whole.parse::<i64>().ok()? * 1_000 + format!("{frac:0<3}").parse::<i64>().ok()?;
    (milli > 0 && milli <= 100_000).then_some(milli)
}

const fn ip(key: &'static str) -> AttrDef {
    AttrDef { key, kind: AttrKind::Ip }
}

const fn choice(key: &'static str, codes: &'static [&'static str]) -> AttrDef {
    AttrDef { key, kind: AttrKind::Choice(codes) }
}

/// Every class, with its attributes.
pub const CLASSES: &[ClassDef] = &[
    ClassDef {
        code: "host",
        group: "system",
        attrs: &[
            choice("kind", &["server", "virtual-machine", "terminal"]),
            text("os"),
            ip("ip"),
            number("cpu-cores"),
            number("memory-gb"),
            text("model"),
            text("serial"),
        ],
    },
    ClassDef {
        code: "storage",
        group: "system",
        attrs: &[choice("kind", &["das", "nas", "san"]), number("capacity-tb"), ip("ip"), text("model")],
    },
    ClassDef {
        code: "network",
        group: "network",
        attrs: &[choice("kind", &["switch", "router", "wireless", "link"]), ip("ip"), number("ports"), text("model")],
    },
    ClassDef {
        code: "security",
        group: "security",
        attrs: &[choice("kind", &["firewall", "ids", "ips", "vpn", "waf"]), ip("ip"), text("model")],
    },
    ClassDef { code: "printer", group: "desktop", attrs: &[ip("ip"), text("model"), text("serial")] },
    ClassDef {
        code: "database",
        group: "database",
        attrs: &[
            choice("engine", &["postgresql", "sqlite", "oracle", "sqlserver", "mysql", "other"]),
            text("version"),
            number("port"),
        ],
    },
    ClassDef { code: "middleware", group: "application", attrs: &[text("product"), text("version"), number("port")] },
    ClassDef {
        code: "business-system",
        group: "application",
        attrs: &[
            choice("kind", &["his", "lis", "pacs", "emr", "ris", "hrp", "portal", "platform", "other"]),
            text("vendor"),
            text("version"),
            choice("hours", &["business", "7x24"]),
            percent("availability"),
        ],
    },
    ClassDef {
        code: "clinical-service",
        group: "application",
        attrs: &[text("department"), choice("hours", &["business", "7x24"]), percent("availability")],
    },
    ClassDef {
        code: "interface",
        group: "application",
        attrs: &[
            choice("protocol", &["mllp-in", "mllp-out", "fhir-rest", "fhir-websocket", "dicom", "other"]),
            text("address"),
        ],
    },
    ClassDef {
        code: "medical-device",
        group: "desktop",
        attrs: &[text("kind"), text("model"), text("serial"), ip("ip"), text("department")],
    },
];

/// Lifecycle statuses, in order.
pub const STATUSES: [&str; 5] = ["planned", "ordered", "in-service", "maintenance", "retired"];

/// Support groups.
pub const GROUPS: [&str; 6] = ["system", "network", "database", "security", "desktop", "application"];

/// Relation kinds; see [`lianyi_store::cmdb`] for which spread a failure.
pub const RELATIONS: [&str; 5] = ["runs-on", "depends-on", "connects-to", "part-of", "backs-up"];

/// The class named `code`.
pub fn class(code: &str) -> Option<&'static ClassDef> {
    CLASSES.iter().find(|c| c.code == code)
}

/// A broken rule, naming the field (and for an import, the row: 1 is the first row
/// after the header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub row: Option<usize>,
    pub field: String,
    /// A short code of the rule (`required`, `choice`, `date` …), for pages to word.
    pub rule: &'static str,
    pub detail: String,
}

fn invalid(field: &str, rule: &'static str, detail: impl Into<String>) -> FieldError {
    FieldError::new(field, rule, detail)
}

impl FieldError {
    /// A broken rule of a form's field (no CSV row).
    pub fn new(field: &str, rule: &'static str, detail: impl Into<String>) -> FieldError {
        FieldError { row: None, field: field.to_string(), rule, detail: detail.into() }
    }
}

/// A probe's or rule's broken rule, as every other form's.
impl From<lianyi_monitor::probe::Problem> for FieldError {
    fn from(p: lianyi_monitor::probe::Problem) -> FieldError {
        FieldError { row: None, field: p.field, rule: p.rule, detail: p.detail }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CmdbError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{}", joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("no such configuration item")]
    NotFound,
    #[error("the configuration item was changed by someone else meanwhile")]
    Changed,
    #[error("the audit record could not be written: {0}")]
    Audit(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Broken rules as one line (`row 3 class: detail; …`).
pub fn joined(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| match e.row {
            Some(r) => format!("row {r} {}: {}", e.field, e.detail),
            None => format!("{}: {}", e.field, e.detail),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<StoreError> for CmdbError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(msg) => {
                let (field, detail) = msg.split_once(": ").unwrap_or(("ci", msg.as_str()));
                CmdbError::Invalid(vec![invalid(field, "refused", detail)])
            }
            StoreError::VersionConflict { .. } => CmdbError::Changed,
            other => CmdbError::Store(other),
        }
    }
}

/// A CI as a form or a CSV row gives it (text, checked by [`Cmdb::create`]).
#[derive(Clone, Debug, Default)]
pub struct CiForm {
    pub code: String,
    pub name: String,
    pub class: String,
    /// Empty: group-wide.
    pub campus: String,
    pub location: String,
    pub status: String,
    pub owner: String,
    /// Empty: the class's group.
    pub support_group: String,
    pub supplier: String,
    pub warranty_end: String,
    pub contract_end: String,
    /// (key, value) of the class's attributes; empty values are left out.
    pub attrs: Vec<(String, String)>,
}

/// A CI reached by an impact walk, with its distance from the start.
#[derive(Clone, Debug)]
pub struct Reached {
    pub ci: Ci,
    pub depth: usize,
}

/// What an impact walk found.
#[derive(Clone, Debug)]
pub struct Impact {
    pub start: Ci,
    pub way: Walk,
    /// Every CI reached but the start, nearest first.
    pub reached: Vec<Reached>,
    pub relations: Vec<Relation>,
    /// The campuses of the CIs reached (and the start's).
    pub campuses: BTreeSet<String>,
}

impl Impact {
    /// The business systems and clinical services reached.
    pub fn of_class<'a>(&'a self, class: &'a str) -> impl Iterator<Item = &'a Ci> + 'a {
        self.reached.iter().map(|r| &r.ci).filter(move |c| c.class == class)
    }
}

/// The CSV columns, in order; the class's attributes follow as `attr:KEY`, then
/// `relations` (`runs-on:CODE; depends-on:CODE …`, to CIs of the file or stored).
pub const CSV_COLUMNS: [&str; 11] = [
    "code",
    "name",
    "class",
    "campus",
    "location",
    "status",
    "owner",
    "support_group",
    "supplier",
    "warranty_end",
    "contract_end",
];

/// What an import did.
#[derive(Clone, Debug, Default)]
pub struct Imported {
    pub cis: usize,
    pub relations: usize,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Cmdb {
    fhir: FhirService,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// `YYYY-MM-DD` of a real day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (s[..4].parse::<i64>(), s[5..7].parse::<u32>(), s[8..].parse::<u32>()) else {
        return false;
    };
    if !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let day = lianyi_fhir::datetime::days_from_civil(y, m, d);
    lianyi_fhir::datetime::civil_from_days(day) == (y, m, d)
}

impl Cmdb {
    pub fn new(fhir: FhirService) -> Cmdb {
        Cmdb { fhir }
    }

    pub(crate) fn fhir(&self) -> &FhirService {
        &self.fhir
    }

    fn tables(&self) -> lianyi_store::cmdb::Cmdb {
        self.fhir.operations().cmdb()
    }

    /// IT engineers and managers.
    pub fn may_operate(caller: &Caller) -> bool {
        caller.can(Capability::OperateIt)
    }

    fn operate(caller: &Caller) -> Result<(), CmdbError> {
        if Self::may_operate(caller) {
            Ok(())
        } else {
            Err(CmdbError::Forbidden("the configuration database is kept by the IT team"))
        }
    }

    /// Whether `caller` may change a CI of `campus` (`None`: group-wide): an engineer
    /// of some campuses changes only theirs; group-wide CIs are the group's engineers'.
    fn may_change(caller: &Caller, campus: Option<&str>) -> bool {
        match caller.access().all_campuses() {
            lianyi_security::Campuses::All => true,
            campuses => campus.is_some_and(|c| campuses.contains(c)),
        }
    }

    fn change_at(caller: &Caller, campus: Option<&str>) -> Result<(), CmdbError> {
        if Self::may_change(caller, campus) {
            Ok(())
        } else {
            Err(CmdbError::Invalid(vec![invalid("campus", "scope", "a configuration item of one of your campuses")]))
        }
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), CmdbError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| CmdbError::Audit(e.to_string()))
    }

    /// The form checked into a CI (id and version left to the caller); every broken
    /// rule named.
    async fn checked(
        &self,
        caller: &Caller,
        f: &CiForm,
        known: &mut HashMap<String, bool>,
    ) -> Result<Ci, Vec<FieldError>> {
        let mut errors = Vec::new();
        let code = f.code.trim();
        if code.is_empty() || code.len() > 64 || code.chars().any(|c| c.is_whitespace() || c == ';' || c == ',') {
            errors.push(invalid("code", "code", "1 to 64 characters without spaces, commas or semicolons"));
        }
        let name = f.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(invalid("name", "required", "1 to 200 characters"));
        }
        let class_def = class(f.class.trim());
        if class_def.is_none() {
            errors.push(invalid("class", "choice", format!("one of {}", codes(CLASSES.iter().map(|c| c.code)))));
        }
        let campus = opt(&f.campus);
        // Each campus looked up once (an import repeats a few campuses over many rows).
        let exists = match &campus {
            Some(c) => match known.get(c) {
                Some(e) => *e,
                None => {
                    let e = self.fhir.campus_names(c).await.is_some();
                    known.insert(c.clone(), e);
                    e
                }
            },
            None => true,
        };
        if let Some(c) = campus.as_ref().filter(|_| !exists) {
            errors.push(invalid("campus", "unknown", format!("no campus {c} (empty: the whole group)")));
        }
        let status = opt(&f.status).unwrap_or_else(|| "in-service".into());
        if !STATUSES.contains(&status.as_str()) {
            errors.push(invalid("status", "choice", format!("one of {}", STATUSES.join(", "))));
        }
        let group = opt(&f.support_group).or_else(|| class_def.map(|c| c.group.to_string())).unwrap_or_default();
        // Without a group given, the class's (no second error for an unknown class).
        if !GROUPS.contains(&group.as_str()) && (class_def.is_some() || !f.support_group.trim().is_empty()) {
            errors.push(invalid("support_group", "choice", format!("one of {}", GROUPS.join(", "))));
        }
        for (field, value) in [("warranty_end", &f.warranty_end), ("contract_end", &f.contract_end)] {
            if opt(value).is_some_and(|v| !is_date(&v)) {
                errors.push(invalid(field, "date", "a date as YYYY-MM-DD"));
            }
        }
        for (field, value) in [("location", &f.location), ("owner", &f.owner), ("supplier", &f.supplier)] {
            if value.trim().chars().count() > 200 {
                errors.push(invalid(field, "length", "at most 200 characters"));
            }
        }
        let mut attrs = Map::new();
        if let Some(def) = class_def {
            for (key, value) in &f.attrs {
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                let field = format!("attr:{key}");
                let Some(a) = def.attrs.iter().find(|a| a.key == key) else {
                    let known = codes(def.attrs.iter().map(|a| a.key));
                    errors.push(invalid(&field, "unknown", format!("a {} has {known}", def.code)));
                    continue;
                };
                let ok = match a.kind {
                    AttrKind::Text => value.chars().count() <= 200,
                    AttrKind::Number => value.parse::<u64>().is_ok(),
                    AttrKind::Ip => value.parse::<std::net::IpAddr>().is_ok(),
                    AttrKind::Percent => is_percent(value),
                    AttrKind::Choice(c) => c.contains(&value),
                };
                if !ok {
                    let rule = match a.kind {
                        AttrKind::Text => "at most 200 characters".to_string(),
                        AttrKind::Number => "a whole number, zero or more".to_string(),
                        AttrKind::Ip => "an IPv4 or IPv6 address".to_string(),
                        AttrKind::Percent => "a percentage above 0 and at most 100, like 99.9".to_string(),
                        AttrKind::Choice(c) => format!("one of {}", c.join(", ")),
                    };
                    errors.push(invalid(&field, "format", rule));
                    continue;
                }
                let v = match a.kind {
                    AttrKind::Number => value.parse::<u64>().map(Value::from).unwrap_or(Value::Null),
                    _ => Value::String(value.to_string()),
                };
                attrs.insert(key.clone(), v);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Ci {
            id: 0,
            code: code.to_string(),
            name: name.to_string(),
            class: f.class.trim().to_string(),
            campus,
            location: opt(&f.location),
            status,
            owner: opt(&f.owner),
            support_group: group,
            supplier: opt(&f.supplier),
            warranty_end: opt(&f.warranty_end),
            contract_end: opt(&f.contract_end),
            attrs: Value::Object(attrs).to_string(),
            managed_by: None,
            version: 1,
            updated_at: self.fhir.now_ms(),
            updated_by: caller.actor().to_string(),
        })
    }

    /// Adds a CI; returns its id.
    pub async fn create(&self, caller: &Caller, f: &CiForm) -> Result<i64, CmdbError> {
        Self::operate(caller)?;
        let ci = self.checked(caller, f, &mut HashMap::new()).await.map_err(CmdbError::Invalid)?;
        Self::change_at(caller, ci.campus.as_deref())?;
        let id = self.tables().insert(&ci).await?;
        self.audit(caller, "ci-create", format!("CI {id} {} ({})", ci.code, ci.class)).await?;
        Ok(id)
    }

    /// Changes a CI last read at `version`; returns the new version.
    pub async fn update(&self, caller: &Caller, id: i64, version: i64, f: &CiForm) -> Result<i64, CmdbError> {
        Self::operate(caller)?;
        let old = self.tables().get(id).await?.ok_or(CmdbError::NotFound)?;
        let mut ci = self.checked(caller, f, &mut HashMap::new()).await.map_err(CmdbError::Invalid)?;
        Self::change_at(caller, old.campus.as_deref())?;
        Self::change_at(caller, ci.campus.as_deref())?;
        ci.id = id;
        ci.version = version;
        ci.managed_by = old.managed_by;
        let v = self.tables().update(&ci).await?;
        self.audit(caller, "ci-update", format!("CI {id} {} version {v}", ci.code)).await?;
        Ok(v)
    }

    pub async fn get(&self, caller: &Caller, id: i64) -> Result<Ci, CmdbError> {
        Self::operate(caller)?;
        self.tables().get(id).await?.ok_or(CmdbError::NotFound)
    }

    /// Several CIs by id (those that exist), in one read.
    pub async fn many(&self, caller: &Caller, ids: &[i64]) -> Result<Vec<Ci>, CmdbError> {
        Self::operate(caller)?;
        Ok(self.tables().many(ids).await?)
    }

    pub async fn by_code(&self, caller: &Caller, code: &str) -> Result<Ci, CmdbError> {
        Self::operate(caller)?;
        self.tables().by_code(code).await?.ok_or(CmdbError::NotFound)
    }

    /// A page of CIs (keyset) and, when asked, how many the query finds.
    pub async fn list(&self, caller: &Caller, q: &CiQuery, count: bool) -> Result<(Vec<Ci>, Option<i64>), CmdbError> {
        Self::operate(caller)?;
        let rows = self.tables().list(q).await?;
        let total = if count { Some(self.tables().count(q).await?) } else { None };
        Ok((rows, total))
    }

    /// For anyone reporting a fault: in-service CIs matching `text` (name or code),
    /// their campus's first; only code, name, class and campus are given out.
    pub async fn pick(&self, caller: &Caller, text: &str, limit: i64) -> Result<Vec<Ci>, CmdbError> {
        if !caller.is_authenticated() || caller.access().patient().is_some() {
            return Err(CmdbError::Forbidden("faults are reported by the staff"));
        }
        let q = CiQuery {
            status: Some("in-service".into()),
            text: Some(text.to_string()),
            limit: limit.clamp(1, 50),
            ..Default::default()
        };
        let mut rows = self.tables().list(&q).await?;
        let home = caller.campus().map(|c| c.as_str().to_string());
        rows.sort_by_key(|c| c.campus != home);
        Ok(rows
            .into_iter()
            .map(|c| Ci { id: c.id, code: c.code, name: c.name, class: c.class, campus: c.campus, ..Ci::default() })
            .collect())
    }

    /// Relates two CIs (`source` runs on / depends on / … `target`).
    pub async fn relate(&self, caller: &Caller, source: i64, kind: &str, target: i64) -> Result<(), CmdbError> {
        Self::operate(caller)?;
        if !RELATIONS.contains(&kind) {
            return Err(CmdbError::Invalid(vec![invalid(
                "kind",
                "choice",
                format!("one of {}", RELATIONS.join(", ")),
            )]));
        }
        let from = self.tables().get(source).await?.ok_or(CmdbError::NotFound)?;
        Self::change_at(caller, from.campus.as_deref())?;
        let r = Relation { source, kind: kind.to_string(), target };
        self.tables().relate(&r, self.fhir.now_ms(), caller.actor()).await?;
        self.audit(caller, "ci-relate", format!("CI {source} {kind} CI {target}")).await
    }

    pub async fn unrelate(&self, caller: &Caller, source: i64, kind: &str, target: i64) -> Result<(), CmdbError> {
        Self::operate(caller)?;
        let from = self.tables().get(source).await?.ok_or(CmdbError::NotFound)?;
        Self::change_at(caller, from.campus.as_deref())?;
        let r = Relation { source, kind: kind.to_string(), target };
        if !self.tables().unrelate(&r).await? {
            return Err(CmdbError::NotFound);
        }
        self.audit(caller, "ci-unrelate", format!("CI {source} {kind} CI {target}")).await
    }

    /// A CI's relations both ways, each with the CI at its other end.
    pub async fn relations(&self, caller: &Caller, id: i64) -> Result<Vec<(Relation, Ci)>, CmdbError> {
        Self::operate(caller)?;
        let rels = self.tables().relations(id).await?;
        let others: Vec<i64> = rels.iter().map(|r| if r.source == id { r.target } else { r.source }).collect();
        let cis: HashMap<i64, Ci> = self.tables().many(&others).await?.into_iter().map(|c| (c.id, c)).collect();
        Ok(rels
            .into_iter()
            .filter_map(|r| {
                let other = if r.source == id { r.target } else { r.source };
                cis.get(&other).cloned().map(|c| (r, c))
            })
            .collect())
    }

    /// What stops when `id` stops ([`Walk::Impacted`]), or what it needs
    /// ([`Walk::Needs`]): every CI reached, nearest first, at most `max`.
    pub async fn impact(&self, caller: &Caller, id: i64, way: Walk, max: i64) -> Result<Impact, CmdbError> {
        Self::operate(caller)?;
        let start = self.tables().get(id).await?.ok_or(CmdbError::NotFound)?;
        let Graph { cis, relations } = self.tables().walk(id, way, max.clamp(1, 100_000)).await?;
        let by_id: HashMap<i64, Ci> = cis.into_iter().map(|c| (c.id, c)).collect();
        // Distances by breadth-first search over the walked relations.
        let mut next: HashMap<i64, Vec<i64>> = HashMap::new();
        for r in &relations {
            let (from, to) = match way {
                Walk::Impacted => (r.target, r.source),
                Walk::Needs => (r.source, r.target),
            };
            next.entry(from).or_default().push(to);
        }
        let mut depth: HashMap<i64, usize> = HashMap::from([(id, 0)]);
        let mut queue = VecDeque::from([id]);
        while let Some(at) = queue.pop_front() {
            let d = depth[&at];
            for &to in next.get(&at).map(Vec::as_slice).unwrap_or_default() {
                if let std::collections::hash_map::Entry::Vacant(e) = depth.entry(to) {
                    e.insert(d + 1);
                    queue.push_back(to);
                }
            }
        }
        let mut reached: Vec<Reached> = by_id
            .into_values()
            .map(|ci| Reached { depth: depth.get(&ci.id).copied().unwrap_or(usize::MAX), ci })
            .collect();
        reached.sort_by(|a, b| (a.depth, &a.ci.class, &a.ci.name).cmp(&(b.depth, &b.ci.class, &b.ci.name)));
        let mut campuses =
            reached.iter().map(|r| &r.ci).chain([&start]).filter_map(|c| c.campus.clone()).collect::<BTreeSet<_>>();
        // A group-wide business system or clinical service stopped stops every campus.
        let group_wide = reached
            .iter()
            .map(|r| &r.ci)
            .chain([&start])
            .any(|c| c.campus.is_none() && (c.class == "business-system" || c.class == "clinical-service"));
        if group_wide {
            campuses.extend(self.fhir.campuses().await.map_err(|e| CmdbError::Audit(e.to_string()))?);
        }
        Ok(Impact { start, way, reached, relations, campuses })
    }

    /// Imports CIs from CSV text (header: [`CSV_COLUMNS`], then `attr:KEY` columns and
    /// `relations`): every row is checked first, and if any is wrong nothing is written
    /// and every wrong row is named.
    pub async fn import_csv(&self, caller: &Caller, text: &str) -> Result<Imported, CmdbError> {
        Self::operate(caller)?;
        let rows = crate::csv::parse(text).map_err(|(row, detail)| {
            CmdbError::Invalid(vec![FieldError { row: Some(row), field: "csv".into(), rule: "format", detail }])
        })?;
        let Some((header, body)) = rows.split_first() else {
            return Err(CmdbError::Invalid(vec![invalid("csv", "required", "a header row and at least one CI")]));
        };
        let col = |name: &str| header.iter().position(|h| h.trim() == name);
        let mut errors = Vec::new();
        for name in ["code", "name", "class"] {
            if col(name).is_none() {
                errors.push(invalid("csv", "header", format!("the header has no {name} column")));
            }
        }
        for h in header {
            let h = h.trim();
            if !(CSV_COLUMNS.contains(&h) || h == "relations" || h.starts_with("attr:")) {
                errors.push(invalid("csv", "header", format!("unknown column {h}")));
            }
        }
        if !errors.is_empty() {
            return Err(CmdbError::Invalid(errors));
        }
        let get = |row: &[String], name: &str| col(name).and_then(|i| row.get(i)).cloned().unwrap_or_default();
        let mut cis = Vec::new();
        let mut codes_here: HashMap<String, usize> = HashMap::new();
        // Codes of rows that are wrong themselves: a relation to one is not a second error.
        let mut codes_wrong: BTreeSet<String> = BTreeSet::new();
        let mut lines: Vec<usize> = Vec::new();
        let mut campuses_known = HashMap::new();
        let mut pending: Vec<(usize, Option<usize>, String, String)> = Vec::new();
        for (n, row) in body.iter().enumerate() {
            let line = n + 1;
            if row.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let form = CiForm {
                code: get(row, "code"),
                name: get(row, "name"),
                class: get(row, "class"),
                campus: get(row, "campus"),
                location: get(row, "location"),
                status: get(row, "status"),
                owner: get(row, "owner"),
                support_group: get(row, "support_group"),
                supplier: get(row, "supplier"),
                warranty_end: get(row, "warranty_end"),
                contract_end: get(row, "contract_end"),
                attrs: header
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| h.trim().strip_prefix("attr:").map(|k| (i, k)))
                    .map(|(i, k)| (k.to_string(), row.get(i).cloned().unwrap_or_default()))
                    .collect(),
            };
            let mut rels = Vec::new();
            for part in get(row, "relations").split(';').map(str::trim).filter(|p| !p.is_empty()) {
                match part.split_once(':') {
                    Some((kind, code)) if RELATIONS.contains(&kind.trim()) => {
                        rels.push((kind.trim().to_string(), code.trim().to_string()));
                    }
                    _ => errors.push(FieldError {
                        row: Some(line),
                        field: "relations".into(),
                        rule: "format",
                        detail: format!("'{part}': KIND:CODE with KIND one of {}", RELATIONS.join(", ")),
                    }),
                }
            }
            let source = match self.checked(caller, &form, &mut campuses_known).await {
                Ok(ci) if !Self::may_change(caller, ci.campus.as_deref()) => {
                    errors.push(FieldError {
                        row: Some(line),
                        field: "campus".into(),
                        rule: "scope",
                        detail: "a configuration item of one of your campuses".into(),
                    });
                    codes_wrong.insert(ci.code);
                    None
                }
                Ok(ci) => {
                    if codes_here.insert(ci.code.clone(), cis.len()).is_some() {
                        errors.push(FieldError {
                            row: Some(line),
                            field: "code".into(),
                            rule: "unique",
                            detail: format!("{} appears twice in the file", ci.code),
                        });
                    }
                    cis.push(ci);
                    lines.push(line);
                    Some(cis.len() - 1)
                }
                Err(es) => {
                    errors.extend(es.into_iter().map(|e| FieldError { row: Some(line), ..e }));
                    codes_wrong.insert(form.code.trim().to_string());
                    None
                }
            };
            pending.extend(rels.into_iter().map(|(kind, code)| (line, source, kind, code)));
        }
        if cis.is_empty() && errors.is_empty() {
            errors.push(invalid("csv", "required", "at least one CI"));
        }
        // Codes the database has already.
        let codes: Vec<String> = cis.iter().map(|c| c.code.clone()).collect();
        for code in self.tables().taken(&codes).await? {
            if let Some(&i) = codes_here.get(&code) {
                errors.push(FieldError {
                    row: lines.get(i).copied(),
                    field: "code".into(),
                    rule: "unique",
                    detail: format!("{code} is taken by a configuration item already stored"),
                });
            }
        }
        // Relations to CIs of the file, or to CIs already stored.
        let mut relations = Vec::new();
        for (line, source, kind, code) in pending {
            if codes_wrong.contains(&code) {
                continue;
            }
            let target = match codes_here.get(&code) {
                Some(i) => Some(Target::New(*i)),
                None => self.tables().by_code(&code).await?.map(|c| Target::Stored(c.id)),
            };
            match (source, target) {
                (Some(source), Some(t)) => relations.push((Target::New(source), kind, t)),
                (None, Some(_)) => {}
                (_, None) => errors.push(FieldError {
                    row: Some(line),
                    field: "relations".into(),
                    rule: "unknown",
                    detail: format!("no configuration item {code} in the file or the database"),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(CmdbError::Invalid(errors));
        }
        let n = relations.len();
        self.tables().import(&cis, &relations, self.fhir.now_ms(), caller.actor()).await?;
        self.audit(caller, "ci-import", format!("{} CIs, {n} relations", cis.len())).await?;
        Ok(Imported { cis: cis.len(), relations: n })
    }

    /// Every CI as CSV in the import's format (attributes of every class as columns,
    /// relations by code), so an export imports into an empty database as it was.
    pub async fn export_csv(&self, caller: &Caller) -> Result<String, CmdbError> {
        Self::operate(caller)?;
        let mut all = Vec::new();
        let mut q = CiQuery { limit: 1000, ..Default::default() };
        loop {
            let page = self.tables().list(&q).await?;
            let Some(last) = page.last() else { break };
            q.after = Some((last.name.clone(), last.id));
            let full = page.len() < 1000;
            all.extend(page);
            if full {
                break;
            }
        }
        // The platform's own CIs are registered by each server itself, not imported.
        all.retain(|c| c.managed_by.is_none());
        let code_of: HashMap<i64, &str> = all.iter().map(|c| (c.id, c.code.as_str())).collect();
        let mut outgoing: HashMap<i64, Vec<String>> = HashMap::new();
        for r in self.tables().all_relations().await? {
            if let Some(code) = code_of.get(&r.target) {
                outgoing.entry(r.source).or_default().push(format!("{}:{code}", r.kind));
            }
        }
        let keys: BTreeSet<&str> = CLASSES.iter().flat_map(|c| c.attrs.iter().map(|a| a.key)).collect();
        let mut header: Vec<String> = CSV_COLUMNS.iter().map(|c| c.to_string()).collect();
        header.extend(keys.iter().map(|k| format!("attr:{k}")));
        header.push("relations".into());
        let mut out = crate::csv::line(&header);
        // Targets first, so an import finds them (it also resolves later rows).
        for c in &all {
            let attrs: Map<String, Value> = serde_json::from_str(&c.attrs).unwrap_or_default();
            let mut row = vec![
                c.code.clone(),
                c.name.clone(),
                c.class.clone(),
                c.campus.clone().unwrap_or_default(),
                c.location.clone().unwrap_or_default(),
                c.status.clone(),
                c.owner.clone().unwrap_or_default(),
                c.support_group.clone(),
                c.supplier.clone().unwrap_or_default(),
                c.warranty_end.clone().unwrap_or_default(),
                c.contract_end.clone().unwrap_or_default(),
            ];
            row.extend(keys.iter().map(|k| match attrs.get(*k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            }));
            row.push(outgoing.remove(&c.id).unwrap_or_default().join("; "));
            out.push_str(&crate::csv::export_line(row));
        }
        self.audit(caller, "ci-export", format!("{} CIs", all.len())).await?;
        Ok(out)
    }
}

fn codes<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::is_percent;

    #[test]
    fn a_percentage_is_above_zero_at_most_a_hundred_with_three_decimals_at_most() {
        for ok in ["99.9", "100", "99.999", "50", "0.5", "100.000"] {
            assert!(is_percent(ok), "{ok}");
        }
        for bad in ["0", "0.0", "100.1", "101", "99.9999", "-1", "99.", ".9", "9e1", "abc", "", " 99", "1000"] {
            assert!(!is_percent(bad), "{bad}");
        }
    }
}
