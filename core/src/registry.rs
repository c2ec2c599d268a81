//! The registry of stage kinds and connectors. Built-ins and plugins register here; compile
//! and the executor look everything up by name.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use sluice_plugin::{ConfigIssue, Connector, KeySpec};

/// A problem a stage kind found in its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key path inside the stage table (`sql`, `schema.Quantity`).
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// For string values: byte offset inside the decoded string where the problem is (a
    /// SQL error's position), so the diagnostic points at the exact line.
    pub at: Option<usize>,
}

impl Issue {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Issue { key: key.into(), message: message.into(), help: None, at: None }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points inside the string value.
    pub fn at(mut self, offset: usize) -> Self {
        self.at = Some(offset);
        self
    }
}

impl From<ConfigIssue> for Issue {
    fn from(c: ConfigIssue) -> Self {
        Issue { key: c.key, message: c.message, help: c.help, at: None }
    }
}

use crate::error::StageError;
use crate::spec::StageSpec;
use crate::stage::Stage;

/// How many inputs a stage kind takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arity {
    /// At least this many.
    pub min: usize,
    /// At most this many (`None` = no limit).
    pub max: Option<usize>,
}

/// Compile-time side of a stage kind: validates its table, names its outputs, builds the
/// runtime stage. The runtime side is [`Stage`].
pub trait StageKind: Send + Sync {
    /// The `kind = "..."` name.
    fn name(&self) -> &'static str;

    /// One line of documentation.
    fn doc(&self) -> &'static str;

    /// Implementation version; part of every cache key this kind produces. Bump it when the
    /// same config would produce different output.
    fn version(&self) -> &'static str;

    /// The version that goes into cache keys for this config: the kind's own, plus that of
    /// any plugin or connector it delegates to.
    fn implementation_version(
        &self,
        config: &serde_json::Map<String, serde_json::Value>,
        registry: &Registry,
    ) -> String {
        let _ = (config, registry);
        self.version().to_string()
    }

    /// How many inputs it takes.
    fn arity(&self) -> Arity;

    /// The keys it accepts for this config (besides the universal ones). `None` when the set
    /// cannot be known (e.g. an unknown connector, reported by `check`).
    fn keys(
        &self,
        config: &serde_json::Map<String, serde_json::Value>,
        registry: &Registry,
    ) -> Option<Vec<KeySpec>>;

    /// Semantic checks, run after key and type checks passed.
    fn check(&self, stage: &StageSpec, registry: &Registry) -> Vec<Issue>;

    /// Output names. `data` is the default output, referenced by the bare stage name.
    fn outputs(&self, config: &serde_json::Map<String, serde_json::Value>) -> Vec<String>;

    /// Whether an unconsumed stage of this kind is a result (no "unused stage" warning).
    fn is_result(&self) -> bool;

    /// A fingerprint of external sources the stage reads (files, databases), or `None`.
    /// Part of the cache key; `Err` when the sources cannot be inspected.
    fn sources(
        &self,
        stage: &StageSpec,
        registry: &Registry,
    ) -> Result<Option<sluice_plugin::Sources>, StageError>;

    /// Builds the runtime stage.
    fn build(&self, stage: &StageSpec, registry: &Registry) -> Result<Box<dyn Stage>, StageError>;

    /// The schema contract: the schema of each output, derived from the inputs' schemas
    /// (`inputs[i]` belongs to `stage.inputs[i]`; `None` = not known before running), plus
    /// every problem the schemas reveal — a column that does not exist, a type an operation
    /// cannot take. Runs at `validate` and before every run, without touching data.
    /// The default knows nothing.
    fn derive_schemas(
        &self,
        stage: &StageSpec,
        inputs: &[Option<SchemaRef>],
        registry: &Registry,
    ) -> Derived {
        let _ = (inputs, registry);
        Derived::unknown(&stage.outputs)
    }

    /// Whether the output depends on the pipeline seed (random splits, sampling); the seed
    /// then joins the cache key.
    fn uses_seed(&self) -> bool {
        false
    }

    /// Whether the stage's output is its previous output plus what is new (an incremental
    /// collect): its cache key then covers the artifact it builds on.
    fn builds_on_previous(&self, stage: &StageSpec) -> bool {
        let _ = stage;
        false
    }

    /// Whether the stage, while running, reports every problem [`Self::derive_schemas`]
    /// would find in its real inputs, with the same diagnostic. The executor then skips its
    /// own pre-start check, which would only repeat the work (an SQL query is planned
    /// against its inputs either way).
    fn checks_inputs_itself(&self, stage: &StageSpec) -> bool {
        let _ = stage;
        false
    }

    /// Problems in a source's schema as recorded by the last run or read by `validate
    /// --data`: config that names the source's columns (an incremental collect's watermark
    /// column) is checked against what the source really has.
    fn check_source_schema(&self, stage: &StageSpec, output: &str, schema: &SchemaRef) -> Vec<Issue> {
        let _ = (stage, output, schema);
        Vec::new()
    }

    /// Reads just enough of the stage's source to know the schema of `output`, for
    /// `sluice validate --data`. Kinds that read no external source return `Ok(None)`.
    fn probe_schema(
        &self,
        stage: &StageSpec,
        output: &str,
        registry: &Registry,
    ) -> Result<Option<SchemaRef>, StageError> {
        let _ = (stage, output, registry);
        Ok(None)
    }
}

/// What [`StageKind::derive_schemas`] found.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// Schema per output name; `None` = not known before running.
    pub outputs: Vec<(String, Option<SchemaRef>)>,
    /// Problems found (unknown column, wrong type), pointing at config keys.
    pub issues: Vec<Issue>,
}

impl Derived {
    /// Every output unknown, no issues.
    pub fn unknown(outputs: &[String]) -> Self {
        Derived { outputs: outputs.iter().map(|o| (o.clone(), None)).collect(), issues: Vec::new() }
    }

    /// Every output has `schema` (or is unknown when `None`).
    pub fn all(outputs: &[String], schema: Option<SchemaRef>) -> Self {
        Derived { outputs: outputs.iter().map(|o| (o.clone(), schema.clone())).collect(), issues: Vec::new() }
    }

    /// Sets the schema of one output.
    pub fn set(&mut self, output: &str, schema: Option<SchemaRef>) {
        match self.outputs.iter_mut().find(|(o, _)| o == output) {
            Some(slot) => slot.1 = schema,
            None => self.outputs.push((output.to_string(), schema)),
        }
    }

    /// Adds a problem.
    pub fn issue(&mut self, issue: Issue) {
        self.issues.push(issue);
    }
}

/// Everything the runner knows by name.
#[derive(Default, Clone)]
pub struct Registry {
    kinds: Vec<Arc<dyn StageKind>>,
    connectors: Vec<Arc<dyn Connector>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds.iter().map(|k| k.name()).collect::<Vec<_>>())
            .field("connectors", &self.connectors.iter().map(|c| c.name().to_string()).collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a stage kind (a later one with the same name replaces the earlier).
    pub fn add_kind(&mut self, kind: Arc<dyn StageKind>) {
        self.kinds.retain(|k| k.name() != kind.name());
        self.kinds.push(kind);
    }

    /// Adds a connector (a later one with the same name replaces the earlier).
    pub fn add_connector(&mut self, connector: Arc<dyn Connector>) {
        self.connectors.retain(|c| c.name() != connector.name());
        self.connectors.push(connector);
    }

    /// Looks up a stage kind.
    pub fn kind(&self, name: &str) -> Option<&Arc<dyn StageKind>> {
        self.kinds.iter().find(|k| k.name() == name)
    }

    /// Looks up a connector.
    pub fn connector(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.iter().find(|c| c.name() == name)
    }

    /// All stage kinds, in registration order.
    pub fn kinds(&self) -> &[Arc<dyn StageKind>] {
        &self.kinds
    }

    /// All connectors, in registration order.
    pub fn connectors(&self) -> &[Arc<dyn Connector>] {
        &self.connectors
    }
}
