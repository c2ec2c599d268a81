//! A stage output as downstream stages see it: in memory when it was just produced and is
//! small enough, otherwise streamed from its Parquet artifact.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::StageError;

/// One named output of a stage.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Schema of every batch.
    pub schema: SchemaRef,
    /// Where the Parquet artifact lives (final path, after commit).
    pub path: PathBuf,
    /// Row count.
    pub rows: u64,
    /// Size of the Parquet file.
    pub bytes: u64,
    memory: Option<Arc<Vec<RecordBatch>>>,
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
        Dataset { schema, path, rows, bytes, memory: Some(Arc::new(batches)) }
    }

    /// Opens a Parquet artifact (reads only its footer).
    pub fn open(path: &Path) -> Result<Self, StageError> {
        let file = File::open(path).map_err(|e| StageError::io(path, e))?;
        let bytes = file.metadata().map_err(|e| StageError::io(path, e))?.len();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| StageError::Parquet { path: path.to_path_buf(), source })?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        Ok(Dataset { schema: builder.schema().clone(), path: path.to_path_buf(), rows, bytes, memory: None })
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
        let path = self.path.clone();
        let file = File::open(&path).map_err(|e| StageError::io(&path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(READ_BATCH).build())
            .map_err(|source| StageError::Parquet { path: path.clone(), source })?;
        Ok(Box::new(
            reader.map(move |r| r.map_err(|e| StageError::arrow(format!("reading {}", path.display()), e))),
        ))
    }

    /// All batches at once (for small data and tests).
    pub fn read_all(&self) -> Result<Vec<RecordBatch>, StageError> {
        self.batches()?.collect()
    }
}
