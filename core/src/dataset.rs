//! A stage output as downstream stages see it: in memory when it was just produced and is
//! small enough, otherwise streamed from its Parquet artifact.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::StageError;
use crate::latch::Latch;

/// One named output of a stage: a Parquet file, or a directory of Parquet parts (an
/// incremental collect's accumulated data, one part per run).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Schema of every batch.
    pub schema: SchemaRef,
    /// Where the Parquet artifact lives (final path, after commit): a file or a directory.
    pub path: PathBuf,
    /// Row count.
    pub rows: u64,
    /// Size of the Parquet file.
    pub bytes: u64,
    memory: Option<Arc<Vec<RecordBatch>>>,
    /// Opens when the encoder writing this output's file has dropped its references to
    /// `memory`; `None` when nothing else holds them.
    encoding: Option<Latch>,
}

/// Rows per batch when reading Parquet back.
const READ_BATCH: usize = 64 * 1024;

impl Dataset {
    /// A dataset with its batches retained in memory.
    pub fn in_memory(
        schema: SchemaRef,
        path: PathBuf,
        rows: u64,
        bytes: u64,
        batches: Vec<RecordBatch>,
    ) -> Self {
        Dataset { schema, path, rows, bytes, memory: Some(Arc::new(batches)), encoding: None }
    }

    /// Opens a Parquet artifact, a file or a directory of parts (reads only footers).
    pub fn open(path: &Path) -> Result<Self, StageError> {
        if path.is_dir() {
            let parts = parts(path)?;
            let first = parts
                .first()
                .ok_or_else(|| StageError::Internal(format!("{} holds no Parquet part", path.display())))?;
            let mut ds = Dataset::open(first)?;
            for part in &parts[1..] {
                let more = Dataset::open(part)?;
                ds.rows += more.rows;
                ds.bytes += more.bytes;
            }
            ds.path = path.to_path_buf();
            return Ok(ds);
        }
        let file = File::open(path).map_err(|e| StageError::io(path, e))?;
        let bytes = file.metadata().map_err(|e| StageError::io(path, e))?.len();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| StageError::Parquet { path: path.to_path_buf(), source })?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        Ok(Dataset {
            schema: builder.schema().clone(),
            path: path.to_path_buf(),
            rows,
            bytes,
            memory: None,
            encoding: None,
        })
    }

    /// Marks the in-memory batches as also held by a background encoder until `latch` opens.
    pub fn encoded_until(mut self, latch: Latch) -> Self {
        self.encoding = Some(latch);
        self
    }

    /// While the in-memory batches' buffers are still shared with the encoder writing the
    /// file, the latch that opens when it lets go (a stage that would copy them can wait
    /// and reuse them in place instead).
    pub fn encoder(&self) -> Option<&Latch> {
        self.encoding.as_ref().filter(|l| !l.is_open())
    }

    /// The batches, if they are held in memory.
    pub fn memory(&self) -> Option<&[RecordBatch]> {
        self.memory.as_deref().map(Vec::as_slice)
    }

    /// Drops the in-memory copy; later reads stream from Parquet.
    pub fn release_memory(&mut self) {
        self.memory = None;
    }

    /// Streams the batches.
    pub fn batches(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, StageError>> + Send>, StageError> {
        if let Some(mem) = &self.memory {
            let mem = Arc::clone(mem);
            return Ok(Box::new((0..mem.len()).map(move |i| Ok(mem[i].clone()))));
        }
        let files = if self.path.is_dir() { parts(&self.path)? } else { vec![self.path.clone()] };
        let mut readers = Vec::with_capacity(files.len());
        for path in files {
            let file = File::open(&path).map_err(|e| StageError::io(&path, e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.with_batch_size(READ_BATCH).build())
                .map_err(|source| StageError::Parquet { path: path.clone(), source })?;
            readers
                .push(reader.map(move |r| {
                    r.map_err(|e| StageError::arrow(format!("reading {}", path.display()), e))
                }));
        }
        Ok(Box::new(readers.into_iter().flatten()))
    }

    /// The Parquet files holding the data, in order.
    pub fn files(&self) -> Result<Vec<PathBuf>, StageError> {
        if self.path.is_dir() { parts(&self.path) } else { Ok(vec![self.path.clone()]) }
    }

    /// All batches at once (for small data and tests).
    pub fn read_all(&self) -> Result<Vec<RecordBatch>, StageError> {
        self.batches()?.collect()
    }

    /// All batches at once, moving the in-memory copy out instead of sharing it: when the
    /// caller held the last reference, the rows are freed as soon as the caller drops them
    /// (a stage that rewrites its input does not keep the original alive to the end).
    pub fn take_all(&mut self) -> Result<Vec<RecordBatch>, StageError> {
        match self.memory.take() {
            Some(mem) => Ok(Arc::try_unwrap(mem).unwrap_or_else(|shared| shared.as_ref().clone())),
            None => self.read_all(),
        }
    }
}

/// The `*.parquet` parts of a partitioned output, in name order (`part-00000.parquet`, …).
fn parts(dir: &Path) -> Result<Vec<PathBuf>, StageError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| StageError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    out.sort();
    Ok(out)
}
