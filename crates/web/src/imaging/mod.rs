//! Imaging (影像): the DICOM node's edge, DICOMweb, the viewer, the registrar's
//! reconciliation list and the AE table page.

mod aes;
mod dicomweb;
pub mod node;
mod reconcile;
mod viewer;

use crate::ui::shell::{NavLink, Place};

pub(crate) fn router() -> axum::Router<crate::AppState> {
    dicomweb::router().merge(viewer::router()).merge(reconcile::router()).merge(aes::router())
}

/// The imaging pages in the navigation (the viewer opens from the record).
pub(crate) const NAV: &[NavLink] = &[
    NavLink { href: "/imaging/reconcile", text: "nav-reconcile", place: Place::Bar, shown: reconcile::may_reconcile },
    NavLink { href: "/imaging/aes", text: "nav-aes", place: Place::Bar, shown: aes::may_manage },
];
