//! The FHIR R4 API at `/fhir` (REST, bulk export and import, `$everything`,
//! `$match`), its CapabilityStatement, the subscription WebSocket, and
//! `POST /oauth/token`, which issues the bearer tokens the API needs. Handlers parse,
//! call the FHIR service once and render; errors become OperationOutcomes in
//! [`crate::ui::error`].

mod api;
mod bundle;
mod capability;
mod oauth;
mod websocket;

use axum::Router;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .nest("/fhir", api::router())
        // Clients that join the base URL and an empty path post bundles to `/fhir/`.
        .route("/fhir/", axum::routing::post(api::bundle_post))
        .merge(oauth::router())
        .merge(websocket::router())
}
