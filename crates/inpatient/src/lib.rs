//! Inpatient care (住院): a doctor's admission order (住院证) from an outpatient or
//! emergency visit, the admission office registering the stay (an inpatient Encounter
//! with its own number) on a ward's bed, the ward receiving the patient, and the bed
//! board of each ward — occupied, free, reserved, being cleaned — with the patient,
//! days in, nursing level and alerts.
//!
//! Beds are FHIR Locations (`physicalType` bd, `partOf` their ward), their state in
//! `operationalStatus`; a stay's ward and bed are its Encounter's `location` entries.
//! Every change of a bed is written with the stay in one transaction, on the bed's
//! version: two admissions never get one bed.
#![forbid(unsafe_code)]

pub mod administration;
pub mod beds;
pub mod charging;
pub mod discharge;
pub mod nursing;
pub mod orders;
pub mod round;
pub mod rules;
pub mod schedule;
pub mod specimens;
pub mod stays;
pub mod transfers;
pub mod vitals;
