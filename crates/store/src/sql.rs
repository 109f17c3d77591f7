//! Small helpers for building SQL with numbered placeholders (`$1`, `$2`, ...), which
//! both SQLite and PostgreSQL accept through sqlx's Any driver.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

use crate::Backend;

/// A value to bind.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Float(f64),
    OptInt(Option<i64>),
    OptFloat(Option<f64>),
}

/// SQL text plus its arguments in placeholder order.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql { text: text.to_string(), args: Vec::new() }
    }

    /// Appends a placeholder for `arg` and returns it (`$n`).
    pub fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    pub fn push_bind(&mut self, arg: Arg) {
        let p = self.bind(arg);
        self.text.push_str(&p);
    }

    /// `col IN ($n, ...)` of `values` as text (`1 = 0`, matching nothing, when empty).
    pub fn push_in<S: AsRef<str>>(&mut self, col: &str, values: &[S]) {
        self.push_in_args(col, values.iter().map(|v| Arg::Text(v.as_ref().to_string())));
    }

    /// `col IN ($n, ...)` of integers (`1 = 0`, matching nothing, when empty).
    pub fn push_in_ints(&mut self, col: &str, values: &[i64]) {
        self.push_in_args(col, values.iter().map(|v| Arg::Int(*v)));
    }

    fn push_in_args(&mut self, col: &str, values: impl ExactSizeIterator<Item = Arg>) {
        if values.len() == 0 {
            self.push("1 = 0");
            return;
        }
        self.push(col);
        self.push(" IN (");
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(v);
        }
        self.push(")");
    }

    /// The query for `backend`. SQLite gets plain positional `?` markers (with the
    /// arguments repeated where a `$n` is reused): sqlx resolves every numbered SQLite
    /// parameter through `sqlite3_bind_parameter_name`, a linear scan, which made large
    /// multi-row inserts quadratic.
    pub fn query(&self, backend: Backend) -> Query<'_, Any, AnyArguments> {
        let (text, order) = match backend {
            Backend::Postgres => (self.text.clone(), (0..self.args.len()).collect::<Vec<_>>()),
            Backend::Sqlite => positional(&self.text),
        };
        let mut q = sqlx::query(AssertSqlSafe(text));
        for i in order {
            let Some(a) = self.args.get(i) else { continue };
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::OptText(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
                Arg::Float(f) => q.bind(*f),
                Arg::OptInt(i) => q.bind(*i),
                Arg::OptFloat(Some(f)) => q.bind(*f),
                Arg::OptFloat(None) => q.bind(NULL_DOUBLE),
            };
        }
        q
    }
}

/// A NULL for a DOUBLE PRECISION parameter. sqlx 0.9's Any driver sends a `None`
/// `f64` to PostgreSQL as a `real` (float4) NULL, and a `None` `f32` as a float8 one
/// (the two are swapped in `AnyArguments::convert_into`); a statement prepared on a
/// connection with the float4 NULL then refuses the next non-NULL `f64` on that
/// connection ("incorrect binary data format"). Binding this instead keeps the
/// parameter float8 on both backends.
pub(crate) const NULL_DOUBLE: Option<f32> = None;

/// Rewrites `$n` markers to `?` and returns the argument index for each `?`.
fn positional(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut order = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
            let mut j = i + 1;
            let mut n = 0usize;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                n = n * 10 + usize::from(bytes[j] - b'0');
                j += 1;
            }
            out.push_str(&text[start..i]);
            out.push('?');
            order.push(n.saturating_sub(1));
            i = j;
            start = j;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[start..]);
    (out, order)
}

/// Builds `INSERT INTO table (cols) VALUES (...),(...)` statements for many rows,
/// split so no statement exceeds `max_params` bound values.
pub(crate) fn multi_insert(table: &str, cols: &[&str], rows: Vec<Vec<Arg>>, max_params: usize) -> Vec<Sql> {
    let per = (max_params / cols.len()).max(1);
    let mut out = Vec::new();
    let mut iter = rows.into_iter().peekable();
    while iter.peek().is_some() {
        let mut sql = Sql::new(&format!("INSERT INTO {table} ({}) VALUES ", cols.join(", ")));
        for (n, row) in iter.by_ref().take(per).enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.push("(");
            for (i, a) in row.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(a);
            }
            sql.push(")");
        }
        out.push(sql);
    }
    out
}

/// At most this many bound values in one joined text (see [`joined`]).
const JOIN_ARGS: usize = 32_000;

/// `statements` as few texts as `backend` runs in order: SQLite runs several
/// statements sent as one text (one hand-off to sqlx's worker thread instead of one
/// per statement), each still bound to its own values; PostgreSQL prepares one
/// statement at a time, so they stay apart. A failure fails the whole text.
pub(crate) fn joined(backend: Backend, statements: Vec<Sql>) -> Vec<Sql> {
    if backend == Backend::Postgres {
        return statements;
    }
    let mut out = Vec::new();
    let mut cur = Sql::default();
    for s in statements {
        if !cur.text.is_empty() && cur.args.len() + s.args.len() > JOIN_ARGS {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.text.is_empty() {
            cur.text.push_str(";\n");
        }
        cur.text.push_str(&renumbered(&s.text, cur.args.len()));
        cur.args.extend(s.args);
    }
    if !cur.text.is_empty() {
        out.push(cur);
    }
    out
}

/// `text` with every `$n` marker moved up by `offset`.
fn renumbered(text: &str, offset: usize) -> String {
    if offset == 0 {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let bytes = text.as_bytes();
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
            let mut j = i + 1;
            let mut n = 0usize;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                n = n * 10 + usize::from(bytes[j] - b'0');
                j += 1;
            }
            out.push_str(&text[start..i]);
            out.push_str(&format!("${}", n + offset));
            (i, start) = (j, j);
        } else {
            i += 1;
        }
    }
    out.push_str(&text[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::{Arg, Sql, joined, positional};
    use crate::Backend;

    #[test]
    fn joined_statements_keep_their_own_values() {
        let mut a = Sql::new("DELETE FROM t WHERE x = ");
        a.push_bind(Arg::Int(1));
        a.push(" OR y = $1");
        let mut b = Sql::new("INSERT INTO t (x, y) VALUES (");
        b.push_bind(Arg::Int(2));
        b.push(", ");
        b.push_bind(Arg::Int(3));
        b.push(")");
        let one = joined(Backend::Sqlite, vec![a, b]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].text, "DELETE FROM t WHERE x = $1 OR y = $1;\nINSERT INTO t (x, y) VALUES ($2, $3)");
        assert_eq!(one[0].args.len(), 3);
        assert_eq!(positional(&one[0].text).1, vec![0, 0, 1, 2]);
        assert_eq!(joined(Backend::Postgres, vec![Sql::new("SELECT 1"), Sql::new("SELECT 2")]).len(), 2);
    }

    #[test]
    fn numbered_markers_become_positional() {
        let (t, o) = positional("SELECT a FROM t WHERE x = $1 AND y IN ($2, $3) AND z = $1 AND s = '$'");
        assert_eq!(t, "SELECT a FROM t WHERE x = ? AND y IN (?, ?) AND z = ? AND s = '$'");
        assert_eq!(o, vec![0, 1, 2, 0]);
    }
}
