//! `clean`: a sequence of table operations — select, drop, rename, cast, drop_nulls,
//! fill_nulls, dedup, filter, trim, lowercase, clip, parse_timestamp, sql — applied in the
//! order written. Every removed row is counted per operation in the run record and, with
//! `keep_rejects = true`, written to a `rejects` output with the step that removed it.
//!
//! Module map: [`steps`] reads the op sequence from the config; one module per family of
//! operations ([`columns`], [`convert`], [`nulls`], [`dedup`], [`expr`], [`text`], [`clip`],
//! with [`stats`] for the statistics they use); [`table`] is the data flowing between them;
//! [`rejects`] builds the `rejects` output.

pub mod clip;
pub mod columns;
pub mod compact;
pub mod convert;
pub mod dedup;
pub mod expr;
pub mod nulls;
pub mod rejects;
pub mod stats;
pub mod steps;
pub mod table;
pub mod text;

use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value, json};
use sluice_core::latch::Latch;
use sluice_core::registry::{Arity, Derived, Issue};
use sluice_core::spec::DEFAULT_OUTPUT;
use sluice_core::stage::{Input, Stage, StageContext};
use sluice_core::{Registry, StageError, StageKind, StageSpec};
use sluice_plugin::{KeySpec, KeyType, Sources};

use self::rejects::Rejects;
use self::steps::{Op, Step};
use self::table::{Applied, OpError, Table};

/// Keys of a clean stage: one per operation, plus `steps` and `keep_rejects`.
pub const CLEAN_KEYS: &[KeySpec] = &[
    KeySpec::optional("select", KeyType::StringOrList, None, "Keep only these columns, in this order.")
        .example("select = [\"InvoiceNo\", \"CustomerID\", \"Quantity\"]"),
    KeySpec::optional("drop", KeyType::StringOrList, None, "Remove these columns.").example("drop = [\"Description\"]"),
    KeySpec::optional("rename", KeyType::Table, None, "Rename columns: { old = \"new\" }.")
        .example("rename = { CustomerID = \"customer_id\" }"),
    KeySpec::optional(
        "cast",
        KeyType::Table,
        None,
        "Convert column types ({ col = \"type\" }, or { columns = {...}, on_error = \"fail\" | \"null\" | \"reject\" } for values that do not convert).",
    )
    .example("cast = { columns = { Quantity = \"int64\" }, on_error = \"null\" }"),
    KeySpec::optional("drop_nulls", KeyType::StringOrList, None, "Remove rows with a NULL in these columns, or in \"any\" column.")
        .example("drop_nulls = [\"CustomerID\"]"),
    KeySpec::optional(
        "fill_nulls",
        KeyType::Table,
        None,
        "Replace NULLs per column: a constant, \"mean\", \"median\", \"mode\", \"forward\", or { method = \"forward\", by = ..., order_by = ... }.",
    )
    .example("fill_nulls = { Description = \"unknown\", UnitPrice = \"median\" }"),
    KeySpec::optional(
        "dedup",
        KeyType::Any,
        None,
        "Remove duplicate rows: true = rows equal in every column (keep the first), or { keys = [...], keep = \"first\" | \"last\", order_by = \"col\" }.",
    )
    .example("dedup = { keys = [\"InvoiceNo\", \"StockCode\"], keep = \"last\", order_by = \"InvoiceDate\" }"),
    KeySpec::optional("filter", KeyType::String, None, "Keep rows where this SQL condition is true (false and NULL remove the row).")
        .example("filter = \"Quantity > 0 AND UnitPrice > 0\""),
    KeySpec::optional("trim", KeyType::StringOrList, None, "Remove leading and trailing whitespace from these string columns.")
        .example("trim = [\"Description\"]"),
    KeySpec::optional("lowercase", KeyType::StringOrList, None, "Lowercase these string columns.").example("lowercase = [\"Country\"]"),
    KeySpec::optional(
        "clip",
        KeyType::Table,
        None,
        "Bound numeric columns: { min = ..., max = ... }, { quantiles = [low, high] } or { iqr = k }.",
    )
    .example("clip = { UnitPrice = { quantiles = [0.01, 0.99] } }"),
    KeySpec::optional(
        "parse_timestamp",
        KeyType::Table,
        None,
        "Parse string columns as timestamps with a strftime format ({ col = \"format\" }, or { columns = {...}, on_error = ... }).",
    )
    .example("parse_timestamp = { InvoiceDate = \"%m/%d/%Y %H:%M\" }"),
    KeySpec::optional("sql", KeyType::String, None, "Replace the table with a query over it (the table is `input`, or the input's name).")
        .example("sql = \"SELECT *, Quantity * UnitPrice AS amount FROM input\""),
    KeySpec::optional(
        "steps",
        KeyType::Array,
        None,
        "The operations as a list of one-operation tables, applied in this order (an op may repeat); instead of op keys.",
    )
    .example("steps = [{ filter = \"Quantity > 0\" }, { dedup = true }, { filter = \"UnitPrice > 0\" }]"),
    KeySpec::optional(
        "keep_rejects",
        KeyType::Bool,
        Some("false"),
        "Write every removed row to the `rejects` output: the input columns plus rejected_step, rejected_op, rejected_reason.",
    )
    .example("keep_rejects = true"),
];

/// The `clean` stage kind.
#[derive(Debug)]
pub struct CleanKind;

fn keep_rejects(config: &Map<String, Value>) -> bool {
    config.get("keep_rejects").and_then(Value::as_bool).unwrap_or(false)
}

fn input_table(stage: &StageSpec) -> Option<String> {
    stage.inputs.first().map(|i| i.table_name())
}

/// The schema after `step`, or `None` when it cannot be known (a failed `sql` plan);
/// problems go to `issues`.
fn derive_step(
    step: &Step,
    schema: &SchemaRef,
    input_table: Option<&str>,
    issues: &mut Vec<Issue>,
) -> Option<SchemaRef> {
    Some(match &step.op {
        Op::Select(cols) => columns::derive_projection(schema, cols, true, &step.key, issues),
        Op::Drop(cols) => columns::derive_projection(schema, cols, false, &step.key, issues),
        Op::Rename(r) => columns::derive_rename(schema, r, issues),
        Op::Cast(c) => c.derive(schema, issues),
        Op::ParseTimestamp(p) => p.derive(schema, issues),
        Op::DropNulls(d) => d.derive(schema, issues),
        Op::FillNulls(f) => f.derive(schema, issues),
        Op::Dedup(d) => d.derive(schema, issues),
        Op::Text(t) => t.derive(schema, issues),
        Op::Clip(c) => c.derive(schema, issues),
        Op::Filter(f) => {
            if let Err(mut found) = f.plan(schema) {
                issues.append(&mut found);
            }
            schema.clone()
        }
        Op::Sql(s) => match s.derive(schema, input_table) {
            Ok(out) => out,
            Err(mut found) => {
                issues.append(&mut found);
                return None;
            }
        },
    })
}

impl StageKind for CleanKind {
    fn name(&self) -> &'static str {
        "clean"
    }

    fn doc(&self) -> &'static str {
        "Clean one input with operations applied in order (drop_nulls, dedup, filter, cast, fill_nulls, ...); removed rows are counted and can be kept."
    }

    fn version(&self) -> &'static str {
        // 2: outputs changed (canonical NaN, inward decimal clip bounds, exact casts and
        // medians, %y 69 as 1969); artifacts cached under 1 are not reused.
        "2"
    }

    fn arity(&self) -> Arity {
        Arity { min: 1, max: Some(1) }
    }

    fn keys(&self, _config: &Map<String, Value>, _registry: &Registry) -> Option<Vec<KeySpec>> {
        Some(CLEAN_KEYS.to_vec())
    }

    fn check(&self, stage: &StageSpec, _registry: &Registry) -> Vec<Issue> {
        let (steps, mut issues) = steps::parse(&stage.config);
        let table = input_table(stage);
        for s in &steps {
            if let Op::Sql(q) = &s.op {
                issues.extend(q.check_tables(table.as_deref()));
            }
        }
        if keep_rejects(&stage.config)
            && let Some(sql) = steps.iter().position(|s| matches!(s.op, Op::Sql(_)))
            && let Some(later) = steps[sql..].iter().find(|s| s.op.removes_rows())
        {
            issues.push(
                Issue::new(&later.key, format!("with `keep_rejects`, rows removed after a `sql` step cannot be traced back to the input (step {} is `sql`)", sql))
                    .with_help("move the `sql` step after the steps that remove rows, or filter inside the query"),
            );
        }
        issues
    }

    fn outputs(&self, config: &Map<String, Value>) -> Vec<String> {
        let mut out = vec![DEFAULT_OUTPUT.to_string()];
        if keep_rejects(config) {
            out.push("rejects".to_string());
        }
        out
    }

    fn is_result(&self) -> bool {
        false
    }

    fn sources(&self, _stage: &StageSpec, _registry: &Registry) -> Result<Option<Sources>, StageError> {
        Ok(None)
    }

    fn build(&self, stage: &StageSpec, _registry: &Registry) -> Result<Box<dyn Stage>, StageError> {
        let (steps, issues) = steps::parse(&stage.config);
        if let Some(issue) = issues.into_iter().next() {
            return Err(diagnostic(stage, &issue));
        }
        Ok(Box::new(CleanStage { steps, keep_rejects: keep_rejects(&stage.config) }))
    }

    fn derive_schemas(
        &self,
        stage: &StageSpec,
        inputs: &[Option<SchemaRef>],
        _registry: &Registry,
    ) -> Derived {
        let mut derived = Derived::unknown(&stage.outputs);
        let Some(Some(input)) = inputs.first() else { return derived };
        let (steps, _) = steps::parse(&stage.config);
        let table = input_table(stage);
        let mut schema = Some(input.clone());
        for step in &steps {
            let Some(current) = &schema else { break };
            let mut issues = Vec::new();
            schema = derive_step(step, current, table.as_deref(), &mut issues);
            for i in issues {
                derived.issue(i);
            }
        }
        derived.set(DEFAULT_OUTPUT, schema);
        if keep_rejects(&stage.config) {
            match rejects::schema(input) {
                Ok(s) => derived.set("rejects", Some(s)),
                Err(issue) => derived.issue(issue),
            }
        }
        derived
    }
}

fn diagnostic(spec: &StageSpec, issue: &Issue) -> StageError {
    StageError::Diagnostic(Box::new(sluice_core::compile::issue_diagnostic(&spec.file, spec, issue)))
}

struct CleanStage {
    steps: Vec<Step>,
    keep_rejects: bool,
}

impl Stage for CleanStage {
    fn run(&self, ctx: &mut StageContext<'_>, inputs: &mut [Input]) -> Result<(), StageError> {
        let input =
            inputs.first_mut().ok_or_else(|| StageError::Internal("clean stage without input".into()))?;
        let spec = ctx.spec;
        let input_schema = input.dataset.schema.clone();
        // With rejects kept, the input rows stay shared anyway: nothing to wait for.
        let encoder = if self.keep_rejects { None } else { input.dataset.encoder().cloned() };
        // Moved out, so each operation's input is freed as soon as the next table exists.
        let table = Table::from_input(input_schema.clone(), input.dataset.take_all()?);
        // The input rows stay alive only when rejects are written from them.
        let originals = if self.keep_rejects { table.batches.clone() } else { Vec::new() };
        let mut table = table.canonical_nans()?;
        let mut rejects = Rejects::new(self.keep_rejects);
        let mut operations = Vec::with_capacity(self.steps.len());
        let mut removed_total = 0u64;
        let mut rejected_total = 0u64;
        for step in &self.steps {
            let mut issues = Vec::new();
            let out = derive_step(step, &table.schema, Some(input.table_name.as_str()), &mut issues);
            if let Some(issue) = issues.first() {
                return Err(diagnostic(spec, issue));
            }
            let rows_in = table.rows() as u64;
            let started = std::time::Instant::now();
            let mut waited = std::time::Duration::ZERO;
            if !step.op.works_on_selection() {
                (table, waited) = materialize(spec, table, encoder.as_ref())?;
            }
            let applied =
                apply(step, table, out, self.keep_rejects, &input.table_name).map_err(|e| match e {
                    OpError::Issue(issue) => diagnostic(spec, &issue),
                    OpError::Stage(e) => e,
                })?;
            let Applied { table: next, removed, reasons, removed_count, extra } = applied;
            // Rows cannot be traced through a query: one that gives back a different number
            // of rows (a `WHERE`, or a `UNION` that drops some and repeats others) may have
            // dropped rows that `rejects` would never see.
            if self.keep_rejects && matches!(step.op, Op::Sql(_)) && next.rows() as u64 != rows_in {
                return Err(diagnostic(spec, &sql_changed_rows(step, rows_in, next.rows() as u64)));
            }
            // Only these ops compute new float values (`0.0 / 0.0` in a query, "-NaN" cast).
            table = if matches!(step.op, Op::Sql(_) | Op::Cast(_)) { next.canonical_nans()? } else { next };
            // A `sql` step cannot say which rows it dropped (they are not in `rejects`), but
            // how many it did still counts as removed.
            rejected_total += removed_count;
            removed_total += removed_count.max(rows_in.saturating_sub(table.rows() as u64));
            rejects.add(step, removed, reasons);
            let mut record = json!({
                "step": step.index,
                "op": step.name,
                "rows_in": rows_in,
                "rows_out": table.rows() as u64,
                // As the docs list it per operation (a `sql` step may also add rows: 0).
                "rows_removed": rows_in.saturating_sub(table.rows() as u64),
            });
            if let Some(obj) = record.as_object_mut() {
                for (k, v) in extra {
                    obj.insert(k.to_string(), v);
                }
                let ms = |d: std::time::Duration| json!((d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0);
                obj.insert("ms".into(), ms(started.elapsed().saturating_sub(waited)));
                if !waited.is_zero() {
                    // Not the operation's own time: see `materialize`.
                    obj.insert("waited_for_input_ms".into(), ms(waited));
                }
            }
            operations.push(record);
            tracing::debug!(stage = %spec.name, step = step.index, op = step.name, rows = table.rows(), "clean step done");
        }
        let (table, _) = materialize(spec, table, encoder.as_ref())?;
        let mut out = ctx.output(DEFAULT_OUTPUT, table.schema.clone())?;
        for b in table.batches {
            out.write(b)?;
        }
        ctx.progress(out.rows(), 0);
        ctx.finish(out)?;
        if self.keep_rejects {
            let schema = rejects::schema(&input_schema).map_err(|i| diagnostic(spec, &i))?;
            let mut w = ctx.output("rejects", schema.clone())?;
            for b in rejects.batches(&schema, &originals)? {
                w.write(b)?;
            }
            ctx.finish(w)?;
            ctx.metric("rows_rejected", rejected_total);
        }
        ctx.metric("operations", Value::Array(operations));
        ctx.metric("rows_removed", removed_total);
        Ok(())
    }
}

/// With `keep_rejects`, a `sql` step removed rows: a query's result does not map back to
/// input rows, so they cannot go to `rejects`, and nothing may be dropped silently.
fn sql_changed_rows(step: &Step, rows_in: u64, rows_out: u64) -> Issue {
    let rows = |n: u64| if n == 1 { "1 row".to_string() } else { format!("{n} rows") };
    Issue::new(
        &step.key,
        format!(
            "with `keep_rejects`, this `sql` step (step {}) was given {} and returned {}; rows cannot be traced through a query, so removed ones could not go to `rejects`",
            step.index,
            rows(rows_in),
            rows(rows_out)
        ),
    )
    .with_help("remove rows with a `filter` step before the `sql` step (its rows go to `rejects`), keep the query row for row, or turn `keep_rejects` off")
}

/// Keeps only the selected rows. While the input's Parquet file is still being encoded
/// its buffers are shared, and removing rows would copy every kept row into fresh memory;
/// waiting for the encoder lets [`Table::materialize`] compact them in place instead,
/// which costs less than the copy whenever the cores are busy anyway (docs/decisions.md).
/// Returns the table and how long it waited.
fn materialize(
    spec: &StageSpec,
    table: Table,
    encoder: Option<&Latch>,
) -> Result<(Table, std::time::Duration), StageError> {
    let mut waited = std::time::Duration::ZERO;
    if table.selection().is_some()
        && let Some(latch) = encoder
        && !latch.is_open()
    {
        waited = latch.wait();
        tracing::debug!(stage = %spec.name, ms = waited.as_secs_f64() * 1000.0, "waited for the input's encoder");
    }
    Ok((table.materialize()?, waited))
}

fn apply(
    step: &Step,
    table: Table,
    out: Option<SchemaRef>,
    track: bool,
    input_table: &str,
) -> Result<Applied, OpError> {
    let out = out.unwrap_or_else(|| table.schema.clone());
    match &step.op {
        Op::Select(_) | Op::Drop(_) => Ok(Applied::same(columns::apply_projection(table, out)?)),
        Op::Rename(_) => Ok(Applied::same(columns::apply_rename(table, out)?)),
        Op::Cast(c) => c.apply(table, out, track),
        Op::ParseTimestamp(p) => p.apply(table, out, track),
        Op::DropNulls(d) => d.apply(table, track),
        Op::FillNulls(f) => f.apply(table),
        Op::Dedup(d) => d.apply(table, track),
        Op::Filter(f) => f.apply(table, track),
        Op::Text(t) => t.apply(table),
        Op::Clip(c) => c.apply(table),
        Op::Sql(s) => s.apply(table, Some(input_table)),
    }
}
