//! Billing (收费): each campus's price list today; charges, the cashier, invoices and
//! settlement build on it. Money is exact: integer fen ([`money::Fen`]), never floats.
#![forbid(unsafe_code)]

pub mod cashier;
pub mod charges;
pub mod money;
pub mod prices;
