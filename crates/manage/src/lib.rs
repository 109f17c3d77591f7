//! The management platform (管理平台): what a group of campuses manages centrally
//! while each campus keeps its own rules. Rosters (排班) first: each campus's shift
//! types and rest rule, each department's monthly roster kept by its head, checked so
//! no one is in two places at once or back on duty too soon after a night, and the
//! doctors' clinic sessions on the roster making their outpatient Slots; materials (物资):
//! each campus's warehouse and departments' stock, requisitions approved and issued,
//! and the high-value units used on a patient, charged through billing; medical
//! equipment (设备): the register, acceptance, maintenance and metrology reminders,
//! repairs with their response times, and scrapping approved by a manager;
//! announcements (通知公告) to an audience, with read receipts; staff (人事): the
//! department tree, titles, practising campuses and licences with expiry reminders;
//! dashboards (决策支持) for the group and each campus, from daily figures kept current
//! as records arrive; patients' feedback and complaints with an owner, a deadline and
//! the answer; the monthly performance sheets (绩效) scored by each campus's formula;
//! messages between staff, to a person or a department, arriving on open pages.
#![forbid(unsafe_code)]

pub mod announcements;
pub mod assets;
pub mod attendance;
mod common;
pub mod dashboards;
pub mod equipment;
pub mod feedback;
pub mod materials;
pub mod measures;
pub mod messages;
pub mod performance;
pub mod roster;
pub mod rosters;
pub mod sheets;
pub mod staff;
pub mod swaps;
