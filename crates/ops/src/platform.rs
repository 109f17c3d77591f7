//! The platform in its own configuration database: the server it runs on, its
//! database, the platform itself as a business system, each MLLP listener and each
//! outbound channel as interfaces — registered at start and kept current (a channel
//! added appears, one removed is retired), so an impact walk from the server or the
//! database reaches the hospital systems fed through them.

use std::time::Duration;

use lianyi_security::Caller;
use lianyi_security::caller::SystemTask;
use lianyi_store::cmdb::{Ci, Relation};
use serde_json::json;

use crate::cmdb::{Cmdb, CmdbError};

/// Marks the CIs the platform keeps itself.
pub const MANAGER: &str = "platform";

/// The platform's backup job in the configuration database.
pub const BACKUP_CI: &str = "LIANYI-BACKUP";

/// What the running server knows of itself.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    /// The machine's host name.
    pub host: String,
    /// Where the web pages and APIs are served (`127.0.0.1:8080`).
    pub http: String,
    /// `sqlite` or `postgresql`.
    pub database: String,
    /// The MLLP listeners: protocol (`MLLP`, `MLLP/TLS`) and address.
    pub listeners: Vec<(String, String)>,
    /// The backup schedule (cron), when the server makes backups.
    pub backup_schedule: Option<String>,
}

/// One CI the platform wants, with the relations from it (to codes).
struct Wanted {
    ci: Ci,
    relations: Vec<(&'static str, String)>,
}

fn wanted(code: String, name: String, class: &str, group: &str, attrs: serde_json::Value) -> Ci {
    Ci {
        code,
        name,
        class: class.to_string(),
        status: "in-service".into(),
        support_group: group.to_string(),
        attrs: attrs.to_string(),
        managed_by: Some(MANAGER.to_string()),
        version: 1,
        ..Ci::default()
    }
}

impl Cmdb {
    /// Registers the platform and its interfaces, updating what changed and retiring
    /// what is gone; returns how many CIs it wrote. Acts (and is audited) as the
    /// operations task.
    pub async fn register(&self, p: &Platform) -> Result<usize, CmdbError> {
        let task = Caller::task(SystemTask::Operations);
        let server = format!("LIANYI-HOST-{}", p.host);
        let mut want = vec![
            Wanted {
                ci: wanted(
                    server.clone(),
                    format!("Lianyi server {}", p.host),
                    "host",
                    "system",
                    json!({"kind": "server"}),
                ),
                relations: Vec::new(),
            },
            Wanted {
                ci: wanted(
                    "LIANYI-DB".into(),
                    format!("Lianyi database ({})", p.database),
                    "database",
                    "database",
                    json!({"engine": p.database}),
                ),
                relations: if p.database == "sqlite" { vec![("runs-on", server.clone())] } else { Vec::new() },
            },
            Wanted {
                ci: wanted(
                    "LIANYI".into(),
                    "Lianyi 联医平台".into(),
                    "business-system",
                    "application",
                    json!({"kind": "platform", "hours": "7x24", "version": env!("CARGO_PKG_VERSION")}),
                ),
                relations: vec![("runs-on", server.clone()), ("depends-on", "LIANYI-DB".into())],
            },
            Wanted {
                ci: wanted(
                    "LIANYI-HTTP".into(),
                    format!("Lianyi web and FHIR API {}", p.http),
                    "interface",
                    "application",
                    json!({"protocol": "fhir-rest", "address": p.http}),
                ),
                relations: vec![("part-of", "LIANYI".into())],
            },
        ];
        for (protocol, addr) in &p.listeners {
            let ci = wanted(
                format!("LIANYI-MLLP-{addr}"),
                format!("HL7 v2 listener {addr} ({protocol})"),
                "interface",
                "application",
                json!({"protocol": "mllp-in", "address": addr}),
            );
            want.push(Wanted { ci, relations: vec![("part-of", "LIANYI".into())] });
        }
        for c in self.fhir().operations().channels().await.map_err(CmdbError::from)? {
            let protocol = if c.kind.as_str() == "mllp" { "mllp-out" } else { "fhir-rest" };
            let mut ci = wanted(
                format!("LIANYI-OUT-{}", c.id),
                format!("Outbound channel {}", c.name),
                "interface",
                "application",
                json!({"protocol": protocol, "address": c.endpoint}),
            );
            ci.campus = c.campus.clone();
            want.push(Wanted { ci, relations: vec![("part-of", "LIANYI".into())] });
        }
        if let Some(schedule) = &p.backup_schedule {
            let ci = wanted(
                BACKUP_CI.into(),
                format!("Lianyi backups ({schedule})"),
                "middleware",
                "database",
                json!({"product": "lianyi backup"}),
            );
            want.push(Wanted { ci, relations: vec![("backs-up", "LIANYI-DB".into())] });
        }

        let store = self.fhir().operations().cmdb();
        let now = self.fhir().now_ms();
        let mut written = 0;
        let mut ids = std::collections::HashMap::new();
        for w in &want {
            let mut ci = w.ci.clone();
            ci.updated_at = now;
            ci.updated_by = task.actor().to_string();
            match store.by_code(&ci.code).await? {
                None => {
                    let id = store.insert(&ci).await?;
                    ids.insert(ci.code.clone(), id);
                    written += 1;
                }
                Some(old) => {
                    ids.insert(ci.code.clone(), old.id);
                    // The platform owns the name, the class and its own attributes; what
                    // the IT team added (other attributes, campus, location, owner,
                    // supplier, dates, status other than retired) stays.
                    let mut attrs: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(&old.attrs).unwrap_or_default();
                    let mine: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(&ci.attrs).unwrap_or_default();
                    attrs.extend(mine);
                    let attrs = serde_json::Value::Object(attrs).to_string();
                    let status = if old.status == "retired" { "in-service".to_string() } else { old.status.clone() };
                    let campus = old.campus.clone().or(ci.campus.clone());
                    let same = old.name == ci.name
                        && old.class == ci.class
                        && same_json(&old.attrs, &attrs)
                        && old.status == status
                        && old.campus == campus;
                    if !same {
                        let merged = Ci {
                            attrs,
                            status,
                            campus,
                            name: ci.name.clone(),
                            class: ci.class.clone(),
                            updated_at: now,
                            updated_by: ci.updated_by.clone(),
                            ..old
                        };
                        store.update(&merged).await?;
                        written += 1;
                    }
                }
            }
        }
        let mut wanted_relations = std::collections::HashSet::new();
        for w in &want {
            for (kind, target) in &w.relations {
                let (Some(&source), Some(&target)) = (ids.get(&w.ci.code), ids.get(target)) else { continue };
                let r = Relation { source, kind: (*kind).to_string(), target };
                wanted_relations.insert(r.clone());
                match store.relate(&r, now, task.actor()).await {
                    Ok(()) | Err(lianyi_store::StoreError::Refused(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Relations between the platform's own CIs that it no longer has (the host it
        // ran on before a rename) go; the IT team's relations to them stay.
        let managed: std::collections::HashSet<i64> = store.managed_by(MANAGER).await?.iter().map(|c| c.id).collect();
        for id in &managed {
            for r in store.relations(*id).await? {
                if r.source == *id && managed.contains(&r.target) && !wanted_relations.contains(&r) {
                    store.unrelate(&r).await?;
                    written += 1;
                }
            }
        }
        // Gone from the running platform: retired, not deleted (tickets refer to them).
        for old in store.managed_by(MANAGER).await? {
            if old.status != "retired" && !ids.contains_key(&old.code) {
                store
                    .update(&Ci { status: "retired".into(), updated_at: now, updated_by: task.actor().into(), ..old })
                    .await?;
                written += 1;
            }
        }
        if written > 0 {
            let mut e = task.entry(now, "ci-register", "success");
            e.detail = Some(format!("the platform registered {written} configuration items"));
            self.fhir().audit_log().record(vec![e]).await.map_err(|e| CmdbError::Audit(e.to_string()))?;
        }
        Ok(written)
    }
}

/// Registers the platform now (before the server answers anyone, so what it writes
/// comes first), then again every `every` (channels come and go).
pub async fn keep_registered(cmdb: Cmdb, platform: Platform, every: Duration) -> tokio::task::JoinHandle<()> {
    let register = |cmdb: &Cmdb, platform: &Platform| {
        let (cmdb, platform) = (cmdb.clone(), platform.clone());
        async move {
            if let Err(e) = cmdb.register(&platform).await {
                tracing::warn!(error = %e, "registering the platform in the configuration database");
            }
        }
    };
    register(&cmdb, &platform).await;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            register(&cmdb, &platform).await;
        }
    })
}

/// Whether two JSON texts hold the same value (key order aside).
fn same_json(a: &str, b: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(a).ok() == serde_json::from_str::<serde_json::Value>(b).ok()
}
