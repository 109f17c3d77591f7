//! The demo's IT operations: a hospital group's configuration database — network,
//! servers, storage, databases, business systems, clinical services, printers and a
//! CT, related so that an impact walk from a core switch reaches HIS, the clinical
//! services and the campuses that stop — imported through the CMDB's own CSV import
//! as a hospital's IT team would load theirs; the support groups' engineers; and a
//! few faults phoned in to the service desk; a known error behind the printer faults;
//! the change board, a core-switch change waiting for its approval and a standard
//! change whose window overlaps it (a conflict on the change calendar).

use lianyi_ops::changes::{ChangeForm, Changes};
use lianyi_ops::cmdb::{Cmdb, CmdbError, Imported};
use lianyi_ops::desk::{Desk, DeskError, Report};
use lianyi_ops::problems::{Analysis, ProblemForm, Problems};
use lianyi_security::Caller;

const CSV: &str = include_str!("demo_cmdb.csv");

/// Loads the demo CMDB as `caller` (the demo task).
pub async fn load(cmdb: &Cmdb, caller: &Caller) -> Result<Imported, CmdbError> {
    cmdb.import_csv(caller, CSV).await
}

/// The support groups' members and a few tickets; returns the tickets' ids.
pub async fn desk(desk: &Desk, caller: &Caller) -> Result<Vec<i64>, DeskError> {
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
    let mut ids = Vec::new();
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
        ids.push(desk.report(caller, &r).await?);
    }
    Ok(ids)
}

/// The change board, two changes in a weekend's window and a problem behind the two
/// printer faults (`printer_tickets`); returns how many changes.
pub async fn changes(
    changes: &Changes,
    problems: &Problems,
    caller: &Caller,
    now_ms: i64,
    printer_tickets: [i64; 2],
) -> Result<usize, DeskError> {
    for class in ["normal", "emergency"] {
        changes.set_board(caller, class, "it.manager", true).await?;
    }
    // The Saturday after next, 22:00 to 02:00 (Beijing time).
    let day = (now_ms + 8 * 3_600_000).div_euclid(86_400_000);
    let saturday = day + 7 + (5 - (day + 3).rem_euclid(7)).rem_euclid(7);
    let date = |d: i64| lianyi_fhir::datetime::format_instant(d * 86_400_000)[..10].to_string();
    let requests = [
        ChangeForm {
            title: "更换西院区核心交换机电源模块（维保到期前）".into(),
            description: "S12500 双电源之一告警，更换故障电源模块并升级固件。".into(),
            class: "normal".into(),
            risk: "high".into(),
            backout_plan: "保留原电源模块与固件镜像；失败时装回原模块、回退固件并重启，约 30 分钟。".into(),
            window_start: format!("{} 22:00", date(saturday)),
            window_end: format!("{} 02:00", date(saturday + 1)),
            cis: vec!["SW-CORE-W".into()],
        },
        ChangeForm {
            title: "西院区三楼接入交换机端口整理".into(),
            description: "护士站新增两台终端，调整 VLAN。".into(),
            class: "standard".into(),
            risk: "low".into(),
            backout_plan: "恢复备份的交换机配置。".into(),
            window_start: format!("{} 23:00", date(saturday)),
            window_end: format!("{} 23:59", date(saturday)),
            cis: vec!["SW-W3F".into()],
        },
    ];
    for r in &requests {
        changes.request(caller, r).await?;
    }
    let problem = problems
        .open(
            caller,
            &ProblemForm {
                ticket: printer_tickets[0].to_string(),
                title: "护士站打印机反复卡纸、打印队列卡住".into(),
                ..Default::default()
            },
        )
        .await?;
    let card = problems.card(caller, problem).await?;
    problems.link(caller, problem, card.problem.version, &printer_tickets[1].to_string()).await?;
    let analysis = Analysis {
        root_cause: "打印机驱动版本与 Windows 更新不兼容，作业出错后打印队列停滞；搓纸轮老化导致卡纸。".into(),
        workaround: "清空打印队列并重启 Print Spooler 服务；更换搓纸轮前手动单张送纸。".into(),
        known_error: true,
    };
    problems.analyse(caller, problem, card.problem.version + 1, &analysis).await?;
    Ok(requests.len())
}
