//! Rebuilding index rows when the extraction rules change (a new parameter type,
//! a new modifier), so searches over data stored by an older version stay complete.

use lianyi_fhir::{INDEX_VERSION, SUPPORTED_TYPES, extract_index};
use lianyi_security::{ActorKind, Caller};
use lianyi_store::Reindexed;

use super::{FhirService, Result, ServiceError};

impl FhirService {
    /// Whether the stored index rows were built by older rules than this build's
    /// (migrating an empty database marks it current).
    pub async fn index_is_stale(&self) -> Result<bool> {
        Ok(self.store.index_version().await?.is_none_or(|v| v < INDEX_VERSION))
    }

    /// Re-extracts the index rows of every current resource (from the plaintext, so
    /// protected values get their blind indexes again) and records the rules'
    /// version. Operators only (`lianyi reindex`, or the server at start-up); the run
    /// is audited. `progress` is called with the running count.
    pub async fn reindex(&self, caller: &Caller, mut progress: impl FnMut(u64)) -> Result<u64> {
        if caller.kind() != ActorKind::System {
            return Err(ServiceError::Forbidden("reindexing is an operator command".into()));
        }
        let mut done = 0u64;
        let mut after = None;
        loop {
            let rows = self.store.scan_bodies("resources", SUPPORTED_TYPES, after.clone(), 500).await?;
            let Some(last) = rows.last() else { break };
            after = Some((last.resource_type.clone(), last.id.clone(), last.version));
            let mut items = Vec::with_capacity(rows.len());
            for r in rows.into_iter().filter(|r| !r.body.is_empty()) {
                let mut resource: serde_json::Value =
                    serde_json::from_str(&r.body).map_err(|e| lianyi_store::StoreError::Corrupt(e.to_string()))?;
                self.protector.reveal(&r.resource_type, &mut resource)?;
                let mut index = extract_index(&r.resource_type, &resource);
                self.protector.adjust_index(&r.resource_type, &resource, &mut index);
                items.push(Reindexed { resource_type: r.resource_type, id: r.id, version: r.version, index });
            }
            done += self.store.replace_index(&items).await? as u64;
            progress(done);
        }
        self.store.set_index_version(INDEX_VERSION).await?;
        let mut e = caller.entry(self.clock.now_ms(), "reindex", "success");
        e.detail = Some(format!("{done} resources reindexed (index rules version {INDEX_VERSION})"));
        self.audit.record(vec![e]).await?;
        Ok(done)
    }
}
