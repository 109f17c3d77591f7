//! Chinese names by sound: Hanzi → toneless Hanyu Pinyin syllables, with the
//! surnames whose reading differs from the character's common one (单 Shan, 曾 Zeng,
//! 解 Xie …) and the common two-character surnames. Readings come from the `pinyin`
//! crate (data: pinyin-data, from Unihan). The patient index matches names of the same
//! sound with it, and the `phonetic` search parameter indexes a name's pinyin and its
//! initials ([`keys`]), so `lxm` or `liuxiaom` finds 刘晓明.

use pinyin::ToPinyin;

/// Surname readings that differ from the character's most common reading.
const SURNAME_READINGS: &[(char, &str)] = &[
    ('单', "shan"),
    ('曾', "zeng"),
    ('解', "xie"),
    ('仇', "qiu"),
    ('区', "ou"),
    ('查', "zha"),
    ('朴', "piao"),
    ('覃', "qin"),
    ('盖', "ge"),
    ('乐', "yue"),
    ('缪', "miao"),
    ('翟', "zhai"),
    ('召', "shao"),
    ('种', "chong"),
    ('重', "chong"),
    ('员', "yun"),
    ('秘', "bi"),
    ('尉', "yu"),
    ('长', "chang"),
    ('柏', "bai"),
    ('卜', "bu"),
    ('沈', "shen"),
    ('万', "wan"),
];

/// Two-character surnames (复姓) that are still in common use.
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙", "宇文", "司徒", "夏侯",
    "端木", "独孤", "南宫", "西门", "百里", "呼延",
];

/// Whether `c` is a CJK unified ideograph (the basic block and extension A).
pub fn is_hanzi(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// A full name split into surname and given name (Hanzi; the first character, or a
/// known two-character surname). Names in Latin letters split at the first space.
pub fn split_name(full: &str) -> (String, String) {
    let full = full.trim();
    if !full.chars().next().is_some_and(is_hanzi) {
        let (family, given) = full.split_once(' ').unwrap_or((full, ""));
        return (family.trim().to_string(), given.trim().to_string());
    }
    let compound = COMPOUND_SURNAMES.iter().find(|s| full.starts_with(*s) && full.chars().count() > 2);
    let n = if compound.is_some() { 2 } else { 1 };
    let family: String = full.chars().take(n).collect();
    let given: String = full.chars().skip(n).filter(|c| !c.is_whitespace()).collect();
    (family, given)
}

/// Toneless syllables of `text`: one per Hanzi; runs of Latin letters or digits are
/// kept (lower-cased) as one syllable; everything else separates.
pub fn syllables(text: &str, surname: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, (c, p)) in text.chars().zip(text.to_pinyin()).enumerate() {
        if let Some(p) = p {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            let reading = SURNAME_READINGS.iter().find(|(s, _)| surname && i == 0 && *s == c).map(|(_, r)| *r);
            out.push(reading.unwrap_or(p.plain()).to_string());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The syllables of a whole name (surname reading applied), lower case:
/// `["zeng", "guo", "fan"]` for 曾国藩. The key for sound-alike matching.
pub fn name_key(full: &str) -> Vec<String> {
    let (family, given) = split_name(full);
    let mut out = syllables(&family, true);
    out.extend(syllables(&given, false));
    out
}

/// The index keys of a name for the `phonetic` search parameter: its whole pinyin
/// from each syllable on (`liuxiaoming`, `xiaoming`, `ming`) and its initials
/// (`lxm`); Latin names the same way by word (`Wang Wei`: `wangwei`, `wei`, `ww`).
/// A search matches a key by prefix, so `liuxiaom` and `lx` find 刘晓明 too.
pub fn keys(name: &str) -> Vec<String> {
    let s = if name.chars().any(is_hanzi) { name_key(name) } else { syllables(name, false) };
    if s.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = (0..s.len()).map(|i| s[i..].concat()).collect();
    let initials: String = s.iter().filter_map(|w| w.chars().next()).collect();
    if s.len() > 1 {
        out.push(initials);
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pinyin_from_each_syllable_and_initials() {
        assert_eq!(keys("刘晓明"), ["liuxiaoming", "lxm", "ming", "xiaoming"]);
        assert_eq!(keys("曾国藩")[0], "fan");
        assert!(keys("曾国藩").contains(&"zengguofan".to_string()), "the surname's reading");
        assert!(keys("欧阳晓明").contains(&"oyxm".to_string()));
        assert_eq!(keys("Wang Wei"), ["wangwei", "wei", "ww"]);
        assert!(keys("").is_empty());
    }
}
