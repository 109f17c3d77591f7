//! The demo's IT operations: a hospital group's configuration database — network,
//! servers, storage, databases, business systems, clinical services, printers and a
//! CT, related so that an impact walk from a core switch reaches HIS, the clinical
//! services and the campuses that stop — imported through the CMDB's own CSV import
//! as a hospital's IT team would load theirs; the support groups' engineers; and a
//! few faults phoned in to the service desk.

use lianyi_ops::cmdb::{Cmdb, CmdbError, Imported};
use lianyi_ops::desk::{Desk, DeskError, Report};
use lianyi_security::Caller;

const CSV: &str = include_str!("demo_cmdb.csv");

/// Loads the demo CMDB as `caller` (the demo task).
pub async fn load(cmdb: &Cmdb, caller: &Caller) -> Result<Imported, CmdbError> {
    cmdb.import_csv(caller, CSV).await
}

/// The support groups' members and a few tickets; returns how many tickets.
pub async fn desk(desk: &Desk, caller: &Caller) -> Result<usize, DeskError> {
    for group in ["desktop", "network", "application"] {
        desk.set_member(caller, group, "it.engineer", false).await?;
    }
    for group in lianyi_ops::cmdb::GROUPS {
        desk.set_member(caller, group, "it.manager", true).await?;
    }
    let calls = [
        (
            "西院区三楼护士站打印机卡纸，无法打印医嘱单",
            "printer",
            "PRN-W3-NS",
            "campus-west",
            "西院区住院楼三楼护士站",
            "2",
            "2",
            "护士 刘敏",
        ),
        (
            "东院区挂号窗口票据打印机不出票",
            "printer",
            "PRN-E-REG",
            "campus-east",
            "东院区门诊大厅 3 号窗口",
            "2",
            "1",
            "挂号员 王芳",
        ),
        ("PACS 调阅影像很慢", "software", "PACS", "campus-west", "西院区放射科", "2", "2", "放射科 孙杰"),
        ("新来医生需要开通 HIS 账号", "account", "HIS", "campus-south", "南院区内科", "3", "3", "南院区内科 秘书"),
    ];
    for (title, category, ci, campus, location, impact, urgency, who) in calls {
        let r = Report {
            title: title.into(),
            description: String::new(),
            category: category.into(),
            ci: ci.into(),
            campus: campus.into(),
            location: location.into(),
            impact: impact.into(),
            urgency: urgency.into(),
            caller_name: who.into(),
        };
        desk.report(caller, &r).await?;
    }
    Ok(calls.len())
}
