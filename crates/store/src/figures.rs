//! The dashboards' daily figures (not health data): per Beijing day, campus,
//! department and measure, a total and how many records made it. A record (its
//! source, `Encounter/12`) contributes figures; a newer version of it replaces its
//! contribution, so following the outbox again is harmless. Department [`ALL`] holds
//! each campus's total. A figure that names its person (the doctor of a visit, who
//! signed a prescription) is also kept per person, for the performance sheets.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::{Arg, Sql, multi_insert};
use crate::{Result, Store};

/// The department of a campus's totals.
pub const ALL: &str = "*";

/// One figure a record contributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figure {
    pub campus: String,
    /// The department (an Organization id; `""` when the record names none).
    pub department: String,
    pub measure: String,
    /// `YYYY-MM-DD` (Beijing).
    pub day: String,
    /// A count, minutes or fen, as the measure says.
    pub total: i64,
    /// How many records made the total (for averages).
    pub n: i64,
    /// Who the record names as its person (`Practitioner/7`, `PractitionerRole/3`,
    /// `user:dr.wang`; `""` for none).
    pub person: String,
}

/// A summed figure: its key (a campus, a department or a day, as asked) and measure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    pub key: String,
    pub measure: String,
    pub total: i64,
    pub n: i64,
}

/// What the sums are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SumBy {
    Campus,
    Department,
    Day,
}

/// Which figures are summed: a period, and the campuses (all when `None`), one campus,
/// one department of it.
#[derive(Clone, Debug, Default)]
pub struct Scope<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub campuses: Option<&'a [String]>,
    pub campus: Option<&'a str>,
    pub department: Option<&'a str>,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Figures(pub(crate) Store);

type Key = (String, String, String, String);

impl Figures {
    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.0.write_pool().begin_with(self.0.backend.begin_write()).await?)
    }

    /// Replaces each source's contribution by its new figures (none: the record no
    /// longer counts), in one transaction.
    pub async fn replace(&self, changes: &[(String, Vec<Figure>)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let backend = self.0.backend;
        let mut tx = self.begin().await?;
        if backend == crate::Backend::Postgres {
            // Two servers on one database follow the same events: their replacements
            // take turns, so each reads the contribution the other committed (SQLite
            // has one writer).
            sqlx::query("SELECT pg_advisory_xact_lock(7361)").execute(&mut *tx).await?;
        }
        let mut delta: BTreeMap<Key, (i64, i64)> = BTreeMap::new();
        let mut people: BTreeMap<Key, (i64, i64)> = BTreeMap::new();
        let mut add = |f: &Figure, sign: i64| {
            for dept in [f.department.as_str(), ALL] {
                let key = (f.campus.clone(), dept.to_string(), f.measure.clone(), f.day.clone());
                let d = delta.entry(key).or_default();
                d.0 += sign * f.total;
                d.1 += sign * f.n;
            }
            if !f.person.is_empty() {
                let key = (f.campus.clone(), f.person.clone(), f.measure.clone(), f.day.clone());
                let d = people.entry(key).or_default();
                d.0 += sign * f.total;
                d.1 += sign * f.n;
            }
        };
        let sources: Vec<&str> = changes.iter().map(|(s, _)| s.as_str()).collect();
        for chunk in sources.chunks(500) {
            let mut sql =
                Sql::new("SELECT campus, department, measure, day, total, n, person FROM figure_sources WHERE ");
            sql.push_in("source", chunk);
            for r in sql.query(backend).fetch_all(&mut *tx).await? {
                add(&figure(&r)?, -1);
            }
            let mut del = Sql::new("DELETE FROM figure_sources WHERE ");
            del.push_in("source", chunk);
            del.query(backend).execute(&mut *tx).await?;
        }
        let mut rows = Vec::new();
        for (source, figures) in changes {
            for f in figures {
                add(f, 1);
                rows.push(vec![
                    Arg::Text(source.clone()),
                    Arg::Text(f.campus.clone()),
                    Arg::Text(f.department.clone()),
                    Arg::Text(f.measure.clone()),
                    Arg::Text(f.day.clone()),
                    Arg::Int(f.total),
                    Arg::Int(f.n),
                    Arg::Text(f.person.clone()),
                ]);
            }
        }
        let cols = ["source", "campus", "department", "measure", "day", "total", "n", "person"];
        for sql in multi_insert("figure_sources", &cols, rows, 8_000) {
            sql.query(backend).execute(&mut *tx).await?;
        }
        for (table, key, delta) in [("daily_figures", "department", delta), ("person_figures", "person", people)] {
            let rows: Vec<Vec<Arg>> = delta
                .into_iter()
                .filter(|(_, d)| *d != (0, 0))
                .map(|((campus, k, measure, day), (total, n))| {
                    vec![
                        Arg::Text(campus),
                        Arg::Text(k),
                        Arg::Text(measure),
                        Arg::Text(day),
                        Arg::Int(total),
                        Arg::Int(n),
                    ]
                })
                .collect();
            let cols = ["campus", key, "measure", "day", "total", "n"];
            for mut sql in multi_insert(table, &cols, rows, 6_000) {
                sql.push(&format!(
                    " ON CONFLICT (campus, {key}, measure, day) DO UPDATE SET \
                     total = {table}.total + excluded.total, n = {table}.n + excluded.n"
                ));
                sql.query(backend).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The figures of `scope` summed by `by` and measure. Without a department, a
    /// campus's totals are read (one row per campus, measure and day); with
    /// `SumBy::Department`, each department's.
    pub async fn sums(&self, scope: &Scope<'_>, by: SumBy) -> Result<Vec<Sum>> {
        let key = match by {
            SumBy::Campus => "campus",
            SumBy::Department => "department",
            SumBy::Day => "day",
        };
        let mut sql = Sql::new(&format!(
            "SELECT {key}, measure, CAST(SUM(total) AS BIGINT), CAST(SUM(n) AS BIGINT) FROM daily_figures WHERE "
        ));
        match (by, scope.department) {
            (SumBy::Department, None) => sql.push(&format!("department <> '{ALL}'")),
            (_, Some(d)) => {
                sql.push("department = ");
                sql.push_bind(Arg::Text(d.to_string()));
            }
            (_, None) => sql.push(&format!("department = '{ALL}'")),
        }
        sql.push(" AND day >= ");
        sql.push_bind(Arg::Text(scope.from.to_string()));
        sql.push(" AND day <= ");
        sql.push_bind(Arg::Text(scope.to.to_string()));
        if let Some(c) = scope.campus {
            sql.push(" AND campus = ");
            sql.push_bind(Arg::Text(c.to_string()));
        }
        if let Some(list) = scope.campuses {
            sql.push(" AND ");
            sql.push_in("campus", list);
        }
        sql.push(&format!(" GROUP BY {key}, measure ORDER BY {key}, measure"));
        let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter()
            .map(|r| Ok(Sum { key: r.try_get(0)?, measure: r.try_get(1)?, total: r.try_get(2)?, n: r.try_get(3)? }))
            .collect()
    }

    /// The figures of a campus's people over a period (both days included), summed by
    /// person and measure.
    pub async fn person_sums(&self, campus: &str, from: &str, to: &str) -> Result<Vec<Sum>> {
        let rows = sqlx::query(
            "SELECT person, measure, CAST(SUM(total) AS BIGINT), CAST(SUM(n) AS BIGINT) FROM person_figures \
             WHERE campus = $1 AND day >= $2 AND day <= $3 GROUP BY person, measure ORDER BY person, measure",
        )
        .bind(campus.to_string())
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| Ok(Sum { key: r.try_get(0)?, measure: r.try_get(1)?, total: r.try_get(2)?, n: r.try_get(3)? }))
            .collect()
    }

    /// The contribution of one source (for checking what a record counts for).
    pub async fn of_source(&self, source: &str) -> Result<Vec<Figure>> {
        let rows = sqlx::query(
            "SELECT campus, department, measure, day, total, n, person FROM figure_sources WHERE source = $1 \
             ORDER BY measure, day",
        )
        .bind(source.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(figure).collect()
    }
}

fn figure(r: &AnyRow) -> Result<Figure> {
    Ok(Figure {
        campus: r.try_get(0)?,
        department: r.try_get(1)?,
        measure: r.try_get(2)?,
        day: r.try_get(3)?,
        total: r.try_get(4)?,
        n: r.try_get(5)?,
        person: r.try_get(6)?,
    })
}
