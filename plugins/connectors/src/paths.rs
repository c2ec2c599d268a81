//! The `path` key: file names and glob patterns, expanded to a sorted list of files.

use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};
use serde_json::Value;
use sluice_plugin::{ConfigIssue, ReadRequest};

use crate::options::{self, Issues};
use crate::suggest::levenshtein;

/// How many similar file names a "matches no file" help lists at most.
const MAX_SUGGESTIONS: usize = 5;

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands the `path` key into the sorted, de-duplicated files it names; every pattern must
/// match at least one file.
pub(crate) fn expand(req: &ReadRequest<'_>) -> Result<Vec<PathBuf>, Vec<ConfigIssue>> {
    let mut is = Issues::default();
    let patterns = match req.config.get("path") {
        None => {
            is.push(ConfigIssue::new("path", "is required").with_help("e.g. path = \"data/*.csv\""));
            return Err(is.0);
        }
        Some(Value::Array(a)) if a.is_empty() => {
            is.push(ConfigIssue::new("path", "must name at least one file"));
            return Err(is.0);
        }
        Some(_) => options::string_list_key(req.config, "path", true, &mut is).unwrap_or_default(),
    };
    let mut files = Vec::new();
    for pat in &patterns {
        match expand_one(req, pat) {
            Ok(found) => files.extend(found),
            Err(issue) => is.push(issue),
        }
    }
    files.sort();
    files.dedup();
    is.finish(files)
}

fn expand_one(req: &ReadRequest<'_>, pat: &str) -> Result<Vec<PathBuf>, ConfigIssue> {
    if !is_glob(pat) {
        let p = req.resolve(pat);
        if p.is_file() {
            return Ok(vec![p]);
        }
        if p.is_dir() {
            return Err(ConfigIssue::new("path", format!("`{pat}` is a directory"))
                .with_help(format!("to read the files in it, write `{}/*`", pat.trim_end_matches('/'))));
        }
        return Err(no_match(req, pat));
    }
    if let Err(e) = Pattern::new(pat) {
        return Err(ConfigIssue::new("path", format!("`{pat}` is not a valid glob pattern: {}", e.msg))
            .with_help("`*` matches any name part, `?` one character, `[abc]` one of a set"));
    }
    // The pipeline's directory is literal text, so escape it before appending the pattern.
    let full = if Path::new(pat).is_absolute() {
        pat.to_owned()
    } else {
        let base = req.base_dir.to_string_lossy();
        let base = if base.is_empty() { ".".into() } else { Pattern::escape(&base) };
        format!("{base}/{pat}")
    };
    let paths = glob::glob(&full)
        .map_err(|e| ConfigIssue::new("path", format!("`{pat}` is not a valid glob pattern: {}", e.msg)))?;
    let found: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
    if found.is_empty() { Err(no_match(req, pat)) } else { Ok(found) }
}

/// "matches no file", with the similarly named files of that directory as help.
fn no_match(req: &ReadRequest<'_>, pat: &str) -> ConfigIssue {
    let issue = ConfigIssue::new("path", format!("`{pat}` matches no file"));
    let (dir_part, name_part) = match pat.rfind('/') {
        Some(i) => (&pat[..i], &pat[i + 1..]),
        None => ("", pat),
    };
    if is_glob(dir_part) {
        return issue;
    }
    let dir = req.resolve(if dir_part.is_empty() { "." } else { dir_part });
    let Ok(entries) = std::fs::read_dir(&dir) else {
        let shown = if dir_part.is_empty() { "." } else { dir_part };
        return issue.with_help(format!("directory `{shown}` does not exist"));
    };
    let names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let similar = similar_names(name_part, &names);
    if similar.is_empty() {
        return issue;
    }
    let listed: Vec<String> = similar.iter().map(|n| format!("`{n}`")).collect();
    let shown =
        if dir_part.is_empty() { "the pipeline's directory".to_owned() } else { format!("`{dir_part}/`") };
    issue.with_help(format!("similar files in {shown}: {}", listed.join(", ")))
}

/// Names that match the pattern ignoring case, share its extension, or are a few edits away.
fn similar_names(pattern: &str, names: &[String]) -> Vec<String> {
    let insensitive = MatchOptions { case_sensitive: false, ..MatchOptions::new() };
    let compiled = Pattern::new(pattern).ok();
    let literal: String = pattern.chars().filter(|c| !"*?[]".contains(*c)).collect::<String>().to_lowercase();
    let ext = pattern.rsplit_once('.').map(|(_, e)| e.to_lowercase()).filter(|e| !is_glob(e));
    let limit = (literal.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .filter_map(|n| {
            let lower = n.to_lowercase();
            let d = levenshtein(&literal, &lower);
            let glob_hit = compiled.as_ref().is_some_and(|p| p.matches_with(n, insensitive));
            let ext_hit = ext.as_ref().is_some_and(|e| lower.rsplit_once('.').is_some_and(|(_, x)| x == e));
            (glob_hit || ext_hit || d <= limit).then_some((if glob_hit { 0 } else { d }, n))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(MAX_SUGGESTIONS).map(|(_, n)| n.clone()).collect()
}

/// The `path` key every file connector takes (interpreted by [`expand`]).
pub(crate) const PATH_KEY: sluice_plugin::KeySpec = sluice_plugin::KeySpec::required(
    "path",
    sluice_plugin::KeyType::StringOrList,
    "File or glob pattern (relative to the pipeline file), or an array of them; matches are read in sorted order",
).example("path = \"data/*.csv\"");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};
    use sluice_plugin::OnError;

    fn req<'a>(cfg: &'a Map<String, Value>, dir: &'a Path) -> ReadRequest<'a> {
        ReadRequest {
            stage: "s",
            config: cfg,
            base_dir: dir,
            on_error: OnError::Fail,
            batch_size: 100,
            incremental: None,
        }
    }

    fn touch(dir: &Path, name: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "a\n").unwrap();
    }

    #[test]
    fn globs_expand_relative_to_the_pipeline_dir_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["data/b.csv", "data/a.csv", "data/c.txt", "other.csv"] {
            touch(dir.path(), n);
        }
        let cfg = json!({"path": ["data/*.csv", "other.csv", "data/a.csv"]});
        let files = expand(&req(cfg.as_object().unwrap(), dir.path())).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["data/a.csv", "data/b.csv", "other.csv"]);
    }

    #[test]
    fn a_pattern_matching_nothing_is_an_issue_listing_similar_files() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["data/X1.CSV", "data/y.csv", "data/notes.md"] {
            touch(dir.path(), n);
        }
        let cfg = json!({"path": "data/x*.csv"});
        let issues = expand(&req(cfg.as_object().unwrap(), dir.path())).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "path");
        assert_eq!(issues[0].message, "`data/x*.csv` matches no file");
        let help = issues[0].help.as_deref().unwrap();
        assert!(help.contains("`X1.CSV`") && help.contains("`y.csv`") && !help.contains("notes"), "{help}");

        let cfg = json!({"path": "nowhere/x.csv"});
        let issues = expand(&req(cfg.as_object().unwrap(), dir.path())).unwrap_err();
        assert!(issues[0].help.as_deref().unwrap().contains("does not exist"));
    }

    #[test]
    fn invalid_patterns_and_missing_keys_are_issues() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = json!({"path": "data/[x.csv"});
        let issues = expand(&req(cfg.as_object().unwrap(), dir.path())).unwrap_err();
        assert!(issues[0].message.contains("not a valid glob pattern"), "{:?}", issues[0]);
        let cfg = json!({});
        assert_eq!(expand(&req(cfg.as_object().unwrap(), dir.path())).unwrap_err()[0].key, "path");
    }

    #[test]
    fn glob_characters_in_the_pipeline_dir_are_taken_literally() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("run[1]");
        touch(&odd, "a.csv");
        let cfg = json!({"path": "*.csv"});
        let files = expand(&req(cfg.as_object().unwrap(), &odd)).unwrap();
        assert_eq!(files, [odd.join("a.csv")]);
    }
}
