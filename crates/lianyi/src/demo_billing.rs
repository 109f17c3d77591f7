//! The demo's money and drugs: each campus's stores stocked as a stock keeper would,
//! and past days of outpatient visits replayed through the real services on a clock
//! set in the past — registrations, prescriptions and laboratory requests charged by
//! the billing watcher's own code, paid at the cashier, dispensed by the pharmacist,
//! now and then a refund, with each visit's wait for the doctor, a booked patient who
//! did not come every other day and a critical value every third — so the revenue
//! reports, the stock cards, the pharmacy's queue and the dashboards show a hospital's
//! month (or year, for the benchmarks).

use std::sync::Arc;

use lianyi_billing::cashier::{Cashier, PaymentForm};
use lianyi_billing::charges::Charger;
use lianyi_billing::dispensing::Dispensary;
use lianyi_billing::stock::{OrderLineForm, ReceiveForm, StockError, StockRoom};
use lianyi_security::{Caller, CampusId, Clock, ManualClock, SystemTask};
use lianyi_services::FhirService;
use lianyi_services::demo::DemoResource;
use lianyi_store::pharmacy::StockStore;
use serde_json::{Value, json};

use crate::CliError;

const DAY_MS: i64 = 86_400_000;
const CAMPUSES: [&str; 3] = ["campus-east", "campus-west", "campus-south"];
const SUPPLIERS: [&str; 3] = ["国药控股", "华润医药", "上海医药"];

fn failed(e: StockError) -> CliError {
    CliError::Usage(format!("demo stock: {e}"))
}

/// Catalogue drugs the demo keeps short of their reorder level (never prescribed in
/// the replayed days, so they stay short).
fn low(i: usize) -> bool {
    i % 9 == 4
}

/// What the demo's pharmacy holds at the end.
pub(crate) struct DemoStock {
    pub batches: usize,
    pub near_expiry: usize,
    pub low: usize,
    pub in_transit: usize,
}

/// Opens a purchase order for `lines` (drug, quantity) and receives them as batches.
async fn order_and_receive(
    stock: &StockRoom,
    caller: &Caller,
    (campus, store, c): (&str, &str, usize),
    lines: &[(&str, usize, String, String)],
) -> Result<usize, CliError> {
    let order: Vec<OrderLineForm> = lines
        .iter()
        .enumerate()
        .map(|(i, (drug, quantity, _, _))| OrderLineForm {
            drug: drug.to_string(),
            quantity: quantity.to_string(),
            price: format!("0.{:02}", 10 + (i * 7 + c) % 80),
        })
        .collect();
    let no = stock.create_order(caller, campus, store, SUPPLIERS[c], &order).await.map_err(failed)?;
    let received: Vec<ReceiveForm> = lines
        .iter()
        .map(|(drug, quantity, lot, expiry)| ReceiveForm {
            drug: drug.to_string(),
            lot: lot.clone(),
            expiry: expiry.clone(),
            quantity: quantity.to_string(),
        })
        .collect();
    Ok(stock.receive(caller, campus, no, &received).await.map_err(failed)?.len())
}

/// The stores and their stock at the first replayed day: a central store and an
/// outpatient pharmacy per campus, each drug in a batch sized for the days to come,
/// reorder levels in the pharmacies. `stock` runs on the replay's clock.
pub(crate) async fn stock_at_start(stock: &StockRoom, caller: &Caller, days: i64) -> Result<usize, CliError> {
    let now = stock.today_and_near().0;
    let start = lianyi_clinical::scheduling::local_midnight(&now).unwrap_or_default();
    let date_in = |d: i64| lianyi_clinical::scheduling::local_date(start + d * DAY_MS + 12 * 3_600_000);
    let drugs = lianyi_clinical::prescribing::catalogue();
    let mut batches = 0;
    for (c, campus) in CAMPUSES.into_iter().enumerate() {
        for (code, kind, zh, en) in [
            ("central", "central", "药库", "Central store"),
            ("op", "outpatient", "门诊药房", "Outpatient pharmacy"),
            ("ip", "inpatient", "住院药房", "Inpatient pharmacy"),
        ] {
            let store = StockStore {
                campus: campus.into(),
                code: code.into(),
                kind: kind.into(),
                name_zh: zh.into(),
                name_en: en.into(),
            };
            stock.put_store(caller, &store).await.map_err(failed)?;
            let central = code == "central";
            let lines: Vec<(&str, usize, String, String)> = drugs
                .iter()
                .enumerate()
                .filter(|(i, _)| central || !low(*i))
                .map(|(i, d)| {
                    let quantity = if central { 2000 } else { 400 + (i * 13) % 300 + days as usize * 6 };
                    let lot = format!("{}{:02}{:03}", if central { "C" } else { "P" }, c + 24, i + 1);
                    (d.code, quantity, lot, date_in(days + 400 + (i as i64 * 29) % 500))
                })
                .collect();
            batches += order_and_receive(stock, caller, (campus, code, c), &lines).await?;
            if !central {
                for d in drugs {
                    stock.set_level(caller, campus, code, d.code, "100").await.map_err(failed)?;
                }
            }
        }
    }
    Ok(batches)
}

/// Today's stock events: the drugs kept short arrive in small batches, older batches
/// expiring within two months join some drugs, an order stays open at the East
/// Campus, and East's central store ships the West Campus's pharmacy a box.
pub(crate) async fn stock_today(
    stock: &StockRoom,
    caller: &Caller,
    start_batches: usize,
) -> Result<DemoStock, CliError> {
    let drugs = lianyi_clinical::prescribing::catalogue();
    let (today, _) = stock.today_and_near();
    let now = lianyi_clinical::scheduling::local_midnight(&today).unwrap_or_default() + 12 * 3_600_000;
    let date_in = |d: i64| lianyi_clinical::scheduling::local_date(now + d * DAY_MS);
    let mut out = DemoStock { batches: start_batches, near_expiry: 0, low: 0, in_transit: 0 };
    for (c, campus) in CAMPUSES.into_iter().enumerate() {
        let mut lines = Vec::new();
        for (i, d) in drugs.iter().enumerate() {
            if low(i) {
                lines.push((d.code, 20, format!("L{:02}{:03}", c + 24, i + 1), date_in(400 + (i as i64 * 29) % 500)));
                out.low += 1;
            } else if i % 7 == 2 {
                lines.push((d.code, 30, format!("N{:02}{:03}", c + 24, i + 1), date_in(25 + (i as i64 * 3) % 35)));
                out.near_expiry += 1;
            }
        }
        out.batches += order_and_receive(stock, caller, (campus, "op", c), &lines).await?;
    }
    let lines = [("AMOX500", "5000", "0.32"), ("IBU200", "3000", "0.08")].map(|(d, q, p)| OrderLineForm {
        drug: d.into(),
        quantity: q.into(),
        price: p.into(),
    });
    stock.create_order(caller, "campus-east", "central", SUPPLIERS[0], &lines).await.map_err(failed)?;
    let east = stock.stock(caller, "campus-east", "central", false).await.map_err(failed)?;
    if let Some((batch, _)) = east.iter().find(|l| l.drug.code == "AMOX500").and_then(|l| l.batches.first()) {
        stock.ship(caller, batch.id, "200", "campus-west", "op", "补充西院门诊药房").await.map_err(failed)?;
        out.in_transit += 1;
    }
    Ok(out)
}

/// What the replayed days made.
#[derive(Default)]
pub(crate) struct History {
    pub visits: usize,
    pub payments: usize,
    pub dispensed: usize,
    pub refunds: usize,
}

/// A doctor's role at a campus: (PractitionerRole id, Practitioner id, department).
type Doctor = (String, String, String);

/// Replays `days` past days of outpatient visits, the last ending yesterday: each day
/// a few visits per campus (registration with the doctor, a prescription, every other
/// visit a laboratory request), charged, paid, the drug dispensed; one visit in
/// twenty-five has its laboratory request refunded before it is done.
pub(crate) async fn replay(
    past: &FhirService,
    clock: &Arc<ManualClock>,
    days: i64,
    data: &[DemoResource],
) -> Result<History, CliError> {
    let service_failed = |e: &dyn std::fmt::Display| CliError::Usage(format!("demo history: {e}"));
    let mut doctors: Vec<Vec<Doctor>> = vec![Vec::new(); CAMPUSES.len()];
    let mut patients: Vec<Vec<String>> = vec![Vec::new(); CAMPUSES.len()];
    for r in data {
        let Some(c) = CAMPUSES.iter().position(|x| *x == r.campus) else { continue };
        let v = &r.resource;
        if v["resourceType"] == "PractitionerRole" && v["code"][0]["coding"][0]["code"] == "doctor" {
            let id =
                |k: &str| v[k]["reference"].as_str().and_then(|x| x.split('/').nth(1)).unwrap_or_default().to_string();
            doctors[c].push((v["id"].as_str().unwrap_or_default().to_string(), id("practitioner"), id("organization")));
        } else if v["resourceType"] == "Patient" {
            patients[c].push(v["id"].as_str().unwrap_or_default().to_string());
        }
    }
    let system = Caller::task(SystemTask::Demo);
    let charger = Charger::new(past.clone());
    let cashier = Cashier::new(past.clone());
    let dispensary = Dispensary::new(past.clone());
    let drugs: Vec<&lianyi_clinical::prescribing::Drug> = lianyi_clinical::prescribing::catalogue()
        .iter()
        .enumerate()
        .filter(|(i, _)| !low(*i))
        .map(|(_, d)| d)
        .collect();
    let labs: Vec<&lianyi_clinical::orders::OrderItem> =
        lianyi_clinical::orders::catalogue().iter().filter(|o| o.category == "laboratory").collect();
    let methods = lianyi_billing::cashier::METHODS;
    let today = lianyi_clinical::scheduling::local_date(clock.now_ms() + days * DAY_MS);
    let first = lianyi_clinical::scheduling::local_midnight(&today).unwrap_or_default() - days * DAY_MS;
    let mut cursor = None;
    let mut out = History::default();
    for d in 0..days {
        let morning = first + d * DAY_MS + 8 * 3_600_000;
        clock.set(morning);
        let mut batch = Vec::new();
        // (campus index, patient, appointment, lab request) of the day's visits.
        let mut visits = Vec::new();
        for (c, campus) in CAMPUSES.into_iter().enumerate() {
            if doctors[c].is_empty() || patients[c].is_empty() {
                continue;
            }
            for v in 0..(4 + (d as usize + c) % 3) {
                let key = format!("{d}-{c}-{v}");
                let patient = patients[c][(d as usize * 7 + v * 13 + c) % patients[c].len()].clone();
                let (role, practitioner, department) = doctors[c][(d as usize + v) % doctors[c].len()].clone();
                let at = morning + v as i64 * 25 * 60_000;
                let time = |ms: i64| lianyi_clinical::scheduling::local_instant(ms);
                let drug = drugs[(d as usize * 5 + v * 3 + c) % drugs.len()];
                let quantity = 6 + (d as usize + v) % 4 * 6;
                batch.push((
                    json!({"resourceType": "Appointment", "id": format!("ha-{key}"), "status": "arrived",
                       "start": time(at), "end": time(at + 15 * 60_000), "created": &time(at)[..10],
                       "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
                                       {"actor": {"reference": format!("Practitioner/{practitioner}")}, "status": "accepted"},
                                       {"actor": {"reference": format!("PractitionerRole/{role}")}, "status": "accepted"}]}),
                    Some(campus.to_string()),
                ));
                // Called 5 to 40 minutes after check-in (the dashboards' waiting time).
                let called = at + (5 + ((d as usize * 7 + v * 11 + c * 3) % 36) as i64) * 60_000;
                batch.push((
                    json!({"resourceType": "Encounter", "id": format!("he-{key}"), "status": "finished",
                       "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
                       "subject": {"reference": format!("Patient/{patient}")},
                       "participant": [{"individual": {"reference": format!("Practitioner/{practitioner}")}}],
                       "appointment": [{"reference": format!("Appointment/ha-{key}")}],
                       "serviceProvider": {"reference": format!("Organization/{department}")},
                       "statusHistory": [{"status": "arrived", "period": {"start": time(at), "end": time(called)}}],
                       "period": {"start": time(at), "end": time(called + 15 * 60_000)}}),
                    Some(campus.to_string()),
                ));
                // Every third day a critical result of the first visit, acknowledged
                // within 3 to 14 minutes.
                if v == 0 && (d as usize + c).is_multiple_of(3) {
                    let raised = at + 60 * 60_000;
                    let acknowledged = raised + (3 + ((d as usize + c) % 12) as i64) * 60_000;
                    batch.push((
                        json!({"resourceType": "Task", "id": format!("ht-{key}"), "status": "completed", "intent": "order",
                           "priority": "stat",
                           "code": {"coding": [{"system": "urn:lianyi:task", "code": "critical-value"}], "text": "危急值 / critical value"},
                           "description": "血钾 6.8 mmol/L / Potassium 6.8 mmol/L",
                           "for": {"reference": format!("Patient/{patient}")},
                           "encounter": {"reference": format!("Encounter/he-{key}")},
                           "owner": {"reference": format!("Practitioner/{practitioner}")},
                           "authoredOn": time(raised),
                           "executionPeriod": {"start": time(raised), "end": time(acknowledged)},
                           "businessStatus": {"text": "acknowledged"}}),
                        Some(campus.to_string()),
                    ));
                }
                // Every other day one booked patient does not come.
                if v == 0 && (d as usize + c).is_multiple_of(2) {
                    let missed = morning + 3 * 3_600_000;
                    let absent = patients[c][(d as usize * 11 + c + 5) % patients[c].len()].clone();
                    batch.push((
                        json!({"resourceType": "Appointment", "id": format!("hn-{key}"), "status": "noshow",
                           "start": time(missed), "end": time(missed + 15 * 60_000), "created": &time(missed)[..10],
                           "participant": [{"actor": {"reference": format!("Patient/{absent}")}, "status": "accepted"},
                                           {"actor": {"reference": format!("Practitioner/{practitioner}")}, "status": "accepted"},
                                           {"actor": {"reference": format!("PractitionerRole/{role}")}, "status": "accepted"}]}),
                        Some(campus.to_string()),
                    ));
                }
                batch.push((
                    json!({"resourceType": "MedicationRequest", "id": format!("hm-{key}"), "status": "active", "intent": "order",
                       "medicationCodeableConcept": {"coding": [{"system": lianyi_clinical::prescribing::DRUG_SYSTEM, "code": drug.code, "display": drug.en}],
                                                     "text": format!("{} {}", drug.zh, drug.strength)},
                       "subject": {"reference": format!("Patient/{patient}")},
                       "encounter": {"reference": format!("Encounter/he-{key}")},
                       "authoredOn": time(at + 10 * 60_000),
                       "requester": {"reference": format!("Practitioner/{practitioner}")},
                       "dispenseRequest": {"quantity": {"value": quantity, "unit": drug.form}}}),
                    Some(campus.to_string()),
                ));
                let lab = (v % 2 == 0).then(|| labs[(d as usize + v) % labs.len()]);
                if let Some(o) = lab {
                    batch.push((
                        json!({"resourceType": "ServiceRequest", "id": format!("hs-{key}"), "status": "active", "intent": "order",
                           "code": {"coding": [{"system": "urn:lianyi:order", "code": o.code}], "text": o.zh},
                           "subject": {"reference": format!("Patient/{patient}")},
                           "encounter": {"reference": format!("Encounter/he-{key}")},
                           "requester": {"reference": format!("Practitioner/{practitioner}")},
                           "authoredOn": time(at + 12 * 60_000)}),
                        Some(campus.to_string()),
                    ));
                }
                visits.push((c, patient, key, lab.is_some(), at));
            }
        }
        // What was written, by id: the day's close changes their status.
        let written: std::collections::HashMap<String, (Value, Option<String>)> =
            batch.iter().filter_map(|(v, c)| Some((v["id"].as_str()?.to_string(), (v.clone(), c.clone())))).collect();
        let report = past.load_batch(&system, batch).await.map_err(|e| service_failed(&e))?;
        if let Some((n, why)) = report.rejected.first() {
            return Err(CliError::Usage(format!("demo history: record {n} refused: {why}")));
        }
        charger.scan(&mut cursor).await.map_err(|e| service_failed(&e))?;
        let mut closing = Vec::new();
        for (i, (c, patient, key, has_lab, at)) in visits.iter().enumerate() {
            let campus = CAMPUSES[*c];
            clock.set(at + 30 * 60_000);
            let desk = Caller::task_at(SystemTask::Operator("收费处".into()), CampusId::stored(campus));
            let open = charger.open_charges(&desk, patient).await.map_err(|e| service_failed(&e))?;
            let ids: Vec<String> = open.iter().map(|l| l.id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            let due: i64 = open.iter().map(|l| l.amount.0).sum();
            let method = methods[(d as usize + i) % methods.len()];
            let form = PaymentForm {
                campus: campus.into(),
                patient: patient.clone(),
                charges: ids,
                method: method.into(),
                tendered: lianyi_billing::money::Fen((due / 1000 + 1) * 1000).to_string(),
                reference: format!("{}{:010}", method.to_uppercase(), d * 1000 + i as i64),
            };
            let paid = cashier.pay(&desk, &form).await.map_err(|e| service_failed(&e))?;
            out.payments += 1;
            // The last day's late payers still wait at the pharmacy.
            let waiting = d == days - 1 && i % 3 == 0;
            if !waiting {
                clock.set(at + 40 * 60_000);
                let pharmacist = Caller::task_at(SystemTask::Operator("门诊药房".into()), CampusId::stored(campus));
                dispensary.dispense(&pharmacist, &format!("hm-{key}")).await.map_err(|e| service_failed(&e))?;
                out.dispensed += 1;
            }
            let mut lab_status = "completed";
            if *has_lab && (d as usize * 31 + i).is_multiple_of(25) {
                let lab_charge =
                    open.iter().find(|l| l.category == "lab").map(|l| l.id.clone()).into_iter().collect::<Vec<_>>();
                if !lab_charge.is_empty() {
                    clock.set(at + 50 * 60_000);
                    cashier
                        .refund(&desk, campus, paid.invoice_no, &lab_charge, "患者未做检查，要求退费")
                        .await
                        .map_err(|e| service_failed(&e))?;
                    out.refunds += 1;
                    lab_status = "revoked";
                }
            }
            closing.push((*c, key.clone(), *has_lab, lab_status, waiting));
            out.visits += 1;
        }
        // The day closes: visits fulfilled, requests done (or revoked), prescriptions completed.
        clock.set(first + d * DAY_MS + 18 * 3_600_000);
        let mut updates = Vec::new();
        for (_, key, has_lab, lab_status, waiting) in closing {
            let rx = (!waiting).then(|| (format!("hm-{key}"), "completed"));
            for (id, status) in [(format!("ha-{key}"), "fulfilled")]
                .into_iter()
                .chain(rx)
                .chain(has_lab.then(|| (format!("hs-{key}"), lab_status)))
            {
                if let Some((mut v, campus)) = written.get(&id).cloned() {
                    v["status"] = json!(status);
                    updates.push((v, campus));
                }
            }
        }
        past.load_batch(&system, updates).await.map_err(|e| service_failed(&e))?;
    }
    Ok(out)
}

/// Midnight (Beijing) `days` before today's: where the replay's clock starts.
pub(crate) fn history_start(days: i64) -> i64 {
    let now = lianyi_security::SystemClock::default().now_ms();
    let today = lianyi_clinical::scheduling::local_date(now);
    // Not after now: today's 07:00 has not come yet in the small hours.
    (lianyi_clinical::scheduling::local_midnight(&today).unwrap_or(now) - days * DAY_MS + 7 * 3_600_000).min(now)
}
