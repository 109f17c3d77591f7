//! Every area's routes in one router, the layers around them, and every area's
//! pages in the navigation. The one module that names every area.

use axum::Router;

use crate::ui::shell::NavLink;
use crate::{
    AppState, account, accounts, audit, billing, clinic, fhir, health, imaging, integration, manage, ops, pharmacy,
    portal, ui, ward,
};

/// The navigation, area by area, in the order the bar shows it.
pub(crate) const NAV: &[&[NavLink]] = &[
    clinic::NAV,
    ward::NAV,
    imaging::NAV,
    billing::NAV,
    pharmacy::NAV,
    manage::NAV,
    portal::NAV,
    ops::NAV,
    audit::NAV,
    integration::NAV,
    accounts::NAV,
];

/// The navigation of this installation: [`NAV`], and the desk's list of online
/// sign-ups where a code can be sent (an SMS gateway or mail server is configured).
pub(crate) fn nav(portal_signups: bool) -> Vec<&'static [NavLink]> {
    let mut nav = NAV.to_vec();
    if portal_signups {
        let at = nav.iter().position(|area| std::ptr::eq(*area, portal::NAV)).map_or(nav.len(), |i| i + 1);
        nav.insert(at, portal::SIGNUP_NAV);
    }
    nav
}

pub(crate) fn router(state: AppState) -> Router {
    let hsts = state.config.tls.is_some();
    let router = Router::new()
        .merge(fhir::router())
        .merge(account::router())
        .merge(audit::router())
        .merge(accounts::router())
        .merge(clinic::router())
        .merge(billing::router())
        .merge(pharmacy::router())
        .merge(ops::router())
        .merge(integration::router())
        .merge(imaging::router())
        .merge(manage::router())
        .merge(ward::router())
        .merge(portal::router())
        .merge(health::router())
        .merge(ui::shell::router())
        .merge(ui::assets::router())
        .fallback(ui::render::unknown_path)
        .layer(axum::middleware::from_fn_with_state(state.clone(), ui::render::in_shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), ui::layers::unavailable))
        .layer(axum::middleware::from_fn_with_state(state.clone(), ui::layers::read_routing))
        .layer(axum::middleware::from_fn(ui::layers::track))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(ui::error::panic_response))
        .layer(axum::middleware::from_fn(ui::layers::security_headers))
        .layer(axum::middleware::from_fn_with_state(state.limits.clone(), ui::layers::rate_limit));
    let router = if hsts { router.layer(axum::middleware::from_fn(ui::layers::hsts)) } else { router };
    router.with_state(state)
}
