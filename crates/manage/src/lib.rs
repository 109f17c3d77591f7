//! The management platform (管理平台): what a group of campuses manages centrally
//! while each campus keeps its own rules. Rosters (排班) first: each campus's shift
//! types and rest rule, each department's monthly roster kept by its head, checked so
//! no one is in two places at once or back on duty too soon after a night, and the
//! doctors' clinic sessions on the roster making their outpatient Slots.
#![forbid(unsafe_code)]

pub mod attendance;
pub mod roster;
pub mod rosters;
