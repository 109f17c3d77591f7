//! Changes (ITIL change management): an engineer asks for a change with its class,
//! risk, back-out plan, the window it needs and the configuration items it touches;
//! from the CMDB the change shows which business systems and clinical services, and
//! which campuses, it affects. A standard change is pre-approved; a normal or
//! emergency change is scheduled only once every approver the IT manager named for its
//! class (the change board) has approved it, and one refusal rejects it. The change
//! calendar shows the changes of a period with their conflicts: overlapping windows
//! that touch or affect the same items. After the window the implementer records the
//! outcome, and a post-implementation review closes it.

use std::collections::{BTreeSet, HashMap, HashSet};

use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::changes::{Approval, Change, ChangeQuery};
use lianyi_store::cmdb::{Ci, Walk};

use crate::cmdb::{Cmdb, CmdbError, FieldError};
use crate::desk::{DeskError, invalid};

/// Change classes: a standard change is pre-approved; the others go to their board.
pub const CLASSES: [&str; 3] = ["standard", "normal", "emergency"];

pub const RISKS: [&str; 3] = ["low", "medium", "high"];

/// Outcomes an implementer records.
pub const OUTCOMES: [&str; 3] = ["successful", "backed-out", "failed"];

/// Changes that still hold their window (and so can conflict).
const LIVE: [&str; 3] = ["requested", "approved", "scheduled"];

/// CI classes a change "affects" when it reaches them.
const SERVICES: [&str; 2] = ["business-system", "clinical-service"];

/// A change as the form (or the API) gives it; times are Beijing time
/// `YYYY-MM-DDTHH:MM` (or with a space).
#[derive(Clone, Debug, Default)]
pub struct ChangeForm {
    pub title: String,
    pub description: String,
    pub class: String,
    pub risk: String,
    pub backout_plan: String,
    pub window_start: String,
    pub window_end: String,
    /// The codes of the CIs it touches.
    pub cis: Vec<String>,
}

/// What a change affects, from the CMDB.
#[derive(Clone, Debug, Default)]
pub struct Affected {
    /// The business systems and clinical services reached (touched or downstream).
    pub services: Vec<Ci>,
    pub campuses: BTreeSet<String>,
    /// Every CI touched or reached, by id with its name, for conflicts.
    reach: HashMap<i64, String>,
}

/// Another live change whose window overlaps and that touches or affects the same
/// items.
#[derive(Clone, Debug)]
pub struct Conflict {
    pub other: Change,
    /// The names of the items both touch or affect.
    pub shared: Vec<String>,
}

/// A change with everything its page shows.
#[derive(Clone, Debug)]
pub struct Card {
    pub change: Change,
    pub cis: Vec<Ci>,
    pub affected: Affected,
    pub approvals: Vec<Approval>,
    /// The approvers named for its class.
    pub board: Vec<String>,
    /// Board members who have not decided yet (while requested).
    pub waiting: Vec<String>,
    pub conflicts: Vec<Conflict>,
}

impl From<CmdbError> for DeskError {
    fn from(e: CmdbError) -> Self {
        match e {
            CmdbError::Forbidden(m) => DeskError::Forbidden(m),
            CmdbError::Invalid(v) => DeskError::Invalid(v),
            CmdbError::NotFound => DeskError::NotFound,
            CmdbError::Changed => DeskError::Changed,
            CmdbError::Audit(m) => DeskError::Audit(m),
            CmdbError::Store(s) => DeskError::Store(s),
        }
    }
}

/// Parses Beijing time `YYYY-MM-DDTHH:MM` (or `YYYY-MM-DD HH:MM`) into an instant.
pub fn parse_local(value: &str) -> Option<i64> {
    let v = value.trim();
    if v.len() != 16 || !matches!(v.as_bytes()[10], b'T' | b' ') || v.as_bytes()[13] != b':' {
        return None;
    }
    let day = crate::sla::parse_day(&v[..10]).ok()?;
    let h: i64 = v[11..13].parse().ok().filter(|h| (0..24).contains(h))?;
    let m: i64 = v[14..16].parse().ok().filter(|m| (0..60).contains(m))?;
    Some(day * 86_400_000 + (h * 60 + m) * 60_000 - 8 * 3_600_000)
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Changes {
    fhir: FhirService,
    cmdb: Cmdb,
}

impl Changes {
    pub fn new(fhir: FhirService) -> Changes {
        Changes { cmdb: Cmdb::new(fhir.clone()), fhir }
    }

    fn tables(&self) -> lianyi_store::changes::Changes {
        self.fhir.operations().change_requests()
    }

    pub fn may_work(caller: &Caller) -> bool {
        caller.can(Capability::OperateIt)
    }

    fn work(caller: &Caller) -> Result<(), DeskError> {
        if Self::may_work(caller) { Ok(()) } else { Err(DeskError::Forbidden("changes are the IT team's")) }
    }

    fn username(caller: &Caller) -> &str {
        caller.actor().strip_prefix("user:").unwrap_or(caller.actor())
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), DeskError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| DeskError::Audit(e.to_string()))
    }

    /// The window's two ends, each named when it does not read or ends before it starts.
    fn window(start: &str, end: &str, errors: &mut Vec<FieldError>) -> Option<(i64, i64)> {
        let mut read = |field: &str, v: &str| {
            let t = parse_local(v);
            if t.is_none() {
                errors.push(FieldError {
                    row: None,
                    field: field.into(),
                    rule: "datetime",
                    detail: "a date and time, YYYY-MM-DD HH:MM (Beijing time)".into(),
                });
            }
            t
        };
        let (s, e) = (read("window_start", start), read("window_end", end));
        let (s, e) = (s?, e?);
        if e <= s {
            errors.push(FieldError {
                row: None,
                field: "window_end".into(),
                rule: "after-start",
                detail: "the window ends after it starts".into(),
            });
            return None;
        }
        Some((s, e))
    }

    /// Records a change request; returns its id. A standard change is approved at once.
    pub async fn request(&self, caller: &Caller, f: &ChangeForm) -> Result<i64, DeskError> {
        Self::work(caller)?;
        let mut errors = Vec::new();
        let mut err = |field: &str, rule: &'static str, detail: &str| {
            errors.push(FieldError { row: None, field: field.into(), rule, detail: detail.into() })
        };
        let title = f.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            err("title", "required", "1 to 200 characters");
        }
        if !CLASSES.contains(&f.class.trim()) {
            err("class", "choice", "standard, normal or emergency");
        }
        if !RISKS.contains(&f.risk.trim()) {
            err("risk", "choice", "low, medium or high");
        }
        if f.backout_plan.trim().is_empty() {
            err("backout_plan", "required", "how the change is undone if it fails");
        }
        let codes: Vec<&str> = f.cis.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect();
        if codes.is_empty() {
            err("cis", "required", "the configuration items the change touches");
        }
        let mut ids = Vec::new();
        for code in &codes {
            match self.cmdb.by_code(caller, code).await {
                Ok(ci) => ids.push(ci.id),
                Err(CmdbError::NotFound) => err("cis", "unknown", &format!("no configuration item {code}")),
                Err(e) => return Err(e.into()),
            }
        }
        let window = Self::window(&f.window_start, &f.window_end, &mut errors);
        let Some((window_start, window_end)) = window.filter(|_| errors.is_empty()) else {
            return Err(DeskError::Invalid(errors));
        };
        let class = f.class.trim();
        if class != "standard" && !self.tables().board().await?.iter().any(|(c, _)| c == class) {
            return Err(invalid("class", "board", format!("no change board is named for {class} changes")));
        }
        let now = self.fhir.now_ms();
        let c = Change {
            title: title.to_string(),
            description: f.description.trim().to_string(),
            class: class.to_string(),
            risk: f.risk.trim().to_string(),
            backout_plan: f.backout_plan.trim().to_string(),
            status: if class == "standard" { "approved" } else { "requested" }.into(),
            requester: caller.actor().to_string(),
            window_start,
            window_end,
            created_at: now,
            updated_at: now,
            version: 1,
            ..Change::default()
        };
        let id = self.tables().create(&c, &ids).await?;
        self.audit(caller, "change-request", format!("change {id} {class} touching {}", codes.join(", "))).await?;
        Ok(id)
    }

    /// What changing `cis` affects: the services reached downstream and their campuses.
    pub async fn affected(&self, caller: &Caller, cis: &[Ci]) -> Result<Affected, DeskError> {
        let mut a = Affected::default();
        let mut seen = HashSet::new();
        for ci in cis {
            let impact = self.cmdb.impact(caller, ci.id, Walk::Impacted, 10_000).await?;
            a.campuses.extend(impact.campuses.iter().cloned());
            for c in std::iter::once(&impact.start).chain(impact.reached.iter().map(|r| &r.ci)) {
                a.reach.insert(c.id, c.name.clone());
                if SERVICES.contains(&c.class.as_str()) && seen.insert(c.id) {
                    a.services.push(c.clone());
                }
            }
        }
        a.services.sort_by(|x, y| x.name.cmp(&y.name));
        Ok(a)
    }

    async fn cis_of(&self, caller: &Caller, changes: &[i64]) -> Result<HashMap<i64, Vec<Ci>>, DeskError> {
        let pairs = self.tables().cis_of(changes).await?;
        let mut out: HashMap<i64, Vec<Ci>> = HashMap::new();
        let mut cache: HashMap<i64, Ci> = HashMap::new();
        for (change, id) in pairs {
            let ci = match cache.get(&id) {
                Some(c) => c.clone(),
                None => {
                    let c = self.cmdb.get(caller, id).await?;
                    cache.insert(id, c.clone());
                    c
                }
            };
            out.entry(change).or_default().push(ci);
        }
        Ok(out)
    }

    /// The live changes whose window overlaps `c`'s and that touch or affect an item
    /// `c` touches or affects.
    async fn conflicts(&self, caller: &Caller, c: &Change, affected: &Affected) -> Result<Vec<Conflict>, DeskError> {
        let q = ChangeQuery {
            statuses: Some(LIVE.iter().map(|s| s.to_string()).collect()),
            overlapping: Some((c.window_start, c.window_end)),
            limit: 1000,
            ..Default::default()
        };
        let others: Vec<Change> = self.tables().list(&q).await?.into_iter().filter(|o| o.id != c.id).collect();
        let cis = self.cis_of(caller, &others.iter().map(|o| o.id).collect::<Vec<_>>()).await?;
        let mut out = Vec::new();
        for other in others {
            let theirs = self.affected(caller, cis.get(&other.id).map(Vec::as_slice).unwrap_or_default()).await?;
            let mut shared: Vec<String> =
                theirs.reach.iter().filter(|(id, _)| affected.reach.contains_key(id)).map(|(_, n)| n.clone()).collect();
            shared.sort();
            if !shared.is_empty() {
                out.push(Conflict { other, shared });
            }
        }
        Ok(out)
    }

    /// The approvers named for a change class.
    async fn board_of(&self, class: &str) -> Result<Vec<String>, DeskError> {
        Ok(self.tables().board().await?.into_iter().filter(|(c, _)| c == class).map(|(_, u)| u).collect())
    }

    /// The board members who have not decided a change yet (its requester does not).
    fn waiting(c: &Change, board: &[String], approvals: &[Approval]) -> Vec<String> {
        let decided = |u: &String| {
            let actor = format!("user:{u}");
            actor == c.requester || approvals.iter().any(|a| a.approver == actor)
        };
        board.iter().filter(|u| !decided(u)).cloned().collect()
    }

    /// A change with its CIs, what it affects, its board and decisions, and conflicts.
    pub async fn card(&self, caller: &Caller, id: i64) -> Result<Card, DeskError> {
        Self::work(caller)?;
        let change = self.tables().get(id).await?.ok_or(DeskError::NotFound)?;
        let cis = self.cis_of(caller, &[id]).await?.remove(&id).unwrap_or_default();
        let affected = self.affected(caller, &cis).await?;
        let approvals = self.tables().approvals(id).await?;
        let board = self.board_of(&change.class).await?;
        let waiting =
            if change.status == "requested" { Self::waiting(&change, &board, &approvals) } else { Vec::new() };
        let conflicts = if LIVE.contains(&change.status.as_str()) {
            self.conflicts(caller, &change, &affected).await?
        } else {
            Vec::new()
        };
        Ok(Card { change, cis, affected, approvals, board, waiting, conflicts })
    }

    /// A page of changes, newest first.
    pub async fn list(&self, caller: &Caller, before: Option<i64>, limit: i64) -> Result<Vec<Change>, DeskError> {
        Self::work(caller)?;
        Ok(self.tables().list(&ChangeQuery { before, limit, ..Default::default() }).await?)
    }

    /// The change calendar: the changes (but cancelled and rejected ones) whose window
    /// overlaps `[from, to)`, in window order, each with the ids of the changes it
    /// conflicts with.
    pub async fn calendar(&self, caller: &Caller, from: i64, to: i64) -> Result<Vec<(Change, Vec<i64>)>, DeskError> {
        Self::work(caller)?;
        let statuses = ["requested", "approved", "scheduled", "implemented", "failed", "reviewed"];
        let q = ChangeQuery {
            statuses: Some(statuses.iter().map(|s| s.to_string()).collect()),
            overlapping: Some((from, to)),
            limit: 1000,
            ..Default::default()
        };
        let changes = self.tables().list(&q).await?;
        let cis = self.cis_of(caller, &changes.iter().map(|c| c.id).collect::<Vec<_>>()).await?;
        let mut reach = Vec::with_capacity(changes.len());
        for c in &changes {
            reach.push(self.affected(caller, cis.get(&c.id).map(Vec::as_slice).unwrap_or_default()).await?.reach);
        }
        let live = |c: &Change| LIVE.contains(&c.status.as_str());
        let mut out = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            let with = changes
                .iter()
                .enumerate()
                .filter(|(j, o)| {
                    *j != i
                        && live(c)
                        && live(o)
                        && o.window_start < c.window_end
                        && c.window_start < o.window_end
                        && reach[i].keys().any(|k| reach[*j].contains_key(k))
                })
                .map(|(_, o)| o.id)
                .collect();
            out.push((c.clone(), with));
        }
        Ok(out)
    }

    async fn load(&self, id: i64, version: i64) -> Result<Change, DeskError> {
        let c = self.tables().get(id).await?.ok_or(DeskError::NotFound)?;
        if c.version != version {
            return Err(DeskError::Changed);
        }
        Ok(c)
    }

    async fn write(
        &self,
        caller: &Caller,
        mut c: Change,
        decision: Option<Approval>,
        what: &str,
    ) -> Result<(), DeskError> {
        c.updated_at = self.fhir.now_ms();
        self.tables().change(&c, decision.as_ref()).await?;
        self.audit(caller, "change-update", format!("change {} {what} → {}", c.id, c.status)).await
    }

    /// A board member of the change's class approves or rejects it (a refusal says
    /// why). The last approval approves the change.
    pub async fn decide(
        &self,
        caller: &Caller,
        id: i64,
        version: i64,
        approve: bool,
        comment: &str,
    ) -> Result<(), DeskError> {
        Self::work(caller)?;
        let mut c = self.load(id, version).await?;
        if c.status != "requested" {
            return Err(invalid("status", "state", "only a requested change is decided"));
        }
        let me = Self::username(caller);
        let board = self.board_of(&c.class).await?;
        if !board.iter().any(|u| u == me) {
            return Err(DeskError::Forbidden("a change is decided by the board of its class"));
        }
        if c.requester == caller.actor() {
            return Err(invalid("approver", "own", "a change is not approved by the engineer who asked for it"));
        }
        let approvals = self.tables().approvals(id).await?;
        if approvals.iter().any(|a| a.approver == caller.actor()) {
            return Err(invalid("approver", "decided", "each board member decides once"));
        }
        if !approve && comment.trim().is_empty() {
            return Err(invalid("comment", "required", "why the change is rejected"));
        }
        // Every other member of the board has decided (a refusal would have rejected
        // the change already), so all have approved.
        let all_approved = Self::waiting(&c, &board, &approvals).iter().all(|u| u == me);
        c.status = if !approve {
            "rejected"
        } else if all_approved {
            "approved"
        } else {
            "requested"
        }
        .into();
        let decision = Approval {
            approver: caller.actor().to_string(),
            decision: if approve { "approved" } else { "rejected" }.into(),
            comment: Some(comment.trim().to_string()).filter(|c| !c.is_empty()),
            at: self.fhir.now_ms(),
        };
        self.write(caller, c, Some(decision), if approve { "approved by" } else { "rejected by" }).await
    }

    /// Schedules an approved change in its (possibly moved) window.
    pub async fn schedule(
        &self,
        caller: &Caller,
        id: i64,
        version: i64,
        start: &str,
        end: &str,
    ) -> Result<(), DeskError> {
        Self::work(caller)?;
        let mut c = self.load(id, version).await?;
        if c.status == "requested" {
            let (board, approvals) = (self.board_of(&c.class).await?, self.tables().approvals(id).await?);
            let waiting = Self::waiting(&c, &board, &approvals);
            return Err(invalid(
                "status",
                "approval",
                format!("the change board has not approved it yet (waiting for {})", waiting.join(", ")),
            ));
        }
        if c.status != "approved" && c.status != "scheduled" {
            return Err(invalid("status", "state", "only an approved change is scheduled"));
        }
        let mut errors = Vec::new();
        let Some((s, e)) = Self::window(start, end, &mut errors) else {
            return Err(DeskError::Invalid(errors));
        };
        c.window_start = s;
        c.window_end = e;
        c.status = "scheduled".into();
        self.write(caller, c, None, "scheduled").await
    }

    /// The implementer records how the change went.
    pub async fn implement(
        &self,
        caller: &Caller,
        id: i64,
        version: i64,
        outcome: &str,
        note: &str,
    ) -> Result<(), DeskError> {
        Self::work(caller)?;
        let mut c = self.load(id, version).await?;
        if c.status != "scheduled" {
            return Err(invalid("status", "state", "only a scheduled change is implemented"));
        }
        if !OUTCOMES.contains(&outcome) {
            return Err(invalid("outcome", "choice", OUTCOMES.join(", ")));
        }
        c.status = if outcome == "successful" { "implemented" } else { "failed" }.into();
        c.outcome = Some(format!("{outcome}: {}", note.trim()).trim_end_matches([' ', ':']).to_string());
        self.write(caller, c, None, outcome).await
    }

    /// The post-implementation review closes an implemented (or failed) change.
    pub async fn review(&self, caller: &Caller, id: i64, version: i64, review: &str) -> Result<(), DeskError> {
        Self::work(caller)?;
        let mut c = self.load(id, version).await?;
        if c.status != "implemented" && c.status != "failed" {
            return Err(invalid("status", "state", "only an implemented change is reviewed"));
        }
        if review.trim().is_empty() {
            return Err(invalid("review", "required", "what went well and what did not"));
        }
        c.status = "reviewed".into();
        c.review = Some(review.trim().to_string());
        self.write(caller, c, None, "reviewed").await
    }

    /// Withdraws a change that has not been implemented.
    pub async fn cancel(&self, caller: &Caller, id: i64, version: i64) -> Result<(), DeskError> {
        Self::work(caller)?;
        let mut c = self.load(id, version).await?;
        if !LIVE.contains(&c.status.as_str()) {
            return Err(invalid("status", "state", "only a change not yet implemented is cancelled"));
        }
        if c.requester != caller.actor() && !caller.can(Capability::ManageIt) {
            return Err(DeskError::Forbidden("a change is withdrawn by its requester or the IT manager"));
        }
        c.status = "cancelled".into();
        self.write(caller, c, None, "cancelled").await
    }

    /// The change board: (class, username).
    pub async fn board(&self, caller: &Caller) -> Result<Vec<(String, String)>, DeskError> {
        Self::work(caller)?;
        Ok(self.tables().board().await?)
    }

    /// The IT manager names (or removes) an approver of a change class.
    pub async fn set_board(&self, caller: &Caller, class: &str, username: &str, member: bool) -> Result<(), DeskError> {
        if !caller.can(Capability::ManageIt) {
            return Err(DeskError::Forbidden("the change board is named by the IT manager"));
        }
        if !CLASSES[1..].contains(&class) {
            return Err(invalid("class", "choice", "normal or emergency (standard changes are pre-approved)"));
        }
        if username.trim().is_empty() {
            return Err(invalid("username", "required", "the approver's user name"));
        }
        self.tables().set_board(class, username.trim(), member).await?;
        let what = if member { "on" } else { "off" };
        self.audit(caller, "change-board", format!("{} {what} the {class} board", username.trim())).await
    }
}

#[cfg(test)]
mod tests {
    use super::parse_local;

    #[test]
    fn a_window_reads_beijing_time() {
        // 2026-12-12 22:00 in Beijing is 14:00 UTC.
        assert_eq!(parse_local("2026-12-12T22:00"), parse_local("2026-12-12 22:00"));
        assert_eq!(parse_local("1970-01-01T08:00"), Some(0));
        assert_eq!(parse_local("2026-12-12T24:00"), None);
        assert_eq!(parse_local("2026-02-30T10:00"), None);
        assert_eq!(parse_local("12/12/2026 22:00"), None);
    }
}
