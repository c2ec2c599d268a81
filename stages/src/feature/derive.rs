//! `derive = { amount = "Quantity * UnitPrice" }`: new columns from SQL expressions.
//! Entries apply in order, each seeing the columns derived before it; a name that exists
//! replaces that column in place. Expressions are compiled once and evaluated batch by batch,
//! so row order is kept exactly.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use sluice_core::registry::Issue;

use super::config::At;
use super::step::{Applied, Failure, Transform};
use super::table::{Table, session};
use crate::sql::sql_error;

/// One `name = "expression"` entry.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    expr: String,
    key: String,
}

/// The `derive` transform.
#[derive(Debug)]
pub(crate) struct Derive {
    entries: Vec<Entry>,
}

/// An entry compiled against the schema it will see.
struct Compiled {
    expr: Arc<dyn PhysicalExpr>,
    /// The schema after this entry.
    schema: SchemaRef,
    /// Column replaced, or `None` to append.
    replaces: Option<usize>,
    /// The entry's config key and column name, for errors while evaluating.
    key: String,
    name: String,
}

impl Derive {
    /// Reads `derive = { NAME = "EXPR", ... }`.
    pub fn parse(at: &At<'_>) -> Result<Self, Issue> {
        let mut entries = Vec::new();
        for (name, value) in at.entries()? {
            let expr = value.str()?;
            if expr.trim().is_empty() {
                return Err(value.issue("the expression is empty"));
            }
            entries.push(Entry { name: name.to_string(), expr: expr.to_string(), key: value.key.clone() });
        }
        if entries.is_empty() {
            return Err(at.issue("`derive` needs at least one `name = \"expression\"`"));
        }
        Ok(Derive { entries })
    }

    fn compile(&self, input: &SchemaRef) -> Result<Vec<Compiled>, Issue> {
        let ctx = session();
        let mut schema = Arc::clone(input);
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let sql_issue = |err: &datafusion::error::DataFusionError| {
                let s = sql_error(err, &e.expr);
                let mut issue = Issue::new(e.key.clone(), format!("SQL: {}", s.message));
                issue.at = s.offset;
                issue
            };
            if crate::sql::has_subquery(&e.expr) {
                return Err(Issue::new(e.key.clone(), format!("SQL: {}", crate::sql::NOT_PER_ROW)));
            }
            let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|err| sql_issue(&err))?;
            let logical = ctx.parse_sql_expr(&e.expr, &df_schema).map_err(|err| sql_issue(&err))?;
            let expr = crate::sql::physical_expr(&ctx, logical, &df_schema).map_err(|err| sql_issue(&err))?;
            let ty = expr.data_type(&schema).map_err(|err| sql_issue(&err))?;
            if matches!(ty, DataType::Null) {
                // A bare NULL has no type a Parquet column can carry.
                return Err(Issue::new(e.key.clone(), "the expression has no type (a bare NULL)")
                    .with_help("cast it, e.g. \"CAST(NULL AS DOUBLE)\""));
            }
            let field = Field::new(e.name.clone(), ty, true);
            let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            let replaces = schema.index_of(&e.name).ok();
            match replaces {
                Some(i) => fields[i] = field,
                None => fields.push(field),
            }
            schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
            out.push(Compiled {
                expr,
                schema: Arc::clone(&schema),
                replaces,
                key: e.key.clone(),
                name: e.name.clone(),
            });
        }
        Ok(out)
    }
}

impl Transform for Derive {
    fn op(&self) -> &'static str {
        "derive"
    }

    fn check(&self, input: &Schema) -> Vec<Issue> {
        match self.compile(&Arc::new(input.clone())) {
            Ok(_) => Vec::new(),
            Err(i) => vec![i],
        }
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        let compiled = self.compile(&input.schema)?;
        let Some(last) = compiled.last() else {
            return Ok(input.into());
        };
        let out_schema = Arc::clone(&last.schema);
        let table = input.map_batches(out_schema, |b| {
            let mut batch = b.clone();
            for c in &compiled {
                // A value the expression cannot compute (a division by zero, a failed
                // cast) is reported at the entry that computes it.
                let values =
                    c.expr.evaluate(&batch).and_then(|v| v.into_array(batch.num_rows())).map_err(|e| {
                        Issue::new(
                            c.key.clone(),
                            format!("computing `{}`: {}", c.name, sql_error(&e, "").message),
                        )
                    })?;
                let mut columns = batch.columns().to_vec();
                match c.replaces {
                    Some(i) => columns[i] = values,
                    None => columns.push(values),
                }
                batch = arrow::array::RecordBatch::try_new(Arc::clone(&c.schema), columns)?;
            }
            Ok(batch.columns().to_vec())
        })?;
        Ok(table.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Array, Float64Array, Int64Array, StringArray};
    use serde_json::json;

    use super::*;
    use crate::feature::testing::{batch, f64s};

    fn derive(v: serde_json::Value) -> Derive {
        Derive::parse(&At::new("derive", &v)).unwrap()
    }

    #[test]
    fn computes_in_order_and_keeps_nulls() {
        let t = batch(vec![
            ("Quantity", Arc::new(Int64Array::from(vec![Some(2), None, Some(3)]))),
            ("UnitPrice", Arc::new(Float64Array::from(vec![1.5, 2.0, 0.5]))),
        ]);
        let d = derive(json!({ "amount": "Quantity * UnitPrice", "double": "amount * 2" }));
        assert!(d.check(&t.schema).is_empty());
        let out = d.apply(t).unwrap().table;
        assert_eq!(f64s(&out, "amount"), vec![Some(3.0), None, Some(1.5)]);
        assert_eq!(f64s(&out, "double"), vec![Some(6.0), None, Some(3.0)]);
    }

    #[test]
    fn a_value_that_cannot_be_computed_is_reported_at_its_entry() {
        let t = batch(vec![("q", Arc::new(Int64Array::from(vec![1, 0])))]);
        let Err(Failure::Config(issue)) = derive(json!({ "r": "10 / q" })).apply(t) else {
            panic!("expected an issue at the entry")
        };
        assert_eq!(issue.key, "derive.r");
        assert!(issue.message.starts_with("computing `r`: ") && issue.message.contains("zero"), "{issue:?}");
    }

    #[test]
    fn null_handling_functions_run_like_in_a_query() {
        let t = batch(vec![("s", Arc::new(StringArray::from(vec![Some("ab"), None])))]);
        let out = derive(json!({ "s": "coalesce(s, 'x')", "n": "nvl(s, 'y')" })).apply(t).unwrap().table;
        let col = |i: usize| out.batches[0].column(i).as_any().downcast_ref::<StringArray>().unwrap().clone();
        assert_eq!((col(0).value(0), col(0).value(1)), ("ab", "x"));
        assert_eq!((col(1).value(0), col(1).value(1)), ("ab", "x"));
    }

    #[test]
    fn replaces_an_existing_column_in_place() {
        let t = batch(vec![
            ("name", Arc::new(StringArray::from(vec![Some("Ünïcode"), None]))),
            ("x", Arc::new(Int64Array::from(vec![1, 2]))),
        ]);
        let out = derive(json!({ "name": "upper(name)" })).apply(t).unwrap().table;
        assert_eq!(out.schema.field(0).name(), "name");
        let names = out.batches[0].column(0).as_any().downcast_ref::<StringArray>().unwrap().clone();
        assert_eq!(names.value(0), "ÜNÏCODE");
        assert!(names.is_null(1));
    }

    #[test]
    fn unknown_column_points_inside_the_expression() {
        let t = batch(vec![("Quantity", Arc::new(Int64Array::from(vec![1])))]);
        let issues = derive(json!({ "amount": "Quantity * UnitPrce" })).check(&t.schema);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "derive.amount");
        assert!(issues[0].message.contains("UnitPrce"), "{}", issues[0].message);
        assert_eq!(issues[0].at, Some(11));
    }
}
