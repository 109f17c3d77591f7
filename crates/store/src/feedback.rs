//! Patients' feedback and complaints (患者意见与投诉): one row each, with its owner, its
//! deadline and its answer. The answer is written once: the row moves from `open` to
//! `answered` in one conditional update.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{Arg, Sql};
use crate::{Result, Store, StoreError};

/// One piece of feedback.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feedback {
    pub id: i64,
    pub campus: String,
    /// The department it is about (an Organization id), if any.
    pub department: Option<String>,
    /// `complaint`, `suggestion` or `praise`.
    pub kind: String,
    /// `desk`, `phone`, `letter` or `portal`.
    pub channel: String,
    /// The patient (a Patient id), when known.
    pub patient: Option<String>,
    pub subject: String,
    pub body: String,
    pub received_at: i64,
    pub received_by: String,
    /// Who answers it (a username).
    pub owner: Option<String>,
    /// `YYYY-MM-DD`: the answer is due by the end of this day.
    pub due_on: String,
    /// `open` or `answered`.
    pub status: String,
    pub reply: Option<String>,
    pub replied_at: Option<i64>,
    pub replied_by: Option<String>,
    /// The member of staff it is about (a Practitioner id), if any.
    pub practitioner: Option<String>,
    /// The visit a patient's survey is about (an Encounter id): one survey per visit.
    pub encounter: Option<String>,
}

const COLUMNS: &str = "id, campus, department, kind, channel, patient, subject, body, received_at, received_by, owner, \
                       due_on, status, reply, replied_at, replied_by, practitioner, encounter";

fn of(r: &AnyRow) -> Result<Feedback> {
    Ok(Feedback {
        id: r.try_get(0)?,
        campus: r.try_get(1)?,
        department: r.try_get(2)?,
        kind: r.try_get(3)?,
        channel: r.try_get(4)?,
        patient: r.try_get(5)?,
        subject: r.try_get(6)?,
        body: r.try_get(7)?,
        received_at: r.try_get(8)?,
        received_by: r.try_get(9)?,
        owner: r.try_get(10)?,
        due_on: r.try_get(11)?,
        status: r.try_get(12)?,
        reply: r.try_get(13)?,
        replied_at: r.try_get(14)?,
        replied_by: r.try_get(15)?,
        practitioner: r.try_get(16)?,
        encounter: r.try_get(17)?,
    })
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct FeedbackTable(pub(crate) Store);

impl FeedbackTable {
    /// Records feedback (open); returns its id. A second survey of the same visit is
    /// `AlreadyExists`.
    pub async fn record(&self, f: &Feedback) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO feedback (campus, department, kind, channel, patient, subject, body, received_at, received_by, \
             owner, due_on, status, practitioner, encounter) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', $12, $13) RETURNING id",
        )
        .bind(f.campus.clone())
        .bind(f.department.clone())
        .bind(f.kind.clone())
        .bind(f.channel.clone())
        .bind(f.patient.clone())
        .bind(f.subject.clone())
        .bind(f.body.clone())
        .bind(f.received_at)
        .bind(f.received_by.clone())
        .bind(f.owner.clone())
        .bind(f.due_on.clone())
        .bind(f.practitioner.clone())
        .bind(f.encounter.clone())
        .fetch_one(&self.0.write_pool())
        .await;
        match row {
            Ok(row) => Ok(row.try_get(0)?),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(crate::StoreError::AlreadyExists {
                resource_type: "feedback".into(),
                id: f.encounter.clone().unwrap_or_default(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// How much feedback of each kind named each member of staff at `campus` in
    /// `[from, to)` (milliseconds): (Practitioner id, kind, count).
    pub async fn by_person(&self, campus: &str, from: i64, to: i64) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT practitioner, kind, count(*) FROM feedback WHERE campus = $1 AND practitioner IS NOT NULL \
             AND received_at >= $2 AND received_at < $3 GROUP BY practitioner, kind ORDER BY practitioner, kind",
        )
        .bind(campus.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    pub async fn get(&self, id: i64) -> Result<Option<Feedback>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM feedback WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(of).transpose()
    }

    /// The feedback of `campuses` (all when `None`), open first by deadline, then the
    /// answered newest first; at most `limit`.
    pub async fn list(&self, campuses: Option<&[String]>, open_only: bool, limit: i64) -> Result<Vec<Feedback>> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM feedback WHERE 1 = 1"));
        if let Some(list) = campuses {
            sql.push(" AND ");
            sql.push_in("campus", list);
        }
        if open_only {
            sql.push(" AND status = 'open'");
        }
        sql.push(" ORDER BY CASE WHEN status = 'open' THEN 0 ELSE 1 END, CASE WHEN status = 'open' THEN due_on END, id DESC LIMIT ");
        sql.push_bind(Arg::Int(limit));
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(of).collect()
    }

    /// A patient's own feedback of one kind given on the portal, newest first.
    pub async fn of_patient(&self, patient: &str, kind: &str, limit: i64) -> Result<Vec<Feedback>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM feedback WHERE patient = $1 AND kind = $2 AND channel = 'portal' \
             ORDER BY id DESC LIMIT $3"
        )))
        .bind(patient.to_string())
        .bind(kind.to_string())
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(of).collect()
    }

    /// Names the owner of open feedback; false when it is answered or gone.
    pub async fn assign(&self, id: i64, owner: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE feedback SET owner = $1 WHERE id = $2 AND status = 'open'")
            .bind(owner.to_string())
            .bind(id)
            .execute(&self.0.write_pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes the answer of open feedback; refused when it was answered already.
    pub async fn answer(&self, id: i64, reply: &str, by: &str, at: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE feedback SET status = 'answered', reply = $1, replied_by = $2, replied_at = $3 \
             WHERE id = $4 AND status = 'open'",
        )
        .bind(reply.to_string())
        .bind(by.to_string())
        .bind(at)
        .bind(id)
        .execute(&self.0.write_pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Refused("reply: this feedback was answered already".into()));
        }
        Ok(())
    }
}
