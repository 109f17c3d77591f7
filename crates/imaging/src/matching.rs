//! DICOM attribute matching (PS3.4 §C.2.2.2) on DICOM JSON, for C-FIND and QIDO-RS:
//! universal (no value), single value, UID list, wildcard (`*`, `?`) and range
//! (`a-b`, `-b`, `a-`) matching for dates and times, and sequence matching by item.
//! Person names match on any of their groups, ignoring case, as Chinese hospitals'
//! PACS do (a name may be asked in pinyin or in characters).

use serde_json::{Map, Value};

/// Whether `candidate` (DICOM JSON of one match) satisfies every key that carries a
/// value. Keys the candidate lacks match only when they carry no value.
pub fn matches(keys: &Map<String, Value>, candidate: &Map<String, Value>) -> bool {
    keys.iter().all(|(tag, key)| matches_key(key, candidate.get(tag)))
}

fn values(v: &Value) -> Vec<&Value> {
    v.get("Value").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
}

fn matches_key(key: &Value, found: Option<&Value>) -> bool {
    let asked = values(key);
    if asked.is_empty() {
        return true;
    }
    let vr = key.get("vr").and_then(Value::as_str).unwrap_or("");
    let Some(found) = found else { return false };
    let have = values(found);
    if vr == "SQ" {
        // Each key item is a template: some item of the candidate matches it.
        return asked.iter().filter_map(|k| k.as_object()).all(|template| {
            template.is_empty() || have.iter().filter_map(|h| h.as_object()).any(|item| matches(template, item))
        });
    }
    match vr {
        "UI" => {
            let list: Vec<String> = asked.iter().filter_map(|v| v.as_str()).map(str::to_string).collect();
            have.iter().filter_map(|v| v.as_str()).any(|h| list.iter().any(|l| l == h))
        }
        "DA" | "TM" | "DT" => {
            let Some(want) = asked.first().and_then(|v| v.as_str()) else { return true };
            have.iter().filter_map(|v| v.as_str()).any(|h| in_range(want, h, vr))
        }
        "PN" => {
            let want = asked.first().map(pn_text).unwrap_or_default();
            if want.is_empty() || want == "*" {
                return true;
            }
            have.iter().any(|h| pn_groups(h).iter().any(|g| wildcard(&want.to_lowercase(), &g.to_lowercase())))
        }
        _ => {
            let want: Vec<String> = asked
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            if want.iter().all(|w| w.is_empty() || w == "*") {
                return true;
            }
            have.iter().any(|h| {
                let h = match h {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                want.iter().any(|w| wildcard(w, &h))
            })
        }
    }
}

/// The text of a PN key as asked (its Alphabetic group, else any group).
fn pn_text(v: &&Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => ["Alphabetic", "Ideographic", "Phonetic"]
            .iter()
            .find_map(|g| o.get(*g).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

fn pn_groups(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Object(o) => ["Alphabetic", "Ideographic", "Phonetic"]
            .iter()
            .filter_map(|g| o.get(*g).and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// `*` any run, `?` any one character; otherwise equal.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `want` is a single value or a range `a-b` / `-b` / `a-`; dates compare as text once
/// their separators are gone, times by their digits (a shorter bound means its whole
/// hour or minute).
fn in_range(want: &str, have: &str, vr: &str) -> bool {
    let norm = |s: &str| s.trim().chars().filter(|c| c.is_ascii_digit() || *c == '.').collect::<String>();
    let have = norm(have);
    let Some((from, to)) = want.split_once('-').filter(|_| vr != "DT" || want.matches('-').count() == 1) else {
        let w = norm(want);
        return if vr == "DA" { have == w } else { have.starts_with(&w) };
    };
    let (from, to) = (norm(from), norm(to));
    let upper_ok = to.is_empty() || have.as_str() <= to.as_str() || have.starts_with(&to);
    let lower_ok = from.is_empty() || have.as_str() >= from.as_str();
    lower_ok && upper_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    fn study() -> Map<String, Value> {
        keys(json!({
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Zhang^San", "Ideographic": "张^三"}]},
            "00100020": {"vr": "LO", "Value": ["E1000001"]},
            "00080020": {"vr": "DA", "Value": ["20261206"]},
            "00080030": {"vr": "TM", "Value": ["093015"]},
            "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
            "00080061": {"vr": "CS", "Value": ["CT", "SR"]},
            "00400100": {"vr": "SQ", "Value": [{"00080060": {"vr": "CS", "Value": ["CT"]},
                                                "00400001": {"vr": "AE", "Value": ["CT-EAST"]}}]},
        }))
    }

    #[test]
    fn each_kind_of_matching() {
        let s = study();
        for (k, want) in [
            (json!({"00100010": {"vr": "PN"}}), true),
            (json!({"00100010": {"vr": "PN", "Value": [{"Alphabetic": "zhang*"}]}}), true),
            (json!({"00100010": {"vr": "PN", "Value": [{"Alphabetic": "张*"}]}}), true),
            (json!({"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Li*"}]}}), false),
            (json!({"00100020": {"vr": "LO", "Value": ["E1000001"]}}), true),
            (json!({"00100020": {"vr": "LO", "Value": ["E100000?"]}}), true),
            (json!({"00100020": {"vr": "LO", "Value": ["E1000002"]}}), false),
            (json!({"00080020": {"vr": "DA", "Value": ["20261201-20261231"]}}), true),
            (json!({"00080020": {"vr": "DA", "Value": ["-20261205"]}}), false),
            (json!({"00080020": {"vr": "DA", "Value": ["20261206-"]}}), true),
            (json!({"00080020": {"vr": "DA", "Value": ["20261206"]}}), true),
            (json!({"00080030": {"vr": "TM", "Value": ["0900-0959"]}}), true),
            (json!({"00080030": {"vr": "TM", "Value": ["1000-"]}}), false),
            (json!({"0020000D": {"vr": "UI", "Value": ["9.9", "1.2.3"]}}), true),
            (json!({"0020000D": {"vr": "UI", "Value": ["1.2"]}}), false),
            (json!({"00080061": {"vr": "CS", "Value": ["SR"]}}), true),
            (json!({"00080061": {"vr": "CS", "Value": ["MR"]}}), false),
            (json!({"00400100": {"vr": "SQ", "Value": [{"00400001": {"vr": "AE", "Value": ["CT-EAST"]}}]}}), true),
            (json!({"00400100": {"vr": "SQ", "Value": [{"00400001": {"vr": "AE", "Value": ["MR-WEST"]}}]}}), false),
            (json!({"00081030": {"vr": "LO", "Value": ["CHEST"]}}), false),
            (json!({"00081030": {"vr": "LO"}}), true),
        ] {
            assert_eq!(matches(&keys(k.clone()), &s), want, "{k}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", ""));
        assert!(wildcard("a*c", "abbbc"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("张*", "张^三"));
    }
}
