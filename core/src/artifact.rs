//! Content-addressed artifacts: `artifacts/<key>/<output>.parquet` + `manifest.json`.
//!
//! A stage writes into `tmp/<key>.<run-id>/`; only when every output is complete is the
//! directory renamed into place, atomically. A directory under `artifacts/` therefore always
//! holds a complete result, and a killed run leaves at most a stray temp dir that `gc`
//! removes.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{CoreError, StageError};

/// Name of the file that marks a complete artifact and describes it.
pub const MANIFEST: &str = "manifest.json";

/// What an artifact directory holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Stage that produced it.
    pub stage: String,
    /// Its kind.
    pub kind: String,
    /// Cache key (also the directory name).
    pub cache_key: String,
    /// Run that produced it.
    pub run_id: String,
    /// When it was committed (RFC 3339).
    pub created_at: String,
    /// Rows read from inputs.
    pub rows_in: u64,
    /// Outputs by name.
    pub outputs: IndexMap<String, OutputInfo>,
    /// Stage metrics (rows skipped, rejected, ...), replayed on cache hits.
    #[serde(default)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

/// One output file of an artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputInfo {
    /// File name inside the artifact directory.
    pub file: String,
    /// Row count.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
}

/// The artifacts part of a state dir.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    /// The store under a state dir.
    pub fn new(state_dir: &Path) -> Self {
        ArtifactStore { root: state_dir.to_path_buf() }
    }

    /// Directory of a committed artifact.
    pub fn dir(&self, key: &str) -> PathBuf {
        self.root.join("artifacts").join(key)
    }

    /// Directory of all artifacts.
    pub fn artifacts_root(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    /// Directory for in-progress writes.
    pub fn tmp_root(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Whether a complete artifact exists for `key`.
    pub fn exists(&self, key: &str) -> bool {
        self.dir(key).join(MANIFEST).is_file()
    }

    /// Reads an artifact's manifest.
    pub fn manifest(&self, key: &str) -> Result<Manifest, CoreError> {
        let path = self.dir(key).join(MANIFEST);
        let text = fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| CoreError::Corrupt { path, message: e.to_string() })
    }

    /// Opens the outputs of a committed artifact.
    pub fn open_outputs(&self, key: &str) -> Result<(Manifest, IndexMap<String, Dataset>), CoreError> {
        let manifest = self.manifest(key)?;
        let dir = self.dir(key);
        let mut out = IndexMap::new();
        for (name, info) in &manifest.outputs {
            let path = dir.join(&info.file);
            let ds = Dataset::open(&path)
                .map_err(|e| CoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
            out.insert(name.clone(), ds);
        }
        Ok((manifest, out))
    }

    /// Creates a fresh temp directory for a stage's outputs. Two stages with identical
    /// definitions share a key, so the stage name keeps their temp dirs apart.
    pub fn begin(&self, key: &str, run_id: &str, stage: &str) -> Result<PathBuf, StageError> {
        let dir = self.tmp_root().join(format!("{key}.{run_id}.{stage}"));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| StageError::io(&dir, e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| StageError::io(&dir, e))?;
        Ok(dir)
    }

    /// Writes the manifest into the temp dir and renames it into place. If another run
    /// committed the same key meanwhile, theirs is kept (same key ⇒ same content).
    pub fn commit(&self, tmp: &Path, manifest: &Manifest) -> Result<PathBuf, StageError> {
        let text = serde_json::to_string_pretty(manifest).map_err(|e| StageError::Internal(e.to_string()))?;
        let mpath = tmp.join(MANIFEST);
        fs::write(&mpath, text).map_err(|e| StageError::io(&mpath, e))?;
        let dest = self.dir(&manifest.cache_key);
        let parent = self.artifacts_root();
        fs::create_dir_all(&parent).map_err(|e| StageError::io(&parent, e))?;
        if dest.exists() && !dest.join(MANIFEST).is_file() {
            // A directory without a manifest cannot come from us; clear it so the rename works.
            fs::remove_dir_all(&dest).map_err(|e| StageError::io(&dest, e))?;
        }
        match fs::rename(tmp, &dest) {
            Ok(()) => Ok(dest),
            Err(_) if dest.join(MANIFEST).is_file() => {
                let _ = fs::remove_dir_all(tmp);
                Ok(dest)
            }
            Err(e) => Err(StageError::io(&dest, e)),
        }
    }
}

/// Parquet settings for every artifact: zstd (fast level), dictionary pages, moderate row
/// groups so readers can parallelise.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(256 * 1024))
        .build()
}

/// Streams one output to Parquet on a background thread, keeping the batches in memory too
/// while they fit the budget (so downstream stages in the same run need not re-read).
pub struct OutputWriter {
    name: String,
    schema: SchemaRef,
    tmp_path: PathBuf,
    final_path: PathBuf,
    tx: Option<SyncSender<RecordBatch>>,
    handle: Option<JoinHandle<Result<(), parquet::errors::ParquetError>>>,
    rows: u64,
    retained: Option<Vec<RecordBatch>>,
    retained_bytes: usize,
    budget: usize,
}

impl std::fmt::Debug for OutputWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputWriter").field("name", &self.name).field("rows", &self.rows).finish()
    }
}

impl OutputWriter {
    /// Starts writing `name.parquet` into `tmp_dir`; `final_dir` is where it will live.
    pub fn create(
        name: &str,
        schema: SchemaRef,
        tmp_dir: &Path,
        final_dir: &Path,
        memory_budget: usize,
    ) -> Result<Self, StageError> {
        let file_name = format!("{name}.parquet");
        let tmp_path = tmp_dir.join(&file_name);
        let file = File::create(&tmp_path).map_err(|e| StageError::io(&tmp_path, e))?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()))
            .map_err(|source| StageError::Parquet { path: tmp_path.clone(), source })?;
        let (tx, rx) = sync_channel::<RecordBatch>(4);
        let handle = std::thread::Builder::new()
            .name(format!("write-{name}"))
            .spawn(move || {
                for batch in rx {
                    writer.write(&batch)?;
                }
                writer.close().map(|_| ())
            })
            .map_err(|e| StageError::io(&tmp_path, e))?;
        Ok(OutputWriter {
            name: name.to_string(),
            schema,
            tmp_path,
            final_path: final_dir.join(file_name),
            tx: Some(tx),
            handle: Some(handle),
            rows: 0,
            retained: Some(Vec::new()),
            retained_bytes: 0,
            budget: memory_budget,
        })
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema batches must have.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: RecordBatch) -> Result<(), StageError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(StageError::Internal(format!(
                "output `{}` got a batch with schema {:?}, expected {:?}",
                self.name,
                batch.schema(),
                self.schema
            )));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        if let Some(kept) = &mut self.retained {
            self.retained_bytes += batch.get_array_memory_size();
            if self.retained_bytes <= self.budget {
                kept.push(batch.clone());
            } else {
                self.retained = None;
            }
        }
        let sent = self.tx.as_ref().map(|tx| tx.send(batch));
        if !matches!(sent, Some(Ok(()))) {
            // The writer thread stopped: finish() reports its error.
            return self.join().map(|_| ());
        }
        Ok(())
    }

    fn join(&mut self) -> Result<u64, StageError> {
        self.tx = None;
        let handle =
            self.handle.take().ok_or_else(|| StageError::Internal("output writer joined twice".into()))?;
        match handle.join() {
            Ok(Ok(())) => Ok(self.rows),
            Ok(Err(source)) => Err(StageError::Parquet { path: self.tmp_path.clone(), source }),
            Err(_) => Err(StageError::Internal(format!("the writer thread of `{}` panicked", self.name))),
        }
    }

    /// Finishes the file and returns the dataset as downstream stages will see it.
    pub fn finish(mut self) -> Result<(OutputInfo, Dataset), StageError> {
        self.join()?;
        let bytes = fs::metadata(&self.tmp_path).map_err(|e| StageError::io(&self.tmp_path, e))?.len();
        let info = OutputInfo { file: format!("{}.parquet", self.name), rows: self.rows, bytes };
        let ds = match self.retained.take() {
            Some(batches) => {
                Dataset::in_memory(self.schema.clone(), self.final_path.clone(), self.rows, bytes, batches)
            }
            None => Dataset::open(&self.tmp_path).map(|mut d| {
                d.path = self.final_path.clone();
                d
            })?,
        };
        Ok((info, ds))
    }
}

impl Drop for OutputWriter {
    fn drop(&mut self) {
        // Closing the channel lets the thread end; an unfinished file stays in tmp/ only.
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter((0..n).map(|i| (i % 3 != 0).then(|| format!("n{i}"))))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn write_commit_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let tmp = store.begin("k1", "r1", "s").unwrap();
        let b = batch(1000);
        // A zero budget forces the read-back path.
        let mut w = OutputWriter::create("data", b.schema(), &tmp, &store.dir("k1"), 0).unwrap();
        w.write(b.clone()).unwrap();
        w.write(b.clone()).unwrap();
        let (info, _) = w.finish().unwrap();
        assert!(!store.exists("k1"), "nothing is visible before commit");
        let mut outputs = IndexMap::new();
        outputs.insert("data".to_string(), info);
        let manifest = Manifest {
            stage: "s".into(),
            kind: "collect".into(),
            cache_key: "k1".into(),
            run_id: "r1".into(),
            created_at: "now".into(),
            rows_in: 0,
            outputs,
            metrics: Default::default(),
        };
        store.commit(&tmp, &manifest).unwrap();
        assert!(store.exists("k1"));
        assert!(!tmp.exists());
        let (m, ds) = store.open_outputs("k1").unwrap();
        assert_eq!(m, manifest);
        let back = ds["data"].read_all().unwrap();
        assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 2000);
        let all = arrow::compute::concat_batches(&b.schema(), &back).unwrap();
        assert_eq!(all.slice(0, 1000), b);
        assert_eq!(all.slice(1000, 1000), b);
    }

    #[test]
    fn uncommitted_temp_dir_is_never_an_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let tmp = store.begin("k2", "r1", "s").unwrap();
        let b = batch(10);
        let mut w = OutputWriter::create("data", b.schema(), &tmp, &store.dir("k2"), 1 << 20).unwrap();
        w.write(b).unwrap();
        drop(w);
        assert!(!store.exists("k2"));
    }
}
