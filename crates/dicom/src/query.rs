//! C-FIND identifiers (PS3.4 §C.4.1, §K): what a query asks, read as DICOM JSON so the
//! matching rules work on one form for the network and for QIDO-RS, and the response
//! identifiers built back from the matches' DICOM JSON.

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_encoding::text::SpecificCharacterSet;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde_json::{Map, Value};

use crate::instance::Refusal;

/// The information models queried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    PatientRoot,
    StudyRoot,
    /// Modality Worklist.
    Worklist,
}

/// The find SOP classes and their models.
pub const FIND: &[(&str, Model)] = &[
    ("1.2.840.10008.5.1.4.1.2.1.1", Model::PatientRoot),
    ("1.2.840.10008.5.1.4.1.2.2.1", Model::StudyRoot),
    ("1.2.840.10008.5.1.4.31", Model::Worklist),
];

/// How a retrieve sends: to a third AE (C-MOVE) or back on the association (C-GET).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retrieve {
    Move,
    Get,
}

/// The retrieve SOP classes, their models and kinds.
pub const RETRIEVE: &[(&str, Model, Retrieve)] = &[
    ("1.2.840.10008.5.1.4.1.2.1.2", Model::PatientRoot, Retrieve::Move),
    ("1.2.840.10008.5.1.4.1.2.1.3", Model::PatientRoot, Retrieve::Get),
    ("1.2.840.10008.5.1.4.1.2.2.2", Model::StudyRoot, Retrieve::Move),
    ("1.2.840.10008.5.1.4.1.2.2.3", Model::StudyRoot, Retrieve::Get),
];

/// The model and kind of a retrieve SOP class.
pub fn retrieve_of(sop_class: &str) -> Option<(Model, Retrieve)> {
    RETRIEVE.iter().find(|(uid, _, _)| *uid == sop_class).map(|(_, m, r)| (*m, *r))
}

/// The model of a find SOP class.
pub fn model_of(sop_class: &str) -> Option<Model> {
    FIND.iter().find(|(uid, _)| *uid == sop_class).map(|(_, m)| *m)
}

/// A query level (0008,0052).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Patient,
    Study,
    Series,
    Image,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim() {
            "PATIENT" => Some(Level::Patient),
            "STUDY" => Some(Level::Study),
            "SERIES" => Some(Level::Series),
            "IMAGE" => Some(Level::Image),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Patient => "PATIENT",
            Level::Study => "STUDY",
            Level::Series => "SERIES",
            Level::Image => "IMAGE",
        }
    }
}

/// A query: its model, its level (none for the worklist) and its keys as DICOM JSON
/// (an attribute without `Value` asks for the attribute; with one, it also matches).
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub model: Model,
    pub level: Option<Level>,
    pub keys: Map<String, Value>,
}

/// Reads a C-FIND identifier (`bytes` in transfer syntax `ts`).
pub fn read_query(model: Model, bytes: &[u8], ts: &str) -> Result<Query, Refusal> {
    let cannot = |why: String| Refusal { status: 0xC000, reason: why };
    if crate::lengths::Encoding::of(ts).is_none() {
        return Err(cannot("a deflated identifier is not read".into()));
    }
    let o = crate::instance::decode(bytes, ts, SpecificCharacterSet::default())
        .map_err(|why| cannot(format!("identifier: {why}")))?;
    let level = o.get(tags::QUERY_RETRIEVE_LEVEL).and_then(|e| e.to_str().ok()).map(|s| s.trim().to_string());
    let json = dicom_json::to_value(&o).map_err(|e| cannot(format!("identifier: {e}")))?;
    let Value::Object(mut keys) = json else { return Err(cannot("identifier is not a data set".into())) };
    keys.remove("00080052");
    keys.remove("00080005");
    let level = match (model, level.as_deref()) {
        (Model::Worklist, _) => None,
        (_, Some(l)) => Some(Level::parse(l).ok_or_else(|| Refusal {
            status: 0xA900,
            reason: format!("Query/Retrieve Level {l:?} is none of PATIENT, STUDY, SERIES, IMAGE"),
        })?),
        (_, None) => {
            return Err(Refusal { status: 0xA900, reason: "Query/Retrieve Level (0008,0052) is missing".into() });
        }
    };
    if model == Model::StudyRoot && level == Some(Level::Patient) {
        return Err(Refusal { status: 0xA900, reason: "the Study Root model has no PATIENT level".into() });
    }
    Ok(Query { model, level, keys })
}

/// A response identifier: each key of the query with the match's value (or empty),
/// the level, and UTF-8 as the character set; encoded in `ts`.
pub fn response(query: &Query, matched: &Map<String, Value>, ts: &str) -> Result<Vec<u8>, Refusal> {
    let mut out = Map::new();
    out.insert("00080005".into(), serde_json::json!({"vr": "CS", "Value": ["ISO_IR 192"]}));
    if let Some(l) = query.level {
        out.insert("00080052".into(), serde_json::json!({"vr": "CS", "Value": [l.as_str()]}));
    }
    for (tag, key) in &query.keys {
        out.insert(tag.clone(), answer(key, matched.get(tag)));
    }
    let o: InMemDicomObject = dicom_json::from_value(Value::Object(out))
        .map_err(|e| Refusal { status: 0xC000, reason: format!("response identifier: {e}") })?;
    let syntax = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| Refusal { status: 0xC000, reason: format!("transfer syntax {ts} cannot be written") })?;
    let mut bytes = Vec::new();
    o.write_dataset_with_ts_cs(&mut bytes, syntax, SpecificCharacterSet::ISO_IR_192)
        .map_err(|e| Refusal { status: 0xC000, reason: format!("response identifier: {e}") })?;
    Ok(bytes)
}

/// A key's answer: the match's attribute; for a sequence key, each of the match's items
/// answered with the key's first item; an empty attribute of the key's VR when the
/// match has none.
fn answer(key: &Value, found: Option<&Value>) -> Value {
    let vr = key.get("vr").cloned().unwrap_or(Value::String("UN".into()));
    let Some(found) = found else { return serde_json::json!({"vr": vr}) };
    if vr == "SQ" {
        let template = key.get("Value").and_then(|v| v.get(0)).and_then(Value::as_object);
        let items: Vec<Value> = found
            .get("Value")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_object)
                    .map(|item| match template {
                        Some(t) if !t.is_empty() => {
                            Value::Object(t.iter().map(|(k, kv)| (k.clone(), answer(kv, item.get(k)))).collect())
                        }
                        _ => Value::Object(item.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        return serde_json::json!({"vr": "SQ", "Value": items});
    }
    found.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    fn identifier(level: &str) -> Vec<u8> {
        let o = InMemDicomObject::from_element_iter([
            DataElement::new(tags::QUERY_RETRIEVE_LEVEL, VR::CS, PrimitiveValue::from(level)),
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("Zhang*")),
            DataElement::new(tags::STUDY_DATE, VR::DA, PrimitiveValue::from("20261201-20261231")),
            DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, PrimitiveValue::Empty),
        ]);
        let mut out = Vec::new();
        o.write_dataset_with_ts(&mut out, &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        out
    }

    #[test]
    fn a_query_reads_and_answers_with_its_keys_only() {
        let q = read_query(Model::StudyRoot, &identifier("STUDY"), "1.2.840.10008.1.2").unwrap();
        assert_eq!(q.level, Some(Level::Study));
        assert_eq!(q.keys["00100010"]["Value"][0]["Alphabetic"], "Zhang*");
        assert!(q.keys["0020000D"].get("Value").is_none());
        let matched: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Zhang^San", "Ideographic": "张^三"}]},
            "00080020": {"vr": "DA", "Value": ["20261206"]},
            "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
            "00100020": {"vr": "LO", "Value": ["not asked"]},
        }))
        .unwrap();
        let bytes = response(&q, &matched, "1.2.840.10008.1.2").unwrap();
        let back = InMemDicomObject::read_dataset_with_ts(
            &bytes[..],
            &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .unwrap();
        assert_eq!(back.get(tags::STUDY_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0'), "1.2.3");
        assert_eq!(back.get(tags::PATIENT_NAME).unwrap().to_str().unwrap(), "Zhang^San=张^三");
        assert!(back.get(tags::PATIENT_ID).is_none(), "only what was asked");
        assert_eq!(back.get(tags::QUERY_RETRIEVE_LEVEL).unwrap().to_str().unwrap().trim(), "STUDY");
    }

    #[test]
    fn a_bad_level_is_refused_by_name() {
        let r = read_query(Model::StudyRoot, &identifier("PATIENT"), "1.2.840.10008.1.2").unwrap_err();
        assert!(r.reason.contains("no PATIENT level"));
        let r = read_query(Model::PatientRoot, &identifier("WARD"), "1.2.840.10008.1.2").unwrap_err();
        assert_eq!(r.status, 0xA900);
    }
}

/// A QIDO-RS request's parameters (PS3.18 §8.3.4) as a query at `level`:
/// `{attributeID}={value}` (keyword or tag), `includefield` (keyword, tag or `all`);
/// `limit`, `offset` and `fuzzymatching` are the caller's to read. An unknown attribute
/// is refused by name.
pub fn qido(level: Level, params: &[(String, String)]) -> Result<Query, String> {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    let dict = dicom_dictionary_std::StandardDataDictionary;
    let mut keys = Map::new();
    for (name, value) in params {
        if matches!(name.as_str(), "limit" | "offset" | "fuzzymatching") {
            continue;
        }
        let (attribute, value) = if name == "includefield" {
            // Every attribute the index keeps is answered: `all` asks nothing more.
            if value == "all" {
                continue;
            }
            (value.as_str(), None)
        } else {
            (name.as_str(), Some(value.as_str()))
        };
        for attribute in attribute.split(',') {
            let entry = match u32::from_str_radix(attribute, 16) {
                Ok(n) if attribute.len() == 8 => dict.by_tag(dicom_core::Tag((n >> 16) as u16, (n & 0xFFFF) as u16)),
                _ => dict.by_name(attribute),
            }
            .ok_or_else(|| format!("{attribute}: not a DICOM attribute keyword or tag"))?;
            let tag = entry.tag();
            let vr = entry.vr().relaxed().to_string();
            let key = format!("{:04X}{:04X}", tag.0, tag.1);
            let json = match value {
                None | Some("") => serde_json::json!({"vr": vr}),
                Some(v) if vr == "PN" => serde_json::json!({"vr": vr, "Value": [{"Alphabetic": v}]}),
                Some(v) if vr == "UI" => {
                    serde_json::json!({"vr": vr, "Value": v.split([',', '\\']).collect::<Vec<_>>()})
                }
                Some(v) => serde_json::json!({"vr": vr, "Value": [v]}),
            };
            keys.insert(key, json);
        }
    }
    Ok(Query { model: Model::StudyRoot, level: Some(level), keys })
}

#[cfg(test)]
mod qido_tests {
    use super::*;

    #[test]
    fn parameters_become_keys() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let q = qido(
            Level::Study,
            &[
                p("PatientName", "zhang*"),
                p("0020000D", "1.2,1.3"),
                p("includefield", "StudyDescription"),
                p("limit", "5"),
            ],
        )
        .unwrap();
        assert_eq!(q.keys["00100010"]["Value"][0]["Alphabetic"], "zhang*");
        assert_eq!(q.keys["0020000D"]["Value"][1], "1.3");
        assert!(q.keys["00081030"].get("Value").is_none());
        assert!(qido(Level::Study, &[p("NoSuchThing", "1")]).unwrap_err().starts_with("NoSuchThing"));
    }
}
