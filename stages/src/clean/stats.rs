//! Column statistics that `fill_nulls` and `clip` derive their values from: mean,
//! quantiles (linear interpolation, as numpy and pandas do by default) and mode.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use sluice_core::StageError;

/// Whether `ty` is a number type the numeric ops take.
pub fn is_numeric(ty: &DataType) -> bool {
    ty.is_numeric()
}

/// The non-NULL, non-NaN values of a numeric column as f64.
fn finite_values(col: &ArrayRef) -> Result<Vec<f64>, StageError> {
    let f = cast_with_options(col, &DataType::Float64, &CastOptions::default())
        .map_err(|e| StageError::arrow("reading numbers", e))?;
    let f = f.as_primitive::<arrow::datatypes::Float64Type>();
    Ok(f.iter().flatten().filter(|v| !v.is_nan()).collect())
}

/// Mean of the non-NULL values; `None` when there are none.
pub fn mean(col: &ArrayRef) -> Result<Option<f64>, StageError> {
    let values = finite_values(col)?;
    if values.is_empty() {
        return Ok(None);
    }
    Ok(Some(values.iter().sum::<f64>() / values.len() as f64))
}

/// Quantiles `qs` (each in 0..=1) of the non-NULL values; `None` when there are none.
pub fn quantiles(col: &ArrayRef, qs: &[f64]) -> Result<Option<Vec<f64>>, StageError> {
    let mut values = finite_values(col)?;
    if values.is_empty() {
        return Ok(None);
    }
    values.sort_unstable_by(f64::total_cmp);
    let last = (values.len() - 1) as f64;
    Ok(Some(
        qs.iter()
            .map(|q| {
                let pos = q.clamp(0.0, 1.0) * last;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
            })
            .collect(),
    ))
}

/// Index of the most frequent non-NULL value (ties: the one seen first); `None` when every
/// value is NULL.
pub fn mode(col: &ArrayRef) -> Result<Option<usize>, StageError> {
    let converter = RowConverter::new(vec![SortField::new(col.data_type().clone())])
        .map_err(|e| StageError::arrow("counting values", e))?;
    let rows = converter
        .convert_columns(std::slice::from_ref(col))
        .map_err(|e| StageError::arrow("counting values", e))?;
    let mut counts: HashMap<&[u8], (usize, usize)> = HashMap::new();
    for i in 0..col.len() {
        if col.is_valid(i) {
            counts.entry(rows.row(i).data()).or_insert((0, i)).0 += 1;
        }
    }
    Ok(counts.values().max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1))).map(|&(_, first)| first))
}

/// A one-row array of type `ty` holding `v` (rounded first when `ty` is an integer type).
pub fn number_as(v: f64, ty: &DataType) -> Result<ArrayRef, String> {
    let v = if ty.is_integer() { v.round() } else { v };
    let array: ArrayRef = std::sync::Arc::new(Float64Array::from(vec![v]));
    let options = CastOptions { safe: false, ..Default::default() };
    cast_with_options(&array, ty, &options).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn mean_and_quantiles_skip_nulls() {
        let col: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(2), Some(3), Some(10)]));
        assert_eq!(mean(&col).unwrap(), Some(4.0));
        assert_eq!(quantiles(&col, &[0.0, 0.5, 1.0, 0.25]).unwrap(), Some(vec![1.0, 2.5, 10.0, 1.75]));
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>, None]));
        assert_eq!(mean(&nulls).unwrap(), None);
        assert_eq!(quantiles(&nulls, &[0.5]).unwrap(), None);
    }

    #[test]
    fn mode_prefers_the_first_of_equals_and_ignores_nulls() {
        let col: ArrayRef =
            Arc::new(StringArray::from(vec![None, Some("b"), Some("ä"), None, Some("ä"), Some("b")]));
        assert_eq!(mode(&col).unwrap(), Some(1));
        let nulls: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>, None, None]));
        assert_eq!(mode(&nulls).unwrap(), None);
    }

    #[test]
    fn numbers_round_for_integer_columns() {
        let a = number_as(2.5, &DataType::Int64).unwrap();
        assert_eq!(a.as_primitive::<arrow::datatypes::Int64Type>().value(0), 3);
        assert!(number_as(1e30, &DataType::Int32).is_err());
    }
}
