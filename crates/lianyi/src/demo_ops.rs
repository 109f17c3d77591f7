//! The demo's IT operations: a hospital group's configuration database — network,
//! servers, storage, databases, business systems, clinical services, printers and a
//! CT, related so that an impact walk from a core switch reaches HIS, the clinical
//! services and the campuses that stop — imported through the CMDB's own CSV import
//! as a hospital's IT team would load theirs; the support groups' engineers; a
//! few faults phoned in to the service desk; a known error behind the printer faults;
//! the change board, a core-switch change waiting for its approval and a standard
//! change whose window overlaps it (a conflict on the change calendar); and the
//! knowledge base's articles.

use lianyi_ops::changes::{ChangeForm, Changes};
use lianyi_ops::cmdb::{Cmdb, CmdbError, Imported};
use lianyi_ops::desk::{Desk, DeskError, Report};
use lianyi_ops::kb::{ArticleForm, Kb, KbError, Source};
use lianyi_ops::monitor::{Monitor, MonitorError, NewProbe};
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

/// A fault phoned in that the desk took and resolved (the knowledge base writes it
/// up); returns its ticket.
pub async fn resolved_call(desk: &Desk, caller: &Caller) -> Result<i64, DeskError> {
    let call = Report {
        title: "东院区挂号窗口票据打印机打印内容错位".into(),
        description: "票据上的字打到了边缘外，患者姓名只打出一半".into(),
        category: "printer".into(),
        ci: "PRN-E-REG".into(),
        campus: "campus-east".into(),
        location: "东院区门诊大厅 3 号窗口".into(),
        impact: "3".into(),
        urgency: "2".into(),
        caller_name: "挂号员 李娜".into(),
    };
    let ticket = desk.report(caller, &call).await?;
    desk.take(caller, ticket, 1).await?;
    desk.resolve(
        caller,
        ticket,
        2,
        "票据纸换成新规格后，驱动里的纸张尺寸没改；改好尺寸并调整进纸位置后打印正常。",
        "25",
    )
    .await?;
    Ok(ticket)
}

/// The knowledge base: articles on the faults a hospital's desk sees most (in Chinese
/// with the English names engineers use), one written in one step from the resolved
/// ticket `resolved`, and one edited once (two versions). Returns how many articles.
pub async fn kb(kb: &Kb, caller: &Caller, resolved: i64) -> Result<usize, KbError> {
    let articles = [
        (
            "打印机无法打印，任务卡在队列中",
            "护士站打印机显示在线，但打印任务一直排队，医嘱单打不出来；重启打印机无效。",
            "电脑上的 Print Spooler 服务卡住，队列里有一个损坏的任务挡住了后面的任务；少数情况是驱动与打印机固件不匹配。",
            "1. 打开“服务”，停止 Print Spooler；\n2. 删除 C:\\Windows\\System32\\spool\\PRINTERS 下的文件；\n3. 启动 Print Spooler，重新打印；\n4. 仍不行时卸载驱动，安装厂家网站的驱动（不要用系统自带的通用驱动）。",
            "printer",
        ),
        (
            "HIS 登录慢（早高峰）",
            "早上 8 点前后门诊医生登录 HIS 要等 30 秒以上，其他时间正常。",
            "大量终端同时登录，域控认证和 HIS 应用服务器的会话初始化排队；部分终端的 DNS 还指向已下线的旧服务器，要等超时才换下一个。",
            "检查终端 DNS 设置（只保留 10.0.0.10 和 10.0.0.11）；在 HIS 应用服务器上确认连接池上限；自助机改为 7:30 前错峰启动。",
            "business-system",
        ),
        (
            "医保接口超时",
            "收费处结算时提示“医保接口调用超时”，重试几次才成功。",
            "医保前置机到医保中心的专线拥塞，或前置机 CPU 占满。",
            "在前置机上 ping 医保中心地址看是否丢包；查看前置机服务日志里的 timeout 记录；联系运营商检查专线。紧急时改为窗口手工登记，事后补传。",
            "interface",
        ),
        (
            "PACS 图像调阅慢",
            "医生工作站打开 CT 影像要等一分钟以上，同一时间别的科室正常。",
            "工作站的 PACS 客户端连到了其他院区的节点，影像走院区间的广域网链路；或工作站网卡只协商到百兆。",
            "把 PACS 客户端的节点改为本院区缓存服务器；检查交换机端口和网卡是否为千兆全双工；大批历史影像提前预取。",
            "business-system",
        ),
        (
            "腕带打印机缺纸或打印空白",
            "入院登记打印腕带时出纸空白，或提示缺纸。",
            "腕带卷用完，或热敏腕带装反（热敏面朝下）。",
            "更换腕带卷，热敏面朝向打印头；长按进纸键校准标签间隙；打印测试页确认。",
            "printer",
        ),
        (
            "网络断开：诊室几台电脑同时无法上网",
            "同一诊室的几台电脑同时断网，右下角显示网络已断开，HIS 和 PACS 都打不开。",
            "接入交换机端口被环路保护关闭，或弱电间交换机掉电。",
            "查看接入交换机对应端口状态，排除环路（多插的网线）后恢复端口；检查弱电间交换机电源和 UPS；在 CMDB 里对该交换机做影响分析，通知受影响的科室。",
            "network",
        ),
    ];
    let mut first = None;
    for (title, symptom, cause, solution, class) in articles {
        let form = ArticleForm {
            title: title.into(),
            symptom: symptom.into(),
            cause: cause.into(),
            solution: solution.into(),
            ci_class: class.into(),
            ..ArticleForm::default()
        };
        let id = kb.create(caller, &form).await?;
        first.get_or_insert((id, form));
    }
    // A second version: the driver step made precise.
    if let Some((id, mut form)) = first {
        form.solution.push_str("\n5. 驱动装好后打印测试页，并在打印首选项里把默认纸张设为 A4。");
        form.note = "补充测试页和默认纸张".into();
        kb.edit(caller, id, 1, &form).await?;
    }
    let given = ArticleForm {
        cause: "换了票据纸规格，驱动中的纸张尺寸仍是旧规格。".into(), ..ArticleForm::default()
    };
    kb.create_from(caller, Source::Incident(resolved), &given).await?;
    Ok(articles.len() + 1)
}

/// The demo's probes, run by the central server: the platform's own health and
/// database, its HL7 listener and its web page — and the west campus's nurse-station
/// printer, standing in for a device that is off: its probe points at a local port
/// where nothing listens, so it is found down within two minutes and its alert opens
/// an incident. Returns how many probes.
pub async fn monitoring(
    monitor: &Monitor,
    caller: &Caller,
    http: std::net::SocketAddr,
    mllp: std::net::SocketAddr,
) -> Result<usize, MonitorError> {
    use lianyi_monitor::probe::{Kind, Spec};
    let probes = [
        ("LIANYI", Kind::Platform, String::new(), 60, 5_000),
        ("LIANYI-DB", Kind::Database, String::new(), 60, 5_000),
        (&*format!("LIANYI-MLLP-{mllp}"), Kind::Tcp, mllp.to_string(), 30, 3_000),
        ("LIANYI-HTTP", Kind::Http, format!("http://{http}/healthz"), 30, 3_000),
        ("PRN-W3-NS", Kind::Tcp, "127.0.0.1:9".to_string(), 60, 2_000),
    ];
    for (ci, kind, target, interval_s, timeout_ms) in &probes {
        let spec = Spec {
            kind: *kind,
            target: target.clone(),
            interval_s: *interval_s,
            timeout_ms: *timeout_ms,
            ..Spec::default()
        };
        monitor.create(caller, &NewProbe { ci: ci.to_string(), runner: String::new(), spec }).await?;
    }
    Ok(probes.len())
}
