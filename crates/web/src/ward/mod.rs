//! The wards (住院): the bed board of each ward (`/ward`), where nurses receive
//! admitted patients and keep the beds; the admission office's waiting orders
//! (`/ward/admissions`), admitted onto a free bed; and a doctor's admission order
//! from a visit (`/ward/order?encounter=…`).

mod admission;
mod board;
mod chart;
mod nursing;
mod orders;
mod rules;
mod specimens;
mod tasks;

use lianyi_inpatient::stays::{Inpatient, InpatientError};

use crate::ui::i18n::Tr;
use crate::ui::shell::{NavLink, Place};

pub(crate) fn router() -> axum::Router<crate::AppState> {
    board::router()
        .merge(admission::router())
        .merge(orders::router())
        .merge(tasks::router())
        .merge(chart::router())
        .merge(rules::router())
        .merge(nursing::router())
        .merge(specimens::router())
}

/// The ward pages in the navigation.
pub(crate) const NAV: &[NavLink] = &[
    NavLink { href: "/ward", text: "nav-ward", place: Place::Bar, shown: Inpatient::may_see_boards },
    NavLink { href: "/ward/tasks", text: "nav-ward-tasks", place: Place::Bar, shown: Inpatient::may_keep_ward },
    NavLink { href: "/ward/handover", text: "nav-ward-handover", place: Place::Bar, shown: Inpatient::may_keep_ward },
    NavLink {
        href: "/ward/specimens",
        text: "nav-ward-specimens",
        place: Place::Home,
        shown: Inpatient::may_keep_ward,
    },
    NavLink { href: "/ward/admissions", text: "nav-admissions", place: Place::Bar, shown: Inpatient::may_admit },
    NavLink { href: "/ward/rules", text: "nav-ward-rules", place: Place::Home, shown: rules::may_set_some },
];

/// The lines of an error, each naming the field and the rule in the page's language.
fn worded(t: Tr, e: &InpatientError) -> Vec<String> {
    match e {
        InpatientError::Invalid(fs) => fs
            .iter()
            .map(|f| {
                let rule = match t.try_get(&format!("ward-rule-{}", f.code)) {
                    // Round times: the rule, and which frequency broke it.
                    Some(rule) if f.code == "rounds" => format!("{rule} ({})", f.detail),
                    // A scale's items left out: the rule, and which.
                    Some(rule) if f.code == "item" => {
                        let items: Vec<&str> =
                            f.detail.split(',').map(|i| t.try_get(&format!("ward-item-{i}")).unwrap_or(i)).collect();
                        format!("{rule} ({})", items.join(", "))
                    }
                    Some(rule) => rule.to_string(),
                    None => f.detail.clone(),
                };
                format!("{}: {rule}", t.named("ward-field", f.field))
            })
            .collect(),
        InpatientError::NotFound(_) => vec![t.get("ward-not-found").to_string()],
        InpatientError::Forbidden(_) => vec![t.get("ward-forbidden").to_string()],
        other => {
            tracing::error!(error = %other, "inpatient");
            vec![t.get("ward-failed").to_string()]
        }
    }
}

/// The wards `caller` works on, as a page's choice — (id, name in the page's language) —
/// and the one shown: `asked` if it is one of them, else the first.
async fn ward_choice(
    state: &crate::AppState,
    caller: &lianyi_security::Caller,
    t: Tr,
    asked: Option<String>,
) -> (Vec<(String, String)>, Option<String>) {
    let wards = state.inpatient.wards(caller).await.unwrap_or_default();
    let ward = asked.filter(|w| wards.iter().any(|x| x.id == *w)).or_else(|| wards.first().map(|w| w.id.clone()));
    (wards.iter().map(|w| (w.id.clone(), t.pick(&w.names.zh, &w.names.en).clone())).collect(), ward)
}

/// A bed's number as the ward's lists show it (the Location id's last part).
fn bed_number(id: &str) -> String {
    id.rsplit('-').next().unwrap_or(id).trim_start_matches('0').to_string()
}
