//! The rules of beds and stays, without storage: a bed's state and the steps between
//! them, how a state is written in a bed Location's `operationalStatus`, the nursing
//! levels (护理级别), and the days a stay counts.

use serde_json::{Value, json};

/// HL7 v2 table 0116 (bed status), the binding of `Location.operationalStatus`.
pub const BED_STATUS: &str = "http://terminology.hl7.org/CodeSystem/v2-0116";
/// Lianyi's bed states outside table 0116 (a bed held for an admitted patient on the
/// way to the ward).
pub const LIANYI_BED_STATUS: &str = "urn:lianyi:bed-status";
/// The extension carrying a stay's nursing level.
pub const NURSING_LEVEL_URL: &str = "urn:lianyi:nursing-level";
/// The identifier system of a campus's stay numbers (住院号).
pub fn stay_system(campus: &str) -> String {
    format!("urn:lianyi:sid:inpatient:{campus}")
}
/// SNOMED CT "Hospital admission": the code of an admission order (住院证).
pub const ADMISSION_CODE: &str = "32485007";
/// SNOMED CT "Patient transfer": the code of a transfer order (转科、转院区).
pub const TRANSFER_CODE: &str = "107724000";
pub const SNOMED: &str = "http://snomed.info/sct";

const DAY_MS: i64 = 86_400_000;
/// Beijing time, UTC+8 all year (China keeps no daylight saving time).
const OFFSET_MS: i64 = 8 * 3_600_000;

/// A bed's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BedState {
    Free,
    /// Held for an admitted patient on the way to the ward.
    Reserved,
    Occupied,
    /// Vacated, being cleaned (终末消毒) before the next patient.
    Cleaning,
    /// Out of use.
    Closed,
}

impl BedState {
    pub const ALL: [BedState; 5] =
        [BedState::Free, BedState::Reserved, BedState::Occupied, BedState::Cleaning, BedState::Closed];

    pub fn code(self) -> &'static str {
        match self {
            BedState::Free => "free",
            BedState::Reserved => "reserved",
            BedState::Occupied => "occupied",
            BedState::Cleaning => "cleaning",
            BedState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<BedState> {
        BedState::ALL.into_iter().find(|b| b.code() == s)
    }

    /// The `operationalStatus` Coding of the state.
    pub fn coding(self) -> Value {
        match self {
            BedState::Free => json!({"system": BED_STATUS, "code": "U", "display": "Unoccupied"}),
            BedState::Occupied => json!({"system": BED_STATUS, "code": "O", "display": "Occupied"}),
            BedState::Cleaning => json!({"system": BED_STATUS, "code": "H", "display": "Housekeeping"}),
            BedState::Closed => json!({"system": BED_STATUS, "code": "C", "display": "Closed"}),
            BedState::Reserved => json!({"system": LIANYI_BED_STATUS, "code": "reserved", "display": "Reserved"}),
        }
    }

    /// The state of a bed Location (a bed without `operationalStatus` is free; one
    /// whose `status` is not active is closed).
    pub fn of(bed: &Value) -> BedState {
        if bed["status"].as_str().is_some_and(|s| s != "active") {
            return BedState::Closed;
        }
        let c = &bed["operationalStatus"];
        match (c["system"].as_str(), c["code"].as_str()) {
            (Some(BED_STATUS), Some("O")) => BedState::Occupied,
            (Some(BED_STATUS), Some("H" | "K")) => BedState::Cleaning,
            (Some(BED_STATUS), Some("C" | "I")) => BedState::Closed,
            (Some(LIANYI_BED_STATUS), Some("reserved")) => BedState::Reserved,
            _ => BedState::Free,
        }
    }
}

/// What may be done to a bed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BedStep {
    /// The admission office (or a transfer) holds it for a patient.
    Reserve,
    /// A held bed given back (the admission cancelled, another bed chosen).
    Release,
    /// The patient arrives on it.
    Occupy,
    /// The patient leaves it (discharge, transfer): to cleaning.
    Vacate,
    /// Cleaned: free again.
    Cleaned,
    Close,
    Reopen,
}

/// The state `step` leads to from `from`, or `None` where it is not allowed (an
/// occupied bed is never reserved or given to a second patient).
pub fn next(from: BedState, step: BedStep) -> Option<BedState> {
    use BedState::*;
    match (from, step) {
        (Free, BedStep::Reserve) => Some(Reserved),
        (Reserved, BedStep::Release) => Some(Free),
        (Free | Reserved, BedStep::Occupy) => Some(Occupied),
        (Occupied, BedStep::Vacate) => Some(Cleaning),
        (Cleaning, BedStep::Cleaned) => Some(Free),
        (Free | Cleaning, BedStep::Close) => Some(Closed),
        (Closed, BedStep::Reopen) => Some(Free),
        _ => None,
    }
}

/// The nursing level of a stay (护理级别), ordered by the doctor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NursingLevel {
    /// 特级护理: continuous bedside care.
    Special,
    /// 一级护理: checked every hour.
    First,
    /// 二级护理: checked every two hours.
    Second,
    /// 三级护理: checked every three hours.
    Third,
}

impl NursingLevel {
    pub const ALL: [NursingLevel; 4] =
        [NursingLevel::Special, NursingLevel::First, NursingLevel::Second, NursingLevel::Third];

    pub fn code(self) -> &'static str {
        match self {
            NursingLevel::Special => "special",
            NursingLevel::First => "1",
            NursingLevel::Second => "2",
            NursingLevel::Third => "3",
        }
    }

    pub fn parse(s: &str) -> Option<NursingLevel> {
        NursingLevel::ALL.into_iter().find(|n| n.code() == s)
    }

    /// The level written on a stay's Encounter.
    pub fn of(stay: &Value) -> Option<NursingLevel> {
        stay["extension"]
            .as_array()?
            .iter()
            .find(|x| x["url"] == NURSING_LEVEL_URL)
            .and_then(|x| x["valueCode"].as_str())
            .and_then(NursingLevel::parse)
    }

    pub fn extension(self) -> Value {
        json!({"url": NURSING_LEVEL_URL, "valueCode": self.code()})
    }
}

/// The day of a stay `now` falls on, counted as hospitals count it: the day of
/// admission is day 1, each Beijing midnight starts the next (so a patient admitted
/// at 23:00 is on day 2 an hour later). Instants are epoch milliseconds; Beijing is
/// UTC+8 all year, with no daylight saving time, so every day is 86,400,000 ms.
pub fn day_of_stay(admitted_ms: i64, now_ms: i64) -> i64 {
    let day = |ms: i64| (ms + OFFSET_MS).div_euclid(DAY_MS);
    (day(now_ms) - day(admitted_ms)).max(0) + 1
}

/// A stay's current entry of `physical_type` (`wa` ward, `bd` bed): its Location id
/// and the entry's status (`planned`/`reserved` on the way, `active` there).
pub fn current(stay: &Value, physical_type: &str) -> Option<(String, String)> {
    stay["location"].as_array()?.iter().find_map(|l| {
        let status = l["status"].as_str().unwrap_or("active");
        if status == "completed" || l["physicalType"]["coding"][0]["code"] != physical_type {
            return None;
        }
        let id = l["location"]["reference"].as_str()?.strip_prefix("Location/")?;
        Some((id.to_string(), status.to_string()))
    })
}

/// Whether a stay is on its way to its bed (admitted or transferred, not yet received
/// on the ward).
pub fn arriving(stay: &Value) -> bool {
    current(stay, "bd").is_some_and(|(_, status)| status == "reserved")
}

/// A stay's `location` entry: a ward or bed, its status.
pub fn location_entry(id: &str, display: &str, physical_type: &str, status: &str) -> Value {
    json!({"location": {"reference": format!("Location/{id}"), "display": display},
           "status": status,
           "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": physical_type}]}})
}

/// The current entries of a stay's `location`: those not completed (the ward and bed
/// it is on or on its way to).
pub fn current_locations(stay: &Value) -> Vec<&str> {
    stay["location"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter(|l| l["status"].as_str() != Some("completed"))
                .filter_map(|l| l["location"]["reference"].as_str())
                .filter_map(|r| r.strip_prefix("Location/"))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bed_goes_only_where_its_state_allows() {
        use BedState::*;
        assert_eq!(next(Free, BedStep::Reserve), Some(Reserved));
        assert_eq!(next(Reserved, BedStep::Occupy), Some(Occupied));
        assert_eq!(next(Free, BedStep::Occupy), Some(Occupied), "a patient walked straight to a free bed");
        assert_eq!(next(Occupied, BedStep::Reserve), None, "an occupied bed is not reserved again");
        assert_eq!(next(Reserved, BedStep::Reserve), None, "a held bed is not held twice");
        assert_eq!(next(Occupied, BedStep::Occupy), None, "never two patients in one bed");
        assert_eq!(next(Occupied, BedStep::Vacate), Some(Cleaning));
        assert_eq!(next(Cleaning, BedStep::Reserve), None, "cleaned first");
        assert_eq!(next(Cleaning, BedStep::Cleaned), Some(Free));
        assert_eq!(next(Occupied, BedStep::Close), None, "a bed with a patient is not closed");
        assert_eq!(next(Closed, BedStep::Reopen), Some(Free));
    }

    #[test]
    fn each_state_is_written_and_read_back_through_operational_status() {
        for s in BedState::ALL {
            let bed = json!({"resourceType": "Location", "status": "active", "operationalStatus": s.coding()});
            assert_eq!(BedState::of(&bed), s, "{s:?}");
            assert_eq!(BedState::parse(s.code()), Some(s));
        }
        assert_eq!(BedState::of(&json!({"status": "active"})), BedState::Free, "no status: free");
        assert_eq!(BedState::of(&json!({"status": "inactive"})), BedState::Closed);
        // A contaminated bed (K) is being cleaned; an isolated one (I) takes no one.
        let k = json!({"status": "active", "operationalStatus": {"system": BED_STATUS, "code": "K"}});
        assert_eq!(BedState::of(&k), BedState::Cleaning);
        for n in NursingLevel::ALL {
            let stay = json!({"extension": [n.extension()]});
            assert_eq!(NursingLevel::of(&stay), Some(n));
        }
    }

    #[test]
    fn the_day_of_a_stay_turns_at_beijing_midnight() {
        // 2026-12-07 23:00 Beijing = 15:00 UTC.
        let admitted = 1_796_655_600_000;
        assert_eq!(day_of_stay(admitted, admitted), 1);
        assert_eq!(day_of_stay(admitted, admitted + 59 * 60_000), 1, "23:59 Beijing, the same day");
        assert_eq!(day_of_stay(admitted, admitted + 61 * 60_000), 2, "00:01 Beijing, the next day");
        assert_eq!(day_of_stay(admitted, admitted + 10 * DAY_MS), 11);
        assert_eq!(day_of_stay(admitted, admitted - 5), 1, "a clock behind the admission still counts day 1");
    }

    #[test]
    fn only_locations_not_left_are_current() {
        let stay = json!({"location": [
            {"location": {"reference": "Location/ward-a"}, "status": "completed"},
            {"location": {"reference": "Location/bed-a-3"}, "status": "completed"},
            {"location": {"reference": "Location/ward-b"}, "status": "active"},
            {"location": {"reference": "Location/bed-b-1"}, "status": "reserved"}]});
        assert_eq!(current_locations(&stay), vec!["ward-b", "bed-b-1"]);
        let stay = json!({"location": [
            location_entry("ward-a", "A", "wa", "completed"),
            location_entry("bed-a-3", "3", "bd", "completed"),
            location_entry("ward-b", "B", "wa", "planned"),
            location_entry("bed-b-1", "1", "bd", "reserved")]});
        assert_eq!(current(&stay, "bd"), Some(("bed-b-1".into(), "reserved".into())));
        assert_eq!(current(&stay, "wa"), Some(("ward-b".into(), "planned".into())));
        assert!(arriving(&stay));
    }
}
