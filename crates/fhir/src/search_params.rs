//! Search parameters and the index rows they produce.
//!
//! The table comes from the official SearchParameter definitions; the generator has
//! already turned each FHIRPath expression into concrete JSON paths (choice types
//! expanded, `where(resolve() is X)` and `where(system='x')` turned into filters),
//! so extraction here is a plain walk over the resource.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::datetime::{self, DateRange, MAX_MS, MIN_MS};
use crate::reference::parse_reference;
use crate::types::SUPPORTED_TYPES;

const PARAMS_JSON: &str = include_str!("generated/search_params.json");

/// The version of the extraction rules below. Bump it whenever they change what rows a
/// resource produces: servers then rebuild stored rows (`lianyi reindex`).
/// 2: composite rows, token display texts (`:text`), reference identifiers (`:identifier`).
/// 3: `phonetic` indexes pinyin and initials (Hanzi names) instead of the name parts.
pub const INDEX_VERSION: i64 = 3;

/// Longest string kept in a string or token index row (PostgreSQL b-tree entries are
/// limited in size; longer values still match by prefix).
const MAX_INDEXED_CHARS: usize = 200;

/// Parameter types the server indexes and searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Token,
    String,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
    /// Two parts matched on the same element: a token, then a token, quantity, date
    /// or string (`code-value-quantity=http://loinc.org|2823-3$gt5.5`).
    Composite,
}

impl ParamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::Token => "token",
            ParamKind::String => "string",
            ParamKind::Reference => "reference",
            ParamKind::Date => "date",
            ParamKind::Number => "number",
            ParamKind::Quantity => "quantity",
            ParamKind::Uri => "uri",
            ParamKind::Composite => "composite",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "token" => Some(ParamKind::Token),
            "string" => Some(ParamKind::String),
            "reference" => Some(ParamKind::Reference),
            "date" => Some(ParamKind::Date),
            "number" => Some(ParamKind::Number),
            "quantity" => Some(ParamKind::Quantity),
            "uri" => Some(ParamKind::Uri),
            "composite" => Some(ParamKind::Composite),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawFilter {
    Ref(String),
    Eq((String, String)),
}

#[derive(Clone, Debug, Deserialize)]
struct RawPath {
    steps: Vec<(String, Option<RawFilter>)>,
    target: String,
}

#[derive(Clone, Debug, Deserialize)]
struct RawPart {
    #[serde(rename = "type")]
    kind: String,
    paths: Vec<RawPath>,
}

#[derive(Clone, Debug, Deserialize)]
struct RawRoot {
    root: RawPath,
    parts: Vec<RawPart>,
}

#[derive(Clone, Debug, Deserialize)]
struct RawParam {
    code: String,
    #[serde(rename = "type")]
    kind: String,
    resource: String,
    paths: Vec<RawPath>,
    targets: Vec<String>,
    description: String,
    #[serde(default)]
    composite: Vec<RawRoot>,
}

/// A filter applied to the items reached by one step.
#[derive(Clone, Debug)]
pub enum Filter {
    /// The Reference must point to this resource type.
    RefType(String),
    /// The element's child `field` must equal `value`.
    Eq(String, String),
}

#[derive(Clone, Debug)]
pub struct Step {
    pub field: String,
    pub filter: Option<Filter>,
}

/// One concrete path from the resource root to values of a known FHIR type.
#[derive(Clone, Debug)]
pub struct Path {
    pub steps: Vec<Step>,
    pub target: String,
}

/// One part of a composite parameter: its type and its paths from the root element.
#[derive(Clone, Debug)]
pub struct CompositePart {
    pub kind: ParamKind,
    pub paths: Vec<Path>,
}

/// A root element of a composite parameter (`Observation`, `Observation.component`)
/// and how to reach both parts from it: the parts must match on the same root.
#[derive(Clone, Debug)]
pub struct CompositeRoot {
    pub root: Path,
    pub first: CompositePart,
    pub second: CompositePart,
}

/// A search parameter this server supports.
#[derive(Clone, Debug)]
pub struct SearchParam {
    pub code: String,
    pub kind: ParamKind,
    /// The resource type it is defined on, or `Resource` for the common ones.
    pub base: String,
    pub paths: Vec<Path>,
    pub targets: Vec<String>,
    pub description: String,
    /// The roots and parts of a composite parameter (empty otherwise).
    pub composite: Vec<CompositeRoot>,
    /// `code:text`: where the display texts of a token parameter are indexed.
    pub text_key: String,
    /// `subject:identifier`: where the identifiers of a reference parameter are indexed.
    pub identifier_key: String,
}

impl SearchParam {
    /// `_id` and `_lastUpdated` are answered from the resource table itself.
    pub fn is_native(&self) -> bool {
        self.code == "_id" || self.code == "_lastUpdated"
    }
}

struct Registry {
    by_type: HashMap<String, Vec<SearchParam>>,
    common: Vec<SearchParam>,
}

#[allow(clippy::expect_used)] // the table is generated and compiled in; unit tests load it
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let raw: Vec<RawParam> = serde_json::from_str(PARAMS_JSON).expect("generated search_params.json parses");
    let mut by_type: HashMap<String, Vec<SearchParam>> = HashMap::new();
    let mut common = Vec::new();
    let path = |rp: RawPath| Path {
        steps: rp
            .steps
            .into_iter()
            .map(|(field, f)| Step {
                field,
                filter: f.map(|f| match f {
                    RawFilter::Ref(t) => Filter::RefType(t),
                    RawFilter::Eq((a, b)) => Filter::Eq(a, b),
                }),
            })
            .collect(),
        target: rp.target,
    };
    let part = |rp: RawPart| -> Option<CompositePart> {
        Some(CompositePart { kind: ParamKind::parse(&rp.kind)?, paths: rp.paths.into_iter().map(path).collect() })
    };
    for p in raw {
        let Some(kind) = ParamKind::parse(&p.kind) else { continue };
        let composite = p
            .composite
            .into_iter()
            .filter_map(|r| {
                let mut parts = r.parts.into_iter();
                Some(CompositeRoot { root: path(r.root), first: part(parts.next()?)?, second: part(parts.next()?)? })
            })
            .collect();
        let param = SearchParam {
            text_key: format!("{}:text", p.code),
            identifier_key: format!("{}:identifier", p.code),
            code: p.code,
            kind,
            base: p.resource.clone(),
            paths: p.paths.into_iter().map(path).collect(),
            targets: p.targets,
            description: p.description,
            composite,
        };
        if p.resource == "Resource" {
            common.push(param);
        } else if SUPPORTED_TYPES.contains(&p.resource.as_str()) {
            by_type.entry(p.resource).or_default().push(param);
        }
    }
    for list in by_type.values_mut() {
        list.sort_by(|a, b| a.code.cmp(&b.code));
    }
    common.sort_by(|a, b| a.code.cmp(&b.code));
    Registry { by_type, common }
});

/// Forces the table to load.
pub fn warm_up() {
    LazyLock::force(&REGISTRY);
}

/// The supported parameters of a resource type: common ones first, then its own.
pub fn search_params_for(resource_type: &str) -> Vec<&'static SearchParam> {
    let reg: &'static Registry = &REGISTRY;
    let mut out: Vec<&'static SearchParam> = reg.common.iter().collect();
    if let Some(list) = reg.by_type.get(resource_type) {
        out.extend(list.iter());
    }
    out
}

/// Looks up one parameter by code for a resource type.
pub fn search_param(resource_type: &str, code: &str) -> Option<&'static SearchParam> {
    let reg: &'static Registry = &REGISTRY;
    reg.by_type
        .get(resource_type)
        .and_then(|l| l.iter().find(|p| p.code == code))
        .or_else(|| reg.common.iter().find(|p| p.code == code))
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenRow {
    pub param: &'static str,
    pub system: Option<String>,
    pub code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StringRow {
    pub param: &'static str,
    /// Lower-cased and accent-folded, for the default starts-with match.
    pub norm: String,
    /// As written, for `:exact`.
    pub exact: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReferenceRow {
    pub param: &'static str,
    /// `None` for references that are not `Type/id` (canonical URLs, `urn:uuid:`).
    pub target_type: Option<String>,
    pub target_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateRow {
    pub param: &'static str,
    pub low: i64,
    pub high: i64,
}

#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub struct NumberRow {
    pub param: &'static str,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub struct QuantityRow {
    pub param: &'static str,
    pub value: f64,
    pub system: Option<String>,
    /// The unit code (UCUM code, or the currency of Money).
    pub code: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UriRow {
    pub param: &'static str,
    pub uri: String,
}

/// The second part of a composite row.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum CompositeValue {
    /// A token, or a string (`code` = normalized text, `system` none).
    Code {
        system: Option<String>,
        code: String,
    },
    Quantity {
        value: f64,
        system: Option<String>,
        code: Option<String>,
    },
    Date {
        low: i64,
        high: i64,
    },
}

/// One composite row: the first part (a token) and the second, from the same element.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub struct CompositeRow {
    pub param: &'static str,
    pub system: Option<String>,
    pub code: String,
    pub value: CompositeValue,
}

/// Every index row one resource produces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IndexRows {
    pub tokens: Vec<TokenRow>,
    pub strings: Vec<StringRow>,
    pub references: Vec<ReferenceRow>,
    pub dates: Vec<DateRow>,
    pub numbers: Vec<NumberRow>,
    pub quantities: Vec<QuantityRow>,
    pub uris: Vec<UriRow>,
    pub composites: Vec<CompositeRow>,
}

impl IndexRows {
    pub fn len(&self) -> usize {
        self.tokens.len()
            + self.strings.len()
            + self.references.len()
            + self.dates.len()
            + self.numbers.len()
            + self.quantities.len()
            + self.uris.len()
            + self.composites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_INDEXED_CHARS) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Case- and accent-insensitive form used by string search.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        for l in c.to_lowercase() {
            out.push(fold_accent(l));
        }
    }
    truncate(&out)
}

fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ǎ' => 'a',
        'ç' | 'č' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ǐ' => 'i',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ǒ' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ǔ' | 'ǖ' | 'ǘ' | 'ǚ' | 'ǜ' => 'u',
        'ý' | 'ÿ' => 'y',
        'š' => 's',
        'ž' => 'z',
        other => other,
    }
}

fn passes(item: &Value, filter: &Option<Filter>) -> bool {
    match filter {
        None => true,
        Some(Filter::Eq(field, value)) => item.get(field).and_then(Value::as_str) == Some(value.as_str()),
        Some(Filter::RefType(t)) => {
            let by_ref =
                item.get("reference").and_then(Value::as_str).and_then(parse_reference).map(|r| r.resource_type == t);
            match by_ref {
                Some(b) => b,
                None => item.get("type").and_then(Value::as_str) == Some(t.as_str()),
            }
        }
    }
}

fn walk<'a>(v: &'a Value, steps: &[Step], out: &mut Vec<&'a Value>) {
    match steps.split_first() {
        None => out.push(v),
        Some((step, rest)) => {
            let Some(child) = v.get(&step.field) else { return };
            let items: &[Value] = match child {
                Value::Array(a) => a,
                other => std::slice::from_ref(other),
            };
            for item in items {
                if !item.is_null() && passes(item, &step.filter) {
                    walk(item, rest, out);
                }
            }
        }
    }
}

fn str_field<'a>(v: &'a Value, f: &str) -> Option<&'a str> {
    v.get(f).and_then(Value::as_str)
}

fn each_str<'a>(v: &'a Value, f: &str) -> impl Iterator<Item = &'a str> {
    let vals: Vec<&str> = match v.get(f) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    vals.into_iter()
}

fn token(param: &'static str, system: Option<&str>, code: Option<&str>, out: &mut Vec<TokenRow>) {
    if let Some(code) = code {
        out.push(TokenRow { param, system: system.map(truncate), code: truncate(code) });
    }
}

fn date(param: &'static str, r: Option<DateRange>, out: &mut Vec<DateRow>) {
    if let Some(r) = r {
        out.push(DateRow { param, low: r.low, high: r.high });
    }
}

/// A display text of a token (`code:text` searches it like a string).
fn text(key: &'static str, s: Option<&str>, out: &mut Vec<StringRow>) {
    if let Some(s) = s.filter(|s| !s.trim().is_empty()) {
        out.push(StringRow { param: key, norm: normalize(s), exact: truncate(s) });
    }
}

/// The rows of one value `v` of type `target` reached by parameter `p`, indexed as `kind`
/// (the parameter's own type, or a composite part's).
fn extract_value(p: &'static SearchParam, kind: ParamKind, target: &str, v: &Value, rows: &mut IndexRows) {
    let param = p.code.as_str();
    match kind {
        ParamKind::Composite => {}
        ParamKind::Token => match target {
            "CodeableConcept" => {
                if let Some(codings) = v.get("coding").and_then(Value::as_array) {
                    for c in codings {
                        token(param, str_field(c, "system"), str_field(c, "code"), &mut rows.tokens);
                        text(&p.text_key, str_field(c, "display"), &mut rows.strings);
                    }
                }
                text(&p.text_key, str_field(v, "text"), &mut rows.strings);
            }
            "Coding" => {
                token(param, str_field(v, "system"), str_field(v, "code"), &mut rows.tokens);
                text(&p.text_key, str_field(v, "display"), &mut rows.strings);
            }
            "Identifier" | "ContactPoint" => {
                token(param, str_field(v, "system"), str_field(v, "value"), &mut rows.tokens)
            }
            "boolean" => {
                if let Some(b) = v.as_bool() {
                    token(param, None, Some(if b { "true" } else { "false" }), &mut rows.tokens);
                }
            }
            _ => token(param, None, v.as_str(), &mut rows.tokens),
        },
        ParamKind::String => {
            let mut push = |s: &str| {
                rows.strings.push(StringRow { param, norm: normalize(s), exact: truncate(s) });
            };
            match target {
                // Names by sound: pinyin and initials of the whole name (`lxm`).
                "HumanName" if param == "phonetic" => {
                    let whole = str_field(v, "text").map(str::to_string).unwrap_or_else(|| {
                        each_str(v, "family").chain(each_str(v, "given")).collect::<Vec<_>>().join(" ")
                    });
                    for key in crate::phonetic::keys(&whole) {
                        push(&key);
                    }
                }
                "HumanName" => {
                    for f in ["text", "family", "given", "prefix", "suffix"] {
                        each_str(v, f).for_each(&mut push);
                    }
                }
                "Address" => {
                    for f in ["text", "line", "city", "district", "state", "postalCode", "country"] {
                        each_str(v, f).for_each(&mut push);
                    }
                }
                _ => {
                    if let Some(s) = v.as_str() {
                        push(s);
                    }
                }
            }
        }
        ParamKind::Reference => match target {
            "Reference" => {
                if let Some(id) = v.get("identifier") {
                    token(&p.identifier_key, str_field(id, "system"), str_field(id, "value"), &mut rows.tokens);
                }
                if let Some(r) = str_field(v, "reference") {
                    if let Some(parsed) = parse_reference(r) {
                        rows.references.push(ReferenceRow {
                            param,
                            target_type: Some(parsed.resource_type.to_string()),
                            target_id: parsed.id.to_string(),
                        });
                    } else if r.starts_with("urn:") {
                        rows.references.push(ReferenceRow { param, target_type: None, target_id: truncate(r) });
                    }
                }
            }
            _ => {
                if let Some(s) = v.as_str() {
                    rows.references.push(ReferenceRow { param, target_type: None, target_id: truncate(s) });
                }
            }
        },
        ParamKind::Date => match target {
            "date" | "dateTime" | "instant" => date(param, v.as_str().and_then(datetime::parse_range), &mut rows.dates),
            "Period" => {
                let start = str_field(v, "start").and_then(datetime::parse_range);
                let end = str_field(v, "end").and_then(datetime::parse_range);
                if start.is_some() || end.is_some() {
                    rows.dates.push(DateRow {
                        param,
                        low: start.map_or(MIN_MS, |r| r.low),
                        high: end.map_or(MAX_MS, |r| r.high),
                    });
                }
            }
            "Timing" => {
                for e in each_str(v, "event") {
                    date(param, datetime::parse_range(e), &mut rows.dates);
                }
            }
            _ => {}
        },
        ParamKind::Number => {
            if let Some(n) = v.as_f64() {
                rows.numbers.push(NumberRow { param, value: n });
            }
        }
        ParamKind::Quantity => match target {
            "Money" => {
                if let Some(n) = v.get("value").and_then(Value::as_f64) {
                    let currency = str_field(v, "currency").map(str::to_string);
                    rows.quantities.push(QuantityRow {
                        param,
                        value: n,
                        system: Some("urn:iso:std:iso:4217".into()),
                        code: currency,
                    });
                }
            }
            "Quantity" | "Age" | "Duration" | "Distance" | "Count" | "SimpleQuantity" | "MoneyQuantity" => {
                if let Some(n) = v.get("value").and_then(Value::as_f64) {
                    let code = str_field(v, "code").or_else(|| str_field(v, "unit")).map(str::to_string);
                    rows.quantities.push(QuantityRow {
                        param,
                        value: n,
                        system: str_field(v, "system").map(str::to_string),
                        code,
                    });
                }
            }
            _ => {}
        },
        ParamKind::Uri => {
            if let Some(s) = v.as_str() {
                rows.uris.push(UriRow { param, uri: truncate(s) });
            }
        }
    }
}

/// The composite rows of `p` in `resource`: for each root element, every first-part
/// token paired with every second-part value found under that same element.
fn extract_composite(p: &'static SearchParam, resource: &Value, rows: &mut IndexRows) {
    let mut roots = Vec::new();
    let mut found = Vec::new();
    for c in &p.composite {
        roots.clear();
        walk(resource, &c.root.steps, &mut roots);
        for item in &roots {
            let (mut first, mut second) = (IndexRows::default(), IndexRows::default());
            for (part, out) in [(&c.first, &mut first), (&c.second, &mut second)] {
                for path in &part.paths {
                    found.clear();
                    walk(item, &path.steps, &mut found);
                    for v in &found {
                        extract_value(p, part.kind, &path.target, v, out);
                    }
                }
            }
            let values: Vec<CompositeValue> = match c.second.kind {
                ParamKind::Token => {
                    second.tokens.into_iter().map(|t| CompositeValue::Code { system: t.system, code: t.code }).collect()
                }
                ParamKind::String => second
                    .strings
                    .into_iter()
                    .filter(|s| s.param == p.code)
                    .map(|s| CompositeValue::Code { system: None, code: s.norm })
                    .collect(),
                ParamKind::Quantity => second
                    .quantities
                    .into_iter()
                    .map(|q| CompositeValue::Quantity { value: q.value, system: q.system, code: q.code })
                    .collect(),
                ParamKind::Date => {
                    second.dates.into_iter().map(|d| CompositeValue::Date { low: d.low, high: d.high }).collect()
                }
                _ => Vec::new(),
            };
            for t in first.tokens.iter().filter(|t| t.param == p.code) {
                for v in &values {
                    rows.composites.push(CompositeRow {
                        param: p.code.as_str(),
                        system: t.system.clone(),
                        code: t.code.clone(),
                        value: v.clone(),
                    });
                }
            }
        }
    }
}

/// Extracts every index row of a (valid) resource of a supported type.
pub fn extract_index(resource_type: &str, resource: &Value) -> IndexRows {
    let mut rows = IndexRows::default();
    let mut found = Vec::new();
    for p in search_params_for(resource_type) {
        if p.is_native() {
            continue;
        }
        if p.kind == ParamKind::Composite {
            extract_composite(p, resource, &mut rows);
            continue;
        }
        for path in &p.paths {
            found.clear();
            walk(resource, &path.steps, &mut found);
            for v in &found {
                extract_value(p, p.kind, &path.target, v, &mut rows);
            }
        }
    }
    rows.tokens.sort();
    rows.tokens.dedup();
    rows.strings.sort();
    rows.strings.dedup();
    rows.references.sort();
    rows.references.dedup();
    rows.dates.sort();
    rows.dates.dedup();
    rows.numbers.dedup();
    rows.quantities.dedup();
    rows.uris.sort();
    rows.uris.dedup();
    rows.composites.dedup();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patient_rows() {
        let p = json!({
            "resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.1", "value": "11010519491231002X"}],
            "name": [{"family": "Zhāng", "given": ["San"], "text": "张三"}],
            "telecom": [{"system": "phone", "value": "13800000000"}, {"system": "email", "value": "a@b.cn"}],
            "gender": "male", "birthDate": "1980-02",
            "managingOrganization": {"reference": "Organization/campus-a"},
            "meta": {"tag": [{"system": "urn:t", "code": "demo"}]}
        });
        let rows = extract_index("Patient", &p);
        assert!(rows.tokens.contains(&TokenRow { param: "gender", system: None, code: "male".into() }));
        assert!(rows.tokens.contains(&TokenRow {
            param: "phone",
            system: Some("phone".into()),
            code: "13800000000".into()
        }));
        assert!(!rows.tokens.iter().any(|t| t.param == "phone" && t.code == "a@b.cn"));
        assert!(rows.tokens.contains(&TokenRow { param: "_tag", system: Some("urn:t".into()), code: "demo".into() }));
        assert!(rows.strings.iter().any(|s| s.param == "name" && s.norm == "zhang"));
        assert!(rows.strings.iter().any(|s| s.param == "family" && s.exact == "Zhāng"));
        assert!(rows.strings.iter().any(|s| s.param == "name" && s.norm == "张三"));
        let bd = rows.dates.iter().find(|d| d.param == "birthdate").unwrap();
        assert_eq!(datetime::format_instant(bd.high), "1980-02-29T23:59:59.999Z");
        assert!(rows.references.contains(&ReferenceRow {
            param: "organization",
            target_type: Some("Organization".into()),
            target_id: "campus-a".into()
        }));
    }

    #[test]
    fn observation_subject_filtered_by_target_type() {
        let o = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
            "subject": {"reference": "Group/g1"},
            "effectivePeriod": {"start": "2024-01-01"}});
        let rows = extract_index("Observation", &o);
        assert!(rows.references.iter().any(|r| r.param == "subject"));
        assert!(!rows.references.iter().any(|r| r.param == "patient"));
        let d = rows.dates.iter().find(|d| d.param == "date").unwrap();
        assert_eq!(d.high, MAX_MS);
        assert!(rows.tokens.iter().any(|t| t.param == "code" && t.code == "718-7"));
    }

    #[test]
    fn every_supported_type_has_parameters() {
        for t in SUPPORTED_TYPES {
            assert!(search_params_for(t).len() > 5, "{t}");
        }
        assert!(search_param("Encounter", "patient").is_some());
        assert!(search_param("Encounter", "_lastUpdated").unwrap().is_native());
        assert!(search_param("Encounter", "nope").is_none());
    }
}
