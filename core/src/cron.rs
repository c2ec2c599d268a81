//! Cron expressions (5 fields: minute hour day-of-month month day-of-week).

use std::collections::BTreeSet;

/// A parsed cron schedule: the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// Minutes 0–59.
    pub minutes: BTreeSet<u32>,
    /// Hours 0–23.
    pub hours: BTreeSet<u32>,
    /// Days of month 1–31.
    pub days_of_month: BTreeSet<u32>,
    /// Months 1–12.
    pub months: BTreeSet<u32>,
    /// Days of week 0–6, Sunday = 0.
    pub days_of_week: BTreeSet<u32>,
    /// Whether day-of-month was `*` (cron ORs the two day fields when both are restricted).
    pub dom_any: bool,
    /// Whether day-of-week was `*`.
    pub dow_any: bool,
}

const FIELDS: [(&str, u32, u32); 5] =
    [("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7)];
const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses a cron expression; the error names the field and what is wrong with it.
pub fn parse(expr: &str) -> Result<Cron, String> {
    let expanded = match expr.trim() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other if other.starts_with('@') => {
            return Err(format!(
                "unknown macro `{other}`; expected @hourly, @daily, @weekly, @monthly or @yearly"
            ));
        }
        other => other,
    };
    let parts: Vec<&str> = expanded.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            parts.len()
        ));
    }
    let mut sets = Vec::with_capacity(5);
    for (i, part) in parts.iter().enumerate() {
        sets.push(parse_field(part, i)?);
    }
    let mut dow = sets.pop().unwrap_or_default();
    if dow.remove(&7) {
        dow.insert(0);
    }
    let months = sets.pop().unwrap_or_default();
    let dom = sets.pop().unwrap_or_default();
    let hours = sets.pop().unwrap_or_default();
    let minutes = sets.pop().unwrap_or_default();
    Ok(Cron {
        minutes,
        hours,
        days_of_month: dom,
        months,
        days_of_week: dow,
        dom_any: parts[2] == "*",
        dow_any: parts[4] == "*",
    })
}

fn parse_value(s: &str, field: usize) -> Result<u32, String> {
    let (name, lo, hi) = FIELDS[field];
    let lower = s.to_ascii_lowercase();
    let named = match field {
        3 => MONTHS.iter().position(|m| *m == lower).map(|i| i as u32 + 1),
        4 => DAYS.iter().position(|d| *d == lower).map(|i| i as u32),
        _ => None,
    };
    let v = match named {
        Some(v) => v,
        None => s.parse::<u32>().map_err(|_| format!("{name} field: `{s}` is not a number"))?,
    };
    if v < lo || v > hi {
        return Err(format!("{name} field: {v} is out of range {lo}-{hi}"));
    }
    Ok(v)
}

fn parse_field(part: &str, field: usize) -> Result<BTreeSet<u32>, String> {
    let (name, lo, hi) = FIELDS[field];
    let mut set = BTreeSet::new();
    for item in part.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name} field: step `{s}` must be a positive number"))?;
                (r, step)
            }
            None => (item, 1),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (parse_value(a, field)?, parse_value(b, field)?);
            if a > b {
                return Err(format!("{name} field: range {a}-{b} runs backwards"));
            }
            (a, b)
        } else {
            let v = parse_value(range, field)?;
            (v, if step > 1 { hi } else { v })
        };
        set.extend((start..=end).step_by(step as usize));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let c = parse("*/15 3 * jan-mar mon-fri").unwrap();
        assert_eq!(c.minutes.iter().copied().collect::<Vec<_>>(), [0, 15, 30, 45]);
        assert_eq!(c.months.len(), 3);
        assert_eq!(c.days_of_week.iter().copied().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert!(parse("@daily").is_ok());
        assert!(parse("0 0 * * 7").unwrap().days_of_week.contains(&0));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(parse("0 24 * * *").unwrap_err(), "hour field: 24 is out of range 0-23");
        assert!(parse("0 3 * *").unwrap_err().contains("expected 5 fields"));
        assert!(parse("x 3 * * *").unwrap_err().starts_with("minute field"));
    }
}
