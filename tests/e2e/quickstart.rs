//! The quickstart pipeline, caching and re-runs.

use crate::util::*;

#[test]
fn quickstart_runs_and_prints_a_result_table() {
    let s = Scratch::new();
    let file = s.quickstart();
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "stderr:\n{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("by_country (first"), "no preview in:\n{text}");
    assert!(text.contains("United Kingdom"), "{text}");
    assert!(text.contains("revenue_per_customer"), "{text}");
}

#[test]
fn second_run_is_all_cache_hits_and_executes_nothing() {
    let s = Scratch::new();
    let file = s.quickstart();
    let (code, first) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(stages_with_cache(&first, "miss"), ["orders", "customers", "by_country"]);
    let (code, second) = s.run_json(&file, &[]);
    assert_eq!(code, 0);
    assert_eq!(stages_with_cache(&second, "hit"), ["orders", "customers", "by_country"]);
    assert!(stages_with_cache(&second, "miss").is_empty());
    // Same outputs, same rows.
    for stage in ["orders", "customers", "by_country"] {
        assert_eq!(stage_field(&first, stage, "outputs"), stage_field(&second, stage, "outputs"));
        assert_eq!(stage_field(&first, stage, "rows_out"), stage_field(&second, stage, "rows_out"));
    }
}

#[test]
fn config_change_reruns_exactly_that_stage_and_its_downstream() {
    let s = Scratch::new();
    let file = s.quickstart();
    s.run_json(&file, &[]);
    let text = std::fs::read_to_string(&file).unwrap();

    // Change the middle stage: it and its downstream re-run, upstream is reused.
    let changed =
        text.replace("SUM(Quantity)                  AS items", "SUM(Quantity) + 0              AS items");
    assert_ne!(changed, text);
    std::fs::write(&file, &changed).unwrap();
    let (_, r) = s.run_json(&file, &[]);
    assert_eq!(stages_with_cache(&r, "hit"), ["orders"]);
    assert_eq!(stages_with_cache(&r, "miss"), ["customers", "by_country"]);
    assert_eq!(stage_field(&r, "customers", "reason"), "config changed");
    assert_eq!(stage_field(&r, "by_country", "reason"), "input `customers` changed");

    // A description is not part of the cache key.
    std::fs::write(
        &file,
        changed.replace("Revenue per country from repeat customers", "Another description"),
    )
    .unwrap();
    let (_, r) = s.run_json(&file, &[]);
    assert!(stages_with_cache(&r, "miss").is_empty(), "{r:#}");

    // A parameter override changes only the stage that uses it.
    let (_, r) = s.run_json(&file, &["--param", "min_orders=3"]);
    assert_eq!(stages_with_cache(&r, "miss"), ["by_country"]);

    // New source data re-runs everything, with the reason.
    let data = s.path().join("data/orders.csv");
    let mut csv = std::fs::read_to_string(&data).unwrap();
    csv.push_str("999999,85123A,WHITE HANGING HEART T-LIGHT HOLDER,1,2011-06-30 10:00:00,2.55,12346.0,United Kingdom\n");
    std::fs::write(&data, csv).unwrap();
    let (_, r) = s.run_json(&file, &[]);
    assert_eq!(stages_with_cache(&r, "miss"), ["orders", "customers", "by_country"]);
    assert_eq!(stage_field(&r, "orders", "reason"), "source changed");
}

#[test]
fn force_reruns_only_the_named_stage_and_force_all_everything() {
    let s = Scratch::new();
    let file = s.quickstart();
    s.run_json(&file, &[]);
    let (_, r) = s.run_json(&file, &["--force", "customers"]);
    assert_eq!(stages_with_cache(&r, "miss"), ["customers"]);
    assert_eq!(stage_field(&r, "customers", "reason"), "forced");
    let (_, r) = s.run_json(&file, &["--force-all"]);
    assert_eq!(stages_with_cache(&r, "miss"), ["orders", "customers", "by_country"]);
    let out = s.run(&["run", file.to_str().unwrap(), "--force", "custmers"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("did you mean `customers`?"), "{}", stderr(&out));
}

#[test]
fn plan_says_why_without_running() {
    let s = Scratch::new();
    let file = s.quickstart();
    let f = file.to_str().unwrap();
    let strip_keys = |t: String| {
        t.lines()
            .map(|l| l.rsplit_once("  ").map_or(l, |(a, _)| a).trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = strip_keys(stdout(&s.run(&["plan", f])));
    assert!(!s.state().join("runs").exists(), "plan must not run anything");
    s.run_json(&file, &[]);
    std::fs::write(
        &file,
        std::fs::read_to_string(&file).unwrap().replace("ORDER BY revenue DESC", "ORDER BY revenue ASC"),
    )
    .unwrap();
    let after = strip_keys(stdout(&s.run(&["plan", f])));
    insta::assert_snapshot!(format!("{before}\n---\n{after}").replace(f, "quickstart.toml"));
}

#[test]
fn stage_runs_one_stage_from_existing_artifacts() {
    let s = Scratch::new();
    let file = s.quickstart();
    let f = file.to_str().unwrap();
    let out = s.run(&["run", f, "--stage", "by_country"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--with-deps"), "{}", stderr(&out));
    let (code, r) = s.run_json(&file, &["--stage", "customers", "--with-deps"]);
    assert_eq!(code, 0);
    assert_eq!(stages_with_cache(&r, "miss"), ["orders", "customers"]);
    assert_eq!(stage_field(&r, "by_country", "status"), "skipped");
    let (code, r) = s.run_json(&file, &["--stage", "by_country"]);
    assert_eq!(code, 0);
    assert_eq!(stages_with_cache(&r, "miss"), ["by_country"]);
    assert_eq!(stage_field(&r, "orders", "reason"), "not selected");
}

#[test]
fn graph_and_kinds_render() {
    let s = Scratch::new();
    let file = s.quickstart();
    let mermaid = stdout(&s.run(&["graph", file.to_str().unwrap(), "--format", "mermaid"]));
    let dot = stdout(&s.run(&["graph", file.to_str().unwrap(), "--format", "dot"]));
    insta::assert_snapshot!(format!("{mermaid}\n{dot}"));
    let kinds = s.run(&["kinds"]);
    assert!(kinds.status.success());
    insta::assert_snapshot!(stdout(&kinds));
}
