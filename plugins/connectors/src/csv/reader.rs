//! The streaming CSV reader.
//!
//! A producer thread reads each file in large blocks and cuts them at a likely record
//! boundary ([`last_boundary`]); a private thread pool parses the chunks into record batches
//! in parallel; the consumer (`next_batch`) takes results in file order, turns chunk-relative
//! line numbers into file lines, applies `on_error`, and regroups rows to at most `batch_size`.
//!
//! A chunk's parse reports whether the chunk really ended between records. When the guess
//! was wrong (a quoted field spans the cut), the consumer re-parses the unfinished record
//! together with the next chunk itself, so guesses never affect the output.

use std::any::Any;
use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::filter;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use memchr::memrchr;
use sluice_plugin::{BatchReader, ConnectorError, OnError, Reject};

use super::columns::{self, Column, Fields, NullMarkers};
use super::tokenizer::{Cursor, Dialect, FieldBuf, MAX_INPUT, Step, last_boundary};
use crate::encoding::Encoding;
use crate::rebatch::Rebatcher;

/// Default size of the blocks files are read in. Small enough that two cores share the work
/// evenly from the first milliseconds, large enough that per-chunk costs do not matter.
pub(crate) const DEFAULT_BLOCK: usize = 2 << 20;

/// A record (or unfinished quoted field) longer than this is an error: it almost always
/// means an unbalanced quote swallowed the rest of the file.
pub(crate) const MAX_RECORD: usize = 64 << 20;

/// After this many blocks without a boundary the producer cuts at any line break.
const GIVE_UP_GUESSING: usize = 4;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Everything fixed for one read, shared by all threads.
#[derive(Debug)]
pub(crate) struct Plan {
    /// CSV dialect.
    pub dialect: Dialect,
    /// Output columns.
    pub columns: Vec<Column>,
    /// Output schema (matches `columns`).
    pub schema: SchemaRef,
    /// NULL markers.
    pub nulls: NullMarkers,
    /// Whether files start with a header line.
    pub header: bool,
    /// Header of the first file as written (every file must repeat it).
    pub first_header: Option<Vec<String>>,
    /// Files, in read order.
    pub files: Vec<PathBuf>,
    /// Read block size (small in tests to exercise chunk boundaries).
    pub block_size: usize,
    /// Whether rejected rows keep their raw text (quarantine).
    pub keep_raw: bool,
    /// Text encoding of the files.
    pub encoding: Encoding,
}

/// A file being read block by block, decoded to UTF-8 when it is in another encoding.
pub(crate) struct BlockFile {
    file: File,
    path: PathBuf,
    encoding: Encoding,
    /// Undecoded bytes (only for encodings other than UTF-8).
    scratch: Vec<u8>,
    /// The whole file has been read.
    pub eof: bool,
}

impl BlockFile {
    /// Opens `path`.
    pub(crate) fn open(path: &Path, encoding: Encoding) -> Result<Self, ConnectorError> {
        let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        Ok(BlockFile { file, path: path.to_path_buf(), encoding, scratch: Vec::new(), eof: false })
    }

    /// Appends up to `n` more bytes of the file to `buf` (more after decoding).
    pub(crate) fn fill(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<(), ConnectorError> {
        // UTF-8 is read straight into `buf`: the default path pays nothing for encodings.
        let target = if self.encoding == Encoding::Utf8 {
            buf.reserve(n);
            &mut *buf
        } else {
            self.scratch.clear();
            &mut self.scratch
        };
        let got = (&mut self.file)
            .take(n as u64)
            .read_to_end(target)
            .map_err(|e| ConnectorError::io(&self.path, e))?;
        if got < n {
            self.eof = true;
        }
        if self.encoding != Encoding::Utf8 {
            self.encoding.decode_into(&self.scratch, buf);
        }
        Ok(())
    }
}

/// The start of a file: its header (when there is one) and the bytes read past it.
pub(crate) struct FileStart {
    /// Header fields as written.
    pub header: Option<Vec<String>>,
    /// Line breaks up to the end of the header (so the first data line is this + 1).
    pub header_lines: u64,
    /// Bytes after the header, already read.
    pub rest: Vec<u8>,
}

/// Reads past a UTF-8 BOM and (with `header`) the header line.
pub(crate) fn read_start(
    src: &mut BlockFile,
    d: Dialect,
    header: bool,
    block: usize,
) -> Result<FileStart, ConnectorError> {
    let mut buf = Vec::new();
    while buf.len() < BOM.len() && !src.eof {
        src.fill(&mut buf, block)?;
    }
    if buf.starts_with(BOM) {
        buf.drain(..BOM.len());
    }
    if !header {
        return Ok(FileStart { header: None, header_lines: 0, rest: buf });
    }
    let mut skipped_lines = 0;
    loop {
        let mut fb = FieldBuf::default();
        let mut cur = Cursor::new(&buf, d, src.eof);
        match cur.next_record(&mut fb) {
            Step::Record(_) => {
                let names =
                    fb.spans.iter().map(|s| String::from_utf8_lossy(fb.get(&buf, *s)).into_owned()).collect();
                let (pos, lines) = (cur.pos, cur.newlines);
                buf.drain(..pos);
                return Ok(FileStart { header: Some(names), header_lines: skipped_lines + lines, rest: buf });
            }
            Step::Unterminated { line, .. } => {
                return Err(ConnectorError::Malformed {
                    file: src.path.clone(),
                    line: skipped_lines + line + 1,
                    reason: "the header line has a quoted field that is never closed".into(),
                });
            }
            Step::End if src.eof => {
                return Err(ConnectorError::Malformed {
                    file: src.path.clone(),
                    line: 1,
                    reason: "the file is empty; expected a header line (set `header = false` if the file has none)".into(),
                });
            }
            Step::End => {
                // Only blank or comment lines so far: forget them but keep counting.
                skipped_lines += cur.newlines;
                buf.clear();
            }
            Step::Incomplete { .. } => {
                if buf.len() > MAX_RECORD {
                    return Err(too_long(&src.path, Some(skipped_lines + 1)));
                }
            }
        }
        src.fill(&mut buf, block)?;
    }
}

/// The error for a record longer than [`MAX_RECORD`].
pub(crate) fn too_long(file: &Path, line: Option<u64>) -> ConnectorError {
    let reason = format!("a record is longer than {} MiB; is a quote left open?", MAX_RECORD >> 20);
    match line {
        Some(line) => ConnectorError::Malformed { file: file.to_path_buf(), line, reason },
        None => ConnectorError::Other(format!("{}: {reason}", file.display())),
    }
}

/// A refused row, with its line relative to the chunk.
#[derive(Debug)]
struct RowReject {
    line: u64,
    reason: String,
    raw: String,
}

/// The result of parsing one chunk.
#[derive(Debug)]
struct Parsed {
    batch: RecordBatch,
    rejects: Vec<RowReject>,
    /// Line breaks in the part of the chunk that was consumed.
    newlines: u64,
    /// Offset of a record the chunk ends inside of (only when more input follows).
    tail: Option<usize>,
}

/// Where a record is, for line numbers and raw text of rejects.
#[derive(Debug, Clone, Copy)]
struct RowPos {
    start: u32,
    end: u32,
    line: u32,
}

fn raw_text(data: &[u8], keep: bool, start: usize, end: usize) -> String {
    if keep { String::from_utf8_lossy(&data[start..end]).into_owned() } else { String::new() }
}

thread_local! {
    /// Scratch of [`parse_chunk`] (field spans, record positions), kept per thread: fresh
    /// buffers for every chunk cost page faults on megabytes of new pages each time.
    static SCRATCH: Cell<(FieldBuf, Vec<RowPos>)> = Cell::new(Default::default());
}

/// Parses one chunk into a batch of its good rows plus the rows it refused.
fn parse_chunk(plan: &Plan, data: &[u8], at_eof: bool) -> Result<Parsed, ConnectorError> {
    let (mut fields, mut rows) = SCRATCH.take();
    fields.clear();
    rows.clear();
    let parsed = parse_chunk_into(plan, data, at_eof, &mut fields, &mut rows);
    SCRATCH.set((fields, rows));
    parsed
}

fn parse_chunk_into(
    plan: &Plan,
    data: &[u8],
    at_eof: bool,
    fb: &mut FieldBuf,
    rows: &mut Vec<RowPos>,
) -> Result<Parsed, ConnectorError> {
    if data.len() > MAX_INPUT {
        return Err(internal("CSV chunk larger than 2 GiB"));
    }
    let ncols = plan.columns.len();
    // A rough guess (about 10 bytes a field) saves most reallocations.
    fb.spans.reserve(data.len() / 10 + ncols);
    rows.reserve(data.len() / (ncols * 10 + 1) + 1);
    let mut rejects = Vec::new();
    let mut tail = None;
    let mut cur = Cursor::new(data, plan.dialect, at_eof);
    loop {
        match cur.next_record(fb) {
            Step::Record(r) => {
                if r.fields == ncols {
                    rows.push(RowPos { start: r.start as u32, end: r.end as u32, line: r.line as u32 });
                } else {
                    fb.spans.truncate(fb.spans.len() - r.fields);
                    rejects.push(RowReject {
                        line: r.line,
                        reason: format!("expected {ncols} fields, found {}", r.fields),
                        raw: raw_text(data, plan.keep_raw, r.start, r.end),
                    });
                }
            }
            Step::Unterminated { start, line } => {
                let mut end = data.len();
                while end > start && (data[end - 1] == b'\n' || data[end - 1] == b'\r') {
                    end -= 1;
                }
                rejects.push(RowReject {
                    line,
                    reason: "a quoted field is not closed before the end of the file".into(),
                    raw: raw_text(data, plan.keep_raw, start, end),
                });
            }
            Step::Incomplete { start, .. } => {
                tail = Some(start);
                break;
            }
            Step::End => break,
        }
    }
    let newlines = cur.newlines;

    let fields = Fields { input: data, buf: fb, ncols, rows: rows.len() };
    let mut bad = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(ncols);
    for (c, col) in plan.columns.iter().enumerate() {
        arrays.push(columns::build(col, c, &fields, &plan.nulls, &mut bad));
    }
    if !bad.is_empty() {
        // Columns were built in order, so a stable sort keeps each row's first bad column.
        bad.sort_by_key(|(row, _)| *row);
        bad.dedup_by_key(|(row, _)| *row);
        let mut keep = vec![true; rows.len()];
        for (row, reason) in bad {
            keep[row] = false;
            let p = rows[row];
            rejects.push(RowReject {
                line: u64::from(p.line),
                reason,
                raw: raw_text(data, plan.keep_raw, p.start as usize, p.end as usize),
            });
        }
        let mask = BooleanArray::from(keep);
        arrays = arrays.iter().map(|a| filter(a, &mask)).collect::<Result<_, _>>().map_err(|source| {
            ConnectorError::Arrow { context: "dropping refused CSV rows".into(), source }
        })?;
        rejects.sort_by_key(|r| r.line);
    }
    let n = arrays.first().map_or(rows.len(), |a| a.len());
    let batch = RecordBatch::try_new_with_options(
        plan.schema.clone(),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )
    .map_err(|source| ConnectorError::Arrow { context: "assembling a CSV batch".into(), source })?;
    Ok(Parsed { batch, rejects, newlines, tail })
}

/// A chunk's parse result together with its bytes (needed if the chunk must be re-parsed).
struct Done {
    parsed: Result<Parsed, ConnectorError>,
    data: Vec<u8>,
}

/// What the producer tells the consumer, in file order.
enum Msg {
    /// A new file starts; its first data line follows `header_lines` line breaks.
    File { index: usize, header_lines: u64 },
    /// The next chunk of the current file (`last`: it ends the file).
    Chunk { done: Receiver<Done>, last: bool },
    /// Reading failed; nothing follows.
    Failed(ConnectorError),
    /// All files were read.
    End,
}

/// Why the producer stopped early.
enum Stop {
    /// The consumer is gone.
    Disconnected,
    /// An error to report.
    Error(ConnectorError),
}

impl From<ConnectorError> for Stop {
    fn from(e: ConnectorError) -> Self {
        Stop::Error(e)
    }
}

fn produce(plan: Arc<Plan>, pool: Arc<rayon::ThreadPool>, tx: SyncSender<Msg>, recycled: Receiver<Vec<u8>>) {
    // A panic (a bug) must reach the caller as an error, never look like the end of the data.
    let result = catch_unwind(AssertUnwindSafe(|| {
        (0..plan.files.len()).try_for_each(|index| produce_file(&plan, &pool, &tx, &recycled, index))
    }));
    let last = match result {
        Ok(Ok(())) => Msg::End,
        Ok(Err(Stop::Disconnected)) => return,
        Ok(Err(Stop::Error(e))) => Msg::Failed(e),
        Err(panic) => Msg::Failed(internal(&format!("the CSV reader failed: {}", panic_text(&*panic)))),
    };
    let _ = tx.send(last);
}

fn internal(what: &str) -> ConnectorError {
    ConnectorError::Other(format!("internal error: {what}"))
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

fn produce_file(
    plan: &Arc<Plan>,
    pool: &Arc<rayon::ThreadPool>,
    tx: &SyncSender<Msg>,
    recycled: &Receiver<Vec<u8>>,
    index: usize,
) -> Result<(), Stop> {
    let path = &plan.files[index];
    let mut src = BlockFile::open(path, plan.encoding)?;
    let start = read_start(&mut src, plan.dialect, plan.header, plan.block_size)?;
    if let (Some(first), Some(this)) = (&plan.first_header, &start.header)
        && first != this
    {
        let err = header_mismatch(&plan.files[0], first, path, this, start.header_lines);
        return Err(Stop::Error(err));
    }
    tx.send(Msg::File { index, header_lines: start.header_lines }).map_err(|_| Stop::Disconnected)?;
    let send = |data: Vec<u8>, last: bool| -> Result<(), Stop> {
        let (done_tx, done_rx) = sync_channel(1);
        let plan = plan.clone();
        pool.spawn(move || {
            let parsed = catch_unwind(AssertUnwindSafe(|| parse_chunk(&plan, &data, last)))
                .unwrap_or_else(|p| Err(internal(&format!("the CSV parser failed: {}", panic_text(&*p)))));
            let _ = done_tx.send(Done { parsed, data });
        });
        tx.send(Msg::Chunk { done: done_rx, last }).map_err(|_| Stop::Disconnected)
    };
    let mut buf = start.rest;
    // Fill up to `want` bytes; more only when no record ends within that.
    let mut want = plan.block_size;
    loop {
        if !src.eof && buf.len() < want {
            let missing = want - buf.len();
            src.fill(&mut buf, missing)?;
        }
        if src.eof {
            // Always send a final chunk, even empty: it tells the consumer the file ended.
            return send(buf, true);
        }
        // No boundary in sight usually means one long quoted field: read on rather than cut
        // inside it (which would cost a re-parse). Past a few blocks, cut at any line break
        // anyway, so a scan fooled by a stray quote cannot make chunks grow without bound.
        let cut = last_boundary(&buf, plan.dialect).or_else(|| {
            if buf.len() >= GIVE_UP_GUESSING * plan.block_size {
                memrchr(b'\n', &buf).map(|p| p + 1)
            } else {
                None
            }
        });
        match cut {
            Some(cut) => {
                // Reuse a buffer the consumer is done with: fresh allocations cost page
                // faults on every chunk.
                let mut next = recycled.try_recv().unwrap_or_default();
                next.clear();
                next.reserve(plan.block_size);
                next.extend_from_slice(&buf[cut..]);
                buf.truncate(cut);
                send(std::mem::replace(&mut buf, next), false)?;
                want = plan.block_size;
            }
            None if buf.len() > MAX_RECORD => return Err(Stop::Error(too_long(path, None))),
            None => want = buf.len() + plan.block_size,
        }
    }
}

fn header_mismatch(first: &Path, a: &[String], path: &Path, b: &[String], line: u64) -> ConnectorError {
    let first_name = first.display();
    let reason = match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(
            "header differs from `{first_name}`: column {} is `{}` here but `{}` in `{first_name}`",
            i + 1,
            b[i],
            a[i]
        ),
        None if b.len() > a.len() => format!(
            "header differs from `{first_name}`: extra column {} `{}` is not in `{first_name}`",
            a.len() + 1,
            b[a.len()]
        ),
        None => format!(
            "header differs from `{first_name}`: column {} `{}` of `{first_name}` is missing here",
            b.len() + 1,
            a[b.len()]
        ),
    };
    ConnectorError::Malformed { file: path.to_path_buf(), line: line.max(1), reason }
}

/// The CSV [`BatchReader`].
pub(crate) struct CsvReader {
    plan: Arc<Plan>,
    rx: Receiver<Msg>,
    on_error: OnError,
    file: usize,
    /// Line breaks in the current file before the next chunk.
    base: u64,
    /// Start of a record the previous chunk ended inside of.
    carry: Option<Vec<u8>>,
    /// Chunk buffers go back to the producer for reuse.
    recycle: Sender<Vec<u8>>,
    out: Rebatcher,
    rejects: Vec<Reject>,
    finished: bool,
}

impl CsvReader {
    /// Starts reading the plan's files.
    pub(crate) fn start(plan: Plan, on_error: OnError, batch_size: usize) -> Result<Self, ConnectorError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        // A private pool: parsing must not queue behind (or deadlock with) work the host
        // runs on rayon's global pool while it waits for our batches.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sluice-csv-{i}"))
            .build()
            .map_err(|e| ConnectorError::Other(format!("cannot start CSV parser threads: {e}")))?;
        let plan = Arc::new(plan);
        // Bounded: at most this many chunks are in flight, which bounds memory.
        let (tx, rx) = sync_channel(threads + 1);
        let (recycle, recycled) = channel();
        let producer_plan = plan.clone();
        let pool = Arc::new(pool);
        std::thread::Builder::new()
            .name("sluice-csv-read".into())
            .spawn(move || produce(producer_plan, pool, tx, recycled))
            .map_err(|e| ConnectorError::Other(format!("cannot start the CSV reader thread: {e}")))?;
        let out = Rebatcher::new(plan.schema.clone(), batch_size);
        Ok(CsvReader {
            plan,
            rx,
            on_error,
            file: 0,
            base: 0,
            carry: None,
            recycle,
            out,
            rejects: Vec::new(),
            finished: false,
        })
    }

    /// Takes the next chunk's rows into `out`; false at the end of the input.
    fn next_chunk(&mut self) -> Result<bool, ConnectorError> {
        loop {
            let Ok(msg) = self.rx.recv() else { return Err(internal("the CSV reader thread stopped")) };
            match msg {
                Msg::File { index, header_lines } => {
                    self.file = index;
                    self.base = header_lines;
                }
                Msg::Failed(e) => return Err(e),
                Msg::End => return Ok(false),
                Msg::Chunk { done, last } => {
                    let done = done.recv().map_err(|_| internal("a CSV parser thread stopped"))?;
                    let (parsed, data) = match self.carry.take() {
                        // The previous chunk was cut inside a record: this chunk's parse started
                        // mid-record and is void; parse the record's start and this chunk here.
                        Some(mut joined) => {
                            joined.extend_from_slice(&done.data);
                            let parsed = parse_chunk(&self.plan, &joined, last)?;
                            (parsed, joined)
                        }
                        None => (done.parsed?, done.data),
                    };
                    self.absorb(parsed, &data)?;
                    // The producer may have finished already; then the buffer is just dropped.
                    let _ = self.recycle.send(data);
                    return Ok(true);
                }
            }
        }
    }

    fn absorb(&mut self, parsed: Parsed, data: &[u8]) -> Result<(), ConnectorError> {
        let path = &self.plan.files[self.file];
        for r in parsed.rejects {
            let line = self.base + r.line + 1;
            match self.on_error {
                OnError::Fail => {
                    return Err(ConnectorError::Malformed { file: path.clone(), line, reason: r.reason });
                }
                OnError::Skip | OnError::Quarantine => self.rejects.push(Reject {
                    source: path.display().to_string(),
                    line,
                    reason: r.reason,
                    raw: r.raw,
                }),
            }
        }
        self.base += parsed.newlines;
        if let Some(t) = parsed.tail {
            if data.len() - t > MAX_RECORD {
                return Err(too_long(path, Some(self.base + 1)));
            }
            self.carry = Some(data[t..].to_vec());
        }
        self.out.push(parsed.batch);
        Ok(())
    }

    fn pull(&mut self) -> Result<Option<RecordBatch>, ConnectorError> {
        let arrow_err = |source| ConnectorError::Arrow { context: "regrouping CSV rows".into(), source };
        loop {
            if let Some(b) = self.out.pop_full().map_err(arrow_err)? {
                return Ok(Some(b));
            }
            if self.finished || !self.next_chunk()? {
                self.finished = true;
                return self.out.pop_rest().map_err(arrow_err);
            }
        }
    }
}

impl BatchReader for CsvReader {
    fn schema(&self) -> SchemaRef {
        self.plan.schema.clone()
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch, ConnectorError>> {
        match self.pull() {
            Ok(b) => b.map(Ok),
            Err(e) => {
                // After an error the reader is done; dropping the channel stops the producer.
                self.finished = true;
                self.out = Rebatcher::new(self.plan.schema.clone(), 1);
                let (_, rx) = sync_channel(0);
                self.rx = rx;
                Some(Err(e))
            }
        }
    }

    fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }
}
