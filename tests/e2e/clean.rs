//! `clean` and `split` through the binary: per-operation counts in the run record, the
//! rejects output, the split outputs, the real Online Retail counts, and config errors that
//! point at the line of the operation.

use std::path::Path;

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;

use crate::util::*;

/// Orders with a missing customer, an exact duplicate line, a return (negative quantity),
/// padded and upper-case text, a unicode country and a quantity that is not a number.
const ORDERS: &str = "\
InvoiceNo,StockCode,Description,Quantity,UnitPrice,CustomerID,Country
1001,A1,  Mug  ,2,1.5,17850,UNITED KINGDOM
1001,A1,  Mug  ,2,1.5,17850,UNITED KINGDOM
1002,B2,Lamp,1,,17851,France
1003,C3,Vase,-1,3.0,17852,Österreich
1004,A1,Mug,3,1.5,,Germany
1005,D4,Bowl,many,2.0,17853,Spain
1006,E5,Plate,4,2.5,17854,Spain
1007,F6, Cup,5,0.5,17855,EIRE
";

const PIPELINE: &str = r#"[pipeline]
name = "clean-split"
seed = 7

[stages.orders]
kind = "collect"
connector = "csv"
path = "data/orders.csv"
schema = { Quantity = "string" }

[stages.tidy]
kind = "clean"
inputs = ["orders"]
keep_rejects = true
drop_nulls = ["CustomerID"]
dedup = true
cast = { columns = { Quantity = "int64" }, on_error = "reject" }
filter = "Quantity > 0"
trim = ["Description"]
lowercase = ["Country"]
fill_nulls = { UnitPrice = "median" }
drop = ["StockCode"]

[stages.split]
kind = "split"
inputs = ["tidy"]
method = "random"
test_fraction = 0.25
"#;

/// A pipeline `name` that collects ORDERS (Quantity as text), followed by `rest`.
fn orders_then(name: &str, rest: &str) -> String {
    orders_pipeline(name, &format!("schema = {{ Quantity = \"string\" }}\n\n{rest}"))
}

fn output(record: &serde_json::Value, stage: &str, name: &str) -> Vec<RecordBatch> {
    read_parquet(stage_field(record, stage, "outputs")[name].as_str().unwrap())
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn strings(batches: &[RecordBatch], col: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let c = b.column(b.schema().index_of(col).unwrap());
        let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap();
        out.extend(c.as_string::<i32>().iter().map(|v| v.map(str::to_string)));
    }
    out
}

/// `(op, rows_in, rows_out)` per step, from the run record.
fn operations(record: &serde_json::Value, stage: &str) -> Vec<(String, u64, u64)> {
    stage_field(record, stage, "metrics")["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["op"].as_str().unwrap().to_string(),
                o["rows_in"].as_u64().unwrap(),
                o["rows_out"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn collect_clean_split_counts_every_operation_and_keeps_rejects() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write("p.toml", PIPELINE);
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{r:#}");
    let ops = operations(&r, "tidy");
    let ops: Vec<(&str, u64, u64)> = ops.iter().map(|(o, a, b)| (o.as_str(), *a, *b)).collect();
    assert_eq!(
        ops,
        [
            ("drop_nulls", 8, 7),
            ("dedup", 7, 6),
            ("cast", 6, 5),
            ("filter", 5, 4),
            ("trim", 4, 4),
            ("lowercase", 4, 4),
            ("fill_nulls", 4, 4),
            ("drop", 4, 4),
        ]
    );
    let metrics = stage_field(&r, "tidy", "metrics");
    assert_eq!(metrics["rows_removed"], 4);
    assert_eq!(metrics["operations"][6]["filled"], 1);
    // Regression: the docs list `rows_removed` per operation, the record had none.
    let removed: Vec<u64> = metrics["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["rows_removed"].as_u64().expect("rows_removed per operation"))
        .collect();
    assert_eq!(removed, [1, 1, 1, 1, 0, 0, 0, 0]);

    let data = output(&r, "tidy", "data");
    assert_eq!(
        strings(&data, "Description"),
        [Some("Mug".into()), Some("Lamp".into()), Some("Plate".into()), Some("Cup".into())]
    );
    assert_eq!(strings(&data, "Country")[0].as_deref(), Some("united kingdom"));
    // The median of 1.5, 2.5, 0.5 fills the lamp's missing price.
    assert_eq!(strings(&data, "UnitPrice")[1].as_deref(), Some("1.5"));
    assert!(data[0].schema().index_of("StockCode").is_err());

    // Rejects: input columns as read, in input order, with the step that removed each row.
    let rejects = output(&r, "tidy", "rejects");
    assert_eq!(
        strings(&rejects, "InvoiceNo"),
        [Some("1001".into()), Some("1003".into()), Some("1004".into()), Some("1005".into())]
    );
    assert_eq!(
        strings(&rejects, "rejected_op"),
        [Some("dedup".into()), Some("filter".into()), Some("drop_nulls".into()), Some("cast".into())]
    );
    assert_eq!(
        strings(&rejects, "rejected_step"),
        [Some("1".into()), Some("3".into()), Some("0".into()), Some("2".into())]
    );
    assert_eq!(
        strings(&rejects, "rejected_reason")[3].as_deref(),
        Some("`many` in column `Quantity` is not int64")
    );
    assert_eq!(strings(&rejects, "StockCode")[0].as_deref(), Some("A1"));

    // Split: every cleaned row in exactly one output, 25 % of 4 in test.
    let train = output(&r, "split", "train");
    let test = output(&r, "split", "test");
    assert_eq!((rows(&train), rows(&test)), (3, 1));
    let mut all: Vec<_> =
        strings(&train, "InvoiceNo").into_iter().chain(strings(&test, "InvoiceNo")).collect();
    all.sort();
    assert_eq!(all, strings(&data, "InvoiceNo"));
    assert_eq!(stage_field(&r, "split", "metrics")["test_rows"], 1);

    // The same seed gives the same split on a forced re-run.
    let (_, again) = s.run_json(&file, &["--force-all"]);
    assert_eq!(strings(&output(&again, "split", "test"), "InvoiceNo"), strings(&test, "InvoiceNo"));
}

#[test]
fn steps_repeat_an_op_and_kfold_adds_balanced_folds() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write(
        "p.toml",
        &orders_then(
            "steps",
            r#"[stages.tidy]
kind = "clean"
inputs = ["orders"]
steps = [
  { cast = { columns = { Quantity = "int64" }, on_error = "null" } },
  { filter = "Quantity > 0" },
  { dedup = { keys = ["StockCode"], keep = "last" } },
  { filter = "Country <> 'EIRE'" },
]

[stages.folds]
kind = "split"
inputs = ["tidy"]
method = "kfold"
folds = 2
test_fraction = 0.2
"#,
        ),
    );
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{r:#}");
    let ops = operations(&r, "tidy");
    let names: Vec<&str> = ops.iter().map(|o| o.0.as_str()).collect();
    assert_eq!(names, ["cast", "filter", "dedup", "filter"]);
    // many → NULL; NULL and -1 are filtered; A1 three times → once; EIRE goes.
    assert_eq!(ops.iter().map(|o| o.2).collect::<Vec<_>>(), [8, 6, 4, 3]);
    assert_eq!(stage_field(&r, "tidy", "metrics")["operations"][0]["nulled"], 1);
    let train = output(&r, "folds", "train");
    let folds = strings(&train, "fold");
    assert_eq!(rows(&train) + rows(&output(&r, "folds", "test")), 3);
    assert!(folds.iter().all(|f| matches!(f.as_deref(), Some("0" | "1"))), "{folds:?}");
}

#[test]
fn kfold_with_more_folds_than_train_rows_fails_at_folds() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write(
        "p.toml",
        &orders_then(
            "few",
            r#"[stages.folds]
kind = "split"
inputs = ["orders"]
method = "kfold"
folds = 50
"#,
        ),
    );
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 1, "{r:#}");
    let error = stage_field(&r, "folds", "error").as_str().unwrap_or_default();
    assert!(error.contains("kfold needs at least 50 train rows for 50 folds"), "{error}");
    assert!(error.contains("folds = 50"), "the error shows the line: {error}");
}

#[test]
fn show_on_a_split_previews_train_and_test() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write(
        "p.toml",
        &orders_then(
            "shown",
            r#"[stages.halves]
kind = "split"
inputs = ["orders"]
test_fraction = 0.5
show = 2
"#,
        ),
    );
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("halves.train (first 2 of 4 rows):"), "{text}");
    assert!(text.contains("halves.test (first 2 of 4 rows):"), "{text}");
}

#[test]
fn the_online_retail_counts_per_operation() {
    let csv = std::env::var("SLUICE_RETAIL_CSV").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/online-retail/online_retail.csv").to_owned()
    });
    assert!(Path::new(&csv).is_file(), "the shared retail data must exist at {csv}");
    let s = Scratch::new();
    let file = s.write(
        "retail.toml",
        &format!(
            r#"[pipeline]
name = "retail-clean"

[stages.orders]
kind = "collect"
connector = "csv"
path = "{}"

[stages.tidy]
kind = "clean"
inputs = ["orders"]
drop_nulls = ["CustomerID"]
dedup = true
filter = "Quantity > 0"
"#,
            csv.replace('\\', "\\\\")
        ),
    );
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{r:#}");
    let ops = operations(&r, "tidy");
    assert_eq!(
        ops,
        [
            ("drop_nulls".to_string(), 541_909, 406_829),
            ("dedup".to_string(), 406_829, 401_604),
            ("filter".to_string(), 401_604, 392_732),
        ]
    );
    assert_eq!(stage_field(&r, "tidy", "rows_out"), 392_732);
}

#[test]
fn a_bad_op_config_points_at_its_line() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write(
        "bad.toml",
        r#"[pipeline]
name = "bad"

[stages.orders]
kind = "collect"
connector = "csv"
path = "data/orders.csv"

[stages.tidy]
kind = "clean"
inputs = ["orders"]
steps = [
  { drop_nulls = ["CustomerID"] },
  { dedup = { keys = ["InvoiceNo"], keep = "middle" } },
]
"#,
    );
    let out = s.run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = format!("{}{}", stdout(&out), stderr(&out));
    assert!(err.contains("bad.toml:14:"), "{err}");
    assert!(err.contains("`keep` must be \"first\" or \"last\""), "{err}");
}

#[test]
fn an_unknown_column_in_a_filter_points_inside_the_expression() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write(
        "typo.toml",
        r#"[pipeline]
name = "typo"

[stages.orders]
kind = "collect"
connector = "csv"
path = "data/orders.csv"

[stages.tidy]
kind = "clean"
inputs = ["orders"]
trim = ["Description"]
filter = "UnitPrice > 0 AND Quantiy > 0"
"#,
    );
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    // Line 13, column 29 is where `Quantiy` starts inside the string.
    assert!(err.contains("typo.toml:13:29"), "{err}");
    assert!(err.contains("there is no column `Quantiy` at this step"), "{err}");
    assert!(err.contains("did you mean `Quantity`?"), "{err}");
}

/// Every output, stage by stage, as (stage, output, rows rendered as text).
fn all_outputs(record: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for st in record["stages"].as_array().unwrap() {
        let name = st["name"].as_str().unwrap();
        for (output, path) in st["outputs"].as_object().unwrap() {
            let text = parquet_table(path.as_str().unwrap());
            out.push((name.to_string(), output.clone(), text));
        }
    }
    out
}

#[test]
fn outputs_are_the_same_whether_handed_over_in_memory_or_reread_from_parquet() {
    // `--memory-budget 0` makes every stage read its inputs back from Parquet; the default
    // hands them over in memory (and the last reader takes the only copy). Same results.
    let mut runs = Vec::new();
    for extra in [&[][..], &["--memory-budget", "0"][..]] {
        let s = Scratch::new();
        s.write("data/orders.csv", ORDERS);
        let file = s.write("p.toml", PIPELINE);
        let (code, r) = s.run_json(&file, extra);
        assert_eq!(code, 0, "{r:#}");
        runs.push(all_outputs(&r));
    }
    assert_eq!(runs[0].len(), 5, "orders, tidy (data, rejects), split (train, test): {:?}", runs[0]);
    assert_eq!(runs[0], runs[1]);
}

/// A clean stage `tidy` over ORDERS: drop_nulls, then a query that removes the Spanish rows.
fn sql_removing_rows(keep_rejects: bool) -> String {
    orders_then(
        "sql-step",
        &format!(
            r#"[stages.tidy]
kind = "clean"
inputs = ["orders"]
keep_rejects = {keep_rejects}
drop_nulls = ["CustomerID"]
sql = "SELECT * FROM input WHERE Country <> 'Spain'"
"#
        ),
    )
}

#[test]
fn rows_a_sql_step_removes_count_as_removed() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write("p.toml", &sql_removing_rows(false));
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{r:#}");
    let ops = operations(&r, "tidy");
    let ops: Vec<(&str, u64, u64)> = ops.iter().map(|(o, a, b)| (o.as_str(), *a, *b)).collect();
    assert_eq!(ops, [("drop_nulls", 8, 7), ("sql", 7, 5)]);
    assert_eq!(stage_field(&r, "tidy", "metrics")["rows_removed"], 3);
}

/// Regression: with keep_rejects, rows a `sql` step removed vanished (rows_rejected 0,
/// nothing in `rejects`), though nothing is to be dropped silently.
#[test]
fn with_keep_rejects_a_sql_step_that_removes_rows_fails_the_stage() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write("p.toml", &sql_removing_rows(true));
    let (code, r) = s.run_json(&file, &[]);
    assert_ne!(code, 0, "{r:#}");
    let error = stage_field(&r, "tidy", "error").to_string();
    assert!(
        error.contains("with `keep_rejects`, this `sql` step (step 1) was given 7 rows and returned 5 rows; rows cannot be traced through a query"),
        "{error}"
    );
    assert!(error.contains("with a `filter` step"), "{error}");
    // A query that drops rows and repeats others is refused too.
    let text = sql_removing_rows(true).replace(
        "SELECT * FROM input WHERE Country <> 'Spain'",
        "SELECT * FROM input WHERE Country <> 'Spain' UNION ALL SELECT * FROM input WHERE Country = 'France'",
    );
    assert!(text.contains("UNION ALL"));
    let file = s.write("p.toml", &text);
    let (code, r) = s.run_json(&file, &[]);
    assert_ne!(code, 0, "{r:#}");
    assert!(stage_field(&r, "tidy", "error").to_string().contains("was given 7 rows and returned"), "{r:#}");
}

/// Writes `data/nan.parquet`: `id`, and floats `a`, `b` and `x`, where `x` holds a NaN with
/// the sign bit clear (row 1) and one with it set (row 2, what `0.0 / 0.0` gives on x86).
fn write_nan_parquet(s: &Scratch) {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    let negative_nan = f64::from_bits(0xfff8_0000_0000_0000);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("a", DataType::Float64, false),
        Field::new("b", DataType::Float64, false),
        Field::new("x", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Float64Array::from(vec![1.0, 0.0, 500.0])),
            Arc::new(Float64Array::from(vec![1.0, 0.0, 1.0])),
            Arc::new(Float64Array::from(vec![1.0, f64::NAN, negative_nan])),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(s.path().join("data")).unwrap();
    let f = std::fs::File::create(s.path().join("data/nan.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn ints(batches: &[RecordBatch], col: &str) -> Vec<i64> {
    strings(batches, col).into_iter().map(|v| v.unwrap().parse().unwrap()).collect()
}

/// Regression: a NaN with the sign bit set (from a query's `0 / 0`, or read from Parquet)
/// compared below every number in `filter` and differed from other NaNs in `dedup`; the
/// docs say every NaN sorts above every number and equals every NaN.
#[test]
fn every_nan_compares_the_same_whatever_its_bits() {
    let s = Scratch::new();
    write_nan_parquet(&s);
    let file = s.write(
        "p.toml",
        r#"[pipeline]
name = "nan"

[stages.nums]
kind = "collect"
connector = "parquet"
path = "data/nan.parquet"

[stages.computed_high]
kind = "clean"
inputs = ["nums"]
steps = [{ sql = "SELECT id, a, b, a / b AS q FROM input" }, { filter = "q > 100" }]

[stages.computed_low]
kind = "clean"
inputs = ["nums"]
steps = [{ sql = "SELECT id, a, b, a / b AS q FROM input" }, { filter = "q < 0" }]

[stages.read_high]
kind = "clean"
inputs = ["nums"]
filter = "x > 100"

[stages.read_equal]
kind = "clean"
inputs = ["nums"]
filter = "x = 'NaN'::double"

[stages.read_dedup]
kind = "clean"
inputs = ["nums"]
select = ["x"]
dedup = true
"#,
    );
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{r:#}");
    // 0 / 0 is NaN, above 100 and not below 0; 500 / 1 is above 100.
    assert_eq!(ints(&output(&r, "computed_high", "data"), "id"), [2, 3]);
    assert_eq!(ints(&output(&r, "computed_low", "data"), "id"), Vec::<i64>::new());
    // Both NaNs read from Parquet give the same answer.
    assert_eq!(ints(&output(&r, "read_high", "data"), "id"), [2, 3]);
    assert_eq!(ints(&output(&r, "read_equal", "data"), "id"), [2, 3]);
    assert_eq!(stage_field(&r, "read_dedup", "metrics")["rows_removed"], 1);
}
