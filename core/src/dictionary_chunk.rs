//! Dictionary-encoded Parquet column chunks for flat string, binary and fixed-width
//! columns, written without the Arrow writer's per-value interner.
//!
//! Why: in profiles of the retail RFM run, parquet's Arrow writer spent a quarter of all CPU
//! interning values (hashing, probing and comparing every value of every column) and a
//! tenth run-length encoding levels and codes one value at a time. This encoder does the
//! same job with less work per value: a value equal to the one before it (invoice numbers,
//! dates, customers and countries repeat line after line) reuses its code without a
//! lookup, other values are hashed once (XXH3 for bytes, a folded multiply for numbers),
//! and definition levels are the validity bitmap itself (width-1 bit packing) or one run
//! for a page without NULLs. Columns are interned and written a page at a time.
//!
//! The chunk has the layout the Arrow writer gives these columns — one PLAIN dictionary
//! page, then format-v1 RLE_DICTIONARY data pages of at most 20,000 rows, zstd-compressed,
//! with an offset index — so every Parquet reader reads it. Numbers get the chunk min/max
//! and NULL count the Arrow writer would write (taken from the dictionary, not value by
//! value), strings none (as configured for artifacts); no page-level column index is
//! written, which only readers pruning pages would use. A column whose dictionary outgrows
//! 1 MiB is left to the Arrow writer, which encodes it as before.

use std::cell::Cell;

use arrow::array::{Array, ArrayRef, AsArray, BooleanBufferBuilder, GenericByteArray};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow::datatypes::{
    ArrowNativeType, ArrowPrimitiveType, ByteArrayType, DataType, Date32Type, Float32Type, Float64Type,
    GenericBinaryType, GenericStringType, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType,
};
use bytes::Bytes;
use hashbrown::HashTable;
use parquet::basic::{Compression, Encoding, Type as PhysicalType, ZstdLevel};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::short_bytes;

/// Rows per data page: the Arrow writer's default limit, so readers see the same pages.
const PAGE_ROWS: usize = 20_000;

/// Largest dictionary page (the Arrow writer's default limit). A column with more distinct
/// bytes than this is not worth a dictionary, and the Arrow writer stores it PLAIN.
const DICTIONARY_LIMIT: usize = 1024 * 1024;

/// Most 8-value groups in one bit-packed run: the header then fits one byte, which is the
/// most some readers accept.
const MAX_GROUPS_PER_RUN: usize = 63;

/// zstd level of the artifact writer's properties (parquet takes 1 to 22), and the level
/// the column metadata names; the file itself records only the codec.
pub(crate) const ZSTD_LEVEL: i32 = 1;

/// zstd level of the data pages written here: zstd's fastest. They hold bit-packed,
/// run-length encoded dictionary codes, which zstd barely shrinks: level -1 for every page
/// made the retail RFM run's artifacts 5–7 % smaller than these two levels, for 3 % more of
/// its CPU (docs/decisions.md).
const PAGE_ZSTD_LEVEL: i32 = -20;

/// zstd level of a chunk's dictionary page: the values themselves (text, timestamps),
/// which compress well, written once per chunk.
const DICTIONARY_ZSTD_LEVEL: i32 = 1;

/// A column chunk encoded here, ready to append to a row group.
pub(crate) struct EncodedChunk {
    /// The chunk's bytes (dictionary page first), offsets in `close` relative to them.
    pub data: Bytes,
    /// Its metadata, as a column writer would return it.
    pub close: ColumnCloseResult,
}

/// Whether columns of this Arrow type can be encoded here: strings and binaries, and the
/// fixed-width types the Arrow writer stores unchanged (64- and 32-bit integers and floats,
/// dates, and timestamps in ms, µs or ns).
pub(crate) fn supports(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::Int64
            | DataType::Int32
            | DataType::Float64
            | DataType::Float32
            | DataType::Date32
            | DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Microsecond | TimeUnit::Nanosecond, _)
    )
}

/// A finished dictionary: its PLAIN page, its size, and the column's chunk statistics
/// (`None` for byte arrays, which artifacts store without statistics).
struct Finished {
    page: Vec<u8>,
    len: usize,
    statistics: Option<Statistics>,
}

/// A column's dictionary while its values are interned.
trait Interner {
    /// Interns the valid values of `array`, pushing their codes; `false` once the dictionary
    /// exceeds [`DICTIONARY_LIMIT`] or when the array is not of the expected type.
    fn intern_array(&mut self, array: &dyn Array, codes: &mut Vec<u32>) -> bool;
    /// Distinct values so far.
    fn len(&self) -> usize;
    /// The dictionary page and statistics, given the column's NULL count.
    fn finish(self, nulls: u64, descr: &ColumnDescPtr) -> Finished;
}

/// Encodes one row group's worth of a column (`arrays`, one per batch) as a
/// dictionary-encoded chunk. `None` when this encoder does not take the column: its
/// dictionary would outgrow [`DICTIONARY_LIMIT`], the column is nested, its Parquet type is
/// not the one expected, or it has NULLs its schema does not allow (the Arrow writer then
/// reports that).
pub(crate) fn encode(
    descr: &ColumnDescPtr,
    arrays: &[&ArrayRef],
) -> Result<Option<EncodedChunk>, ParquetError> {
    let nullable = descr.max_def_level() == 1;
    if descr.max_rep_level() != 0 || descr.max_def_level() > 1 || arrays.iter().all(|a| a.is_empty()) {
        return Ok(None);
    }
    if !nullable && arrays.iter().any(|a| a.null_count() > 0) {
        return Ok(None);
    }
    let Some(ty) = arrays.first().map(|a| a.data_type().clone()) else {
        return Ok(None);
    };
    match (&ty, descr.physical_type()) {
        (DataType::Int64, PhysicalType::INT64) => chunk(descr, arrays, Fixed::<Int64Type>::default()),
        (DataType::Timestamp(TimeUnit::Millisecond, _), PhysicalType::INT64) => {
            chunk(descr, arrays, Fixed::<TimestampMillisecondType>::default())
        }
        (DataType::Timestamp(TimeUnit::Microsecond, _), PhysicalType::INT64) => {
            chunk(descr, arrays, Fixed::<TimestampMicrosecondType>::default())
        }
        (DataType::Timestamp(TimeUnit::Nanosecond, _), PhysicalType::INT64) => {
            chunk(descr, arrays, Fixed::<TimestampNanosecondType>::default())
        }
        (DataType::Int32, PhysicalType::INT32) => chunk(descr, arrays, Fixed::<Int32Type>::default()),
        (DataType::Date32, PhysicalType::INT32) => chunk(descr, arrays, Fixed::<Date32Type>::default()),
        (DataType::Float64, PhysicalType::DOUBLE) => chunk(descr, arrays, Fixed::<Float64Type>::default()),
        (DataType::Float32, PhysicalType::FLOAT) => chunk(descr, arrays, Fixed::<Float32Type>::default()),
        (_, PhysicalType::BYTE_ARRAY) if supports(&ty) => chunk(descr, arrays, Dictionary::default()),
        _ => Ok(None),
    }
}

/// Interns and writes the column a page at a time, so codes and validity of one page (not
/// of the whole row group) are held at once; each page's bit width is that of the
/// dictionary so far. The dictionary page goes first in the chunk.
fn chunk<D: Interner>(
    descr: &ColumnDescPtr,
    arrays: &[&ArrayRef],
    mut dict: D,
) -> Result<Option<EncodedChunk>, ParquetError> {
    let nullable = descr.max_def_level() == 1;
    let has_nulls = arrays.iter().any(|a| a.null_count() > 0);
    let mut pages = PageSink::new()?;
    let mut codes: Vec<u32> = Vec::with_capacity(PAGE_ROWS);
    let mut validity = BooleanBufferBuilder::new(if has_nulls { PAGE_ROWS } else { 0 });
    let arrays: Vec<&ArrayRef> = arrays.iter().copied().filter(|a| !a.is_empty()).collect();
    let mut in_page = 0;
    let mut rows = 0;
    let mut present = 0;
    for (i, array) in arrays.iter().enumerate() {
        let mut at = 0;
        while at < array.len() {
            let take = (PAGE_ROWS - in_page).min(array.len() - at);
            let part = if take == array.len() { (*array).clone() } else { array.slice(at, take) };
            if !dict.intern_array(part.as_ref(), &mut codes) {
                return Ok(None);
            }
            if has_nulls {
                match part.logical_nulls() {
                    Some(n) => validity.append_buffer(n.inner()),
                    None => validity.append_n(take, true),
                }
            }
            in_page += take;
            at += take;
            let last = i + 1 == arrays.len() && at == array.len();
            if in_page == PAGE_ROWS || last {
                let levels = has_nulls.then(|| validity.finish());
                let width = bit_width(dict.len());
                pages.data_page(&codes, nullable.then_some(levels.as_ref()), in_page, width, rows)?;
                (rows, present, in_page) = (rows + in_page, present + codes.len(), 0);
                codes.clear();
            }
        }
    }
    let finished = dict.finish((rows - present) as u64, descr);
    pages.finish(descr, finished, rows).map(Some)
}

impl Interner for Dictionary {
    fn intern_array(&mut self, array: &dyn Array, codes: &mut Vec<u32>) -> bool {
        match array.data_type() {
            DataType::Utf8 => self.intern_bytes(array.as_bytes::<GenericStringType<i32>>(), codes),
            DataType::LargeUtf8 => self.intern_bytes(array.as_bytes::<GenericStringType<i64>>(), codes),
            DataType::Binary => self.intern_bytes(array.as_bytes::<GenericBinaryType<i32>>(), codes),
            DataType::LargeBinary => self.intern_bytes(array.as_bytes::<GenericBinaryType<i64>>(), codes),
            DataType::Utf8View => {
                let a = array.as_string_view();
                self.intern_all((0..a.len()).filter(|&i| a.is_valid(i)).map(|i| a.value(i).as_bytes()), codes)
            }
            DataType::BinaryView => {
                let a = array.as_binary_view();
                self.intern_all((0..a.len()).filter(|&i| a.is_valid(i)).map(|i| a.value(i)), codes)
            }
            _ => false,
        }
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }

    fn finish(self, _nulls: u64, _descr: &ColumnDescPtr) -> Finished {
        Finished { len: self.hashes.len(), page: self.page, statistics: None }
    }
}

/// The dictionary of a fixed-width column of Arrow type `A`.
struct Fixed<A: ArrowPrimitiveType> {
    dict: FixedDictionary<A::Native>,
}

impl<A: ArrowPrimitiveType> Default for Fixed<A> {
    fn default() -> Self {
        Fixed { dict: FixedDictionary::default() }
    }
}

impl<A> Interner for Fixed<A>
where
    A: ArrowPrimitiveType,
    A::Native: Plain,
{
    fn intern_array(&mut self, array: &dyn Array, codes: &mut Vec<u32>) -> bool {
        let Some(a) = array.as_primitive_opt::<A>() else {
            return false;
        };
        self.dict.intern_all(a.values(), a.logical_nulls().as_ref(), codes)
    }

    fn len(&self) -> usize {
        self.dict.values.len()
    }

    /// Min/max come from the dictionary: its distinct values are all the column's values.
    fn finish(self, nulls: u64, descr: &ColumnDescPtr) -> Finished {
        let statistics = A::Native::statistics(&self.dict.values, nulls, descr.sort_order().is_signed());
        Finished { len: self.dict.values.len(), page: self.dict.page, statistics: Some(statistics) }
    }
}

/// A fixed-width value as Parquet stores it.
trait Plain: Copy + Default + 'static {
    /// The value's bits, for hashing and equality (NaNs and -0.0 stay distinct values).
    fn bits(self) -> u64;
    /// Appends the little-endian bytes.
    fn put(self, page: &mut Vec<u8>);
    /// Chunk statistics as the Arrow writer writes them: min/max over the distinct
    /// `values` (NaN skipped; a zero min is written -0.0 and a zero max +0.0), the NULL
    /// count, and the legacy min/max fields too when the sort order is `signed`.
    fn statistics(values: &[Self], nulls: u64, signed: bool) -> Statistics;
}

macro_rules! plain_int {
    ($t:ty, $variant:ident) => {
        impl Plain for $t {
            #[inline]
            fn bits(self) -> u64 {
                self as u64
            }
            fn put(self, page: &mut Vec<u8>) {
                page.extend_from_slice(&self.to_le_bytes());
            }
            fn statistics(values: &[Self], nulls: u64, signed: bool) -> Statistics {
                let min = values.iter().copied().min();
                let max = values.iter().copied().max();
                Statistics::$variant(
                    ValueStatistics::new(min, max, None, Some(nulls), false)
                        .with_backwards_compatible_min_max(signed),
                )
            }
        }
    };
}
plain_int!(i32, Int32);
plain_int!(i64, Int64);

macro_rules! plain_float {
    ($t:ty, $variant:ident) => {
        impl Plain for $t {
            #[inline]
            fn bits(self) -> u64 {
                u64::from(self.to_bits())
            }
            fn put(self, page: &mut Vec<u8>) {
                page.extend_from_slice(&self.to_le_bytes());
            }
            fn statistics(values: &[Self], nulls: u64, signed: bool) -> Statistics {
                let mut numbers = values.iter().copied().filter(|v| !v.is_nan());
                let (min, max) = match numbers.next() {
                    None => (None, None),
                    Some(first) => {
                        let (mut min, mut max) = (first, first);
                        for v in numbers {
                            if v < min {
                                min = v;
                            }
                            if v > max {
                                max = v;
                            }
                        }
                        let min = if min == 0.0 { -0.0 } else { min };
                        let max = if max == 0.0 { 0.0 } else { max };
                        (Some(min), Some(max))
                    }
                };
                Statistics::$variant(
                    ValueStatistics::new(min, max, None, Some(nulls), false)
                        .with_backwards_compatible_min_max(signed),
                )
            }
        }
    };
}
plain_float!(f32, Float);
plain_float!(f64, Double);

/// Distinct fixed-width values in first-seen order, as a PLAIN dictionary page.
struct FixedDictionary<T> {
    /// Each value's bits and code: compared in the table, without a second cache miss.
    table: HashTable<(u64, u32)>,
    values: Vec<T>,
    page: Vec<u8>,
}

impl<T> Default for FixedDictionary<T> {
    fn default() -> Self {
        FixedDictionary { table: HashTable::new(), values: Vec::new(), page: Vec::new() }
    }
}

/// A 64-bit mix of a value's bits: a folded multiply spreads them to both the table
/// index (low bits) and hashbrown's tag (high bits).
#[inline]
fn mix(bits: u64) -> u64 {
    let m = u128::from(bits) * 0x9E37_79B9_7F4A_7C15u128;
    (m as u64) ^ ((m >> 64) as u64)
}

impl<T: Plain> FixedDictionary<T> {
    #[inline]
    fn intern(&mut self, v: T) -> u32 {
        let bits = v.bits();
        let hash = mix(bits);
        let FixedDictionary { table, values, page } = self;
        if let Some(&(_, code)) = table.find(hash, |&(b, _)| b == bits) {
            return code;
        }
        let code = values.len() as u32;
        values.push(v);
        v.put(page);
        table.insert_unique(hash, (bits, code), |&(b, _)| mix(b));
        code
    }

    /// Interns the valid values of one array; `false` once the dictionary exceeds
    /// [`DICTIONARY_LIMIT`].
    fn intern_all(&mut self, values: &[T], nulls: Option<&NullBuffer>, codes: &mut Vec<u32>) -> bool {
        match nulls {
            Some(n) if n.null_count() > 0 => self.intern_iter(n.valid_indices().map(|i| values[i]), codes),
            _ => self.intern_iter(values.iter().copied(), codes),
        }
    }

    fn intern_iter(&mut self, values: impl Iterator<Item = T>, codes: &mut Vec<u32>) -> bool {
        intern_runs(values.map(|v| (v.bits(), v)), codes, |v| {
            let code = self.intern(v);
            (self.page.len() <= DICTIONARY_LIMIT).then_some(code)
        })
    }
}

/// The distinct values seen so far, in first-seen order, as a PLAIN dictionary page.
#[derive(Default)]
struct Dictionary {
    /// Each value's code and place in `page`, keyed by the value's hash. The place lives in
    /// the table, not beside the code, so a lookup touches one cache line fewer: a column
    /// chunk's dictionary outgrows the cache, and its values come in no useful order.
    table: HashTable<Entry>,
    /// PLAIN encoding of the values: 4-byte little-endian length, then the bytes.
    page: Vec<u8>,
    /// Each value's hash, by code (to grow the table without re-hashing).
    hashes: Vec<u64>,
}

/// A dictionary value: its code, and where its bytes are in the page.
#[derive(Clone, Copy)]
struct Entry {
    code: u32,
    start: u32,
    len: u32,
}

impl Dictionary {
    #[cfg(test)]
    fn value(&self, code: u32) -> &[u8] {
        let e =
            self.table.iter().find(|e| e.code == code).copied().unwrap_or(Entry { code, start: 0, len: 0 });
        &self.page[e.start as usize..(e.start + e.len) as usize]
    }

    /// The code of `value`, adding it if new.
    #[inline]
    fn intern(&mut self, value: &[u8]) -> u32 {
        let hash = xxhash_rust::xxh3::xxh3_64(value);
        let Dictionary { table, page, hashes } = self;
        let found = table
            .find(hash, |e| short_bytes::equal(&page[e.start as usize..(e.start + e.len) as usize], value));
        if let Some(e) = found {
            return e.code;
        }
        let code = hashes.len() as u32;
        page.extend_from_slice(&(value.len() as u32).to_le_bytes());
        let entry = Entry { code, start: page.len() as u32, len: value.len() as u32 };
        page.extend_from_slice(value);
        hashes.push(hash);
        table.insert_unique(hash, entry, |e| hashes[e.code as usize]);
        code
    }

    /// Interns every non-null value of an offsets-and-bytes array.
    fn intern_bytes<T: ByteArrayType>(&mut self, array: &GenericByteArray<T>, codes: &mut Vec<u32>) -> bool {
        let data: &Buffer = array.values();
        let offsets = array.value_offsets();
        let value = |i: usize| &data[offsets[i].as_usize()..offsets[i + 1].as_usize()];
        match array.logical_nulls() {
            Some(nulls) if nulls.null_count() > 0 => self.intern_all(nulls.valid_indices().map(value), codes),
            _ => self.intern_all((0..array.len()).map(value), codes),
        }
    }

    /// Interns `values` in order, pushing their codes; `false` once the dictionary exceeds
    /// [`DICTIONARY_LIMIT`].
    fn intern_all<'a>(&mut self, values: impl Iterator<Item = &'a [u8]>, codes: &mut Vec<u32>) -> bool {
        intern_runs(values.map(|v| (short_bytes::Inline(v), v)), codes, |v| {
            let code = self.intern(v);
            (self.page.len() <= DICTIONARY_LIMIT).then_some(code)
        })
    }
}

/// Pushes the code of every value (given with the key it is compared by); `intern` is
/// asked only for a value that differs from the one before it, since runs of equal values
/// are common. `false` as soon as `intern` gives up (the dictionary is full).
#[inline]
fn intern_runs<K: PartialEq + Copy, V>(
    values: impl Iterator<Item = (K, V)>,
    codes: &mut Vec<u32>,
    mut intern: impl FnMut(V) -> Option<u32>,
) -> bool {
    let mut previous: Option<(K, u32)> = None;
    for (key, v) in values {
        let code = match previous {
            Some((k, c)) if k == key => c,
            _ => match intern(v) {
                Some(c) => c,
                None => return false,
            },
        };
        previous = Some((key, code));
        codes.push(code);
    }
    true
}

/// Bits needed for the largest code of a dictionary with `len` values.
fn bit_width(len: usize) -> u8 {
    let max = len.saturating_sub(1) as u64;
    (64 - max.leading_zeros()) as u8
}

/// What an encode thread keeps from one column chunk to the next: a fresh zstd context and
/// fresh page buffers for every chunk made the kernel zero their pages over and over.
struct Scratch {
    compressor: zstd::bulk::Compressor<'static>,
    dictionary_compressor: zstd::bulk::Compressor<'static>,
    raw: Vec<u8>,
    sink: Vec<u8>,
}

/// A chunk buffer larger than this is not kept for the next chunk (threads live on).
const KEEP_SINK_BYTES: usize = 8 << 20;

thread_local! {
    static SCRATCH: Cell<Option<Scratch>> = const { Cell::new(None) };
}

/// The data pages of a chunk as they are written, and what the metadata needs of them.
struct PageSink {
    compressor: zstd::bulk::Compressor<'static>,
    dictionary_compressor: zstd::bulk::Compressor<'static>,
    sink: TrackedWrite<Vec<u8>>,
    /// One page before compression (reused).
    raw: Vec<u8>,
    locations: Vec<PageLocation>,
    compressed: i64,
    uncompressed: i64,
}

fn external(e: std::io::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl PageSink {
    fn new() -> Result<Self, ParquetError> {
        let scratch = match SCRATCH.take() {
            Some(s) => s,
            None => Scratch {
                compressor: zstd::bulk::Compressor::new(PAGE_ZSTD_LEVEL).map_err(external)?,
                dictionary_compressor: zstd::bulk::Compressor::new(DICTIONARY_ZSTD_LEVEL)
                    .map_err(external)?,
                raw: Vec::new(),
                sink: Vec::new(),
            },
        };
        Ok(PageSink {
            compressor: scratch.compressor,
            dictionary_compressor: scratch.dictionary_compressor,
            sink: TrackedWrite::new(scratch.sink),
            raw: scratch.raw,
            locations: Vec::new(),
            compressed: 0,
            uncompressed: 0,
        })
    }

    /// Writes one format-v1 data page of `n` rows: definition levels when the column is
    /// nullable (`levels` = `Some(validity)`, or `Some(None)` for a page without NULLs),
    /// then the codes of its non-null values in `width` bits.
    fn data_page(
        &mut self,
        codes: &[u32],
        levels: Option<Option<&BooleanBuffer>>,
        n: usize,
        width: u8,
        first_row: usize,
    ) -> Result<(), ParquetError> {
        let raw = &mut self.raw;
        raw.clear();
        if let Some(validity) = levels {
            // RLE-hybrid levels behind a 4-byte length.
            raw.extend_from_slice(&[0; 4]);
            match validity {
                None => rle_run(raw, 1, n, 1),
                Some(valid) => {
                    debug_assert_eq!(valid.offset(), 0, "a page's validity starts at its first byte");
                    levels_from_bitmap(raw, valid.values(), n)
                }
            }
            let len = (raw.len() - 4) as u32;
            raw[..4].copy_from_slice(&len.to_le_bytes());
        }
        raw.push(width);
        hybrid(raw, codes, width);
        let page = Page::DataPage {
            buf: Bytes::from(self.compressor.compress(raw).map_err(external)?),
            num_values: n as u32,
            encoding: Encoding::RLE_DICTIONARY,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let spec =
            SerializedPageWriter::new(&mut self.sink).write_page(CompressedPage::new(page, raw.len()))?;
        self.compressed += spec.compressed_size as i64;
        self.uncompressed += spec.uncompressed_size as i64;
        self.locations.push(PageLocation {
            offset: spec.offset as i64,
            compressed_page_size: spec.compressed_size as i32,
            first_row_index: first_row as i64,
        });
        Ok(())
    }

    /// Puts the dictionary page in front of the data pages and describes the chunk.
    fn finish(
        mut self,
        descr: &ColumnDescPtr,
        dict: Finished,
        rows: usize,
    ) -> Result<EncodedChunk, ParquetError> {
        let mut head = TrackedWrite::new(Vec::new());
        let page = Page::DictionaryPage {
            buf: Bytes::from(self.dictionary_compressor.compress(&dict.page).map_err(external)?),
            num_values: dict.len as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        let spec =
            SerializedPageWriter::new(&mut head).write_page(CompressedPage::new(page, dict.page.len()))?;
        let compressed = self.compressed + spec.compressed_size as i64;
        let uncompressed = self.uncompressed + spec.uncompressed_size as i64;
        let head = head.into_inner()?;
        let shift = head.len() as i64;
        // `into_inner` flushes the writer's buffer; `inner` would miss its tail.
        let mut body = self.sink.into_inner()?;
        let mut data = Vec::with_capacity(head.len() + body.len());
        data.extend_from_slice(&head);
        data.extend_from_slice(&body);
        body.clear();
        if body.capacity() > KEEP_SINK_BYTES {
            body = Vec::new();
        }
        SCRATCH.set(Some(Scratch {
            compressor: self.compressor,
            dictionary_compressor: self.dictionary_compressor,
            raw: std::mem::take(&mut self.raw),
            sink: body,
        }));
        for location in &mut self.locations {
            location.offset += shift;
        }
        let mut metadata = ColumnChunkMetaData::builder(descr.clone())
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
            .set_encodings(vec![Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY])
            .set_num_values(rows as i64)
            .set_total_compressed_size(compressed)
            .set_total_uncompressed_size(uncompressed)
            .set_dictionary_page_offset(Some(0))
            .set_data_page_offset(shift);
        if let Some(stats) = dict.statistics {
            metadata = metadata.set_statistics(stats);
        }
        Ok(EncodedChunk {
            data: Bytes::from(data),
            close: ColumnCloseResult {
                bytes_written: compressed as u64,
                rows_written: rows as u64,
                metadata: metadata.build()?,
                bloom_filter: None,
                column_index: None,
                offset_index: Some(OffsetIndexMetaData {
                    page_locations: self.locations,
                    unencoded_byte_array_data_bytes: None,
                }),
            },
        })
    }
}

/// Appends an unsigned LEB128 integer.
fn uleb128(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends an RLE run: `count` times `value`, in `width` bits.
fn rle_run(out: &mut Vec<u8>, value: u32, count: usize, width: u8) {
    uleb128(out, (count as u64) << 1);
    let bytes = usize::from(width).div_ceil(8);
    out.extend_from_slice(&value.to_le_bytes()[..bytes]);
}

/// Appends `values` as bit-packed runs (whole groups of 8; the last group is padded with
/// zeros, which readers ignore past the page's value count).
fn bit_packed(out: &mut Vec<u8>, values: &[u32], width: u8) {
    let width = u32::from(width);
    out.reserve(values.len() * width as usize / 8 + 16);
    for run in values.chunks(MAX_GROUPS_PER_RUN * 8) {
        let groups = run.len().div_ceil(8);
        uleb128(out, ((groups as u64) << 1) | 1);
        // Whole groups of 8 values are whole bytes: emit 32 bits at a time, then the rest.
        let mut acc: u64 = 0;
        let mut bits: u32 = 0;
        let padding = groups * 8 - run.len();
        for &v in run.iter().chain(std::iter::repeat_n(&0, padding)) {
            acc |= u64::from(v) << bits;
            bits += width;
            if bits >= 32 {
                out.extend_from_slice(&(acc as u32).to_le_bytes());
                acc >>= 32;
                bits -= 32;
            }
        }
        out.extend_from_slice(&acc.to_le_bytes()[..(bits / 8) as usize]);
    }
}

/// Appends definition levels 0/1 for `n` rows straight from their validity bits (`bytes`,
/// least significant bit first, as both Arrow and Parquet order them): width-1 bit packing
/// is that bitmap, byte for byte. Runs of all-valid or all-null bytes become RLE runs.
fn levels_from_bitmap(out: &mut Vec<u8>, bytes: &[u8], n: usize) {
    let full = n / 8;
    let mut literal_start = 0;
    let mut i = 0;
    while i < full {
        let b = bytes[i];
        let mut end = i + 1;
        if b == 0 || b == 0xff {
            while end < full && bytes[end] == b {
                end += 1;
            }
        }
        if end - i >= 2 {
            literals(out, &bytes[literal_start..i]);
            rle_run(out, u32::from(b & 1), (end - i) * 8, 1);
            literal_start = end;
        }
        i = end;
    }
    // The last, partly used byte is always bit-packed: its unused bits are ignored.
    literals(out, &bytes[literal_start..n.div_ceil(8)]);
}

/// Appends already bit-packed width-1 groups (one byte per group of 8).
fn literals(out: &mut Vec<u8>, bytes: &[u8]) {
    for run in bytes.chunks(MAX_GROUPS_PER_RUN) {
        uleb128(out, ((run.len() as u64) << 1) | 1);
        out.extend_from_slice(run);
    }
}

/// Appends `values` in Parquet's RLE / bit-packing hybrid encoding with `width` bits per
/// value: runs of at least 8 equal values (after filling the pending group) as RLE runs,
/// everything else bit-packed.
fn hybrid(out: &mut Vec<u8>, values: &[u32], width: u8) {
    const MIN_RUN: usize = 8;
    let mut literal_start = 0;
    let mut i = 0;
    while i < values.len() {
        let v = values[i];
        let mut end = i + 1;
        while end < values.len() && values[end] == v {
            end += 1;
        }
        // Pending literals must fill whole groups of 8: the run lends them its first values.
        let pad = (8 - (i - literal_start) % 8) % 8;
        if end - i >= pad + MIN_RUN {
            if i + pad > literal_start {
                bit_packed(out, &values[literal_start..i + pad], width);
            }
            rle_run(out, v, end - i - pad, width);
            literal_start = end;
        }
        i = end;
    }
    if literal_start < values.len() {
        bit_packed(out, &values[literal_start..], width);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes the hybrid encoding back into `n` values (a reference reader for the tests).
    fn decode(mut data: &[u8], width: u8, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let bytes = usize::from(width).div_ceil(8);
        while out.len() < n {
            let mut header = 0u64;
            let mut shift = 0;
            loop {
                let b = data[0];
                data = &data[1..];
                header |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b < 0x80 {
                    break;
                }
            }
            if header & 1 == 0 {
                let mut v = [0u8; 4];
                v[..bytes].copy_from_slice(&data[..bytes]);
                data = &data[bytes..];
                out.extend(std::iter::repeat_n(u32::from_le_bytes(v), (header >> 1) as usize));
            } else {
                let count = (header >> 1) as usize * 8;
                let len = count * usize::from(width) / 8;
                let (packed, rest) = data.split_at(len);
                data = rest;
                for k in 0..count {
                    let mut v = 0u32;
                    for b in 0..usize::from(width) {
                        let bit = k * usize::from(width) + b;
                        v |= u32::from((packed[bit / 8] >> (bit % 8)) & 1) << b;
                    }
                    out.push(v);
                }
            }
        }
        out.truncate(n);
        out
    }

    #[test]
    fn hybrid_round_trips_runs_literals_and_their_boundaries() {
        let mut values: Vec<u32> = (0..13).collect();
        values.extend(std::iter::repeat_n(5, 40));
        values.extend([1, 2, 3]);
        values.extend(std::iter::repeat_n(7, 16));
        values.extend((0..1000).map(|i| (i * 7919) % 300));
        for width in [9u8, 12, 17] {
            let mut out = Vec::new();
            hybrid(&mut out, &values, width);
            assert_eq!(decode(&out, width, values.len()), values, "width {width}");
        }
    }

    #[test]
    fn width_zero_and_one_encode_constant_and_level_columns() {
        let zeros = vec![0u32; 37];
        let mut out = Vec::new();
        hybrid(&mut out, &zeros, 0);
        assert_eq!(decode(&out, 0, 37), zeros);
        let levels: Vec<u32> = (0..101).map(|i| u32::from(i % 3 != 0)).collect();
        let mut out = Vec::new();
        hybrid(&mut out, &levels, 1);
        assert_eq!(decode(&out, 1, levels.len()), levels);
    }

    #[test]
    fn levels_from_a_bitmap_decode_to_the_validity() {
        for (n, offset) in [(101usize, 0usize), (20_000, 3), (64, 0), (7, 5), (1000, 13)] {
            let valid: Vec<bool> =
                (0..n + offset).map(|i| !(i % 10 == 0 || (300..500).contains(&i))).collect();
            let buffer = BooleanBuffer::from(valid.clone()).slice(offset, n);
            let aligned = buffer.sliced();
            let mut out = Vec::new();
            levels_from_bitmap(&mut out, aligned.as_slice(), n);
            let expected: Vec<u32> = valid[offset..].iter().map(|&v| u32::from(v)).collect();
            assert_eq!(decode(&out, 1, n), expected, "n {n} offset {offset}");
        }
        let mut out = Vec::new();
        levels_from_bitmap(&mut out, &[0xff; 2500], 20_000);
        assert!(out.len() <= 8, "an all-valid page is one run, not {} bytes", out.len());
    }

    #[test]
    fn runs_of_equal_values_are_far_smaller_than_bit_packing() {
        let mut out = Vec::new();
        hybrid(&mut out, &vec![3u32; 20_000], 12);
        assert!(out.len() <= 8, "{} bytes", out.len());
    }

    proptest::proptest! {
        /// Any codes, in runs or not, decode back from the hybrid encoding at their width.
        #[test]
        fn hybrid_encoding_round_trips(
            runs in proptest::collection::vec((0u32..5000, 1usize..40), 0..200),
            width_extra in 0u8..4,
        ) {
            let values: Vec<u32> = runs.iter().flat_map(|&(v, n)| std::iter::repeat_n(v, n)).collect();
            let width = bit_width(5000) + width_extra;
            let mut out = Vec::new();
            hybrid(&mut out, &values, width);
            proptest::prop_assert_eq!(decode(&out, width, values.len()), values);
        }
    }

    #[test]
    fn bit_width_covers_the_largest_code() {
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 0);
        assert_eq!(bit_width(2), 1);
        assert_eq!(bit_width(256), 8);
        assert_eq!(bit_width(257), 9);
    }

    #[test]
    fn interning_reuses_codes_and_stops_at_the_limit() {
        let mut dict = Dictionary::default();
        let mut codes = Vec::new();
        let values: Vec<&[u8]> = vec![b"a", b"a", b"", b"b", "é".as_bytes(), b"a", b""];
        assert!(dict.intern_all(values.iter().copied(), &mut codes));
        assert_eq!(codes, [0, 0, 1, 2, 3, 0, 1]);
        assert_eq!(dict.value(3), "é".as_bytes());
        let big: Vec<Vec<u8>> = (0..40_000u32).map(|i| format!("{i:040}").into_bytes()).collect();
        let mut codes = Vec::new();
        assert!(!Dictionary::default().intern_all(big.iter().map(Vec::as_slice), &mut codes));
    }
}
