//! `collect`: reads a source through a connector into the pipeline, streaming batch by
//! batch, with `on_error` deciding what happens to rows the connector cannot read.

use std::sync::Arc;

use arrow::array::{StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};
use sluice_core::registry::{Arity, Issue};
use sluice_core::spec::DEFAULT_OUTPUT;
use sluice_core::stage::{Input, Stage, StageContext};
use sluice_core::{Derived, Registry, StageError, StageKind, StageSpec};
use sluice_plugin::{Connector, KeySpec, KeyType, OnError, ReadRequest, Reject, Sources};

use crate::incremental::IncrementalRead;

/// Keys the collect stage itself takes (the connector adds its own).
pub const COLLECT_KEYS: &[KeySpec] = &[
    KeySpec::required(
        "connector",
        KeyType::String,
        "Connector that reads the source: csv, parquet, jsonl (`sluice kinds` lists all).",
    ).example("connector = \"csv\""),
    KeySpec::optional(
        "on_error",
        KeyType::String,
        Some("\"fail\""),
        "Unreadable rows: \"fail\" the stage, \"skip\" them (counted), or \"quarantine\" them into the `rejects` output.",
    ).example("on_error = \"quarantine\""),
    KeySpec::optional("batch_size", KeyType::Integer, Some("65536"), "Most rows per batch while streaming; csv and jsonl pass on parsed blocks of at least a quarter of it uncopied.").example("batch_size = 8192"),
    KeySpec::optional(
        "incremental",
        KeyType::Table,
        None,
        "Collect only rows whose `column` is greater than the greatest value collected so far (the watermark); the output is the accumulated data, one Parquet part per run.",
    ).example("incremental = { column = \"InvoiceDate\" }"),
];

const DEFAULT_BATCH: usize = 65536;

/// The `collect` stage kind.
#[derive(Debug)]
pub struct CollectKind;

fn connector_config(config: &Map<String, Value>) -> Map<String, Value> {
    config
        .iter()
        .filter(|(k, _)| !COLLECT_KEYS.iter().any(|s| s.name == k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn on_error(config: &Map<String, Value>) -> OnError {
    config.get("on_error").and_then(Value::as_str).and_then(OnError::parse).unwrap_or_default()
}

fn batch_size(config: &Map<String, Value>) -> usize {
    config.get("batch_size").and_then(Value::as_u64).filter(|&n| n > 0).map_or(DEFAULT_BATCH, |n| n as usize)
}

/// The watermark column of an incremental collect.
fn incremental_column(config: &Map<String, Value>) -> Option<&str> {
    config.get("incremental")?.get("column")?.as_str()
}

/// The read request a stage's config describes (no watermark: compile-time uses).
fn request<'a>(stage: &'a StageSpec, cfg: &'a Map<String, Value>) -> ReadRequest<'a> {
    ReadRequest {
        stage: &stage.name,
        config: cfg,
        base_dir: &stage.base_dir,
        on_error: on_error(&stage.config),
        batch_size: batch_size(&stage.config),
        incremental: None,
    }
}

fn connector<'r>(stage: &StageSpec, registry: &'r Registry) -> Option<&'r Arc<dyn Connector>> {
    stage.config.get("connector").and_then(Value::as_str).and_then(|n| registry.connector(n))
}

impl StageKind for CollectKind {
    fn name(&self) -> &'static str {
        "collect"
    }

    fn doc(&self) -> &'static str {
        "Read a source (file or database) through a connector; streams batches into Parquet."
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn arity(&self) -> Arity {
        Arity { min: 0, max: Some(0) }
    }

    fn keys(&self, config: &Map<String, Value>, registry: &Registry) -> Option<Vec<KeySpec>> {
        let mut keys = COLLECT_KEYS.to_vec();
        match config.get("connector").and_then(Value::as_str) {
            Some(name) => keys.extend_from_slice(registry.connector(name)?.keys()),
            // No connector yet (reported as missing): accept any connector's keys, so the
            // user sees one error, not one per key.
            None => {
                for c in registry.connectors() {
                    for k in c.keys() {
                        if !keys.iter().any(|x| x.name == k.name) {
                            keys.push(KeySpec { required: false, ..*k });
                        }
                    }
                }
            }
        }
        Some(keys)
    }

    fn check(&self, stage: &StageSpec, registry: &Registry) -> Vec<Issue> {
        let mut issues = Vec::new();
        if let Some(v) = stage.config.get("on_error").and_then(Value::as_str)
            && OnError::parse(v).is_none()
        {
            issues.push(Issue::new(
                "on_error",
                format!("`on_error` must be \"fail\", \"skip\" or \"quarantine\", not \"{v}\""),
            ));
        }
        if let Some(inc) = stage.config.get("incremental") {
            match inc.as_object() {
                Some(t) => {
                    for k in t.keys().filter(|k| k.as_str() != "column") {
                        issues.push(
                            Issue::new(
                                format!("incremental.{k}"),
                                format!("unknown key `{k}` in `incremental`"),
                            )
                            .with_help("`incremental` takes one key: column"),
                        );
                    }
                    if !t.get("column").is_some_and(Value::is_string) {
                        issues.push(
                            Issue::new(
                                "incremental",
                                "`incremental` needs `column`, the column the watermark is kept on",
                            )
                            .with_help("e.g. incremental = { column = \"InvoiceDate\" }"),
                        );
                    }
                }
                None => issues.push(
                    Issue::new("incremental", "`incremental` must be a table")
                        .with_help("e.g. incremental = { column = \"InvoiceDate\" }"),
                ),
            }
        }
        if stage.config.get("batch_size").and_then(Value::as_i64).is_some_and(|n| n <= 0) {
            issues.push(Issue::new("batch_size", "`batch_size` must be at least 1"));
        }
        let Some(name) = stage.config.get("connector").and_then(Value::as_str) else {
            return issues;
        };
        let Some(conn) = registry.connector(name) else {
            let known: Vec<&str> = registry.connectors().iter().map(|c| c.name()).collect();
            let mut issue = Issue::new("connector", format!("unknown connector `{name}`"));
            issue.help = Some(match sluice_core::diagnostic::suggestion(name, known.iter().copied()) {
                Some(s) => format!("{s} (known connectors: {})", known.join(", ")),
                None => format!("known connectors: {}", known.join(", ")),
            });
            issues.push(issue);
            return issues;
        };
        let cfg = connector_config(&stage.config);
        let req = request(stage, &cfg);
        issues.extend(conn.check(&req).into_iter().map(Issue::from));
        issues
    }

    fn outputs(&self, config: &Map<String, Value>) -> Vec<String> {
        let mut out = vec![DEFAULT_OUTPUT.to_string()];
        if on_error(config) == OnError::Quarantine {
            out.push("rejects".to_string());
        }
        out
    }

    fn builds_on_previous(&self, stage: &StageSpec) -> bool {
        incremental_column(&stage.config).is_some()
    }

    fn is_result(&self) -> bool {
        false
    }

    fn sources(&self, stage: &StageSpec, registry: &Registry) -> Result<Option<Sources>, StageError> {
        let conn =
            connector(stage, registry).ok_or_else(|| StageError::Internal("connector vanished".into()))?;
        let cfg = connector_config(&stage.config);
        let req = request(stage, &cfg);
        Ok(Some(conn.sources(&req)?))
    }

    fn implementation_version(&self, config: &Map<String, Value>, registry: &Registry) -> String {
        // A new connector version may read the same source differently.
        let conn = config.get("connector").and_then(Value::as_str).and_then(|n| registry.connector(n));
        match conn {
            Some(c) => format!("{}+{}@{}", self.version(), c.name(), c.version()),
            None => self.version().to_string(),
        }
    }

    fn build(&self, stage: &StageSpec, registry: &Registry) -> Result<Box<dyn Stage>, StageError> {
        let conn =
            connector(stage, registry).ok_or_else(|| StageError::Internal("connector vanished".into()))?;
        Ok(Box::new(CollectStage {
            connector: Arc::clone(conn),
            config: connector_config(&stage.config),
            on_error: on_error(&stage.config),
            batch_size: batch_size(&stage.config),
            incremental: incremental_column(&stage.config).map(str::to_string),
        }))
    }

    fn derive_schemas(
        &self,
        stage: &StageSpec,
        _inputs: &[Option<SchemaRef>],
        registry: &Registry,
    ) -> Derived {
        let mut d = Derived::unknown(&stage.outputs);
        if stage.outputs.iter().any(|o| o == "rejects") {
            d.set("rejects", Some(rejects_schema()));
        }
        let Some(conn) = connector(stage, registry) else { return d };
        let cfg = connector_config(&stage.config);
        let req = request(stage, &cfg);
        if let Some(schema) = conn.declared_schema(&req) {
            for issue in self.check_source_schema(stage, DEFAULT_OUTPUT, &schema) {
                d.issue(issue);
            }
            d.set(DEFAULT_OUTPUT, Some(schema));
        }
        d
    }

    fn check_source_schema(&self, stage: &StageSpec, output: &str, schema: &SchemaRef) -> Vec<Issue> {
        match incremental_column(&stage.config) {
            Some(col) if output == DEFAULT_OUTPUT => crate::incremental::check_column(schema, col)
                .err()
                .map(|m| Issue::new("incremental.column", m))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn probe_schema(
        &self,
        stage: &StageSpec,
        output: &str,
        registry: &Registry,
    ) -> Result<Option<SchemaRef>, StageError> {
        if output == "rejects" {
            return Ok(Some(rejects_schema()));
        }
        let conn =
            connector(stage, registry).ok_or_else(|| StageError::Internal("connector vanished".into()))?;
        let cfg = connector_config(&stage.config);
        let req = request(stage, &cfg);
        let mut reader = conn.read(&req)?;
        // The first batch too: a source that opens but cannot be parsed should fail here.
        if let Some(batch) = reader.next_batch() {
            batch?;
        }
        // The incremental column is checked against this schema by `check_source_schema`.
        Ok(Some(reader.schema()))
    }
}

struct CollectStage {
    connector: Arc<dyn Connector>,
    config: Map<String, Value>,
    on_error: OnError,
    batch_size: usize,
    incremental: Option<String>,
}

fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

fn rejects_batch(rejects: &[Reject]) -> Result<RecordBatch, StageError> {
    let mut source = StringBuilder::new();
    let mut line = UInt64Builder::new();
    let mut reason = StringBuilder::new();
    let mut raw = StringBuilder::new();
    for r in rejects {
        source.append_value(&r.source);
        line.append_value(r.line);
        reason.append_value(&r.reason);
        raw.append_value(&r.raw);
    }
    RecordBatch::try_new(
        rejects_schema(),
        vec![
            Arc::new(source.finish()),
            Arc::new(line.finish()),
            Arc::new(reason.finish()),
            Arc::new(raw.finish()),
        ],
    )
    .map_err(|e| StageError::arrow("building the rejects batch", e))
}

impl Stage for CollectStage {
    fn run(&self, ctx: &mut StageContext<'_>, _inputs: &mut [Input]) -> Result<(), StageError> {
        let mut watermark = self.incremental.as_ref().map(|column| IncrementalRead::resume(ctx, column));
        let pushed = watermark.as_ref().map(|w| w.watermark.clone());
        let req = ReadRequest {
            stage: &ctx.spec.name,
            config: &self.config,
            base_dir: &ctx.spec.base_dir,
            on_error: self.on_error,
            batch_size: self.batch_size,
            incremental: pushed.as_ref(),
        };
        let mut reader = self.connector.read(&req)?;
        let schema = reader.schema();
        let mut out = match &mut watermark {
            Some(w) => {
                w.bind(&schema)?;
                let carried = w.carried.take();
                ctx.output_partitioned(DEFAULT_OUTPUT, schema, carried.as_ref())?
            }
            None => ctx.output(DEFAULT_OUTPUT, schema)?,
        };
        let mut rejects_out = match self.on_error {
            OnError::Quarantine => Some(ctx.output("rejects", rejects_schema())?),
            _ => None,
        };
        let mut refused = 0u64;
        while let Some(batch) = reader.next_batch() {
            let batch = batch?;
            let batch = match &mut watermark {
                Some(w) => w.admit(batch)?,
                None => batch,
            };
            out.write(batch)?;
            let rejects = reader.take_rejects();
            refused += rejects.len() as u64;
            if let (Some(w), false) = (&mut rejects_out, rejects.is_empty()) {
                w.write(rejects_batch(&rejects)?)?;
            }
            ctx.progress(out.rows(), 0);
        }
        let rejects = reader.take_rejects();
        refused += rejects.len() as u64;
        if let (Some(w), false) = (&mut rejects_out, rejects.is_empty()) {
            w.write(rejects_batch(&rejects)?)?;
        }
        let new_rows = out.rows();
        ctx.finish(out)?;
        if let Some(w) = rejects_out {
            ctx.finish(w)?;
        }
        match self.on_error {
            OnError::Skip => ctx.metric("rows_skipped", refused),
            OnError::Quarantine => ctx.metric("rows_rejected", refused),
            OnError::Fail => {}
        }
        if let Some(w) = watermark {
            w.record(ctx, new_rows)?;
        }
        Ok(())
    }
}
