//! Search: a typed [`SearchRequest`] becomes one SQL query over the resource table
//! with one `IN (subquery)` per criterion against the index tables, plus a count.
//!
//! Date semantics follow FHIR R4: both the search value and each indexed value are
//! ranges; `eq` means the search range contains the value's range, `gt` that the
//! value's range reaches beyond it, and so on.

use lianyi_fhir::search::{
    Criterion, DateValue, NumberValue, Prefix, SearchRequest, SecondTerm, SortKey, TokenSystem, TokenValue, Total,
};
use lianyi_fhir::search_params::ParamKind;
use sqlx::Row;

use crate::read::{StoredResource, current_from_row};
use crate::scope::RowScope;
use crate::sql::{Arg, Sql};
use crate::{Backend, Result, Store};

#[derive(Clone, Debug)]
pub struct SearchPage {
    /// All matches (not only this page); `None` when the request asked `_total=none`.
    pub total: Option<i64>,
    pub resources: Vec<StoredResource>,
    /// Resources added by `_include` / `_revinclude` (filled by the service).
    pub included: Vec<StoredResource>,
}

macro_rules! current_body {
    () => {
        "(SELECT h.body FROM resource_history h \
         WHERE h.res_type = r.res_type AND h.id = r.id AND h.version = r.version) AS body"
    };
}

/// The body of the current version of `resources r`, from its history row.
pub(crate) const CURRENT_BODY: &str = current_body!();
/// The columns of a current resource for [`current_from_row`]; the body is the
/// history row of the current version (it is stored once, there).
pub(crate) const CURRENT_COLUMNS: &str =
    concat!("r.res_type, r.id, r.version, r.last_updated, r.campus, r.patient, r.deleted, ", current_body!());

/// The smallest string greater than every string that starts with `prefix`.
fn prefix_upper_bound(prefix: &str) -> String {
    let mut s = prefix.to_string();
    while let Some(c) = s.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(n) = char::from_u32(next) {
            s.push(n);
            return s;
        }
    }
    // Every character was char::MAX: no finite bound; this sorts after any text.
    "\u{10FFFF}\u{10FFFF}".to_string()
}

fn date_condition(sql: &mut Sql, low: &str, high: &str, v: &DateValue) {
    let sl = sql.bind(Arg::Int(v.range.low));
    let sh = sql.bind(Arg::Int(v.range.high));
    let eq = format!("({low} >= {sl} AND {high} <= {sh})");
    let cond = match v.prefix {
        Prefix::Eq => eq,
        Prefix::Ne => format!("NOT {eq}"),
        Prefix::Gt => format!("{high} > {sh}"),
        Prefix::Lt => format!("{low} < {sl}"),
        Prefix::Ge => format!("({high} > {sh} OR {eq})"),
        Prefix::Le => format!("({low} < {sl} OR {eq})"),
    };
    sql.push(&cond);
}

/// How the values of one criterion are joined: inside a probe, `(A) OR (B)`; in a
/// driving subquery, one index lookup per value joined by `UNION ALL`, each with the
/// subquery's own equality conditions. (SQLite does not use the lookup index per arm
/// for `res_type = ? AND param = ? AND (code = a OR code = b)`; it scans every row of
/// the parameter instead, e.g. all patients' identifiers when a protected identifier
/// is searched as both its value and its blind index.)
#[derive(Default)]
struct Arms {
    /// Conditions that open every arm.
    prefix: String,
    /// Text between arms in a driving subquery: ` UNION ALL SELECT res_id FROM t WHERE `.
    union: Option<String>,
}

fn or_group<T>(sql: &mut Sql, arms: &Arms, values: &[T], mut each: impl FnMut(&mut Sql, &T)) {
    if let Some(union) = &arms.union {
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                sql.push(union);
            }
            sql.push(&arms.prefix);
            sql.push("(");
            each(sql, v);
            sql.push(")");
        }
        return;
    }
    sql.push("(");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(");
        each(sql, v);
        sql.push(")");
    }
    sql.push(")");
}

fn table_of(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Token => "idx_token",
        ParamKind::String => "idx_string",
        ParamKind::Reference => "idx_reference",
        ParamKind::Date => "idx_date",
        ParamKind::Number => "idx_number",
        ParamKind::Quantity => "idx_quantity",
        ParamKind::Uri => "idx_uri",
        ParamKind::Composite => "idx_composite",
    }
}

/// A number comparison on `col`: `eq`/`ne` use the search value's implicit precision,
/// the others compare with the value itself.
fn number_condition(sql: &mut Sql, col: &str, v: &NumberValue) {
    let lo = sql.bind(Arg::Float(v.value - v.half));
    let hi = sql.bind(Arg::Float(v.value + v.half));
    let x = sql.bind(Arg::Float(v.value));
    let cond = match v.prefix {
        Prefix::Eq => format!("({col} >= {lo} AND {col} < {hi})"),
        Prefix::Ne => format!("NOT ({col} >= {lo} AND {col} < {hi})"),
        Prefix::Gt => format!("{col} > {x}"),
        Prefix::Lt => format!("{col} < {x}"),
        Prefix::Ge => format!("{col} >= {x}"),
        Prefix::Le => format!("{col} <= {x}"),
    };
    sql.push(&cond);
}

/// `[system|]code` on the columns `system` and `code`.
fn token_condition(s: &mut Sql, system: &str, code: &str, v: &TokenValue) {
    s.push("1 = 1");
    if let Some(c) = &v.code {
        s.push(&format!(" AND {code} = "));
        s.push_bind(Arg::Text(c.clone()));
    }
    match &v.system {
        TokenSystem::Any => {}
        TokenSystem::None => s.push(&format!(" AND {system} IS NULL")),
        TokenSystem::Is(sys) => {
            s.push(&format!(" AND {system} = "));
            s.push_bind(Arg::Text(sys.clone()));
        }
    }
}

/// On SQLite, ` INDEXED BY <table>_owner` for lookups of one resource's rows (see
/// [`index_subquery_neg`]); PostgreSQL plans from its statistics.
fn owner_hint(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Sqlite => format!(" INDEXED BY {table}_owner"),
        Backend::Postgres => String::new(),
    }
}

fn index_subquery(
    sql: &mut Sql,
    table: &str,
    alias: &str,
    type_ph: &str,
    param: &str,
    probe: bool,
    backend: Backend,
) -> Arms {
    index_subquery_neg(sql, table, alias, type_ph, param, false, probe, backend)
}

/// Opens the index condition of one criterion. The driving criterion (`probe`
/// false) selects candidate ids with `IN (subquery)`; the others probe each
/// candidate through the owner index with `EXISTS`, so a low-selectivity
/// criterion (`category=laboratory`) never materializes its whole id set.
///
/// On SQLite the probe names the owner index: without table statistics its planner
/// otherwise prefers the lookup index whenever the value condition is a range
/// (`date=lt2024`), scanning every row of the parameter for each candidate.
///
/// Returns how the criterion's values are to be joined ([`or_group`]).
#[allow(clippy::too_many_arguments)]
fn index_subquery_neg(
    sql: &mut Sql,
    table: &str,
    alias: &str,
    type_ph: &str,
    param: &str,
    negate: bool,
    probe: bool,
    backend: Backend,
) -> Arms {
    let not = if negate { "NOT " } else { "" };
    if probe {
        let hint = owner_hint(backend, table);
        sql.push(&format!(
            " AND {not}EXISTS (SELECT 1 FROM {table} x{hint} WHERE x.res_type = {type_ph} AND x.res_id = {alias}.id AND x.param = "
        ));
        sql.push_bind(Arg::Text(param.to_string()));
        sql.push(" AND ");
        Arms::default()
    } else {
        sql.push(&format!(" AND {alias}.id {not}IN (SELECT res_id FROM {table} WHERE "));
        let param_ph = sql.bind(Arg::Text(param.to_string()));
        Arms {
            prefix: format!("res_type = {type_ph} AND param = {param_ph} AND "),
            union: Some(format!(" UNION ALL SELECT res_id FROM {table} WHERE ")),
        }
    }
}

/// Token parameters whose values match a large share of a type (a poor driver).
const BROAD_TOKENS: &[&str] = &[
    "status",
    "category",
    "clinical-status",
    "verification-status",
    "gender",
    "class",
    "intent",
    "active",
    "type",
    "priority",
];

/// Lower is more selective: the most selective criterion drives the query.
fn selectivity(c: &Criterion) -> u8 {
    match c {
        Criterion::Id(_) | Criterion::Chain { .. } | Criterion::Has { .. } | Criterion::Reference { .. } => 0,
        Criterion::Token { param, negate: false, .. } if !BROAD_TOKENS.contains(param) => 1,
        Criterion::String { .. } | Criterion::Uri { .. } | Criterion::Composite { .. } => 1,
        Criterion::Quantity { .. } | Criterion::Number { .. } => 2,
        Criterion::Date { .. } | Criterion::LastUpdated(_) => 2,
        _ => 3,
    }
}

/// Appends the WHERE clause of a search (without ORDER/LIMIT).
fn where_clause(sql: &mut Sql, req: &SearchRequest, scope: &RowScope, backend: Backend) {
    sql.push(" FROM resources r WHERE r.res_type = ");
    let type_ph = sql.bind(Arg::Text(req.resource_type.as_str().to_string()));
    sql.push(&type_ph);
    sql.push(" AND r.deleted = 0");
    scope.push_conditions(sql, "r");
    let mut ordered: Vec<&Criterion> = req.criteria.iter().collect();
    ordered.sort_by_key(|c| selectivity(c));
    for (i, c) in ordered.into_iter().enumerate() {
        push_criterion(sql, c, "r", &type_ph, scope, backend, 0, i > 0);
    }
}

/// ` AND <condition>` for one criterion on the resources aliased `alias` whose type
/// is bound at `type_ph`. Chains and reverse chains nest a query over the other
/// type, limited by the same row scope, so they never reach rows the caller may not see.
#[allow(clippy::too_many_arguments)]
fn push_criterion(
    sql: &mut Sql,
    c: &Criterion,
    alias: &str,
    type_ph: &str,
    scope: &RowScope,
    backend: Backend,
    depth: usize,
    probe: bool,
) {
    let r = alias;
    match c {
        Criterion::Id(ids) => {
            sql.push(&format!(" AND {r}.id IN ("));
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(Arg::Text(id.clone()));
            }
            sql.push(")");
        }
        Criterion::LastUpdated(values) => {
            sql.push(" AND ");
            let col = format!("{r}.last_updated");
            or_group(sql, &Arms::default(), values, |s, v| date_condition(s, &col, &col, v));
        }
        Criterion::Missing { param, kind, missing } => {
            let pre = index_subquery_neg(sql, table_of(*kind), r, type_ph, param, *missing, probe, backend);
            sql.push(&pre.prefix);
            sql.push("1 = 1)");
        }
        Criterion::Token { param, values, negate } => {
            let pre = index_subquery_neg(sql, "idx_token", r, type_ph, param, *negate, probe, backend);
            or_group(sql, &pre, values, |s, v| token_condition(s, "system", "code", v));
            sql.push(")");
        }
        Criterion::String { param, values } => {
            let pre = index_subquery(sql, "idx_string", r, type_ph, param, probe, backend);
            or_group(sql, &pre, values, |s, v| {
                if v.exact {
                    s.push("exact = ");
                    s.push_bind(Arg::Text(v.value.clone()));
                } else if v.contains {
                    let ph = s.bind(Arg::Text(v.value.clone()));
                    s.push(&match backend {
                        Backend::Sqlite => format!("instr(norm, {ph}) > 0"),
                        Backend::Postgres => format!("strpos(norm, {ph}) > 0"),
                    });
                } else {
                    s.push("norm >= ");
                    s.push_bind(Arg::Text(v.value.clone()));
                    s.push(" AND norm < ");
                    s.push_bind(Arg::Text(prefix_upper_bound(&v.value)));
                }
            });
            sql.push(")");
        }
        Criterion::Reference { param, values } => {
            let pre = index_subquery(sql, "idx_reference", r, type_ph, param, probe, backend);
            or_group(sql, &pre, values, |s, v| {
                s.push("target_id = ");
                s.push_bind(Arg::Text(v.id.clone()));
                if let Some(t) = &v.target_type {
                    s.push(" AND target_type = ");
                    s.push_bind(Arg::Text(t.clone()));
                }
            });
            sql.push(")");
        }
        Criterion::Date { param, values } => {
            let pre = index_subquery(sql, "idx_date", r, type_ph, param, probe, backend);
            or_group(sql, &pre, values, |s, v| date_condition(s, "low", "high", v));
            sql.push(")");
        }
        Criterion::Number { param, values } => {
            let pre = index_subquery(sql, "idx_number", r, type_ph, param, probe, backend);
            or_group(sql, &pre, values, |s, v| number_condition(s, "value", v));
            sql.push(")");
        }
        Criterion::Quantity { param, values } => {
            let pre = index_subquery(sql, "idx_quantity", r, type_ph, param, probe, backend);
            or_group(sql, &pre, values, |s, v| {
                number_condition(s, "value", &v.number);
                if let Some(sys) = &v.system {
                    s.push(" AND system = ");
                    s.push_bind(Arg::Text(sys.clone()));
                }
                if let Some(code) = &v.code {
                    s.push(" AND code = ");
                    s.push_bind(Arg::Text(code.clone()));
                }
            });
            sql.push(")");
        }
        Criterion::Uri { param, values, below, above } => {
            let pre = index_subquery(sql, "idx_uri", r, type_ph, param, probe, backend);
            or_group(sql, &pre, values, |s, v| {
                if *above {
                    // The stored uri is the value or one of its leading parts.
                    let ph = s.bind(Arg::Text(v.clone()));
                    s.push(&format!("uri <= {ph} AND substr({ph}, 1, length(uri)) = uri"));
                } else if *below {
                    s.push("uri >= ");
                    s.push_bind(Arg::Text(v.clone()));
                    s.push(" AND uri < ");
                    s.push_bind(Arg::Text(prefix_upper_bound(v)));
                } else {
                    s.push("uri = ");
                    s.push_bind(Arg::Text(v.clone()));
                }
            });
            sql.push(")");
        }
        Criterion::Composite { param, values } => {
            let pre = index_subquery(sql, "idx_composite", r, type_ph, param, probe, backend);
            or_group(sql, &pre, values, |s, v| {
                token_condition(s, "system", "code", &v.first);
                s.push(" AND ");
                match &v.second {
                    SecondTerm::Token(t) => token_condition(s, "vsystem", "vcode", t),
                    SecondTerm::String(prefix) => {
                        s.push("vcode >= ");
                        s.push_bind(Arg::Text(prefix.clone()));
                        s.push(" AND vcode < ");
                        s.push_bind(Arg::Text(prefix_upper_bound(prefix)));
                    }
                    SecondTerm::Date(d) => date_condition(s, "low", "high", d),
                    SecondTerm::Quantity(q) => {
                        number_condition(s, "num", &q.number);
                        if let Some(sys) = &q.system {
                            s.push(" AND vsystem = ");
                            s.push_bind(Arg::Text(sys.clone()));
                        }
                        if let Some(code) = &q.code {
                            s.push(" AND vcode = ");
                            s.push_bind(Arg::Text(code.clone()));
                        }
                    }
                }
            });
            sql.push(")");
        }
        Criterion::Chain { param, target, inner } => {
            let a = format!("c{depth}");
            let pre = index_subquery(sql, "idx_reference", r, type_ph, param, probe, backend);
            sql.push(&pre.prefix);
            sql.push("target_type = ");
            let t = sql.bind(Arg::Text(target.as_str().to_string()));
            sql.push(&t);
            sql.push(&format!(
                " AND target_id IN (SELECT {a}.id FROM resources {a} WHERE {a}.res_type = {t} AND {a}.deleted = 0"
            ));
            scope.push_conditions(sql, &a);
            push_criterion(sql, inner, &a, &t, scope, backend, depth + 1, false);
            sql.push("))");
        }
        Criterion::Has { source, param, inner } => {
            let a = format!("h{depth}");
            sql.push(&format!(" AND {r}.id IN (SELECT target_id FROM idx_reference WHERE res_type = "));
            let t = sql.bind(Arg::Text(source.as_str().to_string()));
            sql.push(&t);
            sql.push(" AND param = ");
            sql.push_bind(Arg::Text((*param).to_string()));
            sql.push(&format!(" AND target_type = {type_ph}"));
            sql.push(&format!(
                " AND res_id IN (SELECT {a}.id FROM resources {a} WHERE {a}.res_type = {t} AND {a}.deleted = 0"
            ));
            scope.push_conditions(sql, &a);
            push_criterion(sql, inner, &a, &t, scope, backend, depth + 1, false);
            sql.push("))");
        }
    }
}

impl Store {
    /// One page of matches in the requested order (default: last update, then id;
    /// `id` breaks every tie), and the total unless `_total=none`.
    /// The ids of the first `limit` matches only (no count, no bodies): one query, for
    /// conditional matching.
    pub async fn search_ids(&self, req: &SearchRequest, scope: &RowScope, limit: usize) -> Result<Vec<String>> {
        let mut page = Sql::new("SELECT r.id");
        where_clause(&mut page, req, scope, self.backend);
        page.push(" ORDER BY +r.last_updated, r.id LIMIT ");
        page.push_bind(Arg::Int(limit as i64));
        self.page_ids(page).await
    }

    /// [`Store::search_ids`] for several searches in one query (a message's conditional
    /// matches): the ids of each, in the order of `searches`.
    pub async fn search_ids_many(
        &self,
        searches: &[(&SearchRequest, &RowScope)],
        limit: usize,
    ) -> Result<Vec<Vec<String>>> {
        let mut found = vec![Vec::new(); searches.len()];
        if searches.is_empty() {
            return Ok(found);
        }
        let mut sql = Sql::new("");
        for (i, (req, scope)) in searches.iter().enumerate() {
            if i > 0 {
                sql.push(" UNION ALL ");
            }
            sql.push(&format!("SELECT q, id FROM (SELECT CAST({i} AS BIGINT) AS q, r.id"));
            where_clause(&mut sql, req, scope, self.backend);
            sql.push(" ORDER BY +r.last_updated, r.id LIMIT ");
            sql.push_bind(Arg::Int(limit as i64));
            sql.push(&format!(") AS m{i}"));
        }
        for row in self.routed_all(&sql).await? {
            let q: i64 = row.try_get(0)?;
            if let Some(ids) = usize::try_from(q).ok().and_then(|q| found.get_mut(q)) {
                ids.push(row.try_get(1)?);
            }
        }
        Ok(found)
    }

    async fn page_ids(&self, page: Sql) -> Result<Vec<String>> {
        self.routed_all(&page).await?.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    pub async fn search(&self, req: &SearchRequest, scope: &RowScope) -> Result<SearchPage> {
        let total = if req.total == Total::None {
            None
        } else {
            let mut count = Sql::new("SELECT COUNT(*)");
            where_clause(&mut count, req, scope, self.backend);
            Some(self.routed_one(&count).await?.try_get(0)?)
        };

        // The page's ids first, then their rows: the body (in the history table) is
        // read for the page only, never for every match the sort has to order.
        let mut page = Sql::new("SELECT r.id");
        where_clause(&mut page, req, scope, self.backend);
        let keyset = req.sort.is_empty() && req.cursor.is_some();
        if let (true, Some((at, id))) = (keyset, &req.cursor) {
            // Keyset paging: rows after the last one seen, so inserts and updates
            // elsewhere never shift the pages still to come.
            page.push(" AND (r.last_updated > ");
            let t = page.bind(Arg::Int(*at));
            page.push(&t);
            page.push(&format!(" OR (r.last_updated = {t} AND r.id > "));
            page.push_bind(Arg::Text(id.clone()));
            page.push("))");
        }
        page.push(" ORDER BY ");
        for (key, desc) in &req.sort {
            let dir = if *desc { " DESC" } else { "" };
            match key {
                SortKey::Id => page.push(&format!("r.id{dir}, ")),
                SortKey::LastUpdated => page.push(&format!("r.last_updated{dir}, ")),
                SortKey::Param { param, kind } => {
                    let (col, table) = match kind {
                        ParamKind::Date => (if *desc { "MAX(high)" } else { "MIN(low)" }, "idx_date"),
                        ParamKind::String => (if *desc { "MAX(norm)" } else { "MIN(norm)" }, "idx_string"),
                        _ => (if *desc { "MAX(code)" } else { "MIN(code)" }, "idx_token"),
                    };
                    let p = page.bind(Arg::Text((*param).to_string()));
                    let hint = owner_hint(self.backend, table);
                    let expr = format!(
                        "(SELECT {col} FROM {table} x{hint} WHERE x.res_type = r.res_type AND x.res_id = r.id AND x.param = {p})"
                    );
                    // Resources without a value sort last either way, on both engines.
                    page.push(&format!("({expr} IS NULL), {expr}{dir}, "));
                }
            }
        }
        // `+` keeps the planner from walking the whole type in update order to avoid a
        // sort: the criteria, not the order, must drive the query.
        page.push("+r.last_updated, r.id LIMIT ");
        page.push_bind(Arg::Int(req.count as i64));
        page.push(" OFFSET ");
        page.push_bind(Arg::Int(if keyset { 0 } else { req.offset as i64 }));
        let resources = if req.count == 0 {
            Vec::new()
        } else {
            let ids = self.page_ids(page).await?;
            let mut rows = self.fetch_many(req.resource_type.as_str(), &ids, scope).await?;
            // Back into the page's order (a row deleted in between is left out).
            let rank: std::collections::HashMap<&str, usize> =
                ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
            rows.sort_by_key(|r| rank.get(r.id.as_str()).copied().unwrap_or(usize::MAX));
            rows
        };
        Ok(SearchPage { total, resources, included: Vec::new() })
    }

    /// A patient's compartment: current resources of `types` whose patient is
    /// `patient` (the Patient itself included), by type and id, with the total.
    pub async fn compartment(
        &self,
        patient: &str,
        types: &[String],
        since: Option<i64>,
        scope: &RowScope,
        limit: usize,
        offset: usize,
    ) -> Result<(i64, Vec<StoredResource>)> {
        if types.is_empty() {
            return Ok((0, Vec::new()));
        }
        let filter = |sql: &mut Sql| {
            sql.push(" FROM resources r WHERE r.patient = ");
            sql.push_bind(Arg::Text(patient.to_string()));
            sql.push(" AND r.deleted = 0 AND r.res_type IN (");
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(Arg::Text(t.clone()));
            }
            sql.push(")");
            if let Some(s) = since {
                sql.push(" AND r.last_updated >= ");
                sql.push_bind(Arg::Int(s));
            }
            scope.push_conditions(sql, "r");
        };
        let mut count = Sql::new("SELECT COUNT(*)");
        filter(&mut count);
        let total: i64 = self.routed_one(&count).await?.try_get(0)?;
        let mut page = Sql::new(&format!("SELECT {CURRENT_COLUMNS}"));
        filter(&mut page);
        page.push(" ORDER BY r.res_type, r.id LIMIT ");
        page.push_bind(Arg::Int(limit as i64));
        page.push(" OFFSET ");
        page.push_bind(Arg::Int(offset as i64));
        let rows = self.routed_all(&page).await?;
        Ok((total, rows.iter().map(current_from_row).collect::<Result<_>>()?))
    }

    /// The references a parameter of `source_type` makes from these resources.
    pub async fn references_from(
        &self,
        source_type: &str,
        ids: &[String],
        param: &str,
    ) -> Result<Vec<(Option<String>, String)>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new(&format!(
                "SELECT DISTINCT target_type, target_id FROM idx_reference{} WHERE res_type = ",
                owner_hint(self.backend, "idx_reference")
            ));
            sql.push_bind(Arg::Text(source_type.to_string()));
            sql.push(" AND param = ");
            sql.push_bind(Arg::Text(param.to_string()));
            sql.push(" AND res_id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(Arg::Text(id.clone()));
            }
            sql.push(")");
            for row in self.routed_all(&sql).await? {
                out.push((row.try_get(0)?, row.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// Current, undeleted resources of one type by id, within a row scope.
    pub async fn fetch_many(
        &self,
        resource_type: &str,
        ids: &[String],
        scope: &RowScope,
    ) -> Result<Vec<StoredResource>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new(&format!("SELECT {CURRENT_COLUMNS} FROM resources r WHERE r.res_type = "));
            sql.push_bind(Arg::Text(resource_type.to_string()));
            sql.push(" AND r.deleted = 0");
            scope.push_conditions(&mut sql, "r");
            sql.push(" AND r.id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(Arg::Text(id.clone()));
            }
            sql.push(") ORDER BY r.id");
            let rows = self.routed_all(&sql).await?;
            out.extend(rows.iter().map(current_from_row).collect::<Result<Vec<_>>>()?);
        }
        Ok(out)
    }

    /// Resources of `source_type` whose `param` points at one of `target_ids` (of
    /// `target_type`), within a row scope, at most `limit`.
    pub async fn referencing(
        &self,
        source_type: &str,
        param: &str,
        target_type: &str,
        target_ids: &[String],
        scope: &RowScope,
        limit: usize,
    ) -> Result<Vec<StoredResource>> {
        let mut out = Vec::new();
        for chunk in target_ids.chunks(500) {
            let mut sql = Sql::new(&format!("SELECT {CURRENT_COLUMNS} FROM resources r WHERE r.res_type = "));
            let t = sql.bind(Arg::Text(source_type.to_string()));
            sql.push(&t);
            sql.push(" AND r.deleted = 0");
            scope.push_conditions(&mut sql, "r");
            sql.push(&format!(" AND r.id IN (SELECT res_id FROM idx_reference WHERE res_type = {t} AND param = "));
            sql.push_bind(Arg::Text(param.to_string()));
            sql.push(" AND target_type = ");
            sql.push_bind(Arg::Text(target_type.to_string()));
            sql.push(" AND target_id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(Arg::Text(id.clone()));
            }
            sql.push(")) ORDER BY r.id LIMIT ");
            sql.push_bind(Arg::Int(limit as i64));
            let rows = self.routed_all(&sql).await?;
            out.extend(rows.iter().map(current_from_row).collect::<Result<Vec<_>>>()?);
        }
        Ok(out)
    }
}

impl Store {
    /// Current resources of one type in id order after `after`, for exports: changed
    /// since `since`, within `scope`; with `compartments`, only resources in some
    /// patient's compartment, and with `patients` only in these patients'.
    #[allow(clippy::too_many_arguments)]
    pub async fn scan_type(
        &self,
        resource_type: &str,
        since: Option<i64>,
        compartments: bool,
        patients: Option<&[String]>,
        scope: &RowScope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredResource>> {
        let mut sql = Sql::new(&format!("SELECT {CURRENT_COLUMNS} FROM resources r WHERE r.res_type = "));
        sql.push_bind(Arg::Text(resource_type.to_string()));
        sql.push(" AND r.deleted = 0");
        if let Some(s) = since {
            sql.push(" AND r.last_updated >= ");
            sql.push_bind(Arg::Int(s));
        }
        if compartments && patients.is_none() {
            sql.push(" AND r.patient IS NOT NULL");
        }
        if let Some(ps) = patients {
            if ps.is_empty() {
                return Ok(Vec::new());
            }
            sql.push(" AND r.patient IN (");
            for (i, p) in ps.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(Arg::Text(p.clone()));
            }
            sql.push(")");
        }
        scope.push_conditions(&mut sql, "r");
        if let Some(a) = after {
            sql.push(" AND r.id > ");
            sql.push_bind(Arg::Text(a.to_string()));
        }
        sql.push(" ORDER BY r.id LIMIT ");
        sql.push_bind(Arg::Int(limit as i64));
        let rows = sql.query(self.backend).fetch_all(&self.read_pool()).await?;
        rows.iter().map(current_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn upper_bound_is_just_past_the_prefix() {
        assert_eq!(prefix_upper_bound("abc"), "abd");
        assert_eq!(
            prefix_upper_bound("张"),
            "张".chars().map(|c| char::from_u32(c as u32 + 1).unwrap()).collect::<String>()
        );
        assert!("张三" < prefix_upper_bound("张").as_str());
        assert_eq!(prefix_upper_bound("a\u{D7FF}"), "a\u{E000}");
    }
}
