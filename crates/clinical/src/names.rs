//! Chinese names: the pinyin name every record carries, matching names written with
//! different characters of the same sound (the syllables come from
//! [`lianyi_fhir::phonetic`], which the `phonetic` search index shares), and the
//! names of practitioners and organizations in both languages.

use lianyi_fhir::phonetic::syllables;
pub use lianyi_fhir::phonetic::{is_hanzi, name_key, split_name};

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The pinyin form of a name as written on documents: `("Ouyang", "Xiaoming")` for
/// 欧阳晓明 — surname and given name each one capitalized word.
pub fn pinyin_name(full: &str) -> (String, String) {
    let (family, given) = split_name(full);
    let family = capitalized(&syllables(&family, true).concat());
    let given = capitalized(&syllables(&given, false).concat());
    (family, given)
}

/// Jaro–Winkler similarity of two strings, 0.0 (nothing alike) to 1.0 (equal).
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_match = vec![false; a.len()];
    let mut b_match = vec![false; b.len()];
    let mut matches = 0usize;
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_match[j] && b[j] == *ca {
                a_match[i] = true;
                b_match[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let a_seq = a.iter().zip(&a_match).filter(|(_, m)| **m).map(|(c, _)| c);
    let b_seq = b.iter().zip(&b_match).filter(|(_, m)| **m).map(|(c, _)| c);
    let transpositions = a_seq.zip(b_seq).filter(|(x, y)| x != y).count() / 2;
    let m = matches as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + (m - transpositions as f64) / m) / 3.0;
    let prefix = a.iter().zip(&b).take(4).take_while(|(x, y)| x == y).count() as f64;
    jaro + prefix * 0.1 * (1.0 - jaro)
}

pub use lianyi_services::Names;

/// A Practitioner's names: the one in characters (representation IDE) and the one
/// in pinyin (ABC), each falling back to the other.
pub fn of_practitioner(v: &serde_json::Value) -> Names {
    let names = v["name"].as_array().cloned().unwrap_or_default();
    let pick = |latin: bool| {
        names.iter().find(|n| (n["extension"][0]["valueCode"] == "ABC") == latin).and_then(|n| n["text"].as_str())
    };
    let zh = pick(false).or_else(|| pick(true)).unwrap_or_default().to_string();
    let en = pick(true).or_else(|| pick(false)).unwrap_or_default().to_string();
    Names { zh, en }
}

/// Professional titles (职称) of a Practitioner's qualification.
pub const TITLE_SYSTEM: &str = "urn:lianyi:professional-title";

/// A Practitioner's professional title code, if recorded.
pub fn title_of(v: &serde_json::Value) -> Option<&str> {
    v["qualification"]
        .as_array()?
        .iter()
        .find_map(|q| q["code"]["coding"].as_array()?.iter().find(|c| c["system"] == TITLE_SYSTEM)?["code"].as_str())
}

/// Whether a Practitioner's title makes their clinic an expert clinic (专家门诊): chief
/// or associate chief physician (主任医师, 副主任医师).
pub fn is_expert(v: &serde_json::Value) -> bool {
    matches!(title_of(v), Some("chief" | "associate-chief"))
}

/// Names of a Practitioner or an Organization.
pub fn of(v: &serde_json::Value) -> Names {
    if v["resourceType"] == "Practitioner" { of_practitioner(v) } else { lianyi_services::fhir::organization_names(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_their_pinyin() {
        assert_eq!(pinyin_name("张三"), ("Zhang".into(), "San".into()));
        assert_eq!(pinyin_name("李晓明"), ("Li".into(), "Xiaoming".into()));
        assert_eq!(pinyin_name("欧阳修远"), ("Ouyang".into(), "Xiuyuan".into()));
        // Surname readings differ from the common reading of the character.
        assert_eq!(pinyin_name("单田芳").0, "Shan");
        assert_eq!(pinyin_name("曾国藩").0, "Zeng");
        assert_eq!(pinyin_name("解缙").0, "Xie");
        // Latin names keep their letters.
        assert_eq!(pinyin_name("Anna Schmidt"), ("Anna".into(), "Schmidt".into()));
        assert_eq!(name_key("曾国藩"), vec!["zeng", "guo", "fan"]);
    }

    #[test]
    fn splitting_knows_compound_surnames() {
        assert_eq!(split_name("司马光"), ("司马".into(), "光".into()));
        assert_eq!(split_name("司马"), ("司".into(), "马".into()), "a two-character name is surname + given");
        assert_eq!(split_name(" 王 芳 "), ("王".into(), "芳".into()));
    }

    #[test]
    fn homophones_share_a_key_and_similar_names_score_high() {
        assert_eq!(name_key("张珊"), name_key("张山"));
        assert_ne!(name_key("张珊"), name_key("章三"));
        assert!((jaro_winkler("martha", "marhta") - 0.961).abs() < 0.001);
        assert!((jaro_winkler("dixon", "dicksonx") - 0.813).abs() < 0.001);
        assert_eq!(jaro_winkler("abc", "abc"), 1.0);
        assert_eq!(jaro_winkler("abc", "xyz"), 0.0);
        assert!(jaro_winkler("zhangxiaoming", "zhangxiaomin") > 0.95);
    }
}
