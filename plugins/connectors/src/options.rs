//! Reading typed connector options out of a stage's config table. The runner already checks
//! key types against the declared `KeySpec`s; these helpers still report rather than panic,
//! because a connector may be driven without the runner (tests, other hosts).

use serde_json::{Map, Value};
use sluice_plugin::{ConfigIssue, ConnectorError};

/// Collects config issues while options are read, so `check()` can report all of them.
#[derive(Debug, Default)]
pub(crate) struct Issues(pub Vec<ConfigIssue>);

impl Issues {
    /// Records an issue.
    pub(crate) fn push(&mut self, issue: ConfigIssue) {
        self.0.push(issue);
    }

    /// `Ok(value)` when no issue was recorded.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<ConfigIssue>> {
        if self.0.is_empty() { Ok(value) } else { Err(self.0) }
    }
}

/// The first issue as a read error (for `read()`, which can only fail once).
pub(crate) fn to_error(issues: Vec<ConfigIssue>) -> ConnectorError {
    match issues.into_iter().next() {
        Some(i) => {
            let message = match i.help {
                Some(h) => format!("{} ({h})", i.message),
                None => i.message,
            };
            ConnectorError::config(i.key, message)
        }
        None => ConnectorError::Other("invalid configuration".into()),
    }
}

/// A boolean key.
pub(crate) fn bool_key(cfg: &Map<String, Value>, key: &str, default: bool, is: &mut Issues) -> bool {
    match cfg.get(key) {
        None => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            is.push(ConfigIssue::new(key, "must be `true` or `false`"));
            default
        }
    }
}

/// A non-negative integer key.
pub(crate) fn count_key(cfg: &Map<String, Value>, key: &str, default: usize, is: &mut Issues) -> usize {
    match cfg.get(key) {
        None => default,
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => n,
            None => {
                is.push(ConfigIssue::new(key, "must be a non-negative integer"));
                default
            }
        },
    }
}

/// A key holding exactly one ASCII character, e.g. a delimiter.
pub(crate) fn char_key(cfg: &Map<String, Value>, key: &str, is: &mut Issues) -> Option<u8> {
    let v = cfg.get(key)?;
    match v.as_str().map(str::as_bytes) {
        Some([b]) if b.is_ascii() && *b != b'\n' && *b != b'\r' => Some(*b),
        Some(s) if s.len() == 1 => {
            is.push(ConfigIssue::new(key, "cannot be a line break"));
            None
        }
        _ => {
            is.push(
                ConfigIssue::new(key, format!("must be a single ASCII character, not {v}"))
                    .with_help("write a tab as \"\\t\""),
            );
            None
        }
    }
}

/// A key holding a string or an array of strings.
pub(crate) fn string_list_key(
    cfg: &Map<String, Value>,
    key: &str,
    allow_single: bool,
    is: &mut Issues,
) -> Option<Vec<String>> {
    let v = cfg.get(key)?;
    match v {
        Value::String(s) if allow_single => Some(vec![s.clone()]),
        Value::Array(items) => {
            let strings: Option<Vec<String>> = items.iter().map(|i| i.as_str().map(str::to_owned)).collect();
            if strings.is_none() {
                is.push(ConfigIssue::new(key, "must contain only strings"));
            }
            strings
        }
        _ => {
            let what = if allow_single { "a string or an array of strings" } else { "an array of strings" };
            is.push(ConfigIssue::new(key, format!("must be {what}")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn typed_keys_report_wrong_values_instead_of_panicking() {
        let c = cfg(json!({"header": "yes", "delimiter": ";;", "quote": "\n", "infer_rows": -1}));
        let mut is = Issues::default();
        assert!(bool_key(&c, "header", true, &mut is));
        assert_eq!(char_key(&c, "delimiter", &mut is), None);
        assert_eq!(char_key(&c, "quote", &mut is), None);
        assert_eq!(count_key(&c, "infer_rows", 10, &mut is), 10);
        let keys: Vec<_> = is.0.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["header", "delimiter", "quote", "infer_rows"]);
    }

    #[test]
    fn tab_and_single_characters_are_accepted() {
        let c = cfg(json!({"delimiter": "\t", "null_values": ["", "NA"], "path": "a.csv"}));
        let mut is = Issues::default();
        assert_eq!(char_key(&c, "delimiter", &mut is), Some(b'\t'));
        assert_eq!(string_list_key(&c, "null_values", false, &mut is).unwrap(), ["", "NA"]);
        assert_eq!(string_list_key(&c, "path", true, &mut is).unwrap(), ["a.csv"]);
        assert!(is.0.is_empty());
    }
}
