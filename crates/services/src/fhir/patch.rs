//! `PATCH` with JSON Patch (RFC 6902) and `Patient/{id}/$everything`.

use lianyi_fhir::{Issue, IssueType, OperationOutcome, ResourceType};
use lianyi_security::{Caller, Perm};
use lianyi_store::{StoredResource, WriteResult};
use serde_json::Value;

use super::{FhirService, Result, ServiceError};

fn patch_error(i: usize, msg: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(OperationOutcome::single(Issue::error(IssueType::Processing, msg).at(format!("Patch[{i}]"))))
}

/// RFC 6901 pointer tokens.
fn tokens(path: &str) -> Option<Vec<String>> {
    if path.is_empty() {
        return Some(Vec::new());
    }
    let rest = path.strip_prefix('/')?;
    Some(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn parent<'a>(doc: &'a mut Value, toks: &[String]) -> Option<&'a mut Value> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(o) => o.get_mut(t)?,
            Value::Array(a) => a.get_mut(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn get(doc: &Value, path: &str) -> Option<Value> {
    doc.pointer(path).cloned()
}

fn remove(doc: &mut Value, path: &str) -> Option<Value> {
    let toks = tokens(path)?;
    let (last, head) = toks.split_last()?;
    match parent(doc, head)? {
        Value::Object(o) => o.shift_remove(last),
        Value::Array(a) => {
            let i = last.parse::<usize>().ok()?;
            (i < a.len()).then(|| a.remove(i))
        }
        _ => None,
    }
}

fn add(doc: &mut Value, path: &str, value: Value) -> Option<()> {
    let toks = tokens(path)?;
    let Some((last, head)) = toks.split_last() else {
        *doc = value;
        return Some(());
    };
    match parent(doc, head)? {
        Value::Object(o) => {
            o.insert(last.clone(), value);
            Some(())
        }
        Value::Array(a) => {
            let i = if last == "-" { a.len() } else { last.parse::<usize>().ok()? };
            (i <= a.len()).then(|| a.insert(i, value))
        }
        _ => None,
    }
}

/// Applies a JSON Patch document; the error names the failing operation.
pub fn apply_patch(doc: &mut Value, patch: &Value) -> Result<()> {
    let ops = patch.as_array().ok_or_else(|| patch_error(0, "a JSON Patch is an array of operations"))?;
    for (i, op) in ops.iter().enumerate() {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str).ok_or_else(|| patch_error(i, "missing 'path'"))?;
        let value = || op.get("value").cloned().ok_or_else(|| patch_error(i, "missing 'value'"));
        let from = || op.get("from").and_then(Value::as_str).ok_or_else(|| patch_error(i, "missing 'from'"));
        let ok = match kind {
            "add" => add(doc, path, value()?),
            "remove" => remove(doc, path).map(|_| ()),
            "replace" => {
                if doc.pointer(path).is_none() {
                    None
                } else {
                    remove(doc, path).and_then(|_| add(doc, path, value().ok()?))
                }
            }
            "move" => {
                let f = from()?;
                remove(doc, f).and_then(|v| add(doc, path, v))
            }
            "copy" => {
                let f = from()?;
                get(doc, f).and_then(|v| add(doc, path, v))
            }
            "test" => {
                if get(doc, path) == Some(value()?) {
                    Some(())
                } else {
                    return Err(patch_error(i, format!("test failed at '{path}'")));
                }
            }
            other => {
                return Err(patch_error(
                    i,
                    format!("unknown op '{other}' (rule: add, remove, replace, move, copy, test)"),
                ));
            }
        };
        if ok.is_none() {
            return Err(patch_error(i, format!("'{kind}' cannot be applied at '{path}'")));
        }
    }
    Ok(())
}

impl FhirService {
    /// `PATCH /{type}/{id}`: applies a JSON Patch to the current version and stores
    /// the result as a new version (validated like any update).
    pub async fn patch(
        &self,
        caller: &Caller,
        rtype: ResourceType,
        id: &str,
        patch: &Value,
        if_match: Option<i64>,
    ) -> Result<WriteResult> {
        let current = self.reader(caller, rtype).await?.read(id).await?;
        let mut doc: Value =
            serde_json::from_str(&current.body).map_err(|_| patch_error(0, "the stored resource is not JSON"))?;
        if let Err(e) = apply_patch(&mut doc, patch) {
            return self.failed(caller, "update", rtype.as_str(), Some(id), e).await;
        }
        if let Some(meta) = doc.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
            if meta.is_empty()
                && let Some(o) = doc.as_object_mut()
            {
                o.remove("meta");
            }
        }
        self.update_as(caller, rtype, id, doc, Some(if_match.unwrap_or(current.version))).await
    }

    /// `Patient/{id}/$everything`: the patient and every resource of its compartment
    /// the caller may read, by type then id, `count` at a time.
    pub async fn everything(
        &self,
        caller: &Caller,
        patient: &str,
        types: Option<&[String]>,
        since: Option<i64>,
        count: usize,
        offset: usize,
    ) -> Result<(i64, Vec<StoredResource>)> {
        let p = ResourceType::parse("Patient").ok_or_else(|| patch_error(0, "Patient"))?;
        // Reading the patient checks permission, campus and compartment, and audits.
        self.reader(caller, p).await?.read(patient).await?;
        let allowed: Vec<String> = lianyi_fhir::SUPPORTED_TYPES
            .iter()
            .filter(|t| types.is_none_or(|ts| ts.iter().any(|x| x == *t)))
            .filter(|t| caller.access().allows(t, Perm::Read))
            .map(|t| t.to_string())
            .collect();
        let scope = Self::row_scope(caller, None, Perm::Read);
        let (total, rows) = self.store.compartment(patient, &allowed, since, &scope, count, offset).await?;
        let rows: Vec<StoredResource> =
            rows.into_iter().filter(|r| Self::visible(caller, r, Perm::Read).is_ok()).collect();
        let mut e = self.entry(caller, "everything", "success", "Patient", Some(patient));
        e.patient = Some(patient.to_string());
        e.detail = Some(format!("{} of {total} resources", rows.len()));
        self.audit.record(vec![e]).await?;
        let rows = rows.into_iter().map(|r| self.revealed(r)).collect::<Result<Vec<_>>>()?;
        Ok((total, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc6902_operations() {
        let mut d = json!({"a": {"b": [1, 2]}, "c": "x"});
        apply_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/a/b/0", "path": "/e"},
                {"op": "remove", "path": "/a/b/0"},
                {"op": "test", "path": "/d", "value": "y"},
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": {"b": [3]}, "c": "y", "d": "y", "e": 1}));
        let err = apply_patch(
            &mut d,
            &json!([{"op": "add", "path": "/a/b/0", "value": 0}, {"op": "replace", "path": "/zz", "value": 1}]),
        )
        .unwrap_err();
        match err {
            ServiceError::Invalid(o) => assert_eq!(o.issues[0].expression.as_deref(), Some("Patch[1]")),
            other => panic!("{other:?}"),
        }
        assert!(apply_patch(&mut d, &json!([{"op": "test", "path": "/c", "value": "nope"}])).is_err());
    }
}
