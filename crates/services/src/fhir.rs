//! The FHIR resource service: every create, update, delete, read and search of a
//! resource goes through here. It checks the resource type, validates against the
//! R4 schema, extracts index rows, assigns ids and campus, and calls the store.
//! Nothing is written unless every check passed, and every access, successful or
//! not, is in the audit log before its result is returned (writes in the same
//! transaction as the change).

use std::sync::Arc;

use lianyi_fhir::compartment::patients_of;
use lianyi_fhir::search::SearchRequest;
use lianyi_fhir::{Issue, IssueType, OperationOutcome, ResourceType, extract_index, validate_resource};
use lianyi_security::{AuditError, AuditLog, Caller};
use lianyi_store::audit::AuditEntry;
use lianyi_store::{
    HistoryPage, HistoryQuery, SearchPage, Store, StoreError, StoredResource, WriteKind, WriteOp, WriteResult,
};
use serde_json::Value;

use crate::clock::{Clock, IdSource};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request content is wrong; the outcome names the path and the rule.
    #[error("invalid: {}", .0.issues.first().map(|i| i.diagnostics.as_str()).unwrap_or(""))]
    Invalid(OperationOutcome),
    #[error("{resource_type}/{id} was not found")]
    NotFound { resource_type: String, id: String },
    #[error("{resource_type}/{id} was deleted")]
    Gone { resource_type: String, id: String, version: i64 },
    #[error("version conflict: expected {expected}, current {current}")]
    VersionConflict { expected: i64, current: i64 },
    #[error("{resource_type}/{id} already exists")]
    Conflict { resource_type: String, id: String },
    #[error(transparent)]
    Store(StoreError),
    /// The access could not be audited, so it was not performed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl ServiceError {
    /// The audit outcome word for this error.
    fn outcome(&self) -> &'static str {
        match self {
            ServiceError::Invalid(_) => "invalid",
            ServiceError::NotFound { .. } => "not-found",
            ServiceError::Gone { .. } => "gone",
            ServiceError::VersionConflict { .. } | ServiceError::Conflict { .. } => "conflict",
            ServiceError::Store(_) | ServiceError::Audit(_) => "error",
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { expected, current, .. } => {
                ServiceError::VersionConflict { expected, current }
            }
            StoreError::AlreadyExists { resource_type, id } => ServiceError::Conflict { resource_type, id },
            other => ServiceError::Store(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

fn invalid(code: IssueType, msg: impl Into<String>, at: &str) -> ServiceError {
    ServiceError::Invalid(OperationOutcome::single(Issue::error(code, msg).at(at)))
}

/// A validated resource ready to write.
struct Checked {
    resource: Value,
    rtype: ResourceType,
}

#[derive(Clone, Debug)]
pub struct FhirService {
    store: Store,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    /// The campus recorded on writes that do not name one.
    default_campus: Option<String>,
    audit: AuditLog,
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

impl FhirService {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        default_campus: Option<String>,
        audit: AuditLog,
    ) -> Self {
        FhirService { store, clock, ids, default_campus, audit }
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    fn entry(&self, caller: &Caller, action: &str, outcome: &str, rtype: &str, id: Option<&str>) -> AuditEntry {
        let mut e = caller.entry(self.clock.now_ms(), action, outcome);
        e.resource_type = Some(rtype.to_string());
        e.resource_id = id.map(str::to_string);
        e
    }

    /// Records a failed attempt, then hands the error back.
    async fn failed<T>(
        &self,
        caller: &Caller,
        action: &str,
        rtype: &str,
        id: Option<&str>,
        err: ServiceError,
    ) -> Result<T> {
        self.audit.record(vec![self.entry(caller, action, err.outcome(), rtype, id)]).await?;
        Err(err)
    }

    /// One audit entry per patient whose data is in `found` (one without a patient if none).
    fn entries_for(
        &self,
        caller: &Caller,
        action: &str,
        rtype: Option<&str>,
        found: &[StoredResource],
        detail: String,
    ) -> Vec<AuditEntry> {
        let mut patients: Vec<&str> = found.iter().filter_map(|r| r.patient.as_deref()).collect();
        patients.sort_unstable();
        patients.dedup();
        let base = {
            let mut e = caller.entry(self.clock.now_ms(), action, "success");
            e.resource_type = rtype.map(str::to_string);
            e.detail = Some(detail);
            e
        };
        if patients.is_empty() {
            return vec![base];
        }
        patients.into_iter().map(|p| AuditEntry { patient: Some(p.to_string()), ..base.clone() }).collect()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn check(&self, rtype: ResourceType, resource: Value) -> Result<Checked> {
        if !resource.is_object() {
            return Err(ServiceError::Invalid(OperationOutcome::single(Issue::error(
                IssueType::Structure,
                "the body must be a JSON object holding one FHIR resource",
            ))));
        }
        match resource.get("resourceType").and_then(Value::as_str) {
            Some(t) if t == rtype.as_str() => {}
            Some(t) => {
                return Err(invalid(
                    IssueType::Invalid,
                    format!("resourceType '{t}' does not match the endpoint's type {rtype}"),
                    "resourceType",
                ));
            }
            None => {
                return Err(invalid(IssueType::Required, "missing required element 'resourceType'", "resourceType"));
            }
        }
        validate_resource(&resource).map_err(|e| ServiceError::Invalid(e.into_outcome()))?;
        Ok(Checked { resource, rtype })
    }

    fn op(&self, c: Checked, id: String, kind: WriteKind, campus: Option<String>) -> WriteOp {
        let index = extract_index(c.rtype.as_str(), &c.resource);
        WriteOp {
            patient: patients_of(c.rtype.as_str(), &id, &index).into_iter().next(),
            index,
            resource_type: c.rtype.as_str().to_string(),
            id,
            kind,
            resource: Some(c.resource),
            campus: campus.or_else(|| self.default_campus.clone()),
        }
    }

    /// Writes one resource and its audit record in one transaction.
    async fn write_one(&self, caller: &Caller, action: &str, op: WriteOp) -> Result<WriteResult> {
        let mut entry = self.entry(caller, action, "success", &op.resource_type, Some(&op.id));
        entry.patient = op.patient.clone();
        let (rtype, id) = (op.resource_type.clone(), op.id.clone());
        let written = self
            .store
            .write_audited(vec![op], self.clock.now_ms(), &[entry], Some(self.audit.hasher()))
            .await
            .map_err(ServiceError::from);
        match written {
            Ok(mut results) => {
                results.pop().ok_or_else(|| ServiceError::Store(StoreError::Corrupt("write returned no result".into())))
            }
            Err(e) => self.failed(caller, action, &rtype, Some(&id), e).await,
        }
    }

    /// `POST /{type}`: a new resource with a server-assigned id (a client id is ignored,
    /// as the spec says).
    pub async fn create(&self, caller: &Caller, rtype: ResourceType, resource: Value) -> Result<WriteResult> {
        let c = match self.check(rtype, resource) {
            Ok(c) => c,
            Err(e) => return self.failed(caller, "create", rtype.as_str(), None, e).await,
        };
        let op = self.op(c, self.ids.new_id(), WriteKind::Create, None);
        self.write_one(caller, "create", op).await
    }

    /// `PUT /{type}/{id}`: replace, or create with the client's id.
    pub async fn update(
        &self,
        caller: &Caller,
        rtype: ResourceType,
        id: &str,
        resource: Value,
        if_match: Option<i64>,
    ) -> Result<WriteResult> {
        match self.check_update(rtype, id, resource) {
            Ok(c) => {
                let op = self.op(c, id.to_string(), WriteKind::Update { if_match }, None);
                self.write_one(caller, "update", op).await
            }
            Err(e) => self.failed(caller, "update", rtype.as_str(), Some(id), e).await,
        }
    }

    fn check_update(&self, rtype: ResourceType, id: &str, resource: Value) -> Result<Checked> {
        if !is_valid_id(id) {
            return Err(invalid(
                IssueType::Value,
                format!("'{id}' is not a valid id (rule: 1-64 of A-Z a-z 0-9 - .)"),
                "id",
            ));
        }
        match resource.get("id").and_then(Value::as_str) {
            Some(body_id) if body_id == id => {}
            Some(body_id) => {
                return Err(invalid(
                    IssueType::Invalid,
                    format!("Resource.id '{body_id}' does not match the id '{id}' in the URL"),
                    &format!("{rtype}.id"),
                ));
            }
            None => {
                return Err(invalid(
                    IssueType::Required,
                    "an update must carry the resource id, equal to the id in the URL",
                    &format!("{rtype}.id"),
                ));
            }
        }
        self.check(rtype, resource)
    }

    /// `DELETE /{type}/{id}`.
    pub async fn delete(
        &self,
        caller: &Caller,
        rtype: ResourceType,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<WriteResult> {
        let patient = self.store.read(rtype.as_str(), id).await?.and_then(|r| r.patient);
        let op = WriteOp {
            resource_type: rtype.as_str().to_string(),
            id: id.to_string(),
            kind: WriteKind::Delete { if_match },
            resource: None,
            index: Default::default(),
            campus: None,
            patient,
        };
        self.write_one(caller, "delete", op).await
    }

    /// `GET /{type}/{id}`.
    pub async fn read(&self, caller: &Caller, rtype: ResourceType, id: &str) -> Result<StoredResource> {
        let found = self.read_unaudited(rtype, id).await;
        self.audited_one(caller, "read", rtype, id, found).await
    }

    async fn audited_one(
        &self,
        caller: &Caller,
        action: &str,
        rtype: ResourceType,
        id: &str,
        found: Result<StoredResource>,
    ) -> Result<StoredResource> {
        match found {
            Ok(r) => {
                let mut e = self.entry(caller, action, "success", rtype.as_str(), Some(id));
                e.patient = r.patient.clone();
                self.audit.record(vec![e]).await?;
                Ok(r)
            }
            Err(e) => self.failed(caller, action, rtype.as_str(), Some(id), e).await,
        }
    }

    async fn read_unaudited(&self, rtype: ResourceType, id: &str) -> Result<StoredResource> {
        match self.store.read(rtype.as_str(), id).await? {
            Some(r) if r.deleted => {
                Err(ServiceError::Gone { resource_type: rtype.as_str().into(), id: id.into(), version: r.version })
            }
            Some(r) => Ok(r),
            None => Err(ServiceError::NotFound { resource_type: rtype.as_str().into(), id: id.into() }),
        }
    }

    /// `GET /{type}/{id}/_history/{vid}`.
    pub async fn vread(&self, caller: &Caller, rtype: ResourceType, id: &str, version: i64) -> Result<StoredResource> {
        let found = self.vread_unaudited(rtype, id, version).await;
        self.audited_one(caller, "vread", rtype, id, found).await
    }

    async fn vread_unaudited(&self, rtype: ResourceType, id: &str, version: i64) -> Result<StoredResource> {
        match self.store.vread(rtype.as_str(), id, version).await? {
            Some(r) if r.deleted => {
                Err(ServiceError::Gone { resource_type: rtype.as_str().into(), id: id.into(), version: r.version })
            }
            Some(r) => Ok(r),
            None => Err(ServiceError::NotFound {
                resource_type: rtype.as_str().into(),
                id: format!("{id}/_history/{version}"),
            }),
        }
    }

    /// Instance, type or system history.
    pub async fn history(&self, caller: &Caller, q: &HistoryQuery) -> Result<HistoryPage> {
        let rtype = q.resource_type.as_deref().unwrap_or("*");
        if let (Some(t), Some(id)) = (&q.resource_type, &q.id)
            && self.store.read(t, id).await?.is_none()
        {
            let err = ServiceError::NotFound { resource_type: t.clone(), id: id.clone() };
            return self.failed(caller, "history", rtype, Some(id), err).await;
        }
        let page = self.store.history(q).await?;
        let mut entries = self.entries_for(
            caller,
            "history",
            q.resource_type.as_deref(),
            &page.entries,
            format!("{} of {} versions", page.entries.len(), page.total),
        );
        for e in &mut entries {
            e.resource_id = q.id.clone();
        }
        self.audit.record(entries).await?;
        Ok(page)
    }

    pub async fn search(&self, caller: &Caller, req: &SearchRequest) -> Result<SearchPage> {
        let page = self.store.search(req).await?;
        let detail = format!("{} of {} matches", page.resources.len(), page.total);
        self.audit
            .record(self.entries_for(caller, "search", Some(req.resource_type.as_str()), &page.resources, detail))
            .await?;
        Ok(page)
    }

    /// Validates many resources and stores the valid ones keeping their ids
    /// (update-as-create) in one transaction; returns how many were stored and, for
    /// each rejected one, its position in the batch and what is wrong.
    pub async fn load_batch(
        &self,
        caller: &Caller,
        batch: Vec<(Value, Option<String>)>,
    ) -> std::result::Result<LoadReport, StoreError> {
        let mut ops = Vec::with_capacity(batch.len());
        let mut errors = Vec::new();
        for (n, (resource, campus)) in batch.into_iter().enumerate() {
            let rtype_name = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_string();
            let Some(rtype) = ResourceType::parse(&rtype_name) else {
                errors.push((n, format!("resource type '{rtype_name}' is not stored by this server")));
                continue;
            };
            let Some(id) = resource.get("id").and_then(Value::as_str).map(str::to_string) else {
                errors.push((n, format!("{rtype_name} without an id")));
                continue;
            };
            if !is_valid_id(&id) {
                errors.push((n, format!("'{id}' is not a valid id")));
                continue;
            }
            match self.check(rtype, resource) {
                Ok(c) => ops.push(self.op(c, id, WriteKind::Update { if_match: None }, campus)),
                Err(ServiceError::Invalid(o)) => {
                    let first = o.issues.first().map_or(String::new(), |i| {
                        format!("{}: {}", i.expression.as_deref().unwrap_or(""), i.diagnostics)
                    });
                    errors.push((n, first));
                }
                Err(e) => errors.push((n, e.to_string())),
            }
        }
        let mut stored = Vec::with_capacity(ops.len());
        for op in &ops {
            stored.push(op.resource_type.clone());
        }
        let mut entry = caller.entry(self.clock.now_ms(), "import", "success");
        entry.detail = Some(format!("{} stored, {} rejected", stored.len(), errors.len()));
        self.store.write_audited(ops, self.clock.now_ms(), &[entry], Some(self.audit.hasher())).await?;
        Ok(LoadReport { stored, rejected: errors })
    }
}

/// The result of [`FhirService::load_batch`].
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The resource type of each stored resource.
    pub stored: Vec<String>,
    /// (position in the batch, what is wrong) for each rejected resource.
    pub rejected: Vec<(usize, String)>,
}
