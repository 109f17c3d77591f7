//! The Prometheus text exposition format (version 0.0.4), so any exporter a hospital
//! already runs (node_exporter, the PostgreSQL and Windows exporters…) becomes a
//! source. A line that does not read is an error naming the line: an endpoint that
//! answers garbage is recorded as failing, not half-read.

/// One sample: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// `name` or `name{a="1",b="2"}`, the key a reading is stored under.
    pub fn key(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {detail}")]
pub struct PromError {
    pub line: usize,
    pub detail: String,
}

/// Whether `s` is a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses an exposition; `keep` chooses the metric names kept (all when empty).
pub fn parse(text: &str, keep: &[String]) -> Result<Vec<Sample>, PromError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |detail: &str| PromError { line: n + 1, detail: detail.into() };
        let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(err("not a metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(body).map_err(&err)?;
            labels = parsed;
            rest = after;
        }
        let mut fields = rest.split_whitespace();
        let v = fields.next().and_then(value).ok_or_else(|| err("the value is not a number"))?;
        if let Some(ts) = fields.next()
            && ts.parse::<i64>().is_err()
        {
            return Err(err("the timestamp is not an integer"));
        }
        if fields.next().is_some() {
            return Err(err("text after the timestamp"));
        }
        if keep.is_empty() || keep.iter().any(|k| k == name) {
            out.push(Sample { name: name.to_string(), labels, value: v });
        }
    }
    Ok(out)
}

type Labels = Vec<(String, String)>;

/// `a="1",b="x\"y"}` → the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("a label without a value")?;
        let name = s[..eq].trim();
        if !is_label_name(name) {
            return Err("not a label name");
        }
        s = s[eq + 1..].trim_start().strip_prefix('"').ok_or("a label value not in quotes")?;
        let mut v = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => v.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => v.push(c),
                    _ => return Err("a bad escape in a label value"),
                },
                Some((_, c)) => v.push(c),
            }
        };
        labels.push((name.to_string(), v));
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_exporter_output_reads() {
        let text = "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.42\n\
                    node_filesystem_avail_bytes{device=\"/dev/vda1\",fstype=\"ext4\",mountpoint=\"/\"} 2.1e+10\n\
                    http_requests_total{code=\"200\",path=\"/a \\\"b\\\"\"} 1027 1395066363000\nup +Inf\n";
        let s = parse(text, &[]).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], Sample { name: "node_load1".into(), labels: vec![], value: 0.42 });
        assert_eq!(s[1].labels[2], ("mountpoint".into(), "/".into()));
        assert_eq!(s[1].value, 2.1e10);
        assert_eq!(s[2].labels[1].1, "/a \"b\"");
        assert_eq!(s[0].key(), "node_load1");
        assert_eq!(s[1].key(), "node_filesystem_avail_bytes{device=\"/dev/vda1\",fstype=\"ext4\",mountpoint=\"/\"}");
        assert_eq!(parse(text, &["node_load1".into()]).unwrap().len(), 1);
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        assert_eq!(parse("ok 1\n<html>", &[]).unwrap_err().line, 2);
        assert_eq!(parse("a{b=\"1} 2", &[]).unwrap_err().detail, "an unterminated label value");
        assert_eq!(parse("a 1 2 3", &[]).unwrap_err().detail, "text after the timestamp");
        assert_eq!(parse("a one", &[]).unwrap_err().detail, "the value is not a number");
    }
}
