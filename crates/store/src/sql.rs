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
        if values.is_empty() {
            self.push("1 = 0");
            return;
        }
        self.push(col);
        self.push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(Arg::Text(v.as_ref().to_string()));
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
                Arg::OptFloat(f) => q.bind(*f),
            };
        }
        q
    }
}

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

#[cfg(test)]
mod tests {
    use super::positional;

    #[test]
    fn numbered_markers_become_positional() {
        let (t, o) = positional("SELECT a FROM t WHERE x = $1 AND y IN ($2, $3) AND z = $1 AND s = '$'");
        assert_eq!(t, "SELECT a FROM t WHERE x = ? AND y IN (?, ?) AND z = ? AND s = '$'");
        assert_eq!(o, vec![0, 1, 2, 0]);
    }
}
