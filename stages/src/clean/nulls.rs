//! NULL handling: `drop_nulls` removes rows with NULLs (counted, and sent to `rejects` with
//! `keep_rejects`); `fill_nulls` replaces them with a constant, a statistic of the column, or
//! the previous value within a group.

use arrow::array::{Array, ArrayRef, BooleanArray, Scalar, UInt64Array};
use arrow::compute::kernels::boolean::and;
use arrow::compute::kernels::zip::zip;
use arrow::compute::{SortOptions, is_not_null, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use rayon::prelude::*;
use serde_json::Value;
use sluice_core::StageError;
use sluice_core::registry::Issue;
use sluice_plugin::type_name;

use super::stats::{self, Round};
use super::steps::{ColRef, column_table, columns};
use super::table::{Applied, OpError, Table, scalar_of};

/// `drop_nulls = ["CustomerID"]` or `drop_nulls = "any"`.
#[derive(Debug, Clone)]
pub enum DropNulls {
    /// A NULL in any column removes the row.
    Any,
    /// A NULL in one of these columns removes the row.
    Columns(Vec<ColRef>),
}

impl DropNulls {
    /// Reads the op's config.
    pub fn parse(value: &Value, key: &str) -> Result<DropNulls, Vec<Issue>> {
        match value {
            Value::String(s) if s == "any" => Ok(DropNulls::Any),
            _ => columns(value, key, "drop_nulls").map(DropNulls::Columns),
        }
    }

    /// Checks the columns exist; the schema is unchanged.
    pub fn derive(&self, schema: &SchemaRef, issues: &mut Vec<Issue>) -> SchemaRef {
        if let DropNulls::Columns(cols) = self {
            for c in cols {
                c.find(schema, issues);
            }
        }
        schema.clone()
    }

    /// Removes rows with a NULL in the named columns (batches in parallel).
    pub fn apply(&self, table: Table, track: bool) -> Result<Applied, OpError> {
        let indices: Vec<usize> = match self {
            DropNulls::Any => (0..table.schema.fields().len()).collect(),
            DropNulls::Columns(cols) => {
                cols.iter().filter_map(|c| table.schema.index_of(&c.name).ok()).collect()
            }
        };
        let masks = table
            .batches
            .par_iter()
            .map(|b| {
                let mut mask: Option<BooleanArray> = None;
                for &i in &indices {
                    let col = b.column(i);
                    if col.null_count() == 0 {
                        continue;
                    }
                    let valid = is_not_null(col).map_err(|e| StageError::arrow("finding NULLs", e))?;
                    mask = Some(match mask {
                        Some(m) => and(&m, &valid).map_err(|e| StageError::arrow("finding NULLs", e))?,
                        None => valid,
                    });
                }
                Ok(mask.unwrap_or_else(|| BooleanArray::from(vec![true; b.num_rows()])))
            })
            .collect::<Result<Vec<_>, StageError>>()?;
        Ok(Applied::kept(table, masks, track)?)
    }
}

/// How one column's NULLs are filled.
#[derive(Debug, Clone)]
pub enum Fill {
    /// A constant (converted to the column's type).
    Value(Value),
    /// The mean of the column's values.
    Mean,
    /// The median of the column's values.
    Median,
    /// The most frequent value.
    Mode,
    /// The previous non-NULL value within the group, in `order_by` order.
    Forward {
        /// Group columns (none: the whole table is one group).
        by: Vec<ColRef>,
        /// Order within the group (none: the current row order).
        order_by: Option<ColRef>,
    },
}

/// `fill_nulls = { col = <constant> | "mean" | "median" | "mode" | "forward" | { ... } }`.
#[derive(Debug, Clone)]
pub struct FillNulls {
    /// Column → how.
    pub columns: Vec<(ColRef, Fill)>,
}

const EXAMPLE: &str = "fill_nulls = { Description = \"unknown\", UnitPrice = \"median\" }";

impl FillNulls {
    /// Reads the op's config.
    pub fn parse(value: &Value, key: &str) -> Result<FillNulls, Vec<Issue>> {
        let mut out = Vec::new();
        let mut issues = Vec::new();
        for (col, v) in column_table(value, key, "fill_nulls", EXAMPLE)? {
            match parse_fill(v, &col.key) {
                Ok(f) => out.push((col, f)),
                Err(mut i) => issues.append(&mut i),
            }
        }
        if issues.is_empty() { Ok(FillNulls { columns: out }) } else { Err(issues) }
    }

    /// Checks columns, constants and the types each method needs; the schema is unchanged.
    pub fn derive(&self, schema: &SchemaRef, issues: &mut Vec<Issue>) -> SchemaRef {
        for (col, fill) in &self.columns {
            let Some(i) = col.find(schema, issues) else { continue };
            let ty = schema.field(i).data_type();
            match fill {
                Fill::Value(v) => {
                    if let Err(e) = constant_of(v, ty) {
                        issues.push(Issue::new(
                            &col.key,
                            format!("{v} cannot fill column `{}` ({}): {e}", col.name, type_name(ty)),
                        ));
                    }
                }
                Fill::Mean | Fill::Median if !stats::is_numeric(ty) => issues.push(
                    Issue::new(
                        &col.key,
                        format!(
                            "column `{}` is {}; mean and median need a number column",
                            col.name,
                            type_name(ty)
                        ),
                    )
                    .with_help("use \"mode\", \"forward\" or a constant"),
                ),
                Fill::Forward { by, order_by } => {
                    for c in by.iter().chain(order_by) {
                        c.find(schema, issues);
                    }
                }
                _ => {}
            }
        }
        schema.clone()
    }

    /// Fills column by column, in the order written.
    pub fn apply(&self, mut table: Table) -> Result<Applied, OpError> {
        let mut filled = 0u64;
        for (col, fill) in &self.columns {
            let Ok(i) = table.schema.index_of(&col.name) else { continue };
            let before: usize = table.batches.iter().map(|b| b.column(i).null_count()).sum();
            if before == 0 {
                continue;
            }
            let ty = table.schema.field(i).data_type().clone();
            let full = table.column(i)?;
            let constant = |value: Option<f64>| -> Result<Option<ArrayRef>, OpError> {
                value
                    .map(|v| stats::number_as(v, &ty))
                    .transpose()
                    .map_err(|e| OpError::Issue(Issue::new(&col.key, format!("column `{}`: {e}", col.name))))
            };
            let replacement = match fill {
                Fill::Value(v) => Replacement::Scalar(
                    constant_of(v, &ty).map_err(|e| OpError::Issue(Issue::new(&col.key, e)))?,
                ),
                Fill::Mean => {
                    constant(stats::mean(&full)?)?.map_or(Replacement::Nothing, Replacement::Scalar)
                }
                Fill::Median
                    if ty.is_integer() || stats::decimal_shape(&ty).is_some_and(|(p, _)| p <= 38) =>
                {
                    stats::exact_median(&full)?.map_or(Replacement::Nothing, Replacement::Scalar)
                }
                Fill::Median => constant(stats::quantiles(&full, &[0.5])?.and_then(|q| q.first().copied()))?
                    .map_or(Replacement::Nothing, Replacement::Scalar),
                Fill::Mode => match stats::mode(&full)? {
                    Some(at) => Replacement::Scalar(full.slice(at, 1)),
                    None => Replacement::Nothing,
                },
                Fill::Forward { by, order_by } => {
                    Replacement::Column(forward_fill(&table, &full, by, order_by.as_ref())?)
                }
            };
            table = replace(table, i, &replacement)?;
            let after: usize = table.batches.iter().map(|b| b.column(i).null_count()).sum();
            filled += (before - after) as u64;
        }
        Ok(Applied::same(table).with("filled", filled))
    }
}

fn parse_fill(v: &Value, key: &str) -> Result<Fill, Vec<Issue>> {
    let method = |m: &str, by: Vec<ColRef>, order_by: Option<ColRef>| match m {
        "mean" => Some(Fill::Mean),
        "median" => Some(Fill::Median),
        "mode" => Some(Fill::Mode),
        "forward" => Some(Fill::Forward { by, order_by }),
        _ => None,
    };
    match v {
        Value::String(s) => Ok(method(s, Vec::new(), None).unwrap_or_else(|| Fill::Value(v.clone()))),
        Value::Number(_) | Value::Bool(_) => Ok(Fill::Value(v.clone())),
        Value::Object(t) => {
            if let Some(other) =
                t.keys().find(|k| !matches!(k.as_str(), "value" | "method" | "by" | "order_by"))
            {
                return Err(vec![
                    Issue::new(format!("{key}.{other}"), format!("unknown key `{other}`"))
                        .with_help("a fill table takes `value`, or `method` with `by` and `order_by`"),
                ]);
            }
            match (t.get("value"), t.get("method")) {
                (Some(value), None) if !value.is_object() && !value.is_array() && !value.is_null() => {
                    Ok(Fill::Value(value.clone()))
                }
                (None, Some(Value::String(m))) => {
                    let by = match t.get("by") {
                        Some(b) => columns(b, &format!("{key}.by"), "by")?,
                        None => Vec::new(),
                    };
                    let order_by = match t.get("order_by") {
                        Some(Value::String(o)) => Some(ColRef::new(o, format!("{key}.order_by"))),
                        Some(other) => {
                            return Err(vec![Issue::new(
                                format!("{key}.order_by"),
                                format!("`order_by` names one column, found {other}"),
                            )]);
                        }
                        None => None,
                    };
                    if m != "forward" && (!by.is_empty() || order_by.is_some()) {
                        return Err(vec![Issue::new(
                            key,
                            "`by` and `order_by` only apply to method \"forward\"",
                        )]);
                    }
                    method(m, by, order_by).ok_or_else(|| {
                        vec![
                            Issue::new(format!("{key}.method"), format!("unknown fill method \"{m}\""))
                                .with_help("methods: mean, median, mode, forward"),
                        ]
                    })
                }
                _ => Err(vec![
                    Issue::new(key, "a fill table takes either `value = ...` or `method = \"...\"`")
                        .with_help(
                            "e.g. { method = \"forward\", by = \"StockCode\", order_by = \"InvoiceDate\" }",
                        ),
                ]),
            }
        }
        other => Err(vec![
            Issue::new(key, format!("cannot fill with {other}")).with_help(format!("write e.g. {EXAMPLE}")),
        ]),
    }
}

/// The constant as text, converted to the column type by an Arrow cast.
fn constant_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A fill constant as a one-row array of `ty`. A number with more decimal places than a
/// decimal column holds is refused, as 1.5 is for an integer column: the cast would round
/// it silently (1.005 into decimal(10,2) would fill 1.01).
fn constant_of(v: &Value, ty: &DataType) -> Result<ArrayRef, String> {
    let text = constant_text(v);
    if let Some((_, scale)) = stats::decimal_shape(ty)
        && let Some((m, from)) = stats::parse_decimal(&text)
        && let Some((_, false)) = stats::rescale(m, from, i32::from(scale), Round::Down)
    {
        let places =
            if scale == 1 { "1 decimal place".to_string() } else { format!("{scale} decimal places") };
        return Err(format!("{text} has more decimal places than {} holds ({places})", type_name(ty)));
    }
    scalar_of(&text, ty)
}

enum Replacement {
    /// Every NULL becomes this one-row value.
    Scalar(ArrayRef),
    /// The whole filled column (all batches concatenated).
    Column(ArrayRef),
    /// Nothing to fill with (every value is NULL): NULLs stay.
    Nothing,
}

fn replace(table: Table, i: usize, replacement: &Replacement) -> Result<Table, StageError> {
    let schema = table.schema.clone();
    let offsets: Vec<usize> = table
        .batches
        .iter()
        .scan(0, |acc, b| {
            let start = *acc;
            *acc += b.num_rows();
            Some(start)
        })
        .collect();
    let Table { batches, ids, .. } = table;
    let batches = batches
        .into_par_iter()
        .zip(offsets.into_par_iter())
        .map(|(b, offset)| {
            let col = b.column(i);
            let new = match replacement {
                Replacement::Nothing => return Ok(b),
                _ if col.null_count() == 0 => return Ok(b),
                Replacement::Scalar(value) => {
                    let valid = is_not_null(col).map_err(|e| StageError::arrow("filling NULLs", e))?;
                    zip(&valid, col, &Scalar::new(value.clone()))
                        .map_err(|e| StageError::arrow("filling NULLs", e))?
                }
                Replacement::Column(full) => full.slice(offset, b.num_rows()),
            };
            let mut columns = b.columns().to_vec();
            columns[i] = new;
            RecordBatch::try_new(b.schema(), columns).map_err(|e| StageError::arrow("filling NULLs", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Table::new(schema, batches, ids))
}

/// Forward fill: rows sorted by (group, order, position); a NULL takes the latest non-NULL
/// value before it in its group. Returns the whole column in the table's row order.
fn forward_fill(
    table: &Table,
    full: &ArrayRef,
    by: &[ColRef],
    order_by: Option<&ColRef>,
) -> Result<ArrayRef, StageError> {
    let n = full.len();
    let index = |c: &ColRef| table.schema.index_of(&c.name).map_err(|e| StageError::arrow("forward fill", e));
    let group_cols: Vec<ArrayRef> = by.iter().map(|c| table.column(index(c)?)).collect::<Result<_, _>>()?;
    let group_rows = if group_cols.is_empty() { None } else { Some(encode(&group_cols)?) };
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut sort_cols = group_cols.clone();
    let mut fields: Vec<SortField> =
        group_cols.iter().map(|c| SortField::new(c.data_type().clone())).collect();
    if let Some(o) = order_by {
        let col = table.column(index(o)?)?;
        // A row whose order is unknown sorts after every row with one: it must not become
        // the "previous" value of a row that has a time.
        let last = SortOptions { descending: false, nulls_first: false };
        fields.push(SortField::new_with_options(col.data_type().clone(), last));
        sort_cols.push(col);
    }
    if !sort_cols.is_empty() {
        let converter = RowConverter::new(fields).map_err(|e| StageError::arrow("forward fill", e))?;
        let rows = converter.convert_columns(&sort_cols).map_err(|e| StageError::arrow("forward fill", e))?;
        // Stable: equal keys keep their current order.
        order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    }
    let mut source: Vec<u32> = (0..n as u32).collect();
    let mut last_valid: Option<u32> = None;
    for (k, &r) in order.iter().enumerate() {
        let new_group = match (&group_rows, k) {
            (_, 0) => true,
            (Some(g), _) => g.row(r as usize) != g.row(order[k - 1] as usize),
            (None, _) => false,
        };
        if new_group {
            last_valid = None;
        }
        if full.is_valid(r as usize) {
            last_valid = Some(r);
        } else if let Some(v) = last_valid {
            source[r as usize] = v;
        }
    }
    take(full, &UInt64Array::from_iter_values(source.into_iter().map(u64::from)), None)
        .map_err(|e| StageError::arrow("forward fill", e))
}

/// Row-encodes columns so they compare and hash as byte strings.
pub fn encode(cols: &[ArrayRef]) -> Result<arrow::row::Rows, StageError> {
    let fields = cols.iter().map(|c| SortField::new(c.data_type().clone())).collect();
    let converter = RowConverter::new(fields).map_err(|e| StageError::arrow("encoding rows", e))?;
    converter.convert_columns(cols).map_err(|e| StageError::arrow("encoding rows", e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::display::array_value_to_string;
    use serde_json::json;

    use super::*;

    fn input() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, true),
            Field::new("t", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let b1 = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("a")])),
                Arc::new(Int64Array::from(vec![Some(3), Some(1), Some(1)])),
                Arc::new(Float64Array::from(vec![None, Some(10.0), Some(1.0)])),
                Arc::new(StringArray::from(vec![Some("ß"), None, Some("ß")])),
            ],
        )
        .unwrap();
        let b2 = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("b"), Some("a"), None])),
                Arc::new(Int64Array::from(vec![Some(2), Some(2), Some(0)])),
                Arc::new(Float64Array::from(vec![None, Some(4.0), None])),
                Arc::new(StringArray::from(vec![Some("x"), None, None])),
            ],
        )
        .unwrap();
        Table::from_input(schema, vec![b1, b2])
    }

    fn values(t: &Table, col: &str) -> Vec<String> {
        let c = t.column(t.schema.index_of(col).unwrap()).unwrap();
        (0..c.len())
            .map(|i| if c.is_null(i) { "∅".into() } else { array_value_to_string(&c, i).unwrap() })
            .collect()
    }

    #[test]
    fn drop_nulls_by_column_and_any() {
        let d = DropNulls::parse(&json!(["x"]), "drop_nulls").unwrap();
        let a = d.apply(input(), true).unwrap();
        assert_eq!((a.table.rows(), a.removed.clone(), a.removed_count), (3, vec![0, 3, 5], 3));
        let a = DropNulls::parse(&json!("any"), "k").unwrap().apply(input(), false).unwrap();
        assert_eq!(a.table.rows(), 1);
        assert_eq!(a.removed_count, 5);
        let mut issues = Vec::new();
        DropNulls::parse(&json!("xx"), "k").unwrap().derive(&input().schema, &mut issues);
        assert_eq!(issues[0].help.as_deref(), Some("did you mean `x`?"));
    }

    #[test]
    fn fill_constants_and_statistics() {
        let f = FillNulls::parse(&json!({"x": "median", "s": "unknown", "t": 0}), "fill_nulls").unwrap();
        let mut issues = Vec::new();
        f.derive(&input().schema, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        let a = f.apply(input()).unwrap();
        assert_eq!(values(&a.table, "x"), ["4.0", "10.0", "1.0", "4.0", "4.0", "4.0"]);
        assert_eq!(values(&a.table, "s"), ["ß", "unknown", "ß", "x", "unknown", "unknown"]);
        assert_eq!(a.extra, [("filled", json!(6))]);
        let a = FillNulls::parse(&json!({"x": "mean", "s": "mode"}), "k").unwrap().apply(input()).unwrap();
        assert_eq!(values(&a.table, "x")[0], "5.0");
        assert_eq!(values(&a.table, "s")[1], "ß");
    }

    #[test]
    fn forward_fill_within_group_in_order() {
        let f =
            FillNulls::parse(&json!({"x": {"method": "forward", "by": "g", "order_by": "t"}}), "k").unwrap();
        let a = f.apply(input()).unwrap();
        // a: t=1 → 1.0, t=2 → 4.0, t=3 → NULL→4.0; b: t=1 → 10.0, t=2 → NULL→10.0; NULL group alone.
        assert_eq!(values(&a.table, "x"), ["4.0", "10.0", "1.0", "10.0", "4.0", "∅"]);
        let plain = FillNulls::parse(&json!({"x": "forward"}), "k").unwrap().apply(input()).unwrap();
        assert_eq!(values(&plain.table, "x"), ["∅", "10.0", "1.0", "1.0", "4.0", "4.0"]);
    }

    #[test]
    fn forward_fill_never_takes_a_value_from_a_row_without_an_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, true),
            Field::new("v", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(2), None])),
                Arc::new(Float64Array::from(vec![None, Some(99.0), None, None])),
            ],
        )
        .unwrap();
        let f = FillNulls::parse(&json!({"v": {"method": "forward", "order_by": "t"}}), "k").unwrap();
        let a = f.apply(Table::from_input(schema, vec![b])).unwrap();
        // t=1 and t=2 have nothing before them; the rows without a time come last.
        assert_eq!(values(&a.table, "v"), ["∅", "99.0", "∅", "99.0"]);
    }

    #[test]
    fn fill_checks_types_and_config() {
        let mut issues = Vec::new();
        FillNulls::parse(&json!({"s": "mean", "t": "lots"}), "k")
            .unwrap()
            .derive(&input().schema, &mut issues);
        assert_eq!(issues.len(), 2, "{issues:?}");
        assert!(issues[0].message.contains("mean and median need a number column"));
        assert!(issues[1].message.contains("cannot fill column `t` (int64)"));
        assert_eq!(
            FillNulls::parse(&json!({"x": {"method": "backward"}}), "k").unwrap_err()[0].key,
            "k.x.method"
        );
        assert_eq!(FillNulls::parse(&json!({"x": [1]}), "k").unwrap_err()[0].key, "k.x");
    }

    /// Regression: `fill_nulls = { d = 1.005 }` on a decimal(10,2) column silently filled
    /// 1.01; like 1.5 into an int64 column it is now refused.
    #[test]
    fn a_constant_with_more_decimal_places_than_the_column_is_refused() {
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Decimal128(10, 2), true)]));
        let d = arrow::array::Decimal128Array::from(vec![None, Some(250)])
            .with_precision_and_scale(10, 2)
            .unwrap();
        let table = || {
            Table::from_input(
                schema.clone(),
                vec![RecordBatch::try_new(schema.clone(), vec![Arc::new(d.clone())]).unwrap()],
            )
        };
        let f = FillNulls::parse(&json!({"d": 1.005}), "fill_nulls").unwrap();
        let mut issues = Vec::new();
        f.derive(&schema, &mut issues);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "fill_nulls.d");
        assert!(issues[0].message.contains("1.005 has more decimal places than"), "{}", issues[0].message);
        assert!(matches!(f.apply(table()), Err(OpError::Issue(_))));
        // Constants the scale holds fill as written, trailing zeros and all.
        for (constant, filled) in [(json!(1.5), "1.50"), (json!("1.010"), "1.01"), (json!(-3), "-3.00")] {
            let a = FillNulls::parse(&json!({ "d": constant }), "k").unwrap().apply(table()).unwrap();
            assert_eq!(values(&a.table, "d"), [filled, "2.50"]);
        }
    }

    /// Regression: an int64 median fill went through f64 (9007199254740993 twice filled
    /// 9007199254740992).
    #[test]
    fn an_integer_median_fill_is_exact() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let n = Int64Array::from(vec![Some(9007199254740993), None, Some(9007199254740993)]);
        let t =
            Table::from_input(schema.clone(), vec![RecordBatch::try_new(schema, vec![Arc::new(n)]).unwrap()]);
        let a = FillNulls::parse(&json!({"n": "median"}), "k").unwrap().apply(t).unwrap();
        assert_eq!(values(&a.table, "n"), ["9007199254740993"; 3]);
    }

    #[test]
    fn fill_on_all_null_and_empty_columns_leaves_nulls() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(vec![None, None]))])
            .unwrap();
        let a = FillNulls::parse(&json!({"x": "mean"}), "k")
            .unwrap()
            .apply(Table::from_input(schema.clone(), vec![b]))
            .unwrap();
        assert_eq!(a.table.batches[0].column(0).null_count(), 2);
        let a = FillNulls::parse(&json!({"x": "forward"}), "k")
            .unwrap()
            .apply(Table::from_input(schema, vec![]))
            .unwrap();
        assert_eq!(a.table.rows(), 0);
    }
}
