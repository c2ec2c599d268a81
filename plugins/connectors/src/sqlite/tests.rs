use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use serde_json::json;
use sluice_plugin::Watermark;

use super::*;
use crate::test_support::Out;

/// A database in a temp dir, built by `sql`.
fn db(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(sql).unwrap();
    (dir, path)
}

fn read_with(
    dir: &Path,
    cfg: Value,
    on_error: OnError,
    batch_size: usize,
    incremental: Option<&Watermark>,
) -> Result<Out, ConnectorError> {
    let cfg = cfg.as_object().unwrap().clone();
    let req = ReadRequest { stage: "s", config: &cfg, base_dir: dir, on_error, batch_size, incremental };
    Out::drain(SqliteConnector.read(&req)?.as_mut())
}

fn read(dir: &Path, cfg: Value) -> Result<Out, ConnectorError> {
    read_with(dir, cfg, OnError::Fail, 1000, None)
}

fn check(dir: &Path, cfg: Value) -> Vec<ConfigIssue> {
    let cfg = cfg.as_object().unwrap().clone();
    let req = ReadRequest {
        stage: "s",
        config: &cfg,
        base_dir: dir,
        on_error: OnError::Fail,
        batch_size: 10,
        incremental: None,
    };
    SqliteConnector.check(&req)
}

#[test]
fn a_table_larger_than_a_batch_streams_in_bounded_batches() {
    let (dir, _) = db("CREATE TABLE t (id INTEGER, name TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)
         INSERT INTO t SELECT i, 'row ' || i FROM n;");
    let out = read(dir.path(), json!({"path": "shop.db", "table": "t"})).unwrap();
    let sizes: Vec<usize> = out.batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    let ids: Vec<i64> =
        out.batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids, (1..=2500).collect::<Vec<_>>());
    assert_eq!(out.batches[2].column(1).as_string::<i32>().value(499), "row 2500");
}

#[test]
fn declared_types_map_to_arrow_types_and_nulls_work_in_every_one() {
    let (dir, _) = db("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n NUMERIC, ok BOOLEAN,
                                      d DATE, ts TIMESTAMP, v VARCHAR(10), big BIGINT, dt DATETIME);
         INSERT INTO t VALUES (1, 2.5, 'é', x'00ff', 3, 1, '2011-12-09', '2011-12-09 12:50:00', 'v', 9, 0);
         INSERT INTO t VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
         INSERT INTO t VALUES (-1, 0, '', x'', 1.25, 'false', '2000-02-29', '2011-12-09T12:50:00.5', '', -9,
                               1323435000);");
    let out = read(dir.path(), json!({"path": "shop.db", "table": "t"})).unwrap();
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    assert_eq!(
        out.types(),
        [
            DataType::Int64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Binary,
            DataType::Float64,
            DataType::Boolean,
            DataType::Date32,
            ts.clone(),
            DataType::Utf8,
            DataType::Int64,
            ts,
        ]
    );
    let t = out.table();
    let some = |v: &[&str]| v.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
    assert_eq!(
        t[0],
        some(&[
            "1",
            "2.5",
            "é",
            "00ff",
            "3.0",
            "true",
            "2011-12-09",
            "2011-12-09T12:50:00",
            "v",
            "9",
            "1970-01-01T00:00:00"
        ])
    );
    assert_eq!(t[1], vec![None; 11]);
    assert_eq!(
        t[2],
        some(&[
            "-1",
            "0.0",
            "",
            "",
            "1.25",
            "false",
            "2000-02-29",
            "2011-12-09T12:50:00.500",
            "",
            "-9",
            "2011-12-09T12:50:00"
        ])
    );
    assert!(out.rejects.is_empty());
}

#[test]
fn expression_columns_take_the_type_of_their_values() {
    let (dir, _) = db("CREATE TABLE t (a INTEGER, b REAL); INSERT INTO t VALUES (1, 1.5), (2, NULL);");
    let out = read(
        dir.path(),
        json!({"path": "shop.db", "query": "SELECT a * 2 AS twice, a + b AS total, 'x' || a AS label, NULL AS empty FROM t;"}),
    )
    .unwrap();
    assert_eq!(out.types(), [DataType::Int64, DataType::Float64, DataType::Utf8, DataType::Utf8]);
    assert_eq!(out.batches[0].column(1).as_primitive::<Float64Type>().value(0), 2.5);
    assert!(out.batches[0].column(1).is_null(1));
}

const MISMATCH: &str = "CREATE TABLE orders (id INTEGER, price REAL, day DATE);
     INSERT INTO orders VALUES (1, 2.5, '2011-12-09'), (2, 'abc', '2011-12-10'), (3, 4.0, '12/11/2011'),
                               (4, 1.0, '2011-12-12');";

#[test]
fn a_value_that_does_not_fit_fails_with_the_table_row_and_column() {
    let (dir, path) = db(MISMATCH);
    let err = read(dir.path(), json!({"path": "shop.db", "table": "orders"})).err().unwrap();
    match &err {
        ConnectorError::Malformed { file, line, reason } => {
            assert_eq!((file, *line), (&path, 2));
            assert_eq!(reason, "table `orders`, row 2, column `price`: `abc` (text) is not a float64");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn values_that_do_not_fit_are_skipped_or_quarantined_and_counted() {
    let (dir, _) = db(MISMATCH);
    let cfg = json!({"path": "shop.db", "table": "orders"});
    let out = read_with(dir.path(), cfg.clone(), OnError::Skip, 2, None).unwrap();
    assert_eq!(out.table().iter().map(|r| r[0].clone().unwrap()).collect::<Vec<_>>(), ["1", "4"]);
    assert_eq!(out.rejects.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3]);
    assert!(out.rejects.iter().all(|r| r.raw.is_empty()));
    assert!(out.rejects[1].reason.contains("column `day`: `12/11/2011` (text) is not a date (YYYY-MM-DD)"));
    assert!(out.rejects[0].source.ends_with("shop.db (table `orders`)"), "{}", out.rejects[0].source);

    let out = read_with(dir.path(), cfg, OnError::Quarantine, 1000, None).unwrap();
    assert_eq!(out.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    let raws: Vec<&str> = out.rejects.iter().map(|r| r.raw.as_str()).collect();
    assert_eq!(raws, ["[2,\"abc\",\"2011-12-10\"]", "[3,4.0,\"12/11/2011\"]"]);

    // Regression: an infinite REAL showed as null in `raw`.
    let (dir, _) = db("CREATE TABLE o (id INTEGER, price REAL, day DATE);
         INSERT INTO o VALUES (1, 9e999, 'soon'), (2, -9e999, 'later');");
    let cfg = json!({"path": "shop.db", "table": "o"});
    let out = read_with(dir.path(), cfg, OnError::Quarantine, 1000, None).unwrap();
    let raws: Vec<&str> = out.rejects.iter().map(|r| r.raw.as_str()).collect();
    assert_eq!(raws, [r#"[1,"Infinity","soon"]"#, r#"[2,"-Infinity","later"]"#]);
}

#[test]
fn bad_queries_and_unknown_tables_are_errors_at_their_key() {
    let (dir, _) = db("CREATE TABLE orders (id INTEGER);");
    let err = read(dir.path(), json!({"path": "shop.db", "query": "SELEC id FROM orders"})).err().unwrap();
    match err {
        ConnectorError::Config { key, message } => {
            assert_eq!(key, "query");
            assert!(
                message.starts_with("SQLite rejected the query: near \"SELEC\": syntax error"),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
    let err = read(dir.path(), json!({"path": "shop.db", "query": "SELECT nope FROM orders"})).err().unwrap();
    assert!(err.to_string().contains("no such column: nope"), "{err}");
    let err = read(dir.path(), json!({"path": "shop.db", "table": "order"})).err().unwrap();
    assert!(
        err.to_string().contains("table `order` is not in")
            && err.to_string().contains("did you mean `orders`"),
        "{err}"
    );

    let issues = check(dir.path(), json!({"path": "shop.db", "table": "order"}));
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].key, "table");
    assert!(check(dir.path(), json!({"path": "shop.db", "table": "orders"})).is_empty());
    let issues = check(dir.path(), json!({"path": "missing.db", "table": "orders"}));
    assert_eq!((issues[0].key.as_str(), issues[0].message.ends_with("does not exist")), ("path", true));
    assert!(!dir.path().join("missing.db").exists(), "a read must never create a database");
    std::fs::write(
        dir.path().join("notes.txt"),
        "not a database, just text that is long enough to not be one",
    )
    .unwrap();
    let issues = check(dir.path(), json!({"path": "notes.txt", "table": "orders"}));
    assert_eq!(issues[0].key, "path");
    assert!(issues[0].message.contains("is not a readable SQLite database"), "{:?}", issues[0]);
    let issues = check(dir.path(), json!({"path": "shop.db"}));
    assert_eq!(issues[0].key, "query");
}

#[test]
fn incremental_reads_push_the_watermark_into_the_query() {
    let (dir, _) = db("CREATE TABLE ev (id INTEGER, at TIMESTAMP, day DATE, note TEXT);
         INSERT INTO ev VALUES (1, '2011-12-09 12:00:00', '2011-12-08', 'a'), (2, '2011-12-09T12:50:00', '2011-12-09', 'b'),
                               (3, '2011-12-09 12:50:00.5', '2011-12-10', 'c'), (4, 1323436000, '2011-12-11', 'd');");
    let cfg = json!({"path": "shop.db", "table": "ev"});
    let ids = |wm: Watermark| -> Vec<i64> {
        let out = read_with(dir.path(), cfg.clone(), OnError::Fail, 10, Some(&wm)).unwrap();
        out.batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect()
    };
    assert_eq!(ids(Watermark { column: "id".into(), after: Some(json!(2)) }), [3, 4]);
    assert_eq!(ids(Watermark { column: "id".into(), after: None }), [1, 2, 3, 4]);
    assert_eq!(ids(Watermark { column: "at".into(), after: Some(json!("2011-12-09T12:50:00")) }), [3, 4]);
    assert_eq!(ids(Watermark { column: "day".into(), after: Some(json!("2011-12-09")) }), [3, 4]);
    assert_eq!(ids(Watermark { column: "note".into(), after: Some(json!("b")) }), [3, 4]);

    let wm = Watermark { column: "idd".into(), after: Some(json!(1)) };
    let err = read_with(dir.path(), cfg, OnError::Fail, 10, Some(&wm)).err().unwrap().to_string();
    assert!(err.contains("column `idd`") && err.contains("did you mean `id`"), "{err}");
}

/// Regression: a watermark kept in the declared type (`2020-01-01T10:00:00`) was compared
/// as text in the database and missed `2020-01-01 11:00:00`.
#[test]
fn a_watermark_on_a_column_declared_another_type_never_misses_rows() {
    let (dir, _) = db("CREATE TABLE wm (id INTEGER, ts TEXT, code TEXT);
         INSERT INTO wm VALUES (1, '2020-01-01 09:00:00', '8'), (2, '2020-01-01 11:00:00', '10');");
    let cfg = json!({"path": "shop.db", "table": "wm",
                     "schema": {"id": "int64", "ts": "timestamp", "code": "int64"}});
    let ids = |column: &str, after: Value| -> Vec<i64> {
        let wm = Watermark { column: column.into(), after: Some(after) };
        let out = read_with(dir.path(), cfg.clone(), OnError::Fail, 10, Some(&wm)).unwrap();
        out.batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect()
    };
    assert!(ids("ts", json!("2020-01-01T10:00:00")).contains(&2));
    assert!(ids("code", json!(9)).contains(&2));
}

/// Regression: a `NUMERIC` or `DECIMAL` column declared int64 or decimal was read as float64
/// first, so 9007199254740993 arrived as 9007199254740992 without a word.
#[test]
fn integers_declared_exact_keep_every_digit_whatever_the_affinity() {
    let (dir, _) = db("CREATE TABLE n (id INTEGER, u NUMERIC, d DECIMAL(20,0), x DOUBLE);
         INSERT INTO n VALUES (1, 9007199254740993, 9007199254740993, 9007199254740992), (2, 2.0, 1.5, 3);");
    let cfg = json!({"path": "shop.db", "table": "n",
                     "schema": {"id": "int64", "u": "int64", "d": "decimal(20, 1)", "x": "int64"}});
    let out = read(dir.path(), cfg).unwrap();
    assert_eq!(
        out.table(),
        [
            [
                Some("1".into()),
                Some("9007199254740993".into()),
                Some("9007199254740993.0".into()),
                Some("9007199254740992".into())
            ],
            [Some("2".into()), Some("2".into()), Some("1.5".into()), Some("3".into())],
        ]
    );
}

/// Regression: a malformed time (`1/2/2024`) compared as text below the watermark and was
/// dropped in the database, unseen by `on_error`; it now reaches the stage, which refuses it.
#[test]
fn malformed_times_reach_the_stage_instead_of_vanishing_in_the_filter() {
    let (dir, _) = db("CREATE TABLE e (id INTEGER, ts TEXT, day TEXT);
         INSERT INTO e VALUES (1, '2024-01-01 10:00:00', '2024-01-01'), (2, '1/2/2024', '2/1/2024'),
                              (3, '2024-01-01 12:00:00', '2024-01-03'), (4, NULL, NULL);");
    let cfg = json!({"path": "shop.db", "table": "e",
                     "schema": {"id": "int64", "ts": "timestamp", "day": "date"}});
    for (column, after) in [("ts", "2024-01-01T11:00:00"), ("day", "2024-01-02")] {
        let wm = Watermark { column: column.into(), after: Some(json!(after)) };
        let out = read_with(dir.path(), cfg.clone(), OnError::Skip, 10, Some(&wm)).unwrap();
        let ids: Vec<i64> = out
            .batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, [3], "{column}");
        assert_eq!(out.rejects.len(), 1, "{column}: the malformed row is refused, not lost");
    }
}

/// Regression: a column declared `COLLATE NOCASE` compared `'a' < 'B'` in the database,
/// while the collect stage compares bytes, so `a` after watermark `B` was never read.
#[test]
fn string_watermarks_compare_bytes_whatever_the_collation() {
    let (dir, _) = db("CREATE TABLE c (id INTEGER, code TEXT COLLATE NOCASE);
         INSERT INTO c VALUES (1, 'B'), (2, 'a');");
    let wm = Watermark { column: "code".into(), after: Some(json!("B")) };
    let out = read_with(dir.path(), json!({"path": "shop.db", "table": "c"}), OnError::Fail, 10, Some(&wm))
        .unwrap();
    assert_eq!(out.table(), [[Some("2".to_owned()), Some("a".to_owned())]]);
}

/// Regression: a contract converted an INTEGER declared `timestamp` as microseconds
/// (1970-01-01T00:26:40) although SQLite integers are read as seconds everywhere else, and
/// an integer declared `date` became a date no reader could open.
#[test]
fn a_contract_reads_integer_timestamps_as_seconds_and_refuses_integer_dates() {
    let (dir, _) = db("CREATE TABLE t (id INTEGER, created_at INTEGER, at TEXT);
         INSERT INTO t VALUES (1, 1600000000, '2020-09-13T12:26:40'), (2, NULL, NULL);");
    let cfg = json!({"path": "shop.db", "table": "t",
                     "schema": {"id": "int64", "created_at": "timestamp", "at": "timestamptz"}});
    let out = read(dir.path(), cfg).unwrap();
    let micros = |c: usize| -> Vec<Option<i64>> {
        let col = out.batches[0].column(c).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        col.iter().collect()
    };
    assert_eq!(micros(1), [Some(1_600_000_000_000_000), None], "seconds since 1970");
    assert_eq!(micros(2), [Some(1_600_000_000_000_000), None], "ISO text, as UTC");
    let cfg =
        json!({"path": "shop.db", "query": "SELECT '2020-01-01 10:00:00' AS v", "schema": {"v": "date"}});
    let err = read(dir.path(), cfg).unwrap_err().to_string();
    assert!(err.contains("`2020-01-01 10:00:00` (text) is not a date"), "the time is not dropped: {err}");
    let cfg = json!({"path": "shop.db", "query": "SELECT 1600000000 AS v", "schema": {"v": "date"}});
    let err = read(dir.path(), cfg).unwrap_err().to_string();
    assert!(err.contains("column `v`: `1600000000` (integer) is not a date"), "{err}");
}

/// Regression: a contract made `true` of any non-zero number and any text (2, -1, 'yes').
#[test]
fn a_contract_converts_to_bool_only_0_1_true_and_false() {
    let (dir, _) = db("CREATE TABLE t (a INTEGER);");
    let bool_of = |expr: &str| {
        let cfg = json!({"path": "shop.db", "query": format!("SELECT {expr} AS v"), "schema": {"v": "bool"}});
        read(dir.path(), cfg).map(|out| out.table()[0][0].clone()).map_err(|e| e.to_string())
    };
    assert_eq!(bool_of("1"), Ok(Some("true".into())));
    assert_eq!(bool_of("'false'"), Ok(Some("false".into())));
    for bad in ["2", "-1", "'yes'", "0.5"] {
        let err = bool_of(bad).unwrap_err();
        assert!(err.contains("column `v`") && err.contains("is not a bool"), "{bad}: {err}");
    }
}

#[test]
fn the_database_file_is_the_source() {
    let (dir, path) = db("CREATE TABLE t (a INTEGER);");
    let cfg = json!({"path": "shop.db", "table": "t"});
    let cfg = cfg.as_object().unwrap();
    let req = ReadRequest {
        stage: "s",
        config: cfg,
        base_dir: dir.path(),
        on_error: OnError::Fail,
        batch_size: 10,
        incremental: None,
    };
    assert_eq!(SqliteConnector.sources(&req).unwrap(), Sources::Files(vec![path]));
    let out = read(dir.path(), json!({"path": "shop.db", "table": "t"})).unwrap();
    assert_eq!(out.batches[0].num_rows(), 0);
}

#[test]
fn a_declared_schema_fixes_the_output_and_is_checked_against_the_result() {
    let (dir, _) = db("CREATE TABLE t (id INTEGER, price NUMERIC, label TEXT);
         INSERT INTO t VALUES (1, 2.5, '10'), (2, NULL, NULL);");
    let cfg = json!({"path": "shop.db", "table": "t",
                     "schema": {"label": "int32", "id": "int64", "price": "float64"}});
    // Known without opening the database, so validate can check downstream stages.
    let obj = cfg.as_object().unwrap().clone();
    let req = ReadRequest {
        stage: "s",
        config: &obj,
        base_dir: Path::new("/nonexistent"),
        on_error: OnError::Fail,
        batch_size: 10,
        incremental: None,
    };
    let declared = SqliteConnector.declared_schema(&req).unwrap();
    assert_eq!(
        declared.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
        ["label", "id", "price"]
    );

    let out = read(dir.path(), cfg).unwrap();
    assert_eq!(out.names(), ["label", "id", "price"], "the declared order");
    assert_eq!(out.types(), [DataType::Int32, DataType::Int64, DataType::Float64]);
    assert_eq!(out.batches[0].column(0).as_primitive::<arrow::datatypes::Int32Type>().value(0), 10);
    assert!(out.batches[0].column(0).is_null(1));

    let err = read(
        dir.path(),
        json!({"path": "shop.db", "table": "t", "schema": {"id": "int64", "price": "float64"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("column `label` (string), which `schema` does not declare"), "{err}");
    let err = read(
        dir.path(),
        json!({"path": "shop.db", "table": "t", "schema": {"id": "int64", "prise": "float64", "label": "string"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`schema.prise`") && err.contains("did you mean `price`"), "{err}");
    let err = read(
        dir.path(),
        json!({"path": "shop.db", "query": "SELECT id, 'x' || label AS label FROM t", "schema": {"id": "int64", "label": "int64"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`schema.label`") && err.contains("x10"), "a value that does not convert: {err}");
}
