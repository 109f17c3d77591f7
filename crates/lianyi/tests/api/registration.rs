//! Registration over the pages: field rules with messages naming the field, the
//! campus MRN, the duplicate warning with scores and reasons for a near-duplicate,
//! the confirmation to register someone new anyway, one record per resident ID, and
//! the role check — in both languages.

use lianyi_security::ManualClock;
use lianyi_services::identifiers::ResidentId;
use reqwest::StatusCode;

use crate::helpers::spawn_app_clocked;
use crate::pages::{between, csrf, logged_in};

#[tokio::test]
async fn registration_checks_fields_warns_of_duplicates_and_assigns_campus_mrns() {
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_clocked(1 << 20, Some(clock.clone())).await;
    let (mut registrar, _) = logged_in(&app, &clock, "reg.east", "registrar", "campus-east", None).await;

    let (status, _, form) = registrar.get("/registration").await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf(&form);

    // Broken rules: each named with its field, nothing stored.
    let (_, _, page) = registrar
        .post(
            "/registration",
            &[("csrf", &token), ("name", ""), ("resident_id", "110105194912310021"), ("phone", "12345")],
        )
        .await;
    let errors = between(&page, "id=\"form-errors\"", "</div>");
    assert!(errors.contains("data-field=\"name\">姓名: 必填"), "{errors}");
    assert!(errors.contains("data-field=\"resident_id\">身份证号: 校验码不符"), "{errors}");
    assert!(errors.contains("data-field=\"phone\">电话: 11 位手机号"), "{errors}");
    assert_eq!(app.total("/fhir/Patient").await, 0);

    // A new patient: birth date and sex from the ID, the east campus's first MRN.
    let id_number = ResidentId::build(990_101, "19900101", 2).unwrap();
    let (status, location, _) = registrar
        .post(
            "/registration",
            &[
                ("csrf", &token),
                ("name", "张珊"),
                ("resident_id", id_number.as_str()),
                ("phone", "138 0013 8000"),
                ("address", "北京市朝阳区幸福路 1 号"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let first = between(&location, "/patients/", "?").to_string();
    let (_, _, patient_page) = registrar.get(&location).await;
    assert!(patient_page.contains("登记成功"), "{patient_page}");
    assert!(patient_page.contains("Zhang Shan") && patient_page.contains("病案号 E2000000"), "{patient_page}");
    assert!(patient_page.contains("1990-01-01") && patient_page.contains("女"), "{patient_page}");
    assert!(patient_page.contains("990101********"), "the ID is masked: {patient_page}");
    let stored = app.get(&format!("/fhir/Patient/{first}")).await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(stored["gender"], "female");
    assert_eq!(stored["identifier"][1]["value"], "E2000000");
    assert_eq!(stored["name"][1]["text"], "Zhang Shan");

    // The same person again without the ID card, a homophone character, the same
    // phone: warned, with the score and the reasons; nothing created.
    let near = [
        ("csrf", token.as_str()),
        ("name", "张山"),
        ("birth_date", "1990-01-01"),
        ("gender", "female"),
        ("phone", "13800138000"),
    ];
    let (status, _, page) = registrar.post("/registration", &near).await;
    assert_eq!(status, StatusCode::OK);
    let dup = between(&page, "id=\"duplicates\"", "</table>");
    assert!(dup.contains(&format!("data-patient=\"{first}\"")), "{dup}");
    assert!(dup.contains("姓名同音") && dup.contains("出生日期相同") && dup.contains("电话相同"), "{dup}");
    let score: u32 = between(dup, "class=\"score\">", "<").parse().unwrap();
    assert!(score >= 75, "{score}");
    assert_eq!(app.total("/fhir/Patient").await, 1);

    // In English too.
    registrar.lang = "en";
    let (_, _, page) = registrar.post("/registration", &near).await;
    assert!(page.contains("Possible duplicates") && page.contains("name sounds the same"), "{page}");
    registrar.lang = "zh-CN";

    // The registrar checked: someone else. Registered with the next MRN.
    let mut confirmed = near.to_vec();
    confirmed.push(("confirmed", "1"));
    let (status, location, _) = registrar.post("/registration", &confirmed).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (_, _, second_page) = registrar.get(&location).await;
    assert!(second_page.contains("病案号 E2000001"), "{second_page}");

    // The same resident ID never makes a second record.
    let (_, _, page) = registrar
        .post("/registration", &[("csrf", &token), ("name", "张三丰"), ("resident_id", id_number.as_str())])
        .await;
    assert!(between(&page, "id=\"same-id\"", "</div>").contains(&format!("/patients/{first}")), "{page}");
    assert_eq!(app.total("/fhir/Patient").await, 2);

    // Registration is the registrar's: a doctor gets 403, a forged form too.
    let (mut doctor, _) = logged_in(&app, &clock, "dr.east", "doctor", "campus-east", None).await;
    assert_eq!(doctor.get("/registration").await.0, StatusCode::FORBIDDEN);
    let (status, _, _) = registrar.post("/registration", &[("csrf", "forged"), ("name", "李四")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Every registration is audited as the registrar's.
    let query = lianyi_store::audit::AuditQuery { action: Some("create".into()), limit: 1000, ..Default::default() };
    let audit = app.fhir.store().audit_records(&query).await.unwrap();
    let created: Vec<_> =
        audit.iter().map(|r| &r.entry).filter(|e| e.resource_type.as_deref() == Some("Patient")).collect();
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|e| e.actor == "user:reg.east" && e.campus.as_deref() == Some("campus-east")));
}
