//! The price list: a manager (the price office) adds an item and prices it from a
//! date; a later price takes over at its date without touching what was priced
//! before; bad input is named by field and writes nothing; cashiers read their
//! campus's list and change nothing; patients do not see it.

use std::sync::Arc;

use lianyi_security::{Clock, ManualClock};
use reqwest::StatusCode;

use crate::helpers::spawn_app_clocked;
use crate::pages::{between, logged_in};

#[tokio::test]
async fn the_price_office_keeps_dated_prices_and_cashiers_read_them() {
    // 2027-01-15 16:00 Beijing.
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let (mut manager, token) = logged_in(&app, &clock, "price.office", "manager", "*", None).await;
    let (status, _, page) = manager.get("/billing/prices?campus=campus-east").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"price-item-form\""), "{page}");

    // An item with broken rules: each named, nothing stored.
    let item = |code: &str, category: &str| {
        vec![
            ("csrf", token.clone()),
            ("campus", "campus-east".to_string()),
            ("code", code.to_string()),
            ("national_code", "XB01".to_string()),
            ("category", category.to_string()),
            ("kind", "drug".to_string()),
            ("reference", "AMOX500".to_string()),
            ("name_zh", "阿莫西林胶囊 500 mg".to_string()),
            ("name_en", "Amoxicillin capsules 500 mg".to_string()),
            ("unit", "粒".to_string()),
        ]
    };
    let bad = item("bad code!", "food");
    let refs: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = manager.post("/billing/prices", &refs).await;
    let errors = between(&page, "id=\"form-errors\"", "</div>");
    assert!(errors.contains("data-field=\"code\"") && errors.contains("data-field=\"category\""), "{errors}");
    assert!(page.contains("value=\"bad code!\""), "what was typed is kept");
    let (_, _, list) = manager.get("/billing/prices?campus=campus-east").await;
    assert!(list.contains("id=\"no-prices\""), "nothing stored: {list}");

    let good = item("D-AMOX500", "western-drug");
    let refs: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, to, _) = manager.post("/billing/prices", &refs).await;
    assert_eq!(to, "/billing/prices/campus-east/D-AMOX500?done=item");

    // Prices: bad amounts and dates are named; a good one holds from today.
    let url = "/billing/prices/campus-east/D-AMOX500";
    for (amount, effective, field) in [
        ("-1", "2027-01-15", "amount"),
        ("1.234", "2027-01-15", "amount"),
        ("2", "", "effective"),
        ("2", "2027-01-14", "effective"),
    ] {
        let (_, _, page) = manager.post(url, &[("csrf", &token), ("amount", amount), ("effective", effective)]).await;
        let errors = between(&page, "id=\"form-errors\"", "</div>");
        assert!(errors.contains(&format!("data-field=\"{field}\"")), "{amount} {effective}: {errors}");
    }
    let (_, _, page) = manager.get(url).await;
    assert!(page.contains("未定价"), "nothing was priced by the refused forms: {page}");
    let (_, to, _) = manager.post(url, &[("csrf", &token), ("amount", "0.85"), ("effective", "2027-01-15")]).await;
    assert!(to.ends_with("done=price"), "{to}");
    let (_, to, _) = manager.post(url, &[("csrf", &token), ("amount", "0.90"), ("effective", "2027-02-01")]).await;
    assert!(to.ends_with("done=price"), "{to}");
    let (_, _, page) = manager.get(url).await;
    assert!(between(&page, "id=\"current-price\">", "<").contains("0.85"), "today's price: {page}");
    assert_eq!(
        between(&page, "id=\"price-history\"", "</table>").matches("<tr>").count(),
        3,
        "two prices and a header"
    );

    // What a charge made today was priced at stays 0.85 after the change.
    let charged_at = clock.now_ms();
    clock.advance(20 * 86_400_000);
    let (mut manager, _) = logged_in(&app, &clock, "price.later", "manager", "*", None).await;
    let (_, _, page) = manager.get(url).await;
    assert!(between(&page, "id=\"current-price\">", "<").contains("0.90"), "{page}");
    let system = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let prices = lianyi_billing::prices::PriceBook::new(app.fhir.clone());
    let then = prices.price_of(&system, "campus-east", "drug", "AMOX500", charged_at).await.unwrap().unwrap();
    assert_eq!(then.1.to_string(), "0.85");

    // A cashier of the campus reads the list and changes nothing; one of another
    // campus, and a patient, do not see it.
    let (mut cashier, ctoken) = logged_in(&app, &clock, "cashier.e", "cashier", "campus-east", None).await;
    let (status, _, list) = cashier.get("/billing/prices").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("data-code=\"D-AMOX500\"") && list.contains("0.90") && list.contains("西药费"), "{list}");
    assert!(!list.contains("id=\"price-item-form\""), "no form for the cashier");
    // The list as CSV (the public price notice): the same rows, in the page's language.
    let (status, _, csv) = cashier.get("/billing/prices.csv?category=western-drug").await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.starts_with('\u{feff}') && csv.contains("编码,国家/省级编码"), "{csv}");
    assert!(csv.contains("D-AMOX500,XB01,阿莫西林胶囊 500 mg,西药费,粒,0.90,2027-02-01"), "{csv}");
    let (status, _, _) = cashier.post(url, &[("csrf", &ctoken), ("amount", "9"), ("effective", "2027-03-01")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (mut west, _) = logged_in(&app, &clock, "cashier.w", "cashier", "campus-west", None).await;
    assert_eq!(west.get(url).await.0, StatusCode::FORBIDDEN);
    let (mut patient, _) = logged_in(&app, &clock, "patient.p", "patient", "*", Some("p1")).await;
    assert_eq!(patient.get("/billing/prices").await.0, StatusCode::FORBIDDEN);
}

/// Orders become charges at the price of the moment they were made: a prescription by
/// the unit price times the quantity to dispense, a request by its order's price. A
/// later price does not touch them; a cancelled request takes its charge back; the
/// cashier sees the open charges and their total on the patient page.
#[tokio::test]
async fn orders_become_charges_at_the_price_of_their_moment() {
    use serde_json::{Value, json};
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let system = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let prices = lianyi_billing::prices::PriceBook::new(app.fhir.clone());
    price_items(
        &app,
        "2027-01-15",
        &[
            ["D-AMOX500", "western-drug", "drug", "AMOX500", "粒", "0.85", "D-AMOX500 中文", "D-AMOX500"],
            ["O-LAB-K", "lab", "order", "LAB-K", "次", "20", "O-LAB-K 中文", "O-LAB-K"],
        ],
    )
    .await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let put = |v: Value| {
        let (east, url) = (
            east.clone(),
            app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap())),
        );
        async move {
            let r =
                east.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    put(json!({"resourceType": "Patient", "id": "payer", "name": [{"text": "付款人"}],
               "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": "E7000001"}]}))
    .await;
    put(json!({"resourceType": "Encounter", "id": "visit-1", "status": "in-progress",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": "Patient/payer"}}))
    .await;
    put(json!({"resourceType": "MedicationRequest", "id": "rx-1", "status": "active", "intent": "order",
               "medicationCodeableConcept": {"coding": [{"system": "urn:lianyi:drug", "code": "AMOX500"}], "text": "阿莫西林"},
               "subject": {"reference": "Patient/payer"}, "encounter": {"reference": "Encounter/visit-1"},
               "authoredOn": "2027-01-15T16:10:00+08:00",
               "dispenseRequest": {"quantity": {"value": 15, "unit": "capsule"}}})).await;
    put(json!({"resourceType": "ServiceRequest", "id": "lab-1", "status": "active", "intent": "order",
               "code": {"coding": [{"system": "urn:lianyi:order", "code": "LAB-K"}]},
               "subject": {"reference": "Patient/payer"}, "encounter": {"reference": "Encounter/visit-1"},
               "authoredOn": "2027-01-15T16:12:00+08:00"}))
    .await;
    // The price rises after the orders were made.
    prices.set_price(&system, "campus-east", "D-AMOX500", "1.00", "2027-01-16").await.unwrap();

    // The watcher charges them (it runs with the server).
    let charger = lianyi_billing::charges::Charger::new(app.fhir.clone());
    let started = std::time::Instant::now();
    let open = loop {
        let open = charger.open_charges(&system, "payer").await.unwrap();
        if open.len() == 2 || started.elapsed() > std::time::Duration::from_secs(15) {
            break open;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let amounts: Vec<(String, String, i64)> =
        open.iter().map(|c| (c.name_en.clone(), c.amount.to_string(), c.quantity)).collect();
    assert_eq!(amounts, [("D-AMOX500".into(), "12.75".into(), 15), ("O-LAB-K".into(), "20.00".into(), 1)]);
    assert_eq!(open[0].encounter.as_deref(), Some("visit-1"));

    // The cashier's patient page lists them with the total.
    let (mut cashier, _) = logged_in(&app, &clock, "cashier.c", "cashier", "campus-east", None).await;
    let (_, _, page) = cashier.get("/patients/payer").await;
    assert!(between(&page, "id=\"charges-total\">", "<").contains("32.75"), "{page}");
    assert!(page.contains("西药费") && page.contains("化验费"), "{page}");

    // The request is cancelled: its charge is taken back, the prescription's stays.
    put(json!({"resourceType": "ServiceRequest", "id": "lab-1", "status": "revoked", "intent": "order",
               "code": {"coding": [{"system": "urn:lianyi:order", "code": "LAB-K"}]},
               "subject": {"reference": "Patient/payer"}, "encounter": {"reference": "Encounter/visit-1"},
               "authoredOn": "2027-01-15T16:12:00+08:00"}))
    .await;
    let started = std::time::Instant::now();
    loop {
        let open = charger.open_charges(&system, "payer").await.unwrap();
        if open.len() == 1 {
            assert_eq!(open[0].name_en, "D-AMOX500");
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "the charge was not taken back: {open:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // One charge per order: changing the prescription again makes no second one.
    let r = east
        .get(app.url("/fhir/ChargeItem?identifier=urn:lianyi:sid:charge%7CMedicationRequest/rx-1"))
        .send()
        .await
        .unwrap();
    let bundle: Value = r.json().await.unwrap();
    assert_eq!(bundle["entry"].as_array().map(Vec::len), Some(1), "{bundle}");
    let _ = clock.now_ms();
}

/// Prices items at the East Campus from a day: [code, category, kind, catalogue
/// reference, unit, price in yuan, Chinese name, English name].
pub(crate) async fn price_items(app: &crate::helpers::TestApp, from: &str, items: &[[&str; 8]]) {
    let system = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let prices = lianyi_billing::prices::PriceBook::new(app.fhir.clone());
    for [code, category, kind, reference, unit, price, name_zh, name_en] in items {
        let form = lianyi_billing::prices::ItemForm {
            campus: "campus-east".into(),
            code: code.to_string(),
            category: category.to_string(),
            kind: kind.to_string(),
            reference: reference.to_string(),
            name_zh: name_zh.to_string(),
            name_en: name_en.to_string(),
            unit: unit.to_string(),
            ..Default::default()
        };
        prices.put_item(&system, &form).await.unwrap();
        prices.set_price(&system, "campus-east", code, price, from).await.unwrap();
    }
}

/// Sets up a priced drug at the East Campus and `n` patients with a prescription each;
/// returns when their charges exist.
pub(crate) async fn charged_patients(app: &crate::helpers::TestApp, n: usize) {
    use serde_json::json;
    let system = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let amox =
        ["D-AMOX500", "western-drug", "drug", "AMOX500", "粒", "0.85", "阿莫西林胶囊 500 mg", "Amoxicillin 500 mg"];
    price_items(app, "2027-01-15", &[amox]).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    for i in 0..n {
        for v in [
            json!({"resourceType": "Patient", "id": format!("pay-{i}"), "name": [{"text": format!("付款人{i}")}],
                   "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": format!("E71{i:05}")}]}),
            json!({"resourceType": "MedicationRequest", "id": format!("rx-pay-{i}"), "status": "active", "intent": "order",
                   "medicationCodeableConcept": {"coding": [{"system": "urn:lianyi:drug", "code": "AMOX500"}]},
                   "subject": {"reference": format!("Patient/pay-{i}")}, "authoredOn": "2027-01-15T16:10:00+08:00",
                   "dispenseRequest": {"quantity": {"value": 15, "unit": "capsule"}}}),
        ] {
            let url = app.url(&format!("/fhir/{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap()));
            let r =
                east.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    }
    let charger = lianyi_billing::charges::Charger::new(app.fhir.clone());
    let started = std::time::Instant::now();
    for i in 0..n {
        while charger.open_charges(&system, &format!("pay-{i}")).await.unwrap().is_empty() {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "no charge for pay-{i}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The cashier takes a payment: short cash and a card without its reference are named
/// and take nothing; cash with change issues invoice 1 and its receipt; the charges
/// are billed. Sixteen cashiers paying at once get the next sixteen numbers, each
/// once, without a gap.
#[tokio::test]
async fn the_cashier_takes_payments_under_gap_free_invoice_numbers() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    charged_patients(&app, 17).await;
    let (mut cashier, token) = logged_in(&app, &clock, "cashier.pay", "cashier", "campus-east", None).await;
    let (status, _, page) = cashier.get("/billing/cashier?patient=pay-0").await;
    assert_eq!(status, StatusCode::OK);
    let charge = between(&page, "name=\"charge\" value=\"", "\"").to_string();
    assert!(between(&page, "id=\"pay-total\">", "<").contains("12.75"), "{page}");
    let pay = |method: &'static str, tendered: &'static str, reference: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("patient", "pay-0".to_string()),
            ("charge", charge.clone()),
            ("method", method.to_string()),
            ("tendered", tendered.to_string()),
            ("reference", reference.to_string()),
        ]
    };
    for (form, field) in [
        (pay("cash", "10", ""), "tendered"),
        (pay("card", "", ""), "reference"),
        (pay("cash", "1.234", ""), "tendered"),
    ] {
        let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, _, page) = cashier.post("/billing/cashier", &refs).await;
        let errors = between(&page, "id=\"form-errors\"", "</div>");
        assert!(errors.contains(&format!("data-field=\"{field}\"")), "{errors}");
    }
    let form = pay("cash", "20", "");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, to, _) = cashier.post("/billing/cashier", &refs).await;
    assert_eq!(to, "/billing/receipts/campus-east/1?change=725");
    let (status, _, receipt) = cashier.get(&to).await;
    assert_eq!(status, StatusCode::OK);
    assert!(between(&receipt, "id=\"receipt-number\">", "<") == "00000001", "{receipt}");
    assert!(
        between(&receipt, "id=\"receipt-total\">", "<") == "12.75"
            && between(&receipt, "id=\"receipt-change\">", "<") == "7.25"
    );
    assert!(receipt.contains("西药费") && receipt.contains("现金"), "{receipt}");
    let (_, _, page) = cashier.get("/billing/cashier?patient=pay-0").await;
    assert!(page.contains("id=\"no-charges\""), "the charge is billed: {page}");
    // Paying the same charge again is refused (it is no longer billable).
    let (_, _, page) = cashier.post("/billing/cashier", &refs).await;
    assert!(page.contains("data-field=\"charges\""), "{page}");
    // Every look at the charge is audited: the three refused forms and the repeat on
    // their own, the payment's in its transaction, and the receipt's.
    let auditor = app.client_with("system/AuditEvent.rs", "*", None).await;
    let b: serde_json::Value = auditor
        .get(app.url("/fhir/AuditEvent?patient=Patient/pay-0&subtype=read&_count=50"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reads = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["entity"].to_string().contains(&format!("ChargeItem/{charge}")))
        .count();
    assert_eq!(reads, 6, "{b}");

    // Sixteen cashiers at once.
    let mut desks = Vec::new();
    for i in 1..17 {
        let (mut b, token) = logged_in(&app, &clock, &format!("cashier.{i}"), "cashier", "campus-east", None).await;
        let (_, _, page) = b.get(&format!("/billing/cashier?patient=pay-{i}")).await;
        let charge = between(&page, "name=\"charge\" value=\"", "\"").to_string();
        desks.push(tokio::spawn(async move {
            let form = [
                ("csrf", token.as_str()),
                ("patient", &format!("pay-{i}")),
                ("charge", charge.as_str()),
                ("method", "wechat"),
                ("tendered", ""),
                ("reference", &format!("WX{i:010}")),
            ];
            let (_, to, _) = b.post("/billing/cashier", &form).await;
            assert!(to.starts_with("/billing/receipts/campus-east/"), "desk {i}: {to}");
        }));
    }
    for d in desks {
        d.await.unwrap();
    }
    let numbers = app.fhir.operations().invoice_numbers("campus-east").await.unwrap();
    assert_eq!(numbers, (1..=17).collect::<Vec<i64>>(), "gap-free and unique");
}

/// A refund (退费) of a paid, undelivered item issues a red-letter invoice under the
/// next number that refers to the original; without a reason, twice, or for a request
/// already performed it is refused and nothing is written.
#[tokio::test]
async fn a_refund_issues_a_red_letter_invoice_for_undelivered_items_only() {
    use serde_json::json;
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    charged_patients(&app, 1).await;
    let (mut cashier, token) = logged_in(&app, &clock, "cashier.refund", "cashier", "campus-east", None).await;
    let pay = |b: &mut crate::pages::Browser, token: String| {
        let b = std::mem::replace(b, crate::pages::Browser::new(&app.base, "zh-CN"));
        async move {
            let mut b = b;
            let (_, _, page) = b.get("/billing/cashier?patient=pay-0").await;
            let charges: Vec<String> = page
                .split("name=\"charge\" value=\"")
                .skip(1)
                .map(|r| r.split('"').next().unwrap().to_string())
                .collect();
            let mut form = vec![
                ("csrf", token.clone()),
                ("patient", "pay-0".into()),
                ("method", "alipay".into()),
                ("reference", "ALI123".into()),
            ];
            form.extend(charges.iter().map(|c| ("charge", c.clone())));
            let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (_, to, _) = b.post("/billing/cashier", &refs).await;
            (b, to, charges)
        }
    };
    let (b, to, charges) = pay(&mut cashier, token.clone()).await;
    cashier = b;
    assert_eq!(to, "/billing/receipts/campus-east/1?change=0");
    let refund = |reason: &'static str, charge: String| {
        vec![("csrf", token.clone()), ("charge", charge), ("reason", reason.to_string())]
    };
    let url = "/billing/receipts/campus-east/1/refund";
    let form = refund("", charges[0].clone());
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, to, _) = cashier.post(url, &refs).await;
    assert!(to.ends_with("?error=required"), "{to}");
    let form = refund("患者过敏，未取药", charges[0].clone());
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, to, _) = cashier.post(url, &refs).await;
    assert_eq!(to, "/billing/receipts/campus-east/2");
    let (_, _, red) = cashier.get(&to).await;
    assert!(red.contains("红字") && between(&red, "id=\"refund-of\">", "<").contains("00000001"), "{red}");
    assert_eq!(between(&red, "id=\"receipt-total\">", "<"), "-12.75");
    let (_, to, _) = cashier.post(url, &refs).await;
    assert!(to.ends_with("?error=not-billed"), "refunded once only: {to}");

    // A request already performed is not refunded.
    let system = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    price_items(&app, "2027-01-15", &[["O-LAB-K", "lab", "order", "LAB-K", "次", "20", "血钾", "Potassium"]]).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let sr = |status: &str| {
        json!({"resourceType": "ServiceRequest", "id": "lab-pay", "status": status, "intent": "order",
               "code": {"coding": [{"system": "urn:lianyi:order", "code": "LAB-K"}]},
               "subject": {"reference": "Patient/pay-0"}, "authoredOn": "2027-01-15T16:12:00+08:00"})
    };
    let put = |v: serde_json::Value| {
        let (east, url) = (east.clone(), app.url("/fhir/ServiceRequest/lab-pay"));
        async move {
            let r =
                east.put(url).header("content-type", "application/fhir+json").body(v.to_string()).send().await.unwrap();
            assert!(r.status().is_success());
        }
    };
    put(sr("active")).await;
    let charger = lianyi_billing::charges::Charger::new(app.fhir.clone());
    let started = std::time::Instant::now();
    while charger.open_charges(&system, "pay-0").await.unwrap().is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "no charge for the request");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (b, to, charges) = pay(&mut cashier, token.clone()).await;
    cashier = b;
    assert_eq!(to, "/billing/receipts/campus-east/3?change=0");
    put(sr("completed")).await;
    let form = refund("检查已做但要求退费", charges[0].clone());
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, to, _) = cashier.post("/billing/receipts/campus-east/3/refund", &refs).await;
    assert!(to.ends_with("?error=delivered"), "{to}");
    assert_eq!(app.fhir.operations().invoice_numbers("campus-east").await.unwrap(), vec![1, 2, 3]);
}

/// The day's close (日结): counts that do not match the day's receipts by method are
/// named and close nothing; matching counts close the day, and a closed day takes no
/// more payments.
#[tokio::test]
async fn a_cashier_closes_the_day_only_when_the_counts_match_and_it_then_locks() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    charged_patients(&app, 3).await;
    let (mut cashier, token) = logged_in(&app, &clock, "cashier.close", "cashier", "campus-east", None).await;
    for (i, method, tendered, reference) in [(0, "cash", "20", ""), (1, "wechat", "", "WX0001")] {
        let (_, _, page) = cashier.get(&format!("/billing/cashier?patient=pay-{i}")).await;
        let charge = between(&page, "name=\"charge\" value=\"", "\"").to_string();
        let patient = format!("pay-{i}");
        let form = [
            ("csrf", token.as_str()),
            ("patient", patient.as_str()),
            ("charge", charge.as_str()),
            ("method", method),
            ("tendered", tendered),
            ("reference", reference),
        ];
        let (_, to, _) = cashier.post("/billing/cashier", &form).await;
        assert!(to.starts_with("/billing/receipts/"), "{to}");
    }
    let (_, _, page) = cashier.get("/billing/settlement").await;
    assert_eq!(between(&page, "id=\"settle-total\">", "<"), "25.50");
    // Cash counted short: named, nothing closed.
    let (_, _, page) = cashier
        .post("/billing/settlement", &[("csrf", &token), ("counted-cash", "12.70"), ("counted-wechat", "12.75")])
        .await;
    let errors = between(&page, "id=\"form-errors\"", "</div>");
    assert!(errors.contains("data-field=\"cash\"") && !errors.contains("data-field=\"wechat\""), "{errors}");
    assert!(!page.contains("id=\"settled\""));
    let (_, to, _) = cashier
        .post("/billing/settlement", &[("csrf", &token), ("counted-cash", "12.75"), ("counted-wechat", "12.75")])
        .await;
    assert_eq!(to, "/billing/settlement");
    let (_, _, page) = cashier.get("/billing/settlement").await;
    assert!(page.contains("id=\"settled\""), "{page}");
    // The closed day takes no more payments.
    let (_, _, page) = cashier.get("/billing/cashier?patient=pay-2").await;
    let charge = between(&page, "name=\"charge\" value=\"", "\"").to_string();
    let form = [
        ("csrf", token.as_str()),
        ("patient", "pay-2"),
        ("charge", charge.as_str()),
        ("method", "cash"),
        ("tendered", "20"),
        ("reference", ""),
    ];
    let (_, _, page) = cashier.post("/billing/cashier", &form).await;
    assert!(between(&page, "id=\"form-errors\"", "</div>").contains("data-field=\"day\""), "{page}");
    assert_eq!(app.fhir.operations().invoice_numbers("campus-east").await.unwrap(), vec![1, 2]);

    // The manager's revenue report: the day's bar, the methods, CSV; the cashier has none.
    assert_eq!(cashier.get("/billing/reports").await.0, StatusCode::FORBIDDEN);
    let (mut manager, _) = logged_in(&app, &clock, "manager.r", "manager", "*", None).await;
    let (status, _, report) = manager.get("/billing/reports").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(between(&report, "id=\"revenue-total\">", "<"), "¥25.50");
    assert!(
        between(&report, "id=\"revenue-by-day\"", "</svg>").contains("data-day=\"2027-01-15\" data-amount=\"25.50\"")
    );
    let methods = between(&report, "id=\"revenue-by-method\"", "</table>");
    assert!(
        methods.contains("现金") && methods.contains("微信支付") && methods.contains("data-amount=\"12.75\""),
        "{methods}"
    );
    assert!(between(&report, "id=\"revenue-by-category\"", "</table>").contains("西药费"));
    let (status, _, csv) = manager.get("/billing/reports.csv?by=method&from=2027-01-01&to=2027-01-31").await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.starts_with("\u{feff}支付方式,代码,金额（元）,笔数") && csv.contains("现金,cash,12.75,1"), "{csv}");
    let (_, _, bad) = manager.get("/billing/reports?from=2027-02-01&to=2027-01-01").await;
    assert!(between(&bad, "id=\"form-errors\"", "</div>").contains("data-field=\"to\""), "{bad}");
}

/// Money reconciles: 1,000 random payments and refunds (random charges, subsets,
/// methods, cashiers, over a month) are totalled four ways — the revenue report by
/// day, category, department, method and campus; each cashier's day by method; the
/// receipts by category; the charges billed in the record — and every way agrees
/// with the ledger the test kept, to the fen. The invoice numbers have no gap.
#[tokio::test]
async fn a_thousand_random_payments_and_refunds_reconcile_by_category_method_and_day() {
    /// (day, cashier, method, category, department, signed fen)
    type Entry = (String, String, String, String, String, i64);
    use std::collections::BTreeMap;

    use lianyi_billing::cashier::{Cashier, PaymentForm};
    use lianyi_security::{Caller, CampusId, SystemTask};
    use serde_json::{Value, json};

    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let east = CampusId::stored("campus-east");
    let system = Caller::task_at(SystemTask::Operator("test".into()), east.clone());
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    const PATIENTS: usize = 60;
    const CHARGES: usize = 3_000;
    let categories = ["western-drug", "lab", "exam", "treatment", "registration"];
    let departments = ["campus-east-im", "campus-east-su", "campus-east-pe"];
    // charge id -> (patient, category, department, amount)
    let mut charges: BTreeMap<String, (usize, &str, &str, i64)> = BTreeMap::new();
    let mut entries = Vec::new();
    for p in 0..PATIENTS {
        entries.push(json!({"resource": {"resourceType": "Patient", "id": format!("recon-{p}"), "name": [{"text": format!("对账{p}")}]},
                            "request": {"method": "PUT", "url": format!("Patient/recon-{p}")}}));
    }
    for c in 0..CHARGES {
        let (p, cat, dept) = (
            rand(PATIENTS as u64) as usize,
            categories[rand(categories.len() as u64) as usize],
            departments[rand(departments.len() as u64) as usize],
        );
        let amount = 1 + rand(50_000) as i64;
        let id = format!("recon-c{c}");
        entries.push(json!({"resource": {"resourceType": "ChargeItem", "id": id, "status": "billable",
            "code": {"text": format!("项目{c}")}, "subject": {"reference": format!("Patient/recon-{p}")},
            "quantity": {"value": 1}, "costCenter": {"reference": format!("Organization/{dept}")},
            "extension": [{"url": lianyi_billing::charges::AMOUNT_URL, "valueInteger": amount},
                          {"url": lianyi_billing::charges::UNIT_PRICE_URL, "valueInteger": amount},
                          {"url": lianyi_billing::charges::CATEGORY_URL, "valueCode": cat}]},
            "request": {"method": "PUT", "url": format!("ChargeItem/{id}")}}));
        charges.insert(id, (p, cat, dept, amount));
    }
    for chunk in entries.chunks(500) {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": chunk});
        app.fhir.process_bundle(&system, bundle, true).await.unwrap();
    }

    let cashier = Cashier::new(app.fhir.clone());
    let desks: Vec<Caller> =
        (0..4).map(|k| Caller::task_at(SystemTask::Operator(format!("cashier-{k}")), east.clone())).collect();
    let methods = lianyi_billing::cashier::METHODS;
    let mut open: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (id, (p, ..)) in &charges {
        open.entry(*p).or_default().push(id.clone());
    }
    // invoice no -> (method, charges still billed)
    let mut paid: BTreeMap<i64, (String, Vec<String>)> = BTreeMap::new();
    // The test's own ledger: (day, cashier, method, category, department, signed fen).
    let mut ledger: Vec<Entry> = Vec::new();
    let (mut payments, mut refunds) = (0, 0);
    for _ in 0..1_000 {
        clock.advance(rand(90) as i64 * 60_000);
        let day = lianyi_clinical::scheduling::local_date(clock.now_ms());
        let desk = rand(desks.len() as u64) as usize;
        let refundable: Vec<i64> = paid.iter().filter(|(_, (_, c))| !c.is_empty()).map(|(n, _)| *n).collect();
        let patients: Vec<usize> = open.iter().filter(|(_, c)| !c.is_empty()).map(|(p, _)| *p).collect();
        if rand(4) == 0 && !refundable.is_empty() || patients.is_empty() {
            let no = refundable[rand(refundable.len() as u64) as usize];
            let (method, billed) = paid.get_mut(&no).unwrap();
            let take = 1 + rand(billed.len() as u64) as usize;
            let chosen: Vec<String> = billed.drain(..take).collect();
            cashier.refund(&desks[desk], "campus-east", no, &chosen, "患者要求退费").await.unwrap();
            for c in &chosen {
                let (_, cat, dept, amount) = charges[c];
                ledger.push((
                    day.clone(),
                    desks[desk].actor().into(),
                    method.clone(),
                    cat.into(),
                    dept.into(),
                    -amount,
                ));
            }
            refunds += 1;
        } else {
            let p = patients[rand(patients.len() as u64) as usize];
            let list = open.get_mut(&p).unwrap();
            let take = 1 + rand(list.len().min(3) as u64) as usize;
            let chosen: Vec<String> = list.drain(..take).collect();
            let method = methods[rand(methods.len() as u64) as usize];
            let amount: i64 = chosen.iter().map(|c| charges[c].3).sum();
            let form = PaymentForm {
                campus: "campus-east".into(),
                patient: format!("recon-{p}"),
                charges: chosen.clone(),
                method: method.into(),
                tendered: lianyi_billing::money::Fen(amount + rand(10_000) as i64).to_string(),
                reference: format!("REF{}", rand(1_000_000)),
            };
            let done = cashier.pay(&desks[desk], &form).await.unwrap();
            for c in &chosen {
                let (_, cat, dept, amount) = charges[c];
                ledger.push((day.clone(), desks[desk].actor().into(), method.into(), cat.into(), dept.into(), amount));
            }
            paid.insert(done.invoice_no, (method.into(), chosen));
            payments += 1;
        }
    }
    assert!(payments > 600 && refunds > 150, "{payments} payments, {refunds} refunds");
    let sum_by = |key: &dyn Fn(&Entry) -> String| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for e in &ledger {
            *m.entry(key(e)).or_default() += e.5;
        }
        m
    };
    let first = ledger.first().unwrap().0.clone();
    let last = ledger.last().unwrap().0.clone();
    assert!(first != last, "the payments span several days");

    // 1. The revenue report, every grouping.
    let reports = lianyi_billing::reports::Reports::new(app.fhir.clone());
    let report = reports.revenue(&system, &first, &last).await.unwrap();
    let as_map = |rows: &[lianyi_store::payments::Revenue]| -> BTreeMap<String, i64> {
        rows.iter().map(|r| (r.key.clone(), r.amount_fen)).collect()
    };
    assert_eq!(as_map(&report.by_day), sum_by(&|e| e.0.clone()), "by day");
    assert_eq!(as_map(&report.by_category), sum_by(&|e| e.3.clone()), "by category");
    assert_eq!(as_map(&report.by_method), sum_by(&|e| e.2.clone()), "by method");
    let by_department: BTreeMap<String, i64> =
        report.by_department.iter().map(|(r, _)| (r.key.clone(), r.amount_fen)).collect();
    assert_eq!(by_department, sum_by(&|e| e.4.clone()), "by department");
    let total: i64 = ledger.iter().map(|e| e.5).sum();
    assert_eq!(as_map(&report.by_campus), BTreeMap::from([("campus-east".to_string(), total)]), "by campus");
    assert_eq!(report.total.0, total);

    // 2. Each cashier's day, by method (what the day close counts against).
    let per_desk_day = sum_by(&|e| format!("{}|{}|{}", e.1, e.0, e.2));
    for (k, desk) in desks.iter().enumerate() {
        let mut day = first.clone();
        while day <= last {
            let totals = cashier.day(desk, "campus-east", &day).await.unwrap().totals;
            for (method, fen, _) in totals {
                let want = per_desk_day.get(&format!("cashier-{k}|{day}|{method}")).copied().unwrap_or(0);
                assert_eq!(fen.0, want, "cashier-{k} {day} {method}");
            }
            let next = lianyi_clinical::scheduling::local_midnight(&day).unwrap() + 86_400_000 + 3_600_000;
            day = lianyi_clinical::scheduling::local_date(next);
        }
    }

    // 3. The receipts (the invoices themselves), by category; red-letter ones count negative.
    let numbers = app.fhir.operations().invoice_numbers("campus-east").await.unwrap();
    assert_eq!(numbers, (1..=1_000).collect::<Vec<i64>>(), "gap-free");
    let mut by_receipt: BTreeMap<String, i64> = BTreeMap::new();
    for no in numbers {
        let r = cashier.receipt(&system, "campus-east", no).await.unwrap().unwrap();
        let sign = if r.payment.refund_of.is_some() { -1 } else { 1 };
        let lines: i64 = r.by_category.iter().map(|(_, f)| f.0).sum();
        assert_eq!(sign * lines, r.payment.amount_fen, "invoice {no}: its lines make its amount");
        for (cat, fen) in r.by_category {
            *by_receipt.entry(cat).or_default() += sign * fen.0;
        }
    }
    assert_eq!(by_receipt, sum_by(&|e| e.3.clone()), "receipts by category");

    // 4. The record: the charges billed add up to what was taken.
    let reader = app.fhir.reader(&system, lianyi_fhir::ResourceType::parse("ChargeItem").unwrap()).await.unwrap();
    let mut billed = 0;
    for id in charges.keys() {
        let v: Value = serde_json::from_str(&reader.read(id).await.unwrap().body).unwrap();
        if v["status"] == "billed" {
            billed += lianyi_billing::charges::line_of(id, &v).amount.0;
        }
    }
    assert_eq!(billed, total, "billed charges = net taken");
}

/// A registrar records a patient's insurance (Coverage): broken rules named by field
/// and nothing stored; a good one listed on the patient page and readable by the
/// cashier; a cashier records none.
#[tokio::test]
async fn a_registrar_records_the_patients_insurance() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    charged_patients(&app, 1).await;
    let (mut registrar, token) = logged_in(&app, &clock, "reg.cov", "registrar", "campus-east", None).await;
    let (_, _, page) = registrar.get("/patients/pay-0").await;
    assert!(page.contains("id=\"no-coverage\"") && page.contains("id=\"record-coverage\""), "{page}");
    let url = "/billing/coverage?patient=pay-0";
    let form = |kind: &str, payor: &str, member: &str, start: &str, end: &str| {
        vec![
            ("csrf", token.clone()),
            ("kind", kind.to_string()),
            ("payor", payor.to_string()),
            ("member", member.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ]
    };
    let bad = form("pension", "", "12 34", "2027-13-01", "2026-01-01");
    let refs: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = registrar.post(url, &refs).await;
    let errors = between(&page, "id=\"form-errors\"", "</div>");
    for field in ["kind", "payor", "member", "start"] {
        assert!(errors.contains(&format!("data-field=\"{field}\"")), "{field}: {errors}");
    }
    let good = form("employee", "北京市医保中心", "110101199001011234", "2027-01-01", "2027-12-31");
    let refs: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, to, _) = registrar.post(url, &refs).await;
    assert_eq!(to, "/billing/coverage?patient=pay-0&done=1");
    let (_, _, page) = registrar.get("/patients/pay-0").await;
    let list = between(&page, "id=\"coverages\"", "</ul>");
    assert!(list.contains("城镇职工基本医疗保险") && list.contains("110101199001011234"), "{page}");
    let r = app.client.get(app.url("/fhir/Coverage?beneficiary=Patient/pay-0")).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["entry"].as_array().map(Vec::len), Some(1), "one stored: {v}");
    assert_eq!(v["entry"][0]["resource"]["payor"][0]["display"], "北京市医保中心");
    let (mut cashier, ctoken) = logged_in(&app, &clock, "cash.cov", "cashier", "campus-east", None).await;
    let (_, _, page) = cashier.get("/patients/pay-0").await;
    assert!(page.contains("110101199001011234") && !page.contains("id=\"record-coverage\""), "{page}");
    let (status, _, _) = cashier.post(url, &[("csrf", &ctoken), ("kind", "employee")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
