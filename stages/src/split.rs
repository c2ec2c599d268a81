//! `split`: divides one input into `train` and `test` — at random, stratified by a class
//! column, by time, per user (each user's latest rows held out), or into k folds plus a
//! holdout. Every input row lands in exactly one output.
//!
//! Randomness comes from a counter-based splitmix64 keyed by the pipeline seed mixed with
//! the stage's config hash (not its name: two identical stages share one cached artifact,
//! so they must draw the same rows) and the row's position in the input, so the split
//! depends on neither batch boundaries nor thread count.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, Scalar};
use arrow::compute::kernels::cmp::lt;
use arrow::compute::{cast, concat, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use serde_json::{Map, Value, json};
use sluice_core::registry::{Arity, Derived, Issue};
use sluice_core::stage::{Input, Stage, StageContext};
use sluice_core::{Registry, StageError, StageKind, StageSpec};
use sluice_plugin::{KeySpec, KeyType, Sources, type_name};

use crate::clean::steps::unknown_column;
use crate::clean::table::scalar_of;

/// Keys of a split stage.
pub const SPLIT_KEYS: &[KeySpec] = &[
    KeySpec::optional("method", KeyType::String, Some("\"random\""), "How rows are divided: random, stratified, time, per-user or kfold.")
        .example("method = \"stratified\""),
    KeySpec::optional("test_fraction", KeyType::Float, Some("0.2"), "Share of rows (per class, per user with holdout = \"fraction\") that go to `test`; above 0 and below 1 (kfold: 0 keeps every row for the folds).")
        .example("test_fraction = 0.25"),
    KeySpec::optional("stratify_by", KeyType::String, None, "stratified: the class column whose proportions both outputs keep.")
        .example("stratify_by = \"Country\""),
    KeySpec::optional("time_column", KeyType::String, None, "time: the column to cut on; per-user: orders each user's rows.")
        .example("time_column = \"InvoiceDate\""),
    KeySpec::optional(
        "cutoff",
        KeyType::Any,
        None,
        "time: a date/timestamp (rows before it go to train, the rest to test), or a fraction (0.2 = the latest 20% of rows go to test).",
    )
    .example("cutoff = \"2011-10-01\""),
    KeySpec::optional("user_column", KeyType::String, None, "per-user: the column identifying a user.").example("user_column = \"CustomerID\""),
    KeySpec::optional("holdout", KeyType::String, Some("\"last-n\""), "per-user: hold out each user's \"last-n\" rows, or their latest \"fraction\".")
        .example("holdout = \"fraction\""),
    KeySpec::optional("n", KeyType::Integer, Some("1"), "per-user with holdout = \"last-n\": rows held out per user.").example("n = 2"),
    KeySpec::optional("folds", KeyType::Integer, None, "kfold: number of folds k; `train` gets a `fold` column 0..k-1 with balanced fold sizes.")
        .example("folds = 5"),
];

const METHODS: &[&str] = &["random", "stratified", "time", "per-user", "kfold"];
const FOLD: &str = "fold";

/// The `split` stage kind.
#[derive(Debug)]
pub struct SplitKind;

/// When a `time` split cuts.
#[derive(Debug, Clone, PartialEq)]
pub enum Cutoff {
    /// Rows before this date/timestamp go to train.
    At(String),
    /// The latest share of rows (by time) goes to test.
    Latest(f64),
}

/// A split method with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Uniformly random rows.
    Random,
    /// Random within each class of a column.
    Stratified(String),
    /// Before / after a cutoff on a time column.
    Time(String, Cutoff),
    /// Each user's latest rows.
    PerUser {
        /// User column.
        user: String,
        /// Orders each user's rows (else input order).
        time: Option<String>,
        /// Rows held out per user (`None`: `test_fraction` of them).
        last_n: Option<usize>,
    },
    /// A random holdout, the rest in k balanced folds.
    KFold(usize),
}

/// A parsed split config.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// How.
    pub method: Method,
    /// Share that goes to test.
    pub test_fraction: f64,
}

fn string_key(config: &Map<String, Value>, key: &str) -> Option<String> {
    config.get(key).and_then(Value::as_str).map(str::to_string)
}

impl SplitConfig {
    /// Reads and checks a split stage's config.
    pub fn parse(config: &Map<String, Value>) -> Result<SplitConfig, Vec<Issue>> {
        let mut issues = Vec::new();
        let method = string_key(config, "method").unwrap_or_else(|| "random".into());
        let test_fraction = config.get("test_fraction").and_then(Value::as_f64).unwrap_or(0.2);
        // kfold may keep every row for its folds (cross-validation without a holdout).
        let lowest_ok = test_fraction > 0.0 || (test_fraction == 0.0 && method == "kfold");
        if !(lowest_ok && test_fraction < 1.0) {
            let range =
                if method == "kfold" { "from 0 up to 1 (exclusive)" } else { "between 0 and 1 (exclusive)" };
            issues.push(Issue::new(
                "test_fraction",
                format!("`test_fraction` must be {range}, not {test_fraction}"),
            ));
        }
        let require = |key: &str, issues: &mut Vec<Issue>| -> String {
            string_key(config, key).unwrap_or_else(|| {
                issues.push(
                    Issue::new("method", format!("method \"{method}\" needs `{key}`"))
                        .with_help(format!("add `{key} = \"...\"`")),
                );
                String::new()
            })
        };
        let (parsed, allowed): (Option<Method>, &[&str]) = match method.as_str() {
            "random" => (Some(Method::Random), &["test_fraction"]),
            "stratified" => (
                Some(Method::Stratified(require("stratify_by", &mut issues))),
                &["test_fraction", "stratify_by"],
            ),
            "time" => {
                let col = require("time_column", &mut issues);
                let cutoff = match config.get("cutoff") {
                    Some(Value::String(s)) => Some(Cutoff::At(s.clone())),
                    Some(Value::Number(n)) => match n.as_f64() {
                        Some(f) if f > 0.0 && f < 1.0 => Some(Cutoff::Latest(f)),
                        _ => {
                            issues.push(Issue::new("cutoff", format!("a numeric `cutoff` is the share of latest rows that go to test, between 0 and 1; found {n}")));
                            None
                        }
                    },
                    Some(other) => {
                        issues.push(Issue::new(
                            "cutoff",
                            format!("`cutoff` must be a date/timestamp string or a fraction, found {other}"),
                        ));
                        None
                    }
                    None => {
                        issues.push(
                            Issue::new("method", "method \"time\" needs `cutoff`")
                                .with_help("add e.g. cutoff = \"2011-10-01\" or cutoff = 0.2"),
                        );
                        None
                    }
                };
                (cutoff.map(|c| Method::Time(col, c)), &["time_column", "cutoff"])
            }
            "per-user" => {
                let user = require("user_column", &mut issues);
                let holdout = string_key(config, "holdout").unwrap_or_else(|| "last-n".into());
                let last_n = match holdout.as_str() {
                    "last-n" => {
                        let n = config.get("n").and_then(Value::as_i64).unwrap_or(1);
                        if n < 1 {
                            issues.push(Issue::new("n", "`n` must be at least 1"));
                        }
                        Some(n.max(1) as usize)
                    }
                    "fraction" => None,
                    other => {
                        issues.push(Issue::new(
                            "holdout",
                            format!("`holdout` must be \"last-n\" or \"fraction\", not \"{other}\""),
                        ));
                        None
                    }
                };
                let keys: &[&str] = if last_n.is_some() {
                    &["user_column", "time_column", "holdout", "n"]
                } else {
                    &["user_column", "time_column", "holdout", "test_fraction"]
                };
                (Some(Method::PerUser { user, time: string_key(config, "time_column"), last_n }), keys)
            }
            "kfold" => {
                let k = config.get("folds").and_then(Value::as_i64);
                match k {
                    Some(k) if k >= 2 => (Some(Method::KFold(k as usize)), &["folds", "test_fraction"]),
                    Some(k) => {
                        issues.push(Issue::new("folds", format!("`folds` must be at least 2, not {k}")));
                        (None, &["folds", "test_fraction"])
                    }
                    None => {
                        issues.push(
                            Issue::new("method", "method \"kfold\" needs `folds`")
                                .with_help("add e.g. folds = 5"),
                        );
                        (None, &["folds", "test_fraction"])
                    }
                }
            }
            other => {
                let help = sluice_core::diagnostic::suggestion(other, METHODS.iter().copied())
                    .unwrap_or_else(|| format!("methods: {}", METHODS.join(", ")));
                issues
                    .push(Issue::new("method", format!("unknown split method \"{other}\"")).with_help(help));
                (None, &[])
            }
        };
        // Per-user, `n` and `test_fraction` each belong to one holdout: say which.
        let holdout_of = |k: &str| match (&parsed, k) {
            (Some(Method::PerUser { last_n: None, .. }), "n") => Some(("fraction", "last-n")),
            (Some(Method::PerUser { last_n: Some(_), .. }), "test_fraction") => Some(("last-n", "fraction")),
            _ => None,
        };
        if parsed.is_some() {
            for k in config.keys().filter(|k| k.as_str() != "method" && !allowed.contains(&k.as_str())) {
                if let Some((holdout, other)) = holdout_of(k) {
                    issues.push(
                        Issue::new(k.as_str(), format!("`{k}` does not apply to holdout = \"{holdout}\""))
                            .with_help(format!("`{k}` is for holdout = \"{other}\"")),
                    );
                    continue;
                }
                issues.push(
                    Issue::new(k.as_str(), format!("`{k}` does not apply to method \"{method}\"")).with_help(
                        format!(
                            "method \"{method}\" takes {}",
                            allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                        ),
                    ),
                );
            }
        }
        match parsed {
            Some(method) if issues.is_empty() => Ok(SplitConfig { method, test_fraction }),
            _ => Err(issues),
        }
    }

    fn columns(&self) -> Vec<(&'static str, &str)> {
        match &self.method {
            Method::Stratified(c) => vec![("stratify_by", c.as_str())],
            Method::Time(c, _) => vec![("time_column", c.as_str())],
            Method::PerUser { user, time, .. } => {
                let mut v = vec![("user_column", user.as_str())];
                if let Some(t) = time {
                    v.push(("time_column", t.as_str()));
                }
                v
            }
            Method::Random | Method::KFold(_) => Vec::new(),
        }
    }

    /// Checks the named columns against the input schema.
    pub fn check_schema(&self, schema: &Schema) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (key, name) in self.columns() {
            let Ok(i) = schema.index_of(name) else {
                issues.push(unknown_column(name, key, schema));
                continue;
            };
            let ty = schema.field(i).data_type();
            if key == "time_column" && !(ty.is_temporal() || ty.is_numeric()) {
                issues.push(
                    Issue::new(
                        key,
                        format!(
                            "time column `{name}` is {}; it must be a date, timestamp or number",
                            type_name(ty)
                        ),
                    )
                    .with_help("parse it first, e.g. with a clean stage's `parse_timestamp`"),
                );
            }
            if let Method::Time(_, Cutoff::At(at)) = &self.method
                && key == "time_column"
                && scalar_of(at, ty).is_err()
            {
                issues.push(
                    Issue::new(
                        "cutoff",
                        format!("cutoff \"{at}\" is not a value of `{name}` ({})", type_name(ty)),
                    )
                    .with_help(
                        "write a date like \"2011-10-01\" or a timestamp like \"2011-10-01 00:00:00\"",
                    ),
                );
            }
        }
        if matches!(self.method, Method::KFold(_)) && schema.index_of(FOLD).is_ok() {
            issues.push(Issue::new(
                "folds",
                "the input already has a column `fold`, which kfold adds to `train`",
            ));
        }
        issues
    }

    /// kfold with fewer train rows than folds would leave folds empty, which no
    /// cross-validation can use: an error, as in scikit-learn. An empty input stays empty.
    fn check_folds(&self, assignment: &Assignment) -> Option<Issue> {
        let Method::KFold(k) = self.method else { return None };
        let train = assignment.test.iter().filter(|t| !**t).count();
        (!assignment.test.is_empty() && train < k).then(|| {
            Issue::new(
                "folds",
                format!("kfold needs at least {k} train rows for {k} folds; the input leaves {train}"),
            )
            .with_help(format!(
                "the input has {} row{} and `test_fraction` holds out {}: lower `folds` or `test_fraction`",
                assignment.test.len(),
                if assignment.test.len() == 1 { "" } else { "s" },
                assignment.test.len() - train
            ))
        })
    }

    /// The `train` schema (`fold` added for kfold).
    pub fn train_schema(&self, input: &SchemaRef) -> SchemaRef {
        match self.method {
            Method::KFold(_) => {
                let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(Field::new(FOLD, DataType::Int64, false));
                Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
            }
            _ => input.clone(),
        }
    }
}

/// Counter-based splitmix64: the random key of item `i` under `seed`.
pub fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stage's seed: the pipeline seed mixed with a stage-specific string (its config hash).
pub fn stage_seed(pipeline_seed: u64, stage: &str) -> u64 {
    stage.bytes().fold(splitmix64(pipeline_seed, 0), |h, b| splitmix64(h ^ u64::from(b), 1))
}

/// Where each row goes: `test[i]`, and for kfold the fold of each train row.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Whether row i goes to test.
    pub test: Vec<bool>,
    /// Fold of row i (kfold only; meaningless for test rows).
    pub fold: Option<Vec<i64>>,
}

/// Picks `k` of `rows` at random (the `k` smallest keys).
fn pick(rows: &mut [u32], k: usize, seed: u64, test: &mut [bool]) {
    let k = k.min(rows.len());
    if k == 0 {
        return;
    }
    rows.sort_unstable_by_key(|&r| (splitmix64(seed, u64::from(r)), r));
    for &r in &rows[..k] {
        test[r as usize] = true;
    }
}

fn share(n: usize, fraction: f64) -> usize {
    ((n as f64) * fraction).round() as usize
}

fn column(batches: &[RecordBatch], schema: &Schema, name: &str) -> Result<ArrayRef, StageError> {
    let i = schema.index_of(name).map_err(|e| StageError::arrow("split", e))?;
    let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
    if parts.is_empty() {
        return Ok(arrow::array::new_empty_array(schema.field(i).data_type()));
    }
    concat(&parts).map_err(|e| StageError::arrow("split: joining batches", e))
}

/// Row ids grouped by the value of `cols` (NULL is a value of its own), groups in order of
/// first appearance.
fn groups(cols: &[ArrayRef]) -> Result<Vec<Vec<u32>>, StageError> {
    let converter = RowConverter::new(cols.iter().map(|c| SortField::new(c.data_type().clone())).collect())
        .map_err(|e| StageError::arrow("split: encoding rows", e))?;
    let rows = converter.convert_columns(cols).map_err(|e| StageError::arrow("split: encoding rows", e))?;
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    let mut out: Vec<Vec<u32>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let g = *index.entry(row.data()).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[g].push(i as u32);
    }
    Ok(out)
}

/// Row ids sorted by a column (NULLs first), ties in input order.
fn by_time(col: &ArrayRef, rows: &mut [u32]) -> Result<(), StageError> {
    let converter = RowConverter::new(vec![SortField::new(col.data_type().clone())])
        .map_err(|e| StageError::arrow("split: ordering", e))?;
    let enc = converter
        .convert_columns(std::slice::from_ref(col))
        .map_err(|e| StageError::arrow("split: ordering", e))?;
    rows.sort_by(|&a, &b| enc.row(a as usize).cmp(&enc.row(b as usize)));
    Ok(())
}

/// Decides where every row goes.
pub fn assign(
    config: &SplitConfig,
    schema: &Schema,
    batches: &[RecordBatch],
    seed: u64,
) -> Result<Assignment, StageError> {
    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut test = vec![false; n];
    let all = || (0..n as u32).collect::<Vec<u32>>();
    let mut fold = None;
    match &config.method {
        Method::Random => pick(&mut all(), share(n, config.test_fraction), seed, &mut test),
        Method::Stratified(c) => {
            for mut g in groups(&[column(batches, schema, c)?])? {
                let k = share(g.len(), config.test_fraction);
                pick(&mut g, k, seed, &mut test);
            }
        }
        Method::Time(c, Cutoff::At(at)) => {
            let mut col = column(batches, schema, c)?;
            if matches!(col.data_type(), DataType::Date32 | DataType::Date64) {
                // A date is its midnight: compared as timestamps, a cutoff with a time of
                // day keeps that day's rows in train instead of being cut back to the date.
                col = cast(&col, &DataType::Timestamp(TimeUnit::Microsecond, None))
                    .map_err(|e| StageError::arrow("split: reading dates", e))?;
            }
            let bound = scalar_of(at, col.data_type())
                .map_err(|e| StageError::Failed(format!("split: cutoff \"{at}\": {e}")))?;
            let before =
                lt(&col, &Scalar::new(bound)).map_err(|e| StageError::arrow("split: comparing times", e))?;
            // NULL times cannot be "after" the cutoff: they stay in train.
            for (i, t) in test.iter_mut().enumerate() {
                *t = col.is_valid(i) && !before.value(i);
            }
        }
        Method::Time(c, Cutoff::Latest(f)) => {
            let col = column(batches, schema, c)?;
            // NULL times stay in train, so the share is of the timed rows only: counting
            // NULL rows would size `test` past the timed rows and fill it with NULLs.
            let mut rows: Vec<u32> = (0..n as u32).filter(|&r| col.is_valid(r as usize)).collect();
            by_time(&col, &mut rows)?;
            let k = share(rows.len(), *f);
            for &r in &rows[rows.len() - k..] {
                test[r as usize] = true;
            }
        }
        Method::PerUser { user, time, last_n } => {
            let time_col = time.as_ref().map(|t| column(batches, schema, t)).transpose()?;
            for mut g in groups(&[column(batches, schema, user)?])? {
                if let Some(t) = &time_col {
                    by_time(t, &mut g)?;
                }
                let wanted = last_n.unwrap_or_else(|| share(g.len(), config.test_fraction));
                // A user keeps at least one row in train (a single-row user stays there).
                let k = wanted.min(g.len().saturating_sub(1));
                for &r in &g[g.len() - k..] {
                    test[r as usize] = true;
                }
            }
        }
        Method::KFold(k) => {
            pick(&mut all(), share(n, config.test_fraction), seed, &mut test);
            let mut train: Vec<u32> = (0..n as u32).filter(|&r| !test[r as usize]).collect();
            let fold_seed = splitmix64(seed, u64::MAX);
            train.sort_unstable_by_key(|&r| (splitmix64(fold_seed, u64::from(r)), r));
            let mut folds = vec![0i64; n];
            for (rank, &r) in train.iter().enumerate() {
                folds[r as usize] = (rank % k) as i64;
            }
            fold = Some(folds);
        }
    }
    Ok(Assignment { test, fold })
}

/// The train and test batches for an assignment (input order kept in both).
pub fn materialize(
    config: &SplitConfig,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    assignment: &Assignment,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), StageError> {
    let train_schema = config.train_schema(schema);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut offset = 0;
    for b in batches {
        let len = b.num_rows();
        let to_test = BooleanArray::from(assignment.test[offset..offset + len].to_vec());
        let to_train = arrow::compute::not(&to_test).map_err(|e| StageError::arrow("split", e))?;
        let t = filter_record_batch(b, &to_test).map_err(|e| StageError::arrow("split", e))?;
        let mut r = filter_record_batch(b, &to_train).map_err(|e| StageError::arrow("split", e))?;
        if let Some(folds) = &assignment.fold {
            let f: ArrayRef = Arc::new(Int64Array::from(folds[offset..offset + len].to_vec()));
            let f = arrow::compute::filter(&f, &to_train).map_err(|e| StageError::arrow("split", e))?;
            let mut cols = r.columns().to_vec();
            cols.push(f);
            r = RecordBatch::try_new(train_schema.clone(), cols)
                .map_err(|e| StageError::arrow("split: adding folds", e))?;
        }
        if t.num_rows() > 0 {
            test.push(t);
        }
        if r.num_rows() > 0 {
            train.push(r);
        }
        offset += len;
    }
    Ok((train, test))
}

impl StageKind for SplitKind {
    fn name(&self) -> &'static str {
        "split"
    }

    fn doc(&self) -> &'static str {
        "Split one input into `train` and `test` (random, stratified, time, per-user, kfold), seeded and reproducible."
    }

    fn version(&self) -> &'static str {
        // 2: a fractional time cutoff no longer sends NULL-time rows to test; artifacts
        // cached under 1 are not reused.
        "2"
    }

    fn arity(&self) -> Arity {
        Arity { min: 1, max: Some(1) }
    }

    fn keys(&self, _config: &Map<String, Value>, _registry: &Registry) -> Option<Vec<KeySpec>> {
        Some(SPLIT_KEYS.to_vec())
    }

    fn check(&self, stage: &StageSpec, _registry: &Registry) -> Vec<Issue> {
        SplitConfig::parse(&stage.config).err().unwrap_or_default()
    }

    fn outputs(&self, _config: &Map<String, Value>) -> Vec<String> {
        vec!["train".to_string(), "test".to_string()]
    }

    fn uses_seed(&self) -> bool {
        true
    }

    fn is_result(&self) -> bool {
        false
    }

    fn sources(&self, _stage: &StageSpec, _registry: &Registry) -> Result<Option<Sources>, StageError> {
        Ok(None)
    }

    fn build(&self, stage: &StageSpec, _registry: &Registry) -> Result<Box<dyn Stage>, StageError> {
        let config = SplitConfig::parse(&stage.config).map_err(|issues| match issues.first() {
            Some(i) => diagnostic(stage, i),
            None => StageError::Internal("split config refused without a reason".into()),
        })?;
        Ok(Box::new(SplitStage { config }))
    }

    fn derive_schemas(
        &self,
        stage: &StageSpec,
        inputs: &[Option<SchemaRef>],
        _registry: &Registry,
    ) -> Derived {
        let mut derived = Derived::unknown(&stage.outputs);
        let (Ok(config), Some(Some(input))) = (SplitConfig::parse(&stage.config), inputs.first()) else {
            return derived;
        };
        for i in config.check_schema(input) {
            derived.issue(i);
        }
        derived.set("train", Some(config.train_schema(input)));
        derived.set("test", Some(input.clone()));
        derived
    }
}

fn diagnostic(spec: &StageSpec, issue: &Issue) -> StageError {
    StageError::Diagnostic(Box::new(sluice_core::compile::issue_diagnostic(&spec.file, spec, issue)))
}

struct SplitStage {
    config: SplitConfig,
}

impl Stage for SplitStage {
    fn run(&self, ctx: &mut StageContext<'_>, inputs: &mut [Input]) -> Result<(), StageError> {
        let input =
            inputs.first_mut().ok_or_else(|| StageError::Internal("split stage without input".into()))?;
        let spec = ctx.spec;
        let schema = input.dataset.schema.clone();
        if let Some(issue) = self.config.check_schema(&schema).first() {
            return Err(diagnostic(spec, issue));
        }
        let batches = input.dataset.take_all()?;
        let seed = stage_seed(ctx.seed, &spec.config_hash);
        let assignment = assign(&self.config, &schema, &batches, seed)?;
        if let Some(issue) = self.config.check_folds(&assignment) {
            return Err(diagnostic(spec, &issue));
        }
        let (train, test) = materialize(&self.config, &schema, &batches, &assignment)?;
        let mut w = ctx.output("train", self.config.train_schema(&schema))?;
        for b in train {
            w.write(b)?;
        }
        let train_rows = w.rows();
        ctx.finish(w)?;
        let mut w = ctx.output("test", schema)?;
        for b in test {
            w.write(b)?;
        }
        let test_rows = w.rows();
        ctx.finish(w)?;
        ctx.metric("train_rows", train_rows);
        ctx.metric("test_rows", test_rows);
        if let (Method::KFold(k), Some(folds)) = (&self.config.method, &assignment.fold) {
            let mut sizes = vec![0u64; *k];
            for (f, t) in folds.iter().zip(&assignment.test) {
                if !t {
                    sizes[*f as usize] += 1;
                }
            }
            ctx.metric("fold_sizes", json!(sizes));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::TimeUnit;

    use super::*;

    fn cfg(v: Value) -> Result<SplitConfig, Vec<Issue>> {
        SplitConfig::parse(v.as_object().unwrap())
    }

    /// Rows with a class, a user, a time; cut into batches at `cuts`.
    fn data(n: usize, classes: u64, seed: u64, cuts: &[usize]) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("class", DataType::Utf8, true),
            Field::new("user", DataType::Int64, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let id: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
        let class: ArrayRef = Arc::new(StringArray::from_iter((0..n).map(|i| {
            let c = splitmix64(seed, i as u64) % (classes + 1);
            (c < classes).then(|| format!("klasse-{c}-é"))
        })));
        let user: ArrayRef = Arc::new(Int64Array::from_iter(
            (0..n).map(|i| Some((splitmix64(seed ^ 7, i as u64) % 9) as i64)),
        ));
        let t: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter(
            (0..n).map(|i| Some((splitmix64(seed ^ 3, i as u64) % 1_000) as i64 * 1_000_000)),
        ));
        let whole = RecordBatch::try_new(schema.clone(), vec![id, class, user, t]).unwrap();
        let mut batches = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&n)) {
            let c = c.clamp(start, n);
            batches.push(whole.slice(start, c - start));
            start = c;
        }
        (schema, batches)
    }

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect()
    }

    /// For random inputs and every method: train ∪ test = input, disjoint; the result does
    /// not depend on batch boundaries; stratified classes within ±1 row; folds within 1.
    #[test]
    fn every_row_lands_in_exactly_one_output_for_random_inputs() {
        let methods = [
            json!({}),
            json!({"method": "stratified", "stratify_by": "class", "test_fraction": 0.3}),
            json!({"method": "time", "time_column": "t", "cutoff": "1970-01-01 00:05:00"}),
            json!({"method": "time", "time_column": "t", "cutoff": 0.25}),
            json!({"method": "per-user", "user_column": "user", "time_column": "t", "n": 2}),
            json!({"method": "per-user", "user_column": "user", "holdout": "fraction", "test_fraction": 0.5}),
            json!({"method": "kfold", "folds": 4}),
        ];
        for case in 0..24u64 {
            let n = (splitmix64(99, case) % 300) as usize;
            let cut = (splitmix64(98, case) % (n as u64 + 1)) as usize;
            let (schema, one) = data(n, 1 + case % 5, case, &[]);
            let (_, many) = data(n, 1 + case % 5, case, &[cut / 2, cut]);
            for m in &methods {
                let c = cfg(m.clone()).unwrap();
                let a = assign(&c, &schema, &one, 42).unwrap();
                assert_eq!(a, assign(&c, &schema, &many, 42).unwrap(), "batch boundaries changed {m}");
                let (train, test) = materialize(&c, &schema, &many, &a).unwrap();
                let mut all: Vec<i64> = ids(&train).into_iter().chain(ids(&test)).collect();
                assert_eq!(all.len(), n, "{m}");
                all.sort_unstable();
                assert_eq!(all, (0..n as i64).collect::<Vec<_>>(), "{m}");
                if let Method::Stratified(_) = c.method {
                    let class = column(&one, &schema, "class").unwrap();
                    for g in groups(&[class]).unwrap() {
                        let in_test = g.iter().filter(|&&r| a.test[r as usize]).count() as f64;
                        assert!(
                            (in_test - g.len() as f64 * 0.3).abs() <= 1.0,
                            "{m}: class off by more than a row"
                        );
                    }
                }
                if let Method::KFold(k) = c.method {
                    let mut sizes = vec![0usize; k];
                    for b in &train {
                        let f = b.column(4).as_any().downcast_ref::<Int64Array>().unwrap();
                        for v in f.values() {
                            sizes[*v as usize] += 1;
                        }
                    }
                    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    assert!(hi - lo <= 1, "fold sizes {sizes:?}");
                }
            }
        }
    }

    #[test]
    fn random_split_is_seeded_and_has_the_asked_size() {
        let (schema, batches) = data(1000, 2, 1, &[300]);
        let c = cfg(json!({"test_fraction": 0.2})).unwrap();
        let a = assign(&c, &schema, &batches, stage_seed(42, "split")).unwrap();
        assert_eq!(a.test.iter().filter(|t| **t).count(), 200);
        assert_eq!(a, assign(&c, &schema, &batches, stage_seed(42, "split")).unwrap());
        assert_ne!(a, assign(&c, &schema, &batches, stage_seed(42, "other")).unwrap());
        assert_ne!(a, assign(&c, &schema, &batches, stage_seed(43, "split")).unwrap());
    }

    #[test]
    fn a_cutoff_with_a_time_of_day_on_a_date_column_keeps_that_day_in_train() {
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
        // 2011-12-02 and 2011-12-03 as days since 1970-01-01.
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::Date32Array::from(vec![15310, 15311]))],
        )
        .unwrap();
        let c = cfg(json!({"method": "time", "time_column": "d", "cutoff": "2011-12-02 12:00:00"})).unwrap();
        assert_eq!(assign(&c, &schema, std::slice::from_ref(&batch), 0).unwrap().test, [false, true]);
        let c = cfg(json!({"method": "time", "time_column": "d", "cutoff": "2011-12-03"})).unwrap();
        assert_eq!(assign(&c, &schema, &[batch], 0).unwrap().test, [false, true]);
    }

    #[test]
    fn time_and_per_user_semantics() {
        let (schema, batches) = data(200, 2, 5, &[]);
        let t = column(&batches, &schema, "t").unwrap();
        let t = t.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        let c = cfg(json!({"method": "time", "time_column": "t", "cutoff": "1970-01-01 00:05:00"})).unwrap();
        let a = assign(&c, &schema, &batches, 0).unwrap();
        for i in 0..200 {
            assert_eq!(a.test[i], t.value(i) >= 300_000_000, "row {i}");
        }
        let c = cfg(json!({"method": "per-user", "user_column": "user", "time_column": "t"})).unwrap();
        let a = assign(&c, &schema, &batches, 0).unwrap();
        let users = column(&batches, &schema, "user").unwrap();
        for g in groups(&[users]).unwrap() {
            let held: Vec<u32> = g.iter().copied().filter(|&r| a.test[r as usize]).collect();
            assert_eq!(held.len(), usize::from(g.len() > 1));
            if let Some(&h) = held.first() {
                assert!(g.iter().all(|&r| t.value(r as usize) <= t.value(h as usize)));
            }
        }
    }

    /// Regression: a fractional cutoff counted NULL-time rows when sizing `test`, and then
    /// filled `test` with them.
    #[test]
    fn a_fractional_cutoff_takes_its_share_of_the_timed_rows_and_null_times_stay_in_train() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let batch = |times: Vec<Option<i64>>| {
            let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(1..=times.len() as i64));
            let t: ArrayRef = Arc::new(TimestampMicrosecondArray::from(times));
            RecordBatch::try_new(schema.clone(), vec![ids, t]).unwrap()
        };
        let test_ids = |cutoff: f64, b: &RecordBatch| {
            let c = cfg(json!({"method": "time", "time_column": "t", "cutoff": cutoff})).unwrap();
            let a = assign(&c, &schema, std::slice::from_ref(b), 0).unwrap();
            let (_, test) = materialize(&c, &schema, std::slice::from_ref(b), &a).unwrap();
            ids(&test)
        };
        // One timed row: 40 % of it rounds to none; the NULL rows never go to test.
        let b = batch(vec![None, None, None, None, Some(5)]);
        assert_eq!(test_ids(0.4, &b), Vec::<i64>::new());
        assert_eq!(test_ids(0.6, &b), [5]);
        assert_eq!(test_ids(0.99, &b), [5]);
        // Four timed rows among NULLs: the latest half of the timed rows.
        let b = batch(vec![Some(40), None, Some(10), None, Some(30), Some(20), None]);
        assert_eq!(test_ids(0.5, &b), [1, 5]);
    }

    #[test]
    fn empty_input_and_single_row_users() {
        let (schema, batches) = data(0, 1, 0, &[]);
        for m in [
            json!({}),
            json!({"method": "kfold", "folds": 3}),
            json!({"method": "time", "time_column": "t", "cutoff": 0.5}),
        ] {
            let a = assign(&cfg(m).unwrap(), &schema, &batches, 0).unwrap();
            assert!(a.test.is_empty());
        }
        let (schema, batches) = data(1, 1, 0, &[]);
        let c = cfg(json!({"method": "per-user", "user_column": "user", "n": 3})).unwrap();
        assert_eq!(assign(&c, &schema, &batches, 0).unwrap().test, [false]);
    }

    #[test]
    fn kfold_with_fewer_train_rows_than_folds_is_refused() {
        let c = cfg(json!({"method": "kfold", "folds": 5, "test_fraction": 0.25})).unwrap();
        let (schema, batches) = data(4, 1, 0, &[]);
        let a = assign(&c, &schema, &batches, 0).unwrap();
        let issue = c.check_folds(&a).expect("3 train rows cannot fill 5 folds");
        assert_eq!(issue.key, "folds");
        assert_eq!(issue.message, "kfold needs at least 5 train rows for 5 folds; the input leaves 3");
        assert_eq!(
            issue.help.as_deref(),
            Some("the input has 4 rows and `test_fraction` holds out 1: lower `folds` or `test_fraction`")
        );
        let (schema, batches) = data(8, 1, 0, &[]);
        assert!(c.check_folds(&assign(&c, &schema, &batches, 0).unwrap()).is_none(), "6 rows fill 5 folds");
        // A holdout that takes every row leaves no train rows at all: refused too.
        let all = cfg(json!({"method": "kfold", "folds": 2, "test_fraction": 0.9})).unwrap();
        let (schema, batches) = data(1, 1, 0, &[]);
        let issue = all.check_folds(&assign(&all, &schema, &batches, 0).unwrap()).expect("no train rows");
        assert_eq!(issue.message, "kfold needs at least 2 train rows for 2 folds; the input leaves 0");
        let (schema, batches) = data(0, 1, 0, &[]);
        assert!(c.check_folds(&assign(&c, &schema, &batches, 0).unwrap()).is_none(), "empty stays empty");
    }

    #[test]
    fn config_and_schema_errors_name_the_key() {
        let e = cfg(json!({"method": "stratifed"})).unwrap_err();
        assert_eq!((e[0].key.as_str(), e[0].help.as_deref()), ("method", Some("did you mean `stratified`?")));
        assert_eq!(
            cfg(json!({"method": "stratified"})).unwrap_err()[0].message,
            "method \"stratified\" needs `stratify_by`"
        );
        assert_eq!(cfg(json!({"test_fraction": 1.5})).unwrap_err()[0].key, "test_fraction");
        assert_eq!(cfg(json!({"test_fraction": 0})).unwrap_err()[0].key, "test_fraction");
        // kfold without a holdout: every row in a fold, `test` empty.
        let c = cfg(json!({"method": "kfold", "folds": 3, "test_fraction": 0})).unwrap();
        let (schema, batches) = data(9, 1, 0, &[]);
        let a = assign(&c, &schema, &batches, 0).unwrap();
        assert!(a.test.iter().all(|t| !t));
        let mut sizes = [0; 3];
        for f in a.fold.unwrap() {
            sizes[f as usize] += 1;
        }
        assert_eq!(sizes, [3, 3, 3]);
        assert_eq!(cfg(json!({"folds": 3})).unwrap_err()[0].key, "folds");
        // Regression: `n` with holdout = "fraction" blamed the method, not the holdout.
        let e = cfg(json!({"method": "per-user", "user_column": "u", "holdout": "fraction", "n": 3}))
            .unwrap_err();
        assert_eq!(
            (e[0].key.as_str(), e[0].message.as_str(), e[0].help.as_deref()),
            ("n", "`n` does not apply to holdout = \"fraction\"", Some("`n` is for holdout = \"last-n\""))
        );
        let e = cfg(json!({"method": "per-user", "user_column": "u", "test_fraction": 0.3})).unwrap_err();
        assert_eq!(e[0].message, "`test_fraction` does not apply to holdout = \"last-n\"");
        assert_eq!(cfg(json!({"method": "kfold", "folds": 1})).unwrap_err()[0].key, "folds");
        assert_eq!(
            cfg(json!({"method": "time", "time_column": "t", "cutoff": 2})).unwrap_err()[0].key,
            "cutoff"
        );
        let (schema, _) = data(0, 1, 0, &[]);
        let c = cfg(json!({"method": "time", "time_column": "class", "cutoff": "2011-01-01"})).unwrap();
        let issues = c.check_schema(&schema);
        assert!(issues[0].message.contains("must be a date, timestamp or number"), "{issues:?}");
        let c = cfg(json!({"method": "stratified", "stratify_by": "clas"})).unwrap();
        assert_eq!(c.check_schema(&schema)[0].help.as_deref(), Some("did you mean `class`?"));
        let c = cfg(json!({"method": "time", "time_column": "t", "cutoff": "yesterday"})).unwrap();
        assert_eq!(c.check_schema(&schema)[0].key, "cutoff");
    }
}
