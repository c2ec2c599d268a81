//! Incremental reads pushed down into a database: the watermark value, typed by the column
//! it is kept on, so it can be bound as a query parameter.

use arrow::datatypes::DataType;
use serde_json::Value;
use sluice_plugin::{ConnectorError, type_name};

use crate::suggest::did_you_mean;
use crate::values;

/// A watermark value converted to its column's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    /// For integer columns.
    Int(i64),
    /// For float columns.
    Float(f64),
    /// For decimal columns: the number as written, so no digit is lost.
    Decimal(String),
    /// For date columns: days since 1970-01-01.
    Date(i32),
    /// For timestamp columns: microseconds since 1970-01-01 00:00.
    Timestamp(i64),
    /// For text columns.
    Text(String),
}

impl Bound {
    /// The value as SQL literal text (ISO 8601 for dates and timestamps), which every
    /// database parses back into the column's type.
    pub(crate) fn to_text(&self) -> String {
        match self {
            Bound::Int(v) => v.to_string(),
            // `inf` is Rust's spelling; databases all read `Infinity`.
            Bound::Float(v) if v.is_infinite() => {
                if *v > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                }
            }
            Bound::Float(v) => v.to_string(),
            Bound::Decimal(s) | Bound::Text(s) => s.clone(),
            Bound::Date(d) => values::format_date(*d),
            Bound::Timestamp(t) => values::format_timestamp(*t),
        }
    }
}

/// Converts the watermark `value` of `column` (of type `ty`) to a [`Bound`].
pub(crate) fn bound(column: &str, ty: &DataType, value: &Value) -> Result<Bound, ConnectorError> {
    let fail = |expected: &str| {
        ConnectorError::Other(format!(
            "incremental watermark on column `{column}` ({}): {value} is not {expected}",
            type_name(ty)
        ))
    };
    let text = value.as_str();
    match ty {
        DataType::Int16 | DataType::Int32 | DataType::Int64 => value
            .as_i64()
            .or_else(|| text.and_then(|s| values::parse_i64(s.as_bytes())))
            .map(Bound::Int)
            .ok_or_else(|| fail("an integer")),
        DataType::Float32 | DataType::Float64 => value
            .as_f64()
            .or_else(|| text.and_then(|s| values::parse_f64(s.as_bytes())))
            .map(Bound::Float)
            .ok_or_else(|| fail("a number")),
        DataType::Decimal128(_, _) => match value {
            Value::Number(n) => Ok(Bound::Decimal(n.to_string())),
            Value::String(s) if values::parse_f64(s.as_bytes()).is_some_and(f64::is_finite) => {
                Ok(Bound::Decimal(s.clone()))
            }
            _ => Err(fail("a number")),
        },
        DataType::Date32 => {
            let s = text.ok_or_else(|| fail("a date string like \"2011-12-09\""))?;
            match values::parse_date(s.as_bytes()) {
                Some(d) => Ok(Bound::Date(d)),
                // A timestamp watermark on a date column: its day. `>` that day may re-read
                // rows of the same day, which the collect stage filters again; it never
                // misses one.
                None => iso_timestamp(s)
                    .map(|t| Bound::Date(t.div_euclid(values::MICROS_PER_DAY) as i32))
                    .ok_or_else(|| fail("a date string like \"2011-12-09\"")),
            }
        }
        DataType::Timestamp(_, _) => text
            .and_then(iso_timestamp)
            .map(Bound::Timestamp)
            .ok_or_else(|| fail("an ISO 8601 timestamp string like \"2011-12-09T12:50:00\"")),
        DataType::Utf8 => match value {
            Value::String(s) => Ok(Bound::Text(s.clone())),
            _ => Err(fail("a string")),
        },
        other => Err(ConnectorError::Other(format!(
            "incremental watermark on column `{column}`: a {} column cannot hold a watermark; use a number, date, timestamp or string column",
            type_name(other)
        ))),
    }
}

/// An ISO 8601 timestamp, also with a `+00:00` offset (as UTC timestamps are often written).
fn iso_timestamp(s: &str) -> Option<i64> {
    let s = s.strip_suffix("+00:00").unwrap_or(s);
    values::parse_timestamp(s.as_bytes())
}

/// The error for a watermark column the source does not have.
pub(crate) fn unknown_column<'a>(
    column: &str,
    source: &str,
    names: impl IntoIterator<Item = &'a str> + Clone,
) -> ConnectorError {
    let hint = did_you_mean(column, names.clone());
    let listed: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    ConnectorError::Other(format!(
        "incremental watermark column `{column}` is not a column of {source}{hint}; its columns are {}",
        listed.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::TimeUnit;
    use serde_json::json;

    use super::*;

    #[test]
    fn watermarks_take_the_type_of_their_column() {
        assert_eq!(bound("id", &DataType::Int32, &json!(42)).unwrap(), Bound::Int(42));
        assert_eq!(bound("p", &DataType::Float64, &json!(2.5)).unwrap().to_text(), "2.5");
        // The collect stage keeps an infinite float watermark as text.
        assert_eq!(bound("p", &DataType::Float64, &json!("-Infinity")).unwrap().to_text(), "-Infinity");
        assert_eq!(bound("n", &DataType::Decimal128(10, 2), &json!("12.30")).unwrap().to_text(), "12.30");
        assert_eq!(bound("d", &DataType::Date32, &json!("2011-12-09")).unwrap().to_text(), "2011-12-09");
        assert_eq!(
            bound("d", &DataType::Date32, &json!("2011-12-09T12:00:00")).unwrap().to_text(),
            "2011-12-09"
        );
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(
            bound("t", &ts, &json!("2011-12-09T12:50:00")).unwrap().to_text(),
            "2011-12-09 12:50:00.000000"
        );
        assert_eq!(
            bound("t", &ts, &json!("2011-12-09T12:50:00.25+00:00")).unwrap().to_text(),
            "2011-12-09 12:50:00.250000"
        );
        assert_eq!(bound("s", &DataType::Utf8, &json!("b")).unwrap(), Bound::Text("b".into()));
    }

    #[test]
    fn a_watermark_of_the_wrong_kind_names_the_column_and_the_expected_form() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let err = bound("InvoiceDate", &ts, &json!("12/9/2011")).unwrap_err().to_string();
        assert!(err.contains("`InvoiceDate`") && err.contains("ISO 8601"), "{err}");
        let err = bound("id", &DataType::Int64, &json!("x")).unwrap_err().to_string();
        assert!(err.contains("not an integer"), "{err}");
        let err = bound("ok", &DataType::Boolean, &json!(true)).unwrap_err().to_string();
        assert!(err.contains("cannot hold a watermark"), "{err}");
        let err = unknown_column("update_at", "table `t`", ["id", "updated_at"]).to_string();
        assert!(err.contains("did you mean `updated_at`") && err.contains("`id`, `updated_at`"), "{err}");
    }
}
