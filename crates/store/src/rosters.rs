//! The rosters' tables (staff data, not health data): each campus's shift types and
//! roster rules, and who works which shift on which day in which department. A shift
//! is added in one transaction with the read of the person's other shifts around it,
//! so two department heads rostering the same person at once take turns and the
//! second sees the first's shift.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Backend, Result, Store, StoreError};

/// One shift type of a campus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShiftType {
    pub campus: String,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// `day`, `night`, `on-call` or `clinic`.
    pub kind: String,
    /// Minutes after midnight; an end not after the start is the next day.
    pub start_minute: i64,
    pub end_minute: i64,
    /// A clinic session's Slot length.
    pub slot_minutes: Option<i64>,
}

/// One shift on the roster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RosterShift {
    pub id: i64,
    /// The Practitioner (the person, whichever department).
    pub practitioner: String,
    /// The PractitionerRole it is worked under (the department's).
    pub role: String,
    pub department: String,
    pub campus: String,
    /// `YYYY-MM-DD` (Beijing).
    pub day: String,
    /// The shift type's code.
    pub shift: String,
    pub kind: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_at: i64,
    pub created_by: String,
}

const SHIFT_COLUMNS: &str =
    "id, practitioner, role, department, campus, day, shift, kind, starts_at, ends_at, created_at, created_by";

fn shift_of(r: &AnyRow) -> Result<RosterShift> {
    Ok(RosterShift {
        id: r.try_get(0)?,
        practitioner: r.try_get(1)?,
        role: r.try_get(2)?,
        department: r.try_get(3)?,
        campus: r.try_get(4)?,
        day: r.try_get(5)?,
        shift: r.try_get(6)?,
        kind: r.try_get(7)?,
        starts_at: r.try_get(8)?,
        ends_at: r.try_get(9)?,
        created_at: r.try_get(10)?,
        created_by: r.try_get(11)?,
    })
}

fn type_of(r: &AnyRow) -> Result<ShiftType> {
    Ok(ShiftType {
        campus: r.try_get(0)?,
        code: r.try_get(1)?,
        name_zh: r.try_get(2)?,
        name_en: r.try_get(3)?,
        kind: r.try_get(4)?,
        start_minute: r.try_get(5)?,
        end_minute: r.try_get(6)?,
        slot_minutes: r.try_get(7)?,
    })
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Rosters(pub(crate) Store);

impl Rosters {
    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.0.write_pool().begin_with(self.0.backend.begin_write()).await?)
    }

    /// Adds a shift type or changes it.
    pub async fn put_type(&self, t: &ShiftType) -> Result<()> {
        sqlx::query(
            "INSERT INTO roster_shift_types (campus, code, name_zh, name_en, kind, start_minute, end_minute, \
             slot_minutes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (campus, code) DO UPDATE SET \
             name_zh = excluded.name_zh, name_en = excluded.name_en, kind = excluded.kind, \
             start_minute = excluded.start_minute, end_minute = excluded.end_minute, \
             slot_minutes = excluded.slot_minutes",
        )
        .bind(t.campus.clone())
        .bind(t.code.clone())
        .bind(t.name_zh.clone())
        .bind(t.name_en.clone())
        .bind(t.kind.clone())
        .bind(t.start_minute)
        .bind(t.end_minute)
        .bind(t.slot_minutes)
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// A campus's shift types, by start.
    pub async fn types(&self, campus: &str) -> Result<Vec<ShiftType>> {
        let rows = sqlx::query(
            "SELECT campus, code, name_zh, name_en, kind, start_minute, end_minute, slot_minutes \
             FROM roster_shift_types WHERE campus = $1 ORDER BY start_minute, code",
        )
        .bind(campus.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(type_of).collect()
    }

    /// A campus's rest after a night or on-call shift, in hours, when it set one.
    pub async fn rest_hours(&self, campus: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT rest_after_night_hours FROM roster_rules WHERE campus = $1")
            .bind(campus.to_string())
            .fetch_optional(&self.0.read_pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Sets a campus's rest after a night or on-call shift.
    pub async fn set_rest_hours(&self, campus: &str, hours: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO roster_rules (campus, rest_after_night_hours) VALUES ($1, $2) \
             ON CONFLICT (campus) DO UPDATE SET rest_after_night_hours = excluded.rest_after_night_hours",
        )
        .bind(campus.to_string())
        .bind(hours)
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// Adds `shift` unless `check`, given the person's shifts from `from` to `to`
    /// (instants, any department), refuses it; the read and the insert are one
    /// transaction. Returns the new shift's id, or `check`'s refusal.
    pub async fn add_checked<E>(
        &self,
        shift: &RosterShift,
        from: i64,
        to: i64,
        check: impl FnOnce(&[RosterShift]) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<i64, E>> {
        let mut tx = self.begin().await?;
        if self.0.backend == Backend::Postgres {
            // One person's shifts are added one at a time (SQLite has one writer).
            sqlx::query("SELECT pg_advisory_xact_lock(7360, hashtext($1))")
                .bind(shift.practitioner.clone())
                .execute(&mut *tx)
                .await?;
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHIFT_COLUMNS} FROM roster_shifts WHERE practitioner = $1 AND starts_at < $2 AND ends_at > $3 \
             ORDER BY starts_at"
        )))
        .bind(shift.practitioner.clone())
        .bind(to)
        .bind(from)
        .fetch_all(&mut *tx)
        .await?;
        let others = rows.iter().map(shift_of).collect::<Result<Vec<_>>>()?;
        if let Err(e) = check(&others) {
            tx.rollback().await?;
            return Ok(Err(e));
        }
        let row = sqlx::query(
            "INSERT INTO roster_shifts (practitioner, role, department, campus, day, shift, kind, starts_at, \
             ends_at, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(shift.practitioner.clone())
        .bind(shift.role.clone())
        .bind(shift.department.clone())
        .bind(shift.campus.clone())
        .bind(shift.day.clone())
        .bind(shift.shift.clone())
        .bind(shift.kind.clone())
        .bind(shift.starts_at)
        .bind(shift.ends_at)
        .bind(shift.created_at)
        .bind(shift.created_by.clone())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// One shift.
    pub async fn shift(&self, id: i64) -> Result<Option<RosterShift>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SHIFT_COLUMNS} FROM roster_shifts WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(shift_of).transpose()
    }

    /// Removes a shift; whether it was there.
    pub async fn remove(&self, id: i64) -> Result<bool> {
        let r = sqlx::query("DELETE FROM roster_shifts WHERE id = $1").bind(id).execute(&self.0.write_pool()).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records clock-machine punches (practitioner, instant) from `source`, in one
    /// transaction; a punch already recorded is kept once. Returns how many were new.
    pub async fn add_punches(&self, punches: &[(String, i64)], source: &str, at: i64, by: &str) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut added = 0;
        for (practitioner, when) in punches {
            let r = sqlx::query(
                "INSERT INTO roster_punches (practitioner, at, source, imported_at, imported_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (practitioner, at) DO NOTHING",
            )
            .bind(practitioner.clone())
            .bind(*when)
            .bind(source.to_string())
            .bind(at)
            .bind(by.to_string())
            .execute(&mut *tx)
            .await?;
            added += r.rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    /// The punches of `practitioner` from `from` to `to` (instants), in order.
    pub async fn punches(&self, practitioner: &str, from: i64, to: i64) -> Result<Vec<i64>> {
        let rows =
            sqlx::query("SELECT at FROM roster_punches WHERE practitioner = $1 AND at >= $2 AND at < $3 ORDER BY at")
                .bind(practitioner.to_string())
                .bind(from)
                .bind(to)
                .fetch_all(&self.0.read_pool())
                .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// A department's shifts from day `from` to day `to` (`YYYY-MM-DD`, both included),
    /// by day and start.
    pub async fn department(&self, department: &str, from: &str, to: &str) -> Result<Vec<RosterShift>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHIFT_COLUMNS} FROM roster_shifts WHERE department = $1 AND day >= $2 AND day <= $3 \
             ORDER BY day, starts_at, id"
        )))
        .bind(department.to_string())
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(shift_of).collect()
    }
}

/// A swap request (换班): shift `shift_a` (the requester's) for `shift_b` (a
/// colleague's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swap {
    pub id: i64,
    pub department: String,
    pub campus: String,
    pub shift_a: i64,
    pub shift_b: i64,
    pub requested_by: String,
    pub requested_at: i64,
    pub reason: Option<String>,
    /// `requested`, `approved` or `refused`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub note: Option<String>,
}

const SWAP_COLUMNS: &str = "id, department, campus, shift_a, shift_b, requested_by, requested_at, reason, status, \
                            decided_by, decided_at, note";

fn swap_of(r: &AnyRow) -> Result<Swap> {
    Ok(Swap {
        id: r.try_get(0)?,
        department: r.try_get(1)?,
        campus: r.try_get(2)?,
        shift_a: r.try_get(3)?,
        shift_b: r.try_get(4)?,
        requested_by: r.try_get(5)?,
        requested_at: r.try_get(6)?,
        reason: r.try_get(7)?,
        status: r.try_get(8)?,
        decided_by: r.try_get(9)?,
        decided_at: r.try_get(10)?,
        note: r.try_get(11)?,
    })
}

/// What an approval checks: each shift, and the other shifts of the person taking it
/// around it (any department; the two shifts themselves left out).
#[derive(Clone, Debug)]
pub struct SwapCheck {
    pub a: RosterShift,
    pub b: RosterShift,
    /// The shifts of `b`'s person around `a` (they take `a`).
    pub around_a: Vec<RosterShift>,
    /// The shifts of `a`'s person around `b` (they take `b`).
    pub around_b: Vec<RosterShift>,
}

impl Rosters {
    /// A person's shifts (any department) overlapping `from`..`to` (instants).
    pub async fn person_shifts(&self, practitioner: &str, from: i64, to: i64) -> Result<Vec<RosterShift>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHIFT_COLUMNS} FROM roster_shifts WHERE practitioner = $1 AND starts_at < $2 AND ends_at > $3 \
             ORDER BY starts_at"
        )))
        .bind(practitioner.to_string())
        .bind(to)
        .bind(from)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(shift_of).collect()
    }

    /// Records a swap request; refused when either shift is in a request still
    /// waiting (one request at a time per shift).
    pub async fn request_swap(&self, s: &Swap) -> Result<i64> {
        let mut tx = self.begin().await?;
        let waiting = sqlx::query(
            "SELECT COUNT(*) FROM roster_swaps WHERE status = 'requested' AND \
             (shift_a IN ($1, $2) OR shift_b IN ($1, $2))",
        )
        .bind(s.shift_a)
        .bind(s.shift_b)
        .fetch_one(&mut *tx)
        .await?;
        if waiting.try_get::<i64, _>(0)? > 0 {
            tx.rollback().await?;
            return Err(StoreError::Refused("shift_a: a swap of this shift is waiting for approval".into()));
        }
        let row = sqlx::query(
            "INSERT INTO roster_swaps (department, campus, shift_a, shift_b, requested_by, requested_at, reason, \
             status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'requested') RETURNING id",
        )
        .bind(s.department.clone())
        .bind(s.campus.clone())
        .bind(s.shift_a)
        .bind(s.shift_b)
        .bind(s.requested_by.clone())
        .bind(s.requested_at)
        .bind(s.reason.clone())
        .fetch_one(&mut *tx)
        .await?;
        let id = row.try_get(0)?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn swap(&self, id: i64) -> Result<Option<Swap>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SWAP_COLUMNS} FROM roster_swaps WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(swap_of).transpose()
    }

    /// A department's swap requests, those waiting first, then the latest decided.
    pub async fn swaps(&self, department: &str, limit: i64) -> Result<Vec<Swap>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SWAP_COLUMNS} FROM roster_swaps WHERE department = $1 \
             ORDER BY CASE WHEN status = 'requested' THEN 0 ELSE 1 END, id DESC LIMIT $2"
        )))
        .bind(department.to_string())
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(swap_of).collect()
    }

    /// Refuses a waiting request; false when it was decided already.
    pub async fn refuse_swap(&self, id: i64, by: &str, at: i64, note: Option<&str>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE roster_swaps SET status = 'refused', decided_by = $1, decided_at = $2, note = $3 \
             WHERE id = $4 AND status = 'requested'",
        )
        .bind(by.to_string())
        .bind(at)
        .bind(note.map(str::to_string))
        .bind(id)
        .execute(&self.0.write_pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Approves a waiting request: in one transaction, reads both shifts and the
    /// shifts of each person taking one within `reach` ms around it, lets `check`
    /// refuse, then gives each shift to the other person (their PractitionerRole in the
    /// department) and marks the request approved. A request decided already, or a
    /// shift gone or given to someone else since, is refused by name.
    pub async fn approve_swap_checked<E>(
        &self,
        id: i64,
        by: &str,
        at: i64,
        note: Option<&str>,
        reach: i64,
        check: impl FnOnce(&SwapCheck) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let mut tx = self.begin().await?;
        let refused = |m: &str| StoreError::Refused(m.to_string());
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SWAP_COLUMNS} FROM roster_swaps WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let swap = row.as_ref().map(swap_of).transpose()?.ok_or_else(|| refused("swap: no such request"))?;
        if swap.status != "requested" {
            return Err(refused("swap: this request was decided already"));
        }
        let mut shifts = Vec::new();
        for shift in [swap.shift_a, swap.shift_b] {
            let row =
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SHIFT_COLUMNS} FROM roster_shifts WHERE id = $1")))
                    .bind(shift)
                    .fetch_optional(&mut *tx)
                    .await?;
            shifts.push(
                row.as_ref()
                    .map(shift_of)
                    .transpose()?
                    .ok_or_else(|| refused("swap: a shift of it was taken off the roster"))?,
            );
        }
        let (a, b) = (shifts.remove(0), shifts.remove(0));
        if self.0.backend == Backend::Postgres {
            // The two people's shifts change one at a time (SQLite has one writer).
            let mut people = [a.practitioner.clone(), b.practitioner.clone()];
            people.sort();
            for p in people {
                sqlx::query("SELECT pg_advisory_xact_lock(7360, hashtext($1))").bind(p).execute(&mut *tx).await?;
            }
        }
        let mut around = Vec::new();
        for (person, shift) in [(&b.practitioner, &a), (&a.practitioner, &b)] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {SHIFT_COLUMNS} FROM roster_shifts WHERE practitioner = $1 AND starts_at < $2 AND ends_at > $3 \
                 AND id NOT IN ($4, $5) ORDER BY starts_at"
            )))
            .bind(person.clone())
            .bind(shift.ends_at + reach)
            .bind(shift.starts_at - reach)
            .bind(a.id)
            .bind(b.id)
            .fetch_all(&mut *tx)
            .await?;
            around.push(rows.iter().map(shift_of).collect::<Result<Vec<_>>>()?);
        }
        let checked = SwapCheck { around_b: around.remove(1), around_a: around.remove(0), a, b };
        if let Err(e) = check(&checked) {
            tx.rollback().await?;
            return Ok(Err(e));
        }
        let SwapCheck { a, b, .. } = checked;
        for (shift, to) in [(&a, &b), (&b, &a)] {
            sqlx::query("UPDATE roster_shifts SET practitioner = $1, role = $2 WHERE id = $3")
                .bind(to.practitioner.clone())
                .bind(to.role.clone())
                .bind(shift.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE roster_swaps SET status = 'approved', decided_by = $1, decided_at = $2, note = $3 WHERE id = $4",
        )
        .bind(by.to_string())
        .bind(at)
        .bind(note.map(str::to_string))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}
