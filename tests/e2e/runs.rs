//! Run records, failures, resume, `runs`/`show`, gc.

use crate::util::*;

const FAILING: &str = r#"
[pipeline]
name = "failing"

[stages.orders]
kind = "collect"
connector = "csv"
path = "data/orders.csv"

[stages.ok_branch]
kind = "feature-extract"
inputs = ["orders"]
sql = "SELECT COUNT(*) AS n FROM orders"

[stages.bad]
kind = "feature-extract"
inputs = ["orders"]
sql = """
SELECT Quantity,
       1 / (Quantity - Quantity) AS boom
FROM orders
"""

[stages.after_bad]
kind = "feature-extract"
inputs = ["bad"]
sql = "SELECT * FROM bad"
"#;

#[test]
fn failed_stage_stops_its_downstream_records_everything_and_says_how_to_resume() {
    let s = Scratch::new();
    s.write("data/orders.csv", "Quantity\n1\n2\n");
    let file = s.write("failing.toml", FAILING);
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("stage `bad` failed"), "{err}");
    // DataFusion gives no position for a division by zero: the diagnostic points at the query.
    assert!(err.contains("failing.toml:18:"), "the SQL error must point at the query: {err}");
    assert!(err.contains("resume with:"), "{err}");
    assert!(err.contains(&format!("sluice run {}", file.display())), "{err}");

    let rec =
        serde_json::from_str::<serde_json::Value>(&stdout(&s.run(&["show", "latest", "--json"]))).unwrap();
    assert_eq!(rec["status"], "failed");
    assert_eq!(stage_field(&rec, "orders", "status"), "succeeded");
    assert_eq!(stage_field(&rec, "ok_branch", "status"), "succeeded");
    assert_eq!(stage_field(&rec, "bad", "status"), "failed");
    assert!(stage_field(&rec, "bad", "error").as_str().unwrap().contains("Divide by zero"));
    assert_eq!(stage_field(&rec, "after_bad", "status"), "skipped");
    assert_eq!(stage_field(&rec, "after_bad", "reason"), "upstream `bad` failed");

    // Fix it and resume: finished stages are hits.
    std::fs::write(&file, FAILING.replace("1 / (Quantity - Quantity)", "1 / Quantity")).unwrap();
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(stages_with_cache(&r, "hit"), ["orders", "ok_branch"]);
    assert_eq!(stages_with_cache(&r, "miss"), ["bad", "after_bad"]);
}

#[test]
fn runs_lists_newest_first_and_show_explains_each_stage() {
    let s = Scratch::new();
    let file = s.quickstart();
    let (_, first) = s.run_json(&file, &[]);
    let (_, second) = s.run_json(&file, &[]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&s.run(&["runs", "--json"]))).unwrap();
    assert_eq!(list[0]["run_id"], second["run_id"]);
    assert_eq!(list[1]["run_id"], first["run_id"]);
    let human = stdout(&s.run(&["runs"]));
    assert!(human.contains("0 run, 3 cached") && human.contains("3 run, 0 cached"), "{human}");
    let id = first["run_id"].as_str().unwrap();
    let shown = stdout(&s.run(&["show", &id[..id.len() - 2]]));
    assert!(shown.contains("customers") && shown.contains("new") && shown.contains("miss"), "{shown}");
    let missing = s.run(&["show", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn gc_removes_only_artifacts_no_kept_run_references() {
    let s = Scratch::new();
    let file = s.quickstart();
    let (_, first) = s.run_json(&file, &[]);
    std::fs::write(
        &file,
        std::fs::read_to_string(&file).unwrap().replace("ORDER BY revenue DESC", "ORDER BY revenue ASC"),
    )
    .unwrap();
    let (_, second) = s.run_json(&file, &[]);
    let old = stage_field(&first, "by_country", "cache_key").as_str().unwrap().to_string();
    let new = stage_field(&second, "by_country", "cache_key").as_str().unwrap().to_string();
    assert_ne!(old, new);
    let artifacts = s.state().join("artifacts");

    let dry: serde_json::Value =
        serde_json::from_str(&stdout(&s.run(&["gc", "--keep-runs", "1", "--dry-run", "--json"]))).unwrap();
    assert_eq!(dry["artifacts_removed"], serde_json::json!([old]));
    assert!(artifacts.join(&old).exists(), "dry run removes nothing");

    let out = s.run(&["gc", "--keep-runs", "1"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("removed 1 artifact, 1 run record"), "{}", stdout(&out));
    assert!(!artifacts.join(&old).exists());
    assert!(artifacts.join(&new).exists());
    // The kept run still replays entirely from cache.
    let (_, third) = s.run_json(&file, &[]);
    assert!(stages_with_cache(&third, "miss").is_empty());
}

#[test]
fn sql_planning_error_at_run_time_points_at_the_line_inside_the_query() {
    let s = Scratch::new();
    s.write("data/orders.csv", "Quantity,Price\n1,2.5\n");
    let file = s.write(
        "p.toml",
        &orders_pipeline(
            "p",
            "[stages.total]\nkind = \"feature-extract\"\ninputs = [\"orders\"]\nsql = \"\"\"\nSELECT Quantity,\n       Quantity * Prise AS amount\nFROM orders\n\"\"\"\n",
        ),
    );
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out).replace(s.path().to_str().unwrap(), "[DIR]");
    insta::assert_snapshot!(err);
}

#[test]
fn json_logs_and_quiet_mode() {
    let s = Scratch::new();
    let file = s.quickstart();
    let out = s.run(&["-v", "--log-format", "json", "run", file.to_str().unwrap()]);
    assert!(out.status.success());
    let lines: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
    assert!(lines.iter().any(|l| l.contains("stage finished")), "{lines:?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string(), "{l}");
    }
    let quiet = s.run(&["-q", "run", file.to_str().unwrap()]);
    assert!(quiet.status.success());
    assert_eq!(stdout(&quiet), "", "quiet prints nothing on success");
    assert_eq!(stderr(&quiet), "");
}
