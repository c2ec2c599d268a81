//! Type conversions: `cast` (Arrow casts between the pipeline's type names) and
//! `parse_timestamp` (strings with a strftime format). A value that does not convert follows
//! the op's `on_error`: fail naming row and value, become NULL, or remove the row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, TimestampMicrosecondArray};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use chrono::format::{Fixed, Item, Numeric, ParseErrorKind, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};
use rayon::prelude::*;
use serde_json::Value;
use sluice_core::StageError;
use sluice_core::registry::Issue;
use sluice_plugin::exact_cast::cast_exact;
use sluice_plugin::types::TYPE_NAMES;
use sluice_plugin::{parse_type_name, type_name};

use super::steps::{ColRef, OnBad, column_table};
use super::table::{Applied, OpError, Table};

/// `cast = { col = "type" }` or `cast = { columns = { col = "type" }, on_error = "null" }`.
#[derive(Debug, Clone)]
pub struct Cast {
    /// Column → target type.
    pub columns: Vec<(ColRef, DataType)>,
    /// What a value that does not convert does.
    pub on_error: OnBad,
}

/// `parse_timestamp = { col = "%d/%m/%Y %H:%M" }` (or the `columns` + `on_error` form).
#[derive(Debug, Clone)]
pub struct ParseTimestamp {
    /// Column → strftime format.
    pub columns: Vec<(ColRef, String)>,
    /// What a value that does not match does.
    pub on_error: OnBad,
}

/// Column entries of a conversion table, with the table's `on_error`.
type Entries<'v> = (Vec<(ColRef, &'v Value)>, OnBad);

/// Splits the short form (`{ col = v }`) from the long one (`{ columns = {...}, on_error }`).
fn long_form<'v>(value: &'v Value, key: &str, op: &str, example: &str) -> Result<Entries<'v>, Vec<Issue>> {
    match value.as_object() {
        Some(t) if t.get("columns").is_some_and(Value::is_object) => {
            let on_error =
                OnBad::parse(t.get("on_error"), &format!("{key}.on_error")).map_err(|i| vec![i])?;
            if let Some(other) = t.keys().find(|k| !matches!(k.as_str(), "columns" | "on_error")) {
                return Err(vec![
                    Issue::new(format!("{key}.{other}"), format!("unknown key `{other}` in `{op}`"))
                        .with_help("with `columns = {...}`, the only other key is `on_error`"),
                ]);
            }
            let cols = t
                .get("columns")
                .map_or(Ok(Vec::new()), |c| column_table(c, &format!("{key}.columns"), op, example))?;
            Ok((cols, on_error))
        }
        _ => Ok((column_table(value, key, op, example)?, OnBad::Fail)),
    }
}

impl Cast {
    /// Reads the op's config.
    pub fn parse(value: &Value, key: &str) -> Result<Cast, Vec<Issue>> {
        let (entries, on_error) = long_form(value, key, "cast", "cast = { Quantity = \"int64\" }")?;
        let mut columns = Vec::new();
        let mut issues = Vec::new();
        for (col, v) in entries {
            match v.as_str().and_then(parse_type_name) {
                Some(ty) => columns.push((col, ty)),
                None => issues.push(
                    Issue::new(&col.key, format!("`{v}` is not a type name"))
                        .with_help(format!("types: {}", TYPE_NAMES.join(", "))),
                ),
            }
        }
        if issues.is_empty() { Ok(Cast { columns, on_error }) } else { Err(issues) }
    }

    /// Output schema; unknown columns and impossible casts are issues.
    pub fn derive(&self, schema: &SchemaRef, issues: &mut Vec<Issue>) -> SchemaRef {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (col, ty) in &self.columns {
            let Some(i) = col.find(schema, issues) else { continue };
            let from = schema.field(i).data_type();
            if !can_cast_types(from, ty) {
                issues.push(Issue::new(
                    &col.key,
                    format!(
                        "column `{}` is {} and cannot be cast to {}",
                        col.name,
                        type_name(from),
                        type_name(ty)
                    ),
                ));
            }
            fields[i] = fields[i].clone().with_data_type(ty.clone()).with_nullable(true);
        }
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    /// Casts per batch; refused values follow `on_error`.
    pub fn apply(&self, table: Table, out: SchemaRef, track: bool) -> Result<Applied, OpError> {
        let targets: Vec<(usize, &ColRef, String)> = self
            .columns
            .iter()
            .filter_map(|(c, ty)| Some((out.index_of(&c.name).ok()?, c, type_name(ty))))
            .collect();
        convert(table, out, &targets, self.on_error, track, "cast", |k, array| {
            let (_, ty) = &self.columns[k];
            // A number that would lose its fraction or digits does not convert either.
            cast_exact(array, ty).map_err(|e| StageError::arrow("casting", e))
        })
    }
}

impl ParseTimestamp {
    /// Reads the op's config; formats are checked here.
    pub fn parse(value: &Value, key: &str) -> Result<ParseTimestamp, Vec<Issue>> {
        let (entries, on_error) = long_form(
            value,
            key,
            "parse_timestamp",
            "parse_timestamp = { InvoiceDate = \"%m/%d/%Y %H:%M\" }",
        )?;
        let mut columns = Vec::new();
        let mut issues = Vec::new();
        for (col, v) in entries {
            match v.as_str() {
                Some(f) if !f.is_empty() && !StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) => {
                    let parts = FormatParts::of(f);
                    if parts.zone_name {
                        issues.push(
                            Issue::new(&col.key, format!("the format \"{f}\" reads a time zone name (%Z), which names no single offset"))
                                .with_help("use %z for an offset such as +0100 (values are then converted to UTC)"),
                        );
                    } else if parts.date {
                        columns.push((col, f.to_string()));
                    } else {
                        issues.push(
                            Issue::new(&col.key, format!("the format \"{f}\" has no complete date"))
                                .with_help("it needs a year (%Y or %y), a month (%m or %b) and a day (%d), e.g. \"%d/%m/%Y %H:%M\""),
                        );
                    }
                }
                _ => issues.push(
                    Issue::new(&col.key, format!("`{v}` is not a timestamp format"))
                        .with_help("use strftime fields, e.g. \"%Y-%m-%d %H:%M:%S\" or \"%d/%m/%Y\""),
                ),
            }
        }
        if issues.is_empty() { Ok(ParseTimestamp { columns, on_error }) } else { Err(issues) }
    }

    /// Output schema: the named string columns become timestamps.
    pub fn derive(&self, schema: &SchemaRef, issues: &mut Vec<Issue>) -> SchemaRef {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (col, _) in &self.columns {
            let Some(i) = col.find(schema, issues) else { continue };
            let ty = schema.field(i).data_type();
            if !matches!(ty, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                issues.push(
                    Issue::new(
                        &col.key,
                        format!(
                            "column `{}` is {}, not a string; only strings are parsed",
                            col.name,
                            type_name(ty)
                        ),
                    )
                    .with_help("remove it from `parse_timestamp` (use `cast` to convert other types)"),
                );
            }
            fields[i] = fields[i].clone().with_data_type(timestamp()).with_nullable(true);
        }
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    /// Parses per batch; values that do not match follow `on_error`.
    pub fn apply(&self, table: Table, out: SchemaRef, track: bool) -> Result<Applied, OpError> {
        let targets: Vec<(usize, &ColRef, String)> = self
            .columns
            .iter()
            .filter_map(|(c, f)| {
                Some((out.index_of(&c.name).ok()?, c, format!("a timestamp in the format \"{f}\"")))
            })
            .collect();
        convert(table, out, &targets, self.on_error, track, "parse_timestamp", |k, array| {
            let (_, format) = &self.columns[k];
            parse_timestamps(array, format)
        })
    }
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// What a format's directives say about the values it reads.
struct FormatParts {
    /// It fixes a calendar day.
    date: bool,
    /// It reads a UTC offset (`%z`): values are converted to UTC.
    offset: bool,
    /// It reads a full year (`%Y`).
    full_year: bool,
    /// It reads a two-digit year (`%y`) with no century (`%C`) beside it.
    two_digit_year: bool,
    /// It reads a zone name (`%Z`), which chrono skips without using.
    zone_name: bool,
}

impl FormatParts {
    fn of(format: &str) -> FormatParts {
        let (mut year, mut month, mut day, mut ordinal, mut week, mut weekday) =
            (false, false, false, false, false, false);
        let (mut whole, mut offset, mut full_year, mut zone_name) = (false, false, false, false);
        let (mut year_mod_100, mut century) = (false, false);
        for item in StrftimeItems::new(format) {
            match item {
                Item::Numeric(n, _) => match n {
                    Numeric::Year => (year, full_year) = (true, true),
                    Numeric::YearMod100 => (year, year_mod_100) = (true, true),
                    Numeric::YearDiv100 => century = true,
                    Numeric::IsoYear | Numeric::IsoYearMod100 => year = true,
                    Numeric::Month => month = true,
                    Numeric::Day => day = true,
                    Numeric::Ordinal => ordinal = true,
                    Numeric::WeekFromSun | Numeric::WeekFromMon | Numeric::IsoWeek => week = true,
                    Numeric::NumDaysFromSun | Numeric::WeekdayFromMon => weekday = true,
                    Numeric::Timestamp => whole = true,
                    _ => {}
                },
                Item::Fixed(f) => match f {
                    Fixed::ShortMonthName | Fixed::LongMonthName => month = true,
                    Fixed::ShortWeekdayName | Fixed::LongWeekdayName => weekday = true,
                    Fixed::RFC2822 | Fixed::RFC3339 => (whole, offset) = (true, true),
                    Fixed::TimezoneOffset
                    | Fixed::TimezoneOffsetColon
                    | Fixed::TimezoneOffsetDoubleColon
                    | Fixed::TimezoneOffsetTripleColon
                    | Fixed::TimezoneOffsetColonZ
                    | Fixed::TimezoneOffsetZ => offset = true,
                    Fixed::TimezoneName => zone_name = true,
                    _ => {}
                },
                _ => {}
            }
        }
        let date = whole || (year && ((month && day) || ordinal || (week && weekday)));
        let two_digit_year = year_mod_100 && !century && !full_year;
        FormatParts { date, offset, full_year, two_digit_year, zone_name }
    }
}

/// Parses strings with a strftime format; a format without a time of day parses dates, one
/// with an offset (`%z`) gives the UTC time, and `%Y` takes a year of four digits.
fn parse_timestamps(array: &ArrayRef, format: &str) -> Result<ArrayRef, StageError> {
    let text = cast_with_options(array, &DataType::Utf8, &CastOptions::default())
        .map_err(|e| StageError::arrow("reading strings", e))?;
    let text = text.as_string::<i32>();
    let parts = FormatParts::of(format);
    let parse_one = |s: &str| -> Option<i64> {
        // chrono reads %y 69 as 2069; POSIX, Python and the csv connector read 69–99 as
        // 19xx (00–68 as 20xx). Only 69 differs, and 2069 is no leap year, nor is 1969.
        let pivot = |year: i32| parts.two_digit_year && year == 2069;
        let dt = if parts.offset {
            let mut dt = DateTime::parse_from_str(s, format).ok()?;
            if pivot(dt.year()) {
                dt = dt.with_year(1969)?;
            }
            dt.naive_utc()
        } else {
            let mut dt = match NaiveDateTime::parse_from_str(s, format) {
                Ok(dt) => dt,
                Err(e) if e.kind() == ParseErrorKind::NotEnough => {
                    NaiveDate::parse_from_str(s, format).ok()?.and_hms_opt(0, 0, 0)?
                }
                Err(_) => return None,
            };
            if pivot(dt.year()) {
                dt = dt.with_year(1969)?;
            }
            dt
        };
        // chrono reads `70` for %Y as the year 70; a two-digit year is %y.
        if parts.full_year && !(1000..=9999).contains(&dt.year()) {
            return None;
        }
        Some(dt.and_utc().timestamp_micros())
    };
    let out: TimestampMicrosecondArray = text.iter().map(|v| v.and_then(parse_one)).collect();
    Ok(Arc::new(out))
}

/// Runs a conversion over every target column of every batch (batches in parallel). A
/// failure is a value that was not NULL and became NULL.
fn convert<F>(
    table: Table,
    out: SchemaRef,
    targets: &[(usize, &ColRef, String)],
    on_error: OnBad,
    track: bool,
    op: &str,
    f: F,
) -> Result<Applied, OpError>
where
    F: Fn(usize, &ArrayRef) -> Result<ArrayRef, StageError> + Sync,
{
    struct Converted {
        batch: RecordBatch,
        keep: Option<BooleanArray>,
        reasons: Vec<String>,
        first_failure: Option<(usize, usize)>,
    }
    let results: Vec<Result<Converted, StageError>> = (0..table.batches.len())
        .into_par_iter()
        .map(|bi| {
            let batch = &table.batches[bi];
            let mut columns = batch.columns().to_vec();
            // Per row: the first target that refused its value.
            let mut failed: Option<Vec<Option<usize>>> = None;
            for (k, &(i, _, _)) in targets.iter().enumerate() {
                let before = batch.column(i);
                let after = f(k, before)?;
                if after.null_count() != before.null_count() {
                    let rows = failed.get_or_insert_with(|| vec![None; batch.num_rows()]);
                    for (r, slot) in rows.iter_mut().enumerate() {
                        if slot.is_none() && after.is_null(r) && before.is_valid(r) {
                            *slot = Some(k);
                        }
                    }
                }
                columns[i] = after;
            }
            let batch = RecordBatch::try_new(out.clone(), columns)
                .map_err(|e| StageError::arrow(format!("{op}: building the batch"), e))?;
            let first_failure =
                failed.as_ref().and_then(|rows| rows.iter().enumerate().find_map(|(r, k)| k.map(|k| (r, k))));
            let (keep, reasons) = match (&failed, on_error) {
                (Some(rows), OnBad::Reject) => {
                    let keep: BooleanArray = rows.iter().map(|k| Some(k.is_none())).collect();
                    let reasons = if track {
                        rows.iter()
                            .enumerate()
                            .filter_map(|(r, k)| k.map(|k| describe(&table.batches[bi], targets, r, k)))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    (Some(keep), reasons)
                }
                _ => (None, Vec::new()),
            };
            Ok(Converted { batch, keep, reasons, first_failure })
        })
        .collect();
    let mut converted = Vec::with_capacity(results.len());
    for r in results {
        converted.push(r?);
    }
    if on_error == OnBad::Fail
        && let Some((bi, (r, k))) =
            converted.iter().enumerate().find_map(|(bi, c)| c.first_failure.map(|f| (bi, f)))
    {
        let (_, col, _) = targets[k];
        let row = table.id(bi, r).map_or_else(|| "a row".to_string(), |id| format!("row {}", id + 1));
        let what = describe(&table.batches[bi], targets, r, k);
        return Err(OpError::Issue(Issue::new(&col.key, format!("{row} of the input: {what}")).with_help(
            format!("set `on_error = \"null\"` or `\"reject\"` in `{op}` to keep going past such values"),
        )));
    }
    let masks: Option<Vec<BooleanArray>> = match on_error {
        OnBad::Reject => Some(
            converted
                .iter()
                .map(|c| c.keep.clone().unwrap_or_else(|| BooleanArray::from(vec![true; c.batch.num_rows()])))
                .collect(),
        ),
        _ => None,
    };
    let mut reasons = Vec::new();
    let mut batches = Vec::with_capacity(converted.len());
    for c in converted {
        reasons.extend(c.reasons);
        batches.push(c.batch);
    }
    let converted_table = Table::new(out, batches, table.ids);
    let nulled: u64 =
        if on_error == OnBad::Null { count_nulled(&table.batches, &converted_table, targets) } else { 0 };
    match masks {
        Some(masks) => {
            let mut applied = Applied::kept(converted_table, masks, track)?;
            if track {
                applied.reasons = Some(reasons);
            }
            Ok(applied)
        }
        None if on_error == OnBad::Null => Ok(Applied::same(converted_table).with("nulled", nulled)),
        None => Ok(Applied::same(converted_table)),
    }
}

/// Values made NULL by the conversion (for the run record).
fn count_nulled(before: &[RecordBatch], after: &Table, targets: &[(usize, &ColRef, String)]) -> u64 {
    before
        .iter()
        .zip(&after.batches)
        .map(|(b, a)| {
            targets
                .iter()
                .map(|&(i, _, _)| (a.column(i).null_count() - b.column(i).null_count()) as u64)
                .sum::<u64>()
        })
        .sum()
}

/// "`abc` in column `Quantity` is not int64".
fn describe(batch: &RecordBatch, targets: &[(usize, &ColRef, String)], row: usize, k: usize) -> String {
    let (i, col, target) = &targets[k];
    let value = array_value_to_string(batch.column(*i), row).unwrap_or_default();
    format!("`{value}` in column `{}` is not {target}", col.name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use serde_json::json;

    use super::*;

    fn strings(name: &str, parts: &[&[Option<&str>]]) -> Table {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
        let batches = parts
            .iter()
            .map(|p| {
                RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(p.to_vec()))]).unwrap()
            })
            .collect();
        Table::from_input(schema, batches)
    }

    fn cast(v: Value) -> (Cast, Table, SchemaRef) {
        let c = Cast::parse(&v, "cast").unwrap();
        let t = strings("q", &[&[Some("1"), None], &[Some("x"), Some("3"), Some("ü")]]);
        let mut issues = Vec::new();
        let out = c.derive(&t.schema, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        (c, t, out)
    }

    #[test]
    fn cast_fails_naming_row_and_value() {
        let (c, t, out) = cast(json!({"q": "int64"}));
        let Err(OpError::Issue(i)) = c.apply(t, out, false) else { panic!("expected an issue") };
        assert_eq!(i.key, "cast.q");
        assert_eq!(i.message, "row 3 of the input: `x` in column `q` is not int64");
    }

    #[test]
    fn cast_null_keeps_rows_and_counts() {
        let (c, t, out) = cast(json!({"columns": {"q": "int"}, "on_error": "null"}));
        let a = c.apply(t, out, false).unwrap();
        assert_eq!(a.table.rows(), 5);
        let col = a.table.column(0).unwrap();
        let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(col.iter().collect::<Vec<_>>(), [Some(1), None, None, Some(3), None]);
        assert_eq!(a.extra, [("nulled", json!(2))]);
    }

    #[test]
    fn cast_reject_removes_rows_with_reasons() {
        let (c, t, out) = cast(json!({"columns": {"q": "int64"}, "on_error": "reject"}));
        let a = c.apply(t, out, true).unwrap();
        assert_eq!(a.table.rows(), 3);
        assert_eq!(a.removed, [2, 4]);
        assert_eq!(a.reasons.unwrap(), ["`x` in column `q` is not int64", "`ü` in column `q` is not int64"]);
    }

    #[test]
    fn cast_refuses_to_round_a_float_into_an_integer() {
        let schema = Arc::new(Schema::new(vec![Field::new("f", DataType::Float64, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::Float64Array::from(vec![Some(2.0), Some(2.7), None, Some(-1.5)]))],
        )
        .unwrap();
        let c = Cast::parse(&json!({"columns": {"f": "int64"}, "on_error": "null"}), "cast").unwrap();
        let t = Table::from_input(schema, vec![batch]);
        let out = c.derive(&t.schema, &mut Vec::new());
        let a = c.apply(t.clone(), out.clone(), false).unwrap();
        let col = a.table.column(0).unwrap();
        let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(col.iter().collect::<Vec<_>>(), [Some(2), None, None, None]);
        assert_eq!(a.extra, [("nulled", json!(2))]);
        let strict = Cast::parse(&json!({"f": "int64"}), "cast").unwrap();
        let Err(OpError::Issue(i)) = strict.apply(t, out, false) else { panic!("expected an issue") };
        assert_eq!(i.message, "row 2 of the input: `2.7` in column `f` is not int64");
    }

    /// Casts `values` (one column `v`) to `to` with `on_error = "null"`: the result as text.
    fn cast_values(values: ArrayRef, to: &str) -> Vec<Option<String>> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", values.data_type().clone(), true)]));
        let t = Table::from_input(schema.clone(), vec![RecordBatch::try_new(schema, vec![values]).unwrap()]);
        let c = Cast::parse(&json!({"columns": {"v": to}, "on_error": "null"}), "cast").unwrap();
        let mut issues = Vec::new();
        let out = c.derive(&t.schema, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        let col = c.apply(t, out, false).unwrap().table.column(0).unwrap();
        (0..col.len()).map(|i| col.is_valid(i).then(|| array_value_to_string(&col, i).unwrap())).collect()
    }

    /// Regression: "cast never rounds", but these casts rounded or cut silently.
    #[test]
    fn cast_refuses_values_that_do_not_survive_the_conversion() {
        // 2^53 + 1 has no float64; 2^53 does. float32 holds fewer.
        let ints: ArrayRef =
            Arc::new(Int64Array::from(vec![Some(9007199254740993), Some(9007199254740992), Some(-3), None]));
        assert_eq!(
            cast_values(ints.clone(), "float64"),
            [None, Some("9007199254740992.0".into()), Some("-3.0".into()), None]
        );
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(16777217), Some(16777216)]));
        assert_eq!(cast_values(ints, "float32"), [None, Some("16777216.0".into())]);
        // A timestamp with a time of day is not a date, as the text "2024-01-05 10:00" is not.
        let day = 19727 * 86_400_000_000i64; // 2024-01-05 00:00 in microseconds
        let times: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![Some(day), Some(day + 36_000_000_000), None]));
        assert_eq!(cast_values(times, "date"), [Some("2024-01-05".into()), None, None]);
        // Digits beyond microseconds would be cut off; zeros there are fine.
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            "2024-01-05 10:00:00.123456",
            "2024-01-05 10:00:00.1234567",
            "2024-01-05 10:00:00.123456000",
            "2024-01-05",
        ]));
        assert_eq!(
            cast_values(text, "timestamp"),
            [
                Some("2024-01-05T10:00:00.123456".into()),
                None,
                Some("2024-01-05T10:00:00.123456".into()),
                Some("2024-01-05T00:00:00".into())
            ]
        );
    }

    #[test]
    fn cast_config_and_schema_errors() {
        assert_eq!(Cast::parse(&json!({"q": "integr"}), "cast").unwrap_err()[0].key, "cast.q");
        assert_eq!(
            Cast::parse(&json!({"columns": {"q": "int"}, "on_error": "skip"}), "cast").unwrap_err()[0].key,
            "cast.on_error"
        );
        let c = Cast::parse(&json!({"qq": "int"}), "steps.0.cast").unwrap();
        let mut issues = Vec::new();
        c.derive(&strings("q", &[]).schema, &mut issues);
        assert_eq!(issues[0].key, "steps.0.cast.qq");
        assert_eq!(issues[0].help.as_deref(), Some("did you mean `q`?"));
    }

    #[test]
    fn cast_empty_and_all_null_input() {
        let c = Cast::parse(&json!({"q": "float64"}), "cast").unwrap();
        for t in [strings("q", &[]), strings("q", &[&[None, None]])] {
            let out = c.derive(&t.schema, &mut Vec::new());
            let a = c.apply(t.clone(), out, true).unwrap();
            assert_eq!(a.table.rows(), t.rows());
            assert_eq!(a.table.schema.field(0).data_type(), &DataType::Float64);
        }
    }

    #[test]
    fn parse_timestamp_with_format_dates_and_rejects() {
        let p =
            ParseTimestamp::parse(&json!({"columns": {"d": "%m/%d/%Y %H:%M"}, "on_error": "reject"}), "pt")
                .unwrap();
        let t = strings("d", &[&[Some("12/1/2010 8:26"), None, Some("2010-12-01"), Some("")]]);
        let mut issues = Vec::new();
        let out = p.derive(&t.schema, &mut issues);
        assert!(issues.is_empty());
        let a = p.apply(t, out, true).unwrap();
        assert_eq!(a.table.rows(), 2);
        assert_eq!(a.removed, [2, 3]);
        let col = a.table.column(0).unwrap();
        assert_eq!(array_value_to_string(&col, 0).unwrap(), "2010-12-01T08:26:00");
        assert!(col.is_null(1));

        let dates = ParseTimestamp::parse(&json!({"d": "%d.%m.%Y"}), "pt").unwrap();
        let t = strings("d", &[&[Some("31.12.1999")]]);
        let out = dates.derive(&t.schema, &mut issues);
        let a = dates.apply(t, out, false).unwrap();
        assert_eq!(array_value_to_string(&a.table.column(0).unwrap(), 0).unwrap(), "1999-12-31T00:00:00");
    }

    /// Column `d` of `values` parsed with `format`, values that do not match made NULL.
    fn parsed(format: &str, values: &[Option<&str>]) -> ArrayRef {
        let p = ParseTimestamp::parse(&json!({"columns": {"d": format}, "on_error": "null"}), "pt").unwrap();
        let t = strings("d", &[values]);
        let out = p.derive(&t.schema, &mut Vec::new());
        p.apply(t, out, false).unwrap().table.column(0).unwrap()
    }

    #[test]
    fn parse_timestamp_applies_offsets_and_wants_four_digit_years() {
        let col =
            parsed("%Y-%m-%dT%H:%M:%S%z", &[Some("2020-01-01T10:00:00+0200"), Some("2020-01-01T10:00:00")]);
        assert_eq!(array_value_to_string(&col, 0).unwrap(), "2020-01-01T08:00:00");
        assert!(col.is_null(1), "a value without the offset the format asks for does not match");
        let col = parsed("%m/%d/%Y", &[Some("1/1/1970"), Some("1/1/70")]);
        assert_eq!(array_value_to_string(&col, 0).unwrap(), "1970-01-01T00:00:00");
        assert!(col.is_null(1), "70 is not a %Y year");
    }

    /// Regression: `%y` read 69 as 2069; the csv connector (docs/connectors.md), POSIX and
    /// Python read 69–99 as 19xx and 00–68 as 20xx.
    #[test]
    fn two_digit_years_from_69_are_the_1900s() {
        let col = parsed(
            "%d/%m/%y",
            &[Some("1/1/68"), Some("1/1/69"), Some("31/12/99"), Some("1/1/00"), Some("1/1/70")],
        );
        let years: Vec<String> =
            (0..col.len()).map(|i| array_value_to_string(&col, i).unwrap()[..4].to_string()).collect();
        assert_eq!(years, ["2068", "1969", "1999", "2000", "1970"]);
        let col = parsed("%d/%m/%y %H:%M%z", &[Some("1/1/69 00:30+0100")]);
        assert_eq!(array_value_to_string(&col, 0).unwrap(), "1968-12-31T23:30:00");
        // With the century given, 69 is what %C says.
        let col = parsed("%d/%m/%C%y", &[Some("1/1/2069")]);
        assert_eq!(array_value_to_string(&col, 0).unwrap(), "2069-01-01T00:00:00");
    }

    #[test]
    fn parse_timestamp_formats_need_a_whole_date() {
        for f in ["%Y", "%H:%M", "%m/%d"] {
            let issues = ParseTimestamp::parse(&json!({ "d": f }), "pt").unwrap_err();
            assert!(issues[0].message.contains("has no complete date"), "{f}: {issues:?}");
        }
        let issues = ParseTimestamp::parse(&json!({ "d": "%Y-%m-%d %H:%M %Z" }), "pt").unwrap_err();
        assert!(issues[0].message.contains("time zone name (%Z)"), "{issues:?}");
        for f in ["%d/%m/%y", "%Y-%j", "%s", "%d %b %Y", "%+"] {
            assert!(ParseTimestamp::parse(&json!({ "d": f }), "pt").is_ok(), "{f}");
        }
    }

    #[test]
    fn parse_timestamp_refuses_bad_formats_and_non_strings() {
        assert!(ParseTimestamp::parse(&json!({"d": "%Q"}), "pt").is_err());
        let p = ParseTimestamp::parse(&json!({"n": "%Y-%m-%d"}), "pt").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let mut issues = Vec::new();
        p.derive(&schema, &mut issues);
        assert!(issues[0].message.contains("is int64, not a string"), "{issues:?}");
    }
}
