//! The runtime side of a stage: it gets its inputs and a context, and writes its outputs.

use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use indexmap::IndexMap;

use crate::artifact::{OutputInfo, OutputWriter, PendingFile};
use crate::dataset::Dataset;
use crate::error::StageError;
use crate::observer::{RunEvent, RunObserver};
use crate::redact::Redactor;
use crate::spec::StageSpec;

/// One input of a running stage.
#[derive(Debug, Clone)]
pub struct Input {
    /// The reference as written (`split.train`).
    pub reference: String,
    /// SQL table name (`split_train`).
    pub table_name: String,
    /// The data.
    pub dataset: Dataset,
}

/// A built stage, ready to run.
pub trait Stage: Send {
    /// Reads `inputs`, writes every declared output through `ctx`. The inputs are the
    /// stage's own: it may move their rows out ([`Dataset::take_all`]) to free them early.
    fn run(&self, ctx: &mut StageContext<'_>, inputs: &mut [Input]) -> Result<(), StageError>;
}

/// What a running stage can see and do.
pub struct StageContext<'a> {
    /// The stage's spec.
    pub spec: &'a StageSpec,
    /// Run id.
    pub run_id: &'a str,
    /// Pipeline seed (stages derive their randomness from it and their name).
    pub seed: u64,
    /// Secrets to keep out of messages.
    pub redactor: &'a Redactor,
    pub(crate) tmp_dir: PathBuf,
    pub(crate) final_dir: PathBuf,
    pub(crate) memory_budget: usize,
    pub(crate) outputs: IndexMap<String, (OutputInfo, Dataset)>,
    pub(crate) metrics: serde_json::Map<String, serde_json::Value>,
    pub(crate) observers: &'a [&'a dyn RunObserver],
    pub(crate) previous_key: Option<String>,
    pub(crate) store: Option<crate::artifact::ArtifactStore>,
    /// Outputs whose Parquet files are still being encoded (see [`PendingFile`]).
    pub(crate) pending: Vec<PendingFile>,
}

/// The artifact this stage committed in its last successful run (for stages that build on
/// their own history, like an incremental collect).
#[derive(Debug, Clone)]
pub struct Previous {
    /// Its manifest (metrics include what the stage recorded, e.g. a watermark).
    pub manifest: crate::artifact::Manifest,
    /// Its outputs.
    pub outputs: IndexMap<String, Dataset>,
}

impl std::fmt::Debug for StageContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageContext").field("stage", &self.spec.name).field("run_id", &self.run_id).finish()
    }
}

impl<'a> StageContext<'a> {
    /// Starts writing output `name` (must be one the kind declared).
    pub fn output(&mut self, name: &str, schema: SchemaRef) -> Result<OutputWriter, StageError> {
        if !self.spec.outputs.iter().any(|o| o == name) {
            return Err(StageError::Internal(format!(
                "stage `{}` wrote undeclared output `{name}`",
                self.spec.name
            )));
        }
        OutputWriter::create(name, schema, &self.tmp_dir, &self.final_dir, self.memory_budget)
    }

    /// Starts a partitioned output that continues `carried` (from [`StageContext::previous`]):
    /// the old parts are linked in, what is written becomes a new part.
    pub fn output_partitioned(
        &mut self,
        name: &str,
        schema: SchemaRef,
        carried: Option<&Dataset>,
    ) -> Result<OutputWriter, StageError> {
        if !self.spec.outputs.iter().any(|o| o == name) {
            return Err(StageError::Internal(format!(
                "stage `{}` wrote undeclared output `{name}`",
                self.spec.name
            )));
        }
        OutputWriter::create_partitioned(name, schema, &self.tmp_dir, &self.final_dir, carried)
    }

    /// The artifact of this stage's last successful run, if it still exists (read on
    /// demand: most stages never ask).
    pub fn previous(&self) -> Option<Previous> {
        let key = self.previous_key.as_deref()?;
        let store = self.store.as_ref()?;
        let (manifest, outputs) = store.open_outputs(key).ok()?;
        Some(Previous { manifest, outputs })
    }

    /// Completes an output started with [`StageContext::output`]. A large output held in
    /// memory may still be encoding when this returns: the executor hands its rows on and
    /// commits the artifact once the file is complete.
    pub fn finish(&mut self, writer: OutputWriter) -> Result<(), StageError> {
        let name = writer.name().to_string();
        let (info, ds, pending) = writer.finish_deferred()?;
        self.outputs.insert(name, (info, ds));
        self.pending.extend(pending);
        Ok(())
    }

    /// Records a counter for the run record (e.g. `rows_skipped`).
    pub fn metric(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.metrics.insert(key.to_string(), value.into());
    }

    /// Reports progress to observers.
    pub fn progress(&self, rows: u64, bytes: u64) {
        for o in self.observers {
            o.on_event(&RunEvent::StageProgress { stage: &self.spec.name, rows, bytes });
        }
    }

    /// Directory for extra files (model.bin, report.html) that become part of the artifact.
    pub fn artifact_dir(&self) -> &Path {
        &self.tmp_dir
    }
}
