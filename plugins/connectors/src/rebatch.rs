//! Regrouping a reader's record batches to at most the requested batch size: large parsed
//! blocks pass on uncopied (cut to size), small ones are merged, so no batch is oversized
//! and tiny blocks do not become tiny batches.

use std::collections::VecDeque;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// Buffers batches of any size and hands them out at most `size` rows at a time.
#[derive(Debug)]
pub(crate) struct Rebatcher {
    schema: SchemaRef,
    size: usize,
    queue: VecDeque<RecordBatch>,
    rows: usize,
}

impl Rebatcher {
    /// A rebatcher producing batches of `size` rows (at least 1).
    pub(crate) fn new(schema: SchemaRef, size: usize) -> Self {
        Rebatcher { schema, size: size.max(1), queue: VecDeque::new(), rows: 0 }
    }

    /// Adds rows.
    pub(crate) fn push(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.rows += batch.num_rows();
            self.queue.push_back(batch);
        }
    }

    /// The next batch, if one is ready: the oldest buffered batch as it is (sliced to at
    /// most `size` rows) when it holds at least a quarter of `size`, else `size` rows merged
    /// from small ones once that many are buffered.
    pub(crate) fn pop_full(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        match self.queue.front().map(RecordBatch::num_rows) {
            Some(front) if front >= self.pass_through() => self.take(front.min(self.size)).map(Some),
            _ if self.rows >= self.size => self.take(self.size).map(Some),
            _ => Ok(None),
        }
    }

    /// What is left, at most `size` rows at a time (at the end of the input).
    pub(crate) fn pop_rest(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if let Some(b) = self.pop_full()? {
            return Ok(Some(b));
        }
        if self.rows > 0 { self.take(self.rows.min(self.size)).map(Some) } else { Ok(None) }
    }

    /// Batches at least this large are handed on uncopied: merging them would copy every
    /// row once more (and fault in fresh memory for it) for no gain downstream.
    fn pass_through(&self) -> usize {
        (self.size / 4).max(1)
    }

    fn take(&mut self, n: usize) -> Result<RecordBatch, ArrowError> {
        let mut pieces = Vec::new();
        let mut need = n;
        while need > 0 {
            let Some(front) = self.queue.pop_front() else { break };
            let len = front.num_rows();
            if len <= need {
                need -= len;
                pieces.push(front);
            } else {
                // Slicing is zero-copy; only batches straddling a boundary get copied below.
                pieces.push(front.slice(0, need));
                self.queue.push_front(front.slice(need, len - need));
                need = 0;
            }
        }
        self.rows -= n - need;
        match pieces.len() {
            1 => Ok(pieces.swap_remove(0)),
            _ => concat_batches(&self.schema, &pieces),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(schema: &SchemaRef, vals: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(vals))]).unwrap()
    }

    fn drain(r: &mut Rebatcher) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        while let Some(b) = r.pop_full().unwrap() {
            out.push(b);
        }
        while let Some(b) = r.pop_rest().unwrap() {
            out.push(b);
        }
        out
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        let all = concat_batches(&batches[0].schema(), batches).unwrap();
        all.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
    }

    #[test]
    fn small_batches_are_merged_and_large_ones_split_in_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let mut r = Rebatcher::new(schema.clone(), 8);
        // Below a quarter of the size: buffered until 8 rows can be merged.
        r.push(batch(&schema, 0..1));
        assert!(r.pop_full().unwrap().is_none());
        for i in 1..9 {
            r.push(batch(&schema, i..i + 1));
        }
        r.push(batch(&schema, 9..30));
        let out = drain(&mut r);
        let sizes: Vec<_> = out.iter().map(RecordBatch::num_rows).collect();
        // 8 merged singles; then the 9th single with 7 rows of the big batch; then the rest
        // of the big batch (14 rows) is passed through, cut at 8.
        assert_eq!(sizes, [8, 8, 8, 6]);
        assert_eq!(values(&out), (0..30).collect::<Vec<_>>());
        assert!(r.pop_rest().unwrap().is_none());
    }

    #[test]
    fn batches_of_a_quarter_of_the_size_or_more_pass_through_uncopied() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let mut r = Rebatcher::new(schema.clone(), 8);
        let input = batch(&schema, 0..3);
        r.push(input.clone());
        let out = r.pop_full().unwrap().expect("3 rows are at least a quarter of 8");
        assert_eq!(
            out.column(0).to_data().buffers()[0].as_ptr(),
            input.column(0).to_data().buffers()[0].as_ptr()
        );
        r.push(batch(&schema, 3..5));
        assert_eq!(drain(&mut r).iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [2]);
    }
}
