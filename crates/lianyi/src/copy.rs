//! `lianyi copy`: a whole installation into another, empty database — SQLite to
//! PostgreSQL when a group outgrows one file, or back — resumable, checked by the
//! same manifest as a backup (every table's rows and content hash, the audit head)
//! and the audit chain's verification on the copy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use lianyi_security::ChainAlg;
use lianyi_store::Store;
use serde_json::json;

use crate::backup::{BackupError, check, report, sums_json, sums_with_progress};
use crate::config::mask_password;

/// A database named on the command line: a URL, or a data folder (its `lianyi.db`).
pub fn database_url(given: &str) -> String {
    if given.starts_with("sqlite:") || given.starts_with("postgres:") || given.starts_with("postgresql:") {
        given.to_string()
    } else {
        format!("sqlite://{}", Path::new(given).join("lianyi.db").display())
    }
}

/// The file of a SQLite URL.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    Some(PathBuf::from(path.split('?').next().unwrap_or(path)))
}

/// What a copy did and how long it took.
pub struct Done {
    pub tables: usize,
    pub rows: i64,
    pub resumed: bool,
    pub tickets: usize,
    pub articles: usize,
    pub copy: Duration,
    pub check: Duration,
    pub passed: bool,
}

/// Copies `from` into `to` (empty, or holding an unfinished copy of `from`), rebuilds
/// the derived search tables, then checks the copy against the source's manifest and
/// verifies its audit chain. Prints the check's report; returns what it did.
pub async fn copy(from: &str, to: &str, hash: ChainAlg) -> Result<Done, BackupError> {
    if from == to {
        return Err(BackupError::Refused("--from and --to are the same database".into()));
    }
    if let Some(file) = sqlite_file(from)
        && !file.exists()
    {
        return Err(BackupError::Refused(format!("--from: there is no database at {}", file.display())));
    }
    if let Some(dir) = sqlite_file(to).as_deref().and_then(Path::parent) {
        std::fs::create_dir_all(dir)?;
    }
    let source = Store::connect(from).await?;
    if let Some(earlier) = source.unfinished_copy().await? {
        return Err(BackupError::Refused(format!(
            "--from: that database holds an unfinished copy from {earlier}, not an installation"
        )));
    }
    let target = Store::connect(to).await?;
    let started = Instant::now();
    let total: i64 = source.row_counts().await?.iter().map(|(_, n)| n).sum();
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or_default());
    if let Ok(style) = ProgressStyle::with_template("copying {bar:40} {pos}/{len} rows {per_sec} {msg}") {
        bar.set_style(style);
    }
    let copied = target
        .copy_from(&source, &mask_password(from), &|table, rows| {
            bar.set_message(table.to_string());
            bar.inc(u64::try_from(rows).unwrap_or_default());
        })
        .await?;
    bar.finish_and_clear();
    let tickets = lianyi_ops::desk::index_missing(&target.operations().desk()).await?;
    let articles = lianyi_ops::kb::index_missing(&target.operations().kb()).await?;
    target.finish_copy().await?;
    let copy_took = started.elapsed();

    let checking = Instant::now();
    let sums = sums_with_progress(&source, hash).await?;
    let head = source.audit_head().await?;
    let manifest = json!({
        "hash": lianyi_store::audit::ChainHasher::name(&hash),
        "tables": sums_json(&sums),
        "auditHead": {"seq": head.0, "hash": head.1},
    });
    source.close().await;
    target.close().await;
    let checked = check(hash, to, None, &manifest).await?;
    let mut out = std::io::stdout();
    let passed = report(&checked, &mut out)?;
    if !passed {
        writeln!(
            out,
            "the copy differs from the source: was the source written to during the copy? \
             Stop its server, then copy again into an empty database"
        )?;
    }
    Ok(Done {
        tables: copied.tables,
        rows: copied.rows,
        resumed: copied.resumed,
        tickets,
        articles,
        copy: copy_took,
        check: checking.elapsed(),
        passed,
    })
}

#[cfg(test)]
mod tests {
    use super::{database_url, sqlite_file};

    #[test]
    fn a_folder_names_its_database_file() {
        assert_eq!(database_url("/srv/lianyi"), "sqlite:///srv/lianyi/lianyi.db");
        assert_eq!(database_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(sqlite_file("sqlite:///a/b.db?mode=rwc"), Some("/a/b.db".into()));
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
