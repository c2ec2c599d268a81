//! `tfidf = { column = "Description", key = "StockCode", max_features = 1000, min_df = 2 }`:
//! TF-IDF weights in long format, one row per (document, term) with a non-zero weight:
//! `KEY` (or `row`, the 0-based input row, without `key`), `term`, `tfidf`.
//!
//! Documents are rows, or with `key` all rows sharing a key (in order of first appearance;
//! rows with a null key are dropped and counted). Text is lowercased and split on every
//! character that is not a letter or digit; tokens of one character are ignored. The
//! vocabulary keeps terms in at least `min_df` documents, then the `max_features` most
//! frequent over the corpus (ties: smaller term first), and is ordered by term (byte order).
//! Weight = count × (ln((1 + n) / (1 + df)) + 1), scaled so each document's vector has
//! length 1 (the scikit-learn defaults).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringArray, UInt64Array};
use arrow::compute::{cast, concat, take};
use arrow::datatypes::{DataType, Field, Schema};
use sluice_core::registry::Issue;

use super::columns::{Accepts, find};
use super::config::At;
use super::step::{Applied, Failure, Transform};
use super::table::Table;

/// The `tfidf` transform.
#[derive(Debug)]
pub(crate) struct Tfidf {
    column: (String, String),
    key: Option<(String, String)>,
    max_features: Option<usize>,
    min_df: usize,
}

/// Lowercased tokens of at least two characters, split at anything not alphanumeric.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| t.chars().nth(1).is_some()).map(str::to_lowercase)
}

/// One array over all batches.
fn whole(arrays: &[ArrayRef], ty: &DataType) -> Result<ArrayRef, Failure> {
    if arrays.is_empty() {
        return Ok(arrow::array::new_empty_array(ty));
    }
    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
    Ok(concat(&refs)?)
}

impl Tfidf {
    /// Reads `tfidf = { column, key, max_features, min_df }`.
    pub fn parse(at: &At<'_>) -> Result<Self, Issue> {
        at.only(&["column", "key", "max_features", "min_df"], &["column"])?;
        let c = at.require("column")?;
        let key = at.get("key").map(|k| Ok::<_, Issue>((k.str()?.to_string(), k.key.clone()))).transpose()?;
        let max_features = at.get("max_features").map(|m| m.positive()).transpose()?;
        let min_df = at.get("min_df").map(|m| m.positive()).transpose()?.unwrap_or(1);
        Ok(Tfidf { column: (c.str()?.to_string(), c.key.clone()), key, max_features, min_df })
    }

    fn schema(&self, input: &Schema) -> Result<Arc<Schema>, Issue> {
        let key_field = match &self.key {
            Some((k, key)) => {
                let (_, f) = find(input, k, Accepts::Ordered, key, "tfidf key")?;
                Field::new(k, f.data_type().clone(), true)
            }
            None => Field::new("row", DataType::UInt64, false),
        };
        Ok(Arc::new(Schema::new(vec![
            key_field,
            Field::new("term", DataType::Utf8, false),
            Field::new("tfidf", DataType::Float64, false),
        ])))
    }
}

impl Transform for Tfidf {
    fn op(&self) -> &'static str {
        "tfidf"
    }

    fn check(&self, input: &Schema) -> Vec<Issue> {
        let mut issues: Vec<Issue> =
            find(input, &self.column.0, Accepts::Text, &self.column.1, "tfidf").err().into_iter().collect();
        issues.extend(self.schema(input).err());
        issues
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        let (ci, _) = find(&input.schema, &self.column.0, Accepts::Text, &self.column.1, "tfidf")?;
        let schema = self.schema(&input.schema)?;
        let text = whole(&input.column(ci), &DataType::Utf8)?;
        let text = cast(&text, &DataType::Utf8)?;
        let text =
            text.as_any().downcast_ref::<StringArray>().cloned().unwrap_or_else(|| StringArray::new_null(0));

        // Documents: (first input row, term id → count).
        let mut term_ids: HashMap<String, usize> = HashMap::new();
        let mut terms: Vec<String> = Vec::new();
        let mut docs: Vec<(u64, HashMap<usize, u32>)> = Vec::new();
        let mut dropped = 0u64;
        let key_values = match &self.key {
            Some((k, key)) => {
                let (ki, _) = find(&input.schema, k, Accepts::Ordered, key, "tfidf key")?;
                Some(whole(&input.column(ki), input.schema.field(ki).data_type())?)
            }
            None => None,
        };
        let key_text = match &key_values {
            Some(k) => {
                let t = cast(k, &DataType::Utf8)?;
                Some(
                    t.as_any()
                        .downcast_ref::<StringArray>()
                        .cloned()
                        .unwrap_or_else(|| StringArray::new_null(0)),
                )
            }
            None => None,
        };
        let mut doc_of_key: HashMap<&str, usize> = HashMap::new();
        for row in 0..text.len() {
            let doc = match &key_text {
                Some(keys) if keys.is_null(row) => {
                    dropped += 1;
                    continue;
                }
                Some(keys) => *doc_of_key.entry(keys.value(row)).or_insert_with(|| {
                    docs.push((row as u64, HashMap::new()));
                    docs.len() - 1
                }),
                None => {
                    docs.push((row as u64, HashMap::new()));
                    docs.len() - 1
                }
            };
            if text.is_null(row) {
                continue;
            }
            for t in tokens(text.value(row)) {
                let id = match term_ids.get(&t) {
                    Some(id) => *id,
                    None => {
                        terms.push(t.clone());
                        term_ids.insert(t, terms.len() - 1);
                        terms.len() - 1
                    }
                };
                *docs[doc].1.entry(id).or_insert(0) += 1;
            }
        }

        // Document frequency and corpus frequency per term, then the vocabulary.
        let mut df = vec![0u64; terms.len()];
        let mut total = vec![0u64; terms.len()];
        for (_, counts) in &docs {
            for (id, n) in counts {
                df[*id] += 1;
                total[*id] += u64::from(*n);
            }
        }
        let mut vocab: Vec<usize> = (0..terms.len()).filter(|id| df[*id] >= self.min_df as u64).collect();
        if let Some(max) = self.max_features {
            vocab.sort_unstable_by(|a, b| total[*b].cmp(&total[*a]).then_with(|| terms[*a].cmp(&terms[*b])));
            vocab.truncate(max);
        }
        vocab.sort_unstable_by(|a, b| terms[*a].cmp(&terms[*b]));
        let rank: HashMap<usize, usize> = vocab.iter().enumerate().map(|(r, id)| (*id, r)).collect();
        let n = docs.len() as f64;
        let idf: Vec<f64> = vocab.iter().map(|id| ((1.0 + n) / (1.0 + df[*id] as f64)).ln() + 1.0).collect();

        let (mut rows, mut out_terms, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (first_row, counts) in &docs {
            let mut entries: Vec<(usize, f64)> = counts
                .iter()
                .filter_map(|(id, c)| rank.get(id).map(|r| (*r, f64::from(*c) * idf[*r])))
                .collect();
            entries.sort_unstable_by_key(|(r, _)| *r);
            let norm = entries.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
            for (r, w) in entries {
                rows.push(*first_row);
                out_terms.push(terms[vocab[r]].as_str());
                weights.push(w / norm);
            }
        }
        let rows = UInt64Array::from(rows);
        let key_column: ArrayRef = match &key_values {
            Some(k) => take(k.as_ref(), &rows, None)?,
            None => Arc::new(rows),
        };
        let columns: Vec<ArrayRef> =
            vec![key_column, Arc::new(StringArray::from(out_terms)), Arc::new(Float64Array::from(weights))];
        let batch = arrow::array::RecordBatch::try_new(Arc::clone(&schema), columns)?;
        let batches = if batch.num_rows() > 0 { vec![batch] } else { Vec::new() };
        Ok(Applied { table: Table::new(schema, batches), dropped })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::Int64Array;
    use serde_json::json;

    use super::*;
    use crate::feature::testing::{batch, f64s, i64s, strs};

    fn docs() -> Table {
        batch(vec![
            ("id", Arc::new(Int64Array::from(vec![Some(7), Some(7), Some(9), None]))),
            (
                "Description",
                Arc::new(StringArray::from(vec![
                    Some("Red MUG, red"),
                    Some("mug"),
                    Some("Blue mug à café"),
                    Some("x"),
                ])),
            ),
        ])
    }

    #[test]
    fn per_row_weights_match_the_formula() {
        let v = json!({ "column": "Description" });
        let out = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(docs()).unwrap().table;
        let terms = strs(&out, "term");
        let rows = i64s(&out, "row");
        // Row 0: red ×2, mug ×1; row 1: mug; row 2: blue, mug, café; row 3: no tokens.
        assert_eq!(rows, [0, 0, 1, 2, 2, 2].map(Some).to_vec());
        assert_eq!(terms, ["mug", "red", "mug", "blue", "café", "mug"].map(|s| Some(s.to_string())).to_vec());
        let n = 4.0f64;
        let idf = |df: f64| ((1.0 + n) / (1.0 + df)).ln() + 1.0;
        let (mug, red) = (idf(3.0), 2.0 * idf(1.0));
        let w = f64s(&out, "tfidf");
        let norm = (mug * mug + red * red).sqrt();
        assert!((w[0].unwrap() - mug / norm).abs() < 1e-12);
        assert!((w[1].unwrap() - red / norm).abs() < 1e-12);
        assert_eq!(w[2], Some(1.0));
    }

    #[test]
    fn keyed_documents_min_df_and_max_features() {
        let v = json!({ "column": "Description", "key": "id", "min_df": 2 });
        let out = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(docs()).unwrap();
        assert_eq!(out.dropped, 1, "the row with a null key");
        assert_eq!(i64s(&out.table, "id"), vec![Some(7), Some(9)]);
        assert_eq!(strs(&out.table, "term"), vec![Some("mug".to_string()), Some("mug".to_string())]);

        let v = json!({ "column": "Description", "max_features": 2 });
        let out = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(docs()).unwrap().table;
        let mut terms: Vec<String> = strs(&out, "term").into_iter().flatten().collect();
        terms.dedup();
        assert_eq!(terms, ["mug", "red", "mug"], "mug (3) and red (2) are the most frequent");
    }

    #[test]
    fn empty_and_all_null_input() {
        let t = batch(vec![("Description", Arc::new(StringArray::from(vec![None::<&str>, None])))]);
        let v = json!({ "column": "Description" });
        let x = Tfidf::parse(&At::new("tfidf", &v)).unwrap();
        let out = x.apply(t.clone()).unwrap().table;
        assert_eq!(out.rows(), 0);
        assert_eq!(out.schema.fields().len(), 3);
        let issues = x.check(&batch(vec![("Description", Arc::new(Int64Array::from(vec![1])))]).schema);
        assert!(issues[0].message.contains("text"), "{}", issues[0].message);
    }
}
