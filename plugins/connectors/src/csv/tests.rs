use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::test_support::Out;

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), content).unwrap();
}

fn run_with(
    dir: &Path,
    cfg: Value,
    on_error: OnError,
    block: usize,
    batch_size: usize,
) -> Result<Out, ConnectorError> {
    let cfg = cfg.as_object().unwrap().clone();
    let req =
        ReadRequest { stage: "s", config: &cfg, base_dir: dir, on_error, batch_size, incremental: None };
    Out::drain(&mut open(&req, block)?)
}

fn run(dir: &Path, cfg: Value, on_error: OnError) -> Result<Out, ConnectorError> {
    run_with(dir, cfg, on_error, DEFAULT_BLOCK, 1000)
}

fn one(content: impl AsRef<[u8]>, extra: Value, on_error: OnError) -> Result<Out, ConnectorError> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", content);
    let mut cfg = json!({"path": "a.csv"});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    run(dir.path(), cfg, on_error)
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

const TS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

#[test]
fn every_type_is_inferred_and_nulls_do_not_vote() {
    let out = one(
        "i,f,b,d,t,s,n\n\
         1,17850.0,true,2010-12-01,2010-12-01 08:26:00,x,\n\
         ,1e3,FALSE,,2010-12-01T08:26:00.5,,\n\
         -3,-2.5,,2011-01-31,,C536379,\n",
        json!({}),
        OnError::Fail,
    )
    .unwrap();
    use DataType::*;
    assert_eq!(out.types(), [Int64, Float64, Boolean, Date32, TS, Utf8, Utf8]);
    assert_eq!(
        out.table()[1],
        [None, s("1000.0"), s("false"), None, s("2010-12-01T08:26:00.500"), None, None]
    );
}

#[test]
fn declared_types_override_inference() {
    let out = one(
        "id,price,when\n007,1,2010-12-01\n008,2.5,2010-12-02\n",
        json!({"schema": {"id": "string", "when": "timestamp", "price": "float32"}}),
        OnError::Fail,
    )
    .unwrap();
    assert_eq!(out.types(), [DataType::Utf8, DataType::Float32, TS]);
    assert_eq!(out.table()[0], [s("007"), s("1.0"), s("2010-12-01T00:00:00")]);
}

#[test]
fn null_markers_are_configurable() {
    let out = one("a,b\nNA,x\n3,\n", json!({"null_values": ["NA", "-"]}), OnError::Fail).unwrap();
    // "" is no longer a null marker, so column b keeps an empty string.
    assert_eq!(out.types(), [DataType::Int64, DataType::Utf8]);
    assert_eq!(out.table(), [vec![None, s("x")], vec![s("3"), s("")]]);
}

#[test]
fn quoted_fields_hold_delimiters_quotes_and_newlines_and_lines_stay_right() {
    let content = "name,qty\n\"Smith, J\",1\n\"say \"\"hi\"\"\",2\n\"two\nlines\",3\n\"x\",oops\n";
    let out = one(content, json!({"schema": {"qty": "int"}}), OnError::Quarantine).unwrap();
    assert_eq!(
        out.table(),
        [vec![s("Smith, J"), s("1")], vec![s("say \"hi\""), s("2")], vec![s("two\nlines"), s("3")]]
    );
    // The record after the two-line field starts on physical line 6.
    assert_eq!(out.rejects.len(), 1);
    assert_eq!(out.rejects[0].line, 6);
    assert_eq!(out.rejects[0].raw, "\"x\",oops");
}

#[test]
fn crlf_bom_and_missing_final_newline() {
    let out = one(b"\xEF\xBB\xBFa,b\r\n1,x\r\n2,\"y\"\r\n3,z", json!({}), OnError::Fail).unwrap();
    assert_eq!(out.names(), ["a", "b"]);
    assert_eq!(out.table(), [vec![s("1"), s("x")], vec![s("2"), s("y")], vec![s("3"), s("z")]]);
}

#[test]
fn without_a_header_columns_are_numbered() {
    let out = one("1,a\n2,b\n", json!({"header": false}), OnError::Fail).unwrap();
    assert_eq!(out.names(), ["column_1", "column_2"]);
    assert_eq!(out.rows(), 2);
}

#[test]
fn other_delimiters_work() {
    let out = one("a;b\n1,5;x\n", json!({"delimiter": ";"}), OnError::Fail).unwrap();
    assert_eq!(out.table(), [vec![s("1,5"), s("x")]]);
    let out = one("a\tb\n1\t x \n", json!({"delimiter": "\t", "trim": true}), OnError::Fail).unwrap();
    assert_eq!(out.table(), [vec![s("1"), s("x")]]);
}

#[test]
fn escapes_and_comments() {
    let out = one(
        "# exported 2024\na,b\n# a \"comment\", with \"quotes\n\"x\\\"y\",1\n",
        json!({"escape": "\\", "comment": "#"}),
        OnError::Fail,
    )
    .unwrap();
    assert_eq!(out.table(), [vec![s("x\"y"), s("1")]]);
}

#[test]
fn empty_and_repeated_header_names_are_made_unique() {
    let out = one("a,,a,b,a\n1,2,3,4,5\n", json!({}), OnError::Fail).unwrap();
    assert_eq!(out.names(), ["a", "column_2", "a_2", "b", "a_3"]);
}

#[test]
fn a_wrong_field_count_fails_with_file_line_and_counts() {
    let err = one("a,b,c\n1,2,3\n1,2,3,4\n", json!({}), OnError::Fail).err().unwrap();
    let ConnectorError::Malformed { file, line, reason } = &err else { panic!("{err}") };
    assert!(file.ends_with("a.csv"));
    assert_eq!((*line, reason.as_str()), (3, "expected 3 fields, found 4"));
    assert!(err.to_string().ends_with("a.csv:3: expected 3 fields, found 4"), "{err}");
}

#[test]
fn a_bad_value_fails_naming_the_column_and_why_it_has_its_type() {
    let err = one("Quantity,b\n1,x\n2,y\nabc,z\n", json!({"infer_rows": 2}), OnError::Fail).err().unwrap();
    assert!(
        err.to_string().ends_with(
            "a.csv:4: column `Quantity`: `abc` is not an int64 (type inferred from the first 2 rows; \
             declare it in `schema` to read it as another type)"
        ),
        "{err}"
    );
    let err = one("q\n1\nabc\n", json!({"schema": {"q": "int"}}), OnError::Fail).err().unwrap();
    assert!(
        err.to_string().ends_with("a.csv:3: column `q`: `abc` is not an int64 (declared in `schema`)"),
        "{err}"
    );
}

#[test]
fn skip_drops_bad_rows_and_counts_them_once() {
    let content = "a,b\n1,x\n2\nzz,y\n3,w,extra\n4,v\n";
    let out = one(content, json!({"schema": {"a": "int"}}), OnError::Skip).unwrap();
    assert_eq!(out.table(), [vec![s("1"), s("x")], vec![s("4"), s("v")]]);
    let lines: Vec<u64> = out.rejects.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 4, 5]);
}

#[test]
fn quarantine_keeps_source_line_reason_and_raw_text() {
    let out =
        one("a,b\r\n1,x\r\nnope,\"q\"\r\n", json!({"schema": {"a": "int"}}), OnError::Quarantine).unwrap();
    assert_eq!(out.rows(), 1);
    let r = &out.rejects[0];
    assert!(r.source.ends_with("a.csv"));
    assert_eq!(r.line, 3);
    assert_eq!(r.raw, "nope,\"q\"");
    assert!(r.reason.starts_with("column `a`: `nope` is not an int64"));
}

#[test]
fn invalid_utf8_is_a_malformed_row() {
    let out = one(b"a,b\n1,ok\n2,\xff\xfe\n", json!({}), OnError::Quarantine).unwrap();
    assert_eq!(out.rows(), 1);
    assert_eq!(out.rejects[0].line, 3);
    assert_eq!(out.rejects[0].reason, "column `b`: invalid UTF-8");
}

#[test]
fn an_unclosed_quote_is_reported_where_it_starts() {
    let err = one("a,b\n1,x\n2,\"never closed\n3,y\n", json!({}), OnError::Fail).err().unwrap();
    assert!(
        err.to_string().ends_with("a.csv:3: a quoted field is not closed before the end of the file"),
        "{err}"
    );
}

#[test]
fn empty_and_header_only_files() {
    let err = one("", json!({}), OnError::Fail).err().unwrap();
    assert!(err.to_string().contains("the file is empty"), "{err}");
    let out = one("", json!({"header": false}), OnError::Fail).unwrap();
    assert_eq!(out.rows(), 0);
    let out = one("a,b", json!({"schema": {"b": "int"}}), OnError::Fail).unwrap();
    assert_eq!(out.rows(), 0);
    assert_eq!(out.types(), [DataType::Utf8, DataType::Int64]);
}

#[test]
fn files_are_read_in_sorted_order_and_must_share_the_header() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "2.csv", "a,b\n3,z\n");
    write(dir.path(), "1.csv", "a,b\n1,x\n2,y\n");
    let out = run(dir.path(), json!({"path": "*.csv"}), OnError::Fail).unwrap();
    let firsts: Vec<_> = out.table().into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(firsts, ["1", "2", "3"]);

    write(dir.path(), "3.csv", "a,c\n4,w\n");
    let err = run(dir.path(), json!({"path": "*.csv"}), OnError::Fail).err().unwrap().to_string();
    assert!(err.contains("3.csv:1: header differs from"), "{err}");
    assert!(err.contains("1.csv") && err.contains("column 2 is `c` here but `b`"), "{err}");
}

#[test]
fn a_value_in_a_later_file_is_checked_against_the_first_files_types() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.csv", "a\n1\n");
    write(dir.path(), "2.csv", "a\n\n2\nx\n");
    let err = run(dir.path(), json!({"path": "*.csv"}), OnError::Fail).err().unwrap().to_string();
    assert!(err.contains("2.csv:4: column `a`: `x` is not an int64"), "{err}");
}

#[test]
fn check_reports_globs_without_matches_and_misspelled_schema_columns() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", "Quantity\n1\n");
    let check = |cfg: Value| {
        let cfg = cfg.as_object().unwrap().clone();
        let req = ReadRequest {
            stage: "s",
            config: &cfg,
            base_dir: dir.path(),
            on_error: OnError::Fail,
            batch_size: 10,
            incremental: None,
        };
        CsvConnector.check(&req)
    };
    let issues = check(json!({"path": "x*.csv"}));
    assert_eq!(issues.len(), 1);
    assert_eq!((issues[0].key.as_str(), issues[0].message.as_str()), ("path", "`x*.csv` matches no file"));
    assert!(issues[0].help.as_deref().unwrap().contains("`a.csv`"));

    let issues = check(json!({"path": "a.csv", "schema": {"Quantty": "int", "x": "decimal"}}));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].key, "schema.x");
    let issues = check(json!({"path": "a.csv", "schema": {"Quantty": "int"}}));
    assert_eq!(issues[0].key, "schema.Quantty");
    assert!(issues[0].message.contains("did you mean `Quantity`"), "{issues:?}");
    assert!(check(json!({"path": "a.csv", "delimiter": "ab"}))[0].key == "delimiter");
    assert!(check(json!({"path": "a.csv"})).is_empty());
}

#[test]
fn sources_lists_the_matched_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.csv", "a\n");
    write(dir.path(), "a.csv", "a\n");
    let cfg = json!({"path": "*.csv"}).as_object().unwrap().clone();
    let req = ReadRequest {
        stage: "s",
        config: &cfg,
        base_dir: dir.path(),
        on_error: OnError::Fail,
        batch_size: 10,
        incremental: None,
    };
    let Sources::Files(files) = CsvConnector.sources(&req).unwrap() else { panic!() };
    assert_eq!(files, [dir.path().join("a.csv"), dir.path().join("b.csv")]);
}

#[test]
fn keys_are_documented_with_defaults() {
    let keys = CsvConnector.keys();
    for k in keys {
        assert!(!k.doc.is_empty(), "{}", k.name);
    }
    let header = keys.iter().find(|k| k.name == "header").unwrap();
    assert_eq!(header.default, Some("true"));
    assert!(keys.iter().any(|k| k.name == "path" && k.required));
}

#[test]
fn batches_have_the_requested_size() {
    let mut content = String::from("n\n");
    for i in 0..1000 {
        content.push_str(&format!("{i}\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", &content);
    let out = run_with(dir.path(), json!({"path": "a.csv"}), OnError::Fail, 97, 300).unwrap();
    let sizes: Vec<usize> = out.batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, [300, 300, 300, 100]);
}

/// A CSV where quoted newlines, comment lines with quotes and long records cross many block
/// boundaries, including ones where the reader's boundary guess is wrong.
const TRICKY: &str = "id,text,n\n\
    1,\"multi\nline\nfield\",10\n\
    # a comment, \"with a quote\n\
    #,\"a comment that fools the boundary guess\n\
    2,\"a,b\"\"c\",20\n\
    3,plain,x\n\
    \n\
    4,\"long long long long long long long long long long\",40\n\
    5,\"\",50,extra\n\
    6,\"end\r\nwith crlf\",60\r\n\
    7,last,70";

#[test]
fn tiny_blocks_give_the_same_result_as_one_block() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", TRICKY);
    let cfg = json!({"path": "a.csv", "comment": "#", "schema": {"n": "int"}});
    let whole = run_with(dir.path(), cfg.clone(), OnError::Quarantine, DEFAULT_BLOCK, 3).unwrap();
    assert_eq!(whole.rows(), 5);
    let lines: Vec<u64> = whole.rejects.iter().map(|r| r.line).collect();
    assert_eq!(lines, [8, 11]);
    for block in 1..40 {
        let got = run_with(dir.path(), cfg.clone(), OnError::Quarantine, block, 3).unwrap();
        assert_eq!(got.combined(), whole.combined(), "block size {block}");
        assert!(got.batches.iter().all(|b| b.num_rows() <= 3), "block size {block}: a batch over batch_size");
        assert_eq!(got.rejects, whole.rejects, "block size {block}");
    }
}

fn csv_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("a"),
        Just("1"),
        Just("22"),
        Just("-3.5"),
        Just("true"),
        Just(","),
        Just(","),
        Just("\""),
        Just("\"\""),
        Just("\n"),
        Just("\n"),
        Just("\r\n"),
        Just(" "),
        Just("x y"),
        Just("#"),
        Just("é"),
    ];
    proptest::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_block_size_gives_the_same_rows_and_rejects(
        body in csv_text(),
        block in 1usize..48,
        header in any::<bool>(),
        comment in any::<bool>(),
        escape in any::<bool>(),
        trim in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.csv", format!("h1,h2,h3\n{body}"));
        let mut cfg = json!({"path": "a.csv", "header": header, "infer_rows": 3, "trim": trim});
        if comment {
            cfg["comment"] = json!("#");
        }
        if escape {
            cfg["escape"] = json!("\\");
        }
        let render = |r: Result<Out, ConnectorError>| {
            r.map(|o| {
                assert!(o.batches.iter().all(|b| b.num_rows() <= 4), "a batch over batch_size");
                (o.combined(), o.rejects)
            })
            .map_err(|e| e.to_string())
        };
        let whole = render(run_with(dir.path(), cfg.clone(), OnError::Quarantine, DEFAULT_BLOCK, 4));
        let split = render(run_with(dir.path(), cfg.clone(), OnError::Quarantine, block, 4));
        prop_assert_eq!(&split, &whole);
        let whole = render(run_with(dir.path(), cfg.clone(), OnError::Fail, DEFAULT_BLOCK, 4));
        let split = render(run_with(dir.path(), cfg, OnError::Fail, block, 4));
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn the_tokenizer_agrees_with_csv_core(body in csv_text(), escape in any::<bool>(), comment in any::<bool>()) {
        let input = body.as_bytes();
        let mut ours = Vec::new();
        let dialect = Dialect {
            escape: escape.then_some(b'\\'),
            comment: comment.then_some(b'#'),
            ..Dialect::default()
        };
        let mut cur = Cursor::new(input, dialect, true);
        let mut fb = FieldBuf::default();
        loop {
            fb.clear();
            match cur.next_record(&mut fb) {
                Step::Record(_) => ours.push(fb.spans.iter().map(|s| fb.get(input, *s).to_vec()).collect::<Vec<_>>()),
                // csv-core silently closes an unclosed quote at the end; we refuse the record.
                Step::Unterminated { .. } => break,
                Step::Incomplete { .. } | Step::End => break,
            }
        }
        let theirs = csv_core_records(input, dialect);
        prop_assert_eq!(&ours[..], &theirs[..ours.len()]);
    }
}

fn csv_core_records(mut input: &[u8], d: Dialect) -> Vec<Vec<Vec<u8>>> {
    let mut rdr = csv_core::ReaderBuilder::new().escape(d.escape).comment(d.comment).build();
    let mut records = Vec::new();
    let mut out = vec![0; 4096];
    let mut ends = vec![0; 256];
    let (mut outlen, mut endlen) = (0, 0);
    loop {
        let (res, nin, nout, nend) = rdr.read_record(input, &mut out[outlen..], &mut ends[endlen..]);
        input = &input[nin..];
        outlen += nout;
        endlen += nend;
        match res {
            csv_core::ReadRecordResult::Record => {
                let mut start = 0;
                let fields = ends[..endlen]
                    .iter()
                    .map(|&e| {
                        let f = out[start..e].to_vec();
                        start = e;
                        f
                    })
                    .collect();
                records.push(fields);
                outlen = 0;
                endlen = 0;
            }
            csv_core::ReadRecordResult::End => return records,
            csv_core::ReadRecordResult::InputEmpty => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn reads_the_online_retail_file() {
    let path = std::env::var("SLUICE_RETAIL_CSV").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/online-retail/online_retail.csv")
            .to_owned()
    });
    let path = Path::new(&path);
    assert!(path.is_file(), "the shared retail data must exist at {}", path.display());
    let cfg = json!({"path": path.to_str().unwrap()}).as_object().unwrap().clone();
    let req = ReadRequest {
        stage: "s",
        config: &cfg,
        base_dir: Path::new("."),
        on_error: OnError::Fail,
        batch_size: 65_536,
        incremental: None,
    };
    let mut r = CsvConnector.read(&req).unwrap();
    let schema = r.schema();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
            "Country"
        ]
    );
    use DataType::*;
    let types: Vec<_> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(types, [Utf8, Utf8, Utf8, Int64, TS, Float64, Float64, Utf8]);
    let (mut rows, mut customer_nulls) = (0, 0);
    let mut first = None;
    while let Some(b) = r.next_batch() {
        let b = b.unwrap();
        rows += b.num_rows();
        customer_nulls += b.column(6).null_count();
        if first.is_none() {
            first = Some(b);
        }
    }
    assert!(r.take_rejects().is_empty());
    assert_eq!(rows, 541_909);
    assert_eq!(customer_nulls, 135_080);
    let first = first.unwrap();
    assert_eq!(first.column(0).as_string::<i32>().value(0), "536365");
    assert_eq!(array_value_to_string(first.column(4), 0).unwrap(), "2010-12-01T08:26:00");
    assert_eq!(array_value_to_string(first.column(6), 0).unwrap(), "17850.0");
}

#[test]
fn dropping_a_reader_early_does_not_hang_or_leak_errors() {
    let dir = tempfile::tempdir().unwrap();
    let content: String =
        std::iter::once("n\n".to_owned()).chain((0..5000).map(|i| format!("{i}\n"))).collect();
    write(dir.path(), "a.csv", content);
    let cfg = json!({"path": "a.csv"}).as_object().unwrap().clone();
    let req = ReadRequest {
        stage: "s",
        config: &cfg,
        base_dir: dir.path(),
        on_error: OnError::Fail,
        batch_size: 10,
        incremental: None,
    };
    let mut r = open(&req, 64).unwrap();
    assert_eq!(r.next_batch().unwrap().unwrap().num_rows(), 10);
    drop(r);
}

#[test]
fn after_an_error_the_reader_ends() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", "a\n1\nx\n2\n");
    let cfg = json!({"path": "a.csv", "schema": {"a": "int"}}).as_object().unwrap().clone();
    let req = ReadRequest {
        stage: "s",
        config: &cfg,
        base_dir: dir.path(),
        on_error: OnError::Fail,
        batch_size: 10,
        incremental: None,
    };
    let mut r = open(&req, 2).unwrap();
    assert!(r.next_batch().unwrap().is_err());
    assert!(r.next_batch().is_none());
}

#[test]
fn latin1_and_windows1252_files_decode_to_utf8() {
    // "Müller;José;Ærø" in ISO-8859-1, across tiny blocks so decoding meets every boundary.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "l.csv",
        b"Name,City\nM\xfcller,K\xf8benhavn\nJos\xe9,M\xe1laga\n\xc6r\xf8,\"S\xe3o, Paulo\"\n",
    );
    let cfg = json!({"path": "l.csv", "encoding": "latin-1"});
    for block in [1, 3, DEFAULT_BLOCK] {
        let out = run_with(dir.path(), cfg.clone(), OnError::Fail, block, 1000).unwrap();
        assert_eq!(
            out.table(),
            [
                vec![s("Müller"), s("København")],
                vec![s("José"), s("Málaga")],
                vec![s("Ærø"), s("São, Paulo")]
            ],
            "block {block}"
        );
    }
    write(dir.path(), "w.csv", b"item,price\n\x93Caf\xe9\x94,\x805\n");
    let out = run(dir.path(), json!({"path": "w.csv", "encoding": "windows-1252"}), OnError::Fail).unwrap();
    assert_eq!(out.table(), [vec![s("\u{201C}Café\u{201D}"), s("€5")]]);
    // Read as UTF-8, the same bytes are invalid and reported, never garbled silently.
    let err = run(dir.path(), json!({"path": "l.csv"}), OnError::Fail).err().unwrap().to_string();
    assert!(err.contains("l.csv:2: column `Name`: invalid UTF-8"), "{err}");
    let err = one("a\n1\n", json!({"encoding": "utf-16"}), OnError::Fail).err().unwrap().to_string();
    assert!(err.contains("unknown encoding \"utf-16\"") && err.contains("latin-1"), "{err}");
}

#[test]
fn decimal_commas_are_read_and_inferred() {
    let out = one(
        "id;price;qty\n1;1,5;3\n2;-0,25;4\n3;;5\n",
        json!({"delimiter": ";", "decimal": ","}),
        OnError::Fail,
    )
    .unwrap();
    assert_eq!(out.types(), [DataType::Int64, DataType::Float64, DataType::Int64]);
    let prices = out.batches[0].column(1).as_primitive::<arrow::datatypes::Float64Type>();
    assert_eq!((prices.value(0), prices.value(1), prices.is_null(2)), (1.5, -0.25, true));
    let out = one(
        "price\n1,5\n1.5\n",
        json!({"delimiter": ";", "decimal": ",", "schema": {"price": "float64"}}),
        OnError::Skip,
    )
    .unwrap();
    assert_eq!(out.rows(), 1);
    assert!(out.rejects[0].reason.contains("`1.5` is not a float64"), "{:?}", out.rejects);
    let err = one("a\n1\n", json!({"decimal": ","}), OnError::Fail).err().unwrap().to_string();
    assert!(err.contains("invalid `decimal`") && err.contains("delimiter = \";\""), "{err}");
    let err = one("a\n1\n", json!({"decimal": "·"}), OnError::Fail).err().unwrap().to_string();
    assert!(err.contains("must be \".\" or \",\""), "{err}");
}

#[test]
fn timestamp_formats_apply_to_inferred_declared_and_listed_columns() {
    let data = "Invoice,InvoiceDate,Shipped,Paid\n1,12/1/2010 8:26,01.12.2010,2010-12-01 09:00:00\n2,12/13/2010 17:05,13.12.2010,\n";
    let out = one(
        data,
        json!({"timestamp_format": "%m/%d/%Y %H:%M", "timestamp_formats": {"Shipped": "%d.%m.%Y"}}),
        OnError::Fail,
    )
    .unwrap();
    // Paid is ISO text: with a global format set it no longer counts as a timestamp.
    assert_eq!(out.types(), [DataType::Int64, TS, TS, DataType::Utf8]);
    assert_eq!(out.table()[1], [s("2"), s("2010-12-13T17:05:00"), s("2010-12-13T00:00:00"), None]);
    let out =
        one(data, json!({"timestamp_formats": {"InvoiceDate": "%m/%d/%Y %H:%M"}}), OnError::Fail).unwrap();
    assert_eq!(out.types(), [DataType::Int64, TS, DataType::Utf8, TS]);
    let out = one(
        "d\n1/12/2010 8:26\n",
        json!({"timestamp_format": "%d/%m/%Y %H:%M", "schema": {"d": "timestamp"}}),
        OnError::Fail,
    )
    .unwrap();
    assert_eq!(out.table(), [vec![s("2010-12-01T08:26:00")]]);
}

#[test]
fn a_timestamp_that_does_not_match_its_format_is_reported_with_line_and_column() {
    let data = "n,InvoiceDate\n1,12/1/2010 8:26\n2,2010-12-01 08:26\n3,12/2/2010 9:00\n";
    let cfg = json!({"timestamp_formats": {"InvoiceDate": "%m/%d/%Y %H:%M"}});
    match one(data, cfg.clone(), OnError::Fail).err().unwrap() {
        ConnectorError::Malformed { line, reason, .. } => {
            assert_eq!(line, 3);
            assert_eq!(
                reason,
                "column `InvoiceDate`: `2010-12-01 08:26` does not match the timestamp format `%m/%d/%Y %H:%M`"
            );
        }
        other => panic!("{other}"),
    }
    let out = one(data, cfg, OnError::Quarantine).unwrap();
    assert_eq!(out.rows(), 2);
    assert_eq!((out.rejects[0].line, out.rejects[0].raw.as_str()), (3, "2,2010-12-01 08:26"));
}

#[test]
fn check_reports_bad_timestamp_formats_and_unknown_columns() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", "InvoiceDate,Qty\n12/1/2010 8:26,1\n");
    let check = |cfg: Value| {
        let cfg = cfg.as_object().unwrap().clone();
        let req = ReadRequest {
            stage: "s",
            config: &cfg,
            base_dir: dir.path(),
            on_error: OnError::Fail,
            batch_size: 10,
            incremental: None,
        };
        CsvConnector.check(&req)
    };
    let issues = check(json!({"path": "a.csv", "timestamp_formats": {"InvoceDate": "%m/%d/%Y %H:%M"}}));
    assert_eq!(issues[0].key, "timestamp_formats.InvoceDate");
    assert!(issues[0].message.contains("did you mean `InvoiceDate`"), "{issues:?}");
    let issues = check(json!({"path": "a.csv", "timestamp_format": "%m/%d/%Y %H:%Q"}));
    assert_eq!(issues[0].key, "timestamp_format");
    assert!(issues[0].message.contains("`%Q` is not a supported directive"), "{issues:?}");
    let issues = check(json!({
        "path": "a.csv",
        "schema": {"Qty": "int64"},
        "timestamp_formats": {"Qty": "%Y-%m-%d"}
    }));
    assert_eq!(issues[0].key, "timestamp_formats.Qty");
    assert!(issues[0].message.contains("declared as an int64 in `schema`"), "{issues:?}");
    assert!(
        check(json!({"path": "a.csv", "timestamp_formats": {"InvoiceDate": "%m/%d/%Y %H:%M"}})).is_empty()
    );
}
