//! SQL in a clean stage: `filter` (a boolean expression, planned once against the schema at
//! its step and evaluated batch by batch) and `sql` (a whole query over the table `input`).

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::{DFSchema, SchemaError, TableReference};
use datafusion::datasource::MemTable;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use rayon::prelude::*;
use serde_json::Value;
use sluice_core::StageError;
use sluice_core::registry::Issue;
use sluice_plugin::type_name;

use super::steps::unknown_column;
use super::table::{Applied, OpError, Table};
use crate::sql::{parse_query, referenced_tables, runtime, session, sql_error};

/// `filter = "Quantity > 0 AND UnitPrice > 0"`.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The expression.
    pub sql: String,
    /// Its key path.
    pub key: String,
}

/// `sql = "SELECT ... FROM input"`.
#[derive(Debug, Clone)]
pub struct SqlStep {
    /// The query.
    pub sql: String,
    /// Its key path.
    pub key: String,
}

/// The table name a `sql` step always reads.
pub const INPUT_TABLE: &str = "input";

/// Byte offset of a 1-based line and column (in characters) inside `text`.
fn offset_of(text: &str, line: u64, column: u64) -> Option<usize> {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            let col = l.char_indices().nth(column.saturating_sub(1) as usize).map_or(l.len(), |(b, _)| b);
            return Some(start + col);
        }
        start += l.len();
    }
    None
}

/// Byte offset of `word` as a whole identifier in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(text[..i].chars().next_back()) && !ident(text[i + word.len()..].chars().next())
    })
}

fn string_of(value: &Value, key: &str, op: &str, example: &str) -> Result<String, Vec<Issue>> {
    match value.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
        _ => Err(vec![
            Issue::new(key, format!("`{op}` takes an SQL string, found {value}"))
                .with_help(format!("write e.g. {example}")),
        ]),
    }
}

impl Filter {
    /// Reads the op's config and checks the expression's syntax.
    pub fn parse(value: &Value, key: &str) -> Result<Filter, Vec<Issue>> {
        let sql = string_of(value, key, "filter", "filter = \"Quantity > 0 AND UnitPrice > 0\"")?;
        if let Err(e) = DFParser::parse_sql_into_expr(&sql) {
            let e = sql_error(&e, &sql);
            let mut issue = Issue::new(key, format!("filter: {}", e.message));
            issue.at = e.offset;
            return Err(vec![issue]);
        }
        Ok(Filter { sql, key: key.to_string() })
    }

    /// Plans the expression against `schema`: unknown columns (pointing inside the
    /// expression), planning errors and a non-boolean result become issues.
    pub fn plan(&self, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>, Vec<Issue>> {
        let ctx = session();
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| {
            vec![Issue::new(&self.key, format!("filter: {}", sql_error(&e, &self.sql).message))]
        })?;
        let located = |e: &datafusion::error::DataFusionError| {
            let e = sql_error(e, &self.sql);
            let mut issue = Issue::new(&self.key, format!("filter: {}", e.message));
            issue.at = e.offset;
            vec![issue]
        };
        if crate::sql::has_subquery(&self.sql) {
            return Err(vec![Issue::new(&self.key, format!("filter: {}", crate::sql::NOT_PER_ROW))]);
        }
        let expr = ctx.parse_sql_expr(&self.sql, &df_schema).map_err(|e| match e.find_root() {
            // Our own message: "did you mean" from the same suggester as every other key.
            datafusion::error::DataFusionError::SchemaError(boxed, _)
                if let SchemaError::FieldNotFound { field, .. } = boxed.as_ref() =>
            {
                let mut issue = unknown_column(&field.name, &self.key, schema);
                issue.at = sql_error(&e, &self.sql).offset.or_else(|| find_word(&self.sql, &field.name));
                vec![issue]
            }
            _ => located(&e),
        })?;
        let mut issues = Vec::new();
        let mut refs: Vec<_> = expr.column_refs().into_iter().collect();
        refs.sort_by_key(|c| c.spans().first().map(|s| (s.start.line, s.start.column)));
        for col in refs {
            if schema.index_of(&col.name).is_err() {
                let mut issue = unknown_column(&col.name, &self.key, schema);
                issue.at =
                    col.spans().first().and_then(|s| offset_of(&self.sql, s.start.line, s.start.column));
                issues.push(issue);
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let phys = crate::sql::physical_expr(&ctx, expr, &df_schema).map_err(|e| located(&e))?;
        match phys.data_type(schema) {
            Ok(DataType::Boolean | DataType::Null) => Ok(phys),
            Ok(other) => Err(vec![
                Issue::new(
                    &self.key,
                    format!(
                        "a filter must be a condition (true/false), but this one is {}",
                        type_name(&other)
                    ),
                )
                .with_help("compare it, e.g. \"Quantity > 0\""),
            ]),
            Err(e) => Err(located(&e)),
        }
    }

    /// Keeps rows where the expression is true; false and NULL remove the row.
    ///
    /// With rows only marked as removed, the expression first runs over every row, so no
    /// copy is made; should it fail, it runs again over the rows left alone, so a value an
    /// earlier op removed (a zero divisor, say) cannot fail the filter.
    pub fn apply(&self, table: Table, track: bool) -> Result<Applied, OpError> {
        let phys = self.plan(&table.schema).map_err(|mut i| OpError::Issue(i.remove(0)))?;
        let run = |t: &Table| {
            t.batches
                .par_iter()
                .map(|b| {
                    evaluate(phys.as_ref(), b).map_err(|m| Issue::new(&self.key, format!("filter: {m}")))
                })
                .collect::<Result<Vec<BooleanArray>, Issue>>()
        };
        let (table, masks) = match run(&table) {
            Ok(masks) => (table, masks),
            Err(_) if table.selection().is_some() => {
                let table = table.materialize()?;
                let masks = run(&table).map_err(OpError::Issue)?;
                (table, masks)
            }
            Err(issue) => return Err(OpError::Issue(issue)),
        };
        // NULL results count only where the row was still in the table.
        let null_rows: usize = match table.selection() {
            None => masks.iter().map(Array::null_count).sum(),
            Some(sel) => masks
                .iter()
                .zip(sel)
                .filter(|(m, _)| m.null_count() > 0)
                .map(|(m, s)| s.values().set_indices().filter(|&r| m.is_null(r)).count())
                .sum(),
        };
        Ok(Applied::kept(table, masks, track)?.with("null_rows", null_rows as u64))
    }
}

fn evaluate(phys: &dyn PhysicalExpr, batch: &RecordBatch) -> Result<BooleanArray, String> {
    let value = phys.evaluate(batch).map_err(|e| e.strip_backtrace())?;
    let array = value.into_array(batch.num_rows()).map_err(|e| e.strip_backtrace())?;
    match array.data_type() {
        DataType::Boolean => Ok(array.as_boolean().clone()),
        DataType::Null => Ok(BooleanArray::new_null(batch.num_rows())),
        other => Err(format!("the condition evaluated to {other}, not true/false")),
    }
}

impl SqlStep {
    /// Reads the op's config and checks the query's syntax.
    pub fn parse(value: &Value, key: &str) -> Result<SqlStep, Vec<Issue>> {
        let sql =
            string_of(value, key, "sql", "sql = \"SELECT *, Quantity * UnitPrice AS amount FROM input\"")?;
        if let Err(e) = parse_query(&sql) {
            let mut issue = Issue::new(key, format!("SQL: {}", e.message));
            issue.at = e.offset;
            return Err(vec![issue]);
        }
        Ok(SqlStep { sql, key: key.to_string() })
    }

    /// Every table the query reads must be `input` or the stage's input table.
    pub fn check_tables(&self, input_table: Option<&str>) -> Vec<Issue> {
        let Ok(stmt) = parse_query(&self.sql) else { return Vec::new() };
        let allowed: Vec<&str> = std::iter::once(INPUT_TABLE).chain(input_table).collect();
        referenced_tables(&stmt)
            .into_iter()
            .filter(|t| !allowed.contains(&t.as_str()))
            .map(|t| {
                let mut issue = Issue::new(
                    &self.key,
                    format!("the query reads table `{t}`; a clean step only sees its own data"),
                )
                .with_help(format!("read `{}`", allowed.join("` or `")));
                issue.at = self.sql.find(&t);
                issue
            })
            .collect()
    }

    fn register(
        &self,
        ctx: &SessionContext,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
        input_table: Option<&str>,
    ) -> Result<(), Vec<Issue>> {
        let table = Arc::new(MemTable::try_new(schema.clone(), vec![batches]).map_err(|e| self.issue(&e))?);
        for name in std::iter::once(INPUT_TABLE).chain(input_table.filter(|t| *t != INPUT_TABLE)) {
            ctx.register_table(TableReference::bare(name), table.clone()).map_err(|e| self.issue(&e))?;
        }
        Ok(())
    }

    fn issue(&self, e: &datafusion::error::DataFusionError) -> Vec<Issue> {
        let e = sql_error(e, &self.sql);
        let mut issue = Issue::new(&self.key, format!("SQL: {}", e.message));
        issue.at = e.offset;
        vec![issue]
    }

    /// The result schema of the query over a table with `schema`.
    pub fn derive(&self, schema: &SchemaRef, input_table: Option<&str>) -> Result<SchemaRef, Vec<Issue>> {
        let rt = runtime().map_err(|m| vec![Issue::new(&self.key, m)])?;
        rt.block_on(async {
            let ctx = session();
            self.register(&ctx, schema, Vec::new(), input_table)?;
            let df = ctx.sql(&self.sql).await.map_err(|e| self.issue(&e))?;
            let schema = df.schema().inner().clone();
            // The next step finds columns by name: two of one name would be ambiguous.
            match crate::sql::duplicate_columns(&schema, &self.key) {
                Some(issue) => Err(vec![issue]),
                None => Ok(schema),
            }
        })
    }

    /// Runs the query; its result replaces the rows (which then no longer map to input rows).
    pub fn apply(&self, table: Table, input_table: Option<&str>) -> Result<Applied, OpError> {
        let rt = runtime().map_err(|m| OpError::Stage(StageError::Failed(m)))?;
        let first = |mut v: Vec<Issue>| OpError::Issue(v.remove(0));
        let (schema, batches) = rt.block_on(async {
            let ctx = session();
            self.register(&ctx, &table.schema, table.batches, input_table).map_err(first)?;
            let df = ctx.sql(&self.sql).await.map_err(|e| first(self.issue(&e)))?;
            let schema = df.schema().inner().clone();
            let batches = df.collect().await.map_err(|e| first(self.issue(&e)))?;
            Ok::<_, OpError>((schema, batches))
        })?;
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        Ok(Applied::same(Table::new(schema, batches, None)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use serde_json::json;

    use super::*;

    fn input() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Quantity", DataType::Int64, true),
            Field::new("UnitPrice", DataType::Float64, true),
            Field::new("Country", DataType::Utf8, true),
        ]));
        let b = |q: Vec<Option<i64>>, p: Vec<Option<f64>>, c: Vec<Option<&str>>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(q)),
                    Arc::new(Float64Array::from(p)),
                    Arc::new(StringArray::from(c)),
                ],
            )
            .unwrap()
        };
        Table::from_input(
            schema.clone(),
            vec![
                b(
                    vec![Some(1), Some(-1), None],
                    vec![Some(2.0), Some(1.0), Some(1.0)],
                    vec![Some("France"), Some("EIRE"), None],
                ),
                b(vec![Some(5)], vec![Some(0.0)], vec![Some("Österreich")]),
            ],
        )
    }

    #[test]
    fn filter_keeps_true_rows_and_counts_nulls() {
        let f = Filter::parse(&json!("Quantity > 0"), "filter").unwrap();
        let a = f.apply(input(), true).unwrap();
        assert_eq!(a.table.rows(), 2);
        assert_eq!(a.removed, [1, 2]);
        assert_eq!(a.extra, [("null_rows", json!(1))]);
        let f =
            Filter::parse(&json!("Quantity > 0 AND UnitPrice > 0 AND Country <> 'EIRE'"), "filter").unwrap();
        assert_eq!(f.apply(input(), false).unwrap().table.rows(), 1);
        let f = Filter::parse(&json!("starts_with(Country, 'Ö')"), "filter").unwrap();
        assert_eq!(f.apply(input(), false).unwrap().table.rows(), 1);
    }

    #[test]
    fn a_filter_after_a_filter_never_sees_the_rows_the_first_removed() {
        // Quantity 0 would divide by zero, but the first filter removed that row.
        let schema = Arc::new(Schema::new(vec![Field::new("Quantity", DataType::Int64, true)]));
        let q = Int64Array::from(vec![Some(0), Some(2), None, Some(5), Some(20)]);
        let t =
            Table::from_input(schema.clone(), vec![RecordBatch::try_new(schema, vec![Arc::new(q)]).unwrap()]);
        let first = Filter::parse(&json!("Quantity <> 0"), "filter").unwrap().apply(t, true).unwrap();
        assert_eq!((first.removed.as_slice(), first.table.rows()), (&[0, 2][..], 3));
        let second = Filter::parse(&json!("10 / Quantity > 1"), "steps.2.filter").unwrap();
        let a = second.apply(first.table, true).unwrap();
        assert_eq!(a.removed, [4]);
        assert_eq!(a.table.rows(), 2);
        // The NULL row was removed by the first filter, so it is no NULL result here.
        assert_eq!(a.extra, [("null_rows", json!(0))]);
    }

    #[test]
    fn filter_errors_point_inside_the_expression() {
        let e = Filter::parse(&json!("Quantity >"), "steps.1.filter").unwrap_err();
        assert_eq!(e[0].key, "steps.1.filter");
        let sql = "Quantity > 0 AND UnitPrise > 0";
        let f = Filter::parse(&json!(sql), "filter").unwrap();
        let issues = f.plan(&input().schema).unwrap_err();
        assert_eq!(issues[0].message, "there is no column `UnitPrise` at this step");
        assert_eq!(issues[0].help.as_deref(), Some("did you mean `UnitPrice`?"));
        assert_eq!(issues[0].at, sql.find("UnitPrise"));
        let f = Filter::parse(&json!("Quantity + 1"), "filter").unwrap();
        assert!(f.plan(&input().schema).unwrap_err()[0].message.contains("must be a condition"));
        for sql in ["EXISTS (SELECT 1 FROM orders)", "Quantity > (SELECT max(q) FROM t)", "sum(Quantity) > 1"]
        {
            let f = Filter::parse(&json!(sql), "filter").unwrap();
            let issues = f.plan(&input().schema).unwrap_err();
            assert!(
                issues[0].message.contains("cannot be used here: the expression is computed row by row"),
                "{sql}: {issues:?}"
            );
        }
        // coalesce only runs simplified, as in a query.
        let f = Filter::parse(&json!("coalesce(Country, 'x') <> 'EIRE'"), "filter").unwrap();
        assert_eq!(f.apply(input(), false).unwrap().table.rows(), 3);
    }

    #[test]
    fn filter_on_empty_input() {
        let t = Table::from_input(input().schema, Vec::new());
        let a = Filter::parse(&json!("Quantity > 0"), "filter").unwrap().apply(t, true).unwrap();
        assert_eq!(a.table.rows(), 0);
    }

    #[test]
    fn sql_step_reads_input_or_the_stage_table() {
        let s = SqlStep::parse(
            &json!("SELECT Country, Quantity * 2 AS q2 FROM orders WHERE Quantity > 0"),
            "sql",
        )
        .unwrap();
        assert!(s.check_tables(Some("orders")).is_empty());
        assert_eq!(s.check_tables(None)[0].at, Some(40));
        let schema = s.derive(&input().schema, Some("orders")).unwrap();
        assert_eq!(schema.field(1).name(), "q2");
        let a = s.apply(input(), Some("orders")).unwrap();
        assert_eq!(a.table.rows(), 2);
        assert!(a.table.ids.is_none());
        let bad = SqlStep::parse(&json!("SELECT Countyr FROM input"), "sql").unwrap();
        assert!(bad.derive(&input().schema, None).is_err());
        // Regression: a result naming a column twice was written, and the next step picked
        // one of the two silently.
        let twice = SqlStep::parse(
            &json!("SELECT a.Country, b.Country FROM input a JOIN input b ON a.Quantity = b.Quantity"),
            "steps.1.sql",
        )
        .unwrap();
        let issues = twice.derive(&input().schema, None).unwrap_err();
        assert_eq!(issues[0].key, "steps.1.sql");
        assert!(issues[0].message.contains("more than one column named `Country`"), "{issues:?}");
        assert!(SqlStep::parse(&json!("DROP TABLE input"), "sql").is_err());
    }
}
