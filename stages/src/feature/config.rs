//! Reading a transform's settings out of the stage config. Every value carries its dotted key
//! path (`steps.2.one_hot.Country`), so each mistake becomes an [`Issue`] that compile turns
//! into a `file:line:col` diagnostic at that key.

use serde_json::{Map, Value};
use sluice_core::diagnostic::suggestion;
use sluice_core::registry::Issue;

/// A config value and the dotted key path it was read from.
#[derive(Debug, Clone)]
pub(crate) struct At<'a> {
    /// Key path of the value.
    pub key: String,
    /// The value.
    pub value: &'a Value,
}

/// A child key path: `parent.name` (or `name` at the top).
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}

/// Describes a JSON value's type the way the TOML file spells it.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

impl<'a> At<'a> {
    /// The value at `key`.
    pub fn new(key: impl Into<String>, value: &'a Value) -> Self {
        At { key: key.into(), value }
    }

    /// An issue at this value's key.
    pub fn issue(&self, message: impl Into<String>) -> Issue {
        Issue::new(self.key.clone(), message)
    }

    /// The entry `name` of this table (`None` when absent or not a table).
    pub fn get(&self, name: &str) -> Option<At<'a>> {
        self.value.as_object()?.get(name).map(|v| At::new(join(&self.key, name), v))
    }

    /// The entry `name`, which must be present.
    pub fn require(&self, name: &str) -> Result<At<'a>, Issue> {
        self.get(name).ok_or_else(|| {
            self.issue(format!("`{}` is missing `{name}`", self.key))
                .with_help(format!("add `{name} = ...` to `{}`", self.key))
        })
    }

    /// The entries of this table, in file order.
    pub fn entries(&self) -> Result<Vec<(&'a str, At<'a>)>, Issue> {
        Ok(self.table()?.iter().map(|(k, v)| (k.as_str(), At::new(join(&self.key, k), v))).collect())
    }

    /// Checks that this table has only `allowed` keys and every one of `required`.
    pub fn only(&self, allowed: &[&str], required: &[&str]) -> Result<(), Issue> {
        let table = self.table()?;
        for k in table.keys() {
            if !allowed.contains(&k.as_str()) {
                let help = suggestion(k, allowed.iter().copied())
                    .unwrap_or_else(|| format!("known keys here: {}", allowed.join(", ")));
                return Err(Issue::new(join(&self.key, k), format!("unknown key `{k}` in `{}`", self.key))
                    .with_help(help));
            }
        }
        for r in required {
            self.require(r)?;
        }
        Ok(())
    }

    /// "must be X" at this key.
    pub fn expected(&self, what: &str) -> Issue {
        // A number of the right type but out of range is shown as itself ("found 0").
        let found = match self.value {
            Value::Number(n) => n.to_string(),
            other => type_of(other).to_string(),
        };
        self.issue(format!("`{}` must be {what}, found {found}", self.key))
    }

    /// The value as a table.
    pub fn table(&self) -> Result<&'a Map<String, Value>, Issue> {
        self.value.as_object().ok_or_else(|| self.expected("a table"))
    }

    /// The value as a string.
    pub fn str(&self) -> Result<&'a str, Issue> {
        self.value.as_str().ok_or_else(|| self.expected("a string"))
    }

    /// A string or an array of strings, as a list.
    pub fn strings(&self) -> Result<Vec<String>, Issue> {
        match self.value {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| self.expected("an array of strings")))
                .collect(),
            _ => Err(self.expected("a string or an array of strings")),
        }
    }

    /// A whole number ≥ 1.
    pub fn positive(&self) -> Result<usize, Issue> {
        match self.value.as_u64() {
            Some(n) if n >= 1 => usize::try_from(n).map_err(|_| self.expected("a smaller integer")),
            _ => Err(self.expected("an integer of at least 1")),
        }
    }

    /// A number (integer or float).
    pub fn number(&self) -> Result<f64, Issue> {
        self.value.as_f64().ok_or_else(|| self.expected("a number"))
    }
}
