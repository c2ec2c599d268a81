//! `scale = { UnitPrice = "standard" | "minmax" }`: rescales numeric columns in place to
//! float64, with statistics fitted on this stage's input (nulls and NaN ignored, and kept).
//! `standard` is (x − mean) / population standard deviation; `minmax` is
//! (x − min) / (max − min). A constant column scales to 0.

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

/// `x ↦ (x − offset) / divisor`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fitted {
    offset: f64,
    divisor: f64,
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
        return Ok(Fitted { offset: 0.0, divisor: 1.0 });
    }
    let fitted = match method {
        Method::MinMax => Fitted { offset: min, divisor: max - min },
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
            Fitted { offset: mean, divisor: var.sqrt() }
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
                let scaled: Float64Array = f
                    .iter()
                    .map(|v| {
                        v.map(
                            |v| if fitted.divisor > 0.0 { (v - fitted.offset) / fitted.divisor } else { 0.0 },
                        )
                    })
                    .collect();
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
    fn refuses_text_and_unknown_methods() {
        let t = batch(vec![("s", Arc::new(StringArray::from(vec!["x"])))]);
        let v = json!({ "s": "standard" });
        let issues = Scale::parse(&At::new("scale", &v)).unwrap().check(&t.schema);
        assert!(issues[0].message.contains("numeric"), "{}", issues[0].message);
        let v = json!({ "s": "zscore" });
        assert_eq!(Scale::parse(&At::new("scale", &v)).unwrap_err().key, "scale.s");
    }
}
