//! CSV as RFC 4180 writes it (and spreadsheets save it): fields separated by commas,
//! quoted when they hold a comma, a quote or a line break, quotes doubled inside; a
//! UTF-8 byte-order mark at the start is skipped.

/// The rows of `text`; an unterminated quote is an error naming its row (1 is the
/// header).
pub fn parse(text: &str) -> Result<Vec<Vec<String>>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut started_at = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                started_at = rows.len();
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err((started_at, "a quoted field is not closed".into()));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// One CSV line of `fields`, ending in CRLF.
pub fn line(fields: &[String]) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::{line, parse};

    #[test]
    fn quoted_fields_commas_and_line_breaks_round_trip() {
        let fields = vec!["a,b".to_string(), "say \"hi\"".to_string(), "two\nlines".to_string(), "打印机".to_string()];
        let text = format!("\u{feff}{}{}", line(&["h1", "h2", "h3", "h4"].map(String::from)), line(&fields));
        let rows = parse(&text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], fields);
    }

    #[test]
    fn an_unclosed_quote_names_its_row() {
        assert_eq!(parse("a,b\n1,\"open\n2,3\n").unwrap_err().0, 1);
    }
}
