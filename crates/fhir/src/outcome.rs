//! OperationOutcome: the one shape every FHIR error takes on the wire.

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueSeverity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl IssueSeverity {
    fn code(self) -> &'static str {
        match self {
            IssueSeverity::Fatal => "fatal",
            IssueSeverity::Error => "error",
            IssueSeverity::Warning => "warning",
            IssueSeverity::Information => "information",
        }
    }
}

/// The subset of the `issue-type` value set the server reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    NotFound,
    Deleted,
    NotSupported,
    Conflict,
    /// Valid content that breaks a rule of the hospital's (`business-rule`).
    BusinessRule,
    TooLong,
    Processing,
    Exception,
    Informational,
    Security,
    Forbidden,
    /// A passing failure the request may be tried again for (`transient`).
    Transient,
}

impl IssueType {
    fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::NotSupported => "not-supported",
            IssueType::Conflict => "conflict",
            IssueType::BusinessRule => "business-rule",
            IssueType::TooLong => "too-long",
            IssueType::Processing => "processing",
            IssueType::Exception => "exception",
            IssueType::Informational => "informational",
            IssueType::Transient => "transient",
            IssueType::Security => "security",
            IssueType::Forbidden => "forbidden",
        }
    }
}

/// One problem, with the FHIRPath-style location it concerns (`Patient.birthDate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub severity: IssueSeverity,
    pub code: IssueType,
    pub diagnostics: String,
    pub expression: Option<String>,
}

impl Issue {
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue { severity: IssueSeverity::Error, code, diagnostics: diagnostics.into(), expression: None }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }
}

/// A list of issues rendered as an R4 OperationOutcome resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationOutcome {
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    pub fn new(issues: Vec<Issue>) -> Self {
        OperationOutcome { issues }
    }

    pub fn single(issue: Issue) -> Self {
        OperationOutcome { issues: vec![issue] }
    }

    pub fn information(text: impl Into<String>) -> Self {
        OperationOutcome::single(Issue {
            severity: IssueSeverity::Information,
            code: IssueType::Informational,
            diagnostics: text.into(),
            expression: None,
        })
    }

    pub fn to_json(&self) -> Value {
        let issues: Vec<Value> = self
            .issues
            .iter()
            .map(|i| {
                let mut v = json!({
                    "severity": i.severity.code(),
                    "code": i.code.code(),
                    "diagnostics": i.diagnostics,
                });
                if let Some(e) = i.expression.as_deref().filter(|e| !e.is_empty()) {
                    v["expression"] = json!([e]);
                }
                v
            })
            .collect();
        json!({ "resourceType": "OperationOutcome", "issue": issues })
    }
}
