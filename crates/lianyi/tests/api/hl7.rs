//! HL7 v2 mapped to FHIR transactions, applied through the FHIR API like any client's:
//! validated, campus-scoped, audited; applying the same message twice leaves one
//! resource per business identifier.

use lianyi_hl7::Message;
use lianyi_interop::{Channel, map_message};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

fn channel() -> Channel {
    Channel {
        mrn_system: "urn:lianyi:sid:mrn:campus-east".into(),
        visit_system: "urn:lianyi:sid:visit:campus-east".into(),
        order_system: "urn:lianyi:sid:order:lis-east".into(),
        utc_offset: "+08:00".into(),
    }
}

fn mapped(file: &str) -> Value {
    let path = format!("{}/../../tests/hl7/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    map_message(&Message::parse(&text).unwrap(), &channel()).unwrap().bundle
}

#[tokio::test]
async fn adt_then_oru_land_as_valid_linked_resources() {
    let app = spawn_app().await;
    for file in ["adt_a01.hl7", "oru_r01.hl7", "adt_a01.hl7", "oru_r01.hl7"] {
        let r = app.post("/fhir", &mapped(file)).await;
        let status = r.status();
        assert_eq!(status, StatusCode::OK, "{file}: {}", r.text().await.unwrap());
    }
    let patients = app.search_ids("/fhir/Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE100234").await;
    assert_eq!(patients.len(), 1, "applied twice, still one patient");
    let p: Value = app.get(&format!("/fhir/Patient/{}", patients[0])).await.json().await.unwrap();
    assert_eq!(p["name"][0]["text"], "张三");
    assert_eq!(p["identifier"][1]["value"], "990101199001010015", "the resident ID reads back decrypted");
    let enc = app.search_ids(&format!("/fhir/Encounter?subject=Patient/{}", patients[0])).await;
    assert_eq!(enc.len(), 1);
    let critical = app.search_ids("/fhir/Observation?code-value-quantity=http://loinc.org%7C2823-3$gt6").await;
    assert_eq!(critical.len(), 1);
    let o: Value = app.get(&format!("/fhir/Observation/{}", critical[0])).await.json().await.unwrap();
    assert_eq!(o["subject"]["reference"], format!("Patient/{}", patients[0]));
    assert_eq!(o["valueQuantity"]["unit"], "mmol/L");
    assert_eq!(o["interpretation"][0]["coding"][0]["code"], "HH");
    lianyi_fhir::validate_resource(&o).unwrap();
    let reports = app.search_ids(&format!("/fhir/DiagnosticReport?subject=Patient/{}", patients[0])).await;
    assert_eq!(reports.len(), 1);
    let d: Value = app.get(&format!("/fhir/DiagnosticReport/{}", reports[0])).await.json().await.unwrap();
    assert_eq!(d["result"].as_array().unwrap().len(), 2);
    assert!(d["result"][0]["reference"].as_str().unwrap().starts_with("Observation/"));
    assert_eq!(app.search_ids("/fhir/Observation?patient.identifier=E100234").await.len(), 2);
}
