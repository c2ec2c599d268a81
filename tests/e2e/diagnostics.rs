//! Every broken pipeline under tests/fixtures/invalid gets its exact diagnostics pinned by
//! an insta snapshot: file:line:col, the offending line, a caret and help.

use std::process::Command;

use crate::util::*;

fn validate(rel: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(repo().join("tests/fixtures"))
        .arg("validate")
        .arg(rel)
        .args(extra)
        .env_remove("SLUICE_FIXTURE_UNSET_DIR")
        .output()
        .expect("spawn sluice");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_invalid_fixture_has_pinned_diagnostics() {
    let dir = repo().join("tests/fixtures/invalid");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 15, "the corpus must hold at least 15 broken pipelines, found {}", names.len());
    for name in names {
        let (code, text) = validate(&format!("invalid/{name}"), &[]);
        assert_eq!(code, 2, "{name} must be invalid (exit 2), got {code}:\n{text}");
        assert!(
            text.contains(&format!("invalid/{name}:")),
            "{name}: diagnostics must name file:line:col:\n{text}"
        );
        insta::with_settings!({snapshot_suffix => name.trim_end_matches(".toml").to_string(), prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("validate", text);
        });
    }
}

#[test]
fn several_mistakes_are_reported_in_one_pass() {
    let (code, text) = validate("invalid/several_mistakes.toml", &[]);
    assert_eq!(code, 2);
    for needle in [
        "unknown key `delimter`",
        "undefined parameter `min_quantity`",
        "unknown stage kind `feture-extract`",
        "no stage `featurs`",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert!(text.contains("4 errors"), "{text}");
}

#[test]
fn unused_stage_is_a_warning_not_an_error() {
    let (code, text) = validate("valid/unused_stage.toml", &[]);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn bad_param_overrides_are_usage_errors() {
    let (code, text) = validate("invalid/undefined_param.toml", &["--param", "horizon_dys=30"]);
    assert_eq!(code, 2);
    assert!(text.contains("did you mean `horizon_days`?"), "{text}");
    let (code, text) = validate("valid/unused_stage.toml", &["--param", "x"]);
    assert_eq!(code, 2);
    assert!(text.contains("is not NAME=VALUE"), "{text}");
}

#[test]
fn wrong_type_param_override_points_at_the_declaration() {
    let s = Scratch::new();
    s.write("data/orders.csv", "a\n1\n");
    let f = s.write(
        "p.toml",
        "[pipeline]\nname = \"p\"\n\n[params]\nhorizon_days = 90\n\n[stages.orders]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/orders.csv\"\nshow = true\n",
    );
    let out = s.run(&["validate", f.to_str().unwrap(), "--param", "horizon_days=soon"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out).replace(s.path().to_str().unwrap(), "[DIR]");
    insta::assert_snapshot!(text);
}

#[test]
fn validate_json_gives_diagnostics_as_objects() {
    let (code, text) = validate("invalid/unknown_input.toml", &["--json"]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let d = &v[0]["diagnostics"][0];
    assert_eq!(v[0]["valid"], false);
    assert_eq!(d["code"], "unknown-input");
    assert_eq!(d["line"], 11);
    assert_eq!(d["column"], 11);
    assert_eq!(d["help"], "did you mean `orders`?");
}

/// Regression: a path built from `${env.…}` was quoted whole in "matches no file", though
/// environment values are secrets and never appear in output.
#[test]
fn a_secret_in_a_path_stays_out_of_diagnostics() {
    let s = Scratch::new();
    let file = s.write(
        "p.toml",
        "[pipeline]\nname = \"p\"\n\n[stages.a]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"${env.SLUICE_TEST_SDIR}/a.csv\"\nshow = true\n",
    );
    let f = file.to_str().unwrap();
    for args in [vec!["validate", f], vec!["validate", "--json", f], vec!["run", f]] {
        let out = s.cmd(&args).env("SLUICE_TEST_SDIR", "nodir-SeCrEtVaL").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(text.contains("matches no file"), "{args:?}: {text}");
        assert!(!text.to_ascii_lowercase().contains("secretval"), "{args:?}: {text}");
        assert!(text.contains("***"), "{args:?}: {text}");
    }
}
