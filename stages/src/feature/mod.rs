//! `feature-extract`: derives a feature table from its inputs, either with one DataFusion
//! `sql` query over all inputs (each registered under its stage name, `NAME` or
//! `NAME_OUTPUT`), or with declarative transforms applied in order to the first input.
//!
//! Modules: `plan` reads the config into steps; `step` is the transform contract; one module
//! per family of transforms (`derive`, `datetime`, `encode`, `scale`, `aggregate`, `window`,
//! `tfidf`); `query` is the SQL form; `table` and `columns` are what transforms share.

mod aggregate;
mod columns;
mod config;
mod datetime;
mod derive;
mod encode;
mod hash_aggregate;
mod plan;
mod query;
mod scale;
mod step;
mod table;
#[cfg(test)]
mod testing;
mod tfidf;
mod window;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value, json};
use sluice_core::registry::{Arity, Derived, Issue};
use sluice_core::spec::DEFAULT_OUTPUT;
use sluice_core::stage::{Input, Stage, StageContext};
use sluice_core::{Registry, StageError, StageKind, StageSpec};
use sluice_plugin::{KeySpec, KeyType, Sources};

use self::plan::{Plan, Step};
use self::step::Failure;
use self::table::Table;

/// Keys of a feature-extract stage.
pub const FEATURE_KEYS: &[KeySpec] = &[
    KeySpec::optional(
        "sql",
        KeyType::String,
        None,
        "A query (SELECT/WITH) over the inputs; each input is a table named after its stage (`NAME`, or `NAME_OUTPUT` for a named output). Identifiers are case-sensitive. Not combined with transforms.",
    )
    .example("sql = \"SELECT CustomerID, COUNT(*) AS n FROM orders GROUP BY 1\""),
    KeySpec::optional(
        "steps",
        KeyType::Array,
        None,
        "Transforms in an explicit order, one per table (repeats allowed); instead of writing them as keys.",
    )
    .example("steps = [{ derive = { amount = \"Quantity * UnitPrice\" } }, { scale = { amount = \"standard\" } }]"),
    KeySpec::optional("derive", KeyType::Table, None, "New (or replaced) columns from SQL expressions, in order.")
        .example("derive = { amount = \"Quantity * UnitPrice\" }"),
    KeySpec::optional(
        "datetime",
        KeyType::Table,
        None,
        "Calendar parts of a date/timestamp column as `COLUMN_PART` columns, and whole days since a date.",
    )
    .example("datetime = { column = \"InvoiceDate\", parts = [\"hour\", \"day_of_week\"], days_since = \"2011-12-10\" }"),
    KeySpec::optional(
        "bucketize",
        KeyType::Table,
        None,
        "Replaces numeric columns by bucket indexes: fixed boundaries, or `{ quantiles = N }` fitted on the input.",
    )
    .example("bucketize = { Quantity = [0, 1, 5, 10, 100] }"),
    KeySpec::optional(
        "one_hot",
        KeyType::Table,
        None,
        "Replaces a column by 0/1 columns `COLUMN=VALUE` for its N most frequent values, plus `COLUMN=other`.",
    )
    .example("one_hot = { Country = { top = 10 } }"),
    KeySpec::optional("hash", KeyType::Table, None, "Replaces columns by a stable hash bucket in 0..N.")
        .example("hash = { StockCode = 1024 }"),
    KeySpec::optional(
        "scale",
        KeyType::Table,
        None,
        "Rescales numeric columns: \"standard\" (z-score) or \"minmax\" (0..1), fitted on the input.",
    )
    .example("scale = { UnitPrice = \"standard\" }"),
    KeySpec::optional(
        "group_by",
        KeyType::StringOrList,
        None,
        "Group columns for `aggregations`; the output has one row per group, sorted by these columns.",
    )
    .example("group_by = [\"CustomerID\"]"),
    KeySpec::optional(
        "aggregations",
        KeyType::Table,
        None,
        "Output columns as `NAME = { FUNC = \"COLUMN\" }`: count, count_distinct, sum, mean, min, max, first, last, recency.",
    )
    .example("aggregations = { monetary = { sum = \"amount\" }, recency = { recency = \"InvoiceDate\", reference = \"max\" } }"),
    KeySpec::optional(
        "lags",
        KeyType::Table,
        None,
        "Values N rows earlier within each `by` group ordered by `order_by`, as `COLUMN_lag_N`.",
    )
    .example("lags = { column = \"sales\", by = [\"StockCode\"], order_by = \"date\", periods = [1, 7] }"),
    KeySpec::optional(
        "rolling",
        KeyType::Table,
        None,
        "Aggregates over the last `window` rows (current included) per group, as `COLUMN_rolling_W_AGG`.",
    )
    .example("rolling = { column = \"sales\", by = [\"StockCode\"], order_by = \"date\", window = 7, aggs = [\"mean\", \"sum\"] }"),
    KeySpec::optional(
        "interactions",
        KeyType::Table,
        None,
        "A `user`, `item`, `weight` table for recommenders; rows with a null user or item are dropped and counted.",
    )
    .example("interactions = { user = \"CustomerID\", item = \"StockCode\", weight = { sum = \"Quantity\" } }"),
    KeySpec::optional(
        "tfidf",
        KeyType::Table,
        None,
        "TF-IDF of a text column, long (`row` or `key`, `term`, `tfidf`) or wide (a column per term).",
    )
    .example("tfidf = { column = \"Description\", max_features = 1000, min_df = 2 }"),
];

/// The `feature-extract` stage kind.
#[derive(Debug)]
pub struct FeatureKind;

impl StageKind for FeatureKind {
    fn name(&self) -> &'static str {
        "feature-extract"
    }

    fn doc(&self) -> &'static str {
        "Derive a feature table from the inputs: a SQL query (DataFusion) or declarative transforms."
    }

    fn version(&self) -> &'static str {
        // 2: outputs changed (NaN in float min/max, compensated rolling sums, exact
        // bucketize of integers, scaled constants); artifacts cached under 1 are not reused.
        "2"
    }

    fn arity(&self) -> Arity {
        Arity { min: 1, max: None }
    }

    fn keys(&self, _config: &Map<String, Value>, _registry: &Registry) -> Option<Vec<KeySpec>> {
        Some(FEATURE_KEYS.to_vec())
    }

    fn check(&self, stage: &StageSpec, _registry: &Registry) -> Vec<Issue> {
        match plan::parse(&stage.config) {
            Ok(Plan::Sql(sql)) => query::check(&sql, stage),
            Ok(Plan::Steps(_)) => Vec::new(),
            Err(issues) => issues,
        }
    }

    fn outputs(&self, _config: &Map<String, Value>) -> Vec<String> {
        vec![DEFAULT_OUTPUT.to_string()]
    }

    fn is_result(&self) -> bool {
        true
    }

    fn sources(&self, _stage: &StageSpec, _registry: &Registry) -> Result<Option<Sources>, StageError> {
        Ok(None)
    }

    fn build(&self, stage: &StageSpec, _registry: &Registry) -> Result<Box<dyn Stage>, StageError> {
        match plan::parse(&stage.config) {
            Ok(Plan::Sql(sql)) => Ok(Box::new(query::SqlStage { sql })),
            Ok(Plan::Steps(steps)) => Ok(Box::new(TransformStage { steps })),
            Err(issues) => Err(StageError::Internal(format!(
                "feature-extract config with problems passed compile: {}",
                issues.iter().map(|i| i.message.as_str()).collect::<Vec<_>>().join("; ")
            ))),
        }
    }

    fn checks_inputs_itself(&self, stage: &StageSpec) -> bool {
        // The query is planned against the real inputs when it runs, and its errors become
        // the same diagnostic `derive_schemas` would give.
        matches!(plan::parse(&stage.config), Ok(Plan::Sql(_)))
    }

    fn derive_schemas(
        &self,
        stage: &StageSpec,
        inputs: &[Option<SchemaRef>],
        _registry: &Registry,
    ) -> Derived {
        let mut derived = Derived::unknown(&stage.outputs);
        match plan::parse(&stage.config) {
            Err(_) => {} // `check` reports these.
            Ok(Plan::Sql(sql)) => match query::output_schema(&sql, stage, inputs) {
                Ok(schema) => derived.set(DEFAULT_OUTPUT, schema),
                Err(issue) => derived.issue(issue),
            },
            Ok(Plan::Steps(steps)) => {
                let (schema, issues) = steps_schema(&steps, inputs.first().cloned().flatten());
                derived.set(DEFAULT_OUTPUT, schema);
                for i in issues {
                    derived.issue(i);
                }
            }
        }
        derived
    }
}

/// Walks the transforms over a schema: the output schema (`None` once a step's columns
/// depend on data or a step is wrong) and the problems found on the way.
fn steps_schema(steps: &[Step], input: Option<SchemaRef>) -> (Option<SchemaRef>, Vec<Issue>) {
    let mut schema = input;
    for step in steps {
        let Some(current) = schema else {
            return (None, Vec::new());
        };
        let issues = step.transform.check(&current);
        if !issues.is_empty() {
            return (None, issues);
        }
        if !step.transform.schema_is_static() {
            return (None, Vec::new());
        }
        schema = match step.transform.apply(Table::empty(current)) {
            Ok(applied) => Some(applied.table.schema),
            Err(Failure::Config(issue)) => return (None, vec![issue]),
            Err(Failure::Stage(_)) => None,
        };
    }
    (schema, Vec::new())
}

/// Runs declarative transforms over the first input.
#[derive(Debug)]
struct TransformStage {
    steps: Vec<Step>,
}

impl TransformStage {
    /// Applies every step, recording rows in and out of each.
    fn transform(&self, table: Table) -> Result<(Table, Vec<Value>), Failure> {
        let mut operations = Vec::with_capacity(self.steps.len());
        // One NaN in, and after every step (a `derive` of `a / b` makes the sign-bit NaN),
        // so NaN keys group, count and join as one value.
        let mut table = canonical_nans(table)?;
        for (i, step) in self.steps.iter().enumerate() {
            if let Some(issue) = step.transform.check(&table.schema).into_iter().next() {
                return Err(Failure::Config(issue));
            }
            let rows_in = table.rows();
            let started = std::time::Instant::now();
            let applied = step.transform.apply(table)?;
            let ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
            table = canonical_nans(applied.table)?;
            let mut op = json!({ "step": i, "op": step.transform.op(), "key": step.key, "rows_in": rows_in, "rows_out": table.rows(), "ms": ms });
            if applied.dropped > 0 {
                op["rows_dropped"] = json!(applied.dropped);
            }
            operations.push(op);
        }
        Ok((table, operations))
    }
}

/// `table` with every NaN stored as one (see [`crate::nan`]).
fn canonical_nans(table: Table) -> Result<Table, StageError> {
    let batches = table.batches.iter().map(crate::nan::canonical_nan_batch).collect::<Result<Vec<_>, _>>()?;
    Ok(Table::new(table.schema, batches))
}

impl Stage for TransformStage {
    fn run(&self, ctx: &mut StageContext<'_>, inputs: &mut [Input]) -> Result<(), StageError> {
        let first = inputs
            .first_mut()
            .ok_or_else(|| StageError::Internal("feature-extract ran without inputs".into()))?;
        let batches = first.dataset.take_all()?;
        let table = Table::new(Arc::clone(&first.dataset.schema), batches);
        let (table, operations) = match self.transform(table) {
            Ok(done) => done,
            Err(Failure::Stage(e)) => return Err(e),
            Err(Failure::Config(issue)) => {
                let diag = sluice_core::compile::issue_diagnostic(&ctx.spec.file, ctx.spec, &issue);
                return Err(StageError::Diagnostic(Box::new(diag)));
            }
        };
        ctx.metric("operations", Value::Array(operations));
        let mut writer = ctx.output(DEFAULT_OUTPUT, Arc::clone(&table.schema))?;
        for batch in table.batches {
            writer.write(batch)?;
        }
        ctx.progress(writer.rows(), 0);
        ctx.finish(writer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
