//! Table-driven R4 validator generated from the official JSON Schema.
//!
//! Checks, per element: that it is defined on its type (no unknown properties), its
//! JSON kind, array or single, non-empty arrays and objects, required elements,
//! code enumerations, primitive formats (with real calendar checks for dates) and
//! nested resources (`contained`, bundle entries). Each failure names its path in
//! FHIRPath style (`Patient.name[0].given[1]`) and the rule it broke.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::datetime;
use crate::outcome::{Issue, IssueType, OperationOutcome};

const SCHEMA_JSON: &str = include_str!("generated/schema.json");
const MAX_ISSUES: usize = 50;

/// The problems found in one resource; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<Issue>);

impl ValidationErrors {
    pub fn into_outcome(self) -> OperationOutcome {
        OperationOutcome::new(self.0)
    }

    /// A one-line summary naming the first failing path.
    pub fn summary(&self) -> String {
        match self.0.first() {
            Some(i) => format!("{}: {}", i.expression.as_deref().unwrap_or(""), i.diagnostics),
            None => String::new(),
        }
    }
}

#[derive(Deserialize)]
struct RawSchema {
    primitives: HashMap<String, RawPrimitive>,
    types: HashMap<String, RawType>,
    resources: Vec<String>,
}

#[derive(Deserialize)]
struct RawPrimitive {
    json: String,
    pattern: Option<String>,
}

#[derive(Deserialize)]
struct RawType {
    props: HashMap<String, (String, Value, bool)>,
    required: Vec<String>,
}

/// How a primitive value is checked.
#[derive(Debug)]
enum Check {
    /// `string`/`markdown`: non-empty, no whitespace other than space, CR, LF, tab.
    Text,
    Pattern(Regex),
    /// date, dateTime, instant: pattern plus a real calendar check.
    Temporal(Regex),
    Decimal,
    Integer {
        min: i64,
    },
    Boolean,
    /// xhtml: any non-empty string.
    Xhtml,
}

#[derive(Debug)]
struct Primitive {
    name: String,
    check: Check,
}

#[derive(Debug)]
enum Kind {
    Complex(String),
    Primitive(usize),
    Resource,
    Enum(Vec<String>),
    Const(String),
}

#[derive(Debug)]
struct Prop {
    kind: Kind,
    array: bool,
}

#[derive(Debug)]
struct TypeDef {
    props: HashMap<String, Prop>,
    required: Vec<String>,
}

struct Schema {
    primitives: Vec<Primitive>,
    types: HashMap<String, TypeDef>,
    resources: HashSet<String>,
}

fn rule_of(name: &str) -> &'static str {
    match name {
        "date" => "a date YYYY, YYYY-MM or YYYY-MM-DD that exists in the calendar",
        "dateTime" => "a date or date-time YYYY[-MM[-DD[Thh:mm:ss[.sss](Z|+hh:mm)]]] that exists in the calendar",
        "instant" => "an instant YYYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm)",
        "time" => "a time hh:mm:ss",
        "code" => "a code: no leading, trailing or double whitespace",
        "id" => "an id of 1-64 letters, digits, '-' or '.'",
        "uri" | "url" | "canonical" => "a URI without whitespace",
        "oid" => "an OID urn:oid:1.2.3",
        "uuid" => "a UUID urn:uuid:...",
        "base64Binary" => "base64 data",
        "decimal" => "a JSON number",
        "integer" => "a JSON integer",
        "positiveInt" => "a JSON integer greater than 0",
        "unsignedInt" => "a JSON integer of 0 or more",
        "boolean" => "a JSON true or false",
        "xhtml" => "an XHTML string",
        _ => "a non-empty string without control characters",
    }
}

#[allow(clippy::expect_used)] // the table is generated and compiled in; unit tests load it
static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    let raw: RawSchema = serde_json::from_str(SCHEMA_JSON).expect("generated schema.json parses");
    let mut primitives = Vec::new();
    let mut by_name = HashMap::new();
    let mut by_pattern: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<&String> = raw.primitives.keys().collect();
    names.sort();
    for name in names {
        let p = &raw.primitives[name];
        let check = match (name.as_str(), p.json.as_str()) {
            ("string" | "markdown", _) => Check::Text,
            ("xhtml", _) => Check::Xhtml,
            ("boolean", _) => Check::Boolean,
            ("decimal", _) => Check::Decimal,
            ("integer", _) => Check::Integer { min: i64::from(i32::MIN) },
            ("positiveInt", _) => Check::Integer { min: 1 },
            ("unsignedInt", _) => Check::Integer { min: 0 },
            ("date" | "dateTime" | "instant", _) => {
                Check::Temporal(Regex::new(p.pattern.as_deref().unwrap_or(".*")).expect("schema pattern compiles"))
            }
            (_, _) => match &p.pattern {
                Some(pat) => Check::Pattern(Regex::new(pat).expect("schema pattern compiles")),
                None => Check::Text,
            },
        };
        if let Some(pat) = &p.pattern {
            by_pattern.entry(pat.clone()).or_insert(primitives.len());
        }
        by_name.insert(name.clone(), primitives.len());
        primitives.push(Primitive { name: name.clone(), check });
    }
    let mut types = HashMap::new();
    for (tname, t) in &raw.types {
        let mut props = HashMap::new();
        for (pname, (kind, arg, array)) in &t.props {
            let kind = match kind.as_str() {
                "t" => {
                    let target = arg.as_str().unwrap_or_default();
                    if target == "ResourceList" {
                        Kind::Resource
                    } else if let Some(i) = by_name.get(target) {
                        Kind::Primitive(*i)
                    } else {
                        Kind::Complex(target.to_string())
                    }
                }
                "x" => Kind::Primitive(by_name["xhtml"]),
                "e" => Kind::Enum(
                    arg.as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                ),
                "c" => Kind::Const(arg.as_str().unwrap_or_default().to_string()),
                _ => {
                    // inline primitive (choice values of Extension and friends)
                    let pat = arg.get(1).and_then(Value::as_str).unwrap_or_default();
                    let json = arg.get(0).and_then(Value::as_str).unwrap_or_default();
                    let known = if json == "boolean" { by_name.get("boolean") } else { by_pattern.get(pat) };
                    match known {
                        Some(i) => Kind::Primitive(*i),
                        None => {
                            let i = primitives.len();
                            primitives.push(Primitive {
                                name: "string".into(),
                                check: Check::Pattern(Regex::new(pat).expect("schema pattern compiles")),
                            });
                            by_pattern.insert(pat.to_string(), i);
                            Kind::Primitive(i)
                        }
                    }
                }
            };
            props.insert(pname.clone(), Prop { kind, array: *array });
        }
        types.insert(tname.clone(), TypeDef { props, required: t.required.clone() });
    }
    Schema { primitives, types, resources: raw.resources.into_iter().collect() }
});

/// Forces the tables to load (at start-up, so the first request is not slower).
pub fn warm_up() {
    LazyLock::force(&SCHEMA);
}

/// Whether `name` is any R4 resource type (not only the ones this server stores).
pub fn is_r4_resource_type(name: &str) -> bool {
    SCHEMA.resources.contains(name)
}

struct Walker<'s> {
    schema: &'s Schema,
    path: String,
    issues: Vec<Issue>,
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            if short.len() < s.len() { format!("the string '{short}…'") } else { format!("the string '{short}'") }
        }
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

impl Walker<'_> {
    fn push(&mut self, code: IssueType, msg: String) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(Issue::error(code, msg).at(self.path.clone()));
        }
    }

    fn full(&self) -> bool {
        self.issues.len() >= MAX_ISSUES
    }

    fn resource(&mut self, v: &Value) {
        let Some(obj) = v.as_object() else {
            self.push(IssueType::Structure, format!("expected a resource (a JSON object), found {}", describe(v)));
            return;
        };
        let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
            self.push(IssueType::Required, "missing required element 'resourceType'".into());
            return;
        };
        if !self.schema.resources.contains(rt) {
            self.push(IssueType::Value, format!("'{rt}' is not an R4 resource type"));
            return;
        }
        let saved = self.path.len();
        if self.path.is_empty() {
            self.path.push_str(rt);
        } else {
            self.path.push_str(".ofType(");
            self.path.push_str(rt);
            self.path.push(')');
        }
        self.complex(v, rt);
        self.path.truncate(saved);
    }

    fn complex(&mut self, v: &Value, tname: &str) {
        let Some(obj) = v.as_object() else {
            self.push(IssueType::Structure, format!("expected an object ({tname}), found {}", describe(v)));
            return;
        };
        let Some(def) = self.schema.types.get(tname) else {
            self.push(IssueType::Structure, format!("unknown type {tname}"));
            return;
        };
        if obj.is_empty() {
            self.push(IssueType::Structure, format!("an object ({tname}) must not be empty"));
            return;
        }
        for (key, val) in obj {
            if self.full() {
                return;
            }
            let saved = self.path.len();
            self.path.push('.');
            self.path.push_str(key);
            match def.props.get(key) {
                None => self.push(IssueType::Structure, format!("unknown element '{key}': not defined on {tname}")),
                Some(prop) => {
                    let companion = if let Some(base) = key.strip_prefix('_') {
                        obj.get(base)
                    } else {
                        obj.get(&format!("_{key}"))
                    };
                    let nulls_allowed = key.starts_with('_') || companion.is_some();
                    self.prop(val, prop, nulls_allowed);
                }
            }
            self.path.truncate(saved);
        }
        for req in &def.required {
            if !obj.contains_key(req) && !obj.contains_key(&format!("_{req}")) {
                let saved = self.path.len();
                self.path.push('.');
                self.path.push_str(req);
                self.push(IssueType::Required, format!("missing required element '{req}' of {tname}"));
                self.path.truncate(saved);
            }
        }
    }

    fn prop(&mut self, v: &Value, prop: &Prop, nulls_allowed: bool) {
        if prop.array {
            let Some(items) = v.as_array() else {
                self.push(IssueType::Structure, format!("expected an array, found {}", describe(v)));
                return;
            };
            if items.is_empty() {
                self.push(IssueType::Structure, "an array must not be empty".into());
                return;
            }
            for (i, item) in items.iter().enumerate() {
                if self.full() {
                    return;
                }
                let saved = self.path.len();
                self.path.push_str(&format!("[{i}]"));
                if item.is_null() {
                    if !nulls_allowed {
                        self.push(
                            IssueType::Structure,
                            "null is only allowed in arrays of primitives with extensions".into(),
                        );
                    }
                } else {
                    self.item(item, &prop.kind);
                }
                self.path.truncate(saved);
            }
        } else {
            if v.is_array() {
                self.push(IssueType::Structure, "expected a single value, found an array".into());
                return;
            }
            if v.is_null() {
                self.push(IssueType::Structure, "null is not allowed here; leave the element out".into());
                return;
            }
            self.item(v, &prop.kind);
        }
    }

    fn item(&mut self, v: &Value, kind: &Kind) {
        match kind {
            Kind::Complex(t) => self.complex(v, t),
            Kind::Resource => self.resource(v),
            Kind::Primitive(i) => self.primitive(v, *i),
            Kind::Enum(codes) => match v.as_str() {
                Some(s) if codes.iter().any(|c| c == s) => {}
                _ => {
                    let allowed = codes.join(", ");
                    self.push(IssueType::Value, format!("{} is not one of the allowed codes: {allowed}", describe(v)));
                }
            },
            Kind::Const(c) => {
                if v.as_str() != Some(c) {
                    self.push(IssueType::Value, format!("must be '{c}', found {}", describe(v)));
                }
            }
        }
    }

    fn primitive(&mut self, v: &Value, i: usize) {
        let p = &self.schema.primitives[i];
        let ok = match &p.check {
            Check::Text => v.as_str().is_some_and(|s| {
                !s.is_empty()
                    && s.chars().all(|c| !c.is_whitespace() || matches!(c, ' ' | '\r' | '\n' | '\t'))
                    && !s.chars().all(char::is_whitespace)
            }),
            Check::Xhtml => v.as_str().is_some_and(|s| !s.trim().is_empty()),
            Check::Pattern(re) => v.as_str().is_some_and(|s| re.is_match(s)),
            Check::Temporal(re) => v.as_str().is_some_and(|s| re.is_match(s) && datetime::parse_range(s).is_some()),
            Check::Decimal => v.is_number(),
            Check::Integer { min } => v.as_i64().is_some_and(|n| n >= *min && n <= i64::from(i32::MAX)),
            Check::Boolean => v.is_boolean(),
        };
        if !ok {
            let name = &p.name;
            self.push(IssueType::Value, format!("{} is not a valid {name} (rule: {})", describe(v), rule_of(name)));
        }
    }
}

/// Validates a resource of any R4 type; the path prefix is its resourceType.
pub fn validate_resource(resource: &Value) -> Result<(), ValidationErrors> {
    let mut w = Walker { schema: &SCHEMA, path: String::new(), issues: Vec::new() };
    w.resource(resource);
    if w.issues.is_empty() { Ok(()) } else { Err(ValidationErrors(w.issues)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(v: Value) -> Vec<String> {
        match validate_resource(&v) {
            Ok(()) => vec![],
            Err(e) => e.0.into_iter().map(|i| i.expression.unwrap_or_default()).collect(),
        }
    }

    #[test]
    fn accepts_a_plain_patient() {
        let p = json!({
            "resourceType": "Patient", "id": "p1", "active": true,
            "name": [{"family": "张", "given": ["三"], "text": "张三"}],
            "gender": "male", "birthDate": "1980-02-29",
            "telecom": [{"system": "phone", "value": "13800000000"}],
            "contained": [{"resourceType": "Organization", "name": "协和"}],
            "_birthDate": {"extension": [{"url": "http://x", "valueBoolean": true}]},
            "extension": [{"url": "http://x", "valueDecimal": 1.5}],
        });
        assert_eq!(paths(p), Vec::<String>::new());
    }

    #[test]
    fn names_the_failing_path() {
        assert_eq!(paths(json!({"resourceType": "Patient", "birthDate": "not-a-date"})), vec!["Patient.birthDate"]);
        assert_eq!(paths(json!({"resourceType": "Patient", "birthDate": "2023-02-29"})), vec!["Patient.birthDate"]);
        assert_eq!(
            paths(json!({"resourceType": "Patient", "name": [{"given": ["a", 3]}]})),
            vec!["Patient.name[0].given[1]"]
        );
        assert_eq!(paths(json!({"resourceType": "Patient", "gender": "M"})), vec!["Patient.gender"]);
        assert_eq!(paths(json!({"resourceType": "Patient", "foo": 1})), vec!["Patient.foo"]);
        assert_eq!(paths(json!({"resourceType": "Patient", "name": []})), vec!["Patient.name"]);
        assert_eq!(paths(json!({"resourceType": "Patient", "name": {"family": "x"}})), vec!["Patient.name"]);
        assert_eq!(paths(json!({"resourceType": "Observation", "status": "final"})), vec!["Observation.code"]);
        assert_eq!(
            paths(json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "active": "yes"}]})),
            vec!["Patient.contained[0].ofType(Organization).active"]
        );
        assert_eq!(paths(json!({"resourceType": "Nope"})), vec![""]);
    }

    #[test]
    fn error_text_names_the_rule() {
        let e = validate_resource(&json!({"resourceType": "Patient", "birthDate": "not-a-date"})).unwrap_err();
        assert!(e.0[0].diagnostics.contains("not a valid date"), "{}", e.0[0].diagnostics);
        assert!(e.0[0].diagnostics.contains("YYYY-MM-DD"));
    }

    #[test]
    fn integers_and_nulls() {
        assert_eq!(
            paths(json!({"resourceType": "Patient", "multipleBirthInteger": 1.5})),
            vec!["Patient.multipleBirthInteger"]
        );
        assert_eq!(
            paths(json!({"resourceType": "Patient", "name": [{"given": [null, "b"], "_given": [{"id": "x"}, null]}]})),
            Vec::<String>::new()
        );
        assert_eq!(
            paths(json!({"resourceType": "Patient", "name": [{"given": [null]}]})),
            vec!["Patient.name[0].given[0]"]
        );
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    /// Real data shaped by a tool nobody on this team wrote must validate. The fixture
    /// lives outside the repository; without it this test checks nothing and says so.
    #[test]
    fn synthea_fixture_validates() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/synthea-10-patients");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipping: {} not present", dir.display());
            return;
        };
        let mut count = 0;
        let start = std::time::Instant::now();
        for e in entries.flatten() {
            let path = e.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if !name.ends_with(".ndjson") || name == "log.ndjson" {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if let Err(e) = validate_resource(&v) {
                    panic!("{name}: {:?}", e.0.iter().take(3).collect::<Vec<_>>());
                }
                count += 1;
            }
        }
        eprintln!("validated {count} resources in {:?}", start.elapsed());
        assert_eq!(count, 7160);
    }
}
