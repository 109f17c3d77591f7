//! The service desk's statistics over a period: faults by category, CI class, campus,
//! priority and day; recurrence (the same item failing again within N days); mean time
//! to acknowledge and to resolve, counted by each ticket's own SLA clock (its calendar,
//! paused time left out); SLA compliance; and each engineer's work — tickets taken and
//! resolved, time logged, first-time fixes, reopened tickets and the reporters'
//! satisfaction — so a team lead assesses on the record, not on impressions.

use std::collections::{BTreeMap, HashMap};

use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::desk::Ticket;

use crate::desk::{Desk, DeskError};
use crate::sla::SlaState;

/// One engineer's work in the period.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Engineer {
    /// The user name.
    pub name: String,
    /// Tickets they took.
    pub taken: usize,
    /// Tickets they resolved (the last resolution counts).
    pub resolved: usize,
    /// Minutes logged.
    pub minutes: i64,
    /// Resolved tickets never reopened nor passed on to another engineer.
    pub first_time_fixes: usize,
    /// Resolved tickets reopened at least once.
    pub reopened: usize,
    /// Sum and count of the satisfaction scores of the tickets they resolved.
    pub satisfaction_sum: i64,
    pub satisfaction_count: usize,
}

impl Engineer {
    /// Percent of the resolved tickets fixed the first time.
    pub fn first_time_percent(&self) -> Option<usize> {
        (self.resolved > 0).then(|| self.first_time_fixes * 100 / self.resolved)
    }

    /// Percent of the resolved tickets reopened.
    pub fn reopen_percent(&self) -> Option<usize> {
        (self.resolved > 0).then(|| self.reopened * 100 / self.resolved)
    }

    /// Mean satisfaction in tenths (4.5 → 45).
    pub fn satisfaction_tenths(&self) -> Option<i64> {
        (self.satisfaction_count > 0).then(|| self.satisfaction_sum * 10 / self.satisfaction_count as i64)
    }
}

/// An item that failed again within the recurrence window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recurring {
    pub ci: i64,
    pub code: String,
    pub name: String,
    pub class: String,
    /// Its faults opened in the period.
    pub faults: usize,
    /// Of those, opened within the window after an earlier fault of the same item.
    pub repeats: usize,
}

/// One ticket as the statistics read it (a CSV row).
#[derive(Clone, Debug)]
pub struct Row {
    pub ticket: Ticket,
    pub ci_class: String,
    pub resolver: Option<String>,
    pub response_minutes: Option<i64>,
    pub resolution_minutes: Option<i64>,
    /// `met`, `breached` or `open` (still counting).
    pub sla: &'static str,
    pub reopened: bool,
    pub minutes_logged: i64,
}

/// The statistics of a period; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub from: i64,
    pub to: i64,
    pub recurrence_days: i64,
    pub total: usize,
    pub resolved: usize,
    pub by_category: Vec<(String, usize)>,
    pub by_class: Vec<(String, usize)>,
    pub by_campus: Vec<(String, usize)>,
    pub by_priority: Vec<(i64, usize)>,
    /// (Beijing day number, faults opened that day), every day of the period.
    pub by_day: Vec<(i64, usize)>,
    /// Mean minutes to acknowledge and to resolve (by the SLA clocks).
    pub mtta_minutes: Option<i64>,
    pub mttr_minutes: Option<i64>,
    /// (met, decided) for the response and resolution targets.
    pub response_sla: (usize, usize),
    pub resolution_sla: (usize, usize),
    pub recurring: Vec<Recurring>,
    /// Shown to the IT manager and the group leads.
    pub engineers: Option<Vec<Engineer>>,
    pub rows: Vec<Row>,
}

fn counted<K: Ord + Clone>(items: impl Iterator<Item = K>) -> Vec<(K, usize)> {
    let mut m: BTreeMap<K, usize> = BTreeMap::new();
    for k in items {
        *m.entry(k).or_default() += 1;
    }
    let mut v: Vec<(K, usize)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn mean(values: &[i64]) -> Option<i64> {
    (!values.is_empty()).then(|| values.iter().sum::<i64>() / values.len() as i64)
}

const DAY_MS: i64 = 86_400_000;
/// Beijing's offset from UTC: days, months and printed times are Beijing's.
pub(crate) const OFFSET_MS: i64 = 8 * 3_600_000;

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Stats {
    fhir: FhirService,
    desk: Desk,
}

impl Stats {
    pub fn new(fhir: FhirService, desk: Desk) -> Stats {
        Stats { fhir, desk }
    }

    /// Whether `caller` sees each engineer's figures: the IT manager and group leads.
    pub async fn may_assess(&self, caller: &Caller) -> Result<bool, DeskError> {
        if caller.can(Capability::ManageIt) {
            return Ok(true);
        }
        let name = caller.actor().strip_prefix("user:").unwrap_or(caller.actor());
        Ok(self.fhir.operations().desk().groups_of(name).await?.iter().any(|(_, lead)| *lead))
    }

    /// The statistics of the faults opened in `[from, to)`; a fault is recurring when
    /// the same item had one in the `recurrence_days` before.
    pub async fn report(&self, caller: &Caller, from: i64, to: i64, recurrence_days: i64) -> Result<Report, DeskError> {
        if !caller.can(Capability::OperateIt) {
            return Err(DeskError::Forbidden("the statistics are the IT team's"));
        }
        if to <= from {
            return Err(DeskError::Invalid(vec![crate::cmdb::FieldError {
                row: None,
                field: "to".into(),
                rule: "after-start",
                detail: "the period ends after it starts".into(),
            }]));
        }
        let days = recurrence_days.clamp(1, 365);
        let mut audit = caller.entry(self.fhir.now_ms(), "ops-stats", "success");
        audit.detail = Some(format!("faults opened {from}..{to}"));
        self.fhir.audit_log().record(vec![audit]).await.map_err(|e| DeskError::Audit(e.to_string()))?;
        let tables = self.fhir.operations().desk();
        let earlier = tables.opened_between(from - days * DAY_MS, to).await?;
        let ids: Vec<i64> = earlier.iter().filter(|t| t.opened_at >= from).map(|t| t.id).collect();
        let mut events = tables.events_of(&ids).await?;
        let mut ci_ids: Vec<i64> = earlier.iter().filter_map(|t| t.ci).collect();
        ci_ids.sort_unstable();
        ci_ids.dedup();
        let cis: HashMap<i64, lianyi_store::cmdb::Ci> =
            self.fhir.operations().cmdb().many(&ci_ids).await?.into_iter().map(|c| (c.id, c)).collect();
        let now = self.fhir.now_ms();
        let sla = self.desk.sla().await?;

        // Recurrence: the last fault of each item as the tickets go by in time.
        let mut last_fault: HashMap<i64, i64> = HashMap::new();
        let mut recurring: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
        let mut rows = Vec::with_capacity(ids.len());
        let mut engineers: BTreeMap<String, Engineer> = BTreeMap::new();
        let (mut acknowledge, mut resolve) = (Vec::new(), Vec::new());
        let (mut response_sla, mut resolution_sla) = ((0, 0), (0, 0));
        for t in earlier {
            let previous = t.ci.and_then(|c| last_fault.insert(c, t.opened_at));
            if t.opened_at < from {
                continue;
            }
            if let Some(ci) = t.ci {
                let e = recurring.entry(ci).or_default();
                e.0 += 1;
                if previous.is_some_and(|p| t.opened_at - p <= days * DAY_MS) {
                    e.1 += 1;
                }
            }
            let evs = events.remove(&t.id).unwrap_or_default();
            let (response, resolution) = self.desk.clock(&sla, &t, &evs, now);
            let done = matches!(t.status.as_str(), "resolved" | "closed");
            if t.responded_at.is_some() {
                acknowledge.push(response.elapsed_ms / 60_000);
            }
            if done {
                resolve.push(resolution.elapsed_ms / 60_000);
            }
            for (clock, tally) in [(&response, &mut response_sla), (&resolution, &mut resolution_sla)] {
                match clock.state {
                    SlaState::Met => *tally = (tally.0 + 1, tally.1 + 1),
                    SlaState::Breached => tally.1 += 1,
                    _ => {}
                }
            }
            // The engineers' work, from the ticket's events.
            let user = |actor: &str| actor.strip_prefix("user:").map(str::to_string);
            let mut takers = Vec::new();
            let mut logged = 0;
            for e in &evs {
                match e.kind.as_str() {
                    "assigned" => {
                        if let Some(u) = user(&e.actor) {
                            engineers
                                .entry(u.clone())
                                .or_insert_with(|| Engineer { name: u.clone(), ..Default::default() })
                                .taken += 1;
                            if !takers.contains(&u) {
                                takers.push(u);
                            }
                        }
                    }
                    "work" => {
                        logged += e.minutes.unwrap_or(0);
                        if let Some(u) = user(&e.actor) {
                            engineers
                                .entry(u.clone())
                                .or_insert_with(|| Engineer { name: u, ..Default::default() })
                                .minutes += e.minutes.unwrap_or(0);
                        }
                    }
                    _ => {}
                }
            }
            let reopened = evs.iter().any(|e| e.kind == "reopened");
            let resolver = evs.iter().rev().find(|e| e.kind == "resolved").and_then(|e| user(&e.actor));
            if let (true, Some(r)) = (done, &resolver) {
                let e =
                    engineers.entry(r.clone()).or_insert_with(|| Engineer { name: r.clone(), ..Default::default() });
                e.resolved += 1;
                if reopened {
                    e.reopened += 1;
                } else if takers.len() <= 1 && !evs.iter().any(|e| e.kind == "reassigned") {
                    e.first_time_fixes += 1;
                }
                if let Some(s) = t.satisfaction {
                    e.satisfaction_sum += s;
                    e.satisfaction_count += 1;
                }
            }
            rows.push(Row {
                ci_class: t.ci.and_then(|c| cis.get(&c)).map(|c| c.class.clone()).unwrap_or_default(),
                resolver,
                response_minutes: t.responded_at.map(|_| response.elapsed_ms / 60_000),
                resolution_minutes: done.then_some(resolution.elapsed_ms / 60_000),
                sla: match resolution.state {
                    SlaState::Met => "met",
                    SlaState::Breached => "breached",
                    _ => "open",
                },
                reopened,
                minutes_logged: logged,
                ticket: t,
            });
        }
        let first_day = (from + OFFSET_MS).div_euclid(DAY_MS);
        let last_day = (to - 1 + OFFSET_MS).div_euclid(DAY_MS);
        let mut by_day: BTreeMap<i64, usize> = (first_day..=last_day.min(first_day + 366)).map(|d| (d, 0)).collect();
        for r in &rows {
            *by_day.entry((r.ticket.opened_at + OFFSET_MS).div_euclid(DAY_MS)).or_default() += 1;
        }
        let mut recurring: Vec<Recurring> = recurring
            .into_iter()
            .filter(|(_, (_, repeats))| *repeats > 0)
            .filter_map(|(id, (faults, repeats))| {
                cis.get(&id).map(|c| Recurring {
                    ci: id,
                    code: c.code.clone(),
                    name: c.name.clone(),
                    class: c.class.clone(),
                    faults,
                    repeats,
                })
            })
            .collect();
        recurring.sort_by(|a, b| b.repeats.cmp(&a.repeats).then(a.code.cmp(&b.code)));
        let mut by_priority = counted(rows.iter().map(|r| r.ticket.priority));
        by_priority.sort();
        Ok(Report {
            from,
            to,
            recurrence_days: days,
            total: rows.len(),
            resolved: rows.iter().filter(|r| r.resolution_minutes.is_some()).count(),
            by_category: counted(rows.iter().map(|r| r.ticket.category.clone())),
            by_class: counted(rows.iter().map(|r| r.ci_class.clone())),
            by_campus: counted(rows.iter().map(|r| r.ticket.campus.clone().unwrap_or_default())),
            by_priority,
            by_day: by_day.into_iter().collect(),
            mtta_minutes: mean(&acknowledge),
            mttr_minutes: mean(&resolve),
            response_sla,
            resolution_sla,
            recurring,
            engineers: if self.may_assess(caller).await? { Some(engineers.into_values().collect()) } else { None },
            rows,
        })
    }
}

/// `YYYY-MM-DD HH:MM` in Beijing time.
pub(crate) fn beijing(ms: i64) -> String {
    let s = lianyi_fhir::datetime::format_instant(ms + OFFSET_MS);
    format!("{} {}", &s[..10], &s[11..16])
}

/// The period's tickets as CSV (one row each, codes as stored), for a spreadsheet.
pub fn tickets_csv(r: &Report) -> String {
    let header = [
        "id",
        "opened",
        "title",
        "category",
        "ci_class",
        "campus",
        "priority",
        "status",
        "support_group",
        "assignee",
        "resolver",
        "response_minutes",
        "resolution_minutes",
        "sla",
        "reopened",
        "minutes_logged",
        "satisfaction",
    ];
    let mut out = crate::csv::line(&header.map(String::from));
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    for row in &r.rows {
        let t = &row.ticket;
        out.push_str(&crate::csv::export_line(vec![
            t.id.to_string(),
            beijing(t.opened_at),
            t.title.clone(),
            t.category.clone(),
            row.ci_class.clone(),
            t.campus.clone().unwrap_or_default(),
            t.priority.to_string(),
            t.status.clone(),
            t.support_group.clone(),
            t.assignee.clone().unwrap_or_default().trim_start_matches("user:").to_string(),
            row.resolver.clone().unwrap_or_default(),
            opt(row.response_minutes),
            opt(row.resolution_minutes),
            row.sla.to_string(),
            row.reopened.to_string(),
            row.minutes_logged.to_string(),
            opt(t.satisfaction),
        ]));
    }
    out
}

/// The engineers' figures as CSV (empty when the caller may not see them).
pub fn engineers_csv(r: &Report) -> String {
    let header = [
        "engineer",
        "taken",
        "resolved",
        "minutes_logged",
        "first_time_fixes",
        "reopened",
        "satisfaction_mean",
        "satisfaction_scores",
    ];
    let mut out = crate::csv::line(&header.map(String::from));
    for e in r.engineers.iter().flatten() {
        out.push_str(&crate::csv::export_line(vec![
            e.name.clone(),
            e.taken.to_string(),
            e.resolved.to_string(),
            e.minutes.to_string(),
            e.first_time_fixes.to_string(),
            e.reopened.to_string(),
            e.satisfaction_tenths().map(|t| format!("{}.{}", t / 10, t % 10)).unwrap_or_default(),
            e.satisfaction_count.to_string(),
        ]));
    }
    out
}
