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

/// A number search value: the prefix, the value, and the half-width of its implicit
/// precision (`100` is 99.5 ≤ x < 100.5; `100.0` is 99.95 ≤ x < 100.05).
#[derive(Clone, Debug, PartialEq)]
pub struct NumberValue {
    pub prefix: Prefix,
    pub value: f64,
    pub half: f64,
}

impl Eq for NumberValue {}

/// A quantity search value: a number with optional system and unit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantityValue {
    pub number: NumberValue,
    pub system: Option<String>,
    pub code: Option<String>,
}

fn parse_number(key: &str, v: &str) -> Result<NumberValue, Issue> {
    let (prefix, rest) = Prefix::split(v);
    let err = || bad(key, format!("'{v}' is not a number (rule: [eq|ne|gt|lt|ge|le]decimal)"));
    let value: f64 = rest.parse().map_err(|_| err())?;
    if !value.is_finite() {
        return Err(err());
    }
    let mantissa = rest.split(['e', 'E']).next().unwrap_or(rest);
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    Ok(NumberValue { prefix, value, half: 0.5 * 10f64.powi(-decimals) })
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
    /// Normalized for the default starts-with and `:contains` matches, as written for
    /// `:exact`.
    pub value: String,
    pub exact: bool,
    /// `:contains`: anywhere in the value.
    pub contains: bool,
}

/// The second part of a composite search value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecondTerm {
    Token(TokenValue),
    Quantity(QuantityValue),
    Date(DateValue),
    /// Normalized; matches as a prefix, like a string parameter.
    String(String),
}

/// One composite search value: `[system|]code$second`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompositeTerm {
    pub first: TokenValue,
    pub second: SecondTerm,
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
    /// `negate` is the `:not` modifier: resources with no matching value.
    Token {
        param: &'static str,
        values: Vec<TokenValue>,
        negate: bool,
    },
    /// `:missing=true|false`.
    Missing {
        param: &'static str,
        kind: ParamKind,
        missing: bool,
    },
    /// Number values: `[prefix]number`, with the value's implicit precision for `eq`/`ne`.
    Number {
        param: &'static str,
        values: Vec<NumberValue>,
    },
    /// Quantity values: `[prefix]number|system|code`.
    Quantity {
        param: &'static str,
        values: Vec<QuantityValue>,
    },
    /// Uri values; `below` is the `:below` modifier (the value is a prefix of the
    /// stored uri), `above` is `:above` (the stored uri is a prefix of the value).
    Uri {
        param: &'static str,
        values: Vec<String>,
        below: bool,
        above: bool,
    },
    /// Composite values `token$second`, both parts matched on the same element.
    Composite {
        param: &'static str,
        values: Vec<CompositeTerm>,
    },
    /// `param:Target.inner`: resources whose reference points at a `target` matching `inner`.
    Chain {
        param: &'static str,
        target: ResourceType,
        inner: Box<Criterion>,
    },
    /// `_has:Source:param:inner`: resources pointed at by a `source` matching `inner`.
    Has {
        source: ResourceType,
        param: &'static str,
        inner: Box<Criterion>,
    },
    String {
        param: &'static str,
        values: Vec<StringValue>,
    },
    Reference {
        param: &'static str,
        values: Vec<RefValue>,
    },
    Date {
        param: &'static str,
        values: Vec<DateValue>,
    },
}

/// What a page is ordered by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKey {
    Id,
    LastUpdated,
    Param { param: &'static str, kind: ParamKind },
}

/// `_include` / `_revinclude`: `source_type:param[:target_type]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    pub source_type: ResourceType,
    pub param: &'static str,
    pub target_type: Option<ResourceType>,
    pub iterate: bool,
}

/// `_total`: whether to count all matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Total {
    Accurate,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchRequest {
    pub resource_type: ResourceType,
    pub criteria: Vec<Criterion>,
    pub count: usize,
    pub offset: usize,
    /// `_sort` keys, `true` for descending.
    pub sort: Vec<(SortKey, bool)>,
    pub includes: Vec<Include>,
    pub revincludes: Vec<Include>,
    pub total: Total,
    /// `_elements`: top-level elements to keep (plus id, meta, resourceType).
    pub elements: Option<Vec<String>>,
    /// `_summary=data`: leave out the narrative (`text`).
    pub drop_text: bool,
    /// `_cursor`: continue after this (last updated, id) in the default order, so
    /// pages stay consistent while writes happen (keyset paging).
    pub cursor: Option<(i64, String)>,
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
    let mut req = SearchRequest {
        resource_type,
        criteria: Vec::new(),
        count: DEFAULT_COUNT,
        offset: 0,
        sort: Vec::new(),
        includes: Vec::new(),
        revincludes: Vec::new(),
        total: Total::Accurate,
        elements: None,
        drop_text: false,
        cursor: None,
        applied: Vec::new(),
    };
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
            "_cursor" => {
                let parsed = raw.split_once(':').and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.to_string())));
                req.cursor =
                    Some(parsed.ok_or_else(|| bad(key, "'_cursor' comes from a next link (rule: <time>:<id>)"))?);
                continue;
            }
            "_sort" => {
                for k in raw.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    let (name, desc) = match k.strip_prefix('-') {
                        Some(n) => (n, true),
                        None => (k, false),
                    };
                    let key = match name {
                        "_id" => SortKey::Id,
                        "_lastUpdated" => SortKey::LastUpdated,
                        other => match search_param(resource_type.as_str(), other) {
                            Some(sp) if matches!(sp.kind, ParamKind::Date | ParamKind::String | ParamKind::Token) => {
                                SortKey::Param { param: sp.code.as_str(), kind: sp.kind }
                            }
                            _ => {
                                return Err(bad(
                                    key,
                                    format!(
                                        "cannot sort by '{other}' (rule: _id, _lastUpdated or a date, string or token parameter of {resource_type})"
                                    ),
                                ));
                            }
                        },
                    };
                    req.sort.push((key, desc));
                }
                req.applied.push((key.clone(), raw.clone()));
                continue;
            }
            "_include" | "_revinclude" => {
                let iterate = match modifier {
                    None => false,
                    Some("iterate") | Some("recurse") => true,
                    Some(m) => return Err(unsupported_modifier(key, m)),
                };
                let inc = parse_include(name, raw, iterate)?;
                if name == "_include" {
                    if !iterate && inc.source_type != resource_type {
                        return Err(bad(
                            key,
                            format!(
                                "_include source '{}' must be the searched type {resource_type} (or use :iterate)",
                                inc.source_type
                            ),
                        ));
                    }
                    req.includes.push(inc);
                } else {
                    req.revincludes.push(inc);
                }
                req.applied.push((key.clone(), raw.clone()));
                continue;
            }
            "_total" => {
                req.total = match raw.as_str() {
                    "none" => Total::None,
                    "accurate" | "estimate" => Total::Accurate,
                    _ => return Err(bad(key, format!("_total '{raw}' (rule: none, estimate or accurate)"))),
                };
                req.applied.push((key.clone(), raw.clone()));
                continue;
            }
            "_summary" => {
                // `true` and `text` need the element definitions' isSummary flags and
                // mandatory primitives, which the R4 JSON Schema this server is built
                // from does not carry; they are refused rather than approximated.
                match raw.as_str() {
                    "count" => req.count = 0,
                    "data" => req.drop_text = true,
                    "false" => {}
                    _ => {
                        return Err(Issue::error(
                            IssueType::NotSupported,
                            format!("_summary={raw} is not supported (count, data and false are)"),
                        )
                        .at(key.clone()));
                    }
                }
                req.applied.push((key.clone(), raw.clone()));
                continue;
            }
            "_elements" => {
                req.elements = Some(raw.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect());
                req.applied.push((key.clone(), raw.clone()));
                continue;
            }
            _ => {}
        }
        if raw.is_empty() {
            return Err(bad(key, format!("search parameter '{key}' has an empty value")));
        }
        let criterion = parse_criterion(resource_type, key, key, raw, 0)?;
        req.criteria.push(criterion);
        req.applied.push((key.clone(), raw.clone()));
    }
    Ok(req)
}

/// `Type:param[:Target]` of `_include` / `_revinclude` (`*` is not supported).
fn parse_include(name: &str, raw: &str, iterate: bool) -> Result<Include, Issue> {
    let rule = format!("'{raw}' is not an include (rule: Type:parameter[:TargetType], a reference parameter)");
    let mut parts = raw.split(':');
    let (Some(t), Some(p)) = (parts.next(), parts.next()) else { return Err(bad(name, rule)) };
    let source_type = ResourceType::parse(t).ok_or_else(|| bad(name, rule.clone()))?;
    let sp = search_param(t, p).filter(|sp| sp.kind == ParamKind::Reference).ok_or_else(|| bad(name, rule.clone()))?;
    let target_type = match parts.next() {
        None => None,
        Some(tt) => Some(ResourceType::parse(tt).ok_or_else(|| bad(name, rule.clone()))?),
    };
    Ok(Include { source_type, param: sp.code.as_str(), target_type, iterate })
}

/// Deepest chain or `_has` nesting accepted.
const MAX_CHAIN: usize = 4;

/// One search parameter (`key` without the value) on `resource_type`, following
/// chains (`subject:Patient.name`) and reverse chains (`_has:Observation:patient:code`)
/// recursively. `full` is the whole parameter as the client wrote it, for errors.
fn parse_criterion(
    resource_type: ResourceType,
    full: &str,
    key: &str,
    raw: &str,
    depth: usize,
) -> Result<Criterion, Issue> {
    if depth > MAX_CHAIN {
        return Err(bad(full, format!("'{full}' chains deeper than {MAX_CHAIN} levels")));
    }
    if let Some(rest) = key.strip_prefix("_has:") {
        let mut parts = rest.splitn(3, ':');
        let (Some(src), Some(param), Some(inner)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(
                full,
                format!("'{full}' is not a reverse chain (rule: _has:Type:reference-parameter:search-parameter)"),
            ));
        };
        let source =
            ResourceType::parse(src).ok_or_else(|| bad(full, format!("_has: '{src}' is not a supported type")))?;
        let sp = search_param(src, param)
            .filter(|sp| sp.kind == ParamKind::Reference)
            .ok_or_else(|| bad(full, format!("_has: '{param}' is not a reference parameter of {src}")))?;
        let inner = parse_criterion(source, full, inner, raw, depth + 1)?;
        return Ok(Criterion::Has { source, param: sp.code.as_str(), inner: Box::new(inner) });
    }
    let (head, tail) = match key.split_once('.') {
        Some((h, t)) => (h, Some(t)),
        None => (key, None),
    };
    let (name, modifier) = match head.split_once(':') {
        Some((n, m)) => (n, Some(m)),
        None => (head, None),
    };
    if let Some(tail) = tail {
        let sp = search_param(resource_type.as_str(), name).filter(|sp| sp.kind == ParamKind::Reference).ok_or_else(
            || bad(full, format!("'{name}' is not a reference parameter of {resource_type}, so it cannot be chained")),
        )?;
        let target = match modifier {
            Some(m) => ResourceType::parse(m).ok_or_else(|| bad(full, format!("'{m}' is not a supported type")))?,
            None => {
                let supported: Vec<ResourceType> = sp.targets.iter().filter_map(|t| ResourceType::parse(t)).collect();
                match supported.as_slice() {
                    [one] => *one,
                    _ => {
                        return Err(bad(
                            full,
                            format!(
                                "'{name}' can point to several types; name one, e.g. {name}:{}.{tail}",
                                supported.first().map_or("Patient", |t| t.as_str())
                            ),
                        ));
                    }
                }
            }
        };
        let inner = parse_criterion(target, full, tail, raw, depth + 1)?;
        return Ok(Criterion::Chain { param: sp.code.as_str(), target, inner: Box::new(inner) });
    }
    let key = full;
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
                .at(full.to_string()));
            };
            let param = sp.code.as_str();
            if modifier == Some("missing") {
                let missing = match raw {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(key, format!("'{key}' takes true or false"))),
                };
                return Ok(Criterion::Missing { param, kind: sp.kind, missing });
            }
            match sp.kind {
                ParamKind::Token => {
                    let negate = match modifier {
                        None => false,
                        Some("not") => true,
                        Some("text") => {
                            let values = values
                                .iter()
                                .map(|v| StringValue {
                                    value: normalize(&v.replace('\u{1}', "|")),
                                    exact: false,
                                    contains: false,
                                })
                                .collect();
                            return Ok(Criterion::String { param: sp.text_key.as_str(), values });
                        }
                        Some(m) => return Err(unsupported_modifier(key, m)),
                    };
                    Criterion::Token { param, values: values.iter().map(|v| parse_token(v)).collect(), negate }
                }
                ParamKind::String => {
                    let (exact, contains) = match modifier {
                        None => (false, false),
                        Some("exact") => (true, false),
                        Some("contains") => (false, true),
                        Some(m) => return Err(unsupported_modifier(key, m)),
                    };
                    let values = values
                        .iter()
                        .map(|v| {
                            let v = v.replace('\u{1}', "|");
                            StringValue { value: if exact { v } else { normalize(&v) }, exact, contains }
                        })
                        .collect();
                    Criterion::String { param, values }
                }
                ParamKind::Reference => {
                    if modifier == Some("identifier") {
                        let values = values.iter().map(|v| parse_token(v)).collect();
                        return Ok(Criterion::Token { param: sp.identifier_key.as_str(), values, negate: false });
                    }
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
                                Ok(RefValue { target_type: Some(r.resource_type.to_string()), id: r.id.to_string() })
                            }
                            None if v.contains('/') || v.contains('?') => {
                                Err(bad(key, format!("'{v}' is not a reference (rule: [Type/]id or an absolute URL)")))
                            }
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
                ParamKind::Number => {
                    no_modifier(key, modifier)?;
                    Criterion::Number {
                        param,
                        values: values.iter().map(|v| parse_number(key, v)).collect::<Result<_, _>>()?,
                    }
                }
                ParamKind::Quantity => {
                    no_modifier(key, modifier)?;
                    let values = values.iter().map(|v| parse_quantity(key, v)).collect::<Result<_, Issue>>()?;
                    Criterion::Quantity { param, values }
                }
                ParamKind::Uri => {
                    let (below, above) = match modifier {
                        None => (false, false),
                        Some("below") => (true, false),
                        Some("above") => (false, true),
                        Some(m) => return Err(unsupported_modifier(key, m)),
                    };
                    let values = values.iter().map(|v| v.replace('\u{1}', "|")).collect();
                    Criterion::Uri { param, values, below, above }
                }
                ParamKind::Composite => {
                    no_modifier(key, modifier)?;
                    let second = sp.composite.first().map_or(ParamKind::Token, |c| c.second.kind);
                    let values = split_composite(raw)
                        .iter()
                        .map(|(first, rest)| parse_composite(key, second, first, rest))
                        .collect::<Result<_, Issue>>()?;
                    Criterion::Composite { param, values }
                }
            }
        }
    };
    Ok(criterion)
}

fn parse_quantity(key: &str, v: &str) -> Result<QuantityValue, Issue> {
    let mut parts = v.split('|');
    let number = parse_number(key, parts.next().unwrap_or_default())?;
    let system = parts.next().filter(|s| !s.is_empty()).map(|s| s.replace('\u{1}', "|"));
    let code = parts.next().filter(|s| !s.is_empty()).map(|s| s.replace('\u{1}', "|"));
    Ok(QuantityValue { number, system, code })
}

/// Splits a composite parameter's raw value on unescaped commas (OR), and each value
/// on its first unescaped `$`, keeping the escapes for [`split_values`].
fn split_composite(raw: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let (mut first, mut second): (String, Option<String>) = (String::new(), None);
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => out.push((std::mem::take(&mut first), second.take())),
            '$' if second.is_none() => second = Some(String::new()),
            _ => {
                let cur = second.as_mut().unwrap_or(&mut first);
                cur.push(c);
                if c == '\\'
                    && let Some(n) = chars.next()
                {
                    cur.push(n);
                }
            }
        }
    }
    out.push((first, second));
    out
}

/// One composite value: a token, `$`, then a value of the second part's type.
fn parse_composite(key: &str, second: ParamKind, first: &str, rest: &Option<String>) -> Result<CompositeTerm, Issue> {
    let unescape = |s: &str| split_values(s).concat();
    let Some(rest) = rest.as_deref().filter(|r| !r.is_empty() && !first.is_empty()) else {
        return Err(bad(
            key,
            format!("'{key}' is a composite parameter (rule: [system|]code${} value)", second.as_str()),
        ));
    };
    let first = parse_token(&unescape(first));
    let rest = unescape(rest);
    let second = match second {
        ParamKind::Quantity => SecondTerm::Quantity(parse_quantity(key, &rest)?),
        ParamKind::Date => SecondTerm::Date(parse_date_value(key, &rest)?),
        ParamKind::String => SecondTerm::String(normalize(&rest.replace('\u{1}', "|"))),
        _ => SecondTerm::Token(parse_token(&rest)),
    };
    Ok(CompositeTerm { first, second })
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
                    StringValue { value: "zhang".into(), exact: false, contains: false },
                    StringValue { value: "li".into(), exact: false, contains: false }
                ]
            }
        );
        assert_eq!(
            r.criteria[1],
            Criterion::Token {
                param: "identifier",
                values: vec![TokenValue { system: TokenSystem::Is("urn:x".into()), code: Some("1|2".into()) }],
                negate: false
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
        let e = parse_search(patient(), &p(&[("name:above", "x")])).unwrap_err();
        assert!(e.diagnostics.contains(":above"));
        let e = parse_search(patient(), &p(&[("_sort", "shoe-size")])).unwrap_err();
        assert_eq!(e.expression.as_deref(), Some("_sort"));
        let e = parse_search(patient(), &p(&[("_include", "Observation:subject")])).unwrap_err();
        assert_eq!(e.expression.as_deref(), Some("_include"));
        let e = parse_search(patient(), &p(&[("_count", "-1")])).unwrap_err();
        assert_eq!(e.expression.as_deref(), Some("_count"));
    }
}
