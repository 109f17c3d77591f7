//! The demo's wards: 20 beds in each of the nine wards; at each campus's internal
//! medicine and surgery wards, patients seen in clinic are admitted the way the
//! hospital admits them — their doctor's admission order (住院证), the admission
//! office registering the stay on a bed and taking its deposit (预交金), the ward
//! receiving them. Each patient on a ward has a nursing order, a long-term infusion and
//! a one-time test, verified by the ward, and the morning's vital signs on the chart;
//! one is discharged with a summary and settled. At East internal medicine one
//! patient is on the way to the ward, one more order waits at the admission office,
//! and a bed is closed. East's wards send tomorrow's round to the inpatient pharmacy;
//! West's wards work by their own rules (a 09:00 round, a second nurse's check).

use std::collections::HashSet;

use lianyi_inpatient::beds::BedStep;
use lianyi_inpatient::stays::{Inpatient, OrderForm};
use lianyi_security::{Caller, SystemTask};
use lianyi_services::demo::DemoResource;

use crate::CliError;

/// Admitting diagnoses, in turn.
const REASONS: [&str; 6] = [
    "社区获得性肺炎",
    "2型糖尿病血糖控制不佳",
    "急性阑尾炎",
    "胆囊结石伴急性胆囊炎",
    "高血压3级",
    "慢性阻塞性肺疾病急性加重",
];

/// What the demo admitted.
pub(crate) struct Wards {
    pub admitted: usize,
    /// Admitted, not yet received on the ward.
    pub arriving: usize,
    /// Orders waiting at the admission office.
    pub waiting: usize,
    /// Discharged and settled.
    pub discharged: usize,
    /// Lines of tomorrow's rounds waiting at East's inpatient pharmacy.
    pub round_lines: usize,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("demo wards ({what}): {e}"))
}

pub(crate) async fn load(
    inpatient: &Inpatient,
    deposits: &lianyi_billing::deposits::Deposits,
    directory: &[DemoResource],
) -> Result<Wards, CliError> {
    let mut used = HashSet::new();
    let mut out = Wards { admitted: 0, arriving: 0, waiting: 0, discharged: 0, round_lines: 0 };
    let mut reason = REASONS.iter().cycle();
    for (cid, ..) in lianyi_services::demo::CAMPUSES {
        // What the demo writes at a campus belongs to it.
        let campus = lianyi_security::CampusId::parse(cid).map_err(|e| failed("campus", e))?;
        let caller = Caller::task_at(SystemTask::Demo, campus);
        for dept in ["im", "sur"] {
            let east_im = cid == "campus-east" && dept == "im";
            let (stays, extra) = if east_im { (8, 1) } else { (4, 0) };
            // Outpatient visits at this department, one per patient.
            let provider = format!("Organization/{cid}-{dept}");
            let visits: Vec<(String, String)> = directory
                .iter()
                .map(|r| &r.resource)
                .filter(|e| e["resourceType"] == "Encounter" && e["class"]["code"] == "AMB")
                .filter(|e| e["serviceProvider"]["reference"] == provider.as_str())
                .filter_map(|e| {
                    let patient = e["subject"]["reference"].as_str()?.to_string();
                    Some((e["id"].as_str()?.to_string(), patient))
                })
                .collect();
            let mut n: usize = 0;
            for (visit, patient) in visits {
                if n == stays + extra {
                    break;
                }
                if !used.insert(patient) {
                    continue;
                }
                let form = OrderForm {
                    ward: format!("ward-{cid}-{dept}"),
                    nursing: if n.is_multiple_of(3) { "1" } else { "2" }.into(),
                    reason: reason.next().copied().unwrap_or_default().into(),
                    note: String::new(),
                };
                let order =
                    inpatient.order_admission(&caller, &visit, &form, "").await.map_err(|e| failed("order", e))?;
                n += 1;
                if n > stays {
                    out.waiting += 1;
                    continue;
                }
                let bed = format!("bed-{cid}-{dept}-{n:02}");
                let admitted = inpatient.admit(&caller, &order, &bed).await.map_err(|e| failed("admit", e))?;
                out.admitted += 1;
                let deposit = lianyi_billing::deposits::DepositForm {
                    campus: cid.to_string(),
                    stay: admitted.stay.clone(),
                    amount: if n.is_multiple_of(2) { "5000" } else { "3000" }.into(),
                    method: "cash".into(),
                    reference: String::new(),
                };
                deposits.take(&caller, &deposit).await.map_err(|e| failed("deposit", e))?;
                if east_im && n == stays {
                    out.arriving += 1;
                } else {
                    inpatient.receive(&caller, &admitted.stay).await.map_err(|e| failed("receive", e))?;
                    on_the_ward(inpatient, &caller, &admitted.stay, n).await?;
                    if dept == "sur" && n == 1 {
                        leave(inpatient, deposits, &caller, cid, &admitted.stay).await?;
                        out.discharged += 1;
                    }
                }
            }
            if east_im {
                let last = format!("bed-{cid}-{dept}-{:02}", lianyi_services::demo::BEDS_PER_WARD);
                inpatient.bed_step(&caller, &last, BedStep::Close).await.map_err(|e| failed("close", e))?;
            }
        }
    }
    // East's wards send tomorrow's round to the inpatient pharmacy (病区摆药).
    let east = Caller::task_at(
        SystemTask::Demo,
        lianyi_security::CampusId::parse("campus-east").map_err(|e| failed("campus", e))?,
    );
    let tomorrow = inpatient.now_ms() + 86_400_000;
    for dept in ["im", "sur"] {
        out.round_lines += inpatient
            .send_round(&east, &format!("ward-campus-east-{dept}"), tomorrow)
            .await
            .map_err(|e| failed("round", e))?;
    }
    // West's wards work by their own rules (set after the demo's orders were verified):
    // the once-daily round at 09:00, and a second nurse checks every new order.
    let west = Caller::task_at(
        SystemTask::Demo,
        lianyi_security::CampusId::parse("campus-west").map_err(|e| failed("campus", e))?,
    );
    let rules = lianyi_inpatient::rules::RulesForm { rounds: "qd=09:00".into(), second_check: true };
    inpatient.set_rules(&west, "campus-west", &rules).await.map_err(|e| failed("rules", e))?;
    Ok(out)
}

/// A patient's first orders on the ward, verified, and the morning's readings.
async fn on_the_ward(inpatient: &Inpatient, caller: &Caller, stay: &str, n: usize) -> Result<(), CliError> {
    use lianyi_inpatient::orders::OrderForm as Ward;
    let orders = [
        Ward {
            kind: "nursing".into(),
            term: "long".into(),
            frequency: "qd".into(),
            text: "二级护理".into(),
            ..Ward::default()
        },
        Ward {
            kind: "medication".into(),
            term: "long".into(),
            drug: if n.is_multiple_of(2) { "LEVO500I" } else { "CTRX1G" }.into(),
            dose: if n.is_multiple_of(2) { "500" } else { "2" }.into(),
            route: "ivgtt".into(),
            frequency: "qd".into(),
            ..Ward::default()
        },
        Ward {
            kind: "lab".into(),
            term: "once".into(),
            frequency: "st".into(),
            text: "血常规".into(),
            ..Ward::default()
        },
    ];
    for o in &orders {
        let signed = inpatient.sign_order(caller, stay, o, "").await.map_err(|e| failed("order", e))?;
        if let lianyi_inpatient::orders::Signed::Done { order, .. } = signed {
            inpatient.verify_order(caller, stay, &order).await.map_err(|e| failed("verify", e))?;
        }
    }
    let vitals = lianyi_inpatient::vitals::VitalsForm {
        temperature: format!("{:.1}", 36.5 + (n % 4) as f64 * 0.6),
        pulse: (72 + n * 4).to_string(),
        respiration: "18".into(),
        systolic: "126".into(),
        diastolic: "80".into(),
    };
    inpatient.record_vitals(caller, stay, &vitals).await.map_err(|e| failed("vitals", e))
}

/// Discharges a stay with its summary and settles it.
async fn leave(
    inpatient: &Inpatient,
    deposits: &lianyi_billing::deposits::Deposits,
    caller: &Caller,
    campus: &str,
    stay: &str,
) -> Result<(), CliError> {
    let summary = lianyi_inpatient::discharge::DischargeForm {
        course: "入院后完善检查，予抗感染及对症治疗，症状缓解。".into(),
        diagnosis: "急性阑尾炎".into(),
        condition: "一般情况好，切口愈合良好".into(),
        advice: "注意休息，1周后门诊复查".into(),
        disposition: "home".into(),
    };
    inpatient.discharge(caller, stay, &summary, "").await.map_err(|e| failed("discharge", e))?;
    let cashier = lianyi_billing::cashier::Cashier::new(inpatient.fhir());
    let form = lianyi_billing::deposits::DepositForm {
        campus: campus.to_string(),
        stay: stay.to_string(),
        method: "cash".into(),
        ..Default::default()
    };
    deposits.settle(caller, &cashier, &form).await.map_err(|e| failed("settle", e))?;
    Ok(())
}
