//! These tests need a server: set `SLUICE_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). Unset, each test says it did not run and
//! passes; set but unreachable, each test fails. The TLS tests expect the server to offer
//! TLS with a self-signed certificate (Debian's default `ssl = on` with the snakeoil one).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, TimeUnit};
use arrow::util::display::array_value_to_string;
use serde_json::json;
use sluice_plugin::Watermark;

use ::postgres::NoTls;

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
fn numeric_casts_in_a_query_and_numeric_domains_read_as_exact_decimals() {
    let Some(mut db) = TestDb::new("numcast") else { return };
    db.exec(
        "CREATE DOMAIN price AS numeric(6, 3);
         CREATE TABLE n (raw numeric, p price);
         INSERT INTO n VALUES (0.1234567890123456789, 12.345);",
    );
    let out = read(db.cfg(json!({
        "query": "SELECT raw::numeric(30, 25) AS exact, (raw * 2)::numeric(12, 4) AS twice, p FROM {s}.n"
    })))
    .unwrap();
    let types: Vec<DataType> =
        out.batches[0].schema().fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(
        types,
        [DataType::Decimal128(30, 25), DataType::Decimal128(12, 4), DataType::Decimal128(6, 3)]
    );
    let row: Vec<String> = table(&out)[0].iter().map(|v| v.clone().unwrap()).collect();
    assert_eq!(row, ["0.1234567890123456789000000", "0.2469", "12.345"]);
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
        messages.iter().any(|m| m.contains("cannot connect to PostgreSQL at 127.0.0.1:1")
            && m.to_lowercase().contains("refused")),
        "the cause is named: {messages:?}"
    );
}

#[test]
fn a_missing_database_is_named_in_the_servers_words() {
    let Some(db) = TestDb::new("no_db") else { return };
    let s = Server::of(&db.url);
    let err = read(json!({"url": format!("postgres://{}@{}:{}/sluice_no_such_db", s.user, s.ip, s.port), "query": "SELECT 1"}))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("database \"sluice_no_such_db\" does not exist"), "{err}");
}

#[test]
fn incremental_reads_return_only_rows_after_the_watermark() {
    let Some(mut db) = TestDb::new("incr") else { return };
    db.exec(
        "CREATE TABLE ev (id int4, at timestamptz, local timestamp, day date, amount numeric(10, 2), tag text,
                         f float8 GENERATED ALWAYS AS (CASE WHEN id = 10 THEN 'Infinity'::float8 ELSE id END) STORED);
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
    assert_eq!(ids("f", json!("Infinity")), Vec::<i32>::new(), "nothing is above infinity");
    let everything = Watermark { column: "id".into(), after: None };
    let all = read_with(db.cfg(json!({"table": "ev"})), OnError::Fail, 4, Some(&everything)).unwrap();
    assert_eq!(first_column_i32(&all), (1..=10).collect::<Vec<_>>());
    let wm = Watermark { column: "ammount".into(), after: Some(json!(1)) };
    let err =
        read_with(db.cfg(json!({"table": "ev"})), OnError::Fail, 4, Some(&wm)).err().unwrap().to_string();
    assert!(err.contains("`ammount`") && err.contains("did you mean `amount`"), "{err}");
}

/// Regression: a watermark is kept in the declared type; pushed down in the column's own
/// type it compared `2020-01-01T10:00:00` as text and missed `2020-01-01 11:00:00`, and
/// failed every later run on `13.0 is not an integer` or `9 is not a string`.
#[test]
fn a_watermark_on_a_column_declared_another_type_never_misses_rows() {
    let Some(mut db) = TestDb::new("wm_declared") else { return };
    db.exec(
        "CREATE TABLE wm (id int4, ts text, n int4, code text);
         INSERT INTO wm VALUES (1, '2020-01-01 09:00:00', 12, '8'), (2, '2020-01-01 11:00:00', 14, '10');",
    );
    let schema = json!({"id": "int32", "ts": "timestamp", "n": "float64", "code": "int64"});
    let ids = |column: &str, after: Value| -> Vec<i32> {
        let wm = Watermark { column: column.into(), after: Some(after) };
        let cfg = db.cfg(json!({"query": "SELECT * FROM {s}.wm ORDER BY id", "schema": schema}));
        first_column_i32(&read_with(cfg, OnError::Fail, 10, Some(&wm)).unwrap())
    };
    assert!(ids("ts", json!("2020-01-01T10:00:00")).contains(&2));
    assert!(ids("n", json!(13.0)).contains(&2));
    assert!(ids("code", json!(9)).contains(&2));
    // Where the declared type is the column's own, the filter still runs in the database.
    let schema = json!({"id": "int32", "ts": "string", "n": "int64", "code": "string"});
    let wm = Watermark { column: "n".into(), after: Some(json!(13)) };
    let cfg = db.cfg(json!({"table": "wm", "schema": schema}));
    assert_eq!(first_column_i32(&read_with(cfg, OnError::Fail, 10, Some(&wm)).unwrap()), [2]);
}

/// Regression: the server compared with the column's collation (`'a' < 'B'` in ICU) while
/// the collect stage compares bytes, so `a` inserted after watermark `B` was never read.
#[test]
fn string_watermarks_compare_bytes_whatever_the_collation() {
    let Some(mut db) = TestDb::new("wm_collate") else { return };
    db.exec(
        "CREATE TABLE c (id int4, code text COLLATE \"en-x-icu\", v varchar(5) COLLATE \"en-x-icu\",
                         k char(3), tag uuid);
         INSERT INTO c VALUES (1, 'B', 'B', 'B', '00000000-0000-0000-0000-00000000000b'),
                              (2, 'a', 'a', 'a', '00000000-0000-0000-0000-00000000000a');",
    );
    let ids = |column: &str, after: &str| -> Vec<i32> {
        let wm = Watermark { column: column.into(), after: Some(json!(after)) };
        first_column_i32(&read_with(db.cfg(json!({"table": "c"})), OnError::Fail, 10, Some(&wm)).unwrap())
    };
    assert_eq!(ids("code", "B"), [2]);
    assert_eq!(ids("v", "B"), [2]);
    // char(n) is compared padded by the stage; the database may return more, never less.
    assert!(ids("k", "B  ").contains(&2));
    assert_eq!(ids("tag", "00000000-0000-0000-0000-00000000000a"), [1]);
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

    // Regression: values after the first that does not fit showed as null in `raw`.
    let cfg = db.cfg(json!({"query": "SELECT 5 AS id, 'infinity'::date AS d, 'infinity'::timestamp AS ts,
                                      '-infinity'::timestamptz AS tstz, '-Infinity'::float8 AS f"}));
    let out = read_with(cfg, OnError::Quarantine, 10, None).unwrap();
    assert_eq!(
        out.rejects[0].raw,
        r#"{"id":5,"d":"infinity","ts":"infinity","tstz":"-infinity","f":"-Infinity"}"#
    );
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

/// Regression: a contract converted integers to `timestamp` as microseconds and to `date` as
/// days (1600000000 became 1970-01-01T00:26:40, or a date no reader could open).
#[test]
fn a_contract_refuses_numbers_declared_as_dates_or_timestamps() {
    let Some(db) = TestDb::new("contract_int_ts") else { return };
    for (query, ty) in [
        ("SELECT 1600000000::int8 AS v", "timestamp"),
        ("SELECT 1600000000 AS v", "date"),
        ("SELECT 1.5::float8 AS v", "timestamptz"),
    ] {
        let err = read(db.cfg(json!({"query": query, "schema": {"v": ty}}))).unwrap_err().to_string();
        assert!(err.contains("`schema.v`") && err.contains("convert it in the query"), "{query}: {err}");
    }
}

/// Regression: a contract made `true` of any non-zero number and any text (2, 2.5, 'yes').
#[test]
fn a_contract_converts_to_bool_only_0_1_true_and_false() {
    let Some(db) = TestDb::new("contract_bool") else { return };
    let bool_of = |expr: &str| {
        let cfg = db.cfg(json!({"query": format!("SELECT {expr} AS v"), "schema": {"v": "bool"}}));
        read(cfg).map(|out| table(&out)[0][0].clone()).map_err(|e| e.to_string())
    };
    assert_eq!(bool_of("1::int4"), Ok(Some("true".into())));
    assert_eq!(bool_of("0::int8"), Ok(Some("false".into())));
    assert_eq!(bool_of("'FALSE'::text"), Ok(Some("false".into())));
    for bad in ["2::int4", "-1::int2", "'yes'::text"] {
        let err = bool_of(bad).unwrap_err();
        assert!(err.contains("`schema.v`") && err.contains("is not bool"), "{bad}: {err}");
    }
    let err = bool_of("2.5::float8").unwrap_err();
    assert!(err.contains("`schema.v`") && err.contains("cannot be converted to the declared bool"), "{err}");
}

/// Regression: a `numeric` without precision declared int64 or decimal was read as float64
/// first, so 9007199254740993 arrived as 9007199254740992 without a word.
#[test]
fn a_numeric_without_precision_declared_exact_keeps_every_digit() {
    let Some(mut db) = TestDb::new("numeric_exact") else { return };
    db.exec("CREATE TABLE big (c numeric); INSERT INTO big VALUES (1), (9007199254740993)");
    for (ty, want) in [
        ("int64", "9007199254740993"),
        ("decimal(20, 0)", "9007199254740993"),
        ("decimal(38, 2)", "9007199254740993.00"),
    ] {
        let out = read(db.cfg(json!({"table": "big", "schema": {"c": ty}}))).unwrap();
        assert_eq!(table(&out)[1][0].as_deref(), Some(want), "{ty}");
    }
    // A fraction declared int64 is a row error, not a rounded value.
    db.exec("INSERT INTO big VALUES (2.5)");
    let cfg = db.cfg(json!({"table": "big", "schema": {"c": "int64"}}));
    let out = read_with(cfg, OnError::Skip, 10, None).unwrap();
    assert_eq!((table(&out).len(), out.rejects.len()), (2, 1));
}

/// Regression: a numeric beyond float64's range read as infinity, with or without a
/// declared float64, although a declared float never overflows to infinity.
#[test]
fn a_numeric_beyond_float64_is_a_row_error() {
    let Some(db) = TestDb::new("numeric_overflow") else { return };
    let query = "SELECT * FROM (VALUES (1, '1e400'::numeric(500, 0)), (2, 2.5)) AS t(id, v) ORDER BY id";
    for cfg in [
        db.cfg(json!({"query": query})),
        db.cfg(json!({"query": query, "schema": {"id": "int32", "v": "float64"}})),
    ] {
        let err = read(cfg.clone()).unwrap_err().to_string();
        assert!(err.contains("row 1, column `v`") && err.contains("beyond the range of float64"), "{err}");
        let out = read_with(cfg, OnError::Skip, 10, None).unwrap();
        assert_eq!((first_column_i32(&out), out.rejects.len()), (vec![2], 1));
    }
    // PostgreSQL's own infinity is a value, not an overflow.
    let out = read(db.cfg(json!({"query": "SELECT 'Infinity'::numeric AS v"}))).unwrap();
    assert_eq!(table(&out), [[Some("inf".to_owned())]]);
}

/// Regression: text or a timestamp with a time of day declared `date` silently lost the
/// time, and an integer declared float64 could be rounded.
#[test]
fn a_contract_refuses_text_with_a_time_of_day_as_a_date() {
    let Some(db) = TestDb::new("contract_date") else { return };
    let date_of = |text: &str| {
        let cfg = db.cfg(json!({"query": format!("SELECT '{text}'::text AS v"), "schema": {"v": "date"}}));
        read(cfg).map(|out| table(&out)[0][0].clone()).map_err(|e| e.to_string())
    };
    assert_eq!(date_of("2020-01-01"), Ok(Some("2020-01-01".into())));
    let err = date_of("2020-01-01 10:00:00").unwrap_err();
    assert!(err.contains("`2020-01-01 10:00:00` in column `v` is not date"), "{err}");
    // A timestamp likewise: only midnight is a date. And an int8 a float cannot hold.
    let read_one = |expr: &str, ty: &str| {
        let cfg = db.cfg(json!({"query": format!("SELECT {expr} AS v"), "schema": {"v": ty}}));
        read(cfg).map(|out| table(&out)[0][0].clone()).map_err(|e| e.to_string())
    };
    assert_eq!(read_one("'2020-01-01 00:00'::timestamp", "date"), Ok(Some("2020-01-01".into())));
    let err = read_one("'2020-01-01 10:00'::timestamp", "date").unwrap_err();
    assert!(err.contains("in column `v` is not date"), "{err}");
    let err = read_one("9007199254740993::int8", "float64").unwrap_err();
    assert!(err.contains("`9007199254740993` in column `v` is not float64"), "{err}");
}

/// `url` with `params` added to its query.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Host, port, user and database of the test server.
struct Server {
    ip: IpAddr,
    port: u16,
    user: String,
    dbname: String,
}

impl Server {
    fn of(url: &str) -> Server {
        let config = Config::from_str(url).unwrap();
        let Host::Tcp(host) = &config.get_hosts()[0] else { panic!("{URL_VAR} must name a TCP host") };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let ip = (host.as_str(), port).to_socket_addrs().unwrap().next().unwrap().ip();
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let dbname = config.get_dbname().unwrap_or(&user).to_owned();
        Server { ip, port, user, dbname }
    }

    /// A URL by IP address (never a name a certificate could hold), with `password`.
    fn url_by_ip(&self, password: &str) -> String {
        format!("postgres://{}:{password}@{}/{}", self.user, SocketAddr::new(self.ip, self.port), self.dbname)
    }
}

/// Whether a read through `url` ran in an encrypted session.
fn session_is_encrypted(url: &str) -> Result<bool, ConnectorError> {
    let out = read(json!({"url": url, "query": "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"}))?;
    Ok(out.batches[0].column(0).as_boolean().value(0))
}

/// The server's certificate file and the DNS name in it (its subject CN, which Debian's
/// snakeoil certificate also lists as its one subjectAltName).
fn server_certificate(db: &mut TestDb) -> (String, String) {
    let show = |db: &mut TestDb, what: &str| -> String {
        db.client.query_one(&format!("SHOW {what}"), &[]).unwrap().get(0)
    };
    let mut file = show(db, "ssl_cert_file");
    if !file.starts_with('/') {
        file = format!("{}/{file}", show(db, "data_directory"));
    }
    let pem = std::fs::read(&file).unwrap_or_else(|e| panic!("the server's certificate {file}: {e}"));
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(&pem).next().unwrap().unwrap();
    // The last commonName (OID 2.5.4.3) is the subject's: a tag, a one-byte length, the text.
    const CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(CN.len()).rposition(|w| w == CN).expect("a CN in the server's certificate");
    let len = der[at + CN.len() + 1] as usize;
    let start = at + CN.len() + 2;
    let name = std::str::from_utf8(&der[start..start + len]).unwrap().to_owned();
    (file, name)
}

/// A CA certificate that signed nothing the server has.
const OTHER_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBvTCCAWOgAwIBAgIUXtTKhKY4T5qCfw/uJXK/Y8BTMhEwCgYIKoZIzj0EAwIw
MzExMC8GA1UEAwwoU2x1aWNlIHRlc3QgQ0EgKHVucmVsYXRlZCB0byB0aGUgc2Vy
dmVyKTAgFw0yNjEyMDEyMTUxMjlaGA8yMTI2MTEwNzIxNTEyOVowMzExMC8GA1UE
AwwoU2x1aWNlIHRlc3QgQ0EgKHVucmVsYXRlZCB0byB0aGUgc2VydmVyKTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABKgKKPjjT1e8o9iGeZH0gWRe3GyVkCHPvBuG
qPCmEIE6hPBNTpEkxU3n0GgQy1BVJsjoaGJ16evpHLDtbwkdG/6jUzBRMB0GA1Ud
DgQWBBRc5+7IokAHkvpr1ivR6XhamN5sjDAfBgNVHSMEGDAWgBRc5+7IokAHkvpr
1ivR6XhamN5sjDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCID7k
g2nwy9tNV0j9eNQBKQj5tpv0OXdcUtSyMjSGRPRxAiEA59LVmTPTe4ulJsdj45gn
7xWXJlF3fSFPaWdC1YgSAf0=
-----END CERTIFICATE-----
";

#[test]
fn sslmode_require_encrypts_the_session_and_disable_does_not() {
    let Some(db) = TestDb::new("tls_modes") else { return };
    assert!(session_is_encrypted(&with_params(&db.url, "sslmode=require")).unwrap());
    assert!(!session_is_encrypted(&with_params(&db.url, "sslmode=disable")).unwrap());
    // `prefer` takes the TLS the server offers.
    assert!(session_is_encrypted(&with_params(&db.url, "sslmode=prefer")).unwrap());
    let s = Server::of(&db.url);
    let kv = format!("host={} port={} user={} dbname={}", s.ip, s.port, s.user, s.dbname);
    assert!(session_is_encrypted(&format!("{kv} sslmode=require")).unwrap());
    assert!(!session_is_encrypted(&format!("{kv} sslmode='disable'")).unwrap());
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_only_the_chain() {
    let Some(mut db) = TestDb::new("tls_verify") else { return };
    let (cert, name) = server_certificate(&mut db);
    let secret = "Sup3r-S3cret_pw";
    let s = Server::of(&db.url);
    let by_ip = s.url_by_ip(secret);

    let err = session_is_encrypted(&format!("{by_ip}?sslmode=verify-full&sslrootcert={cert}")).unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("the server's certificate did not verify (sslmode=verify-full): ")
            && err.contains(&format!("not valid for name \"{}\"", s.ip))
            && err.contains("or use sslmode=verify-ca"),
        "{err}"
    );
    assert!(!err.contains(secret), "password leaked: {err}");

    // The self-signed certificate is its own root, so the chain verifies.
    assert!(session_is_encrypted(&format!("{by_ip}?sslmode=verify-ca&sslrootcert={cert}")).unwrap());
    // With the name the certificate is for (and the address to reach it at), so does the name.
    let kv = format!(
        "host={name} hostaddr={} port={} user={} dbname={} sslmode=verify-full sslrootcert='{cert}'",
        s.ip, s.port, s.user, s.dbname
    );
    assert!(session_is_encrypted(&kv).unwrap());

    // A root that did not sign it; `require` with sslrootcert checks like `verify-ca`.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, OTHER_CA).unwrap();
    let other = other.display().to_string();
    for mode in ["require", "verify-ca"] {
        let err = session_is_encrypted(&format!("{by_ip}?sslmode={mode}&sslrootcert={other}")).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains(&format!(
                "(sslmode={mode}): it is not signed by a root certificate in sslrootcert `{other}`; \
                 name the CA that signed it with sslrootcert=/path/to/ca.pem"
            )),
            "{err}"
        );
        assert!(!err.contains(secret), "password leaked: {err}");
    }
    // `require` alone encrypts without checking.
    assert!(session_is_encrypted(&format!("{by_ip}?sslmode=require")).unwrap());
}

/// A proxy to `target` on a loopback port that, like a server with broken TLS, accepts the
/// SSLRequest and then sends bytes that are not TLS; other connections pass through.
/// Serves `connections` connections, then stops.
fn broken_tls_proxy(target: SocketAddr, connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().take(connections) {
            let Ok(mut client) = client else { continue };
            std::thread::spawn(move || {
                let mut head = [0u8; 8];
                client.read_exact(&mut head)?;
                // Length 8, code 80877103: SSLRequest.
                if head == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
                    return client.write_all(b"Snot TLS at all\n");
                }
                let mut server = TcpStream::connect(target)?;
                server.write_all(&head)?;
                let (mut from_client, mut to_server) = (client.try_clone()?, server.try_clone()?);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_server);
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
                std::io::copy(&mut server, &mut client)?;
                client.shutdown(std::net::Shutdown::Write)
            });
        }
    });
    addr
}

#[test]
fn prefer_falls_back_to_plain_when_the_tls_handshake_fails() {
    let Some(db) = TestDb::new("tls_fallback") else { return };
    let s = Server::of(&db.url);
    // Two connections for `prefer` (TLS, then plain), one for `require`.
    let proxy = broken_tls_proxy(SocketAddr::new(s.ip, s.port), 3);
    let via = format!("postgres://{}@{proxy}/{}", s.user, s.dbname);
    assert!(!session_is_encrypted(&format!("{via}?sslmode=prefer")).unwrap());
    let err = session_is_encrypted(&format!("{via}?sslmode=require")).unwrap_err().to_string();
    assert!(err.contains(&format!("cannot connect to PostgreSQL at {proxy}/")), "{err}");
    assert!(err.contains("the TLS handshake failed (sslmode=require): "), "{err}");
}

#[test]
fn tls_parameters_are_checked_without_a_server_and_errors_name_the_problem() {
    let secret = "Sup3r-S3cret_pw";
    let base = tempfile::tempdir().unwrap();
    let req = |cfg: &Map<String, Value>| -> (Vec<ConfigIssue>, String) {
        let req = ReadRequest {
            stage: "s",
            config: cfg,
            base_dir: base.path(),
            on_error: OnError::Fail,
            batch_size: 10,
            incremental: None,
        };
        let read_error = match PostgresConnector.read(&req) {
            Err(e @ ConnectorError::Config { .. }) => e.to_string(),
            Err(other) => panic!("not a config error: {other}"),
            Ok(_) => panic!("read of {cfg:?} succeeded"),
        };
        (PostgresConnector.check(&req), read_error)
    };
    // One issue, at `url`, that `read` reports too; the password never shows.
    let issue = |url: String| -> (String, String) {
        let cfg = json!({"url": url, "table": "t"}).as_object().unwrap().clone();
        let (issues, read_error) = req(&cfg);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "url");
        let help = issues[0].help.clone().unwrap_or_default();
        for text in [&issues[0].message, &help, &read_error] {
            assert!(!text.contains(secret), "password leaked: {text}");
        }
        assert!(read_error.starts_with(&format!("invalid `url`: {}", issues[0].message)), "{read_error}");
        (issues[0].message.clone(), help)
    };
    let url = format!("postgres://ann:{secret}@db.invalid/shop");
    let kv = format!("host=db.invalid password={secret} dbname=shop");

    // A missing root file, named by the path it resolved to (relative: the pipeline's folder).
    let missing = base.path().join("certs/ca.pem");
    for conn in [
        format!("{url}?sslmode=verify-full&sslrootcert=certs/ca.pem"),
        format!("{kv} sslrootcert='certs/ca.pem' sslmode=verify-ca"),
    ] {
        let (message, help) = issue(conn);
        assert!(
            message.starts_with(&format!("sslrootcert `{}` cannot be read: ", missing.display())),
            "{message}"
        );
        assert!(help.contains("PEM file"), "{help}");
    }
    // A file that holds no certificate.
    std::fs::write(base.path().join("notes.txt"), "not a certificate\n").unwrap();
    let (message, _) = issue(format!("{url}?sslmode=verify-ca&sslrootcert=notes.txt"));
    let notes = base.path().join("notes.txt");
    assert_eq!(
        message,
        format!("sslrootcert `{}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)", notes.display())
    );
    // A certificate block that is no certificate.
    std::fs::write(&notes, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    let (message, _) = issue(format!("{url}?sslrootcert={}", notes.display()));
    assert_eq!(
        message,
        format!(
            "certificate 1 of sslrootcert `{}` is not a valid root certificate: it cannot be parsed",
            notes.display()
        )
    );

    // An unknown sslmode, in both forms; the valid ones are listed.
    for conn in [format!("{url}?sslmode=verify_full"), format!("{kv} sslmode=Require")] {
        let (message, help) = issue(conn);
        assert!(message.starts_with("has an unknown sslmode `"), "{message}");
        assert_eq!(help, "sslmode is one of disable, prefer, require, verify-ca, verify-full");
    }
    // libpq's rule for the system's roots.
    let (message, _) = issue(format!("{url}?sslrootcert=system&sslmode=verify-ca"));
    assert_eq!(message, "has sslrootcert=system with sslmode=verify-ca");
    let (message, _) = issue(format!("{kv} sslkey=me.key"));
    assert_eq!(message, "has `sslkey`, but client certificates are not supported");
    // An unknown parameter is named, in both forms.
    for conn in [format!("{url}?aplication_name=x"), format!("{kv} aplication_name=x")] {
        let (message, _) = issue(conn);
        assert!(message.contains("aplication_name"), "{message}");
    }
    let (message, _) = issue(format!("{kv} sslmode='require"));
    assert!(
        message.starts_with("is not a valid PostgreSQL connection string: the quoted value"),
        "{message}"
    );

    // Valid settings: nothing to report, and no connection is made to find that out.
    std::fs::write(base.path().join("ca.pem"), OTHER_CA).unwrap();
    for conn in [
        format!("{url}?sslmode=verify-full&sslrootcert=ca.pem"),
        format!("{kv} sslmode=verify-ca sslrootcert={}", base.path().join("ca.pem").display()),
        format!("{url}?sslrootcert=system"),
        format!("{kv} sslmode=disable"),
    ] {
        let cfg = json!({"url": conn, "table": "t"}).as_object().unwrap().clone();
        let req = ReadRequest {
            stage: "s",
            config: &cfg,
            base_dir: base.path(),
            on_error: OnError::Fail,
            batch_size: 10,
            incremental: None,
        };
        assert_eq!(PostgresConnector.check(&req), vec![], "{conn}");
    }
}
