//! Link, merge and unmerge of patient records (the EMPI's corrections).
//!
//! - **Link**: two records of the same person are both kept and point at each other
//!   (`Patient.link` type `seealso`).
//! - **Merge**: the retired record's data moves to the survivor. Every resource that
//!   refers to the retired patient, at every campus, is re-pointed to the survivor;
//!   the retired record is made inactive with a `replaced-by` link and the survivor
//!   gets `replaces` and the retired MRNs as `old` identifiers; a Provenance lists
//!   what was re-pointed. All of it is one transaction, every write guarded by the
//!   version it was computed from; the earlier versions stay in the history.
//! - **Unmerge**: the merge's Provenance names what was re-pointed; those resources
//!   point back at the retired record, which is active again, and the links and old
//!   identifiers go — one transaction, and a Provenance of its own.
//!
//! The caller must be allowed to update both Patient records (their role, at the
//! records' campuses). The re-pointing of other resources is done by the platform
//! on the caller's behalf (the caller's role may not write lab results); every
//! write is audited under `empi (… by <caller>)`, and the caller's own request is
//! audited as `patient-merge`, `patient-unmerge` or `patient-link`.

use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, Perm};
use lianyi_store::StoredResource;
use serde_json::{Value, json};

use crate::common::put;
use crate::common::{invalid, rtype};
use crate::registry::{Registry, RegistryError};

const PAGE: usize = 1000;

/// Replaces every `"reference": "<from>"` (exact) with `to`; whether any was.
fn repoint(v: &mut Value, from: &str, to: &str) -> bool {
    match v {
        Value::Object(o) => {
            let mut changed = false;
            for (k, val) in o.iter_mut() {
                if k == "reference" && val.as_str() == Some(from) {
                    *val = Value::String(to.to_string());
                    changed = true;
                } else {
                    changed |= repoint(val, from, to);
                }
            }
            changed
        }
        Value::Array(a) => a.iter_mut().fold(false, |acc, x| repoint(x, from, to) | acc),
        _ => false,
    }
}

fn body(r: &StoredResource) -> Result<Value, RegistryError> {
    crate::common::editable(r).map_err(|e| invalid("resource", "stored", e.to_string()))
}

fn links_without(p: &mut Value, other: &str) {
    let reference = format!("Patient/{other}");
    if let Some(links) = p["link"].as_array_mut() {
        links.retain(|l| l["other"]["reference"] != reference.as_str());
        if links.is_empty()
            && let Some(o) = p.as_object_mut()
        {
            o.remove("link");
        }
    }
}

fn add_link(p: &mut Value, other: &str, kind: &str) {
    let reference = format!("Patient/{other}");
    let mut links = p["link"].as_array().cloned().unwrap_or_default();
    links.retain(|l| l["other"]["reference"] != reference.as_str());
    links.push(json!({"other": {"reference": reference}, "type": kind}));
    p["link"] = json!(links);
}

/// The record's link of `kind`, if any (`replaced-by` on a merged record).
pub fn link_of(p: &Value, kind: &str) -> Option<String> {
    p["link"]
        .as_array()?
        .iter()
        .find(|l| l["type"] == kind)
        .and_then(|l| l["other"]["reference"].as_str())
        .and_then(|r| r.strip_prefix("Patient/"))
        .map(str::to_string)
}

/// Every link of a Patient as (other Patient id, link type: `replaced-by`,
/// `replaces`, `refer`, `seealso`).
pub fn links_of(p: &Value) -> Vec<(String, String)> {
    p["link"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter_map(|l| {
                    let other = l["other"]["reference"].as_str()?.strip_prefix("Patient/")?;
                    Some((other.to_string(), l["type"].as_str().unwrap_or("seealso").to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a Patient record is active (a merged-away record is not).
pub fn is_active(p: &Value) -> bool {
    p["active"] != false
}

/// What a merge or unmerge did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeOutcome {
    pub survivor: String,
    pub retired: String,
    /// Resources re-pointed (type/id).
    pub moved: Vec<String>,
}

impl Registry {
    fn platform(caller: &Caller, what: &str) -> Caller {
        Caller::task(lianyi_security::SystemTask::Empi { what: what.to_string(), by: caller.actor().to_string() })
    }

    /// Both records, read as the caller (which checks they may update them).
    async fn both(&self, caller: &Caller, a: &str, b: &str) -> Result<(StoredResource, StoredResource), RegistryError> {
        if a == b {
            return Err(invalid("other", "same-record", "a record cannot be merged or linked with itself"));
        }
        if !caller.access().allows("Patient", Perm::Update) || caller.access().patient().is_some() {
            return Err(RegistryError::Forbidden("merging and linking patients needs the registrar role".into()));
        }
        let p = rtype("Patient")?;
        let first = self.fhir().reader(caller, p).await?.read(a).await?;
        let second = self.fhir().reader(caller, p).await?.read(b).await?;
        for r in [&first, &second] {
            if !caller.access().sees("Patient", Perm::Update, r.campus.as_deref()) {
                return Err(RegistryError::Forbidden(format!("Patient/{} is not at one of your campuses", r.id)));
            }
        }
        Ok((first, second))
    }

    async fn audit_request(
        &self,
        caller: &Caller,
        action: &str,
        patient: &str,
        detail: String,
    ) -> Result<(), RegistryError> {
        let mut e = caller.entry(self.fhir().now_ms(), action, "success");
        e.resource_type = Some("Patient".into());
        e.resource_id = Some(patient.to_string());
        e.patient = Some(patient.to_string());
        e.detail = Some(detail);
        self.fhir().audit_log().record(vec![e]).await.map_err(lianyi_services::ServiceError::from)?;
        Ok(())
    }

    /// Links two records of the same person (`seealso` both ways); both stay active.
    pub async fn link(&self, caller: &Caller, a: &str, b: &str) -> Result<(), RegistryError> {
        let (ra, rb) = self.both(caller, a, b).await?;
        let (mut pa, mut pb) = (body(&ra)?, body(&rb)?);
        add_link(&mut pa, b, "seealso");
        add_link(&mut pb, a, "seealso");
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [put(pa, &ra), put(pb, &rb)]});
        self.fhir().process_bundle(&Self::platform(caller, "link"), bundle, true).await?;
        self.audit_request(caller, "patient-link", a, format!("Patient/{a} linked with Patient/{b}")).await
    }

    /// Merges `retired` into `survivor` (see the module documentation).
    pub async fn merge(&self, caller: &Caller, survivor: &str, retired: &str) -> Result<MergeOutcome, RegistryError> {
        let (rs, rr) = self.both(caller, survivor, retired).await?;
        let (mut ps, mut pr) = (body(&rs)?, body(&rr)?);
        if pr["active"] == false && link_of(&pr, "replaced-by").is_some() {
            return Err(invalid("other", "already-merged", format!("Patient/{retired} is already merged")));
        }
        if pr["active"] == false && link_of(&ps, "replaced-by").is_some() {
            return Err(invalid("survivor", "already-merged", format!("Patient/{survivor} is itself merged")));
        }
        let platform = Self::platform(caller, "merge");
        // Every resource of the retired patient's compartment, at every campus.
        let mut entries = Vec::new();
        let mut moved = Vec::new();
        let (from, to) = (format!("Patient/{retired}"), format!("Patient/{survivor}"));
        let mut offset = 0;
        loop {
            let (total, rows) = self.fhir().everything(&platform, retired, None, None, PAGE, offset).await?;
            for r in &rows {
                if r.resource_type == "Patient" {
                    continue;
                }
                let mut v = body(r)?;
                if repoint(&mut v, &from, &to) {
                    moved.push(format!("{}/{}", r.resource_type, r.id));
                    entries.push(put(v, r));
                }
            }
            offset += rows.len();
            if rows.is_empty() || offset as i64 >= total {
                break;
            }
        }
        // The survivor answers to the retired MRNs too (as old identifiers).
        let mut ids = ps["identifier"].as_array().cloned().unwrap_or_default();
        for id in pr["identifier"].as_array().cloned().unwrap_or_default() {
            let is_mrn = id["system"].as_str().and_then(lianyi_services::identifiers::mrn_campus).is_some();
            if is_mrn && !ids.iter().any(|x| x["system"] == id["system"] && x["value"] == id["value"]) {
                let mut old = id.clone();
                old["use"] = json!("old");
                ids.push(old);
            }
        }
        if !ids.is_empty() {
            ps["identifier"] = json!(ids);
        }
        add_link(&mut ps, retired, "replaces");
        links_without(&mut pr, survivor);
        add_link(&mut pr, survivor, "replaced-by");
        pr["active"] = json!(false);
        entries.push(put(ps, &rs));
        entries.push(put(pr, &rr));
        entries.push(json!({"resource": self.provenance(caller, "merge", survivor, retired, &moved), "request": {"method": "POST", "url": "Provenance"}}));
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        self.fhir().process_bundle(&platform, bundle, true).await?;
        self.audit_request(
            caller,
            "patient-merge",
            survivor,
            format!("Patient/{retired} merged into Patient/{survivor}; {} resources re-pointed", moved.len()),
        )
        .await?;
        Ok(MergeOutcome { survivor: survivor.to_string(), retired: retired.to_string(), moved })
    }

    fn provenance(&self, caller: &Caller, what: &str, survivor: &str, retired: &str, moved: &[String]) -> Value {
        let mut targets = vec![
            json!({"reference": format!("Patient/{survivor}")}),
            json!({"reference": format!("Patient/{retired}")}),
        ];
        targets.extend(moved.iter().map(|m| json!({"reference": m})));
        json!({"resourceType": "Provenance", "target": targets,
               "recorded": lianyi_fhir::datetime::format_instant(self.fhir().now_ms()),
               "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}], "text": what},
               "reason": [{"text": format!("patient-{what}")}],
               "agent": [{"who": {"display": caller.actor().to_string()}}],
               "entity": [{"role": "source", "what": {"reference": format!("Patient/{retired}")}}]})
    }

    /// Undoes the merge of `retired` (see the module documentation).
    pub async fn unmerge(&self, caller: &Caller, retired: &str) -> Result<MergeOutcome, RegistryError> {
        let p = rtype("Patient")?;
        let rr = self.fhir().reader(caller, p).await?.read(retired).await?;
        let pr = body(&rr)?;
        let Some(survivor) = link_of(&pr, "replaced-by").filter(|_| pr["active"] == false) else {
            return Err(invalid("patient", "not-merged", format!("Patient/{retired} is not merged")));
        };
        let (rs, rr) = self.both(caller, &survivor, retired).await?;
        let (mut ps, mut pr) = (body(&rs)?, body(&rr)?);
        let platform = Self::platform(caller, "unmerge");
        // The merge's Provenance: the newest naming the retired record as its source.
        let prov_type = rtype("Provenance")?;
        let req = parse_search(
            prov_type,
            &[
                ("entity".into(), format!("Patient/{retired}")),
                ("_sort".into(), "-_lastUpdated".into()),
                ("_count".into(), "20".into()),
            ],
        )
        .map_err(|i| invalid("search", "search", i.diagnostics))?;
        let page = self.fhir().search(&self.fhir().permit(&platform, req.resource_type).await?, &req).await?;
        let merge = page
            .resources
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .find(|v| {
                v["activity"]["text"] == "merge"
                    && v["target"][0]["reference"] == format!("Patient/{survivor}").as_str()
            })
            .ok_or_else(|| invalid("patient", "no-provenance", "the merge's record (Provenance) was not found"))?;
        let moved: Vec<String> = merge["target"]
            .as_array()
            .map(|t| t.iter().skip(2).filter_map(|x| x["reference"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let (from, to) = (format!("Patient/{survivor}"), format!("Patient/{retired}"));
        let mut entries = Vec::new();
        let mut back = Vec::new();
        for m in &moved {
            let Some((t, id)) = m.split_once('/') else { continue };
            let Ok(r) = self.fhir().reader(&platform, rtype(t)?).await?.read(id).await else { continue };
            let mut v = body(&r)?;
            if repoint(&mut v, &from, &to) {
                back.push(m.clone());
                entries.push(put(v, &r));
            }
        }
        let retired_mrns: Vec<Value> = pr["identifier"].as_array().cloned().unwrap_or_default();
        if let Some(ids) = ps["identifier"].as_array_mut() {
            ids.retain(|x| {
                !(x["use"] == "old"
                    && retired_mrns.iter().any(|m| m["system"] == x["system"] && m["value"] == x["value"]))
            });
        }
        links_without(&mut ps, retired);
        links_without(&mut pr, &survivor);
        pr["active"] = json!(true);
        entries.push(put(ps, &rs));
        entries.push(put(pr, &rr));
        entries.push(json!({"resource": self.provenance(caller, "unmerge", &survivor, retired, &back), "request": {"method": "POST", "url": "Provenance"}}));
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        self.fhir().process_bundle(&platform, bundle, true).await?;
        self.audit_request(
            caller,
            "patient-unmerge",
            retired,
            format!("Patient/{retired} separated from Patient/{survivor}; {} resources re-pointed back", back.len()),
        )
        .await?;
        Ok(MergeOutcome { survivor, retired: retired.to_string(), moved: back })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repointing_changes_exact_references_only() {
        let mut v = json!({"subject": {"reference": "Patient/a"}, "performer": [{"reference": "Patient/ab"}],
                           "contained": [{"x": {"reference": "Patient/a"}}], "note": [{"text": "Patient/a"}]});
        assert!(repoint(&mut v, "Patient/a", "Patient/b"));
        assert_eq!(v["subject"]["reference"], "Patient/b");
        assert_eq!(v["performer"][0]["reference"], "Patient/ab");
        assert_eq!(v["contained"][0]["x"]["reference"], "Patient/b");
        assert_eq!(v["note"][0]["text"], "Patient/a");
        assert!(!repoint(&mut v, "Patient/a", "Patient/b"));
    }

    #[test]
    fn links_are_added_once_and_removed() {
        let mut p = json!({"resourceType": "Patient"});
        add_link(&mut p, "x", "replaces");
        add_link(&mut p, "x", "replaces");
        assert_eq!(p["link"].as_array().map(Vec::len), Some(1));
        assert_eq!(link_of(&p, "replaces").as_deref(), Some("x"));
        links_without(&mut p, "x");
        assert!(p.get("link").is_none());
    }
}
