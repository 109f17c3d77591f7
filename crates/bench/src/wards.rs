//! `lianyi-bench wards`: the bed board and a nurse's task list with `--occupied`
//! (500) occupied beds across the three campuses. Starts `lianyi demo` (the real
//! binary), registers an API client per campus (the CLI, as an operator would), and
//! fills the demo's nine wards evenly with more beds and stays until that many stays
//! are in hospital — each stay as the inpatient service writes one (its number, its
//! ward and bed, a nursing level, the bed occupied) with two long-term orders verified
//! by a nurse (ceftriaxone qd, metformin tid), so a ward's task list has every
//! stay's doses. Then the demo's East internal-medicine nurse requests her ward's bed
//! board and today's task list N times each, one at a time, and a stay's page.
//! Times are measured by the client over loopback (HTTP included).

use std::time::{Duration, Instant};

use lianyi_inpatient::beds::{BedState, NursingLevel, location_entry, stay_system};
use lianyi_inpatient::orders::{MR_CATEGORY, VERIFIED_URL};
use serde_json::{Value, json};

use crate::pages::{DEMO_PASSWORD, Session, measure, start_demo};

const CAMPUSES: [&str; 3] = ["campus-east", "campus-west", "campus-south"];
const DEPARTMENTS: [&str; 3] = ["im", "sur", "ped"];
const COURSE: &str = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy";
const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn instant(ms: i64) -> String {
    lianyi_fhir::datetime::format_instant(ms)
}

/// A long-term order of the stay, verified by the ward.
fn order(
    id: &str,
    stay: &str,
    patient: &str,
    (drug, zh, dose, unit, route, freq, per_day): (&str, &str, u32, &str, &str, &str, u32),
    at: i64,
) -> Value {
    json!({"resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order",
        "category": [{"coding": [{"system": MR_CATEGORY, "code": "inpatient"}]}],
        "courseOfTherapyType": {"coding": [{"system": COURSE, "code": "continuous"}]},
        "medicationCodeableConcept": {"coding": [{"system": "urn:lianyi:drug", "code": drug}], "text": zh},
        "subject": {"reference": format!("Patient/{patient}")},
        "encounter": {"reference": format!("Encounter/{stay}")},
        "authoredOn": instant(at),
        "requester": {"display": "压测医生"},
        "dosageInstruction": [{"text": format!("{dose} {unit} {route} {freq}"),
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}, "code": {"text": freq}},
            "route": {"text": route},
            "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}]}],
        "extension": [{"url": VERIFIED_URL, "extension": [{"url": "by", "valueString": "user:nurse.bench"},
                                                          {"url": "at", "valueDateTime": instant(at + 600_000)}]}]})
}

/// The stays in hospital a campus's client sees.
async fn in_hospital(http: &reqwest::Client, base: &str, bearer: &str) -> usize {
    let url = format!(
        "{base}/fhir/Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode%7CIMP&status=arrived,in-progress&_summary=count"
    );
    let r: Value = http.get(url).header("authorization", bearer).send().await.unwrap().json().await.unwrap();
    r["total"].as_u64().unwrap_or_default() as usize
}

pub async fn run(raw: Vec<String>) {
    let (mut occupied, mut n, mut out) = (500usize, 200usize, "bench-wards.json".to_string());
    let mut it = raw.into_iter();
    while let Some(k) = it.next() {
        match k.as_str() {
            "--occupied" => occupied = it.next().and_then(|v| v.parse().ok()).expect("--occupied N"),
            "--requests" => n = it.next().and_then(|v| v.parse().ok()).expect("--requests N"),
            "--out" => out = it.next().expect("--out FILE"),
            _ => {
                println!("lianyi-bench wards [--occupied N] [--requests N] [--out FILE]");
                return;
            }
        }
    }
    let (_demo, base, dir) = start_demo("wards", &[], Duration::from_secs(180)).await;
    let http = crate::http_client();
    let mut bearers = Vec::new();
    for campus in CAMPUSES {
        bearers.push(crate::pages::client_bearer(&base, &dir, &format!("bench-{campus}"), campus).await);
    }
    let mut before = 0;
    for b in &bearers {
        before += in_hospital(&http, &base, b).await;
    }
    // The stays to add, spread over the nine wards.
    let more = occupied.saturating_sub(before);
    let t = Instant::now();
    let now = now_ms();
    let mut added = 0;
    for (c, campus) in CAMPUSES.iter().enumerate() {
        for (d, dept) in DEPARTMENTS.iter().enumerate() {
            let w = c * DEPARTMENTS.len() + d;
            let here = more / 9 + usize::from(w < more % 9);
            let ward = format!("ward-{campus}-{dept}");
            let mut entries = Vec::new();
            for k in 0..here {
                let i = added + k;
                let (bed, patient, stay) =
                    (format!("bench-bed-{ward}-{k}"), format!("bench-pat-{i}"), format!("bench-stay-{i}"));
                let admitted = now - (i as i64 % 12) * DAY_MS - 3_600_000;
                let bed_name = format!("{}床", 21 + k);
                entries.push(json!({"resourceType": "Location", "id": bed, "status": "active", "mode": "instance",
                    "name": bed_name, "alias": [format!("Bed {}", 21 + k)],
                    "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]},
                    "operationalStatus": BedState::Occupied.coding(),
                    "partOf": {"reference": format!("Location/{ward}")}}));
                entries.push(json!({"resourceType": "Patient", "id": patient, "active": true,
                    "gender": if i % 2 == 0 { "female" } else { "male" }, "birthDate": format!("19{:02}-0{}-1{}", 40 + i % 50, 1 + i % 9, i % 10),
                    "name": [{"text": format!("压测患者{i}")}],
                    "identifier": [{"system": lianyi_services::identifiers::mrn_system(campus), "value": format!("B{i:07}")}]}));
                let mut ward_entry = location_entry(&ward, "病区", "wa", "active");
                ward_entry["period"] = json!({"start": instant(admitted)});
                let mut bed_entry = location_entry(&bed, &bed_name, "bd", "active");
                bed_entry["period"] = json!({"start": instant(admitted)});
                let level = [NursingLevel::First, NursingLevel::Second, NursingLevel::Third][i % 3];
                entries.push(json!({"resourceType": "Encounter", "id": stay, "status": "in-progress",
                    "identifier": [{"use": "official", "system": stay_system(campus), "value": format!("ZB{i:07}")}],
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                    "subject": {"reference": format!("Patient/{patient}")},
                    "period": {"start": instant(admitted)},
                    "serviceProvider": {"reference": format!("Organization/{campus}-{dept}")},
                    "location": [ward_entry, bed_entry],
                    "extension": [level.extension()]}));
                entries.push(order(
                    &format!("bench-mr-{i}-a"),
                    &stay,
                    &patient,
                    ("CTRX1G", "注射用头孢曲松钠 1 g", 2, "g", "ivgtt", "qd", 1),
                    admitted,
                ));
                entries.push(order(
                    &format!("bench-mr-{i}-b"),
                    &stay,
                    &patient,
                    ("METF500", "二甲双胍片 500 mg", 500, "mg", "po", "tid", 3),
                    admitted,
                ));
            }
            added += here;
            for chunk in entries.chunks(100) {
                let bundle: Vec<Value> = chunk
                    .iter()
                    .map(|r| {
                        let url = format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
                        json!({"resource": r, "request": {"method": "PUT", "url": url}})
                    })
                    .collect();
                let r = http
                    .post(format!("{base}/fhir"))
                    .header("authorization", &bearers[c])
                    .header("content-type", "application/fhir+json")
                    .header("prefer", "return=minimal")
                    .body(json!({"resourceType": "Bundle", "type": "transaction", "entry": bundle}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            }
        }
    }
    let mut total = 0;
    for b in &bearers {
        total += in_hospital(&http, &base, b).await;
    }
    println!(
        "Ward benchmark on the demo (SQLite): {total} stays in hospital across three campuses ({before} from the demo, \
         {added} added in {:.1} s), {n} requests per page, one at a time",
        t.elapsed().as_secs_f64()
    );

    let (mut nurse, _) = Session::log_in(&base, "nurse.east", DEMO_PASSWORD).await;
    let today = lianyi_fhir::datetime::format_instant(now_ms() + 8 * 3_600_000)[..10].to_string();
    let ward = "ward-campus-east-im";
    let (_, _, board) = nurse.get(&format!("/ward?ward={ward}")).await;
    let beds = board.matches("class=\"bed ").count();
    let (_, _, tasks) = nurse.get(&format!("/ward/tasks?ward={ward}&date={today}")).await;
    let doses = tasks.matches("class=\"dose ").count();
    let stay = "bench-stay-0";
    let mut results = Vec::new();
    for (name, path) in [
        ("/ward (bed board)", format!("/ward?ward={ward}")),
        ("/ward/tasks (task list)", format!("/ward/tasks?ward={ward}&date={today}")),
        ("/ward/stays/{id}", format!("/ward/stays/{stay}")),
    ] {
        let (p50, p95, p99) = measure(&mut nurse, &path, n).await;
        println!("  {name:<24} p50 {p50:>6.2} ms   p95 {p95:>6.2} ms   p99 {p99:>6.2} ms");
        results.push(json!({"page": name, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }
    println!("  the ward's board shows {beds} beds; its task list {doses} doses today");
    let report = json!({"in_hospital": total, "requests_per_page": n, "ward_beds": beds, "ward_doses_today": doses, "pages": results});
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("  JSON: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
