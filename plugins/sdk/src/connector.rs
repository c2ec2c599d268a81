//! The `Connector` trait: how data gets into (and later out of) a pipeline.

use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use crate::error::{ConfigIssue, ConnectorError};
use crate::keys::KeySpec;

/// What a reader does with a row it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Fail the stage with the file, line and reason.
    #[default]
    Fail,
    /// Drop the row and count it.
    Skip,
    /// Drop the row, count it, and hand it back as a [`Reject`] for the rejects artifact.
    Quarantine,
}

impl OnError {
    /// Parses the pipeline-file spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fail" => Some(OnError::Fail),
            "skip" => Some(OnError::Skip),
            "quarantine" => Some(OnError::Quarantine),
            _ => None,
        }
    }
}

/// Everything a connector is told about one read.
#[derive(Debug, Clone)]
pub struct ReadRequest<'a> {
    /// Name of the stage doing the read (for messages).
    pub stage: &'a str,
    /// The connector's own keys from the stage table, after `${...}` interpolation.
    pub config: &'a Map<String, Value>,
    /// Directory of the pipeline file; relative paths resolve against it.
    pub base_dir: &'a Path,
    /// What to do with rows that cannot be read.
    pub on_error: OnError,
    /// Preferred number of rows per batch.
    pub batch_size: usize,
    /// For an incremental collect: only rows with `column` greater than the watermark are
    /// wanted. A connector that can push this down (a `WHERE` in a database query) should;
    /// the collect stage filters whatever comes back again, so ignoring it is correct, only
    /// slower.
    pub incremental: Option<&'a Watermark>,
}

/// The high-water mark of an incremental collect: the greatest value of `column` already
/// collected.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    /// The column the watermark is kept on (`InvoiceDate`).
    pub column: String,
    /// The greatest value collected so far (`None` on the first run: fetch everything), as
    /// JSON: a number, or a string for dates and timestamps (ISO 8601, `2011-12-09T12:50:00`).
    pub after: Option<Value>,
}

impl ReadRequest<'_> {
    /// Resolves a path from the config against the pipeline file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }
}

/// What a read depends on, so the runner can tell whether a cached result is still good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// These files (the runner fingerprints size, mtime and content).
    Files(Vec<PathBuf>),
    /// An opaque token that changes when the source changes (e.g. a declared freshness).
    Token(String),
    /// The source can change at any time: never reuse a cached read.
    Volatile,
}

/// A row a reader refused, kept for the rejects artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Source file (or table) the row came from.
    pub source: String,
    /// 1-based line (or row) number.
    pub line: u64,
    /// Why it was refused.
    pub reason: String,
    /// The raw text of the row, as read.
    pub raw: String,
}

/// A stream of record batches from a source.
pub trait BatchReader: Send {
    /// Schema of every batch this reader yields.
    fn schema(&self) -> SchemaRef;

    /// The next batch; `None` at the end.
    fn next_batch(&mut self) -> Option<Result<RecordBatch, ConnectorError>>;

    /// Rows refused since the last call (only with `on_error` skip or quarantine; with skip
    /// the `raw` text may be empty). Each refused row is returned exactly once.
    fn take_rejects(&mut self) -> Vec<Reject>;
}

/// A source (and later sink) of data, selected by `connector = "NAME"` in a collect stage.
pub trait Connector: Send + Sync {
    /// The name used in pipeline files.
    fn name(&self) -> &str;

    /// One line of documentation.
    fn doc(&self) -> &str;

    /// Implementation version; part of every cache key of data this connector read.
    fn version(&self) -> &str;

    /// The keys this connector accepts in a collect stage (besides the collect stage's own).
    fn keys(&self) -> &[KeySpec];

    /// Checks the configuration without reading data. Cheap checks on the environment (such
    /// as "this glob matches no file") belong here too.
    fn check(&self, req: &ReadRequest<'_>) -> Vec<ConfigIssue>;

    /// What the read depends on, for cache keys.
    fn sources(&self, req: &ReadRequest<'_>) -> Result<Sources, ConnectorError>;

    /// The exact schema a read will produce when the config alone fixes it (every column
    /// declared), without touching the source; `None` otherwise. Used by `sluice validate`
    /// to check downstream stages before any data has been read.
    fn declared_schema(&self, req: &ReadRequest<'_>) -> Option<SchemaRef> {
        let _ = req;
        None
    }

    /// Opens a streaming reader.
    fn read(&self, req: &ReadRequest<'_>) -> Result<Box<dyn BatchReader>, ConnectorError>;
}
