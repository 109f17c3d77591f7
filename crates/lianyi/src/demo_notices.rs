//! The demo's announcements (通知公告): a group policy, a notice to East Campus about a
//! system upgrade, and news for the nurses of every campus; and patient feedback.

use lianyi_manage::announcements::{NoticeForm, Notices};
use lianyi_security::{Caller, SystemTask};

use crate::CliError;

/// (kind, audience, campus, role, title, text).
const NOTICES: [(&str, &str, &str, &str, &str, &str); 3] = [
    (
        "policy",
        "group",
        "",
        "",
        "关于加强患者隐私保护的规定",
        "各院区工作人员查阅患者病历须有诊疗需要；跨院区紧急查阅须填写理由，由隐私审计员逐月复核。",
    ),
    (
        "announcement",
        "campus",
        "campus-east",
        "",
        "东院区信息系统升级通知",
        "本周四 22:00–23:00 东院区信息系统升级，期间门诊挂号与收费请按应急预案执行。",
    ),
    (
        "news",
        "role",
        "",
        "nurse",
        "护理部：静脉治疗专科培训报名",
        "集团护理部下月开设静脉治疗专科培训班，各院区护士可报名参加。",
    ),
];

/// Publishes the demo's announcements; returns how many.
pub(crate) async fn load(notices: &Notices) -> Result<usize, CliError> {
    let system = Caller::task(SystemTask::Demo);
    for (kind, audience, campus, role, title, body) in NOTICES {
        let form = NoticeForm {
            kind: kind.into(),
            title: title.into(),
            body: body.into(),
            audience: audience.into(),
            campus: campus.into(),
            role: role.into(),
            ..Default::default()
        };
        notices.publish(&system, &form).await.map_err(|e| CliError::Usage(format!("demo announcements: {e}")))?;
    }
    Ok(NOTICES.len())
}

/// The demo's patient feedback at East Campus: a complaint its department head owns
/// and answered, another still open, a suggestion, and praise of the internal
/// medicine doctor `doctor.east` (Practitioner `prac-001`: his satisfaction on the
/// performance sheet); returns how many.
pub(crate) async fn feedback(feedback: &lianyi_manage::feedback::Feedbacks) -> Result<usize, CliError> {
    use lianyi_manage::feedback::FeedbackForm;
    let system = Caller::task(SystemTask::Demo);
    let failed = |e: lianyi_manage::feedback::FeedbackError| CliError::Usage(format!("demo feedback: {e}"));
    let items = [
        (
            "complaint",
            "desk",
            "campus-east-im",
            "pat-0001",
            "候诊时间过长",
            "上午挂号后等候近两小时，无人说明原因。",
            "",
        ),
        (
            "complaint",
            "phone",
            "campus-east-im",
            "",
            "检查结果通知不及时",
            "患者家属来电：血常规结果隔天才收到通知。",
            "",
        ),
        ("suggestion", "letter", "", "", "建议增加自助缴费机", "门诊大厅缴费排队较长，建议每层增设自助缴费机。", ""),
        (
            "praise",
            "letter",
            "campus-east-im",
            "",
            "感谢李明医生",
            "李医生问诊耐心，把病情和用药讲得很清楚。",
            "prac-001",
        ),
    ];
    let mut ids = Vec::new();
    for (kind, channel, department, patient, subject, body, practitioner) in items {
        let form = FeedbackForm {
            campus: "campus-east".into(),
            department: department.into(),
            kind: kind.into(),
            channel: channel.into(),
            patient: patient.into(),
            subject: subject.into(),
            body: body.into(),
            practitioner: practitioner.into(),
        };
        ids.push(feedback.record(&system, &form).await.map_err(failed)?);
    }
    feedback.assign(&system, ids[0], "head.east").await.map_err(failed)?;
    feedback.answer(&system, ids[0], "已向患者致歉；门诊已在候诊区增设叫号进度提示。").await.map_err(failed)?;
    feedback.assign(&system, ids[1], "head.east").await.map_err(failed)?;
    Ok(ids.len())
}
