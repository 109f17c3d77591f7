//! The demo's announcements (通知公告): a group policy, a notice to East Campus about a
//! system upgrade, and news for the nurses of every campus.

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
