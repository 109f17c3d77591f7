//! Revenue reports (收入报表): what the cashiers took, net of refunds, between two
//! days, by day, department, campus, category and payment method, for managers and
//! department heads of their campuses. The figures are sums of the payment lines
//! written in each payment's own transaction, so they reconcile with the invoices
//! exactly.

use lianyi_security::roles::Capability;
use lianyi_security::{Caller, Campuses};
use lianyi_services::FhirService;
use lianyi_store::payments::{Revenue, RevenueBy};

use crate::money::Fen;
use crate::prices::FieldError;

/// The longest period one report covers.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}", crate::prices::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
}

/// One report: every grouping over the same period and campuses.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub by_day: Vec<Revenue>,
    /// Department (Organization id, "" when unknown) with its names.
    pub by_department: Vec<(Revenue, lianyi_services::Names)>,
    pub by_category: Vec<Revenue>,
    pub by_campus: Vec<Revenue>,
    pub by_method: Vec<Revenue>,
    pub total: Fen,
}

#[derive(Clone, Debug)]
pub struct Reports {
    fhir: FhirService,
}

impl Reports {
    pub fn new(fhir: FhirService) -> Reports {
        Reports { fhir }
    }

    /// Managers and department heads see the revenue of their campuses.
    pub fn may_view(caller: &Caller) -> bool {
        caller.can(Capability::ViewReports) && caller.access().patient().is_none() && caller.is_authenticated()
    }

    /// Revenue from `from` to `to` (`YYYY-MM-DD`, both included, Beijing days).
    pub async fn revenue(&self, caller: &Caller, from: &str, to: &str) -> Result<Report, ReportError> {
        if !Self::may_view(caller) {
            return Err(ReportError::Forbidden("revenue is reported to managers"));
        }
        let errors: Vec<FieldError> = lianyi_clinical::scheduling::period_errors(from, to, MAX_DAYS)
            .into_iter()
            .map(|(field, rule, detail)| FieldError { field, rule, detail })
            .collect();
        if !errors.is_empty() {
            return Err(ReportError::Invalid(errors));
        }
        let campuses: Option<Vec<String>> = match caller.access().all_campuses() {
            Campuses::All => None,
            Campuses::Only(list) => Some(list.iter().map(|c| c.as_str().to_string()).collect()),
        };
        let ops = self.fhir.operations();
        let scope = campuses.as_deref();
        let by = |b| ops.revenue(b, from, to, scope);
        let by_day = by(RevenueBy::Day).await?;
        let by_category = by(RevenueBy::Category).await?;
        let by_campus = by(RevenueBy::Campus).await?;
        let by_method = by(RevenueBy::Method).await?;
        let mut by_department = Vec::new();
        for r in by(RevenueBy::Department).await? {
            let names = self.department_names(caller, &r.key).await;
            by_department.push((r, names));
        }
        by_department.sort_by_key(|(r, _)| std::cmp::Reverse(r.amount_fen));
        let total = Fen(by_day.iter().map(|r| r.amount_fen).sum());
        Ok(Report { from: from.into(), to: to.into(), by_day, by_department, by_category, by_campus, by_method, total })
    }

    async fn department_names(&self, caller: &Caller, id: &str) -> lianyi_services::Names {
        if id.is_empty() {
            return Default::default();
        }
        let Some(t) = lianyi_fhir::ResourceType::parse("Organization") else { return Default::default() };
        let Ok(reader) = self.fhir.reader(caller, t).await else { return Default::default() };
        match reader.read(id).await {
            Ok(r) => serde_json::from_str(&r.body)
                .map(|v: serde_json::Value| lianyi_services::fhir::organization_names(&v))
                .unwrap_or_default(),
            Err(_) => Default::default(),
        }
    }
}
