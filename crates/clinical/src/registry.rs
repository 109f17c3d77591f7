//! Registration and the group's patient index (EMPI).
//!
//! A registrar enters a name in Hanzi, the resident ID number (or, without one, the
//! birth date and sex), a phone and an address. The draft is checked field by field
//! (the ID's check character; birth date and sex derived from it and cross-checked
//! with what was typed), the pinyin name is generated, and before anything is
//! created the whole group's index is searched for the same person: the same ID
//! number is the same person (no second record is made), and records scoring
//! [`crate::matching::POSSIBLE`] or more on name (Hanzi and sound), birth date, sex
//! and phone are shown with their scores and reasons until the registrar confirms
//! that this is someone new. The new record gets the campus MRN from the campus's
//! counter.
//!
//! The duplicate search looks at every campus (a person registered at the west
//! campus must be found from the east one) with the registrar's role; each record
//! shown is audited as read by the registrar.

use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, CampusId, Perm};
use lianyi_services::FhirService;
use lianyi_services::fhir::ServiceError;
use lianyi_services::identifiers::{Mrn, RESIDENT_ID_SYSTEM, ResidentId, ResidentIdError};
use serde_json::{Value, json};

use crate::common::invalid;
use crate::matching::{self, POSSIBLE, Person, Reason, Score};
use crate::names::{is_hanzi, pinyin_name};

const ID_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
const NAME_REPRESENTATION: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";
/// The first number of a campus's MRN counter (the demo data's MRNs are below it).
const FIRST_MRN: i64 = 2_000_000;
/// At most this many records are looked at per search of the index.
const PER_SEARCH: usize = 50;

/// What the registrar typed. Empty strings are absent values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft {
    pub name: String,
    pub resident_id: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// FHIR administrative gender: male, female, other, unknown.
    pub gender: String,
    pub phone: String,
    pub address: String,
}

/// One rule a field breaks. `code` is stable (the pages translate it); `detail` says
/// it in English for the API and the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
    pub detail: String,
}

fn field_error(field: &'static str, code: &'static str, detail: impl Into<String>) -> FieldError {
    FieldError { field, code, detail: detail.into() }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
}

/// A checked draft: the values to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub name: String,
    pub family: String,
    pub given: String,
    pub pinyin_family: String,
    pub pinyin_given: String,
    pub resident_id: Option<String>,
    pub birth_date: String,
    pub gender: String,
    pub phone: Option<String>,
    pub address: Option<String>,
}

impl Checked {
    pub fn person(&self) -> Person {
        Person {
            resident_id: self.resident_id.clone(),
            name: self.name.clone(),
            birth_date: Some(self.birth_date.clone()),
            gender: Some(self.gender.clone()),
            phone: self.phone.clone(),
        }
    }

    pub fn pinyin(&self) -> String {
        format!("{} {}", self.pinyin_family, self.pinyin_given).trim().to_string()
    }
}

fn valid_date(s: &str) -> bool {
    s.len() == 10
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[7] == b'-'
        && lianyi_fhir::datetime::parse_range(s).is_some()
        && s.bytes().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit())
}

/// Checks a draft against the registration rules; `today` is `YYYY-MM-DD`.
pub fn check_draft(d: &Draft, today: &str) -> Result<Checked, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name: String = d.name.split_whitespace().collect::<Vec<_>>().join(" ");
    let name = if name.chars().any(is_hanzi) { name.replace(' ', "") } else { name };
    if name.is_empty() {
        errors.push(field_error("name", "required", "the name is required"));
    } else if name.chars().count() > 40 {
        errors.push(field_error("name", "name-length", "at most 40 characters"));
    } else if !name.chars().all(|c| is_hanzi(c) || c.is_alphabetic() || c == ' ' || c == '·' || c == '-') {
        errors.push(field_error("name", "name-characters", "only Chinese characters, letters, '·' and '-'"));
    }

    let id = d.resident_id.trim();
    let resident = if id.is_empty() {
        None
    } else {
        match ResidentId::parse(id) {
            Ok(r) => Some(r),
            Err(e) => {
                let code = match e {
                    ResidentIdError::Format => "resident-id-format",
                    ResidentIdError::Checksum => "resident-id-checksum",
                    ResidentIdError::BirthDate => "resident-id-birth-date",
                };
                errors.push(field_error("resident_id", code, e.to_string()));
                None
            }
        }
    };

    let typed_birth = d.birth_date.trim();
    let birth_date = match &resident {
        Some(r) => {
            if !typed_birth.is_empty() && typed_birth != r.birth_date() {
                errors.push(field_error(
                    "birth_date",
                    "birth-date-mismatch",
                    format!("differs from the birth date in the resident ID ({})", r.birth_date()),
                ));
            }
            r.birth_date()
        }
        None if typed_birth.is_empty() && id.is_empty() => {
            errors.push(field_error("birth_date", "required", "needed when there is no resident ID"));
            String::new()
        }
        None => typed_birth.to_string(),
    };
    if !birth_date.is_empty() {
        if !valid_date(&birth_date) {
            errors.push(field_error("birth_date", "birth-date-format", "a date YYYY-MM-DD"));
        } else if birth_date.as_str() > today {
            errors.push(field_error("birth_date", "birth-date-future", "the birth date is in the future"));
        } else if birth_date.as_str() < "1880-01-01" {
            errors.push(field_error("birth_date", "birth-date-format", "a birth date after 1880"));
        }
    }

    let typed_gender = d.gender.trim();
    if !typed_gender.is_empty() && !matches!(typed_gender, "male" | "female" | "other" | "unknown") {
        errors.push(field_error("gender", "gender-value", "one of male, female, other, unknown"));
    }
    let gender = match &resident {
        Some(r) => {
            if !typed_gender.is_empty() && typed_gender != r.gender() && matches!(typed_gender, "male" | "female") {
                errors.push(field_error(
                    "gender",
                    "gender-mismatch",
                    format!("differs from the sex in the resident ID ({})", r.gender()),
                ));
            }
            r.gender().to_string()
        }
        None if typed_gender.is_empty() && id.is_empty() => {
            errors.push(field_error("gender", "required", "needed when there is no resident ID"));
            String::new()
        }
        None => typed_gender.to_string(),
    };

    let phone = d.phone.trim();
    let phone = if phone.is_empty() {
        None
    } else {
        let digits = matching::normalize_phone(phone);
        let mobile = digits.len() == 11 && digits.starts_with('1') && (b'3'..=b'9').contains(&digits.as_bytes()[1]);
        let landline = digits.starts_with('0') && (10..=12).contains(&digits.len());
        let allowed = phone.chars().all(|c| c.is_ascii_digit() || " -+()".contains(c));
        if !allowed || !(mobile || landline) {
            errors.push(field_error(
                "phone",
                "phone-format",
                "a mobile number (11 digits, 1[3-9]…) or a landline with its area code (0…)",
            ));
        }
        Some(digits)
    };

    let address = d.address.trim();
    if address.chars().count() > 200 {
        errors.push(field_error("address", "address-length", "at most 200 characters"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (family, given) = crate::names::split_name(&name);
    let (pinyin_family, pinyin_given) = pinyin_name(&name);
    Ok(Checked {
        name,
        family,
        given,
        pinyin_family,
        pinyin_given,
        resident_id: resident.map(|r| r.as_str().to_string()),
        birth_date,
        gender,
        phone,
        address: (!address.is_empty()).then(|| address.to_string()),
    })
}

fn patient_type() -> Result<ResourceType, RegistryError> {
    ResourceType::parse("Patient").ok_or_else(|| RegistryError::Forbidden("Patient is not a supported type".into()))
}

/// The MRN prefix of a campus: the first letter of its last word (`campus-east` → E).
fn mrn_prefix(campus: &str) -> char {
    campus.rsplit(['-', '_']).next().and_then(|w| w.chars().next()).map_or('M', |c| c.to_ascii_uppercase())
}

/// The FHIR Patient of a checked draft registered with `mrn` (at its campus).
pub fn patient_resource(c: &Checked, mrn: &Mrn) -> Value {
    let campus = mrn.campus.as_str();
    let mut identifier = Vec::new();
    if let Some(id) = &c.resident_id {
        identifier.push(
            json!({"use": "official", "type": {"coding": [{"system": ID_TYPE, "code": "NNCHN"}], "text": "居民身份证"},
                               "system": RESIDENT_ID_SYSTEM, "value": id}),
        );
    }
    identifier.push(json!({"use": "usual", "type": {"coding": [{"system": ID_TYPE, "code": "MR"}], "text": "病案号"},
                           "system": mrn.system(), "value": mrn.number,
                           "assigner": {"reference": format!("Organization/{campus}")}}));
    let mut names = vec![json!({"use": "official", "text": c.name, "family": c.family, "given": [c.given],
                                "extension": [{"url": NAME_REPRESENTATION, "valueCode": "IDE"}]})];
    if c.name.chars().any(is_hanzi) {
        names.push(json!({"use": "official", "text": c.pinyin(), "family": c.pinyin_family, "given": [c.pinyin_given],
                          "extension": [{"url": NAME_REPRESENTATION, "valueCode": "ABC"}]}));
    }
    let mut p = json!({"resourceType": "Patient", "active": true, "identifier": identifier, "name": names,
                       "gender": c.gender, "birthDate": c.birth_date,
                       "managingOrganization": {"reference": format!("Organization/{campus}")}});
    if let Some(phone) = &c.phone {
        let kind = if phone.starts_with('1') { "mobile" } else { "home" };
        p["telecom"] = json!([{"system": "phone", "value": phone, "use": kind}]);
    }
    if let Some(a) = &c.address {
        p["address"] = json!([{"use": "home", "text": a, "country": "CN"}]);
    }
    p
}

/// A record of the index that may be the person being registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub pinyin: String,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    /// The last four digits of the phone (enough to ask the patient).
    pub phone_tail: Option<String>,
    pub mrns: Vec<Mrn>,
    pub active: bool,
    pub score: Score,
}

/// The fields of a stored Patient that matching compares.
/// Whole years between a `YYYY-MM-DD` birth date and today.
pub fn age(birth: &str, today: &str) -> Option<u32> {
    let y = |s: &str| s.get(..4)?.parse::<u32>().ok();
    let (by, ty) = (y(birth)?, y(today)?);
    let before_birthday = today.get(5..10)? < birth.get(5..10)?;
    ty.checked_sub(by)?.checked_sub(u32::from(before_birthday))
}

pub fn person_of(p: &Value) -> Person {
    let names = p["name"].as_array().cloned().unwrap_or_default();
    let ideographic = names
        .iter()
        .find(|n| n["extension"][0]["valueCode"] == "IDE")
        .or_else(|| names.first())
        .and_then(|n| n["text"].as_str().map(str::to_string).or_else(|| Some(name_text(n))))
        .unwrap_or_default();
    let ids = p["identifier"].as_array().cloned().unwrap_or_default();
    Person {
        resident_id: ids
            .iter()
            .find(|i| i["system"] == RESIDENT_ID_SYSTEM)
            .and_then(|i| i["value"].as_str())
            .map(str::to_string),
        name: ideographic,
        birth_date: p["birthDate"].as_str().map(str::to_string),
        gender: p["gender"].as_str().map(str::to_string),
        phone: p["telecom"]
            .as_array()
            .and_then(|t| t.iter().find(|x| x["system"] == "phone"))
            .and_then(|x| x["value"].as_str())
            .map(str::to_string),
    }
}

fn name_text(n: &Value) -> String {
    let family = n["family"].as_str().unwrap_or_default();
    let given: Vec<&str> =
        n["given"].as_array().map(|g| g.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    format!("{family}{}", given.join(""))
}

/// The pinyin name of a stored Patient (its `ABC` representation), or "".
pub fn pinyin_of(p: &Value) -> String {
    p["name"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["extension"][0]["valueCode"] == "ABC"))
        .and_then(|n| n["text"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The text of a Patient's first address (empty if none).
pub fn address_of(p: &Value) -> String {
    p["address"][0]["text"].as_str().unwrap_or_default().to_string()
}

/// `caller` with `patient`'s record open, when the record belongs to one of their
/// campuses: the campus that owns it, or one where it holds an MRN (the rule itself
/// lives with the caller, in security). The record-across-campuses rule.
pub fn record_open(caller: &Caller, patient: &str, owner: Option<&str>, mrns: &[Mrn]) -> Option<Caller> {
    let campuses: Vec<&str> = owner.into_iter().chain(mrns.iter().map(|m| m.campus.as_str())).collect();
    caller.open_record(patient, &campuses)
}

/// The name of a patient the caller's campus scope does not reach (a patient of
/// another campus who booked or wrote here), from the group's patient index as the
/// desk finds them: read group-wide, audited as the caller's read. `None` when it
/// cannot be read.
pub async fn name_in_index(fhir: &FhirService, caller: &Caller, patient: &str) -> Option<String> {
    let rt = ResourceType::parse("Patient")?;
    let stored = fhir.reader(&caller.group_wide(), rt).await.ok()?.read(patient).await.ok()?;
    let p: Value = serde_json::from_str(&stored.body).ok()?;
    Some(person_of(&p).name)
}

/// Every campus MRN a Patient carries.
pub fn mrns_of(p: &Value) -> Vec<Mrn> {
    p["identifier"].as_array().map(|ids| ids.iter().filter_map(Mrn::of_identifier).collect()).unwrap_or_default()
}

fn candidate_of(id: &str, p: &Value, score: Score) -> Candidate {
    let person = person_of(p);
    let (pinyin, mrns) = (pinyin_of(p), mrns_of(p));
    let tail = person.phone.as_deref().map(matching::normalize_phone).filter(|d| d.len() >= 4);
    Candidate {
        id: id.to_string(),
        name: person.name,
        pinyin,
        birth_date: person.birth_date,
        gender: person.gender,
        phone_tail: tail.map(|d| d[d.len() - 4..].to_string()),
        mrns,
        active: p["active"] != false,
        score,
    }
}

/// What a staff member typed to find a patient, as the finder reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// 18 characters in the resident-ID format (found through the blind index).
    ResidentId(String),
    /// A mobile or landline number (7 or more digits, with spaces, dashes or +86).
    Phone(String),
    /// Letters and digits mixed (an MRN such as `E1000123`): any identifier's value.
    Identifier(String),
    /// A name in characters.
    Name(String),
    /// Pinyin or a Latin name, whole or from a syllable on, or initials (`lxm`):
    /// searched by sound (the `phonetic` parameter), spaces and case ignored.
    Pinyin(String),
}

impl Query {
    pub fn parse(q: &str) -> Option<Query> {
        let q = q.trim();
        if q.is_empty() || q.chars().count() > 64 {
            return None;
        }
        let digits = q.chars().filter(char::is_ascii_digit).count();
        let phone_like = q.chars().all(|c| c.is_ascii_digit() || " -+()".contains(c));
        // 17 digits and a check character: a resident ID (a wrong check character
        // finds nothing rather than being read as a name).
        if q.len() == 18 && q.as_bytes()[..17].iter().all(u8::is_ascii_digit) {
            Some(Query::ResidentId(q.to_ascii_uppercase()))
        } else if phone_like && digits >= 7 {
            Some(Query::Phone(matching::normalize_phone(q)))
        } else if digits > 0 && q.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Some(Query::Identifier(q.to_string()))
        } else if q.chars().all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '\'') {
            Some(Query::Pinyin(q.chars().filter(char::is_ascii_alphabetic).collect::<String>().to_ascii_lowercase()))
        } else {
            Some(Query::Name(q.to_string()))
        }
    }

    fn params(&self) -> Vec<(String, String)> {
        match self {
            Query::ResidentId(id) => vec![("identifier".into(), format!("{RESIDENT_ID_SYSTEM}|{id}"))],
            Query::Phone(p) => vec![("phone".into(), p.clone())],
            Query::Identifier(v) => vec![("identifier".into(), v.clone())],
            Query::Name(n) => vec![("name".into(), n.clone())],
            Query::Pinyin(p) => vec![("phonetic".into(), p.clone())],
        }
    }
}

/// A patient the finder found: the index's facts, and whether the searcher may open
/// the record (it belongs to, or holds an MRN at, one of their campuses); a record
/// elsewhere is shown only to clinicians who may break the glass, to start it from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub candidate: Candidate,
    pub campus: Option<String>,
    pub openable: bool,
}

/// At most this many patients a search shows.
pub const FOUND_LIMIT: usize = 50;

/// The outcome of a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    Created {
        id: String,
        mrn: Mrn,
    },
    /// Records that may be the same person, best first; nothing was created.
    PossibleDuplicates(Vec<Candidate>),
    /// A record with the same resident ID exists; nothing was created.
    SameResidentId(Candidate),
}

/// Registration and matching over the group's patient index.
#[derive(Clone, Debug)]
pub struct Registry {
    fhir: FhirService,
}

impl Registry {
    pub fn new(fhir: FhirService) -> Registry {
        Registry { fhir }
    }

    pub(crate) fn fhir(&self) -> &FhirService {
        &self.fhir
    }

    /// Today in the hospital's time zone (a birth date may be today in Beijing while
    /// UTC is still yesterday).
    fn today(&self) -> String {
        crate::scheduling::local_date(self.fhir.now_ms())
    }

    /// Registers a patient of another campus at `campus` too (one of the caller's): a
    /// campus MRN is added to the one record, which makes the whole record readable to
    /// that campus's staff (see [`crate::record`]). Returns the MRN (the existing one
    /// if the patient already holds one there).
    pub async fn register_here(&self, caller: &Caller, patient: &str, campus: &CampusId) -> Result<Mrn, RegistryError> {
        let campus_id = campus;
        let campus = campus_id.as_str();
        if !caller.access().sees("Patient", Perm::Create, Some(campus)) {
            return Err(RegistryError::Forbidden(format!("registering patients at {campus} is not among your roles")));
        }
        // The registrar found the patient in the group-wide index; this write is
        // theirs, on this one record.
        let here = caller.group_wide().open_record(patient, &[campus]).ok_or_else(|| {
            RegistryError::Forbidden(format!("registering patients at {campus} is not among your roles"))
        })?;
        let stored = self.fhir.reader(&here, patient_type()?).await?.read(patient).await?;
        let mut p = crate::common::editable(&stored).map_err(|e| invalid("patient", "stored", e.to_string()))?;
        if let Some(mrn) = mrns_of(&p).into_iter().find(|m| &m.campus == campus_id) {
            return Ok(mrn);
        }
        if p["active"] == false {
            return Err(invalid(
                "patient",
                "inactive",
                "the record is inactive (merged into another): register that one",
            ));
        }
        let n = self.fhir.operations().next_counter(&format!("mrn:{campus}"), FIRST_MRN).await?;
        let mrn = Mrn { campus: campus_id.clone(), number: format!("{}{n:07}", mrn_prefix(campus)) };
        let identifier = json!({"use": "usual", "type": {"coding": [{"system": ID_TYPE, "code": "MR"}], "text": "病案号"},
                                "system": mrn.system(), "value": mrn.number,
                                "assigner": {"reference": format!("Organization/{campus}")}});
        match p["identifier"].as_array_mut() {
            Some(ids) => ids.push(identifier),
            None => p["identifier"] = json!([identifier]),
        }
        let bundle =
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [crate::common::put(p, &stored)]});
        self.fhir.process_bundle(&here, bundle, true).await?;
        Ok(mrn)
    }

    /// Registers a patient at `campus` (one of the caller's), unless the index holds
    /// the same resident ID, or (without `confirmed_new`) possible duplicates.
    pub async fn register(
        &self,
        caller: &Caller,
        campus_id: &CampusId,
        draft: &Draft,
        confirmed_new: bool,
    ) -> Result<Registration, RegistryError> {
        let campus = campus_id.as_str();
        if !caller.access().sees("Patient", Perm::Create, Some(campus)) {
            return Err(RegistryError::Forbidden(format!("registering patients at {campus} is not among your roles")));
        }
        let checked = check_draft(draft, &self.today()).map_err(RegistryError::Invalid)?;
        let candidates = self.candidates(&caller.group_wide(), &checked.person()).await?;
        if let Some(same) = candidates.iter().find(|c| c.score.reasons.contains(&Reason::SameResidentId)) {
            return Ok(Registration::SameResidentId(same.clone()));
        }
        let possible: Vec<Candidate> = candidates.into_iter().filter(|c| c.score.score >= POSSIBLE).collect();
        if !possible.is_empty() && !confirmed_new {
            return Ok(Registration::PossibleDuplicates(possible));
        }
        let n = self.fhir.operations().next_counter(&format!("mrn:{campus}"), FIRST_MRN).await?;
        let mrn = Mrn { campus: campus_id.clone(), number: format!("{}{n:07}", mrn_prefix(campus)) };
        // The record belongs to the campus it is registered at.
        let campus_caller = caller.at_campus(campus_id).ok_or_else(|| {
            RegistryError::Forbidden(format!("registering patients at {campus} is not among your roles"))
        })?;
        let written = self
            .fhir
            .create(&self.fhir.permit(&campus_caller, patient_type()?).await?, patient_resource(&checked, &mrn))
            .await?;
        Ok(Registration::Created { id: written.id, mrn })
    }

    /// Finds patients by name (characters or pinyin), MRN, phone or resident ID across
    /// the group's index; each search and every record it shows is audited as the
    /// caller's. Records the caller may not open are left out, unless the caller may
    /// break the glass (then they are marked, to start it from).
    pub async fn find(&self, caller: &Caller, query: &Query) -> Result<Vec<Found>, RegistryError> {
        let mut params = query.params();
        params.push(("_count".into(), FOUND_LIMIT.to_string()));
        let req = parse_search(patient_type()?, &params)
            .map_err(|issue| RegistryError::Invalid(vec![field_error("q", "search", issue.diagnostics.clone())]))?;
        let wide = caller.group_wide();
        let page = self.fhir.search(&self.fhir.permit(&wide, req.resource_type).await?, &req).await?;
        let may_break_glass = caller.can(lianyi_security::roles::Capability::BreakTheGlass);
        let mut out = Vec::new();
        for r in page.resources {
            let Ok(body) = serde_json::from_str::<Value>(&r.body) else { continue };
            let candidate = candidate_of(&r.id, &body, Score::default());
            let openable = record_open(caller, &r.id, r.campus.as_deref(), &candidate.mrns).is_some();
            if !openable && !may_break_glass {
                continue;
            }
            out.push(Found { candidate, campus: r.campus.clone(), openable });
        }
        out.sort_by(|a, b| b.openable.cmp(&a.openable).then_with(|| a.candidate.name.cmp(&b.candidate.name)));
        Ok(out)
    }

    /// Records of the index (as far as `caller` may search) that may be `person`,
    /// best first: found by the same resident ID, birth date, phone or name, then
    /// scored. Every record looked at is audited as read by the caller.
    pub async fn candidates(&self, caller: &Caller, person: &Person) -> Result<Vec<Candidate>, RegistryError> {
        Ok(self
            .scored(caller, person)
            .await?
            .into_iter()
            .map(|(id, body, score)| candidate_of(&id, &body, score))
            .collect())
    }

    /// `Patient/$match`: the records `caller` may see that may be the patient in
    /// `resource`, scored, best first, at most `count`; with `only_certain`, only
    /// those that are certainly the same person (the same resident ID).
    pub async fn match_patient(
        &self,
        caller: &Caller,
        resource: &Value,
        count: usize,
        only_certain: bool,
    ) -> Result<Vec<(Value, Score)>, RegistryError> {
        if resource["resourceType"] != "Patient" {
            return Err(RegistryError::Invalid(vec![field_error(
                "resource",
                "match-resource",
                "the parameter 'resource' must be a Patient",
            )]));
        }
        let person = person_of(resource);
        if person.name.is_empty() && person.resident_id.is_none() && person.birth_date.is_none() {
            return Err(RegistryError::Invalid(vec![field_error(
                "resource",
                "match-resource",
                "the Patient needs a name, a birthDate or a resident ID identifier to be matched",
            )]));
        }
        let mut found = self.scored(caller, &person).await?;
        found.retain(|(_, _, s)| if only_certain { s.score == 100 } else { s.score >= POSSIBLE });
        found.truncate(count);
        Ok(found.into_iter().map(|(_, body, score)| (body, score)).collect())
    }

    async fn scored(&self, caller: &Caller, person: &Person) -> Result<Vec<(String, Value, Score)>, RegistryError> {
        let mut searches: Vec<Vec<(String, String)>> = Vec::new();
        if let Some(id) = &person.resident_id {
            searches.push(vec![("identifier".into(), format!("{RESIDENT_ID_SYSTEM}|{id}"))]);
        }
        if let Some(b) = &person.birth_date {
            searches.push(vec![("birthdate".into(), b.clone())]);
        }
        if let Some(p) = person.phone.as_deref().filter(|p| !p.is_empty()) {
            searches.push(vec![("phone".into(), matching::normalize_phone(p))]);
        }
        if !person.name.is_empty() {
            searches.push(vec![("name".into(), person.name.clone())]);
            let (family, given) = pinyin_name(&person.name);
            if person.name.chars().any(is_hanzi) {
                searches.push(vec![("family".into(), family), ("given".into(), given)]);
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<(String, Value, Score)> = Vec::new();
        for mut params in searches {
            params.push(("_count".into(), PER_SEARCH.to_string()));
            let req = parse_search(patient_type()?, &params).map_err(|issue| {
                RegistryError::Invalid(vec![field_error("search", "search", issue.diagnostics.clone())])
            })?;
            let page = self.fhir.search(&self.fhir.permit(caller, req.resource_type).await?, &req).await?;
            for r in page.resources {
                if !seen.insert(r.id.clone()) {
                    continue;
                }
                let Ok(body) = serde_json::from_str::<Value>(&r.body) else { continue };
                let score = matching::score(person, &person_of(&body));
                if score.score > 0 {
                    out.push((r.id, body, score));
                }
            }
        }
        out.sort_by(|a, b| b.2.score.cmp(&a.2.score).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(name: &str, id: &str, birth: &str, gender: &str, phone: &str) -> Draft {
        Draft {
            name: name.into(),
            resident_id: id.into(),
            birth_date: birth.into(),
            gender: gender.into(),
            phone: phone.into(),
            address: String::new(),
        }
    }

    fn codes(r: Result<Checked, Vec<FieldError>>) -> Vec<(&'static str, &'static str)> {
        r.err().unwrap_or_default().into_iter().map(|e| (e.field, e.code)).collect()
    }

    const TODAY: &str = "2026-11-22";

    #[test]
    fn a_resident_id_gives_birth_date_and_sex() {
        let c = check_draft(&draft("欧阳 娜娜", "11010519491231002x", "", "", "138 0013 8000"), TODAY).unwrap();
        assert_eq!(c.resident_id.as_deref(), Some("11010519491231002X"));
        assert_eq!((c.birth_date.as_str(), c.gender.as_str()), ("1949-12-31", "female"));
        assert_eq!((c.name.as_str(), c.family.as_str(), c.given.as_str()), ("欧阳娜娜", "欧阳", "娜娜"));
        assert_eq!(c.pinyin(), "Ouyang Nana");
        assert_eq!(c.phone.as_deref(), Some("13800138000"));
        let mrn = Mrn { campus: CampusId::parse("campus-east").unwrap(), number: "E2000001".into() };
        let p = patient_resource(&c, &mrn);
        assert_eq!(p["identifier"][1]["system"], "urn:lianyi:sid:mrn:campus-east");
        assert_eq!(p["name"][1]["text"], "Ouyang Nana");
        assert!(lianyi_fhir::validate_resource(&p).is_ok(), "{:?}", lianyi_fhir::validate_resource(&p));
    }

    #[test]
    fn every_broken_rule_names_its_field() {
        assert_eq!(
            codes(check_draft(&draft("张三", "110105194912310021", "", "", ""), TODAY)),
            vec![("resident_id", "resident-id-checksum")]
        );
        assert_eq!(
            codes(check_draft(&draft("张三", "11010519491231002X", "1949-12-30", "male", ""), TODAY)),
            vec![("birth_date", "birth-date-mismatch"), ("gender", "gender-mismatch")]
        );
        assert_eq!(
            codes(check_draft(&draft("", "", "", "", "12345"), TODAY)),
            vec![("name", "required"), ("birth_date", "required"), ("gender", "required"), ("phone", "phone-format")]
        );
        assert_eq!(
            codes(check_draft(&draft("张三", "", "2027-01-01", "male", ""), TODAY)),
            vec![("birth_date", "birth-date-future")]
        );
        assert_eq!(
            codes(check_draft(&draft("张三", "", "1990-02-30", "female", ""), TODAY)),
            vec![("birth_date", "birth-date-format")]
        );
        assert_eq!(codes(check_draft(&draft("张3", "", "1990-02-03", "x", ""), TODAY)).len(), 2);
        assert!(check_draft(&draft("张三", "", "1990-02-03", "male", "010-6234 5678"), TODAY).is_ok());
    }

    #[test]
    fn mrn_prefixes_follow_the_campus() {
        assert_eq!(mrn_prefix("campus-east"), 'E');
        assert_eq!(mrn_prefix("campus-west"), 'W');
        assert_eq!(mrn_prefix("north"), 'N');
    }
}
