//! `tfidf = { column = "Description", key = "StockCode", max_features = 1000, min_df = 2 }`:
//! TF-IDF weights of a text column.
//!
//! Long format (the default): one row per (document, term) with a non-zero weight — `KEY`
//! (or `row`, the 0-based input row, without `key`), `term`, `tfidf`. Wide format
//! (`format = "wide"`): one row per document, the key (or `row`) then one float64 column
//! per vocabulary term, named `PREFIX + term` — what a model stage consumes directly.
//!
//! Documents are rows, or with `key` all rows sharing a key (in order of first appearance;
//! rows with a null key are dropped and counted). Text is lowercased and split on every
//! character that is not a letter or digit; tokens of one character and `stop_words` are
//! ignored. The vocabulary keeps terms whose document frequency lies within `min_df` and
//! `max_df` (each a count, or a fraction of the documents when written with a decimal
//! point), then the `max_features` most frequent over the corpus (ties: smaller term first),
//! and is ordered by term (byte order). Weight = count × (ln((1 + n) / (1 + df)) + 1), scaled
//! so each document's vector has length 1 (the scikit-learn defaults).

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

/// Most columns wide format creates without an explicit `max_features`: past this, a
/// vocabulary is almost surely an accident (a free-text column) rather than features.
const WIDE_COLUMNS_LIMIT: usize = 10_000;

/// A document-frequency bound: an absolute count, or a fraction of the documents.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DocFrequency {
    Count(u64),
    Fraction(f64),
}

impl DocFrequency {
    /// Reads an integer ≥ 1 (a count) or a number in (0, 1] written with a decimal point.
    fn parse(at: &At<'_>) -> Result<Self, Issue> {
        if let Some(n) = at.value.as_u64() {
            if n >= 1 {
                return Ok(DocFrequency::Count(n));
            }
        } else if let Some(f) = at.value.as_f64()
            && f > 0.0
            && f <= 1.0
        {
            return Ok(DocFrequency::Fraction(f));
        }
        Err(at
            .expected("a document count of at least 1 or a fraction in (0, 1]")
            .with_help("e.g. 2 (documents) or 0.5 (half of the documents)"))
    }

    /// The bound in documents out of `n`; fractions round like scikit-learn (min up, max down).
    fn documents(self, n: usize, round_up: bool) -> u64 {
        match self {
            DocFrequency::Count(c) => c,
            DocFrequency::Fraction(f) if round_up => (f * n as f64).ceil() as u64,
            DocFrequency::Fraction(f) => (f * n as f64).floor() as u64,
        }
    }
}

/// Output layout.
#[derive(Debug, Clone, PartialEq)]
enum Format {
    /// One row per (document, term).
    Long,
    /// One row per document, one column per term named `prefix + term`.
    Wide { prefix: String },
}

/// The `tfidf` transform.
#[derive(Debug)]
pub(crate) struct Tfidf {
    column: (String, String),
    key: Option<(String, String)>,
    max_features: Option<usize>,
    min_df: DocFrequency,
    max_df: Option<DocFrequency>,
    stop_words: std::collections::HashSet<String>,
    format: Format,
    /// Config key of the stage's `tfidf`, for data-dependent errors.
    at: String,
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
    /// Reads `tfidf = { column, key, max_features, min_df, max_df, stop_words, format, prefix }`.
    pub fn parse(at: &At<'_>) -> Result<Self, Issue> {
        at.only(
            &["column", "key", "max_features", "min_df", "max_df", "stop_words", "format", "prefix"],
            &["column"],
        )?;
        let c = at.require("column")?;
        let key = at.get("key").map(|k| Ok::<_, Issue>((k.str()?.to_string(), k.key.clone()))).transpose()?;
        let max_features = at.get("max_features").map(|m| m.positive()).transpose()?;
        let min_df =
            at.get("min_df").map(|m| DocFrequency::parse(&m)).transpose()?.unwrap_or(DocFrequency::Count(1));
        let max_df = at.get("max_df").map(|m| DocFrequency::parse(&m)).transpose()?;
        // Bounds of one kind are compared now; a count against a fraction when the
        // number of documents is known (`apply`).
        if let (Some(m), Some(max)) = (at.get("max_df"), max_df) {
            let crossed = match (min_df, max) {
                (DocFrequency::Count(lo), DocFrequency::Count(hi)) => lo > hi,
                (DocFrequency::Fraction(lo), DocFrequency::Fraction(hi)) => lo > hi,
                _ => false,
            };
            if crossed {
                return Err(m.issue("`max_df` is below `min_df`: no term could be kept"));
            }
        }
        let stop_words = match at.get("stop_words") {
            Some(w) => w.strings()?.iter().map(|s| s.to_lowercase()).collect(),
            None => Default::default(),
        };
        let prefix = at.get("prefix").map(|p| p.str().map(str::to_string)).transpose()?;
        let format = match at.get("format") {
            None => Format::Long,
            Some(f) => match f.str()? {
                "long" => Format::Long,
                "wide" => Format::Wide { prefix: prefix.clone().unwrap_or_else(|| "tfidf_".to_string()) },
                other => {
                    return Err(f.issue(format!("unknown tfidf format `{other}`")).with_help(
                        "expected \"long\" (a row per document and term) or \"wide\" (a column per term)",
                    ));
                }
            },
        };
        if let (Some(p), Format::Long) = (at.get("prefix"), &format) {
            return Err(p
                .issue("`prefix` names the term columns of `format = \"wide\"`")
                .with_help("add format = \"wide\" or remove `prefix`"));
        }
        Ok(Tfidf {
            column: (c.str()?.to_string(), c.key.clone()),
            key,
            max_features,
            min_df,
            max_df,
            stop_words,
            format,
            at: at.key.clone(),
        })
    }

    fn key_field(&self, input: &Schema) -> Result<Field, Issue> {
        Ok(match &self.key {
            Some((k, key)) => {
                let (_, f) = find(input, k, Accepts::Ordered, key, "tfidf key")?;
                Field::new(k, f.data_type().clone(), true)
            }
            None => Field::new("row", DataType::UInt64, false),
        })
    }

    /// The long format's schema (wide depends on the vocabulary).
    fn long_schema(&self, input: &Schema) -> Result<Arc<Schema>, Issue> {
        Ok(Arc::new(Schema::new(vec![
            self.key_field(input)?,
            Field::new("term", DataType::Utf8, false),
            Field::new("tfidf", DataType::Float64, false),
        ])))
    }

    /// The fewest and most documents a kept term may occur in, out of `docs`.
    fn bounds(&self, docs: usize) -> (u64, u64) {
        (self.min_df.documents(docs, true), self.max_df.map_or(u64::MAX, |m| m.documents(docs, false)))
    }

    /// Term ids kept, ordered by term: document-frequency bounds, then `max_features`.
    fn vocabulary(&self, terms: &[String], df: &[u64], total: &[u64], docs: usize) -> Vec<usize> {
        let (low, high) = self.bounds(docs);
        let mut vocab: Vec<usize> = (0..terms.len()).filter(|id| df[*id] >= low && df[*id] <= high).collect();
        if let Some(max) = self.max_features {
            vocab.sort_unstable_by(|a, b| total[*b].cmp(&total[*a]).then_with(|| terms[*a].cmp(&terms[*b])));
            vocab.truncate(max);
        }
        vocab.sort_unstable_by(|a, b| terms[*a].cmp(&terms[*b]));
        vocab
    }
}

impl Transform for Tfidf {
    fn op(&self) -> &'static str {
        "tfidf"
    }

    fn check(&self, input: &Schema) -> Vec<Issue> {
        let mut issues: Vec<Issue> =
            find(input, &self.column.0, Accepts::Text, &self.column.1, "tfidf").err().into_iter().collect();
        issues.extend(self.key_field(input).err());
        if self.format == Format::Long
            && let Some((k, key)) = &self.key
            && (k == "term" || k == "tfidf")
        {
            issues.push(
                Issue::new(
                    key.clone(),
                    format!(
                        "the long format's columns are `{k}`, `term` and `tfidf`: `{k}` would appear twice"
                    ),
                )
                .with_help("rename the key column first (derive), or use format = \"wide\""),
            );
        }
        issues
    }

    fn schema_is_static(&self) -> bool {
        self.format == Format::Long
    }

    fn apply(&self, input: Table) -> Result<Applied, Failure> {
        let (ci, _) = find(&input.schema, &self.column.0, Accepts::Text, &self.column.1, "tfidf")?;
        let key_field = self.key_field(&input.schema)?;
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
                if self.stop_words.contains(&t) {
                    continue;
                }
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
        let (low, high) = self.bounds(docs.len());
        // Without documents (the empty table schemas are derived from, or an empty input)
        // a fraction is a bound of 0 out of 0: nothing to refuse, the output is just empty.
        if low > high && !docs.is_empty() {
            return Err(Failure::Config(Issue::new(
                format!("{}.max_df", self.at),
                format!(
                    "`max_df` allows at most {high} of the {} documents and `min_df` at least {low}: no term could be kept",
                    docs.len()
                ),
            )));
        }
        let vocab = self.vocabulary(&terms, &df, &total, docs.len());
        let rank: HashMap<usize, usize> = vocab.iter().enumerate().map(|(r, id)| (*id, r)).collect();
        let n = docs.len() as f64;
        let idf: Vec<f64> = vocab.iter().map(|id| ((1.0 + n) / (1.0 + df[*id] as f64)).ln() + 1.0).collect();

        // Per document: (rank in the vocabulary, normalised weight), by rank.
        let weighted = docs.iter().map(|(first_row, counts)| {
            let mut entries: Vec<(usize, f64)> = counts
                .iter()
                .filter_map(|(id, c)| rank.get(id).map(|r| (*r, f64::from(*c) * idf[*r])))
                .collect();
            entries.sort_unstable_by_key(|(r, _)| *r);
            let norm = entries.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
            for e in &mut entries {
                e.1 /= norm;
            }
            (*first_row, entries)
        });
        let key_of = |rows: Vec<u64>| -> Result<ArrayRef, Failure> {
            let rows = UInt64Array::from(rows);
            Ok(match &key_values {
                Some(k) => take(k.as_ref(), &rows, None)?,
                None => Arc::new(rows),
            })
        };
        let (schema, columns) = match &self.format {
            Format::Long => {
                let schema = self.long_schema(&input.schema)?;
                let (mut rows, mut out_terms, mut weights) = (Vec::new(), Vec::new(), Vec::new());
                for (first_row, entries) in weighted {
                    for (r, w) in entries {
                        rows.push(first_row);
                        out_terms.push(terms[vocab[r]].as_str());
                        weights.push(w);
                    }
                }
                let columns: Vec<ArrayRef> = vec![
                    key_of(rows)?,
                    Arc::new(StringArray::from(out_terms)),
                    Arc::new(Float64Array::from(weights)),
                ];
                (schema, columns)
            }
            Format::Wide { prefix } => {
                if self.max_features.is_none() && vocab.len() > WIDE_COLUMNS_LIMIT {
                    return Err(Issue::new(
                        self.at.clone(),
                        format!(
                            "tfidf would create {} term columns (more than {WIDE_COLUMNS_LIMIT})",
                            vocab.len()
                        ),
                    )
                    .with_help("set `max_features` (or raise `min_df`) to choose the terms to keep")
                    .into());
                }
                let mut fields = vec![key_field];
                for id in &vocab {
                    let name = format!("{prefix}{}", terms[*id]);
                    if fields.iter().any(|f| f.name() == &name) {
                        return Err(Issue::new(
                            self.at.clone(),
                            format!("tfidf would create column `{name}` twice"),
                        )
                        .with_help("choose a `prefix` that no key column starts with")
                        .into());
                    }
                    fields.push(Field::new(name, DataType::Float64, false));
                }
                let mut rows = Vec::with_capacity(docs.len());
                let mut dense = vec![vec![0.0f64; docs.len()]; vocab.len()];
                for (d, (first_row, entries)) in weighted.enumerate() {
                    rows.push(first_row);
                    for (r, w) in entries {
                        dense[r][d] = w;
                    }
                }
                let mut columns = vec![key_of(rows)?];
                columns.extend(dense.into_iter().map(|c| Arc::new(Float64Array::from(c)) as ArrayRef));
                (Arc::new(Schema::new(fields)), columns)
            }
        };
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

    #[test]
    fn max_df_and_stop_words_remove_terms_that_carry_no_signal() {
        // mug is in 3 of 4 documents: a max_df of 0.5 (2 documents) drops it.
        let v = json!({ "column": "Description", "max_df": 0.5 });
        let out = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(docs()).unwrap().table;
        let terms: Vec<String> = strs(&out, "term").into_iter().flatten().collect();
        assert_eq!(terms, ["red", "blue", "café"]);
        assert_eq!(f64s(&out, "tfidf")[0], Some(1.0), "red alone is row 0's whole vector");

        let v = json!({ "column": "Description", "max_df": 2, "stop_words": ["RED", "blue"] });
        let out = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(docs()).unwrap().table;
        let terms: Vec<String> = strs(&out, "term").into_iter().flatten().collect();
        assert_eq!(terms, ["café"]);

        // A fractional min_df rounds up: 0.5 of 4 documents is 2.
        let v = json!({ "column": "Description", "min_df": 0.5 });
        let out = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(docs()).unwrap().table;
        let terms: Vec<String> = strs(&out, "term").into_iter().flatten().collect();
        assert_eq!(terms, ["mug", "mug", "mug"]);
    }

    #[test]
    fn wide_format_has_a_row_per_document_and_a_column_per_term() {
        let v = json!({ "column": "Description", "format": "wide" });
        let x = Tfidf::parse(&At::new("tfidf", &v)).unwrap();
        assert!(!x.schema_is_static(), "the columns depend on the vocabulary");
        let out = x.apply(docs()).unwrap().table;
        let names: Vec<&str> = out.schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["row", "tfidf_blue", "tfidf_café", "tfidf_mug", "tfidf_red"]);
        assert_eq!(
            i64s(&out, "row"),
            [0, 1, 2, 3].map(Some).to_vec(),
            "row 3 has no terms but keeps its row"
        );
        assert_eq!(f64s(&out, "tfidf_mug")[1], Some(1.0));
        assert_eq!(f64s(&out, "tfidf_red")[1], Some(0.0));
        assert_eq!(f64s(&out, "tfidf_blue")[3], Some(0.0));

        // The long format's weights, pivoted.
        let long = Tfidf::parse(&At::new("tfidf", &json!({ "column": "Description" }))).unwrap();
        let long = long.apply(docs()).unwrap().table;
        let (rows, terms, w) = (i64s(&long, "row"), strs(&long, "term"), f64s(&long, "tfidf"));
        for ((r, t), w) in rows.iter().zip(&terms).zip(&w) {
            let col = f64s(&out, &format!("tfidf_{}", t.as_ref().unwrap()));
            assert_eq!(col[r.unwrap() as usize], *w);
        }

        let v = json!({ "column": "Description", "key": "id", "format": "wide", "prefix": "w:", "max_features": 1 });
        let out = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(docs()).unwrap();
        let names: Vec<&str> = out.table.schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "w:mug"]);
        assert_eq!(out.dropped, 1);
        assert_eq!(f64s(&out.table, "w:mug"), vec![Some(1.0), Some(1.0)]);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let bad = |v: serde_json::Value| Tfidf::parse(&At::new("tfidf", &v)).unwrap_err();
        let e = bad(json!({ "column": "Description", "format": "tall" }));
        assert_eq!(e.key, "tfidf.format");
        assert!(e.message.contains("`tall`"), "{}", e.message);
        let e = bad(json!({ "column": "Description", "max_df": 1.5 }));
        assert_eq!(e.key, "tfidf.max_df");
        let e = bad(json!({ "column": "Description", "min_df": 0 }));
        assert_eq!(e.key, "tfidf.min_df");
        assert!(e.message.ends_with("found 0"), "{}", e.message);
        let e = bad(json!({ "column": "Description", "prefix": "t_" }));
        assert_eq!(e.key, "tfidf.prefix");
        // Crossed bounds keep no term: refused, at validation when both are of one kind.
        let e = bad(json!({ "column": "Description", "min_df": 3, "max_df": 2 }));
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            ("tfidf.max_df", "`max_df` is below `min_df`: no term could be kept")
        );
        let e = bad(json!({ "column": "Description", "min_df": 0.6, "max_df": 0.5 }));
        assert_eq!(e.key, "tfidf.max_df");
        let v = json!({ "column": "Description", "min_df": 3, "max_df": 0.5 });
        let Err(Failure::Config(e)) = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(docs()) else {
            panic!("a count above a fraction of the documents is refused when they are counted");
        };
        assert_eq!(e.key, "tfidf.max_df");
        assert!(e.message.contains("at most 2 of the 4 documents and `min_df` at least 3"), "{}", e.message);
        // Validation runs the step on an empty table: no documents, no verdict on the
        // bounds (it used to say "at most 0 of the 0 documents").
        let v = json!({ "column": "Description", "min_df": 2, "max_df": 0.1 });
        let t = Tfidf::parse(&At::new("tfidf", &v)).unwrap();
        let empty = t.apply(Table::empty(Arc::clone(&docs().schema))).unwrap().table;
        assert_eq!(empty.rows(), 0);
        let five = batch(vec![(
            "Description",
            Arc::new(StringArray::from(vec!["red mug", "red mug", "blue mug", "tea", "tea pot"])),
        )]);
        let Err(Failure::Config(e)) = t.apply(five) else { panic!("no term can be kept in 5 documents") };
        assert!(e.message.contains("at most 0 of the 5 documents and `min_df` at least 2"), "{}", e.message);
    }

    #[test]
    fn wide_format_refuses_an_unbounded_vocabulary() {
        let words: Vec<String> = (0..=WIDE_COLUMNS_LIMIT).map(|i| format!("w{i}")).collect();
        let t = batch(vec![("Description", Arc::new(StringArray::from(vec![Some(words.join(" "))])))]);
        let v = json!({ "column": "Description", "format": "wide" });
        let Err(Failure::Config(issue)) = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(t.clone())
        else {
            panic!("expected a config failure");
        };
        assert!(issue.help.as_deref().unwrap_or("").contains("max_features"), "{issue:?}");
        let v = json!({ "column": "Description", "format": "wide", "max_features": 3 });
        let out = Tfidf::parse(&At::new("tfidf", &v)).unwrap().apply(t).unwrap().table;
        assert_eq!(out.schema.fields().len(), 4);
    }
}
