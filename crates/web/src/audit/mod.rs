//! Accountability pages: break-the-glass (emergency access with a reason) and its
//! report, the audit trail review, and a patient's own access log. The rules and the
//! audit chain live in [`lianyi_security`] and [`lianyi_services`].

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::ServiceError;
use serde::Deserialize;
use std::collections::HashMap;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{csv, failed, forbidden, local_time, page};
use crate::ui::session::Signed;
use crate::ui::shell::{NavLink, Place, Shell, shell};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/break-glass", get(bg_form).post(bg_submit))
        .route("/admin/break-glass", get(bg_report))
        .route("/admin/audit", get(audit_page))
        .route("/admin/audit.csv", get(audit_csv))
        .route("/me/access-log", get(access_log))
}

/// Break-the-glass for clinicians, the reviews for auditors, the access log for
/// patients.
pub(crate) const NAV: &[NavLink] = &[
    NavLink {
        href: "/break-glass",
        text: "nav-break-glass",
        place: Place::Bar,
        shown: |c: &Caller| c.can(Capability::BreakTheGlass),
    },
    NavLink {
        href: "/admin/audit",
        text: "nav-audit",
        place: Place::Bar,
        shown: |c: &Caller| c.can(Capability::ReviewAudit),
    },
    NavLink {
        href: "/admin/break-glass",
        text: "nav-break-glass-report",
        place: Place::Home,
        shown: |c: &Caller| c.can(Capability::ReviewAudit),
    },
    NavLink {
        href: "/me/access-log",
        text: "nav-access-log",
        place: Place::Home,
        shown: |c: &Caller| c.access().patient().is_some(),
    },
];

#[derive(Template)]
#[template(path = "audit/break_glass.html")]
struct BreakGlassPage<'a> {
    t: Tr,
    shell: &'a Shell,
    message: Option<&'a str>,
    csrf: &'a str,
    patient: &'a str,
    granted_until: Option<String>,
}

#[derive(Deserialize, Default)]
struct BreakGlassQuery {
    /// The record chosen in the patient search.
    #[serde(default)]
    patient: String,
}

async fn bg_form(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Query(q): Query<BreakGlassQuery>,
) -> Response {
    if !info.caller.can(Capability::BreakTheGlass) {
        return forbidden(t);
    }
    let patient = q.patient.trim();
    let shell = shell(&state, &info, t, &headers).await;
    page(BreakGlassPage { t, shell: &shell, message: None, csrf: &info.csrf, patient, granted_until: None }.render())
}

#[derive(Deserialize)]
struct BreakGlassForm {
    csrf: String,
    patient: String,
    reason: String,
}

async fn bg_submit(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Form(f): Form<BreakGlassForm>,
) -> Response {
    let shell = shell(&state, &info, t, &headers).await;
    let answer = |message: Option<&str>, granted_until: Option<String>| {
        page(
            BreakGlassPage { t, shell: &shell, message, csrf: &info.csrf, patient: f.patient.trim(), granted_until }
                .render(),
        )
    };
    if !lianyi_security::secrets::constant_time_eq(&info.csrf, &f.csrf) {
        return answer(Some("login-error"), None);
    }
    match state.fhir.break_glass(&info.caller, f.patient.trim(), &f.reason).await {
        Ok(g) => answer(None, Some(local_time(g.expires_at))),
        Err(ServiceError::Invalid(_)) => answer(Some("bg-reason-required"), None),
        Err(ServiceError::NotFound { .. }) => answer(Some("bg-no-patient"), None),
        Err(ServiceError::Forbidden(_)) => forbidden(t),
        Err(e) => {
            tracing::error!(error = %e, "break-the-glass failed");
            answer(Some("login-error"), None)
        }
    }
}

#[derive(Deserialize, Default)]
struct RangeQuery {
    /// Page of the audit list, from 0.
    page: Option<usize>,
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    patient: Option<String>,
    action: Option<String>,
}

/// `[from, to]` as epoch ms (whole days, Beijing time); default: the last 30 days.
fn range(state: &AppState, q: &RangeQuery) -> (i64, i64, String, String) {
    let now = state.fhir.now_ms();
    let day = |s: &Option<String>| s.as_deref().filter(|d| !d.is_empty()).and_then(lianyi_fhir::datetime::parse_range);
    let from = day(&q.from).map_or(now - 30 * 86_400_000, |r| r.low - 8 * 3_600_000);
    let to = day(&q.to).map_or(now + 60_000, |r| r.high + 1 - 8 * 3_600_000);
    (from, to, local_time(from)[..10].to_string(), local_time(to - 1)[..10].to_string())
}

#[derive(Template)]
#[template(path = "audit/break_glass_report.html")]
struct ReportPage<'a> {
    t: Tr,
    shell: &'a Shell,
    from: String,
    to: String,
    rows: Vec<(String, String, String, String, String, String)>,
}

async fn bg_report(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Query(q): Query<RangeQuery>,
) -> Response {
    let shell = shell(&state, &info, t, &headers).await;
    let (since, until, from, to) = range(&state, &q);
    match state.fhir.break_glass_report(&info.caller, since, until).await {
        Ok(list) => {
            let rows = list
                .into_iter()
                .map(|g| {
                    (
                        local_time(g.granted_at),
                        g.actor,
                        g.role.unwrap_or_default(),
                        g.patient,
                        g.reason,
                        local_time(g.expires_at),
                    )
                })
                .collect();
            page(ReportPage { t, shell: &shell, from, to, rows }.render())
        }
        Err(e) => failed(t, &e),
    }
}

#[derive(Template)]
#[template(path = "audit/audit.html")]
struct AuditPage<'a> {
    t: Tr,
    shell: &'a Shell,
    title: &'a str,
    intro: Option<&'a str>,
    show_filters: bool,
    actor: String,
    patient: String,
    action: String,
    from: String,
    to: String,
    rows: Vec<AuditRow>,
    /// Paging of the filtered list: (previous page's query, next page's query).
    prev: Option<String>,
    next: Option<String>,
    /// The filters as a query string, for the CSV link.
    filters: String,
}

/// Records a page of the audit list shows.
const AUDIT_PAGE: usize = 100;
/// The most records one CSV export holds.
const AUDIT_CSV_MAX: usize = 50_000;

/// One audit record as a table row: seq, time, actor, role, action, resource,
/// patient, outcome, address.
type AuditRow = (i64, String, String, String, String, String, String, String, String);

/// The names of the patients the records name, for the privacy officer (the lookup is
/// itself audited); empty when they cannot be read.
async fn patient_names(
    state: &AppState,
    caller: &Caller,
    records: &[lianyi_store::audit::AuditRecord],
) -> HashMap<String, String> {
    let mut ids: Vec<String> = records.iter().filter_map(|r| r.entry.patient.clone()).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return HashMap::new();
    }
    state.fhir.audit_patient_names(caller, &ids).await.unwrap_or_default()
}

fn audit_rows(t: Tr, records: Vec<lianyi_store::audit::AuditRecord>, names: &HashMap<String, String>) -> Vec<AuditRow> {
    records
        .into_iter()
        .map(|r| {
            let e = r.entry;
            // Types and roles by their names in the page's language (a code without
            // one shows itself).
            let resource = match (e.resource_type, e.resource_id) {
                (Some(rt), Some(id)) => format!("{} {id}", t.named("rtype", &rt)),
                (Some(rt), None) => t.named("rtype", &rt),
                _ => String::new(),
            };
            let role = e.role.unwrap_or_default().split(',').map(|r| t.named("role", r)).collect::<Vec<_>>().join("、");
            // Actions and outcomes in the page's language (an action without a text
            // shows its code).
            let action = t.named("audit-act", &e.action);
            let outcome = t.named("audit-outcome", &e.outcome);
            (
                r.seq,
                local_time(e.recorded_at),
                e.actor,
                role,
                action,
                resource,
                match e.patient {
                    Some(id) => match names.get(&id) {
                        Some(name) => format!("{name} ({id})"),
                        None => id,
                    },
                    None => String::new(),
                },
                outcome,
                e.client_addr.unwrap_or_default(),
            )
        })
        .collect()
}

/// The audit query of the filters (dates as Beijing days; default the last 30 days).
fn audit_query(state: &AppState, q: &RangeQuery, limit: usize) -> (lianyi_store::audit::AuditQuery, String, String) {
    let (since, until, from, to) = range(state, q);
    let filled = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let query = lianyi_store::audit::AuditQuery {
        actor: filled(&q.actor),
        patient: filled(&q.patient),
        action: filled(&q.action),
        since: Some(since),
        until: Some(until),
        seq: None,
        limit,
        offset: q.page.unwrap_or(0) * limit,
    };
    (query, from, to)
}

/// The filters as a query string (without the page).
fn filter_string(query: &lianyi_store::audit::AuditQuery, from: &str, to: &str) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("actor", &query.actor), ("patient", &query.patient), ("action", &query.action)] {
        if let Some(v) = v {
            f.append_pair(k, v);
        }
    }
    f.append_pair("from", from).append_pair("to", to);
    f.finish()
}

async fn audit_page(
    State(state): State<AppState>,
    Signed { info, t, headers }: Signed,
    Query(q): Query<RangeQuery>,
) -> Response {
    let shell = shell(&state, &info, t, &headers).await;
    let (query, from, to) = audit_query(&state, &q, AUDIT_PAGE);
    let filters = filter_string(&query, &from, &to);
    let page_no = q.page.unwrap_or(0);
    match state.fhir.audit_review(&info.caller, &query).await {
        Ok(records) => {
            let full = records.len() == AUDIT_PAGE;
            let names = patient_names(&state, &info.caller, &records).await;
            page(
                AuditPage {
                    t,
                    shell: &shell,
                    title: t.get("audit-title"),
                    intro: None,
                    show_filters: true,
                    actor: query.actor.clone().unwrap_or_default(),
                    patient: query.patient.clone().unwrap_or_default(),
                    action: query.action.clone().unwrap_or_default(),
                    from,
                    to,
                    rows: audit_rows(t, records, &names),
                    prev: (page_no > 0).then(|| format!("{filters}&page={}", page_no - 1)),
                    next: full.then(|| format!("{filters}&page={}", page_no + 1)),
                    filters,
                }
                .render(),
            )
        }
        Err(e) => failed(t, &e),
    }
}

/// `GET /admin/audit.csv`: the filtered records as CSV (UTF-8 with a byte-order mark,
/// which spreadsheet programs need for Chinese), for the privacy officer's reports.
/// The export is itself an audited review.
async fn audit_csv(
    State(state): State<AppState>,
    Signed { info, t, .. }: Signed,
    Query(q): Query<RangeQuery>,
) -> Response {
    let (query, from, to) = audit_query(&state, &RangeQuery { page: None, ..q }, AUDIT_CSV_MAX);
    let records = match state.fhir.audit_review(&info.caller, &query).await {
        Ok(r) => r,
        Err(e) => return failed(t, &e),
    };
    let header = [
        "audit-seq",
        "report-when",
        "audit-actor",
        "report-role",
        "audit-action",
        "audit-resource",
        "report-patient",
        "audit-outcome",
        "audit-address",
    ];
    let names = patient_names(&state, &info.caller, &records).await;
    let rows = audit_rows(t, records, &names)
        .into_iter()
        .map(|r| vec![r.0.to_string(), r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8]);
    csv(t, &format!("audit-{from}-{to}.csv"), &header, rows)
}

async fn access_log(State(state): State<AppState>, Signed { info, t, headers }: Signed) -> Response {
    let shell = shell(&state, &info, t, &headers).await;
    match state.fhir.my_access_log(&info.caller).await {
        Ok(records) => page(
            AuditPage {
                t,
                shell: &shell,
                title: t.get("access-title"),
                intro: Some(t.get("access-intro")),
                show_filters: false,
                actor: String::new(),
                patient: String::new(),
                action: String::new(),
                from: String::new(),
                to: String::new(),
                rows: audit_rows(t, records, &HashMap::new()),
                prev: None,
                next: None,
                filters: String::new(),
            }
            .render(),
        ),
        Err(e) => failed(t, &e),
    }
}
