//! Bulk import of FHIR NDJSON (one resource per line, as written by Bulk Data
//! `$export` and Synthea), keeping ids and references as they are.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fhir::FhirService;

const BATCH: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no .ndjson files")]
    Empty { path: PathBuf },
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub stored_by_type: BTreeMap<String, usize>,
    /// `file:line: what is wrong`, for each rejected line.
    pub rejected: Vec<String>,
    /// Files that are not FHIR NDJSON (for example an export log).
    pub skipped_files: Vec<String>,
}

impl ImportSummary {
    pub fn stored(&self) -> usize {
        self.stored_by_type.values().sum()
    }
}

/// Progress events for the caller's display.
pub trait Progress {
    fn start(&mut self, total_bytes: u64);
    fn advance(&mut self, bytes: u64);
}

/// The `.ndjson` files of a folder (or the one file given), sorted by name.
pub fn ndjson_files(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let io = |source| ImportError::Io { path: path.to_path_buf(), source };
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ImportError::Empty { path: path.to_path_buf() });
    }
    Ok(files)
}

/// Imports every `.ndjson` file under `path` into the store owned by `campus`.
pub async fn import_ndjson(
    service: &FhirService,
    caller: &lianyi_security::Caller,
    path: &Path,
    campus: Option<String>,
    progress: &mut dyn Progress,
) -> Result<ImportSummary, ImportError> {
    let files = ndjson_files(path)?;
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    progress.start(total);
    let mut summary = ImportSummary::default();
    for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let io = |source| ImportError::Io { path: file.clone(), source };
        let reader = std::io::BufReader::new(std::fs::File::open(&file).map_err(io)?);
        let mut batch: Vec<(Value, Option<String>)> = Vec::with_capacity(BATCH);
        let mut lines_of_batch: Vec<usize> = Vec::with_capacity(BATCH);
        let mut first = true;
        let mut skip_file = false;
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(io)?;
            progress.advance(line.len() as u64 + 1);
            if skip_file || line.trim().is_empty() {
                continue;
            }
            let parsed: Result<Value, _> = serde_json::from_str(&line);
            if first {
                first = false;
                if !parsed.as_ref().is_ok_and(|v| v.get("resourceType").is_some()) {
                    summary.skipped_files.push(name.clone());
                    skip_file = true;
                    continue;
                }
            }
            match parsed {
                Ok(v) => {
                    batch.push((v, campus.clone()));
                    lines_of_batch.push(n + 1);
                }
                Err(e) => summary.rejected.push(format!("{name}:{}: malformed JSON: {e}", n + 1)),
            }
            if batch.len() >= BATCH {
                flush(service, caller, &name, &mut batch, &mut lines_of_batch, &mut summary).await?;
            }
        }
        flush(service, caller, &name, &mut batch, &mut lines_of_batch, &mut summary).await?;
    }
    Ok(summary)
}

async fn flush(
    service: &FhirService,
    caller: &lianyi_security::Caller,
    name: &str,
    batch: &mut Vec<(Value, Option<String>)>,
    lines: &mut Vec<usize>,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let report = service.load_batch(caller, std::mem::take(batch)).await?;
    for t in report.stored {
        *summary.stored_by_type.entry(t).or_default() += 1;
    }
    for (pos, msg) in report.rejected {
        let line = lines.get(pos).copied().unwrap_or_default();
        summary.rejected.push(format!("{name}:{line}: {msg}"));
    }
    lines.clear();
    Ok(())
}
