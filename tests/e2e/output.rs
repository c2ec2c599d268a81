//! Output to a reader that leaves early or to a full disk: no panic, the right exit code.

use std::fs::File;
use std::process::Stdio;

use crate::util::*;

/// Its `bad` stage divides by zero.
const FAILING_STAGE: &str = r#"[stages.bad]
kind = "feature-extract"
inputs = ["orders"]
sql = "SELECT 1 / (Quantity - Quantity) AS boom FROM orders"
"#;

/// Runs `sluice args` with stdout a pipe whose reading end is closed at once.
fn with_reader_gone(s: &Scratch, args: &[&str]) -> (Option<i32>, String) {
    let mut child = s.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn sluice");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for sluice");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `sluice args` with stdout on `/dev/full`.
fn to_full_disk(s: &Scratch, args: &[&str]) -> (Option<i32>, String) {
    let full = File::options().write(true).open("/dev/full").expect("/dev/full");
    let out = s.cmd(args).stdout(full).output().expect("spawn sluice");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_reader_that_leaves_early_is_not_an_error_and_keeps_the_runs_code() {
    let s = Scratch::new();
    s.write("data/orders.csv", "Quantity\n1\n2\n");
    let file = s.write("failing.toml", &orders_pipeline("failing", FAILING_STAGE));
    let (code, stderr) = with_reader_gone(&s, &["kinds"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, stderr) = with_reader_gone(&s, &["run", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(1), "the failed run's code: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The run itself finished and was recorded.
    let runs = s.run(&["runs", "--json"]);
    assert!(stdout(&runs).contains("\"failed\""), "{}", stdout(&runs));
}

#[test]
fn output_lost_to_a_full_disk_fails_the_command_with_one_line() {
    let s = Scratch::new();
    for args in [&["kinds"][..], &["--version"], &["--help"], &["runs", "--json"]] {
        let (code, stderr) = to_full_disk(&s, args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains("No space left on device"), "{args:?}: {stderr}");
    }
}

#[test]
fn quiet_hides_warnings_and_json_runs_describe_an_invalid_file() {
    let s = Scratch::new();
    s.write("data/orders.csv", "Quantity\n1\n2\n");
    let unused = s.write("unused.toml", &orders_pipeline("unused", ""));
    let loud = s.run(&["validate", unused.to_str().unwrap()]);
    assert!(stderr(&loud).contains("warning[unused-stage]"), "{}", stderr(&loud));
    let quiet = s.run(&["-q", "validate", unused.to_str().unwrap()]);
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(stderr(&quiet), "", "-q prints errors only");

    let broken =
        s.write("broken.toml", "[pipeline]\nname = \"broken\"\n\n[stages.orders]\nkind = \"colect\"\n");
    let out = s.run(&["run", broken.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout");
    assert_eq!(report["status"], "invalid");
    assert_eq!(report["diagnostics"][0]["severity"], "error", "{report:#}");
}
