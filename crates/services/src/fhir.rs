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
use lianyi_security::crypto::CryptoError;
use lianyi_security::permit::{self, Interaction};
use lianyi_security::roles::Capability;
use lianyi_security::{AuditError, AuditLog, Caller, Campuses, Perm, Permit};
use lianyi_store::audit::AuditEntry;
use lianyi_store::break_glass::BreakGlassRecord;
use lianyi_store::{
    HistoryPage, HistoryQuery, RowScope, SearchPage, Store, StoreError, StoredResource, WriteKind, WriteOp, WriteResult,
};
use serde_json::Value;

use lianyi_security::clock::{Clock, IdSource};

use crate::protect::Protector;

pub mod export;
mod images;
mod patch;
mod reindex;
mod transaction;

pub use patch::apply_patch;
pub use transaction::query_pairs;

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
    /// The caller's grants do not allow this; the reason is safe to show.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(StoreError),
    /// A protected field could not be encrypted or decrypted (keys missing or data
    /// tampered with).
    #[error("field encryption: {0}")]
    Crypto(#[from] CryptoError),
    /// The access could not be audited, so it was not performed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl ServiceError {
    /// Whether a write was refused because a resource it was written on changed since it
    /// was read (If-Match on a version no longer current, alone or in a transaction).
    pub fn is_conflict(&self) -> bool {
        match self {
            ServiceError::VersionConflict { .. } => true,
            ServiceError::Invalid(o) => o.issues.iter().any(|i| i.code == lianyi_fhir::IssueType::Conflict),
            _ => false,
        }
    }

    /// The audit outcome word for this error.
    fn outcome(&self) -> &'static str {
        match self {
            ServiceError::Invalid(_) => "invalid",
            ServiceError::NotFound { .. } => "not-found",
            ServiceError::Gone { .. } => "gone",
            ServiceError::VersionConflict { .. } | ServiceError::Conflict { .. } => "conflict",
            ServiceError::Forbidden(_) => "denied",
            ServiceError::Store(_) | ServiceError::Audit(_) | ServiceError::Crypto(_) => "error",
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
    protector: Protector,
    /// Rules on stored data added by the layers above ([`FhirService::with_rules`]).
    rules: Arc<[Arc<dyn crate::rules::StoredRule>]>,
}

/// How long a break-the-glass grant lasts.
pub const BREAK_GLASS_MS: i64 = 4 * 3_600_000;

/// Directory data every campus shares: campus limits do not apply to these types.
/// (Health data, everything in the Patient compartment, stays with its campus.)
/// An Organization's names: the name for zh-CN and the English alias for en, each
/// falling back to the other.
pub fn organization_names(v: &Value) -> Names {
    let alias = v.get("alias").and_then(|a| a.get(0)).and_then(Value::as_str);
    let name = v.get("name").and_then(Value::as_str);
    Names { zh: name.or(alias).unwrap_or_default().to_string(), en: alias.or(name).unwrap_or_default().to_string() }
}

/// A name in both languages of the pages: the page picks one (the web crate's i18n
/// layer), so no service branches on a language.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub zh: String,
    pub en: String,
}

pub const SHARED_TYPES: &[&str] = &["Location", "Medication", "Organization", "Practitioner", "PractitionerRole"];

fn is_shared_type(t: &str) -> bool {
    SHARED_TYPES.contains(&t)
}

fn in_compartment(t: &str) -> bool {
    !lianyi_fhir::compartment::patient_params(t).is_empty()
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
        protector: Protector,
    ) -> Self {
        FhirService { store, clock, ids, default_campus, audit, protector, rules: Arc::new([]) }
    }

    /// The same service on another clock: the demo replays past days with it.
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        FhirService { clock, ..self.clone() }
    }

    /// The service with `rules` checked on every write of their types (on every door).
    /// The platform is wired with the clinical rules (`lianyi_clinical::rules`).
    pub fn with_rules(mut self, rules: Vec<Arc<dyn crate::rules::StoredRule>>) -> Self {
        self.rules = rules.into();
        self
    }

    /// Whether a stored-data rule looks at writes of `rtype` (most types: none).
    pub(crate) fn has_rules_for(&self, rtype: &str) -> bool {
        self.rules.iter().any(|r| r.applies_to(rtype))
    }

    /// Runs the stored-data rules on writes of one request: (position, write, whether
    /// it makes a new resource). The first broken rule is the error, with its position.
    pub(crate) async fn stored_rules(
        &self,
        writes: &[(usize, &WriteOp, bool)],
    ) -> std::result::Result<(), (usize, ServiceError)> {
        let data = crate::rules::StoredData { fhir: self };
        for &(n, op, creating) in writes {
            let Some(resource) = &op.resource else { continue };
            for rule in self.rules.iter().filter(|r| r.applies_to(&op.resource_type)) {
                let proposed = crate::rules::Proposed { rtype: &op.resource_type, id: &op.id, resource, creating };
                rule.check(&data, &proposed).await.map_err(|e| (n, e))?;
            }
        }
        Ok(())
    }

    pub fn protector(&self) -> &Protector {
        &self.protector
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// Writes `side` rows that are not FHIR resources (a stay's deposit …) with their
    /// `audit` records in one database transaction: durable together or not at all.
    pub async fn write_side(&self, audit: Vec<AuditEntry>, side: &[lianyi_store::messages::SideWrite]) -> Result<()> {
        self.store.write_audited_with(Vec::new(), self.clock.now_ms(), &audit, Some(self.audit.hasher()), side).await?;
        Ok(())
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

    /// Break-the-glass: opens `patient`'s record to a clinician outside their campuses
    /// for [`BREAK_GLASS_MS`], with a mandatory reason; audited, and listed on the
    /// privacy officer's report.
    pub async fn break_glass(&self, caller: &Caller, patient: &str, reason: &str) -> Result<BreakGlassRecord> {
        let reason = reason.trim();
        let check = if !caller.can(Capability::BreakTheGlass) {
            Err(ServiceError::Forbidden("only clinicians may break the glass".into()))
        } else if reason.chars().count() < 10 {
            Err(invalid(IssueType::Required, "a reason of at least 10 characters is required", "reason"))
        } else {
            match self.store.read("Patient", patient).await? {
                Some(p) if !p.deleted => Ok(()),
                _ => Err(ServiceError::NotFound { resource_type: "Patient".into(), id: patient.into() }),
            }
        };
        if let Err(e) = check {
            return self.failed(caller, "break-glass", "Patient", Some(patient), e).await;
        }
        let now = self.clock.now_ms();
        let record = BreakGlassRecord {
            id: self.ids.new_id(),
            actor: caller.actor().to_string(),
            role: caller.role().map(str::to_string),
            patient: patient.to_string(),
            reason: reason.chars().take(500).collect(),
            granted_at: now,
            expires_at: now + BREAK_GLASS_MS,
            client_addr: caller.client_addr().map(str::to_string),
        };
        self.store.insert_break_glass(&record).await?;
        let mut e = self.entry(caller, "break-glass", "success", "Patient", Some(patient));
        e.patient = Some(patient.to_string());
        e.detail = Some(format!(
            "reason: {}; until {}",
            record.reason,
            lianyi_fhir::datetime::format_instant(record.expires_at)
        ));
        self.audit.record(vec![e]).await?;
        Ok(record)
    }

    /// Audit records for the privacy officer's review page.
    pub async fn audit_review(
        &self,
        caller: &Caller,
        q: &lianyi_store::audit::AuditQuery,
    ) -> Result<Vec<lianyi_store::audit::AuditRecord>> {
        if !caller.can(Capability::ReviewAudit) {
            let e = ServiceError::Forbidden("the audit log is for the privacy officer".into());
            return self.failed(caller, "audit-review", "AuditEvent", None, e).await;
        }
        let rows = self.store.audit_records(q).await?;
        let mut e = caller.entry(self.clock.now_ms(), "audit-review", "success");
        e.resource_type = Some("AuditEvent".into());
        e.detail = Some(format!("{} records", rows.len()));
        self.audit.record(vec![e]).await?;
        Ok(rows)
    }

    /// Users who opened many patients' records lately (at least `min_patients` different
    /// patients since `since`), for the privacy officer: (actor, patients). The review's
    /// permission, and itself audited.
    pub async fn unusual_access(&self, caller: &Caller, since: i64, min_patients: i64) -> Result<Vec<(String, i64)>> {
        if !caller.can(Capability::ReviewAudit) {
            let e = ServiceError::Forbidden("the audit log is for the privacy officer".into());
            return self.failed(caller, "audit-review", "AuditEvent", None, e).await;
        }
        let rows = self.store.audit_wide_readers(since, min_patients, 20).await?;
        let mut e = caller.entry(self.clock.now_ms(), "audit-review", "success");
        e.resource_type = Some("AuditEvent".into());
        e.detail = Some(format!("unusual access: {} users", rows.len()));
        self.audit.record(vec![e]).await?;
        Ok(rows)
    }

    /// The names of the patients that audit records under review name, for the
    /// privacy officer's page (by Patient id; a record not found is left out). The
    /// review's permission; one audit record says how many names were shown.
    pub async fn audit_patient_names(
        &self,
        caller: &Caller,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>> {
        if !caller.can(Capability::ReviewAudit) {
            let e = ServiceError::Forbidden("the audit log is for the privacy officer".into());
            return self.failed(caller, "audit-names", "Patient", None, e).await;
        }
        let patient = Self::permitted_type("Patient")?;
        let mut out = std::collections::HashMap::new();
        for id in ids {
            if out.contains_key(id) {
                continue;
            }
            let Ok(r) = self.read_unaudited(patient, id).await.and_then(|r| self.revealed(r)) else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&r.body) else { continue };
            let name = &v["name"][0];
            let text = name["text"].as_str().map(str::to_string).unwrap_or_else(|| {
                let given: Vec<&str> =
                    name["given"].as_array().map(|g| g.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                format!("{}{}", name["family"].as_str().unwrap_or_default(), given.join(""))
            });
            out.insert(id.clone(), text);
        }
        let mut e = caller.entry(self.clock.now_ms(), "audit-names", "success");
        e.resource_type = Some("Patient".into());
        e.detail = Some(format!("{} names", out.len()));
        self.audit.record(vec![e]).await?;
        Ok(out)
    }

    fn may_read_audit(caller: &Caller, perm: Perm) -> Result<()> {
        if caller.can(Capability::ReviewAudit)
            || (caller.is_authenticated() && caller.access().names("AuditEvent", perm))
        {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(
                "the audit log needs the privacy officer's role or a scope naming AuditEvent (wildcards do not reach it)".into(),
            ))
        }
    }

    /// `GET /AuditEvent/{seq}`.
    pub async fn audit_event(&self, caller: &Caller, id: &str) -> Result<Value> {
        let found = match Self::may_read_audit(caller, Perm::Read) {
            Err(e) => Err(e),
            Ok(()) => {
                let seq = id.parse::<i64>().ok();
                let q =
                    lianyi_store::audit::AuditQuery { seq: Some(seq.unwrap_or(-1)), limit: 1, ..Default::default() };
                match self.store.audit_records(&q).await?.into_iter().next() {
                    Some(r) => Ok(crate::audit_event::to_audit_event(&r)),
                    None => Err(ServiceError::NotFound { resource_type: "AuditEvent".into(), id: id.into() }),
                }
            }
        };
        match found {
            Ok(v) => {
                self.audit.record(vec![self.entry(caller, "read", "success", "AuditEvent", Some(id))]).await?;
                Ok(v)
            }
            Err(e) => self.failed(caller, "read", "AuditEvent", Some(id), e).await,
        }
    }

    /// `GET /AuditEvent?...`: newest first, with the total.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        q: &lianyi_store::audit::AuditQuery,
    ) -> Result<(i64, Vec<Value>)> {
        if let Err(e) = Self::may_read_audit(caller, Perm::Search) {
            return self.failed(caller, "search", "AuditEvent", None, e).await;
        }
        let total = self.store.audit_matching(q).await?;
        let rows = if q.limit == 0 { Vec::new() } else { self.store.audit_records(q).await? };
        let mut e = caller.entry(self.clock.now_ms(), "search", "success");
        e.resource_type = Some("AuditEvent".into());
        e.detail = Some(format!("{} of {total} records", rows.len()));
        self.audit.record(vec![e]).await?;
        Ok((total, rows.iter().map(crate::audit_event::to_audit_event).collect()))
    }

    /// "Who has seen my record": accesses to the calling patient's own data.
    pub async fn my_access_log(&self, caller: &Caller) -> Result<Vec<lianyi_store::audit::AuditRecord>> {
        let Some(patient) = caller.access().patient().map(str::to_string) else {
            let e = ServiceError::Forbidden("only a patient account has an access log".into());
            return self.failed(caller, "access-log", "AuditEvent", None, e).await;
        };
        let q = lianyi_store::audit::AuditQuery { patient: Some(patient.clone()), limit: 500, ..Default::default() };
        let rows = self.store.audit_records(&q).await?;
        let mut e = caller.entry(self.clock.now_ms(), "access-log", "success");
        e.patient = Some(patient);
        self.audit.record(vec![e]).await?;
        Ok(rows)
    }

    /// Break-the-glass grants made in `[since, until)`, for the privacy officer.
    pub async fn break_glass_report(&self, caller: &Caller, since: i64, until: i64) -> Result<Vec<BreakGlassRecord>> {
        if !caller.can(Capability::ReviewAudit) {
            let e = ServiceError::Forbidden("the break-the-glass report is for the privacy officer".into());
            return self.failed(caller, "break-glass-report", "Patient", None, e).await;
        }
        let rows = self.store.break_glass_report(since, until, 1000).await?;
        let mut e = caller.entry(self.clock.now_ms(), "break-glass-report", "success");
        e.detail = Some(format!("{} grants", rows.len()));
        self.audit.record(vec![e]).await?;
        Ok(rows)
    }

    /// The group's campuses (those owning directory entries), by id (directory data,
    /// not audited).
    pub async fn campuses(&self) -> Result<Vec<String>> {
        Ok(self.store.campus_ids().await?)
    }

    /// A campus's display name from its Organization (directory data, not audited):
    /// the Chinese name, or for `en` the first alias.
    pub async fn campus_names(&self, campus: &str) -> Option<Names> {
        let org = self.store.read("Organization", campus).await.ok()??;
        let v: Value = serde_json::from_str(&org.body).ok()?;
        Some(organization_names(&v))
    }

    /// Subscriptions after `after` in id order (configuration of the integration hub,
    /// not health data: not audited), their bodies decrypted, for keeping the
    /// delivery channels in line with them.
    pub async fn subscriptions_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<StoredResource>> {
        let page =
            self.store.scan_type("Subscription", None, false, None, &RowScope::unrestricted(), after, limit).await?;
        page.into_iter().map(|r| self.revealed(r)).collect()
    }

    /// The tables without health data (message log, outbox, channels, counters) and
    /// the database's health: what the integration hub, the pages and the command
    /// line use beside this service.
    pub fn operations(&self) -> lianyi_store::Operations {
        self.store.operations()
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
        crate::rules::check(rtype.as_str(), &resource, self.clock.now_ms()).map_err(ServiceError::Invalid)?;
        Ok(Checked { resource, rtype })
    }

    /// The write of a checked resource: index rows from the plaintext (protected values
    /// as blind indexes), then the protected fields encrypted. `campus` is the owner to
    /// set (`None` keeps the current owner of an existing record); creates pass
    /// [`FhirService::campus_for`], which holds the configured default.
    fn op(&self, c: Checked, id: String, kind: WriteKind, campus: Option<String>) -> Result<WriteOp> {
        let t = c.rtype.as_str();
        let mut index = extract_index(t, &c.resource);
        self.protector.adjust_index(t, &c.resource, &mut index);
        let mut resource = c.resource;
        self.protector.protect(t, &mut resource)?;
        Ok(WriteOp {
            patient: patients_of(t, &id, &index).into_iter().next(),
            index,
            resource_type: t.to_string(),
            id,
            kind,
            resource: Some(resource),
            campus,
        })
    }

    /// A stored resource with its protected fields decrypted.
    fn revealed(&self, mut r: StoredResource) -> Result<StoredResource> {
        if !r.body.is_empty() {
            r.body = self.protector.reveal_body(&r.resource_type, &r.body)?;
        }
        Ok(r)
    }

    /// Writes one resource and its audit record in one transaction.
    async fn write_one(&self, caller: &Caller, action: &str, op: WriteOp) -> Result<WriteResult> {
        let mut entry = self.entry(caller, action, "success", &op.resource_type, Some(&op.id));
        entry.patient = op.patient.clone();
        let (rtype, id) = (op.resource_type.clone(), op.id.clone());
        let written = self
            .store
            .write_grouped(vec![op], self.clock.now_ms(), vec![entry], self.audit.hasher())
            .await
            .map_err(ServiceError::from);
        match written {
            Ok(mut results) => {
                let mut w = results
                    .pop()
                    .ok_or_else(|| ServiceError::Store(StoreError::Corrupt("write returned no result".into())))?;
                if let Some(body) = &w.body {
                    w.body = Some(self.protector.reveal_body(&rtype, body)?);
                }
                Ok(w)
            }
            Err(e) => self.failed(caller, action, &rtype, Some(&id), e).await,
        }
    }

    /// The caller may perform `perm` on `rtype` at all (scopes, authentication).
    fn permit_check(caller: &Caller, rtype: &str, perm: Perm) -> Result<()> {
        caller.may(rtype, perm).map_err(|d| ServiceError::Forbidden(d.0))?;
        Self::permit_rules(caller, rtype, perm)
    }

    /// This service's own rules beyond the grants.
    fn permit_rules(caller: &Caller, rtype: &str, perm: Perm) -> Result<()> {
        // A Subscription sends data to an endpoint of its author's choosing: it is
        // integration configuration, written only by the integration role (IT engineers,
        // administrators, clients with the lianyi:integration scope word).
        if rtype == "Subscription"
            && matches!(perm, Perm::Create | Perm::Update | Perm::Delete)
            && !caller.can(lianyi_security::roles::Capability::ManageIntegration)
        {
            return Err(ServiceError::Forbidden(
                "creating or changing a Subscription needs the integration role (API clients: the lianyi:integration scope word)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The caller may touch this stored resource with `perm` (campus and patient
    /// compartment).
    fn visible(caller: &Caller, r: &StoredResource, perm: Perm) -> Result<()> {
        let opened = r.patient.as_ref().is_some_and(|p| caller.access().open_patients().contains(p))
            && caller.access().allows(&r.resource_type, perm);
        if !is_shared_type(&r.resource_type)
            && !opened
            && !caller.access().sees(&r.resource_type, perm, r.campus.as_deref())
        {
            return Err(ServiceError::Forbidden(format!(
                "{}/{} belongs to campus {}, which your grants do not cover (break-the-glass can open it)",
                r.resource_type,
                r.id,
                r.campus.as_deref().unwrap_or("-")
            )));
        }
        if let Some(p) = caller.access().patient()
            && in_compartment(&r.resource_type)
            && r.patient.as_deref() != Some(p)
        {
            return Err(ServiceError::Forbidden(format!(
                "{}/{} is outside your patient compartment",
                r.resource_type, r.id
            )));
        }
        Ok(())
    }

    /// A resource a patient-bound caller writes must be in their own compartment.
    fn own_compartment(caller: &Caller, op: &WriteOp) -> Result<()> {
        if let Some(p) = caller.access().patient()
            && in_compartment(&op.resource_type)
            && op.patient.as_deref() != Some(p)
        {
            return Err(ServiceError::Forbidden(format!(
                "{} must be in your own patient compartment",
                op.resource_type
            )));
        }
        Ok(())
    }

    /// The row limits of a caller's grants, for searches and history of one type (or
    /// of every type).
    pub fn row_scope(caller: &Caller, rtype: Option<&str>, perm: Perm) -> RowScope {
        let supported = lianyi_fhir::SUPPORTED_TYPES.iter();
        let campuses = match rtype {
            Some(t) => caller.access().campuses_for(t, perm),
            None => caller.access().all_campuses(),
        };
        RowScope {
            campuses: match campuses {
                Campuses::All => None,
                Campuses::Only(list) => Some(list.into_iter().map(String::from).collect()),
            },
            campus_exempt_types: SHARED_TYPES.iter().map(|t| t.to_string()).collect(),
            campus_exempt_patients: caller.access().open_patients().to_vec(),
            patient: caller.access().patient().map(str::to_string),
            patient_exempt_types: supported.filter(|t| !in_compartment(t)).map(|t| t.to_string()).collect(),
        }
    }

    /// Campus for new data: the caller's first granted campus, else the configured default.
    fn campus_for(&self, caller: &Caller) -> Option<String> {
        caller.access().home_campus().map(|c| c.as_str().to_string()).or_else(|| self.default_campus.clone())
    }

    /// `POST /{type}`: a new resource with a server-assigned id (a client id is ignored,
    /// as the spec says). Needs a [`Permit<Create>`](permit::Create) for the type:
    ///
    /// ```compile_fail
    /// # async fn f(fhir: lianyi_services::FhirService, caller: lianyi_security::Caller) {
    /// let patient = lianyi_fhir::ResourceType::parse("Patient").unwrap();
    /// let _ = fhir.create(&caller, patient, serde_json::json!({})).await; // no Permit<Create>
    /// # }
    /// ```
    pub async fn create(&self, permit: &Permit<permit::Create>, resource: Value) -> Result<WriteResult> {
        let rtype = Self::permitted_type(permit.resource_type())?;
        self.create_as(permit.caller(), rtype, resource).await
    }

    /// [`FhirService::create`] inside the service (a bundle's entries, a patch): the
    /// permission is checked here, per entry.
    pub(crate) async fn create_as(&self, caller: &Caller, rtype: ResourceType, resource: Value) -> Result<WriteResult> {
        let t = rtype.as_str();
        let prepared = Self::permit_check(caller, t, Perm::Create).and_then(|()| {
            let c = self.check(rtype, resource)?;
            let op = self.op(c, self.ids.new_id(), WriteKind::Create, self.campus_for(caller))?;
            Self::own_compartment(caller, &op)?;
            Ok(op)
        });
        match prepared {
            Ok(op) => match self.stored_rules(&[(0, &op, true)]).await {
                Ok(()) => self.write_one(caller, "create", op).await,
                Err((_, e)) => self.failed(caller, "create", t, None, e).await,
            },
            Err(e) => self.failed(caller, "create", t, None, e).await,
        }
    }

    /// `PUT /{type}/{id}`: replace, or create with the client's id. Needs a
    /// [`Permit<Update>`](permit::Update) for the type.
    pub async fn update(
        &self,
        permit: &Permit<permit::Update>,
        id: &str,
        resource: Value,
        if_match: Option<i64>,
    ) -> Result<WriteResult> {
        let rtype = Self::permitted_type(permit.resource_type())?;
        self.update_as(permit.caller(), rtype, id, resource, if_match).await
    }

    pub(crate) async fn update_as(
        &self,
        caller: &Caller,
        rtype: ResourceType,
        id: &str,
        resource: Value,
        if_match: Option<i64>,
    ) -> Result<WriteResult> {
        let t = rtype.as_str();
        let existing = self.store.read(t, id).await?.filter(|r| !r.deleted);
        match self.update_op(caller, rtype, id, resource, if_match, existing.as_ref()) {
            Ok(op) => match self.stored_rules(&[(0, &op, existing.is_none())]).await {
                Ok(()) => self.write_one(caller, "update", op).await,
                Err((_, e)) => self.failed(caller, "update", t, Some(id), e).await,
            },
            Err(e) => self.failed(caller, "update", t, Some(id), e).await,
        }
    }

    /// Checks an update against the caller's grants and the current version
    /// (`existing`, absent for create-on-update) and builds the write.
    fn update_op(
        &self,
        caller: &Caller,
        rtype: ResourceType,
        id: &str,
        resource: Value,
        if_match: Option<i64>,
        existing: Option<&StoredResource>,
    ) -> Result<WriteOp> {
        Self::permit_check(caller, rtype.as_str(), Perm::Update)?;
        if let Some(r) = existing {
            Self::visible(caller, r, Perm::Update)?;
        }
        let c = self.check_update(rtype, id, resource)?;
        let campus = if existing.is_some() { None } else { self.campus_for(caller) };
        let op = self.op(c, id.to_string(), WriteKind::Update { if_match }, campus)?;
        Self::own_compartment(caller, &op)?;
        Ok(op)
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

    /// `DELETE /{type}/{id}`. Needs a [`Permit<Delete>`](permit::Delete) for the type.
    pub async fn delete(
        &self,
        permit: &Permit<permit::Delete>,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<WriteResult> {
        let rtype = Self::permitted_type(permit.resource_type())?;
        self.delete_as(permit.caller(), rtype, id, if_match).await
    }

    pub(crate) async fn delete_as(
        &self,
        caller: &Caller,
        rtype: ResourceType,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<WriteResult> {
        let t = rtype.as_str();
        let existing = self.store.read(t, id).await?.filter(|r| !r.deleted);
        let allowed = Self::permit_check(caller, t, Perm::Delete).and_then(|()| match &existing {
            Some(r) => Self::visible(caller, r, Perm::Delete),
            None => Ok(()),
        });
        if let Err(e) = allowed {
            return self.failed(caller, "delete", t, Some(id), e).await;
        }
        let op = WriteOp {
            resource_type: t.to_string(),
            id: id.to_string(),
            kind: WriteKind::Delete { if_match },
            resource: None,
            index: Default::default(),
            campus: None,
            patient: existing.and_then(|r| r.patient),
        };
        self.write_one(caller, "delete", op).await
    }

    /// `GET /{type}/{id}`.
    ///
    /// A read needs a [`Permit<Read>`] for the type, which only the permission check
    /// makes ([`FhirService::permit`], [`FhirService::reader`]); a caller alone does not
    /// compile:
    ///
    /// ```compile_fail
    /// # async fn f(fhir: lianyi_services::FhirService, caller: lianyi_security::Caller) {
    /// let patient = lianyi_fhir::ResourceType::parse("Patient").unwrap();
    /// let _ = fhir.read(&caller, patient, "p1").await; // a Caller is no Permit<Read>
    /// # }
    /// ```
    ///
    /// ```compile_fail
    /// # fn f(caller: lianyi_security::Caller) {
    /// // Nor can a permit be made by hand: its fields are private to security.
    /// let forged: lianyi_security::Permit<lianyi_security::permit::Read> =
    ///     lianyi_security::Permit { caller, resource_type: "Patient".into(), interaction: std::marker::PhantomData };
    /// # }
    /// ```
    ///
    /// ```no_run
    /// # async fn f(fhir: lianyi_services::FhirService, caller: lianyi_security::Caller)
    /// #     -> Result<(), lianyi_services::ServiceError> {
    /// let patient = lianyi_fhir::ResourceType::parse("Patient").unwrap();
    /// let permit = fhir.permit::<lianyi_security::permit::Read>(&caller, patient).await?;
    /// let stored = fhir.read(&permit, "p1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn read(&self, permit: &Permit<permit::Read>, id: &str) -> Result<StoredResource> {
        let caller = permit.caller();
        let rtype = Self::permitted_type(permit.resource_type())?;
        let found = self.read_unaudited(rtype, id).await;
        self.audited_one(caller, "read", rtype, id, found).await
    }

    /// A permit for `I` on `rtype`: the caller's grants (checked in security) and this
    /// service's own rule that a Subscription is changed only by the integration role.
    /// A denial is audited.
    pub async fn permit<I: Interaction>(&self, caller: &Caller, rtype: ResourceType) -> Result<Permit<I>> {
        let t = rtype.as_str();
        let checked = Self::permit_rules(caller, t, I::PERM)
            .and_then(|()| caller.permit::<I>(t).map_err(|d| ServiceError::Forbidden(d.0)));
        match checked {
            Ok(p) => Ok(p),
            Err(e) => self.failed(caller, I::PERM.name(), t, None, e).await,
        }
    }

    /// Reading `rtype` as `caller`: the permission check, then [`Reader::read`] and
    /// [`Reader::vread`].
    pub async fn reader(&self, caller: &Caller, rtype: ResourceType) -> Result<Reader<'_>> {
        Ok(Reader { fhir: self, permit: self.permit(caller, rtype).await? })
    }

    fn permitted_type(t: &str) -> Result<ResourceType> {
        ResourceType::parse(t).ok_or_else(|| ServiceError::NotFound { resource_type: t.to_string(), id: String::new() })
    }

    async fn audited_one(
        &self,
        caller: &Caller,
        action: &str,
        rtype: ResourceType,
        id: &str,
        found: Result<StoredResource>,
    ) -> Result<StoredResource> {
        match found.and_then(|r| Self::visible(caller, &r, Perm::Read).map(|()| r)) {
            Ok(r) => {
                let mut e = self.entry(caller, action, "success", rtype.as_str(), Some(id));
                e.patient = r.patient.clone();
                self.audit.record(vec![e]).await?;
                self.revealed(r)
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
    pub async fn vread(&self, permit: &Permit<permit::Read>, id: &str, version: i64) -> Result<StoredResource> {
        let caller = permit.caller();
        let rtype = Self::permitted_type(permit.resource_type())?;
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

    /// Instance, type or system history, limited to what the caller may see.
    pub async fn history(&self, caller: &Caller, q: &HistoryQuery) -> Result<HistoryPage> {
        let rtype = q.resource_type.as_deref().unwrap_or("*");
        let allowed = match &q.resource_type {
            Some(t) => Self::permit_check(caller, t, Perm::Read),
            None => lianyi_fhir::SUPPORTED_TYPES
                .iter()
                .try_for_each(|t| Self::permit_check(caller, t, Perm::Read))
                .map_err(|_| ServiceError::Forbidden("system history needs read access to every type".into())),
        };
        if let Err(e) = allowed {
            return self.failed(caller, "history", rtype, q.id.as_deref(), e).await;
        }
        if let (Some(t), Some(id)) = (&q.resource_type, &q.id) {
            let visible = match self.store.read(t, id).await? {
                None => Err(ServiceError::NotFound { resource_type: t.clone(), id: id.clone() }),
                Some(r) => Self::visible(caller, &r, Perm::Read),
            };
            if let Err(e) = visible {
                return self.failed(caller, "history", rtype, Some(id), e).await;
            }
        }
        let mut page = self.store.history(q, &Self::row_scope(caller, q.resource_type.as_deref(), Perm::Read)).await?;
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
        page.entries = page.entries.into_iter().map(|r| self.revealed(r)).collect::<Result<_>>()?;
        Ok(page)
    }

    /// Search, limited inside the query to what the caller may see, with the
    /// `_include` and `_revinclude` resources the caller may also see.
    ///
    /// Needs a [`Permit<Search>`](permit::Search) for the searched type.
    pub async fn search(&self, permit: &Permit<permit::Search>, req: &SearchRequest) -> Result<SearchPage> {
        if permit.resource_type() != req.resource_type.as_str() {
            let msg = format!("a permit for {} does not search {}", permit.resource_type(), req.resource_type);
            return Err(ServiceError::Forbidden(msg));
        }
        self.search_as(permit.caller(), req).await
    }

    pub(crate) async fn search_as(&self, caller: &Caller, req: &SearchRequest) -> Result<SearchPage> {
        let t = req.resource_type.as_str();
        if let Err(e) = Self::permit_check(caller, t, Perm::Search) {
            return self.failed(caller, "search", t, None, e).await;
        }
        let mut req = req.clone();
        self.protector.search_variants(&mut req);
        let mut page = self.store.search(&req, &Self::row_scope(caller, Some(t), Perm::Search)).await?;
        page.included = self.included(caller, &req, &page.resources).await?;
        let total = page.total.map_or_else(|| "?".to_string(), |n| n.to_string());
        let detail = format!("{} of {total} matches, {} included", page.resources.len(), page.included.len());
        let mut seen = page.resources.clone();
        seen.extend(page.included.iter().cloned());
        // A platform task is audited for what it read; a round of the critical-value
        // watcher that finds nothing leaves no record (people are audited for every
        // search, found or not).
        if caller.kind() != lianyi_security::ActorKind::System || !seen.is_empty() {
            self.audit.record(self.entries_for(caller, "search", Some(t), &seen, detail)).await?;
        }
        page.resources = page.resources.into_iter().map(|r| self.revealed(r)).collect::<Result<_>>()?;
        page.included = page.included.into_iter().map(|r| self.revealed(r)).collect::<Result<_>>()?;
        Ok(page)
    }

    /// Follows `_include` (with `:iterate`, until nothing new, at most 3 rounds) and
    /// `_revinclude`, each target type limited to what the caller may read.
    async fn included(
        &self,
        caller: &Caller,
        req: &SearchRequest,
        matches: &[StoredResource],
    ) -> Result<Vec<StoredResource>> {
        const MAX_INCLUDED: usize = 1000;
        let mut seen: std::collections::HashSet<(String, String)> =
            matches.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
        let mut out: Vec<StoredResource> = Vec::new();
        let mut frontier: Vec<StoredResource> = matches.to_vec();
        for round in 0..3 {
            let mut next = Vec::new();
            for inc in &req.includes {
                if round > 0 && !inc.iterate {
                    continue;
                }
                let ids: Vec<String> = frontier
                    .iter()
                    .filter(|r| r.resource_type == inc.source_type.as_str())
                    .map(|r| r.id.clone())
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let mut by_type: std::collections::BTreeMap<String, Vec<String>> = Default::default();
                for (tt, id) in self.store.references_from(inc.source_type.as_str(), &ids, inc.param).await? {
                    let Some(tt) = tt else { continue };
                    if inc.target_type.is_some_and(|want| want.as_str() != tt) {
                        continue;
                    }
                    by_type.entry(tt).or_default().push(id);
                }
                for (tt, ids) in by_type {
                    if !caller.access().allows(&tt, Perm::Read) {
                        continue;
                    }
                    for r in self.store.fetch_many(&tt, &ids, &Self::row_scope(caller, Some(&tt), Perm::Read)).await? {
                        if Self::visible(caller, &r, Perm::Read).is_ok()
                            && seen.insert((r.resource_type.clone(), r.id.clone()))
                        {
                            next.push(r);
                        }
                    }
                }
            }
            if round == 0 {
                for inc in &req.revincludes {
                    let st = inc.source_type.as_str();
                    if !caller.access().allows(st, Perm::Read) {
                        continue;
                    }
                    let ids: Vec<String> = matches.iter().map(|r| r.id.clone()).collect();
                    let found = self
                        .store
                        .referencing(
                            st,
                            inc.param,
                            req.resource_type.as_str(),
                            &ids,
                            &Self::row_scope(caller, Some(st), Perm::Read),
                            MAX_INCLUDED,
                        )
                        .await?;
                    for r in found {
                        if Self::visible(caller, &r, Perm::Read).is_ok()
                            && seen.insert((r.resource_type.clone(), r.id.clone()))
                        {
                            next.push(r);
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            out.extend(next.iter().cloned());
            if out.len() >= MAX_INCLUDED {
                out.truncate(MAX_INCLUDED);
                break;
            }
            frontier = next;
        }
        Ok(out)
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
            if rtype.as_str() == "AuditEvent" {
                errors.push((n, "AuditEvent is read-only: the audit log is written by the server only".into()));
                continue;
            }
            if !caller.access().allows(rtype.as_str(), Perm::Create)
                || !caller.access().allows(rtype.as_str(), Perm::Update)
            {
                errors.push((n, format!("your scopes do not allow writing {rtype_name}")));
                continue;
            }
            let Some(id) = resource.get("id").and_then(Value::as_str).map(str::to_string) else {
                errors.push((n, format!("{rtype_name} without an id")));
                continue;
            };
            if !is_valid_id(&id) {
                errors.push((n, format!("'{id}' is not a valid id")));
                continue;
            }
            match self.check(rtype, resource) {
                // A loaded record without a campus belongs to the configured default.
                Ok(c) => match self.op(
                    c,
                    id,
                    WriteKind::Update { if_match: None },
                    campus.or_else(|| self.default_campus.clone()),
                ) {
                    Ok(op) => ops.push(op),
                    Err(e) => errors.push((n, e.to_string())),
                },
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

/// Reads of one type, after the permission check ([`FhirService::reader`]).
#[derive(Debug)]
pub struct Reader<'a> {
    fhir: &'a FhirService,
    permit: Permit<permit::Read>,
}

impl Reader<'_> {
    /// `GET /{type}/{id}`: the resource, if the caller's campuses or compartment reach
    /// it; audited.
    pub async fn read(&self, id: &str) -> Result<StoredResource> {
        self.fhir.read(&self.permit, id).await
    }

    /// `GET /{type}/{id}/_history/{vid}`.
    pub async fn vread(&self, id: &str, version: i64) -> Result<StoredResource> {
        self.fhir.vread(&self.permit, id, version).await
    }

    /// The resource, read in order to change it: its read is audited in the change's
    /// transaction ([`FhirService::process_bundle_seen`]) or, when no change follows,
    /// by [`FhirService::record_seen`]; a refusal is audited at once.
    pub async fn read_to_change(&self, id: &str) -> Result<(StoredResource, Seen)> {
        let caller = self.permit.caller();
        let rtype = FhirService::permitted_type(self.permit.resource_type())?;
        let found = self.fhir.read_unaudited(rtype, id).await;
        match found.and_then(|r| FhirService::visible(caller, &r, Perm::Read).map(|()| r)) {
            Ok(r) => {
                let mut e = self.fhir.entry(caller, "read", "success", rtype.as_str(), Some(id));
                e.patient = r.patient.clone();
                Ok((self.fhir.revealed(r)?, Seen(e)))
            }
            Err(e) => self.fhir.failed(caller, "read", rtype.as_str(), Some(id), e).await,
        }
    }
}

/// The audit record of a read whose change is still to come (see
/// [`Reader::read_to_change`]).
#[derive(Clone, Debug)]
#[must_use = "a read is audited with its change or by FhirService::record_seen"]
pub struct Seen(pub(crate) AuditEntry);

impl FhirService {
    /// Audits reads whose change did not happen.
    pub async fn record_seen(&self, seen: Vec<Seen>) -> Result<()> {
        Ok(self.audit.record(seen.into_iter().map(|s| s.0).collect()).await?)
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

impl crate::rules::StoredData<'_> {
    /// The stored resource, if it exists and is not deleted.
    pub async fn read(&self, rtype: &str, id: &str) -> Result<Option<Value>> {
        let Some(r) = self.fhir.store.read(rtype, id).await?.filter(|r| !r.deleted) else { return Ok(None) };
        let r = self.fhir.revealed(r)?;
        Ok(serde_json::from_str(&r.body).ok())
    }

    /// The stored resources a search finds (at most its `_count`).
    pub async fn search(&self, rtype: ResourceType, params: &[(String, String)]) -> Result<Vec<Value>> {
        let mut req = lianyi_fhir::search::parse_search(rtype, params)
            .map_err(|i| ServiceError::Invalid(OperationOutcome::single(i)))?;
        self.fhir.protector.search_variants(&mut req);
        let page = self.fhir.store.search(&req, &RowScope::unrestricted()).await?;
        let mut out = Vec::with_capacity(page.resources.len());
        for r in page.resources {
            let r = self.fhir.revealed(r)?;
            if let Ok(v) = serde_json::from_str(&r.body) {
                out.push(v);
            }
        }
        Ok(out)
    }
}
