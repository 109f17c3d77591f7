//! The demo's staff records (人事): licences for East internal medicine's people — Li
//! Ming's practising certificate expiring within the month, Zhao Na's nurse
//! certificate lapsed a few days ago, the others valid — so the reminders have
//! something to show.

use lianyi_manage::staff::{LicenceForm, StaffService};
use lianyi_security::{Caller, SystemTask};

use crate::CliError;

/// (practitioner, kind, number, issued on, days from today to expiry or none).
const LICENCES: [(&str, &str, &str, &str, Option<i64>); 5] = [
    ("prac-001", "physician-qualification", "141110000100001", "2012-09-01", None),
    ("prac-001", "physician-practising", "110110000100001", "2021-12-20", Some(25)),
    ("prac-004", "physician-practising", "110110000100004", "2023-03-01", Some(800)),
    ("prac-019", "nurse-practising", "110120000100019", "2021-11-30", Some(-4)),
    ("prac-007", "physician-practising", "110110000100007", "2024-06-15", Some(1300)),
];

/// Adds the demo's licences; returns how many.
pub(crate) async fn load(staff: &StaffService, now: i64) -> Result<usize, CliError> {
    let system = Caller::task(SystemTask::Demo);
    for (practitioner, kind, number, issued, expires) in LICENCES {
        let form = LicenceForm {
            kind: kind.into(),
            number: number.into(),
            issuer: "北京市卫生健康委员会".into(),
            issued_on: issued.into(),
            expires_on: expires
                .map(|d| lianyi_clinical::scheduling::local_date(now + d * 86_400_000))
                .unwrap_or_default(),
        };
        staff
            .add_licence(&system, practitioner, &form)
            .await
            .map_err(|e| CliError::Usage(format!("demo staff: {e}")))?;
    }
    Ok(LICENCES.len())
}
