//! What a backup needs from the database: a consistent copy (SQLite's `VACUUM INTO`,
//! or a PostgreSQL snapshot that `pg_dump --snapshot` and this process read alike),
//! and each table's row count and content hash, the same on both backends so a
//! backup, its restore and a copy to the other backend are checked by one manifest.
//!
//! A table's hash runs over its rows in primary-key order (byte order for text, on
//! PostgreSQL too): `h₀ = digest(table name)`, `hₙ = digest(hₙ₋₁ ‖ row n)`, each row
//! its columns in name order, each value tagged with its kind (null, integer, real,
//! text). The derived full-text tables (rebuilt from their sources) and the migration
//! ledger (when each step ran differs between installations) are not hashed.

use std::path::Path;

use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::audit::ChainHasher;
use crate::{Backend, Result, Store, StoreError};

/// One table of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSum {
    pub table: String,
    pub rows: i64,
    /// Lower-case hex.
    pub hash: String,
}

/// An instance file the imaging index names: its path under the imaging folder and
/// its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceFile {
    pub file: String,
    pub bytes: i64,
}

async fn instance_files_on(conn: &mut AnyConnection) -> Result<Vec<InstanceFile>> {
    let rows = sqlx::query("SELECT file, bytes FROM imaging_instances ORDER BY file").fetch_all(&mut *conn).await?;
    rows.iter().map(|r| Ok(InstanceFile { file: r.try_get(0)?, bytes: r.try_get(1)? })).collect()
}

/// How a column's values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Real,
    Text,
}

/// A table's columns (name order) and primary key (key order; every column, in name
/// order, for a table without one).
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    pub columns: Vec<(String, Kind)>,
    pub key: Vec<String>,
    /// Whether `key` is the table's primary key.
    pub primary: bool,
}

/// Whether `table` is hashed: not SQLite's own, not derived full-text search, not the
/// migration ledger.
pub(crate) fn accounted(table: &str) -> bool {
    !(table.starts_with("sqlite_")
        || table == "schema_migrations"
        || table == crate::copy::PROGRESS
        || table == "ops_kb_search"
        || table == "ops_ticket_search"
        || table.starts_with("ops_kb_search_")
        || table.starts_with("ops_ticket_search_"))
}

fn kind_of(declared: &str) -> Option<Kind> {
    let d = declared.to_ascii_lowercase();
    if d.contains("int") || d == "bigserial" || d == "serial" {
        Some(Kind::Int)
    } else if d.contains("real") || d.contains("double") || d.contains("float") {
        Some(Kind::Real)
    } else if d.contains("text") || d.contains("char") || d.is_empty() {
        Some(Kind::Text)
    } else {
        None
    }
}

/// A PostgreSQL read-only transaction whose snapshot is exported under [`Self::id`],
/// for `pg_dump --snapshot` to dump exactly what [`Self::sums`] hashes.
pub struct Snapshot {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    pub id: String,
}

impl Snapshot {
    /// The manifest of the snapshot.
    pub async fn sums(&mut self, hasher: &dyn ChainHasher, progress: &(dyn Fn(&str) + Sync)) -> Result<Vec<TableSum>> {
        sums_on(&mut self.tx, Backend::Postgres, hasher, progress).await
    }

    /// The audit chain's head in the snapshot.
    pub async fn audit_head(&mut self) -> Result<(i64, String)> {
        crate::audit::head_on(&mut self.tx).await
    }

    /// The instance files the snapshot's imaging index names.
    pub async fn instance_files(&mut self) -> Result<Vec<InstanceFile>> {
        instance_files_on(&mut self.tx).await
    }

    /// Ends the transaction (the snapshot may no longer be imported after this).
    pub async fn finish(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Writes a consistent copy of a SQLite database to `dest` (which must not exist),
    /// while writers go on.
    pub async fn vacuum_into(&self, dest: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Refused("VACUUM INTO is SQLite's".into()));
        }
        let path = dest.to_str().ok_or_else(|| StoreError::Refused("the backup path is not UTF-8".into()))?;
        let sql = format!("VACUUM INTO '{}'", path.replace('\'', "''"));
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&self.write_pool()).await?;
        Ok(())
    }

    /// Opens a PostgreSQL snapshot for a backup (see [`Snapshot`]).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        if self.backend != Backend::Postgres {
            return Err(StoreError::Refused("exported snapshots are PostgreSQL's".into()));
        }
        let mut tx = self.read_pool().begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let id: String = sqlx::query("SELECT pg_export_snapshot()").fetch_one(&mut *tx).await?.try_get(0)?;
        Ok(Snapshot { tx, id })
    }

    /// Every accounted table's row count and content hash, from one consistent read.
    pub async fn table_sums(
        &self,
        hasher: &dyn ChainHasher,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<TableSum>> {
        let begin = match self.backend {
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            Backend::Sqlite => "BEGIN",
        };
        let mut tx = self.read_pool().begin_with(begin).await?;
        let sums = sums_on(&mut tx, self.backend, hasher, progress).await?;
        tx.commit().await?;
        Ok(sums)
    }

    /// The instance files the imaging index names (a backup packs them; a restore's
    /// check finds each one).
    pub async fn instance_files(&self) -> Result<Vec<InstanceFile>> {
        let mut conn = self.read_pool().acquire().await?;
        instance_files_on(&mut conn).await
    }

    /// The names of the tables in the database (an empty database has none).
    pub async fn table_names(&self) -> Result<Vec<String>> {
        let mut conn = self.read_pool().acquire().await?;
        tables_on(&mut conn, self.backend).await
    }

    /// Creates PostgreSQL database `name` (lower-case letters, digits and `_`) on this
    /// server, for a scratch restore.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        self.admin(&format!("CREATE DATABASE {}", identifier(name)?)).await
    }

    /// Drops PostgreSQL database `name`, ending its sessions.
    pub async fn drop_database(&self, name: &str) -> Result<()> {
        self.admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", identifier(name)?)).await
    }

    async fn admin(&self, sql: &str) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Err(StoreError::Refused("databases are created on PostgreSQL".into()));
        }
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&self.write_pool()).await?;
        Ok(())
    }

    /// The highest schema migration applied (0 before any).
    pub async fn schema_version(&self) -> Result<i64> {
        if !self.table_names().await?.iter().any(|t| t == "schema_migrations") {
            return Ok(0);
        }
        let v: Option<i64> =
            sqlx::query("SELECT MAX(version) FROM schema_migrations").fetch_one(&self.read_pool()).await?.try_get(0)?;
        Ok(v.unwrap_or(0))
    }
}

/// One backup run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupRun {
    pub id: i64,
    /// `scheduled`, `manual` or `drill`.
    pub kind: String,
    pub actor: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running`, `ok` or `failed`.
    pub status: String,
    pub file: Option<String>,
    pub bytes: Option<i64>,
    pub tables: Option<i64>,
    pub row_count: Option<i64>,
    /// The imaging folder's instance files it packed, and their bytes.
    pub image_files: Option<i64>,
    pub image_bytes: Option<i64>,
    /// Where its off-site copy went.
    pub offsite: Option<String>,
    pub error: Option<String>,
}

const RUN_COLUMNS: &str = "id, kind, actor, started_at, finished_at, status, file, bytes, tables, row_count, offsite, error, \
     image_files, image_bytes";

fn run_of(r: &AnyRow) -> Result<BackupRun> {
    Ok(BackupRun {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        actor: r.try_get(2)?,
        started_at: r.try_get(3)?,
        finished_at: r.try_get(4)?,
        status: r.try_get(5)?,
        file: r.try_get(6)?,
        bytes: r.try_get(7)?,
        tables: r.try_get(8)?,
        row_count: r.try_get(9)?,
        offsite: r.try_get(10)?,
        error: r.try_get(11)?,
        image_files: r.try_get(12)?,
        image_bytes: r.try_get(13)?,
    })
}

impl Store {
    /// Records a run that starts now; returns its id.
    pub async fn backup_started(&self, kind: &str, actor: &str, at: i64) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO backup_runs (kind, actor, started_at, status) VALUES ($1, $2, $3, 'running') RETURNING id",
        )
        .bind(kind)
        .bind(actor)
        .bind(at)
        .fetch_one(&self.write_pool())
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Records how run `run.id` ended.
    pub async fn backup_finished(&self, run: &BackupRun) -> Result<()> {
        sqlx::query(
            "UPDATE backup_runs SET finished_at = $1, status = $2, file = $3, bytes = $4, tables = $5, \
             row_count = $6, offsite = $7, error = $8, image_files = $9, image_bytes = $10 WHERE id = $11",
        )
        .bind(run.finished_at)
        .bind(&run.status)
        .bind(&run.file)
        .bind(run.bytes)
        .bind(run.tables)
        .bind(run.row_count)
        .bind(&run.offsite)
        .bind(&run.error)
        .bind(run.image_files)
        .bind(run.image_bytes)
        .bind(run.id)
        .execute(&self.write_pool())
        .await?;
        Ok(())
    }

    /// Marks the runs still `running` as `interrupted` (their process ended before they
    /// finished); returns how many.
    pub async fn backups_interrupted(&self, at: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE backup_runs SET status = 'interrupted', finished_at = $1, \
             error = 'the backup ended before it finished (the process was stopped)' WHERE status = 'running'",
        )
        .bind(at)
        .execute(&self.write_pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The latest runs, newest first.
    pub async fn backup_runs(&self, limit: i64) -> Result<Vec<BackupRun>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM backup_runs ORDER BY started_at DESC, id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter().map(run_of).collect()
    }

    /// The newest run that ended well (a drill's counts too: its backup is kept).
    pub async fn last_good_backup(&self) -> Result<Option<BackupRun>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM backup_runs WHERE status = 'ok' ORDER BY finished_at DESC LIMIT 1"
        )))
        .fetch_optional(&self.read_pool())
        .await?;
        row.as_ref().map(run_of).transpose()
    }
}

pub(crate) async fn tables_on(conn: &mut AnyConnection, backend: Backend) -> Result<Vec<String>> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        Backend::Postgres => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        }
    };
    let rows = sqlx::query(sql).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| r.try_get::<String, _>(0).map_err(StoreError::from)).collect()
}

pub(crate) async fn shape_on(conn: &mut AnyConnection, backend: Backend, table: &str) -> Result<Shape> {
    let mut columns = Vec::new();
    let mut key: Vec<(i64, String)> = Vec::new();
    match backend {
        Backend::Sqlite => {
            let sql = format!("SELECT name, type, pk FROM pragma_table_info('{}')", table.replace('\'', "''"));
            for row in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await? {
                let (name, declared, pk): (String, String, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                columns.push((name.clone(), declared));
                if pk > 0 {
                    key.push((pk, name));
                }
            }
        }
        Backend::Postgres => {
            let rows = sqlx::query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                columns.push((row.try_get(0)?, row.try_get(1)?));
            }
            let rows = sqlx::query(
                "SELECT a.attname::text, array_position(i.indkey::int2[], a.attnum)::bigint \
                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = ('public.' || quote_ident($1))::regclass AND i.indisprimary",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                key.push((row.try_get(1)?, row.try_get(0)?));
            }
        }
    }
    let mut typed = Vec::new();
    for (name, declared) in columns {
        let kind = kind_of(&declared).ok_or_else(|| {
            StoreError::Refused(format!(
                "table {table}: column {name} is of type {declared}, which a backup cannot hash"
            ))
        })?;
        typed.push((name, kind));
    }
    typed.sort_by(|a, b| a.0.cmp(&b.0));
    key.sort();
    let primary = !key.is_empty();
    let key = if primary {
        key.into_iter().map(|(_, n)| n).collect()
    } else {
        typed.iter().map(|(n, _)| n.clone()).collect()
    };
    Ok(Shape { columns: typed, key, primary })
}

fn identifier(name: &str) -> Result<&str> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        Ok(name)
    } else {
        Err(StoreError::Refused(format!("database name {name}: lower-case letters, digits and _ only")))
    }
}

pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Appends one value, tagged with its kind.
fn encode(row: &AnyRow, i: usize, kind: Kind, out: &mut Vec<u8>) -> Result<()> {
    match kind {
        Kind::Int => match row.try_get::<Option<i64>, _>(i)? {
            None => out.push(b'N'),
            Some(v) => {
                out.push(b'I');
                out.extend_from_slice(&v.to_be_bytes());
            }
        },
        Kind::Real => match row.try_get::<Option<f64>, _>(i)? {
            None => out.push(b'N'),
            Some(v) => {
                out.push(b'R');
                out.extend_from_slice(&v.to_bits().to_be_bytes());
            }
        },
        Kind::Text => match row.try_get::<Option<String>, _>(i)? {
            None => out.push(b'N'),
            Some(v) => {
                out.push(b'T');
                out.extend_from_slice(&(v.len() as u64).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
        },
    }
    Ok(())
}

async fn sums_on(
    conn: &mut AnyConnection,
    backend: Backend,
    hasher: &dyn ChainHasher,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<TableSum>> {
    let mut out = Vec::new();
    for table in tables_on(conn, backend).await?.into_iter().filter(|t| accounted(t)) {
        progress(&table);
        let shape = shape_on(conn, backend, &table).await?;
        let select: Vec<String> = shape.columns.iter().map(|(n, _)| quoted(n)).collect();
        let order: Vec<String> = shape
            .key
            .iter()
            .map(|k| {
                let text = shape.columns.iter().any(|(n, kind)| n == k && *kind == Kind::Text);
                if text && backend == Backend::Postgres { format!("{} COLLATE \"C\"", quoted(k)) } else { quoted(k) }
            })
            .collect();
        let sql = format!("SELECT {} FROM {} ORDER BY {}", select.join(", "), quoted(&table), order.join(", "));
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
        let mut hash = hasher.hex_digest(table.as_bytes());
        let mut count = 0i64;
        let mut buf = Vec::with_capacity(4096);
        while let Some(row) = rows.try_next().await? {
            buf.clear();
            buf.extend_from_slice(hash.as_bytes());
            for (i, (_, kind)) in shape.columns.iter().enumerate() {
                encode(&row, i, *kind, &mut buf)?;
            }
            hash = hasher.hex_digest(&buf);
            count += 1;
        }
        drop(rows);
        out.push(TableSum { table, rows: count, hash });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{Kind, accounted, kind_of};

    #[test]
    fn derived_search_tables_and_the_migration_ledger_are_not_hashed() {
        for t in ["resources", "audit_log", "ops_cis", "ops_kb_articles"] {
            assert!(accounted(t), "{t}");
        }
        for t in
            ["schema_migrations", "ops_kb_search", "ops_kb_search_data", "ops_ticket_search_idx", "sqlite_sequence"]
        {
            assert!(!accounted(t), "{t}");
        }
        assert_eq!(kind_of("BIGINT"), Some(Kind::Int));
        assert_eq!(kind_of("double precision"), Some(Kind::Real));
        assert_eq!(kind_of("character varying"), Some(Kind::Text));
        assert_eq!(kind_of("tsvector"), None);
    }
}
