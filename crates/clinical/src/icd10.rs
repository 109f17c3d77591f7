//! ICD-10 code search for diagnoses. The table is ICD-10-CM (CDC/NCHS, April 2026,
//! public domain) at the category and subcategory level (`A00`, `A00.0`; 12,014
//! codes, built by `tools/icd10/extract.py`), with Chinese titles and the other names
//! clinicians use (冠心病, 脑梗) for 2,400 common outpatient and inpatient diagnoses
//! (`data/icd10-zh.tsv`, the project's own translation; its header says how it was
//! checked). Both are compiled into the binary. A search finds a code by its code, by
//! words of its English title, by Chinese text in its title or other names, or by the
//! pinyin initials or whole pinyin of those (`gxb`, `guanxinbing` → 冠心病).

use std::collections::HashMap;
use std::sync::LazyLock;

/// The code system of the codes (FHIR's URI for ICD-10-CM).
pub const SYSTEM: &str = "http://hl7.org/fhir/sid/icd-10-cm";

/// One code of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code {
    pub code: &'static str,
    pub en: &'static str,
    pub zh: Option<&'static str>,
    /// Other Chinese names of the diagnosis (冠心病 for I25.1).
    pub synonyms: Vec<&'static str>,
}

fn rows(text: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(|l| l.split_once('\t'))
}

static TABLE: LazyLock<Vec<Code>> = LazyLock::new(|| {
    let zh: HashMap<&str, (&str, Vec<&str>)> = rows(include_str!("../data/icd10-zh.tsv"))
        .map(|(code, rest)| {
            let (title, synonyms) = rest.split_once('\t').unwrap_or((rest, ""));
            (code, (title, synonyms.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()))
        })
        .collect();
    rows(include_str!("../data/icd10cm.tsv"))
        .map(|(code, en)| {
            let (title, synonyms) = zh.get(code).cloned().map_or((None, Vec::new()), |(t, s)| (Some(t), s));
            Code { code, en, zh: title, synonyms }
        })
        .collect()
});

/// Pinyin keys of each code's Chinese names, by table position: for every name its
/// initials (`gxb`) and its whole pinyin (`guanxinbing`); a digit stays a digit
/// (2型糖尿病: `2xtnb`).
static PINYIN: LazyLock<Vec<Vec<String>>> = LazyLock::new(|| {
    TABLE
        .iter()
        .map(|c| {
            let mut keys = Vec::new();
            for name in c.zh.iter().chain(&c.synonyms) {
                let s = lianyi_fhir::phonetic::syllables(name, false);
                keys.push(s.iter().filter_map(|w| w.chars().next()).collect::<String>());
                keys.push(s.concat());
            }
            keys
        })
        .collect()
});

/// The code, exactly (`e87.5`, `E875` and `E87.5` are the same).
pub fn lookup(code: &str) -> Option<Code> {
    BY_CODE.get(&normalize(code)).map(|&i| TABLE[i].clone())
}

/// Positions in the table by normalised code, for [`lookup`].
static BY_CODE: LazyLock<HashMap<String, usize>> =
    LazyLock::new(|| TABLE.iter().enumerate().map(|(i, c)| (normalize(c.code), i)).collect());

fn normalize(code: &str) -> String {
    code.trim().chars().filter(|c| *c != '.').flat_map(char::to_uppercase).collect()
}

/// Codes matching `query`, best first, at most `limit`: a code or its beginning
/// (`E87`, `e875`), or words of the title (English words' beginnings, or a
/// Chinese title containing the text).
pub fn search(query: &str, limit: usize) -> Vec<Code> {
    let q = query.trim();
    if q.is_empty() {
        return Vec::new();
    }
    let code_key = normalize(q);
    let looks_like_code = code_key.len() <= 5
        && code_key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && code_key.chars().skip(1).all(|c| c.is_ascii_alphanumeric())
        && code_key.chars().nth(1).is_none_or(|c| c.is_ascii_digit());
    let words: Vec<String> = q.to_lowercase().split_whitespace().map(str::to_string).collect();
    // Letters (and digits) only, no spaces: perhaps pinyin initials or whole pinyin.
    let pinyin = (q.len() >= 2 && q.chars().all(|c| c.is_ascii_alphanumeric())).then(|| q.to_ascii_lowercase());
    let mut scored: Vec<(u8, &Code)> = TABLE
        .iter()
        .zip(PINYIN.iter())
        .filter_map(|(c, keys)| {
            let key = normalize(c.code);
            if looks_like_code && key == code_key {
                return Some((0, c));
            }
            if looks_like_code && key.starts_with(&code_key) {
                return Some((1, c));
            }
            // Chinese: a title or another name exactly, else one containing the text.
            let names = || c.zh.iter().chain(&c.synonyms);
            if names().any(|n| *n == q) {
                return Some((0, c));
            }
            if names().any(|n| n.contains(q)) {
                return Some((2, c));
            }
            if let Some(p) = &pinyin {
                if keys.iter().any(|k| k == p) {
                    return Some((1, c));
                }
                if keys.iter().any(|k| k.starts_with(p.as_str())) {
                    return Some((3, c));
                }
            }
            let title = c.en.to_lowercase();
            let title_words: Vec<&str> =
                title.split(|ch: char| !ch.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
            let all = words.iter().all(|w| title_words.iter().any(|t| t.starts_with(w.as_str())));
            all.then_some((if c.zh.is_some() { 3 } else { 4 }, c))
        })
        .collect();
    scored.sort_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| a.1.code.len().cmp(&b.1.code.len())).then_with(|| a.1.code.cmp(b.1.code))
    });
    scored.into_iter().take(limit).map(|(_, c)| c.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_complete_and_translated_where_common() {
        assert_eq!(TABLE.len(), 12_014);
        let k = lookup("e875").unwrap();
        assert_eq!((k.code, k.en, k.zh), ("E87.5", "Hyperkalemia", Some("高钾血症")));
        assert_eq!(lookup("A00.0").unwrap().zh, None, "no Chinese title: the pages show the English one");
        assert!(lookup("Z99.99").is_none());
        let translated = TABLE.iter().filter(|c| c.zh.is_some()).count();
        assert!(translated >= 1_000, "{translated} Chinese titles");
        assert!(TABLE.iter().filter(|c| !c.synonyms.is_empty()).count() >= 150);
    }

    #[test]
    fn common_names_and_pinyin_initials_find_the_diagnosis() {
        let codes = |q: &str| search(q, 8).into_iter().map(|c| c.code).collect::<Vec<_>>();
        assert!(codes("冠心病").contains(&"I25.1"), "{:?}", codes("冠心病"));
        assert!(!codes("骨折").is_empty());
        assert!(codes("骨折").iter().all(|c| c.starts_with('S') || c.starts_with('M') || c.starts_with('T')));
        assert_eq!(codes("糖尿病")[0], "E11.9", "the common name, exactly");
        assert!(codes("脑梗").contains(&"I63.9"));
        // Pinyin initials and whole pinyin of a title or another name.
        assert!(codes("gxb").contains(&"I25.1"), "{:?}", codes("gxb"));
        assert_eq!(codes("gxy")[0], "I10", "{:?}", codes("gxy"));
        assert!(codes("guanxinbing").contains(&"I25.1"));
        assert!(codes("tnb").contains(&"E11.9"));
    }

    #[test]
    fn search_by_code_english_words_or_chinese() {
        let codes = |q: &str| search(q, 5).into_iter().map(|c| c.code).collect::<Vec<_>>();
        assert_eq!(codes("I10"), vec!["I10"]);
        assert_eq!(codes("e11")[..2], ["E11", "E11.0"]);
        assert_eq!(codes("高血压")[0], "I10");
        assert!(codes("糖尿病").contains(&"E11.9"));
        assert_eq!(codes("hyperkal"), vec!["E87.5"]);
        assert!(codes("essential hypertension").contains(&"I10"));
        assert!(codes("").is_empty());
        assert!(codes("qqqqzzzz").is_empty());
    }
}
