//! What commands print: aligned tables and `key  value` blocks for people, the API's JSON
//! verbatim for scripts (`--json`). Everything goes through [`out`] so a closed pipe ends the
//! program quietly instead of panicking.

use crate::error::Result;
use serde_json::Value;
use std::io::Write;

/// Writes `text` to stdout and flushes.
pub fn out(text: &str) -> Result<()> {
    out_bytes(text.as_bytes())
}

pub fn out_bytes(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// Prints a JSON body as received, ending with one newline.
pub fn raw_json(raw: &str) -> Result<()> {
    out(&format!("{}\n", raw.trim_end()))
}

/// Prints a JSON value on one line.
pub fn json_line(value: &Value) -> Result<()> {
    out(&format!("{value}\n"))
}

/// Columns padded to their widest cell; the last column is not padded.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 < row.len() {
                    line.push_str(cell);
                    let pad = widths[c] - cell.chars().count() + 3;
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.push_str(cell);
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    pub fn print(&self) -> Result<()> {
        out(&self.render())
    }
}

/// `key  value` lines, keys padded to the longest; pairs with an empty value are skipped.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k:width$}  {v}\n"))
        .collect()
}

/// A field of a JSON object as display text: strings bare, null as empty, others as JSON.
pub fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Bytes as `512 B`, `1.5 KiB`, `20.0 MiB`, ...
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long ago an RFC 3339 time was, as `45s`, `12m`, `3h`, `2d`; the text itself when it
/// does not parse.
pub fn age(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    duration(secs as u64)
}

/// Seconds as `45s`, `12m`, `3h`, `2d`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Seconds between two RFC 3339 times, when both parse.
pub fn seconds_between(start: &str, end: &str) -> Option<u64> {
    let a = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(end).ok()?;
    u64::try_from((b - a).num_seconds()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["ID", "STATUS"]);
        t.row(vec!["sb_1".into(), "running".into()]);
        t.row(vec!["sb_longer".into(), "paused".into()]);
        assert_eq!(
            t.render(),
            "ID          STATUS\nsb_1        running\nsb_longer   paused\n"
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(50 * 1024 * 1024), "50.0 MiB");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(600), "10m");
        assert_eq!(duration(3 * 86_400), "3d");
        assert_eq!(
            seconds_between("2026-01-01T00:00:00Z", "2026-01-01T00:01:30Z"),
            Some(90)
        );
    }

    #[test]
    fn fields_skip_empty_values() {
        assert_eq!(
            fields(&[
                ("id", "sb_1".into()),
                ("reason", String::new()),
                ("status", "running".into())
            ]),
            "id      sb_1\nstatus  running\n"
        );
    }
}
