//! CSV as RFC 4180 writes it (and spreadsheets save it): fields separated by commas,
//! quoted when they hold a comma, a quote or a line break, quotes doubled inside; a
//! UTF-8 byte-order mark at the start is skipped.

/// The rows of `text`; an unterminated quote, or text after a closing quote, is an
/// error naming its row (0 is the header).
pub fn parse(text: &str) -> Result<Vec<Vec<String>>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    // The field was quoted (and closed): only a separator or a line end may follow.
    let mut closed = false;
    let mut started_at = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => {
                    quoted = false;
                    closed = true;
                }
                _ => field.push(c),
            }
            continue;
        }
        if closed && !matches!(c, ',' | '\r' | '\n') {
            return Err((rows.len(), "text after a closing quote (a quote inside a field is written twice)".into()));
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                started_at = rows.len();
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                closed = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                closed = false;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err((started_at, "a quoted field is not closed".into()));
    }
    if !field.is_empty() || !row.is_empty() || closed {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// One CSV line of an export for spreadsheets: a cell that starts like a formula is
/// quoted with `'` so the spreadsheet shows it instead of running it.
pub fn export_line(mut fields: Vec<String>) -> String {
    for cell in fields.iter_mut().filter(|c| c.starts_with(['=', '+', '-', '@'])) {
        cell.insert(0, '\'');
    }
    line(&fields)
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
    fn an_unclosed_quote_or_text_after_a_closing_quote_names_its_row() {
        assert_eq!(parse("a,b\n1,\"open\n2,3\n").unwrap_err().0, 1);
        assert_eq!(parse("a,b\n1,2\n\"x\"y,3\n").unwrap_err().0, 2);
        assert_eq!(parse("a\n\"\"").unwrap(), vec![vec!["a".to_string()], vec![String::new()]]);
        assert_eq!(parse("a\rb\r").unwrap().len(), 2, "CR line ends");
    }
}
