//! Reads: current version, a given version, and history (instance, type, system).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::search::{CURRENT_BODY, CURRENT_COLUMNS};
use crate::sql::{Arg, Sql};
use crate::{Result, Store};

/// One stored version of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResource {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated: i64,
    pub campus: Option<String>,
    /// The patient whose compartment it is in, if any.
    pub patient: Option<String>,
    pub deleted: bool,
    /// The HTTP method that produced this version (history only; empty otherwise).
    pub method: String,
    /// The resource JSON as stored (empty for a deletion).
    pub body: String,
}

#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    pub resource_type: Option<String>,
    pub id: Option<String>,
    /// Only versions written at or after this instant (epoch ms).
    pub since: Option<i64>,
    pub count: usize,
    pub offset: usize,
}

#[derive(Clone, Debug)]
pub struct HistoryPage {
    pub total: i64,
    pub entries: Vec<StoredResource>,
}

fn from_row(row: &AnyRow, with_method: bool) -> Result<StoredResource> {
    Ok(StoredResource {
        resource_type: row.try_get("res_type")?,
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        last_updated: row.try_get("last_updated")?,
        campus: row.try_get("campus")?,
        patient: row.try_get("patient")?,
        deleted: row.try_get::<i64, _>("deleted")? != 0,
        method: if with_method { row.try_get("method")? } else { String::new() },
        body: row.try_get("body")?,
    })
}

pub(crate) fn current_from_row(row: &AnyRow) -> Result<StoredResource> {
    from_row(row, false)
}

impl Store {
    /// The current version, including a deletion marker (`deleted` true).
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        let mut sql = Sql::new(&format!("SELECT {CURRENT_COLUMNS} FROM resources r WHERE r.res_type = "));
        sql.push_bind(Arg::Text(resource_type.to_string()));
        sql.push(" AND r.id = ");
        sql.push_bind(Arg::Text(id.to_string()));
        self.routed_all(&sql).await?.first().map(current_from_row).transpose()
    }

    /// The current versions of several resources (type, id) in one query per 200,
    /// including deletion markers; missing ones are absent from the answer.
    pub async fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(200) {
            let mut sql = crate::sql::Sql::new(&format!("SELECT {CURRENT_COLUMNS} FROM resources r WHERE "));
            for (i, (rtype, id)) in chunk.iter().enumerate() {
                sql.push(if i > 0 { " OR (r.res_type = " } else { "(r.res_type = " });
                sql.push_bind(crate::sql::Arg::Text(rtype.clone()));
                sql.push(" AND r.id = ");
                sql.push_bind(crate::sql::Arg::Text(id.clone()));
                sql.push(")");
            }
            let rows = self.routed_all(&sql).await?;
            out.extend(rows.iter().map(current_from_row).collect::<Result<Vec<_>>>()?);
        }
        Ok(out)
    }

    /// One version from history.
    pub async fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        let mut sql = Sql::new(
            "SELECT res_type, id, version, last_updated, campus, patient, deleted, method, body FROM resource_history \
             WHERE res_type = ",
        );
        sql.push_bind(Arg::Text(resource_type.to_string()));
        sql.push(" AND id = ");
        sql.push_bind(Arg::Text(id.to_string()));
        sql.push(" AND version = ");
        sql.push_bind(Arg::Int(version));
        self.routed_all(&sql).await?.first().map(|r| from_row(r, true)).transpose()
    }

    /// Versions newest first, with the total count for paging.
    pub async fn history(&self, q: &HistoryQuery, scope: &crate::RowScope) -> Result<HistoryPage> {
        let mut filter = Sql::new(" FROM resource_history WHERE 1 = 1");
        if let Some(t) = &q.resource_type {
            filter.push(" AND res_type = ");
            filter.push_bind(Arg::Text(t.clone()));
        }
        if let Some(id) = &q.id {
            filter.push(" AND id = ");
            filter.push_bind(Arg::Text(id.clone()));
        }
        if let Some(since) = q.since {
            filter.push(" AND last_updated >= ");
            filter.push_bind(Arg::Int(since));
        }
        scope.push_conditions(&mut filter, "");
        let mut count = Sql::new("SELECT COUNT(*)");
        count.push(&filter.text);
        count.args = filter.args.clone();
        let total: i64 = self.routed_one(&count).await?.try_get(0)?;

        let mut page = Sql::new("SELECT res_type, id, version, last_updated, campus, patient, deleted, method, body");
        page.push(&filter.text);
        page.args = filter.args;
        page.push(" ORDER BY last_updated DESC, res_type, id, version DESC LIMIT ");
        page.push_bind(Arg::Int(q.count as i64));
        page.push(" OFFSET ");
        page.push_bind(Arg::Int(q.offset as i64));
        let rows = self.routed_all(&page).await?;
        let entries = rows.iter().map(|r| from_row(r, true)).collect::<Result<_>>()?;
        Ok(HistoryPage { total, entries })
    }

    /// Number of live resources per type, for import summaries and the demo banner.
    pub async fn count_by_type(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT res_type, COUNT(*) FROM resources WHERE deleted = 0 GROUP BY res_type ORDER BY res_type",
        )
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}

/// One stored body, as key rotation walks them.
#[derive(Clone, Debug)]
pub struct BodyRow {
    /// `resources` or `resource_history`.
    pub table: &'static str,
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub body: String,
}

impl Store {
    /// The campuses that own directory entries (Organizations): the group's campuses.
    pub async fn campus_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT campus FROM resources WHERE res_type = 'Organization' AND campus IS NOT NULL \
             AND deleted = 0 ORDER BY campus",
        )
        .fetch_all(&self.read_pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Bodies of the given types in key order after `after` (type, id, version),
    /// `limit` at a time: every stored version (`resource_history`), or only the
    /// current ones (`resources`). Bodies live in the history table either way, which
    /// the returned rows name for [`Store::replace_bodies`].
    pub async fn scan_bodies(
        &self,
        table: &'static str,
        types: &[&str],
        after: Option<(String, String, i64)>,
        limit: usize,
    ) -> Result<Vec<BodyRow>> {
        let mut sql = Sql::new(&if table == "resources" {
            format!("SELECT res_type, id, version, {CURRENT_BODY} FROM resources r WHERE res_type IN (")
        } else {
            "SELECT res_type, id, version, body FROM resource_history WHERE res_type IN (".to_string()
        });
        for (i, t) in types.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind(Arg::Text((*t).to_string()));
        }
        sql.push(")");
        if let Some((t, id, v)) = after {
            sql.push(" AND (res_type > ");
            sql.push_bind(Arg::Text(t.clone()));
            sql.push(" OR (res_type = ");
            sql.push_bind(Arg::Text(t));
            sql.push(" AND (id > ");
            sql.push_bind(Arg::Text(id.clone()));
            sql.push(" OR (id = ");
            sql.push_bind(Arg::Text(id));
            sql.push(" AND version > ");
            sql.push_bind(Arg::Int(v));
            sql.push("))))");
        }
        sql.push(" ORDER BY res_type, id, version LIMIT ");
        sql.push_bind(Arg::Int(limit as i64));
        let rows = sql.query(self.backend).fetch_all(&self.read_pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(BodyRow {
                    table: "resource_history",
                    resource_type: r.try_get(0)?,
                    id: r.try_get(1)?,
                    version: r.try_get(2)?,
                    body: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Replaces bodies in one transaction, each at exactly its scanned version (a
    /// concurrent update writes a new version and wins). Returns rows changed.
    pub async fn replace_bodies(&self, rows: &[BodyRow]) -> Result<u64> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        let mut n = 0;
        for r in rows {
            let sql = format!("UPDATE {} SET body = $1 WHERE res_type = $2 AND id = $3 AND version = $4", r.table);
            let res = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(r.body.clone())
                .bind(r.resource_type.clone())
                .bind(r.id.clone())
                .bind(r.version)
                .execute(&mut *tx)
                .await?;
            n += res.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}
