//! Materials over the pages: the materials keeper keeps the catalogue and receives
//! batches (a sterile lot without expiry, or high-value units not one code per unit,
//! refused by field); a ward asks for more than the warehouse holds and is refused
//! naming the quantity, with nothing written; the keeper approves less than asked and
//! issues, and the stock moves from the warehouse to the ward; a high-value unit used
//! on a patient is charged through billing at the campus's price, once. Two issues of
//! the last boxes at once: exactly one stands, and stock never goes below zero (both
//! backends). A Chromium walk in both languages.

use lianyi_manage::materials::{Materials, MaterialsError, ReceiptForm, RequestForm};
use lianyi_security::{Caller, ManualClock};
use lianyi_store::materials::WAREHOUSE;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, put_resource as put, spawn_app_clocked};
use crate::pages::logged_in;

/// Monday 7 December 2026, 09:00 in Beijing.
const MONDAY_0900: i64 = 1_796_605_200_000;

/// East Campus with its internal medicine ward, a nurse of the ward (user `nurse.im`),
/// a patient, and the price of a coronary stent.
async fn directory(app: &TestApp) {
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(
        &east,
        app,
        json!({"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "Organization", "id": "east-im", "name": "内科", "alias": ["Internal Medicine"],
               "partOf": {"reference": "Organization/campus-east"}}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "Practitioner", "id": "nurse-zhao", "name": [{"text": "赵娜"}],
               "identifier": [{"system": lianyi_clinical::orders::USER_SYSTEM, "value": "nurse.im"}]}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "PractitionerRole", "id": "role-zhao-im", "active": true,
               "practitioner": {"reference": "Practitioner/nurse-zhao"},
               "organization": {"reference": "Organization/east-im"}}),
    )
    .await;
    put(
        &east,
        app,
        json!({"resourceType": "Patient", "id": "pat-1", "name": [{"family": "王", "given": ["伟"]}],
               "gender": "male", "birthDate": "1960-03-02"}),
    )
    .await;
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let prices = lianyi_billing::prices::PriceBook::new(app.fhir.clone());
    let item = lianyi_billing::prices::ItemForm {
        campus: "campus-east".into(),
        code: "M-STENT".into(),
        category: "material".into(),
        kind: "material".into(),
        reference: "STENT".into(),
        name_zh: "冠脉支架".into(),
        name_en: "Coronary stent".into(),
        unit: "个".into(),
        ..Default::default()
    };
    prices.put_item(&system, &item).await.unwrap();
    prices.set_price(&system, "campus-east", "M-STENT", "7200.00", "2026-12-07").await.unwrap();
}

/// The catalogue and the East warehouse's first batches, as the keeper's pages give
/// them.
async fn stock_up(keeper: &mut crate::pages::Browser, token: &str) {
    for (code, zh, en, unit, kind) in [
        ("GAUZE", "纱布", "Gauze", "包", "sterile"),
        ("GLOVE", "手套", "Gloves", "盒", "general"),
        ("STENT", "冠脉支架", "Coronary stent", "个", "high-value"),
    ] {
        let form = [("csrf", token), ("code", code), ("name_zh", zh), ("name_en", en), ("unit", unit), ("kind", kind)];
        let (_, loc, _) = keeper.post("/manage/materials/items", &form).await;
        assert_eq!(loc, format!("/manage/materials/items?done={code}"));
    }
    for (item, lot, expiry, quantity, units) in [
        ("GAUZE", "G-1", "2026-12-20", "30", ""),
        ("GAUZE", "G-2", "2027-06-30", "50", ""),
        ("GLOVE", "L-1", "", "10", ""),
        ("STENT", "S-1", "2028-01-01", "2", "UDI-0001\nUDI-0002"),
    ] {
        let form = [
            ("csrf", token),
            ("campus", "campus-east"),
            ("item", item),
            ("lot", lot),
            ("expiry", expiry),
            ("quantity", quantity),
            ("cost", "3.50"),
            ("supplier", "国药"),
            ("units", units),
        ];
        let (status, loc, page) = keeper.post("/manage/materials/receive", &form).await;
        assert_eq!(loc, "/manage/materials?campus=campus-east&done=received", "{status} {page}");
    }
}

fn held(stock: &lianyi_manage::materials::Stock, place: &str, item: &str) -> i64 {
    stock
        .places
        .iter()
        .find(|p| p.location == place)
        .and_then(|p| p.held.iter().find(|h| h.item.code == item))
        .map_or(0, |h| h.batches.iter().map(|(b, _)| b.quantity).sum())
}

#[tokio::test]
async fn a_ward_requests_materials_the_warehouse_issues_them_and_stock_moves() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let (mut keeper, token) = logged_in(&app, &clock, "keeper.east", "materials-keeper", "campus-east", None).await;
    let (mut nurse, nurse_token) = logged_in(&app, &clock, "nurse.im", "nurse", "campus-east", None).await;
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let materials = Materials::new(app.fhir.clone());

    // Only the keepers keep the catalogue.
    let (status, _, _) = nurse
        .post(
            "/manage/materials/items",
            &[
                ("csrf", &nurse_token),
                ("code", "X"),
                ("name_zh", "x"),
                ("name_en", "x"),
                ("unit", "个"),
                ("kind", "general"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    stock_up(&mut keeper, &token).await;

    // Bad receipts name their field and write nothing.
    let before = materials.stock(&system, "campus-east").await.unwrap();
    for (item, expiry, quantity, units, field) in [
        ("GAUZE", "", "5", "", "有效期"),
        ("STENT", "2028-01-01", "2", "UDI-9", "单件唯一码"),
        ("STENT", "2028-01-01", "1", "UDI-0001", "单件唯一码"),
        ("GLOVE", "", "-3", "", "数量"),
    ] {
        let form = [
            ("csrf", token.as_str()),
            ("campus", "campus-east"),
            ("item", item),
            ("lot", "BAD-1"),
            ("expiry", expiry),
            ("quantity", quantity),
            ("cost", "1"),
            ("units", units),
        ];
        let (status, _, page) = keeper.post("/manage/materials/receive", &form).await;
        assert_eq!(status, StatusCode::OK);
        let errors = crate::pages::between(&page, "id=\"mat-errors\"", "</div>");
        assert!(errors.contains(field), "{field}: {errors}");
    }
    let after = materials.stock(&system, "campus-east").await.unwrap();
    assert_eq!(after.moves.len(), before.moves.len(), "nothing half-written");

    // The ward asks for more gauze than the warehouse holds: refused, naming the
    // quantity; no requisition is written.
    let (_, _, page) = nurse.get("/manage/requisitions?campus=campus-east").await;
    assert!(page.contains("id=\"req-form\""), "the nurse requests for her ward");
    assert!(!page.contains("class=\"approve\""));
    let ask = |gauze: &'static str| {
        [
            ("csrf", nurse_token.clone()),
            ("campus", "campus-east".to_string()),
            ("department", "east-im".to_string()),
            ("item-0", "GAUZE".to_string()),
            ("quantity-0", gauze.to_string()),
            ("item-1", "STENT".to_string()),
            ("quantity-1", "2".to_string()),
            ("note", "周申领".to_string()),
        ]
    };
    let form = ask("500");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = nurse.post("/manage/requisitions", &pairs).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("GAUZE：申领 500，库房仅有 80"),
        "{}",
        crate::pages::between(&page, "id=\"req-errors\"", "</div>")
    );
    assert!(materials.requisitions(&system, "campus-east").await.unwrap().is_empty(), "nothing written");
    let form = ask("60");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, loc, _) = nurse.post("/manage/requisitions", &pairs).await;
    let id: i64 = loc.rsplit("requested-").next().unwrap().parse().unwrap();

    // The nurse may not approve or issue.
    let (status, _, _) = nurse
        .post(&format!("/manage/requisitions/{id}/approve"), &[("csrf", &nurse_token), ("campus", "campus-east")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The keeper approves 40 of the gauze (never more than asked), then issues.
    let (_, _, page) = keeper
        .post(
            &format!("/manage/requisitions/{id}/approve"),
            &[("csrf", &token), ("campus", "campus-east"), ("approved-GAUZE", "70")],
        )
        .await;
    assert!(page.contains("id=\"req-errors\""), "more than asked is refused");
    let (_, loc, _) = keeper
        .post(
            &format!("/manage/requisitions/{id}/approve"),
            &[("csrf", &token), ("campus", "campus-east"), ("approved-GAUZE", "40")],
        )
        .await;
    assert_eq!(loc, format!("/manage/requisitions?campus=campus-east&done=approved-{id}"));
    let (_, loc, _) =
        keeper.post(&format!("/manage/requisitions/{id}/issue"), &[("csrf", &token), ("campus", "campus-east")]).await;
    assert_eq!(loc, format!("/manage/requisitions?campus=campus-east&done=issued-{id}"));
    // Issued twice: refused by name.
    let (_, _, page) =
        keeper.post(&format!("/manage/requisitions/{id}/issue"), &[("csrf", &token), ("campus", "campus-east")]).await;
    assert!(page.contains("申领单已不在此步骤"));

    // The stock moved: the first-expiring lot first (30 of G-1, 10 of G-2).
    let stock = materials.stock(&system, "campus-east").await.unwrap();
    assert_eq!(held(&stock, WAREHOUSE, "GAUZE"), 40);
    assert_eq!(held(&stock, "east-im", "GAUZE"), 40);
    assert_eq!(held(&stock, WAREHOUSE, "STENT"), 0);
    assert_eq!(held(&stock, "east-im", "STENT"), 2);
    let ward = stock.places.iter().find(|p| p.location == "east-im").unwrap();
    let lots: Vec<(String, i64)> =
        ward.held.iter().flat_map(|h| h.batches.iter().map(|(b, _)| (b.lot.clone(), b.quantity))).collect();
    assert!(lots.contains(&("G-1".into(), 30)) && lots.contains(&("G-2".into(), 10)), "{lots:?}");
    let (_, _, page) = nurse.get("/manage/materials?campus=campus-east").await;
    assert!(page.contains("已发放") || page.contains("出库"), "the moves are listed");
    assert!(page.contains("近效期"), "the lot of 20 December is flagged near expiry");

    // A stent used on the patient: charged once, at the campus's price.
    let (_, loc, _) = nurse
        .post(
            "/manage/materials/use",
            &[("csrf", &nurse_token), ("campus", "campus-east"), ("udi", "UDI-0001"), ("patient", "pat-1")],
        )
        .await;
    assert_eq!(loc, "/manage/materials?campus=campus-east&done=used");
    let (_, _, page) = nurse
        .post(
            "/manage/materials/use",
            &[("csrf", &nurse_token), ("campus", "campus-east"), ("udi", "UDI-0001"), ("patient", "pat-1")],
        )
        .await;
    assert!(page.contains("UDI-0001 已经使用过"), "used twice is refused");
    let charges = lianyi_billing::charges::Charger::new(app.fhir.clone());
    let open = charges.open_charges(&system, "pat-1").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].amount.0, 720_000);
    assert_eq!(open[0].category, "material");
    assert_eq!(charges.charge_used_units().await.unwrap(), 0, "charged once");
    let stock = materials.stock(&system, "campus-east").await.unwrap();
    assert_eq!(held(&stock, "east-im", "STENT"), 1);
    let unit = app.fhir.operations().materials().unit("UDI-0001").await.unwrap().unwrap();
    assert_eq!(unit.patient.as_deref(), Some("pat-1"));
    assert!(unit.charge.is_some());

    // The ward counts its gloves… it has none; its gauze: 38 (two used).
    let ward_gauze: Vec<i64> = stock
        .places
        .iter()
        .find(|p| p.location == "east-im")
        .unwrap()
        .held
        .iter()
        .filter(|h| h.item.code == "GAUZE")
        .flat_map(|h| h.batches.iter().map(|(b, _)| b.id))
        .collect();
    let count = format!("count-{}", ward_gauze[0]);
    let (_, loc, _) = nurse
        .post(
            "/manage/materials/stocktake",
            &[
                ("csrf", &nurse_token),
                ("campus", "campus-east"),
                ("location", "east-im"),
                (&count, "28"),
                ("reason", "月末盘点"),
            ],
        )
        .await;
    assert_eq!(loc, "/manage/materials?campus=campus-east&done=counted");
    let stock = materials.stock(&system, "campus-east").await.unwrap();
    assert_eq!(held(&stock, "east-im", "GAUZE"), 38);
    // The nurse may not count the warehouse.
    let (status, _, _) = nurse
        .post(
            "/manage/materials/stocktake",
            &[
                ("csrf", &nurse_token),
                ("campus", "campus-east"),
                ("location", WAREHOUSE),
                (&count, "1"),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Each change is in the audit log.
    for action in [
        "material-item",
        "material-receive",
        "material-requisition",
        "material-approve",
        "material-issue",
        "material-use",
        "material-stocktake",
    ] {
        let query = lianyi_store::audit::AuditQuery { action: Some(action.into()), limit: 10, ..Default::default() };
        assert!(!app.store.audit_records(&query).await.unwrap().is_empty(), "{action} audited");
    }
}

/// Two issues of the warehouse's last boxes at once: exactly one stands, the other is
/// refused naming the quantity, and the stock ends at zero, never below.
#[tokio::test]
async fn two_issues_of_the_last_boxes_at_once_leave_exactly_one() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let system = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let materials = Materials::new(app.fhir.clone());
    let item = lianyi_manage::materials::ItemForm {
        code: "GLOVE".into(),
        name_zh: "手套".into(),
        name_en: "Gloves".into(),
        unit: "盒".into(),
        kind: "general".into(),
        active: true,
    };
    materials.put_item(&system, &item).await.unwrap();
    let receipt = ReceiptForm {
        campus: "campus-east".into(),
        item: "GLOVE".into(),
        lot: "L-1".into(),
        quantity: "10".into(),
        cost: "25".into(),
        ..Default::default()
    };
    materials.receive(&system, &receipt).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let form = RequestForm {
            department: "east-im".into(),
            lines: vec![("GLOVE".into(), "7".into())],
            note: String::new(),
        };
        let id = materials.request(&system, &form).await.unwrap();
        materials.approve(&system, id, &[]).await.unwrap();
        ids.push(id);
    }
    let (a, b) = tokio::join!(materials.issue(&system, ids[0]), materials.issue(&system, ids[1]));
    let outcomes = [a, b];
    assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 1, "{outcomes:?}");
    let refused = outcomes.iter().find_map(|r| r.as_ref().err()).unwrap();
    let MaterialsError::Invalid(fields) = refused else { panic!("{refused}") };
    assert_eq!(fields[0].field, "quantity");
    let stock = materials.stock(&system, "campus-east").await.unwrap();
    assert_eq!(held(&stock, WAREHOUSE, "GLOVE"), 3);
    assert_eq!(held(&stock, "east-im", "GLOVE"), 7);
    // The stocktake cannot take a batch below zero either.
    let batch = stock.places[0].held[0].batches[0].0.id;
    let e = materials.stocktake(&system, "campus-east", WAREHOUSE, &[(batch, "-1".into())], "count").await.unwrap_err();
    assert!(matches!(e, MaterialsError::Invalid(ref f) if f[0].field == "counted"), "{e}");
}

/// The walk in a real Chromium, in Chinese then English: the ward's nurse asks for
/// more gauze than the warehouse holds and is told so, then asks for what it holds;
/// the materials keeper approves and issues; the stock page shows it in the ward.
#[tokio::test]
async fn chromium_a_ward_requests_materials_and_the_warehouse_issues_them() {
    let clock = ManualClock::new(MONDAY_0900);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    directory(&app).await;
    let (mut keeper, token) = logged_in(&app, &clock, "keeper.east", "materials-keeper", "campus-east", None).await;
    stock_up(&mut keeper, &token).await;
    for (name, role) in [("nurse.im", "nurse"), ("keeper.walk", "materials-keeper")] {
        crate::helpers::account(&app, name, role, "campus-east").await;
    }
    let d = crate::browser::Driver::start().await;
    let mut secrets = Vec::new();
    for (lang, too_many, issued, ward_gauze) in
        [("zh", "库房仅有", "已发放", "20 包"), ("en", "the warehouse holds only", "was issued", "30 包")]
    {
        for user in ["nurse.im", "keeper.walk"] {
            d.walk_log_in(&app.base, user, &mut secrets, &clock).await;
            d.open_menu().await;
            d.click("a[href='/manage/requisitions']").await;
            d.wait_url("/manage/requisitions").await;
            d.in_language(lang, "Materials requisitions").await;
            d.check(true).await;
            if user == "nurse.im" {
                d.set_value("#req-item-0", "GAUZE").await;
                d.fill("#req-quantity-0", "500").await;
                d.click("#req-submit").await;
                d.find("#req-errors").await;
                assert!(d.text("#req-errors").await.contains(too_many));
                d.check(true).await;
                d.screenshot("manage", &format!("requisition-refused-{lang}")).await;
                d.set_value("#req-item-0", "GAUZE").await;
                d.fill("#req-quantity-0", "20").await;
                d.click("#req-submit").await;
                d.wait_url("done=requested").await;
            } else {
                d.click("article.status-requested button.approve").await;
                d.wait_url("done=approved").await;
                d.click("article.status-approved button.issue").await;
                d.wait_url("done=issued").await;
                assert!(d.text("#req-done").await.contains(issued));
                d.check(true).await;
                d.screenshot("manage", &format!("requisition-issued-{lang}")).await;
                d.click("#req-to-stock").await;
                d.wait_url("/manage/materials").await;
                let ward = d.text("table[data-place='east-im']").await;
                assert!(ward.contains(ward_gauze), "{ward}");
                d.check(true).await;
                d.screenshot("manage", &format!("materials-{lang}")).await;
            }
            d.log_out().await;
        }
    }
}
