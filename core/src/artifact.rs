//! Content-addressed artifacts: `artifacts/<key>/<output>.parquet` + `manifest.json`.
//!
//! A stage writes into `tmp/<key>.<run-id>/`; only when every output is complete is the
//! directory renamed into place, atomically. A directory under `artifacts/` therefore always
//! holds a complete result, and a killed run leaves at most a stray temp dir that `gc`
//! removes.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, ColumnPath};
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::dictionary_chunk::{self, EncodedChunk};
use crate::error::{CoreError, StageError};
use crate::latch::Latch;

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

/// Rows per Parquet row group (arrow-rs' and pyarrow's default too). Each full row group is
/// encoded as soon as it is complete, its columns in parallel, while the stage keeps
/// producing. Every row group starts its dictionaries afresh: at 128 Ki rows the retail RFM
/// run spent 9 % more user CPU re-interning the same strings.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// An in-memory output of at least this many rows that its stage ends with unencoded is
/// encoded on a thread of its own while downstream stages start on the rows; smaller
/// outputs are encoded inline, which costs less than starting a thread.
const DEFER_ROWS: usize = 64 * 1024;

/// Parquet settings for every artifact: zstd (fast level), dictionary pages, and min/max
/// statistics for every column except top-level strings and binaries. Those statistics
/// cost two byte comparisons per value (a tenth of the retail RFM run's user CPU), and
/// sluice reads whole artifacts, never pruning on a string range; see docs/decisions.md.
fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(dictionary_chunk::ZSTD_LEVEL).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    for field in schema.fields() {
        if is_byte_array(field.data_type()) {
            builder = builder.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::None,
            );
        }
    }
    builder.build()
}

/// Whether a column is stored as a Parquet byte array (strings, binaries, and their
/// dictionary-encoded forms).
fn is_byte_array(ty: &DataType) -> bool {
    match ty {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => true,
        DataType::Dictionary(_, v) => is_byte_array(v),
        _ => false,
    }
}

/// The Parquet file being written: a file writer plus the factory of per-column encoders.
struct ParquetSink {
    writer: SerializedFileWriter<BufWriter<File>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    row_groups: usize,
}

impl ParquetSink {
    fn create(path: &Path, schema: SchemaRef) -> Result<Self, ParquetError> {
        let file = File::create(path).map_err(|e| ParquetError::External(Box::new(e)))?;
        // ArrowWriter embeds the Arrow schema in the footer (exact types on read-back);
        // its lower half then lets us encode columns in parallel.
        let arrow = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            schema.clone(),
            Some(writer_properties(&schema)),
        )?;
        let (writer, factory) = arrow.into_serialized_writer()?;
        Ok(ParquetSink { writer, factory, schema, row_groups: 0 })
    }

    /// Encodes `batches` as one row group, then appends the column chunks in schema order.
    /// With `parallel`, every column is its own rayon task.
    fn write_row_group(&mut self, batches: &[RecordBatch], parallel: bool) -> Result<(), ParquetError> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        // Flat columns of the types `dictionary_chunk` supports go through it; a field's
        // descriptor is the Parquet leaf at its position (nested fields count their leaves).
        let descriptors = self.writer.schema_descr();
        let mut leaf = 0;
        let own: Vec<Option<ColumnDescPtr>> = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                let d = dictionary_chunk::supports(f.data_type()).then(|| descriptors.column(leaf));
                leaf += leaf_count(f.data_type());
                d
            })
            .collect();
        // Parquet's column writers (each with its own zstd contexts and interner) are made
        // only when some column needs one; for a column the own encoder turns down, on
        // demand below.
        let per_field: Vec<Vec<ArrowColumnWriter>> = if own.iter().all(Option::is_some) {
            own.iter().map(|_| Vec::new()).collect()
        } else {
            self.column_writers()?
        };
        let encode = |(i, mut field_writers): (usize, Vec<ArrowColumnWriter>)| {
            let field = self.schema.field(i);
            if let Some(descr) = &own[i] {
                let arrays: Vec<&ArrayRef> = batches.iter().map(|b| b.column(i)).collect();
                if let Some(chunk) = dictionary_chunk::encode(descr, &arrays)? {
                    return Ok(vec![Chunk::Own(chunk)]);
                }
                if field_writers.is_empty() {
                    field_writers = self.column_writers()?.swap_remove(i);
                }
            }
            for batch in batches {
                let leaves = compute_leaves(field, batch.column(i))?;
                for (w, leaf) in field_writers.iter_mut().zip(leaves.iter()) {
                    w.write(leaf)?;
                }
            }
            field_writers.into_iter().map(|w| w.close().map(Chunk::Arrow)).collect::<Result<Vec<_>, _>>()
        };
        let chunks: Vec<Encoded> = if parallel && rows >= 16 * 1024 {
            let cost = |i: usize| -> usize {
                batches.iter().map(|b| b.column(i).to_data().get_slice_memory_size().unwrap_or(0)).sum()
            };
            largest_first(per_field, cost, encode)
        } else {
            // Not worth a task switch for a few rows (or there is no pool to use).
            per_field.into_iter().enumerate().map(encode).collect()
        };
        let mut group = self.writer.next_row_group()?;
        for field_chunks in chunks {
            for chunk in field_chunks? {
                match chunk {
                    Chunk::Arrow(c) => c.append_to_row_group(&mut group)?,
                    Chunk::Own(c) => group.append_column(&c.data, c.close)?,
                }
            }
        }
        group.close()?;
        self.row_groups += 1;
        Ok(())
    }

    /// Parquet's column writers for the current row group, grouped by top-level field (a
    /// nested field has several leaves).
    fn column_writers(&self) -> Result<Vec<Vec<ArrowColumnWriter>>, ParquetError> {
        let mut writers = self.factory.create_column_writers(self.row_groups)?.into_iter();
        Ok(self
            .schema
            .fields()
            .iter()
            .map(|field| writers.by_ref().take(leaf_count(field.data_type())).collect())
            .collect())
    }

    fn close(self) -> Result<(), ParquetError> {
        let mut inner = self.writer.into_inner()?;
        inner.flush().map_err(|e| ParquetError::External(Box::new(e)))
    }
}

/// Encodes every field on the current rayon pool, the largest first (by its bytes in
/// memory), each thread taking the next field when it is done with one. Whole columns are
/// the tasks, so their order decides how long the last one runs alone: split into halves by
/// schema position, the retail RFM artifacts kept one encode thread busy 7–13 ms after the
/// other had finished.
fn largest_first<F>(
    fields: Vec<Vec<ArrowColumnWriter>>,
    cost: impl Fn(usize) -> usize,
    encode: F,
) -> Vec<Encoded>
where
    F: Fn((usize, Vec<ArrowColumnWriter>)) -> Encoded + Sync,
{
    let n = fields.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost(i)));
    let tasks: Vec<Mutex<Option<Vec<ArrowColumnWriter>>>> =
        fields.into_iter().map(|f| Mutex::new(Some(f))).collect();
    let done: Vec<Mutex<Option<Encoded>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let writers = tasks[i].lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(writers) = writers {
                let chunk = encode((i, writers));
                *done[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(chunk);
            }
        }
    };
    rayon::scope(|s| {
        for _ in 1..rayon::current_num_threads().min(n) {
            s.spawn(|_| work());
        }
        work();
    });
    done.into_iter()
        .map(|d| {
            d.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or_else(|| Err(ParquetError::General("a column was not encoded".into())))
        })
        .collect()
}

/// A field's encoded column chunks (several for a nested field), or why encoding failed.
type Encoded = Result<Vec<Chunk>, ParquetError>;

/// One encoded column chunk: from parquet's Arrow writer, or from [`dictionary_chunk`].
enum Chunk {
    Arrow(ArrowColumnChunk),
    Own(EncodedChunk),
}

/// Parquet leaf columns under one Arrow type.
fn leaf_count(ty: &DataType) -> usize {
    match ty {
        DataType::Struct(fields) => fields.iter().map(|f| leaf_count(f.data_type())).sum(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => leaf_count(f.data_type()),
        DataType::Map(f, _) => leaf_count(f.data_type()),
        DataType::Dictionary(_, v) => leaf_count(v),
        _ => 1,
    }
}

/// The threads that encode outputs in the background (one per core, started on first
/// use, at a lower priority than the stages'); `None` if they cannot be started, and then
/// columns are encoded one at a time.
fn encode_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("sluice-encode-{i}"))
            .start_handler(|_| crate::thread_priority::lower_current_thread())
            .build()
            .ok()
    })
    .as_ref()
}

/// Where encoding happens: inline for small outputs (most stages of a pipeline — no thread
/// to start), on a background thread once a first full row group exists.
enum Encoder {
    Inline(Option<Box<ParquetSink>>),
    Background {
        tx: Option<SyncSender<Vec<RecordBatch>>>,
        handle: Option<JoinHandle<Result<(), ParquetError>>>,
        /// Opens once the thread has dropped every batch it was given.
        released: Latch,
    },
}

/// Streams one output to Parquet, keeping the batches in memory too while they fit the
/// budget (so downstream stages in the same run need not re-read).
pub struct OutputWriter {
    name: String,
    schema: SchemaRef,
    tmp_path: PathBuf,
    final_path: PathBuf,
    encoder: Encoder,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// Rows per row group: [`ROW_GROUP_ROWS`], smaller in tests.
    row_group_rows: usize,
    rows: u64,
    retained: Option<Vec<RecordBatch>>,
    retained_bytes: usize,
    budget: usize,
    /// For a partitioned output: its directory in tmp, and the rows of the parts carried
    /// over from the previous artifact.
    partitioned: Option<(PathBuf, u64)>,
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
        let sink = ParquetSink::create(&tmp_path, schema.clone())
            .map_err(|source| StageError::Parquet { path: tmp_path.clone(), source })?;
        Ok(OutputWriter {
            name: name.to_string(),
            schema,
            tmp_path,
            final_path: final_dir.join(file_name),
            encoder: Encoder::Inline(Some(Box::new(sink))),
            pending: Vec::new(),
            pending_rows: 0,
            row_group_rows: ROW_GROUP_ROWS,
            rows: 0,
            retained: Some(Vec::new()),
            retained_bytes: 0,
            budget: memory_budget,
            partitioned: None,
        })
    }

    /// Starts a partitioned output `name/`: the Parquet files of `carried` (a previous
    /// artifact's data) are hard-linked in as the first parts — nothing is re-read or
    /// copied — and what is written becomes the next part.
    pub fn create_partitioned(
        name: &str,
        schema: SchemaRef,
        tmp_dir: &Path,
        final_dir: &Path,
        carried: Option<&Dataset>,
    ) -> Result<Self, StageError> {
        let dir = tmp_dir.join(name);
        fs::create_dir_all(&dir).map_err(|e| StageError::io(&dir, e))?;
        let mut n = 0usize;
        let mut carried_rows = 0;
        if let Some(prev) = carried {
            if prev.schema.fields() != schema.fields() {
                return Err(StageError::Failed(format!(
                    "the data collected so far has columns {:?}, but the source now has {:?}; \
                     run with `--force STAGE` to collect everything again",
                    prev.schema
                        .fields()
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>(),
                    schema
                        .fields()
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>(),
                )));
            }
            for file in prev.files()? {
                let dest = dir.join(format!("part-{n:05}.parquet"));
                if fs::hard_link(&file, &dest).is_err() {
                    fs::copy(&file, &dest).map_err(|e| StageError::io(&dest, e))?;
                }
                n += 1;
            }
            carried_rows = prev.rows;
        }
        let part = dir.join(format!("part-{n:05}.parquet"));
        let sink = ParquetSink::create(&part, schema.clone())
            .map_err(|source| StageError::Parquet { path: part.clone(), source })?;
        Ok(OutputWriter {
            name: name.to_string(),
            schema,
            tmp_path: part,
            final_path: final_dir.join(name),
            encoder: Encoder::Inline(Some(Box::new(sink))),
            pending: Vec::new(),
            pending_rows: 0,
            row_group_rows: ROW_GROUP_ROWS,
            rows: 0,
            // Downstream reads the accumulated parts from disk.
            retained: None,
            retained_bytes: 0,
            budget: 0,
            partitioned: Some((dir, carried_rows)),
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

    /// Rows written so far (by this run: carried-over parts are not counted).
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
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= self.row_group_rows {
            let group = self.take_pending();
            self.send(group)?;
        }
        Ok(())
    }

    /// The rows not yet given to the encoder, taken out.
    fn take_pending(&mut self) -> Vec<RecordBatch> {
        self.pending_rows = 0;
        std::mem::take(&mut self.pending)
    }

    /// Hands a full row group to the background encoder, starting it on first use.
    fn send(&mut self, group: Vec<RecordBatch>) -> Result<(), StageError> {
        if let Encoder::Inline(sink) = &mut self.encoder {
            let mut sink =
                sink.take().ok_or_else(|| StageError::Internal("output writer used after failure".into()))?;
            let (tx, rx) = sync_channel::<Vec<RecordBatch>>(2);
            let (released, opener) = Latch::new();
            let handle = std::thread::Builder::new()
                .name(format!("write-{}", self.name))
                .spawn(move || {
                    crate::thread_priority::lower_current_thread();
                    // Columns in parallel on a pool of their own: on the shared pool,
                    // whole-column tasks would make the stages running meanwhile queue
                    // their parallel work behind them.
                    for group in rx {
                        match encode_pool() {
                            Some(pool) => pool.install(|| sink.write_row_group(&group, true))?,
                            None => sink.write_row_group(&group, false)?,
                        }
                    }
                    // Every group is dropped by now (on an error too, with `opener`).
                    drop(opener);
                    sink.close()
                })
                .map_err(|e| StageError::io(&self.tmp_path, e))?;
            self.encoder = Encoder::Background { tx: Some(tx), handle: Some(handle), released };
        }
        if let Encoder::Background { tx, .. } = &self.encoder {
            let sent = tx.as_ref().map(|tx| tx.send(group));
            if !matches!(sent, Some(Ok(()))) {
                // The encoder stopped: joining reports its error.
                return self.close_file();
            }
        }
        Ok(())
    }

    /// Writes what is pending and closes the file.
    fn close_file(&mut self) -> Result<(), StageError> {
        if let Some(file) = self.hand_off_encoder()? {
            return file.join();
        }
        let pending = self.take_pending();
        let path = self.tmp_path.clone();
        let parquet = |source| StageError::Parquet { path: path.clone(), source };
        let Encoder::Inline(sink) = &mut self.encoder else {
            return Err(StageError::Internal("output writer closed twice".into()));
        };
        let mut sink =
            sink.take().ok_or_else(|| StageError::Internal("output writer closed twice".into()))?;
        if !pending.is_empty() {
            sink.write_row_group(&pending, true).map_err(parquet)?;
        }
        sink.close().map_err(parquet)
    }

    /// With a background encoder: gives it what is pending, closes its queue and returns it
    /// as the file still being written; `None` for an inline encoder.
    fn hand_off_encoder(&mut self) -> Result<Option<PendingFile>, StageError> {
        if !matches!(self.encoder, Encoder::Background { .. }) {
            return Ok(None);
        }
        let pending = self.take_pending();
        let Encoder::Background { tx, handle, released } = &mut self.encoder else { return Ok(None) };
        if !pending.is_empty()
            && let Some(t) = tx.as_ref()
        {
            // A send error means the thread already failed; joining it says why.
            let _ = t.send(pending);
        }
        *tx = None;
        let handle =
            handle.take().ok_or_else(|| StageError::Internal("output writer closed twice".into()))?;
        Ok(Some(PendingFile {
            name: self.name.clone(),
            path: self.tmp_path.clone(),
            handle,
            released: released.clone(),
        }))
    }

    /// Finishes the file and returns the dataset as downstream stages will see it.
    pub fn finish(self) -> Result<(OutputInfo, Dataset), StageError> {
        match self.finish_deferred()? {
            (info, ds, None) => Ok((info, ds)),
            (mut info, mut ds, Some(pending)) => {
                info.bytes = pending.wait()?;
                ds.bytes = info.bytes;
                Ok((info, ds))
            }
        }
    }

    /// Like [`OutputWriter::finish`], but when the rows are held in memory and a background
    /// encoder is still busy, returns at once with the encoder as a [`PendingFile`]:
    /// downstream stages can start on the in-memory rows while the Parquet file is
    /// completed. `info.bytes` is 0 until the pending file is waited for.
    pub fn finish_deferred(mut self) -> Result<(OutputInfo, Dataset, Option<PendingFile>), StageError> {
        if self.partitioned.is_none()
            && let Some(batches) = self.retained.take()
        {
            if matches!(self.encoder, Encoder::Inline(_)) && self.pending_rows >= DEFER_ROWS {
                let group = self.take_pending();
                self.send(group)?;
            }
            match self.hand_off_encoder()? {
                Some(file) => {
                    let info =
                        OutputInfo { file: format!("{}.parquet", self.name), rows: self.rows, bytes: 0 };
                    let ds = Dataset::in_memory(
                        self.schema.clone(),
                        self.final_path.clone(),
                        self.rows,
                        0,
                        batches,
                    )
                    .encoded_until(file.released.clone());
                    return Ok((info, ds, Some(file)));
                }
                // Encoded inline: finished below, like any other output.
                None => self.retained = Some(batches),
            }
        }
        self.close_file()?;
        if let Some((dir, carried)) = self.partitioned.take() {
            let mut ds = Dataset::open(&dir)?;
            let info = OutputInfo { file: self.name.clone(), rows: carried + self.rows, bytes: ds.bytes };
            ds.path = self.final_path.clone();
            return Ok((info, ds, None));
        }
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
        Ok((info, ds, None))
    }
}

/// An output's Parquet file still being encoded on its writer thread.
pub struct PendingFile {
    name: String,
    path: PathBuf,
    handle: JoinHandle<Result<(), ParquetError>>,
    /// Opens once the writer thread has dropped the rows.
    released: Latch,
}

impl std::fmt::Debug for PendingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFile").field("name", &self.name).field("path", &self.path).finish()
    }
}

impl PendingFile {
    /// The output's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the file is complete and returns its size.
    pub fn wait(self) -> Result<u64, StageError> {
        let path = self.path.clone();
        self.join()?;
        Ok(fs::metadata(&path).map_err(|e| StageError::io(&path, e))?.len())
    }

    /// Waits until the writer thread is done.
    fn join(self) -> Result<(), StageError> {
        match self.handle.join() {
            Ok(result) => result.map_err(|source| StageError::Parquet { path: self.path, source }),
            Err(_) => Err(StageError::Internal(format!("the writer thread of `{}` panicked", self.name))),
        }
    }
}

impl Drop for OutputWriter {
    fn drop(&mut self) {
        // Closing the channel lets a background encoder end; an unfinished file stays in
        // tmp/ only.
        if let Encoder::Background { tx, .. } = &mut self.encoder {
            *tx = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn columns_are_encoded_largest_first_and_returned_in_schema_order() {
        let costs = [3usize, 9, 1, 7, 5];
        let run = |threads: usize| {
            let started = Mutex::new(Vec::new());
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let out = pool.install(|| {
                largest_first(
                    costs.iter().map(|_| Vec::new()).collect(),
                    |i| costs[i],
                    |(i, _)| {
                        started.lock().unwrap().push(i);
                        if i == 3 { Err(ParquetError::General("column 3".into())) } else { Ok(Vec::new()) }
                    },
                )
            });
            let errors: Vec<String> =
                out.iter().map(|r| r.as_ref().err().map(ToString::to_string).unwrap_or_default()).collect();
            (started.into_inner().unwrap(), errors)
        };
        let (order, errors) = run(1);
        assert_eq!(order, [1, 3, 4, 0, 2], "one thread takes them by falling cost");
        assert_eq!(errors, ["", "", "", "Parquet error: column 3", ""], "results stay in schema order");
        let (mut order, errors) = run(2);
        order.sort_unstable();
        assert_eq!(order, [0, 1, 2, 3, 4], "each column once");
        assert_eq!(errors[3], "Parquet error: column 3");
    }

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

    #[test]
    fn large_and_nested_outputs_round_trip_across_row_groups() {
        use arrow::array::{Array, ArrayRef, ListArray, StructArray};
        use arrow::datatypes::Int32Type;
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let tmp = store.begin("k3", "r1", "s").unwrap();
        // Enough rows for several row groups (of a test size), so the background encoder runs.
        const ROW_GROUP_ROWS: usize = 20_000;
        let n = (ROW_GROUP_ROWS * 3 + 1234) as i64;
        let base = batch(n);
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..n).map(|i| (i % 5 != 0).then(|| vec![Some(i as i32), None, Some(1)])),
        );
        let inner = StructArray::from(vec![(
            Arc::new(Field::new("x", DataType::Int64, false)),
            Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * 2))) as ArrayRef,
        )]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tags", list.data_type().clone(), true),
            Field::new("inner", inner.data_type().clone(), false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let full = RecordBatch::try_new(
            schema.clone(),
            vec![base.column(0).clone(), Arc::new(list), Arc::new(inner), base.column(1).clone()],
        )
        .unwrap();
        let mut w = OutputWriter::create("data", schema.clone(), &tmp, &store.dir("k3"), 0).unwrap();
        w.row_group_rows = ROW_GROUP_ROWS;
        let mut offset = 0;
        while offset < n as usize {
            let len = 10_000.min(n as usize - offset);
            w.write(full.slice(offset, len)).unwrap();
            offset += len;
        }
        let (info, ds) = w.finish().unwrap();
        assert_eq!(info.rows, n as u64);
        let file = File::open(tmp.join("data.parquet")).unwrap();
        let meta = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert!(meta.metadata().num_row_groups() >= 3, "row groups: {}", meta.metadata().num_row_groups());
        let mut ds = ds;
        ds.path = tmp.join("data.parquet");
        let back = arrow::compute::concat_batches(&schema, &ds.read_all().unwrap()).unwrap();
        assert_eq!(back, full);
    }

    /// A writer of output `data` under key `key` in a fresh store: (store dir, its temp dir,
    /// the writer).
    fn writer(key: &str, budget: usize) -> (tempfile::TempDir, PathBuf, OutputWriter) {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let tmp = store.begin(key, "r1", "s").unwrap();
        let w = OutputWriter::create("data", batch(0).schema(), &tmp, &store.dir(key), budget).unwrap();
        (dir, tmp, w)
    }

    #[test]
    fn a_large_in_memory_output_is_handed_on_before_its_file_is_complete() {
        // Fewer rows than a row group: the encoder starts only when the stage finishes.
        let n = (DEFER_ROWS * 2 + 77) as i64;
        let full = batch(n);
        let (_dir, tmp, mut w) = writer("k4", 1 << 30);
        w.write(full.clone()).unwrap();
        let (info, ds, pending) = w.finish_deferred().unwrap();
        let pending = pending.expect("a background encoder was running, so the file is pending");
        assert_eq!((info.rows, info.bytes), (n as u64, 0), "the size is known only once the file is done");
        let rows: Vec<RecordBatch> = ds.memory().expect("rows stay in memory").to_vec();
        assert_eq!(arrow::compute::concat_batches(&full.schema(), &rows).unwrap(), full);
        drop(rows);
        // Once the encoder lets go (maybe already), the rows are the dataset's alone, so a
        // stage can change them in place.
        if let Some(latch) = ds.encoder() {
            latch.wait();
        }
        assert!(ds.encoder().is_none());
        let mut ds = ds;
        let mut taken = ds.take_all().unwrap();
        drop(full);
        let ids = taken.remove(0).column(0).clone();
        drop(taken);
        let values = ids.as_primitive::<arrow::datatypes::Int64Type>().values().inner().clone();
        drop(ids);
        assert!(values.into_mutable().is_ok(), "nothing else holds the rows");
        let full = batch(n);
        let bytes = pending.wait().unwrap();
        let path = tmp.join("data.parquet");
        assert_eq!(bytes, fs::metadata(&path).unwrap().len());
        let back = Dataset::open(&path).unwrap().read_all().unwrap();
        assert_eq!(arrow::compute::concat_batches(&full.schema(), &back).unwrap(), full);

        // So does one of several row groups.
        let (_dir, tmp, mut w) = writer("k7", 1 << 30);
        w.row_group_rows = 10_000;
        w.write(full.clone()).unwrap();
        let (_, ds, pending) = w.finish_deferred().unwrap();
        assert!(ds.memory().is_some());
        pending.expect("a background encoder was running").wait().unwrap();
        let back = Dataset::open(&tmp.join("data.parquet")).unwrap().read_all().unwrap();
        assert_eq!(arrow::compute::concat_batches(&full.schema(), &back).unwrap(), full);

        // A small output is encoded inline and is complete on return.
        let (_dir, tmp, mut w) = writer("k5", 1 << 30);
        w.write(batch(DEFER_ROWS as i64 - 1)).unwrap();
        let (info, _, pending) = w.finish_deferred().unwrap();
        assert!(pending.is_none());
        assert_eq!(info.bytes, fs::metadata(tmp.join("data.parquet")).unwrap().len());
    }

    #[test]
    fn a_pending_file_whose_encoder_failed_reports_the_file() {
        let handle = std::thread::spawn(|| Err(ParquetError::General("no space left on device".into())));
        let file = PendingFile {
            name: "data".into(),
            path: PathBuf::from("/state/tmp/k/data.parquet"),
            handle,
            released: Latch::new().0,
        };
        let err = file.wait().unwrap_err().to_string();
        assert!(err.contains("/state/tmp/k/data.parquet") && err.contains("no space left"), "{err}");
    }

    #[test]
    fn string_columns_carry_no_statistics_and_numbers_do() {
        let (_dir, tmp, mut w) = writer("k6", 0);
        w.write(batch(1000)).unwrap();
        w.finish().unwrap();
        let file = File::open(tmp.join("data.parquet")).unwrap();
        let meta = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let group = meta.metadata().row_group(0);
        assert!(group.column(0).statistics().is_some_and(|s| s.min_bytes_opt().is_some()), "id has min/max");
        assert!(group.column(1).statistics().is_none_or(|s| s.min_bytes_opt().is_none()), "name has none");
    }

    #[test]
    fn string_and_binary_columns_round_trip_through_the_dictionary_encoder() {
        use arrow::array::{BinaryArray, LargeStringArray, StringViewArray};
        use parquet::arrow::arrow_reader::{
            ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
        };
        use parquet::basic::Encoding;
        use parquet::file::metadata::PageIndexPolicy;
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("l", DataType::LargeUtf8, false),
            Field::new("v", DataType::Utf8View, true),
            Field::new("b", DataType::Binary, true),
            Field::new("unique", DataType::Utf8, false),
            Field::new("none", DataType::Utf8, true),
        ]));
        let make = |from: usize, n: usize| {
            let s = StringArray::from_iter((from..from + n).map(|i| match i % 97 {
                0 => None,
                1 => Some(String::new()),
                k if k < 40 => Some(format!("line {}", i / 50)), // runs of equal values
                k => Some(format!("café ✓ {}", k % 7)),
            }));
            let l = LargeStringArray::from_iter_values((from..from + n).map(|i| format!("{}", i % 5)));
            let v = StringViewArray::from_iter(
                (from..from + n).map(|i| (i % 11 != 0).then(|| format!("a long view value {}", i % 13))),
            );
            let b = BinaryArray::from_iter(
                (from..from + n).map(|i| (i % 3 != 0).then(|| vec![(i % 4) as u8, 0, 255])),
            );
            let unique = StringArray::from_iter_values((from..from + n).map(|i| format!("{i:040}")));
            let none = StringArray::from_iter((0..n).map(|_| None::<&str>));
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(s), Arc::new(l), Arc::new(v), Arc::new(b), Arc::new(unique), Arc::new(none)],
            )
            .unwrap()
        };
        // Two batches in one row group, three data pages per column; the first batch is a
        // slice (offsets and validity not starting at zero).
        let (first, second) = (make(0, 26_007).slice(7, 26_000), make(26_000, 19_000));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut sink = ParquetSink::create(&path, schema.clone()).unwrap();
        sink.write_row_group(&[first.clone(), second.clone()], true).unwrap();
        sink.close().unwrap();
        let expected = arrow::compute::concat_batches(&schema, [&first, &second]).unwrap();

        let open = || {
            let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
            ParquetRecordBatchReaderBuilder::try_new_with_options(File::open(&path).unwrap(), options)
                .unwrap()
        };
        let all: Vec<RecordBatch> = open().build().unwrap().map(Result::unwrap).collect();
        assert_eq!(arrow::compute::concat_batches(&schema, &all).unwrap(), expected);

        let builder = open();
        let meta = builder.metadata().clone();
        let group = meta.row_group(0);
        for c in [0, 1, 2, 3, 5] {
            let col = group.column(c);
            assert!(col.dictionary_page_offset().is_some(), "column {c} has a dictionary");
            let encodings: Vec<Encoding> = col.encodings().collect();
            assert!(encodings.contains(&Encoding::RLE_DICTIONARY), "column {c}: {encodings:?}");
        }
        let pages = &meta.offset_index().unwrap()[0][0];
        assert_eq!(pages.page_locations.len(), 3);
        // 1.8 MB of distinct values: too many for a dictionary; still read back above.
        assert!(group.column(4).compressed_size() > 0);

        // Skipping rows goes through the offset index to the right page.
        let selection = RowSelection::from(vec![RowSelector::skip(41_000), RowSelector::select(500)]);
        let picked: Vec<RecordBatch> =
            open().with_row_selection(selection).build().unwrap().map(Result::unwrap).collect();
        assert_eq!(arrow::compute::concat_batches(&schema, &picked).unwrap(), expected.slice(41_000, 500));
    }

    #[test]
    fn numeric_columns_match_the_arrow_writer_in_values_and_statistics() {
        use arrow::array::{
            Date32Array, Float32Array, Float64Array, Int32Array, TimestampMicrosecondArray,
            TimestampNanosecondArray,
        };
        use arrow::datatypes::TimeUnit;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let schema = Arc::new(Schema::new(vec![
            Field::new("i64", DataType::Int64, true),
            Field::new("f64", DataType::Float64, true),
            Field::new("nan", DataType::Float64, true),
            Field::new("zero", DataType::Float32, false),
            Field::new("i32", DataType::Int32, false),
            Field::new("date", DataType::Date32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("ns", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("unique", DataType::Int64, false),
            Field::new("none", DataType::Int64, true),
        ]));
        let make = |from: i64, n: i64| {
            let r = from..from + n;
            let cols: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter(r.clone().map(|i| (i % 13 != 0).then_some((i / 40) - 900)))),
                Arc::new(Float64Array::from_iter(r.clone().map(|i| match i % 7 {
                    0 => None,
                    1 => Some(f64::NAN),
                    2 => Some(-0.0),
                    3 => Some(0.0),
                    _ => Some((i % 300) as f64 * 0.25 - 20.0),
                }))),
                Arc::new(Float64Array::from_iter(r.clone().map(|i| (i % 2 == 0).then_some(f64::NAN)))),
                Arc::new(Float32Array::from_iter_values(
                    r.clone().map(|i| if i % 2 == 0 { 0.0 } else { -0.0 }),
                )),
                Arc::new(Int32Array::from_iter_values(r.clone().map(|i| (i % 1000) as i32 - 500))),
                Arc::new(Date32Array::from_iter(
                    r.clone().map(|i| (i % 5 != 0).then_some(18_000 + (i / 100) as i32)),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter(
                        r.clone().map(|i| (i % 9 != 0).then_some(i / 20 * 60_000_000)),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(TimestampNanosecondArray::from_iter_values(r.clone().map(|i| i % 17 * 1_000))),
                Arc::new(Int64Array::from_iter_values(r.clone())),
                Arc::new(Int64Array::from_iter(r.map(|_| None::<i64>))),
            ];
            RecordBatch::try_new(schema.clone(), cols).unwrap()
        };
        // More distinct `unique` values than a 1 MiB dictionary holds: that column falls
        // back to the Arrow writer mid-way through the first batch.
        let (first, second) = (make(0, 80_000), make(80_000, 70_000));
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.parquet");
        let mut sink = ParquetSink::create(&ours, schema.clone()).unwrap();
        sink.write_row_group(&[first.clone(), second.clone()], true).unwrap();
        sink.close().unwrap();
        let theirs = dir.path().join("theirs.parquet");
        let mut w = ArrowWriter::try_new(
            File::create(&theirs).unwrap(),
            schema.clone(),
            Some(writer_properties(&schema)),
        )
        .unwrap();
        w.write(&arrow::compute::concat_batches(&schema, [&first, &second]).unwrap()).unwrap();
        w.close().unwrap();

        let read = |path: &Path| {
            let b = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
            let meta = b.metadata().clone();
            let batches: Vec<RecordBatch> = b.build().unwrap().map(Result::unwrap).collect();
            (meta, arrow::compute::concat_batches(&schema, &batches).unwrap())
        };
        let ((ours_meta, ours_rows), (their_meta, their_rows)) = (read(&ours), read(&theirs));
        // NaN != NaN: compare the bits through the Arrow data, not the values.
        for c in 0..schema.fields().len() {
            let name = schema.field(c).name();
            assert_eq!(ours_rows.column(c).to_data(), their_rows.column(c).to_data(), "{name} values");
            let (a, b) = (ours_meta.row_group(0).column(c), their_meta.row_group(0).column(c));
            let (a, b) = (a.statistics().unwrap(), b.statistics().unwrap());
            assert_eq!(a.min_bytes_opt(), b.min_bytes_opt(), "{name} min");
            assert_eq!(a.max_bytes_opt(), b.max_bytes_opt(), "{name} max");
            assert_eq!(a.null_count_opt(), b.null_count_opt(), "{name} nulls");
        }
        assert!(ours_meta.row_group(0).column(0).dictionary_page_offset().is_some());
    }
}
