//! A stay from admission to settlement in a real Chromium, once per language: the
//! doctor orders admission from a clinic visit; the admission office admits onto a bed
//! and takes the deposit; the ward receives the patient; the doctor signs a long-term
//! and a one-time order, a nurse verifies both; the ward sends the day's round and the
//! inpatient pharmacist dispenses it; the nurse records the one-time dose — a wrong
//! wristband refused — and vital signs, the temperature chart drawn; the doctor
//! transfers the patient to a ward of the West Campus, whose admission office gives the
//! bed and whose nurse receives them (the East bed turns to cleaning); the doctor
//! discharges with the summary; the cashier settles against the deposit and pays the
//! balance back; the West bed turns to cleaning. Every page passes [`Driver::check`].

use lianyi_security::users::NewUser;
use lianyi_security::{Caller, ManualClock, SystemTask};
use serde_json::Value;

use crate::browser::Driver;
use crate::helpers::spawn_app_clocked;

/// Monday 7 December 2026, 09:30 in Beijing.
const MONDAY_0930: i64 = 1_796_607_000_000;

struct Expect {
    ordered: &'static str,
    deposit_taken: &'static str,
    received: &'static str,
    signed: &'static str,
    verified: &'static str,
    round_sent: &'static str,
    wrong_patient: &'static str,
    given: &'static str,
    transfer_ordered: &'static str,
    summary: &'static str,
    refund: &'static str,
}

const ZH: Expect = Expect {
    ordered: "住院证已开具",
    deposit_taken: "3000.00",
    received: "患者已入科",
    signed: "医嘱已签署",
    verified: "医嘱已核对",
    round_sent: "摆药单已发送至住院药房",
    wrong_patient: "不是该患者的腕带",
    given: "已给药",
    transfer_ordered: "转科医嘱已送达",
    summary: "出院小结",
    refund: "2961.50",
};

const EN: Expect = Expect {
    ordered: "The admission order was sent",
    deposit_taken: "3000.00",
    received: "The patient was received",
    signed: "The order was signed",
    verified: "The order was verified",
    round_sent: "The round was sent to the inpatient pharmacy",
    wrong_patient: "not this patient's wristband",
    given: "given",
    transfer_ordered: "The transfer order was sent",
    summary: "Discharge summary",
    refund: "2961.50",
};

async fn search(app: &crate::helpers::TestApp, query: &str) -> Vec<Value> {
    let client = app.client_with("system/*.rs", "*", None).await;
    let r = client.get(app.url(&format!("/fhir/{query}"))).send().await.unwrap();
    let bundle: Value = r.json().await.unwrap();
    bundle["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

async fn ward_stay(lang: &str, x: &Expect) {
    let clock = ManualClock::new(MONDAY_0930);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    crate::inpatient::hospital(&app).await;
    let tag = if lang == "en" { "en" } else { "zh" };
    let system = Caller::task(SystemTask::Operator("walk setup".into()));
    let at = |role: &str, campuses: &[&str]| -> Vec<(String, String)> {
        campuses.iter().map(|c| (role.to_string(), c.to_string())).collect()
    };
    let both = ["campus-east", "campus-west"];
    for (name, grants) in [
        ("doctor", at("doctor", &both)),
        ("registrar", at("registrar", &both)),
        ("nurse", at("nurse", &["campus-east"])),
        ("nurse2", at("nurse", &["campus-west"])),
        ("pharmacist", at("pharmacist", &["campus-east"])),
        ("cashier", at("cashier", &["campus-east"])),
    ] {
        app.users
            .add_user(
                &system,
                NewUser {
                    username: format!("{name}.{tag}"),
                    display_name: format!("{name} {lang}"),
                    password: "initial-Pass-2026".into(),
                    grants,
                    patient: None,
                    must_change_password: false,
                },
            )
            .await
            .unwrap();
    }
    // East's price of the levofloxacin bag, and its inpatient pharmacy's stock of it.
    let east = Caller::task_at(
        SystemTask::Operator("walk setup".into()),
        lianyi_security::CampusId::parse("campus-east").unwrap(),
    );
    let prices = lianyi_billing::prices::PriceBook::new(app.fhir.clone());
    let item = lianyi_billing::prices::ItemForm {
        campus: "campus-east".into(),
        code: "D-LEVO500I".into(),
        category: "western-drug".into(),
        kind: "drug".into(),
        reference: "LEVO500I".into(),
        name_zh: "左氧氟沙星氯化钠注射液".into(),
        name_en: "Levofloxacin injection".into(),
        unit: "袋".into(),
        ..Default::default()
    };
    prices.put_item(&east, &item).await.unwrap();
    prices.set_price(&east, "campus-east", "D-LEVO500I", "38.50", "2026-12-07").await.unwrap();
    crate::inpatient::inpatient_pharmacy(&app, &east, Some("20")).await;

    let shots = format!("ward-{lang}");
    let site = app.base.replace("127.0.0.1", "localhost");
    let d = Driver::start().await;
    d.goto(&format!("{site}/login")).await;
    if lang == "en" {
        d.open_menu().await;
        d.click("#lang-switch").await;
        d.wait_text("Log in", 10).await;
    }
    let mut secrets = Vec::new();

    // The doctor orders admission from the clinic visit.
    d.walk_log_in(&site, &format!("doctor.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward/order?encounter=enc-1")).await;
    d.check(true).await;
    d.click("#order-ward option[value=ward-east-im]").await;
    d.click("#order-nursing option[value='2']").await;
    d.type_into("#order-reason", "社区获得性肺炎").await;
    d.click("#order-submit").await;
    d.wait_text(x.ordered, 10).await;
    d.check(true).await;
    d.screenshot(&shots, "01-admission-ordered").await;
    d.log_out().await;

    // The admission office admits onto the first free bed and takes the deposit.
    d.walk_log_in(&site, &format!("registrar.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward/admissions?campus=campus-east")).await;
    d.check(true).await;
    d.click("article.admission-order button.admit-go").await;
    d.wait_text("ZY0000001", 10).await;
    d.check(true).await;
    let stay =
        search(&app, "Encounter?patient=Patient/pat-1&class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP")
            .await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
    d.click("#take-deposit").await;
    d.wait_url("/billing/deposits/").await;
    d.check(true).await;
    d.type_into("#dep-amount", "3000").await;
    d.click("#dep-method option[value=cash]").await;
    d.click("#dep-submit").await;
    // The receipt prints; the stay's account shows the balance.
    d.wait_url("/billing/deposits/receipt/campus-east/1").await;
    d.wait_text(x.deposit_taken, 10).await;
    d.goto(&format!("{site}/billing/deposits/{stay}")).await;
    assert!(d.text("#dep-balance").await.contains("3000.00"));
    d.check(true).await;
    d.screenshot(&shots, "02-admitted-deposit").await;
    d.log_out().await;

    // The ward receives the patient onto the bed.
    d.walk_log_in(&site, &format!("nurse.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward?ward=ward-east-im")).await;
    d.check(true).await;
    d.click("button.receive").await;
    d.wait_text(x.received, 10).await;
    let card = d.text("#bed-bed-e-1").await;
    assert!(card.contains("林秀英") && card.contains("ZY0000001"), "{card}");
    d.check(true).await;
    d.screenshot(&shots, "03-on-the-board").await;
    d.log_out().await;

    // The doctor signs a long-term infusion and a one-time dose now.
    d.walk_log_in(&site, &format!("doctor.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward/stays/{stay}")).await;
    d.check(true).await;
    for (term, frequency) in [("long", "qd"), ("once", "st")] {
        d.click("#order-kind option[value=medication]").await;
        d.click(&format!("#order-term option[value={term}]")).await;
        d.click("#order-drug option[value=LEVO500I]").await;
        d.fill("#order-dose", "500").await;
        d.click("#order-route option[value=ivgtt]").await;
        d.click(&format!("#order-frequency option[value={frequency}]")).await;
        d.click("#order-sign").await;
        d.wait_text(x.signed, 10).await;
        d.check(true).await;
    }
    d.screenshot(&shots, "04-orders-signed").await;
    d.log_out().await;

    // A nurse verifies both, sends the day's round to the inpatient pharmacy.
    d.walk_log_in(&site, &format!("nurse.{tag}"), &mut secrets, &clock).await;
    for _ in 0..2 {
        d.goto(&format!("{site}/ward/stays/{stay}")).await;
        d.click("button.verify").await;
        d.wait_url("done=verified").await;
        d.wait_text(x.verified, 10).await;
    }
    d.check(true).await;
    d.goto(&format!("{site}/ward/tasks?ward=ward-east-im&date=2026-12-07")).await;
    d.check(true).await;
    d.click("#send-round").await;
    d.wait_text(x.round_sent, 10).await;
    d.check(true).await;
    d.screenshot(&shots, "05-round-sent").await;
    d.log_out().await;

    // The inpatient pharmacist dispenses the ward's round.
    d.walk_log_in(&site, &format!("pharmacist.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/pharmacy/rounds")).await;
    d.check(true).await;
    d.click("#round-ward-east-im button.dispense-round").await;
    d.wait_url("done=1").await;
    d.check(true).await;
    d.screenshot(&shots, "06-round-dispensed").await;
    d.log_out().await;
    let batch = app.fhir.operations().pharmacy().batches("campus-east", "ip", Some("LEVO500I"), true).await.unwrap();
    assert_eq!(batch[0].quantity, 19, "the one-time dose's bag (the long-term one starts tomorrow)");

    // The nurse gives the one-time dose: a wrong wristband is refused, the right one given.
    d.walk_log_in(&site, &format!("nurse.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward/tasks?ward=ward-east-im&date=2026-12-07")).await;
    d.check(true).await;
    d.type_into("tr.dose-due .patient-code", "ZY0000099").await;
    d.type_into("tr.dose-due .drug-code", "LEVO500I").await;
    d.click("tr.dose-due button.record").await;
    d.wait_text(x.wrong_patient, 10).await;
    d.check(true).await;
    d.fill("tr.dose-due .patient-code", "ZY0000001").await;
    d.fill("tr.dose-due .drug-code", "LEVO500I").await;
    d.click("tr.dose-due button.record").await;
    d.wait_url("done=dose-given").await;
    assert!(d.text("#doses").await.contains(x.given));
    d.check(true).await;
    d.screenshot(&shots, "07-dose-given").await;
    // Vital signs, and the temperature chart drawn.
    d.goto(&format!("{site}/ward/stays/{stay}/chart")).await;
    d.check(true).await;
    d.type_into("#vital-temperature", "38.4").await;
    d.type_into("#vital-pulse", "92").await;
    d.type_into("#vital-respiration", "20").await;
    d.type_into("#vital-systolic", "128").await;
    d.type_into("#vital-diastolic", "82").await;
    d.click("#vitals-submit").await;
    d.wait_url("done=vitals").await;
    let chart = d
        .cmd(
            reqwest::Method::POST,
            "/execute/sync",
            serde_json::json!({"script": "return document.getElementById('temperature-chart').outerHTML", "args": []}),
        )
        .await;
    let chart = chart.as_str().unwrap_or_default().to_string();
    assert!(chart.contains("mark temp") && chart.contains("mark pulse"), "{chart}");
    d.check(true).await;
    d.screenshot(&shots, "08-temperature-chart").await;
    d.log_out().await;

    // The doctor transfers the patient to the West Campus's internal medicine.
    d.walk_log_in(&site, &format!("doctor.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward?ward=ward-east-im")).await;
    d.click("a.order-transfer").await;
    d.wait_url("/ward/transfer").await;
    d.check(true).await;
    d.click("#transfer-ward option[value=ward-west-im]").await;
    d.type_into("#transfer-reason", "转西院区呼吸专科继续治疗").await;
    d.click("#transfer-submit").await;
    d.wait_text(x.transfer_ordered, 10).await;
    d.check(true).await;
    d.log_out().await;
    // West's admission office gives the bed; West's nurse receives the patient.
    d.walk_log_in(&site, &format!("registrar.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward/admissions?campus=campus-west")).await;
    d.check(true).await;
    d.click("article.transfer-order button.admit-go").await;
    d.wait_text("ZY0000001", 10).await;
    d.check(true).await;
    d.log_out().await;
    d.walk_log_in(&site, &format!("nurse2.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward?ward=ward-west-im")).await;
    d.click("button.receive").await;
    d.wait_text(x.received, 10).await;
    assert!(d.text("#bed-bed-w-1").await.contains("林秀英"));
    d.check(true).await;
    d.screenshot(&shots, "09-transferred").await;
    d.log_out().await;
    let east_bed = &search(&app, "Location?_id=bed-e-1").await[0];
    assert_eq!(east_bed["operationalStatus"]["code"], "H", "the East bed is being cleaned");

    // The doctor discharges with the summary.
    d.walk_log_in(&site, &format!("doctor.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward/stays/{stay}")).await;
    d.check(true).await;
    d.type_into("#discharge-course", "抗感染治疗后体温正常，咳嗽缓解").await;
    d.type_into("#discharge-diagnosis", "社区获得性肺炎").await;
    d.type_into("#discharge-condition", "好转").await;
    d.type_into("#discharge-advice", "门诊随访，1周后复查血常规").await;
    d.click("#discharge-disposition option[value=home]").await;
    d.click("#discharge-submit").await;
    d.wait_url("/summary").await;
    d.wait_text(x.summary, 10).await;
    d.check(true).await;
    d.screenshot(&shots, "10-discharge-summary").await;
    d.log_out().await;

    // The cashier settles: the dose from the deposit, the balance paid back.
    d.walk_log_in(&site, &format!("cashier.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/billing/deposits/{stay}")).await;
    d.check(true).await;
    d.click("#settle-submit").await;
    let page = d.wait_text(x.refund, 10).await;
    assert!(page.contains("38.50"), "the dose was charged: {page}");
    d.check(true).await;
    d.screenshot(&shots, "11-settled").await;
    d.log_out().await;
    assert_eq!(app.fhir.operations().deposits().balances(&[stay.as_str()]).await.unwrap()[&stay], 0);
    // The West bed turns to cleaning.
    d.walk_log_in(&site, &format!("nurse2.{tag}"), &mut secrets, &clock).await;
    d.goto(&format!("{site}/ward?ward=ward-west-im")).await;
    let card = d.find("#bed-bed-w-1").await;
    let state =
        d.cmd(reqwest::Method::GET, &format!("/element/{card}/attribute/data-state"), serde_json::json!({})).await;
    assert_eq!(state, "cleaning");
    d.check(true).await;
    d.screenshot(&shots, "12-bed-cleaning").await;
}

#[tokio::test]
async fn chromium_walks_a_stay_from_admission_to_settlement_in_chinese() {
    ward_stay("zh-CN", &ZH).await;
}

#[tokio::test]
async fn chromium_walks_a_stay_from_admission_to_settlement_in_english() {
    ward_stay("en", &EN).await;
}
