//! A database source's declared `schema`: a promise about the data that `validate --data`
//! and `run` check against the real result, with errors at the declaration's line.

use crate::util::*;

fn pipeline(schema: &str) -> String {
    format!(
        r#"[pipeline]
name = "contract"

[stages.items]
kind = "collect"
connector = "sqlite"
path = "shop.db"
query = "SELECT k, c FROM t"
schema = {schema}
"#
    )
}

/// `file:line:` of the line holding `needle`.
fn line_of(file: &str, text: &str, needle: &str) -> String {
    let offset = text.find(needle).unwrap();
    format!("{file}:{}:", text[..offset].matches('\n').count() + 1)
}

#[test]
fn a_declared_column_the_query_lacks_is_found_by_validate_data_and_run() {
    let s = Scratch::new();
    let conn = rusqlite::Connection::open(s.path().join("shop.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (k INTEGER, c REAL); INSERT INTO t VALUES (1, 2.5);").unwrap();
    drop(conn);

    let text = pipeline(r#"{ kk = "int64", c = "float64" }"#);
    let file = s.write("p.toml", &text);
    // Without reading the database the declaration is all there is to go by.
    let out = s.run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = s.run(&["validate", "--data", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("column `kk` is declared but") && err.contains("did you mean `k`?"), "{err}");
    assert!(err.contains(&line_of("p.toml", &text, "schema =")), "{err}");
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&line_of("p.toml", &text, "schema =")), "{}", stderr(&out));

    // 2.5 is not an int64: refused, never truncated to 2.
    let text = pipeline(r#"{ k = "int64", c = "int64" }"#);
    let file = s.write("p.toml", &text);
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("`2.5` in column `c` is not int64"), "{}", stderr(&out));
}
