//! `batch` and `transaction` Bundles (FHIR R4 §3.1.0.11).
//!
//! A transaction is one database transaction: every entry is checked (schema,
//! permissions, campus, compartment, conditions) before anything is written, then
//! all writes and their audit records commit together, or nothing does. Entries are
//! processed in the order the spec gives (DELETE, POST, PUT, GET); `urn:uuid:` full
//! URLs of created resources are rewritten to the ids the server assigns, wherever
//! they are referenced. A batch runs each entry on its own and reports each outcome.

use std::collections::HashMap;

use lianyi_fhir::search::parse_search;
use lianyi_fhir::{Issue, IssueType, OperationOutcome, ResourceType};
use lianyi_security::{Caller, Perm};
use lianyi_store::{StoreError, WriteKind, WriteOp, WriteResult};
use serde_json::{Value, json};

use super::{FhirService, Result, ServiceError, invalid};

/// One entry's request, parsed.
#[derive(Debug)]
enum Request {
    Create { rtype: ResourceType, resource: Value, if_none_exist: Option<String> },
    Update { rtype: ResourceType, id: String, resource: Value, if_match: Option<i64> },
    ConditionalUpdate { rtype: ResourceType, query: String, resource: Value },
    Delete { rtype: ResourceType, id: String },
    Read { rtype: ResourceType, id: String },
    Search { rtype: ResourceType, query: String },
}

impl Request {
    fn order(&self) -> u8 {
        match self {
            Request::Delete { .. } => 0,
            Request::Create { .. } => 1,
            Request::Update { .. } | Request::ConditionalUpdate { .. } => 2,
            Request::Read { .. } | Request::Search { .. } => 3,
        }
    }
}

/// The answer for one entry.
#[derive(Debug, Clone)]
struct EntryResult {
    status: String,
    location: Option<String>,
    etag: Option<String>,
    last_modified: Option<i64>,
    resource: Option<Value>,
    outcome: Option<Value>,
}

fn at_entry(i: usize, e: ServiceError) -> ServiceError {
    let prefix = format!("Bundle.entry[{i}]");
    match e {
        ServiceError::Invalid(mut o) => {
            for issue in &mut o.issues {
                issue.expression = Some(match issue.expression.take() {
                    Some(x) if !x.is_empty() => format!("{prefix}.resource: {x}"),
                    _ => prefix.clone(),
                });
            }
            ServiceError::Invalid(o)
        }
        ServiceError::Forbidden(m) => ServiceError::Forbidden(format!("{prefix}: {m}")),
        ServiceError::NotFound { resource_type, id } => ServiceError::Invalid(OperationOutcome::single(
            Issue::error(IssueType::NotFound, format!("{resource_type}/{id} is not known")).at(prefix),
        )),
        ServiceError::VersionConflict { expected, current } => ServiceError::Invalid(OperationOutcome::single(
            Issue::error(IssueType::Conflict, format!("If-Match expected version {expected}, current is {current}"))
                .at(prefix),
        )),
        other => other,
    }
}

fn entry_error(i: usize, code: IssueType, msg: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(OperationOutcome::single(Issue::error(code, msg).at(format!("Bundle.entry[{i}]"))))
}

/// Replaces every `"reference": "<full url>"` whose full URL was assigned an id.
fn rewrite_references(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, val) in o.iter_mut() {
                if k == "reference" {
                    if let Some(new) = val.as_str().and_then(|s| map.get(s)) {
                        *val = Value::String(new.clone());
                    }
                } else {
                    rewrite_references(val, map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_references(x, map)),
        _ => {}
    }
}

fn status_of(w: &WriteResult) -> &'static str {
    if !w.changed {
        "204 No Content"
    } else if w.created {
        "201 Created"
    } else {
        "200 OK"
    }
}

fn parse_if_match(v: Option<&str>) -> Option<i64> {
    let s = v?.trim();
    s.strip_prefix("W/").unwrap_or(s).trim_matches('"').parse().ok()
}

impl FhirService {
    fn parse_entry(i: usize, entry: &Value) -> Result<Request> {
        let req =
            entry.get("request").ok_or_else(|| entry_error(i, IssueType::Required, "an entry needs a request"))?;
        let method = req.get("method").and_then(Value::as_str).unwrap_or_default();
        let url = req.get("url").and_then(Value::as_str).unwrap_or_default().trim_start_matches('/');
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (url, None),
        };
        let mut parts = path.split('/');
        let tname = parts.next().unwrap_or_default();
        let id = parts.next().map(str::to_string);
        let rtype = ResourceType::parse(tname).ok_or_else(|| {
            entry_error(i, IssueType::NotSupported, format!("request.url '{url}' names no supported resource type"))
        })?;
        let resource = || {
            entry
                .get("resource")
                .cloned()
                .ok_or_else(|| entry_error(i, IssueType::Required, "this request needs a resource"))
        };
        Ok(match (method, id, query) {
            ("POST", None, None) => Request::Create {
                rtype,
                resource: resource()?,
                if_none_exist: req.get("ifNoneExist").and_then(Value::as_str).map(str::to_string),
            },
            ("PUT", Some(id), None) => Request::Update {
                rtype,
                id,
                resource: resource()?,
                if_match: parse_if_match(req.get("ifMatch").and_then(Value::as_str)),
            },
            ("PUT", None, Some(q)) => Request::ConditionalUpdate { rtype, query: q, resource: resource()? },
            ("DELETE", Some(id), None) => Request::Delete { rtype, id },
            ("GET", Some(id), None) => Request::Read { rtype, id },
            ("GET", None, q) => Request::Search { rtype, query: q.unwrap_or_default() },
            _ => {
                return Err(entry_error(
                    i,
                    IssueType::NotSupported,
                    format!(
                        "'{method} {url}' is not supported in a bundle (POST type, PUT type/id or type?query, DELETE type/id, GET)"
                    ),
                ));
            }
        })
    }

    /// Ids of the resources matching a conditional query, within the caller's reach.
    async fn matches(&self, caller: &Caller, rtype: ResourceType, query: &str) -> Result<Vec<String>> {
        let params: Vec<(String, String)> = query_pairs(query);
        let req = parse_search(rtype, &params).map_err(|i| ServiceError::Invalid(OperationOutcome::single(i)))?;
        // Whether none, one or several match is all that counts: two ids at most.
        Ok(self.store.search_ids(&req, &Self::row_scope(caller, Some(rtype.as_str()), Perm::Search), 2).await?)
    }

    /// Conditional create (`If-None-Exist`): the existing match, or the new resource.
    /// `Ok(Err(id))` when exactly one resource already matches.
    pub async fn create_if_none_exist(
        &self,
        caller: &Caller,
        rtype: ResourceType,
        resource: Value,
        query: &str,
    ) -> Result<std::result::Result<WriteResult, String>> {
        let found = match self.matches(caller, rtype, query).await {
            Ok(f) => f,
            Err(e) => return self.failed(caller, "create", rtype.as_str(), None, e).await,
        };
        match found.len() {
            0 => Ok(Ok(self.create_as(caller, rtype, resource).await?)),
            1 => Ok(Err(found[0].clone())),
            n => {
                let e = ServiceError::VersionConflict { expected: 1, current: n as i64 };
                self.failed(caller, "create", rtype.as_str(), None, e).await
            }
        }
    }

    /// Conditional update (`PUT /{type}?query`): updates the one match, or creates.
    pub async fn update_where(
        &self,
        caller: &Caller,
        rtype: ResourceType,
        query: &str,
        mut resource: Value,
    ) -> Result<WriteResult> {
        let found = match self.matches(caller, rtype, query).await {
            Ok(f) => f,
            Err(e) => return self.failed(caller, "update", rtype.as_str(), None, e).await,
        };
        let id = match found.len() {
            0 => resource.get("id").and_then(Value::as_str).map_or_else(|| self.ids.new_id(), str::to_string),
            1 => found[0].clone(),
            n => {
                let e = ServiceError::VersionConflict { expected: 1, current: n as i64 };
                return self.failed(caller, "update", rtype.as_str(), None, e).await;
            }
        };
        if let Some(obj) = resource.as_object_mut() {
            obj.insert("id".into(), Value::String(id.clone()));
        }
        self.update_as(caller, rtype, &id, resource, None).await
    }

    /// `POST /` with a `batch` or `transaction` Bundle; returns the response Bundle.
    /// With `minimal` (`Prefer: return=minimal`) the response carries statuses and
    /// locations but not the stored resources.
    /// Checks every resource a bundle would write against the R4 rules, without the
    /// database: the content errors processing it would report (an HL7 message
    /// acknowledged before it is applied is checked with this first).
    pub fn validate_writes(&self, bundle: &Value) -> Result<()> {
        let entries = bundle.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for (i, e) in entries.iter().enumerate() {
            let Some(resource) = e.get("resource") else { continue };
            resource.get("resourceType").and_then(Value::as_str).and_then(ResourceType::parse).ok_or_else(|| {
                at_entry(i, invalid(IssueType::NotSupported, "unsupported resource type", "resourceType"))
            })?;
            lianyi_fhir::validate_resource(resource)
                .map_err(|e| at_entry(i, ServiceError::Invalid(e.into_outcome())))?;
            let rtype = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
            crate::rules::check(rtype, resource, self.clock.now_ms())
                .map_err(|o| at_entry(i, ServiceError::Invalid(o)))?;
        }
        Ok(())
    }

    pub async fn process_bundle(&self, caller: &Caller, bundle: Value, minimal: bool) -> Result<Value> {
        self.process_bundle_with(caller, bundle, minimal, &[]).await
    }

    /// Like [`FhirService::process_bundle`]; a transaction also writes `side` rows
    /// (a message's outcome) in its database transaction.
    pub async fn process_bundle_with(
        &self,
        caller: &Caller,
        bundle: Value,
        minimal: bool,
        side: &[lianyi_store::messages::SideWrite],
    ) -> Result<Value> {
        self.process_bundle_seen(caller, bundle, minimal, side, &[]).await
    }

    /// Like [`FhirService::process_bundle_with`]; a transaction's audit records also
    /// take the reads `seen` that led to it (when it fails, they are the caller's to
    /// record: [`FhirService::record_seen`]).
    pub async fn process_bundle_seen(
        &self,
        caller: &Caller,
        mut bundle: Value,
        minimal: bool,
        side: &[lianyi_store::messages::SideWrite],
        seen: &[crate::fhir::Seen],
    ) -> Result<Value> {
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(invalid(IssueType::Invalid, "the body must be a Bundle", "resourceType"));
        }
        let kind = bundle.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        if kind != "transaction" && kind != "batch" {
            return Err(invalid(
                IssueType::Value,
                format!("Bundle.type '{kind}' cannot be processed (rule: batch or transaction)"),
                "Bundle.type",
            ));
        }
        // The entries' resources are validated one by one when each entry is checked
        // (errors then name Bundle.entry[n]); here only the bundle's own structure.
        let mut entries: Vec<Value> = match bundle.get_mut("entry").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        let resources: Vec<Option<Value>> =
            entries.iter_mut().map(|e| e.as_object_mut().and_then(|o| o.shift_remove("resource"))).collect();
        if !entries.is_empty() {
            bundle["entry"] = Value::Array(entries.clone());
        }
        if let Err(e) = lianyi_fhir::validate_resource(&bundle) {
            return self.failed(caller, &kind, "Bundle", None, ServiceError::Invalid(e.into_outcome())).await;
        }
        for (e, r) in entries.iter_mut().zip(resources) {
            if let (Some(o), Some(r)) = (e.as_object_mut(), r) {
                o.insert("resource".into(), r);
            }
        }
        if kind == "batch" {
            let mut out = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                let r = match Self::parse_entry(i, entry) {
                    Ok(req) => self.run_alone(caller, req).await,
                    Err(e) => Err(e),
                };
                out.push(match r {
                    Ok(x) => x,
                    Err(e) => error_result(&e),
                });
            }
            if minimal {
                out.iter_mut().for_each(|x| x.resource = None);
            }
            return Ok(response_bundle("batch-response", out));
        }
        self.transaction(caller, entries, minimal, side, seen).await
    }

    /// One batch entry, with the ordinary single-resource paths (each audited).
    async fn run_alone(&self, caller: &Caller, req: Request) -> Result<EntryResult> {
        match req {
            Request::Create { rtype, resource, if_none_exist } => {
                if let Some(q) = if_none_exist {
                    let found = self.matches(caller, rtype, &q).await?;
                    match found.len() {
                        0 => {}
                        1 => return Ok(located("200 OK", rtype.as_str(), &found[0], None)),
                        _ => {
                            return Err(ServiceError::Invalid(OperationOutcome::single(Issue::error(
                                IssueType::Conflict,
                                "ifNoneExist matched more than one resource (rule: at most one)".to_string(),
                            ))));
                        }
                    }
                }
                let w = self.create_as(caller, rtype, resource).await?;
                Ok(written(&w))
            }
            Request::Update { rtype, id, resource, if_match } => {
                Ok(written(&self.update_as(caller, rtype, &id, resource, if_match).await?))
            }
            Request::ConditionalUpdate { rtype, query, mut resource } => {
                let found = self.matches(caller, rtype, &query).await?;
                let id = match found.len() {
                    0 => self.ids.new_id(),
                    1 => found[0].clone(),
                    n => return Err(ServiceError::VersionConflict { expected: 1, current: n as i64 }),
                };
                resource["id"] = Value::String(id.clone());
                Ok(written(&self.update_as(caller, rtype, &id, resource, None).await?))
            }
            Request::Delete { rtype, id } => Ok(written(&self.delete_as(caller, rtype, &id, None).await?)),
            Request::Read { rtype, id } => {
                let r = self.reader(caller, rtype).await?.read(&id).await?;
                let mut x = located("200 OK", rtype.as_str(), &id, Some(r.version));
                x.resource = serde_json::from_str(&r.body).ok();
                Ok(x)
            }
            Request::Search { rtype, query } => {
                let req = parse_search(rtype, &query_pairs(&query))
                    .map_err(|i| ServiceError::Invalid(OperationOutcome::single(i)))?;
                let page = self.search_as(caller, &req).await?;
                let entries: Vec<Value> = page
                    .resources
                    .iter()
                    .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
                    .map(|r| json!({"resource": r, "search": {"mode": "match"}}))
                    .collect();
                let mut res = json!({"resourceType": "Bundle", "type": "searchset"});
                if let Some(t) = page.total {
                    res["total"] = json!(t);
                }
                if !entries.is_empty() {
                    res["entry"] = Value::Array(entries);
                }
                Ok(EntryResult {
                    status: "200 OK".into(),
                    location: None,
                    etag: None,
                    last_modified: None,
                    resource: Some(res),
                    outcome: None,
                })
            }
        }
    }

    /// All or nothing.
    async fn transaction(
        &self,
        caller: &Caller,
        entries: Vec<Value>,
        minimal: bool,
        side: &[lianyi_store::messages::SideWrite],
        seen: &[crate::fhir::Seen],
    ) -> Result<Value> {
        let mut parsed = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            match Self::parse_entry(i, entry) {
                Ok(r) => parsed.push((i, entry.get("fullUrl").and_then(Value::as_str).map(str::to_string), r)),
                Err(e) => return self.failed(caller, "transaction", "Bundle", None, e).await,
            }
        }
        // Every condition (ifNoneExist, conditional update) is answered by one query.
        let mut conditions: Vec<(usize, lianyi_fhir::search::SearchRequest, lianyi_store::RowScope)> = Vec::new();
        for (i, _, r) in &parsed {
            let (rtype, query) = match r {
                Request::Create { rtype, if_none_exist: Some(q), .. } => (*rtype, q),
                Request::ConditionalUpdate { rtype, query, .. } => (*rtype, query),
                _ => continue,
            };
            match parse_search(rtype, &query_pairs(query)) {
                Ok(req) => conditions.push((*i, req, Self::row_scope(caller, Some(rtype.as_str()), Perm::Search))),
                Err(issue) => {
                    let e = at_entry(*i, ServiceError::Invalid(OperationOutcome::single(issue)));
                    return self.failed(caller, "transaction", "Bundle", None, e).await;
                }
            }
        }
        let searches: Vec<_> = conditions.iter().map(|(_, req, scope)| (req, scope)).collect();
        // Whether none, one or several match is all that counts: two ids at most.
        let mut matched: HashMap<usize, Vec<String>> = match self.store.search_ids_many(&searches, 2).await {
            Ok(found) => conditions.iter().map(|(i, _, _)| *i).zip(found).collect(),
            Err(e) => return self.failed(caller, "transaction", "Bundle", None, ServiceError::from(e)).await,
        };

        // Ids for created resources, so references to their full URLs can be rewritten.
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut assigned: HashMap<usize, String> = HashMap::new();
        // Resources that already exist and are updated: read in one query below.
        let mut to_read: Vec<(String, String)> = Vec::new();
        let mut results: Vec<Option<EntryResult>> = vec![None; parsed.len()];
        for (i, full_url, r) in &parsed {
            let (rtype, id) = match r {
                Request::Create { rtype, .. } => {
                    let found = matched.remove(i).unwrap_or_default();
                    if found.len() > 1 {
                        let e = entry_error(
                            *i,
                            IssueType::Conflict,
                            "ifNoneExist matched more than one resource (rule: at most one)".to_string(),
                        );
                        return self.failed(caller, "transaction", "Bundle", None, e).await;
                    }
                    match found.into_iter().next() {
                        Some(id) => {
                            results[*i] = Some(located("200 OK", rtype.as_str(), &id, None));
                            (*rtype, id)
                        }
                        None => {
                            let id = self.ids.new_id();
                            assigned.insert(*i, id.clone());
                            (*rtype, id)
                        }
                    }
                }
                Request::ConditionalUpdate { rtype, .. } => {
                    let found = matched.remove(i).unwrap_or_default();
                    if found.len() > 1 {
                        let e = entry_error(
                            *i,
                            IssueType::Conflict,
                            "the condition matched more than one resource (rule: at most one)".to_string(),
                        );
                        return self.failed(caller, "transaction", "Bundle", None, e).await;
                    }
                    let id = match found.into_iter().next() {
                        Some(id) => {
                            to_read.push((rtype.as_str().to_string(), id.clone()));
                            id
                        }
                        None => self.ids.new_id(),
                    };
                    assigned.insert(*i, id.clone());
                    (*rtype, id)
                }
                Request::Update { rtype, id, .. } => {
                    to_read.push((rtype.as_str().to_string(), id.clone()));
                    (*rtype, id.clone())
                }
                _ => continue,
            };
            if let Some(u) = full_url {
                ids.insert(u.clone(), format!("{rtype}/{id}"));
            }
        }
        let existing: HashMap<(String, String), lianyi_store::StoredResource> =
            match self.store.read_many(&to_read).await {
                Ok(rows) => rows
                    .into_iter()
                    .filter(|r| !r.deleted)
                    .map(|r| ((r.resource_type.clone(), r.id.clone()), r))
                    .collect(),
                Err(e) => return self.failed(caller, "transaction", "Bundle", None, ServiceError::from(e)).await,
            };
        let stored = |rtype: ResourceType, id: &str| existing.get(&(rtype.as_str().to_string(), id.to_string()));

        // Check every write and build the operations, in processing order.
        let mut order: Vec<usize> = (0..parsed.len()).collect();
        order.sort_by_key(|&k| parsed[k].2.order());
        let mut ops: Vec<(usize, WriteOp, &'static str)> = Vec::new();
        let mut gets: Vec<usize> = Vec::new();
        for &k in &order {
            let (i, _, r) = &parsed[k];
            let prepared: Result<Option<(WriteOp, &'static str)>> = match r {
                Request::Create { rtype, resource, .. } => match assigned.get(i) {
                    None => Ok(None), // ifNoneExist matched: nothing to write
                    Some(id) => {
                        let mut resource = resource.clone();
                        rewrite_references(&mut resource, &ids);
                        Self::permit_check(caller, rtype.as_str(), Perm::Create)
                            .and_then(|()| self.check(*rtype, resource))
                            .and_then(|c| self.op(c, id.clone(), WriteKind::Create, self.campus_for(caller)))
                            .and_then(|op| Self::own_compartment(caller, &op).map(|()| Some((op, "create"))))
                    }
                },
                Request::Update { rtype, id, resource, if_match } => {
                    let mut resource = resource.clone();
                    rewrite_references(&mut resource, &ids);
                    self.update_op(caller, *rtype, id, resource, *if_match, stored(*rtype, id))
                        .map(|op| Some((op, "update")))
                }
                Request::ConditionalUpdate { rtype, resource, .. } => {
                    let id = assigned.get(i).cloned().unwrap_or_default();
                    let mut resource = resource.clone();
                    resource["id"] = Value::String(id.clone());
                    rewrite_references(&mut resource, &ids);
                    self.update_op(caller, *rtype, &id, resource, None, stored(*rtype, &id))
                        .map(|op| Some((op, "update")))
                }
                Request::Delete { rtype, id } => {
                    let existing = self.store.read(rtype.as_str(), id).await?.filter(|r| !r.deleted);
                    Self::permit_check(caller, rtype.as_str(), Perm::Delete)
                        .and_then(|()| match &existing {
                            Some(r) => Self::visible(caller, r, Perm::Delete),
                            None => Ok(()),
                        })
                        .map(|()| {
                            Some((
                                WriteOp {
                                    resource_type: rtype.as_str().into(),
                                    id: id.clone(),
                                    kind: WriteKind::Delete { if_match: None },
                                    resource: None,
                                    index: Default::default(),
                                    campus: None,
                                    patient: existing.and_then(|r| r.patient),
                                },
                                "delete",
                            ))
                        })
                }
                Request::Read { .. } | Request::Search { .. } => {
                    gets.push(*i);
                    Ok(None)
                }
            };
            match prepared {
                Ok(Some((op, action))) => ops.push((*i, op, action)),
                Ok(None) => {}
                Err(e) => return self.failed(caller, "transaction", "Bundle", None, at_entry(*i, e)).await,
            }
        }

        // Rules on stored data (a booking's Slot, a prescription's safety checks) judge
        // the writes of their types against what is stored before this transaction.
        let checks: Vec<(usize, &WriteOp, bool)> = ops
            .iter()
            .filter(|(_, op, _)| self.has_rules_for(&op.resource_type))
            .map(|(i, op, action)| {
                let new = *action == "create"
                    || ResourceType::parse(&op.resource_type).is_some_and(|rt| stored(rt, &op.id).is_none());
                (*i, op, new)
            })
            .collect();
        if let Err((entry, e)) = self.stored_rules(&checks).await {
            return self.failed(caller, "transaction", "Bundle", None, at_entry(entry, e)).await;
        }

        // One database transaction for every write and its audit record.
        let now = self.clock.now_ms();
        let audit: Vec<_> = seen
            .iter()
            .map(|s| s.0.clone())
            .chain(ops.iter().map(|(_, op, action)| {
                let mut e = self.entry(caller, action, "success", &op.resource_type, Some(&op.id));
                e.patient = op.patient.clone();
                e
            }))
            .collect();
        let positions: Vec<usize> = ops.iter().map(|(i, _, _)| *i).collect();
        let written = self
            .store
            .write_grouped_with(
                ops.into_iter().map(|(_, op, _)| op).collect(),
                now,
                audit,
                self.audit.hasher(),
                side.to_vec(),
            )
            .await;
        let written = match written {
            Ok(w) => w,
            Err(StoreError::VersionConflict { expected, current, resource_type, id }) => {
                let pos = parsed
                    .iter()
                    .find(|(_, _, r)| matches!(r, Request::Update { id: x, .. } if *x == id))
                    .map_or(0, |p| p.0);
                let e = entry_error(
                    pos,
                    IssueType::Conflict,
                    format!("{resource_type}/{id}: If-Match expected version {expected}, current is {current}"),
                );
                return self.failed(caller, "transaction", "Bundle", None, e).await;
            }
            Err(e) => return self.failed(caller, "transaction", "Bundle", None, ServiceError::from(e)).await,
        };
        for (pos, w) in positions.into_iter().zip(written) {
            let mut x = written_result(&w);
            if let Some(body) = w.body.as_ref().filter(|_| !minimal) {
                x.resource =
                    self.protector.reveal_body(&w.resource_type, body).ok().and_then(|b| serde_json::from_str(&b).ok());
            }
            results[pos] = Some(x);
        }
        for i in gets {
            let (_, _, r) = &parsed[i];
            let req = match r {
                Request::Read { rtype, id } => Request::Read { rtype: *rtype, id: id.clone() },
                Request::Search { rtype, query } => Request::Search { rtype: *rtype, query: query.clone() },
                _ => continue,
            };
            results[i] = Some(match self.run_alone(caller, req).await {
                Ok(x) => x,
                Err(e) => error_result(&e),
            });
        }
        Ok(response_bundle(
            "transaction-response",
            results.into_iter().map(|r| r.unwrap_or_else(|| located("200 OK", "", "", None))).collect(),
        ))
    }
}

/// `a=1&b=x%7Cy` → pairs, percent- and plus-decoded (conditional URLs, criteria).
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn located(status: &str, rtype: &str, id: &str, version: Option<i64>) -> EntryResult {
    EntryResult {
        status: status.into(),
        location: (!rtype.is_empty()).then(|| match version {
            Some(v) => format!("{rtype}/{id}/_history/{v}"),
            None => format!("{rtype}/{id}"),
        }),
        etag: version.map(|v| format!("W/\"{v}\"")),
        last_modified: None,
        resource: None,
        outcome: None,
    }
}

fn written_result(w: &WriteResult) -> EntryResult {
    EntryResult {
        status: status_of(w).into(),
        location: w.changed.then(|| format!("{}/{}/_history/{}", w.resource_type, w.id, w.version)),
        etag: w.changed.then(|| format!("W/\"{}\"", w.version)),
        last_modified: w.changed.then_some(w.last_updated),
        resource: None,
        outcome: None,
    }
}

fn written(w: &WriteResult) -> EntryResult {
    let mut x = written_result(w);
    x.resource = w.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
    x
}

fn error_result(e: &ServiceError) -> EntryResult {
    let (status, outcome) = match e {
        ServiceError::Invalid(o) => ("400 Bad Request", o.clone()),
        ServiceError::NotFound { resource_type, id } => (
            "404 Not Found",
            OperationOutcome::single(Issue::error(IssueType::NotFound, format!("{resource_type}/{id} is not known"))),
        ),
        ServiceError::Gone { resource_type, id, .. } => (
            "410 Gone",
            OperationOutcome::single(Issue::error(IssueType::Deleted, format!("{resource_type}/{id} was deleted"))),
        ),
        ServiceError::Forbidden(m) => {
            ("403 Forbidden", OperationOutcome::single(Issue::error(IssueType::Forbidden, m.clone())))
        }
        ServiceError::VersionConflict { expected, current } => (
            "412 Precondition Failed",
            OperationOutcome::single(Issue::error(
                IssueType::Conflict,
                format!("expected version {expected}, current {current}"),
            )),
        ),
        ServiceError::Conflict { resource_type, id } => (
            "409 Conflict",
            OperationOutcome::single(Issue::error(IssueType::Conflict, format!("{resource_type}/{id} exists"))),
        ),
        _ => (
            "500 Internal Server Error",
            OperationOutcome::single(Issue::error(IssueType::Exception, "internal error")),
        ),
    };
    EntryResult {
        status: status.into(),
        location: None,
        etag: None,
        last_modified: None,
        resource: None,
        outcome: Some(outcome.to_json()),
    }
}

fn response_bundle(kind: &str, results: Vec<EntryResult>) -> Value {
    let entries: Vec<Value> = results
        .into_iter()
        .map(|r| {
            let mut response = json!({"status": r.status});
            if let Some(l) = r.location {
                response["location"] = json!(l);
            }
            if let Some(e) = r.etag {
                response["etag"] = json!(e);
            }
            if let Some(m) = r.last_modified {
                response["lastModified"] = json!(lianyi_fhir::datetime::format_instant(m));
            }
            if let Some(o) = r.outcome {
                response["outcome"] = o;
            }
            let mut entry = json!({"response": response});
            if let Some(res) = r.resource {
                entry["resource"] = res;
            }
            entry
        })
        .collect();
    let mut b = json!({"resourceType": "Bundle", "type": kind});
    if !entries.is_empty() {
        b["entry"] = Value::Array(entries);
    }
    b
}
