//! Time-series features over ordered partitions: `lags` (the value N rows earlier) and
//! `rolling` (an aggregate over the last N rows, the current one included). Rows are ordered
//! by `order_by` within each `by` group, ties by input position; the output keeps the input's
//! row order and adds columns `COLUMN_lag_N` and `COLUMN_rolling_N_AGG`.

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
    fn over(&self, rows: &str) -> String {
        let mut over = String::from("OVER (");
        if !self.by.is_empty() {
            let by: Vec<String> = self.by.iter().map(|(c, _)| quote(c)).collect();
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
        let over = self.frame.over("");
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
        let over = self.frame.over(&format!("ROWS BETWEEN {} PRECEDING AND CURRENT ROW", self.window - 1));
        let mut extra = Vec::new();
        for (c, _) in &self.frame.columns {
            for (name, _, func) in &self.aggs {
                let alias = format!("{c}_rolling_{}_{name}", self.window);
                extra.push(format!("{func}({}) {over} AS {}", quote(c), quote(&alias)));
            }
        }
        Ok(self.frame.run(input, &extra)?.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
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
