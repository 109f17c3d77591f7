//! What every area shares, and the only module areas may import besides the
//! services: the session and its one extractor ([`session::Signed`]), the page
//! shell and navigation ([`shell`]), the two languages ([`i18n`]), rendering and
//! error pages ([`render`]), FHIR errors and operation ids ([`error`]), API
//! authentication ([`auth`]), the layers around every route ([`layers`]), the
//! static files ([`assets`]) and the server-drawn SVG charts ([`chart`]). `ui`
//! imports no area.

pub(crate) mod assets;
pub mod auth;
pub(crate) mod chart;
pub mod error;
pub mod i18n;
pub mod layers;
pub(crate) mod render;
pub(crate) mod session;
pub(crate) mod shell;
