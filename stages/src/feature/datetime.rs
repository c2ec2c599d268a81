//! `datetime = { column = "InvoiceDate", parts = [...], days_since = "2011-12-10" }`:
//! calendar parts of a date or timestamp as new columns `COLUMN_PART`, and the day
//! arithmetic shared with `recency`.
//!
//! Day arithmetic: values and reference dates become microseconds since 1970-01-01 (a naive
//! timestamp as written, a zoned one as wall-clock time in its zone; a date at midnight);
//! a number of days is the difference divided by 86 400 000 000 rounded down (floor), so
//! 23 hours is 0 days and -1 hour is -1 day.

use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{Array, ArrayRef, Int8Array, Int64Array, StringArray};
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::compute::{cast, kernels::cast::can_cast_types};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use sluice_core::registry::Issue;

use super::columns::{Accepts, find};
use super::config::At;
use super::step::{Applied, Failure, Transform};
use super::table::{Placement, Table};

/// Microseconds in a day.
pub(crate) const DAY_US: i64 = 86_400_000_000;

/// Parses a reference date (`2011-12-10`, `2011-12-10 08:00:00`, RFC 3339) into
/// microseconds since the epoch.
pub(crate) fn parse_instant(text: &str) -> Option<i64> {
    let strings = StringArray::from(vec![text.trim()]);
    let ts = cast(&strings, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?;
    let micros = cast(&ts, &DataType::Int64).ok()?;
    let micros = micros.as_any().downcast_ref::<Int64Array>()?;
    micros.is_valid(0).then(|| micros.value(0))
}

/// A reference time written in the pipeline file (`days_since`, recency's `reference`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefTime {
    /// Microseconds since the epoch: UTC when an offset was written, else as written.
    micros: i64,
    /// The text named an offset (`+09:00`, `Z`): an instant rather than a wall-clock time.
    instant: bool,
}

impl RefTime {
    /// Reads a date or timestamp; `None` when it is neither.
    pub(crate) fn parse(text: &str) -> Option<RefTime> {
        let micros = parse_instant(text)?;
        // Past the date (`YYYY-MM-DD`), a sign or a `Z` can only be an offset.
        let instant = text.trim().get(10..).is_some_and(|t| t.contains(['+', '-', 'Z', 'z']));
        Some(RefTime { micros, instant })
    }

    /// The reference on the clock [`to_micros`] reads values of type `ty` on: an instant
    /// becomes the wall-clock time of a zoned column's zone.
    pub(crate) fn on_clock_of(self, ty: &DataType) -> Result<i64, Failure> {
        match ty {
            DataType::Timestamp(_, Some(zone)) if self.instant => {
                let zone: Tz = zone.parse()?;
                Ok(wall_clock(self.micros, &zone))
            }
            _ => Ok(self.micros),
        }
    }
}

/// A date or timestamp column as microseconds since the epoch (nulls kept).
pub(crate) fn to_micros(values: &dyn Array) -> Result<Int64Array, Failure> {
    let ts = cast(values, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    let micros = cast(&ts, &DataType::Int64)?;
    let micros =
        micros.as_any().downcast_ref::<Int64Array>().cloned().unwrap_or_else(|| Int64Array::new_null(0));
    // The cast keeps the UTC instant; a zoned value counts as its wall-clock time, the
    // time its calendar parts are read from.
    if let DataType::Timestamp(_, Some(zone)) = values.data_type() {
        let zone: Tz = zone.parse()?;
        return Ok(micros.unary(|v| wall_clock(v, &zone)));
    }
    Ok(micros)
}

/// The wall-clock time in `zone` of the UTC instant `utc`, both in microseconds.
fn wall_clock(utc: i64, zone: &Tz) -> i64 {
    match chrono::DateTime::from_timestamp_micros(utc) {
        Some(t) => t.with_timezone(zone).naive_local().and_utc().timestamp_micros(),
        None => utc,
    }
}

/// Whole days from `from` to `to` (both in microseconds), rounded down.
pub(crate) fn days_between(from: i64, to: i64) -> i64 {
    (to - from).div_euclid(DAY_US)
}

/// A calendar part the transform can extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Year,
    Quarter,
    Month,
    Week,
    Day,
    DayOfWeek,
    DayOfYear,
    Hour,
    Minute,
    Second,
    IsWeekend,
}

/// Every part by its config name.
const PARTS: &[(&str, Part)] = &[
    ("year", Part::Year),
    ("quarter", Part::Quarter),
    ("month", Part::Month),
    ("week", Part::Week),
    ("day", Part::Day),
    ("day_of_week", Part::DayOfWeek),
    ("day_of_year", Part::DayOfYear),
    ("hour", Part::Hour),
    ("minute", Part::Minute),
    ("second", Part::Second),
    ("is_weekend", Part::IsWeekend),
];

impl Part {
    fn arrow(self) -> DatePart {
        match self {
            Part::Year => DatePart::Year,
            Part::Quarter => DatePart::Quarter,
            Part::Month => DatePart::Month,
            Part::Week => DatePart::Week,
            Part::Day => DatePart::Day,
            Part::DayOfWeek | Part::IsWeekend => DatePart::DayOfWeekMonday0,
            Part::DayOfYear => DatePart::DayOfYear,
            Part::Hour => DatePart::Hour,
            Part::Minute => DatePart::Minute,
            Part::Second => DatePart::Second,
        }
    }
}

/// The `datetime` transform.
#[derive(Debug)]
pub(crate) struct Datetime {
    column: String,
    column_key: String,
    parts: Vec<(String, Part)>,
    days_since: Option<RefTime>,
}

impl Datetime {
    /// Reads `datetime = { column, parts, days_since }`.
    pub fn parse(at: &At<'_>) -> Result<Self, Issue> {
        at.only(&["column", "parts", "days_since"], &["column"])?;
        let column = at.require("column")?;
        let mut parts = Vec::new();
        if let Some(list) = at.get("parts") {
            for (i, name) in list.strings()?.into_iter().enumerate() {
                let Some((_, part)) = PARTS.iter().find(|(n, _)| *n == name) else {
                    let names: Vec<&str> = PARTS.iter().map(|(n, _)| *n).collect();
                    let help = sluice_core::diagnostic::suggestion(&name, names.iter().copied())
                        .unwrap_or_else(|| format!("parts: {}", names.join(", ")));
                    return Err(Issue::new(format!("{}.{i}", list.key), format!("unknown part `{name}`"))
                        .with_help(help));
                };
                // Each part once: a second `hour` would write `COLUMN_hour` twice.
                if parts.iter().any(|(_, p)| p == part) {
                    return Err(Issue::new(
                        format!("{}.{i}", list.key),
                        format!("part `{name}` is listed twice"),
                    )
                    .with_help("list each part once"));
                }
                parts.push((name, *part));
            }
        }
        let days_since = match at.get("days_since") {
            None => None,
            Some(v) => Some(RefTime::parse(v.str()?).ok_or_else(|| {
                v.issue(format!("`{}` is not a date", v.value.as_str().unwrap_or_default()))
                    .with_help("write a date as \"2011-12-10\" or a timestamp as \"2011-12-10 08:00:00\"")
            })?),
        };
        if parts.is_empty() && days_since.is_none() {
            return Err(at.issue("`datetime` needs `parts = [...]` or `days_since = \"DATE\"`"));
        }
        Ok(Datetime { column: column.str()?.to_string(), column_key: column.key, parts, days_since })
    }

    fn placement(&self, input: &Schema) -> Placement {
        let mut fields: Vec<Field> = self
            .parts
            .iter()
            .map(|(name, part)| {
                let ty = if *part == Part::IsWeekend { DataType::Int8 } else { DataType::Int32 };
                Field::new(format!("{}_{name}", self.column), ty, true)
            })
            .collect();
        if self.days_since.is_some() {
            fields.push(Field::new(format!("{}_days_since", self.column), DataType::Int64, true));
        }
        Placement::new(input, fields)
    }
}

impl Transform for Datetime {
    fn op(&self) -> &'static str {
        "datetime"
    }

    fn check(&self, input: &Schema) -> Vec<Issue> {
        let mut issues: Vec<Issue> =
            find(input, &self.column, Accepts::Temporal, &self.column_key, "datetime")
                .err()
                .into_iter()
                .collect();
        // A new column must be new: replacing an input column of the same name would lose
        // data without a word, as one_hot, lags, rolling and tfidf refuse too.
        let mut names: Vec<String> =
            self.parts.iter().map(|(name, _)| format!("{}_{name}", self.column)).collect();
        if self.days_since.is_some() {
            names.push(format!("{}_days_since", self.column));
        }
        for name in names {
            if input.index_of(&name).is_ok() {
                issues.push(
                    Issue::new(
                        &self.column_key,
                        format!("datetime would create column `{name}`, which the input already has"),
                    )
                    .with_help("rename or drop the input column first (derive or a clean stage's rename)"),
                );
            }
        }
        issues
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        let (index, field) =
            find(&input.schema, &self.column, Accepts::Temporal, &self.column_key, "datetime")?;
        // Dates have no time of day; as timestamps at midnight every part is defined.
        let as_ts = match field.data_type() {
            DataType::Timestamp(..) => None,
            _ => Some(DataType::Timestamp(TimeUnit::Microsecond, None)),
        };
        if let Some(ty) = &as_ts
            && !can_cast_types(field.data_type(), ty)
        {
            return Err(Issue::new(self.column_key.clone(), "cannot read this column as dates").into());
        }
        let placement = self.placement(&input.schema);
        let table = input.map_batches(Arc::clone(&placement.schema), |b| {
            let values = match &as_ts {
                Some(ty) => cast(b.column(index), ty)?,
                None => Arc::clone(b.column(index)),
            };
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.parts.len() + 1);
            for (_, part) in &self.parts {
                let extracted = date_part(&values, part.arrow())?;
                if *part == Part::IsWeekend {
                    let dow = extracted.as_any().downcast_ref::<arrow::array::Int32Array>();
                    let weekend: Int8Array = dow
                        .map(|d| d.iter().map(|v| v.map(|v| i8::from(v >= 5))).collect())
                        .unwrap_or_else(|| Int8Array::new_null(0));
                    arrays.push(Arc::new(weekend));
                } else {
                    arrays.push(extracted);
                }
            }
            if let Some(reference) = self.days_since {
                let reference = reference.on_clock_of(values.data_type())?;
                let micros = to_micros(&values)?;
                let days: Int64Array =
                    arrow::compute::kernels::arity::unary::<Int64Type, _, Int64Type>(&micros, |v| {
                        days_between(reference, v)
                    });
                arrays.push(Arc::new(days));
            }
            Ok(placement.columns(b, arrays))
        })?;
        Ok(table.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Date32Array, StringArray, TimestampMicrosecondArray};
    use serde_json::json;

    use super::*;
    use crate::feature::testing::{batch, i64s};

    fn ts(text: &str) -> i64 {
        parse_instant(text).unwrap()
    }

    #[test]
    fn day_arithmetic_rounds_down() {
        assert_eq!(days_between(ts("2011-12-09 00:00:00"), ts("2011-12-10")), 1);
        assert_eq!(days_between(ts("2011-12-09 01:00:00"), ts("2011-12-10")), 0);
        assert_eq!(days_between(ts("2011-12-10 01:00:00"), ts("2011-12-10")), -1);
        assert_eq!(parse_instant("not a date"), None);
    }

    #[test]
    fn zoned_timestamps_count_days_by_their_wall_clock() {
        // 2011-12-04 23:00 UTC is 2011-12-05 01:00 at +02:00: the same day as its parts say.
        let ts = TimestampMicrosecondArray::from(vec![1_323_039_600_000_000]).with_timezone("+02:00");
        let t = batch(vec![("tz", Arc::new(ts))]);
        let v = json!({ "column": "tz", "parts": ["day", "hour"], "days_since": "2011-12-05" });
        let out = Datetime::parse(&At::new("datetime", &v)).unwrap().apply(t).unwrap().table;
        assert_eq!(i64s(&out, "tz_days_since"), vec![Some(0)]);
        // A reference with an offset is an instant: 01:00:01 at +02:00 is one second later.
        let ts = TimestampMicrosecondArray::from(vec![1_323_039_600_000_000]).with_timezone("+02:00");
        let t = batch(vec![("tz", Arc::new(ts))]);
        let v = json!({ "column": "tz", "days_since": "2011-12-04T23:00:01Z" });
        let out = Datetime::parse(&At::new("datetime", &v)).unwrap().apply(t).unwrap().table;
        assert_eq!(i64s(&out, "tz_days_since"), vec![Some(-1)]);
    }

    #[test]
    fn parts_and_days_since_with_nulls() {
        let values = TimestampMicrosecondArray::from(vec![
            Some(ts("2011-12-10 08:26:00")), // a Saturday
            None,
            Some(ts("2011-12-05 23:59:00")), // a Monday
        ]);
        let t = batch(vec![("InvoiceDate", Arc::new(values))]);
        let v = json!({ "column": "InvoiceDate", "parts": ["hour", "day_of_week", "month", "week", "is_weekend"], "days_since": "2011-12-01" });
        let d = Datetime::parse(&At::new("datetime", &v)).unwrap();
        assert!(d.check(&t.schema).is_empty());
        let out = d.apply(t).unwrap().table;
        assert_eq!(i64s(&out, "InvoiceDate_hour"), vec![Some(8), None, Some(23)]);
        assert_eq!(i64s(&out, "InvoiceDate_day_of_week"), vec![Some(5), None, Some(0)]);
        assert_eq!(i64s(&out, "InvoiceDate_month"), vec![Some(12), None, Some(12)]);
        assert_eq!(i64s(&out, "InvoiceDate_week"), vec![Some(49), None, Some(49)]);
        assert_eq!(i64s(&out, "InvoiceDate_is_weekend"), vec![Some(1), None, Some(0)]);
        assert_eq!(i64s(&out, "InvoiceDate_days_since"), vec![Some(9), None, Some(4)]);
    }

    #[test]
    fn dates_work_and_strings_are_refused_with_a_hint() {
        let t = batch(vec![
            ("d", Arc::new(Date32Array::from(vec![Some(0), Some(1)]))),
            ("s", Arc::new(StringArray::from(vec!["2011-01-01", "x"]))),
        ]);
        let v = json!({ "column": "d", "parts": ["day_of_year"] });
        let out = Datetime::parse(&At::new("datetime", &v)).unwrap().apply(t.clone()).unwrap().table;
        assert_eq!(i64s(&out, "d_day_of_year"), vec![Some(1), Some(2)]);

        let v = json!({ "column": "s", "parts": ["hour"] });
        let issues = Datetime::parse(&At::new("steps.1.datetime", &v)).unwrap().check(&t.schema);
        assert_eq!(issues[0].key, "steps.1.datetime.column");
        assert!(issues[0].message.contains("date or timestamp"), "{}", issues[0].message);
        assert!(issues[0].help.as_deref().unwrap().contains("to_timestamp"));
    }

    #[test]
    fn repeated_parts_and_existing_columns_are_refused() {
        let v = json!({ "column": "ts", "parts": ["hour", "hour"] });
        let e = Datetime::parse(&At::new("datetime", &v)).unwrap_err();
        assert_eq!((e.key.as_str(), e.message.as_str()), ("datetime.parts.1", "part `hour` is listed twice"));

        let t = batch(vec![
            ("ts", Arc::new(TimestampMicrosecondArray::from(vec![ts("2011-12-10 08:26:00")]))),
            ("ts_hour", Arc::new(StringArray::from(vec!["keep me"]))),
        ]);
        let v = json!({ "column": "ts", "parts": ["hour", "day"] });
        let issues = Datetime::parse(&At::new("datetime", &v)).unwrap().check(&t.schema);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "datetime.column");
        assert!(issues[0].message.contains("`ts_hour`"), "{}", issues[0].message);
    }

    #[test]
    fn unknown_part_gets_a_suggestion() {
        let v = json!({ "column": "d", "parts": ["hour", "weekday"] });
        let e = Datetime::parse(&At::new("datetime", &v)).unwrap_err();
        assert_eq!(e.key, "datetime.parts.1");
    }
}
