//! Time-series features over ordered partitions: `lags` (the value N rows earlier) and
//! `rolling` (an aggregate over the last N rows, the current one included). Rows are ordered
//! by `order_by` within each `by` group, ties by input position; the output keeps the input's
//! row order and adds columns `COLUMN_lag_N` and `COLUMN_rolling_N_AGG`.
//!
//! Rolling sums and means of integer and float columns are computed here rather than by the
//! query: its sliding SUM adds and subtracts plainly, so one NaN poisons every later window
//! of the group and a large value leaving the window takes the small ones with it
//! ([1e20, 1, 1] → 0 instead of 2). Integers are summed exactly, floats with Neumaier
//! compensation and NaN and infinities counted apart, as pandas' rolling sum does.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, PrimitiveArray, RecordBatch, UInt64Array,
};
use arrow::compute::{SortColumn, cast, concat_batches, lexsort_to_indices};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, UInt64Type};
use sluice_core::registry::Issue;

use super::columns::{Accepts, find};
use super::config::At;
use super::step::{Applied, Failure, Transform};
use super::table::{ROW_ID, Table, quote};

/// What both window transforms share: columns, partitions and order.
#[derive(Debug, Clone)]
struct Frame {
    columns: Vec<(String, String)>,
    by: Vec<(String, String)>,
    order_by: (String, String),
}

impl Frame {
    fn parse(at: &At<'_>) -> Result<Self, Issue> {
        let column = at.require("column")?;
        let columns = list(&column)?;
        let by = match at.get("by") {
            Some(b) => list(&b)?,
            None => Vec::new(),
        };
        let o = at.require("order_by")?;
        Ok(Frame { columns, by, order_by: (o.str()?.to_string(), o.key.clone()) })
    }

    /// Checks the columns, and that the columns `COLUMN_SUFFIX` the transform adds are new.
    fn check(
        &self,
        input: &arrow::datatypes::Schema,
        accepts: Accepts,
        what: &str,
        suffixes: &[String],
    ) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (c, key) in &self.columns {
            issues.extend(find(input, c, accepts, key, what).err());
        }
        for (c, key) in &self.by {
            issues.extend(find(input, c, Accepts::Ordered, key, "by").err());
        }
        issues.extend(find(input, &self.order_by.0, Accepts::Ordered, &self.order_by.1, "order_by").err());
        if input.index_of(ROW_ID).is_ok() {
            issues.push(
                Issue::new(
                    &self.order_by.1,
                    format!("the input has a column `{ROW_ID}`, a name sluice reserves"),
                )
                .with_help("rename it first (derive or a clean stage's rename)"),
            );
        }
        // Each new column must be new: `v_lag_1` twice (or already in the input) would make
        // the generated query ambiguous.
        let mut seen = std::collections::HashSet::new();
        for (c, key) in &self.columns {
            for suffix in suffixes {
                let name = format!("{c}_{suffix}");
                if input.index_of(&name).is_ok() || !seen.insert(name.clone()) {
                    issues.push(
                        Issue::new(key, format!("{what} would create column `{name}` twice")).with_help(
                            "list each column, period and aggregate once, and rename an input column with this name",
                        ),
                    );
                }
            }
        }
        issues
    }

    /// `OVER (...)` with the frame `rows` (e.g. `ROWS BETWEEN 6 PRECEDING AND CURRENT ROW`).
    fn over(&self, schema: &Schema, rows: &str) -> String {
        let mut over = String::from("OVER (");
        if !self.by.is_empty() {
            let by: Vec<String> = self.by.iter().map(|(c, _)| partition_key(schema, c)).collect();
            over.push_str(&format!("PARTITION BY {} ", by.join(", ")));
        }
        over.push_str(&format!(
            "ORDER BY {} ASC NULLS LAST, {} ASC {rows})",
            quote(&self.order_by.0),
            quote(ROW_ID)
        ));
        over
    }

    /// Runs `SELECT *, <extra>` in input order, without the helper row column.
    fn run(&self, input: Table, extra: &[String]) -> Result<Table, Failure> {
        let mut keep: Vec<String> = input.schema.fields().iter().map(|f| quote(f.name())).collect();
        keep.extend(extra.iter().cloned());
        let sql = format!("SELECT {} FROM t ORDER BY {}", keep.join(", "), quote(ROW_ID));
        input.with_row_ids()?.query(&sql)
    }
}

/// A `by` column as a partition key. -0.0 and 0.0 are one group, as they are one key of
/// `group_by` and `interactions`; the query's partitions compare bits and would split them.
fn partition_key(schema: &Schema, column: &str) -> String {
    let c = quote(column);
    match schema.field_with_name(column).map(|f| f.data_type().is_floating()) {
        Ok(true) => format!("CASE WHEN {c} = 0 THEN 0 ELSE {c} END"),
        _ => c,
    }
}

/// A column or a list of columns, each with its key path.
fn list(at: &At<'_>) -> Result<Vec<(String, String)>, Issue> {
    match at.value {
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let a = At::new(format!("{}.{i}", at.key), v);
                Ok((a.str()?.to_string(), a.key.clone()))
            })
            .collect(),
        _ => Ok(vec![(
            at.str().map_err(|_| at.expected("a column or an array of columns"))?.to_string(),
            at.key.clone(),
        )]),
    }
}

/// The `lags` transform.
#[derive(Debug)]
pub(crate) struct Lags {
    frame: Frame,
    periods: Vec<usize>,
}

impl Lags {
    /// Reads `lags = { column, by, order_by, periods }`.
    pub fn parse(at: &At<'_>) -> Result<Self, Issue> {
        at.only(&["column", "by", "order_by", "periods"], &["column", "order_by", "periods"])?;
        let p = at.require("periods")?;
        let items = p.value.as_array().ok_or_else(|| p.expected("an array of integers"))?;
        let periods = items
            .iter()
            .enumerate()
            .map(|(i, v)| At::new(format!("{}.{i}", p.key), v).positive())
            .collect::<Result<Vec<_>, _>>()?;
        if periods.is_empty() {
            return Err(p.issue("give at least one period"));
        }
        Ok(Lags { frame: Frame::parse(at)?, periods })
    }
}

impl Transform for Lags {
    fn op(&self) -> &'static str {
        "lags"
    }

    fn check(&self, input: &arrow::datatypes::Schema) -> Vec<Issue> {
        let suffixes: Vec<String> = self.periods.iter().map(|p| format!("lag_{p}")).collect();
        self.frame.check(input, Accepts::Any, "lags", &suffixes)
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        let over = self.frame.over(&input.schema, "");
        let mut extra = Vec::new();
        for (c, _) in &self.frame.columns {
            for p in &self.periods {
                extra.push(format!("lag({}, {p}) {over} AS {}", quote(c), quote(&format!("{c}_lag_{p}"))));
            }
        }
        Ok(self.frame.run(input, &extra)?.into())
    }
}

/// A rolling aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agg {
    Mean,
    Sum,
    Min,
    Max,
    Count,
}

const AGGS: &[(&str, Agg, &str)] = &[
    ("mean", Agg::Mean, "AVG"),
    ("sum", Agg::Sum, "SUM"),
    ("min", Agg::Min, "MIN"),
    ("max", Agg::Max, "MAX"),
    ("count", Agg::Count, "COUNT"),
];

/// The `rolling` transform.
#[derive(Debug)]
pub(crate) struct Rolling {
    frame: Frame,
    window: usize,
    aggs: Vec<(&'static str, Agg, &'static str)>,
}

impl Rolling {
    /// Reads `rolling = { column, by, order_by, window, aggs }`.
    pub fn parse(at: &At<'_>) -> Result<Self, Issue> {
        at.only(&["column", "by", "order_by", "window", "aggs"], &["column", "order_by", "window", "aggs"])?;
        let window = at.require("window")?.positive()?;
        let a = at.require("aggs")?;
        let mut aggs = Vec::new();
        for (i, name) in a.strings()?.iter().enumerate() {
            let Some(found) = AGGS.iter().find(|(n, _, _)| n == name) else {
                let names = AGGS.iter().map(|(n, _, _)| *n);
                let help = sluice_core::diagnostic::suggestion(name, names)
                    .unwrap_or_else(|| "aggs: mean, sum, min, max, count".to_string());
                let key = if a.value.is_array() { format!("{}.{i}", a.key) } else { a.key.clone() };
                return Err(Issue::new(key, format!("unknown rolling aggregate `{name}`")).with_help(help));
            };
            aggs.push(*found);
        }
        if aggs.is_empty() {
            return Err(a.issue("give at least one aggregate"));
        }
        Ok(Rolling { frame: Frame::parse(at)?, window, aggs })
    }
}

impl Transform for Rolling {
    fn op(&self) -> &'static str {
        "rolling"
    }

    fn check(&self, input: &arrow::datatypes::Schema) -> Vec<Issue> {
        let numeric = self.aggs.iter().any(|(_, a, _)| matches!(a, Agg::Mean | Agg::Sum));
        let suffixes: Vec<String> =
            self.aggs.iter().map(|(name, _, _)| format!("rolling_{}_{name}", self.window)).collect();
        self.frame.check(
            input,
            if numeric { Accepts::Numeric } else { Accepts::Ordered },
            "rolling",
            &suffixes,
        )
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        let schema = Arc::clone(&input.schema);
        let over =
            self.frame.over(&schema, &format!("ROWS BETWEEN {} PRECEDING AND CURRENT ROW", self.window - 1));
        // Each new column, in output order: computed here (`Some`) or by the query.
        let mut outputs: Vec<(String, Option<(String, Agg)>)> = Vec::new();
        let mut extra = Vec::new();
        for (c, _) in &self.frame.columns {
            let native = schema.field_with_name(c).is_ok_and(|f| Values::covers(f.data_type()));
            for (name, agg, func) in &self.aggs {
                let alias = format!("{c}_rolling_{}_{name}", self.window);
                if native && matches!(agg, Agg::Sum | Agg::Mean) {
                    outputs.push((alias, Some((c.clone(), *agg))));
                } else {
                    let ty = schema.field_with_name(c).map(|f| f.data_type().clone()).ok();
                    extra.push(format!(
                        "{} AS {}",
                        query_aggregate(func, *agg, c, ty.as_ref(), &over),
                        quote(&alias)
                    ));
                    outputs.push((alias, None));
                }
            }
        }
        if outputs.iter().all(|(_, native)| native.is_none()) {
            return Ok(self.frame.run(input, &extra)?.into());
        }
        // Where each row stands: its group (named by the group's first row) and its place in it.
        let order = self.frame.over(&schema, "");
        extra.push(format!("first_value({}) {order} AS {}", quote(ROW_ID), quote(GROUP)));
        extra.push(format!("row_number() {order} AS {}", quote(PLACE)));
        let mut keep: Vec<String> = schema.fields().iter().map(|f| quote(f.name())).collect();
        keep.extend(extra);
        let sql = format!("SELECT {} FROM t ORDER BY {}", keep.join(", "), quote(ROW_ID));
        let result = input.with_row_ids()?.query(&sql)?;
        let all = concat_batches(&result.schema, &result.batches)?;
        let group = cast(all.column(result.schema.index_of(GROUP)?), &DataType::UInt64)?;
        let place = cast(all.column(result.schema.index_of(PLACE)?), &DataType::UInt64)?;
        let sorted: Vec<usize> = lexsort_to_indices(
            &[
                SortColumn { values: Arc::clone(&group), options: None },
                SortColumn { values: place, options: None },
            ],
            None,
        )?
        .values()
        .iter()
        .map(|&i| i as usize)
        .collect();
        let group = group.as_primitive::<UInt64Type>().values();
        let mut fields: Vec<Field> =
            (0..schema.fields().len()).map(|i| result.schema.field(i).clone()).collect();
        let mut columns: Vec<ArrayRef> =
            (0..schema.fields().len()).map(|i| Arc::clone(all.column(i))).collect();
        for (alias, native) in &outputs {
            let column = match native {
                Some((c, agg)) => {
                    let values = Values::of(all.column(result.schema.index_of(c)?).as_ref())?;
                    values.rolling(&sorted, group, self.window, *agg)
                }
                None => Arc::clone(all.column(result.schema.index_of(alias)?)),
            };
            fields.push(Field::new(alias, column.data_type().clone(), true));
            columns.push(column);
        }
        let out = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let batches = if all.num_rows() == 0 {
            Vec::new()
        } else {
            vec![RecordBatch::try_new(Arc::clone(&out), columns)?]
        };
        Ok(Table::new(out, batches).into())
    }
}

/// Helper columns of the rolling query: the row id of the group's first row, and the
/// row's 1-based place in its group.
const GROUP: &str = "__sluice_group";
const PLACE: &str = "__sluice_place";

/// A column's values for a rolling sum or mean.
enum Values {
    /// Signed or unsigned integers, exactly (`unsigned`: the sum is uint64).
    Ints(Vec<Option<i128>>, bool),
    /// Floats as f64.
    Floats(Float64Array),
}

impl Values {
    /// Types summed here; decimals and others stay with the query.
    fn covers(ty: &DataType) -> bool {
        ty.is_integer() || matches!(ty, DataType::Float32 | DataType::Float64)
    }

    fn of(array: &dyn Array) -> Result<Values, Failure> {
        let ty = array.data_type();
        if ty.is_signed_integer() {
            let v = cast(array, &DataType::Int64)?;
            Ok(Values::Ints(v.as_primitive::<Int64Type>().iter().map(|v| v.map(i128::from)).collect(), false))
        } else if ty.is_unsigned_integer() {
            let v = cast(array, &DataType::UInt64)?;
            Ok(Values::Ints(v.as_primitive::<UInt64Type>().iter().map(|v| v.map(i128::from)).collect(), true))
        } else {
            Ok(Values::Floats(cast(array, &DataType::Float64)?.as_primitive::<Float64Type>().clone()))
        }
    }

    /// The rolling `agg` (sum or mean) of every row, in row order. `sorted` lists the rows
    /// group by group, each group in its order; `group` names each row's group.
    fn rolling(&self, sorted: &[usize], group: &[u64], window: usize, agg: Agg) -> ArrayRef {
        let rows = sorted.len();
        let mean = agg == Agg::Mean;
        match self {
            Values::Ints(v, unsigned) => {
                let mut out: Vec<Option<(i128, u64)>> = vec![None; rows];
                let (mut sum, mut n) = (0i128, 0u64);
                slide(sorted, group, window, |event| match event {
                    Slide::Enter(row) => {
                        if let Some(x) = v[row] {
                            sum += x;
                            n += 1;
                        }
                    }
                    Slide::Leave(row) => {
                        if let Some(x) = v[row] {
                            sum -= x;
                            n -= 1;
                        }
                    }
                    Slide::End(row) => out[row] = (n > 0).then_some((sum, n)),
                });
                // Exact sums, then one rounding: a mean of int64 values does not drift.
                match (mean, unsigned) {
                    (true, _) => Arc::new(
                        out.iter().map(|o| o.map(|(s, n)| s as f64 / n as f64)).collect::<Float64Array>(),
                    ),
                    // Wrapping like the query's SUM of int64 / uint64.
                    (false, false) => {
                        Arc::new(out.iter().map(|o| o.map(|(s, _)| s as i64)).collect::<Int64Array>())
                    }
                    (false, true) => {
                        Arc::new(out.iter().map(|o| o.map(|(s, _)| s as u64)).collect::<UInt64Array>())
                    }
                }
            }
            Values::Floats(v) => {
                let mut out: Vec<Option<f64>> = vec![None; rows];
                let mut w = FloatWindow::default();
                slide(sorted, group, window, |event| match event {
                    Slide::Enter(row) | Slide::Leave(row) if v.is_valid(row) => {
                        w.update(v.value(row), matches!(event, Slide::Enter(_)));
                    }
                    Slide::Enter(_) | Slide::Leave(_) => {}
                    Slide::End(row) => out[row] = w.sum().map(|s| if mean { s / w.n as f64 } else { s }),
                });
                Arc::new(PrimitiveArray::<Float64Type>::from(out))
            }
        }
    }
}

/// What happens to a row as the window slides.
#[derive(Debug, Clone, Copy)]
enum Slide {
    /// The row enters the window.
    Enter(usize),
    /// The row leaves it.
    Leave(usize),
    /// The window now ends at this row: its value is due.
    End(usize),
}

/// Walks every group's rows in order with a window of `window` rows, telling `f` what
/// enters, leaves and ends. Each group starts with an empty window.
fn slide(sorted: &[usize], group: &[u64], window: usize, mut f: impl FnMut(Slide)) {
    let mut start = 0;
    for (k, &row) in sorted.iter().enumerate() {
        if k > 0 && group[row] != group[sorted[k - 1]] {
            // A new group: empty the window of the last one.
            for &old in &sorted[start.max(k.saturating_sub(window))..k] {
                f(Slide::Leave(old));
            }
            start = k;
        }
        f(Slide::Enter(row));
        if k >= start + window {
            f(Slide::Leave(sorted[k - window]));
        }
        f(Slide::End(row));
    }
}

/// A window of floats: finite values in a Neumaier (Kahan–Babuška) compensated sum that
/// values can leave again, and NaN and infinities counted, so they leave without a trace.
#[derive(Default)]
struct FloatWindow {
    sum: f64,
    compensation: f64,
    finite: u64,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    /// Non-null values.
    n: u64,
}

impl FloatWindow {
    fn update(&mut self, x: f64, add: bool) {
        let (counter, sign) = if add { (1i64, 1.0) } else { (-1, -1.0) };
        let bump = |c: &mut u64| *c = c.wrapping_add_signed(counter);
        bump(&mut self.n);
        if x.is_nan() {
            bump(&mut self.nan);
        } else if x == f64::INFINITY {
            bump(&mut self.pos_inf);
        } else if x == f64::NEG_INFINITY {
            bump(&mut self.neg_inf);
        } else {
            bump(&mut self.finite);
            if self.finite == 0 {
                // Nothing finite left: start over rather than carry rounding residue.
                self.sum = 0.0;
                self.compensation = 0.0;
                return;
            }
            let x = sign * x;
            let t = self.sum + x;
            self.compensation +=
                if self.sum.abs() >= x.abs() { (self.sum - t) + x } else { (x - t) + self.sum };
            self.sum = t;
        }
    }

    /// The window's sum, `None` without values.
    fn sum(&self) -> Option<f64> {
        Some(match () {
            _ if self.n == 0 => return None,
            _ if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) => f64::NAN,
            _ if self.pos_inf > 0 => f64::INFINITY,
            _ if self.neg_inf > 0 => f64::NEG_INFINITY,
            _ => self.sum + self.compensation,
        })
    }
}

/// A rolling aggregate the query computes, over `over`: float `min`/`max` skip NaN and a
/// decimal `mean` is float64, as in `group_by`.
fn query_aggregate(func: &str, agg: Agg, column: &str, ty: Option<&DataType>, over: &str) -> String {
    let c = quote(column);
    match agg {
        Agg::Min | Agg::Max if ty.is_some_and(DataType::is_floating) => {
            crate::sql::float_min_max(func, &c, over)
        }
        Agg::Mean if ty.is_some_and(|t| !t.is_integer() && !t.is_floating()) => {
            crate::sql::decimal_mean(&c, over)
        }
        _ => format!("{func}({c}) {over}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use serde_json::json;

    use super::*;
    use crate::feature::testing::{batch, f64s, i64s, strs};

    /// Two products, days out of order in the input.
    fn sales() -> Table {
        batch(vec![
            ("StockCode", Arc::new(StringArray::from(vec!["a", "b", "a", "a", "b", "a"]))),
            ("date", Arc::new(Int64Array::from(vec![2, 1, 1, 3, 2, 4]))),
            (
                "sales",
                Arc::new(Int64Array::from(vec![Some(20), Some(100), Some(10), None, Some(200), Some(40)])),
            ),
        ])
    }

    #[test]
    fn lags_follow_the_order_within_groups_and_keep_input_order() {
        let v = json!({ "column": "sales", "by": ["StockCode"], "order_by": "date", "periods": [1, 2] });
        let l = Lags::parse(&At::new("lags", &v)).unwrap();
        assert!(l.check(&sales().schema).is_empty());
        let out = l.apply(sales()).unwrap().table;
        assert_eq!(
            strs(&out, "StockCode"),
            ["a", "b", "a", "a", "b", "a"].map(|s| Some(s.to_string())).to_vec()
        );
        assert_eq!(out.schema.fields().len(), 5, "the helper row column is gone");
        assert_eq!(i64s(&out, "sales_lag_1"), vec![Some(10), None, None, Some(20), Some(100), None]);
        assert_eq!(i64s(&out, "sales_lag_2"), vec![None, None, None, Some(10), None, Some(20)]);
    }

    #[test]
    fn rolling_includes_the_current_row_and_skips_nulls() {
        let v = json!({ "column": "sales", "by": "StockCode", "order_by": "date", "window": 2, "aggs": ["mean", "sum", "count"] });
        let out = Rolling::parse(&At::new("rolling", &v)).unwrap().apply(sales()).unwrap().table;
        // a: days 1..4 → 10, 20, null, 40.
        assert_eq!(
            f64s(&out, "sales_rolling_2_mean"),
            vec![Some(15.0), Some(100.0), Some(10.0), Some(20.0), Some(150.0), Some(40.0)]
        );
        assert_eq!(
            i64s(&out, "sales_rolling_2_sum"),
            vec![Some(30), Some(100), Some(10), Some(20), Some(300), Some(40)]
        );
        assert_eq!(
            i64s(&out, "sales_rolling_2_count"),
            vec![Some(2), Some(1), Some(1), Some(1), Some(2), Some(1)]
        );
    }

    fn rolling(column: &str, window: usize, aggs: &[&str], by: Option<&str>) -> Rolling {
        let mut v = json!({ "column": column, "order_by": "day", "window": window, "aggs": aggs });
        if let Some(b) = by {
            v["by"] = json!(b);
        }
        Rolling::parse(&At::new("rolling", &v)).unwrap()
    }

    fn days(values: Vec<f64>) -> Table {
        let n = values.len() as i64;
        batch(vec![
            ("day", Arc::new(Int64Array::from_iter_values(0..n))),
            ("x", Arc::new(Float64Array::from(values))),
        ])
    }

    /// Bits, so NaN compares equal to NaN.
    fn bits(v: Vec<Option<f64>>) -> Vec<Option<u64>> {
        v.into_iter().map(|x| x.map(|x| if x.is_nan() { f64::NAN.to_bits() } else { x.to_bits() })).collect()
    }

    /// Regression: rolling min/max compared by total order, so a NaN won `max` (or `min`,
    /// with its sign bit set) while the other skipped it; and a decimal `mean` overflowed.
    #[test]
    fn rolling_min_max_skip_nan_and_decimal_means_are_floats() {
        let negative_nan = f64::from_bits(0xfff8_0000_0000_0000);
        for nan in [f64::NAN, negative_nan] {
            let out = rolling("x", 2, &["min", "max"], None)
                .apply(days(vec![nan, 1.0, 3.0, nan, 2.0]))
                .unwrap()
                .table;
            let n = Some(f64::NAN);
            assert_eq!(
                bits(f64s(&out, "x_rolling_2_min")),
                bits(vec![n, Some(1.0), Some(1.0), Some(3.0), Some(2.0)])
            );
            assert_eq!(
                bits(f64s(&out, "x_rolling_2_max")),
                bits(vec![n, Some(1.0), Some(3.0), Some(3.0), Some(2.0)])
            );
        }
        let d = arrow::array::Decimal128Array::from(vec![
            20_000_000_000_000_000i128 * 10i128.pow(18),
            10i128.pow(18),
        ])
        .with_precision_and_scale(38, 18)
        .unwrap();
        let t = batch(vec![("day", Arc::new(Int64Array::from(vec![0, 1]))), ("x", Arc::new(d))]);
        let out = rolling("x", 2, &["mean"], None).apply(t).unwrap().table;
        assert_eq!(f64s(&out, "x_rolling_2_mean"), vec![Some(2e16), Some(1e16)]);
    }

    #[test]
    fn a_nan_only_spoils_the_windows_that_hold_it() {
        let out = rolling("x", 2, &["sum", "mean"], None)
            .apply(days(vec![1.0, f64::NAN, 2.0, 3.0, 4.0]))
            .unwrap()
            .table;
        // NaN is a value: only the two windows holding it are NaN (pandas would skip it).
        let nan = Some(f64::NAN);
        assert_eq!(
            bits(f64s(&out, "x_rolling_2_sum")),
            bits(vec![Some(1.0), nan, nan, Some(5.0), Some(7.0)])
        );
        assert_eq!(
            bits(f64s(&out, "x_rolling_2_mean")),
            bits(vec![Some(1.0), nan, nan, Some(2.5), Some(3.5)])
        );
    }

    #[test]
    fn a_large_value_leaving_the_window_keeps_the_small_ones() {
        let out = rolling("x", 2, &["sum"], None).apply(days(vec![1e20, 1.0, 1.0, 1.0])).unwrap().table;
        // pandas: [1e20, 1e20, 2, 2]; plain add/subtract gave [1e20, 1e20, 0, 0].
        assert_eq!(f64s(&out, "x_rolling_2_sum"), vec![Some(1e20), Some(1e20), Some(2.0), Some(2.0)]);
    }

    #[test]
    fn infinities_are_counted_in_the_window() {
        let (inf, ninf) = (f64::INFINITY, f64::NEG_INFINITY);
        let out =
            rolling("x", 2, &["sum"], None).apply(days(vec![inf, 1.0, ninf, inf, 1.0, 1.0])).unwrap().table;
        let nan = Some(f64::NAN);
        assert_eq!(
            bits(f64s(&out, "x_rolling_2_sum")),
            bits(vec![Some(inf), Some(inf), Some(ninf), nan, Some(inf), Some(2.0)])
        );
    }

    #[test]
    fn integer_means_are_exact_sums_divided_once() {
        let big = 9_007_199_254_740_993i64; // 2^53 + 1, no exact f64
        let t = batch(vec![
            ("day", Arc::new(Int64Array::from(vec![0, 1, 2]))),
            ("n", Arc::new(Int64Array::from(vec![big, 1, 1]))),
        ]);
        let out = rolling("n", 2, &["mean", "sum"], None).apply(t).unwrap().table;
        assert_eq!(
            f64s(&out, "n_rolling_2_mean"),
            vec![Some(big as f64), Some(4_503_599_627_370_497.0), Some(1.0)]
        );
        assert_eq!(i64s(&out, "n_rolling_2_sum"), vec![Some(big), Some(big + 1), Some(2)]);
    }

    #[test]
    fn native_sums_and_means_have_the_query_types() {
        let t = batch(vec![
            ("day", Arc::new(Int64Array::from(vec![0, 1]))),
            ("i8", Arc::new(arrow::array::Int8Array::from(vec![1, 2]))),
            ("i32", Arc::new(arrow::array::Int32Array::from(vec![1, 2]))),
            ("u16", Arc::new(arrow::array::UInt16Array::from(vec![1, 2]))),
            ("u64", Arc::new(arrow::array::UInt64Array::from(vec![1, 2]))),
            ("f32", Arc::new(arrow::array::Float32Array::from(vec![1.0, 2.0]))),
            ("f64", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
        ]);
        let v = json!({ "column": ["i8", "i32", "u16", "u64", "f32", "f64"], "order_by": "day", "window": 2, "aggs": ["sum", "mean"] });
        let r = Rolling::parse(&At::new("rolling", &v)).unwrap();
        let native = r.apply(t.clone()).unwrap().table;
        let over = r.frame.over(&t.schema, "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW");
        let extra: Vec<String> = ["i8", "i32", "u16", "u64", "f32", "f64"]
            .iter()
            .flat_map(|c| {
                [
                    format!("SUM({c}) {over} AS {c}_rolling_2_sum"),
                    format!("AVG({c}) {over} AS {c}_rolling_2_mean"),
                ]
            })
            .collect();
        let query = r.frame.run(t, &extra).unwrap();
        let types = |t: &Table| {
            t.schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect::<Vec<_>>()
        };
        assert_eq!(types(&native), types(&query));
        for f in query.schema.fields() {
            assert_eq!(f64s(&native, f.name()), f64s(&query, f.name()), "{}", f.name());
        }
    }

    #[test]
    fn minus_zero_and_zero_are_one_group() {
        let t = batch(vec![
            ("k", Arc::new(Float64Array::from(vec![0.0, -0.0, 0.0]))),
            ("day", Arc::new(Int64Array::from(vec![1, 2, 3]))),
            ("v", Arc::new(Int64Array::from(vec![10, 20, 30]))),
        ]);
        let v = json!({ "column": "v", "by": "k", "order_by": "day", "periods": [1] });
        let out = Lags::parse(&At::new("lags", &v)).unwrap().apply(t.clone()).unwrap().table;
        assert_eq!(i64s(&out, "v_lag_1"), vec![None, Some(10), Some(20)]);
        let v = json!({ "column": "v", "by": "k", "order_by": "day", "window": 2, "aggs": ["sum", "max"] });
        let out = Rolling::parse(&At::new("rolling", &v)).unwrap().apply(t).unwrap().table;
        assert_eq!(i64s(&out, "v_rolling_2_sum"), vec![Some(10), Some(30), Some(50)]);
        assert_eq!(i64s(&out, "v_rolling_2_max"), vec![Some(10), Some(20), Some(30)]);
        assert_eq!(
            f64s(&out, "k")[1].map(f64::to_bits),
            Some((-0.0f64).to_bits()),
            "the key column is untouched"
        );
    }

    #[test]
    fn mistakes_are_reported_at_their_keys() {
        let v = json!({ "column": "sales", "order_by": "day", "window": 3, "aggs": ["mean", "median"] });
        assert_eq!(Rolling::parse(&At::new("rolling", &v)).unwrap_err().key, "rolling.aggs.1");
        let v = json!({ "column": "sales", "order_by": "dates", "periods": [1] });
        let issues = Lags::parse(&At::new("steps.0.lags", &v)).unwrap().check(&sales().schema);
        assert_eq!(issues[0].key, "steps.0.lags.order_by");
        assert_eq!(issues[0].help.as_deref(), Some("did you mean `date`?"));
    }

    #[test]
    fn a_new_column_that_already_exists_is_reported_before_running() {
        let v = json!({ "column": ["sales", "sales"], "order_by": "date", "periods": [1] });
        let issues = Lags::parse(&At::new("lags", &v)).unwrap().check(&sales().schema);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "lags.column.1");
        assert_eq!(issues[0].message, "lags would create column `sales_lag_1` twice");
        let v = json!({ "column": "sales", "order_by": "date", "window": 2, "aggs": ["sum", "sum"] });
        let issues = Rolling::parse(&At::new("rolling", &v)).unwrap().check(&sales().schema);
        assert_eq!(issues[0].message, "rolling would create column `sales_rolling_2_sum` twice");
    }
}
