//! Decision-support dashboards (决策支持) for the group and each campus: outpatient
//! visits and appointments (show and no-show), the wait from check-in to call,
//! revenue and the drugs' share of it (药占比), critical values' response, the imaging
//! and laboratory devices' use, and the doctors' workload — over a period, by campus,
//! department and day.
//!
//! The figures are daily sums kept current as records arrive: a follower of the
//! outbox (as the dashboards' system task) reads each changed record and replaces what
//! it counts for (see [`crate::measures`]), so a dashboard over a year reads one row
//! per campus, measure and day instead of the records. Unlike the other watchers it
//! starts at the beginning of the outbox (its cursor is made at 0 by the migration
//! that made the figures, so the outbox's retention keeps every event until it is
//! read): the figures hold what happened before the server first ran it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lianyi_clinical::names::Names;
use lianyi_clinical::scheduling::local_date;
use lianyi_fhir::ResourceType;
use lianyi_security::roles::Capability;
use lianyi_security::{Caller, Campuses, SystemTask};
use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoreError;
use lianyi_store::figures::{Figure, Scope, Sum, SumBy};
use lianyi_store::outbox::OutboxEvent;
use serde_json::Value;

pub use lianyi_clinical::registry::FieldError;

use crate::measures::{self, Paid};

/// The follower's cursor.
const CURSOR: &str = "dashboards";
/// Events read per round (one transaction of figures).
const BATCH: usize = 500;
/// The longest period one dashboard covers.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> DashboardError {
    DashboardError::Invalid(vec![FieldError { field, code: rule, detail: detail.into() }])
}

/// What a dashboard shows: a period, and optionally one campus and one department.
#[derive(Clone, Debug, Default)]
pub struct DashQuery {
    /// `YYYY-MM-DD`, both days included.
    pub from: String,
    pub to: String,
    pub campus: Option<String>,
    pub department: Option<String>,
}

/// The indicators of one campus, department or day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kpis {
    pub visits: i64,
    pub booked: i64,
    pub shown: i64,
    /// Booked appointments of past days the patient did not come to.
    pub no_show: i64,
    /// Booked appointments of past days (what the no-shows are a share of).
    pub booked_past: i64,
    pub wait_minutes: i64,
    pub waits: i64,
    pub revenue_fen: i64,
    pub drugs_fen: i64,
    pub critical_minutes: i64,
    pub criticals: i64,
    pub studies: i64,
    pub tests: i64,
    pub prescriptions: i64,
}

impl Kpis {
    fn add(&mut self, s: &Sum) {
        let slot = match s.measure.as_str() {
            measures::VISITS => &mut self.visits,
            measures::BOOKED => &mut self.booked,
            measures::SHOWN => &mut self.shown,
            measures::REVENUE => &mut self.revenue_fen,
            measures::DRUGS => &mut self.drugs_fen,
            measures::STUDIES => &mut self.studies,
            measures::TESTS => &mut self.tests,
            measures::PRESCRIPTIONS => &mut self.prescriptions,
            measures::WAIT => {
                self.waits += s.n;
                &mut self.wait_minutes
            }
            measures::CRITICAL => {
                self.criticals += s.n;
                &mut self.critical_minutes
            }
            _ => return,
        };
        *slot += s.total;
    }

    /// Past days' bookings: booked and shown of days before today, counted with
    /// `sign` 1, or taken back with -1 for days from today on.
    fn add_past(&mut self, s: &Sum, sign: i64) {
        match s.measure.as_str() {
            measures::BOOKED => {
                self.booked_past += sign * s.total;
                self.no_show += sign * s.total;
            }
            measures::SHOWN => self.no_show -= sign * s.total,
            _ => {}
        }
    }

    /// Average minutes from check-in to call.
    pub fn wait_average(&self) -> Option<i64> {
        (self.waits > 0).then(|| (self.wait_minutes + self.waits / 2) / self.waits)
    }

    /// Average minutes to acknowledge a critical value.
    pub fn critical_average(&self) -> Option<i64> {
        (self.criticals > 0).then(|| (self.critical_minutes + self.criticals / 2) / self.criticals)
    }

    /// The drugs' share of the revenue in tenths of a percent (药占比).
    pub fn drug_share_permille(&self) -> Option<i64> {
        (self.revenue_fen > 0).then(|| (self.drugs_fen * 1000 + self.revenue_fen / 2) / self.revenue_fen)
    }

    /// The no-shows' share of past bookings, in tenths of a percent.
    pub fn no_show_permille(&self) -> Option<i64> {
        (self.booked_past > 0).then(|| (self.no_show.max(0) * 1000 + self.booked_past / 2) / self.booked_past)
    }
}

/// One line of a dashboard: a campus, a department or a day, with its indicators.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Line {
    /// The campus id, the department's Organization id (`""`: records naming none),
    /// or the day.
    pub key: String,
    /// A department's names (empty for campuses and days).
    pub names: Names,
    pub kpis: Kpis,
}

/// A dashboard: the lines of its level (campuses for the group, departments for a
/// campus, days for a department), the days of the whole scope, and the total.
#[derive(Clone, Debug, Default)]
pub struct Dashboard {
    pub query: DashQuery,
    pub lines: Vec<Line>,
    pub days: Vec<Line>,
    pub total: Kpis,
    /// Today (`YYYY-MM-DD`): its bookings are not yet no-shows.
    pub today: String,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Dashboards {
    fhir: FhirService,
    /// A PractitionerRole's or Encounter's department (`""`: none), by reference.
    departments: Arc<Mutex<HashMap<String, String>>>,
}

impl Dashboards {
    pub fn new(fhir: FhirService) -> Dashboards {
        Dashboards { fhir, departments: Arc::default() }
    }

    /// Managers and department heads see the dashboards of their campuses.
    pub fn may_view(caller: &Caller) -> bool {
        caller.can(Capability::ViewReports) && caller.is_authenticated() && caller.access().patient().is_none()
    }

    /// The dashboard of `q` as `caller` sees it.
    pub async fn view(&self, caller: &Caller, q: &DashQuery) -> Result<Dashboard, DashboardError> {
        if !Self::may_view(caller) {
            return Err(DashboardError::Forbidden("the dashboards are shown to managers and department heads"));
        }
        let mut errors: Vec<FieldError> = lianyi_clinical::scheduling::period_errors(&q.from, &q.to, MAX_DAYS)
            .into_iter()
            .map(|(field, code, detail)| FieldError { field, code, detail })
            .collect();
        if q.department.is_some() && q.campus.is_none() {
            errors.push(FieldError {
                field: "campus",
                code: "required",
                detail: "a department is shown in its campus".into(),
            });
        }
        if !errors.is_empty() {
            return Err(DashboardError::Invalid(errors));
        }
        let campuses: Option<Vec<String>> = match caller.access().all_campuses() {
            Campuses::All => None,
            Campuses::Only(list) => Some(list.iter().map(|c| c.as_str().to_string()).collect()),
        };
        if let (Some(c), Some(mine)) = (&q.campus, &campuses)
            && !mine.contains(c)
        {
            return Err(DashboardError::Forbidden("that campus is not one of yours"));
        }
        let today = local_date(self.fhir.now_ms());
        // Bookings from today on are not missed yet: the past is the period less those
        // days (read apart only for the lines by campus or department, a day or few).
        let later_from = if q.from > today { q.from.clone() } else { today.clone() };
        let scope = Scope {
            from: &q.from,
            to: &q.to,
            campuses: campuses.as_deref(),
            campus: q.campus.as_deref(),
            department: q.department.as_deref(),
        };
        let later = Scope { from: &later_from, ..scope.clone() };
        let figures = self.fhir.operations().figures();
        let by = match (&q.campus, &q.department) {
            (None, _) => SumBy::Campus,
            (Some(_), None) => SumBy::Department,
            (Some(_), Some(_)) => SumBy::Day,
        };
        let day_sums = figures.sums(&scope, SumBy::Day).await?;
        let days_later: Vec<Sum> = day_sums.iter().filter(|s| s.key >= later_from).cloned().collect();
        let days = lines(day_sums, &days_later);
        let mut level = if by == SumBy::Day {
            days.clone()
        } else {
            let later = if q.to >= today { figures.sums(&later, by).await? } else { Vec::new() };
            lines(figures.sums(&scope, by).await?, &later)
        };
        if by == SumBy::Campus
            && let Some(mine) = &campuses
        {
            for c in mine {
                if !level.iter().any(|l| &l.key == c) {
                    level.push(Line { key: c.clone(), ..Line::default() });
                }
            }
            level.sort_by(|a, b| a.key.cmp(&b.key));
        }
        if by == SumBy::Department {
            let names = self.department_names(caller, level.iter().map(|l| l.key.as_str())).await?;
            for l in &mut level {
                l.names = names.get(&l.key).cloned().unwrap_or_default();
            }
            level.sort_by(|a, b| b.kpis.visits.cmp(&a.kpis.visits).then(a.key.cmp(&b.key)));
        }
        let mut total = Kpis::default();
        for d in &days {
            total = sum(&total, &d.kpis);
        }
        Ok(Dashboard { query: q.clone(), lines: level, days, total, today })
    }

    /// A department's names (an Organization id), if `caller` may read them.
    pub async fn department(&self, caller: &Caller, id: &str) -> Option<Names> {
        self.department_names(caller, std::iter::once(id)).await.ok()?.remove(id)
    }

    /// The names of these departments (Organization ids).
    async fn department_names<'a>(
        &self,
        caller: &Caller,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, Names>, DashboardError> {
        let ids: Vec<&str> = ids.filter(|i| !i.is_empty()).collect();
        let mut out = HashMap::new();
        for r in self.read_all(caller, "Organization", &ids).await? {
            if let Ok(v) = serde_json::from_str::<Value>(&r.body) {
                out.insert(r.id.clone(), lianyi_services::fhir::organization_names(&v));
            }
        }
        Ok(out)
    }

    /// How many outbox events the figures are behind (0: current).
    pub async fn lag(&self) -> Result<i64, DashboardError> {
        let ops = self.fhir.operations();
        let head = ops.outbox_head().await?;
        Ok((head - ops.cursor(CURSOR).await?.unwrap_or(0)).max(0))
    }

    /// Follows the outbox for ever (started with the server).
    pub async fn run(self) {
        let mut pause = lianyi_services::follow::Pause::new("dashboards");
        loop {
            let round = self.catch_up().await;
            if let Err(e) = &round
                && !pause.paused()
            {
                tracing::warn!(error = %e, "dashboard figures not brought up to date");
            }
            let wait = pause.after(&self.fhir.operations(), round.is_ok(), Duration::from_secs(1)).await;
            tokio::time::sleep(wait).await;
        }
    }

    /// Brings the figures up to the outbox's last event; returns how many events were
    /// read. A restart goes on from the cursor kept in the database; a batch counted
    /// twice (stopped before its cursor moved) replaces what it counted the first time.
    pub async fn catch_up(&self) -> Result<usize, DashboardError> {
        let ops = self.fhir.operations();
        let mut cursor = ops.cursor(CURSOR).await?.unwrap_or(0);
        let mut read = 0;
        loop {
            let events = ops.outbox_after(cursor, BATCH).await?;
            let Some(last) = events.last().map(|e| e.seq) else { break };
            read += events.len();
            self.apply(&events).await?;
            cursor = last;
            ops.set_cursor(CURSOR, cursor).await?;
        }
        Ok(read)
    }

    /// Replaces the figures of every record the events changed by what its current
    /// version counts for.
    async fn apply(&self, events: &[OutboxEvent]) -> Result<(), DashboardError> {
        let mut changed: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for e in events.iter().filter(|e| measures::TYPES.contains(&e.resource_type.as_str())) {
            changed.entry(e.resource_type.as_str()).or_default().insert(e.id.as_str());
        }
        let mut changes: Vec<(String, Vec<Figure>)> = Vec::new();
        if let Some(ids) = changed.remove("Invoice") {
            let ids: Vec<String> = ids.into_iter().map(str::to_string).collect();
            let mut paid: BTreeMap<String, Vec<Paid>> = ids.iter().map(|i| (i.clone(), Vec::new())).collect();
            for (invoice, campus, l) in self.fhir.operations().invoice_lines(&ids).await? {
                paid.entry(invoice).or_default().push(Paid {
                    campus,
                    department: l.department.unwrap_or_default(),
                    day: l.day,
                    category: l.category,
                    amount_fen: l.amount_fen,
                });
            }
            changes.extend(
                paid.into_iter().map(|(id, lines)| (format!("Invoice/{id}"), measures::payment_figures(&lines))),
            );
        }
        let task = Caller::task(SystemTask::Dashboards);
        let mut records: Vec<(&str, lianyi_store::StoredResource, Value)> = Vec::new();
        for (&rtype, ids) in &changed {
            let ids: Vec<&str> = ids.iter().copied().collect();
            let found = self.read_all(&task, rtype, &ids).await?;
            for id in &ids {
                if !found.iter().any(|r| r.id == *id) {
                    changes.push((format!("{rtype}/{id}"), Vec::new())); // deleted
                }
            }
            for r in found {
                let body = serde_json::from_str(&r.body).unwrap_or(Value::Null);
                records.push((rtype, r, body));
            }
        }
        // The departments the records name through another resource.
        let wanted: BTreeSet<String> =
            records.iter().filter_map(|(t, _, b)| measures::department_lookup(t, b)).collect();
        let missing: Vec<String> = {
            let known = self.departments.lock().unwrap_or_else(|p| p.into_inner());
            wanted.into_iter().filter(|r| !known.contains_key(r)).collect()
        };
        let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in &missing {
            if let Some((t, id)) = r.split_once('/') {
                by_type.entry(t).or_default().push(id);
            }
        }
        // Each missing reference is known afterwards, as `""` when it names none.
        let mut found: HashMap<String, String> = missing.iter().map(|r| (r.clone(), String::new())).collect();
        for (t, ids) in by_type {
            for r in self.read_all(&task, t, &ids).await? {
                let dept = serde_json::from_str(&r.body).ok().and_then(|b| measures::department_given(t, &b));
                found.insert(format!("{t}/{}", r.id), dept.unwrap_or_default());
            }
        }
        {
            let mut known = self.departments.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() > 50_000 {
                known.clear();
            }
            known.extend(found);
            for (rtype, r, body) in &records {
                let source = format!("{rtype}/{}", r.id);
                let Some(campus) = r.campus.as_deref() else {
                    changes.push((source, Vec::new()));
                    continue;
                };
                let dept = measures::department_lookup(rtype, body).and_then(|k| known.get(&k).cloned());
                changes.push((source, measures::figures_of(rtype, campus, body, dept.as_deref())));
            }
        }
        self.fhir.operations().figures().replace(&changes).await?;
        Ok(())
    }

    /// The current versions of these resources that `caller` may read.
    async fn read_all(
        &self,
        caller: &Caller,
        rtype: &str,
        ids: &[&str],
    ) -> Result<Vec<lianyi_store::StoredResource>, DashboardError> {
        let Some(rt) = ResourceType::parse(rtype) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for chunk in ids.chunks(100) {
            let params = vec![("_id".to_string(), chunk.join(",")), ("_count".to_string(), "100".to_string())];
            let req = lianyi_fhir::search::parse_search(rt, &params)
                .map_err(|i| invalid("search", "search", i.diagnostics))?;
            let page = self.fhir.search(&self.fhir.permit(caller, rt).await?, &req).await?;
            out.extend(page.resources);
        }
        Ok(out)
    }
}

/// Lines from the sums of a period and of its days from today on (whose bookings are
/// not missed yet).
fn lines(sums: Vec<Sum>, later: &[Sum]) -> Vec<Line> {
    let mut by: BTreeMap<String, Kpis> = BTreeMap::new();
    for s in &sums {
        let k = by.entry(s.key.clone()).or_default();
        k.add(s);
        k.add_past(s, 1);
    }
    for s in later {
        if let Some(k) = by.get_mut(&s.key) {
            k.add_past(s, -1);
        }
    }
    by.into_iter().map(|(key, kpis)| Line { key, names: Names::default(), kpis }).collect()
}

fn sum(a: &Kpis, b: &Kpis) -> Kpis {
    Kpis {
        visits: a.visits + b.visits,
        booked: a.booked + b.booked,
        shown: a.shown + b.shown,
        no_show: a.no_show + b.no_show,
        booked_past: a.booked_past + b.booked_past,
        wait_minutes: a.wait_minutes + b.wait_minutes,
        waits: a.waits + b.waits,
        revenue_fen: a.revenue_fen + b.revenue_fen,
        drugs_fen: a.drugs_fen + b.drugs_fen,
        critical_minutes: a.critical_minutes + b.critical_minutes,
        criticals: a.criticals + b.criticals,
        studies: a.studies + b.studies,
        tests: a.tests + b.tests,
        prescriptions: a.prescriptions + b.prescriptions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(key: &str, measure: &str, total: i64, n: i64) -> Sum {
        Sum { key: key.into(), measure: measure.into(), total, n }
    }

    #[test]
    fn indicators_from_sums() {
        let got = lines(
            vec![
                s("east", measures::BOOKED, 10, 10),
                s("east", measures::SHOWN, 7, 7),
                s("east", measures::WAIT, 125, 6),
                s("east", measures::REVENUE, 100_000, 30),
                s("east", measures::DRUGS, 33_333, 12),
            ],
            &[s("east", measures::BOOKED, 2, 2), s("east", measures::SHOWN, 1, 1)],
        );
        let k = &got[0].kpis;
        assert_eq!((k.booked, k.shown, k.no_show, k.booked_past), (10, 7, 2, 8), "today's bookings are not no-shows");
        assert_eq!(k.no_show_permille(), Some(250));
        assert_eq!(k.wait_average(), Some(21), "125 minutes over 6 calls, rounded");
        assert_eq!(k.drug_share_permille(), Some(333));
        assert_eq!(k.critical_average(), None, "nothing acknowledged: no average");
        assert_eq!(Kpis::default().drug_share_permille(), None);
    }
}
