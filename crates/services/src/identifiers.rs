//! Identifiers of people in a Chinese hospital: the 18-digit resident ID number
//! (GB 11643-1999, ISO 7064 MOD 11-2 check character) and campus MRNs.

use std::fmt;

/// Identifier systems used by Lianyi. They are URNs in Lianyi's own namespace so no
/// one mistakes demo data for a registry's.
pub const RESIDENT_ID_SYSTEM: &str = "urn:lianyi:sid:resident-id";
pub const STAFF_ID_SYSTEM: &str = "urn:lianyi:sid:staff-no";

/// Lianyi's placer order numbers (requests it sends; a lab echoes them in OBR-2).
pub const PLACER_SYSTEM: &str = "urn:lianyi:sid:placer";
/// Staff user names, in references to a user (requesters, task owners).
pub const USER_SYSTEM: &str = "urn:lianyi:sid:user";
/// What every campus MRN system starts with.
pub const MRN_SYSTEM_PREFIX: &str = "urn:lianyi:sid:mrn:";

/// The MRN system of one campus.
/// Whether a mail address is plausible: a user part, one `@`, a dotted host, no
/// spaces, at most 254 characters (what a form can check without sending).
pub fn plausible_email(s: &str) -> bool {
    s.len() <= 254
        && !s.contains(char::is_whitespace)
        && s.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.contains('@'))
}

pub fn mrn_system(campus: &str) -> String {
    format!("{MRN_SYSTEM_PREFIX}{campus}")
}

/// The campus of an MRN system (`None` for any other system).
pub fn mrn_campus(system: &str) -> Option<&str> {
    system.strip_prefix(MRN_SYSTEM_PREFIX)
}

/// A medical record number (病案号): the number a campus gave a patient. One person
/// holds one per campus registered at, all on one record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mrn {
    pub campus: lianyi_security::CampusId,
    pub number: String,
}

impl Mrn {
    /// The identifier system of the issuing campus.
    pub fn system(&self) -> String {
        mrn_system(self.campus.as_str())
    }

    /// The MRN of a FHIR identifier, if it is one (a campus MRN system).
    pub fn of_identifier(identifier: &serde_json::Value) -> Option<Mrn> {
        let campus = mrn_campus(identifier["system"].as_str()?)?;
        let number = identifier["value"].as_str()?;
        Some(Mrn { campus: lianyi_security::CampusId::parse(campus).ok()?, number: number.to_string() })
    }
}

impl fmt::Display for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// A resident ID number whose check character and birth date are valid.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResidentId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResidentIdError {
    #[error("must be 17 digits followed by a digit or X (18 characters)")]
    Format,
    #[error("the check character is wrong (rule: ISO 7064 MOD 11-2)")]
    Checksum,
    #[error("characters 7-14 are not a valid birth date YYYYMMDD")]
    BirthDate,
}

/// The check character for the first 17 digits.
pub fn check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    Some(CHECK[(sum % 11) as usize])
}

impl ResidentId {
    pub fn parse(s: &str) -> Result<Self, ResidentIdError> {
        let s = s.trim().to_ascii_uppercase();
        if s.len() != 18 || !s.is_ascii() || !s[..17].bytes().all(|b| b.is_ascii_digit()) {
            return Err(ResidentIdError::Format);
        }
        let last = s.as_bytes()[17];
        if !(last.is_ascii_digit() || last == b'X') {
            return Err(ResidentIdError::Format);
        }
        if check_char(&s[..17]) != Some(last as char) {
            return Err(ResidentIdError::Checksum);
        }
        let birth = format!("{}-{}-{}", &s[6..10], &s[10..12], &s[12..14]);
        if lianyi_fhir::datetime::parse_range(&birth).is_none() {
            return Err(ResidentIdError::BirthDate);
        }
        Ok(ResidentId(s))
    }

    /// Builds a valid number from region, birth date `YYYYMMDD` and a sequence whose
    /// parity encodes sex (odd: male).
    pub fn build(region: u32, birth_yyyymmdd: &str, seq: u32) -> Result<Self, ResidentIdError> {
        let first17 = format!("{:06}{birth_yyyymmdd}{:03}", region % 1_000_000, seq % 1000);
        let c = check_char(&first17).ok_or(ResidentIdError::Format)?;
        ResidentId::parse(&format!("{first17}{c}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Birth date as FHIR `YYYY-MM-DD`.
    pub fn birth_date(&self) -> String {
        format!("{}-{}-{}", &self.0[6..10], &self.0[10..12], &self.0[12..14])
    }

    /// FHIR administrative gender from the sequence digit's parity.
    pub fn gender(&self) -> &'static str {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 { "male" } else { "female" }
    }
}

impl fmt::Debug for ResidentId {
    /// Masked: identifiers never reach logs in full.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({}…{})", &self.0[..3], &self.0[16..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_example_validates() {
        // The worked example of GB 11643-1999.
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.birth_date(), "1949-12-31");
        assert_eq!(id.gender(), "female");
    }

    #[test]
    fn errors_name_the_rule() {
        assert_eq!(ResidentId::parse("110105194912310021"), Err(ResidentIdError::Checksum));
        assert_eq!(ResidentId::parse("1101051949123100"), Err(ResidentIdError::Format));
        assert_eq!(ResidentId::parse("11010519491331002X").unwrap_err(), ResidentIdError::Checksum);
        let bad_date = format!("11010519490230001{}", check_char("11010519490230001").unwrap());
        assert_eq!(ResidentId::parse(&bad_date), Err(ResidentIdError::BirthDate));
    }

    #[test]
    fn build_round_trips() {
        let id = ResidentId::build(990101, "19800229", 123).unwrap();
        assert_eq!(id.gender(), "male");
        assert_eq!(id.birth_date(), "1980-02-29");
        assert!(!format!("{id:?}").contains("19800229"));
    }
}
