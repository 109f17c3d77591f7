//! Probabilistic patient matching (the EMPI's duplicate check and `$match`).
//!
//! Each field that both records carry adds agreement points or takes disagreement
//! points, in the manner of Fellegi–Sunter weights: rare agreements (the same
//! phone, the same birth date) weigh more than common ones (the same sex), and a
//! disagreement on a field people rarely get wrong (birth date) weighs against the
//! match. The resident ID number decides on its own: the same number is the same
//! person. The score is clamped to 0–100; every point comes with a reason, so the
//! registrar sees why a record was offered.

use crate::names::{jaro_winkler, name_key};

/// The fields compared. Values are as stored (FHIR `birthDate`, `gender` codes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Person {
    pub resident_id: Option<String>,
    /// The name in Hanzi (or Latin letters).
    pub name: String,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub phone: Option<String>,
}

/// Why two records were scored as they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    SameResidentId,
    DifferentResidentId,
    SameName,
    /// Different characters, same sound (张珊 / 张山).
    SameNameSound,
    /// Names whose pinyin is alike (percent similarity).
    SimilarName(u8),
    SameBirthDate,
    /// One digit differs, or day and month are swapped.
    NearBirthDate,
    DifferentBirthDate,
    SameGender,
    DifferentGender,
    SamePhone,
}

impl Reason {
    /// A stable code (for the UI's texts and the API's match explanation).
    pub fn code(self) -> &'static str {
        match self {
            Reason::SameResidentId => "same-resident-id",
            Reason::DifferentResidentId => "different-resident-id",
            Reason::SameName => "same-name",
            Reason::SameNameSound => "same-name-sound",
            Reason::SimilarName(_) => "similar-name",
            Reason::SameBirthDate => "same-birth-date",
            Reason::NearBirthDate => "near-birth-date",
            Reason::DifferentBirthDate => "different-birth-date",
            Reason::SameGender => "same-gender",
            Reason::DifferentGender => "different-gender",
            Reason::SamePhone => "same-phone",
        }
    }
}

/// A comparison's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Score {
    /// 0 (nothing alike) to 100 (the same person).
    pub score: u8,
    pub reasons: Vec<Reason>,
}

/// From this score a record is offered as a possible duplicate.
pub const POSSIBLE: u8 = 50;
/// From this score a record is very likely the same person.
pub const PROBABLE: u8 = 75;

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A phone number as dialled within China: digits only, without the +86 prefix.
pub fn normalize_phone(s: &str) -> String {
    let d = digits(s);
    match d.strip_prefix("86") {
        Some(rest) if rest.len() == 11 && s.trim_start().starts_with('+') || d.len() == 13 => rest.to_string(),
        _ => d,
    }
}

/// Birth dates that differ in one digit or by a swapped day and month.
fn near_date(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let differing = a.chars().zip(b.chars()).filter(|(x, y)| x != y).count();
    if differing == 1 {
        return true;
    }
    let parts = |d: &str| -> Option<(String, String, String)> {
        let mut p = d.split('-');
        Some((p.next()?.to_string(), p.next()?.to_string(), p.next()?.to_string()))
    };
    matches!((parts(a), parts(b)), (Some((ya, ma, da)), Some((yb, mb, db))) if ya == yb && ma == db && da == mb)
}

/// Scores how likely `a` and `b` are the same person.
pub fn score(a: &Person, b: &Person) -> Score {
    let mut reasons = Vec::new();
    let id = |p: &Person| p.resident_id.as_deref().map(|s| s.trim().to_ascii_uppercase()).filter(|s| !s.is_empty());
    match (id(a), id(b)) {
        (Some(x), Some(y)) if x == y => return Score { score: 100, reasons: vec![Reason::SameResidentId] },
        (Some(_), Some(_)) => reasons.push(Reason::DifferentResidentId),
        _ => {}
    }
    let mut points: i32 = if reasons.contains(&Reason::DifferentResidentId) { -30 } else { 0 };

    let (na, nb) = (a.name.split_whitespace().collect::<String>(), b.name.split_whitespace().collect::<String>());
    if !na.is_empty() && !nb.is_empty() {
        let (ka, kb) = (name_key(&na), name_key(&nb));
        if na == nb {
            points += 35;
            reasons.push(Reason::SameName);
        } else if ka == kb {
            points += 28;
            reasons.push(Reason::SameNameSound);
        } else {
            let sim = jaro_winkler(&ka.concat(), &kb.concat());
            if sim >= 0.85 {
                points += (sim * 25.0).round() as i32 - 5;
                reasons.push(Reason::SimilarName((sim * 100.0).round() as u8));
            } else {
                points -= 20;
            }
        }
    }

    if let (Some(x), Some(y)) = (&a.birth_date, &b.birth_date) {
        if x == y {
            points += 30;
            reasons.push(Reason::SameBirthDate);
        } else if near_date(x, y) {
            points += 12;
            reasons.push(Reason::NearBirthDate);
        } else {
            points -= 25;
            reasons.push(Reason::DifferentBirthDate);
        }
    }

    if let (Some(x), Some(y)) = (&a.gender, &b.gender)
        && x != "unknown"
        && y != "unknown"
    {
        if x == y {
            points += 5;
            reasons.push(Reason::SameGender);
        } else {
            points -= 15;
            reasons.push(Reason::DifferentGender);
        }
    }

    if let (Some(x), Some(y)) = (&a.phone, &b.phone) {
        let (x, y) = (normalize_phone(x), normalize_phone(y));
        if x.len() >= 7 && x == y {
            points += 30;
            reasons.push(Reason::SamePhone);
        }
    }
    Score { score: points.clamp(0, 100) as u8, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str, birth: &str, gender: &str, phone: Option<&str>, id: Option<&str>) -> Person {
        Person {
            resident_id: id.map(str::to_string),
            name: name.into(),
            birth_date: Some(birth.into()),
            gender: Some(gender.into()),
            phone: phone.map(str::to_string),
        }
    }

    #[test]
    fn the_same_resident_id_is_the_same_person() {
        let a = person("张三", "1990-01-01", "male", None, Some("11010519491231002X"));
        let b = person("李四", "1980-05-05", "female", None, Some("11010519491231002x"));
        assert_eq!(score(&a, &b), Score { score: 100, reasons: vec![Reason::SameResidentId] });
    }

    #[test]
    fn a_near_duplicate_is_offered_with_its_reasons() {
        let stored = person("张珊", "1990-01-01", "female", Some("13800138000"), Some("11010519900101002X"));
        // Registered again with a homophone character, no ID card, the same phone.
        let typed = person("张山", "1990-01-01", "female", Some("+86 138 0013 8000"), None);
        let s = score(&typed, &stored);
        assert!(s.score >= PROBABLE, "{s:?}");
        assert_eq!(
            s.reasons,
            vec![Reason::SameNameSound, Reason::SameBirthDate, Reason::SameGender, Reason::SamePhone]
        );
    }

    #[test]
    fn scores_order_candidates_sensibly() {
        let typed = person("王小明", "1985-03-12", "male", None, None);
        let same = person("王小明", "1985-03-12", "male", None, None);
        let swapped = person("王小明", "1985-12-03", "male", None, None);
        let typo = person("王晓明", "1985-03-12", "male", None, None);
        let similar = person("王小敏", "1985-03-12", "male", None, None);
        let namesake = person("王小明", "1962-07-30", "male", None, None);
        let stranger = person("赵六", "1970-02-02", "female", None, None);
        let s = |p: &Person| score(&typed, p).score;
        assert_eq!(s(&same), 70);
        assert!(s(&same) > s(&typo) && s(&typo) > s(&swapped), "{} {} {}", s(&same), s(&typo), s(&swapped));
        assert!(s(&similar) >= POSSIBLE, "{:?}", score(&typed, &similar));
        assert!(s(&namesake) < POSSIBLE, "the same common name alone is not a duplicate");
        assert_eq!(s(&stranger), 0);
        assert_eq!(score(&typed, &swapped).reasons[1], Reason::NearBirthDate);
        assert!(matches!(score(&typed, &similar).reasons[0], Reason::SimilarName(p) if (85..100).contains(&p)));
    }

    #[test]
    fn different_resident_ids_weigh_against_a_match() {
        let a = person("王小明", "1985-03-12", "male", None, Some("110105198503120011"));
        let b = person("王小明", "1985-03-12", "male", None, Some("110105198503120038"));
        let s = score(&a, &b);
        assert!(s.score < POSSIBLE, "{s:?}");
        assert_eq!(s.reasons[0], Reason::DifferentResidentId);
    }

    #[test]
    fn phones_compare_as_dialled() {
        assert_eq!(normalize_phone("+86 138-0013-8000"), "13800138000");
        assert_eq!(normalize_phone("8613800138000"), "13800138000");
        assert_eq!(normalize_phone("010-62345678"), "01062345678");
    }
}
