//! Guided triage (智能导诊): the patient picks where it troubles them and what they
//! feel; the rule table (`data/triage.tsv`, each rule naming its sources in
//! [`SOURCES`]) suggests departments with reasons. A red-flag symptom sends the
//! patient to the emergency department before anything else; children go to
//! paediatrics first. The suggestions are matched to the departments of every campus
//! that take appointments. It is guidance, not a diagnosis: every answer carries the
//! disclaimer.

use std::sync::LazyLock;

use lianyi_security::Caller;

use crate::booking::{Booking, Department};
use crate::common::{patient_of, read};
use crate::{Names, PortalError, invalid};

/// Where it troubles the patient: code, Chinese, English.
pub const PARTS: [(&str, &str, &str); 10] = [
    ("head", "头部", "Head"),
    ("eye", "眼睛", "Eyes"),
    ("ent", "耳鼻喉", "Ear, nose and throat"),
    ("chest", "胸部", "Chest"),
    ("abdomen", "腹部", "Belly"),
    ("urinary", "泌尿和生殖", "Urinary and genital"),
    ("limbs", "四肢和腰背", "Limbs and back"),
    ("skin", "皮肤", "Skin"),
    ("whole", "全身", "Whole body"),
    ("mind", "情绪和睡眠", "Mood and sleep"),
];

/// Department kinds: code, the words their names carry, Chinese, English.
pub const KINDS: [(&str, &[&str], &str, &str); 16] = [
    ("ed", &["急诊"], "急诊科", "Emergency department"),
    ("im", &["内科"], "内科", "Internal medicine"),
    ("neuro", &["神经"], "神经内科", "Neurology"),
    ("cardio", &["心血管", "心内"], "心血管内科", "Cardiology"),
    ("resp", &["呼吸"], "呼吸内科", "Respiratory medicine"),
    ("gastro", &["消化"], "消化内科", "Gastroenterology"),
    ("sur", &["外科"], "外科", "Surgery"),
    ("ortho", &["骨科"], "骨科", "Orthopaedics"),
    ("uro", &["泌尿"], "泌尿外科", "Urology"),
    ("gyn", &["妇科", "妇产"], "妇科", "Gynaecology"),
    ("ent", &["耳鼻"], "耳鼻喉科", "ENT"),
    ("eye", &["眼科"], "眼科", "Ophthalmology"),
    ("derm", &["皮肤"], "皮肤科", "Dermatology"),
    ("psych", &["心理", "精神"], "心理科", "Psychology and psychiatry"),
    ("fever", &["发热"], "发热门诊", "Fever clinic"),
    ("ped", &["儿科"], "儿科", "Paediatrics"),
];

/// The sources the rules rest on: key, Chinese, English.
pub const SOURCES: [(&str, &str, &str); 3] = [
    (
        "nhc2011",
        "卫生部《急诊病人病情分级试点指导原则（征求意见稿）》，2011 年",
        "Ministry of Health of China: guidelines for grading emergency patients (pilot, draft), 2011",
    ),
    (
        "befast",
        "中风识别 BE FAST 口诀（美国卒中协会）与“中风 120”（中国卒中学会）",
        "The BE FAST stroke signs (American Stroke Association) and 'Stroke 120' (Chinese Stroke Association)",
    ),
    (
        "esc2020",
        "欧洲心脏病学会 2020 年非 ST 段抬高型急性冠脉综合征指南：胸痛的危险特征",
        "ESC 2020 guidelines on acute coronary syndromes without ST elevation: warning features of chest pain",
    ),
];

/// The disclaimer every answer carries.
pub fn disclaimer() -> Names {
    Names {
        zh: "导诊只帮您选择科室，不是诊断，也不能代替医生。症状加重或出现危险信号，请立即到急诊科或拨打 120。".into(),
        en: "Triage only helps you choose a department: it is not a diagnosis and does not replace a doctor. If it \
             gets worse or a danger sign appears, go to the emergency department or call 120 now."
            .into(),
    }
}

/// Children up to this age go to paediatrics first.
pub const CHILD_YEARS: u32 = 14;

/// One rule of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symptom {
    pub part: &'static str,
    pub code: &'static str,
    pub names: Names,
    pub red_flag: bool,
    /// Department kinds, most fitting first.
    pub kinds: Vec<&'static str>,
    pub reason: Names,
    pub sources: Vec<&'static str>,
}

static TABLE: LazyLock<Vec<Symptom>> = LazyLock::new(|| {
    include_str!("../data/triage.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.len() == 9)
        .map(|c| Symptom {
            part: c[0],
            code: c[1],
            names: Names { zh: c[2].into(), en: c[3].into() },
            red_flag: c[4] == "1",
            kinds: c[5].split(',').collect(),
            reason: Names { zh: c[6].into(), en: c[7].into() },
            sources: c[8].split(',').collect(),
        })
        .collect()
});

/// Every rule, in the table's order.
pub fn symptoms() -> &'static [Symptom] {
    &TABLE
}

/// A suggested kind of department, why, and where it can be booked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suggestion {
    pub kind: &'static str,
    pub names: Names,
    pub reasons: Vec<Names>,
    /// The departments of every campus of this kind that take appointments.
    pub departments: Vec<Department>,
}

/// What the rules say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advice {
    /// A red flag: go to the emergency department now.
    pub emergency: bool,
    pub red_flags: Vec<Names>,
    pub suggestions: Vec<Suggestion>,
    /// The sources of the rules used: (Chinese, English).
    pub sources: Vec<Names>,
}

/// The rules for the chosen symptoms (codes) of a patient of `age` years: kinds in
/// order, with their reasons. Pure: the table alone.
pub fn advise(chosen: &[String], age: Option<u32>) -> Result<Advice, PortalError> {
    if chosen.is_empty() {
        return Err(invalid("symptoms", "required", "choose at least one symptom"));
    }
    let mut picked = Vec::new();
    for code in chosen {
        match TABLE.iter().find(|s| s.code == code) {
            Some(s) => picked.push(s),
            None => return Err(invalid("symptoms", "unknown", format!("no symptom '{code}'"))),
        }
    }
    let emergency = picked.iter().any(|s| s.red_flag);
    let mut suggestions: Vec<Suggestion> = Vec::new();
    let mut add = |kind: &'static str, reason: &Names| {
        let Some(k) = KINDS.iter().find(|k| k.0 == kind) else { return };
        match suggestions.iter_mut().find(|s| s.kind == kind) {
            Some(s) => {
                if !s.reasons.contains(reason) {
                    s.reasons.push(reason.clone());
                }
            }
            None => suggestions.push(Suggestion {
                kind,
                names: Names { zh: k.2.into(), en: k.3.into() },
                reasons: vec![reason.clone()],
                departments: Vec::new(),
            }),
        }
    };
    let child = age.is_some_and(|a| a <= CHILD_YEARS);
    for s in picked.iter().filter(|s| s.red_flag) {
        add("ed", &s.reason);
    }
    if child {
        let why = Names {
            zh: format!("{CHILD_YEARS} 岁及以下的儿童先看儿科"),
            en: format!("Children up to {CHILD_YEARS} are seen by paediatrics first"),
        };
        add("ped", &why);
    }
    for s in picked.iter().filter(|s| !s.red_flag) {
        for k in &s.kinds {
            add(k, &s.reason);
        }
    }
    let mut keys: Vec<&str> = picked.iter().flat_map(|s| s.sources.iter().copied()).collect();
    keys.sort_unstable();
    keys.dedup();
    let sources = keys
        .iter()
        .filter_map(|k| SOURCES.iter().find(|s| s.0 == *k))
        .map(|s| Names { zh: s.1.into(), en: s.2.into() })
        .collect();
    Ok(Advice {
        emergency,
        red_flags: picked.iter().filter(|s| s.red_flag).map(|s| s.names.clone()).collect(),
        suggestions,
        sources,
    })
}

/// Whole years from a birth date to today (`YYYY-MM-DD`).
fn years(birth: &str, today: &str) -> Option<u32> {
    lianyi_clinical::registry::age(birth, today)
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Triage {
    booking: Booking,
}

impl Triage {
    pub fn new(booking: Booking) -> Triage {
        Triage { booking }
    }

    /// The advice for the caller's patient (their age from their record), with the
    /// departments that take appointments for each suggestion.
    pub async fn advise(&self, caller: &Caller, chosen: &[String]) -> Result<Advice, PortalError> {
        let patient = patient_of(caller)?;
        let fhir = self.booking.fhir();
        let birth = read(fhir, caller, "Patient", patient)
            .await?
            .and_then(|(_, p)| p["birthDate"].as_str().map(str::to_string));
        let today = lianyi_clinical::scheduling::local_date(fhir.now_ms());
        let mut advice = advise(chosen, birth.as_deref().and_then(|b| years(b, &today)))?;
        let departments = self.booking.departments(caller).await?;
        for s in &mut advice.suggestions {
            let words = KINDS.iter().find(|k| k.0 == s.kind).map(|k| k.1).unwrap_or_default();
            s.departments =
                departments.iter().filter(|d| words.iter().any(|w| d.names.zh.contains(w))).cloned().collect();
        }
        Ok(advice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_table_is_whole_and_names_its_sources() {
        assert!(symptoms().len() >= 30);
        for s in symptoms() {
            assert!(PARTS.iter().any(|p| p.0 == s.part), "{}: part {}", s.code, s.part);
            assert!(!s.kinds.is_empty() && s.kinds.iter().all(|k| KINDS.iter().any(|x| x.0 == *k)), "{}", s.code);
            assert!(!s.sources.is_empty() && s.sources.iter().all(|k| SOURCES.iter().any(|x| x.0 == *k)), "{}", s.code);
            assert_eq!(s.red_flag, s.kinds == ["ed"], "{}: a red flag goes to the emergency department only", s.code);
        }
        for (part, ..) in PARTS {
            assert!(symptoms().iter().any(|s| s.part == part), "{part} has symptoms");
        }
    }

    #[test]
    fn red_flags_go_to_the_emergency_department_first() {
        let a = advise(&codes(&["cough", "chest-pain"]), Some(60)).unwrap();
        assert!(a.emergency);
        assert_eq!(a.suggestions[0].kind, "ed");
        assert!(a.suggestions.iter().any(|s| s.kind == "resp"), "the rest still suggested");
        assert!(a.sources.iter().any(|s| s.en.contains("ESC 2020")));
        let calm = advise(&codes(&["rash"]), Some(30)).unwrap();
        assert!(!calm.emergency);
        assert_eq!(calm.suggestions.iter().map(|s| s.kind).collect::<Vec<_>>(), ["derm"]);
    }

    #[test]
    fn children_see_paediatrics_first_and_bad_input_is_named() {
        let a = advise(&codes(&["fever"]), Some(6)).unwrap();
        assert_eq!(a.suggestions.iter().map(|s| s.kind).collect::<Vec<_>>(), ["ped", "im", "fever"]);
        let a = advise(&codes(&["fever"]), Some(40)).unwrap();
        assert_eq!(a.suggestions[0].kind, "im");
        assert!(matches!(advise(&[], None), Err(PortalError::Invalid(e)) if e[0].field == "symptoms"));
        assert!(matches!(advise(&codes(&["nonsense"]), None), Err(PortalError::Invalid(e)) if e[0].code == "unknown"));
    }
}
