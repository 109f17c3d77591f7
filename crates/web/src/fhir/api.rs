//! FHIR R4 REST handlers: parse, call the FHIR service once, render.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lianyi_fhir::datetime::{format_instant, parse_range};
use lianyi_fhir::search::{DEFAULT_COUNT, MAX_COUNT, parse_search};
use lianyi_fhir::{Issue, IssueType, OperationOutcome, ResourceType};
use lianyi_store::{HistoryQuery, StoredResource, WriteResult};
use serde_json::Value;

use super::bundle::{self, Link};
use super::capability::capability_statement;
use crate::AppState;
use crate::ui::auth::RemoteCaller;
use crate::ui::error::{FHIR_JSON, FhirError};
use lianyi_services::export::{ExportLevel, JobState};

type FhirResult = Result<Response, FhirError>;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", post(bundle_post))
        .route("/metadata", get(metadata))
        .route("/_history", get(history_system))
        .route("/{rtype}", get(search_get).post(create).put(conditional_update))
        .route("/{rtype}/_search", post(search_post))
        .route("/{rtype}/_history", get(history_type))
        .route("/{rtype}/{id}", get(read).put(update).delete(delete).patch(patch))
        .route("/Patient/{id}/$everything", get(everything))
        .route("/Patient/$match", post(match_patient))
        .route("/$export", get(export_system))
        .route("/$import", post(import_ndjson))
        .route("/Patient/$export", get(export_patients))
        .route("/Group/{id}/$export", get(export_group))
        .route("/$export-status/{job}", get(export_status).delete(export_delete))
        .route("/$export-file/{job}/{file}", get(export_file))
        .route("/{rtype}/{id}/_history", get(history_instance))
        .route("/{rtype}/{id}/_history/{vid}", get(vread))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_only))
}

fn is_json_format(f: &str) -> bool {
    let f = f.split(';').next().unwrap_or_default().trim();
    matches!(f, "json" | "application/json" | "application/fhir+json" | "*/*" | "application/*" | "")
}

/// The server speaks JSON only: `_format` or an `Accept` that rules JSON out gets 406.
async fn json_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let format = req
        .uri()
        .query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "_format").map(|(_, v)| v.into_owned()));
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let refused = match (&format, &accept) {
        (Some(f), _) => !is_json_format(f),
        (None, Some(a)) => !a.split(',').any(is_json_format) && !a.contains("json"),
        (None, None) => false,
    };
    if refused {
        return FhirError::new(
            StatusCode::NOT_ACCEPTABLE,
            IssueType::NotSupported,
            "this server returns JSON only (rule: _format=json or Accept: application/fhir+json)",
        )
        .into_response();
    }
    next.run(req).await
}

async fn not_found() -> FhirError {
    FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "no such FHIR endpoint")
}

fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

/// Audit events come from the audit log, which only the server writes.
const AUDIT_EVENT: &str = "AuditEvent";

fn read_only(rtype: ResourceType) -> Result<(), FhirError> {
    if rtype.as_str() == AUDIT_EVENT {
        return Err(FhirError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            "AuditEvent is read-only: the server records every access itself (read and search are supported)",
        ));
    }
    Ok(())
}

/// `GET /AuditEvent?`: `date` (with prefixes), `patient`, `subtype` (the action),
/// `altid` (the actor), `_count`, `_offset`.
async fn audit_search(
    state: &AppState,
    caller: &lianyi_security::Caller,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) -> FhirResult {
    use lianyi_fhir::search::Prefix;
    let mut q = lianyi_store::audit::AuditQuery { limit: DEFAULT_COUNT, ..Default::default() };
    let mut applied = Vec::new();
    for (k, v) in &params {
        match k.as_str() {
            "_count" => {
                q.limit =
                    v.parse().ok().filter(|n| *n <= MAX_COUNT).ok_or_else(|| {
                        bad_param(k, format!("'_count' must be a whole number from 0 to {MAX_COUNT}"))
                    })?;
                continue;
            }
            "_offset" => {
                q.offset = v.parse().map_err(|_| bad_param(k, "'_offset' must be a whole number".into()))?;
                continue;
            }
            "_format" | "_pretty" => continue,
            "patient" => q.patient = Some(v.trim_start_matches("Patient/").to_string()),
            "subtype" => q.action = Some(v.rsplit('|').next().unwrap_or_default().to_string()),
            "altid" => q.actor = Some(v.clone()),
            "date" => {
                let p = lianyi_fhir::search::parse_search(
                    ResourceType::parse("Patient").ok_or_else(|| bad_param(k, "internal".into()))?,
                    &[("_lastUpdated".to_string(), v.clone())],
                )
                .map_err(|_| bad_param(k, format!("'{v}' is not a date (rule: [ge|le|gt|lt|eq]YYYY[-MM[-DD]])")))?;
                if let Some(lianyi_fhir::search::Criterion::LastUpdated(values)) = p.criteria.first()
                    && let Some(d) = values.first()
                {
                    match d.prefix {
                        Prefix::Ge | Prefix::Gt => {
                            q.since = Some(if d.prefix == Prefix::Gt { d.range.high + 1 } else { d.range.low })
                        }
                        Prefix::Le | Prefix::Lt => {
                            q.until = Some(if d.prefix == Prefix::Le { d.range.high + 1 } else { d.range.low })
                        }
                        Prefix::Eq => {
                            q.since = Some(d.range.low);
                            q.until = Some(d.range.high + 1);
                        }
                        Prefix::Ne => {
                            return Err(bad_param(k, "the ne prefix is not supported on AuditEvent.date".into()));
                        }
                    }
                }
            }
            other => {
                return Err(FhirError::at(
                    StatusCode::BAD_REQUEST,
                    Issue::error(
                        IssueType::NotSupported,
                        format!("unknown search parameter '{other}' for AuditEvent (date, patient, subtype, altid)"),
                    )
                    .at(other.to_string()),
                ));
            }
        }
        applied.push((k.clone(), v.clone()));
    }
    let (total, events) = state.fhir.audit_events(caller, &q).await?;
    let base = base_url(state, headers);
    let links = paging_links(&format!("{base}/fhir/AuditEvent"), &applied, q.limit, q.offset, total);
    let bodies: Vec<StoredResource> = events
        .into_iter()
        .map(|v| StoredResource {
            resource_type: AUDIT_EVENT.into(),
            id: v["id"].as_str().unwrap_or_default().to_string(),
            version: 1,
            last_updated: 0,
            campus: None,
            patient: None,
            deleted: false,
            method: String::new(),
            body: v.to_string(),
        })
        .collect();
    Ok(json_response(StatusCode::OK, bundle::searchset(&base, Some(total), links, &bodies, &[], state.fhir.now_ms())))
}

fn resource_type(name: &str) -> Result<ResourceType, FhirError> {
    ResourceType::parse(name).ok_or_else(|| FhirError::unknown_type(name))
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// `Sat, 21 Nov 2026 23:10:00 GMT`
fn http_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = lianyi_fhir::datetime::civil_from_days(days);
    let secs = ms.rem_euclid(86_400_000) / 1000;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn version_headers(resp: &mut Response, version: i64, last_updated: i64) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(last_updated)) {
        h.insert(header::LAST_MODIFIED, v);
    }
}

fn resource_response(r: &StoredResource) -> Response {
    let mut resp = json_response(StatusCode::OK, r.body.clone());
    version_headers(&mut resp, r.version, r.last_updated);
    resp
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// `If-Match: W/"3"` (or `"3"`) → 3.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, FhirError> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let s = v.to_str().unwrap_or_default().trim();
    let inner = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    inner.parse::<i64>().map(Some).map_err(|_| {
        FhirError::at(
            StatusCode::BAD_REQUEST,
            Issue::error(IssueType::Invalid, format!("If-Match '{s}' is not a version tag (rule: W/\"<versionId>\")"))
                .at("If-Match"),
        )
    })
}

/// Reads and parses a JSON request body within the configured size limit.
async fn json_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, FhirError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if mime != "application/fhir+json" && mime != "application/json" {
            return Err(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                IssueType::NotSupported,
                format!("Content-Type '{mime}' is not supported (rule: application/fhir+json)"),
            ));
        }
    }
    let limit = state.config.max_body_bytes;
    let too_large = || {
        FhirError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        FhirError::at(
            StatusCode::BAD_REQUEST,
            Issue::error(IssueType::Structure, format!("malformed JSON: {e}")).at(format!(
                "line {}, column {}",
                e.line(),
                e.column()
            )),
        )
    })
}

/// The response to a create or update, honouring `Prefer: return=...`.
fn write_response(base: &str, headers: &HeaderMap, rtype: ResourceType, w: &WriteResult) -> Response {
    let status = if w.created { StatusCode::CREATED } else { StatusCode::OK };
    let prefer = headers.get("prefer").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut resp = if prefer.contains("return=minimal") {
        status.into_response()
    } else if prefer.contains("return=OperationOutcome") {
        let oo = OperationOutcome::information(format!("{rtype}/{} stored as version {}", w.id, w.version));
        json_response(status, oo.to_json().to_string())
    } else {
        json_response(status, w.body.clone().unwrap_or_default())
    };
    version_headers(&mut resp, w.version, w.last_updated);
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/fhir/{rtype}/{}/_history/{}", w.id, w.version)) {
        resp.headers_mut().insert(header::LOCATION, v.clone());
        if w.created {
            resp.headers_mut().insert(header::CONTENT_LOCATION, v);
        }
    }
    resp
}

/// `POST /fhir` with a batch or transaction Bundle.
pub(crate) async fn bundle_post(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    headers: HeaderMap,
    body: Body,
) -> FhirResult {
    let bundle = json_body(&state, &headers, body).await?;
    let minimal = headers.get("prefer").and_then(|v| v.to_str().ok()).is_some_and(|p| p.contains("return=minimal"));
    let out = state.fhir.process_bundle(&caller, bundle, minimal).await?;
    Ok(json_response(StatusCode::OK, out.to_string()))
}

async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    let date = format_instant(state.fhir.now_ms());
    json_response(StatusCode::OK, capability_statement(&base, &date).to_string())
}

async fn create(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(rtype): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    read_only(rtype)?;
    let resource = json_body(&state, &headers, body).await?;
    let base = base_url(&state, &headers);
    if let Some(q) = headers.get("if-none-exist").and_then(|v| v.to_str().ok()) {
        // The header holds search parameters; tolerate a leading `Type?`.
        let q = q.split_once('?').map_or(q, |(_, rest)| rest).to_string();
        return match state.fhir.create_if_none_exist(&caller, rtype, resource, &q).await? {
            Ok(w) => Ok(write_response(&base, &headers, rtype, &w)),
            Err(id) => {
                let r = state.fhir.reader(&caller, rtype).await?.read(&id).await?;
                Ok(resource_response(&r))
            }
        };
    }
    let w = state.fhir.create(&state.fhir.permit(&caller, rtype).await?, resource).await?;
    Ok(write_response(&base, &headers, rtype, &w))
}

/// `PATCH /{type}/{id}` with a JSON Patch document.
async fn patch(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    read_only(rtype)?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.starts_with("application/json-patch+json") {
        return Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            "PATCH takes a JSON Patch document (rule: Content-Type application/json-patch+json)",
        ));
    }
    let expected = if_match(&headers)?;
    let limit = state.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        FhirError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            format!("request body is larger than {limit} bytes"),
        )
    })?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
        FhirError::at(StatusCode::BAD_REQUEST, Issue::error(IssueType::Structure, format!("malformed JSON: {e}")))
    })?;
    let w = state.fhir.patch(&caller, rtype, &id, &doc, expected).await?;
    Ok(write_response(&base_url(&state, &headers), &headers, rtype, &w))
}

/// `GET /Patient/{id}/$everything` (`_type`, `_since`, `_count`, `_offset`).
async fn everything(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> FhirResult {
    let mut types: Option<Vec<String>> = None;
    let mut since = None;
    let mut count = 100usize;
    let mut offset = 0usize;
    let mut applied = Vec::new();
    for (k, v) in query_pairs(raw.as_deref()) {
        match k.as_str() {
            "_type" => {
                let list: Vec<String> = v.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
                if let Some(bad) = list.iter().find(|t| ResourceType::parse(t).is_none()) {
                    return Err(bad_param(&k, format!("'{bad}' is not a supported resource type")));
                }
                types = Some(list);
            }
            "_since" => {
                since = Some(parse_range(&v).ok_or_else(|| bad_param(&k, format!("'{v}' is not an instant")))?.low)
            }
            "_count" => {
                count = v
                    .parse()
                    .ok()
                    .filter(|n| *n <= MAX_COUNT)
                    .ok_or_else(|| bad_param(&k, format!("'_count' must be 0 to {MAX_COUNT}")))?;
                continue;
            }
            "_offset" => {
                offset = v.parse().map_err(|_| bad_param(&k, "'_offset' must be a whole number".into()))?;
                continue;
            }
            "_format" | "_pretty" => continue,
            other => {
                return Err(bad_param(
                    other,
                    format!("'{other}' is not a parameter of $everything (_type, _since, _count)"),
                ));
            }
        }
        applied.push((k, v));
    }
    let (total, rows) = state.fhir.everything(&caller, &id, types.as_deref(), since, count, offset).await?;
    let base = base_url(&state, &headers);
    let links = paging_links(&format!("{base}/fhir/Patient/{id}/$everything"), &applied, count, offset, total);
    Ok(json_response(StatusCode::OK, bundle::searchset(&base, Some(total), links, &rows, &[], state.fhir.now_ms())))
}

/// `POST /Patient/$match` with a Parameters resource (`resource`: the Patient,
/// `onlyCertainMatches`, `count`): the records the caller may see that may be that
/// patient, as a searchset with `search.score` and the match grade, best first.
async fn match_patient(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    headers: HeaderMap,
    bytes: Bytes,
) -> FhirResult {
    let bad = |path: &str, msg: &str| {
        FhirError::at(StatusCode::BAD_REQUEST, Issue::error(IssueType::Invalid, msg).at(path.to_string()))
    };
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
        FhirError::at(StatusCode::BAD_REQUEST, Issue::error(IssueType::Structure, format!("malformed JSON: {e}")))
    })?;
    if doc["resourceType"] != "Parameters" {
        return Err(bad("Parameters", "$match takes a Parameters resource"));
    }
    let params = doc["parameter"].as_array().cloned().unwrap_or_default();
    let param = |name: &str| params.iter().find(|p| p["name"] == name);
    let Some(resource) = param("resource").map(|p| p["resource"].clone()).filter(Value::is_object) else {
        return Err(bad("Parameters.parameter[resource]", "the parameter 'resource' (a Patient) is required"));
    };
    let only_certain = match param("onlyCertainMatches") {
        None => false,
        Some(p) => p["valueBoolean"]
            .as_bool()
            .ok_or_else(|| bad("Parameters.parameter[onlyCertainMatches]", "onlyCertainMatches takes valueBoolean"))?,
    };
    let count = match param("count") {
        None => 10,
        Some(p) => p["valueInteger"]
            .as_u64()
            .or_else(|| p["valuePositiveInt"].as_u64())
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| bad("Parameters.parameter[count]", "count takes a whole number from 1 to 100"))?
            as usize,
    };
    let found = match state.registry.match_patient(&caller, &resource, count, only_certain).await {
        Ok(f) => f,
        Err(lianyi_clinical::registry::RegistryError::Invalid(errors)) => {
            let msg = errors.iter().map(|e| e.detail.clone()).collect::<Vec<_>>().join("; ");
            return Err(bad("Parameters.parameter[resource]", &msg));
        }
        Err(lianyi_clinical::registry::RegistryError::Service(e)) => return Err(e.into()),
        Err(e) => return Err(FhirError::new(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, e.to_string())),
    };
    let base = base_url(&state, &headers);
    let entries: Vec<Value> = found
        .iter()
        .map(|(body, score)| {
            let grade = if score.score == 100 {
                "certain"
            } else if score.score >= lianyi_clinical::matching::PROBABLE {
                "probable"
            } else {
                "possible"
            };
            let mut ext = vec![
                serde_json::json!({"url": "http://hl7.org/fhir/StructureDefinition/match-grade", "valueCode": grade}),
            ];
            ext.extend(
                score
                    .reasons
                    .iter()
                    .map(|r| serde_json::json!({"url": "urn:lianyi:fhir:match-reason", "valueCode": r.code()})),
            );
            serde_json::json!({
                "fullUrl": format!("{base}/fhir/Patient/{}", body["id"].as_str().unwrap_or_default()),
                "resource": body,
                "search": {"mode": "match", "score": f64::from(score.score) / 100.0, "extension": ext}
            })
        })
        .collect();
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": format_instant(state.fhir.now_ms()),
        "total": entries.len(),
        "entry": entries,
    });
    Ok(json_response(StatusCode::OK, bundle.to_string()))
}

/// `POST /$import` with an NDJSON body (`application/fhir+ndjson`): every line a
/// resource with its id, stored as create-or-update under the caller's grants; the
/// answer is an OperationOutcome with the count per type and each rejected line.
async fn import_ndjson(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    headers: HeaderMap,
    body: Body,
) -> FhirResult {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !(ct.starts_with("application/fhir+ndjson") || ct.starts_with("application/ndjson")) {
        return Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            "$import takes NDJSON (rule: Content-Type application/fhir+ndjson, one resource per line)",
        ));
    }
    let limit = state.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        FhirError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            format!("request body is larger than {limit} bytes"),
        )
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let mut issues: Vec<Issue> = Vec::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut batch: Vec<(Value, Option<String>)> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    let campus = caller.access().home_campus().map(|c| c.as_str().to_string());
    let flush = |batch: Vec<(Value, Option<String>)>, lines: Vec<usize>| {
        let fhir = state.fhir.clone();
        let caller = caller.clone();
        async move { (fhir.load_batch(&caller, batch).await, lines) }
    };
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                batch.push((v, campus.clone()));
                lines.push(n + 1);
            }
            Err(e) => issues
                .push(Issue::error(IssueType::Structure, format!("malformed JSON: {e}")).at(format!("line {}", n + 1))),
        }
        if batch.len() >= 2000 {
            let (r, ls) = flush(std::mem::take(&mut batch), std::mem::take(&mut lines)).await;
            collect_import(r, &ls, &mut counts, &mut issues)?;
        }
    }
    if !batch.is_empty() {
        let (r, ls) = flush(batch, lines).await;
        collect_import(r, &ls, &mut counts, &mut issues)?;
    }
    let stored: usize = counts.values().sum();
    let summary = counts.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ");
    let mut all = vec![Issue {
        severity: lianyi_fhir::IssueSeverity::Information,
        code: IssueType::Informational,
        diagnostics: format!("stored {stored} resources ({summary}); rejected {}", issues.len()),
        expression: None,
    }];
    all.extend(issues);
    let status = if stored == 0 && all.len() > 1 { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok(json_response(status, OperationOutcome::new(all).to_json().to_string()))
}

fn collect_import(
    r: Result<lianyi_services::LoadReport, lianyi_store::StoreError>,
    lines: &[usize],
    counts: &mut std::collections::BTreeMap<String, usize>,
    issues: &mut Vec<Issue>,
) -> Result<(), FhirError> {
    let report = r.map_err(|e| FhirError::from(lianyi_services::ServiceError::Store(e)))?;
    for t in report.stored {
        *counts.entry(t).or_default() += 1;
    }
    for (pos, msg) in report.rejected {
        let line = lines.get(pos).copied().unwrap_or_default();
        issues.push(Issue::error(IssueType::Invalid, msg).at(format!("line {line}")));
    }
    Ok(())
}

async fn export_system(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> FhirResult {
    kick_off(&state, &caller, &headers, raw, ExportLevel::System, "/$export").await
}

async fn export_patients(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> FhirResult {
    kick_off(&state, &caller, &headers, raw, ExportLevel::Patient, "/Patient/$export").await
}

async fn export_group(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> FhirResult {
    let path = format!("/Group/{id}/$export");
    kick_off(&state, &caller, &headers, raw, ExportLevel::Group(id), &path).await
}

/// Bulk Data kick-off: `Prefer: respond-async` required; 202 with the status URL.
async fn kick_off(
    state: &AppState,
    caller: &lianyi_security::Caller,
    headers: &HeaderMap,
    raw: Option<String>,
    level: ExportLevel,
    path: &str,
) -> FhirResult {
    let prefer = headers.get("prefer").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !prefer.contains("respond-async") {
        return Err(FhirError::at(
            StatusCode::BAD_REQUEST,
            Issue::error(IssueType::Required, "a bulk export runs asynchronously: send 'Prefer: respond-async'")
                .at("Prefer"),
        ));
    }
    let mut types = None;
    let mut since = None;
    for (k, v) in query_pairs(raw.as_deref()) {
        match k.as_str() {
            "_type" => types = Some(v.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()),
            "_since" => {
                since = Some(parse_range(&v).ok_or_else(|| bad_param(&k, format!("'{v}' is not an instant")))?.low)
            }
            "_outputFormat" => {
                if !matches!(v.as_str(), "application/fhir+ndjson" | "application/ndjson" | "ndjson") {
                    return Err(bad_param(&k, format!("'{v}' is not supported (rule: application/fhir+ndjson)")));
                }
            }
            other => {
                return Err(bad_param(
                    other,
                    format!("'{other}' is not a parameter of $export (_type, _since, _outputFormat)"),
                ));
            }
        }
    }
    let base = base_url(state, headers);
    let request = format!("{base}/fhir{path}{}", raw.map(|q| format!("?{q}")).unwrap_or_default());
    let req = lianyi_services::export::ExportRequest { level, types, since, request };
    let job = state.fhir.start_export(caller, &state.exports, &state.config.export_dir, req).await?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/fhir/$export-status/{job}")) {
        resp.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(resp)
}

async fn export_status(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> FhirResult {
    let Some(j) = state.exports.get(&job, &caller) else {
        return Err(FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "no such export job of yours"));
    };
    match &j.state {
        JobState::Running { done_types, total_types } => {
            let mut resp = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("{done_types} of {total_types} types")) {
                resp.headers_mut().insert("x-progress", v);
            }
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(resp)
        }
        JobState::Done { files } => {
            let body = lianyi_services::export::manifest(&j, files, &base_url(&state, &headers));
            let mut resp = (StatusCode::OK, body.to_string()).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(resp)
        }
        JobState::Failed(_) => Err(FhirError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            "the export failed; see the server log",
        )),
    }
}

async fn export_delete(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(job): Path<String>,
) -> FhirResult {
    if state.exports.remove(&job, &caller) {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "no such export job of yours"))
    }
}

async fn export_file(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path((job, file)): Path<(String, String)>,
) -> FhirResult {
    let path = state.exports.get(&job, &caller).and_then(|j| lianyi_services::export::file_path(&j, &file));
    let Some(path) = path else {
        return Err(FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "no such export file of yours"));
    };
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|_| FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "the export file is gone"))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+ndjson"));
    Ok(resp)
}

/// `PUT /{type}?query`: conditional update.
async fn conditional_update(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    read_only(rtype)?;
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return Err(FhirError::new(
            StatusCode::BAD_REQUEST,
            IssueType::Required,
            "a conditional update needs search parameters (PUT /Type?identifier=...); to update by id use PUT /Type/id",
        ));
    };
    let resource = json_body(&state, &headers, body).await?;
    let w = state.fhir.update_where(&caller, rtype, &q, resource).await?;
    Ok(write_response(&base_url(&state, &headers), &headers, rtype, &w))
}

async fn update(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    read_only(rtype)?;
    let expected = if_match(&headers)?;
    let resource = json_body(&state, &headers, body).await?;
    let w = state.fhir.update(&state.fhir.permit(&caller, rtype).await?, &id, resource, expected).await?;
    Ok(write_response(&base_url(&state, &headers), &headers, rtype, &w))
}

async fn delete(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    read_only(rtype)?;
    let expected = if_match(&headers)?;
    let w = state.fhir.delete(&state.fhir.permit(&caller, rtype).await?, &id, expected).await?;
    let text = if w.changed {
        format!("{rtype}/{id} deleted (version {})", w.version)
    } else {
        format!("{rtype}/{id} does not exist or was already deleted; nothing changed")
    };
    let mut resp = json_response(StatusCode::OK, OperationOutcome::information(text).to_json().to_string());
    if w.changed {
        version_headers(&mut resp, w.version, w.last_updated);
    }
    Ok(resp)
}

async fn read(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path((rtype, id)): Path<(String, String)>,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    if rtype.as_str() == AUDIT_EVENT {
        let v = state.fhir.audit_event(&caller, &id).await?;
        return Ok(json_response(StatusCode::OK, v.to_string()));
    }
    let r = state.fhir.reader(&caller, rtype).await?.read(&id).await?;
    Ok(resource_response(&r))
}

async fn vread(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path((rtype, id, vid)): Path<(String, String, String)>,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    let version = vid.parse::<i64>().map_err(|_| {
        FhirError::new(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            format!("'{vid}' is not a version id of {rtype}/{id}"),
        )
    })?;
    if rtype.as_str() == AUDIT_EVENT {
        if version != 1 {
            return Err(FhirError::new(
                StatusCode::NOT_FOUND,
                IssueType::NotFound,
                "audit events have one version only",
            ));
        }
        let v = state.fhir.audit_event(&caller, &id).await?;
        return Ok(json_response(StatusCode::OK, v.to_string()));
    }
    let r = state.fhir.reader(&caller, rtype).await?.vread(&id, version).await?;
    Ok(resource_response(&r))
}

fn bad_param(key: &str, msg: String) -> FhirError {
    FhirError::at(StatusCode::BAD_REQUEST, Issue::error(IssueType::Invalid, msg).at(key.to_string()))
}

fn paging_links(url: &str, applied: &[(String, String)], count: usize, offset: usize, total: i64) -> Vec<Link> {
    let make = |off: usize| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in applied {
            s.append_pair(k, v);
        }
        s.append_pair("_count", &count.to_string());
        if off > 0 {
            s.append_pair("_offset", &off.to_string());
        }
        format!("{url}?{}", s.finish())
    };
    let mut links = vec![Link { relation: "self", url: make(offset) }];
    if count > 0 && ((offset + count) as i64) < total {
        links.push(Link { relation: "next", url: make(offset + count) });
    }
    if offset > 0 && count > 0 {
        links.push(Link { relation: "previous", url: make(offset.saturating_sub(count)) });
    }
    links
}

async fn search(
    state: &AppState,
    caller: &lianyi_security::Caller,
    headers: &HeaderMap,
    rtype: &str,
    params: Vec<(String, String)>,
) -> FhirResult {
    let rtype = resource_type(rtype)?;
    if rtype.as_str() == AUDIT_EVENT {
        return audit_search(state, caller, headers, params).await;
    }
    let req = parse_search(rtype, &params).map_err(|issue| FhirError::at(StatusCode::BAD_REQUEST, issue))?;
    let mut page = state.fhir.search(&state.fhir.permit(caller, req.resource_type).await?, &req).await?;
    let base = base_url(state, headers);
    // Without a total, a full page means there may be more.
    let full = page.resources.len() == req.count;
    let total_for_links = match (req.cursor.is_some(), page.total) {
        // Continuing from a cursor, the total says nothing about what is left.
        (true, _) | (false, None) => {
            if full {
                i64::MAX
            } else {
                0
            }
        }
        (false, Some(t)) => t,
    };
    let mut links = paging_links(&format!("{base}/fhir/{rtype}"), &req.applied, req.count, req.offset, total_for_links);
    // In the default order, `next` continues after the last row (keyset), so pages stay
    // consistent while resources are created or updated between requests.
    if req.sort.is_empty()
        && let (Some(last), Some(next)) = (page.resources.last(), links.iter_mut().find(|l| l.relation == "next"))
    {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &req.applied {
            s.append_pair(k, v);
        }
        s.append_pair("_count", &req.count.to_string());
        s.append_pair("_cursor", &format!("{}:{}", last.last_updated, last.id));
        next.url = format!("{base}/fhir/{rtype}?{}", s.finish());
    }
    if req.elements.is_some() || req.drop_text {
        for r in page.resources.iter_mut() {
            r.body = bundle::subset(&r.body, req.elements.as_deref(), req.drop_text);
        }
    }
    let body = bundle::searchset(&base, page.total, links, &page.resources, &page.included, state.fhir.now_ms());
    Ok(json_response(StatusCode::OK, body))
}

async fn search_get(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> FhirResult {
    search(&state, &caller, &headers, &rtype, query_pairs(q.as_deref())).await
}

/// `POST /{type}/_search` with `application/x-www-form-urlencoded` parameters (and
/// possibly more in the URL).
async fn search_post(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> FhirResult {
    let mut params = query_pairs(q.as_deref());
    let bytes = axum::body::to_bytes(body, 1024 * 1024).await.map_err(|_| {
        FhirError::new(StatusCode::PAYLOAD_TOO_LARGE, IssueType::TooLong, "search form larger than 1 MiB")
    })?;
    if !bytes.is_empty() {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                IssueType::NotSupported,
                "_search parameters must be sent as application/x-www-form-urlencoded",
            ));
        }
        params.extend(form_urlencoded::parse(&bytes).into_owned());
    }
    search(&state, &caller, &headers, &rtype, params).await
}

fn history_query(raw: Option<&str>) -> Result<HistoryQuery, FhirError> {
    let mut q = HistoryQuery { count: DEFAULT_COUNT, ..Default::default() };
    for (k, v) in query_pairs(raw) {
        match k.as_str() {
            "_count" => {
                q.count =
                    v.parse().ok().filter(|n| *n <= MAX_COUNT).ok_or_else(|| {
                        bad_param(&k, format!("'_count' must be a whole number from 0 to {MAX_COUNT}"))
                    })?;
            }
            "_offset" => q.offset = v.parse().map_err(|_| bad_param(&k, "'_offset' must be a whole number".into()))?,
            "_since" => {
                q.since = Some(
                    parse_range(&v)
                        .ok_or_else(|| {
                            bad_param(&k, format!("'{v}' is not an instant (rule: YYYY-MM-DDThh:mm:ss[.sss]Z)"))
                        })?
                        .low,
                )
            }
            "_format" | "_pretty" => {}
            other => {
                return Err(bad_param(
                    other,
                    format!("history parameter '{other}' is not supported (use _count, _since)"),
                ));
            }
        }
    }
    Ok(q)
}

async fn history(
    state: &AppState,
    caller: &lianyi_security::Caller,
    headers: &HeaderMap,
    mut q: HistoryQuery,
    path: String,
) -> FhirResult {
    let page = state.fhir.history(caller, &q).await?;
    let base = base_url(state, headers);
    let mut applied = Vec::new();
    if let Some(since) = q.since.take() {
        applied.push(("_since".to_string(), format_instant(since)));
    }
    let links = paging_links(&format!("{base}/fhir{path}"), &applied, q.count, q.offset, page.total);
    Ok(json_response(StatusCode::OK, bundle::history(&base, page.total, links, &page.entries, state.fhir.now_ms())))
}

async fn history_system(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> FhirResult {
    let q = history_query(raw.as_deref())?;
    history(&state, &caller, &headers, q, "/_history".into()).await
}

async fn history_type(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path(rtype): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    read_only(rtype)?;
    let q = HistoryQuery { resource_type: Some(rtype.as_str().into()), ..history_query(raw.as_deref())? };
    history(&state, &caller, &headers, q, format!("/{rtype}/_history")).await
}

async fn history_instance(
    State(state): State<AppState>,
    RemoteCaller(caller): RemoteCaller,
    Path((rtype, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> FhirResult {
    let rtype = resource_type(&rtype)?;
    let q = HistoryQuery {
        resource_type: Some(rtype.as_str().into()),
        id: Some(id.clone()),
        ..history_query(raw.as_deref())?
    };
    history(&state, &caller, &headers, q, format!("/{rtype}/{id}/_history")).await
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_302_600_000), "Sat, 21 Nov 2026 23:10:00 GMT");
    }
}
