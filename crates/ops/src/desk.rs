//! The service desk (ITIL incidents): anyone on the staff reports a fault, the desk
//! logs phone calls; impact × urgency gives the priority by the matrix; the CI (or
//! else the category) gives the support group, so every ticket always has an owner; an
//! engineer of that group takes it, may pause it while waiting for the reporter or a
//! supplier, resolves it; the reporter closes it with a satisfaction score or reopens
//! it. Each priority has a response and a resolution target, counted by an SLA clock
//! ([`crate::sla`]) in the ticket's calendar — business hours with Chinese public
//! holidays and adjusted working days, or 7×24 for clinical-critical systems — from
//! the ticket's own events, so paused time never counts.

use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::StoreError;
use lianyi_store::desk::{Ticket, TicketEvent, TicketQuery};
use lianyi_store::notices::Notice;
use serde_json::Value;

use crate::cmdb::FieldError;
use crate::settings::SlaSettings;
use crate::sla::{Calendar, ClockEvent, SlaClock, SlaState};

/// Fault categories, each with the support group it goes to when no CI says.
pub const CATEGORIES: [(&str, &str); 8] = [
    ("hardware", "desktop"),
    ("printer", "desktop"),
    ("software", "application"),
    ("account", "application"),
    ("interface", "application"),
    ("network", "network"),
    ("medical-device", "desktop"),
    ("other", "desktop"),
];

/// Warn when this share of a target is used.
pub const WARN_PERCENT: u32 = 75;

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{}", crate::cmdb::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("no such ticket")]
    NotFound,
    #[error("the ticket was changed by someone else meanwhile")]
    Changed,
    #[error("the audit record could not be written: {0}")]
    Audit(String),
    #[error("the SLA calendar: {0}")]
    Calendar(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DeskError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { .. } => DeskError::Changed,
            other => DeskError::Store(other),
        }
    }
}

/// One broken rule, naming its field.
pub(crate) fn invalid(field: &str, rule: &'static str, detail: impl Into<String>) -> DeskError {
    DeskError::Invalid(vec![FieldError { row: None, field: field.into(), rule, detail: detail.into() }])
}

/// A fault as the report form (or the desk taking a call) gives it.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub title: String,
    pub description: String,
    pub category: String,
    /// The affected CI's code (may be empty).
    pub ci: String,
    pub campus: String,
    pub location: String,
    /// `1` … `3`.
    pub impact: String,
    pub urgency: String,
    /// For a phone call logged by the desk: who called.
    pub caller_name: String,
}

/// One SLA clock of a ticket as it stands.
#[derive(Clone, Debug)]
pub struct Clock {
    pub state: SlaState,
    /// When the target is (or was) reached, if the clock runs on.
    pub due: Option<i64>,
    pub elapsed_ms: i64,
    pub target_ms: i64,
}

/// A ticket with its events and clocks.
#[derive(Clone, Debug)]
pub struct Card {
    pub ticket: Ticket,
    pub events: Vec<TicketEvent>,
    pub response: Clock,
    pub resolution: Clock,
    /// The CI's code and name.
    pub ci: Option<(String, String)>,
}

/// Which tickets a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Open tickets assigned to the caller.
    Mine,
    /// Open tickets of the caller's groups.
    Groups,
    /// Every ticket (IT staff).
    All,
    /// The tickets the caller reported.
    Reported,
}

/// The SLA settings in force and their business calendar, as last read.
#[derive(Clone, Debug)]
pub struct Sla {
    pub settings: std::sync::Arc<SlaSettings>,
    business: std::sync::Arc<Calendar>,
    read: std::time::Instant,
}

/// Indexes the tickets missing from the search (written before it existed, or copied
/// from another database, which rebuilds the index rather than copying it), a page at
/// a time; returns how many.
pub async fn index_missing(tables: &lianyi_store::desk::Desk) -> Result<usize, StoreError> {
    let mut done = 0;
    loop {
        let page = tables.unindexed(500).await?;
        if page.is_empty() {
            return Ok(done);
        }
        let words: Vec<(i64, String)> = page.iter().map(|t| (t.id, Desk::words_of(t))).collect();
        tables.index(&words).await?;
        done += words.len();
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Desk {
    fhir: FhirService,
    /// Read again a minute after (another server may have changed them) and at once
    /// after a change here.
    sla: std::sync::Arc<tokio::sync::RwLock<Option<Sla>>>,
}

const OPEN: [&str; 3] = ["new", "assigned", "pending"];

impl Desk {
    pub fn new(fhir: FhirService) -> Result<Desk, DeskError> {
        // The defaults' calendar must read: checked once at start.
        SlaSettings::default().business_calendar().map_err(|e| DeskError::Calendar(e.to_string()))?;
        Ok(Desk { fhir, sla: Default::default() })
    }

    /// The SLA settings in force.
    pub async fn sla(&self) -> Result<Sla, DeskError> {
        if let Some(s) = self.sla.read().await.as_ref().filter(|s| s.read.elapsed().as_secs() < 60) {
            return Ok(s.clone());
        }
        let tables = self.tables();
        let settings = SlaSettings::from_stored(&tables.sla_settings().await?, tables.calendar_days().await?);
        let business = match settings.business_calendar() {
            Ok(c) => c,
            Err(e) => {
                // The settings are checked when written; a calendar that does not read
                // falls back to the built-in one rather than stop the desk.
                tracing::error!(error = %e, "the SLA calendar as set");
                SlaSettings { days: Vec::new(), ..settings.clone() }
                    .business_calendar()
                    .map_err(|e| DeskError::Calendar(e.to_string()))?
            }
        };
        let sla = Sla {
            settings: std::sync::Arc::new(settings),
            business: std::sync::Arc::new(business),
            read: std::time::Instant::now(),
        };
        *self.sla.write().await = Some(sla.clone());
        Ok(sla)
    }

    /// The IT manager changes the matrix, the targets and the business hours (the
    /// calendar days are set one by one with [`Desk::set_day`]).
    pub async fn set_sla(&self, caller: &Caller, new: &SlaSettings) -> Result<(), DeskError> {
        if !caller.can(Capability::ManageIt) {
            return Err(DeskError::Forbidden("the SLA settings are kept by the IT manager"));
        }
        new.check().map_err(DeskError::Invalid)?;
        let now = self.fhir.now_ms();
        for (name, value) in new.to_stored() {
            self.tables().set_sla_setting(name, &value, caller.actor(), now).await?;
        }
        *self.sla.write().await = None;
        self.audit(caller, "sla-settings", format!("matrix {:?}, targets {:?}", new.matrix, new.targets)).await
    }

    /// The IT manager marks a day off (`working` false) or a working day, or with
    /// `None` gives it back to the built-in schedule.
    pub async fn set_day(&self, caller: &Caller, day: &str, turn: Option<(bool, &str)>) -> Result<(), DeskError> {
        if !caller.can(Capability::ManageIt) {
            return Err(DeskError::Forbidden("the SLA calendar is kept by the IT manager"));
        }
        if crate::sla::parse_day(day.trim()).is_err() {
            return Err(invalid("day", "date", "a date, YYYY-MM-DD"));
        }
        let turn = turn.map(|(working, note)| (if working { "on" } else { "off" }, note.trim()));
        self.tables().set_calendar_day(day.trim(), turn, caller.actor(), self.fhir.now_ms()).await?;
        *self.sla.write().await = None;
        self.audit(caller, "sla-calendar", format!("{} {}", day.trim(), turn.map_or("as scheduled", |t| t.0))).await
    }

    fn tables(&self) -> lianyi_store::desk::Desk {
        self.fhir.operations().desk()
    }

    /// Staff who may report faults (not patients).
    pub fn may_report(caller: &Caller) -> bool {
        caller.is_authenticated() && caller.access().patient().is_none()
    }

    pub fn may_work(caller: &Caller) -> bool {
        caller.can(Capability::OperateIt)
    }

    fn username(caller: &Caller) -> &str {
        caller.actor().strip_prefix("user:").unwrap_or(caller.actor())
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), DeskError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| DeskError::Audit(e.to_string()))
    }

    /// Opens a ticket: `caller` reports it, or (IT staff with `r.caller_name`) logs a
    /// phone call. Returns its id.
    pub async fn report(&self, caller: &Caller, r: &Report) -> Result<i64, DeskError> {
        if !Self::may_report(caller) {
            return Err(DeskError::Forbidden("faults are reported by the staff"));
        }
        let phone = !r.caller_name.trim().is_empty();
        if phone && !Self::may_work(caller) {
            return Err(DeskError::Forbidden("calls are logged by the IT desk"));
        }
        let mut errors = Vec::new();
        let err = |field: &str, rule: &'static str, detail: &str| FieldError {
            row: None,
            field: field.into(),
            rule,
            detail: detail.into(),
        };
        let title = r.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            errors.push(err("title", "required", "1 to 200 characters"));
        }
        if r.description.chars().count() > 4000 {
            errors.push(err("description", "length", "at most 4,000 characters"));
        }
        let Some((category, default_group)) = CATEGORIES.iter().find(|(c, _)| *c == r.category.trim()) else {
            errors.push(err("category", "choice", "one of the fault categories"));
            return Err(DeskError::Invalid(errors));
        };
        let level = |field: &str, v: &str, errors: &mut Vec<FieldError>| match v.trim().parse::<i64>() {
            Ok(n) if (1..=3).contains(&n) => n,
            _ if v.trim().is_empty() => 2,
            _ => {
                errors.push(err(field, "choice", "1 (high), 2 (medium) or 3 (low)"));
                2
            }
        };
        let impact = level("impact", &r.impact, &mut errors);
        let urgency = level("urgency", &r.urgency, &mut errors);
        let ci = match r.ci.trim() {
            "" => None,
            code => match self.fhir.operations().cmdb().by_code(code).await? {
                Some(c) => Some(c),
                None => {
                    errors.push(err("ci", "unknown", &format!("no configuration item {code}")));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(DeskError::Invalid(errors));
        }
        let sla = self.sla().await?;
        let priority = sla.settings.priority(impact, urgency);
        // Clinical-critical systems (7×24 in the CMDB) and critical tickets count round the clock.
        let round_the_clock = priority == 1
            || ci.as_ref().is_some_and(|c| {
                serde_json::from_str::<Value>(&c.attrs).ok().and_then(|a| a["hours"].as_str().map(|h| h == "7x24"))
                    == Some(true)
            });
        let now = self.fhir.now_ms();
        let campus = Some(r.campus.trim().to_string())
            .filter(|c| !c.is_empty())
            .or_else(|| ci.as_ref().and_then(|c| c.campus.clone()))
            .or_else(|| caller.campus().map(|c| c.as_str().to_string()));
        let t = Ticket {
            title: title.to_string(),
            description: r.description.trim().to_string(),
            category: category.to_string(),
            campus,
            location: Some(r.location.trim().to_string()).filter(|l| !l.is_empty()),
            ci: ci.as_ref().map(|c| c.id),
            reporter: if phone { format!("phone:{}", r.caller_name.trim()) } else { caller.actor().to_string() },
            reporter_name: if phone { r.caller_name.trim().to_string() } else { Self::username(caller).to_string() },
            channel: if phone {
                "phone"
            } else if caller.kind() == lianyi_security::ActorKind::System {
                "monitor"
            } else {
                "self"
            }
            .into(),
            impact,
            urgency,
            priority,
            calendar: if round_the_clock { "7x24" } else { "business" }.into(),
            status: "new".into(),
            support_group: ci.as_ref().map_or_else(|| default_group.to_string(), |c| c.support_group.clone()),
            assignee: None,
            opened_at: now,
            version: 1,
            updated_at: now,
            ..Ticket::default()
        };
        let event = TicketEvent {
            at: now,
            actor: caller.actor().to_string(),
            kind: "opened".into(),
            detail: Some(format!("P{priority} → {}", t.support_group)),
            ..TicketEvent::default()
        };
        let notices = self.notices("new-ticket", &t, self.group_members(&t.support_group, false).await?).await?;
        let id = self.tables().open(&t, &[event], &Self::words_of(&t), &notices).await?;
        self.audit(caller, "ticket-open", format!("ticket {id} P{priority} to {}", t.support_group)).await?;
        Ok(id)
    }

    /// Whether `caller` may see the ticket: IT staff, or its reporter.
    fn may_see(caller: &Caller, t: &Ticket) -> bool {
        Self::may_work(caller) || t.reporter == caller.actor()
    }

    /// A ticket's response and resolution clocks at `now`, from its events.
    pub(crate) fn clock(&self, sla: &Sla, t: &Ticket, events: &[TicketEvent], now: i64) -> (Clock, Clock) {
        let always = Calendar::always();
        let cal = if t.calendar == "7x24" { &always } else { &*sla.business };
        let (response_target, resolution_target) = sla.settings.targets(t.priority);
        let mut resolution = Vec::new();
        let mut response = vec![ClockEvent::Started(t.opened_at)];
        for e in events {
            let c = match e.kind.as_str() {
                "opened" => ClockEvent::Started(e.at),
                "paused" => ClockEvent::Paused(e.at),
                "resumed" => ClockEvent::Resumed(e.at),
                "resolved" => ClockEvent::Stopped(e.at),
                "reopened" => ClockEvent::Restarted(e.at),
                _ => continue,
            };
            if t.responded_at.is_none_or(|r| e.at < r) && matches!(c, ClockEvent::Paused(_) | ClockEvent::Resumed(_)) {
                response.push(c);
            }
            resolution.push(c);
        }
        if let Some(r) = t.responded_at {
            // A response given while paused ends a paused clock: it stops all the same.
            if matches!(response.last(), Some(ClockEvent::Paused(_))) {
                response.push(ClockEvent::Resumed(r));
            }
            response.push(ClockEvent::Stopped(r));
        }
        let of = |events: Vec<ClockEvent>, target: i64| match SlaClock::from_events(events) {
            Ok(clock) => Clock {
                state: clock.state(cal, target, WARN_PERCENT, now),
                due: clock.due(cal, target, now),
                elapsed_ms: clock.elapsed(cal, now),
                target_ms: target,
            },
            Err(e) => {
                // The desk writes events in order; a ledger that does not read is a bug.
                tracing::error!(ticket = t.id, error = %e, "a ticket's clock ledger");
                Clock { state: SlaState::Running, due: None, elapsed_ms: 0, target_ms: target }
            }
        };
        (of(response, response_target), of(resolution, resolution_target))
    }

    /// A ticket, its events and clocks.
    pub async fn card(&self, caller: &Caller, id: i64) -> Result<Card, DeskError> {
        let t = self.tables().get(id).await?.ok_or(DeskError::NotFound)?;
        if !Self::may_see(caller, &t) {
            return Err(DeskError::Forbidden("a ticket is seen by the IT team and its reporter"));
        }
        let events = self.tables().events(id).await?;
        let sla = self.sla().await?;
        let (response, resolution) = self.clock(&sla, &t, &events, self.fhir.now_ms());
        let ci = match t.ci {
            Some(c) => self.fhir.operations().cmdb().get(c).await?.map(|c| (c.code, c.name)),
            None => None,
        };
        Ok(Card { ticket: t, events, response, resolution, ci })
    }

    /// A page of tickets (newest first) with their resolution clocks.
    pub async fn list(
        &self,
        caller: &Caller,
        view: View,
        search: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(Ticket, Clock)>, DeskError> {
        let words = crate::words::query_words(search);
        let mut q = TicketQuery { before, limit, words, ..Default::default() };
        match view {
            View::Reported => {
                if !Self::may_report(caller) {
                    return Err(DeskError::Forbidden("faults are reported by the staff"));
                }
                q.reporter = Some(caller.actor().to_string());
            }
            _ if !Self::may_work(caller) => return Err(DeskError::Forbidden("queues are the IT team's")),
            View::Mine => {
                q.assignee = Some(caller.actor().to_string());
                q.statuses = Some(OPEN.iter().map(|s| s.to_string()).collect());
            }
            View::Groups => {
                let groups = self.tables().groups_of(Self::username(caller)).await?;
                q.groups = Some(groups.into_iter().map(|(g, _)| g).collect());
                q.statuses = Some(OPEN.iter().map(|s| s.to_string()).collect());
            }
            View::All => {}
        }
        let now = self.fhir.now_ms();
        let sla = self.sla().await?;
        let tickets = self.tables().list(&q).await?;
        // Every ticket's events in one query.
        let ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
        let events = self.tables().events_of(&ids).await?;
        Ok(tickets
            .into_iter()
            .map(|t| {
                let (_, resolution) =
                    self.clock(&sla, &t, events.get(&t.id).map(Vec::as_slice).unwrap_or_default(), now);
                (t, resolution)
            })
            .collect())
    }

    async fn load(&self, id: i64, version: i64) -> Result<Ticket, DeskError> {
        let t = self.tables().get(id).await?.ok_or(DeskError::NotFound)?;
        if t.version != version {
            return Err(DeskError::Changed);
        }
        Ok(t)
    }

    fn event(&self, caller: &Caller, kind: &str, detail: Option<String>) -> TicketEvent {
        TicketEvent {
            at: self.fhir.now_ms(),
            actor: caller.actor().to_string(),
            kind: kind.into(),
            detail,
            ..TicketEvent::default()
        }
    }

    async fn write(&self, caller: &Caller, t: Ticket, events: Vec<TicketEvent>) -> Result<(), DeskError> {
        self.write_telling(caller, t, events, Vec::new()).await
    }

    /// [`Desk::write`] with the notifications the change sends.
    async fn write_telling(
        &self,
        caller: &Caller,
        mut t: Ticket,
        events: Vec<TicketEvent>,
        notices: Vec<Notice>,
    ) -> Result<(), DeskError> {
        t.updated_at = self.fhir.now_ms();
        // The resolution is searched too: the words change when it does.
        let words = events.iter().any(|e| e.kind == "resolved").then(|| Self::words_of(&t));
        self.tables().change(&t, &events, words.as_deref(), &notices).await?;
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        self.audit(caller, "ticket-change", format!("ticket {} {}", t.id, kinds.join(", "))).await
    }

    /// An engineer of the ticket's group takes it (the response).
    pub async fn take(&self, caller: &Caller, id: i64, version: i64) -> Result<(), DeskError> {
        if !Self::may_work(caller) {
            return Err(DeskError::Forbidden("tickets are taken by the IT team"));
        }
        let mut t = self.load(id, version).await?;
        let groups = self.tables().groups_of(Self::username(caller)).await?;
        if !(groups.iter().any(|(g, _)| *g == t.support_group) || caller.can(Capability::ManageIt)) {
            return Err(invalid("assignee", "group", format!("taken by an engineer of the {} group", t.support_group)));
        }
        if !OPEN.contains(&t.status.as_str()) {
            return Err(invalid("status", "closed", "the ticket is resolved or closed"));
        }
        let now = self.fhir.now_ms();
        t.assignee = Some(caller.actor().to_string());
        if t.status == "new" {
            t.status = "assigned".into();
        }
        t.responded_at = t.responded_at.or(Some(now));
        let e = self.event(caller, "assigned", Some(caller.actor().to_string()));
        let notices = self.notices("taken", &t, Self::reporter_of(&t)).await?;
        self.write_telling(caller, t, vec![e], notices).await
    }

    /// Hands the ticket to another support group (it waits there for an engineer).
    pub async fn reassign(
        &self,
        caller: &Caller,
        id: i64,
        version: i64,
        group: &str,
        engineer: &str,
    ) -> Result<(), DeskError> {
        if !Self::may_work(caller) {
            return Err(DeskError::Forbidden("tickets are reassigned by the IT team"));
        }
        if !crate::cmdb::GROUPS.contains(&group) {
            return Err(invalid("support_group", "choice", crate::cmdb::GROUPS.join(", ")));
        }
        let members = self.group_members(group, false).await?;
        let engineer = engineer.trim().trim_start_matches("user:");
        if !engineer.is_empty() && !members.iter().any(|m| m == engineer) {
            return Err(invalid("assignee", "group", format!("{engineer} is not in the {group} group")));
        }
        let mut t = self.load(id, version).await?;
        if !OPEN.contains(&t.status.as_str()) {
            return Err(invalid("status", "closed", "the ticket is resolved or closed"));
        }
        let from = std::mem::replace(&mut t.support_group, group.to_string());
        let (detail, to) = if engineer.is_empty() {
            t.assignee = None;
            if t.status == "assigned" {
                t.status = "new".into();
            }
            (format!("{from} → {group}"), members)
        } else {
            // Handing a ticket to a named engineer acknowledges it.
            t.assignee = Some(format!("user:{engineer}"));
            if t.status == "new" {
                t.status = "assigned".into();
            }
            t.responded_at = t.responded_at.or(Some(self.fhir.now_ms()));
            (format!("{from} → {group} · {engineer}"), vec![engineer.to_string()])
        };
        let e = self.event(caller, "reassigned", Some(detail));
        let notices = self.notices("reassigned", &t, to).await?;
        self.write_telling(caller, t, vec![e], notices).await
    }

    /// Waits for the reporter or a supplier: the clock stops until [`Desk::resume`].
    pub async fn pause(&self, caller: &Caller, id: i64, version: i64, reason: &str) -> Result<(), DeskError> {
        let mut t = self.owned(caller, id, version).await?;
        if t.status != "assigned" {
            return Err(invalid("status", "state", "only a ticket being worked on is paused"));
        }
        if reason.trim().is_empty() {
            return Err(invalid("reason", "required", "who or what the ticket waits for"));
        }
        t.status = "pending".into();
        let e = self.event(caller, "paused", Some(reason.trim().to_string()));
        self.write(caller, t, vec![e]).await
    }

    pub async fn resume(&self, caller: &Caller, id: i64, version: i64) -> Result<(), DeskError> {
        let mut t = self.owned(caller, id, version).await?;
        if t.status != "pending" {
            return Err(invalid("status", "state", "only a paused ticket is resumed"));
        }
        t.status = "assigned".into();
        let e = self.event(caller, "resumed", None);
        self.write(caller, t, vec![e]).await
    }

    /// The assignee resolves it, with the time spent if given (minutes, may be empty);
    /// the reporter then closes or reopens it.
    pub async fn resolve(
        &self,
        caller: &Caller,
        id: i64,
        version: i64,
        resolution: &str,
        minutes: &str,
    ) -> Result<(), DeskError> {
        let mut t = self.owned(caller, id, version).await?;
        if resolution.trim().is_empty() {
            return Err(invalid("resolution", "required", "what was done"));
        }
        let mut events = Vec::new();
        if !minutes.trim().is_empty() {
            let Some(m) = minutes.trim().parse::<i64>().ok().filter(|m| (1..=24 * 60).contains(m)) else {
                return Err(invalid("minutes", "minutes", "whole minutes, 1 to 1,440"));
            };
            let mut e = self.event(caller, "work", None);
            e.minutes = Some(m);
            events.push(e);
        }
        if t.status == "pending" {
            events.push(self.event(caller, "resumed", None));
        }
        t.status = "resolved".into();
        t.resolved_at = Some(self.fhir.now_ms());
        t.resolution = Some(resolution.trim().to_string());
        events.push(self.event(caller, "resolved", Some(resolution.trim().to_string())));
        let notices = self.notices("resolved", &t, Self::reporter_of(&t)).await?;
        self.write_telling(caller, t, events, notices).await
    }

    /// Monitoring adds what it saw to a ticket its alert opened or joined.
    pub async fn monitor_note(&self, caller: &Caller, id: i64, text: &str) -> Result<(), DeskError> {
        if caller.kind() != lianyi_security::ActorKind::System {
            return Err(DeskError::Forbidden("monitoring notes come from the platform"));
        }
        let e = self.event(caller, "monitor", Some(text.to_string()));
        self.tables().note(id, &[e], &[]).await?;
        self.audit(caller, "ticket-change", format!("ticket {id} monitor")).await
    }

    /// Monitoring resolves the ticket its alerts opened once every one has
    /// recovered (a ticket already resolved or closed by an engineer is left alone).
    pub async fn monitor_resolve(&self, caller: &Caller, id: i64, text: &str) -> Result<bool, DeskError> {
        if caller.kind() != lianyi_security::ActorKind::System {
            return Err(DeskError::Forbidden("monitoring resolves from the platform"));
        }
        let Some(mut t) = self.tables().get(id).await? else {
            return Err(DeskError::NotFound);
        };
        if !OPEN.contains(&t.status.as_str()) {
            return Ok(false);
        }
        let mut events = Vec::new();
        if t.status == "pending" {
            events.push(self.event(caller, "resumed", None));
        }
        t.status = "resolved".into();
        t.resolved_at = Some(self.fhir.now_ms());
        t.resolution = Some(text.to_string());
        events.push(self.event(caller, "resolved", Some(text.to_string())));
        self.write(caller, t, events).await?;
        Ok(true)
    }

    /// The assignee logs time spent on the ticket (minutes, with a note).
    pub async fn log_work(
        &self,
        caller: &Caller,
        id: i64,
        version: i64,
        minutes: &str,
        note: &str,
    ) -> Result<(), DeskError> {
        let t = self.owned(caller, id, version).await?;
        let Some(minutes) = minutes.trim().parse::<i64>().ok().filter(|m| (1..=24 * 60).contains(m)) else {
            return Err(invalid("minutes", "minutes", "whole minutes, 1 to 1,440"));
        };
        let mut e = self.event(caller, "work", Some(note.trim().to_string()).filter(|n| !n.is_empty()));
        e.minutes = Some(minutes);
        self.write(caller, t, vec![e]).await
    }

    /// The ticket's assignee (or the IT manager), at its current version.
    async fn owned(&self, caller: &Caller, id: i64, version: i64) -> Result<Ticket, DeskError> {
        if !Self::may_work(caller) {
            return Err(DeskError::Forbidden("tickets are worked by the IT team"));
        }
        let t = self.load(id, version).await?;
        if t.assignee.as_deref() != Some(caller.actor()) && !caller.can(Capability::ManageIt) {
            return Err(invalid("assignee", "owner", "worked by the engineer who took it"));
        }
        Ok(t)
    }

    /// The reporter (or the desk) reopens a resolved ticket: its clock continues.
    pub async fn reopen(&self, caller: &Caller, id: i64, version: i64, why: &str) -> Result<(), DeskError> {
        let mut t = self.load(id, version).await?;
        if !(t.reporter == caller.actor() || Self::may_work(caller)) {
            return Err(DeskError::Forbidden("a ticket is reopened by its reporter or the IT team"));
        }
        if t.status != "resolved" {
            return Err(invalid("status", "state", "only a resolved ticket is reopened"));
        }
        if why.trim().is_empty() {
            return Err(invalid("reason", "required", "what is still wrong"));
        }
        t.status = if t.assignee.is_some() { "assigned" } else { "new" }.into();
        t.resolved_at = None;
        let e = self.event(caller, "reopened", Some(why.trim().to_string()));
        let to = t.assignee.as_deref().and_then(|a| a.strip_prefix("user:")).map(str::to_string);
        let notices = self.notices("reopened", &t, to.into_iter().collect()).await?;
        self.write_telling(caller, t, vec![e], notices).await
    }

    /// The reporter (for a phoned-in fault, the desk) closes a resolved ticket with a
    /// satisfaction score (1 … 5).
    pub async fn close(&self, caller: &Caller, id: i64, version: i64, score: &str) -> Result<(), DeskError> {
        let mut t = self.load(id, version).await?;
        // A call's ticket is closed by the desk with the score the caller gave.
        let by_phone = t.channel == "phone" && Self::may_work(caller);
        if t.reporter != caller.actor() && !by_phone {
            return Err(DeskError::Forbidden("a ticket is closed by its reporter"));
        }
        if t.status != "resolved" {
            return Err(invalid("status", "state", "only a resolved ticket is closed"));
        }
        let Ok(score) = score
            .trim()
            .parse::<i64>()
            .map_err(|_| ())
            .and_then(|s| if (1..=5).contains(&s) { Ok(s) } else { Err(()) })
        else {
            return Err(invalid("satisfaction", "choice", "a score from 1 to 5"));
        };
        t.status = "closed".into();
        t.closed_at = Some(self.fhir.now_ms());
        t.satisfaction = Some(score);
        let e = self.event(caller, "closed", Some(format!("satisfaction {score}")));
        self.write(caller, t, vec![e]).await
    }

    /// What the search finds a ticket by: its title, details and resolution, cut into
    /// words.
    fn words_of(t: &Ticket) -> String {
        let text = format!("{} {} {}", t.title, t.description, t.resolution.as_deref().unwrap_or_default());
        crate::words::index_text(&text)
    }

    /// Indexes tickets written before the search existed, a page at a time; returns
    /// how many.
    pub async fn index_missing(&self) -> Result<usize, DeskError> {
        Ok(index_missing(&self.tables()).await?)
    }

    /// The user name of a ticket's reporter (none for a phoned-in fault).
    fn reporter_of(t: &Ticket) -> Vec<String> {
        t.reporter.strip_prefix("user:").map(str::to_string).into_iter().collect()
    }

    /// A group's members (`leads`: only its leads).
    async fn group_members(&self, group: &str, leads: bool) -> Result<Vec<String>, DeskError> {
        Ok(self
            .tables()
            .members()
            .await?
            .into_iter()
            .filter(|(g, _, lead)| g == group && (*lead || !leads))
            .map(|(_, u, _)| u)
            .collect())
    }

    /// Notifications of `kind` about `t` for `to` (user names), with the mail address
    /// of those who left one. With nobody to tell, one addressed to no one: the
    /// ticket's group's webhook is still told.
    async fn notices(&self, kind: &str, t: &Ticket, mut to: Vec<String>) -> Result<Vec<Notice>, DeskError> {
        to.sort();
        to.dedup();
        if to.is_empty() {
            to.push(String::new());
        }
        let contacts = self.fhir.operations().notices().contacts(&to).await?;
        let now = self.fhir.now_ms();
        Ok(to
            .into_iter()
            .map(|username| {
                let contact = contacts.iter().find(|(u, _, _)| *u == username);
                Notice {
                    at: now,
                    kind: kind.into(),
                    ticket: (t.id > 0).then_some(t.id),
                    subject: t.title.clone(),
                    link: format!("/ops/tickets/{}", t.id),
                    email: contact.map(|(_, e, _)| e.clone()),
                    language: contact.map(|(_, _, l)| l.clone()),
                    username,
                    ..Notice::default()
                }
            })
            .collect())
    }

    /// The SLA watch, run every minute while the server runs: an open ticket whose
    /// clock passes the warning share of its target warns its engineer (or, while
    /// nobody took it, its group); one that breaches is escalated to its group's leads.
    /// Each is told once per clock (an event on the ticket records it). Returns how
    /// many tickets were warned or escalated.
    pub async fn watch(&self) -> Result<usize, DeskError> {
        let now = self.fhir.now_ms();
        let sla = self.sla().await?;
        let mut told = 0;
        let mut before = None;
        loop {
            let q = TicketQuery {
                statuses: Some(OPEN.iter().map(|s| s.to_string()).collect()),
                before,
                limit: 500,
                ..Default::default()
            };
            let page = self.tables().list(&q).await?;
            let ids: Vec<i64> = page.iter().map(|t| t.id).collect();
            let mut events = self.tables().events_of(&ids).await?;
            for t in &page {
                let evs = events.remove(&t.id).unwrap_or_default();
                let (response, resolution) = self.clock(&sla, t, &evs, now);
                let mut notes = Vec::new();
                let mut notices = Vec::new();
                for (which, clock) in [("response", &response), ("resolution", &resolution)] {
                    let kind = match clock.state {
                        SlaState::Warning => "sla-warning",
                        SlaState::Breached => "sla-breach",
                        _ => continue,
                    };
                    if evs.iter().any(|e| e.kind == kind && e.detail.as_deref() == Some(which)) {
                        continue;
                    }
                    let engineer = t.assignee.as_deref().and_then(|a| a.strip_prefix("user:")).map(str::to_string);
                    let mut to: Vec<String> = engineer.into_iter().collect();
                    if kind == "sla-breach" {
                        to.extend(self.group_members(&t.support_group, true).await?);
                    } else if to.is_empty() {
                        to = self.group_members(&t.support_group, false).await?;
                    }
                    notes.push(TicketEvent {
                        at: now,
                        actor: "task:lianyi operations".into(),
                        kind: kind.into(),
                        detail: Some(which.into()),
                        ..TicketEvent::default()
                    });
                    notices.extend(self.notices(kind, t, to).await?);
                }
                if !notes.is_empty() {
                    self.tables().note(t.id, &notes, &notices).await?;
                    told += 1;
                }
            }
            if page.len() < 500 {
                return Ok(told);
            }
            before = page.last().map(|t| t.id);
        }
    }

    /// The caller's newest notifications and how many are unread.
    pub async fn inbox(&self, caller: &Caller, limit: i64) -> Result<(Vec<Notice>, i64), DeskError> {
        if !Self::may_report(caller) {
            return Err(DeskError::Forbidden("notifications are the staff's"));
        }
        let me = Self::username(caller);
        let notices = self.fhir.operations().notices();
        Ok((notices.inbox(me, limit).await?, notices.unread(me).await?))
    }

    /// How many of the caller's notifications are unread (0 for those without any).
    pub async fn unread(&self, caller: &Caller) -> Result<i64, DeskError> {
        if !Self::may_report(caller) {
            return Ok(0);
        }
        Ok(self.fhir.operations().notices().unread(Self::username(caller)).await?)
    }

    pub async fn mark_read(&self, caller: &Caller) -> Result<(), DeskError> {
        if !Self::may_report(caller) {
            return Err(DeskError::Forbidden("notifications are the staff's"));
        }
        self.fhir.operations().notices().mark_read(Self::username(caller), self.fhir.now_ms()).await?;
        Ok(())
    }

    /// Where the caller wants the desk's mail (email, language).
    pub async fn contact(&self, caller: &Caller) -> Result<Option<(String, String)>, DeskError> {
        let me = Self::username(caller).to_string();
        let found = self.fhir.operations().notices().contacts(std::slice::from_ref(&me)).await?;
        Ok(found.into_iter().next().map(|(_, e, l)| (e, l)))
    }

    /// Sets (an empty `email`: removes) the caller's mail address for notifications,
    /// with the language code of their mail (the page's).
    pub async fn set_contact(&self, caller: &Caller, email: &str, language: &str) -> Result<(), DeskError> {
        if !Self::may_report(caller) {
            return Err(DeskError::Forbidden("notifications are the staff's"));
        }
        let email = email.trim();
        let valid = email.len() <= 200 && lianyi_services::identifiers::plausible_email(email);
        if !email.is_empty() && !valid {
            return Err(invalid("email", "email", "an address like name@hospital.cn"));
        }
        // The page's language code as the web layer names it.
        let language = language.trim();
        if language.is_empty() || language.len() > 10 {
            return Err(invalid("language", "choice", "a language code"));
        }
        let me = Self::username(caller);
        let contact = (!email.is_empty()).then_some((email, language));
        self.fhir.operations().notices().set_contact(me, contact, self.fhir.now_ms()).await?;
        self.audit(caller, "contact-set", format!("mail for {me} {}", if email.is_empty() { "off" } else { "on" }))
            .await
    }

    /// Warranty and maintenance-contract reminders: a CI whose warranty or contract
    /// ends within `days` tells its support group, once per end date. Returns how many
    /// reminders were written.
    pub async fn remind(&self, days: i64) -> Result<usize, DeskError> {
        let now = self.fhir.now_ms();
        let date = |ms: i64| lianyi_fhir::datetime::format_instant(ms + 8 * 3_600_000)[..10].to_string();
        let (today, until) = (date(now), date(now + days * 86_400_000));
        let notices = self.fhir.operations().notices();
        let mut written = 0;
        for ci in self.fhir.operations().cmdb().ending_between(&today, &until).await? {
            let ends = [("warranty-ending", &ci.warranty_end), ("contract-ending", &ci.contract_end)];
            for (kind, end) in ends {
                let Some(end) = end.as_deref().filter(|e| **e >= *today && **e <= *until) else { continue };
                let link = format!("/ops/cis/{}", ci.id);
                let subject = format!("{} {} · {end}", ci.code, ci.name);
                if notices.sent_before(kind, &link, &subject).await? {
                    continue;
                }
                let to = self.group_members(&ci.support_group, false).await?;
                let t = Ticket { title: subject.clone(), ..Ticket::default() };
                let mut batch = self.notices(kind, &t, to).await?;
                for n in &mut batch {
                    n.link = link.clone();
                    n.ticket = None;
                }
                if batch.is_empty() {
                    // Nobody in the group yet: the reminder waits for its members.
                    continue;
                }
                notices.add(&batch).await?;
                written += batch.len();
            }
        }
        Ok(written)
    }

    /// Every group's members, for the IT manager: (group, username, lead).
    pub async fn members(&self, caller: &Caller) -> Result<Vec<(String, String, bool)>, DeskError> {
        if !Self::may_work(caller) {
            return Err(DeskError::Forbidden("the groups are the IT team's"));
        }
        Ok(self.tables().members().await?)
    }

    /// The IT manager puts an engineer in a support group.
    pub async fn set_member(&self, caller: &Caller, group: &str, username: &str, lead: bool) -> Result<(), DeskError> {
        if !caller.can(Capability::ManageIt) {
            return Err(DeskError::Forbidden("the groups are kept by the IT manager"));
        }
        if !crate::cmdb::GROUPS.contains(&group) {
            return Err(invalid("support_group", "choice", crate::cmdb::GROUPS.join(", ")));
        }
        if username.trim().is_empty() {
            return Err(invalid("username", "required", "the engineer's user name"));
        }
        self.tables().set_member(group, username.trim(), lead).await?;
        self.audit(
            caller,
            "group-member",
            format!("{} in {group}{}", username.trim(), if lead { " (lead)" } else { "" }),
        )
        .await
    }

    pub async fn remove_member(&self, caller: &Caller, group: &str, username: &str) -> Result<(), DeskError> {
        if !caller.can(Capability::ManageIt) {
            return Err(DeskError::Forbidden("the groups are kept by the IT manager"));
        }
        if !self.tables().remove_member(group, username).await? {
            return Err(DeskError::NotFound);
        }
        self.audit(caller, "group-member-remove", format!("{username} out of {group}")).await
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::SlaSettings;

    #[test]
    fn the_matrix_gives_critical_to_high_impact_and_urgency_and_low_to_low() {
        let s = SlaSettings::default();
        assert_eq!(s.priority(1, 1), 1);
        assert_eq!(s.priority(1, 3), 3);
        assert_eq!(s.priority(2, 2), 3);
        assert_eq!(s.priority(3, 3), 4);
        assert_eq!(s.priority(0, 9), 3, "out-of-range levels are clamped");
        assert_eq!(s.targets(1), (15 * 60_000, 240 * 60_000));
        assert_eq!(s.targets(4).1, 2880 * 60_000);
    }
}
