//! The demo hospital group: deterministic, realistic, fictitious data.
//!
//! One group with three campuses, departments and wards, 20 practitioners with
//! roles, and 200 patients with resident ID numbers (valid check character, region
//! codes starting 99 so they belong to no real region), campus MRNs, mobile numbers
//! and addresses, each with encounters, diagnoses (ICD-10), vital signs and lab
//! results (LOINC, UCUM units, reference ranges, abnormal flags) and prescriptions.
//! The same seed always yields the same resources, ids and dates.

use serde_json::{Value, json};

use crate::identifiers::{RESIDENT_ID_SYSTEM, ResidentId, STAFF_ID_SYSTEM, USER_SYSTEM, mrn_system};

pub const GROUP_ID: &str = "lianyi-group";
pub const PATIENTS: usize = 200;
pub const PRACTITIONERS: usize = 20;
/// A practitioner who is also a demo account (the users `lianyi demo` adds): their
/// user name becomes an identifier of their Practitioner, so "my department" finds
/// their PractitionerRole.
pub struct StaffAccount {
    /// The practitioner's position in the generated list.
    pub position: usize,
    pub user: &'static str,
    /// Surname and given name, each in Hanzi and pinyin.
    pub surname: (&'static str, &'static str),
    pub given: (&'static str, &'static str),
}

/// prac-001 is an internal-medicine doctor at the East Campus, prac-002 a surgeon at
/// the West Campus, prac-004 the head of East internal medicine, prac-019 an
/// internal-medicine nurse at the East Campus.
pub const STAFF_ACCOUNTS: [StaffAccount; 4] = [
    StaffAccount { position: 0, user: "doctor.east", surname: ("李", "Li"), given: ("明", "Ming") },
    StaffAccount { position: 3, user: "head.east", surname: ("张", "Zhang"), given: ("华", "Hua") },
    StaffAccount { position: 1, user: "doctor.west", surname: ("陈", "Chen"), given: ("静", "Jing") },
    StaffAccount { position: 18, user: "nurse.east", surname: ("赵", "Zhao"), given: ("娜", "Na") },
];

/// Campus id, Chinese name, English name, district, postal code.
pub const CAMPUSES: [(&str, &str, &str, &str, &str); 3] = [
    ("campus-east", "东院区", "East Campus", "朝阳区", "100020"),
    ("campus-west", "西院区", "West Campus", "海淀区", "100089"),
    ("campus-south", "南院区", "South Campus", "丰台区", "100071"),
];

/// Beds of each demo ward (`bed-{campus}-{department}-{nn}`, named 1床 …).
pub const BEDS_PER_WARD: usize = 20;

/// Department code, Chinese name, English name, has a ward.
const DEPARTMENTS: [(&str, &str, &str, bool); 6] = [
    ("im", "内科", "Internal Medicine", true),
    ("sur", "外科", "Surgery", true),
    ("ped", "儿科", "Pediatrics", true),
    ("lab", "检验科", "Laboratory", false),
    ("pha", "药剂科", "Pharmacy", false),
    ("rad", "放射科", "Radiology", false),
];

/// Surname in Hanzi and pinyin.
const SURNAMES: [(&str, &str); 20] = [
    ("王", "Wang"),
    ("李", "Li"),
    ("张", "Zhang"),
    ("刘", "Liu"),
    ("陈", "Chen"),
    ("杨", "Yang"),
    ("黄", "Huang"),
    ("赵", "Zhao"),
    ("吴", "Wu"),
    ("周", "Zhou"),
    ("徐", "Xu"),
    ("孙", "Sun"),
    ("马", "Ma"),
    ("朱", "Zhu"),
    ("胡", "Hu"),
    ("郭", "Guo"),
    ("何", "He"),
    ("林", "Lin"),
    ("高", "Gao"),
    ("罗", "Luo"),
];

const GIVEN_CHARS: [(&str, &str); 24] = [
    ("伟", "Wei"),
    ("芳", "Fang"),
    ("娜", "Na"),
    ("敏", "Min"),
    ("静", "Jing"),
    ("丽", "Li"),
    ("强", "Qiang"),
    ("磊", "Lei"),
    ("军", "Jun"),
    ("洋", "Yang"),
    ("勇", "Yong"),
    ("艳", "Yan"),
    ("杰", "Jie"),
    ("娟", "Juan"),
    ("涛", "Tao"),
    ("明", "Ming"),
    ("超", "Chao"),
    ("秀", "Xiu"),
    ("霞", "Xia"),
    ("平", "Ping"),
    ("刚", "Gang"),
    ("桂", "Gui"),
    ("华", "Hua"),
    ("建", "Jian"),
];

const STREETS: [&str; 8] = ["建国路", "中关村大街", "丰台北路", "朝阳北路", "学院路", "南三环西路", "复兴路", "望京街"];

/// ICD-10 code, Chinese title, English title.
const DIAGNOSES: [(&str, &str, &str); 10] = [
    ("I10", "原发性高血压", "Essential (primary) hypertension"),
    ("E11.9", "2型糖尿病，不伴有并发症", "Type 2 diabetes mellitus without complications"),
    ("J06.9", "急性上呼吸道感染", "Acute upper respiratory infection, unspecified"),
    ("K29.7", "胃炎", "Gastritis, unspecified"),
    ("I25.1", "动脉粥样硬化性心脏病", "Atherosclerotic heart disease"),
    ("J45.9", "哮喘", "Asthma, unspecified"),
    ("E78.5", "高脂血症", "Hyperlipidaemia, unspecified"),
    ("M54.5", "腰痛", "Low back pain"),
    ("K21.9", "胃食管反流病", "Gastro-oesophageal reflux disease without oesophagitis"),
    ("N39.0", "泌尿道感染", "Urinary tract infection, site not specified"),
];

/// ATC code, Chinese name, English name, dose value, dose unit, times a day.
const DRUGS: [(&str, &str, &str, f64, &str, u32); 8] = [
    ("C08CA01", "氨氯地平片", "Amlodipine tablets", 5.0, "mg", 1),
    ("A10BA02", "二甲双胍片", "Metformin tablets", 500.0, "mg", 2),
    ("C10AA05", "阿托伐他汀钙片", "Atorvastatin tablets", 20.0, "mg", 1),
    ("B01AC06", "阿司匹林肠溶片", "Aspirin enteric-coated tablets", 100.0, "mg", 1),
    ("A02BC01", "奥美拉唑肠溶胶囊", "Omeprazole capsules", 20.0, "mg", 2),
    ("J01CA04", "阿莫西林胶囊", "Amoxicillin capsules", 500.0, "mg", 3),
    ("R03AC02", "沙丁胺醇气雾剂", "Salbutamol inhaler", 100.0, "ug", 3),
    ("M01AE01", "布洛芬缓释胶囊", "Ibuprofen sustained-release capsules", 300.0, "mg", 2),
];

/// A lab test with its reference range and the distribution demo values follow.
struct Lab {
    loinc: &'static str,
    zh: &'static str,
    en: &'static str,
    unit: &'static str,
    low: f64,
    high: f64,
    mean: f64,
    sd: f64,
}

const fn lab(
    loinc: &'static str,
    zh: &'static str,
    en: &'static str,
    unit: &'static str,
    range: (f64, f64),
    dist: (f64, f64),
) -> Lab {
    Lab { loinc, zh, en, unit, low: range.0, high: range.1, mean: dist.0, sd: dist.1 }
}

const LABS: [Lab; 6] = [
    lab("2345-7", "葡萄糖", "Glucose [Moles/volume] in Serum or Plasma", "mmol/L", (3.9, 6.1), (5.4, 1.6)),
    lab("718-7", "血红蛋白", "Hemoglobin [Mass/volume] in Blood", "g/L", (115.0, 175.0), (138.0, 18.0)),
    lab("6690-2", "白细胞计数", "Leukocytes [#/volume] in Blood", "10*9/L", (3.5, 9.5), (6.8, 2.4)),
    lab("2160-0", "肌酐", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", (57.0, 111.0), (82.0, 22.0)),
    lab("2823-3", "钾", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", (3.5, 5.3), (4.3, 0.5)),
    lab(
        "1742-6",
        "丙氨酸氨基转移酶",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        (9.0, 50.0),
        (30.0, 16.0),
    ),
];

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const ATC: &str = "http://www.whocc.no/atc";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const ID_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
const NAME_REPRESENTATION: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";

/// The last day of demo activity; every date is counted back from it.
const DAY0: &str = "2026-06-30";

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately normal (sum of uniforms).
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..6).map(|_| self.unit()).sum::<f64>() - 3.0;
        mean + s * sd / std::f64::consts::FRAC_1_SQRT_2
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A resource and the campus that owns it.
pub struct DemoResource {
    pub campus: String,
    pub resource: Value,
}

fn day0_ms() -> i64 {
    lianyi_fhir::datetime::parse_range(DAY0).map_or(0, |r| r.low)
}

fn date_of(ms: i64) -> String {
    lianyi_fhir::datetime::format_date(ms)
}

/// `2026-03-01T09:30:00+08:00` for an epoch-ms instant, in Beijing time.
fn datetime_of(ms: i64) -> String {
    let local = ms + 8 * 3_600_000;
    let s = lianyi_fhir::datetime::format_instant(local);
    format!("{}+08:00", &s[..19])
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn campus_ref(c: usize) -> Value {
    json!({"reference": format!("Organization/{}", CAMPUSES[c].0), "display": CAMPUSES[c].1})
}

/// Generates the whole demo data set in dependency order.
pub fn generate() -> Vec<DemoResource> {
    let mut rng = Rng(0x4C49_414E_5949); // "LIANYI"
    let mut out = Vec::new();
    let day0 = day0_ms();
    let mut push = |campus: &str, resource: Value| out.push(DemoResource { campus: campus.to_string(), resource });

    push(
        CAMPUSES[0].0,
        json!({"resourceType": "Organization", "id": GROUP_ID, "active": true,
               "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov"}]}],
               "name": "联医医疗集团", "alias": ["Lianyi Hospital Group"]}),
    );
    for (c, (cid, zh, en, district, postal)) in CAMPUSES.iter().enumerate() {
        push(
            cid,
            json!({"resourceType": "Organization", "id": cid, "active": true,
                   "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov"}]}],
                   "name": format!("联医医疗集团{zh}"), "alias": [en],
                   "partOf": {"reference": format!("Organization/{GROUP_ID}")},
                   "address": [{"city": "北京市", "district": district, "postalCode": postal, "country": "CN"}]}),
        );
        push(
            cid,
            json!({"resourceType": "Location", "id": format!("loc-{cid}"), "status": "active", "mode": "instance",
                   "name": zh, "alias": [en],
                   "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "si"}]},
                   "managingOrganization": {"reference": format!("Organization/{cid}")}}),
        );
        for (code, dzh, den, ward) in DEPARTMENTS {
            push(
                cid,
                json!({"resourceType": "Organization", "id": format!("{cid}-{code}"), "active": true,
                       "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "dept"}]}],
                       "name": dzh, "alias": [den], "partOf": campus_ref(c)}),
            );
            if ward {
                push(
                    cid,
                    json!({"resourceType": "Location", "id": format!("ward-{cid}-{code}"), "status": "active", "mode": "instance",
                           "name": format!("{dzh}病区"), "alias": [format!("{den} Ward")],
                           "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "wa"}]},
                           "managingOrganization": {"reference": format!("Organization/{cid}-{code}")},
                           "partOf": {"reference": format!("Location/loc-{cid}")}}),
                );
                for b in 1..=BEDS_PER_WARD {
                    push(
                        cid,
                        json!({"resourceType": "Location", "id": format!("bed-{cid}-{code}-{b:02}"), "status": "active", "mode": "instance",
                               "name": format!("{b}床"), "alias": [format!("Bed {b}")],
                               "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]},
                               "operationalStatus": {"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": "U", "display": "Unoccupied"},
                               "partOf": {"reference": format!("Location/ward-{cid}-{code}")}}),
                    );
                }
            }
        }
    }

    // Practitioners: doctors, nurses, a pharmacist and a lab technician per campus.
    let roles = [
        ("doctor", "医生"),
        ("doctor", "医生"),
        ("nurse", "护士"),
        ("doctor", "医生"),
        ("nurse", "护士"),
        ("pharmacist", "药师"),
        ("doctor", "医生"),
    ];
    let mut doctors: Vec<Vec<String>> = vec![Vec::new(); 3];
    for i in 0..PRACTITIONERS {
        let account = STAFF_ACCOUNTS.iter().find(|a| a.position == i);
        let c = i % 3;
        let cid = CAMPUSES[c].0;
        let (mut sur_zh, mut sur_py) = *rng.pick(&SURNAMES);
        let (mut g_zh, mut g_py) = *rng.pick(&GIVEN_CHARS);
        if let Some(a) = account {
            ((sur_zh, sur_py), (g_zh, g_py)) = (a.surname, a.given);
        }
        let id = format!("prac-{:03}", i + 1);
        let mut identifiers = vec![json!({"system": STAFF_ID_SYSTEM, "value": format!("LY{:05}", 10_000 + i)})];
        if let Some(a) = account {
            identifiers.push(json!({"system": USER_SYSTEM, "value": a.user}));
        }
        let (role, role_zh) = if i % 10 == 9 { ("ict", "检验技师") } else { roles[i % roles.len()] };
        let dept = match role {
            "pharmacist" => "pha",
            "ict" => "lab",
            _ => DEPARTMENTS[i % 3].0,
        };
        let gender = if rng.below(2) == 0 { "male" } else { "female" };
        // Doctors' professional titles (职称): chief and associate chief physicians hold
        // expert clinics.
        let title = [
            ("chief", "主任医师", "Chief physician"),
            ("associate-chief", "副主任医师", "Associate chief physician"),
            ("attending", "主治医师", "Attending physician"),
            ("resident", "医师", "Physician"),
        ][(i / 3) % 4];
        let mut practitioner = json!({"resourceType": "Practitioner", "id": id, "active": true,
                   "identifier": identifiers,
                   "name": [{"use": "official", "text": format!("{sur_zh}{g_zh}"), "family": sur_zh, "given": [g_zh]},
                            {"use": "usual", "text": format!("{sur_py} {g_py}"), "family": sur_py, "given": [g_py],
                             "extension": [{"url": NAME_REPRESENTATION, "valueCode": "ABC"}]}],
                   "gender": gender,
                   "telecom": [{"system": "phone", "value": format!("010-6{:07}", 1_000_000 + i * 7919 % 8_999_999), "use": "work"}]});
        if role == "doctor" {
            practitioner["qualification"] = json!([{"code": {"coding": [{"system": "urn:lianyi:professional-title",
                "code": title.0, "display": title.2}], "text": title.1}}]);
        }
        push(cid, practitioner);
        let role_code = match role {
            "doctor" => ("doctor", "Doctor"),
            "nurse" => ("nurse", "Nurse"),
            "pharmacist" => ("pharmacist", "Pharmacist"),
            _ => ("ict", "Laboratory technician"),
        };
        push(
            cid,
            json!({"resourceType": "PractitionerRole", "id": format!("role-{:03}", i + 1), "active": true,
                   "practitioner": {"reference": format!("Practitioner/{id}")},
                   "organization": {"reference": format!("Organization/{cid}-{dept}")},
                   "location": [{"reference": format!("Location/loc-{cid}")}],
                   "code": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": role_code.0, "display": role_code.1}], "text": role_zh}]}),
        );
        if role == "doctor" {
            doctors[c].push(id);
        }
    }

    for n in 0..PATIENTS {
        let c = n % 3;
        let (cid, _, _, district, postal) = CAMPUSES[c];
        let pid = format!("pat-{:04}", n + 1);
        let (sur_zh, sur_py) = *rng.pick(&SURNAMES);
        let (g1_zh, g1_py) = *rng.pick(&GIVEN_CHARS);
        let two = rng.below(3) > 0;
        let (g2_zh, g2_py) = *rng.pick(&GIVEN_CHARS);
        let (given_zh, given_py) = if two {
            (format!("{g1_zh}{g2_zh}"), format!("{g1_py}{}", g2_py.to_lowercase()))
        } else {
            (g1_zh.to_string(), g1_py.to_string())
        };
        let age_days = 365 * (1 + rng.below(88)) + rng.below(365);
        let birth_ms = day0 - age_days as i64 * 86_400_000;
        let birth = date_of(birth_ms);
        let male = rng.below(2) == 0;
        let seq = (rng.below(500) * 2 + usize::from(male)) as u32;
        let region = 990_100 + (c as u32) * 100 + rng.below(20) as u32;
        let Ok(rid) = ResidentId::build(region, &birth.replace('-', ""), seq) else { continue };
        let mobile = format!("1{}{:09}", ["39", "38", "58", "86", "37"][rng.below(5)], rng.next() % 1_000_000_000)
            [..11]
            .to_string();
        let address_line = format!(
            "{}{}号{}单元{}室",
            rng.pick(&STREETS),
            1 + rng.below(300),
            1 + rng.below(6),
            101 + rng.below(20) * 100 + rng.below(4)
        );
        let gp = rng.pick(&doctors[c]).clone();
        push(
            cid,
            json!({"resourceType": "Patient", "id": pid, "active": true,
                   "identifier": [
                       {"use": "official", "type": {"coding": [{"system": ID_TYPE, "code": "NNCHN"}], "text": "居民身份证"},
                        "system": RESIDENT_ID_SYSTEM, "value": rid.as_str()},
                       {"use": "usual", "type": {"coding": [{"system": ID_TYPE, "code": "MR"}], "text": "病案号"},
                        "system": mrn_system(cid), "value": format!("{}{:07}", ["E", "W", "S"][c], 1_000_000 + n * 37),
                        "assigner": {"reference": format!("Organization/{cid}")}}],
                   "name": [{"use": "official", "text": format!("{sur_zh}{given_zh}"), "family": sur_zh, "given": [given_zh],
                             "extension": [{"url": NAME_REPRESENTATION, "valueCode": "IDE"}]},
                            {"use": "official", "text": format!("{sur_py} {given_py}"), "family": sur_py, "given": [given_py],
                             "extension": [{"url": NAME_REPRESENTATION, "valueCode": "ABC"}]}],
                   "telecom": [{"system": "phone", "value": mobile, "use": "mobile"}],
                   "gender": rid.gender(), "birthDate": rid.birth_date(),
                   "address": [{"use": "home", "text": format!("北京市{district}{address_line}"), "line": [address_line],
                                "city": "北京市", "district": district, "postalCode": postal, "country": "CN"}],
                   "generalPractitioner": [{"reference": format!("Practitioner/{gp}")}],
                   "managingOrganization": campus_ref(c)}),
        );
        let patient_ref = json!({"reference": format!("Patient/{pid}"), "display": format!("{sur_zh}{given_zh}")});

        // Chronic problems first diagnosed at the first visit.
        let problems: Vec<usize> = (0..1 + rng.below(2)).map(|_| rng.below(DIAGNOSES.len())).collect();
        let visits = 1 + rng.below(4);
        for v in 0..visits {
            // One visit in eight happens at another campus: the record spans campuses.
            let vc = if rng.below(8) == 0 { (c + 1 + rng.below(2)) % 3 } else { c };
            let vcid = CAMPUSES[vc].0;
            let inpatient = rng.below(6) == 0;
            let dept = if age_days < 14 * 365 { "ped" } else { DEPARTMENTS[rng.below(2)].0 };
            let start = day0 - (rng.below(1000) as i64) * 86_400_000
                + (8 * 3_600_000 + rng.below(9 * 60) as i64 * 60_000)
                - 8 * 3_600_000;
            let end = if inpatient {
                start + (2 + rng.below(9)) as i64 * 86_400_000
            } else {
                start + (10 + rng.below(40)) as i64 * 60_000
            };
            let eid = format!("enc-{:04}-{}", n + 1, v + 1);
            let doctor = if vc == c { gp.clone() } else { rng.pick(&doctors[vc]).clone() };
            let mut enc = json!({"resourceType": "Encounter", "id": eid, "status": "finished",
                   "class": {"system": ACT_CODE, "code": if inpatient { "IMP" } else { "AMB" }, "display": if inpatient { "inpatient encounter" } else { "ambulatory" }},
                   "type": [{"text": if inpatient { "住院" } else { "门诊" }}],
                   "subject": patient_ref,
                   "participant": [{"individual": {"reference": format!("Practitioner/{doctor}")}}],
                   "period": {"start": datetime_of(start), "end": datetime_of(end)},
                   "serviceProvider": {"reference": format!("Organization/{vcid}-{dept}")}});
            if inpatient {
                enc["location"] = json!([{"location": {"reference": format!("Location/ward-{vcid}-{dept}")}}]);
                enc["hospitalization"] = json!({"dischargeDisposition": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}]}});
            }
            let enc_ref = json!({"reference": format!("Encounter/{eid}")});
            let diag: Vec<usize> = if v == 0 { problems.clone() } else { vec![rng.below(DIAGNOSES.len())] };
            let mut diagnosis_refs = Vec::new();
            for (k, d) in diag.iter().enumerate() {
                let (code, zh, en) = DIAGNOSES[*d];
                let cond_id = format!("cond-{:04}-{}-{}", n + 1, v + 1, k + 1);
                let chronic = v == 0 && !matches!(code, "J06.9" | "N39.0");
                push(
                    vcid,
                    json!({"resourceType": "Condition", "id": cond_id,
                           "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": if chronic { "active" } else { "resolved" }}]},
                           "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                                     "code": if chronic { "problem-list-item" } else { "encounter-diagnosis" }}]}],
                           "code": {"coding": [{"system": ICD10, "code": code, "display": en}], "text": zh},
                           "subject": patient_ref, "encounter": enc_ref,
                           "onsetDateTime": datetime_of(start), "recordedDate": datetime_of(start),
                           "recorder": {"reference": format!("Practitioner/{doctor}")}}),
                );
                diagnosis_refs.push(json!({"condition": {"reference": format!("Condition/{cond_id}")}, "rank": k + 1}));
            }
            enc["diagnosis"] = Value::Array(diagnosis_refs);
            push(vcid, enc);

            // Vital signs.
            let at = datetime_of(start + 5 * 60_000);
            let hypertensive = diag.iter().any(|d| DIAGNOSES[*d].0 == "I10");
            let sys = round(rng.normal(if hypertensive { 148.0 } else { 122.0 }, 12.0), 0);
            let dia = round(rng.normal(if hypertensive { 92.0 } else { 78.0 }, 8.0), 0);
            let vital = |code: &str, text: &str, value: Value, suffix: &str| -> Value {
                let mut o = json!({"resourceType": "Observation", "id": format!("obs-{:04}-{}-{suffix}", n + 1, v + 1), "status": "final",
                       "category": [{"coding": [{"system": OBS_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}],
                       "code": {"coding": [{"system": LOINC, "code": code, "display": text}], "text": text},
                       "subject": patient_ref, "encounter": enc_ref, "effectiveDateTime": at, "issued": format!("{}", lianyi_fhir::datetime::format_instant(start + 6 * 60_000)),
                       "performer": [{"reference": format!("Practitioner/{doctor}")}]});
                if let (Some(obj), Some(extra)) = (o.as_object_mut(), value.as_object()) {
                    for (k, val) in extra {
                        obj.insert(k.clone(), val.clone());
                    }
                }
                o
            };
            let q = |value: f64, unit: &str| json!({"value": value, "unit": unit, "system": UCUM, "code": unit});
            push(
                vcid,
                vital(
                    "85354-9",
                    "Blood pressure panel",
                    json!({"component": [
                {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}]}, "valueQuantity": q(sys, "mm[Hg]")},
                {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}]}, "valueQuantity": q(dia, "mm[Hg]")}]}),
                    "bp",
                ),
            );
            push(
                vcid,
                vital(
                    "8867-4",
                    "Heart rate",
                    json!({"valueQuantity": q(round(rng.normal(76.0, 9.0), 0), "/min")}),
                    "hr",
                ),
            );
            push(
                vcid,
                vital(
                    "8310-5",
                    "Body temperature",
                    json!({"valueQuantity": q(round(rng.normal(36.7, 0.35), 1), "Cel")}),
                    "temp",
                ),
            );
            if age_days > 18 * 365 {
                push(
                    vcid,
                    vital(
                        "29463-7",
                        "Body weight",
                        json!({"valueQuantity": q(round(rng.normal(if male { 72.0 } else { 60.0 }, 9.0), 1), "kg")}),
                        "wt",
                    ),
                );
            }

            // Two or three lab results, and the report that groups them.
            let report_time = lianyi_fhir::datetime::format_instant(start + 3 * 3_600_000);
            let mut results = Vec::new();
            for l in 0..2 + rng.below(2) {
                let Lab { loinc: code, zh, en, unit, low, high, mean, sd } = LABS[(v + l * 2 + n) % LABS.len()];
                let (low, high) =
                    if code == "718-7" { if male { (130.0, 175.0) } else { (115.0, 150.0) } } else { (low, high) };
                let diabetic = diag.iter().any(|d| DIAGNOSES[*d].0 == "E11.9");
                let mean = if code == "2345-7" && diabetic { 8.2 } else { mean };
                let places = if unit == "g/L" || unit == "U/L" || unit == "umol/L" { 0 } else { 1 };
                let value = round(rng.normal(mean, sd).max(0.1), places);
                let (flag, flag_text) = if value < low {
                    ("L", "Low")
                } else if value > high {
                    ("H", "High")
                } else {
                    ("N", "Normal")
                };
                push(
                    vcid,
                    json!({"resourceType": "Observation", "id": format!("obs-{:04}-{}-lab{}", n + 1, v + 1, l + 1), "status": "final",
                           "category": [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}],
                           "code": {"coding": [{"system": LOINC, "code": code, "display": en}], "text": zh},
                           "subject": patient_ref, "encounter": enc_ref,
                           "effectiveDateTime": at, "issued": report_time,
                           "valueQuantity": q(value, unit),
                           "interpretation": [{"coding": [{"system": INTERPRETATION, "code": flag, "display": flag_text}]}],
                           "referenceRange": [{"low": q(low, unit), "high": q(high, unit)}]}),
                );
                results.push(json!({"reference": format!("Observation/obs-{:04}-{}-lab{}", n + 1, v + 1, l + 1)}));
            }
            push(
                vcid,
                json!({"resourceType": "DiagnosticReport", "id": format!("rep-{:04}-{}", n + 1, v + 1), "status": "final",
                       "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB", "display": "Laboratory"}]}],
                       "code": {"coding": [{"system": LOINC, "code": "11502-2", "display": "Laboratory report"}], "text": "检验报告"},
                       "subject": patient_ref, "encounter": enc_ref, "effectiveDateTime": at, "issued": report_time,
                       "result": results}),
            );

            // Prescriptions for the visit's problems.
            for (k, d) in diag.iter().enumerate() {
                let drug = match DIAGNOSES[*d].0 {
                    "I10" => 0,
                    "E11.9" => 1,
                    "E78.5" | "I25.1" => 2 + k % 2,
                    "K29.7" | "K21.9" => 4,
                    "J06.9" | "N39.0" => 5,
                    "J45.9" => 6,
                    _ => 7,
                };
                let (atc, zh, en, dose, unit, tid) = DRUGS[drug];
                let chronic = matches!(drug, 0..=3);
                push(
                    vcid,
                    json!({"resourceType": "MedicationRequest", "id": format!("medrx-{:04}-{}-{}", n + 1, v + 1, k + 1),
                           "status": if chronic && v + 1 == visits { "active" } else { "completed" }, "intent": "order",
                           "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc, "display": en}], "text": zh},
                           "subject": patient_ref, "encounter": enc_ref, "authoredOn": datetime_of(start + 20 * 60_000),
                           "requester": {"reference": format!("Practitioner/{doctor}")},
                           "reasonReference": [{"reference": format!("Condition/cond-{:04}-{}-{}", n + 1, v + 1, k + 1)}],
                           "dosageInstruction": [{"text": format!("{zh} 每次{dose}{unit}，每日{tid}次"),
                               "timing": {"repeat": {"frequency": tid, "period": 1, "periodUnit": "d"}},
                               "doseAndRate": [{"doseQuantity": q(dose, unit)}]}],
                           "dispenseRequest": {"expectedSupplyDuration": {"value": if chronic { 30 } else { 7 }, "unit": "d", "system": UCUM, "code": "d"}}}),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn demo_data_is_valid_deterministic_and_complete() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.resource == y.resource && x.campus == y.campus));
        let mut ids = HashSet::new();
        let mut patients = 0;
        for r in &a {
            if let Err(e) = lianyi_fhir::validate_resource(&r.resource) {
                panic!("{}: {:?}", r.resource["id"], e.0);
            }
            let t = r.resource["resourceType"].as_str().unwrap();
            assert!(ids.insert(format!("{t}/{}", r.resource["id"].as_str().unwrap())), "duplicate id");
            if t == "Patient" {
                patients += 1;
                let rid = r.resource["identifier"][0]["value"].as_str().unwrap();
                let parsed = ResidentId::parse(rid).unwrap();
                assert_eq!(parsed.birth_date(), r.resource["birthDate"].as_str().unwrap());
                assert!(rid.starts_with("99"), "fictitious region");
            }
        }
        assert_eq!(patients, PATIENTS);
        let count = |t: &str| a.iter().filter(|r| r.resource["resourceType"] == t).count();
        assert_eq!(count("Practitioner"), PRACTITIONERS);
        assert_eq!(count("Organization"), 1 + 3 + 18);
        assert!(count("Observation") > 1000, "{}", count("Observation"));
        assert!(count("MedicationRequest") > 200);
        let campuses: HashSet<&str> = a.iter().map(|r| r.campus.as_str()).collect();
        assert_eq!(campuses.len(), 3);
    }
}
