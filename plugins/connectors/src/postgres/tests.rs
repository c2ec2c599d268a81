//! These tests need a server: set `SLUICE_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). Unset, each test says it did not run and
//! passes; set but unreachable, each test fails.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, TimeUnit};
use arrow::util::display::array_value_to_string;
use serde_json::json;
use sluice_plugin::Watermark;

use super::*;
use crate::test_support::Out;

const URL_VAR: &str = "SLUICE_TEST_POSTGRES_URL";

/// A schema of its own for one test, dropped afterwards (also when the test fails).
struct TestDb {
    url: String,
    schema: String,
    client: Client,
}

impl TestDb {
    /// `None` (after saying so) when no server is configured.
    fn new(test: &str) -> Option<Self> {
        let Ok(url) = std::env::var(URL_VAR) else {
            println!("{test}: did not run; set {URL_VAR} to run it against a PostgreSQL server");
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let schema =
            format!("sluice_test_{}_{}_{test}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut client = Client::connect(&url, NoTls)
            .unwrap_or_else(|e| panic!("{URL_VAR} is set but the server is unreachable: {e}"));
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        Some(TestDb { url, schema, client })
    }

    fn exec(&mut self, sql: &str) {
        let sql = format!("SET search_path TO {}; {sql}", self.schema);
        self.client.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn cfg(&self, extra: Value) -> Value {
        let mut cfg = json!({"url": self.url});
        for (k, v) in extra.as_object().unwrap() {
            let v = match (k.as_str(), v) {
                // Tables live in the test's schema.
                ("table", Value::String(t)) => Value::String(format!("{}.{t}", self.schema)),
                ("query", Value::String(q)) => Value::String(q.replace("{s}", &self.schema)),
                _ => v.clone(),
            };
            cfg[k] = v;
        }
        cfg
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self.client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema));
    }
}

/// Every row as displayed strings (`None` for NULL). Arrow cannot print named time zones
/// without chrono-tz, so UTC timestamps are shown as ISO text with `Z`.
fn table(out: &Out) -> Vec<Vec<Option<String>>> {
    out.table_with(|c, r| match c.data_type() {
        DataType::Timestamp(_, Some(_)) => {
            let t = c.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(r);
            crate::values::format_timestamp(t) + "Z"
        }
        _ => array_value_to_string(c, r).unwrap(),
    })
}

/// The first column, read as int4.
fn first_column_i32(out: &Out) -> Vec<i32> {
    out.batches.iter().flat_map(|b| b.column(0).as_primitive::<Int32Type>().values().to_vec()).collect()
}

fn read_with(
    cfg: Value,
    on_error: OnError,
    batch_size: usize,
    incremental: Option<&Watermark>,
) -> Result<Out, ConnectorError> {
    let cfg = cfg.as_object().unwrap().clone();
    let req =
        ReadRequest { stage: "s", config: &cfg, base_dir: Path::new("."), on_error, batch_size, incremental };
    Out::drain(PostgresConnector.read(&req)?.as_mut())
}

fn read(cfg: Value) -> Result<Out, ConnectorError> {
    read_with(cfg, OnError::Fail, 1000, None)
}

#[test]
fn a_large_table_streams_in_batches_of_at_most_batch_size() {
    let Some(mut db) = TestDb::new("large") else { return };
    db.exec("CREATE TABLE big AS SELECT g::int4 AS id, md5(g::text) AS h FROM generate_series(1, 10000) g;");
    let out =
        read_with(db.cfg(json!({"query": "SELECT * FROM {s}.big ORDER BY id"})), OnError::Fail, 1000, None)
            .unwrap();
    assert_eq!(out.batches.len(), 10);
    assert!(out.batches.iter().all(|b| b.num_rows() == 1000));
    assert_eq!(first_column_i32(&out), (1..=10_000).collect::<Vec<_>>());
    let out = read_with(db.cfg(json!({"table": "big"})), OnError::Fail, 3000, None).unwrap();
    let sizes: Vec<usize> = out.batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, [3000, 3000, 3000, 1000]);
}

#[test]
fn every_mapped_type_round_trips_and_is_null_when_null() {
    let Some(mut db) = TestDb::new("types") else { return };
    db.exec(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE t (i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, dec numeric(10, 2), num numeric,
                         txt text, vc varchar(5), bp char(3), nm name, ok bool, d date, ts timestamp,
                         tz timestamptz, j json, jb jsonb, u uuid, m mood);
         INSERT INTO t VALUES (-32768, 2147483647, -9223372036854775808, 1.5, -2.25, -12345678.91,
                               1234.5678, 'héllo', 'abc', 'x', 'nm', true, '2011-12-09',
                               '2011-12-09 12:50:00.123456', '2011-12-09 12:50:00+02', '{\"a\": [1, 2]}',
                               '{\"b\": null}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy');
         INSERT INTO t DEFAULT VALUES;",
    );
    let out = read(db.cfg(json!({"table": "t"}))).unwrap();
    let types: Vec<DataType> =
        out.batches[0].schema().fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(
        types,
        [
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(10, 2),
            DataType::Float64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
        ]
    );
    let t = table(&out);
    let row: Vec<String> = t[0].iter().map(|v| v.clone().unwrap()).collect();
    assert_eq!(
        row,
        [
            "-32768",
            "2147483647",
            "-9223372036854775808",
            "1.5",
            "-2.25",
            "-12345678.91",
            "1234.5678",
            "héllo",
            "abc",
            "x  ",
            "nm",
            "true",
            "2011-12-09",
            "2011-12-09T12:50:00.123456",
            "2011-12-09 10:50:00.000000Z",
            "{\"a\": [1, 2]}",
            "{\"b\": null}",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "happy",
        ]
    );
    assert_eq!(t[1], vec![None; 19]);
}

#[test]
fn an_unmappable_type_names_the_column_and_its_type() {
    let Some(mut db) = TestDb::new("unmappable") else { return };
    db.exec("CREATE TABLE shapes (id int4, spot point, span int4range);");
    let err = read(db.cfg(json!({"table": "shapes"}))).err().unwrap().to_string();
    assert!(err.contains("column `spot`") && err.contains("PostgreSQL type `point`"), "{err}");
    let err = read(db.cfg(json!({"query": "SELECT id, span FROM {s}.shapes"}))).err().unwrap().to_string();
    assert!(
        err.contains("column `span`") && err.contains("`int4range`") && err.contains("\"span\"::text"),
        "{err}"
    );
    // Cast as the message says, and it reads.
    let out = read(db.cfg(json!({"query": "SELECT id, span::text FROM {s}.shapes"}))).unwrap();
    assert_eq!(out.batches[0].num_columns(), 2);
}

#[test]
fn query_errors_carry_the_servers_message_and_position() {
    let Some(db) = TestDb::new("qerr") else { return };
    let err = read(db.cfg(json!({"query": "SELECT 1 FORM x"}))).err().unwrap();
    match err {
        ConnectorError::Config { key, message } => {
            assert_eq!(key, "query");
            assert_eq!(
                message,
                "PostgreSQL rejected the query: syntax error at or near \"x\" (at character 15 of the query)"
            );
        }
        other => panic!("{other}"),
    }
    let err = read(db.cfg(json!({"query": "SELECT nope FROM pg_class"}))).err().unwrap().to_string();
    assert!(err.contains("column \"nope\" does not exist") && err.contains("character 8"), "{err}");
    let err = read(db.cfg(json!({"table": "missing"}))).err().unwrap().to_string();
    assert!(err.contains("invalid `table`") && err.contains("does not exist"), "{err}");
    assert!(!err.contains("character"), "a position in generated SQL means nothing to the user: {err}");
    let err = read(db.cfg(json!({"query": "SELECT 1 / 0"}))).err().unwrap().to_string();
    assert!(err.contains("division by zero"), "{err}");
}

#[test]
fn the_password_never_appears_in_an_error() {
    let Some(db) = TestDb::new("secret") else { return };
    let secret = "Sup3r-S3cret_pw";
    let mut config = Config::from_str(&db.url).unwrap();
    config.password(secret);
    let host = match &config.get_hosts()[0] {
        Host::Tcp(h) => h.clone(),
        Host::Unix(p) => p.display().to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let dbname = config.get_dbname().unwrap_or("postgres").to_owned();
    let good = format!("postgres://{user}:{secret}@{host}:{port}/{dbname}");
    let closed = format!("postgres://{user}:{secret}@127.0.0.1:1/{dbname}?connect_timeout=2");
    let mut messages = Vec::new();
    // The server accepts or refuses the password; either way, no message may show it.
    for cfg in [
        json!({"url": good, "query": "SELEC 1"}),
        json!({"url": good, "query": format!("SELECT '{secret}'::int")}),
        json!({"url": closed, "table": "t"}),
        json!({"url": format!("postgres://{user}:{secret}@{host}:notaport/db"), "table": "t"}),
        json!({"url": format!("host={host} password={secret} bogus_option=1"), "table": "t"}),
    ] {
        messages.push(read(cfg.clone()).err().unwrap().to_string());
        let map = cfg.as_object().unwrap();
        let req = ReadRequest {
            stage: "s",
            config: map,
            base_dir: Path::new("."),
            on_error: OnError::Fail,
            batch_size: 10,
            incremental: None,
        };
        messages.extend(
            PostgresConnector.check(&req).into_iter().map(|i| format!("{}: {:?}", i.message, i.help)),
        );
    }
    assert!(messages.len() >= 5);
    for m in &messages {
        assert!(!m.contains(secret), "password leaked: {m}");
    }
    assert!(
        messages.iter().any(|m| m.contains("cannot connect to PostgreSQL at 127.0.0.1:1")),
        "{messages:?}"
    );
}

#[test]
fn incremental_reads_return_only_rows_after_the_watermark() {
    let Some(mut db) = TestDb::new("incr") else { return };
    db.exec(
        "CREATE TABLE ev (id int4, at timestamptz, local timestamp, day date, amount numeric(10, 2), tag text);
         INSERT INTO ev SELECT g, timestamptz '2011-12-09 12:00:00+00' + g * interval '1 minute',
                               timestamp '2011-12-09 12:00:00' + g * interval '1 minute',
                               date '2011-12-01' + g, g * 1.5, 'tag' || g
                        FROM generate_series(1, 10) g;",
    );
    let ids = |column: &str, after: Value| -> Vec<i32> {
        let wm = Watermark { column: column.into(), after: Some(after) };
        first_column_i32(&read_with(db.cfg(json!({"table": "ev"})), OnError::Fail, 4, Some(&wm)).unwrap())
    };
    assert_eq!(ids("id", json!(7)), [8, 9, 10]);
    assert_eq!(ids("at", json!("2011-12-09T12:08:00Z")), [9, 10]);
    assert_eq!(ids("local", json!("2011-12-09T12:08:30")), [9, 10]);
    assert_eq!(ids("day", json!("2011-12-09")), [9, 10]);
    assert_eq!(ids("amount", json!("13.50")), [10]);
    assert_eq!(ids("tag", json!("tag7")), [8, 9]);
    let everything = Watermark { column: "id".into(), after: None };
    let all = read_with(db.cfg(json!({"table": "ev"})), OnError::Fail, 4, Some(&everything)).unwrap();
    assert_eq!(first_column_i32(&all), (1..=10).collect::<Vec<_>>());
    let wm = Watermark { column: "ammount".into(), after: Some(json!(1)) };
    let err =
        read_with(db.cfg(json!({"table": "ev"})), OnError::Fail, 4, Some(&wm)).err().unwrap().to_string();
    assert!(err.contains("`ammount`") && err.contains("did you mean `amount`"), "{err}");
}

#[test]
fn values_without_an_arrow_equivalent_follow_on_error() {
    let Some(mut db) = TestDb::new("unfit") else { return };
    db.exec("CREATE TABLE d (id int4, day date); INSERT INTO d VALUES (1, '2011-12-09'), (2, 'infinity'), (3, NULL);");
    let cfg = db.cfg(json!({"query": "SELECT * FROM {s}.d ORDER BY id"}));
    let err = read(cfg.clone()).err().unwrap().to_string();
    assert!(err.contains("row 2, column `day`: `infinity` has no Arrow date equivalent"), "{err}");
    let out = read_with(cfg.clone(), OnError::Skip, 10, None).unwrap();
    assert_eq!(first_column_i32(&out), [1, 3]);
    assert_eq!((out.rejects.len(), out.rejects[0].line, out.rejects[0].raw.as_str()), (1, 2, ""));
    let out = read_with(cfg, OnError::Quarantine, 10, None).unwrap();
    assert_eq!(out.rejects[0].raw, "{\"id\":2,\"day\":\"infinity\"}");
}

#[test]
fn freshness_decides_how_long_a_read_is_cached() {
    let sources = |cfg: Value| {
        let map = cfg.as_object().unwrap().clone();
        let req = ReadRequest {
            stage: "s",
            config: &map,
            base_dir: Path::new("."),
            on_error: OnError::Fail,
            batch_size: 10,
            incremental: None,
        };
        (PostgresConnector.sources(&req), PostgresConnector.check(&req))
    };
    let url = "postgres://u:pw@db.invalid/x";
    assert_eq!(sources(json!({"url": url, "table": "t"})).0.unwrap(), Sources::Volatile);
    match sources(json!({"url": url, "table": "t", "freshness": "1h"})).0.unwrap() {
        Sources::Token(t) => {
            assert!(t.starts_with("postgres freshness 3600s period ") && !t.contains("pw"), "{t}")
        }
        other => panic!("{other:?}"),
    }
    let (_, issues) = sources(json!({"url": url, "table": "t", "freshness": "soon"}));
    assert_eq!(issues[0].key, "freshness");
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
    assert_eq!(parse_duration("0h"), None);
    assert_eq!(parse_duration("h"), None);
    let (_, issues) = sources(json!({"url": "", "query": "SELECT 1"}));
    assert_eq!((issues[0].key.as_str(), issues[0].message.as_str()), ("url", "is empty"));
}

#[test]
fn a_declared_schema_converts_the_result_and_catches_a_changed_table() {
    let Some(mut db) = TestDb::new("contract") else { return };
    db.exec(
        "CREATE TABLE orders (id int4, amount numeric(10, 2), placed timestamptz, note text);
         INSERT INTO orders VALUES (1, 12.50, '2011-12-09 12:50:00+00', '7'), (2, NULL, NULL, NULL);",
    );
    let schema = json!({"id": "int64", "amount": "float64", "placed": "timestamptz", "note": "int16"});
    let out = read(db.cfg(json!({"table": "orders", "schema": schema}))).unwrap();
    assert_eq!(
        out.types(),
        [
            DataType::Int64,
            DataType::Float64,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Int16
        ]
    );
    assert_eq!(
        table(&out),
        vec![
            vec![
                Some("1".into()),
                Some("12.5".into()),
                Some("2011-12-09 12:50:00.000000Z".into()),
                Some("7".into())
            ],
            vec![Some("2".into()), None, None, None],
        ]
    );

    // The table changes under the pipeline: the read fails at the contract, naming the column.
    db.exec("ALTER TABLE orders ADD COLUMN channel text");
    let err = read(db.cfg(json!({"table": "orders", "schema": schema}))).unwrap_err().to_string();
    assert!(err.contains("column `channel` (string), which `schema` does not declare"), "{err}");
    db.exec("ALTER TABLE orders DROP COLUMN channel; ALTER TABLE orders RENAME COLUMN amount TO total");
    let err = read(db.cfg(json!({"table": "orders", "schema": schema}))).unwrap_err().to_string();
    assert!(err.contains("`schema.amount`") && err.contains("declared but table"), "{err}");
}
