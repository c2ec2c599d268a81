//! `dedup`: removes duplicate rows — exact duplicates over every column, or rows sharing
//! `keys`, keeping the first or last (in row order, or by `order_by`).
//!
//! Rows are hashed batch-parallel straight from their columns and spread over shards by
//! hash; each shard decides its winners on its own thread, walking its rows in input order,
//! so the result does not depend on the number of threads. Rows whose hashes (a 32-bit tag
//! of them, in the shard's table) match are taken for duplicates, and every such pair is
//! then compared column by column, batch by batch, with Arrow's typed comparators (NULL
//! equals NULL, floats by total order). Nothing is copied: an earlier session row-encoded
//! every row first, and writing those bytes touched more memory than the whole clean
//! stage's output. Column types Arrow cannot compare directly still go through the row
//! format.

use std::collections::HashMap;

use arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, BooleanArray, DynComparator,
    GenericByteArray, PrimitiveArray, downcast_primitive, make_comparator,
};
use arrow::compute::SortOptions;
use arrow::datatypes::{
    ArrowNativeType, BinaryType, ByteArrayType, DataType, LargeBinaryType, LargeUtf8Type, Utf8Type,
};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use rayon::prelude::*;
use serde_json::Value;
use sluice_core::StageError;
use sluice_core::prefetch::{AHEAD, prefetch};
use sluice_core::registry::Issue;
use sluice_core::short_bytes;

use super::steps::{ColRef, columns};
use super::table::{Applied, OpError, Table};
use crate::nan::canonical_nans;

/// `dedup = true` or `dedup = { keys = [...], keep = "first" | "last", order_by = "col" }`.
#[derive(Debug, Clone)]
pub struct Dedup {
    /// Columns that make rows equal (`None`: all of them).
    pub keys: Option<Vec<ColRef>>,
    /// Keep the last row of each group instead of the first.
    pub keep_last: bool,
    /// First/last by this column instead of row order.
    pub order_by: Option<ColRef>,
}

const SHARDS: usize = 16;
// `shard_of` takes the shard from the hash's top four bits.
const _: () = assert!(SHARDS.is_power_of_two() && SHARDS <= 16);

impl Dedup {
    /// Reads the op's config.
    pub fn parse(value: &Value, key: &str) -> Result<Dedup, Vec<Issue>> {
        match value {
            Value::Bool(true) => Ok(Dedup { keys: None, keep_last: false, order_by: None }),
            Value::Object(t) => {
                if let Some(other) = t.keys().find(|k| !matches!(k.as_str(), "keys" | "keep" | "order_by")) {
                    return Err(vec![Issue::new(format!("{key}.{other}"), format!("unknown key `{other}` in `dedup`"))
                        .with_help("`dedup` takes `keys`, `keep` and `order_by`")]);
                }
                let keys = t.get("keys").map(|k| columns(k, &format!("{key}.keys"), "keys")).transpose()?;
                let keep_last = match t.get("keep") {
                    None => false,
                    Some(Value::String(s)) if s == "first" => false,
                    Some(Value::String(s)) if s == "last" => true,
                    Some(other) => {
                        return Err(vec![Issue::new(format!("{key}.keep"), format!("`keep` must be \"first\" or \"last\", not {other}"))]);
                    }
                };
                let order_by = match t.get("order_by") {
                    None => None,
                    Some(Value::String(s)) => Some(ColRef::new(s, format!("{key}.order_by"))),
                    Some(other) => return Err(vec![Issue::new(format!("{key}.order_by"), format!("`order_by` names one column, found {other}"))]),
                };
                Ok(Dedup { keys, keep_last, order_by })
            }
            other => Err(vec![Issue::new(key, format!("`dedup` takes true or a table, found {other}"))
                .with_help("write dedup = true (exact duplicate rows) or dedup = { keys = [\"InvoiceNo\", \"StockCode\"] }")]),
        }
    }

    /// Checks the columns exist; the schema is unchanged.
    pub fn derive(
        &self,
        schema: &arrow::datatypes::SchemaRef,
        issues: &mut Vec<Issue>,
    ) -> arrow::datatypes::SchemaRef {
        for c in self.keys.iter().flatten().chain(&self.order_by) {
            c.find(schema, issues);
        }
        schema.clone()
    }

    /// Keeps one row per distinct key.
    pub fn apply(&self, table: Table, track: bool) -> Result<Applied, OpError> {
        let index = |c: &ColRef| table.schema.index_of(&c.name).map_err(|e| StageError::arrow("dedup", e));
        let key_cols: Vec<usize> = match &self.keys {
            Some(keys) => keys.iter().map(index).collect::<Result<_, _>>()?,
            None => (0..table.schema.fields().len()).collect(),
        };
        let order_col = self.order_by.as_ref().map(index).transpose()?;
        let keys: Vec<Column> = key_cols
            .iter()
            .map(|&i| Column::new(&table, i, SortOptions::default()))
            .collect::<Result<_, _>>()?;
        // NULL orders are never preferred: last for keep = "first", first for keep = "last".
        let order = order_col
            .map(|i| Column::new(&table, i, SortOptions { descending: false, nulls_first: self.keep_last }))
            .transpose()?;

        // Hash every row of every batch (cheaper than copying out the selected ones), then
        // spread the rows earlier ops left over the shards.
        let started = std::time::Instant::now();
        let selection = table.selection();
        let batches: Vec<Batch> = (0..table.batches.len())
            .into_par_iter()
            .map(|b| {
                let n = table.batches[b].num_rows();
                let mut hashes = vec![0u64; n];
                hash_rows(&keys, b, &mut hashes)?;
                let mut shards = vec![Vec::new(); SHARDS];
                let mut shard_hashes = vec![Vec::new(); SHARDS];
                let mut place = |r: usize| {
                    let s = shard_of(hashes[r]);
                    shards[s].push(r as u32);
                    shard_hashes[s].push(hashes[r]);
                };
                match selection.map(|s| &s[b]).filter(|s| s.true_count() < s.len()) {
                    Some(sel) => sel.values().set_indices().for_each(&mut place),
                    None => (0..n).for_each(&mut place),
                }
                Ok(Batch { shards, hashes: shard_hashes })
            })
            .collect::<Result<Vec<_>, StageError>>()?;

        // A shard's walk indexes its rows with 32 bits (one kept free for "empty").
        for s in 0..SHARDS {
            let rows: usize = batches.iter().map(|b| b.shards[s].len()).sum();
            if rows >= u32::MAX as usize {
                return Err(StageError::Internal(format!(
                    "dedup: {rows} rows fall into one of {SHARDS} shards; at most {} fit",
                    u32::MAX - 1
                ))
                .into());
            }
        }
        let hashed = started.elapsed();
        let keep_last = self.keep_last;
        let walk = Walk { batches: &batches, keys: &keys, order: order.as_ref(), keep_last };
        let walks: Vec<Walked> =
            (0..SHARDS).into_par_iter().map(|s| walk.walk(s, Matching::Deferred)).collect();
        let walked = started.elapsed();
        let unequal = unequal_shards(&keys, &walks, table.batches.len());
        let winners: Vec<Vec<Pos>> = walks
            .into_par_iter()
            .enumerate()
            .map(|(s, w)| if unequal[s] { walk.walk(s, Matching::Immediate).winners } else { w.winners })
            .collect();
        let checked = started.elapsed();

        let mut keep: Vec<Vec<bool>> = table.batches.iter().map(|b| vec![false; b.num_rows()]).collect();
        let mut distinct = 0u64;
        for (b, r) in winners.into_iter().flatten() {
            keep[b as usize][r as usize] = true;
            distinct += 1;
        }
        drop((batches, keys, order));
        let masks = keep.into_iter().map(BooleanArray::from).collect();
        tracing::debug!(
            hash_ms = hashed.as_secs_f64() * 1e3,
            walk_ms = (walked - hashed).as_secs_f64() * 1e3,
            check_ms = (checked - walked).as_secs_f64() * 1e3,
            mask_ms = (started.elapsed() - checked).as_secs_f64() * 1e3,
            "dedup phases"
        );
        Ok(Applied::kept(table, masks, track)?.with("distinct", distinct))
    }
}

/// One batch's rows (those still selected) per shard, and their hashes beside them: a
/// shard's walk reads its rows' hashes in order, not from every cache line of a batch-wide
/// array (at 10× the retail data that was most of the walk's time).
struct Batch {
    shards: Vec<Vec<u32>>,
    hashes: Vec<Vec<u64>>,
}

/// How rows of one column are compared across batches.
enum Column {
    /// Arrow's typed comparison on the batches' own arrays: nothing is copied.
    Typed { arrays: Vec<ArrayRef>, options: SortOptions },
    /// Types Arrow cannot compare or hash directly: each batch row-encoded (equal values
    /// have equal bytes, and bytes order as the values do).
    Encoded(Vec<Rows>),
}

impl Column {
    fn new(table: &Table, i: usize, options: SortOptions) -> Result<Column, StageError> {
        // Every NaN as one bit pattern: NaN equals NaN whatever its sign or payload, in the
        // hash as in the comparison (the stage makes them canonical up front; this keeps
        // the op right on any table).
        let arrays: Vec<ArrayRef> = table
            .batches
            .iter()
            .map(|b| canonical_nans(b.column(i)).unwrap_or_else(|| b.column(i).clone()))
            .collect();
        let Some(first) = arrays.first() else {
            return Ok(Column::Typed { arrays, options });
        };
        let probe = first.slice(0, first.len().min(1));
        let typed = make_comparator(probe.as_ref(), probe.as_ref(), options).is_ok()
            && create_hashes([&probe], &RandomState::default(), &mut vec![0; probe.len()]).is_ok();
        if typed {
            return Ok(Column::Typed { arrays, options });
        }
        let arrow_err = |e| StageError::arrow("dedup: encoding rows", e);
        let conv = RowConverter::new(vec![SortField::new_with_options(first.data_type().clone(), options)])
            .map_err(arrow_err)?;
        let rows = arrays
            .par_iter()
            .map(|a| conv.convert_columns(std::slice::from_ref(a)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow_err)?;
        Ok(Column::Encoded(rows))
    }
}

/// Fills `hashes` with a hash of each row of batch `b` over `keys`: equal keys, equal hashes.
fn hash_rows(keys: &[Column], b: usize, hashes: &mut [u64]) -> Result<(), StageError> {
    let typed: Vec<&ArrayRef> = keys
        .iter()
        .filter_map(|k| match k {
            Column::Typed { arrays, .. } => Some(&arrays[b]),
            Column::Encoded(_) => None,
        })
        .collect();
    if !typed.is_empty() {
        create_hashes(typed, &RandomState::default(), hashes)
            .map_err(|e| StageError::Internal(format!("dedup: hashing rows: {e}")))?;
    }
    for k in keys {
        if let Column::Encoded(rows) = k {
            for (r, h) in hashes.iter_mut().enumerate() {
                *h = hash_bytes(rows[b].row(r).data()) ^ h.rotate_left(29);
            }
        }
    }
    Ok(())
}

/// A row: (batch, row in batch).
type Pos = (u32, u32);

/// What a shard's walk found.
struct Walked {
    /// Each group's winner.
    winners: Vec<Pos>,
    /// With deferred matching, every (row, row of its group) pair taken as equal on the tag
    /// alone, ascending by the first.
    matched: Vec<(Pos, Pos)>,
}

/// How rows with equal tags (see [`Seen`]) are told apart during a shard's walk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Matching {
    /// Equal tags are taken for equal rows, and every such pair is checked afterwards,
    /// one column at a time. The checks do not wait on each other's cache misses, which
    /// on-the-spot comparison of every duplicate (its group's row is anywhere in the
    /// table) does: at 10× the retail data that was most of dedup's time.
    Deferred,
    /// Every tag match is compared on the spot: after a deferred check found two different
    /// rows with one tag.
    Immediate,
}

/// What one shard's walk needs; the comparators it builds are its own.
struct Walk<'a> {
    batches: &'a [Batch],
    keys: &'a [Column],
    order: Option<&'a Column>,
    keep_last: bool,
}

/// Comparators of one column for pairs of batches, built on first use.
type Comparators = HashMap<(u32, u32), DynComparator, RandomState>;

impl Walk<'_> {
    /// Walks shard `s` in input order.
    fn walk(&self, s: usize, matching: Matching) -> Walked {
        // Without order_by, "last" is "first" walking backwards.
        let backwards = self.keep_last && self.order.is_none();
        let n = self.batches.iter().map(|e| e.shards[s].len()).sum();
        let (mut rows, mut hashes): (Vec<Pos>, Vec<u64>) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (b, e) in self.batches.iter().enumerate() {
            rows.extend(e.shards[s].iter().map(|&r| (b as u32, r)));
            hashes.extend_from_slice(&e.hashes[s]);
        }
        if backwards {
            rows.reverse();
            hashes.reverse();
        }
        let mut w = ShardWalk {
            walk: self,
            rows: &rows,
            hashes: &hashes,
            matching,
            seen: Seen::with_capacity(rows.len()),
            matched: Vec::new(),
            key_cmp: self.keys.iter().map(|_| Comparators::default()).collect(),
            order_cmp: Comparators::default(),
        };
        for k in 0..rows.len() {
            // A group's slot is anywhere in a table larger than the cache.
            if let Some(&ahead) = hashes.get(k + AHEAD) {
                w.seen.prefetch(ahead);
            }
            w.visit(k);
        }
        let (seen, mut matched) = (w.seen, w.matched);
        if backwards {
            // Every shard's pairs ascend by row, for `unequal_shards`.
            matched.reverse();
        }
        Walked { winners: seen.winners().map(|k| rows[k]).collect(), matched }
    }
}

/// One walk over a shard in progress.
struct ShardWalk<'a> {
    walk: &'a Walk<'a>,
    /// The shard's rows in walk order; the table holds indexes into it.
    rows: &'a [Pos],
    /// Their hashes.
    hashes: &'a [u64],
    matching: Matching,
    seen: Seen,
    matched: Vec<(Pos, Pos)>,
    key_cmp: Vec<Comparators>,
    order_cmp: Comparators,
}

impl ShardWalk<'_> {
    /// Offers the `k`th row to its group: the first row seen wins unless `order_by` says a
    /// later one is better.
    fn visit(&mut self, k: usize) {
        let (walk, rows) = (self.walk, self.rows);
        let (row, hash) = (rows[k], self.hashes[k]);
        let immediate = self.matching == Matching::Immediate;
        let key_cmp = &mut self.key_cmp;
        let same = |winner: usize| {
            !immediate
                || walk
                    .keys
                    .iter()
                    .zip(key_cmp.iter_mut())
                    .all(|(key, cmp)| compare(key, cmp, rows[winner], row).is_eq())
        };
        match self.seen.find(hash, same) {
            Err(slot) => self.seen.set(slot, hash, k),
            Ok((slot, winner)) => {
                let winner = rows[winner];
                if !immediate {
                    self.matched.push((row, winner));
                }
                if let Some(order) = walk.order {
                    let candidate = compare(order, &mut self.order_cmp, row, winner);
                    let better = if walk.keep_last { candidate.is_ge() } else { candidate.is_lt() };
                    if better {
                        self.seen.set(slot, hash, k);
                    }
                }
            }
        }
    }
}

/// Which shards' deferred walks took two different rows for one group. All shards' pairs
/// are checked together, grouped by the batch of their first row (the row the walk was
/// visiting; with keep-first dedup, the duplicate that goes): that side's values then come
/// from one batch's arrays, in cache, and only its group's row is anywhere in the table.
/// Checked shard by shard, both sides were random reads (at 10× the retail data, 1.5 M
/// pairs, about 300 ns a pair).
fn unequal_shards(keys: &[Column], walks: &[Walked], batches: usize) -> Vec<bool> {
    let of_batch = |pairs: &[(Pos, Pos)], b: u32| {
        let lo = pairs.partition_point(|p| p.0.0 < b);
        lo..lo + pairs[lo..].partition_point(|p| p.0.0 == b)
    };
    let unequal = (0..batches as u32)
        .into_par_iter()
        .map_init(
            || (Vec::new(), Comparators::default()),
            |(pairs, cache), b| {
                pairs.clear();
                for w in walks {
                    pairs.extend_from_slice(&w.matched[of_batch(&w.matched, b)]);
                }
                if keys.iter().all(|k| all_equal(k, pairs, cache)) {
                    return Vec::new();
                }
                // Rare (two different rows with one tag): find whose pairs they were.
                walks
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| {
                        let pairs = &w.matched[of_batch(&w.matched, b)];
                        !keys.iter().all(|k| all_equal(k, pairs, cache))
                    })
                    .map(|(s, _)| s)
                    .collect()
            },
        )
        .flatten_iter()
        .collect::<Vec<usize>>();
    let mut shards = vec![false; walks.len()];
    for s in unequal {
        shards[s] = true;
    }
    shards
}

/// Whether both rows of every pair hold equal values in `col` (NULL equals NULL; floats by
/// bits, as Arrow's total order compares them).
fn all_equal(col: &Column, pairs: &[(Pos, Pos)], cache: &mut Comparators) -> bool {
    let Column::Typed { arrays, .. } = col else {
        return pairs.iter().all(|&(a, b)| compare(col, cache, a, b).is_eq());
    };
    let Some(first) = arrays.first() else { return pairs.is_empty() };
    macro_rules! primitive_helper {
        ($t:ty, $arrays:expr, $pairs:expr) => {
            primitive_equal::<$t>($arrays, $pairs)
        };
    }
    match first.data_type() {
        DataType::Utf8 => bytes_equal::<Utf8Type>(arrays, pairs),
        DataType::LargeUtf8 => bytes_equal::<LargeUtf8Type>(arrays, pairs),
        DataType::Binary => bytes_equal::<BinaryType>(arrays, pairs),
        DataType::LargeBinary => bytes_equal::<LargeBinaryType>(arrays, pairs),
        data_type => downcast_primitive! {
            data_type => (primitive_helper, arrays, pairs),
            _ => pairs.iter().all(|&(a, b)| compare(col, cache, a, b).is_eq()),
        },
    }
}

/// Equal validity, and equal values where valid.
fn same_slot(x: &dyn Array, i: usize, y: &dyn Array, j: usize, values_equal: impl FnOnce() -> bool) -> bool {
    match (x.is_valid(i), y.is_valid(j)) {
        (true, true) => values_equal(),
        (a, b) => a == b,
    }
}

// Both rows of a pair are anywhere in the table, so each check would wait on a cache miss;
// the pairs ahead are prefetched: a string's offsets two strides ahead, its bytes one stride
// ahead (their offsets are cached by then).

fn bytes_equal<T: ByteArrayType>(arrays: &[ArrayRef], pairs: &[(Pos, Pos)]) -> bool {
    let typed: Vec<&GenericByteArray<T>> = arrays.iter().map(|a| a.as_bytes::<T>()).collect();
    let offsets = |p: Pos| typed[p.0 as usize].value_offsets().as_ptr().wrapping_add(p.1 as usize);
    let bytes = |p: Pos| {
        let array = typed[p.0 as usize];
        // The offset was prefetched a stride ago; get() keeps a stray index harmless.
        let start = array.value_offsets().get(p.1 as usize).map_or(0, |o| o.as_usize());
        array.values().as_ptr().wrapping_add(start)
    };
    pairs.iter().enumerate().all(|(k, &(a, b))| {
        if let Some(&(c, d)) = pairs.get(k + 2 * AHEAD) {
            prefetch(offsets(c));
            prefetch(offsets(d));
        }
        if let Some(&(c, d)) = pairs.get(k + AHEAD) {
            prefetch(bytes(c));
            prefetch(bytes(d));
        }
        let (x, i, y, j) = (typed[a.0 as usize], a.1 as usize, typed[b.0 as usize], b.1 as usize);
        same_slot(x, i, y, j, || short_bytes::equal(x.value(i).as_ref(), y.value(j).as_ref()))
    })
}

fn primitive_equal<T: ArrowPrimitiveType>(arrays: &[ArrayRef], pairs: &[(Pos, Pos)]) -> bool {
    let typed: Vec<&PrimitiveArray<T>> = arrays.iter().map(|a| a.as_primitive::<T>()).collect();
    let value = |p: Pos| typed[p.0 as usize].values().as_ptr().wrapping_add(p.1 as usize);
    pairs.iter().enumerate().all(|(k, &(a, b))| {
        if let Some(&(c, d)) = pairs.get(k + AHEAD) {
            prefetch(value(c));
            prefetch(value(d));
        }
        let (x, i, y, j) = (typed[a.0 as usize], a.1 as usize, typed[b.0 as usize], b.1 as usize);
        same_slot(x, i, y, j, || x.value(i).is_eq(y.value(j)))
    })
}

/// Orders row `a` against row `b` (each as batch, row) by one column.
fn compare(col: &Column, cache: &mut Comparators, a: (u32, u32), b: (u32, u32)) -> std::cmp::Ordering {
    match col {
        Column::Encoded(rows) => {
            rows[a.0 as usize].row(a.1 as usize).cmp(&rows[b.0 as usize].row(b.1 as usize))
        }
        Column::Typed { arrays, options } => {
            let cmp = cache.entry((a.0, b.0)).or_insert_with(|| {
                // Column::new checked this type compares; a failure here cannot happen,
                // and treating it as "different" keeps both rows.
                make_comparator(arrays[a.0 as usize].as_ref(), arrays[b.0 as usize].as_ref(), *options)
                    .unwrap_or_else(|_| Box::new(|_, _| std::cmp::Ordering::Less))
            });
            cmp(a.1 as usize, b.1 as usize)
        }
    }
}

/// Each group's current winner, by hash: open addressing with linear probing over 8-byte
/// slots, at most half full. A slot holds a 32-bit tag of the hash and the winner's index
/// in the shard's walk order plus one (all zeros is empty). Millions of groups stay
/// cache-friendly (at 10× the retail data, 16-byte slots with the full hash and row made
/// the tables 128 MB of fresh memory), a slot can be prefetched before it is needed, and a
/// row's values are looked at only when tags match. Rows whose tags match are taken for
/// one group like rows whose hashes match: the walk checks every such pair afterwards.
struct Seen {
    slots: Vec<u64>,
    mask: usize,
}

impl Seen {
    /// Room for `rows` groups.
    fn with_capacity(rows: usize) -> Seen {
        let slots = (rows * 2).next_power_of_two().max(16);
        Seen { slots: vec![0; slots], mask: slots - 1 }
    }

    fn prefetch(&self, hash: u64) {
        prefetch(self.slots.as_ptr().wrapping_add(hash as usize & self.mask));
    }

    /// The slot and winner (walk index) of the group a row with `hash` belongs to, as `same`
    /// decides among winners with its tag; or the empty slot where its group goes.
    fn find(&self, hash: u64, mut same: impl FnMut(usize) -> bool) -> Result<(usize, usize), usize> {
        let tag = tag(hash);
        let mut i = hash as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Err(i);
            }
            if (slot >> 32) as u32 == tag && same(slot_index(slot)) {
                return Ok((i, slot_index(slot)));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Makes walk index `k` the winner in `slot`. Shards hold fewer than 2³² − 1 rows
    /// (checked in [`Dedup::apply`]).
    fn set(&mut self, slot: usize, hash: u64, k: usize) {
        self.slots[slot] = u64::from(tag(hash)) << 32 | (k as u64 + 1);
    }

    /// Every group's winner, as a walk index.
    fn winners(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().filter(|&&s| s != 0).map(|&s| slot_index(s))
    }
}

/// The walk index a taken [`Seen`] slot holds.
fn slot_index(slot: u64) -> usize {
    (slot as u32 - 1) as usize
}

/// The bits of a hash kept in a [`Seen`] slot: neither the top four (equal within a shard)
/// nor the low ones that pick the slot (in any table below 2²⁸ slots).
fn tag(hash: u64) -> u32 {
    (hash >> 28) as u32
}

/// Which shard a hash goes to: the top bits, so the bits the table and tags use stay varied.
fn shard_of(hash: u64) -> usize {
    (hash >> 60) as usize & (SHARDS - 1)
}

/// A fast 64-bit hash of a byte string: word-at-a-time multiply-rotate, then the splitmix64
/// finalizer to spread every input bit over the output.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Float64Array, Int64Array, NullArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// A table of `fields`, one batch per entry of `parts` (that batch's columns).
    fn table(fields: Vec<Field>, parts: Vec<Vec<ArrayRef>>) -> Table {
        let schema = Arc::new(Schema::new(fields));
        let batches =
            parts.into_iter().map(|cols| RecordBatch::try_new(schema.clone(), cols).unwrap()).collect();
        Table::from_input(schema, batches)
    }

    fn input(parts: &[&[(Option<&str>, Option<i64>)]]) -> Table {
        let fields = vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)];
        let parts = parts
            .iter()
            .map(|p| -> Vec<ArrayRef> {
                vec![
                    Arc::new(StringArray::from(p.iter().map(|r| r.0).collect::<Vec<_>>())),
                    Arc::new(Int64Array::from(p.iter().map(|r| r.1).collect::<Vec<_>>())),
                ]
            })
            .collect();
        table(fields, parts)
    }

    fn rows(t: &Table) -> Vec<(Option<String>, Option<i64>)> {
        let k = t.column(0).unwrap();
        let v = t.column(1).unwrap();
        let k = k.as_any().downcast_ref::<StringArray>().unwrap();
        let v = v.as_any().downcast_ref::<Int64Array>().unwrap();
        (0..k.len())
            .map(|i| (k.is_valid(i).then(|| k.value(i).to_string()), v.is_valid(i).then(|| v.value(i))))
            .collect()
    }

    fn data() -> Table {
        input(&[
            &[(Some("ä"), Some(1)), (None, None), (Some("b"), Some(2))],
            &[(Some("ä"), Some(1)), (None, None), (Some("ä"), Some(3)), (Some("b"), None)],
        ])
    }

    #[test]
    fn exact_duplicates_across_batches_keep_first_and_null_equals_null() {
        let a = Dedup::parse(&json!(true), "dedup").unwrap().apply(data(), true).unwrap();
        assert_eq!(a.removed, [3, 4]);
        assert_eq!(a.table.rows(), 5);
        assert_eq!(a.extra, [("distinct", json!(5))]);
    }

    #[test]
    fn rows_an_earlier_op_removed_neither_win_nor_count() {
        // Row 0 ("ä", 1) is gone before dedup: its duplicate, row 3, is now the first one.
        let masks = vec![BooleanArray::from(vec![false, true, true]), BooleanArray::from(vec![true; 4])];
        let (t, _) = data().keep(masks, true).unwrap();
        let a = Dedup::parse(&json!(true), "dedup").unwrap().apply(t, true).unwrap();
        assert_eq!(a.removed, [4], "only the second NULL row is a duplicate now");
        assert_eq!(a.extra, [("distinct", json!(5))]);
        assert_eq!(
            rows(&a.table),
            [
                (None, None),
                (Some("b".into()), Some(2)),
                (Some("ä".into()), Some(1)),
                (Some("ä".into()), Some(3)),
                (Some("b".into()), None)
            ]
        );
    }

    #[test]
    fn keys_with_keep_last_and_order_by() {
        let last =
            Dedup::parse(&json!({"keys": ["k"], "keep": "last"}), "d").unwrap().apply(data(), false).unwrap();
        assert_eq!(rows(&last.table), [(None, None), (Some("ä".into()), Some(3)), (Some("b".into()), None)]);
        let by = Dedup::parse(&json!({"keys": "k", "keep": "last", "order_by": "v"}), "d")
            .unwrap()
            .apply(data(), false)
            .unwrap();
        // b: the NULL v never wins over a value; NULL group: tie → the later row.
        assert_eq!(rows(&by.table), [(Some("b".into()), Some(2)), (None, None), (Some("ä".into()), Some(3))]);
        let first = Dedup::parse(&json!({"keys": ["k"], "order_by": "v"}), "d")
            .unwrap()
            .apply(data(), false)
            .unwrap();
        assert_eq!(
            rows(&first.table),
            [(Some("ä".into()), Some(1)), (None, None), (Some("b".into()), Some(2))]
        );
    }

    #[test]
    fn empty_input_and_config_errors() {
        let a = Dedup::parse(&json!(true), "dedup").unwrap().apply(input(&[]), true).unwrap();
        assert_eq!(a.table.rows(), 0);
        assert!(Dedup::parse(&json!(false), "dedup").is_err());
        assert_eq!(
            Dedup::parse(&json!({"keep": "middle"}), "steps.1.dedup").unwrap_err()[0].key,
            "steps.1.dedup.keep"
        );
        let mut issues = Vec::new();
        Dedup::parse(&json!({"keys": ["kk"]}), "dedup").unwrap().derive(&data().schema, &mut issues);
        assert_eq!(issues[0].key, "dedup.keys.0");
    }

    #[test]
    fn a_column_arrow_cannot_compare_goes_through_the_row_format() {
        // NULL-typed columns have no typed comparator; every value is NULL, so rows differ
        // only in `k`.
        let fields = vec![Field::new("n", DataType::Null, true), Field::new("k", DataType::Utf8, true)];
        let batch = |k: Vec<Option<&str>>| -> Vec<ArrayRef> {
            vec![Arc::new(NullArray::new(k.len())), Arc::new(StringArray::from(k))]
        };
        let t = table(
            fields,
            vec![batch(vec![Some("a"), None, Some("a")]), batch(vec![None, Some("b"), Some("a")])],
        );
        let a = Dedup::parse(&json!(true), "dedup").unwrap().apply(t, true).unwrap();
        assert_eq!(a.removed, [2, 3, 5]);
        assert_eq!(a.extra, [("distinct", json!(3))]);
    }

    #[test]
    fn rows_that_share_a_hash_but_differ_are_told_apart() {
        // Every row gets hash 0: the deferred check must notice that the rows taken for
        // duplicates differ, and the walk must then compare on the spot, in both directions.
        let t = data();
        let keys: Vec<Column> =
            (0..2).map(|i| Column::new(&t, i, SortOptions::default())).collect::<Result<_, _>>().unwrap();
        let batches: Vec<Batch> = t
            .batches
            .iter()
            .map(|b| {
                let (mut shards, mut hashes) = (vec![Vec::new(); SHARDS], vec![Vec::new(); SHARDS]);
                shards[0] = (0..b.num_rows() as u32).collect();
                hashes[0] = vec![0; b.num_rows()];
                Batch { shards, hashes }
            })
            .collect();
        // ("ä",1) (NULL,NULL) ("b",2) | ("ä",1) (NULL,NULL) ("ä",3) ("b",NULL)
        for (keep_last, first_taken, expected) in [
            // keep first: the repeats in batch 1 lose.
            (false, (0, 0), [(0, 0), (0, 1), (0, 2), (1, 2), (1, 3)]),
            // keep last (walked backwards): the first two rows of batch 0 lose.
            (true, (1, 3), [(0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]),
        ] {
            let walk = Walk { batches: &batches, keys: &keys, order: None, keep_last };
            let deferred = walk.walk(0, Matching::Deferred);
            assert_eq!(deferred.winners, [first_taken], "on the hash alone, all rows look alike");
            // unequal_shards finds a batch's pairs by binary search.
            assert!(
                deferred.matched.is_sorted_by_key(|p| p.0),
                "pairs ascend by row: {:?}",
                deferred.matched
            );
            let mut walks: Vec<Walked> =
                (0..SHARDS).map(|_| Walked { winners: Vec::new(), matched: Vec::new() }).collect();
            walks[0] = deferred;
            let unequal = unequal_shards(&keys, &walks, t.batches.len());
            assert!(
                unequal[0] && !unequal[1..].contains(&true),
                "only shard 0 took different rows: {unequal:?}"
            );
            let mut winners = walk.walk(0, Matching::Immediate).winners;
            winners.sort_unstable();
            assert_eq!(winners, expected, "keep_last = {keep_last}");
        }
    }

    /// A row of the property test: a string key, an integer and a float (compared by bits,
    /// as Arrow's total order does).
    type Row = (Option<String>, Option<i64>, Option<f64>);

    fn row() -> impl Strategy<Value = Row> {
        let text = proptest::option::of(
            prop_oneof![Just("a"), Just("b"), Just("ä"), Just("")].prop_map(String::from),
        );
        let float = proptest::option::of(prop_oneof![Just(0.5), Just(-0.0), Just(0.0), Just(f64::NAN)]);
        (text, proptest::option::of(0i64..3), float)
    }

    fn float_table(parts: &[Vec<Row>]) -> Table {
        let fields = vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
        ];
        let parts = parts
            .iter()
            .map(|p| -> Vec<ArrayRef> {
                vec![
                    Arc::new(StringArray::from(p.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
                    Arc::new(Int64Array::from(p.iter().map(|r| r.1).collect::<Vec<_>>())),
                    Arc::new(Float64Array::from(p.iter().map(|r| r.2).collect::<Vec<_>>())),
                ]
            })
            .collect();
        table(fields, parts)
    }

    proptest! {
        /// Whatever the keys, keep rule, order column and rows removed before, dedup keeps
        /// exactly the rows a one-row-at-a-time model keeps.
        #[test]
        fn dedup_keeps_what_a_row_by_row_model_keeps(
            parts in proptest::collection::vec(proptest::collection::vec(row(), 0..10), 0..4),
            gone in proptest::collection::vec(any::<bool>(), 40),
            keys_k_only in any::<bool>(),
            keep_last in any::<bool>(),
            by_v in any::<bool>(),
        ) {
            let mut t = float_table(&parts);
            // Remove some rows first, as an earlier op would.
            let mut id = 0;
            let masks: Vec<BooleanArray> = t.batches.iter().map(|b| {
                BooleanArray::from((0..b.num_rows()).map(|_| { id += 1; !gone[(id - 1) % gone.len()] }).collect::<Vec<_>>())
            }).collect();
            t = t.keep(masks, true).unwrap().0;
            let mut config = serde_json::Map::new();
            if keys_k_only { config.insert("keys".into(), json!(["k"])); }
            config.insert("keep".into(), json!(if keep_last { "last" } else { "first" }));
            if by_v { config.insert("order_by".into(), json!("v")); }
            let op = Dedup::parse(&Value::Object(config), "dedup").unwrap();
            let got = op.apply(t, true).unwrap().removed;

            // The model: walk the rows still there in input order.
            let rows: Vec<(u64, &Row)> = parts.iter().flatten().enumerate()
                .filter(|(i, _)| !gone[i % gone.len()]).map(|(i, r)| (i as u64, r)).collect();
            let key = |r: &Row| if keys_k_only { (r.0.clone(), None, None) } else { (r.0.clone(), r.1, r.2.map(f64::to_bits)) };
            let mut winners: Vec<(u64, &Row)> = Vec::new();
            for &(id, r) in &rows {
                match winners.iter_mut().find(|w| key(w.1) == key(r)) {
                    None => winners.push((id, r)),
                    Some(w) => {
                        let better = if by_v {
                            // NULL never wins over a value; ties go to the later row for "last".
                            match (r.1, w.1.1) {
                                (Some(a), Some(b)) => if keep_last { a >= b } else { a < b },
                                (Some(_), None) => true,
                                (None, Some(_)) => false,
                                (None, None) => keep_last,
                            }
                        } else {
                            keep_last
                        };
                        if better { *w = (id, r); }
                    }
                }
            }
            let kept: Vec<u64> = winners.iter().map(|w| w.0).collect();
            let want: Vec<u64> = rows.iter().map(|r| r.0).filter(|id| !kept.contains(id)).collect();
            prop_assert_eq!(got, want);
        }
    }

    /// Regression: NaNs with different bits (`0.0 / 0.0` on x86 sets the sign bit) were
    /// different values to dedup; the docs say NaN equals NaN. -0.0 and 0.0 still differ.
    #[test]
    fn every_nan_equals_every_nan_whatever_its_bits() {
        let negative_nan = f64::from_bits(0xfff8_0000_0000_0000);
        let payload_nan = f64::from_bits(0x7ff0_0000_0000_0001);
        let floats = |v: Vec<f64>| -> Vec<ArrayRef> { vec![Arc::new(Float64Array::from(v))] };
        let t = table(
            vec![Field::new("f", DataType::Float64, true)],
            vec![floats(vec![f64::NAN, negative_nan, -0.0]), floats(vec![payload_nan, 0.0, -0.0])],
        );
        let a = Dedup::parse(&json!(true), "dedup").unwrap().apply(t, true).unwrap();
        assert_eq!(a.removed, [1, 3, 5]);
        assert_eq!(a.extra, [("distinct", json!(3))]);
        // As an order, every NaN is above every number: the NaN row is the last.
        let t = table(
            vec![Field::new("k", DataType::Utf8, true), Field::new("f", DataType::Float64, true)],
            vec![vec![
                Arc::new(StringArray::from(vec!["a", "a", "a"])),
                Arc::new(Float64Array::from(vec![1.0, negative_nan, 2.0])),
            ]],
        );
        let last = Dedup::parse(&json!({"keys": ["k"], "keep": "last", "order_by": "f"}), "dedup").unwrap();
        assert_eq!(last.apply(t, true).unwrap().removed, [0, 2]);
    }

    #[test]
    fn many_rows_dedup_like_a_set() {
        let values: Vec<(Option<&str>, Option<i64>)> =
            (0..20_000).map(|i| (Some("x"), Some(i % 7_919))).collect();
        let t = input(&[&values[..5_000], &values[5_000..]]);
        let a = Dedup::parse(&json!(true), "dedup").unwrap().apply(t, true).unwrap();
        assert_eq!(a.table.rows(), 7_919);
        assert_eq!(a.removed.len(), 20_000 - 7_919);
        assert!(a.removed.iter().all(|&id| id >= 7_919));
    }

    #[test]
    fn seen_probes_past_taken_slots_and_wraps_around() {
        let mut seen = Seen::with_capacity(4); // 16 slots
        // Three hashes that all start at the last slot, with different tags: probing wraps
        // to slots 0 and 1.
        let hashes: Vec<u64> = (1..=3).map(|t| t << 28 | 15).collect();
        for (k, &h) in hashes.iter().enumerate() {
            let slot = seen.find(h, |_| true).unwrap_err();
            seen.set(slot, h, k);
        }
        for (k, &h) in hashes.iter().enumerate() {
            assert_eq!(seen.find(h, |_| true).map(|(_, winner)| winner), Ok(k));
        }
        // A row whose tag matches but whose values differ does not join the group.
        let free = seen.find(hashes[0], |_| false).unwrap_err();
        assert_eq!(free, 2);
        let mut winners: Vec<usize> = seen.winners().collect();
        winners.sort();
        assert_eq!(winners, [0, 1, 2]);
    }

    #[test]
    fn tags_ignore_the_shard_and_slot_bits() {
        // Hashes that differ only in the bits choosing the shard or the home slot of a
        // small table share a tag; others do not.
        assert_eq!(tag(0x0123_4567_89ab_cdef), tag(0xf123_4567_8000_0000 | 0x0bab_cdef));
        assert_ne!(tag(1 << 28), tag(1 << 29));
        assert_eq!(shard_of(0xf000_0000_0000_0000), 15);
    }
}
