//! Laboratory and imaging requests (ServiceRequest) from the order catalogue
//! (`data/orders.tsv`, LOINC-coded). Each request gets a placer order number from the
//! platform's counter (`LY00000001` …) under [`PLACER_SYSTEM`]: the number the lab
//! system echoes in OBR-2 of its results, by which a result finds its order and so
//! the doctor who ordered it.

use std::sync::LazyLock;

use lianyi_security::Caller;
use lianyi_services::FhirService;
use serde_json::{Value, json};

use crate::common::{invalid, rtype};
use crate::registry::RegistryError;

pub use lianyi_services::identifiers::{PLACER_SYSTEM, USER_SYSTEM};
const ORDER_CODE_SYSTEM: &str = "urn:lianyi:order";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderItem {
    pub code: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub loinc: &'static str,
    pub loinc_display: &'static str,
    /// `laboratory` or `imaging`.
    pub category: &'static str,
}

static ITEMS: LazyLock<Vec<OrderItem>> = LazyLock::new(|| {
    include_str!("../data/orders.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.len() >= 6)
        .map(|c| OrderItem { code: c[0], zh: c[1], en: c[2], loinc: c[3], loinc_display: c[4], category: c[5] })
        .collect()
});

pub fn catalogue() -> &'static [OrderItem] {
    &ITEMS
}

pub fn item(code: &str) -> Option<&'static OrderItem> {
    ITEMS.iter().find(|i| i.code == code)
}

/// The catalogue code of a stored request.
pub fn order_code_of(s: &Value) -> Option<String> {
    s["code"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == ORDER_CODE_SYSTEM)
        .and_then(|c| c["code"].as_str())
        .map(str::to_string)
}

/// The staff user a caller is (`user:dr.li` → `dr.li`).
pub fn username(caller: &Caller) -> Option<&str> {
    caller.actor().strip_prefix("user:")
}

/// A request as the workspace lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requested {
    pub id: String,
    pub placer: String,
    pub code: String,
    pub priority: String,
    pub status: String,
}

#[derive(Clone, Debug)]
pub struct Ordering {
    fhir: FhirService,
}

impl Ordering {
    pub fn new(fhir: FhirService) -> Ordering {
        Ordering { fhir }
    }

    /// Requests `item` for the encounter's patient; returns (id, placer number).
    pub async fn order(
        &self,
        caller: &Caller,
        encounter: &str,
        item_code: &str,
        priority: &str,
        requester_name: &str,
    ) -> Result<(String, String), RegistryError> {
        let it =
            item(item_code).ok_or_else(|| invalid("item", "order-unknown", "not an item of the order catalogue"))?;
        if !matches!(priority, "routine" | "urgent" | "stat") {
            return Err(invalid("priority", "priority", "one of routine, urgent, stat"));
        }
        let e = self.fhir.reader(caller, rtype("Encounter")?).await?.read(encounter).await?;
        let e: Value = serde_json::from_str(&e.body).map_err(|x| invalid("encounter", "stored", x.to_string()))?;
        let n = self.fhir.operations().next_counter("placer", 1).await?;
        let placer = format!("LY{n:08}");
        let (cat_code, cat_text) =
            if it.category == "imaging" { ("363679005", "Imaging") } else { ("108252007", "Laboratory procedure") };
        let mut request = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]},
                            "system": PLACER_SYSTEM, "value": placer}],
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": cat_code, "display": cat_text}]}],
            "priority": priority,
            "code": {"coding": [{"system": "http://loinc.org", "code": it.loinc, "display": it.loinc_display},
                                {"system": ORDER_CODE_SYSTEM, "code": it.code}], "text": it.zh},
            "subject": e["subject"],
            "encounter": {"reference": format!("Encounter/{encounter}")},
            "authoredOn": crate::scheduling::local_instant(self.fhir.now_ms())});
        if let Some(user) = username(caller) {
            request["requester"] =
                json!({"identifier": {"system": USER_SYSTEM, "value": user}, "display": requester_name});
        }
        let w = self.fhir.create(&self.fhir.permit(caller, rtype("ServiceRequest")?).await?, request).await?;
        Ok((w.id, placer))
    }

    /// The encounter's requests, oldest first.
    pub async fn requested(&self, caller: &Caller, encounter: &str) -> Result<Vec<Requested>, RegistryError> {
        let rows = crate::common::search(
            &self.fhir,
            caller,
            "ServiceRequest",
            &[("encounter", format!("Encounter/{encounter}")), ("_sort", "_lastUpdated".into())],
        )
        .await?;
        // Only orders of the catalogue (an admission order, 住院证, is the ward's).
        Ok(rows
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| order_code_of(s).is_some())
            .map(|s| Requested {
                id: s["id"].as_str().unwrap_or_default().to_string(),
                placer: s["identifier"]
                    .as_array()
                    .and_then(|ids| ids.iter().find(|i| i["system"] == PLACER_SYSTEM))
                    .and_then(|i| i["value"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                code: order_code_of(&s).unwrap_or_default(),
                priority: s["priority"].as_str().unwrap_or("routine").to_string(),
                status: s["status"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_loads() {
        assert!(catalogue().len() >= 13);
        let k = item("LAB-K").unwrap();
        assert_eq!((k.loinc, k.category, k.en), ("2823-3", "laboratory", "Potassium"));
        assert_eq!(item("IMG-CXR").unwrap().category, "imaging");
        assert!(item("nope").is_none());
    }
}
