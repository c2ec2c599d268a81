//! `scale = { UnitPrice = "standard" | "minmax" }`: rescales numeric columns in place to
//! float64, with statistics fitted on this stage's input (nulls and NaN ignored, and kept).
//! `standard` is (x − mean) / population standard deviation; `minmax` is
//! (x − min) / (max − min). A constant column scales to 0 (for `standard`, one whose
//! variance is within rounding of 0, by scikit-learn's rule). An infinite value is kept in
//! the statistics, as pandas keeps it: they are no longer finite and the column is scaled
//! with IEEE arithmetic, which gives NaN where pandas gives NaN rather than a made-up 0.

use std::sync::Arc;

use arrow::array::{Array, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use sluice_core::registry::Issue;

use super::columns::{Accepts, find};
use super::config::At;
use super::step::{Applied, Failure, Transform};
use super::table::Table;

/// A scaling method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Standard,
    MinMax,
}

/// The `scale` transform.
#[derive(Debug)]
pub(crate) struct Scale {
    columns: Vec<(String, String, Method)>,
}

/// `x ↦ (x − offset) / divisor`; every non-NaN value ↦ 0 when `constant`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fitted {
    offset: f64,
    divisor: f64,
    constant: bool,
}

impl Fitted {
    fn apply(self, v: f64) -> f64 {
        if v.is_nan() {
            v
        } else if self.constant {
            0.0
        } else {
            (v - self.offset) / self.divisor
        }
    }
}

/// scikit-learn's test for a constant feature (`_is_constant_feature`): a variance no larger
/// than the rounding error of computing it, so 0.1 three times (variance ~1e-35, not 0)
/// scales to 0 rather than to ±1.
fn is_constant(var: f64, mean: f64, n: u64) -> bool {
    let (n, eps) = (n as f64, f64::EPSILON);
    var <= n * eps * var + (n * mean * eps).powi(2)
}

fn floats(a: &dyn Array) -> Result<Float64Array, Failure> {
    let f = cast(a, &DataType::Float64)?;
    Ok(f.as_any().downcast_ref::<Float64Array>().cloned().unwrap_or_else(|| Float64Array::new_null(0)))
}

fn fit(method: Method, arrays: &[Arc<dyn Array>]) -> Result<Fitted, Failure> {
    let mut n = 0u64;
    let (mut sum, mut min, mut max) = (0.0f64, f64::INFINITY, f64::NEG_INFINITY);
    let mut columns = Vec::with_capacity(arrays.len());
    for a in arrays {
        let f = floats(a.as_ref())?;
        for v in f.iter().flatten().filter(|v| !v.is_nan()) {
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        columns.push(f);
    }
    if n == 0 {
        return Ok(Fitted { offset: 0.0, divisor: 1.0, constant: false });
    }
    let fitted = match method {
        // `max == min` only for a constant column; an infinite end makes the range
        // infinite or NaN, and the arithmetic then gives 0 or NaN as pandas' does.
        Method::MinMax => Fitted { offset: min, divisor: max - min, constant: max == min },
        Method::Standard => {
            // Two passes: the mean first, then squared deviations, which stays accurate
            // where the one-pass formula cancels catastrophically.
            let mean = sum / n as f64;
            let var = columns
                .iter()
                .flat_map(|f| f.iter().flatten().filter(|v| !v.is_nan()).collect::<Vec<_>>())
                .map(|v| (v - mean) * (v - mean))
                .sum::<f64>()
                / n as f64;
            // With an infinity the mean is ±inf or NaN and the variance NaN: not constant,
            // and every value comes out NaN, as pandas' (x - x.mean()) / x.std(ddof=0).
            let constant = mean.is_finite() && var.is_finite() && is_constant(var, mean, n);
            Fitted { offset: mean, divisor: var.sqrt(), constant }
        }
    };
    Ok(fitted)
}

impl Scale {
    /// Reads `scale = { COLUMN = "standard" | "minmax", ... }`.
    pub fn parse(at: &At<'_>) -> Result<Self, Issue> {
        let mut columns = Vec::new();
        for (name, v) in at.entries()? {
            let method = match v.str()? {
                "standard" => Method::Standard,
                "minmax" => Method::MinMax,
                other => {
                    return Err(v
                        .issue(format!("unknown scaling `{other}`"))
                        .with_help("use \"standard\" or \"minmax\""));
                }
            };
            columns.push((name.to_string(), v.key.clone(), method));
        }
        if columns.is_empty() {
            return Err(at.issue("`scale` needs at least one column"));
        }
        Ok(Scale { columns })
    }
}

impl Transform for Scale {
    fn op(&self) -> &'static str {
        "scale"
    }

    fn check(&self, input: &Schema) -> Vec<Issue> {
        self.columns
            .iter()
            .filter_map(|(c, key, _)| find(input, c, Accepts::Numeric, key, "scale").err())
            .collect()
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        let mut plan = Vec::with_capacity(self.columns.len());
        for (c, key, method) in &self.columns {
            let (index, _) = find(&input.schema, c, Accepts::Numeric, key, "scale")?;
            plan.push((index, fit(*method, &input.column(index))?));
        }
        let fields: Vec<Field> = input
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| match plan.iter().any(|(j, _)| *j == i) {
                true => Field::new(f.name(), DataType::Float64, true),
                false => f.as_ref().clone(),
            })
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, input.schema.metadata().clone()));
        let table = input.map_batches(schema, |b| {
            let mut columns = b.columns().to_vec();
            for (index, fitted) in &plan {
                let f = floats(b.column(*index).as_ref())?;
                let scaled: Float64Array = f.iter().map(|v| v.map(|v| fitted.apply(v))).collect();
                columns[*index] = Arc::new(scaled);
            }
            Ok(columns)
        })?;
        Ok(table.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use serde_json::json;

    use super::*;
    use crate::feature::testing::{batch, f64s};

    #[test]
    fn standard_and_minmax_with_nulls_and_constants() {
        let t = batch(vec![
            ("a", Arc::new(Int64Array::from(vec![Some(1), Some(3), None, Some(5)]))),
            ("b", Arc::new(Int64Array::from(vec![Some(2), Some(4), Some(6), None]))),
            ("c", Arc::new(Float64Array::from(vec![7.0, 7.0, 7.0, 7.0]))),
        ]);
        let v = json!({ "a": "standard", "b": "minmax", "c": "standard" });
        let out = Scale::parse(&At::new("scale", &v)).unwrap().apply(t).unwrap().table;
        let sd = (8.0f64 / 3.0).sqrt();
        assert_eq!(f64s(&out, "a"), vec![Some(-2.0 / sd), Some(0.0), None, Some(2.0 / sd)]);
        assert_eq!(f64s(&out, "b"), vec![Some(0.0), Some(0.5), Some(1.0), None]);
        assert_eq!(f64s(&out, "c"), vec![Some(0.0); 4]);
    }

    #[test]
    fn a_constant_column_is_0_even_when_its_variance_is_rounding_error() {
        // The mean of 0.1 three times is 0.10000000000000002: each deviation is -1.4e-17,
        // and dividing by their RMS gave -1.0 for every row.
        let t = batch(vec![
            ("x", Arc::new(Float64Array::from(vec![Some(0.1), Some(0.1), None, Some(0.1), Some(f64::NAN)]))),
            ("y", Arc::new(Float64Array::from(vec![0.3; 5]))),
        ]);
        let v = json!({ "x": "standard", "y": "minmax" });
        let out = Scale::parse(&At::new("scale", &v)).unwrap().apply(t).unwrap().table;
        let x = f64s(&out, "x");
        assert_eq!(x[..4], [Some(0.0), Some(0.0), None, Some(0.0)]);
        assert!(x[4].unwrap().is_nan(), "NaN stays NaN");
        assert_eq!(f64s(&out, "y"), vec![Some(0.0); 5]);
        // A small but real spread is not constant.
        assert!(!is_constant(0.25, 1.0, 3));
        assert!(!is_constant(1e-20, 0.0, 3), "a tiny spread around 0 is a spread");
    }

    #[test]
    fn an_infinite_value_gives_nan_as_pandas_does_not_zeros() {
        let t = batch(vec![
            ("s", Arc::new(Float64Array::from(vec![1.0, 2.0, f64::INFINITY]))),
            ("m", Arc::new(Float64Array::from(vec![1.0, 2.0, f64::INFINITY]))),
        ]);
        let v = json!({ "s": "standard", "m": "minmax" });
        let out = Scale::parse(&At::new("scale", &v)).unwrap().apply(t).unwrap().table;
        // pandas: (s - s.mean()) / s.std(ddof=0) → NaN, NaN, NaN
        assert!(f64s(&out, "s").iter().all(|v| v.is_some_and(f64::is_nan)), "{:?}", f64s(&out, "s"));
        // pandas: (m - m.min()) / (m.max() - m.min()) → 0, 0, NaN
        let m = f64s(&out, "m");
        assert_eq!(m[..2], [Some(0.0), Some(0.0)]);
        assert!(m[2].unwrap().is_nan());
    }

    #[test]
    fn refuses_text_and_unknown_methods() {
        let t = batch(vec![("s", Arc::new(StringArray::from(vec!["x"])))]);
        let v = json!({ "s": "standard" });
        let issues = Scale::parse(&At::new("scale", &v)).unwrap().check(&t.schema);
        assert!(issues[0].message.contains("numeric"), "{}", issues[0].message);
        let v = json!({ "s": "zscore" });
        assert_eq!(Scale::parse(&At::new("scale", &v)).unwrap_err().key, "scale.s");
    }
}
