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
        appointment_system: "urn:lianyi:sid:appointment:his-east".into(),
        utc_offset: "+08:00".into(),
        profile: Default::default(),
        now_ms: 1_795_000_000_000,
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
    assert_eq!(p["identifier"][1]["value"], "990101199001010019", "the resident ID reads back decrypted");
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

fn sample(file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../tests/hl7/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn visits_orders_appointments_and_a_merge_arrive_through_the_inbound_path() {
    let app = spawn_app().await;
    let inbound = lianyi_interop::Inbound::new(app.fhir.clone(), "test", "campus-east", "+08:00");
    let send = |bytes: Vec<u8>| {
        let inbound = inbound.clone();
        async move {
            let (ack, outcome) = inbound.receive(&bytes, None).await;
            (String::from_utf8(ack).unwrap(), outcome)
        }
    };
    // The record that will be merged away, registered separately.
    let dup = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261121080000||ADT^A04|REG0099|P|2.5.1\rPID|1||E100999^^^EAST^MR||张^三||19900101|M\r";
    assert_eq!(send(dup.as_bytes().to_vec()).await.1, lianyi_interop::inbound::Outcome::Accepted);
    for file in [
        "adt_a01.hl7",
        "adt_a02.hl7",
        "orm_o01.hl7",
        "oml_o21.hl7",
        "siu_s12.hl7",
        "adt_a03.hl7",
        "adt_a13.hl7",
        "siu_s15.hl7",
        "adt_a11.hl7",
        "adt_a40.hl7",
    ] {
        let (ack, outcome) = send(sample(file)).await;
        assert_eq!(outcome, lianyi_interop::inbound::Outcome::Accepted, "{file}: {ack}");
    }
    let one = |path: String| {
        let app = &app;
        async move {
            let ids = app.search_ids(&path).await;
            assert_eq!(ids.len(), 1, "{path}: {ids:?}");
            let rtype = path.split('?').next().unwrap().trim_start_matches("/fhir/").to_string();
            let v: Value = app.get(&format!("/fhir/{rtype}/{}", ids[0])).await.json().await.unwrap();
            v
        }
    };
    let admitted = one("/fhir/Encounter?identifier=urn:lianyi:sid:visit:campus-east%7CV0001".into()).await;
    assert_eq!(admitted["status"], "in-progress", "discharged, then the discharge was cancelled");
    assert_eq!(admitted["location"][0]["location"]["display"], "ICU 0102 03 EAST", "transferred to the ICU");
    assert!(admitted["period"].get("end").is_none());
    let cancelled = one("/fhir/Encounter?identifier=urn:lianyi:sid:visit:campus-east%7CV0002".into()).await;
    assert_eq!(cancelled["status"], "cancelled");
    let k = one("/fhir/ServiceRequest?identifier=urn:lianyi:sid:order:his%7CORD7001".into()).await;
    assert_eq!(k["status"], "revoked", "the OML cancel (ORC-1 CA) revoked the ORM order");
    assert!(k.get("priority").is_none(), "an order message carries the whole order: the cancel named no priority");
    let panel = one("/fhir/ServiceRequest?identifier=urn:lianyi:sid:order:his%7CORD7002".into()).await;
    assert_eq!(panel["status"], "active");
    lianyi_fhir::validate_resource(&panel).unwrap();
    let appt = one("/fhir/Appointment?identifier=urn:lianyi:sid:appointment:his%7CAPT-F-88".into()).await;
    assert_eq!(
        (appt["status"].as_str(), appt["start"].as_str()),
        (Some("cancelled"), Some("2026-12-01T09:00:00+08:00"))
    );
    lianyi_fhir::validate_resource(&appt).unwrap();
    let survivor = one("/fhir/Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE100234".into()).await;
    let retired = one("/fhir/Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE100999".into()).await;
    assert_eq!(retired["active"], false);
    assert_eq!(retired["link"][0]["type"], "replaced-by");
    assert_eq!(retired["link"][0]["other"]["reference"], format!("Patient/{}", survivor["id"].as_str().unwrap()));
    assert_eq!(
        survivor["link"][0],
        serde_json::json!({"other": {"reference": format!("Patient/{}", retired["id"].as_str().unwrap())}, "type": "replaces"})
    );
    assert_eq!(retired["name"][0]["family"], "张", "the merged record keeps its content");
    // Later ADT messages for either record keep the merge.
    let again = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261127090000||ADT^A08|ADT0010|P|2.5.1\rPID|1||E100999^^^EAST^MR||张^三丰||19900101|M\r";
    assert_eq!(send(again.as_bytes().to_vec()).await.1, lianyi_interop::inbound::Outcome::Accepted);
    let survivor_update = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261127090100||ADT^A08|ADT0011|P|2.5.1\rPID|1||E100234^^^EAST^MR||张^三||19900101|M\r";
    assert_eq!(send(survivor_update.as_bytes().to_vec()).await.1, lianyi_interop::inbound::Outcome::Accepted);
    let retired = one("/fhir/Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE100999".into()).await;
    assert_eq!((retired["active"].as_bool(), retired["name"][0]["given"][0].as_str()), (Some(false), Some("三丰")));
    assert_eq!(retired["link"][0]["type"], "replaced-by");
    let survivor = one("/fhir/Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE100234".into()).await;
    assert_eq!(survivor["link"][0]["type"], "replaces");

    // A merge naming a patient unknown here merges nothing: the survivor is updated,
    // and the ACK (AA) warns at MRG-1.
    let unknown = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261126090000||ADT^A40|ADT0099|P|2.5.1\rPID|1||E100234^^^EAST^MR||张^三\rMRG|E404^^^EAST^MR\r";
    let (ack, outcome) = send(unknown.as_bytes().to_vec()).await;
    assert_eq!(outcome, lianyi_interop::inbound::Outcome::Accepted, "{ack}");
    assert!(ack.contains("\rERR|MRG^1^1^204&") && ack.contains("|W||||MRG-1 names no patient known here"), "{ack}");

    // A message refused under one listener profile (its PID-3 has no PI) is replayed
    // by the operator once the profile is corrected.
    let strict = lianyi_interop::Inbound::new(app.fhir.clone(), "profiled", "campus-east", "+08:00")
        .with_profile(lianyi_interop::Pid3Profile { mrn_type: Some("PI".into()), ..Default::default() });
    let e404 =
        "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261126080000||ADT^A04|REG0404|P|2.5.1\rPID|1||E404^^^EAST^MR||赵^六\r";
    let (ack, outcome) = strict.receive(e404.as_bytes(), None).await;
    assert_eq!(outcome, lianyi_interop::inbound::Outcome::Error);
    let ack = String::from_utf8(ack).unwrap();
    assert!(ack.contains("MSA|AE|REG0404|PID-3 must hold the patient's medical record number (type PI"), "{ack}");
    let outbound = lianyi_interop::Outbound::new(app.fhir.clone(), "campus-east");
    outbound.register_inbound(lianyi_interop::Inbound::new(app.fhir.clone(), "profiled", "campus-east", "+08:00"));
    let it = lianyi_security::Caller::task(lianyi_security::SystemTask::Operator("test operator".into()));
    let filter = |status: &str| lianyi_store::messages::MessageFilter {
        direction: Some("in".into()),
        status: Some(status.into()),
        control_id: Some("REG0404".into()),
        limit: 10,
        ..Default::default()
    };
    let refused = outbound.messages(&it, &filter("error")).await.unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(outbound.replay(&it, &[refused[0].id]).await.unwrap(), 1);
    assert_eq!(outbound.messages(&it, &filter("accepted")).await.unwrap().len(), 1, "the replay is logged as accepted");
    let registered = one("/fhir/Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE404".into()).await;
    assert_eq!(registered["name"][0]["text"], "赵六");
    let accepted_once = outbound.messages(&it, &filter("accepted")).await.unwrap()[0].id;
    let again = outbound.replay(&it, &[accepted_once]).await.unwrap_err().to_string();
    assert!(again.contains("only error, rejected or failed messages are replayed"), "{again}");
}

#[tokio::test]
async fn journaled_acks_come_after_the_check_and_every_queued_message_is_applied_in_order() {
    use lianyi_interop::inbound::Outcome;
    let app = spawn_app().await;
    let oru = |control: &str, value: &str| {
        format!(
            "MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261123083500||ORU^R01^ORU_R01|{control}|P|2.5.1\rPID|1||E300001^^^EAST^MR||李^四||19700101|M\r\
             OBR|1|P{control}|F{control}|2823-3^Potassium^LN|||20261123083000|||||||||||||||||F\r\
             OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||{value}|mmol/L^mmol/L^UCUM|3.5-5.3|N|||F\r"
        )
        .into_bytes()
    };
    // A listener journaling, its applier not yet running (as after a crash).
    let inbound = lianyi_interop::Inbound::new(app.fhir.clone(), "mllp:journal", "campus-east", "+08:00").journaled();
    for (i, value) in ["4.1", "4.4", "4.9"].iter().enumerate() {
        let (ack, outcome) = inbound.receive(&oru(&format!("J{i}"), value), None).await;
        assert_eq!(outcome, Outcome::Accepted, "{}", String::from_utf8_lossy(&ack));
    }
    assert_eq!(app.fhir.operations().queued_count("campus-east").await.unwrap(), 3, "acknowledged, queued");
    // Each keeps its checked mapping (encrypted), durable before its AA.
    let queued = app.fhir.operations().queued_messages("campus-east", 10).await.unwrap();
    let kept = app.fhir.protector().cipher().decrypt(queued[0].mapped.as_ref().unwrap(), "message_log.mapped").unwrap();
    let kept: Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept["type"], "transaction");
    assert_eq!(kept["entry"][1]["resource"]["valueQuantity"]["value"], 4.1, "{kept}");
    assert_eq!(queued[0].message.summary.as_deref(), Some("ORU^R01: patient E300001, 1 observation(s)"));
    assert!(app.search_ids("/fhir/Observation?code=http://loinc.org%7C2823-3").await.is_empty(), "not yet applied");
    // A resend of a queued message gets its AA and is not queued twice.
    let (_, outcome) = inbound.receive(&oru("J1", "4.4"), None).await;
    assert_eq!(outcome, Outcome::Duplicate);
    // Content errors are answered before anything is queued: a value that is no number.
    let (ack, outcome) = inbound.receive(&oru("J9", "high"), None).await;
    assert_eq!(outcome, Outcome::Error, "{}", String::from_utf8_lossy(&ack));
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AE|J9"));
    assert_eq!(app.fhir.operations().queued_count("campus-east").await.unwrap(), 3);

    // The applier (started later, as on restart) writes them all, in arrival order.
    let applier = tokio::spawn(inbound.clone().run_applier());
    let started = std::time::Instant::now();
    while app.fhir.operations().queued_count("campus-east").await.unwrap() > 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the queue was not applied");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ids = app.search_ids("/fhir/Observation?code=http://loinc.org%7C2823-3&_sort=_lastUpdated").await;
    assert_eq!(ids.len(), 3, "each once");
    let mut values = Vec::new();
    for id in &ids {
        let o: Value = app.get(&format!("/fhir/Observation/{id}")).await.json().await.unwrap();
        values.push(o["valueQuantity"]["value"].as_f64().unwrap());
    }
    assert_eq!(values, [4.1, 4.4, 4.9], "in the order they arrived");
    let logged = app.fhir.operations().recent_messages(Some("accepted"), 10).await.unwrap();
    assert_eq!(logged.iter().filter(|m| m.channel == "mllp:journal").count(), 3);
    assert!(logged.iter().all(|m| m.ack.is_some() && m.summary.is_some()), "the AA and the outcome kept");

    // Another type waits for the queue, then is applied before its ACK.
    let (_, outcome) = inbound.receive(&oru("J4", "5.0"), None).await;
    assert_eq!(outcome, Outcome::Accepted);
    let adt = "MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261123090000||ADT^A08|J5|P|2.5.1\rPID|1||E300001^^^EAST^MR||李^思||19700101|M\r";
    let (ack, outcome) = inbound.receive(adt.as_bytes(), None).await;
    assert_eq!(outcome, Outcome::Accepted, "{}", String::from_utf8_lossy(&ack));
    assert_eq!(app.fhir.operations().queued_count("campus-east").await.unwrap(), 0, "the ORU before it is applied");
    let p = app.search_ids("/fhir/Patient?identifier=urn:lianyi:sid:mrn:campus-east%7CE300001").await;
    assert_eq!(p.len(), 1);
    let p: Value = app.get(&format!("/fhir/Patient/{}", p[0])).await.json().await.unwrap();
    assert_eq!(p["name"][0]["text"], "李思", "the ADT's update, applied at once");
    applier.abort();
}

/// The third-party corpus (`tests/hl7/corpus`: messages from the test suites of
/// python-hl7, hl7apy, HAPI, nHapi, hl7-dotnetcore, LinuxForHealth and Microsoft's
/// FHIR converter) through the listener's rules: every message of a type the hub
/// handles that carries a patient identifier (for ORU, also OBR and OBX) gets AA;
/// message types it does not handle get AR; nothing is answered without an MSA.
#[tokio::test]
async fn third_party_messages_are_accepted() {
    let app = spawn_app().await;
    let inbound = lianyi_interop::Inbound::new(app.fhir.clone(), "corpus", "campus-east", "+08:00");
    let dir = format!("{}/../../tests/hl7/corpus", env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(format!("{dir}/manifest.tsv")).unwrap();
    let mut failures = Vec::new();
    let (mut accepted, mut warned) = (0, 0);
    for row in manifest.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (file, kind, has_pid3, has_results) = (cols[0], cols[1], cols[3], cols[4]);
        let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
        let (ack, _) = inbound.receive(&bytes, None).await;
        let ack = String::from_utf8_lossy(&ack).to_string();
        // The ACK uses the message's own delimiters.
        let msa = ack.get(3..4).map(|field| format!("MSA{field}")).unwrap_or_default();
        let code = ack.split('\r').find_map(|s| s.strip_prefix(msa.as_str())).map(|m| m[..2].to_string());
        let handled = ["ADT", "ORU", "ORM", "OML", "SIU"].contains(&&kind[..3]);
        let expected = if !handled {
            Some("AR")
        } else if has_pid3 == "yes" && (!kind.starts_with("ORU") || has_results == "yes") {
            Some("AA")
        } else {
            None
        };
        match (&code, expected) {
            (None, _) => failures.push(format!("{file}: no MSA in {ack:?}")),
            (Some(c), Some(want)) if c != want => failures.push(format!("{file}: {c}, expected {want}: {ack:?}")),
            _ => {}
        }
        if code.as_deref() == Some("AA") {
            accepted += 1;
            if ack.contains("\rERR|") {
                warned += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{} of the corpus answered wrongly:\n{}", failures.len(), failures.join("\n"));
    assert!(accepted >= 60, "{accepted} accepted");
    assert!(warned > 10, "tolerances are reported as warnings ({warned})");
}
