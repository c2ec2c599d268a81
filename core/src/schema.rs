//! Schema contracts: every stage's output schema derived from its inputs' before anything
//! runs, so a misspelt column or a `sum` of a string is an error at `sluice validate` with
//! the file, line and column, not a failure twenty minutes into a run.
//!
//! Sources (stages without inputs) know their schema from the config (a connector that
//! declares it), from the artifact of their last run, or — with `validate --data` — from
//! the source itself. Every other stage derives its schema with
//! [`StageKind::derive_schemas`]. At run time the executor derives again from the real
//! input schemas before a stage starts ([`check_inputs`]).

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;

use crate::compile::issue_diagnostic;
use crate::diagnostic::Diagnostic;
use crate::error::StageError;
use crate::registry::{Derived, Registry};
use crate::spec::{Pipeline, StageSpec};

/// Output schemas known before running: `(stage, output)` → schema (`None` = unknown).
#[derive(Debug, Clone, Default)]
pub struct SchemaMap {
    known: HashMap<(String, String), Option<SchemaRef>>,
}

impl SchemaMap {
    /// The schema of `stage.output`, when known.
    pub fn get(&self, stage: &str, output: &str) -> Option<SchemaRef> {
        self.known.get(&(stage.to_string(), output.to_string())).cloned().flatten()
    }

    fn set(&mut self, stage: &str, output: &str, schema: Option<SchemaRef>) {
        self.known.insert((stage.to_string(), output.to_string()), schema);
    }
}

/// Where a source stage's schema came from when its kind could not tell from the config.
pub trait SourceSchemas {
    /// The schema of `stage`'s `output`, or `None`. `Err` is a problem reading the source
    /// (only `validate --data` reads sources), reported against the stage.
    fn schema(&self, stage: &StageSpec, output: &str) -> Result<Option<SchemaRef>, StageError>;

    /// Whether sources are read even when their config declares the schema: a declaration
    /// is a promise about the data, which only reading the data can check.
    fn reads_sources(&self) -> bool {
        false
    }
}

/// No knowledge beyond the config.
#[derive(Debug)]
pub struct ConfigOnly;

impl SourceSchemas for ConfigOnly {
    fn schema(&self, _: &StageSpec, _: &str) -> Result<Option<SchemaRef>, StageError> {
        Ok(None)
    }
}

/// Schemas recorded by the last successful run of each source: the footer of its Parquet
/// artifact, when the artifact is still there.
#[derive(Debug)]
pub struct Recorded {
    store: crate::artifact::ArtifactStore,
    state: crate::state::PipelineState,
}

impl Recorded {
    /// The record of pipeline `name` in `state_dir`.
    pub fn load(state_dir: &std::path::Path, name: &str) -> Self {
        Recorded {
            store: crate::artifact::ArtifactStore::new(state_dir),
            state: crate::state::PipelineState::load(state_dir, name),
        }
    }
}

impl SourceSchemas for Recorded {
    fn schema(&self, stage: &StageSpec, output: &str) -> Result<Option<SchemaRef>, StageError> {
        let Some(last) = self.state.stages.get(&stage.name) else { return Ok(None) };
        let Ok(manifest) = self.store.manifest(&last.cache_key) else { return Ok(None) };
        let Some(info) = manifest.outputs.get(output) else { return Ok(None) };
        let path = self.store.dir(&last.cache_key).join(&info.file);
        // A missing or damaged artifact only means "unknown" here.
        Ok(crate::dataset::Dataset::open(&path).ok().map(|d| d.schema))
    }
}

/// Reads the sources themselves (`sluice validate --data`), through
/// [`StageKind::probe_schema`](crate::registry::StageKind::probe_schema).
#[derive(Debug)]
pub struct Probe<'r> {
    /// Where the kinds are looked up.
    pub registry: &'r Registry,
}

impl SourceSchemas for Probe<'_> {
    fn schema(&self, stage: &StageSpec, output: &str) -> Result<Option<SchemaRef>, StageError> {
        match self.registry.kind(&stage.kind) {
            Some(kind) => kind.probe_schema(stage, output, self.registry),
            None => Ok(None),
        }
    }

    fn reads_sources(&self) -> bool {
        true
    }
}

/// Derives every stage's output schemas in topological order and collects every problem.
pub fn derive_pipeline(
    p: &Pipeline,
    registry: &Registry,
    sources: &dyn SourceSchemas,
) -> (SchemaMap, Vec<Diagnostic>) {
    let mut map = SchemaMap::default();
    let mut diags = Vec::new();
    for &i in &p.order {
        let spec = &p.stages[i];
        let Some(kind) = registry.kind(&spec.kind) else { continue };
        let inputs: Vec<Option<SchemaRef>> =
            spec.inputs.iter().map(|inp| map.get(&inp.stage, &inp.output)).collect();
        let derived = kind.derive_schemas(spec, &inputs, registry);
        for issue in &derived.issues {
            diags.push(schema_diagnostic(spec, issue));
        }
        for (output, schema) in derived.outputs {
            let schema = match schema {
                Some(s) if !(spec.inputs.is_empty() && sources.reads_sources()) => Some(s),
                declared if spec.inputs.is_empty() => match sources.schema(spec, &output) {
                    Ok(Some(s)) => {
                        for issue in kind.check_source_schema(spec, &output, &s) {
                            // A declared schema already reported the same problem.
                            if !derived.issues.contains(&issue) {
                                diags.push(schema_diagnostic(spec, &issue));
                            }
                        }
                        Some(s)
                    }
                    Ok(None) => declared,
                    Err(e) => {
                        diags.push(source_diagnostic(p, spec, &e));
                        // Downstream stages are still checked against what was declared.
                        declared
                    }
                },
                _ => None,
            };
            map.set(&spec.name, &output, schema);
        }
    }
    (map, diags)
}

/// A source that could not be read, at the key its error names or at the stage.
fn source_diagnostic(p: &Pipeline, spec: &StageSpec, e: &StageError) -> Diagnostic {
    Diagnostic::error("source", format!("stage `{}`: {e}", spec.name)).at(&p.file, spec.span_of_error(e))
}

fn schema_diagnostic(spec: &StageSpec, issue: &crate::registry::Issue) -> Diagnostic {
    let mut d = issue_diagnostic(&spec.file, spec, issue);
    d.code = "schema";
    d
}

/// The run-time half of the contract: derives the stage's schemas from the schemas its
/// inputs really have, and refuses to start it when they break the stage's config (a
/// column it names is gone or has another type).
pub fn check_inputs(
    spec: &StageSpec,
    registry: &Registry,
    inputs: &[Option<SchemaRef>],
) -> Result<Derived, StageError> {
    let kind = registry
        .kind(&spec.kind)
        .ok_or_else(|| StageError::Internal(format!("unknown kind `{}`", spec.kind)))?;
    let derived = kind.derive_schemas(spec, inputs, registry);
    match derived.issues.first() {
        None => Ok(derived),
        Some(first) => {
            let mut d = schema_diagnostic(spec, first);
            let more = derived.issues.len() - 1;
            if more > 0 {
                let rest: Vec<String> = derived.issues[1..].iter().map(|i| i.message.clone()).collect();
                d = d.note(format!("{more} more: {}", rest.join("; ")));
            }
            Err(StageError::Diagnostic(Box::new(d)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use serde_json::{Map, Value};
    use sluice_plugin::{KeySpec, KeyType, Sources};

    use super::*;
    use crate::compile::{CompileOptions, compile};
    use crate::diagnostic::SourceFile;
    use crate::registry::{Arity, Issue, StageKind};
    use crate::stage::Stage;

    /// A source with a fixed schema `(id int64)`, and a stage that keeps the columns named
    /// in `keep`, so a misspelt column is a schema error.
    struct Source;
    struct Keep;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
    }

    macro_rules! boilerplate {
        ($name:literal, $min:expr, $keys:expr) => {
            fn name(&self) -> &'static str {
                $name
            }
            fn doc(&self) -> &'static str {
                "test"
            }
            fn version(&self) -> &'static str {
                "1"
            }
            fn arity(&self) -> Arity {
                Arity { min: $min, max: None }
            }
            fn keys(&self, _: &Map<String, Value>, _: &Registry) -> Option<Vec<KeySpec>> {
                Some($keys)
            }
            fn check(&self, _: &StageSpec, _: &Registry) -> Vec<Issue> {
                Vec::new()
            }
            fn outputs(&self, _: &Map<String, Value>) -> Vec<String> {
                vec!["data".into()]
            }
            fn is_result(&self) -> bool {
                true
            }
            fn sources(&self, _: &StageSpec, _: &Registry) -> Result<Option<Sources>, StageError> {
                Ok(None)
            }
            fn build(&self, _: &StageSpec, _: &Registry) -> Result<Box<dyn Stage>, StageError> {
                Err(StageError::Internal("not run in this test".into()))
            }
        };
    }

    impl StageKind for Source {
        boilerplate!("source", 0, vec![]);
        fn derive_schemas(&self, stage: &StageSpec, _: &[Option<SchemaRef>], _: &Registry) -> Derived {
            Derived::all(&stage.outputs, Some(schema()))
        }
    }

    impl StageKind for Keep {
        boilerplate!("keep", 1, vec![KeySpec::required("keep", KeyType::String, "column")]);
        fn derive_schemas(&self, stage: &StageSpec, inputs: &[Option<SchemaRef>], _: &Registry) -> Derived {
            let Some(Some(input)) = inputs.first() else { return Derived::unknown(&stage.outputs) };
            let col = stage.config.get("keep").and_then(Value::as_str).unwrap_or_default();
            match input.index_of(col) {
                Ok(i) => Derived::all(&stage.outputs, Some(Arc::new(input.project(&[i]).unwrap()))),
                Err(_) => {
                    let mut d = Derived::unknown(&stage.outputs);
                    d.issue(Issue::new("keep", format!("no column `{col}`")));
                    d
                }
            }
        }
    }

    fn pipeline(text: &str) -> (Pipeline, Registry) {
        let mut r = Registry::new();
        r.add_kind(Arc::new(Source));
        r.add_kind(Arc::new(Keep));
        let file = SourceFile::new("p.toml", text.to_string());
        let p = compile(&file, &r, &CompileOptions::from_env()).unwrap();
        (p, r)
    }

    #[test]
    fn schemas_flow_downstream_and_errors_point_at_the_key() {
        let (p, r) = pipeline(
            "[pipeline]\nname = \"t\"\n[stages.a]\nkind = \"source\"\n[stages.b]\nkind = \"keep\"\ninputs = [\"a\"]\nkeep = \"id\"\n[stages.c]\nkind = \"keep\"\ninputs = [\"b\"]\nkeep = \"idd\"\n",
        );
        let (map, diags) = derive_pipeline(&p, &r, &ConfigOnly);
        assert_eq!(map.get("b", "data").unwrap().field(0).name(), "id");
        assert!(map.get("c", "data").is_none());
        assert_eq!(diags.len(), 1);
        let text = diags[0].render();
        assert!(text.contains("no column `idd`"), "{text}");
        assert!(text.contains("p.toml:12:8"), "{text}");
    }

    #[test]
    fn run_time_check_refuses_a_stage_whose_column_is_gone() {
        let (p, r) = pipeline(
            "[pipeline]\nname = \"t\"\n[stages.a]\nkind = \"source\"\n[stages.b]\nkind = \"keep\"\ninputs = [\"a\"]\nkeep = \"id\"\n",
        );
        let b = &p.stages[1];
        assert!(check_inputs(b, &r, &[Some(schema())]).is_ok());
        let other = Arc::new(Schema::new(vec![Field::new("ident", DataType::Int64, false)]));
        let err = check_inputs(b, &r, &[Some(other)]).unwrap_err().to_string();
        assert!(err.contains("no column `id`"), "{err}");
    }
}
