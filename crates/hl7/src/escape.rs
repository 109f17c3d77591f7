//! Escape sequences (HL7 v2.5 §2.7): the delimiters inside data, hexadecimal data and
//! formatting commands.

use crate::message::Separators;

/// Escapes the delimiters in `text` so it can stand as one sub-component. Line breaks
/// become `\.br\` (formatted text) and other control characters `\Xhh\`.
pub fn escape(text: &str, sep: &Separators) -> String {
    let mut out = String::with_capacity(text.len());
    let e = sep.escape;
    for c in text.chars() {
        let code = if c == sep.field {
            Some("F")
        } else if c == sep.component {
            Some("S")
        } else if c == sep.subcomponent {
            Some("T")
        } else if c == sep.repetition {
            Some("R")
        } else if c == e {
            Some("E")
        } else if Some(c) == sep.truncation {
            Some("P")
        } else {
            None
        };
        match code {
            Some(code) => {
                out.push(e);
                out.push_str(code);
                out.push(e);
            }
            None if c == '\n' => {
                out.push(e);
                out.push_str(".br");
                out.push(e);
            }
            None if c == '\r' => {}
            None if (c as u32) < 0x20 => {
                out.push(e);
                out.push_str(&format!("X{:02X}", c as u32));
                out.push(e);
            }
            None => out.push(c),
        }
    }
    out
}

/// Replaces escape sequences in one sub-component's raw text by what they stand for.
/// `\.br\` is a line break; highlighting (`\H\`, `\N\`), other formatting commands
/// and character-set switches are dropped; `\Xhh..\` becomes the bytes it names
/// (read as UTF-8, ASCII in practice); an unknown or unterminated sequence is kept
/// as written, so nothing a sender wrote disappears silently.
pub fn unescape(raw: &str, sep: &Separators) -> String {
    let e = sep.escape;
    if !raw.contains(e) {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(e) {
        out.push_str(&rest[..start]);
        let after = &rest[start + e.len_utf8()..];
        let Some(end) = after.find(e) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let seq = &after[..end];
        match seq {
            "F" => out.push(sep.field),
            "S" => out.push(sep.component),
            "T" => out.push(sep.subcomponent),
            "R" => out.push(sep.repetition),
            "E" => out.push(e),
            "P" if sep.truncation.is_some() => out.push(sep.truncation.unwrap_or('#')),
            ".br" => out.push('\n'),
            "H" | "N" => {}
            s if s.starts_with('.') => {}
            s if s.starts_with('C') || s.starts_with('M') => {}
            s if s.starts_with('X') && s.len() > 1 && s.len() % 2 == 1 => match hex(&s[1..]) {
                Some(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
                None => {
                    out.push(e);
                    out.push_str(seq);
                    out.push(e);
                }
            },
            _ => {
                out.push(e);
                out.push_str(seq);
                out.push(e);
            }
        }
        rest = &after[end + e.len_utf8()..];
    }
    out.push_str(rest);
    out
}

fn hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_sequence() {
        let sep = Separators::default();
        assert_eq!(unescape(r"a\F\b\S\c\T\d\R\e\E\f", &sep), r"a|b^c&d~e\f");
        assert_eq!(unescape(r"line1\.br\line2", &sep), "line1\nline2");
        assert_eq!(unescape(r"\H\bold\N\", &sep), "bold");
        assert_eq!(unescape(r"\X0D0A\", &sep), "\r\n");
        assert_eq!(unescape(r"\XE4BDA0\", &sep), "你");
        assert_eq!(unescape(r"\Zlocal\", &sep), r"\Zlocal\");
        assert_eq!(unescape(r"open\F", &sep), r"open\F");
        assert_eq!(escape(r"a|b^c&d~e\f", &sep), r"a\F\b\S\c\T\d\R\e\E\f");
        assert_eq!(escape("x\ny", &sep), r"x\.br\y");
        assert_eq!(unescape(&escape("K 6.8 ~ |^&\\ 钾", &sep), &sep), "K 6.8 ~ |^&\\ 钾");
    }

    #[test]
    fn other_delimiters_are_honoured() {
        let sep = Separators {
            field: '!',
            component: '@',
            repetition: '%',
            escape: '$',
            subcomponent: '*',
            truncation: None,
        };
        assert_eq!(unescape("a$F$b$S$c", &sep), "a!b@c");
        assert_eq!(escape("a!b|c", &sep), "a$F$b|c");
    }
}
