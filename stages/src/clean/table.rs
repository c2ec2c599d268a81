//! The data as it flows between clean operations: batches plus, per batch, the position of
//! every row in the stage's input, so a removed row can be reported as it came in.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt64Array};
use arrow::compute::kernels::boolean::not;
use arrow::compute::{concat, filter, filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use sluice_core::StageError;

/// Batches with their input row positions.
#[derive(Debug, Clone)]
pub struct Table {
    /// Schema of every batch.
    pub schema: SchemaRef,
    /// The rows, in input order.
    pub batches: Vec<RecordBatch>,
    /// Input row position of each row, batch by batch; `None` once a `sql` step has
    /// replaced the rows with a query result that no longer maps onto the input.
    pub ids: Option<Vec<UInt64Array>>,
}

impl Table {
    /// The stage input, rows numbered from 0 in input order.
    pub fn from_input(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let mut next = 0u64;
        let ids = batches
            .iter()
            .map(|b| {
                let n = b.num_rows() as u64;
                let ids = UInt64Array::from_iter_values(next..next + n);
                next += n;
                ids
            })
            .collect();
        Table { schema, batches, ids: Some(ids) }
    }

    /// Row count.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Input position of row `row` of batch `batch` (0-based), when known.
    pub fn id(&self, batch: usize, row: usize) -> Option<u64> {
        self.ids.as_ref().and_then(|ids| ids.get(batch)).filter(|a| row < a.len()).map(|a| a.value(row))
    }

    /// Replaces every batch 1:1 (same rows, maybe other columns), in parallel.
    pub fn map<F>(self, schema: SchemaRef, f: F) -> Result<Table, StageError>
    where
        F: Fn(&RecordBatch) -> Result<RecordBatch, StageError> + Sync + Send,
    {
        let batches = self.batches.par_iter().map(f).collect::<Result<Vec<_>, _>>()?;
        Ok(Table { schema, batches, ids: self.ids })
    }

    /// One column over all batches as a single array (for ops that need global statistics).
    pub fn column(&self, index: usize) -> Result<ArrayRef, StageError> {
        let parts: Vec<&dyn Array> = self.batches.iter().map(|b| b.column(index).as_ref()).collect();
        if parts.is_empty() {
            return Ok(arrow::array::new_empty_array(self.schema.field(index).data_type()));
        }
        concat(&parts).map_err(|e| StageError::arrow("joining column batches", e))
    }

    /// Keeps the rows whose mask is true (false and NULL remove the row). Returns the kept
    /// table and the input positions of the removed rows (when `track`), batch by batch.
    pub fn keep(self, masks: Vec<BooleanArray>, track: bool) -> Result<(Table, Vec<u64>), StageError> {
        if masks.len() != self.batches.len() {
            return Err(StageError::Internal("a row mask per batch expected".into()));
        }
        let ids = self.ids;
        let results = self
            .batches
            .into_par_iter()
            .zip(masks.into_par_iter())
            .enumerate()
            .map(|(i, (batch, mask))| {
                let mask = if mask.null_count() > 0 { prep_null_mask_filter(&mask) } else { mask };
                let kept_all = mask.true_count() == mask.len();
                let id = ids.as_ref().and_then(|v| v.get(i));
                if kept_all {
                    return Ok((batch, id.cloned(), Vec::new()));
                }
                let kept =
                    filter_record_batch(&batch, &mask).map_err(|e| StageError::arrow("removing rows", e))?;
                let (kept_ids, removed) = match id {
                    Some(id) => {
                        let kept_ids =
                            filter(id, &mask).map_err(|e| StageError::arrow("removing rows", e))?;
                        let kept_ids = kept_ids.as_any().downcast_ref::<UInt64Array>().cloned();
                        let removed = if track {
                            let gone = not(&mask).map_err(|e| StageError::arrow("removing rows", e))?;
                            let gone =
                                filter(id, &gone).map_err(|e| StageError::arrow("removing rows", e))?;
                            gone.as_any()
                                .downcast_ref::<UInt64Array>()
                                .map(|a| a.values().to_vec())
                                .unwrap_or_default()
                        } else {
                            Vec::new()
                        };
                        (kept_ids, removed)
                    }
                    None => (None, Vec::new()),
                };
                Ok((kept, kept_ids, removed))
            })
            .collect::<Result<Vec<_>, StageError>>()?;
        let mut batches = Vec::with_capacity(results.len());
        let mut new_ids = Vec::with_capacity(results.len());
        let mut removed = Vec::new();
        let mut ids_known = ids.is_some();
        for (batch, id, gone) in results {
            removed.extend(gone);
            if batch.num_rows() == 0 {
                continue;
            }
            match id {
                Some(id) => new_ids.push(id),
                None => ids_known = false,
            }
            batches.push(batch);
        }
        Ok((Table { schema: self.schema, batches, ids: ids_known.then_some(new_ids) }, removed))
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
        assert_eq!(kept.id(1, 0), Some(2));
    }

    #[test]
    fn keep_everything_and_nothing() {
        let t = table(&[&[Some(1), Some(2)]]);
        let (kept, removed) = t.clone().keep(vec![BooleanArray::from(vec![true, true])], true).unwrap();
        assert_eq!((kept.rows(), removed.len()), (2, 0));
        let (kept, removed) = t.keep(vec![BooleanArray::from(vec![false, false])], false).unwrap();
        assert_eq!((kept.rows(), kept.batches.len(), removed.len()), (0, 0, 0));
        assert_eq!(kept.column(0).unwrap().len(), 0);
    }

    #[test]
    fn scalar_of_converts_or_explains() {
        assert_eq!(scalar_of("7", &DataType::Int64).unwrap().len(), 1);
        assert!(scalar_of("seven", &DataType::Int64).is_err());
    }
}
