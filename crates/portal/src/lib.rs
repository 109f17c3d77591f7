//! The patient portal (患者服务): what a patient does from a phone, on the same record,
//! permissions and audit as everything else. Accounts are opened with the code the
//! registrar prints on the registration slip, checked against the record's resident
//! ID and phone ([`accounts`]); booking finds any campus's departments and doctors
//! and books, cancels or moves an appointment under the desk's rules ([`booking`]);
//! the patient's own record shows reports with each value's flag and range in plain
//! words ([`record`]). Every read is the patient's own (their compartment), audited as
//! theirs.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod booking;
mod common;
pub mod courier;
pub mod messages;
pub mod record;
pub mod signup;
pub mod survey;
pub mod triage;

pub use lianyi_clinical::names::Names;
pub use lianyi_clinical::registry::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// The slot was booked by someone else meanwhile.
    #[error("the slot was just taken")]
    Taken,
    #[error(transparent)]
    Service(#[from] lianyi_services::ServiceError),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
    #[error("accounts: {0}")]
    Users(String),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
    /// The code could not be sent (the mail server or SMS gateway refused it); no
    /// code is left behind.
    #[error("the code could not be sent: {0}")]
    Delivery(#[from] courier::CourierError),
    #[error("the field cipher: {0}")]
    Cipher(String),
}

pub(crate) fn invalid(field: &'static str, code: &'static str, detail: impl Into<String>) -> PortalError {
    PortalError::Invalid(vec![FieldError { field, code, detail: detail.into() }])
}

impl From<lianyi_clinical::scheduling::ScheduleError> for PortalError {
    fn from(e: lianyi_clinical::scheduling::ScheduleError) -> Self {
        use lianyi_clinical::scheduling::ScheduleError as S;
        match e {
            S::Invalid(v) => PortalError::Invalid(v),
            S::Taken => PortalError::Taken,
            S::Service(e) => e.into(),
            S::Store(e) => e.into(),
        }
    }
}

impl From<lianyi_clinical::registry::RegistryError> for PortalError {
    fn from(e: lianyi_clinical::registry::RegistryError) -> Self {
        use lianyi_clinical::registry::RegistryError as R;
        match e {
            R::Invalid(v) => PortalError::Invalid(v),
            R::Service(e) => e.into(),
            R::Store(e) => e.into(),
            R::Forbidden(why) => PortalError::Forbidden(why),
        }
    }
}
