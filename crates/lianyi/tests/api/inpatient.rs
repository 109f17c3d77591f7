//! Inpatient care over the pages: a doctor orders admission from an outpatient visit
//! (bad fields, an inpatient visit, another campus's ward and a second order named),
//! the admission office admits onto a free bed — a bed held for another patient, or
//! occupied, is refused naming the rule, with nothing written — the ward's nurse
//! receives the patient, and the bed board shows the bed, the patient, the day of the
//! stay, the nursing level and the allergy; two admissions racing for one bed: one
//! wins. Another campus's nurse does not see the ward.

use lianyi_inpatient::stays::Inpatient;
use lianyi_security::{Caller, ManualClock, SystemTask};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, put_resource as put, spawn_app_clocked};
use crate::pages::{Browser, between, logged_in};

/// Monday 7 December 2026, 23:45 in Beijing (the stay's second day starts soon).
const MONDAY_2345: i64 = 1_796_658_300_000;
const MINUTE: i64 = 60_000;

const PHYSICAL: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";

fn ward(id: &str, name: &str, dept: &str) -> Value {
    json!({"resourceType": "Location", "id": id, "status": "active", "name": name, "alias": [format!("{name} ward")],
           "physicalType": {"coding": [{"system": PHYSICAL, "code": "wa"}]},
           "managingOrganization": {"reference": format!("Organization/{dept}")}})
}

fn bed(id: &str, n: usize, ward: &str) -> Value {
    json!({"resourceType": "Location", "id": id, "status": "active", "name": format!("{n}床"), "alias": [format!("Bed {n}")],
           "physicalType": {"coding": [{"system": PHYSICAL, "code": "bd"}]},
           "partOf": {"reference": format!("Location/{ward}")}})
}

fn patient(id: &str, name: &str, campus: &str, mrn: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "active": true, "gender": "female", "birthDate": "1960-03-01",
           "name": [{"text": name}],
           "identifier": [{"system": lianyi_services::identifiers::mrn_system(campus), "value": mrn}]})
}

fn visit(id: &str, patient: &str, class: &str, dept: &str) -> Value {
    json!({"resourceType": "Encounter", "id": id, "status": "in-progress",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class},
           "subject": {"reference": format!("Patient/{patient}")},
           "serviceProvider": {"reference": format!("Organization/{dept}")},
           "period": {"start": "2026-12-07T08:30:00+08:00"}})
}

/// East and West campuses, each an internal-medicine department with a ward (East:
/// three beds, West's two), four East patients seen in clinic today
/// (one allergic to penicillin), and one inpatient visit.
pub(crate) async fn hospital(app: &TestApp) {
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    let west = app.client_with("system/*.cruds", "campus-west", None).await;
    for (client, campus, zh, en) in [(&east, "campus-east", "东院区", "East"), (&west, "campus-west", "西院区", "West")]
    {
        put(client, app, json!({"resourceType": "Organization", "id": campus, "name": zh, "alias": [en]})).await;
        put(
            client,
            app,
            json!({"resourceType": "Organization", "id": format!("{campus}-im"), "name": "内科", "alias": ["Internal medicine"],
                   "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "dept"}]}],
                   "partOf": {"reference": format!("Organization/{campus}")}}),
        )
        .await;
    }
    put(&east, app, ward("ward-east-im", "内科病区", "campus-east-im")).await;
    put(&west, app, ward("ward-west-im", "西内科病区", "campus-west-im")).await;
    for n in 1..=3 {
        put(&east, app, bed(&format!("bed-e-{n}"), n, "ward-east-im")).await;
    }
    put(&west, app, bed("bed-w-1", 1, "ward-west-im")).await;
    put(&west, app, bed("bed-w-2", 2, "ward-west-im")).await;
    for (i, name) in ["林秀英", "黄建国", "郑美玲", "何志强"].iter().enumerate() {
        let id = format!("pat-{}", i + 1);
        put(&east, app, patient(&id, name, "campus-east", &format!("E{:07}", i + 1))).await;
        put(&east, app, visit(&format!("enc-{}", i + 1), &id, "AMB", "campus-east-im")).await;
    }
    put(&east, app, visit("enc-imp", "pat-4", "IMP", "campus-east-im")).await;
    put(
        &east,
        app,
        json!({"resourceType": "AllergyIntolerance", "id": "allergy-1",
               "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
               "criticality": "high", "code": {"text": "青霉素"}, "patient": {"reference": "Patient/pat-1"}}),
    )
    .await;
}

/// East's inpatient pharmacy (store `ip`), and when `bags` is given a batch of that many
/// levofloxacin bags received into it.
pub(crate) async fn inpatient_pharmacy(app: &TestApp, operator: &Caller, bags: Option<&str>) {
    let stock = lianyi_billing::stock::StockRoom::new(app.fhir.clone());
    let ip = lianyi_store::pharmacy::StockStore {
        campus: "campus-east".into(),
        code: "ip".into(),
        kind: "inpatient".into(),
        name_zh: "住院药房".into(),
        name_en: "Inpatient pharmacy".into(),
    };
    stock.put_store(operator, &ip).await.unwrap();
    let Some(bags) = bags else { return };
    let line =
        lianyi_billing::stock::OrderLineForm { drug: "LEVO500I".into(), quantity: bags.into(), price: "20.00".into() };
    let no = stock.create_order(operator, "campus-east", "ip", "国药控股", &[line]).await.unwrap();
    let lot = lianyi_billing::stock::ReceiveForm {
        drug: "LEVO500I".into(),
        lot: "L2612".into(),
        expiry: "2028-06-30".into(),
        quantity: bags.into(),
    };
    stock.receive(operator, "campus-east", no, &[lot]).await.unwrap();
}

async fn post(b: &mut Browser, path: &str, token: &str, fields: &[(&str, &str)]) -> (StatusCode, String, String) {
    let mut form: Vec<(&str, &str)> = vec![("csrf", token)];
    form.extend_from_slice(fields);
    b.post(path, &form).await
}

fn order_form<'a>(encounter: &'a str, ward: &'a str, nursing: &'a str, reason: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("encounter", encounter), ("ward", ward), ("nursing", nursing), ("reason", reason), ("note", "")]
}

/// The FHIR resources of `rtype` matching `query`, read as a platform task.
async fn search(app: &TestApp, query: &str) -> Vec<Value> {
    let client = app.client_with("system/*.rs", "*", None).await;
    let r = client.get(app.url(&format!("/fhir/{query}"))).send().await.unwrap();
    let bundle: Value = r.json().await.unwrap();
    bundle["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

/// The id of the waiting admission order of `patient`.
async fn order_of(app: &TestApp, patient: &str) -> String {
    let found = search(
        app,
        &format!("ServiceRequest?patient=Patient/{patient}&code=http://snomed.info/sct|32485007&status=active"),
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    found[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_patient_is_admitted_from_clinic_onto_a_free_bed_and_received_on_the_ward() {
    let clock = ManualClock::new(MONDAY_2345);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    // An ADT feed to a system that subscribes to the stays (MLLP).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feed = lianyi_interop::ChannelSpec {
        id: "adt-feed".into(),
        name: "NIS".into(),
        kind: "mllp".into(),
        endpoint: listener.local_addr().unwrap().to_string(),
        criteria: "Encounter".into(),
        campus: None,
        headers: None,
        max_attempts: 5,
        backoff_ms: 50,
        max_backoff_ms: 200,
    };
    let operator = Caller::task(SystemTask::Operator("test".into()));
    lianyi_interop::Outbound::new(app.fhir.clone(), "campus-east").add_channel(&operator, feed).await.unwrap();
    let adt = crate::outbound::mllp_receiver(listener, "never refused");
    hospital(&app).await;
    let (mut doctor, dt) = logged_in(&app, &clock, "dr.east", "doctor", "campus-east", None).await;
    let (mut desk, kt) = logged_in(&app, &clock, "adm.east", "registrar", "campus-east", None).await;
    let (mut nurse, nt) = logged_in(&app, &clock, "nurse.east", "nurse", "campus-east", None).await;
    let (mut west_nurse, _) = logged_in(&app, &clock, "nurse.west", "nurse", "campus-west", None).await;
    let (mut cashier, _) = logged_in(&app, &clock, "cash.east", "cashier", "campus-east", None).await;

    // The visit page links the admission order; its form offers the campus's wards only.
    let (_, _, page) = doctor.get("/encounters/enc-1").await;
    assert!(page.contains("/ward/order?encounter=enc-1"), "the visit links the admission order");
    let (status, _, page) = doctor.get("/ward/order?encounter=enc-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("value=\"ward-east-im\"") && !page.contains("value=\"ward-west-im\""), "{page}");

    // Bad fields are named; nothing is ordered.
    let (status, _, page) = post(&mut doctor, "/ward/order", &dt, &order_form("enc-1", "ward-east-im", "9", "x")).await;
    assert_eq!(status, StatusCode::OK);
    let errors = between(&page, "id=\"ward-errors\"", "</div>");
    assert!(errors.contains("护理级别") && errors.contains("入院诊断"), "{errors}");
    let (_, _, page) = post(&mut doctor, "/ward/order", &dt, &order_form("enc-imp", "ward-east-im", "2", "肺炎")).await;
    assert!(page.contains("住院证须从门诊或急诊就诊开具"), "an inpatient visit is not where admission is ordered");
    let (_, _, page) = post(&mut doctor, "/ward/order", &dt, &order_form("enc-1", "ward-west-im", "2", "肺炎")).await;
    assert!(page.contains("病区: 请选择本院区的病区"), "another campus's ward is not offered: {page}");
    assert!(search(&app, "ServiceRequest?patient=Patient/pat-1").await.is_empty(), "nothing was written");
    // Nurses do not order admissions.
    let (status, _, _) = post(&mut nurse, "/ward/order", &nt, &order_form("enc-1", "ward-east-im", "2", "肺炎")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, loc, _) =
        post(&mut doctor, "/ward/order", &dt, &order_form("enc-1", "ward-east-im", "1", "社区获得性肺炎")).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/ward/order?encounter=enc-1&done=ordered"));
    let (_, _, page) = post(&mut doctor, "/ward/order", &dt, &order_form("enc-1", "ward-east-im", "1", "肺炎")).await;
    assert!(page.contains("该患者已有待办理的住院证"), "one waiting order per patient");
    for enc in ["enc-2", "enc-3"] {
        let (status, _, _) =
            post(&mut doctor, "/ward/order", &dt, &order_form(enc, "ward-east-im", "2", "糖尿病")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let (a, b, c) = (order_of(&app, "pat-1").await, order_of(&app, "pat-2").await, order_of(&app, "pat-3").await);
    // The admission order is the ward's: the visit's list of tests does not show it.
    let (_, _, page) = doctor.get("/encounters/enc-1").await;
    assert!(page.contains("id=\"no-orders\""), "no catalogue order on the visit");

    // The admission office sees the orders, the ordered ward's first free bed chosen.
    let (status, _, page) = desk.get("/ward/admissions").await;
    assert_eq!(status, StatusCode::OK);
    let card = between(&page, &format!("id=\"order-{a}\""), "</article>");
    assert!(card.contains("林秀英") && card.contains("一级护理") && card.contains("社区获得性肺炎"), "{card}");
    assert!(card.contains("<option value=\"bed-e-1\" selected>1床</option>"), "{card}");
    assert!(!card.contains("bed-w-1"), "only the campus's beds");
    let (status, _, _) = cashier.get("/ward/admissions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = cashier.get("/ward").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, loc, _) =
        post(&mut desk, &format!("/ward/admissions/{a}"), &kt, &[("campus", "campus-east"), ("bed", "bed-e-1")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(loc.starts_with("/ward/admissions?campus=campus-east&done=admitted&number=ZY0000001&stay="), "{loc}");
    let (_, _, page) = desk.get(&loc).await;
    assert!(page.contains("住院号 ZY0000001"), "{page}");
    // The bed is held: another patient cannot have it, and nothing is written.
    let (status, _, page) =
        post(&mut desk, &format!("/ward/admissions/{b}"), &kt, &[("campus", "campus-east"), ("bed", "bed-e-1")]).await;
    assert_eq!(status, StatusCode::OK);
    let errors = between(&page, "id=\"ward-errors\"", "</div>");
    assert!(errors.contains("床位: 该床位已为其他患者预留（规则：须为空床）"), "{errors}");
    assert!(page.contains(&format!("id=\"order-{b}\"")), "the order still waits");
    assert!(search(&app, "Encounter?patient=Patient/pat-2&class=IMP").await.is_empty(), "no stay was written");
    // An order admitted is not admitted twice.
    let (_, _, page) =
        post(&mut desk, &format!("/ward/admissions/{a}"), &kt, &[("campus", "campus-east"), ("bed", "bed-e-2")]).await;
    assert!(page.contains("该住院证已办理或已取消"), "{page}");
    // Not a bed: named.
    let (_, _, page) =
        post(&mut desk, &format!("/ward/admissions/{b}"), &kt, &[("campus", "campus-east"), ("bed", "ward-east-im")])
            .await;
    assert!(page.contains("请选择本院区病区的床位"), "{page}");

    // The stay as FHIR: an inpatient Encounter with its number, on the ward and bed.
    let stays = search(&app, "Encounter?patient=Patient/pat-1&class=IMP").await;
    assert_eq!(stays.len(), 1);
    let stay = &stays[0];
    assert_eq!(stay["status"], "arrived");
    assert_eq!(stay["identifier"][0]["system"], "urn:lianyi:sid:inpatient:campus-east");
    assert_eq!(stay["basedOn"][0]["reference"], format!("ServiceRequest/{a}"));
    assert_eq!(stay["location"][1]["location"]["reference"], "Location/bed-e-1");
    assert_eq!(stay["location"][1]["status"], "reserved");
    assert_eq!(stay["hospitalization"]["admitSource"]["coding"][0]["code"], "outp");
    let order = &search(&app, &format!("ServiceRequest?_id={a}")).await[0];
    assert_eq!(order["status"], "completed");
    let stay_id = stay["id"].as_str().unwrap().to_string();

    // The deposit (预交金) through billing: bad fields named, receipts numbered, the
    // balance on the ward's board.
    let (_, _, page) =
        desk.get(&format!("/ward/admissions?campus=campus-east&done=admitted&number=ZY0000001&stay={stay_id}")).await;
    assert!(page.contains(&format!("href=\"/billing/deposits/{stay_id}\"")), "the office goes on to the deposit");
    let deposits = format!("/billing/deposits/{stay_id}");
    let (status, _, page) = desk.get(&deposits).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("林秀英") && page.contains("ZY0000001") && page.contains("id=\"dep-none\""), "{page}");
    let (_, _, page) = post(
        &mut desk,
        &deposits,
        &kt,
        &[("campus", "campus-east"), ("amount", "3000.005"), ("method", "wechat"), ("reference", "")],
    )
    .await;
    let errors = between(&page, "id=\"dep-errors\"", "</div>");
    assert!(errors.contains("金额（元）") && errors.contains("交易流水号"), "{errors}");
    let (_, _, page) =
        post(&mut desk, &deposits, &kt, &[("campus", "campus-east"), ("amount", "0"), ("method", "cash")]).await;
    assert!(page.contains("须大于0"), "{page}");
    let (status, loc, _) =
        post(&mut desk, &deposits, &kt, &[("campus", "campus-east"), ("amount", "3000"), ("method", "cash")]).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/billing/deposits/receipt/campus-east/1"));
    let (_, _, page) = desk.get(&loc).await;
    assert!(page.contains("住院预交金收据") && page.contains("¥3000.00") && page.contains("林秀英"), "{page}");
    let ct = crate::pages::csrf(&cashier.get(&deposits).await.2);
    let (_, loc, _) = post(
        &mut cashier,
        &deposits,
        &ct,
        &[
            ("campus", "campus-east"),
            ("amount", "2000.50"),
            ("method", "wechat"),
            ("reference", "4200001234202612070001"),
        ],
    )
    .await;
    assert_eq!(loc, "/billing/deposits/receipt/campus-east/2", "the cashier takes deposits too");
    let (status, _, _) = doctor.get(&deposits).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "doctors do not handle deposits");
    let (_, _, page) = desk.get(&deposits).await;
    assert!(page.contains("id=\"dep-balance\">¥5000.50"), "{page}");
    // Two desks at once: two receipts, numbered without a gap.
    let billing = lianyi_billing::deposits::Deposits::new(app.fhir.clone());
    let form = |amount: &str| lianyi_billing::deposits::DepositForm {
        campus: "campus-east".into(),
        stay: stay_id.clone(),
        amount: amount.into(),
        method: "cash".into(),
        reference: String::new(),
    };
    let (first, second) = (form("100"), form("200"));
    let (x, y) = tokio::join!(billing.take(&operator, &first), billing.take(&operator, &second));
    let mut numbers = vec![x.unwrap().entry.receipt_no, y.unwrap().entry.receipt_no];
    numbers.sort_unstable();
    assert_eq!(numbers, vec![3, 4]);

    // The board: the bed held for the patient on the way, with the allergy.
    let (status, _, page) = nurse.get("/ward?ward=ward-east-im").await;
    assert_eq!(status, StatusCode::OK);
    let card = between(&page, "id=\"bed-bed-e-1\"", "</li>");
    assert!(
        card.contains("data-state=\"reserved\"") && card.contains("林秀英") && card.contains("ZY0000001"),
        "{card}"
    );
    assert!(card.contains("一级护理") && card.contains("过敏：青霉素") && card.contains("入科接收"), "{card}");
    assert!(card.contains("预交金余额 ¥5300.50"), "the ward sees the deposit balance: {card}");
    assert!(between(&page, "id=\"bed-bed-e-2\"", "</li>").contains("data-state=\"free\""));
    // The other campus's nurse sees their own ward only.
    let (_, _, page) = west_nurse.get("/ward?ward=ward-east-im").await;
    assert!(!page.contains("林秀英") && page.contains("bed-bed-w-1"), "{page}");
    // The desk reads the board but does not receive patients.
    let (status, _, page) = desk.get("/ward?ward=ward-east-im").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("林秀英") && !page.contains("入科接收"));
    let (status, _, _) =
        post(&mut desk, &format!("/ward/stays/{stay_id}/receive"), &kt, &[("ward", "ward-east-im")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, loc, _) =
        post(&mut nurse, &format!("/ward/stays/{stay_id}/receive"), &nt, &[("ward", "ward-east-im")]).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/ward?ward=ward-east-im&done=received"));
    let (_, _, page) = nurse.get("/ward?ward=ward-east-im").await;
    let card = between(&page, "id=\"bed-bed-e-1\"", "</li>");
    assert!(card.contains("data-state=\"occupied\"") && card.contains("第1天") && !card.contains("入科接收"), "{card}");
    let (_, _, page) =
        post(&mut nurse, &format!("/ward/stays/{stay_id}/receive"), &nt, &[("ward", "ward-east-im")]).await;
    assert!(page.contains("患者已入科，或已离开"), "received once");
    let bed1 = &search(&app, "Location?_id=bed-e-1").await[0];
    assert_eq!(bed1["operationalStatus"]["code"], "O");
    // Occupied: refused, naming the rule.
    let (_, _, page) =
        post(&mut desk, &format!("/ward/admissions/{b}"), &kt, &[("campus", "campus-east"), ("bed", "bed-e-1")]).await;
    assert!(page.contains("该床位已有患者（规则：须为空床）"), "{page}");
    // Past Beijing midnight the stay is on its day 2 (sessions stay alive: a page
    // every ten minutes).
    for _ in 0..2 {
        clock.advance(10 * MINUTE);
        for b in [&mut nurse, &mut desk, &mut doctor, &mut west_nurse] {
            b.get("/ward").await;
        }
    }
    let (_, _, page) = nurse.get("/ward?ward=ward-east-im").await;
    assert!(between(&page, "id=\"bed-bed-e-1\"", "</li>").contains("第2天"));

    // Beds of their own: closed, reopened; a step that does not apply is named.
    let (_, loc, _) = post(&mut nurse, "/ward/beds/bed-e-3/close", &nt, &[("ward", "ward-east-im")]).await;
    assert_eq!(loc, "/ward?ward=ward-east-im&done=close");
    let (_, _, page) = nurse.get("/ward?ward=ward-east-im").await;
    assert!(between(&page, "id=\"bed-bed-e-3\"", "</li>").contains("data-state=\"closed\""));
    let (_, _, page) =
        post(&mut desk, &format!("/ward/admissions/{b}"), &kt, &[("campus", "campus-east"), ("bed", "bed-e-3")]).await;
    assert!(page.contains("该床位已关闭"), "{page}");
    post(&mut nurse, "/ward/beds/bed-e-3/reopen", &nt, &[("ward", "ward-east-im")]).await;
    let (_, _, page) = post(&mut nurse, "/ward/beds/bed-e-2/cleaned", &nt, &[("ward", "ward-east-im")]).await;
    assert!(page.contains("该床位为空床，不适用此操作"), "{page}");

    // Two admissions racing for one bed: one wins, the other is told the bed is taken.
    let inpatient = Inpatient::new(app.fhir.clone());
    let system = Caller::task(SystemTask::Operator("test".into()));
    let (x, y) = tokio::join!(inpatient.admit(&system, &b, "bed-e-2"), inpatient.admit(&system, &c, "bed-e-2"));
    assert!(x.is_ok() != y.is_ok(), "exactly one wins: {x:?} {y:?}");
    let lost = x.err().or(y.err()).unwrap();
    assert!(lost.to_string().starts_with("bed: "), "{lost}");
    let held: Vec<Value> = search(&app, "Encounter?location=Location/bed-e-2&status=arrived").await;
    assert_eq!(held.len(), 1, "one stay holds the bed");

    // A transfer to West Campus's ward keeps the one stay.
    let (mut west_desk, wt) = logged_in(&app, &clock, "adm.west", "registrar", "campus-west", None).await;
    let (_, _, page) = doctor.get("/ward?ward=ward-east-im").await;
    let card = between(&page, "id=\"bed-bed-e-1\"", "</li>");
    assert!(card.contains(&format!("/ward/transfer?stay={stay_id}&amp;from=ward-east-im")), "{card}");
    let (status, _, page) = doctor.get(&format!("/ward/transfer?stay={stay_id}&from=ward-east-im")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("value=\"ward-west-im\""), "every campus's wards are offered");
    let transfer = |ward: &'static str| {
        vec![
            ("stay", stay_id.clone()),
            ("from", "ward-east-im".to_string()),
            ("ward", ward.to_string()),
            ("reason", "转西院区呼吸专科".to_string()),
            ("note", String::new()),
        ]
    };
    let form = transfer("ward-east-im");
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = post(&mut doctor, "/ward/transfer", &dt, &fields).await;
    assert!(page.contains("须为患者所在病区以外的病区"), "{page}");
    let form = transfer("ward-west-im");
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, loc, _) = post(&mut doctor, "/ward/transfer", &dt, &fields).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/ward?ward=ward-east-im&done=transfer-ordered"));
    let (_, _, page) = post(&mut doctor, "/ward/transfer", &dt, &fields).await;
    assert!(page.contains("该住院已有待办理的转科医嘱"), "one waiting transfer per stay");
    let moving =
        search(&app, &format!("ServiceRequest?encounter=Encounter/{stay_id}&code=http://snomed.info/sct|107724000"))
            .await;
    let moving = moving[0]["id"].as_str().unwrap().to_string();
    // West's admission office sees it; East's does not.
    let (_, _, page) = desk.get("/ward/admissions").await;
    assert!(page.contains("id=\"transfers-none\""), "East's office has no transfer to give a bed");
    let (_, _, page) = west_desk.get("/ward/admissions").await;
    let card = between(&page, &format!("id=\"order-{moving}\""), "</article>");
    assert!(card.contains("林秀英") && card.contains("ZY0000001") && card.contains("内科病区 → 西内科病区"), "{card}");
    assert!(card.contains("<option value=\"bed-w-1\" selected>"), "{card}");
    let (status, _, _) = post(
        &mut west_desk,
        &format!("/ward/admissions/{moving}"),
        &wt,
        &[("campus", "campus-west"), ("bed", "bed-w-1")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The patient is registered at West; the one stay moved, East's bed is to be cleaned.
    let p1 = &search(&app, "Patient?_id=pat-1").await[0];
    let west_mrn = lianyi_services::identifiers::mrn_system("campus-west");
    assert!(p1["identifier"].as_array().unwrap().iter().any(|i| i["system"] == west_mrn.as_str()), "{p1}");
    assert_eq!(search(&app, "Encounter?patient=Patient/pat-1&class=IMP").await.len(), 1, "one stay");
    let stay = &search(&app, &format!("Encounter?_id={stay_id}")).await[0];
    let places: Vec<(&str, &str)> = stay["location"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["location"]["reference"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        places,
        vec![
            ("Location/ward-east-im", "completed"),
            ("Location/bed-e-1", "completed"),
            ("Location/ward-west-im", "planned"),
            ("Location/bed-w-1", "reserved")
        ]
    );
    assert_eq!(stay["serviceProvider"]["reference"], "Organization/campus-west-im");
    let (_, _, page) = nurse.get("/ward?ward=ward-east-im").await;
    let card = between(&page, "id=\"bed-bed-e-1\"", "</li>");
    assert!(card.contains("data-state=\"cleaning\"") && !card.contains("林秀英"), "{card}");
    let (_, loc, _) = post(&mut nurse, "/ward/beds/bed-e-1/cleaned", &nt, &[("ward", "ward-east-im")]).await;
    assert_eq!(loc, "/ward?ward=ward-east-im&done=cleaned");
    // West's nurse receives the patient, and moves them to the next bed (转床).
    let (_, _, page) = west_nurse.get("/ward?ward=ward-west-im").await;
    let card = between(&page, "id=\"bed-bed-w-1\"", "</li>");
    assert!(card.contains("data-state=\"reserved\"") && card.contains("林秀英") && card.contains("入科接收"), "{card}");
    let wn = crate::pages::csrf(&page);
    let (status, _, _) =
        post(&mut west_nurse, &format!("/ward/stays/{stay_id}/receive"), &wn, &[("ward", "ward-west-im")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = post(
        &mut west_nurse,
        &format!("/ward/stays/{stay_id}/bed"),
        &wn,
        &[("ward", "ward-west-im"), ("bed", "bed-e-3")],
    )
    .await;
    assert!(page.contains("须为同病区的其他空床"), "{page}");
    let (_, loc, _) = post(
        &mut west_nurse,
        &format!("/ward/stays/{stay_id}/bed"),
        &wn,
        &[("ward", "ward-west-im"), ("bed", "bed-w-2")],
    )
    .await;
    assert_eq!(loc, "/ward?ward=ward-west-im&done=moved");
    let (_, _, page) = west_nurse.get("/ward?ward=ward-west-im").await;
    assert!(between(&page, "id=\"bed-bed-w-1\"", "</li>").contains("data-state=\"cleaning\""));
    let card = between(&page, "id=\"bed-bed-w-2\"", "</li>");
    assert!(
        card.contains("data-state=\"occupied\"") && card.contains("林秀英") && card.contains("过敏：青霉素"),
        "{card}"
    );

    // Settlement waits for the discharge.
    let settle = format!("/billing/deposits/{stay_id}/settle");
    let (_, _, page) = post(&mut desk, &settle, &kt, &[("campus", "campus-east"), ("method", "cash")]).await;
    assert!(page.contains("尚未出院"), "{page}");
    // West's doctor discharges the patient: the stay ends, the bed is to be cleaned.
    let (mut west_doctor, wdt) = logged_in(&app, &clock, "dr.west", "doctor", "campus-west", None).await;
    let summary = [
        ("course", "抗感染治疗7天，体温正常，复查胸片好转"),
        ("diagnosis", "社区获得性肺炎"),
        ("condition", "一般情况好，无发热"),
        ("advice", "口服抗生素3天，1周后门诊复查"),
        ("disposition", "home"),
    ];
    let (status, loc, _) = post(&mut west_doctor, &format!("/ward/stays/{stay_id}/discharge"), &wdt, &summary).await;
    assert_eq!((status, loc), (StatusCode::SEE_OTHER, format!("/ward/stays/{stay_id}/summary")));
    let stay = &search(&app, &format!("Encounter?_id={stay_id}")).await[0];
    assert_eq!(stay["status"], "finished");
    let (_, _, page) = west_nurse.get("/ward?ward=ward-west-im").await;
    assert!(
        between(&page, "id=\"bed-bed-w-2\"", "</li>").contains("data-state=\"cleaning\""),
        "the bed turns to cleaning"
    );
    // The final settlement: no charges on the stay, so the deposit's whole balance
    // goes back, under the next receipt; settled once.
    let (status, loc, page) = post(&mut desk, &settle, &kt, &[("campus", "campus-east"), ("method", "cash")]).await;
    assert_eq!(
        (status, loc.as_str()),
        (StatusCode::SEE_OTHER, format!("/billing/deposits/{stay_id}?done=settled&refund=5300.50&paid=0.00").as_str()),
        "{page}"
    );
    let (_, _, page) = desk.get(&loc).await;
    assert!(page.contains("退还预交金 ¥5300.50") && page.contains("id=\"dep-balance\">¥0.00"), "{page}");
    assert!(page.contains("退还 · 现金") && page.contains(">00000005</a>"), "the refund's receipt: {page}");
    let (_, _, page) = post(&mut desk, &settle, &kt, &[("campus", "campus-east"), ("method", "cash")]).await;
    assert!(page.contains("无需结算"), "settled once: {page}");

    // The subscribing system got the stay's ADT events in order: admitted (A01),
    // received (A08), transferred to West (A02, PV1-6 where from), received there
    // (A08), moved to the next bed (A02), discharged from it (A03).
    let events = |log: &[String]| -> Vec<(String, String, String)> {
        log.iter()
            .map(|t| lianyi_hl7::Message::parse(t).unwrap())
            .filter(|m| m.segment("PV1").is_some_and(|p| p.component(19, 1) == "ZY0000001"))
            .map(|m| {
                let pv1 = m.segment("PV1").unwrap();
                (m.trigger(), pv1.component(3, 3), pv1.component(6, 3))
            })
            .collect()
    };
    crate::outbound::wait_for("six ADT events of the stay", 20, || events(&adt.lock().unwrap()).len() >= 6).await;
    let got = events(&adt.lock().unwrap());
    let want = [
        ("A01", "bed-e-1", ""),
        ("A08", "bed-e-1", ""),
        ("A02", "bed-w-1", "bed-e-1"),
        ("A08", "bed-w-1", ""),
        ("A02", "bed-w-2", "bed-w-1"),
        ("A03", "bed-w-2", ""),
    ];
    assert_eq!(got, want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).to_vec());
}

#[tokio::test]
async fn ward_orders_are_checked_signed_verified_by_a_nurse_stopped_and_printed() {
    let clock = ManualClock::new(MONDAY_2345 - 14 * 60 * MINUTE);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    hospital(&app).await;
    let east = app.client_with("system/*.cruds", "campus-east", None).await;
    put(
        &east,
        &app,
        json!({"resourceType": "AllergyIntolerance", "id": "allergy-2",
               "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
               "criticality": "high", "code": {"text": "头孢类"}, "patient": {"reference": "Patient/pat-2"}}),
    )
    .await;
    // pat-2 admitted and received on East internal medicine (through the service).
    let inpatient = Inpatient::new(app.fhir.clone());
    let operator =
        Caller::task_at(SystemTask::Operator("test".into()), lianyi_security::CampusId::parse("campus-east").unwrap());
    let form = lianyi_inpatient::stays::OrderForm {
        ward: "ward-east-im".into(),
        nursing: "2".into(),
        reason: "肺部感染".into(),
        note: String::new(),
    };
    let order = inpatient.order_admission(&operator, "enc-2", &form, "").await.unwrap();
    let stay = inpatient.admit(&operator, &order, "bed-e-2").await.unwrap().stay;
    let (mut doctor, dt) = logged_in(&app, &clock, "dr.east", "doctor", "campus-east", None).await;
    let (mut nurse, nt) = logged_in(&app, &clock, "nurse.east", "nurse", "campus-east", None).await;
    let page_of = format!("/ward/stays/{stay}");
    // Not on the ward yet: nothing is verified before the ward receives the patient.
    let med = |drug: &'static str, dose: &'static str, reason: &'static str| {
        vec![
            ("kind", "medication"),
            ("term", "long"),
            ("drug", drug),
            ("dose", dose),
            ("route", "ivgtt"),
            ("frequency", "qd"),
            ("text", ""),
            ("override_reason", reason),
        ]
    };
    let (status, _, page) = doctor.get(&page_of).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("黄建国") && page.contains("id=\"order-form\""), "{page}");
    // Bad fields are named; nothing is written.
    let (_, _, page) = post(
        &mut doctor,
        &page_of,
        &dt,
        &[("kind", "medication"), ("term", "long"), ("drug", ""), ("dose", "x"), ("route", "po"), ("frequency", "qd")],
    )
    .await;
    let errors = between(&page, "id=\"ward-errors\"", "</div>");
    assert!(errors.contains("药品") && errors.contains("单次剂量"), "{errors}");
    // A cephalosporin for a patient allergic to cephalosporins: blocked without a reason.
    let (status, _, page) = post(&mut doctor, &page_of, &dt, &med("CTRX1G", "2", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"findings\"") && page.contains("头孢") && page.contains("id=\"override-reason\""),
        "{page}"
    );
    assert!(inpatient.orders(&operator, &stay).await.unwrap().is_empty(), "nothing was written");
    // A dose above the limit is blocked too.
    let (_, _, page) = post(&mut doctor, &page_of, &dt, &med("LEVO500I", "1000", "")).await;
    assert!(page.contains("剂量超出范围"), "{page}");
    // With the reason: signed, the finding kept as a DetectedIssue.
    let (status, loc, _) = post(&mut doctor, &page_of, &dt, &med("CTRX1G", "2", "皮试阴性，病原学提示敏感")).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, format!("/ward/stays/{stay}?done=signed").as_str()));
    let nursing = [("kind", "nursing"), ("term", "long"), ("frequency", "qd"), ("text", "二级护理")];
    assert_eq!(post(&mut doctor, &page_of, &dt, &nursing).await.0, StatusCode::SEE_OTHER);
    let lab = [("kind", "lab"), ("term", "once"), ("frequency", "st"), ("text", "血常规")];
    assert_eq!(post(&mut doctor, &page_of, &dt, &lab).await.0, StatusCode::SEE_OTHER);
    let st_long = [
        ("kind", "medication"),
        ("term", "long"),
        ("drug", "LEVO500I"),
        ("dose", "500"),
        ("route", "ivgtt"),
        ("frequency", "st"),
    ];
    let once_daily = [
        ("kind", "medication"),
        ("term", "once"),
        ("drug", "LEVO500I"),
        ("dose", "500"),
        ("route", "ivgtt"),
        ("frequency", "qd"),
    ];
    let (_, _, page) = post(&mut doctor, &page_of, &dt, &once_daily).await;
    assert!(page.contains("临时医嘱只执行一次"), "a one-time order is given once: {page}");
    let (_, _, page) = post(&mut doctor, &page_of, &dt, &st_long).await;
    assert!(page.contains("“立即”仅用于临时医嘱"), "{page}");
    let orders = inpatient.orders(&operator, &stay).await.unwrap();
    assert_eq!(orders.len(), 3);
    let ctrx = orders.iter().find(|o| o.drug.as_deref() == Some("CTRX1G")).unwrap().reference.clone();
    let care = orders.iter().find(|o| o.what == "二级护理").unwrap().reference.clone();
    let v = &search(&app, &ctrx.replace('/', "?_id=")).await[0];
    assert_eq!(v["category"][0]["coding"][0]["code"], "inpatient");
    assert_eq!(v["courseOfTherapyType"]["coding"][0]["code"], "continuous");
    assert_eq!(v["dosageInstruction"][0]["timing"]["code"]["text"], "qd");
    assert_eq!(search(&app, "DetectedIssue?patient=Patient/pat-2").await.len(), 1, "the accepted finding is kept");
    // Roles: the nurse does not sign, the doctor does not verify.
    assert_eq!(post(&mut nurse, &page_of, &nt, &nursing).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        post(&mut doctor, &format!("{page_of}/orders/verify"), &dt, &[("order", &ctrx)]).await.0,
        StatusCode::FORBIDDEN
    );
    // Not received yet: the nurse verifies nothing; received: verified once.
    let (_, _, page) = post(&mut nurse, &format!("{page_of}/orders/verify"), &nt, &[("order", &ctrx)]).await;
    assert!(page.contains("患者不在病区"), "{page}");
    inpatient.receive(&Caller::task(SystemTask::Operator("test".into())), &stay).await.unwrap();
    let (_, loc, _) = post(&mut nurse, &format!("{page_of}/orders/verify"), &nt, &[("order", &ctrx)]).await;
    assert_eq!(loc, format!("/ward/stays/{stay}?done=verified"));
    let (_, _, page) = post(&mut nurse, &format!("{page_of}/orders/verify"), &nt, &[("order", &ctrx)]).await;
    assert!(page.contains("该医嘱已核对"), "{page}");
    let orders = inpatient.orders(&operator, &stay).await.unwrap();
    let o = orders.iter().find(|o| o.reference == ctrx).unwrap();
    assert!(o.in_force() && o.verified.as_ref().unwrap().0 == "user:nurse.east", "{o:?}");
    // The doctor stops the nursing order; a stopped order is not verified.
    let (_, loc, page) = post(&mut doctor, &format!("{page_of}/orders/stop"), &dt, &[("order", &care)]).await;
    assert_eq!(loc, format!("/ward/stays/{stay}?done=stopped"), "{page}");
    let (_, _, page) = post(&mut nurse, &format!("{page_of}/orders/verify"), &nt, &[("order", &care)]).await;
    assert!(page.contains("该医嘱已停止或取消"), "{page}");
    // Another stay's order is not this stay's.
    let (_, _, page) =
        post(&mut nurse, &format!("{page_of}/orders/verify"), &nt, &[("order", "MedicationRequest/nope")]).await;
    assert!(page.contains("医嘱"), "{page}");
    // The round: a one-time dose due now, scanned at the bedside.
    let st = [
        ("kind", "medication"),
        ("term", "once"),
        ("drug", "LEVO500I"),
        ("dose", "500"),
        ("route", "ivgtt"),
        ("frequency", "st"),
    ];
    assert_eq!(post(&mut doctor, &page_of, &dt, &st).await.0, StatusCode::SEE_OTHER, "a duplicate is a warning only");
    let levo = inpatient
        .orders(&operator, &stay)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.drug.as_deref() == Some("LEVO500I"))
        .unwrap()
        .reference;
    post(&mut nurse, &format!("{page_of}/orders/verify"), &nt, &[("order", &levo)]).await;
    let (status, _, page) = nurse.get("/ward/tasks?ward=ward-east-im&date=2026-12-07").await;
    assert_eq!(status, StatusCode::OK);
    let row = between(&page, &format!("data-order=\"{levo}\""), "</tr>");
    assert!(row.contains("09:45") && row.contains("待执行") && row.contains("黄建国"), "{row}");
    let due = between(row, "name=\"due\" value=\"", "\"").to_string();
    let give = |wristband: &'static str,
                drug: &'static str,
                outcome: &'static str,
                reason: &'static str,
                order: String,
                due: String| {
        vec![
            ("ward", "ward-east-im".to_string()),
            ("date", "2026-12-07".to_string()),
            ("stay", stay.clone()),
            ("order", order),
            ("due", due),
            ("patient_code", wristband.to_string()),
            ("drug_code", drug.to_string()),
            ("outcome", outcome.to_string()),
            ("reason", reason.to_string()),
        ]
    };
    let wrong_patient = give("ZY0000099", "LEVO500I", "given", "", levo.clone(), due.clone());
    let form: Vec<(&str, &str)> = wrong_patient.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = post(&mut nurse, "/ward/tasks", &nt, &form).await;
    assert!(
        between(&page, "id=\"ward-errors\"", "</div>").contains("腕带: 不是该患者的腕带"),
        "a wrong patient is refused"
    );
    let wrong_drug = give("ZY0000001", "CTRX1G", "given", "", levo.clone(), due.clone());
    let form: Vec<(&str, &str)> = wrong_drug.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = post(&mut nurse, "/ward/tasks", &nt, &form).await;
    assert!(page.contains("不是该医嘱的药品"), "{page}");
    assert!(search(&app, "MedicationAdministration?patient=Patient/pat-2").await.is_empty(), "nothing was recorded");
    let right = give("E0000002", "LEVO500I", "given", "", levo.clone(), due.clone());
    let form: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, loc, _) = post(&mut nurse, "/ward/tasks", &nt, &form).await;
    assert_eq!(
        (status, loc.as_str()),
        (StatusCode::SEE_OTHER, "/ward/tasks?ward=ward-east-im&date=2026-12-07&done=dose-given")
    );
    let (_, _, page) = post(&mut nurse, "/ward/tasks", &nt, &form).await;
    assert!(page.contains("该次给药已记录"), "a dose is recorded once");
    let given = search(&app, "MedicationAdministration?patient=Patient/pat-2").await;
    assert_eq!(given.len(), 1);
    assert_eq!(
        (given[0]["status"].as_str(), given[0]["request"]["reference"].as_str()),
        (Some("completed"), Some(levo.as_str()))
    );
    let (_, _, page) = nurse.get("/ward/tasks?ward=ward-east-im&date=2026-12-07").await;
    assert!(between(&page, &format!("data-order=\"{levo}\""), "</tr>").contains("已给药"));
    // Tomorrow's 08:00 dose of the long-term order: refused needs the reason.
    let (_, _, page) = nurse.get("/ward/tasks?ward=ward-east-im&date=2026-12-08").await;
    let row = between(&page, &format!("data-order=\"{ctrx}\""), "</tr>");
    assert!(row.contains("08:00"), "{row}");
    let due8 = between(row, "name=\"due\" value=\"", "\"").to_string();
    let refused = give("ZY0000001", "", "refused", "", ctrx.clone(), due8.clone());
    let form: Vec<(&str, &str)> = refused.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = post(&mut nurse, "/ward/tasks", &nt, &form).await;
    assert!(page.contains("原因") || page.contains("why the dose"), "{page}");
    let refused = give("ZY0000001", "", "refused", "患者诉恶心，拒绝输液", ctrx.clone(), due8.clone());
    let form: Vec<(&str, &str)> = refused.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post(&mut nurse, "/ward/tasks", &nt, &form).await.0, StatusCode::SEE_OTHER);
    let (_, _, page) = nurse.get("/ward/tasks?ward=ward-east-im&date=2026-12-08").await;
    assert!(between(&page, &format!("data-order=\"{ctrx}\""), "</tr>").contains("患者拒绝"));
    // A stopped order is not given.
    post(&mut doctor, &format!("{page_of}/orders/stop"), &dt, &[("order", &ctrx)]).await;
    let dec9 = (due8.parse::<i64>().unwrap() + 86_400_000).to_string();
    let late = give("ZY0000001", "CTRX1G", "given", "", ctrx.clone(), dec9);
    let form: Vec<(&str, &str)> = late.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = post(&mut nurse, "/ward/tasks", &nt, &form).await;
    assert!(page.contains("该医嘱已停止或取消"), "{page}");

    // The order sheets print as hospitals print them.
    let (status, _, page) = nurse.get(&format!("{page_of}/orders/print")).await;
    assert_eq!(status, StatusCode::OK);
    let long = between(&page, "id=\"sheet-long-term\"", "</article>");
    assert!(
        long.contains("长期医嘱单") && long.contains("注射用头孢曲松钠") && long.contains("user:nurse.east"),
        "{long}"
    );
    assert!(long.contains("二级护理") && long.contains("dr.east 显示名"), "{long}");
    let once = between(&page, "id=\"sheet-one-time\"", "</article>");
    assert!(once.contains("临时医嘱单") && once.contains("血常规"), "{once}");

    // Vital signs, checked, charted on the temperature chart.
    let vitals = format!("{page_of}/vitals");
    let (_, _, page) =
        post(&mut nurse, &vitals, &nt, &[("temperature", "50"), ("pulse", "96"), ("systolic", "130")]).await;
    let errors = between(&page, "id=\"ward-errors\"", "</div>");
    assert!(errors.contains("体温（℃）: 超出合理范围") && errors.contains("舒张压"), "{errors}");
    assert!(
        search(&app, "Observation?patient=Patient/pat-2&category=vital-signs").await.is_empty(),
        "nothing was charted"
    );
    let (status, loc, _) = post(
        &mut nurse,
        &vitals,
        &nt,
        &[("temperature", "38.6"), ("pulse", "96"), ("respiration", "20"), ("systolic", "130"), ("diastolic", "85")],
    )
    .await;
    assert_eq!((status, loc), (StatusCode::SEE_OTHER, format!("{page_of}/chart?done=vitals")));
    assert_eq!(search(&app, "Observation?patient=Patient/pat-2&category=vital-signs").await.len(), 4);
    let (status, _, page) = doctor.get(&format!("{page_of}/chart")).await;
    assert_eq!(status, StatusCode::OK);
    let chart = between(&page, "id=\"temperature-chart\">", "</svg>");
    // 09:45 falls in the 10 o'clock column of the first day (x = 64 + 2.5 × 14); 38.6 °C
    // is 17 rows of 7 below 42 (y = 44 + 119), 96 /min level with 37.8 °C.
    assert!(chart.contains("<path class=\"mark temp\" d=\"M96 160 L102 166"), "{chart}");
    assert!(chart.contains("<circle class=\"mark pulse\" cx=\"99\" cy=\"191\""), "{chart}");
    assert!(chart.contains(">20</text>"), "respiration under its column");
    assert!(page.contains("130/85"), "the readings' table");

    // Discharge: refused while an order waits for its check, and without the summary.
    let discharge = format!("{page_of}/discharge");
    let summary = [
        ("course", "抗感染治疗"),
        ("diagnosis", "肺部感染"),
        ("condition", "好转"),
        ("advice", "门诊随访"),
        ("disposition", "home"),
    ];
    let (_, _, page) = post(&mut doctor, &discharge, &dt, &summary).await;
    let errors = between(&page, "id=\"ward-errors\"", "</div>");
    assert!(errors.contains("医嘱: 有医嘱尚待护士核对"), "{errors}");
    let lab_order =
        inpatient.orders(&operator, &stay).await.unwrap().into_iter().find(|o| o.what == "血常规").unwrap().reference;
    post(&mut nurse, &format!("{page_of}/orders/verify"), &nt, &[("order", &lab_order)]).await;
    // The nurse collects its specimen at the bedside: a wrong wristband refused, then
    // the tube labelled with the campus's next number; once only.
    let (status, _, page) = nurse.get("/ward/specimens?ward=ward-east-im").await;
    assert_eq!(status, StatusCode::OK);
    assert!(between(&page, &format!("data-order=\"{lab_order}\""), "</tr>").contains("血常规"), "{page}");
    let collect = |code: &'static str| {
        vec![
            ("ward", "ward-east-im"),
            ("stay", stay.as_str()),
            ("order", lab_order.as_str()),
            ("specimen", "venous-blood"),
            ("patient_code", code),
        ]
    };
    let (_, _, page) = post(&mut nurse, "/ward/specimens", &nt, &collect("ZY0000099")).await;
    assert!(page.contains("腕带: 不是该患者的腕带"), "{page}");
    assert!(search(&app, "Specimen?patient=Patient/pat-2").await.is_empty(), "nothing was written");
    let (status, loc, _) = post(&mut nurse, "/ward/specimens", &nt, &collect("ZY0000001")).await;
    assert_eq!(
        (status, loc.as_str()),
        (StatusCode::SEE_OTHER, "/ward/specimens?ward=ward-east-im&number=S20261207000001")
    );
    let (_, _, page) = post(&mut nurse, "/ward/specimens", &nt, &collect("ZY0000001")).await;
    assert!(page.contains("检验医嘱: 已采集过"), "{page}");
    let specimens = search(&app, "Specimen?patient=Patient/pat-2").await;
    assert_eq!(specimens.len(), 1);
    assert_eq!(
        (specimens[0]["request"][0]["reference"].as_str(), specimens[0]["type"]["coding"][0]["code"].as_str()),
        (Some(lab_order.as_str()), Some("122555007"))
    );
    let (_, _, page) =
        post(&mut doctor, &discharge, &dt, &[("course", ""), ("diagnosis", "x"), ("disposition", "moon")]).await;
    let errors = between(&page, "id=\"ward-errors\"", "</div>");
    for f in ["诊疗经过", "出院诊断", "出院情况", "出院医嘱", "出院去向"] {
        assert!(errors.contains(f), "{f}: {errors}");
    }
    assert_eq!(post(&mut nurse, &discharge, &nt, &summary).await.0, StatusCode::FORBIDDEN, "nurses do not discharge");
    let (status, loc, _) = post(&mut doctor, &discharge, &dt, &summary).await;
    assert_eq!((status, loc), (StatusCode::SEE_OTHER, format!("{page_of}/summary")));
    let (_, _, page) = nurse.get(&format!("{page_of}/summary")).await;
    assert!(page.contains("出院小结") && page.contains("肺部感染") && page.contains("门诊随访"), "{page}");
    let done = &search(&app, &format!("Encounter?_id={stay}")).await[0];
    assert_eq!(
        (done["status"].as_str(), done["hospitalization"]["dischargeDisposition"]["coding"][0]["code"].as_str()),
        (Some("finished"), Some("home"))
    );
    assert_eq!(search(&app, "Composition?patient=Patient/pat-2&type=http://loinc.org|18842-5").await.len(), 1);
    let (_, _, page) = nurse.get("/ward?ward=ward-east-im").await;
    let card = between(&page, "id=\"bed-bed-e-2\"", "</li>");
    assert!(card.contains("data-state=\"cleaning\"") && !card.contains("黄建国"), "{card}");
    // Settled against the deposit under one invoice: 1,200 yuan of charges from a
    // 3,000 yuan deposit, 1,800 back.
    put(
        &east,
        &app,
        json!({"resourceType": "ChargeItem", "id": "bed-days", "status": "billable",
               "code": {"text": "床位费"}, "subject": {"reference": "Patient/pat-2"},
               "context": {"reference": format!("Encounter/{stay}")},
               "extension": [{"url": lianyi_billing::charges::AMOUNT_URL, "valueInteger": 120_000},
                             {"url": lianyi_billing::charges::CATEGORY_URL, "valueCode": "bed"}]}),
    )
    .await;
    let billing = lianyi_billing::deposits::Deposits::new(app.fhir.clone());
    let cashier = lianyi_billing::cashier::Cashier::new(app.fhir.clone());
    let desk =
        Caller::task_at(SystemTask::Operator("test".into()), lianyi_security::CampusId::parse("campus-east").unwrap());
    let form = lianyi_billing::deposits::DepositForm {
        campus: "campus-east".into(),
        stay: stay.clone(),
        amount: "3000".into(),
        method: "cash".into(),
        reference: String::new(),
    };
    let refused = billing.take(&desk, &form).await.unwrap_err().to_string();
    assert!(refused.contains("a stay in hospital (not discharged)"), "no deposit after discharge: {refused}");
    let entry = lianyi_store::deposits::NewDeposit {
        campus: "campus-east".into(),
        receipt_no: 1,
        stay: stay.clone(),
        patient: "pat-2".into(),
        kind: "deposit".into(),
        amount_fen: 300_000,
        method: "cash".into(),
        reference: None,
        cashier: "user:adm.east".into(),
        at: MONDAY_2345,
        note: None,
    };
    app.fhir.write_side(Vec::new(), &[lianyi_store::messages::SideWrite::Deposit(entry)]).await.unwrap();
    let settled = billing.settle(&desk, &cashier, &form).await.unwrap();
    assert_eq!(settled.invoice_no, Some(1));
    assert_eq!(
        (settled.total.0, settled.from_deposit.0, settled.refund.0, settled.paid.0),
        (120_000, 120_000, 180_000, 0)
    );
    let charge = &search(&app, "ChargeItem?_id=bed-days").await[0];
    assert_eq!(charge["status"], "billed");
    assert_eq!(app.fhir.operations().deposits().balances(&[stay.as_str()]).await.unwrap()[&stay], 0);
    let kinds: Vec<String> = app
        .fhir
        .operations()
        .deposits()
        .of_stay(&stay)
        .await
        .unwrap()
        .into_iter()
        .map(|d| format!("{}:{}", d.entry.kind, d.entry.amount_fen))
        .collect();
    assert_eq!(kinds, ["deposit:300000", "settlement:-120000", "refund:-180000"]);

    // Discharged once: the stay is no longer on a ward (its page is gone with it).
    let (status, _, _) = post(&mut doctor, &discharge, &dt, &summary).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "discharged once");
    assert_eq!(search(&app, "Composition?patient=Patient/pat-2&type=http://loinc.org|18842-5").await.len(), 1);
}

/// A campus's ward rules (its round times, a second nurse's check) set by its manager
/// and followed by its wards; a stay's days and doses charged after midnight at the
/// campus's prices — posted twice, charged once.
#[tokio::test]
async fn ward_rules_are_the_campus_s_and_daily_charges_are_posted_once() {
    let clock = ManualClock::new(MONDAY_2345 - 14 * 60 * MINUTE);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    hospital(&app).await;
    let operator =
        Caller::task_at(SystemTask::Operator("test".into()), lianyi_security::CampusId::parse("campus-east").unwrap());
    // East's price list: a bed day, second-level nursing, the levofloxacin bag.
    let prices = lianyi_billing::prices::PriceBook::new(app.fhir.clone());
    for (code, category, kind, reference, unit, yuan) in [
        ("BED-STD", "bed", "service", "bed-day", "日", "45.00"),
        ("NURS-2", "nursing", "service", "nursing-2", "日", "19.00"),
        ("D-LEVO500I", "western-drug", "drug", "LEVO500I", "袋", "38.50"),
    ] {
        let form = lianyi_billing::prices::ItemForm {
            campus: "campus-east".into(),
            code: code.into(),
            category: category.into(),
            kind: kind.into(),
            reference: reference.into(),
            name_zh: code.into(),
            name_en: code.into(),
            unit: unit.into(),
            ..Default::default()
        };
        prices.put_item(&operator, &form).await.unwrap();
        prices.set_price(&operator, "campus-east", code, yuan, "2026-12-07").await.unwrap();
    }

    // The manager sets East's rules; the round times are checked, naming the rule.
    let (mut manager, mt) = logged_in(&app, &clock, "mgr.east", "manager", "campus-east", None).await;
    let (status, _, page) = manager.get("/ward/rules").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("name=\"round_qd\" value=\"08:00\"")
            && !page.contains("second_check\" id=\"second-check\" checked")
    );
    let (_, _, page) =
        post(&mut manager, "/ward/rules", &mt, &[("campus", "campus-east"), ("round_bid", "08:00")]).await;
    let errors = between(&page, "id=\"ward-errors\"", "</div>");
    assert!(errors.contains("给药时间: 各频次的给药时间") && errors.contains("bid=08:00: 2 a day"), "{errors}");
    let (_, _, page) =
        post(&mut manager, "/ward/rules", &mt, &[("campus", "campus-east"), ("round_qd", "25:00")]).await;
    assert!(page.contains("00:00 and 23:59"), "{page}");
    let inpatient = Inpatient::new(app.fhir.clone());
    assert_eq!(inpatient.rules("campus-east").await.unwrap(), Default::default(), "nothing was saved");
    let (status, loc, _) = post(
        &mut manager,
        "/ward/rules",
        &mt,
        &[("campus", "campus-east"), ("round_qd", "09:00"), ("second_check", "on")],
    )
    .await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/ward/rules?campus=campus-east&done=1"));
    let east = inpatient.rules("campus-east").await.unwrap();
    assert_eq!((east.rounds.qd.clone(), east.rounds.bid.clone(), east.second_check), (vec![540], vec![480, 960], true));
    assert!(!inpatient.rules("campus-west").await.unwrap().second_check, "West keeps its own");
    let (mut nurse, nt) = logged_in(&app, &clock, "nurse.east", "nurse", "campus-east", None).await;
    assert_eq!(nurse.get("/ward/rules").await.0, StatusCode::FORBIDDEN, "set by the campus's managers");
    assert_eq!(
        post(&mut nurse, "/ward/rules", &nt, &[("campus", "campus-east"), ("round_qd", "07:00")]).await.0,
        StatusCode::FORBIDDEN
    );

    // pat-2 admitted on Monday, a long-term levofloxacin qd signed.
    let form = lianyi_inpatient::stays::OrderForm {
        ward: "ward-east-im".into(),
        nursing: "2".into(),
        reason: "肺部感染".into(),
        note: String::new(),
    };
    let order = inpatient.order_admission(&operator, "enc-2", &form, "").await.unwrap();
    let stay = inpatient.admit(&operator, &order, "bed-e-2").await.unwrap().stay;
    inpatient.receive(&operator, &stay).await.unwrap();
    let (mut doctor, dt) = logged_in(&app, &clock, "dr.east", "doctor", "campus-east", None).await;
    let page_of = format!("/ward/stays/{stay}");
    let levo = [
        ("kind", "medication"),
        ("term", "long"),
        ("drug", "LEVO500I"),
        ("dose", "500"),
        ("route", "ivgtt"),
        ("frequency", "qd"),
    ];
    assert_eq!(post(&mut doctor, &page_of, &dt, &levo).await.0, StatusCode::SEE_OTHER);
    let levo = inpatient.orders(&operator, &stay).await.unwrap()[0].reference.clone();
    // Two nurses: the first one's check is not enough, nor is it twice.
    let verify = format!("{page_of}/orders/verify");
    let (_, loc, _) = post(&mut nurse, &verify, &nt, &[("order", &levo)]).await;
    assert_eq!(loc, format!("/ward/stays/{stay}?done=verified"));
    let o = inpatient.orders(&operator, &stay).await.unwrap().remove(0);
    assert!(!o.in_force() && o.checked.is_some(), "{o:?}");
    let (_, _, page) = nurse.get(&page_of).await;
    assert!(page.contains("已初核，待第二名护士核对"), "{page}");
    let (_, _, page) = post(&mut nurse, &verify, &nt, &[("order", &levo)]).await;
    assert!(page.contains("须由另一名护士核对（本院区规则）"), "{page}");
    let (mut second, st) = logged_in(&app, &clock, "nurse2.east", "nurse", "campus-east", None).await;
    let (_, loc, _) = post(&mut second, &verify, &st, &[("order", &levo)]).await;
    assert_eq!(loc, format!("/ward/stays/{stay}?done=verified"));
    let o = inpatient.orders(&operator, &stay).await.unwrap().remove(0);
    assert!(o.in_force() && o.verified.as_ref().unwrap().0 == "user:nurse2.east", "{o:?}");
    // East's qd round is 09:00.
    let (_, _, page) = second.get("/ward/tasks?ward=ward-east-im&date=2026-12-08").await;
    let row = between(&page, &format!("data-order=\"{levo}\""), "</tr>");
    assert!(row.contains("09:00"), "{row}");
    let due = between(row, "name=\"due\" value=\"", "\"").parse::<i64>().unwrap();

    // Tuesday's round sent to the inpatient pharmacy (病区摆药), once.
    let round = [("ward", "ward-east-im"), ("date", "2026-12-08")];
    let (status, loc, _) = post(&mut second, "/ward/round", &st, &round).await;
    assert_eq!(
        (status, loc.as_str()),
        (StatusCode::SEE_OTHER, "/ward/tasks?ward=ward-east-im&date=2026-12-08&done=round")
    );
    let (_, _, page) = post(&mut second, "/ward/round", &st, &round).await;
    assert!(page.contains("当日已无待发送的给药"), "sent once: {page}");
    let (_, _, page) = second.get("/ward/tasks?ward=ward-east-im&date=2026-12-08").await;
    let lines = between(&page, "id=\"round-lines\"", "</table>");
    assert!(lines.contains("1 袋") && lines.contains("待药房发药"), "{lines}");
    // The pharmacist dispenses it: no inpatient pharmacy, then too little stock — named,
    // nothing dispensed — then from the batch received.
    let (mut pharmacist, pt) = logged_in(&app, &clock, "ph.east", "pharmacist", "campus-east", None).await;
    let (status, _, page) = pharmacist.get("/pharmacy/rounds").await;
    assert_eq!(status, StatusCode::OK);
    let card = between(&page, "id=\"round-ward-east-im\"", "</article>");
    assert!(card.contains("内科病区") && card.contains("左氧氟沙星") && card.contains("1 袋"), "{card}");
    let dispense = [("ward", "ward-east-im")];
    let (_, _, page) = post(&mut pharmacist, "/pharmacy/rounds", &pt, &dispense).await;
    assert!(page.contains("本院区没有住院药房"), "{page}");
    inpatient_pharmacy(&app, &operator, None).await;
    let (_, _, page) = post(&mut pharmacist, "/pharmacy/rounds", &pt, &dispense).await;
    let errors = between(&page, "id=\"round-errors\"", "</div>");
    assert!(errors.contains("库存不足") && errors.contains("左氧氟沙星氯化钠注射液 500 mg −1"), "{errors}");
    inpatient_pharmacy(&app, &operator, Some("5")).await;
    let (status, loc, _) = post(&mut pharmacist, "/pharmacy/rounds", &pt, &dispense).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/pharmacy/rounds?done=1"));
    let batches = app.fhir.operations().pharmacy().batches("campus-east", "ip", Some("LEVO500I"), true).await.unwrap();
    assert_eq!(batches[0].quantity, 4);
    let (_, _, page) = second.get("/ward/tasks?ward=ward-east-im&date=2026-12-08").await;
    assert!(between(&page, "id=\"round-lines\"", "</table>").contains("已发药"));

    // Tuesday 09:05: the dose given.
    clock.set(due + 5 * MINUTE);
    let dose = lianyi_inpatient::administration::DoseForm {
        stay: stay.clone(),
        order: levo.clone(),
        due_ms: due,
        patient_code: "E0000002".into(),
        drug_code: "LEVO500I".into(),
        outcome: "given".into(),
        reason: String::new(),
    };
    inpatient.record_dose(&operator, &dose).await.unwrap();
    // Before Tuesday's midnight only Monday is a whole day; after it, Tuesday too —
    // each day and dose charged once however often the posting runs.
    let posted = inpatient.post_charges(app.fhir.now_ms()).await.unwrap();
    assert_eq!((posted.charges, posted.unpriced.len()), (3, 0), "{posted:?}");
    clock.set(MONDAY_2345 + 15 * MINUTE + 86_400_000 + 10 * MINUTE);
    let posted = inpatient.post_charges(app.fhir.now_ms()).await.unwrap();
    assert_eq!(posted.charges, 2, "Tuesday's bed and nursing");
    let again = inpatient.post_charges(app.fhir.now_ms()).await.unwrap();
    // (The other stay is an inpatient visit on no ward: nothing to charge.)
    assert_eq!((again.stays, again.charges), (2, 0), "posted twice, charged once");
    let charges = search(&app, &format!("ChargeItem?context=Encounter/{stay}&_count=100")).await;
    let mut lines: Vec<String> = charges
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["identifier"][0]["value"].as_str().unwrap().replace(&stay, "S"),
                c["code"]["coding"][0]["code"].as_str().unwrap(),
                lianyi_billing::charges::extension_i64(c, lianyi_billing::charges::AMOUNT_URL)
            )
        })
        .collect();
    lines.sort();
    let ma =
        search(&app, "MedicationAdministration?patient=Patient/pat-2").await[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        lines,
        [
            format!("MedicationAdministration/{ma} D-LEVO500I 3850"),
            "stay/S/bed/2026-12-07 BED-STD 4500".to_string(),
            "stay/S/bed/2026-12-08 BED-STD 4500".to_string(),
            "stay/S/nursing/2026-12-07 NURS-2 1900".to_string(),
            "stay/S/nursing/2026-12-08 NURS-2 1900".to_string(),
        ]
    );
    assert!(
        charges
            .iter()
            .all(|c| c["status"] == "billable" && c["costCenter"]["reference"] == "Organization/campus-east-im")
    );

    // Nursing: a high fall risk flags the patient on the board; a scale with an item
    // left out is refused naming it; notes, intake and output; the handover list; a
    // lower risk later ends the flag.
    let (mut night, nk) = logged_in(&app, &clock, "nurse3.east", "nurse", "campus-east", None).await;
    let nursing = format!("{page_of}/nursing");
    let assess = format!("{page_of}/assess");
    let morse = |history: &'static str, aid: &'static str, iv: &'static str| {
        vec![
            ("scale", "morse"),
            ("history", history),
            ("secondary", "15"),
            ("aid", aid),
            ("iv", iv),
            ("gait", "10"),
            ("mental", "0"),
        ]
    };
    let (status, loc, _) = post(&mut night, &assess, &nk, &morse("25", "15", "20")).await;
    assert_eq!((status, loc), (StatusCode::SEE_OTHER, format!("{nursing}?done=assessed")));
    let (_, _, page) = night.get("/ward?ward=ward-east-im").await;
    assert!(between(&page, "id=\"bed-bed-e-2\"", "</li>").contains("跌倒高风险"), "{page}");
    let braden = [
        ("scale", "braden"),
        ("sensory", "2"),
        ("moisture", "2"),
        ("activity", "1"),
        ("mobility", "2"),
        ("nutrition", "3"),
    ];
    let (_, _, page) = post(&mut night, &assess, &nk, &braden).await;
    let errors = between(&page, "id=\"ward-errors\"", "</div>");
    assert!(errors.contains("请为量表的每一项评分") && errors.contains("摩擦力和剪切力"), "{errors}");
    for (kind, text, ml) in
        [("note", "夜间睡眠可，诉轻度咳嗽", ""), ("intake", "口服", "500"), ("output", "尿量", "300")]
    {
        let (status, _, _) = post(&mut night, &nursing, &nk, &[("kind", kind), ("text", text), ("ml", ml)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{kind}");
    }
    let (_, _, page) = post(&mut night, &nursing, &nk, &[("kind", "output"), ("text", "引流"), ("ml", "0.5")]).await;
    assert!(page.contains("毫升: 须为1至20000的整数毫升"), "{page}");
    let (_, _, page) = night.get(&nursing).await;
    assert!(between(&page, "id=\"io-today\"", "</p>").contains("入量 500 mL · 出量 300 mL · 平衡 200 mL"), "{page}");
    assert!(between(&page, "id=\"assessments\"", "</table>").contains("85"), "{page}");
    let (status, _, page) = night.get("/ward/handover?ward=ward-east-im").await;
    assert_eq!(status, StatusCode::OK);
    let row = between(&page, &format!("data-stay=\"{stay}\""), "</tr>");
    assert!(row.contains("跌倒高风险") && row.contains("夜间睡眠可") && row.contains("500 / 300 / 200 mL"), "{row}");
    // The infusion stopped, walking without aid, no fall before: moderate (25), the
    // flag ends.
    post(&mut night, &assess, &nk, &morse("0", "0", "0")).await;
    let (_, _, page) = night.get("/ward?ward=ward-east-im").await;
    assert!(!between(&page, "id=\"bed-bed-e-2\"", "</li>").contains("跌倒高风险"), "{page}");
    assert_eq!(
        search(&app, "Flag?patient=Patient/pat-2").await.iter().filter(|f| f["status"] == "inactive").count(),
        1
    );
}
