//! `on_error` on a CSV with known bad lines: fail names file:line, skip counts, quarantine
//! keeps the rows with their line numbers and raw text.

use crate::util::*;

const CSV: &str = "id,qty,name\n1,5,apple\n2,7,pear,extra\n3,9,plum\n4,lots,fig\n5,2,\"kiwi, gold\"\n";

fn pipeline(s: &Scratch, on_error: &str) -> std::path::PathBuf {
    s.write("data/items.csv", CSV);
    s.write(
        &format!("{on_error}.toml"),
        &format!(
            "[pipeline]\nname = \"items-{on_error}\"\n\n[stages.items]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/items.csv\"\nschema = {{ qty = \"int64\" }}\non_error = \"{on_error}\"\nshow = true\n"
        ),
    )
}

#[test]
fn fail_names_the_file_and_line() {
    let s = Scratch::new();
    let file = pipeline(&s, "fail");
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("items.csv:3:"), "{err}");
    assert!(err.contains("expected 3 fields, found 4"), "{err}");
}

#[test]
fn skip_counts_the_rows_in_the_run_record() {
    let s = Scratch::new();
    let file = pipeline(&s, "skip");
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(stage_field(&r, "items", "rows_out"), 3);
    assert_eq!(stage_field(&r, "items", "metrics")["rows_skipped"], 2);
}

#[test]
fn quarantine_writes_rejects_with_lines_and_raw_text() {
    let s = Scratch::new();
    let file = pipeline(&s, "quarantine");
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(stage_field(&r, "items", "rows_out"), 3);
    assert_eq!(stage_field(&r, "items", "metrics")["rows_rejected"], 2);
    let rejects = stage_field(&r, "items", "outputs")["rejects"].as_str().unwrap().to_string();
    let text = parquet_table(rejects);
    let text = text.replace(s.path().to_str().unwrap(), "[DIR]");
    insta::assert_snapshot!(text);
}
