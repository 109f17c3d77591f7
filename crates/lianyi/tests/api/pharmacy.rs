//! The pharmacy: a stock keeper orders, receives, transfers and counts stock with
//! every broken rule named and nothing half-written; a paid prescription reaches the
//! pharmacist's queue, is dispensed first-expiry-first-out with the stock falling in
//! the same transaction, returned, and refunded; two pharmacists taking the last
//! box: one wins; expired batches are never dispensed.

use std::sync::Arc;

use lianyi_security::{Caller, Clock, ManualClock, SystemTask};
use reqwest::StatusCode;

use crate::billing::charged_patients;
use crate::helpers::{TestApp, spawn_app_clocked};
use crate::pages::{Browser, between, logged_in};

fn system() -> Caller {
    Caller::task(SystemTask::Operator("test".into()))
}

/// Each of two campuses gets a central store and an outpatient pharmacy.
async fn stores(app: &TestApp) -> lianyi_billing::stock::StockRoom {
    let stock = lianyi_billing::stock::StockRoom::new(app.fhir.clone());
    for campus in ["campus-east", "campus-west"] {
        for (code, kind) in [("central", "central"), ("op", "outpatient")] {
            let s = lianyi_store::pharmacy::StockStore {
                campus: campus.into(),
                code: code.into(),
                kind: kind.into(),
                name_zh: format!("{code} 库"),
                name_en: code.into(),
            };
            stock.put_store(&system(), &s).await.unwrap();
        }
    }
    stock
}

/// Posts a form given as owned pairs.
async fn post(b: &mut Browser, path: &str, form: &[(&str, String)]) -> (StatusCode, String, String) {
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post(path, &refs).await
}

fn error_fields(page: &str) -> Vec<String> {
    between(page, "id=\"form-errors\"", "</div>")
        .split("data-field=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap_or_default().to_string())
        .collect()
}

/// The quantity a batch of a drug holds, as the stock page shows it (lot → quantity).
fn batch_quantity(page: &str, lot: &str) -> Option<i64> {
    let at = page.find(&format!(">{lot}</a>"))?;
    between(&page[at..], "data-quantity=\"", "\"").parse().ok()
}

#[tokio::test]
async fn the_stock_keeper_orders_receives_transfers_and_counts_with_every_rule_named() {
    // 2027-01-15 16:00 Beijing.
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    charged_patients(&app, 0).await; // prices AMOX500 at the East Campus
    let _ = stores(&app).await;
    let (mut keeper, token) = logged_in(&app, &clock, "stock.e", "stock-keeper", "campus-east", None).await;
    let (status, _, page) = keeper.get("/pharmacy/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"po-form\""), "{page}");

    // A purchase order with a negative quantity and no supplier: both named, nothing stored.
    let order = |supplier: &str, quantity: &str, price: &str| {
        vec![
            ("csrf", token.clone()),
            ("store", "campus-east/central".to_string()),
            ("supplier", supplier.to_string()),
            ("drug", "AMOX500".to_string()),
            ("quantity", quantity.to_string()),
            ("price", price.to_string()),
        ]
    };
    let (_, _, page) = post(&mut keeper, "/pharmacy/orders", &order("", "-5", "0.3")).await;
    assert_eq!(error_fields(&page), ["supplier", "quantity"], "{page}");
    assert!(page.contains("value=\"-5\""), "what was typed is kept");
    let (_, _, page) = post(&mut keeper, "/pharmacy/orders", &order("国药控股", "100", "0.3.1")).await;
    assert_eq!(error_fields(&page), ["price"]);
    let (_, _, list) = keeper.get("/pharmacy/orders").await;
    assert!(list.contains("id=\"po-none\""), "nothing stored: {list}");
    let (_, to, _) = post(&mut keeper, "/pharmacy/orders", &order("国药控股", "100", "0.30")).await;
    assert_eq!(to, "/pharmacy/orders/campus-east/1");

    // Receiving: an expired batch, and more than ordered, are refused by field.
    let receive = |lot: &str, expiry: &str, quantity: &str| {
        vec![
            ("csrf", token.clone()),
            ("drug", "AMOX500".to_string()),
            ("lot", lot.to_string()),
            ("expiry", expiry.to_string()),
            ("quantity", quantity.to_string()),
        ]
    };
    let url = "/pharmacy/orders/campus-east/1";
    let (_, _, page) = post(&mut keeper, url, &receive("L1", "2027-01-10", "60")).await;
    assert_eq!(error_fields(&page), ["expiry"], "expired: {page}");
    let (_, _, page) = post(&mut keeper, url, &receive("L1", "2028-06-30", "160")).await;
    assert_eq!(error_fields(&page), ["quantity"], "over-ordered: {page}");
    let (_, _, page) = post(&mut keeper, url, &receive("", "2028-06-30", "0")).await;
    assert_eq!(error_fields(&page), ["lot", "quantity"]);
    let (_, _, stock) = keeper.get("/pharmacy/stock?store=campus-east/central").await;
    assert!(stock.contains("id=\"stock-none\""), "nothing received yet: {stock}");
    let (_, to, _) = post(&mut keeper, url, &receive("L1", "2028-06-30", "60")).await;
    assert_eq!(to, "/pharmacy/orders/campus-east/1?done=received");
    let (_, _, page) = keeper.get(url).await;
    assert_eq!(between(&page, "id=\"po-status\" data-status=\"", "\""), "partial");
    let (_, _, stock) = keeper.get("/pharmacy/stock?store=campus-east/central").await;
    assert_eq!(batch_quantity(&stock, "L1"), Some(60), "{stock}");
    let batch: i64 = between(&stock, "data-batch=\"", "\"").parse().unwrap();

    // A transfer of more than is in stock is named; 25 go to the West Campus's pharmacy.
    let ship = |quantity: &str| {
        vec![
            ("csrf", token.clone()),
            ("quantity", quantity.to_string()),
            ("to_store", "campus-west/op".to_string()),
            ("note", "补货".to_string()),
        ]
    };
    let (_, _, page) = post(&mut keeper, &format!("/pharmacy/batches/{batch}"), &ship("61")).await;
    assert_eq!(error_fields(&page), ["quantity"], "{page}");
    let (_, to, _) = post(&mut keeper, &format!("/pharmacy/batches/{batch}"), &ship("25")).await;
    assert_eq!(to, "/pharmacy/transfers?done=shipped");
    let (_, _, stock) = keeper.get("/pharmacy/stock?store=campus-east/central").await;
    assert_eq!(batch_quantity(&stock, "L1"), Some(35), "the 25 left at once");
    // The East keeper cannot receive it; the West keeper counts 24 in (one short).
    let (_, _, transfers) = keeper.get("/pharmacy/transfers").await;
    assert!(transfers.contains("data-status=\"in-transit\"") && !transfers.contains("name=\"counted\""));
    let (mut west, wtoken) = logged_in(&app, &clock, "stock.w", "stock-keeper", "campus-west", None).await;
    let (_, _, transfers) = west.get("/pharmacy/transfers").await;
    let id = between(&transfers, "data-transfer=\"", "\"").to_string();
    let (_, _, page) =
        post(&mut west, &format!("/pharmacy/transfers/{id}"), &[("csrf", wtoken.clone()), ("counted", "26".into())])
            .await;
    assert_eq!(error_fields(&page), ["counted"], "more than shipped: {page}");
    let (_, to, _) =
        post(&mut west, &format!("/pharmacy/transfers/{id}"), &[("csrf", wtoken.clone()), ("counted", "24".into())])
            .await;
    assert_eq!(to, "/pharmacy/transfers?done=received");
    let (_, _, transfers) = west.get("/pharmacy/transfers").await;
    assert!(transfers.contains("data-status=\"received\"") && transfers.contains("短少 1"), "{transfers}");
    let (_, _, stock) = west.get("/pharmacy/stock?store=campus-west/op").await;
    assert_eq!(batch_quantity(&stock, "L1"), Some(24), "{stock}");
    // The East keeper sees no West stock.
    let (status, _, _) = keeper.get(&format!("/pharmacy/batches/{}", batch + 1)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A stocktake: a variance without a reason is named; with one it is posted, and
    // the stock card shows it.
    let (book_key, counted_key) = (format!("book-{batch}"), format!("counted-{batch}"));
    let count = |counted: &str, reason: &str| {
        vec![
            ("csrf", token.clone()),
            ("store", "campus-east/central".to_string()),
            (book_key.as_str(), "35".to_string()),
            (counted_key.as_str(), counted.to_string()),
            ("reason", reason.to_string()),
        ]
    };
    let (_, _, page) = post(&mut keeper, "/pharmacy/count", &count("33", "")).await;
    assert_eq!(error_fields(&page), ["reason"], "{page}");
    let (_, _, page) = post(&mut keeper, "/pharmacy/count", &count("-1", "破损")).await;
    assert_eq!(error_fields(&page), ["counted"]);
    let (_, to, _) = post(&mut keeper, "/pharmacy/count", &count("33", "破损两粒")).await;
    assert_eq!(to, "/pharmacy/stock?store=campus-east/central&done=count");
    let (_, _, card) = keeper.get(&format!("/pharmacy/batches/{batch}")).await;
    assert!(between(&card, "id=\"batch-quantity\">", "<").starts_with("33"), "{card}");
    let moves = between(&card, "id=\"batch-moves\"", "</table>");
    assert!(moves.contains("盘点") && moves.contains("破损两粒") && moves.contains("调拨出库"), "{moves}");
    // A count begun before a move is refused (the book quantity is no longer so).
    let (_, _, page) = post(&mut keeper, "/pharmacy/count", &count("30", "again")).await;
    assert_eq!(error_fields(&page), ["counted"], "stale count: {page}");

    // A reorder level above the usable stock puts the drug on the low-stock list.
    let level = [
        ("csrf", token.clone()),
        ("store", "campus-east/central".to_string()),
        ("drug", "AMOX500".to_string()),
        ("level", "50".to_string()),
    ];
    let (_, to, _) = post(&mut keeper, "/pharmacy/stock", &level).await;
    assert!(to.ends_with("done=level"), "{to}");
    let (_, _, low) = keeper.get("/pharmacy/stock?store=campus-east/central&show=low").await;
    assert!(low.contains("data-drug=\"AMOX500\" data-low=\"1\""), "{low}");
    let (_, _, home) = keeper.get("/").await;
    assert!(between(&home, "id=\"work-stock\"", "</section>").contains("阿莫西林"), "{home}");

    // A pharmacist sees the stock and changes nothing; a cashier does not see it.
    let (mut pharmacist, ptoken) = logged_in(&app, &clock, "pharm.e", "pharmacist", "campus-east", None).await;
    assert_eq!(pharmacist.get("/pharmacy/stock").await.0, StatusCode::OK);
    let (status, _, _) = post(&mut pharmacist, "/pharmacy/orders", &order("x", "1", "1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let _ = ptoken;
    let (mut cashier, _) = logged_in(&app, &clock, "cash.e", "cashier", "campus-east", None).await;
    assert_eq!(cashier.get("/pharmacy/stock").await.0, StatusCode::FORBIDDEN);
}

/// Receives `(lot, expiry, quantity)` batches of AMOX500 into the East Campus's
/// outpatient pharmacy through the stock keeper's service.
async fn stock_pharmacy(app: &TestApp, batches: &[(&str, &str, i64)]) {
    let stock = stores(app).await;
    let total: i64 = batches.iter().map(|b| b.2).sum();
    let line = lianyi_billing::stock::OrderLineForm {
        drug: "AMOX500".into(),
        quantity: total.to_string(),
        price: "0.30".into(),
    };
    let no = stock.create_order(&system(), "campus-east", "op", "国药控股", &[line]).await.unwrap();
    for (lot, expiry, n) in batches {
        let form = lianyi_billing::stock::ReceiveForm {
            drug: "AMOX500".into(),
            lot: lot.to_string(),
            expiry: expiry.to_string(),
            quantity: n.to_string(),
        };
        stock.receive(&system(), "campus-east", no, &[form]).await.unwrap();
    }
}

/// A cashier's browser pays patient `pay-<i>`'s charges; returns the invoice number.
async fn pay(cashier: &mut Browser, token: &str, i: usize) -> i64 {
    let (_, _, page) = cashier.get(&format!("/billing/cashier?patient=pay-{i}")).await;
    let charge = between(&page, "name=\"charge\" value=\"", "\"").to_string();
    let form = [
        ("csrf", token.to_string()),
        ("patient", format!("pay-{i}")),
        ("charge", charge),
        ("method", "cash".to_string()),
        ("tendered", "20".to_string()),
        ("reference", String::new()),
    ];
    let (_, to, _) = post(cashier, "/billing/cashier", &form).await;
    let no = between(&to, "/billing/receipts/campus-east/", "?");
    no.parse().unwrap_or_else(|_| panic!("not paid: {to}"))
}

#[tokio::test]
async fn a_paid_prescription_is_dispensed_first_expiry_first_returned_and_refunded() {
    let clock: Arc<ManualClock> = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    charged_patients(&app, 4).await; // 15 capsules each
    // Two batches: the earlier expiry is taken first; 25 in all.
    stock_pharmacy(&app, &[("LATE", "2029-01-31", 15), ("SOON", "2027-03-31", 10)]).await;
    let (mut pharmacist, ptoken) = logged_in(&app, &clock, "pharm.d", "pharmacist", "campus-east", None).await;
    let (mut cashier, ctoken) = logged_in(&app, &clock, "cash.d", "cashier", "campus-east", None).await;

    // Unpaid: not in the queue and not dispensable.
    let (_, _, queue) = pharmacist.get("/pharmacy").await;
    assert!(queue.contains("id=\"rx-none\""), "{queue}");
    let (_, to, _) = post(&mut pharmacist, "/pharmacy/rx/rx-pay-0/dispense", &[("csrf", ptoken.clone())]).await;
    assert_eq!(to, "/pharmacy/rx/rx-pay-0?error=prescription:unpaid");

    // Paid: in the queue; the review shows the batches first expiry first.
    let invoice = pay(&mut cashier, &ctoken, 0).await;
    let (_, _, queue) = pharmacist.get("/pharmacy").await;
    assert!(queue.contains("data-request=\"rx-pay-0\""), "{queue}");
    let (_, _, home) = pharmacist.get("/").await;
    assert!(between(&home, "id=\"work-dispensing\"", "</section>").contains("付款人0"), "{home}");
    let (_, _, review) = pharmacist.get("/pharmacy/rx/rx-pay-0").await;
    let picks = between(&review, "id=\"rx-picks\"", "</table>");
    assert!(picks.find("SOON").unwrap() < picks.find("LATE").unwrap(), "{picks}");
    let (_, to, _) = post(&mut pharmacist, "/pharmacy/rx/rx-pay-0/dispense", &[("csrf", ptoken.clone())]).await;
    assert_eq!(to, "/pharmacy?done=dispensed");
    let (_, _, stock) = pharmacist.get("/pharmacy/stock?store=campus-east/op").await;
    assert_eq!((batch_quantity(&stock, "SOON"), batch_quantity(&stock, "LATE")), (None, Some(10)), "{stock}");
    let r = app.client.get(app.url("/fhir/MedicationDispense/md-rx-pay-0")).send().await.unwrap();
    let md: serde_json::Value = r.json().await.unwrap();
    assert_eq!((md["status"].as_str(), md["quantity"]["value"].as_i64()), (Some("completed"), Some(15)), "{md}");
    assert_eq!(md["authorizingPrescription"][0]["reference"], "MedicationRequest/rx-pay-0");
    // Dispensing twice is refused.
    let (_, to, _) = post(&mut pharmacist, "/pharmacy/rx/rx-pay-0/dispense", &[("csrf", ptoken.clone())]).await;
    assert_eq!(to, "/pharmacy/rx/rx-pay-0?error=prescription:not-waiting");

    // A dispensed drug is not refunded; after its return (退药) it is.
    let (_, _, receipt) = cashier.get(&format!("/billing/receipts/campus-east/{invoice}")).await;
    let charge = between(&receipt, "name=\"charge\" value=\"", "\"").to_string();
    let refund = [("csrf", ctoken.clone()), ("charge", charge.clone()), ("reason", "患者不需要了".to_string())];
    let (_, to, _) = post(&mut cashier, &format!("/billing/receipts/campus-east/{invoice}/refund"), &refund).await;
    assert!(to.ends_with("?error=delivered"), "{to}");
    let (_, to, _) =
        post(&mut pharmacist, "/pharmacy/rx/rx-pay-0/return", &[("csrf", ptoken.clone()), ("reason", "".into())]).await;
    assert_eq!(to, "/pharmacy/rx/rx-pay-0?error=reason:required");
    let (_, to, _) = post(
        &mut pharmacist,
        "/pharmacy/rx/rx-pay-0/return",
        &[("csrf", ptoken.clone()), ("reason", "患者未服用，原包装退回".into())],
    )
    .await;
    assert_eq!(to, "/pharmacy?done=returned");
    let (_, _, stock) = pharmacist.get("/pharmacy/stock?store=campus-east/op").await;
    assert_eq!((batch_quantity(&stock, "SOON"), batch_quantity(&stock, "LATE")), (Some(10), Some(15)));
    let (_, to, _) = post(&mut cashier, &format!("/billing/receipts/campus-east/{invoice}/refund"), &refund).await;
    assert!(!to.contains("error"), "refunded after the return: {to}");
    let (_, _, review) = pharmacist.get("/pharmacy/rx/rx-pay-0").await;
    assert_eq!(between(&review, "id=\"rx-status\" data-status=\"", "\""), "refunded");

    // The last box: two pharmacists, 25 in stock, two paid prescriptions of 15.
    pay(&mut cashier, &ctoken, 1).await;
    pay(&mut cashier, &ctoken, 2).await;
    let (mut second, stoken) = logged_in(&app, &clock, "pharm.d2", "pharmacist", "campus-east", None).await;
    let first = tokio::spawn({
        let token = ptoken.clone();
        async move {
            let r = post(&mut pharmacist, "/pharmacy/rx/rx-pay-1/dispense", &[("csrf", token)]).await;
            (pharmacist, r.1)
        }
    });
    let other = post(&mut second, "/pharmacy/rx/rx-pay-2/dispense", &[("csrf", stoken.clone())]).await.1;
    let (mut pharmacist, one) = first.await.unwrap();
    let outcomes = [one, other];
    let won = outcomes.iter().filter(|o| *o == "/pharmacy?done=dispensed").count();
    let lost: Vec<&String> = outcomes.iter().filter(|o| o.contains("error=quantity:")).collect();
    assert_eq!((won, lost.len()), (1, 1), "{outcomes:?}");
    let (_, _, stock) = pharmacist.get("/pharmacy/stock?store=campus-east/op").await;
    assert_eq!((batch_quantity(&stock, "SOON"), batch_quantity(&stock, "LATE")), (None, Some(10)), "{stock}");
    let r = app.client.get(app.url("/fhir/MedicationDispense?_summary=count")).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["total"], 2, "the returned one and the winner's: {v}");
    let loser = if outcomes[0].contains("error") { "rx-pay-1" } else { "rx-pay-2" };
    let (_, _, review) = pharmacist.get(&format!("/pharmacy/rx/{loser}")).await;
    assert_eq!(between(&review, "id=\"rx-status\" data-status=\"", "\""), "waiting", "nothing was written");
    assert!(review.contains("id=\"rx-short\""), "the review says what is missing: {review}");

    // The remaining batch expires: it is never dispensed.
    pay(&mut cashier, &ctoken, 3).await;
    clock.advance(800 * 86_400_000);
    let (mut late, ltoken) = logged_in(&app, &clock, "pharm.late", "pharmacist", "campus-east", None).await;
    let (_, _, stock) = late.get("/pharmacy/stock?store=campus-east/op&show=expiry").await;
    assert!(stock.contains("data-shelf=\"expired\""), "{stock}");
    let (_, to, _) = post(&mut late, "/pharmacy/rx/rx-pay-3/dispense", &[("csrf", ltoken)]).await;
    assert_eq!(to, "/pharmacy/rx/rx-pay-3?error=quantity:in-stock");
    let _ = clock.now_ms();
}
