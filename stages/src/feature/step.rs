//! One declarative transform: how it checks an input schema and how it turns a table into
//! the next one. The stage applies its transforms in order; validation walks the same list
//! over schemas only.

use arrow::datatypes::Schema;
use datafusion::error::DataFusionError;
use sluice_core::StageError;
use sluice_core::registry::Issue;

use super::table::Table;

/// Why a transform failed: the config is wrong for this data (points at a key), or the
/// engine underneath failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A user mistake at a config key.
    Config(Issue),
    /// Anything else.
    Stage(StageError),
}

impl From<StageError> for Failure {
    fn from(e: StageError) -> Self {
        Failure::Stage(e)
    }
}

impl From<Issue> for Failure {
    fn from(i: Issue) -> Self {
        Failure::Config(i)
    }
}

impl From<arrow::error::ArrowError> for Failure {
    fn from(e: arrow::error::ArrowError) -> Self {
        Failure::Stage(StageError::arrow("feature transform", e))
    }
}

impl From<DataFusionError> for Failure {
    fn from(e: DataFusionError) -> Self {
        Failure::Stage(StageError::Failed(format!("feature transform: {}", e.strip_backtrace())))
    }
}

/// What a transform produced.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The new table.
    pub table: Table,
    /// Rows removed on purpose (null keys), counted for the run record.
    pub dropped: u64,
}

impl From<Table> for Applied {
    fn from(table: Table) -> Self {
        Applied { table, dropped: 0 }
    }
}

/// A declarative transform of the feature-extract stage.
pub(crate) trait Transform: Send + Sync + std::fmt::Debug {
    /// Its name in the run record's `operations` (`group_by`, `one_hot`, ...).
    fn op(&self) -> &'static str;

    /// Column and type problems with this input schema, at the offending keys.
    fn check(&self, input: &Schema) -> Vec<Issue>;

    /// Whether the output columns follow from the input schema alone (false when they
    /// depend on the data, like one-hot vocabularies).
    fn schema_is_static(&self) -> bool {
        true
    }

    /// Runs the transform. Called only after `check` found nothing.
    fn apply(&self, input: Table) -> Result<Applied, Failure>;
}
