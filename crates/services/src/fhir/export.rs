//! Bulk Data export (FHIR Bulk Data Access 2.0): asynchronous `$export` at system,
//! `Patient` and `Group` level, writing one NDJSON file per type.
//!
//! A job runs in the background under the caller's grants: only the types it may
//! read, only its campuses, only a bound patient's compartment. Files are written
//! with owner-only permissions and hold decrypted data (an export is meant to be
//! imported elsewhere), so they are served only to the caller that started the job
//! and removed when the job is deleted or expires. Jobs do not survive a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lianyi_fhir::ResourceType;
use lianyi_security::{Caller, Perm};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{FhirService, ServiceError};

/// How long finished files are kept.
pub const EXPORT_TTL_MS: i64 = 24 * 3_600_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportLevel {
    System,
    Patient,
    Group(String),
}

/// What a kick-off asked for.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub level: ExportLevel,
    /// `_type`: only these resource types.
    pub types: Option<Vec<String>>,
    /// `_since`: only resources updated at or after this instant.
    pub since: Option<i64>,
    /// The kick-off URL, echoed in the manifest.
    pub request: String,
}

#[derive(Clone, Debug)]
pub enum JobState {
    Running { done_types: usize, total_types: usize },
    Done { files: Vec<(String, usize)> },
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct ExportJob {
    pub id: String,
    /// Who started it: only they may poll and download.
    pub owner: String,
    pub request: String,
    pub started_at: i64,
    pub state: JobState,
    pub dir: PathBuf,
}

/// The jobs of this process.
#[derive(Clone, Debug, Default)]
pub struct ExportJobs {
    jobs: Arc<Mutex<HashMap<String, ExportJob>>>,
}

impl ExportJobs {
    fn update(&self, id: &str, f: impl FnOnce(&mut ExportJob)) {
        if let Ok(mut jobs) = self.jobs.lock()
            && let Some(j) = jobs.get_mut(id)
        {
            f(j);
        }
    }

    /// The job, if `caller` started it.
    pub fn get(&self, id: &str, caller: &Caller) -> Option<ExportJob> {
        let jobs = self.jobs.lock().ok()?;
        jobs.get(id).filter(|j| j.owner == caller.actor()).cloned()
    }

    /// Removes a job and its files; false if there is no such job of `caller`.
    pub fn remove(&self, id: &str, caller: &Caller) -> bool {
        let Ok(mut jobs) = self.jobs.lock() else { return false };
        match jobs.get(id) {
            Some(j) if j.owner == caller.actor() => {
                let _ = std::fs::remove_dir_all(&j.dir);
                jobs.remove(id);
                true
            }
            _ => false,
        }
    }

    /// Drops jobs older than the TTL, with their files.
    pub fn expire(&self, now_ms: i64) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|_, j| {
                let keep = now_ms - j.started_at < EXPORT_TTL_MS;
                if !keep {
                    let _ = std::fs::remove_dir_all(&j.dir);
                }
                keep
            });
        }
    }
}

fn file_name(rtype: &str) -> String {
    format!("{rtype}.ndjson")
}

impl FhirService {
    /// Starts an export job; returns its id at once (the work continues in the
    /// background). `types` limits the resource types, `since` the last update.
    pub async fn start_export(
        &self,
        caller: &Caller,
        jobs: &ExportJobs,
        root: &Path,
        req: ExportRequest,
    ) -> Result<String, ServiceError> {
        let ExportRequest { level, types, since, request } = req;
        if !caller.is_authenticated() {
            return Err(ServiceError::Forbidden("authentication is required".into()));
        }
        for t in types.iter().flatten() {
            if ResourceType::parse(t).is_none() {
                return Err(ServiceError::Invalid(lianyi_fhir::OperationOutcome::single(
                    lianyi_fhir::Issue::error(
                        lianyi_fhir::IssueType::NotSupported,
                        format!("'{t}' is not a supported resource type"),
                    )
                    .at("_type"),
                )));
            }
        }
        // Patients whose compartments the export covers.
        let patients: Option<Vec<String>> = match &level {
            ExportLevel::System => caller.access().patient().map(str::to_string).map(|p| vec![p]),
            ExportLevel::Patient => caller.access().patient().map(str::to_string).map(|p| vec![p]),
            ExportLevel::Group(gid) => {
                let g = ResourceType::parse("Group").ok_or_else(|| ServiceError::Forbidden("Group".into()))?;
                let group = self.reader(caller, g).await?.read(gid).await?;
                let v: Value = serde_json::from_str(&group.body).unwrap_or_default();
                let members: Vec<String> = v
                    .get("member")
                    .and_then(Value::as_array)
                    .map(|m| {
                        m.iter()
                            .filter_map(|x| x.pointer("/entity/reference").and_then(Value::as_str))
                            .filter_map(|r| r.strip_prefix("Patient/"))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                Some(match &caller.access().patient() {
                    Some(own) => members.into_iter().filter(|m| m == own).collect(),
                    None => members,
                })
            }
        };
        let compartments = level != ExportLevel::System || patients.is_some();
        let all: Vec<String> = lianyi_fhir::SUPPORTED_TYPES
            .iter()
            .filter(|t| **t != "AuditEvent")
            .filter(|t| !compartments || **t == "Patient" || !lianyi_fhir::compartment::patient_params(t).is_empty())
            .map(|t| t.to_string())
            .collect();
        let wanted: Vec<String> = all
            .into_iter()
            .filter(|t| types.as_ref().is_none_or(|ts| ts.contains(t)))
            .filter(|t| caller.access().allows(t, Perm::Read) && caller.access().allows(t, Perm::Search))
            .collect();

        let id = self.ids.new_id();
        let dir = root.join(&id);
        create_private_dir(&dir).map_err(|e| ServiceError::Store(lianyi_store::StoreError::Corrupt(e.to_string())))?;
        let now = self.now_ms();
        jobs.expire(now);
        if let Ok(mut all) = jobs.jobs.lock() {
            all.insert(
                id.clone(),
                ExportJob {
                    id: id.clone(),
                    owner: caller.actor().to_string(),
                    request: request.clone(),
                    started_at: now,
                    state: JobState::Running { done_types: 0, total_types: wanted.len() },
                    dir: dir.clone(),
                },
            );
        }
        let mut e = caller.entry(now, "export", "success");
        e.detail = Some(format!("job {id}: {} types, level {:?}", wanted.len(), level));
        self.audit.record(vec![e]).await?;

        let service = self.clone();
        let caller = caller.clone();
        let jobs = jobs.clone();
        let job_id = id.clone();
        tokio::spawn(async move {
            let result = service
                .run_export(&caller, &jobs, &job_id, &dir, &wanted, since, compartments, patients.as_deref())
                .await;
            match result {
                Ok(files) => jobs.update(&job_id, |j| j.state = JobState::Done { files }),
                Err(e) => {
                    tracing::error!(job = %job_id, error = %e, "export failed");
                    jobs.update(&job_id, |j| j.state = JobState::Failed(e.to_string()));
                }
            }
        });
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_export(
        &self,
        caller: &Caller,
        jobs: &ExportJobs,
        job: &str,
        dir: &Path,
        types: &[String],
        since: Option<i64>,
        compartments: bool,
        patients: Option<&[String]>,
    ) -> Result<Vec<(String, usize)>, ServiceError> {
        let io = |e: std::io::Error| ServiceError::Store(lianyi_store::StoreError::Corrupt(e.to_string()));
        let mut files = Vec::new();
        for (n, t) in types.iter().enumerate() {
            let scope = Self::row_scope(caller, Some(t), Perm::Read);
            let mut after: Option<String> = None;
            let mut count = 0usize;
            let mut out: Option<tokio::fs::File> = None;
            let mut seen_patients: Vec<String> = Vec::new();
            loop {
                let page =
                    self.store.scan_type(t, since, compartments, patients, &scope, after.as_deref(), 1000).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                let mut buf = String::new();
                for r in page {
                    if Self::visible(caller, &r, Perm::Read).is_err() {
                        continue;
                    }
                    if let Some(p) = &r.patient
                        && seen_patients.len() < 10_000
                        && !seen_patients.contains(p)
                    {
                        seen_patients.push(p.clone());
                    }
                    let body = self.protector.reveal_body(&r.resource_type, &r.body)?;
                    buf.push_str(&body);
                    buf.push('\n');
                    count += 1;
                }
                if !buf.is_empty() {
                    if out.is_none() {
                        out = Some(create_private_file(&dir.join(file_name(t))).await.map_err(io)?);
                    }
                    if let Some(f) = out.as_mut() {
                        f.write_all(buf.as_bytes()).await.map_err(io)?;
                    }
                }
            }
            if let Some(mut f) = out {
                f.flush().await.map_err(io)?;
                f.sync_all().await.map_err(io)?;
                files.push((t.clone(), count));
            }
            // One audit record per type and patient whose data left in the export.
            let mut entries = Vec::new();
            for p in seen_patients.iter().take(1000) {
                let mut e = caller.entry(self.now_ms(), "export", "success");
                e.resource_type = Some(t.clone());
                e.patient = Some(p.clone());
                e.detail = Some(format!("job {job}"));
                entries.push(e);
            }
            if entries.is_empty() && count > 0 {
                let mut e = caller.entry(self.now_ms(), "export", "success");
                e.resource_type = Some(t.clone());
                e.detail = Some(format!("job {job}: {count} resources"));
                entries.push(e);
            }
            self.audit.record(entries).await?;
            let total = types.len();
            jobs.update(job, |j| j.state = JobState::Running { done_types: n + 1, total_types: total });
        }
        Ok(files)
    }
}

/// The Bulk Data status manifest of a finished job.
pub fn manifest(job: &ExportJob, files: &[(String, usize)], base: &str) -> Value {
    json!({
        "transactionTime": lianyi_fhir::datetime::format_instant(job.started_at),
        "request": job.request,
        "requiresAccessToken": true,
        "output": files.iter().map(|(t, n)| json!({
            "type": t,
            "url": format!("{base}/fhir/$export-file/{}/{}", job.id, file_name(t)),
            "count": n,
        })).collect::<Vec<_>>(),
        "error": [],
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

async fn create_private_file(path: &Path) -> std::io::Result<tokio::fs::File> {
    let mut o = tokio::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path).await
}

/// The path of an export file, if the name is one the job wrote.
pub fn file_path(job: &ExportJob, name: &str) -> Option<PathBuf> {
    let JobState::Done { files } = &job.state else { return None };
    files.iter().find(|(t, _)| file_name(t) == name).map(|_| job.dir.join(name))
}
