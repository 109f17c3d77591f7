//! Management (管理): rosters first — each department's monthly roster, and each
//! campus's shift types and rest rule.

mod attendance;
mod rosters;

use crate::ui::shell::{NavLink, Place};

pub(crate) fn router() -> axum::Router<crate::AppState> {
    rosters::router().merge(attendance::router())
}

/// The management pages in the navigation.
pub(crate) const NAV: &[NavLink] = &[
    NavLink { href: "/manage/rosters", text: "nav-rosters", place: Place::Bar, shown: rosters::may_open },
    NavLink { href: "/manage/attendance", text: "nav-attendance", place: Place::Bar, shown: rosters::may_keep_types },
    NavLink { href: "/manage/shift-types", text: "nav-shift-types", place: Place::Bar, shown: rosters::may_keep_types },
];
