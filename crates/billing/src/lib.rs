//! Billing and pharmacy (收费与药品): each campus's price list, charges, the cashier's
//! invoices and settlement; the pharmacy's stock and dispensing. Money is exact:
//! integer fen ([`money::Fen`]), never floats; stock never goes below zero.
#![forbid(unsafe_code)]

pub mod cashier;
pub mod charges;
pub mod coverage;
pub mod deposits;
pub mod dispensing;
pub mod money;
pub mod prices;
pub mod reports;
pub mod rounds;
pub mod stock;
