//! The IT knowledge base's tables (not health data): each article's current state,
//! every version of its text, and a full-text index of the current version. The
//! store does not segment text: the caller hands over the words already cut (jieba
//! for Chinese) and joined by spaces, and the store indexes them — SQLite in an FTS5
//! table with the `unicode61` tokenizer, PostgreSQL in a `simple` tsvector with a
//! GIN index — so a two-character word such as 打印 is one token on both.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::{Arg, Sql};
use crate::{Backend, Result, Store, StoreError};

/// An article as stored: what lists show, without the text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Article {
    pub id: i64,
    /// The number of its current text version.
    pub latest: i64,
    pub title: String,
    /// The CI class it applies to.
    pub ci_class: Option<String>,
    /// What it was written from (`incident:12`, `problem:3`).
    pub source: Option<String>,
    /// `published` or `retired`.
    pub status: String,
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub updated_by: String,
    /// Bumped by every change (a new text or a new status), for optimistic locking.
    pub version: i64,
}

/// One version of an article's text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text {
    pub version: i64,
    pub title: String,
    pub symptom: String,
    pub cause: String,
    pub solution: String,
    pub ci_class: Option<String>,
    pub author: String,
    pub at: i64,
    /// Why this version was written.
    pub note: Option<String>,
    /// What this version was written from (`incident:12`), if anything.
    pub source: Option<String>,
}

/// Which articles a list or search returns.
#[derive(Clone, Debug, Default)]
pub struct KbQuery {
    /// Words already segmented and lowercased (letters and digits only); none: the
    /// newest articles.
    pub words: Vec<String>,
    /// Any word rather than every word.
    pub any: bool,
    pub ci_class: Option<String>,
    /// Retired articles too.
    pub retired: bool,
    pub limit: i64,
}

const ARTICLE: &str = "a.id, a.latest, a.title, a.ci_class, a.source, a.status, a.author, a.created_at, a.updated_at, a.updated_by, \
     a.version";
const TEXT: &str = "v.version, v.title, v.symptom, v.cause, v.solution, v.ci_class, v.author, v.at, v.note, v.source";

fn article_from(r: &AnyRow) -> Result<Article> {
    Ok(Article {
        id: r.try_get(0)?,
        latest: r.try_get(1)?,
        title: r.try_get(2)?,
        ci_class: r.try_get(3)?,
        source: r.try_get(4)?,
        status: r.try_get(5)?,
        author: r.try_get(6)?,
        created_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
        updated_by: r.try_get(9)?,
        version: r.try_get(10)?,
    })
}

/// A text from the row's columns starting at `at`.
fn text_from(r: &AnyRow, at: usize) -> Result<Text> {
    Ok(Text {
        version: r.try_get(at)?,
        title: r.try_get(at + 1)?,
        symptom: r.try_get(at + 2)?,
        cause: r.try_get(at + 3)?,
        solution: r.try_get(at + 4)?,
        ci_class: r.try_get(at + 5)?,
        author: r.try_get(at + 6)?,
        at: r.try_get(at + 7)?,
        note: r.try_get(at + 8)?,
        source: r.try_get(at + 9)?,
    })
}

async fn add_text(tx: &mut Transaction<'static, Any>, article: i64, t: &Text) -> Result<()> {
    sqlx::query(
        "INSERT INTO ops_kb_versions (article, version, title, symptom, cause, solution, ci_class, author, at, note, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(article)
    .bind(t.version)
    .bind(t.title.clone())
    .bind(t.symptom.clone())
    .bind(t.cause.clone())
    .bind(t.solution.clone())
    .bind(t.ci_class.clone())
    .bind(t.author.clone())
    .bind(t.at)
    .bind(t.note.clone())
    .bind(t.source.clone())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The knowledge base's tables; see the module documentation.
#[derive(Clone, Debug)]
pub struct Kb(pub(crate) Store);

impl Kb {
    /// Indexes an article's current words with its status and class.
    async fn index(
        &self,
        tx: &mut Transaction<'static, Any>,
        article: i64,
        status: &str,
        ci_class: Option<&str>,
        tokens: &str,
    ) -> Result<()> {
        let (status, ci_class) = (status.to_string(), ci_class.map(str::to_string));
        match self.0.backend {
            Backend::Sqlite => {
                sqlx::query("DELETE FROM ops_kb_search WHERE rowid = $1").bind(article).execute(&mut **tx).await?;
                sqlx::query("INSERT INTO ops_kb_search (rowid, tokens, status, ci_class) VALUES ($1, $2, $3, $4)")
                    .bind(article)
                    .bind(tokens.to_string())
                    .bind(status)
                    .bind(ci_class)
                    .execute(&mut **tx)
                    .await?;
            }
            Backend::Postgres => {
                sqlx::query(
                    "INSERT INTO ops_kb_search (article, status, ci_class, tokens) \
                     VALUES ($1, $2, $3, to_tsvector('simple', $4)) ON CONFLICT (article) DO UPDATE SET \
                     status = EXCLUDED.status, ci_class = EXCLUDED.ci_class, tokens = EXCLUDED.tokens",
                )
                .bind(article)
                .bind(status)
                .bind(ci_class)
                .bind(tokens.to_string())
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Stores a new article with its first text (`a.latest` and the text's version
    /// are 1) and indexes `tokens`; returns its id.
    pub async fn create(&self, a: &Article, text: &Text, tokens: &str) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let row = sqlx::query(
            "INSERT INTO ops_kb_articles (latest, title, ci_class, source, status, author, created_at, updated_at, \
             updated_by, version) VALUES (1, $1, $2, $3, $4, $5, $6, $6, $5, 1) RETURNING id",
        )
        .bind(a.title.clone())
        .bind(a.ci_class.clone())
        .bind(a.source.clone())
        .bind(a.status.clone())
        .bind(a.author.clone())
        .bind(a.created_at)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        add_text(&mut tx, id, &Text { version: 1, ..text.clone() }).await?;
        self.index(&mut tx, id, &a.status, a.ci_class.as_deref(), tokens).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Adds a new text version to an article still at `version`, makes it the
    /// current one and indexes `tokens`; returns the new text version's number.
    pub async fn edit(&self, id: i64, version: i64, text: &Text, tokens: &str) -> Result<i64> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let row = sqlx::query(
            "UPDATE ops_kb_articles SET latest = latest + 1, title = $1, ci_class = $2, updated_at = $3, \
             updated_by = $4, version = version + 1 WHERE id = $5 AND version = $6 RETURNING latest, status",
        )
        .bind(text.title.clone())
        .bind(text.ci_class.clone())
        .bind(text.at)
        .bind(text.author.clone())
        .bind(id)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(conflict(id, version));
        };
        let (latest, status): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        add_text(&mut tx, id, &Text { version: latest, ..text.clone() }).await?;
        self.index(&mut tx, id, &status, text.ci_class.as_deref(), tokens).await?;
        tx.commit().await?;
        Ok(latest)
    }

    /// Publishes or retires an article still at `version` (its text is unchanged).
    pub async fn set_status(&self, id: i64, version: i64, status: &str, at: i64, by: &str) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        let done = sqlx::query(
            "UPDATE ops_kb_articles SET status = $1, updated_at = $2, updated_by = $3, version = version + 1 \
             WHERE id = $4 AND version = $5",
        )
        .bind(status.to_string())
        .bind(at)
        .bind(by.to_string())
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(conflict(id, version));
        }
        let key = if self.0.backend == Backend::Sqlite { "rowid" } else { "article" };
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE ops_kb_search SET status = $1 WHERE {key} = $2")))
            .bind(status.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get(&self, id: i64) -> Result<Option<Article>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ARTICLE} FROM ops_kb_articles a WHERE a.id = $1")))
            .bind(id)
            .fetch_optional(&self.0.read_pool())
            .await?;
        row.as_ref().map(article_from).transpose()
    }

    /// Every text version of an article, oldest first.
    pub async fn texts(&self, id: i64) -> Result<Vec<Text>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TEXT} FROM ops_kb_versions v WHERE v.article = $1 ORDER BY v.version"
        )))
        .bind(id)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| text_from(r, 0)).collect()
    }

    /// The articles written from `source` (`incident:12`), newest first.
    pub async fn from_source(&self, source: &str) -> Result<Vec<Article>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ARTICLE} FROM ops_kb_articles a WHERE a.source = $1 ORDER BY a.id DESC"
        )))
        .bind(source.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(article_from).collect()
    }

    /// Articles not in the search index (a copied or restored installation's, whose
    /// index is rebuilt rather than copied), with their current text, by id.
    pub async fn unindexed(&self, limit: i64) -> Result<Vec<(Article, Text)>> {
        let outside = match self.0.backend {
            Backend::Sqlite => "NOT IN (SELECT rowid FROM ops_kb_search)",
            Backend::Postgres => "NOT IN (SELECT article FROM ops_kb_search)",
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ARTICLE}, {TEXT} FROM ops_kb_articles a \
             JOIN ops_kb_versions v ON v.article = a.id AND v.version = a.latest \
             WHERE a.id {outside} ORDER BY a.id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| Ok((article_from(r)?, text_from(r, 11)?))).collect()
    }

    /// Indexes the words of articles: (article, words), each with its stored status
    /// and class.
    pub async fn index_many(&self, articles: &[(Article, String)]) -> Result<()> {
        let mut tx = self.0.write_pool().begin_with(self.0.backend.begin_write()).await?;
        for (a, tokens) in articles {
            self.index(&mut tx, a.id, &a.status, a.ci_class.as_deref(), tokens).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Articles with their current text: with words, those whose current text has
    /// every word (or any, for `q.any`), best match first; without, the newest.
    pub async fn find(&self, q: &KbQuery) -> Result<Vec<(Article, Text)>> {
        let words: Vec<&str> = q.words.iter().map(String::as_str).filter(|w| !w.is_empty()).collect();
        let limit = Arg::Int(q.limit.clamp(1, 500));
        if words.is_empty() {
            let mut sql = Sql::new(&format!(
                "SELECT {ARTICLE}, {TEXT} FROM ops_kb_articles a \
                 JOIN ops_kb_versions v ON v.article = a.id AND v.version = a.latest WHERE 1 = 1"
            ));
            filters(&mut sql, "a.", q);
            sql.push(" ORDER BY a.updated_at DESC, a.id DESC LIMIT ");
            sql.push_bind(limit);
            let rows = sql.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
            return rows.iter().map(|r| Ok((article_from(r)?, text_from(r, 11)?))).collect();
        }
        // The matches are filtered and ranked (smaller first) in the search table
        // alone; only the page's articles and texts are then read.
        let mut sql = match self.0.backend {
            Backend::Sqlite => {
                // Each word an FTS5 string (the words hold letters and digits only;
                // quotes are doubled all the same), joined by AND or OR.
                let expr: Vec<String> = words.iter().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect();
                let mut sql = Sql::new(
                    "SELECT rowid AS id, bm25(ops_kb_search) AS rank FROM ops_kb_search WHERE ops_kb_search MATCH ",
                );
                sql.push_bind(Arg::Text(expr.join(if q.any { " OR " } else { " AND " })));
                sql
            }
            Backend::Postgres => {
                // plainto_tsquery ANDs the words; to_tsquery with `|` ORs them (the
                // words hold letters and digits only, so no operator slips in).
                let (joiner, function) = if q.any { (" | ", "to_tsquery") } else { (" ", "plainto_tsquery") };
                let mut sql = Sql::new(&format!(
                    "SELECT article AS id, -ts_rank(tokens, {function}('simple', $1)) AS rank FROM ops_kb_search \
                     WHERE tokens @@ {function}('simple', "
                ));
                // $1, named twice.
                sql.push_bind(Arg::Text(words.join(joiner)));
                sql.push(")");
                sql
            }
        };
        filters(&mut sql, "", q);
        sql.push(" ORDER BY rank, id DESC LIMIT ");
        sql.push_bind(limit);
        let mut outer = Sql::new(&format!("SELECT {ARTICLE}, {TEXT} FROM ("));
        outer.push(&sql.text);
        outer.args = sql.args;
        outer.push(
            ") hit JOIN ops_kb_articles a ON a.id = hit.id \
             JOIN ops_kb_versions v ON v.article = a.id AND v.version = a.latest ORDER BY hit.rank, a.id DESC",
        );
        let rows = outer.query(self.0.backend).fetch_all(&self.0.read_pool()).await?;
        rows.iter().map(|r| Ok((article_from(r)?, text_from(r, 11)?))).collect()
    }
}

/// The status and class conditions of a query, on columns named with `prefix`.
fn filters(sql: &mut Sql, prefix: &str, q: &KbQuery) {
    if !q.retired {
        sql.push(&format!(" AND {prefix}status = 'published'"));
    }
    if let Some(c) = &q.ci_class {
        sql.push(&format!(" AND {prefix}ci_class = "));
        sql.push_bind(Arg::Text(c.clone()));
    }
}

fn conflict(id: i64, version: i64) -> StoreError {
    StoreError::VersionConflict {
        resource_type: "kb-article".into(),
        id: id.to_string(),
        expected: version,
        current: 0,
    }
}
