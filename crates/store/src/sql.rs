//! Small helpers for building SQL with numbered placeholders (`$1`, `$2`, ...), which
//! both SQLite and PostgreSQL accept through sqlx's Any driver.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

/// A value to bind.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
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

    pub fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::OptText(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
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
