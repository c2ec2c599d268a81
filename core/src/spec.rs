//! The compiled pipeline: what `compile` produces and the planner and executor consume.

use std::ops::Range;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, SourceFile};
use crate::node::Node;
use crate::redact::Redactor;

/// A reference to an upstream output, as written in `inputs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRef {
    /// Upstream stage.
    pub stage: String,
    /// Output of that stage (`data` for the default).
    pub output: String,
    /// The reference as written (`split.train`).
    pub text: String,
    /// Where it was written.
    pub span: Range<usize>,
}

impl InputRef {
    /// The SQL table name this input is registered under (`NAME` or `NAME_OUTPUT`).
    pub fn table_name(&self) -> String {
        if self.output == DEFAULT_OUTPUT {
            self.stage.clone()
        } else {
            format!("{}_{}", self.stage, self.output)
        }
    }
}

/// Name of a stage's default output.
pub const DEFAULT_OUTPUT: &str = "data";

/// One stage after compile.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Stage name.
    pub name: String,
    /// Span of the name in its `[stages.NAME]` header (or key).
    pub name_span: Range<usize>,
    /// Stage kind.
    pub kind: String,
    /// Upstream references, in the order written.
    pub inputs: Vec<InputRef>,
    /// The kind's keys (everything but `kind`, `inputs`, `description`, `show`) after
    /// interpolation, in file order.
    pub config: Map<String, Value>,
    /// The stage table as written, for pointing diagnostics at keys.
    pub node: Node,
    /// The pipeline file, so run-time errors can point into it too.
    pub file: SourceFile,
    /// Output names.
    pub outputs: Vec<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// Rows to print after a run (`show = N` or `true`).
    pub show: Option<usize>,
    /// Directory relative paths resolve against (the pipeline file's).
    pub base_dir: PathBuf,
    /// blake3 of kind + kind version + canonical config + input references.
    pub config_hash: String,
}

impl StageSpec {
    /// Span of a dotted key inside this stage's table (falls back to the stage header).
    pub fn span_of(&self, key: &str) -> Range<usize> {
        self.node.span_of(key).unwrap_or_else(|| self.name_span.clone())
    }

    /// Where a failure of this stage points: the key a connector's config error names
    /// (`schema.COLUMN`, `query`), else the stage header.
    pub fn span_of_error(&self, e: &crate::error::StageError) -> Range<usize> {
        match e.config_key() {
            Some(key) => self.span_of(key),
            None => self.name_span.clone(),
        }
    }
}

/// A declared parameter and its value for this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Effective value.
    pub value: Value,
    /// Where it was declared.
    pub span: Range<usize>,
    /// Whether `--param` overrode it.
    pub overridden: bool,
}

/// A pipeline that passed compile: every check done, ready to plan.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it came from.
    pub file: SourceFile,
    /// `[pipeline] name`.
    pub name: String,
    /// `[pipeline] description`.
    pub description: Option<String>,
    /// Seed every random choice derives from.
    pub seed: u64,
    /// Optional cron schedule.
    pub schedule: Option<String>,
    /// Timezone of the schedule.
    pub timezone: Option<String>,
    /// Parameters with their effective values.
    pub params: IndexMap<String, Param>,
    /// Stages in file order.
    pub stages: Vec<StageSpec>,
    /// Indices into `stages` in a valid execution order.
    pub order: Vec<usize>,
    /// blake3 of the file text and effective params.
    pub hash: String,
    /// Warnings found by compile.
    pub warnings: Vec<Diagnostic>,
    /// Secret values that must not appear in output.
    pub redactor: Redactor,
}

impl Pipeline {
    /// Index of a stage by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Upstream stage indices of stage `i` (deduplicated, in input order).
    pub fn upstream(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for input in &self.stages[i].inputs {
            if let Some(j) = self.index(&input.stage)
                && !out.contains(&j)
            {
                out.push(j);
            }
        }
        out
    }

    /// The params as a JSON object (for run records).
    pub fn params_json(&self) -> Value {
        Value::Object(self.params.iter().map(|(k, p)| (k.clone(), p.value.clone())).collect())
    }
}
