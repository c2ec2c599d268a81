//! Kill a run mid-stage with SIGKILL, re-run, and compare with an uninterrupted run; and
//! check that independent stages really run at the same time.

use std::time::{Duration, Instant};

use crate::util::*;

/// A collect, then a heavy stage (a cross join writing millions of rows), then a light one.
fn heavy_pipeline(s: &Scratch) -> std::path::PathBuf {
    let mut csv = String::from("a,b\n");
    for i in 0..2500 {
        csv.push_str(&format!("{i},{}\n", i % 7));
    }
    s.write("data/nums.csv", &csv);
    s.write(
        "heavy.toml",
        r#"
[pipeline]
name = "heavy"

[stages.nums]
kind = "collect"
connector = "csv"
path = "data/nums.csv"

[stages.pairs]
kind = "feature-extract"
inputs = ["nums"]
sql = "SELECT x.a AS a, y.a AS b, x.a * y.b AS c FROM nums x CROSS JOIN nums y ORDER BY a, b"

[stages.summary]
kind = "feature-extract"
inputs = ["pairs"]
sql = "SELECT COUNT(*) AS n, SUM(c) AS total FROM pairs"
"#,
    )
}

fn read_record(s: &Scratch) -> Option<serde_json::Value> {
    let runs = s.state().join("runs");
    let dir = std::fs::read_dir(&runs).ok()?.filter_map(Result::ok).next()?;
    serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).ok()?).ok()
}

#[test]
fn killed_run_resumes_with_finished_stages_cached_and_identical_outputs() {
    let s = Scratch::new();
    let file = heavy_pipeline(&s);
    let mut child = s.cmd(&["run", file.to_str().unwrap(), "--jobs", "1"]).spawn().unwrap();

    // Wait until the heavy stage is running (its upstream finished), then SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(120);
    let record = loop {
        assert!(Instant::now() < deadline, "the heavy stage never started");
        if let Some(r) = read_record(&s) {
            if stage_field(&r, "pairs", "status") == "running" {
                break r;
            }
            assert_ne!(
                stage_field(&r, "pairs", "status"),
                "succeeded",
                "the stage finished before it could be killed"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert_eq!(stage_field(&record, "nums", "status"), "succeeded");
    let pairs_key = stage_field(&record, "pairs", "cache_key").as_str().unwrap().to_string();
    assert!(!s.state().join("artifacts").join(&pairs_key).exists(), "no artifact for the killed stage");

    // The record of the killed run says so.
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&s.run(&["show", "latest", "--json"]))).unwrap();
    assert_eq!(shown["status"], "interrupted");

    // Resume.
    let (code, resumed) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{resumed:#}");
    assert_eq!(stages_with_cache(&resumed, "hit"), ["nums"]);
    assert_eq!(stages_with_cache(&resumed, "miss"), ["pairs", "summary"]);

    // An uninterrupted run elsewhere produces the same data under the same keys.
    let clean = Scratch::new();
    let clean_file = heavy_pipeline(&clean);
    let (_, fresh) = clean.run_json(&clean_file, &[]);
    for stage in ["nums", "pairs", "summary"] {
        let a = stage_field(&resumed, stage, "outputs")["data"].as_str().unwrap().to_string();
        let b = stage_field(&fresh, stage, "outputs")["data"].as_str().unwrap().to_string();
        assert_eq!(read_parquet(&a), read_parquet(&b), "stage {stage} differs after resume");
    }
    assert_eq!(stage_field(&fresh, "summary", "rows_out"), 1);
}

#[test]
fn independent_stages_overlap_in_time() {
    let s = Scratch::new();
    let mut csv = String::from("a\n");
    for i in 0..1500 {
        csv.push_str(&format!("{i}\n"));
    }
    s.write("data/nums.csv", &csv);
    let file = s.write(
        "fan.toml",
        r#"
[pipeline]
name = "fan"

[stages.nums]
kind = "collect"
connector = "csv"
path = "data/nums.csv"

[stages.left]
kind = "feature-extract"
inputs = ["nums"]
sql = "SELECT x.a * y.a AS p FROM nums x CROSS JOIN nums y"

[stages.right]
kind = "feature-extract"
inputs = ["nums"]
sql = "SELECT x.a + y.a AS s FROM nums x CROSS JOIN nums y"
"#,
    );
    let (code, r) = s.run_json(&file, &["--jobs", "2"]);
    assert_eq!(code, 0);
    let t = |stage: &str, f: &str| {
        chrono::DateTime::parse_from_rfc3339(stage_field(&r, stage, f).as_str().unwrap()).unwrap()
    };
    let (ls, le, rs, re) = (
        t("left", "started_at"),
        t("left", "finished_at"),
        t("right", "started_at"),
        t("right", "finished_at"),
    );
    assert!(ls < re && rs < le, "left [{ls}, {le}] and right [{rs}, {re}] do not overlap");
    // With one job they must not overlap.
    let (_, r1) = s.run_json(&file, &["--jobs", "1", "--force", "left", "--force", "right"]);
    let t1 = |stage: &str, f: &str| {
        chrono::DateTime::parse_from_rfc3339(stage_field(&r1, stage, f).as_str().unwrap()).unwrap()
    };
    assert!(
        t1("left", "finished_at") <= t1("right", "started_at")
            || t1("right", "finished_at") <= t1("left", "started_at")
    );
}
