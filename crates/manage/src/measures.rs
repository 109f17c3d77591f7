//! What a record counts for on the dashboards (pure): an outpatient visit, the wait
//! from check-in to call, a booked appointment and whether the patient came, a
//! critical value's minutes to acknowledgement, an imaging study, a laboratory report,
//! a prescription, a laboratory or imaging request, a report, and a payment's revenue
//! and drug share. Each figure has its Beijing day, campus and department, and the
//! person the record names (for the performance sheets).

use lianyi_clinical::orders::USER_SYSTEM;
use lianyi_clinical::scheduling::local_date;
use lianyi_store::figures::Figure;
use serde_json::Value;

/// Outpatient visits (checked in).
pub const VISITS: &str = "visits";
/// Minutes from check-in to the doctor's call, over the visits called.
pub const WAIT: &str = "wait";
/// Appointments booked (not cancelled).
pub const BOOKED: &str = "booked";
/// Booked appointments the patient came to.
pub const SHOWN: &str = "shown";
/// Revenue in fen, net of refunds.
pub const REVENUE: &str = "revenue";
/// The drugs' part of the revenue, in fen (for 药占比).
pub const DRUGS: &str = "drugs";
/// Minutes from a critical value to its acknowledgement, over those acknowledged.
pub const CRITICAL: &str = "critical";
/// Imaging studies (the imaging devices' use).
pub const STUDIES: &str = "studies";
/// Laboratory reports (the analysers' use).
pub const TESTS: &str = "tests";
/// Prescriptions written (the doctors' workload with the visits).
pub const PRESCRIPTIONS: &str = "prescriptions";
/// Laboratory and imaging requests placed.
pub const REQUESTS: &str = "requests";
/// Reports issued (laboratory and imaging).
pub const RESULTS: &str = "results";

/// The resource types whose records count.
pub const TYPES: [&str; 8] = [
    "Encounter",
    "Appointment",
    "Task",
    "ImagingStudy",
    "DiagnosticReport",
    "MedicationRequest",
    "ServiceRequest",
    "Invoice",
];

/// Who a reference names as a person: the reference itself (`Practitioner/7`,
/// `PractitionerRole/3`), else the account its identifier or display gives
/// (`user:dr.wang`); `""` for none.
pub fn person_of(r: &Value) -> String {
    if let Some(reference) = r["reference"].as_str().filter(|s| s.contains('/')) {
        return reference.to_string();
    }
    if let Some(user) = r["identifier"]["value"].as_str().filter(|_| r["identifier"]["system"] == USER_SYSTEM) {
        return format!("user:{user}");
    }
    r["display"].as_str().filter(|d| d.starts_with("user:")).unwrap_or_default().to_string()
}

/// A reference whose department is wanted (a PractitionerRole's organization, an
/// Encounter's service provider).
pub fn department_lookup(rtype: &str, body: &Value) -> Option<String> {
    let reference = match rtype {
        "Appointment" => body["participant"].as_array()?.iter().find_map(|p| {
            p["actor"]["reference"].as_str().filter(|r| r.starts_with("PractitionerRole/")).map(str::to_string)
        }),
        "Task" | "MedicationRequest" | "ServiceRequest" => body["encounter"]["reference"].as_str().map(str::to_string),
        _ => None,
    };
    reference.filter(|r| r.split_once('/').is_some_and(|(_, id)| !id.is_empty()))
}

/// The department a looked-up resource gives (see [`department_lookup`]).
pub fn department_given(rtype: &str, body: &Value) -> Option<String> {
    let r = match rtype {
        "PractitionerRole" => body["organization"]["reference"].as_str(),
        "Encounter" => body["serviceProvider"]["reference"].as_str(),
        _ => None,
    }?;
    r.strip_prefix("Organization/").map(str::to_string)
}

/// The figures of one record of `campus`; `department` is what the record's lookup
/// (see [`department_lookup`]) found. Payments count through [`payment_figures`].
pub fn figures_of(rtype: &str, campus: &str, body: &Value, department: Option<&str>) -> Vec<Figure> {
    let status = body["status"].as_str().unwrap_or_default();
    let figure = |measure: &str, day: String, dept: &str, total: i64| Figure {
        campus: campus.to_string(),
        department: dept.to_string(),
        measure: measure.to_string(),
        day,
        total,
        n: 1,
        person: String::new(),
    };
    let by = |person: &Value, f: Figure| Figure { person: person_of(person), ..f };
    let looked_up = department.unwrap_or_default();
    let mut out = Vec::new();
    match rtype {
        "Encounter" => {
            let outpatient = body["class"]["code"] == "AMB";
            let came = matches!(status, "arrived" | "in-progress" | "onleave" | "finished");
            let Some(start) = body["period"]["start"].as_str().and_then(instant_ms) else { return out };
            if !outpatient || !came {
                return out;
            }
            let dept = body["serviceProvider"]["reference"].as_str().unwrap_or_default();
            let dept = dept.strip_prefix("Organization/").unwrap_or_default();
            let day = local_date(start);
            let doctor = body["participant"].as_array().and_then(|ps| ps.first()).map(|p| &p["individual"]);
            out.push(by(doctor.unwrap_or(&Value::Null), figure(VISITS, day.clone(), dept, 1)));
            let waited = body["statusHistory"].as_array().into_iter().flatten().find_map(|h| {
                let p = &h["period"];
                (h["status"] == "arrived").then_some(())?;
                Some(instant_ms(p["end"].as_str()?)? - instant_ms(p["start"].as_str()?)?)
            });
            if let Some(ms) = waited.filter(|ms| *ms >= 0) {
                out.push(figure(WAIT, day, dept, ms / 60_000));
            }
        }
        "Appointment" => {
            if matches!(status, "proposed" | "pending" | "cancelled" | "entered-in-error" | "waitlist" | "") {
                return out;
            }
            let Some(start) = body["start"].as_str().and_then(instant_ms) else { return out };
            let day = local_date(start);
            out.push(figure(BOOKED, day.clone(), looked_up, 1));
            if matches!(status, "arrived" | "checked-in" | "fulfilled") {
                out.push(figure(SHOWN, day, looked_up, 1));
            }
        }
        "Task" => {
            let critical =
                body["code"]["coding"].as_array().into_iter().flatten().any(|c| c["code"] == "critical-value");
            let authored = body["authoredOn"].as_str().and_then(instant_ms);
            let done = body["executionPeriod"]["end"].as_str().and_then(instant_ms);
            if let (true, Some(a), Some(d)) = (critical && status == "completed", authored, done) {
                out.push(by(&body["owner"], figure(CRITICAL, local_date(a), looked_up, (d - a).max(0) / 60_000)));
            }
        }
        "ImagingStudy" => {
            if let Some(at) = body["started"].as_str().and_then(instant_ms).filter(|_| status != "entered-in-error") {
                out.push(figure(STUDIES, local_date(at), "", 1));
            }
        }
        "DiagnosticReport" => {
            let lab = body["category"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["coding"].as_array().into_iter().flatten().any(|x| x["code"] == "LAB"));
            let at = body["issued"].as_str().or(body["effectiveDateTime"].as_str()).and_then(instant_ms);
            let issued = matches!(status, "final" | "amended" | "corrected");
            if let (true, Some(at)) = (issued, at) {
                if lab {
                    out.push(figure(TESTS, local_date(at), "", 1));
                }
                let performer = body["performer"].as_array().and_then(|ps| ps.first()).unwrap_or(&Value::Null);
                out.push(by(performer, figure(RESULTS, local_date(at), "", 1)));
            }
        }
        "MedicationRequest" => {
            let at = body["authoredOn"].as_str().and_then(instant_ms);
            if let (true, Some(at)) = (matches!(status, "active" | "completed"), at) {
                out.push(by(&body["requester"], figure(PRESCRIPTIONS, local_date(at), looked_up, 1)));
            }
        }
        "ServiceRequest" => {
            let at = body["authoredOn"].as_str().and_then(instant_ms);
            if let (true, Some(at)) = (matches!(status, "active" | "completed"), at) {
                out.push(by(&body["requester"], figure(REQUESTS, local_date(at), looked_up, 1)));
            }
        }
        _ => {}
    }
    out
}

/// One charge of a payment: its campus, department, Beijing day, category and amount
/// (negative when refunded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paid {
    pub campus: String,
    pub department: String,
    pub day: String,
    pub category: String,
    pub amount_fen: i64,
}

/// A payment's revenue and its drugs' part, by day and department.
pub fn payment_figures(lines: &[Paid]) -> Vec<Figure> {
    let mut out: Vec<Figure> = Vec::new();
    for l in lines {
        let drug = l.category.ends_with("-drug");
        for (measure, counts) in [(REVENUE, true), (DRUGS, drug)] {
            if !counts {
                continue;
            }
            match out.iter_mut().find(|f| {
                f.measure == measure && f.day == l.day && f.department == l.department && f.campus == l.campus
            }) {
                Some(f) => {
                    f.total += l.amount_fen;
                    f.n += 1;
                }
                None => out.push(Figure {
                    campus: l.campus.clone(),
                    department: l.department.clone(),
                    measure: measure.to_string(),
                    day: l.day.clone(),
                    total: l.amount_fen,
                    n: 1,
                    person: String::new(),
                }),
            }
        }
    }
    out
}

fn instant_ms(s: &str) -> Option<i64> {
    lianyi_fhir::datetime::parse_range(s).map(|r| r.low)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn only(figures: &[Figure]) -> Vec<(&str, &str, &str, i64)> {
        figures.iter().map(|f| (f.measure.as_str(), f.day.as_str(), f.department.as_str(), f.total)).collect()
    }

    #[test]
    fn a_called_visit_counts_with_its_wait() {
        let e = json!({"resourceType": "Encounter", "status": "in-progress", "class": {"code": "AMB"},
            "period": {"start": "2026-12-07T08:05:00+08:00"},
            "statusHistory": [{"status": "arrived", "period": {"start": "2026-12-07T08:05:00+08:00", "end": "2026-12-07T08:47:30+08:00"}}],
            "serviceProvider": {"reference": "Organization/dept-1"}});
        assert_eq!(
            only(&figures_of("Encounter", "east", &e, None)),
            [(VISITS, "2026-12-07", "dept-1", 1), (WAIT, "2026-12-07", "dept-1", 42)]
        );
        // Beijing's day: 23:30 UTC on the 6th is the 7th in Beijing.
        let late = json!({"status": "arrived", "class": {"code": "AMB"}, "period": {"start": "2026-12-06T23:30:00Z"}});
        assert_eq!(only(&figures_of("Encounter", "east", &late, None)), [(VISITS, "2026-12-07", "", 1)]);
        let planned =
            json!({"status": "planned", "class": {"code": "AMB"}, "period": {"start": "2026-12-07T08:00:00+08:00"}});
        assert!(figures_of("Encounter", "east", &planned, None).is_empty(), "not come yet");
        let inpatient =
            json!({"status": "finished", "class": {"code": "IMP"}, "period": {"start": "2026-12-07T08:00:00+08:00"}});
        assert!(figures_of("Encounter", "east", &inpatient, None).is_empty(), "not an outpatient visit");
    }

    #[test]
    fn appointments_count_as_booked_and_shown() {
        let a = |status: &str| json!({"status": status, "start": "2026-12-08T09:00:00+08:00"});
        assert_eq!(only(&figures_of("Appointment", "east", &a("booked"), Some("d"))), [(BOOKED, "2026-12-08", "d", 1)]);
        assert_eq!(
            only(&figures_of("Appointment", "east", &a("fulfilled"), Some("d"))),
            [(BOOKED, "2026-12-08", "d", 1), (SHOWN, "2026-12-08", "d", 1)]
        );
        assert_eq!(only(&figures_of("Appointment", "east", &a("noshow"), None)), [(BOOKED, "2026-12-08", "", 1)]);
        assert!(figures_of("Appointment", "east", &a("cancelled"), None).is_empty());
        let role = json!({"participant": [{"actor": {"reference": "Patient/p"}}, {"actor": {"reference": "PractitionerRole/r9"}}]});
        assert_eq!(department_lookup("Appointment", &role).as_deref(), Some("PractitionerRole/r9"));
        let pr = json!({"organization": {"reference": "Organization/dept-2"}});
        assert_eq!(department_given("PractitionerRole", &pr).as_deref(), Some("dept-2"));
    }

    #[test]
    fn a_critical_value_counts_once_acknowledged() {
        let t = |status: &str, end: Option<&str>| {
            let mut t = json!({"status": status, "code": {"coding": [{"code": "critical-value"}]},
                "authoredOn": "2026-12-07T10:00:00+08:00", "encounter": {"reference": "Encounter/e1"}});
            if let Some(e) = end {
                t["executionPeriod"] = json!({"start": "2026-12-07T10:00:00+08:00", "end": e});
            }
            t
        };
        assert!(figures_of("Task", "east", &t("requested", None), None).is_empty());
        assert_eq!(
            only(&figures_of("Task", "east", &t("completed", Some("2026-12-07T10:07:59+08:00")), Some("d"))),
            [(CRITICAL, "2026-12-07", "d", 7)]
        );
        assert_eq!(department_lookup("Task", &t("requested", None)).as_deref(), Some("Encounter/e1"));
    }

    #[test]
    fn payments_sum_revenue_and_drugs_by_day_and_department() {
        let paid = |dept: &str, category: &str, fen: i64| Paid {
            campus: "east".into(),
            department: dept.into(),
            day: "2026-12-07".into(),
            category: category.into(),
            amount_fen: fen,
        };
        let lines = [paid("d", "western-drug", 1250), paid("d", "registration", 500), paid("d", "herbal-drug", 300)];
        assert_eq!(
            only(&payment_figures(&lines)),
            [(REVENUE, "2026-12-07", "d", 2050), (DRUGS, "2026-12-07", "d", 1550)]
        );
        let refund = [paid("d", "western-drug", -1250)];
        assert_eq!(
            only(&payment_figures(&refund)),
            [(REVENUE, "2026-12-07", "d", -1250), (DRUGS, "2026-12-07", "d", -1250)]
        );
    }
}
