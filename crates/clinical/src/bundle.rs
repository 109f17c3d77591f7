//! Small helpers for the transactions the workflows write.

use lianyi_store::StoredResource;
use serde_json::{Value, json};

/// A stored resource's JSON, to change and write back (`meta` dropped: the store
/// sets it on the new version).
pub(crate) fn editable(r: &StoredResource) -> Result<Value, serde_json::Error> {
    let mut v: Value = serde_json::from_str(&r.body)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    Ok(v)
}

/// A transaction entry writing `v` over `r`, only if `r` is still the current version.
pub(crate) fn put(v: Value, r: &StoredResource) -> Value {
    json!({"resource": v, "request": {"method": "PUT", "url": format!("{}/{}", r.resource_type, r.id),
                                      "ifMatch": format!("W/\"{}\"", r.version)}})
}
