//! A FHIR search request parsed from URL parameters into typed criteria.
//!
//! The store turns these into SQL; here live the FHIR rules: prefixes, modifiers,
//! OR within one parameter (comma), AND across repeated parameters, escaping.
//! Unknown parameters and unsupported modifiers are errors that name the parameter
//! (strict handling), so a client never silently gets an unfiltered result.

use crate::datetime::{self, DateRange};
use crate::outcome::{Issue, IssueType};
use crate::reference::parse_reference;
use crate::search_params::{ParamKind, normalize, search_param};
use crate::types::ResourceType;

pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 1000;

/// Date comparison prefixes (FHIR R4 §3.1.1.4.1.4.2, without `sa`/`eb`/`ap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Prefix {
    pub const ALL: [&'static str; 6] = ["eq", "ne", "gt", "lt", "ge", "le"];

    fn split(s: &str) -> (Prefix, &str) {
        let p = match s.get(..2) {
            Some("eq") => Prefix::Eq,
            Some("ne") => Prefix::Ne,
            Some("gt") => Prefix::Gt,
            Some("lt") => Prefix::Lt,
            Some("ge") => Prefix::Ge,
            Some("le") => Prefix::Le,
            _ => return (Prefix::Eq, s),
        };
        (p, &s[2..])
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateValue {
    pub prefix: Prefix,
    pub range: DateRange,
}

/// `[system]|[code]` with the three spellings of "system".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenValue {
    pub system: TokenSystem,
    /// `None` for `system|`: any code in that system.
    pub code: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringValue {
    /// Normalized for the default starts-with match, as written for `:exact`.
    pub value: String,
    pub exact: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefValue {
    pub target_type: Option<String>,
    pub id: String,
}

/// One parameter occurrence; values inside are OR-ed, criteria are AND-ed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Criterion {
    Id(Vec<String>),
    LastUpdated(Vec<DateValue>),
    Token { param: &'static str, values: Vec<TokenValue> },
    String { param: &'static str, values: Vec<StringValue> },
    Reference { param: &'static str, values: Vec<RefValue> },
    Date { param: &'static str, values: Vec<DateValue> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchRequest {
    pub resource_type: ResourceType,
    pub criteria: Vec<Criterion>,
    pub count: usize,
    pub offset: usize,
    /// The parameters that were applied, for the Bundle's `self` and paging links.
    pub applied: Vec<(String, String)>,
}

/// Splits on unescaped commas and removes FHIR escapes (`\,` `\|` `\$` `\\`).
fn split_values(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => {
                    if n == '|' {
                        cur.push('\u{1}'); // an escaped bar that must not split system|code
                    } else {
                        cur.push(n);
                    }
                }
                None => cur.push('\\'),
            },
            ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn bad(param: &str, msg: impl Into<String>) -> Issue {
    Issue::error(IssueType::Invalid, msg.into()).at(param.to_string())
}

fn parse_date_value(param: &str, v: &str) -> Result<DateValue, Issue> {
    let (prefix, rest) = Prefix::split(v);
    let range = datetime::parse_range(rest).ok_or_else(|| {
        bad(
            param,
            format!("search parameter '{param}': '{v}' is not a date (rule: [eq|ne|gt|lt|ge|le]YYYY[-MM[-DD[Thh:mm[:ss][Z|+hh:mm]]]])"),
        )
    })?;
    Ok(DateValue { prefix, range })
}

fn parse_token(v: &str) -> TokenValue {
    let unescape = |s: &str| s.replace('\u{1}', "|");
    match v.split_once('|') {
        None => TokenValue { system: TokenSystem::Any, code: Some(unescape(v)) },
        Some(("", code)) => TokenValue { system: TokenSystem::None, code: Some(unescape(code)) },
        Some((sys, "")) => TokenValue { system: TokenSystem::Is(unescape(sys)), code: None },
        Some((sys, code)) => TokenValue { system: TokenSystem::Is(unescape(sys)), code: Some(unescape(code)) },
    }
}

fn parse_count(param: &str, v: &str, max: usize) -> Result<usize, Issue> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| bad(param, format!("'{param}' must be a whole number from 0 to {max}, found '{v}'")))
}

/// Parses the query parameters of `GET /fhir/{type}?...` or a `_search` form body.
pub fn parse_search(resource_type: ResourceType, params: &[(String, String)]) -> Result<SearchRequest, Issue> {
    let mut req =
        SearchRequest { resource_type, criteria: Vec::new(), count: DEFAULT_COUNT, offset: 0, applied: Vec::new() };
    for (key, raw) in params {
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (key.as_str(), None),
        };
        match name {
            "_count" => {
                req.count = parse_count(key, raw, MAX_COUNT)?;
                continue;
            }
            "_offset" => {
                req.offset = parse_count(key, raw, usize::MAX)?;
                continue;
            }
            "_format" | "_pretty" => continue,
            _ => {}
        }
        if raw.is_empty() {
            return Err(bad(key, format!("search parameter '{key}' has an empty value")));
        }
        let values = split_values(raw);
        let criterion = match name {
            "_id" => {
                no_modifier(key, modifier)?;
                Criterion::Id(values)
            }
            "_lastUpdated" => {
                no_modifier(key, modifier)?;
                Criterion::LastUpdated(values.iter().map(|v| parse_date_value(key, v)).collect::<Result<_, _>>()?)
            }
            _ => {
                let Some(sp) = search_param(resource_type.as_str(), name) else {
                    return Err(Issue::error(
                        IssueType::NotSupported,
                        format!("unknown search parameter '{name}' for {resource_type} (see /fhir/metadata for the supported ones)"),
                    )
                    .at(key.clone()));
                };
                let param = sp.code.as_str();
                match sp.kind {
                    ParamKind::Token => {
                        no_modifier(key, modifier)?;
                        Criterion::Token { param, values: values.iter().map(|v| parse_token(v)).collect() }
                    }
                    ParamKind::String => {
                        let exact = match modifier {
                            None => false,
                            Some("exact") => true,
                            Some(m) => return Err(unsupported_modifier(key, m)),
                        };
                        let values = values
                            .iter()
                            .map(|v| {
                                let v = v.replace('\u{1}', "|");
                                StringValue { value: if exact { v } else { normalize(&v) }, exact }
                            })
                            .collect();
                        Criterion::String { param, values }
                    }
                    ParamKind::Reference => {
                        let type_modifier = match modifier {
                            None => None,
                            Some(m) if ResourceType::parse(m).is_some() => Some(m.to_string()),
                            Some(m) => return Err(unsupported_modifier(key, m)),
                        };
                        let values = values
                            .iter()
                            .map(|v| match parse_reference(v) {
                                Some(r) => {
                                    if let Some(t) = type_modifier.as_ref().filter(|t| *t != r.resource_type) {
                                        return Err(bad(key, format!("'{v}' does not point to a {t}")));
                                    }
                                    Ok(RefValue {
                                        target_type: Some(r.resource_type.to_string()),
                                        id: r.id.to_string(),
                                    })
                                }
                                None if v.contains('/') || v.contains('?') => Err(bad(
                                    key,
                                    format!("'{v}' is not a reference (rule: [Type/]id or an absolute URL)"),
                                )),
                                None => Ok(RefValue { target_type: type_modifier.clone(), id: v.clone() }),
                            })
                            .collect::<Result<_, _>>()?;
                        Criterion::Reference { param, values }
                    }
                    ParamKind::Date => {
                        no_modifier(key, modifier)?;
                        Criterion::Date {
                            param,
                            values: values.iter().map(|v| parse_date_value(key, v)).collect::<Result<_, _>>()?,
                        }
                    }
                }
            }
        };
        req.criteria.push(criterion);
        req.applied.push((key.clone(), raw.clone()));
    }
    Ok(req)
}

fn unsupported_modifier(key: &str, m: &str) -> Issue {
    Issue::error(IssueType::NotSupported, format!("modifier ':{m}' is not supported on '{key}'")).at(key.to_string())
}

fn no_modifier(key: &str, modifier: Option<&str>) -> Result<(), Issue> {
    match modifier {
        None => Ok(()),
        Some(m) => Err(unsupported_modifier(key, m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn patient() -> ResourceType {
        ResourceType::parse("Patient").unwrap()
    }

    #[test]
    fn parses_each_kind() {
        let r = parse_search(
            patient(),
            &p(&[
                ("name", "Zhāng,Li"),
                ("identifier", "urn:x|1\\|2"),
                ("birthdate", "ge1980-01"),
                ("organization", "Organization/o1"),
                ("_count", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(r.count, 5);
        assert_eq!(
            r.criteria[0],
            Criterion::String {
                param: "name",
                values: vec![
                    StringValue { value: "zhang".into(), exact: false },
                    StringValue { value: "li".into(), exact: false }
                ]
            }
        );
        assert_eq!(
            r.criteria[1],
            Criterion::Token {
                param: "identifier",
                values: vec![TokenValue { system: TokenSystem::Is("urn:x".into()), code: Some("1|2".into()) }]
            }
        );
        match &r.criteria[2] {
            Criterion::Date { values, .. } => assert_eq!(values[0].prefix, Prefix::Ge),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.criteria[3],
            Criterion::Reference {
                param: "organization",
                values: vec![RefValue { target_type: Some("Organization".into()), id: "o1".into() }]
            }
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        let e = parse_search(patient(), &p(&[("foo", "1")])).unwrap_err();
        assert_eq!(e.expression.as_deref(), Some("foo"));
        let e = parse_search(patient(), &p(&[("birthdate", "gt-yesterday")])).unwrap_err();
        assert_eq!(e.expression.as_deref(), Some("birthdate"));
        let e = parse_search(patient(), &p(&[("name:contains", "x")])).unwrap_err();
        assert!(e.diagnostics.contains(":contains"));
        let e = parse_search(patient(), &p(&[("_count", "-1")])).unwrap_err();
        assert_eq!(e.expression.as_deref(), Some("_count"));
    }
}
