//! Messages, segments and the delimiters they declare in MSH-1 and MSH-2.

use crate::escape::{escape, unescape};

/// The delimiters of one message (MSH-1 and MSH-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Separators {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
    /// The truncation character, MSH-2's fifth (v2.7 and later).
    pub truncation: Option<char>,
}

impl Default for Separators {
    fn default() -> Self {
        Separators { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&', truncation: None }
    }
}

impl Separators {
    /// MSH-2 as written: component, repetition, escape, sub-component [, truncation].
    pub fn encoding_characters(&self) -> String {
        let mut s: String = [self.component, self.repetition, self.escape, self.subcomponent].iter().collect();
        if let Some(t) = self.truncation {
            s.push(t);
        }
        s
    }
}

/// Where something is in a message, for ERR-2 (all positions 1-based; 0 = not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub segment: String,
    /// Which occurrence of the segment (1 for the first).
    pub sequence: usize,
    pub field: usize,
    pub repetition: usize,
    pub component: usize,
    pub subcomponent: usize,
}

impl Location {
    pub fn field(segment: &str, sequence: usize, field: usize) -> Location {
        Location { segment: segment.into(), sequence, field, ..Default::default() }
    }

    pub fn component(segment: &str, sequence: usize, field: usize, component: usize) -> Location {
        Location { segment: segment.into(), sequence, field, repetition: 1, component, subcomponent: 0 }
    }
}

impl std::fmt::Display for Location {
    /// `PID[1]-3.1` style, for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.segment)?;
        if self.sequence > 1 {
            write!(f, "[{}]", self.sequence)?;
        }
        if self.field > 0 {
            write!(f, "-{}", self.field)?;
            if self.repetition > 1 {
                write!(f, "({})", self.repetition)?;
            }
            if self.component > 0 {
                write!(f, ".{}", self.component)?;
                if self.subcomponent > 0 {
                    write!(f, ".{}", self.subcomponent)?;
                }
            }
        }
        Ok(())
    }
}

/// Why text is not an HL7 v2 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message must start with an MSH segment (found '{0}')")]
    NotMsh(String),
    #[error("MSH-1 and MSH-2 must declare a field separator and 4 or 5 distinct encoding characters")]
    BadEncodingCharacters,
    #[error("segment {line}: '{id}' is not a segment name (rule: three upper-case letters or digits)")]
    BadSegmentId { line: usize, id: String },
    #[error("the bytes are not valid {0} text")]
    InvalidText(&'static str),
}

impl ParseError {
    /// Where the error is, for ERR-2.
    pub fn location(&self) -> Option<Location> {
        match self {
            ParseError::NotMsh(_) | ParseError::Empty => Some(Location::field("MSH", 1, 1)),
            ParseError::BadEncodingCharacters => Some(Location::field("MSH", 1, 2)),
            ParseError::InvalidText(_) => Some(Location::field("MSH", 1, 18)),
            ParseError::BadSegmentId { id, line } => {
                Some(Location { segment: id.chars().take(3).collect(), sequence: *line, ..Default::default() })
            }
        }
    }
}

/// One segment: its name and its fields' raw (escaped) text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub id: String,
    /// Field 1 onwards (for MSH: MSH-2 onwards; MSH-1 is the separator itself).
    fields: Vec<String>,
    sep: Separators,
}

impl Segment {
    pub fn new(id: &str, sep: Separators) -> Segment {
        let fields = if id == "MSH" { vec![sep.encoding_characters()] } else { Vec::new() };
        Segment { id: id.to_string(), fields, sep }
    }

    fn slot(&self, n: usize) -> Option<usize> {
        match (self.id.as_str(), n) {
            (_, 0) | ("MSH", 1) => None,
            ("MSH", n) => Some(n - 2),
            (_, n) => Some(n - 1),
        }
    }

    /// Field `n`'s raw text ("" when absent). MSH-1 is the field separator.
    pub fn raw(&self, n: usize) -> &str {
        if self.id == "MSH" && n == 1 {
            return "";
        }
        self.slot(n).and_then(|i| self.fields.get(i)).map_or("", String::as_str)
    }

    /// The number of the last field present.
    pub fn field_count(&self) -> usize {
        if self.id == "MSH" { self.fields.len() + 1 } else { self.fields.len() }
    }

    /// The raw repetitions of field `n` (none when the field is empty).
    pub fn repetitions(&self, n: usize) -> Vec<&str> {
        let raw = self.raw(n);
        if raw.is_empty() {
            return Vec::new();
        }
        if self.id == "MSH" && n == 2 {
            return vec![raw];
        }
        raw.split(self.sep.repetition).collect()
    }

    /// The unescaped text at field `n`, repetition `rep`, component `comp`,
    /// sub-component `sub` (all 1-based); "" when absent.
    pub fn value(&self, n: usize, rep: usize, comp: usize, sub: usize) -> String {
        let reps = self.repetitions(n);
        let Some(r) = reps.get(rep.saturating_sub(1)) else { return String::new() };
        let Some(c) = r.split(self.sep.component).nth(comp.saturating_sub(1)) else { return String::new() };
        let Some(s) = c.split(self.sep.subcomponent).nth(sub.saturating_sub(1)) else { return String::new() };
        unescape(s, &self.sep)
    }

    /// The first component of the first repetition of field `n`, unescaped.
    pub fn first(&self, n: usize) -> String {
        self.value(n, 1, 1, 1)
    }

    /// Component `comp` of the first repetition of field `n`, unescaped.
    pub fn component(&self, n: usize, comp: usize) -> String {
        self.value(n, 1, comp, 1)
    }

    /// Component `comp` of repetition `rep` of field `n`, unescaped.
    pub fn rep_component(&self, n: usize, rep: usize, comp: usize) -> String {
        self.value(n, rep, comp, 1)
    }

    /// Replaces field `n` with raw (already escaped) text.
    pub fn set_raw(&mut self, n: usize, raw: &str) -> &mut Segment {
        if let Some(i) = self.slot(n) {
            if self.fields.len() <= i {
                self.fields.resize(i + 1, String::new());
            }
            self.fields[i] = raw.to_string();
        }
        self
    }

    /// Sets one sub-component (all positions 1-based) to `text`, escaping it and
    /// keeping everything else in the field.
    pub fn set(&mut self, n: usize, rep: usize, comp: usize, sub: usize, text: &str) -> &mut Segment {
        let sep = self.sep;
        let mut reps: Vec<Vec<Vec<String>>> = self
            .raw(n)
            .split(sep.repetition)
            .map(|r| r.split(sep.component).map(|c| c.split(sep.subcomponent).map(str::to_string).collect()).collect())
            .collect();
        let (r, c, s) = (rep.max(1) - 1, comp.max(1) - 1, sub.max(1) - 1);
        if reps.len() <= r {
            reps.resize(r + 1, vec![vec![String::new()]]);
        }
        if reps[r].len() <= c {
            reps[r].resize(c + 1, vec![String::new()]);
        }
        if reps[r][c].len() <= s {
            reps[r][c].resize(s + 1, String::new());
        }
        reps[r][c][s] = escape(text, &sep);
        let raw = reps
            .iter()
            .map(|r| {
                r.iter()
                    .map(|c| c.join(&sep.subcomponent.to_string()))
                    .collect::<Vec<_>>()
                    .join(&sep.component.to_string())
            })
            .collect::<Vec<_>>()
            .join(&sep.repetition.to_string());
        self.set_raw(n, trim_empty_tail(&raw, &sep))
    }

    /// Sets field `n` (first repetition, first component) to `text`, escaped.
    pub fn set_text(&mut self, n: usize, text: &str) -> &mut Segment {
        self.set_raw(n, &escape(text, &self.sep))
    }

    fn encode_into(&self, out: &mut String) {
        out.push_str(&self.id);
        let sep = self.sep.field;
        if self.id == "MSH" {
            out.push(sep);
            out.push_str(self.fields.first().map_or("", String::as_str));
            for f in self.fields.iter().skip(1) {
                out.push(sep);
                out.push_str(f);
            }
        } else {
            for f in &self.fields {
                out.push(sep);
                out.push_str(f);
            }
        }
    }
}

/// HL7's null: a field, component or sub-component of exactly `""` carries "no value"
/// (on an update: delete the stored value), unlike an empty one ("not sent").
pub const NULL: &str = "\"\"";

impl Segment {
    /// Replaces every HL7 null (`""`) in this segment's fields with empty text, at any
    /// level; returns the numbers of the fields that were null as a whole (those
    /// whose stored value the sender asks to delete). MSH is left as it is.
    pub fn clear_nulls(&mut self) -> Vec<usize> {
        let mut whole = Vec::new();
        if self.id == "MSH" {
            return whole;
        }
        let sep = self.sep;
        for (i, f) in self.fields.iter_mut().enumerate() {
            if !f.contains(NULL) {
                continue;
            }
            if f == NULL {
                f.clear();
                whole.push(i + 1);
                continue;
            }
            let cleared: Vec<String> = f
                .split(sep.repetition)
                .map(|r| {
                    r.split(sep.component)
                        .map(|c| {
                            c.split(sep.subcomponent)
                                .map(|s| if s == NULL { "" } else { s })
                                .collect::<Vec<_>>()
                                .join(&sep.subcomponent.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(&sep.component.to_string())
                })
                .collect();
            *f = cleared.join(&sep.repetition.to_string());
        }
        whole
    }
}

/// Drops trailing empty components and repetitions that `set` had to pad with.
fn trim_empty_tail<'a>(raw: &'a str, sep: &Separators) -> &'a str {
    raw.trim_end_matches([sep.component, sep.subcomponent, sep.repetition])
}

/// A parsed message: its delimiters and segments in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub separators: Separators,
    pub segments: Vec<Segment>,
}

fn valid_segment_id(id: &str) -> bool {
    id.len() == 3
        && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && id.as_bytes()[0].is_ascii_uppercase()
}

impl Message {
    /// A message with an MSH segment holding only the delimiters.
    pub fn new(separators: Separators) -> Message {
        Message { separators, segments: vec![Segment::new("MSH", separators)] }
    }

    /// Parses decoded text. Segments may end with CR (the standard), LF or CR LF;
    /// empty lines are skipped.
    pub fn parse(text: &str) -> Result<Message, ParseError> {
        let text = text.trim_start_matches(['\u{feff}', '\r', '\n', ' ', '\t']);
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        if !text.starts_with("MSH") {
            return Err(ParseError::NotMsh(text.chars().take(3).collect()));
        }
        let mut chars = text.chars().skip(3);
        let field = chars.next().ok_or(ParseError::BadEncodingCharacters)?;
        let enc: Vec<char> = chars.take_while(|c| *c != field && *c != '\r' && *c != '\n').collect();
        if !(4..=5).contains(&enc.len()) {
            return Err(ParseError::BadEncodingCharacters);
        }
        let mut all = enc.clone();
        all.push(field);
        let distinct = all.iter().enumerate().all(|(i, c)| !all[..i].contains(c));
        if !distinct || all.iter().any(|c| c.is_alphanumeric() || c.is_whitespace()) {
            return Err(ParseError::BadEncodingCharacters);
        }
        let separators = Separators {
            field,
            component: enc[0],
            repetition: enc[1],
            escape: enc[2],
            subcomponent: enc[3],
            truncation: enc.get(4).copied(),
        };
        let mut segments = Vec::new();
        for (i, line) in text.split(['\r', '\n']).enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut parts = line.split(field);
            let id = parts.next().unwrap_or_default();
            if !valid_segment_id(id) {
                return Err(ParseError::BadSegmentId { line: i + 1, id: id.chars().take(20).collect() });
            }
            segments.push(Segment { id: id.to_string(), fields: parts.map(str::to_string).collect(), sep: separators });
        }
        Ok(Message { separators, segments })
    }

    /// The message as text, each segment ended by CR.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            s.encode_into(&mut out);
            out.push('\r');
        }
        out
    }

    /// A new, empty segment using this message's delimiters, appended at the end.
    pub fn push(&mut self, id: &str) -> &mut Segment {
        self.segments.push(Segment::new(id, self.separators));
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    pub fn msh(&self) -> Option<&Segment> {
        self.segments.first().filter(|s| s.id == "MSH")
    }

    pub fn msh_mut(&mut self) -> Option<&mut Segment> {
        self.segments.first_mut().filter(|s| s.id == "MSH")
    }

    /// The first segment named `id`.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// Every segment named `id`, in order.
    pub fn segments_named<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments.iter().filter(move |s| s.id == id)
    }

    fn msh_value(&self, n: usize, comp: usize) -> String {
        self.msh().map(|m| m.component(n, comp)).unwrap_or_default()
    }

    /// MSH-9.1, the message code (`ADT`, `ORU`).
    pub fn message_code(&self) -> String {
        self.msh_value(9, 1)
    }

    /// MSH-9.2, the trigger event (`A01`, `R01`).
    pub fn trigger(&self) -> String {
        self.msh_value(9, 2)
    }

    /// MSH-10, the sender's control id.
    pub fn control_id(&self) -> String {
        self.msh_value(10, 1)
    }

    /// MSH-11.1, the processing id (`P`, `T`, `D`).
    pub fn processing_id(&self) -> String {
        self.msh_value(11, 1)
    }

    /// MSH-12.1, the version (`2.5.1`).
    pub fn version(&self) -> String {
        self.msh_value(12, 1)
    }

    /// Whether any field outside MSH holds an HL7 null (`""`).
    pub fn has_nulls(&self) -> bool {
        self.segments.iter().skip(1).any(|s| s.fields.iter().any(|f| f.contains(NULL)))
    }

    /// Replaces every HL7 null outside MSH with empty text (see [`Segment::clear_nulls`]);
    /// returns where whole fields were null.
    pub fn clear_nulls(&mut self) -> Vec<Location> {
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut out = Vec::new();
        for s in &mut self.segments {
            let sequence = match seen.iter_mut().find(|(id, _)| *id == s.id) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((s.id.clone(), 1));
                    1
                }
            };
            for field in s.clear_nulls() {
                out.push(Location::field(&s.id, sequence, field));
            }
        }
        out
    }

    /// MSH-3.1 and MSH-4.1: who sent it (application, facility).
    pub fn sender(&self) -> (String, String) {
        (self.msh_value(3, 1), self.msh_value(4, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORU: &str = "MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261122083000||ORU^R01^ORU_R01|MSG0001|P|2.5.1||||||UNICODE UTF-8\r\
PID|1||E1234^^^EAST^MR~990101199001010019^^^CHN^NNCHN||张^三||19900101|M\r\
OBR|1|ORD1|FIL1|2823-3^Potassium^LN\r\
OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||6.8|mmol/L^mmol/L^UCUM|3.5-5.3|HH|||F\r\
NTE|1||critical \\T\\ called\\.br\\second line\r\
ZLY|custom|kept\r";

    #[test]
    fn hl7_nulls_become_empty_and_whole_null_fields_are_named() {
        let text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5\rPID|1||E1^^^EAST^MR||张^三|\"\"|\"\"|M||||^\"\"^X\r";
        let mut m = Message::parse(text).unwrap();
        assert!(m.has_nulls());
        let nulls = m.clear_nulls();
        assert_eq!(nulls, vec![Location::field("PID", 1, 6), Location::field("PID", 1, 7)]);
        let pid = m.segment("PID").unwrap();
        assert_eq!(pid.first(7), "");
        assert_eq!(pid.first(8), "M");
        assert_eq!((pid.component(12, 2), pid.component(12, 3)), (String::new(), "X".to_string()));
        assert!(!m.has_nulls());
    }

    #[test]
    fn reads_fields_repetitions_components() {
        let m = Message::parse(ORU).unwrap();
        assert_eq!(m.segments.len(), 6);
        assert_eq!((m.message_code().as_str(), m.trigger().as_str()), ("ORU", "R01"));
        assert_eq!(m.control_id(), "MSG0001");
        assert_eq!(m.version(), "2.5.1");
        let pid = m.segment("PID").unwrap();
        assert_eq!(pid.repetitions(3).len(), 2);
        assert_eq!(pid.rep_component(3, 2, 1), "990101199001010019");
        assert_eq!(pid.component(5, 1), "张");
        let obx = m.segment("OBX").unwrap();
        assert_eq!(obx.first(5), "6.8");
        assert_eq!(obx.component(6, 1), "mmol/L");
        assert_eq!(obx.first(8), "HH");
        assert_eq!(m.segment("NTE").unwrap().first(3), "critical & called\nsecond line");
        assert_eq!(m.segment("ZLY").unwrap().first(2), "kept");
        assert_eq!(m.msh().unwrap().raw(2), "^~\\&");
        assert_eq!(m.msh().unwrap().first(18), "UNICODE UTF-8");
    }

    #[test]
    fn encode_of_parse_is_identity() {
        assert_eq!(Message::parse(ORU).unwrap().encode(), ORU);
        let lf = ORU.replace('\r', "\n");
        assert_eq!(Message::parse(&lf).unwrap().encode(), ORU, "LF-separated files read the same");
    }

    #[test]
    fn other_delimiters_and_truncation_character() {
        let text = "MSH!@%$*#!A!B\rPID!1!!X@Y%Z$F$!\r";
        let m = Message::parse(text).unwrap();
        assert_eq!(m.separators.truncation, Some('#'));
        let pid = m.segment("PID").unwrap();
        assert_eq!(pid.rep_component(3, 1, 2), "Y");
        assert_eq!(pid.rep_component(3, 2, 1), "Z!");
        assert_eq!(m.encode(), text);
    }

    #[test]
    fn builds_with_escaping() {
        let mut m = Message::new(Separators::default());
        m.msh_mut().unwrap().set_text(3, "LIANYI").set(9, 1, 1, 1, "ACK").set(9, 1, 2, 1, "R01");
        m.push("NTE").set(3, 1, 1, 1, "a|b^c").set(3, 2, 1, 1, "second");
        assert_eq!(m.encode(), "MSH|^~\\&|LIANYI||||||ACK^R01\rNTE|||a\\F\\b\\S\\c~second\r");
        let back = Message::parse(&m.encode()).unwrap();
        assert_eq!(back.segment("NTE").unwrap().first(3), "a|b^c");
    }

    #[test]
    fn errors_name_the_place() {
        assert_eq!(Message::parse(""), Err(ParseError::Empty));
        assert_eq!(Message::parse("PID|1"), Err(ParseError::NotMsh("PID".into())));
        assert_eq!(Message::parse("MSH|^~|x"), Err(ParseError::BadEncodingCharacters));
        assert_eq!(Message::parse("MSH|^^\\&|x"), Err(ParseError::BadEncodingCharacters));
        let e = Message::parse("MSH|^~\\&|A\rpid|1\r").unwrap_err();
        assert_eq!(e, ParseError::BadSegmentId { line: 2, id: "pid".into() });
        assert_eq!(e.location().unwrap().sequence, 2);
    }
}
