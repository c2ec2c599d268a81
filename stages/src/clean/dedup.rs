//! `dedup`: removes duplicate rows — exact duplicates over every column, or rows sharing
//! `keys`, keeping the first or last (in row order, or by `order_by`).
//!
//! Rows are row-encoded (Arrow's row format: equal values ⇔ equal bytes, NULL equals NULL),
//! hashed batch-parallel, and spread over shards by hash; each shard decides its winners on
//! its own thread, walking its rows in input order, so the result does not depend on the
//! number of threads.

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::{FilterBuilder, SortOptions};
use arrow::row::{RowConverter, Rows, SortField};
use rayon::prelude::*;
use serde_json::Value;
use sluice_core::StageError;
use sluice_core::registry::Issue;

use super::steps::{ColRef, columns};
use super::table::{Applied, OpError, Table};

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
        let arrow_err = |e| StageError::arrow("dedup: encoding rows", e);
        let key_conv = RowConverter::new(
            key_cols.iter().map(|&i| SortField::new(table.schema.field(i).data_type().clone())).collect(),
        )
        .map_err(arrow_err)?;
        // NULL orders are never preferred: last for keep = "first", first for keep = "last".
        let order_conv = order_col
            .map(|i| {
                let options = SortOptions { descending: false, nulls_first: self.keep_last };
                RowConverter::new(vec![SortField::new_with_options(
                    table.schema.field(i).data_type().clone(),
                    options,
                )])
            })
            .transpose()
            .map_err(arrow_err)?;

        let selection = table.selection();
        let encoded = table
            .batches
            .par_iter()
            .enumerate()
            .map(|(bi, b)| {
                // Only rows an earlier op left take part: with a selection, they are copied
                // out (one batch at a time) and encoded, and `rows` maps them back.
                let sel = selection.map(|s| &s[bi]).filter(|s| s.true_count() < s.len());
                // One predicate per batch, shared by every key column.
                let predicate = sel.map(|s| FilterBuilder::new(s).optimize().build());
                let pick = |c: &ArrayRef| match &predicate {
                    Some(p) => p.filter(c).map_err(|e| StageError::arrow("dedup: selecting rows", e)),
                    None => Ok(c.clone()),
                };
                let cols: Vec<ArrayRef> =
                    key_cols.iter().map(|&i| pick(b.column(i))).collect::<Result<_, _>>()?;
                let keys = key_conv.convert_columns(&cols).map_err(arrow_err)?;
                drop(cols);
                let order = match (&order_conv, order_col) {
                    (Some(conv), Some(i)) => {
                        Some(conv.convert_columns(&[pick(b.column(i))?]).map_err(arrow_err)?)
                    }
                    _ => None,
                };
                let rows = sel.map(|s| s.values().set_indices().map(|r| r as u32).collect::<Vec<u32>>());
                let hashes: Vec<u64> = keys.iter().map(|r| hash_bytes(r.data())).collect();
                let mut shards = vec![Vec::new(); SHARDS];
                for (r, h) in hashes.iter().enumerate() {
                    shards[shard_of(*h)].push(r as u32);
                }
                Ok(Encoded { keys, order, hashes, shards, rows })
            })
            .collect::<Result<Vec<_>, StageError>>()?;

        let keep_last = self.keep_last;
        let ordered = order_col.is_some();
        let winners: Vec<Vec<(u32, u32)>> = (0..SHARDS)
            .into_par_iter()
            .map(|s| {
                let total: usize = encoded.iter().map(|e| e.shards[s].len()).sum();
                let mut seen = Seen::with_capacity(total);
                // Without order_by, "last" is "first" walking backwards.
                if keep_last && !ordered {
                    for b in (0..encoded.len()).rev() {
                        for &r in encoded[b].shards[s].iter().rev() {
                            visit(&encoded, b, r, keep_last, &mut seen);
                        }
                    }
                } else {
                    for (b, e) in encoded.iter().enumerate() {
                        for &r in &e.shards[s] {
                            visit(&encoded, b, r, keep_last, &mut seen);
                        }
                    }
                }
                seen.into_iter().map(|w| (w.batch, w.row)).collect()
            })
            .collect();

        let mut keep: Vec<Vec<bool>> = table.batches.iter().map(|b| vec![false; b.num_rows()]).collect();
        let mut distinct = 0u64;
        for (b, r) in winners.into_iter().flatten() {
            let row = match &encoded[b as usize].rows {
                Some(rows) => rows[r as usize],
                None => r,
            };
            keep[b as usize][row as usize] = true;
            distinct += 1;
        }
        drop(encoded);
        let masks = keep.into_iter().map(BooleanArray::from).collect();
        Ok(Applied::kept(table, masks, track)?.with("distinct", distinct))
    }
}

/// One batch, row-encoded: keys (and order values), their hashes, and its rows per shard.
struct Encoded {
    keys: Rows,
    order: Option<Rows>,
    hashes: Vec<u64>,
    /// The batch row of each encoded row, when only selected rows were encoded.
    rows: Option<Vec<u32>>,
    shards: Vec<Vec<u32>>,
}

/// One group's current winner: 16 bytes, so millions of groups stay cache-friendly; the
/// row's bytes are looked up only when hashes match.
#[derive(Clone, Copy)]
struct Winner {
    hash: u64,
    batch: u32,
    row: u32,
}

type Seen = hashbrown::HashTable<Winner>;

/// Offers row `r` of batch `b` to its group: the first row seen wins unless `order_by`
/// says a later one is better.
fn visit(encoded: &[Encoded], b: usize, r: u32, keep_last: bool, seen: &mut Seen) {
    let e = &encoded[b];
    let hash = e.hashes[r as usize];
    let bytes = e.keys.row(r as usize).data();
    let same =
        |w: &Winner| w.hash == hash && encoded[w.batch as usize].keys.row(w.row as usize).data() == bytes;
    match (seen.find_mut(hash, same), &e.order) {
        (None, _) => {
            seen.insert_unique(hash, Winner { hash, batch: b as u32, row: r }, |w| w.hash);
        }
        (Some(_), None) => {}
        (Some(slot), Some(order)) => {
            let current = encoded[slot.batch as usize].order.as_ref().map(|o| o.row(slot.row as usize));
            let candidate = order.row(r as usize);
            let better = match current {
                Some(c) if keep_last => candidate >= c,
                Some(c) => candidate < c,
                None => false,
            };
            if better {
                slot.batch = b as u32;
                slot.row = r;
            }
        }
    }
}

/// Which shard a hash goes to: middle bits, so the bits the hash table uses stay varied.
fn shard_of(hash: u64) -> usize {
    ((hash >> 32) as usize) & (SHARDS - 1)
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

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use serde_json::json;

    use super::*;

    fn input(parts: &[&[(Option<&str>, Option<i64>)]]) -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let batches = parts
            .iter()
            .map(|p| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(p.iter().map(|r| r.0).collect::<Vec<_>>())),
                        Arc::new(Int64Array::from(p.iter().map(|r| r.1).collect::<Vec<_>>())),
                    ],
                )
                .unwrap()
            })
            .collect();
        Table::from_input(schema, batches)
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
    fn many_rows_dedup_like_a_set() {
        let values: Vec<(Option<&str>, Option<i64>)> =
            (0..20_000).map(|i| (Some("x"), Some(i % 7_919))).collect();
        let t = input(&[&values[..5_000], &values[5_000..]]);
        let a = Dedup::parse(&json!(true), "dedup").unwrap().apply(t, true).unwrap();
        assert_eq!(a.table.rows(), 7_919);
        assert_eq!(a.removed.len(), 20_000 - 7_919);
        assert!(a.removed.iter().all(|&id| id >= 7_919));
    }
}
