//! The one place service errors become HTTP responses with an OperationOutcome.
//! Internal errors are logged with a request id and never described to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lianyi_fhir::{Issue, IssueType, OperationOutcome};
use lianyi_services::ServiceError;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// An error on a FHIR route.
#[derive(Debug)]
pub struct FhirError {
    pub status: StatusCode,
    pub outcome: OperationOutcome,
}

impl FhirError {
    pub fn new(status: StatusCode, code: IssueType, msg: impl Into<String>) -> Self {
        FhirError { status, outcome: OperationOutcome::single(Issue::error(code, msg)) }
    }

    pub fn at(status: StatusCode, issue: Issue) -> Self {
        FhirError { status, outcome: OperationOutcome::single(issue) }
    }

    pub fn unknown_type(name: &str) -> Self {
        let msg = if lianyi_fhir::schema::is_r4_resource_type(name) {
            format!("resource type '{name}' is not supported by this server (see /fhir/metadata)")
        } else {
            format!("unknown resource type '{name}'")
        };
        FhirError::new(StatusCode::NOT_FOUND, IssueType::NotSupported, msg)
    }
}

impl From<ServiceError> for FhirError {
    fn from(e: ServiceError) -> Self {
        match e {
            // Valid R4 that breaks a rule of the server's is 422, as the FHIR HTTP
            // specification says; content that is not valid R4 is 400.
            ServiceError::Invalid(outcome) => {
                let rule = outcome.issues.iter().any(|i| i.code == IssueType::BusinessRule);
                let status = if rule { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
                FhirError { status, outcome }
            }
            ServiceError::NotFound { resource_type, id } => {
                FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, format!("{resource_type}/{id} is not known"))
            }
            ServiceError::Gone { resource_type, id, version } => FhirError::new(
                StatusCode::GONE,
                IssueType::Deleted,
                format!("{resource_type}/{id} was deleted (version {version})"),
            ),
            ServiceError::VersionConflict { expected, current } => FhirError::new(
                StatusCode::PRECONDITION_FAILED,
                IssueType::Conflict,
                format!("If-Match expected version {expected} but the current version is {current}"),
            ),
            ServiceError::Conflict { resource_type, id } => FhirError::new(
                StatusCode::CONFLICT,
                IssueType::Conflict,
                format!("{resource_type}/{id} already exists"),
            ),
            ServiceError::Forbidden(reason) => FhirError::new(StatusCode::FORBIDDEN, IssueType::Forbidden, reason),
            ServiceError::Crypto(err) => {
                let request_id = operation_id();
                tracing::error!(%request_id, error = %err, "field encryption failure");
                FhirError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    IssueType::Exception,
                    format!("internal error; quote reference {request_id} to the administrator"),
                )
            }
            ServiceError::Audit(err) => {
                let request_id = operation_id();
                tracing::error!(%request_id, error = %err, "audit failure; access refused");
                FhirError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    IssueType::Exception,
                    format!("the access could not be audited, so it was refused; quote reference {request_id}"),
                )
            }
            ServiceError::Store(err) => {
                let request_id = operation_id();
                tracing::error!(%request_id, error = %err, "storage failure");
                FhirError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    IssueType::Exception,
                    format!("internal error; quote reference {request_id} to the administrator"),
                )
            }
        }
    }
}

tokio::task_local! {
    /// The operation id of the request being served (set by [`crate::ui::layers::track`]).
    static OPERATION: String;
}

/// Runs a request's handling under an operation id: every log line of the request
/// carries it (a tracing span), and error answers quote it.
pub(crate) async fn with_operation<F: Future>(id: String, f: F) -> F::Output {
    use tracing::Instrument;
    let span = tracing::info_span!("op", id = %id);
    OPERATION.scope(id, f.instrument(span)).await
}

/// A fresh operation id: 12 hex digits, random.
pub(crate) fn new_operation_id() -> String {
    static FALLBACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    lianyi_security::secrets::random_hex(6).unwrap_or_else(|_| {
        // No randomness: a counter still tells requests apart in the log.
        format!("n{:011x}", FALLBACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    })
}

/// The id of the operation being served, for an error page or OperationOutcome to
/// quote; a fresh one outside a request.
pub(crate) fn operation_id() -> String {
    OPERATION.try_with(String::clone).unwrap_or_else(|_| new_operation_id())
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let body = self.outcome.to_json().to_string();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        resp
    }
}

/// A panic in a handler becomes a 500 OperationOutcome; the panic text is logged,
/// never sent.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    let request_id = operation_id();
    tracing::error!(%request_id, panic = detail, "handler panicked");
    FhirError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        IssueType::Exception,
        format!("internal error; quote reference {request_id} to the administrator"),
    )
    .into_response()
}
