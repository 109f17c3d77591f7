//! The performance sheets (绩效考核): a department's month, each person's figures from
//! the records, their scores under the campus's formula and the total, best first
//! (`/manage/performance`), the same as CSV, and the campus's formula as its managers
//! set it (`/manage/performance/formula`). The sheets come from
//! [`lianyi_manage::sheets`].

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use lianyi_manage::performance::{Indicator, Method};
use lianyi_manage::sheets::{CampusFormula, FormulaForm, Sheet, SheetError, Sheets};
use lianyi_security::Caller;
use serde::Deserialize;

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::{csv, forbidden, form_value, local_time, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, campus_name, shell};

use super::rosters::{csrf_ok, pick, urlencode};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/manage/performance", get(sheet_page))
        .route("/manage/performance.csv", get(sheet_csv))
        .route("/manage/performance/formula", get(formula_page).post(set_formula))
}

/// Managers and department heads.
pub(super) fn may_read(c: &Caller) -> bool {
    Sheets::may_read(c)
}

/// An indicator's locale key.
fn label_key(i: Indicator) -> String {
    format!("perf-ind-{}", i.code())
}

/// Hundredths of a percent as `83.33%`.
fn percent(p: u32) -> String {
    format!("{}.{:02}%", p / 100, p % 100)
}

fn worded(t: Tr, e: &SheetError) -> Vec<String> {
    match e {
        SheetError::Invalid(fs) => fs
            .iter()
            .map(|f| {
                let field = match f.field.split_once('.') {
                    Some((kind, code)) => format!(
                        "{} · {}",
                        t.get(&format!("perf-field-{kind}")),
                        Indicator::parse(code).map(|i| t.get(&label_key(i)).to_string()).unwrap_or_default()
                    ),
                    None => t.get(&format!("perf-field-{}", f.field)).to_string(),
                };
                format!("{field}: {}", t.get(&format!("perf-rule-{}", f.code)))
            })
            .collect(),
        SheetError::NotFound(_) => vec![t.get("perf-not-found").to_string()],
        other => {
            tracing::error!(error = %other, "performance");
            vec![t.get("perf-failed").to_string()]
        }
    }
}

#[derive(Deserialize, Default)]
struct Params {
    campus: Option<String>,
    department: Option<String>,
    month: Option<String>,
    done: Option<String>,
}

fn some(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn sheet_href(campus: &str, department: &str, month: &str, csv: bool) -> String {
    format!(
        "/manage/performance{}?campus={}&department={}&month={}",
        if csv { ".csv" } else { "" },
        urlencode(campus),
        urlencode(department),
        urlencode(month)
    )
}

/// The formula in words: the method and each weight (and target).
fn formula_text(t: Tr, f: &CampusFormula) -> String {
    let method = match f.formula.method {
        Method::Relative => t.get("perf-method-relative").to_string(),
        Method::Target { cap_percent } => t.get("perf-method-target-cap").replace("{cap}", &cap_percent.to_string()),
    };
    let weights: Vec<String> = f
        .formula
        .weights
        .iter()
        .map(|(i, w)| {
            let target = f.formula.targets.iter().find(|(j, _)| j == i).map(|(_, n)| format!(" ≥{n}"));
            let target = if matches!(f.formula.method, Method::Target { .. }) { target } else { None };
            format!("{} {w}%{}", t.get(&label_key(*i)), target.unwrap_or_default())
        })
        .collect();
    format!("{method} · {}", weights.join(" · "))
}

struct Row {
    name: String,
    title: String,
    practitioner: String,
    cells: Vec<String>,
    total: String,
}

#[derive(Template)]
#[template(path = "manage/performance.html")]
struct SheetPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// (id, "campus · department") of each department the caller reads.
    departments: Vec<(String, String)>,
    chosen: String,
    month: String,
    title: String,
    formula: String,
    formula_set: String,
    formula_href: Option<String>,
    headers: Vec<String>,
    rows: Vec<Row>,
    csv_href: String,
    errors: Vec<String>,
}

/// The cells of one person: each indicator's figure and score.
fn cells(t: Tr, sheet: &Sheet, r: &lianyi_manage::sheets::SheetRow) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in &sheet.formula.formula.weights {
        let figure = r.figures.iter().find(|(j, _)| j == i).and_then(|(_, v)| *v);
        let part = r.scored.parts.iter().find(|(j, _)| j == i).and_then(|(_, v)| *v);
        out.push(match figure {
            Some(v) if i.lower_is_better() => t.get("perf-minutes").replace("{n}", &v.to_string()),
            Some(v) if *i == Indicator::Satisfaction => format!("{}.{}%", v / 10, v % 10),
            Some(v) => v.to_string(),
            None => "—".into(),
        });
        out.push(part.map(percent).unwrap_or_else(|| "—".into()));
    }
    out
}

fn headers(t: Tr, sheet: &Sheet) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in &sheet.formula.formula.weights {
        out.push(t.get(&label_key(*i)).to_string());
        out.push(t.get("perf-score-of").replace("{w}", &w.to_string()));
    }
    out
}

async fn sheet_page(State(state): State<AppState>, s: Signed, Query(p): Query<Params>) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    if !may_read(caller) {
        return forbidden(t);
    }
    let shell = shell(&state, &s.info, t, &s.headers).await;
    let mut errors = Vec::new();
    let departments = match state.sheets.departments(caller).await {
        Ok(d) => d,
        Err(e) => {
            errors = worded(t, &e);
            Vec::new()
        }
    };
    let month = some(&p.month).unwrap_or_else(|| state.sheets.this_month());
    // The page's choice is `campus|department`; a link names them apart.
    let (campus, department) = match some(&p.department) {
        Some(v) if v.contains('|') => {
            let (c, d) = v.split_once('|').unwrap_or_default();
            (Some(c.to_string()), Some(d.to_string()))
        }
        d => (some(&p.campus), d),
    };
    // The department asked for (the service decides whether the caller reads it),
    // else the first of the caller's.
    let chosen: Option<(String, String)> = match (campus, department) {
        (Some(c), Some(d)) => Some((c, d)),
        (None, Some(d)) => {
            Some((departments.iter().find(|x| x.id == d).map(|x| x.campus.clone()).unwrap_or_default(), d))
        }
        _ => departments.first().map(|d| (d.campus.clone(), d.id.clone())),
    };
    let mut choices = Vec::new();
    for d in &departments {
        choices.push((
            format!("{}|{}", d.campus, d.id),
            format!("{} · {}", campus_name(&state, &d.campus, t).await, pick(t, &d.names)),
        ));
    }
    let mut view = SheetPage {
        t,
        shell: &shell,
        departments: choices,
        chosen: chosen.as_ref().map(|(c, d)| format!("{c}|{d}")).unwrap_or_default(),
        month: month.clone(),
        title: String::new(),
        formula: String::new(),
        formula_set: String::new(),
        formula_href: None,
        headers: Vec::new(),
        rows: Vec::new(),
        csv_href: String::new(),
        errors,
    };
    if let Some((campus, department)) = &chosen {
        match state.sheets.sheet(caller, campus, department, &month).await {
            Ok(sheet) => {
                view.title = format!(
                    "{} · {} · {month}",
                    campus_name(&state, &sheet.campus, t).await,
                    pick(t, &sheet.department_names)
                );
                view.formula = formula_text(t, &sheet.formula);
                view.formula_set = match &sheet.formula.set {
                    Some((who, at)) => {
                        t.get("perf-formula-set").replace("{who}", who).replace("{at}", &local_time(*at))
                    }
                    None => t.get("perf-formula-default").to_string(),
                };
                view.formula_href = Sheets::may_set(caller, &sheet.campus)
                    .then(|| format!("/manage/performance/formula?campus={}", urlencode(&sheet.campus)));
                view.headers = headers(t, &sheet);
                view.rows = sheet
                    .rows
                    .iter()
                    .map(|r| Row {
                        name: pick(t, &r.names),
                        title: r.title.clone().unwrap_or_default(),
                        practitioner: r.practitioner.clone(),
                        cells: cells(t, &sheet, r),
                        total: percent(r.scored.total),
                    })
                    .collect();
                view.csv_href = sheet_href(campus, department, &month, true);
            }
            Err(SheetError::Forbidden(_)) => return forbidden(t),
            Err(e) => view.errors = worded(t, &e),
        }
    }
    page(view.render())
}

/// The sheet as CSV: one line per person, each figure and score, the total.
async fn sheet_csv(State(state): State<AppState>, s: Signed, Query(p): Query<Params>) -> Response {
    let t = s.t;
    let caller = &s.info.caller;
    if !may_read(caller) {
        return forbidden(t);
    }
    let (campus, department) = (some(&p.campus).unwrap_or_default(), some(&p.department).unwrap_or_default());
    let month = some(&p.month).unwrap_or_else(|| state.sheets.this_month());
    let sheet = match state.sheets.sheet(caller, &campus, &department, &month).await {
        Ok(sheet) => sheet,
        Err(SheetError::Forbidden(_)) => return forbidden(t),
        // The page says what is wrong.
        Err(_) => return see_other(&sheet_href(&campus, &department, &month, false)),
    };
    let mut header: Vec<String> =
        vec![t.get("perf-practitioner").into(), t.get("perf-name").into(), t.get("perf-title-col").into()];
    header.extend(headers(t, &sheet));
    header.push(t.get("perf-total").into());
    let rows = sheet.rows.iter().map(|r| {
        let mut row = vec![r.practitioner.clone(), pick(t, &r.names), r.title.clone().unwrap_or_default()];
        row.extend(cells(t, &sheet, r));
        row.push(percent(r.scored.total));
        row
    });
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    csv(t, &format!("performance-{campus}-{department}-{month}.csv"), &header, rows)
}

#[derive(Template)]
#[template(path = "manage/performance_formula.html")]
struct FormulaPage<'a> {
    t: Tr,
    shell: &'a Shell,
    campus: String,
    campus_name: String,
    method: String,
    cap: String,
    /// (code, label, weight, target).
    lines: Vec<(&'static str, String, String, String)>,
    set: String,
    done: Option<String>,
    errors: Vec<String>,
}

async fn render_formula(
    state: &AppState,
    s: &Signed,
    campus: &str,
    form: FormulaForm,
    errors: Vec<String>,
    done: Option<String>,
) -> Response {
    let t = s.t;
    let shell = shell(state, &s.info, t, &s.headers).await;
    let set = match state.sheets.formula(campus).await {
        Ok(f) => match f.set {
            Some((who, at)) => t.get("perf-formula-set").replace("{who}", &who).replace("{at}", &local_time(at)),
            None => t.get("perf-formula-default").to_string(),
        },
        Err(_) => String::new(),
    };
    let value = |list: &[(String, String)], code: &str| {
        list.iter().find(|(c, _)| c == code).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let lines = Indicator::ALL
        .into_iter()
        .map(|i| {
            (i.code(), t.get(&label_key(i)).to_string(), value(&form.weights, i.code()), value(&form.targets, i.code()))
        })
        .collect();
    page(
        FormulaPage {
            t,
            shell: &shell,
            campus: campus.to_string(),
            campus_name: campus_name(state, campus, t).await,
            method: form.method,
            cap: form.cap_percent,
            lines,
            set,
            done: done.map(|_| t.get("perf-formula-saved").to_string()),
            errors,
        }
        .render(),
    )
}

async fn formula_page(State(state): State<AppState>, s: Signed, Query(p): Query<Params>) -> Response {
    let campus = some(&p.campus).unwrap_or_default();
    if !Sheets::may_set(&s.info.caller, &campus) {
        return forbidden(s.t);
    }
    let f = match state.sheets.formula(&campus).await {
        Ok(f) => f.formula,
        Err(e) => return render_formula(&state, &s, &campus, FormulaForm::default(), worded(s.t, &e), None).await,
    };
    let (method, cap) = match f.method {
        Method::Relative => ("relative", 120),
        Method::Target { cap_percent } => ("target", cap_percent),
    };
    let form = FormulaForm {
        method: method.into(),
        cap_percent: cap.to_string(),
        weights: f.weights.iter().map(|(i, w)| (i.code().to_string(), w.to_string())).collect(),
        targets: f.targets.iter().map(|(i, n)| (i.code().to_string(), n.to_string())).collect(),
    };
    render_formula(&state, &s, &campus, form, Vec::new(), p.done).await
}

async fn set_formula(
    State(state): State<AppState>,
    s: Signed,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    let campus = form_value(&form, "campus");
    if !Sheets::may_set(&s.info.caller, &campus) || !csrf_ok(&s, &form) {
        return forbidden(s.t);
    }
    let each = |prefix: &str| {
        Indicator::ALL
            .into_iter()
            .map(|i| (i.code().to_string(), form_value(&form, &format!("{prefix}.{}", i.code()))))
            .collect()
    };
    let f = FormulaForm {
        method: form_value(&form, "method"),
        cap_percent: form_value(&form, "cap"),
        weights: each("weight"),
        targets: each("target"),
    };
    match state.sheets.set_formula(&s.info.caller, &campus, &f).await {
        Ok(()) => see_other(&format!("/manage/performance/formula?campus={}&done=saved", urlencode(&campus))),
        Err(SheetError::Forbidden(_)) => forbidden(s.t),
        Err(e) => {
            let errors = worded(s.t, &e);
            render_formula(&state, &s, &campus, f, errors, None).await
        }
    }
}
