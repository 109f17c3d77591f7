//! The monthly performance sheets (绩效考核表): a department's people scored by their
//! campus's own formula (see [`crate::performance`]) on what the records say they did —
//! the visits they saw, the prescriptions and requests they signed, the reports they
//! issued, the minutes they took to answer a critical value. The figures are the
//! dashboards' daily sums kept per person as records arrive (see [`crate::measures`]),
//! so a sheet reads one month of sums, never the records.
//!
//! A campus's managers set its formula; managers read every sheet of their campuses,
//! a department head the sheets of their own departments. Reading a sheet is audited
//! (it scores named colleagues).

use std::collections::HashMap;

use lianyi_clinical::names::Names;
use lianyi_clinical::scheduling::{local_date, local_midnight};
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_services::ServiceError;
use lianyi_store::StoreError;
use lianyi_store::performance::FormulaRow;

pub use lianyi_clinical::registry::FieldError;

use crate::measures;
use crate::performance::{Figures, Formula, FormulaError, Indicator, Method, Scored, score};
use crate::rosters::{Department, Rosters};
use crate::staff::{StaffError, StaffService};

#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
    #[error("the departments could not be read: {0}")]
    Departments(String),
}

impl From<StaffError> for SheetError {
    fn from(e: StaffError) -> SheetError {
        match e {
            StaffError::Invalid(v) => SheetError::Invalid(v),
            StaffError::Forbidden(w) => SheetError::Forbidden(w),
            StaffError::NotFound(w) => SheetError::NotFound(w),
            StaffError::Service(s) => SheetError::Service(s),
            StaffError::Store(s) => SheetError::Store(s),
            StaffError::Audit(a) => SheetError::Audit(a),
        }
    }
}

fn invalid(field: &'static str, code: &'static str, detail: impl Into<String>) -> FieldError {
    FieldError { field, code, detail: detail.into() }
}

/// The measure an indicator is counted by (none: satisfaction, from the feedback).
fn measure(i: Indicator) -> Option<&'static str> {
    match i {
        Indicator::Visits => Some(measures::VISITS),
        Indicator::Prescriptions => Some(measures::PRESCRIPTIONS),
        Indicator::Requests => Some(measures::REQUESTS),
        Indicator::Results => Some(measures::RESULTS),
        Indicator::CriticalResponse => Some(measures::CRITICAL),
        Indicator::Satisfaction => None,
    }
}

/// Praise among praise and complaints, in permille rounded half up (`None` without
/// either).
pub fn satisfaction(praise: i64, complaints: i64) -> Option<u64> {
    let all = praise + complaints;
    (all > 0).then(|| u64::try_from((praise * 2_000 / all + 1) / 2).unwrap_or(0))
}

/// The month after `YYYY-MM`.
fn next_month(month: &str) -> Option<String> {
    let (y, m) = (month.get(..4)?.parse::<i32>().ok()?, month.get(5..7)?.parse::<u32>().ok()?);
    Some(if m >= 12 { format!("{:04}-01", y + 1) } else { format!("{y:04}-{:02}", m + 1) })
}

/// The formula of a campus whose managers have not set one: workload first, the
/// department's best as the measure.
pub fn default_formula() -> Formula {
    Formula {
        method: Method::Relative,
        weights: vec![
            (Indicator::Visits, 35),
            (Indicator::Prescriptions, 20),
            (Indicator::Requests, 15),
            (Indicator::Results, 15),
            (Indicator::CriticalResponse, 15),
        ],
        targets: Vec::new(),
    }
}

/// `visits:40,prescriptions:20` → pairs (unknown indicators and bad numbers dropped:
/// what is stored was checked when it was set).
fn pairs(s: &str) -> Vec<(Indicator, u64)> {
    s.split(',')
        .filter_map(|p| {
            let (k, v) = p.split_once(':')?;
            Some((Indicator::parse(k.trim())?, v.trim().parse().ok()?))
        })
        .collect()
}

fn listed<T: std::fmt::Display>(v: &[(Indicator, T)]) -> String {
    v.iter().map(|(i, n)| format!("{}:{n}", i.code())).collect::<Vec<_>>().join(",")
}

fn formula_of(row: &FormulaRow) -> Formula {
    let cap = u32::try_from(row.cap_percent).unwrap_or(120);
    Formula {
        method: if row.method == "target" { Method::Target { cap_percent: cap } } else { Method::Relative },
        weights: pairs(&row.weights).into_iter().map(|(i, w)| (i, u32::try_from(w).unwrap_or(0))).collect(),
        targets: pairs(&row.targets),
    }
}

/// A campus's formula as its manager types it: the method, the cap, and per
/// indicator a weight and a target (each may be empty).
#[derive(Clone, Debug, Default)]
pub struct FormulaForm {
    pub method: String,
    pub cap_percent: String,
    /// (indicator code, weight) for every indicator.
    pub weights: Vec<(String, String)>,
    /// (indicator code, target) for every indicator.
    pub targets: Vec<(String, String)>,
}

impl FormulaForm {
    /// The formula, or every broken rule by field (`weight.visits`, `target.visits`,
    /// `weights` for their sum, `cap`, `method`).
    pub fn check(&self) -> Result<Formula, Vec<FieldError>> {
        let mut errors = Vec::new();
        let method = match self.method.trim() {
            "relative" => Some(Method::Relative),
            "target" => match self.cap_percent.trim().parse::<u32>() {
                Ok(cap) => Some(Method::Target { cap_percent: cap }),
                Err(_) => {
                    errors.push(invalid("cap", "number", "the cap is a whole percent (120 for 120 %)"));
                    None
                }
            },
            _ => {
                errors.push(invalid("method", "choice", "relative or target"));
                None
            }
        };
        let field = |prefix: &str, code: &str| -> &'static str {
            Indicator::ALL.into_iter().find(|i| i.code() == code).map(|i| field_name(prefix, i)).unwrap_or("indicator")
        };
        let mut numbers = |prefix: &str, list: &[(String, String)]| {
            let mut out = Vec::new();
            for (code, v) in list {
                let Some(i) = Indicator::parse(code) else {
                    errors.push(invalid("indicator", "choice", format!("no indicator {code}")));
                    continue;
                };
                match v.trim() {
                    "" => {}
                    t => match t.parse::<u64>() {
                        Ok(n) => out.push((i, n)),
                        Err(_) => errors.push(invalid(field(prefix, code), "number", "a whole number")),
                    },
                }
            }
            out
        };
        let weights: Vec<(Indicator, u32)> = numbers("weight", &self.weights)
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|(i, w)| (i, u32::try_from(w).unwrap_or(u32::MAX)))
            .collect();
        let targets = numbers("target", &self.targets);
        let (Some(method), true) = (method, errors.is_empty()) else { return Err(errors) };
        let formula = Formula { method, weights, targets };
        for e in formula.check() {
            errors.push(match e {
                FormulaError::WeightsSum(sum) => {
                    invalid("weights", "sum", format!("the weights sum to {sum}, not 100"))
                }
                FormulaError::Twice(i) => invalid(field_name("weight", i), "unique", "weighed once"),
                FormulaError::NoTarget(i) => invalid(
                    field_name("target", i),
                    "required",
                    "the target method needs a target for each weighed indicator",
                ),
                FormulaError::Cap(cap) => invalid("cap", "range", format!("a cap of {cap} % would mark everyone down")),
            });
        }
        if errors.is_empty() { Ok(formula) } else { Err(errors) }
    }
}

/// `weight.visits`, `target.critical-response` …
fn field_name(prefix: &str, i: Indicator) -> &'static str {
    match (prefix, i) {
        ("weight", Indicator::Visits) => "weight.visits",
        ("weight", Indicator::Prescriptions) => "weight.prescriptions",
        ("weight", Indicator::Requests) => "weight.requests",
        ("weight", Indicator::Results) => "weight.results",
        ("weight", Indicator::CriticalResponse) => "weight.critical-response",
        ("weight", Indicator::Satisfaction) => "weight.satisfaction",
        (_, Indicator::Visits) => "target.visits",
        (_, Indicator::Prescriptions) => "target.prescriptions",
        (_, Indicator::Requests) => "target.requests",
        (_, Indicator::Results) => "target.results",
        (_, Indicator::CriticalResponse) => "target.critical-response",
        (_, Indicator::Satisfaction) => "target.satisfaction",
    }
}

/// A campus's formula and who set it (none: the default).
#[derive(Clone, Debug)]
pub struct CampusFormula {
    pub campus: String,
    pub formula: Formula,
    /// (who, when) it was set.
    pub set: Option<(String, i64)>,
}

/// One person's line of a sheet.
#[derive(Clone, Debug)]
pub struct SheetRow {
    pub practitioner: String,
    pub names: Names,
    pub title: Option<String>,
    /// Each indicator's figure for the month (`None`: nothing to count).
    pub figures: Vec<(Indicator, Option<u64>)>,
    pub scored: Scored,
}

/// A department's sheet for a month.
#[derive(Clone, Debug)]
pub struct Sheet {
    pub campus: String,
    pub department: String,
    pub department_names: Names,
    /// `YYYY-MM`.
    pub month: String,
    pub formula: CampusFormula,
    /// Best total first.
    pub rows: Vec<SheetRow>,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Sheets {
    fhir: FhirService,
    staff: StaffService,
    rosters: Rosters,
}

impl Sheets {
    pub fn new(fhir: FhirService) -> Sheets {
        Sheets { staff: StaffService::new(fhir.clone()), rosters: Rosters::new(fhir.clone()), fhir }
    }

    fn head(caller: &Caller) -> bool {
        caller.role() == Some("department-head")
    }

    /// Managers and department heads read sheets.
    pub fn may_read(caller: &Caller) -> bool {
        crate::dashboards::Dashboards::may_view(caller)
    }

    /// A campus's managers set its formula.
    pub fn may_set(caller: &Caller, campus: &str) -> bool {
        crate::common::holds_at(caller, Capability::ViewReports, campus) && !Self::head(caller)
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), SheetError> {
        crate::common::audit(&self.fhir, caller, action, detail).await.map_err(SheetError::Audit)
    }

    /// The campus's formula (the default when its managers set none).
    pub async fn formula(&self, campus: &str) -> Result<CampusFormula, SheetError> {
        let row = self.fhir.operations().formulas().get(campus).await?;
        Ok(match row {
            Some(r) => CampusFormula {
                campus: campus.to_string(),
                formula: formula_of(&r),
                set: Some((r.updated_by, r.updated_at)),
            },
            None => CampusFormula { campus: campus.to_string(), formula: default_formula(), set: None },
        })
    }

    /// Sets the campus's formula.
    pub async fn set_formula(&self, caller: &Caller, campus: &str, form: &FormulaForm) -> Result<(), SheetError> {
        if !Self::may_set(caller, campus) {
            return Err(SheetError::Forbidden("a campus's performance formula is set by its managers"));
        }
        if !self.fhir.campuses().await?.iter().any(|c| c == campus) {
            return Err(SheetError::Invalid(vec![invalid("campus", "unknown", format!("no campus {campus}"))]));
        }
        let f = form.check().map_err(SheetError::Invalid)?;
        let (method, cap) = match f.method {
            Method::Relative => ("relative", 120),
            Method::Target { cap_percent } => ("target", i64::from(cap_percent)),
        };
        let row = FormulaRow {
            campus: campus.to_string(),
            method: method.into(),
            cap_percent: cap,
            weights: listed(&f.weights),
            targets: listed(&f.targets),
            updated_at: self.fhir.now_ms(),
            updated_by: caller.actor().to_string(),
        };
        self.fhir.operations().formulas().set(&row).await?;
        self.audit(
            caller,
            "performance-formula",
            format!("campus {campus}: {method} {} / {}", row.weights, row.targets),
        )
        .await
    }

    /// The sheet of `department` (of `campus`) for `month` (`YYYY-MM`).
    pub async fn sheet(
        &self,
        caller: &Caller,
        campus: &str,
        department: &str,
        month: &str,
    ) -> Result<Sheet, SheetError> {
        if !Self::may_read(caller) || !caller.access().all_campuses().contains(campus) {
            return Err(SheetError::Forbidden("a campus's performance sheets are read by its managers"));
        }
        let valid_month = month.len() == 7
            && month.as_bytes()[4] == b'-'
            && month[..4].parse::<u16>().is_ok()
            && month[5..].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m));
        if !valid_month {
            return Err(SheetError::Invalid(vec![invalid("month", "format", "a month as YYYY-MM")]));
        }
        let readable = self.departments(caller).await?;
        if Self::head(caller) && !readable.iter().any(|d| d.id == department) {
            return Err(SheetError::Forbidden("a department head reads the sheets of their own department"));
        }
        let department_names = readable
            .into_iter()
            .find(|d| d.id == department && d.campus == campus)
            .map(|d| d.names)
            .ok_or_else(|| SheetError::NotFound(format!("department {department} of {campus}")))?;
        let formula = self.formula(campus).await?;
        let mut people = self.staff.people(caller, department).await?;
        // One line per person (a person with two roles in the department counts once).
        people.sort_by(|a, b| a.practitioner.cmp(&b.practitioner));
        people.dedup_by(|b, a| {
            if a.practitioner == b.practitioner {
                a.keys.append(&mut b.keys);
                true
            } else {
                false
            }
        });
        let sums = self
            .fhir
            .operations()
            .figures()
            .person_sums(campus, &format!("{month}-01"), &format!("{month}-31"))
            .await?;
        // Praise and complaints naming each person this month.
        let start = local_midnight(&format!("{month}-01")).unwrap_or_default();
        let end = next_month(month).and_then(|m| local_midnight(&format!("{m}-01"))).unwrap_or(start);
        let mut feedback: HashMap<String, (i64, i64)> = HashMap::new();
        for (person, kind, n) in self.fhir.operations().feedback().by_person(campus, start, end).await? {
            let e = feedback.entry(person).or_default();
            match kind.as_str() {
                "praise" => e.0 += n,
                "complaint" => e.1 += n,
                _ => {}
            }
        }
        let mut by_key: HashMap<&str, Vec<&lianyi_store::figures::Sum>> = HashMap::new();
        for s in &sums {
            by_key.entry(s.key.as_str()).or_default().push(s);
        }
        let figures: Vec<Figures> = people
            .iter()
            .map(|p| {
                let values = Indicator::ALL
                    .into_iter()
                    .map(|i| {
                        let Some(measure) = measure(i) else {
                            let (praise, complaints) = feedback.get(&p.practitioner).copied().unwrap_or_default();
                            return (i, satisfaction(praise, complaints));
                        };
                        let (total, n) = p
                            .keys
                            .iter()
                            .flat_map(|k| by_key.get(k.as_str()).into_iter().flatten())
                            .filter(|s| s.measure == measure)
                            .fold((0i64, 0i64), |(t, n), s| (t + s.total, n + s.n));
                        let v = if i.lower_is_better() {
                            // The average minutes over the critical values answered.
                            (n > 0).then(|| u64::try_from((total * 2 / n + 1) / 2).unwrap_or(0))
                        } else {
                            Some(u64::try_from(total).unwrap_or(0))
                        };
                        (i, v)
                    })
                    .collect();
                Figures { person: p.practitioner.clone(), values }
            })
            .collect();
        let scored = score(&formula.formula, &figures);
        let mut rows: Vec<SheetRow> = people
            .into_iter()
            .zip(figures)
            .zip(scored)
            .map(|((p, f), s)| SheetRow {
                practitioner: p.practitioner,
                names: p.names,
                title: p.title,
                figures: f.values,
                scored: s,
            })
            .collect();
        rows.sort_by(|a, b| b.scored.total.cmp(&a.scored.total).then(a.names.en.cmp(&b.names.en)));
        self.audit(
            caller,
            "performance-sheet",
            format!("department {department} of {campus}, {month}: {} people", rows.len()),
        )
        .await?;
        Ok(Sheet {
            campus: campus.to_string(),
            department: department.to_string(),
            department_names,
            month: month.to_string(),
            formula,
            rows,
        })
    }

    /// The departments whose sheets the caller reads (a head: their own), by campus.
    pub async fn departments(&self, caller: &Caller) -> Result<Vec<Department>, SheetError> {
        if !Self::may_read(caller) {
            return Ok(Vec::new());
        }
        let all = self.rosters.departments(caller).await.map_err(|e| SheetError::Departments(e.to_string()))?;
        // A head's own departments are those whose roster they keep (the rosters looked
        // them up once).
        Ok(all.into_iter().filter(|d| !Self::head(caller) || d.may_keep).collect())
    }

    /// This month (`YYYY-MM`, Beijing).
    pub fn this_month(&self) -> String {
        local_date(self.fhir.now_ms())[..7].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(method: &str, cap: &str, weights: &[(&str, &str)], targets: &[(&str, &str)]) -> FormulaForm {
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        FormulaForm { method: method.into(), cap_percent: cap.into(), weights: pairs(weights), targets: pairs(targets) }
    }

    fn fields(e: Vec<FieldError>) -> Vec<(&'static str, &'static str)> {
        e.into_iter().map(|e| (e.field, e.code)).collect()
    }

    #[test]
    fn a_formula_form_names_each_broken_rule_by_field() {
        let ok = form(
            "target",
            "120",
            &[("visits", "60"), ("prescriptions", "40"), ("results", "")],
            &[("visits", "300"), ("prescriptions", "200")],
        );
        let f = ok.check().unwrap();
        assert_eq!(f.method, Method::Target { cap_percent: 120 });
        assert_eq!(listed(&f.weights), "visits:60,prescriptions:40");
        assert_eq!(
            formula_of(&FormulaRow {
                method: "target".into(),
                cap_percent: 120,
                weights: listed(&f.weights),
                targets: listed(&f.targets),
                ..FormulaRow::default()
            }),
            f
        );
        let bad = form("target", "90", &[("visits", "60"), ("prescriptions", "x")], &[("visits", "300")]);
        assert_eq!(fields(bad.check().unwrap_err()), [("weight.prescriptions", "number")]);
        let bad = form("target", "90", &[("visits", "60"), ("prescriptions", "30")], &[("visits", "300")]);
        assert_eq!(
            fields(bad.check().unwrap_err()),
            [("weights", "sum"), ("cap", "range"), ("target.prescriptions", "required")]
        );
        assert_eq!(fields(form("best", "", &[], &[]).check().unwrap_err()), [("method", "choice")]);
        assert!(default_formula().check().is_empty());
    }

    #[test]
    fn satisfaction_is_praise_among_praise_and_complaints() {
        assert_eq!(satisfaction(3, 1), Some(750));
        assert_eq!(satisfaction(1, 2), Some(333));
        assert_eq!(satisfaction(2, 1), Some(667), "rounded half up");
        assert_eq!(satisfaction(0, 0), None);
        assert_eq!(next_month("2026-12").as_deref(), Some("2027-01"));
        assert_eq!(next_month("2026-02").as_deref(), Some("2026-03"));
    }
}
