//! Incremental collect: a watermark (the greatest value of one column collected so far)
//! lives in the manifest of the stage's last committed artifact, so it advances only when
//! a run commits — a failed run leaves it where it was. Each run fetches rows above the
//! watermark (connectors push the condition down where they can; the rest is filtered
//! here) and adds them as a new Parquet part next to the parts collected before.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, Scalar, StringArray};
use arrow::compute::kernels::cmp::gt;
use arrow::compute::{SortOptions, and_not, cast, filter_record_batch, is_not_null, sort_to_indices, take};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use sluice_core::StageError;
use sluice_core::dataset::Dataset;
use sluice_core::stage::StageContext;
use sluice_plugin::Watermark;

/// Metric holding the watermark value.
const WATERMARK: &str = "watermark";
/// Metric holding the column it was kept on (a different column means start over).
const WATERMARK_COLUMN: &str = "watermark_column";

/// The state of one incremental read.
pub(crate) struct IncrementalRead {
    /// Column and last watermark, as handed to the connector.
    pub(crate) watermark: Watermark,
    /// The data collected by earlier runs, carried into this run's output.
    pub(crate) carried: Option<Dataset>,
    column: usize,
    threshold: Option<ArrayRef>,
    max: Option<ArrayRef>,
    below: u64,
    nulls: u64,
}

impl IncrementalRead {
    /// Picks up the watermark and data of the stage's last committed run.
    pub(crate) fn resume(ctx: &StageContext<'_>, column: &str) -> Self {
        let previous = ctx
            .previous()
            .filter(|p| p.manifest.metrics.get(WATERMARK_COLUMN).and_then(Value::as_str) == Some(column));
        let (after, carried) = match previous {
            Some(p) => (
                p.manifest.metrics.get(WATERMARK).filter(|v| !v.is_null()).cloned(),
                p.outputs.get(sluice_core::spec::DEFAULT_OUTPUT).cloned(),
            ),
            None => (None, None),
        };
        IncrementalRead {
            watermark: Watermark { column: column.to_string(), after },
            carried,
            column: 0,
            threshold: None,
            max: None,
            below: 0,
            nulls: 0,
        }
    }

    /// Finds the column in the source's schema and converts the watermark to its type.
    pub(crate) fn bind(&mut self, schema: &SchemaRef) -> Result<(), StageError> {
        let name = &self.watermark.column;
        self.column = check_column(schema, name)
            .map_err(|m| StageError::Failed(format!("`incremental.column`: {m}")))?;
        let ty = schema.field(self.column).data_type().clone();
        if let Some(v) = &self.watermark.after {
            self.threshold = Some(from_json(v, &ty).map_err(|e| {
                StageError::Failed(format!(
                    "the watermark {v} of column `{name}` does not convert to its type {ty}: {e}"
                ))
            })?);
        }
        Ok(())
    }

    /// Keeps the rows above the watermark (rows whose column is null or NaN cannot be
    /// placed and are counted, not collected) and tracks the new maximum.
    pub(crate) fn admit(&mut self, batch: RecordBatch) -> Result<RecordBatch, StageError> {
        let col = batch.column(self.column);
        let arrow_err = |e| StageError::arrow("applying the incremental watermark", e);
        let mut mask = match &self.threshold {
            Some(t) => gt(col, &Scalar::new(t.clone())).map_err(arrow_err)?,
            None => is_not_null(col).map_err(arrow_err)?,
        };
        let mut nulls = col.null_count() as u64;
        // NaN is neither above nor below any watermark (Arrow sorts it above everything,
        // which made it the maximum and the watermark unrecordable): treated as NULL.
        if let Some(nan) = nan_rows(col).map_err(arrow_err)? {
            nulls += nan.true_count() as u64;
            mask = and_not(&mask, &nan).map_err(arrow_err)?;
        }
        let kept = mask.true_count() as u64;
        self.nulls += nulls;
        self.below += batch.num_rows() as u64 - nulls - kept;
        let out = if kept == batch.num_rows() as u64 {
            batch
        } else {
            filter_record_batch(&batch, &mask).map_err(arrow_err)?
        };
        if out.num_rows() > 0 {
            let col = out.column(self.column);
            let opts = SortOptions { descending: true, nulls_first: false };
            let top = sort_to_indices(col, Some(opts), Some(1)).map_err(arrow_err)?;
            let candidate = take(col, &top, None).map_err(arrow_err)?;
            let bigger = match &self.max {
                None => true,
                Some(m) => gt(&candidate, m).map_err(arrow_err)?.value(0),
            };
            if bigger {
                self.max = Some(candidate);
            }
        }
        Ok(out)
    }

    /// Writes the new watermark and the counts into the stage's metrics (and so into the
    /// artifact's manifest, where the next run finds them).
    pub(crate) fn record(self, ctx: &mut StageContext<'_>, new_rows: u64) -> Result<(), StageError> {
        let value = match &self.max {
            Some(m) => to_json(m).map_err(|e| StageError::arrow("recording the watermark", e))?,
            None => self.watermark.after.clone().unwrap_or(Value::Null),
        };
        ctx.metric(WATERMARK_COLUMN, self.watermark.column.clone());
        ctx.metric(WATERMARK, value);
        ctx.metric("rows_new", new_rows);
        ctx.metric("rows_below_watermark", self.below);
        ctx.metric("rows_null_watermark", self.nulls);
        Ok(())
    }
}

/// The index of the watermark column, or a message naming it with "did you mean".
fn find_column(schema: &SchemaRef, name: &str) -> Result<usize, String> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let hint = sluice_core::diagnostic::suggestion(name, names.iter().copied())
            .unwrap_or_else(|| format!("columns: {}", names.join(", ")));
        format!("the source has no column `{name}`. {hint}")
    })
}

/// The index of the watermark column when it exists and can hold a watermark. Checked on
/// the first run too: a watermark it could store but never compare against would fail
/// every run after it.
pub(crate) fn check_column(schema: &SchemaRef, name: &str) -> Result<usize, String> {
    let i = find_column(schema, name)?;
    let ty = schema.field(i).data_type();
    if holds_watermark(ty) {
        Ok(i)
    } else {
        Err(format!(
            "column `{name}` is {ty}, which cannot hold a watermark; use a number, date, timestamp or string column"
        ))
    }
}

/// Whether a column of type `ty` is ordered the way a watermark needs.
fn holds_watermark(ty: &DataType) -> bool {
    ty.is_integer()
        || ty.is_floating()
        || matches!(
            ty,
            DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
        )
}

/// The rows of a float column that hold NaN (`None` for other columns).
fn nan_rows(col: &ArrayRef) -> Result<Option<BooleanArray>, arrow::error::ArrowError> {
    if !col.data_type().is_floating() {
        return Ok(None);
    }
    let f = cast(col, &DataType::Float64)?;
    let f = f.as_primitive::<Float64Type>();
    Ok(Some(f.iter().map(|v| Some(v.is_some_and(f64::is_nan))).collect()))
}

/// JSON has no infinity: an infinite float watermark is kept as this text.
const INFINITY: &str = "Infinity";

/// A one-element array of type `ty` holding the JSON watermark.
fn from_json(v: &Value, ty: &DataType) -> Result<ArrayRef, arrow::error::ArrowError> {
    let raw: ArrayRef = match v {
        Value::String(s) if ty.is_floating() && s.trim_start_matches('-') == INFINITY => {
            let inf = if s.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY };
            std::sync::Arc::new(Float64Array::from(vec![inf]))
        }
        Value::Number(n) if ty.is_integer() => match n.as_i64() {
            Some(i) => std::sync::Arc::new(Int64Array::from(vec![i])),
            None => std::sync::Arc::new(Float64Array::from(vec![n.as_f64().unwrap_or(f64::NAN)])),
        },
        Value::Number(n) => std::sync::Arc::new(Float64Array::from(vec![n.as_f64().unwrap_or(f64::NAN)])),
        Value::String(s) => std::sync::Arc::new(StringArray::from(vec![s.as_str()])),
        other => std::sync::Arc::new(StringArray::from(vec![other.to_string()])),
    };
    let opts = arrow::compute::CastOptions { safe: false, ..Default::default() };
    arrow::compute::cast_with_options(&raw, ty, &opts)
}

/// The watermark as JSON: a number for numeric columns, else its text (ISO 8601 for dates
/// and timestamps).
fn to_json(one: &ArrayRef) -> Result<Value, arrow::error::ArrowError> {
    let ty = one.data_type();
    if ty.is_integer() {
        let a = cast(one, &DataType::Int64)?;
        let a = a.as_any().downcast_ref::<Int64Array>().map(|a| a.value(0));
        return Ok(a.map_or(Value::Null, Value::from));
    }
    if ty.is_floating() {
        let a = cast(one, &DataType::Float64)?;
        let v = a.as_any().downcast_ref::<Float64Array>().map(|a| a.value(0));
        return Ok(match v {
            // Stored faithfully: a `null` watermark would make the next run read everything.
            Some(f) if f.is_infinite() => {
                Value::from(if f > 0.0 { INFINITY.to_string() } else { format!("-{INFINITY}") })
            }
            v => v.and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number),
        });
    }
    let a = cast(one, &DataType::Utf8)?;
    let s = a.as_any().downcast_ref::<StringArray>().map(|a| a.value(0).to_string());
    Ok(s.map_or(Value::Null, Value::String))
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn only_ordered_columns_hold_a_watermark() {
        assert!(holds_watermark(&DataType::Int32) && holds_watermark(&DataType::Decimal128(10, 2)));
        assert!(holds_watermark(&DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))));
        assert!(!holds_watermark(&DataType::Boolean));
        assert!(!holds_watermark(&DataType::Binary));
    }

    #[test]
    fn watermarks_round_trip_through_json_for_each_kind_of_column() {
        for (ty, json) in [
            (DataType::Int64, Value::from(42)),
            (DataType::Int32, Value::from(-7)),
            (DataType::Float64, serde_json::json!(2.5)),
            (DataType::Date32, Value::from("2011-12-09")),
            (DataType::Timestamp(TimeUnit::Microsecond, None), Value::from("2011-12-09T12:50:00")),
            (DataType::Utf8, Value::from("C536379")),
            (DataType::Float64, Value::from("Infinity")),
            (DataType::Float32, Value::from("-Infinity")),
        ] {
            let arr = from_json(&json, &ty).unwrap();
            assert_eq!(arr.data_type(), &ty);
            assert_eq!(to_json(&arr).unwrap(), json, "{ty}");
        }
        assert!(from_json(&Value::from("not a date"), &DataType::Date32).is_err());
    }
}
