//! Management (管理): rosters — each department's monthly roster, each campus's shift
//! types and rest rule, attendance — and materials (物资): stock, requisitions and
//! the catalogue — equipment (设备): the register and repairs — announcements, and
//! staff (人事), the dashboards (决策支持), patients' feedback and complaints, and the
//! monthly performance sheets (绩效), and messages between staff arriving live.

mod attendance;
mod dashboards;
mod equipment;
mod feedback;
mod materials;
mod messages;
mod notices;
mod performance;
mod rosters;
mod staff;

use crate::ui::shell::{NavLink, Place};

pub(crate) fn router() -> axum::Router<crate::AppState> {
    rosters::router()
        .merge(attendance::router())
        .merge(materials::router())
        .merge(equipment::router())
        .merge(notices::router())
        .merge(staff::router())
        .merge(dashboards::router())
        .merge(feedback::router())
        .merge(performance::router())
        .merge(messages::router())
}

/// The management pages in the navigation.
pub(crate) const NAV: &[NavLink] = &[
    NavLink { href: "/manage/dashboard", text: "nav-dashboard", place: Place::Bar, shown: dashboards::may_view },
    NavLink { href: "/manage/messages", text: "nav-messages", place: Place::Bar, shown: messages::may_use },
    NavLink { href: "/manage/performance", text: "nav-performance", place: Place::Bar, shown: performance::may_read },
    NavLink { href: "/manage/notices", text: "nav-notices", place: Place::Bar, shown: notices::may_read },
    NavLink { href: "/manage/feedback", text: "nav-feedback", place: Place::Bar, shown: feedback::may_follow },
    NavLink { href: "/manage/rosters", text: "nav-rosters", place: Place::Bar, shown: rosters::may_open },
    NavLink { href: "/manage/staff", text: "nav-staff", place: Place::Bar, shown: staff::may_keep },
    NavLink { href: "/manage/attendance", text: "nav-attendance", place: Place::Bar, shown: rosters::may_keep_types },
    NavLink { href: "/manage/shift-types", text: "nav-shift-types", place: Place::Bar, shown: rosters::may_keep_types },
    NavLink { href: "/manage/materials", text: "nav-materials", place: Place::Bar, shown: materials::may_requisition },
    NavLink {
        href: "/manage/requisitions",
        text: "nav-requisitions",
        place: Place::Bar,
        shown: materials::may_requisition,
    },
    NavLink {
        href: "/manage/materials/items",
        text: "nav-material-items",
        place: Place::Bar,
        shown: materials::may_keep,
    },
    NavLink { href: "/manage/equipment", text: "nav-equipment", place: Place::Bar, shown: equipment::may_see_register },
    NavLink { href: "/manage/repairs", text: "nav-repairs", place: Place::Bar, shown: equipment::may_repairs },
];
