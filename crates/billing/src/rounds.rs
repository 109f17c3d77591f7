//! The wards' medication rounds at the inpatient pharmacy (病区摆药): a ward sends the
//! doses of a day as MedicationDispenses in preparation (one per order, its units for
//! the day, the ward as `destination`); the campus's inpatient pharmacist dispenses a
//! ward's round at once — batches first-expiry-first-out from the campus's inpatient
//! pharmacy, every dispense completed and the stock taken in one transaction. Short of
//! any drug, nothing is dispensed and the drugs short are named. Stock never goes
//! negative: a batch taken meanwhile is picked again.

use std::collections::HashMap;

use lianyi_clinical::prescribing::{DRUG_SYSTEM, drug};
use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::Caller;
use lianyi_services::ServiceError;
use lianyi_store::StoreError;
use lianyi_store::messages::SideWrite;
use lianyi_store::pharmacy::StockMove;
use serde_json::{Value, json};

use crate::dispensing::{BATCH_URL, Dispensary, DispenseError, pick_fefo};
use crate::prices::FieldError;

/// A round's dispense identifier system; the value is `{ward}/{YYYY-MM-DD}/{order}`.
pub const ROUND_SYSTEM: &str = "urn:lianyi:ward-round";

/// One line of a ward's round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundLine {
    /// The MedicationDispense.
    pub id: String,
    /// The ward (a Location id).
    pub ward: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub patient: String,
    pub stay: String,
    /// The order (`MedicationRequest/…`).
    pub order: String,
    pub drug: String,
    pub what: String,
    pub units: i64,
    pub unit: String,
    /// `preparation` (waiting) or `completed` (dispensed).
    pub status: String,
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> DispenseError {
    DispenseError::Invalid(vec![FieldError { field, rule, detail: detail.into() }])
}

/// A stored round dispense as a line (`None` when it is not one).
pub fn line_of(id: &str, v: &Value) -> Option<RoundLine> {
    let key = v["identifier"].as_array()?.iter().find(|i| i["system"] == ROUND_SYSTEM)?["value"].as_str()?;
    let mut parts = key.splitn(3, '/');
    let (ward, date) = (parts.next()?.to_string(), parts.next()?.to_string());
    let code =
        v["medicationCodeableConcept"]["coding"].as_array()?.iter().find(|c| c["system"] == DRUG_SYSTEM)?["code"]
            .as_str()?;
    Some(RoundLine {
        id: id.to_string(),
        ward,
        date,
        patient: v["subject"]["reference"].as_str()?.trim_start_matches("Patient/").to_string(),
        stay: v["context"]["reference"].as_str().unwrap_or_default().trim_start_matches("Encounter/").to_string(),
        order: v["authorizingPrescription"][0]["reference"].as_str().unwrap_or_default().to_string(),
        drug: code.to_string(),
        what: v["medicationCodeableConcept"]["text"].as_str().unwrap_or(code).to_string(),
        units: v["quantity"]["value"].as_i64().unwrap_or_default(),
        unit: v["quantity"]["unit"].as_str().unwrap_or_default().to_string(),
        status: v["status"].as_str().unwrap_or_default().to_string(),
    })
}

impl Dispensary {
    /// The campus's inpatient pharmacy (the first of its inpatient stores).
    pub async fn inpatient_store(&self, campus: &str) -> Result<Option<String>, DispenseError> {
        let stores = self.fhir().operations().pharmacy().stores().await?;
        Ok(stores.into_iter().find(|s| s.campus == campus && s.kind == "inpatient").map(|s| s.code))
    }

    async fn round_rows(
        &self,
        caller: &Caller,
        params: &[(&str, String)],
    ) -> Result<Vec<(lianyi_store::StoredResource, RoundLine)>, DispenseError> {
        let rt = ResourceType::parse("MedicationDispense").ok_or_else(|| invalid("round", "type", "dispenses"))?;
        let mut params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        params.push(("_count".into(), "1000".into()));
        let req = parse_search(rt, &params).map_err(|i| invalid("round", "search", i.diagnostics))?;
        let page = self.fhir().search(&self.fhir().permit(caller, rt).await?, &req).await?;
        Ok(page
            .resources
            .into_iter()
            .filter_map(|r| {
                let v: Value = serde_json::from_str(&r.body).ok()?;
                let line = line_of(&r.id, &v)?;
                Some((r, line))
            })
            .collect())
    }

    /// The round lines waiting at `campus`'s inpatient pharmacy, by ward, date and bed
    /// order of sending.
    pub async fn waiting_rounds(&self, caller: &Caller, campus: &str) -> Result<Vec<RoundLine>, DispenseError> {
        Self::check(caller, campus)?;
        let here = lianyi_security::CampusId::parse(campus).map_err(|_| invalid("campus", "campus", "a campus"))?;
        let here = caller.at_campus(&here).ok_or(DispenseError::Forbidden("not among your campuses"))?;
        let mut lines: Vec<RoundLine> =
            self.round_rows(&here, &[("status", "preparation".into())]).await?.into_iter().map(|(_, l)| l).collect();
        lines.sort_by(|a, b| (&a.ward, &a.date, &a.id).cmp(&(&b.ward, &b.date, &b.id)));
        Ok(lines)
    }

    /// Dispenses every waiting line of `ward`'s round at `campus` from its inpatient
    /// pharmacy; returns how many lines were dispensed.
    pub async fn dispense_round(&self, caller: &Caller, campus: &str, ward: &str) -> Result<usize, DispenseError> {
        Self::check(caller, campus)?;
        let id = lianyi_security::CampusId::parse(campus).map_err(|_| invalid("campus", "campus", "a campus"))?;
        let here = caller.at_campus(&id).ok_or(DispenseError::Forbidden("not among your campuses"))?;
        let Some(store) = self.inpatient_store(campus).await? else {
            return Err(invalid("store", "none", "the campus has no inpatient pharmacy"));
        };
        let ops = self.fhir().operations();
        for attempt in 0..3 {
            let rows = self
                .round_rows(&here, &[("status", "preparation".into()), ("destination", format!("Location/{ward}"))])
                .await?;
            if rows.is_empty() {
                return Err(invalid("ward", "no-round", "the ward has no round waiting"));
            }
            let now = self.fhir().now_ms();
            let today = lianyi_clinical::scheduling::local_date(now);
            // Each drug's batches, taken line after line.
            let mut stock: HashMap<String, Vec<lianyi_store::pharmacy::Batch>> = HashMap::new();
            let mut short: Vec<String> = Vec::new();
            let mut entries = Vec::new();
            let mut side = Vec::new();
            for (stored, line) in &rows {
                if !stock.contains_key(&line.drug) {
                    let batches = ops.pharmacy().dispensable(campus, &store, &line.drug, &today).await?;
                    stock.insert(line.drug.clone(), batches);
                }
                let batches = stock.get_mut(&line.drug).map(std::mem::take).unwrap_or_default();
                let (picks, left) = pick_fefo(&batches, line.units);
                let mut rest = batches;
                for (b, n) in &picks {
                    if let Some(x) = rest.iter_mut().find(|x| x.id == b.id) {
                        x.quantity -= n;
                    }
                }
                stock.insert(line.drug.clone(), rest);
                if left > 0 {
                    let name = drug(&line.drug).map_or(line.drug.clone(), |d| format!("{} {}", d.zh, d.strength));
                    short.push(format!("{name} −{left}"));
                    continue;
                }
                let mut v: Value =
                    serde_json::from_str(&stored.body).map_err(|e| invalid("round", "data", e.to_string()))?;
                if let Some(o) = v.as_object_mut() {
                    o.remove("meta");
                }
                v["status"] = json!("completed");
                v["whenPrepared"] = json!(lianyi_clinical::scheduling::local_instant(now));
                v["whenHandedOver"] = json!(lianyi_clinical::scheduling::local_instant(now));
                v["performer"] = json!([{"actor": {"display": caller.actor()}}]);
                v["extension"] = json!(
                    picks
                        .iter()
                        .map(|(b, n)| json!({"url": BATCH_URL, "extension": [
                    {"url": "batch", "valueInteger": b.id}, {"url": "lot", "valueString": b.lot},
                    {"url": "expiry", "valueDate": b.expiry}, {"url": "quantity", "valueInteger": n}]}))
                        .collect::<Vec<_>>()
                );
                entries.push(json!({"resource": v, "request": {"method": "PUT", "url": format!("MedicationDispense/{}", stored.id),
                                    "ifMatch": format!("W/\"{}\"", stored.version)}}));
                side.extend(picks.iter().map(|(b, n)| {
                    SideWrite::Stock(StockMove {
                        batch: b.id,
                        delta: -n,
                        kind: "dispense".into(),
                        reference: Some(format!("MedicationDispense/{}", stored.id)),
                        reason: None,
                        actor: caller.actor().into(),
                        at: now,
                    })
                }));
            }
            if !short.is_empty() {
                short.sort();
                short.dedup();
                // The detail names only the drugs short (pages word the rule).
                return Err(invalid("quantity", "round-short", short.join(", ")));
            }
            let n = entries.len();
            let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
            match self.fhir().process_bundle_with(&here, bundle, true, &side).await {
                Ok(_) => return Ok(n),
                Err(ServiceError::Store(StoreError::Refused(msg))) if msg.starts_with("quantity") && attempt < 2 => {
                    continue;
                }
                Err(e) if e.is_conflict() && attempt < 2 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(invalid("ward", "changed", "the round or the stock changed meanwhile: nothing was dispensed; try again"))
    }
}
