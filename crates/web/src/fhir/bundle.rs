//! Bundles built from stored JSON without re-parsing it (`RawValue`).

use lianyi_fhir::datetime::format_instant;
use lianyi_store::StoredResource;
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
pub struct Link {
    pub relation: &'static str,
    pub url: String,
}

#[derive(Serialize)]
struct Search {
    mode: &'static str,
}

#[derive(Serialize)]
struct Request {
    method: String,
    url: String,
}

#[derive(Serialize)]
struct EntryResponse {
    status: String,
    etag: String,
    #[serde(rename = "lastModified")]
    last_modified: String,
}

#[derive(Serialize)]
struct Entry {
    #[serde(rename = "fullUrl")]
    full_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    search: Option<Search>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<Request>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<EntryResponse>,
}

#[derive(Serialize)]
struct Bundle {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<i64>,
    link: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<Entry>,
}

fn raw(body: &str) -> Option<Box<RawValue>> {
    RawValue::from_string(body.to_string()).ok()
}

/// A `searchset` Bundle: the matches, then the included resources.
pub fn searchset(
    base: &str,
    total: Option<i64>,
    links: Vec<Link>,
    resources: &[StoredResource],
    included: &[StoredResource],
    now_ms: i64,
) -> String {
    let entry = resources
        .iter()
        .map(|r| (r, "match"))
        .chain(included.iter().map(|r| (r, "include")))
        .map(|(r, mode)| Entry {
            full_url: format!("{base}/fhir/{}/{}", r.resource_type, r.id),
            resource: raw(&r.body),
            search: Some(Search { mode }),
            request: None,
            response: None,
        })
        .collect();
    let b = Bundle {
        resource_type: "Bundle",
        kind: "searchset",
        timestamp: format_instant(now_ms),
        total,
        link: links,
        entry,
    };
    serde_json::to_string(&b).unwrap_or_default()
}

/// A `history` Bundle, newest version first.
pub fn history(base: &str, total: i64, links: Vec<Link>, versions: &[StoredResource], now_ms: i64) -> String {
    let entry = versions
        .iter()
        .map(|r| {
            let (method, url, status) = match (r.deleted, r.method.as_str()) {
                (true, _) => ("DELETE", format!("{}/{}", r.resource_type, r.id), "200 OK"),
                (false, "POST") => ("POST", r.resource_type.clone(), "201 Created"),
                (false, _) => ("PUT", format!("{}/{}", r.resource_type, r.id), "200 OK"),
            };
            Entry {
                full_url: format!("{base}/fhir/{}/{}", r.resource_type, r.id),
                resource: if r.deleted { None } else { raw(&r.body) },
                search: None,
                request: Some(Request { method: method.to_string(), url }),
                response: Some(EntryResponse {
                    status: status.to_string(),
                    etag: format!("W/\"{}\"", r.version),
                    last_modified: format_instant(r.last_updated),
                }),
            }
        })
        .collect();
    let b = Bundle {
        resource_type: "Bundle",
        kind: "history",
        timestamp: format_instant(now_ms),
        total: Some(total),
        link: links,
        entry,
    };
    serde_json::to_string(&b).unwrap_or_default()
}

/// `_elements`: keeps the named top-level elements (and id, meta, resourceType);
/// `_summary=data` (`drop_text`): leaves out the narrative. Either way the resource is
/// marked SUBSETTED, as the spec asks.
pub fn subset(body: &str, elements: Option<&[String]>, drop_text: bool) -> String {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    obj.retain(|k, _| {
        let kept = match elements {
            Some(list) => matches!(k.as_str(), "resourceType" | "id" | "meta") || list.iter().any(|e| e == k),
            None => true,
        };
        kept && !(drop_text && k == "text")
    });
    let tag =
        serde_json::json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"});
    let meta = obj.entry("meta").or_insert_with(|| serde_json::json!({}));
    if let Some(m) = meta.as_object_mut() {
        let tags = m.entry("tag").or_insert_with(|| serde_json::json!([]));
        if let Some(a) = tags.as_array_mut() {
            a.push(tag);
        }
    }
    serde_json::Value::Object(obj).to_string()
}
