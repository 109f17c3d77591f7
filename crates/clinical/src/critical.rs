//! Critical values (危急值) with a closed loop. A watcher follows the outbox: every new
//! or changed laboratory Observation (from HL7 ORU, the FHIR API or a page) is
//! compared with the critical limits (`data/critical-limits.tsv`); a result at or
//! beyond them becomes a Task for the doctor who ordered it (found through the
//! result's `basedOn` placer number), shown on every page that doctor has open until
//! acknowledged (who, when, the action taken). A Task not acknowledged within the
//! configured time is escalated to the department heads of its campus. The watcher's
//! cursor is kept in the database, so results arriving while it was stopped are
//! checked when it starts, and the outbox keeps every event it has not read.

use std::sync::LazyLock;
use std::time::Duration;

use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, CampusId, SystemTask};
use lianyi_services::FhirService;
use serde_json::{Value, json};

use crate::common::{invalid, rtype};
use crate::orders::{PLACER_SYSTEM, USER_SYSTEM};
use crate::registry::RegistryError;

const CURSOR: &str = "critical-values";
const TASK_SYSTEM: &str = "urn:lianyi:task";
const TASK_CODE: &str = "critical-value";
const CRITICAL_ID_SYSTEM: &str = "urn:lianyi:sid:critical";
/// Recipients of escalated Tasks: `department-head@<campus>`.
pub const ROLE_SYSTEM: &str = "urn:lianyi:sid:role";

/// One line of the limits table.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub loinc: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub unit: &'static str,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

static LIMITS: LazyLock<Vec<Limit>> = LazyLock::new(|| {
    include_str!("../data/critical-limits.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.len() >= 4)
        .map(|c| Limit {
            loinc: c[0],
            zh: c[1],
            en: c[2],
            unit: c[3],
            low: c.get(4).and_then(|v| v.trim().parse().ok()),
            high: c.get(5).and_then(|v| v.trim().parse().ok()),
        })
        .collect()
});

/// The critical limits of a test, by LOINC code.
pub fn limit(loinc: &str) -> Option<&'static Limit> {
    LIMITS.iter().find(|l| l.loinc == loinc)
}

/// A result beyond its critical limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub limit: Limit,
    pub value: f64,
    /// `low` or `high`.
    pub side: &'static str,
}

impl Hit {
    /// The alert text in both languages, as the Task records it (`中文 / English`;
    /// the page shows its language's half).
    pub fn describe(&self) -> crate::names::Names {
        let bound = if self.side == "high" { self.limit.high } else { self.limit.low }.unwrap_or_default();
        let op = if self.side == "high" { "≥" } else { "≤" };
        let text = |name: &str, word: &str| format!("{name} {} {} ({word} {op} {bound})", self.value, self.limit.unit);
        crate::names::Names { zh: text(self.limit.zh, "危急值"), en: text(self.limit.en, "critical") }
    }
}

/// Whether a laboratory Observation is critical (LOINC-coded numeric result).
pub fn critical(obs: &Value) -> Option<Hit> {
    let codes = obs["code"]["coding"].as_array()?;
    let limit =
        LIMITS.iter().find(|l| codes.iter().any(|c| c["system"] == "http://loinc.org" && c["code"] == l.loinc))?;
    let q = &obs["valueQuantity"];
    let value = q["value"].as_f64()?;
    let unit = q["code"].as_str().or_else(|| q["unit"].as_str()).unwrap_or_default();
    if !limit.unit.is_empty() && !unit.is_empty() && unit != limit.unit {
        return None;
    }
    if limit.high.is_some_and(|h| value >= h) {
        return Some(Hit { limit: limit.clone(), value, side: "high" });
    }
    if limit.low.is_some_and(|l| value <= l) {
        return Some(Hit { limit: limit.clone(), value, side: "low" });
    }
    None
}

/// Whether an open critical-value Task is due for escalation at `now`.
pub fn due_for_escalation(authored_ms: i64, now_ms: i64, limit_ms: i64, escalated: bool) -> bool {
    !escalated && now_ms - authored_ms >= limit_ms
}

/// An open critical value as the alert shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub task: String,
    pub patient: String,
    pub text: String,
    pub authored: String,
    pub escalated: bool,
}

/// A handled (or open) critical value for the response-time report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    pub task: String,
    pub text: String,
    pub owner: String,
    pub authored: String,
    pub acknowledged_by: String,
    pub action: String,
    /// Minutes from the result to its acknowledgement (`None`: still open).
    pub minutes: Option<i64>,
    pub escalated: bool,
}

fn instant_ms(s: &str) -> Option<i64> {
    lianyi_fhir::datetime::parse_range(s).map(|r| r.low)
}

#[derive(Clone, Debug)]
pub struct CriticalValues {
    fhir: FhirService,
    /// Time to acknowledge before escalation.
    pub escalate_after_ms: i64,
}

impl CriticalValues {
    /// The default time to acknowledge before escalation: 10 minutes.
    pub const DEFAULT_ESCALATION_MS: i64 = 10 * 60_000;

    pub fn new(fhir: FhirService, escalate_after_ms: i64) -> CriticalValues {
        CriticalValues { fhir, escalate_after_ms }
    }

    fn platform(campus: Option<&str>) -> Caller {
        // Tasks belong to the campus of the result.
        match campus {
            Some(campus) => Caller::task_at(SystemTask::CriticalValues, CampusId::stored(campus)),
            None => Caller::task(SystemTask::CriticalValues),
        }
    }

    /// The watcher's own lookups (the order of a result, open Tasks), through the FHIR
    /// service as the critical-value task: audited under that purpose.
    async fn internal_search(&self, t: &str, params: &[(&str, String)]) -> Result<Vec<(String, Value)>, RegistryError> {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let req = parse_search(rtype(t)?, &params).map_err(|i| invalid("search", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(&Self::platform(None), req.resource_type).await?, &req).await?;
        Ok(page.resources.iter().filter_map(|r| Some((r.id.clone(), serde_json::from_str(&r.body).ok()?))).collect())
    }

    /// One resource read as the critical-value task (audited); `None` when it is not
    /// there or deleted.
    async fn task_read(&self, t: &str, id: &str) -> Result<Option<lianyi_store::StoredResource>, RegistryError> {
        match self.fhir.reader(&Self::platform(None), rtype(t)?).await?.read(id).await {
            Ok(r) => Ok(Some(r)),
            Err(lianyi_services::ServiceError::NotFound { .. } | lianyi_services::ServiceError::Gone { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the Observations changed since the last scan; returns how many critical
    /// values became Tasks. `known` is the watcher's cursor as it last left it (`None`:
    /// read it from the database), so an idle round is a single outbox query.
    pub async fn scan(&self, known: &mut Option<i64>) -> Result<usize, RegistryError> {
        lianyi_services::follow::scan(&self.fhir.operations(), CURSOR, known, |e| async move {
            if e.resource_type == "Observation" && e.method != "DELETE" {
                self.check(&e.id, e.version, e.campus.as_deref()).await
            } else {
                Ok(false)
            }
        })
        .await
    }

    async fn check(&self, id: &str, version: i64, campus: Option<&str>) -> Result<bool, RegistryError> {
        let platform = Self::platform(campus);
        let Some(stored) = self.task_read("Observation", id).await? else {
            return Ok(false);
        };
        if stored.version != version {
            return Ok(false); // a later version follows in the outbox
        }
        let obs: Value =
            serde_json::from_str(&stored.body).map_err(|e| invalid("observation", "stored", e.to_string()))?;
        let Some(hit) = critical(&obs) else { return Ok(false) };
        // The order, and so the ordering doctor and the visit.
        let mut owner = Value::Null;
        let mut encounter = obs["encounter"].clone();
        let placer = obs["basedOn"]
            .as_array()
            .and_then(|b| b.iter().find(|r| r["identifier"]["system"] == PLACER_SYSTEM))
            .and_then(|r| r["identifier"]["value"].as_str())
            .map(str::to_string);
        if let Some(p) = placer {
            let found =
                self.internal_search("ServiceRequest", &[("identifier", format!("{PLACER_SYSTEM}|{p}"))]).await?;
            if let Some((_, sr)) = found.first() {
                owner = sr["requester"].clone();
                if encounter.is_null() {
                    encounter = sr["encounter"].clone();
                }
            }
        }
        let now = crate::scheduling::local_instant(self.fhir.now_ms());
        let key = format!("{id}-{version}");
        let described = hit.describe();
        let mut task = json!({"resourceType": "Task", "status": "requested", "intent": "order", "priority": "stat",
            "identifier": [{"system": CRITICAL_ID_SYSTEM, "value": key}],
            "code": {"coding": [{"system": TASK_SYSTEM, "code": TASK_CODE}], "text": "危急值 / critical value"},
            "description": format!("{} / {}", described.zh, described.en),
            "focus": {"reference": format!("Observation/{id}")},
            "for": obs["subject"],
            "authoredOn": now,
            "businessStatus": {"text": "notified"}});
        if owner.is_object() {
            task["owner"] = owner;
        }
        if encounter.is_object() {
            task["encounter"] = encounter;
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": task, "request": {"method": "POST", "url": "Task", "ifNoneExist": format!("identifier={CRITICAL_ID_SYSTEM}|{key}")}}]});
        let r = self.fhir.process_bundle(&platform, bundle, true).await?;
        Ok(r["entry"][0]["response"]["status"].as_str().is_some_and(|s| s.starts_with("201")))
    }

    /// Escalates open Tasks older than the limit to the department heads of their
    /// campus; returns how many.
    pub async fn escalate_due(&self) -> Result<usize, RegistryError> {
        let platform = Self::platform(None);
        let open = self
            .internal_search(
                "Task",
                &[
                    ("code", format!("{TASK_SYSTEM}|{TASK_CODE}")),
                    ("status", "requested".into()),
                    ("_count", "500".into()),
                ],
            )
            .await?;
        let now = self.fhir.now_ms();
        let mut n = 0;
        for (id, task) in open {
            let authored = task["authoredOn"].as_str().and_then(instant_ms).unwrap_or(now);
            let escalated = task["businessStatus"]["text"] == "escalated";
            if !due_for_escalation(authored, now, self.escalate_after_ms, escalated) {
                continue;
            }
            let Some(stored) = self.task_read("Task", &id).await? else { continue };
            let campus = stored.campus.clone().unwrap_or_default();
            let Ok(mut t) = crate::common::editable(&stored) else { continue };
            t["businessStatus"] = json!({"text": "escalated"});
            t["restriction"] = json!({"recipient": [{"identifier": {"system": ROLE_SYSTEM, "value": format!("department-head@{campus}")}}]});
            let bundle =
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [crate::common::put(t, &stored)]});
            if self.fhir.process_bundle(&platform, bundle, true).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Runs the watcher: a scan twice a second (a cheap query when nothing changed),
    /// escalation every 10 seconds, until the runtime stops. (It does not wait on the
    /// store's change notification: that wakes one waiter, the outbound dispatcher.)
    pub async fn run(self) {
        let mut last_escalation = 0i64;
        let mut cursor = None;
        let mut pause = lianyi_services::follow::Pause::new("critical values");
        loop {
            let round = self.scan(&mut cursor).await;
            if let Err(e) = &round
                && !pause.paused()
            {
                tracing::warn!(error = %e, "critical-value scan failed");
            }
            let now = self.fhir.now_ms();
            if round.is_ok() && now - last_escalation >= 10_000 {
                last_escalation = now;
                if let Err(e) = self.escalate_due().await {
                    tracing::warn!(error = %e, "critical-value escalation failed");
                }
            }
            let wait = pause.after(&self.fhir.operations(), round.is_ok(), Duration::from_millis(500)).await;
            tokio::time::sleep(wait).await;
        }
    }

    /// The open critical values a staff user must see: owned by them, or escalated to
    /// a department-head role they hold at the Task's campus.
    pub async fn alerts_for(&self, caller: &Caller, heads_at: &[String]) -> Result<Vec<Alert>, RegistryError> {
        let Some(user) = crate::orders::username(caller) else { return Ok(Vec::new()) };
        let open = self
            .internal_search(
                "Task",
                &[
                    ("code", format!("{TASK_SYSTEM}|{TASK_CODE}")),
                    ("status", "requested".into()),
                    ("_count", "200".into()),
                ],
            )
            .await?;
        Ok(open
            .into_iter()
            .filter(|(_, t)| {
                let mine =
                    t["owner"]["identifier"]["system"] == USER_SYSTEM && t["owner"]["identifier"]["value"] == user;
                let escalated_to_me = t["restriction"]["recipient"].as_array().is_some_and(|rs| {
                    rs.iter().any(|r| {
                        let value = r["identifier"]["value"].as_str().unwrap_or_default();
                        r["identifier"]["system"] == ROLE_SYSTEM
                            && value.starts_with("department-head@")
                            && heads_at.iter().any(|c| c == "*" || value == format!("department-head@{c}"))
                    })
                });
                mine || escalated_to_me
            })
            .map(|(id, t)| Alert {
                task: id,
                patient: t["for"]["reference"].as_str().unwrap_or_default().trim_start_matches("Patient/").to_string(),
                text: t["description"].as_str().unwrap_or_default().to_string(),
                authored: t["authoredOn"].as_str().unwrap_or_default().to_string(),
                escalated: t["businessStatus"]["text"] == "escalated",
            })
            .collect())
    }

    /// Acknowledges a critical value: who (the caller), when (now), the action taken.
    /// Only its owner, or a department head it was escalated to, may.
    pub async fn acknowledge(
        &self,
        caller: &Caller,
        heads_at: &[String],
        task: &str,
        action: &str,
        display: &str,
    ) -> Result<(), RegistryError> {
        let action = action.trim();
        if action.chars().count() < 2 {
            return Err(invalid("action", "action-required", "say what was done (at least 2 characters)"));
        }
        let mine = self.alerts_for(caller, heads_at).await?.into_iter().any(|a| a.task == task);
        if !mine {
            return Err(RegistryError::Forbidden("this critical value is not yours to acknowledge".into()));
        }
        let platform = Self::platform(None);
        let Some(stored) = self.task_read("Task", task).await? else {
            return Err(invalid("task", "not-found", "no such critical value"));
        };
        let mut t = crate::common::editable(&stored).map_err(|e| invalid("task", "stored", e.to_string()))?;
        let now = crate::scheduling::local_instant(self.fhir.now_ms());
        let user = crate::orders::username(caller).unwrap_or_default();
        t["status"] = json!("completed");
        t["businessStatus"] = json!({"text": "acknowledged"});
        t["lastModified"] = json!(now);
        t["executionPeriod"] = json!({"start": t["authoredOn"], "end": now});
        t["output"] = json!([{"type": {"text": "action-taken"}, "valueString": action},
                             {"type": {"text": "acknowledged-by"}, "valueString": format!("{user} ({display})")}]);
        t["note"] = json!([{"authorString": display, "time": now, "text": action}]);
        let bundle =
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [crate::common::put(t, &stored)]});
        self.fhir.process_bundle(&platform, bundle, true).await?;
        let mut e = caller.entry(self.fhir.now_ms(), "critical-value-ack", "success");
        e.resource_type = Some("Task".into());
        e.resource_id = Some(task.to_string());
        e.patient = stored.patient.clone();
        e.detail = Some(format!("action taken: {action}"));
        self.fhir.audit_log().record(vec![e]).await.map_err(lianyi_services::ServiceError::from)?;
        Ok(())
    }

    /// Critical values of the last `days` days with their response times.
    pub async fn report(&self, caller: &Caller, days: i64) -> Result<Vec<Handled>, RegistryError> {
        let since = crate::scheduling::local_instant(self.fhir.now_ms() - days * 86_400_000);
        let rows = crate::common::search(
            &self.fhir,
            caller,
            "Task",
            &[
                ("code", format!("{TASK_SYSTEM}|{TASK_CODE}")),
                ("authored-on", format!("ge{since}")),
                ("_count", "1000".into()),
            ],
        )
        .await?;
        let mut out: Vec<Handled> = rows
            .into_iter()
            .map(|(id, t)| {
                let authored = t["authoredOn"].as_str().unwrap_or_default().to_string();
                let end = t["executionPeriod"]["end"].as_str();
                let minutes = match (instant_ms(&authored), end.and_then(instant_ms)) {
                    (Some(a), Some(b)) => Some((b - a) / 60_000),
                    _ => None,
                };
                let output = |name: &str| {
                    t["output"]
                        .as_array()
                        .and_then(|o| o.iter().find(|x| x["type"]["text"] == name))
                        .and_then(|x| x["valueString"].as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                Handled {
                    task: id,
                    text: t["description"].as_str().unwrap_or_default().to_string(),
                    owner: t["owner"]["display"]
                        .as_str()
                        .or_else(|| t["owner"]["identifier"]["value"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                    authored,
                    acknowledged_by: output("acknowledged-by"),
                    action: output("action-taken"),
                    minutes,
                    escalated: t["businessStatus"]["text"] == "escalated" || t["restriction"].is_object(),
                }
            })
            .collect();
        out.sort_by(|a, b| b.authored.cmp(&a.authored));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(loinc: &str, value: f64, unit: &str) -> Value {
        json!({"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
               "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}})
    }

    #[test]
    fn limits_decide_what_is_critical() {
        let k = critical(&obs("2823-3", 6.8, "mmol/L")).unwrap();
        assert_eq!((k.side, k.value), ("high", 6.8));
        assert_eq!(k.describe().zh, "血钾 6.8 mmol/L (危急值 ≥ 6)");
        assert_eq!(critical(&obs("2823-3", 2.4, "mmol/L")).unwrap().side, "low");
        assert!(critical(&obs("2823-3", 5.9, "mmol/L")).is_none());
        assert!(critical(&obs("2823-3", 6.8, "mg/dL")).is_none(), "another unit is not compared");
        assert!(critical(&obs("9999-9", 100.0, "mmol/L")).is_none());
        assert_eq!(critical(&obs("6301-6", 5.2, "")).unwrap().side, "high");
    }

    #[test]
    fn escalation_timer() {
        let t0 = 1_000_000;
        let limit = CriticalValues::DEFAULT_ESCALATION_MS;
        assert!(!due_for_escalation(t0, t0 + limit - 1, limit, false));
        assert!(due_for_escalation(t0, t0 + limit, limit, false));
        assert!(!due_for_escalation(t0, t0 + 10 * limit, limit, true), "escalated once");
    }
}
