//! Copying a whole installation into another database (SQLite to PostgreSQL, or back):
//! every table a backup's manifest accounts for, a batch at a time in each table's
//! key order, each batch committed in the target together with how far it got (the
//! `lianyi_copy_progress` table), so an interrupted copy resumes where it stopped.
//!
//! The target must be empty: the copy creates its progress table first, then the
//! schema, then empties what the migrations seeded. Tables are filled parents first
//! (by the target's foreign keys). The derived full-text tables are not copied (their
//! services rebuild them from the copied rows), and the id counters (PostgreSQL's
//! sequences, SQLite's `sqlite_sequence`) are carried over so no id is handed out
//! twice. The progress table stays until [`Store::finish_copy`]; a server does not
//! start on a database that holds it.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::backup::{Kind, accounted, quoted, shape_on, tables_on};
use crate::sql::{Arg, Sql, joined, multi_insert};
use crate::{Backend, Result, Store, StoreError};

/// The target's record of an unfinished copy: one row per table (`*` for the copy
/// itself, `done` once the target was emptied for it).
pub const PROGRESS: &str = "lianyi_copy_progress";

/// Rows read and written per batch (one target transaction each).
const BATCH: i64 = 2_000;

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub tables: usize,
    pub rows: i64,
    /// Whether it went on from an interrupted copy.
    pub resumed: bool,
}

/// PostgreSQL pages (8 KiB each) read per batch of a table without a primary key.
const BLOCKS: i64 = 32;

/// How a table is walked on the source: by its primary key; by SQLite's rowid; or,
/// for a PostgreSQL table without a primary key, by ranges of its pages (a TID range
/// scan reads just those pages, where `ORDER BY ctid` would sort the rest of the
/// table for every batch). A position is kept as a JSON array.
enum Walk {
    Key(Vec<(String, Kind)>),
    RowId,
    /// The table's pages when the walk began.
    Pages(i64),
}

impl Walk {
    /// The batch after `last` (none: the first), and whether it is the last batch
    /// when it is known before reading it.
    fn batch(&self, columns: &str, table: &str, last: Option<&serde_json::Value>) -> Result<(Sql, Option<bool>)> {
        let values = match last {
            Some(v) => v
                .as_array()
                .ok_or_else(|| StoreError::Corrupt("copy progress: a position is not a list".into()))?
                .clone(),
            None => Vec::new(),
        };
        let arg = |v: &serde_json::Value| -> Result<Arg> {
            match v {
                serde_json::Value::String(s) => Ok(Arg::Text(s.clone())),
                serde_json::Value::Number(n) if n.is_i64() => Ok(Arg::Int(n.as_i64().unwrap_or_default())),
                serde_json::Value::Number(n) => Ok(Arg::Float(n.as_f64().unwrap_or_default())),
                _ => Err(StoreError::Corrupt("copy progress: a position holds neither a number nor text".into())),
            }
        };
        match self {
            Walk::Key(key) => {
                let names: Vec<String> = key.iter().map(|(n, _)| quoted(n)).collect();
                let mut sql = Sql::new(&format!("SELECT {columns} FROM {}", quoted(table)));
                if last.is_some() {
                    if key.len() != values.len() {
                        return Err(StoreError::Corrupt("copy progress: the key's length changed".into()));
                    }
                    sql.push(&format!(" WHERE ({}) > (", names.join(", ")));
                    for (i, v) in values.iter().enumerate() {
                        if i > 0 {
                            sql.push(", ");
                        }
                        sql.push_bind(arg(v)?);
                    }
                    sql.push(")");
                }
                sql.push(&format!(" ORDER BY {} LIMIT {BATCH}", names.join(", ")));
                Ok((sql, None))
            }
            Walk::RowId => {
                let mut sql = Sql::new(&format!("SELECT {columns}, rowid FROM {}", quoted(table)));
                if let Some(v) = values.first() {
                    sql.push(" WHERE rowid > ");
                    sql.push_bind(arg(v)?);
                }
                sql.push(&format!(" ORDER BY rowid LIMIT {BATCH}"));
                Ok((sql, None))
            }
            Walk::Pages(total) => {
                let from = values.first().and_then(serde_json::Value::as_i64).unwrap_or(0);
                let mut sql = Sql::new(&format!("SELECT {columns} FROM {} WHERE ctid >= ", quoted(table)));
                sql.push_bind(Arg::Text(format!("({from},0)")));
                sql.push("::tid AND ctid < ");
                sql.push_bind(Arg::Text(format!("({},0)", from + BLOCKS)));
                sql.push("::tid");
                Ok((sql, Some(from + BLOCKS >= *total)))
            }
        }
    }

    /// The position after a batch whose last row is `row` (read with `columns`).
    fn next(
        &self,
        last: Option<&serde_json::Value>,
        row: Option<&AnyRow>,
        columns: &[(String, Kind)],
    ) -> Result<serde_json::Value> {
        if let Walk::Pages(_) = self {
            let from = last.and_then(|v| v.get(0)).and_then(serde_json::Value::as_i64).unwrap_or(0);
            return Ok(serde_json::json!([from + BLOCKS]));
        }
        let Some(row) = row else {
            return Ok(last.cloned().unwrap_or(serde_json::Value::Null));
        };
        let value = |i: usize, kind: Kind| -> Result<serde_json::Value> {
            Ok(match kind {
                Kind::Int => row.try_get::<Option<i64>, _>(i)?.map_or(serde_json::Value::Null, Into::into),
                Kind::Real => row.try_get::<Option<f64>, _>(i)?.map_or(serde_json::Value::Null, Into::into),
                Kind::Text => row.try_get::<Option<String>, _>(i)?.map_or(serde_json::Value::Null, Into::into),
            })
        };
        match self {
            Walk::Key(key) => {
                let mut out = Vec::new();
                for (name, kind) in key {
                    let i = columns.iter().position(|(n, _)| n == name).unwrap_or_default();
                    out.push(value(i, *kind)?);
                }
                Ok(serde_json::Value::Array(out))
            }
            _ => Ok(serde_json::json!([value(columns.len(), Kind::Int)?])),
        }
    }
}

/// The value of column `i` of `row`, to bind.
fn value(row: &AnyRow, i: usize, kind: Kind) -> Result<Arg> {
    Ok(match kind {
        Kind::Int => Arg::OptInt(row.try_get(i)?),
        Kind::Real => Arg::OptFloat(row.try_get(i)?),
        Kind::Text => Arg::OptText(row.try_get(i)?),
    })
}

/// The last id each table's counter handed out: SQLite's `sqlite_sequence`, or each
/// PostgreSQL serial column's sequence (none for a sequence never used).
async fn counters_on(conn: &mut AnyConnection, backend: Backend) -> Result<BTreeMap<String, i64>> {
    let sql = match backend {
        Backend::Sqlite => {
            if !tables_on(conn, backend).await?.iter().any(|t| t == "sqlite_sequence") {
                return Ok(BTreeMap::new());
            }
            "SELECT name, seq FROM sqlite_sequence"
        }
        Backend::Postgres => {
            "SELECT table_name::text, pg_sequence_last_value(pg_get_serial_sequence(\
             'public.' || quote_ident(table_name::text), column_name::text)::regclass) \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND column_default LIKE 'nextval(%'"
        }
    };
    let mut out = BTreeMap::new();
    for row in sqlx::query(sql).fetch_all(&mut *conn).await? {
        if let Some(v) = row.try_get::<Option<i64>, _>(1)? {
            out.insert(row.try_get::<String, _>(0)?, v);
        }
    }
    Ok(out)
}

/// Each table's parents by the database's foreign keys (other tables only).
async fn parents_on(
    conn: &mut AnyConnection,
    backend: Backend,
    tables: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match backend {
        Backend::Sqlite => {
            for t in tables {
                let sql = format!("SELECT \"table\" FROM pragma_foreign_key_list('{}')", t.replace('\'', "''"));
                for row in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await? {
                    out.entry(t.clone()).or_default().push(row.try_get(0)?);
                }
            }
        }
        Backend::Postgres => {
            let rows = sqlx::query(
                "SELECT child.relname::text, parent.relname::text FROM pg_constraint c \
                 JOIN pg_class child ON child.oid = c.conrelid JOIN pg_class parent ON parent.oid = c.confrelid \
                 JOIN pg_namespace n ON n.oid = child.relnamespace WHERE c.contype = 'f' AND n.nspname = 'public'",
            )
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                out.entry(row.try_get(0)?).or_default().push(row.try_get(1)?);
            }
        }
    }
    Ok(out)
}

/// `tables` with every table after its parents (ties by name).
fn parents_first(tables: &[String], parents: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>> {
    let mut left: BTreeSet<&String> = tables.iter().collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let ready = left
            .iter()
            .find(|t| parents.get(t.as_str()).is_none_or(|ps| ps.iter().all(|p| p == t.as_str() || !left.contains(p))))
            .copied()
            .ok_or_else(|| StoreError::Refused("the tables' foreign keys go round in a circle".into()))?;
        left.remove(ready);
        out.push(ready.clone());
    }
    Ok(out)
}

impl Store {
    /// Each accounted table's row count (what a copy has to move).
    pub async fn row_counts(&self) -> Result<Vec<(String, i64)>> {
        let mut conn = self.read_pool().acquire().await?;
        let mut out = Vec::new();
        for t in tables_on(&mut conn, self.backend).await?.into_iter().filter(|t| accounted(t)) {
            let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", quoted(&t))))
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            out.push((t, n));
        }
        Ok(out)
    }

    /// Where an unfinished copy into this database came from, if one is there.
    pub async fn unfinished_copy(&self) -> Result<Option<String>> {
        if !self.table_names().await?.iter().any(|t| t == PROGRESS) {
            return Ok(None);
        }
        let sql = format!("SELECT source FROM {PROGRESS} WHERE tbl = '*'");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(&self.read_pool()).await?;
        Ok(Some(row.map(|r| r.try_get::<String, _>(0)).transpose()?.unwrap_or_default()))
    }

    /// Copies every accounted table of `source` (its description `label`, which a
    /// resumed copy must repeat) into this database, which must be empty or hold an
    /// unfinished copy of the same source. `progress` is told each table's rows as
    /// they are copied (a resumed table's earlier rows first). The copy is finished by
    /// [`Store::finish_copy`], once the derived tables are rebuilt.
    pub async fn copy_from(
        &self,
        source: &Store,
        label: &str,
        progress: &(dyn Fn(&str, i64) + Sync),
    ) -> Result<Copied> {
        let (have, want) = (source.schema_version().await?, crate::migrate::latest());
        if have != want {
            return Err(StoreError::Refused(if have < want {
                format!(
                    "the source is at schema version {have}, this lianyi's is {want}: run lianyi migrate on it first"
                )
            } else {
                format!("the source is at schema version {have}, newer than this lianyi's {want}")
            }));
        }
        let resumed = self.open_copy(label).await?;
        let mut src = source.read_pool().acquire().await?;
        let from: Vec<String> =
            tables_on(&mut src, source.backend).await?.into_iter().filter(|t| accounted(t)).collect();
        let cleared = self.copy_cleared().await?;
        if !cleared {
            self.migrate_schema().await?;
        }
        let mut dst = self.write_pool().acquire().await?;
        let to: Vec<String> = tables_on(&mut dst, self.backend).await?.into_iter().filter(|t| accounted(t)).collect();
        if from != to {
            let only = |a: &[String], b: &[String]| a.iter().filter(|t| !b.contains(t)).cloned().collect::<Vec<_>>();
            return Err(StoreError::Refused(format!(
                "the two databases have different tables (only in the source: {:?}; only in the target: {:?})",
                only(&from, &to),
                only(&to, &from)
            )));
        }
        let order = parents_first(&to, &parents_on(&mut dst, self.backend, &to).await?)?;
        drop(dst);
        if !cleared {
            self.clear_for_copy(&order).await?;
        }
        let mut rows = 0;
        for table in &order {
            rows += self.copy_table(&mut src, source.backend, table, progress).await?;
        }
        self.carry_counters(&counters_on(&mut src, source.backend).await?).await?;
        Ok(Copied { tables: order.len(), rows, resumed })
    }

    /// Ends a copy: drops its progress table.
    pub async fn finish_copy(&self) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {PROGRESS}")))
            .execute(&self.write_pool())
            .await?;
        Ok(())
    }

    /// Starts or resumes a copy from `label`; returns whether it resumes one.
    async fn open_copy(&self, label: &str) -> Result<bool> {
        let tables = self.table_names().await?;
        if tables.iter().any(|t| t == PROGRESS) {
            let from = self.unfinished_copy().await?.unwrap_or_default();
            if from != label {
                return Err(StoreError::Refused(format!(
                    "the target holds an unfinished copy from {from}: finish that copy, or start over on an empty database"
                )));
            }
            return Ok(true);
        }
        if !tables.is_empty() {
            return Err(StoreError::Refused(format!(
                "the target holds {} tables: a copy writes only into an empty database",
                tables.len()
            )));
        }
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {PROGRESS} (tbl TEXT PRIMARY KEY, source TEXT NOT NULL, last_key TEXT, \
             copied BIGINT NOT NULL, done BIGINT NOT NULL)"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {PROGRESS} (tbl, source, copied, done) VALUES ('*', $1, 0, 0)"
        )))
        .bind(label.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(false)
    }

    async fn copy_cleared(&self) -> Result<bool> {
        let sql = format!("SELECT done FROM {PROGRESS} WHERE tbl = '*'");
        let done: i64 = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&self.write_pool()).await?.try_get(0)?;
        Ok(done == 1)
    }

    /// Empties what the migrations seeded (children first) and notes each table to
    /// copy, in one transaction; `order` has every table after its parents.
    async fn clear_for_copy(&self, order: &[String]) -> Result<()> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        for t in order.iter().rev() {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", quoted(t)))).execute(&mut *tx).await?;
        }
        for t in order {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {PROGRESS} (tbl, source, copied, done) SELECT $1, source, 0, 0 FROM {PROGRESS} WHERE tbl = '*'"
            )))
            .bind(t.clone())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {PROGRESS} SET done = 1 WHERE tbl = '*'")))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Copies what is left of `table`; returns its rows in the target.
    async fn copy_table(
        &self,
        src: &mut AnyConnection,
        from: Backend,
        table: &str,
        progress: &(dyn Fn(&str, i64) + Sync),
    ) -> Result<i64> {
        let sql = format!("SELECT last_key, copied, done FROM {PROGRESS} WHERE tbl = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(table.to_string()).fetch_one(&self.write_pool()).await?;
        let (last, mut copied, done): (Option<String>, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        progress(table, copied);
        if done == 1 {
            return Ok(copied);
        }
        let shape = shape_on(&mut *src, from, table).await?;
        let theirs = {
            let mut conn = self.write_pool().acquire().await?;
            shape_on(&mut conn, self.backend, table).await?
        };
        if shape.columns != theirs.columns {
            return Err(StoreError::Refused(format!("table {table}: its columns differ between the two databases")));
        }
        let walk = if shape.primary {
            Walk::Key(shape.key.iter().filter_map(|k| shape.columns.iter().find(|(n, _)| n == k).cloned()).collect())
        } else if from == Backend::Sqlite {
            Walk::RowId
        } else {
            let pages: i64 = sqlx::query(
                "SELECT pg_relation_size('public.' || quote_ident($1)) / current_setting('block_size')::bigint",
            )
            .bind(table.to_string())
            .fetch_one(&mut *src)
            .await?
            .try_get(0)?;
            Walk::Pages(pages)
        };
        let names: Vec<String> = shape.columns.iter().map(|(n, _)| quoted(n)).collect();
        let mut last: Option<serde_json::Value> = match last {
            Some(text) => {
                Some(serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("copy progress: {e}")))?)
            }
            None => None,
        };
        loop {
            let (sql, known_end) = walk.batch(&names.join(", "), table, last.as_ref())?;
            let rows = sql.query(from).fetch_all(&mut *src).await?;
            let n = rows.len() as i64;
            let end = known_end.unwrap_or(n < BATCH);
            let mut values = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut one = Vec::with_capacity(shape.columns.len());
                for (i, (_, kind)) in shape.columns.iter().enumerate() {
                    one.push(value(row, i, *kind)?);
                }
                values.push(one);
            }
            let next = walk.next(last.as_ref(), rows.last(), &shape.columns)?;
            let cols: Vec<&str> = names.iter().map(String::as_str).collect();
            let inserts = joined(self.backend, multi_insert(&quoted(table), &cols, values, self.backend.max_params()));
            let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
            for s in &inserts {
                s.query(self.backend).execute(&mut *tx).await?;
            }
            let mut note = Sql::new(&format!("UPDATE {PROGRESS} SET last_key = "));
            note.push_bind(Arg::Text(next.to_string()));
            note.push(", copied = copied + ");
            note.push_bind(Arg::Int(n));
            note.push(", done = ");
            note.push_bind(Arg::Int(i64::from(end)));
            note.push(" WHERE tbl = ");
            note.push_bind(Arg::Text(table.to_string()));
            note.query(self.backend).execute(&mut *tx).await?;
            tx.commit().await?;
            copied += n;
            last = Some(next);
            progress(table, n);
            if end {
                return Ok(copied);
            }
        }
    }

    /// Sets each table's id counter past both its highest id and the source's counter.
    async fn carry_counters(&self, source: &BTreeMap<String, i64>) -> Result<()> {
        let mut conn = self.write_pool().acquire().await?;
        match self.backend {
            Backend::Postgres => {
                let rows = sqlx::query(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns \
                     WHERE table_schema = 'public' AND column_default LIKE 'nextval(%'",
                )
                .fetch_all(&mut *conn)
                .await?;
                for row in rows {
                    let (table, column): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                    let max: Option<i64> = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT MAX({}) FROM {}",
                        quoted(&column),
                        quoted(&table)
                    )))
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
                    let last = max.unwrap_or(0).max(source.get(&table).copied().unwrap_or(0));
                    sqlx::query(
                        "SELECT setval(pg_get_serial_sequence('public.' || quote_ident($1), $2), $3, $4)::bigint",
                    )
                    .bind(table)
                    .bind(column)
                    .bind(last.max(1))
                    .bind(last > 0)
                    .fetch_one(&mut *conn)
                    .await?;
                }
            }
            Backend::Sqlite => {
                let mine = counters_on(&mut conn, Backend::Sqlite).await?;
                let auto: Vec<String> =
                    sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'")
                        .fetch_all(&mut *conn)
                        .await?
                        .iter()
                        .map(|r| r.try_get(0))
                        .collect::<std::result::Result<_, _>>()?;
                for table in auto {
                    let want = source.get(&table).copied().unwrap_or(0);
                    match mine.get(&table) {
                        Some(have) if *have >= want => {}
                        Some(_) => {
                            sqlx::query("UPDATE sqlite_sequence SET seq = $1 WHERE name = $2")
                                .bind(want)
                                .bind(table)
                                .execute(&mut *conn)
                                .await?;
                        }
                        None if want > 0 => {
                            sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ($1, $2)")
                                .bind(table)
                                .bind(want)
                                .execute(&mut *conn)
                                .await?;
                        }
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::parents_first;

    #[test]
    fn parents_come_before_their_children() {
        let tables: Vec<String> = ["a_child", "b", "c_parent", "d_grandchild"].map(String::from).into();
        let parents = BTreeMap::from([
            ("a_child".to_string(), vec!["c_parent".to_string()]),
            ("d_grandchild".to_string(), vec!["a_child".to_string(), "d_grandchild".to_string()]),
        ]);
        assert_eq!(parents_first(&tables, &parents).unwrap_or_default(), ["b", "c_parent", "a_child", "d_grandchild"]);
        let circle = BTreeMap::from([
            ("b".to_string(), vec!["c_parent".to_string()]),
            ("c_parent".to_string(), vec!["b".to_string()]),
        ]);
        assert!(parents_first(&tables, &circle).is_err());
    }
}
