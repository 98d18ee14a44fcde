//! Prometheus text read back into numbers: what the shutdown summary, `preempt status`, the
//! bench and the tests read, from our own recorder or from a running guard's `/metrics`.

use thiserror::Error;

/// One line of the exposition: a name, its labels in order, a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether every `(key, value)` of `filter` is among this sample's labels.
    fn matches(&self, filter: &[(&str, &str)]) -> bool {
        filter.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum SnapshotError {
    #[error("metrics line {line}: {reason}: `{text}`")]
    Line { line: usize, reason: &'static str, text: String },
}

/// Every sample of one rendering.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub samples: Vec<Sample>,
}

impl Snapshot {
    /// Parses the Prometheus text format (0.0.4): comments and blank lines skipped, a trailing
    /// timestamp ignored. The first malformed line is the error, with its number.
    pub fn parse(text: &str) -> Result<Self, SnapshotError> {
        let mut samples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason| SnapshotError::Line { line: i + 1, reason, text: line.to_string() };
            samples.push(parse_line(line).map_err(bad)?);
        }
        Ok(Self { samples })
    }

    /// The samples named `name` whose labels include `filter`.
    pub fn all<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name && s.matches(filter))
    }

    /// The first sample named `name` whose labels include `filter`.
    pub fn value(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        self.all(name, filter).next().map(|s| s.value)
    }

    /// The sum over the samples named `name` whose labels include `filter` (0 if none).
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.all(name, filter).map(|s| s.value).sum()
    }

    /// As `sum`, as a count (counters are whole numbers).
    pub fn count(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        self.sum(name, filter).max(0.0) as u64
    }

    /// The distinct values of label `key` among the samples named `name`, in first-seen order.
    pub fn label_values(&self, name: &str, key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.all(name, &[]) {
            if let Some(v) = s.label(key)
                && !out.iter().any(|o| o == v)
            {
                out.push(v.to_string());
            }
        }
        out
    }

    /// The `q` quantile (0..1) of histogram `name` (`name_bucket` samples) among the samples
    /// matching `filter`, interpolated inside its bucket as Prometheus's `histogram_quantile`.
    pub fn quantile(&self, name: &str, filter: &[(&str, &str)], q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .all(&bucket, filter)
            .filter_map(|s| Some((parse_value(s.label("le")?).ok()?, s.value)))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for (le, count) in buckets {
            if count >= rank {
                if le.is_infinite() {
                    return Some(lower);
                }
                let width = count - below;
                let into = if width > 0.0 { (rank - below) / width } else { 1.0 };
                return Some(lower + (le - lower) * into);
            }
            (lower, below) = (le, count);
        }
        Some(lower)
    }
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line.find(['{', ' ', '\t']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err("not a metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    Ok(Sample { name: name.to_string(), labels, value: parse_value(value)? })
}

/// `key="value",...}` → the pairs (escapes `\\`, `\"`, `\n` undone) and what follows the `}`.
/// A sample's labels, in order.
type Labels = Vec<(String, String)>;

fn parse_labels(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(tail) = s.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let Some(eq) = s.find('=') else {
            return Err(if s.contains('}') { "label without `=`" } else { "labels not closed" });
        };
        let key = s[..eq].trim();
        if key.is_empty() {
            return Err("empty label name");
        }
        let quoted = s[eq + 1..].trim_start().strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("label value not closed"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("label value not closed"),
            }
        };
        labels.push((key.to_string(), value));
        s = &quoted[end + 1..];
    }
}

fn parse_value(v: &str) -> Result<f64, &'static str> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| "value not a number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP preempt_pauses_sent_total Pause copies handed to a destination.
# TYPE preempt_pauses_sent_total counter
preempt_pauses_sent_total{destination="anvil"} 2
preempt_pauses_sent_total{destination="relay \"one\"\\x"} 1
preempt_guardian_balance_wei 1e21
preempt_stage_latency_seconds_bucket{stage="picked",le="0.00001"} 1
preempt_stage_latency_seconds_bucket{stage="picked",le="0.0001"} 3
preempt_stage_latency_seconds_bucket{stage="picked",le="+Inf"} 4
preempt_stage_latency_seconds_count{stage="picked"} 4 1700000000000
"#;

    #[test]
    fn samples_are_read_with_labels_escapes_exponents_and_timestamps() {
        let s = Snapshot::parse(TEXT).expect("parses");
        assert_eq!(s.samples.len(), 7);
        assert_eq!(s.value("preempt_pauses_sent_total", &[("destination", "anvil")]), Some(2.0));
        assert_eq!(
            s.value("preempt_pauses_sent_total", &[("destination", "relay \"one\"\\x")]),
            Some(1.0)
        );
        assert_eq!(s.count("preempt_pauses_sent_total", &[]), 3);
        assert_eq!(s.value("preempt_guardian_balance_wei", &[]), Some(1e21));
        assert_eq!(
            s.value("preempt_stage_latency_seconds_count", &[("stage", "picked")]),
            Some(4.0)
        );
        assert_eq!(s.label_values("preempt_pauses_sent_total", "destination").len(), 2);
        assert_eq!(s.value("preempt_missing", &[]), None);
    }

    #[test]
    fn a_quantile_interpolates_inside_its_bucket_as_prometheus_does() {
        let s = Snapshot::parse(TEXT).expect("parses");
        let p50 = s.quantile("preempt_stage_latency_seconds", &[("stage", "picked")], 0.5);
        // Rank 2 of 4 falls in (10 µs, 100 µs], halfway through its 2 samples.
        assert!((p50.unwrap_or_default() - 0.000_055).abs() < 1e-12, "{p50:?}");
        // Rank 4 is in the +Inf bucket: the last finite bound, as histogram_quantile gives.
        assert_eq!(
            s.quantile("preempt_stage_latency_seconds", &[("stage", "picked")], 1.0),
            Some(0.0001)
        );
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_its_number() {
        for (text, reason) in [
            ("ok 1\nbad{a=\"1\" 2\n", "labels not closed"),
            ("ok 1\nbad{a=\"1 2\n", "label value not closed"),
            ("ok 1\nbad{a} 2\n", "label without `=`"),
            ("ok 1\nbad{a=1} 2\n", "label value not quoted"),
            ("ok 1\nbad x\n", "value not a number"),
            ("ok 1\nbad\n", "no value"),
            ("ok 1\nb-d 1\n", "not a metric name"),
        ] {
            match Snapshot::parse(text) {
                Err(SnapshotError::Line { line, reason: r, .. }) => {
                    assert_eq!((line, r), (2, reason), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
