//! The data as it flows between clean operations: batches plus, per batch, the position of
//! every row in the stage's input, so a removed row can be reported as it came in.
//!
//! Removing rows does not copy the rest: the rows left are marked in a per-batch selection,
//! and the batches are filtered once, when an operation needs the rows themselves (or the
//! stage writes its output). `drop_nulls → dedup → filter` thus copies the data once, not
//! three times — on the retail data that is 90 MB less memory touched per run.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt64Array};
use arrow::compute::kernels::boolean::{and, and_not};
use arrow::compute::{FilterBuilder, concat, filter, prep_null_mask_filter};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rayon::prelude::*;
use sluice_core::StageError;

use super::compact::compact;

/// Batches with their input row positions.
#[derive(Debug, Clone)]
pub struct Table {
    /// Schema of every batch.
    pub schema: SchemaRef,
    /// The rows, in input order — all of them only when `selection` is `None`.
    pub batches: Vec<RecordBatch>,
    /// Input row position of each row, batch by batch; `None` once a `sql` step has
    /// replaced the rows with a query result that no longer maps onto the input.
    pub ids: Option<Vec<RowIds>>,
    /// Per batch, the rows still in the table (no NULLs), when rows were removed without
    /// copying the others; see [`Table::materialize`].
    selection: Option<Vec<BooleanArray>>,
}

impl Table {
    /// A table of every row of `batches`.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>, ids: Option<Vec<RowIds>>) -> Self {
        Table { schema, batches, ids, selection: None }
    }

    /// The stage input, rows numbered from 0 in input order.
    pub fn from_input(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let mut next = 0u64;
        let ids = batches
            .iter()
            .map(|b| {
                let ids = RowIds::From(next);
                next += b.num_rows() as u64;
                ids
            })
            .collect();
        Table::new(schema, batches, Some(ids))
    }

    /// Row count (selected rows only).
    pub fn rows(&self) -> usize {
        match &self.selection {
            Some(sel) => sel.iter().map(BooleanArray::true_count).sum(),
            None => self.batches.iter().map(RecordBatch::num_rows).sum(),
        }
    }

    /// Per batch, which rows are in the table (`None`: all of them).
    pub fn selection(&self) -> Option<&[BooleanArray]> {
        self.selection.as_deref()
    }

    /// Input position of row `row` of batch `batch` (0-based), when known.
    pub fn id(&self, batch: usize, row: usize) -> Option<u64> {
        let ids = self.ids.as_ref()?.get(batch)?;
        (row < self.batches.get(batch)?.num_rows()).then(|| ids.get(row))
    }

    /// Replaces every batch 1:1 (same rows, maybe other columns), in parallel. The
    /// selection carries over, so `f` also sees rows that were already removed.
    pub fn map<F>(self, schema: SchemaRef, f: F) -> Result<Table, StageError>
    where
        F: Fn(&RecordBatch) -> Result<RecordBatch, StageError> + Sync + Send,
    {
        let batches = self.batches.par_iter().map(f).collect::<Result<Vec<_>, _>>()?;
        Ok(Table { schema, batches, ids: self.ids, selection: self.selection })
    }

    /// The table with every NaN in its float columns made canonical (see
    /// [`crate::nan::canonical_nans`]),
    /// so every later op sees one NaN.
    pub fn canonical_nans(self) -> Result<Table, StageError> {
        let schema = self.schema.clone();
        self.map(schema, crate::nan::canonical_nan_batch)
    }

    /// One column over all batches as a single array (for ops that need global statistics).
    pub fn column(&self, index: usize) -> Result<ArrayRef, StageError> {
        let err = |e| StageError::arrow("joining column batches", e);
        let parts: Vec<ArrayRef> = match &self.selection {
            None => self.batches.iter().map(|b| b.column(index).clone()).collect(),
            Some(sel) => self
                .batches
                .iter()
                .zip(sel)
                .map(|(b, s)| filter(b.column(index), s))
                .collect::<Result<_, _>>()
                .map_err(err)?,
        };
        if parts.is_empty() {
            return Ok(arrow::array::new_empty_array(self.schema.field(index).data_type()));
        }
        let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        concat(&parts).map_err(err)
    }

    /// Removes the rows whose mask is false or NULL (rows already removed stay removed).
    /// Nothing is copied: the rows left are marked, and [`Table::materialize`] copies them
    /// when needed. Returns the input positions of the newly removed rows when `track`.
    pub fn keep(self, masks: Vec<BooleanArray>, track: bool) -> Result<(Table, Vec<u64>), StageError> {
        if masks.len() != self.batches.len() {
            return Err(StageError::Internal("a row mask per batch expected".into()));
        }
        let err = |e| StageError::arrow("removing rows", e);
        let old = self.selection;
        let ids = self.ids;
        let results = masks
            .into_par_iter()
            .enumerate()
            .map(|(i, mask)| {
                let mask = if mask.null_count() > 0 { prep_null_mask_filter(&mask) } else { mask };
                let before = old.as_ref().map(|s| &s[i]);
                let removed = match (track, ids.as_ref().and_then(|v| v.get(i))) {
                    (true, Some(id)) => {
                        let gone = match before {
                            Some(b) => and_not(b, &mask).map_err(err)?,
                            None => arrow::compute::not(&mask).map_err(err)?,
                        };
                        id.pick(&gone)
                    }
                    _ => Vec::new(),
                };
                let selection = match before {
                    Some(b) => and(b, &mask).map_err(err)?,
                    None => mask,
                };
                Ok((selection, removed))
            })
            .collect::<Result<Vec<_>, StageError>>()?;
        let mut selection = Vec::with_capacity(results.len());
        let mut removed = Vec::new();
        for (s, gone) in results {
            selection.push(s);
            removed.extend(gone);
        }
        let all = selection.iter().all(|s| s.true_count() == s.len());
        let table =
            Table { schema: self.schema, batches: self.batches, ids, selection: (!all).then_some(selection) };
        Ok((table, removed))
    }

    /// Keeps only the selected rows (in parallel), dropping emptied batches: afterwards
    /// `batches` holds exactly the table's rows. Columns clean alone holds are compacted in
    /// their own buffers, others copied (see [`compact`]).
    pub fn materialize(self) -> Result<Table, StageError> {
        let Some(selection) = self.selection else { return Ok(self) };
        let err = |e| StageError::arrow("removing rows", e);
        let mut ids_known = self.ids.is_some();
        let ids: Vec<Option<RowIds>> = match self.ids {
            Some(ids) => ids.into_iter().map(Some).collect(),
            None => vec![None; self.batches.len()],
        };
        let results = self
            .batches
            .into_par_iter()
            .zip(selection.into_par_iter())
            .zip(ids.into_par_iter())
            .filter(|((_, mask), _)| mask.true_count() > 0)
            .map(|((batch, mask), id)| {
                let rows = mask.true_count();
                if rows == mask.len() {
                    return Ok((batch, id));
                }
                let predicate = FilterBuilder::new(&mask).optimize().build();
                let (schema, columns, _) = batch.into_parts();
                let columns = columns
                    .into_iter()
                    .map(|c| compact(c, &mask, &predicate))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                let options = RecordBatchOptions::new().with_row_count(Some(rows));
                let kept = RecordBatch::try_new_with_options(schema, columns, &options).map_err(err)?;
                let kept_ids = id.map(|ids| RowIds::Each(UInt64Array::from(ids.pick(&mask))));
                Ok((kept, kept_ids))
            })
            .collect::<Result<Vec<_>, StageError>>()?;
        let mut batches = Vec::with_capacity(results.len());
        let mut new_ids = Vec::with_capacity(results.len());
        for (batch, id) in results {
            match id {
                Some(id) => new_ids.push(id),
                None => ids_known = false,
            }
            batches.push(batch);
        }
        Ok(Table::new(self.schema, batches, ids_known.then_some(new_ids)))
    }
}

/// The input positions of one batch's rows.
#[derive(Debug, Clone)]
pub enum RowIds {
    /// Consecutive from this position: the batch as it came in. Numbering every input row
    /// up front would write 8 bytes per row that most runs never read.
    From(u64),
    /// One position per row, once rows have been removed.
    Each(UInt64Array),
}

impl RowIds {
    /// The input position of `row` (which must be a row of the batch).
    pub fn get(&self, row: usize) -> u64 {
        match self {
            RowIds::From(first) => first + row as u64,
            RowIds::Each(ids) => ids.value(row),
        }
    }

    /// The input positions of the rows where `mask` is true (`mask` has no NULLs).
    pub fn pick(&self, mask: &BooleanArray) -> Vec<u64> {
        let rows = mask.values().set_indices();
        // Sized up front: collecting from `set_indices` would grow the vector by doubling.
        let mut picked = Vec::with_capacity(mask.values().count_set_bits());
        match self {
            RowIds::From(first) => picked.extend(rows.map(|r| first + r as u64)),
            RowIds::Each(ids) => picked.extend(rows.map(|r| ids.value(r))),
        }
        picked
    }
}

/// What one operation did: the rows it left, and the input positions of those it removed
/// (with a reason per removed row when the op has one, e.g. the value a cast refused).
#[derive(Debug)]
pub struct Applied {
    /// The rows after the op.
    pub table: Table,
    /// Input positions of removed rows (only when rejects are kept).
    pub removed: Vec<u64>,
    /// One reason per entry of `removed`, when the op gives reasons.
    pub reasons: Option<Vec<String>>,
    /// Rows removed (counted even when positions are not kept).
    pub removed_count: u64,
    /// Op-specific counters for the run record (`null_rows`, `filled`).
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

impl Applied {
    /// An op that removed nothing.
    pub fn same(table: Table) -> Self {
        Applied { table, removed: Vec::new(), reasons: None, removed_count: 0, extra: Vec::new() }
    }

    /// An op that kept the rows of `masks`.
    pub fn kept(table: Table, masks: Vec<BooleanArray>, track: bool) -> Result<Self, StageError> {
        let before = table.rows();
        let (table, removed) = table.keep(masks, track)?;
        let removed_count = (before - table.rows()) as u64;
        Ok(Applied { table, removed, reasons: None, removed_count, extra: Vec::new() })
    }

    /// Adds a counter.
    pub fn with(mut self, name: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.push((name, value.into()));
        self
    }
}

/// Why an op failed: bad data or config that points at the op's key (row, value), or the
/// machinery around it.
#[derive(Debug)]
pub enum OpError {
    /// Points at a config key.
    Issue(sluice_core::registry::Issue),
    /// Anything else.
    Stage(StageError),
}

impl From<StageError> for OpError {
    fn from(e: StageError) -> Self {
        OpError::Stage(e)
    }
}

/// A one-row array holding `value` cast to `ty`, usable as a scalar in compute kernels.
pub fn scalar_of(value: &str, ty: &arrow::datatypes::DataType) -> Result<ArrayRef, String> {
    let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![value]));
    let options = arrow::compute::CastOptions { safe: false, ..Default::default() };
    arrow::compute::cast_with_options(&text, ty, &options).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;

    use super::*;

    fn table(parts: &[&[Option<i64>]]) -> Table {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let batches = parts
            .iter()
            .map(|p| {
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(p.to_vec()))]).unwrap()
            })
            .collect();
        Table::from_input(schema, batches)
    }

    #[test]
    fn keep_tracks_input_positions_across_batches_and_treats_null_as_remove() {
        let t = table(&[&[Some(1), Some(2)], &[], &[Some(3), None, Some(5)]]);
        assert_eq!(t.batches.len(), 2, "empty batches are dropped");
        let masks = vec![
            BooleanArray::from(vec![true, false]),
            BooleanArray::from(vec![Some(true), None, Some(false)]),
        ];
        let (kept, removed) = t.keep(masks, true).unwrap();
        assert_eq!(removed, [1, 3, 4]);
        assert_eq!(kept.rows(), 2);
        let kept = kept.materialize().unwrap();
        assert_eq!(kept.id(1, 0), Some(2));
    }

    #[test]
    fn successive_removals_report_each_row_once_and_copy_only_when_materialized() {
        let t = table(&[&[Some(1), Some(2), Some(3)], &[Some(4), Some(5)]]);
        let first = vec![BooleanArray::from(vec![true, false, true]), BooleanArray::from(vec![true, true])];
        let (t, removed) = t.keep(first, true).unwrap();
        assert_eq!(removed, [1]);
        assert_eq!(t.rows(), 4);
        assert_eq!(t.batches[0].num_rows(), 3, "nothing copied yet");
        assert_eq!(t.column(0).unwrap().len(), 4, "a column holds the rows left only");
        // Row 1 is already gone: removing it again must not count it twice.
        let second =
            vec![BooleanArray::from(vec![true, false, false]), BooleanArray::from(vec![false, true])];
        let (t, removed) = t.keep(second, true).unwrap();
        assert_eq!(removed, [2, 3]);
        assert_eq!(t.rows(), 2);
        let t = t.materialize().unwrap();
        let values: Vec<i64> = t
            .batches
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect();
        assert_eq!(values, [1, 5]);
        assert_eq!((t.id(0, 0), t.id(1, 0)), (Some(0), Some(4)));
        assert!(t.selection().is_none());
    }

    #[test]
    fn keep_everything_and_nothing() {
        let t = table(&[&[Some(1), Some(2)]]);
        let (kept, removed) = t.clone().keep(vec![BooleanArray::from(vec![true, true])], true).unwrap();
        assert_eq!((kept.rows(), removed.len()), (2, 0));
        let (kept, removed) = t.keep(vec![BooleanArray::from(vec![false, false])], false).unwrap();
        let kept = kept.materialize().unwrap();
        assert_eq!((kept.rows(), kept.batches.len(), removed.len()), (0, 0, 0));
        assert_eq!(kept.column(0).unwrap().len(), 0);
    }

    /// Batches of small values, each row maybe NULL.
    fn batches() -> impl Strategy<Value = Vec<Vec<Option<i64>>>> {
        proptest::collection::vec(proptest::collection::vec(proptest::option::of(0i64..5), 0..12), 0..4)
    }

    proptest! {
        /// Removing rows step by step by marking them, then copying once, keeps and reports
        /// exactly the rows that filtering after every step would.
        #[test]
        fn marking_then_copying_once_equals_filtering_every_step(
            parts in batches(),
            seeds in proptest::collection::vec(any::<u64>(), 1..5),
        ) {
            let slices: Vec<&[Option<i64>]> = parts.iter().map(Vec::as_slice).collect();
            let mut t = table(&slices);
            // The model: (input position, value) of every row still in the table.
            let mut model: Vec<(u64, Option<i64>)> =
                parts.iter().filter(|p| !p.is_empty()).flatten().copied().enumerate().map(|(i, v)| (i as u64, v)).collect();
            for seed in seeds {
                // A mask over every row of each batch, removed ones included; NULL removes.
                let verdict = |id: u64| match (id.wrapping_mul(seed | 1) >> 7) % 3 {
                    0 => Some(true),
                    1 => Some(false),
                    _ => None,
                };
                let masks: Vec<BooleanArray> = t.batches.iter().enumerate().map(|(bi, b)| {
                    BooleanArray::from((0..b.num_rows()).map(|r| verdict(t.id(bi, r).unwrap())).collect::<Vec<_>>())
                }).collect();
                let (kept, removed) = t.keep(masks, true).unwrap();
                let gone: Vec<u64> = model.iter().filter(|(id, _)| verdict(*id) != Some(true)).map(|(id, _)| *id).collect();
                model.retain(|(id, _)| verdict(*id) == Some(true));
                prop_assert_eq!(removed, gone);
                prop_assert_eq!(kept.rows(), model.len());
                // Sometimes copy in between: positions then come from the kept rows' ids.
                t = if seed % 2 == 1 { kept.materialize().unwrap() } else { kept };
            }
            let t = t.materialize().unwrap();
            let mut got = Vec::new();
            for (b, batch) in t.batches.iter().enumerate() {
                let values = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                for r in 0..batch.num_rows() {
                    got.push((t.id(b, r).unwrap(), values.is_valid(r).then(|| values.value(r))));
                }
            }
            prop_assert_eq!(got, model);
        }
    }

    #[test]
    fn scalar_of_converts_or_explains() {
        assert_eq!(scalar_of("7", &DataType::Int64).unwrap().len(), 1);
        assert!(scalar_of("seven", &DataType::Int64).is_err());
    }
}
