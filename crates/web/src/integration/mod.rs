//! The integration hub: channel health (queue depth, dead letters, last success,
//! error rate), the message log with filters, one message with its payload and ACK,
//! and replay, as pages ([`pages`]: a signed-in IT engineer or administrator) and as
//! a JSON API ([`api`], `/api/integration`: a bearer token of a client registered
//! with the `lianyi:integration` scope word); and the MLLP listener ([`mllp`]).
//! Every call goes through [`lianyi_interop::Outbound`], which checks the permission
//! and audits.

mod api;
pub mod mllp;
mod pages;

use axum::Router;
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_store::messages::MessageFilter;
use serde::Deserialize;

use crate::AppState;
use crate::ui::shell::{NavLink, Place};

pub(crate) fn router() -> Router<AppState> {
    Router::new().merge(pages::router()).merge(api::router())
}

pub(crate) const NAV: &[NavLink] = &[NavLink {
    href: "/admin/integration",
    text: "nav-integration",
    place: Place::Bar,
    shown: |c: &Caller| c.can(Capability::ManageIntegration),
}];

/// Message-log filters, from the page's form or the API's query string.
#[derive(Deserialize, Default)]
pub(super) struct LogQuery {
    pub(super) direction: Option<String>,
    pub(super) status: Option<String>,
    pub(super) channel: Option<String>,
    #[serde(rename = "type")]
    pub(super) message_type: Option<String>,
    pub(super) control_id: Option<String>,
    /// Epoch milliseconds.
    pub(super) since: Option<i64>,
    pub(super) until: Option<i64>,
    /// Paging: messages older than this id.
    pub(super) before: Option<i64>,
    pub(super) limit: Option<usize>,
}

impl LogQuery {
    pub(super) fn filter(&self) -> MessageFilter {
        let filled = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        MessageFilter {
            direction: filled(&self.direction),
            status: filled(&self.status),
            channel: filled(&self.channel),
            message_type: filled(&self.message_type),
            control_id: filled(&self.control_id),
            since: self.since,
            until: self.until,
            before_id: self.before,
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
        }
    }
}
