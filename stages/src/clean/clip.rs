//! `clip`: bounds numeric columns. Values below the lower bound become the lower bound,
//! values above the upper one the upper bound; NULL and NaN stay. Bounds are fixed
//! (`min`/`max`), quantiles of the column, or Tukey fences (`iqr = 1.5`: Q1 − 1.5·IQR,
//! Q3 + 1.5·IQR). On integer and decimal columns a bound between two values of the type is
//! moved inwards (a minimum up, a maximum down), never outwards.

use arrow::array::{ArrayRef, Scalar};
use arrow::compute::kernels::boolean::and;
use arrow::compute::kernels::cmp::{gt, gt_eq, lt, lt_eq};
use arrow::compute::kernels::zip::zip;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use rayon::prelude::*;
use serde_json::Value;
use sluice_core::StageError;
use sluice_core::registry::Issue;
use sluice_plugin::type_name;

use super::stats::{self, Round};
use super::steps::{ColRef, column_table};
use super::table::{Applied, OpError, Table};

/// Where a column's bounds come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Bounds {
    /// `{ min = 0, max = 100 }` (either may be left out).
    Fixed {
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
    },
    /// `{ quantiles = [0.01, 0.99] }`.
    Quantiles(f64, f64),
    /// `{ iqr = 1.5 }`.
    Iqr(f64),
}

/// `clip = { UnitPrice = { quantiles = [0.01, 0.99] }, Quantity = { min = 0 } }`.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Column → bounds.
    pub columns: Vec<(ColRef, Bounds)>,
}

const EXAMPLE: &str = "clip = { Quantity = { min = 0, max = 1000 } }";

fn parse_bounds(v: &Value, key: &str) -> Result<Bounds, Issue> {
    let bad = |m: String| {
        Issue::new(key, m)
            .with_help("write { min = 0, max = 100 }, { quantiles = [0.01, 0.99] } or { iqr = 1.5 }")
    };
    let t = v.as_object().ok_or_else(|| bad(format!("clip bounds must be a table, found {v}")))?;
    let num = |k: &str| -> Result<Option<f64>, Issue> {
        match t.get(k) {
            None => Ok(None),
            Some(x) => x.as_f64().map(Some).ok_or_else(|| {
                Issue::new(format!("{key}.{k}"), format!("`{k}` must be a number, found {x}"))
            }),
        }
    };
    if let Some(other) = t.keys().find(|k| !matches!(k.as_str(), "min" | "max" | "quantiles" | "iqr")) {
        return Err(bad(format!("unknown key `{other}` in clip bounds")));
    }
    let given = ["min", "max", "quantiles", "iqr"].map(|k| t.contains_key(k));
    match given {
        [_, _, false, false] if given[0] || given[1] => {
            let (min, max) = (num("min")?, num("max")?);
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                return Err(Issue::new(key, format!("`min` ({lo}) is above `max` ({hi})")));
            }
            Ok(Bounds::Fixed { min, max })
        }
        [false, false, true, false] => {
            let qkey = format!("{key}.quantiles");
            let q = t
                .get("quantiles")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>());
            match q.as_deref() {
                Some(&[lo, hi]) if (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo <= hi => {
                    Ok(Bounds::Quantiles(lo, hi))
                }
                _ => Err(Issue::new(
                    qkey,
                    "`quantiles` must be two numbers [low, high] with 0 ≤ low ≤ high ≤ 1",
                )),
            }
        }
        [false, false, false, true] => match num("iqr")? {
            Some(k) if k >= 0.0 => Ok(Bounds::Iqr(k)),
            _ => {
                Err(Issue::new(format!("{key}.iqr"), "`iqr` must be a number ≥ 0 (1.5 is the usual choice)"))
            }
        },
        _ => Err(bad("give `min`/`max`, or `quantiles`, or `iqr` — one kind of bound".into())),
    }
}

impl Clip {
    /// Reads the op's config.
    pub fn parse(value: &Value, key: &str) -> Result<Clip, Vec<Issue>> {
        let mut columns = Vec::new();
        let mut issues = Vec::new();
        for (col, v) in column_table(value, key, "clip", EXAMPLE)? {
            match parse_bounds(v, &col.key) {
                Ok(b) => columns.push((col, b)),
                Err(i) => issues.push(i),
            }
        }
        if issues.is_empty() { Ok(Clip { columns }) } else { Err(issues) }
    }

    /// Checks the columns exist and are numbers, and that fixed bounds leave a value of the
    /// column's type between them; the schema is unchanged.
    pub fn derive(&self, schema: &SchemaRef, issues: &mut Vec<Issue>) -> SchemaRef {
        for (c, bounds) in &self.columns {
            let Some(i) = c.find(schema, issues) else { continue };
            let ty = schema.field(i).data_type();
            if !stats::is_numeric(ty) {
                issues.push(Issue::new(
                    &c.key,
                    format!("`clip` works on numbers, but column `{}` is {}", c.name, type_name(ty)),
                ));
            } else if let Bounds::Fixed { min, max } = *bounds
                && let Err((a, b)) = typed_bounds(min, max, ty)
            {
                issues.push(crossed(c, ty, "`min` and `max`", min, max, &a, &b));
            }
        }
        schema.clone()
    }

    /// Clips column by column; statistics are taken from the data at this step.
    pub fn apply(&self, mut table: Table) -> Result<Applied, OpError> {
        let mut clipped = 0u64;
        for (c, bounds) in &self.columns {
            let Ok(i) = table.schema.index_of(&c.name) else { continue };
            let (lo, hi) = match *bounds {
                Bounds::Fixed { min, max } => (min, max),
                Bounds::Quantiles(lo, hi) => match stats::quantiles(&table.column(i)?, &[lo, hi])? {
                    Some(q) => (q.first().copied(), q.get(1).copied()),
                    None => (None, None),
                },
                Bounds::Iqr(k) => match stats::quantiles(&table.column(i)?, &[0.25, 0.75])? {
                    Some(q) => match (q.first(), q.get(1)) {
                        (Some(&q1), Some(&q3)) => (Some(q1 - k * (q3 - q1)), Some(q3 + k * (q3 - q1))),
                        _ => (None, None),
                    },
                    None => (None, None),
                },
            };
            let ty = table.schema.field(i).data_type().clone();
            let (lo, hi) = typed_bounds(lo, hi, &ty).map_err(|(a, b)| {
                let from = match bounds {
                    Bounds::Fixed { .. } => "`min` and `max`",
                    Bounds::Quantiles(..) => "the quantiles of the data",
                    Bounds::Iqr(_) => "the IQR fences of the data",
                };
                OpError::Issue(crossed(c, &ty, from, lo, hi, &a, &b))
            })?;
            if lo.is_none() && hi.is_none() {
                continue;
            }
            // Arrow orders NaN above +inf (and -NaN below -inf): keep NaN out of the masks.
            let infinity = if ty.is_floating() {
                Some((
                    stats::number_as(f64::NEG_INFINITY, &ty).ok(),
                    stats::number_as(f64::INFINITY, &ty).ok(),
                ))
            } else {
                None
            };
            let schema = table.schema.clone();
            let Table { batches, ids, .. } = table;
            let done = batches
                .into_par_iter()
                .map(|b| {
                    let (col, n) = clip_column(b.column(i), lo.as_ref(), hi.as_ref(), infinity.as_ref())?;
                    let mut cols = b.columns().to_vec();
                    cols[i] = col;
                    let b = RecordBatch::try_new(b.schema(), cols)
                        .map_err(|e| StageError::arrow("clipping", e))?;
                    Ok((b, n))
                })
                .collect::<Result<Vec<_>, StageError>>()?;
            clipped += done.iter().map(|(_, n)| n).sum::<u64>();
            table = Table::new(schema, done.into_iter().map(|(b, _)| b).collect(), ids);
        }
        Ok(Applied::same(table).with("clipped", clipped))
    }
}

/// The bounds as one-row arrays of `ty`, each moved inwards to a value `ty` holds (the
/// lower one up, the upper one down: on an integer column a minimum of 0.5 is 1, on a
/// decimal(10,2) column a maximum of 4.999 is 4.99), so no value ends outside a bound as
/// written. A bound outside the type's range cannot be crossed: `None`, no clipping on that
/// side. When the moved bounds cross, no value of `ty` lies between the bounds: `Err` with
/// the moved bounds as text.
fn typed_bounds(
    lo: Option<f64>,
    hi: Option<f64>,
    ty: &DataType,
) -> Result<(Option<ArrayRef>, Option<ArrayRef>), (String, String)> {
    let lo = lo.and_then(|v| stats::bound_as(v, ty, Round::Up));
    let hi = hi.and_then(|v| stats::bound_as(v, ty, Round::Down));
    if let (Some(a), Some(b)) = (&lo, &hi)
        && gt(a, b).is_ok_and(|above| above.value(0))
    {
        let text = |x: &ArrayRef| array_value_to_string(x, 0).unwrap_or_else(|_| "?".into());
        return Err((text(a), text(b)));
    }
    Ok((lo, hi))
}

/// The issue for bounds with no value of the column's type between them: clipping to them
/// would put values outside one bound or the other.
fn crossed(
    c: &ColRef,
    ty: &DataType,
    from: &str,
    lo: Option<f64>,
    hi: Option<f64>,
    lo_moved: &str,
    hi_moved: &str,
) -> Issue {
    let show = |v: Option<f64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    Issue::new(
        &c.key,
        format!(
            "{from} of column `{}` ({} and {}) have no {} value between them: moved inwards they are {lo_moved} and {hi_moved}",
            c.name,
            show(lo),
            show(hi),
            type_name(ty)
        ),
    )
    .with_help("widen the bounds, or cast the column to float64 first")
}

type Infinities = (Option<ArrayRef>, Option<ArrayRef>);

fn clip_column(
    col: &ArrayRef,
    lo: Option<&ArrayRef>,
    hi: Option<&ArrayRef>,
    infinity: Option<&Infinities>,
) -> Result<(ArrayRef, u64), StageError> {
    let err = |e| StageError::arrow("clipping", e);
    let mut out = col.clone();
    let mut n = 0u64;
    if let Some(lo) = lo {
        let mut below = lt(&out, &Scalar::new(lo.clone())).map_err(err)?;
        if let Some((Some(neg), _)) = infinity {
            below = and(&below, &gt_eq(&out, &Scalar::new(neg.clone())).map_err(err)?).map_err(err)?;
        }
        n += below.true_count() as u64;
        out = zip(&below, &Scalar::new(lo.clone()), &out).map_err(err)?;
    }
    if let Some(hi) = hi {
        let mut above = gt(&out, &Scalar::new(hi.clone())).map_err(err)?;
        if let Some((_, Some(pos))) = infinity {
            above = and(&above, &lt_eq(&out, &Scalar::new(pos.clone())).map_err(err)?).map_err(err)?;
        }
        n += above.true_count() as u64;
        out = zip(&above, &Scalar::new(hi.clone()), &out).map_err(err)?;
    }
    Ok((out, n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Decimal128Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Decimal128Type, Field, Float64Type, Int64Type, Schema};
    use serde_json::json;

    use super::*;

    fn input() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(-5), Some(1), None, Some(3), Some(100)])),
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(2.0),
                    Some(3.0),
                    Some(f64::NAN),
                    Some(1000.0),
                ])),
                Arc::new(StringArray::from(vec!["a", "b", "c", "d", "e"])),
            ],
        )
        .unwrap();
        Table::from_input(schema, vec![b])
    }

    #[test]
    fn fixed_bounds_on_ints_move_inwards() {
        let c = Clip::parse(&json!({"i": {"min": 0.5, "max": 10}}), "clip").unwrap();
        let a = c.apply(input()).unwrap();
        let col = a.table.column(0).unwrap();
        let v: Vec<_> = col.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(v, [Some(1), Some(1), None, Some(3), Some(10)]);
        assert_eq!(a.extra, [("clipped", json!(2))]);
    }

    fn decimals(values: Vec<Option<i128>>) -> Table {
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Decimal128(10, 2), true)]));
        let d = Decimal128Array::from(values).with_precision_and_scale(10, 2).unwrap();
        Table::from_input(schema.clone(), vec![RecordBatch::try_new(schema, vec![Arc::new(d)]).unwrap()])
    }

    fn decimal_values(t: &Table) -> Vec<Option<i128>> {
        t.column(0).unwrap().as_primitive::<Decimal128Type>().iter().collect()
    }

    /// Regression: decimal bounds were rounded to the nearest value of the scale, outwards
    /// half the time (max 4.999 became 5.00, min -0.005 became -0.01).
    #[test]
    fn fixed_bounds_on_decimals_move_inwards() {
        // -0.02, -0.01, 0.00, 4.99, 5.00 (hundredths).
        let t = decimals(vec![Some(-2), Some(-1), Some(0), Some(499), Some(500), None]);
        let c = Clip::parse(&json!({"d": {"min": -0.005, "max": 4.999}}), "clip").unwrap();
        let a = c.apply(t).unwrap();
        assert_eq!(decimal_values(&a.table), [Some(0), Some(0), Some(0), Some(499), Some(499), None]);
        assert_eq!(a.extra, [("clipped", json!(3))]);
        // A bound the scale holds exactly stays as it is.
        let t = decimals(vec![Some(-2), Some(150), Some(151)]);
        let a = Clip::parse(&json!({"d": {"min": -0.01, "max": 1.5}}), "clip").unwrap().apply(t).unwrap();
        assert_eq!(decimal_values(&a.table), [Some(-1), Some(150), Some(150)]);
    }

    #[test]
    fn quantile_bounds_on_decimals_move_inwards() {
        // 0.01, 0.02: the median 0.015 as both bounds leaves no decimal(10,2) value between.
        let c = Clip::parse(&json!({"d": {"quantiles": [0.5, 0.5]}}), "clip").unwrap();
        let Err(OpError::Issue(issue)) = c.apply(decimals(vec![Some(1), Some(2)])) else {
            panic!("crossed bounds accepted")
        };
        assert!(issue.message.contains("moved inwards they are 0.02 and 0.01"), "{}", issue.message);
        // 0.01, 0.02, 0.03, 0.10: quantiles 0.25 → 0.0175 and 0.75 → 0.0475, inwards 0.02, 0.04.
        let t = decimals(vec![Some(1), Some(2), Some(3), Some(10)]);
        let c = Clip::parse(&json!({"d": {"quantiles": [0.25, 0.75]}}), "clip").unwrap();
        assert_eq!(decimal_values(&c.apply(t).unwrap().table), [Some(2), Some(2), Some(3), Some(4)]);
    }

    /// Regression: integer bounds that cross once moved inwards (-0.5 → 0, -0.2 → -1) were
    /// accepted, and clipped every value to one bound or the other, counted twice.
    #[test]
    fn bounds_with_no_value_of_the_type_between_them_are_an_error() {
        let c = Clip::parse(&json!({"i": {"min": -0.5, "max": -0.2}}), "clip").unwrap();
        let mut issues = Vec::new();
        c.derive(&input().schema, &mut issues);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "clip.i");
        assert_eq!(
            issues[0].message,
            "`min` and `max` of column `i` (-0.5 and -0.2) have no int64 value between them: moved inwards they are 0 and -1"
        );
        assert!(matches!(c.apply(input()), Err(OpError::Issue(i)) if i.key == "clip.i"));
        // On a float column the same bounds are fine.
        let mut issues = Vec::new();
        Clip::parse(&json!({"f": {"min": -0.5, "max": -0.2}}), "clip")
            .unwrap()
            .derive(&input().schema, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        // Equal integer bounds are one value, not a crossing.
        let a = Clip::parse(&json!({"i": {"min": 2, "max": 2}}), "clip").unwrap().apply(input()).unwrap();
        assert_eq!(a.extra, [("clipped", json!(4))]);
    }

    #[test]
    fn quantiles_and_iqr_come_from_the_data() {
        let a =
            Clip::parse(&json!({"f": {"quantiles": [0.0, 0.5]}}), "clip").unwrap().apply(input()).unwrap();
        let col = a.table.column(1).unwrap();
        let v: Vec<f64> = col.as_primitive::<Float64Type>().values().to_vec();
        // Quantiles over 1, 2, 3, 1000 (NaN skipped): median 2.5.
        assert_eq!(&v[..3], [1.0, 2.0, 2.5]);
        assert!(v[3].is_nan());
        assert_eq!(v[4], 2.5);
        let a = Clip::parse(&json!({"i": {"iqr": 1.5}}), "clip").unwrap().apply(input()).unwrap();
        let col = a.table.column(0).unwrap();
        // Over -5, 1, 3, 100: Q1 = -0.5, Q3 = 27.25, fences -42.125 and 68.875.
        assert_eq!(col.as_primitive::<Int64Type>().value(4), 68);
    }

    #[test]
    fn config_and_type_errors() {
        assert_eq!(Clip::parse(&json!({"f": {"min": 2, "max": 1}}), "clip").unwrap_err()[0].key, "clip.f");
        assert_eq!(
            Clip::parse(&json!({"f": {"quantiles": [0.9, 0.1]}}), "clip").unwrap_err()[0].key,
            "clip.f.quantiles"
        );
        assert!(Clip::parse(&json!({"f": {"min": 0, "iqr": 1}}), "clip").is_err());
        assert!(Clip::parse(&json!({"f": 3}), "clip").is_err());
        let mut issues = Vec::new();
        Clip::parse(&json!({"s": {"min": 0}}), "clip").unwrap().derive(&input().schema, &mut issues);
        assert_eq!(issues[0].message, "`clip` works on numbers, but column `s` is string");
    }

    #[test]
    fn all_null_and_empty_columns_are_left_alone() {
        let schema = Arc::new(Schema::new(vec![Field::new("f", DataType::Float64, true)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(vec![None, None]))])
            .unwrap();
        let c = Clip::parse(&json!({"f": {"iqr": 1.5}}), "clip").unwrap();
        assert_eq!(c.apply(Table::from_input(schema.clone(), vec![b])).unwrap().table.rows(), 2);
        assert_eq!(c.apply(Table::from_input(schema, vec![])).unwrap().table.rows(), 0);
    }
}
