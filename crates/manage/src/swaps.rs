//! Swap requests (换班). A person on a department's roster asks to exchange one of
//! their coming shifts with a colleague's in the same department (a clinic session
//! is not swapped: its patients are booked with its doctor, so the head changes it on
//! the roster instead). The department's head, or a manager of its campus, approves —
//! the two shifts change hands in one transaction, checked again against both
//! people's rosters (no one in two places, the rest after a night) — or refuses.
//! Requests, approvals and refusals are audited.

use lianyi_clinical::scheduling::local_date;
use lianyi_security::Caller;
use lianyi_store::StoreError;
use lianyi_store::rosters::{RosterShift, Swap, SwapCheck};

use crate::roster::{Conflict, Rules, ShiftKind, conflicts};
use crate::rosters::{FieldError, RosterError, Rosters, invalid, placed_of};

const DAY_MS: i64 = 86_400_000;

/// A swap request with its two shifts, as the roster page lists it.
#[derive(Clone, Debug)]
pub struct SwapView {
    pub swap: Swap,
    /// The requester's shift and the colleague's (absent when taken off the roster).
    pub a: Option<RosterShift>,
    pub b: Option<RosterShift>,
}

fn refused(e: StoreError) -> RosterError {
    match e {
        StoreError::Refused(msg) => {
            let (field, detail) = msg.split_once(": ").unwrap_or(("swap", msg.as_str()));
            let field = if field == "shift_a" { "mine" } else { "swap" };
            RosterError::Invalid(vec![FieldError { field, code: "swap", detail: detail.to_string() }])
        }
        other => other.into(),
    }
}

/// The conflicts of each shift given to the other person, beside that person's other
/// shifts around it (the same check when asked and when approved).
fn swap_conflicts(c: &SwapCheck, rules: Rules) -> Result<(), Vec<Conflict>> {
    let mut found = Vec::new();
    for (shift, around) in [(&c.a, &c.around_a), (&c.b, &c.around_b)] {
        let others: Vec<_> = around.iter().map(placed_of).collect();
        found.extend(conflicts(&placed_of(shift), &others, rules));
    }
    if found.is_empty() { Ok(()) } else { Err(found) }
}

impl Rosters {
    /// The Practitioner carrying the caller's username as an identifier.
    async fn own_practitioner(&self, caller: &Caller) -> Result<Option<String>, RosterError> {
        Ok(self.scheduling.own_practitioners(caller).await?.into_iter().next())
    }

    /// Asks to exchange the caller's shift `mine` with a colleague's shift `theirs`.
    pub async fn request_swap(
        &self,
        caller: &Caller,
        mine: i64,
        theirs: i64,
        reason: &str,
    ) -> Result<i64, RosterError> {
        let rosters = self.fhir.operations().rosters();
        let a = rosters.shift(mine).await?.ok_or_else(|| invalid("mine", "no-shift", "not a shift on the roster"))?;
        let b =
            rosters.shift(theirs).await?.ok_or_else(|| invalid("theirs", "no-shift", "not a shift on the roster"))?;
        Self::may_read(caller, &a.campus)?;
        let me = self.own_practitioner(caller).await?;
        let today = local_date(self.fhir.now_ms());
        let mut errors = Vec::new();
        let mut rule = |ok: bool, field: &'static str, code: &'static str, detail: &str| {
            if !ok {
                errors.push(FieldError { field, code, detail: detail.to_string() });
            }
        };
        rule(me.as_deref() == Some(a.practitioner.as_str()), "mine", "not-yours", "one of your own shifts");
        rule(b.department == a.department, "theirs", "other-department", "a shift of the same department");
        rule(b.practitioner != a.practitioner, "theirs", "same-person", "a colleague's shift");
        rule(a.day >= today && b.day >= today, "theirs", "past", "shifts from today on");
        let clinic = ShiftKind::Clinic.code();
        rule(a.kind != clinic && b.kind != clinic, "theirs", "clinic", "not a clinic session");
        let reason = reason.trim();
        rule(reason.chars().count() <= 200, "reason", "length", "at most 200 characters");
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        // Checked now, so a request that cannot be approved is not made.
        let rules = self.rules(&a.campus).await?;
        let reach = i64::from(rules.rest_after_night_hours) * 3_600_000 + DAY_MS;
        let mut around = Vec::new();
        for (shift, person) in [(&a, &b.practitioner), (&b, &a.practitioner)] {
            let others: Vec<RosterShift> = rosters
                .person_shifts(person, shift.starts_at - reach, shift.ends_at + reach)
                .await?
                .into_iter()
                .filter(|s| s.id != a.id && s.id != b.id)
                .collect();
            around.push(others);
        }
        let check = SwapCheck { around_b: around.remove(1), around_a: around.remove(0), a: a.clone(), b: b.clone() };
        swap_conflicts(&check, rules).map_err(RosterError::Conflicts)?;
        let swap = Swap {
            department: a.department.clone(),
            campus: a.campus.clone(),
            shift_a: a.id,
            shift_b: b.id,
            requested_by: caller.actor().to_string(),
            requested_at: self.fhir.now_ms(),
            reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
            ..Swap::default()
        };
        let id = rosters.request_swap(&swap).await.map_err(refused)?;
        self.audit(caller, "roster-swap-request", format!("swap {id}: shift {} for shift {}", a.id, b.id)).await?;
        Ok(id)
    }

    /// Approves (`approve`) or refuses a waiting request; only the department's head
    /// or a manager of its campus may.
    pub async fn decide_swap(&self, caller: &Caller, id: i64, approve: bool, note: &str) -> Result<(), RosterError> {
        let rosters = self.fhir.operations().rosters();
        let Some(swap) = rosters.swap(id).await? else { return Err(RosterError::NotFound(format!("swap {id}"))) };
        self.may_keep_department(caller, &swap.department, &swap.campus).await?;
        let note = Some(note.trim()).filter(|n| !n.is_empty());
        let now = self.fhir.now_ms();
        if !approve {
            if !rosters.refuse_swap(id, caller.actor(), now, note).await? {
                return Err(invalid("swap", "swap", "this request was decided already"));
            }
            return self.audit(caller, "roster-swap-refuse", format!("swap {id}")).await;
        }
        let rules = self.rules(&swap.campus).await?;
        let reach = i64::from(rules.rest_after_night_hours) * 3_600_000 + DAY_MS;
        let checked = rosters
            .approve_swap_checked(id, caller.actor(), now, note, reach, |c: &SwapCheck| swap_conflicts(c, rules))
            .await
            .map_err(refused)?;
        checked.map_err(RosterError::Conflicts)?;
        self.audit(
            caller,
            "roster-swap-approve",
            format!("swap {id}: shift {} for shift {}", swap.shift_a, swap.shift_b),
        )
        .await
    }

    /// A department's swap requests (waiting first) with their shifts, for its staff.
    pub async fn swaps(&self, caller: &Caller, department: &str) -> Result<Vec<SwapView>, RosterError> {
        let campus = self.campus_of(caller, department).await?;
        Self::may_read(caller, &campus)?;
        let rosters = self.fhir.operations().rosters();
        let mut out = Vec::new();
        for swap in rosters.swaps(department, 50).await? {
            let a = rosters.shift(swap.shift_a).await?;
            let b = rosters.shift(swap.shift_b).await?;
            out.push(SwapView { swap, a, b });
        }
        Ok(out)
    }

    /// What the caller may offer in a swap (their own coming shifts, not clinic
    /// sessions) and ask for (the colleagues' like them), among a department's `shifts`;
    /// nothing to ask for when they have nothing to offer.
    pub async fn swap_choices(&self, caller: &Caller, shifts: &[RosterShift]) -> (Vec<i64>, Vec<i64>) {
        let today = local_date(self.fhir.now_ms());
        let me = self.own_practitioner(caller).await.ok().flatten();
        let coming = shifts.iter().filter(|s| s.day >= today && s.kind != ShiftKind::Clinic.code());
        let (mine, theirs): (Vec<&RosterShift>, Vec<&RosterShift>) =
            coming.partition(|s| Some(&s.practitioner) == me.as_ref());
        if mine.is_empty() {
            return (Vec::new(), Vec::new());
        }
        (mine.iter().map(|s| s.id).collect(), theirs.iter().map(|s| s.id).collect())
    }
}
