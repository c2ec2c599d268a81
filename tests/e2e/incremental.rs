//! Incremental collect: a second run after rows were appended fetches only the new rows and
//! the output is the accumulated data; a failed run leaves the watermark where it was.

use crate::util::*;

const HEADER: &str = "InvoiceNo,InvoiceDate,Amount\n";

fn pipeline(s: &Scratch) -> std::path::PathBuf {
    s.write(
        "inc.toml",
        "[pipeline]\nname = \"inc\"\n\n[stages.orders]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/orders.csv\"\nincremental = { column = \"InvoiceDate\" }\n\n[stages.total]\nkind = \"feature-extract\"\ninputs = [\"orders\"]\nsql = \"SELECT COUNT(*) AS n, SUM(Amount) AS amount FROM orders\"\n",
    )
}

fn metric(r: &serde_json::Value, key: &str) -> serde_json::Value {
    stage_field(r, "orders", "metrics")[key].clone()
}

/// The `total` stage's single row, read from its Parquet output: (n, amount).
fn total(r: &serde_json::Value) -> (i64, i64) {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    let path = stage_field(r, "total", "outputs")["data"].as_str().unwrap().to_string();
    let batches = read_parquet(path);
    let b = &batches[0];
    (b.column(0).as_primitive::<Int64Type>().value(0), b.column(1).as_primitive::<Int64Type>().value(0))
}

#[test]
fn appended_rows_are_fetched_alone_and_accumulate() {
    let s = Scratch::new();
    let file = pipeline(&s);
    s.write(
        "data/orders.csv",
        &format!("{HEADER}1,2011-01-01 10:00:00,10\n2,2011-01-02 10:00:00,20\n3,2011-01-03 10:00:00,30\n"),
    );
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(metric(&r, "rows_new"), 3);
    assert_eq!(metric(&r, "watermark"), "2011-01-03T10:00:00");
    assert_eq!(total(&r), (3, 60));

    // Two new rows and one late row (older than the watermark).
    s.write(
        "data/orders.csv",
        &format!(
            "{HEADER}1,2011-01-01 10:00:00,10\n2,2011-01-02 10:00:00,20\n3,2011-01-03 10:00:00,30\n\
             4,2011-01-04 09:00:00,40\n0,2010-12-31 23:00:00,1000\n5,2011-01-05 11:30:00,50\n"
        ),
    );
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(stage_field(&r, "orders", "cache"), "miss");
    assert_eq!(metric(&r, "rows_new"), 2, "only the appended rows are new");
    assert_eq!(metric(&r, "rows_below_watermark"), 4, "three old rows and the late one");
    assert_eq!(metric(&r, "watermark"), "2011-01-05T11:30:00");
    assert_eq!(stage_field(&r, "orders", "rows_out"), 5, "the output is the accumulated data");
    assert_eq!(total(&r), (5, 150), "downstream sees every part");
    let dir = stage_field(&r, "orders", "outputs")["data"].as_str().unwrap().to_string();
    let parts = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(parts, 2, "one Parquet part per run in {dir}");
}

#[test]
fn a_failed_run_does_not_advance_the_watermark() {
    let s = Scratch::new();
    let file = pipeline(&s);
    let base = format!("{HEADER}1,2011-01-01 10:00:00,10\n2,2011-01-02 10:00:00,20\n");
    s.write("data/orders.csv", &base);
    let (code, _) = s.run_json(&file, &[]);
    assert_eq!(code, 0);

    // A new row, then a malformed one: the stage fails (on_error = "fail").
    s.write("data/orders.csv", &format!("{base}3,2011-01-03 10:00:00,30\n4,2011-01-04 10:00:00,40,extra\n"));
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 1);
    assert_eq!(stage_field(&r, "orders", "status"), "failed");

    // Fixed: the row the failed run had already read is fetched again, exactly once.
    s.write("data/orders.csv", &format!("{base}3,2011-01-03 10:00:00,30\n4,2011-01-04 10:00:00,40\n"));
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(metric(&r, "rows_new"), 2);
    assert_eq!(metric(&r, "watermark"), "2011-01-04T10:00:00");
    assert_eq!(total(&r), (4, 100));
}

#[test]
fn an_unknown_watermark_column_is_named() {
    let s = Scratch::new();
    s.write("data/orders.csv", &format!("{HEADER}1,2011-01-01 10:00:00,10\n"));
    let file = s.write(
        "bad.toml",
        "[pipeline]\nname = \"bad\"\n\n[stages.orders]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/orders.csv\"\nincremental = { column = \"InvoiceDat\" }\nshow = true\n",
    );
    let out = s.run(&["validate", "--data", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no column `InvoiceDat`"), "{err}");
    assert!(err.contains("InvoiceDate"), "did you mean: {err}");
    // At the key, not at the stage header.
    assert!(err.contains("bad.toml:8:"), "{err}");
    // Without --data nothing is read, so nothing is known yet: valid.
    let out = s.run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The run names it too.
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no column `InvoiceDat`"), "{}", stderr(&out));
}

#[test]
fn validate_checks_the_watermark_column_against_the_last_runs_schema() {
    let s = Scratch::new();
    s.write("data/orders.csv", &format!("{HEADER}1,2011-01-01 10:00:00,10\n"));
    let file = pipeline(&s);
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The column is then renamed in the file only: the recorded schema knows better.
    let text =
        std::fs::read_to_string(&file).unwrap().replace("column = \"InvoiceDate\"", "column = \"Invoice\"");
    std::fs::write(&file, text).unwrap();
    let out = s.run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("no column `Invoice`"), "{err}");
    assert!(err.contains("inc.toml:8:"), "{err}");
    // A column that exists but cannot order rows is refused before any run too.
    let text = std::fs::read_to_string(&file).unwrap().replace("column = \"Invoice\"", "column = \"Flag\"");
    std::fs::write(&file, text).unwrap();
    s.write("data/orders.csv", "InvoiceNo,InvoiceDate,Amount,Flag\n1,2011-01-01 10:00:00,10,true\n");
    let out = s.run(&["validate", "--data", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("cannot hold a watermark"), "{}", stderr(&out));
}

#[test]
fn force_is_a_full_refresh_that_rereads_the_whole_source() {
    let s = Scratch::new();
    let file = pipeline(&s);
    s.write("data/orders.csv", &format!("{HEADER}1,2011-01-01 10:00:00,10\n2,2011-01-02 10:00:00,20\n"));
    let (code, _) = s.run_json(&file, &[]);
    assert_eq!(code, 0);

    // History was corrected at the source: an incremental run cannot see that…
    s.write("data/orders.csv", &format!("{HEADER}1,2011-01-01 10:00:00,15\n2,2011-01-02 10:00:00,25\n"));
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(metric(&r, "rows_new"), 0);
    assert_eq!(total(&r), (2, 30));

    // …a forced run starts over: every row is read again, one part, same watermark.
    let (code, r) = s.run_json(&file, &["--force", "orders"]);
    assert_eq!(code, 0);
    assert_eq!(stage_field(&r, "orders", "reason"), "forced");
    assert_eq!(metric(&r, "rows_new"), 2);
    assert_eq!(metric(&r, "watermark"), "2011-01-02T10:00:00");
    assert_eq!(total(&r), (2, 40));
    let dir = stage_field(&r, "orders", "outputs")["data"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "the old parts are gone from {dir}");

    // The next plain run, source unchanged, reuses the refreshed data, not the stale one.
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(stage_field(&r, "orders", "cache"), "hit");
    assert_eq!(total(&r), (2, 40));
}

/// Regression: a NaN in the watermark column made the recorded watermark `null`, so every
/// later run re-read and appended everything again; an infinite maximum did the same.
#[test]
fn nan_and_infinite_values_never_make_a_run_read_everything_again() {
    let s = Scratch::new();
    let file = s.write(
        "nan.toml",
        "[pipeline]\nname = \"nan\"\n\n[stages.orders]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/f.csv\"\nincremental = { column = \"f\" }\n",
    );
    s.write("data/f.csv", "id,f\n1,1.0\n2,NaN\n");
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(metric(&r, "rows_new"), 1);
    assert_eq!(metric(&r, "rows_null_watermark"), 1, "NaN cannot be placed, like NULL");
    assert_eq!(metric(&r, "watermark"), 1.0);

    s.write("data/f.csv", "id,f\n1,1.0\n2,NaN\n3,2.0\n4,inf\n");
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(metric(&r, "rows_new"), 2);
    assert_eq!(metric(&r, "watermark"), "Infinity");
    assert_eq!(stage_field(&r, "orders", "rows_out"), 3);

    s.write("data/f.csv", "id,f\n1,1.0\n2,NaN\n3,2.0\n4,inf\n5,3.0\n");
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(metric(&r, "rows_new"), 0, "nothing is above infinity");
    assert_eq!(stage_field(&r, "orders", "rows_out"), 3, "nothing was appended twice");
}
